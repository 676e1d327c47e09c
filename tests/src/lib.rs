//! Support for the project's tests and benchmarks: real JPEG clips made by GStreamer's
//! `jpegenc`, a pipeline runner that collects what reaches an `appsink`, and commands for
//! the GStreamer tools pointed at the plugin this workspace built.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;

pub mod bench;
pub mod capture;
pub mod haproxy;
pub mod http_client;
pub mod lab_server;
pub mod metrics;
pub mod mjpeg_http;
pub mod multicast;
pub mod netns;
pub mod relay;
pub mod rtsp;
pub mod server_process;
pub mod tier;

/// Initialises GStreamer and registers this workspace's plugin in-process.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstmjpegrtp::plugin_register_static().expect("the mjpegrtp plugin registers");
    });
}

/// Encodes `n` frames of `videotestsrc` (pattern `pattern`) as 4:2:0 baseline JPEG.
pub fn encode_jpegs(n: usize, width: u32, height: u32, pattern: &str) -> Vec<Vec<u8>> {
    encode_with(n, width, height, pattern, "jpegenc")
}

/// Like [`encode_jpegs`] with a custom encoder description (for example
/// `"jpegenc quality=60"`).
pub fn encode_with(n: usize, width: u32, height: u32, pattern: &str, enc: &str) -> Vec<Vec<u8>> {
    init();
    let run = run_pipeline(
        &format!(
            "videotestsrc num-buffers={n} pattern={pattern} \
             ! video/x-raw,format=I420,width={width},height={height},framerate=20/1 \
             ! {enc} ! appsink name=sink sync=false"
        ),
        Duration::from_secs(120),
    );
    assert!(run.error.is_none(), "encoding failed: {:?}", run.error);
    run.buffers()
}

/// A lab-format (`.Mjpeg`) file holding `frames`.
pub fn lab_file(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        gstmjpegrtp::mjpeg::lab::write_frame(&mut out, frame).expect("frame fits the lab format");
    }
    out
}

/// The JPEGs of a lab-format (`.Mjpeg`) file.
pub fn lab_frames(data: &[u8]) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let frame = gstmjpegrtp::mjpeg::lab::read_frame(data, pos).expect("a lab-format frame");
        frames.push(data[frame.jpeg_offset..frame.jpeg_offset + frame.jpeg_len].to_vec());
        pos = frame.next;
    }
    frames
}

/// Byte offset of each frame's JPEG (after its length prefix) in [`lab_file`]`(frames)`.
pub fn lab_jpeg_offsets(frames: &[Vec<u8>]) -> Vec<usize> {
    let mut pos = 0;
    frames
        .iter()
        .map(|f| {
            let at = pos + 5;
            pos = at + f.len();
            at
        })
        .collect()
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("test file written");
    path
}

/// What a pipeline produced: every sample that reached the `appsink` named `sink`, and
/// the bus messages that matter.
#[derive(Debug, Default)]
pub struct Run {
    pub samples: Vec<gst::Sample>,
    /// Wall-clock arrival time of each sample.
    pub arrivals: Vec<Instant>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub eos: bool,
}

impl Run {
    pub fn buffers(&self) -> Vec<Vec<u8>> {
        self.samples
            .iter()
            .map(|s| {
                let map = s
                    .buffer()
                    .expect("sample has a buffer")
                    .map_readable()
                    .expect("readable");
                map.to_vec()
            })
            .collect()
    }

    pub fn pts(&self) -> Vec<u64> {
        self.samples
            .iter()
            .map(|s| {
                s.buffer()
                    .and_then(|b| b.pts())
                    .map_or(u64::MAX, |t| t.nseconds())
            })
            .collect()
    }

    pub fn caps(&self, n: usize) -> gst::Caps {
        self.samples[n].caps().expect("sample has caps").to_owned()
    }
}

/// The pipeline `description` describes, as gst-launch-1.0 would build it.
pub fn launch(description: &str) -> gst::Pipeline {
    init();
    gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("bad pipeline {description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline")
}

