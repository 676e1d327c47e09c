//! `make bench`: the origin/edge tier's CPU per edge per viewer, behind HAProxy.
//!
//! The tier of `tests/tier.rs` (`mjpeg_rtsp_tests::tier`), in a private network namespace:
//! an origin with one live 320x240 source at 25 frames/s
//! (`videotestsrc is-live=true ! jpegenc`, encoded in the origin), two edges relaying it
//! (`--relay`, `--always-on`, so the relays run before and between the points), and
//! Debian's HAProxy in TCP mode in front of them (`config/haproxy-edges.cfg`), each on its
//! own loopback address. `mjpeg-rtsp-bench --tcp` (tools/rtsp-bench) opens N RTSP
//! sessions, RTP interleaved in each one's connection, over a 2 s ramp, and measures the
//! frames each receives over the window after it.
//!
//! Each process's CPU (utime + stime from `/proc/PID/stat`) is read over the same window,
//! inside the generator's: the origin, each edge, HAProxy. For each N, two runs:
//!
//! - `direct`, the anchor: the N viewers dial edge 1 itself, no HAProxy in the way;
//! - `haproxy`: the N viewers dial HAProxy, which spreads them over both edges.
//!
//! Reported per point: the slowest viewer's frames/s (full rate: at least 24), what all
//! the viewers received (Mbit/s, RTP headers included), the edges'
//! CPU per viewer (their CPU, less what they spend with no viewer at all, over N: the
//! cost of one viewer on an edge, whichever edge), the origin's CPU (flat: it serves two
//! relay sessions whatever N), HAProxy's, and what HAProxy adds: (edges + HAProxy) over
//! edges alone, per viewer, against the direct run.
//!
//! `TIER_BENCH_VIEWERS` sets the sweep (default `100,300,1000`), `TIER_BENCH_WINDOW` the
//! window in seconds (default 8).

use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::bench::{build_apps, cpu_seconds};
use mjpeg_rtsp_tests::haproxy::RTSP_PORT;
use mjpeg_rtsp_tests::netns::Netns;
use mjpeg_rtsp_tests::tier::{EDGES, FPS, Tier};
use serde_json::Value;

const RAMP_S: f64 = 2.0;
const DEFAULT_WINDOW_S: f64 = 8.0;
const DEFAULT_SWEEP: &str = "100,300,1000";
/// Every viewer gets at least this many frames/s at a point that holds.
const MIN_FPS: f64 = FPS - 1.0;

/// The tier's processes whose CPU is measured, in the table's order.
struct Pids {
    origin: u32,
    edges: [u32; 2],
    haproxy: u32,
}

impl Pids {
    fn all(&self) -> [u32; 4] {
        [self.origin, self.edges[0], self.edges[1], self.haproxy]
    }
}

/// The CPU each process used over `[start, start + window)`, in % of a core (in the order
/// of [`Pids::all`]).
fn cpu_over(pids: &Pids, start: Instant, window: Duration) -> [f64; 4] {
    std::thread::sleep(start.saturating_duration_since(Instant::now()));
    let begin: Vec<Option<f64>> = pids.all().iter().map(|&p| cpu_seconds(p)).collect();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let end: Vec<Option<f64>> = pids.all().iter().map(|&p| cpu_seconds(p)).collect();
    let wall = t0.elapsed().as_secs_f64();
    let mut out = [f64::NAN; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        if let (Some(a), Some(b)) = (begin[i], end[i]) {
            *slot = (b - a) / wall * 100.0;
        }
    }
    out
}

/// One measured point.
struct Point {
    route: &'static str,
    viewers: usize,
    report: Value,
    /// origin, edge 1, edge 2, HAProxy: % of a core.
    cpu: [f64; 4],
}

impl Point {
    fn fps_min(&self) -> f64 {
        self.report["fps_min"].as_f64().unwrap_or(0.0)
    }

    fn holds(&self) -> bool {
        self.report["ok"].as_u64() == Some(self.viewers as u64)
            && self.report["failed"] == 0
            && self.fps_min() >= MIN_FPS
    }

    fn edges_cpu(&self) -> f64 {
        self.cpu[1] + self.cpu[2]
    }
}

