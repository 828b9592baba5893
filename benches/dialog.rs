//! Dialog table vs dashmap and papaya, same run, 1 and 2 threads.
//!
//! - `mixed`: a call's whole life per key — INVITE (insert), 180 (state update), 200 (state
//!   update), lookup, in-dialog request (timer update), BYE (remove): 6 operations per call.
//! - `lookup`: reads of live confirmed calls.
//! - `insert_remove`: insert a batch of calls, then remove them.
//!
//! Every run keeps `LIVE` confirmed calls in the structure so probes see a realistic occupancy.
//! As on a proxy, every call in `mixed` and `insert_remove` has a Call-ID never seen before (keys
//! are derived from a running counter, the same keys for every store), so the table works in its
//! steady state, among the tombstones of the calls before, not on a table that only ever sees the
//! same few slots; and calls come from `TRUNKS` trunks, not all from one. The table also keeps
//! per-trunk call counts and its gauges; the maps only store the trunk in the value (they do less
//! work per call, not more). The maps get a cheap hasher over the already-hashed 128-bit key
//! (their default SipHash would be an unfair handicap); the table's keys are hashed up front too.
//!
//! - `sipd-prefetched`: the table handling the calls 16 at a time as a worker handles a received
//!   batch (`Proxy::look_ahead`): each call's line prefetched first, then the lives. Every
//!   store is given the calls in the same groups; the others handle them one by one.
//! - `floor`: not a map, a yardstick (see [`Floor`]): one random cache line and one CAS per
//!   state change per call, what any lock-free call table pays at least on this machine.
//!
//! `cargo bench -p sipd --bench dialog -- --quick`

use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sipd::dialog::{DialogConfig, DialogTable};

#[path = "common/dialog_workload.rs"]
mod workload;
use workload::{
    Bh, CACHED, CARRIER, K, PREFETCH_GROUP, Scale, Val, dash_life, key, table_life,
    table_lives_prefetched,
};

/// The live calls of the `lookup` and `insert_remove` groups (and of `mixed`).
const LIVE: usize = CACHED.live as usize;
const BATCH: usize = 10_000;

/// Keys of one set.
struct Keys {
    calls: Vec<K>,
}
fn keys(set: u64, n: usize) -> Keys {
    Keys {
        calls: (0..n as u64).map(|i| key(set, i)).collect(),
    }
}

/// Per thread, the next unused call number of its key set (set 1 + thread).
static NEXT: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// `BATCH` calls never used before, for thread `t`.
fn fresh(t: usize) -> impl Iterator<Item = K> + Clone {
    let first = NEXT[t].fetch_add(BATCH as u64, Relaxed);
    (first..first + BATCH as u64).map(move |n| key(1 + t as u64, n))
}

trait Store: Sync {
    fn name(&self) -> &'static str;
    fn life(&self, k: &K, now: u64);
    /// The lives of a group of calls received together: one after the other, unless the store
    /// can do better with the whole group in hand.
    fn lives(&self, group: &[K], now: u64) {
        for k in group {
            self.life(k, now);
        }
    }
    fn insert(&self, k: &K, now: u64);
    fn lookup(&self, k: &K) -> bool;
    fn remove(&self, k: &K, now: u64);
}

/// The dialog table; `prefetched`: handling each group of calls as a worker handles a received
/// batch, every call's line prefetched first (`DialogTable::prefetch`, what `Proxy::look_ahead`
/// does), then the lives. The maps have no such call: their bucket's address is theirs to know.
struct Table {
    table: DialogTable,
    prefetched: bool,
}
impl Store for Table {
    fn name(&self) -> &'static str {
        if self.prefetched {
            "sipd-prefetched"
        } else {
            "sipd"
        }
    }
    fn life(&self, k: &K, now: u64) {
        table_life(&self.table, k, now);
    }
    fn lives(&self, group: &[K], now: u64) {
        if self.prefetched {
            table_lives_prefetched(&self.table, group, now);
        } else {
            group.iter().for_each(|k| table_life(&self.table, k, now));
        }
    }
    fn insert(&self, k: &K, now: u64) {
        black_box(self.table.on_invite(k.0, k.4, "", "", now).is_ok());
        black_box(self.table.on_response(k.0, Some(k.1), 200, now));
    }
    fn lookup(&self, k: &K) -> bool {
        self.table.lookup(k.2).is_some()
    }
    fn remove(&self, k: &K, now: u64) {
        black_box(self.table.on_bye(k.2, now));
    }
}

