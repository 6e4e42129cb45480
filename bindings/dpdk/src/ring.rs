//! A lock-free ring of mbufs (`rte_ring`) for handing packets between workers: many producers
//! ([`RingProducer`], cloneable, any thread), one consumer ([`RingConsumer`]). A worker that
//! receives a packet for a port another worker owns enqueues the raw mbuf into the owner's
//! ring; the owner dequeues it in its loop as if it had come from its own RX queue.
//!
//! ```text
//!  worker A: rx_burst ─► stray ─► ring_b.enqueue_burst(&mut strays)   (RingProducer, cloned)
//!  worker B: ring.dequeue_burst(&mut burst) ─► handle like received    (RingConsumer, the one)
//! ```
//!
//! Invariants:
//! - The ring is created with `RING_F_SC_DEQ`: multi-producer enqueue, single-consumer
//!   dequeue. The single consumer is enforced by [`RingConsumer`] being neither `Clone` nor
//!   usable through `&self` for dequeueing.
//! - An mbuf is owned by exactly one of: a [`crate::Burst`], the ring. Enqueue moves ownership
//!   into the ring, dequeue moves it out; nothing is copied.
//! - The ring (and EAL) lives until the last producer and the consumer are dropped; mbufs still
//!   in it are then freed, and `rte_ring_free` runs.
//!
//! Multi-producer enqueue is lock-free but not wait-free: a producer preempted in the middle of
//! an enqueue makes the others spin until it resumes. Producers should be pinned workers.

use std::ffi::c_void;
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::eal::{self, EalGuard};
use crate::error::{to_c_string, DpdkError, ToResult};
use crate::lcore::SocketId;
use crate::mbuf::Burst;

/// Longest ring name: `RTE_RING_NAMESIZE` (32-byte memzone names, minus the `"RG_"` prefix,
/// minus the NUL).
const MAX_NAME_LEN: usize = sys::RTE_MEMZONE_NAMESIZE as usize - 3 - 1;

/// Largest ring size `rte_ring_create` accepts (`RTE_RING_SZ_MASK + 1`).
const MAX_SIZE: u32 = 1 << 31;

struct RingInner {
    raw: NonNull<sys::rte_ring>,
    name: String,
    size: u32,
    _eal: Arc<EalGuard>,
}

// SAFETY: an rte_ring lives in shared DPDK memory and may be used from any thread; which
// operations may run concurrently (MP enqueue, SC dequeue) is enforced by the handle types.
unsafe impl Send for RingInner {}
// SAFETY: through `&RingInner` only MP-safe enqueue and the racy-but-safe count are reachable
// (dequeue needs `&mut RingConsumer`).
unsafe impl Sync for RingInner {}

impl RingInner {
    fn count(&self) -> usize {
        // SAFETY: the ring is alive; rte_ring_count reads the head/tail indexes only.
        unsafe { sys::_rte_ring_count(self.raw.as_ptr()) as usize }
    }

    /// Dequeues into the free tail of `burst`.
    ///
    /// # Safety
    /// No other thread dequeues from this ring at the same time (single consumer).
    unsafe fn dequeue_into<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let (ptr, room) = burst.free_tail();
        if room == 0 {
            return 0;
        }
        // SAFETY: single consumer per this function's contract; ptr points to `room` writable
        // pointer slots that hold no mbuf (None/NULL); the ring writes n <= room pointers, each
        // an mbuf whose ownership was moved into the ring by enqueue.
        let n = unsafe {
            sys::_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                ptr.cast::<*mut c_void>(),
                u32::from(room),
                ptr::null_mut(),
            )
        } as usize;
        // SAFETY: exactly n slots after len now hold owned, valid mbufs (n <= room).
        unsafe { burst.commit(n) };
        n
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Last handle: nobody else enqueues or dequeues. Free what is left, then the ring.
        let mut rest = Burst::<32>::new();
        loop {
            // SAFETY: no other handle exists, so this is the only consumer.
            let n = unsafe { self.dequeue_into(&mut rest) };
            if n == 0 {
                break;
            }
            rest.clear();
        }
        // SAFETY: the ring came from rte_ring_create, is empty, and no handle refers to it any
        // more; EAL is still initialised (we hold its guard until after this).
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) };
    }
}

