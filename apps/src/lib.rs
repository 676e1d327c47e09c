//! The mjpeg-rtsp applications: `mjpeg-rtsp-server` (an RFC 2326 server), `mjpeg-player`
//! (an RTSP client) and `mjpeg-rtsp-bench` (a load generator for
//! RTSP servers).
//!
//! - [`rtsp`]: the RTSP 1.0 protocol core (no sockets, no GStreamer): requests and replies
//!   on `rtsp-types`, the lab dialect, transports, ranges, SDP on `sdp-types`.
//! - [`server`]: the media catalog, sessions and the RTP/RTCP senders.
//! - [`player`]: the RTSP client, receive path and pipeline of `mjpeg-player`.
//! - [`bench`]: the load generator behind `mjpeg-rtsp-bench`.
//! - [`log_limit`]: the rate limit on log lines a received packet can trigger.

pub mod bench;
pub mod log_limit;
pub mod player;
pub mod ports;
pub use rtsp_core as rtsp;
pub mod server;
