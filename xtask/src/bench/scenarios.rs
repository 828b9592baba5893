//! The scenarios, driven through `sipd load` in the peers namespace (pinned to the generator
//! core) against a running DUT.
//!
//! Message counts are "messages the DUT forwarded", taken from the generator's own reports so
//! that every target is measured the same way:
//! - forward: requests that reached the UAS plus responses that reached blast (the reflector:
//!   datagrams that came back, one per message it moved);
//! - calls: every message the UAC sent or received went through the DUT once (INVITE, 180, 200,
//!   ACK, BYE, 200: six per call with record-routing);
//! - register: the DUT is the registrar, so it received and sent what the UAC sent and received.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::targets::{AUTH_PASS, AUTH_USER, DOMAIN, Dut, Env, TargetKind, tail};
use super::topo::{self, CpuMeter, DUT_IP, Proc, SIP_PORT, UAC_IP, UAS_IP, round1, udp_counters};

/// How long each part runs (`--quick` or the full run).
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub forward_s: f64,
    pub forward_step_s: f64,
    pub forward_steps: u32,
    pub calls_probe_s: f64,
    pub calls_step_s: f64,
    pub calls_steps: u32,
    pub latency_s: f64,
    pub register_s: f64,
}

impl Timing {
    pub fn quick() -> Timing {
        Timing {
            forward_s: 3.0,
            forward_step_s: 2.0,
            forward_steps: 4,
            calls_probe_s: 2.0,
            calls_step_s: 2.0,
            calls_steps: 4,
            latency_s: 3.0,
            register_s: 3.0,
        }
    }

    pub fn full() -> Timing {
        Timing {
            forward_s: 8.0,
            forward_step_s: 4.0,
            forward_steps: 6,
            calls_probe_s: 4.0,
            calls_step_s: 5.0,
            calls_steps: 6,
            latency_s: 10.0,
            register_s: 8.0,
        }
    }
}

/// One (scenario, target) result. Missing numbers are `null` in the JSON.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cell {
    pub msgs_per_s: Option<f64>,
    pub calls_per_s: Option<f64>,
    pub failed_pct: Option<f64>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    /// CPU of the DUT's processes (user + system) in % of one core.
    pub cpu_pct: Option<f64>,
    /// Busy time of the DUT's core in %, including softirq work done there for anyone.
    pub dut_core_pct: Option<f64>,
    /// Busy time of the generator's core in % over the same period (where it nears 100%, the
    /// generator's own queueing is in the latency figures).
    pub gen_core_pct: Option<f64>,
    /// The offered rate (requests or calls per second) when the generator ran at a fixed rate.
    pub offered_per_s: Option<f64>,
    pub duration_s: Option<f64>,
    pub retransmissions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dut_counters: Option<Value>,
    /// Kernel UDP counters of both namespaces over the run (where datagrams were dropped).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp: Option<Value>,
}

impl Cell {
    pub fn skipped(why: impl Into<String>) -> Cell {
        Cell {
            skipped: Some(why.into()),
            ..Cell::default()
        }
    }
}

/// One step of the calls/s search.
#[derive(Clone, Debug, Serialize)]
pub struct Step {
    pub offered_per_s: f64,
    pub calls_per_s: f64,
    pub failed_pct: f64,
    pub retransmissions: u64,
    pub pass: bool,
}

/// One client run: its report, the DUT's CPU (process tree %, core %) and the UDP counters.
#[derive(Clone)]
struct Run {
    rep: Value,
    cpu: (f64, f64),
    /// The generator core's busy % over the DUT's measuring period.
    gen_core: f64,
    udp: Value,
}

/// The generator: `sipd load` processes in the peers namespace.
pub struct Gen<'e, 'a> {
    pub env: &'e Env<'a>,
}

fn secs(s: f64) -> String {
    format!("{}ms", (s * 1000.0).round() as u64)
}

