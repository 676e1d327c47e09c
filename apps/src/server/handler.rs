//! What the server answers to each request: the RFC 2326 method table over the session
//! table, independent of sockets. Replies are `rtsp_core::Reply` values with typed
//! headers; a refused request is a [`Refusal`] that names what was wrong and maps to its
//! status code.

use std::net::SocketAddr;
use std::sync::Arc;

use rtsp_types::headers::{self, Allow, Public, RtpInfos, Session as SessionHeader, rtp_info};
use rtsp_types::{Method, StatusCode, Version};

use super::Server;
use super::access::{Decision, Right};
use super::media::Media;
use super::multicast::{GroupPlayError, MulticastError};
use super::policy::{self, Policy};
use super::publishing::Announcement;
use super::session::publisher::RecordError;
use super::session::{Dest, PlayError, Session};
use crate::rtsp::announce::AnnounceError;
use crate::rtsp::path::{self, CONTROL, PathError};
use crate::rtsp::range::RangeError;
use crate::rtsp::transport::{self, TransportError};
use crate::rtsp::{Dialect, Incoming, Reply, TransportSpec, sdp};

/// Methods the server implements (the `Public` header): these, and ANNOUNCE and RECORD
/// when it has published paths.
const METHODS: [Method; 8] = [
    Method::Options,
    Method::Describe,
    Method::Setup,
    Method::Play,
    Method::Pause,
    Method::Teardown,
    Method::GetParameter,
    Method::SetParameter,
];

