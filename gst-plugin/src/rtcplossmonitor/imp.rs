use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, TryLockError};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::stats::{STATS_DOC, source_structure};
use super::timers::{Timer, Timers};
use crate::lock;
use crate::rtcp::{LossAlarm, Session, interval, ntp};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtcplossmonitor",
        gst::DebugColorFlags::empty(),
        Some("RTP loss monitor and RTCP receiver reports"),
    )
});

const DEFAULT_INTERVAL_MS: u32 = 1000;
const DEFAULT_LOSS_THRESHOLD: f64 = 0.0;
const DEFAULT_REDUCED_MINIMUM: bool = false;
const DEFAULT_SESSION_BANDWIDTH: u32 = 0;

#[derive(Debug, Clone)]
struct Settings {
    interval_ms: u32,
    loss_threshold: f64,
    reduced_minimum: bool,
    session_bandwidth: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval_ms: DEFAULT_INTERVAL_MS,
            loss_threshold: DEFAULT_LOSS_THRESHOLD,
            reduced_minimum: DEFAULT_REDUCED_MINIMUM,
            session_bandwidth: DEFAULT_SESSION_BANDWIDTH,
        }
    }
}

struct State {
    session: Session,
    clock_rate: Option<u32>,
    segment: gst::FormattedSegment<gst::ClockTime>,
    rtp_errors: u64,
    /// Which sources lose more than `loss-threshold`.
    alarm: LossAlarm,
}

impl State {
    fn new(ssrc: u32, cname: &str) -> State {
        State {
            session: Session::new(ssrc, cname),
            clock_rate: None,
            segment: gst::FormattedSegment::new(),
            rtp_errors: 0,
            alarm: LossAlarm::default(),
        }
    }
}

/// What went out on `rtcp_src`. Whoever pushes there holds its lock for the push, so that
/// nothing follows the BYE and EOS.
#[derive(Debug, Default)]
struct RtcpOut {
    /// Whether rtcp_src got its stream-start, caps and segment.
    ready: bool,
    /// The BYE and EOS went out: nothing more until a flush.
    ended: bool,
}

pub struct RtcpLossMonitor {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    rtcp_sinkpad: gst::Pad,
    rtcp_srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// loss-report messages and RTCP reports, on the element's clock.
    timers: Timers,
    rtcp_out: Mutex<RtcpOut>,
    /// The RTP stream reached EOS (until a flush): the reports end with a BYE.
    eos: AtomicBool,
    /// The origin of the element's monotonic clock (RTCP timing, DLSR).
    epoch: Instant,
}

/// A random number for SSRCs and the RTCP interval's randomisation: std's randomly keyed
/// SipHash of the time.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish()
}

fn default_cname() -> String {
    format!(
        "{}@{}",
        glib::user_name().to_string_lossy(),
        glib::host_name()
    )
}

impl RtcpLossMonitor {
    fn monotonic_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// A packet's arrival time: its running time (DTS, else PTS) as rtpsession takes it,
    /// else the clock's running time now, else the element's monotonic clock.
    fn arrival_ns(&self, state: &State, buffer: &gst::BufferRef) -> u64 {
        buffer
            .dts_or_pts()
            .and_then(|t| state.segment.to_running_time(t))
            .or_else(|| self.obj().current_running_time())
            .map_or_else(|| self.monotonic_ns(), |t| t.nseconds())
    }

