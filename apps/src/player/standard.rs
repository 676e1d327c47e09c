//! Standard RTSP 1.0 servers: DESCRIBE, SETUP over UDP, TCP interleaved (with the `auto`
//! fallback) or UDP multicast, PLAY/PAUSE with ranges, GET_PARAMETER keep-alives,
//! TEARDOWN.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rtsp_types::{StatusCode, Url};

use super::control::Control;
use super::pipeline::Player;
use super::{Remote, TransportChoice};
use crate::rtsp::auth::{self, Authenticator};
use crate::rtsp::client::{self, Setup, Stream};
use crate::rtsp::lab::normalize_version;
use crate::rtsp::{Dialect, interleaved};

/// How long to wait for the first UDP packet before `auto` falls back to TCP.
const UDP_FALLBACK: Duration = Duration::from_secs(2);
/// With `--transport udp`: no packet for this long after PLAY is an error with a hint.
const UDP_SILENCE: Duration = Duration::from_secs(8);

pub struct Standard {
    control: Control,
    stream: Stream,
    pub tcp: bool,
    /// Receiving the server's multicast group: one position for all its viewers.
    multicast: bool,
}

impl Standard {
    /// DESCRIBE, SETUP and PLAY from the start; over UDP, waits for the first packet
    /// (falling back to TCP with `auto`).
    /// `first_reply`: how long DESCRIBE may wait for its reply.
    pub fn start(
        url: &Url,
        transport: TransportChoice,
        verify: crate::tls::Verify,
        player: &Arc<Player>,
        first_reply: Duration,
    ) -> Result<Standard> {
        // Credentials in the URL answer 401s; the URL on the wire goes without them.
        let (bare, credentials) = auth::split_credentials(url)?;
        let url = &bare;
        let mut control = Control::connect_verify(url, verify)?;
        control.auth = Authenticator::new(credentials);
        control.reply_timeout = first_reply;
        let describe = control.request(client::describe(url))?;
        control.reply_timeout = super::control::REPLY_TIMEOUT;
        check(&describe, "DESCRIBE", url)?;
        let stream = client::read_describe(url, &describe)?.jpeg_video()?;
        let mut session = Standard {
            control,
            stream,
            tcp: transport == TransportChoice::Tcp,
            multicast: false,
        };
        let packets_seen = Arc::new(AtomicBool::new(false));
        // Cleared when the session moves to TCP: what still comes over UDP (the first
        // session's BYE) is not this stream's.
        let udp_active = Arc::new(AtomicBool::new(true));
        let mut group = None;
        if transport == TransportChoice::Multicast {
            group = Some(setup_multicast(
                &mut session.control,
                &session.stream.control,
                player,
                &packets_seen,
                &udp_active,
            )?);
            session.multicast = true;
        } else if !session.tcp {
            let (rtp, rtcp) = crate::ports::bind_rtp_pair(std::net::Ipv4Addr::UNSPECIFIED.into())?;
            let ports = client::udp_transport(rtp.local_addr()?.port(), rtcp.local_addr()?.port());
            let reply = session
                .control
                .request(client::setup(&session.stream.control, ports))?;
            if reply.status() == StatusCode::UnsupportedTransport
                && transport == TransportChoice::Auto
            {
                session.tcp = true;
            } else {
                check(&reply, "SETUP", &session.stream.control)?;
                let setup = session.control.client.read_setup(&reply)?;
                let server_rtcp = server_rtcp_address(&setup, url)?;
                start_udp(player, &rtp, &rtcp, server_rtcp, &packets_seen, &udp_active)?;
            }
        }
        if session.tcp {
            setup_tcp(&mut session.control, &session.stream.control, player)?;
        }
        session.play(Some(0.0))?;
        if session.tcp {
            return Ok(session);
        }
        let wait = if transport == TransportChoice::Auto {
            UDP_FALLBACK
        } else {
            UDP_SILENCE
        };
        let deadline = Instant::now() + wait;
        while !packets_seen.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if packets_seen.load(Ordering::Relaxed) {
            return Ok(session);
        }
        udp_active.store(false, Ordering::Relaxed);
        session.teardown();
        if let Some(group) = group {
            bail!(
                "no RTP packets arrived from multicast group {group} within {}s: the network between here and the server may not carry multicast; try --transport udp or tcp",
                wait.as_secs()
            );
        }
        if transport != TransportChoice::Auto {
            bail!(
                "no RTP packets arrived over UDP within {}s: a firewall or NAT may be blocking them; try --transport tcp",
                wait.as_secs()
            );
        }
        eprintln!(
            "mjpeg-player: no UDP packets within {}s, switching to TCP",
            wait.as_secs()
        );
        session.control.client.end_session();
        session.tcp = true;
        setup_tcp(&mut session.control, &session.stream.control, player)?;
        session.play(Some(0.0))?;
        Ok(session)
    }
}

