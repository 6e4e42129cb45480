//! [`Mempool`]: a packet-mbuf pool (`rte_pktmbuf_pool_create`), shared by cheap clones.
//!
//! Invariant: the pool is freed (`rte_mempool_free`) when the last clone is dropped **and** no
//! mbuf of it is out (in an [`Mbuf`], a `Burst`, or a NIC ring). If some are out, the pool and
//! the EAL guard are leaked instead, so those mbufs never point into freed memory.

use std::fmt;
use std::mem::{self, ManuallyDrop};
use std::ptr::NonNull;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::eal::{self, EalGuard};
use crate::error::{to_c_string, DpdkError, ToResult};
use crate::lcore::SocketId;
use crate::mbuf::Mbuf;

/// Longest mempool name DPDK accepts (`RTE_MEMPOOL_NAMESIZE - 1`, minus the `MP_` prefix of
/// its memzone).
const MAX_NAME_LEN: usize = 25;

struct PoolInner {
    raw: NonNull<sys::rte_mempool>,
    name: String,
    data_room: u16,
    eal: ManuallyDrop<Arc<EalGuard>>,
}

// SAFETY: an rte_mempool created by rte_pktmbuf_pool_create uses the default multi-producer /
// multi-consumer ring ops, so get/put from several threads at once is safe; the remaining
// fields are immutable after creation.
unsafe impl Send for PoolInner {}
// SAFETY: as above: every operation we expose through &PoolInner is thread-safe in DPDK.
unsafe impl Sync for PoolInner {}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // SAFETY: raw is a live pool (we never free it elsewhere).
        let in_use = unsafe { sys::rte_mempool_in_use_count(self.raw.as_ptr()) };
        if in_use == 0 {
            // SAFETY: no mbuf of this pool is out, no Port references it (ports hold a clone),
            // and this is the last clone: nothing can touch the pool after this.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) };
            // SAFETY: dropped exactly once, here; the field is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.eal) };
        }
        // Otherwise leak the pool and keep EAL initialised forever: mbufs still point into it.
    }
}

/// A pool of packet mbufs. Clones share the pool; it is `Send + Sync`, so each worker may
/// hold a clone and allocate from its own lcore.
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("capacity", &self.capacity())
            .field("available", &self.available())
            .field("data_room", &self.inner.data_room)
            .finish()
    }
}

impl Mempool {
    /// Default data room per mbuf: 2048 bytes of packet plus `RTE_PKTMBUF_HEADROOM` (128).
    pub const DEFAULT_DATA_ROOM: u16 = sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// Creates a pool of `n_mbufs` mbufs (`2^q - 1` is optimal), with a per-lcore cache of
    /// `cache` mbufs (0 disables it; at most 512 and at most `n_mbufs / 1.5`), each with
    /// `data_room` bytes of buffer including the 128-byte headroom
    /// ([`Self::DEFAULT_DATA_ROOM`]), on NUMA node `socket` (use the port's,
    /// [`crate::Port::socket_id`]).
    ///
    /// # Errors
    /// [`DpdkError::EalNotInitialized`]; [`DpdkError::InvalidInput`] for a name longer than 25
    /// bytes or containing NUL; `AlreadyExists` if the name is taken; `OutOfMemory`;
    /// `InvalidArgument` for a bad cache size.
    pub fn new(
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: SocketId,
    ) -> Result<Self, DpdkError> {
        let eal = eal::guard()?;
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(DpdkError::invalid(
                "mempool name",
                format!("{name:?} must be 1..={MAX_NAME_LEN} bytes"),
            ));
        }
        let c_name = to_c_string("mempool name", name)?;
        // SAFETY: EAL is initialised (we hold its guard); c_name is a valid C string DPDK
        // copies.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(
                c_name.as_ptr(),
                n_mbufs,
                cache,
                0,
                data_room,
                socket.raw(),
            )
        }
        .to_result("rte_pktmbuf_pool_create")?;
        Ok(Self {
            inner: Arc::new(PoolInner {
                raw,
                name: name.to_owned(),
                data_room,
                eal: ManuallyDrop::new(eal),
            }),
        })
    }

    /// Allocates one mbuf (empty: `len() == 0`, full headroom), or `None` when the pool is
    /// empty.
    #[inline]
    #[must_use]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive (we hold it); alloc returns an exclusively owned mbuf or
        // NULL.
        let m = unsafe { sys::_rte_pktmbuf_alloc(self.inner.raw.as_ptr()) };
        // SAFETY: a freshly allocated mbuf is exclusively ours, with refcnt 1.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Fills every slot of `out` with a fresh mbuf, all or nothing (`rte_pktmbuf_alloc_bulk`);
    /// mbufs already in `out` are freed first.
    ///
    /// # Errors
    /// [`DpdkError::PoolExhausted`] (zero-sized, no allocation) if the pool has fewer free
    /// mbufs than `out.len()`; `out` is then all `None`.
    pub fn alloc_bulk(&self, out: &mut [Option<Mbuf>]) -> Result<(), DpdkError> {
        for slot in out.iter_mut() {
            *slot = None;
        }
        let count = u32::try_from(out.len()).map_err(|_| DpdkError::PoolExhausted)?;
        // Option<Mbuf> has the layout of *mut rte_mbuf (Mbuf is a repr(transparent) NonNull),
        // with None as NULL.
        let ptr = out.as_mut_ptr().cast::<*mut sys::rte_mbuf>();
        // SAFETY: ptr points to out.len() writable pointer-sized slots, all currently None
        // (NULL), so overwriting them leaks nothing; on success DPDK writes `count` valid,
        // exclusively owned mbufs; on failure the slots' content is not ours (handled below).
        let rc = unsafe { sys::_rte_pktmbuf_alloc_bulk(self.inner.raw.as_ptr(), ptr, count) };
        if rc == 0 {
            return Ok(());
        }
        // On failure DPDK may have copied pointers out of the per-lcore cache into `out`
        // before finding the ring short, and then rolled the cache back: those pointers are
        // still the cache's. Overwrite them without dropping (freeing) anything.
        for slot in out.iter_mut() {
            mem::forget(slot.take());
        }
        Err(DpdkError::PoolExhausted)
    }

    /// The pool's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The data room per mbuf, headroom included.
    #[must_use]
    pub fn data_room(&self) -> u16 {
        self.inner.data_room
    }

    /// Total mbufs in the pool.
    #[must_use]
    pub fn capacity(&self) -> u32 {
        // SAFETY: the pool is alive; `size` is immutable after creation.
        unsafe { (*self.inner.raw.as_ptr()).size }
    }

    /// Free mbufs (in the pool and in per-lcore caches).
    #[must_use]
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive; the count is a racy but safe read.
        unsafe { sys::rte_mempool_avail_count(self.inner.raw.as_ptr()) }
    }

    /// Mbufs currently allocated (in `Mbuf`s, bursts or NIC rings).
    #[must_use]
    pub fn in_use(&self) -> u32 {
        // SAFETY: as for `available`.
        unsafe { sys::rte_mempool_in_use_count(self.inner.raw.as_ptr()) }
    }

    /// The raw pool, for this crate's ethdev calls.
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.inner.raw.as_ptr()
    }

    /// Whether `m` was allocated from this pool.
    #[must_use]
    pub fn owns(&self, m: &Mbuf) -> bool {
        std::ptr::eq(self.inner.raw.as_ptr(), m.pool_ptr())
    }
}
