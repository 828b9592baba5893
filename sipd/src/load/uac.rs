//! The UAC role: places calls (INVITE, 1xx, 2xx, ACK, hold, BYE, 200) or runs REGISTER /
//! OPTIONS transactions, as a sans-IO state machine.
//!
//! Calls live in a slab of slots; a slot's generation goes up each time it is reused, and both are
//! in every branch we send, so a response finds its call by parsing its top Via and a late
//! response for a reused slot is counted as unmatched instead of confusing the new call.
//!
//! Timers (RFC 3261 §17.1): an INVITE is retransmitted at T1, 2T1, 4T1... until a provisional or
//! final response (Timer A) and the call fails after 64*T1 without a final response (Timer B,
//! also applied while proceeding, as the TU's setup timeout). BYE, REGISTER and OPTIONS are
//! retransmitted at doubling intervals capped at T2 (at T2 once a provisional arrived, Timer E)
//! and fail after 64*T1 (Timer F). A retransmitted 2xx is answered with the ACK again; a non-2xx
//! final is ACKed with the INVITE's branch (§17.1.1.3), and the call lingers for 64*T1 (Timer D)
//! to ACK its retransmissions.

use std::net::{IpAddr, SocketAddr};

use crate::proxy::writer::Out;
use crate::sip::HeaderName;
use crate::sip::cseq::CSeq;
use crate::sip::message::{Message, parse_datagram_uninit};
use crate::sip::name_addr::{NameAddr, name_addr_values};
use crate::sip::uri::Host;
use crate::sip::via::via_values;

use super::build::{self, BranchId, Request, UriTemplate};
use super::stats::{Stats, method_index};
use super::timer::TimerQueue;
use super::{Endpoint, Timers, TxBatch, digest};

/// What each call does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// INVITE, ACK, hold, BYE.
    Call,
    /// One REGISTER transaction per "call" (a distinct AOR from the URI template).
    Register,
    /// One OPTIONS transaction per "call".
    Options,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Call => "call",
            Scenario::Register => "register",
            Scenario::Options => "options",
        }
    }
}

