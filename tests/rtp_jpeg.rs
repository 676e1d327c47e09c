//! rtpmjpegpay and rtpmjpegdepay in-process: pixel-exact round trips of every kind of
//! JPEG RFC 2435 can carry, the errors for what it cannot, and behaviour under loss.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use mjpeg_rtsp_tests::*;

const TIMEOUT: Duration = Duration::from_secs(120);

fn vector(name: &str) -> Vec<u8> {
    let path = workspace_root().join("tests/vectors").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn pay_depay(jpegs: &[Vec<u8>], pay: &str, depay: &str) -> Run {
    run_jpegs_through(
        jpegs,
        &format!(
            "appsrc name=src ! rtpmjpegpay name=pay {pay} ! rtpmjpegdepay name=depay {depay} \
             ! appsink name=sink sync=false"
        ),
        TIMEOUT,
    )
}

/// Decodes both with jpegdec and compares size and every pixel.
fn assert_pixel_exact(original: &[u8], received: &[u8], what: &str) {
    let (caps_a, raw_a) = decode_jpeg(original);
    let (caps_b, raw_b) = decode_jpeg(received);
    let size = |c: &gst::Caps| {
        let s = c.structure(0).unwrap();
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap(),
        )
    };
    assert_eq!(size(&caps_a), size(&caps_b), "{what}: size");
    assert!(raw_a == raw_b, "{what}: decoded pixels differ");
}

/// Vectors whose scan goes as it is (standard Huffman tables).
const AS_IS: &[&str] = &[
    "420-q75.jpg",
    "422-q50.jpg",
    "420-dri2.jpg",
    "422-dri3.jpg",
    "420-custom-tables.jpg",
    "420-one-table.jpg",
    "420-three-tables.jpg",
    "420-16bit-tables.jpg",
    "ffmpeg-420-combined-dqt.jpg",
    "jpegenc-420.jpg",
    "420-odd-size.jpg",
];

/// Vectors with optimised Huffman tables, re-encoded by the payloader.
const REENCODED: &[&str] = &[
    "420-optimized-huffman.jpg",
    "420-optimized-huffman-dri.jpg",
    "ffmpeg-420-optimal-huffman.jpg",
];

#[test]
fn round_trips_are_byte_exact_in_the_scan_and_pixel_exact() {
    for name in AS_IS {
        let original = vector(name);
        for mtu in [1400, 120] {
            let run = pay_depay(std::slice::from_ref(&original), &format!("mtu={mtu}"), "");
            assert!(run.error.is_none(), "{name}: {:?}", run.error);
            let out = run.buffers();
            assert_eq!(out.len(), 1, "{name} mtu {mtu}");
            assert_eq!(
                scan_data(&out[0]),
                scan_data(&original),
                "{name}: scan bytes"
            );
            assert_pixel_exact(&original, &out[0], name);
        }
    }
}

#[test]
fn non_standard_huffman_tables_are_reencoded_pixel_exact() {
    for name in REENCODED {
        let original = vector(name);
        let run = pay_depay(std::slice::from_ref(&original), "", "");
        assert!(run.error.is_none(), "{name}: {:?}", run.error);
        assert_pixel_exact(&original, &run.buffers()[0], name);
    }
    let run = run_jpegs_through(
        &[vector(REENCODED[0]), vector(AS_IS[0])],
        "appsrc name=src ! rtpmjpegpay name=pay ! appsink name=sink sync=false",
        TIMEOUT,
    );
    assert!(run.error.is_none());
}

#[test]
fn frames_over_2040_pixels_keep_their_size() {
    for (w, h) in [(2048, 1536), (4096, 2160)] {
        let frames = encode_jpegs(1, w, h, "smpte");
        let run = pay_depay(&frames, "", "");
        assert!(run.error.is_none(), "{w}x{h}: {:?}", run.error);
        let out = run.buffers();
        assert_eq!(scan_data(&out[0]), scan_data(&frames[0]));
        let s = run.caps(0);
        let s = s.structure(0).unwrap();
        assert_eq!(
            (s.get::<i32>("width"), s.get::<i32>("height")),
            (Ok(w as i32), Ok(h as i32))
        );
        assert_pixel_exact(&frames[0], &out[0], &format!("{w}x{h}"));
    }
}

