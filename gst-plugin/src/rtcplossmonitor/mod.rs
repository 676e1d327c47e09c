//! `rtcplossmonitor`: RFC 3550 receiver statistics for an RTP stream, and RTCP receiver
//! reports, in one element you drop into any RTP pipeline.
//!
//! RTP goes from `sink` to `src` untouched (no copy, no added latency). Per SSRC, the
//! element keeps RFC 3550 Appendix A statistics: sequence validation with probation, loss
//! (expected, cumulative lost, fraction lost), interarrival jitter (from the buffers'
//! arrival times, their running time as rtpsession takes it, else the clock), duplicates,
//! reordered packets, bit and packet rates. They are in the read-only `stats` property and,
//! every `interval`, in a `loss-report` element message on the bus; `loss-threshold` posts
//! a warning when a source's loss in an interval rises above it and an info message when it
//! falls back.
//!
//! RTCP: `rtcp_src` sends compound receiver reports (RR + SDES CNAME) at RFC 3550 intervals
//! (`reduced-minimum` for the shorter minimum of section 6.2), with LSR/DLSR from the sender
//! reports that arrive on `rtcp_sink`. Receiver reports arriving there (at a sender) show up
//! in the statistics as `rb-*` fields with the round-trip time; BYE marks a source ended and
//! posts an `rtcp-bye` message (`ssrc`, `reason`, and `sender`: whether RTP from that SSRC
//! came through, so that a receiver's BYE on a multicast group is told from the stream's
//! sender's). Malformed RTCP is dropped with a warning and counted.
//! When the RTP stream ends (EOS on `sink`), a last report ending with a BYE for our SSRC
//! (RFC 3550 6.6) goes out, then EOS on `rtcp_src`; flushing seeks neither end `rtcp_src`
//! nor say BYE.
//!
//! Timing: the reports and `loss-report` messages run on the element's clock from PAUSED
//! to READY, so a `TestClock` drives them. Before the pipeline hands out its clock (on the
//! way to PLAYING), or for an element on its own, they run on the system clock, and move
//! to the element's clock when it gets one, keeping the time they had left. The last
//! report and BYE at EOS need no clock.
//!
//! ```text
//! gst-launch-1.0 -m udpsrc port=5000 \
//!     caps="application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26" \
//!     ! rtcplossmonitor ! rtpjitterbuffer ! rtpmjpegdepay ! jpegdec ! autovideosink
//! ```

use gst::glib;
use gst::prelude::*;

mod imp;
mod stats;
mod timers;

glib::wrapper! {
    pub struct RtcpLossMonitor(ObjectSubclass<imp::RtcpLossMonitor>)
        @extends gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtcplossmonitor",
        gst::Rank::NONE,
        RtcpLossMonitor::static_type(),
    )
}
