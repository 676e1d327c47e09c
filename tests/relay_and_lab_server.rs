//! Self-tests of the player tests' infrastructure: the lossy RTSP proxy
//! (`mjpeg_rtsp_tests::relay`) between `mjpeg-rtsp-server` and the raw RTSP client (and
//! GStreamer's rtspsrc), and the lab-dialect server (`mjpeg_rtsp_tests::lab_server`)
//! against a raw lab client.
//!
//! The server binary must be built first: `cargo build -p mjpeg-rtsp-apps`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Instant;

use gst::prelude::*;
use mjpeg_rtsp_tests::lab_server::{LabCounts, LabOptions, LabServer};
use mjpeg_rtsp_tests::relay::{DropPolicy, LossyProxy, RelayCounts};
use mjpeg_rtsp_tests::rtsp::*;
use mjpeg_rtsp_tests::*;

/// Frames of the test clip (all different), 320x240.
const FRAMES: usize = 20;

fn frames() -> &'static [Vec<u8>] {
    static FRAMES_: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES_.get_or_init(|| encode_jpegs(FRAMES, 320, 240, "ball"))
}

/// Small packets, so that each frame is many: plenty of drops in a short clip.
const FAST: &[&str] = &["--fps", "100", "--mtu", "400", "--no-adapt"];

/// DESCRIBE and SETUP over UDP through `proxy`; checks the rewritten Transport.
fn setup_through(proxy: &LossyProxy, served: &Served) -> UdpSession {
    let url = proxy.proxied(&served.url);
    let mut client = Client::connect(proxy.addr());
    // A reply with a body passes untouched.
    let reply = client.request("DESCRIBE", &url, &[("Accept", "application/sdp")]);
    reply.assert_status(200);
    let length = reply.body.len().to_string();
    assert_eq!(reply.header("Content-Length"), Some(length.as_str()));
    assert_eq!(
        reply.header("Content-Base"),
        Some(format!("{url}/").as_str())
    );
    assert!(String::from_utf8_lossy(&reply.body).contains("m=video 0 RTP/AVP 26"));

    let before = proxy.counts().sessions.len();
    let (session, reply) = UdpSession::setup(client, &url, &format!("{url}/streamid=0"));
    let (a, b) = (session.rtp.port(), session.rtcp.port());
    let counts = proxy.counts();
    assert_eq!(counts.sessions.len(), before + 1);
    let relayed = &counts.sessions[before];
    assert_eq!(
        (relayed.player_rtp.port(), relayed.player_rtcp.port()),
        (a, b)
    );
    // The player sees its own ports, and the relay's as the server's.
    assert_eq!(
        reply.header("Transport").unwrap(),
        format!(
            "RTP/AVP;unicast;ssrc={:08X};client_port={a}-{b};server_port={}-{}",
            session.ssrc, relayed.relay_rtp, relayed.relay_rtcp
        )
    );
    assert_eq!(relayed.ssrc, Some(session.ssrc));
    assert_eq!(relayed.session_id.as_deref(), Some(session.id.as_str()));
    let server_rtp = relayed.server_rtp.expect("the server's RTP port");
    assert_eq!(server_rtp.ip(), served.server.addr.ip());
    assert_ne!(server_rtp.port(), relayed.relay_rtp);
    assert_eq!(
        session.server_ports,
        (relayed.relay_rtp, relayed.relay_rtcp)
    );
    session
}

/// Plays the whole clip through the relay; returns what the player got, once the relay
/// saw every frame's last packet and the player has every packet the relay forwarded.
fn play_to_the_end(proxy: &LossyProxy, s: &mut UdpSession) -> (Vec<RtpPacket>, RelayCounts) {
    let url = s.url.clone();
    s.client
        .request("PLAY", &url, &[("Session", &s.id)])
        .assert_status(200);
    let counts = proxy.wait_for(REPLY_TIMEOUT, "every frame", |c| {
        c.ssrc(s.ssrc).is_some_and(|c| c.markers == FRAMES as u64)
    });
    let forwarded = counts.ssrc(s.ssrc).unwrap().forwarded as usize;
    let packets = s
        .rtp
        .recv_until(Instant::now() + REPLY_TIMEOUT, |p| p.len() >= forwarded);
    assert_eq!(packets.len(), forwarded, "the player got fewer packets");
    (packets, counts)
}