/// Why a request is refused; the status code follows from it and the text goes in the
/// reply's `X-Error`.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("only RTSP/1.0 is supported")]
    Version,
    #[error("missing or malformed CSeq")]
    CSeq,
    #[error("required features are not supported")]
    Require(Vec<String>),
    #[error("this path only plays (publishers announce to a --publish path)")]
    NotAllowed,
    #[error("unknown method")]
    UnknownMethod,
    #[error("this method needs a URL, not *")]
    NoUrl,
    #[error("{0}")]
    Path(#[from] PathError),
    #[error("no such path")]
    NoSuchClip,
    #[error("no Transport header")]
    NoTransport,
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("no Session header")]
    NoSessionHeader,
    #[error("no such session")]
    NoSuchSession,
    #[error("one path per session")]
    OneClipPerSession,
    #[error("SETUP while playing")]
    SetupWhilePlaying,
    #[error("the server is at its session limit")]
    SessionLimit,
    #[error("the URL is not this session's path")]
    NotThisSessionsClip,
    #[error("{0}")]
    Range(#[from] RangeError),
    #[error("{0}")]
    Play(#[from] PlayError),
    #[error("the server has no settable parameters")]
    NoParameters,
    #[error("{0}")]
    Announce(AnnounceError),
    #[error(
        "path {path} already has a publisher; the server's --publish-takeover lets a new one replace it"
    )]
    PathBusy { path: String },
    #[error("SETUP with mode=record needs an ANNOUNCE of this path on this connection first")]
    NotAnnounced,
    #[error("RECORD is for a publisher's session (SETUP with mode=record)")]
    NotAPublisher,
    #[error("this session publishes: PLAY and PAUSE are for viewers")]
    PublisherSession,
    #[error(
        "over RTSPS the media travels inside the TLS connection: ask for RTP/AVP/TCP;interleaved (UDP would leave it unencrypted)"
    )]
    UdpOverTls,
    #[error(
        "over RTSPS the media travels inside the TLS connection: ask for RTP/AVP/TCP;interleaved (multicast would send it unencrypted to a group)"
    )]
    MulticastOverTls,
    #[error(
        "a publisher sends over UDP unicast (client_port) or TCP interleaved: multicast is for viewers"
    )]
    MulticastRecord,
    #[error("{0}")]
    Multicast(#[from] MulticastError),
    #[error("{0}")]
    GroupPlay(#[from] GroupPlayError),
    #[error("no UDP ports for the publisher: {0}")]
    Ports(String),
    #[error("{0}")]
    Record(#[from] RecordError),
    #[error("credentials needed")]
    Unauthorized { stale: bool },
    #[error("this user may not {} this path", if *.publish { "publish to" } else { "read" })]
    Forbidden { publish: bool },
    #[error("too many failed logins from this address; try again later")]
    Throttled,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Version => StatusCode::RTSPVersionNotSupported,
            Refusal::CSeq | Refusal::NoUrl => StatusCode::BadRequest,
            Refusal::Require(_) => StatusCode::OptionNotSupported,
            Refusal::NotAllowed => StatusCode::MethodNotAllowed,
            Refusal::UnknownMethod => StatusCode::NotImplemented,
            Refusal::Path(_) | Refusal::NoSuchClip | Refusal::NotThisSessionsClip => {
                StatusCode::NotFound
            }
            Refusal::NoTransport
            | Refusal::Transport(_)
            | Refusal::UdpOverTls
            | Refusal::MulticastOverTls
            | Refusal::MulticastRecord
            | Refusal::Multicast(MulticastError::Ipv6Bind(_)) => StatusCode::UnsupportedTransport,
            Refusal::Multicast(MulticastError::RangeUsedUp(_)) => StatusCode::NotEnoughBandwidth,
            Refusal::Multicast(MulticastError::Open { .. }) => StatusCode::InternalServerError,
            Refusal::GroupPlay(GroupPlayError::Seek { .. }) => {
                StatusCode::MethodNotValidInThisState
            }
            Refusal::GroupPlay(GroupPlayError::Play(_)) => StatusCode::InvalidRange,
            Refusal::NoSessionHeader | Refusal::NoSuchSession => StatusCode::SessionNotFound,
            Refusal::OneClipPerSession => StatusCode::AggregateOperationNotAllowed,
            Refusal::SetupWhilePlaying => StatusCode::MethodNotValidInThisState,
            Refusal::SessionLimit => StatusCode::NotEnoughBandwidth,
            Refusal::Range(_) => StatusCode::HeaderFieldNotValidForResource,
            Refusal::Play(_) => StatusCode::InvalidRange,
            Refusal::NoParameters => StatusCode::ParameterNotUnderstood,
            Refusal::Announce(AnnounceError::TooLarge { .. }) => {
                StatusCode::RequestMessageBodyTooLarge
            }
            Refusal::Announce(e) if e.is_unsupported_media() => StatusCode::UnsupportedMediaType,
            Refusal::Announce(_) => StatusCode::BadRequest,
            Refusal::PathBusy { .. }
            | Refusal::NotAnnounced
            | Refusal::NotAPublisher
            | Refusal::PublisherSession
            | Refusal::Record(_) => StatusCode::MethodNotValidInThisState,
            Refusal::Ports(_) => StatusCode::InternalServerError,
            Refusal::Unauthorized { .. } => StatusCode::Unauthorized,
            Refusal::Forbidden { .. } | Refusal::Throttled => StatusCode::Forbidden,
        }
    }

    fn reply(&self) -> Reply {
        let reply = Reply::error(self.status(), self);
        match self {
            Refusal::Require(features) => reply.with(&headers::Unsupported::from(features.clone())),
            Refusal::NotAllowed => reply.with(&allow()),
            _ => reply,
        }
    }
}

fn public(publishing: bool) -> Public {
    let publish: &[Method] = if publishing {
        &[Method::Announce, Method::Record]
    } else {
        &[]
    };
    METHODS
        .iter()
        .chain(publish)
        .fold(Public::builder(), |b, m| b.method(m.clone()))
        .build()
}

fn allow() -> Allow {
    METHODS
        .iter()
        .fold(Allow::builder(), |b, m| b.method(m.clone()))
        .build()
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
    /// What a publisher on this connection announced, for its SETUP.
    pub announced: Option<Announcement>,
    /// RTSPS: only interleaved transports, which stay inside the TLS connection.
    pub secure: bool,
}

impl Connection {
    /// Refuses a transport that would carry media outside an RTSPS connection.
    pub fn check_transport(&self, spec: &TransportSpec) -> Result<(), Refusal> {
        match spec {
            TransportSpec::Tcp { .. } => Ok(()),
            TransportSpec::Multicast if self.secure => Err(Refusal::MulticastOverTls),
            _ if self.secure => Err(Refusal::UdpOverTls),
            _ => Ok(()),
        }
    }
}

