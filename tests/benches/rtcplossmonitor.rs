//! `make bench`: what rtcplossmonitor costs per RTP packet passing through, against plain
//! `identity` (the anchor) in the same run.
//!
//! The packets are a 30 fps RTP/JPEG stream as a receiver gets it from udpsrc: one buffer
//! per 1400-byte packet, 48 packets a frame, timestamped, sequence numbers in order with
//! one packet in 100 missing (so the loss path is taken). They are made once, then queued
//! in an appsrc before the clock starts and counted and dropped as they leave the element
//! measured, so that neither the making nor a sink's work is part of the time. A run with
//! no element at all (appsrc alone) gives what the rest of the pipeline costs, so that the
//! element's own cost per packet can be told apart from the pipeline's.

use gst::prelude::*;
use mjpeg_rtsp_tests::bench::{Case, measure, verdict};
use mjpeg_rtsp_tests::{init, launch};

/// Packets in one run: about 70 s of a 30 fps stream.
const PACKETS: usize = 100_000;
const PER_FRAME: usize = 48;
const PACKET_SIZE: usize = 1400;
const RUNS: usize = 9;
const CAPS: &str = "application/x-rtp,media=video,encoding-name=JPEG,clock-rate=90000,payload=26";

/// The stream: RTP version 2, payload type 26, SSRC 0x4d4a5047, marker on each frame's last
/// packet, RTP and buffer timestamps advancing 1/30 s a frame.
fn packets() -> Vec<gst::Buffer> {
    let mut out = Vec::with_capacity(PACKETS);
    let mut seq: u16 = 0xff00; // wraps early in the run
    let mut n = 0;
    while out.len() < PACKETS {
        let frame = n / PER_FRAME;
        let last = n % PER_FRAME == PER_FRAME - 1;
        n += 1;
        seq = seq.wrapping_add(1);
        if n % 100 == 0 {
            continue; // lost on the way
        }
        let mut data = vec![0u8; PACKET_SIZE];
        data[0] = 0x80;
        data[1] = 26 | if last { 0x80 } else { 0 };
        data[2..4].copy_from_slice(&seq.to_be_bytes());
        data[4..8].copy_from_slice(&(frame as u32 * 3000).to_be_bytes());
        data[8..12].copy_from_slice(&0x4d4a_5047u32.to_be_bytes());
        let mut buffer = gst::Buffer::from_mut_slice(data);
        let pts = gst::ClockTime::from_nseconds(frame as u64 * 1_000_000_000 / 30);
        let b = buffer.get_mut().expect("new buffer");
        b.set_pts(pts);
        b.set_dts(pts);
        out.push(buffer);
    }
    out
}

/// `appsrc ! ELEMENT`, the packets counted and dropped at ELEMENT's output; with no
/// element, at appsrc's.
fn case(name: &str, element: Option<&'static str>, packets: &[gst::Buffer]) -> Case {
    let packets = packets.to_vec();
    Case::new(name, move || {
        let description = match element {
            Some(e) => format!("appsrc name=src ! {e} name=measured ! fakesink"),
            None => "appsrc name=measured ! fakesink".to_string(),
        };
        let pipeline = launch(&description);
        let src = pipeline
            .by_name(if element.is_some() { "src" } else { "measured" })
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .expect("appsrc");
        src.set_caps(Some(&CAPS.parse::<gst::Caps>().expect("caps")));
        src.set_format(gst::Format::Time);
        src.set_max_bytes(0);
        src.set_max_buffers(0);
        for packet in &packets {
            src.push_buffer(packet.clone()).expect("queued");
        }
        src.end_of_stream().expect("EOS queued");
        pipeline
    })
}

fn main() {
    init();
    println!(
        "rtcplossmonitor benchmark: {PACKETS} RTP packets of {PACKET_SIZE} bytes, one buffer each, {RUNS} interleaved runs"
    );
    let packets = packets();
    let mut cases = vec![
        case("identity (anchor)", Some("identity"), &packets),
        case("rtcplossmonitor", Some("rtcplossmonitor"), &packets),
        case("no element (appsrc alone)", None, &packets),
    ];
    measure(&mut cases, RUNS, |name, n, t| {
        assert_eq!(n, packets.len(), "{name}: {n} packets");
        t.as_nanos() as f64 / n as f64
    });

    let per_packet: Vec<f64> = cases.iter().map(|c| c.median()).collect();
    let base = per_packet[2];
    println!();
    println!(
        "  {:<28} {:>14} {:>14} {:>12}",
        "configuration", "ns/packet", "element ns", "vs anchor"
    );
    for (case, ns) in cases.iter().zip(&per_packet) {
        let (lo, hi) = mjpeg_rtsp_tests::bench::spread(&case.rates);
        println!(
            "  {:<28} {:>14.0} {:>14.0} {:>11.2}x   {lo:.0}..{hi:.0} ns",
            case.name,
            ns,
            ns - base,
            ns / per_packet[0]
        );
    }
    let pipeline_ratio = per_packet[1] / per_packet[0];
    let element_ratio = (per_packet[1] - base) / (per_packet[0] - base);
    println!();
    println!(
        "rtcplossmonitor vs identity: {pipeline_ratio:.2}x the time per packet through the pipeline \
         (target <= 1.2x: {}); the element alone, without what appsrc costs: {element_ratio:.2}x",
        verdict(pipeline_ratio <= 1.2)
    );
}
