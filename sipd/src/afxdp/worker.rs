//! One AF_XDP socket and its loop (see the module docs for frame ownership).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::{FrameHandler, NextHop, Verdict};
use crate::wire::frame::{UdpFrame, UdpHeaders, emit_udp_headers, parse_udp, payload_offset};

/// Whether to ask for zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZeroCopy {
    /// Try zero-copy, fall back to copy mode.
    #[default]
    Auto,
    /// Zero-copy or fail.
    Require,
    /// Copy mode only.
    Off,
}

/// How the socket ended up bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// The driver DMAs into the UMEM.
    ZeroCopy,
    /// The kernel copies between its buffers and the UMEM (veth, drivers without AF_XDP support).
    Copy,
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Interface name.
    pub iface: String,
    /// RX queue to bind.
    pub queue: u32,
    /// Frames given to the fill ring; the same number again forms the TX pool. Power of two.
    pub ring_frames: u32,
    /// Frame size (power of two, 2048 or 4096).
    pub frame_size: u32,
    /// Largest RX batch.
    pub batch: usize,
    /// Answers put on the TX ring and sent while an RX batch is still being handled, at most
    /// this many at a time: a datagram early in a batch leaves without waiting for the rest of
    /// the batch to be handled. The default, 32, is what one copy-mode `sendto` sends anyway
    /// (`COPY_TX_BUDGET`), so a full batch costs no more kicks than sending it whole.
    pub tx_flush: usize,
    /// Core to pin the worker thread to.
    pub core: Option<usize>,
    /// Zero-copy preference.
    pub zero_copy: ZeroCopy,
    /// How long an idle worker sleeps in `poll` before looking at its stop flag (ms).
    pub idle_poll_ms: i32,
    /// TTL / hop limit of what it sends.
    pub ttl: u8,
    /// Start of the `now_ms` clock handed to the handler (share it between workers).
    pub epoch: Instant,
}

impl WorkerConfig {
    /// Defaults for `iface` queue `queue`: 2048 + 2048 frames of 2 KiB (8 MiB of UMEM), batches of
    /// 64 sent in parts of 32, zero-copy attempted.
    pub fn new(iface: impl Into<String>, queue: u32) -> Self {
        WorkerConfig {
            iface: iface.into(),
            queue,
            ring_frames: 2048,
            frame_size: 2048,
            batch: 64,
            tx_flush: 32,
            core: None,
            zero_copy: ZeroCopy::Auto,
            idle_poll_ms: 100,
            ttl: 64,
            epoch: Instant::now(),
        }
    }
}

/// Errors setting a worker up.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A setting is out of range.
    #[error("bad worker setting: {0}")]
    Config(String),
    /// The UMEM could not be created (locked memory: `ulimit -l`, CAP_IPC_LOCK).
    #[error("creating the UMEM: {0}")]
    Umem(String),
    /// The socket could not be created or bound.
    #[error("binding AF_XDP socket to {iface} queue {queue} ({mode}): {detail}")]
    Bind {
        /// Interface.
        iface: String,
        /// Queue.
        queue: u32,
        /// Mode tried.
        mode: &'static str,
        /// What the library said, with the OS error.
        detail: String,
    },
}

/// Counters of one worker, updated once per batch.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Frames received.
    pub rx: AtomicU64,
    /// Frames put on the TX ring.
    pub tx: AtomicU64,
    /// Frames that were not a UDP datagram the wire parser accepts.
    pub unparsed: AtomicU64,
    /// Datagrams the handler dropped.
    pub handler_dropped: AtomicU64,
    /// Datagrams dropped for want of a free TX frame.
    pub no_tx_frame: AtomicU64,
    /// Datagrams dropped because the next hop's MAC is unknown.
    pub no_neighbour: AtomicU64,
    /// Datagrams dropped because the handler's answer could not be framed (family change,
    /// oversize).
    pub unframed: AtomicU64,
    /// `sendto` kicks.
    pub tx_kicks: AtomicU64,
    /// The kernel's count of datagrams dropped because the RX ring was full (the worker fell
    /// behind), read from the socket every `XSK_STATS_EVERY`.
    pub rx_ring_full: AtomicU64,
    /// The kernel's count of datagrams dropped for an empty fill ring.
    pub rx_fill_empty: AtomicU64,
    /// The kernel's count of datagrams dropped for other reasons (e.g. too large for a frame).
    pub rx_dropped: AtomicU64,
}

/// How often a worker copies the kernel's socket statistics into [`WorkerStats`].
pub const XSK_STATS_EVERY: Duration = Duration::from_millis(250);

