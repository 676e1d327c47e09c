//! Where the video goes: a window on the display (the first video sink that opens), or a
//! fake sink when headless.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;

use super::Options;
use super::pipeline::Player;

/// Whether there is a display to open a window on (X11 or Wayland).
pub fn has_display() -> bool {
    std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty())
        || std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty())
}

/// Video sinks to try, best first. `autovideosink` would probe every sink it knows (1.5 s
/// under Xvfb here, and it sometimes failed to start); trying the usual ones directly
/// opens a window in a few milliseconds.
fn video_sinks(headless: bool) -> &'static [&'static str] {
    if headless {
        &["fakesink"]
    } else if std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty()) {
        &["xvimagesink", "ximagesink", "autovideosink"]
    } else {
        &["waylandsink", "autovideosink"]
    }
}

/// The pipeline with the first video sink that opens (reaches READY), and that sink's
/// name.
pub(super) fn open_player(
    options: &Options,
    on_frame: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<(Player, &'static str)> {
    let mut last_error = None;
    for &sink in video_sinks(options.headless) {
        if gst::ElementFactory::find(sink).is_none() {
            continue;
        }
        let on_frame = on_frame.clone();
        let player = Player::new(sink, options.overlay, move |n| on_frame(n))?;
        match player.pipeline.set_state(gst::State::Ready) {
            Ok(_) => {
                tracing::debug!("video sink: {sink}");
                return Ok((player, sink));
            }
            Err(e) => {
                tracing::debug!("{sink} did not open ({e}), trying the next sink");
                let _ = player.pipeline.set_state(gst::State::Null);
                last_error = Some(anyhow!("{sink}: {e}"));
            }
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow!("no video sink")))
        .context("cannot open a video window (try --headless)")
}
