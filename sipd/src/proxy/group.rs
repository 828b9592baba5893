//! Group addresses: one URI or number prefix served by several targets, exactly one of which a
//! stateless proxy picks per request; plus the OPTIONS health checks that decide which targets
//! are up.
//!
//! **Picking.** Weighted rendezvous hashing over the Call-ID: every target gets the score
//! `weight / -ln(u)` with `u` a hash of (Call-ID, target) in (0, 1), and the highest score among
//! the targets that are up wins. Retransmissions and in-dialog requests of one call carry the same
//! Call-ID and so land on the same target without any state; when a target goes down only its
//! calls move, each to the target that scored second for it.
//!
//! **Health**, sans-IO in the quinn-proto style: [`HealthProber`] (owned by one driver thread)
//! says when it next needs to run ([`HealthProber::poll_timeout`]) and which OPTIONS to send
//! ([`HealthProber::poll_transmit`]); answers arrive on whichever worker receives them and are
//! recorded with one atomic store ([`Health::record_answer`]). A target is marked down after
//! `down_after` probes in a row went unanswered and up again after `up_after` answered ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::Transport;
use super::writer::Out;

/// Seeds the per-target hashes; fixed so every worker and every restart picks alike.
const PICK_SEED: u64 = 0x5149_5044_6772_7570;

#[derive(Clone, Debug, PartialEq)]
pub struct GroupTarget {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// Relative share of calls (> 0).
    pub weight: u32,
}

/// A group as configured; health indices are assigned when the [`Health`] table is built.
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub targets: Vec<GroupTarget>,
    /// Index of this group's first target in the shared [`Health`] table.
    pub health_base: usize,
}

impl Group {
    /// The target for this call among those that are up, `None` if all are down.
    pub fn pick(&self, call_id: &[u8], health: &Health) -> Option<(usize, &GroupTarget)> {
        let key = xxhash_rust::xxh3::xxh3_64_with_seed(call_id, PICK_SEED);
        let mut best: Option<(f64, usize)> = None;
        for (i, target) in self.targets.iter().enumerate() {
            if !health.is_up(self.health_base + i) {
                continue;
            }
            let score = rendezvous_score(key, i as u64, target.weight);
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, i));
            }
        }
        best.map(|(_, i)| (i, &self.targets[i]))
    }
}

fn rendezvous_score(key: u64, target: u64, weight: u32) -> f64 {
    // splitmix64 of (key, target): cheap and well mixed.
    let mut z = key ^ target.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // u in (0, 1): 53 random bits, offset by half a step so ln(u) is finite and negative.
    let u = ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight.max(1)) / -u.ln()
}

/// When probes are sent and how their outcome moves a target up or down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    /// Time between two probes of one target; a probe unanswered by the next one is missed.
    pub interval_ms: u64,
    /// Missed probes in a row that mark a target down.
    pub down_after: u32,
    /// Answered probes in a row that mark a down target up again.
    pub up_after: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval_ms: 5_000,
            down_after: 3,
            up_after: 2,
        }
    }
}

/// Health of every group target, shared by all workers (atomics only).
#[derive(Debug, Default)]
pub struct Health {
    targets: Vec<TargetHealth>,
}

#[derive(Debug)]
struct TargetHealth {
    up: AtomicBool,
    /// Highest probe sequence number answered.
    answered: AtomicU64,
}

impl Health {
    /// `count` targets, all up until probes say otherwise (a fresh start must route at once).
    pub fn new(count: usize) -> Arc<Health> {
        Arc::new(Health {
            targets: (0..count)
                .map(|_| TargetHealth {
                    up: AtomicBool::new(true),
                    answered: AtomicU64::new(0),
                })
                .collect(),
        })
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    #[inline]
    pub fn is_up(&self, index: usize) -> bool {
        self.targets
            .get(index)
            .is_some_and(|t| t.up.load(Ordering::Relaxed))
    }

    /// Records the answer to probe `seq` of target `index` (called by whichever worker receives
    /// it). Unknown indices are ignored: answers may outlive a reload.
    pub fn record_answer(&self, index: usize, seq: u64) {
        if let Some(t) = self.targets.get(index) {
            t.answered.fetch_max(seq, Ordering::Relaxed);
        }
    }

    /// Sets a target's state (reloads carry a target's state over to its new slot).
    pub fn set_up(&self, index: usize, up: bool) {
        if let Some(t) = self.targets.get(index) {
            t.up.store(up, Ordering::Relaxed);
        }
    }

    fn answered(&self, index: usize) -> u64 {
        self.targets
            .get(index)
            .map_or(0, |t| t.answered.load(Ordering::Relaxed))
    }
}

/// The branch prefix of our probes: responses carrying it are health answers, not traffic.
pub const PROBE_BRANCH_PREFIX: &[u8] = b"z9hG4bKsdhp";

/// Parses `<index hex>.<seq hex>` after [`PROBE_BRANCH_PREFIX`].
pub fn parse_probe_branch(branch: &[u8]) -> Option<(usize, u64)> {
    let rest = branch.strip_prefix(PROBE_BRANCH_PREFIX)?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let hex = |s: &[u8]| -> Option<u64> {
        if s.is_empty() || s.len() > 16 {
            return None;
        }
        s.iter().try_fold(0u64, |n, &c| {
            Some(n << 4 | u64::from((c as char).to_digit(16)?))
        })
    };
    Some((
        usize::try_from(hex(&rest[..dot])?).ok()?,
        hex(&rest[dot + 1..])?,
    ))
}

/// A probe to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub transport: Transport,
    pub len: usize,
}

