#!/bin/sh
# `make demo`: serves the bundled sample clip with mjpeg-rtsp-server and plays it with
# mjpeg-player (statistics overlay on). Without a display the player runs headless,
# plays 100 frames and prints its summary.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/debug"
clip=${1:-"$root/media/sample.Mjpeg"}
urls=$(mktemp)
trap 'kill "$pid" 2>/dev/null; rm -f "$urls"' EXIT INT TERM
"$bin/mjpeg-rtsp-server" --bind 127.0.0.1 --port 0 "$clip" >"$urls" &
pid=$!
for _ in $(seq 100); do
    [ -s "$urls" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "demo: the server did not start" >&2; exit 1; }
    sleep 0.1
done
url=$(head -n 1 "$urls")
echo "demo: playing $url" >&2
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    "$bin/mjpeg-player" "$url"
else
    "$bin/mjpeg-player" --headless --frames 100 "$url"
fi
