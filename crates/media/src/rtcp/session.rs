//! A receiver's view of an RTP session: per-source statistics from the RTP it receives,
//! what the sources' sender reports say, what the other side reports back, and the
//! receiver reports it sends.

use rtcp_types::{
    Bye, Compound, CompoundBuilder, Packet as RtcpPacket, ReceiverReport, ReportBlock,
    RtcpPacketWriter, RtcpPacketWriterExt, Sdes, SdesChunk, SdesItem,
};

use super::interval::IntervalInput;
use super::ntp;
use super::receiver::{Jitter, Packet, Prior, Sequence, arrival_in_rtp_units};

/// The fixed RTP header fields the statistics need (RFC 3550 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

/// Why a packet was not taken into account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("{0}-byte packet is shorter than an RTP header")]
    ShortRtp(usize),
    #[error("RTP version {0}, not 2")]
    RtpVersion(u8),
    #[error("{len}-byte RTP packet whose header, extension and padding take {needed} bytes")]
    RtpLength { len: usize, needed: usize },
    #[error("payload type {0}: an RTCP packet, not RTP")]
    PayloadType(u8),
    #[error("malformed RTCP: {0}")]
    Rtcp(String),
}

impl RtpHeader {
    /// Reads the 12-byte fixed header.
    pub fn parse(data: &[u8]) -> Result<RtpHeader, PacketError> {
        let [b0, b1, s1, s2, t1, t2, t3, t4, c1, c2, c3, c4, ..] = *data else {
            return Err(PacketError::ShortRtp(data.len()));
        };
        if b0 >> 6 != 2 {
            return Err(PacketError::RtpVersion(b0 >> 6));
        }
        Ok(RtpHeader {
            payload_type: b1 & 0x7F,
            sequence: u16::from_be_bytes([s1, s2]),
            timestamp: u32::from_be_bytes([t1, t2, t3, t4]),
            ssrc: u32::from_be_bytes([c1, c2, c3, c4]),
        })
    }

