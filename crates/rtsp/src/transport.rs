//! The `Transport` header: what a client asks for in SETUP (read with `rtsp-types`), and
//! what the server answers.

use std::net::IpAddr;

use rtsp_types::headers::{
    Headers, RtpLowerTransport, RtpProfile, RtpTransport, RtpTransportParameters, TRANSPORT,
    Transport, TransportMode, Transports, TypedHeader,
};

/// What was wrong with a `Transport` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error(
        "dest_addr/src_addr are not supported (the server only sends to the client it talks to)"
    )]
    Addresses,
    #[error("malformed Transport header {0:?}")]
    Malformed(String),
    #[error("no supported transport in {0:?}")]
    NoneSupported(String),
    #[error("no RTP transport in {0:?}")]
    NoRtp(String),
    #[error("lab transport without a usable client_port")]
    LabPort,
    #[error("the lab dialect has no multicast: a lab client gets its JPEGs on its own client_port")]
    LabMulticast,
}

/// The `Transport` header of a message, read with `rtsp-types`, and its text (for
/// errors); `None` when there is none.
fn read_transports(
    headers: impl AsRef<Headers>,
) -> Option<Result<(Transports, String), TransportError>> {
    let headers = headers.as_ref();
    let raw = headers.get(&TRANSPORT)?.as_str().to_string();
    // rtsp-types asserts on a quoted address ending in a lone backslash; addresses are not
    // supported anyway.
    if raw.contains("dest_addr") || raw.contains("src_addr") {
        return Some(Err(TransportError::Addresses));
    }
    Some(match Transports::from_headers(headers) {
        Ok(Some(transports)) => Ok((transports, raw)),
        _ => Err(TransportError::Malformed(raw)),
    })
}

fn rtp_transports(transports: &Transports) -> impl Iterator<Item = &RtpTransport> {
    transports.iter().filter_map(|t| match t {
        Transport::Rtp(rtp) => Some(rtp),
        Transport::Other(_) => None,
    })
}

/// A `Transport` value alone, in a message of its own (tests).
#[cfg(test)]
fn value_message(value: &str) -> rtsp_types::Request<Vec<u8>> {
    rtsp_types::Request::builder(rtsp_types::Method::Setup, rtsp_types::Version::V1_0)
        .header(TRANSPORT, value)
        .build(Vec::new())
}

/// A transport the server can serve, chosen from the client's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportSpec {
    /// RTP/AVP over UDP unicast to the client's `client_port` pair.
    Udp {
        rtp_port: u16,
        rtcp_port: Option<u16>,
    },
    /// RTP/AVP/TCP interleaved in the control connection; `None`: the server picks.
    Tcp { channels: Option<(u8, u8)> },
    /// The lab's `RTP/UDP; client_port= N`: one port, whole JPEGs, no RTCP.
    Lab { port: u16 },
    /// RTP/AVP over UDP multicast (RFC 2326 12.39): the server chooses the group, its
    /// ports and the TTL (what the client asks for in `destination`, `port` or `ttl` is
    /// not honoured: a server that sent where any client says would be a traffic
    /// amplifier).
    Multicast,
}

impl TransportSpec {
    /// The first transport of a request's `Transport` list that the server supports;
    /// `None` when the request has no `Transport` header.
    pub fn from_request(
        headers: impl AsRef<Headers>,
    ) -> Option<Result<TransportSpec, TransportError>> {
        Some(read_transports(headers)?.and_then(|(transports, raw)| {
            rtp_transports(&transports)
                .find_map(Self::from_rtp)
                .ok_or(TransportError::NoneSupported(raw))
        }))
    }

    /// [`from_request`](Self::from_request) for a header value alone.
    #[cfg(test)]
    pub fn parse(value: &str) -> Result<TransportSpec, TransportError> {
        Self::from_request(value_message(value))
            .unwrap_or_else(|| Err(TransportError::Malformed(value.into())))
    }

