//! Publishing (`--publish NAME`): what the server answers to ANNOUNCE, a SETUP with
//! `mode=record` and RECORD, and the table of publisher sessions.
//!
//! - ANNOUNCE on a published path reads its SDP (`rtsp_core::announce`): not JPEG is
//!   415 with the codec named, a description over 8 KiB 413, garbage 400. What it
//!   announced is kept on the connection for the SETUP that follows.
//! - SETUP with `mode=record` claims the path: over UDP the publisher gets a port pair of
//!   its own (`server_port`), over TCP its interleaved channels are read by the
//!   connection. One publisher per path: a second is refused (455) unless
//!   `--publish-takeover`, where the newer one ends the older.
//! - RECORD starts the path's input afresh for the new stream.
//! - ANNOUNCE and RECORD on any other path stay 405.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rtsp_types::StatusCode;

use super::Server;
use super::handler::{Connection, Refusal};
use super::live::LivePath;
use super::live::publish::PublishSlot;
use super::media::Media;
use super::session::publisher::{PublishTransport, Publisher, PublisherStats};
use crate::rtsp::announce::Announced;
use crate::rtsp::{Incoming, Reply, TransportSpec, path, transport};

/// What a connection announced, for its SETUP.
#[derive(Debug, Clone)]
pub struct Announcement {
    pub path: String,
    pub announced: Announced,
}

/// The published paths and their publishers.
#[derive(Default)]
pub struct Publishing {
    /// By path name.
    slots: HashMap<String, Arc<PublishSlot>>,
    /// By session id.
    publishers: Mutex<HashMap<String, Arc<Publisher>>>,
    /// A new publisher replaces the path's current one instead of being refused.
    pub takeover: bool,
}

impl Publishing {
    pub fn new(takeover: bool) -> Publishing {
        Publishing {
            takeover,
            ..Publishing::default()
        }
    }

    /// A published path's slot, to give its feeder.
    pub fn add_path(&mut self, name: &str) -> Arc<PublishSlot> {
        self.slots.entry(name.to_string()).or_default().clone()
    }

    /// Whether the server has published paths (ANNOUNCE and RECORD in `Public`).
    pub fn any(&self) -> bool {
        !self.slots.is_empty()
    }

