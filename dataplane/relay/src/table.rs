//! The leg table: one preallocated slot per even RTP port of the worker, found by index.

use std::ops::RangeInclusive;

use dp_api::{CommandError, LegId};

use crate::leg::{Flow, Leg};

/// Index of the received direction in a slot's [`Flow`] pair.
pub const RX: usize = 0;
/// Index of the sent direction in a slot's [`Flow`] pair.
pub const TX: usize = 1;

/// Legs of one worker, indexed by `(port - first) / 2`. Never searched.
///
/// Owned by the worker's [`crate::Relay`]; the slot vectors are allocated once in
/// [`LegTable::new`] and never grow. Each slot is one cache line (the leg's hot line, see
/// [`Leg`]); its packet and byte counters sit apart in a dense array of [`Flow`] pairs
/// (received, sent), 32 bytes a slot.
#[derive(Debug)]
pub struct LegTable {
    first: u16,
    /// Port pairs per address.
    pairs: usize,
    /// Media addresses; the slots of address `a` are `a * pairs .. (a + 1) * pairs`.
    addresses: usize,
    slots: Vec<Option<Leg>>,
    /// Per slot: RTP received ([`RX`]) and sent ([`TX`]).
    flows: Vec<[Flow; 2]>,
    len: usize,
}

impl LegTable {
    /// Preallocates one slot per even port in `ports` (an odd start rounds up, an odd end
    /// rounds down).
    #[must_use]
    pub fn new(ports: &RangeInclusive<u16>) -> Self {
        Self::with_addresses(ports, 1)
    }

    /// Preallocates one slot per even port in `ports` on each of `addresses` media
    /// addresses (at least one).
    #[must_use]
    pub fn with_addresses(ports: &RangeInclusive<u16>, addresses: usize) -> Self {
        let addresses = addresses.max(1);
        let first = ports.start().saturating_add(ports.start() & 1);
        let last = *ports.end() & !1;
        let n = if last >= first {
            usize::from((last - first) / 2) + 1
        } else {
            0
        };
        // Both arrays asked for in huge pages before their first touch: a large table read
        // in random order misses the TLB less (see `memhint::advise_huge_pages`).
        let mut slots = Vec::with_capacity(n * addresses);
        memhint::advise_huge_pages(slots.spare_capacity_mut());
        slots.resize_with(n * addresses, || None);
        let mut flows = Vec::with_capacity(n * addresses);
        memhint::advise_huge_pages(flows.spare_capacity_mut());
        flows.resize(n * addresses, [Flow::default(); 2]);
        Self {
            first,
            pairs: n,
            addresses,
            slots,
            flows,
            len: 0,
        }
    }

    /// How many media addresses the table covers.
    #[must_use]
    pub fn addresses(&self) -> usize {
        self.addresses
    }

    /// The first even port.
    #[must_use]
    pub fn first_port(&self) -> u16 {
        self.first
    }

    /// The number of slots (port pairs, on every address).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The number of live legs.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no leg is live.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot index of an RTP or RTCP port on the first address, if the worker owns it.
    #[inline]
    #[must_use]
    pub fn index_of_port(&self, port: u16) -> Option<usize> {
        self.index_of_local(0, port)
    }

    /// The slot index of an RTP or RTCP port on media address `addr`, if the worker owns it.
    #[inline]
    #[must_use]
    pub fn index_of_local(&self, addr: u8, port: u16) -> Option<usize> {
        // One compare per part: ports below `first` wrap to large indices.
        let pair = (u32::from(port).wrapping_sub(u32::from(self.first)) >> 1) as usize;
        let addr = usize::from(addr);
        (pair < self.pairs && addr < self.addresses).then_some(addr * self.pairs + pair)
    }

    /// The slot index of a leg's address and port, if in range.
    #[inline]
    #[must_use]
    pub fn index_of(&self, id: LegId) -> Option<usize> {
        if id.port() & 1 != 0 {
            return None;
        }
        self.index_of_local(id.addr(), id.port())
    }

    /// Checks that a leg could be inserted.
    ///
    /// # Errors
    /// [`CommandError::PortOutOfRange`] for an odd or foreign port,
    /// [`CommandError::PortInUse`] when the slot holds a leg.
    pub fn check_insert(&self, id: LegId) -> Result<usize, CommandError> {
        let idx = self.index_of(id).ok_or(CommandError::PortOutOfRange)?;
        if self.slots[idx].is_some() {
            return Err(CommandError::PortInUse);
        }
        Ok(idx)
    }

