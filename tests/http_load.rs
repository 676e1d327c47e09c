//! The HTTP side's load requirements, on a live path of 25 frames a second (640x480,
//! always on): 200 viewers at once each get the source's rate in whole frames, and slow
//! viewers get fewer, fresh, whole frames without the server queueing for them (its
//! memory stays flat) while a normal viewer beside them keeps the full rate.
//!
//! The two tests take turns: each wants the machine's cores for itself.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::http_client::{
    Seen, Viewer, ViewerOptions, get, opencv_sizes, raise_fd_limit, rss_kib,
};
use mjpeg_rtsp_tests::lock;
use mjpeg_rtsp_tests::rtsp::{ServerProcess, wait_until};
use serde_json::Value;

const CAM: &str = "cam=videotestsrc is-live=true \
    ! video/x-raw,format=I420,width=640,height=480,framerate=25/1 ! jpegenc";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn live_server() -> ServerProcess {
    // Hundreds of viewers from one address.
    let server = ServerProcess::start(
        &[
            "--max-connections-per-ip",
            "0",
            "--always-on",
            "--source",
            CAM,
        ],
        1,
    );
    let base = server.http();
    let up = wait_until(Duration::from_secs(20), || {
        cam(&get(&base, "/api/paths", "").json())["frames_in"]
            .as_u64()
            .unwrap_or(0)
            > 5
    });
    assert!(up, "the source made no frames; {}", server.log());
    server
}

fn cam(paths: &Value) -> Value {
    paths["paths"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "cam"))
        .cloned()
        .unwrap_or(Value::Null)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[test]
fn two_hundred_viewers_each_get_the_sources_rate_in_whole_frames() {
    const VIEWERS: usize = 200;
    let _turn = lock(&ONE_AT_A_TIME);
    raise_fd_limit(4 * VIEWERS as u64);
    let server = live_server();
    let base = server.http();
    // Every 50th JPEG kept, to be decoded at the end.
    let options = ViewerOptions {
        keep_every: 50,
        ..Default::default()
    };
    let connecting = Instant::now();
    let viewers: Vec<Viewer> = (0..VIEWERS)
        .map(|_| Viewer::start(&base, "/cam/stream.mjpg", options))
        .collect();
    let all_playing = wait_until(Duration::from_secs(20), || {
        viewers.iter().all(|v| !v.seen().parts.is_empty())
    });
    let playing = viewers
        .iter()
        .filter(|v| !v.seen().parts.is_empty())
        .count();
    assert!(all_playing, "{playing} of {VIEWERS} viewers got a frame");
    eprintln!("{VIEWERS} viewers playing after {:?}", connecting.elapsed());
    let paths = get(&base, "/api/paths", "").json();
    assert_eq!(cam(&paths)["http_viewers"], VIEWERS, "{paths}");

    // A second to settle, then five seconds measured.
    std::thread::sleep(Duration::from_secs(1));
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let to = Instant::now();
    let sessions = get(&base, "/api/sessions", "").json();
    let seen: Vec<Seen> = viewers.into_iter().map(Viewer::stop).collect();
    let all_gone = wait_until(Duration::from_secs(5), || {
        cam(&get(&base, "/api/paths", "").json())["http_viewers"] == 0
    });
    assert!(all_gone, "viewers that left are still listed");

    for (n, s) in seen.iter().enumerate() {
        assert_eq!(s.failure(), None, "viewer {n}: {:?}", s.end);
    }
    let mut rates: Vec<f64> = seen.iter().map(|s| s.rate_between(from, to)).collect();
    let worst = rates.iter().cloned().fold(f64::MAX, f64::min);
    let median = median(&mut rates);
    let parts: usize = seen.iter().map(|s| s.parts.len()).sum();
    let megabytes: u64 = seen.iter().map(|s| s.body_bytes).sum::<u64>() >> 20;
    eprintln!(
        "{VIEWERS} viewers over {:?}: frames/s per viewer min {worst:.1}, median {median:.1}; \
         {parts} whole JPEGs, {megabytes} MiB in all",
        to - from
    );
    assert!(worst >= 23.0, "a viewer got {worst:.1} frames/s");
    let http_sessions = sessions["sessions"]
        .as_array()
        .expect("sessions[]")
        .iter()
        .filter(|s| s["transport"] == "http")
        .count();
    assert_eq!(http_sessions, VIEWERS);

    // A decoder agrees they are whole: the last kept JPEG of each viewer.
    let last: Vec<&[u8]> = seen
        .iter()
        .map(|s| {
            s.parts
                .iter()
                .rev()
                .find_map(|p| p.jpeg.as_deref())
                .expect("a kept JPEG")
        })
        .collect();
    let sizes = opencv_sizes(&last);
    assert!(
        sizes.iter().all(|s| *s == Some((640, 480))),
        "OpenCV decoded {sizes:?}"
    );
}

