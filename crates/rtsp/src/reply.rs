//! A server's reply: an `rtsp-types` response with typed headers, written in the
//! connection's dialect: RFC 2326 through `rtsp-types`, or the lab's shape through
//! [`lab::reply`] (the same status, CSeq, session and body, laid out as lab clients read
//! them).

use std::fmt::Display;

use rtsp_types::headers::{
    CONTENT_LENGTH, CONTENT_TYPE, CSEQ, HeaderName, SERVER, SESSION, Session, TypedHeader,
};
use rtsp_types::{Response, StatusCode, Version};

use super::lab;
use super::request::Dialect;

/// The header that says why a request was refused, for people reading a capture.
pub const X_ERROR: &str = "X-Error";

/// What the server's replies say they come from.
pub const SERVER_NAME: &str = "mjpeg-rtsp-server";

#[derive(Debug, Clone)]
pub struct Reply {
    response: Response<Vec<u8>>,
    /// Close the connection after this reply.
    pub close: bool,
    /// `WWW-Authenticate` values, written one per line.
    challenges: Vec<String>,
}

impl Reply {
    pub fn new(status: StatusCode) -> Reply {
        Reply {
            response: Response::builder(Version::V1_0, status).build(Vec::new()),
            close: false,
            challenges: Vec::new(),
        }
    }

    /// A refusal, saying why in an `X-Error` header.
    pub fn error(status: StatusCode, why: &dyn Display) -> Reply {
        let mut reply = Reply::new(status);
        if let Ok(name) = HeaderName::try_from(X_ERROR) {
            reply.response.insert_header(name, why.to_string());
        }
        reply
    }

    /// Adds (or replaces) a typed header.
    pub fn with<H: TypedHeader>(mut self, header: &H) -> Reply {
        self.response.insert_typed_header(header);
        self
    }

    /// Adds (or replaces) a header that has no typed form in `rtsp-types`.
    pub fn with_header(mut self, name: HeaderName, value: impl Into<String>) -> Reply {
        self.response.insert_header(name, value.into());
        self
    }

    /// Adds a `WWW-Authenticate` header. Each challenge goes on a line of its own: clients
    /// such as ffmpeg read one challenge per line, and `rtsp-types` would join them.
    pub fn with_challenge(mut self, value: impl Into<String>) -> Reply {
        self.challenges.push(value.into());
        self
    }

    /// The body and its `Content-Type` (`Content-Length` follows from the body).
    pub fn with_body(self, content_type: &str, body: Vec<u8>) -> Reply {
        let mut response = self.response.replace_body(body);
        response.insert_header(CONTENT_TYPE, content_type);
        Reply {
            response,
            close: self.close,
            challenges: self.challenges,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The reply as `rtsp-types` holds it.
    pub fn response(&self) -> &Response<Vec<u8>> {
        &self.response
    }

    pub fn session(&self) -> Option<Session> {
        self.response.typed_header::<Session>().ok().flatten()
    }

    pub fn set_session(&mut self, session: &Session) {
        self.response.insert_typed_header(session);
    }

    /// The bytes to send, echoing the request's `cseq`.
    pub fn into_bytes(self, dialect: Dialect, cseq: Option<u32>) -> Vec<u8> {
        let status = self.response.status();
        let reason = if status == StatusCode::Ok {
            "OK".to_string()
        } else {
            status.to_string()
        };
        match dialect {
            Dialect::Standard => {
                let mut response = self.response;
                response.set_reason_phrase(reason);
                if let Some(cseq) = cseq {
                    response.insert_header(CSEQ, cseq.to_string());
                }
                response.insert_header(SERVER, SERVER_NAME);
                let mut out = Vec::new();
                // Writing into a Vec cannot fail.
                let _ = response.write(&mut out);
                if !self.challenges.is_empty()
                    && let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n")
                {
                    let mut lines = Vec::new();
                    for challenge in &self.challenges {
                        // A value cannot end the header line early.
                        let clean = challenge.replace(['\r', '\n'], " ");
                        lines
                            .extend_from_slice(format!("\r\nWWW-Authenticate: {clean}").as_bytes());
                    }
                    out.splice(end..end, lines);
                }
                out
            }
            Dialect::Lab => {
                // Lab clients read the session id with int(): the id alone, no timeout.
                let session = self.session().map(|s| s.0);
                // And they read fixed line positions: only a reply with a body (DESCRIBE)
                // carries more than status, CSeq and Session.
                let body = self.response.body();
                let extra: Vec<(&str, String)> = if body.is_empty() {
                    Vec::new()
                } else {
                    self.response
                        .headers()
                        .filter(|(name, _)| ![CSEQ, SESSION, SERVER, CONTENT_LENGTH].contains(name))
                        .map(|(name, value)| (name.as_str(), value.as_str().to_string()))
                        .collect()
                };
                lab::reply(
                    u16::from(status),
                    &reason,
                    cseq,
                    session.as_deref(),
                    &extra,
                    body,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_types::headers::CONTENT_BASE;

    fn text(reply: Reply, dialect: Dialect) -> String {
        String::from_utf8(reply.into_bytes(dialect, Some(3))).unwrap()
    }

    #[test]
    fn one_reply_two_dialects() {
        let reply = || {
            let mut reply = Reply::new(StatusCode::Ok);
            reply.set_session(&Session::with_timeout("123456".into(), 60));
            reply
        };
        let standard = text(reply(), Dialect::Standard);
        assert!(standard.starts_with("RTSP/1.0 200 OK\r\n"), "{standard}");
        assert!(standard.contains("CSeq: 3\r\n"), "{standard}");
        assert!(
            standard.contains("Session: 123456;timeout=60\r\n"),
            "{standard}"
        );
        assert!(
            standard.contains("Server: mjpeg-rtsp-server\r\n"),
            "{standard}"
        );
        assert_eq!(
            text(reply(), Dialect::Lab),
            "RTSP/1.0 200 OK\nCSeq: 3\nSession: 123456"
        );
    }

    #[test]
    fn a_lab_reply_with_a_body_carries_its_headers() {
        let reply = Reply::new(StatusCode::Ok)
            .with_header(CONTENT_BASE, "movie.Mjpeg/")
            .with_body("application/sdp", b"v=0\r\n".to_vec());
        assert_eq!(
            text(reply, Dialect::Lab),
            "RTSP/1.0 200 OK\nCSeq: 3\nContent-Base: movie.Mjpeg/\nContent-Type: application/sdp\nContent-Length: 5\n\nv=0\r\n"
        );
    }

    #[test]
    fn refusals_say_why() {
        let reply = Reply::error(StatusCode::SessionNotFound, &"no such session");
        let standard = text(reply.clone(), Dialect::Standard);
        assert!(standard.starts_with("RTSP/1.0 454 "), "{standard}");
        assert!(
            standard.contains("X-Error: no such session\r\n"),
            "{standard}"
        );
        assert!(text(reply, Dialect::Lab).starts_with("RTSP/1.0 454 "));
    }
}