fn f(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_f64().unwrap_or(0.0)
}

fn u(v: &Value, path: &[&str]) -> u64 {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_u64().unwrap_or(0)
}

impl Gen<'_, '_> {
    fn spawn(&self, name: &str, args: Vec<String>) -> Result<(Proc, std::path::PathBuf)> {
        let stem = self.env.log_stem(name);
        let json = stem.with_extension("json");
        let err = stem.with_extension("log");
        let gc = self.env.gen_core.to_string();
        let mut full = vec!["load".to_string()];
        full.extend(args);
        full.extend(["--pin".into(), gc, "--quiet".into(), "--json".into()]);
        std::fs::write(stem.with_extension("cmd"), full.join(" "))?;
        let p = Proc::spawn(
            name,
            &self.env.topo.peers,
            Some(self.env.gen_core),
            &self.env.sipd,
            &full,
            &json,
            &err,
        )?;
        Ok((p, json))
    }

    /// A UAS on the UAS address, answering for `duration` (then it exits with its report).
    fn uas(&self, stateless: bool, duration: f64) -> Result<(Proc, std::path::PathBuf)> {
        let mut a = vec![
            "uas".to_string(),
            "--listen".into(),
            format!("{UAS_IP}:{SIP_PORT}"),
            "--duration".into(),
            secs(duration),
        ];
        if stateless {
            a.push("--stateless".into());
        }
        let r = self.spawn(if stateless { "uas-stateless" } else { "uas" }, a)?;
        // It binds at once; give it a moment and make sure it did not fail.
        topo::sleep(Duration::from_millis(150))?;
        Ok(r)
    }

    /// Runs a client to its end, measuring the DUT's CPU over the load period (from 10% into
    /// it to its end, so start-up and drain do not dilute it).
    fn client(
        &self,
        name: &str,
        args: Vec<String>,
        duration: f64,
        dut: &mut Dut,
        timeout: Duration,
    ) -> Result<Run> {
        let udp0 = [
            udp_counters(&self.env.topo.dut),
            udp_counters(&self.env.topo.peers),
        ];
        let (mut p, json) = self.spawn(name, args)?;
        let t0 = Instant::now();
        topo::sleep(Duration::from_secs_f64(duration * 0.1))?;
        let meter = CpuMeter::start(dut.pid(), self.env.dut_core);
        let gen0 = topo::core_jiffies(self.env.gen_core);
        let until = Duration::from_secs_f64(duration * 0.98);
        while t0.elapsed() < until {
            if p.try_status()?.is_some() {
                break;
            }
            topo::sleep(Duration::from_millis(20))?;
        }
        let cpu = meter.read();
        let gen_core = topo::core_busy_pct(gen0, topo::core_jiffies(self.env.gen_core));
        let status = p.wait(timeout)?;
        let report = read_report(&json, status.code())
            .with_context(|| format!("{name}: {}", tail(&json.with_extension("log"), 4)))?;
        let udp1 = [
            udp_counters(&self.env.topo.dut),
            udp_counters(&self.env.topo.peers),
        ];
        let delta = |a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>| -> Value {
            b.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value::from(v.saturating_sub(*a.get(k).unwrap_or(&0))),
                    )
                })
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        let udp = serde_json::json!({
            "dut": delta(&udp0[0], &udp1[0]),
            "peers": delta(&udp0[1], &udp1[1]),
        });
        Ok(Run {
            rep: report,
            cpu,
            gen_core,
            udp,
        })
    }

    /// Waits for a UAS to end by itself and returns its report.
    fn uas_report(&self, mut p: Proc, json: &std::path::Path) -> Result<Value> {
        let status = p.wait(Duration::from_secs(10))?;
        read_report(json, status.code())
    }
}

