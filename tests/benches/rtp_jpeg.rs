//! `make bench`: rtpmjpegpay and rtpmjpegdepay against GStreamer's rtpjpegpay/rtpjpegdepay
//! (the anchors) and gst-plugins-rs's rtpjpegpay2/rtpjpegdepay2, on the same 720p frames,
//! in one run; and what re-encoding non-standard Huffman tables costs.
//!
//! Payloaders: `mjpegfilesrc loop=true ! PAY ! fakesink`, packets/s at the default MTU.
//! Depayloaders: the packets rtpjpegpay made of the clip, one buffer list per frame,
//! into `appsrc ! DEPAY ! fakesink`, frames/s, in two shapes: one memory per packet, as
//! `udpsrc` (and an `appsrc` fed from a socket) delivers them, and the two memories per
//! packet (header, payload) `rtpjpegpay` makes. Each shape is fed two ways: each frame's
//! packets made (copied into fresh memory) when the depayloader's thread asks for them, so
//! that they are in the cache as a packet just received is; and all 1500 frames queued in
//! the appsrc before the clock starts (108 MB, out of the cache). The feed alone (the
//! appsrc with nothing after it) is timed too, so that each depayloader's own time per
//! frame is its pipeline's time minus the feed's. Each run goes through the clip 5 times
//! (1500 frames) to EOS, interleaved with the other configurations (7 runs each for the
//! payloaders, 15 for the depayloaders); medians are reported.
//!
//! `BENCH_ONLY=pay` or `BENCH_ONLY=depay` runs one half; `BENCH_FILTER=TEXT` only the
//! depayloader configurations whose name holds TEXT.

use std::time::Duration;

use gst::prelude::*;

use mjpeg_rtsp_tests::bench::{Case, clip_720p, measure, report, time_ms, verdict};
use mjpeg_rtsp_tests::{init, launch, run_pipeline, write_file};

const FRAMES: usize = 300;
/// Each run plays the clip this many times, so that pipeline start-up is a small part of
/// the time measured.
const PASSES: usize = 5;
const RUNS: usize = 7;
/// The depayloaders' runs are short and vary more from run to run on a shared machine:
/// more of them.
const DEPAY_RUNS: usize = 15;

/// The RTP packets rtpjpegpay makes of `clip` played `PASSES` times, one list per frame,
/// and their caps.
fn packets(clip: &str) -> (gst::Caps, Vec<gst::BufferList>) {
    let run = run_pipeline(
        &format!(
            "mjpegfilesrc location={clip} loop=true num-buffers={} ! rtpjpegpay \
             ! appsink name=sink sync=false",
            FRAMES * PASSES
        ),
        Duration::from_secs(120),
    );
    assert!(run.error.is_none(), "{:?}", run.error);
    let caps = run.caps(0);
    let mut lists = Vec::new();
    let mut current = gst::BufferList::new();
    for sample in &run.samples {
        let buffer = sample.buffer_owned().expect("a buffer");
        let marker = gst_rtp::RTPBuffer::from_buffer_readable(&buffer)
            .map(|rtp| rtp.is_marker())
            .unwrap_or(false);
        current.get_mut().expect("writable").add(buffer);
        if marker {
            lists.push(std::mem::replace(&mut current, gst::BufferList::new()));
        }
    }
    assert_eq!(lists.len(), FRAMES * PASSES);
    (caps, lists)
}

/// The same packets, each copied into one memory, as `udpsrc` delivers a datagram.
fn one_memory_each(lists: &[gst::BufferList]) -> Vec<gst::BufferList> {
    lists
        .iter()
        .map(|list| {
            let mut out = gst::BufferList::new_sized(list.len());
            for packet in list.iter() {
                let map = packet.map_readable().expect("readable");
                let mut single = gst::Buffer::from_mut_slice(map.to_vec());
                {
                    let single = single.get_mut().expect("writable");
                    single.set_pts(packet.pts());
                    single.set_dts(packet.dts());
                }
                out.get_mut().expect("writable").add(single);
            }
            out
        })
        .collect()
}

