//! One RTSP session of the load generator, on its own TCP control connection: OPTIONS
//! (optional), DESCRIBE, SETUP of one stream over RTP/AVP UDP unicast (or, with
//! [`ClientConfig::tcp`], interleaved in the control connection), PLAY, keep-alives until
//! the end of the run, TEARDOWN. Requests are built and replies read by the RTSP core's
//! client side (`rtsp_core::client`), as the player's are; this module does the I/O.
//!
//! Over TCP the session reads its own connection: each interleaved RTP packet goes into the
//! session's [`StreamStats`] as it is read (its arrival is when it was read: TCP gives no
//! per-packet kernel timestamp), and keep-alive replies are read between them.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rtsp_core::client::{self, Client, ReplyError};
use rtsp_types::{Empty, Message, Method, Request, Response, Url};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout};

use super::receiver::{PortPair, Receivers, realtime_ns};
use super::stats::{StreamStats, Window};

/// A reply larger than this ends the session (a broken or hostile server).
const MAX_MESSAGE: usize = 1 << 20;

/// What every session shares.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub url: Url,
    pub server: SocketAddr,
    pub user_agent: String,
    /// Longest wait for a connection or a reply.
    pub request_timeout: Duration,
    /// Longest pause between keep-alives (shortened to half the server's session timeout).
    pub keepalive: Duration,
    /// Send OPTIONS before DESCRIBE.
    pub options: bool,
    /// Receive buffer of each RTP socket, bytes.
    pub rcvbuf: usize,
    /// `CLOCK_REALTIME` at the start of the run, ns.
    pub t0: i64,
    /// RTP interleaved in the control connection (RFC 2326 10.12) instead of UDP: the only
    /// way through a TCP load balancer.
    pub tcp: bool,
    /// The measuring window (for the sessions that count their own packets, over TCP).
    pub window: Window,
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("{0}: no reply within {1:?}")]
    Timeout(&'static str, Duration),
    #[error("{0}: {1} {2}")]
    Status(&'static str, u16, String),
    #[error("{0}: {1}")]
    Protocol(&'static str, String),
    #[error("{0}: {1}")]
    Reply(&'static str, ReplyError),
    #[error("{0}: {1}")]
    Io(&'static str, io::Error),
    #[error("client ports: {0}")]
    Ports(io::Error),
    #[error("still setting up when the run ended")]
    Unfinished,
}

impl SessionError {
    /// A short category, to count failures by cause.
    pub fn kind(&self) -> String {
        match self {
            SessionError::Connect(e) => format!("connect: {}", e.kind()),
            SessionError::Timeout(step, _) => format!("{step}: timeout"),
            SessionError::Status(step, code, reason) => format!("{step}: {code} {reason}"),
            SessionError::Protocol(step, _) | SessionError::Reply(step, _) => {
                format!("{step}: protocol error")
            }
            SessionError::Io(step, e) => format!("{step}: {}", e.kind()),
            SessionError::Ports(e) => format!("client ports: {}", e.kind()),
            SessionError::Unfinished => "unfinished".to_string(),
        }
    }
}

/// How a session went.
#[derive(Debug, Default)]
pub struct SessionOutcome {
    /// `None` when PLAY succeeded.
    pub error: Option<SessionError>,
    /// From starting to connect to PLAY's reply.
    pub setup_time: Option<Duration>,
    /// When PLAY was written, ns since the start of the run.
    pub play_sent: Option<i64>,
    pub keepalives: u32,
    /// A keep-alive that failed after PLAY, ending the session early.
    pub late_error: Option<SessionError>,
    pub teardown_ok: bool,
    /// The client ports, held open until the receive threads are done with them.
    pub ports: Option<PortPair>,
    /// Over TCP: what the session's own connection carried.
    pub interleaved: Option<StreamStats>,
}

/// One control connection.
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    client: Client,
    config: Arc<ClientConfig>,
}

impl Connection {
    async fn open(config: Arc<ClientConfig>) -> Result<Connection, SessionError> {
        let stream = timeout(config.request_timeout, TcpStream::connect(config.server))
            .await
            .map_err(|_| SessionError::Timeout("connect", config.request_timeout))?
            .map_err(SessionError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(4096),
            client: Client::new(config.user_agent.as_str()),
            config,
        })
    }

    /// Numbers the request (CSeq, User-Agent, the session once there is one) and writes it.
    async fn send(
        &mut self,
        step: &'static str,
        mut req: Request<Empty>,
    ) -> Result<(), SessionError> {
        self.client.prepare(&mut req);
        let mut bytes = Vec::with_capacity(256);
        req.write(&mut bytes)
            .map_err(|e| SessionError::Protocol(step, e.to_string()))?;
        timeout(self.config.request_timeout, self.stream.write_all(&bytes))
            .await
            .map_err(|_| SessionError::Timeout(step, self.config.request_timeout))?
            .map_err(|e| SessionError::Io(step, e))
    }

    /// Waits for the reply to the last request (requests and interleaved data from the
    /// server are skipped); an error unless its status is 2xx.
    async fn reply(&mut self, step: &'static str) -> Result<Response<Vec<u8>>, SessionError> {
        let wait = self.config.request_timeout;
        let response = timeout(wait, self.read_response(step))
            .await
            .map_err(|_| SessionError::Timeout(step, wait))??;
        if !response.status().is_success() {
            return Err(SessionError::Status(
                step,
                u16::from(response.status()),
                response.reason_phrase().to_string(),
            ));
        }
        Ok(response)
    }

    async fn read_response(
        &mut self,
        step: &'static str,
    ) -> Result<Response<Vec<u8>>, SessionError> {
        loop {
            match Message::<Vec<u8>>::parse(&self.buf) {
                Ok((message, used)) => {
                    self.buf.drain(..used);
                    if let Message::Response(r) = message
                        && self.client.answers(&r)
                    {
                        return Ok(r);
                    }
                }
                Err(rtsp_types::ParseError::Incomplete(_)) => {
                    if self.buf.len() > MAX_MESSAGE {
                        return Err(SessionError::Protocol(step, "reply too large".into()));
                    }
                    let mut chunk = [0u8; 4096];
                    let n = self
                        .stream
                        .read(&mut chunk)
                        .await
                        .map_err(|e| SessionError::Io(step, e))?;
                    if n == 0 {
                        return Err(SessionError::Protocol(
                            step,
                            "the server closed the connection".into(),
                        ));
                    }
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(rtsp_types::ParseError::Error) => {
                    let head = String::from_utf8_lossy(&self.buf[..self.buf.len().min(60)]);
                    return Err(SessionError::Protocol(
                        step,
                        format!("unparsable reply starting {head:?}"),
                    ));
                }
            }
        }
    }

    async fn exchange(
        &mut self,
        step: &'static str,
        req: Request<Empty>,
    ) -> Result<Response<Vec<u8>>, SessionError> {
        self.send(step, req).await?;
        self.reply(step).await
    }
}

/// Returns once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Runs session `index`: starts at `start`, plays until `stop` turns true, tears down.
pub async fn run_session(
    index: usize,
    start: Instant,
    config: Arc<ClientConfig>,
    receivers: Arc<Receivers>,
    mut stop: watch::Receiver<bool>,
) -> SessionOutcome {
    tokio::time::sleep_until(start).await;
    let mut outcome = SessionOutcome::default();
    let begun = Instant::now();
    let opened = tokio::select! {
        r = Connection::open(config.clone()) => r,
        _ = stopped(&mut stop) => Err(SessionError::Unfinished),
    };
    let mut conn = match opened {
        Ok(c) => c,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    let established = tokio::select! {
        r = establish(index, &mut conn, &receivers, &mut outcome) => r,
        _ = stopped(&mut stop) => Err(SessionError::Unfinished),
    };
    let (aggregate, use_get_parameter) = match established {
        Ok(x) => x,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    outcome.setup_time = Some(begun.elapsed());
    let keepalive = keepalive_interval(&conn, &config);
    let mut method = if use_get_parameter {
        Method::GetParameter
    } else {
        Method::Options
    };
    if config.tcp {
        let mut stats = StreamStats::default();
        let played = play_interleaved(&mut conn, &aggregate, method, keepalive, &mut stats, stop);
        match played.await {
            Ok(keepalives) => outcome.keepalives = keepalives,
            Err(e) => outcome.late_error = Some(e),
        }
        outcome.interleaved = Some(stats);
        if outcome.late_error.is_none() {
            let req = client::teardown(&aggregate);
            outcome.teardown_ok = conn.exchange("TEARDOWN", req).await.is_ok();
        }
        return outcome;
    }
    let mut next = Instant::now() + keepalive;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            _ = tokio::time::sleep_until(next) => {
                next += keepalive;
                outcome.keepalives += 1;
                let req = match method {
                    Method::GetParameter => client::get_parameter(&aggregate),
                    _ => client::options(Some(&aggregate)),
                };
                match conn.exchange("keep-alive", req).await {
                    Ok(_) => {}
                    // A server that does not know GET_PARAMETER: OPTIONS keeps it alive too.
                    Err(SessionError::Status(_, 405 | 501, _)) if method == Method::GetParameter => {
                        method = Method::Options;
                    }
                    Err(e) => {
                        outcome.late_error = Some(e);
                        return outcome;
                    }
                }
            }
        }
    }
    let req = client::teardown(&aggregate);
    outcome.teardown_ok = conn.exchange("TEARDOWN", req).await.is_ok();
    outcome
}

/// OPTIONS, DESCRIBE, SETUP, PLAY: the aggregate URL and whether GET_PARAMETER may serve as
/// keep-alive.
async fn establish(
    index: usize,
    conn: &mut Connection,
    receivers: &Receivers,
    outcome: &mut SessionOutcome,
) -> Result<(Url, bool), SessionError> {
    let url = conn.config.url.clone();
    let mut get_parameter = true;
    if conn.config.options {
        let reply = conn
            .exchange("OPTIONS", client::options(Some(&url)))
            .await?;
        get_parameter = client::offers(&reply, &Method::GetParameter).unwrap_or(true);
    }

    let reply = conn.exchange("DESCRIBE", client::describe(&url)).await?;
    let description =
        client::read_describe(&url, &reply).map_err(|e| SessionError::Reply("DESCRIBE", e))?;
    let describe_error = |e| SessionError::Reply("DESCRIBE", ReplyError::Describe(e));
    let stream = description.rtp_stream().map_err(describe_error)?;
    let media = description.control_url(stream).map_err(describe_error)?;
    let aggregate = description.aggregate;

    if conn.config.tcp {
        let transport = client::tcp_transport(0, 1);
        let reply = conn
            .exchange("SETUP", client::setup(&media, transport))
            .await?;
        let setup = conn
            .client
            .read_setup(&reply)
            .map_err(|e| SessionError::Reply("SETUP", e))?;
        // Packets are told apart by channel: the server must keep the one asked for.
        let channel = setup.transport.and_then(|t| t.interleaved).map(|c| c.0);
        if channel.is_some_and(|c| c != 0) {
            return Err(SessionError::Protocol(
                "SETUP",
                format!("the server chose interleaved channel {channel:?}, not 0"),
            ));
        }
        let req = client::play(&aggregate, Some(0.0));
        outcome.play_sent = Some(realtime_ns() - conn.config.t0);
        conn.exchange("PLAY", req).await?;
        return Ok((aggregate, get_parameter));
    }
    let ip = match conn.config.server.ip() {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    };
    let ports = PortPair::bind(ip, conn.config.rcvbuf).map_err(SessionError::Ports)?;
    let rtp_port = ports.rtp_port();
    // Held in the outcome from here, so that the sockets outlive the receive threads.
    outcome.ports = Some(ports);
    let transport = client::udp_transport(rtp_port, rtp_port + 1);
    let reply = conn
        .exchange("SETUP", client::setup(&media, transport))
        .await?;
    conn.client
        .read_setup(&reply)
        .map_err(|e| SessionError::Reply("SETUP", e))?;
    if let Some(ports) = &outcome.ports {
        receivers
            .register(index, ports)
            .map_err(SessionError::Ports)?;
    }

    let req = client::play(&aggregate, Some(0.0));
    outcome.play_sent = Some(realtime_ns() - conn.config.t0);
    conn.exchange("PLAY", req).await?;
    Ok((aggregate, get_parameter))
}

/// Reads the interleaved stream until `stop`: RTP on channel 0 into `stats`, replies to
/// the keep-alives it sends every `keepalive`. How many keep-alives were answered, or why
/// the session ended early.
async fn play_interleaved(
    conn: &mut Connection,
    aggregate: &Url,
    mut method: Method,
    keepalive: Duration,
    stats: &mut StreamStats,
    mut stop: watch::Receiver<bool>,
) -> Result<u32, SessionError> {
    let (t0, window) = (conn.config.t0, conn.config.window);
    let mut answered = 0;
    let mut next = Instant::now() + keepalive;
    loop {
        conn.buf.reserve(READ_CHUNK);
        tokio::select! {
            _ = stopped(&mut stop) => return Ok(answered),
            _ = tokio::time::sleep_until(next) => {
                next += keepalive;
                let req = match method {
                    Method::GetParameter => client::get_parameter(aggregate),
                    _ => client::options(Some(aggregate)),
                };
                conn.send("keep-alive", req).await?;
            }
            read = conn.stream.read_buf(&mut conn.buf) => {
                let n = read.map_err(|e| SessionError::Io("PLAY", e))?;
                if n == 0 {
                    return Err(SessionError::Protocol(
                        "PLAY",
                        "the server closed the connection".into(),
                    ));
                }
            }
        }
        let now = realtime_ns() - t0;
        let mut used = 0;
        loop {
            match Message::<&[u8]>::parse(&conn.buf[used..]) {
                Ok((Message::Data(data), n)) => {
                    used += n;
                    if data.channel_id() == 0 {
                        let packet = data.as_slice();
                        stats.on_datagram(packet, packet.len(), now, now, &window);
                    }
                }
                Ok((Message::Response(reply), n)) => {
                    used += n;
                    if !conn.client.answers(&reply) {
                        continue;
                    }
                    let status = u16::from(reply.status());
                    match status {
                        200..=299 => answered += 1,
                        // A server that does not know GET_PARAMETER: OPTIONS keeps it alive.
                        405 | 501 if method == Method::GetParameter => method = Method::Options,
                        _ => {
                            let reason = reply.reason_phrase().to_string();
                            return Err(SessionError::Status("keep-alive", status, reason));
                        }
                    }
                }
                // Requests from the server (none is expected) are skipped.
                Ok((Message::Request(_), n)) => used += n,
                Err(rtsp_types::ParseError::Incomplete(_)) => break,
                Err(rtsp_types::ParseError::Error) => {
                    let rest = &conn.buf[used..];
                    let head = String::from_utf8_lossy(&rest[..rest.len().min(60)]);
                    return Err(SessionError::Protocol(
                        "PLAY",
                        format!("unparsable data starting {head:?}"),
                    ));
                }
            }
        }
        conn.buf.drain(..used);
        if conn.buf.len() > MAX_MESSAGE {
            return Err(SessionError::Protocol("PLAY", "message too large".into()));
        }
    }
}

/// Bytes read from an interleaved connection at a time (at least).
const READ_CHUNK: usize = 64 * 1024;

/// Pause between keep-alives: the configured one, at most half the session timeout the
/// server announced (RFC 2326 12.37: 60 s when it says none).
fn keepalive_interval(conn: &Connection, config: &ClientConfig) -> Duration {
    let half = conn.client.keepalive_interval();
    config.keepalive.min(half).max(Duration::from_secs(1))
}
