//! The roles against each other on a simulated network with a virtual clock: no sockets, no
//! sleeping, exact RFC 3261 timer behaviour under chosen losses.

use std::collections::VecDeque;
use std::net::SocketAddr;

use super::build::UriTemplate;
use super::uac::{Scenario, Uac, UacConfig};
use super::uas::{Uas, UasConfig};
use super::{Endpoint, Timers, TxBatch};

const UAC: &str = "127.0.0.1:5070";
const UAS: &str = "127.0.0.3:5060";
const LATENCY_US: u64 = 100;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn uac(scenario: Scenario, hold_us: u64, auth: Option<(&str, &str)>) -> Uac {
    Uac::new(UacConfig {
        scenario,
        target: addr(UAS),
        local: addr(UAC),
        uri: UriTemplate::parse("sip:+4930{n}@biloxi.example.com").unwrap(),
        hold_us,
        timers: Timers::default(),
        auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        expires: 600,
        first_number: 0,
        number_step: 1,
        run_id: 0x8000_0042,
        sdp: true,
    })
}

fn uas(auth: Option<(&str, &str)>) -> Uas {
    Uas::new(UasConfig {
        local: addr(UAS),
        timers: Timers::default(),
        stateless: false,
        auth: auth.map(|(u, p)| (u.to_string(), p.to_string())),
        sdp: true,
    })
}

/// A datagram in flight.
struct Packet {
    at: u64,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// Decides per datagram whether the network loses it; `n` counts datagrams of the same first
/// line seen so far (1 for the first).
type Loss = Box<dyn FnMut(&[u8], usize) -> bool>;

struct Sim {
    now: u64,
    wire: VecDeque<Packet>,
    seen: std::collections::HashMap<Vec<u8>, usize>,
    loss: Loss,
    log: Vec<String>,
}

fn first_line(b: &[u8]) -> Vec<u8> {
    let end = b.iter().position(|&c| c == b'\r').unwrap_or(b.len());
    // Requests by method, responses by status and CSeq method.
    if b.starts_with(b"SIP/2.0") {
        let cseq = b
            .windows(6)
            .position(|w| w == b"CSeq: ")
            .map(|i| {
                let rest = &b[i + 6..];
                let e = rest.iter().position(|&c| c == b'\r').unwrap();
                rest[..e].to_vec()
            })
            .unwrap_or_default();
        let mut k = b[..12.min(end)].to_vec();
        k.extend_from_slice(b" ");
        k.extend_from_slice(&cseq);
        k
    } else {
        b[..b.iter().position(|&c| c == b' ').unwrap()].to_vec()
    }
}

impl Sim {
    fn new(loss: Loss) -> Sim {
        Sim {
            now: 0,
            wire: VecDeque::new(),
            seen: Default::default(),
            loss,
            log: Vec::new(),
        }
    }

    fn send(&mut self, from: SocketAddr, tx: &mut TxBatch) {
        for (to, bytes) in tx.iter() {
            let key = first_line(bytes);
            let n = self.seen.entry(key.clone()).or_default();
            *n += 1;
            let n = *n;
            let lost = (self.loss)(bytes, n);
            self.log.push(format!(
                "{:>9} {} {}{}",
                self.now,
                from.port(),
                String::from_utf8_lossy(&key),
                if lost { " (lost)" } else { "" }
            ));
            if !lost {
                self.wire.push_back(Packet {
                    at: self.now + LATENCY_US,
                    from,
                    to,
                    bytes: bytes.to_vec(),
                });
            }
        }
        tx.clear();
    }