/// The gaps in what the player got are exactly the relay's drops.
fn assert_gaps_are_the_drops(packets: &[RtpPacket], counts: &RelayCounts, ssrc: u32) {
    let c = counts.ssrc(ssrc).expect("the SSRC");
    assert!(packets.iter().all(|p| p.ssrc == ssrc));
    let first = c.first_seq.expect("a first packet");
    let got: Vec<u16> = packets.iter().map(|p| p.seq).collect();
    // In order, and together with the drops the whole run from the first packet.
    let mut all: Vec<u16> = got.iter().chain(&c.dropped_seqs).copied().collect();
    all.sort_by_key(|s| s.wrapping_sub(first));
    let run: Vec<u16> = (0..c.received as u16)
        .map(|k| first.wrapping_add(k))
        .collect();
    assert_eq!(all, run, "received + dropped is not every packet once");
    for pair in got.windows(2) {
        assert!(pair[1].wrapping_sub(pair[0]) < 0x8000, "out of order");
    }
    // The gaps the player sees between its first and last packet.
    let mut gaps = Vec::new();
    for pair in got.windows(2) {
        let mut s = pair[0].wrapping_add(1);
        while s != pair[1] {
            gaps.push(s);
            s = s.wrapping_add(1);
        }
    }
    let last = *got.last().unwrap();
    let inside: Vec<u16> = c
        .dropped_seqs
        .iter()
        .copied()
        .filter(|&d| d.wrapping_sub(got[0]) < last.wrapping_sub(got[0]))
        .collect();
    assert_eq!(gaps, inside);
    assert_eq!(gaps.len() as u64, c.visible_losses());
    assert_eq!(
        c.expected() - c.forwarded,
        c.visible_losses(),
        "RFC 3550 cumulative loss"
    );
    assert_eq!(c.received, c.forwarded + c.dropped);
    assert_eq!(c.dropped as usize, c.dropped_seqs.len());
}

#[test]
fn udp_through_the_relay_loses_exactly_the_counted_packets() {
    let served = serve(frames(), FAST);
    let proxy = LossyProxy::start(served.server.addr, DropPolicy::EveryNth(7));
    let mut s = setup_through(&proxy, &served);
    let (packets, counts) = play_to_the_end(&proxy, &mut s);
    let c = counts.single();
    assert!(c.received >= 60, "only {} packets", c.received);
    assert_eq!(c.dropped, c.received / 7);
    let want: Vec<u16> = (1..=c.received)
        .filter(|k| k % 7 == 0)
        .map(|k| c.first_seq.unwrap().wrapping_add(k as u16 - 1))
        .collect();
    assert_eq!(c.dropped_seqs, want);
    assert_gaps_are_the_drops(&packets, &counts, s.ssrc);
    // The server's BYE reaches the player through the relay, from the port the player
    // was told is the server's RTCP port.
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let (data, from, _) = s.rtcp.recv_datagram(deadline).expect("an RTCP BYE");
        assert_eq!(from.port(), s.server_ports.1);
        let summary = rtcp_summary(&data);
        if !summary.byes.is_empty() {
            assert_eq!(summary.byes, vec![s.ssrc]);
            break;
        }
    }
    assert!(proxy.counts().rtcp_to_player >= 1);

    // The player's RTCP reaches the server (from the relay's RTCP port).
    let report = receiver_report(0x1234_5678, s.ssrc, 0, c.visible_losses() as u32);
    s.rtcp
        .socket
        .send_to(&report, ("127.0.0.1", s.server_ports.1))
        .unwrap();
    let session = served.server.wait_for_session(
        &s.id,
        "with a receiver report",
        |s| s["receiver_report"]["reports"] == 1,
        REPLY_TIMEOUT,
    );
    assert_eq!(
        session["receiver_report"]["cumulative_lost"],
        c.visible_losses(),
        "{session}"
    );
    let counts = proxy.counts();
    assert_eq!(counts.rtcp_to_server, 1);
    assert_eq!(counts.rtcp_from_player, vec![report]);
    assert_eq!(counts.rtp_to_server, 0);
    assert_eq!(counts.not_rtp, 0);
    s.client
        .request("TEARDOWN", &s.url, &[("Session", &s.id)])
        .assert_status(200);
    assert_eq!(proxy.counts().connections, 1);
    assert_eq!(proxy.counts().udp_setups, 1);
}

