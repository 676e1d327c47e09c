//! What a DESCRIBE reply says (RFC 2326 appendix C): the base URL that control URLs are
//! resolved against (C.1.1: Content-Base, else Content-Location, else the request URL),
//! the aggregate control URL, and each media stream with its formats, range, frame rate and
//! control URL, read from the SDP through `sdp-types`.
//!
//! Control URLs, as servers mean them:
//! - `*` at either level is the base URL itself (C.1.1); no session-level control means the
//!   same. A stream with no control of its own is controlled through the aggregate URL
//!   (C.4: a presentation of a single stream may omit it).
//! - A relative control is relative to the base URL taken as a folder: with the base
//!   `rtsp://h/clip` or `rtsp://h/clip/`, `streamid=0` is `rtsp://h/clip/streamid=0`.
//!   RFC 1808 would replace `clip`; servers mean the stream under the presentation, and
//!   clients (rtspsrc, live555, ffmpeg) append.

use rtsp_types::headers::{CONTENT_BASE, CONTENT_LOCATION};
use rtsp_types::{Response, Url};

/// Why a DESCRIBE reply could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DescribeError {
    #[error("the Content-Base {value:?} is not an absolute URL: {source}")]
    ContentBase {
        value: String,
        source: url::ParseError,
    },
    #[error("the Content-Location {value:?} is not a URL: {source}")]
    ContentLocation {
        value: String,
        source: url::ParseError,
    },
    #[error("the server's SDP is not UTF-8 text")]
    SdpNotUtf8,
    #[error("the server's SDP has a malformed line: {0:?}")]
    SdpLine(String),
    #[error("the server's SDP does not parse: {0}")]
    Sdp(sdp_types::ParserError),
    #[error("the server's SDP does not parse")]
    SdpParserPanicked,
    #[error("bad control URL {control:?}: {source}")]
    Control {
        control: String,
        source: url::ParseError,
    },
    #[error("the stream has no video")]
    NoVideo,
    #[error("the stream is not Motion-JPEG (RTP/JPEG, RFC 2435): video formats {0:?}")]
    NotJpeg(String),
    #[error("no RTP/AVP stream in the SDP")]
    NoRtpStream,
}

/// A presentation as its DESCRIBE reply gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The URL relative control URLs are resolved against (C.1.1).
    pub base: Url,
    /// Where aggregate requests (PLAY, PAUSE, TEARDOWN, keep-alives) go.
    pub aggregate: Url,
    pub streams: Vec<MediaStream>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaStream {
    /// `video`, `audio`, ...
    pub media: String,
    /// `RTP/AVP`, ...
    pub proto: String,
    /// The payload formats, as the `m=` line lists them: `26`.
    pub formats: String,
    /// The stream's `a=control`, as written; see [`Description::control_url`].
    pub control: Option<String>,
    /// The format carrying RTP/JPEG (RFC 2435): `JPEG/90000` in its `a=rtpmap`, or the
    /// static payload type 26 without one.
    pub jpeg_payload_type: Option<u8>,
    /// The length in seconds, from the stream's or else the session's `a=range` (C.1.5).
    pub duration: Option<f64>,
    pub framerate: Option<f64>,
}

/// The Motion-JPEG video stream a player sets up.
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    /// Where SETUP goes.
    pub control: Url,
    /// Where aggregate requests (PLAY, PAUSE, TEARDOWN) go.
    pub aggregate: Url,
    pub payload_type: u8,
    /// The clip's length in seconds, when the server offers a range.
    pub duration: Option<f64>,
    pub framerate: Option<f64>,
}

/// The base URL of a DESCRIBE reply to `request_url` (C.1.1). Content-Base must be
/// absolute (RFC 2068 14.11); Content-Location may be relative to the request URL (14.15).
pub fn base_url<B>(request_url: &Url, reply: &Response<B>) -> Result<Url, DescribeError> {
    if let Some(value) = reply.header(&CONTENT_BASE) {
        let value = value.as_str().trim();
        return Url::parse(value).map_err(|source| DescribeError::ContentBase {
            value: value.to_string(),
            source,
        });
    }
    if let Some(value) = reply.header(&CONTENT_LOCATION) {
        let value = value.as_str().trim();
        return request_url
            .join(value)
            .map_err(|source| DescribeError::ContentLocation {
                value: value.to_string(),
                source,
            });
    }
    Ok(request_url.clone())
}

impl Description {
    /// Reads the SDP of a DESCRIBE reply whose base URL is `base`.
    pub fn parse(sdp: &[u8], base: &Url) -> Result<Description, DescribeError> {
        let session = parse_sdp(sdp)?;
        let session_range = session.get_first_attribute_value("range").ok().flatten();
        let aggregate = match session.get_first_attribute_value("control").ok().flatten() {
            Some(control) => resolve(base, control)?,
            None => base.clone(),
        };
        let streams = session
            .medias
            .iter()
            .map(|m| media_stream(m, session_range))
            .collect();
        Ok(Description {
            base: base.clone(),
            aggregate,
            streams,
        })
    }

