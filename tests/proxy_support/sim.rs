//! A deterministic simulated network: a virtual clock in milliseconds, nodes at socket addresses,
//! a fixed link delay and an optional seeded loss. Every message put on the wire is parsed (and
//! validated) with our own parser before it travels.
//!
//! Nodes are the two proxies (`ProxyNode`, a `Proxy` plus an optional `HealthProber`) and small
//! scripted user agents (`Uac`, `Uas`) that build their messages with `format!` and read what
//! they receive with our parser, with RFC 3261's retransmission timers (A/E doubling from T1 =
//! 500 ms, E capped at T2 = 4 s, the UAS's 2xx/non-2xx retransmission until the ACK).

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use sipd::proxy::{Action, DropReason, HealthProber, Input, Proxy, Transport, group::HealthChange};
use sipd::sip::uri::{Host, Uri};
use sipd::sip::via::{Rport, Via};

use super::{Msg, tag_of};

pub const T1: u64 = 500;
pub const T2: u64 = 4_000;
/// Timer B / F: 64 * T1.
pub const TIMEOUT: u64 = 64 * T1;

pub type Sends = Vec<(SocketAddr, Vec<u8>)>;

pub trait Node: Any {
    fn addr(&self) -> SocketAddr;
    fn receive(&mut self, now: u64, from: SocketAddr, bytes: &[u8], out: &mut Sends);
    fn poll_timeout(&self) -> Option<u64> {
        None
    }
    fn timeout(&mut self, _now: u64, _out: &mut Sends) {}
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// One message sent on the wire.
#[derive(Clone, Debug)]
pub struct Record {
    pub at: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub msg: Msg,
    /// Lost by the link (seeded loss) or sent to a node that is down.
    pub lost: bool,
}

impl Record {
    /// `INVITE`, `ACK`, ... for requests; `180 INVITE`, `200 BYE`, ... for responses.
    pub fn label(&self) -> String {
        match self.msg.method() {
            Some(m) => m,
            None => {
                let cseq = self.msg.header("CSeq").unwrap_or_default();
                let method = cseq
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                format!("{} {method}", self.msg.status().unwrap_or(0))
            }
        }
    }
}

pub struct Sim {
    pub now: u64,
    pub delay_ms: u64,
    /// Loss probability in parts per thousand.
    pub loss_per_mille: u32,
    rng: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), (SocketAddr, SocketAddr, Vec<u8>)>,
    nodes: Vec<Box<dyn Node>>,
    pub down: HashSet<SocketAddr>,
    pub wire: Vec<Record>,
}

impl Sim {
    pub fn new(delay_ms: u64, loss_per_mille: u32, seed: u64) -> Sim {
        Sim {
            now: 0,
            delay_ms,
            loss_per_mille,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::new(),
            down: HashSet::new(),
            wire: Vec::new(),
        }
    }

    /// Adds a node; returns its index for [`Sim::node`].
    pub fn add(&mut self, node: impl Node) -> usize {
        self.nodes.push(Box::new(node));
        self.nodes.len() - 1
    }

    pub fn node<T: Node>(&self, i: usize) -> &T {
        self.nodes[i].as_any().downcast_ref().expect("node type")
    }

    pub fn node_mut<T: Node>(&mut self, i: usize) -> &mut T {
        self.nodes[i]
            .as_any_mut()
            .downcast_mut()
            .expect("node type")
    }

