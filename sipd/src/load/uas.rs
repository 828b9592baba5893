//! The UAS role: answers INVITE with 180 and 200 (SDP answer), BYE, OPTIONS, REGISTER and other
//! requests with 200, as a sans-IO state machine.
//!
//! Per INVITE it keeps a small entry keyed by a hash of the Call-ID: the 2xx is retransmitted
//! at T1, 2T1, ... capped at T2 until the ACK arrives, and given up after 64*T1 (RFC 3261
//! §13.3.1.4, counted as a timeout failure); a retransmitted INVITE is answered with the stored
//! response. The entry goes at the BYE, or 64*T1 after the INVITE. Our To tag is a hash of the
//! Call-ID, so a retransmission gets the same one without a lookup.
//!
//! `stateless` answers without any table (no 2xx retransmission): the cheapest sink for
//! blasting a proxy with INVITEs.

use std::collections::HashMap;
use std::net::SocketAddr;

use xxhash_rust::xxh3::xxh3_64;

use crate::proxy::writer::Out;
use crate::sip::HeaderName;
use crate::sip::cseq::CSeq;
use crate::sip::message::{Message, Method, parse_datagram_uninit};
use crate::sip::via::{Rport, via_values};

use super::build::{self, Response};
use super::stats::{Stats, method_index};
use super::timer::TimerQueue;
use super::{Endpoint, Timers, TxBatch, digest};

#[derive(Clone, Debug)]
pub struct UasConfig {
    /// Our bound address (Contact).
    pub local: SocketAddr,
    pub timers: Timers,
    /// No per-call state: no 2xx retransmission, no retransmission detection.
    pub stateless: bool,
    /// Challenge REGISTER with Digest (401) and check the credentials.
    pub auth: Option<(String, String)>,
    /// Put an SDP answer in the 200 to INVITE.
    pub sdp: bool,
}

struct Entry {
    timer_seq: u32,
    invite_cseq: u32,
    acked: bool,
    /// The 2xx as sent (empty once ACKed).
    response: Vec<u8>,
    dest: SocketAddr,
    interval_us: u64,
    next_retrans_us: u64,
    expires_us: u64,
}

pub struct Uas {
    cfg: UasConfig,
    entries: HashMap<u64, Entry>,
    /// Entries whose 2xx is not ACKed yet.
    unacked: usize,
    pool: Vec<Vec<u8>>,
    timers: TimerQueue,
    stats: Stats,
    sdp: Vec<u8>,
    realm: &'static [u8],
}

const REALM: &[u8] = b"sipd-load";

impl Uas {
    pub fn new(cfg: UasConfig) -> Uas {
        Uas {
            cfg,
            entries: HashMap::new(),
            unacked: 0,
            pool: Vec::new(),
            timers: TimerQueue::new(),
            stats: Stats::default(),
            sdp: Vec::with_capacity(512),
            realm: REALM,
        }
    }

    /// Calls waiting for their ACK (or their BYE).
    pub fn entries(&self) -> usize {
        self.entries.len()
    }

    fn respond(
        &mut self,
        to: SocketAddr,
        bytes: &[u8],
        msg: &Message<'_, '_>,
        r: &Response<'_>,
        tx: &mut TxBatch,
    ) -> Option<(usize, usize)> {
        let index = tx.len();
        if tx.push(to, |buf| {
            build::write_response(buf, bytes, msg.headers(), r)
        }) {
            self.stats.msgs_sent += 1;
            self.stats.responses_sent.bump(r.code);
            let (_, sent) = tx.get(index);
            Some((index, sent.len()))
        } else {
            self.stats.send_errors += 1;
            None
        }
    }

