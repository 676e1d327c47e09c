//! The networking lab's RTSP dialect (`../shared/LAB_PROTOCOL.md` in the project notes):
//! bare file names, `\n` line ends, no blank line after a request or a reply, headers in
//! fixed positions, `Transport: RTP/UDP; client_port= N`. Lab peers are not RFC 2326
//! peers, so this is the one place with its own lenient reader and writer.

use std::fmt::Write as _;

/// A request as a lab client writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabRequest {
    pub method: String,
    /// The bare file name (as written, not decoded).
    pub file: String,
    pub cseq: Option<u32>,
    pub session: Option<String>,
    /// `client_port` of a `Transport: RTP/UDP; client_port= N` line.
    pub client_port: Option<u16>,
    /// The transport line was present but not understood.
    pub bad_transport: bool,
    /// The transport line asks for multicast, which the lab dialect does not have.
    pub multicast: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabError {
    #[error("the request line is not `METHOD FILE RTSP/1.0`")]
    RequestLine,
    #[error("the request is not UTF-8 text")]
    NotText,
}

/// True when `data` (the start of a request) is in the lab dialect: its first line ends
/// with a bare `\n`. `None` while no line end has arrived.
pub fn is_lab(data: &[u8]) -> Option<bool> {
    let end = data.iter().position(|&b| b == b'\n')?;
    Some(end == 0 || data[end - 1] != b'\r')
}

/// Reads one lab request: everything the client wrote in one go. Lines may end with `\n`
/// or `\r\n`; header names are matched without case; the transport is read leniently
/// (`client_port= N`, `client_port = N`, `client_port=N`, with or without `RTP/UDP`).
pub fn parse(data: &[u8]) -> Result<LabRequest, LabError> {
    let text = std::str::from_utf8(data).map_err(|_| LabError::NotText)?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or(LabError::RequestLine)?;
    let mut words = first.split_whitespace();
    let (Some(method), Some(file), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(LabError::RequestLine);
    };
    if !version.starts_with("RTSP/")
        || !method.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    {
        return Err(LabError::RequestLine);
    }
    let mut request = LabRequest {
        method: method.to_string(),
        file: file.to_string(),
        cseq: None,
        session: None,
        client_port: None,
        bad_transport: false,
        multicast: false,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "cseq" => request.cseq = value.parse().ok(),
            "session" => {
                let id = value.split(';').next().unwrap_or_default().trim();
                request.session = (!id.is_empty()).then(|| id.to_string());
            }
            "transport" => {
                request.client_port = client_port(value);
                request.bad_transport = request.client_port.is_none();
                request.multicast = value
                    .split(';')
                    .any(|p| p.trim().eq_ignore_ascii_case("multicast"));
            }
            _ => {}
        }
    }
    Ok(request)
}

/// The first port of `client_port` in a lab transport line, spaces allowed around `=`.
fn client_port(transport: &str) -> Option<u16> {
    transport.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if name.trim() != "client_port" {
            return None;
        }
        let first = value.trim().split('-').next()?.trim();
        first.parse().ok().filter(|&p| p != 0)
    })
}

/// A reply shaped the way a lab client reads it: status line, `CSeq`, then `Session`
/// (a plain integer), each ended by `\n` except the last, nothing after. `extra` headers
/// and a body (DESCRIBE) follow, separated by a blank line, as lab variants expect.
pub fn reply(
    code: u16,
    reason: &str,
    cseq: Option<u32>,
    session: Option<&str>,
    extra: &[(&str, String)],
    body: &[u8],
) -> Vec<u8> {
    let mut text = format!("RTSP/1.0 {code} {reason}");
    if let Some(cseq) = cseq {
        let _ = write!(text, "\nCSeq: {cseq}");
    }
    if let Some(session) = session {
        let _ = write!(text, "\nSession: {session}");
    }
    for (name, value) in extra {
        let _ = write!(text, "\n{name}: {value}");
    }
    let mut out = text.into_bytes();
    if !body.is_empty() {
        out.extend_from_slice(format!("\nContent-Length: {}\n\n", body.len()).as_bytes());
        out.extend_from_slice(body);
    }
    out
}

/// A lab server's RTP packet made acceptable to RTP elements: one widespread student
/// version sends RTP version 0 (a masking bug); the version bits are set to 2.
pub fn normalize_version(packet: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    match packet.first() {
        Some(b) if b >> 6 == 0 && packet.len() >= 12 => {
            let mut fixed = packet.to_vec();
            fixed[0] |= 0x80;
            std::borrow::Cow::Owned(fixed)
        }
        _ => std::borrow::Cow::Borrowed(packet),
    }
}

/// A lab server's reply: status code, CSeq and session, read by line position as lab
/// clients do (lines after the third are ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabReply {
    pub code: u16,
    pub cseq: Option<u32>,
    pub session: Option<String>,
}

