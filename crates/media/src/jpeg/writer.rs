//! Writing the header of a baseline YCbCr image: what an RFC 2435 receiver puts in front
//! of the scan data it reassembled (RFC 2435 Appendix B, generalised to one to three
//! quantization tables and 16-bit tables).

use super::QuantTable;
use super::markers::{DHT, DQT, DRI, SOI, SOS};
use super::tables::{HuffmanTable, standard};

/// What the header describes.
#[derive(Debug, Clone, Copy)]
pub struct HeaderSpec<'a> {
    pub width: u16,
    pub height: u16,
    /// Luma sampling factors (h, v): (2, 1) for 4:2:2, (2, 2) for 4:2:0. Chroma is 1x1.
    pub luma_sampling: (u8, u8),
    /// One to three tables. Y uses the first, Cb the second, Cr the third; with fewer
    /// tables, the chroma components share the last one.
    pub quant_tables: &'a [QuantTable<'a>],
    /// MCUs per restart interval; 0 for none.
    pub restart_interval: u16,
}

/// Component ids 1, 2, 3: the JFIF convention, which decoders read as YCbCr.
const COMPONENT_IDS: [u8; 3] = [1, 2, 3];

/// Appends SOI, DQT, DRI (if any), SOF0 (SOF1 when a table is 16-bit), the standard DHT
/// and SOS to `out`. The scan data and EOI follow.
pub fn write_header(out: &mut Vec<u8>, spec: &HeaderSpec<'_>) {
    let tables = &spec.quant_tables[..spec.quant_tables.len().min(3)];
    out.extend_from_slice(&[0xFF, SOI]);

    let dqt_len: usize = tables.iter().map(|t| 1 + t.raw().len()).sum();
    segment(out, DQT, dqt_len);
    for (id, table) in tables.iter().enumerate() {
        out.push(((table.is_16bit() as u8) << 4) | id as u8);
        out.extend_from_slice(table.raw());
    }

    if spec.restart_interval > 0 {
        segment(out, DRI, 2);
        out.extend_from_slice(&spec.restart_interval.to_be_bytes());
    }

    // Extended sequential (SOF1) is the baseline process with 16-bit tables allowed.
    let sof = if tables.iter().any(QuantTable::is_16bit) {
        0xC1
    } else {
        0xC0
    };
    segment(out, sof, 6 + 3 * 3);
    out.push(8);
    out.extend_from_slice(&spec.height.to_be_bytes());
    out.extend_from_slice(&spec.width.to_be_bytes());
    out.push(3);
    let last = tables.len().saturating_sub(1) as u8;
    let (h, v) = spec.luma_sampling;
    out.extend_from_slice(&[COMPONENT_IDS[0], (h << 4) | v, 0]);
    out.extend_from_slice(&[COMPONENT_IDS[1], 0x11, 1.min(last)]);
    out.extend_from_slice(&[COMPONENT_IDS[2], 0x11, 2.min(last)]);

    let huffman = [
        (0x00, standard::DC_LUMA),
        (0x10, standard::AC_LUMA),
        (0x01, standard::DC_CHROMA),
        (0x11, standard::AC_CHROMA),
    ];
    let dht_len: usize = huffman.iter().map(|(_, t)| 17 + t.symbols.len()).sum();
    segment(out, DHT, dht_len);
    for (class_id, table) in huffman {
        huffman_table(out, class_id, &table);
    }

    segment(out, SOS, 1 + 2 * 3 + 3);
    out.push(3);
    out.extend_from_slice(&[COMPONENT_IDS[0], 0x00]);
    out.extend_from_slice(&[COMPONENT_IDS[1], 0x11]);
    out.extend_from_slice(&[COMPONENT_IDS[2], 0x11]);
    out.extend_from_slice(&[0, 63, 0]);
}

/// A marker and a length field for a payload of `payload_len` bytes.
fn segment(out: &mut Vec<u8>, marker: u8, payload_len: usize) {
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&((payload_len + 2) as u16).to_be_bytes());
}

fn huffman_table(out: &mut Vec<u8>, class_id: u8, table: &HuffmanTable<'_>) {
    out.push(class_id);
    out.extend_from_slice(table.counts);
    out.extend_from_slice(table.symbols);
}
