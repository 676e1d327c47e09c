//! Fuzzes Motion-JPEG framing detection and `FrameIndex::build` in both framings, strict
//! and skipping corrupt frames, checking what the index promises about its frames.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_media::jpeg::{self, markers};
use mjpeg_media::mjpeg::{
    self, CorruptFrame, DetectError, FrameFormat, FrameIndex, Framing, IndexedFrame, lab,
};

fuzz_target!(|data: &[u8]| {
    check_detect(data);
    for framing in [Framing::Lab, Framing::Concatenated] {
        let strict = FrameIndex::build(data, framing, false);
        let skipping = FrameIndex::build(data, framing, true);
        check_index(data, framing, false, &strict);
        check_index(data, framing, true, &skipping);
        check_strict_is_prefix_of_skipping(&strict, &skipping);
        if framing == Framing::Concatenated {
            check_lab_round_trip(data, &strict);
        }
    }
});

/// `detect`: empty, 5 ASCII digits (lab), `FF D8` (concatenated) or unrecognised.
fn check_detect(data: &[u8]) {
    let is_lab =
        data.len() >= lab::PREFIX_LEN && data[..lab::PREFIX_LEN].iter().all(u8::is_ascii_digit);
    let is_jpeg = data.starts_with(&[0xFF, markers::SOI]);
    match mjpeg::detect(data) {
        Ok(Framing::Lab) => assert!(is_lab),
        Ok(Framing::Concatenated) => assert!(is_jpeg && !is_lab),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                DetectError::Empty => assert!(data.is_empty()),
                DetectError::Unrecognized(_) => assert!(!data.is_empty() && !is_lab && !is_jpeg),
            }
        }
    }
}

fn check_index(data: &[u8], framing: Framing, skip_corrupt: bool, index: &FrameIndex) {
    let frames = index.frames();
    assert_eq!(index.len(), frames.len());
    assert_eq!(index.is_empty(), frames.is_empty());
    assert_eq!(index.get(frames.len()), None);

    // Frames: inside the data, in order, not overlapping, each a valid JPEG.
    let mut prev_end = 0usize;
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(index.get(i), Some(frame));
        let range = frame.range();
        assert!(
            range.start <= range.end && range.end <= data.len(),
            "frame {i} {range:?} is not inside the {}-byte input",
            data.len()
        );
        assert!(
            range.start >= prev_end,
            "frame {i} {range:?} starts before the previous frame ends ({prev_end})"
        );
        prev_end = range.end;
        let bytes = &data[range.clone()];
        assert_eq!(bytes.len(), frame.len as usize);
        assert!(
            bytes.starts_with(&[0xFF, markers::SOI]),
            "frame {i} does not start with SOI"
        );
        assert!(
            bytes.ends_with(&[0xFF, markers::EOI]),
            "frame {i} does not end with EOI"
        );
        let header = jpeg::parse_header(bytes)
            .unwrap_or_else(|e| panic!("frame {i} {range:?}: parse_header fails: {e}"));
        assert_eq!(
            frame.format,
            FrameFormat::from(&header),
            "frame {i}: format differs"
        );
        match framing {
            Framing::Concatenated => assert_eq!(
                jpeg::frame_length(bytes),
                Ok(bytes.len()),
                "frame {i} {range:?}: frame_length disagrees with the index"
            ),
            Framing::Lab => {
                // The frame follows its 5-digit length field, which covers it (the field
                // may also count padding after EOI).
                let field = &data[range.start - lab::PREFIX_LEN..range.start];
                assert!(
                    lab::is_length_field(field),
                    "frame {i} has no length field before it"
                );
                let declared = std::str::from_utf8(field)
                    .unwrap()
                    .parse::<usize>()
                    .unwrap();
                assert!(
                    declared >= bytes.len(),
                    "frame {i}: longer than its length field"
                );
            }
        }
    }

    if skip_corrupt {
        assert!(
            index.error().is_none(),
            "skip mode stopped at {:?}",
            index.error()
        );
        let total = (frames.len() + index.skipped().len()) as u64;
        let mut prev: Option<&CorruptFrame> = None;
        for corrupt in index.skipped() {
            check_corrupt(data, corrupt);
            assert!(
                corrupt.number < total,
                "{corrupt:?} numbered past {total} frames"
            );
            if let Some(p) = prev {
                assert!(
                    corrupt.number > p.number && corrupt.offset > p.offset,
                    "{p:?} then {corrupt:?}"
                );
            }
            prev = Some(corrupt);
        }
    } else {
        assert!(
            index.skipped().is_empty(),
            "strict mode skipped {:?}",
            index.skipped()
        );
        // Strict mode reads frames back to back from the start of the data.
        let mut next = 0usize;
        for frame in frames {
            match framing {
                Framing::Concatenated => {
                    assert_eq!(frame.offset as usize, next, "gap before {frame:?}");
                    next = frame.range().end;
                }
                Framing::Lab => {
                    assert_eq!(
                        frame.offset as usize,
                        next + lab::PREFIX_LEN,
                        "gap before {frame:?}"
                    );
                    next = lab_frame_end(data, frame);
                }
            }
        }
        match index.error() {
            Some(corrupt) => {
                check_corrupt(data, corrupt);
                assert_eq!(corrupt.number, frames.len() as u64, "{corrupt:?}");
                assert_eq!(
                    corrupt.offset as usize, next,
                    "{corrupt:?} is not where the frames end"
                );
            }
            None => assert_eq!(
                next,
                data.len(),
                "strict mode stopped early without an error"
            ),
        }
    }
}

