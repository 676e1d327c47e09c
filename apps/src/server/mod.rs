//! `mjpeg-rtsp-server`: serves Motion-JPEG clips over RTSP 1.0 (RFC 2326), RTP/JPEG
//! (RFC 2435) and RTCP (RFC 3550), to standard clients and to the networking lab's.
//!
//! Concurrency model, chosen to hold hundreds of sessions on a small machine:
//! - The control plane (one task per TCP connection, session timeouts, `--stats`) runs on
//!   a single-threaded tokio runtime: connections are cheap when idle, slow or hostile
//!   clients only hold their own task, and every read has a deadline.
//! - The packet path is one pacer thread (`pacer`) that sends every playing session's
//!   frames from a timetable, batching the datagrams of all sessions due together into
//!   `sendmmsg` calls (with UDP GSO per frame) on one shared RTP socket. There is no thread, pipeline or socket per
//!   session: each clip is payloaded once at start (`media`) and all sessions send the
//!   same packets with their own RTP header.
//! - One thread reads RTCP from clients on the shared RTCP socket and hands each compound
//!   packet to its session (found by the SSRC it reports on, or by the sender's address).
//!   NAT punches and other datagrams too short for RTCP are dropped without a word; what a
//!   session's packets make it log is limited per second (`log_limit`). The RTP socket is
//!   only sent from: what clients send to it (NAT punches) is never read, and the kernel
//!   drops it once the socket's buffer is full.

pub mod access;
pub mod adapt;
pub mod config;
mod connection;
pub mod handler;
pub mod history;
pub mod http;
mod limits;
pub mod live;
pub mod media;
pub mod multicast;
pub mod pacer;
pub mod per_ip;
pub mod policy;
pub mod publishing;
mod run;
pub mod session;
pub mod stats;
mod udp;

pub use run::run;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstmjpegrtp::rtcp;

use live::LivePath;
use media::Media;
use pacer::{Pacer, Sockets};
use session::Session;

/// What the command line sets.
#[derive(Debug, Clone)]
pub struct Config {
    pub bind: IpAddr,
    /// 0: any free port (the URLs printed at start say which).
    pub port: u16,
    /// HTTP (MJPEG for browsers, snapshots, the status page, the API and metrics); `None`
    /// serves none, 0 any free port.
    pub http_port: Option<u16>,
    pub fps: u32,
    pub mtu: u32,
    pub looping: bool,
    /// Send fewer frames to clients that report loss.
    pub adapt: bool,
    /// Fraction lost (0..1) above which a receiver report counts as congested.
    pub adapt_threshold: f64,
    pub session_timeout: Duration,
    pub stats_interval: Option<Duration>,
    pub stats_format: stats::StatsFormat,
    pub max_sessions: usize,
    /// Connections one client address may hold at once (RTSP and HTTP); 0: no limit.
    pub max_connections_per_ip: usize,
    pub paths: Vec<PathBuf>,
    /// Live paths fed by a gst-launch description.
    pub sources: Vec<LiveSpec>,
    /// Relays: `description` is the `rtsp://` or `http://` URL of a camera, pulled on
    /// demand.
    pub relays: Vec<LiveSpec>,
    /// Published paths (`--publish NAME`): fed by a client's ANNOUNCE and RECORD.
    pub publish: Vec<String>,
    /// A new publisher replaces a path's current one instead of being refused.
    pub publish_takeover: bool,
    /// Live paths sent to other RTSP servers (`--push NAME=URL`).
    pub pushes: Vec<PushSpec>,
    /// Users, their rights, and public paths (none: all open).
    pub access: access::Rules,
    /// `--tls-cert` and `--tls-key`: RTSPS on `rtsps_port`, and HTTPS on the HTTP port.
    pub tls: Option<TlsFiles>,
    /// RTSPS (with `tls`); 0: any free port.
    pub rtsps_port: u16,
    /// `--multicast-range` and `--multicast-ttl`: the groups multicast viewers get.
    pub multicast: multicast::Settings,
}

/// A PEM certificate chain and its PEM private key.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A live path, what feeds it, and when it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSpec {
    pub name: String,
    /// A gst-launch description whose output is JPEG images, or a relay's URL.
    pub description: String,
    /// Run whether or not anyone watches.
    pub always_on: bool,
    /// How long an on-demand source runs after its last viewer leaves.
    pub linger: Duration,
}

