//! JPEG images stored back to back with nothing between them (what `multipartdemux`-less
//! camera dumps, `ffmpeg -f mjpeg` and `jpegenc ! filesink` produce).

use super::FrameError;
use crate::jpeg;

/// Length of the image starting at `pos`, found by walking its structure.
pub fn read_frame(data: &[u8], pos: usize) -> Result<usize, FrameError> {
    let rest = &data[pos..];
    if !rest.starts_with(&[0xFF, jpeg::markers::SOI]) {
        return Err(FrameError::NoSoi(super::hex_preview(
            &rest[..rest.len().min(2)],
        )));
    }
    Ok(jpeg::frame_length(rest)?)
}

/// Whether an image plausibly starts at `pos`: SOI followed by another marker.
pub fn looks_like_frame(data: &[u8], pos: usize) -> bool {
    data.get(pos..pos + 3) == Some(&[0xFF, jpeg::markers::SOI, 0xFF])
}

/// The first position at or after `from` where an image plausibly starts.
pub fn resync(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    memchr::memmem::find(rest, &[0xFF, jpeg::markers::SOI, 0xFF]).map(|i| from + i)
}
