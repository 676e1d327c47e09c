//! The server's congestion response, end to end: receiver reports with loss, sent from
//! the client's RTCP port, halve the frames a session sends; clean reports bring the full
//! rate back. Frame rates are counted from the RTP marker bits the client receives.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::{encode_jpegs, lab_file, target_dir, write_file};
use rtcp_types::{ReceiverReport, ReportBlock, RtcpPacketWriter, RtcpPacketWriterExt};

struct Server {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Server {
    let mut child = Command::new(target_dir().join("debug/mjpeg-rtsp-server"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the server starts (cargo build -p mjpeg-rtsp-apps)");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().expect("stderr");
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            lines.lock().unwrap().push(line);
        }
    });
    let mut url = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut url)
        .expect("a URL");
    Server {
        child,
        url: url.trim().to_string(),
        log,
    }
}

fn request(control: &mut TcpStream, text: &str) -> String {
    control.write_all(text.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n\r\n") {
        assert_eq!(control.read(&mut byte).unwrap(), 1, "connection closed");
        reply.push(byte[0]);
    }
    let reply = String::from_utf8(reply).unwrap();
    assert!(reply.starts_with("RTSP/1.0 200"), "{text}\n->\n{reply}");
    reply
}

fn header<'a>(reply: &'a str, name: &str) -> &'a str {
    reply
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
        .unwrap_or_else(|| panic!("no {name} in {reply}"))
}

/// Frames (marker bits) received in one second.
fn frame_rate(rtp: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    // Drop what queued up before the count starts.
    rtp.set_nonblocking(true).unwrap();
    while rtp.recv(&mut buf).is_ok() {}
    rtp.set_nonblocking(false).unwrap();
    let end = Instant::now() + Duration::from_secs(1);
    let mut frames = 0;
    while Instant::now() < end {
        if let Ok(n) = rtp.recv(&mut buf)
            && n > 12
            && buf[1] & 0x80 != 0
        {
            frames += 1;
        }
    }
    frames
}

fn report(rtcp: &UdpSocket, to: &str, ssrc: u32, fraction_lost: u8) {
    let rr = ReceiverReport::builder(0x5eed)
        .add_report_block(ReportBlock::builder(ssrc).fraction_lost(fraction_lost));
    let mut bytes = vec![0; rr.calculate_size().unwrap()];
    rr.write_into(&mut bytes).unwrap();
    rtcp.send_to(&bytes, to).unwrap();
}

fn wait_for_log(server: &Server, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log.lock().unwrap().iter().any(|l| l.contains(text)) {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in {:#?}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn lossy_receiver_reports_halve_the_frame_rate_until_loss_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_file(
        dir.path(),
        "clip.Mjpeg",
        &lab_file(&encode_jpegs(20, 160, 120, "ball")),
    );
    let server = start(&["--fps", "40", "--loop", clip.to_str().unwrap()]);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (rtp_port, rtcp_port) = (
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port(),
    );
    let host = server
        .url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut control = TcpStream::connect(&host).unwrap();
    let setup = request(
        &mut control,
        &format!(
            "SETUP {}/streamid=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port}\r\n\r\n",
            server.url
        ),
    );
    let transport = header(&setup, "Transport");
    let param = |name: &str| {
        transport
            .split(';')
            .find_map(|p| p.strip_prefix(name))
            .unwrap_or_else(|| panic!("{transport}"))
    };
    let ssrc = u32::from_str_radix(param("ssrc="), 16).unwrap();
    let server_rtcp = param("server_port=").split('-').nth(1).unwrap();
    let server_rtcp = format!("127.0.0.1:{server_rtcp}");
    let session = header(&setup, "Session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    request(
        &mut control,
        &format!(
            "PLAY {} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n",
            server.url
        ),
    );

    let full = frame_rate(&rtp);
    assert!((36..=44).contains(&full), "{full} frames/s at 40 fps");

    // One lossy report changes nothing; two in a row halve the rate.
    report(&rtcp, &server_rtcp, ssrc, 128);
    wait_for_log(&server, "receiver report from");
    report(&rtcp, &server_rtcp, ssrc, 128);
    wait_for_log(
        &server,
        "congestion: sending fewer frames, to one frame in 2",
    );
    let reduced = frame_rate(&rtp);
    assert!(
        (16..=24).contains(&reduced),
        "{reduced} frames/s after the back-off"
    );

    for _ in 0..3 {
        report(&rtcp, &server_rtcp, ssrc, 0);
    }
    wait_for_log(&server, "loss is gone: back to one frame in 1");
    let recovered = frame_rate(&rtp);
    assert!(
        (36..=44).contains(&recovered),
        "{recovered} frames/s after recovery"
    );
}

#[test]
fn no_adapt_ignores_lossy_reports() {
    let dir = tempfile::tempdir().unwrap();
    let clip = write_file(
        dir.path(),
        "clip.Mjpeg",
        &lab_file(&encode_jpegs(20, 160, 120, "ball")),
    );
    let server = start(&[
        "--fps",
        "40",
        "--loop",
        "--no-adapt",
        clip.to_str().unwrap(),
    ]);
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (rtp_port, rtcp_port) = (
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port(),
    );
    let host = server
        .url
        .trim_start_matches("rtsp://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut control = TcpStream::connect(&host).unwrap();
    let setup = request(
        &mut control,
        &format!(
            "SETUP {} RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port}\r\n\r\n",
            server.url
        ),
    );
    let transport = header(&setup, "Transport");
    let ssrc = transport
        .split(';')
        .find_map(|p| p.strip_prefix("ssrc="))
        .unwrap();
    let ssrc = u32::from_str_radix(ssrc, 16).unwrap();
    let server_rtcp = transport
        .split(';')
        .find_map(|p| p.strip_prefix("server_port="))
        .unwrap();
    let server_rtcp = format!("127.0.0.1:{}", server_rtcp.split('-').nth(1).unwrap());
    let session = header(&setup, "Session")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    request(
        &mut control,
        &format!(
            "PLAY {} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n",
            server.url
        ),
    );
    for _ in 0..4 {
        report(&rtcp, &server_rtcp, ssrc, 200);
    }
    wait_for_log(&server, "fraction lost 78.1%");
    let rate = frame_rate(&rtp);
    assert!((36..=44).contains(&rate), "{rate} frames/s with --no-adapt");
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("congestion"))
    );
}
