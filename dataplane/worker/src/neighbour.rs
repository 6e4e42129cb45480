//! The neighbour cache both netstacks share: ARP's for IPv4 ([`crate::netstack`]), NDP's for
//! IPv6 ([`crate::netstack6`]). Sans-IO: the caller sends the requests this cache asks for.
//!
//! A small set-associative table (fixed size, allocated once), entries `Resolved` until they
//! expire or `Pending` while wanted; a ring of targets to ask about, each asked at most once
//! per [`ARP_RETRY`]; and a one-entry fast path for the last next hop, so the per-packet cost
//! is one address compare and one time compare.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use wire::ethernet::Address;

use crate::netstack::{
    ARP_RETRY, LEARNED_LOG, NEIGHBOUR_BUCKETS, NEIGHBOUR_TTL, NEIGHBOUR_WAYS, PENDING_IDLE,
    PENDING_TARGETS, REFRESH_BEFORE,
};

/// An address the cache can hold.
pub(crate) trait NeighbourAddr: Copy + Eq + fmt::Debug {
    /// The unused-slot value.
    const UNSPECIFIED: Self;
    /// The bucket of an address (`< NEIGHBOUR_BUCKETS`).
    fn bucket(self) -> usize;
}

impl NeighbourAddr for Ipv4Addr {
    const UNSPECIFIED: Self = Self::UNSPECIFIED;
    fn bucket(self) -> usize {
        let h = u32::from(self).wrapping_mul(0x9e37_79b1);
        (h >> 24) as usize & (NEIGHBOUR_BUCKETS - 1)
    }
}