impl Remote for Standard {
    fn play(&mut self, from: Option<f64>) -> Result<()> {
        let reply = self
            .control
            .request(client::play(&self.stream.aggregate, from))?;
        check(&reply, "PLAY", &self.stream.aggregate)
    }

    fn pause(&mut self) -> Result<()> {
        let reply = self
            .control
            .request(client::pause(&self.stream.aggregate))?;
        check(&reply, "PAUSE", &self.stream.aggregate)
    }

    fn keepalive(&mut self) -> bool {
        let reply = self
            .control
            .request(client::get_parameter(&self.stream.aggregate));
        match reply {
            Ok(r) if r.status().is_success() => true,
            // The server no longer knows the session.
            Ok(r) if r.status() == rtsp_types::StatusCode::SessionNotFound => false,
            // A server without GET_PARAMETER: OPTIONS keeps the session too.
            Ok(_) => self
                .control
                .request(client::options(Some(&self.stream.aggregate)))
                .is_ok_and(|r| r.status().is_success()),
            Err(_) => false,
        }
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        Some(self.control.client.keepalive_interval())
    }

    fn teardown(&mut self) {
        let _ = self
            .control
            .request(client::teardown(&self.stream.aggregate));
    }

    /// A multicast stream has no range to seek in: its group plays for every viewer.
    fn duration(&self) -> Option<f64> {
        self.stream.duration.filter(|_| !self.multicast)
    }

    fn is_tcp(&self) -> bool {
        self.tcp
    }

    fn dialect(&self) -> Dialect {
        Dialect::Standard
    }
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

fn setup_tcp(control: &mut Control, url: &Url, player: &Arc<Player>) -> Result<()> {
    let reply = control.request(client::setup(url, client::tcp_transport(0, 1)))?;
    check(&reply, "SETUP", url)?;
    let setup = control.client.read_setup(&reply)?;
    // The server may move the channels; without an answer they are what we asked.
    let (rtp_channel, rtcp_channel) = match setup.transport.and_then(|t| t.interleaved) {
        Some((rtp, rtcp)) => (rtp, rtcp.unwrap_or(rtp.wrapping_add(1))),
        None => (0, 1),
    };
    let receiver = player.clone();
    control.set_interleaved_sink(Box::new(move |channel, data| {
        if channel == rtp_channel {
            receiver.push_rtp(&normalize_version(data));
        } else if channel == rtcp_channel {
            receiver.push_rtcp(data);
        }
    }));
    let writer = control.writer();
    player.on_rtcp_out(move |packet| {
        let mut framed = Vec::with_capacity(packet.len() + 4);
        if interleaved::append(&mut framed, rtcp_channel, [packet])
            && let Ok(mut w) = writer.lock()
        {
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
    active: &Arc<AtomicBool>,
) -> Result<()> {
    let rtp = rtp.try_clone()?;
    let receiver = player.clone();
    let seen = packets_seen.clone();
    let rtp_active = active.clone();
    std::thread::Builder::new()
        .name("rtp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = rtp.recv(&mut buf) {
                if !rtp_active.load(Ordering::Relaxed) {
                    return;
                }
                seen.store(true, Ordering::Relaxed);
                receiver.push_rtp(&normalize_version(&buf[..n]));
            }
        })?;
    let rtcp_in = rtcp.try_clone()?;
    let receiver = player.clone();
    let rtcp_active = active.clone();
    std::thread::Builder::new()
        .name("rtcp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = rtcp_in.recv(&mut buf) {
                if !rtcp_active.load(Ordering::Relaxed) {
                    return;
                }
                receiver.push_rtcp(&buf[..n]);
            }
        })?;
    let rtcp_out = rtcp.try_clone()?;
    player.on_rtcp_out(move |packet| {
        let _ = rtcp_out.send_to(packet, server_rtcp);
    })
}

