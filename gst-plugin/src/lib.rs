//! GStreamer plugin `mjpegrtp`: Motion-JPEG files and RFC 2435 JPEG over RTP.
//!
//! The protocol knowledge lives in the `mjpeg-media` crate (`crates/media`), with no
//! GStreamer in it ([`jpeg`], [`mjpeg`], [`rfc2435`], [`rtcp`], re-exported here); the
//! elements are thin shells that call into it.
//!
//! Elements:
//! - `mjpegfilesrc`: reads `.Mjpeg` (networking-lab) and concatenated-JPEG files.
//! - `rtpmjpegpay` / `rtpmjpegdepay`: RFC 2435 JPEG over RTP.
//! - `rtcplossmonitor`: RFC 3550 receiver statistics and RTCP receiver reports.

use gst::glib;

pub use mjpeg_media::{jpeg, mjpeg, rfc2435, rtcp};

pub mod mjpegfilesrc;
pub mod rtcplossmonitor;
pub mod rtpmjpegdepay;
pub mod rtpmjpegpay;

/// Locks `m`, carrying on with the data if another thread panicked while holding it (the
/// elements' state stays usable; a panic is already reported by GStreamer).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A sink and a source pad template, both always present: what a one-in, one-out element
/// declares.
pub(crate) fn sink_and_src_templates(sink: &gst::Caps, src: &gst::Caps) -> Vec<gst::PadTemplate> {
    [
        ("sink", gst::PadDirection::Sink, sink),
        ("src", gst::PadDirection::Src, src),
    ]
    .into_iter()
    .map(|(name, direction, caps)| {
        gst::PadTemplate::new(name, direction, gst::PadPresence::Always, caps)
            .expect("a valid pad template")
    })
    .collect()
}

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    mjpegfilesrc::register(plugin)?;
    rtpmjpegpay::register(plugin)?;
    rtpmjpegdepay::register(plugin)?;
    rtcplossmonitor::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    mjpegrtp,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // The crate is MIT OR Apache-2.0; GStreamer's list of licences names MIT this way.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    "mjpeg-rtsp",
    env!("BUILD_REL_DATE")
);
