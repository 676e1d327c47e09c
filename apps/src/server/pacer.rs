//! The packet path: one thread paces every playing session. It keeps a timetable of when
//! each session's next frame is due, wakes at the earliest, has every due session put its
//! frame's datagrams into one batch (`Session::send_next`), sends the batch (`sendmmsg` on
//! the shared RTP socket), then the sender reports and BYEs that fell due, with no
//! session's lock held, and books each session's next frame. No thread, pipeline or
//! socket per session: the cost per client is a timetable entry and the packets.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Instant;

use super::live::{LiveFrame, LivePath};
use super::session::{Sent, Session};
use super::udp::send_all;

/// A session's next frame, booked for `due`.
struct Booking {
    due: Instant,
    order: u64,
    generation: u64,
    session: Arc<Session>,
}

impl PartialEq for Booking {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Booking {}
impl PartialOrd for Booking {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Booking {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// What the pacer thread is asked to do.
enum Job {
    /// Start sending a session (a clip) now, for the play numbered `generation`.
    Play(Arc<Session>, u64),
    /// Send a live path's new frame to its playing viewers now.
    Live(Arc<LivePath>, Arc<LiveFrame>),
}

/// Books sessions on the pacer thread.
#[derive(Clone)]
pub struct Pacer {
    tx: Sender<Job>,
}

pub struct Sockets {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
}

impl Pacer {
    pub fn start(sockets: Arc<Sockets>) -> std::io::Result<Pacer> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("pacer".into())
            .spawn(move || run(&rx, &sockets))?;
        Ok(Pacer { tx })
    }

    /// Starts sending `session` now, for the play numbered `generation`.
    pub fn play(&self, session: Arc<Session>, generation: u64) {
        // The pacer thread only ends with the process.
        let _ = self.tx.send(Job::Play(session, generation));
    }

    /// Sends a live path's frame to its viewers (joining sessions start with it).
    pub fn live(&self, path: Arc<LivePath>, frame: Arc<LiveFrame>) {
        let _ = self.tx.send(Job::Live(path, frame));
    }
}

/// Sends a live frame to every playing viewer of its path: one batch, then the sender
/// reports that fell due.
fn fan_out(path: &LivePath, frame: &LiveFrame, sockets: &Sockets) {
    let viewers = path.viewers();
    let now = Instant::now();
    let mut datagrams = Vec::with_capacity(viewers.len() * frame.packets.len());
    let mut reports = Vec::new();
    for session in &viewers {
        reports.extend(session.send_live(frame, now, &mut datagrams));
    }
    send_all(&sockets.rtp, &datagrams);
    // TCP viewers' frames are queued to their writers by now, UDP ones sent.
    path.fanned_out(frame.made.elapsed());
    for report in reports {
        report.send(&sockets.rtcp);
    }
}

fn run(rx: &Receiver<Job>, sockets: &Sockets) {
    let mut timetable: BinaryHeap<Reverse<Booking>> = BinaryHeap::new();
    let mut order = 0u64;
    let mut book = |timetable: &mut BinaryHeap<Reverse<Booking>>, session, generation, due| {
        order += 1;
        timetable.push(Reverse(Booking {
            due,
            order,
            generation,
            session,
        }));
    };
    loop {
        let wait = timetable
            .peek()
            .map(|b| b.0.due.saturating_duration_since(Instant::now()));
        let first = match wait {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(wait) => rx.recv_timeout(wait),
        };
        let mut job = match first {
            Ok(job) => Some(job),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Everything waiting, with only the newest frame of each live path: a pacer that
        // fell behind (or a publisher sending a flood of tiny frames) skips frames rather
        // than queueing them.
        let mut frames: Vec<(Arc<LivePath>, Arc<LiveFrame>)> = Vec::new();
        while let Some(next) = job.take().or_else(|| rx.try_recv().ok()) {
            match next {
                Job::Play(session, generation) => {
                    book(&mut timetable, session, generation, Instant::now())
                }
                Job::Live(path, frame) => {
                    match frames.iter_mut().find(|(p, _)| Arc::ptr_eq(p, &path)) {
                        Some(pending) => {
                            path.skipped();
                            pending.1 = frame;
                        }
                        None => frames.push((path, frame)),
                    }
                }
            }
        }
        for (path, frame) in frames {
            fan_out(&path, &frame, sockets);
        }
        let now = Instant::now();
        let mut due = Vec::new();
        while timetable.peek().is_some_and(|b| b.0.due <= now) {
            if let Some(Reverse(b)) = timetable.pop() {
                due.push(b);
            }
        }
        if due.is_empty() {
            continue;
        }
        let mut datagrams = Vec::new();
        let mut reports = Vec::new();
        for booking in &due {
            match booking
                .session
                .send_next(booking.generation, now, &mut datagrams)
            {
                Sent::Stale => {}
                Sent::Next { due, rtcp } => {
                    reports.extend(rtcp);
                    book(
                        &mut timetable,
                        booking.session.clone(),
                        booking.generation,
                        due,
                    );
                }
                Sent::Ended { rtcp } => reports.extend(rtcp),
            }
        }
        send_all(&sockets.rtp, &datagrams);
        for report in reports {
            report.send(&sockets.rtcp);
        }
    }
}
