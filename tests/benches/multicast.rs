//! `make bench`: multicast, packets on the wire. One `mjpeg-rtsp-server --loop --fps 25`
//! serves the bundled clip (384x288) in a private network namespace; one process (this
//! one, inside the namespace) opens N RTSP sessions, each with a UDP socket of its own,
//! and plays; `tcpdump` on the namespace's loopback (UDP segmentation offload off, so each
//! datagram is seen as a network card would send it) counts the server's RTP datagrams
//! over a window:
//!
//! - multicast, 1 and 50 viewers: `Transport: RTP/AVP;multicast`, each viewer's socket
//!   bound to the group's RTP port and joined to the group; captured: `udp and dst host
//!   GROUP and dst port RTP_PORT`;
//! - unicast, 50 viewers: `RTP/AVP;unicast;client_port=...`; captured: `udp and src host
//!   SERVER and src port SERVER_RTP_PORT` (the server's shared RTP socket).
//!
//! Every viewer reads its socket throughout; what each received in the window is reported
//! too (a multicast viewer gets every datagram of the group), and the server process's
//! CPU time over the window (from `/proc`, in clock ticks: use a longer window for finer
//! figures).
//!
//! `MULTICAST_BENCH_WINDOW` sets the window in seconds (default 5).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mjpeg_rtsp_tests::bench::cpu_seconds;
use mjpeg_rtsp_tests::capture::{Capture, unix_now};
use mjpeg_rtsp_tests::multicast::join;
use mjpeg_rtsp_tests::netns::Netns;
use mjpeg_rtsp_tests::rtsp::{Client, ServerProcess, udp_pair};
use mjpeg_rtsp_tests::workspace_root;

const SERVER: &str = "127.0.1.1";
const SETTLE: Duration = Duration::from_secs(1);

/// What one point measured.
struct Point {
    name: String,
    viewers: usize,
    packets_per_s: f64,
    bytes_per_s: f64,
    /// Datagrams a second each viewer received (lowest, highest).
    received: (f64, f64),
    dropped: u64,
    /// The server process's CPU over the window, in % of a core.
    server_cpu: f64,
}

