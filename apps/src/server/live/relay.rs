//! Relays (`--relay NAME=URL`): a camera pulled once for every viewer of a path, and only
//! while someone watches (the path starts its feeder with the first viewer).
//!
//! - `rtsp://` ([`RtspRelay`]): the player's control connection
//!   ([`crate::rtsp_client::Control`]: 401 Basic/Digest answered with the URL's
//!   credentials), DESCRIBE, SETUP over UDP (TCP interleaved when no packet arrives in
//!   time, or when the camera refuses UDP), PLAY, keep-alives within the session timeout.
//!   RTP and RTCP go into the path's [RTP input](super::source::RtpInput)
//!   (`rtcplossmonitor ! rtpmjpegdepay`, then our payloader): every RFC 2435 variant
//!   comes out as the server's own packets, and our receiver reports go back upstream.
//! - `http://` ([`HttpRelay`]): a `multipart/x-mixed-replace` body read with `ureq` and the
//!   media core's [`MultipartReader`]; each JPEG goes into the path's
//!   [JPEG input](super::source::Runner::start_jpeg_input).
//!
//! Whatever ends a relay (refused, 401/404, no reply, BYE, the connection closed, silence
//! longer than [`SILENCE`]) is reported to the path as `stopped`: it restarts the relay
//! with backoff (1 s doubling to [`MAX_RELAY_BACKOFF`]) while the viewers keep their sessions. Credentials never reach a log
//! line or the statistics: URLs are shown through [`redact`].

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use mjpeg_media::mjpeg::multipart::{Limits, MultipartReader};
use rtsp_types::{StatusCode, Url};

use super::source::{Events, JpegInput, RtpInput, Runner, Running, Upstream};
use crate::rtsp::auth::{self, Authenticator};
use crate::rtsp::client::{self, Stream};
use crate::rtsp::interleaved;
use crate::rtsp_client::Control;

/// No media from the upstream for this long ends the relay (it is started again).
pub const SILENCE: Duration = Duration::from_secs(5);
/// Over UDP, no packet this long after PLAY: the relay moves to TCP interleaved.
const UDP_FALLBACK: Duration = Duration::from_secs(2);
/// How long connecting and each reply may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the relay's thread looks at the clock (stop, silence, keep-alive).
const TICK: Duration = Duration::from_millis(100);
/// The longest wait between a relay's attempts while its upstream is down. A try costs one
/// connection; waiting longer leaves the viewers frozen that long after the upstream (an
/// origin being restarted, a camera rebooting) is back.
pub const MAX_RELAY_BACKOFF: Duration = Duration::from_secs(5);

/// `url` with any `user:password@` replaced by `***@`: what logs and statistics show.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..scheme_end + 3], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// A URL that does not parse, as a message shows it: what comes before its last `@` may
/// be a password even without `://` (a typo such as `rtsp//user:pw@host`).
pub fn unparsed(text: &str) -> String {
    match text.rfind('@') {
        Some(at) => format!("***{}", &text[at..]),
        None => text.to_string(),
    }
}

/// `text` (a pipeline description, an error message) with the credentials of every URL in
/// it replaced by `***`: `rtspsrc location=rtsp://user:pw@cam/1` shows as
/// `rtspsrc location=rtsp://***@cam/1`.
pub fn redact_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        // The authority ends at a path, a query, a fragment, a space or a quote.
        let end = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(after.len());
        match after[..end].rfind('@') {
            Some(userinfo) => {
                out.push_str("***@");
                rest = &after[userinfo + 1..];
            }
            None => rest = after,
        }
    }
    out.push_str(rest);
    out
}

/// A relay's URL, checked when the server starts (nothing connects then).
pub fn parse_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| anyhow!("{}: not a URL: {e}", unparsed(url)))?;
    match parsed.scheme() {
        "rtsp" | "http" => {}
        other => bail!(
            "{}: relays pull rtsp:// or http:// (multipart MJPEG), not {other}://",
            redact(url)
        ),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("{}: no host", redact(url));
    }
    auth::split_credentials(&parsed).map_err(|e| anyhow!("{}: {e}", redact(url)))?;
    Ok(parsed)
}

