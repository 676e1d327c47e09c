//! `mjpeg-player`: plays Motion-JPEG RTSP streams with live loss statistics.
//!
//! Threads: the main thread runs the session (RTSP requests, keep-alives, commands,
//! stop conditions, the overlay text); a reader thread owns the control connection's
//! input (replies and, over TCP, interleaved packets); over UDP one thread receives RTP
//! and one RTCP. Received packets go straight into the pipeline (`appsrc`), which decodes
//! in the receiving thread and shows each frame as soon as it is decoded: no jitter
//! buffer, no clock sync.

pub mod control;
pub mod describe;
pub mod pipeline;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;
use rtsp_types::headers;
use rtsp_types::{Method, StatusCode, Url};

use control::Control;
use pipeline::{Player, Stats};

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

/// How long to wait for the first UDP packet before `auto` falls back to TCP.
const UDP_FALLBACK: Duration = Duration::from_secs(2);
/// No packet at all for this long after PLAY: give up with a hint.
const NO_PACKETS: Duration = Duration::from_secs(8);

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

/// Plays `options.url` until the stream ends, a stop condition, or a quit command.
pub fn run(options: Options, commands: mpsc::Receiver<Command>) -> Result<Summary> {
    gst::init()?;
    gstmjpegrtp::plugin_register_static()?;
    let url = Url::parse(&options.url).with_context(|| format!("{} is not a URL", options.url))?;
    if url.scheme() != "rtsp" {
        bail!("{url}: only rtsp:// URLs are supported");
    }
    let mut control = Control::connect(&url)?;
    let describe = control.request(
        Method::Describe,
        Some(&url),
        &[(headers::ACCEPT, "application/sdp".to_string())],
    )?;
    check(&describe, "DESCRIBE", &url)?;
    let base = describe
        .header(&headers::CONTENT_BASE)
        .or_else(|| describe.header(&headers::CONTENT_LOCATION))
        .and_then(|v| Url::parse(v.as_str()).ok())
        .unwrap_or_else(|| url.clone());
    let stream = describe::read(describe.body(), &base)?;

    let first_frame: Arc<Mutex<Option<Duration>>> = Arc::default();
    let started = options.started;
    let frames_seen = first_frame.clone();
    let (frame_tx, frame_rx) = mpsc::channel::<u64>();
    let sink = if options.headless {
        "fakesink"
    } else {
        "autovideosink"
    };
    let player = Arc::new(Player::new(sink, options.overlay, move |n| {
        if n == 1
            && let Ok(mut f) = frames_seen.lock()
        {
            *f = Some(started.elapsed());
        }
        let _ = frame_tx.send(n);
    })?);

    let mut tcp = options.transport == TransportChoice::Tcp;
    let packets_seen = Arc::new(AtomicBool::new(false));
    let mut udp = None;
    if !tcp {
        let (rtp, rtcp) = bind_pair()?;
        let transport = format!(
            "RTP/AVP;unicast;client_port={}-{}",
            rtp.local_addr()?.port(),
            rtcp.local_addr()?.port()
        );
        let reply = control.request(
            Method::Setup,
            Some(&stream.control),
            &[(headers::TRANSPORT, transport)],
        )?;
        if reply.status() == StatusCode::UnsupportedTransport
            && options.transport == TransportChoice::Auto
        {
            tcp = true;
        } else {
            check(&reply, "SETUP", &stream.control)?;
            take_session(&mut control, &reply)?;
            let server_rtcp = server_rtcp_address(&reply, &url)?;
            udp = Some((rtp, rtcp, server_rtcp));
        }
    }
    if tcp {
        setup_tcp(&mut control, &stream.control, &player)?;
    } else if let Some((rtp, rtcp, server_rtcp)) = &udp {
        start_udp(&player, rtp, rtcp, *server_rtcp, &packets_seen)?;
    }
    player
        .pipeline
        .set_state(gst::State::Playing)
        .context("starting the pipeline")?;
    let play = control.request(
        Method::Play,
        Some(&stream.aggregate),
        &[(headers::RANGE, "npt=0-".to_string())],
    )?;
    check(&play, "PLAY", &stream.aggregate)?;
    let mut position = Position::new(0.0);

    // UDP that never arrives: fall back to TCP (auto) or explain.
    if !tcp {
        let wait = if options.transport == TransportChoice::Auto {
            UDP_FALLBACK
        } else {
            NO_PACKETS
        };
        let deadline = Instant::now() + wait;
        while !packets_seen.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !packets_seen.load(Ordering::Relaxed) {
            if options.transport != TransportChoice::Auto {
                let _ = control.request(Method::Teardown, Some(&stream.aggregate), &[]);
                bail!(
                    "no RTP packets arrived over UDP within {}s: a firewall or NAT may be blocking them; try --transport tcp",
                    wait.as_secs()
                );
            }
            eprintln!(
                "mjpeg-player: no UDP packets within {}s, switching to TCP",
                wait.as_secs()
            );
            let _ = control.request(Method::Teardown, Some(&stream.aggregate), &[]);
            control.session = None;
            tcp = true;
            setup_tcp(&mut control, &stream.control, &player)?;
            let play = control.request(
                Method::Play,
                Some(&stream.aggregate),
                &[(headers::RANGE, "npt=0-".to_string())],
            )?;
            check(&play, "PLAY", &stream.aggregate)?;
            position = Position::new(0.0);
        }
    }

    let bus = player.pipeline.bus().ok_or_else(|| anyhow!("no bus"))?;
    let keepalive = Duration::from_secs(control.timeout.unwrap_or(60).max(2) / 2);
    let mut last_keepalive = Instant::now();
    let mut last_overlay = Instant::now();
    let mut last_frame_at = Instant::now();
    let begin = Instant::now();
    let mut paused = false;
    let mut overlay = options.overlay;
    let mut last_stats = player.stats();
    let mut rate_window = (Instant::now(), 0u64);
    let mut fps = 0.0;
    let result: Result<()> = loop {
        // Frames shown since the last round.
        while let Ok(n) = frame_rx.try_recv() {
            last_frame_at = Instant::now();
            if options.frames.is_some_and(|limit| n >= limit) {
                break;
            }
        }
        let stats = player.stats();
        if options
            .frames
            .is_some_and(|limit| stats.frames_shown >= limit)
        {
            break Ok(());
        }
        if options.duration.is_some_and(|d| begin.elapsed() >= d) {
            break Ok(());
        }
        if let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(e) => break Err(anyhow!("{}", e.error())),
                gst::MessageView::Element(e)
                    if e.structure().is_some_and(|s| s.name() == "rtcp-bye") =>
                {
                    eprintln!("mjpeg-player: the server ended the stream");
                    break Ok(());
                }
                _ => {}
            }
            continue;
        }
        if !paused && stats.frames_shown == 0 && begin.elapsed() > NO_PACKETS {
            break Err(anyhow!(
                "no frame arrived within {}s of PLAY{}",
                NO_PACKETS.as_secs(),
                if tcp {
                    ""
                } else {
                    ": a firewall may be blocking UDP; try --transport tcp"
                }
            ));
        }
        if !paused && stats.frames_shown > 0 && last_frame_at.elapsed() > NO_PACKETS {
            eprintln!(
                "mjpeg-player: no frame for {}s, stopping",
                NO_PACKETS.as_secs()
            );
            break Ok(());
        }
        if last_keepalive.elapsed() >= keepalive {
            last_keepalive = Instant::now();
            let reply = control.request(Method::GetParameter, Some(&stream.aggregate), &[]);
            if reply.is_ok_and(|r| !r.status().is_success()) {
                let _ = control.request(Method::Options, Some(&stream.aggregate), &[]);
            }
        }
        if rate_window.0.elapsed() >= Duration::from_secs(1) {
            fps =
                (stats.frames_shown - rate_window.1) as f64 / rate_window.0.elapsed().as_secs_f64();
            rate_window = (Instant::now(), stats.frames_shown);
        }
        if overlay && last_overlay.elapsed() >= Duration::from_millis(500) {
            last_overlay = Instant::now();
            player.set_overlay_text(&overlay_text(&stats, fps, paused));
        }
        last_stats = stats;
        match commands.recv_timeout(Duration::from_millis(20)) {
            Ok(Command::Quit) => break Ok(()),
            Ok(Command::ToggleOverlay) => {
                overlay = !overlay;
                player.set_overlay_visible(overlay);
            }
            Ok(Command::TogglePause) => {
                let method = if paused { Method::Play } else { Method::Pause };
                let reply = control.request(method, Some(&stream.aggregate), &[])?;
                check(
                    &reply,
                    if paused { "PLAY" } else { "PAUSE" },
                    &stream.aggregate,
                )?;
                if paused {
                    position.resume();
                } else {
                    position.pause();
                }
                paused = !paused;
                last_frame_at = Instant::now();
                eprintln!(
                    "mjpeg-player: {}",
                    if paused { "paused" } else { "playing" }
                );
            }
            Ok(Command::Seek(delta)) => {
                let Some(duration) = stream.duration else {
                    eprintln!("mjpeg-player: the server offers no range to seek in");
                    continue;
                };
                let target =
                    (position.now() + f64::from(delta)).clamp(0.0, (duration - 0.05).max(0.0));
                let range = format!("npt={target:.3}-");
                let reply = control.request(
                    Method::Play,
                    Some(&stream.aggregate),
                    &[(headers::RANGE, range)],
                )?;
                check(&reply, "PLAY", &stream.aggregate)?;
                position = Position::new(target);
                paused = false;
                last_frame_at = Instant::now();
                eprintln!("mjpeg-player: at {target:.1} s");
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
    };
    let _ = control.request(Method::Teardown, Some(&stream.aggregate), &[]);
    let _ = player.pipeline.set_state(gst::State::Null);
    let summary = Summary {
        stats: player.stats().max_frames(last_stats),
        first_frame: first_frame.lock().ok().and_then(|f| *f),
        transport_tcp: tcp,
    };
    result?;
    Ok(summary)
}

