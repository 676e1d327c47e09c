//! A test's own receiver on a multicast group: a socket joined to it, a thread that keeps
//! what arrives, and the RTCP a leaving receiver sends.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::capture::unix_now;

/// A socket on `group`'s port, joined to it (shared with other receivers on the host:
/// `SO_REUSEADDR`, as ffmpeg and GStreamer set), with room for a burst of packets.
pub fn join(group: SocketAddrV4) -> UdpSocket {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    socket.set_reuse_address(true).unwrap();
    socket.set_recv_buffer_size(1 << 20).unwrap();
    socket.bind(&group.into()).unwrap();
    socket
        .join_multicast_v4(group.ip(), &Ipv4Addr::UNSPECIFIED)
        .unwrap();
    socket.into()
}

/// One RTP packet as the recorder saw it.
#[derive(Debug, Clone, Copy)]
pub struct Heard {
    pub ssrc: u32,
    pub seq: u16,
    pub ts: u32,
    /// Seconds since the Unix epoch (the capture's clock).
    pub at: f64,
}

/// Keeps the RTP header of every packet arriving on a joined socket until stopped.
pub struct Recorder {
    heard: Arc<Mutex<Vec<Heard>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// When it started listening (Unix seconds).
    pub since: f64,
}

impl Recorder {
    /// Starts keeping what arrives on `socket` from now: what was queued before is
    /// dropped, so that [`since`](Self::since) is when the first packet kept could arrive.
    pub fn start(socket: UdpSocket) -> Recorder {
        let mut buf = vec![0u8; 65536];
        socket.set_nonblocking(true).unwrap();
        while socket.recv(&mut buf).is_ok() {}
        let since = unix_now();
        socket.set_nonblocking(false).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopping) = (heard.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let keep = |packet: &[u8]| {
                if packet.len() < 12 {
                    return;
                }
                let word = |i: usize| {
                    u32::from_be_bytes([packet[i], packet[i + 1], packet[i + 2], packet[i + 3]])
                };
                kept.lock().unwrap().push(Heard {
                    seq: u16::from_be_bytes([packet[2], packet[3]]),
                    ts: word(4),
                    ssrc: word(8),
                    at: unix_now(),
                });
            };
            while !stopping.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    keep(&buf[..n]);
                }
            }
            // What arrived before the stop may still be queued: it counts too.
            socket.set_nonblocking(true).unwrap();
            while let Ok(n) = socket.recv(&mut buf) {
                keep(&buf[..n]);
            }
        });
        Recorder {
            heard,
            stop,
            thread: Some(thread),
            since,
        }
    }

    /// Stops listening: what arrived until now, and now (Unix seconds).
    pub fn stop(mut self) -> (Vec<Heard>, f64) {
        let until = unix_now();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let heard = std::mem::take(&mut *self.heard.lock().unwrap());
        (heard, until)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A receiver leaving: its report about `about` (or, without `with_report`, an empty
/// one, as a receiver sends that heard nothing since its last), its CNAME and its BYE
/// (RFC 3550 6.6).
pub fn receiver_bye(ours: u32, about: u32, with_report: bool) -> Vec<u8> {
    use rtcp_types::*;
    let mut report = ReceiverReport::builder(ours);
    if with_report {
        report =
            report.add_report_block(ReportBlock::builder(about).extended_sequence_number(1000));
    }
    let packet = Compound::builder()
        .add_packet(report)
        .add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(ours).add_item(SdesItem::builder(SdesItem::CNAME, "leaving@lab")),
        ))
        .add_packet(Bye::builder().add_source(ours).reason("leaving"));
    let mut out = vec![0; packet.calculate_size().unwrap()];
    packet.write_into(&mut out).unwrap();
    out
}
