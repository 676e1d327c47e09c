//! What a publisher's ANNOUNCE says (RFC 2326 10.3): its session description, read with
//! `sdp-types`, reduced to the one thing the server takes, a JPEG video stream over RTP
//! (RFC 2435), and the control URL the publisher will SETUP.

use sdp_types::{Media, Session};

/// The largest session description a publisher may announce. ffmpeg's and
/// `rtspclientsink`'s are a few hundred bytes.
pub const MAX_SDP: usize = 8 * 1024;

/// The JPEG stream a publisher announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// Its RTP payload type (26, JPEG's static one, or a dynamic one mapped to JPEG).
    pub payload_type: u8,
    /// The media's `a=control`, relative to the request URL (or absolute); `None` when
    /// the description gives none (the SETUP then names the path itself).
    pub control: Option<String>,
}

/// Why an ANNOUNCE's body is not a stream the server can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceError {
    #[error("the session description is {len} bytes, more than the {max} this server reads")]
    TooLarge { len: usize, max: usize },
    #[error("ANNOUNCE without a session description")]
    Empty,
    #[error("the body is {0:?}, not application/sdp")]
    NotSdp(String),
    #[error("the session description does not parse: {0}")]
    Garbage(String),
    #[error("the session description has no video stream")]
    NoVideo,
    #[error("the video is {0:?}, not RTP/AVP")]
    NotRtp(String),
    #[error(
        "the video is {codec}, not JPEG (RFC 2435): publish Motion-JPEG (ffmpeg -c:v mjpeg, or jpegenc)"
    )]
    NotJpeg { codec: String },
}

impl AnnounceError {
    /// The publisher sent something the server does not take (415) rather than
    /// something malformed.
    pub fn is_unsupported_media(&self) -> bool {
        matches!(
            self,
            AnnounceError::NotSdp(_)
                | AnnounceError::NoVideo
                | AnnounceError::NotRtp(_)
                | AnnounceError::NotJpeg { .. }
        )
    }
}

/// Reads an ANNOUNCE's body, given its `Content-Type` (`None` when there is none).
pub fn read(content_type: Option<&str>, body: &[u8]) -> Result<Announced, AnnounceError> {
    if body.len() > MAX_SDP {
        return Err(AnnounceError::TooLarge {
            len: body.len(),
            max: MAX_SDP,
        });
    }
    if let Some(content_type) = content_type {
        let mime = content_type.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/sdp") {
            return Err(AnnounceError::NotSdp(content_type.to_string()));
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AnnounceError::Empty);
    }
    // The same guarded parser as DESCRIBE replies' (sdp-types asserts on some lines).
    let session: Session = crate::client::description::parse_sdp(body)
        .map_err(|e| AnnounceError::Garbage(e.to_string()))?;
    let video = session
        .medias
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("video"))
        .ok_or(AnnounceError::NoVideo)?;
    if !video.proto.eq_ignore_ascii_case("RTP/AVP") {
        return Err(AnnounceError::NotRtp(video.proto.clone()));
    }
    let payload_type = jpeg_format(video)?;
    let control = video
        .get_first_attribute_value("control")
        .ok()
        .flatten()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    Ok(Announced {
        payload_type,
        control,
    })
}

