//! NTP timestamps (RFC 3550 section 4): 64-bit, seconds since 1900 in the upper half, the
//! fraction of a second in the lower; and the "compact" middle 32 bits that LSR, DLSR and
//! round-trip times use (1/65536 s units).

/// Seconds from 1900-01-01 to 1970-01-01.
const UNIX_TO_NTP_SECONDS: u64 = 2_208_988_800;

/// The NTP timestamp of a wall-clock time given in nanoseconds since 1970.
pub fn from_unix_ns(unix_ns: u64) -> u64 {
    let secs = unix_ns / 1_000_000_000 + UNIX_TO_NTP_SECONDS;
    let frac = ((unix_ns % 1_000_000_000) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The NTP timestamp of now.
pub fn now() -> u64 {
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    from_unix_ns(unix)
}

/// The middle 32 bits of an NTP timestamp (16.16 fixed point), as LSR carries it.
pub fn compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// A duration in 1/65536 s units (DLSR, round trips), saturating.
pub fn compact_duration(ns: u64) -> u32 {
    u32::try_from((u128::from(ns) << 16) / 1_000_000_000).unwrap_or(u32::MAX)
}

/// A duration in 1/65536 s units as nanoseconds.
pub fn compact_to_ns(compact: u32) -> u64 {
    (u64::from(compact) * 1_000_000_000) >> 16
}