fn read_report(json: &std::path::Path, code: Option<i32>) -> Result<Value> {
    // 0: fine; 1: failures above --max-failed-pct (still a report); anything else: an error.
    if !matches!(code, Some(0) | Some(1)) {
        bail!("sipd load exited with {code:?}");
    }
    let s = std::fs::read_to_string(json)?;
    serde_json::from_str(&s).with_context(|| format!("parsing {}", json.display()))
}

/// Request-URI of the forwarding scenarios: a domain that is not the registrar's, so every DUT
/// forwards it to the UAS (sipd by its default route, Kamailio by `$du`).
const FWD_URI: &str = "sip:+4930{n}@carrier.example.net";

fn target_addr() -> String {
    format!("{DUT_IP}:{SIP_PORT}")
}

/// (1) Stateless forwarding: `blast` OPTIONS at full speed through the DUT to a stateless UAS.
pub fn forward(g: &Gen, dut: &mut Dut, t: &Timing) -> Result<Cell> {
    let limit = dut.kind == TargetKind::Limit;
    let d = t.forward_s;
    let uas = if limit {
        None
    } else {
        Some(g.uas(true, d + 3.0)?)
    };
    let args = vec![
        "blast".to_string(),
        "--target".into(),
        target_addr(),
        "--local".into(),
        format!("{UAC_IP}:0"),
        "--uri".into(),
        FWD_URI.into(),
        "--rate".into(),
        "max".into(),
        "--duration".into(),
        secs(d),
        "--drain".into(),
        "500ms".into(),
    ];
    let before = dut.counters(g.env);
    let Run {
        rep: blast,
        cpu: (cpu, core),
        gen_core,
        udp,
    } = g.client("blast", args, d, dut, Duration::from_secs_f64(d + 15.0))?;
    dut.check_alive()?;
    let dur = f(&blast, &["duration_s"]).max(1e-3);
    let sent = u(&blast, &["msgs_sent"]);
    let rx = u(&blast, &["msgs_received"]);
    let mut cell = Cell {
        udp: Some(udp),
        cpu_pct: Some(cpu),
        dut_core_pct: Some(core),
        gen_core_pct: Some(gen_core),
        duration_s: Some(round1(dur)),
        ..Cell::default()
    };
    if let Some((p, json)) = uas {
        let uas = g.uas_report(p, &json)?;
        let to_uas = u(&uas, &["msgs_received"]);
        let completed = u(&blast, &["completed"]);
        cell.msgs_per_s = Some(round1((rx + to_uas) as f64 / dur));
        cell.calls_per_s = Some(round1(completed as f64 / dur));
        cell.failed_pct = Some(pct(sent.saturating_sub(completed), sent));
        cell.p50_us = Some(u(&blast, &["latency_us", "request_to_response", "p50"]));
        cell.p99_us = Some(u(&blast, &["latency_us", "request_to_response", "p99"]));
        cell.offered_per_s = Some(round1(sent as f64 / dur));
        cell.note = Some(format!(
            "blast sent {sent} OPTIONS; {to_uas} reached the UAS, {rx} responses came back"
        ));
    } else {
        cell.msgs_per_s = Some(round1(rx as f64 / dur));
        cell.failed_pct = Some(pct(sent.saturating_sub(rx), sent));
        cell.offered_per_s = Some(round1(sent as f64 / dur));
        cell.note = Some(format!(
            "blast sent {sent} datagrams, {rx} came back reflected (one DUT message each)"
        ));
    }
    cell.dut_counters = counters_delta(before, dut.counters(g.env));
    Ok(cell)
}