/// A live path sent to another RTSP server with ANNOUNCE and RECORD.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSpec {
    /// The live path's name.
    pub path: String,
    /// `rtsp://[user:password@]host[:port]/path`.
    pub url: String,
}

/// How long a live source may take to give its first frame when it is checked at start.
const SOURCE_PROBE: Duration = Duration::from_secs(15);

pub struct Server {
    pub config: Config,
    /// What each path serves, by name.
    pub paths: HashMap<String, Media>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    by_ssrc: Mutex<HashMap<u32, Arc<Session>>>,
    by_rtcp_address: Mutex<HashMap<SocketAddr, Arc<Session>>>,
    pacer: Pacer,
    sockets: Arc<Sockets>,
    /// The shared RTP and RTCP ports (`server_port`).
    sockets_ports: (u16, u16),
    started: Instant,
    /// Sessions ended since the last `--stats` report.
    closed: Mutex<Vec<stats::Closed>>,
    /// Published paths and their publishers.
    publishing: publishing::Publishing,
    /// Live paths sent to other servers.
    pushes: Vec<Arc<live::push::Push>>,
    /// HTTP MJPEG viewers, by id.
    http_viewers: Mutex<HashMap<String, Arc<http::viewer::HttpViewer>>>,
    next_http_viewer: std::sync::atomic::AtomicU64,
    /// What ended sessions and viewers sent, per path and transport (for `/metrics`).
    ended: Mutex<std::collections::BTreeMap<(String, &'static str), http::metrics::Sent>>,
    /// Every session and path, sampled once a second.
    history: Mutex<history::History>,
    /// The RTSP port it listens on (for the status page's `rtsp://` links).
    rtsp_port: u16,
    /// Connections per client address, RTSP and HTTP together.
    per_ip: std::sync::Arc<per_ip::PerIp>,
    /// Who may do what (RTSP and HTTP alike).
    pub access: access::Access,
    /// Multicast groups, one per path with multicast viewers.
    pub multicast: multicast::Multicast,
}

impl Server {
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        lock(&self.sessions).get(id).cloned()
    }

    pub fn session_count(&self) -> usize {
        lock(&self.sessions).len()
    }

    pub fn http_viewer_count(&self) -> usize {
        lock(&self.http_viewers).len()
    }

    /// `--max-sessions` is reached: RTSP sessions, publishers and HTTP viewers together.
    pub fn at_capacity(&self) -> bool {
        self.session_count() + self.publishing.all().len() + self.http_viewer_count()
            >= self.config.max_sessions
    }

    /// A new HTTP viewer of `path`, in the statistics until [`end_http_viewer`];
    /// `cancel` ends its connection.
    pub fn add_http_viewer(
        &self,
        client: SocketAddr,
        path: &str,
        cancel: Arc<tokio::sync::Notify>,
    ) -> Arc<http::viewer::HttpViewer> {
        let n = self
            .next_http_viewer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let viewer = Arc::new(http::viewer::HttpViewer::new(
            format!("H{n}"),
            client,
            path,
            cancel,
        ));
        tracing::debug!("HTTP viewer {} of {path} from {client}", viewer.id);
        lock(&self.http_viewers).insert(viewer.id.clone(), viewer.clone());
        viewer
    }

