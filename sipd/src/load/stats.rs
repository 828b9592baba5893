//! Counters and latency histograms of one worker, their sum over workers, and the report (JSON
//! for machines, text for people, a progress line while running).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::sip::Method;

/// Request methods counted separately (the last is every other method).
pub const METHODS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "MESSAGE", "other",
];

pub fn method_index(m: Method<'_>) -> usize {
    match m {
        Method::Invite => 0,
        Method::Ack => 1,
        Method::Bye => 2,
        Method::Cancel => 3,
        Method::Register => 4,
        Method::Options => 5,
        Method::Message => 6,
        _ => 7,
    }
}

/// Status codes 100..=699, counted each.
#[derive(Clone)]
pub struct Codes(Box<[u64; 600]>);

impl Default for Codes {
    fn default() -> Self {
        Codes(Box::new([0; 600]))
    }
}

impl Codes {
    pub fn bump(&mut self, code: u16) {
        if let Some(c) = self.0.get_mut(usize::from(code).wrapping_sub(100)) {
            *c += 1;
        }
    }

    pub fn get(&self, code: u16) -> u64 {
        self.0
            .get(usize::from(code).wrapping_sub(100))
            .copied()
            .unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn merge(&mut self, other: &Codes) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    fn to_map(&self) -> BTreeMap<String, u64> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(i, n)| ((i + 100).to_string(), *n))
            .collect()
    }
}

/// Latencies in microseconds, 1 µs to 1 hour at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

/// The counters of one role on one worker (single writer, plain fields).
#[derive(Clone)]
pub struct Stats {
    /// UAC: calls (or REGISTER/OPTIONS transactions) started. UAS: INVITEs and other
    /// dialog-less requests answered for the first time. Blast: requests sent.
    pub attempted: u64,
    /// UAC: calls ended by a 200 to BYE (transactions: a 2xx). UAS: INVITEs whose 2xx was ACKed,
    /// and other requests answered 2xx. Blast: 2xx responses received.
    pub completed: u64,
    /// Sum of the failure reasons below.
    pub failed: u64,
    /// No final response before Timer B/F (UAS: no ACK for a 2xx before 64*T1).
    pub failed_timeout: u64,
    /// A non-2xx final response (to INVITE, BYE, REGISTER or OPTIONS).
    pub failed_rejected: u64,
    /// A request that could not be built or sent.
    pub failed_other: u64,
    /// Messages we sent again: request retransmissions (Timers A/E), ACKs re-sent for a
    /// retransmitted final response, 2xx retransmissions, responses re-sent to a retransmitted
    /// request.
    pub retransmissions: u64,
    /// Retransmitted messages received (a final response or a request seen before).
    pub retransmissions_received: u64,
    pub msgs_sent: u64,
    pub msgs_received: u64,
    pub requests_sent: [u64; METHODS.len()],
    pub requests_received: [u64; METHODS.len()],
    pub responses_sent: Codes,
    pub responses_received: Codes,
    /// Messages that matched no call or transaction of ours (late, foreign, or after expiry).
    pub unmatched: u64,
    /// Datagrams that did not parse as SIP.
    pub malformed: u64,
    /// Datagrams the socket refused (after retrying a full buffer).
    pub send_errors: u64,
    /// INVITE first sent to its 200 received.
    pub invite_to_200: Histogram<u64>,
    /// A request first sent to the first response for it (provisional or final), every method.
    pub request_to_response: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            attempted: 0,
            completed: 0,
            failed: 0,
            failed_timeout: 0,
            failed_rejected: 0,
            failed_other: 0,
            retransmissions: 0,
            retransmissions_received: 0,
            msgs_sent: 0,
            msgs_received: 0,
            requests_sent: [0; METHODS.len()],
            requests_received: [0; METHODS.len()],
            responses_sent: Codes::default(),
            responses_received: Codes::default(),
            unmatched: 0,
            malformed: 0,
            send_errors: 0,
            invite_to_200: new_histogram(),
            request_to_response: new_histogram(),
        }
    }
}

impl Stats {
    pub fn merge(&mut self, o: &Stats) {
        self.attempted += o.attempted;
        self.completed += o.completed;
        self.failed += o.failed;
        self.failed_timeout += o.failed_timeout;
        self.failed_rejected += o.failed_rejected;
        self.failed_other += o.failed_other;
        self.retransmissions += o.retransmissions;
        self.retransmissions_received += o.retransmissions_received;
        self.msgs_sent += o.msgs_sent;
        self.msgs_received += o.msgs_received;
        for (a, b) in self.requests_sent.iter_mut().zip(o.requests_sent) {
            *a += b;
        }
        for (a, b) in self.requests_received.iter_mut().zip(o.requests_received) {
            *a += b;
        }
        self.responses_sent.merge(&o.responses_sent);
        self.responses_received.merge(&o.responses_received);
        self.unmatched += o.unmatched;
        self.malformed += o.malformed;
        self.send_errors += o.send_errors;
        // Same bounds on both sides: add cannot fail.
        let _ = self.invite_to_200.add(&o.invite_to_200);
        let _ = self.request_to_response.add(&o.request_to_response);
    }

