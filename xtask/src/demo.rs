//! `cargo xtask demo`: the main job on a fresh machine. Builds sipd, creates a two-namespace
//! topology on one veth pair (UAC and UAS on one end, sipd on the other: AF_XDP sends on the
//! interface it received on), runs sipd with AF_XDP, registers users and places real calls
//! through it with `sipd load`, prints what happened and which path carried the packets, and
//! tears everything down, also on failure or Ctrl-C.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::netns::{Namespace, ip};

const SIPD_IP: &str = "10.210.0.2";
const UAC_IP: &str = "10.210.0.1";
const UAS_IP: &str = "10.210.0.3";

pub struct DemoOptions {
    /// Seconds of calls.
    pub seconds: u32,
    /// Calls per second offered.
    pub rate: u32,
    /// `afxdp`, `socket` or `auto`.
    pub mode: String,
}

pub fn run(opts: &DemoOptions) -> Result<()> {
    crate::setup::ensure_all()?;
    if !crate::setup::is_root() {
        bail!("the demo builds network namespaces and attaches XDP: run it as root");
    }
    crate::cargo(&["build", "--release", "-p", "sipd"])?;
    let sipd = std::env::current_dir()?.join("target/release/sipd");

    let interrupted = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, interrupted.clone());
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, interrupted.clone());

    let pid = std::process::id();
    let peers = Namespace::create(&format!("sipd-demo-{pid}-peers"))?;
    let dut = Namespace::create(&format!("sipd-demo-{pid}-sipd"))?;
    let (if_peers, if_sipd) = (format!("sdd{pid}p"), format!("sdd{pid}s"));
    ip(&[
        "link",
        "add",
        &if_peers,
        "netns",
        peers.name(),
        "type",
        "veth",
        "peer",
        "name",
        &if_sipd,
        "netns",
        dut.name(),
    ])?;
    for (ns, iface, addrs) in [
        (
            &peers,
            &if_peers,
            vec![format!("{UAC_IP}/24"), format!("{UAS_IP}/24")],
        ),
        (&dut, &if_sipd, vec![format!("{SIPD_IP}/24")]),
    ] {
        for a in addrs {
            ns.run(&["ip", "addr", "add", &a, "dev", iface])?;
        }
        ns.run(&["ip", "link", "set", iface, "up"])?;
        ns.run(&["ip", "link", "set", "lo", "up"])?;
    }
    println!(
        "demo: topology {}: UAC {UAC_IP}, UAS {UAS_IP} | {}: sipd {SIPD_IP} ({} <-> {})",
        peers.name(),
        dut.name(),
        if_peers,
        if_sipd
    );

    let dir = std::env::temp_dir().join(format!("sipd-demo-{pid}"));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("sipd.toml");
    std::fs::write(&config, config_text(&opts.mode, &if_sipd, &dir))?;
    let log_path = dir.join("sipd.log");
    let log = std::fs::File::create(&log_path)?;
    let mut daemon = Daemon(
        dut.command(&sipd)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting sipd")?,
    );
    wait_for_admin(&dut, &sipd, &mut daemon, &log_path)?;
    print_log_lines(
        &log_path,
        &[
            "XDP program attached",
            "AF_XDP worker",
            "AF_XDP not available",
            "listening",
        ],
    );

    // 1. Registrations: 200 users register their contacts with sipd's registrar.
    let reg = load(
        &peers,
        &sipd,
        &[
            "uac",
            "--scenario",
            "register",
            "--target",
            &format!("{SIPD_IP}:5060"),
            "--local",
            &format!("{UAS_IP}:5070"),
            "--uri",
            "sip:user{n}@biloxi.example.com",
            "--calls",
            "200",
            "--rate",
            "500",
            "--duration",
            "10s",
            "--json",
            "-q",
        ],
    )?;
    check_interrupted(&interrupted)?;

    // 2. Calls: UAS answers, UAC calls +4930... numbers routed to it by the number table.
    let mut uas = Daemon(
        peers
            .command(&sipd)
            .args([
                "load",
                "uas",
                "--listen",
                &format!("{UAS_IP}:5060"),
                "--duration",
                &format!("{}s", opts.seconds + 10),
                "--json",
                "-q",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the UAS")?,
    );
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let calls = load(
        &peers,
        &sipd,
        &[
            "uac",
            "--target",
            &format!("{SIPD_IP}:5060"),
            "--local",
            &format!("{UAC_IP}:5060"),
            "--uri",
            "sip:+4930{n}@biloxi.example.com",
            "--rate",
            &opts.rate.to_string(),
            "--duration",
            &format!("{}s", opts.seconds),
            "--json",
            "-q",
        ],
    )?;
    let elapsed = started.elapsed();
    let _ = uas.0.kill();
    check_interrupted(&interrupted)?;

    let metrics = scrape(&dut, &sipd)?;
    signal_term(&daemon.0);
    let stopped = wait_exit(&mut daemon.0, Duration::from_secs(10));

    let get = |k: &str| metrics.get(k).copied().unwrap_or(0.0);
    let redirected = sum_prefix(
        &metrics,
        "sipd_xdp_packets_total{",
        "verdict=\"redirected\"",
    );
    let afxdp_tx = sum_prefix(&metrics, "sipd_afxdp_packets_total{", "what=\"tx\"");
    let socket_rx = sum_prefix(&metrics, "sipd_socket_rx_packets_total{", "");
    let path = if redirected > 0.0 {
        "XDP -> AF_XDP (kernel bypass)"
    } else {
        "kernel UDP sockets"
    };
    println!();
    println!(
        "demo summary ({:.1} s of calls, mode = {})",
        elapsed.as_secs_f64(),
        opts.mode
    );
    println!(
        "  registrations: {} attempted, {} completed, {} failed",
        reg["attempted"], reg["completed"], reg["failed"]
    );
    println!(
        "  calls:         {} attempted, {} completed, {} failed ({:.0} calls/s)",
        calls["attempted"],
        calls["completed"],
        calls["failed"],
        calls["calls_per_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  sipd:          {} requests and {} responses forwarded, {} replies of its own",
        get("sipd_forwarded_total{kind=\"request\"}"),
        get("sipd_forwarded_total{kind=\"response\"}"),
        sum_prefix(&metrics, "sipd_replies_total{", ""),
    );
    println!(
        "  messages/s:    {:.0} through sipd (UAC sent {:.0}/s, received {:.0}/s)",
        (get("sipd_forwarded_total{kind=\"request\"}")
            + get("sipd_forwarded_total{kind=\"response\"}"))
            / elapsed.as_secs_f64().max(0.001),
        calls["msgs_per_s_tx"].as_f64().unwrap_or(0.0),
        calls["msgs_per_s_rx"].as_f64().unwrap_or(0.0),
    );
    println!(
        "  path used:     {path}: XDP redirected {redirected}, AF_XDP sent {afxdp_tx}, kernel sockets received {socket_rx}"
    );
    println!(
        "  kernel path:   {} first datagrams to a not-yet-resolved neighbour sent through the kernel",
        get("sipd_afxdp_kernel_path_total{reason=\"no_neighbour\"}")
    );
    println!(
        "  latency:       INVITE -> 200 p50 {} us, p99 {} us",
        calls["latency_us"]["invite_to_200"]["p50"], calls["latency_us"]["invite_to_200"]["p99"]
    );
    println!(
        "  sipd stopped on SIGTERM: {}",
        if stopped { "yes" } else { "no (killed)" }
    );
    println!("  sipd log: {}", log_path.display());
    drop(daemon);
    drop(dut);
    drop(peers);
    println!("demo: namespaces and veth removed");
    if calls["completed"].as_u64().unwrap_or(0) == 0 {
        bail!("no call completed: see {}", log_path.display());
    }
    Ok(())
}

fn config_text(mode: &str, iface: &str, dir: &Path) -> String {
    format!(
        r#"[server]
listen = ["{SIPD_IP}:5060"]
tcp = true
record_route = true
domains = ["biloxi.example.com"]
workers = 1

[datapath]
mode = "{mode}"
[[datapath.interfaces]]
name = "{iface}"
queues = [0]

[admin]
listen = "127.0.0.1:9060"

[registrar]
capacity = 10000

[dialogs]
capacity = 100000
records = "{records}"

[[routing.numbers]]
prefix = "+4930"
target = "udp:{UAS_IP}:5060"
"#,
        records = dir.join("calls.jsonl").display()
    )
}

/// Kills the process if the demo fails half-way.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal_term(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

fn wait_exit(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.success();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn check_interrupted(flag: &AtomicBool) -> Result<()> {
    if flag.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

fn wait_for_admin(ns: &Namespace, sipd: &Path, daemon: &mut Daemon, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = daemon.0.try_wait() {
            bail!(
                "sipd exited with {status}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        let ok = ns
            .command(sipd)
            .args(["stats", "--admin", "127.0.0.1:9060", "--raw"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "sipd's admin endpoint did not come up:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    )
}

fn print_log_lines(log: &Path, needles: &[&str]) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    for line in text
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
    {
        println!("sipd: {}", strip_ansi(line));
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn load(ns: &Namespace, sipd: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = ns
        .command(sipd)
        .arg("load")
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .context("running sipd load")?;
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "sipd load {} printed no JSON report (exit {})",
            args[0], out.status
        )
    })
}

fn scrape(ns: &Namespace, sipd: &Path) -> Result<BTreeMap<String, f64>> {
    let out = ns
        .command(sipd)
        .args(["stats", "--admin", "127.0.0.1:9060", "--raw"])
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect())
}

fn sum_prefix(metrics: &BTreeMap<String, f64>, prefix: &str, containing: &str) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(containing))
        .map(|(_, v)| v)
        .sum()
}
