//! Congestion response: when a client's receiver reports keep showing loss, its session
//! sends fewer frames (every 2nd, 4th, then 8th), and steps back up once the loss is gone.
//! Frame decimation keeps each sent frame whole (an RTP/JPEG frame with one packet lost is
//! lost entirely), so fewer frames means fewer packets for the same picture quality.

/// The largest decimation: one frame in 8.
pub const MAX_DECIMATION: u32 = 8;
/// Reports over the threshold in a row before sending fewer frames.
const BAD_REPORTS: u32 = 2;
/// Clean reports in a row before sending more frames again.
const GOOD_REPORTS: u32 = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct Adapt {
    /// Fraction lost (0..1) above which a report counts as congested.
    pub threshold: f64,
    /// Send one frame in `decimation`.
    pub decimation: u32,
    bad: u32,
    good: u32,
}

impl Adapt {
    pub fn new(threshold: f64) -> Adapt {
        Adapt {
            threshold,
            decimation: 1,
            bad: 0,
            good: 0,
        }
    }

    /// Takes one receiver report's fraction lost (0..1); returns the new decimation when
    /// it changes.
    pub fn on_report(&mut self, fraction_lost: f64) -> Option<u32> {
        if fraction_lost > self.threshold {
            self.good = 0;
            self.bad += 1;
            if self.bad >= BAD_REPORTS && self.decimation < MAX_DECIMATION {
                self.bad = 0;
                self.decimation *= 2;
                return Some(self.decimation);
            }
        } else if fraction_lost <= self.threshold / 4.0 {
            self.bad = 0;
            self.good += 1;
            if self.good >= GOOD_REPORTS && self.decimation > 1 {
                self.good = 0;
                self.decimation /= 2;
                return Some(self.decimation);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_under_sustained_loss_and_recovers() {
        let mut a = Adapt::new(0.05);
        assert_eq!(a.on_report(0.10), None);
        assert_eq!(a.on_report(0.02), None, "between the marks: no change");
        assert_eq!(a.on_report(0.10), Some(2));
        assert_eq!((a.on_report(0.2), a.on_report(0.2)), (None, Some(4)));
        assert_eq!((a.on_report(0.2), a.on_report(0.2)), (None, Some(8)));
        assert_eq!(
            (a.on_report(0.2), a.on_report(0.2)),
            (None, None),
            "8 is the floor"
        );
        assert_eq!(
            (a.on_report(0.0), a.on_report(0.0), a.on_report(0.0)),
            (None, None, Some(4))
        );
        assert_eq!(a.on_report(0.1), None, "a clean run is broken by loss");
        assert_eq!((a.on_report(0.0), a.on_report(0.0)), (None, None));
        assert_eq!(a.on_report(0.0), Some(2));
    }

    #[test]
    fn a_single_lossy_report_changes_nothing() {
        let mut a = Adapt::new(0.05);
        for _ in 0..10 {
            assert_eq!(a.on_report(0.5), None);
            assert_eq!(a.on_report(0.0), None);
        }
    }
}
