use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;

use crate::lock;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_rtp::prelude::*;
use gst_rtp::subclass::prelude::*;

use super::Huffman;
use crate::rfc2435::{
    self, HuffmanPolicy, OutgoingFrame, Packetizer, PayloadOptions, ScanData, TableSchedule,
    Unsupported,
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
    /// The input caps say `parsed=true`: one image per buffer, ending with its EOI.
    framed: bool,
    /// `x-dimensions` in the output caps now, if any.
    x_dimensions: Option<(u16, u16)>,
    outcaps_set: bool,
    /// When frames carry their tables.
    tables: TableSchedule,
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
    /// The base class's `mtu`, kept current by a notify handler (reading the property by
    /// name for every frame costs a hash lookup).
    mtu: AtomicU32,
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
        self.mtu.store(obj.mtu(), Ordering::Relaxed);
        obj.connect_notify(Some("mtu"), |obj, _| {
            obj.imp().mtu.store(obj.mtu(), Ordering::Relaxed);
        });
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

impl RTPBasePayloadImpl for RtpMjpegPay {
    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let s = caps.structure(0);
        let framerate = s.and_then(|s| s.get::<gst::Fraction>("framerate").ok());
        let framed = s
            .and_then(|s| s.get::<bool>("parsed").ok())
            .unwrap_or(false);
        let mut state = lock(&self.state);
        state.framerate = framerate;
        state.framed = framed;
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
            framed: lock(&self.state).framed,
        };
        let (pts, dts) = (buffer.pts(), buffer.dts());
        // Mapped once for the whole frame; the packets' payloads are slices of it.
        let input: Arc<dyn AsRef<[u8]> + Send + Sync> =
            Arc::new(buffer.into_mapped_buffer_readable().map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::ResourceError::Read,
                    ("Could not map the input buffer")
                );
                gst::FlowError::Error
            })?);
        let mut frame = match rfc2435::prepare((*input).as_ref(), &options) {
            Ok(frame) => frame,
            Err(reason) => return self.refuse(&reason, settings.drop_unsupported),
        };

        let mut state = lock(&self.state);
        self.update_outcaps(&mut state, &frame)?;
        let send_tables = state.tables.due(&frame, STATIC_TABLES_EVERY);

        // Where the scan bytes are: in the input, or in the re-encoding (moved, not
        // copied, behind a reference count).
        let scan_len = frame.scan_len();
        let (source, scan_start): (Arc<dyn AsRef<[u8]> + Send + Sync>, usize) =
            match &mut frame.scan {
                ScanData::Borrowed(range) => (input.clone(), range.start),
                ScanData::Reencoded(bytes) => {
                    lock(&self.stats).reencoded += 1;
                    (Arc::new(std::mem::take(bytes)), 0)
                }
            };
        let scan = &source.as_ref().as_ref()[scan_start..scan_start + scan_len];

        let max_payload =
            gst_rtp::calc_payload_len(self.mtu.load(Ordering::Relaxed), 0, 0) as usize;
        let packets = Packetizer::new(&frame, scan, send_tables, max_payload);
        let mut list = gst::BufferList::new_sized(scan.len() / max_payload.max(1) + 1);
        {
            let list = list.get_mut().ok_or(gst::FlowError::Error)?;
            for fragment in packets {
                // The RTP header (payload type, sequence number, timestamp and SSRC are
                // filled in by the base class when it pushes), then the RFC 2435 headers,
                // built in place: no buffer is mapped.
                state.header.clear();
                state
                    .header
                    .extend_from_slice(&[0x80, u8::from(fragment.marker) << 7]);
                state.header.extend_from_slice(&[0; 10]);
                fragment.write_headers(&frame, send_tables, &mut state.header);
                let mut packet = gst::Buffer::new();
                let packet_ref = packet.get_mut().ok_or(gst::FlowError::Error)?;
                packet_ref.append_memory(PacketHeader::memory(&state.header));
                if !fragment.data.is_empty() {
                    packet_ref.append_memory(gst::Memory::from_slice(ScanSlice {
                        bytes: source.clone(),
                        range: scan_start + fragment.data.start..scan_start + fragment.data.end,
                    }));
                }
                packet_ref.set_pts(pts);
                packet_ref.set_dts(dts);
                list.add(packet);
            }
        }
        drop(state);
        self.obj().push_list(list)
    }
}

/// A packet's share of the scan data: a range of bytes kept alive by a reference count,
/// so that no packet copies them and none needs a GStreamer sub-memory.
struct ScanSlice {
    bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for ScanSlice {
    fn as_ref(&self) -> &[u8] {
        &(*self.bytes).as_ref()[self.range.clone()]
    }
}

/// One packet's headers as a memory of their own, sized to fit: most packets need 24
/// bytes; the first of a frame with in-band tables up to 412.
struct PacketHeader {
    bytes: [u8; PacketHeader::INLINE],
    len: usize,
}

impl PacketHeader {
    const INLINE: usize = 32;

    fn memory(bytes: &[u8]) -> gst::Memory {
        if bytes.len() <= Self::INLINE {
            let mut header = PacketHeader {
                bytes: [0; Self::INLINE],
                len: bytes.len(),
            };
            header.bytes[..bytes.len()].copy_from_slice(bytes);
            gst::Memory::from_mut_slice(header)
        } else {
            gst::Memory::from_mut_slice(bytes.to_vec())
        }
    }
}

impl AsMut<[u8]> for PacketHeader {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[..self.len]
    }
}
