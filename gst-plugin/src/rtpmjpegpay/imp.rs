use std::sync::{LazyLock, Mutex, MutexGuard};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_rtp::prelude::*;
use gst_rtp::subclass::prelude::*;

use super::Huffman;
use crate::rfc2435::{
    self, HuffmanPolicy, OutgoingFrame, Packetizer, PayloadOptions, ScanData, Unsupported,
};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpmjpegpay",
        gst::DebugColorFlags::empty(),
        Some("RFC 2435 JPEG payloader"),
    )
});

const DEFAULT_HUFFMAN: Huffman = Huffman::Reencode;
const DEFAULT_INBAND_Q: u32 = 255;
const DEFAULT_DROP_UNSUPPORTED: bool = false;
/// With a static Q (128-254), tables are sent again this often, so a receiver that
/// joined late or lost the frame that carried them recovers.
const STATIC_TABLES_EVERY: u64 = 16;

#[derive(Debug, Clone, Copy)]
struct Settings {
    huffman: Huffman,
    inband_q: u32,
    drop_unsupported: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            huffman: DEFAULT_HUFFMAN,
            inband_q: DEFAULT_INBAND_Q,
            drop_unsupported: DEFAULT_DROP_UNSUPPORTED,
        }
    }
}

/// Streaming state.
#[derive(Debug, Default)]
struct State {
    /// Frame rate from the input caps, for `a-framerate`.
    framerate: Option<gst::Fraction>,
    /// `x-dimensions` in the output caps now, if any.
    x_dimensions: Option<(u16, u16)>,
    outcaps_set: bool,
    /// Static-Q tables last sent, and frames since.
    last_tables: Vec<u8>,
    frames_since_tables: u64,
    /// Reused for each packet's headers.
    header: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    reencoded: u64,
    dropped: u64,
}

#[derive(Default)]
pub struct RtpMjpegPay {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stats: Mutex<Stats>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RtpMjpegPay {
    /// Sets the output caps: the frame rate as `a-framerate`, and `x-dimensions` when the
    /// header cannot give the exact size.
    fn update_outcaps(
        &self,
        state: &mut State,
        frame: &OutgoingFrame<'_>,
    ) -> Result<(), gst::FlowError> {
        let x_dimensions = frame
            .needs_x_dimensions()
            .then_some((frame.width, frame.height));
        if state.outcaps_set && state.x_dimensions == x_dimensions {
            return Ok(());
        }
        let mut s = gst::Structure::builder("application/x-rtp").build();
        if let Some(rate) = state.framerate.filter(|r| r.numer() > 0) {
            let fps = f64::from(rate.numer()) / f64::from(rate.denom());
            s.set("a-framerate", format!("{fps}"));
        }
        if let Some((w, h)) = x_dimensions {
            s.set("x-dimensions", format!("{w},{h}"));
        }
        self.obj().set_outcaps(Some(&s)).map_err(|_| {
            gst::error!(CAT, imp = self, "downstream refused {s}");
            gst::FlowError::NotNegotiated
        })?;
        state.x_dimensions = x_dimensions;
        state.outcaps_set = true;
        Ok(())
    }

    /// Whether this frame's first packet carries the tables (Q 255 always; a static Q when
    /// the tables change, and now and then).
    fn tables_due(state: &mut State, frame: &OutgoingFrame<'_>) -> bool {
        match frame.q {
            0..128 => false,
            255 => true,
            _ => {
                let bytes = frame.table_bytes().concat();
                let due = bytes != state.last_tables
                    || state.frames_since_tables + 1 >= STATIC_TABLES_EVERY;
                if due {
                    state.last_tables = bytes;
                    state.frames_since_tables = 0;
                } else {
                    state.frames_since_tables += 1;
                }
                due
            }
        }
    }

