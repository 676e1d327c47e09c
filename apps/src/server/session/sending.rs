//! What the pacer asks of a session: its next frame's packets (into the pacer's batch for
//! UDP, to the connection's writer for TCP), and its RTCP sender reports.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstmjpegrtp::rtcp::{self, interval::IntervalInput, session::RtpHeader};

use super::{Dest, Phase, Session, State, random_u32, rtp_ticks};
use crate::rtsp::interleaved;
use crate::server::live::LiveFrame;
use crate::server::media::{Frame, Media, Packet};
use crate::server::udp::Datagram;

/// The largest UDP payload: a lab frame bigger than this cannot be sent whole.
const MAX_DATAGRAM: usize = 65_507;

/// An RTCP packet to send once the session's lock is released.
#[derive(Debug)]
pub struct RtcpOut {
    packet: Vec<u8>,
    to: RtcpTo,
}

#[derive(Debug)]
enum RtcpTo {
    Udp(SocketAddr),
    Tcp {
        writer: tokio::sync::mpsc::Sender<Vec<u8>>,
        channel: u8,
    },
}

impl RtcpOut {
    /// Sends it: UDP from the shared RTCP socket, TCP through the connection's writer
    /// (dropped when the writer is full: a report is not worth waiting for).
    pub fn send(self, socket: &UdpSocket) {
        match self.to {
            RtcpTo::Udp(to) => {
                let _ = socket.send_to(&self.packet, to);
            }
            RtcpTo::Tcp { writer, channel } => {
                let mut bytes = Vec::new();
                if interleaved::append(&mut bytes, channel, [&self.packet[..]]) {
                    let _ = writer.try_send(bytes);
                }
            }
        }
    }
}

/// What one turn of the pacer did for a session.
#[derive(Debug)]
pub enum Sent {
    /// The booking was for a play that is over (PAUSE, a new PLAY, the end).
    Stale,
    /// The next frame is due then; `rtcp` is a sender report that fell due.
    Next { due: Instant, rtcp: Option<RtcpOut> },
    /// The play reached its end; `rtcp` is the SR + BYE that says so.
    Ended { rtcp: Option<RtcpOut> },
}

