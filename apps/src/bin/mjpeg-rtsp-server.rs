//! mjpeg-rtsp-server: serves Motion-JPEG clips over RTSP (argument parsing and wiring; the
//! server is `mjpeg_rtsp::server`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mjpeg_rtsp::server::stats::StatsFormat;

/// Serves Motion-JPEG clips (.Mjpeg lab files or concatenated JPEG) over RTSP 1.0 with
/// RTP/JPEG (RFC 2435) and RTCP, to standard clients (ffplay, VLC, GStreamer's rtspsrc,
/// mjpeg-player) and to the networking lab's clients.
///
/// Each clip is served at rtsp://HOST:PORT/<file name>; the server prints those URLs when
/// it is ready. With no PATH it serves the bundled sample clip.
#[derive(Parser, Debug)]
#[command(name = "mjpeg-rtsp-server", version)]
struct Args {
    /// TCP port for RTSP (0: any free port)
    #[arg(long, default_value_t = 8554)]
    port: u16,
    /// Address to listen on
    #[arg(long, default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Frames per second (clip files do not store a rate; lab servers send 20)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: u32,
    /// Largest RTP packet in bytes
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u32).range(200..=65000))]
    mtu: u32,
    /// Start over at the end of a clip instead of ending the stream
    #[arg(long = "loop")]
    looping: bool,
    /// Do not send fewer frames to clients that report loss
    #[arg(long)]
    no_adapt: bool,
    /// Loss (percent, from receiver reports) above which a session sends fewer frames
    #[arg(long, default_value_t = 5.0)]
    adapt_threshold: f64,
    /// Seconds without a request or RTCP after which a session ends
    #[arg(long, default_value_t = 60)]
    session_timeout: u64,
    /// Report on every session periodically (see --stats-format, --stats-interval)
    #[arg(long)]
    stats: bool,
    /// How --stats reports: a log line per session, or one JSON object per report on
    /// stdout (schema in the README)
    #[arg(long, value_enum, default_value_t = StatsFormat::Text)]
    stats_format: StatsFormat,
    /// Seconds between --stats reports
    #[arg(long, default_value_t = 5.0, value_parser = positive_seconds)]
    stats_interval: f64,
    /// Most sessions at once
    #[arg(long, default_value_t = 4096)]
    max_sessions: usize,
    /// A live path: NAME=PIPELINE, a gst-launch description whose output is JPEG images,
    /// served at rtsp://HOST:PORT/NAME (repeatable). For example
    /// cam='v4l2src device=/dev/video0 ! image/jpeg,width=1280,height=720' or
    /// test='videotestsrc is-live=true ! video/x-raw,format=I420 ! jpegenc'
    #[arg(long = "source", value_name = "NAME=PIPELINE", value_parser = name_and_value)]
    sources: Vec<(String, String)>,
    /// Keep live sources running with no viewers (by default a source starts with its
    /// first viewer and stops --linger seconds after the last one leaves)
    #[arg(long)]
    always_on: bool,
    /// Seconds an on-demand live source keeps running after its last viewer leaves
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    linger: f64,
    /// A published path: clients publish Motion-JPEG to rtsp://HOST:PORT/NAME with
    /// ANNOUNCE and RECORD (ffmpeg -f rtsp, GStreamer's rtspclientsink), over UDP or TCP;
    /// viewers play it as any live path (repeatable)
    #[arg(long = "publish", value_name = "NAME")]
    publish: Vec<String>,
    /// A new publisher on a path that has one replaces it (the old one is ended) instead
    /// of being refused with 455
    #[arg(long)]
    publish_takeover: bool,
    /// More log detail: -v debug, -vv trace (RUST_LOG, when set, takes precedence)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Clips (.Mjpeg, .mjpeg, .mjpg) or folders of clips
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    mjpeg_rtsp::logging::init("mjpeg-rtsp-server", args.verbose);
    let config = mjpeg_rtsp::server::Config {
        bind: args.bind,
        port: args.port,
        fps: args.fps,
        mtu: args.mtu,
        looping: args.looping,
        adapt: !args.no_adapt,
        adapt_threshold: args.adapt_threshold / 100.0,
        session_timeout: Duration::from_secs(args.session_timeout.max(1)),
        stats_interval: args
            .stats
            .then(|| Duration::from_secs_f64(args.stats_interval)),
        stats_format: args.stats_format,
        max_sessions: args.max_sessions,
        paths: args.paths,
        sources: args.sources,
        always_on: args.always_on,
        linger: Duration::from_secs_f64(args.linger),
        publish: args.publish,
        publish_takeover: args.publish_takeover,
    };
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../media/sample.Mjpeg");
    match mjpeg_rtsp::server::run(config, sample) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.05..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.05 to 86400"
        )),
    }
}

fn name_and_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{text:?} is not NAME=PIPELINE")),
    }
}
