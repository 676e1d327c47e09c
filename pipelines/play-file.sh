#!/bin/sh
# Plays a Motion-JPEG file (lab .Mjpeg or concatenated JPEG): no jpegparse needed, because
# mjpegfilesrc outputs parsed, fully described JPEG frames.
#
#   gst-launch-1.0 mjpegfilesrc location=media/sample.Mjpeg ! jpegdec ! videoconvert ! autovideosink
#
# Usage: pipelines/play-file.sh [CLIP]
set -eu
. "$(dirname "$0")/common.sh"
clip=${1:-$sample}
run_video mjpegfilesrc location="$clip" ! jpegdec ! videoconvert ! $SINK
