//! Atomics used by the slot protocol: `std` normally, `loom`'s model-checked ones under
//! `--cfg loom`, so the same protocol code runs in both.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};
