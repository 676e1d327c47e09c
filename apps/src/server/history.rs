//! Once a second, every session and path is sampled: the rates the statistics report
//! (frames per second sent, a source's frame and bit rates) come from the difference
//! between two samples, and the latest minute of samples is the history the status page
//! draws per session.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde::Serialize;

use super::stats::{PathStats, SessionStats};

/// Samples kept per session (one a second).
pub const SAMPLES: usize = 60;

/// One second of a session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// When (seconds since the server started).
    pub t_s: f64,
    /// Frames per second sent over the second before.
    pub fps: f64,
    /// The latest receiver report's loss (percent of the packets expected since the
    /// report before) and jitter; `null` without a report.
    pub loss_pct: Option<f64>,
    pub jitter_ms: Option<f64>,
}

/// A running count, as last sampled.
#[derive(Debug, Clone, Copy)]
struct Count {
    at: Instant,
    frames: u64,
    bytes: u64,
}

#[derive(Debug)]
struct Track {
    last: Count,
    /// Frames and bits per second between the last two samples.
    rate: Option<(f64, f64)>,
    samples: VecDeque<Sample>,
}

impl Track {
    fn new(last: Count) -> Track {
        Track {
            last,
            rate: None,
            samples: VecDeque::with_capacity(SAMPLES),
        }
    }

    /// Takes a new count: the rates since the one before.
    fn update(&mut self, count: Count) {
        let seconds = count
            .at
            .saturating_duration_since(self.last.at)
            .as_secs_f64();
        if seconds < 0.1 {
            return;
        }
        // A count that went back (a restarted source, a reused name) starts over.
        let frames = count.frames.checked_sub(self.last.frames);
        let bytes = count.bytes.checked_sub(self.last.bytes);
        self.rate = match (frames, bytes) {
            (Some(f), Some(b)) => Some((f as f64 / seconds, b as f64 * 8.0 / seconds)),
            _ => None,
        };
        self.last = count;
    }
}

/// The tracks of every open session and every path.
#[derive(Debug, Default)]
pub struct History {
    sessions: HashMap<String, Track>,
    paths: HashMap<String, Track>,
}

/// Moves each track on to its new count (`(key, frames, bytes)`); keys not given are
/// forgotten.
fn advance<'a>(
    tracks: &mut HashMap<String, Track>,
    now: Instant,
    counts: impl Iterator<Item = (&'a str, u64, u64)>,
) {
    let mut seen = HashMap::with_capacity(tracks.len());
    for (key, frames, bytes) in counts {
        let count = Count {
            at: now,
            frames,
            bytes,
        };
        let mut track = tracks.remove(key).unwrap_or_else(|| Track::new(count));
        track.update(count);
        seen.insert(key.to_string(), track);
    }
    *tracks = seen;
}

/// Rounds for the reports: a rate to 0.1, a share to 0.01.
fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

impl History {
    /// Takes this second's counts; sessions and paths not given are forgotten.
    pub fn sample(
        &mut self,
        now: Instant,
        uptime_s: f64,
        sessions: &[SessionStats],
        paths: &[PathStats],
    ) {
        advance(
            &mut self.sessions,
            now,
            sessions
                .iter()
                .map(|s| (s.id.as_str(), s.frames_sent, s.octets_sent)),
        );
        advance(
            &mut self.paths,
            now,
            paths
                .iter()
                .map(|p| (p.name.as_str(), p.frames_in, p.bytes_in)),
        );
        for session in sessions {
            let Some(track) = self.sessions.get_mut(&session.id) else {
                continue;
            };
            // Only a rate measured just now makes a sample.
            let Some((fps, _)) = track.rate.filter(|_| track.last.at == now) else {
                continue;
            };
            if track.samples.len() == SAMPLES {
                track.samples.pop_front();
            }
            let report = session.receiver_report.filter(|r| r.reports > 0);
            track.samples.push_back(Sample {
                t_s: round(uptime_s, 1),
                fps: round(fps, 1),
                loss_pct: report.map(|r| round(r.fraction_lost * 100.0, 2)),
                jitter_ms: report.map(|r| round(r.jitter_ms, 2)),
            });
        }
    }

    /// A session's frames per second over the latest second.
    pub fn session_fps(&self, id: &str) -> Option<f64> {
        let rate = self.sessions.get(id)?.rate?;
        Some(round(rate.0, 1))
    }

    /// A path's frames and bits per second over the latest second.
    pub fn path_rates(&self, name: &str) -> Option<(f64, f64)> {
        let rate = self.paths.get(name)?.rate?;
        Some((round(rate.0, 1), rate.1.round()))
    }

    /// A session's latest samples, oldest first.
    pub fn samples(&self, id: &str) -> Vec<Sample> {
        self.sessions
            .get(id)
            .map(|t| t.samples.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::ReceiverReport;
    use std::time::Duration;

    fn session(frames: u64, lost: f64) -> SessionStats {
        SessionStats {
            id: "S1".into(),
            client: "127.0.0.1:1".into(),
            path: "cam".into(),
            dialect: "rtsp",
            transport: "udp",
            duration_s: 0.0,
            fps: None,
            state: "playing",
            ended: false,
            frame: 0,
            frames_sent: frames,
            frames_dropped: 0,
            packets_sent: frames * 3,
            octets_sent: frames * 1000,
            decimation: 1,
            receiver_report: Some(ReceiverReport {
                fraction_lost: lost,
                cumulative_lost: 0,
                jitter_ms: 1.5,
                rtt_ms: None,
                reports: 1,
            }),
            rtcp_byes: 0,
            rtcp_malformed: 0,
            multicast: None,
        }
    }

    #[test]
    fn rates_come_from_two_samples() {
        let mut history = History::default();
        let start = Instant::now();
        history.sample(start, 1.0, &[session(0, 0.0)], &[]);
        assert_eq!(history.session_fps("S1"), None, "one sample has no rate");
        history.sample(
            start + Duration::from_secs(2),
            3.0,
            &[session(50, 0.1)],
            &[],
        );
        assert_eq!(history.session_fps("S1"), Some(25.0));
        let samples = history.samples("S1");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].loss_pct, Some(10.0));
        assert_eq!(samples[0].jitter_ms, Some(1.5));
        // A session gone is forgotten.
        history.sample(start + Duration::from_secs(3), 4.0, &[], &[]);
        assert!(history.samples("S1").is_empty());
    }

    #[test]
    fn history_is_bounded() {
        let mut history = History::default();
        let start = Instant::now();
        for i in 0..(SAMPLES as u64 + 30) {
            history.sample(
                start + Duration::from_secs(i),
                i as f64,
                &[session(i * 25, 0.0)],
                &[],
            );
        }
        assert_eq!(history.samples("S1").len(), SAMPLES);
    }
}
