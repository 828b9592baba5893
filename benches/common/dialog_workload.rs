//! The dialog workload's keys, shared by the dialog bench (beside dashmap and papaya) and
//! `sipd/examples/dialog_ops.rs` (its instruction-count twin), so both run the same calls.
// Each user takes what it needs of this module.
#![allow(dead_code)]

use std::hash::{BuildHasherDefault, Hasher};

use std::hint::black_box;

use sipd::dialog::{CallKey, DialogKey, DialogTable, Tag};

/// How many confirmed calls are up while a workload runs, and the table's capacity for them.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub name: &'static str,
    pub live: u64,
    pub capacity: usize,
}

/// 100,000 calls up, 2^18 buckets (16 MiB): each structure fits this machine's 32 MiB
/// last-level cache, so a store timed on its own runs from cache.
pub const CACHED: Scale = Scale {
    name: "cached",
    live: 100_000,
    capacity: 1 << 18,
};

/// A carrier's table: 2 million calls up, 2^22 buckets (256 MiB for the table, as much for each
/// map), far larger than the caches: a new call's line comes from memory.
pub const CARRIER: Scale = Scale {
    name: "carrier",
    live: 2_000_000,
    capacity: 1 << 22,
};

/// Calls come from this many trunks.
pub const TRUNKS: u64 = 16;

/// Hasher for keys that are already uniform hashes.
#[derive(Default, Clone)]
pub struct PreHashed(u64);
impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = ((v as u64) ^ ((v >> 64) as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
pub type Bh = BuildHasherDefault<PreHashed>;

/// What the maps store per call (the table keeps the same and more in its slot).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct Val {
    pub state: u8,
    pub trunk: u32,
    pub start: u64,
    pub answer: u64,
    pub last: u64,
    pub to: u64,
}

impl Val {
    /// A call just invited at `now` (what an INVITE stores).
    pub fn invited(k: &K, now: u64) -> Val {
        Val {
            state: 0,
            trunk: k.4,
            start: now,
            last: now,
            ..Val::default()
        }
    }

    /// A call answered at `now` (the live calls the runs keep, and the insert-only workloads).
    pub fn confirmed(k: &K, now: u64) -> Val {
        Val {
            state: 2,
            trunk: k.4,
            start: now,
            answer: now,
            last: now,
            to: k.1.get(),
        }
    }
}

/// splitmix64's finaliser: cheap (the same cost for every store), uniform output.
pub fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One call: its key, its dialog's To tag, the dialog key, the maps' key, the trunk.
pub type K = (CallKey, Tag, DialogKey, u128, u32);

/// Call `n` of key set `set` (sets never overlap).
#[inline]
pub fn key(set: u64, n: u64) -> K {
    let x = set << 48 | n;
    let cid = mix(x);
    let from = Tag::from_hash(mix(!x));
    let call = CallKey::from_hashes(cid, from);
    let to = Tag::from_hash(cid.rotate_left(17));
    (
        call,
        to,
        call.dialog(to),
        (cid as u128) << 64 | from.get() as u128,
        (n % TRUNKS) as u32,
    )
}

/// One call's life on the table: INVITE, 180, 200, lookup, in-dialog request, BYE.
#[inline(always)]
pub fn table_life(t: &DialogTable, k: &K, now: u64) {
    black_box(t.on_invite(k.0, k.4, "", "", now).is_ok());
    black_box(t.on_response(k.0, Some(k.1), 180, now + 1));
    black_box(t.on_response(k.0, Some(k.1), 200, now + 2));
    black_box(t.lookup(k.2));
    black_box(t.touch(k.2, now + 3));
    black_box(t.on_bye(k.2, now + 4));
}

/// Calls per group in [`table_lives_prefetched`]: a received batch holds up to 64 messages.
pub const PREFETCH_GROUP: usize = 16;

/// Call lives the way a worker handles a received batch (`Proxy::look_ahead`): the table is
/// first asked to load every call's line (`prefetch`), then each call lives as in
/// [`table_life`]. The lines' misses overlap each other and the lives before them.
#[inline(always)]
pub fn table_lives_prefetched(t: &DialogTable, calls: &[K], now: u64) {
    for group in calls.chunks(PREFETCH_GROUP) {
        for k in group {
            t.prefetch(k.0);
        }
        for k in group {
            table_life(t, k, now);
        }
    }
}

/// The dashmap peer.
pub type Dash = dashmap::DashMap<u128, Val, Bh>;

/// The same life on the dashmap peer: insert, two updates (state, To tag, answer and activity
/// times), a read, an activity update, remove.
#[inline(always)]
pub fn dash_life(m: &Dash, k: &K, now: u64) {
    m.insert(k.3, Val::invited(k, now));
    if let Some(mut v) = m.get_mut(&k.3) {
        v.state = 1;
        v.to = k.1.get();
        v.last = now + 1;
    }
    if let Some(mut v) = m.get_mut(&k.3) {
        v.state = 2;
        v.answer = now + 2;
        v.last = now + 2;
    }
    black_box(m.get(&k.3).map(|v| *v));
    if let Some(mut v) = m.get_mut(&k.3) {
        v.last = now + 3;
    }
    black_box(m.remove(&k.3));
}
