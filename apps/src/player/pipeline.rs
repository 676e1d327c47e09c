//! The player's pipeline: received RTP into `appsrc`, the loss monitor, the depayloader,
//! the decoder, the statistics overlay and the video sink. RTCP from the server goes into
//! the monitor's `rtcp_sink`; the monitor's receiver reports come out of an `appsink`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use gst::prelude::*;

use crate::rtsp::Dialect;

/// The stream's statistics, read from the elements.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    pub frames_shown: u64,
    pub packets_received: u64,
    pub packets_expected: u64,
    pub packets_lost: i64,
    /// Interarrival jitter (RFC 3550 A.8); `None` for lab streams, whose RTP timestamps
    /// are Unix seconds rather than a media clock.
    pub jitter_ms: Option<f64>,
    pub bitrate: u64,
    pub frames_dropped: u64,
    /// End to end latency of the frames shown (capture to display), mean and largest,
    /// when the sender's reports map its RTP time to wall-clock time; `None` before the
    /// first sender report.
    pub latency_ms: Option<(f64, f64)>,
}

impl Stats {
    pub fn loss_rate(&self) -> f64 {
        if self.packets_expected == 0 {
            0.0
        } else {
            self.packets_lost.max(0) as f64 / self.packets_expected as f64
        }
    }
}

pub struct Player {
    pub pipeline: gst::Pipeline,
    rtp: gst_app::AppSrc,
    rtcp_in: gst_app::AppSrc,
    monitor: gst::Element,
    depay: gst::Element,
    overlay: gst::Element,
    frames: Arc<AtomicU64>,
    latency: Arc<Mutex<Latency>>,
}

/// Capture-to-display latency from the sender's reports (RFC 3550 6.4.1: an SR pairs an
/// NTP wall-clock time with the RTP time of the same instant). Meaningful when the
/// sender's and our clocks agree (the same machine, or both synchronised by NTP).
#[derive(Debug, Default)]
struct Latency {
    /// The latest sender report's (NTP time, RTP time).
    sender_clock: Option<(u64, u32)>,
    /// RTP time of the last frame the depayloader completed (its marker packet).
    last_frame_rtp: Option<u32>,
    sum_ms: f64,
    max_ms: f64,
    count: u64,
}

/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

impl Latency {
    /// A frame with RTP time `rtp` shown now.
    fn frame_shown(&mut self, rtp: u32, now_unix: f64) {
        let Some((ntp, sr_rtp)) = self.sender_clock else {
            return;
        };
        let sr_unix =
            (ntp >> 32) as f64 - NTP_UNIX_OFFSET + (ntp & 0xFFFF_FFFF) as f64 / 4_294_967_296.0;
        let since_sr = f64::from(rtp.wrapping_sub(sr_rtp) as i32) / 90_000.0;
        let ms = (now_unix - (sr_unix + since_sr)) * 1000.0;
        // A clock step or a stale report says nothing about this frame.
        if !(-1000.0..60_000.0).contains(&ms) {
            return;
        }
        self.sum_ms += ms;
        self.max_ms = if self.count == 0 {
            ms
        } else {
            self.max_ms.max(ms)
        };
        self.count += 1;
    }

