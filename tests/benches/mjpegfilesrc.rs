//! `make bench`: mjpegfilesrc against the standard way to read a Motion-JPEG file,
//! `filesrc ! jpegparse`, on the same 720p clip in one run.
//!
//! Each configuration plays the whole clip into `fakesink sync=false`; the time counts from
//! PLAYING to EOS, so mjpegfilesrc's indexing at start is included. Runs are interleaved
//! (anchor, ours, anchor, ours, ...) so background load hits both alike, and every run
//! must deliver every frame. Reported: the median frames/s of each, and the ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use gst::prelude::*;
use mjpeg_rtsp_tests::{encode_with, init, lab_file, write_file};

const FRAMES: usize = 300;
const RUNS: usize = 7;
const TARGET_RATIO: f64 = 5.0;

struct Case {
    name: &'static str,
    pipeline: String,
    frames_per_second: Vec<f64>,
}

/// Plays `description` to EOS and returns the frames/s, checking every frame arrived.
fn frames_per_second(description: &str) -> f64 {
    let pipeline = gst::parse::launch(description)
        .expect("valid pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline.by_name("sink").expect("a sink named sink");
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    sink.static_pad("sink")
        .expect("sink pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().expect("bus");
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing).expect("plays");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(120),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("finishes");
    let elapsed = start.elapsed();
    pipeline.set_state(gst::State::Null).expect("stops");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("{description}: {}", e.error());
    }
    let n = count.load(Ordering::Relaxed);
    assert_eq!(n, FRAMES, "{description} delivered {n} frames");
    n as f64 / elapsed.as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    (min, max)
}

/// Median time of `f` over `RUNS` runs, in milliseconds.
fn time_ms(mut f: impl FnMut()) -> f64 {
    let runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&runs)
}

/// The core's share: indexing the files in memory, and the entropy-coded-data search
/// with and without SIMD.
fn index_costs(concatenated: &[u8], lab: &[u8]) {
    use gstmjpegrtp::jpeg::scan;
    use gstmjpegrtp::mjpeg::{FrameIndex, Framing};
    let mb = concatenated.len() as f64 / 1e6;
    let count_scan_ends = |find: fn(&[u8], usize) -> Option<usize>| {
        let (mut pos, mut n) = (0, 0);
        while let Some(end) = find(concatenated, pos) {
            n += 1;
            pos = end + 2;
        }
        std::hint::black_box(n);
    };
    println!();
    println!("core costs (in memory, median of {RUNS}):");
    let ms = time_ms(|| {
        std::hint::black_box(FrameIndex::build(
            concatenated,
            Framing::Concatenated,
            false,
        ));
    });
    println!(
        "  index concatenated file   {ms:>7.2} ms  ({:.1} GB/s)",
        mb / ms
    );
    let ms = time_ms(|| {
        std::hint::black_box(FrameIndex::build(lab, Framing::Lab, false));
    });
    println!("  index lab file            {ms:>7.2} ms");
    let simd = time_ms(|| count_scan_ends(scan::find_scan_end));
    let scalar = time_ms(|| count_scan_ends(scan::find_scan_end_scalar));
    println!(
        "  scan-end search           {simd:>7.2} ms  (memchr loop: {scalar:.2} ms, {:.1}x)",
        scalar / simd
    );
}

fn main() {
    init();
    println!(
        "mjpegfilesrc benchmark: {FRAMES} frames of 1280x720 4:2:0 JPEG, {RUNS} interleaved runs each"
    );
    let frames = encode_with(
        FRAMES,
        1280,
        720,
        "smpte horizontal-speed=3",
        "jpegenc quality=85",
    );
    let bytes: usize = frames.iter().map(Vec::len).sum();
    println!(
        "clip: {:.1} MB, {} bytes per frame on average",
        bytes as f64 / 1e6,
        bytes / FRAMES
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let (concatenated_bytes, lab_bytes) = (frames.concat(), lab_file(&frames));
    let concatenated = write_file(dir.path(), "clip720p.mjpeg", &concatenated_bytes);
    let lab = write_file(dir.path(), "clip720p.Mjpeg", &lab_bytes);

    let mut cases = [
        Case {
            name: "filesrc ! jpegparse (anchor)",
            pipeline: format!(
                "filesrc location={} ! jpegparse ! fakesink name=sink sync=false",
                concatenated.display()
            ),
            frames_per_second: vec![],
        },
        Case {
            name: "mjpegfilesrc, same concatenated file",
            pipeline: format!(
                "mjpegfilesrc location={} ! fakesink name=sink sync=false",
                concatenated.display()
            ),
            frames_per_second: vec![],
        },
        Case {
            name: "mjpegfilesrc, same frames in lab format",
            pipeline: format!(
                "mjpegfilesrc location={} ! fakesink name=sink sync=false",
                lab.display()
            ),
            frames_per_second: vec![],
        },
    ];
    // One warm-up pass of each (page cache, plugin loading), not counted.
    for case in &cases {
        frames_per_second(&case.pipeline);
    }
    for _ in 0..RUNS {
        for case in &mut cases {
            case.frames_per_second
                .push(frames_per_second(&case.pipeline));
        }
    }

    let anchor = median(&cases[0].frames_per_second);
    println!();
    println!(
        "{:<42} {:>10} {:>10}   min..max frames/s",
        "configuration", "frames/s", "vs anchor"
    );
    for case in &cases {
        let m = median(&case.frames_per_second);
        let (lo, hi) = spread(&case.frames_per_second);
        println!(
            "{:<42} {m:>10.0} {:>9.1}x   {lo:.0}..{hi:.0}",
            case.name,
            m / anchor
        );
    }
    let ratio = median(&cases[1].frames_per_second) / anchor;
    println!();
    println!(
        "mjpegfilesrc vs filesrc ! jpegparse on the same file: {ratio:.1}x (target >= {TARGET_RATIO}x: {})",
        if ratio >= TARGET_RATIO {
            "met"
        } else {
            "NOT MET"
        }
    );
    index_costs(&concatenated_bytes, &lab_bytes);
}
