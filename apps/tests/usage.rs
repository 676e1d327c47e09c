//! Until they are implemented, the applications say so and fail, claiming nothing.

use std::process::Command;

fn check(bin: &str, usage: &str) {
    let out = Command::new(bin).output().expect("binary runs");
    assert_eq!(
        out.status.code(),
        Some(i32::from(mjpeg_rtsp::NOT_AVAILABLE))
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with(usage), "{err}");
    assert!(err.contains("not available in this build"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn server_prints_usage_and_fails() {
    check(
        env!("CARGO_BIN_EXE_mjpeg-rtsp-server"),
        "usage: mjpeg-rtsp-server",
    );
}

#[test]
fn player_prints_usage_and_fails() {
    check(env!("CARGO_BIN_EXE_mjpeg-player"), "usage: mjpeg-player");
}
