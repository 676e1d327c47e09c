//! Pushes (`--push NAME=URL`, and `push = [...]` in a `[paths.NAME]` of `--config`) end
//! to end, every receiver a real one started by the test: our own server with a
//! `--publish` path (open, and behind `[[users]]`; a published path pushed on), and
//! GStreamer's RTSP server in RECORD mode (tests/scripts/gst-rtsp-server.py --record).
//! ffmpeg reads back what each received. A wrong
//! password and a port where nothing listens are logged and retried with backoff while
//! the sender keeps serving; a receiver started again on the same port gets the push
//! again; a receiver that reads slowly gets the newest frames, not a queue, while the
//! path's viewers play on; unknown paths, clips and bad URLs stop the server at start.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mjpeg_rtsp_tests::metrics::{sample, scrape};
use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;
use serde_json::Value;

/// Generous for a loaded machine; only a failing test waits this long.
const WAIT: Duration = Duration::from_secs(20);
const CAM: &str = "videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 ! jpegenc";
const PASSWORD: &str = "push-Secret-81";
const WRONG: &str = "wrong-Secret-92";

fn source() -> String {
    format!("cam={CAM}")
}

/// The `i`th push of path `name` in a statistics report (null when there is none).
fn push_in(report: &Value, name: &str, i: usize) -> Value {
    path_in(report, name)["pushes"][i].clone()
}

/// ffmpeg reads `n` frames of `url` over TCP, decoded at 320x240.
#[track_caller]
fn ffmpeg_reads(url: &str, n: usize) {
    let frames = n.to_string();
    let (ok, sizes, dimensions) = ffmpeg_framecrc(
        &["-rtsp_transport", "tcp"],
        url,
        &["-frames:v", &frames],
        Duration::from_secs(30),
    );
    assert!(ok, "ffmpeg failed to read {url}");
    assert_eq!(sizes.len(), n, "frames decoded from {url}");
    assert_eq!(dimensions, "320x240");
    assert!(sizes.iter().all(|&s| s == 320 * 240 * 3 / 2), "{sizes:?}");
}

#[test]
fn a_live_path_pushed_into_our_own_published_path_plays_in_ffmpeg() {
    // The receiver pushes its published path on, into another of its own.
    let port = free_tcp_port();
    let onward = format!("in=rtsp://127.0.0.1:{port}/copy");
    let receiver = ServerProcess::start_with_stats(
        &[
            "--port",
            &port.to_string(),
            "--publish",
            "in",
            "--publish",
            "copy",
            "--push",
            &onward,
        ],
        2,
    );
    let push = format!("cam={}", receiver.url("in"));
    // The sender on an address of its own: its push connects from there.
    let mut sender = ServerProcess::start_with_stats(
        &[
            "--bind",
            "127.0.1.2",
            "--source",
            &source(),
            "--push",
            &push,
        ],
        1,
    );
    sender.wait_for_log(&["push cam to rtsp://127.0.0.1:", "/in: recording"], WAIT);
    receiver.wait_for_stats(
        "the push recording into `in`, from the sender's --bind address",
        |r| {
            r["publishers"].as_array().into_iter().flatten().any(|p| {
                p["path"] == "in"
                    && p["client"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("127.0.1.2:"))
            })
        },
        WAIT,
    );
    ffmpeg_reads(&receiver.url("in"), 50);
    ffmpeg_reads(&receiver.url("copy"), 25);
    sender.wait_for_stats(
        "the receiver's reports about the pushed stream",
        |r| {
            let push = push_in(r, "cam", 0);
            push["state"] == "recording" && push["receiver_report"]["reports"].as_u64() >= Some(1)
        },
        WAIT,
    );
    // Made after ffmpeg read its 50 frames: they were all sent by then.
    let report = sender.fresh_stats(WAIT);
    // Nobody watches `cam` on the sender: the push alone keeps its on-demand source up.
    let cam = path_in(&report, "cam");
    assert_eq!(
        (&cam["source"], &cam["sessions"]),
        (&"up".into(), &0.into())
    );
    let push = &cam["pushes"][0];
    assert_eq!(push["url"], receiver.url("in"));
    assert_eq!(push["reconnects"], 0);
    assert!(push["frames_sent"].as_u64() >= Some(50), "{push}");
    assert!(
        push["bytes_sent"].as_u64() > push["packets_sent"].as_u64().map(|p| p * 12),
        "{push}"
    );
    assert_eq!(push["receiver_report"]["cumulative_lost"], 0, "{push}");
    // The same in /api/paths...
    let api = http_client::get(&sender.http(), "/api/paths", "").json();
    assert_eq!(push_in(&api, "cam", 0)["state"], "recording", "{api}");
    // ... and in /metrics, as Prometheus's own parser reads it.
    let metrics = scrape(&sender.http());
    let samples = &metrics["samples"];
    let url = receiver.url("in");
    let labels = [("path", "cam"), ("url", url.as_str())];
    assert_eq!(
        sample(samples, "mjpeg_push_up", &labels),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        sample(samples, "mjpeg_push_frames_sent_total", &labels) >= Some(50.0),
        "{metrics}"
    );
    assert_eq!(
        sample(samples, "mjpeg_push_receiver_fraction_lost", &labels),
        Some(0.0),
        "{metrics}"
    );
    // Ctrl-C: the push tears its session down, and the receiver says so.
    let status = sender.interrupt(WAIT);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    receiver.wait_for_log(&["path in: publisher", "ended (teardown)"], WAIT);
}

