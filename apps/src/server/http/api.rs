//! `/api/paths` and `/api/sessions`: the statistics report's paths and sessions (the
//! schema of `--stats-format json`, in the README), with the URLs of each path and the
//! latest minute of each session.

use serde::Serialize;

use crate::server::Server;
use crate::server::history::Sample;
use crate::server::session::publisher::PublisherStats;
use crate::server::stats::{GroupStats, PathStats, SessionStats};

#[derive(Debug, Serialize)]
pub struct Paths {
    pub uptime_s: f64,
    /// The port of the server's RTSP URLs (the host is the one the client reached).
    pub rtsp_port: u16,
    pub paths: Vec<PathEntry>,
}

#[derive(Debug, Serialize)]
pub struct PathEntry {
    #[serde(flatten)]
    pub stats: PathStats,
    /// The path's RTSP URL, its MJPEG stream and its snapshot, as paths on this server
    /// (percent-encoded).
    pub rtsp_path: String,
    pub stream_url: String,
    pub snapshot_url: String,
}

#[derive(Debug, Serialize)]
pub struct Sessions {
    pub uptime_s: f64,
    /// RTSP sessions and HTTP viewers, ordered by id.
    pub sessions: Vec<SessionEntry>,
    pub publishers: Vec<PublisherStats>,
    /// The multicast groups in use: each group's sender, and its receivers' reports by
    /// receiver SSRC (given to a session only where its address tells the viewer apart).
    pub multicast_groups: Vec<GroupStats>,
}

#[derive(Debug, Serialize)]
pub struct SessionEntry {
    #[serde(flatten)]
    pub stats: SessionStats,
    /// One sample a second, oldest first, for the latest minute.
    pub history: Vec<Sample>,
}

pub fn paths(server: &Server) -> Paths {
    let report = server.stats_now();
    Paths {
        uptime_s: report.uptime_s,
        rtsp_port: server.rtsp_port(),
        paths: report
            .paths
            .into_iter()
            .map(|stats| {
                let encoded = crate::rtsp::path::encode(&stats.name);
                PathEntry {
                    rtsp_path: format!("/{encoded}"),
                    stream_url: format!("/{encoded}/stream.mjpg"),
                    snapshot_url: format!("/{encoded}/snapshot.jpg"),
                    stats,
                }
            })
            .collect(),
    }
}

pub fn sessions(server: &Server) -> Sessions {
    let report = server.stats_now();
    let history = server.history();
    Sessions {
        uptime_s: report.uptime_s,
        sessions: report
            .sessions
            .into_iter()
            .map(|stats| SessionEntry {
                history: history.samples(&stats.id),
                stats,
            })
            .collect(),
        publishers: report.publishers,
        multicast_groups: report.multicast_groups,
    }
}