    fn refuse(&self, reason: &Unsupported, drop: bool) -> Result<gst::FlowSuccess, gst::FlowError> {
        let message = format!(
            "cannot send this frame as RTP/JPEG (RFC 2435): {reason}; {}",
            reason.fix()
        );
        if drop {
            lock(&self.stats).dropped += 1;
            gst::warning!(CAT, imp = self, "dropping frame: {message}");
            gst::element_imp_warning!(self, gst::StreamError::Format, ("{}", message));
            Ok(gst::FlowSuccess::Ok)
        } else {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{}", message));
            Err(gst::FlowError::Error)
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtpMjpegPay {
    const NAME: &'static str = "GstRtpMjpegPay";
    type Type = super::RtpMjpegPay;
    type ParentType = gst_rtp::RTPBasePayload;
}

impl ObjectImpl for RtpMjpegPay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecEnum::builder_with_default("huffman", DEFAULT_HUFFMAN)
                    .nick("Non-standard Huffman tables")
                    .blurb("What to do with frames whose Huffman tables are not the standard ones RFC 2435 receivers assume (ffmpeg writes such frames by default)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("inband-q")
                    .nick("In-band Q")
                    .blurb("Q value sent with in-band quantization tables: 255 = tables may change every frame; 128-254 = static tables receivers cache (resent every 16 frames)")
                    .minimum(128)
                    .maximum(255)
                    .default_value(DEFAULT_INBAND_Q)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("drop-unsupported")
                    .nick("Drop unsupported frames")
                    .blurb("Drop frames RFC 2435 cannot carry (progressive, 4:4:4, grayscale, ...) with a warning, instead of stopping with an error")
                    .default_value(DEFAULT_DROP_UNSUPPORTED)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-reencoded")
                    .nick("Frames re-encoded")
                    .blurb("Frames whose scan was re-encoded with the standard Huffman tables")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-dropped")
                    .nick("Frames dropped")
                    .blurb("Frames dropped because RFC 2435 cannot carry them (with drop-unsupported=true)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        match pspec.name() {
            "huffman" => settings.huffman = value.get().expect("type checked upstream"),
            "inband-q" => settings.inband_q = value.get().expect("type checked upstream"),
            "drop-unsupported" => {
                settings.drop_unsupported = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "huffman" => lock(&self.settings).huffman.to_value(),
            "inband-q" => lock(&self.settings).inband_q.to_value(),
            "drop-unsupported" => lock(&self.settings).drop_unsupported.to_value(),
            "frames-reencoded" => lock(&self.stats).reencoded.to_value(),
            "frames-dropped" => lock(&self.stats).dropped.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_options("video", false, "JPEG", rfc2435::CLOCK_RATE);
        obj.set_property("pt", u32::from(rfc2435::PAYLOAD_TYPE));
    }
}

impl GstObjectImpl for RtpMjpegPay {}

impl ElementImpl for RtpMjpegPay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP JPEG payloader (RFC 2435)",
                "Codec/Payloader/Network/RTP",
                "Payloads JPEG images as RTP/JPEG (RFC 2435): restart markers, in-band or \
                 Q-factor tables, 16-bit tables, large frames, lossless Huffman re-encoding",
                "mjpeg-rtsp developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::Caps::builder("image/jpeg").build();
            let src = gst::Caps::builder("application/x-rtp")
                .field("media", "video")
                .field("payload", i32::from(rfc2435::PAYLOAD_TYPE))
                .field("clock-rate", rfc2435::CLOCK_RATE as i32)
                .field("encoding-name", "JPEG")
                .build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src,
                )
                .expect("valid template"),
            ]
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

impl RTPBasePayloadImpl for RtpMjpegPay {
    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let framerate = caps
            .structure(0)
            .and_then(|s| s.get::<gst::Fraction>("framerate").ok());
        let mut state = lock(&self.state);
        state.framerate = framerate;
        state.outcaps_set = false;
        Ok(())
    }

    fn handle_buffer(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = *lock(&self.settings);
        let options = PayloadOptions {
            inband_q: settings.inband_q.clamp(128, 255) as u8,
            huffman: match settings.huffman {
                Huffman::Reencode => HuffmanPolicy::Reencode,
                Huffman::Refuse => HuffmanPolicy::Refuse,
            },
        };
        let map = buffer.map_readable().map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Read,
                ("Could not map the input buffer")
            );
            gst::FlowError::Error
        })?;
        let mut frame = match rfc2435::prepare(&map, &options) {
            Ok(frame) => frame,
            Err(reason) => return self.refuse(&reason, settings.drop_unsupported),
        };

