//! An origin/edge tier behind HAProxy, in a private network namespace
//! (`mjpeg_rtsp_tests::tier`): one origin with a live source, two edges relaying it, and
//! Debian's HAProxy in TCP mode in front of the edges, running `config/haproxy-edges.cfg`
//! (the README's), each on its own loopback address.
//!
//! - 40 RTSP viewers over TCP (our load generator), ffmpeg and rtspsrc play through
//!   HAProxy at the source's rate, and HTTP MJPEG viewers too (ours and ffmpeg); the
//!   origin serves each edge one session, from the edge's own address.
//! - An edge killed mid-run: HAProxy's health check takes it out, the viewers of the other
//!   edge play on, and new viewers land on the other edge.
//! - The origin killed and started again on its address: the edges reconnect, and viewers
//!   that stayed connected (RTSP and HTTP) get frames again in the same session.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::http_client::{Viewer, ViewerOptions};
use mjpeg_rtsp_tests::netns::Netns;
use mjpeg_rtsp_tests::rtsp::{Client, RtpPacket, path_in};
use mjpeg_rtsp_tests::tier::{self, EDGES, FPS, Tier, bench, session_clients};
use mjpeg_rtsp_tests::{ffmpeg_framecrc_with, lock};
use serde_json::Value;

/// A viewer at full rate gets at least this many frames a second (the source's rate, less
/// what a busy 2-core machine may cost over a few seconds).
const FULL_RATE: f64 = FPS * 0.9;
const WAIT: Duration = Duration::from_secs(10);
const EDGE_ARGS: &[&str] = &["--max-connections-per-ip", "0"];
/// How long the origin is away in the restart test.
const OUTAGE: Duration = Duration::from_secs(20);

/// HTTP MJPEG viewers of `/cam/stream.mjpg` through HAProxy (connected from inside the
/// namespace), keeping every 25th JPEG.
fn http_viewers(netns: &Netns, base: &str, n: usize) -> Vec<Viewer> {
    let options = ViewerOptions {
        keep_every: 25,
        ..ViewerOptions::default()
    };
    netns.run(|| {
        (0..n)
            .map(|_| Viewer::start(base, "/cam/stream.mjpg", options))
            .collect()
    })
}

/// Each viewer got whole JPEGs at full rate over `[from, to)`.
#[track_caller]
fn assert_full_rate(viewers: &[&Viewer], from: Instant, to: Instant) {
    for viewer in viewers {
        let seen = viewer.seen();
        assert_eq!(seen.status, Some(200), "{:?}", seen.end);
        assert_eq!(seen.failure(), None, "viewer {}", viewer.local);
        let rate = seen.rate_between(from, to);
        assert!(
            rate >= FULL_RATE,
            "viewer {}: {rate:.1} frames/s",
            viewer.local
        );
        let kept: Vec<&Vec<u8>> = seen.parts.iter().filter_map(|p| p.jpeg.as_ref()).collect();
        assert!(!kept.is_empty());
        for jpeg in kept {
            assert!(
                jpeg.starts_with(&[0xff, 0xd8]) && jpeg.ends_with(&[0xff, 0xd9]),
                "not a whole JPEG ({} bytes)",
                jpeg.len()
            );
        }
    }
}

/// GStreamer's rtspsrc (over TCP, from inside `netns`) decodes `frames` of `url`: gst-launch
/// ends at the EOS `identity` sends after that many decoded frames, and (`-v`) says each
/// frame that passed it.
fn rtspsrc_decodes(netns: &Netns, url: &str, frames: usize) -> Result<(), String> {
    let mut command = netns.command("gst-launch-1.0");
    command.env_remove("GST_DEBUG").args([
        "-v",
        "rtspsrc",
        &format!("location={url}"),
        "protocols=tcp",
        "latency=100",
        "!",
        "rtpjpegdepay",
        "!",
        "jpegdec",
        "!",
        "identity",
        "name=decoded",
        "silent=false",
        // It passes one buffer fewer than this.
        &format!("eos-after={}", frames + 1),
        "!",
        "fakesink",
    ]);
    let (status, out, err) = mjpeg_rtsp_tests::run_to_end(&mut command, 2 * WAIT);
    let decoded = out
        .lines()
        .filter(|l| l.contains("decoded: last-message = chain"))
        .count();
    match status.success() && decoded >= frames {
        true => Ok(()),
        false => Err(format!("{status}, {decoded} frames decoded: {err}")),
    }
}

