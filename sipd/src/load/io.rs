//! The datapath seam: a [`Datapath`] moves batches of datagrams; the runner owns the loop. Today
//! [`MmsgSocket`] (a non-blocking UDP socket with `sendmmsg`/`recvmmsg`, one system call per
//! batch each way); an AF_XDP driver implements the same four methods over its rings.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, ppoll};
use nix::sys::socket::{
    MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};

use super::TxBatch;

/// Largest datagram received whole (larger ones are truncated, and counted malformed).
pub const RX_SLOT: usize = 16 * 1024;

/// Received datagrams: `count` of them in fixed slots.
pub struct RxBatch {
    buf: Vec<u8>,
    lens: Vec<usize>,
    from: Vec<SocketAddr>,
    count: usize,
}

impl RxBatch {
    pub fn new(slots: usize) -> Self {
        RxBatch {
            buf: vec![0; slots * RX_SLOT],
            lens: vec![0; slots],
            from: vec![SocketAddr::from(([0, 0, 0, 0], 0)); slots],
            count: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn get(&self, i: usize) -> (SocketAddr, &[u8]) {
        (
            self.from[i],
            &self.buf[i * RX_SLOT..i * RX_SLOT + self.lens[i]],
        )
    }

    /// Slot `i` for a driver to fill, then [`RxBatch::set`].
    pub fn slot_mut(&mut self, i: usize) -> &mut [u8] {
        &mut self.buf[i * RX_SLOT..(i + 1) * RX_SLOT]
    }

    pub fn set(&mut self, i: usize, from: SocketAddr, len: usize) {
        self.from[i] = from;
        self.lens[i] = len.min(RX_SLOT);
        self.count = self.count.max(i + 1);
    }

    pub fn clear(&mut self) {
        self.count = 0;
    }
}

/// Batched datagram I/O for one worker.
pub trait Datapath {
    fn local_addr(&self) -> SocketAddr;
    /// Sends the datagrams of `tx` from the first, in order, without blocking; returns how many
    /// went out (fewer when the device is full). An error concerns the first unsent datagram.
    fn send(&mut self, tx: &TxBatch) -> io::Result<usize>;
    /// Receives what is ready, up to `rx.capacity()`, without blocking (`rx` is cleared first).
    fn recv(&mut self, rx: &mut RxBatch) -> io::Result<usize>;
    /// Waits until something can be received (or sent, with `writable`), at most `timeout`.
    fn wait(&mut self, timeout: Duration, writable: bool) -> io::Result<()>;
}

/// A non-blocking UDP socket driven with `sendmmsg`/`recvmmsg`.
pub struct MmsgSocket {
    sock: UdpSocket,
    local: SocketAddr,
    batch: usize,
    send_hdrs: MultiHeaders<SockaddrStorage>,
    recv_hdrs: MultiHeaders<SockaddrStorage>,
    addrs: Vec<Option<SockaddrStorage>>,
}

/// Socket buffers asked for (the kernel caps them at net.core.{r,w}mem_max).
const SOCKET_BUFFER: usize = 8 << 20;

impl MmsgSocket {
    /// Binds `addr`; `reuse_port` lets several workers share a listening address.
    pub fn bind(addr: SocketAddr, reuse_port: bool, batch: usize) -> io::Result<MmsgSocket> {
        Self::from_socket(bind_udp(addr, reuse_port)?, batch)
    }

    /// Wraps a bound socket (bound on one thread, driven on another: the batch headers are not
    /// `Send`, the socket is).
    pub fn from_socket(sock: UdpSocket, batch: usize) -> io::Result<MmsgSocket> {
        sock.set_nonblocking(true)?;
        let local = sock.local_addr()?;
        let batch = batch.max(1);
        Ok(MmsgSocket {
            sock,
            local,
            batch,
            send_hdrs: MultiHeaders::preallocate(batch, None),
            recv_hdrs: MultiHeaders::preallocate(batch, None),
            addrs: Vec::with_capacity(batch),
        })
    }
}

/// A non-blocking UDP socket bound to `addr` with large buffers.
pub fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    {
        let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if reuse_port {
            sock.set_reuse_port(true)?;
        }
        // Past net.core.{r,w}mem_max where we may (CAP_NET_ADMIN), else up to it.
        if setsockopt(&sock, sockopt::RcvBufForce, &SOCKET_BUFFER).is_err() {
            let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
        }
        if setsockopt(&sock, sockopt::SndBufForce, &SOCKET_BUFFER).is_err() {
            let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        Ok(sock.into())
    }
}

fn to_std(addr: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    addr.as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

impl Datapath for MmsgSocket {
    fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&mut self, tx: &TxBatch) -> io::Result<usize> {
        let mut sent = 0;
        while sent < tx.len() {
            let n = (tx.len() - sent).min(self.batch);
            self.addrs.clear();
            let mut slices = Vec::with_capacity(n);
            for i in sent..sent + n {
                let (to, bytes) = tx.get(i);
                self.addrs.push(Some(SockaddrStorage::from(to)));
                slices.push([io::IoSlice::new(bytes)]);
            }
            let fd = self.sock.as_raw_fd();
            match sendmmsg(
                fd,
                &mut self.send_hdrs,
                &slices,
                &self.addrs,
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let k = results.count();
                    sent += k;
                    if k < n {
                        break;
                    }
                }
                Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) | Err(Errno::EINTR) => break,
                Err(e) if sent == 0 => return Err(e.into()),
                Err(_) => break,
            }
        }
        Ok(sent)
    }

