#!/usr/bin/env python3
"""Receives an RTP/JPEG stream and prints what the network did to it.

rtcplossmonitor counts every RTP packet per RFC 3550: this prints its loss-report bus
messages as they come (once a second by default) and, at the end, its stats property: per
source SSRC, packets expected, received and lost, the loss rate and the jitter.

    udpsrc port=5000 caps="application/x-rtp,media=video,encoding-name=JPEG,..." \\
        ! rtcplossmonitor ! rtpmjpegdepay ! jpegdec ! fakesink

or, for an rtsp:// URL, rtspsrc in place of udpsrc (its jitter buffer comes first, so the
jitter shown is what is left after it). Send with udp-send.sh (here or on another
machine); Ctrl-C ends the run with the final figures.

Usage: pipelines/loss-report.py [--port PORT] [--url rtsp://...] [--duration S]
           [--frames N] [--idle S] [--interval MS] [--display]

Needs PyGObject and GStreamer's Python overrides (Debian: python3-gi python3-gst-1.0, which
scripts/bootstrap.sh installs): the per-source statistics are a GstValueArray, which
PyGObject cannot read without them.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROG = Path(__file__).name
CAPS = "application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26"

try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GLib", "2.0")
    from gi.repository import GLib, Gst
except (ImportError, ValueError):
    # Debian's python3-gi serves the system interpreter only: a python3 from pyenv or a
    # virtualenv does not see it.
    system = "/usr/bin/python3"
    if (
        os.path.exists(system)
        and os.path.realpath(sys.executable) != os.path.realpath(system)
        and not os.environ.get("LOSS_REPORT_REEXEC")
    ):
        os.environ["LOSS_REPORT_REEXEC"] = "1"
        os.execv(system, [system, *sys.argv])
    sys.exit(f"{PROG}: PyGObject is missing: install python3-gi and python3-gst-1.0")


def find_plugin():
    """Like common.sh: a GST_PLUGIN_PATH holding the plugin as it is, else this checkout's
    newest build (target/release or target/debug), else an installed plugin."""
    path = [p for p in os.environ.get("GST_PLUGIN_PATH", "").split(":") if p]
    if any((Path(p) / "libgstmjpegrtp.so").exists() for p in path):
        return
    builds = [ROOT / "target" / d / "libgstmjpegrtp.so" for d in ("release", "debug")]
    builds = [b for b in builds if b.exists()]
    if builds:
        newest = max(builds, key=lambda b: b.stat().st_mtime)
        os.environ["GST_PLUGIN_PATH"] = ":".join([str(newest.parent), *path])


def args():
    p = argparse.ArgumentParser(
        description="Receive RTP/JPEG and print rtcplossmonitor's loss reports and final "
        "statistics."
    )
    p.add_argument("--port", type=int, default=5000, help="UDP port for RTP (default 5000)")
    p.add_argument("--address", default="0.0.0.0", help="address to listen on (default all)")
    p.add_argument("--url", help="play this rtsp:// URL with rtspsrc instead of UDP")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--frames", type=int, help="stop after this many decoded frames")
    p.add_argument(
        "--idle",
        type=float,
        help="stop when no RTP arrived for this many seconds, once the stream started (UDP)",
    )
    p.add_argument(
        "--interval", type=int, default=1000, help="ms between loss reports (default 1000)"
    )
    p.add_argument("--display", action="store_true", help="show the video (autovideosink)")
    a = p.parse_args()
    if a.url and not a.url.startswith(("rtsp://", "rtsps://")):
        p.error(f"not an rtsp:// URL: {a.url}")
    for name in ("duration", "frames", "idle"):
        value = getattr(a, name)
        if value is not None and value <= 0:
            p.error(f"--{name} must be positive")
    if a.interval <= 0:
        p.error("--interval must be positive")
    return a


def value(s, field, default=None):
    return s.get_value(field) if s.has_field(field) else default


def sources(stats):
    """The per-SSRC structures of a stats structure: its `sources` GstValueArray, read
    through the Gst.ValueArray override."""
    array = value(stats, "sources")
    if array is None:
        return []
    if not isinstance(array, Gst.ValueArray):
        raise TypeError(f"sources is {type(array).__name__}, not Gst.ValueArray")
    return [array[i] for i in range(len(array))]


def describe(src):
    """One source's figures: ssrc=0x... expected=E received=R lost=L loss=P% jitter=J ms."""
    ssrc = f"ssrc=0x{value(src, 'ssrc', 0):08x}"
    if not src.has_field("packets-expected"):
        return f"{ssrc} no RTP yet"
    return (
        f"{ssrc} expected={value(src, 'packets-expected')} "
        f"received={value(src, 'packets-received')} lost={value(src, 'packets-lost')} "
        f"loss={value(src, 'loss-percent', 0.0):.2f}% "
        f"jitter={value(src, 'jitter-ms', 0.0):.2f}ms"
    )


