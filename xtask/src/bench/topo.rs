//! The bench's topology and the processes in it, and how all of it goes away again.
//!
//! Two network namespaces joined by one veth pair, every address inside them:
//!
//! ```text
//!   sipd-bench-<pid>-peers                 sipd-bench-<pid>-dut
//!   10.77.0.1 (UAC, blast)                 10.77.0.2 (sipd, Kamailio or the reflector)
//!   10.77.0.3 (UAS)        vpeers ====== vdut
//! ```
//!
//! AF_XDP transmits on the interface it received on, so the generator's two sides share the one
//! "peers" end and the device under test (DUT) serves everything on the other end.
//!
//! Cleanup: every namespace and child process is recorded in a process-wide registry the moment
//! it exists. Guards (`Topology`, `Proc`) undo their part on drop (normal end, error, panic); a
//! signal thread turns the first SIGINT/SIGTERM into a stop request that every wait loop checks,
//! and a second signal (or a main thread that does not finish within a few seconds) empties the
//! registry itself and exits. Deleting a namespace also takes its veth end with it; an XDP
//! program goes away with the process that holds its link, and is detached explicitly too.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const PEERS_IF: &str = "vpeers";
pub const DUT_IF: &str = "vdut";
pub const UAC_IP: &str = "10.77.0.1";
pub const DUT_IP: &str = "10.77.0.2";
pub const UAS_IP: &str = "10.77.0.3";
pub const SIP_PORT: u16 = 5060;

/// Set by the first SIGINT/SIGTERM: every wait loop gives up and the guards clean up.
static STOP: AtomicBool = AtomicBool::new(false);

/// Nice value every DUT and generator process starts with (`--nice`).
static NICE: AtomicI32 = AtomicI32::new(0);

/// Sets the nice value of every process started from now on (-20..=19; 0: as inherited).
pub fn set_nice(n: i32) {
    NICE.store(n.clamp(-20, 19), Ordering::Relaxed);
}

#[derive(Default)]
struct Registry {
    pids: BTreeSet<i32>,
    netns: BTreeSet<String>,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

fn with_registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut r = registry().lock().unwrap_or_else(|e| e.into_inner());
    f(&mut r)
}

pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Fails when a stop was requested (for loops that do not otherwise wait).
pub fn check_stop() -> Result<()> {
    if stop_requested() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps up to `d`, returning early (with an error) on a stop request.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_stop()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Installs the SIGINT/SIGTERM thread (once).
pub fn install_signal_handler() -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("signal handler")?;
    std::thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if STOP.swap(true, Ordering::SeqCst) {
                    eprintln!("\nxtask bench: second signal, cleaning up now");
                    emergency_cleanup();
                    std::process::exit(128 + sig);
                }
                eprintln!("\nxtask bench: signal {sig}: stopping and cleaning up");
                // The main thread notices within ~50 ms; if it is stuck somewhere, do it here.
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(15));
                    eprintln!("xtask bench: main thread did not finish, cleaning up");
                    emergency_cleanup();
                    std::process::exit(128 + sig);
                });
            }
        })
        .context("signal thread")?;
    Ok(())
}

/// Kills every registered child and deletes every registered namespace.
fn emergency_cleanup() {
    let (pids, netns) = with_registry(|r| (r.pids.clone(), r.netns.clone()));
    for pid in pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    for ns in netns {
        delete_netns(&ns);
    }
}

