//! [`Mbuf`], an owned packet buffer, and [`Burst`], the fixed array of them that RX and TX
//! queues fill and drain without allocating.
//!
//! Invariants: an [`Mbuf`] exclusively owns one single-reference mbuf and frees it on drop.
//! [`Mbuf::data`] / [`Mbuf::data_mut`] cover exactly the first segment's data
//! (`data_off .. data_off + data_len`); the safe API never creates chained or indirect mbufs,
//! so for what we allocate and what `net_*` PMDs receive at RTP sizes that is the whole packet.
//! A [`Burst`]'s first `len` slots are `Some`, the rest `None`.

use std::fmt;
use std::mem;
use std::ptr::NonNull;

use dpdk_sys as sys;

/// One owned packet buffer.
///
/// `#[repr(transparent)]` over `NonNull<rte_mbuf>`, so `Option<Mbuf>` has the layout of a
/// `*mut rte_mbuf` with `None` as NULL: arrays of `Option<Mbuf>` are passed to
/// `rte_eth_rx_burst`/`tx_burst` directly.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an Mbuf is the only handle to its rte_mbuf (refcnt 1, not shared), so moving it to
// another thread moves exclusive ownership; freeing it from any thread is allowed (the pool's
// ring is multi-producer; from a non-EAL thread the per-lcore cache is bypassed).
unsafe impl Send for Mbuf {}
// SAFETY: &Mbuf only permits reads of the mbuf's fields and data; nothing mutates through a
// shared reference.
unsafe impl Sync for Mbuf {}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf exclusively; after this nothing refers to it.
        unsafe { sys::_rte_pktmbuf_free(self.raw.as_ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("headroom", &self.headroom())
            .field("tailroom", &self.tailroom())
            .finish()
    }
}

impl Mbuf {
    /// Takes ownership of a raw mbuf; it will be freed when the `Mbuf` drops.
    ///
    /// # Safety
    /// `raw` points to a valid packet mbuf from a live pktmbuf pool, with reference count 1,
    /// that nothing else uses or frees; its first segment's `buf_addr + data_off .. + data_len`
    /// is inside its buffer. The pool must stay alive until the mbuf is freed (pools created
    /// by [`crate::Mempool`] guarantee this themselves).
    #[inline]
    #[must_use]
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Self {
        Self { raw }
    }