struct Dash(workload::Dash);
impl Store for Dash {
    fn name(&self) -> &'static str {
        "dashmap"
    }
    fn life(&self, k: &K, now: u64) {
        dash_life(&self.0, k, now);
    }
    fn insert(&self, k: &K, now: u64) {
        self.0.insert(k.3, Val::confirmed(k, now));
    }
    fn lookup(&self, k: &K) -> bool {
        self.0.get(&k.3).map(|v| *v).is_some()
    }
    fn remove(&self, k: &K, _now: u64) {
        black_box(self.0.remove(&k.3));
    }
}

struct Papaya(papaya::HashMap<u128, Val, Bh>);
impl Store for Papaya {
    fn name(&self) -> &'static str {
        "papaya"
    }
    fn life(&self, k: &K, now: u64) {
        let m = self.0.pin();
        m.insert(k.3, Val::invited(k, now));
        m.update(k.3, |v| Val {
            state: 1,
            to: k.1.get(),
            last: now + 1,
            ..*v
        });
        m.update(k.3, |v| Val {
            state: 2,
            answer: now + 2,
            last: now + 2,
            ..*v
        });
        black_box(m.get(&k.3).copied());
        m.update(k.3, |v| Val {
            last: now + 3,
            ..*v
        });
        black_box(m.remove(&k.3).copied());
    }
    fn insert(&self, k: &K, now: u64) {
        self.0.pin().insert(k.3, Val::confirmed(k, now));
    }
    fn lookup(&self, k: &K) -> bool {
        self.0.pin().get(&k.3).copied().is_some()
    }
    fn remove(&self, k: &K, _now: u64) {
        black_box(self.0.pin().remove(&k.3).copied());
    }
}

/// Not a map: the floor under any lock-free call table on this machine, for scale. Each call
/// costs one cache line at a random place in a table of the same size as the dialog table's
/// (a new Call-ID, so a miss), one CAS for each of the four events that change a call's state
/// (INVITE, 180, 200, BYE: workers must agree on each) and plain loads and stores for the
/// rest; no key compare, no probing, no counters (on 4 KiB pages like the maps: 2 MiB pages
/// moved it by less than the run-to-run noise here). The same line is used for every key homed
/// there, so it answers nothing: it is only a measure of what memory and locked instructions
/// cost.
struct Floor(Box<[FloorLine]>);
#[repr(align(64))]
#[derive(Default)]
struct FloorLine([AtomicU64; 8]);
impl Floor {
    fn new(lines: usize) -> Self {
        Floor((0..lines).map(|_| FloorLine::default()).collect())
    }
    #[inline]
    fn line(&self, k: &K) -> &FloorLine {
        &self.0[(((k.3 >> 64) as u64 as u128 * self.0.len() as u128) >> 64) as usize]
    }
    #[inline]
    fn change(a: &AtomicU64, v: u64) {
        let cur = a.load(Relaxed);
        black_box(a.compare_exchange(cur, cur ^ v, SeqCst, Relaxed).is_ok());
    }
}
impl Store for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }
    fn life(&self, k: &K, now: u64) {
        let l = &self.line(k).0;
        Self::change(&l[0], 1);
        l[1].store(now, Relaxed);
        Self::change(&l[0], 2);
        Self::change(&l[0], 4);
        black_box(l[1].load(Relaxed));
        l[2].store(now + 3, Relaxed);
        Self::change(&l[0], 7);
    }
    fn insert(&self, k: &K, now: u64) {
        let l = &self.line(k).0;
        Self::change(&l[0], 1);
        l[1].store(now, Relaxed);
    }
    fn lookup(&self, k: &K) -> bool {
        self.line(k).0[0].load(Relaxed) != 0
    }
    fn remove(&self, k: &K, _now: u64) {
        Self::change(&self.line(k).0[0], 1);
    }
}

