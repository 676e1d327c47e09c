//! rtcplossmonitor in-process: loss counted exactly under netsim, jitter as rtpsession
//! measures it, RTCP in and out, what bad RTCP does, and how RTCP ends (BYE, EOS) and
//! survives flushing seeks.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;
use mjpeg_rtsp_tests::*;

const TIMEOUT: Duration = Duration::from_secs(60);
const CAPS: &str = "application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26";
const SSRC: u32 = 0x1234_5678;

/// An RTP packet: 12-byte header, then 100 bytes.
fn rtp_packet(seq: u16, timestamp: u32) -> Vec<u8> {
    let mut p = vec![0x80, 26];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&timestamp.to_be_bytes());
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend_from_slice(&[0x55; 100]);
    p
}

/// Packets of a 30 frames/s stream, one per frame, arriving `jitter(n)` ns late.
fn stream(n: usize, first_seq: u16, jitter: impl Fn(usize) -> u64) -> Vec<gst::Buffer> {
    init();
    (0..n)
        .map(|i| {
            let mut b = gst::Buffer::from_slice(rtp_packet(
                first_seq.wrapping_add(i as u16),
                3000 * i as u32,
            ));
            let arrival = gst::ClockTime::from_nseconds(i as u64 * 33_333_333 + jitter(i));
            let r = b.get_mut().unwrap();
            r.set_pts(arrival);
            r.set_dts(arrival);
            b
        })
        .collect()
}

fn source_stats(monitor: &gst::Element) -> gst::Structure {
    let stats = monitor.property::<gst::Structure>("stats");
    assert_eq!(stats.name(), "application/x-rtcp-loss-stats");
    let sources = stats.get::<gst::Array>("sources").unwrap();
    sources
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .find(|s| s.get::<u32>("ssrc") == Ok(SSRC))
        .unwrap_or_else(|| panic!("no source {SSRC:#x} in {stats}"))
}

fn seqs_passing(element: &gst::Element) -> Arc<Mutex<Vec<u16>>> {
    let seen: Arc<Mutex<Vec<u16>>> = Arc::default();
    let store = seen.clone();
    element
        .static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(b)) = &info.data {
                let mut h = [0u8; 4];
                b.copy_to_slice(0, &mut h).unwrap();
                store.lock().unwrap().push(u16::from_be_bytes([h[2], h[3]]));
            }
            gst::PadProbeReturn::Ok
        });
    seen
}

