#!/usr/bin/env python3
"""Checks the server's status page in headless Chromium, over the DevTools protocol.

Run by tests/browser.rs with a server that has a live path showing a solid colour, a
real RTSP viewer on it, and a clip with a hostile name. Exits non-zero, saying why, when
the page is wrong. Chromium is always stopped (its whole process group), also on failure.
"""

import argparse
import base64
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import cv2
import numpy as np
import websocket

DEADLINE_S = 20.0


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def adopt_orphans():
    """Chromium's helper processes outlive their parent for a moment: they are reparented
    to this driver rather than to init, so that it can wait for their end."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent():
    """In the child before exec: SIGKILL when this driver dies, even if it is killed."""
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Chromium:
    """Headless Chromium in a process group of its own, killed as a group."""

    def __init__(self, binary, profile):
        self.stderr_lines = []
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--mute-audio",
                "--window-size=1280,900",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.ws_url = None
        found = threading.Event()

        def read_stderr():
            # Read to the end so Chromium never blocks on a full pipe.
            for line in self.proc.stderr:
                self.stderr_lines.append(line.rstrip())
                m = re.search(r"DevTools listening on (ws://\S+)", line)
                if m and self.ws_url is None:
                    self.ws_url = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        found.wait(30)
        if self.ws_url is None:
            raise CheckFailed(
                "chromium printed no 'DevTools listening on ws://...' line; its stderr:\n"
                + "\n".join(self.stderr_lines[-30:])
            )

    def http_base(self):
        m = re.match(r"ws://([^/]+)/", self.ws_url)
        return f"http://{m.group(1)}"

    def stop(self):
        # SIGTERM first: Chromium then ends and reaps its own helper processes; whatever
        # is left of its group after a few seconds is killed.
        try:
            self.proc.terminate()
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        # Its helpers were reparented to this driver (a subreaper): reap them all.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if os.waitpid(-1, os.WNOHANG) == (0, 0):
                    time.sleep(0.05)
            except ChildProcessError:
                break


class DevTools:
    """A minimal DevTools protocol client on one page target."""

    def __init__(self, ws_url):
        # Chromium refuses websocket handshakes with an Origin it does not allow.
        self.ws = websocket.create_connection(ws_url, timeout=15, suppress_origin=True)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") != msg_id:
                continue  # an event
            if "error" in reply:
                raise CheckFailed(f"{method}: {reply['error']}")
            return reply["result"]

    def eval(self, expression):
        result = self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            raise CheckFailed(f"JavaScript failed: {result['exceptionDetails']}\n{expression}")
        return result["result"].get("value")

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass


def wait_for(what, probe, done, timeout=DEADLINE_S):
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = probe()
        if done(value):
            return value
        time.sleep(0.1)
    raise CheckFailed(f"{what}: not within {timeout} s; last seen: {value!r}")


def screenshot(tools, full_page=False):
    params = {"format": "png"}
    if full_page:
        size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        params["captureBeyondViewport"] = True
        params["clip"] = {
            "x": 0,
            "y": 0,
            "width": size["width"],
            "height": size["height"],
            "scale": 1,
        }
    png = base64.b64decode(tools.call("Page.captureScreenshot", **params)["data"])
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    check(image is not None, "the screenshot is not a PNG cv2 can read")
    return png, image


def check_not_blank(image, label):
    std = float(image.std())
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    check(std > 20.0, f"{label} screenshot looks blank: pixel std {std:.1f}")
    check(colours > 1, f"{label} screenshot has one colour")
    print(f"{label} screenshot: {image.shape[1]}x{image.shape[0]}, std {std:.1f}, {colours} colours")


def main():
    started = time.monotonic()
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the status page")
    ap.add_argument("--path", required=True, help="the live path's name")
    ap.add_argument("--session", required=True, help="the RTSP viewer's session id")
    ap.add_argument("--client", required=True, help="its client address per the server")
    ap.add_argument("--colour", required=True, help="the live picture's colour, RRGGBB")
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--hostile", required=True, help="a path name full of markup")
    ap.add_argument(
        "--push-url", help="a URL the live path is pushed to: the page shows it, recording"
    )
    ap.add_argument("--screenshots", help="a folder to save the screenshots in")
    args = ap.parse_args()

    binary = shutil.which("chromium")
    check(
        binary is not None,
        "chromium is not installed: `make test` runs the bootstrap (scripts/bootstrap.sh), which installs it",
    )
    expected = tuple(int(args.colour[i : i + 2], 16) for i in (0, 2, 4))

    adopt_orphans()
    with tempfile.TemporaryDirectory(prefix="status-page-chromium-") as profile:
        browser = Chromium(binary, profile)
        tools = None
        try:
            with urllib.request.urlopen(browser.http_base() + "/json/list", timeout=10) as r:
                targets = json.load(r)
            page = next(t for t in targets if t.get("type") == "page")
            tools = DevTools(page["webSocketDebuggerUrl"])
            print(f"chromium up after {time.monotonic() - started:.1f} s")
            run_checks(tools, args, expected)
        finally:
            if tools is not None:
                tools.close()
            browser.stop()
    print(f"driver done in {time.monotonic() - started:.1f} s")


def run_checks(tools, args, expected):
    js = json.dumps  # values into JavaScript source, quoted
    tools.call("Page.enable")
    tools.call("Runtime.enable")
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=1280,
        height=900,
        deviceScaleFactor=1,
        mobile=False,
    )
    # Script errors and CSP violations on the page, recorded from before its own script.
    tools.call(
        "Page.addScriptToEvaluateOnNewDocument",
        source="""
            window.__pageProblems = [];
            addEventListener('securitypolicyviolation', (e) =>
                __pageProblems.push('CSP ' + e.violatedDirective + ': ' + e.blockedURI));
            addEventListener('error', (e) => __pageProblems.push('error: ' + e.message));
            addEventListener('unhandledrejection', (e) =>
                __pageProblems.push('unhandled rejection: ' + e.reason));
        """,
    )
    tools.call("Page.navigate", url=args.url)
    wait_for(
        "the page loads",
        lambda: tools.eval("document.readyState + ' ' + location.href"),
        lambda v: v == "complete " + args.url,
    )
    tools.eval("window.__statusPageMarker = 'not reloaded'; true")

    card = f"document.querySelector('[data-path=' + CSS.escape({js(args.path)}) + ']')"
    thumb = f"{card}?.querySelector('img.thumb')"
    row = f"document.querySelector('[data-session=' + CSS.escape({js(args.session)}) + ']')"

    # The path, its thumbnail loaded, and the viewer's session with its address.
    state = wait_for(
        "the path's thumbnail and the viewer's session on the page",
        lambda: tools.eval(
            f"""(() => {{
                const img = {thumb};
                return {{
                    card: !!{card},
                    loaded: !!img && img.complete && !img.hidden && img.naturalWidth > 0,
                    width: img ? img.naturalWidth : null,
                    height: img ? img.naturalHeight : null,
                    client: {row}?.querySelector('.client')?.textContent ?? null,
                }};
            }})()"""
        ),
        lambda v: v["card"] and v["loaded"] and v["client"] is not None,
    )
    check(
        (state["width"], state["height"]) == (args.width, args.height),
        f"thumbnail is {state['width']}x{state['height']}, not {args.width}x{args.height}",
    )
    check(
        state["client"] == args.client,
        f"session {args.session} shows client {state['client']!r}, the server says {args.client!r}",
    )
    print(f"path {args.path}: thumbnail {state['width']}x{state['height']}; session client {state['client']}")

    # The thumbnail shows the stream: its centre pixel is the source's colour.
    centre = tools.eval(
        f"""(() => {{
            const img = {thumb};
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth;
            canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            ctx.drawImage(img, 0, 0);
            return Array.from(ctx.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data);
        }})()"""
    )
    diff = max(abs(a - b) for a, b in zip(centre[:3], expected))
    check(
        diff <= 24,
        f"thumbnail centre is rgb{tuple(centre[:3])}, the source is rgb{expected}",
    )
    print(f"thumbnail centre rgb{tuple(centre[:3])} (source rgb{expected}, off by {diff})")

    # The path's push: its URL (as text), recording, with frames sent.
    if args.push_url:
        push = wait_for(
            "the path's push recording on its card",
            lambda: tools.eval(
                f"""(() => {{
                    const li = {card}?.querySelector(
                        'li.push[data-push-url=' + CSS.escape({js(args.push_url)}) + ']');
                    return li ? {{ state: li.dataset.pushState, text: li.textContent,
                                   shown: !li.parentElement.hidden }} : null;
                }})()"""
            ),
            lambda v: v is not None and v["state"] == "recording" and v["shown"],
        )
        check(
            args.push_url in push["text"] and re.search(r"[1-9][\d,]* frames sent", push["text"]),
            f"the push reads {push['text']!r}",
        )
        print(f"push shown: {push['text']}")

    # The stream plays in a plain <img>: Chromium decodes its parts (the picture is the
    # source's), and the server sees it take them at the source's rate as an HTTP viewer;
    # once the <img> is gone, so is the viewer.
    def http_viewers():
        with urllib.request.urlopen(args.url.rstrip("/") + "/api/sessions", timeout=5) as r:
            sessions = json.load(r)["sessions"]
        return [s for s in sessions if s["transport"] == "http" and s["path"] == args.path]

    check(http_viewers() == [], "an HTTP viewer before the <img> was made")
    stream_url = "/" + urllib.parse.quote(args.path) + "/stream.mjpg"
    tools.eval(
        f"""(() => {{
            const img = new Image();
            img.id = '__streamCheck';
            img.src = {js(stream_url)};
            document.body.appendChild(img);
            return true;
        }})()"""
    )
    played = wait_for(
        "the <img> of the MJPEG stream shows a frame",
        lambda: tools.eval(
            f"""(() => {{
                const img = document.getElementById('__streamCheck');
                if (!img.complete || img.naturalWidth === 0) return null;
                const canvas = document.createElement('canvas');
                canvas.width = img.naturalWidth;
                canvas.height = img.naturalHeight;
                const ctx = canvas.getContext('2d');
                ctx.drawImage(img, 0, 0);
                return {{
                    width: img.naturalWidth,
                    height: img.naturalHeight,
                    centre: Array.from(ctx.getImageData(canvas.width >> 1, canvas.height >> 1, 1, 1).data),
                }};
            }})()"""
        ),
        lambda v: v is not None,
    )
    check(
        (played["width"], played["height"]) == (args.width, args.height),
        f"the <img> stream is {played['width']}x{played['height']}",
    )
    diff = max(abs(a - b) for a, b in zip(played["centre"][:3], expected))
    check(diff <= 24, f"the <img> stream's centre is rgb{tuple(played['centre'][:3])}")
    first = http_viewers()
    check(len(first) == 1, f"the server lists {len(first)} HTTP viewers for the <img>")
    time.sleep(2.0)
    later = http_viewers()
    check(len(later) == 1, f"the <img>'s viewer went away: {later}")
    sent = later[0]["frames_sent"] - first[0]["frames_sent"]
    check(sent >= 40, f"Chromium took {sent} frames in 2 s from a 25 fps source")
    tools.eval("document.getElementById('__streamCheck').remove(); window.stop(); true")
    wait_for(
        "the <img>'s HTTP viewer to end once it is gone",
        lambda: len(http_viewers()),
        lambda v: v == 0,
        timeout=10,
    )
    print(f"<img> stream: {played['width']}x{played['height']}, {sent} frames in 2 s, viewer gone after")

    # The hostile name is shown as text, and nothing it holds became markup.
    hostile = tools.eval(
        f"""(() => {{
            const card = document.querySelector('[data-path=' + CSS.escape({js(args.hostile)}) + ']');
            return {{
                shown: card ? card.querySelector('.name').textContent : null,
                injected: document.querySelectorAll('#injected, [data-path] i').length,
            }};
        }})()"""
    )
    check(
        hostile["shown"] == args.hostile,
        f"the clip {args.hostile!r} is shown as {hostile['shown']!r}",
    )
    check(hostile["injected"] == 0, "a path name became markup on the page")

    # The page updates itself without reloading.
    read_live = f"""(() => ({{
        uptime: document.getElementById('uptime').textContent,
        duration: {row}?.querySelector('.duration')?.textContent ?? null,
        thumb: {thumb}.src,
        marker: window.__statusPageMarker ?? null,
        navigations: performance.getEntriesByType('navigation').length,
        origin: performance.timeOrigin,
    }}))()"""
    before = tools.eval(read_live)
    time.sleep(1.5)
    after = wait_for(
        "the uptime and the thumbnail change",
        lambda: tools.eval(read_live),
        lambda v: v["uptime"] != before["uptime"] and v["thumb"] != before["thumb"],
        timeout=5,
    )
    check(after["marker"] == "not reloaded", "the page reloaded (its JavaScript state is gone)")
    check(
        after["origin"] == before["origin"] and after["navigations"] == 1,
        f"the page navigated again: {before} -> {after}",
    )
    check(
        after["duration"] != before["duration"],
        f"the session's duration stayed {before['duration']!r}",
    )
    print(
        f"updated in place: uptime {before['uptime']} -> {after['uptime']}, "
        f"session duration {before['duration']} -> {after['duration']}"
    )

    # Something is drawn.
    png, image = screenshot(tools)
    check_not_blank(image, "1280 px")
    if args.screenshots:
        _, full = screenshot(tools, full_page=True)
        cv2.imwrite(os.path.join(args.screenshots, "status-1280.png"), full)

    # A phone: no horizontal overflow.
    tools.call(
        "Emulation.setDeviceMetricsOverride",
        width=390,
        height=844,
        deviceScaleFactor=1,
        mobile=True,
    )
    widths = wait_for(
        "the layout at 390 px",
        lambda: tools.eval(
            "new Promise(r => requestAnimationFrame(() => r({"
            "scroll: document.documentElement.scrollWidth,"
            "client: document.documentElement.clientWidth,"
            "body: document.body.scrollWidth})))"
        ),
        lambda v: v["client"] <= 390,
        timeout=5,
    )
    check(widths["client"] > 300, f"the phone viewport is {widths['client']} px wide")
    check(
        widths["scroll"] <= widths["client"] + 1 and widths["body"] <= widths["client"] + 1,
        f"horizontal overflow at 390 px: {widths}",
    )
    print(f"390 px: scrollWidth {widths['scroll']} <= clientWidth {widths['client']}")
    _, image = screenshot(tools)
    check_not_blank(image, "390 px")
    if args.screenshots:
        _, full = screenshot(tools, full_page=True)
        cv2.imwrite(os.path.join(args.screenshots, "status-390.png"), full)
    problems = tools.eval("window.__pageProblems")
    check(problems == [], f"the page had script errors or CSP violations: {problems}")
    print("status page: all checks passed")


if __name__ == "__main__":
    try:
        main()
    except CheckFailed as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
