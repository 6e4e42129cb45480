//! The user-agent API the rest of callbridge uses: [`Endpoint`], [`OutgoingCall`],
//! [`IncomingCall`], [`LegController`], [`LegEvent`].
//!
//! One tokio task (the *core*) owns every transaction, dialog and leg; handles talk to it over
//! an unbounded command channel, and each leg reports over its own event channel. The core
//! sleeps until the earliest sans-IO deadline (`poll_timeout`) or the next datagram/command.
//!
//! Leg lifecycle and events:
//! * outgoing: `Progress*` → `Answered` → (`Bye` | `Ended` after our hangup); or `Rejected`,
//!   `Timeout`. A hangup before the answer yields `Ended` once the CANCEL completed (the 487 was
//!   ACKed), or once the late 2xx was ACKed and BYEd. After the last event, `event()` is `None`.
//! * incoming: `Cancelled` | `Bye` | `Ended` (our hangup finished) | `Timeout` (no ACK for our
//!   2xx; we sent BYE). After `reject()` no event follows; `event()` returns `None`.
//! * either, once confirmed: `Reoffer` (answer it), `ReofferAnswered` / `ReofferRejected`
//!   (after our `reoffer`/`update`), `SessionExpired` (then `Ended`).
//!
//! Modules, by side:
//! * `endpoint`: the [`Endpoint`] handle (bind, counters, shutdown);
//! * `core`: the task (the command channel, the timer heap, transaction plumbing, hangup and
//!   BYE, request dispatch);
//! * `inspect`: the RFC 3261 8.2 checks a new request passes before any decision (405, 416,
//!   420, 415, 406);
//! * `uac`: the client side of INVITE ([`Endpoint::invite`], [`OutgoingCall`], responses, ACK
//!   for 2xx, CANCEL); `early`: the PRACK for a reliable provisional response to our INVITE
//!   (RFC 3262);
//! * `uas`: the server side ([`IncomingCall`], 180, answer with 2xx retransmission, reject,
//!   re-INVITE, incoming CANCEL);
//! * `reinvite`: offers in the confirmed dialog, either way (re-INVITE, UPDATE, glare, the
//!   session timer's refreshes), with `session_timer` its sans-IO RFC 4028 part;
//! * `register`: answers REGISTER through the [`crate::registrar`] (shared with the
//!   application behind a mutex for [`Endpoint::bindings`]); `request`: out-of-dialog
//!   requests and their [`Outcome`];
//! * `fork`: calls a user's registered devices in parallel on top of `uac`
//!   ([`Endpoint::invite_registered`], [`ForkedCall`]).
//!
//! `core` calls into each side; they use its plumbing, never each other (`uac` and `uas` only
//! call `reinvite`'s helpers when a dialog starts).

use std::net::SocketAddr;

use tokio::sync::mpsc;

use crate::digest::Credentials;
use crate::error::SipError;
use crate::guard::{BadSourceLimits, Network};
use crate::msg::{Limits, NameAddr};
use crate::peer::ListenAddr;
use crate::registrar::RegistrarConfig;
use crate::tls::TlsConfig;
use crate::transaction::Timers;
use crate::transport::StreamLimits;

mod core;
mod early;
mod endpoint;
mod fork;
mod inspect;
mod register;
mod reinvite;
mod request;
pub mod session_timer;
mod uac;
mod uas;

pub use self::endpoint::Endpoint;
pub use self::fork::{ForkController, ForkedCall};
pub use self::reinvite::ReofferPolicy;
pub use self::request::Outcome;
pub use self::session_timer::SessionTimerConfig;
pub use self::uac::OutgoingCall;
pub use self::uas::IncomingCall;

use self::core::{Cmd, LegId};

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE";
/// [`ALLOW`] when a registrar is configured ([`EndpointConfig::registrar`]).
const ALLOW_WITH_REGISTER: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, REGISTER";

/// The methods we implement, for `Allow` in OPTIONS answers and 405s.
fn allow(registrar: bool) -> &'static str {
    if registrar {
        ALLOW_WITH_REGISTER
    } else {
        ALLOW
    }
}

