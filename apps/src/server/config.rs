//! `--config FILE`: a deployment in one TOML file, the server's options and every path.
//! Command-line flags override the file. The commented example is
//! `config/mjpeg-rtsp-server.toml`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::stats::StatsFormat;

/// The file, as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    /// Clip files or folders of clips (relative to the file's folder).
    #[serde(default)]
    pub clips: Vec<PathBuf>,
    /// Live paths by name.
    #[serde(default)]
    pub paths: BTreeMap<String, PathSection>,
    /// Who may read and publish what. None: every path is open to anyone.
    #[serde(default)]
    pub users: Vec<UserSection>,
}

/// `[[users]]`: a user, its password (or its hash) and its rights.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub name: String,
    pub password: Option<String>,
    /// Hex SHA-256 of `name:mjpeg-rtsp:password` (`mjpeg-rtsp-server --hash-password NAME`).
    pub password_sha256: Option<String>,
    /// Path names this user may play, or `"*"` for all.
    #[serde(default)]
    pub read: Vec<String>,
    /// Path names this user may publish to, or `"*"` for all.
    #[serde(default)]
    pub publish: Vec<String>,
}

/// Leaves the password out.
impl std::fmt::Debug for UserSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSection")
            .field("name", &self.name)
            .field("read", &self.read)
            .field("publish", &self.publish)
            .finish_non_exhaustive()
    }
}

/// `[server]`: the command line's options, with the same names (`-` as `_`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    /// The HTTP port (0: any free one).
    pub http_port: Option<u16>,
    /// `false`: as `--no-http`.
    pub http: Option<bool>,
    pub fps: Option<u32>,
    pub mtu: Option<u32>,
    #[serde(rename = "loop")]
    pub looping: Option<bool>,
    /// `false`: as `--no-adapt`.
    pub adapt: Option<bool>,
    /// Percent.
    pub adapt_threshold: Option<f64>,
    /// Seconds.
    pub session_timeout: Option<u64>,
    pub max_sessions: Option<usize>,
    /// 0: no limit.
    pub max_connections_per_ip: Option<usize>,
    pub stats: Option<bool>,
    pub stats_format: Option<StatsFormatName>,
    /// Seconds.
    pub stats_interval: Option<f64>,
    /// Live sources' defaults.
    pub always_on: Option<bool>,
    /// Seconds.
    pub linger: Option<f64>,
    /// A new publisher replaces a path's current one (as `--publish-takeover`).
    pub publish_takeover: Option<bool>,
    /// Paths (clips too) anyone may read without credentials when there are users.
    #[serde(default)]
    pub public_paths: Vec<String>,
    /// PEM certificate chain (as `--tls-cert`; relative to the file's folder).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (as `--tls-key`; relative to the file's folder).
    pub tls_key: Option<PathBuf>,
    /// The RTSPS port (0: any free one).
    pub rtsps_port: Option<u16>,
    /// The IPv4 CIDR block multicast groups come from (as `--multicast-range`).
    pub multicast_range: Option<String>,
    /// The TTL of multicast packets (as `--multicast-ttl`).
    pub multicast_ttl: Option<u8>,
}

/// `stats_format = "text" | "json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatsFormatName {
    Text,
    Json,
}

impl From<StatsFormatName> for StatsFormat {
    fn from(name: StatsFormatName) -> StatsFormat {
        match name {
            StatsFormatName::Text => StatsFormat::Text,
            StatsFormatName::Json => StatsFormat::Json,
        }
    }
}

/// `[paths.NAME]`: what feeds a live path, and when it runs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathSection {
    /// A gst-launch description whose output is JPEG images (as `--source`)...
    pub source: Option<String>,
    /// ... or a camera's `rtsp://` or `http://` URL (as `--relay`) ...
    pub relay: Option<String>,
    /// ... or `true`: clients publish to it (as `--publish`).
    pub publish: Option<bool>,
    /// Run whether or not anyone watches (the server's `always_on` otherwise).
    pub always_on: Option<bool>,
    /// Seconds an on-demand source runs after its last viewer leaves.
    pub linger: Option<f64>,
    /// Anyone may read it without credentials (when there are users).
    pub public: Option<bool>,
    /// `rtsp://[user:password@]host[:port]/path` URLs the path is sent to (as `--push`).
    #[serde(default)]
    pub push: Vec<String>,
}

