//! `mjpeg-player`: plays Motion-JPEG RTSP streams with live loss statistics.
//!
//! Threads: the main thread runs the session (RTSP requests, keep-alives, commands,
//! stop conditions, the overlay text); a reader thread owns the control connection's
//! input (replies and, over TCP, interleaved packets); over UDP one thread receives RTP
//! and one RTCP. Received packets go straight into the pipeline (`appsrc`), which decodes
//! in the receiving thread and shows each frame as soon as it is decoded: no jitter
//! buffer, no clock sync.

pub mod control;
pub use rtsp_core::describe;
pub mod lab;
pub mod pipeline;
pub mod record;
pub mod standard;

use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use rtsp_types::Url;

use pipeline::{Player, Stats};

use crate::rtsp::Dialect;

/// How the player receives the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportChoice {
    Udp,
    Tcp,
    /// UDP, then TCP interleaved if no UDP packet arrives in time.
    Auto,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub transport: TransportChoice,
    pub headless: bool,
    pub overlay: bool,
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
    pub stats_json: Option<PathBuf>,
    /// Write every received frame to this file in lab `.Mjpeg` format.
    pub record: Option<PathBuf>,
    /// Where key presses in the video window go (the same commands as the terminal's).
    pub window_keys: Option<Arc<Mutex<mpsc::Sender<Command>>>>,
    /// Speak the networking lab's dialect (otherwise detected when DESCRIBE gets no answer).
    pub lab: bool,
    /// When the process started, for the time to the first frame.
    pub started: Instant,
}

/// What the user (keys) or the stream asks the session to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    TogglePause,
    Seek(i32),
    ToggleOverlay,
    Quit,
}

/// What the run measured, for the summary and `--stats-json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub stats: Stats,
    pub first_frame: Option<Duration>,
    pub transport_tcp: bool,
}

pub fn has_display() -> bool {
    std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty())
        || std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty())
}

/// The server side of a session, whichever dialect it speaks.
pub trait Remote {
    /// PLAY, from `from` seconds when given.
    fn play(&mut self, from: Option<f64>) -> Result<()>;
    fn pause(&mut self) -> Result<()>;
    fn keepalive(&mut self);
    fn keepalive_interval(&self) -> Option<Duration>;
    fn teardown(&mut self);
    /// The stream's length, when the server offers a range to seek in.
    fn duration(&self) -> Option<f64>;
    fn is_tcp(&self) -> bool;
    /// Lab servers' RTP timestamps are Unix seconds: no jitter to measure on them.
    fn dialect(&self) -> Dialect;
}

/// How long DESCRIBE may go unanswered before the server is taken for a lab server
/// (which ignores DESCRIBE).
const LAB_DETECT: Duration = Duration::from_millis(1500);
/// No frame for this long (while playing) ends the run.
const NO_FRAMES: Duration = Duration::from_secs(8);

/// Plays `options.url` until the stream ends, a stop condition, or a quit command.
pub fn run(options: Options, commands: mpsc::Receiver<Command>) -> Result<Summary> {
    gst::init()?;
    gstmjpegrtp::plugin_register_static()?;
    let url = Url::parse(&options.url).with_context(|| format!("{} is not a URL", options.url))?;
    if url.scheme() != "rtsp" {
        bail!("{url}: only rtsp:// URLs are supported");
    }
    let first_frame: Arc<Mutex<Option<Duration>>> = Arc::default();
    let started = options.started;
    let frames_seen = first_frame.clone();
    let on_frame = Arc::new(move |n: u64| {
        if n == 1
            && let Ok(mut f) = frames_seen.lock()
        {
            let elapsed = started.elapsed();
            *f = Some(elapsed);
            eprintln!(
                "mjpeg-player: first frame shown {:.1} ms after start",
                elapsed.as_secs_f64() * 1000.0
            );
        }
    });
    let player = Arc::new(open_player(&options, on_frame)?);
    let recorder = match &options.record {
        Some(path) => Some(record::Recorder::start(path, &player)?),
        None => None,
    };
    player
        .pipeline
        .set_state(gst::State::Playing)
        .context("starting the pipeline")?;
    let remote: Result<Box<dyn Remote>> = if options.lab {
        lab::Lab::start(&url, &player).map(|r| Box::new(r) as Box<dyn Remote>)
    } else {
        match standard::Standard::start(&url, options.transport, &player, LAB_DETECT) {
            Ok(r) => Ok(Box::new(r) as Box<dyn Remote>),
            Err(e) if e.downcast_ref::<control::NoReply>().is_some() => {
                eprintln!("mjpeg-player: no answer to DESCRIBE: trying the lab dialect");
                lab::Lab::start(&url, &player).map(|r| Box::new(r) as Box<dyn Remote>)
            }
            Err(e) => Err(e),
        }
    };
    let mut remote = match remote {
        Ok(r) => r,
        Err(e) => {
            let _ = player.pipeline.set_state(gst::State::Null);
            return Err(e);
        }
    };
    let result = drive(&options, &player, remote.as_mut(), &commands);
    remote.teardown();
    let last = player.stats(remote.dialect());
    let _ = player.pipeline.set_state(gst::State::Null);
    if let Some(recorder) = recorder {
        let written = recorder.finish()?;
        eprintln!("mjpeg-player: recorded {written} frames");
    }
    result?;
    Ok(Summary {
        stats: last,
        first_frame: first_frame.lock().ok().and_then(|f| *f),
        transport_tcp: remote.is_tcp(),
    })
}

