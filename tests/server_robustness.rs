//! mjpeg-rtsp-server against idle, slow, vanished, hostile and broken clients: none of
//! them may stop a normal client from playing, crash the server, or read a file the
//! server was not told to serve.
//!
//! The server binary must be built first: `cargo build -p mjpeg-rtsp-apps`.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

const FPS: u64 = 25;

fn frames() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| encode_jpegs(40, 320, 240, "ball"))
}

/// A server looping `clip.Mjpeg` at 25 frames/s, with `options`.
fn serve(options: &[&str]) -> Served {
    let mut all = vec!["--loop", "--fps", "25"];
    all.extend_from_slice(options);
    rtsp::serve(frames(), &all)
}

/// A client playing over UDP.
struct Player {
    client: Client,
    rtp: UdpReceiver,
    rtcp: UdpReceiver,
    id: String,
    setup: Reply,
    /// When PLAY was sent.
    play_sent: Instant,
}

fn player(served: &Served) -> Player {
    let mut client = served.server.connect();
    let (rtp, rtcp) = udp_pair();
    let setup = client.setup_udp(&format!("{}/streamid=0", served.url), &rtp, &rtcp);
    let id = setup.session();
    let play_sent = Instant::now();
    client
        .request("PLAY", &served.url, &[("Session", &id)])
        .assert_status(200);
    Player {
        client,
        rtp,
        rtcp,
        id,
        setup,
        play_sent,
    }
}

impl Player {
    /// Frames still arrive: skips what was queued, then waits for `n` new frames.
    fn still_receives(&self, n: usize) {
        while self
            .rtp
            .recv(Instant::now() + Duration::from_millis(1))
            .is_some()
        {}
        depayload(&self.rtp.recv_frames(n + 1, REPLY_TIMEOUT));
    }
}

/// Ends the connection with a reset (SO_LINGER 0) instead of a FIN.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a pointer to a linger struct that outlives
    // the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
    drop(stream);
}

/// The server answers a new client.
fn still_answers(served: &Served) {
    let mut client = served.server.connect();
    client.request("OPTIONS", "*", &[]).assert_status(200);
    client
        .request("DESCRIBE", &served.url, &[])
        .assert_status(200);
}

#[test]
fn idle_connections_and_a_slow_sender_do_not_stop_a_player() {
    // More idle connections than one address may hold by default: this is about idle
    // ones, not the per-address limit.
    let mut served = serve(&["--max-connections-per-ip", "0"]);
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(served.server.addr).expect("an idle connection"))
        .collect();
    let request = b"OPTIONS * RTSP/1.0\r\nCSeq: 9\r\n\r\n";
    let stop = Arc::new(AtomicBool::new(false));
    let slow = {
        let stop = stop.clone();
        let mut stream = TcpStream::connect(served.server.addr).unwrap();
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::SeqCst) && sent < request.len() - 1 {
                stream.write_all(&request[sent..sent + 1]).unwrap();
                sent += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            (stream, sent)
        })
    };

    let started = Instant::now();
    let p = player(&served);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "SETUP and PLAY took {:?}",
        started.elapsed()
    );
    // Two seconds of frames, all of them, none early, none much late.
    let n = 2 * FPS as usize;
    let packets = p.rtp.recv_frames(n, REPLY_TIMEOUT);
    for pair in packets.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1), "lost packets");
    }
    let ends: Vec<Instant> = packets
        .iter()
        .filter(|p| p.marker)
        .map(|p| p.arrival)
        .collect();
    assert_eq!(depayload(&packets).len(), ends.len());
    for (k, at) in ends.iter().take(n).enumerate() {
        let due = p.play_sent + Duration::from_millis(1000 * k as u64 / FPS);
        assert!(
            *at + Duration::from_millis(2) >= due,
            "frame {k} came early"
        );
        assert!(
            *at <= due + Duration::from_millis(750),
            "frame {k} came {:?} late",
            *at - due
        );
    }

    // The slow request completes and is answered; idle connections are still served.
    stop.store(true, Ordering::SeqCst);
    let (stream, sent) = slow.join().unwrap();
    assert!(sent >= 8, "the slow sender only sent {sent} bytes");
    let mut slow = Client::from_stream(stream);
    slow.send_raw(&request[sent..]);
    let reply = slow.read_reply(REPLY_TIMEOUT);
    reply.assert_status(200);
    assert_eq!(reply.cseq(), Some(9));
    for stream in [&idle[0], &idle[199]] {
        let mut client = Client::from_stream(stream.try_clone().unwrap());
        client.request("OPTIONS", "*", &[]).assert_status(200);
    }
    assert!(served.server.is_running());
    drop(idle);
}

