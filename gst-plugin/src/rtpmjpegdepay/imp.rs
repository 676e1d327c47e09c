//! The element: RTP packets in (one at a time or a buffer list per frame, as `udpsrc` and
//! jitter buffers deliver them), JPEG images out. Each packet goes straight to the
//! reassembler; nothing sits between it and the pad, so that reordered packets are put in
//! place rather than dropped (as RTPBaseDepayload drops a packet older than one seen),
//! and a frame's packets cost one lock and no per-packet bookkeeping beyond the RTP
//! header.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::LabDialect;
use super::packet::{MappedPacket, RateLimit, lab_image, read_rtp};
use crate::jpeg;
use crate::lock;
use crate::rfc2435::{self, DepayOptions, Reassembler};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpmjpegdepay",
        gst::DebugColorFlags::empty(),
        Some("RFC 2435 JPEG depayloader"),
    )
});

const DEFAULT_SALVAGE: bool = false;
const DEFAULT_FRAMES_IN_PROGRESS: u32 = rfc2435::depayloader::DEFAULT_FRAMES_IN_PROGRESS as u32;
const MAX_FRAMES_IN_PROGRESS: u32 = 16;

#[derive(Debug, Clone, Copy)]
struct Settings {
    salvage: bool,
    frames_in_progress: u32,
    lab: LabDialect,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            salvage: DEFAULT_SALVAGE,
            frames_in_progress: DEFAULT_FRAMES_IN_PROGRESS,
            lab: LabDialect::Auto,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames: u64,
    dropped: u64,
    salvaged: u64,
    invalid: u64,
    order: rfc2435::ReorderStats,
}

/// Caps fields that describe the output, from the frame and the input caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OutputFormat {
    width: u16,
    height: u16,
    sampling: &'static str,
    sof_marker: i32,
}

/// Something to send downstream, in order.
enum Output {
    Frame {
        jpeg: gst::Buffer,
        format: OutputFormat,
        salvaged: bool,
    },
    Dropped(rfc2435::Dropped),
}

struct State {
    reassembler: Reassembler,
    /// The sink caps arrived (with them the size and rate the SDP gives).
    negotiated: bool,
    /// The PTS of the last packet, for frames completed at the end of the stream.
    last_pts: Option<gst::ClockTime>,
    framerate: Option<gst::Fraction>,
    /// The format of the caps last sent.
    output: Option<OutputFormat>,
    /// Upstream's segment, held until the first frame's caps are sent (a segment must
    /// not go before caps).
    segment: Option<gst::Event>,
    /// The next frame out follows dropped ones or a flush.
    discont: bool,
    warnings: RateLimit,
}

impl Default for State {
    fn default() -> Self {
        State {
            reassembler: Reassembler::new(DepayOptions::default()),
            negotiated: false,
            last_pts: None,
            framerate: None,
            output: None,
            segment: None,
            discont: true,
            warnings: RateLimit::default(),
        }
    }
}

pub struct RtpMjpegDepay {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stats: Mutex<Stats>,
}

/// `"W,H"` from `x-dimensions`.
fn parse_dimensions(s: &str) -> Option<(u16, u16)> {
    let (w, h) = s.split_once(',')?;
    Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
}

/// A frame rate written as a decimal (`a-framerate:29.97`), as a fraction.
fn parse_framerate(s: &str) -> Option<gst::Fraction> {
    let fps: f64 = s.trim().parse().ok()?;
    (fps > 0.0 && fps.is_finite())
        .then(|| gst::Fraction::approximate_f64(fps))
        .flatten()
}

