//! `--stats`: what the server reports about its sessions every interval, as text lines on
//! stderr (the log) or as one JSON object per line on stdout (`--stats-format json`, for
//! scripts and tests). The JSON schema is in the README ("Statistics").

use std::time::Instant;

use serde::Serialize;

/// How `--stats` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatsFormat {
    /// A line per session in the log.
    #[default]
    Text,
    /// One JSON object per interval on stdout.
    Json,
}

/// One interval's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seconds since the server started.
    pub uptime_s: f64,
    /// Every path, ordered by name.
    pub paths: Vec<PathStats>,
    /// The open sessions, ordered by id.
    pub sessions: Vec<SessionStats>,
    /// Publishers' sessions (`--publish` paths), ordered by id.
    pub publishers: Vec<crate::server::session::publisher::PublisherStats>,
    /// Sessions that ended since the previous report, in the order they ended.
    pub closed: Vec<Closed>,
    /// The multicast groups in use, ordered by path: one sender each, whatever the
    /// number of its viewers.
    pub multicast_groups: Vec<GroupStats>,
}

/// A path and its source.
#[derive(Debug, Clone, Serialize)]
pub struct PathStats {
    pub name: String,
    /// `clip` (a file), `live` (a pipeline shared by its viewers) or `relay` (a camera
    /// pulled once for its viewers).
    pub kind: &'static str,
    /// A live source's state: `idle` (on demand, no viewers), `starting`, `up` or
    /// `retrying` (failed, restarted after a backoff); `up` for a clip.
    pub source: &'static str,
    /// RTSP sessions set up on the path.
    pub sessions: usize,
    /// HTTP MJPEG viewers (and snapshots waiting for a frame) of a live path.
    pub http_viewers: usize,
    /// Frames the live source produced (each is payloaded once for all viewers); for a
    /// clip, its frames.
    pub frames_in: u64,
    /// JPEG bytes in those frames.
    pub bytes_in: u64,
    /// Frames per second over the latest second: the source's for a live path (`null`
    /// until a second has been measured), the clip's rate for a clip.
    pub fps: Option<f64>,
    /// JPEG bits per second over the latest second (a clip: its mean at its rate).
    pub bitrate_bps: Option<f64>,
    /// Live frames not sent because a newer one of the path was already waiting (the
    /// server fell behind its source).
    pub frames_skipped: u64,
    /// Times a failed live source was started again.
    pub restarts: u64,
    pub width: u32,
    pub height: u32,
    /// Latency the server adds to a live frame, from the appsink to its last packet sent
    /// to the last viewer, median and 99th percentile over the latest 1024 frames (`null`
    /// for clips and before the first frame).
    pub fanout_ms_p50: Option<f64>,
    pub fanout_ms_p99: Option<f64>,
    /// Why the live source last failed, while it has not given a frame since (URLs
    /// without credentials); absent when it runs or never failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A relay's upstream as received (`rtcplossmonitor`); absent for other paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<crate::server::live::source::Upstream>,
    /// The path's pushes to other servers (`--push`), in the order given; absent when
    /// it has none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pushes: Vec<PushStats>,
}

/// A push of a path to another RTSP server (`--push NAME=URL`).
#[derive(Debug, Clone, Serialize)]
pub struct PushStats {
    /// Where it goes, without credentials.
    pub url: String,
    /// `connecting` (connecting, ANNOUNCE, SETUP, RECORD), `recording`, `retrying`
    /// (the last connection failed; the next comes after a backoff), or `stopped` (in
    /// the last report, at exit).
    pub state: &'static str,
    /// Over all its connections: frames, RTP packets and RTP bytes (headers and
    /// payload, without the `$` framing) sent.
    pub frames_sent: u64,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    /// Frames passed over: a newer one was ready when the connection took the next.
    pub frames_skipped: u64,
    /// Connections made after a failure.
    pub reconnects: u64,
    /// The receiver's latest RTCP receiver report about the pushed stream (`reports`
    /// counts them over all connections); `null` before the first.
    pub receiver_report: Option<ReceiverReport>,
    /// RTCP packets from the receiver that could not be read.
    pub rtcp_malformed: u64,
    /// Why the last connection failed, while none has recorded since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A session as the server sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStats {
    pub id: String,
    /// The client's control connection address.
    pub client: String,
    /// The clip's name.
    pub path: String,
    /// `rtsp`, `lab` or `http`.
    pub dialect: &'static str,
    /// `udp`, `tcp` (interleaved), `lab-udp` (whole JPEGs to one port) or `http`
    /// (multipart MJPEG).
    pub transport: &'static str,
    /// Seconds since the session was set up (an HTTP viewer: connected).
    pub duration_s: f64,
    /// Frames per second sent over the latest second (`null` until a second has been
    /// measured).
    pub fps: Option<f64>,
    /// `ready` or `playing`.
    pub state: &'static str,
    /// Whether the play reached its end (of the clip or of the requested range).
    pub ended: bool,
    /// The next clip frame to send.
    pub frame: usize,
    pub frames_sent: u64,
    /// Frames not sent: a TCP client reading too slowly, or a lab frame over 64 KiB; an
    /// HTTP viewer: frames passed over because its socket could not take them in time
    /// (it gets the newest one instead).
    pub frames_dropped: u64,
    pub packets_sent: u64,
    /// RTP payload bytes sent.
    pub octets_sent: u64,
    /// Sending one frame in this many (congestion response).
    pub decimation: u32,
    /// The client's latest RTCP receiver report about our stream.
    pub receiver_report: Option<ReceiverReport>,
    /// BYE packets the client sent.
    pub rtcp_byes: u64,
    /// RTCP packets from the client that could not be read.
    pub rtcp_malformed: u64,
    /// A multicast viewer's group (its frames and packets are counted once, in the
    /// group's entry of `multicast_groups`); absent for other sessions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multicast: Option<Membership>,
}

