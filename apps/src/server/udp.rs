//! Sending many datagrams to many clients with few system calls: `sendmmsg(2)` on one
//! socket, each message gathered from our 12-byte RTP header and the packet's shared
//! memory (no copy of the payload in user space).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

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

/// Sends every datagram; returns how many the kernel refused (a client's socket gone,
/// buffers full). A refused datagram is skipped, the rest still go.
pub fn send_all(socket: &UdpSocket, datagrams: &mut [Datagram<'_>]) -> usize {
    let mut refused = 0;
    for chunk in datagrams.chunks_mut(CHUNK) {
        let addrs: Vec<_> = chunk.iter().map(|d| sockaddr(&d.to)).collect();
        let mut iovecs: Vec<Vec<libc::iovec>> = chunk
            .iter_mut()
            .map(|d| {
                std::iter::once(libc::iovec {
                    iov_base: d.header.as_mut_ptr().cast(),
                    iov_len: 12,
                })
                .chain(d.body.iter().map(|s| libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                }))
                .collect()
            })
            .collect();
        let mut messages: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(&addrs)
            .map(|(iov, (addr, len))| {
                // SAFETY: msghdr is plain data; all-zero is valid (no control data).
                let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
                header.msg_name = addr as *const _ as *mut libc::c_void;
                header.msg_namelen = *len;
                header.msg_iov = iov.as_mut_ptr();
                header.msg_iovlen = iov.len() as _;
                libc::mmsghdr {
                    msg_hdr: header,
                    msg_len: 0,
                }
            })
            .collect();
        let mut done = 0;
        while done < messages.len() {
            let rest = &mut messages[done..];
            // SAFETY: every pointer in `rest` points into `addrs`, `iovecs` and the
            // datagrams' slices, all alive and unmoved for the duration of the call.
            let n = unsafe {
                libc::sendmmsg(socket.as_raw_fd(), rest.as_mut_ptr(), rest.len() as u32, 0)
            };
            if n > 0 {
                done += n as usize;
            } else if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            } else {
                // The first message failed: skip it and go on with the others.
                refused += 1;
                done += 1;
            }
        }
    }
    refused
}
