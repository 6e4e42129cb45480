//! callbridge's back-to-back user agent: one call's two SIP dialogs (customer, agent) and
//! their media legs. It executes; it never decides whom to call or when (that is
//! [`flows::ClickToCall`], driven by the service).
//!
//! ```text
//!  service call task ──invite / hangup / media(Command)──► CallLegs ──► sip::Endpoint (dialogs)
//!        ▲                                                    │   └──► dyn Media ──► data plane
//!        └──────────── B2bEvent (LegInput per role, dp Event) ┘
//! ```
//!
//! [`Media`] is the small trait between signalling and the data plane: [`InProcessMedia`]
//! drives this process's workers through [`dp_api::DataplaneHandle`]; a media node reached
//! over rtpengine's ng protocol is the next implementation.
//!
//! Ownership: a [`CallLegs`] belongs to one call task. It holds the call's SIP legs and the
//! route of its media legs' events; dropping it (or [`CallLegs::close`]) unroutes them. The
//! media legs' ports are allocated and released by the call task through [`Media`], once the
//! worker has confirmed their removal ([`dp_api::Event::LegRemoved`]) or the wait for it timed
//! out.
//!
//! Modules: `dial` (calling out: hops, offers per hop with SDES over TLS, failover),
//! `answer` (SDP answers: inbound callers, answers to our offers, re-offers and hold),
//! `trunks` ([`Trunks`]: priorities, RFC 3263, keep-alive), `media` ([`Media`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod answer;
mod dial;
pub use dial::sip_target;
mod media;
mod reanchor;
mod trunks;

pub use media::{InProcessMedia, Media, MediaError};
pub use trunks::{Hop, TrunkError, TrunkSpec, TrunkStatus, Trunks, DOWN_AFTER};

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;

use dp_api::{Codec, Command, Event, LegId};
use flows::{LegInput, Role, Target};
use sip::sdp::{LocalSession, SessionDescription, Srtp};
use sip::{
    Endpoint, ForkController, ForkedCall, IncomingCall, InviteRequest, LegController, LegEvent,
    OutgoingCall,
};
use srtp::CryptoAttr;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What the B2BUA needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where E.164 numbers are sent ([`Trunks::hops`]).
    pub trunks: Arc<Trunks>,
    /// Resolves host names in customers' and agents' SIP URIs (RFC 3263); `None`: IP
    /// literals only.
    pub locator: Option<Arc<sip::locate::Locator>>,
    /// The user part of our From when neither the business nor the trunk sets a caller id.
    pub from_user: String,
    /// Where every call through a trunk is sent first (`sip.outbound_proxy`, e.g. the
    /// carrier's SBC), with a pre-loaded `Route`; SIP URIs and registered agents are reached
    /// directly.
    pub outbound_proxy: Option<OutboundProxy>,
}

/// An outbound proxy (`sip.outbound_proxy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundProxy {
    /// Its URI, as written in the `Route` header (without `;lr`, which is added).
    pub uri: String,
    /// Where to send.
    pub dest: sip::Peer,
    /// The name its TLS certificate must carry (`None`: its IP address).
    pub tls_name: Option<String>,
}

/// Why a leg could not be called. Not `#[non_exhaustive]`: the service maps each kind to
/// a failure reason explicitly.
#[derive(Debug, thiserror::Error)]
pub enum B2buaError {
    /// The target cannot be turned into a request URI.
    #[error("cannot call {target}: {reason}")]
    Target {
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// The media leg has no configured address.
    #[error("media leg {0} has no configured media address")]
    NoMediaAddress(LegId),
    /// The target cannot be reached before any INVITE goes out: its host name does not
    /// resolve (or there is no resolver). The same kind of failure as a transport error on
    /// the INVITE ([`sip::LegEvent::Unreachable`]): the callee is unreachable, not our fault.
    #[error("cannot reach {target}: {cause}")]
    Unreachable {
        /// The target.
        target: String,
        /// Why (the DNS error).
        cause: String,
    },
    /// The SIP layer refused to send.
    #[error("INVITE to {uri} failed: {reason}")]
    Invite {
        /// The request URI.
        uri: String,
        /// Why.
        reason: String,
    },
    /// The data plane refused a command.
    #[error(transparent)]
    Media(#[from] MediaError),
}

/// Something that happened to a call's legs.
#[derive(Debug, Clone)]
pub enum B2bEvent {
    /// About one SIP leg, in the state machine's terms.
    Leg(Role, LegInput),
    /// A data-plane event about one of the call's media legs.
    Media(Event),
}

/// The B2BUA shared by every call.
#[derive(Clone)]
pub struct B2bua {
    sip: Endpoint,
    media: Arc<dyn Media>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for B2bua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("sip", &self.sip)
            .finish_non_exhaustive()
    }
}

impl B2bua {
    /// A B2BUA over a SIP endpoint and a media plane.
    #[must_use]
    pub fn new(sip: Endpoint, media: Arc<dyn Media>, settings: Settings) -> Self {
        Self {
            sip,
            media,
            settings: Arc::new(settings),
        }
    }