    fn random_per_mille(&mut self) -> u32 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 % 1000
    }

    fn transmit(&mut self, from: SocketAddr, sends: Sends) {
        for (to, bytes) in sends {
            let msg = Msg::new(&bytes);
            let lost = self.down.contains(&to)
                || self.down.contains(&from)
                || (self.loss_per_mille > 0 && self.random_per_mille() < self.loss_per_mille);
            self.wire.push(Record {
                at: self.now,
                from,
                to,
                msg,
                lost,
            });
            if !lost {
                self.seq += 1;
                self.queue
                    .insert((self.now + self.delay_ms, self.seq), (from, to, bytes));
            }
        }
    }

    /// Runs every event up to and including `until` (virtual ms).
    pub fn run_until(&mut self, until: u64) {
        loop {
            let next_packet = self.queue.keys().next().map(|k| k.0);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| !self.down.contains(&n.addr()))
                .filter_map(|(i, n)| n.poll_timeout().map(|t| (t, i)))
                .min();
            let packet_first = match (next_packet, next_timer) {
                (None, None) => break,
                (Some(p), Some((t, _))) => p <= t,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            if packet_first {
                let at = next_packet.unwrap();
                if at > until {
                    break;
                }
                self.now = self.now.max(at);
                let key = *self.queue.keys().next().unwrap();
                let (from, to, bytes) = self.queue.remove(&key).unwrap();
                let Some(i) = self.nodes.iter().position(|n| n.addr() == to) else {
                    continue;
                };
                if self.down.contains(&to) {
                    continue;
                }
                let mut out = Vec::new();
                let now = self.now;
                self.nodes[i].receive(now, from, &bytes, &mut out);
                self.transmit(to, out);
            } else {
                let (at, i) = next_timer.unwrap();
                if at > until {
                    break;
                }
                self.now = self.now.max(at);
                let mut out = Vec::new();
                let now = self.now;
                self.nodes[i].timeout(now, &mut out);
                let from = self.nodes[i].addr();
                self.transmit(from, out);
            }
        }
        self.now = self.now.max(until);
    }

    /// Messages sent from `from` to `to` (lost ones included), as labels.
    pub fn labels(&self, from: SocketAddr, to: SocketAddr) -> Vec<String> {
        self.wire
            .iter()
            .filter(|r| r.from == from && r.to == to)
            .map(Record::label)
            .collect()
    }

    pub fn records(&self, from: SocketAddr, to: SocketAddr) -> Vec<&Record> {
        self.wire
            .iter()
            .filter(|r| r.from == from && r.to == to)
            .collect()
    }
}

/// A `Proxy` on the simulated wire, with an optional health prober.
pub struct ProxyNode {
    pub addr: SocketAddr,
    pub proxy: Proxy,
    pub prober: Option<HealthProber>,
    pub drops: Vec<(u64, DropReason)>,
    pub replies: Vec<(u64, u16)>,
    pub changes: Vec<(u64, HealthChange)>,
    buf: Vec<u8>,
}

impl ProxyNode {
    pub fn new(addr: SocketAddr, proxy: Proxy, prober: Option<HealthProber>) -> ProxyNode {
        ProxyNode {
            addr,
            proxy,
            prober,
            drops: Vec::new(),
            replies: Vec::new(),
            changes: Vec::new(),
            buf: vec![0; 65_536],
        }
    }
}

impl Node for ProxyNode {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn receive(&mut self, now: u64, from: SocketAddr, bytes: &[u8], out: &mut Sends) {
        let input = Input {
            now_ms: now,
            source: from,
            local: self.addr,
            transport: Transport::Udp,
            bytes,
        };
        match self.proxy.handle(&input, &mut self.buf) {
            Action::Forward { to, len, .. } => out.push((to, self.buf[..len].to_vec())),
            Action::Reply { to, code, len, .. } => {
                self.replies.push((now, code));
                out.push((to, self.buf[..len].to_vec()));
            }
            Action::Drop(r) => self.drops.push((now, r)),
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.prober.as_ref().and_then(HealthProber::poll_timeout)
    }

