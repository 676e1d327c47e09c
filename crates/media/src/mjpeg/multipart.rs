//! Motion-JPEG over HTTP: a `multipart/x-mixed-replace` body (what IP cameras, ESP32-CAMs,
//! ustreamer and mjpg-streamer serve), read into JPEG images with no I/O.
//!
//! Bytes go in with [`MultipartReader::push`] as they arrive; [`MultipartReader::next_part`]
//! hands out each whole image. The reader is written for hostile or broken senders:
//! - memory is bounded: a part may not exceed [`Limits::max_part`] nor its headers
//!   [`Limits::max_headers`]; what exceeds them is dropped and the reader looks for the
//!   next boundary (only the bytes that could start one are kept);
//! - a part with `Content-Length` is read by its length, one without it up to the next
//!   boundary;
//! - garbage before a boundary is skipped, and a part that is not a whole JPEG (no
//!   `FF D8` at its start, no `FF D9` at its end, another Content-Type) is an error the
//!   caller counts, after which the reader goes on with the next part.
//!
//! Device quirks tolerated: a `boundary` parameter quoted or not, declared with the
//! delimiter's leading `--` (`boundary=--myboundary`, emitted as `--myboundary`); LF
//! instead of CRLF line ends; no CRLF between a part and the next delimiter.

use std::ops::Range;

/// The most a reader holds, against a sender that never sends a boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest part (one JPEG) accepted, in bytes.
    pub max_part: usize,
    /// The largest header block of one part, in bytes.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_part: 8 << 20,
            max_headers: 8 << 10,
        }
    }
}

/// Why the body's media type gives no reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentTypeError {
    #[error("the body is {0:?}, not multipart (multipart/x-mixed-replace)")]
    NotMultipart(String),
    #[error("the Content-Type {0:?} has no boundary parameter")]
    NoBoundary(String),
    #[error("the Content-Type {0:?} has an empty boundary")]
    EmptyBoundary(String),
}

/// Why a part was dropped; the reader goes on with the next one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartError {
    #[error("a part is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("a part's headers are longer than {limit} bytes")]
    HeadersTooLong { limit: usize },
    #[error("a part's Content-Length {0:?} is not a number")]
    BadLength(String),
    #[error("a part is {0:?}, not image/jpeg")]
    NotJpeg(String),
    #[error("a part of {len} bytes is not a whole JPEG (starts {start}, ends {end})")]
    NotWholeJpeg {
        len: usize,
        start: String,
        end: String,
    },
    #[error("{skipped} bytes before a boundary were skipped")]
    Garbage { skipped: usize },
}