/// A change of a target's state, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthChange {
    pub index: usize,
    pub up: bool,
}

#[derive(Debug)]
struct ProbeState {
    /// Index in the [`Health`] table (also written into the probe's branch).
    slot: usize,
    config: HealthConfig,
    to: SocketAddr,
    transport: Transport,
    next_at: u64,
    sent_seq: u64,
    misses: u32,
    answers: u32,
}

/// Schedules and judges OPTIONS probes; owned by one thread.
#[derive(Debug)]
pub struct HealthProber {
    health: Arc<Health>,
    probes: Vec<ProbeState>,
    changes: Vec<HealthChange>,
}

impl HealthProber {
    /// `targets[i]` is health index `i`. Probes are spread over the first interval so they do
    /// not all go out at once.
    pub fn new(
        config: HealthConfig,
        health: Arc<Health>,
        targets: &[(SocketAddr, Transport)],
        now: u64,
    ) -> Self {
        let with: Vec<_> = targets.iter().map(|&(a, t)| (a, t, config)).collect();
        Self::with_configs(health, &with, now)
    }

    /// Like [`HealthProber::new`] with settings per target (groups configure their own).
    pub fn with_configs(
        health: Arc<Health>,
        targets: &[(SocketAddr, Transport, HealthConfig)],
        now: u64,
    ) -> Self {
        let with: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(i, &(a, t, c))| (i, a, t, c))
            .collect();
        Self::with_slots(health, &with, now)
    }

    /// Targets with their slot in the [`Health`] table given explicitly.
    pub fn with_slots(
        health: Arc<Health>,
        targets: &[(usize, SocketAddr, Transport, HealthConfig)],
        now: u64,
    ) -> Self {
        let n = targets.len().max(1) as u64;
        let probes = targets
            .iter()
            .enumerate()
            .map(|(i, &(slot, to, transport, config))| ProbeState {
                slot,
                config,
                to,
                transport,
                next_at: now + config.interval_ms * i as u64 / n,
                sent_seq: 0,
                misses: 0,
                answers: 0,
            })
            .collect();
        HealthProber {
            health,
            probes,
            changes: Vec::new(),
        }
    }

    /// Number of probed targets.
    pub fn len(&self) -> usize {
        self.probes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    /// The earliest time at which [`HealthProber::poll_transmit`] has something to do.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.probes.iter().map(|p| p.next_at).min()
    }

    /// Judges the previous probe of a target that is due and writes its next probe into `buf`,
    /// sent from `local`. Call until it returns `None`.
    pub fn poll_transmit(
        &mut self,
        now: u64,
        local: SocketAddr,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let p = self.probes.iter_mut().find(|p| p.next_at <= now)?;
        let index = p.slot;
        let answered = self.health.answered(index);
        let cfg = p.config;
        if p.sent_seq > 0 {
            if answered >= p.sent_seq {
                p.answers += 1;
                p.misses = 0;
                if !self.health.is_up(index) && p.answers >= cfg.up_after {
                    self.health.set_up(index, true);
                    self.changes.push(HealthChange { index, up: true });
                }
            } else {
                p.misses += 1;
                p.answers = 0;
                if self.health.is_up(index) && p.misses >= cfg.down_after {
                    self.health.set_up(index, false);
                    self.changes.push(HealthChange { index, up: false });
                }
            }
        }
        // A slot reused across a reload may have answered higher sequence numbers already.
        p.sent_seq = p.sent_seq.max(answered) + 1;
        p.next_at = now + cfg.interval_ms;
        let (to, transport, seq) = (p.to, p.transport, p.sent_seq);
        let len = write_probe(buf, index, seq, local, to, transport)?;
        Some(Transmit { to, transport, len })
    }

    /// State changes since the last call.
    pub fn take_changes(&mut self) -> Vec<HealthChange> {
        std::mem::take(&mut self.changes)
    }
}

