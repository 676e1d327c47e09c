//! Sending many datagrams to many clients with few system calls: `sendmmsg(2)` on one
//! socket, each message gathered from our 12-byte RTP header and the packet's shared
//! memory (no copy of the payload in user space).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// `UDP_SEGMENT` (linux/udp.h), the UDP GSO segment size.
const UDP_SEGMENT: libc::c_int = 103;

/// Messages per `sendmmsg` call (the kernel's UIO_MAXIOV is 1024).
const CHUNK: usize = 256;

/// One datagram: a header and the slices that follow it.
pub struct Datagram<'a> {
    pub to: SocketAddr,
    pub header: [u8; 12],
    pub body: Vec<&'a [u8]>,
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Datagrams to one client sent as one UDP GSO buffer at most (the kernel's limit is
/// 64 segments; the buffer must fit one IP datagram).
const MAX_SEGMENTS: usize = 64;
const MAX_GSO_BYTES: usize = 65_000;

/// Whether the kernel takes UDP_SEGMENT (Linux 4.18+); switched off at the first refusal.
static GSO: AtomicBool = AtomicBool::new(true);

impl Datagram<'_> {
    fn len(&self) -> usize {
        12 + self.body.iter().map(|s| s.len()).sum::<usize>()
    }
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

/// Sends every datagram, batched into `sendmmsg` calls and, where the kernel has it, UDP
/// GSO; returns how many the kernel refused (a client's socket gone, buffers full). A
/// refused message is skipped, the rest still go.
pub fn send_all(socket: &UdpSocket, datagrams: &mut [Datagram<'_>]) -> usize {
    let gso = GSO.load(Ordering::Relaxed);
    let runs = runs(datagrams, gso);
    let mut refused = 0;
    for chunk in runs.chunks(CHUNK) {
        let addrs: Vec<_> = chunk
            .iter()
            .map(|&(i, _, _)| sockaddr(&datagrams[i].to))
            .collect();
        let mut iovecs: Vec<Vec<libc::iovec>> = chunk
            .iter()
            .map(|&(i, j, _)| {
                datagrams[i..j]
                    .iter_mut()
                    .flat_map(|d| {
                        std::iter::once(libc::iovec {
                            iov_base: d.header.as_mut_ptr().cast(),
                            iov_len: 12,
                        })
                        .chain(d.body.iter().map(|s| libc::iovec {
                            iov_base: s.as_ptr() as *mut libc::c_void,
                            iov_len: s.len(),
                        }))
                    })
                    .collect()
            })
            .collect();
        // One control message per run: UDP_SEGMENT with the segment size.
        let mut controls: Vec<[u64; 4]> = vec![[0; 4]; chunk.len()];
        let mut messages: Vec<libc::mmsghdr> = Vec::with_capacity(chunk.len());
        for (k, &(i, j, size)) in chunk.iter().enumerate() {
            // SAFETY: msghdr is plain data; all-zero is valid (no control data).
            let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
            header.msg_name = &addrs[k].0 as *const _ as *mut libc::c_void;
            header.msg_namelen = addrs[k].1;
            header.msg_iov = iovecs[k].as_mut_ptr();
            header.msg_iovlen = iovecs[k].len() as _;
            if j - i > 1 {
                // SAFETY: the control buffer is 32 bytes, 8-aligned: room for one cmsghdr
                // with a u16 (CMSG_SPACE(2) = 24 on 64-bit Linux).
                unsafe {
                    header.msg_control = controls[k].as_mut_ptr().cast();
                    header.msg_controllen = libc::CMSG_SPACE(2) as _;
                    let cmsg = libc::CMSG_FIRSTHDR(&header);
                    (*cmsg).cmsg_level = libc::SOL_UDP;
                    (*cmsg).cmsg_type = UDP_SEGMENT;
                    (*cmsg).cmsg_len = libc::CMSG_LEN(2) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
                }
            }
            messages.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
        let mut done = 0;
        while done < messages.len() {
            let rest = &mut messages[done..];
            // SAFETY: every pointer in `rest` points into `addrs`, `iovecs`, `controls`
            // and the datagrams' slices, all alive and unmoved for the duration of the call.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), rest.as_mut_ptr(), rest.len() as u32, 0)
            };
            if n > 0 {
                done += n as usize;
                continue;
            }
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            let (i, j, _) = chunk[done];
            let gso_refused = matches!(
                error.raw_os_error(),
                Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
            );
            if j - i > 1 && gso_refused {
                // No GSO here (or not for this route): from now on, one datagram each.
                GSO.store(false, Ordering::Relaxed);
                refused += send_all(socket, &mut datagrams[i..j]);
            } else {
                refused += j - i;
            }
            done += 1;
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn gso_runs_arrive_as_separate_datagrams() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let to = receiver.local_addr().unwrap().port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut d: Vec<_> = [1400, 1400, 1400, 321]
            .iter()
            .map(|&n| datagram(to, n))
            .collect();
        for (k, datagram) in d.iter_mut().enumerate() {
            datagram.header[0] = k as u8;
        }
        assert_eq!(send_all(&sender, &mut d), 0);
        assert!(GSO.load(Ordering::Relaxed), "the kernel refused UDP GSO");
        let mut buf = [0u8; 4096];
        for (k, size) in [1400, 1400, 1400, 321].into_iter().enumerate() {
            let n = receiver.recv(&mut buf).unwrap();
            assert_eq!((n, buf[0]), (size, k as u8));
        }
    }
}