    /// Inserts a leg.
    ///
    /// # Errors
    /// As [`Self::check_insert`].
    pub fn insert(&mut self, leg: Leg) -> Result<usize, CommandError> {
        let idx = self.check_insert(leg.id)?;
        self.slots[idx] = Some(leg);
        self.flows[idx] = [Flow::default(); 2];
        self.len += 1;
        Ok(idx)
    }

    /// Removes the leg with exactly this id (generation included).
    pub fn remove(&mut self, id: LegId) -> Option<Leg> {
        let idx = self.find(id)?;
        self.len -= 1;
        self.slots[idx].take()
    }

    /// The slot index of a live leg with exactly this id.
    #[inline]
    #[must_use]
    pub fn find(&self, id: LegId) -> Option<usize> {
        let idx = self.index_of(id)?;
        match &self.slots[idx] {
            Some(l) if l.id == id => Some(idx),
            _ => None,
        }
    }

    /// The leg in a slot.
    #[inline]
    #[must_use]
    pub fn get(&self, idx: usize) -> Option<&Leg> {
        self.slots.get(idx).and_then(Option::as_ref)
    }

    /// The leg in a slot, mutable.
    #[inline]
    pub fn get_mut(&mut self, idx: usize) -> Option<&mut Leg> {
        self.slots.get_mut(idx).and_then(Option::as_mut)
    }

    /// The leg in a slot and its counters, mutable.
    #[inline]
    pub fn with_flows_mut(&mut self, idx: usize) -> Option<(&mut Leg, &mut [Flow; 2])> {
        let l = self.slots.get_mut(idx).and_then(Option::as_mut)?;
        Some((l, self.flows.get_mut(idx)?))
    }

    /// The leg in slot `idx` and its bridged peer's (a distinct slot), with both slots'
    /// counters, when both are live: the fast lane's one look-up of everything a relayed
    /// packet touches.
    #[inline(always)]
    pub fn with_peer_mut(
        &mut self,
        idx: usize,
    ) -> Option<(&mut Leg, &mut [Flow; 2], &mut Leg, &mut [Flow; 2])> {
        let pidx = self.slots.get(idx)?.as_ref()?.peer? as usize;
        let [Some(l), Some(p)] = self.slots.get_disjoint_mut([idx, pidx]).ok()? else {
            return None;
        };
        let [fl, fp] = self.flows.get_disjoint_mut([idx, pidx]).ok()?;
        Some((l, fl, p, fp))
    }

    /// A slot's counters (received, sent; zero for an empty slot's last leg's until the
    /// next insert).
    #[inline]
    #[must_use]
    pub fn flows(&self, idx: usize) -> Option<&[Flow; 2]> {
        self.flows.get(idx)
    }

    /// A slot's counters, mutable.
    #[inline]
    pub fn flows_mut(&mut self, idx: usize) -> Option<&mut [Flow; 2]> {
        self.flows.get_mut(idx)
    }

    /// The counters of the leg in a slot ([`Leg::stats`] with its flows).
    #[must_use]
    pub fn stats(&self, idx: usize) -> Option<dp_api::LegStats> {
        Some(self.get(idx)?.stats(self.flows.get(idx)?))
    }

