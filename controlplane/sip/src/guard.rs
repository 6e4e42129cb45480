//! Sans-IO protection of the listener: [`Network`] (the ACL of sources allowed to send a new
//! INVITE, [`crate::EndpointConfig::allow_invite_from`]) and, against sources that keep
//! sending bad datagrams, [`BadSourceLimiter`]. After [`BadSourceLimits::max_bad`] bad datagrams (malformed, or over
//! a size limit) from one IP address within [`BadSourceLimits::window`], every datagram from
//! that address is dropped unread and unanswered for [`BadSourceLimits::cooldown`]; the
//! transport counts them ([`crate::Endpoint::rate_limited_count`]). Keyed by IP, not IP and
//! port: a sender can pick any port. Loopback is exempt unless told otherwise (the lab
//! endpoints and the SIPp and torture tests live there, as the HTTP limits exempt it).
//!
//! No clock and no I/O: the caller passes `now`. State is bounded by
//! [`BadSourceLimits::max_sources`]; when full, entries whose window and cooldown are over
//! are evicted, and if none is, a new source is not tracked (it is let through, never
//! wrongly blocked).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::error::SipError;

/// An IP network, `address/prefix` (a bare address is one host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (`/32`, `/128`). Host bits
    /// below the prefix must be zero, so a typo such as `10.0.0.1/8` is caught.
    ///
    /// # Errors
    /// [`SipError::InvalidNetwork`] naming what is wrong.
    pub fn parse(s: &str) -> Result<Self, SipError> {
        let bad = |why: &str| SipError::InvalidNetwork(format!("{s:?}: {why}"));
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| bad(&format!("the prefix length must be 0..={max}")))?,
        };
        let net = Self { addr, prefix };
        if bits(addr) & !mask(prefix, u32::from(max)) != 0 {
            return Err(bad("host bits are set below the prefix"));
        }
        Ok(net)
    }

    /// Whether every address of this network is a loopback address.
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        match self.addr {
            IpAddr::V4(a) => a.is_loopback() && self.prefix >= 8,
            IpAddr::V6(a) => a.is_loopback() && self.prefix == 128,
        }
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let max = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) => 32,
            (IpAddr::V6(_), IpAddr::V6(_)) => 128,
            _ => return false,
        };
        let m = mask(self.prefix, max);
        bits(ip) & m == bits(self.addr) & m
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The top `prefix` of `width` bits set.
fn mask(prefix: u8, width: u32) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    match u32::from(prefix) {
        0 => 0,
        p => all & !all.checked_shr(p).unwrap_or(0),
    }
}

/// The limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSourceLimits {
    /// Bad datagrams from one address within `window` that start its cooldown; the last of
    /// them is still answered. 0 turns the limiter off. Default 20.
    pub max_bad: u32,
    /// The counting window, starting with a source's first bad datagram. Default 10 s.
    pub window: Duration,
    /// How long a source's datagrams are dropped. Default 60 s.
    pub cooldown: Duration,
    /// Whether loopback sources are exempt. Default true.
    pub exempt_loopback: bool,
    /// Sources tracked at most. Default 10 000.
    pub max_sources: usize,
}

impl Default for BadSourceLimits {
    fn default() -> Self {
        Self {
            max_bad: 20,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(60),
            exempt_loopback: true,
            max_sources: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    window_start: Instant,
    bad: u32,
    blocked_until: Option<Instant>,
}

impl Source {
    /// Whether this entry says nothing any more at `now`.
    fn expired(&self, now: Instant, limits: &BadSourceLimits) -> bool {
        match self.blocked_until {
            Some(until) => until <= now,
            None => now.duration_since(self.window_start) >= limits.window,
        }
    }
}

/// Per-source counts of bad datagrams and the cooldowns they started. Owned by the
/// transport's receive task.
#[derive(Debug)]
pub struct BadSourceLimiter {
    limits: BadSourceLimits,
    sources: HashMap<IpAddr, Source>,
}

impl BadSourceLimiter {
    /// A limiter with no history.
    #[must_use]
    pub fn new(limits: BadSourceLimits) -> Self {
        Self {
            limits,
            sources: HashMap::new(),
        }
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        self.limits.max_bad == 0 || (self.limits.exempt_loopback && ip.is_loopback())
    }

    /// Whether a datagram from `ip` is read at `now` (false: drop it unanswered).
    pub fn accepts(&mut self, now: Instant, ip: IpAddr) -> bool {
        let Some(s) = self.sources.get(&ip) else {
            return true;
        };
        match s.blocked_until {
            Some(until) if until > now => false,
            Some(_) => {
                self.sources.remove(&ip);
                true
            }
            None => true,
        }
    }

    /// Records a bad datagram from `ip` at `now`; returns true if this one started the
    /// source's cooldown.
    pub fn handle_bad(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.exempt(ip) {
            return false;
        }
        let limits = self.limits;
        if !self.sources.contains_key(&ip) && self.sources.len() >= limits.max_sources {
            self.sources.retain(|_, s| !s.expired(now, &limits));
            if self.sources.len() >= limits.max_sources {
                return false;
            }
        }
        let s = self.sources.entry(ip).or_insert(Source {
            window_start: now,
            bad: 0,
            blocked_until: None,
        });
        if s.blocked_until.is_some() {
            return false;
        }
        if now.duration_since(s.window_start) >= limits.window {
            s.window_start = now;
            s.bad = 0;
        }
        s.bad += 1;
        if s.bad >= limits.max_bad {
            s.blocked_until = Some(now + limits.cooldown);
            return true;
        }
        false
    }

    /// Sources currently tracked (counting or cooling down).
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));
    const LO: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn limits() -> BadSourceLimits {
        BadSourceLimits {
            max_bad: 3,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(60),
            exempt_loopback: true,
            max_sources: 4,
        }
    }

