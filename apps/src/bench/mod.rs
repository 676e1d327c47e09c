//! Load generator for RTSP servers (`mjpeg-rtsp-bench`).