    fn observe(&self, buffer: &gst::BufferRef) {
        // A packet shorter than an RTP header is copied as far as it goes, and counted as
        // an error by the session (copy_to_slice asserts when asked for more than there is).
        let mut header = [0u8; 12];
        let n = buffer.size().min(header.len());
        if buffer.copy_to_slice(0, &mut header[..n]).is_err() {
            lock(&self.state).rtp_errors += 1;
            return;
        }
        let mut state = lock(&self.state);
        let arrival = self.arrival_ns(&state, buffer);
        let clock_rate = state.clock_rate;
        if let Err(e) = state
            .session
            .on_rtp(&header[..n], buffer.size(), arrival, clock_rate)
        {
            state.rtp_errors += 1;
            gst::warning!(CAT, imp = self, "not counted: {e}");
        }
    }

    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        self.observe(&buffer);
        self.srcpad.push(buffer)
    }

    fn sink_chain_list(&self, list: gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        for buffer in list.iter() {
            self.observe(buffer);
        }
        self.srcpad.push_list(list)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let rate = c
                    .caps()
                    .structure(0)
                    .and_then(|s| s.get::<i32>("clock-rate").ok())
                    .and_then(|r| u32::try_from(r).ok())
                    .filter(|&r| r > 0);
                if rate.is_none() {
                    gst::warning!(CAT, imp = self, "no clock-rate in the caps: no jitter");
                }
                lock(&self.state).clock_rate = rate;
            }
            gst::EventView::Segment(s) => {
                if let Ok(segment) = s.segment().clone().downcast::<gst::ClockTime>() {
                    lock(&self.state).segment = segment;
                }
            }
            gst::EventView::Eos(_) => {
                // RFC 3550 6.6: a receiver leaving says BYE. A timed report may be in the
                // middle of a push (even blocked, a sink waiting for preroll): then it
                // sends the BYE and EOS itself as it lets go, and the EOS goes on here.
                self.eos.store(true, Ordering::SeqCst);
                let out = match self.rtcp_out.try_lock() {
                    Ok(out) => Some(out),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                };
                if let Some(mut out) = out {
                    self.finish_rtcp(&mut out);
                }
            }
            // rtcp_src is flushed only to clear its EOS: flushing an async sink there
            // would hold the seek until the next report prerolls it.
            gst::EventView::FlushStart(_) if self.eos.load(Ordering::SeqCst) => {
                self.rtcp_srcpad.push_event(event.clone());
            }
            // The stream runs again: reports resume, and a later EOS says BYE again.
            gst::EventView::FlushStop(_) if self.eos.swap(false, Ordering::SeqCst) => {
                let mut out = lock(&self.rtcp_out);
                out.ended = false;
                self.rtcp_srcpad.push_event(event.clone());
                if out.ready {
                    self.rtcp_srcpad.push_event(gst::event::Segment::new(
                        &gst::FormattedSegment::<gst::ClockTime>::new(),
                    ));
                }
            }
            _ => {}
        }
        self.srcpad.push_event(event)
    }

    fn rtcp_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Ok(map) = buffer.map_readable() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let now = self.monotonic_ns();
        let mut state = lock(&self.state);
        let result = state.session.on_rtcp(&map, now, ntp::now());
        // Whether each BYE is from a source whose RTP came here: on a multicast group,
        // other receivers say BYE too, and only the stream's own sender ends it.
        let result = result.map(|events| {
            events
                .byes
                .into_iter()
                .map(|(ssrc, reason)| (ssrc, reason, state.session.heard_rtp_from(ssrc)))
                .collect::<Vec<_>>()
        });
        drop(state);
        match result {
            Ok(byes) => {
                for (ssrc, reason, sender) in byes {
                    gst::info!(
                        CAT,
                        imp = self,
                        "BYE from SSRC {ssrc:#010x} ({}): {reason:?}",
                        if sender {
                            "the stream's sender"
                        } else {
                            "not a sender here"
                        }
                    );
                    let s = gst::Structure::builder("rtcp-bye")
                        .field("ssrc", ssrc)
                        .field("sender", sender)
                        .field("reason", reason.unwrap_or_default())
                        .build();
                    let _ = self
                        .obj()
                        .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
                }
            }
            Err(e) => gst::warning!(CAT, imp = self, "dropping RTCP packet: {e}"),
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// The statistics as a structure named `name`.
    fn stats_structure(&self, name: &str) -> gst::Structure {
        let state = lock(&self.state);
        let sources: Vec<glib::SendValue> = state
            .session
            .sources()
            .iter()
            .map(|s| source_structure(s).to_send_value())
            .collect();
        gst::Structure::builder(name)
            .field("ssrc", state.session.ssrc)
            .field("rtcp-packets", state.session.rtcp_packets())
            .field("rtcp-errors", state.session.rtcp_errors())
            .field("rtp-errors", state.rtp_errors)
            .field("sources", gst::Array::from_values(sources))
            .build()
    }

    /// Every `interval`: ends the statistics interval, posts `loss-report`, checks the
    /// threshold.
    fn report(&self) {
        if self.eos.load(Ordering::SeqCst) {
            return;
        }
        let threshold = lock(&self.settings).loss_threshold;
        let crossings = {
            let mut state = lock(&self.state);
            let State { session, alarm, .. } = &mut *state;
            session.end_interval();
            alarm.check(session.sources(), threshold)
        };
        let s = self.stats_structure("loss-report");
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
        for c in crossings {
            let (ssrc, loss) = (c.ssrc, c.loss_percent);
            if c.above {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("SSRC {ssrc:#010x}: {loss:.1}% packet loss in the last interval, above the {threshold}% threshold")
                );
            } else {
                gst::element_imp_info!(
                    self,
                    gst::StreamError::Failed,
                    ("SSRC {ssrc:#010x}: packet loss back to {loss:.1}%, under the {threshold}% threshold")
                );
            }
        }
    }

    /// Sends one receiver report on `rtcp_src`; after the RTP stream's EOS, the BYE and
    /// EOS instead, once.
    fn send_rtcp(&self) {
        {
            let mut out = lock(&self.rtcp_out);
            if !self.eos.load(Ordering::SeqCst) && !out.ended {
                self.push_report(&mut out, false);
            }
            self.finish_rtcp(&mut out);
        }
        // An EOS that came during the push left its BYE to us.
        if self.eos.load(Ordering::SeqCst) {
            self.finish_rtcp(&mut lock(&self.rtcp_out));
        }
    }

    /// At the RTP stream's end, the last report with our BYE, then EOS on `rtcp_src`.
    fn finish_rtcp(&self, out: &mut RtcpOut) {
        if !self.eos.load(Ordering::SeqCst) || out.ended {
            return;
        }
        self.push_report(out, true);
        self.rtcp_srcpad.push_event(gst::event::Eos::new());
        out.ended = true;
        gst::debug!(CAT, imp = self, "sent BYE and EOS on rtcp_src");
    }

    /// Pushes a compound RR + SDES (+ BYE) on `rtcp_src`, after its stream-start, caps
    /// and segment the first time.
    fn push_report(&self, out: &mut RtcpOut, bye: bool) {
        let now = self.monotonic_ns();
        let (report, ssrc) = {
            let mut state = lock(&self.state);
            let session = &mut state.session;
            let report = if bye {
                session.build_bye(now, None)
            } else {
                session.build_report(now)
            };
            (report, session.ssrc)
        };
        let report = match report {
            Ok(r) => r,
            Err(e) => {
                gst::error!(CAT, imp = self, "could not build a report: {e}");
                return;
            }
        };
        if !out.ready {
            out.ready = true;
            let id = format!("rtcplossmonitor-{ssrc:08x}");
            self.rtcp_srcpad
                .push_event(gst::event::StreamStart::new(&id));
            self.rtcp_srcpad
                .push_event(gst::event::Caps::new(&gst::Caps::new_empty_simple(
                    "application/x-rtcp",
                )));
            self.rtcp_srcpad
                .push_event(gst::event::Segment::new(&gst::FormattedSegment::<
                    gst::ClockTime,
                >::new()));
        }
        let mut buffer = gst::Buffer::from_mut_slice(report);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(self.obj().current_running_time());
        }
        match self.rtcp_srcpad.push(buffer) {
            Ok(_) | Err(gst::FlowError::NotLinked) | Err(gst::FlowError::Flushing) => {}
            Err(e) => gst::warning!(CAT, imp = self, "sending RTCP: {e:?}"),
        }
    }

    /// The time to the next receiver report (RFC 3550 6.3).
    fn rtcp_interval(&self, initial: bool) -> gst::ClockTime {
        let settings = lock(&self.settings).clone();
        let bandwidth =
            (settings.session_bandwidth > 0).then(|| f64::from(settings.session_bandwidth));
        let input =
            lock(&self.state)
                .session
                .interval_input(bandwidth, settings.reduced_minimum, initial);
        let random = (random_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let seconds = interval::randomized(&input, random);
        // Never reached with the inputs above; a bad number must not make a busy loop.
        let seconds = if seconds.is_finite() && seconds > 0.0 {
            seconds
        } else {
            5.0
        };
        gst::ClockTime::from_nseconds((seconds * 1e9) as u64)
    }

    fn loss_report_interval(&self) -> Option<gst::ClockTime> {
        let ms = lock(&self.settings).interval_ms;
        (ms > 0).then(|| gst::ClockTime::from_mseconds(u64::from(ms)))
    }

    /// The timers run from PAUSED on the element's clock, else on the system clock (that a
    /// pipeline hands out only on the way to PLAYING): reports go out from PAUSED as they
    /// always did, and follow the pipeline's clock once it comes (see `set_clock`).
    fn start_timers(&self) {
        let weak = self.obj().downgrade();
        self.timers.start(
            || self.obj().clock().unwrap_or_else(gst::SystemClock::obtain),
            Arc::new(move |timer, id| {
                if let Some(element) = weak.upgrade() {
                    element.imp().on_timer(timer, id);
                }
            }),
        );
        self.timers
            .arm_within(Timer::Rtcp, self.rtcp_interval(true));
        if let Some(every) = self.loss_report_interval() {
            self.timers.arm_within(Timer::LossReport, every);
        }
    }

    /// A timer went off, on the clock's thread.
    fn on_timer(&self, timer: Timer, id: &gst::ClockId) {
        if !self.timers.take_fired(timer, id) {
            return;
        }
        match timer {
            Timer::LossReport => {
                self.report();
                let every = self.loss_report_interval();
                self.timers.rearm(timer, |deadline, now| {
                    let every = every?;
                    let next = deadline.saturating_add(every);
                    // Late (a stalled clock thread): the next one a whole interval on.
                    Some(if next < now {
                        now.saturating_add(every)
                    } else {
                        next
                    })
                });
            }
            // A push may block (a sink prerolling), and the clock's thread is shared by
            // every element on that clock: the report goes out from GStreamer's thread pool.
            Timer::Rtcp => self.obj().call_async(|element| {
                let imp = element.imp();
                imp.send_rtcp();
                let delay = imp.rtcp_interval(false);
                imp.timers
                    .rearm(Timer::Rtcp, |_, now| Some(now.saturating_add(delay)));
            }),
        }
    }

    /// `interval` changed: a shorter one takes effect now, a longer one after the report
    /// already due.
    fn loss_report_interval_changed(&self) {
        match self.loss_report_interval() {
            Some(every) => self.timers.arm_within(Timer::LossReport, every),
            None => self.timers.disarm(Timer::LossReport),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtcpLossMonitor {
    const NAME: &'static str = "GstRtcpLossMonitor";
    type Type = super::RtcpLossMonitor;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let template = |name| klass.pad_template(name).expect("pad template");
        let sinkpad = gst::Pad::builder_from_template(&template("sink"))
            .chain_function(|_, parent, buffer| {
                RtcpLossMonitor::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .chain_list_function(|_, parent, list| {
                RtcpLossMonitor::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain_list(list),
                )
            })
            .event_function(|_, parent, event| {
                RtcpLossMonitor::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(event),
                )
            })
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let srcpad = gst::Pad::builder_from_template(&template("src"))
            .flags(gst::PadFlags::PROXY_CAPS | gst::PadFlags::PROXY_ALLOCATION)
            .build();
        let rtcp_sinkpad = gst::Pad::builder_from_template(&template("rtcp_sink"))
            .chain_function(|_, parent, buffer| {
                RtcpLossMonitor::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.rtcp_chain(buffer),
                )
            })
            // Events there, EOS included, are dropped: the RTP stream decides when our
            // reports end, and the other side's RTCP ending says nothing about it.
            .event_function(|_, _, _| true)
            .build();
        let rtcp_srcpad = gst::Pad::builder_from_template(&template("rtcp_src")).build();
        RtcpLossMonitor {
            sinkpad,
            srcpad,
            rtcp_sinkpad,
            rtcp_srcpad,
            settings: Mutex::new(Settings::default()),
            state: Mutex::new(State::new(random_u64() as u32, &default_cname())),
            timers: Timers::default(),
            rtcp_out: Mutex::new(RtcpOut::default()),
            eos: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }
}

impl ObjectImpl for RtcpLossMonitor {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb(STATS_DOC)
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .nick("Report interval")
                    .blurb("Milliseconds between loss-report bus messages (0: none); also the interval fraction-lost is measured over")
                    .default_value(DEFAULT_INTERVAL_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("loss-threshold")
                    .nick("Loss threshold")
                    .blurb("Packet loss (percent, per interval) above which a warning is posted, and an info message when back under (0: off)")
                    .minimum(0.0)
                    .maximum(100.0)
                    .default_value(DEFAULT_LOSS_THRESHOLD)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("reduced-minimum")
                    .nick("Reduced minimum RTCP interval")
                    .blurb("Use RFC 3550 6.2's reduced minimum interval between receiver reports (360 s / session bandwidth in kbit/s, when shorter) instead of 5 s")
                    .default_value(DEFAULT_REDUCED_MINIMUM)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("session-bandwidth")
                    .nick("Session bandwidth")
                    .blurb("Session bandwidth in bit/s for the RTCP interval (0: the received bitrate, at least 64 kbit/s)")
                    .default_value(DEFAULT_SESSION_BANDWIDTH)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("ssrc")
                    .nick("SSRC")
                    .blurb("The SSRC of our receiver reports (random by default)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("cname")
                    .nick("CNAME")
                    .blurb("The CNAME in our SDES (user@host by default)")
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "interval" => {
                let ms: u32 = value.get().expect("type checked");
                let changed = std::mem::replace(&mut lock(&self.settings).interval_ms, ms) != ms;
                if changed {
                    self.loss_report_interval_changed();
                }
            }
            "loss-threshold" => {
                lock(&self.settings).loss_threshold = value.get().expect("type checked")
            }
            "reduced-minimum" => {
                lock(&self.settings).reduced_minimum = value.get().expect("type checked")
            }
            "session-bandwidth" => {
                lock(&self.settings).session_bandwidth = value.get().expect("type checked")
            }
            "ssrc" => lock(&self.state).session.ssrc = value.get().expect("type checked"),
            "cname" => {
                if let Ok(Some(cname)) = value.get::<Option<String>>() {
                    lock(&self.state).session.cname = cname;
                }
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => self
                .stats_structure("application/x-rtcp-loss-stats")
                .to_value(),
            "interval" => lock(&self.settings).interval_ms.to_value(),
            "loss-threshold" => lock(&self.settings).loss_threshold.to_value(),
            "reduced-minimum" => lock(&self.settings).reduced_minimum.to_value(),
            "session-bandwidth" => lock(&self.settings).session_bandwidth.to_value(),
            "ssrc" => lock(&self.state).session.ssrc.to_value(),
            "cname" => lock(&self.state).session.cname.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        for pad in [
            &self.sinkpad,
            &self.srcpad,
            &self.rtcp_sinkpad,
            &self.rtcp_srcpad,
        ] {
            obj.add_pad(pad).expect("a new pad");
        }
    }
}

impl GstObjectImpl for RtcpLossMonitor {}

impl ElementImpl for RtcpLossMonitor {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP loss monitor",
                "Filter/Network/RTP",
                "Passes RTP through and measures it per RFC 3550 (loss, fraction lost, jitter, \
                 duplicates, reordering), with RTCP receiver reports out and sender/receiver \
                 reports in",
                "mjpeg-rtsp developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let rtp = gst::Caps::new_empty_simple("application/x-rtp");
            let rtcp = gst::Caps::new_empty_simple("application/x-rtcp");
            let mut templates = crate::sink_and_src_templates(&rtp, &rtp);
            for (name, direction) in [
                ("rtcp_sink", gst::PadDirection::Sink),
                ("rtcp_src", gst::PadDirection::Src),
            ] {
                templates.push(
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &rtcp)
                        .expect("a valid pad template"),
                );
            }
            templates
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            let mut state = lock(&self.state);
            let (ssrc, cname) = (state.session.ssrc, state.session.cname.clone());
            *state = State::new(ssrc, &cname);
            drop(state);
            *lock(&self.rtcp_out) = RtcpOut::default();
            self.eos.store(false, Ordering::SeqCst);
        }
        if transition == gst::StateChange::PausedToReady {
            self.timers.stop();
        }
        let result = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToPaused {
            self.start_timers();
        }
        Ok(result)
    }

    fn set_clock(&self, clock: Option<&gst::Clock>) -> bool {
        let set = self.parent_set_clock(clock);
        if set {
            self.timers
                .set_clock(clock.cloned().unwrap_or_else(gst::SystemClock::obtain));
        }
        set
    }
}
