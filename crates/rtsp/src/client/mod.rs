//! The client side of RTSP 1.0 (RFC 2326) with no I/O, shared by the player and the load
//! generator: the requests a client sends, as `rtsp_types::Request` values with typed
//! headers, and what it reads from the replies. Sockets, timeouts, retries and
//! authentication stay with the caller.
//!
//! - Requests: [`options`], [`describe`], [`setup`] (with [`udp_transport`] or
//!   [`tcp_transport`]), [`play`], [`pause`], [`get_parameter`], [`teardown`]; a
//!   publisher's [`announce`], [`setup`] with [`tcp_record_transport`], and [`record`].
//!   The connection numbers each one with [`Client::prepare`] right before writing it
//!   (again when it sends it anew, after a 401).
//! - Replies: [`check_status`]; [`read_describe`], the presentation with its control URLs
//!   resolved per RFC 2326 C.1.1 ([`description`]); [`read_setup`] or
//!   [`Client::read_setup`], the session (typed `Session`, with its timeout) and the
//!   server's transport; [`offers`], what an OPTIONS reply's `Public` lists.

pub mod description;
#[cfg(test)]
mod tests;

use std::time::Duration;

use rtsp_types::headers::{
    self, Accept, CSeq, MediaType, MediaTypeRange, NptRange, NptTime, Public, Range,
    RtpLowerTransport, RtpProfile, RtpTransport, RtpTransportParameters, Session, Transport,
    TransportMode, Transports,
};
use rtsp_types::{Empty, Method, Request, Response, StatusCode, Url, Version};

pub use description::{DescribeError, Description, MediaStream, Stream};

use crate::transport::ServerTransport;

/// RFC 2326 12.37: a session times out after 60 s without a request, unless the server's
/// `Session` header says otherwise.
pub const DEFAULT_SESSION_TIMEOUT: u64 = 60;

/// Why a reply is not what the client needed.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the server answered {} with {} {reason}", <&str>::from(.method), u16::from(*.status))]
    Status {
        method: Method,
        status: StatusCode,
        reason: String,
    },
    #[error("the DESCRIBE reply: {0}")]
    Describe(#[from] DescribeError),
    #[error("the SETUP reply has no Session header")]
    NoSession,
    #[error("the SETUP reply's Session header {0:?} does not parse")]
    BadSession(String),
    #[error("the SETUP reply's Transport header: {0}")]
    BadTransport(crate::transport::TransportError),
}

/// One control connection's side of the conversation: the CSeq of the last request, the
/// client's name, and the session SETUP opened.
#[derive(Debug, Clone)]
pub struct Client {
    user_agent: String,
    cseq: u32,
    session: Option<Session>,
}

impl Client {
    pub fn new(user_agent: impl Into<String>) -> Client {
        Client {
            user_agent: user_agent.into(),
            cseq: 0,
            session: None,
        }
    }

    /// Numbers `request` with the next CSeq and names the client and the session (once
    /// there is one). Returns the CSeq its reply will carry.
    pub fn prepare<B>(&mut self, request: &mut Request<B>) -> u32 {
        self.cseq = self.cseq.wrapping_add(1);
        request.insert_typed_header(&CSeq::from(self.cseq));
        request.insert_header(headers::USER_AGENT, self.user_agent.as_str());
        match &self.session {
            // The id alone: the timeout is the server's to announce.
            Some(session) => request.insert_typed_header(&Session(session.0.clone(), None)),
            None => request.remove_header(&headers::SESSION),
        }
        self.cseq
    }

    /// The CSeq of the last request prepared.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// Whether `reply` answers the last request: its CSeq is that request's. A reply with
    /// no CSeq one can read is taken as the answer (some servers leave it out); one with
    /// another CSeq answers an earlier request (a keep-alive given up on) and is skipped.
    pub fn answers<B>(&self, reply: &Response<B>) -> bool {
        match reply.typed_header::<CSeq>() {
            Ok(Some(cseq)) => *cseq == self.cseq,
            _ => true,
        }
    }

