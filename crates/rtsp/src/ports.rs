//! RTP and RTCP on consecutive UDP ports, RTP on the even one (RFC 3550 section 11), as
//! the server, the player and the load generator each need.

use std::io;
use std::net::{IpAddr, UdpSocket};

/// Binds a free even/odd pair of UDP ports on `ip`: (RTP, RTCP).
pub fn bind_rtp_pair(ip: IpAddr) -> io::Result<(UdpSocket, UdpSocket)> {
    // Sockets on unusable ports are held until the end, so that the kernel offers others.
    let mut rejected = Vec::new();
    for _ in 0..256 {
        let rtp = UdpSocket::bind((ip, 0))?;
        let port = rtp.local_addr()?.port();
        if port % 2 != 0 || port == u16::MAX {
            rejected.push(rtp);
            continue;
        }
        match UdpSocket::bind((ip, port + 1)) {
            Ok(rtcp) => return Ok((rtp, rtcp)),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => rejected.push(rtp),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free even/odd pair of UDP ports",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_an_even_port_and_the_next() {
        let (rtp, rtcp) = bind_rtp_pair(std::net::Ipv4Addr::LOCALHOST.into()).unwrap();
        let port = rtp.local_addr().unwrap().port();
        assert_eq!(port % 2, 0);
        assert_eq!(rtcp.local_addr().unwrap().port(), port + 1);
    }
}
