//! The blast role: a stateless flood of distinct, valid requests (each with its own Call-ID,
//! From tag, branch and Request-URI number) for measuring pure forwarding throughput. Nothing is
//! retransmitted; responses are counted by status (2xx complete a request, other finals fail
//! it), and what is left unanswered at the end is reported as in progress.
//!
//! With `INVITE`, answer with `sipd load uas --stateless`: a stateful UAS would retransmit each
//! 2xx waiting for an ACK that never comes.

use std::net::SocketAddr;

use crate::sip::message::parse_datagram_uninit;

use super::build::{self, BranchId, Request, UriTemplate};
use super::stats::{Stats, method_index};
use super::{Endpoint, TxBatch};

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum BlastMethod {
    Options,
    Invite,
    Register,
    Message,
}

impl BlastMethod {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            BlastMethod::Options => b"OPTIONS",
            BlastMethod::Invite => b"INVITE",
            BlastMethod::Register => b"REGISTER",
            BlastMethod::Message => b"MESSAGE",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlastMethod::Options => "options",
            BlastMethod::Invite => "invite",
            BlastMethod::Register => "register",
            BlastMethod::Message => "message",
        }
    }
}

#[derive(Clone, Debug)]
pub struct BlastConfig {
    pub method: BlastMethod,
    pub target: SocketAddr,
    pub local: SocketAddr,
    pub uri: UriTemplate,
    pub run_id: u32,
    pub first_number: u64,
    pub number_step: u64,
    pub sdp: bool,
}

pub struct Blast {
    cfg: BlastConfig,
    k: u64,
    finals: u64,
    stats: Stats,
    from_uri: Vec<u8>,
    sdp: Vec<u8>,
}

impl Blast {
    pub fn new(cfg: BlastConfig) -> Blast {
        let from_uri = format!("sip:blast@{}", cfg.local).into_bytes();
        let mut sdp = [0u8; 512];
        let n = build::write_sdp(&mut sdp, cfg.local.ip(), u64::from(cfg.run_id));
        Blast {
            sdp: sdp[..n].to_vec(),
            cfg,
            k: 0,
            finals: 0,
            stats: Stats::default(),
            from_uri,
        }
    }

    fn send_one(&mut self, tx: &mut TxBatch) -> bool {
        let number = self.cfg.first_number + self.k * self.cfg.number_step;
        let k = self.k;
        self.k += 1;
        let mut ruri = [0u8; 1024];
        let mut r = crate::proxy::writer::Out::new(&mut ruri);
        self.cfg.uri.put(&mut r, number);
        let len = r.len();
        let ruri = &ruri[..len];
        let method = self.cfg.method;
        let invite = method == BlastMethod::Invite;
        let extra: &[u8] = match method {
            BlastMethod::Register => b"Expires: 3600\r\n",
            BlastMethod::Options => b"Accept: application/sdp\r\n",
            _ => b"",
        };
        let body = match method {
            BlastMethod::Invite if self.cfg.sdp => {
                Some((b"application/sdp".as_slice(), &self.sdp[..]))
            }
            BlastMethod::Message => Some((b"text/plain".as_slice(), b"sipd load blast".as_slice())),
            _ => None,
        };
        let req = Request {
            method: method.as_bytes(),
            ruri,
            local: self.cfg.local,
            branch: BranchId {
                run: self.cfg.run_id,
                slot: (k >> 32) as u32,
                generation: k as u32,
                txn: 0,
            },
            from_uri: &self.from_uri,
            run: self.cfg.run_id,
            number,
            to_uri: ruri,
            to_tag: None,
            cseq: 1,
            extra,
            contact_user: (invite || method == BlastMethod::Register)
                .then_some(b"blast".as_slice()),
            body,
        };
        let ok = tx.push(self.cfg.target, |buf| build::write_request(buf, &req));
        if ok {
            self.stats.attempted += 1;
            self.stats.msgs_sent += 1;
            self.stats.requests_sent
                [method_index(crate::sip::Method::from_bytes(method.as_bytes()))] += 1;
        } else {
            self.stats.fail_other();
        }
        ok
    }
}

impl Endpoint for Blast {
    fn on_datagram(&mut self, _now_us: u64, _from: SocketAddr, bytes: &[u8], _tx: &mut TxBatch) {
        self.stats.msgs_received += 1;
        let mut storage = [std::mem::MaybeUninit::uninit(); 64];
        let Ok(msg) = parse_datagram_uninit(bytes, &mut storage) else {
            self.stats.malformed += 1;
            return;
        };
        let Some(code) = msg.status() else {
            if let Some(m) = msg.method() {
                self.stats.requests_received[method_index(m)] += 1;
            }
            self.stats.unmatched += 1;
            return;
        };
        self.stats.responses_received.bump(code);
        match code {
            100..=199 => {}
            200..=299 => {
                self.finals += 1;
                self.stats.completed += 1;
            }
            _ => {
                self.finals += 1;
                self.stats.fail_rejected();
            }
        }
    }

    fn on_timers(&mut self, _now_us: u64, _tx: &mut TxBatch) {}

    fn start(&mut self, _now_us: u64, n: u64, tx: &mut TxBatch) -> u64 {
        let mut started = 0;
        for _ in 0..n {
            if self.send_one(tx) {
                started += 1;
            }
        }
        started
    }

    fn next_deadline(&self) -> Option<u64> {
        None
    }

    /// Requests without a final response yet.
    fn active(&self) -> usize {
        self.stats.attempted.saturating_sub(self.finals) as usize
    }

    fn stats(&self) -> &Stats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }
}
