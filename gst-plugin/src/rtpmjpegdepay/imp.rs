use std::sync::{LazyLock, Mutex};

use gst::glib;

use crate::lock;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_rtp::prelude::*;
use gst_rtp::subclass::prelude::*;

use crate::jpeg;
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            salvage: DEFAULT_SALVAGE,
            frames_in_progress: DEFAULT_FRAMES_IN_PROGRESS,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames: u64,
    dropped: u64,
    salvaged: u64,
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

struct State {
    reassembler: Reassembler,
    framerate: Option<gst::Fraction>,
    output: Option<OutputFormat>,
}

impl Default for State {
    fn default() -> Self {
        State {
            reassembler: Reassembler::new(DepayOptions::default()),
            framerate: None,
            output: None,
        }
    }
}

#[derive(Default)]
pub struct RtpMjpegDepay {
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
    /// Sends new caps downstream when the output format changes.
    fn update_caps(&self, state: &mut State, format: OutputFormat) {
        if state.output == Some(format) {
            return;
        }
        let mut caps = gst::Caps::builder("image/jpeg")
            .field("parsed", true)
            .field("width", i32::from(format.width))
            .field("height", i32::from(format.height))
            .field("sof-marker", format.sof_marker)
            .field("colorspace", jpeg::ColorSpace::Yuv.caps_name())
            .field("sampling", format.sampling)
            .build();
        if let Some(rate) = state.framerate {
            caps.make_mut().set("framerate", rate);
        }
        gst::debug!(CAT, imp = self, "output caps {caps}");
        if self
            .obj()
            .src_pad()
            .push_event(gst::event::Caps::new(&caps))
        {
            state.output = Some(format);
        }
    }

    /// Sends out every frame but the last, which it returns. Called without the state
    /// locked, since pushing runs downstream elements.
    fn output(&self, frames: Vec<rfc2435::Frame>) -> Result<Option<gst::Buffer>, gst::FlowError> {
        let mut last = None;
        let count = frames.len();
        for (i, frame) in frames.into_iter().enumerate() {
            let format = OutputFormat {
                width: frame.width,
                height: frame.height,
                sampling: frame.sampling().caps_name(),
                sof_marker: if frame.extended { 1 } else { 0 },
            };
            self.update_caps(&mut lock(&self.state), format);
            {
                let mut stats = lock(&self.stats);
                stats.frames += 1;
                stats.salvaged += u64::from(frame.salvaged);
            }
            let buffer = gst::Buffer::from_mut_slice(frame.jpeg);
            if i + 1 < count {
                self.obj().push(buffer)?;
            } else {
                last = Some(buffer);
            }
        }
        Ok(last)
    }