    /// Where the payload of a packet of `len` bytes lies (RFC 3550 5.1, 5.3.1): after the
    /// fixed header, the CSRC list and any header extension, before any padding. `head`
    /// holds the packet's first bytes (at least up to the extension header's length
    /// field: 76 bytes are always enough), `last` its last byte (the padding count).
    pub fn payload_range(
        head: &[u8],
        len: usize,
        last: u8,
    ) -> Result<std::ops::Range<usize>, PacketError> {
        let b0 = *head.first().ok_or(PacketError::ShortRtp(len))?;
        if len < 12 || head.len() < 12 {
            return Err(PacketError::ShortRtp(len));
        }
        if b0 >> 6 != 2 {
            return Err(PacketError::RtpVersion(b0 >> 6));
        }
        let mut start = 12 + 4 * usize::from(b0 & 0x0F);
        if b0 & 0x10 != 0 {
            let words = head
                .get(start + 2..start + 4)
                .ok_or(PacketError::RtpLength {
                    len,
                    needed: start + 4,
                })?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let padding = if b0 & 0x20 != 0 { usize::from(last) } else { 0 };
        let needed = start + padding;
        if needed > len || (b0 & 0x20 != 0 && padding == 0) {
            return Err(PacketError::RtpLength { len, needed });
        }
        Ok(start..len - padding)
    }

    /// The marker bit of a packet whose second byte is `b1`.
    pub fn marker(b1: u8) -> bool {
        b1 & 0x80 != 0
    }

    /// Refuses an RTCP packet met where RTP was expected (RFC 5761 4: packet types
    /// 200-204 read as the marker bit and payload types 72-76). Other payload types pass:
    /// senders label RTP/JPEG with dynamic ones too.
    pub fn check_not_rtcp(b1: u8) -> Result<(), PacketError> {
        let payload_type = b1 & 0x7F;
        if (72..=76).contains(&payload_type) {
            return Err(PacketError::PayloadType(payload_type));
        }
        Ok(())
    }

    /// The 12-byte fixed header: version 2, no padding, extension or CSRC.
    pub fn to_bytes(&self, marker: bool) -> [u8; 12] {
        let mut h = [0u8; 12];
        h[0] = 0x80;
        h[1] = (u8::from(marker) << 7) | (self.payload_type & 0x7F);
        h[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        h[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        h[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        h
    }
}

/// The SSRCs a compound RTCP packet's report blocks (in SR and RR) are about: whom a
/// receiver is reporting on. Empty for a malformed packet.
pub fn reported_ssrcs(data: &[u8]) -> Vec<u32> {
    let mut ssrcs = Vec::new();
    let Ok(compound) = Compound::parse(data) else {
        return ssrcs;
    };
    for packet in compound.flatten() {
        match packet {
            RtcpPacket::Rr(rr) => ssrcs.extend(rr.report_blocks().map(|b| b.ssrc())),
            RtcpPacket::Sr(sr) => ssrcs.extend(sr.report_blocks().map(|b| b.ssrc())),
            _ => {}
        }
    }
    ssrcs
}

/// The last sender report heard from a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    /// When it arrived, on the session's monotonic clock (ns), for DLSR.
    pub arrival_ns: u64,
}

/// What the other side reported about a source (a report block in its SR or RR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerReport {
    /// SSRC of the participant that sent the report.
    pub reporter: u32,
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
    pub lsr: u32,
    pub dlsr: u32,
    /// RFC 3550 6.4.1: arrival - LSR - DLSR, when LSR is set.
    pub round_trip_ns: Option<u64>,
}

/// Bit and packet rates over windows of about a second.
#[derive(Debug, Clone, Copy, Default)]
struct RateMeter {
    window_start: Option<u64>,
    bytes: u64,
    packets: u64,
    bitrate: u64,
    packet_rate: f64,
}

impl RateMeter {
    const WINDOW_NS: u64 = 1_000_000_000;

    fn add(&mut self, bytes: usize, now: u64) {
        let start = *self.window_start.get_or_insert(now);
        self.bytes += bytes as u64;
        self.packets += 1;
        let elapsed = now.saturating_sub(start);
        if elapsed >= Self::WINDOW_NS {
            self.bitrate =
                (u128::from(self.bytes) * 8 * 1_000_000_000 / u128::from(elapsed)) as u64;
            self.packet_rate = self.packets as f64 * 1e9 / elapsed as f64;
            self.window_start = Some(now);
            self.bytes = 0;
            self.packets = 0;
        }
    }
}

/// One RTP source (an SSRC) of the session.
#[derive(Debug, Clone)]
pub struct Source {
    pub ssrc: u32,
    sequence: Option<Sequence>,
    jitter: Jitter,
    clock_rate: Option<u32>,
    rates: RateMeter,
    /// RTP packets seen, whatever A.1 made of them.
    packets_seen: u64,
    rr_prior: Prior,
    report_prior: Prior,
    /// Fraction lost over the last statistics interval.
    interval_fraction_lost: u8,
    /// Whether RTP arrived since the last receiver report.
    heard_since_rr: bool,
    pub sender_info: Option<SenderInfo>,
    pub peer_report: Option<PeerReport>,
    pub cname: Option<String>,
    /// BYE received, with its reason.
    pub bye: Option<String>,
}

impl Source {
    fn new(ssrc: u32) -> Source {
        Source {
            ssrc,
            sequence: None,
            jitter: Jitter::default(),
            clock_rate: None,
            rates: RateMeter::default(),
            packets_seen: 0,
            rr_prior: Prior::default(),
            report_prior: Prior::default(),
            interval_fraction_lost: 0,
            heard_since_rr: false,
            sender_info: None,
            peer_report: None,
            cname: None,
            bye: None,
        }
    }

    pub fn sequence(&self) -> Option<&Sequence> {
        self.sequence.as_ref()
    }

    pub fn jitter(&self) -> &Jitter {
        &self.jitter
    }

    pub fn clock_rate(&self) -> Option<u32> {
        self.clock_rate
    }

    pub fn packets_seen(&self) -> u64 {
        self.packets_seen
    }

    pub fn bitrate(&self) -> u64 {
        self.rates.bitrate
    }

    pub fn packet_rate(&self) -> f64 {
        self.rates.packet_rate
    }

    pub fn interval_fraction_lost(&self) -> u8 {
        self.interval_fraction_lost
    }

    /// The fraction lost over the last statistics interval, in percent.
    pub fn interval_loss_percent(&self) -> f64 {
        f64::from(self.interval_fraction_lost) * 100.0 / 256.0
    }

    /// The interarrival jitter in milliseconds (0 without a clock rate).
    pub fn jitter_ms(&self) -> f64 {
        self.clock_rate.map_or(0.0, |rate| {
            f64::from(self.jitter.value()) * 1000.0 / f64::from(rate)
        })
    }

    /// Whether the source passed probation (A.1).
    pub fn is_valid(&self) -> bool {
        self.sequence.as_ref().is_some_and(Sequence::is_valid)
    }
}

/// A source's loss crossing a threshold at the end of a statistics interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Crossing {
    pub ssrc: u32,
    /// Its loss over the interval, in percent.
    pub loss_percent: f64,
    /// Above the threshold now (it was not); else back at or under it.
    pub above: bool,
}

/// Which sources lose more than a threshold (in percent of packets per statistics
/// interval), reporting each change once.
#[derive(Debug, Clone, Default)]
pub struct LossAlarm {
    above: Vec<u32>,
}

impl LossAlarm {
    /// The valid sources whose interval loss crossed `threshold` since the last call; none
    /// when `threshold` is 0 or less (off).
    pub fn check(&mut self, sources: &[Source], threshold: f64) -> Vec<Crossing> {
        let mut crossings = Vec::new();
        if threshold <= 0.0 {
            return crossings;
        }
        for source in sources.iter().filter(|s| s.is_valid()) {
            let loss_percent = source.interval_loss_percent();
            let was_above = self.above.contains(&source.ssrc);
            let above = loss_percent > threshold;
            if above != was_above {
                if above {
                    self.above.push(source.ssrc);
                } else {
                    self.above.retain(|&s| s != source.ssrc);
                }
                crossings.push(Crossing {
                    ssrc: source.ssrc,
                    loss_percent,
                    above,
                });
            }
        }
        crossings
    }
}

/// What an RTCP packet told: the sources that said BYE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RtcpEvents {
    pub byes: Vec<(u32, Option<String>)>,
}

