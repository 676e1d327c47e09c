//! Sending side: from a JPEG image to RFC 2435 packets.
//!
//! [`prepare`] checks that the image can be carried, picks the type, the Q value (a Q of
//! 1-99 when the tables are the RFC's own, so none need sending) and the tables to send in
//! band, and re-encodes the scan when its Huffman tables are not the standard ones.
//! [`Packetizer`] then cuts the scan data into fragments no larger than a packet allows,
//! aligned to restart intervals when the image has them.

use std::ops::Range;

use super::headers::{
    MAIN_LEN, MAX_FRAGMENT_OFFSET, MainHeader, QUANT_HEADER_LEN, QuantHeader, RESTART_LEN,
    RestartHeader,
};
use super::qtables;
use crate::jpeg::{self, JpegError, JpegImage, QuantTable, huffman, markers};

/// What to do with frames whose Huffman tables are not the standard ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HuffmanPolicy {
    /// Re-encode the scan losslessly with the standard tables.
    #[default]
    Reencode,
    /// Refuse the frame.
    Refuse,
}

/// Choices the sender makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadOptions {
    /// Q value used when tables go in band: 255 (tables may change with every frame) or
    /// 128-254 (static tables a receiver may cache).
    pub inband_q: u8,
    pub huffman: HuffmanPolicy,
    /// Each input holds exactly one image ending with its EOI (`parsed=true` upstream), so
    /// the end of its scan need not be searched for (see [`jpeg::parse_framed_image`]).
    pub framed: bool,
}

impl Default for PayloadOptions {
    fn default() -> Self {
        PayloadOptions {
            inband_q: 255,
            huffman: HuffmanPolicy::Reencode,
            framed: false,
        }
    }
}

/// Why an image cannot be sent as RFC 2435 JPEG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("not a valid JPEG: {0}")]
    Corrupt(#[from] JpegError),
    #[error("progressive JPEG")]
    Progressive,
    #[error("lossless or hierarchical JPEG (SOF{0})")]
    Lossless(u8),
    #[error("arithmetic-coded JPEG")]
    Arithmetic,
    #[error("{0}-bit samples")]
    Precision(u8),
    #[error("{0} colour component(s)")]
    Components(usize),
    #[error(
        "{name} sampling as luma {layout} blocks (RFC 2435 carries luma 2x1 or 2x2 with \
         chroma 1x1)"
    )]
    Sampling { name: String, layout: String },
    #[error("the image has more than one scan")]
    MultipleScans,
    #[error("the scan does not hold the three components in frame order")]
    ScanLayout,
    #[error("quantization table {0} is missing")]
    MissingQuantTable(u8),
    #[error("non-standard Huffman tables")]
    NonStandardHuffman,
    #[error("non-standard Huffman tables that could not be re-encoded: {0}")]
    Reencode(String),
    #[error("{0} bytes of scan data, more than the 16 MiB a fragment offset can address")]
    TooLarge(usize),
}

impl Unsupported {
    /// What the user can do about it.
    pub fn fix(&self) -> &'static str {
        match self {
            Unsupported::Corrupt(_) => "check the source of the frames",
            Unsupported::Progressive | Unsupported::Lossless(_) | Unsupported::Arithmetic => {
                "RFC 2435 carries baseline JPEG only: encode with jpegenc, or cjpeg without \
                 -progressive/-arithmetic"
            }
            Unsupported::Precision(_) => "RFC 2435 carries 8-bit samples only",
            Unsupported::Components(_) | Unsupported::Sampling { .. } => {
                "encode with video/x-raw,format=I420 before jpegenc (ffmpeg: -pix_fmt \
                 yuvj420p)"
            }
            Unsupported::MultipleScans | Unsupported::ScanLayout => {
                "RFC 2435 carries single-scan (interleaved) JPEG only: encode with jpegenc"
            }
            Unsupported::MissingQuantTable(_) | Unsupported::Reencode(_) => {
                "the frame is damaged; check the source of the frames"
            }
            Unsupported::NonStandardHuffman => {
                "set huffman=reencode to re-encode the scan losslessly with the standard tables"
            }
            Unsupported::TooLarge(_) => "lower the resolution or the quality",
        }
    }
}

