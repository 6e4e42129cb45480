//! The only thing the control plane sees of the data plane.
//!
//! The control plane and the data plane talk exclusively through the typed values in this
//! crate, carried over bounded crossbeam channels:
//!
//! ```text
//!  control plane (tokio)                          data plane (one worker per pinned core)
//!  ───────────────────────  Command (bounded, one queue per worker)  ─────────────────────
//!  DataplaneHandle::send ────────────────────────────────────────────► Relay::handle_command
//!  DataplaneHandle::events ◄───────────── Event (one bounded queue) ── Relay::poll_event
//! ```
//!
//! Invariants:
//! - A [`Command`] is complete and self-contained: the worker never calls back to ask.
//! - The control plane allocates every leg's local port ([`PortPlan`]); the port decides the
//!   worker, so a [`LegId`] alone is enough to route a command (see [`LegId::port`]).
//! - Workers send events with `try_send`; when the queue is full the event is dropped and
//!   counted by the worker, never blocked on.
//! - A port pair is handed out again only once the worker owning it has removed the pair's
//!   previous leg (the worker marks it in [`RetiredLegs`]), and commands for a leg the
//!   [`PortPlan`] no longer holds are refused ([`DpError::StaleLeg`]): nothing sent or
//!   reported for an old generation of a port can touch its new leg. See [`PortPlan`].
//!
//! This contract copies rtpengine's user-space → fast-path split (`enum rtpengine_command`,
//! `struct rtpengine_target_info`, `MSM_IGNORE/DROP/PROPAGATE`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

mod clip;
mod handle;
mod plan;
pub use clip::{
    alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear, ClipError, ALAW_SILENCE,
    ULAW_SILENCE,
};
pub use handle::{DataplaneHandle, DpError, WorkerLink};
pub use plan::{PortPlan, RetiredLegs};

/// Identifies one media leg: its local media address (an index into the data plane's
/// addresses, 0 = the first), its local RTP port (even; RTCP is the port above) and a
/// generation counter, so that a reused address and port never alias an old leg (the counter
/// wraps after 2048 reuses of one address and port).
///
/// Bits 0–15: port; 16–26: generation; 27–31: address index. Four bytes, so that a leg's
/// hot state still fits its cache line. 32 addresses × 32 256 port pairs (ports 1024..=65535)
/// hold over a million legs on one data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u32);

/// How many media addresses one data plane can have ([`LegId::addr`] has five bits).
pub const MAX_ADDRESSES: usize = 32;

/// Generations wrap at this value (eleven bits).
pub const GENERATIONS: u16 = 1 << 11;

impl LegId {
    /// A leg on the first media address, from its RTP port and generation (taken modulo
    /// [`GENERATIONS`]).
    #[must_use]
    pub const fn new(port: u16, generation: u16) -> Self {
        Self::at(0, port, generation)
    }
    /// A leg on media address `addr` (an index, taken modulo [`MAX_ADDRESSES`]), from its RTP
    /// port and generation (modulo [`GENERATIONS`]).
    #[must_use]
    pub const fn at(addr: u8, port: u16, generation: u16) -> Self {
        Self((((addr as u32) & 0x1f) << 27) | (((generation as u32) & 0x7ff) << 16) | port as u32)
    }
    /// The leg's local RTP port (RTCP is `port + 1`).
    #[must_use]
    pub const fn port(self) -> u16 {
        (self.0 & 0xffff) as u16
    }
    /// The generation of the address and port this leg holds (`0..GENERATIONS`).
    #[must_use]
    pub const fn generation(self) -> u16 {
        ((self.0 >> 16) & 0x7ff) as u16
    }
    /// The index of the leg's local media address (0 = the first).
    #[must_use]
    pub const fn addr(self) -> u8 {
        (self.0 >> 27) as u8
    }
}

impl fmt::Display for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr() {
            0 => write!(f, "leg{}.{}", self.port(), self.generation()),
            a => write!(f, "leg{a}/{}.{}", self.port(), self.generation()),
        }
    }
}

/// An audio codec the data plane can generate announcements in and convert between: a
/// bridge between a PCMU leg and a PCMA leg converts each packet (see [`PayloadTypes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The static RTP payload type (RFC 3551).
    #[must_use]
    pub const fn payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }
    /// The codec for a static payload type, if we can generate it.
    #[must_use]
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(Self::Pcmu),
            8 => Some(Self::Pcma),
            _ => None,
        }
    }
}

