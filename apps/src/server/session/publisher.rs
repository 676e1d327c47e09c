//! A publisher's session (ANNOUNCE, SETUP with `mode=record`, RECORD): a client that
//! sends a path its RTP/JPEG stream, as a small state machine of its own beside the
//! viewers' [`Session`](super::Session):
//! - Ready after SETUP: the path is claimed, packets are not taken yet;
//! - Recording after RECORD: the path's input starts afresh and takes its packets;
//! - ended by TEARDOWN, its connection closing, RTP silence past the session timeout, or
//!   a newer publisher taking over; the path's viewers keep their sessions and wait.
//!
//! Every packet is checked before it goes into the path's pipeline: anything that is not
//! RTP version 2 with the announced payload type is dropped and counted.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gstmjpegrtp::rtcp::session::RtpHeader;

use crate::rtsp::interleaved;
use crate::server::live::LivePath;
use crate::server::live::publish::{PublishSlot, RtcpSink};
use crate::server::live::source::Upstream;

/// How often a UDP receiver looks whether its publisher has ended.
const POLL: Duration = Duration::from_millis(200);
/// The smallest RTCP packet (header and SSRC).
const MIN_RTCP: usize = 8;

/// How a publisher's packets arrive.
pub enum PublishTransport {
    /// On a port pair of its own (`server_port`); receiver reports go to `rtcp_to`.
    Udp {
        ports: (u16, u16),
        rtcp_to: Option<SocketAddr>,
        /// The RTCP socket, to send receiver reports from.
        rtcp: UdpSocket,
    },
    /// Interleaved in its control connection.
    Tcp {
        channels: (u8, u8),
        writer: tokio::sync::mpsc::Sender<Vec<u8>>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ready,
    Recording,
}

/// Why RECORD cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("another publisher has taken the path over")]
    TakenOver,
}

struct State {
    phase: Phase,
    /// The last RTP packet (or SETUP/RECORD before the first).
    last_media: Instant,
    packets_in: u64,
    octets_in: u64,
    packets_dropped: u64,
    rtcp_in: u64,
    ended: bool,
}

pub struct Publisher {
    pub id: String,
    pub path: Arc<LivePath>,
    slot: Arc<PublishSlot>,
    /// Its control connection's address.
    pub peer: SocketAddr,
    /// The payload type its ANNOUNCE gave.
    payload_type: u8,
    transport: PublishTransport,
    state: Mutex<State>,
    /// Tells the UDP receivers to stop.
    stop: Arc<AtomicBool>,
}

/// What `--stats` reports about a publisher.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublisherStats {
    pub id: String,
    pub client: String,
    pub path: String,
    /// `udp` or `tcp` (interleaved).
    pub transport: &'static str,
    /// `ready` (set up) or `recording`.
    pub state: &'static str,
    /// RTP packets taken into the path.
    pub packets_in: u64,
    pub octets_in: u64,
    /// Packets dropped: not RTP, or not the announced payload type, or before RECORD.
    pub packets_dropped: u64,
    /// RTCP packets from the publisher (its sender reports).
    pub rtcp_in: u64,
    /// Its stream's loss and jitter as the path's input sees them.
    pub upstream: Upstream,
}

