//! `cargo xtask bench`: carrier-scale throughput of sipd on AF_XDP and on kernel sockets, beside
//! Kamailio and beside the raw AF_XDP limit (a reflector doing no SIP work), in one run on this
//! machine. See README.md ("Benchmarks") for what each number means and how to read them.
//!
//! Flow: build sipd (release), install Kamailio if missing, build the topology (`topo`), then for
//! each target start it in the DUT namespace pinned to the DUT core and run the scenarios with
//! `sipd load` pinned to the generator core (`scenarios`); print the table, write
//! `target/bench/<timestamp>.json` (+ `latest.json`) and an SVG plot (`plot`). Everything is
//! bounded in time and torn down on exit, error, panic and Ctrl-C.

mod plot;
mod report;
mod scenarios;
mod targets;
mod topo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;

use scenarios::{Cell, Gen, Timing};
use targets::{Dut, Env, TargetKind};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Run every scenario for a few seconds (about 2-3 minutes in all).
    #[arg(long)]
    pub quick: bool,
    /// Targets to run (default: all), comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub targets: Vec<TargetKind>,
    /// Scenarios to run (default: all), comma-separated. `latency` needs `forward`.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// Core the device under test is pinned to.
    #[arg(long, default_value_t = 0)]
    pub dut_core: usize,
    /// Core the load generator (UAC/blast and UAS) is pinned to.
    #[arg(long, default_value_t = 1)]
    pub gen_core: usize,
    /// Nice value of the DUT and generator processes (the same for every target). The default,
    /// -20, keeps other work on the machine (builds, fuzzers) from taking most of the two cores
    /// and from delaying wake-ups by whole time slices; `--nice 0` measures as an ordinary
    /// process would share a busy machine.
    #[arg(long, default_value_t = -20, allow_negative_numbers = true)]
    pub nice: i32,
    /// Use target/release/sipd as it is (no cargo build).
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Stateless forwarding: max messages/s, blast -> DUT -> UAS, at full blast.
    Forward,
    /// Stateless forwarding: the highest blast rate with < 1% loss (needs `forward`).
    ForwardSustained,
    /// Full calls per second at < 0.1% failed calls.
    Calls,
    /// REGISTER/s, no authentication.
    Register,
    /// REGISTER/s with Digest authentication.
    RegisterAuth,
    /// Latency percentiles at 50% of the forwarding maximum.
    Latency,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Forward,
        Scenario::ForwardSustained,
        Scenario::Calls,
        Scenario::Register,
        Scenario::RegisterAuth,
        Scenario::Latency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Forward => "forward",
            Scenario::ForwardSustained => "forward-sustained",
            Scenario::Calls => "calls",
            Scenario::Register => "register",
            Scenario::RegisterAuth => "register-auth",
            Scenario::Latency => "latency",
        }
    }
}

/// The results file.
#[derive(Serialize)]
pub struct Results {
    pub timestamp: String,
    pub quick: bool,
    pub git: report::Git,
    pub machine: report::Machine,
    pub versions: BTreeMap<String, String>,
    pub timing: Timing,
    /// scenario -> target -> numbers.
    pub results: BTreeMap<String, BTreeMap<String, Cell>>,
    pub ratios: BTreeMap<String, Option<f64>>,
    pub notes: Vec<String>,
    /// Busy % of the DUT and generator cores during one second before the bench started: other
    /// work on the machine (builds, fuzzers) shares these cores and skews every number.
    pub background_busy_pct: BTreeMap<String, f64>,
    pub wall_s: f64,
}

pub fn run(root: &Path, args: BenchArgs) -> Result<()> {
    let r = run_inner(root, args);
    // Every guard (namespaces, processes) has been dropped by now.
    if topo::stop_requested() {
        eprintln!("xtask bench: interrupted; namespaces and processes cleaned up");
        std::process::exit(130);
    }
    r
}

