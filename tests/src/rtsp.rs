//! End-to-end support for `mjpeg-rtsp-server`: the server as a child process (killed when
//! the test is done) with its statistics (`--stats-format json`) read as they come, a raw
//! RTSP client on a TCP socket (replies parsed with rtsp-types, interleaved packets kept
//! aside), UDP receivers for RTP and RTCP with deadlines, and RFC 2435 reassembly of what
//! arrived.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gstmjpegrtp::rfc2435::depayloader::{DepayOptions, Packet, Reassembler};
use serde_json::Value;

/// How long a reply or an expected packet may take (generous: tests run in parallel on a
/// small machine; only a failing test waits this long).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// The server binary of this build (built first if need be).
pub fn server_binary() -> PathBuf {
    crate::plugin_dir().join("mjpeg-rtsp-server")
}

/// The `--stats-interval` of [`ServerProcess::start_with_stats`] (seconds), unless the
/// arguments say otherwise.
pub const STATS_INTERVAL: &str = "0.2";

/// A running `mjpeg-rtsp-server`, killed on drop.
pub struct ServerProcess {
    child: Child,
    /// The URLs it printed, one per clip.
    pub urls: Vec<String>,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    stdout: Arc<Stdout>,
}

/// What the server printed on stdout after its URLs: its `--stats-format json` reports.
#[derive(Default)]
struct Stdout {
    lines: Mutex<StdoutLines>,
    /// Notified on every line, and at the end.
    changed: Condvar,
}

#[derive(Default)]
struct StdoutLines {
    /// Each report, parsed, and when it arrived; oldest first.
    reports: Vec<(Instant, Value)>,
    /// Lines after the URLs that are not JSON objects (a test fails on any).
    other: Vec<String>,
    /// The server closed its stdout: it exited, no report comes any more.
    closed: bool,
    /// The HTTP URL it printed after the RTSP URLs (`http://HOST:PORT/`, or `https://`
    /// with TLS).
    http: Option<String>,
    /// The RTSPS URLs it printed (with TLS), after the RTSP ones.
    rtsps: Vec<String>,
}

impl Stdout {
    fn lock(&self) -> MutexGuard<'_, StdoutLines> {
        // A panicking test thread must not hide the reports from the others.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads `stdout` to its end: lines before the reports go to `urls` (while start-up
    /// listens), JSON objects are kept as reports. The reading never stops early, so the
    /// server never blocks on a full pipe.
    fn read(&self, stdout: impl Read, urls: mpsc::Sender<String>) {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("http://") || line.starts_with("https://") {
                self.lock().http = Some(line);
            } else if line.starts_with("rtsps://") {
                self.lock().rtsps.push(line);
            } else if line.starts_with('{') {
                let parsed = serde_json::from_str::<Value>(&line);
                let mut lines = self.lock();
                match parsed {
                    Ok(report) => lines.reports.push((Instant::now(), report)),
                    Err(e) => lines.other.push(format!("{line} ({e})")),
                }
            } else if let Err(mpsc::SendError(line)) = urls.send(line) {
                self.lock().other.push(line);
            }
            self.changed.notify_all();
        }
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// `args` after `--stats --stats-format json --stats-interval` [`STATS_INTERVAL`] (unless
/// they hold their own `--stats-interval`).
fn with_stats<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<std::ffi::OsString> {
    let mut all: Vec<std::ffi::OsString> = vec!["--stats".into()];
    all.extend(["--stats-format".into(), "json".into()]);
    if !args.iter().any(|a| a.as_ref() == "--stats-interval") {
        all.extend(["--stats-interval".into(), STATS_INTERVAL.into()]);
    }
    all.extend(args.iter().map(|a| a.as_ref().to_os_string()));
    all
}

/// The path `name` as `report` lists it (`paths[]`); null if it is not there.
pub fn path_in(report: &Value, name: &str) -> Value {
    report["paths"]
        .as_array()
        .and_then(|paths| paths.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The session `id` as `report` lists it (`sessions[]`), if it is open.
pub fn session_in<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["sessions"]
        .as_array()?
        .iter()
        .find(|s| s["id"] == id)
}

/// The session `id` in `report`'s `closed[]`, if it ended since the report before.
pub fn closed_in<'a>(report: &'a Value, id: &str) -> Option<&'a Value> {
    report["closed"].as_array()?.iter().find(|c| c["id"] == id)
}

