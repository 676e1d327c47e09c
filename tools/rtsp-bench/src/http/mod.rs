//! HTTP Motion-JPEG viewers (`--http URL`): many `multipart/x-mixed-replace` streams read
//! at once, as browsers or dashboards watching one camera would.
//!
//! Each viewer is one TCP connection and one tokio task; all of them share one thread (or
//! `--threads` threads, viewers dealt round-robin), waking only when their socket has
//! bytes and reading them into one buffer per thread. The viewers start evenly over the
//! ramp; the window starts after the ramp and a settling time.
//!
//! - `http://HOST[:PORT]/PATH`: `GET` (HTTP/1.1), a `200` with a multipart Content-Type,
//!   a chunked or identity body;
//! - `tcp://HOST:PORT`: a raw stream that starts with the multipart data (GStreamer's
//!   `tcpserversink`), the boundary from `--boundary` or from the first `--` line.
//!
//! Per frame read ([`stream`]): its arrival time (when the read that completed it
//! returned), a hash of its bytes, and its `X-Timestamp` when the part has one. The
//! [`report`] turns these into frames/s per viewer, the frame age at arrival (wall clock
//! minus `X-Timestamp`, both on this host) and a content lag that needs no timestamp: for
//! each picture, a viewer's arrival minus the earliest viewer's arrival of the same bytes.

pub mod report;
pub mod stream;

use std::cell::RefCell;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mjpeg_media::mjpeg::multipart::PartError;
use rtsp_types::Url;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use report::HttpReport;
use stream::{Frame, StreamError, ViewerStream};

use crate::procstat;
use crate::receiver::realtime_ns;

/// One read takes at most this much from a socket.
const READ_BUFFER: usize = 256 << 10;

/// A run of HTTP viewers.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `http://HOST[:PORT]/PATH` or `tcp://HOST:PORT`.
    pub url: String,
    pub viewers: usize,
    /// Viewers start evenly over this time.
    pub ramp: Duration,
    /// Wait after the ramp before the window (the last viewers' first frames).
    pub settle: Duration,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    /// Threads reading the viewers.
    pub threads: usize,
    /// A viewer at this many frames/s or more is at full rate.
    pub full_rate_fps: f64,
    /// A raw stream's boundary (otherwise found on its first `--` line).
    pub boundary: Option<String>,
    /// Longest wait for a connection and for the response head.
    pub timeout: Duration,
}

/// What a viewer connects to.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    /// The request, or `None` for a raw stream.
    request: Option<Vec<u8>>,
    boundary: Option<String>,
}

impl Target {
    fn parse(url: &str, boundary: Option<String>) -> anyhow::Result<Target> {
        let parsed = Url::parse(url).with_context(|| format!("bad URL {url:?}"))?;
        let raw = match parsed.scheme() {
            "http" => false,
            "tcp" => true,
            other => bail!("{url}: http:// or tcp:// only, not {other}://"),
        };
        let host = parsed
            .host_str()
            .with_context(|| format!("{url}: no host"))?
            .to_string();
        let port = match (parsed.port(), raw) {
            (Some(p), _) => p,
            (None, false) => 80,
            (None, true) => bail!("{url}: a tcp:// URL needs a port"),
        };
        let addr = (host.trim_start_matches('[').trim_end_matches(']'), port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let request = (!raw).then(|| {
            let target = match parsed.query() {
                Some(q) => format!("{}?{q}", parsed.path()),
                None => parsed.path().to_string(),
            };
            let host_header = match parsed.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            format!(
                "GET {target} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: mjpeg-rtsp-bench/{}\r\n\
                 Accept: */*\r\n\r\n",
                env!("CARGO_PKG_VERSION")
            )
            .into_bytes()
        });
        Ok(Target {
            addr,
            request,
            boundary,
        })
    }

    fn stream(&self) -> ViewerStream {
        match self.request {
            Some(_) => ViewerStream::http(),
            None => ViewerStream::raw(self.boundary.as_deref()),
        }
    }
}

/// Times of the run, in ns since its start (monotonic).
#[derive(Debug, Clone, Copy)]
pub struct Times {
    pub window_start: i64,
    pub window_end: i64,
}

impl Times {
    pub fn in_window(&self, t: i64) -> bool {
        (self.window_start..self.window_end).contains(&t)
    }
}

/// How one viewer went.
#[derive(Debug, Default)]
pub struct ViewerOutcome {
    /// Why it never got a stream (connect, status, head); `None` once it did.
    pub failure: Option<(String, String)>,
    /// Why its stream ended before the end of the run (short kind, in full).
    pub closed: Option<(String, String)>,
    /// Whole JPEGs read in the window, and body bytes.
    pub frames: u64,
    pub bytes: u64,
    /// Parts that were not whole JPEGs (any time), and the first such error.
    pub bad_parts: u64,
    pub first_bad_part: Option<String>,
    /// Runs of stray bytes skipped before a delimiter (joining a raw stream mid-part).
    pub skipped: u64,
    /// From connecting to the first whole frame, ns.
    pub first_frame_ns: Option<i64>,
    /// Arrival wall clock minus X-Timestamp, ns, for the frames of the window.
    pub ages_ns: Vec<i64>,
    /// Every frame read: its hash and arrival (ns since the start of the run).
    pub arrivals: Vec<(u64, i64)>,
}

impl ViewerOutcome {
    fn fail(kind: impl Into<String>, detail: impl Into<String>) -> ViewerOutcome {
        ViewerOutcome {
            failure: Some((kind.into(), detail.into())),
            ..ViewerOutcome::default()
        }
    }

