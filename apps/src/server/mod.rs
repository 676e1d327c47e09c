//! The RTSP server.
