#!/usr/bin/python3
"""Serves one Motion-JPEG clip, or a live pipeline, with GStreamer's own RTSP server
(GstRtspServer); or, with --record OUT, receives one published stream.

The anchor of the RTSP server benchmark (tests/benches/rtsp_server.rs): the clip is served
at rtsp://ADDR:PORT/NAME by the media factory

    ( mjpegfilesrc location=CLIP framerate=FPS/1 loop=true ! rtpjpegpay name=pay0 pt=26 )

one pipeline per client, or with --shared one pipeline for every client. With --launch
DESCRIPTION (a live source whose output is JPEG) instead of a clip, the factory is
( DESCRIPTION ! rtpjpegpay name=pay0 pt=26 ), shared by every client, served at --name
(default "live").

With --record OUT the mount (--name, default "record") takes ANNOUNCE, SETUP
(mode=record) and RECORD from a publisher, in the factory's RECORD transport mode:

    ( rtpjpegdepay name=depay0 ! jpegparse ! filesink buffer-mode=unbuffered location=OUT )

so OUT holds the received JPEG images one after the other (concatenated JPEG, which
ffmpeg reads with -f mjpeg). Each new publisher starts OUT again.

When the server listens, the URL is printed on stdout (one line); it then serves until
SIGINT or SIGTERM.

mjpegfilesrc comes from this project's plugin: point GST_PLUGIN_PATH at the directory
holding libgstmjpegrtp.so (target/release or target/debug).

It needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0, so run it with the system
interpreter (/usr/bin/python3), not one from a virtual environment or pyenv.
"""

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(
        description="Serve one Motion-JPEG clip with gst-rtsp-server (RTP/JPEG, payload 26)."
    )
    parser.add_argument(
        "clip", nargs="?", help="the clip (.Mjpeg lab format or concatenated JPEG)"
    )
    parser.add_argument(
        "--launch",
        metavar="DESCRIPTION",
        help="serve this live pipeline (output JPEG), shared by all clients, instead of a clip",
    )
    parser.add_argument(
        "--record",
        metavar="OUT",
        help="receive one published stream (ANNOUNCE and RECORD) and write its JPEG images to OUT",
    )
    parser.add_argument(
        "--port", type=int, default=8554, help="TCP port to listen on, 0 for any (default 8554)"
    )
    parser.add_argument(
        "--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--fps", type=int, default=25, help="frames per second (default 25)")
    parser.add_argument(
        "--tcp-only",
        action="store_true",
        help="RTP over TCP (interleaved) only: a SETUP for UDP is answered 461",
    )
    parser.add_argument(
        "--shared",
        action="store_true",
        help="one pipeline for every client (factory.set_shared), instead of one per client",
    )
    parser.add_argument(
        "--name", help="mount point, without the leading slash (default: the clip's file name)"
    )
    parser.add_argument(
        "--no-loop", action="store_true", help="end at the end of the clip instead of looping"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=1024,
        help="listen backlog (default 1024; GstRTSPServer's own default, 5, makes a fast "
        "ramp of connections wait for SYN retransmissions)",
    )
    parser.add_argument(
        "--credentials",
        metavar="USER:PASSWORD",
        help="require these credentials (RTSP authentication; Basic unless --digest)",
    )
    parser.add_argument(
        "--digest", action="store_true", help="with --credentials: Digest instead of Basic"
    )
    parser.add_argument(
        "--report-clients",
        action="store_true",
        help="print a line 'client-connected' on stdout for each RTSP connection (for tests)",
    )
    args = parser.parse_args()
    if args.credentials and ":" not in args.credentials:
        parser.error("--credentials takes USER:PASSWORD")
    if args.fps <= 0:
        parser.error("--fps must be positive")
    if [args.clip, args.launch, args.record].count(None) != 2:
        parser.error("give a clip, --launch DESCRIPTION or --record OUT")
    return args


def require_credentials(server, factory, credentials, digest):
    """Only USER:PASSWORD may play the clip (Basic or Digest authentication)."""
    user, password = credentials.split(":", 1)
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
    if digest:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(user, password, token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    permissions = GstRtspServer.RTSPPermissions()
    permissions.add_role_from_structure(
        Gst.Structure.new_from_string(
            "viewer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )
    factory.set_permissions(permissions)


def quoted(path):
    """A path inside a double-quoted gst-launch property value."""
    return path.replace("\\", "\\\\").replace('"', '\\"')


def main():
    args = parse_args()
    Gst.init(None)
    record = args.record is not None
    if record:
        name = args.name or "record"
        location = quoted(args.record)
        launch = (
            "( rtpjpegdepay name=depay0 ! jpegparse "
            f'! filesink buffer-mode=unbuffered location="{location}" )'
        )
        shared = False
    elif args.launch:
        name = args.name or "live"
        launch = f"( {args.launch} ! rtpjpegpay name=pay0 pt=26 )"
        shared = True
    else:
        if Gst.ElementFactory.find("mjpegfilesrc") is None:
            sys.exit(
                "gst-rtsp-server.py: mjpegfilesrc not found: set GST_PLUGIN_PATH to the "
                "directory holding libgstmjpegrtp.so (for example target/release)"
            )
        clip = os.path.abspath(args.clip)
        if not os.path.isfile(clip):
            sys.exit(f"gst-rtsp-server.py: {clip}: no such file")
        name = args.name or os.path.basename(clip)
        location = quoted(clip)
        loop = "false" if args.no_loop else "true"
        launch = (
            f'( mjpegfilesrc location="{location}" framerate={args.fps}/1 loop={loop} '
            f"! rtpjpegpay name=pay0 pt=26 )"
        )
        shared = args.shared

    server = GstRtspServer.RTSPServer()
    server.set_address(args.bind)
    server.set_service(str(args.port))
    server.set_backlog(args.backlog)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(shared)
    if record:
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    if args.tcp_only:
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    if args.credentials:
        require_credentials(server, factory, args.credentials, args.digest)
    server.get_mount_points().add_factory("/" + name, factory)
    if args.report_clients:
        server.connect(
            "client-connected", lambda _server, _client: print("client-connected", flush=True)
        )
    if server.attach(None) == 0:
        sys.exit(f"gst-rtsp-server.py: cannot listen on {args.bind}:{args.port}")

    main_loop = GLib.MainLoop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, main_loop.quit)
    print(f"rtsp://{args.bind}:{server.get_bound_port()}/{name}", flush=True)
    main_loop.run()


if __name__ == "__main__":
    main()
