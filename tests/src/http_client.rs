//! HTTP clients of the server's HTTP side over std's `TcpStream`: one-shot requests (the
//! bytes as written, so path tricks reach the server unnormalised) and a Motion-JPEG
//! viewer of `/NAME/stream.mjpg` that reads on a thread of its own, de-chunks the body,
//! checks each part's framing strictly (the server's own format: `--mjpegframe`, the
//! part's headers, exactly Content-Length bytes of JPEG, CRLF) while the media core's
//! tolerant [`MultipartReader`] reads the same bytes and must find the same JPEGs, and
//! records for each part when it arrived, its `X-Timestamp`, its `Content-Length` and
//! its JPEG (or only its size).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use mjpeg_media::mjpeg::multipart::{Limits, MultipartReader};

/// The boundary the server declares.
pub const BOUNDARY: &str = "mjpegframe";

/// `host:port` of an `http://host:port` base URL.
pub fn addr_of(base: &str) -> SocketAddr {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{base}: not http://HOST:PORT ({e})"))
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs_f64()
}

/// Lets this process open `want` files at once (its soft limit raised up to the hard
/// one); the server, a child started later, inherits it.
pub fn raise_fd_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = limit.rlim_max.min(want);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= want,
        "RLIMIT_NOFILE is {} (hard {}), {want} needed",
        limit.rlim_cur,
        limit.rlim_max
    );
}

/// How a response's connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server closed it (FIN).
    Closed,
    /// The server reset it.
    Reset,
    /// Still open when the reading stopped.
    Open,
}

/// A response as read off the socket.
#[derive(Debug, Clone)]
pub struct Response {
    /// 0 when no status line came.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    pub ending: Ending,
    /// From the request's last byte to the connection's end (or the read's timeout).
    pub took: Duration,
    /// Every byte received.
    pub raw: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends `raw` as it is, then reads until the server closes the connection (or `limit`
/// passes), and parses what came. A request should say `Connection: close`.
pub fn raw_request(addr: SocketAddr, raw: &[u8], limit: Duration) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to the server's HTTP port");
    // The server may answer and close before it read all of an oversized request.
    let _ = stream.write_all(raw);
    read_response(&mut stream, limit)
}

/// Reads a response from `stream` until the server closes it or `limit` passes.
pub fn read_response(stream: &mut TcpStream, limit: Duration) -> Response {
    let start = Instant::now();
    let deadline = start + limit;
    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let ending = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Ending::Open;
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut chunk) {
            Ok(0) => break Ending::Closed,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break Ending::Open;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break Ending::Reset,
        }
    };
    let took = start.elapsed();
    let mut response = Response {
        status: 0,
        headers: Vec::new(),
        body: Vec::new(),
        ending,
        took,
        raw: Vec::new(),
    };
    if let Some(Head {
        status,
        headers,
        len: head_len,
    }) = parse_head(&raw)
    {
        response.status = status;
        let rest = &raw[head_len..];
        response.body = if header_in(&headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            let mut body = Vec::new();
            Dechunker::default()
                .push(rest, &mut body)
                .unwrap_or_else(|e| panic!("bad chunked body: {e}"));
            body
        } else {
            rest.to_vec()
        };
        response.headers = headers;
    }
    response.raw = raw;
    response
}

/// `GET target` with `Connection: close` and `extra` header lines (each ending CRLF).
pub fn get(base: &str, target: &str, extra: &str) -> Response {
    let addr = addr_of(base);
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    raw_request(addr, request.as_bytes(), Duration::from_secs(15))
}

/// A response's head.
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Its length in bytes, the blank line included: where the body starts.
    pub len: usize,
}

/// The head at the start of `raw`, once it is whole there.
pub fn parse_head(raw: &[u8]) -> Option<Head> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut words = status_line.splitn(3, ' ');
    let version = words.next()?;
    assert!(version.starts_with("HTTP/1."), "not HTTP: {status_line:?}");
    let status = words.next()?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Head {
        status,
        headers,
        len: end + 4,
    })
}

/// Reads a `Transfer-Encoding: chunked` body as it arrives.
#[derive(Debug, Default)]
pub struct Dechunker {
    buf: Vec<u8>,
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    /// The last chunk (size 0) was read.
    Done,
}

