//! rtpmjpegpay under gst_check::Harness: the RTP and RFC 2435 headers of each packet, the
//! scan split across packets with contiguous offsets, the output caps, and refused input.

use gst::prelude::*;
use gst_check::Harness;
use mjpeg_rtsp_tests::*;

const MTU: u32 = 400;

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("tests/vectors").join(name)).unwrap()
}

/// (width, height) from the JPEG's SOF segment.
fn sof_size(jpeg: &[u8]) -> (u16, u16) {
    let mut pos = 2;
    loop {
        let (marker, len) = (
            jpeg[pos + 1],
            u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]),
        );
        if (0xC0..=0xC2).contains(&marker) {
            let be = |at: usize| u16::from_be_bytes([jpeg[at], jpeg[at + 1]]);
            return (be(pos + 7), be(pos + 5));
        }
        pos += 2 + usize::from(len);
    }
}

fn payloader(jpeg: &[u8], props: &[(&str, gst::glib::Value)]) -> Harness {
    init();
    let mut h = Harness::new("rtpmjpegpay");
    let element = h.element().unwrap();
    element.set_property("mtu", MTU);
    for (name, value) in props {
        element.set_property_from_value(name, value);
    }
    element.set_bus(Some(&gst::Bus::new()));
    let (w, hgt) = sof_size(jpeg);
    h.set_src_caps(
        gst::Caps::builder("image/jpeg")
            .field("parsed", true)
            .field("width", i32::from(w))
            .field("height", i32::from(hgt))
            .field("framerate", gst::Fraction::new(25, 1))
            .build(),
    );
    h
}

fn jpeg_buffer(jpeg: &[u8], pts_ms: u64) -> gst::Buffer {
    let mut b = gst::Buffer::from_slice(jpeg.to_vec());
    b.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(pts_ms));
    b
}

fn pull_all(h: &mut Harness) -> Vec<gst::Buffer> {
    std::iter::from_fn(|| h.try_pull()).collect()
}

/// One packet, read.
struct Packet {
    bytes: Vec<u8>,
    marker: bool,
    seq: u16,
    timestamp: u32,
    offset: usize,
    kind: u8,
    q: u8,
    /// The scan bytes it carries.
    data: std::ops::Range<usize>,
}

fn read(buffer: &gst::Buffer) -> Packet {
    let bytes = buffer.map_readable().unwrap().to_vec();
    assert!(
        bytes.len() <= MTU as usize,
        "{} bytes over the MTU",
        bytes.len()
    );
    assert_eq!(bytes[0] >> 6, 2, "RTP version 2");
    assert_eq!(bytes[1] & 0x7F, 26, "payload type 26");
    let p = &bytes[12..];
    let offset = usize::from(p[1]) << 16 | usize::from(p[2]) << 8 | usize::from(p[3]);
    let (kind, q) = (p[4], p[5]);
    let mut header = 8;
    if kind >= 64 {
        header += 4; // restart marker header
    }
    if offset == 0 && q >= 128 {
        header += 4 + usize::from(u16::from_be_bytes([p[header + 2], p[header + 3]]));
    }
    Packet {
        marker: bytes[1] & 0x80 != 0,
        seq: u16::from_be_bytes([bytes[2], bytes[3]]),
        timestamp: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        offset,
        kind,
        q,
        data: 12 + header..bytes.len(),
        bytes,
    }
}

/// Checks one frame's packets and returns its scan bytes, rebuilt from them.
fn check_frame(packets: &[Packet], size: (u16, u16)) -> Vec<u8> {
    assert!(packets.len() > 1, "a frame over several packets");
    let mut scan = Vec::new();
    for (n, p) in packets.iter().enumerate() {
        assert_eq!(
            p.timestamp, packets[0].timestamp,
            "packet {n}: one timestamp"
        );
        assert_eq!(p.seq, packets[0].seq.wrapping_add(n as u16), "packet {n}");
        assert_eq!(p.marker, n == packets.len() - 1, "marker on the last only");
        assert_eq!(p.offset, scan.len(), "packet {n}: contiguous offsets");
        assert_eq!(p.bytes[12 + 6], (size.0 / 8) as u8, "width / 8");
        assert_eq!(p.bytes[12 + 7], (size.1 / 8) as u8, "height / 8");
        scan.extend_from_slice(&p.bytes[p.data.clone()]);
    }
    scan
}