    /// Runs until both sides are idle or `until_us`; starts `calls` calls at `rate_per_s`.
    fn run(&mut self, a: &mut Uac, b: &mut Uas, calls: u64, rate_per_s: u64, until_us: u64) {
        let mut tx = TxBatch::default();
        let gap = 1_000_000 / rate_per_s.max(1);
        let mut started = 0;
        let mut next_start = 0;
        while self.now <= until_us {
            if started < calls && self.now >= next_start {
                started += a.start(self.now, 1, &mut tx);
                next_start += gap;
                self.send(addr(UAC), &mut tx);
            }
            // Deliver everything due now.
            while let Some(p) = self.wire.front() {
                if p.at > self.now {
                    break;
                }
                let p = self.wire.pop_front().unwrap();
                if p.to == addr(UAS) {
                    b.on_datagram(self.now, p.from, &p.bytes, &mut tx);
                    self.send(addr(UAS), &mut tx);
                } else {
                    a.on_datagram(self.now, p.from, &p.bytes, &mut tx);
                    self.send(addr(UAC), &mut tx);
                }
            }
            a.on_timers(self.now, &mut tx);
            self.send(addr(UAC), &mut tx);
            b.on_timers(self.now, &mut tx);
            self.send(addr(UAS), &mut tx);
            // Next event.
            let mut next = [
                self.wire.front().map(|p| p.at),
                a.next_deadline(),
                b.next_deadline(),
                (started < calls).then_some(next_start),
            ]
            .into_iter()
            .flatten()
            .min();
            if started >= calls && a.active() == 0 && self.wire.is_empty() {
                // Let the UAS's own timers (2xx retransmission, expiry) run out too.
                next = b.next_deadline();
                if next.is_none() {
                    break;
                }
            }
            match next {
                Some(t) => self.now = t.max(self.now + 1),
                None => break,
            }
        }
    }
}

fn no_loss() -> Loss {
    Box::new(|_, _| false)
}

/// The sums every run must satisfy on a lossless path between two roles.
fn assert_counters_add_up(a: &Uac, b: &Uas) {
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(a.active(), 0);
    assert_eq!(sa.attempted, sa.completed + sa.failed);
    assert_eq!(
        sa.failed,
        sa.failed_timeout + sa.failed_rejected + sa.failed_other
    );
    assert_eq!(sa.msgs_sent, sa.requests_sent.iter().sum::<u64>());
    assert_eq!(sb.msgs_sent, sb.responses_sent.total());
    assert_eq!(sb.msgs_received, sb.requests_received.iter().sum::<u64>());
    assert_eq!(sa.msgs_received, sa.responses_received.total());
}

#[test]
fn calls_complete_and_counters_add_up() {
    let mut sim = Sim::new(no_loss());
    let (mut a, mut b) = (uac(Scenario::Call, 0, None), uas(None));
    sim.run(&mut a, &mut b, 50, 1000, 60_000_000);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.attempted, sa.completed, sa.failed), (50, 50, 0));
    assert_eq!(sa.retransmissions, 0);
    assert_eq!(sa.requests_sent[..3], [50, 50, 50]); // INVITE, ACK, BYE
    assert_eq!(sa.msgs_sent, 150);
    assert_eq!(sa.msgs_received, 150); // 180, 200, 200 per call
    assert_eq!(sb.msgs_received, sa.msgs_sent);
    assert_eq!(sb.msgs_sent, sa.msgs_received);
    assert_eq!(sb.responses_sent.get(180), 50);
    assert_eq!(sb.responses_sent.get(200), 100);
    assert_eq!((sb.attempted, sb.completed, sb.failed), (50, 50, 0));
    assert_eq!(b.entries(), 0);
    assert_eq!(sa.invite_to_200.len(), 50);
    // Two network hops (INVITE out, 200 back).
    assert_eq!(sa.invite_to_200.max(), 2 * LATENCY_US);
    assert_eq!(sa.request_to_response.len(), 100); // INVITE and BYE
    assert_counters_add_up(&a, &b);
}

#[test]
fn lost_invite_is_retransmitted_at_t1() {
    let mut sim = Sim::new(Box::new(|b, n| b.starts_with(b"INVITE") && n == 1));
    let (mut a, mut b) = (uac(Scenario::Call, 0, None), uas(None));
    sim.run(&mut a, &mut b, 1, 1, 60_000_000);
    let sa = a.stats();
    assert_eq!((sa.completed, sa.failed, sa.retransmissions), (1, 0, 1));
    // Sent at 0, lost, retransmitted at T1 = 500 ms: the 200 comes back 2 hops later.
    // (HDR histograms keep 3 significant digits.)
    let h = &sa.invite_to_200;
    assert!(
        h.equivalent(h.max(), 500_000 + 2 * LATENCY_US),
        "{:#?}",
        sim.log
    );
    assert_counters_add_up(&a, &b);
}