fn write_probe(
    buf: &mut [u8],
    index: usize,
    seq: u64,
    local: SocketAddr,
    to: SocketAddr,
    transport: Transport,
) -> Option<usize> {
    let mut out = Out::new(buf);
    out.put(b"OPTIONS sip:");
    out.put_hostport(to);
    out.put(b" SIP/2.0\r\nVia: SIP/2.0/");
    out.put(transport.via_token());
    out.put(b" ");
    out.put_hostport(local);
    out.put(b";branch=");
    out.put(PROBE_BRANCH_PREFIX);
    out.put_hex64(index as u64);
    out.put(b".");
    out.put_hex64(seq);
    out.put(b";rport\r\nMax-Forwards: 70\r\nFrom: <sip:sipd@");
    out.put_hostport(local);
    out.put(b">;tag=hp");
    out.put_u64(index as u64);
    out.put(b"\r\nTo: <sip:");
    out.put_hostport(to);
    out.put(b">\r\nCall-ID: hp");
    out.put_u64(index as u64);
    out.put(b".");
    out.put_u64(seq);
    out.put(b"@sipd\r\nCSeq: ");
    out.put_u64(seq % (1 << 31));
    out.put(b" OPTIONS\r\nContent-Length: 0\r\n\r\n");
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(n: usize) -> Group {
        Group {
            name: "g".into(),
            targets: (0..n)
                .map(|i| GroupTarget {
                    addr: SocketAddr::from(([10, 0, 0, i as u8 + 1], 5060)),
                    transport: Transport::Udp,
                    weight: 1,
                })
                .collect(),
            health_base: 0,
        }
    }

    #[test]
    fn same_call_same_target_and_failover_moves_only_that_targets_calls() {
        let g = group(3);
        let health = Health::new(3);
        let before: Vec<usize> = (0..300)
            .map(|i| g.pick(format!("call-{i}").as_bytes(), &health).unwrap().0)
            .collect();
        let again: Vec<usize> = (0..300)
            .map(|i| g.pick(format!("call-{i}").as_bytes(), &health).unwrap().0)
            .collect();
        assert_eq!(before, again);
        for t in 0..3 {
            assert!(
                before.iter().filter(|&&x| x == t).count() > 60,
                "uneven spread {before:?}"
            );
        }
        health.set_up(1, false);
        for (i, &was) in before.iter().enumerate() {
            let now = g.pick(format!("call-{i}").as_bytes(), &health).unwrap().0;
            assert_ne!(now, 1);
            if was != 1 {
                assert_eq!(now, was, "a call on a healthy target moved");
            }
        }
        health.set_up(0, false);
        health.set_up(2, false);
        assert!(g.pick(b"x", &health).is_none());
    }

    #[test]
    fn weights_shift_the_share() {
        let mut g = group(2);
        g.targets[0].weight = 9;
        let health = Health::new(2);
        let on_heavy = (0..2000)
            .filter(|i| g.pick(format!("c{i}").as_bytes(), &health).unwrap().0 == 0)
            .count();
        assert!(
            (1650..1950).contains(&on_heavy),
            "{on_heavy} of 2000 on the weight-9 target"
        );
    }

    #[test]
    fn prober_marks_down_after_misses_and_up_after_answers() {
        let health = Health::new(1);
        let cfg = HealthConfig {
            interval_ms: 1000,
            down_after: 2,
            up_after: 2,
        };
        let target = (SocketAddr::from(([10, 0, 0, 9], 5060)), Transport::Udp);
        let mut prober = HealthProber::new(cfg, health.clone(), &[target], 0);
        let local = SocketAddr::from(([10, 0, 0, 1], 5060));
        let mut buf = [0u8; 512];
        let mut now = 0;
        let mut send = |prober: &mut HealthProber, now: u64| {
            assert_eq!(prober.poll_timeout(), Some(now));
            let t = prober.poll_transmit(now, local, &mut buf).unwrap();
            assert!(prober.poll_transmit(now, local, &mut buf).is_none());
            let text = std::str::from_utf8(&buf[..t.len]).unwrap().to_owned();
            let branch = text
                .split("branch=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap();
            parse_probe_branch(branch.as_bytes()).unwrap()
        };
        // Probe 1 unanswered, probe 2 unanswered -> down when judged at the third send.
        send(&mut prober, now);
        now += 1000;
        send(&mut prober, now);
        assert!(health.is_up(0));
        now += 1000;
        let (idx, seq) = send(&mut prober, now);
        assert!(!health.is_up(0));
        assert_eq!(
            prober.take_changes(),
            vec![HealthChange {
                index: 0,
                up: false
            }]
        );
        health.record_answer(idx, seq);
        now += 1000;
        let (idx, seq) = send(&mut prober, now);
        assert!(!health.is_up(0), "one answer is not enough");
        health.record_answer(idx, seq);
        now += 1000;
        send(&mut prober, now);
        assert!(health.is_up(0));
        assert_eq!(
            prober.take_changes(),
            vec![HealthChange { index: 0, up: true }]
        );
    }

    #[test]
    fn probe_branch_round_trip() {
        assert_eq!(
            parse_probe_branch(b"z9hG4bKsdhp000000000000000a.0000000000000003"),
            Some((10, 3))
        );
        assert_eq!(parse_probe_branch(b"z9hG4bKsdhpzz.1"), None);
        assert_eq!(parse_probe_branch(b"z9hG4bK776"), None);
    }
}
