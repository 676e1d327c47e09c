//! What differs for the networking lab's sessions, in one place. A session's policy
//! follows its transport (`RTP/UDP; client_port= N` is the lab's); how replies are written
//! follows the connection's dialect (`rtsp_core::Reply`).

use super::session::random_u32;
use crate::rtsp::Dialect;

#[derive(Debug)]
pub struct Policy {
    pub dialect: Dialect,
    /// Lab servers send SSRC 0; standard sessions pick a random one (RFC 3550 8).
    pub random_ssrc: bool,
    /// Lab clients number packets by frame, from 1; standard sessions start at a random
    /// sequence number and keep counting packets across PAUSE and PLAY.
    pub seq_is_frame_number: bool,
    /// Sender reports and BYE go out, and receiver reports are matched by SSRC. Lab
    /// clients have no RTCP.
    pub rtcp: bool,
    /// A session ends after `--session-timeout` without a request or RTCP. Lab clients
    /// send neither: their sessions live as long as their control connection.
    pub times_out: bool,
}

pub static STANDARD: Policy = Policy {
    dialect: Dialect::Standard,
    random_ssrc: true,
    seq_is_frame_number: false,
    rtcp: true,
    times_out: true,
};

pub static LAB: Policy = Policy {
    dialect: Dialect::Lab,
    random_ssrc: false,
    seq_is_frame_number: true,
    rtcp: false,
    times_out: false,
};

impl Policy {
    pub fn of(dialect: Dialect) -> &'static Policy {
        match dialect {
            Dialect::Standard => &STANDARD,
            Dialect::Lab => &LAB,
        }
    }

    /// The name in statistics.
    pub fn name(&self) -> &'static str {
        match self.dialect {
            Dialect::Standard => "rtsp",
            Dialect::Lab => "lab",
        }
    }
}

/// A new session id for a client speaking `dialect`: lab clients read it with int(), so 6
/// digits as lab servers give; standard clients get 16 hex digits, not guessable.
pub fn session_id(dialect: Dialect) -> String {
    match dialect {
        Dialect::Lab => (100_000 + random_u32() % 900_000).to_string(),
        Dialect::Standard => format!("{:08X}{:08X}", random_u32(), random_u32()),
    }
}

/// Whether requests must name the session's own clip: lab clients name files loosely.
pub fn checks_request_url(dialect: Dialect) -> bool {
    dialect == Dialect::Standard
}
