//! A lossy RTSP proxy for end-to-end tests of players: [`LossyProxy`] sits between an
//! RTSP server (normally `mjpeg-rtsp-server`) and a player, forwards every control
//! connection byte for byte, and relays the UDP media of each session through a pair of
//! its own ports, dropping RTP packets by a deterministic [`DropPolicy`] and counting,
//! per SSRC, exactly what it forwarded and dropped ([`RelayCounts`]). A test can then
//! compare the loss a player reports with the relay's own count.
//!
//! ```text
//!   player --TCP--> proxy --TCP--> server
//!   player <--RTP--- relay RTP port <--RTP--- server      (RTP dropped by the policy)
//!   player <--RTCP-- relay RTCP port <--RTCP-- server     (never dropped)
//!   player --RTCP--> relay RTCP port --RTCP--> server     (never dropped)
//! ```
//!
//! How a UDP session is relayed:
//! - In a SETUP request, every `client_port=a-b` of the `Transport` header becomes
//!   `client_port=r-r+1`, a pair of relay ports the proxy binds (even, consecutive) on the
//!   address of its connection to the server. The player's ports are remembered, with the
//!   player's address (the peer address of its control connection).
//! - In the SETUP reply, `client_port=r-r+1` becomes the player's `a-b` again and
//!   `server_port=p-q` becomes `r-r+1`: the player sees the relay as the server, and the
//!   server sees the relay as the client. RTCP therefore goes through the relay in both
//!   directions (the player's receiver reports reach the server from the relay's RTCP
//!   port); anything the player sends to the relay's RTP port (NAT "punch" packets) goes on
//!   to the server's RTP port.
//! - Datagrams from the server's advertised RTP/RTCP address go to the player; any other
//!   sender is taken for the player and relayed to the server.
//! - Only the `Transport` header of SETUP requests and replies changes; the rest of each
//!   message (other headers in their order and case, line ends, body) is copied as it
//!   came, so `Content-Length` stays right. Messages are framed and read with
//!   `rtsp-types`; the rewrite is a splice into the raw bytes, because re-serialising with
//!   `rtsp-types` would reorder and merge headers.
//! - A `destination=` parameter is not honoured: the relay sends to the player's control
//!   connection address.
//!
//! TCP-interleaved sessions (`RTP/AVP/TCP;interleaved=`) are forwarded as they are, with
//! no dropping; `$` frames are counted. Any number of control connections may be open at
//! once, each with its own connection to the server.
//!
//! The relay handles each session's two sockets on one thread and drains its RTP socket
//! before it handles an RTCP datagram, so packets keep the order in which they reached
//! the relay as far as the kernel delivered them. Counts are updated before a packet is
//! forwarded: once a player holds a packet, the counts include it and every packet the
//! relay received before it.

use crate::lock;
use std::collections::{BTreeMap, HashMap};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Which RTP packets the relay drops. Packets are numbered per SSRC from 1, in the order
/// the relay receives them (the `index` of [`DropPolicy::drops`]), so a policy gives the
/// same drops on every run whatever else the machine is doing.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum DropPolicy {
    /// Forward everything.
    #[default]
    None,
    /// Drop packets n, 2n, 3n, ... of each SSRC (`n` >= 1; 1 drops everything).
    EveryNth(u64),
    /// Drop each packet with probability `p` (0.0 ..= 1.0), decided by a hash of
    /// (`seed`, packet index): deterministic for a seed.
    Probability { p: f64, seed: u64 },
    /// Drop exactly these packet indices (1 = the first packet of an SSRC).
    Indices(Vec<u64>),
}

impl DropPolicy {
    /// Whether the packet number `index` (from 1) of an SSRC is dropped.
    pub fn drops(&self, index: u64) -> bool {
        match self {
            DropPolicy::None => false,
            DropPolicy::EveryNth(n) => {
                assert!(*n >= 1, "DropPolicy::EveryNth(0)");
                index.is_multiple_of(*n)
            }
            DropPolicy::Probability { p, seed } => {
                let h = splitmix64(seed ^ splitmix64(index));
                // 53 random bits as a number in [0, 1).
                ((h >> 11) as f64 / (1u64 << 53) as f64) < *p
            }
            DropPolicy::Indices(list) => list.contains(&index),
        }
    }
}