impl RtpMjpegDepay {
    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let out = self.depayload(std::iter::once(buffer.as_ref()))?;
        self.send(out)
    }

    fn sink_chain_list(&self, list: gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        let out = self.depayload(list.iter())?;
        self.send(out)
    }

    /// Takes packets in; returns what to send, each with the PTS of the packet that
    /// completed it.
    fn depayload<'b>(
        &self,
        packets: impl Iterator<Item = &'b gst::BufferRef>,
    ) -> Result<Vec<(Output, Option<gst::ClockTime>)>, gst::FlowError> {
        let settings = *lock(&self.settings);
        let mut state = lock(&self.state);
        if !state.negotiated {
            // Posted without the lock held: a bus handler may call back into the element.
            drop(state);
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("No RTP format was negotiated: the packets need application/x-rtp caps (set them on udpsrc or appsrc, or with a capsfilter)")
            );
            return Err(gst::FlowError::NotNegotiated);
        }
        state.reassembler.set_salvage(settings.salvage);
        state
            .reassembler
            .set_frames_in_progress(settings.frames_in_progress as usize);
        state.reassembler.set_lab_dialect(settings.lab.into());
        let mut out = Vec::new();
        let mut invalid = 0;
        for buffer in packets {
            let pts = buffer.pts();
            if pts.is_some() {
                state.last_pts = pts;
            }
            let Some((received, payload)) = self.packet(&mut state, buffer) else {
                invalid += 1;
                continue;
            };
            for d in received.dropped {
                out.push((Output::Dropped(d), pts));
            }
            if let Some(header) = received.whole_jpeg {
                // Networking-lab dialect: the payload is the image.
                let format = OutputFormat {
                    width: header.width,
                    height: header.height,
                    sampling: header.sampling().map_or("YCbCr-4:2:0", |s| s.caps_name()),
                    sof_marker: i32::from(header.sof_type),
                };
                if let Some(jpeg) = lab_image(buffer, payload) {
                    out.push((
                        Output::Frame {
                            jpeg,
                            format,
                            salvaged: false,
                        },
                        pts,
                    ));
                }
            }
            for frame in received.frames {
                out.push((frame_output(frame), pts));
            }
        }
        let order = state.reassembler.stats();
        drop(state);
        let mut stats = lock(&self.stats);
        stats.order = order;
        stats.invalid += invalid;
        Ok(out)
    }

    /// One packet into the reassembler, with where its payload lies; `None` when it is
    /// not a valid RTP packet.
    fn packet(
        &self,
        state: &mut State,
        buffer: &gst::BufferRef,
    ) -> Option<(rfc2435::Received, std::ops::Range<usize>)> {
        let mapped = MappedPacket::of(buffer)?;
        let (slices, n) = mapped.slices();
        match read_rtp(&slices[..n]) {
            Ok(rtp) => Some((
                state
                    .reassembler
                    .push_parts(&rtp.slices[..rtp.parts], rtp.marker, rtp.timestamp),
                rtp.range,
            )),
            Err(e) => {
                if let Some(held) = state.warnings.allow() {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "dropping an invalid RTP packet: {e}{}",
                        held_back(held)
                    );
                }
                None
            }
        }
    }

    /// Sends frames downstream (with caps and the segment first when needed), and counts
    /// and reports the dropped ones. Runs without the state locked: pushing runs
    /// downstream elements.
    fn send(
        &self,
        out: Vec<(Output, Option<gst::ClockTime>)>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut result = Ok(gst::FlowSuccess::Ok);
        for (item, pts) in out {
            match item {
                Output::Dropped(d) => self.count_drop(&d),
                // After a failed push (flushing, an error downstream) the rest is not
                // sent, nor counted as output.
                Output::Frame { .. } if result.is_err() => {}
                Output::Frame {
                    mut jpeg,
                    format,
                    salvaged,
                } => {
                    let discont = self.prepare_output(format);
                    {
                        let b = jpeg.make_mut();
                        b.set_pts(pts);
                        if discont {
                            b.set_flags(gst::BufferFlags::DISCONT);
                        }
                    }
                    {
                        let mut stats = lock(&self.stats);
                        stats.frames += 1;
                        stats.salvaged += u64::from(salvaged);
                    }
                    result = self.srcpad.push(jpeg);
                }
            }
        }
        result
    }

    /// Before a frame of `format`: new caps if it changed, then the held segment. Returns
    /// whether the frame is a discontinuity.
    fn prepare_output(&self, format: OutputFormat) -> bool {
        let (caps, segment, discont) = {
            let mut state = lock(&self.state);
            let caps = (state.output != Some(format)).then(|| {
                state.output = Some(format);
                output_caps(format, state.framerate)
            });
            let segment = state.segment.take();
            (caps, segment, std::mem::take(&mut state.discont))
        };
        if let Some(caps) = caps {
            gst::debug!(CAT, imp = self, "output caps {caps}");
            self.srcpad.push_event(gst::event::Caps::new(&caps));
        }
        if let Some(segment) = segment {
            self.srcpad.push_event(segment);
        }
        discont
    }

    fn count_drop(&self, d: &rfc2435::Dropped) {
        lock(&self.stats).dropped += 1;
        let held = {
            let mut state = lock(&self.state);
            state.discont = true;
            state.warnings.allow()
        };
        if let Some(held) = held {
            gst::warning!(
                CAT,
                imp = self,
                "dropping frame with RTP timestamp {}: {}{}",
                d.timestamp,
                d.reason,
                held_back(held)
            );
        }
    }

    fn set_sink_caps(&self, caps: &gst::CapsRef) -> bool {
        let Some(s) = caps.structure(0) else {
            return false;
        };
        let dimensions = s
            .get::<&str>("x-dimensions")
            .ok()
            .and_then(parse_dimensions);
        let framerate = ["a-framerate", "x-framerate"]
            .iter()
            .find_map(|f| s.get::<&str>(*f).ok().and_then(parse_framerate));
        let settings = *lock(&self.settings);
        let mut state = lock(&self.state);
        state.negotiated = true;
        if state.framerate != framerate {
            state.framerate = framerate;
            state.output = None;
        }
        state.reassembler.set_options(DepayOptions {
            salvage: settings.salvage,
            dimensions,
            frames_in_progress: settings.frames_in_progress as usize,
            lab: settings.lab.into(),
        });
        true
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => return self.set_sink_caps(c.caps()),
            gst::EventView::Segment(s) => {
                // Held until the first frame's caps are out; a non-TIME segment (from a
                // source that does not timestamp) becomes an open TIME one.
                let segment = if s.segment().format() == gst::Format::Time {
                    event.clone()
                } else {
                    gst::event::Segment::builder(&gst::FormattedSegment::<gst::ClockTime>::new())
                        .seqnum(event.seqnum())
                        .build()
                };
                let mut state = lock(&self.state);
                if state.output.is_some() {
                    drop(state);
                    return self.srcpad.push_event(segment);
                }
                state.segment = Some(segment);
                return true;
            }
            gst::EventView::FlushStop(_) => {
                let mut state = lock(&self.state);
                state.reassembler.reset();
                state.discont = true;
            }
            gst::EventView::Eos(_) => {
                let (unfinished, pts) = {
                    let mut state = lock(&self.state);
                    (state.reassembler.end_of_stream(), state.last_pts)
                };
                // Salvaged frames go out before the EOS.
                let mut out: Vec<_> = unfinished
                    .dropped
                    .into_iter()
                    .map(|d| (Output::Dropped(d), pts))
                    .collect();
                out.extend(
                    unfinished
                        .frames
                        .into_iter()
                        .map(|f| (frame_output(f), pts)),
                );
                let _ = self.send(out);
            }
            gst::EventView::Gap(_) if lock(&self.state).output.is_none() => {
                // Nothing can go before caps; the gap says nothing a later frame will not.
                return true;
            }
            gst::EventView::CustomDownstream(c)
                if c.structure()
                    .is_some_and(|s| s.name() == "GstRTPPacketLost") =>
            {
                // A jitter buffer's word that a packet is lost: the frame it belonged to
                // is dropped and counted when a later one is complete.
                return true;
            }
            _ => {}
        }
        gst::Pad::event_default(pad, Some(&*self.obj()), event)
    }

    fn stats_structure(&self) -> gst::Structure {
        let s = *lock(&self.stats);
        gst::Structure::builder("application/x-rtp-mjpeg-depay-stats")
            .field("frames-out", s.frames)
            .field("frames-dropped", s.dropped)
            .field("frames-salvaged", s.salvaged)
            .field("packets-reordered", s.order.reordered)
            .field("packets-duplicated", s.order.duplicates)
            .field("packets-late", s.order.late)
            .field("packets-invalid", s.invalid)
            .build()
    }
}

