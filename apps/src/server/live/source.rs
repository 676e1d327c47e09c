//! Running a live path's pipeline: the user's gst-launch description, then the server's
//! `rtpmjpegpay` and an `appsink`. Each image is payloaded once, whatever the number of
//! viewers; a probe on the payloader's input keeps the whole JPEG (for lab clients) beside
//! the packets made from it. The pipeline runs on the system clock, so a frame's capture
//! time (its running time plus the base time) is a CLOCK_MONOTONIC time the sessions
//! map to RTP time and the sender reports map to wall-clock time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use gst::prelude::*;

use super::LiveFrame;
use crate::server::media::Packet;

/// Something feeding a live path; dropping it stops it.
pub trait Running: Send {
    /// The upstream's loss and jitter, for what relays RTP.
    fn upstream(&self) -> Option<Upstream> {
        None
    }
}

/// A running pipeline. Dropping it stops it.
pub struct Runner {
    pipeline: gst::Pipeline,
    bus_thread: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

/// What the pipeline reports, from its threads.
pub trait Events: Send + Sync + 'static {
    /// A whole frame, payloaded.
    fn frame(&self, frame: LiveFrame);
    /// The pipeline stopped: an error (GStreamer's message) or the end of its stream.
    fn stopped(&self, why: String);
}

/// The system clock's time now (CLOCK_MONOTONIC), on which frames are timed.
pub fn clock_now_ns() -> u64 {
    gst::SystemClock::obtain().time().nseconds()
}

/// Names of the elements the server appends.
const PAY: &str = "mjpeg_rtsp_pay";
const SINK: &str = "mjpeg_rtsp_sink";

/// Builds `description ! rtpmjpegpay ! appsink`, checking what can be checked before it
/// runs: that the description parses and that its output can be JPEG. The description is
/// parsed with the server's elements appended, so it may end with caps
/// (`v4l2src ! image/jpeg,width=1280`), as in gst-launch.
fn build(description: &str, mtu: u32) -> Result<(gst::Pipeline, gst::Element, gst_app::AppSink)> {
    let full = format!("{description} ! rtpmjpegpay name={PAY} mtu={mtu} ! appsink name={SINK}");
    // What messages show of the description: without any URL's credentials.
    let description = &super::relay::redact_text(description);
    let element = gst::parse::launch(&full).map_err(|e| {
        match e.kind::<gst::ParseError>() {
            Some(gst::ParseError::Link) => anyhow!(
                "the pipeline's output is not JPEG images ({e}); end the description with jpegenc (after video/x-raw,format=I420), or ask a camera for image/jpeg"
            ),
            _ => anyhow!(
                "the pipeline description does not parse: {e} (check it with gst-launch-1.0 {description} ! fakesink)"
            ),
        }
    })?;
    let pipeline = element
        .downcast::<gst::Pipeline>()
        .map_err(|_| anyhow!("the description did not make a pipeline"))?;
    let pay = pipeline
        .by_name(PAY)
        .ok_or_else(|| anyhow!("the description already names an element {PAY}"))?;
    let sink = pipeline
        .by_name(SINK)
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| anyhow!("the description already names an element {SINK}"))?;
    sink.set_sync(false);
    sink.set_max_buffers(256);
    // Frames are timed on the system clock (CLOCK_MONOTONIC), whatever the elements offer.
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    Ok((pipeline, pay, sink))
}

impl Runner {
    /// Starts the pipeline; frames and its end go to `events`.
    pub fn start(description: &str, mtu: u32, events: Arc<dyn Events>) -> Result<Runner> {
        let (pipeline, pay, sink) = build(description, mtu)?;
        // The JPEG the payloader is about to cut, with its capture time: the packets that
        // reach the appsink next are made from it, on the same thread.
        let pending: Arc<Mutex<Option<(gst::Buffer, u64)>>> = Arc::default();
        let pay_sink = pay
            .static_pad("sink")
            .ok_or_else(|| anyhow!("rtpmjpegpay has no sink pad"))?;
        {
            let pending = pending.clone();
            let element = pay.clone();
            pay_sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let Some(buffer) = info.buffer() {
                    let capture = capture_ns(pad, &element, buffer);
                    *lock(&pending) = Some((buffer.clone(), capture));
                }
                gst::PadProbeReturn::Ok
            });
        }
        let mut packets: Vec<Packet> = Vec::new();
        let frame_events = events.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(buffer) = sample.buffer() else {
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let Ok(packet) = Packet::new(buffer) else {
                        packets.clear();
                        return Ok(gst::FlowSuccess::Ok);
                    };
                    let last = packet.marker_and_type() & 0x80 != 0;
                    packets.push(packet);
                    if last {
                        let packets = std::mem::take(&mut packets);
                        if let Some((jpeg, capture_ns)) = lock(&pending).take()
                            && let Some(frame) = LiveFrame::new(packets, &jpeg, capture_ns)
                        {
                            frame_events.frame(frame);
                        }
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let bus = pipeline
            .bus()
            .ok_or_else(|| anyhow!("the pipeline has no bus"))?;
        let change = match pipeline.set_state(gst::State::Playing) {
            Ok(change) => change,
            Err(_) => {
                // GStreamer's own message says why (a missing or busy device...).
                let why = bus
                    .pop_filtered(&[gst::MessageType::Error])
                    .and_then(|m| match m.view() {
                        gst::MessageView::Error(e) => Some(error_text(e)),
                        _ => None,
                    })
                    .unwrap_or_else(|| "the pipeline did not start".to_string());
                stop_elsewhere(pipeline);
                bail!(
                    "{} (is the device there and free? try the description alone: gst-launch-1.0 {} ! fakesink)",
                    super::relay::redact_text(&why),
                    super::relay::redact_text(description)
                );
            }
        };
        // A live source paces itself; any other (a file, a test source without
        // is-live=true) is paced by its timestamps instead of running flat out.
        if change != gst::StateChangeSuccess::NoPreroll {
            sink.set_sync(true);
        }
        // Messages posted meanwhile wait on the bus for the watcher.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let bus_thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("live-bus".into())
                .spawn(move || watch(&bus, &stop, events.as_ref()))
        };
        let bus_thread = match bus_thread {
            Ok(thread) => thread,
            Err(e) => {
                stop_elsewhere(pipeline);
                return Err(e.into());
            }
        };
        Ok(Runner {
            pipeline,
            bus_thread: Some(bus_thread),
            stop,
        })
    }
}

