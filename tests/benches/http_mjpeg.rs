//! `make bench`: HTTP Motion-JPEG fan-out. One live source, 640x480 4:2:0 JPEG at 25
//! frames/s, to more and more HTTP viewers (`multipart/x-mixed-replace`), from
//! mjpeg-rtsp-server and from GStreamer's usual recipe (the anchor), in one run:
//!
//! - ours: `mjpeg-rtsp-server --http-port 0 --always-on --source live=SOURCE`, viewers at
//!   `/live/stream.mjpg`;
//! - gst (the anchor, `tests/scripts/gst-mjpeg-http.py`): `SOURCE ! multipartmux !
//!   multisocketsink` behind a Python accept loop that answers each GET with an HTTP/1.0
//!   200 head and hands the socket to the sink (sync=false, new viewers from the newest
//!   part, a viewer over 80 ms behind moved to the newest part, one over 5 s behind
//!   dropped);
//! - gst-tcp: the same with `tcpserversink` (no HTTP head: the raw multipart stream).
//!
//! SOURCE is `videotestsrc is-live=true pattern=smpte horizontal-speed=3 !
//! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc quality=85`: the
//! bars move so that every frame's bytes differ (the content lag identifies frames by a
//! hash of their bytes), and the picture repeats only after 640 frames (25.6 s), longer
//! than a point. Each server encodes the source itself: the CPU figures include one
//! jpegenc.
//!
//! Each point starts a fresh server, then `mjpeg-rtsp-bench --http` (tools/rtsp-bench)
//! opens the viewers over a 2 s ramp from one process (one thread), waits 1 s, and
//! measures over the window (8 s): frames/s per viewer, viewers at full rate (>= 23 of 25
//! frames/s), parts that are not whole JPEGs, the frame age at arrival from X-Timestamp
//! (ours; the anchor sends none), the content lag (a viewer's arrival of a frame minus the
//! first viewer's arrival of the same frame; both), and the CPU of the server, of the
//! generator and of the whole machine. The points of the servers interleave (ours at N,
//! the anchor at N, then the next N), so that a disturbance on the machine falls on both; a
//! server's ramp stops after its first point where a viewer is below full rate.
//!
//! `HTTP_BENCH_GEN_THREADS` gives the generator more threads (default 1).
//! `HTTP_BENCH_VIEWERS` sets the ramp: one list for every server
//! (`HTTP_BENCH_VIEWERS=50,100`) or per server (`"ours=50,400 gst=50"`; a server left
//! out is not run); default `50,100,200,400,600,800,1000` for ours and gst, and
//! `50,200,600,1000` for gst-tcp. `HTTP_BENCH_WINDOW` sets the window in seconds.
//!
//! The binaries are built first with the same cargo, profile and target directory.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::bench::{binary, verdict};
use mjpeg_rtsp_tests::{init, workspace_root};
use serde_json::Value;

const FPS: f64 = 25.0;
/// A viewer at this many frames/s or more is at full rate.
const FULL_RATE: f64 = 23.0;
const RAMP_S: f64 = 2.0;
const SETTLE_S: f64 = 1.0;
const DEFAULT_WINDOW_S: f64 = 8.0;
const DEFAULT_RAMP: &str = "50,100,200,400,600,800,1000";
const DEFAULT_TCP_RAMP: &str = "50,200,600,1000";
const SOURCE: &str = "videotestsrc is-live=true pattern=smpte horizontal-speed=3 \
    ! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc quality=85";
/// The frame age a viewer that keeps up should see at most (p99): two frame intervals.
const AGE_TARGET_MS: f64 = 2.0 * 1000.0 / FPS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Ours,
    Gst,
    GstTcp,
}

impl Server {
    const ALL: [Server; 3] = [Server::Ours, Server::Gst, Server::GstTcp];

    fn key(self) -> &'static str {
        match self {
            Server::Ours => "ours",
            Server::Gst => "gst",
            Server::GstTcp => "gst-tcp",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Server::Ours => "mjpeg-rtsp-server",
            Server::Gst => "multisocketsink + HTTP (anchor)",
            Server::GstTcp => "tcpserversink (raw)",
        }
    }
}

