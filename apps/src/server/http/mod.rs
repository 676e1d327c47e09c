//! HTTP, for browsers and dashboards (hyper, on the control plane's tokio runtime):
//! - `/NAME/stream.mjpg`: Motion-JPEG as `multipart/x-mixed-replace`, one whole JPEG per
//!   part, for `<img>`, ffplay, VLC, OpenCV and Home Assistant (`viewer.rs`);
//! - `/NAME/snapshot.jpg`: the latest frame (a clip's at `?t=`);
//! - `/`: the status page, which reads `/api/paths` and `/api/sessions` every second;
//! - `/metrics`: Prometheus text (`metrics.rs`).
//!
//! A viewer never has more than one frame waiting: the kernel keeps little unsent data
//! per socket (`TCP_NOTSENT_LOWAT`) and hyper little in its buffer, so a viewer asks for
//! its next part only when the previous one has nearly left, and then gets the newest
//! frame. A slow viewer gets fewer, newer frames; it never falls behind and never holds
//! memory beyond the frame being written.

pub mod api;
pub mod metrics;
pub mod viewer;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::Server;
use super::access::{Decision, Right};
use super::media::Media;

/// A request's head must arrive whole within this time.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
/// hyper's buffer, each way: a request head larger than this is refused (431), and a
/// response's buffered bytes beyond it wait for the socket (so at most one frame is
/// ever queued per viewer).
const BUFFER: usize = 16 * 1024;
/// Unsent bytes the kernel keeps per viewer before the socket stops taking more.
const NOTSENT_LOWAT: u32 = 16 * 1024;
/// A viewer whose socket takes nothing for this long is closed (as RTSP's writers).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a snapshot of a live path whose source is not up waits for a frame.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Accepts HTTP connections (HTTPS with `tls`) until the runtime ends.
pub async fn serve(server: Arc<Server>, listener: TcpListener, tls: Option<TlsAcceptor>) {
    super::connection::accept_each(&listener, "HTTP", server.per_ip.clone(), |stream, peer| {
        let server = server.clone();
        let tls = tls.clone();
        async move {
            let _ = stream.set_nodelay(true);
            limit_unsent(&stream);
            match tls {
                None => connection(server, stream, peer).await,
                Some(tls) => {
                    if let Some(stream) =
                        super::connection::handshake(&tls, stream, peer, "HTTPS").await
                    {
                        connection(server, stream, peer).await
                    }
                }
            }
        }
    })
    .await;
}

/// One HTTP connection, over TCP or TLS.
async fn connection<S>(server: Arc<Server>, stream: S, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Told when the connection's viewer stalled: the connection is then dropped.
    let cancel = Arc::new(tokio::sync::Notify::new());
    let service = {
        let cancel = cancel.clone();
        hyper::service::service_fn(move |request| {
            let server = server.clone();
            let cancel = cancel.clone();
            async move { Ok::<_, Infallible>(respond(&server, request, peer, cancel).await) }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_DEADLINE)
        .max_buf_size(BUFFER)
        .max_headers(64)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(e) = result {
                tracing::debug!("HTTP {peer}: {e}");
            }
        }
        _ = cancel.notified() => {}
    }
}

/// Keeps the kernel's unsent data per viewer small, so that a frame is not taken from a
/// viewer's socket long before it can leave.
#[cfg(target_os = "linux")]
fn limit_unsent(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let value = NOTSENT_LOWAT as libc::c_int;
    // SAFETY: a valid socket, and a c_int option of the right size.
    let result = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result != 0 {
        tracing::debug!("TCP_NOTSENT_LOWAT: {}", std::io::Error::last_os_error());
    }
}

#[cfg(not(target_os = "linux"))]
fn limit_unsent(_stream: &TcpStream) {}

/// What a request asks for.
#[derive(Debug, PartialEq)]
enum Route {
    Page,
    Paths,
    Sessions,
    Metrics,
    Stream(String),
    Snapshot(String),
}

/// Why a request is refused.
#[derive(Debug, PartialEq, thiserror::Error)]
enum Refused {
    #[error("nothing here")]
    NotFound,
    #[error("no path named {0:?}")]
    NoPath(String),
    #[error("not a plain path name (directories, `..` and encoded slashes are refused)")]
    BadName,
    #[error("{0}")]
    BadQuery(String),
    #[error("only GET and HEAD")]
    Method,
    #[error("the server is at its --max-sessions")]
    Full,
    #[error("the source has no frame yet; try again")]
    NoFrame,
    #[error("credentials needed")]
    Unauthorized { stale: bool },
    #[error("this user may not read this path")]
    Forbidden,
    #[error("too many failed logins from this address; try again later")]
    Throttled,
}