impl Dechunker {
    /// Appends the body bytes in `data` to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            match self.state {
                ChunkState::Done => break,
                ChunkState::Size => {
                    let Some(end) = find(&self.buf[at..], b"\r\n") else {
                        if self.buf.len() - at > 1024 {
                            return Err("a chunk size line over 1 KiB".into());
                        }
                        break;
                    };
                    let line = String::from_utf8_lossy(&self.buf[at..at + end]).into_owned();
                    let hex = line.split(';').next().unwrap_or("").trim();
                    let size = usize::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad chunk size line {line:?}"))?;
                    at += end + 2;
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let take = left.min(self.buf.len() - at);
                    if take == 0 {
                        break;
                    }
                    out.extend_from_slice(&self.buf[at..at + take]);
                    at += take;
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    if self.buf.len() - at < 2 {
                        break;
                    }
                    if &self.buf[at..at + 2] != b"\r\n" {
                        return Err("no CRLF after a chunk's data".into());
                    }
                    at += 2;
                    self.state = ChunkState::Size;
                }
            }
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// The last chunk was read: the body ended properly.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// One part of a viewer's stream.
#[derive(Debug, Clone)]
pub struct Part {
    /// When its last byte arrived.
    pub arrived: Instant,
    /// The same, in Unix seconds (to compare with `timestamp`).
    pub arrived_unix: f64,
    /// Its `X-Timestamp`: when the server made the frame (Unix seconds).
    pub timestamp: f64,
    pub content_length: usize,
    /// The JPEG, if the viewer keeps them.
    pub jpeg: Option<Vec<u8>>,
}

impl Part {
    /// How old the frame was when it arrived, in seconds.
    pub fn age(&self) -> f64 {
        self.arrived_unix - self.timestamp
    }
}

/// Reads the server's multipart body strictly, one part at a time.
struct PartReader {
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    /// The current part's Content-Length and X-Timestamp, once its head was read.
    head: Option<(usize, f64)>,
    /// The media core's reader, fed the same bytes, and the JPEGs it found ahead of
    /// this reader.
    multipart: MultipartReader,
    found: VecDeque<Vec<u8>>,
    /// Parts read so far.
    count: u64,
}

impl PartReader {
    fn new() -> PartReader {
        PartReader {
            delimiter: format!("--{BOUNDARY}\r\n").into_bytes(),
            buf: Vec::new(),
            head: None,
            multipart: MultipartReader::new(BOUNDARY, Limits::default()),
            found: VecDeque::new(),
            count: 0,
        }
    }

