//! Pushes (`--push NAME=URL`): a live path's stream sent to another RTSP server, as a
//! publisher would send it, for as long as the server runs.
//!
//! One thread per push connects with the player's control connection
//! ([`crate::rtsp_client::Control`]: CSeq, 401 Basic/Digest answered with the URL's
//! credentials), then ANNOUNCE (our SDP, [`crate::rtsp::sdp`]), SETUP of the announced
//! stream's control URL (RFC 2326 C.1.1) over TCP interleaved with `mode=record`, and
//! RECORD. While it records, the push is a consumer of the path (it keeps an on-demand
//! source running, as a viewer does) and a second thread sends the frames
//! (`sending.rs`). Keep-alives (GET_PARAMETER, or OPTIONS) go out within the receiver's
//! session timeout.
//!
//! Whatever ends a connection (refused, a status such as 401 or 455, no reply, the
//! receiver's BYE, the connection closed, a write that takes nothing for 10 s) is logged
//! with the reason, and the push connects again after 1 s, doubling to 30 s; a connection
//! that recorded for [`HEALTHY`] starts the backoff over. At shutdown the push says BYE
//! and TEARDOWN. URLs are shown without credentials ([`super::relay::redact`]).

mod sending;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use rtsp_types::{Method, Response, StatusCode, Url};

use super::relay::{redact, redact_text, unparsed};
use super::{FIRST_BACKOFF, LivePath, MAX_BACKOFF};
use crate::rtsp::auth::{self, Authenticator};
use crate::rtsp::client::{self, Client};
use crate::rtsp::sdp::{self, ClipDescription};
use crate::rtsp_client::Control;
use crate::server::stats::PushStats;
use sending::Sending;

/// A connection that recorded this long starts the backoff over after it fails.
pub const HEALTHY: Duration = Duration::from_secs(10);
/// How long each reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the push's thread looks at the clock (stop, failures, keep-alives).
const TICK: Duration = Duration::from_millis(100);
/// What the kernel may hold of a push's stream beyond what the receiver took (Linux
/// doubles it): past it, a write waits and the newest frame wins, so a receiver that reads
/// slowly is this far behind at most (about 2 s of a 2 Mbit/s stream), not the megabytes
/// the kernel's send buffer grows to on its own.
const SEND_BUFFER: usize = 256 * 1024;
/// How long shutdown waits for a push to say TEARDOWN.
const STOP_WAIT: Duration = Duration::from_secs(3);
const USER_AGENT: &str = concat!("mjpeg-rtsp-server/", env!("CARGO_PKG_VERSION"));

/// A push's URL, checked when the server starts (nothing connects then):
/// `rtsp://[user:password@]host[:port]/path`.
pub fn parse_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| anyhow!("{}: not a URL: {e}", unparsed(url)))?;
    if parsed.scheme() != "rtsp" {
        bail!(
            "{}: pushes go to rtsp:// servers, not {}://",
            redact(url),
            parsed.scheme()
        );
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("{}: no host", redact(url));
    }
    auth::split_credentials(&parsed).map_err(|e| anyhow!("{}: {e}", redact(url)))?;
    Ok(parsed)
}

