//! The media catalog: every clip the server serves, payloaded once at start by the
//! project's own elements (`mjpegfilesrc ! rtpmjpegpay ! appsink`) and kept as read-only
//! mapped memory that all sessions share. `mjpegfilesrc` hands out slices of the
//! memory-mapped file and `rtpmjpegpay` slices of those, so a clip costs its packets'
//! small header memories, not a copy of the file. Sessions send these packets with their
//! own RTP header (sequence number, timestamp, SSRC) in front.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use gst::prelude::*;

/// File name endings served from a folder.
pub const CLIP_EXTENSIONS: [&str; 3] = ["mjpeg", "mjpg", "Mjpeg"];

type Mapped = gst::MappedMemory<gst::memory::Readable>;

/// One RTP packet as the payloader made it.
pub struct Packet {
    /// The packet's memories; the first holds at least the 12-byte RTP header.
    memories: Vec<Mapped>,
}

impl Packet {
    pub fn new(buffer: &gst::BufferRef) -> Result<Packet> {
        let mut memories = Vec::with_capacity(buffer.n_memory());
        for memory in buffer.iter_memories_owned() {
            memories.push(
                memory
                    .into_mapped_memory_readable()
                    .map_err(|_| anyhow!("unreadable packet"))?,
            );
        }
        if memories.first().is_none_or(|m| m.len() < 12) {
            // Not the payloader's usual layout: keep one contiguous copy.
            let map = buffer.map_readable().context("unreadable packet")?;
            if map.len() < 12 {
                bail!("the payloader made a packet of {} bytes", map.len());
            }
            let memory = gst::Memory::from_slice(map.as_slice().to_vec());
            memories = vec![
                memory
                    .into_mapped_memory_readable()
                    .map_err(|_| anyhow!("unreadable packet"))?,
            ];
        }
        Ok(Packet { memories })
    }

    /// The RTP header's second byte (marker bit and payload type).
    pub fn marker_and_type(&self) -> u8 {
        self.memories[0][1]
    }

    /// The packet after its RTP header, as slices to send without copying.
    pub fn body(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.memories[0][12..])
            .chain(self.memories[1..].iter().map(|m| m.as_slice()))
            .filter(|s| !s.is_empty())
    }

    pub fn body_len(&self) -> usize {
        self.memories.iter().map(|m| m.len()).sum::<usize>() - 12
    }
}

/// One video frame: its RFC 2435 packets, and the whole JPEG for lab clients.
pub struct Frame {
    pub packets: Vec<Packet>,
    pub jpeg: Mapped,
}

/// What a path serves.
#[derive(Clone)]
pub enum Media {
    /// A file: each session has its own position, seeks and pauses.
    Clip(Arc<Clip>),
    /// A live source: every session gets the current frames.
    Live(Arc<crate::server::live::LivePath>),
}

impl Media {
    /// The path's name (the URL's last part).
    pub fn name(&self) -> &str {
        match self {
            Media::Clip(clip) => &clip.name,
            Media::Live(live) => &live.name,
        }
    }

    /// The frame rate the stream is timed at, when the path has one.
    pub fn fps(&self) -> Option<u32> {
        match self {
            Media::Clip(clip) => Some(clip.fps),
            Media::Live(_) => None,
        }
    }
}

/// A clip, ready to send.
pub struct Clip {
    /// The name clients ask for: the file name.
    pub name: String,
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: Vec<Frame>,
}

impl Clip {
    pub fn duration(&self) -> f64 {
        self.frames.len() as f64 / f64::from(self.fps)
    }

    /// The frame shown at `seconds` (frame-accurate: the one whose display interval
    /// contains it), or `None` past the end.
    pub fn frame_at(&self, seconds: f64) -> Option<usize> {
        let frame = (seconds * f64::from(self.fps) + 1e-6).floor();
        (frame >= 0.0 && (frame as usize) < self.frames.len()).then_some(frame as usize)
    }

    pub fn time_of(&self, frame: u64) -> f64 {
        frame as f64 / f64::from(self.fps)
    }
}

