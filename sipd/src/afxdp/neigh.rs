//! Next-hop MAC addresses for datagrams not sent back to their previous hop.
//!
//! The worker asks a [`NextHop`] for the MAC of a destination that is not the sender of the
//! datagram being answered (for the sender it reuses the source MAC of the received frame).
//! [`NeighbourCache`] answers from a private snapshot of the kernel's neighbour table; the
//! [`NeighbourTable`] that feeds it is refreshed off the fast path (a background thread reading the
//! table over rtnetlink, [`NeighbourTable::spawn_refresher`]). A lookup costs one relaxed atomic
//! load plus a hash probe; taking a new snapshot (an `Arc` clone under a mutex) happens only
//! after the table changed.
//!
//! Only directly attached destinations resolve: sending via a gateway needs a route lookup
//! first, which is the caller's job for now (a miss is counted and the datagram dropped).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::wire::ethernet::MacAddr;

/// Resolves the MAC address of a directly attached next hop.
pub trait NextHop {
    /// The MAC for `ip`, if known.
    fn lookup(&mut self, ip: IpAddr) -> Option<MacAddr>;
}

/// Resolves nothing: only answers to the previous hop can be sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNeighbours;

impl NextHop for NoNeighbours {
    fn lookup(&mut self, _ip: IpAddr) -> Option<MacAddr> {
        None
    }
}

type Table = HashMap<IpAddr, MacAddr>;

#[derive(Debug, Default)]
struct Shared {
    generation: AtomicU64,
    table: Mutex<Arc<Table>>,
}

/// The writer side: publishes new neighbour tables to every [`NeighbourCache`].
#[derive(Debug, Clone, Default)]
pub struct NeighbourTable {
    shared: Arc<Shared>,
}

impl NeighbourTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the table (readers pick it up on their next lookup). Unchanged tables are not
    /// republished.
    pub fn publish(&self, table: Table) {
        let mut cur = self.shared.table.lock().unwrap_or_else(|e| e.into_inner());
        if **cur == table {
            return;
        }
        *cur = Arc::new(table);
        self.shared.generation.fetch_add(1, Ordering::Release);
    }

    /// A reader for one worker.
    pub fn cache(&self) -> NeighbourCache {
        NeighbourCache {
            shared: self.shared.clone(),
            seen: u64::MAX,
            table: Arc::default(),
        }
    }

    /// Reads the kernel's neighbour entries of interface `ifindex` every `interval` until `stop`
    /// is set, publishing each table. The first read happens before this returns.
    pub fn spawn_refresher(
        &self,
        ifindex: u32,
        interval: Duration,
        stop: Arc<AtomicBool>,
    ) -> io::Result<JoinHandle<()>> {
        self.publish(dump_neighbours(ifindex)?);
        let me = self.clone();
        std::thread::Builder::new()
            .name("sipd-neigh".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    match dump_neighbours(ifindex) {
                        Ok(t) => me.publish(t),
                        Err(e) => tracing::warn!(error = %e, "reading the neighbour table"),
                    }
                }
            })
    }
}

/// A worker's view of the [`NeighbourTable`].
#[derive(Debug)]
pub struct NeighbourCache {
    shared: Arc<Shared>,
    seen: u64,
    table: Arc<Table>,
}

impl NextHop for NeighbourCache {
    #[inline]
    fn lookup(&mut self, ip: IpAddr) -> Option<MacAddr> {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.seen {
            self.table = self
                .shared
                .table
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            self.seen = g;
        }
        self.table.get(&ip).copied()
    }
}

// rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h).
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// REACHABLE | STALE | DELAY | PROBE | PERMANENT: entries with a usable MAC.
const NUD_USABLE: u16 = 0x02 | 0x04 | 0x08 | 0x10 | 0x80;
const NLMSG_HDRLEN: usize = 16;
const NDMSG_LEN: usize = 12;

/// Dumps the kernel's neighbour table (IPv4 and IPv6) for interface `ifindex` over rtnetlink.
pub fn dump_neighbours(ifindex: u32) -> io::Result<Table> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor we own and nothing else closes.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let tv = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: `tv` is a valid timeval for the length passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut req = [0u8; NLMSG_HDRLEN + NDMSG_LEN];
    req[0..4].copy_from_slice(&((NLMSG_HDRLEN + NDMSG_LEN) as u32).to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    req[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[NLMSG_HDRLEN] = libc::AF_UNSPEC as u8;
    // SAFETY: `req` is valid for reads of its length; the kernel is the destination (a netlink
    // socket with no address sends to the kernel).
    let r = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut table = Table::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n == 0 {
            return Ok(table);
        }
        if parse_dump(&buf[..n as usize], ifindex, &mut table)? {
            return Ok(table);
        }
    }
}

