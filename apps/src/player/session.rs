//! The session loop: starts the pipeline and the session with the server (standard RTSP,
//! else the lab dialect when DESCRIBE goes unanswered), then drives it until the stream
//! ends, a stop condition is met or the user quits.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use rtsp_types::Url;

use super::pipeline::Player;
use super::sinks::open_player;
use super::summary::overlay_text;
use super::{
    Command, Controls, Ending, Options, Remote, Summary, TransportChoice, control, lab, record,
    standard,
};

/// How long DESCRIBE may go unanswered before the server is taken for a lab server
/// (which ignores DESCRIBE).
const LAB_DETECT: Duration = Duration::from_millis(1500);
/// No frame for this long after PLAY is an error. No frame for `--stall-timeout` later has
/// the player ask the server whether the session is alive: if it is (a live source in an
/// outage), the player waits for the stream, asking again each time; if not, the run ends.
const NO_FRAMES: Duration = Duration::from_secs(8);

/// Plays `options.url` until the stream ends, a stop condition, or a quit command.
pub fn run(options: Options, commands: mpsc::Receiver<Command>) -> Result<Summary> {
    gst::init()?;
    gstmjpegrtp::plugin_register_static()?;
    let url = Url::parse(&options.url).with_context(|| format!("{} is not a URL", options.url))?;
    let secure = match url.scheme() {
        "rtsp" => false,
        "rtsps" => true,
        _ => bail!("{url}: only rtsp:// and rtsps:// URLs are supported"),
    };
    if secure && options.lab {
        bail!("{url}: the lab dialect sends media over UDP, which rtsps:// does not carry");
    }
    // Over TLS the media stays inside the connection (RTP/AVP/TCP interleaved).
    let transport = if secure {
        if options.transport != TransportChoice::Tcp {
            tracing::info!("rtsps://: receiving interleaved in the TLS connection (TCP)");
        }
        TransportChoice::Tcp
    } else {
        options.transport
    };
    let first_frame: Arc<Mutex<Option<Duration>>> = Arc::default();
    let started = options.started;
    let frames_seen = first_frame.clone();
    let on_frame = Arc::new(move |n: u64| {
        if n == 1
            && let Ok(mut f) = frames_seen.lock()
        {
            let elapsed = started.elapsed();
            *f = Some(elapsed);
            tracing::info!(
                "first frame shown {:.1} ms after start",
                elapsed.as_secs_f64() * 1000.0
            );
        }
    });
    let (player, video_sink) = open_player(&options, on_frame)?;
    if let Some(keys) = options.window_keys.clone() {
        player.on_window_key(move |name| {
            if let Some(command) = super::window_key(name)
                && let Ok(keys) = keys.lock()
            {
                let _ = keys.send(command);
            }
        })?;
    }
    let player = Arc::new(player);
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
        match standard::Standard::start(&url, transport, options.verify, &player, LAB_DETECT) {
            Ok(r) => Ok(Box::new(r) as Box<dyn Remote>),
            Err(e) if !secure && e.downcast_ref::<control::NoReply>().is_some() => {
                tracing::info!("no answer to DESCRIBE: trying the lab dialect");
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
    let mut controls = Controls::default();
    let result = drive(&options, &player, remote.as_mut(), &commands, &mut controls);
    remote.teardown();
    let last = player.stats(remote.dialect());
    let _ = player.pipeline.set_state(gst::State::Null);
    if let Some(recorder) = recorder {
        let written = recorder.finish()?;
        tracing::info!("recorded {written} frames");
    }
    let ended_by = result?;
    Ok(Summary {
        stats: last,
        first_frame: first_frame.lock().ok().and_then(|f| *f),
        dialect: remote.dialect(),
        transport_tcp: remote.is_tcp(),
        transport_multicast: transport == TransportChoice::Multicast && !remote.is_tcp(),
        // `auto` starts on UDP: TCP means it fell back.
        transport_fallback: transport == TransportChoice::Auto && remote.is_tcp(),
        headless: options.headless,
        video_sink,
        ended_by,
        controls,
    })
}

/// The session's main loop: stop conditions, bus messages, keep-alives, commands and the
/// overlay text. Returns what ended the run; counts the commands carried out in `controls`.
fn drive(
    options: &Options,
    player: &Player,
    remote: &mut dyn Remote,
    commands: &mpsc::Receiver<Command>,
    controls: &mut Controls,
) -> Result<Ending> {
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
    let mut waiting = false;
    let mut overlay = options.overlay;
    loop {
        let stats = player.stats(remote.dialect());
        if options
            .frames
            .is_some_and(|limit| stats.frames_shown >= limit)
        {
            return Ok(Ending::Frames);
        }
        if options.duration.is_some_and(|d| begin.elapsed() >= d) {
            return Ok(Ending::Duration);
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
                    tracing::info!("{}", e.error());
                    return Ok(Ending::Window);
                }
                gst::MessageView::Error(e) => return Err(anyhow!("{}", e.error())),
                gst::MessageView::Element(e)
                    if e.structure().is_some_and(|s| {
                        // Only the stream's sender ends it: on a multicast group other
                        // receivers leave with a BYE of their own.
                        s.name() == "rtcp-bye" && s.get::<bool>("sender").unwrap_or(false)
                    }) =>
                {
                    tracing::info!("the server ended the stream");
                    return Ok(Ending::Server);
                }
                _ => {}
            }
            continue;
        }
        if stats.frames_shown != last_progress.1 || paused {
            if waiting && stats.frames_shown != last_progress.1 {
                tracing::info!("the stream is back");
                waiting = false;
            }
            last_progress = (Instant::now(), stats.frames_shown);
        } else if stats.frames_shown == 0 && last_progress.0.elapsed() > NO_FRAMES
            || stats.frames_shown > 0 && last_progress.0.elapsed() > options.stall_timeout
        {
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
            // Frames stopped: the session decides whether this is an outage to wait out.
            last_keepalive = Instant::now();
            let quiet = options.stall_timeout.as_secs_f64();
            if !remote.keepalive() {
                tracing::warn!("no frame for {quiet:.1}s, stopping");
                return Ok(Ending::Stalled);
            }
            if !waiting {
                tracing::warn!(
                    "no frame for {quiet:.1}s; the session is alive: waiting for the stream"
                );
                waiting = true;
                controls.stalls += 1;
            }
            last_progress = (Instant::now(), stats.frames_shown);
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
            player.set_overlay_text(&overlay_text(&stats, fps, paused, waiting));
        }
        match commands.recv_timeout(Duration::from_millis(20)) {
            Ok(Command::Quit) => return Ok(Ending::User),
            Ok(Command::ToggleOverlay) => {
                overlay = !overlay;
                player.set_overlay_visible(overlay);
            }
            Ok(Command::TogglePause) => {
                if paused {
                    remote.play(None)?;
                    position.resume();
                    controls.resumes += 1;
                } else {
                    remote.pause()?;
                    position.pause();
                    controls.pauses += 1;
                }
                paused = !paused;
                tracing::info!("{}", if paused { "paused" } else { "playing" });
            }
            Ok(Command::Seek(delta)) => {
                let Some(duration) = remote.duration() else {
                    tracing::warn!(
                        "this stream cannot seek (a live path, or multicast: one position for all its viewers)"
                    );
                    continue;
                };
                let target =
                    (position.now() + f64::from(delta)).clamp(0.0, (duration - 0.05).max(0.0));
                remote.play(Some(target))?;
                controls.seeks += 1;
                position = Position::new(target);
                paused = false;
                tracing::info!("at {target:.1} s");
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
