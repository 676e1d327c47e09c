//! The command lines: the server explains itself and refuses bad arguments clearly; the
//! player, until it is implemented, says so and fails, claiming nothing.

use std::process::Command;

#[test]
fn server_help_describes_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-rtsp-server"))
        .arg("--help")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--port",
        "--bind",
        "--fps",
        "--mtu",
        "--loop",
        "--session-timeout",
        "--stats",
        "--no-adapt",
        "[PATHS]...",
    ] {
        assert!(help.contains(option), "{option} missing in\n{help}");
    }
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
fn player_prints_usage_and_fails() {
    let out = Command::new(env!("CARGO_BIN_EXE_mjpeg-player"))
        .output()
        .expect("binary runs");
    assert_eq!(
        out.status.code(),
        Some(i32::from(mjpeg_rtsp::NOT_AVAILABLE))
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("usage: mjpeg-player"), "{err}");
    assert!(err.contains("not available in this build"), "{err}");
    assert!(out.stdout.is_empty());
}
