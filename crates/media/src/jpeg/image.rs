//! A whole image as a payloader sees it: the frame header, the tables in force when the
//! first scan starts, the scan header, and where the entropy-coded data lies.

use std::ops::Range;

use super::header::HeaderBuilder;
use super::markers::{DHT, DQT, EOI, SOS};
use super::tables::{HuffmanTable, QuantTable, TableClass, parse_dht, parse_dqt};
use super::{FrameHeader, JpegError, scan, segments};

/// One component of a scan: which frame component, and its DC and AC table ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanComponent {
    pub id: u8,
    pub dc_table: u8,
    pub ac_table: u8,
}

/// The SOS header of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanHeader {
    components: [ScanComponent; 4],
    count: u8,
    /// Spectral selection start and end (0 and 63 for sequential JPEG).
    pub spectral_start: u8,
    pub spectral_end: u8,
    /// Successive approximation bit positions (0 and 0 for sequential JPEG).
    pub approx_high: u8,
    pub approx_low: u8,
}

impl ScanHeader {
    pub fn components(&self) -> &[ScanComponent] {
        &self.components[..usize::from(self.count)]
    }
}

/// An image, parsed up to the end of its first scan.
#[derive(Debug, Clone)]
pub struct JpegImage<'a> {
    pub header: FrameHeader,
    /// Quantization tables by id, as defined before the first scan.
    pub quant_tables: [Option<QuantTable<'a>>; 4],
    /// Huffman tables by id, as defined before the first scan (`None`: not in the image;
    /// baseline decoders then assume the standard tables).
    pub dc_tables: [Option<HuffmanTable<'a>>; 4],
    pub ac_tables: [Option<HuffmanTable<'a>>; 4],
    pub scan: ScanHeader,
    /// The first scan's entropy-coded data, restart markers included.
    pub scan_data: Range<usize>,
    /// Whether EOI follows the first scan (otherwise more scans, or a DNL, follow).
    pub single_scan: bool,
}

impl<'a> JpegImage<'a> {
    /// The quantization table of a frame component, by its index in the SOF.
    pub fn component_quant_table(&self, index: usize) -> Option<QuantTable<'a>> {
        let component = self.header.components().get(index)?;
        *self.quant_tables.get(usize::from(component.quant_table))?
    }
}

/// Parses the image at the start of `data` through its first scan, searching the
/// entropy-coded data for the marker that ends the scan.
pub fn parse_image(data: &[u8]) -> Result<JpegImage<'_>, JpegError> {
    parse(data, false)
}

/// Like [`parse_image`], for `data` known to hold exactly one image that ends with its EOI
/// (what a parser that frames at EOI delivers, `parsed=true` in GStreamer caps): a
/// single-scan sequential image's scan then runs to that final EOI, found without
/// reading the entropy-coded data. The result is the same as [`parse_image`]'s for every
/// image that follows T.81; bytes after an image's real end, or segments after a scan
/// that already coded every component (which T.81 forbids), would be taken as part of
/// the scan, so this is only for framed input.
pub fn parse_framed_image(data: &[u8]) -> Result<JpegImage<'_>, JpegError> {
    parse(data, true)
}

fn parse(data: &[u8], framed: bool) -> Result<JpegImage<'_>, JpegError> {
    let mut builder = HeaderBuilder::default();
    let mut quant_tables = [None; 4];
    let mut dc_tables = [None; 4];
    let mut ac_tables = [None; 4];
    for segment in segments(data) {
        let segment = segment?;
        match segment.marker {
            DQT => {
                for (id, table) in parse_dqt(segment.payload, segment.offset)? {
                    quant_tables[usize::from(id)] = Some(table);
                }
            }
            DHT => {
                for (class, id, table) in parse_dht(segment.payload, segment.offset)? {
                    match class {
                        TableClass::Dc => dc_tables[usize::from(id)] = Some(table),
                        TableClass::Ac => ac_tables[usize::from(id)] = Some(table),
                    }
                }
            }
            SOS => {
                let header = builder.finish()?;
                let scan = parse_sos(&header, segment.payload, segment.offset)?;
                let start = segment.end();
                let known_end = framed.then(|| only_scan_end(&header, &scan, data, start));
                let end = match known_end.flatten() {
                    Some(end) => end,
                    None => scan::find_scan_end(data, start).ok_or(JpegError::Truncated {
                        what: "entropy-coded data",
                        at: data.len(),
                    })?,
                };
                return Ok(JpegImage {
                    header,
                    quant_tables,
                    dc_tables,
                    ac_tables,
                    scan,
                    scan_data: start..end,
                    single_scan: data.get(end + 1) == Some(&EOI),
                });
            }
            _ => builder.absorb(&segment)?,
        }
    }
    Err(JpegError::Truncated {
        what: "the header (no scan)",
        at: data.len(),
    })
}

/// Where the first scan of a framed image ends, without a search: in a sequential image
/// every component is coded in exactly one scan (T.81 B.2.3), so a first scan that holds
/// all of them is the only one, and nothing but EOI may follow it (a DNL segment would,
/// but a frame header with a height is required here). Its data then runs to the image's
/// final EOI. `None` when that does not apply or the data does not end with EOI.
fn only_scan_end(
    header: &FrameHeader,
    scan: &ScanHeader,
    data: &[u8],
    start: usize,
) -> Option<usize> {
    let sequential = matches!(header.sof_type, 0 | 1 | 9);
    let all_components = scan.components().len() == header.components().len();
    (sequential && all_components && data.len() >= start + 2 && data.ends_with(&[0xFF, EOI]))
        .then(|| data.len() - 2)
}

fn parse_sos(header: &FrameHeader, payload: &[u8], at: usize) -> Result<ScanHeader, JpegError> {
    let bad = |reason| JpegError::BadSos { at, reason };
    let [count, rest @ ..] = payload else {
        return Err(bad("empty segment"));
    };
    let count = usize::from(*count);
    if !(1..=4).contains(&count) {
        return Err(bad("component count is not between 1 and 4"));
    }
    if rest.len() != 2 * count + 3 {
        return Err(bad("length does not match the component count"));
    }
    let mut components = [ScanComponent::default(); 4];
    for (slot, c) in components.iter_mut().zip(rest[..2 * count].chunks_exact(2)) {
        if !header.components().iter().any(|f| f.id == c[0]) {
            return Err(bad("scan component is not in the frame"));
        }
        let (dc_table, ac_table) = (c[1] >> 4, c[1] & 0x0F);
        if dc_table > 3 || ac_table > 3 {
            return Err(bad("Huffman table id above 3"));
        }
        *slot = ScanComponent {
            id: c[0],
            dc_table,
            ac_table,
        };
    }
    let tail = &rest[2 * count..];
    Ok(ScanHeader {
        components,
        count: count as u8,
        spectral_start: tail[0],
        spectral_end: tail[1],
        approx_high: tail[2] >> 4,
        approx_low: tail[2] & 0x0F,
    })
}
