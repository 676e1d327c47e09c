use super::headers::*;
use super::payloader::interval_starts;
use super::*;
use crate::jpeg;

macro_rules! vector {
    ($name:literal) => {
        include_bytes!(concat!("../../../../tests/vectors/", $name)).as_slice()
    };
}

const Q75: &[u8] = vector!("420-q75.jpg");
const Q50_422: &[u8] = vector!("422-q50.jpg");
const DRI2: &[u8] = vector!("420-dri2.jpg");
const DRI3_422: &[u8] = vector!("422-dri3.jpg");
const CUSTOM: &[u8] = vector!("420-custom-tables.jpg");
const ONE_TABLE: &[u8] = vector!("420-one-table.jpg");
const THREE_TABLES: &[u8] = vector!("420-three-tables.jpg");
const SIXTEEN_BIT: &[u8] = vector!("420-16bit-tables.jpg");
const OPTIMIZED: &[u8] = vector!("420-optimized-huffman.jpg");
const OPTIMIZED_DRI: &[u8] = vector!("420-optimized-huffman-dri.jpg");
const FFMPEG_OPTIMAL: &[u8] = vector!("ffmpeg-420-optimal-huffman.jpg");
const FFMPEG_COMBINED: &[u8] = vector!("ffmpeg-420-combined-dqt.jpg");
const JPEGENC: &[u8] = vector!("jpegenc-420.jpg");
const ODD_SIZE: &[u8] = vector!("420-odd-size.jpg");

fn scan_of(data: &[u8]) -> &[u8] {
    let image = jpeg::parse_image(data).unwrap();
    &data[image.scan_data]
}

/// Payloads `data` with `options` into packets of at most `max_payload` bytes, and
/// returns the payloads and marker bits.
fn packets(data: &[u8], options: &PayloadOptions, max_payload: usize) -> Vec<(Vec<u8>, bool)> {
    let frame = prepare(data, options).unwrap();
    let scan: Vec<u8> = match &frame.scan {
        ScanData::Borrowed(r) => data[r.clone()].to_vec(),
        ScanData::Reencoded(v) => v.clone(),
    };
    let send_tables = frame.q >= 128;
    Packetizer::new(&frame, &scan, send_tables, max_payload)
        .map(|f| {
            let mut out = Vec::new();
            f.write_headers(&frame, send_tables, &mut out);
            out.extend_from_slice(&scan[f.data.clone()]);
            (out, f.marker)
        })
        .collect()
}

/// Pushes the packets of one frame; returns every frame and drop they produced.
fn receive(r: &mut Reassembler, packets: &[(Vec<u8>, bool)], timestamp: u32) -> Received {
    let mut all = Received::default();
    for (payload, marker) in packets {
        let got = r.push(&Packet {
            payload,
            marker: *marker,
            timestamp,
        });
        all.dropped.extend(got.dropped);
        all.frames.extend(got.frames);
    }
    all
}

/// `receive`, then the end of the stream: what happened to this one frame.
fn receive_all(r: &mut Reassembler, packets: &[(Vec<u8>, bool)], timestamp: u32) -> Received {
    let mut got = receive(r, packets, timestamp);
    let end = r.end_of_stream();
    got.frames.extend(end.frames);
    got.dropped.extend(end.dropped);
    got
}

impl Received {
    /// The one frame output.
    fn frame(&self) -> Option<&Frame> {
        assert!(self.frames.len() <= 1, "{} frames", self.frames.len());
        self.frames.first()
    }
}

fn round_trip(data: &[u8], max_payload: usize) -> Frame {
    let mut r = Reassembler::new(DepayOptions::default());
    let got = receive(
        &mut r,
        &packets(data, &PayloadOptions::default(), max_payload),
        1000,
    );
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
    got.frame().expect("a frame").clone()
}

// Headers

#[test]
fn main_header_round_trip_and_errors() {
    let h = MainHeader {
        type_specific: 0,
        fragment_offset: 0x12_3456,
        kind: 65,
        q: 200,
        width8: 48,
        height8: 36,
    };
    let mut out = Vec::new();
    h.write(&mut out);
    assert_eq!(out, [0, 0x12, 0x34, 0x56, 65, 200, 48, 36]);
    assert_eq!(MainHeader::parse(&out), Ok(h));
    assert!(h.has_restart_header());
    assert_eq!(h.luma_sampling(), (2, 2));
    assert_eq!(MainHeader::parse(&out[..7]), Err(HeaderError::ShortMain(7)));
    out[4] = 3;
    assert_eq!(
        MainHeader::parse(&out),
        Err(HeaderError::UnsupportedType(3))
    );
}

#[test]
fn restart_header_round_trip_and_errors() {
    let h = RestartHeader {
        interval: 4,
        first: true,
        last: false,
        count: 0x1234,
    };
    let mut out = Vec::new();
    h.write(&mut out);
    assert_eq!(out, [0, 4, 0x92, 0x34]);
    assert_eq!(RestartHeader::parse(&out, 64), Ok(h));
    assert_eq!(
        RestartHeader::parse(&[0, 0, 0xC0, 0], 64),
        Err(HeaderError::ZeroRestartInterval(64))
    );
    assert_eq!(
        RestartHeader::parse(&[0, 1, 0], 64),
        Err(HeaderError::ShortRestart)
    );
}

