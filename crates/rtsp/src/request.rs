//! Splitting a control connection's bytes into requests (RFC 2326 messages through
//! `rtsp-types`, lab-dialect requests, `$`-framed interleaved data) and reducing each
//! request to what the server acts on.

use rtsp_types::headers::{CSeq, Require, Session};
use rtsp_types::{Message, Method, ParseError, Request, Version};

use super::announce::{self, AnnounceError, Announced};
use super::lab;
use super::range::{PlayRange, RangeError};
use super::transport::{TransportError, TransportSpec};

/// The largest request (headers and body) a client may send.
pub const MAX_REQUEST: usize = 16 * 1024;

/// Which RTSP a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Standard,
    Lab,
}

/// A request, whichever dialect it came in, its headers read once into typed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub dialect: Dialect,
    pub method: Method,
    /// The request target: `None` for `*`, else the URL's path (still percent-encoded),
    /// or the lab client's bare file name.
    pub path: Option<String>,
    /// `scheme://host:port` of the request URL (standard dialect), to build URLs in replies.
    pub base: Option<String>,
    pub version: Version,
    pub cseq: Option<u32>,
    /// The session id (any `;timeout` a client adds is dropped).
    pub session: Option<String>,
    pub transport: Option<Result<TransportSpec, TransportError>>,
    /// The `Transport` asks to send to the server (`mode=record`, a publisher's SETUP).
    pub record: bool,
    /// What an ANNOUNCE's session description offers (`None` for other methods).
    pub announce: Option<Result<Announced, AnnounceError>>,
    pub range: Option<Result<PlayRange, RangeError>>,
    /// Features the client requires (`Require`); the server supports none.
    pub require: Option<Vec<String>>,
    pub body_len: usize,
    /// The `Authorization` header, as sent (its `Debug` hides it).
    pub authorization: Option<AuthorizationValue>,
}

/// A request's `Authorization` value. Kept out of `Debug` output, so that a logged request
/// never shows credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthorizationValue(pub String);

impl std::fmt::Debug for AuthorizationValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthorizationValue(…)")
    }
}

/// Why bytes from a control connection are not a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("request line too long")]
    LineTooLong,
    #[error("request line without a line end")]
    NoLineEnd,
    #[error("request too large")]
    TooLarge,
    #[error("{0}")]
    Lab(#[from] lab::LabError),
    #[error("a response where a request was expected")]
    Response,
    #[error("unexpected interleaved data")]
    Data,
    #[error("body shorter than its Content-Length")]
    ShortBody,
    #[error("malformed request")]
    Malformed,
}

/// One unit read from a control connection.
#[derive(Debug)]
pub enum Framed {
    Request(Box<Incoming>),
    /// RTP/RTCP the client sent on an interleaved channel.
    Interleaved {
        channel: u8,
        data: Vec<u8>,
    },
    /// Not a request: answer 400 (with `cseq` if it could be found) and close.
    Invalid {
        reason: InvalidRequest,
        cseq: Option<u32>,
    },
}

/// Takes the next unit off the front of `buf`, returning it and the bytes it used, or
/// `None` when more bytes are needed. Lab requests have no terminator: one is complete
/// when it ends with an empty line, or when `quiet` says nothing more has arrived for a
/// while (lab clients write each request with one `send()`).
pub fn next(buf: &[u8], quiet: bool) -> Option<(Framed, usize)> {
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    let data = &buf[start..];
    if data.is_empty() {
        return None;
    }
    if data[0] == b'$' {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
        let total = 4 + len;
        return (data.len() >= total).then(|| {
            let framed = Framed::Interleaved {
                channel: data[1],
                data: data[4..total].to_vec(),
            };
            (framed, start + total)
        });
    }
    let invalid = |reason: InvalidRequest| {
        let framed = Framed::Invalid {
            reason,
            cseq: scrape_cseq(data),
        };
        Some((framed, buf.len()))
    };
    match lab::is_lab(data) {
        None if data.len() > MAX_REQUEST => invalid(InvalidRequest::LineTooLong),
        None if quiet && data.len() > 2 => invalid(InvalidRequest::NoLineEnd),
        None => None,
        Some(true) => {
            let ended = data.ends_with(b"\n\n") || data.ends_with(b"\r\n\r\n");
            if data.len() > MAX_REQUEST {
                return invalid(InvalidRequest::TooLarge);
            }
            if !(ended || quiet) {
                return None;
            }
            match lab::parse(data) {
                Ok(r) => Some((Framed::Request(Box::new(from_lab(r))), buf.len())),
                Err(e) => invalid(e.into()),
            }
        }
        Some(false) => match Message::<Vec<u8>>::parse(data) {
            Ok((Message::Request(request), used)) => Some((
                Framed::Request(Box::new(from_standard(&request))),
                start + used,
            )),
            Ok((Message::Response(_), _)) => invalid(InvalidRequest::Response),
            Ok((Message::Data(_), _)) => invalid(InvalidRequest::Data),
            Err(ParseError::Incomplete(_)) if data.len() > MAX_REQUEST => {
                invalid(InvalidRequest::TooLarge)
            }
            Err(ParseError::Incomplete(_)) if quiet && headers_complete(data) => {
                invalid(InvalidRequest::ShortBody)
            }
            Err(ParseError::Incomplete(_)) => None,
            Err(ParseError::Error) => invalid(InvalidRequest::Malformed),
        },
    }
}