impl Server {
    pub fn handle(&self, conn: &mut Connection, request: &Incoming) -> Reply {
        let mut reply = match self.answer(conn, request) {
            Ok(reply) => reply,
            Err(Refusal::Unauthorized { stale }) => {
                let reply = Refusal::Unauthorized { stale }.reply();
                self.access
                    .challenges(stale)
                    .into_iter()
                    .fold(reply, Reply::with_challenge)
            }
            Err(refusal) => refusal.reply(),
        };
        // Replies about a session carry it.
        if reply.session().is_none()
            && reply.status() == StatusCode::Ok
            && let Some(id) = &request.session
            && (self.session(id).is_some() || self.publishing.get(id).is_some())
        {
            reply.set_session(&self.session_header(id));
        }
        reply
    }

    fn answer(&self, conn: &mut Connection, request: &Incoming) -> Result<Reply, Refusal> {
        self.authorize(conn, request)?;
        // Any request naming a session keeps it alive (clients use OPTIONS or DESCRIBE as
        // keep-alives too).
        if let Some(id) = &request.session
            && let Some(session) = self.session(id)
        {
            session.touch();
        }
        if request.version != Version::V1_0 {
            return Err(Refusal::Version);
        }
        if request.cseq.is_none() {
            return Err(Refusal::CSeq);
        }
        if let Some(required) = &request.require {
            return Err(Refusal::Require(required.clone()));
        }
        match &request.method {
            Method::Options => Ok(Reply::new(StatusCode::Ok).with(&public(self.publishing.any()))),
            Method::Describe => self.describe(conn, request),
            Method::Setup => self.setup(conn, request),
            Method::Play => self.play(request),
            Method::Pause => self.pause(request),
            Method::Teardown => self.teardown(conn, request),
            Method::GetParameter | Method::SetParameter => self.parameter(request),
            Method::Announce => self.announce(conn, request),
            Method::Record => self.record(conn, request),
            Method::Redirect | Method::PlayNotify => Err(Refusal::NotAllowed),
            Method::Extension(_) => Err(Refusal::UnknownMethod),
        }
    }

    /// With users, whether the request's credentials allow it: publishing (ANNOUNCE,
    /// RECORD, SETUP to record, and anything on a publisher's session) or reading the
    /// path, the session's if it names one, else its URL's. OPTIONS is open to all.
    fn authorize(&self, conn: &Connection, request: &Incoming) -> Result<(), Refusal> {
        if !self.access.enabled() || request.method == Method::Options {
            return Ok(());
        }
        let publisher = request
            .session
            .as_deref()
            .and_then(|id| self.publishing.get(id));
        let publish = publisher.is_some()
            || matches!(request.method, Method::Announce | Method::Record)
            || (request.method == Method::Setup && request.record);
        let session_path = || {
            let id = request.session.as_deref()?;
            Some(self.session(id)?.media.name().to_string())
        };
        let url_path = || {
            let named = request.path.as_deref().filter(|p| *p != "*")?;
            path::target(named).ok().map(|t| t.clip)
        };
        let name = publisher
            .map(|p| p.path.name.clone())
            .or_else(session_path)
            .or_else(url_path);
        let right = if publish { Right::Publish } else { Right::Read };
        let authorization = request.authorization.as_ref().map(|a| a.0.as_str());
        let method: &str = (&request.method).into();
        match self.access.check(
            conn.peer.ip(),
            authorization,
            method,
            name.as_deref(),
            right,
        ) {
            Decision::Allow => Ok(()),
            Decision::Challenge { stale } => Err(Refusal::Unauthorized { stale }),
            Decision::Forbidden => Err(Refusal::Forbidden { publish }),
            Decision::Throttled => Err(Refusal::Throttled),
        }
    }

    /// The `Session` header for session `id`, with its timeout (which the lab writer
    /// leaves out: lab clients read a plain integer).
    pub(super) fn session_header(&self, id: &str) -> SessionHeader {
        SessionHeader::with_timeout(id.to_string(), self.config.session_timeout.as_secs())
    }

    /// The path a request names.
    fn target(&self, request: &Incoming) -> Result<Media, Refusal> {
        let path = request.path.as_deref().ok_or(Refusal::NoUrl)?;
        let target = path::target(path)?;
        self.paths
            .get(&target.clip)
            .cloned()
            .ok_or(Refusal::NoSuchClip)
    }

    fn content_base(&self, request: &Incoming, clip: &str) -> String {
        match &request.base {
            Some(base) => format!("{base}/{}/", path::encode(clip)),
            None => format!("{clip}/"),
        }
    }

