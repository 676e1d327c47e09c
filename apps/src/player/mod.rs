//! mjpeg-player: RTSP client, receive path, pipeline, controls, statistics.
