//! Live paths: a source of JPEG frames shared by all its viewers. Each frame is payloaded
//! once (`source.rs`) and handed to the pacer, which sends it to every playing session of
//! the path with the session's own RTP header. What feeds a path is its [`Feeder`]: a
//! gst-launch description (`--source NAME=PIPELINE`), or RTP pushed into the path's
//! pipeline by a relay or a publisher ([`source::Runner::start_rtp_input`]).
//!
//! A source starts with its first viewer (an RTSP session, an HTTP viewer, or a push
//! that records, [`push`]) and stops `linger` after the last one leaves (unless it is
//! always on). When it fails while running (a camera unplugged), the
//! viewers keep their sessions and the source is restarted with backoff (1 s doubling to
//! 30 s for a pipeline, to 5 s for a relay: [`Feeder::max_backoff`]); each change of state
//! is logged once, not each retry.

pub mod publish;
pub mod push;
pub mod relay;
pub mod source;

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use super::media::Packet;
use super::pacer::Pacer;
use super::session::Session;
use source::{Events, Running};

/// The first wait before restarting a failed source (or reconnecting a push), doubled
/// after each failure.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between restarts of a pipeline or reconnects of a push (relays:
/// [`relay::MAX_RELAY_BACKOFF`]).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

type MappedBuffer = gst::MappedBuffer<gst::buffer::Readable>;

/// One frame of a live path: its RFC 2435 packets, made once for every viewer, and the
/// whole JPEG.
pub struct LiveFrame {
    pub packets: Vec<Packet>,
    pub jpeg: MappedBuffer,
    pub width: u32,
    pub height: u32,
    /// When it was captured, on the system clock (CLOCK_MONOTONIC nanoseconds).
    pub capture_ns: u64,
    /// Frames of the path before this one (set when the path takes it).
    pub number: u64,
    /// When it left the appsink (the fan-out's latency is measured from here).
    pub made: Instant,
    /// The same moment on the wall clock (HTTP viewers' `X-Timestamp`).
    pub made_wall: std::time::SystemTime,
    /// The frame as one multipart part for HTTP viewers, made by the first viewer that
    /// sends it and shared by all (one write per viewer instead of three).
    pub http_part: std::sync::OnceLock<bytes::Bytes>,
}

impl LiveFrame {
    /// A frame from the payloader's packets and the JPEG they were made from; `None`
    /// when the JPEG cannot be read (the payloader would have refused it).
    pub fn new(packets: Vec<Packet>, jpeg: &gst::Buffer, capture_ns: u64) -> Option<LiveFrame> {
        let jpeg = jpeg.clone().into_mapped_buffer_readable().ok()?;
        let header = mjpeg_media::jpeg::parse_header(jpeg.as_slice()).ok()?;
        Some(LiveFrame {
            packets,
            width: u32::from(header.width),
            height: u32::from(header.height),
            jpeg,
            capture_ns,
            number: 0,
            made: Instant::now(),
            made_wall: std::time::SystemTime::now(),
            http_part: std::sync::OnceLock::new(),
        })
    }
}

/// Where a live path's source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not running: no viewers (on demand).
    Idle,
    /// Started, no frame yet.
    Starting,
    /// Frames are coming.
    Up,
    /// Failed; restarted after a backoff.
    Retrying,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Starting => "starting",
            Status::Up => "up",
            Status::Retrying => "retrying",
        }
    }
}

/// Starts what feeds a live path: called with the path's MTU and where its frames go;
/// dropping what it returns stops it. It is called with the path's lock held: it must not
/// block (network I/O belongs on a thread of its own, which reports through `events`).
pub trait Feeder: Send + Sync + 'static {
    fn start(&self, mtu: u32, events: Arc<dyn Events>) -> anyhow::Result<Box<dyn Running>>;
    /// What the log calls it (no credentials).
    fn describe(&self) -> String;
    /// What the statistics call the path: `live` (a pipeline) or `relay`.
    fn kind(&self) -> &'static str {
        "live"
    }
    /// The longest wait between restarts after failures. The viewers wait this long at
    /// worst once the source is back.
    fn max_backoff(&self) -> Duration {
        MAX_BACKOFF
    }
}

/// `--source NAME=PIPELINE`.
pub struct PipelineFeeder(pub String);