impl Stats {
    /// The counters after the pipeline stopped (a stopped fakesink counts no more).
    fn max_frames(mut self, before: Stats) -> Stats {
        self.frames_shown = self.frames_shown.max(before.frames_shown);
        self
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

fn overlay_text(stats: &Stats, fps: f64, paused: bool) -> String {
    format!(
        "{}{:.1} fps  {:.0} kbit/s\nlost {} of {} ({:.2}%)  jitter {:.2} ms\nframes dropped {}",
        if paused { "PAUSED  " } else { "" },
        fps,
        stats.bitrate as f64 / 1000.0,
        stats.packets_lost.max(0),
        stats.packets_expected,
        stats.loss_rate() * 100.0,
        stats.jitter_ms,
        stats.frames_dropped
    )
}

fn check(reply: &rtsp_types::Response<Vec<u8>>, what: &str, url: &Url) -> Result<()> {
    match reply.status() {
        s if s.is_success() => Ok(()),
        StatusCode::NotFound => bail!("{url}: no such stream on the server (404)"),
        StatusCode::Unauthorized => bail!(
            "{url}: the server wants credentials (401): put them in the URL, rtsp://user:password@host/..."
        ),
        s => bail!(
            "{what} {url}: the server answered {} {}",
            u16::from(s),
            reply.reason_phrase()
        ),
    }
}

fn take_session(control: &mut Control, reply: &rtsp_types::Response<Vec<u8>>) -> Result<()> {
    let value = reply
        .header(&headers::SESSION)
        .ok_or_else(|| anyhow!("SETUP reply without a Session"))?
        .as_str()
        .to_string();
    let mut parts = value.split(';');
    control.session = parts.next().map(|s| s.trim().to_string());
    control.timeout = parts.find_map(|p| p.trim().strip_prefix("timeout=")?.trim().parse().ok());
    Ok(())
}

fn setup_tcp(control: &mut Control, url: &Url, player: &Arc<Player>) -> Result<()> {
    let transport = "RTP/AVP/TCP;unicast;interleaved=0-1".to_string();
    let reply = control.request(Method::Setup, Some(url), &[(headers::TRANSPORT, transport)])?;
    check(&reply, "SETUP", url)?;
    take_session(control, &reply)?;
    let interleaved = reply
        .header(&headers::TRANSPORT)
        .and_then(|t| {
            t.as_str()
                .split(';')
                .find_map(|p| p.trim().strip_prefix("interleaved=").map(str::to_string))
        })
        .unwrap_or_else(|| "0-1".to_string());
    let mut channels = interleaved.split('-').map(|c| c.trim().parse::<u8>().ok());
    let rtp_channel = channels.next().flatten().unwrap_or(0);
    let rtcp_channel = channels
        .next()
        .flatten()
        .unwrap_or(rtp_channel.wrapping_add(1));
    let receiver = player.clone();
    control.set_interleaved_sink(Box::new(move |channel, data| {
        if channel == rtp_channel {
            receiver.push_rtp(&fix_version(data));
        } else if channel == rtcp_channel {
            receiver.push_rtcp(data);
        }
    }));
    let writer = control.writer();
    player.on_rtcp_out(move |packet| {
        let Ok(len) = u16::try_from(packet.len()) else {
            return;
        };
        let mut framed = vec![b'$', rtcp_channel];
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(packet);
        if let Ok(mut w) = writer.lock() {
            let _ = w.write_all(&framed);
        }
    })?;
    Ok(())
}

fn start_udp(
    player: &Arc<Player>,
    rtp: &UdpSocket,
    rtcp: &UdpSocket,
    server_rtcp: SocketAddr,
    packets_seen: &Arc<AtomicBool>,
) -> Result<()> {
    let rtp = rtp.try_clone()?;
    let receiver = player.clone();
    let seen = packets_seen.clone();
    std::thread::Builder::new()
        .name("rtp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = rtp.recv(&mut buf) {
                seen.store(true, Ordering::Relaxed);
                receiver.push_rtp(&fix_version(&buf[..n]));
            }
        })?;
    let rtcp_in = rtcp.try_clone()?;
    let receiver = player.clone();
    std::thread::Builder::new()
        .name("rtcp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = rtcp_in.recv(&mut buf) {
                receiver.push_rtcp(&buf[..n]);
            }
        })?;
    let rtcp_out = rtcp.try_clone()?;
    player.on_rtcp_out(move |packet| {
        let _ = rtcp_out.send_to(packet, server_rtcp);
    })
}

