//! Quantization (DQT) and Huffman (DHT) tables: parsing, and the standard Huffman tables of
//! ITU-T T.81 Annex K.3 that baseline decoders assume when a frame carries none and that
//! RFC 2435 receivers always use.
//!
//! Tables borrow their bytes from the image, so a payloader can send quantization tables
//! without copying them.

use super::JpegError;

/// One quantization table, as stored in a DQT segment: 64 values in zigzag order, 8-bit or
/// 16-bit (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantTable<'a> {
    raw: &'a [u8],
}

impl<'a> QuantTable<'a> {
    /// A table from its raw bytes: 64 (8-bit) or 128 (16-bit big-endian).
    pub fn from_raw(raw: &'a [u8]) -> Option<QuantTable<'a>> {
        matches!(raw.len(), 64 | 128).then_some(QuantTable { raw })
    }

    /// Whether the values are 16-bit.
    pub fn is_16bit(&self) -> bool {
        self.raw.len() == 128
    }

    /// The bytes as stored: what RFC 2435 sends in its quantization table header.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The `i`-th value in zigzag order.
    pub fn value(&self, i: usize) -> u16 {
        if self.is_16bit() {
            u16::from_be_bytes([self.raw[2 * i], self.raw[2 * i + 1]])
        } else {
            u16::from(self.raw[i])
        }
    }

    /// Whether both tables hold the same values, whatever their precision.
    pub fn same_values(&self, other: &QuantTable<'_>) -> bool {
        self.raw == other.raw || (0..64).all(|i| self.value(i) == other.value(i))
    }
}

/// Parses a DQT payload, which may define several tables. Returns (table id, table).
pub fn parse_dqt(payload: &[u8], at: usize) -> Result<Vec<(u8, QuantTable<'_>)>, JpegError> {
    let mut tables = Vec::with_capacity(2);
    let mut rest = payload;
    while let [pq_tq, body @ ..] = rest {
        let (precision, id) = (pq_tq >> 4, pq_tq & 0x0F);
        let len = match precision {
            0 => 64,
            1 => 128,
            _ => {
                return Err(JpegError::BadTable {
                    at,
                    reason: "DQT precision is not 0 or 1",
                });
            }
        };
        if id > 3 {
            return Err(JpegError::BadTable {
                at,
                reason: "DQT table id above 3",
            });
        }
        let raw = body.get(..len).ok_or(JpegError::BadTable {
            at,
            reason: "DQT segment shorter than its tables",
        })?;
        if raw.iter().all(|&b| b == 0) {
            return Err(JpegError::BadTable {
                at,
                reason: "DQT table of zeros",
            });
        }
        tables.push((id, QuantTable { raw }));
        rest = &body[len..];
    }
    Ok(tables)
}

/// Table class: DC tables code coefficient-difference sizes, AC tables run/size pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableClass {
    Dc,
    Ac,
}

/// One Huffman table as a DHT segment defines it: how many codes of each length 1..=16,
/// and the symbols in code order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HuffmanTable<'a> {
    pub counts: &'a [u8; 16],
    pub symbols: &'a [u8],
}

/// Parses a DHT payload, which may define several tables. Returns (class, id, table).
pub fn parse_dht(
    payload: &[u8],
    at: usize,
) -> Result<Vec<(TableClass, u8, HuffmanTable<'_>)>, JpegError> {
    let bad = |reason| JpegError::BadTable { at, reason };
    let mut tables = Vec::with_capacity(4);
    let mut rest = payload;
    while let [tc_th, body @ ..] = rest {
        let class = match tc_th >> 4 {
            0 => TableClass::Dc,
            1 => TableClass::Ac,
            _ => return Err(bad("DHT table class is not 0 or 1")),
        };
        let id = tc_th & 0x0F;
        if id > 3 {
            return Err(bad("DHT table id above 3"));
        }
        let counts: &[u8; 16] = body
            .get(..16)
            .and_then(|c| c.try_into().ok())
            .ok_or(bad("DHT segment shorter than its code counts"))?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 {
            return Err(bad("DHT table with more than 256 symbols"));
        }
        if !codes_fit(counts) {
            return Err(bad("DHT code counts do not form a prefix code"));
        }
        let symbols = body
            .get(16..16 + total)
            .ok_or(bad("DHT segment shorter than its symbols"))?;
        tables.push((class, id, HuffmanTable { counts, symbols }));
        rest = &body[16 + total..];
    }
    Ok(tables)
}

/// Whether codes of these lengths fit in a binary prefix code (T.81 C.2 would otherwise
/// generate codes longer than their length).
fn codes_fit(counts: &[u8; 16]) -> bool {
    let mut available: u32 = 2;
    for &count in counts {
        let count = u32::from(count);
        if count > available {
            return false;
        }
        available = (available - count) * 2;
    }
    true
}

/// The tables of ITU-T T.81 Annex K.3, which RFC 2435 receivers put in every frame.
pub mod standard {
    use super::HuffmanTable;

    pub const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    pub const DC_LUMA_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    pub const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    pub const DC_CHROMA_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    pub const AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7D];
    pub const AC_LUMA_SYMBOLS: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52,
        0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6,
        0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3,
        0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8,
        0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    pub const AC_CHROMA_COUNTS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    pub const AC_CHROMA_SYMBOLS: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33,
        0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18,
        0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4,
        0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA,
        0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7,
        0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];

    pub const DC_LUMA: HuffmanTable<'static> = HuffmanTable {
        counts: &DC_LUMA_COUNTS,
        symbols: &DC_LUMA_SYMBOLS,
    };
    pub const DC_CHROMA: HuffmanTable<'static> = HuffmanTable {
        counts: &DC_CHROMA_COUNTS,
        symbols: &DC_CHROMA_SYMBOLS,
    };
    pub const AC_LUMA: HuffmanTable<'static> = HuffmanTable {
        counts: &AC_LUMA_COUNTS,
        symbols: &AC_LUMA_SYMBOLS,
    };
    pub const AC_CHROMA: HuffmanTable<'static> = HuffmanTable {
        counts: &AC_CHROMA_COUNTS,
        symbols: &AC_CHROMA_SYMBOLS,
    };
}