/// Each server's viewer counts, from `HTTP_BENCH_VIEWERS`.
fn ramps() -> Vec<(Server, Vec<usize>)> {
    let counts = |list: &str| -> Vec<usize> {
        list.split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("HTTP_BENCH_VIEWERS: bad viewer count {n:?}"))
            })
            .collect()
    };
    let Ok(spec) = std::env::var("HTTP_BENCH_VIEWERS") else {
        return vec![
            (Server::Ours, counts(DEFAULT_RAMP)),
            (Server::Gst, counts(DEFAULT_RAMP)),
            (Server::GstTcp, counts(DEFAULT_TCP_RAMP)),
        ];
    };
    if !spec.contains('=') {
        return Server::ALL.iter().map(|&s| (s, counts(&spec))).collect();
    }
    spec.split_whitespace()
        .map(|part| {
            let (key, list) = part.split_once('=').expect("KEY=N,N");
            let server = Server::ALL
                .into_iter()
                .find(|s| s.key() == key)
                .unwrap_or_else(|| panic!("HTTP_BENCH_VIEWERS: unknown server {key:?}"));
            (server, counts(list))
        })
        .collect()
}

/// The generator's threads, from `HTTP_BENCH_GEN_THREADS` (default 1).
fn generator_threads() -> usize {
    std::env::var("HTTP_BENCH_GEN_THREADS")
        .ok()
        .map(|v| v.parse().expect("HTTP_BENCH_GEN_THREADS: a number"))
        .unwrap_or(1)
}

/// The system Python with GStreamer's introspection (python3 on PATH may be another one).
fn python() -> Option<&'static str> {
    ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import gi; gi.require_version('Gst', '1.0')"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Lifts the soft open-file limit to the hard one (the servers and the generator inherit
/// it; each raises its own too).
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit take a pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A server process, killed when dropped.
struct Running {
    child: Child,
    /// The stream's URL.
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `server` and waits for its stream's URL.
fn start(server: Server) -> Result<Running, String> {
    let mut cmd = match server {
        Server::Ours => {
            let mut c = Command::new(binary("mjpeg-rtsp-server"));
            c.args(["--bind", "127.0.0.1", "--port", "0", "--http-port", "0"])
                .args(["--max-connections-per-ip", "0"])
                .args(["--always-on", "--source"])
                .arg(format!("live={SOURCE}"));
            c
        }
        Server::Gst | Server::GstTcp => {
            let py = python().ok_or("no Python with GStreamer (apt-get install python3-gi)")?;
            let mut c = Command::new(py);
            c.arg(workspace_root().join("tests/scripts/gst-mjpeg-http.py"))
                .args(["--source", SOURCE])
                .env_remove("GST_DEBUG");
            if server == Server::GstTcp {
                c.arg("--tcp");
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
    std::thread::spawn(move || {
        // Ours prints its RTSP URL first, then the HTTP one; keep reading so that the
        // server never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let line = line.trim().to_string();
            if line.starts_with("http://") || line.starts_with("tcp://") {
                let _ = tx.send(line);
            }
        }
    });
    let url = rx.recv_timeout(Duration::from_secs(20)).ok();
    let url = url.map(|u| match server {
        Server::Ours => format!("{u}live/stream.mjpg"),
        _ => u,
    });
    if let Some(url) = url {
        let mut running = Running { child, url };
        // GStreamer warnings must not block the server.
        if let Some(mut err) = running.child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        }
        // The source's first frames (ours starts it with --always-on; the anchor's
        // pipeline plays before the URL is printed).
        std::thread::sleep(Duration::from_secs(1));
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
        "{} did not print its URL ({status}); stderr: {}",
        server.name(),
        first_lines.join(" / ")
    ))
}

/// One point's figures, from the generator's JSON.
#[derive(Debug, Clone)]
struct Point {
    viewers: usize,
    connected: usize,
    at_full_rate: usize,
    fps_min: f64,
    fps_median: f64,
    age_full_p99_ms: Option<f64>,
    lag_full_p99_ms: Option<f64>,
    lag_p99_ms: Option<f64>,
    bad_parts: u64,
    closed_early: u64,
    cpu: f64,
    cpu_per_viewer: f64,
    gen_cpu: f64,
    machine_cpu: f64,
    cores: usize,
    first_failure: Option<String>,
    first_close: Option<String>,
    first_bad_part: Option<String>,
}

impl Point {
    fn from_json(v: &Value) -> Point {
        let f = |k: &str| v[k].as_f64();
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        Point {
            viewers: n("viewers") as usize,
            connected: n("connected") as usize,
            at_full_rate: n("at_full_rate") as usize,
            fps_min: f("fps_min").unwrap_or(0.0),
            fps_median: f("fps_median").unwrap_or(0.0),
            age_full_p99_ms: f("age_full_p99_ms"),
            lag_full_p99_ms: f("lag_full_p99_ms"),
            lag_p99_ms: f("lag_p99_ms"),
            bad_parts: n("bad_parts"),
            closed_early: n("closed_early"),
            cpu: f("server_cpu_pct").unwrap_or(f64::NAN),
            cpu_per_viewer: f("server_cpu_pct_per_viewer").unwrap_or(f64::NAN),
            gen_cpu: f("self_cpu_pct").unwrap_or(f64::NAN),
            machine_cpu: f("machine_cpu_pct").unwrap_or(f64::NAN),
            cores: n("cores") as usize,
            first_failure: v["first_failure"].as_str().map(str::to_string),
            first_close: v["first_close"].as_str().map(str::to_string),
            first_bad_part: v["first_bad_part"].as_str().map(str::to_string),
        }
    }

