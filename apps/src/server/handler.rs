//! What the server answers to each request: the RFC 2326 state machine (Init -> Ready ->
//! Playing) over the session table, independent of sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtsp_types::headers::{self, HeaderName};
use rtsp_types::{Method, StatusCode, Version};

use super::Server;
use super::session::{Dest, Phase, Session, random_u32};
use crate::rtsp::path::{self, CONTROL};
use crate::rtsp::{Dialect, Incoming, TransportSpec, range, sdp, transport};

/// Methods the server implements (the `Public` header).
pub const PUBLIC: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// A reply before it is written in the connection's dialect.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(HeaderName, String)>,
    pub body: Vec<u8>,
    /// The session the reply is about (the `Session` header).
    pub session: Option<String>,
    /// Close the connection after this reply.
    pub close: bool,
}

impl Reply {
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            session: None,
            close: false,
        }
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    fn error(status: StatusCode, why: &str) -> Reply {
        Reply::new(status).header(
            HeaderName::from_static_str("X-Error").unwrap_or(headers::SERVER),
            why,
        )
    }
}

/// The connection a request came on.
pub struct Connection {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// Writer for interleaved packets, when the connection carries any.
    pub writer: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Sessions set up on this connection.
    pub sessions: Vec<String>,
    /// Interleaved channels already given out on this connection.
    pub next_channel: u8,
}

impl Server {
    pub fn handle(&self, conn: &mut Connection, request: &Incoming) -> Reply {
        if request.version != Version::V1_0 {
            return Reply::error(
                StatusCode::RTSPVersionNotSupported,
                "only RTSP/1.0 is supported",
            );
        }
        if request.cseq.is_none() {
            return Reply::error(StatusCode::BadRequest, "missing or malformed CSeq");
        }
        if let Some(required) = &request.require {
            return Reply::new(StatusCode::OptionNotSupported)
                .header(headers::UNSUPPORTED, required.clone());
        }
        let mut reply = match &request.method {
            Method::Options => Reply::new(StatusCode::Ok).header(headers::PUBLIC, PUBLIC),
            Method::Describe => self.describe(conn, request),
            Method::Setup => self.setup(conn, request),
            Method::Play => self.play(request),
            Method::Pause => self.pause(request),
            Method::Teardown => self.teardown(conn, request),
            Method::GetParameter | Method::SetParameter => self.parameter(request),
            Method::Announce | Method::Record | Method::Redirect | Method::PlayNotify => {
                Reply::error(StatusCode::MethodNotAllowed, "this server only plays clips")
                    .header(headers::ALLOW, PUBLIC)
            }
            Method::Extension(_) => Reply::error(StatusCode::NotImplemented, "unknown method"),
        };
        // Replies about a session carry it, with its timeout (not to lab clients, which
        // read a plain integer).
        if reply.session.is_none() && reply.status == StatusCode::Ok {
            reply.session = request
                .session
                .clone()
                .filter(|id| self.session(id).is_some());
        }
        reply
    }

    fn session_header(&self, id: &str, dialect: Dialect) -> String {
        match dialect {
            Dialect::Lab => id.to_string(),
            Dialect::Standard => format!("{id};timeout={}", self.config.session_timeout.as_secs()),
        }
    }

    /// The clip a request names.
    fn target(&self, request: &Incoming) -> Result<(Arc<super::media::Clip>, bool), Reply> {
        let path = request.path.as_deref().ok_or_else(|| {
            Reply::error(StatusCode::BadRequest, "this method needs a URL, not *")
        })?;
        let target =
            path::target(path).map_err(|e| Reply::error(StatusCode::NotFound, &e.to_string()))?;
        let clip = self
            .clips
            .get(&target.clip)
            .cloned()
            .ok_or_else(|| Reply::error(StatusCode::NotFound, "no such clip"))?;
        Ok((clip, target.media))
    }

    fn content_base(&self, request: &Incoming, clip: &str) -> String {
        match &request.base {
            Some(base) => format!("{base}/{}/", path::encode(clip)),
            None => format!("{clip}/"),
        }
    }

    fn describe(&self, conn: &Connection, request: &Incoming) -> Reply {
        let (clip, _) = match self.target(request) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let address = conn.local.ip().to_string();
        let body = sdp::describe(&sdp::ClipDescription {
            name: &clip.name,
            width: clip.width,
            height: clip.height,
            fps: clip.fps,
            duration: (!self.config.looping).then(|| clip.duration()),
            server_address: &address,
            control: CONTROL,
            session_id: u64::from(random_u32()),
        });
        let mut reply = Reply::new(StatusCode::Ok)
            .header(
                headers::CONTENT_BASE,
                self.content_base(request, &clip.name),
            )
            .header(headers::CONTENT_TYPE, "application/sdp");
        reply.body = body;
        reply
    }

