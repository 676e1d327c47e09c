use rtsp_types::headers::{CSEQ, SESSION, USER_AGENT};
use rtsp_types::{Message, Response, StatusCode, Url};

use super::*;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=clip\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
    a=control:*\r\na=range:npt=0-10.000\r\nm=video 0 RTP/AVP 26\r\n\
    a=rtpmap:26 JPEG/90000\r\na=framerate:20\r\na=control:streamid=0\r\n";

/// Two streams, audio first, as the load generator's test had them.
const TWO_STREAMS: &[u8] = b"v=0\r\n\
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

/// A reply as a server writes it: `head` is the status line and headers, without the
/// Content-Length and the empty line, which are added for `body`.
fn reply(head: &str, body: &[u8]) -> Response<Vec<u8>> {
    let mut bytes = format!("{head}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    bytes.extend_from_slice(body);
    match Message::<Vec<u8>>::parse(&bytes) {
        Ok((Message::Response(r), _)) => r,
        other => panic!("not a reply: {other:?}"),
    }
}

/// A DESCRIBE reply with these extra headers and this SDP, read for `request_url`.
fn described(request_url: &str, headers: &str, sdp: &[u8]) -> Result<Description, ReplyError> {
    let head = format!("RTSP/1.0 200 OK\r\nCSeq: 2\r\nContent-Type: application/sdp{headers}");
    read_describe(&url(request_url), &reply(&head, sdp))
}

fn text<B: AsRef<[u8]>>(request: &Request<B>) -> String {
    let mut bytes = Vec::new();
    request.write(&mut bytes).expect("written");
    String::from_utf8(bytes).expect("text")
}

// What a DESCRIBE reply says (RFC 2326 C.1.1).

#[test]
fn finds_the_jpeg_stream_and_its_control_url() {
    let base = url("rtsp://h:8554/clip.Mjpeg/");
    let s = description::read(SDP.as_bytes(), &base).unwrap();
    assert_eq!(s.control.as_str(), "rtsp://h:8554/clip.Mjpeg/streamid=0");
    assert_eq!(s.aggregate, base);
    assert_eq!(
        (s.payload_type, s.duration, s.framerate),
        (26, Some(10.0), Some(20.0))
    );
    // A base without the trailing slash means the same folder.
    let s = description::read(SDP.as_bytes(), &url("rtsp://h:8554/clip.Mjpeg")).unwrap();
    assert_eq!(s.control.as_str(), "rtsp://h:8554/clip.Mjpeg/streamid=0");
    let absolute = SDP.replace("a=control:streamid=0", "a=control:rtsp://other/x/track1");
    let s = description::read(absolute.as_bytes(), &base).unwrap();
    assert_eq!(s.control.as_str(), "rtsp://other/x/track1");
}

#[test]
fn refuses_what_is_not_jpeg() {
    let h264 = SDP
        .replace("m=video 0 RTP/AVP 26", "m=video 0 RTP/AVP 96")
        .replace("a=rtpmap:26 JPEG/90000", "a=rtpmap:96 H264/90000");
    let e = description::read(h264.as_bytes(), &url("rtsp://h/x")).unwrap_err();
    assert!(e.to_string().contains("not Motion-JPEG"), "{e}");
    assert!(
        matches!(e, DescribeError::NotJpeg(ref f) if f == "96"),
        "{e:?}"
    );
    assert!(description::read(b"garbage", &url("rtsp://h/x")).is_err());
    // The fuzz target's find: sdp-types 0.1.8 panicked on this (a line without `=`).
    let crash = include_bytes!(
        "../../../../fuzz/regressions/rtsp_reply/sdp-types-assert-on-malformed-line.bin"
    );
    assert!(description::read(crash, &url("rtsp://h/x")).is_err());
    let audio = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
    assert!(matches!(
        description::read(audio, &url("rtsp://h/x")),
        Err(DescribeError::NoVideo)
    ));
}

#[test]
fn relative_control_against_content_base() {
    let d = described(
        "rtsp://h:8554/clip",
        "\r\nContent-Base: rtsp://h:8554/clip/",
        TWO_STREAMS,
    )
    .expect("description");
    assert_eq!(d.aggregate.as_str(), "rtsp://h:8554/clip/");
    let media = d.rtp_stream().expect("a stream");
    assert_eq!(
        d.control_url(media).expect("resolved").as_str(),
        "rtsp://h:8554/clip/streamid=0"
    );
    // The video stream, though audio comes first; its m= line: `video 26 RTP/AVP`.
    assert_eq!(
        (
            media.media.as_str(),
            media.formats.as_str(),
            media.proto.as_str()
        ),
        ("video", "26", "RTP/AVP")
    );
}

#[test]
fn content_base_with_and_without_its_trailing_slash() {
    for base in ["rtsp://h/live/cam", "rtsp://h/live/cam/"] {
        let d = described(
            "rtsp://h/x",
            &format!("\r\nContent-Base: {base}"),
            SDP.as_bytes(),
        )
        .expect("description");
        let stream = d.jpeg_video().expect("JPEG video");
        assert_eq!(
            stream.control.as_str(),
            "rtsp://h/live/cam/streamid=0",
            "{base}"
        );
        // `a=control:*` at the session level: the aggregate URL is the base as given.
        assert_eq!(stream.aggregate.as_str(), base);
    }
}

#[test]
fn content_base_comes_before_content_location_before_the_request_url() {
    let both = "\r\nContent-Location: rtsp://h/location/\r\nContent-Base: rtsp://h/base/";
    let d = described("rtsp://h/request", both, SDP.as_bytes()).expect("description");
    assert_eq!(d.base.as_str(), "rtsp://h/base/");
    let d = described(
        "rtsp://h/request",
        "\r\nContent-Location: rtsp://h/location/",
        SDP.as_bytes(),
    )
    .expect("description");
    assert_eq!(d.base.as_str(), "rtsp://h/location/");
    assert_eq!(
        d.jpeg_video().expect("video").control.as_str(),
        "rtsp://h/location/streamid=0"
    );
    // Content-Location may be relative to the request URL (RFC 2068 14.15).
    let d = described(
        "rtsp://h/dir/request",
        "\r\nContent-Location: clip/",
        SDP.as_bytes(),
    )
    .expect("description");
    assert_eq!(d.base.as_str(), "rtsp://h/dir/clip/");
    let d = described("rtsp://h/request", "", SDP.as_bytes()).expect("description");
    assert_eq!(d.base.as_str(), "rtsp://h/request");
    assert_eq!(
        d.jpeg_video().expect("video").control.as_str(),
        "rtsp://h/request/streamid=0"
    );
}

#[test]
fn absolute_control_and_request_url_base() {
    let sdp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
        m=video 0 RTP/AVP 26\r\na=control:rtsp://other/track1\r\n";
    let d = described("rtsp://h/clip.Mjpeg", "", sdp).expect("ok");
    assert_eq!(d.aggregate.as_str(), "rtsp://h/clip.Mjpeg");
    let media = d.rtp_stream().expect("a stream");
    assert_eq!(
        d.control_url(media).expect("resolved").as_str(),
        "rtsp://other/track1"
    );
}

#[test]
fn content_location_and_no_media_control() {
    let sdp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
        a=control:rtsp://h/agg\r\nm=video 0 RTP/AVP 26\r\n";
    let d = described("rtsp://h/a", "\r\nContent-Location: rtsp://h/b/", sdp).expect("ok");
    assert_eq!(d.base.as_str(), "rtsp://h/b/");
    assert_eq!(d.aggregate.as_str(), "rtsp://h/agg");
    // A single stream without a control of its own is controlled through the aggregate
    // URL (RFC 2326 C.4), as rtspsrc does it.
    let media = d.rtp_stream().expect("a stream");
    assert_eq!(
        d.control_url(media).expect("resolved").as_str(),
        "rtsp://h/agg"
    );
}

#[test]
fn a_star_is_the_base_url_at_either_level() {
    let sdp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\n\
        a=control:rtsp://h/agg\r\nm=video 0 RTP/AVP 26\r\na=control:*\r\n";
    let d = described("rtsp://h/a", "\r\nContent-Base: rtsp://h/base", sdp).expect("ok");
    assert_eq!(d.aggregate.as_str(), "rtsp://h/agg");
    assert_eq!(
        d.jpeg_video().expect("video").control.as_str(),
        "rtsp://h/base"
    );
    // Neither level has a control: everything goes to the base URL.
    let bare = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\n";
    let d = described("rtsp://h/a", "\r\nContent-Base: rtsp://h/base/", bare).expect("ok");
    let stream = d.jpeg_video().expect("video");
    assert_eq!(
        (stream.control.as_str(), stream.aggregate.as_str()),
        ("rtsp://h/base/", "rtsp://h/base/")
    );
    // A relative session-level control is resolved like a stream's.
    let relative = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\na=control:all\r\n\
        m=video 0 RTP/AVP 26\r\na=control:v\r\n";
    let d = described("rtsp://h/cam", "", relative).expect("ok");
    assert_eq!(d.aggregate.as_str(), "rtsp://h/cam/all");
    assert_eq!(
        d.jpeg_video().expect("video").control.as_str(),
        "rtsp://h/cam/v"
    );
}

#[test]
fn errors_are_reported_not_panicked() {
    assert!(matches!(
        described("rtsp://h/a", "", b"garbage"),
        Err(ReplyError::Describe(DescribeError::SdpLine(_)))
    ));
    assert!(matches!(
        described("rtsp://h/a", "\r\nContent-Base: not a url", TWO_STREAMS),
        Err(ReplyError::Describe(DescribeError::ContentBase { .. }))
    ));
    let no_rtp = b"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/SAVP 26\r\n";
    let d = described("rtsp://h/a", "", no_rtp).expect("an SDP");
    assert!(matches!(d.rtp_stream(), Err(DescribeError::NoRtpStream)));
    let bad_control = SDP.replace("a=control:streamid=0", "a=control:rtsp://[::1/x");
    let d = described("rtsp://h/a", "", bad_control.as_bytes()).expect("an SDP");
    let e = d.jpeg_video().unwrap_err();
    assert!(matches!(e, DescribeError::Control { ref control, .. } if control == "rtsp://[::1/x"));
    assert!(matches!(
        described("rtsp://h/a", "", &[0xff, 0xfe]),
        Err(ReplyError::Describe(DescribeError::SdpNotUtf8))
    ));
}

// Requests.

#[test]
fn requests_carry_typed_headers() {
    let u = url("rtsp://h:8554/clip.Mjpeg");
    let mut client = Client::new("test-client/1");
    let mut r = describe(&u);
    assert_eq!(client.prepare(&mut r), 1);
    let t = text(&r);
    assert!(
        t.starts_with("DESCRIBE rtsp://h:8554/clip.Mjpeg RTSP/1.0\r\n"),
        "{t}"
    );
    for line in [
        "CSeq: 1\r\n",
        "Accept: application/sdp\r\n",
        "User-Agent: test-client/1\r\n",
    ] {
        assert!(t.contains(line), "{line:?} missing in\n{t}");
    }
    assert!(!t.contains("Session"), "{t}");

    let control = url("rtsp://h:8554/clip.Mjpeg/streamid=0");
    let mut r = setup(&control, udp_transport(5000, 5001));
    assert_eq!(client.prepare(&mut r), 2);
    let t = text(&r);
    assert!(
        t.contains("Transport: RTP/AVP;unicast;client_port=5000-5001\r\n"),
        "{t}"
    );
    let r = setup(&control, tcp_transport(0, 1));
    assert!(text(&r).contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n"));
    let r = setup(&control, multicast_transport());
    assert!(text(&r).contains("Transport: RTP/AVP;multicast\r\n"));

    assert!(text(&options(None)).starts_with("OPTIONS * RTSP/1.0\r\n"));
    assert!(text(&options(Some(&u))).starts_with("OPTIONS rtsp://h:8554/clip.Mjpeg RTSP/1.0"));
    for (request, method) in [
        (pause(&u), "PAUSE"),
        (get_parameter(&u), "GET_PARAMETER"),
        (teardown(&u), "TEARDOWN"),
        (play(&u, None), "PLAY"),
    ] {
        let t = text(&request);
        assert!(t.starts_with(&format!("{method} {u} RTSP/1.0\r\n")), "{t}");
        assert!(!t.contains("Range"), "{t}");
    }
}

#[test]
fn a_publisher_announces_sets_up_for_record_and_records() {
    let u = url("rtsp://h:8554/in");
    let mut client = Client::new("pusher/1");
    let mut r = announce(&u, SDP.as_bytes().to_vec());
    assert_eq!(client.prepare(&mut r), 1);
    let t = text(&r);
    assert!(
        t.starts_with("ANNOUNCE rtsp://h:8554/in RTSP/1.0\r\n"),
        "{t}"
    );
    for line in [
        "Content-Type: application/sdp\r\n".to_string(),
        format!("Content-Length: {}\r\n", SDP.len()),
    ] {
        assert!(t.contains(&line), "{line:?} missing in\n{t}");
    }
    assert!(t.ends_with(SDP), "{t}");
    // The request reads back as an ANNOUNCE whose body is the description.
    match Message::<Vec<u8>>::parse(t.as_bytes()) {
        Ok((Message::Request(back), used)) => {
            assert_eq!(used, t.len());
            assert_eq!(back.body(), SDP.as_bytes());
        }
        other => panic!("{other:?}"),
    }
    // The control URL of the announced stream, as RFC 2326 C.1.1 resolves it.
    let stream = description::read(SDP.as_bytes(), &u).unwrap();
    assert_eq!(stream.control.as_str(), "rtsp://h:8554/in/streamid=0");
    let t = text(&setup(&stream.control, tcp_record_transport(0, 1)));
    assert!(
        t.contains("Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=\"record\"\r\n"),
        "{t}"
    );
    // Read back (by this crate's server side too) as a request to record.
    assert!(crate::transport::asks_record(
        match Message::<Vec<u8>>::parse(t.as_bytes()) {
            Ok((Message::Request(back), _)) => back,
            other => panic!("{other:?}"),
        }
    ));
    assert!(text(&record(&stream.aggregate)).starts_with("RECORD rtsp://h:8554/in RTSP/1.0\r\n"));
}

#[test]
fn play_ranges_are_npt_to_the_millisecond() {
    let u = url("rtsp://h/x");
    let range = |from: f64| {
        play(&u, Some(from))
            .header(&rtsp_types::headers::RANGE)
            .map(|v| v.as_str().to_string())
    };
    assert_eq!(range(0.0).as_deref(), Some("npt=0-"));
    assert_eq!(range(12.5).as_deref(), Some("npt=12.500000000-"));
    assert_eq!(range(3.0004).as_deref(), Some("npt=3-"));
    assert_eq!(range(-4.0).as_deref(), Some("npt=0-"));
    assert_eq!(range(f64::NAN).as_deref(), Some("npt=0-"));
    // What the server's own reader makes of them.
    let read = |from: f64| crate::range::parse(&npt_from(from).to_string()).map(|r| r.start);
    assert_eq!(read(12.5), Ok(Some(12.5)));
    assert_eq!(read(61.25), Ok(Some(61.25)));
}

// Replies.

#[test]
fn a_setup_reply_gives_the_session_and_the_servers_transport() {
    let r = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1A2B3C;timeout=30\r\n\
         Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1A",
        b"",
    );
    let setup = read_setup(&r).expect("setup");
    assert_eq!(setup.session, Session("1A2B3C".into(), Some(30)));
    assert_eq!(
        setup.transport,
        Some(ServerTransport {
            server_port: Some((6970, Some(6971))),
            interleaved: None,
            multicast: None
        })
    );
    let r = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc\r\n\
         Transport: RTP/AVP/TCP;unicast;interleaved=2-3",
        b"",
    );
    let setup = read_setup(&r).expect("setup");
    assert_eq!(setup.session, Session("abc".into(), None));
    assert_eq!(
        setup.transport.and_then(|t| t.interleaved),
        Some((2, Some(3)))
    );
    // No Transport header: the client keeps what it asked for.
    let r = reply("RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc", b"");
    assert_eq!(read_setup(&r).expect("setup").transport, None);
}