/// Endpoint configuration.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Addresses to listen on, each with its transport (port 0 picks one); at least one. An
    /// unspecified IP (0.0.0.0) is advertised in Via/Contact as 127.0.0.1. Requests we send go
    /// out from the first listener of their transport and address family (TCP and TLS
    /// connections may be opened without a listener of that transport).
    pub listen: Vec<ListenAddr>,
    /// TLS configuration: required for `tls:` listeners, and for sending to `tls` targets.
    pub tls: Option<TlsConfig>,
    /// Connection limits and keep-alive for TCP and TLS.
    pub streams: StreamLimits,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// T1, T2, T4.
    pub timers: Timers,
    /// Size limits on received datagrams (513 / 413 when exceeded).
    pub limits: Limits,
    /// When a source's bad datagrams get it ignored for a while.
    pub bad_sources: BadSourceLimits,
    /// Networks allowed to send a new INVITE (checked on the datagram's source address). A new
    /// INVITE from anywhere else gets `403 Forbidden` after the RFC 3261 8.2 checks and before
    /// the application sees it; in-dialog requests and other methods are not affected. `None`
    /// (the default): every source may.
    pub allow_invite_from: Option<Vec<Network>>,
    /// The registrar for agents' softphones ([`crate::registrar`]): REGISTER is answered by it
    /// and `Allow` lists REGISTER. `None` (the default): REGISTER gets `405`, as any method we
    /// do not implement.
    pub registrar: Option<RegistrarConfig>,
    /// Networks allowed to send REGISTER (the datagram's or connection's source address);
    /// from anywhere else it gets `403 Forbidden` before authentication. `None` (the default):
    /// every source may.
    pub allow_register_from: Option<Vec<Network>>,
    /// What a changed offer in a re-INVITE or UPDATE becomes (default: today's answer with
    /// our unchanged SDP, [`ReofferPolicy::AnswerUnchanged`]). Session refreshes (same `o=`
    /// version, RFC 3264 8) are answered unchanged whatever this says.
    pub reoffers: ReofferPolicy,
    /// Session timers (RFC 4028): what we ask for and accept.
    pub session_timer: SessionTimerConfig,
    /// `Supported: 100rel` in our INVITEs (RFC 3262), so the far end may send reliable
    /// provisional responses (early media, e.g. the agent's ringback in a 183). Whatever this
    /// says, a reliable provisional we get is PRACKed. Default: false. Incoming INVITEs that
    /// require 100rel get 420 (we send no reliable provisionals).
    pub use_100rel: bool,
}

impl EndpointConfig {
    /// Config with RFC timers, the default user agent and one UDP listener on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen: vec![ListenAddr::udp(listen)],
            tls: None,
            streams: StreamLimits::default(),
            user_agent: format!("callbridge/{}", env!("CARGO_PKG_VERSION")),
            timers: Timers::default(),
            limits: Limits::default(),
            bad_sources: BadSourceLimits::default(),
            allow_invite_from: None,
            registrar: None,
            allow_register_from: None,
            reoffers: ReofferPolicy::default(),
            session_timer: SessionTimerConfig::default(),
            use_100rel: false,
        }
    }
}

/// What to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRequest {
    /// Request-URI, e.g. `sip:+15551234567@127.0.0.1:5080` (host must be an IP literal or localhost).
    pub target: String,
    /// User part of our From/Contact.
    pub from_user: String,
    /// Display name of our From.
    pub from_display: Option<String>,
    /// SDP offer (empty for no body).
    pub sdp: String,
    /// Extra headers, e.g. `("X-Callbridge-Call", id)`.
    pub headers: Vec<(String, String)>,
    /// Digest credentials for whoever challenges this INVITE (and the dialog's later requests)
    /// with 401/407: a trunk's. The endpoint keeps one digest session per credentials and
    /// destination, so later calls reuse the nonce with a growing `nc` (no extra round trip).
    pub credentials: Option<Credentials>,
}

