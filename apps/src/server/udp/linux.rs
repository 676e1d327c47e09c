//! The Linux batch sender: `sendmmsg(2)` sends up to [`CHUNK`] messages per system call,
//! and UDP GSO (`UDP_SEGMENT`, Linux 4.18+) lets a frame's packets to one client go as
//! one message that the kernel cuts into datagrams.

use std::io;
use std::mem;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::SockAddr;

use super::Datagram;

/// Messages per `sendmmsg` call (the kernel's UIO_MAXIOV is 1024).
const CHUNK: usize = 256;

/// Datagrams to one client sent as one UDP GSO buffer at most (the kernel's limit is
/// 64 segments; the buffer must fit one IP datagram).
const MAX_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

/// Whether the kernel takes UDP_SEGMENT; switched off at the first refusal.
static GSO: AtomicBool = AtomicBool::new(true);

impl Datagram<'_> {
    fn len(&self) -> usize {
        self.header.len() + self.body.iter().map(|s| s.len()).sum::<usize>()
    }
}

/// The control message that asks for UDP GSO: `UDP_SEGMENT` with the segment size.
#[repr(C)]
struct SegmentSize {
    header: libc::cmsghdr,
    size: u16,
}

// The layout the kernel reads: the size at CMSG_DATA, the whole CMSG_SPACE(2) long.
// SAFETY: CMSG_LEN and CMSG_SPACE are arithmetic; libc declares them unsafe.
const _: () =
    assert!(mem::offset_of!(SegmentSize, size) + 2 == unsafe { libc::CMSG_LEN(2) } as usize);
const _: () = assert!(mem::size_of::<SegmentSize>() == unsafe { libc::CMSG_SPACE(2) } as usize);

impl SegmentSize {
    fn new(size: u16) -> SegmentSize {
        // SAFETY: cmsghdr is integers (and, with some libcs, private padding): all-zero
        // is a valid value.
        let mut header: libc::cmsghdr = unsafe { mem::zeroed() };
        header.cmsg_level = libc::SOL_UDP;
        header.cmsg_type = libc::UDP_SEGMENT;
        header.cmsg_len = (mem::offset_of!(SegmentSize, size) + mem::size_of::<u16>()) as _;
        SegmentSize { header, size }
    }
}

fn iovec(bytes: &[u8]) -> libc::iovec {
    libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    }
}

/// The iovecs that gather `datagrams`: a header and the body's slices each.
fn iovec_count(datagrams: &[Datagram<'_>]) -> usize {
    datagrams.iter().map(|d| 1 + d.body.len()).sum()
}

/// Splits the datagrams into runs sent as one message each: with GSO, consecutive
/// datagrams to the same client where all but the last have the same size (a frame's
/// packets) go as one buffer the kernel cuts into datagrams; without, one per message.
fn runs(datagrams: &[Datagram<'_>], gso: bool) -> Vec<(usize, usize, u16)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < datagrams.len() {
        let size = datagrams[i].len();
        let mut total = size;
        let mut j = i + 1;
        if gso && size <= usize::from(u16::MAX) {
            while j < datagrams.len()
                && j - i < MAX_SEGMENTS
                && datagrams[j].to == datagrams[i].to
                && datagrams[j - 1].len() == size
                && datagrams[j].len() <= size
                && total + datagrams[j].len() <= MAX_GSO_BYTES
            {
                total += datagrams[j].len();
                j += 1;
            }
        }
        out.push((i, j, size as u16));
        i = j;
    }
    out
}

/// Why the kernel refused a GSO message, when it was because of GSO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GsoRefusal {
    /// No GSO here: an old kernel, a device or route that cannot segment, a socket
    /// without UDP checksums. GSO is switched off for good.
    Unsupported,
    /// The segments do not fit this route's MTU (a `--mtu` above the path's; kernels
    /// before this error said EINVAL): this run goes unsegmented, for the IP layer to
    /// fragment, and GSO stays on for other clients.
    TooBigForRoute,
}