#[test]
fn a_setup_reply_without_a_usable_session_or_transport_is_an_error() {
    let r = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast",
        b"",
    );
    assert!(matches!(read_setup(&r), Err(ReplyError::NoSession)));
    let r = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc;timeout=soon",
        b"",
    );
    assert!(matches!(read_setup(&r), Err(ReplyError::BadSession(s)) if s == "abc;timeout=soon"));
    let r = reply("RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: ;timeout=60", b"");
    assert!(matches!(read_setup(&r), Err(ReplyError::BadSession(_))));
    // rtsp-types asserts on this quoted address: refused before it is parsed.
    let r = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc\r\nTransport: RTP/AVP;dest_addr=\"\\\"",
        b"",
    );
    assert!(matches!(read_setup(&r), Err(ReplyError::BadTransport(_))));
}

#[test]
fn the_client_numbers_requests_and_carries_the_session() {
    let mut client = Client::new("c");
    assert_eq!(client.keepalive_interval(), Duration::from_secs(30));
    let mut r = play(&url("rtsp://h/x"), Some(0.0));
    client.prepare(&mut r);
    let setup_reply = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\nSession: 42;timeout=10\r\n\
         Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971",
        b"",
    );
    assert!(client.answers(&setup_reply));
    client.read_setup(&setup_reply).expect("setup");
    assert_eq!(client.session(), Some(&Session("42".into(), Some(10))));
    assert_eq!(client.keepalive_interval(), Duration::from_secs(5));
    // Later requests carry the id alone; a request prepared again gets a new CSeq.
    let mut r = play(&url("rtsp://h/x"), Some(0.0));
    assert_eq!(client.prepare(&mut r), 2);
    assert_eq!(client.prepare(&mut r), 3);
    assert_eq!(r.header(&SESSION).map(|v| v.as_str()), Some("42"));
    assert_eq!(r.header(&CSEQ).map(|v| v.as_str()), Some("3"));
    assert_eq!(r.header(&USER_AGENT).map(|v| v.as_str()), Some("c"));
    // Replies to earlier requests are not this one's; one without CSeq is taken.
    assert!(!client.answers(&reply("RTSP/1.0 200 OK\r\nCSeq: 2", b"")));
    assert!(client.answers(&reply("RTSP/1.0 200 OK\r\nCSeq: 3", b"")));
    assert!(client.answers(&reply("RTSP/1.0 200 OK", b"")));
    client.end_session();
    client.prepare(&mut r);
    assert!(r.header(&SESSION).is_none());
    // A timeout of 1 s still leaves a second between keep-alives.
    let short = reply("RTSP/1.0 200 OK\r\nSession: 7;timeout=1", b"");
    client.read_setup(&short).expect("setup");
    assert_eq!(client.keepalive_interval(), Duration::from_secs(1));
}

#[test]
fn statuses_and_public_methods() {
    let ok = reply(
        "RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, GET_PARAMETER",
        b"",
    );
    assert!(check_status(&Method::Options, &ok).is_ok());
    assert_eq!(offers(&ok, &Method::GetParameter), Some(true));
    assert_eq!(offers(&ok, &Method::Pause), Some(false));
    let missing = reply("RTSP/1.0 404 Not Found\r\nCSeq: 2", b"");
    assert_eq!(offers(&missing, &Method::GetParameter), None);
    let e = check_status(&Method::Describe, &missing).unwrap_err();
    assert!(matches!(
        e,
        ReplyError::Status {
            status: StatusCode::NotFound,
            ..
        }
    ));
    assert_eq!(
        e.to_string(),
        "the server answered DESCRIBE with 404 Not Found"
    );
}
