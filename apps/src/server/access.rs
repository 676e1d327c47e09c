//! Who may read and publish which path: the `[[users]]` of the configuration file, public
//! paths, and the throttling of addresses that keep failing to log in. The same rules for
//! RTSP and HTTP; the verification itself (Basic, Digest, nonces) is
//! `rtsp_core::server_auth`.
//!
//! With no users everything is open. With users, each request needs a user with the right
//! on its path (any user for what names no path: the status page, the API, metrics), except
//! reading a public path.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::rtsp::server_auth::{self, NonceKey, Outcome, Secret};

/// Failed logins from one address within [`FAILURE_WINDOW`] that get it refused ...
pub const FAILURE_BURST: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10);
/// ... for this long.
pub const BLOCK: Duration = Duration::from_secs(30);
/// Addresses tracked at most: beyond, the ones whose episode is over are forgotten.
const MAX_TRACKED: usize = 16 * 1024;

/// The access rules, as configured.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub users: Vec<User>,
    /// Paths anyone may read.
    pub public: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub secret: Secret,
    /// Path names, or `*` for all.
    pub read: Vec<String>,
    pub publish: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Read,
    Publish,
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401 with challenges (`stale`: the credentials were right but the nonce expired).
    Challenge {
        stale: bool,
    },
    /// 403: a user without the right.
    Forbidden,
    /// Too many failed logins from this address lately.
    Throttled,
}

struct Failures {
    window_start: Instant,
    count: u32,
    blocked_until: Option<Instant>,
}