    /// The memory the per-packet path reads from: every slot's hot line and counters.
    #[must_use]
    pub fn fast_path_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Leg>>()
            + self.flows.capacity() * std::mem::size_of::<[Flow; 2]>()
    }

    /// Asks the cache for what the per-packet path will read in slot `idx`: its hot line
    /// and its counters ([`memhint::prefetch`]: no load, no state change), so that a
    /// burst's cache misses overlap instead of coming one packet after another (the first
    /// stage of a burst, as VPP and DPDK's l3fwd split theirs).
    #[inline(always)]
    pub fn prefetch(&self, idx: usize) {
        if let (Some(s), Some(f)) = (self.slots.get(idx), self.flows.get(idx)) {
            memhint::prefetch(s);
            memhint::prefetch(f);
        }
    }

    /// [`Self::prefetch`] for the bridged peer of the leg in slot `idx` (reads the leg's
    /// line: ask for it first).
    #[inline(always)]
    pub fn prefetch_peer(&self, idx: usize) {
        if let Some(Some(l)) = self.slots.get(idx) {
            if let Some(p) = l.peer {
                self.prefetch(p as usize);
            }
        }
    }

    /// Two distinct slots at once, mutable.
    ///
    /// # Panics
    /// If `a == b`.
    pub fn pair_mut(&mut self, a: usize, b: usize) -> (Option<&mut Leg>, Option<&mut Leg>) {
        assert_ne!(a, b);
        if a < b {
            let (lo, hi) = self.slots.split_at_mut(b);
            (lo[a].as_mut(), hi[0].as_mut())
        } else {
            let (lo, hi) = self.slots.split_at_mut(a);
            (hi[0].as_mut(), lo[b].as_mut())
        }
    }

    /// The RTP port of a slot.
    #[inline]
    #[must_use]
    pub fn port_of(&self, idx: usize) -> u16 {
        self.first + ((idx % self.pairs.max(1)) as u16) * 2
    }

    /// The media address index of a slot.
    #[inline]
    #[must_use]
    pub fn addr_of(&self, idx: usize) -> u8 {
        (idx / self.pairs.max(1)) as u8
    }

    /// Iterates live legs.
    pub fn iter(&self) -> impl Iterator<Item = &Leg> {
        self.slots.iter().filter_map(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leg::Leg;
    use dp_api::{Codec, Latch, LegSpec, SrcMismatch};

    fn spec(port: u16, generation: u16) -> LegSpec {
        LegSpec {
            id: LegId::new(port, generation),
            remote: None,
            latch: Latch::Off,
            src_mismatch: SrcMismatch::Drop,
            codec: Codec::Pcmu,
            media_timeout: None,
        }
    }

    #[test]
    fn several_addresses() {
        let t = LegTable::with_addresses(&(20000..=20011), 3);
        assert_eq!(t.capacity(), 18);
        assert_eq!(t.addresses(), 3);
        assert_eq!(t.index_of_local(0, 20000), Some(0));
        assert_eq!(t.index_of_local(1, 20000), Some(6));
        assert_eq!(t.index_of_local(2, 20011), Some(17));
        assert_eq!(t.index_of_local(3, 20000), None);
        assert_eq!(t.index_of_local(1, 20012), None);
        assert_eq!(t.index_of_local(2, 19999), None);
        assert_eq!((t.addr_of(17), t.port_of(17)), (2, 20010));
        assert_eq!((t.addr_of(6), t.port_of(6)), (1, 20000));
        assert_eq!(t.index_of(LegId::at(1, 20002, 9)), Some(7));
        assert_eq!(t.index_of(LegId::at(1, 20003, 9)), None);
        assert_eq!(t.index_of(LegId::at(5, 20002, 9)), None);
    }

    #[test]
    fn index_by_port() {
        let t = LegTable::new(&(20000..=20011));
        assert_eq!(t.capacity(), 6);
        assert_eq!(t.index_of_port(20000), Some(0));
        assert_eq!(t.index_of_port(20001), Some(0));
        assert_eq!(t.index_of_port(20010), Some(5));
        assert_eq!(t.index_of_port(20011), Some(5));
        assert_eq!(t.index_of_port(20012), None);
        assert_eq!(t.index_of_port(19999), None);
        assert_eq!(t.port_of(5), 20010);
        assert_eq!(t.index_of_port(0), None);
        assert_eq!(t.index_of_port(u16::MAX), None);
        // A range reaching both ends of the port space: nothing wraps into it.
        let t = LegTable::new(&(2..=u16::MAX));
        assert_eq!(t.capacity(), 32767);
        assert_eq!(t.index_of_port(0), None);
        assert_eq!(t.index_of_port(1), None);
        assert_eq!(t.index_of_port(2), Some(0));
        assert_eq!(t.index_of_port(u16::MAX), Some(32766));
        let t = LegTable::new(&(0..=u16::MAX));
        assert_eq!(t.index_of_port(0), Some(0));
        assert_eq!(t.index_of_port(u16::MAX), Some(32767));
        let t = LegTable::new(&(7..=7)); // no even port
        assert_eq!(t.capacity(), 0);
        assert_eq!(t.index_of_port(6), None);
    }

    #[test]
    fn insert_find_remove_by_generation() {
        let mut t = LegTable::new(&(20000..=20003));
        let a = Leg::new(&spec(20002, 1), 1, std::time::Instant::now());
        assert_eq!(t.insert(a), Ok(1));
        assert_eq!(t.len(), 1);
        assert_eq!(
            t.insert(Leg::new(&spec(20002, 2), 1, std::time::Instant::now())),
            Err(CommandError::PortInUse)
        );
        assert_eq!(
            t.check_insert(LegId::new(20001, 1)),
            Err(CommandError::PortOutOfRange)
        );
        assert_eq!(
            t.check_insert(LegId::new(20004, 1)),
            Err(CommandError::PortOutOfRange)
        );
        assert_eq!(t.find(LegId::new(20002, 2)), None); // wrong generation
        assert_eq!(t.find(LegId::new(20002, 1)), Some(1));
        assert!(t.remove(LegId::new(20002, 2)).is_none());
        assert!(t.remove(LegId::new(20002, 1)).is_some());
        assert!(t.is_empty());
    }
}
