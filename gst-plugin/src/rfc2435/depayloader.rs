//! Receiving side: from RFC 2435 packets back to complete JPEG images.
//!
//! A frame is the run of packets with one RTP timestamp, its fragments laid end to end by
//! fragment offset. The image is output only when every fragment arrived, in order, up to
//! the packet with the marker bit; anything else (a gap, a duplicate, a reordered or an
//! inconsistent packet, a missing end) drops the frame with a reason, so nothing corrupt
//! leaves. Optionally, a frame with restart markers that lost packets is salvaged up to
//! its last complete restart interval.
//!
//! Packets of the networking-lab dialect (a whole JPEG per packet, no RFC 2435 header)
//! are recognised by their first bytes, `FF D8 FF`, which no first fragment can start with
//! (its fragment offset would be 0xD8FFxx).

use super::headers::{HeaderError, MAIN_LEN, MainHeader, QuantHeader, RESTART_LEN, RestartHeader};
use super::qtables;
use crate::jpeg::{self, FrameHeader, HeaderSpec, JpegError, QuantTable, markers};

/// One RTP packet as the depayloader needs it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub payload: &'a [u8],
    pub marker: bool,
    pub timestamp: u32,
}

/// Why a frame was not output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DropReason {
    #[error("lost packets: expected fragment offset {expected}, got {got}")]
    Lost { expected: usize, got: usize },
    #[error("duplicated or reordered packet: fragment offset {got} after {expected}")]
    OutOfOrder { expected: usize, got: usize },
    #[error("the first packet (fragment offset 0) was lost")]
    MissingStart,
    #[error("the last packet (marker bit) was lost")]
    MissingEnd,
    #[error("packets of one frame disagree on {0}")]
    Inconsistent(&'static str),
    #[error("bad header: {0}")]
    Header(#[from] HeaderError),
    #[error("Q {0} refers to quantization tables that were never received")]
    NoTables(u8),
    #[error("Q 255 without quantization tables")]
    EmptyDynamicTables,
    #[error("the image is over 2040 pixels but the caps give no x-dimensions")]
    NoDimensions,
    #[error("a whole-JPEG (lab dialect) packet with an invalid JPEG: {0}")]
    LabJpeg(JpegError),
}

/// A frame that was dropped: its RTP timestamp and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub timestamp: u32,
    pub reason: DropReason,
}

/// A complete image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub jpeg: Vec<u8>,
    pub timestamp: u32,
    pub width: u16,
    pub height: u16,
    /// Luma sampling: (2, 1) for 4:2:2, (2, 2) for 4:2:0.
    pub luma_sampling: (u8, u8),
    /// Some quantization table is 16-bit (the header is SOF1).
    pub extended: bool,
    /// Cut short at the last complete restart interval after a loss.
    pub salvaged: bool,
}

/// What one packet produced.
#[derive(Debug, Default)]
pub struct Received {
    pub frame: Option<Frame>,
    /// The packet's payload is a whole JPEG (networking-lab dialect) with this header, to
    /// output as is.
    pub whole_jpeg: Option<FrameHeader>,
    pub dropped: Vec<Dropped>,
}

/// Receiver settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct DepayOptions {
    /// Output frames that lost packets up to their last complete restart interval.
    pub salvage: bool,
    /// Exact size from `x-dimensions`, when the caps give one.
    pub dimensions: Option<(u16, u16)>,
}

/// The frame being put together.
struct Assembly {
    timestamp: u32,
    /// From the first packet; `None` when it was lost.
    main: Option<MainHeader>,
    /// The image so far: header, then scan data from `data_start`.
    jpeg: Vec<u8>,
    data_start: usize,
    next_offset: usize,
    width: u16,
    height: u16,
    extended: bool,
    broken: Option<DropReason>,
}

