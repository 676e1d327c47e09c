//! An origin/edge tier in a private network namespace, for the tier's test and benchmark:
//! one origin with a live source, two edges relaying it (`--relay`), HAProxy in front of
//! the edges ([`crate::haproxy`]), each on its own loopback address and on the same ports
//! (RTSP 8554, HTTP 8080), so that a server restarted on its address is found again. Every
//! process is stopped on drop, then the namespace is removed.

use std::time::Duration;

use serde_json::Value;

use crate::haproxy::{HTTP_PORT, Haproxy, RTSP_PORT};
use crate::netns::Netns;
use crate::rtsp::ServerProcess;

pub const ORIGIN: &str = "127.0.1.1";
pub const EDGES: [&str; 2] = ["127.0.1.2", "127.0.1.3"];
pub const BALANCER: &str = "127.0.1.10";
/// The origin's frame rate.
pub const FPS: f64 = 25.0;

/// The origin's live path `cam`: 320x240 test pictures at [`FPS`].
pub const SOURCE: &str = "cam=videotestsrc is-live=true \
     ! video/x-raw,format=I420,width=320,height=240,framerate=25/1 ! jpegenc";

/// What an edge relays: the origin's `cam`.
pub fn relay() -> String {
    format!("cam=rtsp://{ORIGIN}:{RTSP_PORT}/cam")
}

/// The tier. Fields drop in order: HAProxy, the edges, the origin, the namespace.
pub struct Tier {
    pub haproxy: Haproxy,
    /// `None` once killed.
    pub edges: [Option<ServerProcess>; 2],
    pub origin: Option<ServerProcess>,
    pub netns: Netns,
}

impl Tier {
    /// Starts the tier in a new namespace (named after `tag`), the servers with their
    /// `--stats` reports; `edge_args` go to both edges. Returns once HAProxy sees both
    /// edges up.
    pub fn start(tag: &str, edge_args: &[&str]) -> Tier {
        Tier::start_with(tag, SOURCE, edge_args)
    }

    /// [`start`](Self::start) with the origin's `--source` given (`cam=PIPELINE`).
    pub fn start_with(tag: &str, source: &str, edge_args: &[&str]) -> Tier {
        let netns = Netns::new(tag);
        let origin = start_origin_with(&netns, source);
        let edges = EDGES.map(|addr| Some(start_edge(&netns, addr, edge_args)));
        let haproxy = Haproxy::start(&netns, BALANCER, EDGES);
        for server in crate::haproxy::SERVERS {
            haproxy.wait_for(server, "UP", Duration::from_secs(10));
        }
        Tier {
            haproxy,
            edges,
            origin: Some(origin),
            netns,
        }
    }

    /// `rtsp://BALANCER:8554/cam`: what viewers dial.
    pub fn rtsp_url(&self) -> String {
        format!("rtsp://{BALANCER}:{RTSP_PORT}/cam")
    }

    /// `http://BALANCER:8080`.
    pub fn http_base(&self) -> String {
        format!("http://{BALANCER}:{HTTP_PORT}")
    }

    pub fn origin(&self) -> &ServerProcess {
        self.origin.as_ref().expect("the origin runs")
    }

    pub fn edge(&self, i: usize) -> &ServerProcess {
        self.edges[i].as_ref().expect("the edge runs")
    }
}

/// The origin on [`ORIGIN`] with [`SOURCE`], with its `--stats` reports.
pub fn start_origin(netns: &Netns) -> ServerProcess {
    start_origin_with(netns, SOURCE)
}

/// The origin on [`ORIGIN`] with `source` (`cam=PIPELINE`), with its `--stats` reports.
pub fn start_origin_with(netns: &Netns, source: &str) -> ServerProcess {
    let (rtsp, http) = (RTSP_PORT.to_string(), HTTP_PORT.to_string());
    let args = ["--port", &rtsp, "--http-port", &http, "--source", source];
    ServerProcess::start_with_stats_in(netns, ORIGIN, &args, 1)
}

/// An edge on `addr` relaying the origin's `cam`, with its `--stats` reports.
pub fn start_edge(netns: &Netns, addr: &str, extra: &[&str]) -> ServerProcess {
    let (rtsp, http, relay) = (RTSP_PORT.to_string(), HTTP_PORT.to_string(), relay());
    let mut args = vec!["--port", &rtsp, "--http-port", &http, "--relay", &relay];
    args.extend_from_slice(extra);
    ServerProcess::start_with_stats_in(netns, addr, &args, 1)
}

/// Runs the load generator inside `netns` with `args` (`--json` is added) and returns its
/// report; panics with its output when it fails or takes longer than `limit`.
pub fn bench(netns: &Netns, args: &[&str], limit: Duration) -> Value {
    let mut command = netns.command(crate::plugin_dir().join("mjpeg-rtsp-bench"));
    command.args(args).arg("--json");
    let (status, out, err) = crate::run_to_end(&mut command, limit);
    assert!(
        status.success(),
        "mjpeg-rtsp-bench {args:?}: {status}: {err}{out}"
    );
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("mjpeg-rtsp-bench {args:?} printed no JSON ({e}): {out}"))
}

/// The clients of the open sessions on `path` in a `--stats` report (`ADDR:PORT`).
pub fn session_clients(report: &Value, path: &str) -> Vec<String> {
    report["sessions"]
        .as_array()
        .map(|sessions| {
            sessions
                .iter()
                .filter(|s| s["path"] == path)
                .filter_map(|s| s["client"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