/// The group a multicast viewer is in, as its SETUP reply gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub group: String,
    pub rtp_port: u16,
    pub rtcp_port: u16,
    pub ttl: u8,
    /// The group's SSRC (its sender's).
    pub ssrc: u32,
    /// The SSRC of the viewer's receiver reports, once the server could tell them apart
    /// from those of the group's other receivers (by the address they came from: it can
    /// when no other viewer of the group has the same address).
    pub receiver_ssrc: Option<u32>,
}

/// A multicast group: the one sender of a path's stream to all its multicast viewers.
#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    pub path: String,
    pub group: String,
    pub rtp_port: u16,
    pub rtcp_port: u16,
    pub ttl: u8,
    pub ssrc: u32,
    /// Multicast viewers (RTSP sessions) in the group.
    pub viewers: usize,
    /// `playing` while any of them plays, else `ready`.
    pub state: &'static str,
    /// A clip's next frame: the position all the group's viewers share.
    pub frame: usize,
    pub frames_sent: u64,
    /// RTP packets sent to the group (each once, whatever the number of viewers).
    pub packets_sent: u64,
    pub octets_sent: u64,
    /// Every receiver that reported on the group's stream, by its SSRC.
    pub receivers: Vec<GroupReceiver>,
}

/// A receiver of a multicast group, known by the SSRC of its RTCP receiver reports.
#[derive(Debug, Clone, Serialize)]
pub struct GroupReceiver {
    pub ssrc: u32,
    /// Where its latest report came from.
    pub from: String,
    /// The viewer's session, when its address told it apart; `null` when several of the
    /// group's viewers share that address (or none has it).
    pub session: Option<String>,
    pub receiver_report: ReceiverReport,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ReceiverReport {
    /// 0..1, of the packets expected since the previous report.
    pub fraction_lost: f64,
    pub cumulative_lost: i32,
    pub jitter_ms: f64,
    /// From the report's LSR/DLSR, when the client echoed one of our sender reports.
    pub rtt_ms: Option<f64>,
    /// Reports received so far.
    pub reports: u64,
}

/// A session that ended, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Closed {
    pub id: String,
    pub path: String,
    /// `teardown`, `timed out`, `control connection closed`, `server shutting down`.
    pub reason: String,
    /// When it ended (seconds since the server started).
    pub at_s: f64,
    pub frames_sent: u64,
    /// The client's last receiver report, and its RTCP counts, as when it ended.
    pub receiver_report: Option<ReceiverReport>,
    pub rtcp_byes: u64,
    pub rtcp_malformed: u64,
}

/// When the server started, for `uptime_s`.
pub fn uptime(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0
}

