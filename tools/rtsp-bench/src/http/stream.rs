//! One viewer's bytes, without I/O: the HTTP response head (or, on a raw TCP stream, the
//! boundary from the first delimiter line), a chunked or identity body, and the multipart
//! parts in it, read by the media core's [`MultipartReader`].

use mjpeg_media::mjpeg::multipart::{self, Limits, MultipartReader, PartError};

/// A response head longer than this ends the viewer.
const MAX_HEAD: usize = 16 << 10;
/// Raw stream bytes read before a delimiter line turns up, at most.
const MAX_PREAMBLE: usize = 256 << 10;
/// A chunk-size line longer than this is an error.
const MAX_CHUNK_LINE: usize = 1024;

/// Why a viewer's stream cannot be read (on; once its head was read, it is a stream
/// that went wrong, not a failed connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("HTTP {0}")]
    Status(String),
    #[error("not a response: {0:?}")]
    NotHttp(String),
    #[error("{0}")]
    NotMultipart(#[from] multipart::ContentTypeError),
    #[error("a response head longer than {MAX_HEAD} bytes")]
    HeadTooLong,
    #[error("no delimiter line (--BOUNDARY) in the first {MAX_PREAMBLE} bytes")]
    NoBoundary,
    #[error("bad chunked body: {0}")]
    Chunked(String),
}

impl StreamError {
    /// A short category, to count failures by cause.
    pub fn kind(&self) -> String {
        match self {
            StreamError::Status(s) => format!("HTTP {s}"),
            StreamError::NotHttp(_) => "not HTTP".into(),
            StreamError::NotMultipart(_) => "not multipart".into(),
            StreamError::HeadTooLong => "head too long".into(),
            StreamError::NoBoundary => "no boundary".into(),
            StreamError::Chunked(_) => "bad chunked body".into(),
        }
    }
}

/// A whole JPEG read from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub len: usize,
    /// Identifies the picture across viewers ([`frame_hash`]).
    pub hash: u64,
    /// The part's `X-Timestamp` (when the frame was made), ns since the Unix epoch.
    pub made_ns: Option<i64>,
}

#[derive(Debug)]
enum Phase {
    /// Reading the HTTP response head.
    Head,
    /// A raw stream before its first delimiter line.
    Preamble,
    Body,
}

/// The bytes of one viewer's connection, as they arrive.
#[derive(Debug)]
pub struct ViewerStream {
    phase: Phase,
    pending: Vec<u8>,
    chunked: Option<Chunked>,
    reader: Option<MultipartReader>,
    /// Body bytes so far (after the head, before de-chunking).
    pub body_bytes: u64,
}

impl ViewerStream {
    /// A stream that starts with an HTTP response head.
    pub fn http() -> ViewerStream {
        ViewerStream {
            phase: Phase::Head,
            pending: Vec::new(),
            chunked: None,
            reader: None,
            body_bytes: 0,
        }
    }

    /// A raw multipart stream (GStreamer's tcpserversink): parts separated by `boundary`,
    /// or by the one on the first line that starts with `--`.
    pub fn raw(boundary: Option<&str>) -> ViewerStream {
        ViewerStream {
            phase: if boundary.is_some() {
                Phase::Body
            } else {
                Phase::Preamble
            },
            pending: Vec::new(),
            chunked: None,
            reader: boundary.map(|b| MultipartReader::new(b, Limits::default())),
            body_bytes: 0,
        }
    }

    /// Whether the head was read (or the boundary found): the viewer is connected.
    pub fn started(&self) -> bool {
        matches!(self.phase, Phase::Body)
    }

    /// Whether the body ended (the last chunk, or the close delimiter).
    pub fn ended(&self) -> bool {
        self.chunked.as_ref().is_some_and(Chunked::done)
            || self.reader.as_ref().is_some_and(MultipartReader::is_closed)
    }

