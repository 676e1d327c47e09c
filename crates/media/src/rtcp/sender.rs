//! The sender's side of RFC 3550: sender reports (6.4.1) and BYE (6.6), each sent as a
//! compound packet with SDES CNAME (6.1), built with `rtcp-types`.

use rtcp_types::{
    Bye, Compound, CompoundBuilder, RtcpPacketWriter, RtcpPacketWriterExt, Sdes, SdesChunk,
    SdesItem, SenderReport,
};

/// What a sender has sent so far, for its sender reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderCounts {
    pub packets: u32,
    /// Payload octets (RTP headers and padding not counted).
    pub octets: u32,
}

impl SenderCounts {
    pub fn add(&mut self, payload_octets: usize) {
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_octets as u32);
    }
}

/// SR + SDES, then BYE when `bye` gives a reason (the source leaves: end of its stream,
/// or the session ends). `ntp` (64-bit NTP time now) and `rtp_timestamp` are the same
/// instant.
pub fn sender_report(
    ssrc: u32,
    cname: &str,
    ntp: u64,
    rtp_timestamp: u32,
    counts: SenderCounts,
    bye: Option<&str>,
) -> Result<Vec<u8>, String> {
    let sr = SenderReport::builder(ssrc)
        .ntp_timestamp(ntp)
        .rtp_timestamp(rtp_timestamp)
        .packet_count(counts.packets)
        .octet_count(counts.octets);
    let compound = Compound::builder()
        .add_packet(sr)
        .add_packet(sdes(ssrc, cname));
    match bye {
        Some(reason) => write(compound.add_packet(Bye::builder().add_source(ssrc).reason(reason))),
        None => write(compound),
    }
}

fn sdes(ssrc: u32, cname: &str) -> rtcp_types::SdesBuilder<'_> {
    Sdes::builder()
        .add_chunk(SdesChunk::builder(ssrc).add_item(SdesItem::builder(SdesItem::CNAME, cname)))
}

fn write(compound: CompoundBuilder<'_>) -> Result<Vec<u8>, String> {
    let size = compound.calculate_size().map_err(|e| format!("{e:?}"))?;
    let mut out = vec![0; size];
    compound
        .write_into(&mut out)
        .map_err(|e| format!("{e:?}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtcp::Session;

    #[test]
    fn rtp_headers_write_and_read_back() {
        let h = crate::rtcp::session::RtpHeader {
            payload_type: 26,
            sequence: 0xBEEF,
            timestamp: 0x0102_0304,
            ssrc: 0xCAFE_F00D,
        };
        let bytes = h.to_bytes(true);
        assert_eq!(bytes[..2], [0x80, 0x80 | 26]);
        assert_eq!(crate::rtcp::session::RtpHeader::parse(&bytes), Ok(h));
        assert_eq!(h.to_bytes(false)[1], 26);
    }

    #[test]
    fn receiver_reports_name_the_ssrcs_they_report_on() {
        let mut receiver = Session::new(7, "client");
        let mut header = [0x80u8, 26, 0, 1, 0, 0, 0, 0, 0xAB, 0xCD, 0, 1];
        for seq in 1..4u8 {
            header[3] = seq;
            receiver
                .on_rtp(&header, 100, u64::from(seq) * 1_000_000, Some(90_000))
                .unwrap();
        }
        let rr = receiver.build_report(10_000_000).unwrap();
        assert_eq!(crate::rtcp::session::reported_ssrcs(&rr), vec![0xABCD_0001]);
        assert!(crate::rtcp::session::reported_ssrcs(b"junk").is_empty());
    }

    #[test]
    fn sender_reports_and_bye_read_back() {
        let counts = SenderCounts {
            packets: 10,
            octets: 12_000,
        };
        let sr = sender_report(
            0x1234,
            "server@host",
            0xAABB_CCDD_0000_0000,
            90_000,
            counts,
            None,
        )
        .unwrap();
        let mut receiver = Session::new(7, "client");
        assert_eq!(receiver.on_rtcp(&sr, 5, 0).unwrap().byes, vec![]);
        let source = &receiver.sources()[0];
        assert_eq!(source.ssrc, 0x1234);
        let info = source.sender_info.unwrap();
        assert_eq!(
            (
                info.ntp_timestamp,
                info.rtp_timestamp,
                info.packet_count,
                info.octet_count
            ),
            (0xAABB_CCDD_0000_0000, 90_000, 10, 12_000)
        );
        assert_eq!(source.cname.as_deref(), Some("server@host"));
        let bye = sender_report(0x1234, "server@host", 1, 2, counts, Some("end of clip")).unwrap();
        let events = receiver.on_rtcp(&bye, 6, 0).unwrap();
        assert_eq!(events.byes, vec![(0x1234, Some("end of clip".to_string()))]);
    }
}