/// A leg's negotiated RTP payload types (the RFC 3264 agreement with its peer): the audio
/// codec with the payload type number the peer uses for it, and RFC 4733 telephone-event's
/// number if negotiated. One agreement serves both directions (an answer keeps the offer's
/// numbers), so the relay reads packets from the peer and writes packets to it with these.
///
/// When two bridged legs' payload types differ, the relay maps each packet relayed from A to
/// B: A's audio becomes B's audio (µ-law ↔ A-law converted in place when the laws differ, the
/// payload type byte rewritten, the marker bit kept), A's telephone-event becomes B's (never
/// transcoded; dropped as [`DropReason::UnmappedPayloadType`] when B negotiated none), and
/// any other payload type (comfort noise 13, …) passes unchanged when the laws match and is
/// dropped as [`DropReason::UnmappedPayloadType`] when they differ. Equal payload types on
/// both legs (the usual case) relay every packet untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadTypes {
    /// The audio codec.
    pub codec: Codec,
    /// Its RTP payload type as the peer numbers it (0 for PCMU, 8 for PCMA, or a dynamic
    /// number the peer chose; 7 bits).
    pub audio: u8,
    /// The peer's telephone-event (RFC 4733 DTMF) payload type, if negotiated (7 bits).
    pub telephone_event: Option<u8>,
}

impl PayloadTypes {
    /// A codec at its static payload type, without telephone-event: what
    /// [`LegSpec::codec`] and [`Command::SetRemote`]'s `codec` imply.
    #[must_use]
    pub const fn of(codec: Codec) -> Self {
        Self {
            codec,
            audio: codec.payload_type(),
            telephone_event: None,
        }
    }

    /// Whether packets from a leg with these payload types reach a leg with `to`'s
    /// unchanged: same codec and audio number, and the same telephone-event number (or none
    /// on our side, whose telephone-event packets cannot exist).
    #[must_use]
    pub const fn relays_unchanged_to(&self, to: &Self) -> bool {
        let same_te = match (self.telephone_event, to.telephone_event) {
            (None, _) => true,
            (Some(a), Some(b)) => a == b,
            (Some(_), None) => false,
        };
        matches!(
            (self.codec, to.codec),
            (Codec::Pcmu, Codec::Pcmu) | (Codec::Pcma, Codec::Pcma)
        ) && self.audio == to.audio
            && same_te
    }
}

/// What to do with a packet arriving on a leg from an address other than the leg's remote.
/// Mirrors rtpengine's `MSM_IGNORE/DROP/PROPAGATE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrcMismatch {
    /// Accept it as if it came from the remote.
    Ignore,
    /// Drop it and count it ([`DropReason::SrcMismatch`]).
    Drop,
    /// Drop it, count it, and report the first one per leg as [`Event::SrcMismatch`].
    Report,
}

/// How a leg learns ("latches onto") the address its peer really sends RTP from, which may
/// differ from the address in its SDP (symmetric RTP behind NAT).
///
/// The rules every mode shares, which keep a third party spraying the relay's ports from
/// taking a stream (the "RTP Bleed" class of flaw):
/// - before the leg has a signalled remote ([`LegSpec::remote`] or [`Command::SetRemote`])
///   nothing latches: every source is foreign;
/// - the first RTP packet accepted since the remote was set *establishes* the latch; an
///   established latch never moves except by signalling (another [`Command::SetRemote`]);
/// - every packet refused is counted ([`DropReason::SrcMismatch`]) and handled by the leg's
///   [`SrcMismatch`] policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Latch {
    /// Never learn: RTP is accepted only from the signalled remote (IP and port).
    Off,
    /// Learn only from the signalled remote's IP, any port (a port-rewriting NAT or a phone
    /// that sends from another port than it receives on): the first RTP packet from that IP
    /// becomes the remote, reported as [`Event::RemoteLearned`] when the port differs. The
    /// safe default.
    Signalled,
    /// The peer is behind a NAT that rewrites its address: as [`Self::Signalled`], and in
    /// addition a source at *any* address may become the remote, but only within `window`
    /// after the remote was set, and only once [`LATCH_PROBATION`] RTP packets from it in a
    /// row carried one SSRC with consecutive sequence numbers (the packets on probation are
    /// refused). Reported as [`Event::RemoteLearned`].
    Nat {
        /// How long after the remote is set a foreign address may be learned.
        window: Duration,
    },
}

