//! What the server asks of the kernel at start: bigger buffers on the shared RTP and
//! RTCP sockets, and an open-file limit that does not cap the number of clients. The
//! kernel may refuse or give less; the server runs either way, and the log says what that
//! costs.

use std::io;
use std::net::UdpSocket;

use socket2::{SockRef, Socket};

/// Room for a burst of frames to every session due at the same time.
const RTP_SEND_BUFFER: usize = 8 << 20;
const RTP_SEND_SHORT: &str =
    "the pacer may wait on bursts to many sessions, and their frames leave late";

/// Room for receiver reports from many clients arriving together.
const RTCP_RECEIVE_BUFFER: usize = 1 << 20;
const RTCP_RECEIVE_SHORT: &str =
    "receiver reports arriving together may be dropped, unseen by statistics and adaptation";

/// Linux doubles the size asked for (room for its bookkeeping) and reports the double.
const REPORTED_PER_ASKED: usize = if cfg!(target_os = "linux") { 2 } else { 1 };

/// Sizes the buffers of the shared RTP socket (sending) and RTCP socket (receiving).
pub fn size_buffers(rtp: &UdpSocket, rtcp: &UdpSocket) {
    size_buffer(rtp, Buffer::Send, RTP_SEND_BUFFER, RTP_SEND_SHORT);
    size_buffer(
        rtcp,
        Buffer::Receive,
        RTCP_RECEIVE_BUFFER,
        RTCP_RECEIVE_SHORT,
    );
}

#[derive(Debug, Clone, Copy)]
enum Buffer {
    Send,
    Receive,
}

impl Buffer {
    fn option(self) -> &'static str {
        match self {
            Buffer::Send => "SO_SNDBUF",
            Buffer::Receive => "SO_RCVBUF",
        }
    }

    /// What caps the size an unprivileged process gets.
    fn cap(self) -> &'static str {
        match (self, cfg!(target_os = "linux")) {
            (Buffer::Send, true) => "net.core.wmem_max",
            (Buffer::Receive, true) => "net.core.rmem_max",
            (_, false) => "the system's socket buffer limit",
        }
    }

    fn set(self, socket: &Socket, bytes: usize) -> io::Result<()> {
        match self {
            Buffer::Send => socket.set_send_buffer_size(bytes),
            Buffer::Receive => socket.set_recv_buffer_size(bytes),
        }
    }

    fn get(self, socket: &Socket) -> io::Result<usize> {
        match self {
            Buffer::Send => socket.send_buffer_size(),
            Buffer::Receive => socket.recv_buffer_size(),
        }
    }
}

/// Asks for a `bytes` buffer; says so if the kernel refuses (a warning) or gives less
/// (debug). `short` is what a buffer too small costs.
fn size_buffer(socket: &UdpSocket, buffer: Buffer, bytes: usize, short: &str) {
    let socket = SockRef::from(socket);
    let option = buffer.option();
    if let Err(e) = buffer.set(&socket, bytes) {
        tracing::warn!("{option} {} refused ({e}): {short}", size(bytes));
        return;
    }
    match buffer.get(&socket) {
        Ok(reported) if reported < bytes * REPORTED_PER_ASKED => tracing::debug!(
            "{option}: asked for {}, the kernel gave {} (capped by {}): {short}",
            size(bytes),
            size(reported / REPORTED_PER_ASKED),
            buffer.cap()
        ),
        Ok(_) => {}
        Err(e) => tracing::debug!(
            "{option}: asked for {}, cannot read it back ({e})",
            size(bytes)
        ),
    }
}

/// `8 MiB`, `208 KiB`, `512 bytes`.
fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Lifts the soft open-file limit to the hard one: every client holds a connection.
pub fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        tracing::warn!(
            "cannot read the open-file limit (RLIMIT_NOFILE: {}): leaving it as it is, \
             and it caps how many clients can connect at once",
            io::Error::last_os_error()
        );
        return;
    }
    let wanted = most_files(limit.rlim_max);
    if limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit reads one rlimit through a pointer to a local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        tracing::warn!(
            "raising the open-file limit from {} to {} refused ({}): about {} clients can \
             connect at once",
            files(limit.rlim_cur),
            files(wanted),
            io::Error::last_os_error(),
            files(limit.rlim_cur)
        );
    } else {
        tracing::debug!(
            "open-file limit raised from {} to {}",
            files(limit.rlim_cur),
            files(wanted)
        );
    }
}

/// The highest soft limit the kernel takes: the hard limit, except that macOS refuses
/// more than `OPEN_MAX` (sys/syslimits.h) however high the hard limit is.
fn most_files(hard: libc::rlim_t) -> libc::rlim_t {
    #[cfg(target_vendor = "apple")]
    {
        const OPEN_MAX: libc::rlim_t = 10240;
        hard.min(OPEN_MAX)
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        hard
    }
}

fn files(limit: libc::rlim_t) -> String {
    if limit == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        limit.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(8 << 20), "8 MiB");
        assert_eq!(size(212_992), "208 KiB");
        assert_eq!(size((1 << 20) + 512), "1024 KiB");
        assert_eq!(size(512), "512 bytes");
    }

    #[test]
    fn each_buffer_is_sized_on_its_own_option() {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Sizes below every default cap (net.core.[rw]mem_max is 208 KiB by default).
        size_buffer(&socket, Buffer::Send, 48 << 10, "");
        size_buffer(&socket, Buffer::Receive, 80 << 10, "");
        let socket = SockRef::from(&socket);
        assert_eq!(
            socket.send_buffer_size().unwrap(),
            (48 << 10) * REPORTED_PER_ASKED
        );
        assert_eq!(
            socket.recv_buffer_size().unwrap(),
            (80 << 10) * REPORTED_PER_ASKED
        );
    }
}
