//! The kernel-socket backend: the sans-IO proxy core behind ordinary UDP and TCP sockets, for
//! machines without AF_XDP and for unprivileged runs.
//!
//! # Threads
//! - **UDP workers** (`workers` of them, optionally pinned with `core_affinity`): each owns one
//!   socket per UDP listen address, bound with `SO_REUSEPORT` so the kernel spreads datagrams over
//!   the workers by flow hash, and its own [`Proxy`]. A worker receives up to `batch` datagrams
//!   with one `recvmmsg`, runs [`Proxy::handle`] on each into a per-slot transmit buffer, and sends
//!   every UDP output of the batch with one `sendmmsg`. Messages the core forwards over TCP are
//!   copied into a pooled buffer and handed to the TCP thread over a bounded channel (counted drop
//!   when it is full).
//! - **The TCP thread** (one, `mio`): the TCP listeners, every connection (accepted and opened by
//!   us), the hand-off channel from the workers, and the [`HealthProber`] when one is given. It
//!   owns a [`Proxy`] of its own for the messages it receives on connections, and sends UDP from
//!   duplicates of worker 0's sockets (the listen addresses, so answers come back to a worker).
//!
//! # Shared state and control
//! Nothing is locked on the per-packet path: each thread owns its proxy, buffers and counters
//! (single-writer atomics read by [`ServerHandle`]); the routing tables, location service and
//! health table the proxies share are behind `Arc`s set up by the caller's `make_proxy`.
//! Configuration reloads and shutdown reach the threads as [`Control`] messages over
//! `crossbeam-channel`s, which a worker looks at between batches (at the latest after
//! [`SocketConfig::poll_interval`] when idle).
//!
//! # Addresses
//! The core writes the receiving local address into Via and Record-Route, so bind specific
//! addresses (or set the core's `advertise`): a wildcard bind would advertise `0.0.0.0`. A listen
//! address with port 0 gets an ephemeral port; a TCP listen address with port 0 on the same IP
//! as a UDP one gets the UDP port where it is free, so that a Via written for either transport
//! names a port we listen on for both.

mod framing;
mod metrics;
mod tcp;
mod udp;

pub use framing::{Frame, next_frame, write_framing_reject};
pub use metrics::SocketMetrics;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use socket2::{Domain, Protocol, Socket, Type};

use crate::proxy::stats::bump;
use crate::proxy::{HealthProber, Proxy, ProxyConfig, ProxyStats, Transport};

/// The largest batch a worker receives in one `recvmmsg` (the batch buffers live on its stack).
pub const MAX_BATCH: usize = 64;
/// One receive or transmit slot: the largest UDP payload.
pub const SLOT_LEN: usize = 65_535;

