//! RTSP and HTTP authentication, server side: reading a client's `Authorization` (RFC 7617
//! Basic, RFC 7616 Digest with MD5 or SHA-256), checking it against a stored secret, making
//! and checking the server's nonces, and the `WWW-Authenticate` challenges of a 401. No
//! sockets and no clock: the caller passes the time in (seconds since the Unix epoch).
//!
//! Nonces are stateless: the time they were made and an HMAC-SHA-256 of it under a key the
//! server draws at start. A nonce is accepted for [`NONCE_LIFETIME`]; after that a right
//! answer gets a new challenge with `stale=true` and never passes. Nonce counts are not
//! tracked (an answer may be replayed within the nonce's life, as many servers allow).

use std::fmt;

use base64::Engine as _;
use sha2::Digest as _;

use crate::auth::{Algorithm, Parser, hex, is_space, quote};

/// The server's realm, part of what a `password_sha256` hashes.
pub const REALM: &str = "mjpeg-rtsp";

/// How long a nonce is good for, in seconds.
pub const NONCE_LIFETIME: u64 = 300;

/// Longest `Authorization` value read: real ones are a few hundred bytes.
pub const MAX_AUTHORIZATION_LEN: usize = 4 * 1024;

/// What the server keeps of a user's password.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// The password itself: Basic, and Digest with MD5 and SHA-256.
    Plain(String),
    /// The hex SHA-256 of `name:realm:password` (RFC 7616's H(A1) for SHA-256): Basic and
    /// Digest SHA-256 only, since an MD5 answer cannot be checked without the password.
    Sha256(String),
}

/// Leaves the secret out, so that a user list can go into logs.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Secret::Plain(…)"),
            Secret::Sha256(_) => f.write_str("Secret::Sha256(…)"),
        }
    }
}

/// The `password_sha256` of a user: hex SHA-256 of `name:realm:password`.
pub fn password_sha256(name: &str, realm: &str, password: &str) -> String {
    Algorithm::Sha256.hash(&format!("{name}:{realm}:{password}"))
}

/// Why an `Authorization` value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizationError {
    #[error("longer than {MAX_AUTHORIZATION_LEN} bytes")]
    TooLong,
    #[error("unsupported scheme")]
    Scheme,
    #[error("Basic credentials are not base64 of user:password in UTF-8")]
    Basic,
    #[error("Digest without {0}")]
    Missing(&'static str),
    #[error("Digest with an unsupported {0}")]
    Unsupported(&'static str),
    #[error("malformed Digest parameters at byte {0}")]
    Malformed(usize),
}

/// A client's `Authorization`, parsed. Its `Debug` leaves the password and the response
/// out.
#[derive(Clone, PartialEq, Eq)]
pub enum Authorization {
    Basic { user: String, password: String },
    Digest(DigestResponse),
}

impl Authorization {
    pub fn user(&self) -> &str {
        match self {
            Authorization::Basic { user, .. } => user,
            Authorization::Digest(d) => &d.username,
        }
    }
}

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authorization::Basic { user, .. } => write!(f, "Basic {{ user: {user:?} }}"),
            Authorization::Digest(d) => write!(
                f,
                "Digest {{ username: {:?}, algorithm: {} }}",
                d.username,
                d.algorithm.name()
            ),
        }
    }
}

/// The parameters of a Digest answer that the server checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    /// `Some((nc, cnonce))` with `qop=auth`.
    pub qop_auth: Option<(String, String)>,
    /// Only with the `-sess` algorithms and no qop.
    pub cnonce: Option<String>,
}