    /// The session SETUP opened, with the timeout the server announced.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Reads a SETUP reply (see [`read_setup`]); the requests after it carry its session.
    pub fn read_setup<B>(&mut self, reply: &Response<B>) -> Result<Setup, ReplyError> {
        let setup = read_setup(reply)?;
        self.session = Some(setup.session.clone());
        Ok(setup)
    }

    /// Forgets the session (torn down, or to be set up anew).
    pub fn end_session(&mut self) {
        self.session = None;
    }

    /// The session timeout in seconds: the server's, or RFC 2326's default.
    pub fn session_timeout(&self) -> u64 {
        self.session
            .as_ref()
            .and_then(|s| s.1)
            .unwrap_or(DEFAULT_SESSION_TIMEOUT)
    }

    /// Half the session timeout, and at least a second: a keep-alive this often keeps the
    /// session however late one reply comes.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs((self.session_timeout() / 2).max(1))
    }
}

fn request(method: Method, url: Option<&Url>) -> rtsp_types::RequestBuilder {
    let builder = Request::builder(method, Version::V1_0);
    match url {
        Some(url) => builder.request_uri(url.clone()),
        None => builder,
    }
}

/// OPTIONS on `url`, or on the server as a whole (`*`).
pub fn options(url: Option<&Url>) -> Request<Empty> {
    request(Method::Options, url).empty()
}

/// DESCRIBE, asking for SDP.
pub fn describe(url: &Url) -> Request<Empty> {
    let sdp = MediaTypeRange {
        type_: Some(MediaType::Application),
        subtype: Some("sdp".into()),
        params: Vec::new(),
    };
    request(Method::Describe, Some(url))
        .typed_header(&Accept::from(vec![sdp]))
        .empty()
}

/// RTP/AVP over UDP unicast to the client's RTP and RTCP ports.
pub fn udp_transport(rtp_port: u16, rtcp_port: u16) -> Transport {
    rtp_transport(None, |p| p.client_port = Some((rtp_port, Some(rtcp_port))))
}

/// RTP/AVP over UDP multicast: the server chooses the group, ports and TTL (RFC 2326
/// 12.39), which its reply says.
pub fn multicast_transport() -> Transport {
    rtp_transport(None, |p| {
        p.unicast = false;
        p.multicast = true;
    })
}

/// RTP/AVP interleaved in the control connection on these channels.
pub fn tcp_transport(rtp_channel: u8, rtcp_channel: u8) -> Transport {
    rtp_transport(Some(RtpLowerTransport::Tcp), |p| {
        p.interleaved = Some((rtp_channel, Some(rtcp_channel)));
    })
}

/// RTP/AVP interleaved on these channels, for media the client sends (`mode=record`).
///
/// The mode is written in lower case, `mode="record"`, as ffmpeg and GStreamer's
/// `rtspclientsink` write it: gst-rtsp-server before 1.24 looks for the lower-case word
/// only (`rtsp-types` would write `RECORD`, which it takes for neither play nor record).
pub fn tcp_record_transport(rtp_channel: u8, rtcp_channel: u8) -> Transport {
    rtp_transport(Some(RtpLowerTransport::Tcp), |p| {
        p.interleaved = Some((rtp_channel, Some(rtcp_channel)));
        p.mode = vec![TransportMode::Other("record".into())];
    })
}

fn rtp_transport(
    lower_transport: Option<RtpLowerTransport>,
    fill: impl FnOnce(&mut RtpTransportParameters),
) -> Transport {
    let mut params = RtpTransportParameters {
        unicast: true,
        ..Default::default()
    };
    fill(&mut params);
    Transport::Rtp(RtpTransport {
        profile: RtpProfile::Avp,
        lower_transport,
        params,
    })
}

/// SETUP of the stream whose control URL is `control`, over `transport`.
pub fn setup(control: &Url, transport: Transport) -> Request<Empty> {
    request(Method::Setup, Some(control))
        .typed_header(&Transports::from(vec![transport]))
        .empty()
}