/// " (N more held back)" when N > 0.
fn held_back(n: u64) -> String {
    if n > 0 {
        format!(" ({n} more held back)")
    } else {
        String::new()
    }
}

fn frame_output(frame: rfc2435::Frame) -> Output {
    Output::Frame {
        format: OutputFormat {
            width: frame.width,
            height: frame.height,
            sampling: frame.sampling().caps_name(),
            sof_marker: if frame.extended { 1 } else { 0 },
        },
        salvaged: frame.salvaged,
        jpeg: gst::Buffer::from_mut_slice(frame.jpeg),
    }
}

fn output_caps(format: OutputFormat, framerate: Option<gst::Fraction>) -> gst::Caps {
    gst::Caps::builder("image/jpeg")
        .field("parsed", true)
        .field("width", i32::from(format.width))
        .field("height", i32::from(format.height))
        .field("sof-marker", format.sof_marker)
        .field("colorspace", jpeg::ColorSpace::Yuv.caps_name())
        .field("sampling", format.sampling)
        .field_if_some("framerate", framerate)
        .build()
}

#[glib::object_subclass]
impl ObjectSubclass for RtpMjpegDepay {
    const NAME: &'static str = "GstRtpMjpegDepay";
    type Type = super::RtpMjpegDepay;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(
            &klass.pad_template("sink").expect("a sink pad template"),
        )
        .chain_function(|_, parent, buffer| {
            RtpMjpegDepay::catch_panic_pad_function(
                parent,
                || Err(gst::FlowError::Error),
                |depay| depay.sink_chain(buffer),
            )
        })
        .chain_list_function(|_, parent, list| {
            RtpMjpegDepay::catch_panic_pad_function(
                parent,
                || Err(gst::FlowError::Error),
                |depay| depay.sink_chain_list(list),
            )
        })
        .event_function(|pad, parent, event| {
            RtpMjpegDepay::catch_panic_pad_function(
                parent,
                || false,
                |depay| depay.sink_event(pad, event),
            )
        })
        .build();
        let srcpad = gst::Pad::builder_from_template(
            &klass.pad_template("src").expect("a src pad template"),
        )
        .build();
        RtpMjpegDepay {
            sinkpad,
            srcpad,
            settings: Mutex::default(),
            state: Mutex::default(),
            stats: Mutex::default(),
        }
    }
}