/// Bounds of the TCP transport.
#[derive(Clone, Debug)]
pub struct TcpLimits {
    /// Open connections (accepted and outgoing together); an accept over the bound is closed at
    /// once, an outgoing connection over it is not opened (its message is dropped, counted).
    pub max_connections: usize,
    /// Bytes buffered per connection in each direction: a peer that sends a message larger than
    /// this without completing it, or stops reading while we have this much to send, is closed.
    /// (Messages are also bounded by the largest UDP payload, 65,535 bytes.) Worst-case memory is
    /// about `2 * max_connections * max_buffered_bytes_per_conn`; empty buffers are released.
    pub max_buffered_bytes_per_conn: usize,
    /// A connection with no traffic in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// An outgoing connection not established within this time is abandoned.
    pub connect_timeout: Duration,
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: 4096,
            max_buffered_bytes_per_conn: 128 * 1024,
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What to listen on and how the threads run.
#[derive(Clone, Debug)]
pub struct SocketConfig {
    pub udp_listen: Vec<SocketAddr>,
    pub tcp_listen: Vec<SocketAddr>,
    /// UDP worker threads (at least 1).
    pub workers: usize,
    /// Core ids to pin the workers to (worker `i` on `cores[i % len]`); `None`: not pinned.
    pub cores: Option<Vec<usize>>,
    /// Datagrams per `recvmmsg`/`sendmmsg` (1..=[`MAX_BATCH`]).
    pub batch: usize,
    pub tcp: TcpLimits,
    /// How long an idle worker waits for a datagram before it looks at its control channel.
    pub poll_interval: Duration,
    /// Messages waiting in the UDP-to-TCP hand-off channel (shared by all workers).
    pub handoff_capacity: usize,
    /// `SO_RCVBUF`/`SO_SNDBUF` of the UDP sockets (the kernel's default when `None`).
    pub udp_buffer_bytes: Option<usize>,
    /// How long [`ServerHandle::shutdown`] waits for the threads (TCP output is flushed during
    /// the first half of it).
    pub shutdown_timeout: Duration,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            udp_listen: Vec::new(),
            tcp_listen: Vec::new(),
            workers: 1,
            cores: None,
            batch: 32,
            tcp: TcpLimits::default(),
            poll_interval: Duration::from_millis(20),
            handoff_capacity: 4096,
            udp_buffer_bytes: None,
            shutdown_timeout: Duration::from_secs(2),
        }
    }
}

/// Errors starting or stopping the server.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("nothing to listen on (no UDP and no TCP address)")]
    NoListenAddress,
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    #[error("cannot bind {transport:?} {addr}: {source}")]
    Bind {
        transport: Transport,
        addr: SocketAddr,
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: io::Error,
    },
    #[error("a thread of the server has exited")]
    ThreadGone,
    #[error("{remaining} thread(s) still running after the shutdown timeout")]
    ShutdownTimeout { remaining: usize },
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Io { context, source }
}

/// Messages to the threads, applied between batches.
#[derive(Clone, Debug)]
pub enum Control {
    /// Swap the routing configuration ([`Proxy::set_config`]).
    SetConfig(Arc<ProxyConfig>),
    /// Replace the health prober (TCP thread only; the slot is taken by the first reader).
    SetProber(Arc<std::sync::Mutex<Option<HealthProber>>>),
    /// Stop: workers drain what the kernel has queued; the TCP thread stops accepting and
    /// reading, and flushes what it has to send.
    Shutdown,
}

/// Batch sizes are counted in power-of-two buckets: 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64.
pub const BATCH_BUCKETS: usize = 7;

/// Counters of one UDP worker (single writer: the worker).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// `recvmmsg` calls that returned at least one datagram.
    pub rx_batches: AtomicU64,
    /// `rx_batches` by size, see [`BATCH_BUCKETS`].
    pub batch_sizes: [AtomicU64; BATCH_BUCKETS],
    /// `sendmmsg` calls.
    pub tx_batches: AtomicU64,
    /// Datagrams the kernel refused (or with no socket of the destination's family).
    pub send_errors: AtomicU64,
    /// Receive errors other than "nothing queued".
    pub recv_errors: AtomicU64,
    /// Datagrams the core dropped (the reason is in the worker's [`ProxyStats`]).
    pub dropped: AtomicU64,
    /// Datagrams longer than a slot (cut by the kernel, dropped).
    pub truncated: AtomicU64,
    /// Messages handed to the TCP thread, and those dropped because its channel was full.
    pub tcp_handoffs: AtomicU64,
    pub tcp_handoff_drops: AtomicU64,
    pub config_reloads: AtomicU64,
}

impl WorkerStats {
    fn count_batch(&self, n: usize) {
        bump(&self.rx_batches);
        let bucket = (usize::BITS - 1 - n.max(1).leading_zeros()) as usize;
        bump(&self.batch_sizes[bucket.min(BATCH_BUCKETS - 1)]);
    }