/// How many consecutive RTP packets (one SSRC, sequence numbers +1) a source at a foreign
/// address must send before a [`Latch::Nat`] leg latches onto it (RFC 3550 A.1's
/// `MIN_SEQUENTIAL`).
pub const LATCH_PROBATION: u8 = 2;

/// Everything the data plane needs to create a leg. Read-only after [`Command::AddLeg`]
/// except through [`Command::SetRemote`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSpec {
    /// The leg's id; its port is the local RTP port to receive on (RTCP on `port + 1`).
    pub id: LegId,
    /// Where the peer said (in SDP) it receives RTP; RTCP goes to `port + 1`.
    /// `None` until the answer is known.
    pub remote: Option<SocketAddr>,
    /// How the leg learns where its peer really sends from (see [`Latch`]).
    pub latch: Latch,
    /// What to do with packets from other sources.
    pub src_mismatch: SrcMismatch,
    /// The codec negotiated on this leg, used for announcements sent to it; the leg's
    /// payload types start as [`PayloadTypes::of`] it (see [`Command::SetPayloadTypes`]).
    pub codec: Codec,
    /// Report [`Event::MediaTimeout`] when no RTP has arrived for this long (after the
    /// first packet, or after the remote is set). `None` disables the check.
    pub media_timeout: Option<Duration>,
}

/// One direction's SRTP keying for a leg (RFC 4568 SDES): a crypto-suite and a master key
/// with its salt. In SDES each side's `a=crypto` carries the key *it sends with*, so a leg's
/// [`SrtpKeys::recv`] comes from the peer's attribute and [`SrtpKeys::send`] from ours.
/// `Debug` does not print the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKey {
    /// The crypto-suite.
    pub suite: srtp::Suite,
    /// The master key and salt.
    pub key: srtp::MasterKey,
}

impl From<&srtp::CryptoAttr> for SrtpKey {
    fn from(a: &srtp::CryptoAttr) -> Self {
        Self {
            suite: a.suite,
            key: a.key.clone(),
        }
    }
}

/// The SRTP keys of one leg (see [`Command::SetSrtp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// Decrypts and authenticates what the leg's peer sends (the peer's `a=crypto` key).
    pub recv: SrtpKey,
    /// Encrypts and authenticates what the data plane sends to the peer, relayed or
    /// announcement (our `a=crypto` key).
    pub send: SrtpKey,
}

/// A prompt, pre-encoded in both G.711 laws, 8 kHz mono. Lengths are whole 20 ms frames
/// (multiples of 160 bytes); the loader pads with silence.
#[derive(Clone, PartialEq, Eq)]
pub struct Clip {
    /// A name for logs.
    pub name: String,
    /// µ-law samples.
    pub pcmu: Vec<u8>,
    /// A-law samples.
    pub pcma: Vec<u8>,
}

impl fmt::Debug for Clip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clip")
            .field("name", &self.name)
            .field("frames", &(self.pcmu.len() / 160))
            .finish()
    }
}

impl Clip {
    /// Samples per 20 ms frame at 8 kHz.
    pub const FRAME: usize = 160;
    /// The encoded samples for a codec.
    #[must_use]
    pub fn samples(&self, codec: Codec) -> &[u8] {
        match codec {
            Codec::Pcmu => &self.pcmu,
            Codec::Pcma => &self.pcma,
        }
    }
}