    fn setup(&self, conn: &mut Connection, request: &Incoming) -> Reply {
        let (clip, _) = match self.target(request) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let spec = match &request.transport {
            None => return Reply::error(StatusCode::UnsupportedTransport, "no Transport header"),
            Some(Err(why)) => return Reply::error(StatusCode::UnsupportedTransport, why),
            Some(Ok(spec)) => *spec,
        };
        if let Some(id) = &request.session {
            // One stream per session: a second SETUP may only change the transport.
            let Some(existing) = self.session(id) else {
                return Reply::error(StatusCode::SessionNotFound, "no such session");
            };
            if existing.clip.name != clip.name {
                return Reply::error(
                    StatusCode::AggregateOperationNotAllowed,
                    "one clip per session",
                );
            }
            if existing.lock().phase == Phase::Playing {
                return Reply::error(StatusCode::MethodNotValidInThisState, "SETUP while playing");
            }
            self.remove_session(id, None);
        }
        if self.session_count() >= self.config.max_sessions {
            return Reply::error(
                StatusCode::NotEnoughBandwidth,
                "the server is at its session limit",
            );
        }
        let ip = conn.peer.ip();
        let (dest, transport_header) = match spec {
            TransportSpec::Udp {
                rtp_port,
                rtcp_port,
            } => {
                let rtcp_port = rtcp_port.or(rtp_port.checked_add(1));
                let dest = Dest::Udp {
                    rtp: SocketAddr::new(ip, rtp_port),
                    rtcp: rtcp_port.map(|p| SocketAddr::new(ip, p)),
                };
                (dest, Some((rtp_port, rtcp_port)))
            }
            TransportSpec::Tcp { channels } => {
                let channels =
                    channels.unwrap_or((conn.next_channel, conn.next_channel.wrapping_add(1)));
                conn.next_channel = channels.1.wrapping_add(1);
                (
                    Dest::Tcp {
                        writer: conn.writer.clone(),
                        channels,
                    },
                    None,
                )
            }
            TransportSpec::Lab { port } => (
                Dest::Lab {
                    rtp: SocketAddr::new(ip, port),
                },
                None,
            ),
        };
        let dialect = match spec {
            TransportSpec::Lab { .. } => Dialect::Lab,
            _ => Dialect::Standard,
        };
        let id = request
            .session
            .clone()
            .unwrap_or_else(|| self.new_session_id(request.dialect));
        let session = Arc::new(Session::new(
            id.clone(),
            dialect,
            clip,
            conn.peer,
            dest.clone(),
            self.config.looping,
            self.config.adapt_threshold,
        ));
        let ssrc = session.ssrc;
        self.add_session(session, &dest);
        conn.sessions.push(id.clone());
        tracing::info!(
            "session {id}: SETUP from {} ({})",
            conn.peer,
            describe_dest(&dest)
        );
        let mut reply = Reply::new(StatusCode::Ok);
        match (&dest, transport_header) {
            (Dest::Udp { .. }, Some((rtp, rtcp))) => {
                let local = self.sockets_ports;
                reply = reply.header(
                    headers::TRANSPORT,
                    transport_value(&transport::udp_reply((rtp, rtcp), local, ssrc)),
                );
            }
            (Dest::Tcp { channels, .. }, _) => {
                reply = reply.header(
                    headers::TRANSPORT,
                    transport_value(&transport::tcp_reply(*channels, ssrc)),
                );
            }
            _ => {}
        }
        reply.session = Some(self.session_header(&id, request.dialect));
        reply
    }

    fn find(&self, request: &Incoming) -> Result<Arc<Session>, Reply> {
        let id = request
            .session
            .as_deref()
            .ok_or_else(|| Reply::error(StatusCode::SessionNotFound, "no Session header"))?;
        let session = self
            .session(id)
            .ok_or_else(|| Reply::error(StatusCode::SessionNotFound, "no such session"))?;
        if let Some(path) = &request.path
            && request.dialect == Dialect::Standard
            && path != "*"
            && path::target(path).map(|t| t.clip) != Ok(session.clip.name.clone())
        {
            return Err(Reply::error(
                StatusCode::NotFound,
                "the URL is not this session's clip",
            ));
        }
        session.touch();
        Ok(session)
    }