#[test]
fn netsim_losses_are_counted_exactly() {
    init();
    let buffers = stream(2000, 65000, |_| 0); // wraps past 65535 on the way
    let pipeline = launch(
        "appsrc name=src ! identity name=before ! netsim drop-probability=0.05 \
         ! identity name=after ! rtcplossmonitor name=mon ! appsink name=sink sync=false",
    );
    let before = seqs_passing(&pipeline.by_name("before").unwrap());
    let after = seqs_passing(&pipeline.by_name("after").unwrap());
    let src = appsrc(&pipeline);
    src.set_caps(Some(&CAPS.parse::<gst::Caps>().unwrap()));
    src.set_format(gst::Format::Time);
    for b in &buffers {
        src.push_buffer(b.clone()).unwrap();
    }
    src.end_of_stream().unwrap();
    let run = collect(&pipeline, TIMEOUT);
    assert!(run.eos && run.error.is_none(), "{:?}", run.error);

    let sent = before.lock().unwrap().clone();
    let received = after.lock().unwrap().clone();
    assert_eq!(sent.len(), 2000);
    let dropped = sent.len() - received.len();
    assert!(dropped > 50, "netsim dropped only {dropped}");

    // RFC 3550 A.1, worked out independently from what got through: the source becomes
    // valid on the second of two consecutive packets, which is the base; the stream is in
    // order, so the highest is the last one.
    let extended: Vec<u32> = received
        .iter()
        .scan((0u32, None::<u16>), |(cycles, last), &q| {
            if last.is_some_and(|l| q < l) {
                *cycles += 65536;
            }
            *last = Some(q);
            Some(*cycles + u32::from(q))
        })
        .collect();
    let valid_at = extended
        .windows(2)
        .position(|w| w[1] == w[0] + 1)
        .expect("two consecutive packets")
        + 1;
    let base = extended[valid_at];
    let highest = *extended.last().unwrap();
    let expected = u64::from(highest - base + 1);
    let counted = (extended.len() - valid_at) as u64;
    // And counted the other way: the dropped packets between base and highest.
    let got: BTreeSet<u32> = extended.iter().copied().collect();
    let dropped_in_range = (base..=highest).filter(|e| !got.contains(e)).count() as i64;

    let s = source_stats(&pipeline.by_name("mon").unwrap());
    assert_eq!(s.get::<u64>("packets-expected"), Ok(expected));
    assert_eq!(s.get::<u64>("packets-received"), Ok(counted));
    assert_eq!(
        s.get::<i64>("packets-lost"),
        Ok(expected as i64 - counted as i64)
    );
    assert_eq!(s.get::<i64>("packets-lost"), Ok(dropped_in_range));
    assert_eq!(s.get::<u32>("extended-highest-seq"), Ok(highest));
    let percent = s.get::<f64>("loss-percent").unwrap();
    assert!((percent - dropped_in_range as f64 * 100.0 / expected as f64).abs() < 1e-9);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn jitter_matches_rtpsession() {
    // A live stream over UDP on loopback, with netsim delaying half the packets by up to
    // 15 ms: both measure the same packets with udpsrc's arrival times.
    init();
    let port = free_udp_port();
    let rx = launch(&format!(
        "udpsrc port={port} caps=\"{CAPS}\" ! rtcplossmonitor name=mon ! sess.recv_rtp_sink \
         rtpsession name=sess sess.recv_rtp_src ! fakesink sync=false"
    ));
    rx.set_state(gst::State::Playing).unwrap();
    let tx = launch(&format!(
        "mjpegfilesrc location={} is-live=true num-buffers=60 ! rtpmjpegpay \
         ! netsim delay-probability=0.5 min-delay=0 max-delay=15 \
         ! udpsink host=127.0.0.1 port={port}",
        workspace_root().join("media/sample.Mjpeg").display()
    ));
    tx.set_state(gst::State::Playing).unwrap();
    let eos = tx.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(30),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    assert!(matches!(
        eos.map(|m| m.type_()),
        Some(gst::MessageType::Eos)
    ));
    std::thread::sleep(Duration::from_millis(300));
    let stats = rx
        .by_name("mon")
        .unwrap()
        .property::<gst::Structure>("stats");
    let sess = rx
        .by_name("sess")
        .unwrap()
        .property::<gst::Structure>("stats");
    tx.set_state(gst::State::Null).unwrap();
    rx.set_state(gst::State::Null).unwrap();
    let ours = stats
        .get::<gst::Array>("sources")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .next()
        .expect("a source");
    let ssrc = ours.get::<u32>("ssrc").unwrap();
    let theirs = sess
        .get::<gst::glib::ValueArray>("source-stats")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Structure>().unwrap())
        .find(|s| s.get::<u32>("ssrc") == Ok(ssrc))
        .unwrap_or_else(|| panic!("rtpsession has no source {ssrc:#x}: {sess}"));
    let (a, b) = (
        ours.get::<u32>("jitter").unwrap(),
        theirs.get::<u32>("jitter").unwrap(),
    );
    assert!(
        a > 90,
        "15 ms of random delay makes over 1 ms of jitter: {a}"
    );
    assert!(
        (f64::from(a) - f64::from(b)).abs() <= f64::from(b) * 0.01,
        "ours {a}, rtpsession's {b}"
    );
    let ms = ours.get::<f64>("jitter-ms").unwrap();
    assert!((ms - f64::from(a) / 90.0).abs() < 1e-9);
}

fn rtcp_into_monitor(packets: Vec<Vec<u8>>) -> (gst::Pipeline, Vec<gst::Message>) {
    init();
    let pipeline = launch(
        "appsrc name=rtcp caps=application/x-rtcp format=time ! mon.rtcp_sink \
         rtcplossmonitor name=mon interval=0",
    );
    let bus = pipeline.bus().unwrap();
    let src = pipeline
        .by_name("rtcp")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let count = packets.len() as u64;
    for p in packets {
        src.push_buffer(gst::Buffer::from_slice(p)).unwrap();
    }
    // rtcp_sink consumes RTCP without forwarding EOS: wait until every packet is counted.
    let mon = pipeline.by_name("mon").unwrap();
    let start = std::time::Instant::now();
    while mon
        .property::<gst::Structure>("stats")
        .get::<u64>("rtcp-packets")
        != Ok(count)
    {
        assert!(start.elapsed() < TIMEOUT, "RTCP not processed");
        std::thread::sleep(Duration::from_millis(10));
    }
    let messages: Vec<gst::Message> = std::iter::from_fn(|| bus.pop()).collect();
    (pipeline, messages)
}

