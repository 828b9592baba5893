//! sipd: a kernel-bypass SIP packet processor.
//!
//! - [`sip`]: zero-copy SIP message parser with SIMD header scanning and typed header views.
//! - [`dialog`]: lock-free dialog table shared by all workers (call state, trunk limits, call records).
//!
//! The protocol logic is sans-IO: it takes bytes (and `now`) and returns what to do; the drivers that
//! own sockets and AF_XDP rings are thin.

pub mod dialog;
pub mod sip;