/// Runs `description` (which must contain `appsink name=sink`) to EOS or error, or until
/// `timeout`, collecting samples.
pub fn run_pipeline(description: &str, timeout: Duration) -> Run {
    let pipeline = launch(description);
    let run = collect(&pipeline, timeout);
    pipeline
        .set_state(gst::State::Null)
        .expect("pipeline stops");
    run
}

/// Plays `pipeline` to EOS or error, collecting what reaches its `appsink` named `sink`.
pub fn collect(pipeline: &gst::Pipeline, timeout: Duration) -> Run {
    let shared = Arc::new(Mutex::new(Run::default()));
    let sink = appsink(pipeline);
    let store = shared.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let mut run = store.lock().unwrap();
                run.samples.push(sample);
                run.arrivals.push(Instant::now());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    let bus = pipeline.bus().expect("pipeline has a bus");
    // A failed state change leaves its reason as an error message on the bus.
    let _ = pipeline.set_state(gst::State::Playing);
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            break;
        };
        let mut run = shared.lock().unwrap();
        match msg.view() {
            gst::MessageView::Eos(_) => {
                run.eos = true;
                break;
            }
            gst::MessageView::Error(e) => {
                run.error = Some(e.error().to_string());
                break;
            }
            gst::MessageView::Warning(w) => run.warnings.push(w.error().to_string()),
            gst::MessageView::Info(i) => run.infos.push(i.error().to_string()),
            _ => {}
        }
    }
    pipeline
        .set_state(gst::State::Null)
        .expect("pipeline stops");
    std::mem::take(&mut *shared.lock().unwrap())
}

pub fn appsink(pipeline: &gst::Pipeline) -> gst_app::AppSink {
    pipeline
        .by_name("sink")
        .expect("an element named sink")
        .downcast::<gst_app::AppSink>()
        .expect("sink is an appsink")
}

/// The workspace's top directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Cargo's target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the plugin, the apps and the load generator with the cargo, profile and target
/// directory of this test or benchmark run, once per process: end-to-end tests run the
/// binaries and load the plugin from there, and need no build beforehand.
pub fn build_binaries() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root())
            .args(["build", "--locked", "--quiet"])
            .args(["-p", "gst-plugin-mjpegrtp", "-p", "mjpeg-rtsp-apps"])
            .args(["-p", "mjpeg-rtsp-bench"])
            .env("CARGO_TARGET_DIR", target_dir());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building the plugin and the apps failed");
    });
}

/// The directory holding the `libgstmjpegrtp.so` (and the apps) built for this test run's
/// profile, built first if need be.
pub fn plugin_dir() -> PathBuf {
    build_binaries();
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let dir = target_dir().join(profile);
    let lib = dir.join("libgstmjpegrtp.so");
    assert!(
        lib.exists(),
        "{} is missing: build the plugin first (`make test` does, or `cargo build -p \
         gst-plugin-mjpegrtp`)",
        lib.display()
    );
    dir
}

/// A GStreamer command-line tool (`gst-launch-1.0`, `gst-inspect-1.0`) that loads this
/// workspace's plugin from a private registry.
pub fn gst_tool(tool: &str, registry_dir: &Path) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env("GST_PLUGIN_PATH", plugin_dir())
        .env("GST_REGISTRY", registry_dir.join("registry.bin"))
        .env_remove("GST_DEBUG");
    cmd
}

/// A pipeline from `description`, which must start with `appsrc name=src` (fed JPEGs at
/// 20 frames/s by [`feed_jpegs`]) and end with `appsink name=sink`.
pub fn jpeg_pipeline(description: &str) -> gst::Pipeline {
    let pipeline = launch(description);
    let src = appsrc(&pipeline);
    src.set_caps(Some(
        &gst::Caps::builder("image/jpeg")
            .field("framerate", gst::Fraction::new(20, 1))
            .build(),
    ));
    src.set_format(gst::Format::Time);
    pipeline
}