/// Lab servers of one widespread student version send RTP version 0; RTP elements take
/// only version 2, so the version bits are set right before the pipeline.
fn fix_version(packet: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match packet.first() {
        Some(b) if b >> 6 == 0 && packet.len() >= 12 => {
            let mut fixed = packet.to_vec();
            fixed[0] |= 0x80;
            std::borrow::Cow::Owned(fixed)
        }
        _ => std::borrow::Cow::Borrowed(packet),
    }
}

fn server_rtcp_address(reply: &rtsp_types::Response<Vec<u8>>, url: &Url) -> Result<SocketAddr> {
    let transport = reply
        .header(&headers::TRANSPORT)
        .map(|t| t.as_str().to_string())
        .unwrap_or_default();
    let ports = transport
        .split(';')
        .find_map(|p| p.trim().strip_prefix("server_port=").map(str::to_string));
    let host = url.host_str().ok_or_else(|| anyhow!("no host"))?;
    let ip = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))?
        .next()
        .ok_or_else(|| anyhow!("{host} has no address"))?
        .ip();
    let port = match ports {
        Some(p) => {
            let mut it = p.split('-').map(|x| x.trim().parse::<u16>().ok());
            let rtp = it.next().flatten();
            it.next().flatten().or(rtp.map(|r| r.wrapping_add(1)))
        }
        None => None,
    };
    Ok(SocketAddr::new(ip, port.unwrap_or(0)))
}