    /// The media plane.
    #[must_use]
    pub fn media(&self) -> &Arc<dyn Media> {
        &self.media
    }

    /// The SIP endpoint.
    #[must_use]
    pub fn sip(&self) -> &Endpoint {
        &self.sip
    }

    /// The trunks and their health.
    #[must_use]
    pub fn trunks(&self) -> &Arc<Trunks> {
        &self.settings.trunks
    }

    /// A new, empty set of legs for one call (`call` goes into `X-Callbridge-Call`).
    #[must_use]
    pub fn call(&self, call: &str) -> CallLegs {
        let (tx, rx) = mpsc::unbounded_channel();
        CallLegs {
            b2b: self.clone(),
            call: call.to_owned(),
            customer: None,
            agent: None,
            media_tx: tx,
            media_rx: rx,
            routed: Vec::new(),
        }
    }
}

/// A leg's SIP side: one INVITE, or the parallel INVITEs to an agent's registered devices.
enum SipCall {
    One(OutgoingCall),
    Fork(ForkedCall),
    /// A caller's INVITE (inbound call), answered by [`CallLegs::answer`].
    In(IncomingCall),
}

impl SipCall {
    async fn event(&mut self) -> Option<LegEvent> {
        match self {
            Self::One(c) => c.event().await,
            Self::Fork(c) => c.event().await,
            Self::In(c) => c.event().await,
        }
    }

    fn call_ids(&self) -> Vec<String> {
        match self {
            Self::One(c) => vec![c.call_id().to_owned()],
            Self::Fork(c) => c.call_ids().to_vec(),
            Self::In(c) => vec![c.call_id.clone()],
        }
    }

    fn controller(&self) -> SipCtl {
        match self {
            Self::One(c) => SipCtl::One(c.controller()),
            Self::Fork(c) => SipCtl::Fork(c.controller()),
            Self::In(c) => SipCtl::One(c.controller()),
        }
    }
}

/// Hangs a [`SipCall`] up.
enum SipCtl {
    One(LegController),
    Fork(ForkController),
}

impl SipCtl {
    fn hangup(&self) {
        match self {
            Self::One(c) => c.hangup(),
            Self::Fork(c) => c.hangup(),
        }
    }

    /// The controller of the answered dialog, when there is exactly one (a forked call's
    /// winner is not reachable through it yet).
    fn dialog(&self) -> Option<&LegController> {
        match self {
            Self::One(c) => Some(c),
            Self::Fork(_) => None,
        }
    }
}

/// What [`CallLegs::invite`] calls.
#[derive(Debug, Clone)]
pub struct Dial<'a> {
    /// Which side of the call.
    pub role: Role,
    /// Whom.
    pub target: &'a Target,
    /// The media leg whose address the offer names.
    pub leg: LegId,
    /// The caller name the callee sees.
    pub from_display: Option<String>,
    /// The caller id (user part of From and, through a trunk, P-Asserted-Identity); `None`:
    /// the trunk's, else [`Settings::from_user`].
    pub from_user: Option<&'a str>,
    /// The business, which picks the trunks.
    pub business: Option<&'a str>,
    /// SDES-SRTP for a SIP URI or registered target (a trunk has its own).
    pub srtp: Srtp,
}