impl Feeder for PipelineFeeder {
    /// Builds and starts the pipeline on a thread of its own: a state change may block
    /// (an element connecting to an unreachable host), and this runs on the control
    /// plane with the path's lock held. A failure reaches the path as a stop, and is
    /// retried like any other.
    fn start(&self, mtu: u32, events: Arc<dyn Events>) -> anyhow::Result<Box<dyn Running>> {
        let started = Arc::new(Starting::default());
        let slot = started.clone();
        let description = self.0.clone();
        std::thread::Builder::new()
            .name("live-start".into())
            .spawn(move || {
                let runner = source::Runner::start(&description, mtu, events.clone());
                let mut runner_slot = lock_slot(&slot.runner);
                match runner {
                    // Stopped meanwhile: the runner goes at once (not under this lock).
                    Ok(runner) if slot.stopped.load(std::sync::atomic::Ordering::Acquire) => {
                        drop(runner_slot);
                        drop(runner);
                    }
                    Ok(runner) => *runner_slot = Some(runner),
                    Err(e) => {
                        drop(runner_slot);
                        if !slot.stopped.load(std::sync::atomic::Ordering::Acquire) {
                            events.stopped(format!("{e:#}"));
                        }
                    }
                }
            })?;
        Ok(Box::new(StartingRunner(started)))
    }

    fn describe(&self) -> String {
        self.0.clone()
    }
}

/// A pipeline being started on its own thread, then running.
#[derive(Default)]
struct Starting {
    runner: Mutex<Option<source::Runner>>,
    stopped: std::sync::atomic::AtomicBool,
}

/// Dropping it stops the pipeline, whether it is still starting or running.
struct StartingRunner(Arc<Starting>);

impl Running for StartingRunner {}

impl Drop for StartingRunner {
    fn drop(&mut self) {
        self.0
            .stopped
            .store(true, std::sync::atomic::Ordering::Release);
        let runner = lock_slot(&self.0.runner).take();
        drop(runner);
    }
}

fn lock_slot<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct LivePath {
    pub name: String,
    feeder: Box<dyn Feeder>,
    /// Run whether or not anyone watches.
    pub always_on: bool,
    /// How long an on-demand source runs after its last viewer left.
    linger: Duration,
    mtu: u32,
    pacer: Pacer,
    inner: Mutex<Inner>,
    /// The newest frame while the source is up, for HTTP viewers and snapshots: each
    /// takes the newest whenever it can, so nothing queues behind a slow one.
    latest: tokio::sync::watch::Sender<Option<Arc<LiveFrame>>>,
}

struct Inner {
    runner: Option<Box<dyn Running>>,
    /// Counts starts, so events from a stopped runner are told apart.
    run: u64,
    status: Status,
    viewers: Vec<Arc<Session>>,
    /// HTTP viewers and snapshot requests waiting for a frame (they keep an on-demand
    /// source running as RTSP viewers do).
    http_viewers: usize,
    /// Pushes recording the path to another server (they keep it running too).
    pushes: usize,
    /// When the last viewer left.
    idle_since: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The last failure said in the log (the same one again is not repeated).
    last_failure: Option<String>,
    width: u32,
    height: u32,
    frames_in: u64,
    /// JPEG bytes the source produced.
    bytes_in: u64,
    /// Frames not sent because a newer one was waiting (the pacer fell behind).
    frames_skipped: u64,
    restarts: u64,
    /// The latest fan-out latencies (appsink to the frame's last packet sent), in µs.
    fanout_us: std::collections::VecDeque<u32>,
    /// A relay's upstream figures, as last read from its run.
    upstream: Option<source::Upstream>,
}

/// Fan-out latencies kept for the percentiles.
const FANOUT_SAMPLES: usize = 1024;

/// What a running pipeline reports, for one run of the path.
struct Feed {
    path: Weak<LivePath>,
    run: u64,
}

impl Events for Feed {
    fn frame(&self, frame: LiveFrame) {
        if let Some(path) = self.path.upgrade() {
            path.on_frame(self.run, frame);
        }
    }

    fn stopped(&self, why: String) {
        if let Some(path) = self.path.upgrade() {
            path.on_stopped(self.run, why);
        }
    }
}