#[test]
fn one_jpeg_becomes_packets_that_carry_its_scan() {
    let jpeg = vector("420-q75.jpg");
    let mut h = payloader(&jpeg, &[]);
    assert_eq!(h.push(jpeg_buffer(&jpeg, 0)), Ok(gst::FlowSuccess::Ok));
    let buffers = pull_all(&mut h);
    assert!(
        buffers
            .iter()
            .all(|b| b.pts() == Some(gst::ClockTime::ZERO))
    );
    let packets: Vec<_> = buffers.iter().map(read).collect();
    assert_eq!(packets[0].kind, 1, "type 1: 4:2:0");
    assert!(
        (1..=99).contains(&packets[0].q),
        "Q-factor tables: {}",
        packets[0].q
    );
    let scan = check_frame(&packets, sof_size(&jpeg));
    assert_eq!(
        scan,
        scan_data(&jpeg),
        "the payloads are the scan, in order"
    );

    let caps = h.sinkpad().unwrap().current_caps().expect("output caps");
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "application/x-rtp");
    assert_eq!(s.get::<&str>("media"), Ok("video"));
    assert_eq!(s.get::<&str>("encoding-name"), Ok("JPEG"));
    assert_eq!(s.get::<i32>("clock-rate"), Ok(90000));
    assert_eq!(s.get::<i32>("payload"), Ok(26));
    assert_eq!(s.get::<&str>("a-framerate"), Ok("25"));
}

#[test]
fn frames_40_ms_apart_are_3600_ticks_apart_with_sequence_numbers_running_on() {
    let jpeg = vector("420-q75.jpg");
    let mut h = payloader(&jpeg, &[]);
    h.push(jpeg_buffer(&jpeg, 0)).unwrap();
    h.push(jpeg_buffer(&jpeg, 40)).unwrap();
    let packets: Vec<_> = pull_all(&mut h).iter().map(read).collect();
    let split = packets.iter().position(|p| p.marker).unwrap() + 1;
    let (first, second) = packets.split_at(split);
    assert_eq!(first.len(), second.len());
    check_frame(first, sof_size(&jpeg));
    check_frame(second, sof_size(&jpeg));
    assert_eq!(
        second[0].timestamp.wrapping_sub(first[0].timestamp),
        3600,
        "90 kHz"
    );
    assert_eq!(second[0].seq, first[split - 1].seq.wrapping_add(1));
}

#[test]
fn restart_markers_give_type_65_with_a_restart_header() {
    let jpeg = vector("420-dri2.jpg");
    let mut h = payloader(&jpeg, &[]);
    h.push(jpeg_buffer(&jpeg, 0)).unwrap();
    let packets: Vec<_> = pull_all(&mut h).iter().map(read).collect();
    assert!(packets.iter().all(|p| p.kind == 65), "type 1 + 64");
    let scan = check_frame(&packets, sof_size(&jpeg));
    assert_eq!(scan, scan_data(&jpeg));
    for p in &packets {
        let restart = &p.bytes[12 + 8..12 + 12];
        assert_eq!(u16::from_be_bytes([restart[0], restart[1]]), 2, "DRI 2");
    }
}

fn first_error(h: &Harness, kind: gst::MessageType) -> gst::glib::Error {
    let msg = h
        .element()
        .unwrap()
        .bus()
        .unwrap()
        .pop_filtered(&[kind])
        .unwrap_or_else(|| panic!("a {kind:?} message"));
    match msg.view() {
        gst::MessageView::Error(e) => e.error(),
        gst::MessageView::Warning(w) => w.error(),
        _ => unreachable!(),
    }
}

#[test]
fn progressive_jpeg_is_an_error_naming_the_reason() {
    let jpeg = vector("unsupported-progressive.jpg");
    let mut h = payloader(&jpeg, &[]);
    assert_eq!(h.push(jpeg_buffer(&jpeg, 0)), Err(gst::FlowError::Error));
    assert!(h.try_pull().is_none());
    let error = first_error(&h, gst::MessageType::Error);
    assert!(error.matches(gst::StreamError::Format), "{error}");
    assert!(error.to_string().contains("progressive"), "{error}");
}

#[test]
fn drop_unsupported_drops_the_frame_counts_it_and_goes_on() {
    let bad = vector("unsupported-progressive.jpg");
    let good = vector("420-q75.jpg");
    let mut h = payloader(&good, &[("drop-unsupported", true.to_value())]);
    assert_eq!(h.push(jpeg_buffer(&bad, 0)), Ok(gst::FlowSuccess::Ok));
    assert!(h.try_pull().is_none(), "no packet for the dropped frame");
    let warning = first_error(&h, gst::MessageType::Warning);
    assert!(warning.to_string().contains("progressive"), "{warning}");
    assert_eq!(h.element().unwrap().property::<u64>("frames-dropped"), 1);
    h.push(jpeg_buffer(&good, 40)).unwrap();
    let packets: Vec<_> = pull_all(&mut h).iter().map(read).collect();
    assert_eq!(check_frame(&packets, sof_size(&good)), scan_data(&good));
}