/// `ip <args>`, quietly; fails with ip's own message.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn ip_output(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Kills what still runs in the namespace, then deletes it (its veth end goes with it).
fn delete_netns(ns: &str) {
    if let Ok(pids) = ip_output(&["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// The two namespaces and the veth pair; deleted on drop.
pub struct Topology {
    pub peers: String,
    pub dut: String,
}

impl Topology {
    pub fn create() -> Result<Topology> {
        let pid = std::process::id();
        let topo = Topology {
            peers: format!("sipd-bench-{pid}-peers"),
            dut: format!("sipd-bench-{pid}-dut"),
        };
        for ns in [&topo.peers, &topo.dut] {
            with_registry(|r| r.netns.insert(ns.clone()));
            ip(&["netns", "add", ns])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        let (p, d) = (topo.peers.as_str(), topo.dut.as_str());
        ip(&[
            "-n", p, "link", "add", PEERS_IF, "type", "veth", "peer", "name", DUT_IF, "netns", d,
        ])?;
        ip(&[
            "-n",
            p,
            "addr",
            "add",
            &format!("{UAC_IP}/24"),
            "dev",
            PEERS_IF,
        ])?;
        ip(&[
            "-n",
            p,
            "addr",
            "add",
            &format!("{UAS_IP}/24"),
            "dev",
            PEERS_IF,
        ])?;
        ip(&[
            "-n",
            d,
            "addr",
            "add",
            &format!("{DUT_IP}/24"),
            "dev",
            DUT_IF,
        ])?;
        ip(&["-n", p, "link", "set", PEERS_IF, "up"])?;
        ip(&["-n", d, "link", "set", DUT_IF, "up"])?;
        // Permanent neighbours both ways: no ARP in the measurement, and the AF_XDP datapath
        // finds the peer's MAC in the kernel's table from the first packet on.
        let peers_mac = mac(p, PEERS_IF)?;
        let dut_mac = mac(d, DUT_IF)?;
        for a in [UAC_IP, UAS_IP] {
            ip(&[
                "-n",
                d,
                "neigh",
                "replace",
                a,
                "lladdr",
                &peers_mac,
                "dev",
                DUT_IF,
                "nud",
                "permanent",
            ])?;
        }
        ip(&[
            "-n",
            p,
            "neigh",
            "replace",
            DUT_IP,
            "lladdr",
            &dut_mac,
            "dev",
            PEERS_IF,
            "nud",
            "permanent",
        ])?;
        Ok(topo)
    }

    /// Removes any XDP program left on the DUT's veth end (normally gone with its process).
    pub fn detach_xdp(&self) {
        for mode in ["xdp", "xdpgeneric", "xdpdrv"] {
            let _ = ip(&["-n", &self.dut, "link", "set", "dev", DUT_IF, mode, "off"]);
        }
    }

    /// Whether an XDP program is attached to the DUT's veth end.
    pub fn xdp_attached(&self) -> bool {
        ip_output(&["-n", &self.dut, "link", "show", DUT_IF])
            .map(|s| s.contains(" xdp") || s.contains("prog/xdp"))
            .unwrap_or(false)
    }
}

fn mac(ns: &str, dev: &str) -> Result<String> {
    let s = ip_output(&["-n", ns, "link", "show", dev])?;
    s.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_string)
        .with_context(|| format!("no MAC on {dev} in {ns}"))
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.detach_xdp();
        for ns in [&self.dut, &self.peers] {
            delete_netns(ns);
            with_registry(|r| r.netns.remove(ns));
        }
    }
}

/// A child process started inside a namespace (optionally pinned); terminated on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    status: Option<ExitStatus>,
}

impl Proc {
    /// `ip netns exec NS [setsid sh -c 'autogroup nice; exec nice -n N' ...] [taskset -c CORE]
    /// program args...`, stdout and stderr to the files. Each step execs the next program, so
    /// the pid is the program's; its threads and children inherit the priority and the pinning.
    pub fn spawn(
        name: &str,
        ns: &str,
        core: Option<usize>,
        program: &Path,
        args: &[String],
        stdout: &Path,
        stderr: &Path,
    ) -> Result<Proc> {
        check_stop()?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]);
        let nice = NICE.load(Ordering::Relaxed);
        if nice != 0 {
            // With autogroup scheduling (on by default) a nice value only weighs within the
            // session's group, and every other session (a build, a fuzzer) weighs as much as the
            // whole bench: so start a session of its own and give its group the nice value too.
            // None of these fork (the child is no process group leader): the pid stays the
            // program's.
            cmd.args([
                "setsid",
                "sh",
                "-c",
                r#"echo "$0" > /proc/self/autogroup 2>/dev/null; exec nice -n "$0" "$@""#,
                &nice.to_string(),
            ]);
        }
        if let Some(c) = core {
            cmd.args(["taskset", "-c", &c.to_string()]);
        }
        cmd.arg(program).args(args);
        cmd.stdin(Stdio::null())
            .stdout(File::create(stdout).with_context(|| format!("{}", stdout.display()))?)
            .stderr(File::create(stderr).with_context(|| format!("{}", stderr.display()))?);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {}", program.display()))?;
        with_registry(|r| r.pids.insert(child.id() as i32));
        Ok(Proc {
            name: name.to_string(),
            child,
            status: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
            if self.status.is_some() {
                with_registry(|r| r.pids.remove(&(self.child.id() as i32)));
            }
        }
        Ok(self.status)
    }

    /// Waits for the exit, at most `timeout` (then kills it and fails).
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let end = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_status()? {
                return Ok(s);
            }
            if Instant::now() >= end {
                self.terminate(Duration::from_secs(1));
                bail!("{} did not finish within {timeout:?}", self.name);
            }
            if stop_requested() {
                self.terminate(Duration::from_secs(1));
                bail!("interrupted");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if matches!(self.try_status(), Ok(Some(_))) {
            return;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let end = Instant::now() + grace;
        while Instant::now() < end {
            if matches!(self.try_status(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.status = None;
        with_registry(|r| r.pids.remove(&(self.child.id() as i32)));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(3));
    }
}

/// CPU time (user + system, in clock ticks) of a process and all its descendants.
pub fn tree_ticks(root: u32) -> u64 {
    let mut stats: Vec<(u32, u32, u64)> = Vec::new(); // pid, ppid, ticks
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, t)) = proc_stat(pid) {
                stats.push((pid, ppid, t));
            }
        }
    }
    let mut set = BTreeSet::from([root]);
    // Parents may be listed after their children: repeat until nothing is added.
    loop {
        let before = set.len();
        for &(pid, ppid, _) in &stats {
            if set.contains(&ppid) {
                set.insert(pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    stats
        .iter()
        .filter(|(pid, _, _)| set.contains(pid))
        .map(|(_, _, t)| t)
        .sum()
}

/// (ppid, utime + stime) from /proc/PID/stat.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After "(comm)": [0] state, [1] ppid, ..., [11] utime, [12] stime.
    let ppid = f.get(1)?.parse().ok()?;
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ppid, ut + st))
}

