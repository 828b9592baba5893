//! A UDP worker: `recvmmsg` a batch, run the core on each datagram into its own transmit slot,
//! `sendmmsg` the outputs.
//!
//! The sockets are blocking (a full send buffer is back-pressure, not a drop); receives use
//! `MSG_DONTWAIT` so a worker under load never sleeps in the kernel, and an idle worker waits in
//! `poll(2)` on all its sockets for at most the poll interval, then looks at its control channel.
//! The receive and transmit buffers are allocated once; the `iovec`s that point into them are
//! rebuilt on the stack for each call (nix ties their lifetime to the call).

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};

use super::{Control, Handoff, MAX_BATCH, SLOT_LEN, WorkerStats, canonical, now_ms};
use crate::proxy::stats::bump;
use crate::proxy::{Action, Input, Proxy, Transport};

/// Batches a stopping worker still takes from each socket's queue.
const DRAIN_BATCHES: usize = 64;

pub(crate) struct UdpWorker {
    /// One socket per UDP listen address, with that address.
    pub sockets: Vec<(UdpSocket, SocketAddr)>,
    pub proxy: Proxy,
    pub stats: Arc<WorkerStats>,
    pub control: Receiver<Control>,
    pub handoff: Sender<Handoff>,
    pub recycle: Receiver<Vec<u8>>,
    pub tcp_waker: Arc<mio::Waker>,
    pub batch: usize,
    pub poll_interval: Duration,
}

/// One datagram of a batch: where it came from and how long it is.
#[derive(Copy, Clone)]
struct RxMeta {
    len: usize,
    source: Option<SocketAddr>,
    truncated: bool,
}

/// One output of a batch: transmit slot, length, destination, socket to send it from.
#[derive(Copy, Clone)]
struct TxMeta {
    slot: usize,
    len: usize,
    to: SockaddrStorage,
    socket: usize,
}

struct Buffers {
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// One set per socket: the kernel shrinks each header's `msg_namelen` to the length of the
    /// address it stored and nix does not reset it, so a header that last held an IPv4 source
    /// (16 bytes) would truncate the next IPv6 one to its first 16 bytes. A socket only ever
    /// sees one address family (a dual-stack socket reports IPv4 peers as mapped IPv6).
    rx_headers: Vec<MultiHeaders<SockaddrStorage>>,
    tx_headers: MultiHeaders<SockaddrStorage>,
    rx_meta: [RxMeta; MAX_BATCH],
    tx_meta: Vec<TxMeta>,
}