/// The feeder of a relay path, by the URL's scheme. An RTSP relay of a server bound to
/// `bind` connects from that address where it can ([`crate::rtsp_client::source_for`]):
/// an origin then tells its edges apart, and a firewall sees the address it expects.
pub fn feeder(url: Url, bind: std::net::IpAddr) -> Box<dyn super::Feeder> {
    if url.scheme() == "http" {
        Box::new(HttpRelay { url })
    } else {
        Box::new(RtspRelay { url, bind })
    }
}

/// A relay running: its thread, and the path's pipeline it feeds.
struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Wait for the thread when stopping (the RTSP relay tears its session down); the
    /// HTTP relay's thread may be in a read, which ends by itself within [`SILENCE`].
    join: bool,
    input: Option<RtpInput>,
    runner: Option<Runner>,
}

impl Running for Relay {
    fn upstream(&self) -> Option<Upstream> {
        self.input.as_ref().map(RtpInput::upstream)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take()
            && self.join
        {
            let _ = thread.join();
        }
        drop(self.runner.take());
    }
}

/// When media last came, in milliseconds since the relay started (shared by its threads).
#[derive(Clone)]
struct LastMedia {
    since: Instant,
    at_ms: Arc<AtomicU64>,
}

impl LastMedia {
    fn new() -> LastMedia {
        LastMedia {
            since: Instant::now(),
            at_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        // At least 1: 0 means nothing came yet.
        let ms = (self.since.elapsed().as_millis() as u64).max(1);
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    fn seen(&self) -> bool {
        self.at_ms.load(Ordering::Relaxed) > 0
    }

    fn silent_for(&self) -> Duration {
        self.since
            .elapsed()
            .saturating_sub(Duration::from_millis(self.at_ms.load(Ordering::Relaxed)))
    }
}

/// Runs `pull` on a thread of its own; when it fails (and the relay was not being
/// stopped), the path hears why, its URL without credentials first.
fn spawn_puller(
    name: &str,
    url: Url,
    stop: &Arc<AtomicBool>,
    events: Arc<dyn Events>,
    pull: impl FnOnce(&Url, &Arc<AtomicBool>) -> Result<()> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let stop = stop.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let why = match pull(&url, &stop) {
                Ok(()) => return,
                Err(e) => format!("{}: {e:#}", redact(url.as_str())),
            };
            if !stop.load(Ordering::Acquire) {
                events.stopped(why);
            }
        })
}

/// `--relay NAME=rtsp://...`.
pub struct RtspRelay {
    url: Url,
    /// The server's `--bind` address.
    bind: std::net::IpAddr,
}

impl super::Feeder for RtspRelay {
    fn start(&self, mtu: u32, events: Arc<dyn Events>) -> Result<Box<dyn Running>> {
        let (runner, input) = Runner::start_rtp_input(mtu, events.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let url = self.url.clone();
        let bind = self.bind;
        let thread = {
            let input = input.clone();
            spawn_puller("relay-rtsp", url, &stop, events, move |url, stop| {
                pull_rtsp(url, bind, &input, stop)
            })?
        };
        Ok(Box::new(Relay {
            stop,
            thread: Some(thread),
            join: true,
            input: Some(input),
            runner: Some(runner),
        }))
    }

    fn describe(&self) -> String {
        redact(self.url.as_str())
    }

    fn kind(&self) -> &'static str {
        "relay"
    }

    fn max_backoff(&self) -> Duration {
        MAX_RELAY_BACKOFF
    }
}

/// An RTSP session with the upstream.
struct Upstreaming {
    control: Control,
    stream: Stream,
    /// Set when the upstream said BYE.
    bye: Arc<AtomicBool>,
    last: LastMedia,
    /// The UDP receivers stop when this is set (on stop, or when moving to TCP).
    udp_stop: Arc<AtomicBool>,
}

/// Pulls the upstream until `stop` is set (`Ok`) or the upstream fails (`Err`, why).
fn pull_rtsp(
    url: &Url,
    bind: std::net::IpAddr,
    input: &RtpInput,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let (bare, credentials) = auth::split_credentials(url)?;
    let mut control = connect(&bare, bind)?;
    control.auth = Authenticator::new(credentials);
    let describe = control.request(client::describe(&bare))?;
    check(&describe)?;
    let stream = client::read_describe(&bare, &describe)?.jpeg_video()?;
    let mut up = Upstreaming {
        control,
        stream,
        bye: Arc::new(AtomicBool::new(false)),
        last: LastMedia::new(),
        udp_stop: Arc::new(AtomicBool::new(false)),
    };
    let result = up.run(&bare, input, stop);
    up.udp_stop.store(true, Ordering::Release);
    if !up.control.is_closed() {
        up.control.reply_timeout = Duration::from_secs(1);
        let _ = up.control.request(client::teardown(&up.stream.aggregate));
    }
    up.control.shutdown();
    result
}