    fn describe(&self, conn: &Connection, request: &Incoming) -> Result<Reply, Refusal> {
        let media = self.target(request)?;
        let address = conn.local.ip().to_string();
        let ((width, height), duration) = match &media {
            Media::Clip(clip) => (
                (clip.width, clip.height),
                (!self.config.looping).then(|| clip.duration()),
            ),
            Media::Live(live) => (live.size(), None),
        };
        let body = sdp::describe(&sdp::ClipDescription {
            name: media.name(),
            width,
            height,
            fps: media.fps(),
            duration,
            live: matches!(media, Media::Live(_)),
            server_address: &address,
            control: CONTROL,
            session_id: u64::from(super::session::random_u32()),
        });
        Ok(Reply::new(StatusCode::Ok)
            .with_header(
                headers::CONTENT_BASE,
                self.content_base(request, media.name()),
            )
            .with_body("application/sdp", body))
    }

    fn setup(&self, conn: &mut Connection, request: &Incoming) -> Result<Reply, Refusal> {
        if request.record {
            return self.setup_record(conn, request);
        }
        let media = self.target(request)?;
        let spec = request.transport.clone().ok_or(Refusal::NoTransport)??;
        conn.check_transport(&spec)?;
        if let Some(id) = &request.session {
            // One stream per session: a second SETUP may only change the transport.
            let existing = self.session(id).ok_or(Refusal::NoSuchSession)?;
            if existing.media.name() != media.name() {
                return Err(Refusal::OneClipPerSession);
            }
            if existing.is_playing() {
                return Err(Refusal::SetupWhilePlaying);
            }
            self.remove_session(id, None);
        } else if self.at_capacity() {
            // (A session set up again replaces itself: it never counts twice.)
            return Err(Refusal::SessionLimit);
        }
        let ip = conn.peer.ip();
        let dest = match spec {
            TransportSpec::Udp {
                rtp_port,
                rtcp_port,
            } => Some(Dest::Udp {
                rtp: SocketAddr::new(ip, rtp_port),
                rtcp: rtcp_port
                    .or(rtp_port.checked_add(1))
                    .map(|p| SocketAddr::new(ip, p)),
            }),
            TransportSpec::Tcp { channels } => {
                let channels =
                    channels.unwrap_or((conn.next_channel, conn.next_channel.wrapping_add(1)));
                conn.next_channel = channels.1.wrapping_add(1);
                Some(Dest::Tcp {
                    writer: conn.writer.clone(),
                    channels,
                })
            }
            TransportSpec::Lab { port } => Some(Dest::Lab {
                rtp: SocketAddr::new(ip, port),
            }),
            // The path's group, chosen below.
            TransportSpec::Multicast => None,
        };
        let session_policy = match spec {
            TransportSpec::Lab { .. } => Policy::of(Dialect::Lab),
            _ => Policy::of(Dialect::Standard),
        };
        let id = request
            .session
            .clone()
            .unwrap_or_else(|| self.new_session_id(request.dialect));
        let new_session = |dest| {
            Arc::new(Session::new(
                id.clone(),
                session_policy,
                media.clone(),
                conn.peer,
                dest,
                self.config.looping,
                self.config.adapt_threshold,
            ))
        };
        let session = match dest {
            Some(dest) => new_session(dest),
            None => self.multicast.join(&media, self.config.looping, |group| {
                new_session(Dest::Multicast(group))
            })?,
        };
        let ssrc = session.ssrc;
        self.add_session(session.clone());
        let dest = session.dest();
        // A multicast viewer's frames go out through its group's sender, the path's viewer.
        if let Media::Live(live) = &media
            && !matches!(dest, Dest::Multicast(_))
        {
            live.join(session);
        }
        if !conn.sessions.contains(&id) {
            conn.sessions.push(id.clone());
        }
        tracing::info!("session {id}: SETUP from {} ({dest})", conn.peer);
        let mut reply = Reply::new(StatusCode::Ok);
        match &dest {
            Dest::Udp { rtp, rtcp } => {
                let client = (rtp.port(), rtcp.map(|r| r.port()));
                reply = reply.with(&transport::udp_reply(client, self.sockets_ports, ssrc));
            }
            Dest::Tcp { channels, .. } => {
                reply = reply.with(&transport::tcp_reply(*channels, ssrc));
            }
            Dest::Multicast(group) => {
                reply = reply.with(&transport::multicast_reply(
                    group.addr.into(),
                    group.ports,
                    group.ttl,
                    group.ssrc(),
                ));
            }
            Dest::Lab { .. } => {}
        }
        reply.set_session(&self.session_header(&id));
        Ok(reply)
    }

