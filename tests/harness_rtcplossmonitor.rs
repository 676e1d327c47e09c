//! rtcplossmonitor under gst_check::Harness: RTP passes through untouched while RFC 3550
//! A.1/A.3 counts what arrived; EOS passes on. With a TestClock on the element, its
//! receiver reports and loss-report messages go out when the clock says, with what the
//! stream lost; EOS ends rtcp_src with a BYE, and a flush brings the reports back.

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

// RTCP on the element's clock.

/// Our SSRC and CNAME in the reports.
const OUR_SSRC: u32 = 0x1234_5678;
const CNAME: &str = "viewer@test";

/// The monitor with a TestClock from the start (so its timers start on it), a harness on
/// sink/src and one on rtcp_src.
fn clocked_monitor(interval_ms: u32) -> (Harness, Harness, gst_check::TestClock) {
    init();
    let element = gst::ElementFactory::make("rtcplossmonitor")
        .property("interval", interval_ms)
        .property("ssrc", OUR_SSRC)
        .property("cname", CNAME)
        .property("loss-threshold", 10.0)
        .build()
        .unwrap();
    let clock = gst_check::TestClock::new();
    element.set_clock(Some(&clock)).unwrap();
    let mut h = Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(CAPS);
    let rtcp = Harness::with_element(&element, None, Some("rtcp_src"));
    (h, rtcp, clock)
}

/// Pushes packets arriving in step with their RTP timestamps (40 ms a packet: no jitter).
fn push_in_time(h: &mut Harness, seqs: &[u16]) {
    for &seq in seqs {
        let mut buffer = gst::Buffer::from_slice(rtp(seq));
        buffer
            .get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(40 * u64::from(seq)));
        assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok), "seq {seq}");
        assert!(h.try_pull().is_some(), "seq {seq} passes through");
    }
}

#[derive(Debug, PartialEq)]
struct Block {
    ssrc: u32,
    fraction_lost: u8,
    cumulative_lost: u32,
    highest_seq: u32,
    jitter: u32,
    lsr: u32,
    dlsr: u32,
}

/// A compound RTCP packet, part by part.
#[derive(Debug, PartialEq)]
enum Part {
    Rr { ssrc: u32, blocks: Vec<Block> },
    Cname { ssrc: u32, cname: String },
    Bye(u32),
}

