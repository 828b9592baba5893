//! Issue 5, through the proxy core: the RFC 3261 call flows of the simulated network
//! (`tests/proxy_support/sim.rs`: Alice -> atlanta.com -> biloxi.com -> Bob, both proxies
//! record-routing, 10 ms links) leave exactly the expected call records in biloxi.com's dialog
//! table, whose record sink is kept in memory. Covered: a completed call, a CANCEL and a 486
//! before answer, a fork with two early dialogs, a confirmed call reaped by the session timeout,
//! and a trunk limit of one call. After each flow every gauge is back to zero.
//!
//! Timing on the simulated wire (10 ms a link, Alice starts at 0): biloxi.com sees the INVITE at
//! 20 ms, Bob rings at 30 ms (biloxi.com sees the 180 at 40 ms), Bob's final response (300 ms
//! after the INVITE) leaves at 330 ms and reaches biloxi.com at 340 ms, Alice's ACK reaches it at
//! 380 ms, and her BYE (`bye_after` after the 2xx reached her at 360 ms) 20 ms after she sent it.

#[path = "proxy_support/mod.rs"]
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use sipd::config::Trunk;
use sipd::dialog::{
    DialogConfig, DialogStats, DialogTable, EndReason, RecordEvent, RecordSink, RecordTap,
};
use sipd::proxy::{Health, Proxy, StaticLocation, Transport};
use sipd::xdp::Cidr;
use support::addr;
use support::sim::{Answer, ProxyNode, Sim, Uac, UacPlan, Uas};

use support::sim::rfc3261::{ALICE, ATLANTA, BILOXI, BOB};

/// What biloxi.com's table records: the From URI and the Request-URI it received (before its
/// location service retargets it to Bob's contact).
const CALLER: &str = "sip:alice@atlanta.com";
const CALLEE: &str = "sip:bob@biloxi.com";

const INVITE_AT_BILOXI: u64 = 20;
const FINAL_AT_BILOXI: u64 = 340;
const ACK_AT_BILOXI: u64 = 380;
/// Alice got the 2xx at 360 ms.
const OK_AT_ALICE: u64 = 360;

const SESSION_TIMEOUT: u64 = 60_000;
const EARLY_TIMEOUT: u64 = 30_000;

/// One line of the call record file, as the record writer joins it (`Started` gives the parties,
/// `Ended` the times).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    id: u64,
    start_ms: u64,
    answer_ms: Option<u64>,
    end_ms: u64,
    duration_ms: u64,
    caller: String,
    callee: String,
    reason: EndReason,
    status: Option<u16>,
}

/// Joins the in-memory sink's events the way `RecordWriter` does, and checks their order: a
/// call's `Started` comes first, nothing comes after its close.
struct Records {
    tap: RecordTap,
    parties: HashMap<u64, (String, String)>,
    closed: HashSet<u64>,
    lines: Vec<Line>,
}

impl Records {
    fn new(tap: RecordTap) -> Records {
        Records {
            tap,
            parties: HashMap::new(),
            closed: HashSet::new(),
            lines: Vec::new(),
        }
    }

    /// Lines written since the last call.
    fn take(&mut self) -> Vec<Line> {
        for ev in self.tap.drain() {
            match ev {
                RecordEvent::Started { id, caller, callee } => {
                    assert!(
                        !self.closed.contains(&id),
                        "call {id} started after its close"
                    );
                    let fresh = self
                        .parties
                        .insert(id, (caller.as_str().into(), callee.as_str().into()))
                        .is_none();
                    assert!(fresh, "call {id} started twice");
                }
                RecordEvent::Ended {
                    id,
                    start_ms,
                    answer_ms,
                    end_ms,
                    reason,
                    status,
                    close,
                } => {
                    assert!(
                        !self.closed.contains(&id),
                        "call {id}: a record after its close"
                    );
                    let (caller, callee) = self
                        .parties
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| panic!("call {id} ended before it started"));
                    self.lines.push(Line {
                        id,
                        start_ms,
                        answer_ms,
                        end_ms,
                        duration_ms: answer_ms.map_or(0, |a| end_ms - a),
                        caller,
                        callee,
                        reason,
                        status,
                    });
                    if close {
                        self.close(id);
                    }
                }
                RecordEvent::Closed { id } => self.close(id),
            }
        }
        std::mem::take(&mut self.lines)
    }

    fn close(&mut self, id: u64) {
        assert!(self.parties.remove(&id).is_some(), "call {id} closed twice");
        self.closed.insert(id);
    }

    /// Calls started and not closed yet.
    fn open(&self) -> usize {
        self.parties.len()
    }
}

