//! Types shared by the XDP program (`sipd-ebpf`) and userspace (`sipd`).
//!
//! Everything here is `#[repr(C)]` plain data so both sides agree on the layout of map keys and
//! values byte for byte.
#![no_std]

/// Default SIP port (RFC 3261 §19.1.2).
pub const SIP_DEFAULT_PORT: u16 = 5060;
