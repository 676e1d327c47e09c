//! rtpmjpegdepay under gst_check::Harness: frames rebuilt from rtpmjpegpay's packets in
//! order, reordered, with a loss, cut short by EOS, and as a buffer list; its counters.

use gst::prelude::*;
use gst_check::Harness;
use mjpeg_rtsp_tests::*;

const CAPS: &str = "application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26";

fn jpeg() -> Vec<u8> {
    std::fs::read(workspace_root().join("tests/vectors/420-q75.jpg")).unwrap()
}

/// rtpmjpegpay's packets for `frames` JPEGs, 40 ms apart: one Vec per frame.
fn packets(jpeg: &[u8], frames: usize) -> Vec<Vec<gst::Buffer>> {
    init();
    let mut pay = Harness::new("rtpmjpegpay");
    pay.element().unwrap().set_property("mtu", 400u32);
    pay.set_src_caps_str("image/jpeg,parsed=true,width=96,height=64,framerate=25/1");
    let mut out = Vec::new();
    for n in 0..frames {
        let mut b = gst::Buffer::from_slice(jpeg.to_vec());
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(40 * n as u64));
        pay.push(b).unwrap();
        out.push(std::iter::from_fn(|| pay.try_pull()).collect::<Vec<_>>());
    }
    assert!(
        out.iter().all(|f| f.len() >= 3),
        "frames of 3 packets or more"
    );
    out
}

fn depayloader() -> Harness {
    init();
    let mut h = Harness::new("rtpmjpegdepay");
    h.set_src_caps_str(CAPS);
    h
}

fn push_all(h: &mut Harness, packets: &[gst::Buffer]) {
    for p in packets {
        assert_eq!(h.push(p.clone()), Ok(gst::FlowSuccess::Ok));
    }
}

fn frames_out(h: &mut Harness) -> Vec<gst::Buffer> {
    std::iter::from_fn(|| h.try_pull()).collect()
}

fn bytes(b: &gst::Buffer) -> Vec<u8> {
    b.map_readable().unwrap().to_vec()
}

fn stat(h: &Harness, name: &str) -> u64 {
    h.element().unwrap().property::<u64>(name)
}

#[test]
fn packets_in_order_give_the_frame_with_its_scan_and_caps() {
    let jpeg = jpeg();
    let frames = packets(&jpeg, 1);
    let mut h = depayloader();
    push_all(&mut h, &frames[0]);
    let out = frames_out(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(scan_data(&bytes(&out[0])), scan_data(&jpeg));
    assert_eq!(out[0].pts(), Some(gst::ClockTime::ZERO));
    let caps = h.sinkpad().unwrap().current_caps().expect("output caps");
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "image/jpeg");
    assert_eq!(s.get::<bool>("parsed"), Ok(true));
    assert_eq!(s.get::<i32>("width"), Ok(96));
    assert_eq!(s.get::<i32>("height"), Ok(64));
    assert_eq!(s.get::<&str>("sampling"), Ok("YCbCr-4:2:0"));
    assert_eq!(stat(&h, "frames-out"), 1);
    assert_eq!(stat(&h, "frames-dropped"), 0);
    assert_eq!(stat(&h, "packets-reordered"), 0);
}