fn connect(url: &Url, bind: std::net::IpAddr) -> Result<Control> {
    // Control::connect_from waits up to 5 s (CONNECT_TIMEOUT) per address.
    let mut control = Control::connect_from(url, Some(bind))?;
    control.client = client::Client::new(concat!("mjpeg-rtsp-server/", env!("CARGO_PKG_VERSION")));
    control.reply_timeout = REPLY_TIMEOUT;
    Ok(control)
}

impl Upstreaming {
    fn run(&mut self, url: &Url, input: &RtpInput, stop: &Arc<AtomicBool>) -> Result<()> {
        let mut tcp = !self.setup_udp(url, input)?;
        if tcp {
            self.setup_tcp(input)?;
        }
        self.play()?;
        let mut played = Instant::now();
        let mut keepalive = Instant::now();
        loop {
            if stop.load(Ordering::Acquire) {
                return Ok(());
            }
            std::thread::sleep(TICK);
            if self.control.is_closed() {
                bail!("the upstream closed the connection");
            }
            if self.bye.load(Ordering::Acquire) {
                bail!("the upstream ended the stream (RTCP BYE)");
            }
            if !tcp && !self.last.seen() && played.elapsed() >= UDP_FALLBACK {
                tracing::info!(
                    "relay {}: no UDP packets within {} s, switching to TCP",
                    redact(url.as_str()),
                    UDP_FALLBACK.as_secs()
                );
                self.udp_stop.store(true, Ordering::Release);
                let _ = self
                    .control
                    .request(client::teardown(&self.stream.aggregate));
                self.control.client.end_session();
                tcp = true;
                self.setup_tcp(input)?;
                self.play()?;
                played = Instant::now();
                continue;
            }
            let silent = if self.last.seen() {
                self.last.silent_for()
            } else {
                played.elapsed()
            };
            if silent >= SILENCE {
                bail!("no media from the upstream for {} s", SILENCE.as_secs());
            }
            if keepalive.elapsed() >= self.control.client.keepalive_interval() {
                keepalive = Instant::now();
                self.keepalive()?;
            }
        }
    }