/// A well-mixed 64-bit hash (the SplitMix64 finaliser).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the relay did with one SSRC's RTP packets (server to player). Sequence numbers
/// are also given extended (RFC 3550: with the count of wraps in the high bits, starting
/// at 0 cycles with the first packet the relay received).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SsrcCounts {
    /// RTP packets received from the server.
    pub received: u64,
    pub forwarded: u64,
    pub dropped: u64,
    /// Received packets with the marker bit (for RTP/JPEG: frames).
    pub markers: u64,
    /// Sequence numbers of the dropped packets, in the order they came.
    pub dropped_seqs: Vec<u16>,
    /// The same, extended.
    pub dropped_ext: Vec<u64>,
    /// Extended seq of the first and last forwarded packets.
    pub first_forwarded: Option<u64>,
    pub last_forwarded: Option<u64>,
    /// Extended seq of the last received packet.
    pub last_received: Option<u64>,
    /// Seq and timestamp of the first received packet.
    pub first_seq: Option<u16>,
    pub first_ts: Option<u32>,
}

impl SsrcCounts {
    /// The losses a receiver of the forwarded packets can detect: dropped packets between
    /// its first and last packet (RFC 3550's cumulative loss, `expected - received`, when
    /// nothing else was lost).
    pub fn visible_losses(&self) -> u64 {
        match (self.first_forwarded, self.last_forwarded) {
            (Some(first), Some(last)) => self.dropped_between(first, last),
            _ => 0,
        }
    }

    /// Dropped packets with an extended seq strictly between `after` and `before`.
    pub fn dropped_between(&self, after: u64, before: u64) -> u64 {
        self.dropped_ext
            .iter()
            .filter(|&&e| e > after && e < before)
            .count() as u64
    }

    /// Packets a receiver expects from its first to its last packet (RFC 3550 A.3).
    pub fn expected(&self) -> u64 {
        match (self.first_forwarded, self.last_forwarded) {
            (Some(first), Some(last)) => last - first + 1,
            _ => 0,
        }
    }
}

/// One relayed UDP session (one SETUP with `client_port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedSession {
    /// Where the relay sends RTP and RTCP: the player's address and its `client_port`.
    pub player_rtp: SocketAddr,
    pub player_rtcp: SocketAddr,
    /// The relay's ports (the `client_port` the server saw, the `server_port` the player
    /// saw).
    pub relay_rtp: u16,
    pub relay_rtcp: u16,
    /// The server's RTP and RTCP addresses, from its SETUP reply.
    pub server_rtp: Option<SocketAddr>,
    pub server_rtcp: Option<SocketAddr>,
    /// From the SETUP reply: the session id (without `;timeout=`) and the `ssrc`.
    pub session_id: Option<String>,
    pub ssrc: Option<u32>,
}

/// A snapshot of what the proxy did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelayCounts {
    /// RTP from the server, by SSRC.
    pub ssrcs: BTreeMap<u32, SsrcCounts>,
    /// UDP sessions, in SETUP order.
    pub sessions: Vec<RelayedSession>,
    /// Control connections accepted.
    pub connections: u64,
    /// SETUP requests whose `client_port` was rewritten.
    pub udp_setups: u64,
    /// SETUP requests asking for TCP-interleaved transport (forwarded unchanged).
    pub interleaved_setups: u64,
    /// `$` frames forwarded on control connections, both ways.
    pub interleaved_frames: u64,
    /// RTCP datagrams relayed server -> player and player -> server.
    pub rtcp_to_player: u64,
    pub rtcp_to_server: u64,
    /// The datagrams the player sent to the relay's RTCP port, in order.
    pub rtcp_from_player: Vec<Vec<u8>>,
    /// Datagrams the player sent to the relay's RTP port (relayed to the server).
    pub rtp_to_server: u64,
    /// Datagrams on an RTP port that were not RTP version 2 (forwarded, not counted).
    pub not_rtp: u64,
    /// RTP packets sent after the packet that followed them (see
    /// [`LossyProxy::set_reorder`]).
    pub reordered: u64,
}