    /// Gives up ownership without freeing (e.g. to hand the mbuf to C code). Undo with
    /// [`Mbuf::from_raw`].
    #[inline]
    #[must_use]
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.raw;
        mem::forget(self);
        raw
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    #[must_use]
    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.raw.as_ptr()
    }

    /// The mbuf header, read-only.
    #[inline(always)]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively (struct invariant); nothing else writes its
        // header while we hold it, and the reference borrows self.
        unsafe { self.raw.as_ref() }
    }

    /// The mbuf header, writable.
    #[inline(always)]
    fn hdr_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as in `hdr`; the exclusive borrow of self makes this the only access.
        unsafe { self.raw.as_mut() }
    }

    /// The address of the first data byte (`rte_pktmbuf_mtod`): `buf_addr + data_off`.
    #[inline(always)]
    fn data_ptr(&self) -> *mut u8 {
        let h = self.hdr();
        // wrapping_add: no UB even for a corrupted header (the slice constructors below rely
        // on the struct invariant, not on this arithmetic).
        h.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(h.data_off))
    }

    /// Bytes of data in the first segment (`data_len`): the length of [`Self::data`].
    ///
    /// Read from the `rte_mbuf` header directly (the bindgen layout, checked by its layout
    /// tests), like every accessor on the per-packet path: a call into the C shim per field
    /// cost more than the field access itself.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }

    /// Whether the packet holds no data.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes in the whole packet, all segments (`pkt_len`).
    #[inline]
    #[must_use]
    pub fn pkt_len(&self) -> usize {
        self.hdr().pkt_len as usize
    }

    /// Number of segments (1 unless a PMD chained buffers for a large frame).
    #[inline]
    #[must_use]
    pub fn segments(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// Free bytes before the data (room for [`Self::prepend`]).
    #[inline]
    #[must_use]
    pub fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    /// Free bytes after the data (room for [`Self::append`]).
    #[inline]
    #[must_use]
    pub fn tailroom(&self) -> usize {
        let h = self.hdr();
        if h.nb_segs != 1 {
            // The last segment's room: the shim walks the chain.
            // SAFETY: we own a valid mbuf.
            return usize::from(unsafe { sys::_rte_pktmbuf_tailroom(self.raw.as_ptr()) });
        }
        usize::from(h.buf_len).saturating_sub(usize::from(h.data_off) + usize::from(h.data_len))
    }

    /// The first segment's data.
    #[inline]
    #[must_use]
    pub fn data(&self) -> &[u8] {
        // SAFETY: buf_addr + data_off is inside the mbuf's buffer and data_len bytes from
        // there are initialised packet data (struct invariant); the slice borrows self, so the
        // mbuf is neither freed nor resized while it lives.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.len()) }
    }

    /// The first segment's data, writable: the single bridge into the safe `wire` views.
    #[inline]
    #[must_use]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; the exclusive borrow of self makes the slice the only access.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.len()) }
    }

    /// Grows the packet by `n` bytes at the tail (`rte_pktmbuf_append`) and returns them
    /// (their content is whatever the buffer held), or `None` if the tailroom is too small.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        if n > self.tailroom() {
            return None;
        }
        if self.segments() != 1 {
            // SAFETY: we own the mbuf; append checks tailroom again and returns NULL on
            // failure.
            let p = unsafe { sys::_rte_pktmbuf_append(self.raw.as_ptr(), n16) };
            let p = NonNull::new(p.cast::<u8>())?;
            // SAFETY: DPDK returned n bytes inside the last segment's buffer, now part of
            // the data; borrowed from &mut self.
            return Some(unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), n) });
        }
        let old = self.len();
        let h = self.hdr_mut();
        // n <= tailroom = buf_len - data_off - data_len, so data_len + n fits u16 and stays
        // inside the buffer (what rte_pktmbuf_append does for one segment).
        h.data_len += n16;
        h.pkt_len += u32::from(n16);
        // SAFETY: the n bytes after the old data are inside the buffer (tailroom checked) and
        // now part of the data; borrowed from &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(self.data_ptr().add(old), n) })
    }

    /// Grows the packet by `n` bytes at the head (`rte_pktmbuf_prepend`) and returns them, or
    /// `None` if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        let h = self.hdr_mut();
        if n16 > h.data_off {
            return None;
        }
        // As rte_pktmbuf_prepend: data_len + n <= buf_len since the data ended inside the
        // buffer and n <= data_off.
        h.data_off -= n16;
        h.data_len += n16;
        h.pkt_len += u32::from(n16);
        // SAFETY: the n bytes now at the head of the data are inside the buffer (they were
        // headroom); borrowed from &mut self.
        Some(unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), n) })
    }

    /// Removes `n` bytes from the head (`rte_pktmbuf_adj`), e.g. to strip headers, and returns
    /// the remaining data; `None` (and no change) if the packet is shorter than `n`.
    #[inline]
    pub fn adj(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        let h = self.hdr_mut();
        if n16 > h.data_len {
            return None;
        }
        // As rte_pktmbuf_adj: the first segment shrinks at its head.
        h.data_off += n16;
        h.data_len -= n16;
        h.pkt_len -= u32::from(n16);
        Some(self.data_mut())
    }

    /// Removes `n` bytes from the tail (`rte_pktmbuf_trim`) and returns the remaining data;
    /// `None` (and no change) if the packet is shorter than `n`.
    #[inline]
    pub fn trim(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        if n > self.len() {
            return None;
        }
        if self.segments() != 1 {
            // SAFETY: we own the mbuf; trim works on the last segment and returns -1 if it is
            // shorter than n.
            let rc = unsafe { sys::_rte_pktmbuf_trim(self.raw.as_ptr(), n16) };
            return (rc == 0).then(|| self.data_mut());
        }
        let h = self.hdr_mut();
        h.data_len -= n16;
        h.pkt_len -= u32::from(n16);
        Some(self.data_mut())
    }

    /// Empties the packet and restores the default headroom, offload flags and header lengths
    /// (`rte_pktmbuf_reset`), for reuse as a fresh buffer.
    #[inline]
    pub fn reset(&mut self) {
        assert_eq!(self.segments(), 1, "reset of a chained mbuf");
        // SAFETY: we own a valid single-segment mbuf (reset would leak chained ones: asserted).
        unsafe { sys::_rte_pktmbuf_reset(self.raw.as_ptr()) };
    }

    /// Requests checksum offload on transmit: `ipv4_cksum` has the NIC fill the IPv4 header
    /// checksum, `udp_cksum` the UDP checksum (the UDP checksum field must then hold the
    /// pseudo-header checksum, as DPDK's `rte_ipv4_phdr_cksum` computes). `l2_len` is the
    /// Ethernet header length (14, or 18 with a VLAN tag), `l3_len` the IPv4 header length.
    /// Only request what [`crate::Port::tx_offloads`] says is enabled; with both flags false
    /// the offload flags are cleared.
    ///
    /// # Panics
    /// If `l2_len >= 128` or `l3_len >= 512` (the widths of the mbuf's bit fields).
    #[inline]
    pub fn set_tx_offload(&mut self, ipv4_cksum: bool, udp_cksum: bool, l2_len: u16, l3_len: u16) {
        assert!(l2_len < 128, "l2_len {l2_len} does not fit 7 bits");
        assert!(l3_len < 512, "l3_len {l3_len} does not fit 9 bits");
        // What rte_mbuf.h's bit fields and `rte_mbuf_tx_offload` do, written here so the
        // per-packet path makes no call into the shim: TX_IPV4 with either checksum, the
        // requested checksum flags, l2_len in bits 0..7 and l3_len in bits 7..16 of the
        // `tx_offload` word (the other lengths kept).
        let ours =
            sys::RTE_MBUF_F_TX_IPV4 | sys::RTE_MBUF_F_TX_IP_CKSUM | sys::RTE_MBUF_F_TX_L4_MASK;
        let h = self.hdr_mut();
        let keep = h.ol_flags & !ours;
        let mut flags = 0;
        if ipv4_cksum || udp_cksum {
            flags |= sys::RTE_MBUF_F_TX_IPV4;
        }
        if ipv4_cksum {
            flags |= sys::RTE_MBUF_F_TX_IP_CKSUM;
        }
        if udp_cksum {
            flags |= sys::RTE_MBUF_F_TX_UDP_CKSUM;
        }
        h.ol_flags = keep | flags;
        // SAFETY: `tx_offload` is a plain u64 overlaying the length bit fields (every bit
        // pattern is valid); we own the mbuf exclusively.
        let word = unsafe { h.__bindgen_anon_3.tx_offload };
        h.__bindgen_anon_3.tx_offload =
            (word & !0xffff) | u64::from(l2_len) | (u64::from(l3_len) << 7);
    }

    /// Sets the receive checksum verdicts in the offload flags, as a device with receive
    /// checksum offload does (`RTE_MBUF_F_RX_IP_CKSUM_*`, `RTE_MBUF_F_RX_L4_CKSUM_*`): for
    /// device models and tests (a virtual device such as `net_ring` passes the flags of the
    /// mbufs it carries through unchanged).
    #[inline]
    pub fn set_rx_cksum(&mut self, ip: RxCksum, l4: RxCksum) {
        let bits = |v: RxCksum, good: u32, bad: u32, none: u32| -> u64 {
            u64::from(match v {
                RxCksum::Unknown => 0,
                RxCksum::Good => good,
                RxCksum::Bad => bad,
                RxCksum::None => none,
            })
        };
        let h = self.hdr_mut();
        h.ol_flags = (h.ol_flags
            & !(u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK)
                | u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK)))
            | bits(
                ip,
                sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD,
                sys::RTE_MBUF_F_RX_IP_CKSUM_BAD,
                sys::RTE_MBUF_F_RX_IP_CKSUM_NONE,
            )
            | bits(
                l4,
                sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                sys::RTE_MBUF_F_RX_L4_CKSUM_BAD,
                sys::RTE_MBUF_F_RX_L4_CKSUM_NONE,
            );
    }

    /// Narrows the data to `len` bytes starting `start` bytes into it (what `adj(start)`
    /// then `trim(rest)` do, in one step), then extends it by up to `room` bytes at the tail
    /// (as `append(room.min(tailroom))`; the bytes past `len` are whatever the buffer held):
    /// `false` (and no change) if `start..start + len` is not inside the data.
    #[inline]
    pub fn narrow(&mut self, start: usize, len: usize, room: usize) -> bool {
        let cur = self.len();
        if start > cur || len > cur - start {
            return false;
        }
        if self.segments() != 1 {
            let ok = self.adj(start).is_some()
                && (cur - start == len || self.trim(cur - start - len).is_some());
            if ok {
                let _ = self.append(room.min(self.tailroom()));
            }
            return ok;
        }
        let h = self.hdr_mut();
        // start + len <= data_len: the new start is inside the buffer; the room is capped by
        // what is left of the buffer after the narrowed data.
        let off = usize::from(h.data_off) + start;
        let room = room.min(usize::from(h.buf_len).saturating_sub(off + len));
        let n = (len + room) as u16;
        h.data_off = off as u16;
        h.data_len = n;
        h.pkt_len = u32::from(n);
        true
    }

    /// Sets the data to `head` bytes of headroom taken in front of the current data (as
    /// `prepend(head)`) followed by its first `len` bytes (the rest trimmed, as `trim`), and
    /// returns it; `None` (and no change) if the headroom is short or the data shorter than
    /// `len`.
    #[inline]
    pub fn prepend_keep(&mut self, head: usize, len: usize) -> Option<&mut [u8]> {
        let cur = self.len();
        if len > cur {
            return None;
        }
        if self.segments() != 1 {
            if cur > len {
                self.trim(cur - len)?;
            }
            self.prepend(head)?;
            return Some(self.data_mut());
        }
        let h = self.hdr_mut();
        let head16 = u16::try_from(head).ok()?;
        if head16 > h.data_off {
            return None;
        }
        // head <= data_off and len <= data_len: the new data lies inside the buffer, and
        // head + len <= data_off + data_len <= buf_len fits u16.
        h.data_off -= head16;
        h.data_len = head16 + len as u16;
        h.pkt_len = u32::from(h.data_len);
        Some(self.data_mut())
    }

    /// The offload flags (`RTE_MBUF_F_*`), e.g. RX checksum status.
    #[inline]
    #[must_use]
    pub fn ol_flags(&self) -> u64 {
        self.hdr().ol_flags
    }

    /// What the device reported about the L4 (TCP/UDP) checksum on receive
    /// (`RTE_MBUF_F_RX_L4_CKSUM_*`). Only meaningful on a port with RX checksum offload
    /// enabled ([`crate::Port::rx_offloads`]); otherwise `Unknown`.
    #[inline]
    #[must_use]
    pub fn rx_l4_cksum(&self) -> RxCksum {
        RxCksum::from_bits(
            self.ol_flags() & u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_MASK),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_GOOD),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_BAD),
            u64::from(sys::RTE_MBUF_F_RX_L4_CKSUM_NONE),
        )
    }

    /// What the device reported about the IPv4 header checksum on receive
    /// (`RTE_MBUF_F_RX_IP_CKSUM_*`); `Unknown` without RX checksum offload.
    #[inline]
    #[must_use]
    pub fn rx_ip_cksum(&self) -> RxCksum {
        RxCksum::from_bits(
            self.ol_flags() & u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_MASK),
            u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_GOOD),
            u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_BAD),
            u64::from(sys::RTE_MBUF_F_RX_IP_CKSUM_NONE),
        )
    }

    /// `(l2_len, l3_len)` as set for offloads.
    #[inline]
    #[must_use]
    pub fn header_lens(&self) -> (u16, u16) {
        // SAFETY: we own a valid mbuf.
        unsafe {
            (
                sys::_rte_mbuf_l2_len(self.raw.as_ptr()),
                sys::_rte_mbuf_l3_len(self.raw.as_ptr()),
            )
        }
    }

    /// Prefetches the first cache line of the data (`rte_prefetch0`); call it for packet
    /// `i + k` while processing packet `i`.
    #[inline]
    pub fn prefetch(&self) {
        prefetch0(self.data_ptr());
    }

    /// Prefetches the mbuf header's first cache line (what `len`, `adj`, … read), e.g. for
    /// the packets of a burst before their data.
    #[inline]
    pub fn prefetch_header(&self) {
        prefetch0(self.raw.as_ptr().cast::<u8>());
    }

    /// The pool this mbuf came from.
    pub(crate) fn pool_ptr(&self) -> *const sys::rte_mempool {
        // SAFETY: we own a valid mbuf.
        unsafe { sys::_rte_mbuf_pool(self.raw.as_ptr()).cast_const() }
    }
}