impl Session {
    /// Sends the next frame of the play numbered `generation` (UDP datagrams into
    /// `datagrams`, for the pacer's batch) and says when the one after is due.
    pub fn send_next<'a>(
        &'a self,
        generation: u64,
        now: Instant,
        datagrams: &mut Vec<Datagram<'a>>,
    ) -> Sent {
        let Media::Clip(clip) = &self.media else {
            return Sent::Stale;
        };
        let mut state = self.lock();
        if state.generation != generation || state.phase != Phase::Playing {
            return Sent::Stale;
        }
        if state.next_frame >= state.end_frame {
            if self.looping && state.end_frame == clip.frames.len() {
                state.loop_base += clip.frames.len() as u64;
                state.next_frame = 0;
            } else {
                state.phase = Phase::Ready;
                state.ended = true;
                let rtcp = if self.policy.rtcp {
                    self.sender_report(&mut state, now, Some("end of clip"))
                } else {
                    None
                };
                tracing::info!(
                    "session {}: end of {}{}",
                    self.id,
                    clip.name,
                    if self.policy.rtcp {
                        ", sent RTCP BYE"
                    } else {
                        ""
                    }
                );
                return Sent::Ended { rtcp };
            }
        }
        let timeline = state.timeline();
        if timeline.is_multiple_of(u64::from(state.adapt.decimation)) {
            let frame = &clip.frames[state.next_frame];
            let ts = state.rtp_time(timeline, clip.fps);
            let sent = self.send_frame(&mut state, frame, ts, timeline + 1, datagrams);
            if sent {
                state.frames_sent += 1;
            } else {
                state.frames_dropped += 1;
            }
        }
        state.next_frame += 1;
        let rtcp = if self.policy.rtcp && state.next_report.is_none_or(|t| now >= t) {
            self.sender_report(&mut state, now, None)
        } else {
            None
        };
        let ahead = state.timeline() - state.origin_timeline;
        let due = state.origin + Duration::from_secs_f64(ahead as f64 / f64::from(clip.fps));
        Sent::Next { due, rtcp }
    }

    /// Sends a live path's frame if the session is playing (it joins at this frame when
    /// its play just started); returns a sender report that fell due.
    pub fn send_live<'a>(
        &'a self,
        frame: &'a LiveFrame,
        now: Instant,
        datagrams: &mut Vec<Datagram<'a>>,
    ) -> Option<RtcpOut> {
        let mut state = self.lock();
        if state.phase != Phase::Playing {
            return None;
        }
        let promised = state.live.promised;
        let (anchor_rtp, anchor_ns) = *state
            .live
            .anchor
            .get_or_insert((promised, frame.capture_ns));
        let ts = anchor_rtp.wrapping_add(rtp_ticks(frame.capture_ns.saturating_sub(anchor_ns)));
        let offered = state.live.offered;
        state.live.offered += 1;
        if offered.is_multiple_of(u64::from(state.adapt.decimation)) {
            let sent = self.send_frame(&mut state, frame, ts, offered + 1, datagrams);
            if sent {
                state.live.last = Some((ts, frame.capture_ns));
                state.frames_sent += 1;
            } else {
                state.frames_dropped += 1;
            }
        }
        if self.policy.rtcp && state.next_report.is_none_or(|t| now >= t) {
            self.sender_report(&mut state, now, None)
        } else {
            None
        }
    }

    /// Sends one frame stamped `ts` (lab clients: numbered `number`); false when it was
    /// dropped.
    fn send_frame<'a>(
        &'a self,
        state: &mut State,
        frame: &'a impl SendableFrame,
        ts: u32,
        number: u64,
        datagrams: &mut Vec<Datagram<'a>>,
    ) -> bool {
        match &state.dest {
            Dest::Udp { rtp, .. } => {
                let to = *rtp;
                for packet in frame.packets() {
                    datagrams.push(Datagram {
                        to,
                        header: rtp_header(packet.marker_and_type(), state.seq, ts, self.ssrc),
                        body: packet.body().collect(),
                    });
                    state.seq = state.seq.wrapping_add(1);
                    state.counts.add(packet.body_len());
                    state.sent_packets += 1;
                    state.sent_octets += packet.body_len() as u64;
                }
                true
            }
            Dest::Lab { rtp } => {
                let jpeg = frame.jpeg();
                if jpeg.len() + 12 > MAX_DATAGRAM {
                    return false;
                }
                // Lab packets: M=0, PT 26, seq = frame number from 1, time in seconds.
                let unix = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let seq = number as u16;
                datagrams.push(Datagram {
                    to: *rtp,
                    header: rtp_header(26, seq, unix as u32, 0),
                    body: vec![jpeg],
                });
                state.seq = seq.wrapping_add(1);
                true
            }
            // Never asked: a multicast viewer is neither booked nor a live path's viewer;
            // its group's sender sends.
            Dest::Multicast(_) => false,
            Dest::Tcp { writer, channels } => {
                let mut bytes = Vec::new();
                let mut seq = state.seq;
                let mut counts = state.counts;
                let (mut packets, mut octets) = (0u64, 0u64);
                for packet in frame.packets() {
                    let header = rtp_header(packet.marker_and_type(), seq, ts, self.ssrc);
                    interleaved::append(
                        &mut bytes,
                        channels.0,
                        std::iter::once(&header[..]).chain(packet.body()),
                    );
                    seq = seq.wrapping_add(1);
                    counts.add(packet.body_len());
                    packets += 1;
                    octets += packet.body_len() as u64;
                }
                // A full writer means the client reads slower than we send: drop the
                // frame whole, unnumbered (TCP congestion, not network loss).
                let ok = writer.try_send(bytes).is_ok();
                if ok {
                    state.seq = seq;
                    state.counts = counts;
                    state.sent_packets += packets;
                    state.sent_octets += octets;
                }
                ok
            }
        }
    }

    /// A sender report (or, with a reason, SR + BYE) for the client, and the time of the
    /// next one (RFC 3550 6.3).
    pub(super) fn sender_report(
        &self,
        state: &mut State,
        now: Instant,
        bye: Option<&str>,
    ) -> Option<RtcpOut> {
        let ntp = rtcp::ntp::now();
        let ts = match &self.media {
            Media::Clip(clip) => state.rtp_time_now(now, clip.fps),
            Media::Live(_) => super::live_rtp_now(state),
        };
        let packet =
            rtcp::sender::sender_report(self.ssrc, &self.cname, ntp, ts, state.counts, bye).ok()?;
        let fps = self.media.fps().unwrap_or(25);
        let bandwidth = if state.frames_sent > 0 {
            state.counts.octets as f64 * 8.0 / (state.frames_sent as f64 / f64::from(fps))
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
        let to = match &state.dest {
            Dest::Udp { rtcp: Some(to), .. } => RtcpTo::Udp(*to),
            Dest::Tcp { writer, channels } => RtcpTo::Tcp {
                writer: writer.clone(),
                channel: channels.1,
            },
            Dest::Udp { rtcp: None, .. } | Dest::Lab { .. } | Dest::Multicast(_) => return None,
        };
        Some(RtcpOut { packet, to })
    }
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

/// A frame the session can send: a clip's or a live path's.
pub trait SendableFrame {
    fn packets(&self) -> &[Packet];
    fn jpeg(&self) -> &[u8];
}

impl SendableFrame for Frame {
    fn packets(&self) -> &[Packet] {
        &self.packets
    }
    fn jpeg(&self) -> &[u8] {
        self.jpeg.as_slice()
    }
}

impl SendableFrame for LiveFrame {
    fn packets(&self) -> &[Packet] {
        &self.packets
    }
    fn jpeg(&self) -> &[u8] {
        self.jpeg.as_slice()
    }
}
