//! One multicast group: the sender of a path's stream to all its multicast viewers, and
//! what comes back from them.
//!
//! The sender is a session of its own (its SSRC, sequence numbers and RTP time), sent to
//! the group's address by the pacer like any UDP session: booked for a clip, a viewer of
//! the path for a live one. Each packet goes out once, whatever the number of viewers.
//! Its sender reports go to the group's RTCP port.
//!
//! A clip's group is a channel: one position for all its viewers. A viewer joins it where
//! it is (a PLAY from `npt=0-`, as ffmpeg and rtspsrc send, or from where the channel
//! is, is a join); any other position is a seek, refused. The group sends while any of
//! its viewers plays, and pauses when none does.
//!
//! Receiver reports come to the group's RTCP port (RFC 3550 receivers send them there),
//! or to the server's own. They are kept per receiver SSRC, and given to the viewer whose
//! address they came from when no other viewer of the group has that address. A receiver
//! is forgotten when it says BYE, when its viewer leaves, or when it has been quiet for
//! [`RECEIVER_TIMEOUT`]; past [`MAX_RECEIVERS`], the longest quiet one makes room.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gstmjpegrtp::rtcp;

use crate::rtsp::Dialect;
use crate::rtsp::range::{PlayRange, ServedRange};
use crate::server::media::Media;
use crate::server::policy::Policy;
use crate::server::session::{self, Dest, Play, PlayError, RtcpOut, Session};
use crate::server::stats::{GroupReceiver, GroupStats, ReceiverReport, SessionStats};
use crate::server::udp;

/// Receivers a group keeps figures for: a peer that invents SSRCs only churns them.
const MAX_RECEIVERS: usize = 1024;
/// A receiver not heard from for this long is gone (RFC 3550 6.3.5 times out members
/// after five report intervals; receivers report every 5 s or so).
const RECEIVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the RTCP thread looks whether its group was freed.
const POLL: Duration = Duration::from_millis(250);
/// A PLAY whose range starts this close to a clip channel's position joins it: a client
/// resuming from where it paused, or asking for where it was told the channel is.
const JOIN_SLACK_S: f64 = 1.0;

/// Why a multicast viewer's PLAY is refused.
#[derive(Debug, thiserror::Error)]
pub enum GroupPlayError {
    #[error(
        "multicast is shared playback: the group plays one position for all its viewers (now {at:.3} s), so a seek needs a unicast session (RTP/AVP;unicast or RTP/AVP/TCP)"
    )]
    Seek { at: f64 },
    #[error("{0}")]
    Play(#[from] PlayError),
}

/// Whether a PLAY with `range` joins a clip channel that is at `at` seconds (rather than
/// asking it to seek): no range, a start at 0 (ffmpeg's `npt=0.000-`, rtspsrc's
/// `npt=0-` on their first PLAY) or within [`JOIN_SLACK_S`] of `at`, and no end.
pub fn joins(range: Option<PlayRange>, at: f64) -> bool {
    let Some(range) = range else {
        return true;
    };
    let start_joins = match range.start {
        None => true,
        Some(start) => start <= 1e-3 || (start - at).abs() <= JOIN_SLACK_S,
    };
    start_joins && range.end.is_none()
}

pub struct Group {
    pub path: String,
    pub addr: Ipv4Addr,
    /// RTP and RTCP ports on the group.
    pub ports: (u16, u16),
    pub ttl: u8,
    /// Sends the stream to the group, once for every viewer.
    pub sender: Arc<Session>,
    /// Set when the group is freed: its RTCP thread stops.
    closed: Arc<AtomicBool>,
    inner: Mutex<Inner>,
}

struct Inner {
    viewers: Vec<Arc<Session>>,
    receivers: BTreeMap<u32, Receiver>,
}

struct Receiver {
    from: SocketAddr,
    /// The viewer its reports were given to.
    session: Option<String>,
    report: ReceiverReport,
    heard: Instant,
}

impl Inner {
    /// Forgets receivers quiet for [`RECEIVER_TIMEOUT`].
    fn expire(&mut self, now: Instant) {
        self.receivers
            .retain(|_, r| now.duration_since(r.heard) < RECEIVER_TIMEOUT);
    }

    /// Forgets quiet receivers and, to take in `new` past [`MAX_RECEIVERS`], the one
    /// quiet the longest.
    fn make_room(&mut self, new: u32, now: Instant) {
        self.expire(now);
        if self.receivers.len() >= MAX_RECEIVERS && !self.receivers.contains_key(&new) {
            let quietest = self
                .receivers
                .iter()
                .min_by_key(|(_, r)| r.heard)
                .map(|(ssrc, _)| *ssrc);
            if let Some(ssrc) = quietest {
                self.receivers.remove(&ssrc);
            }
        }
    }
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Group({self})")
    }
}

