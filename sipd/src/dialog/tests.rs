//! Unit tests and the reference-model test (random operation sequences on the table and on a
//! plain `HashMap` model must give the same answers).

use std::collections::HashMap;

use proptest::prelude::*;

use super::slot::Payload;
use super::*;

const EARLY: u64 = 1_000;
const SESSION: u64 = 10_000;

fn cfg(capacity: usize, window: usize) -> DialogConfig {
    DialogConfig {
        capacity,
        probe_window: window,
        early_timeout_ms: EARLY,
        session_timeout_ms: SESSION,
        max_trunks: 8,
    }
}

fn call(n: u64) -> CallKey {
    CallKey::from_hashes(
        0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(n + 1),
        Tag::from_hash(n + 1000),
    )
}

fn tag(n: u64) -> Tag {
    Tag::from_hash(0xabc0 + n)
}

/// The dialog key as the callee's requests build it (tags swapped).
fn from_callee(c: CallKey, t: Tag) -> DialogKey {
    DialogKey {
        cid: c.cid,
        a: t.get(),
        b: c.from,
    }
}

#[test]
fn memory_per_slot() {
    assert_eq!(std::mem::size_of::<Payload>(), 64);
    assert_eq!(std::mem::align_of::<Payload>(), 64);
    assert_eq!(SLOT_BYTES, 64);
    let t = DialogTable::new(cfg(1000, 32));
    assert_eq!(t.slots(), 1031);
    // Nothing besides the slots: the probe hints live in the control words.
    assert_eq!(t.memory_bytes(), 1031 * 64);
}

#[test]
fn call_flow_with_records() {
    let (sink, tap) = RecordSink::in_memory(64);
    let t = DialogTable::with_records(cfg(64, 8), sink);
    let c = call(1);
    let h = t
        .on_invite(c, 3, "sip:alice@a.example", "sip:bob@b.example", 100)
        .unwrap();
    let InviteOutcome::Created(h) = h else {
        panic!("{h:?}")
    };
    assert_eq!(t.trunk_active(3), 1);
    assert_eq!(
        t.on_invite(c, 3, "", "", 150),
        Ok(InviteOutcome::Existing(h))
    );
    assert_eq!(t.on_response(c, None, 100, 160), ResponseOutcome::Touched);
    assert_eq!(
        t.on_response(c, Some(tag(1)), 180, 200),
        ResponseOutcome::Early { created: true }
    );
    let d = c.dialog(tag(1));
    assert_eq!(t.lookup(d).unwrap().state, DialogState::Early);
    assert_eq!(
        t.on_response(c, Some(tag(1)), 200, 1100),
        ResponseOutcome::Confirmed { first: true }
    );
    assert_eq!(
        t.on_response(c, Some(tag(1)), 200, 1150),
        ResponseOutcome::Confirmed { first: false }
    );
    let info = t.lookup(from_callee(c, tag(1))).unwrap();
    assert_eq!(info.state, DialogState::Confirmed);
    assert_eq!(info.answer_ms, Some(1100));
    assert_eq!(info.start_ms, 100);
    assert_eq!(info.record_id, h.record_id);
    assert!(t.touch(d, 5000));
    let s = t.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 0, 1));
    // The BYE from the callee and its 200 seen by another worker: one termination.
    assert!(t.on_bye(from_callee(c, tag(1)), 61_100));
    assert!(!t.on_bye_response(d, 200, 61_101));
    assert!(t.lookup(d).is_none());
    assert!(t.lookup_call(c).is_none());
    assert_eq!(t.trunk_active(3), 0);
    let s = t.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0));
    assert_eq!(
        (s.calls_created, s.calls_ended, s.retransmissions),
        (1, 1, 1)
    );
    assert_eq!(
        (s.dialogs_created, s.dialogs_confirmed, s.dialogs_terminated),
        (1, 1, 1)
    );
    let ev = tap.drain();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(matches!(ev[0], RecordEvent::Started { id, .. } if id == h.record_id));
    match ev[1] {
        RecordEvent::Ended {
            id,
            start_ms,
            answer_ms,
            end_ms,
            reason,
            close,
            ..
        } => {
            assert_eq!(
                (id, start_ms, answer_ms, end_ms, reason, close),
                (h.record_id, 100, Some(1100), 61_100, EndReason::Bye, true)
            );
        }
        ref e => panic!("{e:?}"),
    }
}

