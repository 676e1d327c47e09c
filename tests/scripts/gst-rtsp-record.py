#!/usr/bin/python3
"""Receives one Motion-JPEG stream with GStreamer's own RTSP server (GstRtspServer) in
RECORD mode, and writes its frames to a file.

A publisher ANNOUNCEs, SETs UP (mode=record) and RECORDs to rtsp://ADDR:PORT/NAME; the
media factory, in RECORD transport mode, is

    ( rtpjpegdepay name=depay0 ! jpegparse ! filesink buffer-mode=unbuffered location=OUT )

so OUT holds the received JPEG images one after the other (concatenated JPEG, which
ffmpeg reads with -f mjpeg). Each new publisher starts OUT again. When the server
listens, the URL is printed on stdout (one line); it then serves until SIGINT or SIGTERM.

It needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0, so run it with the system
interpreter (/usr/bin/python3), not one from a virtual environment or pyenv.
"""

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description="Receive RTP/JPEG published with ANNOUNCE and RECORD into a file."
    )
    parser.add_argument("out", help="file to write the received JPEG images to")
    parser.add_argument(
        "--port", type=int, default=8554, help="TCP port to listen on, 0 for any (default 8554)"
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--name", default="record", help="mount point, without the leading slash (default record)"
    )
    parser.add_argument(
        "--tcp-only",
        action="store_true",
        help="take RTP over TCP (interleaved) only: a SETUP for UDP is answered 461",
    )
    return parser.parse_args()


def main():
    args = parse_args()
    Gst.init(None)
    location = args.out.replace("\\", "\\\\").replace('"', '\\"')
    launch = f'( rtpjpegdepay name=depay0 ! jpegparse ! filesink buffer-mode=unbuffered location="{location}" )'

    server = GstRtspServer.RTSPServer()
    server.set_address(args.bind)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    if args.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    server.get_mount_points().add_factory("/" + args.name, factory)
    if server.attach(None) == 0:
        sys.exit(f"gst-rtsp-record.py: cannot listen on {args.bind}:{args.port}")

    main_loop = GLib.MainLoop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, main_loop.quit)
    print(f"rtsp://{args.bind}:{server.get_bound_port()}/{args.name}", flush=True)
    main_loop.run()


if __name__ == "__main__":
    main()