struct World {
    sim: Sim,
    biloxi: usize,
    bob: usize,
    table: Arc<DialogTable>,
    sink: RecordSink,
    records: Records,
}

impl World {
    fn stats(&self) -> DialogStats {
        self.table.stats()
    }

    fn uac(&self, i: usize) -> &Uac {
        self.sim.node(i)
    }

    fn biloxi(&self) -> &ProxyNode {
        self.sim.node(self.biloxi)
    }

    /// Every gauge at zero and every call's records closed.
    #[track_caller]
    fn assert_idle(&mut self) {
        let s = self.stats();
        assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0), "{s:?}");
        let c = self.table.census();
        assert_eq!(
            (c.calls, c.forks, c.early, c.confirmed, c.transient),
            (0, 0, 0, 0, 0),
            "{c:?}"
        );
        for trunk in 0..4 {
            assert_eq!(self.table.trunk_active(trunk), 0, "trunk {trunk}");
        }
        assert!(self.records.take().is_empty());
        assert_eq!(self.records.open(), 0, "a call was never closed");
        assert_eq!(self.sink_dropped(), 0);
    }

    fn sink_dropped(&self) -> u64 {
        self.sink.dropped()
    }
}

/// The RFC 3261 §4 world of `tests/proxy_sim.rs`; biloxi.com tracks calls, with atlanta.com
/// (10.0.0.2/32) as trunk 1.
fn world(callers: Vec<Uac>, bob: Uas, trunk_limit: Option<u32>) -> (World, Vec<usize>) {
    world_on(Sim::new(10, 0, 1), callers, bob, trunk_limit)
}

fn world_on(
    mut sim: Sim,
    callers: Vec<Uac>,
    bob: Uas,
    trunk_limit: Option<u32>,
) -> (World, Vec<usize>) {
    let (atlanta_cfg, location, biloxi_cfg) = support::sim::rfc3261::configs();
    let (sink, tap) = RecordSink::in_memory(1024);
    let table = Arc::new(DialogTable::with_records(
        DialogConfig {
            capacity: 256,
            probe_window: 16,
            early_timeout_ms: EARLY_TIMEOUT,
            session_timeout_ms: SESSION_TIMEOUT,
            max_trunks: 4,
        },
        sink.clone(),
    ));
    let trunks = vec![Trunk {
        name: "atlanta".into(),
        sources: vec![Cidr::new(addr(ATLANTA).ip(), 32).unwrap()],
        max_calls: trunk_limit,
    }];
    table.set_trunk_limit(1, trunk_limit);
    let atlanta = Proxy::new(
        Arc::new(atlanta_cfg),
        Arc::new(StaticLocation::new()),
        Health::new(0),
    );
    let biloxi = Proxy::new(Arc::new(biloxi_cfg), Arc::new(location), Health::new(0))
        .with_dialogs(table.clone(), Arc::new(trunks));
    let uacs = callers.into_iter().map(|u| sim.add(u)).collect();
    sim.add(ProxyNode::new(addr(ATLANTA), atlanta, None));
    let biloxi = sim.add(ProxyNode::new(addr(BILOXI), biloxi, None));
    let bob = sim.add(bob);
    let w = World {
        sim,
        biloxi,
        bob,
        table,
        records: Records::new(tap),
        sink,
    };
    (w, uacs)
}

fn alice(plan: UacPlan) -> Uac {
    Uac::new(addr(ALICE), addr(ATLANTA), CALLEE, plan)
}

fn plan(bye_after: u64) -> UacPlan {
    UacPlan {
        start_at: 0,
        cancel_after_ringing: None,
        bye_after,
    }
}

fn bob(answer: Answer) -> Uas {
    Uas::new(addr(BOB), "bob", answer)
}

fn unanswered(id: u64, end_ms: u64, reason: EndReason, status: Option<u16>) -> Line {
    Line {
        id,
        start_ms: INVITE_AT_BILOXI,
        answer_ms: None,
        end_ms,
        duration_ms: 0,
        caller: CALLER.into(),
        callee: CALLEE.into(),
        reason,
        status,
    }
}

fn answered(id: u64, answer_ms: u64, end_ms: u64, reason: EndReason) -> Line {
    Line {
        id,
        start_ms: INVITE_AT_BILOXI,
        answer_ms: Some(answer_ms),
        end_ms,
        duration_ms: end_ms - answer_ms,
        caller: CALLER.into(),
        callee: CALLEE.into(),
        reason,
        status: None,
    }
}