    /// Records a latency (saturating at the histogram's bounds).
    pub fn record(h: &mut Histogram<u64>, us: u64) {
        h.saturating_record(us.max(1));
    }

    pub fn fail_timeout(&mut self) {
        self.failed += 1;
        self.failed_timeout += 1;
    }

    pub fn fail_rejected(&mut self) {
        self.failed += 1;
        self.failed_rejected += 1;
    }

    pub fn fail_other(&mut self) {
        self.failed += 1;
        self.failed_other += 1;
    }
}

/// Latency summary in microseconds.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        if h.is_empty() {
            return Latency::default();
        }
        Latency {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Failures {
    pub timeout: u64,
    pub rejected: u64,
    pub other: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latencies {
    pub invite_to_200: Latency,
    pub request_to_response: Latency,
}

/// The run's outcome, as printed with `--json`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub role: String,
    pub scenario: String,
    pub workers: usize,
    /// The load period: from the start until no more calls were started (the run's duration or
    /// the time its call count took). Every rate is over this period; messages exchanged while
    /// draining (the BYEs of the last calls, late responses) are counted in the totals.
    pub duration_s: f64,
    /// After the load period: waiting for the calls in flight to end.
    pub drain_s: f64,
    pub attempted: u64,
    pub completed: u64,
    pub failed: u64,
    /// Calls still in flight when the run ended (only after an interrupted drain).
    pub in_progress: u64,
    pub failures: Failures,
    pub retransmissions: u64,
    pub retransmissions_received: u64,
    pub msgs_sent: u64,
    pub msgs_received: u64,
    pub msgs_per_s_tx: f64,
    pub msgs_per_s_rx: f64,
    /// Completed calls (or transactions) per second.
    pub calls_per_s: f64,
    pub requests_sent: BTreeMap<String, u64>,
    pub requests_received: BTreeMap<String, u64>,
    pub responses_sent: BTreeMap<String, u64>,
    pub responses_received: BTreeMap<String, u64>,
    pub unmatched: u64,
    pub malformed: u64,
    pub send_errors: u64,
    pub latency_us: Latencies,
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        (n as f64 / secs * 10.0).round() / 10.0
    } else {
        0.0
    }
}

fn method_map(counts: &[u64; METHODS.len()]) -> BTreeMap<String, u64> {
    METHODS
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n > 0)
        .map(|(m, n)| (m.to_string(), *n))
        .collect()
}

impl Report {
    pub fn new(
        role: &str,
        scenario: &str,
        workers: usize,
        s: &Stats,
        duration_s: f64,
        drain_s: f64,
        in_progress: u64,
    ) -> Report {
        Report {
            role: role.to_string(),
            scenario: scenario.to_string(),
            workers,
            duration_s: (duration_s * 1000.0).round() / 1000.0,
            drain_s: (drain_s * 1000.0).round() / 1000.0,
            attempted: s.attempted,
            completed: s.completed,
            failed: s.failed,
            in_progress,
            failures: Failures {
                timeout: s.failed_timeout,
                rejected: s.failed_rejected,
                other: s.failed_other,
            },
            retransmissions: s.retransmissions,
            retransmissions_received: s.retransmissions_received,
            msgs_sent: s.msgs_sent,
            msgs_received: s.msgs_received,
            msgs_per_s_tx: per_s(s.msgs_sent, duration_s),
            msgs_per_s_rx: per_s(s.msgs_received, duration_s),
            calls_per_s: per_s(s.completed, duration_s),
            requests_sent: method_map(&s.requests_sent),
            requests_received: method_map(&s.requests_received),
            responses_sent: s.responses_sent.to_map(),
            responses_received: s.responses_received.to_map(),
            unmatched: s.unmatched,
            malformed: s.malformed,
            send_errors: s.send_errors,
            latency_us: Latencies {
                invite_to_200: Latency::of(&s.invite_to_200),
                request_to_response: Latency::of(&s.request_to_response),
            },
        }
    }

    /// Failed calls as a percentage of attempted ones.
    pub fn failed_pct(&self) -> f64 {
        if self.attempted == 0 {
            0.0
        } else {
            self.failed as f64 * 100.0 / self.attempted as f64
        }
    }