#[derive(Clone, Debug)]
pub struct UacConfig {
    pub scenario: Scenario,
    /// Where requests go (a proxy or a UAS).
    pub target: SocketAddr,
    /// Our bound address: Via sent-by, Contact, From host.
    pub local: SocketAddr,
    /// Request-URI (Call, Options) or AOR (Register) for call number `n`.
    pub uri: UriTemplate,
    /// Time between the ACK and the BYE.
    pub hold_us: u64,
    pub timers: Timers,
    /// Digest credentials for 401/407 challenges.
    pub auth: Option<(String, String)>,
    /// REGISTER Expires.
    pub expires: u32,
    /// Call numbers are `first_number + k * number_step` (disjoint across workers).
    pub first_number: u64,
    pub number_step: u64,
    /// Makes Call-IDs, tags and branches unique across workers and runs.
    pub run_id: u32,
    /// Put an SDP offer in the INVITE.
    pub sdp: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum State {
    Free,
    /// INVITE sent, no response yet (retransmitting).
    Calling,
    /// INVITE got a provisional response.
    Proceeding,
    /// 2xx ACKed, holding until the BYE.
    Established,
    /// BYE (or REGISTER/OPTIONS) sent, waiting for its final response.
    Requesting,
    /// A non-2xx final was ACKed: absorbing its retransmissions until Timer D.
    Lingering,
}

// Transaction numbers in the branch.
const TXN_INVITE: u32 = 1;
const TXN_ACK: u32 = 2;
const TXN_BYE: u32 = 3;
/// REGISTER/OPTIONS (and a re-sent INVITE with credentials) use 4, 5, ...
const TXN_FIRST_REQUEST: u32 = 4;

struct Call {
    generation: u32,
    state: State,
    timer_seq: u32,
    number: u64,
    call_started_us: u64,
    txn: u32,
    txn_method: &'static [u8],
    txn_started_us: u64,
    txn_answered: bool,
    cseq: u32,
    /// The CSeq of the INVITE, which every ACK carries.
    invite_cseq: u32,
    retrans_interval_us: u64,
    /// 0: no retransmission pending.
    next_retrans_us: u64,
    timeout_us: u64,
    hold_until_us: u64,
    linger_until_us: u64,
    auth_tried: bool,
    /// The remote tag, target, route line and credentials line, kept in one reused buffer.
    dialog: Vec<u8>,
    to_tag: (usize, usize),
    remote_target: (usize, usize),
    route: (usize, usize),
    credentials: (usize, usize),
    /// Where in-dialog requests go.
    dialog_dest: SocketAddr,
}

impl Call {
    fn new() -> Call {
        Call {
            generation: 0,
            state: State::Free,
            timer_seq: 0,
            number: 0,
            call_started_us: 0,
            txn: 0,
            txn_method: b"",
            txn_started_us: 0,
            txn_answered: false,
            cseq: 1,
            invite_cseq: 1,
            retrans_interval_us: 0,
            next_retrans_us: 0,
            timeout_us: 0,
            hold_until_us: 0,
            linger_until_us: 0,
            auth_tried: false,
            dialog: Vec::new(),
            to_tag: (0, 0),
            remote_target: (0, 0),
            route: (0, 0),
            credentials: (0, 0),
            dialog_dest: SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    fn slice(&self, r: (usize, usize)) -> &[u8] {
        &self.dialog[r.0..r.1]
    }

    fn store(&mut self, bytes: &[u8]) -> (usize, usize) {
        let start = self.dialog.len();
        self.dialog.extend_from_slice(bytes);
        (start, self.dialog.len())
    }
}

pub struct Uac {
    cfg: UacConfig,
    calls: Vec<Call>,
    free: Vec<u32>,
    active: usize,
    timers: TimerQueue,
    next_k: u64,
    stats: Stats,
    from_uri: Vec<u8>,
    /// Register: the Request-URI (`sip:` + the AOR's host).
    register_ruri: Vec<u8>,
    sdp: Vec<u8>,
    scratch: Vec<u8>,
}

impl Uac {
    pub fn new(cfg: UacConfig) -> Uac {
        let mut from_uri = b"sip:load@".to_vec();
        from_uri.extend_from_slice(&hostport(cfg.local));
        let sample = cfg.uri.render(0);
        let register_ruri = match crate::sip::uri::Uri::parse(&sample) {
            Ok(u) => {
                let mut r = u.scheme().as_bytes().to_vec();
                r.push(b':');
                r.extend_from_slice(u.host_raw());
                if let Some(p) = u.port() {
                    r.extend_from_slice(format!(":{p}").as_bytes());
                }
                r
            }
            Err(_) => sample,
        };
        Uac {
            cfg,
            calls: Vec::new(),
            free: Vec::new(),
            active: 0,
            timers: TimerQueue::new(),
            next_k: 0,
            stats: Stats::default(),
            from_uri,
            register_ruri,
            sdp: Vec::new(),
            scratch: Vec::with_capacity(1024),
        }
    }

    pub fn config(&self) -> &UacConfig {
        &self.cfg
    }

    fn alloc(&mut self) -> u32 {
        match self.free.pop() {
            Some(s) => s,
            None => {
                self.calls.push(Call::new());
                (self.calls.len() - 1) as u32
            }
        }
    }

    fn release(&mut self, slot: u32) {
        let c = &mut self.calls[slot as usize];
        if c.state == State::Free {
            return;
        }
        if c.state != State::Lingering {
            self.active -= 1;
        }
        c.state = State::Free;
        c.timer_seq = c.timer_seq.wrapping_add(1);
        self.free.push(slot);
    }

    /// Ends the call's life as an active call but keeps the slot (Timer D).
    fn linger(&mut self, slot: u32, now_us: u64) {
        let linger = self.cfg.timers.transaction_timeout();
        let c = &mut self.calls[slot as usize];
        c.state = State::Lingering;
        c.linger_until_us = now_us + linger;
        c.next_retrans_us = 0;
        self.active -= 1;
        self.rearm(slot);
    }

    fn rearm(&mut self, slot: u32) {
        let c = &mut self.calls[slot as usize];
        c.timer_seq = c.timer_seq.wrapping_add(1);
        let deadline = match c.state {
            State::Free => return,
            State::Calling | State::Proceeding | State::Requesting => {
                if c.next_retrans_us != 0 {
                    c.next_retrans_us.min(c.timeout_us)
                } else {
                    c.timeout_us
                }
            }
            State::Established => c.hold_until_us,
            State::Lingering => c.linger_until_us,
        };
        self.timers.arm(deadline, u64::from(slot), c.timer_seq);
    }

    fn branch(&self, slot: u32, txn: u32) -> BranchId {
        BranchId {
            run: self.cfg.run_id,
            slot,
            generation: self.calls[slot as usize].generation,
            txn,
        }
    }

    fn count_sent_request(&mut self, method_idx: usize) {
        self.stats.msgs_sent += 1;
        self.stats.requests_sent[method_idx] += 1;
    }

    /// Writes the current transaction's request (first send or retransmission).
    fn send_txn_request(&mut self, slot: u32, tx: &mut TxBatch) -> bool {
        let c = &self.calls[slot as usize];
        let branch = self.branch(slot, c.txn);
        let number = c.number;
        let method = c.txn_method;
        self.scratch.clear();
        if c.route.1 > c.route.0 {
            self.scratch.extend_from_slice(c.slice(c.route));
        }
        if c.credentials.1 > c.credentials.0 {
            self.scratch.extend_from_slice(c.slice(c.credentials));
        }
        let mut ruri_buf = [0u8; 1024];
        let mut aor_buf = [0u8; 1024];
        let (ruri_len, aor_len) = {
            let mut a = Out::new(&mut aor_buf);
            self.cfg.uri.put(&mut a, number);
            let aor_len = a.len();
            let mut r = Out::new(&mut ruri_buf);
            match (self.cfg.scenario, method) {
                (_, b"BYE") => r.put(c.slice(c.remote_target)),
                (Scenario::Register, _) => r.put(&self.register_ruri),
                _ => self.cfg.uri.put(&mut r, number),
            }
            (r.len(), aor_len)
        };
        let ruri = &ruri_buf[..ruri_len];
        let aor = &aor_buf[..aor_len];
        let is_register = method == b"REGISTER";
        let is_invite = method == b"INVITE";
        if is_register {
            self.scratch.extend_from_slice(b"Expires: ");
            self.scratch
                .extend_from_slice(self.cfg.expires.to_string().as_bytes());
            self.scratch.extend_from_slice(b"\r\n");
        } else if method == b"OPTIONS" {
            self.scratch
                .extend_from_slice(b"Accept: application/sdp\r\n");
        }
        if is_invite && self.cfg.sdp {
            let mut sdp = [0u8; 512];
            let n = build::write_sdp(&mut sdp, self.cfg.local.ip(), number);
            self.sdp.clear();
            self.sdp.extend_from_slice(&sdp[..n]);
        }
        let contact_user: Option<&[u8]> = if is_register {
            // The AOR's user part registers our address.
            Some(
                crate::sip::uri::Uri::parse(aor)
                    .ok()
                    .and_then(|u| u.user())
                    .unwrap_or(b"load"),
            )
        } else if is_invite {
            Some(b"load")
        } else {
            None
        };
        let from_uri: &[u8] = if is_register { aor } else { &self.from_uri };
        let to_uri: &[u8] = if method == b"BYE" || is_register {
            aor
        } else {
            ruri
        };
        let to_tag = (c.to_tag.1 > c.to_tag.0 && method == b"BYE").then(|| c.slice(c.to_tag));
        let req = Request {
            method,
            ruri,
            local: self.cfg.local,
            branch,
            from_uri,
            run: self.cfg.run_id,
            number,
            to_uri,
            to_tag,
            cseq: c.cseq,
            extra: &self.scratch,
            contact_user,
            body: (is_invite && self.cfg.sdp)
                .then_some((b"application/sdp".as_slice(), &self.sdp[..])),
        };
        let dest = if method == b"BYE" {
            c.dialog_dest
        } else {
            self.cfg.target
        };
        let ok = tx.push(dest, |buf| build::write_request(buf, &req));
        if ok {
            self.count_sent_request(method_index(crate::sip::Method::from_bytes(method)));
        }
        ok
    }

    /// ACK: for a 2xx (new branch, in-dialog, route set) or a non-2xx (INVITE's branch, to the
    /// target). `to_tag` is the response's.
    fn send_ack(&mut self, slot: u32, for_2xx: bool, to_tag: &[u8], tx: &mut TxBatch) -> bool {
        let c = &self.calls[slot as usize];
        let number = c.number;
        let mut ruri_buf = [0u8; 1024];
        let mut r = Out::new(&mut ruri_buf);
        if for_2xx {
            r.put(c.slice(c.remote_target));
        } else {
            self.cfg.uri.put(&mut r, number);
        }
        let ruri_len = r.len();
        let mut to_buf = [0u8; 1024];
        let mut t = Out::new(&mut to_buf);
        self.cfg.uri.put(&mut t, number);
        let to_len = t.len();
        self.scratch.clear();
        if for_2xx && c.route.1 > c.route.0 {
            self.scratch.extend_from_slice(c.slice(c.route));
        }
        if c.credentials.1 > c.credentials.0 {
            self.scratch.extend_from_slice(c.slice(c.credentials));
        }
        let invite_txn = c.txn;
        let req = Request {
            method: b"ACK",
            ruri: &ruri_buf[..ruri_len],
            local: self.cfg.local,
            branch: self.branch(slot, if for_2xx { TXN_ACK } else { invite_txn }),
            from_uri: &self.from_uri,
            run: self.cfg.run_id,
            number,
            to_uri: &to_buf[..to_len],
            to_tag: Some(to_tag),
            cseq: c.invite_cseq,
            extra: &self.scratch,
            contact_user: None,
            body: None,
        };
        let dest = if for_2xx {
            c.dialog_dest
        } else {
            self.cfg.target
        };
        let ok = tx.push(dest, |buf| build::write_request(buf, &req));
        if ok {
            self.count_sent_request(1);
        }
        ok
    }

    /// Starts a client transaction on the call: first send and its timers.
    fn begin_txn(
        &mut self,
        slot: u32,
        now_us: u64,
        txn: u32,
        method: &'static [u8],
        tx: &mut TxBatch,
    ) {
        let t1 = self.cfg.timers.t1_us;
        let timeout = self.cfg.timers.transaction_timeout();
        let c = &mut self.calls[slot as usize];
        c.txn = txn;
        c.txn_method = method;
        c.txn_started_us = now_us;
        c.txn_answered = false;
        c.retrans_interval_us = t1;
        c.next_retrans_us = now_us + t1;
        c.timeout_us = now_us + timeout;
        c.state = if method == b"INVITE" {
            c.invite_cseq = c.cseq;
            State::Calling
        } else {
            State::Requesting
        };
        if !self.send_txn_request(slot, tx) {
            self.stats.fail_other();
            self.release(slot);
            return;
        }
        self.rearm(slot);
    }

    fn start_one(&mut self, now_us: u64, tx: &mut TxBatch) {
        let slot = self.alloc();
        let number = self.cfg.first_number + self.next_k * self.cfg.number_step;
        self.next_k += 1;
        let c = &mut self.calls[slot as usize];
        c.generation = c.generation.wrapping_add(1);
        c.number = number;
        c.call_started_us = now_us;
        c.cseq = 1;
        c.auth_tried = false;
        c.dialog.clear();
        c.to_tag = (0, 0);
        c.remote_target = (0, 0);
        c.route = (0, 0);
        c.credentials = (0, 0);
        c.dialog_dest = self.cfg.target;
        c.state = State::Calling;
        self.active += 1;
        self.stats.attempted += 1;
        match self.cfg.scenario {
            Scenario::Call => self.begin_txn(slot, now_us, TXN_INVITE, b"INVITE", tx),
            Scenario::Register => self.begin_txn(slot, now_us, TXN_FIRST_REQUEST, b"REGISTER", tx),
            Scenario::Options => self.begin_txn(slot, now_us, TXN_FIRST_REQUEST, b"OPTIONS", tx),
        }
    }

    fn fire(&mut self, slot: u32, now_us: u64, tx: &mut TxBatch) {
        let t2 = self.cfg.timers.t2_us;
        let c = &self.calls[slot as usize];
        match c.state {
            State::Free => {}
            State::Lingering => {
                if now_us >= c.linger_until_us {
                    self.release(slot);
                } else {
                    self.rearm(slot);
                }
            }
            State::Established => {
                if now_us >= c.hold_until_us {
                    self.send_bye(slot, now_us, tx);
                } else {
                    self.rearm(slot);
                }
            }
            State::Calling | State::Proceeding | State::Requesting => {
                if now_us >= c.timeout_us {
                    self.stats.fail_timeout();
                    self.release(slot);
                    return;
                }
                if c.next_retrans_us != 0 && now_us >= c.next_retrans_us {
                    let invite = c.state == State::Calling;
                    if self.send_txn_request(slot, tx) {
                        self.stats.retransmissions += 1;
                    }
                    let c = &mut self.calls[slot as usize];
                    c.retrans_interval_us = if invite {
                        c.retrans_interval_us * 2
                    } else if c.txn_answered {
                        t2
                    } else {
                        (c.retrans_interval_us * 2).min(t2)
                    };
                    // From when it was due, not when the loop got to it: a late wake-up does not
                    // push every later retransmission back.
                    c.next_retrans_us += c.retrans_interval_us;
                }
                self.rearm(slot);
            }
        }
    }

    fn send_bye(&mut self, slot: u32, now_us: u64, tx: &mut TxBatch) {
        let c = &mut self.calls[slot as usize];
        c.cseq += 1;
        self.begin_txn(slot, now_us, TXN_BYE, b"BYE", tx);
    }

    fn on_response(&mut self, now_us: u64, msg: &Message<'_, '_>, tx: &mut TxBatch) {
        let Some(code) = msg.status() else { return };
        self.stats.responses_received.bump(code);
        let Some(id) = top_branch(msg).and_then(BranchId::parse) else {
            self.stats.unmatched += 1;
            return;
        };
        let slot = id.slot;
        let Some(c) = self.calls.get(slot as usize) else {
            self.stats.unmatched += 1;
            return;
        };
        if id.run != self.cfg.run_id || id.generation != c.generation || c.state == State::Free {
            self.stats.unmatched += 1;
            return;
        }
        let Some(cseq) = msg
            .value(HeaderName::CSeq)
            .and_then(|v| CSeq::parse(v).ok())
        else {
            self.stats.malformed += 1;
            return;
        };
        let to_tag = msg
            .value(HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.tag())
            .unwrap_or_default();
        let current = id.txn == c.txn && cseq.seq == c.cseq && cseq.method == c.txn_method;
        if cseq.method == b"INVITE" {
            self.on_invite_response(slot, now_us, code, current, to_tag, msg, tx);
            return;
        }
        if !current || c.state != State::Requesting {
            // A retransmitted or late final for a transaction already finished.
            self.stats.retransmissions_received += 1;
            return;
        }
        self.first_response(slot, now_us);
        match code {
            100..=199 => {
                let t2 = self.cfg.timers.t2_us;
                let c = &mut self.calls[slot as usize];
                if c.next_retrans_us != 0 {
                    c.retrans_interval_us = t2;
                }
            }
            200..=299 => {
                self.stats.completed += 1;
                self.release(slot);
            }
            401 | 407 if self.try_auth(slot, now_us, code, msg, tx) => {}
            _ => {
                self.stats.fail_rejected();
                self.release(slot);
            }
        }
    }

    fn first_response(&mut self, slot: u32, now_us: u64) {
        let c = &mut self.calls[slot as usize];
        if !c.txn_answered {
            c.txn_answered = true;
            Stats::record(
                &mut self.stats.request_to_response,
                now_us.saturating_sub(c.txn_started_us),
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_invite_response(
        &mut self,
        slot: u32,
        now_us: u64,
        code: u16,
        current: bool,
        to_tag: &[u8],
        msg: &Message<'_, '_>,
        tx: &mut TxBatch,
    ) {
        let state = self.calls[slot as usize].state;
        let in_progress = current && matches!(state, State::Calling | State::Proceeding);
        match code {
            100..=199 => {
                if in_progress {
                    self.first_response(slot, now_us);
                    let c = &mut self.calls[slot as usize];
                    c.state = State::Proceeding;
                    c.next_retrans_us = 0;
                    self.rearm(slot);
                }
            }
            200..=299 => {
                if in_progress {
                    self.first_response(slot, now_us);
                    let started = self.calls[slot as usize].call_started_us;
                    Stats::record(
                        &mut self.stats.invite_to_200,
                        now_us.saturating_sub(started),
                    );
                    self.remember_dialog(slot, to_tag, msg);
                    if !self.send_ack(slot, true, to_tag, tx) {
                        self.stats.fail_other();
                        self.release(slot);
                        return;
                    }
                    let hold = self.cfg.hold_us;
                    let c = &mut self.calls[slot as usize];
                    c.state = State::Established;
                    c.next_retrans_us = 0;
                    c.hold_until_us = now_us + hold;
                    if hold == 0 {
                        self.send_bye(slot, now_us, tx);
                    } else {
                        self.rearm(slot);
                    }
                } else if matches!(state, State::Established | State::Requesting)
                    && to_tag == self.calls[slot as usize].slice(self.calls[slot as usize].to_tag)
                {
                    // The UAS did not get our ACK yet: send it again (§13.2.2.4).
                    self.stats.retransmissions_received += 1;
                    let tag = to_tag.to_vec();
                    if self.send_ack(slot, true, &tag, tx) {
                        self.stats.retransmissions += 1;
                    }
                } else {
                    self.stats.retransmissions_received += 1;
                }
            }
            _ => {
                if in_progress {
                    self.first_response(slot, now_us);
                    self.send_ack(slot, false, to_tag, tx);
                    if matches!(code, 401 | 407) && self.try_auth(slot, now_us, code, msg, tx) {
                        return;
                    }
                    self.stats.fail_rejected();
                    self.linger(slot, now_us);
                } else if state == State::Lingering && current {
                    self.stats.retransmissions_received += 1;
                    if self.send_ack(slot, false, to_tag, tx) {
                        self.stats.retransmissions += 1;
                    }
                } else {
                    self.stats.retransmissions_received += 1;
                }
            }
        }
    }

    /// Answers a 401/407 once per call with credentials: the request again with CSeq + 1.
    fn try_auth(
        &mut self,
        slot: u32,
        now_us: u64,
        code: u16,
        msg: &Message<'_, '_>,
        tx: &mut TxBatch,
    ) -> bool {
        let Some((user, pass)) = self.cfg.auth.clone() else {
            return false;
        };
        if self.calls[slot as usize].auth_tried {
            return false;
        }
        let proxy = code == 407;
        let header = if proxy {
            HeaderName::ProxyAuthenticate
        } else {
            HeaderName::WwwAuthenticate
        };
        let Some(challenge) = msg.value(header) else {
            return false;
        };
        let c = &self.calls[slot as usize];
        let method = c.txn_method;
        let mut ruri_buf = [0u8; 1024];
        let mut r = Out::new(&mut ruri_buf);
        match self.cfg.scenario {
            Scenario::Register => r.put(&self.register_ruri),
            _ => self.cfg.uri.put(&mut r, c.number),
        }
        let ruri_len = r.len();
        let mut line = [0u8; 1024];
        let mut out = Out::new(&mut line);
        let cnonce = u64::from(self.cfg.run_id) << 32 ^ c.number;
        if !digest::write_credentials(
            &mut out,
            proxy,
            challenge,
            user.as_bytes(),
            pass.as_bytes(),
            method,
            &ruri_buf[..ruri_len],
            cnonce,
        ) {
            return false;
        }
        let Some(len) = out.finish() else {
            return false;
        };
        let c = &mut self.calls[slot as usize];
        c.auth_tried = true;
        c.credentials = c.store(&line[..len]);
        c.cseq += 1;
        let txn = if method == b"INVITE" {
            // A new INVITE transaction; keep TXN_INVITE's slot free for the first one.
            TXN_FIRST_REQUEST + 1
        } else {
            c.txn + 1
        };
        self.begin_txn(slot, now_us, txn, method, tx);
        true
    }

    /// From a 2xx to INVITE: remote tag, remote target (Contact), route set (Record-Route
    /// reversed, §12.1.2) and where in-dialog requests go.
    fn remember_dialog(&mut self, slot: u32, to_tag: &[u8], msg: &Message<'_, '_>) {
        let target = self.cfg.target;
        let c = &mut self.calls[slot as usize];
        c.to_tag = c.store(to_tag);
        let contact = msg
            .value(HeaderName::Contact)
            .and_then(|v| name_addr_values(v).next())
            .and_then(|r| r.ok());
        let contact_addr = contact.and_then(|na| {
            let ip = match na.uri.host()? {
                Host::Ipv4(a) => IpAddr::V4(a),
                Host::Ipv6(a) => IpAddr::V6(a),
                Host::Name(_) => return None,
            };
            Some(SocketAddr::new(ip, na.uri.port().unwrap_or(5060)))
        });
        let uri = contact.map(|na| na.uri_raw).unwrap_or_default();
        c.remote_target = if uri.is_empty() {
            // No Contact: fall back to the original Request-URI.
            let r = self.cfg.uri.render(c.number);
            c.store(&r)
        } else {
            c.store(uri)
        };
        // Record-Route values in order, then written reversed as one Route line.
        let mut routes: Vec<&[u8]> = Vec::new();
        for h in msg.headers_named(HeaderName::RecordRoute) {
            for (_, v) in crate::sip::values::split_comma(h.value).flatten() {
                routes.push(v);
            }
        }
        if routes.is_empty() {
            c.route = (0, 0);
            c.dialog_dest = contact_addr.unwrap_or(target);
        } else {
            let start = c.dialog.len();
            c.dialog.extend_from_slice(b"Route: ");
            for (i, r) in routes.iter().rev().enumerate() {
                if i > 0 {
                    c.dialog.extend_from_slice(b", ");
                }
                c.dialog.extend_from_slice(r);
            }
            c.dialog.extend_from_slice(b"\r\n");
            c.route = (start, c.dialog.len());
            // A record-routing proxy in front: in-dialog requests go to it (the first route).
            c.dialog_dest = target;
        }
    }
}

fn top_branch<'a>(msg: &Message<'a, '_>) -> Option<&'a [u8]> {
    let via = msg.value(HeaderName::Via)?;
    let v = via_values(via).next()?.ok()?;
    v.branch()
}

fn hostport(addr: SocketAddr) -> Vec<u8> {
    let mut buf = [0u8; 64];
    let mut out = Out::new(&mut buf);
    out.put_hostport(addr);
    out.written().to_vec()
}

impl Endpoint for Uac {
    fn on_datagram(&mut self, now_us: u64, _from: SocketAddr, bytes: &[u8], tx: &mut TxBatch) {
        self.stats.msgs_received += 1;
        let mut storage = [std::mem::MaybeUninit::uninit(); 64];
        let msg = match parse_datagram_uninit(bytes, &mut storage) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        if let Some(m) = msg.method() {
            // Nothing in our scenarios sends us requests.
            self.stats.requests_received[method_index(m)] += 1;
            self.stats.unmatched += 1;
            return;
        }
        self.on_response(now_us, &msg, tx);
    }

    fn on_timers(&mut self, now_us: u64, tx: &mut TxBatch) {
        while let Some((key, seq)) = self.timers.pop_due(now_us) {
            let slot = key as u32;
            let Some(c) = self.calls.get(slot as usize) else {
                continue;
            };
            if c.timer_seq != seq || c.state == State::Free {
                continue;
            }
            self.fire(slot, now_us, tx);
        }
    }

    fn start(&mut self, now_us: u64, n: u64, tx: &mut TxBatch) -> u64 {
        for _ in 0..n {
            self.start_one(now_us, tx);
        }
        n
    }

    fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    fn active(&self) -> usize {
        self.active
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
