//! RFC 2326 multicast: a client asking for `RTP/AVP;multicast` joins its path's group,
//! which the server chooses from `--multicast-range` (`addresses.rs`) and opens with the
//! first such viewer of the path. All the path's multicast viewers share the group and
//! its one sender (`group.rs`); the group is freed when its last viewer leaves, and a
//! later viewer may get another.
//!
//! The server's shared RTP and RTCP sockets send to groups too: [`prepare_sockets`] sets
//! their multicast TTL and interface (which apply to multicast destinations only).

pub mod addresses;
pub mod group;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::Ipv4Net;

pub use addresses::{DEFAULT_RANGE, DEFAULT_TTL, parse_range};
pub use group::{Group, GroupPlayError};

use crate::server::media::Media;
use crate::server::session::Session;
use crate::server::stats::GroupStats;

/// `--multicast-range` and `--multicast-ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub range: Ipv4Net,
    pub ttl: u8,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            range: DEFAULT_RANGE.parse().unwrap_or_default(),
            ttl: DEFAULT_TTL,
        }
    }
}

/// Why a multicast SETUP cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum MulticastError {
    #[error(
        "multicast groups are IPv4 and the server is bound to {0}: bind it to an IPv4 address (--bind)"
    )]
    Ipv6Bind(IpAddr),
    #[error("every multicast group of --multicast-range {0} is in use")]
    RangeUsedUp(Ipv4Net),
    #[error("cannot open multicast group {addr}: {error}")]
    Open {
        addr: Ipv4Addr,
        error: std::io::Error,
    },
}

/// The groups in use, one per path.
pub struct Multicast {
    ttl: u8,
    /// The interface groups are sent on and joined on: the server's address, or the
    /// default (0.0.0.0) when it is bound to all.
    interface: Option<Ipv4Addr>,
    bind: IpAddr,
    inner: Mutex<Registry>,
}

struct Registry {
    addresses: addresses::Addresses,
    by_path: BTreeMap<String, Arc<Group>>,
}

impl Multicast {
    /// Groups from `settings`, sent from the server bound to `bind`.
    pub fn new(settings: Settings, bind: IpAddr) -> Multicast {
        Multicast {
            ttl: settings.ttl,
            interface: match bind {
                IpAddr::V4(ip) => Some(ip),
                IpAddr::V6(_) => None,
            },
            bind,
            inner: Mutex::new(Registry {
                addresses: addresses::Addresses::new(settings.range),
                by_path: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new multicast viewer of `media`: `viewer` makes its session for the path's
    /// group, opened first if the path has none. The group's looping follows `looping`.
    pub fn join(
        &self,
        media: &Media,
        looping: bool,
        viewer: impl FnOnce(Arc<Group>) -> Arc<Session>,
    ) -> Result<Arc<Session>, MulticastError> {
        let interface = self.interface.ok_or(MulticastError::Ipv6Bind(self.bind))?;
        let mut registry = self.lock();
        let group = match registry.by_path.get(media.name()) {
            Some(group) => group.clone(),
            None => {
                let range = registry.addresses.range();
                let addr = registry
                    .addresses
                    .take()
                    .ok_or(MulticastError::RangeUsedUp(range))?;
                let group = match Group::open(media, addr, self.ttl, interface, looping) {
                    Ok(group) => group,
                    Err(error) => {
                        registry.addresses.free(addr);
                        return Err(MulticastError::Open { addr, error });
                    }
                };
                tracing::info!(
                    "path {}: multicast {group}, SSRC {:08x}",
                    media.name(),
                    group.ssrc()
                );
                registry
                    .by_path
                    .insert(media.name().to_string(), group.clone());
                group
            }
        };
        let session = viewer(group.clone());
        group.add(session.clone());
        Ok(session)
    }

    /// A multicast viewer leaves its group: the group, taken out of use with its address
    /// freed, when that was its last viewer (the caller closes it).
    pub fn leave(&self, group: &Arc<Group>, viewer: &Session) -> Option<Arc<Group>> {
        let mut registry = self.lock();
        if group.remove(viewer) > 0 {
            return None;
        }
        let current = registry
            .by_path
            .get(&group.path)
            .is_some_and(|g| Arc::ptr_eq(g, group));
        if !current {
            return None;
        }
        registry.by_path.remove(&group.path);
        registry.addresses.free(group.addr);
        Some(group.clone())
    }

    /// The group an RTCP packet reports on (by the SSRCs of its report blocks), when it
    /// came to the server's own RTCP port.
    pub fn reported_in(&self, ssrcs: &[u32]) -> Option<Arc<Group>> {
        self.lock()
            .by_path
            .values()
            .find(|g| ssrcs.contains(&g.ssrc()))
            .cloned()
    }

    /// Every group in use, by path.
    pub fn stats(&self) -> Vec<GroupStats> {
        let groups: Vec<Arc<Group>> = self.lock().by_path.values().cloned().collect();
        groups.iter().map(|g| g.stats()).collect()
    }

    /// The TTL and interface of the server's sending sockets (they apply to multicast
    /// destinations only; unicast is unchanged). An IPv6 socket sends no groups.
    pub fn prepare_sockets(&self, sockets: &[&UdpSocket]) -> std::io::Result<()> {
        let Some(interface) = self.interface else {
            return Ok(());
        };
        for socket in sockets {
            let socket = socket2::SockRef::from(*socket);
            socket.set_multicast_ttl_v4(u32::from(self.ttl))?;
            socket.set_multicast_if_v4(&interface)?;
            // Receivers on the server's own host (and the server's group socket) hear
            // the group too.
            socket.set_multicast_loop_v4(true)?;
        }
        Ok(())
    }
}
