//! RFC 2326 multicast end to end, each test in a private network namespace (its loopback
//! carries 224.0.0.0/4; nothing leaves it): ffmpeg (`udp_multicast`), GStreamer's rtspsrc
//! (`udp-mcast`) and mjpeg-player (`--transport multicast`) play one group of a live path
//! while a capture on the namespace's loopback counts what the group carries; the server
//! hears their receiver reports; a clip's group is a channel (a joiner gets where it is,
//! a seek is 455), paused only when all its viewers are; unicast plays beside it; the
//! group is freed with its last viewer.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::capture::{Capture, Datagram};
use mjpeg_rtsp_tests::http_client;
use mjpeg_rtsp_tests::multicast::{Recorder, join, receiver_bye};
use mjpeg_rtsp_tests::netns::Netns;
use mjpeg_rtsp_tests::rtsp::{
    Client, ClipDir, Reply, RtpPacket, ServerProcess, receiver_report, udp_pair,
};
use mjpeg_rtsp_tests::{encode_jpegs, ffmpeg_framecrc_with, plugin_dir, run_to_end};
use serde_json::Value;

/// The server's address inside each namespace.
const SERVER: &str = "127.0.1.1";
/// Six groups, 239.255.77.1 to .6.
const RANGE: &str = "239.255.77.0/29";
/// A live path: 25 frames a second of a test pattern.
const LIVE: &str = "cam=videotestsrc is-live=true ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 ! jpegenc";
const FPS: f64 = 25.0;

/// The server in `netns` on [`SERVER`], with [`RANGE`] and JSON statistics every 0.2 s.
fn server(netns: &Netns, extra: &[&str], urls: usize) -> ServerProcess {
    let mut args = vec![
        "--multicast-range",
        RANGE,
        "--stats",
        "--stats-format",
        "json",
        "--stats-interval",
        "0.2",
    ];
    args.extend(extra);
    ServerProcess::start_in(netns, SERVER, &args, urls)
}

/// GStreamer's rtspsrc over multicast (`protocols=udp-mcast`) in `gst-launch-1.0 -v`,
/// counting the frames its fake sink takes (one `last-message` line each).
struct Rtspsrc {
    child: Child,
    frames: Option<std::thread::JoinHandle<usize>>,
}

impl Rtspsrc {
    fn start(netns: &Netns, url: &str) -> Rtspsrc {
        // Line by line: what is in its buffer when it stops would be lost.
        let mut child = netns
            .command("stdbuf")
            .args(["-oL", "gst-launch-1.0", "-v"])
            .args(["rtspsrc", &format!("location={url}")])
            .args(["protocols=udp-mcast", "latency=100"])
            .args([
                "!",
                "rtpjpegdepay",
                "!",
                "jpegdec",
                "!",
                "fakesink",
                "silent=false",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("gst-launch-1.0 runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let frames = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter(|l| l.contains("fakesink0: last-message = chain"))
                .count()
        });
        Rtspsrc {
            child,
            frames: Some(frames),
        }
    }

    /// Stops it (SIGINT: it tears its session down): the frames decoded, and what it
    /// said on stderr.
    fn stop(mut self) -> (usize, String) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let frames = self.frames.take().map_or(0, |f| f.join().unwrap_or(0));
        (frames, err)
    }
}

impl Drop for Rtspsrc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A multicast SETUP reply's group, (RTP, RTCP) ports, TTL and SSRC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Group {
    addr: Ipv4Addr,
    ports: (u16, u16),
    ttl: u8,
    ssrc: u32,
}

impl Group {
    fn from_reply(reply: &Reply) -> Group {
        reply.assert_status(200);
        let transport = reply.header("Transport").expect("a Transport header");
        assert!(
            transport.starts_with("RTP/AVP;multicast"),
            "not multicast: {transport}"
        );
        let addr: Ipv4Addr = reply
            .param("Transport", "destination")
            .expect("destination")
            .parse()
            .expect("an IPv4 group");
        let ports = reply.param("Transport", "port").expect("port");
        let (rtp, rtcp) = ports.split_once('-').expect("a port pair");
        Group {
            addr,
            ports: (rtp.parse().unwrap(), rtcp.parse().unwrap()),
            ttl: reply.param("Transport", "ttl").unwrap().parse().unwrap(),
            ssrc: reply.ssrc(),
        }
    }

