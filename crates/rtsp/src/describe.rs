//! What a DESCRIBE reply says about the stream: the JPEG video media, its control URL
//! (RFC 2326 C.1.1), its range and frame rate.

use anyhow::{Result, anyhow, bail};
use rtsp_types::Url;

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

/// Reads the SDP of a DESCRIBE reply. `base` is the reply's Content-Base (or
/// Content-Location, or the request URL).
pub fn read(sdp: &[u8], base: &Url) -> Result<Stream> {
    let session = parse_sdp(sdp)?;
    let media = session
        .medias
        .iter()
        .find(|m| m.media == "video")
        .ok_or_else(|| anyhow!("the stream has no video"))?;
    let jpeg = media.fmt.split_whitespace().find_map(|fmt| {
        let pt: u8 = fmt.parse().ok()?;
        let rtpmap = media
            .get_attribute_values("rtpmap")
            .ok()?
            .flatten()
            .find(|v| v.split_whitespace().next() == Some(fmt));
        match rtpmap {
            Some(map) if map.to_ascii_uppercase().contains("JPEG/90000") => Some(pt),
            Some(_) => None,
            None => (pt == 26).then_some(pt),
        }
    });
    let Some(payload_type) = jpeg else {
        bail!(
            "the stream is not Motion-JPEG (RTP/JPEG, RFC 2435): video formats {:?}",
            media.fmt
        );
    };
    let session_control = session.get_first_attribute_value("control").ok().flatten();
    let aggregate = match session_control {
        Some(c) if c != "*" => resolve(base, c)?,
        _ => base.clone(),
    };
    let control = match media.get_first_attribute_value("control").ok().flatten() {
        Some(c) if c != "*" => resolve(base, c)?,
        _ => aggregate.clone(),
    };
    let range = media
        .get_first_attribute_value("range")
        .ok()
        .flatten()
        .or_else(|| session.get_first_attribute_value("range").ok().flatten());
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
    Ok(Stream {
        control,
        aggregate,
        payload_type,
        duration,
        framerate,
    })
}

/// RFC 4566 through `sdp-types`, guarded: sdp-types 0.1.8 asserts (panics) on some
/// malformed descriptions (found by the `rtsp_reply` fuzz target), so every line is first
/// checked to be `<letter>=...`, and a panic left in the parser is caught as an error.
fn parse_sdp(sdp: &[u8]) -> Result<sdp_types::Session> {
    let text =
        std::str::from_utf8(sdp).map_err(|_| anyhow!("the server's SDP is not UTF-8 text"))?;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let b = line.as_bytes();
        if b.len() < 2 || !b[0].is_ascii_lowercase() || b[1] != b'=' {
            bail!("the server's SDP has a malformed line: {line:?}");
        }
    }
    match std::panic::catch_unwind(|| sdp_types::Session::parse(sdp)) {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => bail!("the server's SDP does not parse: {e:?}"),
        Err(_) => bail!("the server's SDP does not parse"),
    }
}

/// A control attribute against the base URL: absolute, or relative to the base (whose
/// last segment counts as a folder, as servers mean it).
fn resolve(base: &Url, control: &str) -> Result<Url> {
    if control.contains("://") {
        return Url::parse(control).map_err(|e| anyhow!("bad control URL {control:?}: {e}"));
    }
    let mut folder = base.clone();
    if !folder.path().ends_with('/') {
        let path = format!("{}/", folder.path());
        folder.set_path(&path);
    }
    folder
        .join(control)
        .map_err(|e| anyhow!("bad control URL {control:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=clip\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
        a=control:*\r\na=range:npt=0-10.000\r\nm=video 0 RTP/AVP 26\r\n\
        a=rtpmap:26 JPEG/90000\r\na=framerate:20\r\na=control:streamid=0\r\n";

    #[test]
    fn finds_the_jpeg_stream_and_its_control_url() {
        let base = Url::parse("rtsp://h:8554/clip.Mjpeg/").unwrap();
        let s = read(SDP.as_bytes(), &base).unwrap();
        assert_eq!(s.control.as_str(), "rtsp://h:8554/clip.Mjpeg/streamid=0");
        assert_eq!(s.aggregate, base);
        assert_eq!(
            (s.payload_type, s.duration, s.framerate),
            (26, Some(10.0), Some(20.0))
        );
        // A base without the trailing slash means the same folder.
        let s = read(
            SDP.as_bytes(),
            &Url::parse("rtsp://h:8554/clip.Mjpeg").unwrap(),
        )
        .unwrap();
        assert_eq!(s.control.as_str(), "rtsp://h:8554/clip.Mjpeg/streamid=0");
        let absolute = SDP.replace("a=control:streamid=0", "a=control:rtsp://other/x/track1");
        let s = read(absolute.as_bytes(), &base).unwrap();
        assert_eq!(s.control.as_str(), "rtsp://other/x/track1");
    }

    #[test]
    fn refuses_what_is_not_jpeg() {
        let h264 = SDP
            .replace("m=video 0 RTP/AVP 26", "m=video 0 RTP/AVP 96")
            .replace("a=rtpmap:26 JPEG/90000", "a=rtpmap:96 H264/90000");
        let e = read(h264.as_bytes(), &Url::parse("rtsp://h/x").unwrap()).unwrap_err();
        assert!(e.to_string().contains("not Motion-JPEG"), "{e}");
        assert!(read(b"garbage", &Url::parse("rtsp://h/x").unwrap()).is_err());
        // The fuzz target's find: sdp-types 0.1.8 panicked on this (a line without `=`).
        let crash = include_bytes!(
            "../../../fuzz/regressions/rtsp_reply/sdp-types-assert-on-malformed-line.bin"
        );
        assert!(read(crash, &Url::parse("rtsp://h/x").unwrap()).is_err());
    }
}