#[test]
fn output_caps_are_complete() {
    let run = pay_depay(&[vector("422-dri3.jpg")], "", "");
    let caps = run.caps(0);
    let s = caps.structure(0).unwrap();
    assert_eq!(s.get::<bool>("parsed"), Ok(true));
    assert_eq!(s.get::<&str>("sampling"), Ok("YCbCr-4:2:2"));
    assert_eq!(
        s.get::<gst::Fraction>("framerate"),
        Ok(gst::Fraction::new(20, 1))
    );
    let run = pay_depay(&[vector("420-16bit-tables.jpg")], "", "");
    assert_eq!(
        run.caps(0).structure(0).unwrap().get::<i32>("sof-marker"),
        Ok(1)
    );
}

#[test]
fn static_q_tables_are_cached_by_the_receiver() {
    let frames = vec![vector("420-custom-tables.jpg"); 20];
    let run = pay_depay(&frames, "inband-q=200", "");
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.buffers().len(), 20);
    for out in run.buffers() {
        assert_pixel_exact(&frames[0], &out, "Q 200");
    }
}

fn payloader_error(name: &str, props: &str) -> Run {
    run_jpegs_through(
        &[vector(name)],
        &format!("appsrc name=src ! rtpmjpegpay {props} ! appsink name=sink sync=false"),
        TIMEOUT,
    )
}

#[test]
fn unsupported_input_is_an_error_that_names_reason_and_fix() {
    for (name, reason, fix) in [
        (
            "unsupported-progressive.jpg",
            "progressive JPEG",
            "baseline",
        ),
        ("unsupported-arithmetic.jpg", "arithmetic-coded", "baseline"),
        (
            "unsupported-444.jpg",
            "YCbCr-4:4:4",
            "video/x-raw,format=I420 before jpegenc",
        ),
        (
            "unsupported-grayscale.jpg",
            "1 colour component",
            "video/x-raw,format=I420",
        ),
        (
            "unsupported-ffmpeg-422.jpg",
            "chroma 1x2",
            "-pix_fmt yuvj420p",
        ),
    ] {
        let run = payloader_error(name, "");
        let err = run.error.unwrap_or_else(|| panic!("{name}: no error"));
        assert!(err.contains(reason) && err.contains(fix), "{name}: {err}");
    }
    let run = payloader_error("420-optimized-huffman.jpg", "huffman=refuse");
    let err = run.error.expect("an error");
    assert!(
        err.contains("non-standard Huffman") && err.contains("huffman=reencode"),
        "{err}"
    );
}

#[test]
fn drop_unsupported_drops_with_a_warning_and_a_count() {
    let frames = vec![
        vector("420-q75.jpg"),
        vector("unsupported-444.jpg"),
        vector("unsupported-progressive.jpg"),
        vector("420-q75.jpg"),
    ];
    let pipeline = jpeg_pipeline(
        "appsrc name=src ! rtpmjpegpay name=pay drop-unsupported=true ! rtpmjpegdepay \
         ! appsink name=sink sync=false",
    );
    let pay = pipeline.by_name("pay").unwrap();
    feed_jpegs(&pipeline, &frames);
    let run = collect(&pipeline, TIMEOUT);
    assert_eq!(pay.property::<u64>("frames-dropped"), 2);
    assert!(run.error.is_none() && run.eos, "{:?}", run.error);
    assert_eq!(run.buffers().len(), 2);
    assert_eq!(run.warnings.len(), 2, "{:?}", run.warnings);
    assert!(
        run.warnings[0].contains("YCbCr-4:4:4"),
        "{:?}",
        run.warnings
    );
}

/// Per RTP timestamp, how many packets passed a pad.
type PacketCounts = Arc<Mutex<BTreeMap<u32, usize>>>;

fn count_packets(element: &gst::Element) -> PacketCounts {
    let counts: PacketCounts = Arc::default();
    let store = counts.clone();
    element.static_pad("src").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let mut add = |b: &gst::BufferRef| {
                if let Ok(rtp) = gst_rtp::RTPBuffer::from_buffer_readable(b) {
                    *store.lock().unwrap().entry(rtp.timestamp()).or_default() += 1;
                }
            };
            match &info.data {
                Some(gst::PadProbeData::Buffer(b)) => add(b),
                Some(gst::PadProbeData::BufferList(l)) => l.iter().for_each(&mut add),
                _ => {}
            }
            gst::PadProbeReturn::Ok
        },
    );
    counts
}

