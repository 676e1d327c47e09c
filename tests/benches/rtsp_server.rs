//! `make bench`: mjpeg-rtsp-server under many RTSP clients, against GStreamer's own RTSP
//! server (gst-rtsp-server, the anchor) serving the same clip, in one run.
//!
//! The clip is 10 s of 640x480 4:2:0 JPEG at 25 frames/s (lab `.Mjpeg` format), made at
//! the start of the run; both servers loop it. Each sweep point starts a fresh server,
//! then `mjpeg-rtsp-bench` (tools/rtsp-bench) opens the sessions over a 2 s ramp, each on its
//! own control connection and receiving RTP over UDP, and measures over the window after
//! the ramp (8 s): frames/s per session, loss, jitter, time from PLAY to the first frame,
//! and the server's CPU time and memory. The servers:
//!
//! - ours: `mjpeg-rtsp-server --bind 127.0.0.1 --port 0 --fps 25 --loop CLIP`;
//! - gst-rtsp-server per client (`tests/scripts/gst-rtsp-server.py`): one pipeline
//!   `mjpegfilesrc ! rtpjpegpay` for each client, as the factory does by default;
//! - gst-rtsp-server shared (`--shared`): one pipeline for all clients.
//!
//! Live fan-out, in the same run: one live 640x480 25 frames/s source
//! (`videotestsrc is-live=true ! jpegenc`, encoded in the server) to N viewers:
//!
//! - ours: `mjpeg-rtsp-server --source live=SOURCE --always-on`, its `--stats` JSON giving
//!   the latency it adds to a frame (appsink to the last packet sent, p50 and p99);
//! - gst-rtsp-server live (`--launch SOURCE`): the same pipeline as shared media.
//!
//! Both encode the source, so the CPU figures also give the cost per viewer beyond the
//! first: (CPU at N - CPU at 1) / (N - 1).
//!
//! `RTSP_BENCH_SESSIONS` sets the sweep: a list of session counts for every server
//! (`RTSP_BENCH_SESSIONS=20`), or per server
//! (`RTSP_BENCH_SESSIONS="ours=50,150,300,600 gst=50,150 gst-shared=150,400"`, the default;
//! a server left out is not run). `RTSP_BENCH_WINDOW` sets the window in seconds.
//!
//! The binaries (the server, the load generator, the plugin for the Python server) are
//! built first with the same cargo, profile and target directory.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::bench::binary;
use mjpeg_rtsp_tests::{encode_with, init, lab_file, plugin_dir, workspace_root};

const FPS: u32 = 25;
const FRAMES: usize = 250;
const RAMP_S: f64 = 2.0;
const DEFAULT_WINDOW_S: f64 = 8.0;
const DEFAULT_SWEEP: &str =
    "ours=50,150,300,600 gst=50,150 gst-shared=150,400 ours-live=1,100,600 gst-live=1,100,600";
/// The live source both servers run.
const LIVE_SOURCE: &str = "videotestsrc is-live=true pattern=smpte horizontal-speed=3 \
    ! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc quality=85";
/// A point meets the stream's rate when every session gets at least this many frames/s
/// and loses under 1 % of its packets.
const MIN_FPS: f64 = 24.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ours,
    GstPerClient,
    GstShared,
    OursLive,
    GstLive,
}

impl Server {
    const ALL: [Server; 5] = [
        Server::GstPerClient,
        Server::GstShared,
        Server::Ours,
        Server::GstLive,
        Server::OursLive,
    ];

    fn key(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::GstPerClient => "gst",
            Server::GstShared => "gst-shared",
            Server::OursLive => "ours-live",
            Server::GstLive => "gst-live",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Server::Ours => "mjpeg-rtsp-server",
            Server::GstPerClient => "gst-rtsp-server, per client (anchor)",
            Server::GstShared => "gst-rtsp-server, shared",
            Server::OursLive => "mjpeg-rtsp-server, live source",
            Server::GstLive => "gst-rtsp-server, live source (anchor)",
        }
    }

    fn is_live(self) -> bool {
        matches!(self, Server::OursLive | Server::GstLive)
    }
}

