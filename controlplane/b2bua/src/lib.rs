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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod media;
mod trunks;

pub use media::{InProcessMedia, Media, MediaError};
pub use trunks::{Hop, TrunkError, TrunkSpec, TrunkStatus, Trunks, DOWN_AFTER};

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;

use dp_api::{Codec, Command, Event, LegId};
use flows::{LegInput, Role, Target};
use sip::sdp::{AnswerParams, LocalSession, OfferParams, SessionDescription, Srtp};
use sip::{
    Endpoint, ForkController, ForkedCall, IncomingCall, InviteRequest, LegController, LegEvent,
    OutgoingCall, SipError,
};
use srtp::CryptoAttr;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

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
}

/// Why a leg could not be called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

/// The `inline:…` key-params of our `a=crypto` attribute.
fn key_params(c: &CryptoAttr) -> Option<String> {
    c.to_string().splitn(3, ' ').nth(2).map(str::to_owned)
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
    /// Sends an INVITE for `d.role` to `d.target`, offering `d.leg`'s local media address
    /// (see [`Dial`]). A number goes to the first of the trunks' hops ([`Trunks::hops`] for
    /// the business); a SIP URI to its RFC 3263 targets; a registered agent to all its
    /// devices. The leg moves to the next hop on 503, 408, a timeout or a transport error
    /// ([`CallLegs::next`]).
    ///
    /// # Errors
    /// [`B2buaError`] when the INVITE cannot be sent (the leg stays idle).
    pub async fn invite(&mut self, d: Dial<'_>) -> Result<(), B2buaError> {
        let Dial {
            role,
            target,
            leg,
            from_display,
            from_user,
            business,
            srtp,
        } = d;
        let settings = self.b2b.settings.clone();
        let bad = |reason: String| B2buaError::Target {
            target: target.to_string(),
            reason,
        };
        let (mut hops, number) = match target {
            Target::Tel(num) => {
                let hops = settings.trunks.hops(business).await;
                if hops.is_empty() {
                    return Err(bad("no trunk serves this business or none resolves".into()));
                }
                (hops, Some(num.clone()))
            }
            Target::Registered(_) => {
                return self.invite_registered(role, target, leg, from_display, from_user, srtp);
            }
            Target::Sip(uri) => {
                let mut hops = self.uri_hops(uri).await.map_err(bad)?;
                for h in &mut hops {
                    h.srtp = srtp;
                }
                (hops, None)
            }
        };
        let ip = self
            .b2b
            .media
            .address_of(leg)
            .ok_or(B2buaError::NoMediaAddress(leg))?;
        let rtp = SocketAddr::new(ip, leg.port());
        let first = hops.remove(0);
        let req = InviteRequest {
            target: String::new(),
            from_user: from_user
                .map(str::to_owned)
                .or_else(|| first.caller_id.clone())
                .unwrap_or_else(|| settings.from_user.clone()),
            from_display,
            sdp: String::new(),
            headers: vec![("X-Callbridge-Call".into(), self.call.clone())],
            credentials: None,
        };
        let (sdp, offer, crypto, session) =
            offer_for(rtp, leg, &first).map_err(|reason| B2buaError::Invite {
                uri: target.to_string(),
                reason,
            })?;
        let mut req = req;
        req.sdp = sdp;
        let sent = send_to_hop(&self.b2b, &req, number.as_deref(), target, &first, false)?;
        debug!(call = %self.call, role = role.as_str(), hop = %first.dest, "INVITE sent");
        let call = SipCall::One(sent.0);
        let ctl = call.controller();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let policy = first.srtp;
        *slot = Some(Leg {
            call,
            ctl,
            req: sent.1,
            hop: Some(first),
            rest: hops,
            number,
            media: leg,
            rtp,
            offer: Some(offer),
            crypto,
            session: Some(session),
            remote: None,
            srtp: policy,
        });
        Ok(())
    }

    /// Takes a caller's INVITE as the `role` leg (inbound call): its events (CANCEL, BYE)
    /// come through [`CallLegs::next`]; [`CallLegs::answer`] answers it.
    pub fn incoming(&mut self, role: Role, call: IncomingCall) {
        let offer = call
            .sdp
            .as_deref()
            .and_then(|s| SessionDescription::parse(s).ok());
        let req = InviteRequest {
            target: call.request_uri.clone(),
            from_user: String::new(),
            from_display: None,
            sdp: call.sdp.clone().unwrap_or_default(),
            headers: Vec::new(),
            credentials: None,
        };
        call.ring();
        let sip = SipCall::In(call);
        let ctl = sip.controller();
        let leg = Leg {
            call: sip,
            ctl,
            req,
            hop: None,
            rest: Vec::new(),
            number: None,
            media: LegId(0),
            rtp: SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: offer.clone(),
            offer,
            crypto: None,
            session: None,
            srtp: Srtp::Off,
        };
        match role {
            Role::Customer => self.customer = Some(leg),
            Role::Agent => self.agent = Some(leg),
        }
    }

    /// Answers the `role` leg's incoming INVITE with media leg `leg`: PCMU or PCMA (the
    /// caller's preference) and telephone-event from its offer, plain RTP (a trunk's calls
    /// reach us over whatever transport; SDES is not answered). Returns what the machine
    /// needs; an offer we cannot use is refused with 488 and reported unusable.
    pub fn answer(&mut self, role: Role, leg: LegId) -> LegInput {
        let ip = self.b2b.media.address_of(leg);
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(l) = slot.as_mut() else {
            return LegInput::Ended;
        };
        let SipCall::In(call) = &l.call else {
            return LegInput::AnswerUnusable;
        };
        let (Some(ip), Some(offer)) = (ip, l.offer.clone()) else {
            call.reject(488);
            return LegInput::AnswerUnusable;
        };
        let rtp = SocketAddr::new(ip, leg.port());
        let mut session = LocalSession::new(u64::from(leg.0), ip);
        match session.answer(&offer, &AnswerParams::new(rtp)) {
            Ok(a) => {
                call.answer(a.sdp);
                l.media = leg;
                l.rtp = rtp;
                l.session = Some(session);
                let n = a.agreement.negotiated;
                self.set_payload_types(leg, &n);
                LegInput::Answered {
                    remote: n.remote,
                    codec: codec_of(n.encoding),
                }
            }
            Err(e) => {
                warn!(call = %self.call, "cannot answer the caller's offer: {e}");
                call.reject(488);
                LegInput::AnswerUnusable
            }
        }
    }

    /// Rings every registered device of an agent at once (first answer wins, the others are
    /// CANCELled); no bindings: the leg is rejected 480 at once. SRTP is offered when the
    /// policy asks and the devices registered over TLS.
    fn invite_registered(
        &mut self,
        role: Role,
        target: &Target,
        leg: LegId,
        from_display: Option<String>,
        from_user: Option<&str>,
        srtp: Srtp,
    ) -> Result<(), B2buaError> {
        let user = target.registered_user().unwrap_or_default().to_owned();
        let ip = self
            .b2b
            .media
            .address_of(leg)
            .ok_or(B2buaError::NoMediaAddress(leg))?;
        let rtp = SocketAddr::new(ip, leg.port());
        let bindings = self.b2b.sip.bindings(&user);
        let all_tls = !bindings.is_empty()
            && bindings
                .iter()
                .all(|b| b.flow.transport == sip::Transport::Tls);
        let hop = Hop {
            trunk: usize::MAX,
            trunk_name: String::new(),
            authority: String::new(),
            scheme: "sip",
            dest: sip::Peer::new(
                if all_tls {
                    sip::Transport::Tls
                } else {
                    sip::Transport::Udp
                },
                bindings
                    .first()
                    .map_or(SocketAddr::from(([127, 0, 0, 1], 0)), |b| b.flow.addr),
            ),
            tls_name: None,
            credentials: None,
            caller_id: None,
            srtp: if all_tls || srtp == Srtp::Off {
                srtp
            } else {
                Srtp::Off
            },
        };
        if srtp == Srtp::Required && !all_tls && !bindings.is_empty() {
            return Err(B2buaError::Invite {
                uri: target.to_string(),
                reason: "SRTP is required but not every device registered over TLS".into(),
            });
        }
        let (sdp, offer, crypto, session) =
            offer_for(rtp, leg, &hop).map_err(|reason| B2buaError::Invite {
                uri: target.to_string(),
                reason,
            })?;
        let req = InviteRequest {
            target: String::new(),
            from_user: from_user.map_or_else(|| self.b2b.settings.from_user.clone(), str::to_owned),
            from_display,
            sdp,
            headers: vec![("X-Callbridge-Call".into(), self.call.clone())],
            credentials: None,
        };
        let forked = self
            .b2b
            .sip
            .invite_registered(&user, req.clone())
            .map_err(|e| B2buaError::Invite {
                uri: target.to_string(),
                reason: e.to_string(),
            })?;
        debug!(call = %self.call, role = role.as_str(), %user, devices = bindings.len(), "INVITE to registered devices");
        let call = SipCall::Fork(forked);
        let ctl = call.controller();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        *slot = Some(Leg {
            call,
            ctl,
            req,
            srtp: hop.srtp,
            hop: Some(hop),
            rest: Vec::new(),
            number: None,
            media: leg,
            rtp,
            offer: Some(offer),
            crypto,
            session: Some(session),
            remote: None,
        });
        Ok(())
    }

    /// The hops of a SIP URI target: its RFC 3263 targets (an IP literal: itself).
    async fn uri_hops(&self, uri: &str) -> Result<Vec<Hop>, String> {
        let parsed = sip::locate::SipTarget::parse(uri).map_err(|e| e.to_string())?;
        let tls_name = match &parsed.host {
            sip::locate::Host::Name(n) => Some(n.clone()),
            sip::locate::Host::Ip(_) => None,
        };
        let peers: Vec<sip::Peer> = match (&parsed.host, &self.b2b.settings.locator) {
            (sip::locate::Host::Ip(_), _) | (_, None) => {
                let addr = sip::msg::uri_addr(uri).map_err(|e| e.to_string())?;
                let t = sip::msg::uri_transport(uri).unwrap_or(sip::Transport::Udp);
                vec![sip::Peer::new(t, addr)]
            }
            (sip::locate::Host::Name(_), Some(l)) => l
                .locate(uri)
                .await
                .map_err(|e| e.to_string())?
                .targets()
                .iter()
                .map(|&t| sip::Peer::from(t))
                .collect(),
        };
        if peers.is_empty() {
            return Err("no address found".into());
        }
        Ok(peers
            .into_iter()
            .map(|dest| Hop {
                trunk: usize::MAX,
                trunk_name: String::new(),
                authority: String::new(),
                scheme: "sip",
                dest,
                tls_name: tls_name.clone(),
                credentials: None,
                caller_id: None,
                srtp: Srtp::Off,
            })
            .collect())
    }

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
                Some(ev) = self.media_rx.recv() => return B2bEvent::Media(ev),
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

    /// Moves an unanswered leg to its next hop after `ev` (503, 408, a timeout, a transport
    /// error). True when a new INVITE went out and `ev` must not reach the caller.
    fn fail_over(&mut self, role: Role, ev: &LegEvent) -> bool {
        let unreachable = match ev {
            LegEvent::Timeout => true,
            LegEvent::Rejected {
                status: 503,
                reason,
            } => reason.contains("transport error"),
            LegEvent::Rejected { status: 408, .. } => false,
            _ => return false,
        };
        let b2b = self.b2b.clone();
        let call = self.call.clone();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(leg) = slot.as_mut() else {
            return false;
        };
        if let Some(hop) = &leg.hop {
            if unreachable && hop.trunk != usize::MAX {
                b2b.settings.trunks.mark_unreachable(hop.trunk);
            }
        }
        while !leg.rest.is_empty() {
            let hop = leg.rest.remove(0);
            let target = match &leg.number {
                Some(n) => Target::Tel(n.clone()),
                None => Target::Sip(leg.req.target.clone()),
            };
            let (sdp, offer, crypto, session) = match offer_for(leg.rtp, leg.media, &hop) {
                Ok(x) => x,
                Err(e) => {
                    warn!(call = %call, "{e}");
                    continue;
                }
            };
            let mut template = leg.req.clone();
            template.sdp = sdp;
            match send_to_hop(&b2b, &template, leg.number.as_deref(), &target, &hop, true) {
                Ok((c, req)) => {
                    leg.offer = Some(offer);
                    leg.crypto = crypto;
                    leg.session = Some(session);
                    warn!(call = %call, role = role.as_str(), ?ev, next = %hop.dest, trunk = %hop.trunk_name, "failing over to the next hop");
                    leg.call = SipCall::One(c);
                    leg.ctl = leg.call.controller();
                    leg.req = req;
                    leg.hop = Some(hop);
                    return true;
                }
                Err(e) => warn!(call = %call, "{e}"),
            }
        }
        false
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
            LegEvent::Bye | LegEvent::Cancelled => LegInput::Bye,
            _ => LegInput::Ended,
        };
        Some(B2bEvent::Leg(role, input))
    }

    /// The peer of `role` sent a new offer (re-INVITE or UPDATE): answered from the leg's own
    /// session (the direction mirrored, the SRTP key kept), the relay told a new address
    /// (which re-latches), and a direction change (hold, unhold) passed on to the other leg as
    /// our re-offer there. An offer we cannot use gets 488 and changes nothing.
    fn reoffered(&mut self, role: Role, sdp: &str) {
        let other = match role {
            Role::Customer => Role::Agent,
            Role::Agent => Role::Customer,
        };
        let call = self.call.clone();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(x) = slot.as_mut() else {
            return;
        };
        let Some(ctl) = x.ctl.dialog().cloned() else {
            return;
        };
        let offer = match SessionDescription::parse(sdp) {
            Ok(o) => o,
            Err(e) => {
                warn!(call = %call, role = role.as_str(), "unusable re-offer: {e}");
                ctl.reject_reoffer(488);
                return;
            }
        };
        let change = x
            .remote
            .as_ref()
            .and_then(|r| sip::sdp::compare(r, &offer).ok());
        let mut params = AnswerParams::new(x.rtp);
        if let Some(c) = &x.crypto {
            params.srtp = x.srtp;
            params.crypto_key = key_params(c);
        }
        let Some(session) = x.session.as_mut() else {
            ctl.reject_reoffer(488);
            return;
        };
        let answer = match session.answer(&offer, &params) {
            Ok(a) => a,
            Err(e) => {
                warn!(call = %call, role = role.as_str(), "cannot answer the re-offer: {e}");
                ctl.reject_reoffer(488);
                return;
            }
        };
        ctl.answer_reoffer(answer.sdp);
        x.remote = Some(offer);
        let media = x.media;
        let n = answer.agreement.negotiated;
        let Some(change) = change else {
            return;
        };
        info!(call = %call, role = role.as_str(), hold = ?change.hold, direction = ?change.direction, remote = ?change.remote, "re-offer");
        if let Some(remote) = change.remote {
            let _ = self.media(Command::SetRemote {
                leg: media,
                remote,
                codec: codec_of(n.encoding),
            });
        }
        if let Some(d) = change.direction {
            let oslot = match other {
                Role::Customer => &mut self.customer,
                Role::Agent => &mut self.agent,
            };
            let Some(y) = oslot.as_mut() else {
                return;
            };
            let Some(yctl) = y.ctl.dialog().cloned() else {
                return;
            };
            let mut p = OfferParams::new(y.rtp);
            p.direction = d;
            if let Some(c) = &y.crypto {
                p.srtp = y.srtp;
                p.crypto_key = key_params(c);
            }
            let Some(ysession) = y.session.as_mut() else {
                return;
            };
            match ysession.offer(&p) {
                Ok(sdp) => yctl.reoffer(sdp),
                Err(e) => warn!(call = %call, "cannot re-offer to the other leg: {e}"),
            }
        }
    }

    /// Our re-offer to `role` was answered: the peer's new SDP is kept, and a new address
    /// given to the relay.
    fn reoffer_answered(&mut self, role: Role, sdp: &str) {
        let call = self.call.clone();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(y) = slot.as_mut() else {
            return;
        };
        let Ok(answer) = SessionDescription::parse(sdp) else {
            warn!(call = %call, role = role.as_str(), "unusable answer to our re-offer");
            return;
        };
        let agreement = y.session.as_mut().and_then(|s| s.read_answer(&answer).ok());
        let change = y
            .remote
            .as_ref()
            .and_then(|r| sip::sdp::compare(r, &answer).ok());
        y.remote = Some(answer);
        let media = y.media;
        if let (Some(a), Some(remote)) = (agreement, change.and_then(|c| c.remote)) {
            let _ = self.media(Command::SetRemote {
                leg: media,
                remote,
                codec: codec_of(a.negotiated.encoding),
            });
        }
    }

    /// A leg's 2xx: reads its SDP answer against our offer; when the stream is SRTP, gives
    /// the media leg its keys (the peer's to decrypt, ours to encrypt) before anything flows.
    /// An answer without SRTP where the leg requires it, or one that does not fit the offer,
    /// is unusable.
    fn answered(&mut self, role: Role, sdp: &str) -> LegInput {
        let slot = match role {
            Role::Customer => &self.customer,
            Role::Agent => &self.agent,
        };
        let Some(leg) = slot.as_ref() else {
            return answer_input(sdp);
        };
        let Some(offer) = &leg.offer else {
            return answer_input(sdp);
        };
        let policy = leg.hop.as_ref().map_or(Srtp::Off, |h| h.srtp);
        let parsed = SessionDescription::parse(sdp);
        let agreement = match parsed
            .as_ref()
            .map_err(|e| SipError::Sdp(e.to_string()))
            .and_then(|a| sip::sdp::read_answer(offer, a))
        {
            Ok(a) => a,
            Err(e) => {
                warn!(call = %self.call, role = role.as_str(), "unusable SDP answer: {e}");
                return LegInput::AnswerUnusable;
            }
        };
        let media = leg.media;
        if let Some(l) = match role {
            Role::Customer => self.customer.as_mut(),
            Role::Agent => self.agent.as_mut(),
        } {
            if let (Some(s), Ok(a)) = (l.session.as_mut(), &parsed) {
                // Closes the session's pending offer (the one just answered).
                let _ = s.read_answer(a);
            }
            l.remote = parsed.ok();
        }
        let slot = match role {
            Role::Customer => &self.customer,
            Role::Agent => &self.agent,
        };
        let Some(leg) = slot.as_ref() else {
            return LegInput::Ended;
        };
        let ours = leg.crypto.clone();
        match (&agreement.srtp, ours) {
            (Some(keys), Some(ours)) => {
                let line = format!("{} {} {}", keys.tag, keys.suite.name(), keys.remote);
                let theirs = match CryptoAttr::parse(&line) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(call = %self.call, role = role.as_str(), "unusable a=crypto in the answer: {e}");
                        return LegInput::AnswerUnusable;
                    }
                };
                let cmd = Command::SetSrtp {
                    leg: media,
                    keys: Some(dp_api::SrtpKeys {
                        recv: (&theirs).into(),
                        send: (&ours).into(),
                    }),
                };
                if let Err(e) = self.media(cmd) {
                    warn!(call = %self.call, "cannot set SRTP keys: {e}");
                    return LegInput::AnswerUnusable;
                }
                debug!(call = %self.call, role = role.as_str(), "SRTP negotiated");
            }
            (None, _) if policy == Srtp::Required => {
                warn!(call = %self.call, role = role.as_str(), "SRTP required but the answer is plain RTP");
                return LegInput::AnswerUnusable;
            }
            _ => {}
        }
        let n = agreement.negotiated;
        let codec = codec_of(n.encoding);
        self.set_payload_types(media, &n);
        LegInput::Answered {
            remote: n.remote,
            codec,
        }
    }

    /// Tells the media leg the payload types its peer agreed to (the audio law and number,
    /// telephone-event's number), so the relay converts µ-law ↔ A-law and renumbers DTMF
    /// between legs that differ. Sent before the machine's `SetRemote` of the same codec,
    /// which keeps them.
    fn set_payload_types(&mut self, leg: LegId, n: &sip::sdp::Negotiated) {
        let cmd = Command::SetPayloadTypes {
            leg,
            types: dp_api::PayloadTypes {
                codec: codec_of(n.encoding),
                audio: n.payload_type,
                telephone_event: n.telephone_event,
            },
        };
        if let Err(e) = self.media(cmd) {
            warn!(call = %self.call, "cannot set the payload types: {e}");
        }
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

/// The data plane's codec for an SDP encoding.
fn codec_of(e: sip::sdp::Encoding) -> Codec {
    match e {
        sip::sdp::Encoding::Pcmu => Codec::Pcmu,
        sip::sdp::Encoding::Pcma => Codec::Pcma,
    }
}

/// Our SDP offer to `hop` for the media leg `leg` at `rtp`: PCMU, PCMA, telephone-event;
/// with SDES-SRTP (a fresh AES_CM_128_HMAC_SHA1_80 key) when the hop's policy asks for it and
/// the hop is TLS — keys only cross TLS, so `optional` over UDP/TCP offers plain RTP and
/// `required` there is refused.
fn offer_for(
    rtp: SocketAddr,
    leg: LegId,
    hop: &Hop,
) -> Result<(String, SessionDescription, Option<CryptoAttr>, LocalSession), String> {
    let tls = hop.dest.transport == sip::Transport::Tls;
    let mut p = OfferParams::new(rtp);
    let crypto = match (hop.srtp, tls) {
        (Srtp::Off, _) | (Srtp::Optional, false) => None,
        (Srtp::Required, false) => {
            return Err(format!(
                "SRTP is required but {} is not reached over TLS (SDES keys only cross TLS)",
                hop.dest
            ))
        }
        (policy, true) => {
            let c = CryptoAttr::generate(1, srtp::Suite::AesCm128HmacSha1_80)
                .map_err(|e| format!("cannot make an SRTP key: {e}"))?;
            p.srtp = policy;
            // `inline:…` of our attribute: everything after "TAG SUITE ".
            let line = c.to_string();
            p.crypto_key = line.splitn(3, ' ').nth(2).map(str::to_owned);
            Some(c)
        }
    };
    let mut session = LocalSession::new(u64::from(leg.0), rtp.ip());
    let sdp = session.offer(&p).map_err(|e| e.to_string())?;
    let offer = SessionDescription::parse(&sdp).map_err(|e| e.to_string())?;
    Ok((sdp, offer, crypto, session))
}

/// Sends `template` to `hop`: the Request-URI is `sip:NUMBER@<trunk authority>` for a
/// number, else the SIP URI itself; credentials and, through a trunk, P-Asserted-Identity are
/// the hop's. Returns the leg and the request as sent.
fn send_to_hop(
    b2b: &B2bua,
    template: &InviteRequest,
    number: Option<&str>,
    target: &Target,
    hop: &Hop,
    failover: bool,
) -> Result<(OutgoingCall, InviteRequest), B2buaError> {
    let mut req = template.clone();
    req.headers.retain(|(n, _)| n != "P-Asserted-Identity");
    match number {
        Some(num) => {
            req.target = format!("{}:{num}@{}", hop.scheme, hop.authority);
            let host = hop.authority.split(';').next().unwrap_or(&hop.authority);
            req.headers.push((
                "P-Asserted-Identity".into(),
                format!("<{}:{}@{host}>", hop.scheme, req.from_user),
            ));
        }
        None => req.target = target.as_str().to_owned(),
    }
    req.credentials.clone_from(&hop.credentials);
    let call = b2b
        .sip
        .invite_to(req.clone(), hop.dest, hop.tls_name.clone())
        .map_err(|e| B2buaError::Invite {
            uri: req.target.clone(),
            reason: e.to_string(),
        })?;
    if hop.trunk != usize::MAX {
        b2b.settings.trunks.count_call(hop.trunk, failover);
    }
    Ok((call, req))
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
