//! RTSP authentication for the player, client side: RFC 2617 Basic and Digest as RTSP
//! servers and IP cameras use them, plus RFC 7616's SHA-256 and `-sess` variants. No
//! sockets: the player hands over the `WWW-Authenticate` values of each 401 and asks for the
//! `Authorization` value of each request.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rtsp_types::Url;
use sha2::Digest as _;

/// Longest `WWW-Authenticate` value read. Real ones are a few hundred bytes; the cap bounds
/// what a hostile server can make each 401 cost.
pub const MAX_CHALLENGE_LEN: usize = 16 * 1024;

/// A user name and password, kept in clear: Digest hashes the password with each nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Credentials {
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

/// Leaves the password out, so that credentials can go into logs.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"…")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the server asks for credentials and none were given (rtsp://user:password@…)")]
    NoCredentials,
    #[error("the server refused the request without a WWW-Authenticate challenge")]
    NoChallenge,
    #[error("the server offers no authentication scheme this client supports (offered: {0})")]
    Unsupported(String),
    #[error("the server rejected the user name or password")]
    Rejected,
    #[error("malformed WWW-Authenticate at byte {at}: {what}")]
    Malformed { at: usize, what: &'static str },
    #[error("the user name or password in the URL is not percent-encoded UTF-8 text")]
    BadUserinfo,
}

/// Splits `rtsp://user:password@host/…` into the URL to send, without the userinfo (it must
/// never reach the wire: request lines carry none), and the percent-decoded credentials.
/// Control characters are refused: they would end up inside a header line.
pub fn split_credentials(url: &Url) -> Result<(Url, Option<Credentials>), AuthError> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok((url.clone(), None));
    }
    let decode = |s: &str| match percent_encoding::percent_decode_str(s).decode_utf8() {
        Ok(text) if !text.chars().any(char::is_control) => Ok(Cow::into_owned(text)),
        _ => Err(AuthError::BadUserinfo),
    };
    let credentials = Credentials::new(
        decode(url.username())?,
        decode(url.password().unwrap_or_default())?,
    );
    let mut bare = url.clone();
    bare.set_username("")
        .and_then(|()| bare.set_password(None))
        .map_err(|()| AuthError::BadUserinfo)?;
    Ok((bare, Some(credentials)))
}

/// One challenge of a `WWW-Authenticate` value, as far as this client is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// Basic, with its realm.
    Basic(String),
    Digest(DigestChallenge),
    /// A scheme, or a Digest variant, this client cannot answer; named for error messages.
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
}

impl Algorithm {
    const ALL: [Self; 4] = [Self::Md5, Self::Md5Sess, Self::Sha256, Self::Sha256Sess];

    pub(crate) fn named(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The name as written in `algorithm=`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
        }
    }

    pub(crate) fn is_sess(self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    /// `H(data)`: the hash as lowercase hex, which is what Digest feeds into the next hash.
    pub(crate) fn hash(self, data: &str) -> String {
        match self {
            Self::Md5 | Self::Md5Sess => hex(&md5::Md5::digest(data)),
            Self::Sha256 | Self::Sha256Sess => hex(&sha2::Sha256::digest(data)),
        }
    }
}

/// A Digest challenge this client can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    /// `None` when the server named none: MD5, and then none is echoed back, as RFC
    /// 2069-era servers expect.
    pub algorithm: Option<Algorithm>,
    /// `qop=auth` was offered. `auth-int` alone is refused: it hashes each request's body.
    pub qop_auth: bool,
    /// The nonce expired but the credentials were right: retry with the new nonce.
    pub stale: bool,
}

impl Challenge {
    /// Higher is stronger; `None` for what cannot be answered.
    fn strength(&self) -> Option<u8> {
        match self {
            Self::Basic(_) => Some(0),
            Self::Digest(d) => match d.algorithm {
                Some(Algorithm::Sha256 | Algorithm::Sha256Sess) => Some(2),
                _ => Some(1),
            },
            Self::Unsupported(_) => None,
        }
    }
}

/// The strongest challenge this client can answer: Digest SHA-256, Digest MD5, then Basic,
/// which sends the password in clear. Among equals, the first: servers list their
/// preference first (RFC 7616 § 3.7).
pub fn strongest(challenges: &[Challenge]) -> Option<&Challenge> {
    // `max_by_key` keeps the last of equals, so walk backwards to keep the first.
    let rated = challenges
        .iter()
        .rev()
        .filter_map(|c| Some((c.strength()?, c)));
    rated.max_by_key(|&(strength, _)| strength).map(|(_, c)| c)
}