/// SETUP for the server's multicast group: joins it (RTP and RTCP ports) on the address
/// the control connection leaves from, and sends receiver reports to the group's RTCP
/// port (RFC 3550 6.1), from that address. The group and its ports, for messages.
fn setup_multicast(
    control: &mut Control,
    url: &Url,
    player: &Arc<Player>,
    packets_seen: &Arc<AtomicBool>,
    active: &Arc<AtomicBool>,
) -> Result<SocketAddrV4> {
    let reply = control.request(client::setup(url, client::multicast_transport()))?;
    check(&reply, "SETUP", url)?;
    let setup = control.client.read_setup(&reply)?;
    let Some(multicast) = setup.transport.and_then(|t| t.multicast) else {
        bail!("SETUP {url}: the server answered without a multicast transport");
    };
    let group = match multicast.group {
        Some(IpAddr::V4(group)) if group.is_multicast() => group,
        other => {
            bail!("SETUP {url}: the server gave no IPv4 multicast group (destination {other:?})")
        }
    };
    let Some((rtp_port, rtcp_port)) = multicast.port else {
        bail!("SETUP {url}: the server gave no port for multicast group {group}");
    };
    let rtcp_port = rtcp_port.unwrap_or(rtp_port.wrapping_add(1));
    let interface = match control.local_ip() {
        Some(IpAddr::V4(ip)) => ip,
        _ => Ipv4Addr::UNSPECIFIED,
    };
    let ttl = multicast.ttl.unwrap_or(1);
    let rtp = join_group(group, rtp_port, interface, ttl)?;
    let rtcp = join_group(group, rtcp_port, interface, ttl)?;
    tracing::info!(
        "receiving multicast group {group}:{rtp_port}-{rtcp_port} on {interface} (ttl {ttl})"
    );
    start_udp(
        player,
        &rtp,
        &rtcp,
        SocketAddrV4::new(group, rtcp_port).into(),
        packets_seen,
        active,
    )?;
    Ok(SocketAddrV4::new(group, rtp_port))
}

/// A socket on `group`:`port`, joined on `interface`, whose own multicast leaves from
/// `interface` with `ttl`. Other receivers on this host may share the port
/// (`SO_REUSEADDR`).
fn join_group(group: Ipv4Addr, port: u16, interface: Ipv4Addr, ttl: u8) -> Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let what = || format!("joining multicast group {group}:{port} on {interface}");
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).with_context(what)?;
    socket.set_reuse_address(true).with_context(what)?;
    socket
        .bind(&SocketAddrV4::new(group, port).into())
        .with_context(what)?;
    socket
        .join_multicast_v4(&group, &interface)
        .with_context(what)?;
    socket.set_multicast_if_v4(&interface).with_context(what)?;
    socket
        .set_multicast_ttl_v4(u32::from(ttl))
        .with_context(what)?;
    Ok(socket.into())
}

fn server_rtcp_address(setup: &Setup, url: &Url) -> Result<SocketAddr> {
    let host = url.host_str().ok_or_else(|| anyhow!("no host"))?;
    let ip = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))?
        .next()
        .ok_or_else(|| anyhow!("{host} has no address"))?
        .ip();
    // RTCP goes to the server's second port, or the one after its RTP port (RFC 3550).
    let port = match setup.transport.and_then(|t| t.server_port) {
        Some((rtp, rtcp)) => rtcp.unwrap_or(rtp.wrapping_add(1)),
        None => 0,
    };
    Ok(SocketAddr::new(ip, port))
}
