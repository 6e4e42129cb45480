//! rtpengine's *ng* control protocol for callbridge media nodes, so that a SIP proxy that
//! drives rtpengine (Kamailio's `rtpengine` module) can drive callbridge's data plane instead.
//!
//! A message is `<cookie> <bencoded dictionary>`; the reply carries the same cookie. The
//! layers, each usable alone:
//! - [`bencode`]: zero-copy decoding with bounded depth and size, and an encoder;
//! - [`request`]: the cookie and a typed [`Request`] (what a media node acts on);
//! - [`sdp`]: where a party receives audio, and the rewrite that puts the node in the path;
//! - [`cache`]: replies by cookie, so retransmitted commands run once;
//! - [`node`]: the call table over a [`b2bua::Media`] (the same data-plane interface the
//!   control plane uses in-process), turning offer/answer/delete/query into legs, bridges
//!   and counters;
//! - [`server`]: the UDP and TCP listener that drives a node (tokio);
//! - [`ext`]: callbridge's extension commands (`cb-allocate`, `cb-leg`, `cb-release`,
//!   `cb-events`), with which `serve` drives a node's data plane leg by leg;
//! - [`client`]: an async UDP ng client (cookie per request, retransmission, hard timeout);
//! - [`remote`]: [`remote::NgMedia`], a [`b2bua::Media`] over one or more media nodes
//!   (`serve`'s `media.nodes`).
//!
//! Commands: `ping`, `offer`, `answer`, `delete`, `query`, `list`, `statistics`, and the
//! extension's; anything else, and any malformed message, gets `result: error` with an
//! `error-reason`.

#![forbid(unsafe_code)]

pub mod bencode;
pub mod cache;
pub mod client;
pub mod ext;
pub mod node;
pub mod quality;
pub mod remote;
pub mod request;
pub mod sdp;
pub mod server;

pub use node::{Handled, Node, NodeSettings};
pub use request::{CommandKind, Request};

/// What can go wrong with an ng message; the text is the reply's `error-reason`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NgError {
    /// Not valid bencode.
    #[error("malformed bencode: {0}")]
    Bencode(String),
    /// Valid bencode, but not an ng request.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A command this node does not implement.
    #[error("unknown command: {0}")]
    UnknownCommand(String),
    /// A required key is missing.
    #[error("missing key: {0}")]
    Missing(&'static str),
    /// The SDP cannot be used.
    #[error("bad SDP: {0}")]
    Sdp(String),
    /// No such call (or tag).
    #[error("Unknown call-id: {0}")]
    UnknownCall(String),
    /// No media ports left.
    #[error("Ran out of ports: {0}")]
    Capacity(String),
    /// The data plane refused a command.
    #[error("internal error: {0}")]
    Internal(String),
}
