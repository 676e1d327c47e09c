//! The RTSP control connection of the player and of the server's relays: requests (built by the RTSP core's client
//! side) written and replies read with `rtsp-types`, CSeq matching, 401 challenges
//! answered, and the interleaved channels of RTP/AVP/TCP demultiplexed from the same byte
//! stream by a reader thread. `rtsps://` URLs run the same over TLS (rustls).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rtsp_types::headers::{AUTHORIZATION, WWW_AUTHENTICATE};
use rtsp_types::{Message, ParseError, Request, Response, StatusCode, Url};

use crate::rtsp::auth::{AuthError, Authenticator};
use crate::rtsp::client::Client;
use crate::tls::Verify;

/// RFC 2326's default ports.
const RTSP_PORT: u16 = 554;
const RTSPS_PORT: u16 = 322;

/// How long a reply may take.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The server did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NoReply(pub String);

/// Data the server sent on an interleaved channel.
pub type InterleavedSink = Box<dyn FnMut(u8, &[u8]) + Send>;

/// How long connecting to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Replies read and not yet taken. Each request waits for its own, so only a server that
/// answers what was not asked fills this: the oldest make room, never the reply to the
/// request waiting.
const QUEUED_REPLIES: usize = 16;

/// What the reader thread read for the requests: a reply, or why the connection became
/// unreadable.
type ReadReply = Result<Response<Vec<u8>>, String>;

/// The replies between the reader thread and the requests, at most [`QUEUED_REPLIES`].
#[derive(Default)]
struct Replies {
    state: Mutex<RepliesState>,
    ready: Condvar,
}

#[derive(Default)]
struct RepliesState {
    queue: VecDeque<ReadReply>,
    /// The CSeq of the request waiting for its reply.
    awaited: Option<String>,
    /// The reader stopped: the connection closed or cannot be read.
    ended: bool,
}

/// A reply's CSeq, as written.
fn cseq_of(reply: &ReadReply) -> Option<&str> {
    reply
        .as_ref()
        .ok()
        .and_then(|r| r.header(&rtsp_types::headers::CSEQ))
        .map(|v| v.as_str().trim())
}

/// Why no reply came.
enum Waited {
    TimedOut,
    Ended,
}

impl Replies {
    fn lock(&self) -> MutexGuard<'_, RepliesState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, reply: ReadReply) {
        let mut state = self.lock();
        if state.queue.len() >= QUEUED_REPLIES {
            let awaited = state.awaited.clone();
            let unasked = state
                .queue
                .iter()
                .position(|r| awaited.is_none() || cseq_of(r) != awaited.as_deref())
                .unwrap_or(0);
            state.queue.remove(unasked);
            tracing::debug!("dropping an unsolicited RTSP reply");
        }
        state.queue.push_back(reply);
        self.ready.notify_all();
    }

    fn end(&self) {
        self.lock().ended = true;
        self.ready.notify_all();
    }

    /// Takes what is queued (replies nobody waits for any more) before the request with
    /// CSeq `awaited` goes. An error in them, or a connection that ended, is returned.
    fn clear(&self, awaited: Option<&str>) -> Result<()> {
        let mut state = self.lock();
        state.awaited = awaited.map(|c| c.trim().to_string());
        for stale in state.queue.drain(..) {
            if let Err(e) = stale {
                bail!("the connection to the server: {e}");
            }
        }
        if state.ended {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    /// The next reply, waiting up to `timeout` for it.
    fn next(&self, timeout: Duration) -> Result<ReadReply, Waited> {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if let Some(reply) = state.queue.pop_front() {
                return Ok(reply);
            }
            if state.ended {
                return Err(Waited::Ended);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(Waited::TimedOut);
            }
            state = self
                .ready
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    #[cfg(test)]
    fn queued(&self) -> usize {
        self.lock().queue.len()
    }
}

/// The local address to connect to `upstream` from, for a server bound to `bind`: `bind`
/// itself when it is one address of the same family and scope as the upstream (a loopback
/// address cannot reach another host, and another host is reached from the address the
/// route picks); `None` lets the kernel choose.
pub fn source_for(bind: IpAddr, upstream: IpAddr) -> Option<IpAddr> {
    let same_family = bind.is_ipv4() == upstream.is_ipv4();
    let usable = !bind.is_unspecified() && !bind.is_multicast();
    (same_family && usable && bind.is_loopback() == upstream.is_loopback()).then_some(bind)
}

/// A TCP connection to `addr`, from `source` when given (any port).
fn connect_tcp(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT);
    };
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&addr.into(), CONNECT_TIMEOUT)?;
    Ok(socket.into())
}