/// An instruction from the control plane to one worker.
#[derive(Debug, Clone)]
pub enum Command {
    /// Create a leg and start receiving on its port pair.
    AddLeg(LegSpec),
    /// Set (or change) where the leg's peer receives RTP; RTCP goes to `port + 1`. Re-arms
    /// latching (see [`Latch`]): the only way to move an established latch.
    SetRemote {
        /// The leg.
        leg: LegId,
        /// The peer's RTP address from SDP.
        remote: SocketAddr,
        /// The codec negotiated with the peer. When it differs from the leg's current
        /// codec, the leg's payload types become [`PayloadTypes::of`] it (telephone-event
        /// forgotten); when it is the same, they stay as [`Self::SetPayloadTypes`] left them.
        codec: Codec,
    },
    /// Set the leg's negotiated payload types (codec, its number, telephone-event), from the
    /// SDP agreement with the leg's peer. Send it after [`Self::AddLeg`] and after every
    /// [`Self::SetRemote`] once the agreement is known; it also sets the codec announcements
    /// use, and announcements carry `types.audio`. Takes effect with the next packet, on an
    /// existing bridge too. See [`PayloadTypes`] for what the relay does with them.
    SetPayloadTypes {
        /// The leg.
        leg: LegId,
        /// Its payload types.
        types: PayloadTypes,
    },
    /// Make the leg an SRTP leg (`Some`), re-key it, or make it plain again (`None`).
    ///
    /// An SRTP leg decrypts and authenticates every RTP and RTCP packet its peer sends
    /// (SRTP/SRTCP, RFC 3711, with replay protection) *before* any latching or relaying:
    /// a packet that fails is dropped and counted ([`DropReason::SrtpAuth`],
    /// [`DropReason::SrtpReplay`]), never latches and is never forwarded. Everything the data
    /// plane sends to an SRTP leg (relayed RTP and RTCP, announcements) is encrypted just
    /// before it leaves. So a bridge between an SRTP leg and a plain leg transcrypts, and
    /// two plain legs relay exactly as before. New keys take effect with the next packet and
    /// start fresh replay and rollover state; the same keys again change nothing (so a
    /// re-INVITE repeating its `a=crypto` never restarts a stream's rollover counter). Usually sent right after [`Self::AddLeg`] or
    /// with [`Self::SetRemote`], when the SDP answer is known.
    SetSrtp {
        /// The leg.
        leg: LegId,
        /// Its keys, or `None` for plain RTP.
        keys: Option<SrtpKeys>,
    },
    /// Relay RTP and RTCP both ways between two legs of the same worker. Stops any
    /// announcement playing on either.
    Bridge {
        /// One leg.
        a: LegId,
        /// The other leg.
        b: LegId,
    },
    /// Undo a bridge; both legs then drop what they receive ([`DropReason::NotBridged`]).
    Unbridge {
        /// Either leg of the bridge.
        leg: LegId,
    },
    /// Play a clip to a leg as RTP at 20 ms pacing in the leg's codec.
    Play {
        /// The leg.
        leg: LegId,
        /// The prompt.
        clip: Arc<Clip>,
        /// Loop until stopped or bridged; otherwise stop at the end with [`Event::PlayDone`].
        looping: bool,
    },
    /// Stop an announcement.
    StopPlay {
        /// The leg.
        leg: LegId,
    },
    /// Ask for a [`Event::Stats`] of a leg.
    QueryStats {
        /// The leg.
        leg: LegId,
    },
    /// Remove a leg (unbridging it first). Answered by [`Event::LegRemoved`] with final stats.
    RemoveLeg {
        /// The leg.
        leg: LegId,
    },
    /// Stop the worker.
    Shutdown,
}

impl Command {
    /// The leg whose port decides which worker this goes to (`None` for broadcast commands).
    #[must_use]
    pub fn leg(&self) -> Option<LegId> {
        match self {
            Self::AddLeg(spec) => Some(spec.id),
            Self::SetRemote { leg, .. }
            | Self::SetPayloadTypes { leg, .. }
            | Self::SetSrtp { leg, .. }
            | Self::Unbridge { leg }
            | Self::Play { leg, .. }
            | Self::StopPlay { leg }
            | Self::QueryStats { leg }
            | Self::RemoveLeg { leg } => Some(*leg),
            Self::Bridge { a, .. } => Some(*a),
            Self::Shutdown => None,
        }
    }
}

/// Why a packet was dropped. Every drop is counted per leg (or per worker when no leg owns
/// the packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// No leg owns the destination port.
    UnknownPort,
    /// From an address other than the leg's remote and not accepted as one: before the
    /// remote is signalled, after the latch is established, outside what the leg's [`Latch`]
    /// may learn, or on probation (see [`SrcMismatch`]).
    SrcMismatch,
    /// Too short or not RTP/RTCP version 2.
    Malformed,
    /// The leg is not bridged (yet, or any more), so there is nowhere to send it.
    NotBridged,
    /// The bridged peer leg has no remote address yet.
    PeerNoRemote,
    /// The transmit queue refused it.
    TxFull,
    /// Received on an SRTP leg and not authentic: the SRTP/SRTCP authentication tag did not
    /// verify (tampered, wrong key, plain RTP sent to an SRTP leg, or too short to carry a
    /// tag). A packet whose header libsrtp cannot even parse counts as [`Self::Malformed`].
    SrtpAuth,
    /// Received on an SRTP leg and a replay: its packet index was seen already or is older
    /// than the replay window (RFC 3711 §3.3.2). Also counted when a packet toward an SRTP leg
    /// repeats an index already encrypted (libsrtp never encrypts one index twice).
    SrtpReplay,
    /// Toward an SRTP leg, but the buffer had no room after the packet for the SRTP trailer
    /// (counted on the leg that received it; an announcement packet on the leg it was for).
    /// Also a packet on an SRTP leg handed to the fixed-length `handle_packet_at`.
    SrtpNoRoom,
    /// Toward an SRTP leg, and libsrtp refused to encrypt it for another reason (e.g. the
    /// key's packet limit was reached, or a packet libsrtp finds malformed); counted as
    /// [`Self::SrtpNoRoom`] is.
    SrtpFailed,
    /// Relayed between two legs whose payload types differ (see [`PayloadTypes`]) and it has
    /// no counterpart on the peer leg: an RTP payload type other than the receiving leg's
    /// audio and telephone-event when the two legs' G.711 laws differ (it cannot be
    /// converted), or telephone-event toward a leg that negotiated none. Counted on the leg
    /// that received it.
    UnmappedPayloadType,
}