/// The first of the media's formats that is JPEG: 26 (RFC 3551), unless an `rtpmap`
/// maps it to something else, or a dynamic one mapped to `JPEG/90000`.
fn jpeg_format(video: &Media) -> Result<u8, AnnounceError> {
    let rtpmap = |pt: u8| {
        video
            .get_attribute_values("rtpmap")
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|value| {
                let (format, codec) = value.trim().split_once(char::is_whitespace)?;
                (format.parse::<u8>().ok()? == pt).then(|| codec.trim().to_string())
            })
    };
    let mut first_codec = None;
    for format in video.fmt.split_whitespace() {
        let Ok(pt) = format.parse::<u8>() else {
            first_codec.get_or_insert_with(|| format.to_string());
            continue;
        };
        if pt > 127 {
            first_codec.get_or_insert_with(|| format!("payload type {pt}"));
            continue;
        }
        let codec = rtpmap(pt);
        let name = codec
            .as_deref()
            .map(|c| c.split('/').next().unwrap_or(c).to_ascii_uppercase());
        match name.as_deref() {
            Some("JPEG") => return Ok(pt),
            None if pt == 26 => return Ok(pt),
            Some(_) => {
                first_codec.get_or_insert_with(|| codec.unwrap_or_default());
            }
            None => {
                first_codec.get_or_insert_with(|| format!("payload type {pt} (no rtpmap)"));
            }
        }
    }
    Err(AnnounceError::NotJpeg {
        codec: first_codec.unwrap_or_else(|| "no format".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFMPEG: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 26\r\na=control:streamid=0\r\n";
    const GSTREAMER: &str = "v=0\r\no=- 1188340656180883 1 IN IP4 127.0.0.1\r\ns=Session streamed with GStreamer\r\ni=rtsp-server\r\nt=0 0\r\na=tool:GStreamer\r\na=type:broadcast\r\nm=video 0 RTP/AVP 26\r\nc=IN IP4 0.0.0.0\r\na=rtpmap:26 JPEG/90000\r\na=framerate:30\r\na=control:stream=0\r\n";
    const H264: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:streamid=0\r\n";

    #[test]
    fn reads_ffmpeg_and_gstreamer_announcements() {
        assert_eq!(
            read(Some("application/sdp"), FFMPEG.as_bytes()),
            Ok(Announced {
                payload_type: 26,
                control: Some("streamid=0".into())
            })
        );
        assert_eq!(
            read(None, GSTREAMER.as_bytes()),
            Ok(Announced {
                payload_type: 26,
                control: Some("stream=0".into())
            })
        );
        let dynamic = H264.replace("H264/90000", "JPEG/90000");
        assert_eq!(
            read(Some("application/SDP; charset=utf-8"), dynamic.as_bytes())
                .map(|a| a.payload_type),
            Ok(96)
        );
    }

    #[test]
    fn names_the_codec_that_is_not_jpeg() {
        let e = read(Some("application/sdp"), H264.as_bytes()).unwrap_err();
        assert_eq!(
            e,
            AnnounceError::NotJpeg {
                codec: "H264/90000".into()
            }
        );
        assert!(e.is_unsupported_media());
        assert!(e.to_string().contains("H264/90000"), "{e}");
        let audio_only = FFMPEG.replace("m=video 0 RTP/AVP 26", "m=audio 0 RTP/AVP 0");
        assert_eq!(
            read(None, audio_only.as_bytes()),
            Err(AnnounceError::NoVideo)
        );
        let srtp = FFMPEG.replace("RTP/AVP", "RTP/SAVP");
        assert!(matches!(
            read(None, srtp.as_bytes()),
            Err(AnnounceError::NotRtp(_))
        ));
        // 26 mapped to something else is not JPEG.
        let remapped = format!("{FFMPEG}a=rtpmap:26 H265/90000\r\n");
        assert!(matches!(
            read(None, remapped.as_bytes()),
            Err(AnnounceError::NotJpeg { .. })
        ));
        assert!(matches!(
            read(Some("text/plain"), FFMPEG.as_bytes()),
            Err(AnnounceError::NotSdp(_))
        ));
    }

    #[test]
    fn refuses_garbage_empty_and_oversized_descriptions() {
        assert_eq!(read(None, b""), Err(AnnounceError::Empty));
        assert_eq!(read(None, b" \r\n"), Err(AnnounceError::Empty));
        for garbage in [
            &b"\x00\xff\xfe garbage"[..],
            b"v=1\r\n",
            b"hello world",
            b"v=0\r\nm=video\r\n",
        ] {
            let e = read(Some("application/sdp"), garbage).unwrap_err();
            assert!(!e.is_unsupported_media(), "{garbage:?}: {e}");
        }
        let big = format!("{FFMPEG}{}", "a=x:y\r\n".repeat(MAX_SDP / 6));
        assert!(matches!(
            read(None, big.as_bytes()),
            Err(AnnounceError::TooLarge { .. })
        ));
    }
}