    fn from_rtp(rtp: &RtpTransport) -> Option<TransportSpec> {
        let p = &rtp.params;
        if p.multicast {
            return match (&rtp.profile, &rtp.lower_transport) {
                (RtpProfile::Avp, None | Some(RtpLowerTransport::Udp)) => {
                    Some(TransportSpec::Multicast)
                }
                _ => None,
            };
        }
        // Unicast goes to the client that asked, never to a `destination` it names.
        if p.destination.is_some() {
            return None;
        }
        match (&rtp.profile, &rtp.lower_transport) {
            (RtpProfile::Avp, None | Some(RtpLowerTransport::Udp)) => {
                let (rtp_port, rtcp_port) = p.client_port?;
                (rtp_port != 0).then_some(TransportSpec::Udp {
                    rtp_port,
                    rtcp_port,
                })
            }
            (RtpProfile::Avp, Some(RtpLowerTransport::Tcp)) => {
                let channels = match p.interleaved {
                    Some((rtp, rtcp)) => Some((rtp, rtcp.unwrap_or(rtp.checked_add(1)?))),
                    None => None,
                };
                Some(TransportSpec::Tcp { channels })
            }
            // `RTP/UDP;client_port=N` from a lab client that ends lines with CRLF.
            (RtpProfile::Other(profile), None) if profile == "UDP" => {
                let (port, _) = p.client_port?;
                (port != 0).then_some(TransportSpec::Lab { port })
            }
            _ => None,
        }
    }
}

/// Whether a request's `Transport` asks to send media to the server (`mode=record`,
/// RFC 2326 12.39): a publisher's SETUP after ANNOUNCE.
pub fn asks_record(headers: impl AsRef<Headers>) -> bool {
    match read_transports(headers) {
        Some(Ok((transports, _))) => {
            rtp_transports(&transports).any(|rtp| rtp.params.mode.contains(&TransportMode::Record))
        }
        _ => false,
    }
}

/// What a server's SETUP reply says in its `Transport` header (read with `rtsp-types`):
/// the server's RTP/RTCP ports and the interleaved channels, as far as it gives them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTransport {
    pub server_port: Option<(u16, Option<u16>)>,
    pub interleaved: Option<(u8, Option<u8>)>,
    /// A multicast reply's group, its RTP/RTCP ports and its TTL.
    pub multicast: Option<MulticastTransport>,
}

/// Where a multicast stream goes, as a SETUP reply says (RFC 2326 12.39: `destination`,
/// `port`, `ttl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MulticastTransport {
    /// `None` when the reply names none or not an IP address.
    pub group: Option<IpAddr>,
    pub port: Option<(u16, Option<u16>)>,
    pub ttl: Option<u8>,
}

impl ServerTransport {
    /// What the first RTP transport of a reply's `Transport` header says; `None` when
    /// the reply has none.
    pub fn from_reply(
        headers: impl AsRef<Headers>,
    ) -> Option<Result<ServerTransport, TransportError>> {
        Some(read_transports(headers)?.and_then(|(transports, raw)| {
            rtp_transports(&transports)
                .next()
                .map(|rtp| ServerTransport {
                    server_port: rtp.params.server_port,
                    interleaved: rtp.params.interleaved,
                    multicast: rtp.params.multicast.then(|| MulticastTransport {
                        group: rtp
                            .params
                            .destination
                            .as_deref()
                            .and_then(|d| d.trim().parse().ok()),
                        port: rtp.params.port,
                        ttl: rtp.params.ttl,
                    }),
                })
                .ok_or(TransportError::NoRtp(raw))
        }))
    }

    /// [`from_reply`](Self::from_reply) for a header value alone.
    #[cfg(test)]
    pub fn parse(value: &str) -> Result<ServerTransport, TransportError> {
        Self::from_reply(value_message(value))
            .unwrap_or_else(|| Err(TransportError::Malformed(value.into())))
    }
}

/// The server's `Transport` reply for UDP unicast.
pub fn udp_reply(client: (u16, Option<u16>), server: (u16, u16), ssrc: u32) -> Transports {
    reply(None, |p| {
        p.client_port = Some(client);
        p.server_port = Some((server.0, Some(server.1)));
        p.ssrc = vec![ssrc];
    })
}

