//! A fixed, repeatable run of the dialog bench's mixed workload for instruction counts (the
//! criterion bench times wall clock, which is noisy on a shared machine):
//!
//! ```text
//! cargo build --release -p sipd --example dialog_ops
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='dialog_ops::run*' \
//!     target/release/examples/dialog_ops 100 10
//! ```
//!
//! Fills a 2^18-bucket table with 100,000 confirmed calls, then runs `warm` x 10,000 call lives
//! (INVITE, 180, 200, lookup, in-dialog request, BYE: 6 operations each, every call a new
//! Call-ID, as on a real proxy) on one thread to reach the steady state of a long-running table
//! (the slots earlier calls used are tombstones), then `rounds` x 10,000 more in `run`. Divide
//! the instructions of `run` by `rounds x 60,000` for instructions per operation.
//!
//! A third argument `dashmap` runs the same lives on the bench's dashmap peer instead (a
//! `DashMap<u128, Val>` with the bench's pre-hashed hasher, the same 6 operations per call), for
//! its instruction count on the same workload (`--toggle-collect='dialog_ops::dash_run*'`).
//!
//! `interleaved` times the table, the table with prefetching (groups of 16 calls, every call's
//! line prefetched first, as a worker does for a received batch) and dashmap alternately,
//! `rounds` rounds of 10,000 new calls per thread with 1 and then 2 threads, and prints the best
//! and median round of each and the ratios to dashmap (`dialog_ops 50 101 interleaved`): a
//! wall-clock comparison that holds up on a shared machine where criterion's
//! one-store-after-the-other runs drift (but the stores evict each other from the caches: see
//! the README). A fourth argument `carrier` runs it at carrier scale (2 million calls up in
//! 2^22 buckets, structures far larger than the caches) instead of the bench's default (100,000
//! calls in 2^18 buckets, each structure fitting the 32 MiB last-level cache).

use sipd::dialog::{DialogConfig, DialogTable};

#[path = "../../benches/common/dialog_workload.rs"]
mod workload;
use workload::{
    CACHED, CARRIER, Dash, PREFETCH_GROUP, Scale, Val, dash_life, key, table_life,
    table_lives_prefetched,
};

const BATCH: u64 = 10_000;

#[inline(never)]
fn warm(t: &DialogTable, first: u64, rounds: u64) {
    lives(t, first, rounds)
}

#[inline(never)]
fn run(t: &DialogTable, first: u64, rounds: u64) {
    lives(t, first, rounds)
}

#[inline(always)]
fn lives(t: &DialogTable, first: u64, rounds: u64) {
    for r in first..first + rounds {
        for i in 0..BATCH {
            table_life(t, &key(r, i), 10);
        }
    }
}

#[inline(always)]
fn dash_lives(m: &Dash, first: u64, rounds: u64) {
    for r in first..first + rounds {
        for i in 0..BATCH {
            dash_life(m, &key(r, i), 10);
        }
    }
}

#[inline(never)]
fn dash_warm(m: &Dash, first: u64, rounds: u64) {
    dash_lives(m, first, rounds)
}

#[inline(never)]
fn dash_run(m: &Dash, first: u64, rounds: u64) {
    dash_lives(m, first, rounds)
}

/// The table with `scale.live` confirmed calls, as the bench fills it.
fn filled_table(scale: Scale) -> DialogTable {
    let t = DialogTable::new(DialogConfig {
        capacity: scale.capacity,
        ..DialogConfig::default()
    });
    for i in 0..scale.live {
        let k = key(0, i);
        t.on_invite(k.0, k.4, "", "", 1).unwrap();
        t.on_response(k.0, Some(k.1), 200, 1);
    }
    t
}

/// The dashmap peer with the same calls.
fn filled_dash(scale: Scale) -> Dash {
    let m = Dash::with_capacity_and_hasher(2 * scale.live as usize, Default::default());
    for i in 0..scale.live {
        let k = key(0, i);
        m.insert(k.3, Val::confirmed(&k, 1));
    }
    m
}

