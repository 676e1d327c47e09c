//! mjpeg-player: plays Motion-JPEG RTSP streams (argument parsing and wiring; the player
//! is `mjpeg_rtsp::player`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use mjpeg_rtsp::player::{self, TransportChoice};

/// Plays a Motion-JPEG RTSP stream (RTP/JPEG, RFC 2435) with live loss statistics: from
/// mjpeg-rtsp-server, gst-rtsp-server, ffmpeg-based servers, IP cameras and the
/// networking lab's servers.
///
/// Keys (in the terminal or the video window): space = pause/resume, left/right = seek -/+5 s,
/// s = statistics overlay, q or Esc = quit. At exit it prints a summary with the
/// "RTP packet loss rate".
#[derive(Parser, Debug)]
#[command(name = "mjpeg-player", version)]
struct Args {
    /// The stream, rtsp://HOST[:PORT]/PATH, or rtsps://HOST[:PORT]/PATH over TLS (port
    /// 322 by default; media then comes interleaved in the TLS connection)
    url: String,
    /// How to receive RTP: udp, tcp (interleaved), auto (TCP when UDP does not arrive),
    /// or multicast (the server's group for the stream, joined on the address the
    /// server is reached from)
    #[arg(long, value_enum, default_value = "udp")]
    transport: TransportChoice,
    /// Decode into a fake sink instead of a window (automatic without a display)
    #[arg(long)]
    headless: bool,
    /// Hide the statistics overlay
    #[arg(long)]
    no_overlay: bool,
    /// Stop after N frames shown
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Stop after S seconds
    #[arg(long, value_name = "S")]
    duration: Option<f64>,
    /// Seconds without a frame (once playing) before asking the server whether the
    /// session lives: if it does (a live camera in an outage), keep waiting; if not, stop
    #[arg(long, value_name = "S", default_value_t = 8.0)]
    stall_timeout: f64,
    /// Write the summary as JSON to FILE
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Record every received frame to FILE.Mjpeg (lab format)
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Speak the networking lab's RTSP dialect (detected anyway when the server does not
    /// answer DESCRIBE)
    #[arg(long)]
    lab: bool,
    /// rtsps://: accept any certificate (self-signed, another host's) instead of checking
    /// it against the system's roots; the stream is encrypted but the server unverified
    #[arg(long)]
    insecure: bool,
    /// More log detail: -v debug, -vv trace (RUST_LOG, when set, takes precedence)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args = Args::parse();
    mjpeg_rtsp::logging::init("mjpeg-player", args.verbose);
    let mut headless = args.headless;
    if !headless && !player::has_display() {
        tracing::info!("no display (DISPLAY/WAYLAND_DISPLAY unset): playing headless");
        headless = true;
    }
    let duration = match args.duration {
        Some(d) if !(d.is_finite() && d > 0.0) => {
            tracing::error!("--duration must be a positive number of seconds");
            return ExitCode::from(2);
        }
        d => d.map(Duration::from_secs_f64),
    };
    if !(args.stall_timeout.is_finite() && args.stall_timeout > 0.0) {
        tracing::error!("--stall-timeout must be a positive number of seconds");
        return ExitCode::from(2);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let window_keys = Some(std::sync::Arc::new(std::sync::Mutex::new(tx.clone())));
    let options = player::Options {
        url: args.url,
        transport: args.transport,
        headless,
        overlay: !args.no_overlay,
        frames: args.frames,
        duration,
        stall_timeout: Duration::from_secs_f64(args.stall_timeout),
        stats_json: args.stats_json.clone(),
        lab: args.lab,
        record: args.record,
        window_keys,
        verify: if args.insecure {
            mjpeg_rtsp::tls::Verify::Insecure
        } else {
            mjpeg_rtsp::tls::Verify::System
        },
        started,
    };
    let terminal = player::RawTerminal::enable();
    let _ = std::thread::Builder::new()
        .name("keys".into())
        .spawn(move || player::read_keys(tx));
    let result = player::run(options, rx);
    drop(terminal);
    match result {
        Ok(summary) => {
            println!("{}", player::summary_text(&summary));
            if let Some(path) = args.stats_json
                && let Err(e) = std::fs::write(&path, player::summary_json(&summary))
            {
                tracing::error!("cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
