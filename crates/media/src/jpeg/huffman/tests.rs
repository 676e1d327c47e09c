use std::io::Write;
use std::process::{Command, Stdio};

use super::*;
use crate::jpeg::markers::{DHT, SOS};
use crate::jpeg::{frame_length, parse_image, segments};

macro_rules! vector {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../../../../tests/vectors/", $name)).as_slice(),
        )
    };
}

/// Vectors whose Huffman tables are not the standard ones.
const OPTIMISED: [(&str, &[u8]); 3] = [
    vector!("420-optimized-huffman.jpg"),
    vector!("420-optimized-huffman-dri.jpg"),
    vector!("ffmpeg-420-optimal-huffman.jpg"),
];

/// Vectors with the standard tables.
/// ("unsupported" means by RFC 2435, not by re-encoding: 4:4:4, grayscale, and
/// ffmpeg's 4:2:2, whose chroma is 1x2 under a 2x2 luma.)
const STANDARD: [(&str, &[u8]); 11] = [
    vector!("420-q75.jpg"),
    vector!("422-q50.jpg"),
    vector!("420-dri2.jpg"),
    vector!("422-dri3.jpg"),
    vector!("420-odd-size.jpg"),
    vector!("jpegenc-420.jpg"),
    vector!("ffmpeg-420-combined-dqt.jpg"),
    vector!("420-16bit-tables.jpg"),
    vector!("unsupported-444.jpg"),
    vector!("unsupported-grayscale.jpg"),
    vector!("unsupported-ffmpeg-422.jpg"),
];

fn reencode_all(data: &[u8]) -> Vec<u8> {
    let image = parse_image(data).expect("test image parses");
    let mut out = Vec::new();
    reencode_scan(data, &image, &mut out).expect("re-encoding succeeds");
    out
}

