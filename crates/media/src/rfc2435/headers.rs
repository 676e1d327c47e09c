//! The three headers of RFC 2435 section 3.1, as they appear at the start of a payload.

/// Why a payload's headers could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("payload of {0} bytes is shorter than the 8-byte JPEG header")]
    ShortMain(usize),
    #[error("type {0} is not supported (0, 1, 64 and 65 are)")]
    UnsupportedType(u8),
    #[error("payload ends inside the restart marker header")]
    ShortRestart,
    #[error("restart interval of 0 with type {0}")]
    ZeroRestartInterval(u8),
    #[error("payload ends inside the quantization table header")]
    ShortQuant,
    #[error("quantization table length {length} runs past the {left} bytes left")]
    QuantPastEnd { length: usize, left: usize },
    #[error("quantization table length {length} does not match precision {precision:#04x}")]
    QuantLayout { length: usize, precision: u8 },
}

/// The main JPEG header (section 3.1): 8 bytes in every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MainHeader {
    pub type_specific: u8,
    /// Byte offset of this packet's data in the frame's scan data (24 bits).
    pub fragment_offset: u32,
    /// 0 (4:2:2) or 1 (4:2:0), plus 64 when a restart marker header follows.
    pub kind: u8,
    pub q: u8,
    /// Width and height in 8-pixel units; 0 when the size is over 2040 (see
    /// `x-dimensions`).
    pub width8: u8,
    pub height8: u8,
}

pub const MAIN_LEN: usize = 8;
pub const RESTART_LEN: usize = 4;
pub const QUANT_HEADER_LEN: usize = 4;
/// The largest fragment offset the 24-bit field holds.
pub const MAX_FRAGMENT_OFFSET: usize = (1 << 24) - 1;

impl MainHeader {
    pub fn has_restart_header(&self) -> bool {
        self.kind & 64 != 0
    }

    /// Luma sampling for the type: (2, 1) for 4:2:2, (2, 2) for 4:2:0.
    pub fn luma_sampling(&self) -> (u8, u8) {
        if self.kind & 1 == 0 { (2, 1) } else { (2, 2) }
    }

    pub fn parse(payload: &[u8]) -> Result<MainHeader, HeaderError> {
        let [type_specific, o1, o2, o3, kind, q, width8, height8, ..] = *payload else {
            return Err(HeaderError::ShortMain(payload.len()));
        };
        if !matches!(kind, 0 | 1 | 64 | 65) {
            return Err(HeaderError::UnsupportedType(kind));
        }
        Ok(MainHeader {
            type_specific,
            fragment_offset: u32::from_be_bytes([0, o1, o2, o3]),
            kind,
            q,
            width8,
            height8,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let offset = self.fragment_offset.to_be_bytes();
        out.extend_from_slice(&[
            self.type_specific,
            offset[1],
            offset[2],
            offset[3],
            self.kind,
            self.q,
            self.width8,
            self.height8,
        ]);
    }
}

/// The restart marker header (section 3.1.7), present with types 64-127.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartHeader {
    /// MCUs per restart interval (never 0).
    pub interval: u16,
    /// This packet starts a chunk of whole restart intervals.
    pub first: bool,
    /// This packet ends a chunk.
    pub last: bool,
    /// Index of the chunk's first restart interval; [`RestartHeader::UNALIGNED`] when
    /// packets are not aligned to restart intervals.
    pub count: u16,
}

impl RestartHeader {
    pub const UNALIGNED: u16 = 0x3FFF;

    pub fn parse(bytes: &[u8], kind: u8) -> Result<RestartHeader, HeaderError> {
        let [i1, i2, f1, f2, ..] = *bytes else {
            return Err(HeaderError::ShortRestart);
        };
        let interval = u16::from_be_bytes([i1, i2]);
        if interval == 0 {
            return Err(HeaderError::ZeroRestartInterval(kind));
        }
        let flags = u16::from_be_bytes([f1, f2]);
        Ok(RestartHeader {
            interval,
            first: flags & 0x8000 != 0,
            last: flags & 0x4000 != 0,
            count: flags & 0x3FFF,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        let flags =
            (u16::from(self.first) << 15) | (u16::from(self.last) << 14) | (self.count & 0x3FFF);
        out.extend_from_slice(&self.interval.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
    }
}

/// The quantization table header (section 3.1.8) and the table data after it, present in
/// the first packet of a frame with Q 128-255.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantHeader<'a> {
    /// Bit i set: table i has 16-bit values.
    pub precision: u8,
    /// The tables' bytes, `length` of them; empty when a Q 128-254 sender relies on tables
    /// sent earlier.
    pub data: &'a [u8],
}

impl<'a> QuantHeader<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<(QuantHeader<'a>, usize), HeaderError> {
        let [_mbz, precision, l1, l2, ref rest @ ..] = *bytes else {
            return Err(HeaderError::ShortQuant);
        };
        let length = usize::from(u16::from_be_bytes([l1, l2]));
        let data = rest.get(..length).ok_or(HeaderError::QuantPastEnd {
            length,
            left: rest.len(),
        })?;
        Ok((QuantHeader { precision, data }, QUANT_HEADER_LEN + length))
    }

    /// The tables in order: table i is 64 bytes, or 128 when precision bit i is set. One to
    /// three tables must fill the data exactly.
    pub fn tables(&self) -> Result<Vec<&'a [u8]>, HeaderError> {
        let layout_error = HeaderError::QuantLayout {
            length: self.data.len(),
            precision: self.precision,
        };
        let mut tables = Vec::with_capacity(3);
        let mut rest = self.data;
        while !rest.is_empty() {
            let i = tables.len();
            if i == 3 {
                return Err(layout_error);
            }
            let len = if self.precision & (1 << i) != 0 {
                128
            } else {
                64
            };
            let (table, tail) = rest.split_at_checked(len).ok_or(layout_error.clone())?;
            tables.push(table);
            rest = tail;
        }
        Ok(tables)
    }

    /// Writes the header for `tables` (raw DQT bytes, 64 or 128 each); an empty list
    /// writes a zero length.
    pub fn write(tables: &[&[u8]], out: &mut Vec<u8>) {
        let precision = tables
            .iter()
            .enumerate()
            .fold(0u8, |p, (i, t)| p | (u8::from(t.len() == 128) << i));
        let length: usize = tables.iter().map(|t| t.len()).sum();
        out.extend_from_slice(&[0, precision]);
        out.extend_from_slice(&(length as u16).to_be_bytes());
        for table in tables {
            out.extend_from_slice(table);
        }
    }
}
