//! Published paths (`--publish NAME`) end to end: ffmpeg (`-f rtsp`) and GStreamer's
//! `rtspclientsink` publish over UDP and TCP, and ffmpeg, rtspsrc and mjpeg-player read;
//! a second publisher refused (or taking over with `--publish-takeover`); a publisher
//! that vanishes and returns while a viewer keeps its session; bad ANNOUNCEs and garbage
//! RTP answered or counted while the server serves others.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// A process the test started, killed when the test is done with it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Ends it with SIGINT (ffmpeg then sends TEARDOWN) and waits for it.
    fn interrupt(mut self) {
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `ffmpeg -f rtsp` publishing a 320x240 test pattern at 25 frames/s. RFC 2435 carries
/// only the standard Huffman tables, which ffmpeg's muxer insists on.
fn ffmpeg_publisher(url: &str, transport: &str) -> Running {
    Running(
        Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25",
                "-pix_fmt",
                "yuvj420p",
                "-c:v",
                "mjpeg",
                "-huffman",
                "default",
                "-f",
                "rtsp",
                "-rtsp_transport",
                transport,
                url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg runs"),
    )
}

/// `rtspclientsink` publishing a live test pattern.
fn gst_publisher(url: &str, protocols: &str) -> Running {
    Running(
        Command::new("gst-launch-1.0")
            .args(["-q", "videotestsrc", "is-live=true", "!"])
            .args([
                "video/x-raw,format=I420,width=320,height=240,framerate=25/1",
                "!",
            ])
            .args(["jpegenc", "!", "rtspclientsink"])
            .arg(format!("location={url}"))
            .arg(format!("protocols={protocols}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0 runs (gstreamer1.0-rtsp for rtspclientsink)"),
    )
}

fn publishers_on(report: &Value, name: &str) -> Vec<Value> {
    report["publishers"]
        .as_array()
        .map(|all| all.iter().filter(|p| p["path"] == name).cloned().collect())
        .unwrap_or_default()
}

/// Waits until a publisher records on `name` and the path has made `frames` more
/// frames than `after`; returns the publisher's entry.
fn wait_recording(server: &ServerProcess, name: &str, after: u64, frames: u64) -> Value {
    let report = server.wait_for_stats(
        &format!("a publisher recording on {name} and {frames} frames"),
        |r| {
            publishers_on(r, name)
                .iter()
                .any(|p| p["state"] == "recording")
                && path_in(r, name)["frames_in"].as_u64().unwrap_or(0) >= after + frames
        },
        WAIT,
    );
    publishers_on(&report, name)
        .into_iter()
        .find(|p| p["state"] == "recording")
        .unwrap_or(Value::Null)
}

fn frames_in(server: &ServerProcess, name: &str) -> u64 {
    path_in(&server.fresh_stats(REPLY_TIMEOUT), name)["frames_in"]
        .as_u64()
        .unwrap_or(0)
}

fn ffmpeg_reads(url: &str, transport: &str, frames: u32) {
    let (status, _, err) = run_to_end(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            transport,
            "-i",
            url,
            "-frames:v",
            &frames.to_string(),
            "-f",
            "null",
            "-",
        ]),
        WAIT,
    );
    assert!(
        status.success(),
        "ffmpeg reading {url} over {transport}: {err}"
    );
}