/// One SIP leg of a call.
struct Leg {
    call: SipCall,
    ctl: SipCtl,
    /// The INVITE as sent to the current hop (the Request-URI is per hop).
    req: InviteRequest,
    /// The hop in use.
    hop: Option<Hop>,
    /// Hops not tried yet, in order.
    rest: Vec<Hop>,
    /// The number dialled through a trunk (for the next hop's Request-URI).
    number: Option<String>,
    /// The media leg and our RTP address (each hop's SRTP policy is in its [`Hop`]).
    media: LegId,
    rtp: SocketAddr,
    /// What we offered to the current hop, and our SDES key in it.
    offer: Option<SessionDescription>,
    crypto: Option<CryptoAttr>,
    /// Our side of the leg's SDP (`o=` session and version) and the peer's last SDP: what
    /// re-offers are answered from and compared with.
    session: Option<LocalSession>,
    remote: Option<SessionDescription>,
    /// The leg's SRTP policy (re-offers keep the key).
    srtp: Srtp,
}

/// One call's SIP legs and media routes (see the crate docs).
pub struct CallLegs {
    b2b: B2bua,
    call: String,
    customer: Option<Leg>,
    agent: Option<Leg>,
    media_tx: mpsc::UnboundedSender<Event>,
    media_rx: mpsc::UnboundedReceiver<Event>,
    routed: Vec<LegId>,
}

impl CallLegs {
    /// The SIP Call-IDs of the call's legs so far (customer, then agent; a forked agent leg
    /// has one per device): what [`sip::trace::watch`] needs to trace dialogs already begun.
    #[must_use]
    pub fn sip_call_ids(&self) -> Vec<String> {
        [&self.customer, &self.agent]
            .into_iter()
            .flatten()
            .flat_map(|l| l.call.call_ids())
            .collect()
    }
}

impl std::fmt::Debug for CallLegs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallLegs")
            .field("call", &self.call)
            .field("customer", &self.customer.is_some())
            .field("agent", &self.agent.is_some())
            .field("routed", &self.routed)
            .finish()
    }
}

async fn next_sip(leg: &mut Option<Leg>) -> Option<LegEvent> {
    match leg {
        Some(l) => l.call.event().await,
        None => pending().await,
    }
}

