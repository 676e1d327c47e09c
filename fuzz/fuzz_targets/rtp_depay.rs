//! Fuzzes the RFC 2435 depayloader with arbitrary packet sequences: no panic, and every
//! frame it outputs is a bounded, well-formed JPEG (SOI, a header that parses, EOI).

#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_media::jpeg;
use mjpeg_media::rfc2435::{DepayOptions, LabDialect, Packet, Reassembler};

fuzz_target!(|data: &[u8]| {
    let Some((&options, mut rest)) = data.split_first() else {
        return;
    };
    let mut reassembler = Reassembler::new(DepayOptions {
        salvage: options & 1 != 0,
        dimensions: (options & 2 != 0).then_some((4096, 2160)),
        frames_in_progress: usize::from(options >> 2 & 3) + 1,
        lab: match options >> 4 & 3 {
            1 => LabDialect::Never,
            2 => LabDialect::Always,
            _ => LabDialect::Auto,
        },
    });
    let mut timestamp = 0u32;
    let mut received_bytes = 0usize;
    // Each packet: a flags byte (marker, timestamp step from -3 to 4), a length byte, the
    // payload.
    while let [flags, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        // Steps back as well as forward: reordered frames.
        timestamp = timestamp.wrapping_add_signed(i32::from(flags >> 1 & 7) - 3);
        received_bytes += payload.len();
        let got = reassembler.push(&Packet {
            payload,
            marker: flags & 1 != 0,
            timestamp,
        });
        for frame in &got.frames {
            let j = &frame.jpeg;
            assert!(j.starts_with(&[0xFF, 0xD8]) && j.ends_with(&[0xFF, 0xD9]));
            // Header (at most 3 tables of 128 bytes plus fixed segments) and the data.
            assert!(
                j.len() <= received_bytes + 1024,
                "{} > {}",
                j.len(),
                received_bytes
            );
            let header = jpeg::parse_header(j).expect("the header it wrote parses");
            assert_eq!((header.width, header.height), (frame.width, frame.height));
        }
        for d in &got.dropped {
            assert!(!d.reason.to_string().is_empty());
        }
        if got.whole_jpeg.is_some() {
            assert!(payload.starts_with(&[0xFF, 0xD8, 0xFF]));
        }
    }
    let _ = reassembler.end_of_stream();
});
