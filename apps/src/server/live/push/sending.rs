//! One connection's media: the path's frames as RTP with the push's own SSRC, sequence
//! numbers and RTP times in front of the path's shared packets, `$`-framed on the control
//! connection (RFC 2326 10.12); RTCP sender reports on the RTCP channel; the receiver's
//! reports read back.
//!
//! Newest frame wins: the sender writes one whole frame at a time and then takes the
//! path's newest, so a slow connection gets fewer frames, never a queue. A connection that
//! takes nothing for the socket's write timeout fails the push (it reconnects).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use gstmjpegrtp::rtcp::{self, interval::IntervalInput, session::RtpHeader};

use super::lock;
use crate::rtsp::interleaved;
use crate::rtsp_client::{InterleavedSink, Link};
use crate::server::live::source::clock_now_ns;
use crate::server::live::{LiveFrame, LivePath};
use crate::server::session::{self, monotonic_ns, random_u32, receiver_report};
use crate::server::stats::PushStats;

/// The RTP clock, as a u32 (RFC 2435: 90 kHz).
const CLOCK_RATE: u32 = session::CLOCK_RATE as u32;
/// How often the sender looks up from waiting for a frame (stop, sender reports).
const TICK: Duration = Duration::from_millis(100);

/// The RTP stream of one connection.
pub(super) struct Sending {
    pub ssrc: u32,
    cname: String,
    /// The RTP and RTCP interleaved channels the receiver agreed to.
    channels: (u8, u8),
    seq: u16,
    /// The RTP time of the first frame, and its capture time (system clock, ns).
    rtp_base: u32,
    anchor_ns: Option<u64>,
    counts: rtcp::sender::SenderCounts,
    started: Instant,
    next_report: Option<Instant>,
    /// The path's number of the last frame sent (gaps are frames passed over).
    last_number: Option<u64>,
}

impl Sending {
    pub fn new(channels: (u8, u8), cname: String) -> Sending {
        Sending {
            ssrc: random_u32(),
            cname,
            channels,
            seq: random_u32() as u16,
            rtp_base: random_u32(),
            anchor_ns: None,
            counts: Default::default(),
            started: Instant::now(),
            next_report: None,
            last_number: None,
        }
    }

    /// Sends the path's newest frame whenever there is a new one, and sender reports when
    /// due, until `stop` (`Ok`) or a write fails (`Err`).
    pub fn send_frames(
        &mut self,
        path: &LivePath,
        writer: &Mutex<Link>,
        stop: &AtomicBool,
        status: &Mutex<PushStats>,
    ) -> Result<()> {
        // The path's frames come through a tokio watch (the newest only): this thread
        // waits on it with a runtime of its own.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("a runtime to wait for frames")?;
        let mut frames = path.frames();
        let mut next = frames.borrow_and_update().clone();
        while !stop.load(Ordering::Acquire) {
            if let Some(frame) = next.take() {
                self.send_frame(&frame, writer, status)?;
            }
            if self.next_report.is_none_or(|at| Instant::now() >= at)
                && let Some(report) = self.sender_report(None)
            {
                write(writer, &report)?;
            }
            match runtime.block_on(async { tokio::time::timeout(TICK, frames.changed()).await }) {
                Err(_) => {}
                Ok(Ok(())) => next = frames.borrow_and_update().clone(),
                Ok(Err(_)) => return Err(anyhow!("the path is gone")),
            }
        }
        Ok(())
    }

    fn send_frame(
        &mut self,
        frame: &LiveFrame,
        writer: &Mutex<Link>,
        status: &Mutex<PushStats>,
    ) -> Result<()> {
        let skipped = match self.last_number {
            // The same frame again (the watch was set anew): nothing to send.
            Some(last) if frame.number <= last => return Ok(()),
            Some(last) => frame.number - last - 1,
            None => 0,
        };
        self.last_number = Some(frame.number);
        let ts = self.rtp_time(frame.capture_ns);
        let mut bytes = Vec::with_capacity(frame.jpeg.len() + frame.packets.len() * 16);
        let (mut packets, mut octets) = (0u64, 0u64);
        for packet in &frame.packets {
            let marker_and_type = packet.marker_and_type();
            let header = RtpHeader {
                payload_type: marker_and_type & 0x7F,
                sequence: self.seq,
                timestamp: ts,
                ssrc: self.ssrc,
            }
            .to_bytes(marker_and_type & 0x80 != 0);
            if !interleaved::append(
                &mut bytes,
                self.channels.0,
                std::iter::once(&header[..]).chain(packet.body()),
            ) {
                // Over 64 KiB cannot be framed; the payloader's MTU keeps packets under.
                continue;
            }
            self.seq = self.seq.wrapping_add(1);
            self.counts.add(packet.body_len());
            packets += 1;
            octets += (header.len() + packet.body_len()) as u64;
        }
        write(writer, &bytes)?;
        let mut status = lock(status);
        status.frames_sent += 1;
        status.packets_sent += packets;
        status.bytes_sent += octets;
        status.frames_skipped += skipped;
        Ok(())
    }

