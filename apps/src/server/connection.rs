//! The control plane: accepting connections, reading requests with deadlines, writing
//! replies (and interleaved packets) in the connection's dialect, session timeouts,
//! `--stats`, Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtsp_types::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::Server;
use super::handler::Connection;
use super::per_ip::PerIp;
use crate::rtsp::request::{self, Framed, MAX_REQUEST};
use crate::rtsp::{Dialect, Reply, lab};

/// A request must arrive whole within this time once it has started.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// A lab request is complete when nothing more arrives for this long.
const LAB_QUIET: Duration = Duration::from_millis(60);
/// A client that does not take its bytes (replies, interleaved packets) for this long is
/// dropped.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// Frames (or replies) queued for a connection's writer.
const WRITER_QUEUE: usize = 64;
/// A TLS handshake (RTSPS, HTTPS) must be over within this time.
pub(super) const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Serves RTSPS: each connection's TLS handshake, then RTSP as over TCP (media
/// interleaved: UDP transports are refused, they would leave the encryption).
pub async fn serve_tls(server: Arc<Server>, listener: TcpListener, tls: TlsAcceptor) {
    accept_each(&listener, "RTSPS", server.per_ip.clone(), |stream, peer| {
        let server = server.clone();
        let tls = tls.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let Ok(local) = stream.local_addr() else {
                return;
            };
            let Some(stream) = handshake(&tls, stream, peer, "RTSPS").await else {
                return;
            };
            let (reader, writer) = tokio::io::split(stream);
            connection(server, reader, writer, peer, local, true).await
        }
    })
    .await;
}

/// The server's side of a TLS handshake, within [`HANDSHAKE_DEADLINE`]; a failure only
/// ends this connection (clients probing with plain text, or refusing our certificate,
/// are common: logged at debug).
pub(super) async fn handshake(
    tls: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    what: &str,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_DEADLINE, tls.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!("{what} {peer}: TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!("{what} {peer}: TLS handshake not done in {HANDSHAKE_DEADLINE:?}");
            None
        }
    }
}

pub async fn serve(server: Arc<Server>, listener: TcpListener) {
    let housekeeping = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                server.expire_sessions();
                server.tend_sources();
                server.log_suppressed();
                server.sample();
            }
        })
    };
    let stats = server.config.stats_interval.map(|every| {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                server.print_stats();
            }
        })
    });
    let accept = accept_each(&listener, "RTSP", server.per_ip.clone(), |stream, peer| {
        let server = server.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let Ok(local) = stream.local_addr() else {
                return;
            };
            let (reader, writer) = stream.into_split();
            connection(server, reader, writer, peer, local, false).await
        }
    });
    tokio::select! {
        _ = accept => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    housekeeping.abort();
    if let Some(stats) = stats {
        stats.abort();
    }
}

