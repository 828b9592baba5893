//! The table's slot array (control words and payloads) in zeroed memory, backed by
//! 2 MiB pages when they are that large.
//!
//! Every dialog event lands on a random slot of arrays that are far larger than the TLB covers
//! with 4 KiB pages (a 10-million-dialog table is about 1 GB), so with small pages most events
//! pay a page walk on top of their cache misses: in a VM a two-dimensional one. Transparent huge
//! pages are asked for with `madvise(MADV_HUGEPAGE)` (the common `madvise` THP setting gives
//! them to nothing else) and the pages are faulted in when the table is built, so no worker
//! takes a 2 MiB page-zeroing fault on its hot path. Without THP the arrays still work, on small
//! pages. Small arrays (tests, small tables) come from the heap.
//!
//! Only types whose all-zero bytes are a valid value live here ([`ZeroValid`]): the table's
//! initial state is all zeros (EMPTY control words with zero probe hints, zero payloads). Under `loom`
//! the arrays are plain boxes of loom atomics (those are not plain memory).

#[cfg(not(loom))]
pub(crate) use mapped::{Region as Slab, slab};

#[cfg(loom)]
pub(crate) type Slab<T> = Box<[T]>;

/// `n` values made by `make`, which must give the all-zero value (what `Region` starts with).
#[cfg(loom)]
pub(crate) fn slab<T>(n: usize, make: impl FnMut() -> T) -> Slab<T> {
    std::iter::repeat_with(make).take(n).collect()
}

/// Asks the CPU to start loading `value`'s (first) cache line into all cache levels, and returns
/// at once (a no-op where there is no prefetch instruction we use).
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults and changes no memory; `value` is a
    // reference, so the address is valid anyway.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(not(loom))]
#[allow(unsafe_code)]
mod mapped {
    use std::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
    use std::ops::Deref;
    use std::ptr::NonNull;
    use std::sync::atomic::AtomicU64;

    use super::super::slot::Payload;

    const HUGE_PAGE: usize = 2 << 20;
    const PAGE: usize = 4096;

    /// Types for which all-zero bytes are a valid value and which need no drop.
    ///
    /// # Safety
    /// Implement only for such types.
    pub(crate) unsafe trait ZeroValid: Sync {}
    // SAFETY: an atomic integer has the layout of its integer; zero is a valid value.
    unsafe impl ZeroValid for AtomicU64 {}
    // SAFETY: `Payload` is `repr(C)` of `AtomicU64` fields only (and alignment padding).
    unsafe impl ZeroValid for Payload {}

    /// `n` zero values. `_make` (which gives the zero value) is for the `loom` build's boxes.
    pub(crate) fn slab<T: ZeroValid>(n: usize, _make: impl FnMut() -> T) -> Region<T> {
        Region::zeroed(n)
    }

    enum Backing {
        /// The whole anonymous mapping (the array starts at its first 2 MiB boundary).
        Mapped {
            base: *mut libc::c_void,
            bytes: usize,
        },
        Heap(Layout),
        /// Zero bytes: nothing allocated.
        None,
    }

    /// A fixed array of `T` in zero-initialised memory of its own.
    pub(crate) struct Region<T> {
        ptr: NonNull<T>,
        len: usize,
        backing: Backing,
    }

    // SAFETY: a `Region` owns its memory like a `Box<[T]>` does; sharing or sending it shares or
    // sends `T`s, which `ZeroValid: Sync` types (atomics) allow; the raw pointers are only ever
    // used to give the memory back.
    unsafe impl<T: ZeroValid> Sync for Region<T> {}
    // SAFETY: as above.
    unsafe impl<T: ZeroValid> Send for Region<T> {}

