//! Types shared by the XDP program (`sipd-ebpf`) and userspace (`sipd`).
//!
//! Everything here is `#[repr(C)]` plain data so both sides agree on the layout of map keys and
//! values byte for byte. The token-bucket arithmetic lives here too, as a plain function, so the
//! exact code the XDP program runs is unit-tested on the host.
#![no_std]

/// Default SIP port (RFC 3261 §19.1.2).
pub const SIP_DEFAULT_PORT: u16 = 5060;

/// Map names in the eBPF object (the `#[map]` statics of `sipd-ebpf`); userspace looks them up by
/// these names.
pub mod maps {
    /// `HashMap<u16, u8>`: UDP destination ports (host byte order) steered to AF_XDP.
    pub const SIP_PORTS: &str = "SIP_PORTS";
    /// `XskMap`: AF_XDP socket per RX queue index.
    pub const XSKS: &str = "XSKS";
    /// `Array<GuardConfig>` with one entry.
    pub const GUARD_CONFIG: &str = "GUARD_CONFIG";
    /// `LruHashMap<AddrKey, TokenBucket>`: per-source token buckets.
    pub const GUARD_BUCKETS: &str = "GUARD_BUCKETS";
    /// `LpmTrie<[u8; 16], u8>`: sources never rate limited (IPv4 as `::ffff:a.b.c.d`).
    pub const GUARD_ALLOW: &str = "GUARD_ALLOW";
    /// `LpmTrie<[u8; 16], u8>`: sources always dropped (IPv4 as `::ffff:a.b.c.d`).
    pub const GUARD_BLOCK: &str = "GUARD_BLOCK";
    /// `PerCpuArray<u64>` indexed by [`super::Counter`].
    pub const COUNTERS: &str = "COUNTERS";
}

/// Name of the XDP program in the object.
pub const XDP_PROGRAM_NAME: &str = "sipd_xdp";

/// Capacity of the maps (entries).
pub const MAX_SIP_PORTS: u32 = 16;
/// Capacity of the XSKMAP: one entry per RX queue.
pub const MAX_QUEUES: u32 = 64;
/// Capacity of the per-source bucket LRU map.
pub const MAX_GUARD_SOURCES: u32 = 65_536;
/// Capacity of each allow/block LPM trie.
pub const MAX_GUARD_PREFIXES: u32 = 4_096;

/// Per-CPU counters kept by the XDP program, index into [`maps::COUNTERS`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// SIP-port UDP datagrams redirected to an AF_XDP socket.
    Redirected = 0,
    /// Frames handed to the kernel stack (not SIP over UDP, fragments, other ports).
    Passed = 1,
    /// SIP-port datagrams dropped because their source is on the block list.
    GuardBlocked = 2,
    /// SIP-port datagrams dropped because their source exceeded its token bucket.
    GuardRateLimited = 3,
    /// Frames whose IPv4/IPv6/UDP headers are truncated or inconsistent (aborted).
    Malformed = 4,
    /// SIP-port datagrams for which no AF_XDP socket is registered on the RX queue (passed).
    NoSocket = 5,
}

impl Counter {
    /// Number of counters (the size of the per-CPU array).
    pub const COUNT: u32 = 6;
    /// All counters in index order.
    pub const ALL: [Counter; Self::COUNT as usize] = [
        Counter::Redirected,
        Counter::Passed,
        Counter::GuardBlocked,
        Counter::GuardRateLimited,
        Counter::Malformed,
        Counter::NoSocket,
    ];

    /// A short snake_case name, for logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::Redirected => "redirected",
            Counter::Passed => "passed",
            Counter::GuardBlocked => "guard_blocked",
            Counter::GuardRateLimited => "guard_rate_limited",
            Counter::Malformed => "malformed",
            Counter::NoSocket => "no_socket",
        }
    }
}

/// Scale of [`TokenBucket::nanotokens`]: one token is `NANOS_PER_TOKEN` nanotokens, so refilling
/// is `elapsed_ns * rate` with no division (the verifier and the fast path both like that).
pub const NANOS_PER_TOKEN: u64 = 1_000_000_000;

/// Longest idle time credited in one refill; bounds `elapsed_ns * rate` far below `u64::MAX` for
/// any rate up to `u32::MAX` per second.
pub const MAX_REFILL_NS: u64 = 4 * NANOS_PER_TOKEN;

/// Guard settings, one entry in [`maps::GUARD_CONFIG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardConfig {
    /// Sustained datagrams per second allowed per source; 0 disables rate limiting.
    pub rate_pps: u32,
    /// Bucket depth in datagrams (a new source starts full).
    pub burst: u32,
}