/// The session from one receiver's point of view.
/// The most sources a session keeps: RTP sessions here have one sender and a few
/// receivers, and every packet's lookup is linear.
pub const MAX_SOURCES: usize = 64;

#[derive(Debug, Clone)]
pub struct Session {
    pub ssrc: u32,
    pub cname: String,
    sources: Vec<Source>,
    /// Average compound RTCP packet size, UDP and IP headers included (RFC 3550 6.3.3).
    avg_rtcp_size: f64,
    rtcp_packets: u64,
    rtcp_errors: u64,
}

/// UDP and IPv4 headers, counted in the average RTCP size.
const UDP_IP_OVERHEAD: f64 = 28.0;

impl Session {
    pub fn new(ssrc: u32, cname: &str) -> Session {
        Session {
            ssrc,
            cname: cname.to_string(),
            sources: Vec::new(),
            avg_rtcp_size: 100.0,
            rtcp_packets: 0,
            rtcp_errors: 0,
        }
    }

    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Whether RTP from `ssrc` came in: a sender of this session, not only a member.
    pub fn heard_rtp_from(&self, ssrc: u32) -> bool {
        self.sources
            .iter()
            .any(|s| s.ssrc == ssrc && s.packets_seen > 0)
    }

    /// The last report block heard about `ssrc` (ours, at a sender), with its reporter.
    pub fn peer_report_about(&self, ssrc: u32) -> Option<PeerReport> {
        self.sources
            .iter()
            .find(|s| s.ssrc == ssrc)
            .and_then(|s| s.peer_report)
    }

    pub fn rtcp_errors(&self) -> u64 {
        self.rtcp_errors
    }

    /// RTCP packets received, good or not.
    pub fn rtcp_packets(&self) -> u64 {
        self.rtcp_packets
    }

    pub fn avg_rtcp_size(&self) -> f64 {
        self.avg_rtcp_size
    }

    fn source_mut(&mut self, ssrc: u32) -> &mut Source {
        let i = match self.sources.iter().position(|s| s.ssrc == ssrc) {
            Some(i) => i,
            None if self.sources.len() < MAX_SOURCES => {
                self.sources.push(Source::new(ssrc));
                self.sources.len() - 1
            }
            // A peer naming ever new SSRCs (a hostile one: real sessions have a few)
            // only churns the last entry; the sources heard first keep theirs.
            None => {
                let last = self.sources.len() - 1;
                self.sources[last] = Source::new(ssrc);
                last
            }
        };
        &mut self.sources[i]
    }