    #[test]
    fn networks_parse_and_contain() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.255.1.2".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let host = Network::parse("192.0.2.7").unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        let v6 = Network::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!v6.contains("2001:db9::5".parse().unwrap()));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(A));
        assert!(Network::parse("::/0")
            .unwrap()
            .contains("::1".parse().unwrap()));
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0/33",
            "10.0.0.0/x",
            "example.com",
            "",
            "::1/129",
        ] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_kth_bad_datagram_starts_a_cooldown_for_that_source_only() {
        let t0 = Instant::now();
        let mut l = BadSourceLimiter::new(limits());
        assert!(!l.handle_bad(t0, A));
        assert!(!l.handle_bad(t0 + Duration::from_secs(1), A));
        assert!(l.accepts(t0 + Duration::from_secs(2), A));
        assert!(l.handle_bad(t0 + Duration::from_secs(2), A));
        assert!(!l.accepts(t0 + Duration::from_secs(2), A));
        assert!(l.accepts(t0 + Duration::from_secs(2), B));
        // cooldown: 60 s from the third bad datagram
        assert!(!l.accepts(t0 + Duration::from_secs(61), A));
        assert!(l.accepts(t0 + Duration::from_secs(62), A));
        assert_eq!(l.tracked(), 0);
        // and the count starts over
        assert!(!l.handle_bad(t0 + Duration::from_secs(63), A));
        assert!(l.accepts(t0 + Duration::from_secs(63), A));
    }

    #[test]
    fn bad_datagrams_spread_over_more_than_the_window_are_forgiven() {
        let t0 = Instant::now();
        let mut l = BadSourceLimiter::new(limits());
        for i in 0..10 {
            assert!(!l.handle_bad(t0 + Duration::from_secs(6 * i), A), "{i}");
            assert!(l.accepts(t0 + Duration::from_secs(6 * i), A));
        }
    }

    #[test]
    fn loopback_is_exempt_unless_told_and_zero_turns_it_off() {
        let t0 = Instant::now();
        let mut l = BadSourceLimiter::new(limits());
        for _ in 0..10 {
            assert!(!l.handle_bad(t0, LO));
        }
        assert!(l.accepts(t0, LO));
        let mut l = BadSourceLimiter::new(BadSourceLimits {
            exempt_loopback: false,
            ..limits()
        });
        for _ in 0..3 {
            l.handle_bad(t0, LO);
        }
        assert!(!l.accepts(t0, LO));
        let mut l = BadSourceLimiter::new(BadSourceLimits {
            max_bad: 0,
            ..limits()
        });
        for _ in 0..10 {
            assert!(!l.handle_bad(t0, A));
        }
        assert!(l.accepts(t0, A));
    }

    #[test]
    fn state_is_bounded_and_expired_entries_make_room() {
        let t0 = Instant::now();
        let mut l = BadSourceLimiter::new(limits());
        let ip = |i: u8| IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, i));
        for i in 0..4 {
            l.handle_bad(t0, ip(i));
        }
        assert_eq!(l.tracked(), 4);
        // full: a fifth source is not tracked, so never blocked
        for _ in 0..5 {
            l.handle_bad(t0, ip(9));
        }
        assert!(l.accepts(t0, ip(9)));
        assert_eq!(l.tracked(), 4);
        // after the window the old entries are evicted to make room
        let later = t0 + Duration::from_secs(11);
        for _ in 0..3 {
            l.handle_bad(later, ip(9));
        }
        assert!(!l.accepts(later, ip(9)));
        assert_eq!(l.tracked(), 1);
    }
}
