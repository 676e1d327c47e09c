//! The mjpeg-rtsp applications: `mjpeg-rtsp-server` (an RFC 2326 server) and
//! `mjpeg-player` (an RTSP client). The load generator, `mjpeg-rtsp-bench`, is a crate of
//! its own under `tools/`, not shipped with them.
//!
//! - [`rtsp`]: the RTSP 1.0 protocol core (the `mjpeg-rtsp-core` crate, no GStreamer):
//!   requests and replies on `rtsp-types`, the lab dialect, transports, ranges, SDP on
//!   `sdp-types`, the RTP/RTCP port pair.
//! - [`server`]: the media catalog, sessions and the RTP/RTCP senders.
//! - [`player`]: the RTSP client, receive path and pipeline of `mjpeg-player`.
//! - [`rtsp_client`]: the blocking RTSP control connection the player and the server's
//!   relays share (requests, replies, 401 challenges, interleaved data).
//! - [`tls`]: TLS on rustls (RTSPS and HTTPS for the server, `rtsps://` for the player).
//! - [`appsink`]: appsink/appsrc plumbing the server and the player share.
//! - [`logging`]: the `tracing` subscriber both programs log through (`-v`, `RUST_LOG`).
//! - [`log_limit`]: the rate limit on log lines a received packet can trigger.

pub mod appsink;
pub mod log_limit;
pub mod logging;
pub mod player;
pub use rtsp_core as rtsp;
pub use rtsp_core::ports;
pub mod rtsp_client;
pub mod server;
pub mod tls;
