//! A networking-lab RTSP server for tests of players, behaving as the lab's Python
//! `Server.py`/`ServerWorker.py` does (`LAB_PROTOCOL.md` in the project notes has the
//! exact bytes): one TCP connection per client, `\n` line ends, no blank line, replies
//! `RTSP/1.0 200 OK\nCSeq: n\nSession: id`, and after PLAY one UDP datagram per frame
//! (12-byte RTP header + the whole JPEG) from a fresh ephemeral port to the client's TCP
//! peer address at its `client_port`.
//!
//! Like the Python server it:
//! - takes what one `recv()` brings as one request (here: once the request line, `CSeq`
//!   and, for SETUP, a `Transport` line with a port have arrived; two requests that
//!   arrived together are split at the second request line; `\r\n` line ends and blank
//!   lines are accepted too);
//! - answers nothing to requests in the wrong state (PLAY before SETUP, SETUP twice,
//!   PAUSE while not playing) or with methods it does not know (DESCRIBE too, unless
//!   [`LabOptions::describe`]); does not check the session id;
//! - sends the first frame one frame period after the PLAY reply, then one per period;
//!   numbers frames from 1 per SETUP, continuing across PAUSE/PLAY; stops at the end of
//!   the clip (no end-of-stream signal, no RTCP);
//! - sends timestamp = Unix time in seconds, SSRC 0, M=0, PT 26, V=2 (V=0 with
//!   [`LabOptions::version0`], like a widespread student version).
//!
//! Unlike it, a SETUP for another file gets `RTSP/1.0 404 NOT FOUND\nCSeq: n\nSession:
//! id` (the Python server only prints "404 NOT FOUND": [`LabOptions::silent_not_found`]),
//! TEARDOWN before PLAY gets its reply (the Python server fails), and PAUSE and TEARDOWN
//! stop the sender before they are answered, so no datagram follows their reply.

use crate::lock;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::relay::DropPolicy;

/// How the lab server behaves.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Frames per second (lab servers send 20).
    pub fps: u32,
    /// Send RTP version 0 in every header, like the buggy student version.
    pub version0: bool,
    /// The one file it serves (the bare name a lab client puts in its request line).
    pub file_name: String,
    /// Answer DESCRIBE (some lab variants) with `Content-Base`, `Content-Type:
    /// application/sdp`, `Content-Length` and a tiny SDP. Off: DESCRIBE is ignored, as
    /// by the classic lab server.
    pub describe: bool,
    /// Answer nothing to a SETUP for another file, as the Python server does.
    pub silent_not_found: bool,
    /// The session id (100000..=999999); random when `None`.
    pub session_id: Option<u32>,
    /// Frames not sent (their number is used up: the client sees a gap in seq). The
    /// index of [`DropPolicy::drops`] is the frame number.
    pub drop: DropPolicy,
    /// Start the clip over at its end (seq keeps counting up) instead of stopping.
    pub looping: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            fps: 20,
            version0: false,
            file_name: "movie.Mjpeg".to_string(),
            describe: false,
            silent_not_found: false,
            session_id: None,
            drop: DropPolicy::None,
            looping: false,
        }
    }
}

/// One datagram the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabPacket {
    pub seq: u16,
    /// The RTP timestamp (Unix seconds).
    pub ts: u32,
    /// Index of the frame in the clip.
    pub frame: usize,
    /// Datagram length (12 + JPEG).
    pub len: usize,
    pub from: SocketAddr,
    pub to: SocketAddr,
}

/// What the server did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabCounts {
    /// Control connections accepted.
    pub connections: u64,
    /// Each request as it was taken (lossy UTF-8), in order, answered or not.
    pub requests: Vec<String>,
    /// Each reply as sent.
    pub replies: Vec<String>,
    /// Session ids handed out (one per connection).
    pub sessions: Vec<u32>,
    /// PLAYs that started sending.
    pub plays: u64,
    /// Datagrams sent, in order.
    pub packets: Vec<LabPacket>,
    /// `packets.len()`.
    pub frames_sent: u64,
    /// The seq of the last datagram sent.
    pub last_seq: Option<u16>,
    /// Frame numbers left out by [`LabOptions::drop`].
    pub dropped_seqs: Vec<u16>,
    /// Datagrams the kernel refused (a frame too big for UDP, say).
    pub send_errors: u64,
}

impl LabCounts {
    /// The seqs of the datagrams sent.
    pub fn sent_seqs(&self) -> Vec<u16> {
        self.packets.iter().map(|p| p.seq).collect()
    }
}

