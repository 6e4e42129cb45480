//! The Environment Abstraction Layer: [`Eal::init`] once per process, [`EalArgs`] to build the
//! argument list.
//!
//! Invariant: `rte_eal_init` is called at most once per process (DPDK cannot re-initialise,
//! not even after `rte_eal_cleanup`), and `rte_eal_cleanup` runs only after every object that
//! uses EAL memory is gone. Both are enforced here: a process-wide flag refuses a second
//! [`Eal::init`], and [`Eal`], every [`crate::Mempool`] and every [`crate::Port`] hold one
//! shared guard whose `Drop` calls `rte_eal_cleanup`.

use std::ffi::c_char;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use dpdk_sys as sys;

use crate::error::{c_str_to_string, to_c_string, DpdkError, ErrnoRc, ToResult};

/// Set by the first [`Eal::init`], never cleared.
static INIT_ATTEMPTED: AtomicBool = AtomicBool::new(false);
/// The live guard, if EAL is initialised and not yet cleaned up.
static GUARD: Mutex<Option<Weak<EalGuard>>> = Mutex::new(None);

/// Keeps EAL initialised; the last clone's drop calls `rte_eal_cleanup`.
pub(crate) struct EalGuard {
    _private: (),
}

impl fmt::Debug for EalGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EalGuard")
    }
}

impl Drop for EalGuard {
    fn drop(&mut self) {
        // SAFETY: this is the last reference to the EAL guard: no Mempool or Port is alive, and
        // mempools with mbufs still out leak their guard instead of dropping it (see
        // `mempool.rs`), so no DPDK memory is in use any more.
        let rc = unsafe { sys::rte_eal_cleanup() };
        if let Err(e) = ErrnoRc(rc).to_result("rte_eal_cleanup") {
            // Drop cannot return the error; there is nothing else to undo.
            eprintln!("callbridge-dpdk: {e}");
        }
    }
}

/// Returns the live EAL guard.
pub(crate) fn guard() -> Result<Arc<EalGuard>, DpdkError> {
    GUARD
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(Weak::upgrade)
        .ok_or(DpdkError::EalNotInitialized)
}

/// An initialised EAL. Dropping it (together with every mempool and port) runs
/// `rte_eal_cleanup`.
#[derive(Debug)]
pub struct Eal {
    _guard: Arc<EalGuard>,
    args: Vec<String>,
}

impl Eal {
    /// Initialises EAL with `args` (EAL arguments only, without a program name: `"callbridge"`
    /// is passed as `argv[0]`). See [`EalArgs`] and the crate docs for which arguments matter.
    ///
    /// Call from the thread that will be the main lcore; it becomes lcore `--main-lcore`.
    ///
    /// # Errors
    /// [`DpdkError::EalAlreadyInitialized`] on any call after the first (even if the first
    /// failed or its `Eal` was dropped); [`DpdkError::InvalidInput`] if an argument contains a
    /// NUL byte; otherwise the `rte_eal_init` failure mapped from `rte_errno` (e.g.
    /// `InvalidArgument` for an unknown option, `OutOfMemory` for too little memory).
    pub fn init(args: &[String]) -> Result<Self, DpdkError> {
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(to_c_string("EAL argument", "callbridge")?);
        for a in args {
            owned.push(to_c_string("EAL argument", a)?);
        }
        if INIT_ATTEMPTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlreadyInitialized);
        }
        let mut argv: Vec<*mut c_char> = owned.iter().map(|a| a.as_ptr().cast_mut()).collect();
        let argc = i32::try_from(argv.len())
            .map_err(|_| DpdkError::invalid("EAL arguments", "too many"))?;
        // SAFETY: argv points to `argc` NUL-terminated strings owned by `owned`, which outlives
        // the call; EAL may permute the pointer array (ours) but keeps no pointer into it after
        // returning except for strings it copies. The INIT_ATTEMPTED flag guarantees a single
        // call per process.
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        ErrnoRc(rc).to_result("rte_eal_init")?;
        let guard = Arc::new(EalGuard { _private: () });
        *GUARD
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::downgrade(&guard));
        Ok(Self {
            _guard: guard,
            args: args.to_vec(),
        })
    }

    /// Whether EAL is initialised (and not cleaned up) in this process.
    #[must_use]
    pub fn is_initialized() -> bool {
        guard().is_ok()
    }

    /// The arguments `init` was called with.
    #[must_use]
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root). EAL leaves it behind
    /// after cleanup; tests remove theirs.
    #[must_use]
    pub fn runtime_dir(&self) -> PathBuf {
        // SAFETY: EAL is initialised; returns a pointer to a static NUL-terminated path.
        PathBuf::from(unsafe { c_str_to_string(sys::rte_eal_get_runtime_dir()) })
    }

    /// The main lcore's id.
    #[must_use]
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: EAL is initialised (self holds the guard); reads global config.
        unsafe { sys::rte_get_main_lcore() }
    }

    /// How many lcores EAL was given (`-l`).
    #[must_use]
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: EAL is initialised; reads global config.
        unsafe { sys::rte_lcore_count() }
    }

    /// The lcore ids EAL was given, main lcore included, in increasing order.
    #[must_use]
    pub fn lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i = u32::MAX; // rte_get_next_lcore(-1, ...) starts at 0
        loop {
            // SAFETY: EAL is initialised; rte_get_next_lcore accepts any start value and
            // returns RTE_MAX_LCORE when done.
            i = unsafe { sys::rte_get_next_lcore(i, 0, 0) };
            if i >= sys::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }
}

