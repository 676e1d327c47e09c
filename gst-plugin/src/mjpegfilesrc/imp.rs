use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use gst::glib;

use crate::lock;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use super::FileFormat;
use crate::mjpeg::{self, FrameFormat, FrameIndex, FrameRate, Framing};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "mjpegfilesrc",
        gst::DebugColorFlags::empty(),
        Some("Motion-JPEG file source"),
    )
});

const DEFAULT_FORMAT: FileFormat = FileFormat::Auto;
const DEFAULT_FRAMERATE: gst::Fraction = gst::Fraction::from_integer(20);
const DEFAULT_LOOP: bool = false;
const DEFAULT_IS_LIVE: bool = false;
const DEFAULT_SKIP_CORRUPT: bool = false;
/// Skipped frames reported one by one on the bus; the rest are summed up in one warning.
const MAX_SKIP_WARNINGS: usize = 10;

#[derive(Debug, Clone)]
struct Settings {
    location: Option<PathBuf>,
    format: FileFormat,
    framerate: gst::Fraction,
    looping: bool,
    skip_corrupt: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location: None,
            format: DEFAULT_FORMAT,
            framerate: DEFAULT_FRAMERATE,
            looping: DEFAULT_LOOP,
            skip_corrupt: DEFAULT_SKIP_CORRUPT,
        }
    }
}

/// One frame's bytes in the mapped file: the memory of a buffer pushed downstream.
///
/// Each frame is a memory of its own over the shared mapping, not a sub-memory of one
/// memory for the whole file: GStreamer counts a memory's live sub-memories in 16 bits,
/// and a pipeline that holds more than 65535 frames or packets of one file at once (a
/// long queue, a payloader's packets kept for replay) would overflow it.
struct FrameSlice {
    file: Arc<memmap2::Mmap>,
    range: std::ops::Range<usize>,
}

impl AsRef<[u8]> for FrameSlice {
    fn as_ref(&self) -> &[u8] {
        &self.file[self.range.clone()]
    }
}

/// Streaming state, from `start` to `stop`.
struct State {
    path: PathBuf,
    file: Arc<memmap2::Mmap>,
    index: FrameIndex,
    rate: FrameRate,
    /// Next frame to push.
    next: usize,
    /// The frame the current segment started at.
    first: usize,
    /// One past the last frame of the current segment.
    stop: usize,
    /// Passes through the whole file completed since the segment started (`loop`).
    loops: u64,
    /// Live mode: the timestamp of `first`, taken from the clock at the first buffer.
    live_origin: Option<gst::ClockTime>,
    /// Format of the caps last sent downstream.
    caps_format: Option<FrameFormat>,
}

impl State {
    /// Frame count since the start of the file, looping included: the timeline position
    /// of the next frame.
    fn timeline_frame(&self) -> u64 {
        self.loops * self.index.len() as u64 + self.next as u64
    }

    fn pts_of(&self, timeline_frame: u64) -> gst::ClockTime {
        let own = self.rate.time_of(timeline_frame);
        match self.live_origin {
            Some(origin) => {
                origin + gst::ClockTime::from_nseconds(own - self.rate.time_of(self.first as u64))
            }
            None => gst::ClockTime::from_nseconds(own),
        }
    }
}

/// Read-only counters that outlive a run, so an application can read them after EOS.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    frames: u64,
    skipped: u64,
}

#[derive(Default)]
pub struct MjpegFileSrc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<Stats>,
}

fn frame_rate(f: gst::Fraction) -> FrameRate {
    // The property's range keeps both parts positive, so the fallback is never used.
    let part = |v: i32| u32::try_from(v).unwrap_or(0);
    FrameRate::new(part(f.numer()), part(f.denom())).unwrap_or(FrameRate::LAB)
}

