//! The quantization tables RFC 2435 derives from Q values 1-99 (Appendix A): the example
//! tables of ITU-T T.81 Annex K.1 scaled the way libjpeg scales them for a quality setting,
//! in the zigzag order DQT segments use. (The RFC lists K.1 in natural order and omits the
//! reordering; GStreamer, ffmpeg and libjpeg all apply it, so the tables match theirs.)

use std::sync::LazyLock;

use crate::jpeg::QuantTable;

/// T.81 Table K.1, luminance, natural (row-major) order.
const LUMA_K1: [u8; 64] = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
];

/// T.81 Table K.2, chrominance, natural order.
const CHROMA_K2: [u8; 64] = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
];

/// Natural-order index of the i-th coefficient in zigzag order (T.81 Figure A.6).
pub const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// Luma and chroma tables for one Q, in DQT (zigzag) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QTables {
    pub luma: [u8; 64],
    pub chroma: [u8; 64],
}

impl QTables {
    pub fn luma_table(&self) -> QuantTable<'_> {
        QuantTable::from_raw(&self.luma).expect("64 bytes")
    }

    pub fn chroma_table(&self) -> QuantTable<'_> {
        QuantTable::from_raw(&self.chroma).expect("64 bytes")
    }
}

/// The tables for Q (RFC 2435 `MakeTables`): Q below 1 counts as 1, above 99 as 99.
pub fn make_tables(q: u8) -> QTables {
    let factor = u32::from(q.clamp(1, 99));
    let scale = if factor < 50 {
        5000 / factor
    } else {
        200 - 2 * factor
    };
    let scaled = |base: u8| ((u32::from(base) * scale + 50) / 100).clamp(1, 255) as u8;
    let mut tables = QTables {
        luma: [0; 64],
        chroma: [0; 64],
    };
    for (i, &natural) in ZIGZAG.iter().enumerate() {
        tables.luma[i] = scaled(LUMA_K1[natural]);
        tables.chroma[i] = scaled(CHROMA_K2[natural]);
    }
    tables
}

/// Tables for every Q in 1..=99, computed once.
static ALL: LazyLock<Vec<QTables>> = LazyLock::new(|| (1..=99).map(make_tables).collect());

/// The tables for Q 1..=99 from a table computed once (same values as [`make_tables`]).
pub fn tables_for(q: u8) -> &'static QTables {
    &ALL[usize::from(q.clamp(1, 99)) - 1]
}

/// The Q in 1..=99 whose tables equal `luma` and `chroma`, if any: then RFC 2435 can send
/// the Q alone, without tables.
pub fn detect_q(luma: &QuantTable<'_>, chroma: &QuantTable<'_>) -> Option<u8> {
    // The first coefficient narrows the search; equal tables are then confirmed in full.
    let dc = luma.value(0);
    ALL.iter()
        .zip(1u8..)
        .filter(|(t, _)| u16::from(t.luma[0]) == dc)
        .find(|(t, _)| luma.same_values(&t.luma_table()) && chroma.same_values(&t.chroma_table()))
        .map(|(_, q)| q)
}