        let mut state = lock(&self.state);
        self.update_outcaps(&mut state, &frame)?;
        let send_tables = Self::tables_due(&mut state, &frame);

        // The memory packets share their scan bytes from: the input, or the re-encoding
        // (moved, not copied, into a GStreamer memory).
        let source = match &mut frame.scan {
            ScanData::Borrowed(range) => ScanSource::Input(range.clone()),
            ScanData::Reencoded(bytes) => {
                lock(&self.stats).reencoded += 1;
                ScanSource::Reencoded(gst::Memory::from_slice(std::mem::take(bytes)))
            }
        };
        let reencoded_map = match &source {
            ScanSource::Reencoded(memory) => {
                Some(memory.map_readable().map_err(|_| gst::FlowError::Error)?)
            }
            ScanSource::Input(_) => None,
        };
        let scan: &[u8] = match (&source, &reencoded_map) {
            (ScanSource::Input(range), _) => &map[range.clone()],
            (_, Some(m)) => m.as_slice(),
            (_, None) => return Err(gst::FlowError::Error),
        };

        let mtu = self.obj().mtu();
        let max_payload = gst_rtp::calc_payload_len(mtu, 0, 0) as usize;
        let packets = Packetizer::new(&frame, scan, send_tables, max_payload);
        let mut list = gst::BufferList::new_sized(scan.len() / max_payload.max(1) + 1);
        {
            let list = list.get_mut().ok_or(gst::FlowError::Error)?;
            for fragment in packets {
                state.header.clear();
                fragment.write_headers(&frame, send_tables, &mut state.header);
                let mut packet = self
                    .obj()
                    .allocate_output_buffer(state.header.len() as u32, 0, 0);
                {
                    let packet = packet.get_mut().ok_or(gst::FlowError::Error)?;
                    let mut rtp = gst_rtp::RTPBuffer::from_buffer_writable(packet)
                        .map_err(|_| gst::FlowError::Error)?;
                    rtp.payload_mut()
                        .map_err(|_| gst::FlowError::Error)?
                        .copy_from_slice(&state.header);
                    rtp.set_marker(fragment.marker);
                }
                let packet_ref = packet.get_mut().ok_or(gst::FlowError::Error)?;
                source.append(&buffer, fragment.data.clone(), packet_ref)?;
                packet_ref.set_pts(buffer.pts());
                packet_ref.set_dts(buffer.dts());
                list.add(packet);
            }
        }
        drop(state);
        drop(reencoded_map);
        drop(frame);
        drop(map);
        self.obj().push_list(list)
    }
}

/// Where packets get their scan bytes from.
enum ScanSource {
    /// These bytes of the input buffer.
    Input(std::ops::Range<usize>),
    /// A re-encoded scan.
    Reencoded(gst::Memory),
}

impl ScanSource {
    /// Appends `range` of the scan to `packet`, sharing memory rather than copying.
    fn append(
        &self,
        input: &gst::Buffer,
        range: std::ops::Range<usize>,
        packet: &mut gst::BufferRef,
    ) -> Result<(), gst::FlowError> {
        if range.is_empty() {
            return Ok(());
        }
        match self {
            ScanSource::Input(scan) => {
                let range = scan.start + range.start..scan.start + range.end;
                if input.n_memory() == 1 {
                    packet.append_memory(input.peek_memory(0).share(range));
                } else {
                    let region = input
                        .copy_region(gst::BufferCopyFlags::MEMORY, range)
                        .map_err(|_| gst::FlowError::Error)?;
                    for mem in region.iter_memories_owned() {
                        packet.append_memory(mem);
                    }
                }
            }
            ScanSource::Reencoded(memory) => packet.append_memory(memory.share(range)),
        }
        Ok(())
    }
}