/// The server's `Transport` reply for UDP multicast (RFC 2326 12.39): the group, its
/// RTP/RTCP ports and TTL, and the group's SSRC.
pub fn multicast_reply(group: IpAddr, ports: (u16, u16), ttl: u8, ssrc: u32) -> Transports {
    let params = RtpTransportParameters {
        multicast: true,
        destination: Some(group.to_string()),
        port: Some((ports.0, Some(ports.1))),
        ttl: Some(ttl),
        ssrc: vec![ssrc],
        ..Default::default()
    };
    Transports::from(vec![Transport::Rtp(RtpTransport {
        profile: RtpProfile::Avp,
        lower_transport: None,
        params,
    })])
}

/// The server's `Transport` reply to a publisher over UDP: where to send its RTP and
/// RTCP (`server_port`), `mode=record`.
pub fn record_udp_reply(client: (u16, Option<u16>), server: (u16, u16)) -> Transports {
    reply(None, |p| {
        p.client_port = Some(client);
        p.server_port = Some((server.0, Some(server.1)));
        p.mode = vec![TransportMode::Record];
    })
}

/// The server's `Transport` reply to a publisher over TCP interleaved, `mode=record`.
pub fn record_tcp_reply(channels: (u8, u8)) -> Transports {
    reply(Some(RtpLowerTransport::Tcp), |p| {
        p.interleaved = Some((channels.0, Some(channels.1)));
        p.mode = vec![TransportMode::Record];
    })
}

/// The server's `Transport` reply for TCP interleaved.
pub fn tcp_reply(channels: (u8, u8), ssrc: u32) -> Transports {
    reply(Some(RtpLowerTransport::Tcp), |p| {
        p.interleaved = Some((channels.0, Some(channels.1)));
        p.ssrc = vec![ssrc];
    })
}

