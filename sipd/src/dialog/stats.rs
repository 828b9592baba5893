//! Striped counters: a thread owns one cache-padded stripe while it lives (claimed from a
//! bitmap, given back when the thread exits), so its updates are a plain load and store on a
//! line no other thread writes, no locked instruction. Threads beyond the stripes share one
//! overflow stripe with `fetch_add`. `snapshot` sums the stripes and never blocks a writer.
//!
//! Only events are counted; the gauges are derived when read (calls active = created - ended,
//! early = dialogs created - confirmed - early ones ended, confirmed = confirmed - confirmed ones
//! ended), so a transition updates one counter, not a gauge and a counter.
//! These are plain `std` atomics even under loom: they are metrics, not part of the protocol.

use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use crossbeam_utils::CachePadded;

/// Owned stripes (one bit each in `OWNED`) plus the shared overflow stripe at index `OWNED_MAX`.
const OWNED_MAX: usize = 31;
pub(crate) const STRIPES: usize = OWNED_MAX + 1;
static OWNED: AtomicU32 = AtomicU32::new(0);

thread_local! {
    /// This thread's stripe index, `usize::MAX` until its first update. A `const` thread-local
    /// without a destructor, so reading it is one TLS-relative load with no lazy-registration
    /// check (every counter update reads it); the destructor lives on `OWNER`, set up once.
    static MINE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Gives the stripe back when the thread exits.
struct Owner(usize);
impl Drop for Owner {
    fn drop(&mut self) {
        // Later updates from this thread's other destructors go to the shared stripe: the bit is
        // free for another thread from here on.
        let _ = MINE.try_with(|m| m.set(OWNED_MAX));
        OWNED.fetch_and(!(1 << self.0), Ordering::Release);
    }
}
thread_local! {
    /// Set when the thread claims a stripe; its destructor gives the stripe back.
    static OWNER: Cell<Option<Owner>> = const { Cell::new(None) };
}

/// This thread's stripe (always `< STRIPES`), and whether it owns it (if not: shared, update
/// with `fetch_add`). Also used for the table's per-thread trunk counts.
#[inline]
pub(crate) fn stripe() -> (usize, bool) {
    let v = MINE.with(Cell::get);
    if v < OWNED_MAX {
        return (v, true);
    }
    if v == OWNED_MAX {
        return (OWNED_MAX, false);
    }
    claim_stripe()
}

#[cold]
fn claim_stripe() -> (usize, bool) {
    let mut cur = OWNED.load(Ordering::Relaxed);
    let v = loop {
        let free = (!cur).trailing_zeros() as usize;
        if free >= OWNED_MAX {
            break OWNED_MAX;
        }
        match OWNED.compare_exchange_weak(
            cur,
            cur | (1 << free),
            Ordering::Acquire,
            Ordering::Relaxed,
        ) {
            Ok(_) => break free,
            Err(c) => cur = c,
        }
    };
    let v = if v < OWNED_MAX && OWNER.try_with(|o| o.set(Some(Owner(v)))).is_err() {
        // Thread-locals already torn down: nobody would give the stripe back.
        OWNED.fetch_and(!(1 << v), Ordering::Release);
        OWNED_MAX
    } else {
        v
    };
    MINE.with(|m| m.set(v));
    (v, v < OWNED_MAX)
}

#[derive(Clone, Copy)]
#[repr(usize)]
pub(crate) enum C {
    CallsCreated,
    CallsEnded,
    DialogsCreated,
    DialogsConfirmed,
    /// Dialogs that ended early (never confirmed).
    EarlyEnded,
    /// Dialogs that ended confirmed.
    ConfirmedEnded,
    DialogsExpired,
    DialogsEvicted,
    RefusedFull,
    RefusedTrunk,
    Untracked,
    Retransmissions,
}
const N: usize = 12;

/// Add `v` to a striped counter: a plain load and store when this thread owns the stripe (only
/// the owner writes it; the Release in `Owner::drop` and the Acquire of the next owner's claim
/// order the handover), `fetch_add` on the shared overflow stripe.
#[inline]
pub(crate) fn bump(a: &AtomicI64, owned: bool, v: i64) {
    if owned {
        a.store(a.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
    } else {
        a.fetch_add(v, Ordering::Relaxed);
    }
}

pub(crate) struct Stripes {
    /// A fixed-size array, so indexing with a stripe number needs no bounds check.
    stripes: Box<[CachePadded<[AtomicI64; N]>; STRIPES]>,
}

impl Stripes {
    pub(crate) fn new() -> Self {
        Stripes {
            stripes: Box::new(std::array::from_fn(|_| {
                CachePadded::new(std::array::from_fn(|_| AtomicI64::new(0)))
            })),
        }
    }

    #[inline]
    pub(crate) fn add(&self, c: C, v: i64) {
        self.add_all([(c, v)]);
    }

    /// Several counter changes of one transition, with one stripe lookup.
    #[inline]
    pub(crate) fn add_all<const K: usize>(&self, changes: [(C, i64); K]) {
        let (i, owned) = stripe();
        let stripe = &self.stripes[i % STRIPES];
        for (c, v) in changes {
            bump(&stripe[c as usize], owned, v);
        }
    }

    #[inline]
    pub(crate) fn inc(&self, c: C) {
        self.add(c, 1);
    }

    fn sum(&self, c: C) -> i64 {
        self.stripes
            .iter()
            .map(|s| s[c as usize].load(Ordering::Relaxed))
            .sum()
    }

    pub(crate) fn snapshot(&self) -> DialogStats {
        // Read each event counter once; a gauge is a difference of counters read a moment apart
        // while writers run (clamped at 0), exact when no thread updates the table.
        let [
            calls_created,
            calls_ended,
            dialogs_created,
            dialogs_confirmed,
            early_ended,
            confirmed_ended,
        ] = [
            C::CallsCreated,
            C::CallsEnded,
            C::DialogsCreated,
            C::DialogsConfirmed,
            C::EarlyEnded,
            C::ConfirmedEnded,
        ]
        .map(|c| self.sum(c));
        let gauge = |v: i64| v.max(0) as u64;
        let g = |c| gauge(self.sum(c));
        DialogStats {
            calls_active: gauge(calls_created - calls_ended),
            early: gauge(dialogs_created - dialogs_confirmed - early_ended),
            confirmed: gauge(dialogs_confirmed - confirmed_ended),
            calls_created: gauge(calls_created),
            calls_ended: gauge(calls_ended),
            dialogs_created: gauge(dialogs_created),
            dialogs_confirmed: gauge(dialogs_confirmed),
            dialogs_terminated: gauge(early_ended + confirmed_ended),
            dialogs_expired: g(C::DialogsExpired),
            dialogs_evicted: g(C::DialogsEvicted),
            refused_full: g(C::RefusedFull),
            refused_trunk: g(C::RefusedTrunk),
            untracked: g(C::Untracked),
            retransmissions: g(C::Retransmissions),
        }
    }
}

/// Gauges and counters of the dialog table. Read with [`super::DialogTable::stats`]; a snapshot
/// is exact only when no thread is updating the table (otherwise each number is a recent value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DialogStats {
    /// Gauge: calls (INVITEs) not yet ended; what the trunk limits count.
    pub calls_active: u64,
    /// Gauge: dialogs in the early state.
    pub early: u64,
    /// Gauge: confirmed dialogs (calls up).
    pub confirmed: u64,
    /// Calls created by an INVITE.
    pub calls_created: u64,
    /// Calls ended (for any reason).
    pub calls_ended: u64,
    /// Dialogs created (by a 1xx or 2xx with a To tag).
    pub dialogs_created: u64,
    /// Dialogs that reached the confirmed state.
    pub dialogs_confirmed: u64,
    /// Dialogs ended, for any reason (includes expired and evicted).
    pub dialogs_terminated: u64,
    /// Dialogs ended by the sweeper's timeouts ([`super::DialogTable::expire`]).
    pub dialogs_expired: u64,
    /// Dialogs (and calls without one) ended early by a full probe window that needed room.
    pub dialogs_evicted: u64,
    /// INVITEs refused because the probe window was full of live calls (503).
    pub refused_full: u64,
    /// INVITEs refused by a trunk's concurrent-call limit (503).
    pub refused_trunk: u64,
    /// Dialogs not tracked: no room for a fork, too many forks, or a response for no known call.
    pub untracked: u64,
    /// INVITEs for a call that already exists (retransmissions).
    pub retransmissions: u64,
}

impl DialogStats {
    /// Prometheus text exposition of these numbers (`prefix` e.g. `sipd_dialog`).
    pub fn prometheus(&self, prefix: &str) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "# TYPE {prefix}_active gauge");
        for (state, v) in [("early", self.early), ("confirmed", self.confirmed)] {
            let _ = writeln!(s, "{prefix}_active{{state=\"{state}\"}} {v}");
        }
        let _ = writeln!(s, "# TYPE {prefix}_calls_active gauge");
        let _ = writeln!(s, "{prefix}_calls_active {}", self.calls_active);
        for (name, v) in [
            ("calls_created", self.calls_created),
            ("calls_ended", self.calls_ended),
            ("created", self.dialogs_created),
            ("confirmed", self.dialogs_confirmed),
            ("terminated", self.dialogs_terminated),
            ("expired", self.dialogs_expired),
            ("evicted", self.dialogs_evicted),
            ("refused_full", self.refused_full),
            ("refused_trunk", self.refused_trunk),
            ("untracked", self.untracked),
            ("retransmissions", self.retransmissions),
        ] {
            let _ = writeln!(s, "# TYPE {prefix}_{name}_total counter");
            let _ = writeln!(s, "{prefix}_{name}_total {v}");
        }
        s
    }
}
