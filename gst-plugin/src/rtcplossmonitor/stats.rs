//! The statistics as `gst-inspect-1.0` documents them and as the `stats` property and
//! `loss-report` messages carry them.

use crate::rtcp::Source;

pub(super) const STATS_DOC: &str = "Statistics (GstStructure application/x-rtcp-loss-stats): ssrc (uint, \
ours), rtcp-packets (received), rtcp-errors, rtp-errors (malformed packets dropped), sources (GstValueArray of \
application/x-rtcp-source-stats, one per SSRC: ssrc, valid (passed probation), \
packets-received, packets-expected, packets-lost (int64, cumulative, RFC 3550 A.3; negative \
with duplicates), fraction-lost (0-255, last interval), loss-percent (double, cumulative), \
extended-highest-seq, jitter (RTP timestamp units), jitter-ms (double), duplicates, \
reordered, bitrate (bit/s), packet-rate (packets/s), cname, ended (BYE received); from \
the source's sender reports: sr-ntp-time, sr-rtp-time, sr-packet-count, sr-octet-count; \
from the other side's report blocks about it: rb-fraction-lost, rb-packets-lost, \
rb-jitter, rb-extended-highest-seq, rtt-ms)";

/// One source's statistics.
pub(super) fn source_structure(s: &Source) -> gst::Structure {
    let mut b = gst::Structure::builder("application/x-rtcp-source-stats").field("ssrc", s.ssrc);
    if let Some(seq) = s.sequence() {
        b = b
            .field("valid", seq.is_valid())
            .field("packets-received", seq.received())
            .field("packets-expected", seq.expected())
            .field("packets-lost", seq.lost())
            .field("fraction-lost", u32::from(s.interval_fraction_lost()))
            .field("loss-percent", seq.loss_percent())
            .field("extended-highest-seq", seq.extended_max())
            .field("duplicates", seq.duplicates())
            .field("reordered", seq.reordered());
    }
    b = b
        .field("jitter", s.jitter().value())
        .field("jitter-ms", s.jitter_ms())
        .field("bitrate", s.bitrate())
        .field("packet-rate", s.packet_rate())
        .field("ended", s.bye.is_some());
    if let Some(cname) = &s.cname {
        b = b.field("cname", cname);
    }
    if let Some(sr) = s.sender_info {
        b = b
            .field("sr-ntp-time", sr.ntp_timestamp)
            .field("sr-rtp-time", sr.rtp_timestamp)
            .field("sr-packet-count", sr.packet_count)
            .field("sr-octet-count", sr.octet_count);
    }
    if let Some(rb) = s.peer_report {
        b = b
            .field("rb-fraction-lost", u32::from(rb.fraction_lost))
            .field("rb-packets-lost", rb.cumulative_lost)
            .field("rb-jitter", rb.jitter)
            .field("rb-extended-highest-seq", rb.extended_highest_seq);
        if let Some(rtt) = rb.round_trip_ns {
            b = b.field("rtt-ms", rtt as f64 / 1e6);
        }
    }
    b.build()
}
