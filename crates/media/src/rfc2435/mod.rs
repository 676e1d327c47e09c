//! RFC 2435: RTP payload format for JPEG-compressed video.
//!
//! Each RTP packet carries an 8-byte JPEG header (type, Q, size in 8-pixel units, and the
//! fragment's byte offset in the frame's scan data), a restart marker header for types
//! 64-127, a quantization table header in the first packet when Q is 128-255, and then a
//! piece of the entropy-coded scan data. Everything else of the JPEG (tables for Q 1-99,
//! the standard Huffman tables, SOF, SOS) the receiver rebuilds from those few fields.
//!
//! - [`headers`]: the three headers, read and written.
//! - [`qtables`]: the tables behind Q 1-99, and recognising them in an image.
//! - [`payloader`]: from an image to packets.
//! - [`depayloader`]: from packets back to images.

mod assembly;
pub mod depayloader;
pub mod headers;
pub mod payloader;
pub mod qtables;

pub use depayloader::{
    DepayOptions, DropReason, Dropped, Frame, LabDialect, Packet, Reassembler, Received,
    ReorderStats,
};
pub use payloader::{
    Fragment, HuffmanPolicy, OutgoingFrame, Packetizer, PayloadOptions, ScanData, TableSchedule,
    Unsupported, prepare,
};

/// RTP payload type 26 (RFC 3551), clock rate 90 kHz.
pub const PAYLOAD_TYPE: u8 = 26;
pub const CLOCK_RATE: u32 = 90_000;

#[cfg(test)]
mod tests;