    /// Takes body bytes; the parts they completed, or what is wrong with the stream.
    fn push(
        &mut self,
        data: &[u8],
        arrived: Instant,
        keep_every: usize,
        parts: &mut Vec<Part>,
    ) -> Result<(), String> {
        self.multipart.push(data);
        while let Some(found) = self.multipart.next_part() {
            self.found
                .push_back(found.map_err(|e| format!("MultipartReader: {e}"))?);
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        loop {
            match self.head {
                None => {
                    let rest = &self.buf[at..];
                    if rest.len() < self.delimiter.len() {
                        if !self.delimiter.starts_with(rest) {
                            return Err(format!("{:?} where a delimiter belongs", preview(rest)));
                        }
                        break;
                    }
                    if !rest.starts_with(&self.delimiter) {
                        return Err(format!("{:?} where a delimiter belongs", preview(rest)));
                    }
                    let Some(end) = find(&rest[self.delimiter.len()..], b"\r\n\r\n") else {
                        if rest.len() > 4096 {
                            return Err(format!("a part head over 4 KiB: {:?}", preview(rest)));
                        }
                        break;
                    };
                    let head_start = self.delimiter.len();
                    let head = std::str::from_utf8(&rest[head_start..head_start + end])
                        .map_err(|_| "a part head that is not UTF-8".to_string())?;
                    self.head = Some(part_head(head)?);
                    at += head_start + end + 4;
                }
                Some((length, timestamp)) => {
                    let rest = &self.buf[at..];
                    if rest.len() < length + 2 {
                        break;
                    }
                    let jpeg = &rest[..length];
                    if !jpeg.starts_with(&[0xFF, 0xD8]) || !jpeg.ends_with(&[0xFF, 0xD9]) {
                        return Err(format!(
                            "a part of {length} bytes is not a whole JPEG: starts {:02x?}, ends {:02x?}",
                            &jpeg[..length.min(2)],
                            &jpeg[length.saturating_sub(2)..]
                        ));
                    }
                    if &rest[length..length + 2] != b"\r\n" {
                        return Err(format!(
                            "no CRLF after Content-Length {length} bytes: {:?}",
                            preview(&rest[length..])
                        ));
                    }
                    match self.found.pop_front() {
                        Some(other) if other == jpeg => {}
                        Some(other) => {
                            return Err(format!(
                                "MultipartReader read a part of {} bytes where this reader read {length}",
                                other.len()
                            ));
                        }
                        None => return Err("MultipartReader found no JPEG here".into()),
                    }
                    let keep = keep_every > 0 && self.count.is_multiple_of(keep_every as u64);
                    self.count += 1;
                    parts.push(Part {
                        arrived,
                        arrived_unix: unix_now(),
                        timestamp,
                        content_length: length,
                        jpeg: keep.then(|| jpeg.to_vec()),
                    });
                    at += length + 2;
                    self.head = None;
                }
            }
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// At the body's end: it must end right after a part.
    fn finish(&self) -> Result<(), String> {
        if self.head.is_some() || !self.buf.is_empty() {
            return Err(format!(
                "the body ended inside a part ({} bytes pending)",
                self.buf.len()
            ));
        }
        Ok(())
    }
}

/// A part's Content-Length and X-Timestamp, from its head (which must say image/jpeg).
fn part_head(head: &str) -> Result<(usize, f64), String> {
    let mut length = None;
    let mut timestamp = None;
    let mut content_type = None;
    for line in head.split("\r\n") {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("a part header line without a colon: {line:?}"))?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<usize>().ok(),
            "x-timestamp" => timestamp = value.parse::<f64>().ok(),
            "content-type" => content_type = Some(value.to_string()),
            _ => {}
        }
    }
    if content_type.as_deref() != Some("image/jpeg") {
        return Err(format!("a part of type {content_type:?}: {head:?}"));
    }
    match (length, timestamp) {
        (Some(l), Some(t)) => Ok((l, t)),
        _ => Err(format!(
            "a part head without Content-Length or X-Timestamp: {head:?}"
        )),
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn preview(bytes: &[u8]) -> String {
    bytes[..bytes.len().min(48)].escape_ascii().to_string()
}

/// How a viewer reads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ViewerOptions {
    /// SO_RCVBUF, set before connecting (so the window is small from the start).
    pub rcvbuf: Option<usize>,
    /// Reads at most this many bytes a second.
    pub bytes_per_s: Option<usize>,
    /// Keeps the JPEG of every part whose number (from 0) is a multiple of this: 1 keeps
    /// them all, 0 none (only sizes and times).
    pub keep_every: usize,
}

/// How a viewer's stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server ended the body properly after a whole part.
    Finished,
    /// The stream broke: a framing error, a reset, a body cut short.
    Failed(String),
    /// The viewer stopped reading ([`Viewer::stop`]).
    Stopped,
}

/// What a viewer has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The response's status and headers, once they came.
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
    /// Body bytes read (de-chunked).
    pub body_bytes: u64,
    pub end: Option<StreamEnd>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// Parts that arrived in `[from, to)`.
    pub fn parts_between(&self, from: Instant, to: Instant) -> usize {
        self.parts
            .iter()
            .filter(|p| p.arrived >= from && p.arrived < to)
            .count()
    }

    /// Parts a second over `[from, to)`.
    pub fn rate_between(&self, from: Instant, to: Instant) -> f64 {
        self.parts_between(from, to) as f64 / to.duration_since(from).as_secs_f64()
    }

    /// Whether the stream failed, and why.
    pub fn failure(&self) -> Option<&str> {
        match &self.end {
            Some(StreamEnd::Failed(why)) => Some(why),
            _ => None,
        }
    }
}

/// A viewer of a Motion-JPEG stream, reading on its own thread until the stream ends or
/// it is stopped (or dropped).
pub struct Viewer {
    pub local: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    socket: TcpStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Viewer {
    /// Connects to `base` (`http://HOST:PORT`), asks for `target` (`/cam/stream.mjpg`)
    /// and starts reading.
    pub fn start(base: &str, target: &str, options: ViewerOptions) -> Viewer {
        let addr = addr_of(base);
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a TCP socket");
        if let Some(size) = options.rcvbuf {
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        socket
            .connect_timeout(&addr.into(), Duration::from_secs(10))
            .expect("connect to the server's HTTP port");
        let mut stream: TcpStream = socket.into();
        let local = stream.local_addr().expect("a local address");
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: mjpeg-rtsp-tests\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .expect("the request is sent");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let seen = seen.clone();
            let stop = stop.clone();
            let stream = stream.try_clone().expect("a second handle");
            std::thread::Builder::new()
                .name(format!("viewer {local}"))
                .stack_size(256 * 1024)
                .spawn(move || read_stream(stream, options, &seen, &stop))
                .expect("a viewer thread")
        };
        Viewer {
            local,
            seen,
            stop,
            socket: stream,
            thread: Some(thread),
        }
    }

    /// What it saw so far.
    pub fn seen(&self) -> MutexGuard<'_, Seen> {
        crate::lock(&self.seen)
    }