#[test]
fn sessions_of_vanished_clients_are_reclaimed() {
    // Reports every 50 ms: when the vanished session's end is reported is close to when
    // it ended.
    let served = serve(&["--session-timeout", "2", "--stats-interval", "0.05"]);
    // A standard client that vanishes: its control connection and RTCP socket go (its
    // RTP socket stays, to see the packets stop).
    let vanished = player(&served);
    assert_eq!(
        vanished.setup.header("Session"),
        Some(format!("{};timeout=2", vanished.id).as_str())
    );
    vanished.rtp.recv_frames(2, REPLY_TIMEOUT);
    // Its last request (PLAY) reached the server after this.
    let last_request = vanished.play_sent;
    let Player {
        client,
        rtp,
        rtcp,
        id,
        ..
    } = vanished;
    drop((client, rtcp));

    // A lab client, silent after PLAY as lab clients are: its session lives as long as
    // its connection (lab clients send no keep-alives).
    let lab_rtp = UdpReceiver::bind();
    let mut lab = served.server.connect();
    lab.send_raw(
        format!(
            "SETUP clip.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= {}",
            lab_rtp.port()
        )
        .as_bytes(),
    );
    let prefix = "RTSP/1.0 200 OK\nCSeq: 1\nSession: ";
    let reply = lab.read_exact_bytes(prefix.len() + 6, REPLY_TIMEOUT);
    let lab_id = String::from_utf8_lossy(&reply[prefix.len()..]).into_owned();
    lab.send_raw(format!("PLAY clip.Mjpeg RTSP/1.0\nCSeq: 2\nSession: {lab_id}").as_bytes());
    lab.read_exact_bytes(prefix.len() + 6, REPLY_TIMEOUT);
    let lab_last_request = Instant::now();

    // A client that keeps its session alive with GET_PARAMETER.
    let mut kept = player(&served);
    let mut gone_at = None;
    let keepalive_every = Duration::from_millis(500);
    let mut keepalive = Instant::now();
    // Until the vanished session went, and the lab session had the time to go too (its
    // silence longer than the timeout, plus the server's 1 s check).
    let lab_would_be_gone = lab_last_request + Duration::from_millis(3200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while gone_at.is_none() || Instant::now() < lab_would_be_gone {
        assert!(
            Instant::now() < deadline,
            "the vanished session was not reclaimed; {}",
            served.server.stats_context()
        );
        if keepalive.elapsed() > keepalive_every {
            kept.client
                .request("GET_PARAMETER", &served.url, &[("Session", &kept.id)])
                .assert_status(200);
            keepalive = Instant::now();
        }
        let until_keepalive =
            (keepalive + keepalive_every).saturating_duration_since(Instant::now());
        if gone_at.is_none() {
            if let Some((closed, at)) = served.server.closed_within(&id, until_keepalive) {
                assert_eq!(closed["reason"], "timed out", "{closed}");
                gone_at = Some(at);
            }
        } else {
            // The lab client's silence goes on, the kept session's keep-alives too.
            let until_lab = lab_would_be_gone.saturating_duration_since(Instant::now());
            std::thread::sleep(until_keepalive.min(until_lab));
        }
    }
    // Not before the timeout; within it and the server's 1 s check (and some slack).
    let after = gone_at.unwrap() - last_request;
    assert!(
        after >= Duration::from_secs(2) && after < Duration::from_secs(6),
        "the session went {after:?} after its last request"
    );

    // Its packets stop, and its id is unknown.
    while rtp
        .recv(Instant::now() + Duration::from_millis(1))
        .is_some()
    {}
    let late = rtp.recv_for(Duration::from_millis(300));
    assert!(late.is_empty(), "{} packets after the timeout", late.len());
    let mut client = served.server.connect();
    for method in ["PLAY", "PAUSE", "TEARDOWN"] {
        client
            .request(method, &served.url, &[("Session", &id)])
            .assert_status(454);
    }

    // The kept session lives on, and so does the silent lab client's, until it hangs up.
    kept.still_receives(2);
    kept.client
        .request("PAUSE", &served.url, &[("Session", &kept.id)])
        .assert_status(200);
    let now = served.server.fresh_stats(REPLY_TIMEOUT);
    assert!(
        session_in(&now, &lab_id).is_some_and(|s| s["dialect"] == "lab")
            && served
                .server
                .closed_within(&lab_id, Duration::ZERO)
                .is_none(),
        "the lab session ended while its client was connected; {}",
        served.server.stats_context()
    );
    while lab_rtp
        .recv_datagram(Instant::now() + Duration::from_millis(1))
        .is_some()
    {}
    lab_rtp
        .recv_datagram(Instant::now() + REPLY_TIMEOUT)
        .expect("lab packets");
    drop(lab);
    let closed = served.server.wait_for_closed(&lab_id, REPLY_TIMEOUT);
    assert_eq!(closed["reason"], "control connection closed", "{closed}");
    while lab_rtp
        .recv_datagram(Instant::now() + Duration::from_millis(1))
        .is_some()
    {}
    assert!(
        lab_rtp
            .recv_datagram(Instant::now() + Duration::from_millis(300))
            .is_none(),
        "lab packets after its connection closed"
    );
    let mut lab = served.server.connect();
    lab.send_raw(format!("PLAY clip.Mjpeg RTSP/1.0\nCSeq: 1\nSession: {lab_id}").as_bytes());
    let reply = lab
        .read_until(REPLY_TIMEOUT, |b| b.ends_with(b"\nCSeq: 1"))
        .expect("a reply to the lab client");
    assert!(
        reply.starts_with(b"RTSP/1.0 454 "),
        "{}",
        String::from_utf8_lossy(&reply)
    );
}

/// A JPEG with a comment segment carrying `text` right after SOI.
fn with_comment(jpeg: &[u8], text: &str) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xfe]);
    out.extend_from_slice(&((text.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn path_traversal_attempts_fail() {
    const MARK: &str = "TOP-SECRET-5e1f0c";
    let top = ClipDir::new();
    let secret_frames: Vec<Vec<u8>> = encode_jpegs(2, 64, 48, "snow")
        .iter()
        .map(|f| with_comment(f, MARK))
        .collect();
    let secret = top.clip("secret.Mjpeg", &secret_frames);
    let secret_bytes = std::fs::read(&secret).unwrap();
    let folder = top.path().join("served");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    let clip = write_file(&folder, "clip.Mjpeg", &lab_file(&frames()[..5]));
    write_file(&folder.join("sub"), "inner.Mjpeg", &secret_bytes);
    std::os::unix::fs::symlink(&secret, folder.join("link.Mjpeg")).unwrap();
    std::os::unix::fs::symlink("../secret.Mjpeg", folder.join("rel.Mjpeg")).unwrap();

    let server = ServerProcess::start(&[folder.as_os_str()], 1);
    assert_eq!(server.urls, vec![format!("{}/clip.Mjpeg", server.base())]);
    let base = server.base();
    let abs_secret = secret.to_str().unwrap().to_string();
    let abs_clip = clip.to_str().unwrap().to_string();
    let paths = [
        "/../secret.Mjpeg".to_string(),
        "/%2e%2e/secret.Mjpeg".into(),
        "/%2E%2E%2Fsecret.Mjpeg".into(),
        "/..%2fsecret.Mjpeg".into(),
        "/..%5Csecret.Mjpeg".into(),
        "/clip.Mjpeg/../../secret.Mjpeg".into(),
        "/clip.Mjpeg/%2e%2e/%2e%2e/secret.Mjpeg".into(),
        "/a%2Fb".into(),
        "/link.Mjpeg".into(),
        "/rel.Mjpeg".into(),
        "/sub/inner.Mjpeg".into(),
        "/sub%2Finner.Mjpeg".into(),
        "/secret.Mjpeg".into(),
        "/clip.Mjpeg%00".into(),
        abs_secret.clone(),
        abs_clip.clone(),
        format!("/{abs_secret}"),
        abs_secret.replace('/', "%2F"),
        format!("/{}", abs_clip.replace('/', "%2F")),
    ];
    let secret_scan = scan_data(&secret_frames[0]);
    let leaked = |reply: &[u8]| {
        let text = String::from_utf8_lossy(reply);
        text.contains(MARK)
            || reply
                .windows(32)
                .any(|w| secret_scan.windows(32).any(|s| s == w))
    };
    let rtp = UdpReceiver::bind();
    let transport = format!(
        "RTP/AVP;unicast;client_port={}-{}",
        rtp.port(),
        rtp.port() + 1
    );
    let mut requests = Vec::new();
    for path in &paths {
        requests.push(format!("DESCRIBE {base}{path} RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
        requests.push(format!(
            "SETUP {base}{path} RTSP/1.0\r\nCSeq: 1\r\nTransport: {transport}\r\n\r\n"
        ));
    }
    // Request targets that are not URLs.
    for target in [
        "../secret.Mjpeg",
        abs_secret.as_str(),
        "served/../secret.Mjpeg",
    ] {
        requests.push(format!("DESCRIBE {target} RTSP/1.0\r\nCSeq: 1\r\n\r\n"));
    }
    for request in &requests {
        let mut client = server.connect();
        client.send_raw(request.as_bytes());
        match client.try_read_reply(REPLY_TIMEOUT) {
            Ok(reply) => {
                assert!(
                    [400, 404].contains(&reply.status),
                    "{request:?} got:\n{}",
                    reply.text()
                );
                assert!(!leaked(&reply.raw), "{request:?} leaked the secret");
                assert!(reply.cseq() == Some(1) || reply.status == 400);
            }
            Err(NoReply::Closed(rest)) | Err(NoReply::Reset(rest)) => {
                assert!(!leaked(&rest), "{request:?} leaked the secret");
            }
            Err(e) => panic!("{request:?}: {e:?}"),
        }
        let rest = client.read_available(Duration::ZERO);
        assert!(!leaked(&rest), "{request:?} leaked the secret");
    }
    // The lab dialect's bare names.
    for (n, target) in [
        "../secret.Mjpeg",
        abs_secret.as_str(),
        "link.Mjpeg",
        "sub/inner.Mjpeg",
    ]
    .iter()
    .enumerate()
    {
        let mut client = server.connect();
        let cseq = n + 1;
        client.send_raw(
            format!(
                "SETUP {target} RTSP/1.0\nCSeq: {cseq}\nTransport: RTP/UDP; client_port= {}",
                rtp.port()
            )
            .as_bytes(),
        );
        let end = format!("\nCSeq: {cseq}");
        let reply = client
            .read_until(REPLY_TIMEOUT, |b| {
                b.windows(end.len()).any(|w| w == end.as_bytes())
            })
            .unwrap_or_else(|| panic!("no reply to the lab SETUP of {target}"));
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.starts_with("RTSP/1.0 404 ") || text.starts_with("RTSP/1.0 400 "),
            "lab SETUP {target}: {text:?}"
        );
        assert!(!leaked(&reply), "lab SETUP {target} leaked the secret");
    }
    assert!(
        rtp.recv_for(Duration::from_millis(100)).is_empty(),
        "packets for a refused SETUP"
    );
    // A warning at start-up, for the person who runs the server: the log is where it goes.
    assert!(
        server.log().contains("link.Mjpeg"),
        "the log does not say the link is not served:\n{}",
        server.log()
    );
    let mut client = server.connect();
    client
        .request("DESCRIBE", &format!("{base}/clip.Mjpeg"), &[])
        .assert_status(200);
}

#[test]
fn an_oversized_header_is_refused_without_harm() {
    let mut served = serve(&[]);
    let p = player(&served);
    p.rtp.recv_frames(2, REPLY_TIMEOUT);

    let mut attacker = served.server.connect();
    let mut request = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Padding: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 100_000));
    request.extend_from_slice(b"\r\n\r\n");
    let writer = {
        let mut stream = attacker.stream.try_clone().unwrap();
        // The server may close before taking it all: write errors are expected.
        std::thread::spawn(move || {
            let _ = stream.write_all(&request);
        })
    };
    match attacker.try_read_reply(REPLY_TIMEOUT) {
        Ok(reply) => {
            assert!(
                [400, 413, 431].contains(&reply.status),
                "a 100 kB header got:\n{}",
                reply.text()
            );
            assert!(
                attacker.wait_closed(REPLY_TIMEOUT),
                "the connection stays open after the oversized header"
            );
        }
        Err(NoReply::Closed(_)) | Err(NoReply::Reset(_)) => {}
        Err(e) => panic!("no reply nor close after a 100 kB header: {e:?}"),
    }
    writer.join().unwrap();

    assert!(served.server.is_running());
    p.still_receives(3);
    still_answers(&served);
}

#[test]
fn clients_that_disconnect_mid_request_do_not_hurt_the_server() {
    let mut served = serve(&[]);
    let p = player(&served);
    p.rtp.recv_frames(2, REPLY_TIMEOUT);

    let partial = [
        format!("DESCRIBE {} RTSP/1.0\r\nCSe", served.url),
        format!(
            "SETUP {}/streamid=0 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=",
            served.url
        ),
        "SETUP clip.Mjpeg RTSP/1.0\nCSeq: 1\nTransp".to_string(),
        format!(
            "SET_PARAMETER {} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1000\r\n\r\nabc",
            served.url
        ),
        "$\u{1}\u{7}\u{d0}abc".to_string(),
    ];
    for (n, text) in partial.iter().enumerate() {
        let mut client = served.server.connect();
        client.send_raw(text.as_bytes());
        // Half of them close with FIN, half with a reset.
        if n % 2 == 0 {
            drop(client);
        } else {
            reset(client.stream);
        }
    }

    // An interleaved session whose client goes away while packets are being written.
    let mut tcp = served.server.connect();
    let reply = tcp.request(
        "SETUP",
        &format!("{}/streamid=0", served.url),
        &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
    );
    reply.assert_status(200);
    let id = reply.session();
    tcp.request("PLAY", &served.url, &[("Session", &id)])
        .assert_status(200);
    tcp.read_interleaved(Instant::now() + REPLY_TIMEOUT)
        .expect("interleaved packets");
    reset(tcp.stream);
    let closed = served.server.wait_for_closed(&id, REPLY_TIMEOUT);
    assert_eq!(closed["reason"], "control connection closed", "{closed}");

    assert!(served.server.is_running());
    p.still_receives(3);
    still_answers(&served);
    assert!(served.server.is_running());
}

/// The 4-byte packet aiortsp and live555 send to open NAT bindings.
const NAT_PUNCH: [u8; 4] = [0xCE, 0xFA, 0xED, 0xFE];

/// The log lines after the first `from` bytes of the log.
fn log_since(served: &Served, from: usize) -> Vec<String> {
    served.server.log()[from..]
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn nat_punches_are_ignored_silently() {
    let served = serve(&["--no-adapt"]);
    let p = player(&served);
    p.rtp.recv_frames(2, REPLY_TIMEOUT);
    let (rtp_port, rtcp_port) = p.setup.server_ports();
    let before = served.server.log().len();
    // A few: with many, the limit on log lines would hide the report too.
    for _ in 0..2 {
        p.rtp
            .socket
            .send_to(&NAT_PUNCH, ("127.0.0.1", rtp_port))
            .unwrap();
        p.rtcp
            .socket
            .send_to(&NAT_PUNCH, ("127.0.0.1", rtcp_port))
            .unwrap();
    }
    // The server reads its RTCP port in order: once this report is logged, the punches
    // before it were handled.
    let report = receiver_report(0x1234_5678, p.setup.ssrc(), 0, 0);
    p.rtcp
        .socket
        .send_to(&report, ("127.0.0.1", rtcp_port))
        .unwrap();
    // What this test is about is the log staying quiet: it waits for the report's line.
    served.server.wait_for_log(
        &[&format!("session {}: receiver report from", p.id)],
        REPLY_TIMEOUT,
    );
    // Not taken for RTCP either: the report counted, nothing malformed.
    let session = served.server.wait_for_session(
        &p.id,
        "with the receiver report",
        |s| s["receiver_report"]["reports"] == 1,
        REPLY_TIMEOUT,
    );
    assert_eq!(session["rtcp_malformed"], 0, "{session}");
    p.still_receives(5);
    let lines = log_since(&served, before);
    assert!(
        lines.iter().all(|l| l.contains("receiver report from")),
        "the server logged more than the report:\n{}",
        lines.join("\n")
    );
}

#[test]
fn a_flood_of_malformed_rtcp_is_logged_a_few_lines_a_second() {
    let served = serve(&["--no-adapt"]);
    let p = player(&served);
    p.rtp.recv_frames(2, REPLY_TIMEOUT);
    let (_, rtcp_port) = p.setup.server_ports();
    // RTP version 0: no RTCP parser takes it.
    let malformed = [0x00, 0xC9, 0x00, 0x02, 1, 2, 3, 4, 5, 6, 7, 8];
    const SENT: usize = 500;
    let started = Instant::now();
    for k in 0..SENT {
        p.rtcp
            .socket
            .send_to(&malformed, ("127.0.0.1", rtcp_port))
            .unwrap();
        if k % 50 == 49 {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(1), "a slow flood");
    // The per-session limit on log lines is what this test is about: it reads the log.
    // The count of the lines held back is said once the second is over.
    let said = format!("session {}: (", p.id);
    served
        .server
        .wait_for_log(&[&said, "more suppressed)"], REPLY_TIMEOUT);
    let log = served.server.log();
    let logged = log.lines().filter(|l| l.contains("malformed RTCP")).count();
    let suppressed: usize = log
        .lines()
        .filter_map(|l| l.split_once(&said))
        .map(|(_, rest)| {
            rest.split(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("no count in {rest:?}"))
        })
        .sum();
    assert!((1..=10).contains(&logged), "{logged} lines:\n{log}");
    // Every packet the server read was logged or counted (the kernel may drop a few).
    assert!(
        logged + suppressed <= SENT && logged + suppressed >= SENT * 9 / 10,
        "{logged} logged, {suppressed} suppressed:\n{log}"
    );
    // Each of them counted as malformed RTCP.
    let session = served.server.wait_for_session(
        &p.id,
        &format!(
            "with at least {} malformed RTCP packets",
            logged + suppressed
        ),
        |s| s["rtcp_malformed"].as_u64() >= Some((logged + suppressed) as u64),
        REPLY_TIMEOUT,
    );
    assert!(
        session["rtcp_malformed"].as_u64() <= Some(SENT as u64),
        "{session}"
    );
    p.still_receives(5);
}

#[test]
fn one_address_holds_at_most_its_connections_and_others_are_still_answered() {
    const LIMIT: usize = 100; // the default
    let served = serve(&[]);
    let addr = served.server.addr;
    let http = mjpeg_rtsp_tests::http_client::addr_of(&served.server.http());
    // 120 connections from 127.0.0.1: the first 100 are held, the rest closed at once.
    let mut held: Vec<TcpStream> = (0..120)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // Whether the server closed `stream` (given it a moment): a read sees the end.
    let closed_at_once = |stream: &mut TcpStream| {
        std::thread::sleep(Duration::from_millis(20));
        stream.set_nonblocking(true).unwrap();
        let mut byte = [0u8; 1];
        let read = std::io::Read::read(stream, &mut byte);
        stream.set_nonblocking(false).unwrap();
        !matches!(read, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    };
    std::thread::sleep(Duration::from_millis(300));
    let closed = held.iter_mut().map(closed_at_once).filter(|c| *c).count();
    assert_eq!(closed, 120 - LIMIT, "connections closed past the limit");
    // HTTP counts with RTSP: one more from 127.0.0.1 is closed too.
    let mut more = TcpStream::connect(http).unwrap();
    assert!(
        closed_at_once(&mut more),
        "an HTTP connection past the limit"
    );
    served
        .server
        .wait_for_log(&["127.0.0.1 holds 100 connections"], Duration::from_secs(5));
    // Another address is answered, over RTSP and HTTP.
    let from = |port: u16| {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        socket
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 2], 0)).into())
            .unwrap();
        socket
            .connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
            .unwrap();
        TcpStream::from(socket)
    };
    let mut rtsp = from(addr.port());
    rtsp.write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    rtsp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = [0u8; 64];
    let n = std::io::Read::read(&mut rtsp, &mut reply).unwrap();
    assert!(
        reply[..n].starts_with(b"RTSP/1.0 200"),
        "{:?}",
        String::from_utf8_lossy(&reply[..n])
    );
    let mut page = from(http.port());
    page.write_all(b"GET /api/paths HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    page.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = std::io::Read::read(&mut page, &mut reply).unwrap();
    assert!(reply[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &reply[..n]);
    // Places freed are taken again.
    held.truncate(50);
    let again = wait_until(Duration::from_secs(5), || {
        let mut s = TcpStream::connect(addr).unwrap();
        !closed_at_once(&mut s)
    });
    assert!(again, "no connection from 127.0.0.1 after 50 were closed");
}