/// The control connection.
pub struct Control {
    writer: Arc<Mutex<Link>>,
    replies: Arc<Replies>,
    /// CSeq numbering and the session SETUP opened.
    pub client: Client,
    /// How long a reply may take (shorter for the first request, to tell a lab server,
    /// which does not answer DESCRIBE, from a standard one).
    pub reply_timeout: Duration,
    /// Answers the server's 401 challenges (Basic, Digest) with the URL's credentials.
    pub auth: Authenticator,
    interleaved: Arc<Mutex<Option<InterleavedSink>>>,
    /// Set when the server closed the connection (or sent what cannot be read).
    closed: Arc<AtomicBool>,
}

impl Control {
    /// Connects to the URL's host (port 554 when the URL has none); `rtsps://` over TLS
    /// (port 322), checking the certificate against the system's roots.
    pub fn connect(url: &Url) -> Result<Control> {
        Control::connect_verify(url, Verify::System)
    }

    /// [`connect`](Self::connect), checking an `rtsps://` server's certificate as
    /// `verify` says.
    pub fn connect_verify(url: &Url, verify: Verify) -> Result<Control> {
        Control::connect_with(url, verify, None)
    }

    /// [`connect`](Self::connect) from the local address `source` (a server bound to one
    /// address speaks from it), where the upstream is reachable from it: see
    /// [`source_for`].
    pub fn connect_from(url: &Url, source: Option<IpAddr>) -> Result<Control> {
        Control::connect_with(url, Verify::System, source)
    }

    fn connect_with(url: &Url, verify: Verify, source: Option<IpAddr>) -> Result<Control> {
        let host = url.host_str().ok_or_else(|| anyhow!("{url}: no host"))?;
        let secure = match url.scheme() {
            "rtsp" => false,
            "rtsps" => true,
            other => bail!("{url}: {other}:// is not RTSP (rtsp:// or rtsps://)"),
        };
        let port = url
            .port()
            .unwrap_or(if secure { RTSPS_PORT } else { RTSP_PORT });
        let addrs: Vec<_> = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .collect();
        let mut last = None;
        let mut stream = None;
        for addr in addrs {
            match connect_tcp(addr, source.and_then(|ip| source_for(ip, addr.ip()))) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => bail!("cannot connect to {host}:{port}: {e}"),
            (None, None) => bail!("{host} has no address"),
        };
        let _ = stream.set_nodelay(true);
        // A server that stops reading must not hold a request (or a report) forever.
        let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
        let link = if secure {
            Link::tls(stream, host, port, verify)?
        } else {
            Link::plain(stream)
        };
        let reader = link.reader()?;
        let replies = Arc::new(Replies::default());
        let read = replies.clone();
        let interleaved: Arc<Mutex<Option<InterleavedSink>>> = Arc::new(Mutex::new(None));
        let sink = interleaved.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let reader_closed = closed.clone();
        std::thread::Builder::new()
            .name("rtsp-reader".into())
            .spawn(move || {
                read_loop(reader, &read, &sink);
                reader_closed.store(true, Ordering::Release);
                read.end();
            })?;
        Ok(Control {
            writer: Arc::new(Mutex::new(link)),
            replies,
            client: Client::new("mjpeg-player"),
            reply_timeout: REPLY_TIMEOUT,
            auth: Authenticator::default(),
            interleaved,
            closed,
        })
    }

