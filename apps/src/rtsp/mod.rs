//! RTSP 1.0 (RFC 2326) as the server speaks it, with no sockets and no GStreamer: reading
//! requests (through `rtsp-types`) and the lab dialect, transports, ranges, SDP (through
//! `sdp-types`) and the mapping from request URLs to clip names.

pub mod auth;
pub mod interleaved;
pub mod lab;
pub mod path;
pub mod range;
pub mod request;
pub mod sdp;
pub mod transport;

pub use request::{Dialect, Framed, Incoming};
pub use transport::TransportSpec;
