//! RTSP authentication (RFC 2617 Basic and Digest) for the player.
