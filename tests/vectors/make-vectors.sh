#!/bin/sh
# Makes the small JPEG test vectors in this folder, reproducibly, from ffmpeg's testsrc
# pattern with cjpeg (libjpeg-turbo-progs), ffmpeg and GStreamer's jpegenc. Each covers one
# case RFC 2435 payloaders and depayloaders must get right (see README.md here).
#
# Usage: tests/vectors/make-vectors.sh   (needs cjpeg, ffmpeg, gst-launch-1.0)
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 96x64: several MCUs across and down in both 4:2:0 (16x16) and 4:2:2 (16x8).
ffmpeg -loglevel error -f lavfi -i testsrc=size=96x64:rate=1 -frames:v 1 -y "$tmp/src.ppm"
# 100x75: a size that is not a multiple of 8 or 16.
ffmpeg -loglevel error -f lavfi -i testsrc=size=100x75:rate=1 -frames:v 1 -y "$tmp/odd.ppm"

cj() { out=$1; shift; cjpeg "$@" -outfile "$out" "$tmp/src.ppm"; }

# Standard tables, detectable Q (libjpeg's quality scaling is RFC 2435's).
cj 420-q75.jpg -quality 75 -sample 2x2
cj 422-q50.jpg -quality 50 -sample 2x1
cjpeg -quality 80 -sample 2x2 -outfile 420-odd-size.jpg "$tmp/odd.ppm"
# Restart intervals, in MCUs.
cj 420-dri2.jpg -quality 75 -sample 2x2 -restart 2B
cj 422-dri3.jpg -quality 75 -sample 2x1 -restart 3B
# Custom tables (not RFC 2435 Q tables): sent in band.
cat > "$tmp/custom.txt" <<'TABLES'
 3  2  2  3  5  8 10 12   2  2  3  4  5 12 12 11   3  3  3  5  8 11 14 11
 3  3  4  6 10 17 16 12   4  4  7 11 14 22 21 15   5  7 11 13 16 21 23 18
10 13 16 17 21 24 24 20  14 18 19 20 22 20 21 20
 4  4  5  9 20 20 20 20   4  5  5 13 20 20 20 20   5  5 11 20 20 20 20 20
 9 13 20 20 20 20 20 20  20 20 20 20 20 20 20 20  20 20 20 20 20 20 20 20
20 20 20 20 20 20 20 20  20 20 20 20 20 20 20 20
 6  6  7 11 24 24 24 24   6  7  7 15 24 24 24 24   7  7 13 24 24 24 24 24
11 15 24 24 24 24 24 24  24 24 24 24 24 24 24 24  24 24 24 24 24 24 24 24
24 24 24 24 24 24 24 24  24 24 24 24 24 24 24 24
TABLES
cj 420-custom-tables.jpg -qtables "$tmp/custom.txt" -qslots 0,1,1 -sample 2x2
# One table for all components, and three (Cb and Cr differ).
cj 420-one-table.jpg -qtables "$tmp/custom.txt" -qslots 0,0,0 -sample 2x2
cj 420-three-tables.jpg -qtables "$tmp/custom.txt" -qslots 0,1,2 -sample 2x2
# 16-bit tables (quality 1 without -baseline: values above 255, SOF1).
cj 420-16bit-tables.jpg -quality 1 -sample 2x2
# Optimised (non-standard) Huffman tables, from cjpeg and from ffmpeg's default encoder.
cj 420-optimized-huffman.jpg -quality 75 -sample 2x2 -optimize
cj 420-optimized-huffman-dri.jpg -quality 75 -sample 2x2 -optimize -restart 1B
ffmpeg -loglevel error -i "$tmp/src.ppm" -pix_fmt yuvj420p -q:v 3 -frames:v 1 \
    -y ffmpeg-420-optimal-huffman.jpg
# ffmpeg with standard Huffman tables and distinct luma/chroma matrices: both
# quantization tables in one DQT segment.
luma=$(seq 0 63 | awk '{ printf "%s%d", (NR > 1 ? "," : ""), 8 + int($1 / 4) }')
chroma=$(seq 0 63 | awk '{ printf "%s%d", (NR > 1 ? "," : ""), 12 + int($1 / 3) }')
ffmpeg -loglevel error -i "$tmp/src.ppm" -pix_fmt yuvj420p -huffman default \
    -intra_matrix "$luma" -chroma_intra_matrix "$chroma" -frames:v 1 \
    -y ffmpeg-420-combined-dqt.jpg
# GStreamer's jpegenc, I420 (what the project's pipelines make).
gst-launch-1.0 -q videotestsrc num-buffers=1 pattern=smpte \
    ! video/x-raw,format=I420,width=96,height=64 ! jpegenc quality=85 \
    ! filesink location=jpegenc-420.jpg

# Input RFC 2435 cannot carry.
cj unsupported-progressive.jpg -quality 75 -sample 2x2 -progressive
cj unsupported-444.jpg -quality 75 -sample 1x1
cj unsupported-arithmetic.jpg -quality 75 -sample 2x2 -arithmetic
cj unsupported-grayscale.jpg -quality 75 -grayscale
# ffmpeg's 4:2:2 is luma 2x2 with chroma 1x2, not RFC 2435's luma 2x1 with chroma 1x1.
ffmpeg -loglevel error -i "$tmp/src.ppm" -pix_fmt yuvj422p -huffman default -frames:v 1 \
    -y unsupported-ffmpeg-422.jpg

ls -l *.jpg | awk '{ s += $5 } END { print NR " vectors, " s " bytes" }'
