//! Fuzzes the marker-level JPEG parsers: `frame_length`, `parse_header`, `segments`,
//! `parse_image`, the two scan-end searches and the Huffman re-encoder, checking the
//! invariants their documentation promises.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_media::jpeg::{self, FrameHeader, JpegError, markers, scan};
use mjpeg_media::mjpeg::FrameFormat;

fuzz_target!(|data: &[u8]| {
    let length = check_frame_length(data);
    let header_ok = check_parse_header(data);
    let segments_ok = check_segments(data);
    // Both walk the same header segments as `segments` does (parse_header stops at the
    // first scan, frame_length carries on through it), so neither can succeed where the
    // segment walk failed.
    if header_ok {
        assert!(
            segments_ok,
            "parse_header succeeded but segments() yielded an error"
        );
    }
    if length.is_some() {
        assert!(
            segments_ok,
            "frame_length succeeded but segments() yielded an error"
        );
    }
    check_scan_end(data);
    check_image_and_reencode(data);
});

/// `parse_image`: tables and scan inside the data; `reencode_scan` never panics, keeps
/// within its output bound, and leaves the output untouched when it fails.
fn check_image_and_reencode(data: &[u8]) {
    let Ok(image) = jpeg::parse_image(data) else {
        return;
    };
    assert!(image.scan_data.start <= image.scan_data.end && image.scan_data.end <= data.len());
    for table in image.quant_tables.iter().flatten() {
        assert!(matches!(table.raw().len(), 64 | 128));
    }
    let mut out = Vec::new();
    if jpeg::huffman::reencode_scan(data, &image, &mut out).is_ok() {
        assert!(out.len() <= jpeg::huffman::output_limit(image.scan_data.len()));
    } else {
        assert!(
            out.is_empty(),
            "a failed re-encoding leaves the output as it was"
        );
    }
}

/// `frame_length`: the image it finds is inside `data`, runs from SOI to EOI, and is found
/// again, with the same length, when the bytes after it are cut off.
fn check_frame_length(data: &[u8]) -> Option<usize> {
    match jpeg::frame_length(data) {
        Ok(n) => {
            assert!(
                n <= data.len(),
                "frame_length {n} > input length {}",
                data.len()
            );
            let image = &data[..n];
            assert!(
                image.starts_with(&[0xFF, markers::SOI]),
                "image does not start with SOI"
            );
            assert!(
                image.ends_with(&[0xFF, markers::EOI]),
                "image does not end with EOI"
            );
            assert!(n >= 4, "an image of {n} bytes cannot hold SOI and EOI");
            assert_eq!(
                jpeg::frame_length(image),
                Ok(n),
                "frame_length changes when the bytes after the image are cut off"
            );
            Some(n)
        }
        Err(e) => {
            // NoSoi exactly when the data does not start with FF D8.
            assert_eq!(
                matches!(e, JpegError::NoSoi),
                !data.starts_with(&[0xFF, markers::SOI]),
                "wrong NoSoi decision: {e:?}"
            );
            check_error(&e, data);
            None
        }
    }
}

/// `parse_header`: on success the header is one `parse_sof` can produce, and none of its
/// accessors (nor the caps summary built from it) panics.
fn check_parse_header(data: &[u8]) -> bool {
    match jpeg::parse_header(data) {
        Ok(header) => {
            assert!(data.starts_with(&[0xFF, markers::SOI]));
            check_header(&header);
            true
        }
        Err(e) => {
            check_error(&e, data);
            false
        }
    }
}

fn check_header(header: &FrameHeader) {
    assert!(
        header.width > 0 && header.height > 0,
        "zero size in {header:?}"
    );
    assert!(
        markers::is_sof(markers::SOF0 + header.sof_type),
        "sof_type {} is not a SOF marker",
        header.sof_type
    );
    let components = header.components();
    assert!(
        (1..=4).contains(&components.len()),
        "{} components",
        components.len()
    );
    for c in components {
        assert!(
            (1..=4).contains(&c.h) && (1..=4).contains(&c.v),
            "sampling factors {c:?}"
        );
    }
    let color_space = header.color_space();
    let _ = color_space.caps_name();
    let sampling = header.sampling();
    if let Some(s) = sampling {
        let _ = s.caps_name();
    }
    let (par_n, par_d) = header.pixel_aspect_ratio();
    assert!(par_n > 0 && par_d > 0, "pixel aspect ratio {par_n}:{par_d}");
    let format = FrameFormat::from(header);
    assert_eq!((format.width, format.height), (header.width, header.height));
    assert_eq!(format.color_space, color_space);
    assert_eq!(format.sampling, sampling);
    let (n, d) = format.pixel_aspect_ratio;
    assert!(n > 0 && d > 0, "reduced pixel aspect ratio {n}:{d}");
    // Reduction keeps the ratio.
    assert_eq!(
        u32::from(n) * u32::from(par_d),
        u32::from(d) * u32::from(par_n)
    );
}

