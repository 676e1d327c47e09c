use super::*;
use crate::jpeg::testdata::JpegBuilder;

fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut b = JpegBuilder::yuv420(320, 240);
            b.scan = vec![i as u8; 10 + i];
            b.build()
        })
        .collect()
}

fn lab_file(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        lab::write_frame(&mut out, f).unwrap();
    }
    out
}

/// Byte offset where each frame's length prefix starts.
fn lab_offsets(frames: &[Vec<u8>]) -> Vec<usize> {
    frames
        .iter()
        .scan(0, |pos, f| {
            let at = *pos;
            *pos += 5 + f.len();
            Some(at)
        })
        .collect()
}

fn bytes_of<'a>(data: &'a [u8], index: &FrameIndex) -> Vec<&'a [u8]> {
    index.frames().iter().map(|f| &data[f.range()]).collect()
}

#[test]
fn detects_framing_from_the_first_bytes() {
    let f = frames(1);
    assert_eq!(detect(&lab_file(&f)), Ok(Framing::Lab));
    assert_eq!(detect(&f[0]), Ok(Framing::Concatenated));
    assert_eq!(detect(b""), Err(DetectError::Empty));
    assert_eq!(
        detect(b"RIFF\0\0\0\0WAVEfmt "),
        Err(DetectError::Unrecognized(
            "52 49 46 46 00 00 00 00 ...".into()
        ))
    );
    // Four digits are not a length field.
    assert!(detect(b"0001").is_err());
}