    fn recv(&mut self, rx: &mut RxBatch) -> io::Result<usize> {
        rx.clear();
        let RxBatch {
            buf, lens, from, ..
        } = rx;
        let cap = lens.len().min(self.batch);
        let mut iovs: Vec<[io::IoSliceMut<'_>; 1]> = buf
            .chunks_mut(RX_SLOT)
            .take(cap)
            .map(|c| [io::IoSliceMut::new(c)])
            .collect();
        let fd = self.sock.as_raw_fd();
        let results = match recvmmsg(
            fd,
            &mut self.recv_hdrs,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(r) => r,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => return Ok(0),
            // An ICMP error queued by an earlier send (e.g. port unreachable): not ours to fail.
            Err(Errno::ECONNREFUSED) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut n = 0;
        for r in results {
            let addr = r.address.as_ref().and_then(to_std);
            lens[n] = r.bytes.min(RX_SLOT);
            from[n] = addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            n += 1;
        }
        rx.count = n;
        Ok(n)
    }

    fn wait(&mut self, timeout: Duration, writable: bool) -> io::Result<()> {
        let mut flags = PollFlags::POLLIN;
        if writable {
            flags |= PollFlags::POLLOUT;
        }
        let mut fds = [PollFd::new(self.sock.as_fd(), flags)];
        match ppoll(&mut fds, Some(TimeSpec::from(timeout)), None) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Our source address towards `target` (what the kernel would pick), for Via and Contact when
/// no local address is given.
pub fn source_address_for(target: SocketAddr) -> io::Result<std::net::IpAddr> {
    let any: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = UdpSocket::bind(any)?;
    s.connect(target)?;
    Ok(s.local_addr()?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip_on_loopback() {
        let mut a = MmsgSocket::bind("127.0.0.1:0".parse().unwrap(), false, 8).unwrap();
        let mut b = MmsgSocket::bind("127.0.0.1:0".parse().unwrap(), false, 8).unwrap();
        let mut tx = TxBatch::with_capacity(4);
        for i in 0..20u8 {
            assert!(tx.push_bytes(b.local_addr(), &[i; 10]));
        }
        assert_eq!(a.send(&tx).unwrap(), 20);
        let mut rx = RxBatch::new(8);
        let mut got = Vec::new();
        for _ in 0..100 {
            b.wait(Duration::from_millis(10), false).unwrap();
            let n = b.recv(&mut rx).unwrap();
            for i in 0..n {
                let (from, bytes) = rx.get(i);
                assert_eq!(from, a.local_addr());
                got.push(bytes[0]);
            }
            if got.len() == 20 {
                break;
            }
        }
        assert_eq!(got, (0..20).collect::<Vec<u8>>());
    }
}
