//! What a receiver knows about one RTP source, per RFC 3550 Appendix A: sequence number
//! validation (A.1), loss (A.3) and interarrival jitter (A.8), plus duplicate and reordered
//! packet counts.
//!
//! The per-packet work is a few integer operations and no allocation, so a receiver of
//! hundreds of streams (the load generator) can keep a [`Sequence`] and a [`Jitter`] per
//! stream and feed them directly, without a [`Session`](super::Session).

/// The sequence number space.
pub const RTP_SEQ_MOD: u32 = 1 << 16;
/// A.1: a jump forward of this many sequence numbers or more is "very large".
pub const MAX_DROPOUT: u16 = 3000;
/// A.1: packets up to this far behind the highest are late, not a restart.
pub const MAX_MISORDER: u16 = 100;
/// A.1: sequential packets needed before a source counts as valid.
pub const MIN_SEQUENTIAL: u8 = 2;

/// Duplicates are recognised among the last this many sequence numbers.
const WINDOW: u32 = 1024;

/// What a packet was, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// The source is still on probation (A.1): not counted yet.
    Probation,
    /// Next in order, or ahead with a permissible gap.
    InOrder,
    /// Behind the highest sequence number received, and not seen before.
    Reordered,
    /// Seen before.
    Duplicate,
    /// The first of a very large jump: ignored unless the next one follows it.
    BadJump,
    /// The second of a very large jump: the sender restarted, statistics start over.
    Restart,
}

impl Packet {
    /// Whether A.1 counts the packet as received.
    pub fn counted(self) -> bool {
        !matches!(self, Packet::Probation | Packet::BadJump)
    }
}

/// A.1 and A.3: sequence numbers, packets received and expected.
#[derive(Debug, Clone)]
pub struct Sequence {
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u8,
    received: u64,
    duplicates: u64,
    reordered: u64,
    /// What the runs before the last restart expected and received.
    closed: Totals,
    restarts: u64,
    /// Which of the last `WINDOW` extended sequence numbers arrived.
    seen: Box<[u64; (WINDOW / 64) as usize]>,
}

/// Packets expected and received over every run of a source: A.3's counts start over when
/// the sender restarts its sequence (A.1), these keep what came before. A measurement over
/// a span of time is the difference of two snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub expected: u64,
    pub received: u64,
}

impl Totals {
    /// Expected minus received (negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected as i64 - self.received as i64
    }

    /// What arrived since `earlier`, a snapshot of the same source.
    pub fn since(&self, earlier: &Totals) -> Totals {
        Totals {
            expected: self.expected.saturating_sub(earlier.expected),
            received: self.received.saturating_sub(earlier.received),
        }
    }
}

/// The counters at the start of a reporting interval (A.3's `expected_prior` and
/// `received_prior`); each kind of report keeps its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prior {
    expected: u64,
    received: u64,
}

impl Sequence {
    /// A source heard for the first time, with this packet (A.1: `init_seq`, then
    /// probation).
    pub fn new(seq: u16) -> Sequence {
        let mut s = Sequence::blank(MIN_SEQUENTIAL);
        s.init(seq);
        s.max_seq = seq.wrapping_sub(1);
        s
    }

    /// A source the receiver expected, heard for the first time with this packet: valid at
    /// once and the packet counted. A.1's probation guards against packets from unknown
    /// senders; a client that set the stream up itself (RTSP SETUP on its own port pair)
    /// knows its sender, and counts from the first packet.
    pub fn known(seq: u16) -> Sequence {
        let mut s = Sequence::blank(0);
        s.init(seq);
        s.received = 1;
        s
    }

    fn blank(probation: u8) -> Sequence {
        Sequence {
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: 0,
            probation,
            received: 0,
            duplicates: 0,
            reordered: 0,
            closed: Totals::default(),
            restarts: 0,
            seen: Box::new([0; (WINDOW / 64) as usize]),
        }
    }

    /// The sender started over with this packet in a way A.1 cannot see (a new SSRC on the
    /// same port): a new run begins as after a confirmed jump, the packet counted, and
    /// [`Sequence::totals`] keeps the runs before. Returns [`Packet::Restart`].
    pub fn restart(&mut self, seq: u16) -> Packet {
        self.close_run();
        self.probation = 0;
        self.init(seq);
        self.received = 1;
        Packet::Restart
    }

    /// Adds the current run to the closed ones, before a restart.
    fn close_run(&mut self) {
        self.closed.expected += self.expected();
        self.closed.received += self.received;
        self.restarts += 1;
    }

    fn init(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.seen.fill(0);
        self.mark_seen(u32::from(seq));
    }