    /// Takes in one RTP packet: its first bytes (at least the 12-byte header), its size,
    /// its arrival time in ns (on any clock; only differences matter), and the clock rate
    /// of its payload type, if known.
    pub fn on_rtp(
        &mut self,
        header: &[u8],
        size: usize,
        arrival_ns: u64,
        clock_rate: Option<u32>,
    ) -> Result<Packet, PacketError> {
        let h = RtpHeader::parse(header)?;
        let source = self.source_mut(h.ssrc);
        source.packets_seen += 1;
        source.heard_since_rr = true;
        source.rates.add(size, arrival_ns);
        let kind = match source.sequence.as_mut() {
            Some(seq) => seq.update(h.sequence),
            None => {
                source.sequence = Some(Sequence::new(h.sequence));
                source
                    .sequence
                    .as_mut()
                    .map_or(Packet::Probation, |s| s.update(h.sequence))
            }
        };
        if matches!(kind, Packet::Restart) {
            source.rr_prior = Prior::default();
            source.report_prior = Prior::default();
            source.jitter = Jitter::default();
        }
        if clock_rate != source.clock_rate {
            source.clock_rate = clock_rate;
            source.jitter = Jitter::default();
        }
        if kind.counted()
            && let Some(rate) = source.clock_rate
        {
            source
                .jitter
                .update(arrival_in_rtp_units(arrival_ns, rate), h.timestamp);
        }
        Ok(kind)
    }