    fn figures(&self) -> Option<(f64, f64)> {
        (self.count > 0).then(|| (self.sum_ms / self.count as f64, self.max_ms))
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Player {
    /// `video_sink`: `autovideosink` or, headless, `fakesink`.
    pub fn new(
        video_sink: &str,
        overlay: bool,
        on_frame: impl Fn(u64) + Send + Sync + 'static,
    ) -> Result<Player> {
        let description = format!(
            "appsrc name=rtp is-live=true do-timestamp=true format=time \
               caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26\" \
             ! rtcplossmonitor name=monitor ! rtpmjpegdepay name=depay ! jpegdec ! videoconvert \
             ! textoverlay name=overlay valignment=top halignment=left line-alignment=left \
               font-desc=\"Monospace 10\" \
               shaded-background=true silent={} \
             ! {video_sink} name=sink sync=false \
             appsrc name=rtcp_in is-live=true format=time caps=application/x-rtcp ! monitor.rtcp_sink \
             monitor.rtcp_src ! appsink name=rtcp_out sync=false async=false",
            !overlay
        );
        let pipeline = gst::parse::launch(&description)
            .context("building the pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow!("not a pipeline"))?;
        let get = |name: &str| {
            pipeline
                .by_name(name)
                .ok_or_else(|| anyhow!("no {name} in the pipeline"))
        };
        let rtp = get("rtp")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow!("rtp is not an appsrc"))?;
        let rtcp_in = get("rtcp_in")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| anyhow!("not an appsrc"))?;
        let frames = Arc::new(AtomicU64::new(0));
        let latency: Arc<Mutex<Latency>> = Arc::default();
        let counter = frames.clone();
        let shown = latency.clone();
        let sink_pad = get("sink")?
            .static_pad("sink")
            .or_else(|| get("overlay").ok()?.static_pad("src"))
            .ok_or_else(|| anyhow!("no sink pad"))?;
        sink_pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
            if let Ok(mut latency) = shown.lock()
                && let Some(rtp) = latency.last_frame_rtp
            {
                latency.frame_shown(rtp, unix_now());
            }
            on_frame(n);
            gst::PadProbeReturn::Ok
        });
        // The RTP time of each frame the depayloader completes: its marker packet's.
        let completed = latency.clone();
        let depay_sink = get("depay")?
            .static_pad("sink")
            .ok_or_else(|| anyhow!("no depayloader sink pad"))?;
        depay_sink.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer()
                && let Ok(map) = buffer.map_readable()
                && map.len() >= 12
                && map[1] & 0x80 != 0
                && let Ok(mut latency) = completed.lock()
            {
                latency.last_frame_rtp = Some(u32::from_be_bytes([map[4], map[5], map[6], map[7]]));
            }
            gst::PadProbeReturn::Ok
        });
        Ok(Player {
            monitor: get("monitor")?,
            depay: get("depay")?,
            overlay: get("overlay")?,
            pipeline,
            rtp,
            rtcp_in,
            frames,
            latency,
        })
    }

    /// Where the monitor's RTCP receiver reports go.
    pub fn on_rtcp_out(&self, send: impl Fn(&[u8]) + Send + 'static) -> Result<()> {
        let sink = self
            .pipeline
            .by_name("rtcp_out")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| anyhow!("no rtcp_out appsink"))?;
        crate::appsink::on_bytes(&sink, send);
        Ok(())
    }

    pub fn push_rtp(&self, packet: &[u8]) {
        crate::appsink::push_copy(&self.rtp, packet);
    }

    pub fn push_rtcp(&self, packet: &[u8]) {
        crate::appsink::push_copy(&self.rtcp_in, packet);
    }

    /// Hands every frame the depayloader outputs (a whole JPEG) to `take`, in the
    /// streaming thread.
    pub fn on_frame_out(&self, take: impl Fn(&[u8]) + Send + Sync + 'static) -> Result<()> {
        let pad = self
            .depay
            .static_pad("src")
            .ok_or_else(|| anyhow!("no depayloader src pad"))?;
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer()
                && let Ok(map) = buffer.map_readable()
            {
                take(map.as_slice());
            }
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }

    /// Hands key presses in the video window (GstNavigation events) to `key`, by name
    /// (`space`, `Left`, `Right`, `s`, `q`, `Escape`, ...).
    pub fn on_window_key(&self, key: impl Fn(&str) + Send + Sync + 'static) -> Result<()> {
        let pad = self
            .overlay
            .static_pad("src")
            .ok_or_else(|| anyhow!("no overlay src pad"))?;
        pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
            if let Some(event) = info.event()
                && event.type_() == gst::EventType::Navigation
                && let Some(s) = event.structure()
                && s.get::<&str>("event").is_ok_and(|e| e == "key-press")
                && let Ok(name) = s.get::<&str>("key")
            {
                key(name);
            }
            gst::PadProbeReturn::Ok
        });
        Ok(())
    }

    pub fn set_overlay_text(&self, text: &str) {
        self.overlay.set_property("text", text);
    }

    pub fn set_overlay_visible(&self, visible: bool) {
        self.overlay.set_property("silent", !visible);
    }

    /// The statistics of a stream from a server speaking `dialect`.
    pub fn stats(&self, dialect: Dialect) -> Stats {
        let mut stats = Stats {
            frames_shown: self.frames.load(Ordering::Relaxed),
            frames_dropped: self.depay.property::<u64>("frames-dropped"),
            ..Stats::default()
        };
        let all = self.monitor.property::<gst::Structure>("stats");
        let Ok(sources) = all.get::<gst::Array>("sources") else {
            return stats;
        };
        // The stream's source: the one with the most packets (a server has one).
        let best = sources
            .iter()
            .filter_map(|v| v.get::<gst::Structure>().ok())
            .max_by_key(|s| s.get::<u64>("packets-received").unwrap_or(0));
        if let Some(s) = best {
            stats.packets_received = s.get::<u64>("packets-received").unwrap_or(0);
            stats.packets_expected = s.get::<u64>("packets-expected").unwrap_or(0);
            stats.packets_lost = s.get::<i64>("packets-lost").unwrap_or(0);
            stats.jitter_ms = match dialect {
                Dialect::Standard => Some(s.get::<f64>("jitter-ms").unwrap_or(0.0)),
                Dialect::Lab => None,
            };
            stats.bitrate = s.get::<u64>("bitrate").unwrap_or(0);
            if let Ok(mut latency) = self.latency.lock() {
                if let (Ok(ntp), Ok(rtp)) =
                    (s.get::<u64>("sr-ntp-time"), s.get::<u32>("sr-rtp-time"))
                    && dialect == Dialect::Standard
                {
                    latency.sender_clock = Some((ntp, rtp));
                }
                stats.latency_ms = latency.figures();
            }
        }
        stats
    }
}
