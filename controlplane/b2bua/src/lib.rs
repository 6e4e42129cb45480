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

pub use media::{InProcessMedia, Media, MediaError};

use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;

use dp_api::{Codec, Command, Event, LegId};
use flows::{LegInput, Role, Target};
use sip::{Endpoint, InviteRequest, LegController, LegEvent, OutgoingCall};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What the B2BUA needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where E.164 numbers are sent (`sip:host:port`).
    pub trunk: String,
    /// The user part of our From.
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

/// One SIP leg of a call.
struct Leg {
    call: OutgoingCall,
    ctl: LegController,
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
    /// Sends an INVITE for `role` to `target`, offering `leg`'s local media address.
    /// `from_display` is the caller name the callee sees; `from_user` the caller id (user
    /// part of From; `None`: [`Settings::from_user`]).
    ///
    /// # Errors
    /// [`B2buaError`] when the INVITE cannot be sent (the leg stays idle).
    pub fn invite(
        &mut self,
        role: Role,
        target: &Target,
        leg: LegId,
        from_display: Option<String>,
        from_user: Option<&str>,
    ) -> Result<(), B2buaError> {
        let uri = target
            .request_uri(&self.b2b.settings.trunk)
            .map_err(|e| B2buaError::Target {
                target: target.to_string(),
                reason: e.to_string(),
            })?;
        let ip = self
            .b2b
            .media
            .address_of(leg)
            .ok_or(B2buaError::NoMediaAddress(leg))?;
        let sdp = sip::sdp::build_offer(SocketAddr::new(ip, leg.port()), u64::from(leg.0));
        let req = InviteRequest {
            target: uri.clone(),
            from_user: from_user.map_or_else(|| self.b2b.settings.from_user.clone(), str::to_owned),
            from_display,
            sdp,
            headers: vec![("X-Callbridge-Call".into(), self.call.clone())],
            credentials: None,
        };
        let call = self.b2b.sip.invite(req).map_err(|e| B2buaError::Invite {
            uri: uri.clone(),
            reason: e.to_string(),
        })?;
        debug!(call = %self.call, role = role.as_str(), %uri, "INVITE sent");
        let ctl = call.controller();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        *slot = Some(Leg { call, ctl });
        Ok(())
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
        let input = match ev {
            LegEvent::Progress { .. } => LegInput::Progress,
            LegEvent::Answered { sdp } => answer_input(&sdp),
            LegEvent::Rejected { status, .. } => LegInput::Rejected { status },
            LegEvent::Timeout => LegInput::Timeout,
            LegEvent::Bye => LegInput::Bye,
            _ => LegInput::Ended,
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