/// Reads an `Authorization` value. Never panics, whatever the bytes.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthorizationError> {
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(AuthorizationError::TooLong);
    }
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let engine = base64::engine::general_purpose::STANDARD;
        let bytes = engine
            .decode(rest.trim())
            .map_err(|_| AuthorizationError::Basic)?;
        let text = String::from_utf8(bytes).map_err(|_| AuthorizationError::Basic)?;
        let (user, password) = text.split_once(':').ok_or(AuthorizationError::Basic)?;
        return Ok(Authorization::Basic {
            user: user.into(),
            password: password.into(),
        });
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(AuthorizationError::Scheme);
    }
    let mut p = Parser { s: rest, pos: 0 };
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        match p.param() {
            Ok(Some(param)) => params.push(param),
            Ok(None) => break,
            Err(_) => return Err(AuthorizationError::Malformed(p.pos)),
        }
    }
    p.skip(|b| b == b',' || is_space(b));
    if p.peek().is_some() {
        return Err(AuthorizationError::Malformed(p.pos));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let need = |name: &'static str| get(name).ok_or(AuthorizationError::Missing(name));
    let algorithm = match get("algorithm") {
        None => Algorithm::Md5,
        Some(a) => Algorithm::named(&a).ok_or(AuthorizationError::Unsupported("algorithm"))?,
    };
    let qop_auth = match get("qop") {
        None => None,
        Some(q) if q.eq_ignore_ascii_case("auth") => Some((need("nc")?, need("cnonce")?)),
        Some(_) => return Err(AuthorizationError::Unsupported("qop")),
    };
    let cnonce = match (&qop_auth, algorithm.is_sess()) {
        (None, true) => Some(need("cnonce")?),
        _ => None,
    };
    Ok(Authorization::Digest(DigestResponse {
        username: need("username")?,
        realm: need("realm")?,
        nonce: need("nonce")?,
        uri: need("uri")?,
        response: need("response")?,
        algorithm,
        qop_auth,
        cnonce,
    }))
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Basic credentials against the secret of `user`.
pub fn check_basic(user: &str, password: &str, secret: &Secret, realm: &str) -> bool {
    match secret {
        Secret::Plain(p) => same(password.as_bytes(), p.as_bytes()),
        Secret::Sha256(h) => same(
            password_sha256(user, realm, password).as_bytes(),
            h.to_ascii_lowercase().as_bytes(),
        ),
    }
}

/// A Digest answer's `response` against the secret of its user, for a request with
/// `method`. Whether its nonce is one of the server's, and fresh, is [`NonceKey::check`]'s.
pub fn check_digest(d: &DigestResponse, secret: &Secret, realm: &str, method: &str) -> bool {
    if d.realm != realm {
        return false;
    }
    let algorithm = d.algorithm;
    let h = |data: String| algorithm.hash(&data);
    let mut ha1 = match (secret, algorithm) {
        (Secret::Plain(password), _) => h(format!("{}:{realm}:{password}", d.username)),
        (Secret::Sha256(ha1), Algorithm::Sha256 | Algorithm::Sha256Sess) => {
            ha1.to_ascii_lowercase()
        }
        // An MD5 HA1 cannot be made from a SHA-256 one.
        (Secret::Sha256(_), Algorithm::Md5 | Algorithm::Md5Sess) => return false,
    };
    let cnonce = d.qop_auth.as_ref().map(|(_, c)| c).or(d.cnonce.as_ref());
    if algorithm.is_sess() {
        ha1 = h(format!("{ha1}:{}:{}", d.nonce, cnonce.map_or("", |c| c)));
    }
    let ha2 = h(format!("{method}:{}", d.uri));
    let expected = match &d.qop_auth {
        Some((nc, cnonce)) => h(format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", d.nonce)),
        None => h(format!("{ha1}:{}:{ha2}", d.nonce)),
    };
    same(
        expected.as_bytes(),
        d.response.to_ascii_lowercase().as_bytes(),
    )
}

/// HMAC-SHA-256 (RFC 2104) with a key of at most one block.
fn hmac_sha256(key: &[u8; 32], message: &[u8]) -> [u8; 32] {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = sha2::Sha256::new()
        .chain_update(ipad)
        .chain_update(message)
        .finalize();
    let outer = sha2::Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let mut out = [0u8; 32];
    out.copy_from_slice(&outer);
    out
}

/// What a nonce turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    Fresh,
    /// One of the server's, too old: a right answer gets `stale=true`.
    Stale,
    /// Not one of the server's (another key, altered, or from the future).
    Foreign,
}

/// The key that signs the server's nonces.
#[derive(Clone)]
pub struct NonceKey([u8; 32]);

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(…)")
    }
}

/// Hex digits of the time, then of the truncated MAC.
const NONCE_TIME_LEN: usize = 16;
const NONCE_MAC_LEN: usize = 16;

