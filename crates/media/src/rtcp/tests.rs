//! Receiver statistics against values worked out by hand from RFC 3550 Appendix A.

use rtcp_types::{
    Bye, Compound, Packet as RtcpPacket, ReceiverReport, ReportBlock, RtcpPacketWriterExt, Sdes,
    SdesChunk, SdesItem, SenderReport,
};

use super::interval::{IntervalInput, deterministic, randomized};
use super::receiver::{MAX_DROPOUT, Packet, Prior, Sequence};
use super::*;

/// Feeds `seqs` to a new source and returns it with what each packet was.
fn feed(seqs: &[u16]) -> (Sequence, Vec<Packet>) {
    let mut s = Sequence::new(seqs[0]);
    let kinds = seqs.iter().map(|&q| s.update(q)).collect();
    (s, kinds)
}

#[test]
fn in_order_stream_after_probation() {
    let seqs: Vec<u16> = (100..=109).collect();
    let (s, kinds) = feed(&seqs);
    // The first packet is on probation (A.1, MIN_SEQUENTIAL = 2); the second validates
    // the source and becomes the base.
    assert_eq!(kinds[0], Packet::Probation);
    assert!(kinds[1..].iter().all(|&k| k == Packet::InOrder));
    assert!(s.is_valid());
    assert_eq!(s.extended_max(), 109);
    assert_eq!(s.received(), 9);
    assert_eq!(s.expected(), 9); // 109 - 101 + 1
    assert_eq!(s.lost(), 0);
    assert_eq!((s.duplicates(), s.reordered()), (0, 0));
}

#[test]
fn loss_burst() {
    let seqs: Vec<u16> = (0..=4).chain(10..=19).collect();
    let (s, _) = feed(&seqs);
    // Base 1; received 1..=4 and 10..=19 = 14; expected 19 - 1 + 1 = 19.
    assert_eq!((s.received(), s.expected(), s.lost()), (14, 19, 5));
    // A.3: fraction = (5 << 8) / 19 = 67.
    let mut prior = Prior::default();
    assert_eq!(s.fraction_lost(&mut prior), 67);
    // Nothing new since: the next interval loses nothing.
    assert_eq!(s.fraction_lost(&mut prior), 0);
}

#[test]
fn intervals_track_their_own_losses() {
    let mut s = Sequence::new(0);
    let mut prior = Prior::default();
    for q in 0..=10 {
        s.update(q);
    }
    assert_eq!(s.fraction_lost(&mut prior), 0);
    // Next interval: 11..=30 expected (20), 15 and 16 missing: (2 << 8) / 20 = 25.
    for q in (11..=30).filter(|q| !matches!(q, 15 | 16)) {
        s.update(q);
    }
    assert_eq!(s.fraction_lost(&mut prior), 25);
}

#[test]
fn reordered_packet() {
    let (s, kinds) = feed(&[0, 1, 2, 4, 3, 5]);
    assert_eq!(kinds[4], Packet::Reordered);
    // Base 1; received 1, 2, 4, 3, 5 = 5; expected 5 - 1 + 1 = 5.
    assert_eq!((s.received(), s.expected(), s.lost()), (5, 5, 0));
    assert_eq!((s.reordered(), s.duplicates()), (1, 0));
    // Late packets within the misorder limit that never came before are reordered, not
    // duplicates, however late.
    let (s, kinds) = feed(&[0, 1, 2, 50, 3]);
    assert_eq!(kinds[4], Packet::Reordered);
    assert_eq!((s.received(), s.expected(), s.lost()), (4, 50, 46));
}

#[test]
fn duplicates_count_as_received_per_rfc() {
    let (s, kinds) = feed(&[0, 1, 2, 2, 3, 1]);
    assert_eq!(kinds[3], Packet::Duplicate); // the highest again
    assert_eq!(kinds[5], Packet::Duplicate); // an older one again
    // A.1 counts every packet after validation: 1, 2, 2, 3, 1 = 5; expected 3 - 1 + 1 = 3:
    // the loss is negative, as RFC 3550 6.4.1 allows.
    assert_eq!((s.received(), s.expected(), s.lost()), (5, 3, -2));
    assert_eq!(s.duplicates(), 2);
    let mut prior = Prior::default();
    assert_eq!(s.fraction_lost(&mut prior), 0, "negative loss reports 0");
}

