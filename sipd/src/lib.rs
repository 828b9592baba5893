//! sipd: a kernel-bypass SIP packet processor.
//!
//! - [`sip`]: zero-copy SIP message parser with SIMD header scanning and typed header views.
//! - [`proxy`]: the sans-IO stateless proxy core.
//! - [`registrar`]: registrar, location service, redirect server and digest authentication.
//!
//! The protocol logic is sans-IO: it takes bytes (and `now`) and returns what to do; the drivers that
//! own sockets and AF_XDP rings are thin.

pub mod cli;
pub mod proxy;
pub mod registrar;
pub mod sip;
