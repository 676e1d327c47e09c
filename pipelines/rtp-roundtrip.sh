#!/bin/sh
# Payloads a file as RFC 2435 RTP/JPEG and back in one pipeline, with GStreamer's own
# rtpjpegpay/rtpjpegdepay: mjpegfilesrc's caps are complete, so no jpegparse is needed.
#
#   gst-launch-1.0 mjpegfilesrc location=media/sample.Mjpeg ! rtpjpegpay ! rtpjpegdepay \
#       ! jpegdec ! videoconvert ! autovideosink
#
# Usage: pipelines/rtp-roundtrip.sh [CLIP]
set -eu
. "$(dirname "$0")/common.sh"
clip=${1:-$sample}
run_video mjpegfilesrc location="$clip" ! rtpjpegpay ! rtpjpegdepay ! jpegdec ! videoconvert ! $SINK
