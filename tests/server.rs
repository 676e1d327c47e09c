//! mjpeg-rtsp-server end to end: real clients (ffprobe, ffmpeg, GStreamer's rtspsrc) over
//! UDP and TCP, and a raw RTSP client that checks the exact replies, the packets, PAUSE,
//! PLAY with Range, TEARDOWN, RTCP, every error status, and the lab dialect. The real
//! clients are in `server/clients.rs`, folders and the lab dialect in `server/lab.rs`.
//!
//! The server binary must be built first: `cargo build -p mjpeg-rtsp-apps`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

#[path = "server/clients.rs"]
mod clients;
#[path = "server/lab.rs"]
mod lab;

/// Frames of the test clip: distinct images (the ball moves), 320x240.
const FRAMES: usize = 60;

fn frames() -> &'static [Vec<u8>] {
    static FRAMES_: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES_.get_or_init(|| {
        let frames = encode_jpegs(FRAMES, 320, 240, "ball");
        let scans: std::collections::HashSet<Vec<u8>> =
            frames.iter().map(|f| scan_data(f)).collect();
        assert_eq!(
            scans.len(),
            FRAMES,
            "the test clip's frames are not all different"
        );
        frames
    })
}

/// The clip number `k` of the test clip is this received frame (same scan data).
fn assert_frame(received: &[u8], k: usize) {
    assert!(
        scan_data(received) == scan_data(&frames()[k]),
        "the received frame is not frame {k} of the clip"
    );
}

/// A server serving `clip.Mjpeg` (the test clip) with `options`.
fn serve(options: &[&str]) -> Served {
    rtsp::serve(frames(), options)
}

fn setup_udp(served: &Served) -> UdpSession {
    setup_udp_at(served, &format!("{}/streamid=0", served.url))
}

/// SETUP on `target` (the media's control URL, or the clip's URL).
fn setup_udp_at(served: &Served, target: &str) -> UdpSession {
    UdpSession::setup(served.server.connect(), &served.url, target).0
}

/// PLAY (with `range`, if any): the reply and its RTP-Info seq and rtptime.
fn play(client: &mut Client, url: &str, id: &str, range: Option<&str>) -> (Reply, u16, u32) {
    let mut headers = vec![("Session", id)];
    if let Some(range) = range {
        headers.push(("Range", range));
    }
    let reply = client.request("PLAY", url, &headers);
    reply.assert_status(200);
    let seq = reply.param("RTP-Info", "seq").expect("RTP-Info seq");
    let rtptime = reply
        .param("RTP-Info", "rtptime")
        .expect("RTP-Info rtptime");
    (reply, seq.parse().unwrap(), rtptime.parse().unwrap())
}

/// Packets that arrive within `wait` after a PAUSE or TEARDOWN reply: at most the rest of
/// the frame that was being sent.
fn assert_stopped(rtp: &UdpReceiver, wait: Duration, what: &str) -> Vec<RtpPacket> {
    let late = rtp.recv_for(wait);
    let mut stamps: Vec<u32> = late.iter().map(|p| p.ts).collect();
    stamps.dedup();
    assert!(
        stamps.len() <= 1,
        "{} packets of {} frames arrived in the {wait:?} after {what}",
        late.len(),
        stamps.len()
    );
    late
}

