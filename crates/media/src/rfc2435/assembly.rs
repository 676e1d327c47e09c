//! One frame being put together from RFC 2435 fragments: where each fragment's bytes go,
//! which bytes are still missing, and the JPEG header in front of them.

use std::ops::Range;

use super::depayloader::DropReason;
use super::headers::{MainHeader, QuantHeader};
use super::qtables;
use crate::jpeg::{self, HeaderSpec, QuantTable};

/// Fragments received past a gap in one frame, at most: more is not reordering.
const MAX_AHEAD: usize = 1024;
/// How far past the bytes received so far a fragment may start (the bytes between are
/// kept zeroed until they come): further is not reordering but loss.
const MAX_GAP: usize = 256 * 1024;

/// Where a frame's quantization tables come from.
pub(super) enum Tables {
    /// Q 1-99: computed from Q.
    Standard(u8),
    /// Q 128-254 or 255 with the tables in the first packet, or Q 128-254 from the
    /// cache: the table header's precision byte and table data.
    InBand { precision: u8, data: Vec<u8> },
    /// Q 128-254 with no tables in the first packet and none cached yet: an older frame's
    /// first packet, still on its way, may bring them.
    Awaited(u8),
}

/// What the first packet (fragment offset 0) tells about the frame.
pub(super) struct Start {
    pub(super) main: MainHeader,
    pub(super) restart_interval: u16,
    pub(super) tables: Tables,
    pub(super) width: u16,
    pub(super) height: u16,
}

/// A frame being put together.
pub(super) struct Assembly {
    pub(super) timestamp: u32,
    /// Type, Q and size of the first packet that arrived, which every other must match.
    pub(super) shape: Option<(u8, u8, u8, u8)>,
    pub(super) start: Option<Start>,
    /// The JPEG header (once written), then the scan data, each fragment at
    /// `data_start + offset`. Bytes not received yet are zero.
    pub(super) jpeg: Vec<u8>,
    /// Where scan data begins in `jpeg`: the header's length, or 0 while no header has
    /// been written (fragments arrived before the first packet, or its tables did not).
    pub(super) data_start: usize,
    pub(super) header_written: bool,
    /// Its tables were awaited: it is output only once no older frame is in progress.
    pub(super) waits_for_older: bool,
    pub(super) extended: bool,
    /// Scan bytes from 0 that are all present.
    pub(super) contiguous: usize,
    /// Fragments received past a gap: sorted, disjoint, all beyond `contiguous`.
    pub(super) ahead: Vec<Range<usize>>,
    /// The end of the marker packet's fragment: the scan data's length.
    pub(super) end: Option<usize>,
    pub(super) broken: Option<DropReason>,
}

/// Where a fragment went.
pub(super) enum Placement {
    /// Right after the bytes received so far.
    InOrder,
    /// Past a gap.
    Ahead,
    /// Into a gap left by packets that came before it.
    Reordered,
    /// Its bytes were all there already.
    Duplicate,
}

impl Assembly {
    pub(super) fn new(timestamp: u32) -> Assembly {
        Assembly {
            timestamp,
            shape: None,
            start: None,
            jpeg: Vec::new(),
            data_start: 0,
            header_written: false,
            waits_for_older: false,
            extended: false,
            contiguous: 0,
            ahead: Vec::new(),
            end: None,
            broken: None,
        }
    }

    /// Every byte from 0 to the marker packet's end is there, and the first packet.
    pub(super) fn is_complete(&self) -> bool {
        self.start.is_some()
            && self.broken.is_none()
            && self.end == Some(self.contiguous)
            && self.ahead.is_empty()
    }

    /// Complete, with its JPEG header written: to output.
    pub(super) fn is_ready(&self) -> bool {
        self.header_written && self.is_complete()
    }

    /// Why the frame cannot be output as it is; `None` when it can.
    pub(super) fn missing(&self) -> Option<DropReason> {
        if let Some(reason) = &self.broken {
            return Some(reason.clone());
        }
        let Some(start) = &self.start else {
            return Some(DropReason::MissingStart);
        };
        if self.is_complete() {
            return match start.tables {
                Tables::Awaited(q) if !self.header_written => Some(DropReason::NoTables(q)),
                _ => None,
            };
        }
        Some(match (self.ahead.first(), self.end) {
            (Some(next), _) => DropReason::Lost {
                expected: self.contiguous,
                got: next.start,
            },
            (None, Some(end)) => DropReason::Lost {
                expected: self.contiguous,
                got: end,
            },
            (None, None) => DropReason::MissingEnd,
        })
    }

