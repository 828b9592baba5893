//! Model-checked interleavings of the slot protocol (loom), 2-3 threads on a 3-slot table so
//! every thread probes the same window. Run (a few seconds after the build; `LOOM_MAX_PREEMPTIONS=n` to search deeper than 5):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p sipd --release --lib --target-dir target/loom dialog::loom
//! ```

use loom::sync::Arc;
use loom::thread;

use super::*;

fn table() -> DialogTable {
    DialogTable::new(DialogConfig {
        capacity: 1,
        probe_window: 3,
        early_timeout_ms: 100,
        session_timeout_ms: 1000,
        max_trunks: 2,
    })
}

fn call() -> CallKey {
    CallKey::from_hashes(42, Tag::from_hash(7))
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(5);
    }
    b.check(f);
}

/// Every gauge and count agrees with a walk over the slots, and nothing is left mid-claim.
fn settled(t: &DialogTable) -> DialogStats {
    let s = t.stats();
    let c = t.census();
    assert_eq!(c.transient, 0);
    assert_eq!(c.calls, s.calls_active);
    assert_eq!((c.early, c.confirmed), (s.early, s.confirmed));
    assert_eq!(c.children, c.forks);
    assert_eq!(s.calls_created, s.calls_ended + s.calls_active);
    assert_eq!(
        s.dialogs_created,
        s.dialogs_terminated + s.early + s.confirmed
    );
    assert_eq!(t.trunk_active(1), s.calls_active);
    s
}

#[test]
fn racing_invites_create_one_call() {
    model(|| {
        let t = Arc::new(table());
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_invite(call(), 1, "", "", 1).unwrap());
        let a = t.on_invite(call(), 1, "", "", 1).unwrap();
        let b = h.join().unwrap();
        let created = [a, b]
            .iter()
            .filter(|o| matches!(o, InviteOutcome::Created(_)))
            .count();
        assert_eq!(created, 1);
        // Both see the winner's handle (unless the loser saw the winner while it was RESERVED
        // at another index, which still names the one call that exists).
        let s = settled(&t);
        assert_eq!(s.calls_active, 1);
    });
}

#[test]
fn provisional_and_final_race_for_one_dialog() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_response(call(), Some(Tag::from_hash(9)), 180, 2));
        let r = t.on_response(call(), Some(Tag::from_hash(9)), 200, 3);
        let _ = h.join().unwrap();
        assert_eq!(r, ResponseOutcome::Confirmed { first: true });
        let s = settled(&t);
        assert_eq!((s.early, s.confirmed, s.dialogs_created), (0, 1, 1));
        let d = t.lookup(call().dialog(Tag::from_hash(9))).unwrap();
        assert_eq!(d.state, DialogState::Confirmed);
    });
}

#[test]
fn forks_with_the_same_tag_race_to_one_slot() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        t.on_response(call(), Some(Tag::from_hash(8)), 180, 1);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_response(call(), Some(Tag::from_hash(9)), 183, 2));
        let r = t.on_response(call(), Some(Tag::from_hash(9)), 200, 3);
        let _ = h.join().unwrap();
        assert_eq!(r, ResponseOutcome::Confirmed { first: true });
        let s = settled(&t);
        assert_eq!((s.early, s.confirmed, s.dialogs_created), (1, 1, 2));
        assert_eq!(t.census().forks, 1);
    });
}

/// A 180 tags the call slot (one CAS on `to`) while a CANCEL ends the call (closing `to`):
/// whichever CAS wins, the dialog is counted created and ended by exactly one thread each.
#[test]
fn provisional_racing_cancel_counts_the_dialog_once() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_response(call(), Some(Tag::from_hash(9)), 180, 2));
        assert!(t.on_cancel(call(), 2));
        let r = h.join().unwrap();
        assert!(
            matches!(
                r,
                ResponseOutcome::Early { created: true } | ResponseOutcome::UnknownCall
            ),
            "{r:?}"
        );
        let s = settled(&t);
        assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0));
        assert_eq!(s.dialogs_created, s.dialogs_terminated);
        assert_eq!(t.census(), Census::default());
    });
}

/// Two To tags race for the call slot's own dialog: one gets it, the other a fork.
#[test]
fn two_tags_race_for_the_call_slot() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_response(call(), Some(Tag::from_hash(8)), 180, 2));
        let a = t.on_response(call(), Some(Tag::from_hash(9)), 180, 2);
        let b = h.join().unwrap();
        assert_eq!(a, ResponseOutcome::Early { created: true });
        assert_eq!(b, ResponseOutcome::Early { created: true });
        let s = settled(&t);
        assert_eq!((s.early, s.dialogs_created), (2, 2));
        let c = t.census();
        assert_eq!((c.calls, c.forks, c.children), (1, 1, 1));
        assert!(t.lookup(call().dialog(Tag::from_hash(8))).is_some());
        assert!(t.lookup(call().dialog(Tag::from_hash(9))).is_some());
    });
}

#[test]
fn bye_and_timeout_end_a_dialog_once() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        t.on_response(call(), Some(Tag::from_hash(9)), 200, 1);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.expire(5000, 3));
        let bye = t.on_bye(call().dialog(Tag::from_hash(9)), 5000);
        let expired = h.join().unwrap();
        assert_eq!(bye as usize + expired, 1);
        let s = settled(&t);
        assert_eq!(
            (s.calls_active, s.dialogs_terminated, s.calls_ended),
            (0, 1, 1)
        );
    });
}