fn player_reads(url: &str, frames: u32) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("stats.json");
    let (status, _, err) = run_to_end(
        Command::new(plugin_dir().join("mjpeg-player"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .args([
                "--headless",
                "--frames",
                &frames.to_string(),
                "--stats-json",
            ])
            .arg(&json)
            .arg(url),
        WAIT,
    );
    assert!(status.success(), "mjpeg-player: {err}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn ffmpeg_publishes_over_tcp_and_udp_and_ffmpeg_reads() {
    let server = ServerProcess::start_with_stats(&["--publish", "phone"], 1);
    let url = server.url("phone");
    let mut after = 0;
    for transport in ["tcp", "udp"] {
        let publisher = ffmpeg_publisher(&url, transport);
        let entry = wait_recording(&server, "phone", after, 10);
        assert_eq!(entry["transport"], transport, "{entry}");
        ffmpeg_reads(&url, "tcp", 30);
        ffmpeg_reads(&url, "udp", 30);
        let report = server.fresh_stats(REPLY_TIMEOUT);
        let path = path_in(&report, "phone");
        assert_eq!(
            (path["width"].as_u64(), path["height"].as_u64()),
            (Some(320), Some(240))
        );
        let entry = &publishers_on(&report, "phone")[0];
        assert_eq!(entry["packets_dropped"], 0, "{entry}");
        let id = entry["id"].as_str().unwrap().to_string();
        publisher.interrupt();
        let closed = server.wait_for_closed(&id, WAIT);
        assert_eq!(closed["path"], "phone");
        after = frames_in(&server, "phone");
    }
}

#[test]
fn rtspclientsink_publishes_over_tcp_and_udp_read_by_rtspsrc_and_mjpeg_player() {
    let server = ServerProcess::start_with_stats(&["--publish", "cam"], 1);
    let url = server.url("cam");
    let mut after = 0;
    for protocols in ["tcp", "udp"] {
        let publisher = gst_publisher(&url, protocols);
        let entry = wait_recording(&server, "cam", after, 10);
        assert_eq!(entry["transport"], protocols, "{entry}");
        mjpeg_rtsp_tests::rtspsrc_decodes(&url, None, 25, WAIT).expect("rtspsrc decodes");
        let played = player_reads(&url, 25);
        assert_eq!(played["frames_shown"], 25, "{played}");
        assert_eq!(played["packets_lost"], 0, "{played}");
        let id = entry["id"].as_str().unwrap().to_string();
        drop(publisher);
        let closed = server.wait_for_closed(&id, WAIT);
        assert_eq!(closed["reason"], "control connection closed", "{closed}");
        after = frames_in(&server, "cam");
    }
}

/// The SDP ffmpeg announces.
const JPEG_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\na=control:streamid=0\r\n";

fn announce(client: &mut Client, url: &str, content_type: &str, body: &[u8]) -> Reply {
    let cseq = client.next_cseq();
    // Keep the client's CSeq count in step: the raw request uses the next one.
    let mut text = format!(
        "ANNOUNCE {url} RTSP/1.0\r\nCSeq: {cseq}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    text.extend_from_slice(body);
    client.send_raw(&text);
    let reply = client.read_reply(REPLY_TIMEOUT);
    // Bump the client's own count with a keep-alive, checking the connection still works.
    let options = client.request("OPTIONS", url, &[]);
    options.assert_status(200);
    reply
}

/// ANNOUNCE, SETUP (TCP interleaved 0-1, mode=record) and RECORD by hand; the session.
fn raw_publisher(client: &mut Client, url: &str) -> String {
    announce(client, url, "application/sdp", JPEG_SDP.as_bytes()).assert_status(200);
    let setup = client.request(
        "SETUP",
        &format!("{url}/streamid=0"),
        &[(
            "Transport",
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
        )],
    );
    setup.assert_status(200);
    // RFC 2326 12.39 quotes the mode.
    assert_eq!(
        setup.param("Transport", "mode").as_deref(),
        Some("\"RECORD\"")
    );
    let id = setup.session();
    client
        .request("RECORD", url, &[("Session", &id)])
        .assert_status(200);
    id
}

#[test]
fn a_second_publisher_is_refused_unless_takeover() {
    let server = ServerProcess::start_with_stats(&["--publish", "phone"], 1);
    let url = server.url("phone");
    let mut first = server.connect();
    let first_id = raw_publisher(&mut first, &url);
    let mut second = server.connect();
    let refused = announce(&mut second, &url, "application/sdp", JPEG_SDP.as_bytes());
    refused.assert_status(455);
    assert!(
        refused
            .header("X-Error")
            .unwrap_or("")
            .contains("--publish-takeover"),
        "{}",
        refused.text()
    );
    // The first keeps the path.
    let report = server.fresh_stats(REPLY_TIMEOUT);
    assert_eq!(publishers_on(&report, "phone").len(), 1, "{report}");
    assert_eq!(publishers_on(&report, "phone")[0]["id"], first_id.as_str());
    drop(second);
    drop(first);
    server.wait_for_closed(&first_id, WAIT);

    let server = ServerProcess::start_with_stats(&["--publish", "phone", "--publish-takeover"], 1);
    let url = server.url("phone");
    let mut first = server.connect();
    let first_id = raw_publisher(&mut first, &url);
    let mut second = server.connect();
    let second_id = raw_publisher(&mut second, &url);
    let closed = server.wait_for_closed(&first_id, WAIT);
    assert_eq!(closed["reason"], "replaced by a new publisher");
    let report = server.fresh_stats(REPLY_TIMEOUT);
    let on = publishers_on(&report, "phone");
    assert_eq!(on.len(), 1, "{report}");
    assert_eq!(on[0]["id"], second_id.as_str());
}

#[test]
fn a_publisher_that_vanishes_and_returns_keeps_the_viewer_waiting() {
    let server = ServerProcess::start_with_stats(&["--publish", "phone"], 1);
    let url = server.url("phone");
    // The viewer comes first: DESCRIBE, SETUP and PLAY succeed with no publisher.
    let mut viewer = server.connect();
    viewer
        .request("DESCRIBE", &url, &[("Accept", "application/sdp")])
        .assert_status(200);
    let (mut s, _) = UdpSession::setup(viewer, &url, &format!("{url}/streamid=0"));
    s.client
        .request("PLAY", &url, &[("Session", &s.id)])
        .assert_status(200);
    let publisher = ffmpeg_publisher(&url, "tcp");
    let entry = wait_recording(&server, "phone", 0, 5);
    let first = s.rtp.recv_frames(10, WAIT);
    assert!(!first.is_empty());
    // The publisher vanishes (killed: its connection closes).
    drop(publisher);
    server.wait_for_closed(entry["id"].as_str().unwrap(), WAIT);
    let paused_at = frames_in(&server, "phone");
    // The viewer keeps its session (a keep-alive answers) while no frame comes.
    s.client
        .request("GET_PARAMETER", &url, &[("Session", &s.id)])
        .assert_status(200);
    let publisher = gst_publisher(&url, "udp");
    wait_recording(&server, "phone", paused_at, 5);
    let resumed = s.rtp.recv_frames(10, WAIT);
    assert!(!resumed.is_empty());
    assert_eq!(resumed[0].ssrc, s.ssrc, "the same session's stream");
    let report = server.fresh_stats(REPLY_TIMEOUT);
    let session = session_in(&report, &s.id).expect("the viewer's session is open");
    assert_eq!(session["state"], "playing", "{session}");
    drop(publisher);
}

#[test]
fn bad_announces_are_answered_and_the_server_keeps_serving() {
    let dir = ClipDir::new();
    let clip = dir.clip("clip.Mjpeg", &encode_jpegs(40, 320, 240, "ball"));
    let server = ServerProcess::start_with_stats(
        &["--publish".as_ref(), "phone".as_ref(), clip.as_os_str()],
        2,
    );
    let url = server.url("phone");
    let mut client = server.connect();
    let options = client.request("OPTIONS", "*", &[]);
    let public = options.header("Public").unwrap_or("").to_string();
    assert!(
        public.contains("ANNOUNCE") && public.contains("RECORD"),
        "{public}"
    );
    let h264 = JPEG_SDP.replace("RTP/AVP 26", "RTP/AVP 96") + "a=rtpmap:96 H264/90000\r\n";
    let reply = announce(&mut client, &url, "application/sdp", h264.as_bytes());
    reply.assert_status(415);
    assert!(
        reply.header("X-Error").unwrap_or("").contains("H264"),
        "{}",
        reply.text()
    );
    announce(&mut client, &url, "application/sdp", b"\x00\x01garbage\xff").assert_status(400);
    announce(&mut client, &url, "text/plain", JPEG_SDP.as_bytes()).assert_status(415);
    let big = format!("{JPEG_SDP}{}", "a=x-padding:0123456789\r\n".repeat(500));
    announce(&mut client, &url, "application/sdp", big.as_bytes()).assert_status(413);
    // Other paths keep refusing ANNOUNCE and RECORD.
    let clip_url = server.url("clip.Mjpeg");
    announce(
        &mut client,
        &clip_url,
        "application/sdp",
        JPEG_SDP.as_bytes(),
    )
    .assert_status(405);
    client
        .request("RECORD", &clip_url, &[("Session", "1234")])
        .assert_status(405);
    // SETUP for recording without an ANNOUNCE.
    client
        .request(
            "SETUP",
            &format!("{url}/streamid=0"),
            &[(
                "Transport",
                "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            )],
        )
        .assert_status(455);
    // The same connection can still publish, and the clip still plays.
    let id = raw_publisher(&mut client, &url);
    assert!(session_in(&server.fresh_stats(REPLY_TIMEOUT), &id).is_none());
    ffmpeg_reads(&clip_url, "tcp", 20);
}

#[test]
fn garbage_rtp_is_counted_and_dropped_while_others_publish_and_play() {
    let server = ServerProcess::start_with_stats(&["--publish", "junk", "--publish", "phone"], 2);
    let junk_url = server.url("junk");
    let url = server.url("phone");
    let publisher = ffmpeg_publisher(&url, "udp");
    wait_recording(&server, "phone", 0, 5);
    // A publisher sending garbage: not RTP, and RTP with a broken JPEG payload.
    let mut client = server.connect();
    let id = raw_publisher(&mut client, &junk_url);
    let mut bytes = Vec::new();
    for i in 0..200u16 {
        let packet: Vec<u8> = if i % 2 == 0 {
            vec![0x17; 40]
        } else {
            let mut p = vec![0x80, 26];
            p.extend_from_slice(&i.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef]);
            p.extend_from_slice(&[0xff; 30]);
            p
        };
        bytes.push(b'$');
        bytes.push(0);
        bytes.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        bytes.extend_from_slice(&packet);
    }
    client.send_raw(&bytes);
    let report = server.wait_for_stats(
        "the garbage counted",
        |r| {
            publishers_on(r, "junk").iter().any(|p| {
                p["packets_dropped"].as_u64() == Some(100) && p["packets_in"].as_u64() == Some(100)
            })
        },
        WAIT,
    );
    assert_eq!(path_in(&report, "junk")["frames_in"], 0, "{report}");
    // The server still answers the garbage's publisher, and the other path plays.
    client
        .request("GET_PARAMETER", &junk_url, &[("Session", &id)])
        .assert_status(200);
    ffmpeg_reads(&url, "tcp", 20);
    drop(publisher);
}

#[test]
fn a_silent_publisher_times_out_and_frees_the_path() {
    let server =
        ServerProcess::start_with_stats(&["--publish", "phone", "--session-timeout", "1"], 1);
    let url = server.url("phone");
    let mut client = server.connect();
    let id = raw_publisher(&mut client, &url);
    // Requests do not keep a publisher on: only its RTP does.
    client
        .request("GET_PARAMETER", &url, &[("Session", &id)])
        .assert_status(200);
    let closed = server.wait_for_closed(&id, WAIT);
    assert_eq!(closed["reason"], "timed out", "{closed}");
    let mut next = server.connect();
    raw_publisher(&mut next, &url);
}

#[test]
fn a_udp_publishers_ports_take_packets_from_the_publisher_only() {
    let server = ServerProcess::start_with_stats(&["--publish", "phone"], 1);
    let url = server.url("phone");
    let mut client = server.connect();
    announce(&mut client, &url, "application/sdp", JPEG_SDP.as_bytes()).assert_status(200);
    let ours = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = ours.local_addr().unwrap().port();
    let setup = client.request(
        "SETUP",
        &format!("{url}/streamid=0"),
        &[(
            "Transport",
            format!(
                "RTP/AVP;unicast;client_port={port}-{};mode=record",
                port + 1
            )
            .as_str(),
        )],
    );
    setup.assert_status(200);
    let (rtp_port, _) = setup.server_ports();
    let id = setup.session();
    client
        .request("RECORD", &url, &[("Session", &id)])
        .assert_status(200);
    let packet = |seq: u16| {
        let mut p = vec![0x80, 26];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 7]);
        p.extend_from_slice(&[0; 20]);
        p
    };
    // Someone else on the machine (another loopback address) who learned the port.
    let stranger = std::net::UdpSocket::bind("127.0.0.2:0").unwrap();
    for seq in 0..10 {
        stranger
            .send_to(&packet(seq), ("127.0.0.1", rtp_port))
            .unwrap();
    }
    for seq in 10..15 {
        ours.send_to(&packet(seq), ("127.0.0.1", rtp_port)).unwrap();
    }
    server.wait_for_stats(
        "the stranger's packets dropped, the publisher's taken",
        |r| {
            publishers_on(r, "phone").iter().any(|p| {
                p["packets_dropped"].as_u64() == Some(10) && p["packets_in"].as_u64() == Some(5)
            })
        },
        WAIT,
    );
}

#[test]
fn another_connection_cannot_end_or_record_for_a_publisher() {
    let server = ServerProcess::start_with_stats(&["--publish", "phone"], 1);
    let url = server.url("phone");
    let mut owner = server.connect();
    let id = raw_publisher(&mut owner, &url);
    // A second client: refused the busy path, without learning who holds it...
    let mut other = server.connect();
    let busy = announce(&mut other, &url, "application/sdp", JPEG_SDP.as_bytes());
    busy.assert_status(455);
    assert!(!busy.text().contains(&id), "{}", busy.text());
    // ... and even knowing the id, it can neither end the publisher nor RECORD for it.
    other
        .request("TEARDOWN", &url, &[("Session", &id)])
        .assert_status(454);
    other
        .request("RECORD", &url, &[("Session", &id)])
        .assert_status(454);
    let report = server.fresh_stats(REPLY_TIMEOUT);
    let publishers = publishers_on(&report, "phone");
    assert_eq!(publishers.len(), 1, "{report}");
    assert_eq!(publishers[0]["state"], "recording", "{report}");
    // Its own connection can.
    owner
        .request("TEARDOWN", &url, &[("Session", &id)])
        .assert_status(200);
}
