//! The server's congestion response, end to end: receiver reports with loss, sent from
//! the client's RTCP port, halve the frames a session sends; clean reports bring the full
//! rate back. Frame rates are counted from the RTP marker bits the client receives.

use std::time::Duration;

use mjpeg_rtsp_tests::encode_jpegs;
use mjpeg_rtsp_tests::rtsp::{Served, UdpReceiver, receiver_report, serve, udp_pair};

const LOG_WAIT: Duration = Duration::from_secs(10);

/// A session playing the clip at 40 frames/s over UDP.
struct Playing {
    served: Served,
    rtp: UdpReceiver,
    rtcp: UdpReceiver,
    ssrc: u32,
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
}

#[test]
fn lossy_receiver_reports_halve_the_frame_rate_until_loss_is_gone() {
    let session = play(&[]);
    let server = &session.served.server;
    let full = session.frame_rate();
    assert!((36..=44).contains(&full), "{full} frames/s at 40 fps");

    // One lossy report changes nothing; two in a row halve the rate.
    session.report(128);
    server.wait_for_log(&["receiver report from", "fraction lost 50.0%"], LOG_WAIT);
    session.report(128);
    server.wait_for_log(
        &["congestion: sending fewer frames, to one frame in 2"],
        LOG_WAIT,
    );
    let reduced = session.frame_rate();
    assert!(
        (16..=24).contains(&reduced),
        "{reduced} frames/s after the back-off"
    );

    for _ in 0..3 {
        session.report(0);
    }
    server.wait_for_log(&["loss is gone: back to one frame in 1"], LOG_WAIT);
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
    server.wait_for_log(&["fraction lost 78.1%"], LOG_WAIT);
    let rate = session.frame_rate();
    assert!((36..=44).contains(&rate), "{rate} frames/s with --no-adapt");
    assert!(!server.log().contains("congestion"));
}