fn headers_complete(data: &[u8]) -> bool {
    data.windows(4).any(|w| w == b"\r\n\r\n")
}

/// The CSeq of a request that could not be parsed, to echo it in the 400 reply.
fn scrape_cseq(data: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(&data[..data.len().min(MAX_REQUEST)]);
    text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("cseq")
            .then(|| value.trim().parse().ok())?
    })
}

fn from_standard(request: &Request<Vec<u8>>) -> Incoming {
    let url = request.request_uri();
    Incoming {
        dialect: Dialect::Standard,
        method: request.method().clone(),
        path: url.map(|u| u.path().to_string()),
        base: url.map(|u| match u.port() {
            Some(port) => format!(
                "{}://{}:{port}",
                u.scheme(),
                u.host_str().unwrap_or_default()
            ),
            None => format!("{}://{}", u.scheme(), u.host_str().unwrap_or_default()),
        }),
        version: request.version(),
        cseq: request.typed_header::<CSeq>().ok().flatten().map(|c| *c),
        session: session_id(request),
        transport: TransportSpec::from_request(request),
        record: super::transport::asks_record(request),
        announce: (*request.method() == Method::Announce).then(|| {
            let content_type = request
                .header(&rtsp_types::headers::CONTENT_TYPE)
                .map(|v| v.as_str());
            announce::read(content_type, request.body())
        }),
        range: PlayRange::from_request(request),
        require: request
            .typed_header::<Require>()
            .ok()
            .flatten()
            .map(|r| r.iter().cloned().collect()),
        body_len: request.body().len(),
        authorization: request
            .header(&rtsp_types::headers::AUTHORIZATION)
            .map(|v| AuthorizationValue(v.as_str().to_string())),
    }
}

/// The `Session` id. A timeout that does not parse does not hide the id (clients add
/// what they like after it).
fn session_id(request: &Request<Vec<u8>>) -> Option<String> {
    let id = match request.typed_header::<Session>() {
        Ok(session) => session.map(|s| s.0),
        Err(_) => request
            .header(&rtsp_types::headers::SESSION)
            .and_then(|v| v.as_str().split(';').next())
            .map(str::to_string),
    }?;
    Some(id.trim().to_string())
}

fn from_lab(r: lab::LabRequest) -> Incoming {
    let transport = if r.multicast {
        Some(Err(TransportError::LabMulticast))
    } else if r.bad_transport {
        Some(Err(TransportError::LabPort))
    } else {
        r.client_port.map(|port| Ok(TransportSpec::Lab { port }))
    };
    Incoming {
        dialect: Dialect::Lab,
        method: Method::from(r.method.as_str()),
        path: Some(r.file),
        base: None,
        version: Version::V1_0,
        cseq: r.cseq,
        session: r.session,
        transport,
        record: false,
        announce: None,
        range: None,
        require: None,
        body_len: 0,
        // The lab's clients know no authentication.
        authorization: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(framed: Option<(Framed, usize)>) -> (Incoming, usize) {
        match framed {
            Some((Framed::Request(r), used)) => (*r, used),
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn splits_pipelined_standard_requests() {
        let data = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nDESCRIBE rtsp://h:8554/a.Mjpeg RTSP/1.0\r\nCSeq: 2\r\n\r\n";
        let (r, used) = request(next(data, false));
        assert_eq!((r.method, r.path, r.cseq), (Method::Options, None, Some(1)));
        let (r, _) = request(next(&data[used..], false));
        assert_eq!(r.path.as_deref(), Some("/a.Mjpeg"));
        assert_eq!(r.base.as_deref(), Some("rtsp://h:8554"));
        assert!(next(&data[..used - 1], false).is_none());
    }

    #[test]
    fn waits_for_a_lab_request_to_go_quiet() {
        let data = b"PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 27";
        assert!(next(data, false).is_none());
        let (r, used) = request(next(data, true));
        assert_eq!(r.dialect, Dialect::Lab);
        assert_eq!(r.session.as_deref(), Some("27"));
        assert_eq!(used, data.len());
    }

    #[test]
    fn reads_interleaved_data() {
        let data = b"$\x01\x00\x03abcOPTIONS";
        match next(data, false) {
            Some((Framed::Interleaved { channel: 1, data }, 7)) => assert_eq!(data, b"abc"),
            other => panic!("{other:?}"),
        }
        assert!(next(b"$\x01\x00\x09abc", false).is_none());
    }

    #[test]
    fn answers_garbage_with_its_cseq() {
        match next(b"GARBAGE\x01 \r\nCSeq: 7\r\n\r\n", false) {
            Some((Framed::Invalid { cseq: Some(7), .. }, _)) => {}
            other => panic!("{other:?}"),
        }
        let big = vec![b'A'; MAX_REQUEST + 1];
        assert!(matches!(
            next(&big, false),
            Some((Framed::Invalid { .. }, _))
        ));
    }
}