impl DropReason {
    /// How many reasons there are (the length of [`DropCounters`]).
    pub const COUNT: usize = 11;
    /// All reasons, in counter order.
    pub const ALL: [Self; Self::COUNT] = [
        Self::UnknownPort,
        Self::SrcMismatch,
        Self::Malformed,
        Self::NotBridged,
        Self::PeerNoRemote,
        Self::TxFull,
        Self::SrtpAuth,
        Self::SrtpReplay,
        Self::SrtpNoRoom,
        Self::SrtpFailed,
        Self::UnmappedPayloadType,
    ];
    /// The index of this reason in [`DropCounters`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }
    /// A stable snake_case name, used in JSON and logs.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::UnknownPort => "unknown_port",
            Self::SrcMismatch => "src_mismatch",
            Self::Malformed => "malformed",
            Self::NotBridged => "not_bridged",
            Self::PeerNoRemote => "peer_no_remote",
            Self::TxFull => "tx_full",
            Self::SrtpAuth => "srtp_auth",
            Self::SrtpReplay => "srtp_replay",
            Self::SrtpNoRoom => "srtp_no_room",
            Self::SrtpFailed => "srtp_failed",
            Self::UnmappedPayloadType => "unmapped_payload_type",
        }
    }
}

/// Drop counters indexed by [`DropReason::index`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl DropCounters {
    /// Count one drop.
    #[inline]
    pub fn add(&mut self, reason: DropReason) {
        self.0[reason.index()] += 1;
    }
    /// The count for a reason.
    #[must_use]
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }
    /// The sum over all reasons.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Per-leg counters. "rx" is what the leg received from its peer, "tx" what the data plane
/// sent to the peer (relayed or announcement).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// RTP packets received (accepted or not).
    pub rx_packets: u64,
    /// RTP bytes received (UDP payload).
    pub rx_bytes: u64,
    /// RTCP packets received.
    pub rx_rtcp: u64,
    /// RTP packets sent to the peer (relayed from the bridged leg plus announcement).
    pub tx_packets: u64,
    /// RTP bytes sent to the peer.
    pub tx_bytes: u64,
    /// RTCP packets sent to the peer.
    pub tx_rtcp: u64,
    /// Of `tx_packets`, how many were announcement packets generated by the data plane.
    pub announcement_packets: u64,
    /// RFC 3550 interarrival jitter of the received stream, in microseconds (last value).
    pub jitter_us: u32,
    /// The largest jitter seen, in microseconds.
    pub max_jitter_us: u32,
    /// RTCP reception reports the peer sent about the stream it receives from us (SR/RR
    /// report blocks; counted on the RTCP path only, never per RTP packet).
    pub peer_reports: u32,
    /// The peer's last reported fraction lost, in 1/256 (RFC 3550 §6.4.1).
    pub peer_fraction_lost: u8,
    /// The peer's last reported cumulative number of packets lost.
    pub peer_cumulative_lost: i32,
    /// Drops by reason.
    pub drops: DropCounters,
}