impl Publisher {
    /// A publisher set up on `path` (Ready). For UDP, `sockets` are its RTP and RTCP
    /// sockets, read by threads of its own until it ends.
    pub fn new(
        id: String,
        path: Arc<LivePath>,
        slot: Arc<PublishSlot>,
        peer: SocketAddr,
        payload_type: u8,
        transport: PublishTransport,
    ) -> Publisher {
        Publisher {
            id,
            path,
            slot,
            peer,
            payload_type,
            transport,
            state: Mutex::new(State {
                phase: Phase::Ready,
                last_media: Instant::now(),
                packets_in: 0,
                octets_in: 0,
                packets_dropped: 0,
                rtcp_in: 0,
                ended: false,
            }),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the threads that read a UDP publisher's sockets.
    pub fn receive_udp(self: &Arc<Self>, rtp: UdpSocket, rtcp: UdpSocket) -> std::io::Result<()> {
        for (socket, is_rtp) in [(rtp, true), (rtcp, false)] {
            socket.set_read_timeout(Some(POLL))?;
            let publisher = Arc::downgrade(self);
            let stop = self.stop.clone();
            let from = self.peer.ip();
            std::thread::Builder::new()
                .name(
                    if is_rtp {
                        "publish-rtp"
                    } else {
                        "publish-rtcp"
                    }
                    .into(),
                )
                .spawn(move || receive(&socket, &publisher, &stop, is_rtp, from))?;
        }
        Ok(())
    }

    /// The `server_port` pair of a UDP publisher.
    pub fn server_ports(&self) -> Option<(u16, u16)> {
        match &self.transport {
            PublishTransport::Udp { ports, .. } => Some(*ports),
            PublishTransport::Tcp { .. } => None,
        }
    }

    /// The interleaved channels of a TCP publisher.
    pub fn channels(&self) -> Option<(u8, u8)> {
        match &self.transport {
            PublishTransport::Tcp { channels, .. } => Some(*channels),
            PublishTransport::Udp { .. } => None,
        }
    }

    /// RECORD (RFC 2326 10.11): the path's input starts afresh for this stream, and its
    /// receiver reports go back to the publisher.
    pub fn record(&self) -> Result<(), RecordError> {
        if self.slot.holder().as_deref() != Some(self.id.as_str()) {
            return Err(RecordError::TakenOver);
        }
        {
            let mut state = self.lock();
            if state.phase == Phase::Recording {
                return Ok(());
            }
            state.phase = Phase::Recording;
            state.last_media = Instant::now();
        }
        self.slot.set_rtcp_sink(&self.id, self.rtcp_sink());
        self.path.restart();
        Ok(())
    }

    fn rtcp_sink(&self) -> RtcpSink {
        match &self.transport {
            PublishTransport::Udp { rtcp_to, rtcp, .. } => {
                let to = *rtcp_to;
                let socket = rtcp.try_clone().ok();
                Arc::new(move |report: &[u8]| {
                    if let (Some(to), Some(socket)) = (to, &socket) {
                        let _ = socket.send_to(report, to);
                    }
                })
            }
            PublishTransport::Tcp { channels, writer } => {
                let channel = channels.1;
                let writer = writer.clone();
                Arc::new(move |report: &[u8]| {
                    let mut bytes = Vec::new();
                    if interleaved::append(&mut bytes, channel, [report]) {
                        // A report is not worth waiting for.
                        let _ = writer.try_send(bytes);
                    }
                })
            }
        }
    }

    /// Interleaved data on this publisher's channels; `false` when the channel is not
    /// one of them.
    pub fn on_interleaved(&self, channel: u8, data: &[u8]) -> bool {
        match self.channels() {
            Some((rtp, _)) if rtp == channel => self.on_rtp(data),
            Some((_, rtcp)) if rtcp == channel => self.on_rtcp(data),
            _ => return false,
        }
        true
    }

    /// One packet on the RTP port or channel: into the path when it is RTP/JPEG as
    /// announced and the session records, else counted as dropped.
    pub fn on_rtp(&self, data: &[u8]) {
        let fits = RtpHeader::parse(data).is_ok_and(|h| h.payload_type == self.payload_type);
        {
            let mut state = self.lock();
            if !fits || state.phase != Phase::Recording || state.ended {
                state.packets_dropped += 1;
                return;
            }
            state.packets_in += 1;
            state.octets_in += data.len() as u64;
            state.last_media = Instant::now();
        }
        self.slot.push_rtp(data);
    }

    /// A datagram from another address than the publisher's: dropped, counted.
    pub fn drop_foreign(&self) {
        self.lock().packets_dropped += 1;
    }

    /// One packet on the RTCP port or channel (sender reports, BYE).
    pub fn on_rtcp(&self, data: &[u8]) {
        {
            let mut state = self.lock();
            if data.len() < MIN_RTCP || data[0] >> 6 != 2 || state.ended {
                state.packets_dropped += 1;
                return;
            }
            state.rtcp_in += 1;
        }
        self.slot.push_rtcp(data);
    }

    /// Whether no RTP has come for longer than `timeout`.
    pub fn timed_out(&self, timeout: Duration, now: Instant) -> bool {
        now.duration_since(self.lock().last_media) > timeout
    }

    /// Ends the session: its receivers stop, and the path, if it still holds it, is free
    /// for the next publisher (the viewers wait for it). Returns whether it was still on.
    pub fn end(&self) -> bool {
        let was_recording = {
            let mut state = self.lock();
            if state.ended {
                return false;
            }
            state.ended = true;
            state.phase == Phase::Recording
        };
        self.stop.store(true, Ordering::Release);
        let held = self.slot.holder().as_deref() == Some(self.id.as_str());
        self.slot.release(&self.id);
        if held && was_recording {
            // The path's next frames come from the next publisher, on a fresh input.
            self.path.restart();
        }
        true
    }

    pub fn snapshot(&self) -> PublisherStats {
        let state = self.lock();
        PublisherStats {
            id: self.id.clone(),
            client: self.peer.to_string(),
            path: self.path.name.clone(),
            transport: match self.transport {
                PublishTransport::Udp { .. } => "udp",
                PublishTransport::Tcp { .. } => "tcp",
            },
            state: match state.phase {
                Phase::Ready => "ready",
                Phase::Recording => "recording",
            },
            packets_in: state.packets_in,
            octets_in: state.octets_in,
            packets_dropped: state.packets_dropped,
            rtcp_in: state.rtcp_in,
            upstream: if state.phase == Phase::Recording {
                self.slot.upstream()
            } else {
                Upstream::default()
            },
        }
    }
}

/// Reads one of a UDP publisher's sockets until the publisher ends. Only datagrams from
/// the publisher's own address (its control connection's) are taken: anyone else who
/// learns the ports cannot push frames onto the path.
fn receive(
    socket: &UdpSocket,
    publisher: &Weak<Publisher>,
    stop: &AtomicBool,
    is_rtp: bool,
    from: std::net::IpAddr,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Acquire) {
        let n = match socket.recv_from(&mut buf) {
            Ok((n, sender)) if sender.ip() == from => n,
            Ok(_) => {
                if let Some(publisher) = publisher.upgrade() {
                    publisher.drop_foreign();
                }
                continue;
            }
            Err(e) if crate::server::udp::transient(&e) => {
                // A publisher gone without its end (a failed start) frees its sockets.
                if publisher.strong_count() == 0 {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        let Some(publisher) = publisher.upgrade() else {
            return;
        };
        if is_rtp {
            publisher.on_rtp(&buf[..n]);
        } else {
            publisher.on_rtcp(&buf[..n]);
        }
    }
}
