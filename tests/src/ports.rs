//! Loopback port allocation.
//!
//! A [`PortBlock`] is a run of consecutive ports on 127.0.0.1 that were free (TCP and UDP) when
//! it was handed out and that no other block of this process overlaps. Blocks are taken from
//! 20000..32000, below Linux's ephemeral range (32768..), so the ports the OS hands to
//! `bind(0)` callers never land in them. Nothing holds the ports open: a child process binds them
//! after the block was handed out; that small race with unrelated processes is accepted.

use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// First port blocks are taken from.
const LOW: u16 = 20_000;
/// One past the last port blocks are taken from.
const HIGH: u16 = 32_000;

/// Size of the media port range given to one callbridge instance (RTP even, RTCP odd).
pub const MEDIA_BLOCK: u16 = 40;

/// Ports handed out by this process and not yet released.
static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
/// Mixed into the random start so concurrent callers start at different places.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// A run of `len` consecutive loopback ports starting at an even port; released when dropped.
#[derive(Debug)]
pub struct PortBlock {
    first: u16,
    len: u16,
}

impl PortBlock {
    /// Reserves `len` consecutive free ports (the first one even).
    ///
    /// # Panics
    /// If no such block can be found (the machine is out of ports).
    #[must_use]
    pub fn reserve(len: u16) -> Self {
        assert!(len > 0 && len < 1000, "unreasonable port block size {len}");
        let span = HIGH - LOW - len;
        let mut start = (LOW + random_u16() % span) & !1;
        for _ in 0..2000 {
            if let Some(block) = Self::try_take(start, len) {
                return block;
            }
            start += 2 * len.div_ceil(2) + 2;
            if start + len >= HIGH {
                start = LOW;
            }
        }
        panic!("no block of {len} free loopback ports in {LOW}..{HIGH}");
    }

    fn try_take(first: u16, len: u16) -> Option<Self> {
        let mut taken = TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let taken = taken.get_or_insert_with(HashSet::new);
        let ports = first..first + len;
        if ports.clone().any(|p| taken.contains(&p)) {
            return None;
        }
        if !ports.clone().all(is_free) {
            return None;
        }
        taken.extend(ports);
        Some(Self { first, len })
    }

    /// The first port of the block.
    #[must_use]
    pub const fn first(&self) -> u16 {
        self.first
    }

    /// The last port of the block (inclusive).
    #[must_use]
    pub const fn last(&self) -> u16 {
        self.first + self.len - 1
    }

    /// The `i`-th port of the block.
    ///
    /// # Panics
    /// If `i` is outside the block.
    #[must_use]
    pub fn port(&self, i: u16) -> u16 {
        assert!(
            i < self.len,
            "port index {i} outside a block of {}",
            self.len
        );
        self.first + i
    }

    /// `127.0.0.1:<i-th port>`.
    #[must_use]
    pub fn addr(&self, i: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port(i)))
    }
}

impl Drop for PortBlock {
    fn drop(&mut self) {
        let mut taken = TAKEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(taken) = taken.as_mut() {
            for p in self.first..self.first + self.len {
                taken.remove(&p);
            }
        }
    }
}

/// True when both TCP and UDP can bind 127.0.0.1:`port` right now.
#[must_use]
pub fn is_free(port: u16) -> bool {
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    UdpSocket::bind(addr).is_ok() && TcpListener::bind(addr).is_ok()
}

/// True when some process holds UDP 127.0.0.1:`port` (used to see that a child has bound it).
#[must_use]
pub fn udp_in_use(port: u16) -> bool {
    UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_err()
}

/// True when something listens on TCP `127.0.0.1:port` (a connection is accepted).
#[must_use]
pub fn tcp_listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        std::time::Duration::from_millis(200),
    )
    .is_ok()
}

fn random_u16() -> u16 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(CALLS.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    (h.finish() % u64::from(u16::MAX)) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_do_not_overlap_and_are_free() {
        let blocks: Vec<PortBlock> = (0..20).map(|_| PortBlock::reserve(MEDIA_BLOCK)).collect();
        for (i, a) in blocks.iter().enumerate() {
            assert_eq!(a.first() % 2, 0, "blocks start on an even port");
            assert_eq!(a.last() - a.first() + 1, MEDIA_BLOCK);
            for b in &blocks[i + 1..] {
                assert!(
                    a.last() < b.first() || b.last() < a.first(),
                    "{a:?} overlaps {b:?}"
                );
            }
        }
        // Released blocks leave the registry.
        let (first, last) = (blocks[0].first(), blocks[0].last());
        drop(blocks);
        let taken = TAKEN.lock().unwrap();
        let taken = taken.as_ref().unwrap();
        // Other tests of this process may hold blocks, but none overlapping the freed one was
        // handed out while we held it; at least the freed block must not be fully present.
        assert!((first..=last).any(|p| !taken.contains(&p)));
    }

    #[test]
    fn udp_in_use_sees_a_bound_socket() {
        let block = PortBlock::reserve(2);
        assert!(!udp_in_use(block.port(0)));
        let _sock = UdpSocket::bind(block.addr(0)).unwrap();
        assert!(udp_in_use(block.port(0)));
    }
}
