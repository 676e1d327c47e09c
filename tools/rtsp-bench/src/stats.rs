//! What one session's RTP stream did, packet by packet, over the measuring window: frames
//! (marker bit), bytes, the arrival of the first frame, and the RFC 3550 receiver
//! statistics of the media core (`mjpeg_media::rtcp`): sequence numbers, loss (A.1, A.3)
//! and interarrival jitter (A.8, 90 kHz).
//!
//! Times are nanoseconds relative to the start of the run, taken from the kernel's receive
//! timestamp of each packet, so how late the receive thread reads a packet changes nothing.

use mjpeg_media::rtcp::receiver::arrival_in_rtp_units;
use mjpeg_media::rtcp::{Jitter, Packet, RtpHeader, Sequence, Totals};

/// RTP/JPEG's clock rate (RFC 2435).
pub const CLOCK_RATE: u32 = 90_000;

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

/// One session's receive statistics.
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    /// Every RTP packet received, in the window or not.
    pub packets_total: u64,
    /// Datagrams on the RTP port that were not RTP (RTCP included).
    pub not_rtp: u64,
    /// Datagrams on the RTCP port.
    pub rtcp_packets: u64,
    /// Arrival of the first RTP packet and of the first packet with the marker bit (the end
    /// of the first frame), ns since the start of the run.
    pub first_packet: Option<i64>,
    pub first_frame: Option<i64>,
    /// Packets (A.1 counts duplicates), bytes (RTP header included) and frames that arrived
    /// in the window.
    pub packets: u64,
    pub bytes: u64,
    pub frames: u64,
    /// The highest interarrival jitter in the window, in RTP clock units.
    pub max_jitter: f64,
    /// Datagrams the kernel dropped on this session's RTP socket because its receive buffer
    /// was full (SO_RXQ_OVFL): the load generator's own losses.
    pub socket_drops: u32,
    /// Highest delay between a packet's arrival and its processing, in the window (ns).
    pub max_lag: i64,

    /// The sender's SSRC and its sequence numbers; the server set the stream up for this
    /// session alone, so A.1's probation is skipped ([`Sequence::known`]).
    source: Option<(u32, Sequence)>,
    jitter: Jitter,
    /// The source's totals when the first packet of the window arrived, and when the first
    /// packet after it did.
    window_start: Option<Totals>,
    window_end: Option<Totals>,
}

impl StreamStats {
    /// Accounts one datagram from the RTP port: `head` holds its first bytes (at least the
    /// 12-byte RTP header), `len` is its size; it arrived at `arrival` (ns since the start
    /// of the run) and was read at `now`.
    pub fn on_datagram(
        &mut self,
        head: &[u8],
        len: usize,
        arrival: i64,
        now: i64,
        window: &Window,
    ) {
        let second = head.get(1).copied().unwrap_or_default();
        let header =
            RtpHeader::parse(head).and_then(|h| RtpHeader::check_not_rtcp(second).map(|()| h));
        match header {
            Ok(h) => self.on_rtp(&h, RtpHeader::marker(second), len, arrival, now, window),
            Err(_) => self.not_rtp += 1,
        }
    }

    fn on_rtp(
        &mut self,
        h: &RtpHeader,
        marker: bool,
        len: usize,
        arrival: i64,
        now: i64,
        window: &Window,
    ) {
        self.packets_total += 1;
        if self.first_packet.is_none() {
            self.first_packet = Some(arrival);
        }
        if marker && self.first_frame.is_none() {
            self.first_frame = Some(arrival);
        }
        let in_window = window.contains(arrival);
        // The window's bounds, in packets: snapshots taken as the first packet in it, and
        // the first one after it, arrive (each socket is read in arrival order).
        if in_window && self.window_start.is_none() {
            self.window_start = Some(self.totals());
        } else if arrival >= window.end && self.window_start.is_some() && self.window_end.is_none()
        {
            self.window_end = Some(self.totals());
        }
        let kind = match &mut self.source {
            Some((ssrc, sequence)) if *ssrc == h.ssrc => sequence.update(h.sequence),
            Some((ssrc, sequence)) => {
                *ssrc = h.ssrc;
                sequence.restart(h.sequence)
            }
            None => {
                self.source = Some((h.ssrc, Sequence::known(h.sequence)));
                Packet::InOrder
            }
        };
        if !kind.counted() {
            return;
        }
        if kind == Packet::Restart {
            self.jitter = Jitter::default();
        }
        self.jitter
            .update(arrival_in_rtp_units(arrival, CLOCK_RATE), h.timestamp);
        if !in_window {
            return;
        }
        self.packets += 1;
        self.bytes += len as u64;
        if marker {
            self.frames += 1;
        }
        self.max_lag = self.max_lag.max(now - arrival);
        self.max_jitter = self.max_jitter.max(self.jitter.precise());
    }

    /// The source's expected and received packets since it was first heard.
    fn totals(&self) -> Totals {
        self.source
            .as_ref()
            .map(|(_, s)| s.totals())
            .unwrap_or_default()
    }

