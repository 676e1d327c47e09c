//! JPEG (ITU-T T.81 / ISO 10918-1) at the marker level: no pixel decoding.
//!
//! A JPEG image is a sequence of marker segments. Every marker is `FF xx`; most are followed
//! by a 16-bit big-endian length that counts itself but not the marker. `SOS` (start of scan)
//! is followed by entropy-coded data in which a literal `FF` byte is "stuffed" as `FF 00`
//! and restart markers `FF D0`..`FF D7` may appear, so the end of a scan is the first `FF`
//! followed by anything else. A file may hold several scans (progressive JPEG) and ends
//! with `EOI` (`FF D9`).
//!
//! - [`segments`] walks the header segments up to the first scan.
//! - [`frame_length`] walks a whole image, scans included, to find where it ends.
//! - [`FrameHeader`] is the summary a demuxer needs: size, sampling, colour space, restart
//!   interval.
//! - [`parse_image`] is what a payloader needs on top: the tables, the scan header and
//!   where the entropy-coded data is.
//! - [`write_header`] writes the header a depayloader puts in front of received scan data.

mod header;
pub mod huffman;
mod image;
pub mod markers;
pub mod scan;
pub mod tables;
mod walk;
mod writer;

pub use header::{ColorSpace, Component, FrameHeader, Sampling, parse_header};
pub use image::{JpegImage, ScanComponent, ScanHeader, parse_framed_image, parse_image};
pub use tables::{HuffmanTable, QuantTable, TableClass};
pub use walk::{Segment, Segments, frame_length, segments};
pub use writer::{HeaderSpec, write_header};

/// A structural problem in a JPEG image. Byte positions count from the image's `SOI`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("does not start with SOI (FF D8)")]
    NoSoi,
    #[error("ends inside {what} at byte {at}")]
    Truncated { what: &'static str, at: usize },
    #[error("expected a marker at byte {at}, found {found:#04x}")]
    ExpectedMarker { at: usize, found: u8 },
    #[error("marker {marker:#04x} at byte {at} is not allowed here")]
    UnexpectedMarker { marker: u8, at: usize },
    #[error("segment {marker:#04x} at byte {at} has an invalid length {len}")]
    BadSegmentLength { marker: u8, at: usize, len: u16 },
    #[error("no SOF (frame header) before the first scan")]
    NoSof,
    #[error("invalid frame header (SOF) at byte {at}: {reason}")]
    BadSof { at: usize, reason: &'static str },
    #[error("invalid restart interval (DRI) at byte {at}")]
    BadDri { at: usize },
    #[error("invalid table at byte {at}: {reason}")]
    BadTable { at: usize, reason: &'static str },
    #[error("invalid scan header (SOS) at byte {at}: {reason}")]
    BadSos { at: usize, reason: &'static str },
}

#[cfg(test)]
pub(crate) mod testdata;
#[cfg(test)]
mod tests;