#[test]
fn quant_header_layouts() {
    let t8 = [7u8; 64];
    let t16 = [9u8; 128];
    let mut out = Vec::new();
    QuantHeader::write(&[&t8, &t16, &t8], &mut out);
    assert_eq!(&out[..4], &[0, 0b010, 1, 0]); // 64 + 128 + 64 = 256 bytes
    let (h, used) = QuantHeader::parse(&out).unwrap();
    assert_eq!(used, 4 + 256);
    let tables = h.tables().unwrap();
    assert_eq!(
        tables.iter().map(|t| t.len()).collect::<Vec<_>>(),
        [64, 128, 64]
    );
    assert_eq!(
        QuantHeader::parse(&out[..100]),
        Err(HeaderError::QuantPastEnd {
            length: 256,
            left: 96
        })
    );
    // A length that does not split into 64/128-byte tables, or four tables.
    let odd = QuantHeader {
        precision: 0,
        data: &[1; 100],
    };
    assert!(matches!(odd.tables(), Err(HeaderError::QuantLayout { .. })));
    let four = QuantHeader {
        precision: 0,
        data: &[1; 256],
    };
    assert!(four.tables().is_err());
    // Zero length: no tables.
    let mut empty = Vec::new();
    QuantHeader::write(&[], &mut empty);
    assert_eq!(empty, [0, 0, 0, 0]);
}

// Q tables

#[test]
fn q50_tables_are_annex_k_in_zigzag_order() {
    let t = qtables::make_tables(50);
    // Scale 100 %: the K.1/K.2 values themselves; zigzag order starts 16, 11, 12, 14.
    assert_eq!(&t.luma[..6], &[16, 11, 12, 14, 12, 10]);
    assert_eq!(&t.chroma[..4], &[17, 18, 18, 24]);
    assert_eq!(t.luma[63], 99);
    // Q 1 clamps at 255; Q 99 scales by 2 %, giving 1 or 2.
    assert!(qtables::make_tables(1).luma.contains(&255));
    assert!(
        qtables::make_tables(99)
            .luma
            .iter()
            .all(|&v| v == 1 || v == 2)
    );
    assert_eq!(qtables::make_tables(0), qtables::make_tables(1));
    assert_eq!(qtables::make_tables(127), qtables::make_tables(99));
    for q in 1..=99 {
        assert_eq!(*qtables::tables_for(q), qtables::make_tables(q));
    }
}

#[test]
fn q_is_recognised_in_libjpeg_and_jpegenc_output() {
    for (data, q) in [(Q75, 75), (Q50_422, 50), (JPEGENC, 85), (DRI2, 75)] {
        let frame = prepare(data, &PayloadOptions::default()).unwrap();
        assert_eq!(frame.q, q);
        assert!(frame.tables.is_empty());
    }
}

// prepare

#[test]
fn types_follow_sampling_and_restart_markers() {
    let kind = |d| prepare(d, &PayloadOptions::default()).unwrap().kind;
    assert_eq!(kind(Q75), 1);
    assert_eq!(kind(Q50_422), 0);
    assert_eq!(kind(DRI2), 65);
    assert_eq!(kind(DRI3_422), 64);
    let f = prepare(DRI2, &PayloadOptions::default()).unwrap();
    assert_eq!(f.restart_interval, 2);
}

#[test]
fn custom_tables_go_in_band() {
    let opts = PayloadOptions::default();
    let two = prepare(CUSTOM, &opts).unwrap();
    assert_eq!((two.q, two.tables.len()), (255, 2));
    let one = prepare(ONE_TABLE, &opts).unwrap();
    assert_eq!(
        one.tables.len(),
        2,
        "one table is sent twice, as receivers expect two"
    );
    assert_eq!(one.tables[0], one.tables[1]);
    let three = prepare(THREE_TABLES, &opts).unwrap();
    assert_eq!(three.tables.len(), 3);
    let wide = prepare(SIXTEEN_BIT, &opts).unwrap();
    assert!(wide.tables.iter().any(|t| t.is_16bit()));
    // Two tables in one DQT segment.
    let dqt = jpeg::segments(FFMPEG_COMBINED)
        .filter_map(Result::ok)
        .filter(|s| s.marker == 0xDB)
        .collect::<Vec<_>>();
    assert_eq!((dqt.len(), dqt[0].payload.len()), (1, 130));
    let combined = prepare(FFMPEG_COMBINED, &opts).unwrap();
    assert_eq!(
        (combined.kind, combined.q, combined.tables.len()),
        (1, 255, 2)
    );
    let static_q = prepare(
        CUSTOM,
        &PayloadOptions {
            inband_q: 200,
            ..opts
        },
    )
    .unwrap();
    assert_eq!(static_q.q, 200);
}

#[test]
fn non_standard_huffman_is_reencoded_or_refused() {
    for data in [OPTIMIZED, OPTIMIZED_DRI, FFMPEG_OPTIMAL] {
        let frame = prepare(data, &PayloadOptions::default()).unwrap();
        assert!(matches!(frame.scan, ScanData::Reencoded(_)));
        let refuse = PayloadOptions {
            huffman: HuffmanPolicy::Refuse,
            ..PayloadOptions::default()
        };
        assert_eq!(
            prepare(data, &refuse).unwrap_err(),
            Unsupported::NonStandardHuffman
        );
    }
    assert!(matches!(
        prepare(Q75, &PayloadOptions::default()).unwrap().scan,
        ScanData::Borrowed(_)
    ));
}