#[test]
fn sequence_numbers_wrap() {
    let (s, kinds) = feed(&[65533, 65534, 65535, 0, 1, 2]);
    assert!(kinds[1..].iter().all(|&k| k == Packet::InOrder));
    // Base 65534; extended max 65536 + 2; expected 65538 - 65534 + 1 = 5.
    assert_eq!(s.extended_max(), 65_538);
    assert_eq!((s.received(), s.expected(), s.lost()), (5, 5, 0));
    // A packet from before the wrap, late: reordered, not a new cycle.
    let (s, kinds) = feed(&[65533, 65534, 0, 1, 65535]);
    assert_eq!(kinds[4], Packet::Reordered);
    assert_eq!(s.extended_max(), 65_537);
    assert_eq!((s.received(), s.expected(), s.lost()), (4, 4, 0));
}

#[test]
fn probation_restarts_on_a_gap() {
    let (s, kinds) = feed(&[5, 7, 8, 9]);
    assert_eq!(kinds[..2], [Packet::Probation, Packet::Probation]);
    assert_eq!(kinds[2], Packet::InOrder);
    // Valid from 8: base 8.
    assert_eq!((s.received(), s.expected()), (2, 2));
}

#[test]
fn restart_after_a_large_jump() {
    let seqs: Vec<u16> = (0..=9).chain([20_000, 20_001, 20_002]).collect();
    let (s, kinds) = feed(&seqs);
    assert_eq!(kinds[10], Packet::BadJump);
    assert_eq!(kinds[11], Packet::Restart);
    // init_seq(20001), then counted: base 20001; received 20001, 20002 = 2.
    assert_eq!((s.received(), s.expected(), s.lost()), (2, 2, 0));
    assert_eq!(s.extended_max(), 20_002);
    // One stray packet far ahead is ignored and the stream goes on.
    let seqs: Vec<u16> = (0..=9).chain([30_000, 10, 11]).collect();
    let (s, kinds) = feed(&seqs);
    assert_eq!(kinds[10], Packet::BadJump);
    assert_eq!((s.received(), s.expected(), s.lost()), (11, 11, 0));
    // A jump just under MAX_DROPOUT is a loss, not a jump.
    let (s, _) = feed(&[0, 1, 1 + MAX_DROPOUT - 1]);
    assert_eq!(s.lost(), i64::from(MAX_DROPOUT) - 2);
}

#[test]
fn a_known_source_counts_from_its_first_packet() {
    let mut s = Sequence::known(65_500);
    assert!(s.is_valid());
    assert_eq!((s.received(), s.expected()), (1, 1));
    // Every tenth packet lost, across the wrap.
    for n in 1..200u16 {
        if n % 10 != 3 {
            assert_eq!(s.update(65_500u16.wrapping_add(n)), Packet::InOrder);
        }
    }
    assert_eq!((s.received(), s.expected(), s.lost()), (180, 200, 20));
    assert_eq!(
        s.totals(),
        Totals {
            expected: 200,
            received: 180
        }
    );
    assert_eq!(s.restarts(), 0);
    // Reordered and duplicated packets are counted as A.1 counts them.
    let mut s = Sequence::known(1);
    let kinds: Vec<Packet> = [2u16, 4, 3, 3, 5].iter().map(|&q| s.update(q)).collect();
    assert_eq!(
        kinds,
        [
            Packet::InOrder,
            Packet::InOrder,
            Packet::Reordered,
            Packet::Duplicate,
            Packet::InOrder
        ]
    );
    assert_eq!((s.expected(), s.received(), s.lost()), (5, 6, -1));
}

