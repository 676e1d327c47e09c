//! A private network namespace for tests that build their own network: multicast groups,
//! several servers on their own loopback addresses, a load balancer in front of them.
//!
//! The namespace is made with `ip netns add` and removed on drop, so nothing a test sends
//! leaves it. Its loopback is up, carries multicast (`224.0.0.0/4` is routed to it), and
//! sends UDP without segmentation offload, so a capture on it sees datagrams as a network
//! card would send them. Every address in 127.0.0.0/8 is local in it, as on any loopback.
//!
//! Programs run inside it through [`Netns::command`]; the test's own sockets through
//! [`Netns::run`], on a thread that joined the namespace (a thread's network namespace is
//! its own: `setns(2)`).

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace of this test process, deleted on drop.
pub struct Netns {
    name: String,
    handle: File,
}

impl Netns {
    /// Creates a namespace (its name from `tag`, this process and a counter) with its
    /// loopback up and ready for multicast. Panics, naming what failed, when it cannot be
    /// made (the tests run as root; `ip` comes from iproute2, `ethtool` from the
    /// bootstrap).
    pub fn new(tag: &str) -> Netns {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mjpeg-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let handle = match File::open(format!("/run/netns/{name}")) {
            Ok(file) => file,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "delete", &name]).status();
                panic!("cannot open network namespace {name}: {e}");
            }
        };
        let netns = Netns { name, handle };
        run_ok(netns.command("ip").args(["link", "set", "lo", "up"]));
        run_ok(
            netns
                .command("ip")
                .args(["link", "set", "lo", "multicast", "on"]),
        );
        run_ok(
            netns
                .command("ip")
                .args(["route", "add", "224.0.0.0/4", "dev", "lo"]),
        );
        // GSO would show a burst of datagrams as one packet in a capture.
        run_ok(
            netns
                .command("ethtool")
                .args(["-K", "lo", "tx-udp-segmentation", "off"]),
        );
        netns
    }

    /// The namespace's name (for `ip netns exec` in messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let fd: RawFd = self.handle.as_raw_fd();
        // SAFETY: setns(2) is a single system call, safe between fork and exec; the file
        // descriptor stays open for as long as `self`, which outlives the spawn.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        command
    }

    /// Runs `work` on a thread inside the namespace (its sockets live there) and returns
    /// what it returns; a panic in `work` is the caller's.
    pub fn run<T: Send>(&self, work: impl FnOnce() -> T + Send) -> T {
        let fd = self.handle.as_raw_fd();
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                // SAFETY: setns(2) on this thread only, with a descriptor `self` holds open.
                let joined = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
                assert_eq!(
                    joined,
                    0,
                    "setns into {}: {}",
                    self.name,
                    std::io::Error::last_os_error()
                );
                work()
            });
            match thread.join() {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs a setup command and panics with its output when it fails.
fn run_ok(command: &mut Command) {
    let shown = format!("{command:?}");
    match command.output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => panic!("{shown} did not run: {e} (run `make test` to install what is missing)"),
    }
}