fn gso_refusal(error: &io::Error) -> Option<GsoRefusal> {
    match error.raw_os_error()? {
        libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT => {
            Some(GsoRefusal::Unsupported)
        }
        libc::EMSGSIZE => Some(GsoRefusal::TooBigForRoute),
        _ => None,
    }
}

/// Sends every datagram, batched into `sendmmsg` calls and, where the kernel has it, UDP
/// GSO; returns how many the kernel refused.
pub(super) fn send_all(socket: &UdpSocket, datagrams: &[Datagram<'_>]) -> usize {
    send_batch(socket, datagrams, &GSO)
}

/// [`send_all`], with GSO while `gso` holds.
fn send_batch(socket: &UdpSocket, datagrams: &[Datagram<'_>], gso: &AtomicBool) -> usize {
    let runs = runs(datagrams, gso.load(Ordering::Relaxed));
    let mut refused = 0;
    for chunk in runs.chunks(CHUNK) {
        // What the messages point to, each vector complete before the messages take
        // pointers into it.
        let addrs: Vec<SockAddr> = chunk
            .iter()
            .map(|&(i, _, _)| SockAddr::from(datagrams[i].to))
            .collect();
        let controls: Vec<SegmentSize> = chunk
            .iter()
            .map(|&(_, _, size)| SegmentSize::new(size))
            .collect();
        let mut iovecs: Vec<libc::iovec> = Vec::with_capacity(iovec_count(
            &datagrams[chunk[0].0..chunk[chunk.len() - 1].1],
        ));
        let mut messages: Vec<libc::mmsghdr> = Vec::with_capacity(chunk.len());
        for (k, &(i, j, _)) in chunk.iter().enumerate() {
            for d in &datagrams[i..j] {
                iovecs.push(iovec(&d.header));
                iovecs.extend(d.body.iter().map(|s| iovec(s)));
            }
            // SAFETY: msghdr is integers and pointers (and, with some libcs, private
            // padding): all-zero is a valid value, with no name, data or control.
            let mut header: libc::msghdr = unsafe { mem::zeroed() };
            header.msg_name = addrs[k].as_ptr().cast_mut().cast();
            header.msg_namelen = addrs[k].len();
            header.msg_iovlen = iovec_count(&datagrams[i..j]) as _;
            if j - i > 1 {
                header.msg_control = (&raw const controls[k]).cast_mut().cast();
                header.msg_controllen = mem::size_of::<SegmentSize>() as _;
            }
            messages.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
        // The iovecs are all in place and move no more: point each message at its own.
        let iovecs_start = iovecs.as_mut_ptr();
        let mut first = 0;
        for (message, &(i, j, _)) in messages.iter_mut().zip(chunk) {
            message.msg_hdr.msg_iov = iovecs_start.wrapping_add(first);
            first += iovec_count(&datagrams[i..j]);
        }
        let mut done = 0;
        while done < messages.len() {
            let rest = &mut messages[done..];
            // SAFETY: every pointer in `rest` points into `addrs`, `iovecs`, `controls`
            // or the datagrams' slices, all alive and unmoved until the call returns;
            // the kernel only reads them, and writes each message's `msg_len`.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    0,
                )
            };
            if n > 0 {
                done += n as usize;
                continue;
            }
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The message at `done` was refused; the kernel sent the ones before it.
            let (i, j, _) = chunk[done];
            match gso_refusal(&error) {
                Some(why) if j - i > 1 => {
                    if why == GsoRefusal::Unsupported && gso.swap(false, Ordering::Relaxed) {
                        tracing::info!(
                            "UDP GSO refused by the kernel ({error}): sending one datagram \
                             per message from now on (more work per frame, same packets)"
                        );
                    }
                    refused += send_unsegmented(socket, &datagrams[i..j]);
                }
                _ => refused += j - i,
            }
            done += 1;
        }
    }
    refused
}

/// Sends datagrams one per message, without GSO (whatever `GSO` says).
fn send_unsegmented(socket: &UdpSocket, datagrams: &[Datagram<'_>]) -> usize {
    send_batch(socket, datagrams, &AtomicBool::new(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn datagram(to: u16, size: usize) -> Datagram<'static> {
        static BODY: [u8; 2000] = [0; 2000];
        Datagram {
            to: SocketAddr::from(([127, 0, 0, 1], to)),
            header: [0; 12],
            body: vec![&BODY[..size - 12]],
        }
    }

    #[test]
    fn a_frames_packets_to_one_client_go_as_one_gso_run() {
        let d = [
            datagram(1, 1400),
            datagram(1, 1400),
            datagram(1, 700),
            datagram(1, 1400),
            datagram(2, 1400),
            datagram(2, 1500),
        ];
        assert_eq!(
            runs(&d, true),
            vec![(0, 3, 1400), (3, 4, 1400), (4, 5, 1400), (5, 6, 1500)]
        );
        assert_eq!(runs(&d, false).len(), 6);
        let many: Vec<_> = (0..100).map(|_| datagram(1, 1000)).collect();
        assert_eq!(runs(&many, true), vec![(0, 64, 1000), (64, 100, 1000)]);
    }

    fn receiver() -> UdpSocket {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        receiver
    }

    /// A frame's packets (numbered in their first header byte) to `to`.
    fn frame(to: u16) -> Vec<Datagram<'static>> {
        let mut d: Vec<_> = [1400, 1400, 1400, 321]
            .iter()
            .map(|&n| datagram(to, n))
            .collect();
        for (k, datagram) in d.iter_mut().enumerate() {
            datagram.header[0] = k as u8;
        }
        d
    }

    fn receive_frame(receiver: &UdpSocket) {
        let mut buf = [0u8; 4096];
        for (k, size) in [1400, 1400, 1400, 321].into_iter().enumerate() {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (size, k as u8));
        }
    }

    #[test]
    fn gso_runs_arrive_as_separate_datagrams() {
        let receiver = receiver();
        let to = receiver.local_addr().unwrap().port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let d = frame(to);
        assert_eq!(send_all(&sender, &d), 0);
        assert!(GSO.load(Ordering::Relaxed), "the kernel refused UDP GSO");
        receive_frame(&receiver);
    }

    #[test]
    fn when_the_kernel_refuses_gso_the_datagrams_go_one_by_one() {
        let receiver = receiver();
        let to = receiver.local_addr().unwrap().port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel refuses UDP GSO on a socket that sends without UDP checksums
        // (EINVAL), as it does for a device that cannot segment (EIO).
        const SO_NO_CHECK: libc::c_int = 11;
        let on: libc::c_int = 1;
        // SAFETY: setsockopt reads one c_int through a pointer to a local.
        let set = unsafe {
            libc::setsockopt(
                sender.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_NO_CHECK,
                (&raw const on).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0, "SO_NO_CHECK: {}", io::Error::last_os_error());
        let gso = AtomicBool::new(true);
        let d = frame(to);
        assert_eq!(send_batch(&sender, &d, &gso), 0);
        assert!(!gso.load(Ordering::Relaxed), "GSO still on after a refusal");
        receive_frame(&receiver);
        // The next batch goes without GSO from the start.
        assert_eq!(send_batch(&sender, &d, &gso), 0);
        receive_frame(&receiver);
    }

    #[test]
    fn which_refusals_are_about_gso() {
        let refusal = |errno| gso_refusal(&io::Error::from_raw_os_error(errno));
        for errno in [libc::EIO, libc::EINVAL, libc::EOPNOTSUPP, libc::ENOPROTOOPT] {
            assert_eq!(refusal(errno), Some(GsoRefusal::Unsupported), "{errno}");
        }
        assert_eq!(refusal(libc::EMSGSIZE), Some(GsoRefusal::TooBigForRoute));
        for errno in [libc::ENOBUFS, libc::EAFNOSUPPORT, libc::ENETUNREACH] {
            assert_eq!(refusal(errno), None, "{errno}");
        }
    }
}
