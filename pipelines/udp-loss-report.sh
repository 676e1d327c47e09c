#!/bin/sh
# Receives RTP over UDP and prints what the network did, once a second: rtcplossmonitor's
# loss-report messages (packets received, expected and lost, fraction lost, jitter, ...)
# as gst-launch-1.0 -m shows them. Send with udp-send.sh (on this machine, or another).
#
#   gst-launch-1.0 -m udpsrc port=5000 \
#       caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
#       ! rtcplossmonitor ! fakesink
#
# Usage: pipelines/udp-loss-report.sh [PORT]
#   (PACKETS=N stops after N RTP packets; INTERVAL=MS reports every MS milliseconds)
set -eu
. "$(dirname "$0")/common.sh"
port=${1:-5000}
limit=""
[ -n "${PACKETS:-}" ] && limit="num-buffers=$PACKETS"
gst-launch-1.0 -m udpsrc port="$port" $limit \
    caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
    ! rtcplossmonitor interval="${INTERVAL:-1000}" ! fakesink \
    | grep --line-buffered -E 'loss-report|ERROR|WARNING'
