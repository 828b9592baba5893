//! The XDP program lives in `src/main.rs` (built for `bpfel-unknown-none`); this library is empty so
//! the crate can be a build-dependency of `sipd` (aya-build's layout).
#![no_std]