#[test]
fn unanswered_invite_retransmits_then_times_out_after_64_t1() {
    // Everything the UAS sends is lost.
    let mut sim = Sim::new(Box::new(|b, _| b.starts_with(b"SIP/2.0")));
    let (mut a, mut b) = (uac(Scenario::Call, 0, None), uas(None));
    sim.run(&mut a, &mut b, 1, 1, 100_000_000);
    let sa = a.stats();
    assert_eq!((sa.completed, sa.failed, sa.failed_timeout), (0, 1, 1));
    // Timer A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s; Timer B at 32 s (RFC 3261 §17.1.1.2: 7
    // transmissions in all).
    assert_eq!(sa.requests_sent[0], 7, "{:#?}", sim.log);
    assert_eq!(sa.retransmissions, 6);
    // The UAS answered each INVITE again and gave up on its 2xx without an ACK.
    let sb = b.stats();
    assert_eq!(sb.retransmissions_received, 6);
    assert_eq!(sb.failed_timeout, 1);
    assert_eq!(b.entries(), 0);
}

#[test]
fn lost_ack_makes_the_uas_retransmit_its_2xx_and_the_uac_ack_again() {
    let mut sim = Sim::new(Box::new(|b, n| b.starts_with(b"ACK") && n == 1));
    let (mut a, mut b) = (uac(Scenario::Call, 5_000_000, None), uas(None));
    sim.run(&mut a, &mut b, 1, 1, 60_000_000);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.completed, sa.failed), (1, 0));
    assert_eq!(sb.retransmissions, 1, "{:#?}", sim.log);
    assert_eq!(sa.retransmissions_received, 1);
    assert_eq!(sa.retransmissions, 1); // the second ACK
    assert_eq!(sa.requests_sent[1], 2);
    assert_eq!((sb.completed, sb.failed), (1, 0));
    assert_counters_add_up(&a, &b);
}

#[test]
fn lost_ringing_and_ok_answer_the_retransmitted_invite_with_the_last_response() {
    let mut sim = Sim::new(Box::new(|b, n| {
        (b.starts_with(b"SIP/2.0 180") || b.starts_with(b"SIP/2.0 200 OK\r\nVia")) && n == 1
    }));
    let (mut a, mut b) = (uac(Scenario::Call, 0, None), uas(None));
    sim.run(&mut a, &mut b, 1, 1, 60_000_000);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.completed, sa.failed), (1, 0), "{:#?}", sim.log);
    assert_eq!(sb.retransmissions_received, 1);
    assert_eq!(sb.attempted, 1, "a retransmission is not a new call");
    assert_counters_add_up(&a, &b);
}

#[test]
fn lost_bye_is_retransmitted_per_timer_e() {
    let mut sim = Sim::new(Box::new(|b, n| b.starts_with(b"BYE") && n <= 2));
    let (mut a, mut b) = (uac(Scenario::Call, 0, None), uas(None));
    sim.run(&mut a, &mut b, 1, 1, 60_000_000);
    let sa = a.stats();
    assert_eq!((sa.completed, sa.failed), (1, 0));
    assert_eq!(sa.requests_sent[2], 3, "{:#?}", sim.log);
    assert_eq!(sa.retransmissions, 2);
    // BYE at t0 (lost), t0+T1 (lost), t0+3*T1: request->response measures from the first send.
    let h = &sa.request_to_response;
    assert!(h.equivalent(h.max(), 1_500_000 + 2 * LATENCY_US));
}

