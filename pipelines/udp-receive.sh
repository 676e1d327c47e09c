#!/bin/sh
# Receives RTP/JPEG over UDP (from udp-send.sh, or any RFC 2435 sender) and shows it.
#
#   gst-launch-1.0 udpsrc port=5000 \
#       caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
#       ! rtpjitterbuffer ! rtpjpegdepay ! jpegdec ! videoconvert ! autovideosink
#
# Usage: pipelines/udp-receive.sh [PORT]   (PACKETS=N stops after N RTP packets)
set -eu
. "$(dirname "$0")/common.sh"
port=${1:-5000}
limit=""
[ -n "${PACKETS:-}" ] && limit="num-buffers=$PACKETS"
run_video udpsrc port="$port" $limit \
    caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
    ! rtpjitterbuffer ! rtpjpegdepay ! jpegdec ! videoconvert ! $SINK
