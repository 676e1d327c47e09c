//! Fuzzes the `multipart/x-mixed-replace` reader: the first bytes choose the boundary
//! and how the rest is cut into pushes. Whatever arrives, memory stays within the limits,
//! every part handed out is a whole JPEG (SOI .. EOI) no larger than the limit, the counts
//! add up, and the same bytes cut differently give the same images.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mjpeg_media::mjpeg::multipart::{self, Limits, MultipartReader};

const LIMITS: Limits = Limits {
    max_part: 4096,
    max_headers: 256,
};

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    // A Content-Type from the data, then the body.
    let (content_type, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) if control & 1 == 1 => (
            String::from_utf8_lossy(&rest[..i]).into_owned(),
            &rest[i + 1..],
        ),
        _ => (
            "multipart/x-mixed-replace; boundary=frame".to_string(),
            rest,
        ),
    };
    let Ok(boundary) = multipart::boundary_from_content_type(&content_type) else {
        return;
    };
    let chunk = usize::from(control >> 1) + 1;
    let whole = read(&boundary, body, body.len().max(1));
    let cut = read(&boundary, body, chunk);
    // A part split across pushes reads as the same image (the reader may only differ in
    // what it reports as dropped garbage).
    assert_eq!(whole, cut, "chunk {chunk}");
});

fn read(boundary: &str, body: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut reader = MultipartReader::new(boundary, LIMITS);
    let mut jpegs = Vec::new();
    let mut errors = 0u64;
    for piece in body.chunks(chunk) {
        reader.push(piece);
        while let Some(part) = reader.next_part() {
            match part {
                Ok(jpeg) => {
                    assert!(jpeg.len() >= 4 && jpeg.len() <= LIMITS.max_part);
                    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
                    jpegs.push(jpeg);
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    errors += 1;
                }
            }
        }
        // Bounded: a part, its headers, a delimiter and one push at most.
        let bound = LIMITS.max_part + LIMITS.max_headers + boundary.len() + 4 + piece.len();
        assert!(
            reader.buffered() <= bound,
            "{} > {bound}",
            reader.buffered()
        );
    }
    assert_eq!(reader.parts(), jpegs.len() as u64);
    assert_eq!(reader.dropped(), errors);
    jpegs
}
