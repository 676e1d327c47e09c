//! When to send the next RTCP report: RFC 3550 section 6.3 and Appendix A.7.

/// What the interval depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalInput {
    /// Session participants, this one included.
    pub members: usize,
    /// Participants that sent RTP recently.
    pub senders: usize,
    /// Whether this participant sent RTP.
    pub we_sent: bool,
    /// The session bandwidth in bits per second (RTCP gets 5 % of it).
    pub session_bandwidth: f64,
    /// The average RTCP packet size in bytes, UDP and IP headers included.
    pub avg_rtcp_size: f64,
    /// Before the first report: half the minimum.
    pub initial: bool,
    /// Use the reduced minimum of section 6.2 (360 / session bandwidth in kbit/s seconds,
    /// when that is shorter) instead of 5 s.
    pub reduced_minimum: bool,
}

/// The deterministic interval in seconds (A.7 before randomisation).
pub fn deterministic(input: &IntervalInput) -> f64 {
    const MIN_TIME: f64 = 5.0;
    const SENDER_FRACTION: f64 = 0.25;
    // 6.2's reduced minimum is shorter than 5 s above 72 kbit/s; below, 5 s stays.
    let mut min_time = if input.reduced_minimum && input.session_bandwidth > 0.0 {
        (360.0 / (input.session_bandwidth / 1000.0)).min(MIN_TIME)
    } else {
        MIN_TIME
    };
    if input.initial {
        min_time /= 2.0;
    }
    let mut rtcp_bw = input.session_bandwidth * 0.05 / 8.0; // bytes per second
    let mut n = input.members.max(1) as f64;
    let senders = input.senders as f64;
    if senders <= n * SENDER_FRACTION {
        if input.we_sent {
            rtcp_bw *= SENDER_FRACTION;
            n = senders.max(1.0);
        } else {
            rtcp_bw *= 1.0 - SENDER_FRACTION;
            n = (n - senders).max(1.0);
        }
    }
    let t = if rtcp_bw > 0.0 {
        input.avg_rtcp_size * n / rtcp_bw
    } else {
        0.0
    };
    t.max(min_time)
}

/// The interval in seconds: the deterministic interval times a random factor in
/// [0.5, 1.5) (`random` in [0, 1)), divided by e - 3/2 to compensate for "timer
/// reconsideration" (A.7).
pub fn randomized(input: &IntervalInput, random: f64) -> f64 {
    const COMPENSATION: f64 = std::f64::consts::E - 1.5;
    deterministic(input) * (random.clamp(0.0, 1.0) + 0.5) / COMPENSATION
}
