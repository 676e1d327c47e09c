//! The server's HTTP side end to end, with real clients: ffmpeg, OpenCV, curl, Python's
//! urllib and prometheus_client, GStreamer's rtspsrc beside them, and this crate's own
//! multipart reader (`mjpeg_rtsp_tests::http_client`), which checks every part's framing.
//! Every endpoint, on a live path (a 25 fps 640x480 `videotestsrc`) and on the bundled
//! clip (384x288, 200 frames), and bad requests beside a viewer that must not notice them.

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::http_client::{
    self, Ending, Response, StreamEnd, Viewer, ViewerOptions, addr_of, get, opencv_sizes,
    raw_request, unix_now,
};
use mjpeg_rtsp_tests::metrics::{sample, scrape};
use mjpeg_rtsp_tests::rtsp::{ServerProcess, wait_until};
use mjpeg_rtsp_tests::{ffmpeg_framecrc, run_python, workspace_root};
use serde_json::Value;

/// A live path of 25 frames a second, 640x480.
const CAM: &str = "cam=videotestsrc is-live=true \
    ! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc";

/// The bundled clip, as the server names it.
const CLIP: &str = "sample.Mjpeg";

fn sample_clip() -> std::path::PathBuf {
    workspace_root().join("media").join(CLIP)
}

/// The bundled clip's JPEGs, read from its file.
fn clip_frames() -> Vec<Vec<u8>> {
    mjpeg_rtsp_tests::lab_frames(&std::fs::read(sample_clip()).expect("the sample clip"))
}

/// A server with the live `cam` (always on), and `extra` options and paths; `urls` is the
/// number of paths it serves.
fn live_server(extra: &[&str], urls: usize) -> ServerProcess {
    let mut args = vec!["--always-on", "--source", CAM];
    args.extend_from_slice(extra);
    ServerProcess::start(&args, urls)
}

/// Waits until the live path `name` has made frames (so a viewer's rate is the
/// source's from its first frame on).
fn wait_for_frames(base: &str, name: &str) {
    let up = wait_until(Duration::from_secs(20), || {
        let paths = get(base, "/api/paths", "").json();
        path_entry(&paths, name)["frames_in"].as_u64().unwrap_or(0) > 5
    });
    assert!(
        up,
        "{name} made no frames: {}",
        get(base, "/api/paths", "").text()
    );
}

