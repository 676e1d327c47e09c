//! `mjpeg-player`: plays Motion-JPEG RTSP streams with live loss statistics.
//!
//! Threads: the main thread runs the session (RTSP requests, keep-alives, commands,
//! stop conditions, the overlay text); a reader thread owns the control connection's
//! input (replies and, over TCP, interleaved packets); over UDP one thread receives RTP
//! and one RTCP. Received packets go straight into the pipeline (`appsrc`), which decodes
//! in the receiving thread and shows each frame as soon as it is decoded: no jitter
//! buffer, no clock sync.
//!
//! The parts: `session.rs` (the loop: start, stop conditions, commands), `sinks.rs` (the
//! display and the video sink), `keys.rs` (terminal and window keys), `summary.rs` (the
//! overlay text, the summary and its JSON), [`pipeline`] (the GStreamer pipeline and its
//! statistics), [`standard`] and [`lab`] (the two dialects of server), [`control`] (the
//! RTSP control connection) and [`record`] (`--record`).

pub use crate::rtsp_client as control;
pub use rtsp_core::describe;
mod keys;
pub mod lab;
pub mod pipeline;
pub mod record;
mod session;
mod sinks;
pub mod standard;
mod summary;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Result;

pub use keys::{RawTerminal, read_keys, window_key};
use pipeline::Stats;
pub use session::run;
pub use sinks::has_display;
pub use summary::{summary_json, summary_text};

use crate::rtsp::Dialect;

/// How the player receives the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportChoice {
    Udp,
    Tcp,
    /// UDP, then TCP interleaved if no UDP packet arrives in time.
    Auto,
    /// The server's multicast group for the stream (RFC 2326 12.39), joined on the
    /// address the player reached the server from; receiver reports go to the group.
    Multicast,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    pub transport: TransportChoice,
    pub headless: bool,
    pub overlay: bool,
    pub frames: Option<u64>,
    pub duration: Option<Duration>,
    /// No frame for this long (once playing): ask the server whether the session lives.
    pub stall_timeout: Duration,
    pub stats_json: Option<PathBuf>,
    /// Write every received frame to this file in lab `.Mjpeg` format.
    pub record: Option<PathBuf>,
    /// Where key presses in the video window go (the same commands as the terminal's).
    pub window_keys: Option<Arc<Mutex<mpsc::Sender<Command>>>>,
    /// Speak the networking lab's dialect (otherwise detected when DESCRIBE gets no answer).
    pub lab: bool,
    /// How an `rtsps://` server's certificate is checked (`--insecure`: not at all).
    pub verify: crate::tls::Verify,
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

/// What the run measured and how it went, for the summary and `--stats-json`.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub stats: Stats,
    pub first_frame: Option<Duration>,
    /// The dialect the server spoke (lab: `--lab`, or found when DESCRIBE went unanswered).
    pub dialect: Dialect,
    pub transport_tcp: bool,
    /// `--transport multicast`: the stream came from the server's multicast group.
    pub transport_multicast: bool,
    /// `--transport auto` that ended on TCP: no UDP packet came in time, or the server
    /// refused UDP.
    pub transport_fallback: bool,
    /// No window: `--headless`, or no display.
    pub headless: bool,
    /// The video sink that played (`fakesink` when headless).
    pub video_sink: &'static str,
    pub ended_by: Ending,
    pub controls: Controls,
}

/// What ended a run that played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server ended the stream (RTCP BYE).
    Server,
    /// `--frames` frames were shown.
    Frames,
    /// `--duration` passed.
    Duration,
    /// The quit key (q or Esc).
    User,
    /// The video window was closed.
    Window,
    /// No frame came for a while (8 s) although the stream was playing.
    Stalled,
}

impl Ending {
    /// The name in `--stats-json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ending::Server => "server",
            Ending::Frames => "frames",
            Ending::Duration => "duration",
            Ending::User => "user",
            Ending::Window => "window",
            Ending::Stalled => "stalled",
        }
    }
}

/// The user's commands the server carried out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controls {
    pub pauses: u64,
    pub resumes: u64,
    pub seeks: u64,
    /// Times frames stopped while the session stayed alive (the player waited for them).
    pub stalls: u64,
}

/// The server side of a session, whichever dialect it speaks.
pub trait Remote {
    /// PLAY, from `from` seconds when given.
    fn play(&mut self, from: Option<f64>) -> Result<()>;
    fn pause(&mut self) -> Result<()>;
    /// Keeps the session alive; says whether the server answered for it (`false` when
    /// it cannot tell).
    fn keepalive(&mut self) -> bool;
    fn keepalive_interval(&self) -> Option<Duration>;
    fn teardown(&mut self);
    /// The stream's length, when the server offers a range to seek in.
    fn duration(&self) -> Option<f64>;
    fn is_tcp(&self) -> bool;
    /// Lab servers' RTP timestamps are Unix seconds: no jitter to measure on them.
    fn dialect(&self) -> Dialect;
}
