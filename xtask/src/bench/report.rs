//! The record around the numbers (machine, commit, versions), the ratios and the printed table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::scenarios::Cell;
use super::targets::TargetKind;
use super::{Results, git_out};

#[derive(Serialize)]
pub struct Git {
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// Uncommitted changes in the work tree when the bench ran.
    pub dirty: bool,
}

pub fn git(root: &Path) -> Git {
    Git {
        commit: git_out(root, &["rev-parse", "HEAD"]),
        branch: git_out(root, &["rev-parse", "--abbrev-ref", "HEAD"]),
        dirty: git_out(root, &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty()),
    }
}

#[derive(Serialize)]
pub struct Machine {
    pub hostname: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub dut_core: usize,
    pub gen_core: usize,
    /// Nice value the DUT and generator processes ran with (`--nice`).
    pub nice: i32,
    pub link: String,
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn machine(dut_core: usize, gen_core: usize, nice: i32) -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let mem_kib: f64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        hostname: read("/proc/sys/kernel/hostname"),
        kernel: read("/proc/sys/kernel/osrelease"),
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        dut_core,
        gen_core,
        nice,
        link: "veth pair between two network namespaces (AF_XDP in copy mode)".into(),
    }
}

pub fn versions(sipd: &Path, kamailio: bool) -> BTreeMap<String, String> {
    let first_line = |cmd: &mut Command| -> Option<String> {
        let out = cmd.output().ok()?;
        let s = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        s.lines().next().map(|l| l.trim().to_string())
    };
    let mut m = BTreeMap::new();
    if let Some(v) = first_line(Command::new(sipd).arg("--version")) {
        m.insert("sipd".into(), v);
    }
    if kamailio && let Some(v) = first_line(Command::new("kamailio").arg("-v")) {
        m.insert("kamailio".into(), v);
    }
    m
}

/// UTC, `20260521T043100Z` (sorts by name, safe in file names).
pub fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    now.format(&f).unwrap_or_else(|_| "unknown".into())
}

fn get<'a>(
    r: &'a BTreeMap<String, BTreeMap<String, Cell>>,
    scenario: &str,
    target: TargetKind,
) -> Option<&'a Cell> {
    r.get(scenario)?
        .get(target.name())
        .filter(|c| c.skipped.is_none())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 100.0).round() / 100.0),
        _ => None,
    }
}

/// sipd / Kamailio and sipd / limit, per scenario that has both.
pub fn ratios(r: &BTreeMap<String, BTreeMap<String, Cell>>) -> BTreeMap<String, Option<f64>> {
    let mut m = BTreeMap::new();
    let sipds = [TargetKind::SipdAfxdp, TargetKind::SipdSocket];
    for s in sipds {
        for scen in ["forward", "forward-sustained"] {
            let fwd = |t| get(r, scen, t).and_then(|c| c.msgs_per_s);
            m.insert(
                format!("{scen}.{}/kamailio", s.name()),
                ratio(fwd(s), fwd(TargetKind::Kamailio)),
            );
            m.insert(
                format!("{scen}.{}/limit", s.name()),
                ratio(fwd(s), fwd(TargetKind::Limit)),
            );
        }
        for scen in ["calls", "register", "register-auth"] {
            let cps = |t| get(r, scen, t).and_then(|c| c.calls_per_s);
            m.insert(
                format!("{scen}.{}/kamailio", s.name()),
                ratio(cps(s), cps(TargetKind::Kamailio)),
            );
        }
    }
    m.retain(|_, v| v.is_some());
    m
}

