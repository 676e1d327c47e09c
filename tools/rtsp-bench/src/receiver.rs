//! Receiving every session's RTP with a few threads: each thread waits on an epoll set of
//! UDP sockets and drains each ready socket with `recvmmsg`, up to 64 datagrams a call.
//!
//! What keeps the cost per packet low, with hundreds of thousands of packets a second:
//!
//! - Only the first 16 bytes of each datagram are copied out (`MSG_TRUNC` still gives its
//!   real length): the statistics need the RTP header, not the JPEG data.
//! - Each packet's arrival time is the kernel's receive timestamp (`SO_TIMESTAMPNS`), so
//!   the thread can sleep a few milliseconds between rounds and let every socket fill with a
//!   frame's worth of packets, read in one call, without changing jitter or
//!   time-to-first-frame.
//! - Large receive buffers hold what arrives while the thread sleeps or falls behind; the
//!   kernel reports what still overflowed (`SO_RXQ_OVFL`), the generator's own losses.

use std::io;
use std::net::{IpAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::stats::{StreamStats, Window};

/// Datagrams read per `recvmmsg` call.
const BATCH: usize = 64;
/// Bytes of each datagram copied out: the fixed RTP header and a little more.
const HEADER_BYTES: usize = 16;
/// Control-message space per datagram: a timestamp and a drop counter, with room to spare.
const CONTROL_WORDS: usize = 16;
/// Receive buffer of the RTCP sockets (sender reports only).
const RTCP_RCVBUF: usize = 64 * 1024;

/// The current `CLOCK_REALTIME` (the clock of the kernel's receive timestamps), in ns.
pub fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes a timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// A session's client ports: RTP on an even port, RTCP on the next one (RFC 3550 11).
#[derive(Debug)]
pub struct PortPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl PortPair {
    /// Binds a free even/odd pair on `ip`, the RTP socket with a receive buffer of `rcvbuf`
    /// bytes.
    pub fn bind(ip: IpAddr, rcvbuf: usize) -> io::Result<PortPair> {
        let (rtp, rtcp) = rtsp_core::ports::bind_rtp_pair(ip)?;
        configure(&rtp, rcvbuf)?;
        configure(&rtcp, RTCP_RCVBUF)?;
        Ok(PortPair { rtp, rtcp })
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().map_or(0, |a| a.port())
    }
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is an int that lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Non-blocking, receive buffer of `rcvbuf` bytes (beyond `net.core.rmem_max` when the
/// process may), kernel receive timestamps and drop counts.
fn configure(socket: &UdpSocket, rcvbuf: usize) -> io::Result<()> {
    socket.set_nonblocking(true)?;
    let fd = socket.as_raw_fd();
    let size = i32::try_from(rcvbuf).unwrap_or(i32::MAX);
    if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size)?;
    }
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
    Ok(())
}

/// How the receive threads run.
#[derive(Debug, Clone, Copy)]
pub struct ReceiverConfig {
    pub threads: usize,
    pub sessions: usize,
    pub window: Window,
    /// `CLOCK_REALTIME` at the start of the run, in ns: times are counted from it.
    pub t0: i64,
    /// Pause between rounds, so that datagrams are read many at a time.
    pub poll: Duration,
}

/// The receive threads. Session `i` is received by thread `i % threads`.
pub struct Receivers {
    epolls: Vec<OwnedFd>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<Vec<StreamStats>>>>,
    sessions: usize,
}

impl Receivers {
    pub fn start(config: ReceiverConfig) -> io::Result<Receivers> {
        let threads = config.threads.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let mut receivers = Receivers {
            epolls: Vec::new(),
            stop: stop.clone(),
            threads: Mutex::new(Vec::new()),
            sessions: config.sessions,
        };
        for t in 0..threads {
            // SAFETY: epoll_create1 has no memory arguments; the fd is checked below.
            let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd is a new descriptor that nothing else owns.
            let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
            let raw = epoll.as_raw_fd();
            receivers.epolls.push(epoll);
            let count = (config.sessions + threads - 1 - t) / threads;
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("rtp-recv-{t}"))
                .spawn(move || {
                    let mut thread = ReceiveThread::new(raw, threads, count, config);
                    thread.run(&stop);
                    thread.stats
                })?;
            receivers.threads_mut().push(handle);
        }
        Ok(receivers)
    }

    /// Adds a session's sockets to its thread's epoll set. The sockets must stay open until
    /// [`Receivers::finish`] returns.
    pub fn register(&self, session: usize, ports: &PortPair) -> io::Result<()> {
        let epoll = self.epolls[session % self.epolls.len()].as_raw_fd();
        for (socket, rtcp) in [(&ports.rtp, 0u64), (&ports.rtcp, 1u64)] {
            let fd = socket.as_raw_fd();
            let mut event = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: (fd as u64) << 32 | (session as u64) << 1 | rtcp,
            };
            // SAFETY: event is a valid epoll_event; both descriptors are open.
            if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, fd, &mut event) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn threads_mut(&self) -> std::sync::MutexGuard<'_, Vec<JoinHandle<Vec<StreamStats>>>> {
        self.threads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops the threads and returns every session's statistics, by session index (all
    /// empty if called again). The sockets may be closed once this returns.
    pub fn finish(&self) -> Vec<StreamStats> {
        self.stop.store(true, Ordering::Relaxed);
        let per_thread: Vec<Vec<StreamStats>> = self
            .threads_mut()
            .drain(..)
            .map(|h| h.join().unwrap_or_default())
            .collect();
        let n = per_thread.len().max(1);
        (0..self.sessions)
            .map(|i| {
                per_thread
                    .get(i % n)
                    .and_then(|v| v.get(i / n))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `recvmmsg`'s arrays, pointing into each other: built once per thread, on the heap so
/// that the pointers stay valid.
struct Batch {
    headers: Box<[[u8; HEADER_BYTES]; BATCH]>,
    // Only read through the pointers in msgs.
    _controls: Box<[[u64; CONTROL_WORDS]; BATCH]>,
    _iovecs: Box<[libc::iovec; BATCH]>,
    msgs: Box<[libc::mmsghdr; BATCH]>,
}

impl Batch {
    fn new() -> Batch {
        let mut headers = Box::new([[0u8; HEADER_BYTES]; BATCH]);
        let mut controls = Box::new([[0u64; CONTROL_WORDS]; BATCH]);
        let mut iovecs: Box<[libc::iovec; BATCH]> = Box::new(
            [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; BATCH],
        );
        // SAFETY: mmsghdr is plain data for which all zeroes is a valid value.
        let mut msgs: Box<[libc::mmsghdr; BATCH]> = Box::new(unsafe { std::mem::zeroed() });
        for i in 0..BATCH {
            iovecs[i].iov_base = headers[i].as_mut_ptr().cast();
            iovecs[i].iov_len = HEADER_BYTES;
            msgs[i].msg_hdr.msg_iov = &mut iovecs[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
        }
        Batch {
            headers,
            _controls: controls,
            _iovecs: iovecs,
            msgs,
        }
    }

    /// Reads up to [`BATCH`] datagrams from `fd`: how many, or `None` when there are none
    /// left (or the socket failed).
    fn receive(&mut self, fd: RawFd) -> Option<usize> {
        for msg in self.msgs.iter_mut() {
            msg.msg_hdr.msg_controllen = std::mem::size_of::<[u64; CONTROL_WORDS]>() as _;
            msg.msg_hdr.msg_flags = 0;
            msg.msg_len = 0;
        }
        loop {
            // SAFETY: msgs, their iovecs and control buffers are valid for BATCH messages
            // and live in self for the whole call.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    std::ptr::null_mut(),
                )
            };
            if n > 0 {
                return Some(n as usize);
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
    }

    /// Datagram `i` of the last call: its first bytes, its real length, its kernel receive
    /// time (`CLOCK_REALTIME` ns) and the socket's drop counter, when given.
    fn datagram(&self, i: usize) -> (&[u8], usize, Option<i64>, Option<u32>) {
        let msg = &self.msgs[i];
        let len = msg.msg_len as usize;
        let data = &self.headers[i][..len.min(HEADER_BYTES)];
        let (mut stamp, mut drops) = (None, None);
        let hdr = &msg.msg_hdr;
        // SAFETY: the kernel filled msg_control up to msg_controllen with control messages;
        // the CMSG_* macros stay within it, and the data is read unaligned.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
            while !cmsg.is_null() {
                let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
                if level == libc::SOL_SOCKET && kind == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                    stamp = Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
                } else if level == libc::SOL_SOCKET && kind == libc::SO_RXQ_OVFL {
                    drops = Some(std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()));
                }
                cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
            }
        }
        (data, len, stamp, drops)
    }
}

struct ReceiveThread {
    epoll: RawFd,
    threads: usize,
    config: ReceiverConfig,
    stats: Vec<StreamStats>,
}

impl ReceiveThread {
    fn new(epoll: RawFd, threads: usize, count: usize, config: ReceiverConfig) -> Self {
        ReceiveThread {
            epoll,
            threads,
            config,
            stats: vec![StreamStats::default(); count],
        }
    }

    fn run(&mut self, stop: &AtomicBool) {
        let mut batch = Batch::new();
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: events has room for the number of events passed.
            let n = unsafe {
                libc::epoll_wait(self.epoll, events.as_mut_ptr(), events.len() as i32, 50)
            };
            if n <= 0 {
                continue; // timeout, or EINTR
            }
            for event in &events[..n as usize] {
                let data = event.u64;
                self.drain(&mut batch, data);
            }
            if !self.config.poll.is_zero() {
                std::thread::sleep(self.config.poll);
            }
        }
    }

    /// Reads everything waiting on the socket that `data` (from [`Receivers::register`])
    /// names.
    fn drain(&mut self, batch: &mut Batch, data: u64) {
        let fd = (data >> 32) as RawFd;
        let session = ((data & 0xffff_ffff) >> 1) as usize;
        let rtcp = data & 1 == 1;
        let Some(stats) = self.stats.get_mut(session / self.threads) else {
            return;
        };
        let (t0, window) = (self.config.t0, self.config.window);
        while let Some(n) = batch.receive(fd) {
            let now = realtime_ns() - t0;
            for i in 0..n {
                let (bytes, len, stamp, drops) = batch.datagram(i);
                if rtcp {
                    stats.rtcp_packets += 1;
                    continue;
                }
                if let Some(d) = drops {
                    stats.socket_drops = stats.socket_drops.max(d);
                }
                let arrival = stamp.map_or(now, |s| s - t0);
                stats.on_datagram(bytes, len, arrival, now, &window);
            }
            if n < BATCH {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn rtp(seq: u16, marker: bool) -> [u8; 1200] {
        let mut p = [0u8; 1200];
        p[0] = 0x80;
        p[1] = 26 | if marker { 0x80 } else { 0 };
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq / 10) * 3600).to_be_bytes());
        p[8..12].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        p
    }

    fn receivers(sessions: usize, threads: usize) -> Receivers {
        Receivers::start(ReceiverConfig {
            threads,
            sessions,
            window: Window {
                start: 0,
                end: i64::MAX,
            },
            t0: realtime_ns(),
            poll: Duration::from_millis(1),
        })
        .expect("threads start")
    }

    #[test]
    fn binds_an_even_port_and_the_next() {
        let pair = PortPair::bind(Ipv4Addr::LOCALHOST.into(), 1 << 20).expect("ports");
        let port = pair.rtp_port();
        assert_eq!(port % 2, 0);
        assert_eq!(pair.rtcp.local_addr().expect("bound").port(), port + 1);
    }

    #[test]
    fn counts_what_arrives_over_udp() {
        let rx = receivers(3, 2);
        let pairs: Vec<PortPair> = (0..3)
            .map(|_| PortPair::bind(Ipv4Addr::LOCALHOST.into(), 1 << 20).expect("ports"))
            .collect();
        for (i, pair) in pairs.iter().enumerate() {
            rx.register(i, pair).expect("registered");
        }
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("sender");
        // Session 1: 300 packets, 3 of them missing; 30 frames. Session 2: only RTCP.
        let to = |p: &PortPair, rtcp: bool| {
            let port = p.rtp_port() + u16::from(rtcp);
            (Ipv4Addr::LOCALHOST, port)
        };
        for seq in 0..300u16 {
            if seq % 100 != 50 {
                tx.send_to(&rtp(seq, seq % 10 == 9), to(&pairs[1], false))
                    .expect("sent");
            }
        }
        tx.send_to(&[0x81, 201, 0, 1, 0, 0, 0, 1], to(&pairs[2], true))
            .expect("sent");
        tx.send_to(b"not rtp", to(&pairs[2], false)).expect("sent");
        std::thread::sleep(Duration::from_millis(200));
        let stats = rx.finish();
        assert_eq!(stats.len(), 3);
        assert_eq!(stats[0].packets_total, 0);
        let s = &stats[1];
        assert_eq!((s.packets, s.expected(), s.lost()), (297, 300, 3));
        assert_eq!(s.frames, 30);
        assert_eq!(s.bytes, 297 * 1200);
        assert!(s.first_frame.is_some_and(|t| t > 0));
        assert_eq!(s.socket_drops, 0);
        assert_eq!((stats[2].rtcp_packets, stats[2].not_rtp), (1, 1));
    }

    #[test]
    fn reports_the_sockets_own_drops() {
        let rx = receivers(1, 1);
        // The smallest buffer the kernel allows: a burst overflows it.
        let pair = PortPair::bind(Ipv4Addr::LOCALHOST.into(), 1).expect("ports");
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("sender");
        let to = (Ipv4Addr::LOCALHOST, pair.rtp_port());
        for seq in 0..200u16 {
            tx.send_to(&rtp(seq, false), to).expect("sent");
        }
        rx.register(0, &pair).expect("registered");
        std::thread::sleep(Duration::from_millis(100));
        // The drop count comes with the packets queued after the drops: one at a time, so
        // that each is read before the next.
        for seq in 200..210u16 {
            tx.send_to(&rtp(seq, false), to).expect("sent");
            std::thread::sleep(Duration::from_millis(20));
        }
        let s = &rx.finish()[0];
        // Most of the burst is dropped (the buffer holds a packet or two), and every loss
        // seen is one of those drops (a drop in the last packets may not be reported yet).
        assert!(s.socket_drops >= 150, "{s:?}");
        assert_eq!(s.expected(), 210, "{s:?}");
        assert!(s.lost() >= i64::from(s.socket_drops), "{s:?}");
    }
}