struct Shared {
    frames: Vec<Vec<u8>>,
    options: LabOptions,
    counts: Mutex<LabCounts>,
    stop: AtomicBool,
    streams: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A lab-dialect server on 127.0.0.1 and a free port; stops when dropped.
pub struct LabServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl LabServer {
    pub fn start(frames: Vec<Vec<u8>>, options: LabOptions) -> LabServer {
        assert!(options.fps > 0, "fps 0");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a TCP port for the lab server");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            frames,
            options,
            counts: Mutex::default(),
            stop: AtomicBool::new(false),
            streams: Mutex::default(),
            threads: Mutex::default(),
        });
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("lab-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("a lab server thread");
        lock(&shared.threads).push(handle);
        LabServer { addr, shared }
    }

    /// 127.0.0.1:port
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The file name it serves.
    pub fn file_name(&self) -> &str {
        &self.shared.options.file_name
    }

    /// `rtsp://127.0.0.1:PORT/FILE`
    pub fn url(&self) -> String {
        format!("rtsp://{}/{}", self.addr, self.shared.options.file_name)
    }

    pub fn counts(&self) -> LabCounts {
        lock(&self.shared.counts).clone()
    }

    /// Polls the counts until `done` holds; panics (showing `what` and the counts) when
    /// `timeout` passes first.
    pub fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&LabCounts) -> bool,
    ) -> LabCounts {
        crate::poll(timeout, || self.counts(), &mut done).unwrap_or_else(|counts| {
            panic!(
                "the lab server did not see {what} within {timeout:?}: requests {:?}, \
                 replies {:?}, {} frames sent, last seq {:?}",
                counts.requests, counts.replies, counts.frames_sent, counts.last_seq
            )
        })
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        for stream in lock(&self.shared.streams).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        crate::join_all(&self.shared.threads);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let _ = stream.set_nodelay(true);
        lock(&shared.streams).push(stream.try_clone().expect("a stream clone"));
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let session = shared.options.session_id.unwrap_or_else(random_session_id);
        {
            let mut counts = lock(&shared.counts);
            counts.connections += 1;
            counts.sessions.push(session);
        }
        let s = shared.clone();
        let handle = std::thread::Builder::new()
            .name("lab-client".into())
            .spawn(move || ClientWorker::new(s, stream, session).run())
            .expect("a lab server thread");
        lock(&shared.threads).push(handle);
    }
}

/// 100000..=999999, from the standard library's random hasher keys.
fn random_session_id() -> u32 {
    let r = RandomState::new().hash_one(Instant::now());
    100_000 + (r % 900_000) as u32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Init,
    Ready,
    Playing,
}

/// A request as the lab server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LabRequest {
    method: String,
    file: String,
    /// The CSeq as written (echoed as is).
    cseq: String,
    client_port: Option<u16>,
}

struct Sender {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<u64>,
}

/// One client connection (the Python `ServerWorker`).
struct ClientWorker {
    shared: Arc<Shared>,
    stream: TcpStream,
    session: u32,
    state: State,
    client_port: Option<u16>,
    /// Frames taken so far (sent or dropped) since SETUP: the next seq is this + 1.
    taken: u64,
    sender: Option<Sender>,
}

impl ClientWorker {
    fn new(shared: Arc<Shared>, stream: TcpStream, session: u32) -> ClientWorker {
        ClientWorker {
            shared,
            stream,
            session,
            state: State::Init,
            client_port: None,
            taken: 0,
            sender: None,
        }
    }