    fn timeout(&mut self, now: u64, out: &mut Sends) {
        let Some(prober) = self.prober.as_mut() else {
            return;
        };
        while let Some(t) = prober.poll_transmit(now, self.addr, &mut self.buf) {
            out.push((t.to, self.buf[..t.len].to_vec()));
        }
        for c in prober.take_changes() {
            self.changes.push((now, c));
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Where to send a response: the top Via's received (else sent-by) and rport (else sent-by
/// port, else 5060) — RFC 3261 §18.2.2 with RFC 3581.
pub fn response_destination(request: &Msg) -> SocketAddr {
    let top = request.vias()[0].clone();
    let via = Via::parse(top.as_bytes()).expect("via");
    let ip = via.received().unwrap_or_else(|| match via.host {
        Host::Ipv4(a) => a.into(),
        Host::Ipv6(a) => a.into(),
        Host::Name(n) => panic!("the simulation has no DNS: {}", super::s(n)),
    });
    let port = match via.rport() {
        Rport::Value(p) => p,
        _ => via.port.unwrap_or(5060),
    };
    SocketAddr::new(ip, port)
}

/// The address a SIP URI with an IP host points at.
pub fn uri_addr(uri: &str) -> SocketAddr {
    let u = Uri::parse(uri.as_bytes()).expect("uri");
    let ip = match u.host().expect("host") {
        Host::Ipv4(a) => a.into(),
        Host::Ipv6(a) => a.into(),
        Host::Name(n) => panic!("the simulation has no DNS: {}", super::s(n)),
    };
    SocketAddr::new(ip, u.port().unwrap_or(5060))
}

/// `<uri>;params` -> `uri`.
pub fn strip_brackets(v: &str) -> String {
    let na = sipd::sip::name_addr::NameAddr::parse(v.as_bytes()).expect("name-addr");
    super::s(na.uri_raw)
}

/// A client transaction's retransmission state.
#[derive(Clone, Debug)]
struct Retransmit {
    to: SocketAddr,
    bytes: Vec<u8>,
    next_at: u64,
    interval: u64,
    deadline: u64,
    /// INVITE (Timer A, no cap) or non-INVITE (Timer E, capped at T2).
    invite: bool,
    /// A provisional response arrived (INVITE: stop; non-INVITE: go on at T2).
    proceeding: bool,
}

impl Retransmit {
    fn new(now: u64, to: SocketAddr, bytes: Vec<u8>, invite: bool) -> Retransmit {
        Retransmit {
            to,
            bytes,
            next_at: now + T1,
            interval: T1,
            deadline: now + TIMEOUT,
            invite,
            proceeding: false,
        }
    }

    fn due(&self) -> Option<u64> {
        if self.invite && self.proceeding {
            return None;
        }
        Some(self.next_at.min(self.deadline))
    }

    /// Retransmits if due; returns false once the transaction timed out.
    fn fire(&mut self, now: u64, out: &mut Sends) -> bool {
        if now >= self.deadline {
            return false;
        }
        if self.next_at <= now && !(self.invite && self.proceeding) {
            out.push((self.to, self.bytes.clone()));
            self.interval = if self.invite {
                self.interval * 2
            } else if self.proceeding {
                T2
            } else {
                (self.interval * 2).min(T2)
            };
            self.next_at = now + self.interval;
        }
        true
    }
}

/// What the UAC does once the call is set up or ringing.
#[derive(Clone, Copy, Debug)]
pub struct UacPlan {
    pub start_at: u64,
    /// Send a CANCEL this long after the first 180.
    pub cancel_after_ringing: Option<u64>,
    /// Send a BYE this long after the 2xx.
    pub bye_after: u64,
}

/// A scripted caller: INVITE, then ACK (+ BYE) or CANCEL, with RFC 3261 retransmissions.
pub struct Uac {
    pub addr: SocketAddr,
    /// Our sent-by in Via (may differ from `addr` behind a NAT; we then ask for rport).
    pub sent_by: String,
    pub outbound: SocketAddr,
    pub target: String,
    pub call_id: String,
    pub from_tag: String,
    pub plan: UacPlan,
    pub body: String,
    started: bool,
    branch_seq: u32,
    pub invite: Option<Msg>,
    invite_tx: Option<Retransmit>,
    cancel_tx: Option<Retransmit>,
    bye_tx: Option<Retransmit>,
    cancel_at: Option<u64>,
    bye_at: Option<u64>,
    /// The ACK of the 2xx (end to end, new branch) or of a non-2xx final response (INVITE
    /// branch); sent again on each retransmission of the final response.
    pub ack: Option<(SocketAddr, Vec<u8>)>,
    pub route_set: Vec<String>,
    pub remote_target: Option<String>,
    pub to_tag: Option<String>,
    pub received: Vec<(u64, Msg)>,
    pub sent: Vec<(u64, Msg)>,
    pub invite_final: Option<u16>,
    pub cancel_final: Option<u16>,
    pub bye_final: Option<u16>,
}

impl Uac {
    pub fn new(addr: SocketAddr, outbound: SocketAddr, target: &str, plan: UacPlan) -> Uac {
        Uac {
            addr,
            sent_by: addr.to_string(),
            outbound,
            target: target.into(),
            call_id: "a84b4c76e66710@pc33.atlanta.com".into(),
            from_tag: "1928301774".into(),
            plan,
            body: "v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\ns=-\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n".into(),
            started: false,
            branch_seq: 0,
            invite: None,
            invite_tx: None,
            cancel_tx: None,
            bye_tx: None,
            cancel_at: None,
            bye_at: None,
            ack: None,
            route_set: Vec::new(),
            remote_target: None,
            to_tag: None,
            received: Vec::new(),
            sent: Vec::new(),
            invite_final: None,
            cancel_final: None,
            bye_final: None,
        }
    }

    fn new_branch(&mut self) -> String {
        self.branch_seq += 1;
        format!("z9hG4bK74bf9.{}.{}", self.call_id.len(), self.branch_seq)
    }

    fn via(&self, branch: &str) -> String {
        let rport = if self.sent_by == self.addr.to_string() {
            ""
        } else {
            ";rport"
        };
        format!("SIP/2.0/UDP {};branch={branch}{rport}", self.sent_by)
    }

    fn send(&mut self, now: u64, to: SocketAddr, bytes: Vec<u8>, out: &mut Sends) {
        self.sent.push((now, Msg::new(&bytes)));
        out.push((to, bytes));
    }

    fn build_invite(&mut self) -> Vec<u8> {
        let branch = self.new_branch();
        format!(
            "INVITE {target} SIP/2.0\r\n\
             Via: {via}\r\n\
             Max-Forwards: 70\r\n\
             To: Bob <{target}>\r\n\
             From: Alice <sip:alice@atlanta.com>;tag={tag}\r\n\
             Call-ID: {cid}\r\n\
             CSeq: 314159 INVITE\r\n\
             Contact: <sip:alice@{sent_by}>\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {len}\r\n\r\n{body}",
            target = self.target,
            via = self.via(&branch),
            tag = self.from_tag,
            cid = self.call_id,
            sent_by = self.sent_by,
            len = self.body.len(),
            body = self.body,
        )
        .into_bytes()
    }

    fn start(&mut self, now: u64, out: &mut Sends) {
        self.started = true;
        let invite = self.build_invite();
        self.invite = Some(Msg::new(&invite));
        self.invite_tx = Some(Retransmit::new(now, self.outbound, invite.clone(), true));
        self.send(now, self.outbound, invite, out);
    }

    /// CANCEL (§9.1): the INVITE's Request-URI, Call-ID, To, From, CSeq number and top Via.
    fn send_cancel(&mut self, now: u64, out: &mut Sends) {
        let inv = self.invite.clone().expect("invite sent");
        let cancel = format!(
            "CANCEL {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {to}\r\nFrom: {from}\r\n\
             Call-ID: {cid}\r\nCSeq: 314159 CANCEL\r\nContent-Length: 0\r\n\r\n",
            uri = inv.request_uri(),
            via = inv.vias()[0],
            to = inv.header("To").unwrap(),
            from = inv.header("From").unwrap(),
            cid = self.call_id,
        )
        .into_bytes();
        self.cancel_tx = Some(Retransmit::new(now, self.outbound, cancel.clone(), false));
        self.send(now, self.outbound, cancel, out);
    }

    fn routes_header(&self) -> String {
        self.route_set
            .iter()
            .map(|r| format!("Route: <{r}>\r\n"))
            .collect()
    }

    /// The first hop of an in-dialog request: the first Route, else the remote target.
    fn dialog_hop(&self) -> SocketAddr {
        match self.route_set.first() {
            Some(r) => uri_addr(r),
            None => uri_addr(self.remote_target.as_deref().unwrap()),
        }
    }

    fn dialog_request(&mut self, method: &str, cseq: u32) -> Vec<u8> {
        let branch = self.new_branch();
        let target = self.remote_target.clone().unwrap();
        format!(
            "{method} {target} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n{routes}\
             To: Bob <{to_uri}>;tag={to_tag}\r\nFrom: Alice <sip:alice@atlanta.com>;tag={tag}\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n",
            via = self.via(&branch),
            routes = self.routes_header(),
            to_uri = self.target,
            to_tag = self.to_tag.clone().unwrap(),
            tag = self.from_tag,
            cid = self.call_id,
        )
        .into_bytes()
    }

    fn on_invite_response(&mut self, now: u64, resp: &Msg, out: &mut Sends) {
        let code = resp.status().unwrap();
        if let Some(tx) = self.invite_tx.as_mut() {
            tx.proceeding = true;
        }
        if code < 200 {
            if code == 180
                && self.cancel_at.is_none()
                && let Some(after) = self.plan.cancel_after_ringing
            {
                self.cancel_at = Some(now + after);
            }
            return;
        }
        self.invite_tx = None;
        self.cancel_at = None;
        if let Some((to, ack)) = self.ack.clone() {
            // A retransmitted final response: the ACK again.
            self.send(now, to, ack, out);
            return;
        }
        self.invite_final = Some(code);
        self.to_tag = resp.to_tag();
        if (200..300).contains(&code) {
            // §12.1.2: the route set is the Record-Route list reversed; the remote target is the
            // Contact.
            self.route_set = resp
                .list("Record-Route")
                .iter()
                .rev()
                .map(|v| strip_brackets(v))
                .collect();
            self.remote_target = Some(strip_brackets(&resp.header("Contact").expect("contact")));
            let ack = self.dialog_request("ACK", 314159);
            let hop = self.dialog_hop();
            self.ack = Some((hop, ack.clone()));
            self.send(now, hop, ack, out);
            self.bye_at = Some(now + self.plan.bye_after);
        } else {
            // §17.1.1.3: the non-2xx ACK is part of the INVITE transaction.
            let inv = self.invite.clone().unwrap();
            let ack = format!(
                "ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\nTo: {to}\r\nFrom: {from}\r\n\
                 Call-ID: {cid}\r\nCSeq: 314159 ACK\r\nContent-Length: 0\r\n\r\n",
                uri = inv.request_uri(),
                via = inv.vias()[0],
                to = resp.header("To").unwrap(),
                from = inv.header("From").unwrap(),
                cid = self.call_id,
            )
            .into_bytes();
            self.ack = Some((self.outbound, ack.clone()));
            self.send(now, self.outbound, ack, out);
        }
    }

    fn timers(&self) -> impl Iterator<Item = u64> + '_ {
        [
            (!self.started).then_some(self.plan.start_at),
            self.invite_tx.as_ref().and_then(Retransmit::due),
            self.cancel_tx.as_ref().and_then(Retransmit::due),
            self.bye_tx.as_ref().and_then(Retransmit::due),
            self.cancel_at,
            self.bye_at,
        ]
        .into_iter()
        .flatten()
    }
}

impl Node for Uac {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn receive(&mut self, now: u64, _from: SocketAddr, bytes: &[u8], out: &mut Sends) {
        let msg = Msg::new(bytes);
        assert!(!msg.is_request(), "the UAC only gets responses: {msg:?}");
        assert_eq!(msg.vias().len(), 1, "only our own Via is left: {msg:?}");
        self.received.push((now, msg.clone()));
        let cseq = msg.header("CSeq").unwrap();
        let code = msg.status().unwrap();
        match cseq.split_whitespace().nth(1).unwrap() {
            "INVITE" => self.on_invite_response(now, &msg, out),
            "CANCEL" if code >= 200 => {
                self.cancel_tx = None;
                self.cancel_final.get_or_insert(code);
            }
            "BYE" if code >= 200 => {
                self.bye_tx = None;
                self.bye_final.get_or_insert(code);
            }
            "BYE" | "CANCEL" => {
                for tx in [&mut self.bye_tx, &mut self.cancel_tx]
                    .into_iter()
                    .flatten()
                {
                    tx.proceeding = true;
                }
            }
            other => panic!("unexpected response to {other}"),
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.timers().min()
    }

    fn timeout(&mut self, now: u64, out: &mut Sends) {
        if !self.started && self.plan.start_at <= now {
            self.start(now, out);
        }
        if self.cancel_at.is_some_and(|t| t <= now) {
            self.cancel_at = None;
            self.send_cancel(now, out);
        }
        if self.bye_at.is_some_and(|t| t <= now) {
            self.bye_at = None;
            let bye = self.dialog_request("BYE", 314160);
            let hop = self.dialog_hop();
            self.bye_tx = Some(Retransmit::new(now, hop, bye.clone(), false));
            self.send(now, hop, bye, out);
        }
        let mut sends = Vec::new();
        for slot in [&mut self.invite_tx, &mut self.cancel_tx, &mut self.bye_tx] {
            if let Some(tx) = slot.as_mut()
                && !tx.fire(now, &mut sends)
            {
                *slot = None;
            }
        }
        for (to, bytes) in sends {
            self.send(now, to, bytes, out);
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// How the UAS answers an INVITE (after ringing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 OK this long after the INVITE.
    Ok(u64),
    /// A final error response (e.g. 486) this long after the INVITE.
    Reject(u16, u64),
    /// Ring until cancelled.
    Never,
}

/// A server INVITE transaction and its answer.
struct ServerInvite {
    request: Msg,
    last_response: Option<Vec<u8>>,
    answer_at: Option<u64>,
    /// Final response retransmission until the ACK (2xx: §13.3.1.4; non-2xx: Timer G).
    retransmit: Option<(u64, u64)>,
    give_up_at: u64,
    finished: bool,
}

/// A scripted callee (or gateway): rings, then answers per [`Answer`]; answers OPTIONS, BYE and
/// CANCEL.
pub struct Uas {
    pub addr: SocketAddr,
    pub contact: String,
    pub answer: Answer,
    pub to_tag: String,
    /// Downstream forking (e.g. two phones of one user behind this address): when not empty,
    /// an INVITE is answered with one 180 per tag here, in order, each an early dialog of its
    /// own; the final response carries `to_tag`.
    pub ring_tags: Vec<String>,
    invites: Vec<ServerInvite>,
    pub received: Vec<(u64, Msg)>,
    pub sent: Vec<(u64, Msg)>,
}

impl Uas {
    pub fn new(addr: SocketAddr, user: &str, answer: Answer) -> Uas {
        Uas {
            addr,
            contact: format!("sip:{user}@{addr}"),
            answer,
            to_tag: "a6c85cf".into(),
            ring_tags: Vec::new(),
            invites: Vec::new(),
            received: Vec::new(),
            sent: Vec::new(),
        }
    }

    pub fn requests(&self, method: &str) -> Vec<&Msg> {
        self.received
            .iter()
            .map(|(_, m)| m)
            .filter(|m| m.method().as_deref() == Some(method))
            .collect()
    }

    fn respond(&self, req: &Msg, code: u16, reason: &str, dialog: bool, body: &str) -> Vec<u8> {
        self.respond_tagged(req, code, reason, dialog, body, &self.to_tag)
    }

    fn respond_tagged(
        &self,
        req: &Msg,
        code: u16,
        reason: &str,
        dialog: bool,
        body: &str,
        to_tag: &str,
    ) -> Vec<u8> {
        let mut head = format!("SIP/2.0 {code} {reason}\r\n");
        for v in req.all("Via") {
            head.push_str(&format!("Via: {v}\r\n"));
        }
        if dialog {
            for v in req.all("Record-Route") {
                head.push_str(&format!("Record-Route: {v}\r\n"));
            }
        }
        let to = req.header("To").unwrap();
        let to = if tag_of(&to).is_some() || code == 100 {
            to
        } else {
            format!("{to};tag={to_tag}")
        };
        head.push_str(&format!("To: {to}\r\n"));
        head.push_str(&format!("From: {}\r\n", req.header("From").unwrap()));
        head.push_str(&format!("Call-ID: {}\r\n", req.header("Call-ID").unwrap()));
        head.push_str(&format!("CSeq: {}\r\n", req.header("CSeq").unwrap()));
        if dialog {
            head.push_str(&format!("Contact: <{}>\r\n", self.contact));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/sdp\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        head.into_bytes()
    }

    fn send(&mut self, now: u64, req: &Msg, bytes: Vec<u8>, out: &mut Sends) {
        self.sent.push((now, Msg::new(&bytes)));
        out.push((response_destination(req), bytes));
    }

    fn final_response(&mut self, now: u64, i: usize, code: u16, reason: &str, out: &mut Sends) {
        let req = self.invites[i].request.clone();
        let body = if code == 200 {
            "v=0\r\no=bob 2890844527 2890844527 IN IP4 10.0.0.4\r\ns=-\r\nc=IN IP4 10.0.0.4\r\nt=0 0\r\nm=audio 3456 RTP/AVP 0\r\n"
        } else {
            ""
        };
        let resp = self.respond(&req, code, reason, code < 300, body);
        let inv = &mut self.invites[i];
        inv.last_response = Some(resp.clone());
        inv.answer_at = None;
        inv.retransmit = Some((now + T1, T1));
        inv.give_up_at = now + TIMEOUT;
        self.send(now, &req, resp, out);
    }
}

impl Node for Uas {
    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn receive(&mut self, now: u64, _from: SocketAddr, bytes: &[u8], out: &mut Sends) {
        let msg = Msg::new(bytes);
        assert!(msg.is_request(), "the UAS only gets requests: {msg:?}");
        self.received.push((now, msg.clone()));
        let method = msg.method().unwrap();
        let branch = msg.branch(0);
        match method.as_str() {
            "INVITE" => {
                if let Some(inv) = self.invites.iter().find(|t| t.request.branch(0) == branch) {
                    // A retransmission: the last response again.
                    if let Some(r) = inv.last_response.clone() {
                        let req = inv.request.clone();
                        self.send(now, &req, r, out);
                    }
                    return;
                }
                let ringing = self.respond(&msg, 180, "Ringing", true, "");
                let forks: Vec<Vec<u8>> = self
                    .ring_tags
                    .iter()
                    .map(|t| self.respond_tagged(&msg, 180, "Ringing", true, "", t))
                    .collect();
                let ringing = match forks.split_last() {
                    Some((last, earlier)) => {
                        for r in earlier {
                            self.send(now, &msg, r.clone(), out);
                        }
                        last.clone()
                    }
                    None => ringing,
                };
                self.invites.push(ServerInvite {
                    request: msg.clone(),
                    last_response: Some(ringing.clone()),
                    answer_at: match self.answer {
                        Answer::Ok(after) | Answer::Reject(_, after) => Some(now + after),
                        Answer::Never => None,
                    },
                    retransmit: None,
                    give_up_at: u64::MAX,
                    finished: false,
                });
                self.send(now, &msg, ringing, out);
            }
            "ACK" => {
                let cseq = msg.header("CSeq").unwrap();
                let num = cseq.split_whitespace().next().unwrap().to_owned();
                let cid = msg.header("Call-ID").unwrap();
                for inv in &mut self.invites {
                    let icseq = inv.request.header("CSeq").unwrap();
                    if inv.request.header("Call-ID").unwrap() == cid
                        && icseq.split_whitespace().next().unwrap() == num
                    {
                        inv.retransmit = None;
                        inv.finished = true;
                    }
                }
            }
            "CANCEL" => {
                let Some(i) = self
                    .invites
                    .iter()
                    .position(|t| t.request.branch(0) == branch)
                else {
                    let r = self.respond(&msg, 481, "Call/Transaction Does Not Exist", false, "");
                    self.send(now, &msg, r, out);
                    return;
                };
                let ok = self.respond(&msg, 200, "OK", false, "");
                self.send(now, &msg, ok, out);
                if self.invites[i].retransmit.is_none() && !self.invites[i].finished {
                    self.final_response(now, i, 487, "Request Terminated", out);
                }
            }
            _ => {
                let ok = self.respond(&msg, 200, "OK", false, "");
                self.send(now, &msg, ok, out);
            }
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.invites
            .iter()
            .flat_map(|t| [t.answer_at, t.retransmit.map(|r| r.0.min(t.give_up_at))])
            .flatten()
            .min()
    }

    fn timeout(&mut self, now: u64, out: &mut Sends) {
        for i in 0..self.invites.len() {
            if self.invites[i].answer_at.is_some_and(|t| t <= now) {
                match self.answer {
                    Answer::Ok(_) => self.final_response(now, i, 200, "OK", out),
                    Answer::Reject(code, _) => {
                        self.final_response(now, i, code, "Busy Here", out);
                    }
                    Answer::Never => {}
                }
                continue;
            }
            let inv = &mut self.invites[i];
            if inv.retransmit.is_some() && now >= inv.give_up_at {
                inv.retransmit = None;
                continue;
            }
            if let Some((at, interval)) = inv.retransmit
                && at <= now
            {
                inv.retransmit = Some((now + (interval * 2).min(T2), (interval * 2).min(T2)));
                let req = inv.request.clone();
                let r = inv.last_response.clone().unwrap();
                self.send(now, &req, r, out);
            }
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// RFC 3261 §4's topology on the simulated wire: Alice, proxy atlanta.com, proxy biloxi.com, Bob.
pub mod rfc3261 {
    use std::collections::HashMap;
    use std::sync::Arc;

    use sipd::proxy::{
        ContactTarget, NextHop, ProxyConfig, RouteTarget, StaticLocation, Transport,
    };

    use super::super::addr;

    pub const ALICE: &str = "10.0.0.1:5060";
    pub const ATLANTA: &str = "10.0.0.2:5060";
    pub const BILOXI: &str = "10.0.0.3:5060";
    pub const BOB: &str = "10.0.0.4:5060";

    /// atlanta.com's configuration (biloxi.com by a domain route), biloxi.com's location service
    /// (Bob at 10.0.0.4) and biloxi.com's configuration. Both proxies record-route.
    pub fn configs() -> (ProxyConfig, StaticLocation, ProxyConfig) {
        let atlanta = ProxyConfig {
            domains: vec!["atlanta.com".into()],
            record_route: true,
            domain_routes: HashMap::from([(
                "biloxi.com".to_owned(),
                RouteTarget::Hop(NextHop {
                    addr: addr(BILOXI),
                    transport: Transport::Udp,
                }),
            )]),
            ..ProxyConfig::default()
        };
        let mut location = StaticLocation::new();
        location.insert(
            "bob",
            "biloxi.com",
            vec![ContactTarget {
                uri: Arc::from(&b"sip:bob@10.0.0.4:5060"[..]),
                addr: addr(BOB),
                transport: Transport::Udp,
                q: 1000,
            }],
        );
        let biloxi = ProxyConfig {
            domains: vec!["biloxi.com".into()],
            record_route: true,
            ..ProxyConfig::default()
        };
        (atlanta, location, biloxi)
    }
}