impl ServerProcess {
    /// Starts the server on 127.0.0.1 (unless `args` hold a `--bind`) and a free port
    /// with `args` (options, then clip paths), and waits until it printed `clips` URLs.
    pub fn start<S: AsRef<std::ffi::OsStr>>(args: &[S], clips: usize) -> ServerProcess {
        ServerProcess::spawn(Command::new(server_binary()), "127.0.0.1", args, clips)
    }

    /// [`start`](Self::start) inside a network namespace, listening on `bind` (for
    /// example its own loopback address, `127.0.1.1`).
    pub fn start_in<S: AsRef<std::ffi::OsStr>>(
        netns: &crate::netns::Netns,
        bind: &str,
        args: &[S],
        clips: usize,
    ) -> ServerProcess {
        ServerProcess::spawn(netns.command(server_binary()), bind, args, clips)
    }

    fn spawn<S: AsRef<std::ffi::OsStr>>(
        mut command: Command,
        bind: &str,
        args: &[S],
        clips: usize,
    ) -> ServerProcess {
        // HTTP and RTSP on any free port, unless the test chooses (a server started
        // again on the port of one that went away).
        let http_chosen = args
            .iter()
            .any(|a| a.as_ref() == "--http-port" || a.as_ref() == "--no-http");
        let port_chosen = args.iter().any(|a| a.as_ref() == "--port");
        let bind_chosen = args.iter().any(|a| a.as_ref() == "--bind");
        let bind_args = ["--bind", bind];
        let mut child = command
            .args(if bind_chosen { &[][..] } else { &bind_args[..] })
            .args(if port_chosen {
                &[][..]
            } else {
                &["--port", "0"][..]
            })
            .args(if http_chosen {
                &[][..]
            } else {
                &["--http-port", "0"][..]
            })
            .args(args)
            .env_remove("GST_DEBUG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mjpeg-rtsp-server starts");
        let log = Arc::new(Mutex::new(String::new()));
        {
            let log = log.clone();
            let stderr = child.stderr.take().expect("piped stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let stdout = Arc::new(Stdout::default());
        {
            let stdout = stdout.clone();
            let pipe = child.stdout.take().expect("piped stdout");
            std::thread::spawn(move || stdout.read(pipe, tx));
        }
        let mut server = ServerProcess {
            child,
            urls: Vec::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
            stdout,
        };
        // Loading clips runs GStreamer pipelines: allow for a busy machine. The URLs are
        // printed together.
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.urls.len() < clips {
            let left = if server.urls.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                Duration::from_secs(2)
            };
            match rx.recv_timeout(left) {
                Ok(line) => server.urls.push(line),
                Err(e) => panic!(
                    "the server printed {:?} and then {e:?}; its log:\n{}",
                    server.urls,
                    server.log()
                ),
            }
        }
        let first = server.urls[0]
            .strip_prefix("rtsp://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("not an rtsp URL: {}", server.urls[0]));
        server.addr = first.parse().expect("host:port in the URL");
        server
    }

    /// [`start`](Self::start) with `--stats --stats-format json --stats-interval`
    /// [`STATS_INTERVAL`] (unless `args` hold their own `--stats-interval`): a report every
    /// interval on stdout, read by [`wait_for_stats`](Self::wait_for_stats) and the like.
    pub fn start_with_stats<S: AsRef<std::ffi::OsStr>>(args: &[S], clips: usize) -> ServerProcess {
        ServerProcess::start(&with_stats(args), clips)
    }

    /// [`start_with_stats`](Self::start_with_stats) inside a network namespace, listening
    /// on `bind` (as [`start_in`](Self::start_in)).
    pub fn start_with_stats_in<S: AsRef<std::ffi::OsStr>>(
        netns: &crate::netns::Netns,
        bind: &str,
        args: &[S],
        clips: usize,
    ) -> ServerProcess {
        ServerProcess::start_in(netns, bind, &with_stats(args), clips)
    }

    /// The URL the server printed for the clip `name` (as encoded in the URL).
    pub fn url(&self, encoded_name: &str) -> String {
        let suffix = format!("/{encoded_name}");
        self.urls
            .iter()
            .find(|u| u.ends_with(&suffix))
            .unwrap_or_else(|| panic!("no URL for {encoded_name} in {:?}", self.urls))
            .clone()
    }

    /// The HTTP base URL the server printed, without the final slash
    /// (`http://127.0.0.1:PORT`, `https://` with TLS); panics if it serves no HTTP.
    pub fn http(&self) -> String {
        self.printed("HTTP URL", |lines| {
            lines
                .http
                .as_ref()
                .map(|url| url.trim_end_matches('/').to_string())
        })
    }

    /// The RTSPS URL the server printed for `encoded_name` (with `--tls-cert`).
    pub fn rtsps_url(&self, encoded_name: &str) -> String {
        let suffix = format!("/{encoded_name}");
        self.printed(&format!("rtsps:// URL for {encoded_name}"), |lines| {
            lines.rtsps.iter().find(|u| u.ends_with(&suffix)).cloned()
        })
    }

    /// Waits (5 s at most) for what `find` finds in what the server printed.
    fn printed(&self, what: &str, find: impl Fn(&StdoutLines) -> Option<String>) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut lines = self.stdout.lock();
        loop {
            if let Some(found) = find(&lines) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !lines.closed,
                "the server printed no {what}; its log:\n{}",
                self.log()
            );
            lines = self
                .stdout
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// `rtsp://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("rtsp://{}", self.addr)
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing every one of `needles`; panics with the log when
    /// none came within `timeout`.
    #[track_caller]
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .log()
                .lines()
                .find(|l| needles.iter().all(|n| l.contains(n)))
                .map(str::to_string);
            if let Some(line) = found {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} within {timeout:?}; the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every statistics report so far, oldest first.
    pub fn reports(&self) -> Vec<Value> {
        self.stdout
            .lock()
            .reports
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The session `id` as each report so far lists it, oldest first (reports from before
    /// its SETUP or after its end do not list it).
    pub fn session_reports(&self, id: &str) -> Vec<Value> {
        self.stdout
            .lock()
            .reports
            .iter()
            .filter_map(|(_, r)| session_in(r, id).cloned())
            .collect()
    }

    /// Every session that ended so far (the `closed[]` entries of every report), in the
    /// order they ended.
    pub fn closed_sessions(&self) -> Vec<Value> {
        let lines = self.stdout.lock();
        lines
            .reports
            .iter()
            .flat_map(|(_, r)| r["closed"].as_array().into_iter().flatten().cloned())
            .collect()
    }

    /// The first report from the `from`-th on (0: every report so far, then those to
    /// come) for which `condition` holds, its index and when it arrived; `None` when no
    /// such report came within `timeout` or the server exited without one.
    fn find_report(
        &self,
        from: usize,
        timeout: Duration,
        mut condition: impl FnMut(&Value) -> bool,
    ) -> Option<(usize, Instant, Value)> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.stdout.lock();
        let mut next = from;
        loop {
            assert!(
                lines.other.is_empty(),
                "the server printed lines that are not reports: {:?}",
                lines.other
            );
            while next < lines.reports.len() {
                let (at, report) = &lines.reports[next];
                if condition(report) {
                    return Some((next, *at, report.clone()));
                }
                next += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if lines.closed || left.is_zero() {
                return None;
            }
            lines = self
                .stdout
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The last report and the log, for a failing test's message.
    pub fn stats_context(&self) -> String {
        let (count, last) = {
            let lines = self.stdout.lock();
            let last = lines.reports.last().map(|(_, r)| r.to_string());
            (lines.reports.len(), last)
        };
        format!(
            "{count} reports, the last:\n{}\nthe log:\n{}",
            last.as_deref().unwrap_or("(none)"),
            self.log()
        )
    }

    /// Waits for a report (among those so far, then those to come) for which `condition`
    /// holds, and returns it; panics, saying `what` was awaited, when none came within
    /// `timeout`.
    #[track_caller]
    pub fn wait_for_stats(
        &self,
        what: &str,
        condition: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        match self.find_report(0, timeout, condition) {
            Some((_, _, report)) => report,
            None => panic!(
                "no report with {what} within {timeout:?}; {}",
                self.stats_context()
            ),
        }
    }

    /// Waits for a report listing the session `id` in a state where `condition` holds,
    /// and returns the session's entry (see [`wait_for_stats`](Self::wait_for_stats)).
    #[track_caller]
    pub fn wait_for_session(
        &self,
        id: &str,
        what: &str,
        mut condition: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let report = self.wait_for_stats(
            &format!("session {id} {what}"),
            |r| session_in(r, id).is_some_and(&mut condition),
            timeout,
        );
        session_in(&report, id).unwrap().clone()
    }

    /// Waits up to `timeout` for a report saying the session `id` ended: its `closed[]`
    /// entry and when that report arrived; `None` if none said so (yet).
    pub fn closed_within(&self, id: &str, timeout: Duration) -> Option<(Value, Instant)> {
        let (_, at, report) = self.find_report(0, timeout, |r| closed_in(r, id).is_some())?;
        Some((closed_in(&report, id).unwrap().clone(), at))
    }

    /// Waits for a report saying the session `id` ended; its `closed[]` entry.
    #[track_caller]
    pub fn wait_for_closed(&self, id: &str, timeout: Duration) -> Value {
        match self.closed_within(id, timeout) {
            Some((closed, _)) => closed,
            None => panic!(
                "no report of session {id} closed within {timeout:?}; {}",
                self.stats_context()
            ),
        }
    }

    /// A report the server made after this call: the second to arrive after it (the
    /// first may have been on its way already). Whatever the server did before the call
    /// is in it, or in the `closed[]` of a report before it.
    #[track_caller]
    pub fn fresh_stats(&self, timeout: Duration) -> Value {
        let from = self.stdout.lock().reports.len() + 1;
        match self.find_report(from, timeout, |_| true) {
            Some((_, _, report)) => report,
            None => panic!("no new report within {timeout:?}; {}", self.stats_context()),
        }
    }

    /// After the server exited: its last report, which it makes once every session is
    /// closed. Waits up to `timeout` for the end of its stdout.
    #[track_caller]
    pub fn final_stats(&self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let mut lines = self.stdout.lock();
        while !lines.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the server's stdout is still open");
            lines = self
                .stdout
                .changed
                .wait_timeout(lines, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let last = lines.reports.last().map(|(_, r)| r.clone());
        drop(lines);
        last.unwrap_or_else(|| panic!("no report at exit; {}", self.stats_context()))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGINT (Ctrl-C) and waits up to `timeout` for the process to exit.
    pub fn interrupt(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child process.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The reply's bytes as received.
    pub raw: Vec<u8>,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn cseq(&self) -> Option<u32> {
        self.header("CSeq").and_then(|v| v.trim().parse().ok())
    }

    /// The session id of the `Session` header (without `;timeout=`).
    pub fn session(&self) -> String {
        let value = self
            .header("Session")
            .unwrap_or_else(|| panic!("no Session in {}", self.text()));
        value.split(';').next().unwrap().trim().to_string()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.raw).into_owned()
    }

    /// The `key=value` parameters of the header `name` (e.g. RTP-Info, Transport).
    pub fn param(&self, name: &str, key: &str) -> Option<String> {
        self.header(name)?.split(';').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// The `ssrc` of the Transport header (hex).
    pub fn ssrc(&self) -> u32 {
        let ssrc = self.param("Transport", "ssrc").expect("ssrc in Transport");
        u32::from_str_radix(&ssrc, 16).expect("a hex SSRC")
    }

    /// The `server_port` pair of the Transport header.
    pub fn server_ports(&self) -> (u16, u16) {
        let ports = self
            .param("Transport", "server_port")
            .expect("server_port in Transport");
        let (p, q) = ports.split_once('-').expect("a port pair");
        (p.parse().expect("a port"), q.parse().expect("a port"))
    }

    pub fn assert_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status, status, "unexpected reply:\n{}", self.text());
        self
    }
}

/// How reading a reply ended without one.
#[derive(Debug)]
pub enum NoReply {
    /// The server closed the connection (with these bytes unparsed).
    Closed(Vec<u8>),
    /// The connection was reset.
    Reset(Vec<u8>),
    TimedOut(Vec<u8>),
    /// Bytes that are not an RTSP reply.
    Garbage(Vec<u8>),
}

/// A raw RTSP client on one TCP connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    /// Interleaved packets (channel, data) that arrived, oldest first.
    pub interleaved: VecDeque<(u8, Vec<u8>, Instant)>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connects to the server"))
    }

    /// A client on a connection opened elsewhere.
    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
            cseq: 0,
            interleaved: VecDeque::new(),
        }
    }

    /// The CSeq the next [`request`](Self::request) uses.
    pub fn next_cseq(&self) -> u32 {
        self.cseq + 1
    }

    /// Writes a standard request (CRLF, blank line) with the next CSeq and `headers`,
    /// and returns its reply.
    pub fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("User-Agent: mjpeg-rtsp-tests\r\n\r\n");
        self.send_raw(text.as_bytes());
        let reply = self.read_reply(REPLY_TIMEOUT);
        assert_eq!(
            reply.cseq(),
            Some(self.cseq),
            "CSeq not echoed:\n{}",
            reply.text()
        );
        reply
    }

    /// Writes `bytes` as they are, in one write.
    /// SETUP over RTP/AVP UDP to the `rtp`/`rtcp` receivers at `url`; it must succeed.
    pub fn setup_udp(&mut self, url: &str, rtp: &UdpReceiver, rtcp: &UdpReceiver) -> Reply {
        let reply = self.request("SETUP", url, &[("Transport", &udp_transport(rtp, rtcp))]);
        reply.assert_status(200);
        reply
    }

    /// SETUP over RTP/AVP/TCP interleaved on channels 0-1 at `url`; checks the exact
    /// Transport answer. The stream's SSRC and the session id.
    pub fn setup_interleaved(&mut self, url: &str) -> (u32, String) {
        let reply = self.request(
            "SETUP",
            url,
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        );
        reply.assert_status(200);
        let ssrc = reply.param("Transport", "ssrc").expect("ssrc");
        assert_eq!(
            reply.header("Transport").unwrap(),
            format!("RTP/AVP/TCP;unicast;interleaved=0-1;ssrc={ssrc}")
        );
        let ssrc = u32::from_str_radix(&ssrc, 16).expect("a hex SSRC");
        (ssrc, reply.session())
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("request written");
    }

    /// Reads one reply, keeping interleaved packets that come before it aside.
    pub fn read_reply(&mut self, timeout: Duration) -> Reply {
        self.try_read_reply(timeout)
            .unwrap_or_else(|e| panic!("no reply: {e:?}"))
    }

    pub fn try_read_reply(&mut self, timeout: Duration) -> Result<Reply, NoReply> {
        let deadline = Instant::now() + timeout;
        loop {
            while !self.buf.is_empty() {
                match rtsp_types::Message::<Vec<u8>>::parse(&self.buf) {
                    Ok((message, used)) => {
                        let raw: Vec<u8> = self.buf.drain(..used).collect();
                        match message {
                            rtsp_types::Message::Response(r) => {
                                return Ok(Reply {
                                    status: u16::from(r.status()),
                                    reason: r.reason_phrase().to_string(),
                                    headers: r
                                        .headers()
                                        .map(|(n, v)| (n.to_string(), v.to_string()))
                                        .collect(),
                                    body: r.body().clone(),
                                    raw,
                                });
                            }
                            rtsp_types::Message::Data(d) => self.interleaved.push_back((
                                d.channel_id(),
                                d.as_slice().to_vec(),
                                Instant::now(),
                            )),
                            rtsp_types::Message::Request(_) => {
                                return Err(NoReply::Garbage(raw));
                            }
                        }
                    }
                    Err(rtsp_types::ParseError::Incomplete(_)) => break,
                    Err(rtsp_types::ParseError::Error) => {
                        return Err(NoReply::Garbage(std::mem::take(&mut self.buf)));
                    }
                }
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return Err(NoReply::Closed(std::mem::take(&mut self.buf))),
                Fill::Reset => return Err(NoReply::Reset(std::mem::take(&mut self.buf))),
                Fill::TimedOut => return Err(NoReply::TimedOut(std::mem::take(&mut self.buf))),
            }
        }
    }

    /// The next interleaved packet, waiting until `deadline`.
    pub fn read_interleaved(&mut self, deadline: Instant) -> Option<(u8, Vec<u8>, Instant)> {
        loop {
            if let Some(p) = self.interleaved.pop_front() {
                return Some(p);
            }
            if !self.buf.is_empty() {
                match rtsp_types::Message::<Vec<u8>>::parse(&self.buf) {
                    Ok((rtsp_types::Message::Data(d), used)) => {
                        self.buf.drain(..used);
                        return Some((d.channel_id(), d.as_slice().to_vec(), Instant::now()));
                    }
                    Ok((other, _)) => panic!("not interleaved data: {other:?}"),
                    Err(rtsp_types::ParseError::Incomplete(_)) => {}
                    Err(rtsp_types::ParseError::Error) => {
                        panic!("garbage on the connection: {:?}", self.buf)
                    }
                }
            }
            match self.fill(deadline) {
                Fill::Data => {}
                _ => return None,
            }
        }
    }

    /// Exactly `n` bytes (for replies without framing, like the lab dialect's).
    pub fn read_exact_bytes(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            match self.fill(deadline) {
                Fill::Data => {}
                end => panic!(
                    "{end:?} after {:?}, expected {n} bytes",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Bytes until `done` holds for what arrived (lab replies have no framing); `None`
    /// when the connection ends or `timeout` passes first.
    pub fn read_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        while !done(&self.buf) {
            if !matches!(self.fill(deadline), Fill::Data) {
                return None;
            }
        }
        Some(std::mem::take(&mut self.buf))
    }

    /// Whatever arrives within `wait` (and what was already buffered).
    pub fn read_available(&mut self, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        while let Fill::Data = self.fill(deadline) {}
        std::mem::take(&mut self.buf)
    }

    /// Reads (and drops) until the server closes the connection; false if it did not
    /// within `timeout`.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Fill::Data => self.buf.clear(),
                Fill::Closed | Fill::Reset => return true,
                Fill::TimedOut => return false,
            }
        }
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Fill::TimedOut;
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(0) => Fill::Closed,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Fill::Data
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Fill::TimedOut
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => Fill::Data,
            Err(_) => Fill::Reset,
        }
    }
}

