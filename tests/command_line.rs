//! What a user types: gst-launch-1.0 and gst-inspect-1.0 with the built plugin, the
//! bundled sample clip, the example scripts in pipelines/ and the demo script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mjpeg_rtsp_tests::*;

fn sample() -> PathBuf {
    workspace_root().join("media/sample.Mjpeg")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs gst-launch-1.0 with a fakesink that reports every buffer, and returns how many
/// buffers reached it.
fn launch_and_count(pipeline: &str) -> usize {
    let registry = tempfile::tempdir().unwrap();
    let out = gst_tool("gst-launch-1.0", registry.path())
        .arg("-v")
        .args(pipeline.split_whitespace())
        .args(["!", "fakesink", "silent=false"])
        .output()
        .expect("gst-launch-1.0 runs");
    let log = text(&out);
    assert!(out.status.success(), "{pipeline}:\n{log}");
    assert!(
        log.contains("Got EOS"),
        "{pipeline} did not reach EOS:\n{log}"
    );
    log.matches("last-message = chain").count()
}

#[test]
fn gst_launch_decodes_every_frame_of_the_sample() {
    let n = launch_and_count(&format!(
        "mjpegfilesrc location={} ! jpegdec",
        sample().display()
    ));
    assert_eq!(n, 200);
}

#[test]
fn rtpjpegpay_and_rtpjpegdepay_need_no_jpegparse() {
    let n = launch_and_count(&format!(
        "mjpegfilesrc location={} ! rtpjpegpay ! rtpjpegdepay ! jpegdec",
        sample().display()
    ));
    assert_eq!(n, 200);
}

#[test]
fn gst_inspect_documents_every_property() {
    let registry = tempfile::tempdir().unwrap();
    let out = gst_tool("gst-inspect-1.0", registry.path())
        .arg("mjpegfilesrc")
        .output()
        .unwrap();
    let doc = text(&out);
    assert!(out.status.success(), "{doc}");
    for (name, default) in [
        ("location", "Default: null"),
        ("format", "Default: 0, \"auto\""),
        ("framerate", "Default: 20/1"),
        ("loop", "Default: false"),
        ("is-live", "Default: false"),
        ("skip-corrupt", "Default: false"),
        ("frames", "Default: 0"),
        ("skipped-frames", "Default: 0"),
    ] {
        let entry = doc
            .lines()
            .skip_while(|l| !l.trim_start().starts_with(&format!("{name} ")))
            .take(4)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!entry.is_empty(), "{name} is not documented");
        let blurb = entry.lines().next().unwrap().split_once(':').unwrap().1;
        assert!(
            blurb.trim().len() > 30,
            "{name} has no useful description: {entry}"
        );
        assert!(
            entry.contains(default),
            "{name}: no {default:?} in\n{entry}"
        );
    }
    assert!(doc.contains("file"), "URI protocol missing");
}

#[test]
fn bundled_sample_is_ten_seconds_of_lab_format() {
    let data = std::fs::read(sample()).unwrap();
    let framing = gstmjpegrtp::mjpeg::detect(&data).unwrap();
    assert_eq!(framing, gstmjpegrtp::mjpeg::Framing::Lab);
    let index = gstmjpegrtp::mjpeg::FrameIndex::build(&data, framing, false);
    assert!(index.error().is_none());
    assert_eq!(index.len(), 200, "10 s at 20 fps");
    for frame in index.frames() {
        assert_eq!((frame.format.width, frame.format.height), (384, 288));
        assert_eq!(
            frame.format.sampling,
            Some(gstmjpegrtp::jpeg::Sampling::Ycbcr420)
        );
        assert!(frame.len < 20480, "a lab client could not receive it");
    }
}

/// Runs an example script without a display, with the plugin this test run built.
fn script(name: &str, registry: &Path) -> Command {
    let mut cmd = Command::new(workspace_root().join("pipelines").join(name));
    cmd.env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", registry.join("registry.bin"));
    cmd
}

