//! The session description a DESCRIBE returns (RFC 4566 through `sdp-types`; RFC 2435
//! and RFC 2326 C.1 attributes).

use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

/// What a client needs to know about a clip before SETUP.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipDescription<'a> {
    pub name: &'a str,
    pub width: u32,
    pub height: u32,
    /// `None` for a live source, whose rate is its own.
    pub fps: Option<u32>,
    /// Duration in seconds; `None` for an endless (looping) stream.
    pub duration: Option<f64>,
    /// A live source: `a=range:npt=now-` (no position to seek to).
    pub live: bool,
    /// The server's address for the origin line.
    pub server_address: &'a str,
    /// The media's `a=control` (relative to `Content-Base`).
    pub control: &'a str,
    pub session_id: u64,
}

fn attribute(name: &str, value: Option<String>) -> Attribute {
    Attribute {
        attribute: name.to_string(),
        value,
    }
}

pub fn describe(clip: &ClipDescription<'_>) -> Vec<u8> {
    let addrtype = if clip.server_address.contains(':') {
        "IP6"
    } else {
        "IP4"
    };
    let any = if addrtype == "IP6" { "::" } else { "0.0.0.0" };
    let range = match (clip.live, clip.duration) {
        (true, _) => "npt=now-".to_string(),
        (false, Some(d)) => format!("npt=0-{d:.3}"),
        (false, None) => "npt=0-".to_string(),
    };
    let mut media_attributes = vec![attribute("rtpmap", Some("26 JPEG/90000".into()))];
    if let Some(fps) = clip.fps {
        media_attributes.push(attribute("framerate", Some(fps.to_string())));
    }
    media_attributes.push(attribute("control", Some(clip.control.to_string())));
    // RFC 2435 carries sizes up to 2040 pixels; larger ones need x-dimensions.
    if clip.width > 2040 || clip.height > 2040 {
        media_attributes.push(attribute(
            "x-dimensions",
            Some(format!("{},{}", clip.width, clip.height)),
        ));
    }
    let session = Session {
        origin: Origin {
            username: Some("-".into()),
            sess_id: clip.session_id.to_string(),
            sess_version: 1,
            nettype: "IN".into(),
            addrtype: addrtype.into(),
            unicast_address: clip.server_address.to_string(),
        },
        session_name: clip.name.to_string(),
        session_description: None,
        uri: None,
        emails: vec![],
        phones: vec![],
        connection: Some(Connection {
            nettype: "IN".into(),
            addrtype: addrtype.into(),
            connection_address: any.into(),
        }),
        bandwidths: vec![],
        times: vec![Time {
            start_time: 0,
            stop_time: 0,
            repeats: vec![],
        }],
        time_zones: vec![],
        key: None,
        attributes: vec![
            attribute("tool", Some("mjpeg-rtsp-server".into())),
            attribute("type", Some("broadcast".into())),
            attribute("control", Some("*".into())),
            attribute("range", Some(range)),
        ],
        medias: vec![Media {
            media: "video".into(),
            port: 0,
            num_ports: None,
            proto: "RTP/AVP".into(),
            fmt: "26".into(),
            media_title: None,
            connections: vec![],
            bandwidths: vec![],
            key: None,
            attributes: media_attributes,
        }],
    };
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = session.write(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_clip() {
        let mut clip = ClipDescription {
            name: "movie.Mjpeg",
            width: 384,
            height: 288,
            fps: Some(20),
            duration: Some(25.0),
            live: false,
            server_address: "127.0.0.1",
            control: "streamid=0",
            session_id: 42,
        };
        let sdp = String::from_utf8(describe(&clip)).unwrap();
        for line in [
            "v=0\r\n",
            "m=video 0 RTP/AVP 26\r\n",
            "a=rtpmap:26 JPEG/90000\r\n",
            "a=control:streamid=0\r\n",
            "a=framerate:20\r\n",
            "a=range:npt=0-25.000\r\n",
            "c=IN IP4 0.0.0.0\r\n",
        ] {
            assert!(sdp.contains(line), "{line:?} missing in\n{sdp}");
        }
        assert!(!sdp.contains("x-dimensions"));
        assert!(sdp_types::Session::parse(sdp.as_bytes()).is_ok());
        clip.width = 4096;
        clip.height = 2160;
        let sdp = String::from_utf8(describe(&clip)).unwrap();
        assert!(sdp.contains("a=x-dimensions:4096,2160\r\n"), "{sdp}");
        // A live source: no position, no rate of ours.
        clip.live = true;
        clip.fps = None;
        clip.duration = None;
        let sdp = String::from_utf8(describe(&clip)).unwrap();
        assert!(sdp.contains("a=range:npt=now-\r\n"), "{sdp}");
        assert!(!sdp.contains("a=framerate"), "{sdp}");
        assert!(sdp_types::Session::parse(sdp.as_bytes()).is_ok());
    }
}