#[derive(Debug)]
enum Fill {
    Data,
    Closed,
    Reset,
    TimedOut,
}

/// One RTP packet as received.
#[derive(Debug, Clone)]
pub struct RtpPacket {
    pub version: u8,
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    pub arrival: Instant,
}

impl RtpPacket {
    /// Reads a packet without CSRCs or extension (what the server sends).
    pub fn parse(data: &[u8], arrival: Instant) -> RtpPacket {
        assert!(data.len() >= 12, "a {}-byte RTP packet", data.len());
        assert_eq!(
            data[0] & 0x3f,
            0,
            "padding, extension or CSRCs: {:02x}",
            data[0]
        );
        RtpPacket {
            version: data[0] >> 6,
            marker: data[1] & 0x80 != 0,
            payload_type: data[1] & 0x7f,
            seq: u16::from_be_bytes([data[2], data[3]]),
            ts: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
            ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
            payload: data[12..].to_vec(),
            arrival,
        }
    }
}

/// A UDP socket on 127.0.0.1 receiving with deadlines.
pub struct UdpReceiver {
    pub socket: UdpSocket,
}

impl UdpReceiver {
    pub fn bind() -> UdpReceiver {
        UdpReceiver::from(UdpSocket::bind("127.0.0.1:0").expect("a UDP port"))
    }