/// Turns packets into frames.
pub struct Reassembler {
    options: DepayOptions,
    /// In-band tables received with Q 128-254, kept for frames that omit them.
    cached_tables: Vec<Option<Vec<u8>>>,
    cached_precision: Vec<u8>,
    current: Option<Assembly>,
    /// Size of the last output frame, to size the next one's buffer.
    size_hint: usize,
}

impl Reassembler {
    pub fn new(options: DepayOptions) -> Reassembler {
        Reassembler {
            options,
            cached_tables: vec![None; 128],
            cached_precision: vec![0; 128],
            current: None,
            size_hint: 0,
        }
    }

    pub fn set_options(&mut self, options: DepayOptions) {
        self.options = options;
    }

    pub fn set_salvage(&mut self, salvage: bool) {
        self.options.salvage = salvage;
    }

    /// Forgets the frame in progress (after a flush or a discontinuity upstream chose to
    /// reset), without reporting it.
    pub fn reset(&mut self) {
        self.current = None;
    }

    /// Takes in one packet.
    pub fn push(&mut self, packet: &Packet<'_>) -> Received {
        self.push_parts(&[packet.payload], packet.marker, packet.timestamp)
    }

    /// Takes in one packet whose payload is split in `parts` (as a packet's memories are),
    /// without joining them first.
    pub fn push_parts(&mut self, parts: &[&[u8]], marker: bool, timestamp: u32) -> Received {
        let mut received = Received::default();
        let mut head_copy = [0u8; HEAD_MAX];
        let head = head_of(parts, &mut head_copy);

        if head.starts_with(&[0xFF, markers::SOI, 0xFF]) {
            if let Some(dropped) = self.abandon() {
                received.dropped.push(dropped);
            }
            let joined;
            let whole: &[u8] = if parts.len() == 1 {
                parts[0]
            } else {
                joined = parts.concat();
                &joined
            };
            match jpeg::parse_header(whole) {
                Ok(header) => received.whole_jpeg = Some(header),
                Err(e) => received.dropped.push(Dropped {
                    timestamp,
                    reason: DropReason::LabJpeg(e),
                }),
            }
            return received;
        }

        if self
            .current
            .as_ref()
            .is_some_and(|a| a.timestamp != timestamp)
            && let Some(dropped) = self.abandon()
        {
            received.dropped.push(dropped);
        }

        if let Err(reason) = self.add(head, parts, timestamp) {
            match self.current.as_mut() {
                Some(assembly) => {
                    assembly.broken.get_or_insert(reason);
                }
                None => self.current = Some(Assembly::broken(timestamp, reason)),
            }
        }

        if marker && let Some(assembly) = self.current.take() {
            match self.finish(assembly) {
                Ok(frame) => received.frame = Some(frame),
                Err(dropped) => received.dropped.push(dropped),
            }
        }
        received
    }

    /// The stream ended: the frame in progress, if any, is incomplete.
    pub fn end_of_stream(&mut self) -> Option<Dropped> {
        self.abandon()
    }

    /// Ends the frame in progress as incomplete.
    fn abandon(&mut self) -> Option<Dropped> {
        let assembly = self.current.take()?;
        Some(Dropped {
            timestamp: assembly.timestamp,
            reason: assembly.broken.unwrap_or(DropReason::MissingEnd),
        })
    }

