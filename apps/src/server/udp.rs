//! Sending the pacer's datagrams, each gathered from our 12-byte RTP header and the
//! packet's shared memory (no copy of the payload in user space).
//!
//! On Linux a whole batch goes in few system calls: `sendmmsg(2)` on one socket, with UDP
//! GSO for a frame's packets to one client (`linux`). Elsewhere each datagram is one
//! `sendmsg(2)`.

#[cfg(target_os = "linux")]
mod linux;

use std::net::{SocketAddr, UdpSocket};

/// Whether an error receiving on a UDP socket is passing: a read timeout, a signal, or an
/// ICMP error for an earlier send to a client gone (`ECONNREFUSED`, on Windows
/// `ECONNRESET`). Reading goes on after it.
pub fn transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::WouldBlock
            | ErrorKind::TimedOut
            | ErrorKind::Interrupted
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
    )
}

/// One datagram: a header and the slices that follow it.
pub struct Datagram<'a> {
    pub to: SocketAddr,
    pub header: [u8; 12],
    pub body: Vec<&'a [u8]>,
}

/// Sends every datagram; returns how many the kernel refused (a client's socket gone,
/// buffers full). A refused datagram is skipped, the rest still go.
pub fn send_all(socket: &UdpSocket, datagrams: &[Datagram<'_>]) -> usize {
    #[cfg(target_os = "linux")]
    {
        linux::send_all(socket, datagrams)
    }
    #[cfg(not(target_os = "linux"))]
    {
        send_each(socket, datagrams)
    }
}

/// One `sendmsg` per datagram: the sender where there is no `sendmmsg`.
#[cfg(any(test, not(target_os = "linux")))]
fn send_each(socket: &UdpSocket, datagrams: &[Datagram<'_>]) -> usize {
    use std::io::{ErrorKind, IoSlice};

    let socket = socket2::SockRef::from(socket);
    // Reused for every datagram: no allocation per datagram.
    let mut slices: Vec<IoSlice<'_>> = Vec::new();
    let mut refused = 0;
    for datagram in datagrams {
        slices.clear();
        slices.push(IoSlice::new(&datagram.header));
        slices.extend(datagram.body.iter().map(|s| IoSlice::new(s)));
        let to = socket2::SockAddr::from(datagram.to);
        loop {
            match socket.send_to_vectored(&slices, &to) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    refused += 1;
                    break;
                }
            }
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};
    use std::time::Duration;

    /// A read timeout and the ICMP error of a send to a closed port are passing: the
    /// socket is read on.
    #[test]
    fn timeouts_and_a_gone_clients_icmp_error_are_passing() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut buf = [0u8; 16];
        let timeout = socket.recv(&mut buf).unwrap_err();
        assert!(transient(&timeout), "{timeout:?}");
        // A port nobody listens on: the kernel's ICMP port unreachable comes back as
        // ECONNREFUSED on the next receive of a connected socket.
        let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = gone.local_addr().unwrap().port();
        drop(gone);
        socket.connect(("127.0.0.1", port)).unwrap();
        socket.send(b"x").unwrap();
        let refused = socket.recv(&mut buf).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(transient(&refused));
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(!transient(&other));
    }

    /// A socket to receive on at `ip`, or `None` where the host has no such address
    /// (IPv6 switched off).
    fn receiver(ip: &str) -> Option<UdpSocket> {
        let socket = UdpSocket::bind((ip, 0)).ok()?;
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        Some(socket)
    }

    /// Datagrams of three slices each, numbered in their first header byte.
    fn numbered<'a>(to: SocketAddr, body: &'a [u8], count: u8) -> Vec<Datagram<'a>> {
        (0..count)
            .map(|k| Datagram {
                to,
                header: [k; 12],
                body: vec![&body[..3], &body[3..]],
            })
            .collect()
    }

    fn receive_numbered(receiver: &UdpSocket, body: &[u8], count: u8, from: SocketAddr) {
        let mut buf = [0u8; 2048];
        for k in 0..count {
            let (n, sender) = receiver.recv_from(&mut buf).unwrap();
            assert_eq!(sender, from);
            assert_eq!(&buf[..12], &[k; 12]);
            assert_eq!(&buf[12..n], body);
        }
    }

    #[test]
    fn the_fallback_sender_sends_each_datagram_whole() {
        let body: Vec<u8> = (0..200).map(|b| b as u8).collect();
        for ip in ["127.0.0.1", "::1"] {
            let Some(receiver) = receiver(ip) else {
                continue;
            };
            let sender = UdpSocket::bind((ip, 0)).unwrap();
            let d = numbered(receiver.local_addr().unwrap(), &body, 5);
            assert_eq!(send_each(&sender, &d), 0);
            receive_numbered(&receiver, &body, 5, sender.local_addr().unwrap());
        }
    }

    #[test]
    fn the_batch_sender_reaches_v4_and_v6_clients() {
        let body: Vec<u8> = (0..200).map(|b| b as u8).collect();
        for ip in ["127.0.0.1", "::1"] {
            let Some(receiver) = receiver(ip) else {
                continue;
            };
            let sender = UdpSocket::bind((ip, 0)).unwrap();
            let d = numbered(receiver.local_addr().unwrap(), &body, 5);
            assert_eq!(send_all(&sender, &d), 0);
            receive_numbered(&receiver, &body, 5, sender.local_addr().unwrap());
        }
    }

    #[test]
    fn a_refused_datagram_is_counted_and_the_rest_still_go() {
        let Some(receiver) = receiver("127.0.0.1") else {
            return;
        };
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let body = [7u8; 100];
        let mut d = numbered(receiver.local_addr().unwrap(), &body, 3);
        // An IPv6 destination from an IPv4 socket: the kernel refuses it.
        d[1].to = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 9, 0, 0).into();
        for refused in [send_each(&sender, &d), send_all(&sender, &d)] {
            assert_eq!(refused, 1);
            let mut buf = [0u8; 256];
            for k in [0, 2] {
                let n = receiver.recv(&mut buf).unwrap();
                assert_eq!((n, buf[0]), (112, k));
            }
        }
    }

    #[test]
    fn socket_addresses_round_trip_through_socket2() {
        for addr in [
            SocketAddr::from(([192, 0, 2, 7], 5004)),
            SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddrV6::new("2001:db8::1".parse().unwrap(), 5006, 0x12345, 0).into(),
            SocketAddrV6::new("fe80::1".parse().unwrap(), 65535, 0, 3).into(),
        ] {
            let converted = socket2::SockAddr::from(addr);
            assert_eq!(converted.as_socket(), Some(addr));
            assert_eq!(converted.is_ipv6(), addr.is_ipv6());
        }
    }
}