/// The load generator's report says every one of `n` sessions played at full rate.
#[track_caller]
fn assert_all_played(report: &Value, n: u64) {
    assert_eq!(report["transport"], "tcp", "{report}");
    assert_eq!(report["ok"], n, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["late_failures"], 0, "{report}");
    assert_eq!(report["silent"], 0, "{report}");
    let slowest = report["fps_min"].as_f64().unwrap_or(0.0);
    assert!(
        slowest >= FULL_RATE,
        "the slowest viewer: {slowest} frames/s: {report}"
    );
    assert_eq!(report["lost"], 0, "over TCP nothing is lost: {report}");
}

/// Open sessions of `cam` in a server's latest report.
fn cam_sessions(report: &Value) -> u64 {
    path_in(report, "cam")["sessions"].as_u64().unwrap_or(0)
}

#[test]
fn viewers_through_haproxy_play_at_full_rate_and_move_to_the_other_edge_when_one_dies() {
    let mut tier = Tier::start("tier", EDGE_ARGS);
    let url = tier.rtsp_url();
    let http = http_viewers(&tier.netns, &tier.http_base(), 4);

    // 40 RTSP viewers over TCP, ffmpeg and rtspsrc, through HAProxy; and ffmpeg reading
    // the HTTP stream.
    let http_url = format!("{}/cam/stream.mjpg", tier.http_base());
    let (report, ffmpeg, during, others) = std::thread::scope(|scope| {
        let netns = &tier.netns;
        let url = url.as_str();
        let load = scope.spawn(move || {
            let args = ["--tcp", "-n", "40", "--ramp", "2", "--duration", "4", url];
            bench(netns, &args, Duration::from_secs(60))
        });
        let ffmpeg = scope.spawn(move || {
            let input = ["-rtsp_transport", "tcp"];
            ffmpeg_framecrc_with(
                netns.command("ffmpeg"),
                &input,
                url,
                &["-frames:v", "150"],
                2 * WAIT,
            )
        });
        let rtspsrc = scope.spawn(move || rtspsrc_decodes(netns, url, 50));
        let http_url = http_url.as_str();
        let ffmpeg_http = scope.spawn(move || {
            let input = ["-f", "mpjpeg"];
            let command = netns.command("ffmpeg");
            ffmpeg_framecrc_with(command, &input, http_url, &["-frames:v", "50"], 2 * WAIT)
        });
        // In the generator's window: what the servers and HAProxy see.
        std::thread::sleep(Duration::from_secs(4));
        let during = [
            tier.origin().fresh_stats(WAIT),
            tier.edge(0).fresh_stats(WAIT),
            tier.edge(1).fresh_stats(WAIT),
        ];
        let others = (rtspsrc.join().unwrap(), ffmpeg_http.join().unwrap());
        (load.join().unwrap(), ffmpeg.join().unwrap(), during, others)
    });
    assert_all_played(&report, 40);
    let (ok, sizes, dimensions) = ffmpeg;
    assert!(
        ok && sizes.len() == 150,
        "ffmpeg decoded {} frames",
        sizes.len()
    );
    assert_eq!(dimensions, "320x240");
    let (rtspsrc, (ok, sizes, dimensions)) = others;
    if let Err(e) = rtspsrc {
        panic!("rtspsrc through HAProxy: {e}");
    }
    assert!(
        ok && sizes.len() == 50,
        "ffmpeg decoded {} frames of {http_url}",
        sizes.len()
    );
    assert_eq!(dimensions, "320x240");

    // The origin served each edge once, from the edge's own address; the edges shared the
    // 40 viewers, ffmpeg and the HTTP viewers.
    let [origin, edge1, edge2] = &during;
    let mut clients: Vec<String> = session_clients(origin, "cam")
        .iter()
        .map(|c| {
            c.rsplit_once(':')
                .map_or(c.clone(), |(ip, _)| ip.to_string())
        })
        .collect();
    clients.sort();
    assert_eq!(clients, EDGES, "the origin's sessions: {origin}");
    let per_edge = [cam_sessions(edge1), cam_sessions(edge2)];
    // ffmpeg's session is open (150 frames take 6 s); rtspsrc's may be.
    let total = per_edge[0] + per_edge[1];
    assert!(
        total == 41 || total == 42,
        "RTSP sessions on the edges: {per_edge:?}"
    );
    assert!(
        per_edge.iter().all(|&n| n >= 10),
        "HAProxy balances: {per_edge:?}"
    );
    for edge in [edge1, edge2] {
        let cam = path_in(edge, "cam");
        assert_eq!(cam["kind"], "relay", "{cam}");
        assert_eq!(cam["source"], "up", "{cam}");
    }
    let now = Instant::now();
    assert_full_rate(
        &http.iter().collect::<Vec<_>>(),
        now - Duration::from_secs(4),
        now,
    );

    // Edge 1 dies mid-run: HAProxy takes it out; the viewers of edge 2 play on.
    let edge1_total = tier.haproxy.server("rtsp_edges", "edge1").total;
    let edge2_total = tier.haproxy.server("rtsp_edges", "edge2").total;
    let killed = Instant::now();
    drop(tier.edges[0].take());
    tier.haproxy
        .wait_for("edge1", "DOWN", Duration::from_secs(5));
    let out_after = killed.elapsed();
    // HAProxy checks every 300 ms and takes an edge out after 2 failures.
    assert!(
        out_after < Duration::from_secs(3),
        "edge1 out after {out_after:?}"
    );

    // New viewers land on edge 2, and play.
    let before = cam_sessions(&tier.edge(1).fresh_stats(WAIT));
    let more = http_viewers(&tier.netns, &tier.http_base(), 2);
    let report = std::thread::scope(|scope| {
        let netns = &tier.netns;
        let url = url.as_str();
        let load = scope.spawn(move || {
            let args = ["--tcp", "-n", "10", "--ramp", "1", "--duration", "3", url];
            bench(netns, &args, Duration::from_secs(60))
        });
        std::thread::sleep(Duration::from_secs(3));
        let now = cam_sessions(&tier.edge(1).fresh_stats(WAIT));
        assert_eq!(now, before + 10, "edge2 had {before} sessions, now {now}");
        load.join().unwrap()
    });
    assert_all_played(&report, 10);
    let edge1_after = tier.haproxy.server("rtsp_edges", "edge1");
    let edge2_after = tier.haproxy.server("rtsp_edges", "edge2");
    assert_eq!(
        edge1_after.total, edge1_total,
        "nothing reached the dead edge"
    );
    assert!(
        edge2_after.total >= edge2_total + 10,
        "edge2: {} connections, {} before",
        edge2_after.total,
        edge2_total
    );
    let now = Instant::now();
    assert_full_rate(
        &more.iter().collect::<Vec<_>>(),
        now - Duration::from_secs(2),
        now,
    );
    assert_eq!(
        path_in(&tier.edge(1).fresh_stats(WAIT), "cam")["http_viewers"].as_u64(),
        Some(more.len() as u64 + http.iter().filter(|v| v.seen().end.is_none()).count() as u64),
        "the new HTTP viewers are on edge 2"
    );
    // The first HTTP viewers: those on edge 2 played on after edge 1 died; those on edge 1
    // saw their stream end.
    let (ended, playing): (Vec<&Viewer>, Vec<&Viewer>) =
        http.iter().partition(|v| v.seen().end.is_some());
    assert!(
        !playing.is_empty() && !ended.is_empty(),
        "leastconn spread them"
    );
    assert_full_rate(&playing, killed, now);
}