    /// Records a part read at `at` (ns since the start), wall clock `wall_ns`.
    pub fn part(&mut self, part: Result<Frame, PartError>, at: i64, wall_ns: i64, times: Times) {
        match part {
            Ok(frame) => {
                self.arrivals.push((frame.hash, at));
                if times.in_window(at) {
                    self.frames += 1;
                    if let Some(made) = frame.made_ns {
                        self.ages_ns.push(wall_ns - made);
                    }
                }
            }
            Err(PartError::Garbage { .. }) => self.skipped += 1,
            Err(e) => {
                self.bad_parts += 1;
                self.first_bad_part.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// What every viewer task shares.
struct Shared {
    target: Target,
    start: Instant,
    times: Times,
    timeout: Duration,
}

impl Shared {
    fn now_ns(&self) -> i64 {
        self.start.elapsed().as_nanos() as i64
    }
}

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUFFER]);
}

enum Read {
    Again,
    Eof,
    Failed(std::io::Error),
    Stream(StreamError),
}

/// One viewer, from connecting at `start_at` to the end of the window.
async fn run_viewer(start_at: Instant, shared: Arc<Shared>) -> ViewerOutcome {
    tokio::time::sleep_until(start_at.into()).await;
    let connect_ns = shared.now_ns();
    let mut socket =
        match tokio::time::timeout(shared.timeout, TcpStream::connect(shared.target.addr)).await {
            Err(_) => return ViewerOutcome::fail("connect: timeout", "connect: timed out"),
            Ok(Err(e)) => {
                return ViewerOutcome::fail(format!("connect: {}", e.kind()), e.to_string());
            }
            Ok(Ok(s)) => s,
        };
    let _ = socket.set_nodelay(true);
    if let Some(request) = &shared.target.request {
        match tokio::time::timeout(shared.timeout, socket.write_all(request)).await {
            Err(_) => return ViewerOutcome::fail("request: timeout", "request: timed out"),
            Ok(Err(e)) => {
                return ViewerOutcome::fail(format!("request: {}", e.kind()), e.to_string());
            }
            Ok(Ok(())) => {}
        }
    }
    let mut stream = shared.target.stream();
    let mut outcome = ViewerOutcome::default();
    let times = shared.times;
    let end = tokio::time::sleep_until((shared.start + ns(times.window_end)).into());
    let no_head = tokio::time::sleep(shared.timeout);
    tokio::pin!(end, no_head);
    loop {
        tokio::select! {
            _ = &mut end => break,
            _ = &mut no_head, if !stream.started() => {
                let what = format!("no stream within {:?}", shared.timeout);
                return ViewerOutcome::fail("no stream: timeout", what);
            }
            ready = socket.readable() => if let Err(e) = ready {
                outcome.closed = Some((format!("read: {}", e.kind()), e.to_string()));
                break;
            }
        }
        let read = READ_BUF.with_borrow_mut(|buf| {
            loop {
                match socket.try_read(buf) {
                    Ok(0) => return Read::Eof,
                    Ok(n) => {
                        let at = shared.now_ns();
                        let wall = realtime_ns();
                        let before = stream.body_bytes;
                        let fed = stream.feed(&buf[..n], |part| {
                            outcome.part(part, at, wall, times);
                            if outcome.first_frame_ns.is_none() && outcome.arrivals.len() == 1 {
                                outcome.first_frame_ns = Some(at - connect_ns);
                            }
                        });
                        if times.in_window(at) {
                            outcome.bytes += stream.body_bytes - before;
                        }
                        if let Err(e) = fed {
                            return Read::Stream(e);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Read::Again,
                    Err(e) => return Read::Failed(e),
                }
            }
        });
        match read {
            Read::Again if stream.ended() => {
                outcome.closed = Some(("body ended".into(), "the body ended".into()));
                break;
            }
            Read::Again => {}
            Read::Eof => {
                let what = "closed by the server";
                outcome.closed = Some((what.into(), what.into()));
                break;
            }
            Read::Failed(e) => {
                outcome.closed = Some((format!("read: {}", e.kind()), e.to_string()));
                break;
            }
            Read::Stream(e) => {
                outcome.closed = Some((e.kind(), e.to_string()));
                break;
            }
        }
    }
    if !stream.started() {
        let (kind, detail) = outcome
            .closed
            .take()
            .unwrap_or_else(|| ("no stream".into(), "no stream by the end".into()));
        return ViewerOutcome {
            failure: Some((format!("before the stream: {kind}"), detail)),
            ..ViewerOutcome::default()
        };
    }
    outcome
}

fn ns(t: i64) -> Duration {
    Duration::from_nanos(t.max(0) as u64)
}

/// Runs the viewers and measures them. Fails only when the run cannot start.
pub fn run(config: &HttpConfig) -> anyhow::Result<HttpReport> {
    let target = Target::parse(&config.url, config.boundary.clone())?;
    let viewers = config.viewers.max(1);
    let threads = config.threads.clamp(1, viewers);
    let window_start = (config.ramp + config.settle).as_nanos() as i64;
    let times = Times {
        window_start,
        window_end: window_start + config.duration.as_nanos() as i64,
    };
    let start = Instant::now();
    let shared = Arc::new(Shared {
        target,
        start,
        times,
        timeout: config.timeout,
    });
    let mut workers = Vec::with_capacity(threads);
    for thread in 0..threads {
        let shared = shared.clone();
        let ramp = config.ramp;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a tokio runtime")?;
        let worker = std::thread::Builder::new()
            .name(format!("viewers-{thread}"))
            .spawn(move || {
                runtime.block_on(async {
                    let tasks: Vec<_> = (thread..viewers)
                        .step_by(threads)
                        .map(|i| {
                            let at = start + ramp.mul_f64(i as f64 / viewers as f64);
                            (i, tokio::spawn(run_viewer(at, shared.clone())))
                        })
                        .collect();
                    let mut outcomes = Vec::with_capacity(tasks.len());
                    for (i, task) in tasks {
                        let outcome = task
                            .await
                            .unwrap_or_else(|e| ViewerOutcome::fail("task failed", e.to_string()));
                        outcomes.push((i, outcome));
                    }
                    outcomes
                })
            })
            .context("starting a viewer thread")?;
        workers.push(worker);
    }
    let sleep_to = |t: i64| {
        let at = start + ns(t);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
    };
    sleep_to(times.window_start);
    let server0 = config
        .server_pid
        .and_then(|p| procstat::cpu_sample(Some(p)));
    let self0 = procstat::cpu_sample(None);
    let machine0 = procstat::machine_sample();
    sleep_to(times.window_end);
    let server1 = config
        .server_pid
        .and_then(|p| procstat::cpu_sample(Some(p)));
    let self1 = procstat::cpu_sample(None);
    let machine1 = procstat::machine_sample();
    let memory = config.server_pid.and_then(procstat::memory);

    let mut outcomes: Vec<(usize, ViewerOutcome)> = Vec::with_capacity(viewers);
    for worker in workers {
        match worker.join() {
            Ok(o) => outcomes.extend(o),
            Err(_) => bail!("a viewer thread panicked"),
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<ViewerOutcome> = outcomes.into_iter().map(|(_, o)| o).collect();
    let mut report = HttpReport::build(&config.url, config, times, &outcomes);
    report.server_pid = config.server_pid;
    report.server_cpu_pct = procstat::cpu_percent(server0, server1);
    report.self_cpu_pct = procstat::cpu_percent(self0, self1);
    report.machine_cpu_pct = procstat::machine_percent(machine0, machine1);
    report.cores = machine1.map_or(0, |m| m.cores);
    report.server_rss_bytes = memory.map(|m| m.rss);
    report.server_anon_rss_bytes = memory.map(|m| m.anon);
    Ok(report)
}
