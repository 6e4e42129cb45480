//! Safe memory hints for the data plane: a cache prefetch for the relay's burst stage, and
//! transparent huge pages for its leg table.
//!
//! The relay hands a burst's packets over in two stages (as VPP's graph nodes and DPDK's
//! l3fwd do): first every packet's per-leg state is asked for, then each packet is handled,
//! so that the burst's cache misses overlap instead of coming one after another. Asking is
//! a prefetch instruction ([`prefetch`]): it loads nothing into a register, cannot fault and
//! changes no state.
//!
//! A table of 100 000 legs spans some 12 MB: in 4 KiB pages, every packet of a random
//! order misses the TLB as well as the cache. [`advise_huge_pages`] asks the kernel to back
//! such a table with 2 MiB pages (`MADV_HUGEPAGE`; this kernel's transparent huge pages are
//! in `madvise` mode), before it is first touched.
//!
//! Both calls are `unsafe` only because they take raw pointers; this crate wraps them for
//! references, so that the data-plane crates stay `#![forbid(unsafe_code)]`.

use std::ffi::c_void;
use std::ptr::NonNull;

use nix::sys::mman::{madvise, MmapAdvise};

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

/// The transparent huge page size this hint aligns to (x86-64's 2 MiB).
pub const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole 2 MiB pages inside `region` with transparent huge
/// pages (`madvise(MADV_HUGEPAGE)`), best effort: call it on memory not yet touched (a
/// vector's spare capacity), since pages already faulted in stay small until the kernel's
/// background collapse. Returns the bytes advised (0 when the region holds no whole huge
/// page or the kernel refused: transparent huge pages off, or an old kernel).
pub fn advise_huge_pages<T>(region: &[T]) -> usize {
    let start = region.as_ptr() as usize;
    let end = start + std::mem::size_of_val(region);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end / HUGE_PAGE * HUGE_PAGE;
    if last <= first {
        return 0;
    }
    let Some(ptr) = NonNull::new(first as *mut c_void) else {
        return 0;
    };
    // SAFETY: [first, last) lies inside `region`, memory this process owns (a live
    // allocation borrowed for the call), and is page-aligned. MADV_HUGEPAGE changes only how
    // the kernel backs those pages, never their contents or their mapping's validity.
    match unsafe { madvise(ptr, last - first, MmapAdvise::MADV_HUGEPAGE) } {
        Ok(()) => last - first,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetching_changes_nothing() {
        let v = [1u64, 2, 3];
        prefetch(&v[1]);
        prefetch(&v);
        assert_eq!(v, [1, 2, 3]);
    }

    #[test]
    fn huge_page_advice_covers_only_whole_pages_inside_the_region() {
        let small = vec![0u8; 4096];
        assert_eq!(advise_huge_pages(&small), 0);
        let mut big: Vec<u64> = Vec::with_capacity(3 * HUGE_PAGE / 8);
        let advised = advise_huge_pages(big.spare_capacity_mut());
        // One or two whole huge pages fit in 6 MiB wherever it starts; 0 if the kernel
        // has transparent huge pages off.
        assert!(advised == 0 || advised == HUGE_PAGE || advised == 2 * HUGE_PAGE);
        big.resize(3 * HUGE_PAGE / 8, 7);
        assert!(big.iter().all(|&x| x == 7));
    }
}