#[test]
fn completed_call_leaves_one_record_with_answer_end_duration_and_parties() {
    let (mut w, uacs) = world(vec![alice(plan(2_000))], bob(Answer::Ok(300)), None);
    // Ringing: one call with one early dialog.
    w.sim.run_until(100);
    let s = w.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 1, 0), "{s:?}");
    assert_eq!(w.table.census().calls, 1);
    // Answered and ACKed: confirmed, no record yet.
    w.sim.run_until(1_000);
    let s = w.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 0, 1), "{s:?}");
    assert_eq!(w.table.trunk_active(1), 1);
    assert!(w.records.take().is_empty());

    w.sim.run_until(60_000);
    assert_eq!(w.uac(uacs[0]).bye_final, Some(200));
    let bye_at_biloxi = OK_AT_ALICE + 2_000 + 20;
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let id = lines[0].id;
    assert_eq!(
        lines[0],
        answered(id, FINAL_AT_BILOXI, bye_at_biloxi, EndReason::Bye)
    );
    assert_eq!(lines[0].duration_ms, 2_040);
    let s = w.stats();
    assert_eq!(
        (
            s.calls_created,
            s.calls_ended,
            s.dialogs_created,
            s.dialogs_confirmed,
            s.dialogs_terminated,
            s.dialogs_expired,
            s.retransmissions,
            s.untracked,
        ),
        (1, 1, 1, 1, 1, 0, 0, 0),
        "{s:?}"
    );
    // The BYE's 200 found the dialog already gone: nothing more.
    assert!(w.biloxi().replies.is_empty() && w.biloxi().drops.is_empty());
    w.assert_idle();
}

#[test]
fn cancel_before_answer_leaves_an_unanswered_cancelled_record() {
    let plan = UacPlan {
        cancel_after_ringing: Some(500),
        ..plan(2_000)
    };
    let (mut w, uacs) = world(vec![alice(plan)], bob(Answer::Never), None);
    w.sim.run_until(60_000);
    let uac = w.uac(uacs[0]);
    assert_eq!((uac.invite_final, uac.cancel_final), (Some(487), Some(200)));
    // Alice had the 180 at 60 ms and cancels 500 ms later; biloxi.com sees it 20 ms after.
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        unanswered(lines[0].id, 580, EndReason::Cancelled, None)
    );
    let s = w.stats();
    assert_eq!(
        (s.calls_created, s.calls_ended, s.dialogs_confirmed),
        (1, 1, 0)
    );
    w.assert_idle();
}

#[test]
fn busy_here_leaves_an_unanswered_rejected_record_with_its_status() {
    let (mut w, uacs) = world(
        vec![alice(plan(2_000))],
        bob(Answer::Reject(486, 300)),
        None,
    );
    w.sim.run_until(60_000);
    assert_eq!(w.uac(uacs[0]).invite_final, Some(486));
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        unanswered(lines[0].id, FINAL_AT_BILOXI, EndReason::Rejected, Some(486))
    );
    w.assert_idle();
}

#[test]
fn forked_invite_shows_two_early_dialogs_and_records_only_the_answered_one() {
    // Bob's two phones ring (two 180s, To tags a6c85cf and b7e93d1); the second answers.
    let mut phones = bob(Answer::Ok(300));
    phones.ring_tags = vec!["a6c85cf".into(), "b7e93d1".into()];
    phones.to_tag = "b7e93d1".into();
    let (mut w, uacs) = world(vec![alice(plan(2_000))], phones, None);

    w.sim.run_until(100);
    let s = w.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 2, 0), "{s:?}");
    assert_eq!(s.dialogs_created, 2);
    let c = w.table.census();
    assert_eq!((c.calls, c.forks, c.early), (1, 1, 2), "{c:?}");

    // The 2xx confirms the second dialog; the first stays early (it could still answer).
    w.sim.run_until(1_000);
    assert_eq!(w.uac(uacs[0]).to_tag.as_deref(), Some("b7e93d1"));
    let s = w.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 1, 1), "{s:?}");

    // The BYE ends the confirmed dialog: its record. The early one is left to time out.
    w.sim.run_until(10_000);
    assert_eq!(w.uac(uacs[0]).bye_final, Some(200));
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let id = lines[0].id;
    assert_eq!(
        lines[0],
        answered(id, FINAL_AT_BILOXI, OK_AT_ALICE + 2_020, EndReason::Bye)
    );
    let s = w.stats();
    assert_eq!((s.calls_active, s.early, s.confirmed), (1, 1, 0), "{s:?}");
    assert_eq!(w.records.open(), 1, "the call is open while a dialog lives");

    // The unchosen early dialog (last traffic: its 180 at 40 ms) expires after the early
    // timeout and closes the call without a line of its own: it never carried a call.
    let last = 40;
    assert_eq!(w.table.expire(last + EARLY_TIMEOUT - 1, w.table.slots()), 0);
    assert_eq!(w.table.expire(last + EARLY_TIMEOUT, w.table.slots()), 1);
    let s = w.stats();
    assert_eq!(
        (s.calls_created, s.calls_ended, s.dialogs_created),
        (1, 1, 2),
        "{s:?}"
    );
    assert_eq!(
        (s.dialogs_confirmed, s.dialogs_terminated, s.dialogs_expired),
        (1, 2, 1),
        "{s:?}"
    );
    w.assert_idle();
}