#[test]
fn unsupported_input_is_named_with_a_fix() {
    let opts = PayloadOptions::default();
    let cases: [(&[u8], Unsupported, &str); 5] = [
        (
            vector!("unsupported-progressive.jpg"),
            Unsupported::Progressive,
            "baseline",
        ),
        (
            vector!("unsupported-arithmetic.jpg"),
            Unsupported::Arithmetic,
            "baseline",
        ),
        (
            vector!("unsupported-444.jpg"),
            Unsupported::Sampling {
                name: "YCbCr-4:4:4".into(),
                layout: "1x1, chroma 1x1/1x1".into(),
            },
            "video/x-raw,format=I420 before jpegenc",
        ),
        (
            vector!("unsupported-ffmpeg-422.jpg"),
            Unsupported::Sampling {
                name: "YCbCr-4:2:2".into(),
                layout: "2x2, chroma 1x2/1x2".into(),
            },
            "-pix_fmt yuvj420p",
        ),
        (
            vector!("unsupported-grayscale.jpg"),
            Unsupported::Components(1),
            "video/x-raw,format=I420 before jpegenc",
        ),
    ];
    for (data, expected, fix) in cases {
        let err = prepare(data, &opts).unwrap_err();
        assert_eq!(err, expected);
        assert!(err.fix().contains(fix), "{}", err.fix());
    }
    // 12-bit samples: the precision byte of a baseline SOF changed to 12.
    let mut twelve = Q75.to_vec();
    let sof = jpeg::segments(&twelve).find(|s| s.as_ref().unwrap().marker == 0xC0);
    let at = sof.unwrap().unwrap().offset + 4;
    twelve[at] = 12;
    assert_eq!(
        prepare(&twelve, &opts).unwrap_err(),
        Unsupported::Precision(12)
    );
    assert!(matches!(
        prepare(b"not a jpeg", &opts),
        Err(Unsupported::Corrupt(_))
    ));
}

// Packetizer

#[test]
fn fragments_cover_the_scan_in_order() {
    for max_payload in [40, 100, 1388] {
        let frame = prepare(Q75, &PayloadOptions::default()).unwrap();
        let scan = scan_of(Q75);
        let frags: Vec<_> = Packetizer::new(&frame, scan, false, max_payload).collect();
        let mut pos = 0;
        for (i, f) in frags.iter().enumerate() {
            assert_eq!(f.data.start, pos);
            assert_eq!(f.main.fragment_offset as usize, pos);
            assert!(8 + f.data.len() <= max_payload);
            assert_eq!(f.marker, i == frags.len() - 1);
            assert!(!f.quant_header);
            pos = f.data.end;
        }
        assert_eq!(pos, scan.len());
    }
}

#[test]
fn restart_intervals_align_with_packets() {
    let frame = prepare(DRI2, &PayloadOptions::default()).unwrap();
    let scan = scan_of(DRI2);
    let starts = interval_starts(scan);
    assert!(starts.len() > 4, "the vector has several intervals");
    let biggest = starts.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    // Packets that hold any whole interval: each starts and ends on an interval boundary.
    let max_payload = 12 + biggest * 2;
    let frags: Vec<_> = Packetizer::new(&frame, scan, false, max_payload).collect();
    let mut count = 0;
    for f in &frags {
        let r = f.restart.unwrap();
        assert!(r.first && r.last);
        assert_eq!(usize::from(r.count), count);
        assert_eq!(starts[count], f.data.start);
        count = starts
            .iter()
            .position(|&s| s == f.data.end)
            .unwrap_or(starts.len());
        assert_eq!(r.interval, 2);
    }
    assert_eq!(count, starts.len());

    // Packets smaller than an interval: intervals are spread, F on the first packet of
    // each, L on the last.
    let frags: Vec<_> = Packetizer::new(&frame, scan, false, 12 + 10).collect();
    for f in &frags {
        let r = f.restart.unwrap();
        let k = usize::from(r.count);
        assert_eq!(r.first, f.data.start == starts[k]);
        let end = starts.get(k + 1).copied().unwrap_or(scan.len());
        assert_eq!(r.last, f.data.end == end);
        assert!(f.data.end <= end, "a packet never spans two chunks");
    }
}

#[test]
fn first_packet_carries_the_tables() {
    let pk = packets(CUSTOM, &PayloadOptions::default(), 1400);
    let first = &pk[0].0;
    assert_eq!(first[5], 255);
    let (qh, used) = QuantHeader::parse(&first[8..]).unwrap();
    assert_eq!(qh.tables().unwrap().len(), 2);
    assert_eq!(used, 4 + 128);
    // Later packets have no table header.
    let pk = packets(CUSTOM, &PayloadOptions::default(), 200);
    assert!(pk.len() > 2);
    assert_eq!(pk[1].0.len(), 200);
}

// Reassembler

#[test]
fn round_trips_keep_the_scan_byte_for_byte() {
    for data in [
        Q75,
        Q50_422,
        DRI2,
        DRI3_422,
        CUSTOM,
        ONE_TABLE,
        THREE_TABLES,
        SIXTEEN_BIT,
        FFMPEG_COMBINED,
        JPEGENC,
    ] {
        for max_payload in [64, 1388] {
            let frame = round_trip(data, max_payload);
            assert_eq!(scan_of(&frame.jpeg), scan_of(data));
            let original = jpeg::parse_header(data).unwrap();
            let rebuilt = jpeg::parse_header(&frame.jpeg).unwrap();
            assert_eq!(
                (rebuilt.width, rebuilt.height),
                (original.width, original.height)
            );
            assert_eq!(rebuilt.restart_interval, original.restart_interval);
            assert_eq!(rebuilt.sampling(), original.sampling());
            assert_eq!(jpeg::frame_length(&frame.jpeg), Ok(frame.jpeg.len()));
            // The tables: the same values per component.
            let (a, b) = (
                jpeg::parse_image(data).unwrap(),
                jpeg::parse_image(&frame.jpeg).unwrap(),
            );
            for c in 0..3 {
                assert!(
                    a.component_quant_table(c)
                        .unwrap()
                        .same_values(&b.component_quant_table(c).unwrap())
                );
            }
        }
    }
    assert!(round_trip(SIXTEEN_BIT, 1388).extended);
}