fn caps_for(format: &FrameFormat, rate: FrameRate) -> gst::Caps {
    let mut caps = gst::Caps::builder("image/jpeg")
        .field("parsed", true)
        .field("width", i32::from(format.width))
        .field("height", i32::from(format.height))
        .field(
            "framerate",
            gst::Fraction::new(rate.num() as i32, rate.den() as i32),
        )
        .field(
            "pixel-aspect-ratio",
            gst::Fraction::new(
                i32::from(format.pixel_aspect_ratio.0),
                i32::from(format.pixel_aspect_ratio.1),
            ),
        )
        .field("sof-marker", i32::from(format.sof_type))
        .field("colorspace", format.color_space.caps_name())
        .build();
    if let Some(sampling) = format.sampling {
        caps.make_mut().set("sampling", sampling.caps_name());
    }
    caps
}

impl MjpegFileSrc {
    fn set_location(&self, location: Option<PathBuf>) -> Result<(), glib::Error> {
        if lock(&self.state).is_some() {
            return Err(glib::Error::new(
                gst::URIError::BadState,
                "the location cannot change while the element is running",
            ));
        }
        gst::info!(CAT, imp = self, "location set to {:?}", location);
        lock(&self.settings).location = location;
        Ok(())
    }

    /// Opens and maps the file, or says why it cannot be read.
    fn open(path: &Path) -> Result<memmap2::Mmap, gst::ErrorMessage> {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("Could not open {}: {}", shown, e)
            )
        })?;
        if meta.is_dir() {
            return Err(gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("{} is a directory, not a Motion-JPEG file", shown)
            ));
        }
        if !meta.is_file() {
            return Err(gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("{} is not a regular file", shown)
            ));
        }
        if meta.len() == 0 {
            return Err(gst::error_msg!(
                gst::StreamError::WrongType,
                ("{}: {}", shown, mjpeg::DetectError::Empty)
            ));
        }
        let file = File::open(path).map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Could not open {}: {}", shown, e)
            )
        })?;
        // SAFETY: the map is only read. If another process truncates the file while it is
        // mapped, reads past the new end fault; that is documented on the element.
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| {
            gst::error_msg!(
                gst::ResourceError::OpenRead,
                ("Could not map {} into memory: {}", shown, e)
            )
        })
    }

    fn post_skip_warnings(&self, path: &Path, index: &FrameIndex) {
        let skipped = index.skipped();
        for corrupt in skipped.iter().take(MAX_SKIP_WARNINGS) {
            gst::warning!(CAT, imp = self, "skipping {}", corrupt);
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("{}: skipped corrupt {}", path.display(), corrupt)
            );
        }
        if skipped.len() > MAX_SKIP_WARNINGS {
            for corrupt in &skipped[MAX_SKIP_WARNINGS..] {
                gst::warning!(CAT, imp = self, "skipping {}", corrupt);
            }
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                (
                    "{}: skipped {} corrupt frames in all ({} more than reported above)",
                    path.display(),
                    skipped.len(),
                    skipped.len() - MAX_SKIP_WARNINGS
                )
            );
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for MjpegFileSrc {
    const NAME: &'static str = "GstMjpegFileSrc";
    type Type = super::MjpegFileSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for MjpegFileSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("location")
                    .nick("File location")
                    .blurb("Path of the Motion-JPEG file to read (.Mjpeg lab format or concatenated JPEG)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("format", DEFAULT_FORMAT)
                    .nick("File format")
                    .blurb("How frames are stored in the file: auto-detected from the first bytes, or forced")
                    .mutable_ready()
                    .build(),
                gst::ParamSpecFraction::builder("framerate")
                    .nick("Frame rate")
                    .blurb("Frames per second used for timestamps and caps (the files store none; lab servers send 20/1)")
                    .minimum(gst::Fraction::new(1, 1000))
                    .maximum(gst::Fraction::new(1000, 1))
                    .default_value(DEFAULT_FRAMERATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("loop")
                    .nick("Loop")
                    .blurb("Start again from the first frame at the end of the file; timestamps keep increasing")
                    .default_value(DEFAULT_LOOP)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("is-live")
                    .nick("Live")
                    .blurb("Act as a live source: push frames in real time at the frame rate, like a camera or a lab server")
                    .default_value(DEFAULT_IS_LIVE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("skip-corrupt")
                    .nick("Skip corrupt frames")
                    .blurb("Skip corrupt frames with a warning (counted in skipped-frames) instead of stopping with an error")
                    .default_value(DEFAULT_SKIP_CORRUPT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("frames")
                    .nick("Frames")
                    .blurb("Number of usable frames found in the file when it was opened (0 before that)")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("skipped-frames")
                    .nick("Skipped frames")
                    .blurb("Number of corrupt frames skipped when the file was opened (with skip-corrupt=true)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "location" => {
                let location = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .map(PathBuf::from);
                if let Err(e) = self.set_location(location) {
                    gst::error!(CAT, imp = self, "Failed to set location: {}", e);
                }
            }
            "format" => lock(&self.settings).format = value.get().expect("type checked upstream"),
            "framerate" => {
                lock(&self.settings).framerate = value.get().expect("type checked upstream")
            }
            "loop" => lock(&self.settings).looping = value.get().expect("type checked upstream"),
            "is-live" => self
                .obj()
                .set_live(value.get().expect("type checked upstream")),
            "skip-corrupt" => {
                lock(&self.settings).skip_corrupt = value.get().expect("type checked upstream")
            }
            other => unreachable!("unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = lock(&self.settings);
        match pspec.name() {
            "location" => settings
                .location
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .to_value(),
            "format" => settings.format.to_value(),
            "framerate" => settings.framerate.to_value(),
            "loop" => settings.looping.to_value(),
            "is-live" => self.obj().is_live().to_value(),
            "skip-corrupt" => settings.skip_corrupt.to_value(),
            "frames" => lock(&self.stats).frames.to_value(),
            "skipped-frames" => lock(&self.stats).skipped.to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_format(gst::Format::Time);
        obj.set_live(DEFAULT_IS_LIVE);
    }
}

impl GstObjectImpl for MjpegFileSrc {}

impl ElementImpl for MjpegFileSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Motion-JPEG file source",
                "Source/File/Video",
                "Reads Motion-JPEG files (networking-lab .Mjpeg or concatenated JPEG) as \
                 parsed JPEG frames, with exact seeking, looping and live pacing",
                "mjpeg-rtsp developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("image/jpeg")
                .field("parsed", true)
                .field("width", gst::IntRange::new(1, i32::from(u16::MAX)))
                .field("height", gst::IntRange::new(1, i32::from(u16::MAX)))
                .field(
                    "framerate",
                    gst::FractionRange::new(
                        gst::Fraction::new(1, 1000),
                        gst::Fraction::new(1000, 1),
                    ),
                )
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid pad template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for MjpegFileSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let path = settings.location.clone().ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::NotFound,
                ("No file to read: set the location property")
            )
        })?;
        let shown = path.display();
        let began = Instant::now();
        let map = Self::open(&path)?;
        let framing = match settings.format {
            FileFormat::Lab => Framing::Lab,
            FileFormat::Jpeg => Framing::Concatenated,
            FileFormat::Auto => mjpeg::detect(&map)
                .map_err(|e| gst::error_msg!(gst::StreamError::WrongType, ("{}: {}", shown, e)))?,
        };
        let index = FrameIndex::build(&map, framing, settings.skip_corrupt);
        gst::info!(
            CAT,
            imp = self,
            "indexed {} frames ({:?} framing, {} skipped) of {} in {:?}",
            index.len(),
            framing,
            index.skipped().len(),
            shown,
            began.elapsed()
        );
        *lock(&self.stats) = Stats {
            frames: index.len() as u64,
            skipped: index.skipped().len() as u64,
        };
        self.post_skip_warnings(&path, &index);
        if index.is_empty() {
            return Err(match (index.error(), index.skipped()) {
                (Some(corrupt), _) => {
                    gst::error_msg!(gst::StreamError::Decode, ("{}: corrupt {}", shown, corrupt))
                }
                (None, skipped) => gst::error_msg!(
                    gst::StreamError::Decode,
                    (
                        "{}: no usable frame, all {} frames are corrupt",
                        shown,
                        skipped.len()
                    )
                ),
            });
        }
        let len = index.len();
        *lock(&self.state) = Some(State {
            path,
            file: Arc::new(map),
            index,
            rate: frame_rate(settings.framerate),
            next: 0,
            first: 0,
            stop: len,
            loops: 0,
            live_origin: None,
            caps_format: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.state) = None;
        Ok(())
    }

    fn is_seekable(&self) -> bool {
        true
    }

    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = lock(&self.state)
            .as_ref()
            .and_then(|s| {
                let frame = s.index.get(s.next).or(s.index.frames().last())?;
                Some(caps_for(&frame.format, s.rate))
            })
            .unwrap_or_else(|| self.obj().src_pad().pad_template_caps());
        Some(match filter {
            Some(filter) => filter.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn do_seek(&self, segment: &mut gst::Segment) -> bool {
        let Some(segment) = segment.downcast_ref::<gst::ClockTime>() else {
            gst::warning!(CAT, imp = self, "cannot seek in {:?}", segment.format());
            return false;
        };
        if segment.rate() < 0.0 {
            gst::warning!(CAT, imp = self, "reverse playback is not supported");
            return false;
        }
        let mut state = lock(&self.state);
        let Some(state) = state.as_mut() else {
            return true;
        };
        let len = state.index.len();
        let start = segment.start().map_or(0, |t| t.nseconds());
        let first = (state.rate.frame_at(start) as usize).min(len);
        let stop = match segment.stop() {
            Some(t) if t.nseconds() == 0 => 0,
            Some(t) => ((state.rate.frame_at(t.nseconds() - 1) + 1) as usize).min(len),
            None => len,
        };
        gst::debug!(CAT, imp = self, "seek to frames {}..{}", first, stop);
        state.next = first;
        state.first = first;
        state.stop = stop.max(first);
        state.loops = 0;
        state.live_origin = None;
        true
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        use gst::QueryViewMut;
        // Copy what the answers need so no lock is held while the base class runs.
        let started = lock(&self.state)
            .as_ref()
            .map(|s| (s.rate, s.index.len() as u64));
        let Some((rate, len)) = started else {
            return BaseSrcImplExt::parent_query(self, query);
        };
        match query.view_mut() {
            QueryViewMut::Duration(q) => match q.format() {
                gst::Format::Time => {
                    q.set(gst::ClockTime::from_nseconds(rate.time_of(len)));
                    true
                }
                gst::Format::Default => {
                    q.set(gst::format::Default::from_u64(len));
                    true
                }
                _ => false,
            },
            QueryViewMut::Convert(q) => {
                let (src, dest_format) = q.get();
                let dest = match (src, dest_format) {
                    (gst::GenericFormattedValue::Default(Some(n)), gst::Format::Time) => {
                        gst::ClockTime::from_nseconds(rate.time_of(*n)).into()
                    }
                    (gst::GenericFormattedValue::Time(Some(t)), gst::Format::Default) => {
                        gst::format::Default::from_u64(rate.frame_at(t.nseconds())).into()
                    }
                    (v, f) if v.format() == f => v,
                    _ => return false,
                };
                q.set(src, dest);
                true
            }
            QueryViewMut::Seeking(q) if q.format() == gst::Format::Default => {
                q.set(
                    true,
                    gst::format::Default::ZERO,
                    gst::format::Default::from_u64(len),
                );
                true
            }
            QueryViewMut::Latency(q) if self.obj().is_live() => {
                let frame = gst::ClockTime::from_nseconds(rate.duration_of(0));
                q.set(true, frame, Some(frame));
                true
            }
            _ => BaseSrcImplExt::parent_query(self, query),
        }
    }

    fn times(&self, buffer: &gst::BufferRef) -> (Option<gst::ClockTime>, Option<gst::ClockTime>) {
        // Only a live source waits for the clock before pushing.
        if self.obj().is_live() {
            let pts = buffer.pts();
            (pts, pts.opt_add(buffer.duration()))
        } else {
            (None, None)
        }
    }
}

impl PushSrcImpl for MjpegFileSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let looping = lock(&self.settings).looping;
        let mut guard = lock(&self.state);
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;

        if state.next >= state.stop {
            let at_end = state.stop == state.index.len();
            if let (true, Some(corrupt)) = (at_end, state.index.error()) {
                let message = format!(
                    "{}: corrupt {corrupt} (set skip-corrupt=true to skip bad frames)",
                    state.path.display()
                );
                // Posted without the lock: a bus sync handler may query this element.
                drop(guard);
                gst::element_imp_error!(self, gst::StreamError::Decode, ("{}", message));
                return Err(gst::FlowError::Error);
            }
            if !(at_end && looping) {
                return Err(gst::FlowError::Eos);
            }
            state.next = 0;
            state.loops += 1;
            gst::debug!(CAT, imp = self, "looping, pass {}", state.loops + 1);
        }

        if self.obj().is_live() && state.live_origin.is_none() {
            state.live_origin = Some(self.live_origin(state));
        }

        let frame = *state.index.get(state.next).ok_or(gst::FlowError::Eos)?;
        let timeline = state.timeline_frame();
        let mut buffer = gst::Buffer::new();
        {
            let buffer = buffer.get_mut().ok_or(gst::FlowError::Error)?;
            buffer.append_memory(gst::Memory::from_slice(FrameSlice {
                file: Arc::clone(&state.file),
                range: frame.range(),
            }));
            let pts = state.pts_of(timeline);
            buffer.set_pts(pts);
            buffer.set_duration(state.pts_of(timeline + 1) - pts);
            buffer.set_offset(state.next as u64);
            buffer.set_offset_end(state.next as u64 + 1);
        }
        state.next += 1;

        let new_caps = (state.caps_format != Some(frame.format)).then(|| {
            state.caps_format = Some(frame.format);
            caps_for(&frame.format, state.rate)
        });
        drop(guard);

        if let Some(caps) = new_caps {
            gst::debug!(CAT, imp = self, "caps for frame {}: {}", frame.offset, caps);
            self.obj().set_caps(&caps).map_err(|_| {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Downstream does not accept {}", caps)
                );
                gst::FlowError::NotNegotiated
            })?;
        }
        Ok(CreateSuccess::NewBuffer(buffer))
    }
}