/// An RTSP viewer over TCP that reads on a thread of its own, keeping each frame's last
/// packet (the marker bit), until dropped.
struct TcpViewer {
    frames: Arc<Mutex<Vec<RtpPacket>>>,
    closed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpViewer {
    /// DESCRIBE, SETUP (interleaved), PLAY of `url` from inside `netns`; the reply to
    /// DESCRIBE must give `url` itself as the base of the stream's control URLs.
    fn play(netns: &Netns, url: &str) -> TcpViewer {
        let addr = url
            .strip_prefix("rtsp://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|hostport| hostport.parse().ok())
            .expect("rtsp://ADDR:PORT/...");
        let mut client = netns.run(|| Client::connect(addr));
        let describe = client.request("DESCRIBE", url, &[("Accept", "application/sdp")]);
        describe.assert_status(200);
        assert_eq!(
            describe.header("Content-Base"),
            Some(format!("{url}/").as_str()),
            "the control URLs follow the URL the viewer dialed"
        );
        let (_, session) = client.setup_interleaved(&format!("{url}/streamid=0"));
        client
            .request("PLAY", url, &[("Session", &session)])
            .assert_status(200);
        let frames = Arc::new(Mutex::new(Vec::new()));
        let closed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (frames, closed, stop) = (frames.clone(), closed.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let deadline = Instant::now() + Duration::from_millis(200);
                    match client.read_interleaved(deadline) {
                        Some((0, data, at)) => {
                            let packet = RtpPacket::parse(&data, at);
                            if packet.marker {
                                lock(&frames).push(RtpPacket {
                                    payload: Vec::new(),
                                    ..packet
                                });
                            }
                        }
                        Some(_) => {}
                        None if client.wait_closed(Duration::ZERO) => {
                            closed.store(true, Ordering::Release);
                            return;
                        }
                        None => {}
                    }
                }
            })
        };
        TcpViewer {
            frames,
            closed,
            stop,
            thread: Some(thread),
        }
    }

    fn frames(&self) -> Vec<RtpPacket> {
        lock(&self.frames).clone()
    }
}

