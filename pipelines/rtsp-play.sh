#!/bin/sh
# Starts mjpeg-rtsp-server on a clip and plays it back over RTSP with GStreamer's own
# client, then stops the server:
#
#   mjpeg-rtsp-server --port 8554 media/sample.Mjpeg &
#   gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/sample.Mjpeg latency=100 \
#       ! rtpjpegdepay ! jpegdec ! videoconvert ! autovideosink
#
# Usage: pipelines/rtsp-play.sh [CLIP]   (after `make`; this is what `make demo` runs)
set -eu
. "$(dirname "$0")/common.sh"
clip=${1:-$sample}
server="$root/target/debug/mjpeg-rtsp-server"
[ -x "$server" ] || { echo "$(basename "$0"): $server is not built: run 'make'" >&2; exit 1; }
urls=$(mktemp)
trap 'kill "$pid" 2>/dev/null; rm -f "$urls"' EXIT INT TERM
"$server" --bind 127.0.0.1 --port 0 "$clip" >"$urls" &
pid=$!
for _ in $(seq 100); do
    [ -s "$urls" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "$(basename "$0"): the server did not start" >&2; exit 1; }
    sleep 0.1
done
url=$(head -n 1 "$urls")
echo "playing $url" >&2
run_video rtspsrc location="$url" latency=100 ! rtpjpegdepay ! jpegdec ! videoconvert ! $SINK
