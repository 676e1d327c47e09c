//! TLS end to end: the server with a certificate made here (rcgen, self-signed) serves
//! RTSPS to GStreamer's rtspsrc, ffmpeg and mjpeg-player (which refuses the certificate
//! without `--insecure`), refuses UDP over RTSPS with 461 and the reason, keeps plain
//! RTSP beside it, serves HTTPS to curl and ffmpeg, survives clients that never finish a
//! handshake, and stops at start on a certificate or key it cannot use.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::{ServerProcess, server_binary};
use mjpeg_rtsp_tests::{lab_frames, plugin_dir, run_to_end, workspace_root};
use serde_json::Value;

/// The bundled clip, as the server names it (384x288).
const CLIP: &str = "sample.Mjpeg";

/// A self-signed certificate for localhost and 127.0.0.1, and its key, in `dir`.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("rcgen makes a certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, made.cert.pem()).expect("write cert.pem");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key.pem");
    (cert, key)
}

/// The server on the bundled clip (looping) with TLS: RTSP, RTSPS and HTTPS on free ports.
fn tls_server(cert: &Path, key: &Path, extra: &[&str]) -> ServerProcess {
    let mut args: Vec<&std::ffi::OsStr> = extra.iter().map(|a| a.as_ref()).collect();
    args.extend::<[&std::ffi::OsStr; 7]>([
        "--loop".as_ref(),
        "--rtsps-port".as_ref(),
        "0".as_ref(),
        "--tls-cert".as_ref(),
        cert.as_os_str(),
        "--tls-key".as_ref(),
        key.as_os_str(),
    ]);
    ServerProcess::start(&args, 1)
}

/// ffmpeg reading `url` for `frames` frames: its exit status, each decoded frame's size
/// and the stream's dimensions (from framecrc).
fn ffmpeg_frames(input: &[&str], url: &str, frames: usize) -> (bool, Vec<usize>, String) {
    let frames = frames.to_string();
    mjpeg_rtsp_tests::ffmpeg_framecrc(input, url, &["-frames:v", &frames], Duration::from_secs(40))
}

fn player(args: &[&str]) -> (std::process::ExitStatus, String, String) {
    run_to_end(
        Command::new(plugin_dir().join("mjpeg-player"))
            .args(args)
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY"),
        Duration::from_secs(40),
    )
}

