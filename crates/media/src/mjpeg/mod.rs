//! Motion-JPEG files: finding the frames in a byte buffer.
//!
//! Two framings are understood:
//! - [`Framing::Lab`]: the networking-lab `.Mjpeg` format, where each JPEG is preceded by
//!   its length as 5 ASCII decimal digits (see [`lab`]);
//! - [`Framing::Concatenated`]: JPEG images back to back, split by walking their marker
//!   segments and entropy-coded data (see [`concatenated`]).
//!
//! HTTP cameras send Motion-JPEG as a `multipart/x-mixed-replace` body: see [`multipart`].
//!
//! [`FrameIndex::build`] validates every frame once and records where each one is, so a
//! player can seek to any frame and know every frame's size before it plays it.

pub mod concatenated;
mod index;
pub mod lab;
pub mod multipart;
pub mod timing;

pub use index::{CorruptFrame, FrameError, FrameFormat, FrameIndex, IndexedFrame};
pub use timing::FrameRate;

/// How frames are laid out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Lab,
    Concatenated,
}

/// Why a file was not recognised as Motion-JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DetectError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "not a Motion-JPEG file: it starts with {0}, not 5 ASCII digits (lab .Mjpeg) \
         or FF D8 (JPEG)"
    )]
    Unrecognized(String),
}

/// Tells the framing from the first bytes: 5 ASCII digits mean lab, `FF D8` means
/// concatenated JPEG.
pub fn detect(data: &[u8]) -> Result<Framing, DetectError> {
    if data.is_empty() {
        Err(DetectError::Empty)
    } else if data.len() >= lab::PREFIX_LEN && lab::is_length_field(&data[..lab::PREFIX_LEN]) {
        Ok(Framing::Lab)
    } else if data.starts_with(&[0xFF, crate::jpeg::markers::SOI]) {
        Ok(Framing::Concatenated)
    } else {
        Err(DetectError::Unrecognized(hex_preview(data)))
    }
}

/// Up to the first 8 bytes of `data` in hex, for messages.
pub(crate) fn hex_preview(data: &[u8]) -> String {
    let shown: Vec<String> = data.iter().take(8).map(|b| format!("{b:02X}")).collect();
    let more = if data.len() > 8 { " ..." } else { "" };
    format!("{}{more}", shown.join(" "))
}

#[cfg(test)]
mod tests;