/// Runs `frames` through pay ! netsim ! depay ! jpegdec and returns: frames out, frames
/// the depayloader dropped, its salvaged count, and the per-timestamp packet counts
/// before and after netsim.
fn through_lossy_network(
    frames: &[Vec<u8>],
    pay: &str,
    depay: &str,
    drop_probability: f64,
) -> (Run, u64, u64, BTreeMap<u32, usize>, BTreeMap<u32, usize>) {
    let pipeline = jpeg_pipeline(&format!(
        "appsrc name=src ! rtpmjpegpay {pay} ! identity name=before \
         ! netsim drop-probability={drop_probability} ! identity name=after \
         ! rtpmjpegdepay name=depay {depay} ! jpegdec ! appsink name=sink sync=false"
    ));
    let before = count_packets(&pipeline.by_name("before").unwrap());
    let after = count_packets(&pipeline.by_name("after").unwrap());
    let depay = pipeline.by_name("depay").unwrap();
    feed_jpegs(&pipeline, frames);
    let run = collect(&pipeline, TIMEOUT);
    let dropped = depay.property::<u64>("frames-dropped");
    let salvaged = depay.property::<u64>("frames-salvaged");
    let before = before.lock().unwrap().clone();
    let after = after.lock().unwrap().clone();
    (run, dropped, salvaged, before, after)
}

#[test]
fn losses_drop_exactly_the_frames_that_lost_a_packet() {
    // 720p frames are dozens of packets each (about 48), so a frame never loses all of
    // them. At 2% loss about 38% of the frames come through untouched; at 5% only 8.5%
    // did, and one run in 35 had none at all.
    let frames = encode_jpegs(40, 1280, 720, "smpte");
    let (run, dropped, _, before, after) = through_lossy_network(&frames, "", "", 0.02);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert!(
        run.warnings.is_empty(),
        "jpegdec complained: {:?}",
        run.warnings
    );
    assert_eq!(before.len(), 40);
    let damaged = before
        .iter()
        .filter(|(ts, n)| after.get(ts).copied().unwrap_or(0) < **n)
        .count();
    let untouched = 40 - damaged;
    assert!(
        damaged > 0 && untouched > 0,
        "a 5% loss hits some frames, not all"
    );
    assert!(after.len() == 40, "no frame lost every packet");
    assert_eq!(
        dropped as usize, damaged,
        "frames dropped == frames with a lost packet"
    );
    assert_eq!(
        run.samples.len(),
        untouched,
        "every intact frame is decoded"
    );
}

#[test]
fn salvage_outputs_damaged_frames_that_still_decode() {
    // 96x64 with a restart marker every 2 MCUs, in packets of a few intervals each.
    let frames = vec![vector("420-dri2.jpg"); 60];
    let (run, dropped, salvaged, before, after) =
        through_lossy_network(&frames, "mtu=60", "salvage=true", 0.1);
    assert!(run.error.is_none(), "{:?}", run.error);
    let damaged = before
        .iter()
        .filter(|(ts, n)| after.get(ts).copied().unwrap_or(0) < **n)
        .count();
    assert!(damaged > 0);
    assert!(salvaged > 0, "some damaged frames are salvaged");
    assert_eq!(salvaged + dropped, damaged as u64);
    assert_eq!(run.samples.len() as u64, (60 - damaged) as u64 + salvaged);
}

#[test]
fn depayloader_documents_its_counters() {
    let registry = tempfile::tempdir().unwrap();
    let out = gst_tool("gst-inspect-1.0", registry.path())
        .arg("rtpmjpegdepay")
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    for p in [
        "salvage",
        "frames-in-progress",
        "lab-dialect",
        "frames-out",
        "frames-dropped",
        "frames-salvaged",
        "packets-reordered",
        "packets-duplicated",
        "packets-late",
        "packets-invalid",
    ] {
        assert!(doc.contains(p), "{p} missing");
    }
}

#[test]
fn payloads_point_into_the_input_buffer() {
    // The scan data is not copied: every packet's payload bytes lie inside the input
    // buffer's own memory.
    init();
    let jpeg = vector("420-q75.jpg");
    let input = gst::Buffer::from_slice(jpeg.clone());
    let input_map = input.map_readable().unwrap();
    let (start, end) = (
        input_map.as_ptr() as usize,
        input_map.as_ptr() as usize + input_map.len(),
    );
    let pipeline =
        jpeg_pipeline("appsrc name=src ! rtpmjpegpay mtu=200 ! appsink name=sink sync=false");
    let src = appsrc(&pipeline);
    src.push_buffer(input.clone()).unwrap();
    src.end_of_stream().unwrap();
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.samples.len() > 5);
    for sample in &run.samples {
        let packet = sample.buffer().unwrap();
        assert_eq!(packet.n_memory(), 2, "headers, then the scan data");
        let payload = packet.peek_memory(1).map_readable().unwrap();
        let at = payload.as_ptr() as usize;
        assert!(at >= start && at + payload.len() <= end, "a copy");
    }
    drop(input_map);
}