fn path_entry(paths: &Value, name: &str) -> Value {
    paths["paths"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// curl, with the request target sent as written (`--path-as-is`): the response, its
/// body as curl de-chunked it.
fn curl(args: &[&str], url: &str) -> Response {
    let out = Command::new("curl")
        .args(["-s", "-S", "-i", "--path-as-is", "--max-time", "20"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    let head = http_client::parse_head(&out.stdout).unwrap_or_else(|| {
        panic!(
            "curl {args:?} {url}: no response ({})",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Response {
        status: head.status,
        headers: head.headers,
        body: out.stdout[head.len..].to_vec(),
        ending: Ending::Closed,
        took: Duration::ZERO,
        raw: out.stdout,
    }
}

/// A process the test started, killed if the test ends before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn live_stream_reaches_a_raw_reader_ffmpeg_and_opencv_whole_at_the_sources_rate() {
    let server = live_server(&[], 1);
    let base = server.http();
    wait_for_frames(&base, "cam");
    let viewer = Viewer::start(
        &base,
        "/cam/stream.mjpg",
        ViewerOptions {
            keep_every: 1,
            ..Default::default()
        },
    );
    assert!(
        viewer.wait(Duration::from_secs(10), |s| !s.parts.is_empty()),
        "no part; {:?}",
        viewer.seen().end
    );
    let from = viewer.seen().parts[0].arrived;
    std::thread::sleep(Duration::from_secs(4).saturating_sub(from.elapsed()));
    let seen = viewer.stop();
    assert_eq!(seen.status, Some(200));
    assert_eq!(seen.failure(), None, "{:?}", seen.end);
    let content_type = seen.header("content-type").unwrap_or("");
    assert_eq!(
        mjpeg_media::mjpeg::multipart::boundary_from_content_type(content_type).as_deref(),
        Ok("mjpegframe"),
        "{content_type}"
    );
    assert!(content_type.starts_with("multipart/x-mixed-replace"));
    assert!(
        seen.header("cache-control")
            .unwrap_or("")
            .contains("no-store"),
        "{:?}",
        seen.headers
    );
    let to = from + Duration::from_secs(4);
    let parts: Vec<_> = seen.parts.iter().filter(|p| p.arrived < to).collect();
    let rate = parts.len() as f64 / 4.0;
    eprintln!("raw reader: {} parts in 4 s ({rate:.2}/s)", parts.len());
    assert!((23.0..=27.0).contains(&rate), "{rate} parts a second");
    for pair in parts.windows(2) {
        assert!(
            pair[1].timestamp > pair[0].timestamp,
            "X-Timestamps go back"
        );
    }
    let ages: Vec<f64> = parts.iter().map(|p| p.age()).collect();
    let oldest = ages.iter().cloned().fold(f64::MIN, f64::max);
    eprintln!("frame ages at arrival: oldest {:.1} ms", oldest * 1000.0);
    assert!(
        ages.iter().all(|a| (-0.01..0.5).contains(a)),
        "frames not fresh: {ages:?}"
    );
    let jpegs: Vec<&[u8]> = parts
        .iter()
        .map(|p| p.jpeg.as_deref().expect("kept"))
        .collect();
    for (part, jpeg) in parts.iter().zip(&jpegs) {
        assert_eq!(part.content_length, jpeg.len());
    }
    let sizes = opencv_sizes(&jpegs);
    assert!(
        sizes.iter().all(|s| *s == Some((640, 480))),
        "OpenCV decoded {sizes:?}"
    );

    // ffmpeg, told the format and left to probe it.
    let url = format!("{base}/cam/stream.mjpg");
    for input in [&["-f", "mpjpeg"][..], &[][..]] {
        let (ok, frames, dimensions) =
            ffmpeg_framecrc(input, &url, &["-frames:v", "25"], Duration::from_secs(30));
        assert!(ok, "ffmpeg {input:?} failed");
        assert_eq!(dimensions, "640x480", "ffmpeg {input:?}");
        assert_eq!(frames.len(), 25, "ffmpeg {input:?}");
        assert!(frames.iter().all(|&s| s == 640 * 480 * 3 / 2), "{frames:?}");
    }

    // OpenCV's VideoCapture on the URL, as a script would open a camera.
    let script = r#"
import sys, cv2
capture = cv2.VideoCapture(sys.argv[1])
print("opened" if capture.isOpened() else "closed")
for _ in range(25):
    ok, frame = capture.read()
    print(f"{frame.shape[1]}x{frame.shape[0]}" if ok else "failed")
"#;
    let (status, out, err) = run_python(script, &[&url], Duration::from_secs(30));
    assert!(status.success(), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"opened"), "{out}{err}");
    assert_eq!(lines[1..].len(), 25, "{out}");
    assert!(lines[1..].iter().all(|l| *l == "640x480"), "{out}");
}

#[test]
fn clip_stream_starts_at_t_plays_at_the_clip_rate_and_ends_after_its_last_frame() {
    let clip = clip_frames();
    assert_eq!(clip.len(), 200);
    let fps = 50.0;
    let server = ServerProcess::start(&["--fps", "50", sample_clip().to_str().unwrap()], 1);
    let base = server.http();
    let url = format!("{base}/{CLIP}/stream.mjpg");
    // ffmpeg from the start and from 2 s, beside this crate's reader from 2 s.
    let whole = {
        let url = url.clone();
        std::thread::spawn(move || {
            ffmpeg_framecrc(&["-f", "mpjpeg"], &url, &[], Duration::from_secs(30))
        })
    };
    let later = {
        let url = format!("{url}?t=2");
        std::thread::spawn(move || ffmpeg_framecrc(&[], &url, &[], Duration::from_secs(30)))
    };
    let viewer = Viewer::start(
        &base,
        &format!("/{CLIP}/stream.mjpg?t=2"),
        ViewerOptions {
            keep_every: 1,
            ..Default::default()
        },
    );
    let end = viewer.wait_end(Duration::from_secs(15));
    let seen = viewer.stop();
    assert_eq!(
        end,
        Some(StreamEnd::Finished),
        "the body did not end properly"
    );
    let indices: Vec<usize> = seen
        .parts
        .iter()
        .map(|p| {
            let jpeg = p.jpeg.as_deref().unwrap();
            clip.iter()
                .position(|f| f == jpeg)
                .expect("each part is one of the clip's frames, byte for byte")
        })
        .collect();
    eprintln!(
        "from t=2: {} parts, frames {:?}..{:?}",
        indices.len(),
        indices.first(),
        indices.last()
    );
    // Frame 100 is the one at 2 s; the stream closes with the clip's last frame.
    assert_eq!(indices.first(), Some(&100));
    assert_eq!(indices.last(), Some(&199));
    assert!(indices.windows(2).all(|w| w[1] > w[0]), "{indices:?}");
    // A frame is passed over only when the reader was late; a few at most.
    assert!(
        indices.len() >= 95,
        "{} of 100 frames: {indices:?}",
        indices.len()
    );
    let span = seen.parts.last().unwrap().arrived - seen.parts[0].arrived;
    let expected = 99.0 / fps;
    assert!(
        (span.as_secs_f64() - expected).abs() < 0.3,
        "frames 100..199 took {span:?}, not {expected} s"
    );

    let (ok, whole_frames, dimensions) = whole.join().unwrap();
    assert!(ok, "ffmpeg did not exit 0 at the clip's end");
    assert_eq!(dimensions, "384x288");
    let (ok, later_frames, _) = later.join().unwrap();
    assert!(ok, "ffmpeg from t=2 did not exit 0 at the clip's end");
    eprintln!(
        "ffmpeg: {} frames from the start, {} from t=2",
        whole_frames.len(),
        later_frames.len()
    );
    assert!(
        (190..=200).contains(&whole_frames.len()),
        "{}",
        whole_frames.len()
    );
    assert!(
        (95..=100).contains(&later_frames.len()),
        "{}",
        later_frames.len()
    );
}

#[test]
fn a_looping_clip_goes_on_past_its_end() {
    let clip = clip_frames();
    let server = ServerProcess::start(
        &["--fps", "50", "--loop", sample_clip().to_str().unwrap()],
        1,
    );
    let viewer = Viewer::start(
        &server.http(),
        &format!("/{CLIP}/stream.mjpg?t=3.5"),
        ViewerOptions {
            keep_every: 1,
            ..Default::default()
        },
    );
    // Frames 175..199, then the clip again.
    let went_on = viewer.wait(Duration::from_secs(10), |s| s.parts.len() >= 75);
    let seen = viewer.stop();
    assert!(went_on, "{} parts, then {:?}", seen.parts.len(), seen.end);
    assert_eq!(
        seen.end,
        Some(StreamEnd::Stopped),
        "the stream ended by itself"
    );
    let indices: Vec<usize> = seen
        .parts
        .iter()
        .map(|p| {
            let jpeg = p.jpeg.as_deref().unwrap();
            clip.iter().position(|f| f == jpeg).expect("a clip frame")
        })
        .collect();
    assert_eq!(indices[0], 175);
    let wrap = indices
        .windows(2)
        .position(|w| w[1] < w[0])
        .expect("the clip starts over");
    assert!(indices[wrap] >= 195, "{indices:?}");
    assert!(indices[wrap + 1] <= 4, "{indices:?}");
}

#[test]
fn snapshots_of_an_on_demand_live_path_and_of_a_clip() {
    // No --always-on: the snapshot starts the source.
    let server = ServerProcess::start(&["--source", CAM, sample_clip().to_str().unwrap()], 2);
    let base = server.http();
    let paths = curl(&[], &format!("{base}/api/paths")).json();
    assert_eq!(path_entry(&paths, "cam")["source"], "idle", "{paths}");

    let asked = Instant::now();
    let first = curl(&[], &format!("{base}/cam/snapshot.jpg"));
    eprintln!("an idle source's first snapshot took {:?}", asked.elapsed());
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("content-type"), Some("image/jpeg"));
    assert!(
        first
            .header("cache-control")
            .unwrap_or("")
            .contains("no-store")
    );
    let made: f64 = first
        .header("x-timestamp")
        .and_then(|t| t.parse().ok())
        .expect("an X-Timestamp");
    assert!((unix_now() - made).abs() < 10.0);
    assert_eq!(opencv_sizes(&[&first.body]), vec![Some((640, 480))]);
    let paths = curl(&[], &format!("{base}/api/paths")).json();
    assert_eq!(path_entry(&paths, "cam")["source"], "up", "{paths}");
    // Live: a later snapshot is a later frame.
    std::thread::sleep(Duration::from_millis(200));
    let second = curl(&[], &format!("{base}/cam/snapshot.jpg"));
    let made_later: f64 = second.header("x-timestamp").unwrap().parse().unwrap();
    assert!(made_later > made, "{made_later} after {made}");

    // A clip: the frame at ?t= (20 fps by default), with a tag to revalidate by, read by
    // Python's urllib as a dashboard would.
    let clip = clip_frames();
    let script = r#"
import json, sys, urllib.request, urllib.error
url = sys.argv[1]
def fetch(url, headers={}):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()
out = {}
for t in ["", "?t=1.5", "?t=9.95"]:
    status, headers, body = fetch(url + t)
    out[t] = {"status": status, "etag": headers.get("etag"), "cache": headers.get("cache-control"),
              "type": headers.get("content-type"), "body": body.hex()}
    status, headers, body = fetch(url + t, {"If-None-Match": headers.get("etag") or ""})
    out[t]["revalidated"] = {"status": status, "etag": headers.get("etag"), "body": len(body)}
status, headers, body = fetch(url + "?t=1.5", {"If-None-Match": '"0-0000000000000000"'})
out["stale"] = {"status": status, "body": len(body)}
print(json.dumps(out))
"#;
    let (status, out, err) = run_python(
        script,
        &[format!("{base}/{CLIP}/snapshot.jpg")],
        Duration::from_secs(30),
    );
    assert!(status.success(), "{err}");
    let answers: Value = serde_json::from_str(&out).expect("the script's JSON");
    let mut tags = Vec::new();
    for (t, frame) in [("", 0), ("?t=1.5", 30), ("?t=9.95", 199)] {
        let a = &answers[t];
        assert_eq!(a["status"], 200, "{t}: {a}");
        assert_eq!(a["type"], "image/jpeg");
        assert_eq!(a["cache"], "no-cache");
        let body = hex(a["body"].as_str().unwrap());
        assert!(body == clip[frame], "{t}: not frame {frame}");
        let tag = a["etag"].as_str().expect("an ETag").to_string();
        assert_eq!(a["revalidated"]["status"], 304, "{t}: {a}");
        assert_eq!(a["revalidated"]["body"], 0);
        assert_eq!(a["revalidated"]["etag"].as_str(), Some(tag.as_str()));
        tags.push(tag);
    }
    assert_eq!(opencv_sizes(&[&clip[30]]), vec![Some((384, 288))]);
    tags.dedup();
    assert_eq!(tags.len(), 3, "one tag per frame: {tags:?}");
    assert_eq!(answers["stale"]["status"], 200);
    assert!(answers["stale"]["body"].as_u64().unwrap() > 0);
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn api_paths_and_sessions_list_http_and_rtsp_viewers() {
    let server = live_server(&[sample_clip().to_str().unwrap()], 2);
    let base = server.http();
    wait_for_frames(&base, "cam");
    let viewer = Viewer::start(&base, "/cam/stream.mjpg", ViewerOptions::default());
    let rtsp = KillOnDrop(
        Command::new("gst-launch-1.0")
            .args(["-q", "rtspsrc", &format!("location={}", server.url("cam"))])
            .args(["protocols=udp", "!", "fakesink"])
            .env_remove("GST_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0 runs"),
    );
    // Two seconds of history, and the RTSP viewer playing.
    std::thread::sleep(Duration::from_millis(2500));
    let sessions = curl(&[], &format!("{base}/api/sessions"));
    assert_eq!(sessions.header("content-type"), Some("application/json"));
    let sessions = sessions.json();
    let list = sessions["sessions"].as_array().expect("sessions[]");
    let http: Vec<&Value> = list.iter().filter(|s| s["transport"] == "http").collect();
    assert_eq!(http.len(), 1, "{sessions:#}");
    let h = http[0];
    assert!(h["id"].as_str().unwrap().starts_with('H'), "{h}");
    assert_eq!(h["dialect"], "http");
    assert_eq!(h["path"], "cam");
    assert_eq!(h["state"], "playing");
    assert_eq!(h["client"], viewer.local.to_string());
    let fps = h["fps"].as_f64().expect("fps");
    assert!((22.0..=28.0).contains(&fps), "fps {fps}");
    let received = viewer.seen().parts.len() as u64;
    let sent = h["frames_sent"].as_u64().unwrap();
    assert!(
        sent + 2 >= received && sent <= received + 5,
        "sent {sent}, received {received}"
    );
    let history = h["history"].as_array().expect("history[]");
    assert!(!history.is_empty(), "{h}");
    for sample in history {
        assert!(sample["t_s"].as_f64().is_some() && sample["fps"].as_f64().is_some());
    }
    let last = history.last().unwrap()["fps"].as_f64().unwrap();
    assert!((20.0..=30.0).contains(&last), "history {history:?}");
    let rtsp_sessions: Vec<&Value> = list.iter().filter(|s| s["transport"] == "udp").collect();
    assert_eq!(rtsp_sessions.len(), 1, "rtspsrc's session: {sessions:#}");
    assert_eq!(rtsp_sessions[0]["path"], "cam");
    assert_eq!(rtsp_sessions[0]["dialect"], "rtsp");
    assert!(sessions["uptime_s"].as_f64().unwrap() > 0.0);

    let paths = get(&base, "/api/paths", "").json();
    let cam = path_entry(&paths, "cam");
    assert_eq!(cam["kind"], "live", "{cam}");
    assert_eq!(cam["source"], "up");
    assert_eq!(cam["http_viewers"], 1);
    assert_eq!(cam["sessions"], 1);
    assert_eq!(
        (cam["width"].as_u64(), cam["height"].as_u64()),
        (Some(640), Some(480))
    );
    let source_fps = cam["fps"].as_f64().unwrap();
    assert!((22.0..=28.0).contains(&source_fps), "{cam}");
    assert_eq!(cam["stream_url"], "/cam/stream.mjpg");
    assert_eq!(cam["snapshot_url"], "/cam/snapshot.jpg");
    assert_eq!(cam["rtsp_path"], "/cam");
    let sample = path_entry(&paths, CLIP);
    assert_eq!(sample["kind"], "clip", "{paths}");
    assert_eq!(sample["http_viewers"], 0);
    assert_eq!(
        (sample["width"].as_u64(), sample["height"].as_u64()),
        (Some(384), Some(288))
    );
    assert_eq!(sample["frames_in"], 200);

    // The viewers leave: the lists follow.
    drop(rtsp);
    let id = h["id"].as_str().unwrap().to_string();
    viewer.stop();
    let gone = wait_until(Duration::from_secs(5), || {
        let sessions = get(&base, "/api/sessions", "").json();
        let cam = path_entry(&get(&base, "/api/paths", "").json(), "cam");
        sessions["sessions"]
            .as_array()
            .is_some_and(|l| l.iter().all(|s| s["id"] != id.as_str()))
            && cam["http_viewers"] == 0
    });
    assert!(gone, "{}", get(&base, "/api/sessions", "").text());
}

#[test]
fn metrics_parse_as_openmetrics_and_follow_the_viewers() {
    let server = live_server(&[], 1);
    let base = server.http();
    wait_for_frames(&base, "cam");
    let viewer = Viewer::start(&base, "/cam/stream.mjpg", ViewerOptions::default());
    assert!(viewer.wait(Duration::from_secs(10), |s| s.parts.len() >= 10));
    let first = scrape(&base);
    std::thread::sleep(Duration::from_secs(1));
    let second = scrape(&base);
    assert!(
        first["content_type"]
            .as_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{}",
        first["content_type"]
    );
    assert_eq!(first["types"]["mjpeg_frames_sent"], "counter");
    assert_eq!(first["types"]["mjpeg_sessions"], "gauge");
    let http = [("path", "cam"), ("transport", "http")];
    for scraped in [&first, &second] {
        let samples = &scraped["samples"];
        assert_eq!(
            sample(samples, "mjpeg_sessions", &http),
            Some(1.0),
            "{samples}"
        );
        assert_eq!(
            sample(samples, "mjpeg_http_viewers", &[("path", "cam")]),
            Some(1.0)
        );
        assert_eq!(
            sample(
                samples,
                "mjpeg_source_up",
                &[("path", "cam"), ("kind", "live")]
            ),
            Some(1.0)
        );
        assert!(sample(samples, "mjpeg_uptime_seconds", &[]).unwrap() > 0.0);
    }
    let sent = |s: &Value| sample(&s["samples"], "mjpeg_frames_sent_total", &http).unwrap();
    let made =
        |s: &Value| sample(&s["samples"], "mjpeg_frames_in_total", &[("path", "cam")]).unwrap();
    eprintln!(
        "frames sent {} then {}, made {} then {}",
        sent(&first),
        sent(&second),
        made(&first),
        made(&second)
    );
    assert!(
        sent(&second) - sent(&first) >= 15.0,
        "frames_sent_total barely grew"
    );
    assert!(
        made(&second) - made(&first) >= 15.0,
        "frames_in_total barely grew"
    );
    // The Prometheus text parser reads the same numbers.
    match second.get("prometheus") {
        Some(samples) => {
            let sessions = sample(samples, "mjpeg_sessions", &http);
            assert_eq!(sessions, Some(1.0), "{samples}");
            assert_eq!(
                sample(samples, "mjpeg_frames_sent_total", &http),
                Some(sent(&second))
            );
        }
        None => panic!(
            "the Prometheus text parser refused /metrics: {}",
            second["prometheus_error"]
        ),
    }

    // The viewer leaves: no open session, the total does not go back.
    viewer.stop();
    let before = sent(&second);
    let after = scrape(&base);
    let samples = &after["samples"];
    // Its series reads 0, rather than going away.
    assert_eq!(
        sample(samples, "mjpeg_sessions", &http),
        Some(0.0),
        "{samples}"
    );
    assert_eq!(
        sample(samples, "mjpeg_http_viewers", &[("path", "cam")]),
        Some(0.0)
    );
    assert!(sample(samples, "mjpeg_frames_sent_total", &http).unwrap() >= before);
}

#[test]
fn status_page_is_html_and_head_of_a_stream_gives_its_headers() {
    let server = live_server(&[], 1);
    let base = server.http();
    let page = curl(&[], &format!("{base}/"));
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap_or("")
            .starts_with("text/html"),
        "{:?}",
        page.headers
    );
    assert!(page.text().to_ascii_lowercase().contains("<!doctype html"));
    let head = curl(&["-I"], &format!("{base}/cam/stream.mjpg"));
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("multipart/x-mixed-replace;boundary=mjpegframe")
    );
    assert!(head.body.is_empty());
}

#[test]
fn over_max_sessions_a_viewer_is_refused_with_503_and_retry_after() {
    let server = live_server(&["--max-sessions", "1"], 1);
    let base = server.http();
    wait_for_frames(&base, "cam");
    let viewer = Viewer::start(&base, "/cam/stream.mjpg", ViewerOptions::default());
    assert!(viewer.wait(Duration::from_secs(10), |s| !s.parts.is_empty()));
    let refused = curl(&[], &format!("{base}/cam/stream.mjpg"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(refused.header("retry-after").is_some());
    // A snapshot is no session.
    assert_eq!(curl(&[], &format!("{base}/cam/snapshot.jpg")).status, 200);
    let seen = viewer.stop();
    assert_eq!(seen.failure(), None);
    // Its place is free again.
    let next = Viewer::start(&base, "/cam/stream.mjpg", ViewerOptions::default());
    let ok = wait_until(Duration::from_secs(10), || {
        !next.seen().parts.is_empty() || next.seen().end.is_some()
    });
    assert!(ok && !next.seen().parts.is_empty(), "{:?}", next.seen().end);
}

/// How long the server took to close a connection on which the client sends `bytes`
/// (the first at once, then one each `every`) and then nothing; `None` if it was still
/// open after `limit`.
fn closed_after(base: &str, bytes: &[u8], every: Duration, limit: Duration) -> Option<Duration> {
    use std::io::Read;
    let mut stream = TcpStream::connect(addr_of(base)).expect("connect");
    let start = Instant::now();
    let mut sent = 0;
    let mut buf = [0u8; 4096];
    loop {
        if sent < bytes.len() && start.elapsed() >= every * sent as u32 {
            if stream.write_all(&bytes[sent..sent + 1]).is_err() {
                return Some(start.elapsed());
            }
            sent += 1;
        }
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return None;
        }
        stream
            .set_read_timeout(Some(left.min(Duration::from_millis(100))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            // An answer (a 408, say) before the close.
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
}

#[test]
fn bad_requests_get_clear_answers_and_leave_a_viewer_beside_them_streaming() {
    // 200 abandoned connections: more than one address may hold by default.
    let server = live_server(
        &[
            "--max-connections-per-ip",
            "0",
            sample_clip().to_str().unwrap(),
        ],
        2,
    );
    let base = server.http();
    let addr = addr_of(&base);
    wait_for_frames(&base, "cam");
    let viewer = Viewer::start(&base, "/cam/stream.mjpg", ViewerOptions::default());
    assert!(viewer.wait(Duration::from_secs(10), |s| !s.parts.is_empty()));
    let made = || path_entry(&get(&base, "/api/paths", "").json(), "cam")["frames_in"].as_u64();
    let made_before = made().unwrap();
    let watch_from = Instant::now();

    // The slow ones, on threads: a head a byte a second, and a client that says nothing.
    let slow = {
        let base = base.clone();
        std::thread::spawn(move || {
            closed_after(
                &base,
                b"GET /cam/snapshot.jpg HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n",
                Duration::from_secs(1),
                Duration::from_secs(20),
            )
        })
    };
    let silent = {
        let base = base.clone();
        std::thread::spawn(move || {
            closed_after(&base, b"", Duration::ZERO, Duration::from_secs(20))
        })
    };

    // Unknown things.
    for target in [
        "/nothing",
        "/cam/other",
        "/cam",
        "/nope/stream.mjpg",
        "/nope/snapshot.jpg",
    ] {
        let r = curl(&[], &format!("{base}{target}"));
        assert_eq!(r.status, 404, "{target}: {}", r.text());
    }
    // Methods other than GET and HEAD.
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let r = curl(
            &["-X", method, "--data", "x"],
            &format!("{base}/cam/stream.mjpg"),
        );
        assert_eq!(r.status, 405, "{method}: {}", r.text());
        let allow = r.header("allow").unwrap_or("");
        assert!(
            allow.contains("GET") && allow.contains("HEAD"),
            "{method}: Allow {allow:?}"
        );
    }
    // Path tricks, as written (curl --path-as-is, and raw).
    for target in [
        "/../x",
        "/../cam/stream.mjpg",
        "/cam/../cam/stream.mjpg",
        "/a%2Fb/stream.mjpg",
        "/%2e%2e/stream.mjpg",
        "/%2e%2e%2fcam/snapshot.jpg",
        "/cam%00/stream.mjpg",
        "//stream.mjpg",
    ] {
        let r = curl(&[], &format!("{base}{target}"));
        assert!(
            matches!(r.status, 400 | 404),
            "{target}: {} {}",
            r.status,
            r.text()
        );
        let raw = raw_request(
            addr,
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(10),
        );
        assert!(matches!(raw.status, 400 | 404), "{target}: {:?}", raw.raw);
    }
    for target in [
        "/a%2Fb/stream.mjpg",
        "/%2e%2e/stream.mjpg",
        "/cam/../cam/stream.mjpg",
    ] {
        assert_eq!(
            curl(&[], &format!("{base}{target}")).status,
            400,
            "{target}"
        );
    }
    // Bad start times.
    for query in ["t=abc", "t=-1", "t=nan", "t=1e999", "t=100000"] {
        for endpoint in ["stream.mjpg", "snapshot.jpg"] {
            let r = curl(&[], &format!("{base}/{CLIP}/{endpoint}?{query}"));
            assert_eq!(r.status, 400, "{endpoint}?{query}: {}", r.text());
        }
    }
    // An oversized head: 431, or the connection closed without an answer.
    let big = format!(
        "GET /cam/snapshot.jpg HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let r = raw_request(addr, big.as_bytes(), Duration::from_secs(10));
    assert!(
        r.status == 431 || (r.status == 0 && r.ending != Ending::Open),
        "a 64 KiB head: status {}, {:?}",
        r.status,
        r.ending
    );
    // Not HTTP at all (a TLS ClientHello's start).
    let r = raw_request(
        addr,
        &[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, b'\r', b'\n', b'\r',
            b'\n',
        ],
        Duration::from_secs(10),
    );
    assert!(matches!(r.status, 0 | 400), "{:?}", r.raw);
    assert_ne!(r.ending, Ending::Open, "garbage left the connection open");

    // 200 connections opened, some with half a request, and abandoned; half of them
    // reset. The server lets go of every one.
    let open_files = || {
        std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
            .expect("the server's /proc/PID/fd")
            .count()
    };
    let files_before = open_files();
    let mut abandoned = Vec::new();
    for n in 0..200 {
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.connect(&addr.into()).expect("connect");
        if n % 2 == 0 {
            socket.set_linger(Some(Duration::ZERO)).unwrap();
        }
        let mut stream: TcpStream = socket.into();
        if n % 3 == 0 {
            let _ = stream.write_all(b"GET /cam/stream.mjpg HTTP/1.1\r\nHost");
        }
        abandoned.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let files_meanwhile = open_files();
    drop(abandoned);
    // The server still answers.
    let r = get(&base, "/cam/snapshot.jpg", "");
    assert_eq!(r.status, 200);
    let released = wait_until(Duration::from_secs(5), || open_files() <= files_before);
    eprintln!(
        "the server's open files: {files_before}, {files_meanwhile} with 200 more \
         connections, {} after they were abandoned",
        open_files()
    );
    assert!(released, "the server kept abandoned connections open");

    let slow = slow.join().unwrap();
    let silent = silent.join().unwrap();
    eprintln!(
        "a head sent a byte a second was closed after {slow:?}; a silent client after {silent:?}"
    );
    let slow = slow.expect("the byte-a-second client was never closed");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(13)).contains(&slow),
        "closed after {slow:?}"
    );
    let silent = silent.expect("the silent client was never closed");
    assert!(silent < Duration::from_secs(13), "closed after {silent:?}");

    // The viewer beside all of it kept the source's rate: it got every frame the source
    // made meanwhile (but those on their way at either end).
    let to = Instant::now();
    let made_after = made().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let seen = viewer.stop();
    assert_eq!(seen.failure(), None, "{:?}", seen.end);
    let received = seen.parts_between(watch_from, to) as u64;
    let made = made_after - made_before;
    let rate = seen.rate_between(watch_from, to);
    let longest_gap = seen
        .parts
        .windows(2)
        .map(|w| w[1].arrived - w[0].arrived)
        .max()
        .unwrap();
    eprintln!(
        "the viewer beside them: {received} parts of the {made} frames made over {:?} \
         ({rate:.2}/s), the longest gap {longest_gap:?}",
        to - watch_from
    );
    assert!(rate >= 23.0, "{rate} parts/s");
    assert!(
        received + 3 >= made,
        "{received} parts of {made} frames made"
    );
}

#[test]
fn a_viewer_that_stops_reading_is_closed_and_frees_its_slot_and_the_source() {
    // On demand (not always on), with a short linger: the stalled viewer alone keeps the
    // source running until it is closed.
    let server = ServerProcess::start_with_stats(&["--linger", "0.5", "--source", CAM], 1);
    let base = server.http();
    // A client that asks for the stream and then never reads, with a small receive
    // buffer: its window closes after a few frames.
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr_of(&base).into()).unwrap();
    let mut stalled: TcpStream = socket.into();
    stalled
        .write_all(b"GET /cam/stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let listed = |sessions: &Value| {
        sessions["sessions"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["transport"] == "http").count())
    };
    assert!(
        wait_until(Duration::from_secs(20), || {
            listed(&get(&base, "/api/sessions", "").json()) == 1
        }),
        "the viewer is not listed"
    );
    let line = server.wait_for_log(&["took nothing for 10 s, closed"], Duration::from_secs(30));
    assert!(line.contains("HTTP viewer H"), "{line}");
    assert!(
        wait_until(Duration::from_secs(5), || {
            listed(&get(&base, "/api/sessions", "").json()) == 0
        }),
        "the stalled viewer is still listed"
    );
    // The statistics say why it ended.
    assert!(
        wait_until(Duration::from_secs(5), || {
            server
                .closed_sessions()
                .iter()
                .any(|c| c["reason"] == "stalled (its socket took nothing)")
        }),
        "no stalled viewer in the closed sessions: {:?}",
        server.closed_sessions()
    );
    // With nobody watching, the on-demand source stops after its linger.
    assert!(
        wait_until(Duration::from_secs(10), || {
            let paths = get(&base, "/api/paths", "").json();
            path_entry(&paths, "cam")["source"] == "idle"
        }),
        "the source kept running: {}",
        get(&base, "/api/paths", "").text()
    );
    // Its connection is gone: reading ends (after what the kernel had buffered).
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sink = Vec::new();
    let end = std::io::Read::read_to_end(&mut stalled, &mut sink);
    assert!(
        end.is_ok()
            || end
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the connection is still open: {end:?}"
    );
}
