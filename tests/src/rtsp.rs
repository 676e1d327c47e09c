//! End-to-end support for `mjpeg-rtsp-server`: the server as a child process
//! ([`crate::server_process`], re-exported here), a raw
//! RTSP client on a TCP socket (replies parsed with rtsp-types, interleaved packets kept
//! aside), UDP receivers for RTP and RTCP with deadlines, and RFC 2435 reassembly of what
//! arrived.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstmjpegrtp::rfc2435::depayloader::{DepayOptions, Packet, Reassembler};

pub use crate::server_process::*;

/// How long a reply or an expected packet may take (generous: tests run in parallel on a
/// small machine; only a failing test waits this long).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The reply's bytes as received.
    pub raw: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq").and_then(|v| v.trim().parse().ok())
    }

    /// The session id of the `Session` header (without `;timeout=`).
    pub fn session(&self) -> String {
        let value = self
            .header("Session")
            .unwrap_or_else(|| panic!("no Session in {}", self.text()));
        value.split(';').next().unwrap().trim().to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The `key=value` parameters of the header `name` (e.g. RTP-Info, Transport).
    pub fn param(&self, name: &str, key: &str) -> Option<String> {
        self.header(name)?.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// The `ssrc` of the Transport header (hex).
    pub fn ssrc(&self) -> u32 {
        let ssrc = self.param("Transport", "ssrc").expect("ssrc in Transport");
        u32::from_str_radix(&ssrc, 16).expect("a hex SSRC")
    }

    /// The `server_port` pair of the Transport header.
    pub fn server_ports(&self) -> (u16, u16) {
        let ports = self
            .param("Transport", "server_port")
            .expect("server_port in Transport");
        let (p, q) = ports.split_once('-').expect("a port pair");
        (p.parse().expect("a port"), q.parse().expect("a port"))
    }

    pub fn assert_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status, status, "unexpected reply:\n{}", self.text());
        self
    }
}

/// How reading a reply ended without one.
#[derive(Debug)]
pub enum NoReply {
    /// The server closed the connection (with these bytes unparsed).
    Closed(Vec<u8>),
    /// The connection was reset.
    Reset(Vec<u8>),
    TimedOut(Vec<u8>),
    /// Bytes that are not an RTSP reply.
    Garbage(Vec<u8>),
}