/// The image up to its scan, with its DHT segments replaced by one standard DHT (luma
/// tables 0, chroma tables 1) and its SOS pointing at them, then `scan` and EOI.
fn rebuild(data: &[u8], scan: &[u8]) -> Vec<u8> {
    let image = parse_image(data).expect("test image parses");
    let mut out = vec![0xFF, 0xD8];
    for segment in segments(data) {
        let segment = segment.expect("test image parses");
        match segment.marker {
            DHT => {}
            SOS => {
                let tables = [
                    (0x00, standard::DC_LUMA),
                    (0x10, standard::AC_LUMA),
                    (0x01, standard::DC_CHROMA),
                    (0x11, standard::AC_CHROMA),
                ];
                let len: usize = tables.iter().map(|(_, t)| 17 + t.symbols.len()).sum();
                out.extend_from_slice(&[0xFF, DHT]);
                out.extend_from_slice(&(len as u16 + 2).to_be_bytes());
                for (class_id, t) in tables {
                    out.push(class_id);
                    out.extend_from_slice(t.counts);
                    out.extend_from_slice(t.symbols);
                }
                let components = image.scan.components();
                out.extend_from_slice(&[0xFF, SOS, 0, 6 + 2 * components.len() as u8]);
                out.push(components.len() as u8);
                for (i, c) in components.iter().enumerate() {
                    out.extend_from_slice(&[c.id, if i == 0 { 0x00 } else { 0x11 }]);
                }
                out.extend_from_slice(&[0, 63, 0]);
                break;
            }
            _ => out.extend_from_slice(&data[segment.offset..segment.end()]),
        }
    }
    out.extend_from_slice(scan);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// Runs a libjpeg-turbo tool with `input` on stdin; returns its stdout.
fn run_tool(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs `{tool}` (Debian: libjpeg-turbo-progs): {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().expect("tool runs");
    writer
        .join()
        .expect("writer thread")
        .expect("tool reads its input");
    assert!(
        output.status.success(),
        "`{tool} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn djpeg(jpeg: &[u8]) -> Vec<u8> {
    run_tool("djpeg", &["-ppm"], jpeg)
}

/// Re-encodes an image with non-standard tables and checks that the result is a valid
/// JPEG decoding to the same pixels, and that re-encoding that is the identity.
fn check_optimised(name: &str, data: &[u8]) {
    let image = parse_image(data).expect("test image parses");
    assert!(
        !uses_rfc2435_tables(&image),
        "{name}: tables are not standard"
    );
    let scan = reencode_all(data);
    let rebuilt = rebuild(data, &scan);
    assert_eq!(frame_length(&rebuilt), Ok(rebuilt.len()), "{name}");
    let again = parse_image(&rebuilt).expect("rebuilt image parses");
    assert!(uses_rfc2435_tables(&again), "{name}");
    assert_eq!(
        reencode_all(&rebuilt),
        scan,
        "{name}: second pass is the identity"
    );
    let (before, after) = (djpeg(data), djpeg(&rebuilt));
    assert!(before.len() > 100, "{name}: djpeg output");
    assert!(before == after, "{name}: decoded pixels differ");
}

#[test]
fn optimised_tables_are_reencoded_losslessly() {
    for (name, data) in OPTIMISED {
        check_optimised(name, data);
    }
}

#[test]
fn standard_tables_reencode_to_the_same_bytes() {
    for (name, data) in STANDARD {
        let image = parse_image(data).expect("vector parses");
        assert!(uses_rfc2435_tables(&image), "{name}");
        assert!(
            reencode_all(data) == data[image.scan_data.clone()],
            "{name}: output differs from the input scan"
        );
    }
}

#[test]
fn missing_tables_count_as_standard() {
    let (_, data) = vector!("420-q75.jpg");
    let mut stripped = vec![0xFF, 0xD8];
    let mut scan_start = 0;
    for segment in segments(data) {
        let segment = segment.expect("vector parses");
        if segment.marker != DHT {
            stripped.extend_from_slice(&data[segment.offset..segment.end()]);
        }
        if segment.marker == SOS {
            scan_start = segment.end();
        }
    }
    stripped.extend_from_slice(&data[scan_start..]);
    let image = parse_image(&stripped).expect("stripped image parses");
    assert!(
        image
            .dc_tables
            .iter()
            .chain(&image.ac_tables)
            .all(Option::is_none)
    );
    assert!(uses_rfc2435_tables(&image));
    assert!(reencode_all(&stripped) == stripped[image.scan_data.clone()]);
}

#[test]
fn non_standard_layouts_from_cjpeg() {
    // Pixels to compress: the decoded vectors (96x64 and 100x75).
    let sources = [
        djpeg(vector!("420-q75.jpg").1),
        djpeg(vector!("420-odd-size.jpg").1),
    ];
    let options: [&[&str]; 9] = [
        &["-sample", "1x1"],
        &["-sample", "2x1"],
        &["-sample", "1x2"],
        &["-sample", "4x1"],
        &["-sample", "4x2"],
        &["-sample", "2x2,1x2,1x1"],
        &["-sample", "1x1,2x2,1x1"],
        &["-grayscale"],
        &["-sample", "2x2", "-restart", "3B", "-quality", "95"],
    ];
    for source in &sources {
        for args in options {
            let args = [args, &["-optimize"]].concat();
            let data = run_tool("cjpeg", &args, source);
            let name = format!("cjpeg {}", args.join(" "));
            check_optimised(&name, &data);
        }
    }
}

/// A grayscale 8x8 baseline image with the given tables (none: standard) and scan.
fn gray8x8(tables: Option<(HuffmanTable<'_>, HuffmanTable<'_>)>, scan: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xDB, 0, 67, 0];
    out.extend_from_slice(&[1; 64]);
    out.extend_from_slice(&[0xFF, 0xC0, 0, 11, 8, 0, 8, 0, 8, 1, 1, 0x11, 0]);
    if let Some((dc, ac)) = tables {
        let len = 2 + 2 * 17 + dc.symbols.len() + ac.symbols.len();
        out.extend_from_slice(&[0xFF, DHT]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
        for (class_id, t) in [(0x00, dc), (0x10, ac)] {
            out.push(class_id);
            out.extend_from_slice(t.counts);
            out.extend_from_slice(t.symbols);
        }
    }
    out.extend_from_slice(&[0xFF, SOS, 0, 8, 1, 1, 0x00, 0, 63, 0]);
    out.extend_from_slice(scan);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

const ONE_CODE: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn reencode_gray(
    tables: Option<(HuffmanTable<'_>, HuffmanTable<'_>)>,
    scan: &[u8],
) -> Result<Vec<u8>, ReencodeError> {
    let data = gray8x8(tables, scan);
    let image = parse_image(&data).expect("test image parses");
    let mut out = Vec::new();
    reencode_scan(&data, &image, &mut out).map(|()| out)
}

#[test]
fn ff_bytes_in_the_output_are_stuffed() {
    // Input: DC size 11 coded "0", eleven 1-bits, EOB coded "0", padding 111:
    // 0111_1111 1111_0111 = 7F F7 (no FF). Standard: DC size 11 is 1111_1111_0,
    // then the magnitude, then EOB 1010: FF 7F FA, where FF must become FF 00.
    let dc = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[11],
    };
    let ac = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[0x00],
    };
    let scan = reencode_gray(Some((dc, ac)), &[0x7F, 0xF7]).expect("re-encodes");
    assert_eq!(scan, [0xFF, 0x00, 0x7F, 0xFA]);
    // Read back with the standard tables, stuffing included: the identity.
    assert_eq!(reencode_gray(None, &scan), Ok(scan.clone()));
    // And both decode to the same pixels.
    assert!(djpeg(&gray8x8(Some((dc, ac)), &[0x7F, 0xF7])) == djpeg(&gray8x8(None, &scan)));
}

#[test]
fn invalid_scans_are_errors() {
    let dc0 = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[0],
    };
    // A code that is not in the table: the table has only "0".
    let eob = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[0x00],
    };
    assert!(matches!(
        reencode_gray(Some((dc0, eob)), &[0x80, 0x00, 0x00]),
        Err(ReencodeError::BadCode { mcu: 0, .. })
    ));
    // DC size 12 does not exist in 8-bit JPEG.
    let dc12 = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[12],
    };
    assert!(matches!(
        reencode_gray(Some((dc12, eob)), &[0x00, 0x3F]),
        Err(ReencodeError::BadDcSize { size: 12, .. })
    ));
    // AC size 11 neither; nor run/size 0x10.
    for symbol in [0x0B, 0x10] {
        let ac = HuffmanTable {
            counts: &ONE_CODE,
            symbols: &[symbol],
        };
        assert_eq!(
            reencode_gray(Some((dc0, ac)), &[0x00, 0x00]),
            Err(ReencodeError::BadAcSymbol {
                symbol,
                at: 134,
                mcu: 0
            })
        );
    }
    // Run 15 size 1, four times: the fourth coefficient would be at 65.
    let f1 = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[0xF1],
    };
    assert!(matches!(
        reencode_gray(Some((dc0, f1)), &[0x00, 0x7F]),
        Err(ReencodeError::RunPastEnd { .. })
    ));
    // No data at all: the zeros fed after the end decode to symbols, but the error is
    // that the data ran out.
    assert!(matches!(
        reencode_gray(Some((dc0, f1)), &[]),
        Err(ReencodeError::Truncated { mcu: 0, total: 1 })
    ));
    // Extra data after the last MCU.
    let dc_eob = HuffmanTable {
        counts: &ONE_CODE,
        symbols: &[0x00],
    };
    assert_eq!(reencode_gray(Some((dc0, dc_eob)), &[0x3F]), Ok(vec![0x2B]));
    assert!(matches!(
        reencode_gray(Some((dc0, dc_eob)), &[0x3F, 0x12]),
        Err(ReencodeError::ExtraData { mcu: 0, .. })
    ));
    // A superfluous restart marker after the last MCU is dropped.
    assert_eq!(
        reencode_gray(Some((dc0, dc_eob)), &[0x3F, 0xFF, 0xD0]),
        Ok(vec![0x2B])
    );
}

