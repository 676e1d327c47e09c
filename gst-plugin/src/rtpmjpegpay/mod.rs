//! `rtpmjpegpay`: payloads JPEG images as RTP/JPEG (RFC 2435, payload type 26, 90 kHz).
//!
//! Sends types 0 (4:2:2) and 1 (4:2:0), and 64/65 when the image has restart markers, with
//! packets aligned to restart intervals where the MTU allows. Quantization tables that
//! are the RFC's own Q-factor tables go as a Q value alone (1-99); others go in band
//! (`inband-q`: 255, or 128-254 for static tables a receiver caches), any number of tables
//! per DQT segment, 8- or 16-bit. Scans with non-standard Huffman tables (ffmpeg's
//! default) are re-encoded losslessly with the standard tables RFC 2435 receivers assume
//! (`huffman=reencode`). Scan data is not copied: packets share the input's memory.
//!
//! Images over 2040 pixels wide or high cannot be described by the header's 8-bit size
//! fields: those fields are sent as 0, and the real size goes in the caps as
//! `x-dimensions=(string)"W,H"` (for SDP `a=x-dimensions:W,H`), which `rtpmjpegdepay` and
//! GStreamer's `rtpjpegdepay` read. The same field gives receivers the exact size of images
//! whose size is not a multiple of 8.
//!
//! When the input caps say `parsed=true` (from `mjpegfilesrc` or `jpegparse`: one image per
//! buffer, ending with its EOI), the end of each single-scan image's scan is taken from
//! that EOI; otherwise the scan data is read to find it. The two agree for every image
//! that follows T.81.
//!
//! Input RFC 2435 cannot carry (progressive, arithmetic, 12-bit, grayscale, 4:4:4, CMYK,
//! several scans) is an error naming the reason and the fix, or with
//! `drop-unsupported=true` a dropped frame with a warning, counted in `frames-dropped`.
//!
//! ```text
//! gst-launch-1.0 mjpegfilesrc location=media/sample.Mjpeg is-live=true \
//!     ! rtpmjpegpay ! udpsink host=127.0.0.1 port=5000
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpMjpegPay(ObjectSubclass<imp::RtpMjpegPay>)
        @extends gst_rtp::RTPBasePayload, gst::Element, gst::Object;
}

/// The `huffman` property.
#[derive(Debug, Default, Eq, PartialEq, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRtpMjpegPayHuffman")]
pub enum Huffman {
    #[default]
    #[enum_value(
        name = "Re-encode the scan losslessly with the standard tables",
        nick = "reencode"
    )]
    Reencode = 0,
    #[enum_value(name = "Refuse the frame", nick = "refuse")]
    Refuse = 1,
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpmjpegpay",
        gst::Rank::MARGINAL,
        RtpMjpegPay::static_type(),
    )
}