impl LegStats {
    /// Voice quality of one leg by the ITU-T G.107 E-model, simplified for G.711 with packet-loss
    /// concealment (Ie = 0, Bpl = 25.1): `(loss_pct, r_factor, mos)`. Loss is what the peer
    /// reported in RTCP (`None` without reports: then it counts as 0); the one-way delay is
    /// estimated as 40 ms (packetization and a 20 ms jitter buffer) plus twice the largest
    /// jitter seen, since the relay cannot see the network delay. `None` for a leg that received
    /// no RTP.
    #[must_use]
    pub fn quality(&self) -> Option<(Option<f64>, f64, f64)> {
        let s = self;
        if s.rx_packets == 0 {
            return None;
        }
        let loss = (s.peer_reports > 0).then(|| f64::from(s.peer_fraction_lost) * 100.0 / 256.0);
        let ppl = loss.unwrap_or(0.0);
        let delay_ms = 40.0 + 2.0 * f64::from(s.max_jitter_us) / 1000.0;
        let id = 0.024 * delay_ms
            + if delay_ms > 177.3 {
                0.11 * (delay_ms - 177.3)
            } else {
                0.0
            };
        let ie_eff = 95.0 * ppl / (ppl + 25.1);
        let r = (93.2 - id - ie_eff).clamp(0.0, 100.0);
        let mos = if r <= 0.0 {
            1.0
        } else {
            (1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6).clamp(1.0, 4.5)
        };
        let round = |x: f64, d: i32| (x * 10f64.powi(d)).round() / 10f64.powi(d);
        Some((loss.map(|l| round(l, 2)), round(r, 1), round(mos, 2)))
    }
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The leg does not exist on this worker.
    #[error("unknown leg")]
    UnknownLeg,
    /// A leg with this port already exists.
    #[error("port already in use")]
    PortInUse,
    /// The port is outside the worker's range.
    #[error("port outside the worker's range")]
    PortOutOfRange,
    /// The I/O backend could not open the port.
    #[error("could not open port: {0}")]
    Io(String),
    /// The two legs of a bridge belong to different workers.
    #[error("legs are on different workers")]
    CrossWorker,
    /// libsrtp could not create the leg's SRTP sessions ([`Command::SetSrtp`]); the leg keeps
    /// its previous keys (or stays plain).
    #[error("could not set up SRTP: {0}")]
    Srtp(srtp::Error),
}

/// A report from the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A leg's port pair is open and receiving.
    LegAdded {
        /// The leg.
        leg: LegId,
    },
    /// A command failed.
    CommandFailed {
        /// The leg it was for.
        leg: Option<LegId>,
        /// Why.
        error: CommandError,
    },
    /// The leg latched onto a source other than its signalled remote (see [`Latch`]).
    RemoteLearned {
        /// The leg.
        leg: LegId,
        /// The source address now used as remote.
        remote: SocketAddr,
    },
    /// The first packet from a foreign source on a leg with [`SrcMismatch::Report`].
    SrcMismatch {
        /// The leg.
        leg: LegId,
        /// The foreign source.
        from: SocketAddr,
    },
    /// No RTP for the leg's `media_timeout`.
    MediaTimeout {
        /// The leg.
        leg: LegId,
    },
    /// A non-looping announcement finished.
    PlayDone {
        /// The leg.
        leg: LegId,
    },
    /// The answer to [`Command::QueryStats`].
    Stats {
        /// The leg.
        leg: LegId,
        /// Its counters.
        stats: LegStats,
    },
    /// The leg is gone; these are its final counters.
    LegRemoved {
        /// The leg.
        leg: LegId,
        /// Its final counters.
        stats: LegStats,
    },
    /// The leg was re-created on another media node (its node died) with everything the
    /// control plane had told it; it now receives at a new address and port (the control
    /// plane's media interface says which), so the party must be told with a new SDP offer.
    /// Never sent by workers: only by a control plane's view of remote media nodes.
    Moved {
        /// The leg.
        leg: LegId,
    },
}

impl Event {
    /// The leg this event is about.
    #[must_use]
    pub fn leg(&self) -> Option<LegId> {
        match self {
            Self::LegAdded { leg }
            | Self::RemoteLearned { leg, .. }
            | Self::SrcMismatch { leg, .. }
            | Self::MediaTimeout { leg }
            | Self::PlayDone { leg }
            | Self::Stats { leg, .. }
            | Self::LegRemoved { leg, .. }
            | Self::Moved { leg } => Some(*leg),
            Self::CommandFailed { leg, .. } => *leg,
        }
    }
}

/// The address and port range media uses, shared by both planes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaAddress {
    /// The relay's IP, written into SDP.
    pub ip: IpAddr,
    /// The whole port range (RTP on even ports, RTCP on the odd port above).
    pub ports: RangeInclusive<u16>,
}
