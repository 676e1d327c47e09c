#!/bin/sh
# Makes media/sample.Mjpeg: 10 s of scrolling SMPTE bars with a timestamp overlay, at the
# networking lab's 384x288 and 20 frames/s, in the lab's .Mjpeg format (each JPEG preceded
# by its length as 5 ASCII digits). 4:2:0 (I420) because RFC 2435 cannot carry 4:4:4;
# quality 75 keeps every frame under the 20480 bytes a lab client receives at once.
#
# Usage: media/make-sample.sh [OUTPUT]   (needs gst-launch-1.0 with plugins base/good)
set -eu

out=${1:-$(dirname "$0")/sample.Mjpeg}
frames=200
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

gst-launch-1.0 -q videotestsrc num-buffers=$frames pattern=smpte horizontal-speed=2 \
    ! video/x-raw,format=I420,width=384,height=288,framerate=20/1 \
    ! timeoverlay font-desc="Sans 24" halignment=center valignment=bottom \
    ! jpegenc quality=75 \
    ! multifilesink location="$tmp/frame%05d.jpg"

: > "$tmp/out"
for f in "$tmp"/frame*.jpg; do
    size=$(wc -c < "$f")
    if [ "$size" -gt 20480 ]; then
        echo "make-sample: $f is $size bytes, more than a lab client receives" >&2
        exit 1
    fi
    printf '%05d' "$size" >> "$tmp/out"
    cat "$f" >> "$tmp/out"
done
mv "$tmp/out" "$out"
echo "wrote $out: $frames frames, $(wc -c < "$out") bytes"