/// Video sinks to try, best first. `autovideosink` would probe every sink it knows (1.5 s
/// under Xvfb here, and it sometimes failed to start); trying the usual ones directly
/// opens a window in a few milliseconds.
fn video_sinks(headless: bool) -> &'static [&'static str] {
    if headless {
        &["fakesink"]
    } else if std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty()) {
        &["xvimagesink", "ximagesink", "autovideosink"]
    } else {
        &["waylandsink", "autovideosink"]
    }
}

/// The pipeline with the first video sink that opens (reaches READY).
fn open_player(options: &Options, on_frame: Arc<dyn Fn(u64) + Send + Sync>) -> Result<Player> {
    let mut last_error = None;
    for sink in video_sinks(options.headless) {
        if gst::ElementFactory::find(sink).is_none() {
            continue;
        }
        let on_frame = on_frame.clone();
        let player = Player::new(sink, options.overlay, move |n| on_frame(n))?;
        match player.pipeline.set_state(gst::State::Ready) {
            Ok(_) => return Ok(player),
            Err(e) => {
                let _ = player.pipeline.set_state(gst::State::Null);
                last_error = Some(anyhow!("{sink}: {e}"));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("no video sink")))
        .context("cannot open a video window (try --headless)")
}

/// The session's main loop: stop conditions, bus messages, keep-alives, commands and the
/// overlay text.
fn drive(
    options: &Options,
    player: &Player,
    remote: &mut dyn Remote,
    commands: &mpsc::Receiver<Command>,
) -> Result<()> {
    let bus = player.pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
    let begin = Instant::now();
    let mut position = Position::new(0.0);
    let mut last_keepalive = Instant::now();
    // The overlay gets its first text at once, then every half second.
    let mut last_overlay: Option<Instant> = None;
    let mut last_progress = (Instant::now(), 0u64);
    let mut rate_window = (Instant::now(), 0u64);
    let mut fps = 0.0;
    let mut paused = false;
    let mut overlay = options.overlay;
    loop {
        let stats = player.stats(remote.dialect());
        if options
            .frames
            .is_some_and(|limit| stats.frames_shown >= limit)
            || options.duration.is_some_and(|d| begin.elapsed() >= d)
        {
            return Ok(());
        }
        if let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e)
                    if e.error().matches(gst::ResourceError::NotFound)
                        && message
                            .src()
                            .is_some_and(|s| s.path_string().contains("sink")) =>
                {
                    // Video sinks report a closed window this way: the user quit.
                    eprintln!("mjpeg-player: {}", e.error());
                    return Ok(());
                }
                gst::MessageView::Error(e) => return Err(anyhow!("{}", e.error())),
                gst::MessageView::Element(e)
                    if e.structure().is_some_and(|s| s.name() == "rtcp-bye") =>
                {
                    eprintln!("mjpeg-player: the server ended the stream");
                    return Ok(());
                }
                _ => {}
            }
            continue;
        }
        if stats.frames_shown != last_progress.1 || paused {
            last_progress = (Instant::now(), stats.frames_shown);
        } else if last_progress.0.elapsed() > NO_FRAMES {
            if stats.frames_shown == 0 {
                bail!(
                    "no frame arrived within {}s of PLAY{}",
                    NO_FRAMES.as_secs(),
                    if remote.is_tcp() {
                        ""
                    } else {
                        ": a firewall may be blocking UDP; try --transport tcp"
                    }
                );
            }
            eprintln!(
                "mjpeg-player: no frame for {}s, stopping",
                NO_FRAMES.as_secs()
            );
            return Ok(());
        }
        if let Some(every) = remote.keepalive_interval()
            && last_keepalive.elapsed() >= every
        {
            last_keepalive = Instant::now();
            remote.keepalive();
        }
        if rate_window.0.elapsed() >= Duration::from_secs(1) {
            fps =
                (stats.frames_shown - rate_window.1) as f64 / rate_window.0.elapsed().as_secs_f64();
            rate_window = (Instant::now(), stats.frames_shown);
        }
        if overlay && last_overlay.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            last_overlay = Some(Instant::now());
            player.set_overlay_text(&overlay_text(&stats, fps, paused));
        }
        match commands.recv_timeout(Duration::from_millis(20)) {
            Ok(Command::Quit) => return Ok(()),
            Ok(Command::ToggleOverlay) => {
                overlay = !overlay;
                player.set_overlay_visible(overlay);
            }
            Ok(Command::TogglePause) => {
                if paused {
                    remote.play(None)?;
                    position.resume();
                } else {
                    remote.pause()?;
                    position.pause();
                }
                paused = !paused;
                eprintln!(
                    "mjpeg-player: {}",
                    if paused { "paused" } else { "playing" }
                );
            }
            Ok(Command::Seek(delta)) => {
                let Some(duration) = remote.duration() else {
                    eprintln!("mjpeg-player: the server offers no range to seek in");
                    continue;
                };
                let target =
                    (position.now() + f64::from(delta)).clamp(0.0, (duration - 0.05).max(0.0));
                remote.play(Some(target))?;
                position = Position::new(target);
                paused = false;
                eprintln!("mjpeg-player: at {target:.1} s");
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
    }
}