/// The pipeline's appsrc named `src`.
pub fn appsrc(pipeline: &gst::Pipeline) -> gst_app::AppSrc {
    pipeline
        .by_name("src")
        .expect("an element named src")
        .downcast::<gst_app::AppSrc>()
        .expect("src is an appsrc")
}

/// Queues `jpegs` and EOS in the pipeline's appsrc, 50 ms apart.
pub fn feed_jpegs(pipeline: &gst::Pipeline, jpegs: &[Vec<u8>]) {
    let src = appsrc(pipeline);
    for (n, jpeg) in jpegs.iter().enumerate() {
        let mut buffer = gst::Buffer::from_slice(jpeg.clone());
        let b = buffer.get_mut().expect("new buffer is writable");
        b.set_pts(gst::ClockTime::from_mseconds(50 * n as u64));
        b.set_duration(gst::ClockTime::from_mseconds(50));
        src.push_buffer(buffer).expect("appsrc accepts the buffer");
    }
    src.end_of_stream().expect("appsrc accepts EOS");
}

/// Pushes `jpegs` through a [`jpeg_pipeline`] and collects what comes out.
pub fn run_jpegs_through(jpegs: &[Vec<u8>], description: &str, timeout: Duration) -> Run {
    let pipeline = jpeg_pipeline(description);
    feed_jpegs(&pipeline, jpegs);
    collect(&pipeline, timeout)
}

/// Decodes one JPEG with GStreamer's jpegdec: the raw frame's caps, and its visible
/// pixels plane by plane (row padding, whose bytes are undefined, left out).
pub fn decode_jpeg(jpeg: &[u8]) -> (gst::Caps, Vec<u8>) {
    let run = run_jpegs_through(
        &[jpeg.to_vec()],
        "appsrc name=src ! jpegdec ! appsink name=sink sync=false",
        Duration::from_secs(60),
    );
    assert!(run.error.is_none(), "jpegdec failed: {:?}", run.error);
    assert_eq!(run.samples.len(), 1, "jpegdec gave no frame");
    let caps = run.caps(0);
    let info = gst_video::VideoInfo::from_caps(&caps).expect("raw video caps");
    let buffer = run.samples[0].buffer().expect("a buffer");
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
        .expect("a readable frame");
    let mut pixels = Vec::new();
    for plane in 0..info.n_planes() {
        let data = frame.plane_data(plane).expect("plane data");
        let stride = info.stride()[plane as usize] as usize;
        let row = info.comp_width(plane as u8) as usize * info.comp_pstride(plane as u8) as usize;
        for y in 0..info.comp_height(plane as u8) as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
    }
    (caps, pixels)
}

/// The entropy-coded data of a JPEG's first scan.
pub fn scan_data(jpeg: &[u8]) -> Vec<u8> {
    let image = gstmjpegrtp::jpeg::parse_image(jpeg).expect("a valid JPEG");
    jpeg[image.scan_data].to_vec()
}

/// A free UDP port on 127.0.0.1 (free when this returns).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a local UDP port")
        .port()
}

/// A TCP port on 127.0.0.1 nothing listens on (bound, then let go).
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a local TCP port")
        .port()
}