#[test]
fn rtsps_plays_in_rtspsrc_ffmpeg_and_the_player_beside_plain_rtsp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    // -v: failed handshakes are logged at debug.
    let server = tls_server(&cert, &key, &["-v"]);
    let rtsps = server.rtsps_url(CLIP);
    let rtsp = server.url(CLIP);
    assert!(rtsps.starts_with("rtsps://127.0.0.1:"), "{rtsps}");
    let rtsps_addr = rtsps
        .trim_start_matches("rtsps://")
        .split('/')
        .next()
        .expect("host:port")
        .to_string();
    assert_ne!(
        rtsps_addr,
        server.addr.to_string(),
        "RTSPS has a port of its own"
    );

    // Clients that never finish a handshake: one silent, one speaking plain RTSP to the
    // TLS port. Neither may disturb the others.
    let opened = Instant::now();
    let mut silent = TcpStream::connect(&rtsps_addr).expect("connect");
    let mut plain_to_tls = TcpStream::connect(&rtsps_addr).expect("connect");
    plain_to_tls
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .expect("write");

    // GStreamer's rtspsrc, not checking the certificate: 20 decoded frames, then EOS.
    let (status, _, err) = run_to_end(
        Command::new("gst-launch-1.0").args([
            "-q",
            "rtspsrc",
            &format!("location={rtsps}"),
            "tls-validation-flags=0",
            "!",
            "rtpjpegdepay",
            "!",
            "jpegdec",
            "!",
            "fakesink",
            "num-buffers=20",
        ]),
        Duration::from_secs(40),
    );
    assert!(status.success(), "rtspsrc over RTSPS: {status}: {err}");

    // ffmpeg: frames decoded whole, at the clip's size.
    let (ok, frames, dimensions) = ffmpeg_frames(&[], &rtsps, 20);
    assert!(ok, "ffmpeg over RTSPS failed");
    assert_eq!(frames.len(), 20, "ffmpeg over RTSPS");
    assert_eq!(dimensions, "384x288");
    assert!(frames.iter().all(|&size| size == 384 * 288 * 3 / 2));

    // mjpeg-player with --insecure: 30 frames over TCP, nothing lost.
    let stats = dir.path().join("player.json");
    let (status, out, err) = player(&[
        "--headless",
        "--frames",
        "30",
        "--insecure",
        "--stats-json",
        stats.to_str().expect("utf-8 path"),
        &rtsps,
    ]);
    assert!(status.success(), "mjpeg-player over RTSPS: {out}\n{err}");
    let summary: Value =
        serde_json::from_slice(&std::fs::read(&stats).expect("--stats-json written"))
            .expect("JSON");
    assert_eq!(summary["frames_shown"], 30, "{summary}");
    assert_eq!(summary["transport"], "tcp", "{summary}");
    assert_eq!(summary["ended_by"], "frames", "{summary}");

    // Plain RTSP on the usual port, while a TLS session plays.
    let secure = std::thread::spawn({
        let rtsps = rtsps.clone();
        move || ffmpeg_frames(&[], &rtsps, 40)
    });
    let (ok, frames, _) = ffmpeg_frames(&["-rtsp_transport", "udp"], &rtsp, 20);
    assert!(
        ok && frames.len() == 20,
        "plain RTSP beside RTSPS: {frames:?}"
    );
    let (ok, frames, _) = secure.join().expect("ffmpeg thread");
    assert!(
        ok && frames.len() == 40,
        "RTSPS beside plain RTSP: {frames:?}"
    );

    // The plain-text client got no RTSP reply from the TLS port.
    plain_to_tls
        .set_read_timeout(Some(Duration::from_secs(12)))
        .expect("timeout");
    let mut reply = Vec::new();
    let _ = plain_to_tls.read_to_end(&mut reply);
    assert!(
        !String::from_utf8_lossy(&reply).contains("RTSP/1.0"),
        "plain text on the RTSPS port was answered: {reply:?}"
    );
    // The silent one is closed once the handshake deadline (10 s) passes.
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let closed = matches!(silent.read(&mut [0u8; 64]), Ok(0) | Err(_));
    assert!(closed, "a silent client kept its connection");
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(40),
        "the silent client was closed after {took:?}"
    );
    server.wait_for_log(&["RTSPS", "TLS handshake failed"], Duration::from_secs(5));
    server.wait_for_log(&["RTSPS", "TLS handshake not done"], Duration::from_secs(5));
}

#[test]
fn the_player_refuses_a_self_signed_certificate_without_insecure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let server = tls_server(&cert, &key, &[]);
    let url = server.rtsps_url(CLIP);
    for url in [url.clone(), url.replace("127.0.0.1", "localhost")] {
        let (status, out, err) = player(&["--headless", "--frames", "5", &url]);
        assert!(!status.success(), "played an untrusted server: {out}");
        assert!(
            err.contains("certificate") && err.contains("--insecure"),
            "unclear refusal: {err}"
        );
    }
    // The refused handshakes made no session.
    let (ok, sessions, err) = curl(&["-k"], &format!("{}/api/sessions", server.http()));
    assert!(ok, "{err}");
    let sessions: Value = serde_json::from_slice(&sessions).expect("JSON");
    assert_eq!(sessions["sessions"], Value::Array(Vec::new()), "{sessions}");
}

/// A TLS client that trusts `cert` (the test's own CA of one).
fn tls_client(cert: &Path, addr: &str) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for der in rustls::pki_types::CertificateDer::pem_file_iter(cert).expect("read cert") {
        roots.add(der.expect("PEM")).expect("a root");
    }
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    rustls::StreamOwned::new(conn, tcp)
}

