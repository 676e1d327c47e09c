#!/usr/bin/env python3
"""N RTSP viewers over TCP interleaved, plain (rtsp://) or TLS (rtsps://), on one asyncio
loop: each DESCRIBEs, SETUPs RTP/AVP/TCP, PLAYs and reads for --duration seconds. Prints
one JSON line: viewers that played, bytes and RTP packets received, and the server's CPU
time over the window (from /proc, with --server-pid).

What TLS costs the server per viewer: run it twice against the same clip, once on the
rtsp:// URL and once on the rtsps:// URL, and compare cpu_pct. TLS certificates are not
checked (a self-signed test certificate).

    interleaved-load.py --viewers 100 --duration 20 --server-pid PID rtsps://127.0.0.1:8322/sample.Mjpeg
"""

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from urllib.parse import urlsplit


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime, fields 14 and 15 (1-based) of the whole line.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Viewer:
    def __init__(self):
        self.bytes = 0
        self.packets = 0
        self.played = False
        self.error = None


async def read_reply(reader, buf):
    """The next reply; interleaved data before it (PLAY's first packets can come before
    PLAY's reply) is skipped."""
    while True:
        while len(buf) >= 4 and buf[0] == 0x24:
            size = int.from_bytes(buf[2:4], "big")
            if len(buf) < 4 + size:
                break
            del buf[: 4 + size]
        if buf[:1] not in (b"", b"$") and b"\r\n\r\n" in buf:
            break
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    text = head.decode("latin-1")
    length = 0
    for line in text.split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    while len(rest) < length:
        chunk = await reader.read(65536)
        if not chunk:
            raise ConnectionError("closed")
        rest += chunk
    return text, rest[:length], bytearray(rest[length:])


async def view(url, viewer, until, tls):
    parts = urlsplit(url)
    port = parts.port or (322 if parts.scheme == "rtsps" else 554)
    reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=tls)
    buf = bytearray()
    cseq = 0
    session = None

    async def request(method, target, headers=""):
        nonlocal cseq, buf
        cseq += 1
        extra = f"Session: {session}\r\n" if session else ""
        writer.write(
            f"{method} {target} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}{headers}\r\n".encode()
        )
        text, body, buf = await read_reply(reader, buf)
        if " 200 " not in text.split("\r\n", 1)[0] + " ":
            raise RuntimeError(f"{method}: {text.splitlines()[0]}")
        return text, body

    await request("DESCRIBE", url, "Accept: application/sdp\r\n")
    text, _ = await request(
        "SETUP", url + "/streamid=0", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"
    )
    for line in text.split("\r\n"):
        if line.lower().startswith("session:"):
            session = line.split(":", 1)[1].split(";")[0].strip()
    await request("PLAY", url, "Range: npt=0-\r\n")
    viewer.played = True
    # Interleaved frames: $, channel, 16-bit length, data.
    pending = buf
    while time.monotonic() < until:
        while len(pending) >= 4 and pending[0] == 0x24:
            size = int.from_bytes(pending[2:4], "big")
            if len(pending) < 4 + size:
                break
            if pending[1] == 0:
                viewer.packets += 1
            del pending[: 4 + size]
        if pending and pending[0] != 0x24:
            # A reply (to nothing we sent): drop up to the next frame.
            at = pending.find(b"$")
            del pending[: at if at >= 0 else len(pending)]
        chunk = await asyncio.wait_for(reader.read(262144), max(0.1, until - time.monotonic()))
        if not chunk:
            raise ConnectionError("closed while playing")
        viewer.bytes += len(chunk)
        pending += chunk
    writer.close()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--ramp", type=float, default=2.0, help="seconds to open them over")
    ap.add_argument("--server-pid", type=int)
    ap.add_argument("url")
    args = ap.parse_args()
    tls = None
    if args.url.startswith("rtsps://"):
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    viewers = [Viewer() for _ in range(args.viewers)]
    start = time.monotonic()
    settle = start + args.ramp + 1.0
    until = settle + args.duration

    async def one(i, v):
        await asyncio.sleep(args.ramp * i / max(1, args.viewers))
        try:
            await view(args.url, v, until, tls)
        except Exception as e:  # noqa: BLE001 - counted and reported
            v.error = repr(e)

    tasks = [asyncio.create_task(one(i, v)) for i, v in enumerate(viewers)]
    await asyncio.sleep(max(0, settle - time.monotonic()))
    cpu0 = cpu_seconds(args.server_pid) if args.server_pid else None
    bytes0 = sum(v.bytes for v in viewers)
    packets0 = sum(v.packets for v in viewers)
    t0 = time.monotonic()
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(args.server_pid) - cpu0 if args.server_pid else None
    out = {
        "url": args.url,
        "viewers": args.viewers,
        "played": sum(v.played for v in viewers),
        "errors": sorted({v.error for v in viewers if v.error})[:5],
        "window_s": round(elapsed, 2),
        "mbit_s": round((sum(v.bytes for v in viewers) - bytes0) * 8 / elapsed / 1e6, 1),
        "rtp_packets_s": round((sum(v.packets for v in viewers) - packets0) / elapsed),
        "server_cpu_pct": None if cpu is None else round(100 * cpu / elapsed, 1),
    }
    print(json.dumps(out))
    return 0 if out["played"] == args.viewers and not out["errors"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