/// An error message as a user reads it: GStreamer's text, with the element's detail when
/// the text alone says little.
fn error_text(e: &gst::message::Error) -> String {
    match e.debug() {
        Some(debug) if e.error().message().len() < 40 => format!("{} ({debug})", e.error()),
        _ => e.error().to_string(),
    }
}

/// Reports the pipeline's first error or end of stream, then returns.
fn watch(bus: &gst::Bus, stop: &std::sync::atomic::AtomicBool, events: &dyn Events) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Acquire) {
        let Some(message) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        ) else {
            continue;
        };
        if stop.load(Ordering::Acquire) {
            return;
        }
        let why = match message.view() {
            gst::MessageView::Error(e) => error_text(e),
            _ => "the pipeline's stream ended".to_string(),
        };
        events.stopped(why);
        return;
    }
}

impl Running for Runner {}

/// The input of a path fed with RTP (a relay, a publisher): packets in, through
/// `rtcplossmonitor` (the upstream's loss and jitter, receiver reports back) and
/// `rtpmjpegdepay` (every RFC 2435 variant into plain JPEG), then the path's payloader.
#[derive(Clone)]
pub struct RtpInput {
    rtp: gst_app::AppSrc,
    rtcp: gst_app::AppSrc,
    monitor: gst::Element,
    rtcp_out: gst_app::AppSink,
}

/// What the upstream stream looks like from here (`rtcplossmonitor`'s figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Upstream {
    pub packets_received: u64,
    pub packets_lost: i64,
    /// Of the packets expected so far, 0..1.
    pub loss: f64,
    pub jitter_ms: f64,
}

impl RtpInput {
    /// One RTP packet from upstream.
    pub fn push_rtp(&self, packet: &[u8]) {
        crate::appsink::push_copy(&self.rtp, packet);
    }

    /// One compound RTCP packet from upstream (its sender reports).
    pub fn push_rtcp(&self, packet: &[u8]) {
        crate::appsink::push_copy(&self.rtcp, packet);
    }

    /// Where our receiver reports about the upstream go.
    pub fn on_rtcp_out(&self, send: impl Fn(&[u8]) + Send + 'static) {
        crate::appsink::on_bytes(&self.rtcp_out, send);
    }

    /// The upstream's loss and jitter so far (its first source).
    pub fn upstream(&self) -> Upstream {
        let stats = self.monitor.property::<gst::Structure>("stats");
        let Ok(sources) = stats.get::<gst::Array>("sources") else {
            return Upstream::default();
        };
        let Some(first) = sources.iter().find_map(|v| v.get::<gst::Structure>().ok()) else {
            return Upstream::default();
        };
        let received = first.get::<u64>("packets-received").unwrap_or(0);
        let lost = first.get::<i64>("packets-lost").unwrap_or(0);
        let expected = first.get::<u64>("packets-expected").unwrap_or(0);
        Upstream {
            packets_received: received,
            packets_lost: lost,
            loss: if expected > 0 {
                lost.max(0) as f64 / expected as f64
            } else {
                0.0
            },
            jitter_ms: first.get::<f64>("jitter-ms").unwrap_or(0.0),
        }
    }
}