/// Where the next lab frame starts: after the length field's declared bytes.
fn lab_frame_end(data: &[u8], frame: &IndexedFrame) -> usize {
    let start = frame.offset as usize;
    let field = &data[start - lab::PREFIX_LEN..start];
    start
        + std::str::from_utf8(field)
            .unwrap()
            .parse::<usize>()
            .unwrap()
}

fn check_corrupt(data: &[u8], corrupt: &CorruptFrame) {
    assert!(
        (corrupt.offset as usize) < data.len(),
        "{corrupt:?} is past the {}-byte input",
        data.len()
    );
    let text = corrupt.to_string();
    let expected = format!(
        "frame {} at byte offset {}: ",
        corrupt.number, corrupt.offset
    );
    assert!(text.starts_with(&expected), "{text:?}");
    assert!(text.len() > expected.len(), "{text:?}");
}

/// Until the first corrupt frame both modes do the same, so the strict index is the
/// start of the skipping one, and its error is the first frame the skipping one skipped.
fn check_strict_is_prefix_of_skipping(strict: &FrameIndex, skipping: &FrameIndex) {
    let n = strict.len();
    assert!(skipping.len() >= n);
    assert_eq!(strict.frames(), &skipping.frames()[..n]);
    match strict.error() {
        Some(e) => assert_eq!(skipping.skipped().first(), Some(e)),
        None => assert!(skipping.skipped().is_empty() && skipping.len() == n),
    }
}

/// Writing the frames of a concatenated file in lab framing gives a lab file with the
/// same frames and no error.
fn check_lab_round_trip(data: &[u8], index: &FrameIndex) {
    let mut out = Vec::new();
    let mut frames = Vec::new();
    for frame in index.frames() {
        let bytes = &data[frame.range()];
        match lab::write_frame(&mut out, bytes) {
            Ok(()) => frames.push(bytes),
            Err(_) => {
                assert!(bytes.len() > lab::MAX_FRAME_LEN);
                break;
            }
        }
    }
    let relabelled = FrameIndex::build(&out, Framing::Lab, false);
    assert!(relabelled.error().is_none(), "{:?}", relabelled.error());
    assert_eq!(relabelled.len(), frames.len());
    for (frame, original) in relabelled.frames().iter().zip(frames) {
        assert_eq!(&out[frame.range()], original);
    }
}