    pub fn is_published(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Publisher>> {
        lock(&self.publishers).get(id).cloned()
    }

    fn insert(&self, publisher: Arc<Publisher>) {
        lock(&self.publishers).insert(publisher.id.clone(), publisher);
    }

    fn remove(&self, id: &str) -> Option<Arc<Publisher>> {
        lock(&self.publishers).remove(id)
    }

    pub fn all(&self) -> Vec<Arc<Publisher>> {
        lock(&self.publishers).values().cloned().collect()
    }

    pub fn stats(&self) -> Vec<PublisherStats> {
        let mut stats: Vec<PublisherStats> = self.all().iter().map(|p| p.snapshot()).collect();
        stats.sort_by(|a, b| a.id.cmp(&b.id));
        stats
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Server {
    /// A published path named by the request: 405 for any other path (as before
    /// publishing existed), 404 for no path.
    fn published_path(&self, request: &Incoming) -> Result<(String, Arc<LivePath>), Refusal> {
        let url = request.path.as_deref().ok_or(Refusal::NoUrl)?;
        let name = path::target(url)?.clip;
        match self.paths.get(&name) {
            Some(Media::Live(live)) if self.publishing.is_published(&name) => {
                Ok((name, live.clone()))
            }
            Some(_) => Err(Refusal::NotAllowed),
            None => Err(Refusal::NoSuchClip),
        }
    }

    /// Refuses a publisher when the path has one and takeover is off.
    fn check_free(&self, name: &str) -> Result<(), Refusal> {
        let holder = self.publishing.slots.get(name).and_then(|s| s.holder());
        match holder {
            Some(_) if !self.publishing.takeover => Err(Refusal::PathBusy {
                path: name.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// ANNOUNCE (RFC 2326 10.3).
    pub(super) fn announce(
        &self,
        conn: &mut Connection,
        request: &Incoming,
    ) -> Result<Reply, Refusal> {
        let (name, _) = self.published_path(request)?;
        let announced = match &request.announce {
            Some(Ok(announced)) => announced.clone(),
            Some(Err(e)) => return Err(Refusal::Announce(e.clone())),
            None => return Err(Refusal::NotAllowed),
        };
        self.check_free(&name)?;
        tracing::info!(
            "path {name}: ANNOUNCE from {} (JPEG, payload type {})",
            conn.peer,
            announced.payload_type
        );
        conn.announced = Some(Announcement {
            path: name,
            announced,
        });
        Ok(Reply::new(StatusCode::Ok))
    }

    /// SETUP with `mode=record`: a publisher's session on the path it announced.
    pub(super) fn setup_record(
        &self,
        conn: &mut Connection,
        request: &Incoming,
    ) -> Result<Reply, Refusal> {
        let url = request.path.as_deref().ok_or(Refusal::NoUrl)?;
        let announcement = conn.announced.clone().ok_or(Refusal::NotAnnounced)?;
        let name = path::publish_target(url, announcement.announced.control.as_deref())?;
        if name != announcement.path {
            return Err(Refusal::NotAnnounced);
        }
        let (Some(Media::Live(live)), Some(slot)) = (
            self.paths.get(&name),
            self.publishing.slots.get(&name).cloned(),
        ) else {
            return Err(Refusal::NotAllowed);
        };
        let spec = request.transport.clone().ok_or(Refusal::NoTransport)??;
        conn.check_transport(&spec)?;
        if request.session.is_some() {
            // One stream per publisher: JPEG video.
            return Err(Refusal::OneClipPerSession);
        }
        self.check_free(&name)?;
        if self.at_capacity() {
            return Err(Refusal::SessionLimit);
        }
        let id = self.new_session_id(request.dialect);
        let mut reply = Reply::new(StatusCode::Ok);
        let mut sockets = None;
        let transport = match spec {
            TransportSpec::Udp {
                rtp_port,
                rtcp_port,
            } => {
                let (rtp, rtcp) = crate::ports::bind_rtp_pair(conn.local.ip())
                    .map_err(|e| Refusal::Ports(e.to_string()))?;
                let ports = (
                    rtp.local_addr()
                        .map_err(|e| Refusal::Ports(e.to_string()))?
                        .port(),
                    rtcp.local_addr()
                        .map_err(|e| Refusal::Ports(e.to_string()))?
                        .port(),
                );
                let rtcp_send = rtcp
                    .try_clone()
                    .map_err(|e| Refusal::Ports(e.to_string()))?;
                reply = reply.with(&transport::record_udp_reply((rtp_port, rtcp_port), ports));
                sockets = Some((rtp, rtcp));
                PublishTransport::Udp {
                    ports,
                    rtcp_to: rtcp_port
                        .or(rtp_port.checked_add(1))
                        .map(|p| SocketAddr::new(conn.peer.ip(), p)),
                    rtcp: rtcp_send,
                }
            }
            TransportSpec::Tcp { channels } => {
                let channels =
                    channels.unwrap_or((conn.next_channel, conn.next_channel.wrapping_add(1)));
                conn.next_channel = channels.1.wrapping_add(1);
                reply = reply.with(&transport::record_tcp_reply(channels));
                PublishTransport::Tcp {
                    channels,
                    writer: conn.writer.clone(),
                }
            }
            TransportSpec::Lab { .. } => {
                return Err(Refusal::Transport(transport::TransportError::LabPort));
            }
            TransportSpec::Multicast => return Err(Refusal::MulticastRecord),
        };
        let publisher = Arc::new(Publisher::new(
            id.clone(),
            live.clone(),
            slot.clone(),
            conn.peer,
            announcement.announced.payload_type,
            transport,
        ));
        if let Some((rtp, rtcp)) = sockets {
            publisher
                .receive_udp(rtp, rtcp)
                .map_err(|e| Refusal::Ports(e.to_string()))?;
        }
        if let Some(previous) = slot.claim(&id) {
            self.end_publisher(&previous, "replaced by a new publisher");
        }
        self.publishing.insert(publisher);
        conn.sessions.push(id.clone());
        tracing::info!("path {name}: publisher {id} set up from {}", conn.peer);
        reply.set_session(&self.session_header(&id));
        Ok(reply)
    }

    /// RECORD (RFC 2326 10.11) on a publisher's session.
    pub(super) fn record(&self, conn: &Connection, request: &Incoming) -> Result<Reply, Refusal> {
        let (name, _) = self.published_path(request)?;
        let id = request.session.as_deref().ok_or(Refusal::NoSessionHeader)?;
        // RECORD comes on the publisher's own connection.
        if self.publishing.get(id).is_some() && !conn.sessions.iter().any(|s| s == id) {
            return Err(Refusal::NoSuchSession);
        }
        let Some(publisher) = self.publishing.get(id) else {
            return Err(if self.session(id).is_some() {
                Refusal::NotAPublisher
            } else {
                Refusal::NoSuchSession
            });
        };
        if publisher.path.name != name {
            return Err(Refusal::NotThisSessionsClip);
        }
        publisher.record()?;
        tracing::info!("path {name}: publisher {id} recording");
        let mut reply = Reply::new(StatusCode::Ok);
        reply.set_session(&self.session_header(id));
        Ok(reply)
    }

    /// Ends a publisher's session; its path's viewers wait for the next one.
    pub fn end_publisher(&self, id: &str, why: &str) {
        let Some(publisher) = self.publishing.remove(id) else {
            return;
        };
        if !publisher.end() {
            return;
        }
        tracing::info!(
            "path {}: publisher {id} ended ({why}); viewers wait for the next",
            publisher.path.name
        );
        self.note_closed(id, &publisher.path.name, why, 0, None);
    }

    /// Publishers whose RTP has been silent longer than the session timeout.
    pub(super) fn expire_publishers(&self) {
        let now = Instant::now();
        let timeout: Duration = self.config.session_timeout;
        for publisher in self.publishing.all() {
            if publisher.timed_out(timeout, now) {
                self.end_publisher(&publisher.id, "timed out");
            }
        }
    }

    /// Interleaved data on a connection: a publisher's RTP or RTCP; `false` when no
    /// publisher of the connection has that channel.
    pub(super) fn publisher_interleaved(
        &self,
        conn: &Connection,
        channel: u8,
        data: &[u8],
    ) -> bool {
        conn.sessions.iter().any(|id| {
            self.publishing
                .get(id)
                .is_some_and(|p| p.on_interleaved(channel, data))
        })
    }
}