/// Reads a reply once `data` holds its status line; `None` while it does not.
pub fn parse_reply(data: &[u8]) -> Option<Result<LabReply, LabError>> {
    let text = match std::str::from_utf8(data) {
        Ok(text) => text,
        Err(_) => return Some(Err(LabError::NotText)),
    };
    let mut lines = text.lines().map(str::trim);
    let status = lines.next()?;
    let mut words = status.split_whitespace();
    let code = match (
        words.next(),
        words.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(version), Some(code)) if version.starts_with("RTSP/") => code,
        _ => return Some(Err(LabError::RequestLine)),
    };
    let mut reply = LabReply {
        code,
        cseq: None,
        session: None,
    };
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "cseq" => reply.cseq = value.trim().parse().ok(),
            "session" => {
                let id = value.split(';').next().unwrap_or_default().trim();
                reply.session = (!id.is_empty()).then(|| id.to_string());
            }
            _ => {}
        }
    }
    Some(Ok(reply))
}

/// A lab client's request: `METHOD file RTSP/1.0\nCSeq: n` and the one header the
/// method needs, no line end after the last line.
pub fn request(method: &str, file: &str, cseq: u32, header: Option<(&str, String)>) -> Vec<u8> {
    let mut text = format!("{method} {file} RTSP/1.0\nCSeq: {cseq}");
    if let Some((name, value)) = header {
        let _ = write!(text, "\n{name}: {value}");
    }
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_lab_client_setup() {
        let r =
            parse(b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25010")
                .unwrap();
        assert_eq!(r.method, "SETUP");
        assert_eq!(r.file, "movie.Mjpeg");
        assert_eq!(r.cseq, Some(1));
        assert_eq!(r.client_port, Some(25010));
        assert_eq!(r.session, None);
    }

    #[test]
    fn reads_transport_variants_and_sessions() {
        for t in [
            "client_port = 5000",
            "client_port=5000",
            "RTP/UDP;client_port=5000-5001",
        ] {
            let text = format!("SETUP a.Mjpeg RTSP/1.0\nCSeq: 2\nTransport: {t}");
            assert_eq!(
                parse(text.as_bytes()).unwrap().client_port,
                Some(5000),
                "{t}"
            );
        }
        let r = parse(b"PLAY movie.Mjpeg RTSP/1.0\r\nCSeq: 2\r\nSession: 274628").unwrap();
        assert_eq!(r.session.as_deref(), Some("274628"));
        let r = parse(b"SETUP a RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= x").unwrap();
        assert!(r.bad_transport);
        assert!(!r.multicast);
        let r = parse(b"SETUP a RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP; multicast").unwrap();
        assert!(r.multicast);
    }

    #[test]
    fn refuses_what_is_not_a_request() {
        assert_eq!(parse(b"hello\n"), Err(LabError::RequestLine));
        assert_eq!(parse(b"PLAY a b c RTSP/1.0\n"), Err(LabError::RequestLine));
        assert_eq!(parse(b"PLAY a HTTP/1.1\n"), Err(LabError::RequestLine));
        assert_eq!(parse(b"\xff\xfe"), Err(LabError::NotText));
    }

    #[test]
    fn detects_the_dialect_from_the_first_line_end() {
        assert_eq!(is_lab(b"SETUP a RTSP/1.0\nCSeq: 1"), Some(true));
        assert_eq!(is_lab(b"OPTIONS * RTSP/1.0\r\n"), Some(false));
        assert_eq!(is_lab(b"OPTIONS * RTSP/1.0"), None);
    }

    #[test]
    fn reads_lab_replies_and_writes_lab_requests() {
        assert_eq!(parse_reply(b""), None);
        let r = parse_reply(b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 274628")
            .unwrap()
            .unwrap();
        assert_eq!(
            r,
            LabReply {
                code: 200,
                cseq: Some(1),
                session: Some("274628".into())
            }
        );
        assert!(parse_reply(b"HTTP/1.1 200 OK\n").unwrap().is_err());
        assert_eq!(
            request(
                "SETUP",
                "movie.Mjpeg",
                1,
                Some(("Transport", "RTP/UDP; client_port= 25010".into()))
            ),
            b"SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25010"
        );
        // What we write, a lab server reads.
        let r = parse(&request(
            "PLAY",
            "movie.Mjpeg",
            2,
            Some(("Session", "274628".into())),
        ))
        .unwrap();
        assert_eq!(
            (r.method.as_str(), r.cseq, r.session.as_deref()),
            ("PLAY", Some(2), Some("274628"))
        );
    }

    #[test]
    fn version_0_packets_become_version_2() {
        let v0 = [0x00, 26, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xD8];
        assert_eq!(normalize_version(&v0)[0], 0x80);
        assert_eq!(normalize_version(&v0)[1..], v0[1..]);
        let v2 = [0x80, 26, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            normalize_version(&v2),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(matches!(
            normalize_version(&[0u8; 4]),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn replies_in_the_exact_lab_shape() {
        assert_eq!(
            reply(200, "OK", Some(1), Some("274628"), &[], b""),
            b"RTSP/1.0 200 OK\nCSeq: 1\nSession: 274628"
        );
    }
}