fn depay_case(
    name: &str,
    depayloader: &'static str,
    caps: &gst::Caps,
    lists: &[gst::BufferList],
) -> Case {
    let (caps, lists) = (caps.clone(), lists.to_vec());
    Case::new(name, move || {
        let pipeline = launch(&feed_pipeline(depayloader, "max-bytes=0 max-buffers=0"));
        let src = feed(&pipeline);
        src.set_caps(Some(&caps));
        src.set_format(gst::Format::Time);
        for list in &lists {
            src.push_buffer_list(list.clone()).expect("queued");
        }
        src.end_of_stream().expect("EOS queued");
        pipeline
    })
}

/// `appsrc ! DEPAY ! fakesink`; with no depayloader, the appsrc alone, named `measured`
/// so that what it pushes is counted and dropped at its output: the cost of the feed,
/// to take from the others' times.
fn feed_pipeline(depayloader: &str, appsrc_options: &str) -> String {
    if depayloader.is_empty() {
        format!("appsrc name=measured {appsrc_options} ! fakesink name=sink sync=false")
    } else {
        format!("appsrc name=src {appsrc_options} ! {depayloader} ! fakesink name=sink sync=false")
    }
}

fn feed(pipeline: &gst::Pipeline) -> gst_app::AppSrc {
    pipeline
        .by_name("src")
        .or_else(|| pipeline.by_name("measured"))
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .expect("an appsrc")
}

/// Like [`depay_case`], but each frame's packets are made the moment the depayloader's
/// thread asks for them (appsrc's need-data, in its streaming thread), copied into fresh
/// memory from `lists` with their RTP timestamps moved on: as `udpsrc` hands over a
/// datagram it has just received, the packets are in the cache when the depayloader
/// reads them. Making them is timed too, the same for every depayloader.
fn fresh_depay_case(
    name: &str,
    depayloader: &'static str,
    caps: &gst::Caps,
    lists: &[gst::BufferList],
    frames: usize,
) -> Case {
    let (caps, lists) = (caps.clone(), lists.to_vec());
    Case::new(name, move || {
        let pipeline = launch(&feed_pipeline(depayloader, ""));
        let src = feed(&pipeline);
        src.set_caps(Some(&caps));
        src.set_format(gst::Format::Time);
        let lists = lists.clone();
        let mut next = 0usize;
        src.set_callbacks(
            gst_app::AppSrcCallbacks::builder()
                .need_data(move |src, _| {
                    if next == frames {
                        let _ = src.end_of_stream();
                        return;
                    }
                    let template = &lists[next % lists.len()];
                    // Timestamps go on past the template's last frame.
                    let shift = (next / lists.len()) as u32 * 4500 * lists.len() as u32;
                    let mut list = gst::BufferList::new_sized(template.len());
                    for packet in template.iter() {
                        list.get_mut()
                            .expect("writable")
                            .add(fresh_copy(packet, shift));
                    }
                    next += 1;
                    let _ = src.push_buffer_list(list);
                })
                .build(),
        );
        pipeline
    })
}

/// A copy of `packet` in newly written memory (as many memories as it has), its RTP
/// timestamp moved on by `shift`.
fn fresh_copy(packet: &gst::BufferRef, shift: u32) -> gst::Buffer {
    let mut out = gst::Buffer::new();
    {
        let out = out.get_mut().expect("writable");
        for (i, memory) in packet.iter_memories().enumerate() {
            let map = memory.map_readable().expect("readable");
            let mut bytes = map.to_vec();
            if i == 0 {
                let ts = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
                bytes[4..8].copy_from_slice(&ts.wrapping_add(shift).to_be_bytes());
            }
            out.append_memory(gst::Memory::from_mut_slice(bytes));
        }
        out.set_pts(packet.pts());
    }
    out
}

