//! `meson setup && meson compile && meson install` puts the plugin where GStreamer looks
//! for plugins, and GStreamer loads it from there.

use std::path::Path;
use std::process::Command;

use mjpeg_rtsp_tests::{gst_tool, target_dir, workspace_root};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn meson_install_into_a_staging_prefix_is_found_by_gst_inspect() {
    let build = tempfile::tempdir().unwrap();
    let stage = tempfile::tempdir().unwrap();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    // Share the workspace's cargo target directory so the plugin is not rebuilt from
    // scratch.
    run(Command::new("meson")
        .arg("setup")
        .arg(build.path())
        .arg(workspace_root())
        .arg(format!("-Dbuildtype={profile}"))
        .arg(format!("-Dcargo_target_dir={}", target_dir().display())));
    run(Command::new("meson")
        .args(["compile", "-C"])
        .arg(build.path()));
    run(Command::new("meson")
        .args(["install", "-C"])
        .arg(build.path())
        .arg("--destdir")
        .arg(stage.path()));

    let pluginsdir =
        run(Command::new("pkg-config").args(["--variable=pluginsdir", "gstreamer-1.0"]));
    let installed_dir = stage
        .path()
        .join(Path::new(pluginsdir.trim()).strip_prefix("/").unwrap());
    let installed = installed_dir.join("libgstmjpegrtp.so");
    assert!(installed.exists(), "{} not installed", installed.display());

    // Only the staged directory is searched, so the plugin found is the installed one.
    let registry = tempfile::tempdir().unwrap();
    let inspect = run(gst_tool("gst-inspect-1.0", registry.path())
        .env("GST_PLUGIN_PATH", &installed_dir)
        .env("GST_PLUGIN_SYSTEM_PATH", "")
        .arg("mjpegrtp"));
    assert!(inspect.contains("mjpegfilesrc"), "{inspect}");
    assert!(
        inspect.contains(installed.to_str().unwrap()),
        "not loaded from the install: {inspect}"
    );
}