#[test]
fn reencoded_frames_arrive_with_standard_tables() {
    for data in [OPTIMIZED, OPTIMIZED_DRI, FFMPEG_OPTIMAL] {
        let frame = round_trip(data, 300);
        let image = jpeg::parse_image(&frame.jpeg).unwrap();
        assert!(jpeg::huffman::uses_rfc2435_tables(&image));
    }
}

#[test]
fn sizes_not_a_multiple_of_8_need_x_dimensions() {
    let frame = prepare(ODD_SIZE, &PayloadOptions::default()).unwrap();
    assert!(frame.needs_x_dimensions());
    assert_eq!(frame.header_size(), (13, 10));
    // Without x-dimensions the receiver can only say 104x80; with them, 100x75.
    assert_eq!(
        (
            round_trip(ODD_SIZE, 1388).width,
            round_trip(ODD_SIZE, 1388).height
        ),
        (104, 80)
    );
    let mut r = Reassembler::new(DepayOptions {
        dimensions: Some((100, 75)),
        ..DepayOptions::default()
    });
    let got = receive(
        &mut r,
        &packets(ODD_SIZE, &PayloadOptions::default(), 1388),
        1,
    );
    let f = got.frame().unwrap();
    assert_eq!((f.width, f.height), (100, 75));
    // A size that disagrees with the header is not used.
    let mut r = Reassembler::new(DepayOptions {
        dimensions: Some((300, 75)),
        ..DepayOptions::default()
    });
    let got = receive(
        &mut r,
        &packets(ODD_SIZE, &PayloadOptions::default(), 1388),
        1,
    );
    let f = got.frame().unwrap();
    assert_eq!((f.width, f.height), (104, 75));
}

#[test]
fn a_zero_size_field_takes_that_side_from_x_dimensions() {
    let packet = |width8, height8| {
        let header = MainHeader {
            type_specific: 0,
            fragment_offset: 0,
            kind: 1,
            q: 50,
            width8,
            height8,
        };
        let mut payload = Vec::new();
        header.write(&mut payload);
        payload.extend_from_slice(&[0x12, 0x34]);
        payload
    };
    let size = |dimensions, payload: &[u8]| {
        let mut r = Reassembler::new(DepayOptions {
            dimensions,
            ..DepayOptions::default()
        });
        let got = receive_all(&mut r, &[(payload.to_vec(), true)], 5);
        match (got.frames.first(), got.dropped.first()) {
            (Some(f), None) => Ok((f.width, f.height)),
            (None, Some(d)) => Err(d.reason.clone()),
            other => panic!("{other:?}"),
        }
    };
    // Our payloader: 0 only on the side over 2040.
    assert_eq!(size(Some((4096, 1536)), &packet(0, 192)), Ok((4096, 1536)));
    // GStreamer's rtpjpegpay: 0 on both sides as soon as either is over 2040, whether
    // the other side is (2592x1944, 2048x1536) or not.
    assert_eq!(size(Some((2048, 1536)), &packet(0, 0)), Ok((2048, 1536)));
    assert_eq!(size(Some((2592, 1944)), &packet(0, 0)), Ok((2592, 1944)));
    assert_eq!(size(Some((4096, 2160)), &packet(0, 0)), Ok((4096, 2160)));
    // Neither gives a size: dropped, saying which side.
    assert_eq!(
        size(None, &packet(0, 192)),
        Err(DropReason::NoDimensions("width"))
    );
    assert_eq!(
        size(None, &packet(48, 0)),
        Err(DropReason::NoDimensions("height"))
    );
    assert!(
        DropReason::NoDimensions("width")
            .to_string()
            .contains("no x-dimensions")
    );
}

fn fresh() -> Reassembler {
    Reassembler::new(DepayOptions::default())
}

#[test]
fn a_lost_packet_drops_that_frame_only() {
    let pk = packets(Q75, &PayloadOptions::default(), 300);
    assert!(pk.len() >= 4);
    let mut r = fresh();
    let mut damaged = pk.clone();
    damaged.remove(2);
    let got = receive(&mut r, &damaged, 1);
    assert!(
        got.frames.is_empty() && got.dropped.is_empty(),
        "still waiting"
    );
    // The next frame comes through, and the damaged one is dropped before it.
    let got = receive(&mut r, &pk, 2);
    assert_eq!(got.frames.len(), 1);
    assert_eq!(got.frames[0].timestamp, 2);
    assert_eq!(got.dropped.len(), 1);
    assert_eq!(got.dropped[0].timestamp, 1);
    let expected = pk[..2].iter().map(|p| p.0.len() - 8).sum::<usize>();
    assert_eq!(
        got.dropped[0].reason,
        DropReason::Lost {
            expected,
            got: expected + pk[2].0.len() - 8
        }
    );
    // The lost packet turns up after all: too late, counted, nothing output.
    let got = receive(&mut r, &pk[2..3], 1);
    assert!(got.frames.is_empty() && got.dropped.is_empty());
    assert_eq!(r.stats().late, 1);
}

