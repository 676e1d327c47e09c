//! The client's RTCP: receiver reports about our stream (kept for statistics and the
//! congestion response), BYE, and what they make the session log, limited per second.

use std::time::Instant;

use gstmjpegrtp::rtcp;

use super::{CLOCK_RATE, Session, State, monotonic_ns};
use crate::log_limit;
use crate::server::stats::ReceiverReport;
use gstmjpegrtp::rtcp::session::PeerReport;

impl Session {
    /// Takes a compound RTCP packet from the client. Returns lines for the log (a report
    /// about our stream, a frame rate change, a BYE, a malformed packet), at most
    /// [`log_limit::LINES_PER_SECOND`] a second: a client can send any number.
    pub fn on_rtcp(&self, data: &[u8], adapt: bool) -> Vec<String> {
        let mut state = self.lock();
        let now = Instant::now();
        state.last_activity = now;
        let lines = self.rtcp_lines(&mut state, data, adapt);
        state
            .log_limit
            .filter(now, lines, |n| self.suppressed_line(n))
    }

    /// A line saying how many of this session's lines were held back, once the second
    /// they were held back in is over (a flood that stopped gets its count said).
    pub fn suppressed_by(&self, now: Instant) -> Option<String> {
        let n = self.lock().log_limit.pending(now)?;
        Some(self.suppressed_line(n))
    }

    /// The same at the session's end, whatever the second.
    pub fn suppressed_at_end(&self) -> Option<String> {
        let n = self.lock().log_limit.take()?;
        Some(self.suppressed_line(n))
    }

    fn suppressed_line(&self, n: u64) -> String {
        format!("session {}: {}", self.id, log_limit::suppressed(n))
    }

    fn rtcp_lines(&self, state: &mut State, data: &[u8], adapt: bool) -> Vec<String> {
        let mut lines = Vec::new();
        let mono = monotonic_ns();
        let events = match state.rtcp.on_rtcp(data, mono, rtcp::ntp::now()) {
            Ok(events) => events,
            Err(e) => {
                state.rtcp_malformed += 1;
                lines.push(format!(
                    "session {}: dropped malformed RTCP from the client: {e}",
                    self.id
                ));
                return lines;
            }
        };
        for (ssrc, reason) in events.byes {
            state.rtcp_byes += 1;
            lines.push(format!(
                "session {}: the client (SSRC {ssrc:08x}) said BYE{}",
                self.id,
                reason.map(|r| format!(" ({r})")).unwrap_or_default()
            ));
        }
        let Some(peer) = state.rtcp.peer_report_about(self.ssrc) else {
            return lines;
        };
        let report = receiver_report(&peer, state.report);
        state.report = Some(report);
        lines.push(format!(
            "session {}: receiver report from {}: fraction lost {:.1}%, cumulative lost {}, jitter {:.2} ms{}",
            self.id,
            self.peer,
            report.fraction_lost * 100.0,
            report.cumulative_lost,
            report.jitter_ms,
            report.rtt_ms.map(|r| format!(", round trip {r:.2} ms")).unwrap_or_default()
        ));
        if adapt && let Some(decimation) = state.adapt.on_report(report.fraction_lost) {
            let rate = self
                .media
                .fps()
                .map(|fps| format!(" ({:.1} frames/s)", f64::from(fps) / f64::from(decimation)))
                .unwrap_or_default();
            lines.push(format!(
                "session {}: {} to one frame in {decimation}{rate} after receiver reports of {:.1}% loss",
                self.id,
                if decimation > 1 { "congestion: sending fewer frames," } else { "loss is gone: back" },
                report.fraction_lost * 100.0
            ));
        }
        lines
    }
}

/// What a receiver report block about our stream says, in the statistics' units; the
/// count goes on from `previous`.
pub fn receiver_report(peer: &PeerReport, previous: Option<ReceiverReport>) -> ReceiverReport {
    ReceiverReport {
        fraction_lost: f64::from(peer.fraction_lost) / 256.0,
        cumulative_lost: peer.cumulative_lost,
        jitter_ms: f64::from(peer.jitter) * 1000.0 / CLOCK_RATE as f64,
        rtt_ms: peer.round_trip_ns.map(|ns| ns as f64 / 1e6),
        reports: previous.unwrap_or_default().reports + 1,
    }
}