/// The boundary of a `multipart/...; boundary=...` media type (a Content-Type value).
pub fn boundary_from_content_type(content_type: &str) -> Result<String, ContentTypeError> {
    let mut params = content_type.split(';');
    let media = params.next().unwrap_or("").trim();
    if !media.to_ascii_lowercase().starts_with("multipart/") {
        return Err(ContentTypeError::NotMultipart(content_type.to_string()));
    }
    for param in params {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if !key.trim().eq_ignore_ascii_case("boundary") {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value.is_empty() {
            return Err(ContentTypeError::EmptyBoundary(content_type.to_string()));
        }
        return Ok(value.to_string());
    }
    Err(ContentTypeError::NoBoundary(content_type.to_string()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Looking for a delimiter (before the first part, after each part, after garbage).
    Delimiter,
    /// After a delimiter line: the part's headers.
    Headers,
    /// The body, `Some(length)` from Content-Length, else up to the next delimiter.
    Body {
        length: Option<usize>,
        content_type: Option<String>,
    },
    /// The close delimiter (`--boundary--`) was read: nothing follows.
    Closed,
}

/// Reads JPEG images from a `multipart/x-mixed-replace` body.
#[derive(Debug)]
pub struct MultipartReader {
    /// What starts each part: `--` and the boundary (or the boundary alone when it was
    /// declared with its dashes).
    delimiter: Vec<u8>,
    limits: Limits,
    buf: Vec<u8>,
    state: State,
    /// Where the search for the next delimiter in `buf` resumes (bytes before it were
    /// searched already).
    scanned: usize,
    /// Bytes other than line ends dropped while looking for a delimiter, not yet reported.
    garbage: usize,
    parts: u64,
    dropped: u64,
    /// The header lines (name, value) of the last whole header block read.
    headers: Vec<(String, String)>,
}

impl MultipartReader {
    /// A reader for parts separated by `boundary` (as the Content-Type gives it).
    pub fn new(boundary: &str, limits: Limits) -> MultipartReader {
        let delimiter = if boundary.starts_with("--") {
            boundary.as_bytes().to_vec()
        } else {
            [b"--", boundary.as_bytes()].concat()
        };
        MultipartReader {
            delimiter,
            limits,
            buf: Vec::new(),
            state: State::Delimiter,
            scanned: 0,
            garbage: 0,
            parts: 0,
            dropped: 0,
            headers: Vec::new(),
        }
    }

    /// A reader for a body of media type `content_type`.
    pub fn for_content_type(
        content_type: &str,
        limits: Limits,
    ) -> Result<MultipartReader, ContentTypeError> {
        Ok(MultipartReader::new(
            &boundary_from_content_type(content_type)?,
            limits,
        ))
    }

    /// Bytes of the body, as they arrive.
    pub fn push(&mut self, data: &[u8]) {
        if self.state != State::Closed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Whether the close delimiter was read (the sender ended the stream).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// JPEG images read so far.
    pub fn parts(&self) -> u64 {
        self.parts
    }

    /// Parts (or runs of garbage) dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes held, waiting for the rest of a part.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// A header of the last part whose header block was read whole (such as a camera's or
    /// a server's `X-Timestamp`), by case-insensitive name, the first one when repeated:
    /// right after [`MultipartReader::next_part`] returns a part, that part's.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next whole JPEG, or why a part was dropped; `None` until more bytes arrive.
    pub fn next_part(&mut self) -> Option<Result<Vec<u8>, PartError>> {
        loop {
            match self.state.clone() {
                State::Closed => return None,
                State::Delimiter => match self.find_delimiter(0) {
                    Some(at) => {
                        let skipped = self.skip_garbage_before(at);
                        match self.read_delimiter_line() {
                            None => {
                                // Reported with the delimiter once its line is whole.
                                self.garbage += skipped;
                                return None;
                            }
                            Some(Err(e)) => return Some(Err(self.drop(e))),
                            Some(Ok(())) => {}
                        }
                        if skipped > 0 {
                            return Some(Err(self.drop(PartError::Garbage { skipped })));
                        }
                    }
                    None => {
                        self.keep_tail();
                        return None;
                    }
                },
                State::Headers => match self.read_headers() {
                    None => return None,
                    Some(Err(e)) => return Some(Err(self.drop(e))),
                    Some(Ok(())) => {}
                },
                State::Body {
                    length,
                    content_type,
                } => {
                    let (range, next) = match length {
                        Some(length) => {
                            if self.buf.len() < length {
                                return None;
                            }
                            (0..length, length)
                        }
                        None => match self.find_delimiter(self.scanned) {
                            Some(at) if at > self.limits.max_part => {
                                self.buf.drain(..at);
                                self.scanned = 0;
                                self.state = State::Delimiter;
                                let limit = self.limits.max_part;
                                return Some(Err(self.drop(PartError::TooLarge { limit })));
                            }
                            Some(at) => (0..at, at),
                            None => {
                                if self.buf.len() > self.limits.max_part + self.delimiter.len() {
                                    self.state = State::Delimiter;
                                    self.keep_tail();
                                    let limit = self.limits.max_part;
                                    return Some(Err(self.drop(PartError::TooLarge { limit })));
                                }
                                self.scanned = self
                                    .buf
                                    .len()
                                    .saturating_sub(self.delimiter.len().saturating_sub(1));
                                return None;
                            }
                        },
                    };
                    let part = self.jpeg_in(range, content_type.as_deref());
                    self.buf.drain(..next);
                    self.scanned = 0;
                    self.state = State::Delimiter;
                    return Some(match part {
                        Ok(jpeg) => {
                            self.parts += 1;
                            Ok(jpeg)
                        }
                        Err(e) => Err(self.drop(e)),
                    });
                }
            }
        }
    }

    fn drop(&mut self, e: PartError) -> PartError {
        self.dropped += 1;
        e
    }

    /// Where the delimiter starts in `buf`, searching from `from`.
    fn find_delimiter(&self, from: usize) -> Option<usize> {
        let rest = self.buf.get(from..)?;
        memchr::memmem::find(rest, &self.delimiter).map(|i| from + i)
    }

    /// Drops the bytes before a delimiter at `at`; how many were not line ends.
    fn skip_garbage_before(&mut self, at: usize) -> usize {
        let skipped = std::mem::take(&mut self.garbage) + not_line_ends(&self.buf[..at]);
        self.buf.drain(..at);
        skipped
    }

    /// With no delimiter in `buf`: keeps only what could be the start of one.
    fn keep_tail(&mut self) {
        let keep = self.delimiter.len().saturating_sub(1).min(self.buf.len());
        let cut = self.buf.len() - keep;
        self.garbage += not_line_ends(&self.buf[..cut]);
        self.buf.drain(..cut);
        self.scanned = 0;
    }

    /// With `buf` at a delimiter: reads its line (a close delimiter ends the stream).
    fn read_delimiter_line(&mut self) -> Option<Result<(), PartError>> {
        let after = self.delimiter.len();
        if self.buf.get(after..after + 2) == Some(b"--") {
            self.state = State::Closed;
            self.buf.clear();
            return None;
        }
        let window = &self.buf[after..self.buf.len().min(after + self.limits.max_headers)];
        let Some(end) = memchr::memchr(b'\n', window) else {
            if self.buf.len() > after + self.limits.max_headers {
                self.buf.drain(..after);
                self.state = State::Delimiter;
                let limit = self.limits.max_headers;
                return Some(Err(PartError::HeadersTooLong { limit }));
            }
            return None;
        };
        self.buf.drain(..after + end + 1);
        self.state = State::Headers;
        Some(Ok(()))
    }

    /// Reads the part's header lines up to the empty one.
    fn read_headers(&mut self) -> Option<Result<(), PartError>> {
        let mut pos = 0;
        let mut length = None;
        let mut content_type = None;
        let mut headers = Vec::new();
        loop {
            let Some(end) = memchr::memchr(b'\n', &self.buf[pos..]) else {
                if self.buf.len() > self.limits.max_headers {
                    self.state = State::Delimiter;
                    let limit = self.limits.max_headers;
                    return Some(Err(PartError::HeadersTooLong { limit }));
                }
                return None;
            };
            let line = &self.buf[pos..pos + end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            pos += end + 1;
            if pos > self.limits.max_headers {
                self.state = State::Delimiter;
                let limit = self.limits.max_headers;
                return Some(Err(PartError::HeadersTooLong { limit }));
            }
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8_lossy(line);
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            headers.push((name.trim().to_string(), value.to_string()));
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = Some(value.to_string());
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_string());
            }
        }
        self.buf.drain(..pos);
        self.scanned = 0;
        self.headers = headers;
        let length = match length.map(|l| l.parse::<usize>().map_err(|_| l)) {
            None => None,
            Some(Ok(n)) if n > self.limits.max_part => {
                self.state = State::Delimiter;
                let limit = self.limits.max_part;
                return Some(Err(PartError::TooLarge { limit }));
            }
            Some(Ok(n)) => Some(n),
            Some(Err(bad)) => {
                self.state = State::Delimiter;
                return Some(Err(PartError::BadLength(bad)));
            }
        };
        self.state = State::Body {
            length,
            content_type,
        };
        Some(Ok(()))
    }

    /// The JPEG in `buf[range]`: line ends (and a close delimiter's dashes) around it
    /// trimmed, checked to start with SOI and end with EOI.
    fn jpeg_in(
        &self,
        range: Range<usize>,
        content_type: Option<&str>,
    ) -> Result<Vec<u8>, PartError> {
        if let Some(ct) = content_type {
            let media = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if !media.is_empty() && media != "image/jpeg" && media != "image/jpg" {
                return Err(PartError::NotJpeg(ct.to_string()));
            }
        }
        let mut body = &self.buf[range];
        while let [b'\r' | b'\n', rest @ ..] = body {
            body = rest;
        }
        while let [rest @ .., b'\r' | b'\n' | b'-'] = body {
            body = rest;
        }
        if body.len() < 4 || body[..2] != [0xFF, 0xD8] || body[body.len() - 2..] != [0xFF, 0xD9] {
            return Err(PartError::NotWholeJpeg {
                len: body.len(),
                start: super::hex_preview(&body[..body.len().min(2)]),
                end: super::hex_preview(&body[body.len().saturating_sub(2)..]),
            });
        }
        Ok(body.to_vec())
    }
}

fn not_line_ends(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| !matches!(b, b'\r' | b'\n')).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: u8) -> Vec<u8> {
        vec![0xFF, 0xD8, 0xFF, 0xE0, n, n, n, 0xFF, 0xD9]
    }

    fn part(boundary: &str, body: &[u8], length: bool) -> Vec<u8> {
        let mut out = format!("--{boundary}\r\nContent-Type: image/jpeg\r\n").into_bytes();
        if length {
            out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
        out.extend_from_slice(b"\r\n");
        out
    }

    fn read_all(
        reader: &mut MultipartReader,
        data: &[u8],
        chunk: usize,
    ) -> Vec<Result<Vec<u8>, PartError>> {
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            reader.push(piece);
            while let Some(part) = reader.next_part() {
                out.push(part);
            }
        }
        out
    }

    #[test]
    fn boundaries_quoted_or_not_with_or_without_dashes() {
        let b = |ct| boundary_from_content_type(ct);
        assert_eq!(
            b("multipart/x-mixed-replace;boundary=frame").unwrap(),
            "frame"
        );
        assert_eq!(
            b("multipart/x-mixed-replace; charset=x; Boundary=\"my frame\"").unwrap(),
            "my frame"
        );
        assert_eq!(
            b("multipart/x-mixed-replace; boundary=--myboundary").unwrap(),
            "--myboundary"
        );
        assert!(matches!(
            b("image/jpeg"),
            Err(ContentTypeError::NotMultipart(_))
        ));
        assert!(matches!(
            b("multipart/x-mixed-replace"),
            Err(ContentTypeError::NoBoundary(_))
        ));
        assert!(matches!(
            b("multipart/x-mixed-replace; boundary=\"\""),
            Err(ContentTypeError::EmptyBoundary(_))
        ));
    }

    #[test]
    fn parts_with_and_without_length_in_any_chunks() {
        let mut data = b"preamble\r\n".to_vec();
        for n in 0..4 {
            data.extend(part("frame", &jpeg(n), n % 2 == 0));
        }
        data.extend(b"--frame--\r\n");
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let mut reader = MultipartReader::new("frame", Limits::default());
            let parts = read_all(&mut reader, &data, chunk);
            let jpegs: Vec<Vec<u8>> = parts.into_iter().filter_map(Result::ok).collect();
            assert_eq!(jpegs, (0..4).map(jpeg).collect::<Vec<_>>(), "chunk {chunk}");
            assert!(reader.is_closed());
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn each_part_s_own_headers_are_kept_until_the_next_part() {
        let mut data = Vec::new();
        for n in 0..3u8 {
            data.extend(
                format!("--b\r\nContent-Type: image/jpeg\r\nx-timestamp: 17.{n}\r\n").as_bytes(),
            );
            if n == 1 {
                data.extend(b"X-Other: yes\r\n");
            }
            data.extend(b"\r\n");
            data.extend(jpeg(n));
            data.extend(b"\r\n");
        }
        data.extend(b"--b\r\n");
        let mut reader = MultipartReader::new("b", Limits::default());
        let mut seen = Vec::new();
        for piece in data.chunks(5) {
            reader.push(piece);
            while let Some(part) = reader.next_part() {
                assert_eq!(part.unwrap()[4], seen.len() as u8);
                seen.push((
                    reader.header("X-Timestamp").map(str::to_string),
                    reader.header("x-other").is_some(),
                ));
            }
        }
        let ts = |n| Some(format!("17.{n}"));
        assert_eq!(seen, vec![(ts(0), false), (ts(1), true), (ts(2), false)]);
        assert_eq!(reader.header("Content-Type"), Some("image/jpeg"));
    }

    #[test]
    fn dashes_declared_in_the_boundary_lf_line_ends_and_no_crlf_before_the_delimiter() {
        let mut data = Vec::new();
        for n in 0..3 {
            data.extend(b"--myboundary\nContent-Type: image/jpeg\n\n");
            data.extend(jpeg(n));
        }
        data.extend(b"--myboundary\n\n");
        let mut reader = MultipartReader::for_content_type(
            "multipart/x-mixed-replace; boundary=--myboundary",
            Limits::default(),
        )
        .unwrap();
        let parts = read_all(&mut reader, &data, 5);
        assert_eq!(parts, (0..3).map(|n| Ok(jpeg(n))).collect::<Vec<_>>());
    }

    #[test]
    fn garbage_and_bad_parts_are_dropped_and_reading_goes_on() {
        let mut data = b"junk junk".to_vec();
        data.extend(part("b", &jpeg(1), true));
        data.extend(part("b", b"not a jpeg", false));
        data.extend(b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n");
        data.extend(b"--b\r\nContent-Length: twelve\r\n\r\n");
        data.extend(part("b", &jpeg(2), false));
        data.extend(b"--b\r\n");
        let mut reader = MultipartReader::new("b", Limits::default());
        let parts = read_all(&mut reader, &data, 3);
        assert_eq!(parts[0], Err(PartError::Garbage { skipped: 9 }));
        assert_eq!(parts[1], Ok(jpeg(1)));
        assert!(matches!(
            parts[2],
            Err(PartError::NotWholeJpeg { len: 10, .. })
        ));
        assert!(matches!(parts[3], Err(PartError::NotJpeg(_))));
        assert_eq!(parts[4], Err(PartError::BadLength("twelve".into())));
        assert_eq!(parts.last(), Some(&Ok(jpeg(2))));
        assert_eq!(reader.parts(), 2);
    }

    #[test]
    fn memory_stays_bounded_against_a_sender_without_boundaries() {
        let limits = Limits {
            max_part: 1000,
            max_headers: 100,
        };
        // Endless bytes before any boundary.
        let mut reader = MultipartReader::new("b", limits);
        for _ in 0..1000 {
            reader.push(&[0x55; 100]);
            while reader.next_part().is_some() {}
            assert!(reader.buffered() <= 2 + 100);
        }
        // An endless part without length, then an endless header block.
        let mut reader = MultipartReader::new("b", limits);
        reader.push(b"--b\r\n\r\n");
        let mut errors = Vec::new();
        for _ in 0..100 {
            reader.push(&[0x55; 100]);
            while let Some(part) = reader.next_part() {
                errors.push(part);
            }
            assert!(reader.buffered() <= limits.max_part + 100 + 3);
        }
        assert_eq!(errors, vec![Err(PartError::TooLarge { limit: 1000 })]);
        let mut reader = MultipartReader::new("b", limits);
        reader.push(b"--b\r\nX-Long: ");
        reader.push(&[b'a'; 200]);
        assert_eq!(
            reader.next_part(),
            Some(Err(PartError::HeadersTooLong { limit: 100 }))
        );
        // A length over the limit is refused before any byte of it is held.
        let mut reader = MultipartReader::new("b", limits);
        reader.push(b"--b\r\nContent-Length: 99999999999\r\n\r\n");
        assert_eq!(
            reader.next_part(),
            Some(Err(PartError::TooLarge { limit: 1000 }))
        );
        reader.push(&part("b", &jpeg(7), true));
        let mut rest = Vec::new();
        while let Some(p) = reader.next_part() {
            rest.push(p);
        }
        assert_eq!(rest.last(), Some(&Ok(jpeg(7))));
    }
}
