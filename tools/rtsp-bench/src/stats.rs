//! What one session's RTP stream did, packet by packet: sequence-number accounting (RFC 3550
//! A.1 and A.3), interarrival jitter (A.8, 90 kHz) and frames (marker bit), counted over the
//! measuring window, plus the arrival of the first frame.
//!
//! Times are nanoseconds relative to the start of the run, taken from the kernel's receive
//! timestamp of each packet, so how late the receive thread reads a packet changes nothing.

/// RTP/JPEG's clock rate (RFC 2435).
pub const CLOCK_RATE: i64 = 90_000;

/// RFC 3550 A.1: a jump forward of less than this is in order (packets lost on the way).
const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a jump backward of less than this is a late or duplicated packet.
const MAX_MISORDER: u16 = 100;

/// The measuring window, `[start, end)` in ns since the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

impl Window {
    pub fn contains(&self, t: i64) -> bool {
        t >= self.start && t < self.end
    }

    pub fn seconds(&self) -> f64 {
        (self.end - self.start) as f64 / 1e9
    }
}

/// The fields of an RTP header the statistics need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
}

impl RtpHeader {
    /// Reads the fixed header; `None` for anything that is not RTP version 2.
    pub fn parse(packet: &[u8]) -> Option<RtpHeader> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        Some(RtpHeader {
            marker: packet[1] & 0x80 != 0,
            seq: u16::from_be_bytes([packet[2], packet[3]]),
            timestamp: u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]),
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
        })
    }
}

/// One session's receive statistics.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Every RTP packet received, in the window or not.
    pub packets_total: u64,
    /// Datagrams on the RTP port that were not RTP, and RTCP datagrams.
    pub not_rtp: u64,
    pub rtcp_packets: u64,
    /// Arrival of the first RTP packet and of the first packet with the marker bit (the end
    /// of the first frame), ns since the start of the run.
    pub first_packet: Option<i64>,
    pub first_frame: Option<i64>,
    /// Packets, bytes (RTP header included) and frames that arrived in the window.
    pub packets: u64,
    pub bytes: u64,
    pub frames: u64,
    /// Packets expected in the window from the sequence numbers (RFC 3550 A.3).
    pub expected: u64,
    /// Interarrival jitter at the last packet of the window, and its highest value in the
    /// window, in RTP clock units.
    pub jitter: f64,
    pub max_jitter: f64,
    /// Sequence restarts (jumps RFC 3550 A.1 takes for a new sequence) and SSRC changes.
    pub resyncs: u64,
    /// Datagrams the kernel dropped on this session's RTP socket because its receive buffer
    /// was full (SO_RXQ_OVFL): the load generator's own losses.
    pub socket_drops: u32,
    /// Highest delay between a packet's arrival and its processing, in the window (ns).
    pub max_lag: i64,

    // RFC 3550 A.1 state.
    started: bool,
    ssrc: u32,
    max_seq: u16,
    cycles: u64,
    bad_seq: Option<u16>,
    // The extended sequence numbers of the current run of the window.
    window_first: Option<u64>,
    window_max: u64,
    // RFC 3550 A.8 state.
    transit: Option<u32>,
}

impl StreamStats {
    /// Accounts one RTP packet of `len` bytes that arrived at `arrival` (ns since the start of
    /// the run) and was read at `now`.
    pub fn on_rtp(&mut self, h: RtpHeader, len: usize, arrival: i64, now: i64, window: &Window) {
        self.packets_total += 1;
        if self.first_packet.is_none() {
            self.first_packet = Some(arrival);
        }
        if h.marker && self.first_frame.is_none() {
            self.first_frame = Some(arrival);
        }
        let in_window = window.contains(arrival);
        let Some(extended) = self.update_seq(h) else {
            return;
        };
        self.update_jitter(h.timestamp, arrival);
        if !in_window {
            return;
        }
        self.packets += 1;
        self.bytes += len as u64;
        if h.marker {
            self.frames += 1;
        }
        self.max_lag = self.max_lag.max(now - arrival);
        self.max_jitter = self.max_jitter.max(self.jitter);
        match self.window_first {
            None => {
                self.window_first = Some(extended);
                self.window_max = extended;
            }
            Some(first) if extended < first => {
                // Reordered across the start of the window: the window starts earlier.
                self.window_first = Some(extended);
            }
            Some(_) => self.window_max = self.window_max.max(extended),
        }
    }

    /// Packets expected in the window, counting the run in progress.
    pub fn expected(&self) -> u64 {
        self.expected + self.window_first.map_or(0, |f| self.window_max - f + 1)
    }