/// A ring of mbufs: many producers (any thread), one consumer. `size` is a power of two
/// (capacity `size - 1`). Created with `RING_F_SC_DEQ` (multi-producer enqueue,
/// single-consumer dequeue) on NUMA node `socket` (the consumer's).
///
/// # Errors
/// `InvalidInput` for a name that is empty, longer than 28 bytes or has a NUL byte, or a size
/// that is not a power of two in `2..=2^31`; `EalNotInitialized`; `AlreadyExists` if a ring
/// with that name exists; `OutOfMemory` / `NoSpace` from `rte_ring_create`.
pub fn mbuf_ring(
    name: &str,
    size: u32,
    socket: SocketId,
) -> Result<(RingProducer, RingConsumer), DpdkError> {
    let eal = eal::guard()?;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(DpdkError::invalid(
            "ring name",
            format!("{name:?} must be 1..={MAX_NAME_LEN} bytes"),
        ));
    }
    if !(2..=MAX_SIZE).contains(&size) || !size.is_power_of_two() {
        return Err(DpdkError::invalid(
            "ring size",
            format!("{size} is not a power of two in 2..={MAX_SIZE}"),
        ));
    }
    let c_name = to_c_string("ring name", name)?;
    // SAFETY: EAL is initialised (we hold its guard); c_name is a valid C string DPDK copies;
    // size was checked; returns NULL with rte_errno on failure.
    let raw = unsafe {
        sys::rte_ring_create(c_name.as_ptr(), size, socket.raw(), sys::_RTE_RING_F_SC_DEQ)
    }
    .to_result("rte_ring_create")?;
    let inner = Arc::new(RingInner {
        raw,
        name: name.to_owned(),
        size,
        _eal: eal,
    });
    Ok((
        RingProducer {
            inner: Arc::clone(&inner),
        },
        RingConsumer { inner },
    ))
}

/// The enqueue side of an [`mbuf_ring`]. Clone it for every producer; `Send + Sync`.
#[derive(Clone)]
pub struct RingProducer {
    inner: Arc<RingInner>,
}

impl fmt::Debug for RingProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingProducer")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .finish()
    }
}

impl RingProducer {
    /// Moves as many mbufs of `burst` as fit into the ring (from the front, keeping order);
    /// the ones that did not fit stay in `burst` (moved to its front). Returns how many were
    /// moved. Allocates and frees nothing.
    #[inline]
    pub fn enqueue_burst<const N: usize>(&self, burst: &mut Burst<N>) -> usize {
        let (ptr, len) = burst.used();
        if len == 0 {
            return 0;
        }
        // SAFETY: the ring is alive (we hold it) and multi-producer, so concurrent enqueues
        // from any thread are allowed; ptr points to `len` owned, valid mbufs, of which the
        // ring takes the first n (copying the pointers).
        let n = unsafe {
            sys::_rte_ring_enqueue_burst(
                self.inner.raw.as_ptr(),
                ptr.cast::<*mut c_void>().cast_const(),
                u32::from(len),
                ptr::null_mut(),
            )
        } as usize;
        // SAFETY: the first n mbufs are owned by the ring now (n <= len).
        unsafe { burst.consume_front(n.min(usize::from(len))) };
        n
    }

    /// Mbufs in the ring now (a snapshot).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.count()
    }

    /// Whether the ring is empty now (a snapshot).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many mbufs the ring holds at most (`size - 1`).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner.size as usize - 1
    }
}

/// The dequeue side of an [`mbuf_ring`]: exactly one exists. `Send`, not `Clone`.
pub struct RingConsumer {
    inner: Arc<RingInner>,
}

impl fmt::Debug for RingConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingConsumer")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("len", &self.len())
            .finish()
    }
}

impl RingConsumer {
    /// Appends up to the burst's free room of mbufs from the ring (oldest first); returns how
    /// many. Allocates nothing.
    #[inline]
    pub fn dequeue_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        // SAFETY: this is the only RingConsumer of the ring (not Clone, created once) and
        // dequeueing needs &mut self, so no other thread dequeues concurrently.
        unsafe { self.inner.dequeue_into(burst) }
    }

    /// Mbufs in the ring now (a snapshot; producers may add more at any time).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.count()
    }

    /// Whether the ring is empty now.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many mbufs the ring holds at most (`size - 1`).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.inner.size as usize - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_limit_matches_dpdk() {
        // RTE_RING_NAMESIZE = RTE_MEMZONE_NAMESIZE - sizeof("RG_") + 1, with the NUL.
        assert_eq!(MAX_NAME_LEN, 28);
    }

    #[test]
    fn needs_eal() {
        // This unit-test binary never initialises EAL.
        assert_eq!(
            mbuf_ring("r", 8, SocketId::ANY).unwrap_err(),
            DpdkError::EalNotInitialized
        );
    }
}