impl Refused {
    fn status(&self) -> StatusCode {
        match self {
            Refused::NotFound | Refused::NoPath(_) => StatusCode::NOT_FOUND,
            Refused::BadName | Refused::BadQuery(_) => StatusCode::BAD_REQUEST,
            Refused::Method => StatusCode::METHOD_NOT_ALLOWED,
            Refused::Full | Refused::NoFrame => StatusCode::SERVICE_UNAVAILABLE,
            Refused::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Refused::Forbidden => StatusCode::FORBIDDEN,
            Refused::Throttled => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// Reads a request's path (as sent: percent-encoded).
fn route(path: &str) -> Result<Route, Refused> {
    match path {
        "/" | "/index.html" => return Ok(Route::Page),
        "/api/paths" => return Ok(Route::Paths),
        "/api/sessions" => return Ok(Route::Sessions),
        "/metrics" => return Ok(Route::Metrics),
        _ => {}
    }
    let rest = path.strip_prefix('/').ok_or(Refused::NotFound)?;
    let (name, endpoint) = rest.rsplit_once('/').ok_or(Refused::NotFound)?;
    if endpoint != "stream.mjpg" && endpoint != "snapshot.jpg" {
        return Err(Refused::NotFound);
    }
    // One plain name: no folders, no `..`, no escaped slash.
    if name.contains('/') {
        return Err(Refused::BadName);
    }
    let target = crate::rtsp::path::target(&format!("/{name}")).map_err(|_| Refused::BadName)?;
    if target.media {
        return Err(Refused::BadName);
    }
    Ok(match endpoint {
        "stream.mjpg" => Route::Stream(target.clip),
        _ => Route::Snapshot(target.clip),
    })
}

/// `?t=SECONDS`: where a clip starts (0 without it).
fn start_time(query: Option<&str>) -> Result<f64, Refused> {
    let mut t = 0.0;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "t" {
            t = value
                .parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| Refused::BadQuery(format!("t={value}: not a number of seconds")))?;
        }
    }
    Ok(t)
}

async fn respond(
    server: &Arc<Server>,
    request: Request<Incoming>,
    peer: SocketAddr,
    cancel: Arc<tokio::sync::Notify>,
) -> Response<Body> {
    let answer = answer(server, &request, peer, cancel).await;
    match answer {
        Ok(response) => response,
        Err(refused) => {
            if refused.status().is_server_error() {
                tracing::debug!(
                    "HTTP {peer}: {} {}: {refused}",
                    request.method(),
                    request.uri().path()
                );
            }
            let mut response = text(refused.status(), format!("{refused}\n"));
            if refused == Refused::Method {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            if refused.status() == StatusCode::SERVICE_UNAVAILABLE {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            if refused == Refused::Throttled {
                let seconds = HeaderValue::from(super::access::BLOCK.as_secs());
                response.headers_mut().insert(header::RETRY_AFTER, seconds);
            }
            if let Refused::Unauthorized { stale } = refused {
                for challenge in server.access.challenges(stale) {
                    if let Ok(value) = HeaderValue::try_from(challenge) {
                        response
                            .headers_mut()
                            .append(header::WWW_AUTHENTICATE, value);
                    }
                }
            }
            response
        }
    }
}

async fn answer(
    server: &Arc<Server>,
    request: &Request<Incoming>,
    peer: SocketAddr,
    cancel: Arc<tokio::sync::Notify>,
) -> Result<Response<Body>, Refused> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return Err(Refused::Method);
    }
    let head = request.method() == Method::HEAD;
    let media = |name: &str| {
        server
            .paths
            .get(name)
            .cloned()
            .ok_or_else(|| Refused::NoPath(name.to_string()))
    };
    let route = route(request.uri().path());
    authorize(server, request, peer, &route)?;
    match route? {
        Route::Page => Ok(page()),
        Route::Paths => Ok(json(api::paths(server)).await),
        Route::Sessions => Ok(json(api::sessions(server)).await),
        Route::Metrics => Ok(metrics::response(server).await),
        Route::Stream(name) => {
            let media = media(&name)?;
            let t = start_time(request.uri().query())?;
            if let Media::Clip(clip) = &media
                && clip.frame_at(t).is_none()
            {
                return Err(Refused::BadQuery(format!(
                    "t={t}: past the clip's end ({:.2} s)",
                    clip.duration()
                )));
            }
            if head {
                return Ok(viewer::head());
            }
            if server.at_capacity() {
                return Err(Refused::Full);
            }
            Ok(viewer::start(server, media, t, peer, cancel))
        }
        Route::Snapshot(name) => {
            let t = start_time(request.uri().query())?;
            match media(&name)? {
                Media::Clip(clip) => {
                    let frame = clip.frame_at(t).ok_or_else(|| {
                        Refused::BadQuery(format!(
                            "t={t}: past the clip's end ({:.2} s)",
                            clip.duration()
                        ))
                    })?;
                    Ok(viewer::clip_snapshot(&clip, frame, request.headers()))
                }
                Media::Live(live) => {
                    let frame = match live.latest() {
                        Some(frame) => frame,
                        None => {
                            let _watching = live.join_http();
                            let mut frames = live.frames();
                            let wait = async {
                                loop {
                                    if frames.changed().await.is_err() {
                                        return None;
                                    }
                                    if let Some(frame) = frames.borrow_and_update().clone() {
                                        return Some(frame);
                                    }
                                }
                            };
                            tokio::time::timeout(SNAPSHOT_WAIT, wait)
                                .await
                                .ok()
                                .flatten()
                                .ok_or(Refused::NoFrame)?
                        }
                    };
                    Ok(viewer::live_snapshot(&frame))
                }
            }
        }
    }
}

/// With users, whether the request's credentials allow reading its path (streams and
/// snapshots) or, for the other pages (and unknown ones, so that nothing is learnt without
/// credentials), whether they name any user.
fn authorize(
    server: &Server,
    request: &Request<Incoming>,
    peer: SocketAddr,
    route: &Result<Route, Refused>,
) -> Result<(), Refused> {
    if !server.access.enabled() {
        return Ok(());
    }
    let path = match route {
        Ok(Route::Stream(name) | Route::Snapshot(name)) => Some(name.as_str()),
        _ => None,
    };
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let decision = server.access.check(
        peer.ip(),
        authorization,
        request.method().as_str(),
        path,
        Right::Read,
    );
    match decision {
        Decision::Allow => Ok(()),
        Decision::Challenge { stale } => Err(Refused::Unauthorized { stale }),
        Decision::Forbidden => Err(Refused::Forbidden),
        Decision::Throttled => Err(Refused::Throttled),
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serialized off the control plane's thread: with thousands of sessions and their
/// history, the text is megabytes.
async fn json<T: serde::Serialize + Send + 'static>(value: T) -> Response<Body> {
    let body = tokio::task::spawn_blocking(move || serde_json::to_vec(&value))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    match body {
        Ok(body) => {
            let mut response = Response::new(full(body));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

/// The status page: one file, no outside assets.
fn page() -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(
        include_str!("status.html").as_bytes(),
    )));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/"), Ok(Route::Page));
        assert_eq!(route("/metrics"), Ok(Route::Metrics));
        assert_eq!(route("/api/paths"), Ok(Route::Paths));
        assert_eq!(route("/cam/stream.mjpg"), Ok(Route::Stream("cam".into())));
        assert_eq!(
            route("/my%20clip.Mjpeg/snapshot.jpg"),
            Ok(Route::Snapshot("my clip.Mjpeg".into()))
        );
        assert_eq!(route("/cam/other"), Err(Refused::NotFound));
        assert_eq!(route("/cam"), Err(Refused::NotFound));
        assert_eq!(route("nothing"), Err(Refused::NotFound));
        for trick in [
            "/../stream.mjpg",
            "/a/../stream.mjpg",
            "/a%2Fb/stream.mjpg",
            "/a%2fb/snapshot.jpg",
            "/%2e%2e/stream.mjpg",
            "/a%5Cb/stream.mjpg",
            "/a%00/stream.mjpg",
            "/%ff/stream.mjpg",
            "/%zz/stream.mjpg",
            "//stream.mjpg",
        ] {
            assert!(
                matches!(route(trick), Err(Refused::BadName)),
                "{trick}: {:?}",
                route(trick)
            );
        }
    }

    #[test]
    fn start_times() {
        assert_eq!(start_time(None), Ok(0.0));
        assert_eq!(start_time(Some("t=2.5")), Ok(2.5));
        assert_eq!(start_time(Some("x=1&t=3")), Ok(3.0));
        for bad in ["t=-1", "t=nan", "t=inf", "t=", "t=abc"] {
            assert!(start_time(Some(bad)).is_err(), "{bad}");
        }
    }
}