    pub fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    /// The next datagram, its sender and arrival time, if one comes before `deadline`.
    pub fn recv_datagram(&self, deadline: Instant) -> Option<(Vec<u8>, SocketAddr, Instant)> {
        let mut buf = vec![0u8; 65536];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.socket.set_read_timeout(Some(left)).unwrap();
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => return Some((buf[..n].to_vec(), from, Instant::now())),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // ICMP errors from earlier sends on this socket: not a datagram.
                Err(_) => {}
            }
        }
    }

    /// The next RTP packet, if one comes before `deadline`.
    pub fn recv(&self, deadline: Instant) -> Option<RtpPacket> {
        self.recv_datagram(deadline)
            .map(|(data, _, at)| RtpPacket::parse(&data, at))
    }

    /// Packets until `done` says the list is complete (true) or `deadline` passes.
    pub fn recv_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&[RtpPacket]) -> bool,
    ) -> Vec<RtpPacket> {
        let mut packets = Vec::new();
        while !done(&packets) {
            match self.recv(deadline) {
                Some(p) => packets.push(p),
                None => break,
            }
        }
        packets
    }

    /// Every packet that arrives within `wait`.
    pub fn recv_for(&self, wait: Duration) -> Vec<RtpPacket> {
        self.recv_until(Instant::now() + wait, |_| false)
    }

    /// Waits for `frames` complete frames (packets up to the `frames`-th marker bit).
    pub fn recv_frames(&self, frames: usize, timeout: Duration) -> Vec<RtpPacket> {
        let packets = self.recv_until(Instant::now() + timeout, |p| {
            p.iter().filter(|p| p.marker).count() >= frames
        });
        assert!(
            packets.iter().filter(|p| p.marker).count() >= frames,
            "only {} packets ({} frames) in {timeout:?}",
            packets.len(),
            packets.iter().filter(|p| p.marker).count()
        );
        packets
    }
}

