//! The one safe layer over `srtp-sys` (libsrtp2): SRTP and SRTCP sessions (RFC 3711) and the
//! SDES `a=crypto` attribute (RFC 4568) that carries their keys in SDP.
//!
//! ```text
//!  control plane: CryptoAttr::parse("1 AES_CM_128_HMAC_SHA1_80 inline:…") ─► (Suite, MasterKey)
//!                 MasterKey::generate() ─► CryptoAttr { … }.to_string() ─► our SDP
//!  data plane:    Session::inbound(suite, &their_key)  ─► unprotect_rtp / unprotect_rtcp
//!                 Session::outbound(suite, &our_key)   ─► protect_rtp   / protect_rtcp
//! ```
//!
//! # Contract
//! - Every cryptographic operation is libsrtp2's (the system library, found by pkg-config);
//!   nothing here is hand-rolled crypto. All `unsafe` of the crate sits in [`session`] and
//!   [`init`], each block with its `// SAFETY:` reasoning.
//! - A [`Session`] is one libsrtp session for one direction, keyed for any SSRC
//!   (`ssrc_any_inbound` / `ssrc_any_outbound`), with RFC 3711 §3.3.2 replay protection over a
//!   window of [`REPLAY_WINDOW`] packets (inbound), and libsrtp's refusal to encrypt one
//!   packet index twice (outbound). It is `Send` and not `Sync`: one worker owns it.
//! - Packets are transformed **in place**: `protect_*` needs room for the trailer after the
//!   packet (at most [`MAX_TRAILER`] bytes; see [`Session::rtp_trailer`] and
//!   [`Session::rtcp_trailer`]) and returns [`Error::NoRoom`] rather than writing past the
//!   buffer. The per-packet calls allocate nothing and format nothing; their errors are
//!   plain `Copy` values. (libsrtp allocates once per new SSRC seen by a session, when it
//!   clones the session's template into a stream; inbound only after that SSRC's first
//!   packet authenticated.)
//! - [`MasterKey`] is zeroed when dropped.
//! - libsrtp's RTP functions read the packet as 32-bit words: callers keep packets at least
//!   2-byte aligned, which every buffer of ours is; x86-64 and AArch64 accept the unaligned
//!   loads.
#![deny(missing_docs)]

mod key;
pub mod sdes;
pub mod session;

pub use key::{MasterKey, Suite, MASTER_KEY_LEN, MASTER_SALT_LEN};
pub use sdes::{CryptoAttr, Mki};
pub use session::{Session, MAX_TRAILER, REPLAY_WINDOW};

/// What went wrong, from libsrtp (the `srtp_err_status_t` it returned) or from parsing an
/// SDES attribute. `Copy` and allocation-free, so the per-packet path can return it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The packet failed authentication (tampered, wrong key, or truncated):
    /// `srtp_err_status_auth_fail`.
    #[error("SRTP authentication failed")]
    AuthFail,
    /// The packet index was seen already (a replay), or, when protecting, was used already:
    /// `srtp_err_status_replay_fail`.
    #[error("SRTP replay check failed (index already seen)")]
    ReplayFail,
    /// The packet index is older than the replay window: `srtp_err_status_replay_old`.
    #[error("SRTP replay check failed (index too old)")]
    ReplayOld,
    /// The buffer has no room after the packet for the SRTP trailer.
    #[error("no room after the packet for the SRTP trailer")]
    NoRoom,
    /// libsrtp refused a parameter (e.g. a packet too short to be RTP/RTCP, or longer than
    /// its buffer): `srtp_err_status_bad_param`.
    #[error("bad parameter for libsrtp")]
    BadParam,
    /// Another libsrtp status (its numeric `srtp_err_status_t`).
    #[error("libsrtp error {0}")]
    Other(u32),
    /// The operating system's random number generator failed.
    #[error("the OS random number generator failed")]
    Random,
    /// An `a=crypto` attribute names a crypto-suite we do not support.
    #[error("unsupported SRTP crypto-suite")]
    UnknownSuite,
    /// An `a=crypto` key is not valid base64, or not 30 bytes (16-byte key, 14-byte salt).
    #[error("bad SRTP master key (need base64 of a 16-byte key and a 14-byte salt)")]
    BadKey,
    /// An `a=crypto` attribute does not follow RFC 4568 §9.1; the text says where.
    #[error("bad a=crypto attribute: {0}")]
    BadAttribute(&'static str),
    /// A valid `a=crypto` attribute using something we do not support (several keys,
    /// session parameters); the text says what.
    #[error("unsupported a=crypto attribute: {0}")]
    Unsupported(&'static str),
}

impl Error {
    /// Maps a libsrtp status (not `srtp_err_status_ok`).
    fn from_status(status: srtp_sys::srtp_err_status_t) -> Self {
        match status {
            srtp_sys::srtp_err_status_auth_fail => Self::AuthFail,
            srtp_sys::srtp_err_status_replay_fail => Self::ReplayFail,
            srtp_sys::srtp_err_status_replay_old => Self::ReplayOld,
            srtp_sys::srtp_err_status_bad_param => Self::BadParam,
            other => Self::Other(other),
        }
    }
}

/// Turns a libsrtp status into a `Result` (the one place status codes are interpreted).
fn check(status: srtp_sys::srtp_err_status_t) -> Result<(), Error> {
    if status == srtp_sys::srtp_err_status_ok {
        Ok(())
    } else {
        Err(Error::from_status(status))
    }
}

/// Initialises libsrtp once per process (`srtp_init`); every [`Session`] constructor calls
/// it, so callers never need to.
///
/// # Errors
/// The status of the one `srtp_init` call, if it failed (then every call fails the same way).
pub fn init() -> Result<(), Error> {
    static INIT: std::sync::OnceLock<Result<(), Error>> = std::sync::OnceLock::new();
    *INIT.get_or_init(|| {
        // SAFETY: srtp_init has no preconditions; OnceLock runs it once, before any other
        // libsrtp call made through this crate.
        check(unsafe { srtp_sys::srtp_init() })
    })
}