    /// Mean datagrams per `recvmmsg` that returned any.
    pub fn mean_batch(&self) -> f64 {
        let b = self.rx_batches.load(Ordering::Relaxed);
        if b == 0 {
            return 0.0;
        }
        self.rx_packets.load(Ordering::Relaxed) as f64 / b as f64
    }
}

/// Counters of the TCP thread (single writer).
#[derive(Debug, Default)]
pub struct TcpStats {
    pub accepted: AtomicU64,
    /// Accepts closed at once because `max_connections` was reached.
    pub refused: AtomicU64,
    /// Outgoing connections started, and those that failed or timed out.
    pub connects: AtomicU64,
    pub connect_errors: AtomicU64,
    /// Open connections now (a gauge).
    pub open: AtomicU64,
    pub closed_by_peer: AtomicU64,
    pub closed_idle: AtomicU64,
    /// Unframable streams (answered 400/513 where possible).
    pub closed_malformed: AtomicU64,
    /// A connection over `max_buffered_bytes_per_conn` in either direction.
    pub closed_overflow: AtomicU64,
    pub closed_error: AtomicU64,
    pub rx_messages: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Messages queued on connections, and bytes written to them.
    pub tx_messages: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// RFC 5626 double-CRLF pings answered.
    pub pings: AtomicU64,
    /// Datagrams sent by the TCP thread (TCP-to-UDP forwards, UDP probes), and send failures.
    pub udp_tx: AtomicU64,
    pub udp_send_errors: AtomicU64,
    /// Messages for TCP that could not be queued anywhere (no connection possible).
    pub undeliverable: AtomicU64,
    /// Messages received from the workers.
    pub handoffs: AtomicU64,
    pub probes_sent: AtomicU64,
    pub config_reloads: AtomicU64,
}

/// Read access to one thread's counters.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    pub stats: Arc<WorkerStats>,
    pub proxy: Arc<ProxyStats>,
}

