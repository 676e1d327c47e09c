use super::JpegError;
use super::markers::{self, EOI, SOI, SOS};

/// One marker segment: its marker code, the position of its `FF`, and its payload (the
/// bytes after the length field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment<'a> {
    pub marker: u8,
    pub offset: usize,
    pub payload: &'a [u8],
}

impl Segment<'_> {
    /// Position of the first byte after this segment.
    pub fn end(&self) -> usize {
        self.offset + 4 + self.payload.len()
    }
}

/// Iterates over the marker segments of an image's header, from after `SOI` up to and
/// including the first `SOS`, after which it stops (the scan is not a segment).
pub struct Segments<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

/// Walks the header segments of `data`, which must start with `SOI`.
pub fn segments(data: &[u8]) -> Segments<'_> {
    Segments {
        data,
        pos: 0,
        done: false,
    }
}

impl<'a> Iterator for Segments<'a> {
    type Item = Result<Segment<'a>, JpegError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = self.advance();
        if !matches!(result, Ok(Some(ref seg)) if seg.marker != SOS) {
            self.done = true;
        }
        result.transpose()
    }
}

impl<'a> Segments<'a> {
    fn advance(&mut self) -> Result<Option<Segment<'a>>, JpegError> {
        if self.pos == 0 {
            if !self.data.starts_with(&[0xFF, SOI]) {
                return Err(JpegError::NoSoi);
            }
            self.pos = 2;
        }
        loop {
            let (marker, at, after) = read_marker(self.data, self.pos)?;
            self.pos = after;
            match marker {
                EOI => return Ok(None),
                SOI => return Err(JpegError::UnexpectedMarker { marker, at }),
                m if markers::is_standalone(m) => continue,
                _ => {
                    let segment = read_segment(self.data, marker, at)?;
                    self.pos = segment.end();
                    return Ok(Some(segment));
                }
            }
        }
    }
}

/// Reads the marker expected at `pos`, skipping fill bytes (`FF FF ...`). Returns the
/// marker code, the position of its last `FF`, and the position after the code.
fn read_marker(data: &[u8], pos: usize) -> Result<(u8, usize, usize), JpegError> {
    match data.get(pos) {
        None => {
            return Err(JpegError::Truncated {
                what: "a marker",
                at: pos,
            });
        }
        Some(&0xFF) => {}
        Some(&found) => return Err(JpegError::ExpectedMarker { at: pos, found }),
    }
    let mut at = pos;
    while data.get(at + 1) == Some(&0xFF) {
        at += 1;
    }
    match data.get(at + 1) {
        None => Err(JpegError::Truncated {
            what: "a marker",
            at,
        }),
        Some(&0x00) => Err(JpegError::UnexpectedMarker { marker: 0, at }),
        Some(&marker) => Ok((marker, at, at + 2)),
    }
}

fn read_segment(data: &[u8], marker: u8, at: usize) -> Result<Segment<'_>, JpegError> {
    let Some(len_bytes) = data.get(at + 2..at + 4) else {
        return Err(JpegError::Truncated {
            what: "a segment length",
            at: at + 2,
        });
    };
    let len = u16::from_be_bytes([len_bytes[0], len_bytes[1]]);
    if len < 2 {
        return Err(JpegError::BadSegmentLength { marker, at, len });
    }
    let payload = data
        .get(at + 4..at + 2 + usize::from(len))
        .ok_or(JpegError::Truncated {
            what: "a marker segment",
            at,
        })?;
    Ok(Segment {
        marker,
        offset: at,
        payload,
    })
}

/// Position of the marker that ends the entropy-coded data starting at `pos`.
fn skip_entropy_coded(data: &[u8], pos: usize) -> Result<usize, JpegError> {
    super::scan::find_scan_end(data, pos).ok_or(JpegError::Truncated {
        what: "entropy-coded data",
        at: data.len(),
    })
}

/// Length of the JPEG image at the start of `data`, from `SOI` through `EOI`, found by
/// walking every segment and scan (so an `FF D9` inside an embedded thumbnail or metadata
/// does not end the image early).
pub fn frame_length(data: &[u8]) -> Result<usize, JpegError> {
    if !data.starts_with(&[0xFF, SOI]) {
        return Err(JpegError::NoSoi);
    }
    let mut pos = 2;
    loop {
        let (marker, at, after) = read_marker(data, pos)?;
        pos = after;
        match marker {
            EOI => return Ok(pos),
            SOI => return Err(JpegError::UnexpectedMarker { marker, at }),
            m if markers::is_standalone(m) => {}
            _ => {
                let segment = read_segment(data, marker, at)?;
                pos = segment.end();
                if marker == SOS {
                    pos = skip_entropy_coded(data, pos)?;
                }
            }
        }
    }
}