    /// The RTP time of a frame captured at `capture_ns`: the stream's clock runs with
    /// the capture clock from its first frame.
    fn rtp_time(&mut self, capture_ns: u64) -> u32 {
        let anchor = *self.anchor_ns.get_or_insert(capture_ns);
        let since = capture_ns.saturating_sub(anchor);
        self.rtp_base
            .wrapping_add(rtcp::receiver::arrival_in_rtp_units(since, CLOCK_RATE))
    }

    /// A sender report (with a BYE when `bye` gives a reason), `$`-framed for the RTCP
    /// channel, and the time of the next (RFC 3550 6.3); `None` before the first frame.
    pub fn sender_report(&mut self, bye: Option<&str>) -> Option<Vec<u8>> {
        let anchor = self.anchor_ns?;
        let now_rtp = self
            .rtp_base
            .wrapping_add(rtcp::receiver::arrival_in_rtp_units(
                clock_now_ns().saturating_sub(anchor),
                CLOCK_RATE,
            ));
        let packet = rtcp::sender::sender_report(
            self.ssrc,
            &self.cname,
            rtcp::ntp::now(),
            now_rtp,
            self.counts,
            bye,
        )
        .ok()?;
        let seconds = self.started.elapsed().as_secs_f64().max(1.0);
        let input = IntervalInput {
            members: 2,
            senders: 1,
            we_sent: true,
            session_bandwidth: f64::from(self.counts.octets) * 8.0 / seconds,
            avg_rtcp_size: (packet.len() + 28) as f64,
            initial: self.next_report.is_none(),
            reduced_minimum: false,
        };
        let random = f64::from(random_u32()) / f64::from(u32::MAX);
        let wait = rtcp::interval::randomized(&input, random);
        self.next_report = Some(Instant::now() + Duration::from_secs_f64(wait));
        let mut framed = Vec::with_capacity(packet.len() + 4);
        interleaved::append(&mut framed, self.channels.1, [&packet[..]]).then_some(framed)
    }

    /// What reads the receiver's interleaved data: its RTCP (receiver reports about our
    /// stream into `status`, a BYE into `bye`); anything else is ignored.
    pub fn rtcp_reader(
        &self,
        status: Arc<Mutex<PushStats>>,
        bye: Arc<AtomicBool>,
    ) -> InterleavedSink {
        let ssrc = self.ssrc;
        let channel = self.channels.1;
        let mut session = rtcp::Session::new(ssrc, &self.cname);
        Box::new(move |on, data| {
            if on != channel {
                return;
            }
            let events = match session.on_rtcp(data, monotonic_ns(), rtcp::ntp::now()) {
                Ok(events) => events,
                Err(_) => {
                    lock(&status).rtcp_malformed += 1;
                    return;
                }
            };
            if !events.byes.is_empty() {
                bye.store(true, Ordering::Release);
            }
            if !rtcp::session::reported_ssrcs(data).contains(&ssrc) {
                return;
            }
            let Some(peer) = session.peer_report_about(ssrc) else {
                return;
            };
            let mut status = lock(&status);
            status.receiver_report = Some(receiver_report(&peer, status.receiver_report));
        })
    }
}

/// Writes `bytes` whole on the control connection (requests go out between writes).
pub(super) fn write(writer: &Mutex<Link>, bytes: &[u8]) -> Result<()> {
    let mut link = writer
        .lock()
        .map_err(|_| anyhow!("the connection's writer is poisoned"))?;
    link.write_all(bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            anyhow!(
                "the receiver took nothing for {} s",
                crate::rtsp_client::REPLY_TIMEOUT.as_secs()
            )
        }
        _ => anyhow!("sending to the receiver: {e}"),
    })
}