    /// Packets lost in the window (negative when duplicates outnumber losses, as in RFC 3550).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.packets as i64
    }

    /// RFC 3550 A.1 without probation (the sender is known): the packet's extended sequence
    /// number, or `None` for a packet that is dropped from the count (the first packet after
    /// a large jump, until the next confirms the new sequence).
    fn update_seq(&mut self, h: RtpHeader) -> Option<u64> {
        if !self.started || h.ssrc != self.ssrc {
            if self.started {
                self.resyncs += 1;
            }
            self.restart(h);
            return Some(self.extended());
        }
        let delta = h.seq.wrapping_sub(self.max_seq);
        if delta < MAX_DROPOUT {
            if h.seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = h.seq;
        } else if delta <= u16::MAX - MAX_MISORDER {
            // A very large jump: a restarted sender if the next packet follows this one.
            if self.bad_seq == Some(h.seq) {
                self.resyncs += 1;
                self.restart(h);
            } else {
                self.bad_seq = Some(h.seq.wrapping_add(1));
                return None;
            }
        } else {
            // Duplicate or reordered: received, but the highest sequence stays.
            let back = u64::from(self.max_seq.wrapping_sub(h.seq));
            return Some(self.extended().saturating_sub(back));
        }
        Some(self.extended())
    }

    /// Starts a new sequence at `h`: the window's run so far is closed, so that packets
    /// before and after the restart are both counted as expected.
    fn restart(&mut self, h: RtpHeader) {
        if let Some(first) = self.window_first.take() {
            self.expected += self.window_max - first + 1;
        }
        self.started = true;
        self.ssrc = h.ssrc;
        self.max_seq = h.seq;
        self.cycles = 0;
        self.bad_seq = None;
        self.transit = None;
    }

    fn extended(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// RFC 3550 A.8: J += (|D| - J) / 16, with the arrival in RTP clock units.
    fn update_jitter(&mut self, timestamp: u32, arrival: i64) {
        let arrival_units = (i128::from(arrival) * i128::from(CLOCK_RATE) / 1_000_000_000) as u32;
        let transit = arrival_units.wrapping_sub(timestamp);
        if let Some(last) = self.transit {
            let d = f64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.transit = Some(transit);
    }
}

/// RTP clock units to milliseconds.
pub fn units_to_ms(units: f64) -> f64 {
    units * 1000.0 / CLOCK_RATE as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        start: 0,
        end: 10_000_000_000,
    };

    fn header(seq: u16, timestamp: u32, marker: bool) -> RtpHeader {
        RtpHeader {
            seq,
            timestamp,
            ssrc: 7,
            marker,
        }
    }

    #[test]
    fn parses_the_fixed_header() {
        let p = [0x80, 0x9a, 0x12, 0x34, 0, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef];
        let h = RtpHeader::parse(&p).expect("RTP");
        assert_eq!(
            h,
            RtpHeader {
                seq: 0x1234,
                timestamp: 256,
                ssrc: 0xdead_beef,
                marker: true
            }
        );
        assert_eq!(RtpHeader::parse(&p[..11]), None);
        assert_eq!(RtpHeader::parse(&[0x40; 12]), None);
    }

    #[test]
    fn counts_losses_across_a_wrap() {
        let mut s = StreamStats::default();
        let mut seq: u16 = 65_500;
        for n in 0..200u32 {
            if n % 10 != 3 {
                s.on_rtp(header(seq, n * 3600, n % 5 == 4), 1000, i64::from(n), 0, &W);
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.expected(), 200);
        assert_eq!(s.packets, 180);
        assert_eq!(s.lost(), 20);
        assert_eq!(s.frames, 40); // every fifth packet, none of them lost
        assert_eq!(s.bytes, 180_000);
    }

    #[test]
    fn only_the_window_counts() {
        let w = Window {
            start: 100,
            end: 200,
        };
        let mut s = StreamStats::default();
        for n in 0..300u16 {
            s.on_rtp(header(n, 0, true), 10, i64::from(n), i64::from(n), &w);
        }
        assert_eq!((s.packets, s.expected(), s.frames), (100, 100, 100));
        assert_eq!(s.packets_total, 300);
        assert_eq!(s.first_frame, Some(0));
    }

    #[test]
    fn duplicates_and_reordering() {
        let mut s = StreamStats::default();
        for seq in [1u16, 2, 4, 3, 3, 5] {
            s.on_rtp(header(seq, 0, false), 10, 1, 1, &W);
        }
        assert_eq!(s.expected(), 5);
        assert_eq!(s.packets, 6);
        assert_eq!(s.lost(), -1);
    }

    #[test]
    fn a_restarted_sequence_keeps_the_count() {
        let mut s = StreamStats::default();
        for seq in 0..10u16 {
            s.on_rtp(header(seq, 0, false), 10, 1, 1, &W);
        }
        // A jump of 30000: the first packet is held back, the second confirms it.
        for seq in 30_000..30_010u16 {
            s.on_rtp(header(seq, 0, false), 10, 1, 1, &W);
        }
        assert_eq!(s.resyncs, 1);
        assert_eq!(s.packets, 19);
        assert_eq!(s.expected(), 19);
    }

    #[test]
    fn jitter_of_a_steady_stream_is_zero_and_grows_with_delay() {
        let mut s = StreamStats::default();
        // 25 fps: 3600 units and 40 ms apart.
        for n in 0..50u32 {
            let t = i64::from(n) * 40_000_000;
            s.on_rtp(header(n as u16, n * 3600, true), 10, t, t, &W);
        }
        assert!(s.jitter < 1e-9, "{}", s.jitter);
        // Every other frame 10 ms late: |D| = 900 units each time.
        for n in 50..2000u32 {
            let t = i64::from(n) * 40_000_000 + if n % 2 == 0 { 10_000_000 } else { 0 };
            s.on_rtp(header(n as u16, n * 3600, true), 10, t, t, &W);
        }
        assert!((s.jitter - 900.0).abs() < 1.0, "{}", s.jitter);
        assert!((units_to_ms(s.jitter) - 10.0).abs() < 0.1);
    }
}