#[test]
fn credentials_from_the_url_publish_and_a_wrong_password_is_refused_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let receiver_config = write_file(
        dir.path(),
        "receiver.toml",
        format!(
            "[paths.in]\npublish = true\n[paths.other]\npublish = true\n\
             [[users]]\nname = \"pusher\"\npassword = \"{PASSWORD}\"\n\
             read = [\"in\"]\npublish = [\"in\", \"other\"]\n"
        )
        .as_bytes(),
    );
    let receiver = ServerProcess::start(&[OsStr::new("--config"), receiver_config.as_os_str()], 2);
    let host = receiver.addr;
    // The pushes come from the sender's file: the right password to `in`, a wrong one
    // to `other`.
    let sender_config = write_file(
        dir.path(),
        "sender.toml",
        format!(
            "[paths.cam]\nsource = \"{CAM}\"\npush = [\n  \"rtsp://pusher:{PASSWORD}@{host}/in\",\n  \
             \"rtsp://pusher:{WRONG}@{host}/other\",\n]\n"
        )
        .as_bytes(),
    );
    let sender =
        ServerProcess::start_with_stats(&[OsStr::new("--config"), sender_config.as_os_str()], 1);
    sender.wait_for_log(&["push cam to rtsp://***@", "/in: recording"], WAIT);
    for wait in ["retrying in 1 s", "retrying in 2 s"] {
        sender.wait_for_log(
            &["push cam to rtsp://***@", "/other: failed", "401", wait],
            WAIT,
        );
    }
    ffmpeg_reads(&format!("rtsp://pusher:{PASSWORD}@{host}/in"), 30);
    let report = sender.wait_for_stats(
        "one push recording, the other refused",
        |r| {
            push_in(r, "cam", 0)["state"] == "recording"
                && push_in(r, "cam", 1)["reconnects"].as_u64() >= Some(2)
        },
        WAIT,
    );
    let refused = push_in(&report, "cam", 1);
    assert!(
        refused["error"].as_str().is_some_and(|e| e.contains("401")),
        "{refused}"
    );
    assert_eq!(refused["frames_sent"], 0);
    assert_eq!(refused["url"], format!("rtsp://***@{host}/other"));
    // The receiver never let the wrong password record.
    assert!(
        !receiver.log().contains("path other: publisher"),
        "{}",
        receiver.log()
    );
    let metrics = http_client::get(&sender.http(), "/metrics", "").text();
    let api = http_client::get(&sender.http(), "/api/paths", "").text();
    let shown = format!("{}{report}{metrics}{api}", sender.log());
    for secret in [PASSWORD, WRONG] {
        assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
    }
    assert!(!sender.log().contains("panicked"), "{}", sender.log());
}

#[test]
fn a_push_resumes_into_a_receiver_started_again_on_the_same_port() {
    let port = free_tcp_port().to_string();
    let receiver_args = ["--port", port.as_str(), "--no-http", "--publish", "in"];
    let receiver = ServerProcess::start(&receiver_args, 1);
    let url = receiver.url("in");
    let push = format!("cam={url}");
    let sender = ServerProcess::start_with_stats(&["--source", &source(), "--push", &push], 1);
    sender.wait_for_log(&["push cam to", "/in: recording"], WAIT);
    ffmpeg_reads(&url, 25);
    drop(receiver);
    sender.wait_for_stats(
        "the push failing",
        |r| push_in(r, "cam", 0)["state"] == "retrying",
        WAIT,
    );
    sender.wait_for_log(&["push cam to", "failed", "retrying in"], WAIT);
    let receiver = ServerProcess::start(&receiver_args, 1);
    let report = sender.wait_for_stats(
        "the push recording again",
        |r| {
            let push = push_in(r, "cam", 0);
            push["state"] == "recording" && push["reconnects"].as_u64() >= Some(1)
        },
        WAIT,
    );
    assert!(
        push_in(&report, "cam", 0).get("error").is_none(),
        "{report}"
    );
    ffmpeg_reads(&url, 25);
    receiver.wait_for_log(&["path in: publisher", "recording"], WAIT);
}

