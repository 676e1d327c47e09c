//! Fuzzes the RTCP side of `rtcp::Session`: arbitrary bytes as compound RTCP packets,
//! between RTP packets made from the input. No panic; malformed packets are counted; and
//! every receiver report the session builds afterwards is valid RTCP.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_media::rtcp::Session;

fuzz_target!(|data: &[u8]| {
    let mut session = Session::new(0x1234_5678, "fuzz@host");
    let mut now = 0u64;
    // Chunks: a length byte, then that many bytes of RTCP; after each, an RTP header made
    // from the chunk's first bytes.
    let mut rest = data;
    let mut packets = 0u64;
    while let [len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (rtcp, next) = tail.split_at(len);
        rest = next;
        now += 10_000_000;
        let errors_before = session.rtcp_errors();
        let result = session.on_rtcp(rtcp, now, now << 8);
        packets += 1;
        assert_eq!(session.rtcp_packets(), packets);
        assert_eq!(
            session.rtcp_errors(),
            errors_before + u64::from(result.is_err())
        );
        let mut header = [0x80u8, 26, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        for (h, b) in header[2..].iter_mut().zip(rtcp) {
            *h = *b;
        }
        let _ = session.on_rtp(&header, 1000, now, Some(90_000));
    }
    session.end_interval();
    let report = session
        .build_report(now)
        .expect("a report can always be built");
    let compound = rtcp_types::Compound::parse(&report).expect("the report parses");
    for packet in compound {
        let packet = packet.expect("each packet of the report parses");
        if let rtcp_types::Packet::Rr(rr) = packet {
            assert!(rr.n_reports() <= 31);
        }
    }
});