#[test]
fn lab_dialect_packets_come_out_as_the_jpegs_they_carry() {
    // What a networking-lab server sends: a 12-byte RTP header (payload type 26, marker
    // never set, sequence number = frame number, timestamp in seconds, SSRC 0) and the
    // whole JPEG, with no RFC 2435 header.
    init();
    let frames = encode_jpegs(5, 384, 288, "ball");
    let pipeline = launch(
        "appsrc name=src format=time caps=\"application/x-rtp,media=video,clock-rate=90000,\
         encoding-name=JPEG,payload=26\" ! rtpmjpegdepay ! appsink name=sink sync=false",
    );
    let src = appsrc(&pipeline);
    for (n, jpeg) in frames.iter().enumerate() {
        let seq = (n + 1) as u16;
        let mut packet = vec![0x80, 26];
        packet.extend_from_slice(&seq.to_be_bytes());
        packet.extend_from_slice(&1_732_000_000u32.to_be_bytes());
        packet.extend_from_slice(&[0; 4]);
        packet.extend_from_slice(jpeg);
        src.push_buffer(gst::Buffer::from_slice(packet)).unwrap();
    }
    src.end_of_stream().unwrap();
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert_eq!(run.buffers(), frames);
    let s = run.caps(0);
    let s = s.structure(0).unwrap();
    assert_eq!(
        (s.get::<i32>("width"), s.get::<i32>("height")),
        (Ok(384), Ok(288))
    );
}

/// The packets `payloader` makes of `frames`, each copied into one memory as `udpsrc`
/// delivers a datagram, with their caps.
fn datagrams(frames: &[Vec<u8>], payloader: &str) -> (gst::Caps, Vec<gst::Buffer>) {
    let run = run_jpegs_through(
        frames,
        &format!("appsrc name=src ! jpegparse ! {payloader} ! appsink name=sink sync=false"),
        TIMEOUT,
    );
    assert!(run.error.is_none(), "{:?}", run.error);
    let packets = run
        .buffers()
        .into_iter()
        .map(gst::Buffer::from_mut_slice)
        .collect();
    (run.caps(0), packets)
}

/// Pushes `packets` one by one into `rtpmjpegdepay`; returns the frames out and the
/// element (for its counters).
fn depayload_packets(caps: &gst::Caps, packets: &[gst::Buffer]) -> (Vec<Vec<u8>>, gst::Element) {
    let pipeline = launch(
        "appsrc name=src format=time ! rtpmjpegdepay name=depay ! appsink name=sink sync=false",
    );
    let src = appsrc(&pipeline);
    src.set_caps(Some(caps));
    for p in packets {
        src.push_buffer(p.clone()).expect("queued");
    }
    src.end_of_stream().expect("EOS queued");
    let depay = pipeline.by_name("depay").expect("depay");
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.error.is_none(), "{:?}", run.error);
    assert!(run.eos);
    (run.buffers(), depay)
}

/// The packets of each frame (by RTP timestamp), in order.
fn by_frame(packets: &[gst::Buffer]) -> Vec<Vec<gst::Buffer>> {
    let mut frames: Vec<Vec<gst::Buffer>> = Vec::new();
    let mut last = None;
    for p in packets {
        let ts = gst_rtp::RTPBuffer::from_buffer_readable(p)
            .expect("RTP")
            .timestamp();
        if last != Some(ts) {
            frames.push(Vec::new());
            last = Some(ts);
        }
        frames.last_mut().expect("a frame").push(p.clone());
    }
    frames
}