#[test]
fn seeded_random_drops_and_a_tcp_session_on_a_second_connection() {
    let served = serve(frames(), FAST);
    let policy = DropPolicy::Probability { p: 0.1, seed: 42 };
    let proxy = LossyProxy::start(served.server.addr, policy.clone());

    // An interleaved session on its own connection, opened first and left open.
    let url = proxy.proxied(&served.url);
    let mut tcp = Client::connect(proxy.addr());
    let (tcp_ssrc, tcp_id) = tcp.setup_interleaved(&format!("{url}/streamid=0"));

    let mut s = setup_through(&proxy, &served);
    tcp.request("PLAY", &url, &[("Session", &tcp_id)])
        .assert_status(200);
    let (packets, counts) = play_to_the_end(&proxy, &mut s);
    let c = counts.single();
    assert_gaps_are_the_drops(&packets, &counts, s.ssrc);
    let want: Vec<u16> = (1..=c.received)
        .filter(|&k| policy.drops(k))
        .map(|k| c.first_seq.unwrap().wrapping_add(k as u16 - 1))
        .collect();
    assert_eq!(c.dropped_seqs, want);
    assert!(c.dropped > 0, "no drops in {} packets", c.received);

    // Nothing is dropped on the interleaved session: every packet of every frame.
    let mut got = Vec::new();
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while interleaved_rtp(&got, 0).iter().filter(|p| p.marker).count() < FRAMES {
        got.push(tcp.read_interleaved(deadline).expect("interleaved packets"));
    }
    let rtp = interleaved_rtp(&got, 0);
    assert!(rtp.iter().all(|p| p.ssrc == tcp_ssrc));
    for pair in rtp.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq.wrapping_add(1));
    }
    assert_eq!(depayload(&rtp).len(), FRAMES);
    let counts = proxy.counts();
    assert_eq!(counts.connections, 2);
    assert_eq!((counts.udp_setups, counts.interleaved_setups), (1, 1));
    assert!(counts.interleaved_frames >= rtp.len() as u64);
    assert!(!counts.ssrcs.contains_key(&tcp_ssrc));
}

#[test]
fn rtspsrc_plays_through_the_relay() {
    let served = serve(frames(), &["--fps", "50", "--loop", "--no-adapt"]);
    let proxy = LossyProxy::start(served.server.addr, DropPolicy::EveryNth(50));
    let pipeline = launch(&format!(
        "rtspsrc location={} protocols=udp latency=100 ! rtpjpegdepay ! \
         appsink name=sink sync=false",
        proxy.proxied(&served.url)
    ));
    let sink = appsink(&pipeline);
    pipeline.set_state(gst::State::Playing).expect("playing");
    // rtspsrc's receiver reports go through the relay to the server.
    let counts = proxy.wait_for(REPLY_TIMEOUT, "a receiver report from rtspsrc", |c| {
        c.rtcp_to_server >= 1 && c.total_dropped() >= 2
    });
    let id = counts.sessions[0].session_id.clone().expect("a session id");
    served.server.wait_for_session(
        &id,
        "with a receiver report",
        |s| s["receiver_report"]["reports"].as_u64() >= Some(1),
        REPLY_TIMEOUT,
    );
    let mut frames_out = 0;
    while sink
        .try_pull_sample(gst::ClockTime::from_mseconds(0))
        .is_some()
    {
        frames_out += 1;
    }
    pipeline.set_state(gst::State::Null).expect("stops");
    assert!(frames_out > 0, "rtspsrc gave no frame");
    assert_eq!(counts.udp_setups, 1);
    assert_eq!(counts.not_rtp, 0);
}

// ---------------------------------------------------------------------------------------
// The lab server.

fn lab_frames() -> &'static [Vec<u8>] {
    static FRAMES_: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES_.get_or_init(|| encode_jpegs(10, 160, 120, "ball"))
}

/// A lab client: one write per request, `\n` line ends, replies read by exact bytes.
struct LabClient {
    client: Client,
    rtp: UdpReceiver,
    cseq: u32,
    file: String,
}

impl LabClient {
    fn connect(server: &LabServer) -> LabClient {
        LabClient {
            client: Client::connect(server.addr()),
            rtp: UdpReceiver::bind(),
            cseq: 0,
            file: server.file_name().to_string(),
        }
    }

