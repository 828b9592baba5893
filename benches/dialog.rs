//! Dialog table vs dashmap and papaya, same run, 1 and 2 threads.
//!
//! - `mixed`: a call's whole life per key — INVITE (insert), 180 (state update), 200 (state
//!   update), lookup, in-dialog request (timer update), BYE (remove): 6 operations per call.
//! - `lookup`: reads of live confirmed calls.
//! - `insert_remove`: insert a batch of calls, then remove them.
//!
//! Every run keeps `LIVE` confirmed calls in the structure so probes see a realistic occupancy.
//! The maps get a cheap hasher over the already-hashed 128-bit key (their default SipHash would
//! be an unfair handicap); the table's keys are hashed up front too.
//!
//! `cargo bench -p sipd --bench dialog -- --quick`

use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sipd::dialog::{CallKey, DialogConfig, DialogKey, DialogTable, Tag};

const LIVE: usize = 100_000;
const BATCH: usize = 10_000;

/// Hasher for keys that are already uniform hashes.
#[derive(Default, Clone)]
struct PreHashed(u64);
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
type Bh = BuildHasherDefault<PreHashed>;

#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
struct Val {
    state: u8,
    trunk: u32,
    start: u64,
    answer: u64,
    last: u64,
    to: u64,
}

fn mix(x: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(&x.to_le_bytes())
}

/// Keys of one set: the call and its dialog's To tag.
struct Keys {
    calls: Vec<(CallKey, Tag, DialogKey, u128)>,
}
fn keys(set: u64, n: usize) -> Keys {
    Keys {
        calls: (0..n as u64)
            .map(|i| {
                let cid = mix(set << 40 | i);
                let from = Tag::from_hash(mix(!(set << 40 | i)));
                let call = CallKey::from_hashes(cid, from);
                let to = Tag::from_hash(cid.rotate_left(17));
                (
                    call,
                    to,
                    call.dialog(to),
                    (cid as u128) << 64 | from.get() as u128,
                )
            })
            .collect(),
    }
}

trait Store: Sync {
    fn name(&self) -> &'static str;
    fn life(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64);
    fn insert(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64);
    fn lookup(&self, k: &(CallKey, Tag, DialogKey, u128)) -> bool;
    fn remove(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64);
}

struct Table(DialogTable);
impl Store for Table {
    fn name(&self) -> &'static str {
        "sipd"
    }
    fn life(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        let t = &self.0;
        black_box(t.on_invite(k.0, 1, "", "", now).is_ok());
        black_box(t.on_response(k.0, Some(k.1), 180, now));
        black_box(t.on_response(k.0, Some(k.1), 200, now));
        black_box(t.lookup(k.2));
        black_box(t.touch(k.2, now));
        black_box(t.on_bye(k.2, now));
    }
    fn insert(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        black_box(self.0.on_invite(k.0, 1, "", "", now).is_ok());
        black_box(self.0.on_response(k.0, Some(k.1), 200, now));
    }
    fn lookup(&self, k: &(CallKey, Tag, DialogKey, u128)) -> bool {
        self.0.lookup(k.2).is_some()
    }
    fn remove(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        black_box(self.0.on_bye(k.2, now));
    }
}

struct Dash(dashmap::DashMap<u128, Val, Bh>);
impl Store for Dash {
    fn name(&self) -> &'static str {
        "dashmap"
    }
    fn life(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        let m = &self.0;
        m.insert(
            k.3,
            Val {
                state: 0,
                trunk: 1,
                start: now,
                last: now,
                ..Val::default()
            },
        );
        if let Some(mut v) = m.get_mut(&k.3) {
            v.state = 1;
            v.to = k.1.get();
        }
        if let Some(mut v) = m.get_mut(&k.3) {
            v.state = 2;
            v.answer = now;
        }
        black_box(m.get(&k.3).map(|v| *v));
        if let Some(mut v) = m.get_mut(&k.3) {
            v.last = now;
        }
        black_box(m.remove(&k.3));
    }
    fn insert(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        self.0.insert(
            k.3,
            Val {
                state: 2,
                start: now,
                answer: now,
                last: now,
                to: k.1.get(),
                trunk: 1,
            },
        );
    }
    fn lookup(&self, k: &(CallKey, Tag, DialogKey, u128)) -> bool {
        self.0.get(&k.3).map(|v| *v).is_some()
    }
    fn remove(&self, k: &(CallKey, Tag, DialogKey, u128), _now: u64) {
        black_box(self.0.remove(&k.3));
    }
}

