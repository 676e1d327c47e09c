//! One RTSP session: a client, the clip it plays, where its packets go, its position, and
//! its RTCP state, as a state machine with methods (set up, play from a position, pause,
//! end, time out) that keep its invariants in one place:
//! - every change of what is being sent (PLAY, PAUSE, end) bumps the play's generation,
//!   so the pacer drops what it booked for an older one ([`State::start_sending`] and
//!   [`State::stop_sending`] are the only writers);
//! - RTP time and sequence numbers run on across PAUSE and PLAY;
//! - nothing is sent while the session's lock is held by the control side: methods that
//!   end a play return the RTCP BYE to send ([`RtcpOut`]), and the caller sends it.
//!
//! The control side (requests) and the pacer (sending, `sending.rs`) share the state
//! behind a mutex that each holds only briefly; `rtcp.rs` takes the client's reports.

pub mod publisher;
mod rtcp;
mod sending;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gstmjpegrtp::rtcp::sender::SenderCounts;

use super::adapt::Adapt;
use super::media::Media;
use super::multicast::Group;
use super::policy::Policy;
use super::stats::{Membership, ReceiverReport, SessionStats};
use crate::log_limit::LogLimit;
use crate::rtsp::range::{PlayRange, ServedRange};
use crate::server::live;

pub use rtcp::receiver_report;
pub use sending::{RtcpOut, Sent};

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
    /// A multicast viewer: its group's sender sends, once for all the group's viewers;
    /// the session itself sends nothing.
    Multicast(Arc<Group>),
}

impl Dest {
    /// The name in statistics.
    fn name(&self) -> &'static str {
        match self {
            Dest::Udp { .. } => "udp",
            Dest::Tcp { .. } => "tcp",
            Dest::Lab { .. } => "lab-udp",
            Dest::Multicast(_) => "multicast",
        }
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Udp { rtp, rtcp } => {
                write!(f, "RTP/AVP UDP to {rtp}")?;
                match rtcp {
                    Some(rtcp) => write!(f, ", RTCP {rtcp}"),
                    None => Ok(()),
                }
            }
            Dest::Tcp { channels, .. } => {
                write!(f, "RTP/AVP/TCP interleaved {}-{}", channels.0, channels.1)
            }
            Dest::Lab { rtp } => write!(f, "lab RTP/UDP to {rtp}"),
            Dest::Multicast(group) => write!(f, "RTP/AVP multicast, {group}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Playing,
}

/// Why a PLAY cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    #[error("the range starts past the end")]
    StartsPastEnd,
    #[error("nothing to play in that range")]
    NothingToPlay,
}

/// What a PLAY started: the generation to book on the pacer (a clip; a live path's
/// frames come by themselves), and what the reply says.
#[derive(Debug, Clone, Copy)]
pub struct Play {
    pub generation: Option<u64>,
    /// The sequence number and RTP time of the first packet (`RTP-Info`).
    pub seq: u16,
    pub rtptime: u32,
    pub range: ServedRange,
}

/// What ending a session leaves to do and to say.
#[derive(Debug)]
pub struct Ending {
    /// SR + BYE, when the client was being sent to and has RTCP.
    pub bye: Option<RtcpOut>,
    pub frames_sent: u64,
}

struct State {
    phase: Phase,
    dest: Dest,
    /// Bumped by every PLAY, PAUSE and end: the pacer drops what it booked before.
    generation: u64,
    /// Next clip frame to send, and the frame to stop before.
    next_frame: usize,
    end_frame: usize,
    /// Frames of stream time before `next_frame`'s pass through the clip (grows by the
    /// clip's length at each loop), so timestamps keep increasing when looping.
    loop_base: u64,
    /// When frame `origin_timeline` of stream time is due.
    origin: Instant,
    origin_timeline: u64,
    seq: u16,
    ts_base: u32,
    counts: SenderCounts,
    /// The same counts without the sender report's 32-bit wrap (statistics, metrics).
    sent_packets: u64,
    sent_octets: u64,
    next_report: Option<Instant>,
    ended: bool,
    adapt: Adapt,
    last_activity: Instant,
    rtcp: gstmjpegrtp::rtcp::Session,
    report: Option<ReceiverReport>,
    frames_sent: u64,
    frames_dropped: u64,
    /// The lines the client's packets make, limited per second.
    log_limit: LogLimit,
    rtcp_byes: u64,
    rtcp_malformed: u64,
    /// How a live path's frames map to this session's RTP time.
    live: LiveClock,
    /// A multicast viewer: the SSRC its receiver reports come from, once they were told
    /// apart from other receivers of its group.
    receiver_ssrc: Option<u32>,
}