    /// A group as `--stats` lists it (`multicast_groups[]`).
    fn from_stats(entry: &Value) -> Group {
        Group {
            addr: entry["group"].as_str().unwrap().parse().unwrap(),
            ports: (
                entry["rtp_port"].as_u64().unwrap() as u16,
                entry["rtcp_port"].as_u64().unwrap() as u16,
            ),
            ttl: entry["ttl"].as_u64().unwrap() as u8,
            ssrc: entry["ssrc"].as_u64().unwrap() as u32,
        }
    }

    fn rtp(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.addr, self.ports.0)
    }
}

/// SETUP of `url` over multicast on `client`: the group and the session id.
fn setup_multicast(client: &mut Client, url: &str) -> (Group, String) {
    let reply = client.request(
        "SETUP",
        &format!("{url}/streamid=0"),
        &[("Transport", "RTP/AVP;multicast")],
    );
    (Group::from_reply(&reply), reply.session())
}

/// The RTP packets arriving on `socket` within `wait`.
fn packets_within(socket: &UdpSocket, wait: Duration) -> Vec<RtpPacket> {
    let deadline = Instant::now() + wait;
    let mut buf = vec![0u8; 65536];
    let mut packets = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return packets;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            packets.push(RtpPacket::parse(&buf[..n], Instant::now()));
        }
    }
}

/// The first RTP packet on `socket` within `wait`.
fn first_packet(socket: &UdpSocket, wait: Duration) -> Option<RtpPacket> {
    let mut buf = vec![0u8; 65536];
    socket.set_read_timeout(Some(wait)).unwrap();
    let n = socket.recv(&mut buf).ok()?;
    Some(RtpPacket::parse(&buf[..n], Instant::now()))
}

/// Reads everything waiting on `socket`.
fn drain(socket: &UdpSocket) {
    socket.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 65536];
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
}

/// The `npt` start of a reply's `Range` (`npt=1.250-...`).
fn range_start(reply: &Reply) -> f64 {
    let range = reply.header("Range").expect("a Range header");
    range
        .trim_start_matches("npt=")
        .split('-')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no start in Range {range}"))
}

