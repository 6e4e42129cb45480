//! The crate's one error type.

use std::net::SocketAddr;

/// Everything that can go wrong in the SIP crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SipError {
    /// The datagram is not a SIP message (bad start line, no header end, bad header line, …).
    #[error("malformed SIP message: {0}")]
    Malformed(String),
    /// Content-Length promises more body bytes than the datagram carries.
    #[error("truncated SIP message: Content-Length {declared} but {available} body bytes")]
    Truncated {
        /// The Content-Length value.
        declared: usize,
        /// How many bytes follow the blank line.
        available: usize,
    },
    /// The start line names a SIP version other than 2.0 (answered 505).
    #[error("unsupported SIP version {0:?}")]
    UnsupportedVersion(String),
    /// A header that may appear once appears more than once (RFC 4475 3.3.8, 3.3.9).
    #[error("multiple {0} header values")]
    DuplicateHeader(&'static str),
    /// A mandatory header is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// A header is present but its value cannot be understood.
    #[error("invalid {name} header: {value:?}")]
    InvalidHeader {
        /// Canonical header name.
        name: &'static str,
        /// The offending value.
        value: String,
    },
    /// The datagram or its header section is larger than [`crate::msg::Limits`] allows
    /// (answered `513 Message Too Large`, RFC 3261 21.5.7).
    #[error("SIP {part} of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// `"message"` or `"header section"`.
        part: &'static str,
        /// Its size in bytes (for a datagram: at least this many).
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The body is larger than [`crate::msg::Limits::max_body_bytes`] (answered
    /// `413 Request Entity Too Large`, RFC 3261 21.4.11).
    #[error("SIP body of {size} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// The body's size in bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A network in an ACL is not `address/prefix` (see [`crate::guard::Network::parse`]).
    #[error("invalid network {0}")]
    InvalidNetwork(String),
    /// A SIP URI cannot be parsed or does not name an address we can reach (we do no DNS).
    #[error("invalid or unreachable SIP URI {0:?}")]
    InvalidUri(String),
    /// A listening address or transport name is unusable; the text says why.
    #[error("{0}")]
    InvalidAddress(String),

    /// A configuration value is unusable (e.g. the registrar's); the text says which and why.
    #[error("{0}")]
    InvalidConfig(String),
    /// An SDP body is unusable; the text says what is missing.
    #[error("SDP: {0}")]
    Sdp(String),
    /// An SDP offer is well-formed but offers nothing we can accept (codec, transport or SRTP
    /// policy); the SIP layer answers `488 Not Acceptable Here`. The text lists, per `m=` line,
    /// why it was refused.
    #[error("SDP not acceptable: {0}")]
    SdpNotAcceptable(String),
    /// TLS material or configuration is unusable (certificate, key, CA file); the text says
    /// which file and why.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding or using a socket failed. The OS error is part of the message and is not
    /// also the error's `source()`: a chain formatter (anyhow's `{:#}`, `ctl`'s) would
    /// otherwise print it twice in one line ("…: Address in use: Address in use").
    #[error("socket {addr}: {error}")]
    Io {
        /// The local address involved.
        addr: SocketAddr,
        /// The OS error.
        error: std::io::Error,
    },
    /// A digest `WWW-Authenticate`/`Proxy-Authenticate`/`Authorization` value cannot be parsed
    /// ([`crate::digest`]); `reason` names the fault without echoing the value.
    #[error("malformed digest {header} value: {reason}")]
    DigestMalformed {
        /// Which kind of value: `"challenge"` or `"authorization"`.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A challenge or response asks for an algorithm or qop we do not implement (e.g.
    /// `MD5-sess`, `SHA-512-256`, `qop=auth-int` only); the text names it.
    #[error("unsupported digest {0}")]
    DigestUnsupported(String),
    /// Digest credentials were refused; [`crate::digest::AuthFailure::is_stale`] says whether
    /// only the nonce expired (the UAS then re-challenges with `stale=true`, the UAC retries).
    #[error("digest authentication failed: {0}")]
    AuthRejected(crate::digest::AuthFailure),
    /// DNS has no usable record for a SIP server name (NXDOMAIN, or no NAPTR/SRV/A/AAAA
    /// leading to an address; RFC 3263).
    #[error("DNS: no SIP server found for {name}")]
    DnsNotFound {
        /// The name that was looked up (the host part of the URI).
        name: String,
    },
    /// The DNS lookup itself failed (timeout, SERVFAIL, no reachable name server, bad config).
    #[error("DNS: {0}")]
    Dns(String),
    /// The endpoint was shut down; no more calls can be placed.
    #[error("SIP endpoint is shut down")]
    Shutdown,
}

impl SipError {
    /// A short description of what is wrong with a received message, without echoing its
    /// contents: the text after `400 Bad Request - ` (RFC 3261 21.4.1 lets the reason phrase
    /// name the syntax fault).
    pub fn fault(&self) -> String {
        match self {
            Self::Malformed(what) => what.clone(),
            Self::Truncated { .. } => "Content-Length larger than the body".into(),
            Self::UnsupportedVersion(_) => "SIP version not supported".into(),
            Self::DuplicateHeader(name) => format!("multiple {name} values"),
            Self::MissingHeader(name) => format!("missing {name}"),
            Self::InvalidHeader { name, .. } => format!("malformed {name}"),
            Self::InvalidUri(_) => "malformed URI".into(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;
    use std::fmt::Write as _;

    use super::*;

    /// What a chain formatter prints (anyhow's `{:#}`): the error, then each source.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut src = e.source();
        while let Some(x) = src {
            let _ = write!(s, ": {x}");
            src = x.source();
        }
        s
    }

    #[test]
    fn a_socket_error_names_its_cause_once() {
        let e = SipError::Io {
            addr: "127.0.0.1:5060".parse().unwrap(),
            error: std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use"),
        };
        assert_eq!(
            e.to_string(),
            "socket 127.0.0.1:5060: Address already in use"
        );
        assert!(e.source().is_none());
        let line = chain(&e);
        assert_eq!(line.matches("Address already in use").count(), 1, "{line}");
    }
}