impl NonceKey {
    pub fn new(key: [u8; 32]) -> Self {
        Self(key)
    }

    /// A key from the system's generator; `None` if it fails (the server must not run
    /// with a guessable key).
    pub fn random() -> Option<Self> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Some(Self(key))
    }

    fn mac(&self, time: u64) -> String {
        hex(&hmac_sha256(&self.0, &time.to_be_bytes())[..NONCE_MAC_LEN])
    }

    /// A nonce made at `now` (seconds).
    pub fn make(&self, now: u64) -> String {
        format!("{now:016x}{}", self.mac(now))
    }

    /// Whether `nonce` is one of this key's, and younger than `lifetime` seconds at `now`.
    pub fn check(&self, nonce: &str, now: u64, lifetime: u64) -> NonceState {
        let (Some(time), Some(mac)) = (nonce.get(..NONCE_TIME_LEN), nonce.get(NONCE_TIME_LEN..))
        else {
            return NonceState::Foreign;
        };
        let Ok(time) = u64::from_str_radix(time, 16) else {
            return NonceState::Foreign;
        };
        // (`from_str_radix` takes a sign: only the canonical spelling is the server's.)
        if !same(nonce.as_bytes(), self.make(time).as_bytes()) || mac.len() != 2 * NONCE_MAC_LEN {
            return NonceState::Foreign;
        }
        // A little clock skew is tolerated; a nonce from further ahead was never made here.
        if time > now.saturating_add(60) {
            NonceState::Foreign
        } else if now.saturating_sub(time) > lifetime {
            NonceState::Stale
        } else {
            NonceState::Fresh
        }
    }
}

/// What checking a request's credentials gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user is who it says.
    Valid(String),
    /// Right credentials on an expired nonce: challenge again with `stale=true`.
    Stale,
    /// Wrong user name or password, an answer to a nonce that is not the server's, or
    /// an unusable value.
    Invalid,
}

/// Checks `authorization` (the header's value) for a request with `method`, `secret`
/// giving each user's secret. `now` is in seconds since the Unix epoch.
pub fn verify<'a>(
    authorization: &str,
    method: &str,
    secret: impl Fn(&str) -> Option<&'a Secret>,
    key: &NonceKey,
    now: u64,
) -> Outcome {
    let Ok(parsed) = parse_authorization(authorization) else {
        return Outcome::Invalid;
    };
    let Some(stored) = secret(parsed.user()) else {
        return Outcome::Invalid;
    };
    match &parsed {
        Authorization::Basic { user, password } => {
            if check_basic(user, password, stored, REALM) {
                Outcome::Valid(user.clone())
            } else {
                Outcome::Invalid
            }
        }
        Authorization::Digest(d) => {
            let nonce = key.check(&d.nonce, now, NONCE_LIFETIME);
            match (nonce, check_digest(d, stored, REALM, method)) {
                (NonceState::Fresh, true) => Outcome::Valid(d.username.clone()),
                (NonceState::Stale, true) => Outcome::Stale,
                _ => Outcome::Invalid,
            }
        }
    }
}

