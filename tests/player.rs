//! mjpeg-player end to end, headless unless said otherwise: it plays from our server over
//! UDP and TCP (its statistics checked against the packets the clip makes), from
//! gst-rtsp-server, from our server's lab dialect; the pause and seek keys act on the
//! stream; under Xvfb its window shows the video with the statistics overlay.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::lab_server::{LabOptions, LabServer};
use mjpeg_rtsp_tests::relay::{DropPolicy, LossyProxy};
use mjpeg_rtsp_tests::rtsp::{Served, serve};
use mjpeg_rtsp_tests::*;
use serde_json::Value;

fn player_binary() -> PathBuf {
    plugin_dir().join("mjpeg-player")
}

/// Runs the player to its end (at most `timeout`), stdin closed, no display.
fn play(args: &[&str], timeout: Duration) -> Output {
    let mut child = Command::new(player_binary())
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mjpeg-player runs (cargo build -p mjpeg-rtsp-apps)");
    wait_output(&mut child, timeout)
}

fn wait_output(child: &mut Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = Vec::new();
    let mut err = Vec::new();
    use std::io::Read;
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_end(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut err);
    }
    Output {
        status: child.wait().expect("wait"),
        stdout: out,
        stderr: err,
    }
}

/// The receiver reports our server had from the player (its only client), as every
/// statistics report so far lists them, once one listed the first (waiting up to 5 s).
fn receiver_reports_heard(served: &Served) -> Vec<Value> {
    let heard = |r: &Value| {
        r["sessions"]
            .as_array()
            .is_some_and(|s| s.len() == 1 && !s[0]["receiver_report"].is_null())
    };
    served.server.wait_for_stats(
        "a receiver report from the player",
        heard,
        Duration::from_secs(5),
    );
    served
        .server
        .reports()
        .iter()
        .filter(|r| heard(r))
        .map(|r| r["sessions"][0]["receiver_report"].clone())
        .collect()
}

/// A value, as written, from the flat JSON object the player writes.
fn json_value<'a>(json: &'a str, key: &str) -> &'a str {
    let at = json
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {json}"));
    let rest = &json[at + key.len() + 4..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim()
}

/// A number from the flat JSON object the player writes.
fn json_number(json: &str, key: &str) -> f64 {
    json_value(json, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {json}"))
}

/// A string from the flat JSON object the player writes.
fn json_string<'a>(json: &'a str, key: &str) -> &'a str {
    json_value(json, key)
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} is not a string in {json}"))
}

/// A boolean from the flat JSON object the player writes.
fn json_bool(json: &str, key: &str) -> bool {
    match json_value(json, key) {
        "true" => true,
        "false" => false,
        _ => panic!("{key} is not a boolean in {json}"),
    }
}

/// Lab streams' timestamps are Unix seconds: the player gives no jitter for them.
fn assert_no_lab_jitter(stdout: &str, json: &str) {
    assert!(stdout.contains("\njitter: n/a\n"), "{stdout}");
    assert_eq!(json_value(json, "jitter_ms"), "null", "{json}");
}

/// What a successful run printed and wrote.
struct Played {
    stdout: String,
    json: String,
}