/// Every store, filled with `scale.live` confirmed calls.
fn stores(scale: Scale) -> Vec<Box<dyn Store>> {
    let table = |prefetched| Table {
        table: DialogTable::new(DialogConfig {
            // ~0.4 load with the live set, both batches and the forks-free calls (cached scale;
            // ~0.5 at carrier scale).
            capacity: scale.capacity,
            ..DialogConfig::default()
        }),
        prefetched,
    };
    let room = 2 * scale.live as usize;
    let dash = dashmap::DashMap::with_capacity_and_hasher(room, Bh::default());
    let papaya = papaya::HashMap::builder()
        .capacity(room)
        .hasher(Bh::default())
        .build();
    let v: Vec<Box<dyn Store>> = vec![
        Box::new(table(false)),
        Box::new(table(true)),
        Box::new(Dash(dash)),
        Box::new(Papaya(papaya)),
        Box::new(Floor::new(scale.capacity)),
    ];
    for s in &v {
        for n in 0..scale.live {
            s.insert(&key(0, n), 1);
        }
    }
    v
}

/// Run `f(thread)` on `threads` threads; wall time.
fn on_threads(threads: usize, f: &(dyn Fn(usize) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || f(t));
        }
    });
    start.elapsed()
}

/// The stores, in the order `stores` builds them.
const STORE_NAMES: [&str; 5] = ["sipd", "sipd-prefetched", "dashmap", "papaya", "floor"];

/// The `mixed` workload as criterion group `name`, on the stores `build` makes: built at the
/// first measurement, so a group the filter skips costs nothing (the carrier scale takes a
/// few seconds and about 1.5 GB).
fn mixed(c: &mut Criterion, name: &str, build: &dyn Fn() -> Vec<Box<dyn Store>>) {
    let stores = std::sync::OnceLock::new();
    let stores = || {
        stores.get_or_init(|| {
            let v = build();
            assert!(v.iter().map(|s| s.name()).eq(STORE_NAMES));
            v
        })
    };
    let mut g = c.benchmark_group(name);
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((6 * BATCH * threads) as u64));
        for (i, store_name) in STORE_NAMES.iter().enumerate() {
            g.bench_function(BenchmarkId::new(*store_name, format!("{threads}t")), |b| {
                let s = &stores()[i];
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += on_threads(threads, &|t| {
                            // Every store gets the calls in the same groups.
                            let mut group = Vec::with_capacity(PREFETCH_GROUP);
                            for k in fresh(t) {
                                group.push(k);
                                if group.len() == PREFETCH_GROUP {
                                    s.lives(&group, 10);
                                    group.clear();
                                }
                            }
                            s.lives(&group, 10);
                        });
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    mixed(c, "mixed", &|| stores(CACHED));
    let stores = stores(CACHED);
    let live = keys(0, LIVE);

    let mut g = c.benchmark_group("lookup");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((BATCH * threads) as u64));
        for s in &stores {
            g.bench_function(BenchmarkId::new(s.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for it in 0..iters {
                        let off = (it as usize * 7919) % (LIVE - 2 * BATCH);
                        total += on_threads(threads, &|t| {
                            // Each thread reads its own slice of the live calls.
                            let from = off + t * BATCH;
                            for k in &live.calls[from..from + BATCH] {
                                black_box(s.lookup(k));
                            }
                        });
                    }
                    total
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("insert_remove");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((2 * BATCH * threads) as u64));
        for s in &stores {
            g.bench_function(BenchmarkId::new(s.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += on_threads(threads, &|t| {
                            let calls = fresh(t);
                            for k in calls.clone() {
                                s.insert(&k, 3);
                            }
                            for k in calls {
                                s.remove(&k, 4);
                            }
                        });
                    }
                    total
                })
            });
        }
    }
    g.finish();
}

/// The mixed workload again at carrier scale.
fn bench_carrier(c: &mut Criterion) {
    mixed(c, "mixed_carrier", &|| stores(CARRIER));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = bench, bench_carrier
}
criterion_main!(benches);