fn reply(
    lower_transport: Option<RtpLowerTransport>,
    fill: impl FnOnce(&mut RtpTransportParameters),
) -> Transports {
    let mut params = RtpTransportParameters {
        unicast: true,
        ..Default::default()
    };
    fill(&mut params);
    Transports::from(vec![Transport::Rtp(RtpTransport {
        profile: RtpProfile::Avp,
        lower_transport,
        params,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_first_supported_transport() {
        assert_eq!(
            TransportSpec::parse("RTP/AVP;unicast;client_port=5000-5001"),
            Ok(TransportSpec::Udp {
                rtp_port: 5000,
                rtcp_port: Some(5001)
            })
        );
        assert_eq!(
            TransportSpec::parse("RTP/SAVP;unicast,RTP/AVP/TCP;unicast;interleaved=2-3"),
            Ok(TransportSpec::Tcp {
                channels: Some((2, 3))
            })
        );
        assert_eq!(
            TransportSpec::parse("RTP/AVP/TCP;unicast"),
            Ok(TransportSpec::Tcp { channels: None })
        );
        assert_eq!(
            TransportSpec::parse("RTP/UDP;client_port=25010"),
            Ok(TransportSpec::Lab { port: 25010 })
        );
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        for bad in [
            "RTP/AVP/TCP;multicast",
            "RTP/SAVP;multicast",
            "RTP/SAVP;unicast;client_port=5000-5001",
            "RTP/AVP;unicast",
            "RTP/AVP;unicast;client_port=0-1",
            "RTP/AVP;unicast;dest_addr=\"\\\"",
            "nonsense;;;",
            "",
        ] {
            assert!(TransportSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tells_a_publishers_setup() {
        let asks = |value: &str| asks_record(value_message(value));
        assert!(asks(
            "RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record"
        ));
        assert!(asks("RTP/AVP/TCP;unicast;interleaved=0-1;mode=\"RECORD\""));
        assert!(!asks("RTP/AVP;unicast;client_port=5000-5001"));
        assert!(!asks("RTP/AVP;unicast;client_port=5000-5001;mode=play"));
        assert_eq!(
            TransportSpec::parse("RTP/AVP/UDP;unicast;client_port=5000-5001;mode=record"),
            Ok(TransportSpec::Udp {
                rtp_port: 5000,
                rtcp_port: Some(5001)
            })
        );
    }

    #[test]
    fn reads_a_servers_reply() {
        assert_eq!(
            ServerTransport::parse(
                "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=1A"
            ),
            Ok(ServerTransport {
                server_port: Some((6970, Some(6971))),
                interleaved: None,
                multicast: None
            })
        );
        assert_eq!(
            ServerTransport::parse("RTP/AVP/TCP;unicast;interleaved=2-3"),
            Ok(ServerTransport {
                server_port: None,
                interleaved: Some((2, Some(3))),
                multicast: None
            })
        );
        assert!(ServerTransport::parse("RTP/AVP;dest_addr=\"\\\"").is_err());
        assert!(ServerTransport::parse("").is_err());
    }

    #[test]
    fn writes_the_reply_through_rtsp_types() {
        let response =
            rtsp_types::Response::builder(rtsp_types::Version::V1_0, rtsp_types::StatusCode::Ok)
                .typed_header(&udp_reply((5000, Some(5001)), (6970, 6971), 0xdeadbeef))
                .empty();
        let value = response
            .header(&rtsp_types::headers::TRANSPORT)
            .unwrap()
            .as_str();
        assert_eq!(
            value,
            "RTP/AVP;unicast;ssrc=DEADBEEF;client_port=5000-5001;server_port=6970-6971"
        );
    }

    #[test]
    fn reads_a_multicast_request_whatever_it_asks_for() {
        // ffmpeg's udp_multicast, rtspsrc's udp-mcast, and clients that name a group,
        // ports or a TTL: the server chooses them all.
        for asked in [
            "RTP/AVP/UDP;multicast",
            "RTP/AVP;multicast",
            "RTP/AVP;multicast;destination=224.1.2.3;port=5000-5001;ttl=16",
            "RTP/AVP;multicast;destination=192.0.2.1",
        ] {
            assert_eq!(
                TransportSpec::parse(asked),
                Ok(TransportSpec::Multicast),
                "{asked}"
            );
        }
        // The client's order decides.
        assert_eq!(
            TransportSpec::parse("RTP/AVP;multicast,RTP/AVP/TCP;unicast;interleaved=2-3"),
            Ok(TransportSpec::Multicast)
        );
        assert_eq!(
            TransportSpec::parse("RTP/AVP/TCP;unicast;interleaved=2-3,RTP/AVP;multicast"),
            Ok(TransportSpec::Tcp {
                channels: Some((2, 3))
            })
        );
    }

    #[test]
    fn unicast_never_goes_to_a_destination_the_client_names() {
        // Honouring it would let anyone aim a stream at a third party.
        assert!(
            TransportSpec::parse("RTP/AVP;unicast;destination=192.0.2.9;client_port=5000-5001")
                .is_err()
        );
        // The next choice in the list still counts.
        assert_eq!(
            TransportSpec::parse(
                "RTP/AVP;unicast;destination=192.0.2.9;client_port=5000-5001,RTP/AVP/TCP;unicast"
            ),
            Ok(TransportSpec::Tcp { channels: None })
        );
        assert_eq!(
            TransportSpec::parse("RTP/AVP;unicast;dest_addr=\"192.0.2.9:5000\""),
            Err(TransportError::Addresses)
        );
    }

    #[test]
    fn writes_and_reads_a_multicast_reply() {
        let group: IpAddr = "239.255.12.7".parse().unwrap();
        let response =
            rtsp_types::Response::builder(rtsp_types::Version::V1_0, rtsp_types::StatusCode::Ok)
                .typed_header(&multicast_reply(group, (40000, 40001), 1, 0xdeadbeef))
                .empty();
        let value = response
            .header(&rtsp_types::headers::TRANSPORT)
            .unwrap()
            .as_str();
        assert_eq!(
            value,
            "RTP/AVP;multicast;ttl=1;ssrc=DEADBEEF;port=40000-40001;destination=239.255.12.7"
        );
        assert_eq!(
            ServerTransport::parse(value),
            Ok(ServerTransport {
                server_port: None,
                interleaved: None,
                multicast: Some(MulticastTransport {
                    group: Some(group),
                    port: Some((40000, Some(40001))),
                    ttl: Some(1)
                })
            })
        );
        // A reply without a usable group still says it is multicast.
        let reply = ServerTransport::parse("RTP/AVP;multicast;destination=nowhere;port=5000")
            .unwrap()
            .multicast
            .unwrap();
        assert_eq!((reply.group, reply.port), (None, Some((5000, None))));
    }
}