pub struct Access {
    rules: Rules,
    key: NonceKey,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the system's random generator failed; no key for the authentication nonces")]
pub struct NoKey;

impl Access {
    pub fn new(rules: Rules) -> Result<Access, NoKey> {
        Ok(Access {
            rules,
            key: NonceKey::random().ok_or(NoKey)?,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Whether there are users (without them, every request is allowed).
    pub fn enabled(&self) -> bool {
        !self.rules.users.is_empty()
    }

    /// Whether a request from `peer` with `authorization` (the header's value) may use
    /// `right` on `path` (`None`: a request that names no path, which any user may make).
    /// `method` is what Digest answers hash.
    pub fn check(
        &self,
        peer: IpAddr,
        authorization: Option<&str>,
        method: &str,
        path: Option<&str>,
        right: Right,
    ) -> Decision {
        self.check_at(
            peer,
            authorization,
            method,
            path,
            right,
            Instant::now(),
            unix_now(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn check_at(
        &self,
        peer: IpAddr,
        authorization: Option<&str>,
        method: &str,
        path: Option<&str>,
        right: Right,
        now: Instant,
        unix: u64,
    ) -> Decision {
        if !self.enabled() {
            return Decision::Allow;
        }
        if right == Right::Read && path.is_some_and(|p| self.rules.public.iter().any(|q| q == p)) {
            return Decision::Allow;
        }
        if self.blocked(peer, now) {
            return Decision::Throttled;
        }
        let Some(authorization) = authorization else {
            return Decision::Challenge { stale: false };
        };
        let secret = |name: &str| {
            self.rules
                .users
                .iter()
                .find(|u| u.name == name)
                .map(|u| &u.secret)
        };
        match server_auth::verify(authorization, method, secret, &self.key, unix) {
            Outcome::Valid(name) => {
                let user = self.rules.users.iter().find(|u| u.name == name);
                let list = user.map(|u| match right {
                    Right::Read => &u.read,
                    Right::Publish => &u.publish,
                });
                let permitted = match (path, list) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(path), Some(list)) => list.iter().any(|p| p == "*" || p == path),
                };
                if permitted {
                    Decision::Allow
                } else {
                    Decision::Forbidden
                }
            }
            Outcome::Stale => Decision::Challenge { stale: true },
            Outcome::Invalid => {
                self.failed(peer, now);
                Decision::Challenge { stale: false }
            }
        }
    }

    /// The `WWW-Authenticate` values of a 401, one header each.
    pub fn challenges(&self, stale: bool) -> [String; 3] {
        server_auth::challenges(&self.key, unix_now(), stale)
    }

    fn blocked(&self, peer: IpAddr, now: Instant) -> bool {
        let failures = lock(&self.failures);
        failures
            .get(&peer)
            .and_then(|f| f.blocked_until)
            .is_some_and(|until| now < until)
    }

    /// Counts a failed login; the one that completes a burst blocks the address, said once
    /// per episode.
    fn failed(&self, peer: IpAddr, now: Instant) {
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| {
                f.blocked_until.is_some_and(|u| now < u)
                    || now.duration_since(f.window_start) < FAILURE_WINDOW
            });
        }
        let f = failures.entry(peer).or_insert(Failures {
            window_start: now,
            count: 0,
            blocked_until: None,
        });
        if now.duration_since(f.window_start) >= FAILURE_WINDOW {
            f.window_start = now;
            f.count = 0;
        }
        f.count += 1;
        if f.count >= FAILURE_BURST {
            f.blocked_until = Some(now + BLOCK);
            f.count = 0;
            tracing::warn!(
                "{peer}: {FAILURE_BURST} failed logins within {} s, refused for {} s",
                FAILURE_WINDOW.as_secs(),
                BLOCK.as_secs()
            );
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::auth::{Credentials, basic_authorization};

    fn access() -> Access {
        let user = |name: &str, read: &[&str], publish: &[&str]| User {
            name: name.into(),
            secret: Secret::Plain(format!("{name}-pw")),
            read: read.iter().map(|s| s.to_string()).collect(),
            publish: publish.iter().map(|s| s.to_string()).collect(),
        };
        Access::new(Rules {
            users: vec![
                user("viewer", &["*"], &[]),
                user("camera", &["cam"], &["cam"]),
            ],
            public: vec!["open".into()],
        })
        .unwrap()
    }

    fn basic(user: &str, password: &str) -> String {
        basic_authorization(&Credentials::new(user, password))
    }

    #[test]
    fn rights_and_public_paths() {
        let a = access();
        let ip: IpAddr = [127, 0, 0, 1].into();
        let check = |auth: Option<&str>, path, right| a.check(ip, auth, "GET", path, right);
        let viewer = basic("viewer", "viewer-pw");
        let camera = basic("camera", "camera-pw");
        let challenge = Decision::Challenge { stale: false };
        assert_eq!(check(None, Some("cam"), Right::Read), challenge);
        assert_eq!(check(None, Some("open"), Right::Read), Decision::Allow);
        assert_eq!(check(None, Some("open"), Right::Publish), challenge);
        assert_eq!(check(None, None, Right::Read), challenge);
        assert_eq!(
            check(Some(&viewer), Some("x"), Right::Read),
            Decision::Allow
        );
        assert_eq!(check(Some(&viewer), None, Right::Read), Decision::Allow);
        let forbidden = Decision::Forbidden;
        assert_eq!(check(Some(&viewer), Some("cam"), Right::Publish), forbidden);
        assert_eq!(
            check(Some(&camera), Some("cam"), Right::Publish),
            Decision::Allow
        );
        assert_eq!(check(Some(&camera), Some("x"), Right::Read), forbidden);
        let wrong = basic("viewer", "camera-pw");
        assert_eq!(check(Some(&wrong), Some("x"), Right::Read), challenge);
        // Without users, all is open.
        let open = Access::new(Rules::default()).unwrap();
        assert_eq!(
            open.check(ip, None, "GET", None, Right::Publish),
            Decision::Allow
        );
    }

    #[test]
    fn a_burst_of_failures_blocks_one_address_for_a_while() {
        let a = access();
        let (bad_ip, good_ip): (IpAddr, IpAddr) = ([127, 0, 0, 1].into(), [127, 0, 0, 2].into());
        let (wrong, right) = (basic("viewer", "guess"), basic("viewer", "viewer-pw"));
        let t0 = Instant::now();
        let check = |ip, auth: &str, at: Duration| {
            a.check_at(ip, Some(auth), "GET", Some("cam"), Right::Read, t0 + at, 0)
        };
        // Failures spread wider than the window do not add up.
        for i in 0..FAILURE_BURST - 1 {
            check(bad_ip, &wrong, Duration::from_secs(u64::from(i) * 2));
        }
        assert_eq!(
            check(bad_ip, &right, Duration::from_secs(20)),
            Decision::Allow
        );
        let start = Duration::from_secs(100);
        for i in 0..FAILURE_BURST {
            let at = start + Duration::from_millis(u64::from(i) * 100);
            assert_ne!(check(bad_ip, &wrong, at), Decision::Throttled);
        }
        let blocked = start + Duration::from_secs(2);
        assert_eq!(check(bad_ip, &right, blocked), Decision::Throttled);
        assert_eq!(check(good_ip, &right, blocked), Decision::Allow);
        let after = start + Duration::from_secs(1) + BLOCK;
        assert_eq!(check(bad_ip, &right, after), Decision::Allow);
    }
}
