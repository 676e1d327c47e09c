//! An HTTP run's results, aggregated over viewers: a table or one JSON object.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{HttpConfig, Times, ViewerOutcome};
use crate::report::{json_string, percentile};

/// What an HTTP run measured, over the window; `None` where there was nothing to measure.
/// "Full-rate viewers" are those at `full_rate_fps` or more: the figures for them are
/// what a viewer that keeps up sees.
#[derive(Debug, Clone, Default)]
pub struct HttpReport {
    pub url: String,
    /// `http` or `tcp` (a raw multipart stream).
    pub mode: &'static str,
    pub viewers: usize,
    pub threads: usize,
    /// Viewers that got a stream (a 200 with a multipart body, or a raw stream's boundary).
    pub connected: usize,
    pub failed: usize,
    /// Failures by cause, most frequent first, and the first in full.
    pub failures: Vec<(String, usize)>,
    pub first_failure: Option<String>,
    /// Streams that ended before the end of the window, by cause; the first in full.
    pub closed_early: usize,
    pub closes: Vec<(String, usize)>,
    pub first_close: Option<String>,
    pub ramp_s: f64,
    pub settle_s: f64,
    pub window_s: f64,
    pub full_rate_fps: f64,
    pub at_full_rate: usize,
    /// Whole JPEGs per second: all viewers together, and over the connected viewers.
    pub fps_total: f64,
    pub fps_min: Option<f64>,
    pub fps_p1: Option<f64>,
    pub fps_median: Option<f64>,
    pub fps_max: Option<f64>,
    pub mbit_s: f64,
    /// Parts that failed the whole-JPEG check (SOI at the start, EOI at the end, an image
    /// type, a length that fits), over the whole run; and the first in full.
    pub bad_parts: u64,
    pub first_bad_part: Option<String>,
    /// Runs of stray bytes skipped before a delimiter.
    pub skipped: u64,
    /// Frames of the window that carried an X-Timestamp.
    pub timestamped: u64,
    /// Frame age at arrival (wall clock minus X-Timestamp), ms: all viewers, and the
    /// full-rate ones.
    pub age_p50_ms: Option<f64>,
    pub age_p99_ms: Option<f64>,
    pub age_max_ms: Option<f64>,
    pub age_full_p50_ms: Option<f64>,
    pub age_full_p99_ms: Option<f64>,
    /// Content lag, ms: a viewer's arrival of a picture minus the earliest viewer's arrival
    /// of the same bytes; all viewers, and the full-rate ones.
    pub lag_p50_ms: Option<f64>,
    pub lag_p99_ms: Option<f64>,
    pub lag_max_ms: Option<f64>,
    pub lag_full_p99_ms: Option<f64>,
    /// From connecting to the first whole frame.
    pub first_frame_p50_ms: Option<f64>,
    pub first_frame_p99_ms: Option<f64>,
    pub server_pid: Option<u32>,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_bytes: Option<u64>,
    pub server_anon_rss_bytes: Option<u64>,
    pub self_cpu_pct: Option<f64>,
    /// The whole machine's CPU use over the window (100 % = one core), and its cores: what
    /// is left once the server and this process are taken out was used by others.
    pub machine_cpu_pct: Option<f64>,
    pub cores: usize,
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn count(list: &mut Vec<(String, usize)>, kind: &str) {
    match list.iter_mut().find(|(k, _)| k == kind) {
        Some((_, n)) => *n += 1,
        None => list.push((kind.to_string(), 1)),
    }
}

fn most_first(list: &mut [(String, usize)]) {
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

const MS: f64 = 1e6;

impl HttpReport {
    pub fn build(
        url: &str,
        config: &HttpConfig,
        times: Times,
        outcomes: &[ViewerOutcome],
    ) -> HttpReport {
        let window_s = (times.window_end - times.window_start) as f64 / 1e9;
        let mut r = HttpReport {
            url: url.to_string(),
            mode: if url.starts_with("tcp:") {
                "tcp"
            } else {
                "http"
            },
            viewers: outcomes.len(),
            threads: config.threads.max(1),
            ramp_s: config.ramp.as_secs_f64(),
            settle_s: config.settle.as_secs_f64(),
            window_s,
            full_rate_fps: config.full_rate_fps,
            ..HttpReport::default()
        };
        // The earliest arrival of each picture, over every viewer and the whole run.
        let mut earliest: HashMap<u64, i64> = HashMap::new();
        for o in outcomes {
            for &(hash, at) in &o.arrivals {
                earliest
                    .entry(hash)
                    .and_modify(|t| *t = (*t).min(at))
                    .or_insert(at);
            }
        }
        let (mut fps, mut first) = (Vec::new(), Vec::new());
        let (mut ages, mut ages_full, mut lags, mut lags_full) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for o in outcomes {
            if let Some((kind, detail)) = &o.failure {
                r.failed += 1;
                count(&mut r.failures, kind);
                r.first_failure.get_or_insert_with(|| detail.clone());
                continue;
            }
            r.connected += 1;
            if let Some((kind, detail)) = &o.closed {
                r.closed_early += 1;
                count(&mut r.closes, kind);
                r.first_close.get_or_insert_with(|| detail.clone());
            }
            let rate = o.frames as f64 / window_s;
            let full = rate >= config.full_rate_fps;
            r.at_full_rate += usize::from(full);
            fps.push(rate);
            r.mbit_s += o.bytes as f64 * 8.0 / window_s / 1e6;
            r.bad_parts += o.bad_parts;
            if r.first_bad_part.is_none() {
                r.first_bad_part = o.first_bad_part.clone();
            }
            r.skipped += o.skipped;
            r.timestamped += o.ages_ns.len() as u64;
            for &age in &o.ages_ns {
                ages.push(age as f64 / MS);
                if full {
                    ages_full.push(age as f64 / MS);
                }
            }
            for &(hash, at) in &o.arrivals {
                if !times.in_window(at) {
                    continue;
                }
                let lag = (at - earliest.get(&hash).copied().unwrap_or(at)) as f64 / MS;
                lags.push(lag);
                if full {
                    lags_full.push(lag);
                }
            }
            if let Some(t) = o.first_frame_ns {
                first.push(t as f64 / MS);
            }
        }
        most_first(&mut r.failures);
        most_first(&mut r.closes);
        r.fps_total = fps.iter().sum();
        let fps = sorted(fps);
        r.fps_min = fps.first().copied();
        r.fps_p1 = percentile(&fps, 1.0);
        r.fps_median = percentile(&fps, 50.0);
        r.fps_max = fps.last().copied();
        let ages = sorted(ages);
        r.age_p50_ms = percentile(&ages, 50.0);
        r.age_p99_ms = percentile(&ages, 99.0);
        r.age_max_ms = ages.last().copied();
        let ages_full = sorted(ages_full);
        r.age_full_p50_ms = percentile(&ages_full, 50.0);
        r.age_full_p99_ms = percentile(&ages_full, 99.0);
        let lags = sorted(lags);
        r.lag_p50_ms = percentile(&lags, 50.0);
        r.lag_p99_ms = percentile(&lags, 99.0);
        r.lag_max_ms = lags.last().copied();
        r.lag_full_p99_ms = percentile(&sorted(lags_full), 99.0);
        let first = sorted(first);
        r.first_frame_p50_ms = percentile(&first, 50.0);
        r.first_frame_p99_ms = percentile(&first, 99.0);
        r
    }

    /// Server CPU in percent of one core per connected viewer.
    pub fn server_cpu_per_viewer(&self) -> Option<f64> {
        let cpu = self.server_cpu_pct?;
        (self.connected > 0).then(|| cpu / self.connected as f64)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let num = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} ms"));
        let mb =
            |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.1} MB", v as f64 / 1e6));
        let _ = writeln!(
            o,
            "mjpeg-rtsp-bench {} ({}): {} viewers started over {:.1} s, measured over {:.1} s \
             from {:.1} s after the ramp",
            self.url, self.mode, self.viewers, self.ramp_s, self.window_s, self.settle_s
        );
        let mut viewers = format!("{} connected, {} failed", self.connected, self.failed);
        for (kind, n) in &self.failures {
            let _ = write!(viewers, "; {n} x {kind}");
        }
        if self.closed_early > 0 {
            let _ = write!(viewers, "; {} streams ended early", self.closed_early);
            for (kind, n) in &self.closes {
                let _ = write!(viewers, " ({n} x {kind})");
            }
        }
        let rows = [
            ("viewers", viewers),
            (
                "full rate",
                format!(
                    "{} of {} viewers at >= {} frames/s",
                    self.at_full_rate, self.viewers, self.full_rate_fps
                ),
            ),
            (
                "frames/s",
                format!(
                    "{:.1} in all; per viewer min {}, p1 {}, median {}, max {}; {:.1} Mbit/s",
                    self.fps_total,
                    num(self.fps_min, 2),
                    num(self.fps_p1, 2),
                    num(self.fps_median, 2),
                    num(self.fps_max, 2),
                    self.mbit_s
                ),
            ),
            (
                "parts",
                format!(
                    "{} failed the whole-JPEG check; {} runs of stray bytes skipped",
                    self.bad_parts, self.skipped
                ),
            ),
            (
                "frame age",
                if self.timestamped == 0 {
                    "no X-Timestamp in the parts".to_string()
                } else {
                    format!(
                        "p50 {}, p99 {}, max {} (full-rate viewers: p50 {}, p99 {}), from \
                         X-Timestamp to arrival",
                        ms(self.age_p50_ms),
                        ms(self.age_p99_ms),
                        ms(self.age_max_ms),
                        ms(self.age_full_p50_ms),
                        ms(self.age_full_p99_ms)
                    )
                },
            ),
            (
                "content lag",
                format!(
                    "p50 {}, p99 {}, max {} (full-rate viewers: p99 {}) behind the first \
                     viewer to get the same picture",
                    ms(self.lag_p50_ms),
                    ms(self.lag_p99_ms),
                    ms(self.lag_max_ms),
                    ms(self.lag_full_p99_ms)
                ),
            ),
            (
                "first frame",
                format!(
                    "p50 {}, p99 {} after connecting",
                    ms(self.first_frame_p50_ms),
                    ms(self.first_frame_p99_ms)
                ),
            ),
            (
                "server",
                match self.server_pid {
                    None => "not measured (no --server-pid)".to_string(),
                    Some(pid) => format!(
                        "pid {pid}: CPU {} % of a core ({} % per viewer), RSS {} (anonymous {})",
                        num(self.server_cpu_pct, 1),
                        num(self.server_cpu_per_viewer(), 3),
                        mb(self.server_rss_bytes),
                        mb(self.server_anon_rss_bytes)
                    ),
                },
            ),
            (
                "generator",
                format!(
                    "CPU {} % of a core, {} thread(s)",
                    num(self.self_cpu_pct, 1),
                    self.threads
                ),
            ),
            (
                "machine",
                format!(
                    "CPU {} % of {} % ({} cores) in all",
                    num(self.machine_cpu_pct, 1),
                    self.cores * 100,
                    self.cores
                ),
            ),
        ];
        for (name, value) in rows {
            let _ = writeln!(o, "  {name:<12} {value}");
        }
        for (name, first) in [
            ("first error", &self.first_failure),
            ("first close", &self.first_close),
            ("first bad", &self.first_bad_part),
        ] {
            if let Some(first) = first {
                let _ = writeln!(o, "  {name:<12} {first}");
            }
        }
        o
    }