    /// A.1 `update_seq`, recognising duplicates and reordered packets too.
    pub fn update(&mut self, seq: u16) -> Packet {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.received += 1;
                    return Packet::InOrder;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return Packet::Probation;
        }
        let kind = if udelta == 0 {
            // The highest again (A.1 counts it as received, in order).
            self.duplicates += 1;
            Packet::Duplicate
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(RTP_SEQ_MOD);
            }
            let old_max = self.extended_max();
            self.max_seq = seq;
            self.advance_window(old_max);
            self.mark_seen(self.extended_max());
            Packet::InOrder
        } else if udelta <= (RTP_SEQ_MOD - u32::from(MAX_MISORDER)) as u16 {
            if u32::from(seq) == self.bad_seq {
                self.close_run();
                self.init(seq);
                Packet::Restart
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return Packet::BadJump;
            }
        } else {
            // Behind the highest: a duplicate or a late packet.
            let behind = u32::from(self.max_seq.wrapping_sub(seq));
            let ext = self.extended_max().wrapping_sub(behind);
            if behind < WINDOW && self.is_seen(ext) {
                self.duplicates += 1;
                Packet::Duplicate
            } else {
                if behind < WINDOW {
                    self.mark_seen(ext);
                }
                self.reordered += 1;
                Packet::Reordered
            }
        };
        self.received += 1;
        kind
    }

    fn advance_window(&mut self, old_max: u32) {
        let new_max = self.extended_max();
        let step = new_max.wrapping_sub(old_max);
        if step >= WINDOW {
            self.seen.fill(0);
        } else {
            for ext in old_max.wrapping_add(1)..=old_max.wrapping_add(step) {
                self.clear_seen(ext);
            }
        }
    }

    fn bit(ext: u32) -> (usize, u64) {
        let i = ext % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn mark_seen(&mut self, ext: u32) {
        let (word, mask) = Self::bit(ext);
        self.seen[word] |= mask;
    }

    fn clear_seen(&mut self, ext: u32) {
        let (word, mask) = Self::bit(ext);
        self.seen[word] &= !mask;
    }

    fn is_seen(&self, ext: u32) -> bool {
        let (word, mask) = Self::bit(ext);
        self.seen[word] & mask != 0
    }

    /// Whether the source has passed probation.
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// The extended highest sequence number received (cycles and sequence number).
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets received since the source became valid (A.1: duplicates included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// A.3: packets expected since the source became valid.
    pub fn expected(&self) -> u64 {
        if !self.is_valid() {
            return 0;
        }
        u64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1
    }

    /// A.3: packets lost, expected minus received (negative with duplicates).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Cumulative loss in percent of the packets expected (0 when none were, or with
    /// more duplicates than losses).
    pub fn loss_percent(&self) -> f64 {
        match self.expected() {
            0 => 0.0,
            expected => self.lost().max(0) as f64 * 100.0 / expected as f64,
        }
    }

    /// The cumulative loss as a report block carries it: a signed 24-bit value, clamped.
    pub fn lost_24bit(&self) -> i32 {
        self.lost().clamp(-0x80_0000, 0x7F_FFFF) as i32
    }

    /// Expected and received over every run since the source was first heard.
    pub fn totals(&self) -> Totals {
        Totals {
            expected: self.closed.expected + self.expected(),
            received: self.closed.received + self.received,
        }
    }

    /// Times the sender restarted its sequence (A.1's confirmed jumps, and
    /// [`Sequence::restart`]).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// A.3: the fraction lost since `prior`, in 1/256ths (0 when nothing was lost or more
    /// arrived than expected), and starts a new interval.
    pub fn fraction_lost(&self, prior: &mut Prior) -> u8 {
        let (expected, received) = (self.expected(), self.received);
        let expected_interval = expected.saturating_sub(prior.expected);
        let received_interval = received.saturating_sub(prior.received);
        *prior = Prior { expected, received };
        let lost_interval = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        }
    }
}

/// A.8: interarrival jitter, in RTP timestamp units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Jitter {
    transit: Option<u32>,
    /// Scaled by 16 (A.8's integer form) for precision.
    scaled: u64,
}

impl Jitter {
    /// Takes in a packet's arrival time and RTP timestamp, both in RTP units (only their
    /// differences matter, so they may wrap).
    pub fn update(&mut self, arrival: u32, rtp_timestamp: u32) {
        let transit = arrival.wrapping_sub(rtp_timestamp);
        let d = match self.transit {
            Some(previous) => transit.wrapping_sub(previous) as i32,
            None => 0,
        };
        self.transit = Some(transit);
        self.scaled =
            (self.scaled + u64::from(d.unsigned_abs())).saturating_sub((self.scaled + 8) >> 4);
    }

    /// The jitter, in RTP timestamp units.
    pub fn value(&self) -> u32 {
        u32::try_from(self.scaled >> 4).unwrap_or(u32::MAX)
    }

    /// The jitter as a fraction of RTP units (before A.8's final truncation).
    pub fn precise(&self) -> f64 {
        self.scaled as f64 / 16.0
    }
}

/// An arrival time in nanoseconds as an RTP timestamp at `clock_rate` (truncated to 32
/// bits: jitter only uses differences). The time may be on any clock, signed or not (times
/// before a run's start are negative); units are counted down (floor), so that equal
/// spans of time give equal differences on both sides of zero.
pub fn arrival_in_rtp_units(arrival_ns: impl Into<i128>, clock_rate: u32) -> u32 {
    (arrival_ns.into() * i128::from(clock_rate)).div_euclid(1_000_000_000) as u32
}