#[test]
fn totals_keep_the_runs_before_a_restart() {
    let mut s = Sequence::known(0);
    for q in 1..10 {
        s.update(q);
    }
    // A.1: the first packet of a large jump is not counted; the second restarts.
    assert_eq!(s.update(30_000), Packet::BadJump);
    assert_eq!(s.update(30_001), Packet::Restart);
    for q in 30_002..30_010 {
        s.update(q);
    }
    // The run restarted: 30001..=30009.
    assert_eq!((s.received(), s.expected()), (9, 9));
    // Over both runs: 0..=9 and 30001..=30009.
    assert_eq!(
        s.totals(),
        Totals {
            expected: 19,
            received: 19
        }
    );
    assert_eq!(s.restarts(), 1);
    // A new sender on the same port (a new SSRC): a run of its own, counted at once.
    let before = s.totals();
    assert_eq!(s.restart(500), Packet::Restart);
    s.update(502);
    assert_eq!((s.received(), s.expected()), (2, 3));
    assert_eq!(s.restarts(), 2);
    let since = s.totals().since(&before);
    assert_eq!(
        since,
        Totals {
            expected: 3,
            received: 2
        }
    );
    assert_eq!(since.lost(), 1);
    // A source still on probation has nothing to add when it restarts.
    let mut p = Sequence::new(7);
    p.restart(100);
    assert_eq!(
        p.totals(),
        Totals {
            expected: 1,
            received: 1
        }
    );
}

#[test]
fn cumulative_loss_is_clamped_to_24_bits() {
    let mut s = Sequence::new(0);
    s.update(0);
    s.update(1);
    let mut q: u16 = 1;
    for _ in 0..3000 {
        q = q.wrapping_add(2999);
        s.update(q);
    }
    assert!(s.lost() > 0x7F_FFFF);
    assert_eq!(s.lost_24bit(), 0x7F_FFFF);
}

#[test]
fn jitter_follows_a8() {
    // 30 packets per second at 90 kHz: timestamps 3000 apart. Arrivals in RTP units:
    // on time, on time, 900 late, on time, on time.
    let mut j = Jitter::default();
    let arrivals = [0u32, 3000, 6900, 9000, 12000];
    for (i, &a) in arrivals.iter().enumerate() {
        j.update(a + 50_000, 3000 * i as u32);
    }
    // Transit differences |D|: 0, 0, 900, 900, 0. J(16x) += |D| - ((J + 8) >> 4):
    // 0, 0, 900, 900 + 900 - 56 = 1744, 1744 - 109 = 1635 -> 1635 / 16 = 102.
    assert_eq!(j.value(), 102);
    assert_eq!(j.precise(), 1635.0 / 16.0);
    assert_eq!(
        receiver::arrival_in_rtp_units(1_000_000_000, 90_000),
        90_000
    );
    assert_eq!(receiver::arrival_in_rtp_units(u64::MAX, 90_000), {
        ((u128::from(u64::MAX) * 90_000) / 1_000_000_000) as u32
    });
    // Signed times (before a run's start): counted down, so a second is 90000 units on
    // either side of zero.
    assert_eq!(
        receiver::arrival_in_rtp_units(-1_000_000_000i64, 90_000),
        0u32.wrapping_sub(90_000)
    );
    assert_eq!(receiver::arrival_in_rtp_units(-1i64, 90_000), u32::MAX);
    let span = |from: i64| {
        receiver::arrival_in_rtp_units(from + 40_000_000, 90_000)
            .wrapping_sub(receiver::arrival_in_rtp_units(from, 90_000))
    };
    assert_eq!((span(-20_000_000), span(20_000_000)), (3600, 3600));
}

#[test]
fn jitter_from_nanosecond_arrivals() {
    // 25 frames per second: 3600 units and 40 ms apart; steady, then every other frame
    // 10 ms late (|D| = 900 units each time), from before zero on the receiver's clock.
    let mut j = Jitter::default();
    let mut peak: f64 = 0.0;
    for n in 0..2000u32 {
        let late = if n >= 50 && n % 2 == 0 { 10_000_000 } else { 0 };
        let arrival = i64::from(n) * 40_000_000 - 1_000_000_000 + late;
        j.update(receiver::arrival_in_rtp_units(arrival, 90_000), n * 3600);
        if n == 49 {
            assert_eq!(j.precise(), 0.0);
        }
        peak = peak.max(j.precise());
    }
    assert!((j.precise() - 900.0).abs() < 1.0, "{}", j.precise());
    assert!(peak < 901.0, "{peak}");
}

fn rtp(seq: u16, ts: u32, ssrc: u32) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = 0x80;
    h[1] = 26;
    h[2..4].copy_from_slice(&seq.to_be_bytes());
    h[4..8].copy_from_slice(&ts.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
    h
}

