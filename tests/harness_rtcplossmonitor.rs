//! rtcplossmonitor under gst_check::Harness: RTP passes through untouched while RFC 3550
//! A.1/A.3 counts what arrived; EOS passes on. RTCP timing (a thread on the wall clock) is
//! not tested here.

use gst::prelude::*;
use gst_check::Harness;
use mjpeg_rtsp_tests::*;

const CAPS: &str = "application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26";
const SSRC: u32 = 0xCAFE_F00D;

fn monitor() -> Harness {
    init();
    let mut h = Harness::with_padnames("rtcplossmonitor", Some("sink"), Some("src"));
    // No loss-report intervals while a test runs.
    h.element().unwrap().set_property("interval", 0u32);
    h.set_src_caps_str(CAPS);
    h
}

/// An RTP packet: header, then `seq` repeated as the payload.
fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 26];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3600).to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend(std::iter::repeat_n(seq as u8, 50));
    p
}

/// Pushes packets with these sequence numbers and checks that each comes out unchanged.
fn push_through(h: &mut Harness, seqs: &[u16]) {
    for (n, &seq) in seqs.iter().enumerate() {
        let mut buffer = gst::Buffer::from_slice(rtp(seq));
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(40 * n as u64));
        assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok), "seq {seq}");
        let out = h.try_pull().expect("the packet passes through");
        assert_eq!(
            out.map_readable().unwrap().as_slice(),
            rtp(seq),
            "seq {seq}"
        );
        assert_eq!(
            out.pts(),
            Some(gst::ClockTime::from_mseconds(40 * n as u64))
        );
    }
}

fn stats(h: &Harness) -> gst::Structure {
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.name(), "application/x-rtcp-loss-stats");
    stats
}

fn source(h: &Harness) -> gst::Structure {
    let stats = stats(h);
    let sources = stats.get::<gst::Array>("sources").unwrap();
    assert_eq!(sources.len(), 1, "{stats}");
    let s = sources[0].get::<gst::Structure>().unwrap();
    assert_eq!(s.get::<u32>("ssrc"), Ok(SSRC));
    s
}

#[test]
fn a_gap_is_counted_lost_per_rfc_3550() {
    let mut h = monitor();
    // 100 is on probation (A.1, MIN_SEQUENTIAL 2): counting starts at 101.
    push_through(&mut h, &[100, 101, 102, 103, 104, 107, 108, 109]);
    let s = source(&h);
    assert_eq!(s.get::<bool>("valid"), Ok(true));
    assert_eq!(s.get::<u64>("packets-received"), Ok(7));
    assert_eq!(s.get::<u64>("packets-expected"), Ok(9), "101..=109");
    assert_eq!(s.get::<i64>("packets-lost"), Ok(2), "105 and 106");
    assert_eq!(s.get::<u32>("extended-highest-seq"), Ok(109));
    let percent = s.get::<f64>("loss-percent").unwrap();
    assert!((percent - 200.0 / 9.0).abs() < 1e-9, "{percent}");
    assert_eq!(s.get::<u64>("duplicates"), Ok(0));
    assert_eq!(s.get::<u64>("reordered"), Ok(0));
    assert_eq!(stats(&h).get::<u64>("rtp-errors"), Ok(0));
}

#[test]
fn one_packet_is_still_on_probation() {
    let mut h = monitor();
    push_through(&mut h, &[500]);
    let s = source(&h);
    assert_eq!(s.get::<bool>("valid"), Ok(false));
    assert_eq!(s.get::<u64>("packets-received"), Ok(0));
    assert_eq!(s.get::<u64>("packets-expected"), Ok(0));
    assert_eq!(s.get::<i64>("packets-lost"), Ok(0));
}

#[test]
fn duplicates_and_reordering_are_counted_and_loss_goes_negative() {
    let mut h = monitor();
    push_through(&mut h, &[200, 201, 202, 204, 203, 203]);
    let s = source(&h);
    // A.1 counts duplicates as received: 201, 202, 204, 203, 203 against 201..=204.
    assert_eq!(s.get::<u64>("packets-received"), Ok(5));
    assert_eq!(s.get::<u64>("packets-expected"), Ok(4));
    assert_eq!(s.get::<i64>("packets-lost"), Ok(-1));
    assert_eq!(s.get::<u64>("reordered"), Ok(1));
    assert_eq!(s.get::<u64>("duplicates"), Ok(1));
}

#[test]
fn sequence_numbers_wrap_and_only_the_missing_one_is_lost() {
    let mut h = monitor();
    push_through(&mut h, &[65533, 65534, 65535, 0, 1, 3]);
    let s = source(&h);
    assert_eq!(s.get::<u64>("packets-received"), Ok(5));
    assert_eq!(
        s.get::<u64>("packets-expected"),
        Ok(6),
        "65534..=65535, 0..=3"
    );
    assert_eq!(s.get::<i64>("packets-lost"), Ok(1));
    assert_eq!(s.get::<u32>("extended-highest-seq"), Ok(65536 + 3));
}

#[test]
fn a_packet_too_short_for_rtp_passes_and_is_counted_as_an_error() {
    let mut h = monitor();
    let short = gst::Buffer::from_slice(vec![0x80, 26, 0, 1]);
    assert_eq!(h.push(short), Ok(gst::FlowSuccess::Ok));
    let out = h.try_pull().expect("the packet passes through");
    assert_eq!(out.map_readable().unwrap().as_slice(), [0x80, 26, 0, 1]);
    let stats = stats(&h);
    assert_eq!(stats.get::<u64>("rtp-errors"), Ok(1));
    assert!(stats.get::<gst::Array>("sources").unwrap().is_empty());
}

#[test]
fn a_buffer_list_passes_through_and_is_counted() {
    let mut h = monitor();
    let mut list = gst::BufferList::new();
    for seq in [10, 11, 12, 14] {
        list.get_mut()
            .unwrap()
            .add(gst::Buffer::from_slice(rtp(seq)));
    }
    assert_eq!(
        h.srcpad().unwrap().push_list(list),
        Ok(gst::FlowSuccess::Ok)
    );
    for seq in [10, 11, 12, 14] {
        let out = h.pull().unwrap();
        assert_eq!(out.map_readable().unwrap().as_slice(), rtp(seq));
    }
    let s = source(&h);
    assert_eq!(s.get::<u64>("packets-received"), Ok(3));
    assert_eq!(s.get::<i64>("packets-lost"), Ok(1));
}

#[test]
fn eos_on_sink_goes_out_on_src() {
    let mut h = monitor();
    push_through(&mut h, &[1, 2, 3]);
    assert!(h.push_event(gst::event::Eos::new()));
    let kinds: Vec<_> = std::iter::from_fn(|| h.try_pull_event())
        .map(|e| e.type_())
        .collect();
    assert_eq!(kinds.last(), Some(&gst::EventType::Eos), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|&&k| k == gst::EventType::Eos).count(),
        1
    );
    assert!(h.try_pull().is_none());
    assert_eq!(source(&h).get::<u64>("packets-received"), Ok(2));
}