/// A live session's RTP time: a frame's is the anchor's plus the capture time since the
/// anchor's frame. The first frame after each PLAY is the anchor, stamped with the RTP
/// time its reply promised (continuing from the last frame sent, by the time passed).
#[derive(Debug, Default)]
struct LiveClock {
    /// (RTP time, capture time in ns) of the first frame of the current play.
    anchor: Option<(u32, u64)>,
    /// The RTP time the current play's first frame gets (`RTP-Info`).
    promised: u32,
    /// The last frame sent: (RTP time, capture time).
    last: Option<(u32, u64)>,
    /// Frames of the path offered to this session (decimation; lab numbering).
    offered: u64,
}

/// Nanoseconds as 90 kHz RTP ticks (wrapping, as RTP time does).
fn rtp_ticks(ns: u64) -> u32 {
    (u128::from(ns) * u128::from(CLOCK_RATE) / 1_000_000_000) as u32
}

impl State {
    /// Stream time (in frames) of `next_frame`.
    fn timeline(&self) -> u64 {
        self.loop_base + self.next_frame as u64
    }

    fn rtp_time(&self, timeline: u64, fps: u32) -> u32 {
        self.ts_base
            .wrapping_add((timeline * CLOCK_RATE / u64::from(fps)) as u32)
    }

    /// The RTP time of `now` on the current play's clock.
    fn rtp_time_now(&self, now: Instant, fps: u32) -> u32 {
        let elapsed = now.saturating_duration_since(self.origin);
        let ticks = (elapsed.as_nanos() * u128::from(CLOCK_RATE) / 1_000_000_000) as u32;
        self.rtp_time(self.origin_timeline, fps).wrapping_add(ticks)
    }

    /// A new play from `next_frame`, due now; returns its generation.
    fn start_sending(&mut self, now: Instant) -> u64 {
        self.phase = Phase::Playing;
        self.ended = false;
        self.generation += 1;
        self.origin = now;
        self.origin_timeline = self.timeline();
        self.generation
    }

    /// No more sending for the current play.
    fn stop_sending(&mut self) {
        self.phase = Phase::Ready;
        self.generation += 1;
    }
}

pub struct Session {
    pub id: String,
    pub policy: &'static Policy,
    /// What the session plays: a clip, or a live path.
    pub media: Media,
    pub ssrc: u32,
    pub cname: String,
    /// The client's control connection address.
    pub peer: SocketAddr,
    /// Loop at the end of the clip instead of ending.
    pub looping: bool,
    /// When it was set up.
    pub created: Instant,
    state: Mutex<State>,
}