/// A message a UDP worker hands to the TCP thread.
#[derive(Debug)]
pub(crate) struct Handoff {
    pub to: SocketAddr,
    /// The local address the core saw the message on (our Via sent-by).
    pub local: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Signals the end of a thread (also on panic) by dropping.
pub(crate) struct DoneGuard(Sender<()>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// Wall-clock milliseconds: the `now` this backend gives the core (and what a [`HealthProber`]
/// handed to [`SocketServer::start`] should be created with).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The running server.
pub struct ServerHandle {
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    workers: Vec<WorkerInfo>,
    tcp_proxy: Arc<ProxyStats>,
    tcp_stats: Arc<TcpStats>,
    controls: Vec<Sender<Control>>,
    tcp_waker: Arc<mio::Waker>,
    threads: Vec<JoinHandle<()>>,
    done: Receiver<()>,
    shutdown_timeout: Duration,
    stopped: bool,
    handoff: TcpHandoff,
}

/// Hands messages the core forwards over TCP to the TCP thread, from any thread (the AF_XDP
/// workers use it; the UDP workers have their own copy of the same channel).
#[derive(Clone, Debug)]
pub struct TcpHandoff {
    tx: Sender<Handoff>,
    recycle: Receiver<Vec<u8>>,
    waker: Arc<mio::Waker>,
}

impl TcpHandoff {
    /// Queues `bytes` for `to` (sent-by `local`); `false` when the queue is full (count a drop).
    /// Call [`TcpHandoff::wake`] once per batch.
    pub fn send(&self, to: SocketAddr, local: SocketAddr, bytes: &[u8]) -> bool {
        let mut buf = self.recycle.try_recv().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        self.tx
            .try_send(Handoff {
                to,
                local,
                bytes: buf,
            })
            .is_ok()
    }

    /// Wakes the TCP thread to look at what was queued.
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }
}

/// What [`ServerHandle::shutdown`] did.
#[derive(Clone, Copy, Debug)]
pub struct ShutdownReport {
    pub threads: usize,
    pub elapsed: Duration,
}

/// Entry point: binds every socket, then starts the threads.
pub struct SocketServer;

impl SocketServer {
    /// Binds the listen addresses and starts the workers and the TCP thread. `make_proxy(i)`
    /// builds worker `i`'s proxy (`0..workers`) and, with `i == workers`, the TCP thread's.
    /// `prober`, when given, is run by the TCP thread; its probes leave from the first UDP
    /// listen address (the first TCP one if there is none).
    pub fn start(
        config: SocketConfig,
        make_proxy: impl Fn(usize) -> Proxy,
        prober: Option<HealthProber>,
    ) -> Result<ServerHandle, SocketError> {
        if config.udp_listen.is_empty() && config.tcp_listen.is_empty() {
            return Err(SocketError::NoListenAddress);
        }
        if config.workers == 0 && !config.udp_listen.is_empty() {
            return Err(SocketError::Config("workers must be at least 1"));
        }
        if config.batch == 0 || config.batch > MAX_BATCH {
            return Err(SocketError::Config("batch must be in 1..=64"));
        }
        if config.tcp.max_buffered_bytes_per_conn < 1024 {
            return Err(SocketError::Config(
                "max_buffered_bytes_per_conn must be at least 1024",
            ));
        }
        let workers = if config.udp_listen.is_empty() {
            0
        } else {
            config.workers
        };

        // UDP: worker w's socket for address a is udp[w][a]; the first bind fixes the port.
        let mut udp_addrs = Vec::with_capacity(config.udp_listen.len());
        let mut udp: Vec<Vec<UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
        for &requested in &config.udp_listen {
            let mut addr = requested;
            for sockets in udp.iter_mut() {
                let s = bind_udp(addr, config.udp_buffer_bytes).map_err(|source| {
                    SocketError::Bind {
                        transport: Transport::Udp,
                        addr,
                        source,
                    }
                })?;
                addr = s.local_addr().map_err(io_err("local address"))?;
                sockets.push(s);
            }
            udp_addrs.push(addr);
        }
        // The TCP thread sends UDP from duplicates of worker 0's sockets: the same sockets,
        // not new members of the SO_REUSEPORT groups (which would take a share of the traffic).
        let udp_dups = match udp.first() {
            Some(sockets) => sockets
                .iter()
                .map(|s| s.try_clone())
                .collect::<io::Result<Vec<_>>>()
                .map_err(io_err("duplicate UDP socket"))?,
            None => Vec::new(),
        };

        let mut tcp_listeners = Vec::with_capacity(config.tcp_listen.len());
        let mut tcp_addrs = Vec::with_capacity(config.tcp_listen.len());
        for &requested in &config.tcp_listen {
            let same_port = udp_addrs
                .iter()
                .find(|u| u.ip() == requested.ip())
                .filter(|_| requested.port() == 0)
                .map(|u| SocketAddr::new(requested.ip(), u.port()));
            let listener = match same_port.map(bind_tcp) {
                Some(Ok(l)) => l,
                _ => bind_tcp(requested).map_err(|source| SocketError::Bind {
                    transport: Transport::Tcp,
                    addr: requested,
                    source,
                })?,
            };
            tcp_addrs.push(listener.local_addr().map_err(io_err("local address"))?);
            tcp_listeners.push(listener);
        }

        let poll = mio::Poll::new().map_err(io_err("mio poll"))?;
        let tcp_waker =
            Arc::new(mio::Waker::new(poll.registry(), tcp::WAKER).map_err(io_err("mio waker"))?);
        let (handoff_tx, handoff_rx) = crossbeam_channel::bounded(config.handoff_capacity.max(1));
        let (recycle_tx, recycle_rx) = crossbeam_channel::bounded(config.handoff_capacity.max(1));
        let (done_tx, done) = crossbeam_channel::unbounded();

        let mut handle = ServerHandle {
            udp_addrs: udp_addrs.clone(),
            tcp_addrs: tcp_addrs.clone(),
            workers: Vec::with_capacity(workers),
            tcp_proxy: Arc::new(ProxyStats::default()),
            tcp_stats: Arc::new(TcpStats::default()),
            controls: Vec::with_capacity(workers + 1),
            handoff: TcpHandoff {
                tx: handoff_tx.clone(),
                recycle: recycle_rx.clone(),
                waker: tcp_waker.clone(),
            },
            tcp_waker: tcp_waker.clone(),
            threads: Vec::with_capacity(workers + 1),
            done,
            shutdown_timeout: config.shutdown_timeout,
            stopped: false,
        };

        // The TCP thread first: workers may hand off from their first batch on.
        let tcp_proxy = make_proxy(workers);
        handle.tcp_proxy = tcp_proxy.stats().clone();
        let (control_tx, control_rx) = crossbeam_channel::bounded(16);
        let local_probe = udp_addrs.first().or(tcp_addrs.first()).copied();
        let driver = tcp::TcpDriver::new(tcp::TcpSetup {
            poll,
            listeners: tcp_listeners.into_iter().zip(tcp_addrs.clone()).collect(),
            udp: udp_dups.into_iter().zip(udp_addrs.clone()).collect(),
            proxy: tcp_proxy,
            stats: handle.tcp_stats.clone(),
            limits: config.tcp.clone(),
            control: control_rx,
            handoff: handoff_rx,
            recycle: recycle_tx,
            prober: prober.zip(local_probe),
            probe_local: local_probe,
            drain_time: config.shutdown_timeout / 2,
        });
        let done_guard = DoneGuard(done_tx.clone());
        let spawned = std::thread::Builder::new()
            .name("sipd-tcp".into())
            .spawn(move || {
                let _done = done_guard;
                driver.run();
            });
        handle.push_thread(spawned, control_tx)?;

        for (id, sockets) in udp.into_iter().enumerate() {
            let proxy = make_proxy(id);
            let info = WorkerInfo {
                stats: Arc::new(WorkerStats::default()),
                proxy: proxy.stats().clone(),
            };
            let (control_tx, control_rx) = crossbeam_channel::bounded(16);
            let worker = udp::UdpWorker {
                sockets: sockets.into_iter().zip(udp_addrs.clone()).collect(),
                proxy,
                stats: info.stats.clone(),
                control: control_rx,
                handoff: handoff_tx.clone(),
                recycle: recycle_rx.clone(),
                tcp_waker: tcp_waker.clone(),
                batch: config.batch,
                poll_interval: config.poll_interval,
            };
            let core = config
                .cores
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c[id % c.len()]);
            let done_guard = DoneGuard(done_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sipd-udp{id}"))
                .spawn(move || {
                    let _done = done_guard;
                    if let Some(id) = core
                        && !core_affinity::set_for_current(core_affinity::CoreId { id })
                    {
                        tracing::warn!(core = id, "cannot pin worker");
                    }
                    worker.run();
                });
            handle.workers.push(info);
            handle.push_thread(spawned, control_tx)?;
        }
        tracing::info!(udp = ?handle.udp_addrs, tcp = ?handle.tcp_addrs, workers, "socket backend started");
        Ok(handle)
    }
}

impl ServerHandle {
    fn push_thread(
        &mut self,
        spawned: io::Result<JoinHandle<()>>,
        control: Sender<Control>,
    ) -> Result<(), SocketError> {
        match spawned {
            Ok(t) => {
                self.threads.push(t);
                self.controls.push(control);
                Ok(())
            }
            // `self` is dropped by the caller's `?`, which stops what did start.
            Err(e) => Err(SocketError::Io {
                context: "spawn thread",
                source: e,
            }),
        }
    }

