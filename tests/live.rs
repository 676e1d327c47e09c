//! Live paths (`--source NAME=PIPELINE`) end to end: a `videotestsrc` path played by
//! ffprobe, ffmpeg over UDP and TCP, GStreamer's rtspsrc, mjpeg-player and a lab client;
//! RTP-Info matching the first packet, PAUSE/PLAY continuing sequence numbers and RTP
//! time; sources on demand; a source that fails at run time restarted while its viewers
//! keep their sessions; descriptions the server refuses at start.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gst::prelude::*;
use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

/// A live 320x240 test pattern at 25 frames/s, 4:2:0 JPEG.
const TEST_SOURCE: &str = "videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 ! jpegenc";

fn live_server(extra: &[&str]) -> ServerProcess {
    let source = format!("test={TEST_SOURCE}");
    let mut args = vec!["--source", source.as_str()];
    args.extend_from_slice(extra);
    ServerProcess::start_with_stats(&args, 1)
}

#[test]
fn ffprobe_and_ffmpeg_over_udp_and_tcp_play_a_live_path() {
    let server = live_server(&[]);
    let url = server.url("test");
    let (status, out, err) = run_to_end(
        Command::new("ffprobe").args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "default=noprint_wrappers=1",
            &url,
        ]),
        Duration::from_secs(30),
    );
    assert!(status.success(), "ffprobe: {err}");
    for line in ["codec_name=mjpeg", "width=320", "height=240"] {
        assert!(out.lines().any(|l| l == line), "{line} not in {out}");
    }
    for transport in ["udp", "tcp"] {
        let (status, _, err) = run_to_end(
            Command::new("ffmpeg").args([
                "-v",
                "error",
                "-rtsp_transport",
                transport,
                "-i",
                &url,
                "-frames:v",
                "50",
                "-f",
                "null",
                "-",
            ]),
            Duration::from_secs(30),
        );
        assert!(status.success(), "ffmpeg over {transport}: {err}");
        assert!(err.trim().is_empty(), "ffmpeg over {transport} said: {err}");
    }
    // One source for every viewer: frames came in once, at the source's rate.
    let report = server.fresh_stats(REPLY_TIMEOUT);
    let path = path_in(&report, "test");
    assert_eq!(path["kind"], "live");
    assert!(path["frames_in"].as_u64().unwrap() >= 50, "{path}");
}