#[test]
fn malformed_rtcp_is_counted_not_fatal() {
    let mut bad_version = vec![0x81, 201, 0, 7];
    bad_version.extend_from_slice(&[0; 28]);
    bad_version[0] = 0x41;
    let too_long = vec![0x80, 201, 0, 9, 0, 0, 0, 1];
    let (pipeline, messages) = rtcp_into_monitor(vec![bad_version, too_long, vec![], vec![0x80]]);
    let mon = pipeline.by_name("mon").unwrap();
    let stats = mon.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("rtcp-errors"), Ok(4), "{stats}");
    assert!(
        !messages
            .iter()
            .any(|m| matches!(m.view(), gst::MessageView::Error(_))),
        "an error for bad RTCP"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

/// Writes an RTCP packet with rtcp-types.
fn write(packet: impl rtcp_types::RtcpPacketWriterExt) -> Vec<u8> {
    let mut out = vec![0; packet.calculate_size().unwrap()];
    packet.write_into(&mut out).unwrap();
    out
}

#[test]
fn bye_ends_a_source_with_a_message() {
    use rtcp_types::*;
    let packet = write(
        Compound::builder()
            .add_packet(ReceiverReport::builder(SSRC))
            .add_packet(Sdes::builder().add_chunk(
                SdesChunk::builder(SSRC).add_item(SdesItem::builder(SdesItem::CNAME, "camera@lab")),
            ))
            .add_packet(Bye::builder().add_source(SSRC).reason("done")),
    );
    let (pipeline, messages) = rtcp_into_monitor(vec![packet]);
    let bye = messages
        .iter()
        .filter_map(|m| match m.view() {
            gst::MessageView::Element(e) => e.structure().map(|s| s.to_owned()),
            _ => None,
        })
        .find(|s| s.name() == "rtcp-bye")
        .expect("an rtcp-bye message");
    assert_eq!(bye.get::<u32>("ssrc"), Ok(SSRC));
    assert_eq!(bye.get::<&str>("reason"), Ok("done"));
    // No RTP came from it: not the stream's sender.
    assert_eq!(bye.get::<bool>("sender"), Ok(false));
    let s = source_stats(&pipeline.by_name("mon").unwrap());
    assert_eq!(s.get::<bool>("ended"), Ok(true));
    assert_eq!(s.get::<&str>("cname"), Ok("camera@lab"));
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn threshold_warns_and_reports_recovery() {
    // A live stream: 3 s of packets, the second second losing every other packet. The
    // feeder paces the packets; the sink does not sync (a syncing sink made the run hang
    // now and then on a latency warning under load, with nothing to do with the monitor).
    init();
    let pipeline = launch(
        "appsrc name=src is-live=true ! rtcplossmonitor name=mon interval=500 loss-threshold=10 \
         ! appsink name=sink sync=false",
    );
    let src = appsrc(&pipeline);
    src.set_caps(Some(&CAPS.parse::<gst::Caps>().unwrap()));
    src.set_format(gst::Format::Time);
    src.set_do_timestamp(true);
    let feeder = std::thread::spawn(move || {
        for i in 0..90u16 {
            let lossy = (30..60).contains(&i) && i % 2 == 1;
            if !lossy {
                src.push_buffer(gst::Buffer::from_slice(rtp_packet(i, 3000 * u32::from(i))))
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(33));
        }
        src.end_of_stream().unwrap();
    });
    let run = collect(&pipeline, TIMEOUT);
    feeder.join().unwrap();
    assert!(run.error.is_none(), "{:?}", run.error);
    let warning = run
        .warnings
        .iter()
        .find(|w| w.contains("above the 10% threshold"))
        .unwrap_or_else(|| panic!("no threshold warning in {:?}", run.warnings));
    assert!(warning.contains("0x12345678"), "{warning}");
    assert!(
        run.infos.iter().any(|i| i.contains("back to")),
        "{:?}",
        run.infos
    );
}

#[test]
fn gst_inspect_documents_the_statistics() {
    let registry = tempfile::tempdir().unwrap();
    let out = gst_tool("gst-inspect-1.0", registry.path())
        .arg("rtcplossmonitor")
        .output()
        .unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    for field in [
        "packets-received",
        "packets-expected",
        "packets-lost",
        "fraction-lost",
        "loss-percent",
        "extended-highest-seq",
        "jitter-ms",
        "duplicates",
        "reordered",
        "bitrate",
        "rb-fraction-lost",
        "rb-packets-lost",
        "rb-jitter",
        "rtt-ms",
    ] {
        assert!(doc.contains(field), "{field} is not documented");
    }
    for pad in ["rtcp_sink", "rtcp_src"] {
        assert!(doc.contains(pad), "{pad}");
    }
}

/// The compound RTCP packets that reach the appsink `name`, in order.
fn rtcp_out(pipeline: &gst::Pipeline, name: &str) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let sink = pipeline
        .by_name(name)
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let packets: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let store = packets.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let map = sample.buffer().unwrap().map_readable().unwrap();
                store.lock().unwrap().push(map.to_vec());
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    packets
}

/// A compound RTCP packet's parts: ("RR", reporter SSRC), ("SDES", chunk SSRC),
/// ("BYE", SSRC) ...
fn rtcp_parts(data: &[u8]) -> Vec<(&'static str, u32)> {
    use rtcp_types::Packet;
    rtcp_types::Compound::parse(data)
        .unwrap()
        .flat_map(|p| match p.unwrap() {
            Packet::Rr(rr) => vec![("RR", rr.ssrc())],
            Packet::Sr(sr) => vec![("SR", sr.ssrc())],
            Packet::Sdes(sdes) => sdes.chunks().map(|c| ("SDES", c.ssrc())).collect(),
            Packet::Bye(bye) => bye.ssrcs().map(|s| ("BYE", s)).collect(),
            _ => vec![("other", 0)],
        })
        .collect()
}

fn has_bye(data: &[u8]) -> bool {
    rtcp_parts(data).iter().any(|(kind, _)| *kind == "BYE")
}

/// Waits for the pipeline's EOS (true) or error.
fn wait_eos(pipeline: &gst::Pipeline, seconds: u64) -> bool {
    let msg = pipeline.bus().unwrap().timed_pop_filtered(
        gst::ClockTime::from_seconds(seconds),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => true,
        Some(gst::MessageView::Error(e)) => panic!("error: {} ({:?})", e.error(), e.debug()),
        _ => false,
    }
}

/// What a gst-launch-1.0 pipeline with `rtcp_src` linked sent there.
struct RtcpRun {
    packets: Vec<Vec<u8>>,
    /// What reached the RTCP sink, in order: event names, and "buffer".
    flow: Vec<String>,
    /// The monitor's SSRC.
    ssrc: u32,
}

/// Plays `frames` frames through the monitor (set with `props`) with `rtcp_src` linked to
/// an appsink (`sink_props`): it must end, with EOS on rtcp_src too.
fn play_to_eos_with_rtcp_linked(frames: u32, props: &str, sink_props: &str) -> RtcpRun {
    init();
    let pipeline = launch(&format!(
        "mjpegfilesrc location={} is-live=true num-buffers={frames} ! rtpmjpegpay \
         ! rtcplossmonitor name=m {props} ! fakesink m.rtcp_src ! appsink name=rtcp {sink_props}",
        workspace_root().join("media/sample.Mjpeg").display()
    ));
    let packets = rtcp_out(&pipeline, "rtcp");
    let sink = pipeline
        .by_name("rtcp")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    let flow: Arc<Mutex<Vec<String>>> = Arc::default();
    let store = flow.clone();
    sink.static_pad("sink").unwrap().add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let what = match &info.data {
                Some(gst::PadProbeData::Buffer(_)) => "buffer".to_string(),
                Some(gst::PadProbeData::Event(e)) => e.type_().name().to_string(),
                _ => "other".to_string(),
            };
            store.lock().unwrap().push(what);
            gst::PadProbeReturn::Ok
        },
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let ended = wait_eos(&pipeline, 30);
    let ssrc = pipeline.by_name("m").unwrap().property::<u32>("ssrc");
    let rtcp_eos = sink.is_eos();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(ended, "no EOS within 30 s");
    assert!(rtcp_eos, "rtcp_src got no EOS");
    let packets = packets.lock().unwrap().clone();
    let flow = flow.lock().unwrap().clone();
    RtcpRun {
        packets,
        flow,
        ssrc,
    }
}