/// (1b) Sustained forwarding: the highest fixed blast rate that loses < 1% (of requests without
/// a response; for the limit, of datagrams not reflected) and delivers >= 97% of what it offers,
/// searched from the full-blast goodput upwards or downwards. Full blast overloads a socket-based
/// DUT (its receive buffer overflows, and the generator spends its core on datagrams that are
/// dropped), so its goodput can lie below what the DUT sustains.
pub fn forward_sustained(g: &Gen, dut: &mut Dut, t: &Timing, max: &Cell) -> Result<Cell> {
    let limit = dut.kind == TargetKind::Limit;
    let start = if limit {
        max.msgs_per_s
    } else {
        max.calls_per_s
    };
    let Some(start) = start.filter(|r| *r > 0.0) else {
        return Ok(Cell::skipped("no full-blast goodput measured"));
    };
    let d = t.forward_step_s;
    let run = |dut: &mut Dut, rate: f64| -> Result<Run> {
        let uas = if limit {
            None
        } else {
            Some(g.uas(true, d + 15.0)?)
        };
        let args = vec![
            "blast".to_string(),
            "--target".into(),
            target_addr(),
            "--local".into(),
            format!("{UAC_IP}:0"),
            "--uri".into(),
            FWD_URI.into(),
            "--rate".into(),
            format!("{}", rate.round() as u64),
            "--duration".into(),
            secs(d),
            "--drain".into(),
            "500ms".into(),
        ];
        let r = g.client(
            "blast-rate",
            args,
            d,
            dut,
            Duration::from_secs_f64(d + 15.0),
        );
        drop(uas);
        dut.check_alive()?;
        r
    };
    // (good per second, loss %)
    let judge = |rep: &Value| -> (f64, f64) {
        let dur = f(rep, &["duration_s"]).max(1e-3);
        let sent = u(rep, &["msgs_sent"]);
        let good = if limit {
            u(rep, &["msgs_received"])
        } else {
            u(rep, &["completed"])
        };
        (good as f64 / dur, pct(sent.saturating_sub(good), sent))
    };
    let mut steps = Vec::new();
    let mut best: Option<(Run, f64)> = None;
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = start;
    for _ in 0..t.forward_steps {
        let step = run(dut, rate)?;
        let (good, loss) = judge(&step.rep);
        let pass = loss < 1.0 && good >= 0.97 * rate;
        steps.push(Step {
            offered_per_s: rate.round(),
            calls_per_s: round1(good),
            failed_pct: loss,
            retransmissions: 0,
            pass,
        });
        if pass {
            lo = Some(rate);
            if best.as_ref().is_none_or(|b| good > judge(&b.0.rep).0) {
                best = Some((step, rate));
            }
        } else {
            hi = Some(rate);
        }
        match next_rate(lo, hi, 1.3, 0.7, 0.03) {
            Some(next) => rate = next,
            None => break,
        }
    }
    let Some((
        Run {
            rep,
            cpu: (cpu, core),
            gen_core,
            udp,
        },
        offered,
    )) = best
    else {
        return Ok(Cell {
            msgs_per_s: Some(0.0),
            note: Some("no rate lost < 1%".into()),
            steps,
            ..Cell::default()
        });
    };
    let (good, loss) = judge(&rep);
    let per_txn = if limit { 1.0 } else { 2.0 };
    Ok(Cell {
        msgs_per_s: Some(round1(good * per_txn)),
        calls_per_s: (!limit).then_some(round1(good)),
        failed_pct: Some(loss),
        p50_us: None,
        p99_us: None,
        cpu_pct: Some(cpu),
        dut_core_pct: Some(core),
        gen_core_pct: Some(gen_core),
        offered_per_s: Some(offered.round()),
        duration_s: Some(round1(f(&rep, &["duration_s"]))),
        note: Some(if limit {
            "datagrams reflected per second at the highest rate with < 1% loss".into()
        } else {
            "2 x answered OPTIONS per second (request + response forwarded) at the highest \
             rate with < 1% unanswered"
                .into()
        }),
        udp: Some(udp),
        steps,
        ..Cell::default()
    })
}