fn parts(buffer: &gst::Buffer) -> Vec<Part> {
    use rtcp_types::Packet;
    let map = buffer.map_readable().unwrap();
    rtcp_types::Compound::parse(&map)
        .unwrap()
        .flat_map(|p| match p.unwrap() {
            Packet::Rr(rr) => vec![Part::Rr {
                ssrc: rr.ssrc(),
                blocks: rr
                    .report_blocks()
                    .map(|b| Block {
                        ssrc: b.ssrc(),
                        fraction_lost: b.fraction_lost(),
                        cumulative_lost: b.cumulative_lost(),
                        highest_seq: b.extended_sequence_number(),
                        jitter: b.interarrival_jitter(),
                        lsr: b.last_sender_report_timestamp(),
                        dlsr: b.delay_since_last_sender_report_timestamp(),
                    })
                    .collect(),
            }],
            Packet::Sdes(sdes) => sdes
                .chunks()
                .flat_map(|c| {
                    c.items()
                        .filter(|i| i.type_() == rtcp_types::SdesItem::CNAME)
                        .map(|i| Part::Cname {
                            ssrc: c.ssrc(),
                            cname: String::from_utf8_lossy(i.value()).into_owned(),
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
            Packet::Bye(bye) => bye.ssrcs().map(Part::Bye).collect(),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

/// Our report: RR with `blocks`, then SDES with our CNAME.
fn report(blocks: Vec<Block>) -> Vec<Part> {
    vec![
        Part::Rr {
            ssrc: OUR_SSRC,
            blocks,
        },
        Part::Cname {
            ssrc: OUR_SSRC,
            cname: CNAME.into(),
        },
    ]
}

/// The report block about our test stream.
fn block(fraction_lost: u8, cumulative_lost: u32, highest_seq: u32) -> Block {
    Block {
        ssrc: SSRC,
        fraction_lost,
        cumulative_lost,
        highest_seq,
        jitter: 0,
        lsr: 0,
        dlsr: 0,
    }
}

/// RFC 3550 6.3 / A.7: a receiver's interval is its minimum (5 s, half that before the
/// first report, at these rates) times a random factor in [0.5, 1.5), over e - 3/2.
fn interval_bounds(minimum_s: f64) -> (gst::ClockTime, gst::ClockTime) {
    let compensation = std::f64::consts::E - 1.5;
    let ns = |s: f64| gst::ClockTime::from_nseconds((s * 1e9) as u64);
    (
        ns(minimum_s * 0.5 / compensation),
        ns(minimum_s * 1.5 / compensation),
    )
}

fn assert_within(t: gst::ClockTime, (low, high): (gst::ClockTime, gst::ClockTime)) {
    assert!(low <= t && t <= high, "{t} not in [{low}, {high}]");
}

/// Advances the clock to just before the next timer and checks that nothing goes off.
fn nothing_until(clock: &gst_check::TestClock, due: gst::ClockTime) {
    clock.set_time(due - gst::ClockTime::from_nseconds(1));
    assert!(
        clock.process_next_clock_id().is_none(),
        "a timer before {due}"
    );
}

#[test]
fn receiver_reports_go_out_on_the_element_clock() {
    let (mut h, mut rtcp, clock) = clocked_monitor(0);
    // 105 and 106 lost; 100 is on probation, so 101..=109 were expected.
    push_in_time(&mut h, &[100, 101, 102, 103, 104, 107, 108, 109]);
    assert_eq!(clock.peek_id_count(), 1, "one timer: the RTCP report");
    let due = clock.next_entry_time().unwrap();
    assert_within(due, interval_bounds(2.5));
    nothing_until(&clock, due);
    assert!(rtcp.try_pull().is_none(), "a report before its time");

    h.crank_single_clock_wait().unwrap();
    let first = rtcp.pull().expect("a report when the clock got there");
    // 2 of 9 lost: 2 * 256 / 9 = 56.
    assert_eq!(parts(&first), report(vec![block(56, 2, 109)]));
    assert_eq!(first.pts(), Some(due), "stamped with its running time");
    let kinds: Vec<_> = std::iter::from_fn(|| rtcp.try_pull_event())
        .map(|e| e.type_())
        .collect();
    assert_eq!(
        kinds,
        [
            gst::EventType::StreamStart,
            gst::EventType::Caps,
            gst::EventType::Segment
        ]
    );

    // The next one at a regular interval from the first; this one lost nothing.
    let next = clock.wait_for_next_pending_id().time();
    assert_within(next - due, interval_bounds(5.0));
    push_in_time(&mut h, &[110, 111, 112, 113]);
    nothing_until(&clock, next);
    assert!(rtcp.try_pull().is_none(), "a report before its time");
    h.crank_single_clock_wait().unwrap();
    let second = rtcp.pull().expect("the second report");
    assert_eq!(parts(&second), report(vec![block(0, 2, 113)]));
}

#[test]
fn loss_reports_go_out_on_the_element_clock() {
    let (mut h, _rtcp, clock) = clocked_monitor(500);
    let element = h.element().unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    push_in_time(&mut h, &[100, 101, 102, 103, 104, 107, 108, 109]);
    let half_second = gst::ClockTime::from_mseconds(500);
    assert_eq!(clock.next_entry_time(), Some(half_second));
    nothing_until(&clock, half_second);
    assert!(bus.pop().is_none(), "a message before the interval");

    h.crank_single_clock_wait().unwrap();
    let messages: Vec<_> = std::iter::from_fn(|| bus.pop()).collect();
    let loss_report = messages
        .iter()
        .find_map(|m| match m.view() {
            gst::MessageView::Element(e) => e
                .structure()
                .filter(|s| s.name() == "loss-report")
                .map(|s| s.to_owned()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no loss-report in {messages:?}"));
    let sources = loss_report.get::<gst::Array>("sources").unwrap();
    let source = sources[0].get::<gst::Structure>().unwrap();
    assert_eq!(source.get::<u32>("ssrc"), Ok(SSRC));
    assert_eq!(source.get::<u32>("fraction-lost"), Ok(56), "{source}");
    // 56/256 = 22% over the 10% threshold.
    assert!(
        messages
            .iter()
            .any(|m| matches!(m.view(), gst::MessageView::Warning(_))),
        "no threshold warning in {messages:?}"
    );
    // Every interval from the first, ahead of the first RTCP report (at least 1.02 s).
    assert_eq!(
        clock.next_entry_time(),
        Some(gst::ClockTime::from_mseconds(1000))
    );
}

#[test]
fn a_clock_given_later_takes_the_reports_over() {
    // The harness plays the element before it has a clock: the timers start on the
    // system clock, and move to the test clock with the time they had left.
    let mut h = monitor();
    h.use_testclock();
    let clock = h.testclock().unwrap();
    let mut rtcp = Harness::with_element(&h.element().unwrap(), None, Some("rtcp_src"));
    push_in_time(&mut h, &[100, 101, 102]);
    assert_eq!(clock.peek_id_count(), 1);
    let due = clock.next_entry_time().unwrap();
    assert!(due <= interval_bounds(2.5).1, "{due}");
    assert!(rtcp.try_pull().is_none());
    h.crank_single_clock_wait().unwrap();
    let report = rtcp.pull().expect("a report on the test clock");
    assert_eq!(
        parts(&report)[0],
        Part::Rr {
            ssrc: h.element().unwrap().property::<u32>("ssrc"),
            blocks: vec![block(0, 0, 102)],
        }
    );
}

#[test]
fn eos_says_bye_at_once_and_a_flush_brings_the_reports_back() {
    let (mut h, mut rtcp, clock) = clocked_monitor(0);
    push_in_time(&mut h, &[100, 101, 102, 103]);
    // The BYE does not wait for the clock.
    assert!(h.push_event(gst::event::Eos::new()));
    let last = rtcp.pull().expect("the last report");
    let mut bye = report(vec![block(0, 0, 103)]);
    bye.push(Part::Bye(OUR_SSRC));
    assert_eq!(parts(&last), bye);
    let kinds: Vec<_> = std::iter::from_fn(|| rtcp.try_pull_event())
        .map(|e| e.type_())
        .collect();
    assert_eq!(kinds.last(), Some(&gst::EventType::Eos), "{kinds:?}");

    // Ended: the timer goes off, and nothing follows the BYE.
    h.crank_single_clock_wait().unwrap();
    clock.wait_for_next_pending_id();
    assert!(rtcp.try_pull().is_none(), "a report after the BYE");

    // A flushing seek: rtcp_src is flushed of its EOS and reports resume, with no BYE.
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    h.set_src_caps_str(CAPS);
    push_in_time(&mut h, &[104, 105]);
    h.crank_single_clock_wait().unwrap();
    let resumed = rtcp.pull().expect("reports after the flush");
    assert_eq!(parts(&resumed), report(vec![block(0, 0, 105)]));
    let kinds: Vec<_> = std::iter::from_fn(|| rtcp.try_pull_event())
        .map(|e| e.type_())
        .collect();
    assert_eq!(
        kinds,
        [
            gst::EventType::FlushStart,
            gst::EventType::FlushStop,
            gst::EventType::Segment
        ]
    );
}
