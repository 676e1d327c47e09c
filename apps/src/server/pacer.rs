//! The packet path: one thread paces every playing session. It keeps a timetable of when
//! each session's next frame is due, wakes at the earliest, sends the frames of all the
//! sessions that are due together (one `sendmmsg` batch on the shared RTP socket), sends
//! sender reports and BYEs, and books each session's next frame. No thread, pipeline or
//! socket per session: the cost per client is a timetable entry and the packets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstmjpegrtp::rtcp::{self, interval::IntervalInput, session::RtpHeader};

use super::session::{Dest, Phase, Session, State, random_u32};
use super::udp::{Datagram, send_all};
use crate::rtsp::{Dialect, interleaved};

/// The largest UDP payload: a lab frame bigger than this cannot be sent whole.
const MAX_DATAGRAM: usize = 65_507;

/// A session's next frame, booked for `due`.
struct Booking {
    due: Instant,
    order: u64,
    generation: u64,
    session: Arc<Session>,
}

impl PartialEq for Booking {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Booking {}
impl PartialOrd for Booking {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Booking {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// Books sessions on the pacer thread.
#[derive(Clone)]
pub struct Pacer {
    tx: Sender<(Arc<Session>, u64)>,
}

pub struct Sockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl Pacer {
    pub fn start(sockets: Arc<Sockets>) -> std::io::Result<Pacer> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || run(&rx, &sockets))?;
        Ok(Pacer { tx })
    }

