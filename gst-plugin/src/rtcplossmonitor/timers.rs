//! The element's two timers, on its clock: `loss-report` messages every `interval`, and
//! RTCP receiver reports at RFC 3550 intervals.
//!
//! Each is a single-shot clock id waited on asynchronously, armed again by whoever does its
//! work once that is done: the next RTCP interval depends on the report just sent, and a
//! report held up downstream delays only the next one of its kind instead of piling up.
//! A `TestClock` on the element drives them in tests.

use std::sync::{Arc, Mutex};

use gst::prelude::*;

use super::imp::CAT;
use crate::lock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The statistics interval and its `loss-report` message.
    LossReport,
    /// A receiver report on `rtcp_src`.
    Rtcp,
}

/// What one timer is doing.
#[derive(Debug, Default)]
enum Slot {
    #[default]
    Idle,
    Armed(gst::SingleShotClockId),
    /// It went off at `deadline` and its work is under way.
    Fired {
        deadline: gst::ClockTime,
    },
}

/// Called on the clock's thread (the test's, with a `TestClock`) when an armed id goes off.
pub(super) type OnFire = Arc<dyn Fn(Timer, &gst::ClockId) + Send + Sync>;

#[derive(Default)]
struct Inner {
    /// What the timers run on while the element runs; `None` when stopped.
    clock: Option<gst::Clock>,
    on_fire: Option<OnFire>,
    loss_report: Slot,
    rtcp: Slot,
}

impl Inner {
    fn slot(&mut self, timer: Timer) -> &mut Slot {
        match timer {
            Timer::LossReport => &mut self.loss_report,
            Timer::Rtcp => &mut self.rtcp,
        }
    }

    /// Arms `timer` at `at` on the current clock; the id it replaces is returned, to be
    /// unscheduled once the lock is let go.
    fn arm(&mut self, timer: Timer, at: gst::ClockTime) -> Option<gst::SingleShotClockId> {
        let (Some(clock), Some(on_fire)) = (&self.clock, &self.on_fire) else {
            return None;
        };
        let id = clock.new_single_shot_id(at);
        let on_fire = on_fire.clone();
        let slot = match id.wait_async(move |_, _, id| on_fire(timer, id)) {
            Ok(_) => Slot::Armed(id),
            Err(e) => {
                gst::error!(CAT, "could not wait on the clock for {timer:?}: {e:?}");
                Slot::Idle
            }
        };
        match std::mem::replace(self.slot(timer), slot) {
            Slot::Armed(old) => Some(old),
            _ => None,
        }
    }

    /// Every timer idle; the ids that were armed.
    fn clear(&mut self) -> Vec<gst::SingleShotClockId> {
        [Timer::LossReport, Timer::Rtcp]
            .into_iter()
            .filter_map(|t| match std::mem::take(self.slot(t)) {
                Slot::Armed(id) => Some(id),
                _ => None,
            })
            .collect()
    }
}

/// Unscheduling outside our lock: a callback going off at that moment may be waiting for it.
fn unschedule(ids: impl IntoIterator<Item = gst::SingleShotClockId>) {
    for id in ids {
        id.unschedule();
    }
}

#[derive(Default)]
pub(super) struct Timers {
    inner: Mutex<Inner>,
}

impl Timers {
    /// Runs the timers on `clock_now()` (read under the lock, so that a clock set meanwhile
    /// is not missed), nothing armed yet.
    pub fn start(&self, clock_now: impl FnOnce() -> gst::Clock, on_fire: OnFire) {
        let stale = {
            let mut inner = lock(&self.inner);
            let stale = inner.clear();
            inner.clock = Some(clock_now());
            inner.on_fire = Some(on_fire);
            stale
        };
        unschedule(stale);
    }

    pub fn stop(&self) {
        let stale = {
            let mut inner = lock(&self.inner);
            inner.clock = None;
            inner.on_fire = None;
            inner.clear()
        };
        unschedule(stale);
    }

    /// Arms `timer` to go off `delay` from now, unless it is due sooner already or went off
    /// (its work arms it next). Nothing while stopped.
    pub fn arm_within(&self, timer: Timer, delay: gst::ClockTime) {
        let stale = {
            let mut inner = lock(&self.inner);
            let Some(now) = inner.clock.as_ref().map(|c| c.time()) else {
                return;
            };
            let at = now.saturating_add(delay);
            match inner.slot(timer) {
                Slot::Fired { .. } => return,
                Slot::Armed(id) if id.time() <= at => return,
                _ => inner.arm(timer, at),
            }
        };
        unschedule(stale);
    }

    pub fn disarm(&self, timer: Timer) {
        let stale = match std::mem::take(lock(&self.inner).slot(timer)) {
            Slot::Armed(id) => Some(id),
            _ => None,
        };
        unschedule(stale);
    }

    /// Whether `id`, which just went off, is `timer`'s armed id; if so, the timer is marked
    /// as fired. Ids unscheduled or replaced meanwhile say no.
    pub fn take_fired(&self, timer: Timer, id: &gst::ClockId) -> bool {
        let mut inner = lock(&self.inner);
        let slot = inner.slot(timer);
        match slot {
            Slot::Armed(armed) if **armed == *id => {
                let deadline = armed.time();
                *slot = Slot::Fired { deadline };
                true
            }
            _ => false,
        }
    }

    /// Arms the timer that fired again, at `next(its deadline, now)` (`None`: not again).
    /// Nothing if it was stopped or armed anew since.
    pub fn rearm(
        &self,
        timer: Timer,
        next: impl FnOnce(gst::ClockTime, gst::ClockTime) -> Option<gst::ClockTime>,
    ) {
        let stale = {
            let mut inner = lock(&self.inner);
            let Some(now) = inner.clock.as_ref().map(|c| c.time()) else {
                return;
            };
            let Slot::Fired { deadline } = *inner.slot(timer) else {
                return;
            };
            match next(deadline, now) {
                Some(at) => inner.arm(timer, at),
                None => {
                    *inner.slot(timer) = Slot::Idle;
                    None
                }
            }
        };
        unschedule(stale);
    }

    /// Moves the armed timers to `clock`, each keeping the time it had left (the clocks'
    /// times need not be related).
    pub fn set_clock(&self, clock: gst::Clock) {
        let stale = {
            let mut inner = lock(&self.inner);
            // Stopped, nothing to move: start reads the element's clock.
            let Some(old) = inner.clock.clone() else {
                return;
            };
            if old == clock {
                return;
            }
            inner.clock = Some(clock.clone());
            let (old_now, now) = (old.time(), clock.time());
            let mut stale = Vec::new();
            for timer in [Timer::LossReport, Timer::Rtcp] {
                let left = match inner.slot(timer) {
                    Slot::Armed(id) => id.time().saturating_sub(old_now),
                    _ => continue,
                };
                stale.extend(inner.arm(timer, now.saturating_add(left)));
            }
            gst::debug!(CAT, "timers moved to {}", clock.name());
            stale
        };
        unschedule(stale);
    }
}
