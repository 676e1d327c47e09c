//! A limit on log lines that a received packet can trigger (malformed RTCP, reports, frames
//! that cannot be recorded): a flood of such packets must not flood the log. At most
//! `limit` lines per window; the lines held back are counted and said in one line when
//! logging resumes (or when the flood is over, through [`LogLimit::pending`]).

use std::time::{Duration, Instant};

/// Lines per second a session may log from its packets.
pub const LINES_PER_SECOND: u32 = 5;

#[derive(Debug, Clone)]
pub struct LogLimit {
    limit: u32,
    window: Duration,
    /// When the current window began, and the lines logged in it.
    started: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit::new(LINES_PER_SECOND, Duration::from_secs(1))
    }
}

impl LogLimit {
    pub fn new(limit: u32, window: Duration) -> LogLimit {
        LogLimit {
            limit,
            window,
            started: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be logged at `now`: `None` holds it back (counted); `Some(n)`
    /// logs it, after a line saying `n` were held back when `n > 0`.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        if self
            .started
            .is_none_or(|t| now.saturating_duration_since(t) >= self.window)
        {
            self.started = Some(now);
            self.logged = 0;
        }
        if self.logged >= self.limit {
            self.suppressed += 1;
            return None;
        }
        self.logged += 1;
        Some(std::mem::take(&mut self.suppressed))
    }

    /// The lines held back, once the window they were held back in is over (then
    /// forgotten): for saying so when no further line comes to carry the count.
    pub fn pending(&mut self, now: Instant) -> Option<u64> {
        let over = self
            .started
            .is_none_or(|t| now.saturating_duration_since(t) >= self.window);
        if over && self.suppressed > 0 {
            Some(std::mem::take(&mut self.suppressed))
        } else {
            None
        }
    }

    /// The lines held back so far (then forgotten), whatever the window: at the end.
    pub fn take(&mut self) -> Option<u64> {
        Some(std::mem::take(&mut self.suppressed)).filter(|&n| n > 0)
    }

    /// `lines` as they may be logged at `now`: those admitted, each after `summary(n)`
    /// when `n` lines were held back before it.
    pub fn filter(
        &mut self,
        now: Instant,
        lines: impl IntoIterator<Item = String>,
        summary: impl Fn(u64) -> String,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for line in lines {
            match self.admit(now) {
                None => {}
                Some(0) => out.push(line),
                Some(n) => {
                    out.push(summary(n));
                    out.push(line);
                }
            }
        }
        out
    }
}

/// The line that says `n` lines were held back.
pub fn suppressed(n: u64) -> String {
    format!("({n} more suppressed)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn lets_the_limit_through_per_window_then_counts() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(5, Duration::from_secs(1));
        let first: Vec<_> = (0..500).map(|k| limit.admit(at(t0, k / 3))).collect();
        assert_eq!(first.iter().filter(|a| a.is_some()).count(), 5);
        assert!(first[..5].iter().all(|a| *a == Some(0)));
        // Next window: the first line carries the count of the 495 held back.
        assert_eq!(limit.admit(at(t0, 1000)), Some(495));
        assert_eq!(limit.admit(at(t0, 1001)), Some(0));
        // A quiet stream is never limited.
        for k in 0..10 {
            assert_eq!(limit.admit(at(t0, 2000 + k * 300)), Some(0));
        }
    }

    #[test]
    fn the_window_starts_with_its_first_line() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(2, Duration::from_secs(1));
        assert_eq!(limit.admit(at(t0, 900)), Some(0));
        assert_eq!(limit.admit(at(t0, 1100)), Some(0));
        assert_eq!(limit.admit(at(t0, 1200)), None);
        assert_eq!(limit.admit(at(t0, 1899)), None);
        assert_eq!(limit.admit(at(t0, 1900)), Some(2));
    }

    #[test]
    fn pending_says_the_count_once_the_window_is_over() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(1, Duration::from_secs(1));
        assert_eq!(limit.pending(t0), None);
        assert_eq!(limit.admit(t0), Some(0));
        assert_eq!(limit.admit(at(t0, 10)), None);
        assert_eq!(limit.admit(at(t0, 20)), None);
        assert_eq!(limit.pending(at(t0, 999)), None);
        assert_eq!(limit.pending(at(t0, 1000)), Some(2));
        assert_eq!(limit.pending(at(t0, 1001)), None);
        // Said once: the next line does not repeat it.
        assert_eq!(limit.admit(at(t0, 1002)), Some(0));
        assert_eq!(limit.admit(at(t0, 1003)), None);
        assert_eq!(limit.take(), Some(1));
        assert_eq!(limit.take(), None);
    }

    #[test]
    fn filter_puts_the_summary_before_the_line_that_resumes() {
        let t0 = Instant::now();
        let mut limit = LogLimit::new(2, Duration::from_secs(1));
        let lines = |n: usize| (0..n).map(|k| format!("line {k}"));
        assert_eq!(
            limit.filter(t0, lines(4), suppressed),
            vec!["line 0", "line 1"]
        );
        assert_eq!(
            limit.filter(at(t0, 1500), lines(3), suppressed),
            vec!["(2 more suppressed)", "line 0", "line 1"]
        );
    }
}