impl UdpWorker {
    pub fn run(mut self) {
        let n = self.batch;
        let mut bufs = Buffers {
            rx: vec![0; n * SLOT_LEN],
            tx: vec![0; n * SLOT_LEN],
            rx_headers: (0..self.sockets.len())
                .map(|_| MultiHeaders::preallocate(n, None))
                .collect(),
            tx_headers: MultiHeaders::preallocate(n, None),
            rx_meta: [RxMeta {
                len: 0,
                source: None,
                truncated: false,
            }; MAX_BATCH],
            tx_meta: Vec::with_capacity(n),
        };
        let poll_ms = u16::try_from(self.poll_interval.as_millis().clamp(1, 10_000)).unwrap_or(20);
        loop {
            let mut stopping = false;
            loop {
                match self.control.try_recv() {
                    Ok(Control::SetConfig(cfg)) => {
                        self.proxy.set_config(cfg);
                        bump(&self.stats.config_reloads);
                    }
                    // Probes are the TCP thread's.
                    Ok(Control::SetProber(_)) => {}
                    Ok(Control::Shutdown) | Err(TryRecvError::Disconnected) => {
                        stopping = true;
                        break;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            if stopping {
                // Finish what the kernel already queued for us, then let the sockets close.
                for s in 0..self.sockets.len() {
                    for _ in 0..DRAIN_BATCHES {
                        if self.batch_on(s, &mut bufs) == 0 {
                            break;
                        }
                    }
                }
                return;
            }
            let mut received = 0;
            for s in 0..self.sockets.len() {
                received += self.batch_on(s, &mut bufs);
            }
            if received == 0 {
                let mut fds: Vec<PollFd<'_>> = self
                    .sockets
                    .iter()
                    .map(|(s, _)| PollFd::new(s.as_fd(), PollFlags::POLLIN))
                    .collect();
                // EINTR and friends: just go round again.
                let _ = poll(&mut fds, PollTimeout::from(poll_ms));
            }
        }
    }

    /// Receives one batch on socket `s`, handles it and sends the outputs; returns the number of
    /// datagrams received.
    fn batch_on(&mut self, s: usize, bufs: &mut Buffers) -> usize {
        let n = self.receive(s, bufs);
        if n == 0 {
            return 0;
        }
        self.stats.count_batch(n);
        let local = self.sockets[s].1;
        let now = now_ms();
        let mut handed_off = false;
        bufs.tx_meta.clear();
        // Look at the whole batch first (the proxy starts loading the dialog table's lines),
        // so the batch's cache misses overlap instead of stalling each datagram in turn.
        for (slot, meta) in bufs.rx_meta[..n].iter().enumerate() {
            if meta.source.is_some() && !meta.truncated {
                let start = slot * SLOT_LEN;
                self.proxy.look_ahead(&bufs.rx[start..start + meta.len]);
            }
        }
        for (slot, meta) in bufs.rx_meta[..n].iter().enumerate() {
            bump(&self.stats.rx_packets);
            add(&self.stats.rx_bytes, meta.len);
            let Some(source) = meta.source else {
                bump(&self.stats.recv_errors);
                continue;
            };
            if meta.truncated {
                bump(&self.stats.truncated);
                continue;
            }
            let range = slot * SLOT_LEN..(slot + 1) * SLOT_LEN;
            let input = Input {
                now_ms: now,
                source,
                local,
                transport: Transport::Udp,
                bytes: &bufs.rx[slot * SLOT_LEN..slot * SLOT_LEN + meta.len],
            };
            let out = &mut bufs.tx[range];
            let (to, transport, len) = match self.proxy.handle(&input, out) {
                Action::Forward { to, transport, len }
                | Action::Reply {
                    to, transport, len, ..
                } => (to, transport, len),
                Action::Drop(_) => {
                    bump(&self.stats.dropped);
                    continue;
                }
            };
            match transport {
                Transport::Udp => match self.socket_for(s, to) {
                    Some((socket, to)) => bufs.tx_meta.push(TxMeta {
                        slot,
                        len,
                        to,
                        socket,
                    }),
                    None => bump(&self.stats.send_errors),
                },
                Transport::Tcp => {
                    self.hand_off(to, local, &out[..len]);
                    handed_off = true;
                }
            }
        }
        if handed_off {
            let _ = self.tcp_waker.wake();
        }
        for socket in 0..self.sockets.len() {
            if bufs.tx_meta.iter().any(|m| m.socket == socket) {
                self.send(socket, bufs);
            }
        }
        n
    }

    fn receive(&mut self, s: usize, bufs: &mut Buffers) -> usize {
        let fd = self.sockets[s].0.as_raw_fd();
        let mut chunks = bufs.rx.chunks_mut(SLOT_LEN);
        let mut iovs: [[IoSliceMut<'_>; 1]; MAX_BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or(&mut []))]);
        let result = recvmmsg(
            fd,
            &mut bufs.rx_headers[s],
            iovs[..self.batch].iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        );
        let msgs = match result {
            Ok(msgs) => msgs,
            Err(Errno::EAGAIN | Errno::EINTR) => return 0,
            Err(_) => {
                // ICMP errors reported on the socket and the like: counted, not fatal.
                bump(&self.stats.recv_errors);
                return 0;
            }
        };
        let mut n = 0;
        for (meta, msg) in bufs.rx_meta.iter_mut().zip(msgs) {
            *meta = RxMeta {
                len: msg.bytes,
                source: msg.address.and_then(to_std).map(canonical),
                truncated: msg.flags.contains(MsgFlags::MSG_TRUNC),
            };
            n += 1;
        }
        n
    }

    /// Sends the batch's outputs that leave from socket `socket`, retrying after a partial send
    /// and skipping (counting) a datagram the kernel refuses.
    fn send(&mut self, socket: usize, bufs: &mut Buffers) {
        let fd = self.sockets[socket].0.as_raw_fd();
        let mut addrs: [Option<SockaddrStorage>; MAX_BATCH] = [None; MAX_BATCH];
        let mut slots = [(0usize, 0usize); MAX_BATCH];
        let mut count = 0;
        for m in bufs.tx_meta.iter().filter(|m| m.socket == socket) {
            addrs[count] = Some(m.to);
            slots[count] = (m.slot, m.len);
            count += 1;
        }
        let mut start = 0;
        while start < count {
            let tx = &bufs.tx;
            let iovs: [[IoSlice<'_>; 1]; MAX_BATCH] = std::array::from_fn(|i| {
                let (slot, len) = slots[i];
                [IoSlice::new(&tx[slot * SLOT_LEN..slot * SLOT_LEN + len])]
            });
            bump(&self.stats.tx_batches);
            let result = sendmmsg(
                fd,
                &mut bufs.tx_headers,
                iovs[start..count].iter(),
                &addrs[start..count],
                [],
                MsgFlags::empty(),
            );
            match result {
                Ok(sent) => {
                    let sent = sent.count();
                    for &(_, len) in &slots[start..start + sent] {
                        bump(&self.stats.tx_packets);
                        add(&self.stats.tx_bytes, len);
                    }
                    // A refusal after some were sent is reported by the next call.
                    start += sent.max(1).min(count - start);
                    if sent == 0 {
                        bump(&self.stats.send_errors);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    bump(&self.stats.send_errors);
                    start += 1;
                }
            }
        }
    }

    /// The socket to send to `to` from: the receiving one when the family fits, else the first of
    /// the right family (a dual-stack IPv6 socket takes IPv4 destinations as mapped addresses).
    fn socket_for(&self, receiving: usize, to: SocketAddr) -> Option<(usize, SockaddrStorage)> {
        let fits = |local: &SocketAddr| local.is_ipv4() == to.is_ipv4();
        let index = if fits(&self.sockets[receiving].1) {
            Some(receiving)
        } else {
            self.sockets.iter().position(|(_, l)| fits(l))
        };
        if let Some(i) = index {
            return Some((i, SockaddrStorage::from(to)));
        }
        let (i, _) = self
            .sockets
            .iter()
            .enumerate()
            .find(|(_, (_, l))| l.is_ipv6() && l.ip().is_unspecified())?;
        let mapped = match to {
            SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
            v6 => v6,
        };
        Some((i, SockaddrStorage::from(mapped)))
    }

    /// Copies a message for TCP into a pooled buffer and queues it for the TCP thread.
    fn hand_off(&mut self, to: SocketAddr, local: SocketAddr, bytes: &[u8]) {
        let mut buf = self.recycle.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        match self.handoff.try_send(Handoff {
            to,
            local,
            bytes: buf,
        }) {
            Ok(()) => bump(&self.stats.tcp_handoffs),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                bump(&self.stats.tcp_handoff_drops)
            }
        }
    }
}

fn add(counter: &std::sync::atomic::AtomicU64, n: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    counter.store(counter.load(Relaxed).wrapping_add(n as u64), Relaxed);
}

pub(crate) fn to_std(addr: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        return Some(SocketAddr::V6((*v6).into()));
    }
    None
}
