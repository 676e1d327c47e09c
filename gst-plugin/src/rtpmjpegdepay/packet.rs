//! Reading RTP packets as the depayloader gets them, without copying: each memory mapped
//! once, the RTP header read in place; and a limit on per-packet warnings.

use std::ops::Range;

use crate::rtcp::{PacketError, RtpHeader};

/// Warnings about single packets or frames, at most this many a second.
const WARNINGS_PER_SECOND: u32 = 5;

/// Lets a few warnings a second through, and says how many it held back.
#[derive(Default)]
pub(super) struct RateLimit {
    second: Option<std::time::Instant>,
    this_second: u32,
    held: u64,
}

impl RateLimit {
    /// Whether to log now; and how many were held back before this one.
    pub(super) fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        if self
            .second
            .is_none_or(|s| now.duration_since(s).as_secs() >= 1)
        {
            self.second = Some(now);
            self.this_second = 0;
        }
        self.this_second += 1;
        if self.this_second > WARNINGS_PER_SECOND {
            self.held += 1;
            return None;
        }
        Some(std::mem::take(&mut self.held))
    }
}

/// The most bytes of RTP header `RtpHeader::payload_range` reads: the fixed header, 15
/// CSRCs and the extension header.
pub(super) const RTP_HEAD_MAX: usize = 12 + 15 * 4 + 4;
/// Memories read one by one; a packet with more is read joined.
pub(super) const MAX_PARTS: usize = 4;

/// A packet's memories, each mapped once: mapping a packet of several memories
/// (rtpjpegpay makes a header memory and a data memory) as one would allocate and copy
/// it. A packet of more memories than this holds is mapped joined.
pub(super) struct MappedPacket<'a> {
    maps: [Option<gst::memory::MemoryMap<'a, gst::memory::Readable>>; MAX_PARTS],
    joined: Option<gst::BufferMap<'a, gst::buffer::Readable>>,
}

impl<'a> MappedPacket<'a> {
    pub(super) fn of(buffer: &'a gst::BufferRef) -> Option<MappedPacket<'a>> {
        let mut packet = MappedPacket {
            maps: [None, None, None, None],
            joined: None,
        };
        if buffer.n_memory() > MAX_PARTS {
            packet.joined = Some(buffer.map_readable().ok()?);
            return Some(packet);
        }
        for (i, memory) in buffer.iter_memories().enumerate() {
            packet.maps[i] = Some(memory.map_readable().ok()?);
        }
        Some(packet)
    }

    /// The packet's bytes, as slices in order, and how many there are.
    pub(super) fn slices(&self) -> ([&[u8]; MAX_PARTS], usize) {
        let mut slices: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
        if let Some(map) = &self.joined {
            slices[0] = map.as_slice();
            return (slices, 1);
        }
        let mut n = 0;
        for map in self.maps.iter().flatten() {
            slices[n] = map.as_slice();
            n += 1;
        }
        (slices, n)
    }
}

/// What the depayloader needs of an RTP packet.
pub(super) struct RtpPayload<'s> {
    pub(super) marker: bool,
    pub(super) timestamp: u32,
    /// The payload, as slices of the packet's memories, `parts` of them.
    pub(super) slices: [&'s [u8]; MAX_PARTS],
    pub(super) parts: usize,
    /// Where the payload lies in the packet.
    pub(super) range: Range<usize>,
}

/// The RTP packet in `slices`, without copying anything but, for a header split across
/// memories, its first bytes. RTCP sent to the RTP port is refused.
pub(super) fn read_rtp<'s>(slices: &[&'s [u8]]) -> Result<RtpPayload<'s>, PacketError> {
    let len: usize = slices.iter().map(|s| s.len()).sum();
    let mut copy = [0u8; RTP_HEAD_MAX];
    let head: &[u8] = match slices {
        [first, ..] if first.len() >= RTP_HEAD_MAX || slices.len() == 1 => first,
        _ => {
            let mut n = 0;
            for s in slices {
                let take = s.len().min(RTP_HEAD_MAX - n);
                copy[n..n + take].copy_from_slice(&s[..take]);
                n += take;
            }
            &copy[..n]
        }
    };
    let last = slices
        .iter()
        .rev()
        .find_map(|s| s.last().copied())
        .unwrap_or(0);
    let range = RtpHeader::payload_range(head, len, last)?;
    RtpHeader::check_not_rtcp(head[1])?;
    let marker = RtpHeader::marker(head[1]);
    let timestamp = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    let mut payload: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
    let mut n = 0;
    let mut at = 0;
    for s in slices {
        let (start, end) = (at, at + s.len());
        at = end;
        if end <= range.start || start >= range.end {
            continue;
        }
        payload[n] = &s[range.start.max(start) - start..range.end.min(end) - start];
        n += 1;
    }
    Ok(RtpPayload {
        marker,
        timestamp,
        slices: payload,
        parts: n,
        range,
    })
}

/// A lab-dialect packet's payload (at `range`, as [`read_rtp`] found it), the image
/// itself, without copying it.
pub(super) fn lab_image(packet: &gst::BufferRef, range: Range<usize>) -> Option<gst::Buffer> {
    packet.copy_region(gst::BufferCopyFlags::MEMORY, range).ok()
}