/// Wall time of `threads` threads each running `lives` over `BATCH` new calls of its own key set
/// (`first + thread`), given in groups of `PREFETCH_GROUP`, in ns per operation.
fn time_lives(threads: u64, first: u64, lives: &(dyn Fn(&[workload::K]) + Sync)) -> f64 {
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for th in 0..threads {
            s.spawn(move || {
                let mut group = Vec::with_capacity(PREFETCH_GROUP);
                for i in 0..BATCH {
                    group.push(key(first + th, i));
                    if group.len() == PREFETCH_GROUP {
                        lives(&group);
                        group.clear();
                    }
                }
                lives(&group);
            });
        }
    });
    start.elapsed().as_nanos() as f64 / (threads * BATCH * 6) as f64
}

/// Best and median of a set of round times.
fn best_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

/// Table, table with prefetching (calls in groups of `PREFETCH_GROUP`, each group's lines
/// prefetched first, as workers do for a received batch) and dashmap timed alternately, round
/// after round, with 1 and then 2 threads: on a shared machine whose speed drifts from second to
/// second (criterion times one store after the other), all see the same conditions. Prints the
/// best and the median round of each and the ratios to dashmap.
fn interleaved(warm_rounds: u64, rounds: u64, scale: Scale) {
    let t = filled_table(scale);
    let m = filled_dash(scale);
    warm(&t, 1, warm_rounds);
    dash_warm(&m, 1, warm_rounds);
    let mut set = 1 + warm_rounds;
    for threads in [1, 2] {
        let (mut table_ns, mut pref_ns, mut dash_ns) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            table_ns.push(time_lives(threads, set, &|g| {
                g.iter().for_each(|k| table_life(&t, k, 10))
            }));
            set += threads;
            pref_ns.push(time_lives(threads, set, &|g| {
                table_lives_prefetched(&t, g, 10)
            }));
            set += threads;
            dash_ns.push(time_lives(threads, set, &|g| {
                g.iter().for_each(|k| dash_life(&m, k, 10))
            }));
            set += threads;
        }
        let (tb, tm) = best_median(&mut table_ns);
        let (pb, pm) = best_median(&mut pref_ns);
        let (db, dm) = best_median(&mut dash_ns);
        println!(
            "{} scale, {threads} thread(s), {rounds} rounds of {} calls, M ops/s best / median: \
             table {:.1} / {:.1}, table prefetched {:.1} / {:.1}, dashmap {:.1} / {:.1}; \
             vs dashmap: table {:.2}x / {:.2}x, prefetched {:.2}x / {:.2}x",
            scale.name,
            threads * BATCH,
            1e3 / tb,
            1e3 / tm,
            1e3 / pb,
            1e3 / pm,
            1e3 / db,
            1e3 / dm,
            db / tb,
            dm / tm,
            db / pb,
            dm / pm,
        );
    }
}

fn dash_main(warm_rounds: u64, rounds: u64) {
    let m = filled_dash(CACHED);
    dash_warm(&m, 1, warm_rounds);
    let start = std::time::Instant::now();
    dash_run(&m, 1 + warm_rounds, rounds);
    let el = start.elapsed();
    let ops = rounds * BATCH * 6;
    println!(
        "dashmap: {ops} ops in {el:?}: {:.1} M ops/s; entries {}",
        ops as f64 / el.as_secs_f64() / 1e6,
        m.len()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let warm_rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    match args.next().as_deref() {
        Some("dashmap") => return dash_main(warm_rounds, rounds),
        Some("interleaved") => {
            let scale = match args.next().as_deref() {
                Some("carrier") => CARRIER,
                _ => CACHED,
            };
            return interleaved(warm_rounds, rounds, scale);
        }
        _ => {}
    }
    let t = filled_table(CACHED);
    warm(&t, 1, warm_rounds);
    let start = std::time::Instant::now();
    run(&t, 1 + warm_rounds, rounds);
    let el = start.elapsed();
    let ops = rounds * BATCH * 6;
    let s = t.stats();
    println!(
        "{ops} ops in {el:?}: {:.1} M ops/s; calls active {}, refused {}",
        ops as f64 / el.as_secs_f64() / 1e6,
        s.calls_active,
        s.refused_full
    );
}