    /// Ends HTTP viewers whose socket took nothing for [`http::WRITE_DEADLINE`] (a client
    /// that stopped reading, or vanished without a word): they would hold their slot,
    /// and keep an on-demand source running, for ever.
    fn expire_http_viewers(&self) {
        let viewers: Vec<Arc<http::viewer::HttpViewer>> =
            lock(&self.http_viewers).values().cloned().collect();
        for viewer in viewers {
            if viewer
                .stalled_for()
                .is_some_and(|d| d >= http::WRITE_DEADLINE)
                && !viewer
                    .stalled
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                tracing::info!(
                    "HTTP viewer {} of {} from {}: took nothing for {} s, closed",
                    viewer.id,
                    viewer.path,
                    viewer.client,
                    http::WRITE_DEADLINE.as_secs()
                );
                viewer.cancel.notify_one();
            }
        }
    }

    /// Ends every HTTP viewer, at exit (their connections go with the runtime).
    fn end_http_viewers(&self, why: &str) {
        let viewers: Vec<Arc<http::viewer::HttpViewer>> =
            lock(&self.http_viewers).values().cloned().collect();
        for viewer in viewers {
            self.end_http_viewer(&viewer, why);
        }
    }

    /// An HTTP viewer's stream ended (it left, or the clip did).
    pub fn end_http_viewer(&self, viewer: &http::viewer::HttpViewer, why: &str) {
        if lock(&self.http_viewers).remove(&viewer.id).is_none() {
            return;
        }
        let last = viewer.snapshot();
        tracing::debug!(
            "HTTP viewer {} of {}: {why} after {} frames ({} passed over)",
            viewer.id,
            viewer.path,
            last.frames_sent,
            last.frames_dropped
        );
        self.add_ended(&last);
        self.note_closed(&viewer.id, &viewer.path, why, last.frames_sent, None);
    }

    /// Adds an ended session's figures to its path's totals.
    fn add_ended(&self, last: &stats::SessionStats) {
        let mut ended = lock(&self.ended);
        let sent = ended
            .entry((last.path.clone(), last.transport))
            .or_default();
        sent.frames += last.frames_sent;
        sent.packets += last.packets_sent;
        sent.bytes += last.octets_sent;
        if last.transport == "http" {
            sent.skipped += last.frames_dropped;
        }
    }

    /// What ended sessions sent, per path and transport.
    pub fn ended_totals(&self) -> Vec<((String, &'static str), http::metrics::Sent)> {
        lock(&self.ended)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The port RTSP clients connect to.
    pub fn rtsp_port(&self) -> u16 {
        self.rtsp_port
    }

    /// The per-second samples.
    pub fn history(&self) -> std::sync::MutexGuard<'_, history::History> {
        lock(&self.history)
    }

    fn add_session(&self, session: Arc<Session>) {
        if let Some(addr) = session.rtcp_address() {
            lock(&self.by_rtcp_address).insert(addr, session.clone());
        }
        // A multicast viewer's reports are about its group's SSRC: the group takes them.
        if session.policy.rtcp && session.group().is_none() {
            lock(&self.by_ssrc).insert(session.ssrc, session.clone());
        }
        lock(&self.sessions).insert(session.id.clone(), session);
    }

    /// Ends a session: stops its packets and, with a reason, if it was sending, says BYE
    /// (after its lock is released: the control side never sends under it).
    pub fn remove_session(&self, id: &str, why: Option<&str>) {
        let Some(session) = lock(&self.sessions).remove(id) else {
            return;
        };
        lock(&self.by_ssrc).retain(|_, s| !Arc::ptr_eq(s, &session));
        lock(&self.by_rtcp_address).retain(|_, s| !Arc::ptr_eq(s, &session));
        if let Some(line) = session.suppressed_at_end() {
            tracing::info!("{line}");
        }
        let group = session.group();
        match &group {
            Some(group) => self.leave_group(group, &session),
            None => {
                if let Media::Live(live) = &session.media {
                    live.leave(&session);
                }
            }
        }
        let ending = session.end(why);
        if let Some(bye) = ending.bye {
            bye.send(&self.sockets.rtcp);
        }
        self.add_ended(&session.snapshot());
        if let Some(why) = why {
            tracing::info!("session {id}: closed ({why})");
            let last = session.snapshot();
            self.note_closed(
                id,
                session.media.name(),
                why,
                ending.frames_sent,
                Some(&last),
            );
        }
    }

    /// A multicast viewer leaves its group; the last one frees it (its sender says BYE to
    /// the group, and what it sent goes into the path's totals).
    fn leave_group(&self, group: &Arc<multicast::Group>, viewer: &Session) {
        let Some(freed) = self.multicast.leave(group, viewer) else {
            return;
        };
        let (bye, sent) = freed.close("its last viewer left");
        if let Some(bye) = bye {
            bye.send(&self.sockets.rtcp);
        }
        self.add_ended(&sent);
        tracing::info!(
            "path {}: multicast {freed} freed (its last viewer left) after {} packets",
            freed.path,
            sent.packets_sent
        );
    }

    /// Keeps an ended session (a viewer's, with its last figures, or a publisher's) for
    /// the next `--stats` report.
    fn note_closed(
        &self,
        id: &str,
        path: &str,
        why: &str,
        frames_sent: u64,
        last: Option<&stats::SessionStats>,
    ) {
        if self.config.stats_interval.is_some() {
            lock(&self.closed).push(stats::Closed {
                id: id.to_string(),
                path: path.to_string(),
                reason: why.to_string(),
                at_s: stats::uptime(self.started),
                frames_sent,
                receiver_report: last.and_then(|l| l.receiver_report),
                rtcp_byes: last.map_or(0, |l| l.rtcp_byes),
                rtcp_malformed: last.map_or(0, |l| l.rtcp_malformed),
            });
        }
    }

    /// Hands a client's RTCP packet to its session.
    fn on_rtcp(&self, data: &[u8], from: SocketAddr) {
        if classify(data) != Received::Rtcp {
            return;
        }
        let reported = rtcp::session::reported_ssrcs(data);
        let session = reported
            .iter()
            .find_map(|ssrc| lock(&self.by_ssrc).get(ssrc).cloned())
            .or_else(|| lock(&self.by_rtcp_address).get(&from).cloned());
        if let Some(session) = session {
            self.rtcp_for(&session, data);
        } else if let Some(group) = self.multicast.reported_in(&reported) {
            // A multicast receiver that reports to the server rather than to the group.
            group.on_rtcp(data, from);
        }
    }

    fn rtcp_for(&self, session: &Session, data: &[u8]) {
        for line in session.on_rtcp(data, self.config.adapt) {
            tracing::info!("{line}");
        }
    }

    /// Once a second: live sources without viewers stop, failed ones restart.
    fn tend_sources(&self) {
        let now = Instant::now();
        for media in self.paths.values() {
            if let Media::Live(live) = media {
                live.tick(now);
            }
        }
    }

    /// Sessions whose client has been silent longer than the timeout.
    fn expire_sessions(&self) {
        let timeout = self.config.session_timeout;
        let now = Instant::now();
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        let expired: Vec<&Arc<Session>> = sessions
            .iter()
            .filter(|s| s.timed_out(timeout, now))
            .collect();
        for session in expired {
            self.remove_session(&session.id, Some("timed out"));
        }
        self.expire_publishers();
        self.expire_http_viewers();
    }

    /// Says how many lines each session held back in a flood that is over.
    fn log_suppressed(&self) {
        let now = Instant::now();
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        for session in sessions {
            if let Some(line) = session.suppressed_by(now) {
                tracing::info!("{line}");
            }
        }
    }

    /// The `--stats` report of now; the sessions closed since the report before are
    /// taken into it.
    pub fn stats(&self) -> stats::Report {
        let mut report = self.stats_now();
        report.closed = std::mem::take(&mut *lock(&self.closed));
        report
    }

    /// Every path and session as of now (without `closed`), with their rates.
    pub fn stats_now(&self) -> stats::Report {
        let mut report = self.counts();
        let history = lock(&self.history);
        for session in &mut report.sessions {
            session.fps = history.session_fps(&session.id);
        }
        for path in &mut report.paths {
            if let Some(clip) = match self.paths.get(&path.name) {
                Some(Media::Clip(clip)) => Some(clip),
                _ => None,
            } {
                let fps = f64::from(clip.fps);
                path.fps = Some(fps);
                path.bitrate_bps =
                    Some((path.bytes_in as f64 * 8.0 * fps / clip.frames.len() as f64).round());
            } else if let Some((fps, bps)) = history.path_rates(&path.name) {
                path.fps = Some(fps);
                path.bitrate_bps = Some(bps);
            }
        }
        report
    }

    /// Once a second: the counts the rates come from.
    fn sample(&self) {
        let report = self.counts();
        lock(&self.history).sample(
            Instant::now(),
            report.uptime_s,
            &report.sessions,
            &report.paths,
        );
    }

    /// Every path and session's counts (no rates, no `closed`).
    fn counts(&self) -> stats::Report {
        let sessions: Vec<Arc<Session>> = lock(&self.sessions).values().cloned().collect();
        let mut sessions: Vec<stats::SessionStats> =
            sessions.iter().map(|s| s.snapshot()).collect();
        let viewers: Vec<Arc<http::viewer::HttpViewer>> =
            lock(&self.http_viewers).values().cloned().collect();
        sessions.extend(viewers.iter().map(|v| v.snapshot()));
        sessions.sort_by(|a, b| a.id.cmp(&b.id));
        let mut paths: Vec<stats::PathStats> = self
            .paths
            .values()
            .map(|media| match media {
                Media::Live(live) => live.stats(),
                Media::Clip(clip) => stats::PathStats {
                    name: clip.name.clone(),
                    kind: "clip",
                    source: "up",
                    sessions: sessions
                        .iter()
                        .filter(|s| s.path == clip.name && s.transport != "http")
                        .count(),
                    http_viewers: sessions
                        .iter()
                        .filter(|s| s.path == clip.name && s.transport == "http")
                        .count(),
                    frames_in: clip.frames.len() as u64,
                    bytes_in: clip.frames.iter().map(|f| f.jpeg.len() as u64).sum(),
                    fps: None,
                    bitrate_bps: None,
                    frames_skipped: 0,
                    restarts: 0,
                    width: clip.width,
                    height: clip.height,
                    fanout_ms_p50: None,
                    fanout_ms_p99: None,
                    error: None,
                    upstream: None,
                    pushes: Vec::new(),
                },
            })
            .collect();
        paths.sort_by(|a, b| a.name.cmp(&b.name));
        // RTSP sessions per path, whatever their transport (a live path's own list has
        // its multicast groups' senders, not their viewers).
        for path in &mut paths {
            path.pushes = self
                .pushes
                .iter()
                .filter(|p| p.path_name() == path.name)
                .map(|p| p.stats())
                .collect();
            path.sessions = sessions
                .iter()
                .filter(|s| s.path == path.name && s.transport != "http")
                .count();
        }
        stats::Report {
            uptime_s: stats::uptime(self.started),
            paths,
            sessions,
            publishers: self.publishing.stats(),
            closed: Vec::new(),
            multicast_groups: self.multicast.stats(),
        }
    }

    fn print_stats(&self) {
        let report = self.stats();
        match self.config.stats_format {
            stats::StatsFormat::Text => {
                for session in &report.sessions {
                    tracing::info!("{}", session.line());
                }
            }
            stats::StatsFormat::Json => {
                let mut out = std::io::stdout().lock();
                // A closed stdout only loses the statistics.
                if let Ok(json) = serde_json::to_string(&report) {
                    let _ = writeln!(out, "{json}");
                    let _ = out.flush();
                }
            }
        }
    }

    /// Ends every session (with BYE), at exit.
    fn shutdown(&self) {
        let ids: Vec<String> = lock(&self.sessions).keys().cloned().collect();
        for id in ids {
            self.remove_session(&id, Some("server shutting down"));
        }
        for publisher in self.publishing.all() {
            self.end_publisher(&publisher.id, "server shutting down");
        }
        self.end_http_viewers("server shutting down");
        live::push::Push::stop_all(&self.pushes);
        // The last report says how every session ended.
        if self.config.stats_interval.is_some() {
            self.print_stats();
        }
    }
}

