//! The mjpeg-rtsp applications: `mjpeg-rtsp-server` (an RFC 2326 server) and
//! `mjpeg-player` (an RTSP client). Neither is part of this release yet; their binaries
//! print their intended usage and exit with a non-zero status.

/// Exit status of an application that is not available in this build.
pub const NOT_AVAILABLE: u8 = 2;
