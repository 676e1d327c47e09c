//! RTSP 1.0 protocol core.
