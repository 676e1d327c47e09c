//! From a request URL's path to the clip it names. Clips live in a flat namespace of file
//! names: the server never joins a client's path onto a directory, and this refuses any
//! path that is not one plain name (plus the media control suffix).

/// The media control the SDP gives (`a=control`), relative to `Content-Base`.
pub const CONTROL: &str = "streamid=0";

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The clip's file name, percent-decoded.
    pub clip: String,
    /// The path ends with the media control (`.../clip/streamid=0`).
    pub media: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("no clip named in the URL")]
    Empty,
    #[error("not a plain clip name (directories, `..` and escapes are refused)")]
    NotAName,
}

/// Reads `/clip`, `/clip/` or `/clip/streamid=0` (percent-encoded, as in a URL) or a lab
/// client's bare `clip`.
pub fn target(path: &str) -> Result<Target, PathError> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (name, rest) = path.split_once('/').unwrap_or((path, ""));
    let media = match rest {
        "" => false,
        CONTROL => true,
        _ => return Err(PathError::NotAName),
    };
    if name.is_empty() {
        return Err(PathError::Empty);
    }
    let clip = percent_decode(name).ok_or(PathError::NotAName)?;
    let bad = |c: char| c == '/' || c == '\\' || c.is_control();
    if clip == "." || clip == ".." || clip.chars().any(bad) {
        return Err(PathError::NotAName);
    }
    Ok(Target { clip, media })
}

/// Reads a publisher's SETUP path: `/name`, `/name/` or `/name/<control>`, where
/// `control` is the media's `a=control` from its ANNOUNCE (relative, or an absolute URL
/// whose last segment is taken); returns the path's name.
pub fn publish_target(path: &str, control: Option<&str>) -> Result<String, PathError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let (name, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let announced = control.map(|c| c.rsplit('/').next().unwrap_or(c));
    if !rest.is_empty() && rest != CONTROL && Some(rest) != announced {
        return Err(PathError::NotAName);
    }
    target(&format!("/{name}")).map(|t| t.clip)
}

/// `%XX` decoding; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a clip name for a URL path segment.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_clip_and_media_paths() {
        let t = |clip: &str, media| {
            Ok(Target {
                clip: clip.into(),
                media,
            })
        };
        assert_eq!(target("/movie.Mjpeg"), t("movie.Mjpeg", false));
        assert_eq!(target("/movie.Mjpeg/"), t("movie.Mjpeg", false));
        assert_eq!(target("/movie.Mjpeg/streamid=0"), t("movie.Mjpeg", true));
        assert_eq!(target("movie.Mjpeg"), t("movie.Mjpeg", false));
        assert_eq!(target("/my%20clip.mjpg"), t("my clip.mjpg", false));
        assert!(target(&format!("/{}", encode("a b/ü.mjpg"))).is_err());
        assert_eq!(
            target(&format!("/{}", encode("a bü.mjpg"))),
            t("a bü.mjpg", false)
        );
    }

    #[test]
    fn reads_a_publishers_setup_path() {
        assert_eq!(
            publish_target("/phone/stream=0", Some("stream=0")),
            Ok("phone".into())
        );
        assert_eq!(
            publish_target("/phone/streamid=0", Some("rtsp://h/phone/streamid=0")),
            Ok("phone".into())
        );
        assert_eq!(publish_target("/phone", None), Ok("phone".into()));
        assert!(publish_target("/phone/other", Some("stream=0")).is_err());
        assert!(publish_target("/../x/stream=0", Some("stream=0")).is_err());
        assert!(publish_target("/%2e%2e/stream=0", Some("stream=0")).is_err());
    }

    #[test]
    fn refuses_traversal_and_escapes() {
        for bad in [
            "/",
            "",
            "/..",
            "/../etc/passwd",
            "/%2e%2e",
            "/%2E%2E/secret",
            "/a%2Fb",
            "/..%2fsecret",
            "/a%5Cb",
            "/a%00b",
            "/a%",
            "/a%zz",
            "/%ff",
            "//etc/passwd",
            "/clip/../other",
            "/clip/streamid=1",
            "/etc/passwd",
        ] {
            assert!(target(bad).is_err(), "{bad}");
        }
    }
}
