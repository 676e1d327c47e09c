//! Access control (`[[users]]` in `--config`) end to end with real clients: anonymous
//! requests get 401 with Digest (SHA-256, MD5) and Basic challenges; ffmpeg, rtspsrc and
//! mjpeg-player play with the right credentials and are refused with a wrong password;
//! only a user with the publish right publishes; curl's Basic and Digest on every HTTP
//! endpoint, 403 for a user without the right; public paths; the throttling of an address
//! that keeps failing; and no password anywhere in the log, the status page, the API or
//! the metrics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

const WAIT: Duration = Duration::from_secs(20);
const VIEWER_PW: &str = "v1ew-Secret-41";
const CAMERA_PW: &str = "cam-Secret-52";
const HASHED_PW: &str = "hash-Secret-63";
const LIMITED_PW: &str = "lim-Secret-74";
const ALL_PASSWORDS: [&str; 4] = [VIEWER_PW, CAMERA_PW, HASHED_PW, LIMITED_PW];

const CAM: &str = "videotestsrc is-live=true ! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc";

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../media/sample.Mjpeg")
}

/// `--hash-password NAME` with the password on stdin.
fn hash_password(name: &str, password: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(server_binary())
        .args(["--hash-password", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A server with a live `cam`, a published `pub`, a public live `open`, the sample clip
/// (public through `public_paths`), and four users.
fn start(dir: &Path) -> ServerProcess {
    let hash = hash_password("hashed", HASHED_PW);
    assert_eq!(hash.len(), 64, "{hash}");
    let config = format!(
        r#"clips = [{sample:?}]
[server]
public_paths = ["sample.Mjpeg"]
[paths.cam]
source = "{CAM}"
[paths.open]
source = "{CAM}"
public = true
[paths.pub]
publish = true
[[users]]
name = "viewer"
password = "{VIEWER_PW}"
read = ["*"]
[[users]]
name = "camera"
password = "{CAMERA_PW}"
read = ["pub"]
publish = ["pub"]
[[users]]
name = "hashed"
password_sha256 = "{hash}"
read = ["cam"]
[[users]]
name = "limited"
password = "{LIMITED_PW}"
read = ["pub"]
"#,
        sample = sample().display().to_string()
    );
    let file = dir.join("server.toml");
    std::fs::write(&file, config).unwrap();
    ServerProcess::start_with_stats(&["--config".as_ref(), file.as_os_str()], 4)
}

fn with_user(url: &str, user: &str, password: &str) -> String {
    url.replacen("rtsp://", &format!("rtsp://{user}:{password}@"), 1)
}

fn ffmpeg_reads(url: &str, frames: u32) -> Result<(), String> {
    let (status, _, err) = run_to_end(
        Command::new("ffmpeg").args([
            "-nostdin",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
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
    if status.success() { Ok(()) } else { Err(err) }
}

fn player_reads(url: &str, frames: u32) -> Result<(), String> {
    let (status, _, err) = run_to_end(
        Command::new(plugin_dir().join("mjpeg-player"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .args(["--headless", "--frames", &frames.to_string(), url]),
        WAIT,
    );
    if status.success() { Ok(()) } else { Err(err) }
}

/// What curl got: status, headers, body.
struct Got {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

fn curl(url: &str, extra: &[&str]) -> Got {
    let dir = tempfile::tempdir().unwrap();
    let (headers, body) = (dir.path().join("h"), dir.path().join("b"));
    let (status, out, err) = run_to_end(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-D"])
            .arg(&headers)
            .arg("-o")
            .arg(&body)
            .args(["-w", "%{http_code}"])
            .args(extra)
            .arg(url),
        WAIT,
    );
    // (28: the --max-time of an endless stream.)
    assert!(
        status.success() || err.contains("(28)"),
        "curl {url}: {err}"
    );
    Got {
        status: out.trim().parse().unwrap_or(0),
        headers: std::fs::read_to_string(headers).unwrap_or_default(),
        body: std::fs::read(body).unwrap_or_default(),
    }
}

fn user(name: &str, password: &str) -> String {
    format!("{name}:{password}")
}

#[test]
fn readers_need_credentials_on_rtsp_and_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let cam = server.url("cam");
    let http = server.http();

    // RTSP: OPTIONS open, DESCRIBE challenged with Digest SHA-256 and MD5, and Basic.
    let mut client = server.connect();
    client.request("OPTIONS", &cam, &[]).assert_status(200);
    let reply = client.request("DESCRIBE", &cam, &[]);
    reply.assert_status(401);
    // One header line per challenge (read from the raw bytes: the harness's parser joins
    // repeated headers).
    let text = reply.text();
    let challenges: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("WWW-Authenticate: "))
        .collect();
    assert_eq!(challenges.len(), 3, "{}", reply.text());
    assert!(challenges[0].starts_with("Digest ") && challenges[0].contains("algorithm=SHA-256"));
    assert!(challenges[1].starts_with("Digest ") && challenges[1].contains("algorithm=MD5"));
    assert!(
        challenges
            .iter()
            .all(|c| c.contains("realm=\"mjpeg-rtsp\""))
    );
    assert!(challenges[0].contains("qop=\"auth\"") && challenges[0].contains("nonce=\""));
    assert!(challenges[2].starts_with("Basic "));
    // A guessed session id does not get past the check either.
    client
        .request("PLAY", &cam, &[("Session", "12345678")])
        .assert_status(401);

    // The right credentials, each client its way.
    let viewer_url = with_user(&cam, "viewer", VIEWER_PW);
    ffmpeg_reads(&viewer_url, 20).expect("ffmpeg with the viewer's credentials");
    let wrong = ffmpeg_reads(&with_user(&cam, "viewer", "nope"), 5);
    assert!(wrong.is_err(), "ffmpeg with a wrong password played");
    assert!(
        ffmpeg_reads(&cam, 5).is_err(),
        "ffmpeg without credentials played"
    );
    rtspsrc_decodes(&cam, Some(("viewer", VIEWER_PW)), 10, WAIT).expect("rtspsrc user-id/user-pw");
    rtspsrc_decodes(&viewer_url, None, 10, WAIT).expect("rtspsrc with credentials in the URL");
    player_reads(&viewer_url, 10).expect("mjpeg-player");
    // A user stored as password_sha256 only: the player answers Digest SHA-256.
    player_reads(&with_user(&cam, "hashed", HASHED_PW), 10).expect("mjpeg-player, hashed");
    // A user without the read right on cam: 403.
    let mut client = server.connect();
    let basic = format!("Basic {}", base64(&format!("limited:{LIMITED_PW}")));
    client
        .request("DESCRIBE", &cam, &[("Authorization", &basic)])
        .assert_status(403);

    // Public paths: the live `open` and the clip, anonymously.
    ffmpeg_reads(&server.url("open"), 10).expect("a public live path, anonymously");
    let mut client = server.connect();
    client
        .request("DESCRIBE", &server.url("sample.Mjpeg"), &[])
        .assert_status(200);

    // HTTP: every endpoint challenged anonymously; Basic and Digest let the viewer in.
    for page in [
        "/",
        "/api/paths",
        "/api/sessions",
        "/metrics",
        "/cam/snapshot.jpg",
    ] {
        let got = curl(&format!("{http}{page}"), &[]);
        assert_eq!(got.status, 401, "{page}");
        assert!(
            got.headers
                .to_ascii_lowercase()
                .contains("www-authenticate: digest"),
            "{}",
            got.headers
        );
        assert!(
            got.headers
                .to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{}",
            got.headers
        );
    }
    let snapshot = format!("{http}/cam/snapshot.jpg");
    for scheme in ["--basic", "--digest"] {
        let got = curl(&snapshot, &[scheme, "-u", &user("viewer", VIEWER_PW)]);
        assert_eq!(got.status, 200, "{scheme}: {}", got.headers);
        assert!(got.body.starts_with(&[0xff, 0xd8]), "{scheme}: not a JPEG");
    }
    let got = curl(&snapshot, &["--digest", "-u", &user("hashed", HASHED_PW)]);
    assert_eq!(got.status, 200, "digest, hashed user: {}", got.headers);
    let got = curl(&snapshot, &["--basic", "-u", &user("hashed", HASHED_PW)]);
    assert_eq!(got.status, 200, "basic, hashed user");
    let got = curl(&snapshot, &["--digest", "-u", &user("limited", LIMITED_PW)]);
    assert_eq!(got.status, 403);
    let stream = curl(
        &format!("{http}/cam/stream.mjpg"),
        &[
            "--digest",
            "-u",
            &user("viewer", VIEWER_PW),
            "--max-time",
            "2",
        ],
    );
    assert_eq!(stream.status, 200);
    assert!(stream.headers.contains("multipart/x-mixed-replace"));
    let got = curl(&format!("{http}/open/snapshot.jpg"), &[]);
    assert_eq!(got.status, 200, "a public path's snapshot");
    assert!(got.body.starts_with(&[0xff, 0xd8]));
    assert_eq!(
        curl(&format!("{http}/sample.Mjpeg/snapshot.jpg"), &[]).status,
        200
    );

    // No password in the log, the status page, the API or the metrics.
    let mut seen = server.log();
    for page in ["/", "/api/paths", "/api/sessions", "/metrics"] {
        let got = curl(
            &format!("{http}{page}"),
            &["--digest", "-u", &user("viewer", VIEWER_PW)],
        );
        assert_eq!(got.status, 200, "{page}");
        seen.push_str(&String::from_utf8_lossy(&got.body));
    }
    for report in server.reports() {
        seen.push_str(&report.to_string());
    }
    assert!(
        seen.contains("viewer") || seen.contains("cam"),
        "nothing was read"
    );
    for password in ALL_PASSWORDS {
        assert!(!seen.contains(password), "{password} leaked:\n{seen}");
    }
}

/// Each client refused with a wrong password, then let in with the right one from the same
/// address: the refusal was the password's, not the throttling's. Clients retry, so each
/// gets a fresh failure window.
#[test]
fn a_wrong_password_is_refused_by_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let cam = server.url("cam");
    let snapshot = format!("{}/cam/snapshot.jpg", server.http());
    let fresh_window = || std::thread::sleep(Duration::from_millis(10_500));
    assert!(ffmpeg_reads(&with_user(&cam, "viewer", "nope"), 5).is_err());
    ffmpeg_reads(&with_user(&cam, "viewer", VIEWER_PW), 5).expect("ffmpeg, right password");
    fresh_window();
    assert!(rtspsrc_decodes(&cam, Some(("viewer", "nope")), 5, WAIT).is_err());
    rtspsrc_decodes(&cam, Some(("viewer", VIEWER_PW)), 5, WAIT).expect("rtspsrc, right password");
    fresh_window();
    assert!(player_reads(&with_user(&cam, "hashed", "nope"), 5).is_err());
    player_reads(&with_user(&cam, "hashed", HASHED_PW), 5).expect("player, right password");
    for scheme in ["--basic", "--digest"] {
        let got = curl(&snapshot, &[scheme, "-u", &user("viewer", "nope")]);
        assert_eq!(got.status, 401, "{scheme} with a wrong password");
        let got = curl(&snapshot, &[scheme, "-u", &user("viewer", VIEWER_PW)]);
        assert_eq!(got.status, 200, "{scheme} with the right password");
    }
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ffmpeg_publisher(url: &str) -> Running {
    Running(
        Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i"])
            .args(["testsrc2=size=320x240:rate=25", "-pix_fmt", "yuvj420p"])
            .args(["-c:v", "mjpeg", "-huffman", "default", "-f", "rtsp"])
            .args(["-rtsp_transport", "tcp", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ffmpeg runs"),
    )
}

#[test]
fn only_a_user_with_the_publish_right_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let url = server.url("pub");
    // A reader's ANNOUNCE: 403; anonymous: 401.
    let sdp = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 0 RTP/AVP 26\r\n";
    let mut client = server.connect();
    let length = sdp.len().to_string();
    let announce = |client: &mut Client, auth: Option<&str>| {
        let mut headers = vec![
            ("Content-Type", "application/sdp"),
            ("Content-Length", length.as_str()),
        ];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        let cseq = client.next_cseq().to_string();
        let mut request = format!("ANNOUNCE {url} RTSP/1.0\r\nCSeq: {cseq}\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(sdp);
        client.send_raw(request.as_bytes());
        client.read_reply(REPLY_TIMEOUT)
    };
    announce(&mut client, None).assert_status(401);
    let viewer = format!("Basic {}", base64(&format!("viewer:{VIEWER_PW}")));
    announce(&mut client, Some(&viewer)).assert_status(403);
    // ffmpeg as the viewer is refused: nothing records.
    let mut refused = ffmpeg_publisher(&with_user(&url, "viewer", VIEWER_PW));
    let deadline = Instant::now() + WAIT;
    while refused.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = refused.0.try_wait().unwrap();
    assert!(
        status.is_some_and(|s| !s.success()),
        "ffmpeg publishing as a reader: {status:?}"
    );
    // As the camera: recorded, and read by the viewer.
    let _publisher = ffmpeg_publisher(&with_user(&url, "camera", CAMERA_PW));
    server.wait_for_stats(
        "a publisher recording on pub",
        |r| {
            r["publishers"].as_array().is_some_and(|all| {
                all.iter()
                    .any(|p| p["path"] == "pub" && p["state"] == "recording")
            })
        },
        WAIT,
    );
    ffmpeg_reads(&with_user(&url, "viewer", VIEWER_PW), 20).expect("the viewer reads pub");
    let log = server.log();
    for password in ALL_PASSWORDS {
        assert!(!log.contains(password), "{password} in the log:\n{log}");
    }
}

#[test]
fn an_address_that_keeps_failing_is_throttled_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let snapshot = format!("{}/cam/snapshot.jpg", server.http());
    let mut statuses = Vec::new();
    for i in 0..14 {
        let got = curl(
            &snapshot,
            &["--basic", "-u", &user("viewer", &format!("guess{i}"))],
        );
        statuses.push(got.status);
    }
    assert!(statuses[..10].iter().all(|&s| s == 401), "{statuses:?}");
    assert!(statuses[10..].iter().all(|&s| s == 429), "{statuses:?}");
    // The right password from the throttled address: refused, on HTTP and RTSP.
    let right = user("viewer", VIEWER_PW);
    let got = curl(&snapshot, &["--digest", "-u", &right]);
    assert_eq!(got.status, 429);
    assert!(
        got.headers.to_ascii_lowercase().contains("retry-after: 30"),
        "{}",
        got.headers
    );
    let mut client = server.connect();
    let basic = format!("Basic {}", base64(&format!("viewer:{VIEWER_PW}")));
    client
        .request("DESCRIBE", &server.url("cam"), &[("Authorization", &basic)])
        .assert_status(403);
    // ... and let in from another address.
    let got = curl(
        &snapshot,
        &["--digest", "-u", &right, "--interface", "127.0.0.2"],
    );
    assert_eq!(got.status, 200, "{}", got.headers);
    assert!(got.body.starts_with(&[0xff, 0xd8]));
    let log = server.log();
    assert_eq!(log.matches("failed logins").count(), 1, "{log}");
    for password in ALL_PASSWORDS {
        assert!(!log.contains(password), "{password} in the log:\n{log}");
    }
}