impl Drop for TcpViewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn edges_that_lose_the_origin_reconnect_and_their_viewers_resume() {
    let mut tier = Tier::start("tier-origin", EDGE_ARGS);
    // One viewer of each kind on each edge (HAProxy's leastconn alternates).
    let rtsp = [
        TcpViewer::play(&tier.netns, &tier.rtsp_url()),
        TcpViewer::play(&tier.netns, &tier.rtsp_url()),
    ];
    let http = http_viewers(&tier.netns, &tier.http_base(), 2);
    for edge in 0..2 {
        tier.edge(edge).wait_for_stats(
            "an RTSP and an HTTP viewer",
            |r| cam_sessions(r) == 1 && path_in(r, "cam")["http_viewers"] == 1,
            WAIT,
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(rtsp.iter().all(|v| v.frames().len() >= 10));

    // The origin dies; the edges keep their viewers while they retry.
    drop(tier.origin.take());
    let down = Instant::now();
    for edge in 0..2 {
        tier.edge(edge).wait_for_stats(
            "the relay retrying",
            |r| path_in(r, "cam")["source"] == "retrying",
            WAIT,
        );
    }
    // Long enough without an origin for the edges' backoff to reach its longest wait:
    // relays retry about 1, 3, 7, 12, 17, 22 s after the failure (at most 5 s apart, plus up
    // to a second each: the paths are looked at once a second), so the viewers wait at most
    // about 6 s after the origin's return. With a doubling to 30 s the next try after the
    // one near 15-19 s would come at 31 s or later, 10 s or more after the return.
    std::thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    let before: Vec<RtpPacket> = rtsp.iter().map(|v| v.frames().pop().unwrap()).collect();
    let http_before: Vec<usize> = http.iter().map(|v| v.seen().parts.len()).collect();

    tier.origin = Some(tier::start_origin(&tier.netns));
    let back = Instant::now();
    for (viewer, last) in rtsp.iter().zip(&before) {
        let resumed = mjpeg_rtsp_tests::poll(
            2 * WAIT,
            || viewer.frames(),
            |frames| {
                frames.len() >= 25 + frames.iter().filter(|f| f.arrival <= last.arrival).count()
            },
        );
        let frames = resumed
            .unwrap_or_else(|frames| panic!("{} frames after the origin came back", frames.len()));
        let after: Vec<&RtpPacket> = frames.iter().filter(|f| f.arrival > last.arrival).collect();
        let waited = after[0].arrival.duration_since(back);
        assert!(
            // 6 s and room for a busy machine; the old 30 s backoff took 15 s here.
            waited < Duration::from_secs(9),
            "frames came back {waited:?} after the origin"
        );
        assert_eq!(after[0].ssrc, last.ssrc, "the same session");
        assert!(
            after[0].seq.wrapping_sub(last.seq) < 1000,
            "the sequence goes on: {} then {}",
            last.seq,
            after[0].seq
        );
        assert!(!viewer.closed.load(Ordering::Acquire));
    }
    for (viewer, before) in http.iter().zip(http_before) {
        let resumed = viewer.wait(WAIT, |s| s.parts.len() >= before + 25);
        let seen = viewer.seen();
        assert!(
            resumed,
            "{} parts after the origin came back",
            seen.parts.len() - before
        );
        assert_eq!(seen.end, None, "the HTTP stream went on");
    }
    // Each edge holds one session on the new origin, from its own address.
    let report = tier.origin().wait_for_stats(
        "both edges back",
        |r| session_clients(r, "cam").len() == 2,
        WAIT,
    );
    let mut clients = session_clients(&report, "cam");
    clients
        .iter_mut()
        .for_each(|c| c.truncate(c.rfind(':').unwrap_or(c.len())));
    clients.sort();
    assert_eq!(clients, EDGES, "{report}");
}
