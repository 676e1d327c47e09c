//! HTTP MJPEG viewers and snapshots.
//!
//! A viewer's response is `multipart/x-mixed-replace`: each part one whole JPEG with its
//! `Content-Type`, `Content-Length` and `X-Timestamp` (when the frame was made, Unix
//! seconds), and the boundary right after it, so that a browser shows a frame as soon as
//! it has arrived. The JPEG goes out as the frame's own memory, never copied.
//!
//! hyper asks for the next part only when the socket has taken the previous one, and
//! the viewer then takes the newest frame: of a live path, the one its source made last;
//! of a clip, the one due at the viewer's position on the clip's clock. The frames it
//! passed over are counted (`frames_dropped`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::{Body, full};
use crate::server::Server;
use crate::server::live::{HttpViewing, LiveFrame};
use crate::server::media::{Clip, Media};
use crate::server::stats::SessionStats;

/// The multipart boundary.
const BOUNDARY: &str = "mjpegframe";
const CONTENT_TYPE: &str = "multipart/x-mixed-replace;boundary=mjpegframe";
/// What every response about a live stream says to caches: never keep it.
const NO_STORE: &str = "no-store, no-cache, must-revalidate, max-age=0";

/// An HTTP viewer, as the statistics and the status page see it.
pub struct HttpViewer {
    pub id: String,
    pub client: SocketAddr,
    pub path: String,
    pub started: Instant,
    pub frames_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Frames passed over because the socket could not take them in time.
    pub frames_skipped: AtomicU64,
    /// The clip frame sent last (0 for a live path).
    pub frame: AtomicU64,
    /// Since when (ms after `started`, plus one; 0: not writing) the socket has not taken
    /// the piece handed to it.
    writing_since: AtomicU64,
    /// Ends the viewer's connection (told when it stalled).
    pub cancel: Arc<tokio::sync::Notify>,
    /// It was ended for taking nothing for too long.
    pub stalled: std::sync::atomic::AtomicBool,
}