/// The one table: rows are targets.
pub fn table(res: &Results) -> String {
    let r = &res.results;
    let mut out = String::new();
    let n0 = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>7} {:>9}",
        "target",
        "fwd max",
        "fwd <1%",
        "calls/s",
        "REG/s",
        "REG+auth/s",
        "p50 us",
        "p99 us",
        "CPU %",
        "core %"
    );
    for t in TargetKind::ALL {
        if !r.values().any(|m| m.contains_key(t.name())) {
            continue;
        }
        let fwd = get(r, "forward", t);
        let lat = get(r, "latency", t);
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>8} {:>8} {:>7} {:>9}",
            t.name(),
            n0(fwd.and_then(|c| c.msgs_per_s)),
            n0(get(r, "forward-sustained", t).and_then(|c| c.msgs_per_s)),
            n0(get(r, "calls", t).and_then(|c| c.calls_per_s)),
            n0(get(r, "register", t).and_then(|c| c.calls_per_s)),
            n0(get(r, "register-auth", t).and_then(|c| c.calls_per_s)),
            lat.and_then(|c| c.p50_us)
                .map_or("-".into(), |v| v.to_string()),
            lat.and_then(|c| c.p99_us)
                .map_or("-".into(), |v| v.to_string()),
            n0(fwd.and_then(|c| c.cpu_pct)),
            n0(fwd.and_then(|c| c.dut_core_pct)),
        );
    }
    let _ = writeln!(
        out,
        "(fwd max: messages/s the DUT forwarded under full blast; fwd <1%: at the highest blast \
         rate losing < 1%; calls/s at < 0.1% failed; p50/p99: OPTIONS latency at 50% of the \
         sustained maximum; CPU %: DUT processes under full blast, of one core; core %: the DUT \
         core's busy time incl. softirq)"
    );
    if !res.ratios.is_empty() {
        let _ = writeln!(out, "\nratios:");
        for (k, v) in &res.ratios {
            if let Some(v) = v {
                let _ = writeln!(out, "  {k:<32} {v:>7.2}");
            }
        }
    }
    let skipped: Vec<String> = r
        .iter()
        .flat_map(|(s, m)| {
            m.iter()
                .filter_map(move |(t, c)| c.skipped.as_ref().map(|w| format!("  {s}/{t}: {w}")))
        })
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "\nskipped:");
        for s in skipped {
            let _ = writeln!(out, "{s}");
        }
    }
    let goal = |name: &str, v: Option<f64>, need: f64, higher: bool| -> String {
        match v {
            None => format!("  {name}: not measured"),
            Some(v) => {
                let ok = if higher { v >= need } else { v < need };
                format!(
                    "  {name}: {v:.2} ({} {need})",
                    if ok { "meets" } else { "misses" }
                )
            }
        }
    };
    let busy: Vec<String> = res
        .background_busy_pct
        .iter()
        .filter(|(_, b)| **b > 10.0)
        .map(|(c, b)| format!("{c} {b:.0}%"))
        .collect();
    if !busy.is_empty() {
        let _ = writeln!(
            out,
            "\nwarning: cores busy before the run ({}): other work shared them",
            busy.join(", ")
        );
    }
    let _ = writeln!(out, "\ngoals (measured, not asserted):");
    let rr = &res.ratios;
    let g = |k: &str| rr.get(k).copied().flatten();
    let _ = writeln!(
        out,
        "{}",
        goal(
            "forward sipd-afxdp/kamailio >= 10",
            g("forward.sipd-afxdp/kamailio"),
            10.0,
            true
        )
    );
    let _ = writeln!(
        out,
        "{}",
        goal(
            "forward sipd-afxdp/limit >= 0.70",
            g("forward.sipd-afxdp/limit"),
            0.7,
            true
        )
    );
    let _ = writeln!(
        out,
        "{}",
        goal(
            "calls sipd-afxdp/kamailio >= 10",
            g("calls.sipd-afxdp/kamailio"),
            10.0,
            true
        )
    );
    let p99 = get(r, "latency", TargetKind::SipdAfxdp)
        .and_then(|c| c.p99_us)
        .map(|v| v as f64);
    let _ = writeln!(
        out,
        "{}",
        goal("latency sipd-afxdp p99 us < 100", p99, 100.0, false)
    );
    out
}
