#!/usr/bin/python3
"""Serves one live Motion-JPEG source over HTTP the way a GStreamer user usually does:
multipartmux into multisocketsink, with a small accept loop in front.

The anchor of the HTTP MJPEG fan-out benchmark (tests/benches/http_mjpeg.rs). The pipeline

    SOURCE ! multipartmux name=mux ! multisocketsink name=sink

runs from the start. A Python accept loop reads each request's head, answers a GET with

    HTTP/1.0 200 OK
    Content-Type: multipart/x-mixed-replace; boundary=<multipartmux's boundary>

and hands the socket to multisocketsink (the "add" action); the body then runs until
either side closes. Any other request gets a 404 or 405 and is closed. The URL
(http://BIND:PORT/PATH) is printed on stdout when the pipeline plays.

multisocketsink is set up for live viewers: sync=false (the source is live), a new viewer
starts with the newest whole part (sync-method=latest-keyframe: multipartmux marks each
part's header buffer as the keyframe, the JPEG and the CRLF after it as delta units), and a
viewer more than --soft-max-ms behind is moved to the newest part (recover-policy=keyframe,
unit-format=time) so that a slow viewer neither stalls the others nor queues without end;
one more than --max-ms behind is dropped.

With --tcp the sink is tcpserversink instead (same settings): no HTTP at all, the body
starts with the multipart data (the URL printed is tcp://BIND:PORT).

Needs Debian's python3-gi and GStreamer's good plugins; run it with /usr/bin/python3.
"""

import argparse
import resource
import selectors
import signal
import socket
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Gst  # noqa: E402

DEFAULT_SOURCE = (
    "videotestsrc is-live=true ! video/x-raw,format=I420,width=640,height=480,"
    "framerate=25/1 ! jpegenc"
)
# A request head longer than this is refused (the same bound as the server under test).
MAX_HEAD = 16 * 1024