impl RelayCounts {
    /// The counts of the one SSRC; panics unless exactly one was seen.
    pub fn single(&self) -> &SsrcCounts {
        assert_eq!(
            self.ssrcs.len(),
            1,
            "expected RTP from one SSRC, got {:?}",
            self.ssrcs
                .keys()
                .map(|s| format!("{s:08x}"))
                .collect::<Vec<_>>()
        );
        self.ssrcs.values().next().unwrap()
    }

    pub fn ssrc(&self, ssrc: u32) -> Option<&SsrcCounts> {
        self.ssrcs.get(&ssrc)
    }

    /// RTP packets received from servers, over every SSRC.
    pub fn total_received(&self) -> u64 {
        self.ssrcs.values().map(|c| c.received).sum()
    }

    pub fn total_forwarded(&self) -> u64 {
        self.ssrcs.values().map(|c| c.forwarded).sum()
    }

    pub fn total_dropped(&self) -> u64 {
        self.ssrcs.values().map(|c| c.dropped).sum()
    }
}

/// Per-SSRC state behind [`SsrcCounts`].
#[derive(Default)]
struct Tally {
    counts: RelayCounts,
}

impl Tally {
    /// Books an RTP packet from the server; true if it is to be dropped.
    fn rtp(&mut self, policy: &DropPolicy, ssrc: u32, seq: u16, ts: u32, marker: bool) -> bool {
        let c = self.counts.ssrcs.entry(ssrc).or_default();
        let ext = match c.last_received {
            None => u64::from(seq),
            Some(last) => {
                let delta = i64::from(seq.wrapping_sub(last as u16) as i16);
                (last as i64 + delta).max(0) as u64
            }
        };
        c.received += 1;
        c.first_seq.get_or_insert(seq);
        c.first_ts.get_or_insert(ts);
        c.last_received = Some(ext);
        if marker {
            c.markers += 1;
        }
        if policy.drops(c.received) {
            c.dropped += 1;
            c.dropped_seqs.push(seq);
            c.dropped_ext.push(ext);
            true
        } else {
            c.forwarded += 1;
            c.first_forwarded.get_or_insert(ext);
            c.last_forwarded = Some(ext);
            false
        }
    }
}