/// Something that happened on a leg.
///
/// Not `#[non_exhaustive]`: the application must map every event explicitly (a new one is a
/// compile error there, not a silent catch-all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegEvent {
    /// A 1xx other than 100 (180, 183), with its SDP if any.
    Progress {
        /// Status code.
        status: u16,
        /// Early-media SDP.
        sdp: Option<String>,
    },
    /// A 2xx arrived and was ACKed.
    Answered {
        /// The answer SDP (empty if the 2xx had no body).
        sdp: String,
    },
    /// A non-2xx final response (already ACKed by the transaction).
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No final response (Timer B) on an outgoing leg, or no ACK for our 2xx on an incoming leg.
    Timeout,
    /// The peer could not be reached at all (RFC 3261 17.1.4, a transport error: ICMP port,
    /// host or network unreachable for our INVITE, a TCP/TLS connection refused or failed),
    /// before any final response. Distinct from [`LegEvent::Timeout`] (nothing came back)
    /// and from [`LegEvent::Rejected`] (the peer answered).
    Unreachable {
        /// What the transport saw, for logs (e.g. `ICMP port unreachable from 192.0.2.7:5060`).
        cause: String,
    },
    /// The caller CANCELled our unanswered incoming call.
    Cancelled,
    /// The remote sent BYE (we answered 200).
    Bye,
    /// Our hangup finished.
    Ended,
    /// The peer sent a new offer in a re-INVITE or UPDATE of the confirmed dialog (hold,
    /// unhold, a new address, …; [`crate::sdp::compare`] it with the previous one). Answer it
    /// with [`LegController::answer_reoffer`] or refuse it with
    /// [`LegController::reject_reoffer`]; only with [`ReofferPolicy::Application`].
    Reoffer {
        /// The offer.
        sdp: String,
    },
    /// Our re-offer ([`LegController::reoffer`] / [`LegController::update`]) was accepted with
    /// this answer (the 2xx was ACKed). Also, with [`ReofferPolicy::Application`]: the answer
    /// in the ACK to an offerless re-INVITE of the peer, which we answered offering our
    /// current SDP.
    ReofferAnswered {
        /// The answer SDP (empty if none).
        sdp: String,
    },
    /// Our re-offer was refused; the session stays as it was (RFC 3261 14.1). 491 is retried
    /// by the UA and not reported. After a 481 or 408 (or no response) the dialog is ended
    /// with BYE and `Ended` follows.
    ReofferRejected {
        /// Status code (408 for no response, 503 for a transport error).
        status: u16,
    },
    /// The session timer (RFC 4028) ran out without a refresh; we sent BYE, `Ended` follows.
    SessionExpired,
}

/// Hangs up a leg from anywhere. Clone + Send.
#[derive(Debug, Clone)]
pub struct LegController {
    leg: LegId,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl LegController {
    /// Ends the leg, idempotently. Outgoing: before any provisional, remembered and a CANCEL
    /// sent once a 1xx arrives (RFC 3261 9.1), or ACK+BYE if a 2xx arrives; early: CANCEL;
    /// confirmed: BYE. Incoming: unanswered → 603 Decline; answered → BYE (after the ACK).
    /// Ends with [`LegEvent::Ended`].
    pub fn hangup(&self) {
        let _ = self.cmd.send(Cmd::Hangup(self.leg));
    }

    /// Sends a re-INVITE with `sdp` as the new offer in the confirmed dialog (hold:
    /// `a=sendonly`, unhold: `a=sendrecv`, a new relay address, …). Reports
    /// [`LegEvent::ReofferAnswered`] or [`LegEvent::ReofferRejected`]. While another offer is
    /// pending in either direction it waits (the last one asked for wins); glare (491) is
    /// retried after RFC 3261 14.1's random interval. An empty `sdp` sends our last SDP again
    /// (a session refresh; we send no offerless re-INVITE). Before the dialog is confirmed or
    /// after a hangup: [`LegEvent::ReofferRejected`] with 481 at once.
    pub fn reoffer(&self, sdp: String) {
        let _ = self.cmd.send(Cmd::Reoffer(self.leg, sdp, false));
    }

    /// Like [`Self::reoffer`], with an UPDATE (RFC 3311) instead of a re-INVITE; an empty
    /// `sdp` sends an UPDATE without body (a session refresh).
    pub fn update(&self, sdp: String) {
        let _ = self.cmd.send(Cmd::Reoffer(self.leg, sdp, true));
    }

    /// Answers the offer of the last [`LegEvent::Reoffer`] with `sdp` (a 2xx: for a
    /// re-INVITE, retransmitted until the ACK).
    pub fn answer_reoffer(&self, sdp: String) {
        let _ = self.cmd.send(Cmd::AnswerReoffer(self.leg, sdp));
    }

    /// Refuses the offer of the last [`LegEvent::Reoffer`] with `status` (e.g. 488 Not
    /// Acceptable Here; one outside 300..=699 becomes 488). The session stays as it was.
    pub fn reject_reoffer(&self, status: u16) {
        let _ = self.cmd.send(Cmd::RejectReoffer(self.leg, status));
    }
}

/// Reads the display-less URI of a From/To value (helper for applications).
///
/// # Errors
/// [`SipError::InvalidHeader`].
pub fn header_uri(value: &str) -> Result<String, SipError> {
    NameAddr::parse("From", value).map(|n| n.uri)
}