#[test]
fn forked_invite_rejected_ends_both_early_dialogs_in_one_unanswered_record() {
    let mut phones = bob(Answer::Reject(486, 300));
    phones.ring_tags = vec!["a6c85cf".into(), "b7e93d1".into()];
    let (mut w, uacs) = world(vec![alice(plan(2_000))], phones, None);
    w.sim.run_until(100);
    assert_eq!(w.stats().early, 2);
    w.sim.run_until(60_000);
    assert_eq!(w.uac(uacs[0]).invite_final, Some(486));
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        unanswered(lines[0].id, FINAL_AT_BILOXI, EndReason::Rejected, Some(486))
    );
    let s = w.stats();
    assert_eq!((s.dialogs_created, s.dialogs_terminated), (2, 2), "{s:?}");
    w.assert_idle();
}

#[test]
fn confirmed_call_without_traffic_is_reaped_after_the_session_timeout() {
    // Alice never hangs up.
    let (mut w, uacs) = world(vec![alice(plan(u64::MAX / 4))], bob(Answer::Ok(300)), None);
    w.sim.run_until(5_000);
    assert_eq!(w.uac(uacs[0]).invite_final, Some(200));
    assert_eq!(w.stats().confirmed, 1);
    // Bob stopped retransmitting his 2xx once the ACK arrived: the ACK was the last traffic.
    let deadline = ACK_AT_BILOXI + SESSION_TIMEOUT;
    assert_eq!(w.table.expire(deadline - 1, w.table.slots()), 0);
    assert_eq!(w.stats().confirmed, 1);
    assert!(w.records.take().is_empty());

    let now = deadline + 500;
    assert_eq!(w.table.expire(now, w.table.slots()), 1);
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(
        lines[0],
        answered(lines[0].id, FINAL_AT_BILOXI, now, EndReason::Timeout)
    );
    let s = w.stats();
    assert_eq!((s.dialogs_expired, s.calls_ended), (1, 1), "{s:?}");
    // A second sweep finds nothing.
    assert_eq!(w.table.expire(now + 1, w.table.slots()), 0);
    w.assert_idle();
}

#[test]
fn in_dialog_traffic_through_the_proxy_defers_the_session_timeout() {
    let (mut w, _) = world(vec![alice(plan(u64::MAX / 4))], bob(Answer::Ok(300)), None);
    w.sim.run_until(5_000);
    // A re-INVITE-like refresh would do; the ACK retransmitted by hand is in-dialog traffic too.
    let ack = w
        .sim
        .records(addr(ATLANTA), addr(BILOXI))
        .into_iter()
        .find(|r| r.label() == "ACK")
        .expect("ACK through biloxi.com")
        .msg
        .bytes
        .clone();
    let later = 40_000;
    let input = sipd::proxy::Input {
        now_ms: later,
        source: addr(ATLANTA),
        local: addr(BILOXI),
        transport: Transport::Udp,
        bytes: &ack,
    };
    let mut buf = vec![0; 65_536];
    let biloxi: &mut ProxyNode = w.sim.node_mut(w.biloxi);
    assert!(matches!(
        biloxi.proxy.handle(&input, &mut buf),
        sipd::proxy::Action::Forward { .. }
    ));
    assert_eq!(
        w.table
            .expire(ACK_AT_BILOXI + SESSION_TIMEOUT, w.table.slots()),
        0
    );
    assert_eq!(w.table.expire(later + SESSION_TIMEOUT, w.table.slots()), 1);
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].reason, EndReason::Timeout);
    w.assert_idle();
}