#[test]
fn swapped_packets_still_give_the_frame_and_are_counted() {
    let jpeg = jpeg();
    let mut frame = packets(&jpeg, 1).remove(0);
    frame.swap(0, 1);
    let mut h = depayloader();
    push_all(&mut h, &frame);
    let out = frames_out(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(scan_data(&bytes(&out[0])), scan_data(&jpeg));
    assert_eq!(stat(&h, "packets-reordered"), 1);
    assert_eq!(stat(&h, "frames-dropped"), 0);
}

#[test]
fn a_lost_packet_drops_its_frame_and_the_next_comes_out() {
    let jpeg = jpeg();
    let mut frames = packets(&jpeg, 2);
    frames[0].remove(1);
    let mut h = depayloader();
    push_all(&mut h, &frames[0]);
    assert!(h.try_pull().is_none(), "an incomplete frame is not output");
    push_all(&mut h, &frames[1]);
    let out = frames_out(&mut h);
    assert_eq!(out.len(), 1, "only the second frame");
    assert_eq!(out[0].pts(), Some(gst::ClockTime::from_mseconds(40)));
    assert!(out[0].flags().contains(gst::BufferFlags::DISCONT));
    assert_eq!(scan_data(&bytes(&out[0])), scan_data(&jpeg));
    assert_eq!(stat(&h, "frames-dropped"), 1);
    assert_eq!(stat(&h, "frames-out"), 1);
}

#[test]
fn eos_after_an_incomplete_frame_counts_it_dropped_and_passes_on() {
    let jpeg = jpeg();
    let frame = packets(&jpeg, 1).remove(0);
    let mut h = depayloader();
    push_all(&mut h, &frame[..frame.len() - 1]);
    assert!(h.push_event(gst::event::Eos::new()));
    let eos = std::iter::from_fn(|| h.try_pull_event()).any(|e| e.type_() == gst::EventType::Eos);
    assert!(eos, "EOS goes downstream");
    assert!(h.try_pull().is_none());
    assert_eq!(stat(&h, "frames-dropped"), 1);
    assert_eq!(stat(&h, "frames-out"), 0);
}

#[test]
fn stats_structure_has_every_counter() {
    let jpeg = jpeg();
    let mut frames = packets(&jpeg, 2);
    frames[0].swap(1, 2);
    let mut h = depayloader();
    push_all(&mut h, &frames[0]);
    push_all(&mut h, &frames[1]);
    push_all(&mut h, &frames[0][..1]); // of a frame older than the last out: late
    push_all(&mut h, &frames[1][..1]); // of the last frame out: a duplicate
    assert!(h.push(gst::Buffer::from_slice(vec![0u8; 4])).is_ok());
    assert_eq!(frames_out(&mut h).len(), 2);
    let stats = h.element().unwrap().property::<gst::Structure>("stats");
    assert_eq!(stats.name(), "application/x-rtp-mjpeg-depay-stats");
    let get = |f: &str| stats.get::<u64>(f).unwrap_or_else(|e| panic!("{f}: {e}"));
    assert_eq!(get("frames-out"), 2);
    assert_eq!(get("frames-dropped"), 0);
    assert_eq!(get("frames-salvaged"), 0);
    assert_eq!(get("packets-reordered"), 1);
    assert_eq!(get("packets-duplicated"), 1);
    assert_eq!(get("packets-late"), 1);
    assert_eq!(get("packets-invalid"), 1);
}

#[test]
fn a_duplicate_inside_a_frame_is_counted_and_ignored() {
    let jpeg = jpeg();
    let mut frame = packets(&jpeg, 1).remove(0);
    let copy = frame[0].clone();
    frame.insert(2, copy);
    let mut h = depayloader();
    push_all(&mut h, &frame);
    let out = frames_out(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(scan_data(&bytes(&out[0])), scan_data(&jpeg));
    assert_eq!(stat(&h, "packets-duplicated"), 1);
}

#[test]
fn a_buffer_list_of_one_frame_gives_one_frame() {
    let jpeg = jpeg();
    let frame = packets(&jpeg, 1).remove(0);
    let mut h = depayloader();
    let mut list = gst::BufferList::new_sized(frame.len());
    for p in &frame {
        list.get_mut().unwrap().add(p.clone());
    }
    // The harness pushes single buffers only; its src pad pushes the list.
    assert_eq!(
        h.srcpad().unwrap().push_list(list),
        Ok(gst::FlowSuccess::Ok)
    );
    let out = frames_out(&mut h);
    assert_eq!(out.len(), 1);
    assert_eq!(scan_data(&bytes(&out[0])), scan_data(&jpeg));
    assert_eq!(stat(&h, "frames-out"), 1);
}

#[test]
fn packets_without_caps_are_a_negotiation_error() {
    init();
    let frame = packets(&jpeg(), 1).remove(0);
    let mut h = Harness::new("rtpmjpegdepay");
    h.element().unwrap().set_bus(Some(&gst::Bus::new()));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    assert_eq!(h.push(frame[0].clone()), Err(gst::FlowError::NotNegotiated));
    let msg = h
        .element()
        .unwrap()
        .bus()
        .unwrap()
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(e) = msg.view() else {
        unreachable!()
    };
    assert!(
        e.error().matches(gst::CoreError::Negotiation),
        "{}",
        e.error()
    );
}

#[test]
fn lab_dialect_names_what_packets_carry() {
    // A lab server's packet: the RTP header, then the whole JPEG.
    let image = jpeg();
    let mut lab_packet = vec![0x80, 0x80 | 26, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7];
    lab_packet.extend_from_slice(&image);
    let lab_packet = gst::Buffer::from_slice(lab_packet);
    for (mode, frames) in [("auto", 1), ("on", 1), ("off", 0)] {
        let mut h = depayloader();
        h.element()
            .unwrap()
            .set_property_from_str("lab-dialect", mode);
        push_all(&mut h, std::slice::from_ref(&lab_packet));
        let out = frames_out(&mut h);
        assert_eq!(out.len(), frames, "lab-dialect={mode}");
        if let Some(frame) = out.first() {
            assert_eq!(bytes(frame), image, "lab-dialect={mode}");
        }
    }
    // RFC 2435 packets under lab-dialect=on are not JPEGs: dropped and counted.
    let mut h = depayloader();
    h.element()
        .unwrap()
        .set_property_from_str("lab-dialect", "on");
    let frame = packets(&jpeg(), 1).remove(0);
    push_all(&mut h, &frame);
    assert!(frames_out(&mut h).is_empty());
    assert_eq!(stat(&h, "frames-dropped"), frame.len() as u64);
}
