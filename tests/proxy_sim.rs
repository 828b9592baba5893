//! Two sipd cores chained on a deterministic simulated network (virtual clock, link delay, seeded
//! loss), running RFC 3261 §4's example: Alice (UA) -> atlanta.com -> biloxi.com -> Bob (UA).
//! Both proxies record-route, so the ACK and the BYE traverse them too. Every message on the
//! simulated wire is parsed and validated with our own parser (`Sim::transmit`).

#[path = "proxy_support/mod.rs"]
mod support;

use std::sync::Arc;

use sipd::proxy::{
    Group, GroupTarget, Health, HealthConfig, HealthProber, PrefixTable, Proxy, ProxyConfig,
    RouteTarget, StaticLocation, Transport,
};
use support::sim::{Answer, ProxyNode, Sim, Uac, UacPlan, Uas};
use support::{Msg, addr};

use support::sim::rfc3261::{ALICE, ATLANTA, BILOXI, BOB};

struct World {
    sim: Sim,
    alice: usize,
    atlanta: usize,
    biloxi: usize,
    bob: usize,
}

/// atlanta.com routes biloxi.com by a domain route; biloxi.com finds Bob in its location service.
/// Both keep the default branch secret (two sipd installations with the same configuration).
fn world(sim: Sim, alice: Uac, answer: Answer) -> World {
    let mut sim = sim;
    let (atlanta_cfg, location, biloxi_cfg) = support::sim::rfc3261::configs();
    let atlanta = Proxy::new(
        Arc::new(atlanta_cfg),
        Arc::new(StaticLocation::new()),
        Health::new(0),
    );
    let biloxi = Proxy::new(Arc::new(biloxi_cfg), Arc::new(location), Health::new(0));
    let alice = sim.add(alice);
    let atlanta = sim.add(ProxyNode::new(addr(ATLANTA), atlanta, None));
    let biloxi = sim.add(ProxyNode::new(addr(BILOXI), biloxi, None));
    let bob = sim.add(Uas::new(addr(BOB), "bob", answer));
    World {
        sim,
        alice,
        atlanta,
        biloxi,
        bob,
    }
}

fn alice(plan: UacPlan) -> Uac {
    Uac::new(addr(ALICE), addr(ATLANTA), "sip:bob@biloxi.com", plan)
}