    /// Takes bytes as they arrive; `on_part` gets each part read, a whole JPEG or why it
    /// was dropped.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_part: impl FnMut(Result<Frame, PartError>),
    ) -> Result<(), StreamError> {
        match self.phase {
            Phase::Head => {
                self.pending.extend_from_slice(data);
                let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                    if self.pending.len() > MAX_HEAD {
                        return Err(StreamError::HeadTooLong);
                    }
                    return Ok(());
                };
                let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                let (boundary, chunked) = read_head(&head)?;
                self.reader = Some(MultipartReader::new(&boundary, Limits::default()));
                self.chunked = chunked.then(Chunked::default);
                self.phase = Phase::Body;
                let rest = self.pending.split_off(end + 4);
                self.pending = Vec::new();
                self.body(&rest, &mut on_part)
            }
            Phase::Preamble => {
                self.pending.extend_from_slice(data);
                let Some(boundary) = first_delimiter(&self.pending) else {
                    if self.pending.len() > MAX_PREAMBLE {
                        return Err(StreamError::NoBoundary);
                    }
                    return Ok(());
                };
                self.reader = Some(MultipartReader::new(&boundary, Limits::default()));
                self.phase = Phase::Body;
                let all = std::mem::take(&mut self.pending);
                self.body(&all, &mut on_part)
            }
            Phase::Body => self.body(data, &mut on_part),
        }
    }

    fn body(
        &mut self,
        data: &[u8],
        on_part: &mut impl FnMut(Result<Frame, PartError>),
    ) -> Result<(), StreamError> {
        self.body_bytes += data.len() as u64;
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        match self.chunked.as_mut() {
            Some(chunked) => chunked
                .decode(data, |piece| reader.push(piece))
                .map_err(StreamError::Chunked)?,
            None => reader.push(data),
        }
        while let Some(part) = reader.next_part() {
            on_part(part.map(|jpeg| Frame {
                len: jpeg.len(),
                hash: frame_hash(&jpeg),
                made_ns: reader.header("X-Timestamp").and_then(unix_ns),
            }));
        }
        Ok(())
    }
}

/// The boundary of a `200` response head, and whether its body is chunked.
fn read_head(head: &str) -> Result<(String, bool), StreamError> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or("");
    let mut words = status.splitn(2, ' ');
    let (version, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if !version.starts_with("HTTP/") {
        return Err(StreamError::NotHttp(status.chars().take(80).collect()));
    }
    if !rest.starts_with("200") {
        return Err(StreamError::Status(rest.trim().to_string()));
    }
    let mut content_type = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    let boundary = multipart::boundary_from_content_type(content_type.as_deref().unwrap_or(""))?;
    Ok((boundary, chunked))
}

/// The boundary named by the first whole line that starts with `--`.
fn first_delimiter(data: &[u8]) -> Option<String> {
    let mut start = 0;
    while let Some(len) = data[start..].iter().position(|&b| b == b'\n') {
        let line = &data[start..start + len];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(boundary) = line.strip_prefix(b"--")
            && !boundary.is_empty()
        {
            return Some(String::from_utf8_lossy(boundary).trim().to_string());
        }
        start += len + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `SECONDS[.FRACTION]` since the Unix epoch, in ns.
pub fn unix_ns(value: &str) -> Option<i64> {
    let (secs, frac) = value.trim().split_once('.').unwrap_or((value.trim(), ""));
    let secs: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    secs.checked_mul(1_000_000_000)?
        .checked_add(digits.parse::<i64>().ok()?)
}

/// A 64-bit hash of every byte of a frame (FxHash's step, word by word): the same picture
/// has the same hash for every viewer, and two pictures of a moving source differ.
pub fn frame_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let step = |h: u64, w: u64| (h.rotate_left(5) ^ w).wrapping_mul(K);
    let mut words = bytes.chunks_exact(8);
    let mut h = bytes.len() as u64;
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = step(h, u64::from_le_bytes(w));
    }
    words
        .remainder()
        .iter()
        .fold(h, |h, &b| step(h, u64::from(b)))
}

