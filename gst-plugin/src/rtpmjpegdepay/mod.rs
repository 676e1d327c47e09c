//! `rtpmjpegdepay`: rebuilds JPEG images from RTP/JPEG (RFC 2435) packets.
//!
//! Reads types 0, 1, 64 and 65; Q 1-99 (tables computed), Q 128-254 (in-band tables
//! cached for frames that omit them) and Q 255; one to three tables, 8- or 16-bit (written
//! as SOF1, which `rtpjpegdepay` drops). An image is output only when all its fragments
//! arrived in order; otherwise the frame is dropped with a warning and counted in
//! `frames-dropped`, and the next frame comes out normally. With `salvage=true`, a frame
//! with restart markers that lost packets is output up to its last complete restart
//! interval (the rest decodes as grey) and counted in `frames-salvaged`.
//!
//! The size comes from the header, or from `x-dimensions` in the caps (SDP
//! `a=x-dimensions`) for images over 2040 pixels or not a multiple of 8; the frame rate
//! from `a-framerate` or `x-framerate`. Output caps are complete (`parsed=true`, size,
//! sampling), so `jpegdec` needs no `jpegparse`.
//!
//! Packets from networking-lab servers, which carry a whole JPEG and no RFC 2435 header,
//! are recognised per packet and output as they are.
//!
//! ```text
//! gst-launch-1.0 udpsrc port=5000 \
//!     caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
//!     ! rtpjitterbuffer ! rtpmjpegdepay ! jpegdec ! videoconvert ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpMjpegDepay(ObjectSubclass<imp::RtpMjpegDepay>)
        @extends gst_rtp::RTPBaseDepayload, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpmjpegdepay",
        gst::Rank::MARGINAL,
        RtpMjpegDepay::static_type(),
    )
}