impl HttpViewer {
    pub fn new(
        id: String,
        client: SocketAddr,
        path: &str,
        cancel: Arc<tokio::sync::Notify>,
    ) -> HttpViewer {
        HttpViewer {
            id,
            client,
            path: path.to_string(),
            started: Instant::now(),
            frames_sent: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            frames_skipped: AtomicU64::new(0),
            frame: AtomicU64::new(0),
            writing_since: AtomicU64::new(0),
            cancel,
            stalled: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn millis(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }

    /// How long its socket has not taken what was handed to it (`None` while it waits
    /// for a frame).
    pub fn stalled_for(&self) -> Option<std::time::Duration> {
        let since = self.writing_since.load(Ordering::Relaxed);
        (since != 0).then(|| std::time::Duration::from_millis(self.millis().saturating_sub(since)))
    }

    pub fn snapshot(&self) -> SessionStats {
        SessionStats {
            id: self.id.clone(),
            client: self.client.to_string(),
            path: self.path.clone(),
            dialect: "http",
            transport: "http",
            duration_s: (self.started.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            fps: None,
            state: "playing",
            ended: false,
            frame: self.frame.load(Ordering::Relaxed) as usize,
            frames_sent: self.frames_sent.load(Ordering::Relaxed),
            frames_dropped: self.frames_skipped.load(Ordering::Relaxed),
            packets_sent: self.frames_sent.load(Ordering::Relaxed),
            octets_sent: self.bytes_sent.load(Ordering::Relaxed),
            decimation: 1,
            receiver_report: None,
            rtcp_byes: 0,
            rtcp_malformed: 0,
            multicast: None,
        }
    }
}

/// A JPEG as hyper sends it: the frame's own memory, kept alive by the frame.
struct LiveJpeg(Arc<LiveFrame>);

impl AsRef<[u8]> for LiveJpeg {
    fn as_ref(&self) -> &[u8] {
        self.0.jpeg.as_slice()
    }
}

struct ClipJpeg(Arc<Clip>, usize);

impl AsRef<[u8]> for ClipJpeg {
    fn as_ref(&self) -> &[u8] {
        self.0.frames[self.1].jpeg.as_slice()
    }
}

/// Where a viewer's frames come from.
enum Source {
    Live {
        frames: tokio::sync::watch::Receiver<Option<Arc<LiveFrame>>>,
        /// The number of the frame sent last.
        last: Option<u64>,
        /// Keeps an on-demand source running.
        _watching: HttpViewing,
    },
    Clip {
        clip: Arc<Clip>,
        /// The clip frame at the viewer's start, and when it was due.
        start: usize,
        origin: tokio::time::Instant,
        /// Frames of the clip's clock counted from `start` that were sent or passed.
        next: u64,
        looping: bool,
    },
}

/// One frame to send.
enum Picture {
    /// A live frame, as the part every viewer of the path sends.
    Part(Bytes),
    /// A clip's frame; `last` ends the stream after it.
    Clip { jpeg: Bytes, last: bool },
}

/// A JPEG's part headers. The JPEG follows, then at once the next part's delimiter, so
/// that a browser shows the frame without waiting for the next one.
fn part_head(jpeg_len: usize, made: SystemTime) -> String {
    let unix = made
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    format!(
        "Content-Type: image/jpeg\r\nContent-Length: {jpeg_len}\r\nX-Timestamp: {unix:.6}\r\n\r\n"
    )
}

/// A live frame's part, made once for all its HTTP viewers (one copy of the JPEG per
/// frame, whatever the number of viewers).
fn live_part(frame: &LiveFrame) -> Bytes {
    frame
        .http_part
        .get_or_init(|| {
            let jpeg = frame.jpeg.as_slice();
            let head = part_head(jpeg.len(), frame.made_wall);
            let tail = format!("\r\n--{BOUNDARY}\r\n");
            let mut part = Vec::with_capacity(head.len() + jpeg.len() + tail.len());
            part.extend_from_slice(head.as_bytes());
            part.extend_from_slice(jpeg);
            part.extend_from_slice(tail.as_bytes());
            Bytes::from(part)
        })
        .clone()
}

/// A viewer's stream: its source and its place in the statistics.
struct Stream {
    source: Source,
    viewer: Arc<HttpViewer>,
    server: Weak<Server>,
    /// Parts of the current frame not yet handed to hyper.
    pending: Vec<Bytes>,
    done: bool,
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(server) = self.server.upgrade() {
            let why = if self.done {
                "end of the clip"
            } else if self.viewer.stalled.load(Ordering::Relaxed) {
                "stalled (its socket took nothing)"
            } else {
                "disconnected"
            };
            server.end_http_viewer(&self.viewer, why);
        }
    }
}

impl Stream {
    /// Waits for the next frame to send; `None` at the end of a clip.
    async fn next_picture(&mut self) -> Option<Picture> {
        match &mut self.source {
            Source::Live { frames, last, .. } => loop {
                let frame = frames.borrow_and_update().clone();
                if let Some(frame) = frame
                    && last.is_none_or(|n| frame.number > n)
                {
                    if let Some(n) = *last {
                        self.viewer
                            .frames_skipped
                            .fetch_add(frame.number - n - 1, Ordering::Relaxed);
                    }
                    *last = Some(frame.number);
                    return Some(Picture::Part(live_part(&frame)));
                }
                frames.changed().await.ok()?;
            },
            Source::Clip {
                clip,
                start,
                origin,
                next,
                looping,
            } => {
                let fps = f64::from(clip.fps);
                let len = clip.frames.len() as u64;
                let due_at = |k: u64| *origin + std::time::Duration::from_secs_f64(k as f64 / fps);
                // Not yet due: wait for it.
                tokio::time::sleep_until(due_at(*next)).await;
                // Late (the socket was slow): the one due now, passing over the others.
                let elapsed = tokio::time::Instant::now().saturating_duration_since(*origin);
                let mut due = ((elapsed.as_secs_f64() * fps) as u64).max(*next);
                if !*looping {
                    // Passed the end while waiting: the last frame still closes the stream
                    // (frames past the end were never there to skip).
                    due = due.min(len - 1 - *start as u64);
                }
                let absolute = *start as u64 + due;
                self.viewer
                    .frames_skipped
                    .fetch_add(due - *next, Ordering::Relaxed);
                *next = due + 1;
                let index = (absolute % len) as usize;
                self.viewer.frame.store(index as u64, Ordering::Relaxed);
                Some(Picture::Clip {
                    jpeg: Bytes::from_owner(ClipJpeg(clip.clone(), index)),
                    last: !*looping && absolute + 1 >= len,
                })
            }
        }
    }

    /// The next piece of the body. hyper asks for it once the previous one has (nearly)
    /// left, so the time between handing a piece out and the next call is how long the
    /// socket has been stuck.
    async fn next_piece(&mut self) -> Option<Bytes> {
        self.viewer.writing_since.store(0, Ordering::Relaxed);
        let piece = self.take_piece().await;
        if piece.is_some() {
            self.viewer
                .writing_since
                .store(self.viewer.millis(), Ordering::Relaxed);
        }
        piece
    }

    async fn take_piece(&mut self) -> Option<Bytes> {
        if let Some(piece) = self.pending.pop() {
            return Some(piece);
        }
        if self.done {
            return None;
        }
        let pieces = match self.next_picture().await? {
            Picture::Part(part) => vec![part],
            Picture::Clip { jpeg, last } => {
                let head = Bytes::from(part_head(jpeg.len(), SystemTime::now()));
                let tail = if last {
                    // The stream just ends: ffmpeg's reader calls a close delimiter (RFC
                    // 2046's `--boundary--`) invalid data, and every reader takes the end
                    // as the last part's end.
                    self.done = true;
                    Bytes::from_static(b"\r\n")
                } else {
                    Bytes::from(format!("\r\n--{BOUNDARY}\r\n"))
                };
                vec![head, jpeg, tail]
            }
        };
        self.viewer.frames_sent.fetch_add(1, Ordering::Relaxed);
        let bytes: usize = pieces.iter().map(Bytes::len).sum();
        self.viewer
            .bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
        // Popped from the end: the first piece goes first.
        self.pending = pieces;
        self.pending.reverse();
        self.pending.pop()
    }
}

/// The headers of a stream, for HEAD.
pub fn head() -> Response<Body> {
    stream_response(full(Bytes::new()))
}

fn stream_response(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Starts a viewer of `media` (a clip from `t` seconds).
pub fn start(
    server: &Arc<Server>,
    media: Media,
    t: f64,
    peer: SocketAddr,
    cancel: Arc<tokio::sync::Notify>,
) -> Response<Body> {
    let viewer = server.add_http_viewer(peer, media.name(), cancel);
    let source = match media {
        Media::Live(live) => Source::Live {
            frames: live.frames(),
            last: None,
            _watching: live.join_http(),
        },
        Media::Clip(clip) => Source::Clip {
            start: clip.frame_at(t).unwrap_or(0),
            clip,
            origin: tokio::time::Instant::now(),
            next: 0,
            looping: server.config.looping,
        },
    };
    let stream = Stream {
        source,
        viewer,
        server: Arc::downgrade(server),
        pending: vec![Bytes::from(format!("--{BOUNDARY}\r\n"))],
        done: false,
    };
    let body = stream::unfold(stream, |mut stream| async move {
        let piece = stream.next_piece().await?;
        Some((Ok::<_, Infallible>(Frame::data(piece)), stream))
    });
    stream_response(StreamBody::new(body).boxed_unsync())
}

fn jpeg_response(jpeg: Bytes) -> Response<Body> {
    let mut response = Response::new(full(jpeg));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg"));
    response
}

/// A live path's latest frame: never cached (the next request wants a newer one).
pub fn live_snapshot(frame: &Arc<LiveFrame>) -> Response<Body> {
    let made = frame.made_wall;
    let mut response = jpeg_response(Bytes::from_owner(LiveJpeg(frame.clone())));
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{:.6}",
        made.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
    )) {
        headers.insert("x-timestamp", value);
    }
    response
}

/// A clip's frame: the same bytes for as long as the server runs, so caches may keep it
/// and revalidate it by its tag (a restarted server may serve another file by that name).
pub fn clip_snapshot(clip: &Arc<Clip>, frame: usize, request: &HeaderMap) -> Response<Body> {
    let jpeg = Bytes::from_owner(ClipJpeg(clip.clone(), frame));
    let tag = format!("\"{frame}-{:016x}\"", fnv1a(&jpeg));
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // Weak comparison (RFC 9110 13.1.2): a `W/` tag matches too.
            v.split(',')
                .map(|t| t.trim())
                .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
        });
    let mut response = if matches {
        let mut response = Response::new(full(Bytes::new()));
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        response
    } else {
        jpeg_response(jpeg)
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&tag) {
        headers.insert(header::ETAG, value);
    }
    response
}

/// FNV-1a, 64 bits: an entity tag that changes with the bytes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
