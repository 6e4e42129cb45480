//! A counting global allocator: [`Counting`] forwards every call to [`System`] and counts
//! allocations (`alloc`, `alloc_zeroed`, and `realloc`, which may move a block) and
//! deallocations in process-wide atomics. A benchmark installs it with
//!
//! ```
//! #[global_allocator]
//! static ALLOC: alloc_count::Counting = alloc_count::Counting;
//! # fn main() {
//! let before = alloc_count::allocations();
//! let v = std::hint::black_box(vec![1u8; 64]);
//! assert!(alloc_count::allocations() > before);
//! # drop(v);
//! # }
//! ```
//!
//! and reads [`allocations`] before and after the code it checks (the perf suite's
//! `relay-core` scenario: the relay's per-packet path must not allocate). The counters count
//! every thread's allocations; measure with the other threads idle.
//!
//! The counting costs one relaxed atomic add per call, so it suits benchmarks and tests, not
//! production builds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static DEALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// The counting allocator (a unit struct: install it as `#[global_allocator]`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `Counting` upholds `GlobalAlloc`'s contract exactly as `System` does; the counters are
// atomics and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size), which
        // is `System::alloc`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        DEALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller passes a block this allocator (that is, `System`) returned,
        // with its layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller passes a block `System` returned, its layout and a valid new
        // size, which is `System::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[inline]
fn count(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
}

/// Allocations (including reallocations) since the process started, all threads.
#[must_use]
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Deallocations since the process started, all threads.
#[must_use]
pub fn deallocations() -> u64 {
    DEALLOCATIONS.load(Ordering::Relaxed)
}

/// Bytes requested by allocations and reallocations since the process started.
#[must_use]
pub fn allocated_bytes() -> u64 {
    BYTES.load(Ordering::Relaxed)
}

/// What a closure allocated: the allocation count before and after it (all threads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted<T> {
    /// The closure's result.
    pub value: T,
    /// Allocations and reallocations during the closure.
    pub allocations: u64,
    /// Bytes they requested.
    pub bytes: u64,
}

/// Runs `f` and counts the allocations made while it ran (by any thread). Counts only when
/// [`Counting`] is the global allocator; otherwise the counts stay 0.
pub fn count_in<T>(f: impl FnOnce() -> T) -> Counted<T> {
    let (a, b) = (allocations(), allocated_bytes());
    let value = f();
    Counted {
        value,
        allocations: allocations() - a,
        bytes: allocated_bytes() - b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOC: Counting = Counting;

    // The test harness runs tests on several threads; the counters are process-wide, so
    // the tests assert lower bounds (what their own closure did at least), except where
    // nothing else can run at once (a single test holding the lock below).
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn counts_boxes_vecs_and_reallocations() {
        let _g = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let c = count_in(|| {
            let b = std::hint::black_box(Box::new([7u8; 100]));
            let mut v: Vec<u64> = std::hint::black_box(Vec::with_capacity(1));
            for x in 0..2 {
                v.push(x); // the second grows it: a realloc
            }
            std::hint::black_box(&v);
            b[0]
        });
        assert_eq!(c.value, 7);
        assert!(c.allocations >= 3, "{c:?}");
        assert!(c.bytes >= 100 + 8, "{c:?}");
    }

    #[test]
    fn no_allocation_counts_zero() {
        let _g = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut buf = [0u8; 64];
        // Retry: another test thread may allocate in the same window.
        let zero = (0..100).any(|_| {
            count_in(|| {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = i as u8;
                }
                std::hint::black_box(&buf);
            })
            .allocations
                == 0
        });
        assert!(zero);
    }

    #[test]
    fn zeroed_memory_is_zero_and_freed_blocks_are_counted() {
        let _g = SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let d0 = deallocations();
        let v = std::hint::black_box(vec![0u32; 1000]);
        assert!(v.iter().all(|&x| x == 0));
        drop(v);
        assert!(deallocations() > d0);
    }
}
