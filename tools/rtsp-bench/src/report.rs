//! The run's results: aggregated over sessions, printed as a table or as one JSON object.

use std::fmt::Write as _;

use super::session::SessionOutcome;
use super::stats::{StreamStats, Window, units_to_ms};

/// What a run measured. Rates and ratios are over the measuring window; `None` where
/// there was nothing to measure.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub url: String,
    /// How RTP came: `udp`, or `tcp` (interleaved in the RTSP connection).
    pub transport: &'static str,
    pub sessions: usize,
    /// Sessions whose PLAY succeeded.
    pub ok: usize,
    pub failed: usize,
    /// Failures by cause, most frequent first, and the first failure in full.
    pub failures: Vec<(String, usize)>,
    pub first_failure: Option<String>,
    /// Sessions that failed after PLAY (a keep-alive failed).
    pub late_failures: usize,
    /// Sessions set up that received no frame in the window.
    pub silent: usize,
    pub ramp_s: f64,
    pub window_s: f64,
    /// Frames per second: all sessions together, and per session set up.
    pub fps_total: f64,
    pub fps_mean: Option<f64>,
    pub fps_min: Option<f64>,
    pub fps_max: Option<f64>,
    pub packets: u64,
    pub expected: u64,
    pub lost: i64,
    pub loss_pct: Option<f64>,
    /// Datagrams dropped by the load generator's own socket buffers (SO_RXQ_OVFL).
    pub socket_drops: u64,
    pub mbit_s: f64,
    /// Interarrival jitter at the end of the window: mean and highest over sessions; and the
    /// highest value any session reached in the window.
    pub jitter_mean_ms: Option<f64>,
    pub jitter_max_ms: Option<f64>,
    pub jitter_peak_ms: Option<f64>,
    /// Time to first frame, from writing PLAY to the first packet with the marker bit.
    pub ttff_p50_ms: Option<f64>,
    pub ttff_p99_ms: Option<f64>,
    pub ttff_max_ms: Option<f64>,
    /// From connecting to PLAY's reply.
    pub setup_p50_ms: Option<f64>,
    pub setup_p99_ms: Option<f64>,
    pub server_pid: Option<u32>,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_bytes: Option<u64>,
    pub server_peak_rss_bytes: Option<u64>,
    /// The anonymous part of the RSS (heap, stacks), without file mappings.
    pub server_anon_rss_bytes: Option<u64>,
    pub self_cpu_pct: Option<f64>,
    /// Longest a packet of the window waited in a socket buffer before it was read.
    pub max_lag_ms: f64,
    pub keepalives: u64,
    pub teardowns_ok: usize,
}

/// Nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

