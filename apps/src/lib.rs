//! The mjpeg-rtsp applications: `mjpeg-rtsp-server` (an RFC 2326 server), `mjpeg-player`
//! (an RTSP client, not in this build yet) and `mjpeg-rtsp-bench` (a load generator for
//! RTSP servers).
//!
//! - [`rtsp`]: the RTSP 1.0 protocol core (no sockets, no GStreamer): requests and replies
//!   on `rtsp-types`, the lab dialect, transports, ranges, SDP on `sdp-types`.
//! - [`server`]: the media catalog, sessions and the RTP/RTCP senders.
//! - [`bench`]: the load generator behind `mjpeg-rtsp-bench`.

pub mod bench;
pub mod player;
pub mod rtsp;
pub mod server;

/// Exit status of an application that is not available in this build.
pub const NOT_AVAILABLE: u8 = 2;