def parse_args():
    parser = argparse.ArgumentParser(
        description="Serve a live JPEG source as multipart/x-mixed-replace with "
        "multipartmux ! multisocketsink (or tcpserversink)."
    )
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        metavar="DESCRIPTION",
        help="a live pipeline whose output is JPEG (default: %(default)s)",
    )
    parser.add_argument("--bind", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port, 0 for any (default)")
    parser.add_argument(
        "--path", default="/stream.mjpg", help="the stream's path (default /stream.mjpg)"
    )
    parser.add_argument(
        "--boundary",
        help="multipartmux's boundary (default: multipartmux's own, ThisRandomString)",
    )
    parser.add_argument(
        "--tcp",
        action="store_true",
        help="tcpserversink instead: raw multipart data, no HTTP",
    )
    parser.add_argument(
        "--soft-max-ms",
        type=int,
        default=80,
        help="a viewer this far behind the newest part is moved to it (default 80, two "
        "frame intervals at 25/s)",
    )
    parser.add_argument(
        "--max-ms",
        type=int,
        default=5000,
        help="a viewer this far behind is dropped (default 5000)",
    )
    parser.add_argument("--backlog", type=int, default=1024, help="listen backlog")
    return parser.parse_args()


def raise_file_limit():
    """Every viewer holds a socket: lift the soft open-file limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as e:
            print(f"gst-mjpeg-http.py: open-file limit stays {soft}: {e}", file=sys.stderr)


def configure_sink(sink, args):
    sink.set_property("sync", False)
    sink.set_property("sync-method", "latest-keyframe")
    sink.set_property("recover-policy", "keyframe")
    sink.set_property("unit-format", Gst.Format.TIME)
    sink.set_property("units-soft-max", args.soft_max_ms * Gst.MSECOND)
    sink.set_property("units-max", args.max_ms * Gst.MSECOND)


class HttpFront:
    """Accepts connections, reads each request head (without blocking on a slow client)
    and hands the viewers' sockets to multisocketsink."""

    def __init__(self, listener, sink, path, boundary):
        self.listener = listener
        self.sink = sink
        self.path = path
        self.head = (
            "HTTP/1.0 200 OK\r\n"
            f"Content-Type: multipart/x-mixed-replace; boundary={boundary}\r\n"
            "Cache-Control: no-cache\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        self.selector = selectors.DefaultSelector()
        self.pending = {}
        # The GSocket of each viewer, by fd, until multisocketsink lets it go.
        self.viewers = {}
        self.lock = threading.Lock()
        sink.connect("client-socket-removed", self.on_removed)

    def on_removed(self, _sink, gsocket):
        with self.lock:
            self.viewers.pop(gsocket.get_fd(), None)
        gsocket.close()

    def run(self):
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is self.listener:
                    self.accept()
                else:
                    self.read(key.fileobj)

    def accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                print(f"gst-mjpeg-http.py: accept: {e}", file=sys.stderr)
                return
            conn.setblocking(False)
            self.pending[conn] = b""
            self.selector.register(conn, selectors.EVENT_READ)

    def close(self, conn):
        self.selector.unregister(conn)
        self.pending.pop(conn, None)
        conn.close()

    def reply(self, conn, status, extra=""):
        try:
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(f"HTTP/1.0 {status}\r\n{extra}Content-Length: 0\r\n\r\n".encode())
        except OSError:
            pass
        self.close(conn)

    def read(self, conn):
        try:
            data = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.close(conn)
            return
        head = self.pending[conn] + data
        if b"\r\n\r\n" not in head:
            if len(head) > MAX_HEAD:
                self.reply(conn, "431 Request Header Fields Too Large")
            else:
                self.pending[conn] = head
            return
        request = head.split(b"\r\n", 1)[0].decode("latin-1").split()
        if len(request) < 2:
            self.reply(conn, "400 Bad Request")
            return
        method, target = request[0], request[1].split("?", 1)[0]
        if target != self.path:
            self.reply(conn, "404 Not Found")
            return
        if method != "GET":
            self.reply(conn, "405 Method Not Allowed", "Allow: GET\r\n")
            return
        self.selector.unregister(conn)
        del self.pending[conn]
        try:
            conn.setblocking(True)
            conn.settimeout(1.0)
            conn.sendall(self.head)
        except OSError:
            conn.close()
            return
        conn.setblocking(False)
        gsocket = Gio.Socket.new_from_fd(conn.detach())
        with self.lock:
            self.viewers[gsocket.get_fd()] = gsocket
        self.sink.emit("add", gsocket)


def main():
    args = parse_args()
    raise_file_limit()
    Gst.init(None)
    mux = "multipartmux name=mux"
    if args.boundary:
        mux += f" boundary={args.boundary}"
    sink = "tcpserversink name=sink" if args.tcp else "multisocketsink name=sink"
    pipeline = Gst.parse_launch(f"{args.source} ! {mux} ! {sink}")
    sink = pipeline.get_by_name("sink")
    configure_sink(sink, args)
    boundary = pipeline.get_by_name("mux").get_property("boundary")

    listener = None
    if args.tcp:
        sink.set_property("host", args.bind)
        sink.set_property("port", args.port)
    else:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.bind, args.port))
        listener.listen(args.backlog)

    main_loop = GLib.MainLoop()
    bus = pipeline.get_bus()
    bus.add_signal_watch()

    failed = []

    def on_error(_bus, message):
        err, debug = message.parse_error()
        failed.append(err.message)
        print(f"gst-mjpeg-http.py: {err.message} ({debug})", file=sys.stderr)
        main_loop.quit()

    bus.connect("message::error", on_error)
    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, main_loop.quit)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        sys.exit("gst-mjpeg-http.py: the pipeline does not play")
    if args.tcp:
        # The port is bound once the sink is ready.
        pipeline.get_state(5 * Gst.SECOND)
        print(f"tcp://{args.bind}:{sink.get_property('current-port')}", flush=True)
    else:
        front = HttpFront(listener, sink, args.path, boundary)
        threading.Thread(target=front.run, daemon=True).start()
        print(f"http://{args.bind}:{listener.getsockname()[1]}{args.path}", flush=True)
    main_loop.run()
    pipeline.set_state(Gst.State.NULL)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