/// PLAY, from `from` seconds when given (else from where the stream is).
pub fn play(aggregate: &Url, from: Option<f64>) -> Request<Empty> {
    let mut builder = request(Method::Play, Some(aggregate));
    if let Some(seconds) = from {
        builder = builder.typed_header(&npt_from(seconds));
    }
    builder.empty()
}

/// `npt=<seconds>-`, to the millisecond (negative and non-finite times are 0).
pub fn npt_from(seconds: f64) -> Range {
    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    let millis = (seconds * 1000.0).round() as u64;
    let fraction = match millis % 1000 {
        0 => None,
        ms => Some((ms * 1_000_000) as u32),
    };
    Range::Npt(NptRange::From(NptTime::Seconds(millis / 1000, fraction)))
}

pub fn pause(aggregate: &Url) -> Request<Empty> {
    request(Method::Pause, Some(aggregate)).empty()
}

/// GET_PARAMETER with no body: the usual keep-alive (RFC 2326 10.8).
pub fn get_parameter(aggregate: &Url) -> Request<Empty> {
    request(Method::GetParameter, Some(aggregate)).empty()
}

pub fn teardown(aggregate: &Url) -> Request<Empty> {
    request(Method::Teardown, Some(aggregate)).empty()
}

/// ANNOUNCE (RFC 2326 10.3): the session description of what the client will RECORD to
/// `url` (`Content-Length` is the writer's).
pub fn announce(url: &Url, sdp: Vec<u8>) -> Request<Vec<u8>> {
    request(Method::Announce, Some(url))
        .header(headers::CONTENT_TYPE, "application/sdp")
        .build(sdp)
}

/// RECORD (RFC 2326 10.11): start sending the media set up in the session.
pub fn record(aggregate: &Url) -> Request<Empty> {
    request(Method::Record, Some(aggregate)).empty()
}

/// `Ok` for a 2xx reply to `method`; the status and reason otherwise.
pub fn check_status<B>(method: &Method, reply: &Response<B>) -> Result<(), ReplyError> {
    let status = reply.status();
    if status.is_success() {
        return Ok(());
    }
    Err(ReplyError::Status {
        method: method.clone(),
        status,
        reason: reply.reason_phrase().to_string(),
    })
}

/// Reads a (successful) DESCRIBE reply to `request_url`: the presentation, its control
/// URLs resolved per RFC 2326 C.1.1.
pub fn read_describe<B: AsRef<[u8]>>(
    request_url: &Url,
    reply: &Response<B>,
) -> Result<Description, ReplyError> {
    Ok(Description::from_reply(request_url, reply)?)
}

/// What a SETUP reply gives the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// The session id, and its timeout in seconds when the server gives one.
    pub session: Session,
    /// The server's ports or interleaved channels; `None` when the reply has no Transport
    /// header (the client then assumes what it asked for).
    pub transport: Option<ServerTransport>,
}

/// Reads a (successful) SETUP reply.
pub fn read_setup<B>(reply: &Response<B>) -> Result<Setup, ReplyError> {
    let raw_session = || {
        reply
            .header(&headers::SESSION)
            .map_or_else(String::new, |v| v.as_str().to_string())
    };
    let session = reply
        .typed_header::<Session>()
        .map_err(|_| ReplyError::BadSession(raw_session()))?
        .ok_or(ReplyError::NoSession)?;
    let id = session.0.trim();
    if id.is_empty() {
        return Err(ReplyError::BadSession(raw_session()));
    }
    // Read from the reply itself, typed; absent means "what we asked for".
    let transport = ServerTransport::from_reply(reply)
        .transpose()
        .map_err(ReplyError::BadTransport)?;
    Ok(Setup {
        session: Session(id.to_string(), session.1),
        transport,
    })
}

/// Whether an OPTIONS reply lists `method` in its `Public` header; `None` when it has no
/// `Public` header one can read.
pub fn offers<B>(options_reply: &Response<B>, method: &Method) -> Option<bool> {
    match options_reply.typed_header::<Public>() {
        Ok(Some(public)) => Some(public.contains(method)),
        _ => None,
    }
}
