//! Loads the embedded XDP program, attaches it to an interface and controls its maps.
//!
//! [`XdpDatapath::attach`] loads the object built from `sipd-ebpf`, fills the port and guard maps,
//! and attaches in driver mode, falling back to generic (SKB) mode. The attachment is a `bpf_link`
//! held by the returned value: it goes away when the value is dropped *and* when the process dies
//! by any means (SIGKILL included), because the kernel closes the link's file descriptor. Nothing
//! is pinned.
//!
//! At run time the same value registers AF_XDP sockets in the XSKMAP, reads the per-CPU counters
//! (summed over CPUs) and changes the guard (rate, burst, allow and block prefixes) without
//! reattaching.

mod cidr;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;

use aya::maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, XskMap, lpm_trie::Key};
use aya::programs::{Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
pub use cidr::{Cidr, CidrParseError};
use sipd_common::{Counter, GuardConfig, XDP_PROGRAM_NAME, maps};

/// The XDP object built by `sipd/build.rs` (see `sipd-ebpf`).
pub static XDP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sipd-xdp"));

/// Errors of the loader and map control, naming the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    /// The object could not be loaded (BTF, map creation).
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    /// The verifier or the attach rejected the program.
    #[error("{step}: {source}")]
    Program {
        /// What was being done.
        step: &'static str,
        /// The error from aya.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map operation failed.
    #[error("map {map}: {source}")]
    Map {
        /// The map's name.
        map: &'static str,
        /// The error from aya.
        #[source]
        source: aya::maps::MapError,
    },
    /// A map the program should define is missing (object and code out of step).
    #[error("map {0} missing from the XDP object")]
    MissingMap(&'static str),
    /// sipd was built with `AYA_BUILD_SKIP=1`: no XDP program is embedded.
    #[error(
        "this sipd was built without the XDP program (AYA_BUILD_SKIP); rebuild after `cargo xtask setup`"
    )]
    NotBuilt,
    /// The program is missing from the object.
    #[error("program {0} missing from the XDP object")]
    MissingProgram(&'static str),
}

type Result<T> = std::result::Result<T, XdpError>;

/// How to attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Driver (native) mode, falling back to SKB mode when the driver refuses.
    #[default]
    Auto,
    /// Driver mode only.
    Driver,
    /// Generic (SKB) mode only.
    Skb,
}

/// The mode the program ended up attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachedMode {
    /// Native XDP (`ip link` shows `xdp`).
    Driver,
    /// Generic XDP (`ip link` shows `xdpgeneric`).
    Skb,
}

/// Per-source guard settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardSettings {
    /// Datagrams per second per source; 0 disables rate limiting.
    pub rate_pps: u32,
    /// Bucket depth in datagrams.
    pub burst: u32,
    /// Sources exempt from rate limiting.
    pub allow: Vec<Cidr>,
    /// Sources always dropped (checked before the allow list).
    pub block: Vec<Cidr>,
}

/// What to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// Interface to attach to.
    pub iface: String,
    /// UDP destination ports steered to AF_XDP.
    pub sip_ports: Vec<u16>,
    /// The guard.
    pub guard: GuardSettings,
    /// Attach mode preference.
    pub mode: AttachMode,
}

impl XdpConfig {
    /// Port 5060, no guard, automatic mode.
    pub fn new(iface: impl Into<String>) -> Self {
        XdpConfig {
            iface: iface.into(),
            sip_ports: vec![sipd_common::SIP_DEFAULT_PORT],
            guard: GuardSettings::default(),
            mode: AttachMode::Auto,
        }
    }
}

/// Counters of the XDP program, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpCounters {
    /// Redirected to AF_XDP.
    pub redirected: u64,
    /// Passed to the kernel.
    pub passed: u64,
    /// Dropped by the block list.
    pub guard_blocked: u64,
    /// Dropped by the rate limit.
    pub guard_rate_limited: u64,
    /// Aborted as malformed.
    pub malformed: u64,
    /// SIP-port datagrams with no AF_XDP socket on their queue (passed).
    pub no_socket: u64,
}

impl XdpCounters {
    /// Datagrams dropped by the guard, both reasons.
    pub fn guard_dropped(&self) -> u64 {
        self.guard_blocked + self.guard_rate_limited
    }

    /// `(name, value)` pairs in the program's index order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
        Counter::ALL.into_iter().map(|c| (c.name(), self.get(c)))
    }

    /// One counter.
    pub fn get(&self, c: Counter) -> u64 {
        match c {
            Counter::Redirected => self.redirected,
            Counter::Passed => self.passed,
            Counter::GuardBlocked => self.guard_blocked,
            Counter::GuardRateLimited => self.guard_rate_limited,
            Counter::Malformed => self.malformed,
            Counter::NoSocket => self.no_socket,
        }
    }

    fn set(&mut self, c: Counter, v: u64) {
        match c {
            Counter::Redirected => self.redirected = v,
            Counter::Passed => self.passed = v,
            Counter::GuardBlocked => self.guard_blocked = v,
            Counter::GuardRateLimited => self.guard_rate_limited = v,
            Counter::Malformed => self.malformed = v,
            Counter::NoSocket => self.no_socket = v,
        }
    }
}

