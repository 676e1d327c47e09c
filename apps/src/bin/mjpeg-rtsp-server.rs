//! mjpeg-rtsp-server: serves Motion-JPEG clips over RTSP (argument parsing and wiring; the
//! server is `mjpeg_rtsp::server`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mjpeg_rtsp::rtsp::server_auth::{REALM, Secret, password_sha256};
use mjpeg_rtsp::server::access::{Rules, User};
use mjpeg_rtsp::server::config::FileConfig;
use mjpeg_rtsp::server::multicast;
use mjpeg_rtsp::server::stats::StatsFormat;
use mjpeg_rtsp::server::{Config, LiveSpec, PushSpec, TlsFiles};

/// Serves Motion-JPEG clips (.Mjpeg lab files or concatenated JPEG) over RTSP 1.0 with
/// RTP/JPEG (RFC 2435) and RTCP, to standard clients (ffplay, VLC, GStreamer's rtspsrc,
/// mjpeg-player) and to the networking lab's clients.
///
/// Each clip is served at rtsp://HOST:PORT/<file name>; the server prints those URLs when
/// it is ready. With no PATH it serves the bundled sample clip.
#[derive(Parser, Debug)]
#[command(name = "mjpeg-rtsp-server", version)]
struct Args {
    /// A TOML file with the options below and every path (see
    /// config/mjpeg-rtsp-server.toml); flags given here override it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// TCP port for RTSP (0: any free port) [default: 8554]
    #[arg(long)]
    port: Option<u16>,
    /// TCP port for HTTP: MJPEG for browsers at /NAME/stream.mjpg, snapshots at
    /// /NAME/snapshot.jpg, the status page at /, /api/paths, /api/sessions and /metrics
    /// (0: any free port; the URL is printed at start) [default: 8080]
    #[arg(long, value_name = "PORT")]
    http_port: Option<u16>,
    /// Serve no HTTP
    #[arg(long, conflicts_with = "http_port")]
    no_http: bool,
    /// PEM certificate chain: with --tls-key, serves RTSPS on --rtsps-port (media
    /// interleaved in the TLS connection) and HTTPS instead of HTTP on --http-port
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// TCP port for RTSPS, with --tls-cert and --tls-key (0: any free port) [default: 8322]
    #[arg(long, value_name = "PORT")]
    rtsps_port: Option<u16>,
    /// Address to listen on [default: 0.0.0.0]
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Frames per second (clip files do not store a rate; lab servers send 20)
    /// [default: 20]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=240))]
    fps: Option<u32>,
    /// Largest RTP packet in bytes [default: 1400]
    #[arg(long, value_parser = clap::value_parser!(u32).range(200..=65000))]
    mtu: Option<u32>,
    /// Multicast groups for clients that ask for RTP/AVP;multicast: an IPv4 CIDR block
    /// inside 224.0.0.0/4; each path with multicast viewers gets one group of it, shared
    /// by them all [default: 239.255.12.0/24, administratively scoped (RFC 2365)]
    #[arg(long, value_name = "CIDR")]
    multicast_range: Option<String>,
    /// Hops multicast packets may take (1: they stay on the server's network)
    /// [default: 1]
    #[arg(long, value_name = "TTL")]
    multicast_ttl: Option<u8>,
    /// Start over at the end of a clip instead of ending the stream
    #[arg(long = "loop")]
    looping: bool,
    /// Do not send fewer frames to clients that report loss
    #[arg(long)]
    no_adapt: bool,
    /// Loss (percent, from receiver reports) above which a session sends fewer frames
    /// [default: 5]
    #[arg(long)]
    adapt_threshold: Option<f64>,
    /// Seconds without a request or RTCP after which a session ends [default: 60]
    #[arg(long)]
    session_timeout: Option<u64>,
    /// Report on every path and session periodically (see --stats-format, --stats-interval)
    #[arg(long)]
    stats: bool,
    /// How --stats reports: a log line per session, or one JSON object per report on
    /// stdout (schema in the README) [default: text]
    #[arg(long, value_enum)]
    stats_format: Option<StatsFormat>,
    /// Seconds between --stats reports [default: 5]
    #[arg(long, value_parser = positive_seconds)]
    stats_interval: Option<f64>,
    /// Most sessions at once: RTSP sessions, publishers and HTTP MJPEG viewers together
    /// [default: 4096]
    #[arg(long)]
    max_sessions: Option<usize>,
    /// Connections one client address may hold at once, RTSP and HTTP together; past
    /// it, its new connections are closed at once (0: no limit) [default: 100]
    #[arg(long, value_name = "N")]
    max_connections_per_ip: Option<usize>,
    /// A live path: NAME=PIPELINE, a gst-launch description whose output is JPEG images,
    /// served at rtsp://HOST:PORT/NAME (repeatable). For example
    /// cam='v4l2src device=/dev/video0 ! image/jpeg,width=1280,height=720' or
    /// test='videotestsrc is-live=true ! video/x-raw,format=I420 ! jpegenc'
    #[arg(long = "source", value_name = "NAME=PIPELINE", value_parser = name_and_value)]
    sources: Vec<(String, String)>,
    /// A relayed camera: NAME=URL, rtsp://[user:password@]host[:port]/path (UDP, or TCP
    /// when UDP does not get through) or http://[user:password@]host[:port]/path
    /// (multipart MJPEG), pulled once for all viewers while someone watches and served at
    /// rtsp://HOST:PORT/NAME (repeatable). The camera need not be up when the server
    /// starts; a failing one is retried with backoff (1 s doubling to 5 s)
    #[arg(long = "relay", value_name = "NAME=URL", value_parser = name_and_value)]
    relays: Vec<(String, String)>,
    /// Keep live sources running with no viewers (by default a source starts with its
    /// first viewer and stops --linger seconds after the last one leaves)
    #[arg(long)]
    always_on: bool,
    /// Seconds an on-demand live source keeps running after its last viewer leaves
    /// [default: 10]
    #[arg(long, value_parser = positive_seconds)]
    linger: Option<f64>,
    /// A published path: clients publish Motion-JPEG to rtsp://HOST:PORT/NAME with
    /// ANNOUNCE and RECORD (ffmpeg -f rtsp, GStreamer's rtspclientsink), over UDP or TCP;
    /// viewers play it as any live path (repeatable)
    #[arg(long = "publish", value_name = "NAME")]
    publish: Vec<String>,
    /// A new publisher on a path that has one replaces it (the old one is ended) instead
    /// of being refused with 455
    #[arg(long)]
    publish_takeover: bool,
    /// Send a live path to another RTSP server: NAME=URL,
    /// rtsp://[user:password@]host[:port]/path, with ANNOUNCE and RECORD over TCP
    /// interleaved, reconnecting with backoff (1 s doubling to 30 s) for as long as the
    /// server runs (repeatable). NAME is a --source, --relay or --publish path; clips are
    /// not pushed
    #[arg(long = "push", value_name = "NAME=URL", value_parser = name_and_value)]
    pushes: Vec<(String, String)>,
    /// Print the password_sha256 of user NAME for the configuration file's [[users]]
    /// (the hex SHA-256 of NAME:mjpeg-rtsp:PASSWORD), reading the password from the first
    /// line of standard input, and exit
    #[arg(long, value_name = "NAME")]
    hash_password: Option<String>,
    /// More log detail: -v debug, -vv trace (RUST_LOG, when set, takes precedence)
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Clips (.Mjpeg, .mjpeg, .mjpg) or folders of clips
    paths: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(name) = &args.hash_password {
        return hash_password(name);
    }
    mjpeg_rtsp::logging::init("mjpeg-rtsp-server", args.verbose);
    let file = match &args.config {
        Some(path) => match FileConfig::load(path) {
            Ok(file) => file,
            Err(e) => {
                tracing::error!("{e}");
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let config = match config(args, file) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../media/sample.Mjpeg");
    match mjpeg_rtsp::server::run(config, sample) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The flags over the file over the defaults.
fn config(args: Args, file: FileConfig) -> Result<Config, String> {
    let access = access_rules(&file);
    let server = file.server;
    let seconds = |what: &str, value: f64| {
        positive_seconds(&value.to_string()).map_err(|e| format!("{what}: {e}"))
    };
    let stats_interval = seconds(
        "stats_interval",
        args.stats_interval.or(server.stats_interval).unwrap_or(5.0),
    )?;
    let linger = seconds("linger", args.linger.or(server.linger).unwrap_or(10.0))?;
    let always_on = args.always_on || server.always_on.unwrap_or(false);
    // Paths named on the command line replace the file's of the same name.
    let named = |name: &str| {
        args.sources
            .iter()
            .chain(&args.relays)
            .any(|(n, _)| n == name)
            || args.publish.iter().any(|n| n == name)
    };
    let mut sources: Vec<LiveSpec> = Vec::new();
    let mut relays: Vec<LiveSpec> = Vec::new();
    let mut publish: Vec<String> = Vec::new();
    let mut pushes: Vec<PushSpec> = Vec::new();
    for (name, section) in file.paths {
        if named(&name) {
            continue;
        }
        pushes.extend(section.push.iter().map(|url| PushSpec {
            path: name.clone(),
            url: url.clone(),
        }));
        if section.publish == Some(true) {
            publish.push(name);
            continue;
        }
        let spec = |description: String| LiveSpec {
            name: name.clone(),
            description,
            always_on: args.always_on || section.always_on.unwrap_or(always_on),
            linger: Duration::from_secs_f64(section.linger.unwrap_or(linger)),
        };
        match (section.source.clone(), section.relay.clone()) {
            (Some(description), None) => sources.push(spec(description)),
            (None, Some(url)) => relays.push(spec(url)),
            _ => {}
        }
    }
    let from_flag = |(name, description): (String, String)| LiveSpec {
        name,
        description,
        always_on,
        linger: Duration::from_secs_f64(linger),
    };
    sources.extend(args.sources.into_iter().map(from_flag));
    relays.extend(args.relays.into_iter().map(from_flag));
    publish.extend(args.publish);
    pushes.extend(
        args.pushes
            .into_iter()
            .map(|(path, url)| PushSpec { path, url }),
    );
    check_pushes(&pushes, &sources, &relays, &publish)?;
    let mut paths = file.clips;
    paths.extend(args.paths);
    let stats = args.stats || server.stats.unwrap_or(false);
    let fps = args.fps.or(server.fps).unwrap_or(20);
    if !(1..=240).contains(&fps) {
        return Err(format!("fps {fps}: from 1 to 240"));
    }
    let mtu = args.mtu.or(server.mtu).unwrap_or(1400);
    if !(200..=65000).contains(&mtu) {
        return Err(format!("mtu {mtu}: from 200 to 65000"));
    }
    let tls = match (
        args.tls_cert.or(server.tls_cert),
        args.tls_key.or(server.tls_key),
    ) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    if tls.is_none() && args.rtsps_port.is_some() {
        return Err("--rtsps-port needs --tls-cert and --tls-key".into());
    }
    let multicast_range = match (&args.multicast_range, &server.multicast_range) {
        (Some(range), _) => {
            multicast::parse_range(range).map_err(|e| format!("--multicast-range {e}"))?
        }
        (None, Some(range)) => {
            multicast::parse_range(range).map_err(|e| format!("multicast_range {e}"))?
        }
        (None, None) => multicast::Settings::default().range,
    };
    let multicast = multicast::Settings {
        range: multicast_range,
        ttl: args
            .multicast_ttl
            .or(server.multicast_ttl)
            .unwrap_or(multicast::DEFAULT_TTL),
    };
    Ok(Config {
        multicast,
        tls,
        rtsps_port: args.rtsps_port.or(server.rtsps_port).unwrap_or(8322),
        bind: args
            .bind
            .or(server.bind)
            .unwrap_or(IpAddr::from([0, 0, 0, 0])),
        port: args.port.or(server.port).unwrap_or(8554),
        http_port: match (args.no_http, args.http_port) {
            (true, _) => None,
            (false, Some(port)) => Some(port),
            (false, None) if server.http == Some(false) => None,
            (false, None) => Some(server.http_port.unwrap_or(8080)),
        },
        fps,
        mtu,
        looping: args.looping || server.looping.unwrap_or(false),
        adapt: !args.no_adapt && server.adapt.unwrap_or(true),
        adapt_threshold: args
            .adapt_threshold
            .or(server.adapt_threshold)
            .unwrap_or(5.0)
            / 100.0,
        session_timeout: Duration::from_secs(
            args.session_timeout
                .or(server.session_timeout)
                .unwrap_or(60)
                .max(1),
        ),
        stats_interval: stats.then(|| Duration::from_secs_f64(stats_interval)),
        stats_format: args
            .stats_format
            .or(server.stats_format.map(StatsFormat::from))
            .unwrap_or_default(),
        max_sessions: args.max_sessions.or(server.max_sessions).unwrap_or(4096),
        max_connections_per_ip: args
            .max_connections_per_ip
            .or(server.max_connections_per_ip)
            .unwrap_or(mjpeg_rtsp::server::per_ip::DEFAULT_MAX),
        paths,
        sources,
        relays,
        publish,
        publish_takeover: args.publish_takeover || server.publish_takeover.unwrap_or(false),
        pushes,
        access,
    })
}

/// Every push names a live path and an `rtsp://` URL (nothing connects yet).
fn check_pushes(
    pushes: &[PushSpec],
    sources: &[LiveSpec],
    relays: &[LiveSpec],
    publish: &[String],
) -> Result<(), String> {
    for push in pushes {
        let name = &push.path;
        let live = sources.iter().chain(relays).any(|s| s.name == *name)
            || publish.iter().any(|p| p == name);
        if !live {
            return Err(format!(
                "--push {name}=...: no live path is named {name} (a --source, --relay or --publish path; clips are not pushed)"
            ));
        }
        mjpeg_rtsp::server::live::push::parse_url(&push.url)
            .map_err(|e| format!("--push {name}: {e:#}"))?;
    }
    Ok(())
}

/// The users of the file, and its public paths: `[server] public_paths` and the
/// `[paths.NAME]` with `public = true`.
fn access_rules(file: &FileConfig) -> Rules {
    let users = file.users.iter().map(|u| User {
        name: u.name.clone(),
        // `FileConfig::load` checked that exactly one is there.
        secret: match (&u.password, &u.password_sha256) {
            (Some(password), _) => Secret::Plain(password.clone()),
            (None, hash) => Secret::Sha256(hash.clone().unwrap_or_default().to_ascii_lowercase()),
        },
        read: u.read.clone(),
        publish: u.publish.clone(),
    });
    let public = file.server.public_paths.iter().cloned().chain(
        file.paths
            .iter()
            .filter(|(_, section)| section.public == Some(true))
            .map(|(name, _)| name.clone()),
    );
    Rules {
        users: users.collect(),
        public: public.collect(),
    }
}

/// `--hash-password NAME`: the password from stdin's first line (without its line end).
fn hash_password(name: &str) -> ExitCode {
    if name.is_empty() || name.contains(':') {
        eprintln!("mjpeg-rtsp-server: a user name must be non-empty, without ':'");
        return ExitCode::from(2);
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("mjpeg-rtsp-server: cannot read the password from standard input: {e}");
        return ExitCode::from(2);
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    println!("{}", password_sha256(name, REALM, password));
    ExitCode::SUCCESS
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.05..=86_400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.05 to 86400"
        )),
    }
}

fn name_and_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() && !value.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("{text:?} is not NAME=PIPELINE")),
    }
}