/// The `WWW-Authenticate` values of a 401, one header each, strongest first (RFC 7616
/// § 3.7): Digest SHA-256, Digest MD5, Basic. Clients that read one Digest challenge only
/// tend to keep the last one, which is the MD5 one that they all support.
pub fn challenges(key: &NonceKey, now: u64, stale: bool) -> [String; 3] {
    let nonce = key.make(now);
    let realm = quote(REALM);
    let stale = if stale { ", stale=true" } else { "" };
    let digest = |algorithm: Algorithm| {
        format!(
            "Digest realm={realm}, qop=\"auth\", algorithm={}, nonce=\"{nonce}\"{stale}",
            algorithm.name()
        )
    };
    [
        digest(Algorithm::Sha256),
        digest(Algorithm::Md5),
        format!("Basic realm={realm}, charset=\"UTF-8\""),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{
        Challenge, Credentials, basic_authorization, digest_authorization, parse_challenges,
    };

    fn digest(value: &str) -> DigestResponse {
        match parse_authorization(value).unwrap() {
            Authorization::Digest(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn checks_the_rfc_2617_example() {
        let value = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let d = digest(value);
        assert_eq!(d.algorithm, Algorithm::Md5);
        let realm = "testrealm@host.com";
        let right = Secret::Plain("Circle Of Life".into());
        assert!(check_digest(&d, &right, realm, "GET"));
        assert!(!check_digest(&d, &right, realm, "HEAD"));
        assert!(!check_digest(
            &d,
            &Secret::Plain("circle of life".into()),
            realm,
            "GET"
        ));
        assert!(!check_digest(&d, &right, REALM, "GET"));
        // A SHA-256 secret cannot check an MD5 answer.
        let hashed = Secret::Sha256(password_sha256("Mufasa", realm, "Circle Of Life"));
        assert!(!check_digest(&d, &hashed, realm, "GET"));
    }

    #[test]
    fn checks_the_rfc_7616_examples() {
        let common = r#"username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let realm = "http-auth@example.org";
        let password = "Circle of Life";
        let sha = digest(&format!(
            "Digest {common}, algorithm=SHA-256, response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
        ));
        let md5 = digest(&format!(
            "Digest {common}, algorithm=MD5, response=\"8ca523f5e9506fed4657c9700eebdbec\""
        ));
        let plain = Secret::Plain(password.into());
        let hashed = Secret::Sha256(password_sha256("Mufasa", realm, password));
        assert!(check_digest(&sha, &plain, realm, "GET"));
        assert!(check_digest(&sha, &hashed, realm, "GET"));
        assert!(check_digest(&md5, &plain, realm, "GET"));
        assert!(!check_digest(&md5, &hashed, realm, "GET"));
        let wrong = Secret::Sha256(password_sha256("Mufasa", realm, "Circle of life"));
        assert!(!check_digest(&sha, &wrong, realm, "GET"));
    }

    #[test]
    fn checks_basic_against_both_secrets() {
        let Ok(Authorization::Basic { user, password }) =
            parse_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        else {
            panic!()
        };
        assert_eq!(
            (user.as_str(), password.as_str()),
            ("Aladdin", "open sesame")
        );
        let hashed = Secret::Sha256(password_sha256("Aladdin", REALM, "open sesame"));
        assert!(check_basic(&user, &password, &hashed, REALM));
        assert!(check_basic(
            &user,
            &password,
            &Secret::Plain("open sesame".into()),
            REALM
        ));
        assert!(!check_basic(&user, "open", &hashed, REALM));
        assert!(!check_basic(
            &user,
            "open sesamE",
            &Secret::Plain("open sesame".into()),
            REALM
        ));
        // The hex may be written in capitals.
        let upper = Secret::Sha256(password_sha256("Aladdin", REALM, "open sesame").to_uppercase());
        assert!(check_basic(&user, &password, &upper, REALM));
    }

    #[test]
    fn nonces_expire_and_cannot_be_forged() {
        let key = NonceKey::new([7; 32]);
        let other = NonceKey::new([8; 32]);
        let nonce = key.make(1_000_000);
        assert_eq!(nonce.len(), 48);
        assert_eq!(key.check(&nonce, 1_000_010, 300), NonceState::Fresh);
        assert_eq!(key.check(&nonce, 1_000_300, 300), NonceState::Fresh);
        assert_eq!(key.check(&nonce, 1_000_301, 300), NonceState::Stale);
        assert_eq!(other.check(&nonce, 1_000_010, 300), NonceState::Foreign);
        // Moving the time forward breaks the MAC.
        let moved = format!("{:016x}{}", 1_000_200u64, &nonce[16..]);
        assert_eq!(key.check(&moved, 1_000_310, 300), NonceState::Foreign);
        assert_eq!(
            key.check(&key.make(2_000_000), 1_000_000, 300),
            NonceState::Foreign
        );
        for bad in [
            "",
            "x",
            "ü",
            &nonce[..47],
            &format!("{nonce}0"),
            &nonce.to_uppercase(),
        ] {
            assert_eq!(key.check(bad, 1_000_010, 300), NonceState::Foreign, "{bad}");
        }
    }

    /// The project's own client answers the server's challenges, both algorithms, and
    /// an expired nonce is stale for the right password and never valid.
    #[test]
    fn the_client_answers_the_server() {
        let key = NonceKey::new([1; 32]);
        let now = 1_700_000_000;
        let users = [
            ("plain", Secret::Plain("pw1".into())),
            (
                "hashed",
                Secret::Sha256(password_sha256("hashed", REALM, "pw2")),
            ),
        ];
        let secret = |name: &str| users.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
        let values = challenges(&key, now, false);
        let mut offered = Vec::new();
        for value in &values {
            offered.extend(parse_challenges(value).unwrap());
        }
        assert!(matches!(&offered[2], Challenge::Basic(r) if r == REALM));
        for (challenge, md5) in [(&offered[0], false), (&offered[1], true)] {
            let Challenge::Digest(d) = challenge else {
                panic!("{challenge:?}")
            };
            assert!(d.qop_auth && !d.stale);
            for (user, password) in [("plain", "pw1"), ("hashed", "pw2")] {
                let credentials = Credentials::new(user, password);
                let answer = digest_authorization(d, &credentials, "PLAY", "rtsp://h/cam", 1, "c");
                let expected = if md5 && user == "hashed" {
                    Outcome::Invalid
                } else {
                    Outcome::Valid(user.into())
                };
                assert_eq!(verify(&answer, "PLAY", secret, &key, now + 5), expected);
                assert_eq!(
                    verify(&answer, "DESCRIBE", secret, &key, now + 5),
                    Outcome::Invalid
                );
                let later = now + NONCE_LIFETIME + 1;
                let old = if expected == Outcome::Invalid {
                    Outcome::Invalid
                } else {
                    Outcome::Stale
                };
                assert_eq!(verify(&answer, "PLAY", secret, &key, later), old);
                let wrong = Credentials::new(user, "nope");
                let answer = digest_authorization(d, &wrong, "PLAY", "rtsp://h/cam", 1, "c");
                assert_eq!(verify(&answer, "PLAY", secret, &key, now), Outcome::Invalid);
                assert_eq!(
                    verify(&answer, "PLAY", secret, &key, later),
                    Outcome::Invalid
                );
                let basic = basic_authorization(&credentials);
                assert_eq!(
                    verify(&basic, "X", secret, &key, now),
                    Outcome::Valid(user.into())
                );
                let basic = basic_authorization(&wrong);
                assert_eq!(verify(&basic, "X", secret, &key, now), Outcome::Invalid);
            }
        }
        let stale = challenges(&key, now, true);
        assert!(stale[0].ends_with("stale=true") && stale[1].ends_with("stale=true"));
        let nobody = basic_authorization(&Credentials::new("nobody", "pw1"));
        assert_eq!(verify(&nobody, "X", secret, &key, now), Outcome::Invalid);
    }

    #[test]
    fn refuses_hostile_values_and_keeps_secrets_out_of_debug() {
        for bad in [
            "",
            "Basic",
            "Basic !!!",
            "Basic dXNlcg==", // no colon
            "Bearer abc",
            "Digest",
            "Digest username=\"a\"",
            "Digest username=\"a, realm=b",
            "Digest username=a realm=b",
            "Digest username=a, realm=r, nonce=n, uri=u, response=x, qop=auth-int",
            "Digest username=a, realm=r, nonce=n, uri=u, response=x, qop=auth",
            "Digest username=a, realm=r, nonce=n, uri=u, response=x, algorithm=SHA-512",
        ] {
            assert!(parse_authorization(bad).is_err(), "{bad:?}");
        }
        let long = format!("Basic {}", "A".repeat(MAX_AUTHORIZATION_LEN));
        assert_eq!(parse_authorization(&long), Err(AuthorizationError::TooLong));
        let parsed = parse_authorization("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert!(!format!("{parsed:?}").contains("sesame"));
        assert!(!format!("{:?}", Secret::Plain("sesame".into())).contains("sesame"));
        // A cheap fuzz over a troublesome alphabet.
        let alphabet = [
            "Digest ", "Basic ", "=", ",", "\"", "\\", "a", "ü", " ", "nc",
        ];
        let mut seed = 7u32;
        for _ in 0..20_000 {
            let mut value = String::new();
            while !seed.is_multiple_of(11) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                value.push_str(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            seed = seed.wrapping_add(1);
            let _ = parse_authorization(&value);
        }
    }
}