    /// The server's address on this connection.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        self.writer
            .lock()
            .ok()
            .and_then(|link| link.tcp.peer_addr().ok())
            .map(|a| a.ip())
    }

    /// Our address on this connection: the one the server is reached from (and the
    /// origin of a description we send).
    pub fn local_ip(&self) -> Option<std::net::IpAddr> {
        self.writer
            .lock()
            .ok()
            .and_then(|link| link.tcp.local_addr().ok())
            .map(|a| a.ip())
    }

    /// Whether the connection is gone (closed by the server, or unreadable).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes the connection both ways: the reader stops, a request waiting for its reply
    /// fails at once.
    pub fn shutdown(&self) {
        if let Ok(link) = self.writer.lock() {
            let _ = link.tcp.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Where interleaved data goes (RTP/AVP/TCP).
    pub fn set_interleaved_sink(&self, sink: InterleavedSink) {
        if let Ok(mut slot) = self.interleaved.lock() {
            *slot = Some(sink);
        }
    }

    /// Caps what the kernel holds of what we send (`SO_SNDBUF`, which Linux doubles):
    /// beyond it a write waits for the server to read, instead of the kernel queueing
    /// seconds of media for a slow reader.
    pub fn limit_send_buffer(&self, bytes: usize) -> io::Result<()> {
        let link = self
            .writer
            .lock()
            .map_err(|_| io::Error::other("writer poisoned"))?;
        socket2::SockRef::from(&link.tcp).set_send_buffer_size(bytes)
    }

    /// A writer for interleaved data to the server (RTCP on TCP).
    pub fn writer(&self) -> Arc<Mutex<Link>> {
        self.writer.clone()
    }

    /// Sends a request (with its body: an ANNOUNCE's description) and waits for its reply;
    /// a 401 is answered once with credentials when the URL has them and the challenge
    /// is one we support.
    pub fn request<B: AsRef<[u8]>>(
        &mut self,
        mut request: Request<B>,
    ) -> Result<Response<Vec<u8>>> {
        // A stale nonce may take a second try; the authenticator refuses to loop.
        for _ in 0..3 {
            let reply = self.send(&mut request)?;
            if reply.status() != StatusCode::Unauthorized {
                return Ok(reply);
            }
            let challenges: Vec<String> = reply
                .headers()
                .filter(|(name, _)| **name == WWW_AUTHENTICATE)
                .map(|(_, value)| value.as_str().to_string())
                .collect();
            match self
                .auth
                .on_unauthorized(challenges.iter().map(String::as_str))
            {
                Ok(()) => {}
                Err(AuthError::NoCredentials) => return Ok(reply),
                Err(e) => bail!("the server refused the credentials (401): {e}"),
            }
        }
        bail!("the server refused the credentials (401)")
    }

    /// Numbers the request (a new CSeq each time it is sent), signs it when there are
    /// credentials, writes it and waits for its reply.
    fn send<B: AsRef<[u8]>>(&mut self, request: &mut Request<B>) -> Result<Response<Vec<u8>>> {
        self.client.prepare(request);
        let method = request.method().clone();
        let uri = request.request_uri().map_or("*", Url::as_str).to_string();
        match self.auth.authorization(<&str>::from(&method), &uri) {
            Some(authorization) => request.insert_header(AUTHORIZATION, authorization),
            None => request.remove_header(&AUTHORIZATION),
        }
        let mut bytes = Vec::new();
        request.write(&mut bytes).map_err(|e| anyhow!("{e:?}"))?;
        // Replies that came unasked (or too late) go before the request does, so that the
        // queue has room for its reply.
        let cseq = request
            .header(&rtsp_types::headers::CSEQ)
            .map(|v| v.as_str().to_string());
        self.replies.clear(cseq.as_deref())?;
        {
            let mut writer = self.writer.lock().map_err(|_| anyhow!("writer poisoned"))?;
            writer.write_all(&bytes).context("sending the request")?;
        }
        // One deadline for the request: replies to other requests do not extend it.
        let deadline = std::time::Instant::now() + self.reply_timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let reply = match self.replies.next(left) {
                Ok(Ok(reply)) => reply,
                Ok(Err(e)) => bail!("the server's reply to {method:?}: {e}"),
                Err(Waited::TimedOut) => {
                    return Err(NoReply(format!(
                        "no reply to {method:?} within {:?}",
                        self.reply_timeout
                    ))
                    .into());
                }
                Err(Waited::Ended) => bail!("the server closed the connection"),
            };
            // Replies to earlier requests (a keep-alive that timed out) are skipped.
            if self.client.answers(&reply) {
                return Ok(reply);
            }
        }
    }
}