/// The clips named on the command line: files, and the clip files of folders (not their
/// subfolders, and no symbolic link that leads out of the folder).
pub fn find_clips(paths: &[PathBuf]) -> Result<BTreeMap<String, PathBuf>> {
    let mut clips = BTreeMap::new();
    for path in paths {
        let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        if meta.is_dir() {
            let folder = path
                .canonicalize()
                .with_context(|| format!("{}", path.display()))?;
            for entry in
                std::fs::read_dir(&folder).with_context(|| format!("{}", path.display()))?
            {
                let entry = entry?;
                let file = entry.path();
                let is_clip = file
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| CLIP_EXTENSIONS.contains(&e));
                let inside = file
                    .canonicalize()
                    .is_ok_and(|real| real.starts_with(&folder) && real.is_file());
                if is_clip && inside {
                    add(&mut clips, &file)?;
                } else if is_clip {
                    tracing::warn!(
                        "not serving {}: it leads out of {}",
                        file.display(),
                        folder.display()
                    );
                }
            }
        } else {
            add(&mut clips, path)?;
        }
    }
    Ok(clips)
}

fn add(clips: &mut BTreeMap<String, PathBuf>, file: &Path) -> Result<()> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{}: the file name is not UTF-8", file.display()))?
        .to_string();
    if let Some(other) = clips.insert(name.clone(), file.to_path_buf()) {
        bail!(
            "two clips are named {name}: {} and {}",
            other.display(),
            file.display()
        );
    }
    Ok(())
}

/// Reads and payloads a clip.
pub fn load(name: &str, path: &Path, fps: u32, mtu: u32) -> Result<Arc<Clip>> {
    let what = || format!("{}", path.display());
    let (jpegs, width, height) = run(path, fps, None).with_context(what)?;
    let (packets, _, _) = run(path, fps, Some(mtu)).with_context(what)?;
    let mut frames = Vec::with_capacity(jpegs.len());
    let mut packets = packets.into_iter();
    for jpeg in jpegs {
        let mut frame_packets = Vec::new();
        for buffer in packets.by_ref() {
            let packet = Packet::new(&buffer)?;
            let last = packet.marker_and_type() & 0x80 != 0;
            frame_packets.push(packet);
            if last {
                break;
            }
        }
        if frame_packets.is_empty() {
            bail!(
                "{}: the payloader made fewer frames than the file has",
                path.display()
            );
        }
        let jpeg = jpeg
            .memory(0)
            .ok_or_else(|| anyhow!("empty frame"))?
            .into_mapped_memory_readable()
            .map_err(|_| anyhow!("unreadable frame"))?;
        frames.push(Frame {
            packets: frame_packets,
            jpeg,
        });
    }
    if frames.is_empty() {
        bail!("{}: no frames", path.display());
    }
    Ok(Arc::new(Clip {
        name: name.to_string(),
        path: path.to_path_buf(),
        width,
        height,
        fps,
        frames,
    }))
}

/// Runs `mjpegfilesrc [! rtpmjpegpay] ! appsink` to the end: the buffers and the frame size.
fn run(path: &Path, fps: u32, mtu: Option<u32>) -> Result<(Vec<gst::Buffer>, u32, u32)> {
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("mjpegfilesrc")
        .property("location", path.to_string_lossy().as_ref())
        .property("framerate", gst::Fraction::new(fps as i32, 1))
        .build()?;
    let sink = gst_app::AppSink::builder().sync(false).build();
    pipeline.add(&src)?;
    pipeline.add(&sink)?;
    match mtu {
        Some(mtu) => {
            let pay = gst::ElementFactory::make("rtpmjpegpay")
                .property("mtu", mtu)
                .build()?;
            pipeline.add(&pay)?;
            gst::Element::link_many([&src, &pay, sink.upcast_ref()])?;
        }
        None => src.link(&sink)?,
    }
    pipeline.set_state(gst::State::Playing)?;
    let mut buffers = Vec::new();
    let result = loop {
        match sink.pull_sample() {
            Ok(sample) => {
                if let Some(buffer) = sample.buffer_owned() {
                    buffers.push(buffer);
                }
            }
            Err(_) => break bus_error(&pipeline),
        }
    };
    let caps = src.static_pad("src").and_then(|p| p.current_caps());
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let size = caps
        .as_ref()
        .and_then(|c| c.structure(0))
        .and_then(|s| Some((s.get::<i32>("width").ok()?, s.get::<i32>("height").ok()?)))
        .ok_or_else(|| anyhow!("no frame size"))?;
    Ok((buffers, size.0 as u32, size.1 as u32))
}

/// After the appsink stopped: the pipeline's error, if that is why.
fn bus_error(pipeline: &gst::Pipeline) -> Result<()> {
    let Some(bus) = pipeline.bus() else {
        return Ok(());
    };
    while let Some(message) = bus.pop() {
        if let gst::MessageView::Error(e) = message.view() {
            bail!("{}", e.error());
        }
    }
    Ok(())
}