/// The sweep from `RTSP_BENCH_SESSIONS`, in the order the points run.
fn sweep() -> Vec<(Server, usize)> {
    let spec = std::env::var("RTSP_BENCH_SESSIONS").unwrap_or_else(|_| DEFAULT_SWEEP.into());
    let counts = |list: &str| -> Vec<usize> {
        list.split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("RTSP_BENCH_SESSIONS: bad session count {n:?}"))
            })
            .collect()
    };
    let mut per_server: Vec<(Server, Vec<usize>)> = Vec::new();
    if !spec.contains('=') {
        let list = counts(&spec);
        per_server = Server::ALL.iter().map(|&s| (s, list.clone())).collect();
    } else {
        for part in spec.split_whitespace() {
            let (key, list) = part.split_once('=').expect("KEY=N,N");
            let server = Server::ALL
                .into_iter()
                .find(|s| s.key() == key)
                .unwrap_or_else(|| panic!("RTSP_BENCH_SESSIONS: unknown server {key:?}"));
            per_server.push((server, counts(list)));
        }
    }
    let mut points = Vec::new();
    for server in Server::ALL {
        for (s, list) in &per_server {
            if *s == server {
                points.extend(list.iter().map(|&n| (server, n)));
            }
        }
    }
    points
}

/// The system Python with GObject introspection (python3 on PATH may be another one).
fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0')",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// A server process, killed when dropped.
struct Running {
    child: Child,
    url: String,
    /// The last `--stats` JSON line it printed (ours, live).
    last_stats: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `server` on `clip` and waits for the URL it prints.
fn start(server: Server, clip: &Path, registry: &Path) -> Result<Running, String> {
    let mut cmd = match server {
        Server::Ours => {
            let mut c = Command::new(binary("mjpeg-rtsp-server"));
            c.args(["--bind", "127.0.0.1", "--port", "0", "--no-http"])
                .args(["--max-connections-per-ip", "0", "--fps"])
                .arg(FPS.to_string())
                .arg("--loop")
                .arg(clip);
            c
        }
        Server::OursLive => {
            let mut c = Command::new(binary("mjpeg-rtsp-server"));
            c.args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--no-http",
                "--max-connections-per-ip",
                "0",
                "--always-on",
            ])
            .arg("--source")
            .arg(format!("live={LIVE_SOURCE}"))
            .args(["--stats", "--stats-format", "json", "--stats-interval", "1"]);
            c
        }
        Server::GstPerClient | Server::GstShared | Server::GstLive => {
            let py = python().ok_or(
                "no Python with GstRtspServer (apt-get install python3-gi \
                 gir1.2-gst-rtsp-server-1.0)",
            )?;
            let mut c = Command::new(py);
            c.arg(workspace_root().join("tests/scripts/gst-rtsp-server.py"))
                .args(["--port", "0", "--fps"])
                .arg(FPS.to_string());
            if server == Server::GstLive {
                c.args(["--launch", LIVE_SOURCE]);
            } else {
                c.arg(clip);
            }
            c.env("GST_PLUGIN_PATH", plugin_dir())
                .env("GST_REGISTRY", registry)
                .env_remove("GST_DEBUG");
            if server == Server::GstShared {
                c.arg("--shared");
            }
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{} does not start: {e}", server.name()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let last_stats = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let keep = last_stats.clone();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading so that the server never blocks on a full pipe; keep the latest
        // statistics.
        for line in reader.lines().map_while(Result::ok) {
            if line.starts_with('{') {
                *keep.lock().unwrap() = line;
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    let url = line.trim().to_string();
    if url.starts_with("rtsp://") {
        let mut running = Running {
            child,
            url,
            last_stats,
        };
        // Drain stderr in the background (GStreamer warnings must not block the server).
        if let Some(mut err) = running.child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        }
        return Ok(running);
    }
    let _ = child.kill();
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let first_lines: Vec<&str> = stderr.lines().take(4).collect();
    Err(format!(
        "{} did not print its URL ({status}; stdout {line:?}); stderr: {}",
        server.name(),
        first_lines.join(" / ")
    ))
}

/// The raw value of `key` in the generator's flat JSON object: a number, `null`, or the
/// text of a string.
fn json_field(json: &str, key: &str) -> Option<String> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    if let Some(s) = rest.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => out.push(match chars.next()? {
                    'n' => '\n',
                    't' => '\t',
                    c => c,
                }),
                c => out.push(c),
            }
        }
        return None;
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim().to_string())
}