    /// Adds a packet to the frame in progress. `head` holds the payload's first bytes
    /// (all of them, or at least the largest header), `parts` the whole payload.
    fn add(&mut self, head: &[u8], parts: &[&[u8]], timestamp: u32) -> Result<(), DropReason> {
        let main = MainHeader::parse(head)?;
        let mut used = MAIN_LEN;
        let restart = if main.has_restart_header() {
            let header = RestartHeader::parse(&head[used..], main.kind)?;
            used += RESTART_LEN;
            Some(header)
        } else {
            None
        };
        let offset = main.fragment_offset as usize;

        if offset == 0 {
            if self.current.as_ref().is_some_and(|a| a.main.is_some()) {
                return Err(DropReason::OutOfOrder {
                    expected: self.current.as_ref().map_or(0, |a| a.next_offset),
                    got: 0,
                });
            }
            let (assembly, consumed) = self.start(&main, restart, &head[used..], timestamp)?;
            used += consumed;
            self.current = Some(assembly);
        }

        let Some(assembly) = self.current.as_mut() else {
            return Err(DropReason::MissingStart);
        };
        if assembly.broken.is_some() {
            return Ok(());
        }
        let Some(first) = assembly.main else {
            return Err(DropReason::MissingStart);
        };
        if (main.kind, main.q, main.width8, main.height8)
            != (first.kind, first.q, first.width8, first.height8)
        {
            return Err(DropReason::Inconsistent("type, Q or size"));
        }
        if offset != assembly.next_offset {
            let (expected, got) = (assembly.next_offset, offset);
            return Err(if offset > expected {
                DropReason::Lost { expected, got }
            } else {
                DropReason::OutOfOrder { expected, got }
            });
        }
        // The data after the headers, appended part by part.
        let mut skip = used;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            assembly.jpeg.extend_from_slice(&part[skip..]);
            assembly.next_offset += part.len() - skip;
            skip = 0;
        }
        Ok(())
    }

    /// Begins a frame from its first packet: works out the tables and the size, and
    /// writes the JPEG header. Returns the assembly and the bytes of `rest` the table
    /// header used.
    fn start(
        &mut self,
        main: &MainHeader,
        restart: Option<RestartHeader>,
        rest: &[u8],
        timestamp: u32,
    ) -> Result<(Assembly, usize), DropReason> {
        let (width, height) = self.dimensions(main)?;
        // Room for a frame a quarter larger than the last one, so it rarely has to grow.
        let mut jpeg = Vec::with_capacity(self.size_hint + self.size_hint / 4 + 4096);
        let mut write = |tables: &[QuantTable<'_>]| {
            jpeg::write_header(
                &mut jpeg,
                &HeaderSpec {
                    width,
                    height,
                    luma_sampling: main.luma_sampling(),
                    quant_tables: tables,
                    restart_interval: restart.map_or(0, |r| r.interval),
                },
            );
            tables.iter().any(QuantTable::is_16bit)
        };
        let (consumed, extended) = if main.q < 128 {
            let t = qtables::tables_for(main.q);
            (0, write(&[t.luma_table(), t.chroma_table()]))
        } else {
            let (header, used) = QuantHeader::parse(rest)?;
            let slot = usize::from(main.q - 128);
            if !header.data.is_empty() && main.q < 255 {
                self.cached_tables[slot] = Some(header.data.to_vec());
                self.cached_precision[slot] = header.precision;
            }
            let (data, precision) = if !header.data.is_empty() {
                (header.data, header.precision)
            } else if main.q == 255 {
                return Err(DropReason::EmptyDynamicTables);
            } else {
                let cached = self.cached_tables[slot]
                    .as_deref()
                    .ok_or(DropReason::NoTables(main.q))?;
                (cached, self.cached_precision[slot])
            };
            let raw = QuantHeader { precision, data }.tables()?;
            let tables: Vec<QuantTable<'_>> =
                raw.iter().filter_map(|t| QuantTable::from_raw(t)).collect();
            (used, write(&tables))
        };
        let data_start = jpeg.len();
        Ok((
            Assembly {
                timestamp,
                main: Some(*main),
                jpeg,
                data_start,
                next_offset: 0,
                width,
                height,
                extended,
                broken: None,
            },
            consumed,
        ))
    }

    /// The image size: from the header's 8-pixel units, made exact by `x-dimensions`
    /// when the caps have it and it agrees.
    fn dimensions(&self, main: &MainHeader) -> Result<(u16, u16), DropReason> {
        let exact = self.options.dimensions;
        let pick = |units: u8, exact: Option<u16>| match (units, exact) {
            (0, Some(px)) if px > 2040 => Ok(px),
            (0, _) => Err(DropReason::NoDimensions),
            (u, Some(px)) if px.div_ceil(8) == u16::from(u) => Ok(px),
            (u, _) => Ok(u16::from(u) * 8),
        };
        Ok((
            pick(main.width8, exact.map(|d| d.0))?,
            pick(main.height8, exact.map(|d| d.1))?,
        ))
    }

    fn finish(&mut self, mut assembly: Assembly) -> Result<Frame, Dropped> {
        let drop = |reason| Dropped {
            timestamp: assembly.timestamp,
            reason,
        };
        let Some(main) = assembly.main else {
            return Err(drop(
                assembly.broken.clone().unwrap_or(DropReason::MissingStart),
            ));
        };
        let mut salvaged = false;
        if let Some(reason) = assembly.broken.take() {
            let data = &assembly.jpeg[assembly.data_start..];
            let cut = match (self.options.salvage && main.has_restart_header(), &reason) {
                (true, DropReason::Lost { .. }) => last_interval_end(data),
                _ => None,
            };
            let Some(cut) = cut else {
                return Err(drop(reason));
            };
            assembly.jpeg.truncate(assembly.data_start + cut);
            salvaged = true;
        }
        if !assembly.jpeg.ends_with(&[0xFF, markers::EOI]) {
            assembly.jpeg.extend_from_slice(&[0xFF, markers::EOI]);
        }
        self.size_hint = assembly.jpeg.len();
        Ok(Frame {
            jpeg: assembly.jpeg,
            timestamp: assembly.timestamp,
            width: assembly.width,
            height: assembly.height,
            luma_sampling: main.luma_sampling(),
            extended: assembly.extended,
            salvaged,
        })
    }
}