impl Report {
    /// Aggregates the sessions' outcomes and statistics (by session index).
    pub fn build(
        url: &str,
        ramp_s: f64,
        window: Window,
        outcomes: &[SessionOutcome],
        stats: &[StreamStats],
    ) -> Report {
        let window_s = window.seconds();
        let mut r = Report {
            url: url.to_string(),
            sessions: outcomes.len(),
            ramp_s,
            window_s,
            ..Report::default()
        };
        let mut failures: Vec<(String, usize)> = Vec::new();
        let (mut fps, mut jitter, mut ttff, mut setup) = (vec![], vec![], vec![], vec![]);
        let mut peak_jitter: f64 = 0.0;
        let empty = StreamStats::default();
        for (i, outcome) in outcomes.iter().enumerate() {
            r.keepalives += u64::from(outcome.keepalives);
            r.teardowns_ok += usize::from(outcome.teardown_ok);
            if let Some(e) = &outcome.error {
                r.failed += 1;
                r.first_failure.get_or_insert_with(|| e.to_string());
                let kind = e.kind();
                match failures.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, n)) => *n += 1,
                    None => failures.push((kind, 1)),
                }
                continue;
            }
            r.ok += 1;
            r.late_failures += usize::from(outcome.late_error.is_some());
            let s = stats.get(i).unwrap_or(&empty);
            if s.frames == 0 {
                r.silent += 1;
            }
            fps.push(s.frames as f64 / window_s);
            r.packets += s.packets;
            r.expected += s.expected();
            r.lost += s.lost();
            r.socket_drops += u64::from(s.socket_drops);
            r.mbit_s += s.bytes as f64 * 8.0 / window_s / 1e6;
            r.max_lag_ms = r.max_lag_ms.max(s.max_lag as f64 / 1e6);
            if s.packets > 1 {
                jitter.push(units_to_ms(s.jitter()));
                peak_jitter = peak_jitter.max(units_to_ms(s.max_jitter));
            }
            if let (Some(play), Some(frame)) = (outcome.play_sent, s.first_frame) {
                ttff.push((frame - play).max(0) as f64 / 1e6);
            }
            if let Some(t) = outcome.setup_time {
                setup.push(t.as_secs_f64() * 1e3);
            }
        }
        failures.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        r.failures = failures;
        r.fps_total = fps.iter().fold(0.0, |a, b| a + b);
        if !fps.is_empty() {
            r.fps_mean = Some(r.fps_total / fps.len() as f64);
            r.fps_min = fps.iter().copied().reduce(f64::min);
            r.fps_max = fps.iter().copied().reduce(f64::max);
        }
        if r.expected > 0 {
            r.loss_pct = Some(r.lost as f64 / r.expected as f64 * 100.0);
        }
        if !jitter.is_empty() {
            r.jitter_mean_ms = Some(jitter.iter().sum::<f64>() / jitter.len() as f64);
            r.jitter_max_ms = jitter.iter().copied().reduce(f64::max);
            r.jitter_peak_ms = Some(peak_jitter);
        }
        let ttff = sorted(ttff);
        r.ttff_p50_ms = percentile(&ttff, 50.0);
        r.ttff_p99_ms = percentile(&ttff, 99.0);
        r.ttff_max_ms = ttff.last().copied();
        let setup = sorted(setup);
        r.setup_p50_ms = percentile(&setup, 50.0);
        r.setup_p99_ms = percentile(&setup, 99.0);
        r
    }

    /// Server CPU in percent of one core per session set up.
    pub fn server_cpu_per_session(&self) -> Option<f64> {
        let cpu = self.server_cpu_pct?;
        (self.ok > 0).then(|| cpu / self.ok as f64)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        let num = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
        let mb =
            |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.1} MB", v as f64 / 1e6));
        let _ = writeln!(
            o,
            "mjpeg-rtsp-bench {} ({}): {} sessions, ramp {:.1} s, measured over {:.1} s after it",
            self.url, self.transport, self.sessions, self.ramp_s, self.window_s
        );
        let mut sessions = format!("{} set up, {} failed", self.ok, self.failed);
        for (kind, n) in &self.failures {
            let _ = write!(sessions, "; {n} x {kind}");
        }
        if self.late_failures > 0 {
            let _ = write!(sessions, "; {} failed after PLAY", self.late_failures);
        }
        if self.silent > 0 {
            let _ = write!(sessions, "; {} received no frame", self.silent);
        }
        let rows = [
            ("sessions", sessions),
            (
                "frames/s",
                format!(
                    "{:.1} in all; per session mean {}, min {}, max {}",
                    self.fps_total,
                    num(self.fps_mean, 2),
                    num(self.fps_min, 2),
                    num(self.fps_max, 2)
                ),
            ),
            (
                "packets",
                format!(
                    "{} received of {} expected, {} lost ({} %); {:.1} Mbit/s; {} dropped by \
                     the generator's socket buffers",
                    self.packets,
                    self.expected,
                    self.lost,
                    num(self.loss_pct, 3),
                    self.mbit_s,
                    self.socket_drops
                ),
            ),
            (
                "jitter",
                format!(
                    "mean {}, max {} (highest during the window {})",
                    ms(self.jitter_mean_ms),
                    ms(self.jitter_max_ms),
                    ms(self.jitter_peak_ms)
                ),
            ),
            (
                "first frame",
                format!(
                    "p50 {}, p99 {}, max {} after PLAY",
                    ms(self.ttff_p50_ms),
                    ms(self.ttff_p99_ms),
                    ms(self.ttff_max_ms)
                ),
            ),
            (
                "setup",
                format!(
                    "p50 {}, p99 {} from connecting to PLAY's reply",
                    ms(self.setup_p50_ms),
                    ms(self.setup_p99_ms)
                ),
            ),
            (
                "server",
                match self.server_pid {
                    None => "not measured (no --server-pid)".to_string(),
                    Some(pid) => format!(
                        "pid {pid}: CPU {} % of a core ({} % per session), RSS {} (peak {}, \
                         anonymous {})",
                        num(self.server_cpu_pct, 1),
                        num(self.server_cpu_per_session(), 3),
                        mb(self.server_rss_bytes),
                        mb(self.server_peak_rss_bytes),
                        mb(self.server_anon_rss_bytes)
                    ),
                },
            ),
            (
                "generator",
                format!(
                    "CPU {} % of a core; packets waited up to {:.1} ms to be read; {} \
                     keep-alives, {} teardowns answered",
                    num(self.self_cpu_pct, 1),
                    self.max_lag_ms,
                    self.keepalives,
                    self.teardowns_ok
                ),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(o, "  {name:<12} {value}");
        }
        if let Some(first) = &self.first_failure {
            let _ = writeln!(o, "  {:<12} {first}", "first error");
        }
        o
    }

    /// One JSON object, keys as in the fields (all at the top level except `failures`).
    pub fn json(&self) -> String {
        let f = |v: Option<f64>| {
            v.filter(|v| v.is_finite())
                .map_or("null".to_string(), |v| format!("{v:.4}"))
        };
        let u = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        let failures: Vec<String> = self
            .failures
            .iter()
            .map(|(k, n)| format!("{}:{n}", json_string(k)))
            .collect();
        let fields: Vec<(&str, String)> = vec![
            ("url", json_string(&self.url)),
            ("transport", json_string(self.transport)),
            ("sessions", self.sessions.to_string()),
            ("ok", self.ok.to_string()),
            ("failed", self.failed.to_string()),
            ("failures", format!("{{{}}}", failures.join(","))),
            (
                "first_failure",
                self.first_failure
                    .as_deref()
                    .map_or("null".to_string(), json_string),
            ),
            ("late_failures", self.late_failures.to_string()),
            ("silent", self.silent.to_string()),
            ("ramp_s", f(Some(self.ramp_s))),
            ("window_s", f(Some(self.window_s))),
            ("fps_total", f(Some(self.fps_total))),
            ("fps_mean", f(self.fps_mean)),
            ("fps_min", f(self.fps_min)),
            ("fps_max", f(self.fps_max)),
            ("packets", self.packets.to_string()),
            ("expected", self.expected.to_string()),
            ("lost", self.lost.to_string()),
            ("loss_pct", f(self.loss_pct)),
            ("socket_drops", self.socket_drops.to_string()),
            ("mbit_s", f(Some(self.mbit_s))),
            ("jitter_mean_ms", f(self.jitter_mean_ms)),
            ("jitter_max_ms", f(self.jitter_max_ms)),
            ("jitter_peak_ms", f(self.jitter_peak_ms)),
            ("ttff_p50_ms", f(self.ttff_p50_ms)),
            ("ttff_p99_ms", f(self.ttff_p99_ms)),
            ("ttff_max_ms", f(self.ttff_max_ms)),
            ("setup_p50_ms", f(self.setup_p50_ms)),
            ("setup_p99_ms", f(self.setup_p99_ms)),
            ("server_pid", u(self.server_pid.map(u64::from))),
            ("server_cpu_pct", f(self.server_cpu_pct)),
            (
                "server_cpu_pct_per_session",
                f(self.server_cpu_per_session()),
            ),
            ("server_rss_bytes", u(self.server_rss_bytes)),
            ("server_peak_rss_bytes", u(self.server_peak_rss_bytes)),
            ("server_anon_rss_bytes", u(self.server_anon_rss_bytes)),
            ("self_cpu_pct", f(self.self_cpu_pct)),
            ("max_lag_ms", f(Some(self.max_lag_ms))),
            ("keepalives", self.keepalives.to_string()),
            ("teardowns_ok", self.teardowns_ok.to_string()),
        ];
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", json_string(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// A JSON string literal.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn json_escapes_and_nulls() {
        assert_eq!(json_string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        let r = Report {
            url: "rtsp://h/x".into(),
            failures: vec![("SETUP: 453 Not Enough Bandwidth".into(), 2)],
            ..Report::default()
        };
        let j = r.json();
        assert!(
            j.starts_with(r#"{"url":"rtsp://h/x","transport":"","sessions":0"#),
            "{j}"
        );
        assert!(
            j.contains(r#""failures":{"SETUP: 453 Not Enough Bandwidth":2}"#),
            "{j}"
        );
        assert!(j.contains(r#""fps_min":null"#), "{j}");
        assert!(j.ends_with('}'));
    }
}
