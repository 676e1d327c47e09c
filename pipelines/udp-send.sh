#!/bin/sh
# Streams a file as RTP/JPEG (RFC 2435) over UDP in real time, like a camera: is-live paces
# the frames at the file's frame rate, and loop=true restarts it at the end (LOOP=false to
# stop at the end). Any RFC 2435 receiver plays it: udp-receive.sh, GStreamer's
# rtpjpegdepay, or ffplay/VLC with stream.sdp (port 5000).
#
#   gst-launch-1.0 mjpegfilesrc location=media/sample.Mjpeg is-live=true loop=true \
#       ! rtpmjpegpay ! udpsink host=127.0.0.1 port=5000
#
# Usage: pipelines/udp-send.sh [CLIP [HOST [PORT]]]
set -eu
. "$(dirname "$0")/common.sh"
clip=${1:-$sample}
host=${2:-127.0.0.1}
port=${3:-5000}
echo "sending $clip to rtp://$host:$port (RTP/JPEG, payload type 26)" >&2
gst-launch-1.0 -q mjpegfilesrc location="$clip" is-live=true loop="${LOOP:-true}" \
    ! rtpmjpegpay ! udpsink host="$host" port="$port"