impl Session {
    /// A session in the Ready state (RFC 2326 A.1), set up to send to `dest`.
    pub fn new(
        id: String,
        policy: &'static Policy,
        media: Media,
        peer: SocketAddr,
        dest: Dest,
        looping: bool,
        adapt_threshold: f64,
    ) -> Session {
        let ssrc = if policy.random_ssrc { random_u32() } else { 0 };
        let cname = format!("mjpeg-rtsp-server@{}", peer.ip());
        let end_frame = match &media {
            Media::Clip(clip) => clip.frames.len(),
            Media::Live(_) => 0,
        };
        let ts_base = random_u32();
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
            seq: if policy.seq_is_frame_number {
                1
            } else {
                random_u32() as u16
            },
            ts_base,
            counts: SenderCounts::default(),
            sent_packets: 0,
            sent_octets: 0,
            next_report: None,
            ended: false,
            adapt: Adapt::new(adapt_threshold),
            last_activity: now,
            rtcp: gstmjpegrtp::rtcp::Session::new(ssrc, &cname),
            report: None,
            frames_sent: 0,
            frames_dropped: 0,
            log_limit: LogLimit::default(),
            rtcp_byes: 0,
            rtcp_malformed: 0,
            live: LiveClock {
                promised: ts_base,
                ..LiveClock::default()
            },
            receiver_ssrc: None,
        };
        Session {
            id,
            policy,
            media,
            ssrc,
            cname,
            peer,
            looping,
            created: now,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock would be a bug; the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The client showed it is alive (a request or RTCP).
    pub fn touch(&self) {
        self.lock().last_activity = Instant::now();
    }

    /// Whether the client has been silent longer than `timeout` (sessions whose policy
    /// does not time out never are).
    pub fn timed_out(&self, timeout: Duration, now: Instant) -> bool {
        self.policy.times_out && now.duration_since(self.lock().last_activity) > timeout
    }

    pub fn is_playing(&self) -> bool {
        self.lock().phase == Phase::Playing
    }

    /// Interleaved, lab and multicast sessions live in their control connection and end
    /// with it (a multicast viewer gone silent would hold its group); UDP sessions stay
    /// until TEARDOWN or their timeout, as RFC 2326 lets clients reconnect.
    pub fn ends_with_connection(&self) -> bool {
        !matches!(self.lock().dest, Dest::Udp { .. })
    }

    /// The interleaved channel the client's RTCP comes on.
    pub fn rtcp_channel(&self) -> Option<u8> {
        match &self.lock().dest {
            Dest::Tcp { channels, .. } => Some(channels.1),
            _ => None,
        }
    }

    /// Where the client's RTCP comes from (UDP).
    pub fn rtcp_address(&self) -> Option<SocketAddr> {
        match &self.lock().dest {
            Dest::Udp { rtcp, .. } => *rtcp,
            _ => None,
        }
    }

    pub fn dest(&self) -> Dest {
        self.lock().dest.clone()
    }

    /// A multicast viewer's group.
    pub fn group(&self) -> Option<Arc<Group>> {
        match &self.lock().dest {
            Dest::Multicast(group) => Some(group.clone()),
            _ => None,
        }
    }

    /// A multicast viewer plays or pauses: its own state only (its group sends).
    pub fn set_following(&self, playing: bool) {
        self.lock().phase = if playing {
            Phase::Playing
        } else {
            Phase::Ready
        };
    }

    /// A receiver report of a multicast viewer, told apart by its group (from receiver
    /// `ssrc`); true for the viewer's first.
    pub fn take_group_report(&self, ssrc: u32, report: ReceiverReport, bye: bool) -> bool {
        let mut state = self.lock();
        let first = state.report.is_none();
        state.receiver_ssrc = Some(ssrc);
        state.report = Some(report);
        state.rtcp_byes += u64::from(bye);
        state.last_activity = Instant::now();
        first
    }

    /// Where a playing session is, without changing anything: the sequence number and
    /// RTP time of its next packet, and the position (a multicast group's sender, for a
    /// viewer that joins it).
    pub fn now_playing(&self) -> Play {
        let state = self.lock();
        match &self.media {
            Media::Clip(clip) => Play {
                generation: None,
                seq: state.seq,
                rtptime: state.rtp_time(state.timeline(), clip.fps),
                range: ServedRange {
                    start: Some(clip.time_of(state.next_frame as u64)),
                    end: (!self.looping).then(|| clip.duration()),
                },
            },
            Media::Live(_) => Play {
                generation: None,
                seq: state.seq,
                rtptime: live_rtp_now(&state),
                range: ServedRange::LIVE,
            },
        }
    }

    /// PLAY (RFC 2326 10.5). A clip plays from `range`'s start (the frame shown then),
    /// else from where PAUSE left it (the start again after the end), up to `range`'s
    /// end. A live path plays its next frame whatever the range says: there is no
    /// position to go to.
    pub fn play(&self, range: Option<PlayRange>) -> Result<Play, PlayError> {
        let Media::Clip(clip) = &self.media else {
            return Ok(self.play_live());
        };
        let frames = clip.frames.len();
        let mut state = self.lock();
        let from = match range.and_then(|r| r.start) {
            Some(seconds) => clip.frame_at(seconds).ok_or(PlayError::StartsPastEnd)?,
            None if state.ended || state.next_frame >= frames => 0,
            None => state.next_frame,
        };
        let end = match range.and_then(|r| r.end) {
            Some(seconds) => {
                ((seconds * f64::from(clip.fps) - 1e-6).ceil().max(0.0) as usize).min(frames)
            }
            None => frames,
        };
        if end <= from {
            return Err(PlayError::NothingToPlay);
        }
        state.next_frame = from;
        state.end_frame = end;
        let generation = state.start_sending(Instant::now());
        let timeline = state.timeline();
        let seq = if self.policy.seq_is_frame_number {
            (timeline + 1) as u16
        } else {
            state.seq
        };
        Ok(Play {
            generation: Some(generation),
            seq,
            rtptime: state.rtp_time(timeline, clip.fps),
            range: ServedRange {
                start: Some(clip.time_of(from as u64)),
                end: (end < frames || !self.looping).then(|| clip.time_of(end as u64)),
            },
        })
    }

    fn play_live(&self) -> Play {
        let mut state = self.lock();
        if let Some((rtp, captured)) = state.live.last {
            let since = live::source::clock_now_ns().saturating_sub(captured);
            state.live.promised = rtp.wrapping_add(rtp_ticks(since));
        }
        state.live.anchor = None;
        state.start_sending(Instant::now());
        Play {
            generation: None,
            seq: if self.policy.seq_is_frame_number {
                (state.live.offered + 1) as u16
            } else {
                state.seq
            },
            rtptime: state.live.promised,
            range: ServedRange::LIVE,
        }
    }

    /// PAUSE (RFC 2326 10.6): stops sending; returns the position it will resume from
    /// (`now` for a live path).
    pub fn pause(&self) -> ServedRange {
        let mut state = self.lock();
        if state.phase == Phase::Playing {
            state.stop_sending();
        }
        match &self.media {
            Media::Clip(clip) => ServedRange {
                start: Some(clip.time_of(state.next_frame as u64)),
                end: None,
            },
            Media::Live(_) => ServedRange::LIVE,
        }
    }

    /// Ends the session (TEARDOWN, timeout, connection closed, shutdown): nothing more is
    /// sent. With a reason, a client that was being sent to gets SR + BYE (returned to be
    /// sent once the lock is released).
    pub fn end(&self, why: Option<&str>) -> Ending {
        let mut state = self.lock();
        let was_sending = state.frames_sent > 0 && !state.ended;
        state.stop_sending();
        let bye = match why {
            Some(why) if was_sending && self.policy.rtcp => {
                self.sender_report(&mut state, Instant::now(), Some(why))
            }
            _ => None,
        };
        Ending {
            bye,
            frames_sent: state.frames_sent,
        }
    }

    /// What `--stats` reports about the session.
    pub fn snapshot(&self) -> SessionStats {
        let state = self.lock();
        SessionStats {
            id: self.id.clone(),
            client: self.peer.to_string(),
            path: self.media.name().to_string(),
            dialect: self.policy.name(),
            transport: state.dest.name(),
            duration_s: (self.created.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            fps: None,
            state: match state.phase {
                Phase::Playing => "playing",
                Phase::Ready => "ready",
            },
            ended: state.ended,
            frame: state.next_frame,
            frames_sent: state.frames_sent,
            frames_dropped: state.frames_dropped,
            packets_sent: state.sent_packets,
            octets_sent: state.sent_octets,
            decimation: state.adapt.decimation,
            receiver_report: state.report,
            rtcp_byes: state.rtcp_byes,
            rtcp_malformed: state.rtcp_malformed,
            multicast: match &state.dest {
                Dest::Multicast(group) => Some(Membership {
                    group: group.addr.to_string(),
                    rtp_port: group.ports.0,
                    rtcp_port: group.ports.1,
                    ttl: group.ttl,
                    ssrc: group.ssrc(),
                    receiver_ssrc: state.receiver_ssrc,
                }),
                _ => None,
            },
        }
    }
}

/// A live session's RTP time now: from its play's first frame by the capture clock, or
/// what its play promised before any frame.
fn live_rtp_now(state: &State) -> u32 {
    match state.live.anchor {
        Some((rtp, captured)) => {
            let since = live::source::clock_now_ns().saturating_sub(captured);
            rtp.wrapping_add(rtp_ticks(since))
        }
        None => state.live.promised,
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
