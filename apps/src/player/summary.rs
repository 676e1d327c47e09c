//! What the player says about the stream: the overlay text while it plays, the summary
//! printed at exit and the same as JSON (`--stats-json`).

use super::Summary;
use super::pipeline::Stats;
use crate::rtsp::Dialect;

/// Jitter as text, `n/a` for lab streams.
fn jitter_text(jitter_ms: Option<f64>) -> String {
    jitter_ms.map_or("n/a".to_string(), |j| format!("{j:.2} ms"))
}

/// Capture-to-display latency as text: mean and largest, or `n/a` without sender reports.
fn latency_text(latency_ms: Option<(f64, f64)>) -> String {
    latency_ms.map_or("n/a".to_string(), |(mean, max)| {
        format!("{mean:.1} ms (max {max:.1} ms)")
    })
}

pub(super) fn overlay_text(stats: &Stats, fps: f64, paused: bool, waiting: bool) -> String {
    format!(
        "{}{:.1} fps  {:.0} kbit/s\nlost {} of {} ({:.2}%)  jitter {}\nframes dropped {}  latency {}",
        if paused {
            "PAUSED  "
        } else if waiting {
            "WAITING FOR THE STREAM  "
        } else {
            ""
        },
        fps,
        stats.bitrate as f64 / 1000.0,
        stats.packets_lost.max(0),
        stats.packets_expected,
        stats.loss_rate() * 100.0,
        jitter_text(stats.jitter_ms),
        stats.frames_dropped,
        latency_text(stats.latency_ms)
    )
}

/// The summary printed at exit, with the lab client's "RTP packet loss rate".
pub fn summary_text(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "frames shown: {}\npackets received: {}, expected: {}, lost: {}\njitter: {}\nframes dropped by the depayloader: {}\ntime to first frame: {}\nlatency (capture to display): {}\nRTP packet loss rate: {:.2}%",
        s.frames_shown,
        s.packets_received,
        s.packets_expected,
        s.packets_lost.max(0),
        jitter_text(s.jitter_ms),
        s.frames_dropped,
        summary.first_frame.map_or("-".to_string(), |d| format!(
            "{:.1} ms",
            d.as_secs_f64() * 1000.0
        )),
        latency_text(s.latency_ms),
        s.loss_rate() * 100.0
    )
}