/// One push: its thread, and what it reports.
pub struct Push {
    path: Arc<LivePath>,
    url: Url,
    /// The server's `--bind` address: connections start from it where it can reach the
    /// receiver ([`crate::rtsp_client::source_for`]).
    bind: std::net::IpAddr,
    /// The URL without credentials.
    shown: String,
    status: Arc<Mutex<PushStats>>,
    stop: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Push {
    /// A push of `path` to `url` (from [`parse_url`]), from `bind`, not started.
    pub fn new(path: Arc<LivePath>, url: Url, bind: std::net::IpAddr) -> Arc<Push> {
        let shown = redact(url.as_str());
        Arc::new(Push {
            status: Arc::new(Mutex::new(PushStats {
                url: shown.clone(),
                state: "connecting",
                frames_sent: 0,
                packets_sent: 0,
                bytes_sent: 0,
                frames_skipped: 0,
                reconnects: 0,
                receiver_report: None,
                rtcp_malformed: 0,
                error: None,
            })),
            path,
            url,
            bind,
            shown,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        })
    }

    /// The name of the path it pushes.
    pub fn path_name(&self) -> &str {
        &self.path.name
    }

    /// What `--stats` and `/api/paths` say about it.
    pub fn stats(&self) -> PushStats {
        lock(&self.status).clone()
    }

    /// Starts its thread: it connects, records, and reconnects until [`Push::stop_all`].
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let push = self.clone();
        let thread = std::thread::Builder::new()
            .name("push".into())
            .spawn(move || push.supervise())?;
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    /// Stops every push (BYE and TEARDOWN to the receivers that are recording), waiting
    /// up to `STOP_WAIT` for them together.
    pub fn stop_all(pushes: &[Arc<Push>]) {
        for push in pushes {
            push.stop.store(true, Ordering::Release);
        }
        let deadline = Instant::now() + STOP_WAIT;
        for push in pushes {
            let Some(thread) = lock(&push.thread).take() else {
                continue;
            };
            // A connect or a reply may take seconds to fail: the process does not wait
            // for more than its deadline (the thread ends with it).
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn what(&self) -> String {
        format!("push {} to {}", self.path.name, self.shown)
    }

    /// Connects, records, and after each failure waits its backoff and connects again.
    fn supervise(&self) {
        let mut backoff = FIRST_BACKOFF;
        let mut first = true;
        while !self.stopping() {
            if !first {
                lock(&self.status).reconnects += 1;
            }
            first = false;
            self.set_state("connecting");
            tracing::info!("{}: connecting", self.what());
            let mut recorded = None;
            let result = self.connect_and_record(&mut recorded);
            if self.stopping() {
                break;
            }
            // Only a stop ends a connection without an error.
            let why = match result {
                Ok(()) => "the connection ended".to_string(),
                Err(e) => redact_text(&format!("{e:#}")),
            };
            if recorded.is_some_and(|at: Instant| at.elapsed() >= HEALTHY) {
                backoff = FIRST_BACKOFF;
            }
            tracing::warn!(
                "{}: failed: {why}; retrying in {} s",
                self.what(),
                backoff.as_secs()
            );
            {
                let mut status = lock(&self.status);
                status.state = "retrying";
                status.error = Some(why);
            }
            self.sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        self.set_state("stopped");
        tracing::info!("{}: stopped", self.what());
    }

    fn set_state(&self, state: &'static str) {
        lock(&self.status).state = state;
    }

    /// Waits `wait`, or less when the push is stopped.
    fn sleep(&self, wait: Duration) {
        let until = Instant::now() + wait;
        while !self.stopping() && Instant::now() < until {
            std::thread::sleep(TICK.min(until.saturating_duration_since(Instant::now())));
        }
    }

    /// One connection, from connect to its end; `recorded` is set when RECORD succeeded.
    fn connect_and_record(&self, recorded: &mut Option<Instant>) -> Result<()> {
        let (bare, credentials) = auth::split_credentials(&self.url)?;
        let mut control = Control::connect_from(&bare, Some(self.bind))?;
        if let Err(e) = control.limit_send_buffer(SEND_BUFFER) {
            tracing::debug!("{}: SO_SNDBUF: {e}", self.what());
        }
        control.client = Client::new(USER_AGENT);
        control.reply_timeout = REPLY_TIMEOUT;
        control.auth = Authenticator::new(credentials);
        let description = self.description(&control);
        let stream = client::description::read(&description, &bare)?;
        let reply = control.request(client::announce(&bare, description))?;
        check(Method::Announce, &reply)?;
        let reply = control.request(client::setup(
            &stream.control,
            client::tcp_record_transport(0, 1),
        ))?;
        check(Method::Setup, &reply)?;
        let setup = control.client.read_setup(&reply)?;
        let channels = match setup.transport.and_then(|t| t.interleaved) {
            Some((rtp, rtcp)) => (rtp, rtcp.unwrap_or(rtp.wrapping_add(1))),
            None => (0, 1),
        };
        let result = self.record(&mut control, &stream.aggregate, channels, recorded);
        if !control.is_closed() {
            control.reply_timeout = Duration::from_secs(1);
            let _ = control.request(client::teardown(&stream.aggregate));
        }
        control.shutdown();
        result
    }

    /// Our SDP for ANNOUNCE: the path as a live JPEG stream.
    fn description(&self, control: &Control) -> Vec<u8> {
        let (width, height) = self.path.size();
        let address = control
            .local_ip()
            .map_or_else(|| "0.0.0.0".to_string(), |ip| ip.to_string());
        sdp::describe(&ClipDescription {
            name: &self.path.name,
            width,
            height,
            fps: None,
            duration: None,
            live: true,
            server_address: &address,
            control: crate::rtsp::path::CONTROL,
            session_id: u64::from(crate::server::session::random_u32()),
        })
    }

    /// RECORD, then frames until the push stops (`Ok`) or the connection fails.
    fn record(
        &self,
        control: &mut Control,
        aggregate: &Url,
        channels: (u8, u8),
        recorded: &mut Option<Instant>,
    ) -> Result<()> {
        let cname = format!(
            "mjpeg-rtsp-server@{}",
            control
                .local_ip()
                .map_or_else(String::new, |ip| ip.to_string())
        );
        let mut sending = Sending::new(channels, cname);
        let bye = Arc::new(AtomicBool::new(false));
        control.set_interleaved_sink(sending.rtcp_reader(self.status.clone(), bye.clone()));
        let reply = control.request(client::record(aggregate))?;
        check(Method::Record, &reply)?;
        *recorded = Some(Instant::now());
        tracing::info!("{}: recording", self.what());
        {
            let mut status = lock(&self.status);
            status.state = "recording";
            status.error = None;
        }
        let _consuming = self.path.join_push();
        let writer = control.writer();
        let media_stop = AtomicBool::new(false);
        let result = std::thread::scope(|scope| {
            let media = std::thread::Builder::new()
                .name("push-media".into())
                .spawn_scoped(scope, || {
                    sending.send_frames(&self.path, &writer, &media_stop, &self.status)
                })?;
            let result = self.watch(control, aggregate, &bye, &media);
            media_stop.store(true, Ordering::Release);
            match media.join() {
                Ok(Err(e)) if result.is_ok() && !self.stopping() => Err(e),
                Err(_) => Err(anyhow!("the frame sender failed")),
                _ => result,
            }
        });
        if self.stopping()
            && !control.is_closed()
            && let Some(report) = sending.sender_report(Some("push stopped"))
        {
            let _ = sending::write(&writer, &report);
        }
        result
    }

    /// While the frames go out: keep-alives, and the end of the connection.
    fn watch(
        &self,
        control: &mut Control,
        aggregate: &Url,
        bye: &AtomicBool,
        media: &std::thread::ScopedJoinHandle<'_, Result<()>>,
    ) -> Result<()> {
        let mut keepalive = Instant::now();
        loop {
            if self.stopping() {
                return Ok(());
            }
            if media.is_finished() {
                // Its error is the connection's (taken when it is joined).
                return Ok(());
            }
            if control.is_closed() {
                bail!("the receiver closed the connection");
            }
            if bye.load(Ordering::Acquire) {
                bail!("the receiver ended the session (RTCP BYE)");
            }
            if keepalive.elapsed() >= control.client.keepalive_interval() {
                keepalive = Instant::now();
                keep_alive(control, aggregate)?;
            }
            std::thread::sleep(TICK);
        }
    }
}

/// GET_PARAMETER, or OPTIONS for a receiver without it; a receiver that no longer knows
/// the session (it timed it out) fails the connection.
fn keep_alive(control: &mut Control, aggregate: &Url) -> Result<()> {
    let reply = control.request(client::get_parameter(aggregate))?;
    match reply.status() {
        s if s.is_success() => Ok(()),
        StatusCode::SessionNotFound => bail!("the receiver ended the session (454)"),
        _ => {
            let reply = control.request(client::options(Some(aggregate)))?;
            check(Method::Options, &reply)
        }
    }
}

/// A reply the push can go on with, or why not (the status and its reason).
fn check(method: Method, reply: &Response<Vec<u8>>) -> Result<()> {
    match client::check_status(&method, reply) {
        Ok(()) => Ok(()),
        Err(_) if reply.status() == StatusCode::Unauthorized => bail!(
            "the receiver wants credentials (401): put them in the push URL, as user:password@ before the host"
        ),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_urls_are_checked_and_never_shown_with_their_password() {
        assert!(parse_url("rtsp://u:secret@127.0.0.1:8554/in").is_ok());
        assert!(parse_url("rtsp://origin/cam").is_ok());
        for bad in [
            "http://u:secret@h/x",
            "rtsps://u:secret@h/x",
            "rtsp://u:secret@/x",
            "rtsp//u:secret@h/x",
        ] {
            let err = format!("{:#}", parse_url(bad).unwrap_err());
            assert!(!err.contains("secret"), "{err}");
        }
        assert!(
            parse_url("http://h/x")
                .unwrap_err()
                .to_string()
                .contains("rtsp://")
        );
    }
}