impl From<UdpSocket> for UdpReceiver {
    fn from(socket: UdpSocket) -> UdpReceiver {
        UdpReceiver { socket }
    }
}

/// A session set up over UDP by the raw client.
pub struct UdpSession {
    pub client: Client,
    pub rtp: UdpReceiver,
    pub rtcp: UdpReceiver,
    pub id: String,
    pub ssrc: u32,
    /// `server_port` of the SETUP reply.
    pub server_ports: (u16, u16),
    /// The URL aggregate requests (PLAY, PAUSE, TEARDOWN) go to.
    pub url: String,
}

impl UdpSession {
    /// SETUP on `control` over UDP to a fresh even/odd pair; `url` is the session's
    /// aggregate URL. The session, and the SETUP reply for more checks.
    pub fn setup(mut client: Client, url: &str, control: &str) -> (UdpSession, Reply) {
        let (rtp, rtcp) = udp_pair();
        let reply = client.setup_udp(control, &rtp, &rtcp);
        let session = UdpSession {
            id: reply.session(),
            ssrc: reply.ssrc(),
            server_ports: reply.server_ports(),
            url: url.to_string(),
            client,
            rtp,
            rtcp,
        };
        (session, reply)
    }
}

/// A lab datagram (LAB_PROTOCOL.md), its header checked: version `version` (2, or 0 for
/// the student bug), M=0, PT 26, SSRC 0, the timestamp the Unix time in seconds (at most
/// 2 s old). The payload is the whole JPEG.
pub fn lab_packet(data: &[u8], version: u8, arrival: Instant) -> RtpPacket {
    let packet = RtpPacket::parse(data, arrival);
    assert_eq!(
        (
            packet.version,
            packet.marker,
            packet.payload_type,
            packet.ssrc
        ),
        (version, false, 26, 0),
        "lab header: V, M=0, PT=26, SSRC 0"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs() as u32;
    assert!(
        packet.ts <= now && now - packet.ts <= 2,
        "timestamp {} is not the Unix time {now}",
        packet.ts
    );
    packet
}

/// The Transport a client asks for to receive on `rtp`/`rtcp`.
pub fn udp_transport(rtp: &UdpReceiver, rtcp: &UdpReceiver) -> String {
    format!("RTP/AVP;unicast;client_port={}-{}", rtp.port(), rtcp.port())
}

/// Two UDP sockets on consecutive ports, the first even (RTP, RTCP), both held.
pub fn udp_pair() -> (UdpReceiver, UdpReceiver) {
    for _ in 0..1000 {
        let rtp = UdpReceiver::bind();
        let port = rtp.port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", port + 1)) {
            return (rtp, UdpReceiver::from(rtcp));
        }
    }
    panic!("no free pair of UDP ports")
}