#[test]
fn rtp_headers_are_checked() {
    assert_eq!(
        RtpHeader::parse(&rtp(7, 9, 11)),
        Ok(RtpHeader {
            payload_type: 26,
            sequence: 7,
            timestamp: 9,
            ssrc: 11
        })
    );
    assert_eq!(
        RtpHeader::parse(&[0x80; 11]),
        Err(PacketError::ShortRtp(11))
    );
    assert_eq!(RtpHeader::parse(&[0; 12]), Err(PacketError::RtpVersion(0)));
}

#[test]
fn rtp_header_fields_and_marker() {
    // Marker set, payload type 26, from the load generator's receive path.
    let p = [0x80, 0x9a, 0x12, 0x34, 0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef];
    assert_eq!(
        RtpHeader::parse(&p),
        Ok(RtpHeader {
            payload_type: 26,
            sequence: 0x1234,
            timestamp: 256,
            ssrc: 0xdead_beef
        })
    );
    assert!(RtpHeader::marker(p[1]));
    assert_eq!(RtpHeader::parse(&p[..11]), Err(PacketError::ShortRtp(11)));
    assert_eq!(
        RtpHeader::parse(&[0x40; 12]),
        Err(PacketError::RtpVersion(1))
    );
}

#[test]
fn each_ssrc_has_its_own_statistics() {
    let mut session = Session::new(1, "me@here");
    for q in 0..10u16 {
        session.on_rtp(&rtp(q, 0, 0xA), 100, 0, None).unwrap();
    }
    for q in 500..505u16 {
        session.on_rtp(&rtp(q, 0, 0xB), 100, 0, None).unwrap();
    }
    let a = &session.sources()[0];
    let b = &session.sources()[1];
    assert_eq!((a.ssrc, a.sequence().unwrap().received()), (0xA, 9));
    assert_eq!((b.ssrc, b.sequence().unwrap().received()), (0xB, 4));
    assert_eq!(session.senders(), 2);
}

/// A report block's fields: SSRC, fraction lost, cumulative lost (24-bit), extended
/// highest sequence number, jitter, LSR, DLSR.
type BlockFields = (u32, u8, u32, u32, u32, u32, u32);

fn parse_rr(data: &[u8]) -> (u32, Vec<BlockFields>, Option<String>) {
    let mut blocks = Vec::new();
    let mut reporter = 0;
    let mut cname = None;
    for packet in Compound::parse(data).unwrap() {
        match packet.unwrap() {
            RtcpPacket::Rr(rr) => {
                reporter = rr.ssrc();
                for b in rr.report_blocks() {
                    blocks.push((
                        b.ssrc(),
                        b.fraction_lost(),
                        b.cumulative_lost(),
                        b.extended_sequence_number(),
                        b.interarrival_jitter(),
                        b.last_sender_report_timestamp(),
                        b.delay_since_last_sender_report_timestamp(),
                    ));
                }
            }
            RtcpPacket::Sdes(sdes) => {
                cname = sdes
                    .chunks()
                    .flat_map(|c| c.items())
                    .find(|i| i.type_() == SdesItem::CNAME)
                    .map(|i| String::from_utf8_lossy(i.value()).into_owned());
            }
            _ => {}
        }
    }
    (reporter, blocks, cname)
}

fn write(packet: impl RtcpPacketWriterExt) -> Vec<u8> {
    let mut out = vec![0; packet.calculate_size().unwrap()];
    packet.write_into(&mut out).unwrap();
    out
}

