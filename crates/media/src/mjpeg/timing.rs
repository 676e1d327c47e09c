//! Exact frame <-> time arithmetic for a constant frame rate.
//!
//! Frame `n` starts at `floor(n * den * 1e9 / num)` nanoseconds. Computing each start from
//! `n` (never by adding durations) keeps timestamps free of drift, and
//! [`FrameRate::frame_at`] inverts it exactly, so a seek to a frame's own timestamp lands
//! on that frame.

const NANOS_PER_SECOND: u128 = 1_000_000_000;

/// Frames per second as a fraction `num / den`, both non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    num: u32,
    den: u32,
}

impl FrameRate {
    /// 20 frames/s, the rate networking-lab servers send at.
    pub const LAB: FrameRate = FrameRate { num: 20, den: 1 };

    pub fn new(num: u32, den: u32) -> Option<FrameRate> {
        (num > 0 && den > 0).then_some(FrameRate { num, den })
    }

    pub fn num(self) -> u32 {
        self.num
    }

    pub fn den(self) -> u32 {
        self.den
    }

    /// Start time of frame `n`, in nanoseconds (saturating at `u64::MAX`).
    pub fn time_of(self, n: u64) -> u64 {
        let t = u128::from(n) * u128::from(self.den) * NANOS_PER_SECOND / u128::from(self.num);
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// Duration of frame `n`: the gap to the next frame's start.
    pub fn duration_of(self, n: u64) -> u64 {
        self.time_of(n.saturating_add(1)) - self.time_of(n)
    }

    /// The frame shown at time `t`: the last frame whose start is at or before `t`.
    pub fn frame_at(self, t: u64) -> u64 {
        let estimate =
            u128::from(t) * u128::from(self.num) / (u128::from(self.den) * NANOS_PER_SECOND);
        let n = u64::try_from(estimate).unwrap_or(u64::MAX);
        if n < u64::MAX && self.time_of(n + 1) <= t {
            n + 1
        } else {
            n
        }
    }
}