    /// Sends `METHOD file RTSP/1.0\nCSeq: n\n<last>`; returns the request's text.
    fn send(&mut self, method: &str, last: &str) -> String {
        self.cseq += 1;
        let text = format!(
            "{method} {} RTSP/1.0\nCSeq: {}\n{last}",
            self.file, self.cseq
        );
        self.client.send_raw(text.as_bytes());
        text
    }

    fn setup(&mut self) -> String {
        let port = self.rtp.port();
        self.send("SETUP", &format!("Transport: RTP/UDP; client_port= {port}"))
    }

    fn expect(&mut self, reply: &str) {
        let got = self.client.read_exact_bytes(reply.len(), REPLY_TIMEOUT);
        assert_eq!(String::from_utf8_lossy(&got), reply);
    }

    /// `n` lab datagrams: (seq, source, first byte), checking the rest of the header and
    /// that each carries frame seq - 1 of the clip, whole.
    fn packets(&self, n: usize, first_byte: u8) -> Vec<(u16, SocketAddr)> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        (0..n)
            .map(|_| {
                let (data, from, at) = self.rtp.recv_datagram(deadline).expect("a lab packet");
                let packet = lab_packet(&data, first_byte >> 6, at);
                let seq = packet.seq;
                let clip = lab_frames();
                let k = (usize::from(seq) - 1) % clip.len();
                assert!(packet.payload == clip[k], "datagram {seq} is not frame {k}");
                (seq, from)
            })
            .collect()
    }
}

fn ok(cseq: u32, session: u32) -> String {
    format!("RTSP/1.0 200 OK\nCSeq: {cseq}\nSession: {session}")
}

#[test]
fn lab_server_speaks_the_exact_dialect() {
    let server = LabServer::start(
        lab_frames().to_vec(),
        LabOptions {
            fps: 50,
            session_id: Some(274628),
            ..LabOptions::default()
        },
    );
    assert_eq!(
        server.url(),
        format!("rtsp://{}/movie.Mjpeg", server.addr())
    );
    let mut c = LabClient::connect(&server);
    let mut sent = vec![c.setup()];
    assert_eq!(
        sent[0],
        format!(
            "SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= {}",
            c.rtp.port()
        )
    );
    c.expect(&ok(1, 274628));
    sent.push(c.send("PLAY", "Session: 274628"));
    c.expect(&ok(2, 274628));
    let first = c.packets(2, 0x80);
    assert_eq!(first.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1, 2]);
    sent.push(c.send("PAUSE", "Session: 274628"));
    c.expect(&ok(3, 274628));
    // The sender stopped before the reply: what it sent is all there is.
    let paused = server.counts();
    let n = paused.frames_sent as usize;
    assert!(
        (2..lab_frames().len()).contains(&n),
        "{n} frames before PAUSE"
    );
    let more = c.packets(n - 2, 0x80);
    assert_eq!(paused.sent_seqs(), (1..=n as u16).collect::<Vec<_>>());
    assert_eq!(paused.last_seq, Some(n as u16));
    assert!(first.iter().chain(&more).all(|p| p.1 == first[0].1));
    assert_eq!(paused.packets[0].from.port(), first[0].1.port());
    assert_eq!(paused.packets[0].to.port(), c.rtp.port());

    // PLAY again: a fresh source port, seq goes on to the end of the clip.
    sent.push(c.send("PLAY", "Session: 274628"));
    c.expect(&ok(4, 274628));
    let rest = c.packets(lab_frames().len() - n, 0x80);
    assert_eq!(
        rest.iter().map(|p| p.0).collect::<Vec<_>>(),
        (n as u16 + 1..=lab_frames().len() as u16).collect::<Vec<_>>()
    );
    assert_ne!(rest[0].1, first[0].1, "the same UDP port after PAUSE/PLAY");
    sent.push(c.send("TEARDOWN", "Session: 274628"));
    c.expect(&ok(5, 274628));
    let counts = server.counts();
    assert_eq!(counts.requests, sent);
    assert_eq!(counts.replies.len(), 5);
    assert_eq!(counts.frames_sent, lab_frames().len() as u64);
    assert_eq!(counts.plays, 2);
    assert_eq!(counts.sessions, vec![274628]);
    assert_eq!(counts.connections, 1);
}