    /// The text report for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sipd load {} ({}), {} worker(s), {:.3} s (+ {:.3} s drain)",
            self.role, self.scenario, self.workers, self.duration_s, self.drain_s
        );
        let _ = writeln!(
            s,
            "  calls      attempted {}  completed {}  failed {} ({:.3}%: timeout {}, rejected {}, other {})  in progress {}",
            self.attempted,
            self.completed,
            self.failed,
            self.failed_pct(),
            self.failures.timeout,
            self.failures.rejected,
            self.failures.other,
            self.in_progress
        );
        let _ = writeln!(
            s,
            "  rate       {:.1} calls/s  tx {:.1} msg/s  rx {:.1} msg/s",
            self.calls_per_s, self.msgs_per_s_tx, self.msgs_per_s_rx
        );
        let _ = writeln!(
            s,
            "  messages   sent {}  received {}  retransmissions {} (received {})  unmatched {}  malformed {}  send errors {}",
            self.msgs_sent,
            self.msgs_received,
            self.retransmissions,
            self.retransmissions_received,
            self.unmatched,
            self.malformed,
            self.send_errors
        );
        let map = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "  requests   sent [{}]  received [{}]",
            map(&self.requests_sent),
            map(&self.requests_received)
        );
        let _ = writeln!(
            s,
            "  responses  sent [{}]  received [{}]",
            map(&self.responses_sent),
            map(&self.responses_received)
        );
        for (name, l) in [
            ("INVITE->200", &self.latency_us.invite_to_200),
            ("req->resp", &self.latency_us.request_to_response),
        ] {
            if l.count > 0 {
                let _ = writeln!(
                    s,
                    "  {name:<11} µs  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (n={})",
                    l.p50, l.p90, l.p99, l.p999, l.max, l.count
                );
            }
        }
        s
    }
}

/// What a worker publishes for the progress line (relaxed atomics, one writer each).
#[derive(Default)]
pub struct Progress {
    pub attempted: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub retransmissions: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub active: AtomicU64,
}

impl Progress {
    pub fn publish(&self, s: &Stats, active: usize) {
        self.attempted.store(s.attempted, Ordering::Relaxed);
        self.completed.store(s.completed, Ordering::Relaxed);
        self.failed.store(s.failed, Ordering::Relaxed);
        self.retransmissions
            .store(s.retransmissions, Ordering::Relaxed);
        self.sent.store(s.msgs_sent, Ordering::Relaxed);
        self.received.store(s.msgs_received, Ordering::Relaxed);
        self.active.store(active as u64, Ordering::Relaxed);
    }
}

/// Sum of the workers' published counters.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub attempted: u64,
    pub completed: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub sent: u64,
    pub received: u64,
    pub active: u64,
}

impl Snapshot {
    pub fn sum(workers: &[std::sync::Arc<Progress>]) -> Snapshot {
        let mut s = Snapshot::default();
        for p in workers {
            s.attempted += p.attempted.load(Ordering::Relaxed);
            s.completed += p.completed.load(Ordering::Relaxed);
            s.failed += p.failed.load(Ordering::Relaxed);
            s.retransmissions += p.retransmissions.load(Ordering::Relaxed);
            s.sent += p.sent.load(Ordering::Relaxed);
            s.received += p.received.load(Ordering::Relaxed);
            s.active += p.active.load(Ordering::Relaxed);
        }
        s
    }

    /// One progress line: totals, and rates since `prev` over `dt_s` seconds.
    pub fn line(&self, prev: &Snapshot, elapsed_s: f64, dt_s: f64) -> String {
        let rate = |a: u64, b: u64| {
            if dt_s > 0.0 {
                a.saturating_sub(b) as f64 / dt_s
            } else {
                0.0
            }
        };
        format!(
            "[{elapsed_s:7.1}s] calls {} started, {} ok, {} failed, {} active | {:.0} calls/s | tx {:.0}/s rx {:.0}/s | retrans {}",
            self.attempted,
            self.completed,
            self.failed,
            self.active,
            rate(self.completed, prev.completed),
            rate(self.sent, prev.sent),
            rate(self.received, prev.received),
            self.retransmissions
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_and_report_add_up() {
        let mut a = Stats {
            attempted: 3,
            completed: 2,
            msgs_sent: 10,
            ..Stats::default()
        };
        a.fail_timeout();
        a.requests_sent[0] = 3;
        a.responses_received.bump(200);
        Stats::record(&mut a.invite_to_200, 150);
        let mut b = Stats {
            attempted: 1,
            completed: 1,
            msgs_sent: 5,
            ..Stats::default()
        };
        b.responses_received.bump(200);
        b.responses_received.bump(180);
        Stats::record(&mut b.invite_to_200, 250);
        a.merge(&b);
        let r = Report::new("uac", "call", 2, &a, 2.0, 0.5, 0);
        assert_eq!((r.attempted, r.completed, r.failed), (4, 3, 1));
        assert_eq!(r.failures.timeout, 1);
        assert_eq!(r.msgs_per_s_tx, 7.5);
        assert_eq!(r.responses_received.get("200"), Some(&2));
        assert_eq!(r.responses_received.get("180"), Some(&1));
        assert_eq!(r.requests_sent.get("INVITE"), Some(&3));
        assert_eq!(r.latency_us.invite_to_200.count, 2);
        assert!(r.latency_us.invite_to_200.max >= 250);
        assert_eq!(r.failed_pct(), 25.0);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["latency_us"]["invite_to_200"]["count"], 2);
        assert!(r.to_text().contains("attempted 4"));
    }

    #[test]
    fn codes_ignore_out_of_range() {
        let mut c = Codes::default();
        c.bump(99);
        c.bump(700);
        c.bump(699);
        assert_eq!(c.total(), 1);
        assert_eq!(c.get(699), 1);
    }
}