struct Shared {
    server: SocketAddr,
    policy: Mutex<DropPolicy>,
    /// Which forwarded RTP packets are held back and sent after the next one.
    reorder: Mutex<DropPolicy>,
    tally: Mutex<Tally>,
    stop: AtomicBool,
    /// Every TCP stream and relay socket, to wake their threads at the end.
    streams: Mutex<Vec<TcpStream>>,
    relay_addrs: Mutex<Vec<SocketAddr>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce() + Send + 'static) {
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .expect("a relay thread");
        lock(&self.threads).push(handle);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// An RTSP proxy with a lossy UDP relay; see the [module documentation](self). Stops
/// (closing every connection and socket) when dropped.
pub struct LossyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl LossyProxy {
    /// Listens on 127.0.0.1 and a free port, proxying to the RTSP server at `server`.
    pub fn start(server: SocketAddr, drop: DropPolicy) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a TCP port for the proxy");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            server,
            policy: Mutex::new(drop),
            reorder: Mutex::new(DropPolicy::None),
            tally: Mutex::default(),
            stop: AtomicBool::new(false),
            streams: Mutex::default(),
            relay_addrs: Mutex::default(),
            threads: Mutex::default(),
        });
        let accept_shared = shared.clone();
        shared.spawn("proxy-accept", move || accept_loop(listener, accept_shared));
        LossyProxy { addr, shared }
    }

    /// The proxy's address (127.0.0.1:port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server it proxies to.
    pub fn server(&self) -> SocketAddr {
        self.shared.server
    }

    /// `rtsp://127.0.0.1:PORT/path` (`path` with or without its leading `/`).
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// The same URL as `server_url` (a URL of the server), on the proxy's address.
    pub fn proxied(&self, server_url: &str) -> String {
        let rest = server_url
            .strip_prefix("rtsp://")
            .unwrap_or_else(|| panic!("not an rtsp:// URL: {server_url}"));
        let path = rest.split_once('/').map_or("", |(_, p)| p);
        self.url(path)
    }

    /// Changes the policy from the next packet on (packet indices go on counting).
    pub fn set_drop(&self, drop: DropPolicy) {
        *lock(&self.shared.policy) = drop;
    }

    /// Reorders RTP packets from the next one on: a packet the policy picks (by the same
    /// per-SSRC numbering as drops) is held back and sent right after the packet that
    /// follows it, so that the two arrive swapped. Counted in [`RelayCounts::reordered`].
    pub fn set_reorder(&self, reorder: DropPolicy) {
        *lock(&self.shared.reorder) = reorder;
    }

    /// What the relay did so far.
    pub fn counts(&self) -> RelayCounts {
        lock(&self.shared.tally).counts.clone()
    }

    /// Polls the counts until `done` holds; panics (showing `what` and the counts) when
    /// `timeout` passes first.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&RelayCounts) -> bool,
    ) -> RelayCounts {
        crate::poll(timeout, || self.counts(), &mut done).unwrap_or_else(|counts| {
            panic!("the relay did not see {what} within {timeout:?}: {counts:#?}")
        })
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop, the connection threads and the relay threads.
        let _ = TcpStream::connect(self.addr);
        for stream in lock(&self.shared.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        if let Ok(waker) = UdpSocket::bind("127.0.0.1:0") {
            for addr in lock(&self.shared.relay_addrs).iter() {
                let _ = waker.send_to(&[], addr);
            }
        }
        crate::join_all(&self.shared.threads);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for player in listener.incoming() {
        if shared.stopped() {
            return;
        }
        let Ok(player) = player else { continue };
        lock(&shared.tally).counts.connections += 1;
        let Ok(server) = TcpStream::connect(shared.server) else {
            let _ = player.shutdown(Shutdown::Both);
            continue;
        };
        let _ = player.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(player_peer), Ok(server_side)) = (player.peer_addr(), server.local_addr()) else {
            continue;
        };
        let conn = Arc::new(Connection {
            shared: shared.clone(),
            player_ip: player_peer.ip(),
            relay_ip: server_side.ip(),
            pending: Mutex::default(),
        });
        let clones = (
            player.try_clone().expect("a stream clone"),
            server.try_clone().expect("a stream clone"),
        );
        {
            let mut streams = lock(&shared.streams);
            streams.push(clones.0.try_clone().expect("a stream clone"));
            streams.push(clones.1.try_clone().expect("a stream clone"));
        }
        if shared.stopped() {
            return;
        }
        let up = conn.clone();
        shared.spawn("proxy-up", move || up.pump(player, server, Direction::Up));
        shared.spawn("proxy-down", move || {
            conn.pump(clones.1, clones.0, Direction::Down)
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// Player to server: requests.
    Up,
    /// Server to player: replies.
    Down,
}

/// A relay set up for one SETUP request, waiting for the reply.
struct PendingRelay {
    relay: Arc<UdpRelay>,
    /// The player's `client_port` as it wrote it.
    player_rtp: u16,
    player_rtcp: u16,
}

struct Connection {
    shared: Arc<Shared>,
    player_ip: IpAddr,
    /// The address the server sees the proxy at (where it sends media).
    relay_ip: IpAddr,
    /// SETUP requests sent on, by CSeq.
    pending: Mutex<HashMap<String, Vec<PendingRelay>>>,
}

/// One message at the start of a buffer.
enum Framed {
    /// An interleaved `$` frame of this many bytes.
    Data(usize),
    /// An RTSP message of this many bytes, parsed if `rtsp-types` could.
    Rtsp(usize, Option<rtsp_types::Message<Vec<u8>>>),
}

impl Connection {
    /// Copies `from` to `to` message by message, rewriting SETUPs.
    fn pump(&self, mut from: TcpStream, mut to: TcpStream, direction: Direction) {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            let n = match from.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut out = Vec::new();
            let mut used = 0;
            while let Some(framed) = frame(&buf[used..]) {
                match framed {
                    Framed::Data(len) => {
                        lock(&self.shared.tally).counts.interleaved_frames += 1;
                        out.extend_from_slice(&buf[used..used + len]);
                        used += len;
                    }
                    Framed::Rtsp(len, message) => {
                        let raw = &buf[used..used + len];
                        match message {
                            Some(message) => out.extend(self.rewrite(raw, &message, direction)),
                            None => out.extend_from_slice(raw),
                        }
                        used += len;
                    }
                }
            }
            buf.drain(..used);
            if to.write_all(&out).is_err() {
                break;
            }
        }
        // Pass the end on (the other pump ends when the far side closes in turn).
        if !buf.is_empty() {
            let _ = to.write_all(&buf);
        }
        let _ = to.shutdown(Shutdown::Write);
    }

    /// The message to send on: `raw`, with the Transport header of a SETUP (reply)
    /// rewritten.
    fn rewrite(
        &self,
        raw: &[u8],
        message: &rtsp_types::Message<Vec<u8>>,
        direction: Direction,
    ) -> Vec<u8> {
        match (direction, message) {
            (Direction::Up, rtsp_types::Message::Request(request))
                if *request.method() == rtsp_types::Method::Setup =>
            {
                let cseq = request
                    .header(&rtsp_types::headers::CSEQ)
                    .map(|v| v.as_str().trim().to_string());
                let Some(transport) = request.header(&rtsp_types::headers::TRANSPORT) else {
                    return raw.to_vec();
                };
                let (value, relays) = self.rewrite_request_transport(transport.as_str());
                let mut tally = lock(&self.shared.tally);
                if relays.is_empty() {
                    if transport.as_str().contains("interleaved") {
                        tally.counts.interleaved_setups += 1;
                    }
                    return raw.to_vec();
                }
                tally.counts.udp_setups += 1;
                drop(tally);
                lock(&self.pending).insert(cseq.unwrap_or_default(), relays);
                splice_transport(raw, &value)
            }
            (Direction::Down, rtsp_types::Message::Response(response)) => {
                let Some(cseq) = response
                    .header(&rtsp_types::headers::CSEQ)
                    .map(|v| v.as_str().trim().to_string())
                else {
                    return raw.to_vec();
                };
                let Some(relays) = lock(&self.pending).remove(&cseq) else {
                    return raw.to_vec();
                };
                let Some(transport) = response.header(&rtsp_types::headers::TRANSPORT) else {
                    return raw.to_vec();
                };
                let session = response.header(&rtsp_types::headers::SESSION).map(|v| {
                    v.as_str()
                        .split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                });
                let value = self.rewrite_reply_transport(transport.as_str(), &relays, session);
                splice_transport(raw, &value)
            }
            _ => raw.to_vec(),
        }
    }

    /// A request's Transport value with each `client_port` replaced by relay ports, and
    /// the relays made for them.
    fn rewrite_request_transport(&self, value: &str) -> (String, Vec<PendingRelay>) {
        let mut relays: Vec<PendingRelay> = Vec::new();
        let specs: Vec<String> = value
            .split(',')
            .map(|spec| {
                map_params(spec, |key, val| {
                    if key != "client_port" {
                        return None;
                    }
                    let (a, b) = parse_ports(val)?;
                    let rtcp = b.unwrap_or(a.wrapping_add(1));
                    let relay = match relays.iter().find(|r| r.player_rtp == a) {
                        Some(r) => r.relay.clone(),
                        None => {
                            let relay = UdpRelay::start(
                                &self.shared,
                                self.relay_ip,
                                SocketAddr::new(self.player_ip, a),
                                SocketAddr::new(self.player_ip, rtcp),
                            );
                            relays.push(PendingRelay {
                                relay: relay.clone(),
                                player_rtp: a,
                                player_rtcp: rtcp,
                            });
                            relay
                        }
                    };
                    Some(match b {
                        Some(_) => format!("{}-{}", relay.rtp_port, relay.rtcp_port),
                        None => relay.rtp_port.to_string(),
                    })
                })
            })
            .collect();
        (specs.join(","), relays)
    }

    /// A SETUP reply's Transport value with the relay's ports swapped for the player's
    /// (`client_port`) and the server's for the relay's (`server_port`); books the
    /// server's ports, the session id and the SSRC.
    fn rewrite_reply_transport(
        &self,
        value: &str,
        relays: &[PendingRelay],
        session: Option<String>,
    ) -> String {
        let specs: Vec<String> = value
            .split(',')
            .map(|spec| {
                // Which relay this transport is about, from its client_port.
                let pending = spec.split(';').find_map(|param| {
                    let (key, val) = param.split_once('=')?;
                    if key.trim() != "client_port" {
                        return None;
                    }
                    let (rtp, _) = parse_ports(val)?;
                    relays.iter().find(|r| r.relay.rtp_port == rtp)
                });
                let Some(pending) = pending else {
                    return spec.to_string();
                };
                let relay = &pending.relay;
                map_params(spec, |key, val| match key {
                    "client_port" => {
                        let (_, b) = parse_ports(val)?;
                        Some(match b {
                            Some(_) => format!("{}-{}", pending.player_rtp, pending.player_rtcp),
                            None => pending.player_rtp.to_string(),
                        })
                    }
                    "server_port" => {
                        let (p, q) = parse_ports(val)?;
                        let ip = self.shared.server.ip();
                        let rtp = SocketAddr::new(ip, p);
                        let rtcp = SocketAddr::new(ip, q.unwrap_or(p.wrapping_add(1)));
                        *lock(&relay.server) = Some((rtp, rtcp));
                        lock(&self.shared.tally).counts.sessions[relay.index].server_rtp =
                            Some(rtp);
                        lock(&self.shared.tally).counts.sessions[relay.index].server_rtcp =
                            Some(rtcp);
                        Some(match q {
                            Some(_) => format!("{}-{}", relay.rtp_port, relay.rtcp_port),
                            None => relay.rtp_port.to_string(),
                        })
                    }
                    "ssrc" => {
                        let ssrc = u32::from_str_radix(val.trim(), 16).ok();
                        lock(&self.shared.tally).counts.sessions[relay.index].ssrc = ssrc;
                        None
                    }
                    _ => None,
                })
            })
            .collect();
        for pending in relays {
            lock(&self.shared.tally).counts.sessions[pending.relay.index].session_id =
                session.clone();
        }
        specs.join(",")
    }
}

/// `spec` (one transport of a Transport header) with the value of each `key=value`
/// parameter for which `f` gives a replacement replaced; the rest as it was.
fn map_params(spec: &str, mut f: impl FnMut(&str, &str) -> Option<String>) -> String {
    spec.split(';')
        .map(|param| {
            let Some((key, val)) = param.split_once('=') else {
                return param.to_string();
            };
            match f(key.trim(), val.trim()) {
                Some(new) => format!("{key}={new}"),
                None => param.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// `a-b` or `a`.
fn parse_ports(value: &str) -> Option<(u16, Option<u16>)> {
    match value.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, Some(b.trim().parse().ok()?))),
        None => Some((value.trim().parse().ok()?, None)),
    }
}

/// The message at the start of `buf`, if it is complete.
fn frame(buf: &[u8]) -> Option<Framed> {
    if buf.is_empty() {
        return None;
    }
    if buf[0] == b'$' {
        if buf.len() < 4 {
            return None;
        }
        let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        return (buf.len() >= len).then_some(Framed::Data(len));
    }
    match rtsp_types::Message::<Vec<u8>>::parse(buf) {
        Ok((message, used)) => Some(Framed::Rtsp(used, Some(message))),
        Err(rtsp_types::ParseError::Incomplete(_)) => None,
        // Not something rtsp-types reads (an odd request URI, say): frame it by its head
        // and Content-Length and pass it on untouched.
        Err(rtsp_types::ParseError::Error) => {
            let Some(head) = head_len(buf) else {
                // No end of head yet; give up framing a runaway buffer.
                return (buf.len() > 1 << 20).then_some(Framed::Rtsp(buf.len(), None));
            };
            let text = String::from_utf8_lossy(&buf[..head]);
            let body = text
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            (buf.len() >= head + body).then_some(Framed::Rtsp(head + body, None))
        }
    }
}

/// The length of a message's head (up to and including its blank line).
fn head_len(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `raw` with the value of its Transport header line(s) replaced by `value`; every other
/// byte as it was.
fn splice_transport(raw: &[u8], value: &str) -> Vec<u8> {
    let head = head_len(raw).unwrap_or(raw.len());
    let mut out = Vec::with_capacity(raw.len() + 32);
    for line in raw[..head].split_inclusive(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(line);
        match text.split_once(':') {
            Some((name, _)) if name.trim().eq_ignore_ascii_case("transport") => {
                let ending = if text.ends_with("\r\n") {
                    "\r\n"
                } else if text.ends_with('\n') {
                    "\n"
                } else {
                    ""
                };
                out.extend_from_slice(format!("{name}: {value}{ending}").as_bytes());
            }
            _ => out.extend_from_slice(line),
        }
    }
    out.extend_from_slice(&raw[head..]);
    out
}

/// The relay of one UDP session: two sockets, one thread.
struct UdpRelay {
    rtp: UdpSocket,
    rtcp: UdpSocket,
    rtp_port: u16,
    rtcp_port: u16,
    player_rtp: SocketAddr,
    player_rtcp: SocketAddr,
    /// The server's RTP and RTCP addresses, once its SETUP reply came.
    server: Mutex<Option<(SocketAddr, SocketAddr)>>,
    /// Its entry in `RelayCounts::sessions`.
    index: usize,
    /// An RTP packet held back to be sent after the next one (reordering).
    held: Mutex<Option<Vec<u8>>>,
}

impl UdpRelay {
    fn start(
        shared: &Arc<Shared>,
        ip: IpAddr,
        player_rtp: SocketAddr,
        player_rtcp: SocketAddr,
    ) -> Arc<UdpRelay> {
        let (rtp, rtcp) = socket_pair(ip);
        let (rtp_port, rtcp_port) = (
            rtp.local_addr().unwrap().port(),
            rtcp.local_addr().unwrap().port(),
        );
        rtp.set_nonblocking(true).unwrap();
        rtcp.set_nonblocking(true).unwrap();
        let index = {
            let mut tally = lock(&shared.tally);
            tally.counts.sessions.push(RelayedSession {
                player_rtp,
                player_rtcp,
                relay_rtp: rtp_port,
                relay_rtcp: rtcp_port,
                server_rtp: None,
                server_rtcp: None,
                session_id: None,
                ssrc: None,
            });
            tally.counts.sessions.len() - 1
        };
        {
            let mut addrs = lock(&shared.relay_addrs);
            addrs.push(rtp.local_addr().unwrap());
            addrs.push(rtcp.local_addr().unwrap());
        }
        let relay = Arc::new(UdpRelay {
            rtp,
            rtcp,
            rtp_port,
            rtcp_port,
            player_rtp,
            player_rtcp,
            server: Mutex::new(None),
            index,
            held: Mutex::new(None),
        });
        let (r, s) = (relay.clone(), shared.clone());
        shared.spawn("proxy-relay", move || r.run(&s));
        relay
    }

    fn run(&self, shared: &Shared) {
        let mut buf = vec![0u8; 65536];
        let mut fds = [
            libc::pollfd {
                fd: self.rtp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: self.rtcp.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        while !shared.stopped() {
            // SAFETY: poll(2) on two descriptors this relay owns, for the array's length.
            let ready = unsafe { libc::poll(fds.as_mut_ptr(), 2, 100) };
            if ready == 0 {
                self.release_held();
            }
            if ready < 0 || shared.stopped() {
                if shared.stopped() {
                    return;
                }
                continue;
            }
            // Every RTP datagram that is there first, then one RTCP datagram.
            while let Ok((n, from)) = self.rtp.recv_from(&mut buf) {
                self.on_rtp(shared, &buf[..n], from);
            }
            if let Ok((n, from)) = self.rtcp.recv_from(&mut buf) {
                self.on_rtcp(shared, &buf[..n], from);
            }
        }
    }

    /// Whether `from` is the server (true until its SETUP reply said where it is).
    fn is_server(&self, from: SocketAddr) -> bool {
        match *lock(&self.server) {
            Some((rtp, rtcp)) => from == rtp || from == rtcp,
            None => true,
        }
    }

    fn on_rtp(&self, shared: &Shared, data: &[u8], from: SocketAddr) {
        if data.is_empty() {
            return; // a wake-up
        }
        if !self.is_server(from) {
            lock(&shared.tally).counts.rtp_to_server += 1;
            if let Some((rtp, _)) = *lock(&self.server) {
                let _ = self.rtp.send_to(data, rtp);
            }
            return;
        }
        if data.len() < 12 || data[0] >> 6 != 2 {
            lock(&shared.tally).counts.not_rtp += 1;
            let _ = self.rtp.send_to(data, self.player_rtp);
            return;
        }
        let seq = u16::from_be_bytes([data[2], data[3]]);
        let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let ssrc = u32::from_be_bytes([data[8], data[9], data[10], data[11]]);
        let marker = data[1] & 0x80 != 0;
        let policy = lock(&shared.policy).clone();
        let dropped = lock(&shared.tally).rtp(&policy, ssrc, seq, ts, marker);
        if dropped {
            return;
        }
        let mut held = lock(&self.held);
        if let Some(earlier) = held.take() {
            let _ = self.rtp.send_to(data, self.player_rtp);
            let _ = self.rtp.send_to(&earlier, self.player_rtp);
            lock(&shared.tally).counts.reordered += 1;
            return;
        }
        let index = lock(&shared.tally)
            .counts
            .ssrcs
            .get(&ssrc)
            .map_or(0, |c| c.received);
        if lock(&shared.reorder).drops(index) {
            *held = Some(data.to_vec());
        } else {
            let _ = self.rtp.send_to(data, self.player_rtp);
        }
    }

    /// Sends a packet held back for reordering that no later packet came to overtake.
    fn release_held(&self) {
        if let Some(packet) = lock(&self.held).take() {
            let _ = self.rtp.send_to(&packet, self.player_rtp);
        }
    }

    fn on_rtcp(&self, shared: &Shared, data: &[u8], from: SocketAddr) {
        if data.is_empty() {
            return;
        }
        if self.is_server(from) {
            lock(&shared.tally).counts.rtcp_to_player += 1;
            let _ = self.rtcp.send_to(data, self.player_rtcp);
        } else {
            {
                let mut tally = lock(&shared.tally);
                tally.counts.rtcp_to_server += 1;
                tally.counts.rtcp_from_player.push(data.to_vec());
            }
            if let Some((_, rtcp)) = *lock(&self.server) {
                let _ = self.rtcp.send_to(data, rtcp);
            }
        }
    }
}

/// Two UDP sockets on `ip`, on consecutive ports, the first even.
fn socket_pair(ip: IpAddr) -> (UdpSocket, UdpSocket) {
    for _ in 0..1000 {
        let rtp = UdpSocket::bind((ip, 0)).expect("a UDP port for the relay");
        let port = rtp.local_addr().unwrap().port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) {
            return (rtp, rtcp);
        }
    }
    panic!("no free pair of UDP ports for the relay")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_deterministic() {
        let every3: Vec<u64> = (1..=10)
            .filter(|&i| DropPolicy::EveryNth(3).drops(i))
            .collect();
        assert_eq!(every3, vec![3, 6, 9]);
        let p = DropPolicy::Probability { p: 0.1, seed: 7 };
        let a: Vec<u64> = (1..=10_000).filter(|&i| p.drops(i)).collect();
        let b: Vec<u64> = (1..=10_000).filter(|&i| p.drops(i)).collect();
        assert_eq!(a, b);
        assert!((900..1100).contains(&a.len()), "{} of 10000", a.len());
        let other = DropPolicy::Probability { p: 0.1, seed: 8 };
        assert_ne!(
            a,
            (1..=10_000).filter(|&i| other.drops(i)).collect::<Vec<_>>()
        );
        assert!(!(1..1000).any(|i| DropPolicy::Probability { p: 0.0, seed: 1 }.drops(i)));
        assert!((1..1000).all(|i| DropPolicy::Probability { p: 1.0, seed: 1 }.drops(i)));
    }

    #[test]
    fn transport_rewrites_touch_only_the_ports() {
        assert_eq!(
            map_params("RTP/AVP;unicast;client_port=5000-5001;mode=play", |k, _| {
                (k == "client_port").then(|| "6000-6001".to_string())
            }),
            "RTP/AVP;unicast;client_port=6000-6001;mode=play"
        );
        let raw = b"SETUP rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\nTRANSPORT:RTP/AVP;client_port=1-2\r\n\
                    Content-Length: 4\r\n\r\nab\r\n";
        assert_eq!(
            splice_transport(raw, "RTP/AVP;client_port=7-8"),
            b"SETUP rtsp://h/a RTSP/1.0\r\nCSeq: 3\r\nTRANSPORT: RTP/AVP;client_port=7-8\r\n\
              Content-Length: 4\r\n\r\nab\r\n"
        );
    }
}