impl NeighbourAddr for Ipv6Addr {
    const UNSPECIFIED: Self = Self::UNSPECIFIED;
    fn bucket(self) -> usize {
        // The interface identifier varies most between neighbours on one link.
        let o = self.octets();
        let lo = u64::from_be_bytes([o[8], o[9], o[10], o[11], o[12], o[13], o[14], o[15]]);
        let h = (lo ^ (lo >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        (h >> 56) as usize & (NEIGHBOUR_BUCKETS - 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// Known until `expires`.
    Resolved {
        mac: Address,
        expires: Instant,
    },
    /// Wanted since `wanted` (last demand); no answer yet.
    Pending {
        wanted: Instant,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entry<A> {
    ip: A,
    state: State,
    /// The last request for this entry.
    asked: Option<Instant>,
}

/// Whether a target last asked at `asked` may be asked again at `now`.
fn retry_due(asked: Option<Instant>, now: Instant) -> bool {
    match asked {
        None => true,
        Some(t) => now.saturating_duration_since(t) >= ARP_RETRY,
    }
}

/// The cache. See the module docs.
#[derive(Debug)]
pub(crate) struct Neighbours<A: NeighbourAddr> {
    table: Box<[Entry<A>]>,
    /// Ring of targets to ask about.
    pending: [A; PENDING_TARGETS],
    pending_head: usize,
    pending_len: usize,
    /// The last next hop resolved on the egress path (index into `table`).
    last: Option<usize>,
    /// The last next hop, its MAC, and until when it needs no refresh: the per-packet fast
    /// path. Cleared whenever the table changes.
    fast: Option<(A, Address, Instant)>,
}

impl<A: NeighbourAddr> Neighbours<A> {
    /// An empty cache (allocated here, once).
    pub(crate) fn new() -> Self {
        let free = Entry {
            ip: A::UNSPECIFIED,
            state: State::Free,
            asked: None,
        };
        Self {
            table: vec![free; NEIGHBOUR_BUCKETS * NEIGHBOUR_WAYS].into_boxed_slice(),
            pending: [A::UNSPECIFIED; PENDING_TARGETS],
            pending_head: 0,
            pending_len: 0,
            last: None,
            fast: None,
        }
    }

    /// Whether `ip` has an entry (resolved or pending).
    pub(crate) fn knows(&self, ip: A) -> bool {
        self.find(ip).is_some()
    }

    fn find(&self, ip: A) -> Option<usize> {
        let b = ip.bucket() * NEIGHBOUR_WAYS;
        (b..b + NEIGHBOUR_WAYS)
            .find(|&i| self.table[i].ip == ip && self.table[i].state != State::Free)
    }

    /// The slot for `ip`: its own, else a free one, else the pending or resolved one that
    /// expires first.
    fn slot_for(&self, ip: A) -> usize {
        if let Some(i) = self.find(ip) {
            return i;
        }
        let b = ip.bucket() * NEIGHBOUR_WAYS;
        let key = |i: usize| match self.table[i].state {
            State::Free => None,
            State::Pending { wanted } => Some(wanted),
            State::Resolved { expires, .. } => Some(expires),
        };
        (b..b + NEIGHBOUR_WAYS).min_by_key(|&i| key(i)).unwrap_or(b)
    }

    /// Records that `ip` is at `mac` as of `now` (valid for [`NEIGHBOUR_TTL`]).
    pub(crate) fn learn(&mut self, now: Instant, ip: A, mac: Address) {
        self.fast = None;
        let i = self.slot_for(ip);
        let asked = if self.table[i].ip == ip {
            self.table[i].asked
        } else {
            None
        };
        self.table[i] = Entry {
            ip,
            state: State::Resolved {
                mac,
                expires: now + NEIGHBOUR_TTL,
            },
            asked,
        };
    }

    /// The MAC cached for `ip`, if resolved and not expired (no side effects).
    pub(crate) fn get(&self, now: Instant, ip: A) -> Option<Address> {
        match self.table[self.find(ip)?].state {
            State::Resolved { mac, expires } if now < expires => Some(mac),
            _ => None,
        }
    }

    fn want(&mut self, now: Instant, i: usize) {
        let due = retry_due(self.table[i].asked, now);
        if !due || self.pending_len == PENDING_TARGETS {
            return;
        }
        let ip = self.table[i].ip;
        let queued = (0..self.pending_len)
            .any(|k| self.pending[(self.pending_head + k) % PENDING_TARGETS] == ip);
        if !queued {
            self.pending[(self.pending_head + self.pending_len) % PENDING_TARGETS] = ip;
            self.pending_len += 1;
        }
    }

    /// The per-packet fast path: the last next hop's MAC while it needs no refresh.
    #[inline(always)]
    pub(crate) fn resolve_fast(&self, now: Instant, next_hop: A) -> Option<Address> {
        match self.fast {
            Some((ip, mac, fresh_until)) if ip == next_hop && now < fresh_until => Some(mac),
            _ => None,
        }
    }

    /// Resolves `next_hop`'s MAC for a packet being sent now; on a miss (or near expiry) the
    /// target is queued for a request ([`Self::poll_due`]).
    pub(crate) fn resolve(&mut self, now: Instant, next_hop: A) -> Option<Address> {
        if let Some(mac) = self.resolve_fast(now, next_hop) {
            return Some(mac);
        }
        let i = match self.last {
            Some(i) if self.table[i].ip == next_hop => Some(i),
            _ => self.find(next_hop),
        };
        if let Some(i) = i {
            if let State::Resolved { mac, expires } = self.table[i].state {
                if now < expires {
                    self.last = Some(i);
                    match expires.checked_sub(REFRESH_BEFORE) {
                        Some(fresh_until) if now < fresh_until => {
                            self.fast = Some((next_hop, mac, fresh_until));
                        }
                        _ => {
                            self.fast = None;
                            self.want(now, i);
                        }
                    }
                    return Some(mac);
                }
            }
        }
        self.fast = None;
        let i = i.unwrap_or_else(|| self.slot_for(next_hop));
        if self.table[i].ip != next_hop || matches!(self.table[i].state, State::Free) {
            self.table[i] = Entry {
                ip: next_hop,
                state: State::Pending { wanted: now },
                asked: None,
            };
        } else {
            self.table[i].state = State::Pending { wanted: now };
        }
        self.want(now, i);
        None
    }

    /// The next target due for a request (who-has / neighbour solicitation), marked asked
    /// now; `None` when none is due. Each target is asked at most once per [`ARP_RETRY`];
    /// targets nobody wanted for [`PENDING_IDLE`] are forgotten.
    pub(crate) fn poll_due(&mut self, now: Instant) -> Option<A> {
        while self.pending_len > 0 {
            let ip = self.pending[self.pending_head];
            self.pending_head = (self.pending_head + 1) % PENDING_TARGETS;
            self.pending_len -= 1;
            let Some(i) = self.find(ip) else { continue };
            let e = &mut self.table[i];
            let live = match e.state {
                State::Pending { wanted } => now.saturating_duration_since(wanted) < PENDING_IDLE,
                State::Resolved { expires, .. } => {
                    expires.saturating_duration_since(now) <= REFRESH_BEFORE
                }
                State::Free => false,
            };
            if !live || !retry_due(e.asked, now) {
                continue;
            }
            e.asked = Some(now);
            return Some(ip);
        }
        None
    }

    /// Re-queues requests for targets still wanted whose retry period has passed, and
    /// forgets targets nobody wanted for [`PENDING_IDLE`]. Scans the cache once.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.table.len() {
            if let State::Pending { wanted } = self.table[i].state {
                if now.saturating_duration_since(wanted) >= PENDING_IDLE {
                    self.fast = None;
                    self.table[i].state = State::Free;
                    if self.last == Some(i) {
                        self.last = None;
                    }
                } else {
                    self.want(now, i);
                }
            }
        }
    }
}

/// Neighbours learned from ARP/NDP, kept (when on) for a worker to pass to the other workers
/// on the same port: a reply reaches only one of them. Bounded: at most [`LEARNED_LOG`]
/// between two takes; more are not logged (the other workers then ask themselves).
#[derive(Debug)]
pub(crate) struct LearnedLog<A> {
    on: bool,
    log: [(A, Address); LEARNED_LOG],
    len: usize,
}

impl<A: NeighbourAddr> LearnedLog<A> {
    pub(crate) fn new() -> Self {
        Self {
            on: false,
            log: [(A::UNSPECIFIED, Address([0; 6])); LEARNED_LOG],
            len: 0,
        }
    }

    /// Turns logging on or off (and forgets what was logged).
    pub(crate) fn set_on(&mut self, on: bool) {
        self.on = on;
        self.len = 0;
    }

    /// Logs a learned neighbour, if on and there is room.
    pub(crate) fn push(&mut self, ip: A, mac: Address) {
        if self.on && self.len < LEARNED_LOG {
            self.log[self.len] = (ip, mac);
            self.len += 1;
        }
    }

    /// The oldest logged neighbour not taken yet.
    pub(crate) fn take(&mut self) -> Option<(A, Address)> {
        if self.len == 0 {
            return None;
        }
        let e = self.log[0];
        self.log.copy_within(1..self.len, 0);
        self.len -= 1;
        Some(e)
    }
}
