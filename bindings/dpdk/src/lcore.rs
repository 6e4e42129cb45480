//! Lcores, NUMA sockets and the TSC.
//!
//! Which threads should run workers: **std threads pinned to a core, each calling
//! [`register_thread`] first** (or EAL's own lcores; `rte_eal_remote_launch` is not wrapped).
//! DPDK's per-lcore mempool cache is indexed by lcore id. On a thread EAL does not know,
//! [`lcore_id`] is `None` (`LCORE_ID_ANY`) and every mbuf alloc/free bypasses the cache and
//! hits the pool's shared ring: correct, but slower. [`register_thread`] gives the thread an
//! lcore id (`rte_thread_register`) until its [`ThreadRegistration`] is dropped.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use dpdk_sys as sys;

use crate::eal::{self, EalGuard};
use crate::error::{DpdkError, ErrnoRc, ToResult};

/// DPDK's `LCORE_ID_ANY`: the lcore id of a thread EAL does not know.
pub const LCORE_ID_ANY: u32 = u32::MAX;

/// A NUMA node id as DPDK uses it; [`SocketId::ANY`] means "no preference / unknown".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub i32);

impl SocketId {
    /// `SOCKET_ID_ANY` (-1).
    pub const ANY: Self = Self(-1);

    /// The value for DPDK functions taking an `int` socket id.
    #[must_use]
    pub const fn raw(self) -> i32 {
        self.0
    }

    /// Whether this is [`SocketId::ANY`].
    #[must_use]
    pub const fn is_any(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// The calling thread's lcore id, or `None` on a thread EAL does not know.
#[must_use]
pub fn lcore_id() -> Option<u32> {
    // SAFETY: reads a thread-local; valid on any thread.
    let id = unsafe { sys::_rte_lcore_id() };
    (id != LCORE_ID_ANY).then_some(id)
}

/// The calling thread's NUMA node ([`SocketId::ANY`] if unknown, e.g. before EAL init or on
/// an unregistered thread).
#[must_use]
pub fn socket_id() -> SocketId {
    // SAFETY: reads a thread-local; valid on any thread.
    let id = unsafe { sys::rte_socket_id() };
    // rte_socket_id returns SOCKET_ID_ANY (-1) cast to unsigned when unknown.
    SocketId(i32::try_from(id).unwrap_or(-1))
}

/// The NUMA node of `lcore` (an id below `RTE_MAX_LCORE`).
///
/// # Panics
/// If `lcore >= RTE_MAX_LCORE`.
#[must_use]
pub fn lcore_socket_id(lcore: u32) -> SocketId {
    assert!(lcore < sys::RTE_MAX_LCORE, "lcore {lcore} out of range");
    // SAFETY: lcore is in range (asserted); reads the lcore config table.
    let id = unsafe { sys::rte_lcore_to_socket_id(lcore) };
    SocketId(i32::try_from(id).unwrap_or(-1))
}

/// Reads the CPU time-stamp counter (`rte_rdtsc`). Read it once per burst and pass it down.
#[inline]
#[must_use]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no preconditions.
    unsafe { sys::_rte_rdtsc() }
}

/// TSC ticks per second, calibrated by `Eal::init` (0 before).
#[must_use]
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a global set during EAL init.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The calling thread's registration as an EAL lcore; dropping it unregisters the thread.
/// Not `Send`: it belongs to the thread that registered.
#[derive(Debug)]
pub struct ThreadRegistration {
    lcore: u32,
    _eal: Arc<EalGuard>,
    _not_send: PhantomData<*const ()>,
}

impl ThreadRegistration {
    /// The lcore id this thread got.
    #[must_use]
    pub fn lcore_id(&self) -> u32 {
        self.lcore
    }
}

impl Drop for ThreadRegistration {
    fn drop(&mut self) {
        // SAFETY: this thread registered itself (the type is !Send, so we are on it); EAL is
        // alive because we hold its guard.
        unsafe { sys::rte_thread_unregister() };
    }
}

/// Registers the calling (non-EAL) thread as an lcore so it gets an lcore id and the mempool
/// per-lcore cache (`rte_thread_register`). Keep the returned registration alive for as long
/// as the thread runs the worker loop; dropping it releases the lcore id.
///
/// Returns `Ok(None)` when the thread already has an lcore id (an EAL lcore, or registered
/// earlier): there is nothing to undo then.
///
/// # Errors
/// [`DpdkError::EalNotInitialized`]; or `rte_thread_register`'s failure (e.g. `NoSpace` when
/// all `RTE_MAX_LCORE` ids are taken).
pub fn register_thread() -> Result<Option<ThreadRegistration>, DpdkError> {
    let guard = eal::guard()?;
    if lcore_id().is_some() {
        return Ok(None);
    }
    // SAFETY: EAL is initialised (we hold its guard); registers the calling thread only.
    let rc = unsafe { sys::rte_thread_register() };
    ErrnoRc(rc).to_result("rte_thread_register")?;
    let lcore = lcore_id().ok_or_else(|| DpdkError::from_rte_errno("rte_thread_register"))?;
    Ok(Some(ThreadRegistration {
        lcore,
        _eal: guard,
        _not_send: PhantomData,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsc_moves_and_threads_are_unknown_without_eal() {
        let a = rdtsc();
        let b = rdtsc();
        assert!(a > 0 && b >= a);
        assert_eq!(lcore_id(), None);
        assert_eq!(register_thread().unwrap_err(), DpdkError::EalNotInitialized);
        assert_eq!(SocketId::ANY.to_string(), "any");
        assert_eq!(SocketId(1).to_string(), "1");
    }
}