    /// Takes in one (compound) RTCP packet that arrived at `arrival_ns` on the session's
    /// monotonic clock, `ntp_now` being the wall-clock time then. A malformed packet is
    /// counted and reported; what was read before the error is kept.
    pub fn on_rtcp(
        &mut self,
        data: &[u8],
        arrival_ns: u64,
        ntp_now: u64,
    ) -> Result<RtcpEvents, PacketError> {
        let fail = |session: &mut Session, e: rtcp_types::RtcpParseError| {
            session.rtcp_errors += 1;
            PacketError::Rtcp(format!("{e:?}"))
        };
        self.rtcp_packets += 1;
        let compound = Compound::parse(data).map_err(|e| fail(self, e))?;
        self.avg_rtcp_size =
            (data.len() as f64 + UDP_IP_OVERHEAD) / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        let mut events = RtcpEvents::default();
        for packet in compound {
            match packet.map_err(|e| fail(self, e))? {
                RtcpPacket::Sr(sr) => {
                    self.source_mut(sr.ssrc()).sender_info = Some(SenderInfo {
                        ntp_timestamp: sr.ntp_timestamp(),
                        rtp_timestamp: sr.rtp_timestamp(),
                        packet_count: sr.packet_count(),
                        octet_count: sr.octet_count(),
                        arrival_ns,
                    });
                    let reporter = sr.ssrc();
                    for block in sr.report_blocks() {
                        self.take_report_block(reporter, &block, ntp_now);
                    }
                }
                RtcpPacket::Rr(rr) => {
                    let reporter = rr.ssrc();
                    for block in rr.report_blocks() {
                        self.take_report_block(reporter, &block, ntp_now);
                    }
                }
                RtcpPacket::Sdes(sdes) => {
                    for chunk in sdes.chunks() {
                        let cname = chunk
                            .items()
                            .find(|item| item.type_() == SdesItem::CNAME)
                            .map(|item| String::from_utf8_lossy(item.value()).into_owned());
                        if let Some(cname) = cname {
                            self.source_mut(chunk.ssrc()).cname = Some(cname);
                        }
                    }
                }
                RtcpPacket::Bye(bye) => {
                    let reason = bye
                        .reason()
                        .map(|r| String::from_utf8_lossy(r).into_owned());
                    for ssrc in bye.ssrcs() {
                        self.source_mut(ssrc).bye = Some(reason.clone().unwrap_or_default());
                        events.byes.push((ssrc, reason.clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(events)
    }

    fn take_report_block(&mut self, reporter: u32, block: &ReportBlock<'_>, ntp_now: u64) {
        let (lsr, dlsr) = (
            block.last_sender_report_timestamp(),
            block.delay_since_last_sender_report_timestamp(),
        );
        // 6.4.1: round trip = arrival - LSR - DLSR, in 1/65536 s (mod 2^32).
        let round_trip_ns = (lsr != 0).then(|| {
            let rtt = ntp::compact(ntp_now).wrapping_sub(lsr).wrapping_sub(dlsr);
            // A negative result (clocks apart, or a bogus block) wraps to a huge value.
            (rtt < 1 << 31).then(|| ntp::compact_to_ns(rtt))
        });
        let raw_lost = block.cumulative_lost() & 0xFF_FFFF;
        let cumulative_lost = ((raw_lost << 8) as i32) >> 8;
        self.source_mut(block.ssrc()).peer_report = Some(PeerReport {
            reporter,
            fraction_lost: block.fraction_lost(),
            cumulative_lost,
            extended_highest_seq: block.extended_sequence_number(),
            jitter: block.interarrival_jitter(),
            lsr,
            dlsr,
            round_trip_ns: round_trip_ns.flatten(),
        });
    }

    /// Ends a statistics interval: the fraction lost of each source over it.
    pub fn end_interval(&mut self) {
        for source in &mut self.sources {
            if let Some(seq) = &source.sequence {
                source.interval_fraction_lost = seq.fraction_lost(&mut source.report_prior);
            }
        }
    }

    /// A compound RTCP packet for now (`now_ns` on the session's monotonic clock): a
    /// receiver report with a block for each valid source heard since the last one (at
    /// most 31), then SDES with our CNAME.
    pub fn build_report(&mut self, now_ns: u64) -> Result<Vec<u8>, String> {
        self.build_compound(now_ns, None)
    }

    /// The last compound RTCP packet of a receiver leaving the session (RFC 3550 6.6):
    /// the report of [`Session::build_report`], then a BYE for our SSRC with `reason`, if
    /// any.
    pub fn build_bye(&mut self, now_ns: u64, reason: Option<&str>) -> Result<Vec<u8>, String> {
        self.build_compound(now_ns, Some(reason))
    }

    /// RR + SDES, then BYE when `bye` is set (with its optional reason).
    fn build_compound(
        &mut self,
        now_ns: u64,
        bye: Option<Option<&str>>,
    ) -> Result<Vec<u8>, String> {
        let mut rr = ReceiverReport::builder(self.ssrc);
        let mut blocks = 0;
        for source in &mut self.sources {
            let Some(seq) = &source.sequence else {
                continue;
            };
            if !seq.is_valid() || !source.heard_since_rr || source.bye.is_some() || blocks == 31 {
                continue;
            }
            source.heard_since_rr = false;
            let (lsr, dlsr) = match source.sender_info {
                Some(sr) => (
                    ntp::compact(sr.ntp_timestamp),
                    ntp::compact_duration(now_ns.saturating_sub(sr.arrival_ns)),
                ),
                None => (0, 0),
            };
            rr = rr.add_report_block(
                ReportBlock::builder(source.ssrc)
                    .fraction_lost(seq.fraction_lost(&mut source.rr_prior))
                    .cumulative_lost(seq.lost_24bit() as u32 & 0xFF_FFFF)
                    .extended_sequence_number(seq.extended_max())
                    .interarrival_jitter(source.jitter.value())
                    .last_sender_report_timestamp(lsr)
                    .delay_since_last_sender_report_timestamp(dlsr),
            );
            blocks += 1;
        }
        let sdes = Sdes::builder().add_chunk(
            SdesChunk::builder(self.ssrc).add_item(SdesItem::builder(SdesItem::CNAME, &self.cname)),
        );
        let mut compound: CompoundBuilder<'_> = Compound::builder().add_packet(rr).add_packet(sdes);
        if let Some(reason) = bye {
            let mut packet = Bye::builder().add_source(self.ssrc);
            if let Some(reason) = reason {
                packet = packet.reason(reason);
            }
            compound = compound.add_packet(packet);
        }
        let size = compound.calculate_size().map_err(|e| format!("{e:?}"))?;
        let mut out = vec![0; size];
        compound
            .write_into(&mut out)
            .map_err(|e| format!("{e:?}"))?;
        self.avg_rtcp_size =
            (out.len() as f64 + UDP_IP_OVERHEAD) / 16.0 + self.avg_rtcp_size * 15.0 / 16.0;
        Ok(out)
    }

    /// What the next RTCP interval depends on, for a receiver: the session bandwidth is
    /// `session_bandwidth` (bit/s) if given, else what the senders send as measured, but at
    /// least 64 kbit/s.
    pub fn interval_input(
        &self,
        session_bandwidth: Option<f64>,
        reduced_minimum: bool,
        initial: bool,
    ) -> IntervalInput {
        let measured: u64 = self.sources.iter().map(Source::bitrate).sum();
        IntervalInput {
            members: self.senders() + 1,
            senders: self.senders(),
            we_sent: false,
            session_bandwidth: session_bandwidth.unwrap_or((measured as f64).max(64_000.0)),
            avg_rtcp_size: self.avg_rtcp_size,
            initial,
            reduced_minimum,
        }
    }

    /// Sources that sent RTP (members and senders for the RTCP interval).
    pub fn senders(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| s.packets_seen > 0 && s.bye.is_none())
            .count()
    }
}