impl AsRef<[u8]> for Mbuf {
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl AsMut<[u8]> for Mbuf {
    fn as_mut(&mut self) -> &mut [u8] {
        self.data_mut()
    }
}

/// `rte_prefetch0`: start loading the cache line at `p` into all cache levels. A hint only: it
/// never faults, whatever `p` is.
#[inline(always)]
pub fn prefetch0(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch instructions do not access memory architecturally and never fault,
    // for any address; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: as above; the shim wraps rte_prefetch0.
    unsafe {
        sys::_rte_prefetch0(p.cast());
    }
}

/// A receive checksum status reported by the device in the mbuf's offload flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxCksum {
    /// No information (no offload, or the device did not check): verify in software.
    Unknown,
    /// The device checked the checksum and it is wrong.
    Bad,
    /// The device checked the checksum and it is right.
    Good,
    /// The checksum in the packet is not valid, but the data is (e.g. a virtual device that
    /// never computed it): treat as good.
    None,
}

impl RxCksum {
    #[inline(always)]
    fn from_bits(masked: u64, good: u64, bad: u64, none: u64) -> Self {
        if masked == good {
            Self::Good
        } else if masked == bad {
            Self::Bad
        } else if masked == none {
            Self::None
        } else {
            Self::Unknown
        }
    }
}