    /// Waits until `done` holds for what it saw, or `timeout` passes; whether it held.
    pub fn wait(&self, timeout: Duration, mut done: impl FnMut(&Seen) -> bool) -> bool {
        crate::rtsp::wait_until(timeout, || done(&self.seen()))
    }

    /// Waits up to `timeout` for the stream's end; how it ended, `None` if it did not.
    pub fn wait_end(&self, timeout: Duration) -> Option<StreamEnd> {
        self.wait(timeout, |s| s.end.is_some());
        self.seen().end.clone()
    }

    /// Stops reading, closes the connection and hands back what it saw.
    pub fn stop(mut self) -> Seen {
        self.halt();
        std::mem::take(&mut *self.seen())
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.socket.shutdown(Shutdown::Both);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.halt();
    }
}

fn read_stream(
    mut stream: TcpStream,
    options: ViewerOptions,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) {
    let end = read_stream_until_end(&mut stream, options, seen, stop);
    let mut seen = crate::lock(seen);
    if seen.end.is_none() {
        seen.end = Some(end);
    }
}

fn read_stream_until_end(
    stream: &mut TcpStream,
    options: ViewerOptions,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) -> StreamEnd {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = vec![0u8; 64 * 1024];
    let mut head = Vec::new();
    let mut dechunker: Option<Dechunker> = None;
    let mut reader = PartReader::new();
    let mut body = Vec::new();
    let mut new_parts = Vec::new();
    // The rate limit: bytes that may be read now, refilled as time passes, at most a
    // tenth of a second's worth at once.
    let mut allowance = 0.0f64;
    let mut refilled = Instant::now();
    loop {
        if stop.load(Ordering::Acquire) {
            return StreamEnd::Stopped;
        }
        let mut want = buf.len();
        if let Some(rate) = options.bytes_per_s {
            let now = Instant::now();
            let rate = rate as f64;
            allowance =
                (allowance + rate * now.duration_since(refilled).as_secs_f64()).min(rate / 10.0);
            refilled = now;
            if allowance < 1024.0 {
                std::thread::sleep(Duration::from_secs_f64((1024.0 - allowance) / rate));
                continue;
            }
            want = want.min(allowance as usize);
        }
        let n = match stream.read(&mut buf[..want]) {
            Ok(0) if stop.load(Ordering::Acquire) => return StreamEnd::Stopped,
            Ok(0) => {
                let unfinished = match &dechunker {
                    Some(d) if !d.is_done() => Some("the connection closed before the last chunk"),
                    _ => None,
                };
                return match unfinished
                    .map(str::to_string)
                    .or_else(|| reader.finish().err())
                {
                    Some(why) => StreamEnd::Failed(why),
                    None => StreamEnd::Finished,
                };
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) if stop.load(Ordering::Acquire) => return StreamEnd::Stopped,
            Err(e) => return StreamEnd::Failed(format!("read: {e}")),
        };
        let arrived = Instant::now();
        if options.bytes_per_s.is_some() {
            allowance -= n as f64;
        }
        body.clear();
        let pushed = if let Some(d) = dechunker.as_mut() {
            d.push(&buf[..n], &mut body)
        } else {
            head.extend_from_slice(&buf[..n]);
            let Some(Head {
                status,
                headers,
                len: head_len,
            }) = parse_head(&head)
            else {
                if head.len() > 16 * 1024 {
                    return StreamEnd::Failed("a response head over 16 KiB".into());
                }
                continue;
            };
            let chunked = header_in(&headers, "transfer-encoding")
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            {
                let mut seen = crate::lock(seen);
                seen.status = Some(status);
                seen.headers = headers;
            }
            if status != 200 {
                return StreamEnd::Failed(format!("status {status}"));
            }
            if !chunked {
                return StreamEnd::Failed("an HTTP/1.1 stream that is not chunked".into());
            }
            let mut d = Dechunker::default();
            let pushed = d.push(&head[head_len..], &mut body);
            dechunker = Some(d);
            pushed
        };
        if let Err(e) = pushed {
            return StreamEnd::Failed(e);
        }
        let result = reader.push(&body, arrived, options.keep_every, &mut new_parts);
        {
            let mut seen = crate::lock(seen);
            seen.body_bytes += body.len() as u64;
            seen.parts.append(&mut new_parts);
        }
        if let Err(e) = result {
            return StreamEnd::Failed(e);
        }
        // The last chunk: the body ended (the connection may stay open for another
        // request).
        if dechunker.as_ref().is_some_and(Dechunker::is_done) {
            return match reader.finish() {
                Ok(()) => StreamEnd::Finished,
                Err(why) => StreamEnd::Failed(why),
            };
        }
    }
}