    /// Packets expected in the window (RFC 3550 A.3), across sequence restarts.
    pub fn expected(&self) -> u64 {
        match self.window_start {
            Some(start) => {
                self.window_end
                    .unwrap_or_else(|| self.totals())
                    .since(&start)
                    .expected
            }
            None => 0,
        }
    }

    /// Packets lost in the window (negative when duplicates outnumber losses, as in RFC 3550).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.packets as i64
    }

    /// Interarrival jitter at the last packet, in RTP clock units.
    pub fn jitter(&self) -> f64 {
        self.jitter.precise()
    }

    /// Sequence restarts (jumps RFC 3550 A.1 takes for a new sequence) and SSRC changes.
    pub fn resyncs(&self) -> u64 {
        self.source.as_ref().map_or(0, |(_, s)| s.restarts())
    }
}

/// RTP clock units to milliseconds.
pub fn units_to_ms(units: f64) -> f64 {
    units * 1000.0 / f64::from(CLOCK_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        start: 0,
        end: 10_000_000_000,
    };

    /// An RTP packet's fixed header.
    fn header(seq: u16, timestamp: u32, marker: bool) -> [u8; 12] {
        RtpHeader {
            payload_type: 26,
            sequence: seq,
            timestamp,
            ssrc: 7,
        }
        .to_bytes(marker)
    }

    #[test]
    fn counts_losses_across_a_wrap() {
        let mut s = StreamStats::default();
        let mut seq: u16 = 65_500;
        for n in 0..200u32 {
            if n % 10 != 3 {
                let h = header(seq, n * 3600, n % 5 == 4);
                s.on_datagram(&h, 1000, i64::from(n), 0, &W);
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
            s.on_datagram(&header(n, 0, true), 10, i64::from(n), i64::from(n), &w);
        }
        assert_eq!((s.packets, s.expected(), s.frames), (100, 100, 100));
        assert_eq!(s.packets_total, 300);
        assert_eq!(s.first_frame, Some(0));
    }

    #[test]
    fn duplicates_and_reordering() {
        let mut s = StreamStats::default();
        for seq in [1u16, 2, 4, 3, 3, 5] {
            s.on_datagram(&header(seq, 0, false), 10, 1, 1, &W);
        }
        assert_eq!(s.expected(), 5);
        assert_eq!(s.packets, 6);
        assert_eq!(s.lost(), -1);
    }

    #[test]
    fn a_restarted_sequence_keeps_the_count() {
        let mut s = StreamStats::default();
        for seq in 0..10u16 {
            s.on_datagram(&header(seq, 0, false), 10, 1, 1, &W);
        }
        // A jump of 30000: the first packet is held back, the second confirms it.
        for seq in 30_000..30_010u16 {
            s.on_datagram(&header(seq, 0, false), 10, 1, 1, &W);
        }
        assert_eq!(s.resyncs(), 1);
        assert_eq!(s.packets, 19);
        assert_eq!(s.expected(), 19);
    }

    #[test]
    fn a_new_ssrc_starts_a_new_run() {
        let mut s = StreamStats::default();
        for seq in 0..10u16 {
            s.on_datagram(&header(seq, 0, false), 10, 1, 1, &W);
        }
        let mut other = header(5000, 0, false);
        other[8..12].copy_from_slice(&8u32.to_be_bytes());
        s.on_datagram(&other, 10, 2, 2, &W);
        assert_eq!(s.resyncs(), 1);
        assert_eq!((s.packets, s.expected(), s.lost()), (11, 11, 0));
    }

    #[test]
    fn what_is_not_rtp_is_counted_apart() {
        let mut s = StreamStats::default();
        s.on_datagram(b"not rtp", 7, 1, 1, &W);
        s.on_datagram(&[0x80; 11], 11, 1, 1, &W);
        // An RTCP receiver report sent to the RTP port (RFC 5761 4).
        s.on_datagram(&[0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2], 32, 1, 1, &W);
        assert_eq!((s.not_rtp, s.packets_total, s.expected()), (3, 0, 0));
    }

    #[test]
    fn jitter_of_a_steady_stream_is_zero_and_grows_with_delay() {
        let mut s = StreamStats::default();
        // 25 fps: 3600 units and 40 ms apart.
        for n in 0..50u32 {
            let t = i64::from(n) * 40_000_000;
            s.on_datagram(&header(n as u16, n * 3600, true), 10, t, t, &W);
        }
        assert!(s.jitter() < 1e-9, "{}", s.jitter());
        // Every other frame 10 ms late: |D| = 900 units each time.
        for n in 50..2000u32 {
            let t = i64::from(n) * 40_000_000 + if n % 2 == 0 { 10_000_000 } else { 0 };
            s.on_datagram(&header(n as u16, n * 3600, true), 10, t, t, &W);
        }
        assert!((s.jitter() - 900.0).abs() < 1.0, "{}", s.jitter());
        assert!((units_to_ms(s.jitter()) - 10.0).abs() < 0.1);
    }
}
