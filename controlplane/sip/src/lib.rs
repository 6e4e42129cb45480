//! SIP for callbridge: a small, layered SIP UA over UDP.
//!
//! ```text
//!   ua (Endpoint, OutgoingCall, IncomingCall, LegController)      tokio task: the "core"
//!        │ owns
//!   dialog (Dialog, Uas2xxRetransmitter)                           sans-IO
//!   transaction (ClientTransaction, ServerTransaction)            sans-IO, fake time
//!        │ bytes
//!   transport (UDP recv loop → guard → msg::parse → core; sends)  tokio task
//!   msg (the only module that touches rsip) · sdp (offer/answer) · guard (bad sources; sans-IO)
//!   digest (RFC 8760 digest auth: ClientAuth for trunks, Challenger for REGISTER; sans-IO)
//!   locate (RFC 3263: URI → NAPTR/SRV/A/AAAA → ordered targets, failover; Locator does DNS)
//!   registrar (RFC 3261 10.3 location service for agents' softphones: bindings with their
//!             flow, digest via Challenger; sans-IO, answered by the ua core)
//! ```
//!
//! Sans-IO layers take `now: Instant` and messages in and hand out transmits, events and
//! their next deadline (`handle_*` / `poll_*`). Only `transport` and `ua` do I/O.
//!
//! Scope: UDP, TCP and TLS ([`transport`], [`tls`]; `tests/streams.rs`); digest
//! authentication of our INVITEs and BYEs ([`digest`]; `tests/sipp.rs`); RFC 3263 server
//! location ([`locate`], used by the application for trunk host names); OPTIONS keep-alives
//! ([`Endpoint::options`]). Offers in a confirmed dialog (issue 8, `ua::reinvite`): re-INVITE
//! and UPDATE (RFC 3311) both ways ([`LegController::reoffer`], [`LegEvent::Reoffer`]), glare
//! (491), offerless re-INVITEs, session timers (RFC 4028, [`SessionTimerConfig`]); a session
//! refresh is answered with our unchanged SDP (`tests/reinvite.rs`). Reliable provisional
//! responses to our INVITEs are PRACKed (RFC 3262, [`EndpointConfig::use_100rel`];
//! `tests/prack.rs`); we send none (an INVITE that requires 100rel gets 420, a PRACK 405).
//! No forking (a 2xx from a second fork is ignored).
//!
//! Transport errors (RFC 3261 17.1.4) end a client transaction at once and reach the
//! application as [`LegEvent::Unreachable`]: a TCP/TLS connection that cannot be opened, and,
//! over UDP, an ICMP port/host/network unreachable for the request (the socket sets
//! `IP_RECVERR` and reads its error queue; `transport/icmp.rs`, `tests/call.rs`).
//!
//! Robustness (issue 8; RFC 4475, `tests/torture.rs`): a datagram from a source that sent too
//! many bad ones lately is dropped unread ([`guard`], `tests/bad_sources.rs`); one over the size
//! limits ([`msg::Limits`]) gets 513 or 413 before it is parsed (`tests/limits.rs`); then a
//! received request is judged in RFC 3261 8.2 order before any dialog, leg or application
//! decision — syntax (`400 Bad Request - <fault>`) and version (505) in [`msg::parse`] /
//! [`msg::reject_malformed`], then method (405), URI scheme (416), `Require` (420), INVITE body
//! (415) and `Accept` (406) in the UA, then, for a new INVITE, the source's network
//! ([`EndpointConfig::allow_invite_from`], 403; `tests/invite_acl.rs`). A REGISTER is answered
//! by the [`registrar`] when [`EndpointConfig::registrar`] is set (else 405), after the same
//! checks and the source's network ([`EndpointConfig::allow_register_from`], 403;
//! `tests/register.rs`). Malformed and stray responses are dropped and counted
//! ([`Endpoint::dropped_responses`]). `tests/mutation.rs` sends 100 000 seeded mutations of
//! valid messages through the listener and checks it still answers; `tests/roundtrip.rs`
//! checks `parse ∘ encode` round trips on generated and mutated messages.
//!
//! ```no_run
//! use sip::{Endpoint, EndpointConfig, InviteRequest, LegEvent};
//! # async fn demo() -> Result<(), sip::SipError> {
//! let (ep, mut incoming) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap())).await?;
//! let mut leg = ep.invite(InviteRequest {
//!     target: "sip:+15551234567@127.0.0.1:5080".into(),
//!     from_user: "callbridge".into(),
//!     from_display: None,
//!     sdp: sip::sdp::build_offer("127.0.0.1:40000".parse().unwrap(), 1),
//!     headers: vec![("X-Callbridge-Call".into(), "42".into())],
//!     credentials: None,
//! })?;
//! let hangup = leg.controller();
//! while let Some(ev) = leg.event().await {
//!     if let LegEvent::Answered { .. } = ev {
//!         hangup.hangup();
//!     }
//! }
//! # drop(incoming); Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod dialog;
pub mod digest;
pub mod error;
pub mod guard;
pub mod locate;
pub mod msg;
pub mod peer;
pub mod registrar;
pub mod sdp;
pub mod tls;
pub mod trace;
pub mod transaction;

pub use error::SipError;
pub mod transport;
pub mod ua;

pub use peer::{ListenAddr, Peer, Transport};
pub use tls::TlsConfig;
pub use transaction::Timers;
pub use transport::StreamLimits;
pub use ua::{
    Endpoint, EndpointConfig, ForkController, ForkedCall, IncomingCall, InviteRequest,
    LegController, LegEvent, OutgoingCall, ReofferPolicy, SessionTimerConfig,
};