/// A plain copy of [`WorkerStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct WorkerStatsSnapshot {
    pub rx: u64,
    pub tx: u64,
    pub unparsed: u64,
    pub handler_dropped: u64,
    pub no_tx_frame: u64,
    pub no_neighbour: u64,
    pub unframed: u64,
    pub tx_kicks: u64,
    pub rx_ring_full: u64,
    pub rx_fill_empty: u64,
    pub rx_dropped: u64,
}

impl WorkerStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> WorkerStatsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WorkerStatsSnapshot {
            rx: l(&self.rx),
            tx: l(&self.tx),
            unparsed: l(&self.unparsed),
            handler_dropped: l(&self.handler_dropped),
            no_tx_frame: l(&self.no_tx_frame),
            no_neighbour: l(&self.no_neighbour),
            unframed: l(&self.unframed),
            tx_kicks: l(&self.tx_kicks),
            rx_ring_full: l(&self.rx_ring_full),
            rx_fill_empty: l(&self.rx_fill_empty),
            rx_dropped: l(&self.rx_dropped),
        }
    }
}

/// Batch-local counters, added to the shared ones once per batch.
#[derive(Default)]
struct Local {
    rx: u64,
    tx: u64,
    unparsed: u64,
    handler_dropped: u64,
    no_tx_frame: u64,
    no_neighbour: u64,
    unframed: u64,
    tx_kicks: u64,
}

impl Local {
    fn flush(&mut self, s: &WorkerStats) {
        let add = |a: &AtomicU64, v: &mut u64| {
            if *v != 0 {
                a.fetch_add(*v, Ordering::Relaxed);
                *v = 0;
            }
        };
        add(&s.rx, &mut self.rx);
        add(&s.tx, &mut self.tx);
        add(&s.unparsed, &mut self.unparsed);
        add(&s.handler_dropped, &mut self.handler_dropped);
        add(&s.no_tx_frame, &mut self.no_tx_frame);
        add(&s.no_neighbour, &mut self.no_neighbour);
        add(&s.unframed, &mut self.unframed);
        add(&s.tx_kicks, &mut self.tx_kicks);
    }
}