#[test]
fn trunk_limit_of_one_answers_the_second_concurrent_invite_503() {
    let first = alice(plan(2_000));
    let mut second = Uac::new(addr("10.0.0.5:5060"), addr(ATLANTA), CALLEE, plan(2_000));
    second.plan.start_at = 100;
    second.call_id = "second-call@pc34.atlanta.com".into();
    second.from_tag = "8a7b6c".into();
    // After the first call is over, the trunk has room again.
    let mut third = Uac::new(addr("10.0.0.6:5060"), addr(ATLANTA), CALLEE, plan(1_000));
    third.plan.start_at = 10_000;
    third.call_id = "third-call@pc35.atlanta.com".into();
    third.from_tag = "9b8c7d".into();
    let (mut w, uacs) = world(vec![first, second, third], bob(Answer::Ok(300)), Some(1));

    w.sim.run_until(5_000);
    assert_eq!(w.uac(uacs[0]).invite_final, Some(200));
    assert_eq!(w.uac(uacs[1]).invite_final, Some(503));
    // biloxi.com answered the second INVITE itself, when it arrived (100 + 20 ms).
    assert_eq!(w.biloxi().replies, vec![(120, 503)]);
    let reply = w
        .sim
        .records(addr(BILOXI), addr(ATLANTA))
        .into_iter()
        .find(|r| r.msg.status() == Some(503))
        .unwrap()
        .msg
        .clone();
    assert_eq!(reply.first_line(), "SIP/2.0 503 Trunk Call Limit Reached");
    // Bob only ever saw the first call's INVITE.
    let bob: &Uas = w.sim.node(w.bob);
    assert_eq!(bob.requests("INVITE").len(), 1);
    let s = w.stats();
    assert_eq!((s.refused_trunk, s.calls_created), (1, 1), "{s:?}");
    assert_eq!(
        w.table.trunk_active(1),
        0,
        "the first call ended at 2,380 ms"
    );
    let lines = w.records.take();
    assert_eq!(
        lines.len(),
        1,
        "only the first call has a record: {lines:?}"
    );
    assert_eq!(lines[0].reason, EndReason::Bye);

    w.sim.run_until(10_100);
    assert_eq!(w.table.trunk_active(1), 1);
    w.sim.run_until(60_000);
    assert_eq!(w.uac(uacs[2]).invite_final, Some(200));
    assert_eq!(w.uac(uacs[2]).bye_final, Some(200));
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].reason, EndReason::Bye);
    assert_eq!(w.stats().refused_trunk, 1);
    w.assert_idle();
}

#[test]
fn retransmitted_invite_is_one_call_and_one_record() {
    // 300 ms links: Alice's Timer A fires twice before the 180 is back (as in proxy_sim.rs).
    let (mut w, uacs) = world_on(
        Sim::new(300, 0, 4),
        vec![alice(plan(2_000))],
        bob(Answer::Ok(2_500)),
        None,
    );
    w.sim.run_until(60_000);
    assert_eq!(w.uac(uacs[0]).bye_final, Some(200));
    let s = w.stats();
    assert_eq!(
        (s.calls_created, s.retransmissions, s.dialogs_created),
        (1, 2, 1),
        "{s:?}"
    );
    let lines = w.records.take();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    // The call started with the first copy of the INVITE at biloxi.com (600 ms).
    assert_eq!(
        (l.start_ms, l.reason, l.caller.as_str(), l.callee.as_str()),
        (600, EndReason::Bye, CALLER, CALLEE)
    );
    w.assert_idle();
}

#[test]
fn lossy_network_still_leaves_exactly_one_record_per_call() {
    for seed in 1..=20 {
        let (mut w, uacs) = world_on(
            Sim::new(20, 100, seed),
            vec![alice(plan(2_000))],
            bob(Answer::Ok(300)),
            None,
        );
        w.sim.run_until(120_000);
        assert_eq!(w.uac(uacs[0]).bye_final, Some(200), "seed {seed}");
        let lines = w.records.take();
        assert_eq!(lines.len(), 1, "seed {seed}: {lines:?}");
        assert_eq!(lines[0].reason, EndReason::Bye, "seed {seed}");
        assert!(lines[0].answer_ms.is_some(), "seed {seed}");
        assert_eq!(w.stats().calls_created, 1, "seed {seed}");
        w.assert_idle();
    }
}
