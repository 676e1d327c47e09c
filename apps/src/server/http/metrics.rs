//! `/metrics`: the server in OpenMetrics text (which Prometheus scrapes), written by the
//! `prometheus-client` crate from the same report as `/api`. Counters of RTSP sessions and
//! HTTP viewers that ended are kept per path and transport, so totals never go back.

use http::{HeaderValue, Response, StatusCode, header};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Body, full, text};
use crate::server::Server;
use crate::server::stats::Report;

type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type FloatGauges = Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>;

/// What ended sessions sent, per path and transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub frames: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Frames an HTTP viewer passed over.
    pub skipped: u64,
}

pub async fn response(server: &Server) -> Response<Body> {
    let report = server.stats_now();
    let ended = server.ended_totals();
    // Off the control plane's thread: thousands of sessions make a large text.
    let rendered = tokio::task::spawn_blocking(move || render(&report, &ended)).await;
    match rendered {
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        Ok(rendered) => match rendered {
            Ok(body) => {
                let mut response = Response::new(full(body));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        },
    }
}

fn render(
    report: &Report,
    ended: &[((String, &'static str), Sent)],
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("mjpeg");
    let sessions = Gauges::default();
    let frames_sent = Counters::default();
    let packets_sent = Counters::default();
    let bytes_sent = Counters::default();
    let skipped = Counters::default();
    let http_viewers = Gauges::default();
    let loss = FloatGauges::default();
    let jitter = FloatGauges::default();
    let rtt = FloatGauges::default();
    let source_up = Gauges::default();
    let restarts = Counters::default();
    let frames_in = Counters::default();
    let bytes_in = Counters::default();
    let path_skipped = Counters::default();
    let publishers = Gauges::default();
    let push_up = Gauges::default();
    let push_frames = Counters::default();
    let push_bytes = Counters::default();
    let push_skipped = Counters::default();
    let push_reconnects = Counters::default();
    let push_loss = FloatGauges::default();
    let path_transport = |path: &str, transport: &str| {
        vec![
            ("path", path.to_string()),
            ("transport", transport.to_string()),
        ]
    };
    for ((path, transport), sent) in ended {
        let labels = path_transport(path, transport);
        // A path and transport whose sessions all ended reads 0, not nothing.
        sessions.get_or_create(&labels).set(0);
        frames_sent.get_or_create(&labels).inc_by(sent.frames);
        packets_sent.get_or_create(&labels).inc_by(sent.packets);
        bytes_sent.get_or_create(&labels).inc_by(sent.bytes);
        if *transport == "http" {
            skipped
                .get_or_create(&vec![("path", path.clone())])
                .inc_by(sent.skipped);
        }
    }
    for session in &report.sessions {
        let labels = path_transport(&session.path, session.transport);
        sessions.get_or_create(&labels).inc();
        frames_sent
            .get_or_create(&labels)
            .inc_by(session.frames_sent);
        packets_sent
            .get_or_create(&labels)
            .inc_by(session.packets_sent);
        bytes_sent
            .get_or_create(&labels)
            .inc_by(session.octets_sent);
        if session.transport == "http" {
            skipped
                .get_or_create(&vec![("path", session.path.clone())])
                .inc_by(session.frames_dropped);
        }
        if let Some(r) = session.receiver_report.filter(|r| r.reports > 0) {
            let labels = vec![
                ("session", session.id.clone()),
                ("path", session.path.clone()),
                ("client", session.client.clone()),
            ];
            loss.get_or_create(&labels).set(r.fraction_lost);
            jitter.get_or_create(&labels).set(r.jitter_ms / 1000.0);
            if let Some(ms) = r.rtt_ms {
                rtt.get_or_create(&labels).set(ms / 1000.0);
            }
        }
    }
    // What a multicast group sends counts once, under its viewers' transport.
    for group in &report.multicast_groups {
        let labels = path_transport(&group.path, "multicast");
        frames_sent.get_or_create(&labels).inc_by(group.frames_sent);
        packets_sent
            .get_or_create(&labels)
            .inc_by(group.packets_sent);
        bytes_sent.get_or_create(&labels).inc_by(group.octets_sent);
    }
    for path in &report.paths {
        let labels = vec![("path", path.name.clone()), ("kind", path.kind.to_string())];
        source_up
            .get_or_create(&labels)
            .set(i64::from(path.source == "up"));
        restarts.get_or_create(&labels).inc_by(path.restarts);
        frames_in.get_or_create(&labels).inc_by(path.frames_in);
        bytes_in.get_or_create(&labels).inc_by(path.bytes_in);
        path_skipped
            .get_or_create(&labels)
            .inc_by(path.frames_skipped);
        let path_only = vec![("path", path.name.clone())];
        http_viewers
            .get_or_create(&path_only)
            .set(i64::try_from(path.http_viewers).unwrap_or(i64::MAX));
        // Every path has these, at 0 when nothing watches.
        skipped.get_or_create(&path_only).inc_by(0);
        for push in &path.pushes {
            // The URL as the statistics show it: without credentials.
            let labels = vec![("path", path.name.clone()), ("url", push.url.clone())];
            push_up
                .get_or_create(&labels)
                .set(i64::from(push.state == "recording"));
            push_frames.get_or_create(&labels).inc_by(push.frames_sent);
            push_bytes.get_or_create(&labels).inc_by(push.bytes_sent);
            push_skipped
                .get_or_create(&labels)
                .inc_by(push.frames_skipped);
            push_reconnects
                .get_or_create(&labels)
                .inc_by(push.reconnects);
            if let Some(r) = push.receiver_report.filter(|r| r.reports > 0) {
                push_loss.get_or_create(&labels).set(r.fraction_lost);
            }
        }
    }
    for publisher in &report.publishers {
        publishers
            .get_or_create(&vec![
                ("path", publisher.path.clone()),
                ("transport", publisher.transport.to_string()),
            ])
            .inc();
    }
    registry.register(
        "sessions",
        "Open RTSP sessions and HTTP MJPEG viewers",
        sessions,
    );
    registry.register(
        "frames_sent",
        "Frames sent to viewers (RTSP sessions and HTTP viewers, open and ended)",
        frames_sent,
    );
    registry.register(
        "packets_sent",
        "RTP packets sent (HTTP: multipart parts)",
        packets_sent,
    );
    registry.register(
        "bytes_sent",
        "RTP payload bytes sent (HTTP: body bytes)",
        bytes_sent,
    );
    registry.register(
        "http_viewers",
        "HTTP MJPEG viewers (and snapshots waiting for a frame) of a live path",
        http_viewers,
    );
    registry.register(
        "http_frames_skipped",
        "Frames passed over for HTTP viewers whose socket could not take them in time",
        skipped,
    );
    registry.register(
        "receiver_fraction_lost",
        "Loss in a session's latest RTCP receiver report (0..1)",
        loss,
    );
    registry.register(
        "receiver_jitter_seconds",
        "Interarrival jitter in a session's latest RTCP receiver report",
        jitter,
    );
    registry.register(
        "receiver_rtt_seconds",
        "Round trip from a session's latest RTCP receiver report (LSR/DLSR)",
        rtt,
    );
    registry.register(
        "source_up",
        "1 while a path's source gives frames (a clip: always)",
        source_up,
    );
    registry.register(
        "source_restarts",
        "Times a failed live source was started again",
        restarts,
    );
    registry.register("frames_in", "Frames a path's source produced", frames_in);
    registry.register("bytes_in", "JPEG bytes a path's source produced", bytes_in);
    registry.register(
        "frames_skipped",
        "Live frames not sent to RTSP viewers because a newer one was waiting",
        path_skipped,
    );
    registry.register("publishers", "Publishers recording into a path", publishers);
    registry.register(
        "push_up",
        "1 while a push (--push) records into its receiver",
        push_up,
    );
    registry.register(
        "push_frames_sent",
        "Frames a push sent, over all its connections",
        push_frames,
    );
    registry.register(
        "push_bytes_sent",
        "RTP bytes (headers and payload) a push sent",
        push_bytes,
    );
    registry.register(
        "push_frames_skipped",
        "Frames a push passed over because a newer one was ready",
        push_skipped,
    );
    registry.register(
        "push_reconnects",
        "Connections a push made after a failure",
        push_reconnects,
    );
    registry.register(
        "push_receiver_fraction_lost",
        "Loss in the latest RTCP receiver report of a push's receiver (0..1)",
        push_loss,
    );
    let uptime = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    uptime.set(report.uptime_s);
    registry.register("uptime_seconds", "Seconds since the server started", uptime);
    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}