fn run_inner(root: &Path, args: BenchArgs) -> Result<()> {
    if !crate::setup::is_root() {
        bail!("cargo xtask bench needs root (network namespaces, veth, XDP)");
    }
    let started = Instant::now();
    let targets: Vec<TargetKind> = if args.targets.is_empty() {
        TargetKind::ALL.to_vec()
    } else {
        args.targets.clone()
    };
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    if args.dut_core == args.gen_core {
        bail!("--dut-core and --gen-core must differ");
    }
    let timing = if args.quick {
        Timing::quick()
    } else {
        Timing::full()
    };

    // Prerequisites: iproute2 (setup's list), Kamailio for its target.
    crate::setup::apt_install(&["iproute2", "util-linux"])?;
    if targets.contains(&TargetKind::Kamailio) {
        // kex, ctl, sl, maxfwd, rr, usrloc, registrar and auth are all in the main package.
        crate::setup::apt_install(&["kamailio"])?;
    }
    if !args.no_build {
        crate::cargo(&["build", "--release", "-p", "sipd"])?;
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let sipd = target_dir.join("release/sipd");
    if !sipd.exists() {
        bail!(
            "{} not found (build it, or drop --no-build)",
            sipd.display()
        );
    }

    let timestamp = report::timestamp();
    let outdir = target_dir.join("bench");
    let logdir = outdir.join(&timestamp);
    std::fs::create_dir_all(&logdir).with_context(|| format!("{}", logdir.display()))?;

    topo::set_nice(args.nice);
    topo::install_signal_handler()?;
    let background = background_busy(&[args.dut_core, args.gen_core])?;
    for (core, busy) in &background {
        if *busy > 10.0 {
            eprintln!(
                "xtask bench: warning: {core} was {busy:.0}% busy before the bench started: other \
                 work on this machine will skew the numbers"
            );
        }
    }
    let topology = topo::Topology::create().context("building the topology")?;
    let env = Env {
        root: root.to_path_buf(),
        sipd: sipd.clone(),
        topo: &topology,
        dut_core: args.dut_core,
        gen_core: args.gen_core,
        logdir: logdir.clone(),
        seq: std::cell::Cell::new(0),
    };
    eprintln!(
        "xtask bench: {} run; namespaces {} / {}; DUT on core {}, generator on core {}; logs in {}",
        if args.quick { "quick" } else { "full" },
        topology.peers,
        topology.dut,
        args.dut_core,
        args.gen_core,
        logdir.display()
    );

    let mut results: BTreeMap<String, BTreeMap<String, Cell>> = BTreeMap::new();
    let mut put = |s: Scenario, t: TargetKind, c: Cell| {
        print_cell(s, t, &c);
        results
            .entry(s.name().to_string())
            .or_default()
            .insert(t.name().to_string(), c);
    };
    for &t in &targets {
        topo::check_stop()?;
        for (s, c) in run_target(&env, t, &scenarios, &timing)? {
            put(s, t, c);
        }
    }
    drop(env);
    drop(topology);
    topo::check_stop()?;

    let mut notes = vec![
        "msgs_per_s: messages the DUT forwarded per second, counted by the generator (forward: \
         requests that reached the UAS + responses that reached blast; limit: datagrams reflected \
         back; calls/register: everything the UAC sent and received)."
            .to_string(),
        "cpu_pct: user+system time of the DUT's processes over the load period, in % of one \
         core; dut_core_pct: the DUT core's busy time, including softirq work done there (on veth \
         the receiving side's kernel work runs on the sender's core); gen_core_pct: the same for \
         the generator's core (near 100%, latency includes the generator's own queueing)."
            .to_string(),
        "calls: sipd and Kamailio both record-route, so ACK and BYE come through the DUT: 6 \
         forwarded messages per call. Pass: failed + unfinished < 0.1% and >= 97% of the offered \
         rate completed. p50/p99 there: INVITE to 200 OK."
            .to_string(),
        "register: Kamailio runs usrloc (in memory) + registrar save(), with auth: \
         pv_www_authenticate against a plain password (no database)."
            .to_string(),
        "forward: blast at full speed (the goodput of an overloaded DUT); forward-sustained: the \
         highest fixed blast rate with < 1% loss."
            .to_string(),
        "latency: OPTIONS from a UAC at 50% of the target's sustained forwarding maximum \
         (transactions/s); p50/p99 is the generator's request-to-response time (through the DUT \
         twice and the UAS)."
            .to_string(),
    ];
    if targets.contains(&TargetKind::Limit) {
        notes.push(
            "limit: sipd reflect (AF_XDP, swaps addresses, no SIP work): only forwarding is \
             measured; blast records no latency for reflected requests."
                .into(),
        );
    }
    let ratios = report::ratios(&results);
    let res = Results {
        timestamp: timestamp.clone(),
        quick: args.quick,
        git: report::git(root),
        machine: report::machine(args.dut_core, args.gen_core, args.nice),
        versions: report::versions(&sipd, targets.contains(&TargetKind::Kamailio)),
        timing,
        results,
        ratios,
        notes,
        background_busy_pct: background,
        wall_s: topo::round1(started.elapsed().as_secs_f64()),
    };
    println!();
    print!("{}", report::table(&res));
    let json = serde_json::to_string_pretty(&res)?;
    let file = outdir.join(format!("{timestamp}.json"));
    std::fs::write(&file, &json)?;
    std::fs::write(outdir.join("latest.json"), &json)?;
    let svg = outdir.join(format!("{timestamp}.svg"));
    plot::write(&res, &svg)?;
    std::fs::copy(&svg, outdir.join("latest.svg"))?;
    println!(
        "\nwrote {} (and latest.json), {} (and latest.svg); logs in {}",
        file.display(),
        svg.display(),
        logdir.display()
    );
    Ok(())
}

fn print_cell(s: Scenario, t: TargetKind, c: &Cell) {
    if let Some(why) = &c.skipped {
        eprintln!(
            "xtask bench: {:<14} {:<12} skipped: {why}",
            s.name(),
            t.name()
        );
        return;
    }
    let o = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    eprintln!(
        "xtask bench: {:<14} {:<12} msgs/s {:>9} calls/s {:>8} failed {:>6}% p50 {:>6} us p99 {:>7} \
         us cpu {:>5}% gen core {:>5}%",
        s.name(),
        t.name(),
        o(c.msgs_per_s),
        o(c.calls_per_s),
        c.failed_pct.map_or("-".into(), |v| format!("{v:.3}")),
        c.p50_us.map_or("-".into(), |v| v.to_string()),
        c.p99_us.map_or("-".into(), |v| v.to_string()),
        c.cpu_pct.map_or("-".into(), |v| format!("{v:.0}")),
        o(c.gen_core_pct),
    );
}

/// Runs the chosen scenarios against one target. A target that cannot start, or dies, has the
/// rest of its scenarios recorded as skipped with the reason; only an interrupt ends the bench.
fn run_target(
    env: &Env,
    t: TargetKind,
    scenarios: &[Scenario],
    timing: &Timing,
) -> Result<Vec<(Scenario, Cell)>> {
    let mut out: Vec<(Scenario, Cell)> = Vec::new();
    let g = Gen { env };
    let wants = |s: Scenario| scenarios.contains(&s);
    let unsupported = |s: Scenario| -> Option<String> {
        match (t, s) {
            (TargetKind::Limit, Scenario::Forward | Scenario::ForwardSustained) => None,
            (TargetKind::Limit, _) => {
                Some("the reflector does no SIP work: forwarding only".into())
            }
            (k, Scenario::Register | Scenario::RegisterAuth) if k.is_sipd() => {
                targets::sipd_registrar_missing(&env.root)
            }
            _ => None,
        }
    };
    let plain: Vec<Scenario> = [
        Scenario::Forward,
        Scenario::ForwardSustained,
        Scenario::Calls,
        Scenario::Latency,
        Scenario::Register,
    ]
    .into_iter()
    .filter(|s| wants(*s))
    .collect();
    let mut todo: Vec<Scenario> = Vec::new();
    for s in plain {
        match unsupported(s) {
            Some(why) => out.push((s, Cell::skipped(why))),
            None => todo.push(s),
        }
    }
    if !todo.is_empty() {
        eprintln!("xtask bench: starting {}", t.name());
        match Dut::start(env, t, false) {
            Err(e) => {
                topo::check_stop()?;
                let why = format!("{} did not start: {e:#}", t.name());
                for s in todo {
                    out.push((s, Cell::skipped(why.clone())));
                }
            }
            Ok(mut dut) => {
                let mut fwd: Option<Cell> = None;
                let mut sustained: Option<Cell> = None;
                let mut dead: Option<String> = None;
                for s in todo {
                    if let Some(why) = &dead {
                        out.push((s, Cell::skipped(why.clone())));
                        continue;
                    }
                    eprintln!("xtask bench: {} / {}", t.name(), s.name());
                    let r = match s {
                        Scenario::Forward => scenarios::forward(&g, &mut dut, timing),
                        Scenario::ForwardSustained => match &fwd {
                            Some(f) => scenarios::forward_sustained(&g, &mut dut, timing, f),
                            None => Ok(Cell::skipped("needs the forward scenario")),
                        },
                        Scenario::Calls => scenarios::calls(&g, &mut dut, timing),
                        // Half of the sustained maximum where measured, else of full blast.
                        Scenario::Latency => match sustained
                            .as_ref()
                            .filter(|c| c.calls_per_s.is_some_and(|r| r > 0.0))
                            .or(fwd.as_ref())
                        {
                            Some(f) => scenarios::latency(&g, &mut dut, timing, f),
                            None => Ok(Cell::skipped("needs the forward scenario")),
                        },
                        Scenario::Register => scenarios::register(&g, &mut dut, timing, false),
                        Scenario::RegisterAuth => unreachable!(),
                    };
                    match r {
                        Ok(c) => {
                            match s {
                                Scenario::Forward => fwd = Some(c.clone()),
                                Scenario::ForwardSustained => sustained = Some(c.clone()),
                                _ => {}
                            }
                            out.push((s, c));
                        }
                        Err(e) => {
                            topo::check_stop()?;
                            let why = format!("failed: {e:#}");
                            if dut.check_alive().is_err() {
                                dead = Some(format!("{} exited: {e:#}", t.name()));
                            }
                            out.push((s, Cell::skipped(why)));
                        }
                    }
                }
                dut.stop();
            }
        }
    }
    if wants(Scenario::RegisterAuth) {
        let s = Scenario::RegisterAuth;
        if let Some(why) = unsupported(s) {
            out.push((s, Cell::skipped(why)));
        } else {
            eprintln!("xtask bench: starting {} (digest auth)", t.name());
            let cell = match Dut::start(env, t, true) {
                Err(e) => {
                    topo::check_stop()?;
                    Cell::skipped(format!("{} did not start: {e:#}", t.name()))
                }
                Ok(mut dut) => {
                    eprintln!("xtask bench: {} / {}", t.name(), s.name());
                    let c = match scenarios::register(&g, &mut dut, timing, true) {
                        Ok(c) => c,
                        Err(e) => {
                            topo::check_stop()?;
                            Cell::skipped(format!("failed: {e:#}"))
                        }
                    };
                    dut.stop();
                    c
                }
            };
            out.push((s, cell));
        }
    }
    env.topo.detach_xdp();
    Ok(out)
}

/// Busy % of each core over one second (idle machine: near 0).
fn background_busy(cores: &[usize]) -> Result<BTreeMap<String, f64>> {
    let before: Vec<(u64, u64)> = cores.iter().map(|&c| topo::core_jiffies(c)).collect();
    topo::sleep(std::time::Duration::from_secs(1))?;
    Ok(cores
        .iter()
        .zip(before)
        .map(|(&c, (b0, t0))| {
            let (b1, t1) = topo::core_jiffies(c);
            let busy = if t1 > t0 {
                (b1 - b0) as f64 / (t1 - t0) as f64 * 100.0
            } else {
                0.0
            };
            (format!("cpu{c}"), topo::round1(busy))
        })
        .collect())
}

/// `git rev-parse` etc. run from the workspace root.
pub(crate) fn git_out(root: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
            .unwrap()
            .bench
    }

    #[test]
    fn nice_defaults_to_minus_20_and_takes_negative_values() {
        assert_eq!(parse(&[]).nice, -20);
        assert_eq!(parse(&["--nice", "0"]).nice, 0);
        assert_eq!(parse(&["--nice", "-5"]).nice, -5);
        assert_eq!(parse(&["--nice=-10", "--quick"]).nice, -10);
    }

    #[test]
    fn subsets_of_targets_and_scenarios() {
        let a = parse(&[
            "--targets",
            "sipd-afxdp,limit",
            "--scenarios",
            "forward,latency",
        ]);
        assert_eq!(a.targets, vec![TargetKind::SipdAfxdp, TargetKind::Limit]);
        assert_eq!(a.scenarios, vec![Scenario::Forward, Scenario::Latency]);
    }
}