pub fn clk_tck() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |v| v as f64)
}

/// (busy, total) jiffies of one CPU from /proc/stat; busy excludes idle and iowait, so it
/// includes softirq work done on that core for other processes.
pub fn core_jiffies(core: usize) -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let name = format!("cpu{core}");
    for line in s.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(name.as_str()) {
            let v: Vec<u64> = it.filter_map(|x| x.parse().ok()).collect();
            let total: u64 = v.iter().sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            return (total - idle, total);
        }
    }
    (0, 0)
}

/// CPU use of a process tree and of the DUT's core over an interval.
pub struct CpuMeter {
    pid: u32,
    core: usize,
    ticks: u64,
    core0: (u64, u64),
    t0: Instant,
}

/// Busy % of one core between two [`core_jiffies`] readings.
pub fn core_busy_pct(before: (u64, u64), after: (u64, u64)) -> f64 {
    let (db, dt) = (
        after.0.saturating_sub(before.0),
        after.1.saturating_sub(before.1),
    );
    if dt > 0 {
        round1(db as f64 / dt as f64 * 100.0)
    } else {
        0.0
    }
}

impl CpuMeter {
    pub fn start(pid: u32, core: usize) -> CpuMeter {
        CpuMeter {
            pid,
            core,
            ticks: tree_ticks(pid),
            core0: core_jiffies(core),
            t0: Instant::now(),
        }
    }

    /// (process tree CPU in % of one core, DUT core busy %) since start.
    pub fn read(&self) -> (f64, f64) {
        let secs = self.t0.elapsed().as_secs_f64().max(1e-3);
        let ticks = tree_ticks(self.pid).saturating_sub(self.ticks);
        let proc_pct = ticks as f64 / clk_tck() / secs * 100.0;
        let core_pct = core_busy_pct(self.core0, core_jiffies(self.core));
        (round1(proc_pct), core_pct)
    }
}

pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// UDP counters of a namespace's kernel (from its /proc/net/snmp): where datagrams were lost.
pub fn udp_counters(ns: &str) -> std::collections::BTreeMap<String, u64> {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/snmp"])
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let udp: Vec<&str> = out.lines().filter(|l| l.starts_with("Udp: ")).collect();
    let mut m = std::collections::BTreeMap::new();
    if let [names, values] = udp[..] {
        for (k, v) in names
            .split_whitespace()
            .zip(values.split_whitespace())
            .skip(1)
        {
            if [
                "InDatagrams",
                "NoPorts",
                "InErrors",
                "RcvbufErrors",
                "SndbufErrors",
            ]
            .contains(&k)
                && let Ok(v) = v.parse()
            {
                m.insert(k.to_string(), v);
            }
        }
    }
    m
}