/// tests/scripts/gst-rtsp-server.py --record receiving into `out`, killed on drop.
struct GstRecord {
    child: Child,
    url: String,
}

impl GstRecord {
    fn start(out: &Path) -> GstRecord {
        let mut child = Command::new("/usr/bin/python3")
            .arg(workspace_root().join("tests/scripts/gst-rtsp-server.py"))
            .args(["--port", "0", "--name", "record", "--tcp-only", "--record"])
            .arg(out)
            .env_remove("GST_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gst-rtsp-server script runs (python3-gi, gir1.2-gst-rtsp-server-1.0)");
        let url = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let recorder = GstRecord { child, url };
        assert!(
            recorder.url.starts_with("rtsp://"),
            "the script printed {:?}",
            recorder.url
        );
        recorder
    }
}

impl Drop for GstRecord {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_live_path_pushed_into_gst_rtsp_server_record_mode_is_written_and_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.mjpeg");
    let recorder = GstRecord::start(&out);
    let push = format!("cam={}", recorder.url);
    let mut sender = ServerProcess::start_with_stats(&["--source", &source(), "--push", &push], 1);
    sender.wait_for_log(&["push cam to", "/record: recording"], WAIT);
    sender.wait_for_stats(
        "75 frames pushed",
        |r| push_in(r, "cam", 0)["frames_sent"].as_u64() >= Some(75),
        WAIT,
    );
    // Ctrl-C: TEARDOWN, and gst-rtsp-server closes its file.
    let status = sender.interrupt(WAIT);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let last = push_in(&sender.final_stats(WAIT), "cam", 0);
    assert_eq!(last["state"], "stopped", "{last}");
    let sent = last["frames_sent"].as_u64().unwrap();
    drop(recorder);
    let (ok, sizes, dimensions) = ffmpeg_framecrc(
        &["-f", "mjpeg"],
        out.to_str().unwrap(),
        &[],
        Duration::from_secs(30),
    );
    assert!(ok, "ffmpeg failed to decode what gst-rtsp-server wrote");
    assert_eq!(dimensions, "320x240");
    assert!(
        sizes.len() >= 75 && sizes.len() as u64 <= sent,
        "{} frames decoded of {sent} pushed",
        sizes.len()
    );
}

#[test]
fn a_push_to_a_port_where_nothing_listens_backs_off_while_viewers_play() {
    let port = free_tcp_port();
    let push = format!("cam=rtsp://127.0.0.1:{port}/in");
    let sender = ServerProcess::start_with_stats(&["--source", &source(), "--push", &push], 1);
    for wait in ["retrying in 1 s", "retrying in 2 s"] {
        sender.wait_for_log(
            &["push cam to rtsp://127.0.0.1:", "/in: failed", wait],
            WAIT,
        );
    }
    ffmpeg_reads(&sender.url("cam"), 30);
    let report = sender.wait_for_stats(
        "the push retrying",
        |r| push_in(r, "cam", 0)["reconnects"].as_u64() >= Some(2),
        WAIT,
    );
    let push = push_in(&report, "cam", 0);
    assert_eq!(push["frames_sent"], 0, "{push}");
    assert!(
        push["error"]
            .as_str()
            .is_some_and(|e| e.contains("connect")),
        "{push}"
    );
    assert!(!sender.log().contains("panicked"), "{}", sender.log());
}

#[test]
fn pushes_of_unknown_paths_clips_or_bad_urls_stop_the_server_at_start() {
    let sample = workspace_root().join("media/sample.Mjpeg");
    let sample = sample.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--publish", "in", "--push", "nope=rtsp://127.0.0.1:9/x"],
            "no live path is named nope",
        ),
        (
            vec!["--push", "sample.Mjpeg=rtsp://127.0.0.1:9/x", sample],
            "clips are not pushed",
        ),
        (
            vec![
                "--publish",
                "in",
                "--push",
                "in=http://u:s3cret@127.0.0.1:9/x",
            ],
            "rtsp://",
        ),
        (
            vec!["--publish", "in", "--push", "in=rtsp://u:s3cret@:9/x"],
            "--push in",
        ),
    ] {
        let (status, _, err) = run_to_end(
            Command::new(server_binary())
                .args(["--bind", "127.0.0.1", "--port", "0", "--no-http"])
                .args(&args),
            Duration::from_secs(20),
        );
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
}