#[test]
fn receiver_reports_carry_the_statistics_and_lsr_dlsr() {
    let mut session = Session::new(0x1234, "monitor@host");
    // 0..=19 without 5..=9: base 1, received 14, expected 19, lost 5, fraction 67.
    for q in (0..=19u16).filter(|q| !(5..=9).contains(q)) {
        session
            .on_rtp(
                &rtp(q, 3000 * u32::from(q), 0xABCD),
                1000,
                u64::from(q) * 33_333_333,
                Some(90_000),
            )
            .unwrap();
    }
    // A sender report from the source, arriving at t = 1 s.
    let ntp_sr: u64 = (3_900_000_000u64 << 32) | 0x8000_0000;
    let sr = Compound::builder().add_packet(
        SenderReport::builder(0xABCD)
            .ntp_timestamp(ntp_sr)
            .rtp_timestamp(90_000)
            .packet_count(19)
            .octet_count(19_000),
    );
    session.on_rtcp(&write(sr), 1_000_000_000, ntp_sr).unwrap();
    let info = session.sources()[0].sender_info.unwrap();
    assert_eq!((info.packet_count, info.octet_count), (19, 19_000));

    // The report, 0.5 s after the SR arrived.
    let report = session.build_report(1_500_000_000).unwrap();
    let (reporter, blocks, cname) = parse_rr(&report);
    assert_eq!(reporter, 0x1234);
    assert_eq!(cname.as_deref(), Some("monitor@host"));
    let (ssrc, fraction, lost, ext, _jitter, lsr, dlsr) = blocks[0];
    assert_eq!((ssrc, fraction, lost, ext), (0xABCD, 67, 5, 19));
    assert_eq!(lsr, ntp::compact(ntp_sr));
    assert_eq!(dlsr, 0x8000); // 0.5 s in 1/65536 s
    // Nothing heard since: the next report has no block for it.
    let (_, blocks, _) = parse_rr(&session.build_report(2_000_000_000).unwrap());
    assert!(blocks.is_empty());
}

#[test]
fn negative_loss_is_sent_as_24_bit_twos_complement() {
    let mut session = Session::new(1, "x");
    for q in [0u16, 1, 2, 2, 3, 1] {
        session.on_rtp(&rtp(q, 0, 9), 100, 0, None).unwrap();
    }
    let (_, blocks, _) = parse_rr(&session.build_report(0).unwrap());
    assert_eq!(blocks[0].2, 0xFF_FFFE); // -2
}

#[test]
fn report_blocks_from_the_other_side_give_round_trip_times() {
    let mut session = Session::new(7, "sender-side monitor");
    // Our outgoing stream, SSRC 0x55, seen on the way out.
    for q in 0..5u16 {
        session.on_rtp(&rtp(q, 0, 0x55), 100, 0, None).unwrap();
    }
    // The receiver got an SR at LSR, held it 0.25 s (DLSR) and its RR arrives 0.3 s after
    // the SR was sent: the round trip is 0.05 s.
    let ntp_sr: u64 = 3_900_000_000u64 << 32;
    let dlsr = 0x4000; // 0.25 s
    let rr = Compound::builder().add_packet(
        ReceiverReport::builder(0x99).add_report_block(
            ReportBlock::builder(0x55)
                .fraction_lost(12)
                .cumulative_lost(0xFF_FFFF) // -1
                .extended_sequence_number(70_000)
                .interarrival_jitter(33)
                .last_sender_report_timestamp(ntp::compact(ntp_sr))
                .delay_since_last_sender_report_timestamp(dlsr),
        ),
    );
    let arrival_ntp = ntp_sr + (((3u64 << 32) / 10) & !0xFFFF); // +0.3 s
    session.on_rtcp(&write(rr), 0, arrival_ntp).unwrap();
    let peer = session.sources()[0].peer_report.unwrap();
    assert_eq!(peer.reporter, 0x99);
    assert_eq!((peer.fraction_lost, peer.cumulative_lost), (12, -1));
    assert_eq!((peer.extended_highest_seq, peer.jitter), (70_000, 33));
    let rtt = peer.round_trip_ns.unwrap();
    assert!((49_900_000..=50_100_000).contains(&rtt), "{rtt}");
}

#[test]
fn sdes_and_bye() {
    let mut session = Session::new(1, "x");
    let packet = Compound::builder()
        .add_packet(ReceiverReport::builder(0x77))
        .add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(0x77).add_item(SdesItem::builder(SdesItem::CNAME, "cam@lab")),
        ))
        .add_packet(Bye::builder().add_source(0x77).reason("stream ended"));
    let events = session.on_rtcp(&write(packet), 0, 0).unwrap();
    assert_eq!(events.byes, [(0x77, Some("stream ended".to_string()))]);
    let source = &session.sources()[0];
    assert_eq!(source.cname.as_deref(), Some("cam@lab"));
    assert_eq!(source.bye.as_deref(), Some("stream ended"));
}