    /// Starts sending `session` now, for the play numbered `generation`.
    pub fn play(&self, session: Arc<Session>, generation: u64) {
        // The pacer thread only ends with the process.
        let _ = self.tx.send((session, generation));
    }
}

fn run(rx: &Receiver<(Arc<Session>, u64)>, sockets: &Sockets) {
    let mut timetable: BinaryHeap<Reverse<Booking>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut book = |timetable: &mut BinaryHeap<Reverse<Booking>>, session, generation, due| {
        order += 1;
        timetable.push(Reverse(Booking {
            due,
            order,
            generation,
            session,
        }));
    };
    loop {
        let wait = timetable
            .peek()
            .map(|b| b.0.due.saturating_duration_since(Instant::now()));
        let first = match wait {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        match first {
            Ok((session, generation)) => book(&mut timetable, session, generation, Instant::now()),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok((session, generation)) = rx.try_recv() {
            book(&mut timetable, session, generation, Instant::now());
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while timetable.peek().is_some_and(|b| b.0.due <= now) {
            if let Some(Reverse(b)) = timetable.pop() {
                due.push(b);
            }
        }
        if due.is_empty() {
            continue;
        }
        let mut datagrams = Vec::new();
        for booking in &due {
            let mut state = booking.session.lock();
            if state.generation != booking.generation || state.phase != Phase::Playing {
                continue;
            }
            if let Some(next) = step(&booking.session, &mut state, now, &mut datagrams, sockets) {
                drop(state);
                book(
                    &mut timetable,
                    booking.session.clone(),
                    booking.generation,
                    next,
                );
            }
        }
        send_all(&sockets.rtp, &datagrams);
    }
}

/// Sends the session's next frame (into `datagrams` for UDP) and says when the one after
/// is due, or `None` when the play ended.
fn step<'a>(
    session: &'a Session,
    state: &mut State,
    now: Instant,
    datagrams: &mut Vec<Datagram<'a>>,
    sockets: &Sockets,
) -> Option<Instant> {
    let clip = &session.clip;
    if state.next_frame >= state.end_frame {
        if session.looping && state.end_frame == clip.frames.len() {
            state.loop_base += clip.frames.len() as u64;
            state.next_frame = 0;
        } else {
            state.phase = Phase::Ready;
            state.ended = true;
            if session.dialect != Dialect::Lab {
                send_rtcp(session, state, now, sockets, Some("end of clip"));
            }
            tracing::info!(
                "session {}: end of {}{}",
                session.id,
                clip.name,
                if session.dialect == Dialect::Lab {
                    ""
                } else {
                    ", sent RTCP BYE"
                }
            );
            return None;
        }
    }
    let timeline = state.timeline();
    let frame = &clip.frames[state.next_frame];
    if timeline.is_multiple_of(u64::from(state.adapt.decimation)) {
        let ts = state.rtp_time(timeline, clip.fps);
        let sent = match state.dest.clone() {
            Dest::Udp { rtp, .. } => {
                for packet in &frame.packets {
                    datagrams.push(Datagram {
                        to: rtp,
                        header: rtp_header(packet.marker_and_type(), state.seq, ts, session.ssrc),
                        body: packet.body().collect(),
                    });
                    state.seq = state.seq.wrapping_add(1);
                    state.counts.add(packet.body_len());
                }
                true
            }
            Dest::Lab { rtp } => {
                if frame.jpeg.len() + 12 > MAX_DATAGRAM {
                    false
                } else {
                    // Lab packets: M=0, PT 26, seq = frame number from 1, time in seconds.
                    let unix = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let seq = (timeline + 1) as u16;
                    datagrams.push(Datagram {
                        to: rtp,
                        header: rtp_header(26, seq, unix as u32, 0),
                        body: vec![frame.jpeg.as_slice()],
                    });
                    state.seq = seq.wrapping_add(1);
                    true
                }
            }
            Dest::Tcp { writer, channels } => {
                let mut bytes = Vec::new();
                let mut seq = state.seq;
                let mut counts = state.counts;
                for packet in &frame.packets {
                    let header = rtp_header(packet.marker_and_type(), seq, ts, session.ssrc);
                    interleaved::append(
                        &mut bytes,
                        channels.0,
                        std::iter::once(&header[..]).chain(packet.body()),
                    );
                    seq = seq.wrapping_add(1);
                    counts.add(packet.body_len());
                }
                // A full writer means the client reads slower than we send: drop the
                // frame whole, unnumbered (TCP congestion, not network loss).
                let ok = writer.try_send(bytes).is_ok();
                if ok {
                    state.seq = seq;
                    state.counts = counts;
                }
                ok
            }
        };
        if sent {
            state.frames_sent += 1;
        } else {
            state.frames_dropped += 1;
        }
    }
    state.next_frame += 1;
    if session.dialect != Dialect::Lab && state.next_report.is_none_or(|t| now >= t) {
        send_rtcp(session, state, now, sockets, None);
    }
    let ahead = state.timeline() - state.origin_timeline;
    Some(state.origin + Duration::from_secs_f64(ahead as f64 / f64::from(clip.fps)))
}

/// Our RTP header in front of a payloaded packet: `marker_and_type` is the packet's own
/// second byte (marker bit and payload type).
fn rtp_header(marker_and_type: u8, sequence: u16, timestamp: u32, ssrc: u32) -> [u8; 12] {
    let header = RtpHeader {
        payload_type: marker_and_type & 0x7F,
        sequence,
        timestamp,
        ssrc,
    };
    header.to_bytes(marker_and_type & 0x80 != 0)
}

/// Sends a sender report (or, with a reason, SR + BYE) and books the next report.
pub fn send_rtcp(
    session: &Session,
    state: &mut State,
    now: Instant,
    sockets: &Sockets,
    bye: Option<&str>,
) {
    let ntp = rtcp::ntp::now();
    let ts = state.rtp_time_now(now, session.clip.fps);
    let packet =
        rtcp::sender::sender_report(session.ssrc, &session.cname, ntp, ts, state.counts, bye);
    let Ok(packet) = packet else {
        return;
    };
    match &state.dest {
        Dest::Udp { rtcp: Some(to), .. } => {
            let _ = sockets.rtcp.send_to(&packet, to);
        }
        Dest::Tcp { writer, channels } => {
            let mut bytes = Vec::new();
            if interleaved::append(&mut bytes, channels.1, [&packet[..]]) {
                let _ = writer.try_send(bytes);
            }
        }
        Dest::Udp { rtcp: None, .. } | Dest::Lab { .. } => {}
    }
    let bandwidth = if state.frames_sent > 0 {
        state.counts.octets as f64 * 8.0 / (state.frames_sent as f64 / f64::from(session.clip.fps))
    } else {
        1e6
    };
    let input = IntervalInput {
        members: 2,
        senders: 1,
        we_sent: true,
        session_bandwidth: bandwidth,
        avg_rtcp_size: (packet.len() + 28) as f64,
        initial: state.next_report.is_none(),
        reduced_minimum: false,
    };
    let random = f64::from(random_u32()) / f64::from(u32::MAX);
    let seconds = rtcp::interval::randomized(&input, random);
    state.next_report = Some(now + Duration::from_secs_f64(seconds));
}
