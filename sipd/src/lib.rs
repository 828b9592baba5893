//! sipd: a kernel-bypass SIP packet processor.
//!
//! - [`sip`]: zero-copy SIP message parser with SIMD header scanning and typed header views.
//! - [`socket`]: the kernel-socket backend (batched UDP workers, SIP over TCP) around the core.
//!
//! The protocol logic is sans-IO: it takes bytes (and `now`) and returns what to do; the drivers that
//! own sockets and AF_XDP rings are thin.

pub mod admin;
pub mod cli;
pub mod config;
pub mod logging;
pub mod proxy;
pub mod sip;
pub mod socket;
pub mod runtime;