    /// SETUP over UDP with the receivers running; `false` when the upstream refuses UDP.
    fn setup_udp(&mut self, url: &Url, input: &RtpInput) -> Result<bool> {
        let (rtp, rtcp) = crate::ports::bind_rtp_pair(std::net::Ipv4Addr::UNSPECIFIED.into())?;
        let ports = client::udp_transport(rtp.local_addr()?.port(), rtcp.local_addr()?.port());
        let reply = self
            .control
            .request(client::setup(&self.stream.control, ports))?;
        if reply.status() == StatusCode::UnsupportedTransport {
            return Ok(false);
        }
        check(&reply)?;
        let setup = self.control.client.read_setup(&reply)?;
        // The camera is where the control connection went (no second name lookup, which
        // could pick another address family).
        let host = url.host_str().ok_or_else(|| anyhow!("no host"))?;
        let ip = match self.control.peer_ip() {
            Some(ip) => ip,
            None => std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))?
                .next()
                .ok_or_else(|| anyhow!("{host} has no address"))?
                .ip(),
        };
        // RTCP goes to the upstream's second port, or the one after its RTP port.
        let port = match setup.transport.and_then(|t| t.server_port) {
            Some((rtp, rtcp)) => rtcp.unwrap_or(rtp.wrapping_add(1)),
            None => 0,
        };
        let upstream_rtcp = SocketAddr::new(ip, port);
        for socket in [&rtp, &rtcp] {
            socket.set_read_timeout(Some(TICK))?;
        }
        self.receive_udp(rtp.try_clone()?, input, true, ip)?;
        self.receive_udp(rtcp.try_clone()?, input, false, ip)?;
        let out = rtcp;
        let stopped = self.udp_stop.clone();
        input.on_rtcp_out(move |packet| {
            if !stopped.load(Ordering::Relaxed) && port != 0 {
                let _ = out.send_to(packet, upstream_rtcp);
            }
        });
        Ok(true)
    }

    /// Reads one of the relay's UDP ports; only the camera's datagrams are taken (anyone
    /// else who learns the port could otherwise inject frames, or a BYE).
    fn receive_udp(
        &self,
        socket: UdpSocket,
        input: &RtpInput,
        rtp: bool,
        camera: std::net::IpAddr,
    ) -> Result<()> {
        let input = input.clone();
        let stop = self.udp_stop.clone();
        let last = self.last.clone();
        let bye = self.bye.clone();
        std::thread::Builder::new()
            .name(if rtp { "relay-rtp" } else { "relay-rtcp" }.into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Acquire) {
                    let n = match socket.recv_from(&mut buf) {
                        Ok((n, from)) if from.ip() == camera => n,
                        _ => continue,
                    };
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    if rtp {
                        last.touch();
                        input.push_rtp(&buf[..n]);
                    } else {
                        on_rtcp(&input, &bye, &buf[..n]);
                    }
                }
            })?;
        Ok(())
    }

    fn setup_tcp(&mut self, input: &RtpInput) -> Result<()> {
        let reply = self.control.request(client::setup(
            &self.stream.control,
            client::tcp_transport(0, 1),
        ))?;
        check(&reply)?;
        let setup = self.control.client.read_setup(&reply)?;
        let (rtp_channel, rtcp_channel) = match setup.transport.and_then(|t| t.interleaved) {
            Some((rtp, rtcp)) => (rtp, rtcp.unwrap_or(rtp.wrapping_add(1))),
            None => (0, 1),
        };
        let receiver = input.clone();
        let last = self.last.clone();
        let bye = self.bye.clone();
        self.control
            .set_interleaved_sink(Box::new(move |channel, data| {
                if channel == rtp_channel {
                    last.touch();
                    receiver.push_rtp(data);
                } else if channel == rtcp_channel {
                    on_rtcp(&receiver, &bye, data);
                }
            }));
        let writer = self.control.writer();
        input.on_rtcp_out(move |packet| {
            let mut framed = Vec::with_capacity(packet.len() + 4);
            if interleaved::append(&mut framed, rtcp_channel, [packet])
                && let Ok(mut w) = writer.lock()
            {
                let _ = w.write_all(&framed);
            }
        });
        Ok(())
    }

    fn play(&mut self) -> Result<()> {
        let reply = self
            .control
            .request(client::play(&self.stream.aggregate, None))?;
        check(&reply)
    }

    /// GET_PARAMETER, or OPTIONS for an upstream without it.
    fn keepalive(&mut self) -> Result<()> {
        let reply = self
            .control
            .request(client::get_parameter(&self.stream.aggregate))?;
        if !reply.status().is_success() {
            let reply = self
                .control
                .request(client::options(Some(&self.stream.aggregate)))?;
            check(&reply)?;
        }
        Ok(())
    }
}

/// An upstream RTCP packet: into the loss monitor; a BYE ends the relay.
fn on_rtcp(input: &RtpInput, bye: &AtomicBool, data: &[u8]) {
    if let Ok(compound) = rtcp_types::Compound::parse(data)
        && compound
            .flatten()
            .any(|p| matches!(p, rtcp_types::Packet::Bye(_)))
    {
        bye.store(true, Ordering::Release);
    }
    input.push_rtcp(data);
}

/// A reply the relay can go on with, or why not (in terms a user acts on).
fn check(reply: &rtsp_types::Response<Vec<u8>>) -> Result<()> {
    match reply.status() {
        s if s.is_success() => Ok(()),
        StatusCode::NotFound => bail!("no such stream on the upstream (404)"),
        StatusCode::Unauthorized => bail!(
            "the upstream wants credentials (401): put them in the URL, rtsp://user:password@host/..."
        ),
        s => bail!(
            "the upstream answered {} {}",
            u16::from(s),
            reply.reason_phrase()
        ),
    }
}

/// `--relay NAME=http://...`: a multipart MJPEG camera.
pub struct HttpRelay {
    url: Url,
}

impl super::Feeder for HttpRelay {
    fn start(&self, mtu: u32, events: Arc<dyn Events>) -> Result<Box<dyn Running>> {
        let (runner, input) = Runner::start_jpeg_input(mtu, events.clone())?;
        let stop = Arc::new(AtomicBool::new(false));
        let url = self.url.clone();
        let thread = spawn_puller("relay-http", url, &stop, events, move |url, stop| {
            pull_http(url, &input, stop)
        })?;
        Ok(Box::new(Relay {
            stop,
            thread: Some(thread),
            join: false,
            input: None,
            runner: Some(runner),
        }))
    }