    fn run(mut self) {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 4096];
        loop {
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            buf.extend_from_slice(&chunk[..n]);
            while let Some((text, request)) = take_request(&mut buf) {
                lock(&self.shared.counts).requests.push(text);
                if let Some(request) = request {
                    self.handle(&request);
                }
            }
        }
        self.stop_sending();
    }

    fn reply(&mut self, text: &str) {
        lock(&self.shared.counts).replies.push(text.to_string());
        let _ = self.stream.write_all(text.as_bytes());
    }

    fn ok(&self, cseq: &str) -> String {
        format!("RTSP/1.0 200 OK\nCSeq: {cseq}\nSession: {}", self.session)
    }

    fn handle(&mut self, request: &LabRequest) {
        let shared = self.shared.clone();
        let options = &shared.options;
        match request.method.as_str() {
            "SETUP" if self.state == State::Init => {
                if request.file != options.file_name {
                    if !options.silent_not_found {
                        let text = format!(
                            "RTSP/1.0 404 NOT FOUND\nCSeq: {}\nSession: {}",
                            request.cseq, self.session
                        );
                        self.reply(&text);
                    }
                    return;
                }
                self.state = State::Ready;
                self.client_port = request.client_port;
                self.taken = 0;
                let text = self.ok(&request.cseq);
                self.reply(&text);
            }
            "PLAY" if self.state == State::Ready => {
                self.state = State::Playing;
                let text = self.ok(&request.cseq);
                self.reply(&text);
                self.start_sending();
            }
            "PAUSE" if self.state == State::Playing => {
                self.state = State::Ready;
                self.stop_sending();
                let text = self.ok(&request.cseq);
                self.reply(&text);
            }
            "TEARDOWN" => {
                self.stop_sending();
                self.state = State::Init;
                let text = self.ok(&request.cseq);
                self.reply(&text);
            }
            "DESCRIBE" if options.describe => {
                let sdp = format!(
                    "v=0\nm=video 0 RTP/AVP 26\nc=IN IP4 0.0.0.0\na=control:streamid=0\n\
                     a=framerate:{}\n",
                    options.fps
                );
                let text = format!(
                    "{}\nContent-Base: {}\nContent-Type: application/sdp\nContent-Length: {}\
                     \n\n{sdp}",
                    self.ok(&request.cseq),
                    options.file_name,
                    sdp.len()
                );
                self.reply(&text);
            }
            _ => {}
        }
    }

    fn start_sending(&mut self) {
        let (Some(port), Ok(peer)) = (self.client_port, self.stream.peer_addr()) else {
            return;
        };
        let to = SocketAddr::new(peer.ip(), port);
        let socket = UdpSocket::bind(("0.0.0.0", 0)).expect("an ephemeral UDP port");
        let (stop, stopped) = mpsc::channel();
        let shared = self.shared.clone();
        let taken = self.taken;
        lock(&shared.counts).plays += 1;
        let handle = std::thread::Builder::new()
            .name("lab-rtp".into())
            .spawn(move || send_frames(&shared, &socket, to, taken, &stopped))
            .expect("a lab sender thread");
        self.sender = Some(Sender { stop, handle });
    }

    fn stop_sending(&mut self) {
        if let Some(sender) = self.sender.take() {
            let _ = sender.stop.send(());
            if let Ok(taken) = sender.handle.join() {
                self.taken = taken;
            }
        }
    }
}

/// Sends frames `taken + 1`, ... one per period until told to stop; returns how many
/// frames were taken by then.
fn send_frames(
    shared: &Shared,
    socket: &UdpSocket,
    to: SocketAddr,
    mut taken: u64,
    stop: &mpsc::Receiver<()>,
) -> u64 {
    let options = &shared.options;
    let period = Duration::from_secs_f64(1.0 / f64::from(options.fps));
    let frames = shared.frames.len() as u64;
    let from = socket.local_addr().unwrap();
    let mut due = Instant::now() + period;
    loop {
        match stop.recv_timeout(due.saturating_duration_since(Instant::now())) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return taken,
        }
        if frames == 0 || (taken >= frames && !options.looping) {
            // The end of the clip: nothing more, until PAUSE or TEARDOWN.
            let _ = stop.recv();
            return taken;
        }
        let index = (taken % frames) as usize;
        taken += 1;
        let seq = taken as u16;
        if options.drop.drops(taken) {
            lock(&shared.counts).dropped_seqs.push(seq);
        } else {
            let ts = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()) as u32;
            let jpeg = &shared.frames[index];
            let mut packet = Vec::with_capacity(12 + jpeg.len());
            packet.push(if options.version0 { 0x00 } else { 0x80 });
            packet.push(26);
            packet.extend_from_slice(&seq.to_be_bytes());
            packet.extend_from_slice(&ts.to_be_bytes());
            packet.extend_from_slice(&[0, 0, 0, 0]);
            packet.extend_from_slice(jpeg);
            // Booked before it goes, so a client that has it sees it counted.
            {
                let mut counts = lock(&shared.counts);
                counts.packets.push(LabPacket {
                    seq,
                    ts,
                    frame: index,
                    len: packet.len(),
                    from,
                    to,
                });
                counts.frames_sent += 1;
                counts.last_seq = Some(seq);
            }
            if socket.send_to(&packet, to).is_err() {
                lock(&shared.counts).send_errors += 1;
            }
        }
        due += period;
    }
}

const METHODS_LINE_SUFFIX: &str = "RTSP/";

/// Whether `line` reads `METHOD FILE RTSP/x.y` (METHOD in capitals).
fn is_request_line(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words.len() == 3
        && !words[0].is_empty()
        && words[0]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'_')
        && words[2].starts_with(METHODS_LINE_SUFFIX)
}