/// One reassembled RFC 2435 frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub ts: u32,
    pub jpeg: Vec<u8>,
    /// Sequence number of its first packet.
    pub first_seq: u16,
}

/// Reassembles `packets` (RTP/JPEG) into JPEG frames; panics on a damaged frame.
pub fn depayload(packets: &[RtpPacket]) -> Vec<Frame> {
    let mut reassembler = Reassembler::new(DepayOptions::default());
    let mut frames = Vec::new();
    let mut first_seq = None;
    for p in packets {
        first_seq.get_or_insert(p.seq);
        let received = reassembler.push(&Packet {
            payload: &p.payload,
            marker: p.marker,
            timestamp: p.ts,
        });
        assert!(
            received.dropped.is_empty(),
            "frames dropped: {:?}",
            received.dropped
        );
        for frame in received.frames {
            frames.push(Frame {
                ts: frame.timestamp,
                jpeg: frame.jpeg,
                first_seq: first_seq.take().unwrap(),
            });
        }
    }
    let end = reassembler.end_of_stream();
    assert!(end.dropped.is_empty(), "frames dropped: {:?}", end.dropped);
    frames
}

/// The payloads of the interleaved packets on `channel`, parsed as RTP.
pub fn interleaved_rtp(packets: &[(u8, Vec<u8>, Instant)], channel: u8) -> Vec<RtpPacket> {
    packets
        .iter()
        .filter(|(c, _, _)| *c == channel)
        .map(|(_, data, at)| RtpPacket::parse(data, *at))
        .collect()
}

