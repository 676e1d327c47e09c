#!/bin/sh
# `make demo`: serves the bundled sample clip with mjpeg-rtsp-server and plays it with
# mjpeg-player (statistics overlay on). Without a display the player runs headless,
# plays 100 frames and prints its summary.
set -eu
. "$(dirname "$0")/../pipelines/common.sh"
start_server "${1:-$sample}"
if have_display; then
    "$root/target/debug/mjpeg-player" "$url"
else
    "$root/target/debug/mjpeg-player" --headless --frames 100 "$url"
fi
