//! `mjpeg-rtsp-server` as a child process (killed when the test is done), with what it
//! logs and its statistics (`--stats-format json`) read as they come.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::rtsp::Client;

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
        self.wait_from(0, what, condition, timeout)
    }

    /// [`find_report`](Self::find_report) from the `from`-th report, or a panic saying
    /// what was awaited.
    #[track_caller]
    fn wait_from(
        &self,
        from: usize,
        what: &str,
        condition: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        match self.find_report(from, timeout, condition) {
            Some((_, _, report)) => report,
            None => panic!(
                "no report with {what} within {timeout:?}; {}",
                self.stats_context()
            ),
        }
    }

    /// [`wait_for_stats`](Self::wait_for_stats) among reports made after this call only
    /// (as [`fresh_stats`](Self::fresh_stats)): for a condition an earlier report may
    /// already meet, such as something being gone.
    #[track_caller]
    pub fn wait_for_fresh_stats(
        &self,
        what: &str,
        condition: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let from = self.stdout.lock().reports.len() + 1;
        self.wait_from(from, what, condition, timeout)
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
        self.wait_for_fresh_stats("anything (a new one)", |_| true, timeout)
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