/// Decodes each JPEG with OpenCV (`cv2.imdecode`): its (width, height), or `None` for a
/// JPEG it could not decode.
pub fn opencv_sizes(jpegs: &[&[u8]]) -> Vec<Option<(u32, u32)>> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (n, jpeg) in jpegs.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{n}.jpg")), jpeg).expect("JPEG written");
    }
    let script = r#"
import sys, cv2, numpy
folder, count = sys.argv[1], int(sys.argv[2])
for n in range(count):
    data = numpy.fromfile(f"{folder}/{n}.jpg", dtype=numpy.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    print("none" if image is None else f"{image.shape[1]} {image.shape[0]}")
"#;
    let (status, out, err) = crate::run_python(
        script,
        &[dir.path().as_os_str(), jpegs.len().to_string().as_ref()],
        Duration::from_secs(60),
    );
    assert!(status.success(), "the OpenCV decoder failed: {err}");
    let sizes: Vec<Option<(u32, u32)>> = out
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let w = words.next()?.parse().ok()?;
            let h = words.next()?.parse().ok()?;
            Some((w, h))
        })
        .collect();
    assert_eq!(sizes.len(), jpegs.len(), "OpenCV said: {out}{err}");
    sizes
}

/// The resident memory of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(n: u8) -> Vec<u8> {
        vec![0xFF, 0xD8, 0xFF, 0xE0, n, n, n, 0xFF, 0xD9]
    }

    fn part(jpeg: &[u8], length: usize) -> Vec<u8> {
        let mut out = format!(
            "Content-Type: image/jpeg\r\nContent-Length: {length}\r\nX-Timestamp: 1.5\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(jpeg);
        out.extend_from_slice(b"\r\n--mjpegframe\r\n");
        out
    }

    fn chunked(body: &[u8], size: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    }

    /// Reads `body` de-chunked from `piece`-byte writes: the parts, or the first error.
    fn read(body: &[u8], piece: usize) -> Result<Vec<Part>, String> {
        let wire = chunked(body, 7);
        let mut dechunker = Dechunker::default();
        let mut reader = PartReader::new();
        let mut parts = Vec::new();
        for bytes in wire.chunks(piece) {
            let mut out = Vec::new();
            dechunker.push(bytes, &mut out)?;
            reader.push(&out, Instant::now(), 1, &mut parts)?;
        }
        assert!(dechunker.is_done());
        Ok(parts)
    }

    #[test]
    fn whole_parts_are_read_in_any_pieces() {
        let mut body = b"--mjpegframe\r\n".to_vec();
        for n in 0..3 {
            body.extend(part(&jpeg(n), 9));
        }
        for piece in [1, 3, 10, 1000] {
            let parts = read(&body, piece).unwrap();
            let jpegs: Vec<_> = parts.iter().map(|p| p.jpeg.clone().unwrap()).collect();
            assert_eq!(jpegs, (0..3).map(jpeg).collect::<Vec<_>>(), "{piece}");
            assert!(
                parts
                    .iter()
                    .all(|p| p.timestamp == 1.5 && p.content_length == 9)
            );
        }
    }

    #[test]
    fn a_wrong_length_a_cut_jpeg_and_a_missing_delimiter_are_errors() {
        let mut long = b"--mjpegframe\r\n".to_vec();
        long.extend(part(&jpeg(1), 10));
        long.extend(part(&jpeg(2), 9));
        assert!(read(&long, 5).is_err());
        let mut cut = b"--mjpegframe\r\n".to_vec();
        cut.extend(part(&jpeg(1)[..7], 7));
        assert!(read(&cut, 5).unwrap_err().contains("not a whole JPEG"));
        let mut undelimited = part(&jpeg(1), 9);
        undelimited.extend(part(&jpeg(2), 9));
        assert!(read(&undelimited, 5).unwrap_err().contains("delimiter"));
    }
}
