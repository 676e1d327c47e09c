//! What the player says about the stream: the overlay text while it plays, the summary
//! printed at exit and the same as JSON (`--stats-json`).

use super::Summary;
use super::pipeline::Stats;

/// Jitter as text, `n/a` for lab streams.
fn jitter_text(jitter_ms: Option<f64>) -> String {
    jitter_ms.map_or("n/a".to_string(), |j| format!("{j:.2} ms"))
}

pub(super) fn overlay_text(stats: &Stats, fps: f64, paused: bool) -> String {
    format!(
        "{}{:.1} fps  {:.0} kbit/s\nlost {} of {} ({:.2}%)  jitter {}\nframes dropped {}",
        if paused { "PAUSED  " } else { "" },
        fps,
        stats.bitrate as f64 / 1000.0,
        stats.packets_lost.max(0),
        stats.packets_expected,
        stats.loss_rate() * 100.0,
        jitter_text(stats.jitter_ms),
        stats.frames_dropped
    )
}

/// The summary printed at exit, with the lab client's "RTP packet loss rate".
pub fn summary_text(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "frames shown: {}\npackets received: {}, expected: {}, lost: {}\njitter: {}\nframes dropped by the depayloader: {}\ntime to first frame: {}\nRTP packet loss rate: {:.2}%",
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
        s.loss_rate() * 100.0
    )
}

/// The same as JSON (written by hand: a flat object of numbers; `jitter_ms` is null for
/// lab streams).
pub fn summary_json(summary: &Summary) -> String {
    let s = &summary.stats;
    format!(
        "{{\"frames_shown\": {}, \"packets_received\": {}, \"packets_expected\": {}, \"packets_lost\": {}, \"loss_rate\": {}, \"jitter_ms\": {}, \"frames_dropped\": {}, \"time_to_first_frame_ms\": {}, \"transport\": \"{}\"}}\n",
        s.frames_shown,
        s.packets_received,
        s.packets_expected,
        s.packets_lost,
        s.loss_rate(),
        s.jitter_ms
            .map_or("null".to_string(), |j| format!("{j:.3}")),
        s.frames_dropped,
        summary.first_frame.map_or("null".to_string(), |d| format!(
            "{:.1}",
            d.as_secs_f64() * 1000.0
        )),
        if summary.transport_tcp { "tcp" } else { "udp" }
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn stats(jitter_ms: Option<f64>) -> Stats {
        Stats {
            frames_shown: 30,
            packets_received: 99,
            packets_expected: 100,
            packets_lost: 1,
            jitter_ms,
            bitrate: 2_000_000,
            frames_dropped: 1,
        }
    }

    #[test]
    fn the_overlay_shows_jitter_for_standard_streams_and_not_for_lab_ones() {
        assert_eq!(
            overlay_text(&stats(Some(1.234)), 25.0, false),
            "25.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter 1.23 ms\nframes dropped 1"
        );
        assert_eq!(
            overlay_text(&stats(None), 20.0, true),
            "PAUSED  20.0 fps  2000 kbit/s\nlost 1 of 100 (1.00%)  jitter n/a\nframes dropped 1"
        );
    }

    #[test]
    fn the_summary_and_its_json_say_lab_jitter_is_not_available() {
        let summary = |jitter_ms| Summary {
            stats: stats(jitter_ms),
            first_frame: Some(Duration::from_millis(42)),
            transport_tcp: false,
        };
        let standard = summary(Some(0.5));
        assert!(summary_text(&standard).contains("\njitter: 0.50 ms\n"));
        assert!(summary_json(&standard).contains("\"jitter_ms\": 0.500,"));
        let lab = summary(None);
        assert!(summary_text(&lab).contains("\njitter: n/a\n"));
        assert!(summary_json(&lab).contains("\"jitter_ms\": null,"));
    }
}