/// Accepts connections for ever, each served by a task of its own; an address past
/// `--max-connections-per-ip` has its new ones closed at once.
pub(super) async fn accept_each<F, Fut>(
    listener: &TcpListener,
    what: &str,
    per_ip: Arc<PerIp>,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Some(place) = per_ip.admit(peer.ip()) else {
                    drop(stream);
                    continue;
                };
                let served = serve(stream, peer);
                tokio::spawn(async move {
                    served.await;
                    drop(place);
                });
            }
            Err(e) => {
                // Out of file descriptors, typically: let connections finish first.
                tracing::info!("{what}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// One RTSP connection, over TCP or TLS (`secure`).
async fn connection<R, W>(
    server: Arc<Server>,
    mut reader: R,
    mut writer: W,
    peer: SocketAddr,
    local: SocketAddr,
    secure: bool,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITER_QUEUE);
    let writing = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            match tokio::time::timeout(WRITE_DEADLINE, writer.write_all(&bytes)).await {
                Ok(Ok(())) => {}
                _ => break,
            }
            // TLS keeps what the socket did not take yet: with nothing more queued, push
            // it out (a reply must not wait for the next packet). A no-op over TCP.
            if rx.is_empty()
                && !matches!(
                    tokio::time::timeout(WRITE_DEADLINE, writer.flush()).await,
                    Ok(Ok(()))
                )
            {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut conn = Connection {
        peer,
        local,
        writer: tx.clone(),
        sessions: Vec::new(),
        next_channel: 0,
        announced: None,
        secure,
    };
    let mut dialect = Dialect::Standard;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut partial_since: Option<Instant> = None;
    let mut quiet = false;
    'reading: loop {
        while let Some((framed, used)) = request::next(&buf, quiet) {
            buf.drain(..used.min(buf.len()));
            quiet = false;
            partial_since = None;
            match framed {
                Framed::Request(request) => {
                    dialect = request.dialect;
                    let reply = server.handle(&mut conn, &request);
                    let close = reply.close;
                    if tx
                        .send(reply.into_bytes(dialect, request.cseq))
                        .await
                        .is_err()
                        || close
                    {
                        break 'reading;
                    }
                }
                Framed::Interleaved { channel, data } => {
                    // A publisher's RTP or RTCP, or RTCP from a viewer on its odd channel.
                    if !server.publisher_interleaved(&conn, channel, &data) {
                        interleaved_rtcp(&server, &conn, channel, &data);
                    }
                }
                Framed::Invalid { reason, cseq } => {
                    tracing::info!("{peer}: bad request ({reason}), closing");
                    let mut reply = Reply::new(StatusCode::BadRequest);
                    reply.close = true;
                    let _ = tx.send(reply.into_bytes(dialect, cseq)).await;
                    break 'reading;
                }
            }
        }
        let pending = buf.iter().any(|b| !b.is_ascii_whitespace());
        if !pending {
            partial_since = None;
        }
        let since = *partial_since.get_or_insert_with(Instant::now);
        let wait = if !pending {
            // Idle: a connection without sessions goes after the session timeout.
            if conn.sessions.is_empty() {
                server.config.session_timeout
            } else {
                Duration::from_secs(3600)
            }
        } else if request::Dialect::Lab == dialect || lab::is_lab(&buf).unwrap_or(false) {
            LAB_QUIET
        } else {
            REQUEST_DEADLINE
                .saturating_sub(since.elapsed())
                .max(Duration::from_millis(1))
        };
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout(wait, reader.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                if buf.len() + n > MAX_REQUEST + 4 + 65535 {
                    let reply = Reply::new(StatusCode::RequestMessageBodyTooLarge);
                    let _ = tx.send(reply.into_bytes(dialect, None)).await;
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(_) if pending && since.elapsed() < REQUEST_DEADLINE => quiet = true,
            Err(_) if pending => {
                tracing::info!("{peer}: request not completed in {REQUEST_DEADLINE:?}, closing");
                let _ = tx
                    .send(Reply::new(StatusCode::RequestTimeout).into_bytes(dialect, None))
                    .await;
                break;
            }
            Err(_) => break,
        }
    }
    // Sessions that live in this connection (interleaved, lab) end with it; UDP sessions
    // stay until TEARDOWN or their timeout, as RFC 2326 allows clients to reconnect.
    for id in &conn.sessions {
        if let Some(session) = server.session(id)
            && session.ends_with_connection()
        {
            server.remove_session(id, Some("control connection closed"));
        }
        // A publisher ends with its connection, whatever its transport: its stream is
        // gone with it (ffmpeg and rtspclientsink keep the connection while recording).
        server.end_publisher(id, "control connection closed");
    }
    drop(conn);
    drop(tx);
    let _ = writing.await;
}

fn interleaved_rtcp(server: &Server, conn: &Connection, channel: u8, data: &[u8]) {
    for id in &conn.sessions {
        if let Some(session) = server.session(id)
            && session.rtcp_channel() == Some(channel)
        {
            server.rtcp_for(&session, data);
        }
    }
}
