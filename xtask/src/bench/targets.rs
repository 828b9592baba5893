//! The devices under test: sipd on AF_XDP, sipd on kernel sockets, Kamailio, and the AF_XDP
//! reflector (the limit). Each is started in the DUT namespace pinned to the DUT core, waited for
//! until it answers, and stopped again (a `Proc` guard).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde::Serialize;

use super::topo::{self, DUT_IF, DUT_IP, Proc, SIP_PORT, Topology, UAS_IP};

/// Digest credentials of the register-auth scenario (generator and DUT alike).
pub const AUTH_USER: &str = "alice";
pub const AUTH_PASS: &str = "bench-secret";
/// The domain the UAC registers in (and whose users the registrars serve).
pub const DOMAIN: &str = "biloxi.example.com";

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// sipd, `mode = "afxdp"` on the DUT's veth end.
    SipdAfxdp,
    /// sipd, `mode = "socket"` (recvmmsg/sendmmsg).
    SipdSocket,
    /// Kamailio (Debian package), benches/kamailio/kamailio.cfg.
    Kamailio,
    /// `sipd reflect`: AF_XDP, every datagram straight back, no SIP work.
    Limit,
}

impl TargetKind {
    pub const ALL: [TargetKind; 4] = [
        TargetKind::SipdAfxdp,
        TargetKind::SipdSocket,
        TargetKind::Kamailio,
        TargetKind::Limit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TargetKind::SipdAfxdp => "sipd-afxdp",
            TargetKind::SipdSocket => "sipd-socket",
            TargetKind::Kamailio => "kamailio",
            TargetKind::Limit => "limit",
        }
    }

    pub fn is_sipd(self) -> bool {
        matches!(self, TargetKind::SipdAfxdp | TargetKind::SipdSocket)
    }
}

/// What every target needs to start.
pub struct Env<'a> {
    pub root: PathBuf,
    pub sipd: PathBuf,
    pub topo: &'a Topology,
    pub dut_core: usize,
    pub gen_core: usize,
    /// Per-run folder: configs, logs, generator reports.
    pub logdir: PathBuf,
    pub seq: std::cell::Cell<u32>,
}

impl Env<'_> {
    /// A fresh log file stem: `NNN-name`.
    pub fn log_stem(&self, name: &str) -> PathBuf {
        let n = self.seq.get() + 1;
        self.seq.set(n);
        self.logdir.join(format!("{n:03}-{name}"))
    }
}

/// A running device under test.
pub struct Dut {
    pub kind: TargetKind,
    pub proc: Proc,
    kamailio_ctl: Option<String>,
    pub log: PathBuf,
}

/// The admin endpoint inside the DUT namespace (loopback of that namespace).
const ADMIN: &str = "127.0.0.1:9060";