impl std::fmt::Display for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "group {}:{}-{} (ttl {})",
            self.addr, self.ports.0, self.ports.1, self.ttl
        )
    }
}

impl Group {
    /// Opens group `addr` for `media`: picks its ports, listens on its RTCP port (joined
    /// on `interface`, the server's address, or the default one), and makes its sender
    /// (a live path's viewer from now on).
    pub fn open(
        media: &Media,
        addr: Ipv4Addr,
        ttl: u8,
        interface: Ipv4Addr,
        looping: bool,
    ) -> std::io::Result<Arc<Group>> {
        let (socket, ports) = rtcp_socket(addr, interface)?;
        let dest = Dest::Udp {
            rtp: SocketAddrV4::new(addr, ports.0).into(),
            rtcp: Some(SocketAddrV4::new(addr, ports.1).into()),
        };
        let sender = Arc::new(Session::new(
            format!("mcast-{addr}"),
            Policy::of(Dialect::Standard),
            media.clone(),
            SocketAddrV4::new(interface, 0).into(),
            dest,
            looping,
            // The congestion response is per client: a group has none.
            1.0,
        ));
        let closed = Arc::new(AtomicBool::new(false));
        let group = Arc::new(Group {
            path: media.name().to_string(),
            addr,
            ports,
            ttl,
            inner: Mutex::new(Inner {
                viewers: Vec::new(),
                receivers: BTreeMap::new(),
            }),
            sender,
            closed: closed.clone(),
        });
        let weak = Arc::downgrade(&group);
        std::thread::Builder::new()
            .name("mcast-rtcp".into())
            .spawn(move || listen(&socket, &weak, &closed))?;
        if let Media::Live(live) = media {
            live.join(group.sender.clone());
        }
        Ok(group)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The group's SSRC: its sender's.
    pub fn ssrc(&self) -> u32 {
        self.sender.ssrc
    }

    pub fn add(&self, viewer: Arc<Session>) {
        self.lock().viewers.push(viewer);
    }

    /// A viewer left (its receivers with it); returns how many remain. With none
    /// playing, the group pauses.
    pub fn remove(&self, viewer: &Session) -> usize {
        let mut inner = self.lock();
        inner.viewers.retain(|v| !std::ptr::eq(v.as_ref(), viewer));
        inner
            .receivers
            .retain(|_, r| r.session.as_deref() != Some(viewer.id.as_str()));
        if !inner.viewers.iter().any(|v| v.is_playing()) && self.sender.is_playing() {
            self.sender.pause();
        }
        inner.viewers.len()
    }

    pub fn viewers(&self) -> usize {
        self.lock().viewers.len()
    }

    /// A viewer's PLAY: it joins the group where it is (the group starts if none of its
    /// viewers played). A play that started returns its generation, to book on the
    /// pacer.
    pub fn play(&self, viewer: &Session, range: Option<PlayRange>) -> Result<Play, GroupPlayError> {
        let _viewers = self.lock();
        if let Media::Clip(_) = &self.sender.media {
            let at = self.sender.now_playing().range.start.unwrap_or(0.0);
            if !joins(range, at) {
                return Err(GroupPlayError::Seek { at });
            }
        }
        let play = if self.sender.is_playing() {
            self.sender.now_playing()
        } else {
            self.sender.play(None)?
        };
        viewer.set_following(true);
        Ok(play)
    }

    /// A viewer's PAUSE: the group goes on for the others, and pauses when none plays.
    /// The position the group is at.
    pub fn pause(&self, viewer: &Session) -> ServedRange {
        let inner = self.lock();
        viewer.set_following(false);
        if !inner.viewers.iter().any(|v| v.is_playing()) {
            return self.sender.pause();
        }
        ServedRange {
            end: None,
            ..self.sender.now_playing().range
        }
    }

    /// Frees the group (its last viewer left): the sender stops, and its SR + BYE to the
    /// group is returned to be sent; the RTCP thread ends. What it sent, for the totals.
    pub fn close(&self, why: &str) -> (Option<RtcpOut>, SessionStats) {
        self.closed.store(true, Ordering::Release);
        if let Media::Live(live) = &self.sender.media {
            live.leave(&self.sender);
        }
        let ending = self.sender.end(Some(why));
        let mut inner = self.lock();
        inner.viewers.clear();
        inner.receivers.clear();
        let mut sent = self.sender.snapshot();
        sent.transport = "multicast";
        (ending.bye, sent)
    }

    /// A compound RTCP packet from `from` (on the group's RTCP port or the server's):
    /// a receiver's report about the group's stream is kept for its SSRC and, when its
    /// address tells which viewer sent it, given to that viewer's session. A receiver's
    /// BYE is given to its viewer, and the receiver forgotten. What else comes (the
    /// sender's own reports looped back, other streams) is ignored.
    pub fn on_rtcp(&self, data: &[u8], from: SocketAddr) {
        let ssrc = self.ssrc();
        // Each packet is read on its own: what a report says needs nothing earlier, and
        // the receivers' SSRCs are kept below, bounded.
        let mut reader = rtcp::Session::new(ssrc, &self.sender.cname);
        let events = match reader.on_rtcp(data, session::monotonic_ns(), rtcp::ntp::now()) {
            Ok(events) => events,
            Err(e) => {
                tracing::debug!("{self} of {}: malformed RTCP from {from}: {e}", self.path);
                return;
            }
        };
        let Some(peer) = reader.peer_report_about(ssrc) else {
            // A receiver leaving may say BYE without a report block (it heard nothing
            // since its last report).
            for (bye, _) in &events.byes {
                self.forget(*bye, from);
            }
            return;
        };
        let receiver = peer.reporter;
        let bye = events.byes.iter().any(|(s, _)| *s == receiver);
        let now = Instant::now();
        let mut inner = self.lock();
        if bye
            && inner
                .receivers
                .get(&receiver)
                .is_none_or(|known| known.from.ip() != from.ip())
        {
            // One that leaves before it was known needs no room, and only a receiver's
            // own address says BYE for it.
            return;
        }
        inner.make_room(receiver, now);
        let Inner {
            viewers, receivers, ..
        } = &mut *inner;
        let at_address: Vec<&Arc<Session>> = viewers
            .iter()
            .filter(|v| v.peer.ip() == from.ip())
            .collect();
        let entry = receivers.entry(receiver).or_insert(Receiver {
            from,
            session: None,
            report: ReceiverReport::default(),
            heard: now,
        });
        let first_from_receiver = entry.report.reports == 0;
        let report = session::receiver_report(&peer, Some(entry.report));
        entry.from = from;
        entry.report = report;
        entry.heard = now;
        // A receiver told apart before stays its viewer's while that viewer is here and
        // the reports come from its address; otherwise the address decides again.
        let viewer = entry
            .session
            .as_ref()
            .and_then(|id| at_address.iter().find(|v| v.id == *id))
            .or(match at_address.as_slice() {
                [only] => Some(only),
                _ => None,
            })
            .map(|v| Arc::clone(v));
        entry.session = viewer.as_ref().map(|v| v.id.clone());
        let figures = report_text(&report);
        let told_apart = at_address.len();
        if bye {
            receivers.remove(&receiver);
        }
        drop(inner);
        match viewer {
            Some(viewer) => {
                let first = viewer.take_group_report(receiver, report, bye);
                let line = format!(
                    "session {}: receiver report from {from} (multicast {}, receiver SSRC {receiver:08x}): {figures}",
                    viewer.id, self.addr
                );
                if first {
                    tracing::info!("{line}");
                } else {
                    tracing::debug!("{line}");
                }
            }
            None => {
                let line = format!(
                    "{self} of {}: receiver report from {from}, receiver SSRC {receiver:08x} ({told_apart} of the group's viewers at that address: not told apart): {figures}",
                    self.path,
                );
                if first_from_receiver {
                    tracing::info!("{line}");
                } else {
                    tracing::debug!("{line}");
                }
            }
        }
    }

    /// Forgets `receiver`, which said BYE in a packet from `from`, if its reports came
    /// from that address; its viewer, if any, counts the BYE.
    fn forget(&self, receiver: u32, from: SocketAddr) {
        let mut inner = self.lock();
        let Some(known) = inner.receivers.get(&receiver) else {
            return;
        };
        if known.from.ip() != from.ip() {
            return;
        }
        let Some(known) = inner.receivers.remove(&receiver) else {
            return;
        };
        let viewer = known
            .session
            .as_ref()
            .and_then(|id| inner.viewers.iter().find(|v| v.id == *id).cloned());
        drop(inner);
        if let Some(viewer) = viewer {
            viewer.take_group_report(receiver, known.report, true);
        }
        tracing::debug!(
            "{self} of {}: receiver SSRC {receiver:08x} at {from} said BYE",
            self.path
        );
    }

    /// What `--stats` says about the group.
    pub fn stats(&self) -> GroupStats {
        let sent = self.sender.snapshot();
        let mut inner = self.lock();
        inner.expire(Instant::now());
        GroupStats {
            path: self.path.clone(),
            group: self.addr.to_string(),
            rtp_port: self.ports.0,
            rtcp_port: self.ports.1,
            ttl: self.ttl,
            ssrc: self.ssrc(),
            viewers: inner.viewers.len(),
            state: sent.state,
            frame: sent.frame,
            frames_sent: sent.frames_sent,
            packets_sent: sent.packets_sent,
            octets_sent: sent.octets_sent,
            receivers: inner
                .receivers
                .iter()
                .map(|(ssrc, r)| GroupReceiver {
                    ssrc: *ssrc,
                    from: r.from.to_string(),
                    session: r.session.clone(),
                    receiver_report: r.report,
                })
                .collect(),
        }
    }
}

fn report_text(report: &ReceiverReport) -> String {
    format!(
        "fraction lost {:.1}%, cumulative lost {}, jitter {:.2} ms{}",
        report.fraction_lost * 100.0,
        report.cumulative_lost,
        report.jitter_ms,
        report
            .rtt_ms
            .map(|r| format!(", round trip {r:.2} ms"))
            .unwrap_or_default()
    )
}

/// A socket on the group's RTCP port, joined to the group on `interface`, and the
/// group's (RTP, RTCP) ports: an odd port the kernel finds free on the group's address,
/// and the even one below it (RFC 3550 11). Receivers on this host bind the same ports
/// (they share them: `SO_REUSEADDR`, as ffmpeg and GStreamer set for multicast).
fn rtcp_socket(addr: Ipv4Addr, interface: Ipv4Addr) -> std::io::Result<(UdpSocket, (u16, u16))> {
    use socket2::{Domain, Protocol, Socket, Type};
    // Sockets on unusable ports are held until the end, so that the kernel offers others.
    let mut rejected = Vec::new();
    for _ in 0..256 {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddrV4::new(addr, 0).into())?;
        let port = socket.local_addr()?.as_socket().map_or(0, |a| a.port());
        if port % 2 == 0 || port < 1025 {
            rejected.push(socket);
            continue;
        }
        socket.join_multicast_v4(&addr, &interface)?;
        socket.set_read_timeout(Some(POLL))?;
        return Ok((socket.into(), (port - 1, port)));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free odd UDP port on {addr}"),
    ))
}

