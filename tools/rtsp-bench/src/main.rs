//! mjpeg-rtsp-bench: a load generator for RTSP servers.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rtsp_bench::{Config, run};

/// Opens many RTSP sessions to one stream and measures what each receives and what the
/// server spends.
///
/// Each session has its own TCP control connection (OPTIONS, DESCRIBE, SETUP over RTP/AVP
/// UDP unicast, PLAY; GET_PARAMETER or OPTIONS as keep-alive; TEARDOWN at the end). The
/// sessions start evenly over the ramp; the measuring window follows it. Reported: sessions
/// set up and failed, frames/s in all and per session (mean, min, max), packet loss from
/// the RTP sequence numbers, interarrival jitter (RFC 3550, 90 kHz), the time from PLAY to
/// the first whole frame, and the CPU use (100 % = one core) of the server (--server-pid)
/// and of this process over the window, with the server's resident memory.
#[derive(Parser, Debug)]
#[command(name = "mjpeg-rtsp-bench", version)]
struct Args {
    /// Sessions to open.
    #[arg(long, short = 'n', default_value_t = 1)]
    sessions: usize,
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
    /// Threads receiving RTP.
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
    /// The stream, rtsp://HOST[:PORT]/PATH.
    url: String,
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
        url: args.url.clone(),
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
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
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