#[test]
fn non_2xx_final_is_acked_on_the_invite_branch_and_counted_rejected() {
    // A peer that rejects every INVITE with 486 and records the ACK it gets.
    let mut a = uac(Scenario::Call, 0, None);
    let mut tx = TxBatch::default();
    a.start(0, 1, &mut tx);
    let (_, invite) = tx.get(0);
    let invite = invite.to_vec();
    tx.clear();
    let mut hs = [crate::sip::message::Header::EMPTY; 32];
    let msg = crate::sip::message::parse_datagram(&invite, &mut hs).unwrap();
    let mut busy = [0u8; 2048];
    let n = super::build::write_response(
        &mut busy,
        &invite,
        msg.headers(),
        &super::build::Response {
            code: 486,
            reason: b"Busy Here",
            to_tag: b"busy1",
            contact: None,
            extra: b"",
            body: None,
            record_route: false,
        },
    )
    .unwrap();
    a.on_datagram(1000, addr(UAS), &busy[..n], &mut tx);
    assert_eq!(tx.len(), 1);
    let (to, ack) = tx.get(0);
    assert_eq!(to, addr(UAS));
    let mut hs2 = [crate::sip::message::Header::EMPTY; 32];
    let ack_msg = crate::sip::message::parse_datagram(ack, &mut hs2).unwrap();
    use crate::sip::HeaderName;
    assert_eq!(ack_msg.method(), Some(crate::sip::Method::Ack));
    assert_eq!(ack_msg.request_uri(), msg.request_uri());
    assert_eq!(ack_msg.value(HeaderName::Via), msg.value(HeaderName::Via));
    assert_eq!(ack_msg.value(HeaderName::CSeq), Some(&b"1 ACK"[..]));
    assert!(
        ack_msg
            .value(HeaderName::To)
            .unwrap()
            .ends_with(b";tag=busy1")
    );
    assert_eq!(a.stats().failed_rejected, 1);
    assert_eq!(a.active(), 0);
    // The 486 retransmitted: ACKed again, nothing else.
    tx.clear();
    a.on_datagram(2000, addr(UAS), &busy[..n], &mut tx);
    assert_eq!(tx.len(), 1);
    assert_eq!(a.stats().retransmissions, 1);
    assert_eq!(a.stats().failed, 1);
}

#[test]
fn register_with_digest_auth() {
    let mut sim = Sim::new(no_loss());
    let (mut a, mut b) = (
        uac(Scenario::Register, 0, Some(("alice", "secret"))),
        uas(Some(("alice", "secret"))),
    );
    sim.run(&mut a, &mut b, 10, 100, 60_000_000);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.attempted, sa.completed, sa.failed), (10, 10, 0));
    assert_eq!(sa.requests_sent[4], 20); // REGISTER, then REGISTER with credentials
    assert_eq!(sa.responses_received.get(401), 10);
    assert_eq!(sa.responses_received.get(200), 10);
    assert_eq!((sb.attempted, sb.completed), (10, 10));

    // Wrong password: 403, counted rejected on both sides.
    let mut sim = Sim::new(no_loss());
    let (mut a, mut b) = (
        uac(Scenario::Register, 0, Some(("alice", "nope"))),
        uas(Some(("alice", "secret"))),
    );
    sim.run(&mut a, &mut b, 3, 100, 60_000_000);
    assert_eq!((a.stats().completed, a.stats().failed_rejected), (0, 3));
    assert_eq!(b.stats().failed_rejected, 3);
}

#[test]
fn options_transactions() {
    let mut sim = Sim::new(no_loss());
    let (mut a, mut b) = (uac(Scenario::Options, 0, None), uas(None));
    sim.run(&mut a, &mut b, 20, 1000, 60_000_000);
    let sa = a.stats();
    assert_eq!((sa.attempted, sa.completed, sa.failed), (20, 20, 0));
    assert_eq!(sa.requests_sent[5], 20);
    assert_eq!(sa.invite_to_200.len(), 0);
    assert_eq!(sa.request_to_response.len(), 20);
    assert_counters_add_up(&a, &b);
}

#[test]
fn identities_are_unique_per_call() {
    let mut a = uac(Scenario::Call, 0, None);
    let mut tx = TxBatch::default();
    a.start(0, 100, &mut tx);
    let mut call_ids = std::collections::HashSet::new();
    let mut branches = std::collections::HashSet::new();
    let mut tags = std::collections::HashSet::new();
    let mut uris = std::collections::HashSet::new();
    use crate::sip::HeaderName;
    for (_, bytes) in tx.iter() {
        let mut hs = [crate::sip::message::Header::EMPTY; 32];
        let m = crate::sip::message::parse_datagram(bytes, &mut hs).unwrap();
        crate::sip::validate::validate(&m).unwrap();
        call_ids.insert(m.value(HeaderName::CallId).unwrap().to_vec());
        branches.insert(m.value(HeaderName::Via).unwrap().to_vec());
        let from =
            crate::sip::name_addr::NameAddr::parse(m.value(HeaderName::From).unwrap()).unwrap();
        tags.insert(from.tag().unwrap().to_vec());
        uris.insert(m.request_uri().unwrap().to_vec());
    }
    assert_eq!(
        (call_ids.len(), branches.len(), tags.len(), uris.len()),
        (100, 100, 100, 100)
    );
}
