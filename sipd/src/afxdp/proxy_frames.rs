//! The proxy core behind an AF_XDP worker: a [`FrameHandler`] that hands each datagram to
//! [`Proxy::handle`] with the TX frame's payload area as the output buffer, so a forwarded
//! message is written once, straight into the frame that leaves.
//!
//! What the fast path cannot send goes through the kernel instead, counted:
//! - a next hop whose MAC is not in the neighbour cache yet: sent through a kernel UDP socket
//!   until the cache picks it up at its next refresh (the kernel resolves it meanwhile);
//! - a next hop of the other IP family (the TX frame has the received family's header room);
//! - a message the core forwards over TCP: queued to the socket backend's TCP thread.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::neigh::{NeighbourCache, NextHop};
use super::{FrameHandler, Verdict};
use crate::proxy::stats::bump;
use crate::proxy::{Action, Input, Proxy, Transport};
use crate::socket::TcpHandoff;

/// Where the fast path handed over to the kernel (one writer: the worker).
#[derive(Debug, Default)]
pub struct KernelPathStats {
    /// Sent through the kernel because the next hop's MAC was not known yet.
    pub no_neighbour: AtomicU64,
    /// Sent through the kernel because the next hop is of the other IP family.
    pub other_family: AtomicU64,
    /// Queued to the TCP thread.
    pub tcp: AtomicU64,
    /// Could not be sent at all (kernel send failed, TCP queue full).
    pub failed: AtomicU64,
}

/// The proxy core as an AF_XDP frame handler.
pub struct ProxyFrames {
    proxy: Proxy,
    neighbours: NeighbourCache,
    kernel_v4: Option<UdpSocket>,
    kernel_v6: Option<UdpSocket>,
    /// Sockets bound to the listen addresses (see [`ProxyFrames::with_listen_sockets`]).
    listen: Vec<(SocketAddr, UdpSocket)>,
    tcp: Option<TcpHandoff>,
    /// Wall-clock milliseconds at the workers' epoch: the worker passes milliseconds since
    /// its epoch and the core wants wall-clock time (shared with the socket backend).
    wall_at_epoch_ms: u64,
    stats: Arc<KernelPathStats>,
}

impl ProxyFrames {
    /// `epoch` must be the `WorkerConfig::epoch` of the worker that runs this handler.
    pub fn new(
        proxy: Proxy,
        neighbours: NeighbourCache,
        tcp: Option<TcpHandoff>,
        epoch: Instant,
    ) -> Self {
        let wall_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let wall_at_epoch_ms = wall_now.saturating_sub(epoch.elapsed().as_millis() as u64);
        ProxyFrames {
            proxy,
            neighbours,
            // Ephemeral ports: only the first datagram to a new neighbour leaves this way.
            kernel_v4: UdpSocket::bind("0.0.0.0:0").ok(),
            kernel_v6: UdpSocket::bind("[::]:0").ok(),
            listen: Vec::new(),
            tcp,
            wall_at_epoch_ms,
            stats: Arc::new(KernelPathStats::default()),
        }
    }

    /// Kernel-path datagrams leave from the socket bound to the address the frame came to
    /// (`ServerHandle::udp_senders`), so a reply comes from the address and port its request
    /// went to (RFC 3581 §4, NATs) and requests from sipd's Via port. Without one that fits,
    /// from an ephemeral port.
    pub fn with_listen_sockets(mut self, sockets: Vec<(SocketAddr, UdpSocket)>) -> Self {
        self.listen = sockets;
        self
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    pub fn kernel_path_stats(&self) -> Arc<KernelPathStats> {
        self.stats.clone()
    }

    fn via_kernel(&self, local: SocketAddr, to: SocketAddr, bytes: &[u8]) -> bool {
        // The listen socket the frame came to; for the other family, one on the same port.
        let bound = self
            .listen
            .iter()
            .filter(|(a, _)| a.is_ipv4() == to.is_ipv4())
            .max_by_key(|(a, _)| {
                (
                    a.ip() == local.ip() || a.ip().is_unspecified(),
                    a.port() == local.port(),
                )
            });
        let socket = match bound {
            Some((_, s)) => Some(s),
            None if to.is_ipv4() => self.kernel_v4.as_ref(),
            None => self.kernel_v6.as_ref(),
        };
        socket.is_some_and(|s| s.send_to(bytes, to).is_ok())
    }
}

impl FrameHandler for ProxyFrames {
    fn look_ahead(&mut self, payload: &[u8]) {
        self.proxy.look_ahead(payload);
    }

    fn handle(
        &mut self,
        now_ms: u64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        tx_payload: &mut [u8],
    ) -> Verdict {
        let input = Input {
            now_ms: self.wall_at_epoch_ms + now_ms,
            source: src,
            local: dst,
            transport: Transport::Udp,
            bytes: payload,
        };
        let (to, transport, len) = match self.proxy.handle(&input, tx_payload) {
            Action::Forward { to, transport, len } => (to, transport, len),
            Action::Reply {
                to, transport, len, ..
            } => (to, transport, len),
            Action::Drop(_) => return Verdict::Drop,
        };
        if transport == Transport::Tcp {
            let queued = self.tcp.as_ref().is_some_and(|t| {
                let ok = t.send(to, dst, &tx_payload[..len]);
                t.wake();
                ok
            });
            bump(if queued {
                &self.stats.tcp
            } else {
                &self.stats.failed
            });
            return Verdict::Drop;
        }
        if to.is_ipv4() != dst.is_ipv4() {
            let sent = self.via_kernel(dst, to, &tx_payload[..len]);
            bump(if sent {
                &self.stats.other_family
            } else {
                &self.stats.failed
            });
            return Verdict::Drop;
        }
        if to.ip() != src.ip()
            && !is_unresolvable(to.ip())
            && self.neighbours.lookup(to.ip()).is_none()
        {
            let sent = self.via_kernel(dst, to, &tx_payload[..len]);
            bump(if sent {
                &self.stats.no_neighbour
            } else {
                &self.stats.failed
            });
            return Verdict::Drop;
        }
        Verdict::Send { to, len }
    }
}

/// Addresses the kernel would not resolve either (the worker counts them).
fn is_unresolvable(ip: IpAddr) -> bool {
    ip.is_unspecified() || ip.is_multicast()
}