/// The group's RTCP thread: hands what comes to the group until it is freed.
fn listen(socket: &UdpSocket, group: &Weak<Group>, closed: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !closed.load(Ordering::Acquire) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => match group.upgrade() {
                Some(group) => group.on_rtcp(&buf[..n], from),
                None => return,
            },
            Err(e) if udp::transient(&e) => {}
            Err(e) => {
                tracing::debug!("multicast RTCP socket: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: Option<f64>, end: Option<f64>) -> Option<PlayRange> {
        Some(PlayRange { start, end })
    }

    #[test]
    fn the_first_plays_of_ffmpeg_and_rtspsrc_join_the_channel() {
        for at in [0.0, 3.2, 120.0] {
            assert!(joins(None, at));
            assert!(joins(range(Some(0.0), None), at), "npt=0- at {at}");
            assert!(joins(range(None, None), at), "npt=now- at {at}");
        }
    }

    #[test]
    fn asking_for_where_the_channel_is_joins_it() {
        assert!(joins(range(Some(12.5), None), 12.0));
        assert!(joins(range(Some(12.0), None), 12.9));
    }

    fn receiver(heard: Instant) -> Receiver {
        Receiver {
            from: "127.0.0.1:5000".parse().unwrap(),
            session: None,
            report: ReceiverReport::default(),
            heard,
        }
    }

    #[test]
    fn quiet_receivers_are_forgotten_and_a_full_table_makes_room() {
        // Times from a base, forward only: an Instant before boot may not exist.
        let base = Instant::now();
        let now = base + Duration::from_secs(60);
        let ago = |s: u64| now - Duration::from_secs(s);
        let mut inner = Inner {
            viewers: Vec::new(),
            receivers: BTreeMap::new(),
        };
        inner.receivers.insert(1, receiver(ago(31)));
        inner.receivers.insert(2, receiver(ago(5)));
        inner.make_room(3, now);
        assert_eq!(inner.receivers.keys().copied().collect::<Vec<_>>(), [2]);
        // Full: the one quiet the longest goes, the others stay.
        for ssrc in 10..10 + MAX_RECEIVERS as u32 - 1 {
            inner.receivers.insert(ssrc, receiver(ago(1)));
        }
        assert_eq!(inner.receivers.len(), MAX_RECEIVERS);
        inner.make_room(7, now);
        assert_eq!(inner.receivers.len(), MAX_RECEIVERS - 1);
        assert!(!inner.receivers.contains_key(&2));
        // A receiver already known needs no room.
        inner.receivers.insert(7, receiver(now));
        inner.make_room(7, now);
        assert_eq!(inner.receivers.len(), MAX_RECEIVERS);
    }

    #[test]
    fn any_other_position_or_an_end_is_a_seek() {
        assert!(!joins(range(Some(5.0), None), 0.0));
        assert!(!joins(range(Some(5.0), None), 12.0));
        assert!(!joins(range(Some(0.0), Some(4.0)), 0.0));
        assert!(!joins(range(None, Some(4.0)), 2.0));
    }
}