impl CallLegs {
    /// Ends a leg (CANCEL while unanswered, BYE once answered). Later events of that
    /// dialog are consumed here and never reach the caller.
    pub fn hangup(&mut self, role: Role) {
        let slot = match role {
            Role::Customer => self.customer.take(),
            Role::Agent => self.agent.take(),
        };
        if let Some(leg) = slot {
            leg.ctl.hangup();
            let id = self.call.clone();
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                return;
            };
            rt.spawn(async move {
                let mut call = leg.call;
                while let Some(ev) = call.event().await {
                    debug!(call = %id, role = role.as_str(), ?ev, "sip event after hangup");
                }
            });
        }
    }

    /// Sends a data-plane command; an `AddLeg` also routes that leg's events to this call.
    ///
    /// # Errors
    /// [`B2buaError::Media`] when the data plane refused it.
    pub fn media(&mut self, cmd: Command) -> Result<(), B2buaError> {
        if let Command::AddLeg(spec) = &cmd {
            if !self.routed.contains(&spec.id) {
                self.b2b.media.route(spec.id, self.media_tx.clone());
                self.routed.push(spec.id);
            }
        }
        self.b2b.media.send(cmd)?;
        Ok(())
    }

    /// The media legs whose events reach this call.
    #[must_use]
    pub fn routed(&self) -> &[LegId] {
        &self.routed
    }

    /// The next event from either SIP leg or the media legs. Pending for ever when nothing
    /// can happen (use it in a `select!`).
    pub async fn next(&mut self) -> B2bEvent {
        loop {
            tokio::select! {
                ev = next_sip(&mut self.customer) => {
                    if let Some(e) = self.leg_event(Role::Customer, ev) { return e; }
                }
                ev = next_sip(&mut self.agent) => {
                    if let Some(e) = self.leg_event(Role::Agent, ev) { return e; }
                }
                Some(ev) = self.media_rx.recv() => {
                    // A leg re-created on another media node: its party is re-offered.
                    if let Event::Moved { leg } = ev {
                        self.moved(leg);
                        continue;
                    }
                    return B2bEvent::Media(ev);
                }
            }
        }
    }

    /// A media event already queued, without waiting.
    pub fn try_media(&mut self) -> Option<Event> {
        self.media_rx.try_recv().ok()
    }

    /// Waits for the next media event (for the final counters after the call ended).
    pub async fn next_media(&mut self) -> Option<Event> {
        self.media_rx.recv().await
    }

    fn leg_event(&mut self, role: Role, ev: Option<LegEvent>) -> Option<B2bEvent> {
        let Some(ev) = ev else {
            // The dialog is over without a final event we did not already pass on.
            match role {
                Role::Customer => self.customer = None,
                Role::Agent => self.agent = None,
            }
            return None;
        };
        debug!(call = %self.call, role = role.as_str(), ?ev, "sip leg event");
        let incoming = matches!(
            match role {
                Role::Customer => &self.customer,
                Role::Agent => &self.agent,
            },
            Some(Leg {
                call: SipCall::In(_),
                ..
            })
        );
        if !incoming && self.fail_over(role, &ev) {
            return None;
        }
        match &ev {
            LegEvent::Reoffer { sdp } => {
                self.reoffered(role, sdp);
                return None;
            }
            LegEvent::ReofferAnswered { sdp } => {
                self.reoffer_answered(role, sdp);
                return None;
            }
            LegEvent::ReofferRejected { status } => {
                warn!(call = %self.call, role = role.as_str(), status, "our re-offer was refused");
                return None;
            }
            // `Ended` follows (the UA sent BYE).
            LegEvent::SessionExpired => return None,
            _ => {}
        }
        // Every event explicitly (`LegEvent` is exhaustive on purpose): a new one must be
        // placed here, not fall into `Ended` (which the machine reads as `internal`).
        let input = match ev {
            // Early media (a 183 with SDP) from the agent: read like an answer (SRTP keys and
            // payload types given to the relay), reported so the machine may bridge early.
            LegEvent::Progress { sdp: Some(sdp), .. } if role == Role::Agent => {
                match self.answered(role, &sdp) {
                    LegInput::Answered { remote, codec } => LegInput::EarlyMedia { remote, codec },
                    _ => LegInput::Progress,
                }
            }
            LegEvent::Progress { .. } => LegInput::Progress,
            LegEvent::Answered { sdp } => self.answered(role, &sdp),
            LegEvent::Rejected { status, .. } => LegInput::Rejected { status },
            // An incoming leg's timeout is a 2xx never ACKed: the UA already sent BYE.
            LegEvent::Timeout if incoming => LegInput::Ended,
            LegEvent::Timeout => LegInput::Timeout,
            LegEvent::Unreachable { cause } => {
                warn!(call = %self.call, role = role.as_str(), %cause, "unreachable");
                LegInput::Unreachable
            }
            LegEvent::Bye | LegEvent::Cancelled => LegInput::Bye,
            // Our own hangup finished (not passed on: `hangup` consumes its dialog's events),
            // or the dialog ended without a BYE from the peer (a refused refresh, 481).
            LegEvent::Ended => LegInput::Ended,
            // Handled above.
            LegEvent::Reoffer { .. }
            | LegEvent::ReofferAnswered { .. }
            | LegEvent::ReofferRejected { .. }
            | LegEvent::SessionExpired => return None,
        };
        Some(B2bEvent::Leg(role, input))
    }

    /// Unroutes the media legs (their late events are dropped).
    pub fn close(&mut self) {
        for leg in self.routed.drain(..) {
            self.b2b.media.unroute(leg);
        }
    }
}

impl Drop for CallLegs {
    fn drop(&mut self) {
        self.close();
        for role in [Role::Customer, Role::Agent] {
            self.hangup(role);
        }
    }
}

/// Turns an SDP answer into the machine's input.
#[must_use]
pub fn answer_input(sdp: &str) -> LegInput {
    let negotiated =
        sip::sdp::SessionDescription::parse(sdp).and_then(|s| s.negotiated_from_answer());
    match negotiated {
        Ok(n) => match Codec::from_payload_type(n.payload_type) {
            Some(codec) => LegInput::Answered {
                remote: n.remote,
                codec,
            },
            None => LegInput::AnswerUnusable,
        },
        Err(e) => {
            warn!("unusable SDP answer: {e}");
            LegInput::AnswerUnusable
        }
    }
}

#[cfg(test)]
mod target_rule_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_answer_maps_to_machine_input() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n";
        assert_eq!(
            answer_input(sdp),
            LegInput::Answered {
                remote: "127.0.0.1:40000".parse().unwrap(),
                codec: Codec::Pcma
            }
        );
        assert_eq!(answer_input("garbage"), LegInput::AnswerUnusable);
        let g722 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                    m=audio 40000 RTP/AVP 9\r\n";
        assert_eq!(answer_input(g722), LegInput::AnswerUnusable);
    }
}
