//! A Motion-JPEG camera over HTTP for the relay tests: `GET /stream` answers a
//! `multipart/x-mixed-replace` body of the given JPEGs in a loop at a frame rate (parts
//! with Content-Length), other paths 404, and with credentials set, a request without
//! the right Basic `Authorization` 401. It counts the connections it accepted. Stopped
//! (and its connections closed) on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub struct MjpegHttpServer {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MjpegHttpServer {
    /// Serves `frames` at `fps` on 127.0.0.1:`port` (0: any free port); `basic` is the
    /// expected `user:password`, when one is required.
    pub fn start(
        frames: Vec<Vec<u8>>,
        fps: u32,
        port: u16,
        basic: Option<&str>,
    ) -> MjpegHttpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the HTTP camera");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let expected = basic.map(|b| format!("Basic {}", base64(b.as_bytes())));
        let frames = Arc::new(frames);
        let thread = {
            let connections = connections.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let frames = frames.clone();
                    let stop = stop.clone();
                    let expected = expected.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &frames, fps, expected.as_deref(), &stop);
                    });
                }
            })
        };
        MjpegHttpServer {
            addr,
            connections,
            stop,
            thread: Some(thread),
        }
    }

    /// The stream's URL, with `userinfo` (`user:password@`) if given.
    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}{}/stream", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for MjpegHttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    frames: &[Vec<u8>],
    fps: u32,
    expected: Option<&str>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("authorization")
        {
            authorization = Some(value.trim().to_string());
        }
    }
    let mut out = stream;
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    if path != "/stream" {
        return out.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    if expected.is_some() && authorization.as_deref() != expected {
        return out.write_all(
            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    }
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
    )?;
    let interval = Duration::from_secs(1) / fps.max(1);
    for frame in frames.iter().cycle() {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut part = format!(
            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            frame.len()
        )
        .into_bytes();
        part.extend_from_slice(frame);
        part.extend_from_slice(b"\r\n");
        out.write_all(&part)?;
        std::thread::sleep(interval);
    }
    Ok(())
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