#[test]
fn slow_viewers_get_fresh_whole_frames_and_the_server_holds_no_queue_for_them() {
    const SLOW: usize = 5;
    const SLOW_RATE: usize = 60_000;
    let _turn = lock(&ONE_AT_A_TIME);
    let server = live_server();
    let base = server.http();
    let normal = Viewer::start(&base, "/cam/stream.mjpg", ViewerOptions::default());
    let slow_options = ViewerOptions {
        rcvbuf: Some(16 * 1024),
        bytes_per_s: Some(SLOW_RATE),
        keep_every: 1,
    };
    let slow: Vec<Viewer> = (0..SLOW)
        .map(|_| Viewer::start(&base, "/cam/stream.mjpg", slow_options))
        .collect();
    let started = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || slow
            .iter()
            .all(|v| !v.seen().parts.is_empty())),
        "a slow viewer got no frame"
    );
    // Warm-up: every buffer on the way filled, then memory is measured.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(started.elapsed()));
    let warm = Instant::now();
    let rss_warm = rss_kib(server.pid());
    let mut rss_max = rss_warm;
    while started.elapsed() < Duration::from_secs(11) {
        std::thread::sleep(Duration::from_millis(500));
        rss_max = rss_max.max(rss_kib(server.pid()));
    }
    let rss_end = rss_kib(server.pid());
    let end = Instant::now();
    let sessions = get(&base, "/api/sessions", "").json();
    let made_frames = cam(&get(&base, "/api/paths", "").json())["frames_in"]
        .as_u64()
        .unwrap();
    let slow_locals: Vec<String> = slow.iter().map(|v| v.local.to_string()).collect();
    let slow_seen: Vec<Seen> = slow.into_iter().map(Viewer::stop).collect();
    let normal_seen = normal.stop();

    let normal_rate = normal_seen.rate_between(warm, end);
    eprintln!("the normal viewer: {normal_rate:.1} frames/s");
    assert_eq!(normal_seen.failure(), None, "{:?}", normal_seen.end);
    assert!(
        normal_rate >= 23.0,
        "the normal viewer got {normal_rate:.1} frames/s"
    );

    for (n, (seen, local)) in slow_seen.iter().zip(&slow_locals).enumerate() {
        assert_eq!(seen.failure(), None, "slow viewer {n}: {:?}", seen.end);
        let ages: Vec<f64> = seen.parts.iter().map(|p| p.age()).collect();
        let late: Vec<f64> = seen
            .parts
            .iter()
            .filter(|p| p.arrived >= warm)
            .map(|p| p.age())
            .collect();
        let session = sessions["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["client"] == local.as_str())
            .unwrap_or_else(|| panic!("no session of {local}: {sessions:#}"));
        let sent = session["frames_sent"].as_u64().unwrap();
        let dropped = session["frames_dropped"].as_u64().unwrap();
        let rate = seen.body_bytes as f64 / (end - started).as_secs_f64();
        eprintln!(
            "slow viewer {n}: {} frames ({:.1}/s, {:.0} B/s), ages at arrival {:.2}..{:.2} s \
             (after the warm-up max {:.2}, last {:.2}); the server sent {sent}, passed over \
             {dropped} (of {made_frames} made)",
            seen.parts.len(),
            seen.parts.len() as f64 / (end - seen.parts[0].arrived).as_secs_f64(),
            rate,
            ages.iter().cloned().fold(f64::MAX, f64::min),
            ages.iter().cloned().fold(f64::MIN, f64::max),
            late.iter().cloned().fold(f64::MIN, f64::max),
            ages.last().unwrap(),
        );
        // Fresh, not queued: after the warm-up no frame waited long for this viewer.
        assert!(
            late.iter().all(|&a| a < 2.0),
            "slow viewer {n}: frames aged {late:?} s"
        );
        // Passed over, not queued: the server counts what it skipped, and the frames it
        // sent are those this viewer received (a part or two on the way).
        assert!(dropped > 0, "slow viewer {n}: nothing passed over");
        let received = seen.parts.len() as u64;
        assert!(
            sent >= received && sent <= received + 4,
            "slow viewer {n}: sent {sent}, received {received}"
        );
        assert!(received >= 10, "slow viewer {n}: only {received} frames");
    }
    let jpegs: Vec<&[u8]> = slow_seen
        .iter()
        .flat_map(|s| s.parts.iter().map(|p| p.jpeg.as_deref().unwrap()))
        .collect();
    let sizes = opencv_sizes(&jpegs);
    assert!(
        sizes.iter().all(|s| *s == Some((640, 480))),
        "OpenCV decoded {sizes:?}"
    );

    let growth = rss_end as i64 - rss_warm as i64;
    eprintln!(
        "server RSS: {rss_warm} KiB after the warm-up, {rss_end} KiB at the end (max {rss_max}), \
         growth {growth} KiB"
    );
    assert!(growth < 8 * 1024, "the server grew by {growth} KiB");
}