    /// A sender into the TCP thread's hand-off queue.
    pub fn tcp_handoff(&self) -> TcpHandoff {
        self.handoff.clone()
    }

    /// Every bound address with its transport (UDP first).
    pub fn local_addrs(&self) -> Vec<(Transport, SocketAddr)> {
        let udp = self.udp_addrs.iter().map(|&a| (Transport::Udp, a));
        udp.chain(self.tcp_addrs.iter().map(|&a| (Transport::Tcp, a)))
            .collect()
    }

    /// The bound UDP addresses, in the order of [`SocketConfig::udp_listen`].
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    /// The bound TCP addresses, in the order of [`SocketConfig::tcp_listen`].
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// The UDP workers' counters and proxy counters.
    pub fn workers(&self) -> &[WorkerInfo] {
        &self.workers
    }

    /// The TCP thread's counters and its proxy's.
    pub fn tcp_stats(&self) -> &Arc<TcpStats> {
        &self.tcp_stats
    }

    pub fn tcp_proxy_stats(&self) -> &Arc<ProxyStats> {
        &self.tcp_proxy
    }

    /// Every proxy's counters (the workers', then the TCP thread's).
    pub fn proxy_stats(&self) -> Vec<Arc<ProxyStats>> {
        self.workers
            .iter()
            .map(|w| w.proxy.clone())
            .chain(std::iter::once(self.tcp_proxy.clone()))
            .collect()
    }