#[test]
fn lab_server_options_and_odd_requests() {
    let server = LabServer::start(
        lab_frames().to_vec(),
        LabOptions {
            fps: 200,
            version0: true,
            file_name: "clip.Mjpeg".into(),
            describe: true,
            drop: DropPolicy::EveryNth(2),
            ..LabOptions::default()
        },
    );
    // Another file: 404, then the real one; the session id is random but 6 digits.
    let mut c = LabClient::connect(&server);
    c.file = "other.Mjpeg".into();
    c.setup();
    let id = server
        .wait_for(REPLY_TIMEOUT, "a session", |s| !s.sessions.is_empty())
        .sessions[0];
    assert!((100_000..=999_999).contains(&id));
    c.expect(&format!("RTSP/1.0 404 NOT FOUND\nCSeq: 1\nSession: {id}"));
    c.file = "clip.Mjpeg".into();

    // DESCRIBE (when enabled) has a body with its length.
    c.send("DESCRIBE", "Accept: application/sdp");
    let head = format!(
        "{}\nContent-Base: clip.Mjpeg\nContent-Type: application/sdp\nContent-Length: ",
        ok(2, id)
    );
    c.expect(&head);
    let rest = c
        .client
        .read_until(REPLY_TIMEOUT, |b| {
            let text = String::from_utf8_lossy(b);
            text.split_once("\n\n")
                .is_some_and(|(len, body)| len.parse::<usize>().is_ok_and(|len| body.len() >= len))
        })
        .expect("the SDP");
    let text = String::from_utf8(rest).unwrap();
    let (len, body) = text.split_once("\n\n").unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), body.len());
    assert!(body.contains("m=video 0 RTP/AVP 26\n"), "{body}");

    // PLAY before SETUP: no answer (the next reply is SETUP's). A `\r\n` SETUP with a
    // port pair and `client_port=` works.
    c.send("PLAY", &format!("Session: {id}"));
    c.cseq += 1;
    let port = c.rtp.port();
    c.client.send_raw(
        format!(
            "SETUP clip.Mjpeg RTSP/1.0\r\nCSeq: {}\r\nTransport: RTP/AVP;unicast;\
             client_port={port}-{}\r\n\r\n",
            c.cseq,
            port + 1
        )
        .as_bytes(),
    );
    c.expect(&ok(4, id));

    // PLAY and PAUSE glued in one write (no line end between them) get two replies.
    let glued = format!(
        "PLAY clip.Mjpeg RTSP/1.0\nCSeq: 5\nSession: {id}PAUSE clip.Mjpeg RTSP/1.0\nCSeq: \
         6\nSession: {id}"
    );
    c.client.send_raw(glued.as_bytes());
    c.cseq = 6;
    c.expect(&format!("{}{}", ok(5, id), ok(6, id)));
    c.send("PLAY", &format!("Session: {id}"));
    c.expect(&ok(7, id));
    // Every other frame left out, V=0.
    let counts: LabCounts = server.wait_for(REPLY_TIMEOUT, "the whole clip", |s| {
        s.frames_sent as usize + s.dropped_seqs.len() == lab_frames().len()
    });
    let got = c.packets(counts.frames_sent as usize, 0x00);
    let seqs: Vec<u16> = got.iter().map(|p| p.0).collect();
    let n = lab_frames().len() as u16;
    assert_eq!(seqs, (1..=n).step_by(2).collect::<Vec<_>>());
    assert_eq!(counts.dropped_seqs, (2..=n).step_by(2).collect::<Vec<_>>());
    assert_eq!(counts.sent_seqs(), seqs);
    c.send("TEARDOWN", &format!("Session: {id}"));
    c.expect(&ok(8, id));

    // A second client gets its own session and numbering from 1.
    let mut d = LabClient::connect(&server);
    d.file = "clip.Mjpeg".into();
    d.setup();
    let counts = server.wait_for(REPLY_TIMEOUT, "a second session", |s| s.sessions.len() == 2);
    let id2 = counts.sessions[1];
    d.expect(&ok(1, id2));
    d.send("PLAY", &format!("Session: {id2}"));
    d.expect(&ok(2, id2));
    assert_eq!(d.packets(1, 0x00)[0].0, 1);
}
