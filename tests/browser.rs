//! The server's status page in a real browser: headless Chromium, driven over the
//! DevTools protocol by `scripts/status-page-check.py`, looks at the page of a server with
//! a live path of a known colour watched by a real RTSP client (GStreamer's `rtspsrc`)
//! and pushed to another server, and checks what it shows, that it updates itself, that it draws something and that it
//! fits a phone.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::{ServerProcess, path_in};
use mjpeg_rtsp_tests::{python, run_to_end, workspace_root};

/// The live path's picture: one colour (videotestsrc's ARGB), 640x480.
const COLOUR: &str = "20c040";
const LIVE: &str = "cam=videotestsrc is-live=true pattern=solid-color foreground-color=0xff20c040 \
     ! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc";
/// A clip whose name is markup: the page must show it as text.
const HOSTILE: &str = "<i id=\"injected\">x&amp;.Mjpeg";

/// A child process killed (and reaped) on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[test]
fn status_page_in_headless_chromium() {
    let started = Instant::now();
    assert!(
        in_path("chromium").is_some(),
        "chromium is not installed: `make test` runs the bootstrap (scripts/bootstrap.sh), \
         which installs it (Debian's chromium package)"
    );
    let clips = tempfile::tempdir().expect("a temporary folder");
    let hostile = clips.path().join(HOSTILE);
    std::os::unix::fs::symlink(workspace_root().join("media/sample.Mjpeg"), &hostile)
        .expect("a link to the sample clip");
    let sample = workspace_root().join("media/sample.Mjpeg");
    // Another server the live path is pushed to (a path it publishes).
    let receiver = ServerProcess::start(&["--no-http", "--publish", "in"], 1);
    let push_url = receiver.url("in");
    let args: Vec<std::ffi::OsString> = vec![
        "--source".into(),
        LIVE.into(),
        "--push".into(),
        format!("cam={push_url}").into(),
        sample.into_os_string(),
        hostile.into_os_string(),
    ];
    // Two clips and the live path.
    let server = ServerProcess::start_with_stats(&args, 3);
    let page = format!("{}/", server.http());
    println!("server up after {:.1} s", started.elapsed().as_secs_f64());

    let viewer = Killed(
        Command::new("gst-launch-1.0")
            .arg("rtspsrc")
            .arg(format!("location={}", server.url("cam")))
            .args(["latency=0", "!", "rtpjpegdepay", "!", "fakesink"])
            .env_remove("GST_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gst-launch-1.0 runs"),
    );
    let report = server.wait_for_stats(
        "the viewer playing cam, and cam up",
        |r| {
            path_in(r, "cam")["source"] == "up"
                && r["sessions"].as_array().is_some_and(|s| {
                    s.iter().any(|s| {
                        s["path"] == "cam"
                            && s["state"] == "playing"
                            && s["frames_sent"].as_u64() > Some(0)
                    })
                })
        },
        Duration::from_secs(20),
    );
    let session = report["sessions"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["path"] == "cam"))
        .expect("the viewer's session");
    let id = session["id"].as_str().expect("an id").to_string();
    let client = session["client"].as_str().expect("a client").to_string();
    println!(
        "session {id} from {client} playing after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/status-page-check.py");
    let mut cmd = Command::new(python());
    cmd.arg(&script)
        .args(["--url", &page])
        .args(["--path", "cam"])
        .args(["--session", &id])
        .args(["--client", &client])
        .args(["--colour", COLOUR])
        .args(["--width", "640", "--height", "480"])
        .args(["--hostile", HOSTILE])
        .args(["--push-url", &push_url]);
    // For a person to look at: STATUS_PAGE_SCREENSHOTS=DIR keeps the screenshots.
    if let Some(dir) = std::env::var_os("STATUS_PAGE_SCREENSHOTS") {
        cmd.arg("--screenshots").arg(dir);
    }
    let (status, stdout, stderr) = run_to_end(&mut cmd, Duration::from_secs(60));
    print!("{stdout}");
    assert!(
        status.success(),
        "the status page check failed ({status}):\n{stdout}\n{stderr}\nthe server's log:\n{}",
        server.log()
    );
    drop(viewer);
    println!("browser test: {:.1} s", started.elapsed().as_secs_f64());
}