/// A raw RTSP client on one TCP connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// Interleaved packets (channel, data) that arrived, oldest first.
    pub interleaved: VecDeque<(u8, Vec<u8>, Instant)>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connects to the server"))
    }

    /// A client on a connection opened elsewhere.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            cseq: 0,
            interleaved: VecDeque::new(),
        }
    }

    /// The CSeq the next [`request`](Self::request) uses.
    pub fn next_cseq(&self) -> u32 {
        self.cseq + 1
    }

    /// Writes a standard request (CRLF, blank line) with the next CSeq and `headers`,
    /// and returns its reply.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("User-Agent: mjpeg-rtsp-tests\r\n\r\n");
        self.send_raw(text.as_bytes());
        let reply = self.read_reply(REPLY_TIMEOUT);
        assert_eq!(
            reply.cseq(),
            Some(self.cseq),
            "CSeq not echoed:\n{}",
            reply.text()
        );
        reply
    }

    /// Writes `bytes` as they are, in one write.
    /// SETUP over RTP/AVP UDP to the `rtp`/`rtcp` receivers at `url`; it must succeed.
    pub fn setup_udp(&mut self, url: &str, rtp: &UdpReceiver, rtcp: &UdpReceiver) -> Reply {
        let reply = self.request("SETUP", url, &[("Transport", &udp_transport(rtp, rtcp))]);
        reply.assert_status(200);
        reply
    }

    /// SETUP over RTP/AVP/TCP interleaved on channels 0-1 at `url`; checks the exact
    /// Transport answer. The stream's SSRC and the session id.
    pub fn setup_interleaved(&mut self, url: &str) -> (u32, String) {
        let reply = self.request(
            "SETUP",
            url,
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        );
        reply.assert_status(200);
        let ssrc = reply.param("Transport", "ssrc").expect("ssrc");
        assert_eq!(
            reply.header("Transport").unwrap(),
            format!("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={ssrc}")
        );
        let ssrc = u32::from_str_radix(&ssrc, 16).expect("a hex SSRC");
        (ssrc, reply.session())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("request written");
    }

    /// Reads one reply, keeping interleaved packets that come before it aside.
    pub fn read_reply(&mut self, timeout: Duration) -> Reply {
        self.try_read_reply(timeout)
            .unwrap_or_else(|e| panic!("no reply: {e:?}"))
    }

    pub fn try_read_reply(&mut self, timeout: Duration) -> Result<Reply, NoReply> {
        let deadline = Instant::now() + timeout;
        loop {
            while !self.buf.is_empty() {
                match rtsp_types::Message::<Vec<u8>>::parse(&self.buf) {
                    Ok((message, used)) => {
                        let raw: Vec<u8> = self.buf.drain(..used).collect();
                        match message {
                            rtsp_types::Message::Response(r) => {
                                return Ok(Reply {
                                    status: u16::from(r.status()),
                                    reason: r.reason_phrase().to_string(),
                                    headers: r
                                        .headers()
                                        .map(|(n, v)| (n.to_string(), v.to_string()))
                                        .collect(),
                                    body: r.body().clone(),
                                    raw,
                                });
                            }
                            rtsp_types::Message::Data(d) => self.interleaved.push_back((
                                d.channel_id(),
                                d.as_slice().to_vec(),
                                Instant::now(),
                            )),
                            rtsp_types::Message::Request(_) => {
                                return Err(NoReply::Garbage(raw));
                            }
                        }
                    }
                    Err(rtsp_types::ParseError::Incomplete(_)) => break,
                    Err(rtsp_types::ParseError::Error) => {
                        return Err(NoReply::Garbage(std::mem::take(&mut self.buf)));
                    }
                }
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return Err(NoReply::Closed(std::mem::take(&mut self.buf))),
                Fill::Reset => return Err(NoReply::Reset(std::mem::take(&mut self.buf))),
                Fill::TimedOut => return Err(NoReply::TimedOut(std::mem::take(&mut self.buf))),
            }
        }
    }

    /// The next interleaved packet, waiting until `deadline`.
    pub fn read_interleaved(&mut self, deadline: Instant) -> Option<(u8, Vec<u8>, Instant)> {
        loop {
            if let Some(p) = self.interleaved.pop_front() {
                return Some(p);
            }
            if !self.buf.is_empty() {
                match rtsp_types::Message::<Vec<u8>>::parse(&self.buf) {
                    Ok((rtsp_types::Message::Data(d), used)) => {
                        self.buf.drain(..used);
                        return Some((d.channel_id(), d.as_slice().to_vec(), Instant::now()));
                    }
                    Ok((other, _)) => panic!("not interleaved data: {other:?}"),
                    Err(rtsp_types::ParseError::Incomplete(_)) => {}
                    Err(rtsp_types::ParseError::Error) => {
                        panic!("garbage on the connection: {:?}", self.buf)
                    }
                }
            }
            match self.fill(deadline) {
                Fill::Data => {}
                _ => return None,
            }
        }
    }

    /// Exactly `n` bytes (for replies without framing, like the lab dialect's).
    pub fn read_exact_bytes(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            match self.fill(deadline) {
                Fill::Data => {}
                end => panic!(
                    "{end:?} after {:?}, expected {n} bytes",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Bytes until `done` holds for what arrived (lab replies have no framing); `None`
    /// when the connection ends or `timeout` passes first.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while !done(&self.buf) {
            if !matches!(self.fill(deadline), Fill::Data) {
                return None;
            }
        }
        Some(std::mem::take(&mut self.buf))
    }

    /// Whatever arrives within `wait` (and what was already buffered).
    pub fn read_available(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        while let Fill::Data = self.fill(deadline) {}
        std::mem::take(&mut self.buf)
    }

    /// Reads (and drops) until the server closes the connection; false if it did not
    /// within `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Fill::Data => self.buf.clear(),
                Fill::Closed | Fill::Reset => return true,
                Fill::TimedOut => return false,
            }
        }
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Fill::TimedOut;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Fill::Closed,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Fill::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Fill::TimedOut
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Fill::Data,
            Err(_) => Fill::Reset,
        }
    }
}

#[derive(Debug)]
enum Fill {
    Data,
    Closed,
    Reset,
    TimedOut,
}

/// One RTP packet as received.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    pub version: u8,
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub arrival: Instant,
}

impl RtpPacket {
    /// Reads a packet without CSRCs or extension (what the server sends).
    pub fn parse(data: &[u8], arrival: Instant) -> RtpPacket {
        assert!(data.len() >= 12, "a {}-byte RTP packet", data.len());
        assert_eq!(
            data[0] & 0x3f,
            0,
            "padding, extension or CSRCs: {:02x}",
            data[0]
        );
        RtpPacket {
            version: data[0] >> 6,
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            seq: u16::from_be_bytes([data[2], data[3]]),
            ts: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            payload: data[12..].to_vec(),
            arrival,
        }
    }
}

/// A UDP socket on 127.0.0.1 receiving with deadlines.
pub struct UdpReceiver {
    pub socket: UdpSocket,
}