impl Frame {
    /// The image's chroma sampling: 4:2:0 or 4:2:2, the two RFC 2435 types carry.
    pub fn sampling(&self) -> jpeg::Sampling {
        if self.luma_sampling == (2, 2) {
            jpeg::Sampling::Ycbcr420
        } else {
            jpeg::Sampling::Ycbcr422
        }
    }
}

impl Assembly {
    /// A frame that cannot be output, for `reason`; later packets of it are ignored.
    fn broken(timestamp: u32, reason: DropReason) -> Assembly {
        Assembly {
            timestamp,
            main: None,
            jpeg: Vec::new(),
            data_start: 0,
            next_offset: 0,
            width: 0,
            height: 0,
            extended: false,
            broken: Some(reason),
        }
    }
}

/// The most header bytes a packet can start with: main, restart marker and quantization
/// table headers, and three 16-bit tables.
const HEAD_MAX: usize = MAIN_LEN + RESTART_LEN + 4 + 3 * 128;

/// The payload's first bytes as one slice: the first part when it is the only one or holds
/// any header, else up to `HEAD_MAX` bytes of the parts copied into `copy`.
fn head_of<'a>(parts: &[&'a [u8]], copy: &'a mut [u8; HEAD_MAX]) -> &'a [u8] {
    match parts {
        [] => &[],
        [only] => only,
        [first, ..] if first.len() >= HEAD_MAX => first,
        _ => {
            let mut n = 0;
            for part in parts {
                let take = part.len().min(HEAD_MAX - n);
                copy[n..n + take].copy_from_slice(&part[..take]);
                n += take;
                if n == HEAD_MAX {
                    break;
                }
            }
            &copy[..n]
        }
    }
}

/// End of the last complete restart interval in contiguous scan data received from its
/// start: the position of the last RSTn marker (the interval before it is whole).
fn last_interval_end(data: &[u8]) -> Option<usize> {
    memchr::memrchr_iter(0xFF, data).find(|&i| {
        data.get(i + 1)
            .is_some_and(|m| (markers::RST0..=markers::RST7).contains(m))
    })
}
