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

use std::hint::black_box;

use sipd::dialog::{DialogConfig, DialogTable};

#[path = "../../benches/common/dialog_workload.rs"]
mod workload;
use workload::{Bh, Val, key};

const LIVE: u64 = 100_000;
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
            let k = key(r, i);
            black_box(t.on_invite(k.0, k.4, "", "", 10).is_ok());
            black_box(t.on_response(k.0, Some(k.1), 180, 11));
            black_box(t.on_response(k.0, Some(k.1), 200, 12));
            black_box(t.lookup(k.2));
            black_box(t.touch(k.2, 13));
            black_box(t.on_bye(k.2, 14));
        }
    }
}

type Dash = dashmap::DashMap<u128, Val, Bh>;

#[inline(always)]
fn dash_lives(m: &Dash, first: u64, rounds: u64) {
    for r in first..first + rounds {
        for i in 0..BATCH {
            let k = key(r, i);
            let mk = k.3;
            let now = 10;
            m.insert(
                mk,
                Val {
                    trunk: k.4,
                    start: now,
                    last: now,
                    ..Val::default()
                },
            );
            if let Some(mut v) = m.get_mut(&mk) {
                v.state = 1;
                v.to = k.1.get();
                v.last = now + 1;
            }
            if let Some(mut v) = m.get_mut(&mk) {
                v.state = 2;
                v.answer = now + 2;
                v.last = now + 2;
            }
            black_box(m.get(&mk).map(|v| *v));
            if let Some(mut v) = m.get_mut(&mk) {
                v.last = now + 3;
            }
            black_box(m.remove(&mk));
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

fn dash_main(warm_rounds: u64, rounds: u64) {
    let m = Dash::with_capacity_and_hasher(2 * LIVE as usize, Default::default());
    for i in 0..LIVE {
        let k = key(0, i);
        let v = Val {
            state: 2,
            trunk: k.4,
            to: k.1.get(),
            ..Val::default()
        };
        m.insert(k.3, v);
    }
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
    if args.next().as_deref() == Some("dashmap") {
        return dash_main(warm_rounds, rounds);
    }
    let t = DialogTable::new(DialogConfig {
        capacity: 1 << 18,
        ..DialogConfig::default()
    });
    for i in 0..LIVE {
        let k = key(0, i);
        t.on_invite(k.0, k.4, "", "", 1).unwrap();
        t.on_response(k.0, Some(k.1), 200, 1);
    }
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