/// Where the scan data to send comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanData {
    /// These bytes of the input image (sent without copying).
    Borrowed(Range<usize>),
    /// A re-encoding with the standard Huffman tables.
    Reencoded(Vec<u8>),
}

/// An image ready to send: the header values and the scan data.
#[derive(Debug, Clone)]
pub struct OutgoingFrame<'a> {
    /// 0 (4:2:2) or 1 (4:2:0), plus 64 with restart markers.
    pub kind: u8,
    pub q: u8,
    pub width: u16,
    pub height: u16,
    pub restart_interval: u16,
    /// Tables to send in band (Q >= 128): luma, then chroma (or Cb and Cr).
    pub tables: Vec<QuantTable<'a>>,
    pub scan: ScanData,
}

impl OutgoingFrame<'_> {
    /// Width and height in 8-pixel units as the header carries them; 0 above 2040 pixels,
    /// where receivers need `x-dimensions` from the caps or SDP.
    pub fn header_size(&self) -> (u8, u8) {
        let units = |pixels: u16| u8::try_from(pixels.div_ceil(8)).unwrap_or(0);
        (units(self.width), units(self.height))
    }

    /// Whether the header's 8-pixel units do not give the exact size.
    pub fn needs_x_dimensions(&self) -> bool {
        !self.width.is_multiple_of(8)
            || !self.height.is_multiple_of(8)
            || self.width > 2040
            || self.height > 2040
    }

    pub fn scan_len(&self) -> usize {
        match &self.scan {
            ScanData::Borrowed(range) => range.len(),
            ScanData::Reencoded(bytes) => bytes.len(),
        }
    }

    /// The raw bytes of the tables to send.
    pub fn table_bytes(&self) -> Vec<&[u8]> {
        self.tables.iter().map(|t| t.raw()).collect()
    }
}

/// Checks `data` (one JPEG image) and works out how to send it.
pub fn prepare<'a>(
    data: &'a [u8],
    options: &PayloadOptions,
) -> Result<OutgoingFrame<'a>, Unsupported> {
    let image = if options.framed {
        jpeg::parse_framed_image(data)?
    } else {
        jpeg::parse_image(data)?
    };
    let header = &image.header;
    check_process(header.sof_type)?;
    if header.precision != 8 {
        return Err(Unsupported::Precision(header.precision));
    }
    let kind = frame_kind(&image)?;
    if !image.single_scan {
        return Err(Unsupported::MultipleScans);
    }
    let in_frame_order = image
        .scan
        .components()
        .iter()
        .map(|c| c.id)
        .eq(header.components().iter().map(|c| c.id));
    let sequential = image.scan.spectral_start == 0
        && image.scan.spectral_end == 63
        && image.scan.approx_high == 0
        && image.scan.approx_low == 0;
    if !in_frame_order || !sequential {
        return Err(Unsupported::ScanLayout);
    }

    let table = |index: usize| {
        image
            .component_quant_table(index)
            .ok_or(Unsupported::MissingQuantTable(
                header.components()[index].quant_table,
            ))
    };
    let (luma, cb, cr) = (table(0)?, table(1)?, table(2)?);
    let (q, tables) = if cb.same_values(&cr)
        && let Some(q) = qtables::detect_q(&luma, &cb)
    {
        (q, Vec::new())
    } else if cb.same_values(&cr) {
        (options.inband_q, vec![luma, cb])
    } else {
        (options.inband_q, vec![luma, cb, cr])
    };

    let scan = if huffman::uses_rfc2435_tables(&image) {
        ScanData::Borrowed(image.scan_data.clone())
    } else if options.huffman == HuffmanPolicy::Refuse {
        return Err(Unsupported::NonStandardHuffman);
    } else {
        let mut out = Vec::with_capacity(image.scan_data.len() + image.scan_data.len() / 8);
        huffman::reencode_scan(data, &image, &mut out)
            .map_err(|e| Unsupported::Reencode(e.to_string()))?;
        ScanData::Reencoded(out)
    };
    let frame = OutgoingFrame {
        kind: kind | if header.restart_interval > 0 { 64 } else { 0 },
        q,
        width: header.width,
        height: header.height,
        restart_interval: header.restart_interval,
        tables,
        scan,
    };
    if frame.scan_len() > MAX_FRAGMENT_OFFSET {
        return Err(Unsupported::TooLarge(frame.scan_len()));
    }
    Ok(frame)
}