    impl<T: ZeroValid> Region<T> {
        pub(crate) fn zeroed(len: usize) -> Self {
            const { assert!(!std::mem::needs_drop::<T>()) };
            let layout = Layout::array::<T>(len).expect("dialog table size overflows");
            if layout.size() == 0 {
                return Region {
                    ptr: NonNull::dangling(),
                    len,
                    backing: Backing::None,
                };
            }
            if layout.size() >= HUGE_PAGE
                && let Some(region) = Self::mapped(len, layout.size())
            {
                return region;
            }
            // SAFETY: the layout has a non-zero size (checked above).
            let ptr = unsafe { alloc_zeroed(layout) };
            let Some(ptr) = NonNull::new(ptr.cast::<T>()) else {
                handle_alloc_error(layout)
            };
            Region {
                ptr,
                len,
                backing: Backing::Heap(layout),
            }
        }

        /// An anonymous mapping with room to start the array on a 2 MiB boundary, huge pages
        /// asked for and every page faulted in. None if the kernel refuses the mapping.
        fn mapped(len: usize, size: usize) -> Option<Self> {
            let bytes = size.checked_add(HUGE_PAGE)?;
            // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if base == libc::MAP_FAILED {
                return None;
            }
            let offset = (base as usize).next_multiple_of(HUGE_PAGE) - base as usize;
            // SAFETY: `offset < HUGE_PAGE`, inside the mapping of `size + HUGE_PAGE` bytes.
            let start = unsafe { base.cast::<u8>().add(offset) };
            let touched = size.next_multiple_of(PAGE);
            // SAFETY: `start..start + touched` lies in our mapping (`offset + touched <= bytes`
            // because `offset + size <= bytes` and both ends are page multiples). The advice
            // only changes how the range is backed; failing (THP off) leaves small pages.
            unsafe {
                libc::madvise(start.cast(), touched, libc::MADV_HUGEPAGE);
                if libc::madvise(start.cast(), touched, libc::MADV_POPULATE_WRITE) != 0 {
                    // Older kernels: fault each page in by writing the zero it already holds.
                    for page in (0..touched).step_by(PAGE) {
                        start.add(page).write_volatile(0);
                    }
                }
            }
            Some(Region {
                // The mapping is page aligned, and `T`'s alignment is below a page.
                ptr: NonNull::new(start.cast::<T>())?,
                len,
                backing: Backing::Mapped { base, bytes },
            })
        }
    }

    impl<T> Deref for Region<T> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            // SAFETY: `ptr` points to `len` zero-initialised `T`s (a valid value, `ZeroValid`)
            // that we own until drop, suitably aligned (heap layout, or a 2 MiB boundary); or
            // `len * size_of::<T>()` is zero and `ptr` is dangling but aligned.
            unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
        }
    }

    impl<T> Drop for Region<T> {
        fn drop(&mut self) {
            match self.backing {
                // SAFETY: our own mapping, unmapped once; nothing borrows it past `&mut self`.
                Backing::Mapped { base, bytes } => unsafe {
                    libc::munmap(base, bytes);
                },
                // SAFETY: allocated by `alloc_zeroed` with this layout, freed once.
                Backing::Heap(layout) => unsafe { dealloc(self.ptr.as_ptr().cast(), layout) },
                Backing::None => {}
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::atomic::Ordering::Relaxed;

        #[test]
        fn small_and_huge_regions_start_zeroed_aligned_and_writable() {
            for len in [0, 1, 1000, (HUGE_PAGE / 8) + 3, 3 * HUGE_PAGE / 8] {
                let r = Region::<AtomicU64>::zeroed(len);
                assert_eq!(r.len(), len);
                assert!(r.iter().all(|a| a.load(Relaxed) == 0));
                for (i, a) in r.iter().enumerate().step_by(511) {
                    a.store(i as u64 + 1, Relaxed);
                }
                for (i, a) in r.iter().enumerate().step_by(511) {
                    assert_eq!(a.load(Relaxed), i as u64 + 1);
                }
            }
            let p = Region::<Payload>::zeroed(HUGE_PAGE / 64 + 5);
            assert_eq!(p.as_ptr() as usize % 64, 0);
            assert!(
                p.iter()
                    .all(|s| s.cid.load(Relaxed) == 0 && s.link.load(Relaxed) == 0)
            );
        }
    }
}