#[test]
fn lab_file_is_indexed_frame_by_frame() {
    let f = frames(5);
    let data = lab_file(&f);
    assert_eq!(&data[..5], format!("{:05}", f[0].len()).as_bytes());
    let index = FrameIndex::build(&data, Framing::Lab, false);
    assert_eq!(index.len(), 5);
    assert!(index.error().is_none() && index.skipped().is_empty());
    assert_eq!(
        bytes_of(&data, &index),
        f.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    let first = index.get(0).unwrap();
    assert_eq!(first.offset, 5);
    assert_eq!((first.format.width, first.format.height), (320, 240));
}

#[test]
fn concatenated_file_is_indexed_frame_by_frame() {
    let f = frames(4);
    let data = f.concat();
    let index = FrameIndex::build(&data, Framing::Concatenated, false);
    assert_eq!(
        bytes_of(&data, &index),
        f.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
}

#[test]
fn size_changes_are_visible_per_frame() {
    let small = JpegBuilder::yuv420(160, 120).build();
    let big = JpegBuilder::yuv420(640, 480).build();
    let data = lab_file(&[small.clone(), big, small]);
    let index = FrameIndex::build(&data, Framing::Lab, false);
    let sizes: Vec<_> = index
        .frames()
        .iter()
        .map(|f| (f.format.width, f.format.height))
        .collect();
    assert_eq!(sizes, [(160, 120), (640, 480), (160, 120)]);
}

/// Builds a lab file of 4 frames with frame 2 damaged by `damage`, and checks the strict
/// error and the skip-mode result.
fn check_lab_damage(
    damage: impl Fn(&mut Vec<u8>, usize),
    expected: FrameError,
    kept_in_skip_mode: usize,
) {
    let f = frames(4);
    let mut data = lab_file(&f);
    let at = lab_offsets(&f)[2];
    damage(&mut data, at);

    let strict = FrameIndex::build(&data, Framing::Lab, false);
    assert_eq!(strict.len(), 2, "frames before the damage stay usable");
    let err = strict.error().expect("an error");
    assert_eq!((err.number, err.offset), (2, at as u64));
    assert_eq!(err.error, expected);

    let skip = FrameIndex::build(&data, Framing::Lab, true);
    assert!(skip.error().is_none());
    assert_eq!(skip.skipped().len(), 1);
    assert_eq!(skip.skipped()[0].error, expected);
    assert_eq!(skip.len(), kept_in_skip_mode);
    // No garbage: every kept frame is one of the originals, in order.
    let kept = bytes_of(&data, &skip);
    assert_eq!(kept[..2], [&f[0][..], &f[1][..]]);
    if kept_in_skip_mode == 3 {
        assert_eq!(kept[2], &f[3][..]);
    }
}

#[test]
fn lab_length_field_not_digits() {
    check_lab_damage(
        |d, at| d[at + 2] = b'x',
        FrameError::BadLengthField({
            let mut field = format!("{:05}", frames(4)[2].len()).into_bytes();
            field[2] = b'x';
            String::from_utf8(field).unwrap()
        }),
        3,
    );
}

#[test]
fn lab_frame_without_soi() {
    check_lab_damage(
        |d, at| d[at + 5..at + 7].copy_from_slice(&[0x12, 0x34]),
        FrameError::NoSoi("12 34".into()),
        3,
    );
}

#[test]
fn lab_zero_length() {
    check_lab_damage(
        |d, at| {
            d.splice(at..at, *b"00000");
        },
        FrameError::ZeroLength,
        // The zero-length entry is dropped and the frame after it is intact.
        4,
    );
}

#[test]
fn lab_length_too_large_for_the_jpeg() {
    let len = frames(4)[2].len();
    check_lab_damage(
        move |d, at| d[at..at + 5].copy_from_slice(format!("{:05}", len + 7).as_bytes()),
        FrameError::LengthMismatch {
            len: len + 7,
            detail: format!("ends after {len} bytes, followed by other data"),
        },
        3,
    );
}

#[test]
fn lab_padding_after_eoi_is_trimmed() {
    let f = frames(2);
    let mut data = Vec::new();
    lab::write_frame(&mut data, &[f[0].clone(), vec![0, 0, 0]].concat()).unwrap();
    lab::write_frame(&mut data, &f[1]).unwrap();
    let index = FrameIndex::build(&data, Framing::Lab, false);
    assert!(index.error().is_none());
    assert_eq!(bytes_of(&data, &index), [&f[0][..], &f[1][..]]);
}

#[test]
fn lab_truncated_last_frame() {
    let f = frames(3);
    let mut data = lab_file(&f);
    data.truncate(data.len() - 10);
    let strict = FrameIndex::build(&data, Framing::Lab, false);
    assert_eq!(strict.len(), 2);
    let err = strict.error().unwrap();
    assert_eq!(err.number, 2);
    assert_eq!(
        err.error,
        FrameError::PastEnd {
            len: f[2].len(),
            left: f[2].len() - 10
        }
    );
    let skip = FrameIndex::build(&data, Framing::Lab, true);
    assert_eq!((skip.len(), skip.skipped().len()), (2, 1));

    // Cut inside the length field.
    let mut data = lab_file(&f);
    data.truncate(lab_offsets(&f)[2] + 3);
    let strict = FrameIndex::build(&data, Framing::Lab, false);
    assert_eq!(
        strict.error().unwrap().error,
        FrameError::TruncatedLengthField(3)
    );
}

#[test]
fn lab_frame_with_broken_jpeg_inside() {
    // Framing intact, but the JPEG has no SOF: the frame is skipped and the next frame
    // is found through the length field, without a search.
    let mut no_sof = JpegBuilder::yuv420(32, 32);
    no_sof.segments.retain(|(m, _)| *m != 0xC0);
    let f = frames(2);
    let data = lab_file(&[f[0].clone(), no_sof.build(), f[1].clone()]);
    let skip = FrameIndex::build(&data, Framing::Lab, true);
    assert_eq!(bytes_of(&data, &skip), [&f[0][..], &f[1][..]]);
    assert_eq!(
        skip.skipped()[0].error,
        FrameError::Jpeg(crate::jpeg::JpegError::NoSof)
    );
}

#[test]
fn concatenated_garbage_and_truncation() {
    let f = frames(3);
    let mut data = f[0].clone();
    data.extend_from_slice(b"garbage!");
    data.extend_from_slice(&f[1]);
    data.extend_from_slice(&f[2][..f[2].len() - 4]);

    let strict = FrameIndex::build(&data, Framing::Concatenated, false);
    assert_eq!(strict.len(), 1);
    let err = strict.error().unwrap();
    assert_eq!((err.number, err.offset), (1, f[0].len() as u64));
    assert_eq!(err.error, FrameError::NoSoi("67 61".into()));

    let skip = FrameIndex::build(&data, Framing::Concatenated, true);
    assert_eq!(bytes_of(&data, &skip), [&f[0][..], &f[1][..]]);
    assert_eq!(skip.skipped().len(), 2);
    assert!(matches!(
        skip.skipped()[1].error,
        FrameError::Jpeg(crate::jpeg::JpegError::Truncated { .. })
    ));
}

#[test]
fn errors_name_frame_and_offset() {
    let e = CorruptFrame {
        number: 7,
        offset: 1234,
        error: FrameError::ZeroLength,
    };
    assert_eq!(
        e.to_string(),
        "frame 7 at byte offset 1234: the length field is zero"
    );
}

#[test]
fn lab_writer_refuses_oversized_frames() {
    let mut out = Vec::new();
    assert_eq!(
        lab::write_frame(&mut out, &vec![0; 100_000]),
        Err(FrameError::TooLargeForLab(100_000))
    );
    assert!(out.is_empty());
}

#[test]
fn resync_finds_the_next_plausible_frame() {
    let f = frames(2);
    let data = lab_file(&f);
    let second = lab_offsets(&f)[1];
    assert_eq!(lab::resync(&data, 1), Some(second));
    assert_eq!(lab::resync(&data, second), Some(second));
    assert_eq!(lab::resync(&data, second + 1), None);
    let cat = f.concat();
    assert_eq!(concatenated::resync(&cat, 1), Some(f[0].len()));
}

#[test]
fn every_truncation_and_every_corrupted_byte_is_handled() {
    // Exhaustive robustness: no panic, and every kept frame is an original frame.
    let f = frames(3);
    for (framing, data) in [
        (Framing::Lab, lab_file(&f)),
        (Framing::Concatenated, f.concat()),
    ] {
        for cut in 0..data.len() {
            for skip in [false, true] {
                let index = FrameIndex::build(&data[..cut], framing, skip);
                for frame in bytes_of(&data, &index) {
                    assert!(f.iter().any(|o| o == frame), "{framing:?} cut {cut}");
                }
            }
        }
        for pos in 0..data.len() {
            for value in [0x00, 0xFF, 0xD8, 0xD9, b'9'] {
                let mut d = data.clone();
                d[pos] = value;
                for skip in [false, true] {
                    let index = FrameIndex::build(&d, framing, skip);
                    for frame in index.frames() {
                        // Lab framing trusts the length field for the scan (a flipped bit in
                        // entropy-coded data is undetectable without decoding anyway); the
                        // frame is still whole: SOI, a valid header, EOI.
                        let jpeg = &d[frame.range()];
                        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
                        assert!(crate::jpeg::parse_header(jpeg).is_ok());
                        if framing == Framing::Concatenated {
                            assert_eq!(crate::jpeg::frame_length(jpeg), Ok(jpeg.len()));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn frame_times_are_exact_and_invertible() {
    let r = FrameRate::new(20, 1).unwrap();
    assert_eq!(r.time_of(0), 0);
    assert_eq!(r.time_of(1), 50_000_000);
    assert_eq!(r.time_of(200), 10_000_000_000);
    assert_eq!(r.duration_of(3), 50_000_000);
    assert_eq!(r.frame_at(0), 0);
    assert_eq!(r.frame_at(49_999_999), 0);
    assert_eq!(r.frame_at(50_000_000), 1);

    // NTSC: durations alternate 33366666/33366667 and never drift.
    let ntsc = FrameRate::new(30000, 1001).unwrap();
    assert_eq!(ntsc.time_of(30000), 1001 * 1_000_000_000);
    for n in [0u64, 1, 2, 3, 1000, 29_999, 30_000, 1 << 35] {
        assert_eq!(ntsc.frame_at(ntsc.time_of(n)), n, "frame {n}");
        assert_eq!(
            ntsc.frame_at(ntsc.time_of(n + 1) - 1),
            n,
            "end of frame {n}"
        );
    }
    let odd = FrameRate::new(7, 3).unwrap();
    for n in 0..1000 {
        assert_eq!(odd.frame_at(odd.time_of(n)), n);
    }
    assert!(FrameRate::new(0, 1).is_none() && FrameRate::new(1, 0).is_none());
    // Saturates instead of overflowing.
    assert_eq!(FrameRate::new(1, 1000).unwrap().time_of(u64::MAX), u64::MAX);
}