/// Reads every challenge of one `WWW-Authenticate` value. It is a comma-separated list
/// (RFC 7235 § 4.1) whose commas also separate each challenge's parameters, so a token not
/// followed by `=` is what starts the next challenge. Scheme and parameter names are matched
/// without case; the first of repeated parameters counts.
pub fn parse_challenges(value: &str) -> Result<Vec<Challenge>, AuthError> {
    if value.len() > MAX_CHALLENGE_LEN {
        let what = "longer than the 16 KiB this client reads";
        return Err(AuthError::Malformed { at: 0, what });
    }
    let mut p = Parser { s: value, pos: 0 };
    let mut challenges = Vec::new();
    loop {
        p.skip(|b| b == b',' || is_space(b));
        if p.pos >= value.len() {
            break;
        }
        let scheme = p.token().ok_or_else(|| p.error("expected a scheme"))?;
        let mut params = Vec::new();
        if !(p.skip(is_space) > 0 && p.token68()) {
            while let Some(param) = p.param()? {
                params.push(param);
            }
        }
        challenges.push(typed(scheme, &params));
    }
    if challenges.is_empty() {
        return Err(p.error("no challenge"));
    }
    Ok(challenges)
}

fn typed(scheme: &str, params: &[(String, String)]) -> Challenge {
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic(get("realm").unwrap_or_default().into());
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Challenge::Unsupported(scheme.into());
    }
    let digest = || {
        let nonce = get("nonce").ok_or_else(|| "without a nonce".to_string())?;
        let algorithm =
            get("algorithm").map(|a| Algorithm::named(a).ok_or(format!("algorithm={a}")));
        let qop = get("qop");
        let qop_auth =
            qop.is_some_and(|q| q.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth")));
        if let Some(qop) = qop.filter(|_| !qop_auth) {
            return Err(format!("qop={qop}"));
        }
        Ok(DigestChallenge {
            realm: get("realm").unwrap_or_default().into(),
            nonce: nonce.into(),
            opaque: get("opaque").map(Into::into),
            algorithm: algorithm.transpose()?,
            qop_auth,
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    };
    digest().map_or_else(
        |why| Challenge::Unsupported(format!("Digest {why}")),
        Challenge::Digest,
    )
}

pub(crate) fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A cursor over a header value. It only ever stops on ASCII bytes or the end, so its
/// positions are `str` boundaries; slicing still goes through `get` to never panic.
pub(crate) struct Parser<'a> {
    pub(crate) s: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Parser<'a> {
    pub(crate) fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub(crate) fn skip(&mut self, what: impl Fn(u8) -> bool) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(&what) {
            self.pos += 1;
        }
        self.pos - start
    }

    pub(crate) fn error(&self, what: &'static str) -> AuthError {
        AuthError::Malformed { at: self.pos, what }
    }

    pub(crate) fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        (self.skip(is_tchar) > 0).then(|| self.s.get(start..self.pos))?
    }

    /// Skips a `token68` (RFC 7235 § 2.1), the lone blob of schemes such as Negotiate, if
    /// one runs from here to a comma or the end. Its contents are of no use here.
    fn token68(&mut self) -> bool {
        let start = self.pos;
        if self.skip(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)) > 0 {
            self.skip(|b| b == b'=');
            self.skip(is_space);
            if matches!(self.peek(), None | Some(b',')) {
                return true;
            }
        }
        self.pos = start;
        false
    }

    /// The next `name=value` of the current challenge (name in lowercase), or `None` at the
    /// end of the value or before a token that starts the next challenge.
    pub(crate) fn param(&mut self) -> Result<Option<(String, String)>, AuthError> {
        let start = self.pos;
        self.skip(|b| b == b',' || is_space(b));
        let Some(name) = self.token() else {
            return match self.peek() {
                None => Ok(None),
                Some(_) => Err(self.error("expected a parameter name")),
            };
        };
        self.skip(is_space);
        if self.peek() != Some(b'=') {
            self.pos = start;
            return Ok(None);
        }
        self.pos += 1;
        self.skip(is_space);
        let value = match self.peek() {
            Some(b'"') => self.quoted()?,
            _ => self
                .token()
                .ok_or_else(|| self.error("expected a value"))?
                .to_string(),
        };
        Ok(Some((name.to_ascii_lowercase(), value)))
    }

    /// A quoted-string with its `\` escapes undone. Control characters (bar tab) are
    /// refused, escaped or not: no quoted-string holds them.
    pub(crate) fn quoted(&mut self) -> Result<String, AuthError> {
        let open = self.pos;
        let what = "unterminated quoted string";
        let unterminated = AuthError::Malformed { at: open, what };
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let mut b = self.peek().ok_or(unterminated.clone())?;
            if b == b'"' {
                self.pos += 1;
                break;
            }
            if b == b'\\' {
                self.pos += 1;
                b = self.peek().ok_or(unterminated.clone())?;
            }
            if b.is_ascii_control() && b != b'\t' {
                return Err(self.error("control character in a quoted string"));
            }
            out.push(b);
            self.pos += 1;
        }
        String::from_utf8(out).map_err(|_| self.error("quoted string is not UTF-8"))
    }
}