#[test]
fn a_leaving_receiver_reports_then_says_bye() {
    let mut session = Session::new(0x1234, "monitor@host");
    for q in 0..10u16 {
        session.on_rtp(&rtp(q, 0, 0xABCD), 100, 0, None).unwrap();
    }
    let last = session.build_bye(0, Some("end of stream")).unwrap();
    // RR (with the block the report would carry), SDES, then BYE: in that order.
    let (reporter, blocks, cname) = parse_rr(&last);
    assert_eq!(reporter, 0x1234);
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].0, 0xABCD);
    assert_eq!(cname.as_deref(), Some("monitor@host"));
    let kinds: Vec<&str> = Compound::parse(&last)
        .unwrap()
        .map(|p| match p.unwrap() {
            RtcpPacket::Rr(_) => "RR",
            RtcpPacket::Sdes(_) => "SDES",
            RtcpPacket::Bye(_) => "BYE",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["RR", "SDES", "BYE"]);
    // The other side reads it as our BYE.
    let mut peer = Session::new(0xABCD, "sender");
    let events = peer.on_rtcp(&last, 0, 0).unwrap();
    assert_eq!(events.byes, [(0x1234, Some("end of stream".to_string()))]);
    // Without a reason, the BYE has none.
    let silent = session.build_bye(0, None).unwrap();
    let events = Session::new(2, "y").on_rtcp(&silent, 0, 0).unwrap();
    assert_eq!(events.byes, [(0x1234, None)]);
}

#[test]
fn malformed_rtcp_is_counted_and_rejected() {
    let mut session = Session::new(1, "x");
    let good = write(
        Compound::builder()
            .add_packet(ReceiverReport::builder(5).add_report_block(ReportBlock::builder(6))),
    );
    // Bad version.
    let mut bad_version = good.clone();
    bad_version[0] = (bad_version[0] & 0x3F) | 0x40;
    // Length past the end.
    let mut too_long = good.clone();
    too_long[3] += 4;
    // A report block cut short (the count says one block, the length says none).
    let mut cut = good[..8].to_vec();
    cut[0] = 0x81;
    cut[2..4].copy_from_slice(&1u16.to_be_bytes());
    for data in [bad_version, too_long, cut, vec![], vec![0x80]] {
        assert!(session.on_rtcp(&data, 0, 0).is_err(), "{data:02X?}");
    }
    assert_eq!(session.rtcp_errors(), 5);
    assert!(session.on_rtcp(&good, 0, 0).is_ok());
}

#[test]
fn report_interval_per_a7() {
    let base = IntervalInput {
        members: 2,
        senders: 1,
        we_sent: false,
        session_bandwidth: 1_000_000.0,
        avg_rtcp_size: 100.0,
        initial: false,
        reduced_minimum: false,
    };
    // RTCP bandwidth 1e6 * 5 % / 8 = 6250 B/s; 1 sender of 2 members is over 25 %, so no
    // split: 100 * 2 / 6250 = 0.032 s, below the 5 s minimum.
    assert_eq!(deterministic(&base), 5.0);
    assert_eq!(
        deterministic(&IntervalInput {
            initial: true,
            ..base
        }),
        2.5
    );
    // 6.2's reduced minimum: 360 / 1000 kbit/s = 0.36 s.
    let reduced = IntervalInput {
        reduced_minimum: true,
        ..base
    };
    assert!((deterministic(&reduced) - 0.36).abs() < 1e-12);
    // Under 72 kbit/s, 360 / kbit/s would be longer than 5 s: the minimum stays 5 s
    // (and half of it before the first report).
    let slow = IntervalInput {
        session_bandwidth: 64_000.0,
        ..reduced
    };
    assert_eq!(deterministic(&slow), 5.0);
    assert_eq!(
        deterministic(&IntervalInput {
            initial: true,
            ..slow
        }),
        2.5
    );
    // 1000 members, 1 sender (under 25 %): receivers share 75 %: 100 * 999 / 4687.5.
    let crowd = IntervalInput {
        members: 1000,
        ..base
    };
    assert!((deterministic(&crowd) - 100.0 * 999.0 / 4687.5).abs() < 1e-9);
    // Randomised in [0.5, 1.5) times the interval, over e - 1.5.
    let c = std::f64::consts::E - 1.5;
    assert!((randomized(&base, 0.0) - 2.5 / c).abs() < 1e-12);
    assert!((randomized(&base, 1.0) - 7.5 / c).abs() < 1e-12);
}