fn plan() -> UacPlan {
    UacPlan {
        start_at: 0,
        cancel_after_ringing: None,
        bye_after: 2_000,
    }
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// The sent-by of each Via value, top first.
fn via_hosts(m: &Msg) -> Vec<String> {
    m.vias()
        .iter()
        .map(|v| {
            let via = sipd::sip::via::Via::parse(v.as_bytes()).unwrap();
            format!("{}:{}", support::s(via.host_raw), via.port.unwrap_or(5060))
        })
        .collect()
}

fn branches(m: &Msg) -> Vec<String> {
    (0..m.vias().len()).map(|i| m.branch(i)).collect()
}

#[test]
fn rfc3261_section4_invite_180_200_ack_bye_200_through_two_proxies() {
    let mut w = world(Sim::new(10, 0, 1), alice(plan()), Answer::Ok(300));
    w.sim.run_until(60_000);
    let (a, at, bi, b) = (addr(ALICE), addr(ATLANTA), addr(BILOXI), addr(BOB));

    let uac: &Uac = w.sim.node(w.alice);
    assert_eq!(uac.invite_final, Some(200));
    assert_eq!(uac.bye_final, Some(200));

    // Exactly one of each message on every link, in order; nothing lost, no retransmission.
    let requests = strs(&["INVITE", "ACK", "BYE"]);
    let responses = strs(&["180 INVITE", "200 INVITE", "200 BYE"]);
    assert_eq!(w.sim.labels(a, at), requests);
    assert_eq!(w.sim.labels(at, bi), requests);
    assert_eq!(w.sim.labels(bi, b), requests);
    assert_eq!(w.sim.labels(b, bi), responses);
    assert_eq!(w.sim.labels(bi, at), responses);
    assert_eq!(w.sim.labels(at, a), responses);
    assert_eq!(w.sim.wire.len(), 18);
    assert!(w.sim.wire.iter().all(|r| !r.lost));
    let atlanta: &ProxyNode = w.sim.node(w.atlanta);
    let biloxi: &ProxyNode = w.sim.node(w.biloxi);
    assert!(atlanta.drops.is_empty() && atlanta.replies.is_empty());
    assert!(biloxi.drops.is_empty() && biloxi.replies.is_empty());

    // Max-Forwards 70 -> 69 -> 68 and a Via per hop, for every request.
    for (i, (from, to)) in [(a, at), (at, bi), (bi, b)].into_iter().enumerate() {
        for r in w.sim.records(from, to) {
            assert_eq!(r.msg.max_forwards(), Some(70 - i as u32), "{:?}", r.msg);
            let expect = [BILOXI, ATLANTA, ALICE][2 - i..].to_vec();
            assert_eq!(via_hosts(&r.msg), expect, "{:?}", r.msg);
        }
    }
    // Responses lose one Via per hop on the way back.
    for (n, (from, to)) in [(b, bi), (bi, at), (at, a)].into_iter().enumerate() {
        for r in w.sim.records(from, to) {
            assert_eq!(r.msg.vias().len(), 3 - n, "{:?}", r.msg);
        }
    }

    let bob: &Uas = w.sim.node(w.bob);
    let invite = bob.requests("INVITE")[0].clone();
    let ack = bob.requests("ACK")[0].clone();
    let bye = bob.requests("BYE")[0].clone();
    // biloxi.com's location service retargeted the request to Bob's contact.
    assert_eq!(invite.request_uri(), "sip:bob@10.0.0.4:5060");
    assert_eq!(
        invite.list("Record-Route"),
        strs(&["<sip:10.0.0.3:5060;lr>", "<sip:10.0.0.2:5060;lr>"])
    );
    // The body crossed both proxies untouched, both ways.
    assert_eq!(invite.body(), uac.body.as_bytes());
    let ok = uac
        .received
        .iter()
        .find(|(_, m)| m.status() == Some(200))
        .unwrap();
    assert_eq!(ok.1.body(), bob.sent[1].1.body());
    assert!(!ok.1.body().is_empty());

    // The ACK and BYE followed the route set: Request-URI the contact, Route values consumed.
    assert_eq!(
        uac.route_set,
        strs(&["sip:10.0.0.2:5060;lr", "sip:10.0.0.3:5060;lr"])
    );
    for m in [&ack, &bye] {
        assert_eq!(m.request_uri(), "sip:bob@10.0.0.4:5060");
        assert!(m.all("Route").is_empty(), "{m:?}");
    }
    // The 2xx ACK is a new transaction: no branch equals the INVITE's, at any hop.
    let inv_b = branches(&invite);
    let ack_b = branches(&ack);
    let bye_b = branches(&bye);
    for i in 0..3 {
        assert_ne!(inv_b[i], ack_b[i]);
        assert_ne!(inv_b[i], bye_b[i]);
        assert_ne!(ack_b[i], bye_b[i]);
    }
    // Both proxies' branches are stateless ones of theirs.
    for b in &inv_b[..2] {
        assert!(b.starts_with("z9hG4bKsd"), "{b}");
    }
}

#[test]
fn cancel_before_answer_and_the_487_ack_share_the_invite_branch_at_every_hop() {
    let plan = UacPlan {
        cancel_after_ringing: Some(500),
        ..plan()
    };
    let mut w = world(Sim::new(10, 0, 2), alice(plan), Answer::Never);
    w.sim.run_until(60_000);
    let (a, at, bi, b) = (addr(ALICE), addr(ATLANTA), addr(BILOXI), addr(BOB));
    let uac: &Uac = w.sim.node(w.alice);
    assert_eq!(uac.invite_final, Some(487));
    assert_eq!(uac.cancel_final, Some(200));
    assert_eq!(uac.bye_final, None);
    let requests = strs(&["INVITE", "CANCEL", "ACK"]);
    for (from, to) in [(a, at), (at, bi), (bi, b)] {
        assert_eq!(w.sim.labels(from, to), requests);
    }
    for (from, to) in [(b, bi), (bi, at), (at, a)] {
        assert_eq!(
            w.sim.labels(from, to),
            strs(&["180 INVITE", "200 CANCEL", "487 INVITE"])
        );
    }
    // §16.11: the CANCEL and the non-2xx ACK get the INVITE's branch from each proxy, so each
    // next hop matches them to its INVITE transaction.
    for (from, to) in [(at, bi), (bi, b)] {
        let recs = w.sim.records(from, to);
        let (inv, cancel, ack) = (&recs[0].msg, &recs[1].msg, &recs[2].msg);
        assert_eq!(branches(inv), branches(cancel));
        assert_eq!(branches(inv), branches(ack));
        assert_eq!(inv.request_uri(), cancel.request_uri());
    }
}

#[test]
fn busy_here_486_and_its_ack_reach_bob_on_the_invite_transaction() {
    let mut w = world(Sim::new(10, 0, 3), alice(plan()), Answer::Reject(486, 300));
    w.sim.run_until(60_000);
    let (a, at, bi, b) = (addr(ALICE), addr(ATLANTA), addr(BILOXI), addr(BOB));
    let uac: &Uac = w.sim.node(w.alice);
    assert_eq!(uac.invite_final, Some(486));
    for (from, to) in [(a, at), (at, bi), (bi, b)] {
        assert_eq!(w.sim.labels(from, to), strs(&["INVITE", "ACK"]));
    }
    for (from, to) in [(b, bi), (bi, at), (at, a)] {
        assert_eq!(w.sim.labels(from, to), strs(&["180 INVITE", "486 INVITE"]));
    }
    let bob: &Uas = w.sim.node(w.bob);
    let (inv, ack) = (bob.requests("INVITE")[0], bob.requests("ACK")[0]);
    assert_eq!(branches(inv), branches(ack));
    assert_eq!(ack.request_uri(), inv.request_uri());
    assert_eq!(ack.to_tag().as_deref(), Some("a6c85cf"));
    // Bob stopped retransmitting the 486 once the ACK arrived: one 486 only.
    assert_eq!(
        bob.sent
            .iter()
            .filter(|(_, m)| m.status() == Some(486))
            .count(),
        1
    );
}

#[test]
fn retransmitted_invite_is_forwarded_with_the_same_branch_and_bob_sees_one_transaction() {
    // 300 ms links: the 180 comes back after 1.8 s, so Timer A fires at 0.5 s and 1.5 s.
    let mut w = world(Sim::new(300, 0, 4), alice(plan()), Answer::Ok(2_500));
    w.sim.run_until(60_000);
    let (a, at, bi, b) = (addr(ALICE), addr(ATLANTA), addr(BILOXI), addr(BOB));
    let uac: &Uac = w.sim.node(w.alice);
    assert_eq!(uac.invite_final, Some(200));
    assert_eq!(uac.bye_final, Some(200));
    let sent_invites: Vec<_> = w
        .sim
        .records(a, at)
        .into_iter()
        .filter(|r| r.label() == "INVITE")
        .map(|r| r.at)
        .collect();
    assert_eq!(sent_invites, vec![0, 500, 1_500]);
    for (from, to) in [(at, bi), (bi, b)] {
        let invites: Vec<_> = w
            .sim
            .records(from, to)
            .into_iter()
            .filter(|r| r.label() == "INVITE")
            .map(|r| r.msg.bytes.clone())
            .collect();
        assert_eq!(invites.len(), 3);
        assert!(
            invites.iter().all(|m| *m == invites[0]),
            "a stateless proxy forwards a retransmission byte for byte as the original"
        );
    }
    let bob: &Uas = w.sim.node(w.bob);
    let invs = bob.requests("INVITE");
    assert_eq!(invs.len(), 3);
    // Bob answered each retransmission with the 180 again, and sent one 200 (ACKed in time).
    assert_eq!(
        bob.sent
            .iter()
            .filter(|(_, m)| m.status() == Some(180))
            .count(),
        3
    );
}

#[test]
fn calls_complete_under_ten_percent_loss_with_retransmissions() {
    let mut lossy_runs = 0;
    for seed in 1..=20 {
        let mut w = world(Sim::new(20, 100, seed), alice(plan()), Answer::Ok(300));
        w.sim.run_until(120_000);
        let uac: &Uac = w.sim.node(w.alice);
        assert_eq!(uac.invite_final, Some(200), "seed {seed}");
        assert_eq!(uac.bye_final, Some(200), "seed {seed}");
        let bob: &Uas = w.sim.node(w.bob);
        // However many copies got through, they were one transaction each for Bob.
        let invs = bob.requests("INVITE");
        assert!(invs.iter().all(|m| m.branch(0) == invs[0].branch(0)));
        let byes = bob.requests("BYE");
        assert!(!byes.is_empty());
        assert!(byes.iter().all(|m| m.branch(0) == byes[0].branch(0)));
        lossy_runs += usize::from(w.sim.wire.iter().any(|r| r.lost));
    }
    assert!(
        lossy_runs >= 10,
        "only {lossy_runs} of 20 runs lost a message"
    );
}

#[test]
fn a_caller_behind_nat_gets_responses_at_its_public_address_via_rport() {
    let mut uac = alice(plan());
    uac.addr = addr("10.0.0.1:40000");
    uac.sent_by = "192.168.1.5:5060".into();
    let mut w = world(Sim::new(10, 0, 5), uac, Answer::Ok(300));
    w.sim.run_until(60_000);
    let uac: &Uac = w.sim.node(w.alice);
    assert_eq!(uac.invite_final, Some(200));
    assert_eq!(uac.bye_final, Some(200));
    let at_biloxi = &w.sim.records(addr(ATLANTA), addr(BILOXI))[0].msg;
    assert_eq!(at_biloxi.via_param(1, "rport"), Some(Some("40000".into())));
    assert_eq!(
        at_biloxi.via_param(1, "received"),
        Some(Some("10.0.0.1".into()))
    );
    assert!(w.sim.records(addr(ATLANTA), addr("10.0.0.1:40000")).len() >= 3);
}

const GW1: &str = "10.0.1.1:5060";
const GW2: &str = "10.0.1.2:5060";

fn gateway_group() -> Group {
    Group {
        name: "gateways".into(),
        targets: [GW1, GW2]
            .iter()
            .map(|a| GroupTarget {
                addr: addr(a),
                transport: Transport::Udp,
                weight: 1,
            })
            .collect(),
        health_base: 0,
    }
}

/// Call-IDs that the group sends to its first target while both are up.
fn call_ids_for_first_target(n: usize) -> Vec<String> {
    let g = gateway_group();
    let health = Health::new(2);
    (0..)
        .map(|i| format!("call-{i}@atlanta.com"))
        .filter(|c| g.pick(c.as_bytes(), &health).unwrap().0 == 0)
        .take(n)
        .collect()
}

#[test]
fn group_fails_over_when_its_first_target_stops_answering_options_and_comes_back() {
    let mut sim = Sim::new(10, 0, 6);
    let mut numbers = PrefixTable::new();
    numbers.insert("+1", RouteTarget::Group(0)).unwrap();
    let cfg = ProxyConfig {
        domains: vec!["atlanta.com".into()],
        number_routes: numbers,
        groups: vec![gateway_group()],
        retry_after_s: 60,
        ..ProxyConfig::default()
    };
    let health = Health::new(2);
    let proxy = Proxy::new(
        Arc::new(cfg),
        Arc::new(StaticLocation::new()),
        health.clone(),
    );
    let hc = HealthConfig {
        interval_ms: 1_000,
        down_after: 2,
        up_after: 2,
    };
    let prober = HealthProber::new(
        hc,
        health.clone(),
        &[(addr(GW1), Transport::Udp), (addr(GW2), Transport::Udp)],
        0,
    );
    let px = sim.add(ProxyNode::new(addr(ATLANTA), proxy, Some(prober)));
    let gw1 = sim.add(Uas::new(addr(GW1), "gw", Answer::Ok(100)));
    let gw2 = sim.add(Uas::new(addr(GW2), "gw", Answer::Ok(100)));
    let ids = call_ids_for_first_target(4);
    let caller = |i: usize, start_at: u64| {
        let mut u = Uac::new(
            addr(&format!("10.0.0.{}:5060", 10 + i)),
            addr(ATLANTA),
            "sip:+15551234567@atlanta.com",
            UacPlan {
                start_at,
                cancel_after_ringing: None,
                bye_after: 1_000,
            },
        );
        u.call_id = ids[i].clone();
        u
    };
    let c0 = sim.add(caller(0, 500));
    let c1 = sim.add(caller(1, 10_000));
    let c2 = sim.add(caller(2, 30_000));
    let c3 = sim.add(caller(3, 50_000));

    sim.run_until(5_000);
    let n_options = sim.node::<Uas>(gw1).requests("OPTIONS").len();
    assert!(n_options >= 4, "probed every second: {n_options}");
    assert_eq!(sim.node::<Uac>(c0).invite_final, Some(200));
    assert_eq!(sim.node::<Uas>(gw1).requests("INVITE").len(), 1);

    // gw1 dies: two missed probes later it is down, and the next call for it goes to gw2.
    sim.down.insert(addr(GW1));
    sim.run_until(20_000);
    let node: &ProxyNode = sim.node(px);
    let (down_at, change) = node.changes[0];
    assert!(!change.up && change.index == 0, "{:?}", node.changes);
    assert!((5_000..10_000).contains(&down_at), "down at {down_at}");
    assert_eq!(sim.node::<Uac>(c1).invite_final, Some(200));
    assert_eq!(sim.node::<Uas>(gw1).requests("INVITE").len(), 1);
    assert_eq!(sim.node::<Uas>(gw2).requests("INVITE").len(), 1);
    assert_eq!(sim.node::<Uas>(gw2).requests("BYE").len(), 1);

    // gw1 answers again: up after two answered probes; its calls return to it.
    sim.down.remove(&addr(GW1));
    sim.run_until(40_000);
    let node: &ProxyNode = sim.node(px);
    assert!(
        node.changes.len() == 2 && node.changes[1].1.up,
        "{:?}",
        node.changes
    );
    assert_eq!(sim.node::<Uac>(c2).invite_final, Some(200));
    assert_eq!(sim.node::<Uas>(gw1).requests("INVITE").len(), 2);

    // Both down: 503 with Retry-After from the proxy itself; its ACK is absorbed.
    sim.down.insert(addr(GW1));
    sim.down.insert(addr(GW2));
    sim.run_until(70_000);
    let uac: &Uac = sim.node(c3);
    assert_eq!(uac.invite_final, Some(503));
    let resp = uac
        .received
        .iter()
        .find(|(_, m)| m.status() == Some(503))
        .unwrap();
    assert_eq!(resp.1.header("Retry-After").as_deref(), Some("60"));
    let node: &ProxyNode = sim.node(px);
    assert!(
        node.drops
            .iter()
            .any(|(_, r)| *r == sipd::proxy::DropReason::AckAbsorbed)
    );
    // Health answers were consumed by the proxy, never forwarded.
    assert!(
        node.drops
            .iter()
            .filter(|(_, r)| *r == sipd::proxy::DropReason::HealthAnswer)
            .count()
            > 10
    );
}
