//! Stress test of the dialog table: several threads create, update, look up and end overlapping
//! calls at once (bounded in count), then every invariant is checked:
//! - no lost dialog: each thread also runs private calls that no other thread touches, in the
//!   same crowded probe windows, and each must be found, touched and ended exactly when expected;
//! - no double termination: every call record id is closed exactly once, never written to again
//!   after its close, and the table's counters agree with a walk over the slots;
//! - counts add up: created = ended + active for calls, created = terminated + early + confirmed
//!   for dialogs, trunk counters sum to the active calls, and all reach zero after a final sweep.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sipd::dialog::{
    CallKey, DialogConfig, DialogKey, DialogState, DialogTable, InviteOutcome, RecordEvent,
    RecordSink, Refused, ResponseOutcome, Tag,
};

const THREADS: usize = 4;
const OPS: usize = 100_000;
const SHARED_CALLS: u64 = 48;
const TAGS: u64 = 3;
const TRUNKS: u32 = 4;
const LIMITED_TRUNK: u32 = 3;
const LIMIT: u32 = 4;
/// Private calls run at this fixed time: far ahead of the shared clock, so the sweep (run with
/// the shared clock) never expires them, and fixed, so a private INVITE (which may evict expired
/// shared calls) never finds another thread's private call expired, however long that thread
/// was descheduled.
const FAR: u64 = 1 << 40;

fn shared_call(n: u64) -> (Vec<u8>, Vec<u8>) {
    (
        format!("shared-{n}@stress.example").into_bytes(),
        format!("ftag{n}").into_bytes(),
    )
}

fn to_tag(n: u64) -> Vec<u8> {
    format!("ttag{n}").into_bytes()
}

