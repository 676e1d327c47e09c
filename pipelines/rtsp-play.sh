#!/bin/sh
# Starts mjpeg-rtsp-server on a clip and plays it back over RTSP with GStreamer's own
# client, then stops the server:
#
#   mjpeg-rtsp-server --port 8554 media/sample.Mjpeg &
#   gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/sample.Mjpeg latency=100 \
#       ! rtpjpegdepay ! jpegdec ! videoconvert ! autovideosink
#
# Usage: pipelines/rtsp-play.sh [CLIP]   (after `make`)
set -eu
. "$(dirname "$0")/common.sh"
start_server "${1:-$sample}"
run_video rtspsrc location="$url" latency=100 ! rtpjpegdepay ! jpegdec ! videoconvert ! $SINK