/// Baseline and extended sequential Huffman JPEG (SOF0, SOF1) only.
fn check_process(sof_type: u8) -> Result<(), Unsupported> {
    match sof_type {
        0 | 1 => Ok(()),
        2 | 6 => Err(Unsupported::Progressive),
        9..=15 => Err(Unsupported::Arithmetic),
        other => Err(Unsupported::Lossless(other)),
    }
}

/// Type 0 (4:2:2) or 1 (4:2:0) from the sampling factors.
fn frame_kind(image: &JpegImage<'_>) -> Result<u8, Unsupported> {
    let [y, cb, cr] = image.header.components() else {
        return Err(Unsupported::Components(image.header.components().len()));
    };
    match ((y.h, y.v), (cb.h, cb.v), (cr.h, cr.v)) {
        ((2, 1), (1, 1), (1, 1)) => Ok(0),
        ((2, 2), (1, 1), (1, 1)) => Ok(1),
        _ => Err(Unsupported::Sampling {
            name: image
                .header
                .sampling()
                .map_or("unusual".to_string(), |s| s.caps_name().to_string()),
            layout: format!(
                "{}x{}, chroma {}x{}/{}x{}",
                y.h, y.v, cb.h, cb.v, cr.h, cr.v
            ),
        }),
    }
}

/// When a sender's frames carry their quantization tables: with Q 255 always; with a
/// static Q (128-254), when the tables change, and every `every` frames so that a
/// receiver that joined late or lost the frame that carried them recovers.
#[derive(Debug, Clone, Default)]
pub struct TableSchedule {
    last: Vec<u8>,
    since: u64,
}

impl TableSchedule {
    pub fn due(&mut self, frame: &OutgoingFrame<'_>, every: u64) -> bool {
        match frame.q {
            0..128 => false,
            255 => true,
            _ => {
                let bytes = frame.table_bytes().concat();
                let due = bytes != self.last || self.since + 1 >= every;
                if due {
                    self.last = bytes;
                    self.since = 0;
                } else {
                    self.since += 1;
                }
                due
            }
        }
    }
}

/// One packet's worth: its headers and which bytes of the scan data follow them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    pub main: MainHeader,
    pub restart: Option<RestartHeader>,
    /// Whether the quantization table header (and the tables, if any) precede the data.
    pub quant_header: bool,
    pub data: Range<usize>,
    /// The last packet of the frame: the RTP marker bit.
    pub marker: bool,
}

impl Fragment {
    /// Writes this fragment's headers (and tables) to `out`.
    pub fn write_headers(&self, frame: &OutgoingFrame<'_>, send_tables: bool, out: &mut Vec<u8>) {
        self.main.write(out);
        if let Some(restart) = self.restart {
            restart.write(out);
        }
        if self.quant_header {
            let tables = if send_tables {
                frame.table_bytes()
            } else {
                Vec::new()
            };
            QuantHeader::write(&tables, out);
        }
    }
}

/// Cuts a frame's scan data into fragments of at most `max_payload` bytes of RTP payload
/// each (headers included).
///
/// With restart markers, each packet holds a chunk of whole restart intervals when one
/// fits (F and L set, count = index of the chunk's first interval); an interval larger
/// than a packet is spread over several packets (F on the first, L on the last). Frames
/// with more restart intervals than the 14-bit count can number are sent unaligned
/// (F = L = 1, count 0x3FFF), as RFC 2435 section 3.1.7 prescribes.
pub struct Packetizer<'f> {
    main: MainHeader,
    restart_interval: u16,
    /// Start of each restart interval in the scan data (aligned mode only).
    boundaries: Vec<usize>,
    len: usize,
    first_extra: usize,
    max_payload: usize,
    pos: usize,
    /// Index of the interval `pos` is in.
    interval: usize,
    _frame: std::marker::PhantomData<&'f ()>,
}

