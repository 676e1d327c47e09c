//! A published path (`--publish NAME`): its pipeline is an RTP input
//! ([`Runner::start_rtp_input`]) that a publisher's session pushes into. The path runs
//! whether or not anyone watches (an idle input costs nothing); it makes frames only
//! while a publisher records, and its viewers wait for them otherwise.
//!
//! The [`PublishSlot`] is what the path and its publisher share: the running input (new
//! at each start of the pipeline), which session holds the path, and where the receiver
//! reports about the publisher's stream go.

use std::sync::{Arc, Mutex, MutexGuard};

use super::Feeder;
use super::source::{Events, RtpInput, Runner, Running, Upstream};

/// Where receiver reports about a publisher's stream go (its RTCP port or channel).
pub type RtcpSink = Arc<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Default)]
pub struct PublishSlot {
    inner: Mutex<SlotInner>,
}

#[derive(Default)]
struct SlotInner {
    input: Option<RtpInput>,
    /// The session that publishes (from SETUP to its end).
    holder: Option<String>,
    rtcp_sink: Option<RtcpSink>,
}

impl PublishSlot {
    fn lock(&self) -> MutexGuard<'_, SlotInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session holding the path, if any.
    pub fn holder(&self) -> Option<String> {
        self.lock().holder.clone()
    }

    /// Gives the path to session `id`; returns the session it took it from.
    pub fn claim(&self, id: &str) -> Option<String> {
        let mut inner = self.lock();
        // The previous holder's reports stop here (its connection's writer is let go).
        inner.rtcp_sink = None;
        inner.holder.replace(id.to_string())
    }

    /// Session `id` no longer publishes (nothing changes if another holds the path).
    pub fn release(&self, id: &str) {
        let mut inner = self.lock();
        if inner.holder.as_deref() == Some(id) {
            inner.holder = None;
            inner.rtcp_sink = None;
        }
    }

    /// Where receiver reports go while session `id` records.
    pub fn set_rtcp_sink(&self, id: &str, sink: RtcpSink) {
        let mut inner = self.lock();
        if inner.holder.as_deref() == Some(id) {
            inner.rtcp_sink = Some(sink);
        }
    }

    /// One RTP packet of the publisher's.
    pub fn push_rtp(&self, packet: &[u8]) {
        if let Some(input) = &self.lock().input {
            input.push_rtp(packet);
        }
    }

    /// One RTCP packet of the publisher's (its sender reports).
    pub fn push_rtcp(&self, packet: &[u8]) {
        if let Some(input) = &self.lock().input {
            input.push_rtcp(packet);
        }
    }

    /// The publisher's loss and jitter as our input sees them.
    pub fn upstream(&self) -> Upstream {
        self.lock()
            .input
            .as_ref()
            .map(RtpInput::upstream)
            .unwrap_or_default()
    }

    fn send_rtcp_out(&self, report: &[u8]) {
        let sink = self.lock().rtcp_sink.clone();
        if let Some(sink) = sink {
            sink(report);
        }
    }
}

/// `--publish NAME`: the path's pipeline is an RTP input fed by its publisher.
pub struct PublishFeeder(pub Arc<PublishSlot>);

impl Feeder for PublishFeeder {
    fn start(&self, mtu: u32, events: Arc<dyn Events>) -> anyhow::Result<Box<dyn Running>> {
        let (runner, input) = Runner::start_rtp_input(mtu, events)?;
        let slot = Arc::downgrade(&self.0);
        input.on_rtcp_out(move |report| {
            if let Some(slot) = slot.upgrade() {
                slot.send_rtcp_out(report);
            }
        });
        self.0.lock().input = Some(input);
        Ok(Box::new(runner))
    }

    fn describe(&self) -> String {
        "RTP from a publisher".to_string()
    }
}