#[test]
fn eos_ends_rtcp_src_with_a_report_and_bye() {
    let run = play_to_eos_with_rtcp_linked(60, "", "");
    let last = run.packets.last().expect("no RTCP sent");
    // RFC 3550 6.6: RR, SDES CNAME, then BYE, all from us, BYE last; then EOS.
    let ssrc = run.ssrc;
    assert_eq!(
        rtcp_parts(last),
        [("RR", ssrc), ("SDES", ssrc), ("BYE", ssrc)],
        "{} packets",
        run.packets.len()
    );
    let byes = run.packets.iter().filter(|p| has_bye(p)).count();
    assert_eq!(byes, 1, "one BYE, at the end");
    assert!(
        run.flow.ends_with(&["buffer".into(), "eos".into()]),
        "{:?}",
        run.flow
    );
}

#[test]
fn eos_before_the_first_report_still_starts_rtcp_src_properly() {
    // At 1 kbit/s, the first report is due 8.8 s in at the earliest (RFC 3550 6.3); 2
    // frames at 20 frames/s end long before. (An async sink there would hold the pipeline
    // in PAUSED until its first buffer.)
    let run = play_to_eos_with_rtcp_linked(2, "session-bandwidth=1000", "async=false");
    let parts: Vec<_> = run.packets.iter().map(|p| rtcp_parts(p)).collect();
    assert_eq!(parts.len(), 1, "only the BYE: {parts:?}");
    assert_eq!(parts[0].last(), Some(&("BYE", run.ssrc)));
    assert_eq!(
        run.flow,
        ["stream-start", "caps", "segment", "buffer", "eos"],
        "what reached rtcp_src's peer"
    );
}