/// N viewers of `url` for the window, with every process's CPU over it.
fn run(netns: &Netns, pids: &Pids, url: &str, viewers: usize, window_s: f64) -> (Value, [f64; 4]) {
    let (report, cpu) = std::thread::scope(|scope| {
        let started = Instant::now();
        let load = scope.spawn(move || {
            let (n, ramp, window) = (
                viewers.to_string(),
                RAMP_S.to_string(),
                window_s.to_string(),
            );
            let args = [
                "--tcp",
                "-n",
                &n,
                "--ramp",
                &ramp,
                "--duration",
                &window,
                url,
            ];
            let limit = Duration::from_secs_f64(RAMP_S + window_s + 60.0);
            mjpeg_rtsp_tests::tier::bench(netns, &args, limit)
        });
        // Inside the generator's window, half a second from each end.
        let from = started + Duration::from_secs_f64(RAMP_S + 0.5);
        let cpu = cpu_over(pids, from, Duration::from_secs_f64(window_s - 1.0));
        (load.join().expect("the generator's thread"), cpu)
    });
    // The sessions close before the next point.
    std::thread::sleep(Duration::from_secs(1));
    (report, cpu)
}

fn main() {
    let sweep: Vec<usize> = std::env::var("TIER_BENCH_VIEWERS")
        .unwrap_or_else(|_| DEFAULT_SWEEP.to_string())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let window_s: f64 = std::env::var("TIER_BENCH_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(DEFAULT_WINDOW_S)
        .max(2.0);
    build_apps();
    let tier = Tier::start(
        "tier-bench",
        &["--max-connections-per-ip", "0", "--always-on"],
    );
    let pids = Pids {
        origin: tier.origin().pid(),
        edges: [tier.edge(0).pid(), tier.edge(1).pid()],
        haproxy: tier.haproxy.pid(),
    };
    let direct_url = format!("rtsp://{}:{RTSP_PORT}/cam", EDGES[0]);
    let balanced_url = tier.rtsp_url();
    // The relays are up (always on) once the edges report their path up.
    for edge in 0..2 {
        tier.edge(edge).wait_for_stats(
            "the relay up",
            |r| mjpeg_rtsp_tests::rtsp::path_in(r, "cam")["source"] == "up",
            Duration::from_secs(20),
        );
    }
    // What the tier spends with no viewer: the origin's source, two relays.
    let idle = cpu_over(
        &pids,
        Instant::now(),
        Duration::from_secs_f64(window_s - 1.0),
    );

    let mut points = Vec::new();
    for &n in &sweep {
        for (route, url) in [("direct", &direct_url), ("haproxy", &balanced_url)] {
            let (report, cpu) = run(&tier.netns, &pids, url, n, window_s);
            points.push(Point {
                route,
                viewers: n,
                report,
                cpu,
            });
        }
    }

    println!();
    println!(
        "Origin/edge tier: origin + 2 edges (+ HAProxy), 320x240 at {FPS} frames/s, RTSP over \
         TCP, window {window_s:.0} s; CPU in % of a core"
    );
    println!(
        "  idle (no viewer): origin {:.1}, edges {:.1} + {:.1}, haproxy {:.2}",
        idle[0], idle[1], idle[2], idle[3]
    );
    println!(
        "  {:<8} {:>7} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>12} {:>9}  full rate",
        "route",
        "viewers",
        "fps min",
        "Mbit/s",
        "origin",
        "edge 1",
        "edge 2",
        "haproxy",
        "bench",
        "edge/viewer",
        "vs direct",
    );
    let idle_edges = idle[1] + idle[2];
    for point in &points {
        let n = point.viewers as f64;
        let per_viewer = (point.edges_cpu() - idle_edges) / n;
        let vs_direct = points
            .iter()
            .find(|d| d.route == "direct" && d.viewers == point.viewers)
            .map(|d| {
                (point.edges_cpu() + point.cpu[3] - idle_edges - idle[3])
                    / (d.edges_cpu() - idle_edges)
            });
        println!(
            "  {:<8} {:>7} {:>8.2} {:>8.0} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>7.1} {:>11.3}% {:>8.2}x  {}",
            point.route,
            point.viewers,
            point.fps_min(),
            point.report["mbit_s"].as_f64().unwrap_or(f64::NAN),
            point.cpu[0],
            point.cpu[1],
            point.cpu[2],
            point.cpu[3],
            point.report["self_cpu_pct"].as_f64().unwrap_or(f64::NAN),
            per_viewer,
            vs_direct.unwrap_or(f64::NAN),
            if point.holds() { "yes" } else { "NO" }
        );
        if !point.holds() {
            println!(
                "           {} of {} set up, {} failed ({}), first error {}",
                point.report["ok"],
                point.viewers,
                point.report["failed"],
                point.report["failures"],
                point.report["first_failure"]
            );
        }
    }
    println!(
        "  edge/viewer: (edge 1 + edge 2 - idle) / viewers; vs direct: (edges + haproxy - idle) \
         over the direct run's (edges - idle), same viewers (HAProxy's idle: its health checks)"
    );
}