/// Parses one datagram of a neighbour dump into `table`; true when the dump is complete.
fn parse_dump(mut msgs: &[u8], ifindex: u32, table: &mut Table) -> io::Result<bool> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed rtnetlink message");
    while msgs.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes(msgs[0..4].try_into().map_err(|_| bad())?) as usize;
        let ty = u16::from_ne_bytes([msgs[4], msgs[5]]);
        if len < NLMSG_HDRLEN || len > msgs.len() {
            return Err(bad());
        }
        let body = &msgs[NLMSG_HDRLEN..len];
        match ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => {
                let errno = body
                    .get(0..4)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(0);
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(-errno));
                }
            }
            RTM_NEWNEIGH if body.len() >= NDMSG_LEN => {
                let family = body[0];
                let idx = i32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
                let state = u16::from_ne_bytes([body[8], body[9]]);
                if idx as u32 == ifindex && state & NUD_USABLE != 0 {
                    let (dst, mac) = parse_attrs(&body[NDMSG_LEN..], family);
                    if let (Some(ip), Some(mac)) = (dst, mac) {
                        table.insert(ip, mac);
                    }
                }
            }
            _ => {}
        }
        let aligned = (len + 3) & !3;
        msgs = msgs.get(aligned..).unwrap_or(&[]);
    }
    Ok(false)
}

fn parse_attrs(mut attrs: &[u8], family: u8) -> (Option<IpAddr>, Option<MacAddr>) {
    let (mut dst, mut mac) = (None, None);
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let ty = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        let data = &attrs[4..len];
        match ty {
            NDA_DST if family == libc::AF_INET as u8 && data.len() == 4 => {
                dst = Some(IpAddr::V4(Ipv4Addr::new(
                    data[0], data[1], data[2], data[3],
                )));
            }
            NDA_DST if family == libc::AF_INET6 as u8 && data.len() == 16 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                dst = Some(IpAddr::V6(Ipv6Addr::from(a)));
            }
            NDA_LLADDR if data.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(data);
                mac = Some(m);
            }
            _ => {}
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    (dst, mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neigh_msg(ifindex: i32, state: u16, ip: [u8; 4], mac: [u8; 6]) -> Vec<u8> {
        let mut body = vec![libc::AF_INET as u8, 0, 0, 0];
        body.extend_from_slice(&ifindex.to_ne_bytes());
        body.extend_from_slice(&state.to_ne_bytes());
        body.extend_from_slice(&[0, 1]);
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&NDA_DST.to_ne_bytes());
        body.extend_from_slice(&ip);
        body.extend_from_slice(&10u16.to_ne_bytes());
        body.extend_from_slice(&NDA_LLADDR.to_ne_bytes());
        body.extend_from_slice(&mac);
        body.extend_from_slice(&[0, 0]);
        let mut m = ((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn parses_dump_filtering_interface_and_state() {
        let mut d = neigh_msg(3, 0x02, [10, 0, 0, 2], [2, 0, 0, 0, 0, 2]);
        d.extend(neigh_msg(4, 0x02, [10, 0, 0, 3], [2, 0, 0, 0, 0, 3]));
        d.extend(neigh_msg(3, 0x20, [10, 0, 0, 4], [2, 0, 0, 0, 0, 4]));
        let mut t = Table::new();
        assert!(!parse_dump(&d, 3, &mut t).unwrap());
        assert_eq!(t.len(), 1);
        assert_eq!(
            t[&"10.0.0.2".parse::<IpAddr>().unwrap()],
            [2, 0, 0, 0, 0, 2]
        );
        let mut done = 16u32.to_ne_bytes().to_vec();
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0; 10]);
        assert!(parse_dump(&done, 3, &mut t).unwrap());
    }

    #[test]
    fn cache_sees_published_tables() {
        let table = NeighbourTable::new();
        let mut c = table.cache();
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        assert_eq!(c.lookup(ip), None);
        table.publish([(ip, [1, 2, 3, 4, 5, 6])].into_iter().collect());
        assert_eq!(c.lookup(ip), Some([1, 2, 3, 4, 5, 6]));
    }

    #[test]
    fn dump_from_kernel_works() {
        // Loopback has no neighbours; this only proves the request/response round trip.
        let lo = 1;
        assert!(dump_neighbours(lo).is_ok());
    }
}