/// Sends an RTSP request and reads its reply's head (the requests here get no body).
fn exchange(stream: &mut impl ReadWrite, request: &str) -> String {
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            other => panic!("reply cut short ({other:?}): {reply:?}"),
        }
    }
    let text = String::from_utf8_lossy(&reply).to_string();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length:"))
        .map_or(0, |v| v.trim().parse().expect("a length"));
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("body");
    text + &String::from_utf8_lossy(&body)
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn udp_and_multicast_over_rtsps_are_refused_with_461_and_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let server = tls_server(&cert, &key, &[]);
    let url = server.rtsps_url(CLIP);
    let addr = url
        .trim_start_matches("rtsps://")
        .split('/')
        .next()
        .unwrap();
    let mut tls = tls_client(&cert, addr);
    let control = format!("{url}/streamid=0");
    let refused = exchange(
        &mut tls,
        &format!(
            "SETUP {control} RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n"
        ),
    );
    assert!(
        refused.starts_with("RTSP/1.0 461"),
        "UDP over RTSPS: {refused}"
    );
    assert!(
        refused.contains("interleaved") && refused.contains("RTSPS"),
        "no reason given: {refused}"
    );
    // Multicast too: it would send the stream unencrypted to a group.
    let multicast = exchange(
        &mut tls,
        &format!("SETUP {control} RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;multicast\r\n\r\n"),
    );
    assert!(
        multicast.starts_with("RTSP/1.0 461") && multicast.contains("multicast"),
        "multicast over RTSPS: {multicast}"
    );
    // The same connection then sets up interleaved.
    let accepted = exchange(
        &mut tls,
        &format!(
            "SETUP {control} RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
        ),
    );
    assert!(accepted.starts_with("RTSP/1.0 200"), "{accepted}");
    assert!(accepted.contains("interleaved=0-1"), "{accepted}");
    // Plain RTSP still sets up UDP.
    let mut plain = TcpStream::connect(server.addr).expect("connect");
    plain
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let udp = exchange(
        &mut plain,
        &format!(
            "SETUP {}/streamid=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n",
            server.url(CLIP)
        ),
    );
    assert!(udp.starts_with("RTSP/1.0 200"), "{udp}");
}

fn curl(args: &[&str], url: &str) -> (bool, Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "20"])
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn https_serves_the_page_the_api_snapshots_and_the_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let server = tls_server(&cert, &key, &[]);
    let base = server.http();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");

    // curl checks certificates: refused without -k, accepted with our certificate as CA.
    let (ok, _, err) = curl(&[], &format!("{base}/"));
    assert!(!ok, "curl accepted a self-signed certificate");
    assert!(err.contains("certificate"), "{err}");
    let cacert = cert.to_str().expect("utf-8 path");
    let (ok, page, err) = curl(
        &["--cacert", cacert],
        &format!("{}/", base.replace("127.0.0.1", "localhost")),
    );
    assert!(ok, "curl --cacert: {err}");
    assert!(
        String::from_utf8_lossy(&page).contains("<html"),
        "not the page"
    );

    let (ok, paths, err) = curl(&["-k"], &format!("{base}/api/paths"));
    assert!(ok, "{err}");
    let paths: Value = serde_json::from_slice(&paths).expect("JSON");
    assert!(
        paths["paths"]
            .as_array()
            .is_some_and(|all| all.iter().any(|p| p["name"] == CLIP)),
        "{paths}"
    );

    // The snapshot is one of the clip's JPEGs, byte for byte.
    let (ok, jpeg, err) = curl(&["-k", "-f"], &format!("{base}/{CLIP}/snapshot.jpg"));
    assert!(ok, "{err}");
    let clip = lab_frames(&std::fs::read(workspace_root().join("media").join(CLIP)).unwrap());
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    assert!(
        clip.contains(&jpeg),
        "the snapshot is not one of the clip's frames"
    );

    // The multipart stream, read by ffmpeg over TLS: whole JPEGs, decoded.
    let (ok, frames, dimensions) =
        ffmpeg_frames(&["-f", "mpjpeg"], &format!("{base}/{CLIP}/stream.mjpg"), 15);
    assert!(ok, "ffmpeg over HTTPS failed");
    assert_eq!(frames.len(), 15);
    assert_eq!(dimensions, "384x288");

    // Plain HTTP to the HTTPS port gets no page.
    let (ok, body, _) = curl(&[], &base.replace("https://", "http://"));
    assert!(
        !ok && !String::from_utf8_lossy(&body).contains("<html"),
        "plain HTTP was served on the HTTPS port"
    );
}

