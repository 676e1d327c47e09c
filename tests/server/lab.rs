//! Serving folders of clips, and the networking lab's dialect.

use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

use super::{FRAMES, frames, serve};

#[test]
fn serves_a_folder_with_one_url_per_clip() {
    let dir = ClipDir::new();
    dir.clip("clip one.Mjpeg", &frames()[..3]);
    dir.clip("b.mjpg", &frames()[..1]);
    dir.clip("wide.mjpeg", &encode_jpegs(1, 2048, 16, "smpte"));
    write_file(dir.path(), "notes.txt", b"not a clip");
    let server = ServerProcess::start(&[dir.path()], 3);
    let base = server.base();
    let mut urls = server.urls.clone();
    urls.sort();
    assert_eq!(
        urls,
        vec![
            format!("{base}/b.mjpg"),
            format!("{base}/clip%20one.Mjpeg"),
            format!("{base}/wide.mjpeg"),
        ]
    );
    let mut client = server.connect();
    let reply = client.request("DESCRIBE", &format!("{base}/clip%20one.Mjpeg"), &[]);
    reply.assert_status(200);
    assert_eq!(
        reply.header("Content-Base"),
        Some(format!("{base}/clip%20one.Mjpeg/").as_str())
    );
    assert!(String::from_utf8_lossy(&reply.body).contains("a=range:npt=0-0.150\r\n"));
    let reply = client.request("DESCRIBE", &format!("{base}/wide.mjpeg"), &[]);
    reply.assert_status(200);
    let sdp = String::from_utf8_lossy(&reply.body);
    assert!(sdp.contains("a=x-dimensions:2048,16\r\n"), "{sdp}");
    client
        .request("DESCRIBE", &format!("{base}/notes.txt"), &[])
        .assert_status(404);
}

/// A lab client: one send() per request, `\n` line ends, replies read by exact bytes.
struct LabClient {
    client: Client,
    cseq: u32,
}

impl LabClient {
    fn send(&mut self, method: &str, last_line: &str) {
        self.cseq += 1;
        let text = format!(
            "{method} clip.Mjpeg RTSP/1.0\nCSeq: {}\n{last_line}",
            self.cseq
        );
        self.client.send_raw(text.as_bytes());
    }

    fn expect(&mut self, reply: &str) {
        let got = self.client.read_exact_bytes(reply.len(), REPLY_TIMEOUT);
        assert_eq!(String::from_utf8_lossy(&got), reply);
    }
}

/// Lab packets: V=2, M=0, PT 26, seq = frame number from 1, Unix time, SSRC 0, the whole
/// JPEG. Returns the sequence numbers.
fn check_lab_packets(rtp: &UdpReceiver, n: usize, play_sent: Instant) -> Vec<u16> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut seqs = Vec::new();
    let mut arrivals = Vec::new();
    for _ in 0..n {
        let (data, from, at) = rtp.recv_datagram(deadline).expect("a lab packet");
        assert_eq!(from.ip().to_string(), "127.0.0.1");
        let seq = lab_packet(&data, 2, at).seq;
        assert!(seq >= 1 && usize::from(seq) <= FRAMES, "seq {seq}");
        assert!(
            data[12..] == frames()[usize::from(seq) - 1][..],
            "packet {seq} is not the whole JPEG of frame {seq}"
        );
        seqs.push(seq);
        arrivals.push(at);
    }
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "lab seq {seqs:?}");
    }
    // 20 frames/s: the k-th frame of a PLAY is not due before k * 50 ms after it (and
    // comes not much later).
    for (k, at) in arrivals.iter().enumerate() {
        let due = play_sent + Duration::from_millis(50 * k as u64);
        assert!(
            *at + Duration::from_millis(2) >= due,
            "frame {k} of a PLAY came {:?} early",
            due - *at
        );
        assert!(
            *at <= due + Duration::from_secs(1),
            "frame {k} of a PLAY came {:?} late",
            *at - due
        );
    }
    seqs
}

#[test]
fn lab_client_plays_pauses_resumes_and_tears_down() {
    let served = serve(&[]);
    let rtp = UdpReceiver::bind();
    let mut lab = LabClient {
        client: served.server.connect(),
        cseq: 0,
    };
    lab.send(
        "SETUP",
        &format!("Transport: RTP/UDP; client_port= {}", rtp.port()),
    );
    let prefix = "RTSP/1.0 200 OK\nCSeq: 1\nSession: ";
    let got = lab.client.read_exact_bytes(prefix.len() + 6, REPLY_TIMEOUT);
    let got = String::from_utf8_lossy(&got).into_owned();
    let id = got
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("SETUP reply {got:?}"));
    let number: u32 = id.parse().unwrap_or_else(|_| panic!("session id {id:?}"));
    assert!((100_000..=999_999).contains(&number), "session id {id}");
    let session = format!("Session: {id}");

    let sent = Instant::now();
    lab.send("PLAY", &session);
    lab.expect(&format!("RTSP/1.0 200 OK\nCSeq: 2\n{session}"));
    let mut seqs = check_lab_packets(&rtp, 10, sent);
    assert_eq!(seqs[0], 1, "the first frame is not numbered 1");

    lab.send("PAUSE", &session);
    lab.expect(&format!("RTSP/1.0 200 OK\nCSeq: 3\n{session}"));
    let late = rtp.recv_for(Duration::from_millis(600));
    assert!(late.len() <= 1, "{} packets after PAUSE", late.len());
    seqs.extend(late.iter().map(|p| p.seq));

    let sent = Instant::now();
    lab.send("PLAY", &session);
    lab.expect(&format!("RTSP/1.0 200 OK\nCSeq: 4\n{session}"));
    let resumed = check_lab_packets(&rtp, 5, sent);
    assert_eq!(resumed[0], seqs.last().unwrap() + 1, "seq after PAUSE/PLAY");

    lab.send("TEARDOWN", &session);
    lab.expect(&format!("RTSP/1.0 200 OK\nCSeq: 5\n{session}"));
    let late = rtp.recv_for(Duration::from_millis(600));
    assert!(late.len() <= 1, "{} packets after TEARDOWN", late.len());
    let extra = lab.client.read_available(Duration::from_millis(100));
    assert!(extra.is_empty(), "bytes after the last reply: {extra:?}");
    let closed = served.server.wait_for_closed(id, REPLY_TIMEOUT);
    assert_eq!(closed["reason"], "teardown", "{closed}");
}