    fn count_drops(&self, dropped: &[rfc2435::Dropped]) {
        if dropped.is_empty() {
            return;
        }
        lock(&self.stats).dropped += dropped.len() as u64;
        for d in dropped {
            gst::warning!(
                CAT,
                imp = self,
                "dropping frame with RTP timestamp {}: {}",
                d.timestamp,
                d.reason
            );
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtpMjpegDepay {
    const NAME: &'static str = "GstRtpMjpegDepay";
    type Type = super::RtpMjpegDepay;
    type ParentType = gst_rtp::RTPBaseDepayload;
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
                glib::ParamSpecUInt64::builder("packets-reordered")
                    .nick("Packets reordered")
                    .blurb("Packets that arrived after a packet that follows them and were put in their place")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("packets-duplicated")
                    .nick("Packets duplicated")
                    .blurb("Packets whose data had all been received already (ignored)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("packets-late")
                    .nick("Packets late")
                    .blurb("Packets of a frame that was already output or dropped (ignored)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-salvaged")
                    .nick("Frames salvaged")
                    .blurb("Damaged frames output up to their last complete restart interval (with salvage=true)")
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
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "salvage" => lock(&self.settings).salvage.to_value(),
            "frames-in-progress" => lock(&self.settings).frames_in_progress.to_value(),
            "packets-reordered" => lock(&self.stats).order.reordered.to_value(),
            "packets-duplicated" => lock(&self.stats).order.duplicates.to_value(),
            "packets-late" => lock(&self.stats).order.late.to_value(),
            "frames-out" => lock(&self.stats).frames.to_value(),
            "frames-dropped" => lock(&self.stats).dropped.to_value(),
            "frames-salvaged" => lock(&self.stats).salvaged.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // RTPBaseDepayload drops a packet whose sequence number is below one seen before;
        // the reassembler puts such packets in place by their fragment offset instead.
        self.obj().set_property("max-reorder", 0i32);
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
                 16-bit tables, cached static tables, large frames, loss-safe, lab dialect",
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
        }
        self.parent_change_state(transition)
    }
}

impl RTPBaseDepayloadImpl for RtpMjpegDepay {
    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = caps
            .structure(0)
            .ok_or_else(|| gst::loggable_error!(CAT, "empty caps"))?;
        let dimensions = s
            .get::<&str>("x-dimensions")
            .ok()
            .and_then(parse_dimensions);
        let framerate = ["a-framerate", "x-framerate"]
            .iter()
            .find_map(|f| s.get::<&str>(*f).ok().and_then(parse_framerate));
        let mut state = lock(&self.state);
        state.framerate = framerate;
        state.output = None;
        let settings = *lock(&self.settings);
        state.reassembler.set_options(DepayOptions {
            salvage: settings.salvage,
            dimensions,
            frames_in_progress: settings.frames_in_progress as usize,
        });
        Ok(())
    }

    fn handle_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => lock(&self.state).reassembler.reset(),
            gst::EventView::Eos(_) => {
                let unfinished = lock(&self.state).reassembler.end_of_stream();
                self.count_drops(&unfinished.dropped);
                // Salvaged frames go out before the EOS.
                if let Ok(Some(last)) = self.output(unfinished.frames) {
                    let _ = self.obj().push(last);
                }
            }
            _ => {}
        }
        self.parent_handle_event(event)
    }

    fn process_rtp_packet(
        &self,
        rtp: &gst_rtp::RTPBuffer<gst_rtp::rtp_buffer::Readable>,
    ) -> Option<gst::Buffer> {
        let settings = *lock(&self.settings);
        let mut state = lock(&self.state);
        state.reassembler.set_salvage(settings.salvage);
        state
            .reassembler
            .set_frames_in_progress(settings.frames_in_progress as usize);
        let received = match PayloadParts::of(rtp) {
            Some(parts) => {
                let (slices, n) = parts.slices();
                state
                    .reassembler
                    .push_parts(&slices[..n], rtp.is_marker(), rtp.timestamp())
            }
            None => {
                gst::warning!(CAT, imp = self, "could not read the RTP payload");
                return None;
            }
        };
        lock(&self.stats).order = state.reassembler.stats();
        self.count_drops(&received.dropped);

        if let Some(header) = received.whole_jpeg {
            // Networking-lab dialect: the payload is the image.
            let format = OutputFormat {
                width: header.width,
                height: header.height,
                sampling: header.sampling().map_or("YCbCr-4:2:0", |s| s.caps_name()),
                sof_marker: i32::from(header.sof_type),
            };
            self.update_caps(&mut state, format);
            drop(state);
            lock(&self.stats).frames += 1;
            return rtp.payload_buffer().ok();
        }

        drop(state);
        if received.frames.is_empty() {
            return None;
        }
        self.output(received.frames).ok().flatten()
    }
}

/// A packet's payload as slices of its memories, mapped one by one: joining them (what
/// reading the payload as one slice does when a packet has a header memory and a data
/// memory) would allocate and copy for every packet. Packets with padding, or more
/// memories than this holds, are read joined.
struct PayloadParts<'a> {
    maps: [Option<gst::memory::MemoryMap<'a, gst::memory::Readable>>; MAX_PARTS],
    /// The payload's range within each mapped memory.
    ranges: [std::ops::Range<usize>; MAX_PARTS],
    joined: Option<&'a [u8]>,
}

const MAX_PARTS: usize = 4;

impl<'a> PayloadParts<'a> {
    fn of(
        rtp: &'a gst_rtp::RTPBuffer<'a, gst_rtp::rtp_buffer::Readable>,
    ) -> Option<PayloadParts<'a>> {
        let mut parts = PayloadParts {
            maps: [None, None, None, None],
            ranges: [0..0, 0..0, 0..0, 0..0],
            joined: None,
        };
        let buffer = rtp.buffer();
        if rtp.has_padding() || buffer.n_memory() > MAX_PARTS {
            parts.joined = Some(rtp.payload().ok()?);
            return Some(parts);
        }
        let payload_len = rtp.payload_size() as usize;
        let mut skip = buffer.size().checked_sub(payload_len)?;
        for (i, memory) in buffer.iter_memories().enumerate() {
            let size = memory.size();
            if skip >= size {
                skip -= size;
                continue;
            }
            parts.ranges[i] = skip..size;
            parts.maps[i] = Some(memory.map_readable().ok()?);
            skip = 0;
        }
        Some(parts)
    }

    /// The payload's slices, in order, and how many there are.
    fn slices(&self) -> ([&[u8]; MAX_PARTS], usize) {
        let mut slices: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
        if let Some(joined) = self.joined {
            slices[0] = joined;
            return (slices, 1);
        }
        let mut n = 0;
        for (map, range) in self.maps.iter().zip(&self.ranges) {
            if let Some(map) = map {
                slices[n] = &map.as_slice()[range.clone()];
                n += 1;
            }
        }
        (slices, n)
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