/// The same figures as JSON, with how the run went (written by hand: one flat object of
/// numbers, strings and booleans; `jitter_ms` is null for lab streams). The README lists
/// the fields.
pub fn summary_json(summary: &Summary) -> String {
    let s = &summary.stats;
    let text = |value: &str| format!("\"{value}\"");
    let fields = [
        ("frames_shown", s.frames_shown.to_string()),
        ("packets_received", s.packets_received.to_string()),
        ("packets_expected", s.packets_expected.to_string()),
        ("packets_lost", s.packets_lost.to_string()),
        ("loss_rate", s.loss_rate().to_string()),
        (
            "jitter_ms",
            s.jitter_ms
                .map_or("null".to_string(), |j| format!("{j:.3}")),
        ),
        ("frames_dropped", s.frames_dropped.to_string()),
        (
            "time_to_first_frame_ms",
            summary.first_frame.map_or("null".to_string(), |d| {
                format!("{:.1}", d.as_secs_f64() * 1000.0)
            }),
        ),
        (
            "latency_ms",
            s.latency_ms
                .map_or("null".to_string(), |(mean, _)| format!("{mean:.1}")),
        ),
        (
            "latency_max_ms",
            s.latency_ms
                .map_or("null".to_string(), |(_, max)| format!("{max:.1}")),
        ),
        ("stalls", summary.controls.stalls.to_string()),
        (
            "transport",
            text(if summary.transport_tcp {
                "tcp"
            } else if summary.transport_multicast {
                "multicast"
            } else {
                "udp"
            }),
        ),
        ("transport_fallback", summary.transport_fallback.to_string()),
        (
            "dialect",
            text(match summary.dialect {
                Dialect::Standard => "rtsp",
                Dialect::Lab => "lab",
            }),
        ),
        ("ended_by", text(summary.ended_by.as_str())),
        ("headless", summary.headless.to_string()),
        ("video_sink", text(summary.video_sink)),
        ("pauses", summary.controls.pauses.to_string()),
        ("resumes", summary.controls.resumes.to_string()),
        ("seeks", summary.controls.seeks.to_string()),
    ];
    let fields: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("\"{key}\": {value}"))
        .collect();
    format!("{{{}}}\n", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::player::{Controls, Ending};

    fn stats(jitter_ms: Option<f64>) -> Stats {
        Stats {
            frames_shown: 30,
            packets_received: 99,
            packets_expected: 100,
            packets_lost: 1,
            jitter_ms,
            bitrate: 2_000_000,
            frames_dropped: 1,
            latency_ms: None,
        }
    }

    #[test]
    fn the_overlay_shows_jitter_for_standard_streams_and_not_for_lab_ones() {
        assert_eq!(
            overlay_text(&stats(Some(1.234)), 25.0, false, false),
            "25.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter 1.23 ms\nframes dropped 1  latency n/a"
        );
        assert_eq!(
            overlay_text(&stats(None), 20.0, true, false),
            "PAUSED  20.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter n/a\nframes dropped 1  latency n/a"
        );
        let waiting = Stats {
            latency_ms: Some((12.34, 20.0)),
            ..stats(Some(1.0))
        };
        assert_eq!(
            overlay_text(&waiting, 0.0, false, true),
            "WAITING FOR THE STREAM  0.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter 1.00 ms\nframes dropped 1  latency 12.3 ms (max 20.0 ms)"
        );
    }

    fn summary(jitter_ms: Option<f64>) -> Summary {
        Summary {
            stats: stats(jitter_ms),
            first_frame: Some(Duration::from_millis(42)),
            dialect: if jitter_ms.is_some() {
                Dialect::Standard
            } else {
                Dialect::Lab
            },
            transport_tcp: false,
            transport_multicast: false,
            transport_fallback: false,
            headless: true,
            video_sink: "fakesink",
            ended_by: Ending::Frames,
            controls: Controls::default(),
        }
    }

    #[test]
    fn the_summary_and_its_json_say_lab_jitter_is_not_available() {
        let standard = summary(Some(0.5));
        assert!(summary_text(&standard).contains("\njitter: 0.50 ms\n"));
        assert!(summary_json(&standard).contains("\"jitter_ms\": 0.500,"));
        let lab = summary(None);
        assert!(summary_text(&lab).contains("\njitter: n/a\n"));
        assert!(summary_json(&lab).contains("\"jitter_ms\": null,"));
    }

    #[test]
    fn the_json_says_how_the_run_went() {
        let run = Summary {
            transport_tcp: true,
            transport_multicast: false,
            transport_fallback: true,
            headless: false,
            video_sink: "xvimagesink",
            ended_by: Ending::User,
            controls: Controls {
                pauses: 2,
                resumes: 1,
                seeks: 3,
                stalls: 1,
            },
            ..summary(Some(0.5))
        };
        assert_eq!(
            summary_json(&run),
            "{\"frames_shown\": 30, \"packets_received\": 99, \"packets_expected\": 100, \
             \"packets_lost\": 1, \"loss_rate\": 0.01, \"jitter_ms\": 0.500, \
             \"frames_dropped\": 1, \"time_to_first_frame_ms\": 42.0, \"latency_ms\": null, \
             \"latency_max_ms\": null, \"stalls\": 1, \"transport\": \"tcp\", \
             \"transport_fallback\": true, \"dialect\": \"rtsp\", \"ended_by\": \"user\", \
             \"headless\": false, \"video_sink\": \"xvimagesink\", \"pauses\": 2, \
             \"resumes\": 1, \"seeks\": 3}\n"
        );
        let lab = summary(None);
        let json = summary_json(&lab);
        assert!(json.contains("\"dialect\": \"lab\""), "{json}");
        assert!(json.contains("\"ended_by\": \"frames\""), "{json}");
        assert!(
            json.contains("\"transport\": \"udp\", \"transport_fallback\": false"),
            "{json}"
        );
        assert!(
            json.contains("\"headless\": true, \"video_sink\": \"fakesink\""),
            "{json}"
        );
    }
}
