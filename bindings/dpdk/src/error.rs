//! [`DpdkError`]: what failed, mapped from DPDK's errno values, with `rte_strerror`'s text; and
//! the one helper trait, `ToResult`, through which every FFI return code passes.

use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;

use dpdk_sys as sys;

/// Linux errno values DPDK returns (x86_64 / aarch64 share them).
mod errno {
    pub(super) const EPERM: i32 = 1;
    pub(super) const ENOENT: i32 = 2;
    pub(super) const EIO: i32 = 5;
    pub(super) const EAGAIN: i32 = 11;
    pub(super) const ENOMEM: i32 = 12;
    pub(super) const EACCES: i32 = 13;
    pub(super) const EBUSY: i32 = 16;
    pub(super) const EEXIST: i32 = 17;
    pub(super) const ENODEV: i32 = 19;
    pub(super) const EINVAL: i32 = 22;
    pub(super) const ENOSPC: i32 = 28;
    pub(super) const ENOTSUP: i32 = 95;
    pub(super) const EALREADY: i32 = 114;
}

/// Everything that can fail in this crate. Variants that come from DPDK carry the function
/// that failed (`call`) and `rte_strerror`'s text; [`DpdkError::errno`] gives the number back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpdkError {
    /// `Eal::init` was already called in this process (DPDK allows one initialisation, even
    /// after `rte_eal_cleanup` or a failed attempt).
    #[error("EAL was already initialised (or its initialisation attempted) in this process")]
    EalAlreadyInitialized,
    /// A DPDK object was requested before `Eal::init` succeeded, or after it was dropped.
    #[error("EAL is not initialised")]
    EalNotInitialized,
    /// An argument was rejected before calling DPDK (a NUL byte in a string, a name too long,
    /// a queue count out of range, …).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was invalid.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// ENODEV: no such device or port.
    #[error("{call}: no such device: {text}")]
    NoDevice {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EINVAL: DPDK rejected an argument.
    #[error("{call}: invalid argument: {text}")]
    InvalidArgument {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// ENOMEM: not enough (hugepage) memory.
    #[error("{call}: out of memory: {text}")]
    OutOfMemory {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EEXIST: an object with that name already exists.
    #[error("{call}: already exists: {text}")]
    AlreadyExists {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// ENOSPC: a fixed-size table (memzones, ports) is full.
    #[error("{call}: no space left: {text}")]
    NoSpace {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// ENOTSUP: the driver does not support the operation.
    #[error("{call}: not supported by the driver: {text}")]
    NotSupported {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EBUSY: the device or resource is in use.
    #[error("{call}: busy: {text}")]
    Busy {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EPERM / EACCES: not permitted (often: not root, or a secondary process).
    #[error("{call}: permission denied: {text}")]
    PermissionDenied {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EIO: the device was removed or failed.
    #[error("{call}: I/O error: {text}")]
    Io {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EAGAIN: temporarily unavailable; may succeed later.
    #[error("{call}: temporarily unavailable: {text}")]
    TryAgain {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// EALREADY: already done (e.g. EAL initialised by someone else in this process).
    #[error("{call}: already done: {text}")]
    Already {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// ENOENT: not found (e.g. not enough mbufs in the pool for a bulk allocation).
    #[error("{call}: not found: {text}")]
    NotFound {
        /// The DPDK function that failed.
        call: &'static str,
        /// `rte_strerror` text.
        text: String,
    },
    /// Any other errno (including DPDK's own `E_RTE_SECONDARY`, `E_RTE_NO_CONFIG`).
    #[error("{call}: error {errno}: {text}")]
    Other {
        /// The DPDK function that failed.
        call: &'static str,
        /// The errno value.
        errno: i32,
        /// `rte_strerror` text.
        text: String,
    },
    /// The mempool has fewer free mbufs than requested (hot path: carries no data).
    #[error("mempool exhausted")]
    PoolExhausted,
    /// The port is already owned by a live [`crate::Port`].
    #[error("port {port} is already configured by a live Port")]
    PortInUse {
        /// The port id.
        port: u16,
    },
    /// A handle for this queue already exists.
    #[error("port {port} queue {queue}: a handle for this queue already exists")]
    QueueInUse {
        /// The port id.
        port: u16,
        /// The queue id.
        queue: u16,
    },
    /// `rte_flow_*` refused or failed a rule. `message` is the PMD's `rte_flow_error` text
    /// (e.g. TAP's "item not supported"), or `rte_strerror(errno)` when the PMD gave none.
    #[error("{call}: {message} (errno {errno})")]
    Flow {
        /// The DPDK function that failed (`rte_flow_validate`, `rte_flow_create`).
        call: &'static str,
        /// The positive errno value (`ENOTSUP` for a rule the device cannot do, `EINVAL`,
        /// `ENOSYS` for a driver without rte_flow, …).
        errno: i32,
        /// What the PMD said.
        message: String,
    },
    /// The port cannot be stopped while RX/TX queue handles exist (workers still polling).
    #[error("port {port}: queue handles still exist; drop them before stopping the port")]
    QueuesInUse {
        /// The port id.
        port: u16,
    },
}

impl DpdkError {
    /// Maps an errno value (positive) returned by `call` to its variant, with `rte_strerror`'s
    /// text.
    #[must_use]
    pub fn from_errno(call: &'static str, errno: i32) -> Self {
        let errno = errno.abs();
        let text = strerror(errno);
        match errno {
            errno::ENODEV => Self::NoDevice { call, text },
            errno::EINVAL => Self::InvalidArgument { call, text },
            errno::ENOMEM => Self::OutOfMemory { call, text },
            errno::EEXIST => Self::AlreadyExists { call, text },
            errno::ENOSPC => Self::NoSpace { call, text },
            errno::ENOTSUP => Self::NotSupported { call, text },
            errno::EBUSY => Self::Busy { call, text },
            errno::EPERM | errno::EACCES => Self::PermissionDenied { call, text },
            errno::EIO => Self::Io { call, text },
            errno::EAGAIN => Self::TryAgain { call, text },
            errno::EALREADY => Self::Already { call, text },
            errno::ENOENT => Self::NotFound { call, text },
            _ => Self::Other { call, errno, text },
        }
    }

    /// The error built from the calling thread's `rte_errno`.
    #[must_use]
    pub fn from_rte_errno(call: &'static str) -> Self {
        Self::from_errno(call, rte_errno())
    }

    /// The errno value, for variants that came from DPDK.
    #[must_use]
    pub fn errno(&self) -> Option<i32> {
        Some(match self {
            Self::NoDevice { .. } => errno::ENODEV,
            Self::InvalidArgument { .. } => errno::EINVAL,
            Self::OutOfMemory { .. } => errno::ENOMEM,
            Self::AlreadyExists { .. } => errno::EEXIST,
            Self::NoSpace { .. } => errno::ENOSPC,
            Self::NotSupported { .. } => errno::ENOTSUP,
            Self::Busy { .. } => errno::EBUSY,
            Self::PermissionDenied { .. } => errno::EPERM,
            Self::Io { .. } => errno::EIO,
            Self::TryAgain { .. } => errno::EAGAIN,
            Self::Already { .. } => errno::EALREADY,
            Self::NotFound { .. } => errno::ENOENT,
            Self::Other { errno, .. } | Self::Flow { errno, .. } => *errno,
            _ => return None,
        })
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what,
            reason: reason.into(),
        }
    }
}

/// The calling thread's `rte_errno`.
#[must_use]
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { sys::_rte_errno() }
}

/// `rte_strerror(errno)` as an owned string.
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any value and returns a NUL-terminated string, either static
    // or in a thread-local buffer that stays valid until the next call on this thread; we copy
    // it out immediately.
    unsafe { c_str_to_string(sys::rte_strerror(errno)) }
}

/// Copies a C string into a `String` (lossy), or returns an empty string for NULL
/// (capsule's `AsStr`).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string valid for the duration of the call.
pub(crate) unsafe fn c_str_to_string(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-null and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// A `CString` from a Rust string, rejecting interior NUL bytes.
pub(crate) fn to_c_string(what: &'static str, s: &str) -> Result<CString, DpdkError> {
    CString::new(s).map_err(|_| DpdkError::invalid(what, format!("{s:?} contains a NUL byte")))
}

/// A return code that becomes a `Result` (capsule `core/src/ffi.rs`). Every FFI return code in
/// this crate goes through it.
pub(crate) trait ToResult: Sized {
    /// The success value.
    type Ok;
    /// Converts, naming the DPDK function that produced `self`.
    fn to_result(self, call: &'static str) -> Result<Self::Ok, DpdkError>;
}

/// The ethdev convention: `>= 0` is success, a negative value is `-errno`.
impl ToResult for i32 {
    type Ok = u32;
    fn to_result(self, call: &'static str) -> Result<u32, DpdkError> {
        u32::try_from(self).map_err(|_| DpdkError::from_errno(call, self))
    }
}

/// A pointer: NULL is failure with the reason in `rte_errno`.
impl<T> ToResult for *mut T {
    type Ok = NonNull<T>;
    fn to_result(self, call: &'static str) -> Result<NonNull<T>, DpdkError> {
        NonNull::new(self).ok_or_else(|| DpdkError::from_rte_errno(call))
    }
}

/// The EAL convention: a negative value (`-1`) is failure with the reason in `rte_errno`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrnoRc(pub(crate) i32);

impl ToResult for ErrnoRc {
    type Ok = u32;
    fn to_result(self, call: &'static str) -> Result<u32, DpdkError> {
        u32::try_from(self.0).map_err(|_| DpdkError::from_rte_errno(call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_named_variants_with_text() {
        let e = DpdkError::from_errno("rte_eth_dev_configure", -19);
        assert!(matches!(
            e,
            DpdkError::NoDevice {
                call: "rte_eth_dev_configure",
                ..
            }
        ));
        assert_eq!(e.errno(), Some(19));
        let text = e.to_string();
        assert!(
            text.starts_with("rte_eth_dev_configure: no such device: "),
            "{text}"
        );
        assert!(text.len() > "rte_eth_dev_configure: no such device: ".len());

        assert!(matches!(
            DpdkError::from_errno("x", 22),
            DpdkError::InvalidArgument { .. }
        ));
        assert!(matches!(
            DpdkError::from_errno("x", 95),
            DpdkError::NotSupported { .. }
        ));
        let other = DpdkError::from_errno("x", 1002);
        assert_eq!(other.errno(), Some(1002));
        assert!(matches!(other, DpdkError::Other { errno: 1002, .. }));
        assert_eq!(DpdkError::PoolExhausted.errno(), None);
    }

    #[test]
    fn to_result_follows_each_convention() {
        assert_eq!(3i32.to_result("f"), Ok(3));
        assert!(matches!(
            (-12i32).to_result("f"),
            Err(DpdkError::OutOfMemory { call: "f", .. })
        ));

        // SAFETY: writes the thread-local rte_errno.
        unsafe { sys::_rte_set_errno(17) };
        assert!(matches!(
            ErrnoRc(-1).to_result("g"),
            Err(DpdkError::AlreadyExists { call: "g", .. })
        ));
        assert_eq!(ErrnoRc(5).to_result("g"), Ok(5));
        let null: *mut u8 = std::ptr::null_mut();
        assert!(matches!(
            null.to_result("h"),
            Err(DpdkError::AlreadyExists { call: "h", .. })
        ));
        let mut x = 0u8;
        assert!((&mut x as *mut u8).to_result("h").is_ok());
    }

    #[test]
    fn c_strings_reject_nul() {
        assert!(to_c_string("name", "ok").is_ok());
        assert!(matches!(
            to_c_string("name", "a\0b"),
            Err(DpdkError::InvalidInput { what: "name", .. })
        ));
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { c_str_to_string(std::ptr::null()) }, "");
    }
}