/// Burst size most DPDK applications use (`MAX_PKT_BURST`).
pub const DEFAULT_BURST: usize = 32;

/// A fixed-capacity array of mbufs for [`crate::RxQueue::rx_burst`] and
/// [`crate::TxQueue::tx_burst`]; allocate one per worker and reuse it every pass. Dropping or
/// [`Burst::clear`]ing it frees the mbufs it holds (in bulk).
///
/// Invariant: slots `..len` are `Some`, slots `len..` are `None`.
pub struct Burst<const N: usize = DEFAULT_BURST> {
    slots: [Option<Mbuf>; N],
    len: usize,
}

impl<const N: usize> fmt::Debug for Burst<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst")
            .field("len", &self.len)
            .field("capacity", &N)
            .finish()
    }
}

impl<const N: usize> Default for Burst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Burst<N> {
    /// An empty burst.
    ///
    /// # Panics
    /// If `N` is 0 or above `u16::MAX` (DPDK's burst count type).
    #[must_use]
    pub fn new() -> Self {
        assert!(
            N > 0 && N <= usize::from(u16::MAX),
            "burst capacity must be 1..=65535"
        );
        Self {
            slots: std::array::from_fn(|_| None),
            len: 0,
        }
    }

    /// Mbufs held.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds none.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `N`.
    #[inline]
    #[must_use]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Whether `len() == capacity()`.
    #[inline]
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Appends an mbuf, or gives it back if the burst is full.
    ///
    /// # Errors
    /// The mbuf itself, when full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == N {
            return Err(m);
        }
        self.slots[self.len] = Some(m);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        self.slots[self.len].take()
    }

    /// The mbufs held.
    #[inline]
    #[must_use]
    pub fn as_slice(&self) -> &[Mbuf] {
        let used = &self.slots[..self.len];
        // SAFETY: all slots ..len are Some (struct invariant), and Option<Mbuf> has the layout
        // of Mbuf with Some(m) represented as m (null-pointer optimisation, guaranteed for
        // repr(transparent) NonNull wrappers), so a slice of them is a valid slice of Mbuf.
        unsafe { std::slice::from_raw_parts(used.as_ptr().cast::<Mbuf>(), used.len()) }
    }

    /// The mbufs held, mutable (edit packets in place, swap buffers with `mem::swap`).
    #[inline]
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        let used = &mut self.slots[..self.len];
        // SAFETY: as in `as_slice`; writing an Mbuf through the slice writes a non-null
        // pointer, which keeps the slot `Some`.
        unsafe { std::slice::from_raw_parts_mut(used.as_mut_ptr().cast::<Mbuf>(), used.len()) }
    }

    /// Iterates over the mbufs.
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.as_slice().iter()
    }

    /// Iterates mutably over the mbufs.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Keeps only the mbufs for which `keep` returns true (in order); frees the others. The
    /// usual way to drop packets after a verdict.
    pub fn retain(&mut self, mut keep: impl FnMut(&mut Mbuf) -> bool) {
        let mut kept = 0;
        for i in 0..self.len {
            let keep_it = keep(self.slots[i].as_mut().expect("slot below len is Some"));
            if keep_it {
                self.slots.swap(kept, i);
                kept += 1;
            } else {
                self.slots[i] = None;
            }
        }
        self.len = kept;
    }

    /// Removes the mbufs, handing each to `f` in order (e.g. to move them into another burst).
    pub fn drain_into(&mut self, mut f: impl FnMut(Mbuf)) {
        for slot in &mut self.slots[..self.len] {
            if let Some(m) = slot.take() {
                f(m);
            }
        }
        self.len = 0;
    }

    /// Frees every mbuf held (`rte_pktmbuf_free_bulk`).
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        let n = self.len;
        self.len = 0;
        let ptr = self.slots.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: slots ..n hold n owned, valid mbufs (as raw pointers, see Mbuf's layout);
        // free_bulk frees them all. n fits u32 because N <= u16::MAX.
        unsafe { sys::rte_pktmbuf_free_bulk(ptr, n as u32) };
        for slot in &mut self.slots[..n] {
            // The mbuf was freed above: forget the handle instead of dropping it.
            mem::forget(slot.take());
        }
    }

    /// The free tail of the burst as a raw pointer array, and its length, for rx_burst.
    pub(crate) fn free_tail(&mut self) -> (*mut *mut sys::rte_mbuf, u16) {
        let tail = &mut self.slots[self.len..];
        // `N <= u16::MAX`, asserted in `new`.
        (tail.as_mut_ptr().cast(), tail.len() as u16)
    }

    /// Records that `n` more slots after `len` were filled (by rx_burst).
    ///
    /// # Safety
    /// Slots `len..len + n` hold valid, exclusively owned mbufs; `len + n <= N`.
    pub(crate) unsafe fn commit(&mut self, n: usize) {
        assert!(
            self.len + n <= N,
            "rx_burst returned more than the free room"
        );
        debug_assert!(self.slots[self.len..self.len + n]
            .iter()
            .all(Option::is_some));
        self.len += n;
    }

    /// The used slots as a raw pointer array, and its length, for tx_burst.
    pub(crate) fn used(&mut self) -> (*mut *mut sys::rte_mbuf, u16) {
        // `len <= N <= u16::MAX`, asserted in `new`.
        (self.slots.as_mut_ptr().cast(), self.len as u16)
    }

    /// Forgets the first `n` mbufs (now owned by the driver) and moves the rest to the front.
    ///
    /// # Safety
    /// The first `n` mbufs have been handed to (and are now owned by) DPDK; `n <= len`.
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        assert!(n <= self.len, "consumed {n} of {}", self.len);
        for slot in &mut self.slots[..n] {
            // Owned by the driver now: must not be freed by us.
            mem::forget(slot.take());
        }
        self.slots[..self.len].rotate_left(n);
        self.len -= n;
    }
}

impl<const N: usize> Drop for Burst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}