#[test]
fn forked_call_keeps_one_record_per_confirmed_dialog() {
    let (sink, tap) = RecordSink::in_memory(64);
    let t = DialogTable::with_records(cfg(64, 8), sink);
    let c = call(2);
    t.on_invite(c, 0, "a", "b", 0).unwrap();
    assert_eq!(
        t.on_response(c, Some(tag(1)), 180, 10),
        ResponseOutcome::Early { created: true }
    );
    assert_eq!(
        t.on_response(c, Some(tag(2)), 183, 20),
        ResponseOutcome::Early { created: true }
    );
    assert_eq!(t.lookup_call(c).unwrap().forks, 1);
    assert_eq!(t.stats().early, 2);
    // Branch 2 answers (and a third branch answers directly with a 2xx).
    assert_eq!(
        t.on_response(c, Some(tag(2)), 200, 30),
        ResponseOutcome::Confirmed { first: true }
    );
    assert!(t.lookup_call(c).unwrap().answered);
    // The downstream proxy's final answer for the other branch ends only early dialogs.
    assert_eq!(
        t.on_response(c, Some(tag(1)), 487, 40),
        ResponseOutcome::Ended
    );
    assert!(t.lookup(c.dialog(tag(1))).is_none());
    assert_eq!(t.lookup(c.dialog(tag(2))).unwrap().answer_ms, Some(30));
    let s = t.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 0, 1));
    assert!(t.on_bye(c.dialog(tag(2)), 1000));
    let s = t.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0));
    assert_eq!(s.dialogs_terminated, 2);
    assert_eq!(t.census(), Census::default());
    let ev = tap.drain();
    let lines: Vec<_> = ev
        .iter()
        .filter(|e| matches!(e, RecordEvent::Ended { .. }))
        .collect();
    assert_eq!(lines.len(), 1, "{ev:?}");
    assert!(matches!(ev.last(), Some(RecordEvent::Closed { .. })));
}

