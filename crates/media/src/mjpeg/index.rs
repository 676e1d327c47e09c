use std::fmt;

use super::{Framing, concatenated, lab};
use crate::jpeg::{self, ColorSpace, FrameHeader, JpegError, Sampling};

/// Why one frame could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the length field \"{0}\" is not 5 ASCII decimal digits")]
    BadLengthField(String),
    #[error("the file ends inside a 5-digit length field ({0} bytes left)")]
    TruncatedLengthField(usize),
    #[error("the length field is zero")]
    ZeroLength,
    #[error(
        "the length field says {len} bytes but only {left} are left: a truncated frame or \
         a corrupt length"
    )]
    PastEnd { len: usize, left: usize },
    #[error("the frame does not start with SOI (FF D8), it starts with {0}")]
    NoSoi(String),
    #[error("the length field says {len} bytes but the JPEG {detail}")]
    LengthMismatch { len: usize, detail: String },
    #[error("a {0}-byte frame does not fit the lab format's 5-digit length (max 99999)")]
    TooLargeForLab(usize),
    #[error("invalid JPEG: {0}")]
    Jpeg(#[from] JpegError),
}

/// A frame that was rejected: its number in the file (counting from 0, good and bad
/// frames alike), the byte offset where it starts, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptFrame {
    pub number: u64,
    pub offset: u64,
    pub error: FrameError,
}

impl fmt::Display for CorruptFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "frame {} at byte offset {}: {}",
            self.number, self.offset, self.error
        )
    }
}

/// The properties of a frame that decide its caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    pub width: u16,
    pub height: u16,
    pub sof_type: u8,
    pub color_space: ColorSpace,
    pub sampling: Option<Sampling>,
    /// Pixel aspect ratio, reduced (for example 1:1).
    pub pixel_aspect_ratio: (u16, u16),
}

impl From<&FrameHeader> for FrameFormat {
    fn from(h: &FrameHeader) -> Self {
        FrameFormat {
            width: h.width,
            height: h.height,
            sof_type: h.sof_type,
            color_space: h.color_space(),
            sampling: h.sampling(),
            pixel_aspect_ratio: reduce(h.pixel_aspect_ratio()),
        }
    }
}

fn reduce((a, b): (u16, u16)) -> (u16, u16) {
    fn gcd(a: u16, b: u16) -> u16 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(a, b).max(1);
    (a / g, b / g)
}

/// A validated frame: where its JPEG bytes are in the file, and its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedFrame {
    pub offset: u64,
    pub len: u32,
    pub format: FrameFormat,
}

impl IndexedFrame {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..self.offset as usize + self.len as usize
    }
}

/// Every usable frame of a file, in order.
///
/// Without `skip_corrupt`, indexing stops at the first corrupt frame, which is kept in
/// [`FrameIndex::error`]: the frames before it are usable, and a player reports the error
/// when it gets there. With `skip_corrupt`, corrupt frames are left out and listed in
/// [`FrameIndex::skipped`], and indexing carries on from the next plausible frame start.
#[derive(Debug, Clone, Default)]
pub struct FrameIndex {
    frames: Vec<IndexedFrame>,
    skipped: Vec<CorruptFrame>,
    error: Option<CorruptFrame>,
}

impl FrameIndex {
    pub fn build(data: &[u8], framing: Framing, skip_corrupt: bool) -> FrameIndex {
        let mut index = FrameIndex::default();
        let mut pos = 0;
        let mut number = 0u64;
        while pos < data.len() {
            let (result, next) = match read_frame(data, framing, pos) {
                Ok((range, next)) => (validate(data, range), Some(next)),
                Err(e) => (Err(e), None),
            };
            match result {
                Ok(frame) => {
                    index.frames.push(frame);
                    pos = next.unwrap_or(data.len());
                }
                Err(error) => {
                    let corrupt = CorruptFrame {
                        number,
                        offset: pos as u64,
                        error,
                    };
                    if !skip_corrupt {
                        index.error = Some(corrupt);
                        break;
                    }
                    index.skipped.push(corrupt);
                    pos = next
                        .filter(|&n| n == data.len() || looks_like_frame(data, framing, n))
                        .or_else(|| resync(data, framing, pos + 1))
                        .unwrap_or(data.len());
                }
            }
            number += 1;
        }
        index
    }

    pub fn frames(&self) -> &[IndexedFrame] {
        &self.frames
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn get(&self, n: usize) -> Option<&IndexedFrame> {
        self.frames.get(n)
    }

    /// Corrupt frames left out (with `skip_corrupt`).
    pub fn skipped(&self) -> &[CorruptFrame] {
        &self.skipped
    }

    /// The corrupt frame where indexing stopped (without `skip_corrupt`).
    pub fn error(&self) -> Option<&CorruptFrame> {
        self.error.as_ref()
    }
}

/// The JPEG bytes of the frame at `pos`, and where the next frame starts.
fn read_frame(
    data: &[u8],
    framing: Framing,
    pos: usize,
) -> Result<(std::ops::Range<usize>, usize), FrameError> {
    match framing {
        Framing::Lab => {
            let f = lab::read_frame(data, pos)?;
            Ok((f.jpeg_offset..f.jpeg_offset + f.jpeg_len, f.next))
        }
        Framing::Concatenated => {
            let len = concatenated::read_frame(data, pos)?;
            Ok((pos..pos + len, pos + len))
        }
    }
}

fn validate(data: &[u8], range: std::ops::Range<usize>) -> Result<IndexedFrame, FrameError> {
    let header = jpeg::parse_header(&data[range.clone()])?;
    let len = u32::try_from(range.len()).map_err(|_| FrameError::LengthMismatch {
        len: range.len(),
        detail: "is larger than 4 GiB".into(),
    })?;
    Ok(IndexedFrame {
        offset: range.start as u64,
        len,
        format: FrameFormat::from(&header),
    })
}

fn looks_like_frame(data: &[u8], framing: Framing, pos: usize) -> bool {
    match framing {
        Framing::Lab => lab::looks_like_frame(data, pos),
        Framing::Concatenated => concatenated::looks_like_frame(data, pos),
    }
}

fn resync(data: &[u8], framing: Framing, from: usize) -> Option<usize> {
    match framing {
        Framing::Lab => lab::resync(data, from),
        Framing::Concatenated => concatenated::resync(data, from),
    }
}