struct Papaya(papaya::HashMap<u128, Val, Bh>);
impl Store for Papaya {
    fn name(&self) -> &'static str {
        "papaya"
    }
    fn life(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        let m = self.0.pin();
        m.insert(
            k.3,
            Val {
                state: 0,
                trunk: 1,
                start: now,
                last: now,
                ..Val::default()
            },
        );
        m.update(k.3, |v| Val {
            state: 1,
            to: k.1.get(),
            ..*v
        });
        m.update(k.3, |v| Val {
            state: 2,
            answer: now,
            ..*v
        });
        black_box(m.get(&k.3).copied());
        m.update(k.3, |v| Val { last: now, ..*v });
        black_box(m.remove(&k.3).copied());
    }
    fn insert(&self, k: &(CallKey, Tag, DialogKey, u128), now: u64) {
        self.0.pin().insert(
            k.3,
            Val {
                state: 2,
                start: now,
                answer: now,
                last: now,
                to: k.1.get(),
                trunk: 1,
            },
        );
    }
    fn lookup(&self, k: &(CallKey, Tag, DialogKey, u128)) -> bool {
        self.0.pin().get(&k.3).copied().is_some()
    }
    fn remove(&self, k: &(CallKey, Tag, DialogKey, u128), _now: u64) {
        black_box(self.0.pin().remove(&k.3).copied());
    }
}

fn stores() -> Vec<Box<dyn Store>> {
    let table = DialogTable::new(DialogConfig {
        // ~0.4 load with the live set, both batches and the forks-free calls.
        capacity: 1 << 18,
        ..DialogConfig::default()
    });
    let dash = dashmap::DashMap::with_capacity_and_hasher(LIVE * 2, Bh::default());
    let papaya = papaya::HashMap::builder()
        .capacity(LIVE * 2)
        .hasher(Bh::default())
        .build();
    let v: Vec<Box<dyn Store>> = vec![
        Box::new(Table(table)),
        Box::new(Dash(dash)),
        Box::new(Papaya(papaya)),
    ];
    let live = keys(0, LIVE);
    for s in &v {
        for k in &live.calls {
            s.insert(k, 1);
        }
    }
    v
}

/// Run `f(thread, keys)` on `threads` threads, each with its own key set; wall time.
fn on_threads(threads: usize, sets: &[Keys], f: &(dyn Fn(usize, &Keys) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for (i, set) in sets.iter().take(threads).enumerate() {
            s.spawn(move || f(i, set));
        }
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let stores = stores();
    let live = keys(0, LIVE);
    let sets: Vec<Keys> = (1..=2).map(|s| keys(s, BATCH)).collect();

    let mut g = c.benchmark_group("mixed");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((6 * BATCH * threads) as u64));
        for s in &stores {
            g.bench_function(BenchmarkId::new(s.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += on_threads(threads, &sets, &|_, set| {
                            for k in &set.calls {
                                s.life(k, 2);
                            }
                        });
                    }
                    total
                })
            });
        }
    }
    g.finish();

    let mut g = c.benchmark_group("lookup");
    for threads in [1usize, 2] {
        g.throughput(Throughput::Elements((BATCH * threads) as u64));
        for s in &stores {
            g.bench_function(BenchmarkId::new(s.name(), format!("{threads}t")), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for it in 0..iters {
                        let off = (it as usize * 7919) % (LIVE - 2 * BATCH);
                        total += on_threads(threads, &sets, &|_, set| {
                            // Each thread reads its own slice of the live calls.
                            let me = (set.calls[0].3 as usize) & 1;
                            let from = off + me * BATCH;
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
                        total += on_threads(threads, &sets, &|_, set| {
                            for k in &set.calls {
                                s.insert(k, 3);
                            }
                            for k in &set.calls {
                                s.remove(k, 4);
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

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    targets = bench
}
criterion_main!(benches);