/// `Basic` credentials (RFC 7617): user name and password in clear, only base64-encoded.
pub fn basic_authorization(credentials: &Credentials) -> String {
    let pair = format!("{}:{}", credentials.user, credentials.password);
    let engine = base64::engine::general_purpose::STANDARD;
    format!("Basic {}", engine.encode(pair))
}

/// The `Digest` answer (RFC 2617 § 3.2.2, RFC 7616 § 3.4) for a request with `method` and
/// `uri` exactly as on its request line, which is what the server hashes. `nc` (the how
/// many-th use of this nonce) and `cnonce` matter only with `qop=auth`, and `cnonce` with
/// the `-sess` algorithms, whose HA1 it keys.
pub fn digest_authorization(
    challenge: &DigestChallenge,
    credentials: &Credentials,
    method: &str,
    uri: &str,
    nc: u32,
    cnonce: &str,
) -> String {
    let algorithm = challenge.algorithm.unwrap_or(Algorithm::Md5);
    let h = |data: String| algorithm.hash(&data);
    let (realm, nonce) = (&challenge.realm, &challenge.nonce);
    let Credentials { user, password } = credentials;
    let mut ha1 = h(format!("{user}:{realm}:{password}"));
    if algorithm.is_sess() {
        ha1 = h(format!("{ha1}:{nonce}:{cnonce}"));
    }
    let ha2 = h(format!("{method}:{uri}"));
    let nc = format!("{nc:08x}");
    let response = if challenge.qop_auth {
        h(format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"))
    } else {
        h(format!("{ha1}:{nonce}:{ha2}"))
    };
    let mut out = format!("Digest username={}, realm={}", quote(user), quote(realm));
    let _ = write!(out, ", nonce={}, uri={}", quote(nonce), quote(uri));
    if challenge.qop_auth {
        let _ = write!(out, ", qop=auth, nc={nc}, cnonce={}", quote(cnonce));
    } else if algorithm.is_sess() {
        let _ = write!(out, ", cnonce={}", quote(cnonce));
    }
    let _ = write!(out, ", response=\"{response}\"");
    if let Some(opaque) = &challenge.opaque {
        let _ = write!(out, ", opaque={}", quote(opaque));
    }
    if let Some(algorithm) = challenge.algorithm {
        let _ = write!(out, ", algorithm={}", algorithm.name());
    }
    out
}

/// A quoted-string. Control characters cannot be quoted and would split the header line, so
/// they are dropped: the server then refuses the answer instead of reading a forged header.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|&c| c == '\t' || !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh client nonce: 16 random bytes in hex. Should the system's generator fail, the
/// clock stands in: a cnonce must differ between clients and nonces, not stay secret.
fn cnonce() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        bytes = now.map_or(0, |d| d.as_nanos()).to_le_bytes();
    }
    hex(&bytes)
}

/// What the player keeps between requests: the credentials, the challenge being answered and
/// how many requests have answered it.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    credentials: Option<Credentials>,
    challenge: Option<Challenge>,
    /// Requests sent with the current challenge: Digest's `nc`, and how a 401 is judged.
    uses: u32,
    /// One per challenge: `-sess` keys HA1 with it for the nonce's whole life.
    cnonce: String,
    /// The current challenge came from a 401 that refused the first use of the one before.
    retried: bool,
}

impl Authenticator {
    pub fn new(credentials: Option<Credentials>) -> Self {
        Self {
            credentials,
            ..Self::default()
        }
    }

