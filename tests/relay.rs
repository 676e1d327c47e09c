//! Relays (`--relay NAME=URL`) end to end, every upstream started by the test: GStreamer's
//! RTSP server (tests/scripts/gst-rtsp-server.py) and an HTTP multipart MJPEG camera
//! (`mjpeg_http`). Three viewers pull the upstream once; an unwatched relay never
//! connects; an upstream restarted mid-play resumes the viewer's frames in the same
//! session; upstreams that refuse, answer 404 or 401, or stay silent are retried with
//! the reason in the statistics while the server serves other paths.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::mjpeg_http::MjpegHttpServer;
use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

/// Generous for a loaded machine; only a failing test waits this long.
const WAIT: Duration = Duration::from_secs(20);

fn frames() -> Vec<Vec<u8>> {
    encode_jpegs(20, 320, 240, "ball")
}

/// gst-rtsp-server serving `frames` in a loop; counts the RTSP connections it accepted.
/// Killed on drop.
struct GstRtspServer {
    child: Child,
    url: String,
    clients: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl Drop for GstRtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GstRtspServer {
    fn start(frames: &[Vec<u8>], port: u16) -> GstRtspServer {
        GstRtspServer::start_with(frames, port, &[])
    }

    fn start_with(frames: &[Vec<u8>], port: u16, options: &[&str]) -> GstRtspServer {
        let dir = tempfile::tempdir().unwrap();
        let clip = write_file(dir.path(), "cam.Mjpeg", &lab_file(frames));
        let mut child = Command::new("/usr/bin/python3")
            .arg(workspace_root().join("tests/scripts/gst-rtsp-server.py"))
            .args([
                "--port",
                &port.to_string(),
                "--fps",
                "25",
                "--report-clients",
            ])
            .args(options)
            .arg(&clip)
            .env("GST_PLUGIN_PATH", plugin_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gst-rtsp-server script runs (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(url.starts_with("rtsp://"), "the script printed {url:?}");
        let clients = Arc::new(AtomicUsize::new(0));
        {
            let clients = clients.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if line == "client-connected" {
                        clients.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
        GstRtspServer {
            child,
            url,
            clients,
            _dir: dir,
        }
    }

    fn clients(&self) -> usize {
        self.clients.load(Ordering::SeqCst)
    }
}

/// A viewer over UDP, playing.
fn watch(server: &ServerProcess, name: &str) -> UdpSession {
    let url = server.url(name);
    let (mut s, _) = UdpSession::setup(server.connect(), &url, &url);
    s.client
        .request("PLAY", &url, &[("Session", &s.id)])
        .assert_status(200);
    s
}

/// Waits a few statistics intervals: what has not happened by then is taken as never.
fn a_few_reports(server: &ServerProcess) {
    for _ in 0..5 {
        server.fresh_stats(REPLY_TIMEOUT);
    }
}

/// Three viewers at once on a relay of `upstream_url`: each gets whole 320x240 frames,
/// the path's statistics say so; the relay was idle (and unconnected) before.
fn three_viewers(upstream_url: &str, upstream_connections: &dyn Fn() -> usize) -> ServerProcess {
    let relay = format!("cam={upstream_url}");
    let server = ServerProcess::start_with_stats(&["--relay", relay.as_str()], 1);
    a_few_reports(&server);
    let idle = server.fresh_stats(REPLY_TIMEOUT);
    let cam = path_in(&idle, "cam");
    assert_eq!(cam["source"], "idle", "{cam}");
    assert_eq!(cam["kind"], "relay", "{cam}");
    assert_eq!(upstream_connections(), 0, "an unwatched relay connected");

    let viewers: Vec<UdpSession> = (0..3).map(|_| watch(&server, "cam")).collect();
    for viewer in &viewers {
        let packets = viewer.rtp.recv_frames(10, WAIT);
        let frames = depayload(&packets);
        assert!(frames.len() >= 5, "{} whole frames", frames.len());
        let header = gstmjpegrtp::jpeg::parse_header(&frames[1].jpeg).expect("a JPEG");
        assert_eq!((header.width, header.height), (320, 240));
    }
    let report = server.wait_for_stats(
        "the relay up with three viewers",
        |r| {
            let p = path_in(r, "cam");
            p["source"] == "up" && p["sessions"] == 3 && p["width"] == 320 && p["height"] == 240
        },
        WAIT,
    );
    assert_eq!(
        upstream_connections(),
        1,
        "the upstream was pulled more than once"
    );
    assert_eq!(path_in(&report, "cam")["restarts"], 0);
    server
}

#[test]
fn three_viewers_pull_gst_rtsp_server_once_and_its_loss_and_jitter_show() {
    let upstream = GstRtspServer::start(&frames(), 0);
    let server = three_viewers(&upstream.url, &|| upstream.clients());
    let report = server.wait_for_stats(
        "the upstream's packets counted",
        |r| path_in(r, "cam")["upstream"]["packets_received"].as_u64() > Some(50),
        WAIT,
    );
    let up = &path_in(&report, "cam")["upstream"];
    assert_eq!(up["packets_lost"], 0, "{up}");
    assert_eq!(up["loss"], 0.0, "{up}");
    assert!(up["jitter_ms"].as_f64().is_some(), "{up}");
}

#[test]
fn three_viewers_pull_an_http_camera_once_with_the_urls_credentials_kept_secret() {
    let camera = MjpegHttpServer::start(frames(), 25, 0, Some("cam user:s3cret"));
    let url = camera.url("cam%20user:s3cret@");
    let server = three_viewers(&url, &|| camera.connections());
    let stats = server.fresh_stats(REPLY_TIMEOUT).to_string();
    assert!(!stats.contains("s3cret"), "{stats}");
    assert!(!server.log().contains("s3cret"), "{}", server.log());
}

/// One viewer plays; the upstream goes away and comes back on the same port: the
/// viewer's frames resume within 5 s of its return, in the same session (one RTP
/// sequence, no BYE, nothing closed).
fn resumes_after_restart<U>(start: impl Fn(u16) -> U, url: impl Fn(&U) -> String) {
    let port = free_tcp_port();
    let upstream = start(port);
    let relay = format!("cam={}", url(&upstream));
    let server = ServerProcess::start_with_stats(&["--relay", relay.as_str()], 1);
    let viewer = watch(&server, "cam");
    let before = viewer.rtp.recv_frames(10, WAIT);
    drop(upstream);
    server.wait_for_stats(
        "the relay failing",
        |r| path_in(r, "cam")["source"] == "retrying",
        WAIT,
    );
    // Drain what was sent before the outage.
    viewer.rtp.recv_for(Duration::from_millis(100));
    let upstream = start(port);
    let back = Instant::now();
    let after = viewer.rtp.recv_frames(5, Duration::from_secs(5));
    let waited = back.elapsed();
    assert!(
        waited <= Duration::from_secs(5),
        "frames resumed after {waited:?}"
    );
    let last = before.last().unwrap();
    let first = &after[0];
    assert_eq!(first.ssrc, last.ssrc, "the same session's stream");
    assert!(
        first.seq.wrapping_sub(last.seq) < 1000,
        "sequence numbers go on: {} then {}",
        last.seq,
        first.seq
    );
    let report = server.wait_for_stats(
        "the relay up again",
        |r| {
            path_in(r, "cam")["source"] == "up" && path_in(r, "cam")["restarts"].as_u64() >= Some(1)
        },
        WAIT,
    );
    assert!(
        session_in(&report, &viewer.id).is_some(),
        "the session survived"
    );
    assert!(
        server.closed_sessions().is_empty(),
        "{:?}",
        server.closed_sessions()
    );
    let deadline = Instant::now() + Duration::from_millis(200);
    while let Some((data, _, _)) = viewer.rtcp.recv_datagram(deadline) {
        assert!(rtcp_summary(&data).byes.is_empty(), "the server said BYE");
    }
    drop(upstream);
}

#[test]
fn gst_rtsp_server_restarted_mid_play_resumes_the_viewers_session() {
    resumes_after_restart(
        |port| GstRtspServer::start(&frames(), port),
        |u| u.url.clone(),
    );
}

#[test]
fn an_http_camera_restarted_mid_play_resumes_the_viewers_session() {
    resumes_after_restart(
        |port| MjpegHttpServer::start(frames(), 25, port, None),
        |u| u.url(""),
    );
}

#[test]
fn bad_upstreams_are_retried_with_the_reason_while_other_paths_play() {
    let camera = MjpegHttpServer::start(frames(), 25, 0, Some("u:p"));
    let upstream = GstRtspServer::start(&frames(), 0);
    // Accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for stream in silent.incoming().map_while(Result::ok) {
                held.lock().unwrap().push(stream);
            }
        });
    }
    let refused = free_tcp_port();
    let bad = [
        (
            "refused",
            format!("rtsp://127.0.0.1:{refused}/cam"),
            "refused",
        ),
        ("rtsp404", format!("{}nothing", upstream.url), "404"),
        ("http404", format!("http://{}/nothing", camera.addr), "404"),
        ("http401", camera.url(""), "401"),
        (
            "rtspsilent",
            format!("rtsp://{silent_addr}/cam"),
            "no reply",
        ),
        (
            "httpsilent",
            format!("http://{silent_addr}/cam"),
            "no reply",
        ),
    ];
    let mut args: Vec<String> = Vec::new();
    for (name, url, _) in &bad {
        args.extend(["--relay".to_string(), format!("{name}={url}")]);
    }
    args.extend([
        "--relay".to_string(),
        format!("good={}", camera.url("u:p@")),
    ]);
    let server = ServerProcess::start_with_stats(&args, bad.len() + 1);
    let viewers: Vec<UdpSession> = bad
        .iter()
        .map(|(name, _, _)| watch(&server, name))
        .collect();
    let good = watch(&server, "good");
    for (name, _, reason) in &bad {
        let report = server.wait_for_stats(
            &format!("{name} failing"),
            |r| path_in(r, name)["error"].is_string(),
            WAIT,
        );
        let path = path_in(&report, name);
        assert_eq!(path["source"], "retrying", "{path}");
        let error = path["error"].as_str().unwrap().to_lowercase();
        assert!(error.contains(reason), "{name}: {error}");
    }
    good.rtp.recv_frames(10, WAIT);
    // Restarted with backoff, the viewers still there.
    let report = server.wait_for_stats(
        "the bad relays restarted",
        |r| {
            bad.iter()
                .all(|(name, _, _)| path_in(r, name)["restarts"].as_u64() >= Some(1))
        },
        WAIT,
    );
    for viewer in &viewers {
        assert!(session_in(&report, &viewer.id).is_some());
    }
    assert!(server.closed_sessions().is_empty());
    assert!(!server.log().contains("u:p@"), "{}", server.log());
}

#[test]
fn a_camera_that_refuses_udp_is_relayed_over_tcp() {
    // gst-rtsp-server offering TCP only answers the relay's UDP SETUP with 461; the relay
    // sets up again interleaved, and the viewer gets the frames all the same.
    let upstream = GstRtspServer::start_with(&frames(), 0, &["--tcp-only"]);
    let relay = format!("cam={}", upstream.url);
    let server = ServerProcess::start_with_stats(&["--relay", relay.as_str()], 1);
    let viewer = watch(&server, "cam");
    let frames = depayload(&viewer.rtp.recv_frames(10, WAIT));
    assert!(frames.len() >= 5, "{} whole frames", frames.len());
    let report = server.wait_for_stats(
        "the relay up",
        |r| path_in(r, "cam")["source"] == "up",
        WAIT,
    );
    assert_eq!(path_in(&report, "cam")["restarts"], 0, "{report}");
}