    /// Sends a new routing configuration to every thread; each applies it between two batches.
    pub fn reload(&self, config: Arc<ProxyConfig>) -> Result<(), SocketError> {
        for control in &self.controls {
            control
                .send_timeout(Control::SetConfig(config.clone()), Duration::from_secs(1))
                .map_err(|_| SocketError::ThreadGone)?;
        }
        let _ = self.tcp_waker.wake();
        Ok(())
    }

    /// Replaces the health prober (a reload that changed the groups); the TCP thread runs it.
    pub fn set_prober(&self, prober: HealthProber) -> Result<(), SocketError> {
        let slot = Arc::new(std::sync::Mutex::new(Some(prober)));
        // controls[0] is the TCP thread (started first).
        let tcp = self.controls.first().ok_or(SocketError::ThreadGone)?;
        tcp.send_timeout(Control::SetProber(slot), Duration::from_secs(1))
            .map_err(|_| SocketError::ThreadGone)?;
        let _ = self.tcp_waker.wake();
        Ok(())
    }

    /// Stops accepting, lets the threads drain (bounded by the configured shutdown timeout) and
    /// joins them. Threads still running at the deadline are left detached and reported.
    pub fn shutdown(mut self) -> Result<ShutdownReport, SocketError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<ShutdownReport, SocketError> {
        let started = Instant::now();
        if self.stopped {
            return Ok(ShutdownReport {
                threads: 0,
                elapsed: Duration::ZERO,
            });
        }
        self.stopped = true;
        for control in &self.controls {
            // A full channel still sees the disconnect below.
            let _ = control.try_send(Control::Shutdown);
        }
        self.controls.clear();
        let _ = self.tcp_waker.wake();
        let deadline = started + self.shutdown_timeout;
        let total = self.threads.len();
        let mut finished = 0;
        while finished < total && self.done.recv_deadline(deadline).is_ok() {
            finished += 1;
        }
        let threads = std::mem::take(&mut self.threads);
        if finished < total {
            tracing::warn!(remaining = total - finished, "socket threads still running");
            return Err(SocketError::ShutdownTimeout {
                remaining: total - finished,
            });
        }
        for t in threads {
            let _ = t.join();
        }
        Ok(ShutdownReport {
            threads: total,
            elapsed: started.elapsed(),
        })
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn bind_udp(addr: SocketAddr, buffer: Option<usize>) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(!addr.ip().is_unspecified())?;
    }
    s.set_reuse_port(true)?;
    if let Some(bytes) = buffer {
        s.set_recv_buffer_size(bytes)?;
        s.set_send_buffer_size(bytes)?;
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn bind_tcp(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// A v4-mapped IPv6 address (from a dual-stack socket) as the IPv4 address it is.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
