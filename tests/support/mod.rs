//! Helpers for the root-only datapath tests: a serialising lock, network namespaces with a veth
//! pair that are removed on drop (also when the test panics), running code inside a namespace,
//! and driving the `sipd` binary.
//!
//! Topology of [`TestNet`] (all names carry the test process id, prefixed `sipd-` / `sx`):
//!
//! ```text
//!   netns <ns_a> (sipd side)                 netns <ns_b> (client side)
//!   <if_a>  10.201.0.1/24  fd00:201::1/64 ── <if_b> 10.201.0.2/24, .3/24, fd00:201::2/64
//! ```
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// Address of the sipd side.
pub const A_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
/// First client address.
pub const B_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 2);
/// Second client address.
pub const B2_V4: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 3);
/// IPv6 address of the sipd side.
pub const A_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 1);
/// IPv6 client address.
pub const B_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 2);

/// Why the tests cannot run here, if they cannot (printed, and the test returns early).
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root (network namespaces, veth and XDP need root)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    if !std::path::Path::new("/sys/fs/bpf").exists()
        && !std::path::Path::new("/proc/sys/net/core/bpf_jit_enable").exists()
    {
        return Some("the kernel has no BPF support".into());
    }
    None
}

/// Returns early from a test (with a printed reason) where it cannot run.
#[macro_export]
macro_rules! require_root_or_skip {
    () => {
        if let Some(why) = support::skip_reason() {
            eprintln!("SKIPPED {}: {}", module_path!(), why);
            return;
        }
    };
}

/// Exclusive lock serialising the datapath tests of every test binary of this workspace.
pub struct SerialGuard(File);

/// Takes the lock (blocks until the other tests are done).
pub fn serial() -> SerialGuard {
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(std::env::temp_dir().join("sipd-xdp-tests.lock"))
        .expect("open lock file");
    f.lock().expect("lock");
    SerialGuard(f)
}

/// Runs a command, panicking with its stderr on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair; removed on drop.
pub struct TestNet {
    /// Namespace of the sipd side.
    pub ns_a: String,
    /// Namespace of the clients.
    pub ns_b: String,
    /// Interface in `ns_a`.
    pub if_a: String,
    /// Interface in `ns_b`.
    pub if_b: String,
}

