//! sipd: a kernel-bypass SIP packet processor.
//!
//! - [`sip`]: zero-copy SIP message parser with SIMD header scanning and typed header views.
//! - [`proxy`]: the sans-IO stateless proxy core (RFC 3261 §16 with §16.11), groups and health.
//! - [`registrar`]: registrar and location service, redirect server, digest authentication.
//! - [`dialog`]: lock-free dialog table shared by all workers (call state, trunk limits, call records).
//! - [`load`]: the SIP load generator (`sipd load uac|uas|blast`).
//! - [`xdp`], [`afxdp`], [`wire`]: the kernel-bypass datapath (XDP steering program loader,
//!   AF_XDP workers pinned per queue, Ethernet/IP/UDP views and checksums).
//! - [`socket`]: the kernel-socket backend (batched UDP workers, SIP over TCP) around the core.
//! - [`config`], [`admin`], [`logging`], [`runtime`]: the daemon (`sipd run`) and its operations.
//! - [`cli`]: subcommands of the `sipd` binary.
//!
//! The protocol logic is sans-IO: it takes bytes (and `now`) and returns what to do; the drivers
//! that own sockets and AF_XDP rings are thin.

pub mod admin;
pub mod afxdp;
pub mod cli;
pub mod cli_reflect;
pub mod config;
pub mod dialog;
pub mod load;
pub mod logging;
pub mod proxy;
pub mod registrar;
pub mod runtime;
pub mod sip;
pub mod socket;
pub mod wire;
pub mod xdp;