/// (2) Calls per second at < 0.1% failed: a closed-loop probe (`--rate max`, 200 in flight)
/// estimates the capacity, then fixed-rate runs bisect for the highest rate that passes: failed
/// (and unfinished) calls < 0.1% of attempted, retransmitted messages < 0.1% of attempted calls
/// (T1 is 100 ms, so a retransmission is a lost or badly delayed message), and at least 97% of
/// the offered rate completed within the load period.
pub fn calls(g: &Gen, dut: &mut Dut, t: &Timing) -> Result<Cell> {
    let run = |dut: &mut Dut, rate: Option<f64>, d: f64| -> Result<Run> {
        let (uas, _) = g.uas(false, d + 15.0)?;
        let mut args = vec![
            "uac".to_string(),
            "--target".into(),
            target_addr(),
            "--local".into(),
            format!("{UAC_IP}:0"),
            "--uri".into(),
            FWD_URI.into(),
            "--duration".into(),
            secs(d),
            // Timer B = 64*T1 = 6.4 s: a lost call fails within the step, not after 32 s.
            "--t1".into(),
            "100ms".into(),
        ];
        match rate {
            Some(r) => args.extend(["--rate".into(), format!("{}", r.round() as u64)]),
            None => args.extend([
                "--rate".into(),
                "max".into(),
                "--limit".into(),
                "200".into(),
            ]),
        }
        let r = g.client("uac", args, d, dut, Duration::from_secs_f64(d + 20.0));
        drop(uas);
        dut.check_alive()?;
        r
    };
    let probe = run(dut, None, t.calls_probe_s)?.rep;
    let estimate = f(&probe, &["calls_per_s"]);
    if estimate <= 0.0 {
        return Ok(Cell {
            calls_per_s: Some(0.0),
            note: Some("the closed-loop probe completed no call".into()),
            ..Cell::default()
        });
    }
    let mut steps = Vec::new();
    let mut best: Option<(Run, f64)> = None;
    let (mut lo, mut hi): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = estimate * 0.9;
    for _ in 0..t.calls_steps {
        let step = run(dut, Some(rate), t.calls_step_s)?;
        let rep = &step.rep;
        let attempted = u(rep, &["attempted"]);
        let bad = u(rep, &["failed"]) + u(rep, &["in_progress"]);
        let failed = pct(bad, attempted);
        let cps = f(rep, &["calls_per_s"]);
        let retrans = u(rep, &["retransmissions"]);
        // Strict: a retransmission means a message was lost or took over T1 (100 ms).
        let pass =
            attempted > 0 && failed < 0.1 && pct(retrans, attempted) < 0.1 && cps >= 0.97 * rate;
        steps.push(Step {
            offered_per_s: rate.round(),
            calls_per_s: round1(cps),
            failed_pct: failed,
            retransmissions: retrans,
            pass,
        });
        if pass {
            lo = Some(rate);
            if best
                .as_ref()
                .is_none_or(|b| cps > f(&b.0.rep, &["calls_per_s"]))
            {
                best = Some((step.clone(), rate));
            }
        } else {
            hi = Some(rate);
        }
        match next_rate(lo, hi, 1.25, 0.6, 0.02) {
            Some(next) => rate = next,
            None => break,
        }
    }
    let Some((
        Run {
            rep,
            cpu: (cpu, core),
            gen_core,
            udp,
        },
        offered,
    )) = best
    else {
        return Ok(Cell {
            calls_per_s: Some(0.0),
            note: Some(format!(
                "no rate passed (probe estimate {estimate:.0} calls/s)"
            )),
            steps,
            ..Cell::default()
        });
    };
    let dur = f(&rep, &["duration_s"]).max(1e-3);
    let msgs = u(&rep, &["msgs_sent"]) + u(&rep, &["msgs_received"]);
    Ok(Cell {
        msgs_per_s: Some(round1(msgs as f64 / dur)),
        calls_per_s: Some(round1(f(&rep, &["calls_per_s"]))),
        failed_pct: Some(pct(
            u(&rep, &["failed"]) + u(&rep, &["in_progress"]),
            u(&rep, &["attempted"]),
        )),
        p50_us: Some(u(&rep, &["latency_us", "invite_to_200", "p50"])),
        p99_us: Some(u(&rep, &["latency_us", "invite_to_200", "p99"])),
        cpu_pct: Some(cpu),
        dut_core_pct: Some(core),
        gen_core_pct: Some(gen_core),
        offered_per_s: Some(offered.round()),
        duration_s: Some(round1(dur)),
        retransmissions: Some(u(&rep, &["retransmissions"])),
        note: Some(format!(
            "closed-loop probe: {estimate:.0} calls/s; latency is INVITE to 200 OK"
        )),
        udp: Some(udp),
        steps,
        ..Cell::default()
    })
}