impl Dut {
    /// Starts the target (`auth`: the registrar challenges REGISTER with Digest).
    pub fn start(env: &Env, kind: TargetKind, auth: bool) -> Result<Dut> {
        env.topo.detach_xdp();
        let suffix = if auth { "-auth" } else { "" };
        let stem = env.log_stem(&format!("dut-{}{suffix}", kind.name()));
        let out = stem.with_extension("out");
        let err = stem.with_extension("log");
        let core = Some(env.dut_core);
        let ns = env.topo.dut.as_str();
        match kind {
            TargetKind::SipdAfxdp | TargetKind::SipdSocket => {
                let cfg = stem.with_extension("toml");
                let credentials = if auth {
                    let path = stem.with_extension("credentials");
                    write_credentials(&env.sipd, &path)?;
                    Some(path)
                } else {
                    None
                };
                std::fs::write(
                    &cfg,
                    sipd_config(kind, env.dut_core, credentials.as_deref()),
                )
                .with_context(|| format!("writing {}", cfg.display()))?;
                let args = vec![
                    "run".to_string(),
                    "--config".into(),
                    cfg.display().to_string(),
                ];
                let proc = Proc::spawn(kind.name(), ns, core, &env.sipd, &args, &out, &err)?;
                let mut dut = Dut {
                    kind,
                    proc,
                    kamailio_ctl: None,
                    log: err,
                };
                dut.wait_ready(Duration::from_secs(20), || {
                    sipd_admin(env, &["stats", "--admin", ADMIN, "--raw"]).is_ok()
                })?;
                if kind == TargetKind::SipdAfxdp && !env.topo.xdp_attached() {
                    bail!("sipd started but no XDP program is attached to {DUT_IF}");
                }
                Ok(dut)
            }
            TargetKind::Kamailio => {
                let rundir = stem.with_extension("run");
                std::fs::create_dir_all(&rundir)?;
                let ctl = format!("unix:{}/ctl", rundir.display());
                let cfg = env.root.join("benches/kamailio/kamailio.cfg");
                let mut args: Vec<String> = vec![
                    "-f".into(),
                    cfg.display().to_string(),
                    "-DD".into(),
                    "-E".into(),
                    "-n".into(),
                    "1".into(),
                    "-x".into(),
                    "tlsf".into(),
                    "-X".into(),
                    "tlsf".into(),
                    "-m".into(),
                    "1024".into(),
                    "-M".into(),
                    "32".into(),
                    "-Y".into(),
                    rundir.display().to_string(),
                    "-w".into(),
                    rundir.display().to_string(),
                    "-l".into(),
                    format!("udp:{DUT_IP}:{SIP_PORT}"),
                    "-A".into(),
                    format!("UAS_URI=\"sip:{UAS_IP}:{SIP_PORT}\""),
                    "-A".into(),
                    format!("CTL_SOCK=\"{ctl}\""),
                ];
                if auth {
                    args.extend([
                        "-A".into(),
                        "WITH_AUTH".into(),
                        "-A".into(),
                        format!("AUTH_USER=\"{AUTH_USER}\""),
                        "-A".into(),
                        format!("AUTH_PASS=\"{AUTH_PASS}\""),
                    ]);
                }
                let proc = Proc::spawn(
                    "kamailio",
                    ns,
                    core,
                    Path::new("kamailio"),
                    &args,
                    &out,
                    &err,
                )?;
                let mut dut = Dut {
                    kind,
                    proc,
                    kamailio_ctl: Some(ctl.clone()),
                    log: err,
                };
                dut.wait_ready(Duration::from_secs(20), || {
                    kamcmd_ok(&ctl, &["core.uptime"])
                })?;
                Ok(dut)
            }
            TargetKind::Limit => {
                let args: Vec<String> = [
                    "reflect",
                    "--iface",
                    DUT_IF,
                    "--queues",
                    "0",
                    "--cores",
                    &env.dut_core.to_string(),
                    "--ports",
                    &SIP_PORT.to_string(),
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let proc = Proc::spawn("reflector", ns, core, &env.sipd, &args, &out, &err)?;
                let mut dut = Dut {
                    kind,
                    proc,
                    kamailio_ctl: None,
                    log: err,
                };
                let outfile = out.clone();
                dut.wait_ready(Duration::from_secs(20), move || {
                    std::fs::read_to_string(&outfile)
                        .map(|s| s.contains("\"ready\""))
                        .unwrap_or(false)
                })?;
                Ok(dut)
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration, ready: impl Fn() -> bool) -> Result<()> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.proc.try_status()? {
                bail!(
                    "{} exited ({s}) before it was ready: {}",
                    self.kind.name(),
                    tail(&self.log, 6)
                );
            }
            if ready() {
                return Ok(());
            }
            if Instant::now() > end {
                bail!(
                    "{} not ready after {timeout:?}: {}",
                    self.kind.name(),
                    tail(&self.log, 6)
                );
            }
            topo::sleep(Duration::from_millis(100))?;
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Fails when the DUT has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(s) = self.proc.try_status()? {
            bail!("{} exited ({s}): {}", self.kind.name(), tail(&self.log, 6));
        }
        Ok(())
    }

    /// The DUT's own counters, for the record (sipd: its /metrics text reduced to the totals;
    /// Kamailio: `kamcmd stats.get_statistics core:`).
    pub fn counters(&self, env: &Env) -> Option<serde_json::Value> {
        match self.kind {
            TargetKind::SipdAfxdp | TargetKind::SipdSocket => {
                let text = sipd_admin(env, &["stats", "--admin", ADMIN, "--raw"]).ok()?;
                Some(prometheus_totals(&text))
            }
            TargetKind::Kamailio => {
                let ctl = self.kamailio_ctl.as_deref()?;
                let out = Command::new("kamcmd")
                    .args(["-s", ctl, "stats.get_statistics", "core:"])
                    .stdin(Stdio::null())
                    .output()
                    .ok()?;
                let mut m = serde_json::Map::new();
                for line in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some((k, v)) = line.split_once(" = ") {
                        let k = k.trim().trim_start_matches("core:");
                        let wanted = [
                            "fwd_requests",
                            "fwd_replies",
                            "drop_requests",
                            "drop_replies",
                        ]
                        .contains(&k)
                            || k.starts_with("err_");
                        if wanted && let Ok(v) = v.trim().parse::<u64>() {
                            m.insert(k.to_string(), v.into());
                        }
                    }
                }
                Some(serde_json::Value::Object(m))
            }
            TargetKind::Limit => None,
        }
    }

    pub fn stop(mut self) {
        self.proc.terminate(Duration::from_secs(5));
    }
}

fn kamcmd_ok(ctl: &str, args: &[&str]) -> bool {
    Command::new("kamcmd")
        .args(["-s", ctl])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `sipd <args>` inside the DUT namespace (the admin endpoint listens on its loopback).
fn sipd_admin(env: &Env, args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", &env.topo.dut])
        .arg(&env.sipd)
        .args(args)
        .stdin(Stdio::null())
        .output()?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sums Prometheus samples over workers and queues (the record needs the totals per metric and
/// reason, not every worker's line).
fn prometheus_totals(text: &str) -> serde_json::Value {
    let mut m = std::collections::BTreeMap::<String, f64>::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let k = match key.split_once('{') {
            None => key.to_string(),
            Some((name, labels)) => {
                let kept: Vec<&str> = labels
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|l| {
                        !["worker=", "queue=", "core="]
                            .iter()
                            .any(|p| l.trim().starts_with(p))
                    })
                    .collect();
                if kept.is_empty() {
                    name.to_string()
                } else {
                    format!("{name}{{{}}}", kept.join(","))
                }
            }
        };
        *m.entry(k).or_default() += v;
    }
    serde_json::to_value(m).unwrap_or_default()
}

/// The sipd configuration of a target: listen on the DUT address, one worker pinned to the DUT
/// core, record-route (so a call's ACK and BYE come through, as through Kamailio's rr), the
/// registrar for [`DOMAIN`] (with Digest auth from `credentials` when given), every request for
/// another domain to the UAS.
pub fn sipd_config(kind: TargetKind, core: usize, credentials: Option<&Path>) -> String {
    let mode = if kind == TargetKind::SipdAfxdp {
        "afxdp"
    } else {
        "socket"
    };
    let mut s = format!(
        r#"# Written by `cargo xtask bench` for target {name}.
[server]
listen = ["{DUT_IP}:{SIP_PORT}"]
tcp = false
record_route = true
domains = ["{DOMAIN}"]
workers = 1
cores = [{core}]

[datapath]
mode = "{mode}"
sip_ports = [{SIP_PORT}]
"#,
        name = kind.name()
    );
    if kind == TargetKind::SipdAfxdp {
        s.push_str(&format!(
            "\n[[datapath.interfaces]]\nname = \"{DUT_IF}\"\nqueues = [0]\ncores = [{core}]\n"
        ));
    }
    s.push_str(&format!(
        r#"
[admin]
listen = "{ADMIN}"

[log]
format = "text"
level = "warn"

[routing]
default = "udp:{UAS_IP}:{SIP_PORT}"

[registrar]
# Every REGISTER of the bench is a new AOR: room for a full run's worth.
capacity = 2000000
"#
    ));
    if let Some(c) = credentials {
        s.push_str(&format!(
            // MD5 only: Kamailio's pv_www_authenticate uses MD5 too, and `sipd load uac`
            // answers only the first WWW-Authenticate, and only if it is MD5.
            "\n[auth]\nrealm = \"{DOMAIN}\"\ncredentials = \"{}\"\nalgorithms = [\"MD5\"]\n",
            c.display()
        ));
    }
    s
}

/// `echo PASS | sipd passwd USER DOMAIN > path`: the credentials file of the auth scenario.
fn write_credentials(sipd: &Path, path: &Path) -> Result<()> {
    use std::io::Write as _;
    let mut child = Command::new(sipd)
        .args(["passwd", AUTH_USER, DOMAIN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("sipd passwd")?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{AUTH_PASS}")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sipd passwd: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::write(path, &out.stdout).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

/// Why sipd cannot run the REGISTER scenarios in this build, if it cannot.
pub fn sipd_registrar_missing(root: &Path) -> Option<String> {
    let example = std::fs::read_to_string(root.join("sipd/sipd.example.toml")).unwrap_or_default();
    if example.contains("[registrar]") {
        None
    } else {
        Some(
            "this build has no registrar in `sipd run` (no [registrar] in sipd.example.toml)"
                .into(),
        )
    }
}

/// The last lines of a log file, on one line (for error messages).
pub fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = v.len().saturating_sub(lines);
    format!("{} [{}]", v[start..].join(" | "), path.display())
}
