//! SIP for callbridge: a small, layered SIP UA over UDP.
//!
//! ```text
//!   ua (Endpoint, OutgoingCall, IncomingCall, LegController)      tokio task: the "core"
//!        │ owns
//!   dialog (Dialog, Uas2xxRetransmitter)                           sans-IO
//!   transaction (ClientTransaction, ServerTransaction)            sans-IO, fake time
//!        │ bytes
//!   transport (UDP recv loop → msg::parse → core; send queue)     tokio task
//!   msg (the only module that touches rsip) · sdp (offer/answer)
//! ```
//!
//! Sans-IO layers take `now: Instant` and messages in and hand out transmits, events and
//! their next deadline (`handle_*` / `poll_*`). Only `transport` and `ua` do I/O.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod msg;
pub mod sdp;
pub mod transaction;
pub mod dialog;

pub use error::SipError;
pub mod transport;
pub mod ua;

pub use transaction::Timers;
pub use ua::{Endpoint, EndpointConfig, IncomingCall, InviteRequest, LegController, LegEvent, OutgoingCall};
