//! sipd: a kernel-bypass SIP packet processor.
//!
//! - [`sip`]: zero-copy SIP message parser with SIMD header scanning and typed header views.
//!
//! The protocol logic is sans-IO: it takes bytes (and `now`) and returns what to do; the drivers that
//! own sockets and AF_XDP rings are thin.

pub mod afxdp;
pub mod cli_reflect;
pub mod sip;
pub mod wire;
pub mod xdp;