/// A viewer's socket, read on a thread of its own until `stop`.
struct Reader {
    count: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

fn read_all(socket: UdpSocket, stop: Arc<AtomicBool>) -> Reader {
    let count = Arc::new(AtomicU64::new(0));
    let counter = count.clone();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let thread = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while !stop.load(Ordering::Relaxed) {
            if socket.recv(&mut buf).is_ok() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Reader { count, thread }
}

/// N viewers of `url` play; the capture counts the server's RTP over `window`, and the
/// server's CPU time (process `pid`) over the same window is taken.
fn point(
    netns: &Netns,
    pid: u32,
    addr: SocketAddr,
    url: &str,
    viewers: usize,
    multicast: bool,
    window: Duration,
) -> Point {
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let mut readers = Vec::new();
    let mut filter = String::new();
    let control = format!("{url}/streamid=0");
    for _ in 0..viewers {
        let mut client = netns.run(|| Client::connect(addr));
        let session;
        if multicast {
            let reply = client.request("SETUP", &control, &[("Transport", "RTP/AVP;multicast")]);
            reply.assert_status(200);
            let group: Ipv4Addr = reply
                .param("Transport", "destination")
                .unwrap()
                .parse()
                .unwrap();
            let port: u16 = reply
                .param("Transport", "port")
                .unwrap()
                .split('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let socket = netns.run(|| join(SocketAddrV4::new(group, port)));
            readers.push(read_all(socket, stop.clone()));
            filter = format!("udp and dst host {group} and dst port {port}");
            session = reply.session();
        } else {
            let (rtp, rtcp) = netns.run(udp_pair);
            let reply = client.setup_udp(&control, &rtp, &rtcp);
            let (server_rtp, _) = reply.server_ports();
            filter = format!("udp and src host {SERVER} and src port {server_rtp}");
            session = reply.session();
            readers.push(read_all(rtp.socket, stop.clone()));
            // Its RTCP socket stays open (the server's reports go there).
            std::mem::forget(rtcp);
        }
        client
            .request("PLAY", url, &[("Session", &session), ("Range", "npt=0-")])
            .assert_status(200);
        clients.push((client, session));
    }
    std::thread::sleep(SETTLE);
    let capture = Capture::start(netns, &filter);
    let before: Vec<u64> = readers
        .iter()
        .map(|r| r.count.load(Ordering::Relaxed))
        .collect();
    let (from, started) = (unix_now(), Instant::now());
    let cpu_before = cpu_seconds(pid).unwrap_or(f64::NAN);
    std::thread::sleep(window);
    let cpu_after = cpu_seconds(pid).unwrap_or(f64::NAN);
    let after: Vec<u64> = readers
        .iter()
        .map(|r| r.count.load(Ordering::Relaxed))
        .collect();
    let (to, seconds) = (unix_now(), started.elapsed().as_secs_f64());
    // The last datagrams reach the capture a moment after they are sent; the window is
    // cut by their time stamps.
    std::thread::sleep(Duration::from_millis(300));
    let captured = capture.stop();
    let in_window: Vec<_> = captured
        .datagrams
        .iter()
        .filter(|d| (from..to).contains(&d.at))
        .collect();
    let packets = in_window.len() as f64;
    let bytes: usize = in_window.iter().map(|d| d.length).sum();
    for (client, session) in &mut clients {
        client.request("TEARDOWN", url, &[("Session", session)]);
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        let _ = reader.thread.join();
    }
    let rates: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) as f64 / seconds)
        .collect();
    Point {
        name: if multicast {
            "multicast"
        } else {
            "unicast UDP"
        }
        .to_string(),
        viewers,
        packets_per_s: packets / (to - from),
        bytes_per_s: bytes as f64 / (to - from),
        received: (
            rates.iter().cloned().fold(f64::INFINITY, f64::min),
            rates.iter().cloned().fold(0.0, f64::max),
        ),
        dropped: captured.dropped,
        server_cpu: 100.0 * (cpu_after - cpu_before) / seconds,
    }
}

fn main() {
    mjpeg_rtsp_tests::bench::build_apps();
    let window = std::env::var("MULTICAST_BENCH_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .map_or(Duration::from_secs(5), Duration::from_secs_f64);
    let netns = Netns::new("mcast-bench");
    let clip = workspace_root().join("media/sample.Mjpeg");
    let server = ServerProcess::start_in(
        &netns,
        SERVER,
        &[
            "--loop".as_ref(),
            "--fps".as_ref(),
            "25".as_ref(),
            "--no-http".as_ref(),
            "--multicast-range".as_ref(),
            "239.255.88.0/24".as_ref(),
            clip.as_os_str(),
        ],
        1,
    );
    let url = server.url("sample.Mjpeg");
    let addr = server.addr;
    let points: Vec<Point> = [(1, true), (50, true), (50, false)]
        .into_iter()
        .map(|(viewers, multicast)| {
            let point = point(&netns, server.pid(), addr, &url, viewers, multicast, window);
            std::thread::sleep(Duration::from_millis(500));
            point
        })
        .collect();
    println!(
        "\nmulticast: packets on the wire, the bundled clip (384x288) at 25 fps, {:.0} s windows",
        window.as_secs_f64()
    );
    println!(
        "| transport | viewers | RTP datagrams/s on the wire | UDP payload bytes/s (Mbit/s) | each viewer received (datagrams/s) | capture drops | server CPU (% of a core) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for p in &points {
        println!(
            "| {} | {} | {:.0} | {:.0} ({:.2}) | {:.0} to {:.0} | {} | {:.2} |",
            p.name,
            p.viewers,
            p.packets_per_s,
            p.bytes_per_s,
            p.bytes_per_s * 8.0 / 1e6,
            p.received.0,
            p.received.1,
            p.dropped,
            p.server_cpu
        );
    }
    let (one, fifty, unicast) = (&points[0], &points[1], &points[2]);
    println!(
        "\n50 multicast viewers / 1: {:.2}x the datagrams, {:.2}x the bytes; 50 unicast / 50 multicast: {:.1}x the datagrams, {:.1}x the bytes",
        fifty.packets_per_s / one.packets_per_s,
        fifty.bytes_per_s / one.bytes_per_s,
        unicast.packets_per_s / fifty.packets_per_s,
        unicast.bytes_per_s / fifty.bytes_per_s
    );
    println!(
        "server CPU: 50 multicast viewers / 1: {:.2}x; 50 unicast / 50 multicast: {:.1}x",
        fifty.server_cpu / one.server_cpu,
        unicast.server_cpu / fifty.server_cpu
    );
    drop(server);
}