/// A receiver that answers ANNOUNCE, SETUP and RECORD as a server in record mode does,
/// then takes what comes at `bytes_per_s` at most (its receive buffer small, so the
/// sender feels it).
struct SlowReceiver {
    url: String,
    taken: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowReceiver {
    fn start(bytes_per_s: u64) -> SlowReceiver {
        use socket2::{Domain, Socket, Type};
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        socket
            .bind(
                &"127.0.0.1:0"
                    .parse::<std::net::SocketAddr>()
                    .unwrap()
                    .into(),
            )
            .unwrap();
        socket.listen(1).unwrap();
        let listener: std::net::TcpListener = socket.into();
        let url = format!("rtsp://{}/slow", listener.local_addr().unwrap());
        let taken = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopping) = (taken.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            stream
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf: Vec<u8> = Vec::new();
            let mut chunk = [0u8; 2048];
            // The requests, up to RECORD, read with rtsp-types.
            loop {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let request = match rtsp_types::Message::<Vec<u8>>::parse(&buf) {
                    Ok((rtsp_types::Message::Request(request), used)) => {
                        buf.drain(..used);
                        request
                    }
                    Ok((_, used)) => {
                        buf.drain(..used);
                        continue;
                    }
                    Err(rtsp_types::ParseError::Incomplete(_)) => {
                        match stream.read(&mut chunk) {
                            Ok(0) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            Err(_) => {}
                        }
                        continue;
                    }
                    Err(e) => panic!("the push sent what is not RTSP: {e:?}"),
                };
                let header = |name: &rtsp_types::HeaderName| {
                    request
                        .header(name)
                        .map_or(String::new(), |v| v.as_str().to_string())
                };
                let method = request.method().clone();
                let mut reply = format!(
                    "RTSP/1.0 200 OK\r\nCSeq: {}\r\n",
                    header(&rtsp_types::headers::CSEQ)
                );
                if method == rtsp_types::Method::Setup {
                    reply += &format!(
                        "Session: 5107;timeout=60\r\nTransport: {}\r\n",
                        header(&rtsp_types::headers::TRANSPORT)
                    );
                } else if method == rtsp_types::Method::Record {
                    reply += "Session: 5107\r\n";
                }
                reply += "\r\n";
                if stream.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                if method == rtsp_types::Method::Record {
                    break;
                }
            }
            // Then slowly: a 2 KiB read every 2048 / bytes_per_s seconds.
            let pause = Duration::from_secs_f64(2048.0 / bytes_per_s as f64);
            while !stopping.load(Ordering::Relaxed) {
                match stream.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        counted.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
                std::thread::sleep(pause);
            }
        });
        SlowReceiver {
            url,
            taken,
            stop,
            thread: Some(thread),
        }
    }

    /// What it has taken so far, in bytes.
    fn taken(&self) -> u64 {
        self.taken.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for SlowReceiver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A receiver that takes the stream slower than it comes: the push sends whole frames,
/// always the newest (the others counted as skipped), rather than queueing, and the
/// path's own viewers play on at full rate.
#[test]
fn a_receiver_that_reads_slowly_gets_the_newest_frames_and_viewers_play_on() {
    // About a tenth of the stream (320x240 test pattern at 25 frames/s).
    let receiver = SlowReceiver::start(40_000);
    let push = format!("cam={}", receiver.url);
    let sender = ServerProcess::start_with_stats(&["--source", &source(), "--push", &push], 1);
    let skipping = sender.wait_for_stats(
        "the push recording, passing frames over",
        |r| {
            let push = push_in(r, "cam", 0);
            push["state"] == "recording" && push["frames_skipped"].as_u64() >= Some(25)
        },
        WAIT,
    );
    eprintln!("{}", push_in(&skipping, "cam", 0));
    // A viewer of the same path meanwhile gets every frame (3 s of them; the bound is
    // for a loaded machine), none passed over by the path's fan-out.
    let started = std::time::Instant::now();
    ffmpeg_reads(&sender.url("cam"), 75);
    let took = started.elapsed().as_secs_f64();
    assert!(took < 20.0, "75 frames took the viewer {took:.1} s");
    let report = sender.fresh_stats(WAIT);
    let push = push_in(&report, "cam", 0);
    let cam = path_in(&report, "cam");
    let (sent, skipped) = (
        push["frames_sent"].as_u64().unwrap(),
        push["frames_skipped"].as_u64().unwrap(),
    );
    eprintln!(
        "push: {sent} frames sent, {skipped} skipped, {} bytes sent, the receiver took {}; \
         the path made {} frames",
        push["bytes_sent"],
        receiver.taken(),
        cam["frames_in"]
    );
    assert_eq!(push["state"], "recording", "{push}");
    assert_eq!(push["reconnects"], 0, "{push}");
    assert_eq!(cam["frames_skipped"], 0, "{cam}");
    // Most frames are passed over, and what is sent is not queued up: what the push
    // counts as sent is what the receiver took, but for what the sockets hold.
    assert!(skipped > sent, "{push}");
    let bytes_sent = push["bytes_sent"].as_u64().unwrap();
    assert!(
        bytes_sent < receiver.taken() + 1024 * 1024,
        "{bytes_sent} bytes sent, {} taken: a queue",
        receiver.taken()
    );
}