#[test]
fn ntp_conversions() {
    // 1970-01-01 is NTP second 2208988800.
    assert_eq!(ntp::from_unix_ns(0), 2_208_988_800u64 << 32);
    assert_eq!(ntp::from_unix_ns(500_000_000) & 0xFFFF_FFFF, 0x8000_0000);
    assert_eq!(ntp::compact(0x1234_5678_9ABC_DEF0), 0x5678_9ABC);
    assert_eq!(ntp::compact_duration(1_000_000_000), 0x1_0000);
    assert_eq!(ntp::compact_to_ns(0x8000), 500_000_000);
}

#[test]
fn percentages_and_jitter_in_ms() {
    // Seq 0 is on probation; 1..=4 count. 100 ms frames (9000 units at 90 kHz); seq 2
    // arrives 10 ms (900 units) late. Transit differences |D| over the counted packets:
    // 900, 900, 0, so 16J: 900, 900 + 900 - 56 = 1744, 1744 - 109 = 1635: J = 102 units,
    // 102 / 90 ms.
    let mut session = Session::new(1, "me@here");
    for (q, late_ms) in [(0u16, 0u64), (1, 0), (2, 10), (3, 0), (4, 0)] {
        let arrival = (u64::from(q) * 100 + late_ms) * 1_000_000;
        let header = rtp(q, 9000 * u32::from(q), 0xA);
        session.on_rtp(&header, 100, arrival, Some(90_000)).unwrap();
    }
    // No clock rate yet: no jitter in ms either.
    session.on_rtp(&rtp(0, 0, 0xB), 100, 0, None).unwrap();
    let a = &session.sources()[0];
    assert_eq!(a.jitter().value(), 102);
    assert!((a.jitter_ms() - 102.0 / 90.0).abs() < 1e-12);
    assert_eq!(session.sources()[1].jitter_ms(), 0.0);

    // Base 1, highest 9 with 5 and 7 missing: expected 9, received 7, lost 2 = 22.2 %.
    let mut s = Sequence::new(0);
    for q in [0, 1, 2, 3, 4, 6, 8, 9] {
        s.update(q);
    }
    assert_eq!((s.expected(), s.lost()), (9, 2));
    assert!((s.loss_percent() - 200.0 / 9.0).abs() < 1e-12);
    // More duplicates than losses: 0 %, not negative.
    let (dup, _) = feed(&[0, 1, 2, 2, 2, 3]);
    assert_eq!(dup.lost(), -2);
    assert_eq!(dup.loss_percent(), 0.0);
    // Nothing expected yet (on probation): 0 %.
    assert_eq!(Sequence::new(5).loss_percent(), 0.0);
}

#[test]
fn loss_alarm_reports_each_crossing_once() {
    let mut session = Session::new(1, "me@here");
    let mut alarm = LossAlarm::default();
    let feed = |session: &mut Session, seqs: &mut dyn Iterator<Item = u16>| {
        for q in seqs {
            session.on_rtp(&rtp(q, 0, 0xA), 100, 0, None).unwrap();
        }
        session.end_interval();
    };
    // Interval 1: 0..=10 (0 on probation, base 1): expected 10, received 10: no loss.
    feed(&mut session, &mut (0..=10));
    assert_eq!(alarm.check(session.sources(), 10.0), vec![]);
    // Interval 2: odd 11..=29 only: expected 29 - 10 = 19, received 10, lost 9:
    // fraction (9 << 8) / 19 = 121, 121 / 256 = 47.27 %.
    feed(&mut session, &mut (11..=29).step_by(2));
    let loss = 121.0 * 100.0 / 256.0;
    // Off (threshold 0): nothing, and nothing remembered.
    let mut off = LossAlarm::default();
    assert_eq!(off.check(session.sources(), 0.0), vec![]);
    let up = Crossing {
        ssrc: 0xA,
        loss_percent: loss,
        above: true,
    };
    assert_eq!(alarm.check(session.sources(), 10.0), vec![up]);
    // Still above at the same loss: no new crossing.
    assert_eq!(alarm.check(session.sources(), 10.0), vec![]);
    // Interval 3: 30..=40 in order: 0 % lost: back under, once.
    feed(&mut session, &mut (30..=40));
    let down = Crossing {
        ssrc: 0xA,
        loss_percent: 0.0,
        above: false,
    };
    assert_eq!(alarm.check(session.sources(), 10.0), vec![down]);
    assert_eq!(alarm.check(session.sources(), 10.0), vec![]);
    // A source still on probation is not judged.
    session.on_rtp(&rtp(7, 0, 0xB), 100, 0, None).unwrap();
    session.end_interval();
    assert!(!session.sources()[1].is_valid());
    assert_eq!(alarm.check(session.sources(), 10.0), vec![]);
}