/// A builder for EAL argument lists. `build()` gives the `Vec<String>` for [`Eal::init`].
///
/// ```
/// let args = callbridge_dpdk::EalArgs::new()
///     .lcores("0")
///     .no_huge(256)
///     .no_pci()
///     .unique_file_prefix()
///     .vdev("net_null0")
///     .build();
/// assert!(args.windows(2).any(|w| w == ["--vdev", "net_null0"]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EalArgs {
    args: Vec<String>,
}

/// Distinguishes `unique_file_prefix` calls within one process.
static PREFIX_COUNTER: AtomicU32 = AtomicU32::new(0);

impl EalArgs {
    /// An empty argument list.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The test set: lcore 0, `--no-huge -m 256`, `--no-pci`, a unique `--file-prefix`, EAL
    /// logging at warning level. Add devices with [`Self::vdev`].
    #[must_use]
    pub fn for_tests() -> Self {
        Self::new()
            .lcores("0")
            .no_huge(256)
            .no_pci()
            .unique_file_prefix()
            .log_level("lib.eal:warning")
    }

    /// Appends one raw argument.
    #[must_use]
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    fn pair(self, flag: &str, value: impl Into<String>) -> Self {
        self.arg(flag).arg(value)
    }

    /// `-l LIST`: the lcores to use, e.g. `"0"`, `"2-5"`, `"2,4,6"`.
    #[must_use]
    pub fn lcores(self, list: &str) -> Self {
        self.pair("-l", list)
    }

    /// `--main-lcore ID`.
    #[must_use]
    pub fn main_lcore(self, id: u32) -> Self {
        self.pair("--main-lcore", id.to_string())
    }

    /// `--vdev SPEC`: a virtual device, e.g. `net_null0`, `net_ring0`,
    /// `net_af_packet0,iface=eth1`.
    #[must_use]
    pub fn vdev(self, spec: &str) -> Self {
        self.pair("--vdev", spec)
    }

    /// `-a PCI`: allow-list a PCI device, e.g. `0000:03:00.0`.
    #[must_use]
    pub fn allow_pci(self, addr: &str) -> Self {
        self.pair("-a", addr)
    }

    /// `--no-pci`: probe no PCI device.
    #[must_use]
    pub fn no_pci(self) -> Self {
        self.arg("--no-pci")
    }

    /// `--no-huge -m MB`: ordinary memory instead of hugepages.
    #[must_use]
    pub fn no_huge(self, mem_mb: u32) -> Self {
        self.arg("--no-huge").pair("-m", mem_mb.to_string())
    }

    /// `--socket-mem MB,MB,…`: hugepage memory per NUMA node.
    #[must_use]
    pub fn socket_mem(self, per_node_mb: &str) -> Self {
        self.pair("--socket-mem", per_node_mb)
    }

    /// `--file-prefix PREFIX`.
    #[must_use]
    pub fn file_prefix(self, prefix: &str) -> Self {
        self.pair("--file-prefix", prefix)
    }

    /// `--file-prefix cb<pid>_<n>`, unique per process and call (`--in-memory` is refused with
    /// `--no-huge`, so tests need distinct prefixes instead).
    #[must_use]
    pub fn unique_file_prefix(self) -> Self {
        let n = PREFIX_COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("cb{}_{n}", std::process::id());
        self.file_prefix(&prefix)
    }

    /// `-d PATH`: load a driver plugin (file or directory).
    #[must_use]
    pub fn driver(self, path: &str) -> Self {
        self.pair("-d", path)
    }

    /// `--log-level SPEC`, e.g. `"lib.eal:debug"` or `"7"`.
    #[must_use]
    pub fn log_level(self, spec: &str) -> Self {
        self.pair("--log-level", spec)
    }

    /// The argument list for [`Eal::init`].
    #[must_use]
    pub fn build(self) -> Vec<String> {
        self.args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_args_are_unique_and_complete() {
        let a = EalArgs::for_tests().vdev("net_ring0").build();
        let b = EalArgs::for_tests().build();
        let prefix = |v: &[String]| {
            let i = v.iter().position(|x| x == "--file-prefix").unwrap();
            v[i + 1].clone()
        };
        assert_ne!(prefix(&a), prefix(&b));
        assert!(prefix(&a).starts_with(&format!("cb{}_", std::process::id())));
        for w in [["-l", "0"], ["-m", "256"], ["--vdev", "net_ring0"]] {
            assert!(a.windows(2).any(|x| x == w), "{w:?} missing from {a:?}");
        }
        assert!(a.iter().any(|x| x == "--no-huge") && a.iter().any(|x| x == "--no-pci"));
    }

    #[test]
    fn nothing_works_before_init() {
        // This unit-test binary never initialises EAL.
        assert!(!Eal::is_initialized());
        assert_eq!(guard().unwrap_err(), DpdkError::EalNotInitialized);
    }
}
