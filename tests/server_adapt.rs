//! The server's congestion response, end to end: receiver reports with loss, sent from
//! the client's RTCP port, halve the frames a session sends; clean reports bring the full
//! rate back. Frame rates are counted from the RTP marker bits the client receives; what
//! the server made of each report is read from its statistics.

use std::time::Duration;

use mjpeg_rtsp_tests::encode_jpegs;
use mjpeg_rtsp_tests::rtsp::{Served, UdpReceiver, receiver_report, serve, udp_pair};
use serde_json::Value;

const STATS_WAIT: Duration = Duration::from_secs(10);

/// A session playing the clip at 40 frames/s over UDP.
struct Playing {
    served: Served,
    rtp: UdpReceiver,
    rtcp: UdpReceiver,
    ssrc: u32,
    /// The session id.
    id: String,
    /// The server's RTCP address.
    server_rtcp: String,
}

fn play(options: &[&str]) -> Playing {
    let mut all = vec!["--fps", "40", "--loop"];
    all.extend_from_slice(options);
    let served = serve(&encode_jpegs(20, 160, 120, "ball"), &all);
    let (rtp, rtcp) = udp_pair();
    let mut client = served.server.connect();
    let setup = client.setup_udp(&served.url, &rtp, &rtcp);
    let ssrc = setup.ssrc();
    let server_rtcp = format!("127.0.0.1:{}", setup.server_ports().1);
    let session = setup.session();
    client
        .request("PLAY", &served.url, &[("Session", &session)])
        .assert_status(200);
    // The client connection may close: UDP sessions outlive it.
    Playing {
        served,
        rtp,
        rtcp,
        ssrc,
        id: session,
        server_rtcp,
    }
}

impl Playing {
    /// Frames (marker bits) received in one second.
    fn frame_rate(&self) -> usize {
        // Whatever queued up before the count starts is not counted.
        let socket = &self.rtp.socket;
        socket.set_nonblocking(true).unwrap();
        while socket.recv(&mut [0u8; 2048]).is_ok() {}
        socket.set_nonblocking(false).unwrap();
        let packets = self.rtp.recv_for(Duration::from_secs(1));
        packets.iter().filter(|p| p.marker).count()
    }

    fn report(&self, fraction_lost: u8) {
        let rr = receiver_report(0x5eed, self.ssrc, fraction_lost, 0);
        self.rtcp.socket.send_to(&rr, &self.server_rtcp).unwrap();
    }

    /// Waits until the server took `reports` receiver reports in all; the session then.
    fn after_reports(&self, reports: u64) -> Value {
        self.served.server.wait_for_session(
            &self.id,
            &format!("after {reports} receiver reports"),
            |s| s["receiver_report"]["reports"] == reports,
            STATS_WAIT,
        )
    }
}

#[test]
fn lossy_receiver_reports_halve_the_frame_rate_until_loss_is_gone() {
    let session = play(&[]);
    let full = session.frame_rate();
    assert!((36..=44).contains(&full), "{full} frames/s at 40 fps");

    // One lossy report changes nothing; two in a row halve the rate.
    session.report(128);
    let stats = session.after_reports(1);
    assert_eq!(stats["receiver_report"]["fraction_lost"], 0.5, "{stats}");
    assert_eq!(stats["decimation"], 1, "{stats}");
    session.report(128);
    let stats = session.after_reports(2);
    assert_eq!(stats["receiver_report"]["fraction_lost"], 0.5, "{stats}");
    assert_eq!(stats["decimation"], 2, "{stats}");
    let reduced = session.frame_rate();
    assert!(
        (16..=24).contains(&reduced),
        "{reduced} frames/s after the back-off"
    );

    for _ in 0..3 {
        session.report(0);
    }
    // Back to every frame after having sent one in 2.
    let stats = session.after_reports(5);
    assert_eq!(stats["receiver_report"]["fraction_lost"], 0.0, "{stats}");
    assert_eq!(stats["decimation"], 1, "{stats}");
    let recovered = session.frame_rate();
    assert!(
        (36..=44).contains(&recovered),
        "{recovered} frames/s after recovery"
    );
}

#[test]
fn no_adapt_ignores_lossy_reports() {
    let session = play(&["--no-adapt"]);
    let server = &session.served.server;
    for _ in 0..4 {
        session.report(200);
    }
    let stats = session.after_reports(4);
    // 200/256
    assert_eq!(
        stats["receiver_report"]["fraction_lost"], 0.78125,
        "{stats}"
    );
    let rate = session.frame_rate();
    assert!((36..=44).contains(&rate), "{rate} frames/s with --no-adapt");
    // One frame in 1 in every report, up to one made after the rate was counted.
    server.fresh_stats(STATS_WAIT);
    let history = server.session_reports(&session.id);
    assert!(
        history.iter().all(|s| s["decimation"] == 1),
        "the frame rate changed: {history:?}"
    );
}
