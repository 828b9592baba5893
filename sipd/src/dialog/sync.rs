//! Atomics used by the slot protocol: `std` normally, `loom`'s model-checked ones under
//! `--cfg loom`, so the same protocol code runs in both.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};

/// Start fetching the cache line of `value` without waiting for it. A key's control word, its
/// probe hint and its payload are three independent lines (usually none in cache for a new
/// call); asking for the payload as soon as the home bucket is known overlaps its miss with
/// the others instead of taking it after them, at the payload stores (which the claim's fence
/// then waits for) or at the key compare. A hint only: it never faults and changes no value.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in the target's
    // baseline); a prefetch reads nothing into the program and never faults, and the address
    // is a live reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast::<i8>(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}