/// A bound AF_XDP socket with its UMEM, ready to run (create it, register [`Worker::fd`] in the
/// XSKMAP, then [`Worker::run`] it, usually on its own thread via [`Worker::spawn`]).
pub struct Worker {
    cfg: WorkerConfig,
    mode: BindMode,
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    tx_q: TxQueue,
    rx_q: RxQueue,
    frames: Vec<FrameDesc>,
    stats: Arc<WorkerStats>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("iface", &self.cfg.iface)
            .field("queue", &self.cfg.queue)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Creates the UMEM and binds the socket: zero-copy first (unless disabled), then copy mode.
    /// libxdp's own XDP program is never loaded; register [`Worker::fd`] in sipd's XSKMAP.
    pub fn bind(cfg: WorkerConfig) -> Result<Self, WorkerError> {
        let attempts: &[BindMode] = match cfg.zero_copy {
            ZeroCopy::Auto => &[BindMode::ZeroCopy, BindMode::Copy],
            ZeroCopy::Require => &[BindMode::ZeroCopy],
            ZeroCopy::Off => &[BindMode::Copy],
        };
        let mut last = None;
        for &mode in attempts {
            match Self::bind_mode(&cfg, mode) {
                Ok(w) => {
                    tracing::info!(iface = %cfg.iface, queue = cfg.queue, ?mode,
                        "AF_XDP socket bound");
                    return Ok(w);
                }
                Err(e) => {
                    tracing::info!(iface = %cfg.iface, queue = cfg.queue, ?mode, error = %e,
                        "AF_XDP bind failed");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| WorkerError::Config("no bind mode to try".into())))
    }

    fn bind_mode(cfg: &WorkerConfig, mode: BindMode) -> Result<Self, WorkerError> {
        let bad = |m: String| WorkerError::Config(m);
        if !cfg.ring_frames.is_power_of_two() || cfg.batch == 0 || cfg.tx_flush == 0 {
            return Err(bad(format!(
                "ring_frames {} must be a power of two, batch and tx_flush > 0",
                cfg.ring_frames
            )));
        }
        let ring = QueueSize::new(cfg.ring_frames).map_err(|e| bad(e.to_string()))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(cfg.frame_size).map_err(|e| bad(e.to_string()))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        let total = NonZeroU32::new(cfg.ring_frames * 2).ok_or_else(|| bad("no frames".into()))?;
        let (umem, frames) =
            Umem::new(umem_cfg, total, false).map_err(|e| WorkerError::Umem(error_chain(&e)))?;

        let mut bind = BindFlags::XDP_USE_NEED_WAKEUP;
        bind |= match mode {
            BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY,
            BindMode::Copy => BindFlags::XDP_COPY,
        };
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        let iface: Interface = cfg
            .iface
            .parse()
            .map_err(|_| bad(format!("interface name {:?}", cfg.iface)))?;
        let bind_err = |detail: String| WorkerError::Bind {
            iface: cfg.iface.clone(),
            queue: cfg.queue,
            mode: match mode {
                BindMode::ZeroCopy => "zero-copy",
                BindMode::Copy => "copy",
            },
            detail,
        };
        // SAFETY: the UMEM is new and used by this socket only, so no frame is aliased; the
        // returned queues keep the UMEM and the socket alive.
        let (tx_q, rx_q, fq_cq) = unsafe { Socket::new(sock_cfg, &umem, &iface, cfg.queue) }
            .map_err(|e| bind_err(error_chain(&e)))?;
        let (mut fq, cq) = fq_cq.ok_or_else(|| bind_err("UMEM already bound elsewhere".into()))?;
        // Fill the fill ring now, before the caller puts the socket into the XSKMAP: a datagram
        // redirected to a socket with an empty fill ring is dropped by the kernel, so a burst
        // arriving between registration and the worker's first loop would be lost.
        let n_ring = cfg.ring_frames as usize;
        // SAFETY: these frames are new and owned by no one else; they now belong to the kernel.
        let filled = unsafe { fq.produce(&frames[..n_ring.min(frames.len())]) };
        if filled != n_ring.min(frames.len()) {
            return Err(bind_err(format!(
                "fill ring took {filled} of {n_ring} frames"
            )));
        }
        Ok(Worker {
            cfg: cfg.clone(),
            mode,
            umem,
            fq,
            cq,
            tx_q,
            rx_q,
            frames,
            stats: Arc::default(),
        })
    }

    /// The socket's descriptor, for the XSKMAP.
    pub fn fd(&self) -> RawFd {
        self.rx_q.fd().as_raw_fd()
    }

    /// The RX queue it is bound to.
    pub fn queue(&self) -> u32 {
        self.cfg.queue
    }

    /// Zero-copy or copy.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Its counters (shareable with a stats reader).
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs the loop on a new thread pinned to `cfg.core` (if set) until `stop` is set.
    pub fn spawn<H, N>(
        self,
        handler: H,
        next_hop: N,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>>
    where
        H: FrameHandler + Send + 'static,
        N: NextHop + Send + 'static,
    {
        let name = format!("sipd-xsk-{}", self.cfg.queue);
        std::thread::Builder::new().name(name).spawn(move || {
            if let Some(core) = self.cfg.core {
                let ok = core_affinity::set_for_current(core_affinity::CoreId { id: core });
                tracing::info!(queue = self.cfg.queue, core, pinned = ok, "worker thread");
            }
            self.run(handler, next_hop, &stop);
        })
    }

    /// The loop: receive a batch, hand each datagram to `handler`, refill, transmit, recycle
    /// completions. Returns when `stop` is set (checked every batch and every idle poll).
    pub fn run<H: FrameHandler, N: NextHop>(
        mut self,
        mut handler: H,
        mut next_hop: N,
        stop: &AtomicBool,
    ) {
        let n_ring = self.cfg.ring_frames as usize;
        let batch = self.cfg.batch.min(n_ring);
        let tx_flush = self.cfg.tx_flush.min(batch);
        let mode = self.mode;
        let epoch = self.cfg.epoch;
        let ttl = self.cfg.ttl;
        let stats = self.stats.clone();

        // The first `n_ring` frames went to the fill ring in `bind`; the rest are the TX pool.
        let (_, pool) = self.frames.split_at(n_ring);
        let mut free_tx: Vec<FrameDesc> = pool.to_vec();

        let mut rx = vec![FrameDesc::default(); batch];
        // The batch's frames as parsed in the look-ahead pass, for the handling pass.
        let mut metas: Vec<Option<UdpFrame>> = Vec::with_capacity(batch);
        let mut done = vec![FrameDesc::default(); n_ring];
        let mut tx_batch: Vec<FrameDesc> = Vec::with_capacity(batch);
        // RX frames the fill ring had no room for yet (the kernel publishes what it took from
        // the fill ring lazily, so it can look full while we hold frames); retried every batch.
        let mut refill: Vec<FrameDesc> = Vec::with_capacity(n_ring);
        let mut in_flight = 0usize;
        let mut ident: u16 = 0;
        let mut local = Local::default();

        let mut xsk_stats_due = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= xsk_stats_due {
                xsk_stats_due = now + XSK_STATS_EVERY;
                self.copy_xsk_stats(&stats);
            }
            if in_flight > 0 {
                // SAFETY: completed descriptors are frames we produced on the TX ring; the kernel
                // is done with them, so they return to the pool.
                let n = unsafe { self.cq.consume(&mut done) };
                free_tx.extend_from_slice(&done[..n]);
                in_flight -= n;
            }

            // SAFETY: RX descriptors name frames of this UMEM that the kernel filled and hands
            // back to us.
            let n = unsafe { self.rx_q.consume(&mut rx) };
            if n == 0 {
                if in_flight > 0 {
                    kick_tx(&mut self.tx_q, mode, n_ring, &mut local);
                    // Completions are due soon; don't sleep long.
                    let _ = self.rx_q.poll(0);
                } else {
                    // Sleeping in poll() also wakes the driver up for the fill ring when it
                    // asked for that (needs_wakeup).
                    let _ = self.rx_q.poll(self.cfg.idle_poll_ms);
                }
                local.flush(&stats);
                continue;
            }
            local.rx += n as u64;
            let now_ms = now.duration_since(epoch).as_millis() as u64;

            // Two passes: the handler looks at every datagram first (the proxy starts loading
            // the dialog table's lines), so the batch's cache misses overlap.
            metas.clear();
            for desc in &rx[..n] {
                // SAFETY: `desc` came off the RX ring: ours until we put it on the fill ring,
                // and only read here.
                let data = unsafe { self.umem.data(desc) };
                let frame = data.contents();
                let meta = parse_udp(frame).ok();
                if let Some(meta) = &meta {
                    handler.look_ahead(&frame[meta.payload.clone()]);
                }
                metas.push(meta);
            }
            for (desc, meta) in rx[..n].iter().zip(metas.drain(..)) {
                // SAFETY: as in the first pass.
                let data = unsafe { self.umem.data(desc) };
                let frame = data.contents();
                let Some(meta) = meta else {
                    local.unparsed += 1;
                    continue;
                };
                let Some(mut txd) = free_tx.pop() else {
                    local.no_tx_frame += 1;
                    continue;
                };
                // SAFETY: `txd` is from the free pool, so neither the kernel nor another view
                // holds it; the RX frame borrowed above is a different frame.
                let mut out = unsafe { self.umem.data_mut(&mut txd) };
                let mut cur = out.cursor();
                let cap = cur.buf_len();
                cur.set_pos(cap);
                let buf = out.contents_mut();
                let off = payload_offset(meta.dst.is_ipv6(), meta.vlan_tci.is_some());
                let verdict = handler.handle(
                    now_ms,
                    meta.src,
                    meta.dst,
                    &frame[meta.payload.clone()],
                    &mut buf[off..],
                );
                let sent_len = match verdict {
                    Verdict::Drop => {
                        local.handler_dropped += 1;
                        None
                    }
                    Verdict::Send { to, len } => frame_reply(
                        &meta,
                        to,
                        len,
                        ttl,
                        &mut ident,
                        buf,
                        &mut next_hop,
                        &mut local,
                    ),
                };
                match sent_len {
                    Some(l) => {
                        out.cursor().set_pos(l);
                        tx_batch.push(txd);
                    }
                    None => free_tx.push(txd),
                }
                if tx_batch.len() >= tx_flush {
                    send_tx(
                        &mut self.tx_q,
                        mode,
                        n_ring,
                        &mut tx_batch,
                        &mut free_tx,
                        &mut in_flight,
                        &mut local,
                    );
                }
            }

            // The fill ring has as many slots as there are RX frames, so whatever does not fit
            // now fits once the kernel publishes what it consumed.
            refill.extend_from_slice(&rx[..n]);
            // SAFETY: every frame of the batch was only read above and goes back to the kernel
            // (with any the fill ring had no room for last time); nothing else holds them.
            let refilled = unsafe { self.fq.produce(&refill) };
            refill.drain(..refilled);

            if !tx_batch.is_empty() {
                send_tx(
                    &mut self.tx_q,
                    mode,
                    n_ring,
                    &mut tx_batch,
                    &mut free_tx,
                    &mut in_flight,
                    &mut local,
                );
            } else if self.fq.needs_wakeup() {
                let _ = self.rx_q.poll(0);
            }
            local.flush(&stats);
        }
        local.flush(&stats);
        self.copy_xsk_stats(&stats);
        tracing::info!(queue = self.cfg.queue, stats = ?stats.snapshot(), "worker stopped");
    }
}

impl Worker {
    /// Copies the kernel's drop counters of the socket (one `getsockopt`).
    fn copy_xsk_stats(&self, stats: &WorkerStats) {
        if let Ok(x) = self.rx_q.fd().xdp_statistics() {
            stats
                .rx_ring_full
                .store(x.rx_ring_full(), Ordering::Relaxed);
            stats
                .rx_fill_empty
                .store(x.rx_fill_ring_empty_descs(), Ordering::Relaxed);
            stats.rx_dropped.store(x.rx_dropped(), Ordering::Relaxed);
        }
    }
}

/// Puts the answers in `tx_batch` on the TX ring and sends them (see [`kick_tx`]); if the ring
/// cannot take them they go back to the pool, counted.
#[inline]
fn send_tx(
    tx_q: &mut TxQueue,
    mode: BindMode,
    ring: usize,
    tx_batch: &mut Vec<FrameDesc>,
    free_tx: &mut Vec<FrameDesc>,
    in_flight: &mut usize,
    local: &mut Local,
) {
    // SAFETY: the frames hold complete datagrams and are handed to the kernel until they come
    // back on the completion ring. The TX ring is as large as the pool.
    let produced = unsafe { tx_q.produce(tx_batch) };
    if produced == tx_batch.len() {
        *in_flight += produced;
        local.tx += produced as u64;
    } else {
        local.no_tx_frame += tx_batch.len() as u64;
        free_tx.extend_from_slice(tx_batch);
    }
    tx_batch.clear();
    kick_tx(tx_q, mode, ring, local);
}

/// Wakes the kernel to send what is on the TX ring, if it asked for that.
///
/// In copy mode one `sendto` sends at most a fixed budget of frames (32, the kernel's
/// `TX_BATCH_SIZE`) and leaves the rest on the ring; kicking once per RX batch of 64 then
/// let the ring fill up, every TX frame end up queued, and received datagrams be dropped for
/// want of a TX frame (a quarter of them under full blast on veth). So in copy mode it kicks
/// again until the ring is empty: `sendto` runs the transmission synchronously there, so
/// each kick either takes frames off the ring or the device is busy, and the loop is bounded
/// by what a whole ring needs. In zero-copy mode the driver drains the ring asynchronously
/// after one kick.
fn kick_tx(tx_q: &mut TxQueue, mode: BindMode, ring: usize, local: &mut Local) {
    if !tx_q.needs_wakeup() {
        return;
    }
    local.tx_kicks += 1;
    let _ = tx_q.wakeup();
    if mode != BindMode::Copy {
        return;
    }
    let mut left = ring.div_ceil(COPY_TX_BUDGET) + 1;
    loop {
        let pending = ring.saturating_sub(tx_q.nb_free_exact() as usize);
        if pending == 0 || left == 0 || !tx_q.needs_wakeup() {
            return;
        }
        let before = pending;
        local.tx_kicks += 1;
        let _ = tx_q.wakeup();
        left -= 1;
        if ring.saturating_sub(tx_q.nb_free_exact() as usize) >= before {
            // Nothing taken: the device is busy; the next batch or idle pass tries again.
            return;
        }
    }
}

/// Frames the kernel sends per `sendto` in copy mode (`TX_BATCH_SIZE` in `net/xdp/xsk.c`); only
/// sizes the bound on kicks per batch.
const COPY_TX_BUDGET: usize = 32;

/// Writes the headers of the handler's answer; the frame length, or `None` (counted) if it
/// cannot be sent.
#[allow(clippy::too_many_arguments)]
#[inline]
fn frame_reply<N: NextHop>(
    rx: &crate::wire::frame::UdpFrame,
    to: SocketAddr,
    len: usize,
    ttl: u8,
    ident: &mut u16,
    buf: &mut [u8],
    next_hop: &mut N,
    local: &mut Local,
) -> Option<usize> {
    if to.is_ipv6() != rx.dst.is_ipv6() {
        // The payload was written for the received family's header room.
        local.unframed += 1;
        return None;
    }
    let dst_mac = if to.ip() == rx.src.ip() {
        rx.src_mac
    } else {
        match next_hop.lookup(to.ip()) {
            Some(m) => m,
            None => {
                local.no_neighbour += 1;
                return None;
            }
        }
    };
    *ident = ident.wrapping_add(1);
    let h = UdpHeaders {
        src_mac: rx.dst_mac,
        dst_mac,
        vlan_tci: rx.vlan_tci,
        src: rx.dst,
        dst: to,
        ttl,
        ipv4_ident: *ident,
    };
    match emit_udp_headers(buf, &h, len) {
        Ok(l) => Some(l),
        Err(_) => {
            local.unframed += 1;
            None
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