/// What a compound RTCP packet holds, briefly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtcpSummary {
    /// SSRCs of sender reports.
    pub sender_reports: Vec<u32>,
    /// SSRCs of SDES chunks.
    pub sdes: Vec<u32>,
    /// SSRCs that said BYE.
    pub byes: Vec<u32>,
}

pub fn rtcp_summary(data: &[u8]) -> RtcpSummary {
    let compound = rtcp_types::Compound::parse(data).expect("a valid compound RTCP packet");
    let mut summary = RtcpSummary::default();
    for packet in compound {
        match packet.expect("a valid RTCP packet") {
            rtcp_types::Packet::Sr(sr) => summary.sender_reports.push(sr.ssrc()),
            rtcp_types::Packet::Sdes(sdes) => {
                summary.sdes.extend(sdes.chunks().map(|c| c.ssrc()));
            }
            rtcp_types::Packet::Bye(bye) => summary.byes.extend(bye.ssrcs()),
            _ => {}
        }
    }
    summary
}

/// A compound receiver report from `ours` about `about` (RR + SDES CNAME).
pub fn receiver_report(ours: u32, about: u32, fraction_lost: u8, cumulative_lost: u32) -> Vec<u8> {
    use rtcp_types::*;
    let packet = Compound::builder()
        .add_packet(
            ReceiverReport::builder(ours).add_report_block(
                ReportBlock::builder(about)
                    .fraction_lost(fraction_lost)
                    .cumulative_lost(cumulative_lost)
                    .extended_sequence_number(1000)
                    .interarrival_jitter(90),
            ),
        )
        .add_packet(Sdes::builder().add_chunk(
            SdesChunk::builder(ours).add_item(SdesItem::builder(SdesItem::CNAME, "tests@lab")),
        ));
    let mut out = vec![0; packet.calculate_size().unwrap()];
    packet.write_into(&mut out).unwrap();
    out
}