#[test]
fn reordered_and_duplicated_packets_from_rtpjpegpay_lose_no_frame() {
    let sent = encode_jpegs(30, 640, 480, "ball");
    let (caps, packets) = datagrams(&sent, "rtpjpegpay mtu=600");
    let frames = by_frame(&packets);
    assert_eq!(frames.len(), 30);
    assert!(
        frames.iter().all(|f| f.len() >= 6),
        "several packets a frame"
    );

    // Three neighbour swaps inside each frame.
    let mut swapped = frames.clone();
    for f in &mut swapped {
        let n = f.len();
        for i in [0, 2, n - 2] {
            f.swap(i, i + 1);
        }
    }
    let swapped: Vec<gst::Buffer> = swapped.concat();
    let (out, depay) = depayload_packets(&caps, &swapped);
    assert_eq!(out.len(), 30, "every frame out");
    for (i, (a, b)) in sent.iter().zip(&out).enumerate() {
        assert_eq!(scan_data(a), scan_data(b), "frame {i}");
    }
    assert_pixel_exact(&sent[7], &out[7], "frame 7");
    assert_eq!(depay.property::<u64>("packets-reordered"), 90);
    assert_eq!(depay.property::<u64>("frames-dropped"), 0);

    // Each frame's first packet ahead of the previous frame's marker packet, and every
    // fifth packet twice.
    let mut moved: Vec<gst::Buffer> = packets.clone();
    let mut start = 0;
    for f in &frames[..29] {
        start += f.len();
        moved.swap(start - 1, start);
    }
    let moved: Vec<gst::Buffer> = moved
        .into_iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let copies = if i % 5 == 0 { 2 } else { 1 };
            std::iter::repeat_n(p, copies)
        })
        .collect();
    let (out, depay) = depayload_packets(&caps, &moved);
    assert_eq!(out.len(), 30, "every frame out");
    for (i, (a, b)) in sent.iter().zip(&out).enumerate() {
        assert_eq!(scan_data(a), scan_data(b), "frame {i}");
    }
    assert_eq!(depay.property::<u64>("frames-dropped"), 0);
    assert_eq!(
        depay.property::<u64>("packets-duplicated"),
        packets.len().div_ceil(5) as u64
    );
    assert!(depay.property::<u64>("packets-reordered") >= 29);
}

#[test]
fn a_frame_overtaken_by_the_next_is_dropped_not_output_late() {
    let sent = encode_jpegs(3, 320, 240, "ball");
    let (caps, packets) = datagrams(&sent, "rtpjpegpay mtu=400");
    let mut frames = by_frame(&packets);
    // Frame 1 loses a packet that turns up after frame 2 is complete.
    let late = frames[1].remove(1);
    let mut order: Vec<gst::Buffer> = frames.concat();
    order.push(late);
    let (out, depay) = depayload_packets(&caps, &order);
    assert_eq!(out.len(), 2);
    assert_eq!(scan_data(&out[0]), scan_data(&sent[0]));
    assert_eq!(scan_data(&out[1]), scan_data(&sent[2]));
    assert_eq!(depay.property::<u64>("frames-dropped"), 1);
    assert_eq!(depay.property::<u64>("packets-late"), 1);
}

#[test]
fn invalid_packets_are_counted_and_missing_caps_is_a_clear_error() {
    let sent = encode_jpegs(3, 320, 240, "ball");
    let (caps, packets) = datagrams(&sent, "rtpjpegpay mtu=400");
    let mut version0 = packets[1].map_readable().unwrap().to_vec();
    version0[0] &= 0x3F;
    let mut padded_past_the_end = packets[1].map_readable().unwrap()[..100].to_vec();
    padded_past_the_end[0] |= 0x20;
    *padded_past_the_end.last_mut().unwrap() = 255;
    // An RTCP receiver report sent to the RTP port.
    let mut rtcp = vec![0x81, 201, 0, 7];
    rtcp.resize(32, 0);
    let garbage = [
        vec![1, 2, 3],
        vec![0x80; 11],
        version0,
        padded_past_the_end,
        rtcp,
    ];
    let mut mixed = Vec::new();
    for (i, p) in packets.iter().enumerate() {
        if let Some(g) = garbage.get(i) {
            mixed.push(gst::Buffer::from_slice(g.clone()));
        }
        mixed.push(p.clone());
    }
    let (out, depay) = depayload_packets(&caps, &mixed);
    assert_eq!(out.len(), 3, "the valid packets still make every frame");
    let stats = depay.property::<gst::Structure>("stats");
    assert_eq!(
        stats.get::<u64>("packets-invalid"),
        Ok(garbage.len() as u64)
    );
    assert_eq!(stats.get::<u64>("frames-out"), Ok(3));
    assert_eq!(stats.get::<u64>("frames-dropped"), Ok(0));

    // Packets with no RTP caps: an error that says what to do.
    let pipeline =
        launch("appsrc name=src format=time ! rtpmjpegdepay ! appsink name=sink sync=false");
    let src = appsrc(&pipeline);
    src.push_buffer(packets[0].clone()).unwrap();
    src.end_of_stream().unwrap();
    let run = collect(&pipeline, TIMEOUT);
    let error = run.error.expect("an error");
    assert!(error.contains("No RTP format was negotiated"), "{error}");
}