impl UdpReceiver {
    pub fn bind() -> UdpReceiver {
        UdpReceiver::from(UdpSocket::bind("127.0.0.1:0").expect("a UDP port"))
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// The next datagram, its sender and arrival time, if one comes before `deadline`.
    pub fn recv_datagram(&self, deadline: Instant) -> Option<(Vec<u8>, SocketAddr, Instant)> {
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => return Some((buf[..n].to_vec(), from, Instant::now())),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends on this socket: not a datagram.
                Err(_) => {}
            }
        }
    }

    /// The next RTP packet, if one comes before `deadline`.
    pub fn recv(&self, deadline: Instant) -> Option<RtpPacket> {
        self.recv_datagram(deadline)
            .map(|(data, _, at)| RtpPacket::parse(&data, at))
    }

    /// Packets until `done` says the list is complete (true) or `deadline` passes.
    pub fn recv_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&[RtpPacket]) -> bool,
    ) -> Vec<RtpPacket> {
        let mut packets = Vec::new();
        while !done(&packets) {
            match self.recv(deadline) {
                Some(p) => packets.push(p),
                None => break,
            }
        }
        packets
    }

    /// Every packet that arrives within `wait`.
    pub fn recv_for(&self, wait: Duration) -> Vec<RtpPacket> {
        self.recv_until(Instant::now() + wait, |_| false)
    }

    /// Waits for `frames` complete frames (packets up to the `frames`-th marker bit).
    pub fn recv_frames(&self, frames: usize, timeout: Duration) -> Vec<RtpPacket> {
        let packets = self.recv_until(Instant::now() + timeout, |p| {
            p.iter().filter(|p| p.marker).count() >= frames
        });
        assert!(
            packets.iter().filter(|p| p.marker).count() >= frames,
            "only {} packets ({} frames) in {timeout:?}",
            packets.len(),
            packets.iter().filter(|p| p.marker).count()
        );
        packets
    }
}

impl From<UdpSocket> for UdpReceiver {
    fn from(socket: UdpSocket) -> UdpReceiver {
        UdpReceiver { socket }
    }
}

/// A session set up over UDP by the raw client.
pub struct UdpSession {
    pub client: Client,
    pub rtp: UdpReceiver,
    pub rtcp: UdpReceiver,
    pub id: String,
    pub ssrc: u32,
    /// `server_port` of the SETUP reply.
    pub server_ports: (u16, u16),
    /// The URL aggregate requests (PLAY, PAUSE, TEARDOWN) go to.
    pub url: String,
}

impl UdpSession {
    /// SETUP on `control` over UDP to a fresh even/odd pair; `url` is the session's
    /// aggregate URL. The session, and the SETUP reply for more checks.
    pub fn setup(mut client: Client, url: &str, control: &str) -> (UdpSession, Reply) {
        let (rtp, rtcp) = udp_pair();
        let reply = client.setup_udp(control, &rtp, &rtcp);
        let session = UdpSession {
            id: reply.session(),
            ssrc: reply.ssrc(),
            server_ports: reply.server_ports(),
            url: url.to_string(),
            client,
            rtp,
            rtcp,
        };
        (session, reply)
    }
}

/// A lab datagram (LAB_PROTOCOL.md), its header checked: version `version` (2, or 0 for
/// the student bug), M=0, PT 26, SSRC 0, the timestamp the Unix time in seconds (at most
/// 2 s old). The payload is the whole JPEG.
pub fn lab_packet(data: &[u8], version: u8, arrival: Instant) -> RtpPacket {
    let packet = RtpPacket::parse(data, arrival);
    assert_eq!(
        (
            packet.version,
            packet.marker,
            packet.payload_type,
            packet.ssrc
        ),
        (version, false, 26, 0),
        "lab header: V, M=0, PT=26, SSRC 0"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as u32;
    assert!(
        packet.ts <= now && now - packet.ts <= 2,
        "timestamp {} is not the Unix time {now}",
        packet.ts
    );
    packet
}

/// The Transport a client asks for to receive on `rtp`/`rtcp`.
pub fn udp_transport(rtp: &UdpReceiver, rtcp: &UdpReceiver) -> String {
    format!("RTP/AVP;unicast;client_port={}-{}", rtp.port(), rtcp.port())
}

/// Two UDP sockets on consecutive ports, the first even (RTP, RTCP), both held.
pub fn udp_pair() -> (UdpReceiver, UdpReceiver) {
    for _ in 0..1000 {
        let rtp = UdpReceiver::bind();
        let port = rtp.port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            return (rtp, UdpReceiver::from(rtcp));
        }
    }
    panic!("no free pair of UDP ports")
}

/// One reassembled RFC 2435 frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts: u32,
    pub jpeg: Vec<u8>,
    /// Sequence number of its first packet.
    pub first_seq: u16,
}