#[test]
fn tables_are_checked() {
    for t in [
        standard::DC_LUMA,
        standard::AC_LUMA,
        standard::DC_CHROMA,
        standard::AC_CHROMA,
    ] {
        assert_eq!(check_table(&t), Ok(()));
    }
    let three_of_one_bit = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let bad = HuffmanTable {
        counts: &three_of_one_bit,
        symbols: &[0, 1, 2],
    };
    assert!(check_table(&bad).is_err());
    let short = HuffmanTable {
        counts: &standard::DC_LUMA_COUNTS,
        symbols: &[0, 1, 2],
    };
    assert!(check_table(&short).is_err());
    let too_long = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF];
    let full: Vec<u8> = (0..=255).collect();
    assert!(
        check_table(&HuffmanTable {
            counts: &too_long,
            symbols: &full[..255]
        })
        .is_ok()
    );

    // A bad table in an image is reported, not used.
    let (_, data) = vector!("420-optimized-huffman.jpg");
    let mut image = parse_image(data).expect("vector parses");
    let id = image.scan.components()[1].ac_table;
    image.ac_tables[usize::from(id)] = Some(bad);
    let mut out = vec![1, 2, 3];
    assert_eq!(
        reencode_scan(data, &image, &mut out),
        Err(ReencodeError::BadTable {
            class: "AC",
            id,
            reason: "the code lengths do not form a prefix code"
        })
    );
    assert_eq!(out, [1, 2, 3]);
}

#[test]
fn unsupported_images_are_refused() {
    for (name, data) in [
        vector!("unsupported-progressive.jpg"),
        vector!("unsupported-arithmetic.jpg"),
    ] {
        let image = parse_image(data).expect("vector parses");
        let mut out = Vec::new();
        assert!(
            matches!(
                reencode_scan(data, &image, &mut out),
                Err(ReencodeError::Unsupported(_))
            ),
            "{name}"
        );
        assert!(out.is_empty());
    }
    // A scan range outside the data.
    let (_, data) = vector!("420-q75.jpg");
    let image = parse_image(data).expect("vector parses");
    let mut out = Vec::new();
    assert!(matches!(
        reencode_scan(&data[..100], &image, &mut out),
        Err(ReencodeError::ScanOutOfRange { .. })
    ));
}