fn read_loop(
    mut stream: LinkReader,
    replies: &Replies,
    interleaved: &Mutex<Option<InterleavedSink>>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Messages are read from `start` on; what they used goes in one drain per read,
        // not one per message (a read holds dozens of interleaved packets).
        let mut start = 0;
        loop {
            match Message::<Vec<u8>>::parse(&buf[start..]) {
                Ok((message, used)) => {
                    start += used;
                    match message {
                        Message::Response(response) => replies.push(Ok(response)),
                        Message::Data(data) => {
                            if let Ok(mut sink) = interleaved.lock()
                                && let Some(sink) = sink.as_mut()
                            {
                                sink(data.channel_id(), data.as_slice());
                            }
                        }
                        Message::Request(_) => {
                            // Server-to-client requests (ANNOUNCE, SET_PARAMETER) are not
                            // used by the servers we play; ignore them.
                        }
                    }
                }
                Err(ParseError::Incomplete(_)) if buf.len() - start < 1 << 20 => {
                    buf.drain(..start);
                    break;
                }
                Err(_) => {
                    replies.push(Err("unreadable data on the control connection".into()));
                    return;
                }
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

impl Drop for Control {
    /// The reader thread holds a clone of the socket: without this the connection would
    /// stay open (and the thread blocked) after every early return.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The control connection's byte stream, as written: TCP, or TLS over TCP. The reader
/// thread reads through a [`LinkReader`] on a clone of the same socket; over TLS both
/// share the rustls connection, locked only while records are decrypted or encrypted
/// (never while the socket is read), so a request goes out while the reader waits.
pub struct Link {
    tcp: TcpStream,
    tls: Option<Arc<Mutex<rustls::ClientConnection>>>,
}

/// How long the TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Link {
    fn plain(tcp: TcpStream) -> Link {
        Link { tcp, tls: None }
    }

    /// The TLS handshake, over before anything else is sent.
    fn tls(mut tcp: TcpStream, host: &str, port: u16, verify: Verify) -> Result<Link> {
        let config = crate::tls::client_config(verify)?;
        // IPv6 hosts come bracketed in URLs.
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls::pki_types::ServerName::try_from(name.to_string())
            .map_err(|e| anyhow!("{host}: not a TLS server name: {e}"))?;
        let mut conn =
            rustls::ClientConnection::new(config, server_name).map_err(|e| anyhow!("TLS: {e}"))?;
        tcp.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                let certificate = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                    .is_some_and(|tls| {
                        matches!(
                            tls,
                            rustls::Error::InvalidCertificate(_)
                                | rustls::Error::NoCertificatesPresented
                        )
                    });
                if certificate && verify == Verify::System {
                    bail!(
                        "TLS handshake with {host}:{port}: {e}: the server's certificate is not trusted by this system (self-signed?); --insecure plays without checking it"
                    );
                }
                bail!("TLS handshake with {host}:{port}: {e}");
            }
        }
        tcp.set_read_timeout(None)?;
        Ok(Link {
            tcp,
            tls: Some(Arc::new(Mutex::new(conn))),
        })
    }

    fn reader(&self) -> io::Result<LinkReader> {
        Ok(LinkReader {
            tcp: self.tcp.try_clone()?,
            tls: self.tls.clone(),
            pending: Vec::new(),
        })
    }
}

fn lock_tls(
    tls: &Mutex<rustls::ClientConnection>,
) -> io::Result<std::sync::MutexGuard<'_, rustls::ClientConnection>> {
    tls.lock()
        .map_err(|_| io::Error::other("TLS connection poisoned"))
}

