//! Lcores, NUMA sockets and the TSC.
//!
//! Which threads should run workers? Either works; pick one per deployment:
//!
//! 1. **std threads** (recommended for callbridge, which already has its own thread and
//!    shutdown plumbing): give EAL only the main core (`-l 0`), spawn one std thread per
//!    worker, pin it to its core, then call [`register_thread`] and keep the
//!    [`ThreadRegistration`] alive while the loop runs. Pin *before* registering: DPDK derives
//!    the lcore's NUMA node from the thread's CPU affinity.
//! 2. **EAL lcores**: list the worker cores in `-l` (EAL creates one pinned, idle thread per
//!    core) and run each worker with [`launch`]; join it with [`Launched::join`] from the main
//!    lcore.
//!
//! Why it matters: DPDK's per-lcore mempool cache is indexed by lcore id. On a thread EAL does
//! not know, [`lcore_id`] is `None` (`LCORE_ID_ANY`) and every mbuf alloc/free bypasses the
//! cache and hits the pool's shared ring: correct, but slower.

use std::any::Any;
use std::ffi::c_void;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};

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

/// The boxed closure a launched lcore runs.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// The C entry point EAL calls on the worker lcore.
///
/// # Safety
/// `arg` comes from `Box::into_raw(Box<Job>)` in [`launch`] and is used exactly once.
unsafe extern "C" fn trampoline(arg: *mut c_void) -> i32 {
    // SAFETY: per this function's contract, arg is a leaked Box<Job> we now own.
    let job = unsafe { Box::from_raw(arg.cast::<Job>()) };
    // The job catches its own panics (see `launch`), so nothing unwinds into C.
    job();
    0
}

/// A closure running on an EAL worker lcore; [`Launched::join`] waits for its result.
#[derive(Debug)]
#[must_use = "dropping a Launched does not stop the lcore; join it"]
pub struct Launched<T> {
    lcore: u32,
    result: Arc<Mutex<Option<std::thread::Result<T>>>>,
    _eal: Arc<EalGuard>,
}

impl<T> Launched<T> {
    /// The lcore it runs on.
    #[must_use]
    pub fn lcore_id(&self) -> u32 {
        self.lcore
    }

    /// Waits for the closure to return (`rte_eal_wait_lcore`) and gives its result, or the
    /// panic payload if it panicked (as `std::thread::JoinHandle::join`).
    ///
    /// # Errors
    /// [`DpdkError::InvalidInput`] when not called on the main lcore (EAL allows waiting only
    /// there); the closure keeps running and its result is lost.
    pub fn join(self) -> Result<std::thread::Result<T>, DpdkError> {
        // SAFETY: EAL is alive (we hold its guard); reads global config.
        let main = unsafe { sys::rte_get_main_lcore() };
        if lcore_id() != Some(main) {
            return Err(DpdkError::invalid(
                "thread",
                "Launched::join must run on the main lcore",
            ));
        }
        // SAFETY: on the main lcore (checked); waits until the worker lcore is idle again.
        unsafe { sys::rte_eal_wait_lcore(self.lcore) };
        let result = self
            .result
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // The job always stores a result before returning to EAL.
        Ok(result.unwrap_or_else(|| {
            Err(Box::new("lcore job produced no result") as Box<dyn Any + Send>)
        }))
    }
}

/// Runs `f` on EAL worker lcore `lcore` (`rte_eal_remote_launch`). Call from the main lcore;
/// the lcore must be one of `-l`, not the main one, and idle.
///
/// # Errors
/// [`DpdkError::EalNotInitialized`]; [`DpdkError::InvalidInput`] off the main lcore, or for
/// an lcore that is the main one or not an EAL worker lcore (`-l`); `Busy` if the lcore is
/// still running something.
pub fn launch<F, T>(lcore: u32, f: F) -> Result<Launched<T>, DpdkError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let eal = eal::guard()?;
    if lcore >= sys::RTE_MAX_LCORE {
        return Err(DpdkError::invalid(
            "lcore",
            format!("{lcore} >= RTE_MAX_LCORE"),
        ));
    }
    // SAFETY: EAL is alive; reads global config.
    let main = unsafe { sys::rte_get_main_lcore() };
    if lcore_id() != Some(main) {
        return Err(DpdkError::invalid(
            "thread",
            "launch must run on the main lcore",
        ));
    }
    if lcore == main {
        return Err(DpdkError::invalid(
            "lcore",
            format!("{lcore} is the main lcore"),
        ));
    }
    // SAFETY: lcore < RTE_MAX_LCORE (checked); reads the lcore config table.
    if unsafe { sys::rte_eal_lcore_role(lcore) } != sys::ROLE_RTE {
        return Err(DpdkError::invalid(
            "lcore",
            format!("{lcore} is not an EAL worker lcore (not in -l, or a registered thread)"),
        ));
    }
    let result = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&result);
    let job: Job = Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(f));
        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
    });
    let arg = Box::into_raw(Box::new(job));
    // SAFETY: on the main lcore (checked); trampoline matches lcore_function_t and takes
    // ownership of arg exactly once if the launch succeeds.
    let rc = unsafe { sys::rte_eal_remote_launch(Some(trampoline), arg.cast(), lcore) };
    if let Err(e) = rc.to_result("rte_eal_remote_launch") {
        // SAFETY: the launch failed, so EAL never saw arg: it is still ours to free.
        drop(unsafe { Box::from_raw(arg) });
        return Err(e);
    }
    Ok(Launched {
        lcore,
        result,
        _eal: eal,
    })
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