impl SessionStats {
    /// The text form of `--stats`.
    pub fn line(&self) -> String {
        let report = match &self.receiver_report {
            Some(r) => format!(
                "fraction-lost={:.1}% lost={} jitter={:.2}ms rtt={} reports={}",
                r.fraction_lost * 100.0,
                r.cumulative_lost,
                r.jitter_ms,
                r.rtt_ms
                    .map(|r| format!("{r:.2}ms"))
                    .unwrap_or_else(|| "-".into()),
                r.reports
            ),
            None => "no receiver report yet".to_string(),
        };
        // The text form predates the JSON one and names states as it always did.
        let state = if self.state == "playing" {
            "Playing"
        } else {
            "Ready"
        };
        format!(
            "stats session={} client={} clip={} state={state} frame={} sent-frames={} sent-packets={} dropped-frames={} decimation={} {report}",
            self.id,
            self.client,
            self.path,
            self.frame,
            self.frames_sent,
            self.packets_sent,
            self.frames_dropped,
            self.decimation,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> SessionStats {
        SessionStats {
            id: "A1".into(),
            client: "127.0.0.1:4000".into(),
            path: "clip.Mjpeg".into(),
            dialect: "rtsp",
            transport: "udp",
            duration_s: 3.5,
            fps: Some(25.0),
            state: "playing",
            ended: false,
            frame: 7,
            frames_sent: 7,
            frames_dropped: 0,
            packets_sent: 21,
            octets_sent: 20000,
            decimation: 2,
            receiver_report: Some(ReceiverReport {
                fraction_lost: 0.5,
                cumulative_lost: 3,
                jitter_ms: 1.25,
                rtt_ms: None,
                reports: 2,
            }),
            rtcp_byes: 0,
            rtcp_malformed: 1,
            multicast: None,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let report = Report {
            uptime_s: 1.5,
            paths: vec![PathStats {
                name: "cam".into(),
                kind: "live",
                source: "up",
                sessions: 1,
                http_viewers: 2,
                frames_in: 10,
                bytes_in: 400_000,
                fps: Some(25.0),
                bitrate_bps: Some(8_000_000.0),
                frames_skipped: 0,
                restarts: 0,
                width: 640,
                height: 480,
                fanout_ms_p50: Some(0.1),
                fanout_ms_p99: Some(0.4),
                error: None,
                upstream: None,
                pushes: vec![PushStats {
                    url: "rtsp://***@origin/cam".into(),
                    state: "recording",
                    frames_sent: 9,
                    packets_sent: 90,
                    bytes_sent: 100_000,
                    frames_skipped: 1,
                    reconnects: 0,
                    receiver_report: None,
                    rtcp_malformed: 0,
                    error: None,
                }],
            }],
            sessions: vec![session()],
            publishers: vec![crate::server::session::publisher::PublisherStats {
                id: "C3".into(),
                client: "127.0.0.1:4000".into(),
                path: "phone".into(),
                transport: "tcp",
                state: "recording",
                packets_in: 100,
                octets_in: 120_000,
                packets_dropped: 2,
                rtcp_in: 1,
                upstream: Default::default(),
            }],
            closed: vec![Closed {
                id: "B2".into(),
                path: "clip.Mjpeg".into(),
                reason: "teardown".into(),
                at_s: 1.2,
                frames_sent: 3,
                receiver_report: None,
                rtcp_byes: 1,
                rtcp_malformed: 0,
            }],
            multicast_groups: Vec::new(),
        };
        let value: serde_json::Value =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        let s = &value["sessions"][0];
        assert_eq!(s["transport"], "udp");
        assert_eq!(s["receiver_report"]["fraction_lost"], 0.5);
        assert_eq!(s["receiver_report"]["rtt_ms"], serde_json::Value::Null);
        assert_eq!(s["rtcp_malformed"], 1);
        // Only multicast viewers say which group they are in.
        assert!(s.get("multicast").is_none());
        assert_eq!(value["multicast_groups"], serde_json::json!([]));
        assert_eq!(value["closed"][0]["reason"], "teardown");
        assert_eq!(value["paths"][0]["source"], "up");
        // Only relays have an upstream, only failed sources an error.
        assert!(value["paths"][0].get("upstream").is_none());
        assert!(value["paths"][0].get("error").is_none());
        let push = &value["paths"][0]["pushes"][0];
        assert_eq!(push["state"], "recording");
        assert_eq!(push["frames_skipped"], 1);
        assert_eq!(push["receiver_report"], serde_json::Value::Null);
        assert!(push.get("error").is_none());
        let p = &value["publishers"][0];
        assert_eq!(p["state"], "recording");
        assert_eq!(p["packets_dropped"], 2);
        assert_eq!(p["upstream"]["packets_lost"], 0);
    }

    #[test]
    fn text_line_keeps_its_fields() {
        let line = session().line();
        assert!(
            line.contains("state=Playing frame=7 sent-frames=7"),
            "{line}"
        );
        assert!(line.contains("fraction-lost=50.0% lost=3 jitter=1.25ms rtt=- reports=2"));
    }
}