#[test]
fn rtspsrc_decodes_a_live_path() {
    let server = live_server(&[]);
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "rtspsrc location={} latency=100 ! rtpjpegdepay ! jpegdec ! fakesink name=sink",
        server.url("test")
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    let decoded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let size = std::sync::Arc::new(std::sync::Mutex::new(None));
    {
        let decoded = decoded.clone();
        let size = size.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
                decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(caps) = pad.current_caps()
                    && let Some(s) = caps.structure(0)
                {
                    *size.lock().unwrap() = Some((
                        s.get::<i32>("width").unwrap(),
                        s.get::<i32>("height").unwrap(),
                    ));
                }
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while decoded.load(std::sync::atomic::Ordering::Relaxed) < 50 && Instant::now() < deadline {
        if let Some(bus) = pipeline.bus()
            && let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(50),
                &[gst::MessageType::Error],
            )
        {
            panic!("rtspsrc: {msg:?}");
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(decoded.load(std::sync::atomic::Ordering::Relaxed) >= 50);
    assert_eq!(*size.lock().unwrap(), Some((320, 240)));
}

#[test]
fn mjpeg_player_plays_a_live_path_without_loss() {
    let server = live_server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("stats.json");
    let player = plugin_dir().join("mjpeg-player");
    let (status, _, err) = run_to_end(
        Command::new(&player)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .args(["--headless", "--frames", "50", "--stats-json"])
            .arg(&json)
            .arg(server.url("test")),
        Duration::from_secs(30),
    );
    assert!(status.success(), "mjpeg-player: {err}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(json["frames_shown"], 50, "{json}");
    assert_eq!(json["packets_lost"], 0, "{json}");
    assert_eq!(json["ended_by"], "frames", "{json}");
}

#[test]
fn rtp_info_matches_the_first_packet_and_pause_play_continues_the_numbers() {
    let server = live_server(&[]);
    let url = server.url("test");
    let (mut s, _) = UdpSession::setup(server.connect(), &url, &format!("{url}/streamid=0"));
    let play = |s: &mut UdpSession| {
        let reply = s
            .client
            .request("PLAY", &url, &[("Session", &s.id), ("Range", "npt=0-")]);
        reply.assert_status(200);
        assert_eq!(reply.header("Range"), Some("npt=now-"));
        let seq: u16 = reply.param("RTP-Info", "seq").unwrap().parse().unwrap();
        let rtptime: u32 = reply.param("RTP-Info", "rtptime").unwrap().parse().unwrap();
        (seq, rtptime)
    };
    let (seq, rtptime) = play(&mut s);
    let first = s.rtp.recv_frames(10, REPLY_TIMEOUT);
    // The session joins at a frame's first packet, numbered and stamped as RTP-Info said.
    assert_eq!((first[0].seq, first[0].ts), (seq, rtptime));
    assert_eq!(first[0].ssrc, s.ssrc);
    assert_eq!(&first[0].payload[1..4], &[0, 0, 0], "fragment offset 0");
    for pair in first.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
    }
    let frames = depayload(&first);
    assert!(frames.len() >= 10);
    let last = first.last().map(|p| (p.seq, p.ts)).unwrap();
    s.client
        .request("PAUSE", &url, &[("Session", &s.id)])
        .assert_status(200);
    // Whatever was on its way, then nothing.
    let _ = s.rtp.recv_for(Duration::from_millis(200));
    let straggler = s.rtp.recv_for(Duration::from_millis(500));
    assert!(
        straggler.is_empty(),
        "{} packets while paused",
        straggler.len()
    );
    let (seq2, rtptime2) = play(&mut s);
    let resumed = s.rtp.recv_frames(5, REPLY_TIMEOUT);
    assert_eq!((resumed[0].seq, resumed[0].ts), (seq2, rtptime2));
    // The sequence continues where it stopped; RTP time moved on by about the pause.
    let gap = rtptime2.wrapping_sub(last.1);
    assert!(
        (45_000..200_000).contains(&gap),
        "RTP time moved {gap} ticks over a pause of about 0.7 s"
    );
    assert!(
        seq2.wrapping_sub(last.0) >= 1 && seq2.wrapping_sub(last.0) <= 60,
        "sequence {} then {seq2}",
        last.0
    );
    s.client
        .request("TEARDOWN", &url, &[("Session", &s.id)])
        .assert_status(200);
}

#[test]
fn a_lab_client_watches_a_live_path() {
    let server = live_server(&[]);
    let rtp = UdpReceiver::bind();
    let mut client = server.connect();
    client.send_raw(
        format!(
            "SETUP test RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= {}",
            rtp.port()
        )
        .as_bytes(),
    );
    let reply =
        String::from_utf8_lossy(&client.read_available(Duration::from_secs(2))).into_owned();
    assert!(
        reply.starts_with("RTSP/1.0 200 OK\nCSeq: 1\nSession: "),
        "{reply}"
    );
    let id = reply.rsplit(' ').next().unwrap().trim().to_string();
    client.send_raw(format!("PLAY test RTSP/1.0\nCSeq: 2\nSession: {id}").as_bytes());
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        let (data, _, at) = rtp.recv_datagram(deadline).expect("a lab packet");
        let packet = lab_packet(&data, 2, at);
        let jpeg = &data[12..];
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
        seqs.push(packet.seq);
    }
    assert_eq!(
        seqs,
        (1..=10).collect::<Vec<u16>>(),
        "lab seq = frame number from 1"
    );
}

#[test]
fn sources_start_with_their_first_viewer_and_stop_after_the_last() {
    let server = live_server(&["--linger", "0.5"]);
    // Checked at start, then stopped: nobody watches.
    let idle = server.wait_for_stats(
        "an idle source",
        |r| path_in(r, "test")["source"] == "idle",
        REPLY_TIMEOUT,
    );
    let frames_before = path_in(&idle, "test")["frames_in"].as_u64().unwrap();
    let quiet = server.fresh_stats(REPLY_TIMEOUT);
    assert_eq!(
        path_in(&quiet, "test")["frames_in"].as_u64().unwrap(),
        frames_before
    );
    let url = server.url("test");
    let (mut s, _) = UdpSession::setup(server.connect(), &url, &url);
    s.client
        .request("PLAY", &url, &[("Session", &s.id)])
        .assert_status(200);
    s.rtp.recv_frames(5, REPLY_TIMEOUT);
    server.wait_for_stats(
        "the source up with a viewer",
        |r| path_in(r, "test")["source"] == "up" && path_in(r, "test")["sessions"] == 1,
        REPLY_TIMEOUT,
    );
    s.client
        .request("TEARDOWN", &url, &[("Session", &s.id)])
        .assert_status(200);
    server.wait_for_stats(
        "the source stopped after its last viewer",
        |r| path_in(r, "test")["source"] == "idle" && path_in(r, "test")["sessions"] == 0,
        REPLY_TIMEOUT,
    );
}

#[test]
fn a_source_that_fails_is_restarted_and_its_viewers_keep_their_sessions() {
    // The source ends after 30 frames (as a camera that goes away); the server starts
    // it again after a second, and the viewer's frames resume in the same session.
    let source = "test=videotestsrc is-live=true num-buffers=30 ! video/x-raw,format=I420,width=160,height=120,framerate=25/1 ! jpegenc";
    let server = ServerProcess::start_with_stats(&["--source", source, "--always-on"], 1);
    let url = server.url("test");
    let (mut s, _) = UdpSession::setup(server.connect(), &url, &url);
    s.client
        .request("PLAY", &url, &[("Session", &s.id)])
        .assert_status(200);
    let packets = s.rtp.recv_frames(45, Duration::from_secs(15));
    for pair in packets.windows(2) {
        assert_eq!(
            pair[1].seq,
            pair[0].seq.wrapping_add(1),
            "one session, no gap"
        );
        assert!(
            pair[1].ts.wrapping_sub(pair[0].ts) < 1 << 31,
            "RTP time goes forward"
        );
    }
    let report = server.wait_for_stats(
        "a restart",
        |r| path_in(r, "test")["restarts"].as_u64() >= Some(1),
        REPLY_TIMEOUT,
    );
    assert!(session_in(&report, &s.id).is_some(), "the session survived");
    assert!(
        server.closed_sessions().is_empty(),
        "no session was closed: {:?}",
        server.closed_sessions()
    );
    // Sender reports reached the viewer, and no BYE.
    let deadline = Instant::now() + Duration::from_millis(200);
    while let Some((data, _, _)) = s.rtcp.recv_datagram(deadline) {
        assert!(rtcp_summary(&data).byes.is_empty(), "the server said BYE");
    }
}

/// The server's start with `source` fails, saying `expected` (any of them).
fn refused_at_start(source: &str, expected: &[&str]) {
    let out = Command::new(rtsp::server_binary())
        .args(["--bind", "127.0.0.1", "--port", "0", "--source"])
        .arg(format!("bad={source}"))
        .env_remove("GST_DEBUG")
        .stdin(Stdio::null())
        .output()
        .expect("the server runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with {source}: {stderr}");
    assert!(
        expected.iter().any(|e| stderr.contains(e)),
        "{source}: none of {expected:?} in {stderr}"
    );
}

#[test]
fn descriptions_the_server_cannot_serve_are_refused_at_start() {
    refused_at_start(
        "videotestsrc ! nosuchelement",
        &["does not parse", "no element"],
    );
    // Raw video: not JPEG.
    refused_at_start(
        "videotestsrc is-live=true ! video/x-raw,format=I420",
        &["not JPEG", "jpegenc"],
    );
    // jpegenc's default here is 4:4:4, which RFC 2435 cannot carry.
    refused_at_start(
        "videotestsrc is-live=true ! video/x-raw,format=Y444 ! jpegenc",
        &["4:2:0", "4:2:2", "I420"],
    );
    refused_at_start(
        "v4l2src device=/dev/no-such-camera ! image/jpeg",
        &["no-such-camera", "Cannot identify device"],
    );
}

/// `mjpeg-player --headless` on `url` with `args`: its `--stats-json`.
fn play_json(url: &str, args: &[&str], limit: Duration) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("stats.json");
    let (status, _, err) = run_to_end(
        Command::new(plugin_dir().join("mjpeg-player"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .arg("--headless")
            .args(args)
            .arg("--stats-json")
            .arg(&json)
            .arg(url),
        limit,
    );
    assert!(status.success(), "mjpeg-player: {err}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn the_player_shows_the_latency_from_capture_to_display() {
    let server = live_server(&[]);
    // Sender reports come at RFC 3550 intervals (the first within a few seconds).
    let json = play_json(
        &server.url("test"),
        &["--duration", "6"],
        Duration::from_secs(30),
    );
    let mean = json["latency_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("{json}"));
    let max = json["latency_max_ms"].as_f64().unwrap();
    // Capture to display on one machine: some milliseconds, never negative beyond clock
    // granularity, and not seconds.
    assert!((-1.0..300.0).contains(&mean), "mean latency {mean} ms");
    assert!(max >= mean && max < 1000.0, "max latency {max} ms");
}

#[test]
fn the_player_waits_out_an_outage_while_its_session_lives() {
    // The source ends every 30 frames and is restarted after 1, 2, then 4 s: gaps longer
    // than the player's --stall-timeout, which it waits out, as its session is alive.
    let source = "test=videotestsrc is-live=true num-buffers=30 ! video/x-raw,format=I420,width=160,height=120,framerate=25/1 ! jpegenc";
    let server = ServerProcess::start_with_stats(&["--source", source, "--always-on"], 1);
    let json = play_json(
        &server.url("test"),
        &[
            "--frames",
            "110",
            "--transport",
            "tcp",
            "--stall-timeout",
            "1.5",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(json["ended_by"], "frames", "{json}");
    assert_eq!(json["frames_shown"], 110, "{json}");
    // The 2 s and 4 s gaps at least (the 1 s one may pass unnoticed).
    assert!(json["stalls"].as_u64() >= Some(2), "{json}");
    let report = server.fresh_stats(REPLY_TIMEOUT);
    assert!(
        path_in(&report, "test")["restarts"].as_u64() >= Some(3),
        "{report}"
    );
}

#[test]
fn a_config_file_sets_up_the_server_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let clip = ClipDir::new();
    let clip_path = clip.clip("clip.Mjpeg", &encode_jpegs(3, 160, 120, "ball"));
    let file = dir.path().join("server.toml");
    std::fs::write(
        &file,
        format!(
            "clips = [{clip:?}]\n\
             [server]\nfps = 5\nlinger = 0.5\n\
             [paths.test]\nsource = \"{TEST_SOURCE}\"\n\
             [paths.small]\nsource = \"videotestsrc is-live=true ! video/x-raw,format=I420,width=160,height=120,framerate=25/1 ! jpegenc\"\nalways_on = true\n",
            clip = clip_path.display().to_string()
        ),
    )
    .unwrap();
    // The command line replaces the file's `test` path with one of another size.
    let other = "test=videotestsrc is-live=true ! video/x-raw,format=I420,width=64,height=48,framerate=25/1 ! jpegenc";
    let config = file.display().to_string();
    let server = ServerProcess::start_with_stats(&["--config", &config, "--source", other], 3);
    let mut names: Vec<String> = server
        .urls
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["clip.Mjpeg", "small", "test"]);
    let report = server.wait_for_stats(
        "the always-on path up",
        |r| path_in(r, "small")["source"] == "up",
        REPLY_TIMEOUT,
    );
    assert_eq!(path_in(&report, "test")["width"], 64, "{report}");
    assert_eq!(path_in(&report, "test")["source"], "idle", "{report}");
    let clip_stats = path_in(&report, "clip.Mjpeg");
    assert_eq!(clip_stats["kind"], "clip");
    // The file's fps (5) times the clip: 3 frames are 0.6 s.
    let mut client = server.connect();
    let reply = client.request("DESCRIBE", &server.url("clip.Mjpeg"), &[]);
    reply.assert_status(200);
    let sdp = String::from_utf8_lossy(&reply.body).into_owned();
    assert!(sdp.contains("a=framerate:5\r\n"), "{sdp}");
}

#[test]
fn a_config_file_with_a_mistake_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nprot = 8554\n").unwrap();
    let out = Command::new(rtsp::server_binary())
        .arg("--config")
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("prot") && stderr.contains("bad.toml"),
        "{stderr}"
    );
}