fn main() {
    init();
    gstrsrtp::plugin_register_static().expect("gst-plugins-rs rtp plugin");
    println!(
        "RTP/JPEG benchmark: {FRAMES} frames of 1280x720 4:2:0 JPEG, {RUNS} interleaved runs each"
    );
    let frames = clip_720p(FRAMES);
    let dir = tempfile::tempdir().expect("temp dir");
    let clip = write_file(dir.path(), "clip720p.mjpeg", &frames.concat());
    let clip = clip.display().to_string();

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut summary = Vec::new();
    if only != "depay" {
        // Payloaders: once into fakesink, which handles each packet of a list on its own,
        // and once with the packets counted and dropped as they leave the payloader, which
        // times the payloading (and the file source) alone.
        let pay = |name: &str, element: &str, measured: bool| {
            let name = if measured {
                format!("{name}, output dropped")
            } else {
                name.to_string()
            };
            let tag = if measured { " name=measured" } else { "" };
            let description = format!(
                "mjpegfilesrc location={clip} loop=true num-buffers={} ! {element}{tag} \
                 ! fakesink name=sink sync=false",
                FRAMES * PASSES
            );
            Case::new(&name, move || launch(&description))
        };
        let mut payloaders = Vec::new();
        for measured in [false, true] {
            payloaders.push(pay("rtpjpegpay (anchor)", "rtpjpegpay", measured));
            payloaders.push(pay("rtpjpegpay2 (gst-plugins-rs)", "rtpjpegpay2", measured));
            payloaders.push(pay("rtpmjpegpay", "rtpmjpegpay", measured));
        }
        measure(&mut payloaders, RUNS, |name, n, t| {
            assert!(n >= FRAMES * PASSES, "{name}: {n} packets");
            n as f64 / t.as_secs_f64()
        });
        report(
            "payloading into fakesink (packets/s, MTU 1400)",
            "packets/s",
            &payloaders[..3],
        );
        report(
            "payloading, packets dropped at the payloader's output (packets/s, MTU 1400)",
            "packets/s",
            &payloaders[3..],
        );
        let pay_ratio_sink = payloaders[2].median() / payloaders[0].median();
        let pay_ratio = payloaders[5].median() / payloaders[3].median();
        summary.push(format!(
            "rtpmjpegpay vs rtpjpegpay: {pay_ratio:.2}x packets/s payloading (target >= 1.5x: {}); \
             {pay_ratio_sink:.2}x with fakesink's per-packet work included",
            verdict(pay_ratio >= 1.5)
        ));
    }

    // Depayloaders, on both packet shapes.
    if only != "pay" {
        let (caps, two_memories) = packets(&clip);
        let one_memory = one_memory_each(&two_memories);
        let packet_count: usize = two_memories.iter().map(|l| l.len()).sum();
        println!();
        println!(
            "depayloading {packet_count} packets made by rtpjpegpay ({} per frame)",
            packet_count / (FRAMES * PASSES)
        );
        // Each shape twice: made as each frame is asked for (in the cache, as from a
        // socket or a payloader just before), and all queued before the clock starts (out
        // of the cache: 108 MB of packets).
        let shapes = [
            (
                "one memory per packet, made as udpsrc receives them",
                &one_memory,
                true,
            ),
            (
                "two memories per packet, made as rtpjpegpay makes them",
                &two_memories,
                true,
            ),
            (
                "one memory per packet, all queued in advance",
                &one_memory,
                false,
            ),
            (
                "two memories per packet, all queued in advance",
                &two_memories,
                false,
            ),
        ];
        // BENCH_FILTER=TEXT times only the configurations whose name and shape hold TEXT
        // (for profiling one of them), and prints their medians.
        let filter = std::env::var("BENCH_FILTER").ok();
        let mut depayloaders = Vec::new();
        for (shape, lists, fresh) in shapes {
            for (name, element) in [
                ("rtpjpegdepay (anchor)", "rtpjpegdepay"),
                ("rtpjpegdepay2 (gst-plugins-rs)", "rtpjpegdepay2"),
                ("rtpmjpegdepay", "rtpmjpegdepay"),
                ("the feed alone (no depayloader)", ""),
            ] {
                if filter
                    .as_ref()
                    .is_some_and(|f| !format!("{name}, {shape}").contains(f))
                {
                    continue;
                }
                let name = format!("{name}, {}", shape.split(',').next().unwrap_or(shape));
                depayloaders.push(if fresh {
                    fresh_depay_case(&name, element, &caps, lists, FRAMES * PASSES)
                } else {
                    depay_case(&name, element, &caps, lists)
                });
            }
        }
        measure(&mut depayloaders, DEPAY_RUNS, |name, n, t| {
            if name.starts_with("the feed") {
                return (FRAMES * PASSES) as f64 / t.as_secs_f64();
            }
            assert_eq!(n, FRAMES * PASSES, "{name} output {n} frames");
            n as f64 / t.as_secs_f64()
        });
        if depayloaders.len() != 4 * shapes.len() {
            for c in &depayloaders {
                println!("{}: {:.0} frames/s", c.name, c.median());
            }
            return;
        }
        for (i, (shape, _, _)) in shapes.iter().enumerate() {
            let cases = &depayloaders[i * 4..i * 4 + 4];
            report(
                &format!("depayloading, {shape} (frames/s)"),
                "frames/s",
                cases,
            );
            // Each depayloader's own time per frame: its pipeline's minus the feed's.
            let own_us = |c: &Case| 1e6 / c.median() - 1e6 / cases[3].median();
            println!(
                "  own time per frame (pipeline minus feed): rtpjpegdepay {:.1} us, \
                 rtpjpegdepay2 {:.1} us, rtpmjpegdepay {:.1} us",
                own_us(&cases[0]),
                own_us(&cases[1]),
                own_us(&cases[2])
            );
            let vs_c = cases[2].median() / cases[0].median();
            let vs_rs = cases[2].median() / cases[1].median();
            let own_vs_c = own_us(&cases[0]) / own_us(&cases[2]);
            let own_vs_rs = own_us(&cases[1]) / own_us(&cases[2]);
            summary.push(format!(
                "rtpmjpegdepay, {shape}: pipeline {vs_c:.2}x rtpjpegdepay (target >= 1.5x: {}), \
                 {vs_rs:.2}x rtpjpegdepay2 (target >= 1.2x: {}); own time {own_vs_c:.2}x \
                 and {own_vs_rs:.2}x faster",
                verdict(vs_c >= 1.5),
                verdict(vs_rs >= 1.2)
            ));
        }
    }

    if only != "depay" {
        // Re-encoding non-standard Huffman tables: ffmpeg's default MJPEG output.
        let optimized = dir.path().join("optimized.mjpeg");
        let status = std::process::Command::new("ffmpeg")
            .args([
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=1280x720:rate=20",
            ])
            .args([
                "-frames:v",
                "60",
                "-pix_fmt",
                "yuvj420p",
                "-q:v",
                "3",
                "-f",
                "mjpeg",
                "-y",
            ])
            .arg(&optimized)
            .status()
            .expect("ffmpeg runs");
        assert!(status.success());
        let data = std::fs::read(&optimized).expect("clip");
        let index = gstmjpegrtp::mjpeg::FrameIndex::build(
            &data,
            gstmjpegrtp::mjpeg::Framing::Concatenated,
            false,
        );
        let images: Vec<_> = index
            .frames()
            .iter()
            .map(|f| {
                (
                    &data[f.range()],
                    gstmjpegrtp::jpeg::parse_image(&data[f.range()]).expect("valid"),
                )
            })
            .collect();
        let scan_bytes: usize = images.iter().map(|(_, i)| i.scan_data.len()).sum();
        let mut out = Vec::new();
        let ms = time_ms(RUNS, || {
            for (bytes, image) in &images {
                out.clear();
                gstmjpegrtp::jpeg::huffman::reencode_scan(bytes, image, &mut out)
                    .expect("re-encodes");
            }
        });
        let per_frame_us = ms * 1000.0 / images.len() as f64;
        println!();
        println!(
            "Huffman re-encoding (ffmpeg 1280x720 frames, {} KB of scan each): {per_frame_us:.0} us/frame, {:.0} MB/s",
            scan_bytes / images.len() / 1000,
            scan_bytes as f64 / 1e3 / ms
        );
    }

    println!();
    for line in summary {
        println!("{line}");
    }
}
