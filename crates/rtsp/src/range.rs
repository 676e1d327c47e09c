//! `Range: npt=...` (RFC 2326 3.6), read and written with `rtsp-types`.

use rtsp_types::headers::{NptRange, NptTime};

/// A requested play range in seconds; `None` ends mean "from the current position" and
/// "to the end".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayRange {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

/// Reads a `Range` header value. Only `npt` is supported (the server has no wall clock or
/// SMPTE mapping for its clips).
pub fn parse(value: &str) -> Result<PlayRange, String> {
    let range: NptRange = value
        .trim()
        .parse()
        .map_err(|_| format!("unsupported Range {value:?} (only npt is supported)"))?;
    let (start, end) = match range {
        NptRange::Empty => (None, None),
        NptRange::From(start) => (seconds(start), None),
        NptRange::FromTo(start, end) => (seconds(start), seconds(end)),
        NptRange::To(end) => (None, seconds(end)),
    };
    if let (Some(s), Some(e)) = (start, end)
        && e < s
    {
        return Err(format!("Range {value:?} ends before it starts"));
    }
    Ok(PlayRange { start, end })
}

fn seconds(t: NptTime) -> Option<f64> {
    let (whole, ns) = match t {
        NptTime::Now => return None,
        NptTime::Seconds(s, ns) => (s as f64, ns),
        NptTime::Hms(h, m, s, ns) => ((h * 3600 + u64::from(m) * 60 + u64::from(s)) as f64, ns),
    };
    Some(whole + f64::from(ns.unwrap_or(0)) / 1e9)
}

/// `npt=start-end` with millisecond precision, as servers usually write it.
pub fn format(start: f64, end: Option<f64>) -> String {
    match end {
        Some(end) => format!("npt={start:.3}-{end:.3}"),
        None => format!("npt={start:.3}-"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_npt_ranges() {
        assert_eq!(
            parse("npt=1.5-3"),
            Ok(PlayRange {
                start: Some(1.5),
                end: Some(3.0)
            })
        );
        assert_eq!(
            parse("npt=0-"),
            Ok(PlayRange {
                start: Some(0.0),
                end: None
            })
        );
        assert_eq!(
            parse("npt=now-"),
            Ok(PlayRange {
                start: None,
                end: None
            })
        );
        assert_eq!(
            parse("npt=00:01:02.25-"),
            Ok(PlayRange {
                start: Some(62.25),
                end: None
            })
        );
        assert!(parse("smpte=0:10:00-").is_err());
        assert!(parse("npt=5-2").is_err());
        assert!(parse("npt=x").is_err());
    }

    #[test]
    fn writes_npt_ranges() {
        assert_eq!(format(2.0, Some(10.0)), "npt=2.000-10.000");
        assert_eq!(format(0.05, None), "npt=0.050-");
    }
}
