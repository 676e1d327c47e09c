//! Measuring pipelines for `make bench`: each configuration runs to EOS several times,
//! interleaved with the others, and reports the median rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;

/// One measured configuration: a name, a way to build its pipeline, the rates measured.
pub struct Case {
    pub name: String,
    pub build: Box<dyn Fn() -> gst::Pipeline>,
    pub rates: Vec<f64>,
}

impl Case {
    pub fn new(name: &str, build: impl Fn() -> gst::Pipeline + 'static) -> Case {
        Case {
            name: name.to_string(),
            build: Box::new(build),
            rates: Vec::new(),
        }
    }

    pub fn median(&self) -> f64 {
        median(&self.rates)
    }
}

/// Plays the pipeline to EOS and returns (buffers counted, elapsed time). Buffers are
/// counted where they enter the element named `sink`; or, if the pipeline has an element
/// named `measured`, where they leave it, and dropped there, so that what a sink does per
/// buffer is not part of the time. Buffer lists count their buffers.
pub fn time_to_eos(pipeline: &gst::Pipeline) -> (usize, Duration) {
    let (pad, verdict) = match pipeline.by_name("measured") {
        Some(element) => (element.static_pad("src"), gst::PadProbeReturn::Drop),
        None => (
            pipeline.by_name("sink").and_then(|s| s.static_pad("sink")),
            gst::PadProbeReturn::Ok,
        ),
    };
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    pad.expect("a measured src pad or a sink pad").add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        move |_, info| {
            let n = match &info.data {
                Some(gst::PadProbeData::BufferList(list)) => list.len(),
                Some(gst::PadProbeData::Buffer(_)) => 1,
                _ => 0,
            };
            counter.fetch_add(n, Ordering::Relaxed);
            match verdict {
                gst::PadProbeReturn::Drop => gst::PadProbeReturn::Drop,
                _ => gst::PadProbeReturn::Ok,
            }
        },
    );
    let bus = pipeline.bus().expect("bus");
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing).expect("plays");
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("finishes");
    let elapsed = start.elapsed();
    pipeline.set_state(gst::State::Null).expect("stops");
    if let gst::MessageView::Error(e) = msg.view() {
        panic!("benchmark pipeline failed: {}", e.error());
    }
    (count.load(Ordering::Relaxed), elapsed)
}

/// Runs every case once as a warm-up, then `runs` times, interleaved. `rate` turns
/// (buffers at the sink, elapsed) into the figure reported, and may check the count.
pub fn measure(cases: &mut [Case], runs: usize, rate: impl Fn(&str, usize, Duration) -> f64) {
    for case in cases.iter() {
        let (n, t) = time_to_eos(&(case.build)());
        rate(&case.name, n, t);
    }
    for _ in 0..runs {
        for case in cases.iter_mut() {
            let (n, t) = time_to_eos(&(case.build)());
            let r = rate(&case.name, n, t);
            case.rates.push(r);
        }
    }
}

/// Prints a table of the cases against the first (the anchor).
pub fn report(title: &str, unit: &str, cases: &[Case]) {
    let anchor = cases[0].median();
    println!();
    println!("{title}");
    println!(
        "  {:<44} {:>12} {:>10}   min..max",
        "configuration", unit, "vs anchor"
    );
    for case in cases {
        let (lo, hi) = spread(&case.rates);
        println!(
            "  {:<44} {:>12.0} {:>9.2}x   {lo:.0}..{hi:.0}",
            case.name,
            case.median(),
            case.median() / anchor
        );
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

pub fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(0.0, f64::max);
    (min, max)
}

/// Median time of `f` over `runs` runs, in milliseconds.
pub fn time_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let times: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    median(&times)
}

/// "met" or "NOT MET", for a target line.
pub fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

/// The clip both benchmarks use: `frames` frames of 1280x720 4:2:0 JPEG of scrolling SMPTE
/// bars at quality 85 (about 66 KB each), made by GStreamer's jpegenc.
pub fn clip_720p(frames: usize) -> Vec<Vec<u8>> {
    crate::encode_with(
        frames,
        1280,
        720,
        "smpte horizontal-speed=3",
        "jpegenc quality=85",
    )
}

/// Builds the apps, the load generator and the plugin with the same cargo, profile and
/// target directory as the running benchmark (the benchmarks run the binaries as
/// processes).
pub fn build_apps() {
    crate::build_binaries();
}

/// A binary of this build (the apps, next to the plugin).
pub fn binary(name: &str) -> std::path::PathBuf {
    crate::plugin_dir().join(name)
}

/// A process's CPU time, in seconds, now.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields count from the last ')': the command name may hold spaces.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no memory arguments.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}