#[test]
fn cancel_racing_a_new_fork_leaves_nothing() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        t.on_response(call(), Some(Tag::from_hash(8)), 180, 1);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_response(call(), Some(Tag::from_hash(9)), 180, 2));
        assert!(t.on_cancel(call(), 2));
        let _ = h.join().unwrap();
        let s = settled(&t);
        assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0));
        assert_eq!(t.census(), Census::default());
    });
}

#[test]
fn bye_of_the_first_dialog_racing_the_last_fork() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        t.on_response(call(), Some(Tag::from_hash(8)), 200, 1);
        t.on_response(call(), Some(Tag::from_hash(9)), 200, 1);
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_bye(call().dialog(Tag::from_hash(9)), 2));
        assert!(t.on_bye(call().dialog(Tag::from_hash(8)), 2));
        assert!(h.join().unwrap());
        let s = settled(&t);
        assert_eq!(
            (s.calls_active, s.calls_ended, s.dialogs_terminated),
            (0, 1, 2)
        );
    });
}

#[test]
fn three_threads_invite_answer_and_cancel() {
    model(|| {
        let t = Arc::new(table());
        t.on_invite(call(), 1, "", "", 1).unwrap();
        let (t2, t3) = (t.clone(), t.clone());
        let a = thread::spawn(move || t2.on_response(call(), Some(Tag::from_hash(9)), 200, 2));
        let b = thread::spawn(move || t3.on_cancel(call(), 2));
        let _ = t.on_invite(call(), 1, "", "", 2);
        let answered = matches!(a.join().unwrap(), ResponseOutcome::Confirmed { .. });
        let cancelled = b.join().unwrap();
        // CANCEL wins only over an unanswered call; then the 2xx finds nothing.
        assert!(answered != cancelled);
        let s = settled(&t);
        assert_eq!(s.calls_active, answered as u64);
    });
}

/// Two home buckets, so the calls below (all homed at bucket 0) are displaced past it and are
/// found only through the probe length hint.
fn two_buckets() -> DialogTable {
    DialogTable::new(DialogConfig {
        capacity: 2,
        probe_window: 3,
        early_timeout_ms: 100,
        session_timeout_ms: 1000,
        max_trunks: 2,
    })
}

fn call_n(cid: u64) -> CallKey {
    CallKey::from_hashes(cid, Tag::from_hash(7))
}

#[test]
fn racing_invites_of_a_displaced_call_create_one() {
    model(|| {
        let t = Arc::new(two_buckets());
        // Occupies the home slot: both claimers below land further on and raise the hint.
        t.on_invite(call_n(42), 1, "", "", 1).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_invite(call_n(43), 1, "", "", 1).unwrap());
        let a = t.on_invite(call_n(43), 1, "", "", 1).unwrap();
        let b = h.join().unwrap();
        let created = [a, b]
            .iter()
            .filter(|o| matches!(o, InviteOutcome::Created(_)))
            .count();
        assert_eq!(created, 1);
        assert!(t.lookup_call(call_n(43)).is_some());
        let s = settled(&t);
        assert_eq!(s.calls_active, 2);
    });
}

#[test]
fn displaced_call_stays_visible_while_its_home_is_freed_and_reused() {
    model(|| {
        let t = Arc::new(two_buckets());
        t.on_invite(call_n(42), 1, "", "", 1).unwrap();
        // Displaced to distance 1.
        t.on_invite(call_n(43), 1, "", "", 1).unwrap();
        let (t2, t3) = (t.clone(), t.clone());
        // The home slot becomes a tombstone, and a third call takes it or a slot further on.
        let a = thread::spawn(move || assert!(t2.on_cancel(call_n(42), 2)));
        let b = thread::spawn(move || t3.on_invite(call_n(44), 1, "", "", 2).unwrap());
        // A lookup of the displaced call never misses it.
        assert!(t.lookup_call(call_n(43)).is_some());
        a.join().unwrap();
        b.join().unwrap();
        assert!(t.lookup_call(call_n(43)).is_some());
        assert!(t.lookup_call(call_n(44)).is_some());
        let s = settled(&t);
        assert_eq!(s.calls_active, 2);
    });
}

#[test]
fn displaced_invite_racing_its_answer_and_lookup() {
    model(|| {
        let t = Arc::new(two_buckets());
        t.on_invite(call_n(42), 1, "", "", 1).unwrap();
        let t2 = t.clone();
        let h = thread::spawn(move || t2.on_invite(call_n(43), 1, "", "", 1).unwrap());
        // The 2xx may come before the call is visible (UnknownCall) but, once it confirmed the
        // dialog, a lookup finds it.
        let r = t.on_response(call_n(43), Some(Tag::from_hash(9)), 200, 2);
        h.join().unwrap();
        // Once its INVITE returned, the displaced call is found (through the hint).
        assert!(t.lookup_call(call_n(43)).is_some());
        let d = t.lookup(call_n(43).dialog(Tag::from_hash(9)));
        match r {
            ResponseOutcome::Confirmed { first: true } => {
                assert_eq!(d.unwrap().state, DialogState::Confirmed)
            }
            ResponseOutcome::UnknownCall => assert!(d.is_none()),
            other => panic!("{other:?}"),
        }
        settled(&t);
    });
}