#[test]
fn interval_input_for_a_receiver() {
    let mut session = Session::new(1, "me@here");
    // Nothing heard: only us, no senders; the bandwidth floor of 64 kbit/s.
    let input = session.interval_input(None, false, true);
    assert_eq!((input.members, input.senders), (1, 0));
    assert_eq!(input.session_bandwidth, 64_000.0);
    assert!(!input.we_sent && input.initial && !input.reduced_minimum);
    assert_eq!(input.avg_rtcp_size, session.avg_rtcp_size());
    // One sender: two members; a configured bandwidth is taken as it is.
    session.on_rtp(&rtp(0, 0, 0xA), 100, 0, None).unwrap();
    let input = session.interval_input(Some(1_000_000.0), true, false);
    assert_eq!((input.members, input.senders), (2, 1));
    assert_eq!(input.session_bandwidth, 1_000_000.0);
    assert!(input.reduced_minimum && !input.initial);
}

#[test]
fn rtp_payload_ranges() {
    let mut p = RtpHeader {
        payload_type: 26,
        sequence: 1,
        timestamp: 2,
        ssrc: 3,
    }
    .to_bytes(true)
    .to_vec();
    p.extend_from_slice(&[9; 20]);
    assert_eq!(RtpHeader::payload_range(&p, p.len(), 9), Ok(12..32));
    assert!(RtpHeader::marker(p[1]));
    assert_eq!(RtpHeader::check_not_rtcp(p[1]), Ok(()));
    assert_eq!(
        RtpHeader::check_not_rtcp(201),
        Err(PacketError::PayloadType(73))
    );
    // Two CSRCs, an extension of one word, 4 bytes of padding.
    let mut q = p.clone();
    q[0] = 0x80 | 0x20 | 0x10 | 2;
    q[20..24].copy_from_slice(&[0xBE, 0xDE, 0, 1]);
    q[31] = 4;
    assert_eq!(RtpHeader::payload_range(&q, q.len(), 4), Ok(28..28));
    q[31] = 5;
    assert_eq!(
        RtpHeader::payload_range(&q, q.len(), 5),
        Err(PacketError::RtpLength {
            len: 32,
            needed: 33
        })
    );
    // Padding bit with a 0 count, a version 0 packet, a short one, an extension past the end.
    q[0] = 0xA0;
    assert!(RtpHeader::payload_range(&q, q.len(), 0).is_err());
    assert_eq!(
        RtpHeader::payload_range(&[0u8; 12], 12, 0),
        Err(PacketError::RtpVersion(0))
    );
    assert_eq!(
        RtpHeader::payload_range(&p[..8], 8, 0),
        Err(PacketError::ShortRtp(8))
    );
    let mut r = p[..14].to_vec();
    r[0] = 0x90;
    assert!(RtpHeader::payload_range(&r, r.len(), 0).is_err());
}

#[test]
fn a_peer_naming_ever_new_ssrcs_cannot_grow_the_session() {
    let mut session = Session::new(1, "x");
    // The real stream first, then floods of BYEs for made-up sources (up to 31 a packet).
    for q in 0..5u16 {
        session.on_rtp(&rtp(q, 0, 0xABCD), 100, 0, None).unwrap();
    }
    for round in 0..200u32 {
        let mut bye = Bye::builder();
        for k in 0..31u32 {
            bye = bye.add_source(0x1000_0000 + round * 31 + k);
        }
        let packet = Compound::builder()
            .add_packet(ReceiverReport::builder(0x77))
            .add_packet(bye);
        session.on_rtcp(&write(packet), 0, 0).unwrap();
    }
    assert!(session.sources().len() <= session::MAX_SOURCES);
    // The stream heard first keeps its figures.
    let first = &session.sources()[0];
    assert_eq!(first.ssrc, 0xABCD);
    assert_eq!(first.sequence().map(|s| s.extended_max()), Some(4));
}
