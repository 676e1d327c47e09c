//! RFC 3550 RTP Control Protocol, from a receiver's side: reception statistics per source
//! (Appendix A.1 sequence validation, A.3 loss, A.8 jitter), receiver reports with
//! LSR/DLSR, round-trip times from the reports a sender gets back (6.4.1), and the report
//! interval (6.3, A.7). RTCP packets are read and written with the `rtcp-types` crate.

pub mod interval;
pub mod ntp;
pub mod receiver;
pub mod sender;
pub mod session;

pub use receiver::{Jitter, Packet, Prior, Sequence, Totals};
pub use session::{
    Crossing, LossAlarm, PacketError, PeerReport, RtcpEvents, RtpHeader, SenderInfo, Session,
    Source,
};

#[cfg(test)]
mod tests;
