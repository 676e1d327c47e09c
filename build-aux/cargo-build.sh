#!/bin/sh
# meson's bridge to cargo: builds the plugin crate and copies the library to meson's
# output.
#
# Usage: cargo-build.sh CARGO SOURCE_ROOT CARGO_TARGET_DIR debug|release OUTPUT
set -eu
cargo=$1 src=$2 target=$3 profile=$4 out=$5
if [ "$profile" = release ]; then
    set -- --release
else
    set --
fi
"$cargo" build "$@" --locked --manifest-path "$src/Cargo.toml" -p gst-plugin-mjpegrtp \
    --target-dir "$target"
cp "$target/$profile/libgstmjpegrtp.so" "$out"