    fn describe(&self) -> String {
        redact(self.url.as_str())
    }

    fn kind(&self) -> &'static str {
        "relay"
    }

    fn max_backoff(&self) -> Duration {
        MAX_RELAY_BACKOFF
    }
}

/// Bad parts are counted and said in the log at most this often.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(5);

fn pull_http(url: &Url, input: &JpegInput, stop: &AtomicBool) -> Result<()> {
    let (bare, credentials) = auth::split_credentials(url)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(REPLY_TIMEOUT))
        // A read waiting longer is the upstream's silence.
        .timeout_per_read(Some(SILENCE))
        .http_status_as_error(false)
        .user_agent(concat!("mjpeg-rtsp-server/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut request = agent.get(bare.as_str());
    if let Some(credentials) = credentials {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", credentials.user, credentials.password));
        request = request.header("Authorization", format!("Basic {token}"));
    }
    let response = request.call().map_err(|e| match e {
        ureq::Error::Timeout(_) => anyhow!(
            "no reply from the upstream within {} s",
            REPLY_TIMEOUT.as_secs()
        ),
        ureq::Error::Io(e) => anyhow!("cannot connect to the upstream: {e}"),
        e => anyhow!("{e}"),
    })?;
    match response.status().as_u16() {
        200 => {}
        401 => bail!(
            "the upstream wants credentials (401): put them in the URL, http://user:password@host/..."
        ),
        404 => bail!("no such stream on the upstream (404)"),
        status => bail!(
            "the upstream answered {status} {}",
            response.status().canonical_reason().unwrap_or("")
        ),
    }
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut reader = MultipartReader::for_content_type(&content_type, Limits::default())?;
    let mut body = response
        .into_body()
        .into_with_config()
        .limit(u64::MAX)
        .reader();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut dropped_said = Instant::now() - DROP_LOG_INTERVAL;
    let mut dropped_unsaid = 0u64;
    loop {
        let n = match body.read(&mut chunk) {
            Ok(0) => bail!("the upstream ended the stream"),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                bail!("no media from the upstream for {} s", SILENCE.as_secs())
            }
            Err(e) => bail!("reading the upstream: {e}"),
        };
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        reader.push(&chunk[..n]);
        while let Some(part) = reader.next_part() {
            match part {
                Ok(jpeg) => input.push_jpeg(jpeg),
                Err(e) => {
                    dropped_unsaid += 1;
                    if dropped_said.elapsed() >= DROP_LOG_INTERVAL {
                        tracing::warn!(
                            "relay {}: {dropped_unsaid} part(s) dropped, the last: {e}",
                            redact(url.as_str())
                        );
                        dropped_said = Instant::now();
                        dropped_unsaid = 0;
                    }
                }
            }
        }
        if reader.is_closed() {
            bail!("the upstream ended the stream");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_any_text_are_hidden() {
        assert_eq!(
            redact_text("rtspsrc location=rtsp://user:pw@cam:554/1 ! rtpjpegdepay"),
            "rtspsrc location=rtsp://***@cam:554/1 ! rtpjpegdepay"
        );
        assert_eq!(
            redact_text("a \"http://u:p@h/x\" and rtsp://h2/y and rtsp://v:w@h3"),
            "a \"http://***@h/x\" and rtsp://h2/y and rtsp://***@h3"
        );
        assert_eq!(redact_text("no url here"), "no url here");
    }

    use super::*;

    #[test]
    fn credentials_never_show() {
        assert_eq!(
            redact("rtsp://user:p%40ss@cam:554/live?x=1"),
            "rtsp://***@cam:554/live?x=1"
        );
        assert_eq!(redact("http://u@cam/a@b"), "http://***@cam/a@b");
        assert_eq!(redact("http://cam/a@b"), "http://cam/a@b");
        assert_eq!(redact("not a url"), "not a url");
        let err = parse_url("ftp://u:secret@cam/").unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(parse_url("rtsp://u:secret@cam/x").is_ok());
        assert!(parse_url("http://cam:8080/stream").is_ok());
        // A URL that does not parse may still hold a password before its `@`.
        let err = parse_url("rtsp//user:secret@cam/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("***@cam/x"), "{err}");
    }
}
