//! `mjpegfilesrc`: reads a Motion-JPEG file and outputs one parsed JPEG per buffer.
//!
//! Reads the networking-lab `.Mjpeg` format (a 5-digit length before each JPEG) and plain
//! concatenated JPEG, detected from the first bytes or forced with `format`. The file is
//! indexed once at start, which validates every frame and makes seeking (in time or in
//! frames) exact; frames then go downstream as slices of the memory-mapped file, with no
//! copy. Caps carry `width`, `height`, `framerate`, `parsed=true`, `sof-marker`,
//! `colorspace` and `sampling`, so `jpegdec`, `rtpjpegpay` and `rtpmjpegpay` need no
//! `jpegparse`.
//!
//! ```text
//! gst-launch-1.0 mjpegfilesrc location=media/sample.Mjpeg ! jpegdec ! videoconvert ! autovideosink
//! gst-launch-1.0 mjpegfilesrc location=clip.mjpeg is-live=true loop=true ! rtpjpegpay ! \
//!     udpsink host=127.0.0.1 port=5000
//! ```
//!
//! Frame numbers (in messages, buffer offsets and `DEFAULT`-format seeks) count from 0.
//! The file must not be truncated by another program while it plays: like any
//! memory-mapped reader, the process would then get SIGBUS.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct MjpegFileSrc(ObjectSubclass<imp::MjpegFileSrc>)
        @extends gst_base::PushSrc, gst_base::BaseSrc, gst::Element, gst::Object,
        @implements gst::URIHandler;
}

/// The `format` property.
#[derive(Debug, Default, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstMjpegFileSrcFormat")]
pub enum FileFormat {
    #[default]
    #[enum_value(
        name = "Auto: detect from the first bytes (5 ASCII digits = lab, FF D8 = jpeg)",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(
        name = "Lab: networking-lab .Mjpeg, each JPEG preceded by its length as 5 ASCII digits",
        nick = "lab"
    )]
    Lab = 1,
    #[enum_value(name = "JPEG: concatenated JPEG images", nick = "jpeg")]
    Jpeg = 2,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "mjpegfilesrc",
        gst::Rank::NONE,
        MjpegFileSrc::static_type(),
    )
}