impl<'f> Packetizer<'f> {
    /// `scan` is the frame's scan data; `send_tables` whether the first packet carries the
    /// tables (Q >= 128 with tables due).
    pub fn new(
        frame: &'f OutgoingFrame<'_>,
        scan: &[u8],
        send_tables: bool,
        max_payload: usize,
    ) -> Packetizer<'f> {
        let (width8, height8) = frame.header_size();
        let main = MainHeader {
            type_specific: 0,
            fragment_offset: 0,
            kind: frame.kind,
            q: frame.q,
            width8,
            height8,
        };
        let mut boundaries = Vec::new();
        if frame.restart_interval > 0 {
            boundaries = interval_starts(scan);
            if boundaries.len() > usize::from(RestartHeader::UNALIGNED) {
                boundaries.clear();
            }
        }
        let quant = if frame.q >= 128 {
            QUANT_HEADER_LEN
                + if send_tables {
                    frame.tables.iter().map(|t| t.raw().len()).sum()
                } else {
                    0
                }
        } else {
            0
        };
        Packetizer {
            main,
            restart_interval: frame.restart_interval,
            boundaries,
            len: scan.len(),
            first_extra: quant,
            max_payload,
            pos: 0,
            interval: 0,
            _frame: std::marker::PhantomData,
        }
    }

    fn header_len(&self) -> usize {
        MAIN_LEN
            + if self.restart_interval > 0 {
                RESTART_LEN
            } else {
                0
            }
            + if self.pos == 0 { self.first_extra } else { 0 }
    }

    /// Aligned mode: the end of the packet starting at `self.pos`, and its F/L/count.
    fn aligned_cut(&mut self, capacity: usize) -> (usize, RestartHeader) {
        let k = self.interval;
        let interval_end = |i: usize| self.boundaries.get(i + 1).copied().unwrap_or(self.len);
        let at_start = self.pos == self.boundaries[k];
        let mut header = RestartHeader {
            interval: self.restart_interval,
            first: at_start,
            last: false,
            count: k as u16,
        };
        if at_start {
            // As many whole intervals as fit.
            let mut j = k;
            while j < self.boundaries.len() && interval_end(j) - self.pos <= capacity {
                j += 1;
            }
            if j > k {
                header.last = true;
                self.interval = j;
                return (interval_end(j - 1), header);
            }
        }
        // Part of one large interval.
        let end = interval_end(k);
        if end - self.pos <= capacity {
            header.last = true;
            self.interval = k + 1;
            (end, header)
        } else {
            (self.pos + capacity, header)
        }
    }
}

impl Iterator for Packetizer<'_> {
    type Item = Fragment;

    fn next(&mut self) -> Option<Fragment> {
        if self.pos >= self.len && !(self.pos == 0 && self.len == 0) {
            return None;
        }
        let header_len = self.header_len();
        // At least one byte of data per packet, even with an absurdly small MTU.
        let capacity = self.max_payload.saturating_sub(header_len).max(1);
        let (end, restart) = if self.restart_interval == 0 {
            ((self.pos + capacity).min(self.len), None)
        } else if self.boundaries.is_empty() {
            let unaligned = RestartHeader {
                interval: self.restart_interval,
                first: true,
                last: true,
                count: RestartHeader::UNALIGNED,
            };
            ((self.pos + capacity).min(self.len), Some(unaligned))
        } else {
            let (end, header) = self.aligned_cut(capacity);
            (end, Some(header))
        };
        let fragment = Fragment {
            main: MainHeader {
                fragment_offset: self.pos as u32,
                ..self.main
            },
            restart,
            quant_header: self.pos == 0 && self.main.q >= 128,
            data: self.pos..end,
            marker: end >= self.len,
        };
        self.pos = end.max(self.pos + 1);
        Some(fragment)
    }
}

/// Where each restart interval starts in entropy-coded data: 0, and after every RSTn.
pub fn interval_starts(scan: &[u8]) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        memchr::memchr_iter(0xFF, scan)
            .filter(|&i| {
                scan.get(i + 1)
                    .is_some_and(|m| (markers::RST0..=markers::RST7).contains(m))
            })
            .map(|i| i + 2)
            .filter(|&start| start < scan.len()),
    );
    starts
}
