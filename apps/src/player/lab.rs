//! Lab servers (the networking lab's dialect): bare file names, `\n` lines, one UDP port
//! with whole-JPEG RTP packets, no RTCP, no DESCRIBE, no seeking.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rtsp_types::Url;

use super::Remote;
use super::pipeline::Player;
use crate::rtsp::lab::normalize_version;
use crate::rtsp::{Dialect, lab};

/// How long a lab reply may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply is complete when it has its three lines, or nothing more came for this long.
const QUIET: Duration = Duration::from_millis(200);

pub struct Lab {
    stream: TcpStream,
    file: String,
    cseq: u32,
    session: Option<String>,
}

impl Lab {
    /// Connects, SETUP on a fresh UDP port (packets go to the pipeline), PLAY.
    pub fn start(url: &Url, player: &Arc<Player>) -> Result<Lab> {
        let host = url.host_str().ok_or_else(|| anyhow!("{url}: no host"))?;
        let port = url.port().unwrap_or(554);
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host} has no address"))?;
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let _ = stream.set_nodelay(true);
        let file = url.path().trim_start_matches('/').to_string();
        if file.is_empty() {
            bail!("{url}: no file name for the lab server");
        }
        let rtp = UdpSocket::bind("0.0.0.0:0")?;
        let rtp_port = rtp.local_addr()?.port();
        let receiver = player.clone();
        std::thread::Builder::new()
            .name("rtp".into())
            .spawn(move || {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = rtp.recv(&mut buf) {
                    receiver.push_rtp(&normalize_version(&buf[..n]));
                }
            })?;
        // Lab servers take no RTCP: the monitor's reports are dropped.
        player.on_rtcp_out(|_| {})?;
        let mut session = Lab {
            stream,
            file,
            cseq: 0,
            session: None,
        };
        let reply = session.request(
            "SETUP",
            Some(("Transport", format!("RTP/UDP; client_port= {rtp_port}"))),
        )?;
        session.session = reply.session;
        session.play(None)?;
        Ok(session)
    }

    fn request(&mut self, method: &str, header: Option<(&str, String)>) -> Result<lab::LabReply> {
        self.cseq += 1;
        let header = match header {
            Some(h) => Some(h),
            None => self.session.clone().map(|s| ("Session", s)),
        };
        let bytes = lab::request(method, &self.file, self.cseq, header);
        self.stream
            .write_all(&bytes)
            .with_context(|| format!("sending {method}"))?;
        let mut data = Vec::new();
        let mut chunk = [0u8; 1024];
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let complete = data.iter().filter(|&&b| b == b'\n').count() >= 2;
            let wait = if data.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else if complete {
                Duration::from_millis(1)
            } else {
                QUIET
            };
            if wait.is_zero() {
                bail!("the lab server did not answer {method}");
            }
            self.stream.set_read_timeout(Some(wait))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !data.is_empty() {
                        break;
                    }
                }
                Err(e) => return Err(e).context("reading the lab server's reply"),
            }
        }
        let reply = match lab::parse_reply(&data) {
            Some(Ok(reply)) => reply,
            _ => bail!(
                "the lab server's reply to {method} is not RTSP: {:?}",
                String::from_utf8_lossy(&data)
            ),
        };
        match reply.code {
            200 => Ok(reply),
            404 => bail!("{}: no such file on the lab server (404)", self.file),
            code => bail!("the lab server answered {method} with {code}"),
        }
    }
}

impl Remote for Lab {
    fn play(&mut self, _from: Option<f64>) -> Result<()> {
        self.request("PLAY", None).map(|_| ())
    }

    fn pause(&mut self) -> Result<()> {
        self.request("PAUSE", None).map(|_| ())
    }

    fn keepalive(&mut self) -> bool {
        // Lab servers answer nothing but the five methods: a session cannot be probed.
        false
    }

    fn keepalive_interval(&self) -> Option<Duration> {
        None
    }

    fn teardown(&mut self) {
        let _ = self.request("TEARDOWN", None);
    }

    fn duration(&self) -> Option<f64> {
        None
    }

    fn is_tcp(&self) -> bool {
        false
    }

    fn dialect(&self) -> Dialect {
        Dialect::Lab
    }
}