/// Where a second request starts in `text` (after the first line), if one does: at a
/// blank line, or at a request line glued onto the previous one (lab requests have no
/// line end after their last line).
fn second_request(text: &str) -> Option<usize> {
    let first_end = text.find('\n')?;
    let bytes = text.as_bytes();
    for i in first_end + 1..text.len() {
        let c = bytes[i];
        if c == b'\n' && text[i + 1..].starts_with(['\n', '\r']) {
            // A blank line ends the request (a standard client's).
            let rest = text[i + 1..].trim_start_matches(['\r', '\n']);
            let at = text.len() - rest.len();
            return (at < text.len()).then_some(at);
        }
        let prev = bytes[i - 1];
        if c.is_ascii_uppercase() && !prev.is_ascii_alphabetic() && prev != b'_' {
            let line = text[i..].split('\n').next().unwrap_or("");
            if is_request_line(line.trim_end()) {
                return Some(i);
            }
        }
    }
    None
}

/// Takes the first request out of `buf` once it has the lines the lab server needs: the
/// text taken, and the request if it is one.
fn take_request(buf: &mut Vec<u8>) -> Option<(String, Option<LabRequest>)> {
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    buf.drain(..start);
    if buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(buf).into_owned();
    let end = second_request(&text).unwrap_or(text.len());
    let candidate = &text[..end];
    let mut lines = candidate
        .split('\n')
        .map(|l| l.trim())
        .filter(|l| !l.is_empty());
    let first = lines.next()?;
    if !is_request_line(first) {
        // Not a request: once its line is complete, take it and answer nothing.
        let line_end = candidate.find('\n')?;
        let taken = candidate[..line_end].to_string();
        buf.drain(..line_end + 1);
        return Some((taken, None));
    }
    let mut words = first.split_whitespace();
    let method = words.next()?.to_string();
    let file = words.next()?.to_string();
    let mut cseq = None;
    let mut transport = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "cseq" => cseq = Some(value.trim().to_string()),
            "transport" => transport = Some(value.to_string()),
            _ => {}
        }
    }
    let cseq = cseq.filter(|c| !c.is_empty())?;
    let client_port = transport.as_deref().and_then(client_port);
    if method == "SETUP" && client_port.is_none() {
        return None;
    }
    let taken = candidate.to_string();
    // `end` is a position in the lossy text; the same in the bytes for ASCII requests.
    buf.drain(..end.min(buf.len()));
    Some((
        taken,
        Some(LabRequest {
            method,
            file,
            cseq,
            client_port,
        }),
    ))
}

/// The port of `client_port= N` (also `client_port = N`, `client_port=N`, `N-M`).
fn client_port(transport: &str) -> Option<u16> {
    transport.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if name.trim() != "client_port" {
            return None;
        }
        value.trim().split('-').next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(text: &str) -> (Vec<String>, String) {
        let mut buf = text.as_bytes().to_vec();
        let mut taken = Vec::new();
        while let Some((t, _)) = take_request(&mut buf) {
            taken.push(t);
        }
        (taken, String::from_utf8(buf).unwrap())
    }

    #[test]
    fn reads_requests_as_the_lab_server_does() {
        let setup = "SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTransport: RTP/UDP; client_port= 25010";
        let mut buf = setup.as_bytes().to_vec();
        let (text, request) = take_request(&mut buf).unwrap();
        assert_eq!(text, setup);
        let request = request.unwrap();
        assert_eq!(
            (
                request.method.as_str(),
                request.cseq.as_str(),
                request.client_port
            ),
            ("SETUP", "1", Some(25010))
        );
        assert!(buf.is_empty());
        // Not enough yet.
        assert_eq!(
            take("SETUP movie.Mjpeg RTSP/1.0\nCSeq: 1\nTrans").0.len(),
            0
        );
        assert_eq!(take("PLAY movie.Mjpeg RTSP/1.0\nCSe").0.len(), 0);
        // Two glued lab requests, and a standard one.
        let (taken, rest) = take(
            "PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 123456PAUSE movie.Mjpeg \
             RTSP/1.0\nCSeq: 3\nSession: 123456",
        );
        assert_eq!(
            taken,
            vec![
                "PLAY movie.Mjpeg RTSP/1.0\nCSeq: 2\nSession: 123456",
                "PAUSE movie.Mjpeg RTSP/1.0\nCSeq: 3\nSession: 123456"
            ]
        );
        assert_eq!(rest, "");
        let (taken, _) = take(
            "OPTIONS rtsp://h/movie.Mjpeg RTSP/1.0\r\nCSeq: 1\r\n\r\nPLAY movie.Mjpeg \
             RTSP/1.0\nCSeq: 2\nSession: 1",
        );
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert_eq!(client_port("RTP/UDP;client_port=5000-5001"), Some(5000));
        assert_eq!(client_port("RTP/UDP; client_port = 5000"), Some(5000));
    }
}
