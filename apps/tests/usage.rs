//! The command lines: the server and the player explain themselves and refuse bad
//! arguments clearly.

use std::process::Command;

/// `--help` succeeds and names every option.
fn help_lists(binary: &str, options: &[&str]) {
    let out = Command::new(binary)
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in options {
        assert!(help.contains(option), "{option} missing in\n{help}");
    }
}

#[test]
fn server_help_describes_every_option() {
    help_lists(
        env!("CARGO_BIN_EXE_mjpeg-rtsp-server"),
        &[
            "--port",
            "--bind",
            "--fps",
            "--mtu",
            "--loop",
            "--session-timeout",
            "--stats",
            "--no-adapt",
            "[PATHS]...",
        ],
    );
}

#[test]
fn server_refuses_a_missing_clip() {
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-rtsp-server"))
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "/nonexistent/clip.Mjpeg",
        ])
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/clip.Mjpeg") && err.contains("No such file"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn player_help_describes_every_option() {
    help_lists(
        env!("CARGO_BIN_EXE_mjpeg-player"),
        &[
            "--transport",
            "--headless",
            "--no-overlay",
            "--frames",
            "--duration",
            "--stats-json",
            "--record",
            "--lab",
            "<URL>",
        ],
    );
}

#[test]
fn player_without_a_url_prints_usage_and_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-player"))
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Usage: mjpeg-player"), "{err}");
}

#[test]
fn player_reports_an_unreachable_server() {
    // A port nobody listens on (bound, then released).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-player"))
        .args(["--headless", &format!("rtsp://127.0.0.1:{port}/clip.Mjpeg")])
        .output()
        .expect("binary runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to 127.0.0.1"), "{err}");
}
