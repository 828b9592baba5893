//! `sipd load`: the built-in SIP load generator.
//!
//! Three roles, each a sans-IO state machine (an [`Endpoint`]) driven by a thin I/O loop:
//! - [`uac::Uac`] places calls (INVITE, 1xx, 200, ACK, hold, BYE, 200) or sends REGISTER /
//!   OPTIONS transactions, retransmits per RFC 3261 timers, times calls out (Timer B/F) and
//!   records latencies in HDR histograms;
//! - [`uas::Uas`] answers: 180 + 200 to INVITE (retransmitting the 2xx until ACK, RFC 3261
//!   §13.3.1.4, and answering retransmitted INVITEs with its last response), 200 to BYE, OPTIONS,
//!   REGISTER;
//! - [`blast::Blast`] floods distinct, valid requests statelessly, for pure forwarding throughput.
//!
//! An endpoint never touches a socket or a clock: the driver passes `now` (microseconds on the
//! run's monotonic clock) and the received bytes, and the endpoint writes the datagrams to send
//! into a [`TxBatch`]. The driver ([`runner`]) moves batches through a [`io::Datapath`] (batched
//! `sendmmsg`/`recvmmsg` on a UDP socket today; AF_XDP plugs in behind the same trait), paces new
//! calls with a token bucket, and stops on a duration or a call count.
//!
//! Identities: every call gets its own Call-ID, From tag and branches, built from a per-worker
//! run id and a call number, so concurrent generators and repeated runs never collide. A UAC
//! branch encodes the call's slot (`z9hG4bKld<run>.<slot>.<gen>.<txn>`), so matching a response
//! to its call is a parse of the top Via, not a hash lookup.

pub mod blast;
pub mod build;
pub mod cli;
pub mod digest;
pub mod io;
pub mod runner;
pub mod stats;
pub mod timer;
pub mod uac;
pub mod uas;

use std::net::SocketAddr;

pub use stats::{Report, Stats};

/// Largest datagram the generator writes (our messages are well under 1500 bytes; the slack
/// holds long Record-Route sets echoed into in-dialog requests).
pub const MAX_DATAGRAM: usize = 4096;

/// Datagrams to send, written in place into reused slots (no allocation per message once the
/// batch has grown to its working size).
pub struct TxBatch {
    buf: Vec<u8>,
    items: Vec<(SocketAddr, usize)>,
}

impl Default for TxBatch {
    fn default() -> Self {
        Self::with_capacity(64)
    }
}

impl TxBatch {
    pub fn with_capacity(slots: usize) -> Self {
        TxBatch {
            buf: vec![0; slots * MAX_DATAGRAM],
            items: Vec::with_capacity(slots),
        }
    }

    /// Writes one datagram for `to` with `f`, which returns the length written or `None` (the
    /// message did not fit: nothing is queued). Returns whether a datagram was queued.
    pub fn push(&mut self, to: SocketAddr, f: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        let i = self.items.len();
        if self.buf.len() < (i + 1) * MAX_DATAGRAM {
            self.buf.resize((i + 1) * MAX_DATAGRAM * 2, 0);
        }
        let slot = &mut self.buf[i * MAX_DATAGRAM..(i + 1) * MAX_DATAGRAM];
        match f(slot) {
            Some(len) if len <= MAX_DATAGRAM => {
                self.items.push((to, len));
                true
            }
            _ => false,
        }
    }

    /// Queues a copy of `bytes`.
    pub fn push_bytes(&mut self, to: SocketAddr, bytes: &[u8]) -> bool {
        self.push(to, |slot| {
            let dst = slot.get_mut(..bytes.len())?;
            dst.copy_from_slice(bytes);
            Some(bytes.len())
        })
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Datagram `i`: destination and bytes.
    pub fn get(&self, i: usize) -> (SocketAddr, &[u8]) {
        let (to, len) = self.items[i];
        (to, &self.buf[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len])
    }

    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        (0..self.items.len()).map(|i| self.get(i))
    }

    /// Forgets the first `n` datagrams (they were sent), keeping the rest in order.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.items.len());
        if n == self.items.len() {
            self.items.clear();
            return;
        }
        let rest = self.items.len() - n;
        self.buf
            .copy_within(n * MAX_DATAGRAM..(n + rest) * MAX_DATAGRAM, 0);
        self.items.drain(..n);
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }
}

/// A role's sans-IO state machine.
pub trait Endpoint {
    /// One received datagram.
    fn on_datagram(&mut self, now_us: u64, from: SocketAddr, bytes: &[u8], tx: &mut TxBatch);
    /// Fires the timers due at `now_us` (retransmissions, hold, timeouts).
    fn on_timers(&mut self, now_us: u64, tx: &mut TxBatch);
    /// Starts up to `n` new calls (or requests); returns how many were started. Roles that only
    /// answer return 0.
    fn start(&mut self, now_us: u64, n: u64, tx: &mut TxBatch) -> u64;
    /// The earliest pending timer.
    fn next_deadline(&self) -> Option<u64>;
    /// Calls (or transactions) started and not finished yet.
    fn active(&self) -> usize;
    fn stats(&self) -> &Stats;
    fn stats_mut(&mut self) -> &mut Stats;
}

/// RFC 3261 timer values (§17.1.1.1 T1, T2), scalable for tests.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate: first retransmission interval.
    pub t1_us: u64,
    /// Cap of the non-INVITE and 2xx retransmission interval.
    pub t2_us: u64,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1_us: 500_000,
            t2_us: 4_000_000,
        }
    }
}

impl Timers {
    /// Timer B / F / H: 64 * T1 (32 s by default).
    pub fn transaction_timeout(&self) -> u64 {
        64 * self.t1_us
    }

    /// T1 scaled so that Timer B is `timeout_us`, T2 keeping its ratio to T1 (8x).
    pub fn with_timeout(timeout_us: u64) -> Self {
        let t1 = (timeout_us / 64).max(1);
        Timers {
            t1_us: t1,
            t2_us: t1 * 8,
        }
    }
}

/// A per-worker identifier that makes Call-IDs, tags and branches unique across workers,
/// processes and runs.
pub fn run_id(worker: usize) -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&nanos.to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&(worker as u64).to_le_bytes());
    // Top bit set: every run id prints as 8 hex digits.
    (h.digest() as u32) | 0x8000_0000
}

#[cfg(test)]
mod sim_tests;
