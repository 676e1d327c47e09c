//! mjpeg-rtsp-bench: a load generator for RTSP servers, and for HTTP Motion-JPEG servers
//! (`--http`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rtsp_bench::http::{self, HttpConfig};
use rtsp_bench::{Config, raise_file_limit, run};

/// Opens many RTSP sessions (or, with --http, HTTP viewers) to one stream and measures what
/// each receives and what the server spends.
///
/// Each session has its own TCP control connection (OPTIONS, DESCRIBE, SETUP over RTP/AVP
/// UDP unicast or, with --tcp, interleaved in the connection, PLAY; GET_PARAMETER or OPTIONS as keep-alive; TEARDOWN at the end). The
/// sessions start evenly over the ramp; the measuring window follows it. Reported: sessions
/// set up and failed, frames/s in all and per session (mean, min, max), packet loss from
/// the RTP sequence numbers, interarrival jitter (RFC 3550, 90 kHz), the time from PLAY to
/// the first whole frame, and the CPU use (100 % = one core) of the server (--server-pid)
/// and of this process over the window, with the server's resident memory.
///
/// With --http URL: N viewers of a multipart/x-mixed-replace stream (http://HOST:PORT/PATH,
/// or tcp://HOST:PORT for a raw multipart stream without an HTTP head, such as GStreamer's
/// tcpserversink), one TCP connection each, all read on one thread. Reported: viewers
/// connected, frames/s per viewer (min, p1, median), viewers at full rate (--full-rate),
/// parts that are not whole JPEGs, the frame age at arrival from the parts' X-Timestamp
/// (the server must run on this host), the content lag (a viewer's arrival of a picture
/// minus the first viewer's arrival of the same bytes; the source must move), the time to
/// the first frame, and the CPU use of the server and of this process.
#[derive(Parser, Debug)]
#[command(name = "mjpeg-rtsp-bench", version)]
struct Args {
    /// Sessions (or viewers) to open.
    #[arg(long, short = 'n', default_value_t = 1)]
    sessions: usize,
    /// HTTP mode: viewers of this multipart stream (http://... or tcp://...).
    #[arg(long, value_name = "URL", conflicts_with = "url")]
    http: Option<String>,
    /// HTTP mode: seconds between the end of the ramp and the measuring window.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    settle: f64,
    /// HTTP mode: a viewer getting at least this many frames/s is at full rate.
    #[arg(long, default_value_t = 23.0, value_name = "FPS")]
    full_rate: f64,
    /// HTTP mode, tcp:// URL: the multipart boundary (default: from the first line that
    /// starts with --).
    #[arg(long)]
    boundary: Option<String>,
    /// Seconds over which the sessions start.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    ramp: f64,
    /// Seconds of the measuring window, after the ramp.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    duration: f64,
    /// The server's process id: its CPU time and memory are reported.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Threads receiving RTP (or reading the HTTP viewers).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Receive buffer of each session's RTP socket, in KiB (set past net.core.rmem_max when
    /// run as root).
    #[arg(long, default_value_t = 4096, value_name = "KIB")]
    rcvbuf_kib: usize,
    /// Milliseconds the receive threads sleep between rounds, so that each read takes
    /// many packets (arrival times come from the kernel, so this changes no figure).
    #[arg(long, default_value_t = 5, value_name = "MS")]
    poll_ms: u64,
    /// Longest pause between keep-alives, in seconds (at most half the session timeout).
    #[arg(long, default_value_t = 20.0, value_name = "SECS")]
    keepalive: f64,
    /// Seconds to wait for a connection or a reply.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    timeout: f64,
    /// Do not send OPTIONS before DESCRIBE.
    #[arg(long)]
    no_options: bool,
    /// RTP interleaved in the RTSP connection (RTP/AVP/TCP) instead of UDP: what viewers
    /// behind a TCP load balancer use. Arrival times are when a packet is read.
    #[arg(long, conflicts_with = "http")]
    tcp: bool,
    /// The stream, rtsp://HOST[:PORT]/PATH.
    #[arg(required_unless_present = "http")]
    url: Option<String>,
}

fn seconds(name: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v).map_err(|_| format!("--{name} {v}: not a number of seconds"))
}

fn config(args: &Args) -> Result<Config, String> {
    if args.sessions == 0 {
        return Err("--sessions must be at least 1".into());
    }
    let duration = seconds("duration", args.duration)?;
    if duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    Ok(Config {
        url: args.url.clone().unwrap_or_default(),
        sessions: args.sessions,
        ramp: seconds("ramp", args.ramp)?,
        duration,
        server_pid: args.server_pid,
        threads: args.threads.max(1),
        rcvbuf: args.rcvbuf_kib.saturating_mul(1024),
        poll: Duration::from_millis(args.poll_ms),
        keepalive: seconds("keepalive", args.keepalive)?,
        request_timeout: seconds("timeout", args.timeout)?,
        options: !args.no_options,
        tcp: args.tcp,
    })
}

fn http_config(args: &Args, url: &str) -> Result<HttpConfig, String> {
    if args.sessions == 0 {
        return Err("--sessions must be at least 1".into());
    }
    let duration = seconds("duration", args.duration)?;
    if duration.is_zero() {
        return Err("--duration must be positive".into());
    }
    if !(args.full_rate.is_finite() && args.full_rate >= 0.0) {
        return Err(format!("--full-rate {}: not a rate", args.full_rate));
    }
    Ok(HttpConfig {
        url: url.to_string(),
        viewers: args.sessions,
        ramp: seconds("ramp", args.ramp)?,
        settle: seconds("settle", args.settle)?,
        duration,
        server_pid: args.server_pid,
        threads: args.threads.max(1),
        full_rate_fps: args.full_rate,
        boundary: args.boundary.clone(),
        timeout: seconds("timeout", args.timeout)?,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    raise_file_limit();
    if let Some(url) = &args.http {
        return main_http(&args, url);
    }
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mjpeg-rtsp-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.table());
            }
            if report.ok == 0 {
                eprintln!("mjpeg-rtsp-bench: no session could be set up");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mjpeg-rtsp-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main_http(args: &Args, url: &str) -> ExitCode {
    let config = match http_config(args, url) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mjpeg-rtsp-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match http::run(&config) {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.table());
            }
            if report.connected == 0 {
                eprintln!("mjpeg-rtsp-bench: no viewer got a stream");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mjpeg-rtsp-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