/// Why a configuration file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("{path}: path {name:?} needs one of source, relay or publish = true")]
    NoSource { path: PathBuf, name: String },
    #[error("{path}: user {name:?}: {what}")]
    User {
        path: PathBuf,
        name: String,
        what: &'static str,
    },
    #[error("{path}: tls_cert and tls_key go together")]
    TlsPair { path: PathBuf },
    #[error("{path}: multicast_range {error}")]
    MulticastRange {
        path: PathBuf,
        error: super::multicast::addresses::RangeError,
    },
    #[error("{path}: path {name:?}: {what} must be a number of seconds from 0.05 to 86400")]
    Seconds {
        path: PathBuf,
        name: String,
        what: &'static str,
    },
}

impl FileConfig {
    /// Reads `path`; clip paths become relative to its folder.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = FileConfig::parse(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let folder = path.parent().unwrap_or(Path::new("."));
        let server = &mut config.server;
        for file in config
            .clips
            .iter_mut()
            .chain(server.tls_cert.as_mut())
            .chain(server.tls_key.as_mut())
        {
            if file.is_relative() {
                *file = folder.join(&*file);
            }
        }
        config.check(path)?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<FileConfig, toml::de::Error> {
        toml::from_str(text)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(ConfigError::TlsPair {
                path: path.to_path_buf(),
            });
        }
        if let Some(range) = &self.server.multicast_range {
            super::multicast::parse_range(range).map_err(|error| ConfigError::MulticastRange {
                path: path.to_path_buf(),
                error,
            })?;
        }
        for (name, section) in &self.paths {
            let feeds = usize::from(section.source.is_some())
                + usize::from(section.relay.is_some())
                + usize::from(section.publish == Some(true));
            if feeds != 1 {
                return Err(ConfigError::NoSource {
                    path: path.to_path_buf(),
                    name: name.clone(),
                });
            }
            if section.linger.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
                return Err(ConfigError::Seconds {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    what: "linger",
                });
            }
        }
        for (i, user) in self.users.iter().enumerate() {
            let bad = |what| ConfigError::User {
                path: path.to_path_buf(),
                name: user.name.clone(),
                what,
            };
            if user.name.is_empty() || user.name.contains(':') || user.name.contains('"') {
                return Err(bad("a name must be non-empty, without ':' or '\"'"));
            }
            if self.users[..i].iter().any(|u| u.name == user.name) {
                return Err(bad("named twice"));
            }
            match (&user.password, &user.password_sha256) {
                (Some(_), None) => {}
                (None, Some(hash))
                    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {}
                (None, Some(_)) => return Err(bad("password_sha256 must be 64 hex digits")),
                _ => return Err(bad("needs one of password or password_sha256")),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_in_the_repository_parses() {
        let text = include_str!("../../../config/mjpeg-rtsp-server.toml");
        // The example's push is commented out (it names a documentation address): the
        // line must still read as it says.
        let push = "# push = [\"rtsp://publisher:secret@192.0.2.20:8554/test\"]";
        assert!(text.contains(push));
        let text = text.replace(push, &push[2..]);
        let config = FileConfig::parse(&text).expect("the example parses");
        assert_eq!(config.server.port, Some(8554));
        assert_eq!(config.server.http_port, Some(8080));
        assert_eq!(config.server.stats_format, Some(StatsFormatName::Json));
        assert_eq!(
            config.server.multicast_range.as_deref(),
            Some(super::super::multicast::DEFAULT_RANGE)
        );
        assert_eq!(
            config.server.multicast_ttl,
            Some(super::super::multicast::DEFAULT_TTL)
        );
        assert!(config.paths.contains_key("cam"));
        assert!(
            config.paths["cam"]
                .source
                .as_deref()
                .is_some_and(|s| s.contains("v4l2src"))
        );
        assert_eq!(config.paths["test"].push.len(), 1);
        config
            .check(Path::new("example.toml"))
            .expect("the example is complete");
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = FileConfig::parse("[server]\nprot = 1\n").unwrap_err();
        assert!(unknown.to_string().contains("prot"), "{unknown}");
        let wrong_type = FileConfig::parse("[server]\nport = \"x\"\n").unwrap_err();
        assert!(wrong_type.to_string().contains("port"), "{wrong_type}");
        let empty = FileConfig::parse("[paths.cam]\nalways_on = true\n").unwrap();
        assert!(matches!(
            empty.check(Path::new("f.toml")),
            Err(ConfigError::NoSource { .. })
        ));
        let user = |body: &str| {
            let config = FileConfig::parse(&format!("[[users]]\n{body}")).unwrap();
            config.check(Path::new("f.toml"))
        };
        let hash = "ab".repeat(32);
        assert!(user(&format!("name = \"a\"\npassword_sha256 = \"{hash}\"")).is_ok());
        for bad in [
            "name = \"a\"".to_string(),
            "name = \"a\"\npassword = \"p\"\npassword_sha256 = \"{hash}\"".replace("{hash}", &hash),
            "name = \"a\"\npassword_sha256 = \"xyz\"".to_string(),
            "name = \"a:b\"\npassword = \"p\"".to_string(),
            "name = \"\"\npassword = \"p\"".to_string(),
            "name = \"a\"\npassword = \"p\"\n[[users]]\nname = \"a\"\npassword = \"q\"".to_string(),
        ] {
            assert!(matches!(user(&bad), Err(ConfigError::User { .. })), "{bad}");
        }
        let with_users = FileConfig::parse(
            "[server]\npublic_paths = [\"c\"]\n[paths.p]\npublish = true\npublic = true\n\
             [[users]]\nname = \"v\"\npassword = \"secret-pw\"\nread = [\"*\"]\n",
        )
        .unwrap();
        assert_eq!(with_users.users[0].read, ["*"]);
        assert_eq!(with_users.server.public_paths, ["c"]);
        assert_eq!(with_users.paths["p"].public, Some(true));
        assert!(!format!("{with_users:?}").contains("secret-pw"));
        let negative = FileConfig::parse("[paths.cam]\nsource = \"x\"\nlinger = -1.0\n").unwrap();
        assert!(matches!(
            negative.check(Path::new("f.toml")),
            Err(ConfigError::Seconds { .. })
        ));
        let unicast = FileConfig::parse("[server]\nmulticast_range = \"10.1.0.0/16\"\n").unwrap();
        let error = unicast.check(Path::new("f.toml")).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("f.toml: multicast_range 10.1.0.0/16 is not a multicast range"),
            "{error}"
        );
        let ttl = FileConfig::parse("[server]\nmulticast_ttl = 300\n").unwrap_err();
        assert!(ttl.to_string().contains("multicast_ttl"), "{ttl}");
        let half = FileConfig::parse("[server]\ntls_cert = \"cert.pem\"\n").unwrap();
        assert!(matches!(
            half.check(Path::new("f.toml")),
            Err(ConfigError::TlsPair { .. })
        ));
    }

    #[test]
    fn tls_files_are_relative_to_the_config_file() {
        let dir = tempfile_dir();
        let path = dir.join("server.toml");
        std::fs::write(
            &path,
            "[server]\ntls_cert = \"certs/cert.pem\"\ntls_key = \"/etc/key.pem\"\nrtsps_port = 0\n",
        )
        .unwrap();
        let config = FileConfig::load(&path).unwrap();
        assert_eq!(config.server.tls_cert, Some(dir.join("certs/cert.pem")));
        assert_eq!(config.server.tls_key, Some(PathBuf::from("/etc/key.pem")));
        assert_eq!(config.server.rtsps_port, Some(0));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh folder of this test's own (the apps crate has no tempfile).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mjpeg-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