    fn on_request(
        &mut self,
        now_us: u64,
        from: SocketAddr,
        bytes: &[u8],
        msg: &Message<'_, '_>,
        method: Method<'_>,
        tx: &mut TxBatch,
    ) {
        let Some(call_id) = msg.value(HeaderName::CallId) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(cseq) = msg
            .value(HeaderName::CSeq)
            .and_then(|v| CSeq::parse(v).ok())
        else {
            self.stats.malformed += 1;
            return;
        };
        let Some(to) = response_destination(msg, from) else {
            self.stats.malformed += 1;
            return;
        };
        let key = xxh3_64(call_id);
        let mut tag_buf = [0u8; 24];
        let mut t = Out::new(&mut tag_buf);
        t.put(b"u");
        t.put_hex64(key);
        let tag_len = t.len();
        let to_tag = &tag_buf[..tag_len];
        let ok = |code, reason: &'static [u8]| Response {
            code,
            reason,
            to_tag,
            contact: None,
            extra: b"",
            body: None,
            record_route: false,
        };
        match method {
            Method::Invite => self.on_invite(now_us, key, cseq.seq, to, to_tag, bytes, msg, tx),
            Method::Ack => {
                if let Some(e) = self.entries.get_mut(&key)
                    && !e.acked
                    && e.invite_cseq == cseq.seq
                {
                    e.acked = true;
                    self.unacked -= 1;
                    let resp = std::mem::take(&mut e.response);
                    self.pool.push(resp);
                    self.stats.completed += 1;
                } else if !self.cfg.stateless && !self.entries.contains_key(&key) {
                    // The ACK of a non-2xx (auth challenge) or of an expired call.
                    self.stats.unmatched += 1;
                }
            }
            Method::Bye => {
                if let Some(mut e) = self.entries.remove(&key)
                    && !e.acked
                {
                    // The BYE overtook the ACK: the call was set up all the same.
                    self.unacked -= 1;
                    self.stats.completed += 1;
                    self.pool.push(std::mem::take(&mut e.response));
                }
                self.respond(to, bytes, msg, &ok(200, b"OK"), tx);
            }
            Method::Register => self.on_register(to, to_tag, bytes, msg, tx),
            Method::Cancel => {
                // Every INVITE is answered at once: nothing is left to cancel but the CANCEL
                // itself gets its 200 (§9.2).
                self.respond(to, bytes, msg, &ok(200, b"OK"), tx);
            }
            _ => {
                self.stats.attempted += 1;
                self.stats.completed += 1;
                let extra: &[u8] = if method == Method::Options {
                    b"Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, REGISTER, MESSAGE\r\nAccept: application/sdp\r\n"
                } else {
                    b""
                };
                let r = Response {
                    extra,
                    ..ok(200, b"OK")
                };
                self.respond(to, bytes, msg, &r, tx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_invite(
        &mut self,
        now_us: u64,
        key: u64,
        seq: u32,
        to: SocketAddr,
        to_tag: &[u8],
        bytes: &[u8],
        msg: &Message<'_, '_>,
        tx: &mut TxBatch,
    ) {
        if !self.cfg.stateless
            && let Some(e) = self.entries.get(&key)
            && e.invite_cseq == seq
        {
            self.stats.retransmissions_received += 1;
            if !e.acked && !e.response.is_empty() {
                let dest = e.dest;
                let resp = std::mem::take(&mut self.entries.get_mut(&key).unwrap().response);
                if tx.push_bytes(dest, &resp) {
                    self.stats.msgs_sent += 1;
                    self.stats.retransmissions += 1;
                    self.stats.responses_sent.bump(200);
                }
                if let Some(e) = self.entries.get_mut(&key) {
                    e.response = resp;
                }
            }
            return;
        }
        self.stats.attempted += 1;
        let local = self.cfg.local;
        let ringing = Response {
            code: 180,
            reason: b"Ringing",
            to_tag,
            contact: Some((b"uas", local)),
            extra: b"",
            body: None,
            record_route: true,
        };
        self.respond(to, bytes, msg, &ringing, tx);
        self.sdp.clear();
        if self.cfg.sdp {
            let mut sdp = [0u8; 512];
            let n = build::write_sdp(&mut sdp, local.ip(), key & 0xffff_ffff);
            self.sdp.extend_from_slice(&sdp[..n]);
        }
        let sdp = std::mem::take(&mut self.sdp);
        let ok = Response {
            code: 200,
            reason: b"OK",
            to_tag,
            contact: Some((b"uas", local)),
            extra: b"",
            body: (!sdp.is_empty()).then_some((b"application/sdp".as_slice(), &sdp[..])),
            record_route: true,
        };
        let sent = self.respond(to, bytes, msg, &ok, tx);
        self.sdp = sdp;
        if self.cfg.stateless {
            self.stats.completed += 1;
            return;
        }
        let Some((index, _)) = sent else { return };
        let mut response = self.pool.pop().unwrap_or_default();
        response.clear();
        response.extend_from_slice(tx.get(index).1);
        let t = self.cfg.timers;
        let mut e = Entry {
            timer_seq: 0,
            invite_cseq: seq,
            acked: false,
            response,
            dest: to,
            interval_us: t.t1_us,
            next_retrans_us: now_us + t.t1_us,
            expires_us: now_us + t.transaction_timeout(),
        };
        if let Some(old) = self.entries.get(&key) {
            // A re-INVITE (new CSeq) of a call we still hold.
            e.timer_seq = old.timer_seq.wrapping_add(1);
        }
        self.timers.arm(e.next_retrans_us, key, e.timer_seq);
        self.unacked += 1;
        if let Some(mut old) = self.entries.insert(key, e) {
            if !old.acked {
                self.unacked -= 1;
            }
            self.pool.push(std::mem::take(&mut old.response));
        }
    }

    fn on_register(
        &mut self,
        to: SocketAddr,
        to_tag: &[u8],
        bytes: &[u8],
        msg: &Message<'_, '_>,
        tx: &mut TxBatch,
    ) {
        let call_id = msg.value(HeaderName::CallId).unwrap_or_default();
        let mut nonce_buf = [0u8; 16];
        let mut n = Out::new(&mut nonce_buf);
        n.put_hex64(xxh3_64(call_id) ^ 0x5a5a_1d1d_0000_5eed);
        let nonce = nonce_buf;
        let mut extra = [0u8; 1024];
        let mut x = Out::new(&mut extra);
        let (code, reason): (u16, &[u8]) = match &self.cfg.auth {
            Some((user, pass)) => match msg.value(HeaderName::Authorization) {
                None => {
                    x.put(b"WWW-Authenticate: Digest realm=\"");
                    x.put(self.realm);
                    x.put(b"\", nonce=\"");
                    x.put(&nonce);
                    x.put(b"\", algorithm=MD5, qop=\"auth\"\r\n");
                    (401, b"Unauthorized")
                }
                Some(cred) => {
                    if digest::verify(cred, user.as_bytes(), pass.as_bytes(), b"REGISTER", &nonce) {
                        (200, b"OK")
                    } else {
                        (403, b"Forbidden")
                    }
                }
            },
            None => (200, b"OK"),
        };
        if code == 200 {
            // Echo the bindings with their expiry (RFC 3261 §10.3 step 8).
            let expires = msg
                .value(HeaderName::Expires)
                .and_then(|v| crate::sip::values::parse_u32(v).ok())
                .unwrap_or(3600);
            for h in msg.headers_named(HeaderName::Contact) {
                x.put(b"Contact: ");
                x.put(h.value);
                x.put(b";expires=");
                x.put_u64(u64::from(expires));
                x.put(b"\r\n");
            }
        }
        if code != 401 {
            self.stats.attempted += 1;
            if code == 200 {
                self.stats.completed += 1;
            } else {
                self.stats.fail_rejected();
            }
        }
        let extra_len = x.len();
        let r = Response {
            code,
            reason,
            to_tag,
            contact: None,
            extra: &extra[..extra_len],
            body: None,
            record_route: false,
        };
        self.respond(to, bytes, msg, &r, tx);
    }

    fn fire(&mut self, key: u64, now_us: u64, tx: &mut TxBatch) {
        let t2 = self.cfg.timers.t2_us;
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        if e.acked || now_us >= e.expires_us {
            let mut e = self.entries.remove(&key).expect("present");
            if !e.acked {
                self.unacked -= 1;
                self.stats.fail_timeout();
                self.pool.push(std::mem::take(&mut e.response));
            }
            return;
        }
        if now_us >= e.next_retrans_us {
            if tx.push_bytes(e.dest, &e.response) {
                self.stats.msgs_sent += 1;
                self.stats.retransmissions += 1;
                self.stats.responses_sent.bump(200);
            }
            e.interval_us = (e.interval_us * 2).min(t2);
            e.next_retrans_us += e.interval_us;
        }
        e.timer_seq = e.timer_seq.wrapping_add(1);
        let deadline = e.next_retrans_us.min(e.expires_us);
        self.timers.arm(deadline, key, e.timer_seq);
    }
}

/// RFC 3261 §18.2.2 with RFC 3581: the `received` address (else the source address), and the
/// `rport` value, the source port for an empty `rport`, else the sent-by port (5060).
pub fn response_destination(msg: &Message<'_, '_>, source: SocketAddr) -> Option<SocketAddr> {
    let value = msg.value(HeaderName::Via)?;
    let via = via_values(value).next()?.ok()?;
    let ip = via.received().unwrap_or(source.ip());
    let port = match via.rport() {
        Rport::Value(p) => p,
        Rport::Empty => source.port(),
        Rport::Absent => via.port.unwrap_or(5060),
    };
    Some(SocketAddr::new(ip, port))
}

impl Endpoint for Uas {
    fn on_datagram(&mut self, now_us: u64, from: SocketAddr, bytes: &[u8], tx: &mut TxBatch) {
        self.stats.msgs_received += 1;
        let mut storage = [std::mem::MaybeUninit::uninit(); 64];
        let msg = match parse_datagram_uninit(bytes, &mut storage) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        match msg.method() {
            Some(m) => {
                self.stats.requests_received[method_index(m)] += 1;
                self.on_request(now_us, from, bytes, &msg, m, tx);
            }
            None => {
                if let Some(code) = msg.status() {
                    self.stats.responses_received.bump(code);
                }
                self.stats.unmatched += 1;
            }
        }
    }

    fn on_timers(&mut self, now_us: u64, tx: &mut TxBatch) {
        while let Some((key, seq)) = self.timers.pop_due(now_us) {
            if self.entries.get(&key).is_some_and(|e| e.timer_seq == seq) {
                self.fire(key, now_us, tx);
            }
        }
    }

    fn start(&mut self, _now_us: u64, _n: u64, _tx: &mut TxBatch) -> u64 {
        0
    }

    fn next_deadline(&self) -> Option<u64> {
        self.timers.next_deadline()
    }

    fn active(&self) -> usize {
        self.unacked
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
