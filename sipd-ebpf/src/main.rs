//! The sipd XDP program: steers SIP over UDP into AF_XDP sockets, everything else to the kernel.
//!
//! Per frame: Ethernet (with at most one 802.1Q/802.1ad tag) -> IPv4 or IPv6 -> UDP. A datagram
//! whose destination port is in `SIP_PORTS` goes through the per-source guard (block list, allow
//! list, token bucket) and is then redirected to the AF_XDP socket registered in `XSKS` for the
//! frame's RX queue. Everything else is `XDP_PASS`: ARP, ICMP, TCP, other UDP ports, IPv4
//! fragments, IPv6 with extension headers (the fragment header included), frames to a broadcast or
//! multicast MAC. Truncated or inconsistent IP/UDP headers make `try_sipd_xdp` fail, which counts
//! `Malformed` and aborts (the kernel would drop them too; aborts are visible on the
//! `xdp:xdp_exception` tracepoint).
//!
//! Built for `bpfel-unknown-none` by `sipd/build.rs`; on the host this file is an empty binary so
//! `cargo clippy --workspace --all-targets` can still walk the crate.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
#![allow(unsafe_code)]

#[cfg(target_arch = "bpf")]
mod program;

#[cfg(not(target_arch = "bpf"))]
fn main() {}
