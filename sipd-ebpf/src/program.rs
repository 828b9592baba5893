//! The program itself (only compiled for the BPF target).

use core::mem;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::bpf_ktime_get_ns,
    macros::{map, xdp},
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, XskMap, lpm_trie::Key},
    programs::XdpContext,
};
use sipd_common::{
    AddrKey, Counter, GuardConfig, MAX_GUARD_PREFIXES, MAX_GUARD_SOURCES, MAX_QUEUES,
    MAX_SIP_PORTS, TokenBucket,
};

#[map]
static SIP_PORTS: HashMap<u16, u8> = HashMap::with_max_entries(MAX_SIP_PORTS, 0);

#[map]
static XSKS: XskMap = XskMap::with_max_entries(MAX_QUEUES, 0);

#[map]
static GUARD_CONFIG: Array<GuardConfig> = Array::with_max_entries(1, 0);

#[map]
static GUARD_BUCKETS: LruHashMap<AddrKey, TokenBucket> =
    LruHashMap::with_max_entries(MAX_GUARD_SOURCES, 0);

#[map]
static GUARD_ALLOW: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(MAX_GUARD_PREFIXES, 0);

#[map]
static GUARD_BLOCK: LpmTrie<[u8; 16], u8> = LpmTrie::with_max_entries(MAX_GUARD_PREFIXES, 0);

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_UDP: u8 = 17;
const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
const UDP_HLEN: usize = 8;
/// IPv4 flags/fragment-offset mask for "this is a fragment" (MF set or offset non-zero).
const IPV4_FRAG_MASK: u16 = 0x3FFF;

#[xdp]
pub fn sipd_xdp(ctx: XdpContext) -> u32 {
    match try_sipd_xdp(&ctx) {
        Ok(action) => action,
        Err(()) => {
            count(Counter::Malformed);
            xdp_action::XDP_ABORTED
        }
    }
}

/// Bounds-checked pointer to a `T` at `offset` bytes into the frame.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Result<*const T, ()> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + mem::size_of::<T>() > end {
        return Err(());
    }
    Ok((start + offset) as *const T)
}

#[inline(always)]
fn read_be16(ctx: &XdpContext, offset: usize) -> Result<u16, ()> {
    // SAFETY: `ptr_at` checked that both bytes lie inside the frame; `[u8; 2]` has alignment 1.
    Ok(u16::from_be_bytes(unsafe {
        *ptr_at::<[u8; 2]>(ctx, offset)?
    }))
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: the pointer is this CPU's slot of a per-CPU array; XDP runs with preemption
        // disabled, so nothing else writes it concurrently.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn pass() -> Result<u32, ()> {
    count(Counter::Passed);
    Ok(xdp_action::XDP_PASS)
}

#[inline(always)]
fn try_sipd_xdp(ctx: &XdpContext) -> Result<u32, ()> {
    let eth = ptr_at::<[u8; ETH_HLEN]>(ctx, 0)?;
    // SAFETY: `ptr_at` checked that the Ethernet header lies inside the frame.
    let eth = unsafe { &*eth };
    // Broadcast and multicast frames are never SIP for us (and must not be answered from a
    // group address): the kernel decides.
    if eth[0] & 1 != 0 {
        return pass();
    }
    let mut l3 = ETH_HLEN;
    let mut ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = read_be16(ctx, ETH_HLEN + 2)?;
        l3 += VLAN_HLEN;
    }

    // Each header is read through one bounds-checked pointer to the whole header: the verifier
    // tracks the checked range per pointer, so re-deriving `data + offset` for every field (with a
    // variable offset after IPv4 options) would lose it.
    let (src, l4) = match ethertype {
        ETH_P_IP => {
            let ip = ptr_at::<[u8; IPV4_MIN_HLEN]>(ctx, l3)?;
            // SAFETY: `ptr_at` checked that the 20-byte fixed header lies inside the frame;
            // `[u8; N]` has alignment 1.
            let ip = unsafe { &*ip };
            if ip[0] >> 4 != 4 {
                return Err(());
            }
            let ihl = ((ip[0] & 0x0F) as usize) * 4;
            if ihl < IPV4_MIN_HLEN {
                return Err(());
            }
            if u16::from_be_bytes([ip[6], ip[7]]) & IPV4_FRAG_MASK != 0 {
                return pass();
            }
            if ip[9] != IPPROTO_UDP {
                return pass();
            }
            (AddrKey::from_v4([ip[12], ip[13], ip[14], ip[15]]), l3 + ihl)
        }
        ETH_P_IPV6 => {
            let ip = ptr_at::<[u8; IPV6_HLEN]>(ctx, l3)?;
            // SAFETY: `ptr_at` checked that the 40-byte header lies inside the frame.
            let ip = unsafe { &*ip };
            if ip[0] >> 4 != 6 {
                return Err(());
            }
            // Extension headers (fragment header included) go to the kernel.
            if ip[6] != IPPROTO_UDP {
                return pass();
            }
            let mut saddr = [0u8; 16];
            saddr.copy_from_slice(&ip[8..24]);
            (AddrKey::from_v6(saddr), l3 + IPV6_HLEN)
        }
        _ => return pass(),
    };

    let udp = ptr_at::<[u8; UDP_HLEN]>(ctx, l4)?;
    // SAFETY: `ptr_at` checked that the 8-byte UDP header lies inside the frame.
    let udp = unsafe { &*udp };
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    if u16::from_be_bytes([udp[4], udp[5]]) < UDP_HLEN as u16 {
        return Err(());
    }
    if SIP_PORTS.get_ptr(dport).is_none() {
        return pass();
    }

    if !guard_admits(&src) {
        return Ok(xdp_action::XDP_DROP);
    }

    // Flags: the action to return when no socket is registered for this queue.
    match XSKS.redirect(ctx.rx_queue_index(), xdp_action::XDP_PASS as u64) {
        Ok(action) => {
            count(Counter::Redirected);
            Ok(action)
        }
        Err(action) => {
            count(Counter::NoSocket);
            Ok(action)
        }
    }
}

/// Block list, then allow list, then the source's token bucket. Counts what it drops.
#[inline(always)]
fn guard_admits(src: &AddrKey) -> bool {
    let key = Key::new(128, src.addr);
    if GUARD_BLOCK.get(&key).is_some() {
        count(Counter::GuardBlocked);
        return false;
    }
    if GUARD_ALLOW.get(&key).is_some() {
        return true;
    }
    let Some(cfg) = GUARD_CONFIG.get(0) else {
        return true;
    };
    if cfg.rate_pps == 0 {
        return true;
    }
    // SAFETY: a helper with no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let admitted = match GUARD_BUCKETS.get_ptr_mut(src) {
        // SAFETY: the pointer is to the map value, valid for this program run. Two CPUs may update
        // one source's bucket at once; the race loses at most a token's bookkeeping, which a rate
        // limiter tolerates (an atomic update would cost every datagram).
        Some(bucket) => unsafe { (*bucket).take(cfg, now) },
        None => {
            let mut bucket = TokenBucket::full(cfg, now);
            let admitted = bucket.take(cfg, now);
            // A full LRU map evicts its least recently used entry; insert cannot fail otherwise.
            let _ = GUARD_BUCKETS.insert(src, &bucket, 0);
            admitted
        }
    };
    if !admitted {
        count(Counter::GuardRateLimited);
    }
    admitted
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
