//! `make bench`: how soon a player shows the first frame of an RTSP stream, from process
//! start, against the same mjpeg-rtsp-server in one run (five runs each, interleaved,
//! medians):
//!
//! - ours: `mjpeg-player --headless --frames 1 URL` (the time it prints when the first
//!   frame reaches its sink; frames are shown as soon as decoded);
//! - `gst-launch-1.0 rtspsrc location=URL ! rtpjpegdepay ! jpegdec ! fakesink sync=true`
//!   with rtspsrc's default 2 s jitter buffer (the anchor), and with `latency=0`: the time
//!   the fake sink renders the first frame on the clock (its first `chain` message);
//! - `ffmpeg -i URL -frames:v 1 -f null -`: the time it exits.
//!
//! Every time is taken by this harness from spawning the process to the line that says
//! the frame was shown (or the exit), so all include process start-up. All run headless:
//! the time a window system needs to map a window is not part of any of them.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::bench::{binary, build_apps, median};
use mjpeg_rtsp_tests::{encode_with, init, lab_file, plugin_dir};

const RUNS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Clone, Copy)]
enum Client {
    Ours,
    GstLaunch,
    GstLaunchLatency0,
    Ffmpeg,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Ours => "mjpeg-player",
            Client::GstLaunch => "gst-launch rtspsrc (default latency, anchor)",
            Client::GstLaunchLatency0 => "gst-launch rtspsrc latency=0",
            Client::Ffmpeg => "ffmpeg -frames:v 1",
        }
    }

    /// Milliseconds from spawn to the first frame shown.
    fn first_frame_ms(self, url: &str) -> f64 {
        let start = Instant::now();
        let (spawned, marker, on_stderr) = match self {
            Client::Ours => (
                Command::new(binary("mjpeg-player"))
                    .args(["--headless", "--frames", "1", url])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn(),
                Some("first frame shown"),
                true,
            ),
            Client::GstLaunch | Client::GstLaunchLatency0 => {
                let latency = if matches!(self, Client::GstLaunchLatency0) {
                    "latency=0"
                } else {
                    ""
                };
                (
                    Command::new("gst-launch-1.0")
                        .arg("-v")
                        .args(format!("rtspsrc location={url} {latency} ! rtpjpegdepay ! jpegdec ! fakesink sync=true silent=false").split_whitespace())
                        .env("GST_PLUGIN_PATH", plugin_dir())
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .spawn(),
                    Some("last-message = chain"),
                    false,
                )
            }
            Client::Ffmpeg => (
                Command::new("ffmpeg")
                    .args([
                        "-loglevel",
                        "error",
                        "-rtsp_transport",
                        "udp",
                        "-i",
                        url,
                        "-frames:v",
                        "1",
                        "-f",
                        "null",
                        "-",
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn(),
                None,
                false,
            ),
        };
        let mut child = spawned.unwrap_or_else(|e| panic!("{}: {e}", self.name()));
        let elapsed = match marker {
            Some(marker) => {
                let stream: Box<dyn std::io::Read + Send> = if on_stderr {
                    Box::new(child.stderr.take().unwrap())
                } else {
                    Box::new(child.stdout.take().unwrap())
                };
                let (tx, rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        if line.contains(marker) {
                            let _ = tx.send(Instant::now());
                            return;
                        }
                    }
                });
                let at = rx
                    .recv_timeout(TIMEOUT)
                    .unwrap_or_else(|_| panic!("{}: no frame", self.name()));
                at - start
            }
            None => {
                let status = child.wait().expect("wait");
                assert!(status.success(), "{} failed", self.name());
                start.elapsed()
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        elapsed.as_secs_f64() * 1000.0
    }
}

fn main() {
    init();
    build_apps();
    let frames = encode_with(
        250,
        640,
        480,
        "smpte horizontal-speed=3",
        "jpegenc quality=85",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = mjpeg_rtsp_tests::write_file(dir.path(), "clip.Mjpeg", &lab_file(&frames));
    let mut server = Command::new(binary("mjpeg-rtsp-server"))
        .args([
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--no-http",
            "--fps",
            "25",
            "--loop",
        ])
        .arg(&clip)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let mut url = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut url)
        .expect("the URL");
    let url = url.trim().to_string();
    let clients = [
        Client::GstLaunch,
        Client::GstLaunchLatency0,
        Client::Ffmpeg,
        Client::Ours,
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); clients.len()];
    // One warm-up each (page cache, plugin registry), then interleaved runs.
    for client in clients {
        client.first_frame_ms(&url);
    }
    for _ in 0..RUNS {
        for (i, client) in clients.iter().enumerate() {
            times[i].push(client.first_frame_ms(&url));
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    println!(
        "\nTime from process start to the first frame shown (640x480 25 fps, {RUNS} runs, median)"
    );
    let anchor = median(&times[0]);
    for (client, t) in clients.iter().zip(&times) {
        let m = median(t);
        println!(
            "  {:<46} {:>8.1} ms   (runs: {})   {:.3}x the anchor",
            client.name(),
            m,
            t.iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            m / anchor
        );
    }
    let ours = median(&times[3]);
    println!(
        "mjpeg-player: {:.1} ms median; {:.1}x faster than rtspsrc latency=0, {:.1}x faster than ffmpeg",
        ours,
        median(&times[1]) / ours,
        median(&times[2]) / ours
    );
}