/// Waits for an RTCP BYE from `ssrc` (skipping sender reports).
fn wait_for_bye(rtcp: &UdpReceiver, ssrc: u32) {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let (data, _, _) = rtcp.recv_datagram(deadline).expect("an RTCP BYE");
        let summary = rtcp_summary(&data);
        if !summary.byes.is_empty() {
            assert_eq!(summary.byes, vec![ssrc], "{summary:?}");
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The raw client.

#[test]
fn conversation_has_the_exact_headers() {
    let served = serve(&[]);
    let port = served.server.addr.port();
    assert_eq!(served.url, format!("rtsp://127.0.0.1:{port}/clip.Mjpeg"));
    let mut client = served.server.connect();

    let reply = client.request("OPTIONS", "*", &[]);
    reply.assert_status(200);
    assert_eq!(
        reply.header("Public"),
        Some("OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER")
    );

    let reply = client.request("DESCRIBE", &served.url, &[("Accept", "application/sdp")]);
    reply.assert_status(200);
    let base = format!("{}/", served.url);
    assert_eq!(reply.header("Content-Base"), Some(base.as_str()));
    assert_eq!(reply.header("Content-Type"), Some("application/sdp"));
    let length = reply.body.len().to_string();
    assert_eq!(reply.header("Content-Length"), Some(length.as_str()));
    let sdp = String::from_utf8(reply.body.clone()).expect("SDP text");
    sdp_types::Session::parse(sdp.as_bytes()).expect("valid SDP");
    for line in [
        "m=video 0 RTP/AVP 26",
        "a=rtpmap:26 JPEG/90000",
        "a=control:streamid=0",
        "a=framerate:20",
        "a=range:npt=0-3.000",
    ] {
        assert!(sdp.lines().any(|l| l == line), "no {line:?} in\n{sdp}");
    }
    assert!(!sdp.contains("x-dimensions"), "{sdp}");

    let (rtp, rtcp) = udp_pair();
    let (a, b) = (rtp.port(), rtcp.port());
    let reply = client.setup_udp(&format!("{base}streamid=0"), &rtp, &rtcp);
    let ssrc = reply.param("Transport", "ssrc").expect("ssrc");
    assert!(
        ssrc.len() == 8 && ssrc.chars().all(|c| c.is_ascii_hexdigit()),
        "ssrc {ssrc}"
    );
    let server_port = reply
        .param("Transport", "server_port")
        .expect("server_port");
    let (p, q) = server_port.split_once('-').unwrap();
    let (p, q): (u16, u16) = (p.parse().unwrap(), q.parse().unwrap());
    assert_eq!(q, p + 1, "server_port {server_port}");
    assert_eq!(
        reply.header("Transport").unwrap(),
        format!("RTP/AVP;unicast;ssrc={ssrc};client_port={a}-{b};server_port={p}-{q}")
    );
    let ssrc = u32::from_str_radix(&ssrc, 16).unwrap();
    let session = reply.header("Session").expect("Session").to_string();
    let id = reply.session();
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "session id {id}"
    );
    assert_eq!(session, format!("{id};timeout=60"));
    let from = client.stream.local_addr().unwrap().to_string();
    served.server.wait_for_session(
        &id,
        &format!("set up from {from}"),
        |s| {
            s["client"] == from.as_str()
                && s["path"] == "clip.Mjpeg"
                && s["dialect"] == "rtsp"
                && s["transport"] == "udp"
                && s["state"] == "ready"
        },
        REPLY_TIMEOUT,
    );

    for method in ["GET_PARAMETER", "SET_PARAMETER"] {
        let reply = client.request(method, &served.url, &[("Session", &id)]);
        reply.assert_status(200);
        assert_eq!(reply.session(), id, "{method}");
    }
    assert!(
        rtp.recv(Instant::now() + Duration::from_millis(100))
            .is_none(),
        "packets before PLAY"
    );

    let reply = client.request("PLAY", &served.url, &[("Session", &id)]);
    reply.assert_status(200);
    assert_eq!(reply.header("Range"), Some("npt=0.000-3.000"));
    assert_eq!(reply.header("Session"), Some(session.as_str()));
    let seq: u16 = reply.param("RTP-Info", "seq").unwrap().parse().unwrap();
    let rtptime: u32 = reply.param("RTP-Info", "rtptime").unwrap().parse().unwrap();
    assert_eq!(
        reply.header("RTP-Info").unwrap(),
        format!("url={base}streamid=0;seq={seq};rtptime={rtptime}")
    );

    let (first, from, _) = rtp
        .recv_datagram(Instant::now() + REPLY_TIMEOUT)
        .expect("a packet after PLAY");
    assert_eq!(
        from,
        format!("127.0.0.1:{p}").parse().unwrap(),
        "RTP source"
    );
    let first = RtpPacket::parse(&first, Instant::now());
    assert_eq!(
        (
            first.version,
            first.payload_type,
            first.seq,
            first.ts,
            first.ssrc
        ),
        (2, 26, seq, rtptime, ssrc),
        "the first packet does not match RTP-Info and Transport"
    );
    let mut packets = vec![first];
    packets.extend(rtp.recv_frames(3, REPLY_TIMEOUT));
    for (i, pair) in packets.windows(2).enumerate() {
        assert_eq!(
            pair[1].seq,
            pair[0].seq.wrapping_add(1),
            "seq gap after packet {i}"
        );
    }
    let frames = depayload(&packets);
    assert!(frames.len() >= 3);
    for (k, frame) in frames.iter().enumerate() {
        assert_frame(&frame.jpeg, k);
        assert_eq!(
            frame.ts,
            rtptime.wrapping_add(k as u32 * 4500),
            "frame {k} timestamp"
        );
    }

    // Sender reports (with SDES) from server_port q to the client's RTCP port b.
    let (report, from, _) = rtcp
        .recv_datagram(Instant::now() + REPLY_TIMEOUT)
        .expect("a sender report");
    assert_eq!(
        from,
        format!("127.0.0.1:{q}").parse().unwrap(),
        "RTCP source"
    );
    let summary = rtcp_summary(&report);
    assert_eq!(summary.sender_reports, vec![ssrc], "{summary:?}");
    assert_eq!(summary.sdes, vec![ssrc], "{summary:?}");

    let reply = client.request("TEARDOWN", &served.url, &[("Session", &id)]);
    reply.assert_status(200);
    wait_for_bye(&rtcp, ssrc);
    let closed = served.server.wait_for_closed(&id, REPLY_TIMEOUT);
    assert_eq!(closed["reason"], "teardown", "{closed}");
}

#[test]
fn teardown_stops_packets_and_says_bye() {
    let served = serve(&["--fps", "50", "--mtu", "500"]);
    // SETUP on the clip's URL itself.
    let mut s = setup_udp_at(&served, &served.url);
    let (_, _, rtptime) = play(&mut s.client, &served.url, &s.id, None);
    let packets = s.rtp.recv_frames(5, REPLY_TIMEOUT);
    assert!(
        packets.iter().all(|p| 12 + p.payload.len() <= 500),
        "packets larger than --mtu 500"
    );
    for (k, frame) in depayload(&packets).iter().enumerate() {
        assert_frame(&frame.jpeg, k);
        assert_eq!(frame.ts, rtptime.wrapping_add(k as u32 * 1800));
    }
    s.client
        .request("TEARDOWN", &served.url, &[("Session", &s.id)])
        .assert_status(200);
    assert_stopped(&s.rtp, Duration::from_millis(600), "TEARDOWN");
    wait_for_bye(&s.rtcp, s.ssrc);
    let closed = served.server.wait_for_closed(&s.id, REPLY_TIMEOUT);
    assert_eq!(closed["reason"], "teardown", "{closed}");
    s.client
        .request("PLAY", &served.url, &[("Session", &s.id)])
        .assert_status(454);
}

#[test]
fn ctrl_c_says_bye_to_every_session_and_exits_cleanly() {
    let mut served = serve(&["--fps", "50", "--loop"]);
    let mut sessions: Vec<_> = (0..2).map(|_| setup_udp(&served)).collect();
    for s in &mut sessions {
        play(&mut s.client, &served.url, &s.id, None);
        s.rtp.recv_frames(2, REPLY_TIMEOUT);
    }
    let status = served.server.interrupt(REPLY_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "exit: {status:?}");
    for s in &sessions {
        wait_for_bye(&s.rtcp, s.ssrc);
    }
    // The last report, made at exit, says how every session ended.
    let last = served.server.final_stats(REPLY_TIMEOUT);
    assert_eq!(last["sessions"], serde_json::json!([]), "{last}");
    let closed = last["closed"].as_array().expect("closed[]");
    for s in &sessions {
        let entry = closed
            .iter()
            .find(|c| c["id"] == s.id.as_str())
            .unwrap_or_else(|| panic!("session {} not closed in {last}", s.id));
        assert_eq!(entry["reason"], "server shutting down", "{last}");
    }
}

#[test]
fn pause_stops_packets_and_play_resumes_with_the_next_seq() {
    let served = serve(&["--fps", "50"]);
    let mut s = setup_udp(&served);
    let (_, seq0, ts0) = play(&mut s.client, &served.url, &s.id, None);
    let mut before = s.rtp.recv_frames(8, REPLY_TIMEOUT);
    assert_eq!((before[0].seq, before[0].ts), (seq0, ts0));
    s.client
        .request("PAUSE", &served.url, &[("Session", &s.id)])
        .assert_status(200);
    before.extend(assert_stopped(&s.rtp, Duration::from_millis(600), "PAUSE"));
    let last = before.last().unwrap().clone();
    for (i, pair) in before.windows(2).enumerate() {
        assert_eq!(
            pair[1].seq,
            pair[0].seq.wrapping_add(1),
            "seq gap after packet {i}"
        );
    }
    assert!(last.marker, "PAUSE cut a frame short");
    let paused_frame = ((last.ts.wrapping_sub(ts0)) / 1800) as usize;

    let (reply, seq, rtptime) = play(&mut s.client, &served.url, &s.id, None);
    assert_eq!(
        seq,
        last.seq.wrapping_add(1),
        "RTP-Info seq after PAUSE:\n{}",
        reply.text()
    );
    assert_eq!(
        rtptime,
        last.ts.wrapping_add(1800),
        "RTP-Info rtptime after PAUSE"
    );
    let after = s.rtp.recv_frames(3, REPLY_TIMEOUT);
    assert_eq!(
        (after[0].seq, after[0].ts),
        (seq, rtptime),
        "first packet after PLAY"
    );
    let frames = depayload(&after);
    for (i, frame) in frames.iter().enumerate() {
        assert_frame(&frame.jpeg, paused_frame + 1 + i);
    }
    s.client
        .request("TEARDOWN", &served.url, &[("Session", &s.id)])
        .assert_status(200);
}

#[test]
fn range_seeks_land_on_the_right_frame() {
    // 20 frames/s: frame k at k * 4500 ticks.
    let served = serve(&[]);
    let mut s = setup_udp(&served);

    // From READY: npt=0.5 is frame 10.
    let (reply, seq, t10) = play(&mut s.client, &served.url, &s.id, Some("npt=0.5-"));
    assert_eq!(reply.header("Range"), Some("npt=0.500-3.000"));
    let packets = s.rtp.recv_frames(2, REPLY_TIMEOUT);
    assert_eq!((packets[0].seq, packets[0].ts), (seq, t10));
    let frames = depayload(&packets);
    assert_frame(&frames[0].jpeg, 10);
    assert_frame(&frames[1].jpeg, 11);
    assert_eq!(frames[1].ts, t10.wrapping_add(4500));

    // While playing: npt=1.27-1.61 is frames 25 (floor 25.4) up to 32 (before ceil 32.2).
    let (reply, _, t25) = play(&mut s.client, &served.url, &s.id, Some("npt=1.27-1.61"));
    let range = reply.header("Range").unwrap_or_default();
    assert!(
        ["npt=1.250-1.650", "npt=1.270-1.610"].contains(&range),
        "{}",
        reply.text()
    );
    assert_eq!(
        t25,
        t10.wrapping_add(15 * 4500),
        "RTP-Info rtptime of frame 25"
    );
    // Up to the last packet of frame 32, then the RTCP BYE that ends the range, and
    // nothing after it.
    let t32 = t25.wrapping_add(7 * 4500);
    let mut packets = s.rtp.recv_until(Instant::now() + REPLY_TIMEOUT, |p| {
        p.last().is_some_and(|p| p.ts == t32 && p.marker)
    });
    wait_for_bye(&s.rtcp, s.ssrc);
    let after = s.rtp.recv_for(Duration::from_millis(200));
    assert!(
        after.is_empty(),
        "{} packets after the range's end",
        after.len()
    );
    let start = packets
        .iter()
        .position(|p| p.ts == t25)
        .expect("frame 25 was sent");
    packets.drain(..start);
    let frames = depayload(&packets);
    let got: Vec<u32> = frames
        .iter()
        .map(|f| f.ts.wrapping_sub(t10) / 4500 + 10)
        .collect();
    assert_eq!(
        got,
        (25..33).collect::<Vec<u32>>(),
        "frames of npt=1.27-1.61"
    );
    for (frame, k) in frames.iter().zip(25..) {
        assert_frame(&frame.jpeg, k);
    }

    // After the end of the range: back to the start, and to the last frame.
    let (_, _, t0) = play(&mut s.client, &served.url, &s.id, Some("npt=0-"));
    assert_eq!(t0, t10.wrapping_sub(10 * 4500));
    let frames = depayload(&s.rtp.recv_frames(1, REPLY_TIMEOUT));
    assert_eq!(frames[0].ts, t0);
    assert_frame(&frames[0].jpeg, 0);
    let (_, _, t59) = play(&mut s.client, &served.url, &s.id, Some("npt=2.96-"));
    assert_eq!(t59, t0.wrapping_add(59 * 4500));
    let packets = s.rtp.recv_until(Instant::now() + REPLY_TIMEOUT, |p| {
        p.last().is_some_and(|p| p.ts == t59 && p.marker)
    });
    let start = packets.iter().position(|p| p.ts == t59).expect("frame 59");
    let frames = depayload(&packets[start..]);
    assert_eq!(frames.len(), 1);
    assert_frame(&frames[0].jpeg, 59);
}

#[test]
fn receiver_reports_are_recorded() {
    let served = serve(&["--no-adapt", "--fps", "50"]);
    let mut s = setup_udp(&served);
    play(&mut s.client, &served.url, &s.id, None);
    s.rtp.recv_frames(2, REPLY_TIMEOUT);
    // 64/256 lost = 25 %, 7 packets, jitter 90 ticks = 1 ms.
    let report = receiver_report(0x1234_5678, s.ssrc, 64, 7);
    s.rtcp
        .socket
        .send_to(&report, ("127.0.0.1", s.server_ports.1))
        .unwrap();
    let from = s.client.stream.local_addr().unwrap().to_string();
    let session = served.server.wait_for_session(
        &s.id,
        "with a receiver report",
        |s| s["receiver_report"]["reports"] == 1,
        REPLY_TIMEOUT,
    );
    assert_eq!(session["client"], from.as_str(), "{session}");
    let rr = &session["receiver_report"];
    assert_eq!(rr["fraction_lost"], 0.25, "{session}");
    assert_eq!(rr["cumulative_lost"], 7, "{session}");
    let jitter = rr["jitter_ms"].as_f64().expect("jitter_ms");
    assert!((jitter - 1.0).abs() < 0.005, "{session}");
}

#[test]
fn interleaved_tcp_carries_rtp_and_rtcp() {
    let served = serve(&["--no-adapt", "--fps", "50"]);
    let mut client = served.server.connect();
    let base = format!("{}/", served.url);
    let (ssrc, id) = client.setup_interleaved(&format!("{base}streamid=0"));
    let (reply, seq, rtptime) = play(&mut client, &served.url, &id, None);
    assert_eq!(
        reply.header("RTP-Info").unwrap(),
        format!("url={base}streamid=0;seq={seq};rtptime={rtptime}")
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while interleaved_rtp(&got, 0).iter().filter(|p| p.marker).count() < 5
        || !got.iter().any(|(c, _, _)| *c == 1)
    {
        got.push(
            client
                .read_interleaved(deadline)
                .expect("interleaved packets"),
        );
    }
    assert!(
        got.iter().all(|(c, _, _)| *c <= 1),
        "channels other than 0-1"
    );
    let packets = interleaved_rtp(&got, 0);
    assert_eq!(
        (packets[0].seq, packets[0].ts, packets[0].ssrc),
        (seq, rtptime, ssrc)
    );
    for pair in packets.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
    }
    for (k, frame) in depayload(&packets).iter().enumerate() {
        assert_frame(&frame.jpeg, k);
    }
    let report = got.iter().find(|(c, _, _)| *c == 1).unwrap();
    assert_eq!(rtcp_summary(&report.1).sender_reports, vec![ssrc]);

    // The client's receiver report on channel 1.
    let rr = receiver_report(0x0bad_cafe, ssrc, 0, 0);
    let mut framed = vec![b'$', 1];
    framed.extend_from_slice(&(rr.len() as u16).to_be_bytes());
    framed.extend_from_slice(&rr);
    client.send_raw(&framed);
    let session = served.server.wait_for_session(
        &id,
        "with a receiver report",
        |s| s["receiver_report"]["reports"] == 1,
        REPLY_TIMEOUT,
    );
    assert_eq!(session["transport"], "tcp", "{session}");
    assert_eq!(
        session["receiver_report"]["fraction_lost"], 0.0,
        "{session}"
    );
    client
        .request("TEARDOWN", &served.url, &[("Session", &id)])
        .assert_status(200);
}

// ---------------------------------------------------------------------------------------
// Errors.

/// Sends `request` (with `{url}` and `{base}` replaced) on a new connection; the reply.
fn raw(served: &Served, request: &str) -> (Reply, Client) {
    let mut client = served.server.connect();
    let text = request
        .replace("{url}", &served.url)
        .replace("{base}", &served.server.base());
    client.send_raw(text.as_bytes());
    (client.read_reply(REPLY_TIMEOUT), client)
}

#[test]
fn errors_without_a_session() {
    let served = serve(&[]);
    let (reply, mut client) = raw(&served, "GARBAGE\x01 \r\nCSeq: 7\r\n\r\n");
    reply.assert_status(400);
    assert_eq!(reply.cseq(), Some(7));
    assert!(
        client.wait_closed(REPLY_TIMEOUT),
        "the connection stays open after a 400"
    );

    let (reply, _) = raw(&served, "OPTIONS * RTSP/1.0\r\n\r\n");
    reply.assert_status(400);

    let (reply, _) = raw(
        &served,
        "DESCRIBE {base}/nothing.Mjpeg RTSP/1.0\r\nCSeq: 3\r\n\r\n",
    );
    reply.assert_status(404);
    assert_eq!(reply.cseq(), Some(3));

    for method in ["ANNOUNCE", "RECORD"] {
        let (reply, _) = raw(
            &served,
            &format!("{method} {{url}} RTSP/1.0\r\nCSeq: 4\r\n\r\n"),
        );
        reply.assert_status(405);
        assert_eq!(reply.cseq(), Some(4));
        let allow = reply
            .header("Allow")
            .unwrap_or_else(|| panic!("no Allow:\n{}", reply.text()));
        assert!(
            allow.contains("PLAY") && allow.contains("DESCRIBE"),
            "Allow: {allow}"
        );
    }

    let (reply, _) = raw(&served, "FLY {url} RTSP/1.0\r\nCSeq: 5\r\n\r\n");
    reply.assert_status(501);
    assert_eq!(reply.cseq(), Some(5));

    let (reply, _) = raw(&served, "OPTIONS * RTSP/2.0\r\nCSeq: 6\r\n\r\n");
    reply.assert_status(505);
    assert_eq!(reply.cseq(), Some(6));

    // The server still serves.
    let mut client = served.server.connect();
    client
        .request("DESCRIBE", &served.url, &[])
        .assert_status(200);
}

#[test]
fn session_errors() {
    let served = serve(&["--fps", "50"]);
    let mut client = served.server.connect();
    for method in ["PLAY", "PAUSE", "TEARDOWN"] {
        client.request(method, &served.url, &[]).assert_status(454);
        client
            .request(method, &served.url, &[("Session", "0123456789ABCDEF")])
            .assert_status(454);
    }
    // (Multicast is served: tests/multicast.rs, in a network namespace of its own.)
    for transport in [
        "RTP/AVP;unicast;destination=192.0.2.9;client_port=5000-5001",
        "RTP/SAVP;unicast;client_port=5000-5001",
        "RTP/AVP;unicast",
    ] {
        let reply = client.request("SETUP", &served.url, &[("Transport", transport)]);
        assert_eq!(reply.status, 461, "{transport}:\n{}", reply.text());
    }

    let mut s = setup_udp(&served);
    // The clip lasts 60 / 50 = 1.2 s.
    for range in ["npt=1.2-", "npt=100-"] {
        s.client
            .request("PLAY", &served.url, &[("Session", &s.id), ("Range", range)])
            .assert_status(457);
    }
    play(&mut s.client, &served.url, &s.id, None);
    let transport = udp_transport(&s.rtp, &s.rtcp);
    s.client
        .request(
            "SETUP",
            &format!("{}/streamid=0", served.url),
            &[("Session", &s.id), ("Transport", &transport)],
        )
        .assert_status(455);
    // The session still plays.
    s.rtp.recv_frames(2, REPLY_TIMEOUT);
}
