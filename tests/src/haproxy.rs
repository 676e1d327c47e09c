//! HAProxy (Debian's `haproxy`, installed by the bootstrap) in front of a tier of edges, for
//! the tier's test and benchmark: it runs `config/haproxy-edges.cfg`, the file the README
//! shows, as it is, with the addresses in the environment; it is killed on drop.
//!
//! Which edges HAProxy sends viewers to is read from its stats socket (`show stat`, CSV),
//! so a test sees its health checks' verdicts rather than guessing from timings.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::netns::Netns;

/// The RTSP and HTTP ports of the config file: HAProxy's and the edges' alike.
pub const RTSP_PORT: u16 = 8554;
pub const HTTP_PORT: u16 = 8080;
/// The backends and the servers in them, as the config file names them.
pub const BACKENDS: [&str; 2] = ["rtsp_edges", "http_edges"];
pub const SERVERS: [&str; 2] = ["edge1", "edge2"];

/// The config file the README shows.
pub fn config_file() -> PathBuf {
    crate::workspace_root().join("config/haproxy-edges.cfg")
}

/// One server's line of `show stat`.
#[derive(Debug, Clone)]
pub struct ServerStat {
    /// `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), `no check`...
    pub status: String,
    /// Connections it has now, and has had in all.
    pub current: u64,
    pub total: u64,
}

/// HAProxy running inside a namespace, killed on drop.
pub struct Haproxy {
    child: Child,
    /// The stats socket (in a folder removed on drop).
    socket: PathBuf,
    _dir: tempfile::TempDir,
    log: Arc<Mutex<String>>,
}

impl Haproxy {
    /// Starts HAProxy in `netns` on `listen` (ports [`RTSP_PORT`] and [`HTTP_PORT`]) in
    /// front of the two edges, and waits until its stats socket answers.
    pub fn start(netns: &Netns, listen: &str, edges: [&str; 2]) -> Haproxy {
        let dir = tempfile::tempdir().expect("a folder for HAProxy's socket");
        let socket = dir.path().join("stats.sock");
        let mut child = netns
            .command("haproxy")
            .args(["-db", "-f"])
            .arg(config_file())
            .env("TIER_LISTEN", listen)
            .env("TIER_EDGE1", edges[0])
            .env("TIER_EDGE2", edges[1])
            .env("TIER_STATS", &socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haproxy starts (run `make test` to install it)");
        let log = Arc::new(Mutex::new(String::new()));
        {
            let log = log.clone();
            let stderr = child.stderr.take().expect("piped stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = crate::lock(&log);
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let mut haproxy = Haproxy {
            child,
            socket,
            _dir: dir,
            log,
        };
        let up = crate::poll(
            Duration::from_secs(10),
            || haproxy.command("show info").is_ok(),
            |&ok| ok,
        );
        if up.is_err() || haproxy.child.try_wait().ok().flatten().is_some() {
            panic!("haproxy did not start; its log:\n{}", haproxy.log());
        }
        haproxy
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What HAProxy wrote to stderr so far.
    pub fn log(&self) -> String {
        crate::lock(&self.log).clone()
    }

    /// One command on the stats socket, and its whole answer.
    pub fn command(&self, command: &str) -> std::io::Result<String> {
        let mut stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("{command}\n").as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    /// `server` of `backend` as `show stat` has it now.
    pub fn server(&self, backend: &str, server: &str) -> ServerStat {
        let csv = self
            .command("show stat")
            .unwrap_or_else(|e| panic!("show stat: {e}; haproxy's log:\n{}", self.log()));
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .and_then(|h| h.strip_prefix("# "))
            .unwrap_or_else(|| panic!("show stat gave no header: {csv:?}"))
            .split(',')
            .collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .unwrap_or_else(|| panic!("show stat has no {name} column: {header:?}"))
        };
        let (status, current, total) = (column("status"), column("scur"), column("stot"));
        let row: Vec<&str> = lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|row| row.first() == Some(&backend) && row.get(1) == Some(&server))
            .unwrap_or_else(|| panic!("no {backend}/{server} in show stat: {csv}"));
        let number = |i: usize| row.get(i).and_then(|v| v.parse().ok()).unwrap_or(0);
        ServerStat {
            status: row.get(status).unwrap_or(&"").to_string(),
            current: number(current),
            total: number(total),
        }
    }

    /// Waits until `server` is `status` (`UP`, `DOWN`) in every backend; panics with what
    /// HAProxy said when it is not within `timeout`.
    #[track_caller]
    pub fn wait_for(&self, server: &str, status: &str, timeout: Duration) {
        let seen = crate::poll(
            timeout,
            || {
                BACKENDS
                    .iter()
                    .map(|b| self.server(b, server).status)
                    .collect::<Vec<_>>()
            },
            |statuses| statuses.iter().all(|s| s == status),
        );
        if let Err(statuses) = seen {
            panic!(
                "{server} is {statuses:?} in {BACKENDS:?}, not {status}, after {timeout:?}; \
                 haproxy's log:\n{}",
                self.log()
            );
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
