//! `make bench`: mjpegfilesrc against the standard way to read a Motion-JPEG file,
//! `filesrc ! jpegparse`, on the same 720p clip in one run.
//!
//! Each configuration plays the whole clip into `fakesink sync=false`; the time counts from
//! PLAYING to EOS, so mjpegfilesrc's indexing at start is included. Runs are interleaved
//! (anchor, ours, anchor, ours, ...) so background load hits both alike, and every run
//! must deliver every frame. Reported: the median frames/s of each, and the ratio.

use gstmjpegrtp::jpeg::scan;
use gstmjpegrtp::mjpeg::{FrameIndex, Framing};
use mjpeg_rtsp_tests::bench::{Case, clip_720p, measure, report, time_ms, verdict};
use mjpeg_rtsp_tests::{init, lab_file, launch, write_file};

const FRAMES: usize = 300;
const RUNS: usize = 7;
const TARGET_RATIO: f64 = 5.0;

fn pipeline(description: String) -> impl Fn() -> gst::Pipeline {
    move || launch(&description)
}

/// The core's share: indexing the files in memory, and the entropy-coded-data search
/// with and without SIMD.
fn index_costs(concatenated: &[u8], lab: &[u8]) {
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
    let ms = time_ms(RUNS, || {
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
    let ms = time_ms(RUNS, || {
        std::hint::black_box(FrameIndex::build(lab, Framing::Lab, false));
    });
    println!("  index lab file            {ms:>7.2} ms");
    let simd = time_ms(RUNS, || count_scan_ends(scan::find_scan_end));
    let scalar = time_ms(RUNS, || count_scan_ends(scan::find_scan_end_scalar));
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
    let frames = clip_720p(FRAMES);
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
    let sink = "fakesink name=sink sync=false";

    let mut cases = vec![
        Case::new(
            "filesrc ! jpegparse (anchor)",
            pipeline(format!(
                "filesrc location={} ! jpegparse ! {sink}",
                concatenated.display()
            )),
        ),
        Case::new(
            "mjpegfilesrc, same concatenated file",
            pipeline(format!(
                "mjpegfilesrc location={} ! {sink}",
                concatenated.display()
            )),
        ),
        Case::new(
            "mjpegfilesrc, same frames in lab format",
            pipeline(format!("mjpegfilesrc location={} ! {sink}", lab.display())),
        ),
    ];
    measure(&mut cases, RUNS, |name, n, t| {
        assert_eq!(n, FRAMES, "{name} delivered {n} frames");
        n as f64 / t.as_secs_f64()
    });
    report("reading the clip", "frames/s", &cases);
    let ratio = cases[1].median() / cases[0].median();
    println!();
    println!(
        "mjpegfilesrc vs filesrc ! jpegparse on the same file: {ratio:.1}x (target >= {TARGET_RATIO}x: {})",
        verdict(ratio >= TARGET_RATIO)
    );
    index_costs(&concatenated_bytes, &lab_bytes);
}