/// Two UDP sockets on consecutive ports, the first even.
fn bind_pair() -> Result<(UdpSocket, UdpSocket)> {
    for _ in 0..100 {
        let rtp = UdpSocket::bind("0.0.0.0:0")?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("0.0.0.0", port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    bail!("found no free pair of UDP ports")
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

/// The summary printed at exit, with the lab client's "RTP packet loss rate".
pub fn summary_text(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "frames shown: {}\npackets received: {}, expected: {}, lost: {}\njitter: {:.2} ms\nframes dropped by the depayloader: {}\ntime to first frame: {}\nRTP packet loss rate: {:.2}%",
        s.frames_shown,
        s.packets_received,
        s.packets_expected,
        s.packets_lost.max(0),
        s.jitter_ms,
        s.frames_dropped,
        summary.first_frame.map_or("-".to_string(), |d| format!(
            "{:.1} ms",
            d.as_secs_f64() * 1000.0
        )),
        s.loss_rate() * 100.0
    )
}

/// The same as JSON (written by hand: a flat object of numbers).
pub fn summary_json(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "{{\"frames_shown\": {}, \"packets_received\": {}, \"packets_expected\": {}, \"packets_lost\": {}, \"loss_rate\": {}, \"jitter_ms\": {:.3}, \"frames_dropped\": {}, \"time_to_first_frame_ms\": {}, \"transport\": \"{}\"}}\n",
        s.frames_shown,
        s.packets_received,
        s.packets_expected,
        s.packets_lost,
        s.loss_rate(),
        s.jitter_ms,
        s.frames_dropped,
        summary.first_frame.map_or("null".to_string(), |d| format!(
            "{:.1}",
            d.as_secs_f64() * 1000.0
        )),
        if summary.transport_tcp { "tcp" } else { "udp" }
    )
}