impl LivePath {
    /// A path fed by `feeder`, whose frames are `width`x`height` until the first frame
    /// says otherwise (from a probe, or 0x0 when unknown).
    pub fn new(
        name: String,
        feeder: Box<dyn Feeder>,
        always_on: bool,
        linger: Duration,
        mtu: u32,
        pacer: Pacer,
        size: (u32, u32),
    ) -> Arc<LivePath> {
        let path = Arc::new(LivePath {
            name,
            feeder,
            always_on,
            linger,
            mtu,
            pacer,
            inner: Mutex::new(Inner {
                runner: None,
                run: 0,
                status: Status::Idle,
                viewers: Vec::new(),
                http_viewers: 0,
                pushes: 0,
                idle_since: Some(Instant::now()),
                retry_at: None,
                backoff: FIRST_BACKOFF,
                last_failure: None,
                width: size.0,
                height: size.1,
                frames_in: 0,
                bytes_in: 0,
                frames_skipped: 0,
                restarts: 0,
                fanout_us: std::collections::VecDeque::with_capacity(FANOUT_SAMPLES),
                upstream: None,
            }),
            latest: tokio::sync::watch::Sender::new(None),
        });
        if always_on {
            path.start(&mut path.lock());
        }
        path
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The frame size clients are told (the latest frame's).
    pub fn size(&self) -> (u32, u32) {
        let inner = self.lock();
        (inner.width, inner.height)
    }

    pub fn status(&self) -> Status {
        self.lock().status
    }

    /// A frame was not sent: a newer one of the path was waiting too.
    pub fn skipped(&self) {
        self.lock().frames_skipped += 1;
    }

    /// A frame's fan-out is done: `took` from the appsink to its last packet sent.
    pub fn fanned_out(&self, took: Duration) {
        let mut inner = self.lock();
        if inner.fanout_us.len() == FANOUT_SAMPLES {
            inner.fanout_us.pop_front();
        }
        inner
            .fanout_us
            .push_back(took.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    /// What `--stats` reports about the path.
    pub fn stats(&self) -> crate::server::stats::PathStats {
        let mut inner = self.lock();
        let mut sorted: Vec<u32> = inner.fanout_us.iter().copied().collect();
        sorted.sort_unstable();
        let percentile = |p: f64| {
            (!sorted.is_empty()).then(|| {
                let i = ((sorted.len() - 1) as f64 * p).round() as usize;
                f64::from(sorted[i]) / 1000.0
            })
        };
        if let Some(upstream) = inner.runner.as_ref().and_then(|r| r.upstream()) {
            inner.upstream = Some(upstream);
        }
        let kind = self.feeder.kind();
        crate::server::stats::PathStats {
            name: self.name.clone(),
            kind,
            source: inner.status.name(),
            sessions: inner.viewers.len(),
            http_viewers: inner.http_viewers,
            frames_in: inner.frames_in,
            bytes_in: inner.bytes_in,
            fps: None,
            bitrate_bps: None,
            frames_skipped: inner.frames_skipped,
            restarts: inner.restarts,
            width: inner.width,
            height: inner.height,
            fanout_ms_p50: percentile(0.5),
            fanout_ms_p99: percentile(0.99),
            error: inner.last_failure.clone(),
            upstream: match kind {
                "relay" => Some(inner.upstream.unwrap_or_default()),
                _ => None,
            },
            pushes: Vec::new(),
        }
    }

    /// The sessions set up on the path.
    pub fn viewers(&self) -> Vec<Arc<Session>> {
        self.lock().viewers.clone()
    }

    /// A session set up on the path: the source starts if it was idle.
    pub fn join(self: &Arc<Self>, session: Arc<Session>) {
        let mut inner = self.lock();
        inner.viewers.push(session);
        inner.idle_since = None;
        if inner.status == Status::Idle {
            self.start(&mut inner);
        }
    }

    /// A session ended.
    pub fn leave(&self, session: &Session) {
        let mut inner = self.lock();
        inner.viewers.retain(|s| !std::ptr::eq(s.as_ref(), session));
        if !inner.watched() {
            inner.idle_since = Some(Instant::now());
        }
    }

    /// An HTTP viewer (or a snapshot waiting for a frame) comes: the source starts if it
    /// was idle, and runs until the returned guard is dropped (and its linger is over).
    pub fn join_http(self: &Arc<Self>) -> HttpViewing {
        let mut inner = self.lock();
        inner.http_viewers += 1;
        inner.idle_since = None;
        if inner.status == Status::Idle {
            self.start(&mut inner);
        }
        HttpViewing(self.clone())
    }

    /// A push starts recording the path: the source starts if it was idle, and runs
    /// until the returned guard is dropped (and its linger is over).
    pub fn join_push(self: &Arc<Self>) -> PushConsuming {
        let mut inner = self.lock();
        inner.pushes += 1;
        inner.idle_since = None;
        if inner.status == Status::Idle {
            self.start(&mut inner);
        }
        PushConsuming(self.clone())
    }

    /// The newest frame, as it changes (`None` while the source is not running).
    pub fn frames(&self) -> tokio::sync::watch::Receiver<Option<Arc<LiveFrame>>> {
        self.latest.subscribe()
    }

    /// The newest frame while the source is up.
    pub fn latest(&self) -> Option<Arc<LiveFrame>> {
        if self.status() != Status::Up {
            return None;
        }
        self.latest.borrow().clone()
    }

    /// Once a second: stops a source nobody watches, restarts a failed one when its
    /// backoff is over.
    pub fn tick(self: &Arc<Self>, now: Instant) {
        let mut inner = self.lock();
        let watched = inner.watched();
        let wanted = self.always_on || watched;
        let lingered = inner
            .idle_since
            .is_some_and(|since| now.duration_since(since) >= self.linger);
        if !self.always_on && !watched && lingered && inner.status != Status::Idle {
            tracing::info!("path {}: no viewers, source stopped", self.name);
            inner.status = Status::Idle;
            inner.retry_at = None;
            inner.run += 1;
            stop(inner.runner.take());
            // A stopped source has no current frame: a snapshot waits for a new one.
            self.latest.send_replace(None);
            return;
        }
        if wanted && inner.status == Status::Retrying && inner.retry_at.is_none_or(|at| now >= at) {
            inner.restarts += 1;
            self.start(&mut inner);
        }
    }

    /// Starts the source again from scratch (a publisher's new stream: fresh
    /// depayloader state); the path waits for its next frame.
    pub fn restart(self: &Arc<Self>) {
        let mut inner = self.lock();
        inner.status = Status::Starting;
        self.latest.send_replace(None);
        self.start(&mut inner);
    }

    fn start(self: &Arc<Self>, inner: &mut Inner) {
        inner.run += 1;
        stop(inner.runner.take());
        let feed = Arc::new(Feed {
            path: Arc::downgrade(self),
            run: inner.run,
        });
        match self.feeder.start(self.mtu, feed) {
            Ok(runner) => {
                if inner.status == Status::Idle {
                    tracing::info!("path {}: source started", self.name);
                }
                inner.runner = Some(runner);
                if inner.status != Status::Retrying {
                    inner.status = Status::Starting;
                }
            }
            Err(e) => self.failed(inner, format!("{e:#}")),
        }
    }

    fn on_frame(self: &Arc<Self>, run: u64, mut frame: LiveFrame) {
        let frame = {
            let mut inner = self.lock();
            if inner.run != run {
                return;
            }
            if inner.status != Status::Up {
                if inner.last_failure.take().is_some() {
                    tracing::info!("path {}: source is back", self.name);
                }
                inner.status = Status::Up;
                inner.backoff = FIRST_BACKOFF;
            }
            frame.number = inner.frames_in;
            inner.frames_in += 1;
            inner.bytes_in += frame.jpeg.len() as u64;
            inner.width = frame.width;
            inner.height = frame.height;
            let frame = Arc::new(frame);
            // Under the lock: a stop that clears it cannot come in between.
            self.latest.send_replace(Some(frame.clone()));
            frame
        };
        self.pacer.live(self.clone(), frame);
    }

    fn on_stopped(&self, run: u64, why: String) {
        let mut inner = self.lock();
        if inner.run != run {
            return;
        }
        // Dropping the runner waits for the thread this is called from: another thread
        // stops it.
        stop(inner.runner.take());
        self.failed(&mut inner, why);
    }

    fn failed(&self, inner: &mut Inner, why: String) {
        // GStreamer's messages may quote a URL with its credentials.
        let why = relay::redact_text(&why);
        let wait = inner.backoff;
        if inner.last_failure.as_deref() != Some(why.as_str()) {
            tracing::warn!(
                "path {}: source failed: {why}; retrying in {} s, viewers keep their sessions",
                self.name,
                wait.as_secs()
            );
        } else {
            tracing::debug!("path {}: source failed again: {why}", self.name);
        }
        inner.last_failure = Some(why);
        inner.status = Status::Retrying;
        // New viewers wait for the source's next frame, not its last before the failure.
        self.latest.send_replace(None);
        inner.retry_at = Some(Instant::now() + wait);
        inner.backoff = (wait * 2).min(self.feeder.max_backoff());
    }
}

impl Inner {
    /// Anyone takes the path's frames: RTSP sessions, HTTP viewers, pushes.
    fn watched(&self) -> bool {
        !self.viewers.is_empty() || self.http_viewers > 0 || self.pushes > 0
    }
}

/// A push recording a live path, while it records.
pub struct PushConsuming(Arc<LivePath>);

impl Drop for PushConsuming {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.pushes = inner.pushes.saturating_sub(1);
        if !inner.watched() {
            inner.idle_since = Some(Instant::now());
        }
    }
}

/// An HTTP viewer of a live path, while it watches.
pub struct HttpViewing(Arc<LivePath>);

impl Drop for HttpViewing {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.http_viewers = inner.http_viewers.saturating_sub(1);
        if !inner.watched() {
            inner.idle_since = Some(Instant::now());
        }
    }
}

/// Stops a runner on a thread of its own (stopping waits for its bus thread, which may be
/// the caller).
fn stop(runner: Option<Box<dyn Running>>) {
    if let Some(runner) = runner {
        let _ = std::thread::Builder::new()
            .name("live-stop".into())
            .spawn(move || drop(runner));
    }
}
