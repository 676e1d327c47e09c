//! Receiving side: from RFC 2435 packets back to complete JPEG images.
//!
//! A frame is the set of packets with one RTP timestamp. Every packet's fragment offset
//! says where its data belongs in the frame's scan data, so packets are placed where they
//! belong whatever order they arrive in: reordering needs no jitter buffer and adds no
//! latency. A few frames are put together at once (`frames_in_progress`), keyed by
//! timestamp. A frame is output the moment its bytes from 0 to the end of the marker
//! packet are all there. Frames leave in timestamp order: when a frame is complete, every
//! older frame still in progress is dropped with its reason (or salvaged), never output
//! late. Duplicates, packets that arrive after their frame was decided, and repaired
//! reorderings are counted ([`ReorderStats`]). Optionally, a frame with restart markers
//! that lost packets is salvaged up to its last complete restart interval.
//!
//! Packets of the networking-lab dialect (a whole JPEG per packet, no RFC 2435 header)
//! are recognised by their first bytes, `FF D8 FF`, which no first fragment can start with
//! (its fragment offset would be 0xD8FFxx), unless [`LabDialect`] says which they are.

use std::collections::VecDeque;

use super::assembly::{Assembly, Placement, Start, Tables};
use super::headers::{HeaderError, MAIN_LEN, MainHeader, QuantHeader, RESTART_LEN, RestartHeader};
use crate::jpeg::{self, FrameHeader, JpegError, markers};

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
    #[error("lost packets: bytes from fragment offset {expected} to {got} never arrived")]
    Lost { expected: usize, got: usize },
    #[error(
        "packets overlap: fragment offset {got} inside bytes already received up to {expected}"
    )]
    Overlap { expected: usize, got: usize },
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
    #[error("the header gives no {0} (0 means over 2040 pixels) and the caps have no x-dimensions")]
    NoDimensions(&'static str),
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
    /// Frames to output, oldest first (usually none or one; a salvaged older frame can
    /// come before the one this packet completed).
    pub frames: Vec<Frame>,
    /// The packet's payload is a whole JPEG (networking-lab dialect) with this header, to
    /// output as is.
    pub whole_jpeg: Option<FrameHeader>,
    pub dropped: Vec<Dropped>,
}

/// Packet counts about order, since the reassembler was made or reset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Packets whose bytes had all been received already (dropped).
    pub duplicates: u64,
    /// Packets that arrived after a packet that follows them, and were put in place.
    pub reordered: u64,
    /// Packets of a frame that was already output or dropped (ignored).
    pub late: u64,
}

/// Frames put together at once by default: the one arriving, and two older ones still
/// waiting for reordered packets.
pub const DEFAULT_FRAMES_IN_PROGRESS: usize = 3;

/// A packet more than this far behind the newest frame seen (in 90 kHz units: 1 s) is not
/// late: the sender went back (a restart, a seek backwards).
const LATE_WINDOW: u32 = 90_000;
/// A packet more than this far ahead of the newest frame seen (10 s) is not the next
/// frame: the sender jumped (or the packet is not of this stream), so the frames in
/// progress, which would wait for it to go by, are given up.
const FORWARD_JUMP: u32 = 900_000;
/// Receiver settings.
#[derive(Debug, Clone, Copy)]
pub struct DepayOptions {
    /// Output frames that lost packets up to their last complete restart interval.
    pub salvage: bool,
    /// Exact size from `x-dimensions`, when the caps give one.
    pub dimensions: Option<(u16, u16)>,
    /// Frames put together at once, so that packets reordered across frame boundaries
    /// still find their frame (at least 1).
    pub frames_in_progress: usize,
    /// Whether packets are in the networking lab's dialect (a whole JPEG each).
    pub lab: LabDialect,
}

/// Whether packets carry a whole JPEG each, in the networking lab's dialect, rather than
/// RFC 2435 fragments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LabDialect {
    /// Told per packet by its first bytes, `FF D8 FF`, which no RFC 2435 first fragment
    /// starts with (its fragment offset would be 0xD8FFxx).
    #[default]
    Auto,
    /// Every packet is RFC 2435.
    Never,
    /// Every packet is a whole JPEG.
    Always,
}