impl MjpegFileSrc {
    /// In live mode, the first frame after start or a seek is stamped with the current
    /// running time (mapped into the segment), so the clock paces what follows.
    fn live_origin(&self, state: &State) -> gst::ClockTime {
        let segment = self.obj().segment();
        let segment = segment.downcast_ref::<gst::ClockTime>();
        let start = segment
            .and_then(|s| s.start())
            .unwrap_or(gst::ClockTime::ZERO);
        let origin = self
            .obj()
            .current_running_time()
            .and_then(|rt| segment.and_then(|s| s.position_from_running_time(rt)))
            .unwrap_or(start);
        gst::debug!(CAT, imp = self, "live: frame {} at {}", state.first, origin);
        origin
    }
}

impl URIHandlerImpl for MjpegFileSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

    fn protocols() -> &'static [&'static str] {
        &["file"]
    }

    fn uri(&self) -> Option<String> {
        let settings = lock(&self.settings);
        let path = settings.location.as_ref()?;
        let absolute = std::path::absolute(path).ok()?;
        glib::filename_to_uri(absolute, None).ok().map(String::from)
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        let (path, _host) = glib::filename_from_uri(uri).map_err(|e| {
            glib::Error::new(gst::URIError::BadUri, &format!("{uri}: {}", e.message()))
        })?;
        self.set_location(Some(path))
    }
}
