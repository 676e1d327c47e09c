//! The media formats of mjpeg-rtsp, as plain Rust over byte slices: no GStreamer, no
//! sockets, no clocks. The plugin's elements and the apps are shells around these.
//!
//! - [`jpeg`]: JPEG (ITU T.81) headers, tables, scan data and the lossless Huffman
//!   re-encoder.
//! - [`mjpeg`]: Motion-JPEG files, in the networking lab's `.Mjpeg` framing or as
//!   concatenated JPEG images.
//! - [`rfc2435`]: RTP payload format for JPEG: packetizer and reorder-tolerant reassembler.
//! - [`rtcp`]: RFC 3550 receiver statistics, RTCP reports and the RTP header.

pub mod jpeg;
pub mod mjpeg;
pub mod rfc2435;
pub mod rtcp;