    fn find(&self, request: &Incoming) -> Result<Arc<Session>, Refusal> {
        let id = request.session.as_deref().ok_or(Refusal::NoSessionHeader)?;
        if self.publishing.get(id).is_some() {
            return Err(Refusal::PublisherSession);
        }
        let session = self.session(id).ok_or(Refusal::NoSuchSession)?;
        if let Some(path) = &request.path
            && policy::checks_request_url(request.dialect)
            && path != "*"
            && path::target(path).map(|t| t.clip).as_deref() != Ok(session.media.name())
        {
            return Err(Refusal::NotThisSessionsClip);
        }
        session.touch();
        Ok(session)
    }

    fn play(&self, request: &Incoming) -> Result<Reply, Refusal> {
        let session = self.find(request)?;
        let range = request.range.clone().transpose()?;
        let play = match session.group() {
            // A multicast viewer joins its group's stream, which plays for all.
            Some(group) => {
                let play = group.play(&session, range)?;
                if let Some(generation) = play.generation {
                    self.pacer.play(group.sender.clone(), generation);
                }
                play
            }
            None => {
                let play = session.play(range)?;
                if let Some(generation) = play.generation {
                    self.pacer.play(session.clone(), generation);
                }
                play
            }
        };
        let mut reply = Reply::new(StatusCode::Ok).with(&play.range);
        if request.dialect == Dialect::Standard {
            let url = format!(
                "{}{CONTROL}",
                self.content_base(request, session.media.name())
            );
            // A URL that does not parse (a request to `*`) gets no RTP-Info.
            if let Ok(uri) = rtsp_types::Url::parse(&url) {
                reply = reply.with(&RtpInfos::V1(vec![rtp_info::v1::RtpInfo {
                    uri,
                    seq: Some(play.seq),
                    rtptime: Some(play.rtptime),
                }]));
            }
        }
        reply.set_session(&self.session_header(&session.id));
        Ok(reply)
    }

    fn pause(&self, request: &Incoming) -> Result<Reply, Refusal> {
        let session = self.find(request)?;
        let position = match session.group() {
            Some(group) => group.pause(&session),
            None => session.pause(),
        };
        let mut reply = Reply::new(StatusCode::Ok).with(&position);
        reply.set_session(&self.session_header(&session.id));
        Ok(reply)
    }

    fn teardown(&self, conn: &mut Connection, request: &Incoming) -> Result<Reply, Refusal> {
        // A publisher is ended from its own connection only: another client that learned
        // its id must not take the path.
        if let Some(id) = &request.session
            && self.publishing.get(id).is_some()
        {
            if !conn.sessions.contains(id) {
                return Err(Refusal::NoSuchSession);
            }
            self.end_publisher(id, "teardown");
            conn.sessions.retain(|s| s != id);
            return Ok(Reply::new(StatusCode::Ok));
        }
        let session = self.find(request)?;
        self.remove_session(&session.id, Some("teardown"));
        conn.sessions.retain(|id| *id != session.id);
        let mut reply = Reply::new(StatusCode::Ok);
        if request.dialect == Dialect::Lab {
            reply.set_session(&SessionHeader::from(session.id.as_str()));
        }
        Ok(reply)
    }

    fn parameter(&self, request: &Incoming) -> Result<Reply, Refusal> {
        if let Some(id) = &request.session {
            match self.session(id) {
                Some(session) => session.touch(),
                // A publisher's keep-alive: its RTP is what keeps it on.
                None if self.publishing.get(id).is_some() => {}
                None => return Err(Refusal::NoSuchSession),
            }
        }
        if request.method == Method::SetParameter && request.body_len > 0 {
            return Err(Refusal::NoParameters);
        }
        Ok(Reply::new(StatusCode::Ok))
    }

    pub(super) fn new_session_id(&self, dialect: Dialect) -> String {
        loop {
            let id = policy::session_id(dialect);
            if self.session(&id).is_none() {
                return id;
            }
        }
    }
}
