//! A safe cache prefetch hint for the data plane's burst stages.
//!
//! The relay hands a burst's packets over in two stages (as VPP's graph nodes and DPDK's
//! l3fwd do): first every packet's per-leg state is asked for, then each packet is handled,
//! so that the burst's cache misses overlap instead of coming one after another. Asking is
//! a prefetch instruction: it loads nothing into a register, cannot fault and changes no
//! state, so it costs one instruction where a touching load would cost a load and a use.
//!
//! The intrinsic is `unsafe` only because it takes a raw pointer; this crate wraps it for
//! references, so that the data-plane crates stay `#![forbid(unsafe_code)]`.

#![no_std]

/// Hints that `*r` will be read soon: the cache line holding its first byte is brought into
/// every cache level (`PREFETCHT0` on x86-64). A no-op on other architectures.
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 only hints the cache; it never faults, whatever the address, and
    // reads or writes no memory the program can observe. `r` is a valid reference anyway.
    // SSE, which the intrinsic requires, is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            core::ptr::from_ref(r).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefetching_changes_nothing() {
        let v = [1u64, 2, 3];
        super::prefetch(&v[1]);
        super::prefetch(&v);
        assert_eq!(v, [1, 2, 3]);
    }
}