/// The server's exit status and log for `args` (which must stop it at start).
fn start_fails(args: &[&std::ffi::OsStr]) -> String {
    let (status, _, err) = run_to_end(
        Command::new(server_binary())
            .args(["--bind", "127.0.0.1", "--port", "0", "--http-port", "0"])
            .args(["--rtsps-port", "0"])
            .args(args),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "the server started with {args:?}");
    err
}

#[test]
fn unusable_certificates_and_keys_stop_the_server_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let other = tempfile::tempdir().expect("tempdir");
    let (_, other_key) = self_signed(other.path());
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a PEM file\n").unwrap();
    let flags = |c: &Path, k: &Path| -> Vec<std::ffi::OsString> {
        vec![
            "--tls-cert".into(),
            c.as_os_str().into(),
            "--tls-key".into(),
            k.as_os_str().into(),
        ]
    };
    let cases: [(Vec<std::ffi::OsString>, &[&str]); 5] = [
        (flags(&missing, &key), &["cannot read", "missing.pem"]),
        (flags(&cert, &missing), &["cannot read", "missing.pem"]),
        (
            flags(&garbage, &key),
            &["garbage.pem", "no PEM certificate"],
        ),
        (
            flags(&cert, &garbage),
            &["garbage.pem", "no PEM private key"],
        ),
        (flags(&cert, &other_key), &["cannot be used together"]),
    ];
    for (args, needles) in cases {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let err = start_fails(&args);
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
    }
    // One without the other is a usage error.
    let err = start_fails(&["--tls-cert".as_ref(), cert.as_os_str()]);
    assert!(err.contains("--tls-key"), "{err}");
}

#[test]
fn https_with_users_asks_for_credentials_and_takes_basic_and_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let config = dir.path().join("users.toml");
    std::fs::write(
        &config,
        "[[users]]\nname = \"viewer\"\npassword = \"tls-secret-1\"\nread = [\"*\"]\n\n\
         [[users]]\nname = \"nobody\"\npassword = \"tls-secret-2\"\nread = []\n",
    )
    .expect("write the config");
    let config = config.to_str().expect("utf-8 path").to_string();
    let server = tls_server(&cert, &key, &["--config", &config]);
    let base = server.http();
    assert!(base.starts_with("https://"), "{base}");
    let snapshot = format!("{base}/{CLIP}/snapshot.jpg");
    let status = |args: &[&str]| {
        let mut all = vec!["-k", "-o", "/dev/null", "-w", "%{http_code}"];
        all.extend_from_slice(args);
        let (_, out, err) = curl(&all, &snapshot);
        (String::from_utf8_lossy(&out).to_string(), err)
    };
    // Anonymous: 401, with Digest and Basic offered.
    let (_, head, err) = curl(&["-k", "-s", "-D", "-", "-o", "/dev/null"], &snapshot);
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 401"), "{head} {err}");
    let challenges: Vec<&str> = head
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert!(
        challenges.iter().any(|c| c.contains("Digest"))
            && challenges.iter().any(|c| c.contains("Basic")),
        "{head}"
    );
    // The right user, with Basic and with Digest: the snapshot, a JPEG.
    for scheme in ["--basic", "--digest"] {
        let (ok, jpeg, err) = curl(&["-k", scheme, "-u", "viewer:tls-secret-1"], &snapshot);
        assert!(ok, "{scheme}: {err}");
        assert!(
            jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]),
            "{scheme}: not a JPEG ({} bytes)",
            jpeg.len()
        );
    }
    // A wrong password: 401; a user without the right to read: 403.
    assert_eq!(status(&["--digest", "-u", "viewer:wrong"]).0, "401");
    assert_eq!(status(&["--basic", "-u", "nobody:tls-secret-2"]).0, "403");
    // The passwords are nowhere in the log.
    let log = server.log();
    assert!(
        !log.contains("tls-secret-1") && !log.contains("tls-secret-2"),
        "{log}"
    );
}