/// The play position from the wall clock since the last PLAY.
struct Position {
    start: f64,
    since: Option<Instant>,
}

impl Position {
    fn new(start: f64) -> Position {
        Position {
            start,
            since: Some(Instant::now()),
        }
    }
    fn now(&self) -> f64 {
        self.start + self.since.map_or(0.0, |s| s.elapsed().as_secs_f64())
    }
    fn pause(&mut self) {
        self.start = self.now();
        self.since = None;
    }
    fn resume(&mut self) {
        self.since = Some(Instant::now());
    }
}

/// Jitter as text, `n/a` for lab streams.
fn jitter_text(jitter_ms: Option<f64>) -> String {
    jitter_ms.map_or("n/a".to_string(), |j| format!("{j:.2} ms"))
}

fn overlay_text(stats: &Stats, fps: f64, paused: bool) -> String {
    format!(
        "{}{:.1} fps  {:.0} kbit/s\nlost {} of {} ({:.2}%)  jitter {}\nframes dropped {}",
        if paused { "PAUSED  " } else { "" },
        fps,
        stats.bitrate as f64 / 1000.0,
        stats.packets_lost.max(0),
        stats.packets_expected,
        stats.loss_rate() * 100.0,
        jitter_text(stats.jitter_ms),
        stats.frames_dropped
    )
}

/// The terminal in single-key mode (no line editing, no echo) while the player runs, so
/// keys act at once; restored on drop. Does nothing when stdin is not a terminal.
pub struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    pub fn enable() -> RawTerminal {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a valid termios struct.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawTerminal { saved: None };
            }
            let mut term: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut term) != 0 {
                return RawTerminal { saved: None };
            }
            let saved = term;
            term.c_lflag &= !(libc::ICANON | libc::ECHO);
            term.c_cc[libc::VMIN] = 1;
            term.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(0, libc::TCSANOW, &term) != 0 {
                return RawTerminal { saved: None };
            }
            RawTerminal { saved: Some(saved) }
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            // SAFETY: restores the settings read in `enable`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, saved);
            }
        }
    }
}

