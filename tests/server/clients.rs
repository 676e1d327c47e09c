//! Real clients against the server: ffprobe, ffmpeg and GStreamer's rtspsrc, over UDP
//! and TCP.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use gst::prelude::*;
use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

use super::serve;

#[test]
fn ffprobe_sees_one_mjpeg_stream_of_the_clip_size() {
    let served = serve(&["--loop"]);
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-show_entries",
        "stream=codec_type,codec_name,width,height",
        "-of",
        "default=noprint_wrappers=1",
        &served.url,
    ]);
    let (status, out, err) = run_to_end(&mut cmd, Duration::from_secs(30));
    assert!(status.success(), "ffprobe failed: {err}");
    assert!(err.trim().is_empty(), "ffprobe complained: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("codec_type="))
            .count(),
        1,
        "{out}"
    );
    for line in [
        "codec_name=mjpeg",
        "codec_type=video",
        "width=320",
        "height=240",
    ] {
        assert!(lines.contains(&line), "no {line} in:\n{out}");
    }
}

fn ffmpeg_decodes(transport: &str) {
    let served = serve(&["--loop", "--fps", "50"]);
    let mut cmd = Command::new("ffmpeg");
    cmd.args([
        "-hide_banner",
        "-nostdin",
        "-loglevel",
        "error",
        "-rtsp_transport",
        transport,
        "-i",
        &served.url,
        "-frames:v",
        "30",
        "-progress",
        "pipe:1",
        "-nostats",
        "-f",
        "null",
        "-",
    ]);
    let (status, out, err) = run_to_end(&mut cmd, Duration::from_secs(40));
    assert!(status.success(), "ffmpeg over {transport} failed: {err}");
    assert!(
        err.trim().is_empty(),
        "ffmpeg over {transport} complained: {err}"
    );
    let decoded: u64 = out
        .lines()
        .filter_map(|l| l.strip_prefix("frame="))
        .filter_map(|n| n.trim().parse().ok())
        .max()
        .unwrap_or(0);
    assert!(
        decoded >= 30,
        "ffmpeg over {transport} decoded {decoded} frames:\n{out}"
    );
    // The session ended with the client.
    let closed = served.server.wait_for_stats(
        "a closed session",
        |r| r["closed"].as_array().is_some_and(|c| !c.is_empty()),
        REPLY_TIMEOUT,
    )["closed"][0]
        .clone();
    assert!(
        closed["reason"] == "teardown" || closed["reason"] == "control connection closed",
        "{closed}"
    );
}

#[test]
fn ffmpeg_decodes_over_udp() {
    ffmpeg_decodes("udp");
}

#[test]
fn ffmpeg_decodes_over_tcp() {
    ffmpeg_decodes("tcp");
}

/// rtspsrc ! DEPAY ! jpegdec in this process: 30 frames of the clip's size. With
/// `sync`, the sink plays them on the clock, as a video sink would: the depayloader's
/// segment and timestamps must place them.
fn rtspsrc_decodes(protocols: &str, depayloader: &str, sync: bool) {
    let served = serve(&["--loop", "--fps", "50"]);
    let pipeline = launch(&format!(
        "rtspsrc location={} protocols={protocols} latency=100 ! {depayloader} ! jpegdec \
         ! appsink name=sink sync={sync}",
        served.url
    ));
    let count = Arc::new(AtomicUsize::new(0));
    let caps = Arc::new(std::sync::Mutex::new(None::<gst::Caps>));
    let times = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (count, caps, times) = (count.clone(), caps.clone(), times.clone());
        appsink(&pipeline).set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    *caps.lock().unwrap() = sample.caps().map(|c| c.to_owned());
                    let running = sample.buffer().and_then(|b| b.pts()).and_then(|pts| {
                        sample
                            .segment()
                            .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                            .and_then(|s| s.to_running_time(pts))
                    });
                    times.lock().unwrap().push((running, Instant::now()));
                    count.fetch_add(1, Ordering::SeqCst);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    pipeline
        .set_state(gst::State::Playing)
        .expect("rtspsrc starts");
    let bus = pipeline.bus().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut error = None;
    while count.load(Ordering::SeqCst) < 30 && Instant::now() < deadline {
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(20),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        ) {
            error = Some(format!("{msg:?}"));
            break;
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(error.is_none(), "rtspsrc over {protocols}: {error:?}");
    let n = count.load(Ordering::SeqCst);
    assert!(n >= 30, "rtspsrc over {protocols} decoded {n} frames");
    let caps = caps.lock().unwrap().clone().expect("caps");
    let s = caps.structure(0).unwrap();
    assert_eq!(
        (s.get::<i32>("width"), s.get::<i32>("height")),
        (Ok(320), Ok(240))
    );
    // Every frame has a running time, after the one before, 20 ms apart on average (50
    // frames/s). The first is left out of the average: rtspsrc's jitter buffer may set it
    // apart from the rest (seen: 155 ms before the second on a loaded machine).
    let times = times.lock().unwrap().clone();
    let running: Vec<gst::ClockTime> = times
        .iter()
        .map(|(t, _)| t.expect("a running time"))
        .collect();
    assert!(
        running.windows(2).all(|p| p[1] > p[0]),
        "{depayloader}: {running:?}"
    );
    let mean_step = (running[29] - running[1]).mseconds() / 28;
    assert!((18..=22).contains(&mean_step), "{depayloader}: {running:?}");
    if sync {
        // Played on the clock: 29 steps of 20 ms take about 0.58 s.
        let spread = times[29].1 - times[0].1;
        assert!(
            spread >= Duration::from_millis(450),
            "{depayloader}: 30 frames in {spread:?}"
        );
    }
}

#[test]
fn rtspsrc_decodes_over_udp() {
    rtspsrc_decodes("udp", "rtpjpegdepay", false);
}

#[test]
fn rtspsrc_decodes_over_tcp() {
    rtspsrc_decodes("tcp", "rtpjpegdepay", false);
}

#[test]
fn rtspsrc_into_rtpmjpegdepay_plays_on_the_clock_over_udp() {
    rtspsrc_decodes("udp", "rtpmjpegdepay", true);
}

#[test]
fn rtspsrc_into_rtpmjpegdepay_plays_on_the_clock_over_tcp() {
    rtspsrc_decodes("tcp", "rtpmjpegdepay", true);
}