#[test]
fn rejected_and_cancelled_calls() {
    let (sink, tap) = RecordSink::in_memory(64);
    let t = DialogTable::with_records(cfg(64, 8), sink);
    let (c1, c2) = (call(3), call(4));
    t.on_invite(c1, 1, "a", "b", 0).unwrap();
    t.on_invite(c2, 1, "a", "c", 0).unwrap();
    t.on_response(c1, Some(tag(1)), 180, 5);
    t.on_response(c1, Some(tag(2)), 180, 6);
    assert_eq!(
        t.on_response(c1, Some(tag(3)), 486, 7),
        ResponseOutcome::Ended
    );
    assert!(t.lookup_call(c1).is_none());
    assert!(t.on_cancel(c2, 8));
    assert!(!t.on_cancel(c2, 9));
    assert_eq!(
        t.on_response(c2, Some(tag(1)), 487, 10),
        ResponseOutcome::UnknownCall
    );
    let s = t.stats();
    assert_eq!((s.calls_active, s.early, s.calls_ended), (0, 0, 2));
    assert_eq!(t.trunk_active(1), 0);
    let ended: Vec<_> = tap
        .drain()
        .into_iter()
        .filter_map(|e| match e {
            RecordEvent::Ended {
                reason,
                status,
                answer_ms: None,
                ..
            } => Some((reason, status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        ended,
        vec![
            (EndReason::Rejected, Some(486)),
            (EndReason::Cancelled, None)
        ]
    );
    // CANCEL after the 2xx does nothing.
    let c3 = call(5);
    t.on_invite(c3, 1, "a", "b", 0).unwrap();
    t.on_response(c3, Some(tag(1)), 200, 1);
    assert!(!t.on_cancel(c3, 2));
    assert!(t.lookup(c3.dialog(tag(1))).is_some());
}

#[test]
fn trunk_limit_refuses_and_releases() {
    let t = DialogTable::new(cfg(64, 8));
    t.set_trunk_limit(2, Some(2));
    t.on_invite(call(1), 2, "", "", 0).unwrap();
    t.on_invite(call(2), 2, "", "", 0).unwrap();
    assert_eq!(t.on_invite(call(3), 2, "", "", 0), Err(Refused::TrunkLimit));
    // A retransmission of a call already up is not refused.
    assert!(matches!(
        t.on_invite(call(2), 2, "", "", 0),
        Ok(InviteOutcome::Existing(_))
    ));
    // Other trunks, and ids past max_trunks, are not affected.
    t.on_invite(call(4), 1, "", "", 0).unwrap();
    t.on_invite(call(5), 4000, "", "", 0).unwrap();
    assert!(t.on_cancel(call(1), 1));
    t.on_invite(call(3), 2, "", "", 2).unwrap();
    assert_eq!(t.trunk_active(2), 2);
    assert_eq!(t.stats().refused_trunk, 1);
    t.set_trunk_limit(2, None);
    t.on_invite(call(6), 2, "", "", 2).unwrap();
    assert_eq!(t.trunk_active(2), 3);
}

#[test]
fn timeouts_reap_and_touch_extends() {
    let t = DialogTable::new(cfg(64, 8));
    let (a, b, c) = (call(1), call(2), call(3));
    t.on_invite(a, 0, "", "", 0).unwrap(); // no answer at all
    t.on_invite(b, 0, "", "", 0).unwrap();
    t.on_response(b, Some(tag(1)), 180, 0); // early
    t.on_invite(c, 0, "", "", 0).unwrap();
    t.on_response(c, Some(tag(1)), 200, 0); // confirmed
    assert_eq!(t.expire(EARLY - 1, usize::MAX), 0);
    assert_eq!(t.expire(EARLY, usize::MAX), 2);
    assert!(t.lookup_call(a).is_none() && t.lookup_call(b).is_none());
    assert!(t.touch(c.dialog(tag(1)), SESSION - 1));
    assert_eq!(t.expire(SESSION, usize::MAX), 0);
    assert_eq!(t.expire(2 * SESSION - 1, usize::MAX), 1);
    let s = t.stats();
    assert_eq!(
        (s.calls_active, s.dialogs_expired, s.calls_ended),
        (0, 3, 3)
    );
    assert_eq!(t.census(), Census::default());
}

#[test]
fn sweep_budget_walks_the_whole_table() {
    let t = DialogTable::new(cfg(200, 8));
    for n in 0..100 {
        t.on_invite(call(n), 0, "", "", 0).unwrap();
    }
    let mut ended = 0;
    for _ in 0..(t.slots() / 10 + 1) {
        ended += t.expire(EARLY, 10);
    }
    assert_eq!(ended, 100);
    assert_eq!(t.stats().calls_active, 0);
}

#[test]
fn full_window_evicts_expired_then_refuses() {
    // One home bucket, four slots: every call shares the window.
    let t = DialogTable::new(cfg(1, 4));
    for n in 0..4 {
        t.on_invite(call(n), 0, "", "", 0).unwrap();
    }
    assert_eq!(t.on_invite(call(9), 0, "", "", 10), Err(Refused::Full));
    // A fork needs a slot too.
    assert_eq!(
        t.on_response(call(0), Some(tag(1)), 180, 10),
        ResponseOutcome::Early { created: true }
    );
    assert_eq!(
        t.on_response(call(0), Some(tag(2)), 180, 10),
        ResponseOutcome::Untracked
    );
    // Call 1 and 2 keep talking; 0 (touched at 10), 3 expire.
    t.on_response(call(1), None, 100, 900);
    t.on_response(call(2), None, 100, 900);
    assert!(matches!(
        t.on_invite(call(9), 0, "", "", EARLY + 5),
        Ok(InviteOutcome::Created(_))
    ));
    let s = t.stats();
    assert_eq!((s.refused_full, s.dialogs_evicted), (1, 1));
    assert!(t.lookup_call(call(3)).is_none() || t.lookup_call(call(0)).is_none());
    // The other expired one goes on the next insert.
    t.on_invite(call(10), 0, "", "", EARLY + 20).unwrap();
    assert_eq!(t.stats().dialogs_evicted, 2);
    assert_eq!(
        t.on_invite(call(11), 0, "", "", EARLY + 30),
        Err(Refused::Full)
    );
    assert_eq!(t.stats().calls_active, 4);
}

/// How full a table gets before the first refusal, and the refusals on the way to 90 %.
#[test]
fn load_factor_before_first_refusal() {
    for w in [16, 32, 48, 64] {
        let cap = 20_000;
        let t = DialogTable::new(cfg(cap, w));
        let mut first = None;
        let mut refused = [0u32; 3];
        let mut live = 0usize;
        for n in 0u64.. {
            let c = CallKey::from_hashes(
                xxhash_rust::xxh3::xxh3_64(&n.to_le_bytes()),
                Tag::from_hash(n),
            );
            let load = live as f64 / t.slots() as f64;
            if load >= 0.9 || n > 100_000 {
                break;
            }
            match t.on_invite(c, 0, "", "", 0) {
                Ok(_) => live += 1,
                Err(_) => {
                    first.get_or_insert(load);
                    refused[((load * 10.0) as usize).saturating_sub(6).min(2)] += 1;
                }
            }
        }
        eprintln!("window {w}: first refusal at {first:?}, refusals <0.7/<0.8/<0.9: {refused:?}");
        if w == 64 {
            // The sizing rule in the module docs: capacity = peak dialogs / 0.7.
            assert!(
                first.unwrap() > 0.7,
                "window 64: first refusal at {first:?}"
            );
        }
    }
}

// ------------------------------------------------------------------ reference model

#[derive(Clone, Debug)]
enum Op {
    Invite(u8, u8),
    Resp(u8, Option<u8>, u16),
    Cancel(u8),
    Bye(u8, u8, bool),
    ByeResp(u8, u8, u16),
    Touch(u8, u8),
    Lookup(u8, u8),
    LookupCall(u8),
    Expire,
    Advance(u16),
    /// A worker's look-ahead: must change nothing the model sees.
    Prefetch(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0u8..4;
    let t = 0u8..3;
    prop_oneof![
        3 => (c.clone(), 0u8..2).prop_map(|(c, k)| Op::Invite(c, k)),
        6 => (c.clone(), proptest::option::weighted(0.85, t.clone()),
              prop_oneof![Just(100u16), Just(180), Just(183), Just(200), Just(486), Just(487)])
            .prop_map(|(c, t, s)| Op::Resp(c, t, s)),
        1 => c.clone().prop_map(Op::Cancel),
        2 => (c.clone(), t.clone(), any::<bool>()).prop_map(|(c, t, s)| Op::Bye(c, t, s)),
        1 => (c.clone(), t.clone(), prop_oneof![Just(200u16), Just(481)])
            .prop_map(|(c, t, s)| Op::ByeResp(c, t, s)),
        2 => (c.clone(), t.clone()).prop_map(|(c, t)| Op::Touch(c, t)),
        2 => (c.clone(), t.clone()).prop_map(|(c, t)| Op::Lookup(c, t)),
        1 => c.clone().prop_map(Op::LookupCall),
        1 => Just(Op::Expire),
        2 => (1u16..1500).prop_map(Op::Advance),
        1 => c.prop_map(Op::Prefetch),
    ]
}

#[derive(Clone, Debug, Default)]
struct MCall {
    trunk: u32,
    last: u64,
    answered: bool,
    /// The call slot's own dialog: (tag, confirmed, alive). Set by the first tag.
    own: Option<(u8, bool, bool)>,
    /// Forked dialogs: tag -> (confirmed, last).
    forks: HashMap<u8, (bool, u64)>,
    start: u64,
    answer: HashMap<u8, u64>,
}

impl MCall {
    fn own_alive(&self) -> bool {
        matches!(self.own, Some((_, _, true)))
    }
    fn dialogs(&self) -> usize {
        self.forks.len() + self.own_alive() as usize
    }
    /// A call whose last dialog went is over (a call that never had one ends only on its own).
    fn over(&self) -> bool {
        self.own.is_some() && self.dialogs() == 0
    }
    fn state(&self, t: u8) -> Option<bool> {
        match self.own {
            Some((o, conf, true)) if o == t => Some(conf),
            _ => self.forks.get(&t).map(|f| f.0),
        }
    }
}

#[derive(Default)]
struct Model {
    calls: HashMap<u8, MCall>,
    active: [u64; 2],
    limit: u64,
}

impl Model {
    fn end(&mut self, c: u8) {
        let m = self.calls.remove(&c).unwrap();
        self.active[m.trunk as usize] -= 1;
    }
    fn bye(&mut self, c: u8, tg: u8) -> bool {
        match self.calls.get_mut(&c) {
            Some(mc) if mc.state(tg).is_some() => {
                if matches!(mc.own, Some((o, _, true)) if o == tg) {
                    mc.own.as_mut().unwrap().2 = false;
                } else {
                    mc.forks.remove(&tg);
                }
                mc.answer.remove(&tg);
                self.end_if_over(c);
                true
            }
            _ => false,
        }
    }
    fn end_if_over(&mut self, c: u8) {
        if self.calls[&c].over() {
            self.end(c);
        }
    }
}

fn run_model(ops: Vec<Op>) {
    let t = DialogTable::new(cfg(16, 16));
    let limit = 3;
    t.set_trunk_limit(1, Some(limit as u32));
    let mut m = Model {
        limit,
        ..Model::default()
    };
    let mut now = 1u64;
    for (step, op) in ops.into_iter().enumerate() {
        let ctx = format!("step {step}: {op:?}");
        match op {
            Op::Invite(c, trunk) => {
                let got = t.on_invite(call(c as u64), trunk as u32, "", "", now);
                let want = if let Some(mc) = m.calls.get_mut(&c) {
                    mc.last = mc.last.max(now);
                    "existing"
                } else if trunk == 1 && m.active[1] >= m.limit {
                    "trunk"
                } else {
                    m.active[trunk as usize] += 1;
                    m.calls.insert(
                        c,
                        MCall {
                            trunk: trunk as u32,
                            last: now,
                            start: now,
                            ..MCall::default()
                        },
                    );
                    "created"
                };
                let got = match got {
                    Ok(InviteOutcome::Created(_)) => "created",
                    Ok(InviteOutcome::Existing(_)) => "existing",
                    Err(Refused::TrunkLimit) => "trunk",
                    Err(Refused::Full) => "full",
                };
                assert_eq!(got, want, "{ctx}");
            }
            Op::Resp(c, tg, status) => {
                let got = t.on_response(call(c as u64), tg.map(|x| tag(x as u64)), status, now);
                let want = match m.calls.get_mut(&c) {
                    None => ResponseOutcome::UnknownCall,
                    Some(mc) if status >= 300 => {
                        if mc.answered {
                            if let Some((o, false, true)) = mc.own {
                                mc.answer.remove(&o);
                                mc.own.as_mut().unwrap().2 = false;
                            }
                            mc.forks.retain(|_, f| f.0);
                            m.end_if_over(c);
                        } else {
                            m.end(c);
                        }
                        ResponseOutcome::Ended
                    }
                    Some(mc) => match tg {
                        None if status >= 200 => ResponseOutcome::Ignored,
                        None => {
                            mc.last = now;
                            ResponseOutcome::Touched
                        }
                        Some(tg) => {
                            let confirm = status >= 200;
                            let prev = mc.state(tg);
                            let own_tag =
                                matches!(mc.own, Some((o, _, true)) if o == tg) || mc.own.is_none();
                            if own_tag {
                                let was = mc.own.map(|o| o.1).unwrap_or(false);
                                mc.own = Some((tg, was || confirm, true));
                                mc.last = mc.last.max(now);
                            } else {
                                let f = mc.forks.entry(tg).or_insert((false, now));
                                f.0 |= confirm;
                                f.1 = f.1.max(now);
                            }
                            if confirm {
                                mc.answered = true;
                                mc.answer.entry(tg).or_insert(now);
                                ResponseOutcome::Confirmed {
                                    first: prev != Some(true),
                                }
                            } else if prev == Some(true) {
                                ResponseOutcome::Confirmed { first: false }
                            } else {
                                ResponseOutcome::Early {
                                    created: prev.is_none(),
                                }
                            }
                        }
                    },
                };
                assert_eq!(got, want, "{ctx}");
            }
            Op::Cancel(c) => {
                let got = t.on_cancel(call(c as u64), now);
                let want = match m.calls.get(&c) {
                    Some(mc) if !mc.answered => {
                        m.end(c);
                        true
                    }
                    _ => false,
                };
                assert_eq!(got, want, "{ctx}");
            }
            Op::Bye(c, tg, swapped) => {
                let (cl, tg_) = (call(c as u64), tag(tg as u64));
                let key = if swapped {
                    from_callee(cl, tg_)
                } else {
                    cl.dialog(tg_)
                };
                let got = t.on_bye(key, now);
                assert_eq!(got, m.bye(c, tg), "{ctx}");
            }
            Op::ByeResp(c, tg, st) => {
                let got = t.on_bye_response(call(c as u64).dialog(tag(tg as u64)), st, now);
                assert_eq!(got, m.bye(c, tg), "{ctx}");
            }
            Op::Touch(c, tg) => {
                let got = t.touch(call(c as u64).dialog(tag(tg as u64)), now);
                let want = match m.calls.get_mut(&c) {
                    Some(mc) if mc.state(tg).is_some() => {
                        if matches!(mc.own, Some((o, _, true)) if o == tg) {
                            mc.last = now;
                        } else {
                            mc.forks.get_mut(&tg).unwrap().1 = now;
                        }
                        true
                    }
                    _ => false,
                };
                assert_eq!(got, want, "{ctx}");
            }
            Op::Lookup(c, tg) => {
                let got = t
                    .lookup(call(c as u64).dialog(tag(tg as u64)))
                    .map(|i| (i.state == DialogState::Confirmed, i.answer_ms, i.start_ms));
                let want = m.calls.get(&c).and_then(|mc| {
                    mc.state(tg).map(|conf| {
                        (
                            conf,
                            if conf {
                                mc.answer.get(&tg).copied()
                            } else {
                                None
                            },
                            mc.start,
                        )
                    })
                });
                assert_eq!(got, want, "{ctx}");
            }
            Op::LookupCall(c) => {
                let got = t
                    .lookup_call(call(c as u64))
                    .map(|i| (i.answered, i.forks, i.trunk, i.start_ms));
                let want = m
                    .calls
                    .get(&c)
                    .map(|mc| (mc.answered, mc.forks.len() as u32, mc.trunk, mc.start));
                assert_eq!(got, want, "{ctx}");
            }
            Op::Expire => {
                let got = t.expire(now, usize::MAX);
                let mut want = 0;
                let keys: Vec<u8> = m.calls.keys().copied().collect();
                for c in keys {
                    let mc = m.calls.get_mut(&c).unwrap();
                    let before = mc.forks.len();
                    let answer = &mut mc.answer;
                    mc.forks.retain(|tg, f| {
                        let keep = now < f.1 + if f.0 { SESSION } else { EARLY };
                        if !keep {
                            answer.remove(tg);
                        }
                        keep
                    });
                    want += before - mc.forks.len();
                    if let Some((o, conf, true)) = mc.own
                        && now >= mc.last + if conf { SESSION } else { EARLY }
                    {
                        mc.own.as_mut().unwrap().2 = false;
                        mc.answer.remove(&o);
                        want += 1;
                    }
                    if mc.own.is_none() && !mc.answered && now >= mc.last + EARLY {
                        want += 1;
                        m.end(c);
                        continue;
                    }
                    m.end_if_over(c);
                }
                assert_eq!(got, want, "{ctx}");
            }
            Op::Advance(d) => now += d as u64,
            Op::Prefetch(c) => {
                t.prefetch(call(c as u64));
                t.prefetch_call_id(&[c]);
            }
        }
        // Gauges follow the model after every step.
        let s = t.stats();
        let early: usize = m
            .calls
            .values()
            .map(|mc| {
                mc.forks.values().filter(|f| !f.0).count()
                    + matches!(mc.own, Some((_, false, true))) as usize
            })
            .sum();
        let confirmed: usize = m
            .calls
            .values()
            .map(|mc| {
                mc.forks.values().filter(|f| f.0).count()
                    + matches!(mc.own, Some((_, true, true))) as usize
            })
            .sum();
        assert_eq!(
            (s.calls_active, s.early, s.confirmed),
            (m.calls.len() as u64, early as u64, confirmed as u64),
            "{ctx}"
        );
        assert_eq!(t.trunk_active(0), m.active[0], "{ctx}");
        assert_eq!(t.trunk_active(1), m.active[1], "{ctx}");
        assert_eq!(
            s.dialogs_created,
            s.dialogs_terminated + s.early + s.confirmed,
            "{ctx}"
        );
        assert_eq!(s.calls_created, s.calls_ended + s.calls_active, "{ctx}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn table_matches_hashmap_model(ops in proptest::collection::vec(op(), 1..120)) {
        run_model(ops);
    }
}