/// A `Transfer-Encoding: chunked` body (RFC 9112 7.1), decoded as it arrives.
#[derive(Debug, Default)]
struct Chunked {
    state: ChunkState,
    /// The chunk-size line read so far (it may be split over reads).
    size_line: Vec<u8>,
}

#[derive(Debug, Default)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines up to an empty one (`true` once a line has a
    /// character other than CR).
    Trailer(bool),
    Done,
}

impl Chunked {
    fn done(&self) -> bool {
        matches!(self.state, ChunkState::Done)
    }

    /// Hands the data in `input` to `out`, piece by piece.
    fn decode(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), String> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.size_line.extend_from_slice(input);
                        if self.size_line.len() > MAX_CHUNK_LINE {
                            return Err("a chunk-size line too long".into());
                        }
                        break;
                    };
                    self.size_line.extend_from_slice(&input[..end]);
                    input = &input[end + 1..];
                    let text = String::from_utf8_lossy(&self.size_line);
                    let size = text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| format!("chunk size {size:?}"))?;
                    self.size_line.clear();
                    self.state = if size == 0 {
                        ChunkState::Trailer(false)
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&input[..n]);
                    input = &input[n..];
                    self.state = match left - n as u64 {
                        0 => ChunkState::DataEnd,
                        left => ChunkState::Data(left),
                    };
                }
                ChunkState::DataEnd => {
                    match input[0] {
                        b'\r' => {}
                        b'\n' => self.state = ChunkState::Size,
                        b => return Err(format!("byte {b:#04x} after a chunk's data")),
                    }
                    input = &input[1..];
                }
                ChunkState::Trailer(text) => {
                    self.state = match input[0] {
                        b'\n' if !text => ChunkState::Done,
                        b'\n' => ChunkState::Trailer(false),
                        b'\r' => ChunkState::Trailer(text),
                        _ => ChunkState::Trailer(true),
                    };
                    input = &input[1..];
                }
                ChunkState::Done => break,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: u8) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8, 0xFF, 0xE0];
        j.extend(std::iter::repeat_n(n, 20 + n as usize));
        j.extend([0xFF, 0xD9]);
        j
    }

    fn multipart(boundary: &str, frames: &[Vec<u8>], stamp: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            out.extend(format!("--{boundary}\r\nContent-Type: image/jpeg\r\n").as_bytes());
            out.extend(format!("Content-Length: {}\r\n", f.len()).as_bytes());
            if stamp {
                out.extend(format!("X-Timestamp: 1700000000.{i:06}\r\n").as_bytes());
            }
            out.extend(b"\r\n");
            out.extend(f);
            out.extend(b"\r\n");
        }
        out
    }

    fn chunk(body: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in body.chunks(size) {
            out.extend(format!("{:X};ext=1\r\n", piece.len()).as_bytes());
            out.extend(piece);
            out.extend(b"\r\n");
        }
        out.extend(b"0\r\nX-Trailer: a\r\n\r\n");
        out
    }

    fn read(
        mut stream: ViewerStream,
        data: &[u8],
        piece: usize,
    ) -> (Vec<Result<Frame, PartError>>, ViewerStream) {
        let mut parts = Vec::new();
        for p in data.chunks(piece) {
            stream.feed(p, |part| parts.push(part)).unwrap();
        }
        (parts, stream)
    }

    #[test]
    fn chunked_http_body_with_timestamps_in_any_pieces() {
        let frames: Vec<Vec<u8>> = (0..4).map(jpeg).collect();
        let mut data =
            b"HTTP/1.1 200 OK\r\ncontent-type: multipart/x-mixed-replace;boundary=mjpegframe\r\n\
            transfer-encoding: chunked\r\n\r\n"
                .to_vec();
        data.extend(chunk(&multipart("mjpegframe", &frames, true), 7));
        for piece in [1, 2, 5, 64, 4096] {
            let (parts, stream) = read(ViewerStream::http(), &data, piece);
            let want: Vec<_> = frames
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    Ok(Frame {
                        len: f.len(),
                        hash: frame_hash(f),
                        made_ns: Some(1_700_000_000_000_000_000 + i as i64 * 1000),
                    })
                })
                .collect();
            assert_eq!(parts, want, "pieces of {piece}");
            assert!(stream.started() && stream.ended(), "pieces of {piece}");
        }
    }

    #[test]
    fn raw_stream_boundary_from_the_first_delimiter_line_or_given() {
        let frames: Vec<Vec<u8>> = (0..3).map(jpeg).collect();
        let mut data = b"\r\n".to_vec();
        data.extend(multipart("ThisRandomString", &frames, false));
        data.extend(b"--ThisRandomString\r\n");
        for piece in [1, 3, 1000] {
            let (parts, stream) = read(ViewerStream::raw(None), &data, piece);
            let lens: Vec<usize> = parts.into_iter().map(|p| p.unwrap().len).collect();
            assert_eq!(lens, vec![26, 27, 28]);
            assert!(stream.started() && !stream.ended());
        }
        // Joined mid-part (tcpserversink can start a client anywhere): the stray bytes
        // before the first delimiter are skipped.
        let (parts, _) = read(ViewerStream::raw(None), &data[90..], 4);
        assert!(
            matches!(parts[0], Err(PartError::Garbage { .. })),
            "{parts:?}"
        );
        assert_eq!(parts.iter().filter(|p| p.is_ok()).count(), 2);
        let (parts, _) = read(ViewerStream::raw(Some("ThisRandomString")), &data, 9);
        assert_eq!(parts.len(), 3);
    }

    #[test]
    fn bad_heads_and_bad_parts() {
        let mut s = ViewerStream::http();
        let e = s.feed(b"HTTP/1.1 503 Service Unavailable\r\n\r\n", |_| {});
        assert_eq!(
            e,
            Err(StreamError::Status("503 Service Unavailable".into()))
        );
        let mut s = ViewerStream::http();
        let e = s.feed(
            b"HTTP/1.0 200 OK\r\nContent-Type: image/jpeg\r\n\r\n",
            |_| {},
        );
        assert!(matches!(e, Err(StreamError::NotMultipart(_))), "{e:?}");
        let mut s = ViewerStream::http();
        assert!(matches!(
            s.feed(b"SSH-2.0\r\n\r\n", |_| {}),
            Err(StreamError::NotHttp(_))
        ));
        let mut s = ViewerStream::http();
        assert_eq!(
            s.feed(&[b'a'; MAX_HEAD + 1], |_| {}),
            Err(StreamError::HeadTooLong)
        );
        assert!(!s.started());

        let mut data =
            b"HTTP/1.0 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=b\r\n\r\n"
                .to_vec();
        data.extend(multipart(
            "b",
            &[jpeg(1), b"truncated".to_vec(), jpeg(2)],
            false,
        ));
        data.extend(b"--b--\r\n");
        let (parts, stream) = read(ViewerStream::http(), &data, 11);
        assert!(parts[0].is_ok() && parts[2].is_ok());
        assert!(matches!(parts[1], Err(PartError::NotWholeJpeg { .. })));
        assert!(stream.ended());

        let mut s = ViewerStream::http();
        let e = s.feed(
            b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=b\r\n\
              Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            |_| {},
        );
        assert!(matches!(e, Err(StreamError::Chunked(_))), "{e:?}");
    }

    #[test]
    fn timestamps_and_hashes() {
        assert_eq!(
            unix_ns("1796105933.304183"),
            Some(1_796_105_933_304_183_000)
        );
        assert_eq!(unix_ns("12"), Some(12_000_000_000));
        assert_eq!(unix_ns("1.5"), Some(1_500_000_000));
        assert_eq!(unix_ns("1.-5"), None);
        assert_eq!(unix_ns("soon"), None);
        assert_eq!(frame_hash(&jpeg(1)), frame_hash(&jpeg(1)));
        assert_ne!(frame_hash(&jpeg(1)), frame_hash(&jpeg(2)));
        let mut a = jpeg(3);
        let b = a.clone();
        a[13] ^= 1;
        assert_ne!(frame_hash(&a), frame_hash(&b));
    }
}
