//! `--max-connections-per-ip`: the connections one client address may hold at once, RTSP
//! and HTTP together. Past the limit, a new connection from that address is closed at
//! once; other addresses are unaffected. One line in the log says when an address reached
//! the limit, and not again until it went below it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The default: room for a browser page of many cameras, an NVR's streams or a dashboard's
/// polling from one address, not for one client to take every descriptor.
pub const DEFAULT_MAX: usize = 100;

pub struct PerIp {
    /// 0: no limit.
    max: usize,
    open: Mutex<HashMap<IpAddr, Count>>,
}

#[derive(Default)]
struct Count {
    open: usize,
    /// The address is over the limit, and the log said so.
    refusing: bool,
}

/// One admitted connection; dropping it frees its place.
pub struct Admitted {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = lock(&self.per_ip.open);
        if let Some(count) = open.get_mut(&self.ip) {
            count.open = count.open.saturating_sub(1);
            if count.open == 0 {
                open.remove(&self.ip);
            } else if count.open < self.per_ip.max {
                count.refusing = false;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PerIp {
    pub fn new(max: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            max,
            open: Mutex::default(),
        })
    }

    /// A new connection from `ip`: its place, or `None` (close it) past the limit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let mut open = lock(&self.open);
        let count = open.entry(ip).or_default();
        if self.max > 0 && count.open >= self.max {
            if !count.refusing {
                count.refusing = true;
                tracing::warn!(
                    "{ip} holds {} connections, the most one address may \
                     (--max-connections-per-ip): its new ones are closed",
                    count.open
                );
            }
            return None;
        }
        count.open += 1;
        Some(Admitted {
            per_ip: self.clone(),
            ip,
        })
    }

    /// Connections `ip` holds now.
    pub fn open(&self, ip: IpAddr) -> usize {
        lock(&self.open).get(&ip).map_or(0, |c| c.open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_limit_is_refused_and_others_are_not() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = per_ip.admit(a).expect("first");
        let _second = per_ip.admit(a).expect("second");
        assert!(per_ip.admit(a).is_none(), "a third from the same address");
        let _other = per_ip.admit(b).expect("another address");
        drop(first);
        assert_eq!(per_ip.open(a), 1);
        let _again = per_ip.admit(a).expect("a place was freed");
        assert!(per_ip.admit(a).is_none());
    }

    #[test]
    fn zero_means_no_limit_and_counts_go_back_to_nothing() {
        let per_ip = PerIp::new(0);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<Admitted> = (0..1000).filter_map(|_| per_ip.admit(a)).collect();
        assert_eq!(held.len(), 1000);
        drop(held);
        assert_eq!(per_ip.open(a), 0);
        assert!(lock(&per_ip.open).is_empty(), "no entry left behind");
    }
}
