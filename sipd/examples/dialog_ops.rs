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

use std::hint::black_box;

use sipd::dialog::{CallKey, DialogConfig, DialogKey, DialogTable, Tag};

const LIVE: u64 = 100_000;
const BATCH: u64 = 10_000;
const TRUNKS: u64 = 16;

/// splitmix64's finaliser, as in the bench.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn key(set: u64, i: u64) -> (CallKey, Tag, DialogKey, u32) {
    let cid = mix(set << 48 | i);
    let call = CallKey::from_hashes(cid, Tag::from_hash(mix(!(set << 48 | i))));
    let to = Tag::from_hash(cid.rotate_left(17));
    (call, to, call.dialog(to), (i % TRUNKS) as u32)
}

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
            black_box(t.on_invite(k.0, k.3, "", "", 10).is_ok());
            black_box(t.on_response(k.0, Some(k.1), 180, 11));
            black_box(t.on_response(k.0, Some(k.1), 200, 12));
            black_box(t.lookup(k.2));
            black_box(t.touch(k.2, 13));
            black_box(t.on_bye(k.2, 14));
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let warm_rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let rounds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let t = DialogTable::new(DialogConfig {
        capacity: 1 << 18,
        ..DialogConfig::default()
    });
    for i in 0..LIVE {
        let k = key(0, i);
        t.on_invite(k.0, k.3, "", "", 1).unwrap();
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