/// Sends what rustls has encrypted.
fn send_tls(conn: &mut rustls::ClientConnection, mut tcp: &TcpStream) -> io::Result<()> {
    while conn.wants_write() {
        conn.write_tls(&mut tcp)?;
    }
    Ok(())
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &self.tls {
            None => self.tcp.write(buf),
            Some(tls) => {
                let mut conn = lock_tls(tls)?;
                let n = conn.writer().write(buf)?;
                send_tls(&mut conn, &self.tcp)?;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.tls {
            None => self.tcp.flush(),
            Some(tls) => send_tls(&mut *lock_tls(tls)?, &self.tcp),
        }
    }
}

/// The reading side of a [`Link`].
struct LinkReader {
    tcp: TcpStream,
    tls: Option<Arc<Mutex<rustls::ClientConnection>>>,
    /// Received TLS records not yet given to rustls.
    pending: Vec<u8>,
}

impl Read for LinkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = &self.tls else {
            return self.tcp.read(out);
        };
        loop {
            {
                let mut conn = lock_tls(tls)?;
                match conn.reader().read(out) {
                    // 0: the server's close_notify.
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if !self.pending.is_empty() {
                    // Decrypted text is all taken (above): rustls has room for more.
                    let mut records = &self.pending[..];
                    let used = conn.read_tls(&mut records)?;
                    self.pending.drain(..used);
                    conn.process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    // Alerts, key updates.
                    send_tls(&mut conn, &self.tcp)?;
                    continue;
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.tcp.read(&mut chunk)?;
            if n == 0 {
                return Ok(0);
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::source_for;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_bound_server_connects_from_its_address_where_it_can() {
        // An edge on its own loopback address reaching an origin on another.
        assert_eq!(
            source_for(ip("127.0.1.2"), ip("127.0.1.1")),
            Some(ip("127.0.1.2"))
        );
        assert_eq!(
            source_for(ip("10.0.0.5"), ip("192.0.2.7")),
            Some(ip("10.0.0.5"))
        );
        // Unbound, or an address that cannot reach the upstream: the kernel chooses.
        assert_eq!(source_for(ip("0.0.0.0"), ip("127.0.1.1")), None);
        assert_eq!(source_for(ip("127.0.0.1"), ip("192.0.2.7")), None);
        assert_eq!(source_for(ip("10.0.0.5"), ip("127.0.0.1")), None);
        assert_eq!(source_for(ip("::1"), ip("127.0.0.1")), None);
    }

    /// A server that floods the connection with replies nobody asked for: a request
    /// still gets its own reply, and what is kept of the rest is bounded.
    #[test]
    fn unsolicited_replies_are_dropped_and_a_request_gets_its_own() {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let flood = "RTSP/1.0 200 OK\r\nCSeq: 999999\r\n\r\n".repeat(200);
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let _ = stream.write_all(flood.as_bytes());
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut cseq = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if let Some(v) = line.strip_prefix("CSeq:") {
                    cseq = v.trim().to_string();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let reply = format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS\r\n\r\n");
            let _ = stream.write_all(reply.as_bytes());
            // A second flood, then the end of the connection.
            let _ = stream.write_all(flood.as_bytes());
        });
        let url = super::Url::parse(&format!("rtsp://127.0.0.1:{port}/x")).unwrap();
        let mut control = super::Control::connect(&url).unwrap();
        let reply = control
            .request(crate::rtsp::client::options(Some(&url)))
            .unwrap();
        assert_eq!(reply.status(), super::StatusCode::Ok);
        assert!(reply.header(&rtsp_types::headers::PUBLIC).is_some());
        server.join().unwrap();
        // Once the reader has read everything (the server closed), the queue holds at
        // most what fits of the second flood's 200.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !control.is_closed() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(control.is_closed(), "the reader never saw the end");
        let kept = control.replies.queued();
        assert!((1..=super::QUEUED_REPLIES).contains(&kept), "{kept} kept");
    }
}
