//! One RTSP session: a client, the clip it plays, where its packets go, its position, and
//! its RTCP state. The control side (requests) and the pacer (sending) share it behind a
//! mutex that each holds only briefly.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use gstmjpegrtp::rtcp::{self, sender::SenderCounts};

use super::adapt::Adapt;
use super::media::Clip;
use super::stats::{ReceiverReport, SessionStats};
use crate::log_limit::{self, LogLimit};
use crate::rtsp::Dialect;

/// RTP clock rate of JPEG (RFC 3551).
pub const CLOCK_RATE: u64 = 90_000;

/// Where a session's packets go.
#[derive(Debug, Clone)]
pub enum Dest {
    Udp {
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    },
    /// Interleaved in the control connection: whole `$`-framed frames to its writer.
    Tcp {
        writer: tokio::sync::mpsc::Sender<Vec<u8>>,
        channels: (u8, u8),
    },
    /// A lab client: whole JPEGs to one port, no RTCP.
    Lab { rtp: SocketAddr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Ready,
    Playing,
}

pub struct State {
    pub phase: Phase,
    pub dest: Dest,
    /// Bumped by every PLAY, PAUSE and TEARDOWN: the pacer drops what it scheduled before.
    pub generation: u64,
    /// Next clip frame to send, and the frame to stop before.
    pub next_frame: usize,
    pub end_frame: usize,
    /// Frames of stream time before `next_frame`'s pass through the clip (grows by the
    /// clip's length at each loop), so timestamps keep increasing when looping.
    pub loop_base: u64,
    /// When frame `origin_timeline` of stream time is due.
    pub origin: Instant,
    pub origin_timeline: u64,
    pub seq: u16,
    pub ts_base: u32,
    pub counts: SenderCounts,
    pub next_report: Option<Instant>,
    pub ended: bool,
    pub adapt: Adapt,
    pub last_activity: Instant,
    pub rtcp: rtcp::Session,
    pub report: Option<ReceiverReport>,
    pub frames_sent: u64,
    pub frames_dropped: u64,
    /// The lines the client's packets make, limited per second.
    pub log_limit: LogLimit,
    pub rtcp_byes: u64,
    pub rtcp_malformed: u64,
}

impl State {
    /// Stream time (in frames) of `next_frame`.
    pub fn timeline(&self) -> u64 {
        self.loop_base + self.next_frame as u64
    }

    pub fn rtp_time(&self, timeline: u64, fps: u32) -> u32 {
        self.ts_base
            .wrapping_add((timeline * CLOCK_RATE / u64::from(fps)) as u32)
    }

    /// The RTP time of `now` on the current play's clock.
    pub fn rtp_time_now(&self, now: Instant, fps: u32) -> u32 {
        let elapsed = now.saturating_duration_since(self.origin);
        let ticks = (elapsed.as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000) as u32;
        self.rtp_time(self.origin_timeline, fps).wrapping_add(ticks)
    }
}

pub struct Session {
    pub id: String,
    pub dialect: Dialect,
    pub clip: Arc<Clip>,
    pub ssrc: u32,
    pub cname: String,
    /// The client's control connection address.
    pub peer: SocketAddr,
    /// Loop at the end of the clip instead of ending.
    pub looping: bool,
    state: Mutex<State>,
}

impl Session {
    pub fn new(
        id: String,
        dialect: Dialect,
        clip: Arc<Clip>,
        peer: SocketAddr,
        dest: Dest,
        looping: bool,
        adapt_threshold: f64,
    ) -> Session {
        let ssrc = if dialect == Dialect::Lab {
            0
        } else {
            random_u32()
        };
        let cname = format!("mjpeg-rtsp-server@{}", peer.ip());
        let end_frame = clip.frames.len();
        let now = Instant::now();
        let state = State {
            phase: Phase::Ready,
            dest,
            generation: 0,
            next_frame: 0,
            end_frame,
            loop_base: 0,
            origin: now,
            origin_timeline: 0,
            seq: if dialect == Dialect::Lab {
                1
            } else {
                random_u32() as u16
            },
            ts_base: random_u32(),
            counts: SenderCounts::default(),
            next_report: None,
            ended: false,
            adapt: Adapt::new(adapt_threshold),
            last_activity: now,
            rtcp: rtcp::Session::new(ssrc, &cname),
            report: None,
            frames_sent: 0,
            frames_dropped: 0,
            log_limit: LogLimit::default(),
            rtcp_byes: 0,
            rtcp_malformed: 0,
        };
        Session {
            id,
            dialect,
            clip,
            ssrc,
            cname,
            peer,
            looping,
            state: Mutex::new(state),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

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
        let Some(peer) = state
            .rtcp
            .sources()
            .iter()
            .find(|s| s.ssrc == self.ssrc)
            .and_then(|s| s.peer_report)
        else {
            return lines;
        };
        let previous = state.report.unwrap_or_default();
        let report = ReceiverReport {
            fraction_lost: f64::from(peer.fraction_lost) / 256.0,
            cumulative_lost: peer.cumulative_lost,
            jitter_ms: f64::from(peer.jitter) * 1000.0 / CLOCK_RATE as f64,
            rtt_ms: peer.round_trip_ns.map(|ns| ns as f64 / 1e6),
            reports: previous.reports + 1,
        };
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
            lines.push(format!(
                "session {}: {} to one frame in {decimation} ({:.1} frames/s) after receiver reports of {:.1}% loss",
                self.id,
                if decimation > 1 { "congestion: sending fewer frames," } else { "loss is gone: back" },
                f64::from(self.clip.fps) / f64::from(decimation),
                report.fraction_lost * 100.0
            ));
        }
        lines
    }

    /// What `--stats` reports about the session.
    pub fn snapshot(&self) -> SessionStats {
        let state = self.lock();
        SessionStats {
            id: self.id.clone(),
            client: self.peer.to_string(),
            path: self.clip.name.clone(),
            dialect: match self.dialect {
                Dialect::Standard => "rtsp",
                Dialect::Lab => "lab",
            },
            transport: match state.dest {
                Dest::Udp { .. } => "udp",
                Dest::Tcp { .. } => "tcp",
                Dest::Lab { .. } => "lab-udp",
            },
            state: match state.phase {
                Phase::Playing => "playing",
                Phase::Ready => "ready",
            },
            ended: state.ended,
            frame: state.next_frame,
            frames_sent: state.frames_sent,
            frames_dropped: state.frames_dropped,
            packets_sent: u64::from(state.counts.packets),
            octets_sent: u64::from(state.counts.octets),
            decimation: state.adapt.decimation,
            receiver_report: state.report,
            rtcp_byes: state.rtcp_byes,
            rtcp_malformed: state.rtcp_malformed,
        }
    }
}

/// Nanoseconds on a monotonic clock (the process's).
pub fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: fall back on the clock (session ids stay unique by check).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        return t.rotate_left(13) ^ 0x9e37_79b9;
    }
    u32::from_ne_bytes(bytes)
}