/// (4) Latency at 50% of the measured forwarding maximum: OPTIONS transactions from a UAC
/// (`--scenario options`, which times every request to its final response) at half the
/// transactions/s that forwarding reached, through the DUT to a stateless UAS.
pub fn latency(g: &Gen, dut: &mut Dut, t: &Timing, fwd: &Cell) -> Result<Cell> {
    let Some(max_tps) = fwd.calls_per_s.filter(|r| *r > 0.0) else {
        return Ok(Cell::skipped("no forwarding maximum measured"));
    };
    let rate = (max_tps * 0.5).round().max(1.0);
    let d = t.latency_s;
    let (uas, _) = g.uas(true, d + 15.0)?;
    let args = vec![
        "uac".to_string(),
        "--scenario".into(),
        "options".into(),
        "--target".into(),
        target_addr(),
        "--local".into(),
        format!("{UAC_IP}:0"),
        "--uri".into(),
        FWD_URI.into(),
        "--rate".into(),
        format!("{rate}"),
        "--duration".into(),
        secs(d),
        "--t1".into(),
        "100ms".into(),
    ];
    let Run {
        rep,
        cpu: (cpu, core),
        gen_core,
        udp,
    } = g.client(
        "uac-latency",
        args,
        d,
        dut,
        Duration::from_secs_f64(d + 20.0),
    )?;
    drop(uas);
    dut.check_alive()?;
    let dur = f(&rep, &["duration_s"]).max(1e-3);
    let msgs = u(&rep, &["msgs_sent"]) + u(&rep, &["msgs_received"]);
    let lat = |q: &str| u(&rep, &["latency_us", "request_to_response", q]);
    Ok(Cell {
        msgs_per_s: Some(round1(msgs as f64 / dur)),
        calls_per_s: Some(round1(f(&rep, &["calls_per_s"]))),
        failed_pct: Some(pct(
            u(&rep, &["failed"]) + u(&rep, &["in_progress"]),
            u(&rep, &["attempted"]),
        )),
        p50_us: Some(lat("p50")),
        p99_us: Some(lat("p99")),
        cpu_pct: Some(cpu),
        dut_core_pct: Some(core),
        gen_core_pct: Some(gen_core),
        offered_per_s: Some(rate),
        duration_s: Some(round1(dur)),
        retransmissions: Some(u(&rep, &["retransmissions"])),
        note: Some(format!(
            "OPTIONS at {rate}/s (50% of the forwarding maximum); request-to-response through \
             the DUT twice and the UAS: p90 {} us, p999 {} us, max {} us; generator core busy \
             {gen_core}% (near 100% its own queueing is in these figures)",
            lat("p90"),
            lat("p999"),
            lat("max"),
        )),
        udp: Some(udp),
        ..Cell::default()
    })
}