/// Runs the player with `args` and `--stats-json`; it must succeed.
fn play_for_json(args: &[&str]) -> Played {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("stats.json");
    let mut all = vec!["--stats-json", json_path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = play(&all, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    Played {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        json: std::fs::read_to_string(&json_path).unwrap(),
    }
}

fn frames() -> Vec<Vec<u8>> {
    encode_jpegs(40, 320, 240, "ball")
}

/// RTP packets the project's payloader makes of `frames` at MTU 1400 (what the server
/// sends for the whole clip).
fn packets_for(frames: &[Vec<u8>]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_file(dir.path(), "clip.Mjpeg", &lab_file(frames));
    let run = run_pipeline(
        &format!(
            "mjpegfilesrc location={} ! rtpmjpegpay mtu=1400 ! appsink name=sink sync=false",
            clip.display()
        ),
        Duration::from_secs(30),
    );
    run.buffers().len()
}

fn whole_clip_over(transport: &str) {
    // 4 s: longer than the monitor's first RTCP interval (at most 3.1 s), so the server
    // hears at least one receiver report.
    let frames = encode_jpegs(100, 320, 240, "ball");
    let served = serve(&frames, &["--fps", "25"]);
    let Played { stdout, json } = play_for_json(&["--transport", transport, &served.url]);
    // No display (and no --headless): it played headless, into a fake sink.
    assert!(json_bool(&json, "headless"), "{json}");
    assert_eq!(json_string(&json, "video_sink"), "fakesink", "{json}");
    // No --frames or --duration: the server's BYE ended the run.
    assert_eq!(json_string(&json, "ended_by"), "server", "{json}");
    assert_eq!(json_string(&json, "dialect"), "rtsp", "{json}");
    assert!(!json_bool(&json, "transport_fallback"), "{json}");
    let sent = packets_for(&frames) as f64;
    assert_eq!(
        json_number(&json, "frames_shown"),
        frames.len() as f64,
        "{json}"
    );
    // RFC 3550 A.1: the first packet only starts the source's probation; counting starts
    // with the second (base_seq), so a lossless stream of N packets is N - 1 expected
    // and N - 1 received.
    assert_eq!(json_number(&json, "packets_expected"), sent - 1.0, "{json}");
    assert_eq!(json_number(&json, "packets_received"), sent - 1.0, "{json}");
    assert_eq!(json_number(&json, "packets_lost"), 0.0, "{json}");
    assert!(
        json.contains(&format!("\"transport\": \"{transport}\"")),
        "{json}"
    );
    assert!(stdout.contains("RTP packet loss rate: 0.00%"), "{stdout}");
    let jitter = json_number(&json, "jitter_ms");
    assert!(jitter.is_finite() && jitter >= 0.0, "{json}");
    assert!(
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("jitter: ")?.strip_suffix(" ms"))
            .any(|j| j.parse::<f64>().is_ok()),
        "{stdout}"
    );
    let reports = receiver_reports_heard(&served);
    assert!(
        reports.iter().all(|r| r["fraction_lost"] == 0.0),
        "{reports:?}"
    );
}

#[test]
fn plays_a_whole_clip_over_udp_with_exact_statistics() {
    whole_clip_over("udp");
}

#[test]
fn plays_a_whole_clip_over_tcp_with_exact_statistics() {
    whole_clip_over("tcp");
}

/// gst-rtsp-server (tests/scripts/gst-rtsp-server.py) serving `frames`, killed on drop.
struct GstRtspServer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for GstRtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gst_rtsp_server(frames: &[Vec<u8>], options: &[&str]) -> GstRtspServer {
    let Some(python) = ["/usr/bin/python3", "python3"].into_iter().find(|p| {
        Command::new(p)
            .args([
                "-c",
                "import gi; gi.require_version('GstRtspServer', '1.0')",
            ])
            .output()
            .is_ok_and(|o| o.status.success())
    }) else {
        panic!(
            "no Python with GstRtspServer: apt-get install python3-gi gir1.2-gst-rtsp-server-1.0"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let clip = write_file(dir.path(), "clip.Mjpeg", &lab_file(frames));
    let mut child = Command::new(python)
        .arg(workspace_root().join("tests/scripts/gst-rtsp-server.py"))
        .args(["--port", "0", "--fps", "50"])
        .args(options)
        .arg(&clip)
        .env("GST_PLUGIN_PATH", plugin_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the gst-rtsp-server script runs");
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with("rtsp://"), "the script printed {url:?}");
    GstRtspServer {
        child,
        url: url.trim().to_string(),
        _dir: dir,
    }
}

#[test]
fn plays_60_frames_from_gst_rtsp_server() {
    let server = gst_rtsp_server(&frames(), &[]);
    for transport in ["udp", "tcp"] {
        let Played { json, .. } =
            play_for_json(&["--transport", transport, "--frames", "60", &server.url]);
        assert!(json_number(&json, "frames_shown") >= 60.0, "{json}");
        assert_eq!(json_number(&json, "packets_lost"), 0.0, "{json}");
    }
}

#[test]
fn answers_basic_and_digest_challenges_with_the_urls_credentials() {
    for mode in ["--credentials=us er:p@ss", "--digest"] {
        let options: Vec<&str> = if mode == "--digest" {
            vec!["--credentials=us er:p@ss", "--digest"]
        } else {
            vec![mode]
        };
        let server = gst_rtsp_server(&frames(), &options);
        let with = |userinfo: &str| {
            server
                .url
                .replacen("rtsp://", &format!("rtsp://{userinfo}"), 1)
        };
        let out = play(&["--frames", "20", &server.url], Duration::from_secs(20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {err}");
        assert!(err.contains("wants credentials (401)"), "{mode}: {err}");
        let out = play(
            &["--frames", "20", &with("us%20er:wrong@")],
            Duration::from_secs(20),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{mode}: {err}");
        assert!(err.contains("refused the credentials"), "{mode}: {err}");
        let out = play(
            &["--frames", "20", &with("us%20er:p%40ss@")],
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("frames shown: 2"));
    }
}

#[test]
fn plays_our_servers_lab_dialect() {
    let frames = frames();
    let served = serve(&frames, &["--fps", "50"]);
    let Played { stdout, json } = play_for_json(&["--lab", "--frames", "30", &served.url]);
    assert_eq!(json_string(&json, "dialect"), "lab", "{json}");
    assert!(json_number(&json, "frames_shown") >= 30.0, "{json}");
    assert_eq!(json_number(&json, "packets_lost"), 0.0, "{json}");
    assert_no_lab_jitter(&stdout, &json);
    served.server.wait_for_stats(
        "the player's session in the lab dialect",
        |r| {
            r["sessions"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|s| s["dialect"] == "lab" && s["transport"] == "lab-udp")
            })
        },
        Duration::from_secs(5),
    );
}

/// The frames of a recording, as indexes into the clip (by their scan data).
fn recorded_frame_numbers(recording: &Path, clip: &[Vec<u8>]) -> Vec<usize> {
    let bytes = std::fs::read(recording).unwrap();
    let mut numbers = Vec::new();
    let mut pos = 0;
    while pos + 5 <= bytes.len() {
        let len: usize = std::str::from_utf8(&bytes[pos..pos + 5])
            .unwrap()
            .parse()
            .unwrap();
        let jpeg = &bytes[pos + 5..pos + 5 + len];
        let scan = scan_data(jpeg);
        let n = clip
            .iter()
            .position(|f| scan_data(f) == scan)
            .expect("a frame of the clip");
        numbers.push(n);
        pos += 5 + len;
    }
    numbers
}

/// Serves `clip` at 20 frames/s and plays it with `--record`, typing each key after a
/// second of play and waiting the milliseconds given after it, then `q`. Returns the
/// player's `--stats-json` and the clip's frame numbers as recorded.
fn play_with_keys(clip: &[Vec<u8>], keys: &[(&[u8], u64)]) -> (String, Vec<usize>) {
    let served: Served = serve(clip, &["--fps", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("rec.Mjpeg");
    let json_path = dir.path().join("stats.json");
    let mut child = Command::new(player_binary())
        .args([
            "--headless",
            "--record",
            recording.to_str().unwrap(),
            "--stats-json",
            json_path.to_str().unwrap(),
            &served.url,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    for (key, then) in keys.iter().copied().chain([(&b"q"[..], 0)]) {
        stdin.write_all(key).unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(then));
    }
    let out = wait_output(&mut child, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let numbers = recorded_frame_numbers(&recording, clip);
    let json = std::fs::read_to_string(&json_path).unwrap();
    // The closing `q` ended the run.
    assert_eq!(json_string(&json, "ended_by"), "user", "{json}");
    (json, numbers)
}

#[test]
fn pause_and_seek_keys_act_on_the_stream() {
    // 300 distinct frames at 20 fps: 15 s, so a seek of +5 s lands inside.
    let clip = encode_jpegs(300, 160, 120, "ball");
    let (json, numbers) = play_with_keys(
        &clip,
        &[
            (b" ", 1000),     // pause for 1 s
            (b" ", 500),      // play
            (b"\x1b[C", 800), // right: +5 s
        ],
    );
    // One pause, one resume, one seek, each carried out by the server.
    for (key, count) in [("pauses", 1.0), ("resumes", 1.0), ("seeks", 1.0)] {
        assert_eq!(json_number(&json, key), count, "{key} in {json}");
    }
    // Before the seek, frames follow each other, across the pause; then one jump forward
    // of about 5 s (100 frames) plus the time since the last PLAY.
    let jumps: Vec<(usize, usize)> = numbers
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert_eq!(jumps.len(), 1, "{numbers:?}");
    let (from, to) = jumps[0];
    assert!(
        to > from + 90 && to < from + 130,
        "jump {from} -> {to}: {numbers:?}"
    );
    // Paused 1 s of a 3.3 s run: far fewer frames than 3.3 s at 20 fps would give.
    let before_seek = numbers.iter().position(|&n| n == to).unwrap();
    assert!(
        before_seek < 45,
        "{before_seek} frames before the seek: the pause did not stop them"
    );
}

#[test]
fn the_window_shows_the_video_and_the_overlay() {
    // A solid red clip: the video is red, the overlay's shaded box and text are not.
    let red = encode_jpegs(200, 320, 240, "red");
    let served = serve(&red, &["--fps", "20", "--loop"]);
    let dir = tempfile::tempdir().unwrap();
    let is_red = |p: &[u8]| p[0] > 200 && p[1] < 60 && p[2] < 60;
    let pixel = |rgb: &[u8], x: usize, y: usize| rgb[(y * 640 + x) * 3..][..3].to_vec();
    // Screenshots every half second from 1 s to about 6 s after the player starts (the window
    // may take a while to map on a loaded machine); the last with video is checked.
    let shot = |overlay: bool| -> Vec<u8> {
        let shots = dir.path().join(format!("overlay-{overlay}"));
        std::fs::create_dir_all(&shots).unwrap();
        let script = format!(
            "{player} {overlay} {url} & pid=$!; sleep 1; \
             for i in $(seq 10 18); do \
               gst-launch-1.0 -q ximagesrc num-buffers=1 ! videoconvert \
                 ! video/x-raw,format=RGB ! filesink location={shots}/$i.rgb; sleep 0.5; \
             done; kill $pid; wait $pid 2>/dev/null; true",
            player = player_binary().display(),
            overlay = if overlay { "" } else { "--no-overlay" },
            url = served.url,
            shots = shots.display(),
        );
        let out = Command::new("xvfb-run")
            .args(["-a", "-s", "-screen 0 640x480x24", "sh", "-c", &script])
            .output()
            .expect("xvfb-run (apt-get install xvfb xauth)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (10..=18)
            .rev()
            .filter_map(|i| std::fs::read(shots.join(format!("{i}.rgb"))).ok())
            .find(|rgb| rgb.len() == 640 * 480 * 3 && is_red(&pixel(rgb, 160, 200)))
            .expect("no screenshot shows the video (the middle of the window is not red)")
    };
    let with = shot(true);
    // The overlay: in the top-left box, pixels that are not red (shade and text).
    let box_not_red = (5..60)
        .flat_map(|y| (5..150).map(move |x| (x, y)))
        .filter(|&(x, y)| !is_red(&pixel(&with, x, y)))
        .count();
    assert!(
        box_not_red > 1000,
        "no overlay: {box_not_red} non-red pixels in its box"
    );
    let without = shot(false);
    let plain_not_red = (5..60)
        .flat_map(|y| (5..150).map(move |x| (x, y)))
        .filter(|&(x, y)| !is_red(&pixel(&without, x, y)))
        .count();
    assert!(
        plain_not_red < 50,
        "{plain_not_red} non-red pixels without the overlay"
    );
}

/// A seed whose first packets all pass (RFC 3550 A.1: a source is counted from its
/// second packet, after two in sequence; a loss there is not visible to any receiver).
fn seed_passing_the_first_packets(p: f64) -> u64 {
    (1..)
        .find(|&seed| (1..=4).all(|i| !DropPolicy::Probability { p, seed }.drops(i)))
        .unwrap()
}

#[test]
fn reported_loss_equals_the_relays_own_count() {
    let frames = encode_jpegs(100, 320, 240, "ball");
    let served = serve(&frames, &["--fps", "25", "--no-adapt"]);
    let seed = seed_passing_the_first_packets(0.05);
    let proxy = LossyProxy::start(
        served.server.addr,
        DropPolicy::Probability { p: 0.05, seed },
    );
    let Played { json, .. } = play_for_json(&[&proxy.proxied(&served.url)]);
    let counts = proxy.counts();
    let relayed = counts.single();
    assert!(
        relayed.dropped > 10,
        "too few drops to mean anything: {relayed:?}"
    );
    // Exactly the relay's drops between the first and last packet the player got.
    assert_eq!(
        json_number(&json, "packets_lost"),
        relayed.visible_losses() as f64,
        "{json}"
    );
    // Expected counts from the second packet (A.1 probation).
    assert_eq!(
        json_number(&json, "packets_expected"),
        relayed.expected() as f64 - 1.0,
        "{json}"
    );
    // Every frame shown decoded (a decoding error would have failed the run); the frames
    // with a lost packet were dropped whole, and the others shown.
    let shown = json_number(&json, "frames_shown");
    let dropped = json_number(&json, "frames_dropped");
    assert!(
        dropped > 0.0 && shown + dropped <= frames.len() as f64,
        "{json}"
    );
    assert!(
        shown >= frames.len() as f64 - relayed.dropped as f64,
        "{json}"
    );
    // The server heard the player's receiver reports, with the loss in them.
    let reports = receiver_reports_heard(&served);
    assert!(
        reports.iter().any(|r| r["reports"] == 1)
            && reports
                .iter()
                .all(|r| r["cumulative_lost"].as_i64() > Some(0)),
        "{reports:?}"
    );
}

#[test]
fn plays_a_lab_server_found_by_its_silence_to_describe() {
    let frames = encode_jpegs(100, 320, 240, "ball");
    for version0 in [false, true] {
        let lab = LabServer::start(
            frames.clone(),
            LabOptions {
                fps: 50,
                version0,
                drop: DropPolicy::EveryNth(10),
                ..Default::default()
            },
        );
        let Played { stdout, json } = play_for_json(&["--frames", "60", &lab.url()]);
        // No --lab: DESCRIBE went unanswered and the player spoke the lab dialect.
        assert_eq!(json_string(&json, "dialect"), "lab", "{json}");
        assert_eq!(json_string(&json, "ended_by"), "frames", "{json}");
        assert!(json_number(&json, "frames_shown") >= 60.0, "{json}");
        assert_no_lab_jitter(&stdout, &json);
        // Every 10th frame was never sent: the player's loss is those gaps, counted from
        // sequence numbers, up to the last packet it received.
        let counts = lab.counts();
        let lost = json_number(&json, "packets_lost");
        let received = json_number(&json, "packets_received");
        let dropped_before_end = counts
            .dropped_seqs
            .iter()
            .filter(|&&s| f64::from(s) < received + lost + 2.0)
            .count() as f64;
        assert_eq!(lost, dropped_before_end, "{json} {:?}", counts.dropped_seqs);
        let requests = counts.requests.join(" | ");
        for method in ["DESCRIBE", "SETUP", "PLAY", "TEARDOWN"] {
            assert!(requests.contains(method), "{requests}");
        }
    }
}

#[test]
fn errors_a_user_can_act_on() {
    let served = serve(&frames(), &[]);
    // An unknown clip.
    let missing = served.url.replace("clip.Mjpeg", "nothing.Mjpeg");
    let out = play(&["--frames", "5", &missing], Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no such stream on the server (404)"), "{err}");
    // Not RTSP.
    let out = play(
        &["--frames", "5", "http://127.0.0.1/x"],
        Duration::from_secs(20),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only rtsp:// and rtsps:// URLs"));
}

#[test]
fn udp_that_never_arrives_fails_with_a_hint_or_falls_back_to_tcp() {
    let served = serve(&frames(), &["--loop"]);
    // The relay drops every UDP packet (a firewall); interleaved TCP passes.
    let proxy = LossyProxy::start(served.server.addr, DropPolicy::EveryNth(1));
    let url = proxy.proxied(&served.url);
    let started = Instant::now();
    let out = play(
        &["--transport", "udp", "--frames", "5", &url],
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("firewall") && err.contains("--transport tcp"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "it took {:?}",
        started.elapsed()
    );
    let Played { json, .. } = play_for_json(&["--transport", "auto", "--frames", "20", &url]);
    // UDP never came: it switched to TCP.
    assert!(json.contains("\"transport\": \"tcp\""), "{json}");
    assert!(json_bool(&json, "transport_fallback"), "{json}");
    assert!(json_number(&json, "frames_shown") >= 20.0, "{json}");
}

#[test]
fn plays_a_stream_with_2_percent_of_its_packets_reordered_without_losing_a_frame() {
    // Frames of many packets each, so that reordering happens inside frames and across
    // their boundaries.
    let frames = encode_jpegs(100, 640, 480, "smpte");
    let served = serve(&frames, &["--fps", "25", "--no-adapt"]);
    let proxy = LossyProxy::start(served.server.addr, DropPolicy::None);
    proxy.set_reorder(DropPolicy::Probability { p: 0.02, seed: 11 });
    let Played { json, .. } = play_for_json(&[&proxy.proxied(&served.url)]);
    let counts = proxy.counts();
    assert!(
        counts.reordered >= 20,
        "too few reorderings to mean anything: {}",
        counts.reordered
    );
    assert_eq!(
        json_number(&json, "frames_shown"),
        frames.len() as f64,
        "{json}"
    );
    assert_eq!(json_number(&json, "frames_dropped"), 0.0, "{json}");
    // A reordered packet is late, not lost.
    assert_eq!(json_number(&json, "packets_lost"), 0.0, "{json}");
}

#[test]
fn a_seek_backwards_plays_on_at_once() {
    // The server's RTP time follows the clip position, so a seek back sends timestamps
    // from 5 s earlier: they are the stream going on, not late packets.
    let clip = encode_jpegs(300, 160, 120, "ball");
    let (json, numbers) = play_with_keys(
        &clip,
        &[
            (b"\x1b[C", 1000), // right: +5 s
            (b"\x1b[D", 1000), // left: -5 s
        ],
    );
    let jumps: Vec<(usize, usize)> = numbers
        .windows(2)
        .filter(|w| w[1] != w[0] + 1)
        .map(|w| (w[0], w[1]))
        .collect();
    assert_eq!(jumps.len(), 2, "{numbers:?}");
    assert_eq!(json_number(&json, "seeks"), 2.0, "{json}");
    let (from, to) = jumps[1];
    assert!(
        to + 130 > from && to + 70 < from,
        "back {from} -> {to}: {numbers:?}"
    );
    // About 1 s at 20 fps after the seek back, not a frozen picture.
    let after = numbers.len() - 1 - numbers.iter().rposition(|&n| n == to).unwrap();
    assert!(
        after >= 10,
        "{after} frames after the seek back: {numbers:?}"
    );
}

#[test]
fn keys_in_the_window_pause_and_resume() {
    let served = serve(&frames(), &["--fps", "20", "--loop"]);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("keys.json");
    // Space in the window pauses, space again resumes, sent to the player's own window
    // (titled after the program) once it is mapped.
    let script = format!(
        "{player} --stats-json {json} --duration 6 {url} >/dev/null & pid=$!; \
         w=$(timeout 10 xdotool search --sync --name '^mjpeg-player$' | head -1); \
         sleep 1; xdotool key --window \"$w\" space; sleep 1; \
         xdotool key --window \"$w\" space; wait $pid",
        player = player_binary().display(),
        json = json.display(),
        url = served.url,
    );
    let out = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 640x480x24", "sh", "-c", &script])
        .output()
        .expect("xvfb-run (apt-get install xvfb xauth xdotool)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json = std::fs::read_to_string(&json).expect("the player wrote --stats-json");
    assert!(!json_bool(&json, "headless"), "{json}");
    assert_eq!(json_number(&json, "pauses"), 1.0, "{json}\n{stderr}");
    assert_eq!(json_number(&json, "resumes"), 1.0, "{json}\n{stderr}");
    assert_eq!(json_string(&json, "ended_by"), "duration", "{json}");
}