#[test]
fn missing_first_and_last_packets_and_inconsistent_ones_drop_the_frame() {
    let pk = packets(Q75, &PayloadOptions::default(), 300);
    let got = receive_all(&mut fresh(), &pk[1..], 1);
    assert_eq!(got.dropped[0].reason, DropReason::MissingStart);

    // No marker: the frame is reported when a later one is complete...
    let mut r = fresh();
    let got = receive(&mut r, &pk[..pk.len() - 1], 1);
    assert!(got.frames.is_empty() && got.dropped.is_empty());
    let got = receive(&mut r, &pk, 2);
    assert_eq!(got.dropped[0].reason, DropReason::MissingEnd);
    assert_eq!(got.dropped[0].timestamp, 1);
    assert_eq!(got.frames.len(), 1);
    // ... or when the stream ends.
    receive(&mut r, &pk[..2], 3);
    let end = r.end_of_stream();
    assert_eq!(end.dropped.len(), 1);
    assert_eq!(end.dropped[0].timestamp, 3);
    assert!(r.end_of_stream().dropped.is_empty());

    // A packet whose header disagrees with the first.
    let mut odd = pk.clone();
    odd[1].0[5] = 74;
    let got = receive_all(&mut fresh(), &odd, 1);
    assert_eq!(
        got.dropped[0].reason,
        DropReason::Inconsistent("type, Q or size")
    );
    // Data past the marker packet's end.
    let mut long = pk.clone();
    let last = long.len() - 1;
    long.swap(1, last);
    long[1].0.extend_from_slice(&[0, 0]);
    long[1].1 = false;
    long[last].1 = true;
    let got = receive_all(&mut fresh(), &long, 1);
    assert!(got.frames.is_empty());
    assert_eq!(
        got.dropped[0].reason,
        DropReason::Inconsistent("the end of the frame")
    );
}

/// A small deterministic generator for shuffles (xorshift).
struct Shuffler(u64);

