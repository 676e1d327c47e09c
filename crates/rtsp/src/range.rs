//! `Range: npt=...` (RFC 2326 3.6): what a client asks for in PLAY, read with `rtsp-types`,
//! and what the server answers, as a typed header of its own ([`ServedRange`]) that writes
//! milliseconds as servers usually do.

use rtsp_types::headers::{self, HeaderParseError, Headers, NptRange, NptTime, RANGE, TypedHeader};

/// What was wrong with a `Range` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("unsupported Range {0:?} (only npt is supported)")]
    Unsupported(String),
    #[error("Range {0:?} ends before it starts")]
    EndsBeforeStart(String),
}

/// A requested play range in seconds; `None` ends mean "from the current position" and
/// "to the end".
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlayRange {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

impl PlayRange {
    /// The `Range` of a request; `None` when it has none. Only `npt` is supported (the
    /// server has no wall clock or SMPTE mapping for its clips).
    pub fn from_request(headers: impl AsRef<Headers>) -> Option<Result<PlayRange, RangeError>> {
        let headers = headers.as_ref();
        let raw = headers.get(&RANGE)?.as_str();
        let unsupported = || RangeError::Unsupported(raw.to_string());
        Some(match headers::Range::from_headers(headers) {
            Ok(Some(headers::Range::Npt(npt))) => Self::from_npt(npt, raw),
            _ => Err(unsupported()),
        })
    }

    fn from_npt(range: NptRange, raw: &str) -> Result<PlayRange, RangeError> {
        let (start, end) = match range {
            NptRange::Empty => (None, None),
            NptRange::From(start) => (seconds(start), None),
            NptRange::FromTo(start, end) => (seconds(start), seconds(end)),
            NptRange::To(end) => (None, seconds(end)),
        };
        if let (Some(s), Some(e)) = (start, end)
            && e < s
        {
            return Err(RangeError::EndsBeforeStart(raw.to_string()));
        }
        Ok(PlayRange { start, end })
    }
}

/// Reads a `Range` header value alone.
pub fn parse(value: &str) -> Result<PlayRange, RangeError> {
    let range: NptRange = value
        .trim()
        .parse()
        .map_err(|_| RangeError::Unsupported(value.to_string()))?;
    PlayRange::from_npt(range, value)
}

fn seconds(t: NptTime) -> Option<f64> {
    let (whole, ns) = match t {
        NptTime::Now => return None,
        NptTime::Seconds(s, ns) => (s as f64, ns),
        // Hours as a float: a huge hour count must not overflow.
        NptTime::Hms(h, m, s, ns) => (h as f64 * 3600.0 + f64::from(m) * 60.0 + f64::from(s), ns),
    };
    Some(whole + f64::from(ns.unwrap_or(0)) / 1e9)
}

/// The `Range` of a PLAY or PAUSE reply: from `start` seconds (`None`: now, a live
/// stream) to `end` (`None`: open, a looping clip or a live stream). Written
/// `npt=start-end` with millisecond precision, as servers usually write it (`rtsp-types`'
/// own `Range` writes nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServedRange {
    pub start: Option<f64>,
    pub end: Option<f64>,
}

impl ServedRange {
    /// `npt=now-`: a live stream.
    pub const LIVE: ServedRange = ServedRange {
        start: None,
        end: None,
    };
}

impl std::fmt::Display for ServedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.start {
            Some(start) => write!(f, "npt={start:.3}-")?,
            None => write!(f, "npt=now-")?,
        }
        match self.end {
            Some(end) => write!(f, "{end:.3}"),
            None => Ok(()),
        }
    }
}

impl TypedHeader for ServedRange {
    fn from_headers(headers: impl AsRef<Headers>) -> Result<Option<Self>, HeaderParseError> {
        match PlayRange::from_request(headers) {
            None => Ok(None),
            Some(Ok(PlayRange { start, end })) => Ok(Some(ServedRange { start, end })),
            Some(Err(_)) => Err(HeaderParseError),
        }
    }

    fn insert_into(&self, mut headers: impl AsMut<Headers>) {
        headers.as_mut().insert(RANGE, self.to_string());
    }
}

/// `npt=start-end` with millisecond precision.
pub fn format(start: f64, end: Option<f64>) -> String {
    ServedRange {
        start: Some(start),
        end,
    }
    .to_string()
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
        assert!(matches!(
            parse("npt=5-2"),
            Err(RangeError::EndsBeforeStart(_))
        ));
        assert!(parse("npt=x").is_err());
        // No overflow on absurd hours.
        assert!(parse("npt=18446744073709551615:00:00-").is_ok());
    }

    #[test]
    fn reads_the_range_of_a_request() {
        let request =
            rtsp_types::Request::builder(rtsp_types::Method::Play, rtsp_types::Version::V1_0)
                .header(RANGE, "npt=0.5-")
                .build(Vec::new());
        assert_eq!(
            PlayRange::from_request(&request),
            Some(Ok(PlayRange {
                start: Some(0.5),
                end: None
            }))
        );
        let smpte =
            rtsp_types::Request::builder(rtsp_types::Method::Play, rtsp_types::Version::V1_0)
                .header(RANGE, "smpte=0:10:00-")
                .build(Vec::new());
        assert!(matches!(
            PlayRange::from_request(&smpte),
            Some(Err(RangeError::Unsupported(_)))
        ));
    }

    #[test]
    fn writes_npt_ranges() {
        assert_eq!(format(2.0, Some(10.0)), "npt=2.000-10.000");
        assert_eq!(format(0.05, None), "npt=0.050-");
        let reply =
            rtsp_types::Response::builder(rtsp_types::Version::V1_0, rtsp_types::StatusCode::Ok)
                .typed_header(&ServedRange {
                    start: Some(0.5),
                    end: Some(3.0),
                })
                .build(Vec::new());
        assert_eq!(
            reply.header(&RANGE).map(|v| v.as_str()),
            Some("npt=0.500-3.000")
        );
        assert_eq!(
            reply.typed_header::<ServedRange>(),
            Ok(Some(ServedRange {
                start: Some(0.5),
                end: Some(3.0)
            }))
        );
        assert_eq!(ServedRange::LIVE.to_string(), "npt=now-");
    }
}