/// The positions of the restart markers in a scan.
fn restart_markers(scan: &[u8]) -> Vec<usize> {
    scan.windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] == 0xFF && (RST0..=RST7).contains(&w[1]))
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn restart_markers_are_checked_and_kept() {
    let (_, data) = vector!("420-optimized-huffman-dri.jpg");
    let image = parse_image(data).expect("vector parses");
    let scan = &data[image.scan_data.clone()];
    let markers = restart_markers(scan);
    // 96x64 in 4:2:0 is 6x4 MCUs, one per interval.
    assert_eq!(markers.len(), 23);
    let out = reencode_all(data);
    let codes = |s: &[u8]| {
        restart_markers(s)
            .iter()
            .map(|&i| s[i + 1])
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(&out), codes(scan));

    // Out of sequence.
    let mut wrong = data.to_vec();
    wrong[image.scan_data.start + markers[2] + 1] = RST0 + 5;
    let image2 = parse_image(&wrong).expect("still parses");
    let mut out = Vec::new();
    assert_eq!(
        reencode_scan(&wrong, &image2, &mut out),
        Err(ReencodeError::WrongRestart {
            expected: 2,
            found: RST0 + 5,
            at: image.scan_data.start + markers[2],
            mcu: 2
        })
    );
    // Missing: the next interval's data follows directly.
    let at = image.scan_data.start + markers[0];
    let missing = [&data[..at], &data[at + 2..]].concat();
    let image3 = parse_image(&missing).expect("still parses");
    assert_eq!(
        reencode_scan(&missing, &image3, &mut out),
        Err(ReencodeError::ExtraData {
            at,
            mcu: 0,
            expected: "a restart marker"
        })
    );
    assert!(out.is_empty());
}

#[test]
fn truncated_scans_are_errors() {
    let (_, data) = vector!("420-optimized-huffman.jpg");
    let image = parse_image(data).expect("vector parses");
    let half = (image.scan_data.start + image.scan_data.end) / 2;
    let cut = [&data[..half], &[0xFF, 0xD9]].concat();
    let image = parse_image(&cut).expect("still parses");
    let mut out = Vec::new();
    assert!(matches!(
        reencode_scan(&cut, &image, &mut out),
        Err(ReencodeError::Truncated { total: 24, .. })
    ));
}

/// A small deterministic generator (xorshift), so failures reproduce.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Re-encodes a damaged image: Ok or Err, never a panic; `out` untouched on error and
/// bounded on success. Returns whether it succeeded (None: the image no longer parses).
fn reencode_damaged(data: &[u8]) -> Option<bool> {
    let image = parse_image(data).ok()?;
    let mut out = vec![0xAA; 3];
    let ok = reencode_scan(data, &image, &mut out).is_ok();
    if ok {
        assert!(out.len() - 3 <= output_limit(image.scan_data.len()));
    } else {
        assert_eq!(out, [0xAA; 3]);
    }
    Some(ok)
}

#[test]
fn damaged_scans_never_panic() {
    let mut errors = 0;
    let mut state = 0x1234_5678_9ABC_DEF1;
    for (_, data) in OPTIMISED {
        let scan = parse_image(data).expect("vector parses").scan_data;
        for i in scan.clone() {
            let mut flipped = data.to_vec();
            flipped[i] ^= 1 << (i % 8);
            let mut ff = data.to_vec();
            ff[i] = 0xFF;
            let mut zero = data.to_vec();
            zero[i] = 0x00;
            let restart = [&data[..i], &[0xFF, RST0 + (i % 8) as u8], &data[i..]].concat();
            let trimmed = [&data[..i], &[0xFF, 0xD9]].concat();
            let dropped = [&data[..i], &data[i + 1..]].concat();
            for damaged in [flipped, ff, zero, restart, trimmed, dropped] {
                errors += usize::from(reencode_damaged(&damaged) == Some(false));
            }
        }
        // Random scan data after a valid header.
        for _ in 0..300 {
            let len = (xorshift(&mut state) % 3000) as usize;
            let noise: Vec<u8> = (0..len).map(|_| xorshift(&mut state) as u8).collect();
            let damaged = [&data[..scan.start], &noise, &[0xFF, 0xD9]].concat();
            errors += usize::from(reencode_damaged(&damaged) == Some(false));
        }
    }
    assert!(errors > 1000, "only {errors} damaged images were refused");
}