/// Locks a mutex of the test helpers, whether or not a thread panicked holding it.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Joins every thread in `threads`, including those started while joining.
pub fn join_all(threads: &std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>) {
    loop {
        let handles: Vec<_> = lock(threads).drain(..).collect();
        if handles.is_empty() {
            return;
        }
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// Polls `get` every 5 ms until `done` holds for its value, and returns that value; the
/// last value as the error when `timeout` passes first.
pub fn poll<T>(
    timeout: std::time::Duration,
    mut get: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> Result<T, T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let value = get();
        if done(&value) {
            return Ok(value);
        }
        if std::time::Instant::now() >= deadline {
            return Err(value);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Runs `cmd` to its end (killed after `limit`, which fails the test): its status, stdout
/// and stderr, both read while it runs so a chatty tool never blocks on a full pipe.
pub fn run_to_end(
    cmd: &mut Command,
    limit: Duration,
) -> (std::process::ExitStatus, String, String) {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().expect("piped stdout")));
    let err = read(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish in {limit:?}: {}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// The tests' Python (target/py: a venv with the system's gi and cv2, and the PyPI
/// packages the bootstrap installs); panics naming the fix when it is missing.
pub fn python() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make test` (or scripts/bootstrap.sh) to create it",
        python.display()
    );
    python
}

/// Runs `script` with the tests' [`python`] (`python -c SCRIPT ARGS...`) to its end or
/// `limit`: its exit status, stdout and stderr.
pub fn run_python<S: AsRef<std::ffi::OsStr>>(
    script: &str,
    args: &[S],
    limit: Duration,
) -> (std::process::ExitStatus, String, String) {
    run_to_end(
        Command::new(python()).arg("-c").arg(script).args(args),
        limit,
    )
}

/// GStreamer's rtspsrc (over TCP) decodes `frames` of `url` within `wait`; `credentials`
/// go into its `user-id` and `user-pw`. The error says what it saw instead.
pub fn rtspsrc_decodes(
    url: &str,
    credentials: Option<(&str, &str)>,
    frames: usize,
    wait: std::time::Duration,
) -> Result<(), String> {
    gst::init().unwrap();
    let props = credentials
        .map(|(u, p)| format!("user-id={u} user-pw={p}"))
        .unwrap_or_default();
    let pipeline = gst::parse::launch(&format!(
        "rtspsrc location={url} {props} latency=100 protocols=tcp ! rtpjpegdepay ! jpegdec ! fakesink name=sink"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    let decoded = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let decoded = decoded.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let deadline = std::time::Instant::now() + wait;
    let mut error = None;
    while decoded.load(std::sync::atomic::Ordering::Relaxed) < frames
        && std::time::Instant::now() < deadline
    {
        if let Some(bus) = pipeline.bus()
            && let Some(msg) = bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(50),
                &[gst::MessageType::Error],
            )
        {
            error = Some(format!("{msg:?}"));
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    let n = decoded.load(std::sync::atomic::Ordering::Relaxed);
    match error {
        Some(e) => Err(e),
        None if n < frames => Err(format!("{n} frames decoded")),
        None => Ok(()),
    }
}

/// ffmpeg reading `url` (with `input` options before `-i`, `output` after it) to frame
/// checksums within `limit`: its exit status, the decoded frames' sizes and the stream's
/// dimensions (`WxH`).
pub fn ffmpeg_framecrc(
    input: &[&str],
    url: &str,
    output: &[&str],
    limit: std::time::Duration,
) -> (bool, Vec<usize>, String) {
    ffmpeg_framecrc_with(Command::new("ffmpeg"), input, url, output, limit)
}

/// [`ffmpeg_framecrc`] with `ffmpeg` as `command` starts it (for example inside a
/// network namespace: [`netns::Netns::command`]).
pub fn ffmpeg_framecrc_with(
    mut command: Command,
    input: &[&str],
    url: &str,
    output: &[&str],
    limit: std::time::Duration,
) -> (bool, Vec<usize>, String) {
    let (status, out, err) = run_to_end(
        command
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(input)
            .args(["-i", url])
            .args(output)
            .args(["-f", "framecrc", "-"]),
        limit,
    );
    let sizes = out
        .lines()
        .filter(|l| l.starts_with("0,"))
        .map(|l| {
            l.split(',')
                .nth(4)
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let dimensions = out
        .lines()
        .find_map(|l| l.strip_prefix("#dimensions 0:"))
        .unwrap_or("")
        .trim()
        .to_string();
    if !status.success() {
        eprintln!("ffmpeg {url}: {status}: {err}");
    }
    (status.success(), sizes, dimensions)
}