    fn play(&self, request: &Incoming) -> Reply {
        let session = match self.find(request) {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        let requested = match request.range.as_deref().map(range::parse).transpose() {
            Ok(r) => r,
            Err(why) => return Reply::error(StatusCode::HeaderFieldNotValidForResource, &why),
        };
        let clip = &session.clip;
        let mut state = session.lock();
        let start = match requested.and_then(|r| r.start) {
            Some(seconds) => match clip.frame_at(seconds) {
                Some(frame) => Some(frame),
                None => {
                    return Reply::error(StatusCode::InvalidRange, "the range starts past the end");
                }
            },
            None if state.ended || state.next_frame >= clip.frames.len() => Some(0),
            None => None,
        };
        let end = match requested.and_then(|r| r.end) {
            Some(seconds) => ((seconds * f64::from(clip.fps) - 1e-6).ceil().max(0.0) as usize)
                .min(clip.frames.len()),
            None => clip.frames.len(),
        };
        if let Some(frame) = start {
            state.next_frame = frame;
        }
        if end <= state.next_frame {
            return Reply::error(StatusCode::InvalidRange, "nothing to play in that range");
        }
        state.end_frame = end;
        state.ended = false;
        state.phase = Phase::Playing;
        state.generation += 1;
        state.origin = Instant::now();
        state.origin_timeline = state.timeline();
        let generation = state.generation;
        let timeline = state.timeline();
        let rtptime = state.rtp_time(timeline, clip.fps);
        let seq = if session.dialect == Dialect::Lab {
            (timeline + 1) as u16
        } else {
            state.seq
        };
        let from = clip.time_of(state.next_frame as u64);
        let to = (end < clip.frames.len() || !session.looping).then(|| clip.time_of(end as u64));
        drop(state);
        self.pacer.play(session.clone(), generation);
        let mut reply = Reply::new(StatusCode::Ok).header(headers::RANGE, range::format(from, to));
        if request.dialect == Dialect::Standard {
            let url = format!("{}{CONTROL}", self.content_base(request, &clip.name));
            reply = reply.header(
                headers::RTP_INFO,
                format!("url={url};seq={seq};rtptime={rtptime}"),
            );
        }
        reply.session = Some(self.session_header(&session.id, request.dialect));
        reply
    }

    fn pause(&self, request: &Incoming) -> Reply {
        let session = match self.find(request) {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        let mut state = session.lock();
        if state.phase == Phase::Playing {
            state.phase = Phase::Ready;
            state.generation += 1;
        }
        let at = session.clip.time_of(state.next_frame as u64);
        drop(state);
        let mut reply = Reply::new(StatusCode::Ok).header(headers::RANGE, range::format(at, None));
        reply.session = Some(self.session_header(&session.id, request.dialect));
        reply
    }

    fn teardown(&self, conn: &mut Connection, request: &Incoming) -> Reply {
        let session = match self.find(request) {
            Ok(s) => s,
            Err(reply) => return reply,
        };
        self.remove_session(&session.id, Some("teardown"));
        conn.sessions.retain(|id| *id != session.id);
        let mut reply = Reply::new(StatusCode::Ok);
        if request.dialect == Dialect::Lab {
            reply.session = Some(session.id.clone());
        }
        reply
    }

    fn parameter(&self, request: &Incoming) -> Reply {
        if let Some(id) = &request.session {
            match self.session(id) {
                Some(session) => session.touch(),
                None => return Reply::error(StatusCode::SessionNotFound, "no such session"),
            }
        }
        if request.method == Method::SetParameter && request.body_len > 0 {
            return Reply::error(
                StatusCode::ParameterNotUnderstood,
                "the server has no settable parameters",
            );
        }
        Reply::new(StatusCode::Ok)
    }

    fn new_session_id(&self, dialect: Dialect) -> String {
        loop {
            // Lab clients read the id with int(): 6 digits as lab servers give. Standard
            // clients get 16 hex digits, not guessable.
            let id = match dialect {
                Dialect::Lab => (100_000 + random_u32() % 900_000).to_string(),
                Dialect::Standard => format!("{:08X}{:08X}", random_u32(), random_u32()),
            };
            if self.session(&id).is_none() {
                return id;
            }
        }
    }
}

fn transport_value(transports: &headers::Transports) -> String {
    let response = rtsp_types::Response::builder(Version::V1_0, StatusCode::Ok)
        .typed_header(transports)
        .empty();
    response
        .header(&headers::TRANSPORT)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

fn describe_dest(dest: &Dest) -> String {
    match dest {
        Dest::Udp { rtp, rtcp } => format!(
            "RTP/AVP UDP to {rtp}{}",
            rtcp.map(|r| format!(", RTCP {r}")).unwrap_or_default()
        ),
        Dest::Tcp { channels, .. } => {
            format!("RTP/AVP/TCP interleaved {}-{}", channels.0, channels.1)
        }
        Dest::Lab { rtp } => format!("lab RTP/UDP to {rtp}"),
    }
}
