#!/bin/sh
# Receives RTP/JPEG (RFC 2435) over UDP and shows it: from udp-send.sh, or any sender
# (rtpjpegpay, ffmpeg -f rtp, an IP camera). rtpmjpegdepay drops frames that lost packets
# rather than showing garbage (SALVAGE=true keeps what decodes of frames with restart
# markers).
#
#   gst-launch-1.0 udpsrc port=5000 \
#       caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
#       ! rtpjitterbuffer ! rtpmjpegdepay ! jpegdec ! videoconvert ! autovideosink
#
# Usage: pipelines/udp-receive.sh [PORT]   (PACKETS=N stops after N RTP packets)
set -eu
. "$(dirname "$0")/common.sh"
port=${1:-5000}
limit=""
[ -n "${PACKETS:-}" ] && limit="num-buffers=$PACKETS"
run_video udpsrc port="$port" $limit \
    caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
    ! rtpjitterbuffer ! rtpmjpegdepay salvage="${SALVAGE:-false}" ! jpegdec ! videoconvert ! $SINK
