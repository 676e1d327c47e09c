//! `tcpdump` on a test namespace's loopback: what went on the wire, one line per datagram
//! (the namespace's loopback has no UDP segmentation offload, so a capture sees datagrams
//! as a network card would send them). For the multicast tests and benchmark.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddrV4;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::netns::Netns;

/// A capture running in a namespace, stopped (and read) by [`Capture::stop`]; killed on
/// drop.
pub struct Capture {
    child: Child,
    out: tempfile::NamedTempFile,
    /// tcpdump's own lines after it started listening (its counts at the end).
    said: mpsc::Receiver<String>,
}

/// One captured UDP datagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Datagram {
    /// When it was captured, in seconds since the Unix epoch (the system clock).
    pub at: f64,
    /// `ADDRESS.PORT` as tcpdump writes it.
    pub from: String,
    pub to: SocketAddrV4,
    /// The UDP payload's length.
    pub length: usize,
}

/// What a stopped capture saw.
#[derive(Debug, Clone)]
pub struct Captured {
    pub datagrams: Vec<Datagram>,
    /// Packets the kernel dropped before tcpdump read them (its closing count).
    pub dropped: u64,
}

impl Capture {
    /// Starts capturing what matches `filter` (a pcap filter, e.g. `udp and dst net
    /// 239.255.77.0/29`) on the namespace's `lo`, and waits until tcpdump listens.
    pub fn start(netns: &Netns, filter: &str) -> Capture {
        let out = tempfile::NamedTempFile::new().expect("a capture file");
        let mut child = netns
            .command("tcpdump")
            // An 8 MiB buffer: no drops at the rates of the tests and the benchmark.
            .args([
                "-i", "lo", "-n", "-l", "-q", "-p", "-tt", "-B", "8192", filter,
            ])
            .stdout(out.reopen().expect("the capture file"))
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("tcpdump runs (scripts/bootstrap.sh installs it)");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, said) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            let mut listening = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !listening && line.contains("listening on lo") {
                    listening = true;
                    let _ = ready_tx.send(());
                }
                let _ = tx.send(line);
            }
        });
        assert!(
            ready.recv_timeout(Duration::from_secs(10)).is_ok(),
            "tcpdump did not start listening on lo"
        );
        Capture { child, out, said }
    }

    /// Stops the capture (SIGINT: tcpdump writes out what it has) and reads it.
    pub fn stop(mut self) -> Captured {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid");
        // SAFETY: kill(2) on our own child process.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let _ = self.child.wait();
        let mut text = String::new();
        self.out
            .reopen()
            .expect("the capture file")
            .read_to_string(&mut text)
            .expect("read the capture");
        let dropped = self
            .said
            .try_iter()
            .find_map(|l| {
                l.strip_suffix(" packets dropped by kernel")
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0);
        Captured {
            datagrams: text.lines().filter_map(parse_line).collect(),
            dropped,
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of `tcpdump -n -q -tt`:
/// `1700000000.000001 IP 127.0.1.1.43606 > 239.255.77.1.43116: UDP, length 1400`.
pub fn parse_line(line: &str) -> Option<Datagram> {
    let mut words = line.split_whitespace();
    let at = words.next()?.parse().ok()?;
    words.next().filter(|w| *w == "IP")?;
    let from = words.next()?.to_string();
    words.next().filter(|w| *w == ">")?;
    let to = words.next()?.trim_end_matches(':');
    let (ip, port) = to.rsplit_once('.')?;
    let length = line.rsplit_once("length ")?.1.trim().parse().ok()?;
    Some(Datagram {
        at,
        from,
        to: SocketAddrV4::new(ip.parse().ok()?, port.parse().ok()?),
        length,
    })
}

/// Seconds since the Unix epoch now, on the clock tcpdump stamps datagrams with.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcpdump_lines() {
        let d = parse_line(
            "1700000000.888581 IP 127.0.1.1.43606 > 239.255.12.2.43116: UDP, length 1400",
        )
        .unwrap();
        assert_eq!(d.at, 1_700_000_000.888581);
        assert_eq!(d.from, "127.0.1.1.43606");
        assert_eq!(d.to, "239.255.12.2:43116".parse().unwrap());
        assert_eq!(d.length, 1400);
        assert!(parse_line("listening on lo, link-type EN10MB").is_none());
        assert!(parse_line("").is_none());
        assert!(
            parse_line("10:48:32.888581 IP 127.0.1.1.1 > 239.1.1.1.2: UDP, length 1").is_none()
        );
    }
}
