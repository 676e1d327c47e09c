//! Starting the server: clips and live paths loaded, sockets bound, the threads and the
//! control plane started, then serving until Ctrl-C (or SIGTERM).

use std::collections::HashMap;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::*;

/// Loads the clips, binds the sockets, prints the clips' URLs and serves until Ctrl-C.
pub fn run(config: Config, bundled_sample: PathBuf) -> Result<()> {
    gst::init()?;
    gstmjpegrtp::plugin_register_static()?;
    limits::raise_file_limit();
    // A bad certificate or key stops the server before anything is loaded or bound.
    let tls = match &config.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(
            &files.cert,
            &files.key,
        )?)),
        None => None,
    };
    // With nothing named, the bundled sample; live sources alone serve only themselves.
    let files = if config.paths.is_empty()
        && config.sources.is_empty()
        && config.relays.is_empty()
        && config.publish.is_empty()
    {
        vec![bundled_sample]
    } else {
        config.paths.clone()
    };
    let mut clips = HashMap::new();
    for (name, path) in media::find_clips(&files)? {
        match media::load(&name, &path, config.fps, config.mtu) {
            Ok(clip) => {
                clips.insert(name, clip);
            }
            Err(e) if files.contains(&path) => return Err(e),
            Err(e) => tracing::warn!("not serving {}: {e:#}", path.display()),
        }
    }
    if clips.is_empty()
        && config.sources.is_empty()
        && config.relays.is_empty()
        && config.publish.is_empty()
    {
        bail!(
            "no clips to serve in {}",
            files
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // Each live source runs once before the server opens: a description that does not
    // parse, a missing device or output RFC 2435 cannot carry stops it here.
    let mut source_sizes = Vec::new();
    for spec in &config.sources {
        let (name, description) = (&spec.name, &spec.description);
        if clips.contains_key(name)
            || source_sizes
                .iter()
                .any(|(s, _): &(LiveSpec, _)| s.name == *name)
        {
            bail!("two paths are named {name}");
        }
        crate::rtsp::path::target(name)
            .ok()
            .filter(|t| t.clip == *name)
            .ok_or_else(|| anyhow::anyhow!("--source {name}=...: not a plain path name"))?;
        let size =
            live::source::probe(description, config.mtu, SOURCE_PROBE).with_context(|| {
                format!(
                    "live source {name} ({})",
                    live::relay::redact_text(description)
                )
            })?;
        tracing::info!("path {name}: live source, {}x{}", size.0, size.1);
        source_sizes.push((spec.clone(), size));
    }
    // Relays are only checked for their URL: nothing connects before a viewer comes.
    let mut relays = Vec::new();
    for spec in &config.relays {
        let (name, url) = (&spec.name, &spec.description);
        if clips.contains_key(name)
            || source_sizes
                .iter()
                .any(|(s, _): &(LiveSpec, _)| s.name == *name)
            || relays.iter().any(|(s, _): &(LiveSpec, _)| s.name == *name)
        {
            bail!("two paths are named {name}");
        }
        crate::rtsp::path::target(name)
            .ok()
            .filter(|t| t.clip == *name)
            .ok_or_else(|| anyhow::anyhow!("--relay {name}=...: not a plain path name"))?;
        let url = live::relay::parse_url(url).with_context(|| format!("relay {name}"))?;
        tracing::info!(
            "path {name}: relay of {}",
            live::relay::redact(url.as_str())
        );
        relays.push((spec.clone(), url));
    }
    let (rtp, rtcp) =
        crate::ports::bind_rtp_pair(config.bind).context("binding the RTP/RTCP ports")?;
    limits::size_buffers(&rtp, &rtcp);
    let sockets_ports = (rtp.local_addr()?.port(), rtcp.local_addr()?.port());
    let multicast = multicast::Multicast::new(config.multicast, config.bind);
    multicast
        .prepare_sockets(&[&rtp, &rtcp])
        .context("setting the multicast TTL and interface of the RTP/RTCP sockets")?;
    let rtcp_reader = rtcp.try_clone()?;
    let sockets = Arc::new(Sockets { rtp, rtcp });
    let pacer = Pacer::start(sockets.clone())?;
    let mut paths: HashMap<String, Media> = clips
        .into_iter()
        .map(|(name, clip)| (name, Media::Clip(clip)))
        .collect();
    for (spec, size) in source_sizes {
        let live = LivePath::new(
            spec.name.clone(),
            Box::new(live::PipelineFeeder(spec.description)),
            spec.always_on,
            spec.linger,
            config.mtu,
            pacer.clone(),
            size,
        );
        paths.insert(spec.name, Media::Live(live));
    }
    for (spec, url) in relays {
        // The size is the first frame's: until then 0x0, which DESCRIBE does not need
        // (RFC 2435 headers carry sizes up to 2040).
        let live = LivePath::new(
            spec.name.clone(),
            live::relay::feeder(url, config.bind),
            spec.always_on,
            spec.linger,
            config.mtu,
            pacer.clone(),
            (0, 0),
        );
        paths.insert(spec.name, Media::Live(live));
    }
    let mut publishing = publishing::Publishing::new(config.publish_takeover);
    for name in &config.publish {
        if paths.contains_key(name) {
            bail!("two paths are named {name}");
        }
        crate::rtsp::path::target(name)
            .ok()
            .filter(|t| t.clip == *name)
            .ok_or_else(|| anyhow::anyhow!("--publish {name}: not a plain path name"))?;
        let slot = publishing.add_path(name);
        // Always on: an idle input costs nothing, and the publisher needs it whether or
        // not anyone watches.
        let live = LivePath::new(
            name.clone(),
            Box::new(live::publish::PublishFeeder(slot)),
            true,
            Duration::from_secs(10),
            config.mtu,
            pacer.clone(),
            (0, 0),
        );
        tracing::info!("path {name}: published (ANNOUNCE and RECORD)");
        paths.insert(name.clone(), Media::Live(live));
    }
    let pushes = pushes(&config.pushes, &paths, config.bind)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((config.bind, config.port)))
        .with_context(|| format!("listening on {}:{}", config.bind, config.port))?;
    let port = listener.local_addr()?.port();
    let http_listener = match config.http_port {
        Some(http_port) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind((config.bind, http_port)))
                .with_context(|| {
                    format!(
                        "HTTP: listening on {}:{http_port} (--http-port PORT, or --no-http)",
                        config.bind
                    )
                })?,
        ),
        None => None,
    };
    let rtsps_listener = match &tls {
        Some(_) => Some(
            runtime
                .block_on(tokio::net::TcpListener::bind((
                    config.bind,
                    config.rtsps_port,
                )))
                .with_context(|| {
                    format!(
                        "RTSPS: listening on {}:{} (--rtsps-port PORT)",
                        config.bind, config.rtsps_port
                    )
                })?,
        ),
        None => None,
    };
    let host = match config.bind {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
        IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let per_ip = per_ip::PerIp::new(config.max_connections_per_ip);
    let access = access::Access::new(config.access.clone())?;
    let server = Arc::new(Server {
        config,
        paths,
        sessions: Mutex::default(),
        by_ssrc: Mutex::default(),
        by_rtcp_address: Mutex::default(),
        pacer,
        sockets,
        sockets_ports,
        started: Instant::now(),
        closed: Mutex::default(),
        publishing,
        pushes,
        http_viewers: Mutex::default(),
        next_http_viewer: std::sync::atomic::AtomicU64::new(1),
        ended: Mutex::default(),
        history: Mutex::default(),
        rtsp_port: port,
        per_ip,
        access,
        multicast,
    });
    {
        let mut out = std::io::stdout().lock();
        let mut names: Vec<&String> = server.paths.keys().collect();
        names.sort();
        for name in &names {
            writeln!(
                out,
                "rtsp://{host}:{port}/{}",
                crate::rtsp::path::encode(name)
            )?;
        }
        if let Some(listener) = &rtsps_listener {
            let port = listener.local_addr()?.port();
            for name in &names {
                writeln!(
                    out,
                    "rtsps://{host}:{port}/{}",
                    crate::rtsp::path::encode(name)
                )?;
            }
        }
        // After the RTSP URLs: the status page (streams are at /NAME/stream.mjpg).
        if let Some(listener) = &http_listener {
            let scheme = if tls.is_some() { "https" } else { "http" };
            writeln!(out, "{scheme}://{host}:{}/", listener.local_addr()?.port())?;
        }
        out.flush()?;
    }
    // Once the server is up: a push to this same server finds it listening.
    for push in &server.pushes {
        push.start()?;
    }
    {
        let server = server.clone();
        std::thread::Builder::new()
            .name("rtcp".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                let mut said = false;
                loop {
                    match rtcp_reader.recv_from(&mut buf) {
                        Ok((n, from)) => server.on_rtcp(&buf[..n], from),
                        // An ICMP error for an earlier send, a signal: not a reason to
                        // stop hearing every client's reports.
                        Err(e) => {
                            if !said {
                                tracing::warn!("RTCP socket: {e} (still reading)");
                                said = true;
                            }
                            if !udp::transient(&e) {
                                std::thread::sleep(std::time::Duration::from_millis(10));
                            }
                        }
                    }
                }
            })?;
    }
    runtime.block_on(async {
        if let Some(http_listener) = http_listener {
            tokio::spawn(http::serve(server.clone(), http_listener, tls.clone()));
        }
        if let (Some(listener), Some(tls)) = (rtsps_listener, tls) {
            tokio::spawn(connection::serve_tls(server.clone(), listener, tls));
        }
        connection::serve(server.clone(), listener).await
    });
    server.shutdown();
    Ok(())
}

/// The pushes of `specs`, not started: each names a live path of `paths` and an
/// `rtsp://` URL. Clips are not pushed (they have no shared timeline: each session plays
/// its own position). They connect from `bind` where it can reach the receiver.
fn pushes(
    specs: &[PushSpec],
    paths: &HashMap<String, Media>,
    bind: IpAddr,
) -> Result<Vec<Arc<live::push::Push>>> {
    let mut pushes = Vec::new();
    for spec in specs {
        let name = &spec.path;
        let url = live::push::parse_url(&spec.url).with_context(|| format!("--push {name}"))?;
        let live = match paths.get(name) {
            Some(Media::Live(live)) => live.clone(),
            Some(Media::Clip(_)) => bail!(
                "--push {name}=...: {name} is a clip; only live paths (--source, --relay, --publish) are pushed"
            ),
            None => bail!("--push {name}=...: no path is named {name}"),
        };
        tracing::info!(
            "path {name}: pushed to {}",
            live::relay::redact(url.as_str())
        );
        pushes.push(live::push::Push::new(live, url, bind));
    }
    Ok(pushes)
}