/// xorshift: deterministic per thread, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn many_threads_overlapping_calls_keep_every_invariant() {
    let (sink, tap) = RecordSink::in_memory(1 << 16);
    let table = Arc::new(DialogTable::with_records(
        DialogConfig {
            // Small on purpose: the windows overlap and fill, so eviction and refusal happen.
            capacity: 96,
            probe_window: 16,
            early_timeout_ms: 400,
            session_timeout_ms: 2_000,
            max_trunks: TRUNKS as usize,
        },
        sink.clone(),
    ));
    table.set_trunk_limit(LIMITED_TRUNK, Some(LIMIT));
    let clock = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));

    // Collect records while the workers run (the queue is bounded).
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            loop {
                let got = tap.drain();
                if got.is_empty() {
                    if stop.load(Ordering::Acquire) {
                        all.extend(tap.drain());
                        return all;
                    }
                    std::thread::yield_now();
                }
                all.extend(got);
            }
        })
    };

    let workers: Vec<_> = (0..THREADS)
        .map(|w| {
            let table = table.clone();
            let clock = clock.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((w as u64 + 1) * 0x1234_5678_9abc));
                let mut private_done = 0u64;
                let mut private_refused = 0u64;
                for op in 0..OPS {
                    // Thread 0 drives the shared clock (1 ms per op); the others read it.
                    let now = if w == 0 {
                        clock.fetch_add(1, Ordering::Relaxed) + 1
                    } else {
                        clock.load(Ordering::Relaxed)
                    };
                    let n = rng.below(SHARED_CALLS);
                    let (cid, ftag) = shared_call(n);
                    let call = CallKey::new(&cid, &ftag);
                    let t = rng.below(TAGS);
                    let tt = to_tag(t);
                    match rng.below(100) {
                        0..=14 => {
                            let trunk = (n % TRUNKS as u64) as u32;
                            let _ = table.on_invite(call, trunk, "caller", "callee", now);
                        }
                        15..=29 => {
                            let _ = table.on_response(call, Some(Tag::new(&tt)), 180, now);
                        }
                        30..=41 => {
                            let _ = table.on_response(call, Some(Tag::new(&tt)), 200, now);
                        }
                        42..=45 => {
                            let _ = table.on_response(call, None, 100, now);
                        }
                        46..=50 => {
                            let _ = table.on_response(call, Some(Tag::new(&tt)), 486, now);
                        }
                        51..=54 => {
                            let _ = table.on_cancel(call, now);
                        }
                        55..=64 => {
                            // BYE from either side.
                            let k = if rng.below(2) == 0 {
                                DialogKey::new(&cid, &ftag, &tt)
                            } else {
                                DialogKey::new(&cid, &tt, &ftag)
                            };
                            let _ = table.on_bye(k, now);
                        }
                        65..=68 => {
                            let k = DialogKey::new(&cid, &ftag, &tt);
                            let _ = table.on_bye_response(k, 200, now);
                        }
                        69..=76 => {
                            let _ = table.touch(DialogKey::new(&cid, &ftag, &tt), now);
                        }
                        77..=84 => {
                            let k = DialogKey::new(&cid, &ftag, &tt);
                            if let Some(i) = table.lookup(k) {
                                assert!(i.last_ms >= i.start_ms);
                                if i.state == DialogState::Confirmed {
                                    assert!(i.answer_ms.is_some());
                                }
                            }
                        }
                        85..=89 => {
                            let _ = table.expire(now, 8);
                        }
                        _ => {
                            // A private call: nobody else knows its keys.
                            let pnow = FAR;
                            let cid = format!("private-{w}-{op}@stress.example").into_bytes();
                            let call = CallKey::new(&cid, b"pf");
                            match table.on_invite(call, 0, "p", "q", pnow) {
                                Ok(InviteOutcome::Created(h)) => {
                                    let r = table.on_response(call, Some(Tag::new(b"pt")), 200, pnow);
                                    if r == ResponseOutcome::Untracked {
                                        // Cannot happen: the call's own slot takes the dialog.
                                        panic!("private dialog untracked");
                                    }
                                    assert_eq!(r, ResponseOutcome::Confirmed { first: true });
                                    let k = DialogKey::new(&cid, b"pt", b"pf");
                                    let i = table.lookup(k).unwrap_or_else(|| {
                                        panic!(
                                            "private dialog lost: call {:?}, again {:?}, via call key {:?}",
                                            table.lookup_call(call),
                                            table.lookup(k),
                                            table.lookup(call.dialog(Tag::new(b"pt")))
                                        )
                                    });
                                    assert_eq!(i.state, DialogState::Confirmed);
                                    assert_eq!(i.record_id, h.record_id);
                                    assert!(table.touch(k, pnow + 1), "private dialog lost");
                                    assert!(table.on_bye(k, pnow + 2), "private dialog lost");
                                    assert!(!table.on_bye(k, pnow + 3), "double termination");
                                    assert!(table.lookup(k).is_none());
                                    private_done += 1;
                                }
                                Ok(InviteOutcome::Existing(_)) => panic!("private key collided"),
                                Err(Refused::Full) => private_refused += 1,
                                Err(Refused::TrunkLimit) => panic!("trunk 0 has no limit"),
                            }
                        }
                    }
                }
                (private_done, private_refused)
            })
        })
        .collect();
    let mut private_done = 0;
    for h in workers {
        let (d, _) = h.join().expect("worker panicked");
        private_done += d;
    }
    assert!(private_done > 0);

    // Quiescent: the counters, the gauges and a walk over the slots agree.
    let check = |table: &DialogTable| {
        let s = table.stats();
        let c = table.census();
        assert_eq!(c.transient, 0, "claims left behind");
        assert_eq!(c.calls, s.calls_active, "{s:?} {c:?}");
        assert_eq!(
            (c.early, c.confirmed),
            (s.early, s.confirmed),
            "{s:?} {c:?}"
        );
        assert_eq!(c.children, c.forks, "every fork counted by its call");
        assert_eq!(s.calls_created, s.calls_ended + s.calls_active, "{s:?}");
        assert_eq!(
            s.dialogs_created,
            s.dialogs_terminated + s.early + s.confirmed,
            "{s:?}"
        );
        let trunks: u64 = (0..TRUNKS).map(|t| table.trunk_active(t)).sum();
        assert_eq!(trunks, s.calls_active);
        assert!(table.trunk_active(LIMITED_TRUNK) <= LIMIT as u64);
        s
    };
    let mid = check(&table);
    eprintln!("after the run: {mid:?}");
    assert!(mid.dialogs_confirmed > 0 && mid.dialogs_expired > 0 && mid.refused_trunk > 0);

    // Everything left times out.
    let end = clock.load(Ordering::Relaxed) + FAR * 2;
    let mut swept = 0;
    while table.stats().calls_active > 0 {
        swept += table.expire(end, 1024);
        assert!(swept <= table.slots() * 2, "sweep does not converge");
    }
    let s = check(&table);
    assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0));
    assert_eq!(table.census().calls + table.census().forks, 0);

    stop.store(true, Ordering::Release);
    let events = collector.join().unwrap();
    assert_eq!(sink.dropped(), 0, "record queue overflowed");

    // Records: every call started is closed exactly once, and nothing but its (racing) Started
    // follows its close. Started is sent after the call is published, so a call ended at once by
    // another thread can have its close queued first.
    #[derive(Default)]
    struct Seen {
        started: u32,
        closed: u32,
    }
    let mut seen: HashMap<u64, Seen> = HashMap::new();
    for e in &events {
        match *e {
            RecordEvent::Started { id, .. } => seen.entry(id).or_default().started += 1,
            RecordEvent::Ended { id, close, .. } => {
                let s = seen.entry(id).or_default();
                assert_eq!(s.closed, 0, "record {id} written after its close");
                s.closed += close as u32;
            }
            RecordEvent::Closed { id } => {
                let s = seen.entry(id).or_default();
                assert_eq!(s.closed, 0, "record {id} closed twice");
                s.closed += 1;
            }
        }
    }
    for (id, s) in &seen {
        assert_eq!((s.started, s.closed), (1, 1), "record {id}");
    }
    assert_eq!(seen.len() as u64, s.calls_created);
    assert_eq!(seen.len() as u64, s.calls_ended);
}