impl Shuffler {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The packets of `frames` consecutive frames of `data`, one timestamp each.
fn stream(
    data: &[u8],
    options: &PayloadOptions,
    frames: u32,
    mtu: usize,
) -> Vec<(Vec<u8>, bool, u32)> {
    let pk = packets(data, options, mtu);
    (0..frames)
        .flat_map(|f| pk.iter().map(move |(p, m)| (p.clone(), *m, 3000 * f + 7)))
        .collect()
}

/// Pushes packets with their timestamps, then ends the stream.
fn play(r: &mut Reassembler, packets: &[(Vec<u8>, bool, u32)]) -> Received {
    let mut all = Received::default();
    for (payload, marker, timestamp) in packets {
        let got = r.push(&Packet {
            payload,
            marker: *marker,
            timestamp: *timestamp,
        });
        all.frames.extend(got.frames);
        all.dropped.extend(got.dropped);
    }
    let end = r.end_of_stream();
    all.frames.extend(end.frames);
    all.dropped.extend(end.dropped);
    all
}

/// Every frame of the stream came out, in order, each the same as in-order delivery
/// gives.
fn assert_all_frames(got: &Received, frames: u32, data: &[u8]) {
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
    assert_eq!(got.frames.len(), frames as usize);
    let whole = round_trip(data, 300);
    for (i, f) in got.frames.iter().enumerate() {
        assert_eq!(f.timestamp, 3000 * i as u32 + 7, "in order");
        assert_eq!(f.jpeg, whole.jpeg, "frame {i}");
    }
}

#[test]
fn packets_shuffled_inside_each_frame_all_come_out() {
    for data in [Q75, DRI2, CUSTOM, THREE_TABLES] {
        let mut s = stream(data, &PayloadOptions::default(), 20, 300);
        let per_frame = s.len() / 20;
        assert!(per_frame >= 4);
        let mut rng = Shuffler(0x9E37_79B9_7F4A_7C15);
        for frame in s.chunks_mut(per_frame) {
            for i in (1..frame.len()).rev() {
                frame.swap(i, rng.next(i + 1));
            }
        }
        let mut r = fresh();
        let got = play(&mut r, &s);
        assert_all_frames(&got, 20, data);
        assert!(r.stats().reordered > 0);
        assert_eq!(r.stats().duplicates, 0);
    }
}

#[test]
fn three_neighbour_swaps_per_frame_lose_nothing() {
    let mut s = stream(Q75, &PayloadOptions::default(), 100, 300);
    let per_frame = s.len() / 100;
    for frame in s.chunks_mut(per_frame) {
        for i in [0, 2, per_frame - 2] {
            frame.swap(i, i + 1);
        }
    }
    let mut r = fresh();
    assert_all_frames(&play(&mut r, &s), 100, Q75);
    assert_eq!(r.stats().reordered, 300);
}

#[test]
fn packets_moved_across_frame_boundaries_all_come_out() {
    let mut s = stream(Q75, &PayloadOptions::default(), 30, 300);
    let per_frame = s.len() / 30;
    // Each frame's first packet goes ahead of the previous frame's marker packet.
    for f in 1..30 {
        let first = f * per_frame;
        s.swap(first - 1, first);
    }
    let mut r = fresh();
    assert_all_frames(&play(&mut r, &s), 30, Q75);
    // Packets delayed by up to half a frame's worth of packets, often into the next
    // frame (never past its marker packet: a frame whose successor is complete first is
    // dropped).
    let mut s = stream(DRI2, &PayloadOptions::default(), 30, 60);
    let per_frame = s.len() / 30;
    assert!(per_frame >= 8);
    let mut rng = Shuffler(7);
    for _ in 0..60 {
        let from = rng.next(s.len());
        let to = (from + 1 + rng.next(per_frame / 2)).min(s.len() - 1);
        let p = s.remove(from);
        s.insert(to, p);
    }
    let mut r = fresh();
    assert_all_frames(&play(&mut r, &s), 30, DRI2);
}

#[test]
fn duplicated_packets_are_counted_and_ignored() {
    let s = stream(DRI3_422, &PayloadOptions::default(), 10, 200);
    let doubled: Vec<_> = s.iter().flat_map(|p| [p.clone(), p.clone()]).collect();
    let mut r = fresh();
    assert_all_frames(&play(&mut r, &doubled), 10, DRI3_422);
    assert_eq!(r.stats().duplicates, s.len() as u64);
    // Duplicated and shuffled.
    let mut mixed = doubled.clone();
    let mut rng = Shuffler(99);
    let per_frame = 2 * s.len() / 10;
    for frame in mixed.chunks_mut(per_frame) {
        for i in (1..frame.len()).rev() {
            frame.swap(i, rng.next(i + 1));
        }
    }
    let mut r = fresh();
    assert_all_frames(&play(&mut r, &mixed), 10, DRI3_422);
}

#[test]
fn frames_leave_in_timestamp_order_and_late_ones_are_dropped() {
    let pk = packets(Q75, &PayloadOptions::default(), 300);
    let mut r = fresh();
    // Frame 1 lacks a packet when frame 2 is complete: 1 is dropped, never output late.
    let got = receive(&mut r, &pk[..3], 1);
    assert!(got.frames.is_empty());
    let got = receive(&mut r, &pk, 2);
    assert_eq!(
        got.frames.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(got.dropped[0].timestamp, 1);
    let got = receive(&mut r, &pk[3..], 1);
    assert!(got.frames.is_empty() && got.dropped.is_empty());
    assert_eq!(r.stats().late, (pk.len() - 3) as u64);
    // A frame older than the oldest of a full window has no room: late.
    let mut r = Reassembler::new(DepayOptions {
        frames_in_progress: 2,
        ..DepayOptions::default()
    });
    receive(&mut r, &pk[..1], 20);
    receive(&mut r, &pk[..1], 30);
    let got = receive(&mut r, &pk[..1], 10);
    assert!(got.frames.is_empty() && got.dropped.is_empty());
    assert_eq!(r.stats().late, 1);
    // A third newer frame pushes the oldest out, incomplete.
    let got = receive(&mut r, &pk[..1], 40);
    assert_eq!(got.dropped.len(), 1);
    assert_eq!(got.dropped[0].timestamp, 20);
    // With one frame in progress, a new timestamp ends the previous frame.
    let mut r = Reassembler::new(DepayOptions {
        frames_in_progress: 1,
        ..DepayOptions::default()
    });
    receive(&mut r, &pk[..2], 1);
    let got = receive(&mut r, &pk, 2);
    assert_eq!(got.frames.len(), 1);
    assert_eq!(got.dropped[0].reason, DropReason::MissingEnd);
}

#[test]
fn a_sender_going_back_or_far_ahead_is_followed_at_once() {
    let pk = packets(Q75, &PayloadOptions::default(), 300);
    let mut r = fresh();
    for ts in [900_000, 903_000, 906_000] {
        assert_eq!(receive(&mut r, &pk, ts).frames.len(), 1);
    }
    // A seek 5 s back: the next frame plays, nothing is counted late.
    let got = receive(&mut r, &pk, 906_000 - 450_000);
    assert_eq!(got.frames.len(), 1);
    assert_eq!(r.stats().late, 0);
    // Packets of another stream or a bogus sender, far ahead, hold no slot for long: the
    // stream goes on, losing at most the frames in progress at each jump.
    let mut shown = 0;
    for (i, ts) in (0..10u32).map(|i| (i, 459_000 + 3000 * i)) {
        if i % 3 == 0 {
            receive(&mut r, &pk[..1], ts.wrapping_add(1 << 30));
        }
        shown += receive(&mut r, &pk, ts).frames.len();
    }
    assert_eq!(shown, 10);
}

#[test]
fn hostile_fragments_cost_bounded_memory() {
    let header = |offset: u32| {
        let mut p = Vec::new();
        MainHeader {
            type_specific: 0,
            fragment_offset: offset,
            kind: 1,
            q: 50,
            width8: 40,
            height8: 30,
        }
        .write(&mut p);
        p.push(0xAA);
        p
    };
    let mut r = fresh();
    // Far past the data received: loss, not reordering; nothing is zero-filled up to it.
    let got = receive_all(&mut r, &[(header(0), false), (header(0xFF_FF00), false)], 1);
    assert!(matches!(got.dropped[0].reason, DropReason::Lost { .. }));
    // Thousands of one-byte fragments in descending order: the frame gives up.
    let mut r = fresh();
    let many: Vec<_> = (1..5000u32).rev().map(|o| (header(2 * o), false)).collect();
    let got = receive_all(&mut r, &many, 1);
    assert_eq!(got.dropped.len(), 1);
    // A fragment starting where the data ends but running into one received past a gap.
    let mut r = fresh();
    let mut overlap = header(0);
    overlap.extend_from_slice(&[0xBB; 10]);
    let got = receive_all(&mut r, &[(header(5), false), (overlap, false)], 1);
    assert!(
        matches!(got.dropped[0].reason, DropReason::Overlap { .. }),
        "{:?}",
        got.dropped
    );
}

#[test]
fn late_and_duplicate_packets_are_told_apart() {
    let pk = packets(Q75, &PayloadOptions::default(), 300);
    let mut r = Reassembler::new(DepayOptions {
        frames_in_progress: 1,
        ..DepayOptions::default()
    });
    receive(&mut r, &pk[..3], 1);
    receive(&mut r, &pk, 2);
    // Frame 1 was dropped when 2 began: its packets are late.
    receive(&mut r, &pk[3..4], 1);
    assert_eq!((r.stats().late, r.stats().duplicates), (1, 0));
    // Frame 2 was output: its packets again are duplicates.
    receive(&mut r, &pk[3..4], 2);
    assert_eq!((r.stats().late, r.stats().duplicates), (1, 1));
    // The first packet of a frame with in-band tables, again after the marker packet.
    let opts = PayloadOptions {
        inband_q: 255,
        ..PayloadOptions::default()
    };
    let pk = packets(CUSTOM, &opts, 300);
    let mut again = pk.clone();
    let last = again.len() - 1;
    again.swap(0, last);
    again.push(pk[0].clone());
    let got = receive_all(&mut fresh(), &again, 5);
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
    assert_eq!(got.frames.len(), 1);
}

#[test]
fn timestamps_wrap_and_restart() {
    let pk = packets(Q75, &PayloadOptions::default(), 300);
    let mut r = fresh();
    let mut out = Vec::new();
    for ts in [u32::MAX - 3000, u32::MAX, 2999, 5999] {
        out.extend(
            receive(&mut r, &pk, ts)
                .frames
                .into_iter()
                .map(|f| f.timestamp),
        );
    }
    assert_eq!(out, [u32::MAX - 3000, u32::MAX, 2999, 5999]);
    // A sender that restarts with an earlier timestamp (more than 10 s back) is followed.
    let got = receive(&mut r, &pk, 5999u32.wrapping_sub(2_000_000));
    assert_eq!(got.frames.len(), 1);
    assert_eq!(r.stats().late, 0);
}

#[test]
fn static_q_tables_are_cached() {
    let opts = PayloadOptions {
        inband_q: 200,
        ..PayloadOptions::default()
    };
    let with_tables = packets(CUSTOM, &opts, 1400);
    let frame = prepare(CUSTOM, &opts).unwrap();
    let scan = scan_of(CUSTOM);
    let without: Vec<(Vec<u8>, bool)> = Packetizer::new(&frame, scan, false, 1400)
        .map(|f| {
            let mut out = Vec::new();
            f.write_headers(&frame, false, &mut out);
            out.extend_from_slice(&scan[f.data.clone()]);
            (out, f.marker)
        })
        .collect();
    assert_eq!(
        &without[0].0[8..12],
        &[0, 0, 0, 0],
        "a zero-length table header"
    );

    let mut r = fresh();
    let got = receive_all(&mut r, &without, 1);
    assert_eq!(got.dropped[0].reason, DropReason::NoTables(200));
    let first = receive(&mut r, &with_tables, 2).frames.remove(0);
    let cached = receive(&mut r, &without, 3).frames.remove(0);
    assert_eq!(first.jpeg, cached.jpeg);

    // Q 255 must always carry its tables.
    let mut q255 = without.clone();
    q255[0].0[5] = 255;
    let got = receive_all(&mut fresh(), &q255, 1);
    assert_eq!(got.dropped[0].reason, DropReason::EmptyDynamicTables);

    // Reordered: a frame without tables is complete before the older frame that brings
    // them; it waits for them, and both come out in order.
    let mut r = fresh();
    let mut got = receive(&mut r, &without, 20);
    assert!(got.frames.is_empty() && got.dropped.is_empty());
    let more = receive(&mut r, &with_tables, 10);
    got.frames.extend(more.frames);
    got.dropped.extend(more.dropped);
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
    assert_eq!(
        got.frames.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
        [10, 20]
    );
    assert_eq!(got.frames[1].jpeg, first.jpeg);
    // Its data arrived before its first packet: the header goes in front afterwards.
    let mut r = fresh();
    let mut late_start = with_tables.clone();
    late_start.rotate_left(1);
    let got = receive(&mut r, &late_start, 1);
    assert_eq!(got.frames[0].jpeg, first.jpeg);
}

#[test]
fn a_table_stream_shuffled_across_frames_keeps_its_cache() {
    // The tables go in band every 4th frame; packets move across frame boundaries.
    let opts = PayloadOptions {
        inband_q: 200,
        ..PayloadOptions::default()
    };
    let frame = prepare(CUSTOM, &opts).unwrap();
    let scan = scan_of(CUSTOM);
    let mut schedule = TableSchedule::default();
    let mut s = Vec::new();
    for f in 0..24u32 {
        let send = schedule.due(&frame, 4);
        for p in Packetizer::new(&frame, scan, send, 300) {
            let mut out = Vec::new();
            p.write_headers(&frame, send, &mut out);
            out.extend_from_slice(&scan[p.data.clone()]);
            s.push((out, p.marker, 3000 * f + 7));
        }
    }
    let per_frame = s.len() / 24;
    for f in 1..24 {
        s.swap(f * per_frame - 1, f * per_frame);
    }
    let mut r = fresh();
    let got = play(&mut r, &s);
    assert!(got.dropped.is_empty(), "{:?}", got.dropped);
    assert_eq!(got.frames.len(), 24);
    assert!(got.frames.windows(2).all(|w| w[0].jpeg == w[1].jpeg));
}

#[test]
fn salvage_keeps_whole_restart_intervals() {
    let pk = packets(DRI2, &PayloadOptions::default(), 40);
    assert!(pk.len() > 6);
    let mut damaged = pk.clone();
    damaged.remove(pk.len() - 3);
    let got = receive_all(&mut fresh(), &damaged, 1);
    assert!(got.frames.is_empty());

    let salvaging = || {
        Reassembler::new(DepayOptions {
            salvage: true,
            ..DepayOptions::default()
        })
    };
    let mut r = salvaging();
    // Decided when the next frame is complete: salvaged, and output before it.
    let mut got = receive(&mut r, &damaged, 1);
    assert!(got.frames.is_empty());
    got.frames.extend(receive(&mut r, &pk, 2).frames);
    assert_eq!(
        got.frames.iter().map(|f| f.timestamp).collect::<Vec<_>>(),
        [1, 2]
    );
    let f = &got.frames[0];
    assert!(f.salvaged);
    let original = scan_of(DRI2);
    let kept = scan_of(&f.jpeg);
    assert!(original.starts_with(kept) && kept.len() < original.len());
    // It ends where an interval ends: right before a restart marker of the original.
    assert_eq!(original[kept.len()], 0xFF);
    assert!((0xD0..=0xD7).contains(&original[kept.len() + 1]));
    // Salvage needs restart markers: without them the frame is still dropped.
    let mut plain = packets(Q75, &PayloadOptions::default(), 100);
    plain.remove(2);
    assert!(receive_all(&mut r, &plain, 3).frames.is_empty());
    // Reordered and damaged: the same cut as in order.
    let mut shuffled = damaged.clone();
    shuffled.swap(1, 3);
    shuffled.swap(0, 2);
    let got = receive_all(&mut salvaging(), &shuffled, 1);
    assert_eq!(got.frames[0].jpeg, f.jpeg);
    assert!(got.frames[0].salvaged);
}

#[test]
fn lab_packets_are_whole_jpegs() {
    let mut r = fresh();
    let got = r.push(&Packet {
        payload: JPEGENC,
        marker: false,
        timestamp: 1_700_000_000,
    });
    let header = got.whole_jpeg.expect("recognised");
    assert_eq!((header.width, header.height), (96, 64));
    let got = r.push(&Packet {
        payload: &[0xFF, 0xD8, 0xFF, 0xE0, 0, 2],
        marker: false,
        timestamp: 1,
    });
    assert!(got.whole_jpeg.is_none());
    assert!(matches!(got.dropped[0].reason, DropReason::LabJpeg(_)));
}

#[test]
fn the_lab_dialect_can_be_named_instead_of_told_per_packet() {
    let with = |lab| {
        Reassembler::new(DepayOptions {
            lab,
            ..DepayOptions::default()
        })
    };
    let lab_packet = Packet {
        payload: JPEGENC,
        marker: true,
        timestamp: 1,
    };
    // Auto and Always: a whole JPEG.
    for lab in [LabDialect::Auto, LabDialect::Always] {
        assert!(with(lab).push(&lab_packet).whole_jpeg.is_some(), "{lab:?}");
    }
    // Never: read as RFC 2435, whose header (offset 0xD8FFE0, type 0) cannot start a
    // frame: nothing comes out.
    let mut r = with(LabDialect::Never);
    let got = r.push(&lab_packet);
    assert!(got.whole_jpeg.is_none() && got.frames.is_empty());
    // Always: an RFC 2435 packet is not a JPEG, and says so.
    let pk = packets(Q75, &PayloadOptions::default(), 1400);
    let got = with(LabDialect::Always).push(&Packet {
        payload: &pk[0].0,
        marker: true,
        timestamp: 1,
    });
    assert!(matches!(got.dropped[0].reason, DropReason::LabJpeg(_)));
    // Auto and Never: it is a frame.
    for lab in [LabDialect::Auto, LabDialect::Never] {
        assert_eq!(
            receive_all(&mut with(lab), &pk, 1).frames.len(),
            1,
            "{lab:?}"
        );
    }
}

#[test]
fn garbage_packets_never_panic() {
    // Every prefix and single-byte corruption of real packets.
    let pk = packets(CUSTOM, &PayloadOptions::default(), 300);
    let mut r = fresh();
    for (i, (p, m)) in pk.iter().enumerate() {
        for cut in 0..p.len().min(200) {
            r.push(&Packet {
                payload: &p[..cut],
                marker: *m,
                timestamp: i as u32,
            });
        }
        for pos in 0..p.len().min(200) {
            let mut q = p.clone();
            q[pos] ^= 0xFF;
            let got = r.push(&Packet {
                payload: &q,
                marker: true,
                timestamp: pos as u32,
            });
            for f in got.frames {
                assert!(f.jpeg.starts_with(&[0xFF, 0xD8]));
            }
        }
    }
}

#[test]
fn payloads_in_parts_give_the_same_frames() {
    // A packet's payload can be split across memories anywhere, even inside the headers.
    for data in [CUSTOM, DRI2, THREE_TABLES] {
        let pk = packets(data, &PayloadOptions::default(), 300);
        let whole = receive(&mut fresh(), &pk, 9).frames.remove(0);
        for split in [1, 5, 9, 13, 100, 290] {
            let mut r = fresh();
            let mut out = None;
            for (payload, marker) in &pk {
                let cut = split.min(payload.len());
                let (a, b) = payload.split_at(cut);
                let (b1, b2) = b.split_at(b.len() / 2);
                let got = r.push_parts(&[a, b1, b2], *marker, 9);
                assert!(got.dropped.is_empty(), "split {split}: {:?}", got.dropped);
                out = out.or(got.frames.into_iter().next());
            }
            assert_eq!(out.unwrap().jpeg, whole.jpeg, "split at {split}");
        }
    }
}

#[test]
fn static_tables_are_resent_when_they_change_and_now_and_then() {
    let mut schedule = TableSchedule::default();
    let static_q = PayloadOptions {
        inband_q: 200,
        ..PayloadOptions::default()
    };
    let custom = prepare(CUSTOM, &static_q).unwrap();
    let three = prepare(THREE_TABLES, &static_q).unwrap();
    let sent: Vec<bool> = (0..10).map(|_| schedule.due(&custom, 4)).collect();
    assert_eq!(
        sent,
        [
            true, false, false, false, true, false, false, false, true, false
        ]
    );
    assert!(schedule.due(&three, 4), "new tables go at once");
    assert!(!schedule.due(&three, 4));
    // Q 255 always carries its tables; Q 1-99 never has any.
    let dynamic = prepare(CUSTOM, &PayloadOptions::default()).unwrap();
    assert!((0..3).all(|_| schedule.due(&dynamic, 4)));
    let q75 = prepare(Q75, &PayloadOptions::default()).unwrap();
    assert!(!schedule.due(&q75, 4));
}