    /// The `Authorization` value for the next request, `uri` as on its request line; `None`
    /// until a 401 has asked for one: credentials are not volunteered, since Basic would hand
    /// the password to any server.
    pub fn authorization(&mut self, method: &str, uri: &str) -> Option<String> {
        let credentials = self.credentials.as_ref()?;
        let value = match self.challenge.as_ref()? {
            Challenge::Basic(_) => basic_authorization(credentials),
            Challenge::Digest(d) => {
                let nc = self.uses.saturating_add(1);
                digest_authorization(d, credentials, method, uri, nc, &self.cnonce)
            }
            Challenge::Unsupported(_) => return None,
        };
        self.uses = self.uses.saturating_add(1);
        Some(value)
    }

    /// Takes the `WWW-Authenticate` values of a 401 and picks the challenge to answer from
    /// now on. An error means retrying is pointless. In particular [`AuthError::Rejected`]:
    /// the credentials were just sent and nothing changed that could make them pass — Basic
    /// refused, or Digest refused without `stale=true` for the same nonce, or at the first
    /// use of a nonce (fresh from a 401, it cannot have expired). `stale=true` at a first use
    /// is believed once. This is what stops servers that hand out a new nonce, or claim
    /// staleness, with every 401 from keeping the player in a loop.
    pub fn on_unauthorized<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), AuthError> {
        if self.credentials.is_none() {
            return Err(AuthError::NoCredentials);
        }
        let (mut challenges, mut malformed) = (Vec::new(), None);
        for value in values {
            match parse_challenges(value) {
                Ok(parsed) => challenges.extend(parsed),
                Err(e) => malformed = malformed.or(Some(e)),
            }
        }
        let Some(next) = strongest(&challenges).cloned() else {
            // Nothing answerable, so every challenge is `Unsupported`.
            let offered = challenges.iter().map(|c| match c {
                Challenge::Unsupported(name) => name.as_str(),
                _ => "?",
            });
            let offered = offered.collect::<Vec<_>>().join(", ");
            return Err(match malformed {
                _ if !offered.is_empty() => AuthError::Unsupported(offered),
                Some(e) => e,
                None => AuthError::NoChallenge,
            });
        };
        let stale = matches!(&next, Challenge::Digest(d) if d.stale);
        let at_once = self.uses == 1;
        if self.uses > 0 {
            let same = match (&self.challenge, &next) {
                (Some(Challenge::Digest(old)), Challenge::Digest(new)) => old.nonce == new.nonce,
                (Some(Challenge::Basic(_)), Challenge::Basic(_)) => true,
                _ => false,
            };
            let give_up = if stale {
                at_once && self.retried
            } else {
                same || at_once
            };
            if give_up {
                return Err(AuthError::Rejected);
            }
        }
        self.challenge = Some(next);
        self.retried = at_once;
        self.uses = 0;
        self.cnonce = cnonce();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The answer of `user:password` to the strongest challenge of `value` (a Digest one)
    /// for `METHOD uri`.
    fn answer(value: &str, user: &str, request: &str, nc: u32, cnonce: &str) -> String {
        let all = parse_challenges(value).unwrap();
        let Some(Challenge::Digest(d)) = strongest(&all) else {
            panic!("{all:?}")
        };
        let (user, password) = user.split_once(':').unwrap();
        let (method, uri) = request.split_once(' ').unwrap();
        let credentials = Credentials::new(user, password);
        digest_authorization(d, &credentials, method, uri, nc, cnonce)
    }

    #[test]
    fn answers_the_rfc_2617_example() {
        let value = r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let (user, request) = ("Mufasa:Circle Of Life", "GET /dir/index.html");
        let header = answer(value, user, request, 1, "0a4f113b");
        let expected = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        assert_eq!(header, expected);
    }

    // Expected responses computed with Python's hashlib, independently of this code.
    #[test]
    fn answers_without_qop_and_with_sess() {
        let value = r#"Digest realm="IP Camera(12345)", nonce="4b4f1f2c8a9e""#;
        let request = "DESCRIBE rtsp://10.1.1.1:554/s1";
        let header = answer(value, "admin:12345", request, 1, "-");
        let expected = r#"Digest username="admin", realm="IP Camera(12345)", nonce="4b4f1f2c8a9e", uri="rtsp://10.1.1.1:554/s1", response="3ed51f9ec7a7c3e2e30f5cfed5e130ca""#;
        assert_eq!(header, expected);
        let value = r#"Digest realm="cam", nonce="n0nce", qop=auth, algorithm=md5-SESS"#;
        let header = answer(value, "admin:secret", "PLAY rtsp://cam/live", 2, "c0ffee");
        let expected =
            r#"nc=00000002, cnonce="c0ffee", response="9568bd2a0bef003bfe4dda56d84e9171""#;
        assert!(header.contains(expected), "{header}");
        assert!(header.ends_with(", algorithm=MD5-sess"), "{header}");
    }

    #[test]
    fn answers_the_rfc_7616_example_with_sha256_over_md5() {
        let params = r#"realm="http-auth@example.org", qop="auth, auth-int", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let value = format!("Digest algorithm=MD5, {params}, Digest algorithm=SHA-256, {params}");
        let (user, request) = ("Mufasa:Circle of Life", "GET /dir/index.html");
        let header = answer(
            &value,
            user,
            request,
            1,
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        );
        let expected = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1";
        assert!(header.contains(expected), "{header}");
        assert!(header.ends_with(", algorithm=SHA-256"), "{header}");
    }

    #[test]
    fn answers_basic_and_keeps_the_password_out_of_debug() {
        let aladdin = Credentials::new("Aladdin", "open sesame");
        let expected = "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==";
        assert_eq!(basic_authorization(&aladdin), expected);
        assert!(!format!("{aladdin:?}").contains("sesame"));
    }

    #[test]
    fn reads_several_challenges_per_value() {
        let all = parse_challenges(r#"Digest realm="x", nonce="y", Basic realm="x""#).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], Challenge::Basic("x".into()));
        assert!(matches!(strongest(&all), Some(Challenge::Digest(_))));
        let value = r#"Negotiate abc/+==, bAsIc REALM="a \"b\" \\ c",,NTLM, dIgEsT NONCE=n1,Realm=r,STALE=TRUE,opaque="""#;
        let all = parse_challenges(value).unwrap();
        assert_eq!(all[0], Challenge::Unsupported("Negotiate".into()));
        assert_eq!(all[1], Challenge::Basic(r#"a "b" \ c"#.into()));
        assert_eq!(all[2], Challenge::Unsupported("NTLM".into()));
        let Some(Challenge::Digest(d)) = strongest(&all) else {
            panic!("{all:?}")
        };
        assert_eq!(
            (d.realm.as_str(), d.nonce.as_str(), d.stale),
            ("r", "n1", true)
        );
        assert_eq!((d.opaque.as_deref(), d.algorithm), (Some(""), None));
        assert!(!d.qop_auth);
    }

    #[test]
    fn refuses_hostile_values_without_panicking() {
        let bad = "| , ,|Digest realm=\"x|Digest realm=\"x\\|Digest =|=x|Digest nonce=n, realm=\
                   |Digest realm=\"a\rb\"|Digest realm=ü|\"Basic\"";
        let huge = format!("Basic realm=\"{}\"", "a".repeat(MAX_CHALLENGE_LEN));
        for v in bad.split('|').chain([huge.as_str()]) {
            let error = parse_challenges(v).unwrap_err();
            assert!(matches!(error, AuthError::Malformed { .. }), "{v:?}");
        }
        let many = format!("Digest nonce=n{}", ", a=b".repeat(MAX_CHALLENGE_LEN / 8));
        let many = parse_challenges(&many).unwrap();
        assert!(matches!(&many[..], [Challenge::Digest(_)]));
        // A cheap fuzz: random strings over a troublesome alphabet.
        let alphabet = ["Digest", " ", ",", "=", "\"", "\\", "a", "ü", "\t", "\r"];
        let mut seed = 1u32;
        for _ in 0..20_000 {
            let mut value = String::new();
            while !seed.is_multiple_of(13) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                value.push_str(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            seed = seed.wrapping_add(1);
            let _ = parse_challenges(&value);
        }
    }

    #[test]
    fn takes_credentials_out_of_the_url() {
        let split = |url: &str| split_credentials(&Url::parse(url).unwrap());
        let (bare, credentials) = split("rtsp://us%40er:p%3As%20w%C3%B6rd@cam:554/s?x=1").unwrap();
        assert_eq!(bare.as_str(), "rtsp://cam:554/s?x=1");
        assert_eq!(credentials, Some(Credentials::new("us@er", "p:s wörd")));
        let credentials = split("rtsp://u@cam/").unwrap().1;
        assert_eq!(credentials, Some(Credentials::new("u", "")));
        let (bare, credentials) = split("rtsp://cam/live").unwrap();
        assert_eq!((bare.as_str(), credentials), ("rtsp://cam/live", None));
        assert_eq!(split("rtsp://a:%FF@cam/"), Err(AuthError::BadUserinfo));
        assert_eq!(split("rtsp://a%0D%0AX:b@cam/"), Err(AuthError::BadUserinfo));
    }

    fn send(auth: &mut Authenticator) -> String {
        auth.authorization("PLAY", "/c").unwrap()
    }

    fn challenge(auth: &mut Authenticator, value: &str) -> Result<(), AuthError> {
        auth.on_unauthorized([value])
    }

    #[test]
    fn authenticator_counts_nonces_and_gives_up() {
        let new = || Authenticator::new(Some(Credentials::new("u", "p")));
        let digest = |nonce: &str, more: &str| format!("Digest realm=r, nonce={nonce}{more}");
        let mut auth = new();
        assert_eq!(auth.authorization("OPTIONS", "*"), None);
        challenge(&mut auth, &digest("a", ", qop=auth, Basic realm=r")).unwrap();
        assert!(send(&mut auth).contains("nc=00000001"));
        assert!(send(&mut auth).contains("nc=00000002"));
        // Expired nonce: retry with the new one, counting from 1 again.
        challenge(&mut auth, &digest("b", ", qop=auth, stale=true")).unwrap();
        let retry = send(&mut auth);
        assert!(retry.contains("nonce=\"b\"") && retry.contains("nc=00000001"));
        send(&mut auth);
        // A nonce that served is replaced once; refused at the new one's first use: give up.
        challenge(&mut auth, &digest("c", "")).unwrap();
        send(&mut auth);
        assert_eq!(
            challenge(&mut auth, &digest("d", "")),
            Err(AuthError::Rejected)
        );
        // The same nonce refused, not stale: give up.
        let mut auth = new();
        challenge(&mut auth, &digest("a", "")).unwrap();
        challenge(&mut auth, &digest("a", "")).unwrap(); // nothing sent in between
        send(&mut auth);
        send(&mut auth);
        assert_eq!(
            challenge(&mut auth, &digest("a", "")),
            Err(AuthError::Rejected)
        );
        // Basic refused: give up.
        let mut auth = new();
        challenge(&mut auth, "Basic realm=r").unwrap();
        assert_eq!(send(&mut auth), "Basic dTpw");
        let again = challenge(&mut auth, "Basic realm=r");
        assert_eq!(again, Err(AuthError::Rejected));
        // `stale=true` with every 401, each nonce refused at its first use: believed once.
        let mut auth = new();
        challenge(&mut auth, &digest("a", ", stale=true")).unwrap();
        send(&mut auth);
        challenge(&mut auth, &digest("b", ", stale=true")).unwrap();
        send(&mut auth);
        let again = challenge(&mut auth, &digest("c", ", stale=true"));
        assert_eq!(again, Err(AuthError::Rejected));
    }

    #[test]
    fn authenticator_explains_what_it_cannot_do() {
        let none = Authenticator::new(None).on_unauthorized(["Basic realm=\"r\""]);
        assert_eq!(none, Err(AuthError::NoCredentials));
        let mut auth = Authenticator::new(Some(Credentials::new("u", "p")));
        assert_eq!(auth.on_unauthorized([]), Err(AuthError::NoChallenge));
        let odd = "Digest nonce=n, qop=auth-int, Digest nonce=n, algorithm=SHA-512-256";
        let refused = auth.on_unauthorized(["Negotiate", "Digest realm=r", odd]);
        let offered = "Negotiate, Digest without a nonce, Digest qop=auth-int, \
                       Digest algorithm=SHA-512-256";
        assert_eq!(refused, Err(AuthError::Unsupported(offered.into())));
        let malformed = auth.on_unauthorized(["Digest realm=\"x"]);
        assert!(matches!(malformed, Err(AuthError::Malformed { .. })));
        // A malformed value next to a good one does not get in the way.
        let values = ["Digest realm=\"x", "Basic realm=r"];
        auth.on_unauthorized(values).unwrap();
        assert_eq!(auth.authorization("OPTIONS", "*").unwrap(), "Basic dTpw");
    }
}