/// Every error formats, and the position it names is inside (or at the end of) the data.
fn check_error(e: &JpegError, data: &[u8]) {
    assert!(!e.to_string().is_empty());
    let at = match *e {
        JpegError::NoSoi | JpegError::NoSof => None,
        JpegError::Truncated { at, .. }
        | JpegError::ExpectedMarker { at, .. }
        | JpegError::UnexpectedMarker { at, .. }
        | JpegError::BadSegmentLength { at, .. }
        | JpegError::BadSof { at, .. }
        | JpegError::BadDri { at }
        | JpegError::BadTable { at, .. }
        | JpegError::BadSos { at, .. } => Some(at),
    };
    if let Some(at) = at {
        assert!(at <= data.len(), "{e:?} names byte {at} of {}", data.len());
    }
}

/// `segments`: every segment lies inside `data`, starts with `FF <marker>`, carries a
/// length field, and follows the previous one; the walk stops after SOS or an error.
/// Returns whether no error was yielded.
fn check_segments(data: &[u8]) -> bool {
    let range = data.as_ptr_range();
    let mut prev_end = 2;
    let mut ok = true;
    let mut stopped = false;
    let mut count = 0usize;
    for item in jpeg::segments(data) {
        assert!(!stopped, "segments() yielded an item after SOS or an error");
        count += 1;
        // Each segment takes at least 4 bytes, so this bounds the walk.
        assert!(count <= data.len() / 4 + 1, "segments() does not terminate");
        match item {
            Ok(seg) => {
                assert!(
                    seg.offset + 4 + seg.payload.len() <= data.len(),
                    "segment {seg:?} ends past the input ({} bytes)",
                    data.len()
                );
                assert_eq!(seg.end(), seg.offset + 4 + seg.payload.len());
                let p = seg.payload.as_ptr_range();
                assert!(
                    range.start <= p.start && p.end <= range.end,
                    "payload not inside data"
                );
                assert_eq!(
                    p.start as usize - range.start as usize,
                    seg.offset + 4,
                    "payload does not follow the length field"
                );
                assert!(
                    seg.offset >= prev_end,
                    "segment at {} overlaps the previous one",
                    seg.offset
                );
                assert_eq!(data[seg.offset], 0xFF);
                assert_eq!(data[seg.offset + 1], seg.marker);
                assert!(
                    !markers::is_standalone(seg.marker),
                    "standalone marker {seg:?}"
                );
                let len = u16::from_be_bytes([data[seg.offset + 2], data[seg.offset + 3]]);
                assert_eq!(
                    usize::from(len),
                    seg.payload.len() + 2,
                    "length field mismatch"
                );
                prev_end = seg.end();
                stopped = seg.marker == markers::SOS;
            }
            Err(e) => {
                check_error(&e, data);
                ok = false;
                stopped = true;
            }
        }
    }
    ok
}

/// The reference definition from `jpeg::scan`'s documentation, byte by byte: the first
/// `FF` at or after `pos` followed by a byte other than `00`, `D0`..`D7` or `FF`.
fn scan_end_reference(data: &[u8], pos: usize) -> Option<usize> {
    (pos..data.len().saturating_sub(1))
        .find(|&i| data[i] == 0xFF && !matches!(data[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF))
}

/// `find_scan_end` (SSE2 on x86_64) agrees with `find_scan_end_scalar` and with the
/// byte-by-byte definition, at positions inside, at and past the end of the data.
fn check_scan_end(data: &[u8]) {
    let len = data.len();
    let mut positions = vec![
        0,
        1,
        2,
        15,
        16,
        17,
        len / 2,
        len.saturating_sub(1),
        len,
        len + 1,
        len + 100,
    ];
    // A few positions chosen by the input itself: its first bytes, read as offsets.
    for chunk in data.chunks(2).take(4) {
        let raw = chunk
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | usize::from(b));
        positions.push(raw % (len + 2));
    }
    // Any `usize` is a valid argument; the documentation asks for `None` once the data
    // has ended. The last 8 bytes, read as a (possibly huge) position.
    if len >= 8 {
        let raw = u64::from_le_bytes(data[len - 8..].try_into().unwrap()) as usize;
        positions.push(raw);
    }
    // Where scans really start: right after each SOS segment's header.
    positions.extend(
        jpeg::segments(data)
            .filter_map(Result::ok)
            .filter(|s| s.marker == markers::SOS)
            .map(|s| s.end()),
    );
    for p in positions {
        let scalar = scan::find_scan_end_scalar(data, p);
        let fast = scan::find_scan_end(data, p);
        assert_eq!(
            fast, scalar,
            "find_scan_end and find_scan_end_scalar disagree at pos {p}"
        );
        assert_eq!(
            scalar,
            scan_end_reference(data, p),
            "find_scan_end_scalar is wrong at pos {p}"
        );
    }
}