impl TestNet {
    /// Creates the topology in the module docs.
    pub fn new() -> Self {
        let pid = std::process::id();
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let net = TestNet {
            ns_a: format!("sipd-{pid}-{seq}-a"),
            ns_b: format!("sipd-{pid}-{seq}-b"),
            if_a: format!("sx{}{}a", pid % 1_000_000, seq),
            if_b: format!("sx{}{}b", pid % 1_000_000, seq),
        };
        // From here on, drop cleans up whatever was created.
        sh(&["ip", "netns", "add", &net.ns_a]);
        sh(&["ip", "netns", "add", &net.ns_b]);
        sh(&[
            "ip", "link", "add", &net.if_a, "netns", &net.ns_a, "type", "veth", "peer", "name",
            &net.if_b, "netns", &net.ns_b,
        ]);
        let (a, b) = (net.ns_a.as_str(), net.ns_b.as_str());
        sh(&[
            "ip",
            "-n",
            a,
            "addr",
            "add",
            "10.201.0.1/24",
            "dev",
            &net.if_a,
        ]);
        sh(&[
            "ip",
            "-n",
            a,
            "addr",
            "add",
            "fd00:201::1/64",
            "dev",
            &net.if_a,
            "nodad",
        ]);
        sh(&[
            "ip",
            "-n",
            b,
            "addr",
            "add",
            "10.201.0.2/24",
            "dev",
            &net.if_b,
        ]);
        sh(&[
            "ip",
            "-n",
            b,
            "addr",
            "add",
            "10.201.0.3/24",
            "dev",
            &net.if_b,
        ]);
        sh(&[
            "ip",
            "-n",
            b,
            "addr",
            "add",
            "fd00:201::2/64",
            "dev",
            &net.if_b,
            "nodad",
        ]);
        for (ns, ifc) in [(a, net.if_a.as_str()), (b, net.if_b.as_str())] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "link", "set", ifc, "up"]);
        }
        net
    }

    /// Adds an 802.1Q interface with VLAN `id` on the client side, address 10.202.0.2/24, with a
    /// static neighbour entry for 10.202.0.1 at the sipd-side MAC (the sipd side has no VLAN
    /// interface: tagged frames reach only the XDP program). Returns the client address, or
    /// `None` when the kernel has no 802.1Q support (`CONFIG_VLAN_8021Q` off).
    pub fn add_vlan_client(&self, id: u16) -> Option<Ipv4Addr> {
        let name = format!(
            "sv{}{}",
            std::process::id() % 1_000_000,
            SEQ.load(Ordering::Relaxed)
        );
        let b = self.ns_b.as_str();
        let out = Command::new("ip")
            .args([
                "-n", b, "link", "add", "link", &self.if_b, "name", &name, "type", "vlan",
            ])
            .args(["id", &id.to_string()])
            .output()
            .expect("run ip");
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("Unknown device type"),
                "adding VLAN interface: {err}"
            );
            return None;
        }
        sh(&["ip", "-n", b, "addr", "add", "10.202.0.2/24", "dev", &name]);
        sh(&["ip", "-n", b, "link", "set", &name, "up"]);
        let mac = mac_of(&self.ns_a, &self.if_a)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        sh(&[
            "ip",
            "-n",
            b,
            "neigh",
            "replace",
            "10.202.0.1",
            "lladdr",
            &mac,
            "dev",
            &name,
            "nud",
            "permanent",
        ]);
        Some(Ipv4Addr::new(10, 202, 0, 2))
    }

    /// `ip -d link show` of the sipd-side interface.
    pub fn link_a(&self) -> String {
        sh(&["ip", "-n", &self.ns_a, "-d", "link", "show", &self.if_a])
    }

    /// Whether an XDP program is attached to the sipd-side interface.
    pub fn xdp_attached(&self) -> bool {
        let l = self.link_a();
        l.contains("prog/xdp") || l.contains(" xdp") || l.contains("xdpgeneric")
    }

    /// Runs `f` on a thread that has entered namespace `ns` (threads it spawns stay there too).
    pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let fd = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// [`TestNet::in_ns`] in the sipd-side namespace.
    pub fn in_a<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Self::in_ns(&self.ns_a, f)
    }

    /// [`TestNet::in_ns`] in the client namespace.
    pub fn in_b<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Self::in_ns(&self.ns_b, f)
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // Deleting a namespace destroys the veth end inside it, and with it the peer.
        for ns in [&self.ns_a, &self.ns_b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The MAC address of interface `ifc` in namespace `ns`.
pub fn mac_of(ns: &str, ifc: &str) -> [u8; 6] {
    let link = sh(&["ip", "-n", ns, "-o", "link", "show", ifc]);
    let text = link
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .expect("link/ether in ip link output");
    let mut mac = [0u8; 6];
    for (i, part) in text.split(':').enumerate().take(6) {
        mac[i] = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    mac
}

/// Sends `count` datagrams from `from` to `to` one at a time, waiting up to `wait` for each
/// answer; returns the answers (payload, source address).
pub fn ping_pong(
    from: SocketAddr,
    to: SocketAddr,
    count: usize,
    wait: Duration,
) -> Vec<(Vec<u8>, SocketAddr)> {
    let s = UdpSocket::bind(from).expect("bind client");
    s.set_read_timeout(Some(wait)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    for i in 0..count {
        let msg = format!("OPTIONS sip:test SIP/2.0 #{i}");
        s.send_to(msg.as_bytes(), to).expect("send");
        if let Ok((n, src)) = s.recv_from(&mut buf) {
            got.push((buf[..n].to_vec(), src));
        }
    }
    got
}

/// Sends `count` datagrams from `from` back to back, then collects answers until `quiet` passes
/// without one; returns how many came back.
pub fn blast(from: SocketAddr, to: SocketAddr, count: usize, quiet: Duration) -> usize {
    let s = UdpSocket::bind(from).expect("bind client");
    s.set_read_timeout(Some(quiet)).unwrap();
    for i in 0..count {
        s.send_to(format!("burst {i}").as_bytes(), to)
            .expect("send");
    }
    let mut buf = [0u8; 2048];
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && s.recv_from(&mut buf).is_ok() {
        n += 1;
    }
    n
}

/// A kernel UDP echo server on `addr` answering up to `max` datagrams or until `idle` passes
/// without one. Call from inside the namespace; returns once bound.
pub fn spawn_kernel_echo(
    addr: SocketAddr,
    max: usize,
    idle: Duration,
) -> std::thread::JoinHandle<usize> {
    let s = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind echo {addr}: {e}"));
    s.set_read_timeout(Some(idle)).unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0;
        while n < max {
            let Ok((len, src)) = s.recv_from(&mut buf) else {
                break;
            };
            let _ = s.send_to(&buf[..len], src);
            n += 1;
        }
        n
    })
}

/// One ICMP echo round trip over a raw socket from the current namespace; true if answered.
pub fn icmp_ping(to: Ipv4Addr, wait: Duration) -> bool {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)).expect("raw socket");
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let id: u16 = (std::process::id() & 0xffff) as u16;
    let mut pkt = vec![8u8, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&1u16.to_be_bytes());
    pkt.extend_from_slice(b"sipd-ping");
    let c = sipd::wire::checksum::finish(sipd::wire::checksum::sum(&pkt));
    pkt[2..4].copy_from_slice(&c.to_be_bytes());
    s.send_to(&pkt, &SockAddr::from(SocketAddr::new(IpAddr::V4(to), 0)))
        .expect("send icmp");
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        // A raw IPv4 socket reads whole IP packets: header, then ICMP.
        if let Ok(n) = std::io::Read::read(&mut &s, &mut buf) {
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let icmp = &buf[ihl.min(n)..n];
            if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() {
                return true;
            }
        }
    }
    false
}

/// A running `sipd` in a namespace, with its stdout lines on a channel. Killed on drop.
pub struct Sipd {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
}

impl Sipd {
    /// Starts `sipd <args>` inside `ns`.
    pub fn spawn(ns: &str, args: &[&str]) -> Self {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_sipd")])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sipd");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sipd {
            child: Some(child),
            lines: rx,
        }
    }

    /// The process id (`ip netns exec` execs sipd, so this is sipd's).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the first stdout line containing `needle`.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(needle) => return Some(l),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits for `{"event":"ready"...}`, panicking if sipd exits or stalls first.
    pub fn wait_ready(&self) -> serde_json::Value {
        let l = self
            .wait_line("\"ready\"", Duration::from_secs(20))
            .expect("sipd did not report ready");
        serde_json::from_str(&l).expect("ready line is JSON")
    }

    /// SIGTERM, then the final stats line.
    pub fn stop(mut self) -> serde_json::Value {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let l = self
            .wait_line("\"stats\"", Duration::from_secs(10))
            .expect("no final stats");
        let status = self.child.take().unwrap().wait().expect("wait sipd");
        assert!(status.success(), "sipd exited with {status}");
        serde_json::from_str(&l).expect("stats line is JSON")
    }

    /// SIGKILL and reap.
    pub fn kill9(mut self) {
        let mut c = self.child.take().unwrap();
        c.kill().expect("SIGKILL");
        let _ = c.wait();
    }
}

impl Drop for Sipd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