    /// Records that the fragment `range` arrived.
    pub(super) fn place(&mut self, range: Range<usize>) -> Result<Placement, DropReason> {
        if range.start == self.contiguous {
            if self.ahead.first().is_some_and(|r| r.start < range.end) {
                return Err(DropReason::Overlap {
                    expected: range.end,
                    got: self.ahead[0].start,
                });
            }
            self.contiguous = range.end;
            if self
                .ahead
                .first()
                .is_none_or(|r| r.start != self.contiguous)
            {
                return Ok(if self.ahead.is_empty() {
                    Placement::InOrder
                } else {
                    Placement::Reordered
                });
            }
            // This fills a gap: the fragments that were waiting for it join the run.
            let mut n = 0;
            while n < self.ahead.len() && self.ahead[n].start == self.contiguous {
                self.contiguous = self.ahead[n].end;
                n += 1;
            }
            self.ahead.drain(..n);
            return Ok(Placement::Reordered);
        }
        if range.end <= self.contiguous {
            return Ok(Placement::Duplicate);
        }
        if range.start < self.contiguous {
            return Err(DropReason::Overlap {
                expected: self.contiguous,
                got: range.start,
            });
        }
        let at = self.ahead.partition_point(|r| r.start < range.start);
        if self.ahead.get(at).is_some_and(|r| *r == range) {
            return Ok(Placement::Duplicate);
        }
        let overlaps_before = at > 0 && self.ahead[at - 1].end > range.start;
        let overlaps_after = self.ahead.get(at).is_some_and(|r| r.start < range.end);
        if overlaps_before || overlaps_after {
            return Err(DropReason::Overlap {
                expected: if overlaps_before {
                    self.ahead[at - 1].end
                } else {
                    range.end
                },
                got: range.start,
            });
        }
        let received_to = self.ahead.last().map_or(self.contiguous, |r| r.end);
        if self.ahead.len() >= MAX_AHEAD || range.start > received_to.saturating_add(MAX_GAP) {
            return Err(DropReason::Lost {
                expected: self.contiguous,
                got: range.start,
            });
        }
        let reordered = at < self.ahead.len();
        self.ahead.insert(at, range);
        Ok(if reordered {
            Placement::Reordered
        } else {
            Placement::Ahead
        })
    }

    /// Copies a packet's data (the parts after the first `skip` bytes) to scan offset
    /// `offset`.
    pub(super) fn write(&mut self, offset: usize, parts: &[&[u8]], mut skip: usize) {
        let mut at = self.data_start + offset;
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            let bytes = &part[skip..];
            skip = 0;
            if at == self.jpeg.len() {
                self.jpeg.extend_from_slice(bytes);
            } else {
                if self.jpeg.len() < at + bytes.len() {
                    self.jpeg.resize(at + bytes.len(), 0);
                }
                self.jpeg[at..at + bytes.len()].copy_from_slice(bytes);
            }
            at += bytes.len();
        }
    }

    /// For a frame whose scan data arrived before its header could be written: the
    /// header now goes in front of the data (a copy, only on this rare path).
    pub(super) fn write_late_header(&mut self, cached: &[Option<(u8, Vec<u8>)>]) {
        if self.header_written || self.start.is_none() {
            return;
        }
        if matches!(
            self.start,
            Some(Start {
                tables: Tables::Awaited(_),
                ..
            })
        ) {
            self.waits_for_older = true;
        }
        // Until now the data started at 0.
        let data = std::mem::take(&mut self.jpeg);
        match self.write_header_into_empty(cached) {
            Ok(Some(extended)) => {
                self.extended = extended;
                self.jpeg.extend_from_slice(&data);
            }
            // Tables still awaited: keep waiting with the data as it was.
            Ok(None) => self.jpeg = data,
            Err(reason) => {
                self.jpeg = data;
                self.broken.get_or_insert(reason);
            }
        }
    }

    /// Writes the JPEG header into the (empty) `jpeg`. `Ok(None)` while the tables are
    /// awaited, else whether a table is 16-bit.
    pub(super) fn write_header_into_empty(
        &mut self,
        cached: &[Option<(u8, Vec<u8>)>],
    ) -> Result<Option<bool>, DropReason> {
        let Some(start) = &mut self.start else {
            return Ok(None);
        };
        if let Tables::Awaited(q) = start.tables {
            match &cached[usize::from(q - 128)] {
                Some((precision, data)) => {
                    start.tables = Tables::InBand {
                        precision: *precision,
                        data: data.clone(),
                    }
                }
                None => return Ok(None),
            }
        }
        let mut write = |tables: &[QuantTable<'_>]| {
            jpeg::write_header(
                &mut self.jpeg,
                &HeaderSpec {
                    width: start.width,
                    height: start.height,
                    luma_sampling: start.main.luma_sampling(),
                    quant_tables: tables,
                    restart_interval: start.restart_interval,
                },
            );
            tables.iter().any(QuantTable::is_16bit)
        };
        let extended = match &start.tables {
            Tables::Standard(q) => {
                let t = qtables::tables_for(*q);
                write(&[t.luma_table(), t.chroma_table()])
            }
            Tables::InBand { precision, data } => {
                let raw = QuantHeader {
                    precision: *precision,
                    data,
                }
                .tables()?;
                let tables: Vec<QuantTable<'_>> =
                    raw.iter().filter_map(|t| QuantTable::from_raw(t)).collect();
                write(&tables)
            }
            Tables::Awaited(_) => return Ok(None),
        };
        self.data_start = self.jpeg.len();
        self.header_written = true;
        Ok(Some(extended))
    }
}