/// The groups of a report (`multicast_groups[]`).
fn groups_in(report: &Value) -> Vec<Value> {
    report["multicast_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Three ffmpeg viewers and an rtspsrc viewer play a live path over multicast at once:
/// each decodes 100 frames, all four are in one group, and while they play the loopback
/// carries one stream's worth of packets to it: each RTP packet once, as the test's own
/// receiver on the group hears them, with the group's sender reports on its RTCP port.
#[test]
fn four_peers_share_one_group_and_the_wire_carries_one_stream() {
    let netns = Netns::new("mcast-peers");
    let server = server(&netns, &["--source", LIVE], 1);
    let url = server.url("cam");
    let capture = Capture::start(&netns, &format!("udp and dst net {RANGE}"));
    // rtspsrc first. On a host where the group loops back, it takes its own first receiver
    // report for another source's and says BYE once (an SSRC collision, RFC 3550 8.2);
    // ffmpeg ends its stream on any BYE it hears in the group. So the ffmpeg viewers join
    // once that is over, and rtspsrc plays on until they are done.
    let rtspsrc = Rtspsrc::start(&netns, &url);
    let heard_from_rtspsrc = server.wait_for_stats(
        "rtspsrc's first receiver report",
        |r| {
            groups_in(r)
                .iter()
                .any(|g| g["receivers"].as_array().is_some_and(|a| !a.is_empty()))
        },
        Duration::from_secs(15),
    );
    let group = Group::from_stats(&groups_in(&heard_from_rtspsrc)[0]);
    std::thread::sleep(Duration::from_millis(500));
    // The test's own receiver on the group, from now until the ffmpeg viewers are done.
    let recorder = Recorder::start(netns.run(|| join(group.rtp())));
    let ffmpeg: Vec<_> = (0..3)
        .map(|_| {
            let command = netns.command("ffmpeg");
            let url = url.clone();
            std::thread::spawn(move || {
                ffmpeg_framecrc_with(
                    command,
                    &["-rtsp_transport", "udp_multicast"],
                    &url,
                    &["-frames:v", "100"],
                    Duration::from_secs(40),
                )
            })
        })
        .collect();
    let ffmpeg: Vec<(bool, Vec<usize>, String)> =
        ffmpeg.into_iter().map(|t| t.join().unwrap()).collect();
    let since = recorder.since;
    let (heard, until) = recorder.stop();
    let (rtspsrc_frames, rtspsrc_err) = rtspsrc.stop();
    // The group is freed with its last viewer: its final figures are in the log.
    let freed = server.wait_for_log(
        &["path cam: multicast group", "freed"],
        Duration::from_secs(10),
    );
    // The last datagrams reach the capture a moment after they are sent.
    std::thread::sleep(Duration::from_millis(500));
    let captured = capture.stop();
    assert_eq!(captured.dropped, 0, "the capture missed datagrams");
    let datagrams = captured.datagrams;
    assert!(
        rtspsrc_frames >= 100,
        "rtspsrc decoded {rtspsrc_frames} frames: {rtspsrc_err}"
    );
    for (ok, frames, dimensions) in &ffmpeg {
        assert!(ok, "ffmpeg failed");
        assert_eq!(frames.len(), 100, "ffmpeg decoded {} frames", frames.len());
        assert_eq!(dimensions, "320x240");
    }
    // Every multicast session the server listed was in one and the same group.
    let reports = server.reports();
    let mut viewers = std::collections::BTreeSet::new();
    let mut groups = std::collections::BTreeSet::new();
    let mut most = 0;
    for report in &reports {
        for session in report["sessions"].as_array().into_iter().flatten() {
            if session["transport"] == "multicast" {
                viewers.insert(session["id"].as_str().unwrap().to_string());
                groups.insert(session["multicast"]["group"].as_str().unwrap().to_string());
            }
        }
        for group in groups_in(report) {
            most = most.max(group["viewers"].as_u64().unwrap());
        }
    }
    assert_eq!(viewers.len(), 4, "{viewers:?}");
    assert_eq!(groups.len(), 1, "viewers in several groups: {groups:?}");
    assert_eq!(most, 4, "the group never had its four viewers at once");
    let sent: u64 = freed
        .split("after ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {freed:?}"));
    // The server's datagrams (rtspsrc sends a few of its own to the group's RTP port, to
    // open firewalls).
    let from_server = |d: &&Datagram| d.from.starts_with(&format!("{SERVER}."));
    let on_group: Vec<&Datagram> = datagrams
        .iter()
        .filter(|d| d.to == group.rtp())
        .filter(from_server)
        .collect();
    // What the wire carried is what the server says it sent...
    let carried = on_group.len() as f64;
    assert!(
        (carried - sent as f64).abs() <= 0.01 * sent as f64 + 2.0,
        "{carried} datagrams on the wire, {sent} sent"
    );
    // ... and, while the four played, what one receiver on the group heard: each packet
    // once, in sequence, one stream's frame rate.
    let stream: Vec<_> = heard.iter().filter(|h| h.ssrc == group.ssrc).collect();
    assert!(
        stream.len() > 100,
        "the receiver heard {} packets",
        stream.len()
    );
    // Sequence numbers extended past 16 bits by the signed step from the one before, so a
    // packet heard again (or late) lands on its own number.
    let mut seqs = std::collections::BTreeSet::new();
    let mut previous = stream[0].seq;
    let mut extended = 0i64;
    for h in &stream {
        extended += i64::from(h.seq.wrapping_sub(previous) as i16);
        previous = h.seq;
        assert!(seqs.insert(extended), "packet {} heard twice", h.seq);
    }
    let span = match (seqs.first(), seqs.last()) {
        (Some(first), Some(last)) => (last - first + 1) as usize,
        _ => 0,
    };
    assert!(
        stream.len() * 100 >= span * 99,
        "{} of {span} packets heard: lost on loopback",
        stream.len()
    );
    let frames = stream
        .iter()
        .map(|h| h.ts)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let listened = until - since;
    let rate = frames as f64 / listened;
    assert!(
        (0.8 * FPS..=1.2 * FPS).contains(&rate),
        "{frames} frames in {listened:.1} s: {rate:.1} a second, not one {FPS} fps stream"
    );
    // The wire from the first packet the receiver heard to its last (each heard a moment
    // after the capture saw it go by).
    let (first_heard, last_heard) = (stream[0].at, stream[stream.len() - 1].at);
    let in_window = on_group
        .iter()
        .filter(|d| d.at >= first_heard - 0.005 && d.at <= last_heard)
        .count();
    let per_frame = stream.len() as f64 / frames as f64;
    eprintln!(
        "group {}: {} datagrams on the wire in all, the server sent {sent}; while 4 viewers \
         played ({listened:.1} s): {in_window} on the wire, {} heard ({frames} frames, \
         {per_frame:.1} packets a frame)",
        group.rtp(),
        on_group.len(),
        stream.len()
    );
    assert!(
        (in_window as f64 - stream.len() as f64).abs() <= 2.0 * per_frame + 2.0,
        "{in_window} datagrams on the wire while one receiver heard {}: not each packet once",
        stream.len()
    );
    // The sender's reports went to the group's RTCP port, from the server.
    let reports_sent = datagrams
        .iter()
        .filter(|d| d.to == SocketAddrV4::new(group.addr, group.ports.1))
        .filter(from_server)
        .count();
    assert!(reports_sent >= 1, "no RTCP from the server to the group");
    assert_eq!(group.ttl, 1);
    // Freed: no group listed any more.
    let after = server.fresh_stats(Duration::from_secs(5));
    assert!(groups_in(&after).is_empty(), "{after}");
}

/// mjpeg-player plays a live path over multicast (joined on the address it reached the
/// server from), and the server hears its receiver reports: logged, and given to its
/// session (the only viewer at that address) in the statistics. Another receiver leaving
/// the group with a BYE does not end the player's stream.
#[test]
fn the_player_plays_multicast_and_the_server_hears_its_reports() {
    let netns = Netns::new("mcast-player");
    let server = server(&netns, &["--source", LIVE], 1);
    let url = server.url("cam");
    let json = tempfile::NamedTempFile::new().unwrap();
    let (status, out, err, bye_sent) = std::thread::scope(|scope| {
        // Once the player plays, another receiver (on 127.0.0.2) says BYE to the group.
        let stray = scope.spawn(|| {
            let playing = server.wait_for_stats(
                "the player's group",
                |r| groups_in(r).iter().any(|g| g["state"] == "playing"),
                Duration::from_secs(20),
            );
            let group = Group::from_stats(&groups_in(&playing)[0]);
            let group_rtcp = SocketAddrV4::new(group.addr, group.ports.1);
            let socket = netns.run(|| UdpSocket::bind("127.0.0.2:0").unwrap());
            let listed = |r: &Value| {
                groups_in(r).iter().any(|g| {
                    g["receivers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|r| r["ssrc"] == 0x5EEB_0001)
                })
            };
            // It reports (the server lists it: the group carries what it sends)...
            socket
                .send_to(&receiver_report(0x5EEB_0001, group.ssrc, 0, 0), group_rtcp)
                .unwrap();
            server.wait_for_stats(
                "the other receiver's report",
                listed,
                Duration::from_secs(10),
            );
            // ... then leaves, and the server forgets it.
            let bye = receiver_bye(0x5EEB_0001, group.ssrc, true);
            for _ in 0..3 {
                socket.send_to(&bye, group_rtcp).unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
            server.wait_for_fresh_stats(
                "the other receiver forgotten after its BYE",
                |r| !listed(r),
                Duration::from_secs(10),
            );
            Instant::now()
        });
        let (status, out, err) = run_to_end(
            netns
                .command(plugin_dir().join("mjpeg-player"))
                .args(["--transport", "multicast", "--headless", "--frames", "150"])
                .arg("--stats-json")
                .arg(json.path())
                .arg(&url)
                .env_remove("DISPLAY")
                .env_remove("WAYLAND_DISPLAY"),
            Duration::from_secs(40),
        );
        let ended = Instant::now();
        let bye_sent = stray.join().unwrap();
        (status, out, err, ended.checked_duration_since(bye_sent))
    });
    assert!(
        status.success(),
        "the player failed: {status}\n{out}\n{err}"
    );
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(json.path()).unwrap())
        .expect("the player's --stats-json");
    assert_eq!(summary["transport"], "multicast", "{summary}");
    assert!(
        summary["frames_shown"].as_u64().unwrap() >= 150,
        "{summary}"
    );
    // It played on after the other receiver's BYE, to the frames it was asked for.
    assert_eq!(summary["ended_by"], "frames", "{summary}\n{err}");
    assert!(
        bye_sent.is_some_and(|d| d >= Duration::from_millis(500)),
        "the stray BYE went out {bye_sent:?} before the player ended: too late to tell"
    );
    // The server logged the player's first receiver report, for its session.
    let line = server.wait_for_log(
        &["receiver report from 127.0.0.1:", "(multicast 239.255.77."],
        Duration::from_secs(10),
    );
    let id = line
        .split("session ")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .expect("a session id in the line")
        .to_string();
    // The statistics gave it to that session, with the receiver's SSRC.
    let seen = server.reports().iter().any(|report| {
        report["sessions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                s["id"] == id.as_str()
                    && s["transport"] == "multicast"
                    && !s["receiver_report"].is_null()
                    && s["multicast"]["receiver_ssrc"].is_u64()
            })
            && groups_in(report).iter().any(|g| {
                g["receivers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["session"] == id.as_str())
            })
    });
    assert!(
        seen,
        "no report gave session {id} its receiver report: {line}"
    );
}

/// A clip's group is a channel: a second viewer joins where it is (its `npt=0.000-` is
/// not a seek), a seek is refused with 455 and the reason, the group pauses only when
/// all its viewers do; a unicast viewer of the clip plays on beside it; the group is
/// freed with its last viewer and a later one gets another; the lab dialect has no
/// multicast.
#[test]
fn a_clip_group_is_a_channel_beside_unicast() {
    let netns = Netns::new("mcast-clip");
    let dir = ClipDir::new();
    let clip = dir.clip("clip.Mjpeg", &encode_jpegs(100, 160, 120, "ball"));
    let clip = clip.to_str().unwrap().to_string();
    let server = server(
        &netns,
        &["--loop", "--fps", "20", "--multicast-ttl", "2", &clip],
        1,
    );
    let url = server.url("clip.Mjpeg");
    let addr = server.addr;
    let log = netns.run(|| channel(addr, &url, &server));
    eprintln!("{log}");
    // The last viewer's TEARDOWN freed the first group.
    server.wait_for_log(&["multicast group", "freed"], Duration::from_secs(5));
}

/// The raw RTSP part of [`a_clip_group_is_a_channel_beside_unicast`], inside the
/// namespace; what it saw, for the test's output.
fn channel(addr: SocketAddr, url: &str, server: &ServerProcess) -> String {
    let control = format!("{url}/streamid=0");
    let mut a = Client::connect(addr);
    let (group, a_id) = setup_multicast(&mut a, url);
    assert_eq!(group.ttl, 2, "--multicast-ttl");
    assert!(group.addr.octets()[..3] == [239, 255, 77], "{group:?}");
    let socket = join(group.rtp());
    a.request("PLAY", url, &[("Session", &a_id), ("Range", "npt=0-")])
        .assert_status(200);
    let first = first_packet(&socket, Duration::from_secs(5)).expect("the group plays");
    assert_eq!(first.ssrc, group.ssrc);

    // A unicast viewer of the same clip has its own stream.
    let (rtp, rtcp) = udp_pair();
    let mut u = Client::connect(addr);
    let reply = u.setup_udp(&control, &rtp, &rtcp);
    let u_id = reply.session();
    u.request("PLAY", url, &[("Session", &u_id), ("Range", "npt=0-")])
        .assert_status(200);
    let unicast = rtp
        .recv_datagram(Instant::now() + Duration::from_secs(5))
        .expect("the unicast viewer plays");
    assert_ne!(RtpPacket::parse(&unicast.0, unicast.2).ssrc, group.ssrc);

    // A receiver report to the server's own RTCP port (not the group's) counts too: from
    // the address of the group's only viewer there, it is that viewer's.
    let (_, server_rtcp) = reply.server_ports();
    let reporter = UdpSocket::bind("127.0.0.1:0").unwrap();
    reporter
        .send_to(
            &receiver_report(0x00C0_FFEE, group.ssrc, 0, 0),
            (addr.ip(), server_rtcp),
        )
        .unwrap();
    let given = server.wait_for_stats(
        "the report given to the viewer",
        |r| {
            r["sessions"].as_array().into_iter().flatten().any(|s| {
                s["id"] == a_id.as_str()
                    && s["multicast"]["receiver_ssrc"] == 0x00C0_FFEE
                    && s["receiver_report"]["reports"] == 1
            })
        },
        Duration::from_secs(5),
    );
    let receivers = &groups_in(&given)[0]["receivers"];
    assert_eq!(receivers[0]["ssrc"], 0x00C0_FFEE, "{receivers}");
    assert_eq!(receivers[0]["session"], a_id.as_str(), "{receivers}");
    // The HTTP API says the same.
    let api = http_client::get(&server.http(), "/api/sessions", "").json();
    let group_entry = &api["multicast_groups"][0];
    assert_eq!(group_entry["group"], group.addr.to_string(), "{api}");
    assert_eq!(
        group_entry["receivers"][0]["session"],
        a_id.as_str(),
        "{api}"
    );
    // The same SSRC reporting from an address no viewer has is not the viewer's any more
    // (the viewer keeps what it was given)...
    let elsewhere = UdpSocket::bind("127.0.0.2:0").unwrap();
    let group_rtcp = SocketAddrV4::new(group.addr, group.ports.1);
    elsewhere
        .send_to(&receiver_report(0x00C0_FFEE, group.ssrc, 0, 0), group_rtcp)
        .unwrap();
    server.wait_for_stats(
        "the report from 127.0.0.2 kept apart",
        |r| {
            groups_in(r).first().is_some_and(|g| {
                g["receivers"][0]["from"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("127.0.0.2:"))
                    && g["receivers"][0]["session"].is_null()
            })
        },
        Duration::from_secs(5),
    );
    // ... and a receiver that says BYE is forgotten, even with no report in the packet.
    elsewhere
        .send_to(&receiver_bye(0x00C0_FFEE, group.ssrc, false), group_rtcp)
        .unwrap();
    server.wait_for_fresh_stats(
        "the receiver forgotten after its BYE",
        |r| {
            groups_in(r)
                .first()
                .is_some_and(|g| g["receivers"].as_array().is_some_and(Vec::is_empty))
        },
        Duration::from_secs(5),
    );

    // A second multicast viewer, 1.5 s later, joins the channel where it is.
    std::thread::sleep(Duration::from_millis(1500));
    let mut b = Client::connect(addr);
    let (b_group, b_id) = setup_multicast(&mut b, url);
    assert_eq!(b_group, group, "one group for the path");
    let joined = b.request("PLAY", url, &[("Session", &b_id), ("Range", "npt=0.000-")]);
    joined.assert_status(200);
    let at = range_start(&joined);
    assert!(
        at >= 1.0,
        "the joiner was put at {at} s, not where the channel is"
    );
    let seq: u16 = joined
        .param("RTP-Info", "seq")
        .expect("RTP-Info seq")
        .parse()
        .unwrap();
    drain(&socket);
    let next = first_packet(&socket, Duration::from_secs(2)).expect("packets go on");
    assert!(
        next.seq.wrapping_sub(seq) < 200,
        "RTP-Info seq {seq}, next packet {}",
        next.seq
    );

    // A seek is refused, with the reason.
    let seek = b.request("PLAY", url, &[("Session", &b_id), ("Range", "npt=4.5-")]);
    seek.assert_status(455);
    let reason = seek.header("X-Error").unwrap_or_default().to_string();
    assert!(
        reason.contains("shared playback") && reason.contains("unicast"),
        "{}",
        seek.text()
    );

    // One viewer pausing does not pause the others' group...
    a.request("PAUSE", url, &[("Session", &a_id)])
        .assert_status(200);
    drain(&socket);
    assert!(
        first_packet(&socket, Duration::from_secs(1)).is_some(),
        "the group stopped while a viewer played"
    );
    // ... the last one does.
    let paused = b.request("PAUSE", url, &[("Session", &b_id)]);
    paused.assert_status(200);
    let paused_at = range_start(&paused);
    std::thread::sleep(Duration::from_millis(200));
    drain(&socket);
    let stray = packets_within(&socket, Duration::from_millis(600));
    assert!(stray.is_empty(), "{} packets while paused", stray.len());
    // Resuming goes on from there.
    let resumed = a.request("PLAY", url, &[("Session", &a_id)]);
    resumed.assert_status(200);
    assert!(
        (range_start(&resumed) - paused_at).abs() < 0.2,
        "paused at {paused_at}, resumed at {}",
        range_start(&resumed)
    );
    assert!(first_packet(&socket, Duration::from_secs(2)).is_some());

    // The group goes with its last viewer; the unicast viewer plays on.
    a.request("TEARDOWN", url, &[("Session", &a_id)])
        .assert_status(200);
    let listed = server.fresh_stats(Duration::from_secs(5));
    assert_eq!(groups_in(&listed).len(), 1, "freed with a viewer left");
    assert_eq!(groups_in(&listed)[0]["viewers"], 1);
    b.request("TEARDOWN", url, &[("Session", &b_id)])
        .assert_status(200);
    let after = server.fresh_stats(Duration::from_secs(5));
    assert!(groups_in(&after).is_empty(), "not freed: {after}");
    assert!(
        rtp.recv_datagram(Instant::now() + Duration::from_secs(2))
            .is_some(),
        "the unicast viewer stopped with the group"
    );
    // A later viewer gets a new group.
    let mut c = Client::connect(addr);
    let (c_group, c_id) = setup_multicast(&mut c, url);
    assert_ne!(
        c_group.addr, group.addr,
        "the freed group was handed out again at once"
    );
    c.request("TEARDOWN", url, &[("Session", &c_id)])
        .assert_status(200);
    u.request("TEARDOWN", url, &[("Session", &u_id)])
        .assert_status(200);

    // The lab dialect has no multicast.
    let mut lab = Client::connect(addr);
    lab.send_raw(b"SETUP clip.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/AVP;multicast\n");
    let refused =
        String::from_utf8_lossy(&lab.read_exact_bytes(12, Duration::from_secs(5))).to_string();
    assert_eq!(refused, "RTSP/1.0 461");
    format!(
        "group {group:?}, joiner at {at:.2} s, paused at {paused_at:.2} s, then {}",
        c_group.addr
    )
}

/// A `--multicast-range` that is not multicast stops the server at start, naming the
/// flag; so does one in the configuration file, naming the key.
#[test]
fn a_range_that_is_not_multicast_is_refused_at_start() {
    let (status, _, err) = run_to_end(
        Command::new(mjpeg_rtsp_tests::rtsp::server_binary()).args([
            "--port",
            "0",
            "--no-http",
            "--multicast-range",
            "10.0.0.0/8",
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("--multicast-range 10.0.0.0/8 is not a multicast range"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(&config, "[server]\nmulticast_range = \"192.0.2.0/24\"\n").unwrap();
    let (status, _, err) = run_to_end(
        Command::new(mjpeg_rtsp_tests::rtsp::server_binary())
            .args(["--port", "0", "--no-http", "--config"])
            .arg(&config),
        Duration::from_secs(30),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("multicast_range 192.0.2.0/24 is not a multicast range"),
        "{err}"
    );
}
