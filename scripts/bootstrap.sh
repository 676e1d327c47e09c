#!/bin/sh
# Installs whatever the build, the demo and the tests need and this machine lacks, so that
# `make demo` and `make test` work on a fresh Debian 12. Run by the Makefile; safe to rerun
# (it only checks when everything is there).
set -eu

# GStreamer 1.22 development files and plugins (jpegdec, rtpjpegpay, jpegparse, netsim,
# rtpbin, ...), the gst-launch/gst-inspect tools, ffmpeg/ffprobe for interop tests,
# cjpeg/djpeg (test vectors, pixel checks), Xvfb for tests that open a window,
# meson/ninja for the install path, python3-gi and GstRtspServer for the server benchmark
# anchor (gst-rtsp-server), gstreamer1.0-rtsp for rtspclientsink (publishing tests),
# python3-gst-1.0 for the Python example (its overrides read
# GstValueArray fields such as rtcplossmonitor's sources); chromium (headless) for the
# status page's browser test, python3-opencv and curl as HTTP MJPEG peers, python3-venv
# for the tests' Python packages from PyPI (in target/py); haproxy (TCP mode) in front of
# an origin/edge tier, tcpdump to count multicast datagrams and ethtool to turn off a test
# network's UDP segmentation offload (tests in private network namespaces, iproute2).
PACKAGES="
    pkg-config
    libgstreamer1.0-dev
    libgstreamer-plugins-base1.0-dev
    libgstreamer-plugins-bad1.0-dev
    gstreamer1.0-tools
    gstreamer1.0-plugins-base
    gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad
    gstreamer1.0-libav
    gstreamer1.0-x
    gstreamer1.0-rtsp
    ffmpeg
    libjpeg-turbo-progs
    xvfb
    xauth
    xdotool
    meson
    python3-gi
    python3-gst-1.0
    gir1.2-gst-rtsp-server-1.0
    ninja-build
    chromium
    python3-opencv
    python3-venv
    curl
    haproxy
    tcpdump
    ethtool
    iproute2
"
# The tests' Python packages, from PyPI into target/py (with the system's gi and cv2):
# prometheus-client parses /metrics, websocket-client drives chromium's DevTools.
PY_PACKAGES="prometheus-client==0.26.0 websocket-client==1.9.2"
MIN_RUST=1.92

if command -v dpkg-query >/dev/null 2>&1; then
    missing=""
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "bootstrap: installing$missing"
        if [ "$(id -u)" -eq 0 ]; then
            sudo=""
        elif command -v sudo >/dev/null 2>&1; then
            sudo=sudo
        else
            echo "bootstrap: root is needed to install:$missing" >&2
            exit 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -q
        # shellcheck disable=SC2086
        $sudo apt-get install -y -q --no-install-recommends $missing
    fi
else
    echo "bootstrap: not a Debian system; make sure these (or their equivalents) are installed:" \
        $PACKAGES >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "bootstrap: Rust $MIN_RUST or newer is needed (cargo not found): see https://rustup.rs" >&2
    exit 1
fi
have=$(rustc --version | cut -d' ' -f2)
if [ "$(printf '%s\n%s\n' "$MIN_RUST" "$have" | sort -V | head -n1)" != "$MIN_RUST" ]; then
    echo "bootstrap: Rust $MIN_RUST or newer is needed, this machine has $have" >&2
    exit 1
fi

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/target/py"
if ! "$venv/bin/python" -c "import prometheus_client, websocket" >/dev/null 2>&1; then
    echo "bootstrap: Python packages for the tests into $venv: $PY_PACKAGES"
    rm -rf "$venv"
    mkdir -p "$root/target"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    # shellcheck disable=SC2086
    "$venv/bin/pip" install -q --disable-pip-version-check $PY_PACKAGES
fi