#[test]
fn rtpbin_hears_our_bye() {
    init();
    let (rtp, rtcp, rr) = (free_udp_port(), free_udp_port(), free_udp_port());
    let rx = launch(&format!(
        "udpsrc port={rtp} caps=\"{CAPS}\" ! rtcplossmonitor name=mon ! fakesink sync=false \
         udpsrc port={rtcp} caps=application/x-rtcp ! mon.rtcp_sink \
         mon.rtcp_src ! udpsink host=127.0.0.1 port={rr} sync=false async=false"
    ));
    let mon = rx.by_name("mon").unwrap();
    rx.set_state(gst::State::Playing).unwrap();
    let tx = launch(&format!(
        "rtpbin name=rtpbin mjpegfilesrc location={} is-live=true loop=true \
         ! rtpmjpegpay ! rtpbin.send_rtp_sink_0 \
         rtpbin.send_rtp_src_0 ! udpsink host=127.0.0.1 port={rtp} \
         rtpbin.send_rtcp_src_0 ! udpsink host=127.0.0.1 port={rtcp} sync=false async=false \
         udpsrc port={rr} caps=application/x-rtcp ! rtpbin.recv_rtcp_sink_0",
        workspace_root().join("media/sample.Mjpeg").display()
    ));
    let session = tx
        .by_name("rtpbin")
        .unwrap()
        .emit_by_name::<gst::glib::Object>("get-internal-session", &[&0u32]);
    // rtpsession's BYE signal hands over the source: its stats say what rtpsession made of
    // the packet.
    let (byes, bye_rx) = std::sync::mpsc::channel::<gst::Structure>();
    session.connect("on-bye-ssrc", false, move |args| {
        let source = args[1].get::<gst::glib::Object>().unwrap();
        let _ = byes.send(source.property::<gst::Structure>("stats"));
        None
    });
    tx.set_state(gst::State::Playing).unwrap();

    // The stream flows, then the receiver's RTP ends.
    let received = poll(
        Duration::from_secs(20),
        || {
            mon.property::<gst::Structure>("stats")
                .get::<gst::Array>("sources")
                .unwrap()
                .iter()
                .filter_map(|v| v.get::<gst::Structure>().ok())
                .filter_map(|s| s.get::<u64>("packets-received").ok())
                .sum::<u64>()
        },
        |&n| n > 20,
    );
    assert!(received.is_ok(), "no RTP received: {received:?}");
    let our_ssrc = mon.property::<u32>("ssrc");
    assert!(rx.send_event(gst::event::Eos::new()));
    assert!(wait_eos(&rx, 20), "the receiver did not end");

    let stats = bye_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("rtpbin saw no BYE");
    tx.set_state(gst::State::Null).unwrap();
    rx.set_state(gst::State::Null).unwrap();
    assert_eq!(stats.get::<u32>("ssrc"), Ok(our_ssrc), "{stats}");
    assert_eq!(stats.get::<bool>("received-bye"), Ok(true), "{stats}");
    assert_eq!(stats.get::<bool>("internal"), Ok(false), "{stats}");
}