/// (3) REGISTER/s against the DUT's registrar, closed loop (200 in flight), every REGISTER a
/// new AOR in the registrar's domain; with `auth` each registration of the credentials' AOR is
/// challenged (401) and answered with Digest credentials (MD5, qop=auth) first.
pub fn register(g: &Gen, dut: &mut Dut, t: &Timing, auth: bool) -> Result<Cell> {
    let d = t.register_s;
    let mut args = vec![
        "uac".to_string(),
        "--scenario".into(),
        "register".into(),
        "--target".into(),
        target_addr(),
        "--local".into(),
        format!("{UAC_IP}:0"),
        "--uri".into(),
        // Without auth every REGISTER is a new AOR (the registrar's insert path). With auth the
        // AOR is the credentials' user (a registrar answers 403 to valid credentials for another
        // user's AOR), so each registration refreshes that one binding.
        if auth {
            format!("sip:{AUTH_USER}@{DOMAIN}")
        } else {
            format!("sip:+4930{{n}}@{DOMAIN}")
        },
        "--rate".into(),
        "max".into(),
        "--limit".into(),
        "200".into(),
        "--duration".into(),
        secs(d),
        "--t1".into(),
        "100ms".into(),
    ];
    if auth {
        args.extend(["--auth".into(), format!("{AUTH_USER}:{AUTH_PASS}")]);
    }
    let before = dut.counters(g.env);
    let Run {
        rep,
        cpu: (cpu, core),
        gen_core,
        udp,
    } = g.client(
        if auth {
            "uac-register-auth"
        } else {
            "uac-register"
        },
        args,
        d,
        dut,
        Duration::from_secs_f64(d + 20.0),
    )?;
    dut.check_alive()?;
    let dur = f(&rep, &["duration_s"]).max(1e-3);
    let msgs = u(&rep, &["msgs_sent"]) + u(&rep, &["msgs_received"]);
    let responses = rep["responses_received"].clone();
    Ok(Cell {
        msgs_per_s: Some(round1(msgs as f64 / dur)),
        calls_per_s: Some(round1(f(&rep, &["calls_per_s"]))),
        failed_pct: Some(pct(
            u(&rep, &["failed"]) + u(&rep, &["in_progress"]),
            u(&rep, &["attempted"]),
        )),
        p50_us: Some(u(&rep, &["latency_us", "request_to_response", "p50"])),
        p99_us: Some(u(&rep, &["latency_us", "request_to_response", "p99"])),
        cpu_pct: Some(cpu),
        dut_core_pct: Some(core),
        gen_core_pct: Some(gen_core),
        duration_s: Some(round1(dur)),
        retransmissions: Some(u(&rep, &["retransmissions"])),
        note: Some(format!("responses received: {responses}")),
        dut_counters: counters_delta(before, dut.counters(g.env)),
        udp: Some(udp),
        ..Cell::default()
    })
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 / whole as f64 * 100.0 * 1000.0).round() / 1000.0
}

/// after - before for every numeric counter (both taken from the DUT).
fn counters_delta(before: Option<Value>, after: Option<Value>) -> Option<Value> {
    let (Some(Value::Object(b)), Some(Value::Object(a))) = (before, after) else {
        return None;
    };
    let mut m = serde_json::Map::new();
    for (k, v) in a {
        let now = v.as_f64().unwrap_or(0.0);
        let then = b.get(&k).and_then(Value::as_f64).unwrap_or(0.0);
        let d = now - then;
        if d != 0.0 {
            m.insert(k, serde_json::json!(d));
        }
    }
    Some(Value::Object(m))
}

/// One step of the rate search: bisect between the highest passing (`lo`) and lowest failing
/// (`hi`) rate, or grow/shrink while only one side is known; `None` once the bracket is within
/// `tolerance` of `hi`.
fn next_rate(
    lo: Option<f64>,
    hi: Option<f64>,
    grow: f64,
    shrink: f64,
    tolerance: f64,
) -> Option<f64> {
    match (lo, hi) {
        (Some(l), Some(h)) if h - l < tolerance * h => None,
        (Some(l), Some(h)) => Some((l + h) / 2.0),
        (Some(l), None) => Some(l * grow),
        (None, Some(h)) => Some(h * shrink),
        (None, None) => None,
    }
}