class Receiver:
    def __init__(self, a):
        self.a = a
        self.loop = GLib.MainLoop()
        self.frames = 0
        self.ending = False
        self.status = 0
        if a.url:
            source = f'rtspsrc location="{a.url}" latency=200'
        else:
            timeout = f" timeout={int(a.idle * 1e9)}" if a.idle else ""
            source = f'udpsrc address={a.address} port={a.port}{timeout} caps="{CAPS}"'
        sink = "videoconvert ! autovideosink" if a.display else "fakesink sync=false"
        self.pipeline = Gst.parse_launch(
            f"{source} ! rtcplossmonitor name=monitor interval={a.interval} "
            f"! rtpmjpegdepay ! jpegdec name=dec ! {sink}"
        )
        self.monitor = self.pipeline.get_by_name("monitor")
        self.t0 = GLib.get_monotonic_time()
        if a.frames:
            self.pipeline.get_by_name("dec").get_static_pad("src").add_probe(
                Gst.PadProbeType.BUFFER, self.on_frame
            )
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_message)

    def run(self):
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            self.pipeline.set_state(Gst.State.NULL)
            # The reason is on the bus.
            msg = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            reason = msg.parse_error()[0].message if msg else "the pipeline did not start"
            print(f"{PROG}: {reason}", file=sys.stderr)
            return 1
        where = f"playing {self.a.url}" if self.a.url else f"listening on UDP port {self.a.port}"
        print(f"{PROG}: {where}", file=sys.stderr, flush=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, self.on_signal)
        if self.a.duration:
            GLib.timeout_add(int(self.a.duration * 1000), self.stop)
        self.loop.run()
        self.print_final()
        self.pipeline.set_state(Gst.State.NULL)
        return self.status

    def stop(self):
        """Ends the stream with EOS, so that the last figures are complete."""
        if not self.ending:
            self.ending = True
            self.pipeline.send_event(Gst.Event.new_eos())
            # A source that cannot end (no data ever came) does not hold the run.
            GLib.timeout_add(3000, self.loop.quit)
        return False

    def on_signal(self):
        if self.ending:
            self.loop.quit()
        else:
            print(f"{PROG}: stopping", file=sys.stderr, flush=True)
            self.stop()
        return True

    def on_frame(self, _pad, _info):
        self.frames += 1
        if self.frames == self.a.frames:
            GLib.idle_add(self.stop)
        return Gst.PadProbeReturn.OK

    def on_message(self, _bus, msg):
        if msg.type == Gst.MessageType.EOS:
            self.loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            name = msg.src.get_name()
            print(f"{PROG}: error from {name}: {err.message} ({debug})", file=sys.stderr)
            self.status = 1
            self.loop.quit()
        elif msg.type == Gst.MessageType.WARNING:
            print(f"{PROG}: warning: {msg.parse_warning()[0].message}", file=sys.stderr)
        elif msg.type == Gst.MessageType.ELEMENT and msg.src == self.monitor:
            s = msg.get_structure()
            if s.get_name() == "loss-report":
                self.print_report(s)
            elif s.get_name() == "rtcp-bye":
                ssrc, reason = value(s, "ssrc", 0), value(s, "reason", "")
                sender = value(s, "sender", False)
                print(f"bye ssrc=0x{ssrc:08x} sender={str(sender).lower()} reason={reason!r}", flush=True)
        elif msg.type == Gst.MessageType.ELEMENT and msg.has_name("GstUDPSrcTimeout"):
            stats = self.monitor.get_property("stats")
            if any(src.has_field("packets-expected") for src in sources(stats)):
                print(f"{PROG}: no RTP for {self.a.idle} s, stopping", file=sys.stderr, flush=True)
                self.stop()

    def print_report(self, s):
        t = (GLib.get_monotonic_time() - self.t0) / 1e6
        for src in sources(s):
            interval = value(src, "fraction-lost", 0) * 100 / 256
            line = f"loss-report t={t:.1f}s {describe(src)} interval-loss={interval:.2f}%"
            print(line, flush=True)

    def print_final(self):
        srcs = sources(self.monitor.get_property("stats"))
        if not srcs:
            print("final: no RTP received", flush=True)
        for src in srcs:
            print(f"final {describe(src)}", flush=True)
            if src.has_field("packets-expected"):
                print(f"RTP packet loss rate: {value(src, 'loss-percent', 0.0):.2f}%", flush=True)


def main():
    a = args()
    find_plugin()
    Gst.init(None)
    if not hasattr(Gst, "ValueArray"):
        sys.exit(
            f"{PROG}: GStreamer's Python overrides (Gst.ValueArray) are missing: "
            "install python3-gst-1.0"
        )
    if Gst.ElementFactory.find("rtcplossmonitor") is None:
        sys.exit(
            f"{PROG}: the mjpegrtp plugin (rtcplossmonitor) is not found: run 'make' or "
            "'make install', or point GST_PLUGIN_PATH at the directory holding libgstmjpegrtp.so"
        )
    return Receiver(a).run()


if __name__ == "__main__":
    sys.exit(main())