/// Per-source token bucket, the value of [`maps::GUARD_BUCKETS`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens available, in units of 1/[`NANOS_PER_TOKEN`] of a datagram.
    pub nanotokens: u64,
    /// `bpf_ktime_get_ns()` of the last refill.
    pub last_ns: u64,
}

impl TokenBucket {
    /// A full bucket for a source first seen at `now_ns`.
    #[inline(always)]
    pub const fn full(cfg: &GuardConfig, now_ns: u64) -> Self {
        TokenBucket {
            nanotokens: cfg.burst as u64 * NANOS_PER_TOKEN,
            last_ns: now_ns,
        }
    }

    /// Refills for the time since the last call and takes one token. Returns whether the datagram
    /// is within the rate. A clock that went backwards credits nothing.
    #[inline(always)]
    pub fn take(&mut self, cfg: &GuardConfig, now_ns: u64) -> bool {
        let cap = cfg.burst as u64 * NANOS_PER_TOKEN;
        let mut elapsed = now_ns.saturating_sub(self.last_ns);
        if elapsed > MAX_REFILL_NS {
            elapsed = MAX_REFILL_NS;
        }
        let mut tokens = self.nanotokens + elapsed * cfg.rate_pps as u64;
        if tokens > cap {
            tokens = cap;
        }
        self.last_ns = now_ns;
        if tokens >= NANOS_PER_TOKEN {
            self.nanotokens = tokens - NANOS_PER_TOKEN;
            true
        } else {
            self.nanotokens = tokens;
            false
        }
    }
}

/// A source address as a map key: IPv6 as is, IPv4 as the mapped address `::ffff:a.b.c.d`, so
/// one map (and one LPM trie per list) serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AddrKey {
    /// Address bytes in network order.
    pub addr: [u8; 16],
}

impl AddrKey {
    /// The IPv4-mapped key of a network-order IPv4 address.
    #[inline(always)]
    pub const fn from_v4(octets: [u8; 4]) -> Self {
        AddrKey {
            addr: [
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, octets[0], octets[1], octets[2],
                octets[3],
            ],
        }
    }

    /// The key of an IPv6 address.
    #[inline(always)]
    pub const fn from_v6(octets: [u8; 16]) -> Self {
        AddrKey { addr: octets }
    }
}

/// Prefix length of an IPv4 CIDR in the mapped-address tries (`/n` becomes `/96+n`).
pub const V4_MAPPED_PREFIX_OFFSET: u32 = 96;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `#[repr(C)]` structs of integers with no padding and no invalid bit patterns.
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for super::GuardConfig {}
    // SAFETY: as above: two u64, no padding.
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for super::TokenBucket {}
    // SAFETY: as above: a byte array.
    #[allow(unsafe_code)]
    unsafe impl aya::Pod for super::AddrKey {}
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NANOS_PER_TOKEN;

    #[test]
    fn bucket_starts_full_and_empties() {
        let cfg = GuardConfig {
            rate_pps: 10,
            burst: 3,
        };
        let mut b = TokenBucket::full(&cfg, 1_000);
        assert!(b.take(&cfg, 1_000));
        assert!(b.take(&cfg, 1_000));
        assert!(b.take(&cfg, 1_000));
        assert!(!b.take(&cfg, 1_000));
        // 10 per second: one token every 100 ms.
        assert!(!b.take(&cfg, 1_000 + S / 10 - 1));
        assert!(b.take(&cfg, 1_000 + S / 10 + 1));
        assert!(!b.take(&cfg, 1_000 + S / 10 + 2));
    }

    #[test]
    fn bucket_caps_at_burst_and_survives_long_idle_and_clock_skew() {
        let cfg = GuardConfig {
            rate_pps: u32::MAX,
            burst: 2,
        };
        let mut b = TokenBucket::full(&cfg, 0);
        assert!(b.take(&cfg, u64::MAX / 2));
        assert!(b.take(&cfg, u64::MAX / 2));
        // Clock went backwards: no credit, no overflow.
        let cfg = GuardConfig {
            rate_pps: 1,
            burst: 1,
        };
        let mut b = TokenBucket {
            nanotokens: 0,
            last_ns: 10 * S,
        };
        assert!(!b.take(&cfg, S));
        assert_eq!(b.last_ns, S);
        assert!(b.take(&cfg, 2 * S));
    }

    #[test]
    fn zero_burst_never_passes() {
        let cfg = GuardConfig {
            rate_pps: 1000,
            burst: 0,
        };
        let mut b = TokenBucket::full(&cfg, 0);
        assert!(!b.take(&cfg, S));
    }

    #[test]
    fn mapped_v4_key() {
        assert_eq!(
            AddrKey::from_v4([10, 0, 0, 1]).addr,
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]
        );
        assert_eq!(Counter::ALL.len() as u32, Counter::COUNT);
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as u32, i as u32);
        }
    }
}