impl ObjectImpl for RtpMjpegDepay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecBoolean::builder("salvage")
                    .nick("Salvage damaged frames")
                    .blurb("Output a frame with restart markers that lost packets up to its last complete restart interval (the rest decodes as grey) instead of dropping it")
                    .default_value(DEFAULT_SALVAGE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("frames-in-progress")
                    .nick("Frames in progress")
                    .blurb("Frames put together at once, so that packets reordered across frame boundaries still complete their frame (frames still leave in timestamp order, as soon as they are complete); 1 waits for no older frame")
                    .minimum(1)
                    .maximum(MAX_FRAMES_IN_PROGRESS)
                    .default_value(DEFAULT_FRAMES_IN_PROGRESS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("lab-dialect", LabDialect::Auto)
                    .nick("Lab dialect")
                    .blurb("Whether packets carry a whole JPEG each (the networking lab's servers) or RFC 2435 fragments: auto tells by each packet's first bytes")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-out")
                    .nick("Frames out")
                    .blurb("Complete frames output (salvaged ones included)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-dropped")
                    .nick("Frames dropped")
                    .blurb("Frames dropped because a packet was lost or inconsistent, or a newer frame was complete first")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-salvaged")
                    .nick("Frames salvaged")
                    .blurb("Damaged frames output up to their last complete restart interval (with salvage=true)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("packets-reordered")
                    .nick("Packets reordered")
                    .blurb("Packets that arrived after a packet that follows them and were put in their place")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("packets-duplicated")
                    .nick("Packets duplicated")
                    .blurb("Packets whose data had all been received already, in a frame in progress or the last frame output (ignored)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("packets-late")
                    .nick("Packets late")
                    .blurb("Packets of a frame already dropped, or of one older than the last frame output or dropped (ignored)")
                    .read_only()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("All counters as one structure (application/x-rtp-mjpeg-depay-stats): frames-out, frames-dropped, frames-salvaged, packets-reordered, packets-duplicated, packets-late, packets-invalid (not RTP, dropped)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "salvage" => lock(&self.settings).salvage = value.get().expect("type checked upstream"),
            "frames-in-progress" => {
                lock(&self.settings).frames_in_progress =
                    value.get().expect("type checked upstream")
            }
            "lab-dialect" => lock(&self.settings).lab = value.get().expect("type checked upstream"),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "salvage" => lock(&self.settings).salvage.to_value(),
            "frames-in-progress" => lock(&self.settings).frames_in_progress.to_value(),
            "lab-dialect" => lock(&self.settings).lab.to_value(),
            "frames-out" => lock(&self.stats).frames.to_value(),
            "frames-dropped" => lock(&self.stats).dropped.to_value(),
            "frames-salvaged" => lock(&self.stats).salvaged.to_value(),
            "packets-reordered" => lock(&self.stats).order.reordered.to_value(),
            "packets-duplicated" => lock(&self.stats).order.duplicates.to_value(),
            "packets-late" => lock(&self.stats).order.late.to_value(),
            "stats" => self.stats_structure().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("adding the sink pad");
        obj.add_pad(&self.srcpad).expect("adding the src pad");
    }
}

impl GstObjectImpl for RtpMjpegDepay {}

impl ElementImpl for RtpMjpegDepay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP JPEG depayloader (RFC 2435)",
                "Codec/Depayloader/Network/RTP",
                "Rebuilds JPEG images from RTP/JPEG (RFC 2435): restart markers, 1-3 and \
                 16-bit tables, cached static tables, large frames, reordered packets, \
                 loss-safe, lab dialect",
                "mjpeg-rtsp developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let mut sink = gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("clock-rate", rfc2435::CLOCK_RATE as i32)
                .field("encoding-name", "JPEG")
                .build();
            sink.make_mut().append_structure(
                gst::Structure::builder("application/x-rtp")
                    .field("media", "video")
                    .field("clock-rate", rfc2435::CLOCK_RATE as i32)
                    .field("payload", i32::from(rfc2435::PAYLOAD_TYPE))
                    .build(),
            );
            let src = gst::Caps::builder("image/jpeg")
                .field("parsed", true)
                .build();
            crate::sink_and_src_templates(&sink, &src)
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::ReadyToPaused {
            *lock(&self.state) = State::default();
            *lock(&self.stats) = Stats::default();
        }
        self.parent_change_state(transition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_fields_from_sdp_attributes() {
        assert_eq!(parse_dimensions("4096,2160"), Some((4096, 2160)));
        assert_eq!(parse_dimensions(" 100 , 75 "), Some((100, 75)));
        assert_eq!(parse_dimensions("4096"), None);
        assert_eq!(parse_dimensions("a,b"), None);
        assert_eq!(parse_dimensions("70000,1"), None);
        assert_eq!(parse_framerate("20"), Some(gst::Fraction::new(20, 1)));
        assert_eq!(
            parse_framerate("29.97"),
            gst::Fraction::approximate_f64(29.97)
        );
        assert_eq!(parse_framerate("12.5"), Some(gst::Fraction::new(25, 2)));
        assert_eq!(parse_framerate("0"), None);
        assert_eq!(parse_framerate("-5"), None);
        assert_eq!(parse_framerate("NaN"), None);
        assert_eq!(parse_framerate("fast"), None);
    }
}