/// Keys from the terminal (or any stdin): space/p = pause, left/right arrows (or , and .)
/// = seek -/+5 s, s = overlay, q/Esc = quit.
pub fn read_keys(commands: mpsc::Sender<Command>) {
    let mut stdin = std::io::stdin();
    let mut byte = [0u8; 1];
    let mut escape: Vec<u8> = Vec::new();
    while let Ok(1) = stdin.read(&mut byte) {
        let command = if !escape.is_empty() {
            escape.push(byte[0]);
            match escape.as_slice() {
                [0x1b, b'['] => continue,
                [0x1b, b'[', b'C'] => Some(Command::Seek(5)),
                [0x1b, b'[', b'D'] => Some(Command::Seek(-5)),
                _ => None,
            }
        } else {
            match byte[0] {
                0x1b => {
                    escape.push(0x1b);
                    continue;
                }
                b' ' | b'p' => Some(Command::TogglePause),
                b'.' => Some(Command::Seek(5)),
                b',' => Some(Command::Seek(-5)),
                b's' => Some(Command::ToggleOverlay),
                b'q' => Some(Command::Quit),
                _ => None,
            }
        };
        escape.clear();
        if let Some(c) = command
            && commands.send(c).is_err()
        {
            return;
        }
    }
}

/// A key pressed in the video window, by its GstNavigation name.
pub fn window_key(name: &str) -> Option<Command> {
    match name {
        "space" | "p" => Some(Command::TogglePause),
        "Left" | "comma" => Some(Command::Seek(-5)),
        "Right" | "period" => Some(Command::Seek(5)),
        "s" => Some(Command::ToggleOverlay),
        "q" | "Escape" => Some(Command::Quit),
        _ => None,
    }
}

/// The summary printed at exit, with the lab client's "RTP packet loss rate".
pub fn summary_text(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "frames shown: {}\npackets received: {}, expected: {}, lost: {}\njitter: {}\nframes dropped by the depayloader: {}\ntime to first frame: {}\nRTP packet loss rate: {:.2}%",
        s.frames_shown,
        s.packets_received,
        s.packets_expected,
        s.packets_lost.max(0),
        jitter_text(s.jitter_ms),
        s.frames_dropped,
        summary.first_frame.map_or("-".to_string(), |d| format!(
            "{:.1} ms",
            d.as_secs_f64() * 1000.0
        )),
        s.loss_rate() * 100.0
    )
}

/// The same as JSON (written by hand: a flat object of numbers; `jitter_ms` is null for
/// lab streams).
pub fn summary_json(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "{{\"frames_shown\": {}, \"packets_received\": {}, \"packets_expected\": {}, \"packets_lost\": {}, \"loss_rate\": {}, \"jitter_ms\": {}, \"frames_dropped\": {}, \"time_to_first_frame_ms\": {}, \"transport\": \"{}\"}}\n",
        s.frames_shown,
        s.packets_received,
        s.packets_expected,
        s.packets_lost,
        s.loss_rate(),
        s.jitter_ms
            .map_or("null".to_string(), |j| format!("{j:.3}")),
        s.frames_dropped,
        summary.first_frame.map_or("null".to_string(), |d| format!(
            "{:.1}",
            d.as_secs_f64() * 1000.0
        )),
        if summary.transport_tcp { "tcp" } else { "udp" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(jitter_ms: Option<f64>) -> Stats {
        Stats {
            frames_shown: 30,
            packets_received: 99,
            packets_expected: 100,
            packets_lost: 1,
            jitter_ms,
            bitrate: 2_000_000,
            frames_dropped: 1,
        }
    }

    #[test]
    fn the_overlay_shows_jitter_for_standard_streams_and_not_for_lab_ones() {
        assert_eq!(
            overlay_text(&stats(Some(1.234)), 25.0, false),
            "25.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter 1.23 ms\nframes dropped 1"
        );
        assert_eq!(
            overlay_text(&stats(None), 20.0, true),
            "PAUSED  20.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter n/a\nframes dropped 1"
        );
    }

    #[test]
    fn the_summary_and_its_json_say_lab_jitter_is_not_available() {
        let summary = |jitter_ms| Summary {
            stats: stats(jitter_ms),
            first_frame: Some(Duration::from_millis(42)),
            transport_tcp: false,
        };
        let standard = summary(Some(0.5));
        assert!(summary_text(&standard).contains("\njitter: 0.50 ms\n"));
        assert!(summary_json(&standard).contains("\"jitter_ms\": 0.500,"));
        let lab = summary(None);
        assert!(summary_text(&lab).contains("\njitter: n/a\n"));
        assert!(summary_json(&lab).contains("\"jitter_ms\": null,"));
    }
}