    /// What went wrong for some viewers, if anything.
    fn notes(&self) -> String {
        let mut notes = Vec::new();
        if let Some(first) = &self.first_failure {
            let n = self.viewers - self.connected;
            notes.push(format!("{n} not connected (first: {first})"));
        }
        if let Some(first) = &self.first_close {
            let n = self.closed_early;
            notes.push(format!("{n} streams ended early (first: {first})"));
        }
        if let Some(first) = &self.first_bad_part {
            let n = self.bad_parts;
            notes.push(format!("{n} parts not whole JPEGs (first: {first})"));
        }
        notes
            .into_iter()
            .map(|n| format!("  {n}"))
            .collect::<String>()
    }

    /// Every viewer connected and at full rate.
    fn keeps_up(&self) -> bool {
        self.at_full_rate == self.viewers
    }

    /// Where the machine's CPU went over the window.
    fn cpu_use(&self) -> String {
        let others = self.machine_cpu - self.cpu - self.gen_cpu;
        format!(
            "machine {:.0} % of {} % (server {:.0} %, generator {:.0} %, others {:.0} %)",
            self.machine_cpu,
            self.cores * 100,
            self.cpu,
            self.gen_cpu,
            others.max(0.0)
        )
    }

    /// What most likely held the point back: the generator's threads, the machine's cores
    /// (shared with whatever else runs), or the server.
    fn bound(&self, generator_threads: usize) -> String {
        let bound = if self.gen_cpu >= 85.0 * generator_threads as f64 {
            "the generator's CPU (its threads are busy)"
        } else if self.machine_cpu >= 0.9 * (self.cores * 100) as f64 {
            "the machine's CPU (no idle core)"
        } else if self.cpu >= 85.0 {
            "the server's CPU"
        } else {
            "not CPU (loopback, scheduling, or the server's design)"
        };
        format!("{bound}: {}", self.cpu_use())
    }
}

/// Runs the generator against `url` and returns its figures.
fn measure(url: &str, pid: u32, viewers: usize, window_s: f64) -> Result<Point, String> {
    let mut child = Command::new(binary("mjpeg-rtsp-bench"))
        .args(["--http", url, "--json", "--sessions", &viewers.to_string()])
        .args(["--threads", &generator_threads().to_string()])
        .args([
            "--ramp",
            &RAMP_S.to_string(),
            "--settle",
            &SETTLE_S.to_string(),
        ])
        .args(["--duration", &window_s.to_string()])
        .args(["--full-rate", &FULL_RATE.to_string()])
        .args(["--server-pid", &pid.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("mjpeg-rtsp-bench does not start: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs_f64(RAMP_S + SETTLE_S + window_s + 60.0);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err("mjpeg-rtsp-bench did not finish in time".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        format!(
            "mjpeg-rtsp-bench failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok(Point::from_json(&json))
}

fn main() {
    init();
    raise_file_limit();
    let window_s: f64 = std::env::var("HTTP_BENCH_WINDOW")
        .ok()
        .map(|v| v.parse().expect("HTTP_BENCH_WINDOW: seconds"))
        .unwrap_or(DEFAULT_WINDOW_S);
    let ramps = ramps();
    println!(
        "HTTP MJPEG fan-out: one live 640x480 4:2:0 JPEG source at {FPS} frames/s to N \
         viewers; viewers started over {RAMP_S} s, measured over {window_s} s from {SETTLE_S} s \
         after the ramp; full rate: >= {FULL_RATE} frames/s"
    );
    mjpeg_rtsp_tests::bench::build_apps();

    // Interleaved: the n-th point of every server still ramping, then the next.
    let mut results: Vec<(Server, usize, Result<Point, String>)> = Vec::new();
    let mut stopped: Vec<Server> = Vec::new();
    let longest = ramps.iter().map(|(_, l)| l.len()).max().unwrap_or(0);
    for step in 0..longest {
        for (server, list) in &ramps {
            let (Some(&viewers), false) = (list.get(step), stopped.contains(server)) else {
                continue;
            };
            let result = start(*server)
                .and_then(|running| measure(&running.url, running.child.id(), viewers, window_s));
            match &result {
                Ok(p) => eprintln!(
                    "  {} x {viewers}: {} connected, {} at full rate, fps min {:.2}, server \
                     CPU {:.1} %, generator {:.1} %",
                    server.name(),
                    p.connected,
                    p.at_full_rate,
                    p.fps_min,
                    p.cpu,
                    p.gen_cpu
                ),
                Err(e) => eprintln!("  {} x {viewers}: {e}", server.name()),
            }
            if !result.as_ref().is_ok_and(Point::keeps_up) {
                stopped.push(*server);
            }
            results.push((*server, viewers, result));
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    report(&results);
    if !results
        .iter()
        .any(|(s, _, r)| *s == Server::Ours && r.is_ok())
        && ramps.iter().any(|(s, _)| *s == Server::Ours)
    {
        eprintln!("\nmjpeg-rtsp-server could not be measured");
        std::process::exit(1);
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.1}"))
}

fn report(results: &[(Server, usize, Result<Point, String>)]) {
    println!();
    println!(
        "  {:<32} {:>7} {:>9} {:>13} {:>8} {:>8} {:>8} {:>7} {:>8} {:>6} {:>8}",
        "server",
        "viewers",
        "full rate",
        "fps min/med",
        "age p99",
        "lag p99",
        "(all)",
        "CPU %",
        "CPU %/v.",
        "gen. %",
        "machine"
    );
    for server in Server::ALL {
        for (s, viewers, result) in results {
            if *s != server {
                continue;
            }
            match result {
                Ok(p) => println!(
                    "  {:<32} {:>7} {:>9} {:>13} {:>8} {:>8} {:>8} {:>7.1} {:>8.3} {:>6.1} {:>8.0}{}",
                    server.name(),
                    viewers,
                    p.at_full_rate,
                    format!("{:.2}/{:.2}", p.fps_min, p.fps_median),
                    ms(p.age_full_p99_ms),
                    ms(p.lag_full_p99_ms),
                    ms(p.lag_p99_ms),
                    p.cpu,
                    p.cpu_per_viewer,
                    p.gen_cpu,
                    p.machine_cpu,
                    p.notes()
                ),
                Err(e) => println!("  {:<32} {:>7}   failed: {e}", server.name(), viewers),
            }
        }
    }
    println!(
        "  (full rate: viewers at >= {FULL_RATE} frames/s; age: X-Timestamp to arrival, ms, \
         p99 over full-rate viewers (the anchor sends no timestamp); lag: a viewer's arrival \
         of a frame minus the first viewer's, ms, p99 over full-rate viewers, and over all; \
         CPU: the server's user+system time, 100 % = one core, and per viewer; gen.: the \
         load generator; machine: every process on the box)"
    );
    println!();

    // The most viewers each server kept at full rate, and what stopped it going further.
    let best = |server: Server| -> Option<(usize, &Point)> {
        results
            .iter()
            .filter_map(|(s, n, r)| match r {
                Ok(p) if *s == server && p.keeps_up() => Some((*n, p)),
                _ => None,
            })
            .max_by_key(|(n, _)| *n)
    };
    for server in Server::ALL {
        let tried: Vec<&(Server, usize, Result<Point, String>)> =
            results.iter().filter(|(s, _, _)| *s == server).collect();
        if tried.is_empty() {
            continue;
        }
        let top = best(server);
        let first_short = tried.iter().find_map(|(_, n, r)| match r {
            Ok(p) if !p.keeps_up() => Some((*n, p)),
            _ => None,
        });
        println!(
            "{}: every viewer at full rate up to {}",
            server.name(),
            top.map_or("no point".to_string(), |(n, _)| format!("{n} viewers"))
        );
        match first_short {
            Some((n, p)) => println!(
                "  first point short of it: {n} viewers ({} at full rate, fps min {:.2}); \
                 bound by {}",
                p.at_full_rate,
                p.fps_min,
                p.bound(generator_threads())
            ),
            None => {
                if let Some((n, p)) = top {
                    println!(
                        "  the ramp ended at {n} viewers without a shortfall (the top point \
                         is not a limit); there: {}",
                        p.cpu_use()
                    );
                }
            }
        }
    }
    if let (Some((ours_n, ours)), Some((gst_n, _))) = (best(Server::Ours), best(Server::Gst)) {
        println!(
            "most viewers at full rate: mjpeg-rtsp-server {ours_n}, anchor {gst_n}: {:.2}x",
            ours_n as f64 / gst_n as f64
        );
        if let Some(age) = ours.age_full_p99_ms {
            println!(
                "mjpeg-rtsp-server at {ours_n} viewers: frame age p99 {age:.1} ms for viewers at \
                 full rate, target <= {AGE_TARGET_MS:.0} ms (2 frame intervals): {}",
                verdict(age <= AGE_TARGET_MS)
            );
        }
    }
}