/// A folder with clips for a server, removed on drop.
pub struct ClipDir {
    pub dir: tempfile::TempDir,
}

impl ClipDir {
    pub fn new() -> ClipDir {
        ClipDir {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `frames` as the lab-format clip `name`.
    pub fn clip(&self, name: &str, frames: &[Vec<u8>]) -> PathBuf {
        crate::write_file(self.path(), name, &crate::lab_file(frames))
    }
}

impl Default for ClipDir {
    fn default() -> Self {
        ClipDir::new()
    }
}

/// Polls `condition` until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    crate::poll(timeout, condition, |&ok| ok).is_ok()
}

/// A server playing one clip, `clip.Mjpeg`, from its own folder.
pub struct Served {
    pub server: ServerProcess,
    /// The clip's URL.
    pub url: String,
    _dir: ClipDir,
}

/// Starts a server on `frames` (as the lab-format clip `clip.Mjpeg`) with `options`, and
/// with its statistics ([`ServerProcess::start_with_stats`]).
pub fn serve(frames: &[Vec<u8>], options: &[&str]) -> Served {
    let dir = ClipDir::new();
    let clip = dir.clip("clip.Mjpeg", frames);
    let mut args: Vec<std::ffi::OsString> = options.iter().map(|o| o.into()).collect();
    args.push(clip.into());
    let server = ServerProcess::start_with_stats(&args, 1);
    let url = server.url("clip.Mjpeg");
    Served {
        server,
        url,
        _dir: dir,
    }
}