    /// One JSON object, keys as in the fields (`failures` and `closes` are objects).
    pub fn json(&self) -> String {
        let f = |v: Option<f64>| {
            v.filter(|v| v.is_finite())
                .map_or("null".to_string(), |v| format!("{v:.4}"))
        };
        let u = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        let s = |v: &Option<String>| v.as_deref().map_or("null".to_string(), json_string);
        let counts = |list: &[(String, usize)]| {
            let items: Vec<String> = list
                .iter()
                .map(|(k, n)| format!("{}:{n}", json_string(k)))
                .collect();
            format!("{{{}}}", items.join(","))
        };
        let fields: Vec<(&str, String)> = vec![
            ("url", json_string(&self.url)),
            ("mode", json_string(self.mode)),
            ("viewers", self.viewers.to_string()),
            ("threads", self.threads.to_string()),
            ("connected", self.connected.to_string()),
            ("failed", self.failed.to_string()),
            ("failures", counts(&self.failures)),
            ("first_failure", s(&self.first_failure)),
            ("closed_early", self.closed_early.to_string()),
            ("closes", counts(&self.closes)),
            ("first_close", s(&self.first_close)),
            ("ramp_s", f(Some(self.ramp_s))),
            ("settle_s", f(Some(self.settle_s))),
            ("window_s", f(Some(self.window_s))),
            ("full_rate_fps", f(Some(self.full_rate_fps))),
            ("at_full_rate", self.at_full_rate.to_string()),
            ("fps_total", f(Some(self.fps_total))),
            ("fps_min", f(self.fps_min)),
            ("fps_p1", f(self.fps_p1)),
            ("fps_median", f(self.fps_median)),
            ("fps_max", f(self.fps_max)),
            ("mbit_s", f(Some(self.mbit_s))),
            ("bad_parts", self.bad_parts.to_string()),
            ("first_bad_part", s(&self.first_bad_part)),
            ("skipped", self.skipped.to_string()),
            ("timestamped", self.timestamped.to_string()),
            ("age_p50_ms", f(self.age_p50_ms)),
            ("age_p99_ms", f(self.age_p99_ms)),
            ("age_max_ms", f(self.age_max_ms)),
            ("age_full_p50_ms", f(self.age_full_p50_ms)),
            ("age_full_p99_ms", f(self.age_full_p99_ms)),
            ("lag_p50_ms", f(self.lag_p50_ms)),
            ("lag_p99_ms", f(self.lag_p99_ms)),
            ("lag_max_ms", f(self.lag_max_ms)),
            ("lag_full_p99_ms", f(self.lag_full_p99_ms)),
            ("first_frame_p50_ms", f(self.first_frame_p50_ms)),
            ("first_frame_p99_ms", f(self.first_frame_p99_ms)),
            ("server_pid", u(self.server_pid.map(u64::from))),
            ("server_cpu_pct", f(self.server_cpu_pct)),
            ("server_cpu_pct_per_viewer", f(self.server_cpu_per_viewer())),
            ("server_rss_bytes", u(self.server_rss_bytes)),
            ("server_anon_rss_bytes", u(self.server_anon_rss_bytes)),
            ("self_cpu_pct", f(self.self_cpu_pct)),
            ("machine_cpu_pct", f(self.machine_cpu_pct)),
            ("cores", self.cores.to_string()),
        ];
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", json_string(k)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config() -> HttpConfig {
        HttpConfig {
            url: "http://127.0.0.1:1/s".into(),
            viewers: 3,
            ramp: Duration::from_secs(1),
            settle: Duration::ZERO,
            duration: Duration::from_secs(1),
            server_pid: None,
            threads: 1,
            full_rate_fps: 23.0,
            boundary: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn rates_ages_and_content_lag() {
        let times = Times {
            window_start: 1_000_000_000,
            window_end: 2_000_000_000,
        };
        let frame_at = |i: i64, delay_ms: i64| {
            (
                i as u64,
                990_000_000 + i * 40_000_000 + delay_ms * 1_000_000,
            )
        };
        // Viewer 0 gets 26 frames first; viewer 1 the same 2 ms later; viewer 2 every
        // other one, 30 ms late; viewer 3 never connects.
        let fast = ViewerOutcome {
            frames: 25,
            ages_ns: vec![5_000_000; 25],
            arrivals: (0..26).map(|i| frame_at(i, 0)).collect(),
            ..ViewerOutcome::default()
        };
        let second = ViewerOutcome {
            frames: 25,
            arrivals: (0..26).map(|i| frame_at(i, 2)).collect(),
            ..ViewerOutcome::default()
        };
        let slow = ViewerOutcome {
            frames: 12,
            arrivals: (0..26).step_by(2).map(|i| frame_at(i, 30)).collect(),
            bad_parts: 1,
            first_bad_part: Some("a part of 3 bytes is not a whole JPEG".into()),
            closed: Some(("closed by the server".into(), "closed by the server".into())),
            ..ViewerOutcome::default()
        };
        let failed = ViewerOutcome::fail("HTTP 503 Service Unavailable", "HTTP 503 ...");
        let r = HttpReport::build(
            "http://127.0.0.1:1/s",
            &config(),
            times,
            &[fast, second, slow, failed],
        );
        assert_eq!((r.connected, r.failed, r.at_full_rate), (3, 1, 2));
        assert_eq!(
            r.failures,
            vec![("HTTP 503 Service Unavailable".to_string(), 1)]
        );
        assert_eq!((r.closed_early, r.bad_parts), (1, 1));
        assert_eq!((r.fps_min, r.fps_median), (Some(12.0), Some(25.0)));
        assert_eq!((r.age_p50_ms, r.timestamped), (Some(5.0), 25));
        assert_eq!(r.lag_max_ms, Some(30.0));
        assert_eq!(r.lag_full_p99_ms, Some(2.0));
        let j = r.json();
        assert!(j.contains(r#""at_full_rate":2,"#), "{j}");
        assert!(
            j.contains(r#""failures":{"HTTP 503 Service Unavailable":1}"#),
            "{j}"
        );
        assert!(
            r.table().contains("2 of 4 viewers at >= 23 frames/s"),
            "{}",
            r.table()
        );
    }
}