/// Reassembles `packets` (RTP/JPEG) into JPEG frames; panics on a damaged frame.
pub fn depayload(packets: &[RtpPacket]) -> Vec<Frame> {
    let mut reassembler = Reassembler::new(DepayOptions::default());
    let mut frames = Vec::new();
    let mut first_seq = None;
    for p in packets {
        first_seq.get_or_insert(p.seq);
        let received = reassembler.push(&Packet {
            payload: &p.payload,
            marker: p.marker,
            timestamp: p.ts,
        });
        assert!(
            received.dropped.is_empty(),
            "frames dropped: {:?}",
            received.dropped
        );
        for frame in received.frames {
            frames.push(Frame {
                ts: frame.timestamp,
                jpeg: frame.jpeg,
                first_seq: first_seq.take().unwrap(),
            });
        }
    }
    let end = reassembler.end_of_stream();
    assert!(end.dropped.is_empty(), "frames dropped: {:?}", end.dropped);
    frames
}

/// The payloads of the interleaved packets on `channel`, parsed as RTP.
pub fn interleaved_rtp(packets: &[(u8, Vec<u8>, Instant)], channel: u8) -> Vec<RtpPacket> {
    packets
        .iter()
        .filter(|(c, _, _)| *c == channel)
        .map(|(_, data, at)| RtpPacket::parse(data, *at))
        .collect()
}

/// What a compound RTCP packet holds, briefly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtcpSummary {
    /// SSRCs of sender reports.
    pub sender_reports: Vec<u32>,
    /// SSRCs of SDES chunks.
    pub sdes: Vec<u32>,
    /// SSRCs that said BYE.
    pub byes: Vec<u32>,
}

pub fn rtcp_summary(data: &[u8]) -> RtcpSummary {
    let compound = rtcp_types::Compound::parse(data).expect("a valid compound RTCP packet");
    let mut summary = RtcpSummary::default();
    for packet in compound {
        match packet.expect("a valid RTCP packet") {
            rtcp_types::Packet::Sr(sr) => summary.sender_reports.push(sr.ssrc()),
            rtcp_types::Packet::Sdes(sdes) => {
                summary.sdes.extend(sdes.chunks().map(|c| c.ssrc()));
            }
            rtcp_types::Packet::Bye(bye) => summary.byes.extend(bye.ssrcs()),
            _ => {}
        }
    }
    summary
}

/// A compound receiver report from `ours` about `about` (RR + SDES CNAME).
pub fn receiver_report(ours: u32, about: u32, fraction_lost: u8, cumulative_lost: u32) -> Vec<u8> {
    use rtcp_types::*;
    let packet = Compound::builder()
        .add_packet(
            ReceiverReport::builder(ours).add_report_block(
                ReportBlock::builder(about)
                    .fraction_lost(fraction_lost)
                    .cumulative_lost(cumulative_lost)
                    .extended_sequence_number(1000)
                    .interarrival_jitter(90),
            ),
        )
        .add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(ours).add_item(SdesItem::builder(SdesItem::CNAME, "tests@lab")),
        ));
    let mut out = vec![0; packet.calculate_size().unwrap()];
    packet.write_into(&mut out).unwrap();
    out
}

/// A folder with clips for a server, removed on drop.
pub struct ClipDir {
    pub dir: tempfile::TempDir,
}

impl ClipDir {
    pub fn new() -> ClipDir {
        ClipDir {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `frames` as the lab-format clip `name`.
    pub fn clip(&self, name: &str, frames: &[Vec<u8>]) -> PathBuf {
        crate::write_file(self.path(), name, &crate::lab_file(frames))
    }
}

impl Default for ClipDir {
    fn default() -> Self {
        ClipDir::new()
    }
}

/// Polls `condition` until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    crate::poll(timeout, condition, |&ok| ok).is_ok()
}

/// A server playing one clip, `clip.Mjpeg`, from its own folder.
pub struct Served {
    pub server: ServerProcess,
    /// The clip's URL.
    pub url: String,
    _dir: ClipDir,
}

/// Starts a server on `frames` (as the lab-format clip `clip.Mjpeg`) with `options`, and
/// with its statistics ([`ServerProcess::start_with_stats`]).
pub fn serve(frames: &[Vec<u8>], options: &[&str]) -> Served {
    let dir = ClipDir::new();
    let clip = dir.clip("clip.Mjpeg", frames);
    let mut args: Vec<std::ffi::OsString> = options.iter().map(|o| o.into()).collect();
    args.push(clip.into());
    let server = ServerProcess::start_with_stats(&args, 1);
    let url = server.url("clip.Mjpeg");
    Served {
        server,
        url,
        _dir: dir,
    }
}