impl Default for DepayOptions {
    fn default() -> Self {
        DepayOptions {
            salvage: false,
            dimensions: None,
            frames_in_progress: DEFAULT_FRAMES_IN_PROGRESS,
            lab: LabDialect::Auto,
        }
    }
}

/// Turns packets into frames.
pub struct Reassembler {
    options: DepayOptions,
    /// In-band tables received with Q 128-254, kept for frames that omit them.
    cached_tables: Vec<Option<(u8, Vec<u8>)>>,
    /// Frames in progress, oldest first.
    frames: VecDeque<Assembly>,
    /// The newest timestamp output or dropped: packets at or behind it are late.
    decided: Option<u32>,
    /// Whether that frame was output (its packets again are duplicates, not late).
    decided_output: bool,
    stats: ReorderStats,
    /// Size of the last output frame, to size the next one's buffer.
    size_hint: usize,
}

/// `a` comes after `b` in RTP timestamp order (modulo 2^32).
fn after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl Reassembler {
    pub fn new(options: DepayOptions) -> Reassembler {
        Reassembler {
            options,
            cached_tables: vec![None; 128],
            frames: VecDeque::new(),
            decided: None,
            decided_output: false,
            stats: ReorderStats::default(),
            size_hint: 0,
        }
    }

    pub fn set_options(&mut self, options: DepayOptions) {
        self.options = options;
    }

    pub fn set_salvage(&mut self, salvage: bool) {
        self.options.salvage = salvage;
    }

    pub fn set_lab_dialect(&mut self, lab: LabDialect) {
        self.options.lab = lab;
    }

    pub fn set_frames_in_progress(&mut self, frames: usize) {
        self.options.frames_in_progress = frames;
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Forgets the frames in progress (after a flush), without reporting them.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.decided = None;
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

        let whole_jpeg = match self.options.lab {
            LabDialect::Auto => head.starts_with(&[0xFF, markers::SOI, 0xFF]),
            LabDialect::Never => false,
            LabDialect::Always => true,
        };
        if whole_jpeg {
            self.decide_all(&mut received);
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

        let Some(index) = self.frame_for(timestamp, &mut received) else {
            return received;
        };
        if let Err(reason) = self.add(index, head, parts, marker) {
            self.frames[index].broken.get_or_insert(reason);
        }
        self.output_ready(&mut received);
        received
    }

    /// Outputs every frame that is ready, oldest first; the older frames still in
    /// progress before each can no longer be output in order, and are decided first.
    fn output_ready(&mut self, received: &mut Received) {
        loop {
            let mut ready = None;
            for i in 0..self.frames.len() {
                let assembly = &mut self.frames[i];
                if assembly.is_complete() {
                    assembly.write_late_header(&self.cached_tables);
                }
                // A frame whose tables came late may have had them from an older frame
                // still in progress: it does not end that frame's wait.
                if assembly.waits_for_older && i > 0 {
                    continue;
                }
                if assembly.is_ready() {
                    ready = Some(i);
                    break;
                }
            }
            let Some(ready) = ready else {
                return;
            };
            for _ in 0..=ready {
                self.decide_oldest(received);
            }
        }
    }

    /// The stream ended: the frames in progress are incomplete (salvaged, or dropped).
    pub fn end_of_stream(&mut self) -> Received {
        let mut received = Received::default();
        self.decide_all(&mut received);
        received
    }

    /// The index of the frame in progress for `timestamp`, made if needed; `None` for a
    /// late packet.
    fn frame_for(&mut self, timestamp: u32, received: &mut Received) -> Option<usize> {
        if let Some(i) = self.frames.iter().position(|a| a.timestamp == timestamp) {
            return Some(i);
        }
        let newest = self
            .frames
            .back()
            .map(|a| a.timestamp)
            .into_iter()
            .chain(self.decided)
            .reduce(|a, b| if after(a, b) { a } else { b });
        if let Some(newest) = newest {
            let jumped = if after(timestamp, newest) {
                timestamp.wrapping_sub(newest) > FORWARD_JUMP
            } else {
                newest.wrapping_sub(timestamp) > LATE_WINDOW
            };
            if jumped {
                // The sender restarted, or went back or far ahead: what is in progress
                // will not be completed.
                self.decide_all(received);
                self.decided = None;
            }
        }
        if let Some(decided) = self.decided
            && !after(timestamp, decided)
        {
            if timestamp == decided && self.decided_output {
                self.stats.duplicates += 1;
            } else {
                self.stats.late += 1;
            }
            return None;
        }
        let at = self
            .frames
            .iter()
            .position(|a| after(a.timestamp, timestamp))
            .unwrap_or(self.frames.len());
        self.frames.insert(at, Assembly::new(timestamp));
        let mut index = at;
        while self.frames.len() > self.options.frames_in_progress.max(1) {
            if index == 0 {
                // The new frame is the oldest: no room to wait for it.
                self.frames.remove(0);
                self.stats.late += 1;
                return None;
            }
            self.decide_oldest(received);
            index -= 1;
        }
        Some(index)
    }

    /// Outputs, salvages or drops the oldest frame in progress.
    fn decide_oldest(&mut self, received: &mut Received) {
        let Some(assembly) = self.frames.pop_front() else {
            return;
        };
        self.decided = Some(assembly.timestamp);
        match self.finish(assembly) {
            Ok(frame) => {
                self.decided_output = true;
                received.frames.push(frame);
            }
            Err(dropped) => {
                self.decided_output = false;
                received.dropped.push(dropped);
            }
        }
    }

    fn decide_all(&mut self, received: &mut Received) {
        while !self.frames.is_empty() {
            self.decide_oldest(received);
        }
    }

    /// Adds a packet to frame `index`. `head` holds the payload's first bytes (all of
    /// them, or at least the largest header), `parts` the whole payload.
    fn add(
        &mut self,
        index: usize,
        head: &[u8],
        parts: &[&[u8]],
        marker: bool,
    ) -> Result<(), DropReason> {
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
        let assembly = &mut self.frames[index];
        if assembly.broken.is_some() {
            return Ok(());
        }
        let shape = (main.kind, main.q, main.width8, main.height8);
        if *assembly.shape.get_or_insert(shape) != shape {
            return Err(DropReason::Inconsistent("type, Q or size"));
        }
        let first_packet = offset == 0 && assembly.start.is_none();
        if offset == 0 && !first_packet {
            // The first packet again.
            self.stats.duplicates += 1;
            return Ok(());
        }
        if first_packet {
            used += self.read_start(index, &main, restart, &head[used..])?;
        }
        let newer_in_progress = index + 1 < self.frames.len();
        let assembly = &mut self.frames[index];
        let len = parts
            .iter()
            .map(|p| p.len())
            .sum::<usize>()
            .saturating_sub(used);
        let range = offset..offset + len;
        if marker {
            if assembly.end.is_some_and(|end| end != range.end) {
                return Err(DropReason::Inconsistent("the end of the frame"));
            }
            let received_past = assembly.ahead.last().map_or(assembly.contiguous, |r| r.end);
            if received_past > range.end {
                return Err(DropReason::Inconsistent("the end of the frame"));
            }
            assembly.end = Some(range.end);
        }
        if assembly.end.is_some_and(|end| range.end > end) {
            return Err(DropReason::Inconsistent("the end of the frame"));
        }
        match assembly.place(range)? {
            Placement::Duplicate => {
                self.stats.duplicates += 1;
                return Ok(());
            }
            // A packet of a newer frame came before this one, or one further on in this
            // frame did.
            Placement::Reordered => self.stats.reordered += 1,
            Placement::InOrder | Placement::Ahead if newer_in_progress => self.stats.reordered += 1,
            Placement::InOrder | Placement::Ahead => {}
        }
        assembly.write(offset, parts, used);
        Ok(())
    }

    /// Reads the first packet's table header and size into frame `index`, and writes the
    /// JPEG header when the tables are known and no data came before. Returns the bytes
    /// of `rest` the table header used.
    fn read_start(
        &mut self,
        index: usize,
        main: &MainHeader,
        restart: Option<RestartHeader>,
        rest: &[u8],
    ) -> Result<usize, DropReason> {
        let (width, height) = self.dimensions(main)?;
        let (tables, consumed) = if main.q < 128 {
            (Tables::Standard(main.q), 0)
        } else {
            let (header, used) = QuantHeader::parse(rest)?;
            let slot = usize::from(main.q - 128);
            let tables = if !header.data.is_empty() {
                header.tables()?;
                if main.q < 255 {
                    self.cached_tables[slot] = Some((header.precision, header.data.to_vec()));
                }
                Tables::InBand {
                    precision: header.precision,
                    data: header.data.to_vec(),
                }
            } else if main.q == 255 {
                return Err(DropReason::EmptyDynamicTables);
            } else {
                match &self.cached_tables[slot] {
                    Some((precision, data)) => Tables::InBand {
                        precision: *precision,
                        data: data.clone(),
                    },
                    None => Tables::Awaited(main.q),
                }
            };
            (tables, used)
        };
        let assembly = &mut self.frames[index];
        assembly.start = Some(Start {
            main: *main,
            restart_interval: restart.map_or(0, |r| r.interval),
            tables,
            width,
            height,
        });
        if assembly.jpeg.is_empty() {
            assembly
                .jpeg
                .reserve(self.size_hint + self.size_hint / 4 + 4096);
            // Tables still awaited: the header is written when the frame is complete.
            if let Ok(Some(extended)) = assembly.write_header_into_empty(&self.cached_tables) {
                assembly.extended = extended;
            }
        }
        Ok(consumed)
    }

    /// The image size: from the header's 8-pixel units, made exact by `x-dimensions`
    /// when the caps have it and it agrees. A 0 field (GStreamer's rtpjpegpay writes 0 in
    /// both as soon as either side is over 2040) takes that side from `x-dimensions`.
    fn dimensions(&self, main: &MainHeader) -> Result<(u16, u16), DropReason> {
        let exact = self.options.dimensions;
        let pick = |units: u8, exact: Option<u16>, side: &'static str| match (units, exact) {
            (0, Some(px)) if px > 0 => Ok(px),
            (0, _) => Err(DropReason::NoDimensions(side)),
            (u, Some(px)) if px.div_ceil(8) == u16::from(u) => Ok(px),
            (u, _) => Ok(u16::from(u) * 8),
        };
        Ok((
            pick(main.width8, exact.map(|d| d.0), "width")?,
            pick(main.height8, exact.map(|d| d.1), "height")?,
        ))
    }

    /// Outputs a complete frame, salvages an incomplete one if it can, or says why not.
    fn finish(&mut self, mut assembly: Assembly) -> Result<Frame, Dropped> {
        // An incomplete frame whose data came before its first packet: salvage needs
        // the header too.
        assembly.write_late_header(&self.cached_tables);
        let timestamp = assembly.timestamp;
        let drop = |reason| Dropped { timestamp, reason };
        let reason = assembly.missing();
        let Some(start) = &assembly.start else {
            return Err(drop(reason.unwrap_or(DropReason::MissingStart)));
        };
        let mut salvaged = false;
        if let Some(reason) = reason {
            let salvageable = self.options.salvage
                && start.main.has_restart_header()
                && assembly.header_written
                && matches!(reason, DropReason::Lost { .. } | DropReason::MissingEnd);
            let data = &assembly.jpeg[assembly.data_start..];
            let cut = salvageable
                .then(|| last_interval_end(&data[..assembly.contiguous.min(data.len())]))
                .flatten();
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
        let (width, height, luma_sampling) =
            (start.width, start.height, start.main.luma_sampling());
        Ok(Frame {
            jpeg: assembly.jpeg,
            timestamp: assembly.timestamp,
            width,
            height,
            luma_sampling,
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
