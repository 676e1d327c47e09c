//! The networking-lab `.Mjpeg` framing: per frame, the JPEG's length as exactly 5 ASCII
//! decimal digits (zero padded), then the JPEG. No file header, no frame rate.

use super::FrameError;
use crate::jpeg;

/// Bytes in the length prefix.
pub const PREFIX_LEN: usize = 5;
/// The largest frame the 5-digit prefix can describe.
pub const MAX_FRAME_LEN: usize = 99_999;

/// Where one frame's JPEG is and where the next frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabFrame {
    pub jpeg_offset: usize,
    pub jpeg_len: usize,
    pub next: usize,
}

pub fn is_length_field(bytes: &[u8]) -> bool {
    bytes.len() == PREFIX_LEN && bytes.iter().all(u8::is_ascii_digit)
}

/// Reads the frame whose length prefix starts at `pos`. Checks that the declared bytes
/// are there, start with SOI and end with EOI (padding after EOI is trimmed).
pub fn read_frame(data: &[u8], pos: usize) -> Result<LabFrame, FrameError> {
    let left = data.len() - pos;
    let Some(field) = data.get(pos..pos + PREFIX_LEN) else {
        return Err(FrameError::TruncatedLengthField(left));
    };
    if !is_length_field(field) {
        return Err(FrameError::BadLengthField(field.escape_ascii().to_string()));
    }
    let len = field
        .iter()
        .fold(0usize, |acc, d| acc * 10 + usize::from(d - b'0'));
    if len == 0 {
        return Err(FrameError::ZeroLength);
    }
    let jpeg_offset = pos + PREFIX_LEN;
    let Some(jpeg) = data.get(jpeg_offset..jpeg_offset + len) else {
        return Err(FrameError::PastEnd {
            len,
            left: left - PREFIX_LEN,
        });
    };
    if !jpeg.starts_with(&[0xFF, jpeg::markers::SOI]) {
        return Err(FrameError::NoSoi(super::hex_preview(
            &jpeg[..jpeg.len().min(2)],
        )));
    }
    let jpeg_len = if jpeg.ends_with(&[0xFF, jpeg::markers::EOI]) {
        len
    } else {
        // Not the common case: find the real end and accept only padding after it.
        let end = jpeg::frame_length(jpeg).map_err(|e| FrameError::LengthMismatch {
            len,
            detail: format!("is incomplete: {e}"),
        })?;
        if !jpeg[end..].iter().all(|&b| b == 0x00 || b == 0xFF) {
            return Err(FrameError::LengthMismatch {
                len,
                detail: format!("ends after {end} bytes, followed by other data"),
            });
        }
        end
    };
    Ok(LabFrame {
        jpeg_offset,
        jpeg_len,
        next: jpeg_offset + len,
    })
}

/// Whether a frame plausibly starts at `pos`: a length field followed by SOI.
pub fn looks_like_frame(data: &[u8], pos: usize) -> bool {
    data.get(pos..pos + PREFIX_LEN).is_some_and(is_length_field)
        && data.get(pos + PREFIX_LEN..pos + PREFIX_LEN + 2) == Some(&[0xFF, jpeg::markers::SOI])
}

/// The first position at or after `from` where a frame plausibly starts.
pub fn resync(data: &[u8], from: usize) -> Option<usize> {
    let finder = memchr::memmem::Finder::new(&[0xFF, jpeg::markers::SOI]);
    let mut search = from + PREFIX_LEN;
    while search < data.len() {
        let soi = search + finder.find(&data[search..])?;
        let start = soi - PREFIX_LEN;
        if looks_like_frame(data, start) {
            return Some(start);
        }
        search = soi + 1;
    }
    None
}

/// Appends one frame in lab framing to `out`.
pub fn write_frame(out: &mut Vec<u8>, jpeg: &[u8]) -> Result<(), FrameError> {
    if jpeg.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLargeForLab(jpeg.len()));
    }
    out.extend_from_slice(format!("{:05}", jpeg.len()).as_bytes());
    out.extend_from_slice(jpeg);
    Ok(())
}