/// The description of an RTP input: the RTCP branches first, so the server's payloader
/// and appsink are appended to the RTP branch's depayloader.
const RTP_INPUT: &str = "appsrc name=mjpeg_rtsp_rtcp_in is-live=true format=time caps=application/x-rtcp \
     ! mjpeg_rtsp_monitor.rtcp_sink \
   mjpeg_rtsp_monitor.rtcp_src ! appsink name=mjpeg_rtsp_rtcp_out sync=false async=false \
   appsrc name=mjpeg_rtsp_rtp is-live=true do-timestamp=true format=time \
     max-bytes=8000000 leaky-type=downstream \
     caps=\"application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26\" \
     ! rtcplossmonitor name=mjpeg_rtsp_monitor ! rtpmjpegdepay";

impl Runner {
    /// A path's pipeline fed with RTP/JPEG by the caller (a relay, a publisher).
    pub fn start_rtp_input(mtu: u32, events: Arc<dyn Events>) -> Result<(Runner, RtpInput)> {
        let runner = Runner::start(RTP_INPUT, mtu, events)?;
        let get = |name: &str| {
            runner
                .pipeline
                .by_name(name)
                .ok_or_else(|| anyhow!("no {name} in the input pipeline"))
        };
        let appsrc = |name: &str| {
            get(name)?
                .downcast::<gst_app::AppSrc>()
                .map_err(|_| anyhow!("{name} is not an appsrc"))
        };
        let input = RtpInput {
            rtp: appsrc("mjpeg_rtsp_rtp")?,
            rtcp: appsrc("mjpeg_rtsp_rtcp_in")?,
            monitor: get("mjpeg_rtsp_monitor")?,
            rtcp_out: get("mjpeg_rtsp_rtcp_out")?
                .downcast::<gst_app::AppSink>()
                .map_err(|_| anyhow!("mjpeg_rtsp_rtcp_out is not an appsink"))?,
        };
        Ok((runner, input))
    }
}

/// The input of a path fed with whole JPEG images (an HTTP multipart camera): each one
/// is timed as it is pushed, then cut by the path's payloader.
#[derive(Clone)]
pub struct JpegInput {
    jpeg: gst_app::AppSrc,
}

impl JpegInput {
    pub fn push_jpeg(&self, jpeg: Vec<u8>) {
        let _ = self.jpeg.push_buffer(gst::Buffer::from_mut_slice(jpeg));
    }
}

const JPEG_INPUT: &str = "appsrc name=mjpeg_rtsp_jpeg is-live=true do-timestamp=true format=time \
     caps=image/jpeg max-buffers=4 leaky-type=downstream";

impl Runner {
    /// A path's pipeline fed with JPEG images by the caller.
    pub fn start_jpeg_input(mtu: u32, events: Arc<dyn Events>) -> Result<(Runner, JpegInput)> {
        let runner = Runner::start(JPEG_INPUT, mtu, events)?;
        let jpeg = runner
            .pipeline
            .by_name("mjpeg_rtsp_jpeg")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| anyhow!("no appsrc in the JPEG input pipeline"))?;
        Ok((runner, JpegInput { jpeg }))
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(thread) = self.bus_thread.take() {
            let _ = thread.join();
        }
    }
}

/// The clock time a buffer was captured at: its running time plus the base time, or now
/// when it has no timestamp.
fn capture_ns(pad: &gst::Pad, element: &gst::Element, buffer: &gst::BufferRef) -> u64 {
    let running = buffer.pts().and_then(|pts| {
        let event = pad.sticky_event::<gst::event::Segment>(0)?;
        let segment = event.segment().downcast_ref::<gst::ClockTime>()?.clone();
        segment.to_running_time(pts)
    });
    match (running, element.base_time()) {
        (Some(running), Some(base)) => (base + running).nseconds(),
        _ => clock_now_ns(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `description` until its first frame: the frame's size, or the reason it cannot
/// be served (GStreamer's message and what to change).
pub fn probe(description: &str, mtu: u32, timeout: Duration) -> Result<(u32, u32)> {
    struct First(std::sync::mpsc::SyncSender<Result<(u32, u32), String>>);
    impl Events for First {
        fn frame(&self, frame: LiveFrame) {
            let _ = self.0.try_send(Ok((frame.width, frame.height)));
        }
        fn stopped(&self, why: String) {
            let _ = self.0.try_send(Err(why));
        }
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(4);
    let runner = Runner::start(description, mtu, Arc::new(First(tx)))?;
    let first = rx.recv_timeout(timeout);
    drop(runner);
    match first {
        Ok(Ok(size)) => Ok(size),
        Ok(Err(why)) => Err(anyhow!("{why}")),
        Err(_) => bail!("no frame within {timeout:?}"),
    }
}

/// Stops a pipeline that failed to start, on a thread of its own: the caller holds the
/// path's lock, which the pipeline's streaming thread may be waiting for.
fn stop_elsewhere(pipeline: gst::Pipeline) {
    let _ = std::thread::Builder::new()
        .name("live-stop".into())
        .spawn(move || {
            let _ = pipeline.set_state(gst::State::Null);
        });
}
