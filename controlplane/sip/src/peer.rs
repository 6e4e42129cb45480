//! Where a SIP message goes or came from: a [`Transport`] and a socket address ([`Peer`]), and
//! the listening addresses of `sip.listen` ([`ListenAddr`], `"udp:IP:PORT"`, `"tcp:…"`,
//! `"tls:…"`). Plain values, no I/O.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::error::SipError;

/// A SIP transport (RFC 3261 18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// Datagrams; retransmissions by the transaction layer.
    Udp,
    /// A stream framed by `Content-Length` (18.3).
    Tcp,
    /// TCP inside TLS (rustls).
    Tls,
}

impl Transport {
    /// Whether the transport itself retransmits (TCP, TLS): the transaction layer's
    /// retransmission timers (A, E, G) are then not used and its wait timers (D, I, J, K) are 0.
    pub fn is_reliable(self) -> bool {
        !matches!(self, Self::Udp)
    }

    /// The name in a Via header (`SIP/2.0/UDP`) and in a URI's `transport=` parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
            Self::Tls => "TLS",
        }
    }

    /// The lower-case name used in URIs and in `sip.listen` (`udp`, `tcp`, `tls`).
    pub fn param(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
        }
    }

    /// The default port (5060, or 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Tls => 5061,
            _ => 5060,
        }
    }

    /// The NAPTR service field (RFC 3263 4.1).
    pub fn naptr_service(self) -> &'static str {
        match self {
            Self::Udp => "SIP+D2U",
            Self::Tcp => "SIP+D2T",
            Self::Tls => "SIPS+D2T",
        }
    }

    /// The SRV owner name prefix (RFC 3263 4.1).
    pub fn srv_prefix(self) -> &'static str {
        match self {
            Self::Udp => "_sip._udp",
            Self::Tcp => "_sip._tcp",
            Self::Tls => "_sips._tcp",
        }
    }

    /// The transport a NAPTR service field names, if we speak it.
    pub fn from_naptr_service(s: &str) -> Option<Self> {
        [Self::Udp, Self::Tcp, Self::Tls]
            .into_iter()
            .find(|t| s.eq_ignore_ascii_case(t.naptr_service()))
    }

    /// Parses `udp`/`tcp`/`tls` in any case.
    ///
    /// # Errors
    /// [`SipError::InvalidAddress`] naming what was given.
    pub fn parse(s: &str) -> Result<Self, SipError> {
        match s.to_ascii_lowercase().as_str() {
            "udp" => Ok(Self::Udp),
            "tcp" => Ok(Self::Tcp),
            "tls" => Ok(Self::Tls),
            other => Err(SipError::InvalidAddress(format!(
                "transport {other:?} is not udp, tcp or tls"
            ))),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport and an address: where a message is sent, or whence it came. For TCP and TLS the
/// address names a connection (the peer's end of it); the transport layer reuses an open one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// The transport.
    pub transport: Transport,
    /// The remote socket address.
    pub addr: SocketAddr,
}

impl Peer {
    /// A UDP peer.
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A peer over `transport`.
    pub fn new(transport: Transport, addr: SocketAddr) -> Self {
        Self { transport, addr }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.param(), self.addr)
    }
}

/// One listening address of `sip.listen`: `"udp:127.0.0.1:5060"`, `"tcp:[::1]:5060"`,
/// `"tls:0.0.0.0:5061"`, or a bare `IP:PORT` (UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr {
    /// The transport.
    pub transport: Transport,
    /// The address to bind (port 0 picks one).
    pub addr: SocketAddr,
}

impl ListenAddr {
    /// A UDP listener.
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
        }
    }
}

impl FromStr for ListenAddr {
    type Err = SipError;

    fn from_str(s: &str) -> Result<Self, SipError> {
        let s = s.trim();
        let (transport, rest) = match s.split_once(':') {
            Some((t, rest)) if t.eq_ignore_ascii_case("udp") => (Transport::Udp, rest),
            Some((t, rest)) if t.eq_ignore_ascii_case("tcp") => (Transport::Tcp, rest),
            Some((t, rest)) if t.eq_ignore_ascii_case("tls") => (Transport::Tls, rest),
            _ => (Transport::Udp, s),
        };
        let addr = rest.parse::<SocketAddr>().map_err(|_| {
            SipError::InvalidAddress(format!(
                "{s:?} is not [udp:|tcp:|tls:]IP:PORT (an IP address, not a host name; IPv6 in brackets)"
            ))
        })?;
        Ok(Self { transport, addr })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.transport.param(), self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse_with_and_without_a_transport() {
        let l: ListenAddr = "127.0.0.1:5060".parse().unwrap();
        assert_eq!(l, ListenAddr::udp("127.0.0.1:5060".parse().unwrap()));
        let l: ListenAddr = "TCP:[::1]:5070".parse().unwrap();
        assert_eq!(l.transport, Transport::Tcp);
        assert_eq!(l.addr, "[::1]:5070".parse().unwrap());
        let l: ListenAddr = "tls:0.0.0.0:5061".parse().unwrap();
        assert_eq!(l.transport, Transport::Tls);
        assert_eq!(l.to_string(), "tls:0.0.0.0:5061");
        for bad in [
            "sctp:127.0.0.1:5060",
            "tcp:localhost:5060",
            "udp:",
            "",
            "tls:1.2.3.4",
        ] {
            let e = bad.parse::<ListenAddr>().unwrap_err().to_string();
            assert!(e.contains("IP:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn transports_know_their_reliability_ports_and_names() {
        assert!(!Transport::Udp.is_reliable());
        assert!(Transport::Tcp.is_reliable() && Transport::Tls.is_reliable());
        assert_eq!(Transport::Tls.default_port(), 5061);
        assert_eq!(Transport::parse("TcP").unwrap(), Transport::Tcp);
        assert!(Transport::parse("sctp").is_err());
        assert_eq!(
            Peer::new(Transport::Tls, "127.0.0.1:5061".parse().unwrap()).to_string(),
            "tls:127.0.0.1:5061"
        );
    }
}
