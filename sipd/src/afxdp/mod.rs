//! AF_XDP workers: one socket, one UMEM and one pinned thread per RX queue.
//!
//! # Frame ownership
//!
//! Every frame of a worker's UMEM is owned by exactly one party at a time, and only the owner
//! touches its bytes:
//!
//! | frame is in                     | owner   | becomes the worker's again when           |
//! |---------------------------------|---------|-------------------------------------------|
//! | the fill ring                   | kernel  | it comes back on the RX ring (received)   |
//! | the RX batch being handled      | worker  | (it is the worker's)                      |
//! | the free TX pool                | worker  | (it is the worker's)                      |
//! | the TX ring                     | kernel  | it comes back on the completion ring      |
//!
//! At start the UMEM's frames are split in two: `fill_frames` go to the fill ring, the rest form
//! the free TX pool. A received frame is handed to the [`FrameHandler`] read-only together with a
//! frame taken from the TX pool to write into; after the batch the received frames all go straight
//! back to the fill ring (the handler copied what it needed), and the TX frames that carry a
//! datagram are produced on the TX ring, the others return to the pool. Completed TX frames return
//! to the pool. Frames never move between the two halves, so the fill ring can always take back a
//! whole RX batch and the TX ring (as large as the pool) can always take a whole TX batch.
//! Nothing here allocates per packet; the only syscalls are `sendto` kicks when the kernel asks
//! for them (`needs_wakeup`; in copy mode that is every TX batch, and again while frames are left
//! on the ring: copy mode sends at most 32 per kick), `poll` when idle and a `getsockopt` for the kernel's drop counters four times a second.
//!
//! The `unsafe` in this module is the xsk-rs ring and UMEM API, whose contract is the table above.

#![allow(unsafe_code)]

pub mod neigh;
pub mod proxy_frames;
pub mod reflect;
mod worker;

use std::net::SocketAddr;

pub use neigh::{NeighbourCache, NeighbourTable, NextHop, NoNeighbours};
pub use worker::{
    BindMode, Worker, WorkerConfig, WorkerError, WorkerStats, WorkerStatsSnapshot, ZeroCopy,
};

/// What the protocol core decided about one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the `len` bytes written at the start of `tx_payload` to `to`, from the address the
    /// datagram arrived at (same family as `to`).
    Send {
        /// Destination address and port.
        to: SocketAddr,
        /// Payload length written into `tx_payload`.
        len: usize,
    },
    /// Send nothing.
    Drop,
}

/// The sans-IO hook the AF_XDP worker drives: a function of time and one datagram.
///
/// `payload` is the received UDP payload (read-only, it lives in the RX frame); `tx_payload` is the
/// payload area of a free TX frame, placed for a reply of the same IP family and VLAN tagging as
/// the received frame ([`crate::wire::frame::payload_offset`]). It never touches a socket.
pub trait FrameHandler {
    /// Called for every datagram of a received batch, in order, before the batch's `handle`
    /// calls: a chance to start loading what `handle` will need (the proxy prefetches the
    /// dialog table's line for the Call-ID). It must not change what `handle` does. The
    /// default does nothing.
    fn look_ahead(&mut self, _payload: &[u8]) {}

    /// Handles one datagram from `src` to `dst` received at `now_ms` (milliseconds on the
    /// worker's monotonic clock, shared by all workers started with the same epoch).
    fn handle(
        &mut self,
        now_ms: u64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        tx_payload: &mut [u8],
    ) -> Verdict;
}
