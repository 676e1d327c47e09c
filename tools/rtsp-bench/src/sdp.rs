//! From a DESCRIBE reply to the URLs a client sets up and plays (RFC 2326 C.1.1): the base
//! URL is Content-Base, else Content-Location, else the request URL; a relative `a=control`
//! is resolved against it, `*` (or none) stands for the base URL itself; the session-level
//! control is the aggregate URL that PLAY and TEARDOWN go to.

use rtsp_types::Url;

/// What a session sets up and plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presentation {
    /// The aggregate control URL (PLAY, TEARDOWN, keep-alives).
    pub aggregate: Url,
    /// The control URL of the stream set up (SETUP).
    pub media: Url,
    /// The stream's `m=` line, for messages: for example `video 26 RTP/AVP`.
    pub media_line: String,
}

/// Picks the stream to receive (the first RTP/AVP video stream, else the first RTP/AVP
/// stream) and resolves its control URL.
pub fn presentation(
    request_url: &Url,
    content_base: Option<&str>,
    content_location: Option<&str>,
    sdp: &[u8],
) -> Result<Presentation, String> {
    let base = match content_base.or(content_location) {
        Some(b) => Url::parse(b.trim()).map_err(|e| format!("bad base URL {b:?}: {e}"))?,
        None => request_url.clone(),
    };
    let session = sdp_types::Session::parse(sdp).map_err(|e| format!("bad SDP: {e:?}"))?;
    let resolve = |control: Option<&str>| -> Result<Url, String> {
        match control.map(str::trim) {
            None | Some("") | Some("*") => Ok(base.clone()),
            Some(c) => base
                .join(c)
                .map_err(|e| format!("bad control URL {c:?}: {e}")),
        }
    };
    let session_control = session
        .attributes
        .iter()
        .find(|a| a.attribute == "control")
        .and_then(|a| a.value.as_deref());
    let aggregate = resolve(session_control)?;
    let rtp = |m: &&sdp_types::Media| m.proto == "RTP/AVP";
    let media = session
        .medias
        .iter()
        .filter(rtp)
        .find(|m| m.media == "video")
        .or_else(|| session.medias.iter().find(rtp))
        .ok_or("no RTP/AVP stream in the SDP")?;
    let control = media.get_first_attribute_value("control").ok().flatten();
    Ok(Presentation {
        aggregate,
        media: resolve(control)?,
        media_line: format!("{} {} {}", media.media, media.fmt, media.proto),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &[u8] = b"v=0\r\n\
        o=- 1 1 IN IP4 127.0.0.1\r\n\
        s=clip\r\n\
        t=0 0\r\n\
        a=control:*\r\n\
        m=audio 0 RTP/AVP 0\r\n\
        a=control:streamid=1\r\n\
        m=video 0 RTP/AVP 26\r\n\
        a=rtpmap:26 JPEG/90000\r\n\
        a=control:streamid=0\r\n";

    fn url(s: &str) -> Url {
        Url::parse(s).expect("URL")
    }

    #[test]
    fn relative_control_against_content_base() {
        let p = presentation(
            &url("rtsp://h:8554/clip"),
            Some("rtsp://h:8554/clip/"),
            None,
            SDP,
        )
        .expect("presentation");
        assert_eq!(p.aggregate.as_str(), "rtsp://h:8554/clip/");
        assert_eq!(p.media.as_str(), "rtsp://h:8554/clip/streamid=0");
        assert_eq!(p.media_line, "video 26 RTP/AVP");
    }

    #[test]
    fn absolute_control_and_request_url_base() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
            m=video 0 RTP/AVP 26\r\na=control:rtsp://other/track1\r\n";
        let p = presentation(&url("rtsp://h/clip.Mjpeg"), None, None, sdp).expect("ok");
        assert_eq!(p.aggregate.as_str(), "rtsp://h/clip.Mjpeg");
        assert_eq!(p.media.as_str(), "rtsp://other/track1");
    }

    #[test]
    fn content_location_and_no_media_control() {
        let sdp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
            a=control:rtsp://h/agg\r\nm=video 0 RTP/AVP 26\r\n";
        let p = presentation(&url("rtsp://h/a"), None, Some("rtsp://h/b/"), sdp).expect("ok");
        assert_eq!(p.aggregate.as_str(), "rtsp://h/agg");
        assert_eq!(p.media.as_str(), "rtsp://h/b/");
    }

    #[test]
    fn errors_are_reported_not_panicked() {
        let u = url("rtsp://h/a");
        assert!(presentation(&u, None, None, b"garbage").is_err());
        assert!(presentation(&u, Some("not a url"), None, SDP).is_err());
        let no_rtp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/SAVP 26\r\n";
        assert!(presentation(&u, None, None, no_rtp).is_err());
    }
}