/// A non-live 10 s clip played in real time through the monitor, with frequent reports
/// (about every 40 ms) into the appsink `rtcp`.
fn seekable_pipeline() -> (gst::Pipeline, Arc<Mutex<Vec<Vec<u8>>>>) {
    init();
    let pipeline = launch(&format!(
        "mjpegfilesrc location={} ! rtpmjpegpay ! rtcplossmonitor name=m \
         reduced-minimum=true session-bandwidth=10000000 ! fakesink sync=true \
         m.rtcp_src ! appsink name=rtcp sync=false async=false",
        workspace_root().join("media/sample.Mjpeg").display()
    ));
    let packets = rtcp_out(&pipeline, "rtcp");
    (pipeline, packets)
}

fn flush_seek(pipeline: &gst::Pipeline, seconds: f64) {
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_nseconds((seconds * 1e9) as u64),
        )
        .unwrap();
}

/// Waits until `n` more RTCP packets than `since` arrived; returns the new ones.
fn more_rtcp(packets: &Mutex<Vec<Vec<u8>>>, since: usize, n: usize) -> Vec<Vec<u8>> {
    let got = poll(
        TIMEOUT,
        || packets.lock().unwrap().len(),
        |&len| len >= since + n,
    );
    assert!(got.is_ok(), "{since} packets, then nothing more");
    packets.lock().unwrap()[since..].to_vec()
}

fn packets_received(pipeline: &gst::Pipeline) -> u64 {
    pipeline
        .by_name("m")
        .unwrap()
        .property::<gst::Structure>("stats")
        .get::<gst::Array>("sources")
        .unwrap()
        .iter()
        .filter_map(|v| v.get::<gst::Structure>().ok())
        .filter_map(|s| s.get::<u64>("packets-received").ok())
        .sum()
}

#[test]
fn a_flushing_seek_neither_ends_nor_says_bye() {
    let (pipeline, packets) = seekable_pipeline();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    more_rtcp(&packets, 0, 2);
    flush_seek(&pipeline, 3.0);
    let before = packets.lock().unwrap().len();
    let received = packets_received(&pipeline);
    // Reports go on, and RTP is still counted.
    let after = more_rtcp(&packets, before, 5);
    assert!(
        poll(
            TIMEOUT,
            || packets_received(&pipeline),
            |&n| n > received + 20
        )
        .is_ok(),
        "no RTP counted after the seek"
    );
    let eos = bus.pop_filtered(&[gst::MessageType::Eos, gst::MessageType::Error]);
    let sink = pipeline.by_name("rtcp").unwrap();
    let rtcp_eos = sink.downcast_ref::<gst_app::AppSink>().unwrap().is_eos();
    let all = packets.lock().unwrap().clone();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(eos.is_none(), "{eos:?} after a flushing seek");
    assert!(!rtcp_eos, "rtcp_src got EOS");
    assert!(
        !all.iter().any(|p| has_bye(p)),
        "a BYE after a flushing seek"
    );
    assert!(after.iter().all(|p| rtcp_parts(p)[0].0 == "RR"));
}

#[test]
fn a_flushing_seek_after_eos_runs_again() {
    let (pipeline, packets) = seekable_pipeline();
    pipeline.set_state(gst::State::Playing).unwrap();
    more_rtcp(&packets, 0, 1);
    // To the last half second: EOS, the BYE, EOS on rtcp_src.
    flush_seek(&pipeline, 9.5);
    assert!(wait_eos(&pipeline, 30), "no EOS");
    let sink = pipeline
        .by_name("rtcp")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    assert!(
        poll(Duration::from_secs(5), || sink.is_eos(), |&e| e).is_ok(),
        "no EOS on rtcp_src"
    );
    let first_end = packets.lock().unwrap().len();
    assert!(has_bye(&packets.lock().unwrap()[first_end - 1]));
    // Back a second: reports again, no EOS left on rtcp_src, and a second end.
    flush_seek(&pipeline, 8.5);
    let after = more_rtcp(&packets, first_end, 3);
    // Packets arriving at all show rtcp_src's EOS was cleared.
    assert!(
        !after[..2].iter().any(|p| has_bye(p)),
        "BYE right after the seek"
    );
    assert!(wait_eos(&pipeline, 30), "no second EOS");
    assert!(
        poll(Duration::from_secs(5), || sink.is_eos(), |&e| e).is_ok(),
        "no second EOS on rtcp_src"
    );
    let all = packets.lock().unwrap().clone();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(has_bye(all.last().unwrap()));
    assert_eq!(
        all.iter().filter(|p| has_bye(p)).count(),
        2,
        "a BYE per end"
    );
}
