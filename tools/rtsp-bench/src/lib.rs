//! Load generator for RTSP servers (`mjpeg-rtsp-bench`).
//!
//! [`run`] opens many independent RTSP sessions to one URL, each on its own TCP control
//! connection and receiving RTP/AVP over UDP unicast (or interleaved in that connection,
//! [`Config::tcp`]), started evenly over a ramp; then it measures, over a window after the
//! ramp, what every session received and what the server spent doing it.
//!
//! - [`session`]: one session's RTSP exchange on tokio, all sessions on one thread; the
//!   requests and what the replies say (control URLs per RFC 2326 C.1.1, the session) come
//!   from the RTSP core's client side, `rtsp_core::client`, which the player uses too.
//! - [`receiver`]: a few threads receiving every session's RTP with epoll and `recvmmsg`.
//! - [`stats`]: per-session frames over the window, with loss and jitter from the media
//!   core's RFC 3550 receiver statistics (`mjpeg_media::rtcp`: A.1, A.3, A.8).
//! - [`procstat`]: CPU time and memory from `/proc`.
//! - [`report`]: the aggregate, as a table or JSON.
//!
//! [`http`] is the other mode: many HTTP Motion-JPEG viewers (`multipart/x-mixed-replace`)
//! of one stream, or of a raw multipart TCP stream.

pub mod http;
pub mod procstat;
pub mod receiver;
pub mod report;
pub mod session;
pub mod stats;

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rtsp_types::Url;
use tokio::sync::watch;
use tokio::time::Instant;

use receiver::{ReceiverConfig, Receivers, realtime_ns};
pub use report::Report;
use session::{ClientConfig, SessionError, SessionOutcome, run_session};
use stats::Window;

/// A run of the load generator.
#[derive(Debug, Clone)]
pub struct Config {
    /// `rtsp://host[:port]/path` of the stream.
    pub url: String,
    pub sessions: usize,
    /// Sessions start evenly over this time.
    pub ramp: Duration,
    /// The measuring window, which starts at the end of the ramp.
    pub duration: Duration,
    /// The server's process, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Receive threads.
    pub threads: usize,
    /// Receive buffer of each RTP socket, bytes.
    pub rcvbuf: usize,
    /// Pause of the receive threads between rounds.
    pub poll: Duration,
    /// Longest pause between keep-alives.
    pub keepalive: Duration,
    /// Longest wait for a connection or a reply.
    pub request_timeout: Duration,
    /// Send OPTIONS before DESCRIBE.
    pub options: bool,
    /// RTP interleaved in the RTSP connection instead of UDP (sessions then read their
    /// connections on `threads` runtime threads).
    pub tcp: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: String::new(),
            sessions: 1,
            ramp: Duration::from_secs(2),
            duration: Duration::from_secs(10),
            server_pid: None,
            threads: 1,
            rcvbuf: 4 << 20,
            poll: Duration::from_millis(5),
            keepalive: Duration::from_secs(20),
            request_timeout: Duration::from_secs(10),
            options: true,
            tcp: false,
        }
    }
}

/// Lifts this process's soft open-file limit to the hard one: every session or viewer
/// holds a socket.
pub fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return;
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads one rlimit through a pointer to a local. When refused,
        // connections past the old limit fail and are counted as such.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
}

/// The server's address from an `rtsp://` URL (port 554 when it names none).
fn server_address(url: &Url) -> anyhow::Result<SocketAddr> {
    if url.scheme() != "rtsp" {
        bail!("{url}: only rtsp:// URLs are supported");
    }
    let host = url
        .host_str()
        .with_context(|| format!("{url}: no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = url.port().unwrap_or(554);
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))
}

/// Runs the sessions and measures them. Fails only when the run cannot start (bad URL,
/// no threads); sessions that fail are counted in the report.
pub fn run(config: &Config) -> anyhow::Result<Report> {
    let url = Url::parse(&config.url).with_context(|| format!("bad URL {:?}", config.url))?;
    let server = server_address(&url)?;
    let sessions = config.sessions.max(1);
    let ramp_ns = config.ramp.as_nanos() as i64;
    let window = Window {
        start: ramp_ns,
        end: ramp_ns + config.duration.as_nanos() as i64,
    };
    let t0 = realtime_ns();
    let start = Instant::now();
    let receivers = Arc::new(
        Receivers::start(ReceiverConfig {
            threads: config.threads,
            sessions,
            window,
            t0,
            poll: config.poll,
        })
        .context("starting the receive threads")?,
    );
    let client = Arc::new(ClientConfig {
        url: url.clone(),
        server,
        user_agent: format!("mjpeg-rtsp-bench/{}", env!("CARGO_PKG_VERSION")),
        request_timeout: config.request_timeout,
        keepalive: config.keepalive,
        options: config.options,
        rcvbuf: config.rcvbuf,
        t0,
        tcp: config.tcp,
        window,
    });
    // Over TCP the sessions read their own connections: the runtime gets the threads the
    // receivers would have had.
    let runtime = if config.tcp {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .context("starting the tokio runtime")?;
    let mut report = runtime.block_on(async {
        let (stop, stopped) = watch::channel(false);
        let handles: Vec<_> = (0..sessions)
            .map(|i| {
                let at = start + config.ramp.mul_f64(i as f64 / sessions as f64);
                tokio::spawn(run_session(
                    i,
                    at,
                    client.clone(),
                    receivers.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        tokio::time::sleep_until(start + config.ramp).await;
        let server_cpu0 = config
            .server_pid
            .and_then(|p| procstat::cpu_sample(Some(p)));
        let self_cpu0 = procstat::cpu_sample(None);
        tokio::time::sleep_until(start + config.ramp + config.duration).await;
        let server_cpu1 = config
            .server_pid
            .and_then(|p| procstat::cpu_sample(Some(p)));
        let self_cpu1 = procstat::cpu_sample(None);
        let memory = config.server_pid.and_then(procstat::memory);
        // Packets stamped before the end may still wait in the socket buffers.
        tokio::time::sleep(Duration::from_millis(300).max(config.poll * 4)).await;
        let mut stats = receivers.finish();

        let _ = stop.send(true);
        let deadline = Instant::now() + config.request_timeout + Duration::from_secs(1);
        let mut outcomes = Vec::with_capacity(sessions);
        for handle in handles {
            let abort = handle.abort_handle();
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(Ok(outcome)) => outcomes.push(outcome),
                Ok(Err(_)) | Err(_) => {
                    abort.abort();
                    outcomes.push(SessionOutcome {
                        error: Some(SessionError::Unfinished),
                        ..SessionOutcome::default()
                    });
                }
            }
        }
        for (i, outcome) in outcomes.iter_mut().enumerate() {
            if let (Some(own), Some(slot)) = (outcome.interleaved.take(), stats.get_mut(i)) {
                *slot = own;
            }
        }
        let mut report = Report::build(
            &config.url,
            config.ramp.as_secs_f64(),
            window,
            &outcomes,
            &stats,
        );
        report.server_pid = config.server_pid;
        report.server_cpu_pct = procstat::cpu_percent(server_cpu0, server_cpu1);
        report.self_cpu_pct = procstat::cpu_percent(self_cpu0, self_cpu1);
        report.server_rss_bytes = memory.map(|m| m.rss);
        report.server_peak_rss_bytes = memory.map(|m| m.peak);
        report.server_anon_rss_bytes = memory.map(|m| m.anon);
        report
    });
    report.sessions = sessions;
    report.transport = if config.tcp { "tcp" } else { "udp" };
    Ok(report)
}
