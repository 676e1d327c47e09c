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
    pub fn start(socket: UdpSocket) -> Recorder {
        let heard = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let (kept, stopping) = (heard.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stopping.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                if n < 12 {
                    continue;
                }
                let word =
                    |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
                kept.lock().unwrap().push(Heard {
                    seq: u16::from_be_bytes([buf[2], buf[3]]),
                    ts: word(4),
                    ssrc: word(8),
                    at: unix_now(),
                });
            }
        });
        Recorder {
            heard,
            stop,
            thread: Some(thread),
            since: unix_now(),
        }
    }

    /// Stops listening: what arrived, and when it stopped (Unix seconds).
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

/// A receiver leaving: its report about `about`, its CNAME and its BYE (RFC 3550 6.6).
pub fn receiver_bye(ours: u32, about: u32) -> Vec<u8> {
    use rtcp_types::*;
    let packet = Compound::builder()
        .add_packet(
            ReceiverReport::builder(ours)
                .add_report_block(ReportBlock::builder(about).extended_sequence_number(1000)),
        )
        .add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(ours).add_item(SdesItem::builder(SdesItem::CNAME, "leaving@lab")),
        ))
        .add_packet(Bye::builder().add_source(ours).reason("leaving"));
    let mut out = vec![0; packet.calculate_size().unwrap()];
    packet.write_into(&mut out).unwrap();
    out
}