/// The loaded and attached program. Dropping it detaches the program.
pub struct XdpDatapath {
    ebpf: Ebpf,
    iface: String,
    mode: AttachedMode,
}

impl std::fmt::Debug for XdpDatapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpDatapath")
            .field("iface", &self.iface)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl XdpDatapath {
    /// Loads the embedded program, configures its maps, attaches it to `cfg.iface`.
    pub fn attach(cfg: &XdpConfig) -> Result<Self> {
        if XDP_OBJECT.is_empty() {
            return Err(XdpError::NotBuilt);
        }
        let ebpf = EbpfLoader::new().load(XDP_OBJECT)?;
        let mut dp = XdpDatapath {
            ebpf,
            iface: cfg.iface.clone(),
            mode: AttachedMode::Skb,
        };
        dp.set_ports(&cfg.sip_ports)?;
        dp.set_rate(cfg.guard.rate_pps, cfg.guard.burst)?;
        for c in &cfg.guard.allow {
            dp.allow(*c)?;
        }
        for c in &cfg.guard.block {
            dp.block(*c)?;
        }

        let prog: &mut Xdp = dp
            .ebpf
            .program_mut(XDP_PROGRAM_NAME)
            .ok_or(XdpError::MissingProgram(XDP_PROGRAM_NAME))?
            .try_into()
            .map_err(|source| XdpError::Program {
                step: "program type",
                source,
            })?;
        prog.load().map_err(|source| XdpError::Program {
            step: "loading (verifier)",
            source,
        })?;
        dp.mode = match cfg.mode {
            AttachMode::Driver => {
                attach_one(prog, &cfg.iface, XdpMode::Driver)?;
                AttachedMode::Driver
            }
            AttachMode::Skb => {
                attach_one(prog, &cfg.iface, XdpMode::Skb)?;
                AttachedMode::Skb
            }
            AttachMode::Auto => match attach_one(prog, &cfg.iface, XdpMode::Driver) {
                Ok(()) => AttachedMode::Driver,
                Err(e) => {
                    tracing::warn!(iface = %cfg.iface, error = %e,
                        "driver-mode XDP refused, falling back to SKB (generic) mode");
                    attach_one(prog, &cfg.iface, XdpMode::Skb)?;
                    AttachedMode::Skb
                }
            },
        };
        tracing::info!(iface = %cfg.iface, mode = ?dp.mode, ports = ?cfg.sip_ports,
            rate_pps = cfg.guard.rate_pps, burst = cfg.guard.burst, "XDP program attached");
        Ok(dp)
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    fn map(&mut self, name: &'static str) -> Result<&mut aya::maps::Map> {
        self.ebpf.map_mut(name).ok_or(XdpError::MissingMap(name))
    }

    fn lpm(&mut self, name: &'static str) -> Result<LpmTrie<&mut MapData, [u8; 16], u8>> {
        LpmTrie::try_from(self.map(name)?).map_err(|source| XdpError::Map { map: name, source })
    }

    /// Replaces the set of steered UDP ports.
    pub fn set_ports(&mut self, ports: &[u16]) -> Result<()> {
        let name = maps::SIP_PORTS;
        let mut m: HashMap<_, u16, u8> = HashMap::try_from(self.map(name)?)
            .map_err(|source| XdpError::Map { map: name, source })?;
        let old: Vec<u16> = m.keys().filter_map(|k| k.ok()).collect();
        for p in ports {
            m.insert(*p, 1, 0)
                .map_err(|source| XdpError::Map { map: name, source })?;
        }
        for p in old.into_iter().filter(|p| !ports.contains(p)) {
            m.remove(&p)
                .map_err(|source| XdpError::Map { map: name, source })?;
        }
        Ok(())
    }

    /// Sets the per-source rate (datagrams/s, 0 = off) and burst. Existing buckets keep their
    /// tokens and refill at the new rate up to the new burst.
    pub fn set_rate(&mut self, rate_pps: u32, burst: u32) -> Result<()> {
        let name = maps::GUARD_CONFIG;
        let mut m: Array<_, GuardConfig> = Array::try_from(self.map(name)?)
            .map_err(|source| XdpError::Map { map: name, source })?;
        m.set(0, GuardConfig { rate_pps, burst }, 0)
            .map_err(|source| XdpError::Map { map: name, source })
    }

    /// Adds a prefix to the allow list (exempt from rate limiting).
    pub fn allow(&mut self, c: Cidr) -> Result<()> {
        self.lpm_insert(maps::GUARD_ALLOW, c)
    }

    /// Removes a prefix from the allow list (exact prefix).
    pub fn disallow(&mut self, c: Cidr) -> Result<()> {
        self.lpm_remove(maps::GUARD_ALLOW, c)
    }

    /// Adds a prefix to the block list.
    pub fn block(&mut self, c: Cidr) -> Result<()> {
        self.lpm_insert(maps::GUARD_BLOCK, c)
    }

    /// Removes a prefix from the block list (exact prefix).
    pub fn unblock(&mut self, c: Cidr) -> Result<()> {
        self.lpm_remove(maps::GUARD_BLOCK, c)
    }

    fn lpm_insert(&mut self, name: &'static str, c: Cidr) -> Result<()> {
        let (bits, data) = c.lpm_key();
        self.lpm(name)?
            .insert(&Key::new(bits, data), 1, 0)
            .map_err(|source| XdpError::Map { map: name, source })
    }

    fn lpm_remove(&mut self, name: &'static str, c: Cidr) -> Result<()> {
        let (bits, data) = c.lpm_key();
        self.lpm(name)?
            .remove(&Key::new(bits, data))
            .map_err(|source| XdpError::Map { map: name, source })
    }

    /// Applies a whole guard configuration (a reload): the rate and burst, and the allow and
    /// block lists made equal to `guard`'s (prefixes added and removed one by one; the program
    /// stays attached and keeps running).
    pub fn set_guard(&mut self, guard: &GuardSettings) -> Result<()> {
        self.set_rate(guard.rate_pps, guard.burst)?;
        let lists = self.guard_lists()?;
        let current = |name: &str| lists.get(name).cloned().unwrap_or_default();
        let (allowed, blocked) = (current(maps::GUARD_ALLOW), current(maps::GUARD_BLOCK));
        for c in guard.allow.iter().filter(|c| !allowed.contains(c)) {
            self.allow(*c)?;
        }
        for c in allowed.iter().filter(|c| !guard.allow.contains(c)) {
            self.disallow(*c)?;
        }
        for c in guard.block.iter().filter(|c| !blocked.contains(c)) {
            self.block(*c)?;
        }
        for c in blocked.iter().filter(|c| !guard.block.contains(c)) {
            self.unblock(*c)?;
        }
        Ok(())
    }

    /// Forgets every per-source bucket (sources start again with a full burst).
    pub fn reset_buckets(&mut self) -> Result<()> {
        let name = maps::GUARD_BUCKETS;
        let mut m: HashMap<_, sipd_common::AddrKey, sipd_common::TokenBucket> =
            HashMap::try_from(self.map(name)?)
                .map_err(|source| XdpError::Map { map: name, source })?;
        let keys: Vec<_> = m.keys().filter_map(|k| k.ok()).collect();
        for k in keys {
            // An entry the LRU evicted meanwhile is already gone.
            let _ = m.remove(&k);
        }
        Ok(())
    }

    /// Puts the AF_XDP socket `fd` bound to RX queue `queue` into the XSKMAP.
    pub fn register_socket(&mut self, queue: u32, fd: impl AsRawFd) -> Result<()> {
        let name = maps::XSKS;
        let mut m = XskMap::try_from(self.map(name)?)
            .map_err(|source| XdpError::Map { map: name, source })?;
        m.set(queue, fd, 0)
            .map_err(|source| XdpError::Map { map: name, source })
    }

    /// Removes queue `queue`'s socket from the XSKMAP (its datagrams then go to the kernel).
    pub fn unregister_socket(&mut self, queue: u32) -> Result<()> {
        let name = maps::XSKS;
        let mut m = XskMap::try_from(self.map(name)?)
            .map_err(|source| XdpError::Map { map: name, source })?;
        m.unset(queue)
            .map_err(|source| XdpError::Map { map: name, source })
    }

    /// Reads the counters, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters> {
        let name = maps::COUNTERS;
        let map = self.ebpf.map(name).ok_or(XdpError::MissingMap(name))?;
        let arr: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| XdpError::Map { map: name, source })?;
        let mut out = XdpCounters::default();
        for c in Counter::ALL {
            let v = arr
                .get(&(c as u32), 0)
                .map_err(|source| XdpError::Map { map: name, source })?;
            out.set(c, v.iter().copied().sum());
        }
        Ok(out)
    }

    /// The allow and block lists as currently in the maps, for logs and tests.
    pub fn guard_lists(&self) -> Result<BTreeMap<&'static str, Vec<Cidr>>> {
        let mut out = BTreeMap::new();
        for name in [maps::GUARD_ALLOW, maps::GUARD_BLOCK] {
            let map = self.ebpf.map(name).ok_or(XdpError::MissingMap(name))?;
            let t: LpmTrie<_, [u8; 16], u8> =
                LpmTrie::try_from(map).map_err(|source| XdpError::Map { map: name, source })?;
            let list = t
                .keys()
                .filter_map(|k| k.ok())
                .map(|k| Cidr::from_lpm_key(k.prefix_len(), k.data()))
                .collect();
            out.insert(name, list);
        }
        Ok(out)
    }
}

fn attach_one(prog: &mut Xdp, iface: &str, mode: XdpMode) -> Result<()> {
    prog.attach(iface, mode)
        .map(|_link| ())
        .map_err(|source| XdpError::Program {
            step: match mode {
                XdpMode::Driver => "attaching in driver mode",
                _ => "attaching in SKB mode",
            },
            source,
        })
}
