//! `rtpmjpegdepay`: rebuilds JPEG images from RTP/JPEG (RFC 2435) packets.
//!
//! Reads types 0, 1, 64 and 65; Q 1-99 (tables computed), Q 128-254 (in-band tables
//! cached for frames that omit them) and Q 255; one to three tables, 8- or 16-bit (written
//! as SOF1, which `rtpjpegdepay` drops).
//!
//! Packets are placed by their fragment offset, so reordering costs nothing: a packet that
//! arrives after one that follows it (inside a frame, or across frames, up to
//! `frames-in-progress` frames at once) is put in its place, with no jitter buffer and no
//! added latency. A frame is output the moment every byte from its start to its marker
//! packet is there; frames leave in RTP timestamp order. A frame that cannot be completed
//! (a lost packet, or a newer frame complete first) is dropped with a warning and counted
//! in `frames-dropped`, and the next frame comes out normally; duplicates, late packets
//! and repaired reorderings are counted too (`stats`). With `salvage=true`, a frame with
//! restart markers that lost packets is output up to its last complete restart interval
//! (the rest decodes as grey) and counted in `frames-salvaged`.
//!
//! The element takes packets one by one or as buffer lists (one lock and no per-packet
//! bookkeeping beyond the RTP header for a whole list), of one memory each (`udpsrc`) or
//! several (`rtpjpegpay`'s header and data), without joining them. It passes upstream's
//! segment and timestamps on: each image has the PTS of the packet that completed it.
//!
//! The size comes from the header, or from `x-dimensions` in the caps (SDP
//! `a=x-dimensions`) for images over 2040 pixels (a 0 size field; GStreamer's rtpjpegpay
//! writes 0 in both as soon as either side is over) or not a multiple of 8; the frame rate
//! from `a-framerate` or `x-framerate`. Output caps are complete (`parsed=true`, size,
//! sampling), so `jpegdec` needs no `jpegparse`.
//!
//! Packets from networking-lab servers, which carry a whole JPEG and no RFC 2435 header,
//! are recognised per packet and output as they are; `lab-dialect=on` (or `off`) says
//! which a stream is instead.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5000 \
//!     caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
//!     ! rtpjitterbuffer ! rtpmjpegdepay ! jpegdec ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
mod packet;

glib::wrapper! {
    pub struct RtpMjpegDepay(ObjectSubclass<imp::RtpMjpegDepay>)
        @extends gst::Element, gst::Object;
}

/// The `lab-dialect` property: whether packets carry a whole JPEG each (the networking
/// lab's dialect) or RFC 2435 fragments.
#[derive(Debug, Default, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRtpMjpegDepayLabDialect")]
pub enum LabDialect {
    #[default]
    #[enum_value(
        name = "Told per packet: a payload starting FF D8 FF is a whole JPEG",
        nick = "auto"
    )]
    Auto = 0,
    #[enum_value(name = "Every packet is RFC 2435", nick = "off")]
    Off = 1,
    #[enum_value(name = "Every packet is a whole JPEG (lab servers)", nick = "on")]
    On = 2,
}

impl From<LabDialect> for crate::rfc2435::LabDialect {
    fn from(lab: LabDialect) -> Self {
        match lab {
            LabDialect::Auto => crate::rfc2435::LabDialect::Auto,
            LabDialect::Off => crate::rfc2435::LabDialect::Never,
            LabDialect::On => crate::rfc2435::LabDialect::Always,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpmjpegdepay",
        gst::Rank::MARGINAL,
        RtpMjpegDepay::static_type(),
    )
}
