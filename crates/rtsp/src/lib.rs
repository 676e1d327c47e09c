//! RTSP 1.0 (RFC 2326) for Motion-JPEG, with no sockets and no GStreamer: reading requests
//! (through `rtsp-types`) and the lab dialect, transports, ranges, SDP (through
//! `sdp-types`; a publisher's ANNOUNCE is [`announce`]), the mapping from request URLs to clip names, the client's requests and
//! what it reads from replies ([`client`], for the player and the load generator; what a
//! DESCRIBE reply says is [`describe`]), `$` interleaved framing, and Basic and Digest
//! authentication (the client's in [`auth`], the server's in [`server_auth`]).
//! One piece touches sockets: [`ports`] binds the even/odd RTP/RTCP port pair (RFC 3550
//! section 11) that the server, the player and the load generator each need.

pub mod announce;
pub mod auth;
pub mod client;
pub mod interleaved;
pub mod lab;
pub mod path;
pub mod ports;
pub mod range;
pub mod reply;
pub mod request;
pub mod sdp;
pub mod server_auth;
pub mod transport;

pub use client::description as describe;
pub use reply::Reply;
pub use request::{Dialect, Framed, Incoming, InvalidRequest};
pub use transport::TransportSpec;