fn decoded(out: &Output) -> usize {
    let log = text(out);
    assert!(out.status.success(), "{log}");
    let line = log
        .lines()
        .find(|l| l.starts_with("decoded "))
        .unwrap_or_else(|| panic!("no frame count in:\n{log}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn play_file_example_decodes_the_sample_headless() {
    let out = script("play-file.sh", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(decoded(&out), 200);
}

#[test]
fn rtp_roundtrip_example() {
    let out = script("rtp-roundtrip.sh", tempfile::tempdir().unwrap().path())
        .arg(sample())
        .output()
        .unwrap();
    assert_eq!(decoded(&out), 200);
}

/// Starts the receiving example `receiver` (with `env`) on a free port, streams `clip` to
/// it once with udp-send.sh, and returns what the receiver printed when it ended.
fn send_and_receive(clip: &Path, receiver: &str, env: &[(&str, &str)]) -> Output {
    let port = free_udp_port();
    let registry = tempfile::tempdir().unwrap();
    let receiver = script(receiver, registry.path())
        .arg(port.to_string())
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let sender = script("udp-send.sh", registry.path())
        .args([
            clip.as_os_str(),
            "127.0.0.1".as_ref(),
            port.to_string().as_ref(),
        ])
        .env("LOOP", "false")
        .output()
        .unwrap();
    assert!(sender.status.success(), "{}", text(&sender));
    wait_with_timeout(receiver, Duration::from_secs(30))
}

#[test]
fn udp_examples_stream_over_loopback() {
    // A short clip, so the sender ends by itself.
    let dir = tempfile::tempdir().unwrap();
    let clip = write_file(
        dir.path(),
        "short.Mjpeg",
        &lab_file(&encode_jpegs(30, 320, 240, "ball")),
    );
    let out = send_and_receive(&clip, "udp-receive.sh", &[("PACKETS", "40")]);
    // 40 packets of 320x240 frames carry at least a few whole frames.
    let frames = decoded(&out);
    assert!(frames >= 3, "only {frames} frames decoded:\n{}", text(&out));
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Output {
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("{:?} did not finish in {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn examples_fail_clearly_on_a_missing_clip() {
    let registry = tempfile::tempdir().unwrap();
    let out = script("play-file.sh", registry.path())
        .arg(Path::new("/nonexistent/clip.Mjpeg"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Could not open /nonexistent/clip.Mjpeg"),
        "{}",
        text(&out)
    );
}

#[test]
fn loss_report_example_prints_reports() {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_file(
        dir.path(),
        "short.Mjpeg",
        &lab_file(&encode_jpegs(80, 320, 240, "ball")),
    );
    // Reports every 200 ms; the receiver stops after 80 packets (at least one a frame,
    // so before the 4 s clip ends).
    let out = send_and_receive(
        &clip,
        "udp-loss-report.sh",
        &[("PACKETS", "80"), ("INTERVAL", "200")],
    );
    let log = text(&out);
    // Reports come from the start; those after the first packets describe the stream.
    let received: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("loss-report") && l.contains("jitter"))
        .filter_map(|l| {
            let count = l.split("packets-received\\=\\(guint64\\)").nth(1)?;
            count.split('\\').next()?.parse().ok()
        })
        .collect();
    assert!(
        received.iter().any(|&n| n > 0),
        "no loss report with packets received in:\n{log}"
    );
    assert!(
        received.windows(2).all(|w| w[0] <= w[1]),
        "packets-received went down: {received:?}"
    );
}

/// A 2 s clip (40 frames at the server's 20 frames/s) for the RTSP examples.
fn short_clip(dir: &Path) -> PathBuf {
    write_file(
        dir,
        "short.Mjpeg",
        &lab_file(&encode_jpegs(40, 160, 120, "ball")),
    )
}

#[test]
fn rtsp_play_example_plays_the_servers_stream_with_rtspsrc() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path());
    let out = wait_with_timeout(
        script("rtsp-play.sh", dir.path())
            .arg(&clip)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(30),
    );
    // rtspsrc ends the stream at the server's BYE: every frame of the clip.
    assert_eq!(decoded(&out), 40);
}

#[test]
fn demo_script_plays_with_mjpeg_player_headless() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path());
    let mut cmd = Command::new(workspace_root().join("scripts/demo.sh"));
    cmd.arg(&clip)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", dir.path().join("registry.bin"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = wait_with_timeout(cmd.spawn().unwrap(), Duration::from_secs(30));
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    // The clip is shorter than the demo's 100 frames: the server's BYE ends it.
    assert!(log.contains("frames shown: 40"), "{log}");
    assert!(log.contains("RTP packet loss rate: 0.00%"), "{log}");
}

/// A process the test started, killed if the test ends before it does.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` up to `limit`; its exit status, or None when it had to be killed.
fn wait_bounded(child: &mut KillOnDrop, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of `key=` among a line's words.
fn word<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn count(line: &str, key: &str) -> i64 {
    word(line, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn python_loss_report_example_counts_netsim_losses() {
    let port = free_udp_port();
    let registry = tempfile::tempdir().unwrap();
    let mut receiver = KillOnDrop(
        Command::new("python3")
            .arg(workspace_root().join("pipelines/loss-report.py"))
            .args(["--address", "127.0.0.1", "--port", &port.to_string()])
            .args(["--idle", "2", "--interval", "300"])
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .env("GST_PLUGIN_PATH", plugin_dir())
            .env("GST_REGISTRY", registry.path().join("registry.bin"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs"),
    );
    // stderr line by line, to start sending once the receiver listens.
    let stderr = receiver.0.stderr.take().unwrap();
    let (lines, line_rx) = std::sync::mpsc::channel::<String>();
    let stderr_reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut log = String::new();
    loop {
        match line_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                log += &line;
                log.push('\n');
                if line.contains("listening on UDP port") {
                    break;
                }
            }
            Err(_) => panic!("the receiver did not start:\n{log}"),
        }
    }

    // 100 frames (5 s, about 800 packets), a tenth of them dropped on the way.
    let mut sender = KillOnDrop(
        gst_tool("gst-launch-1.0", registry.path())
            .args(["-q", "mjpegfilesrc"])
            .arg(format!("location={}", sample().display()))
            .args([
                "is-live=true",
                "num-buffers=100",
                "!",
                "rtpmjpegpay",
                "!",
                "netsim",
            ])
            .args(["drop-probability=0.1", "!", "udpsink", "host=127.0.0.1"])
            .arg(format!("port={port}"))
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sent = wait_bounded(&mut sender, Duration::from_secs(30));
    assert!(sent.is_some_and(|s| s.success()), "sender: {sent:?}");
    // The receiver stops 2 s after the last packet.
    let status = wait_bounded(&mut receiver, Duration::from_secs(30));
    if status.is_none() {
        let _ = receiver.0.kill();
    }
    let mut stdout = String::new();
    std::io::Read::read_to_string(receiver.0.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    drop(receiver);
    stderr_reader.join().unwrap();
    log.extend(line_rx.try_iter().map(|l| l + "\n"));
    let all = format!("{stdout}{log}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}:\n{all}");

    let reports: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("loss-report ") && l.contains("received="))
        .collect();
    assert!(!reports.is_empty(), "no loss report:\n{all}");
    let received: Vec<i64> = reports.iter().map(|l| count(l, "received")).collect();
    assert!(received.windows(2).all(|w| w[0] <= w[1]), "{received:?}");

    let last = stdout
        .lines()
        .find(|l| l.starts_with("final "))
        .unwrap_or_else(|| panic!("no final statistics:\n{all}"));
    let (expected, got, lost) = (
        count(last, "expected"),
        count(last, "received"),
        count(last, "lost"),
    );
    assert!(got > 400, "{last}");
    assert!(lost > 0, "netsim dropped nothing? {last}");
    assert_eq!(expected, got + lost, "{last}");
    let percent = word(last, "loss").unwrap().trim_end_matches('%');
    let percent: f64 = percent.parse().unwrap();
    assert!(
        (percent - lost as f64 * 100.0 / expected as f64).abs() < 0.01,
        "{last}"
    );
    assert!(
        stdout.contains(&format!("RTP packet loss rate: {percent:.2}%")),
        "{all}"
    );
}