    /// Reads a DESCRIBE reply to `request_url`: its base URL, then its SDP body.
    pub fn from_reply<B: AsRef<[u8]>>(
        request_url: &Url,
        reply: &Response<B>,
    ) -> Result<Description, DescribeError> {
        let base = base_url(request_url, reply)?;
        Description::parse(reply.body().as_ref(), &base)
    }

    /// Where SETUP goes for `stream`: its control resolved against the base URL, `*` being
    /// the base itself, or the aggregate URL when it has none.
    pub fn control_url(&self, stream: &MediaStream) -> Result<Url, DescribeError> {
        match &stream.control {
            Some(control) => resolve(&self.base, control),
            None => Ok(self.aggregate.clone()),
        }
    }

    /// The first video stream, which must be Motion-JPEG (the player's choice).
    pub fn jpeg_video(&self) -> Result<Stream, DescribeError> {
        let video = self
            .streams
            .iter()
            .find(|s| s.media == "video")
            .ok_or(DescribeError::NoVideo)?;
        let payload_type = video
            .jpeg_payload_type
            .ok_or_else(|| DescribeError::NotJpeg(video.formats.clone()))?;
        Ok(Stream {
            control: self.control_url(video)?,
            aggregate: self.aggregate.clone(),
            payload_type,
            duration: video.duration,
            framerate: video.framerate,
        })
    }

    /// The first RTP/AVP video stream, else the first RTP/AVP stream of any kind (what a
    /// load generator receives: it counts packets and frames whatever they carry).
    pub fn rtp_stream(&self) -> Result<&MediaStream, DescribeError> {
        let rtp = |s: &&MediaStream| s.proto == "RTP/AVP";
        self.streams
            .iter()
            .filter(rtp)
            .find(|s| s.media == "video")
            .or_else(|| self.streams.iter().find(rtp))
            .ok_or(DescribeError::NoRtpStream)
    }
}

/// The Motion-JPEG stream of an SDP whose base URL is `base` (see
/// [`Description::jpeg_video`]).
pub fn read(sdp: &[u8], base: &Url) -> Result<Stream, DescribeError> {
    Description::parse(sdp, base)?.jpeg_video()
}

fn media_stream(media: &sdp_types::Media, session_range: Option<&str>) -> MediaStream {
    let jpeg_payload_type = media.fmt.split_whitespace().find_map(|fmt| {
        let pt: u8 = fmt.parse().ok()?;
        // No rtpmap at all is no error: the static payload type needs none.
        let rtpmap = media
            .get_attribute_values("rtpmap")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .find(|v| v.split_whitespace().next() == Some(fmt));
        match rtpmap {
            Some(map) if map.to_ascii_uppercase().contains("JPEG/90000") => Some(pt),
            Some(_) => None,
            None => (pt == 26).then_some(pt),
        }
    });
    let range = media
        .get_first_attribute_value("range")
        .ok()
        .flatten()
        .or(session_range);
    // `a=range:npt=0-10.000` (RFC 2326 C.1.5), read like a Range header.
    let duration = range
        .and_then(|r| crate::range::parse(r).ok())
        .and_then(|r| r.end)
        .filter(|d| d.is_finite() && *d > 0.0);
    let framerate = media
        .get_first_attribute_value("framerate")
        .ok()
        .flatten()
        .and_then(|f| f.trim().parse().ok());
    MediaStream {
        media: media.media.clone(),
        proto: media.proto.clone(),
        formats: media.fmt.clone(),
        control: media
            .get_first_attribute_value("control")
            .ok()
            .flatten()
            .map(str::to_string),
        jpeg_payload_type,
        duration,
        framerate,
    }
}

/// RFC 4566 through `sdp-types`, guarded: sdp-types 0.1.8 asserts (panics) on some
/// malformed descriptions (found by the `rtsp_reply` fuzz target), so every line is first
/// checked to be `<letter>=...`, and a panic left in the parser is caught as an error.
pub(crate) fn parse_sdp(sdp: &[u8]) -> Result<sdp_types::Session, DescribeError> {
    let text = std::str::from_utf8(sdp).map_err(|_| DescribeError::SdpNotUtf8)?;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
            return Err(DescribeError::SdpLine(line.to_string()));
        }
    }
    match std::panic::catch_unwind(|| sdp_types::Session::parse(sdp)) {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => Err(DescribeError::Sdp(e)),
        Err(_) => Err(DescribeError::SdpParserPanicked),
    }
}

/// A control attribute against the base URL: `*` is the base, an absolute URL stands for
/// itself, anything else is relative to the base taken as a folder.
fn resolve(base: &Url, control: &str) -> Result<Url, DescribeError> {
    let control = control.trim();
    let error = |source| DescribeError::Control {
        control: control.to_string(),
        source,
    };
    if control.is_empty() || control == "*" {
        return Ok(base.clone());
    }
    if control.contains("://") {
        return Url::parse(control).map_err(error);
    }
    let mut folder = base.clone();
    if !folder.path().ends_with('/') {
        let path = format!("{}/", folder.path());
        folder.set_path(&path);
    }
    folder.join(control).map_err(error)
}