/// One point's figures.
#[derive(Debug, Default, Clone)]
struct Point {
    ok: usize,
    sessions: usize,
    fps_min: f64,
    fps_mean: f64,
    loss_pct: f64,
    jitter_mean_ms: f64,
    jitter_max_ms: f64,
    ttff_p99_ms: f64,
    cpu: f64,
    cpu_per_session: f64,
    rss_mb: f64,
    anon_mb: f64,
    gen_cpu: f64,
    socket_drops: u64,
    first_failure: Option<String>,
    /// Ours, live: the latency the server adds to a frame, p50 and p99 (ms).
    fanout_ms: Option<(f64, f64)>,
}

impl Point {
    fn from_json(json: &str) -> Point {
        let num = |k: &str| {
            json_field(json, k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        Point {
            ok: num("ok") as usize,
            sessions: num("sessions") as usize,
            fps_min: num("fps_min"),
            fps_mean: num("fps_mean"),
            loss_pct: num("loss_pct"),
            jitter_mean_ms: num("jitter_mean_ms"),
            jitter_max_ms: num("jitter_max_ms"),
            ttff_p99_ms: num("ttff_p99_ms"),
            cpu: num("server_cpu_pct"),
            cpu_per_session: num("server_cpu_pct_per_session"),
            rss_mb: num("server_rss_bytes") / 1e6,
            anon_mb: num("server_anon_rss_bytes") / 1e6,
            gen_cpu: num("self_cpu_pct"),
            socket_drops: num("socket_drops") as u64,
            first_failure: json_field(json, "first_failure").filter(|v| v != "null"),
            fanout_ms: None,
        }
    }

    /// Every session set up, at the stream's rate, without loss.
    fn keeps_up(&self) -> bool {
        self.ok == self.sessions && self.fps_min >= MIN_FPS && self.loss_pct < 1.0
    }
}

/// Runs the load generator against `url` and returns its figures.
fn measure(url: &str, pid: u32, sessions: usize, window_s: f64) -> Result<Point, String> {
    let mut child = Command::new(binary("mjpeg-rtsp-bench"))
        .args(["--json", "--sessions", &sessions.to_string()])
        .args([
            "--ramp",
            &RAMP_S.to_string(),
            "--duration",
            &window_s.to_string(),
        ])
        .args(["--server-pid", &pid.to_string(), url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("mjpeg-rtsp-bench does not start: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(RAMP_S + window_s + 60.0);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("mjpeg-rtsp-bench did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let json = String::from_utf8_lossy(&out.stdout);
    if !json.trim_start().starts_with('{') {
        return Err(format!(
            "mjpeg-rtsp-bench failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Point::from_json(&json))
}

fn main() {
    init();
    let window_s: f64 = std::env::var("RTSP_BENCH_WINDOW")
        .ok()
        .map(|v| v.parse().expect("RTSP_BENCH_WINDOW: seconds"))
        .unwrap_or(DEFAULT_WINDOW_S);
    let points = sweep();
    println!(
        "RTSP server benchmark: 640x480 4:2:0 JPEG at {FPS} frames/s over RTP/UDP, sessions \
         started over {RAMP_S} s, measured over {window_s} s after the ramp"
    );
    mjpeg_rtsp_tests::bench::build_apps();
    let frames = encode_with(
        FRAMES,
        640,
        480,
        "smpte horizontal-speed=3",
        "jpegenc quality=85",
    );
    let bytes: usize = frames.iter().map(Vec::len).sum();
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = mjpeg_rtsp_tests::write_file(dir.path(), "clip.Mjpeg", &lab_file(&frames));
    println!(
        "clip: {FRAMES} frames ({} s), {} bytes per frame on average, about {} RTP packets of \
         1400 bytes each",
        FRAMES as u32 / FPS,
        bytes / FRAMES,
        (bytes / FRAMES).div_ceil(1400 - 12 - 8)
    );
    let registry = dir.path().join("registry.bin");

    let mut results: Vec<(Server, usize, Result<Point, String>)> = Vec::new();
    let mut ours_failed: Option<String> = None;
    for (server, sessions) in points {
        if matches!(server, Server::Ours | Server::OursLive)
            && let Some(e) = &ours_failed
        {
            results.push((server, sessions, Err(e.clone())));
            continue;
        }
        let result = start(server, &clip, &registry).and_then(|running| {
            let mut point = measure(&running.url, running.child.id(), sessions, window_s)?;
            if server == Server::OursLive {
                // The report after the window covers its last 1024 frames (41 s at 25/s):
                // the ramp and the window.
                std::thread::sleep(Duration::from_millis(1100));
                let stats = running.last_stats.lock().unwrap().clone();
                point.fanout_ms = fanout(&stats);
            }
            Ok(point)
        });
        if let (Server::Ours | Server::OursLive, Err(e)) = (server, &result)
            && e.contains("did not print its URL")
        {
            ours_failed = Some(e.clone());
        }
        match &result {
            Ok(p) => eprintln!(
                "  {} x {sessions}: {} set up, fps min {:.2}, server CPU {:.1} %",
                server.name(),
                p.ok,
                p.fps_min,
                p.cpu
            ),
            Err(e) => eprintln!("  {} x {sessions}: {e}", server.name()),
        }
        results.push((server, sessions, result));
        std::thread::sleep(Duration::from_millis(500));
    }

    report(&results);
    if let Some(e) = ours_failed {
        eprintln!("\nmjpeg-rtsp-server could not be measured: {e}");
        std::process::exit(1);
    }
}

/// The live path's fan-out latency (p50, p99 ms) in a `--stats` JSON line.
fn fanout(stats: &str) -> Option<(f64, f64)> {
    let value: serde_json::Value = serde_json::from_str(stats).ok()?;
    let path = value["paths"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "live")?;
    Some((
        path["fanout_ms_p50"].as_f64()?,
        path["fanout_ms_p99"].as_f64()?,
    ))
}

fn report(results: &[(Server, usize, Result<Point, String>)]) {
    println!();
    println!(
        "  {:<38} {:>8} {:>5} {:>13} {:>7} {:>11} {:>9} {:>7} {:>9} {:>13} {:>7}",
        "server",
        "sessions",
        "ok",
        "fps min/mean",
        "loss %",
        "jitter ms",
        "TTFF p99",
        "CPU %",
        "CPU %/s.",
        "RSS (anon) MB",
        "gen. %"
    );
    for (server, sessions, result) in results {
        match result {
            Ok(p) => println!(
                "  {:<38} {:>8} {:>5} {:>13} {:>7.3} {:>11} {:>6.1} ms {:>7.1} {:>9.3} {:>13} {:>7.1}{}",
                server.name(),
                sessions,
                p.ok,
                format!("{:.2}/{:.2}", p.fps_min, p.fps_mean),
                p.loss_pct,
                format!("{:.2}/{:.2}", p.jitter_mean_ms, p.jitter_max_ms),
                p.ttff_p99_ms,
                p.cpu,
                p.cpu_per_session,
                format!("{:.0} ({:.0})", p.rss_mb, p.anon_mb),
                p.gen_cpu,
                match (&p.first_failure, p.socket_drops) {
                    (Some(f), _) => format!("  first failure: {f}"),
                    (None, d) if d > 0 => format!("  {d} packets dropped by the generator"),
                    _ => String::new(),
                }
            ),
            Err(e) => println!("  {:<38} {:>8}   failed: {e}", server.name(), sessions),
        }
    }
    println!(
        "  (CPU: the server's user+system time over the window, 100 % = one core; CPU %/s. \
         per session set up; gen.: the load generator's CPU)"
    );

    // Each anchor point against our server at the same number of sessions, or the nearest.
    let ours_of = |live: bool| -> Vec<(usize, &Point)> {
        results
            .iter()
            .filter_map(|(s, n, r)| match (s, r) {
                (Server::Ours, Ok(p)) if !live => Some((*n, p)),
                (Server::OursLive, Ok(p)) if live => Some((*n, p)),
                _ => None,
            })
            .collect()
    };
    println!();
    for (server, sessions, result) in results {
        let (Server::GstPerClient | Server::GstShared | Server::GstLive, Ok(anchor)) =
            (server, result)
        else {
            continue;
        };
        let ours = ours_of(server.is_live());
        let Some((n, ours)) = ours.iter().min_by_key(|(n, _)| n.abs_diff(*sessions)) else {
            continue;
        };
        println!(
            "{} at {sessions} sessions: {:.2}x the CPU per session of mjpeg-rtsp-server at {n} \
             ({:.3} % vs {:.3} %), {:.1}x its anonymous memory ({:.0} MB vs {:.0} MB)",
            server.name(),
            anchor.cpu_per_session / ours.cpu_per_session,
            anchor.cpu_per_session,
            ours.cpu_per_session,
            anchor.anon_mb / ours.anon_mb,
            anchor.anon_mb,
            ours.anon_mb
        );
    }
    live_report(results);
    for server in Server::ALL {
        let kept: Vec<usize> = results
            .iter()
            .filter(|(s, _, r)| *s == server && r.as_ref().is_ok_and(Point::keeps_up))
            .map(|(_, n, _)| *n)
            .collect();
        let tried = results.iter().filter(|(s, _, _)| *s == server).count();
        if tried > 0 {
            println!(
                "{}: every session at >= {MIN_FPS} frames/s with < 1 % loss at {} of {tried} \
                 points; largest: {}",
                server.name(),
                kept.len(),
                kept.iter()
                    .max()
                    .map_or("none".to_string(), |n| format!("{n} sessions"))
            );
        }
    }
}

/// Live fan-out: the cost of each viewer beyond the first, and what our server adds to a
/// frame's latency.
fn live_report(results: &[(Server, usize, Result<Point, String>)]) {
    let point = |server: Server, n: usize| {
        results.iter().find_map(|(s, m, r)| match r {
            Ok(p) if *s == server && *m == n => Some(p),
            _ => None,
        })
    };
    for server in [Server::GstLive, Server::OursLive] {
        let Some(one) = point(server, 1) else {
            continue;
        };
        for (s, n, r) in results {
            let (true, Ok(p), true) = (*s == server, r, *n > 1) else {
                continue;
            };
            println!(
                "{} at {n} viewers: {:.4} % of a core per viewer beyond the first ((CPU at {n} \
                 - CPU at 1) / {}){}",
                server.name(),
                (p.cpu - one.cpu) / (*n - 1) as f64,
                n - 1,
                p.fanout_ms.map_or(String::new(), |(p50, p99)| format!(
                    "; latency added per frame p50 {p50:.3} ms, p99 {p99:.3} ms"
                ))
            );
        }
    }
}