/// The 4-byte packet aiortsp and live555 send to the server's RTP and RTCP ports to open
/// NAT bindings.
const NAT_PUNCH: [u8; 4] = [0xCE, 0xFA, 0xED, 0xFE];
/// The smallest RTCP packet: a receiver report without blocks (header and SSRC).
const MIN_RTCP: usize = 8;

/// What came in on the RTCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    NatPunch,
    /// Shorter than any RTCP packet: another client's keep-alive, not worth a log line.
    TooShort,
    /// Handed to the session, which says if it is malformed.
    Rtcp,
}

fn classify(data: &[u8]) -> Received {
    if data == NAT_PUNCH {
        Received::NatPunch
    } else if data.len() < MIN_RTCP {
        Received::TooShort
    } else {
        Received::Rtcp
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_punches_and_runts_are_not_rtcp() {
        assert_eq!(classify(&[0xCE, 0xFA, 0xED, 0xFE]), Received::NatPunch);
        // The same bytes inside a longer datagram are for the session to judge.
        assert_eq!(
            classify(&[0xCE, 0xFA, 0xED, 0xFE, 0, 0, 0, 0]),
            Received::Rtcp
        );
        for short in [
            &[][..],
            &[0x80],
            &[0xCE, 0xFA, 0xED],
            &[0x80, 201, 0, 1, 0, 0, 0],
        ] {
            assert_eq!(classify(short), Received::TooShort, "{short:?}");
        }
        // An empty receiver report: the smallest RTCP packet.
        assert_eq!(classify(&[0x80, 201, 0, 1, 1, 2, 3, 4]), Received::Rtcp);
    }
}
