//! The TCP thread: SIP over TCP on kernel sockets (RFC 3261 §18), one `mio` event loop.
//!
//! - **Listeners** accept up to `max_connections` open connections; an accept over the bound is
//!   closed at once (counted).
//! - **Reading**: the bytes of a connection are kept in its input buffer (at most
//!   `max_buffered_bytes_per_conn`) and framed by Content-Length ([`super::framing`]); each
//!   complete message goes to this thread's own [`Proxy`] with the connection's peer as the
//!   source. CRLF keep-alives are skipped, double-CRLF pings answered. A stream that cannot be
//!   framed is answered 400/513 where the request's head is readable and closed.
//! - **Sending**: a reply, or a forward to the peer of an open connection (accepted or ours),
//!   reuses that connection (§18.2.2: responses go back on the connection the request came on);
//!   a forward to anyone else opens a connection (non-blocking connect, bounded by
//!   `connect_timeout`) and queues the message until it is established. Forwards over UDP leave
//!   from the UDP listen socket of the receiving address (a duplicate of worker 0's), so answers
//!   come back to the workers.
//! - **Timers**: connections idle for `idle_timeout` are closed; the [`HealthProber`] runs here.
//! - **Hand-off**: messages the UDP workers forward over TCP arrive on a bounded channel and are
//!   sent like the thread's own; their buffers go back to the workers' pool.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::framing::{Frame, PING_LEN, PONG, next_frame, write_framing_reject};
use super::{Control, Handoff, SLOT_LEN, TcpLimits, TcpStats, canonical, now_ms};
use crate::proxy::stats::bump;
use crate::proxy::{Action, HealthProber, Input, Proxy, Transport};
use crate::sip::message::DEFAULT_MAX_MESSAGE_LEN;

pub(crate) const WAKER: Token = Token(usize::MAX);
/// Hand-off messages taken per turn of the loop (the rest wait for the next turn).
const HANDOFF_PER_TURN: usize = 4096;
/// A connection's empty buffer keeps at most this much capacity.
const KEEP_CAPACITY: usize = 16 * 1024;
/// Bytes read per `read(2)`.
const READ_CHUNK: usize = 64 * 1024;

pub(crate) struct TcpSetup {
    pub poll: Poll,
    pub listeners: Vec<(std::net::TcpListener, SocketAddr)>,
    pub udp: Vec<(UdpSocket, SocketAddr)>,
    pub proxy: Proxy,
    pub stats: Arc<TcpStats>,
    pub limits: TcpLimits,
    pub control: Receiver<Control>,
    pub handoff: Receiver<Handoff>,
    pub recycle: Sender<Vec<u8>>,
    /// The prober and the local address its probes are written for.
    pub prober: Option<(HealthProber, SocketAddr)>,
    /// Where probes leave from when a prober arrives later (reload).
    pub probe_local: Option<SocketAddr>,
    pub drain_time: Duration,
}

/// Why a connection was closed (which counter to bump).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Close {
    Peer,
    Idle,
    Malformed,
    Overflow,
    Error,
    ConnectFailed,
}

struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// The local address the core sees messages of this connection arrive on.
    local: SocketAddr,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    last_active: Instant,
    /// Set while an outgoing connect is in progress (when it started).
    connecting: Option<Instant>,
    /// Registered for writable events too.
    write_interest: bool,
    /// Close once the output is flushed (after a framing error).
    closing: bool,
}

impl Conn {
    fn pending(&self) -> usize {
        self.outbuf.len() - self.out_pos
    }

    /// Queues bytes; `false` when that would exceed the bound.
    fn queue(&mut self, bytes: &[u8], limit: usize) -> bool {
        if self.pending() + bytes.len() > limit {
            return false;
        }
        if self.out_pos > 0 && self.out_pos == self.outbuf.len() {
            self.outbuf.clear();
            self.out_pos = 0;
        }
        self.outbuf.extend_from_slice(bytes);
        true
    }
}

pub(crate) struct TcpDriver {
    poll: Poll,
    listeners: Vec<(TcpListener, SocketAddr)>,
    udp: Vec<(UdpSocket, SocketAddr)>,
    conns: HashMap<Token, Conn>,
    by_peer: HashMap<SocketAddr, Token>,
    next_token: usize,
    proxy: Proxy,
    stats: Arc<TcpStats>,
    limits: TcpLimits,
    control: Receiver<Control>,
    handoff: Receiver<Handoff>,
    recycle: Sender<Vec<u8>>,
    prober: Option<(HealthProber, SocketAddr)>,
    probe_local: Option<SocketAddr>,
    drain_time: Duration,
    /// The core's transmit buffer.
    tx: Vec<u8>,
    /// Where reads land before they join a connection's input.
    scratch: Vec<u8>,
    /// Connections to close at the end of this turn (overflowed while another was handled).
    doomed: Vec<(Token, Close)>,
}

impl TcpDriver {
    pub fn new(setup: TcpSetup) -> TcpDriver {
        let listeners: Vec<(TcpListener, SocketAddr)> = setup
            .listeners
            .into_iter()
            .map(|(l, a)| (TcpListener::from_std(l), a))
            .collect();
        TcpDriver {
            next_token: listeners.len(),
            poll: setup.poll,
            listeners,
            udp: setup.udp,
            conns: HashMap::new(),
            by_peer: HashMap::new(),
            proxy: setup.proxy,
            stats: setup.stats,
            limits: setup.limits,
            control: setup.control,
            handoff: setup.handoff,
            recycle: setup.recycle,
            prober: setup.prober,
            probe_local: setup.probe_local,
            drain_time: setup.drain_time,
            tx: vec![0; SLOT_LEN],
            scratch: vec![0; READ_CHUNK],
            doomed: Vec::new(),
        }
    }

    fn max_message(&self) -> usize {
        self.limits
            .max_buffered_bytes_per_conn
            .min(DEFAULT_MAX_MESSAGE_LEN)
    }

    pub fn run(mut self) {
        for (i, (listener, addr)) in self.listeners.iter_mut().enumerate() {
            if let Err(e) = self
                .poll
                .registry()
                .register(listener, Token(i), Interest::READABLE)
            {
                tracing::error!(%addr, error = %e, "cannot register TCP listener");
            }
        }
        let mut events = Events::with_capacity(256);
        let sweep_every = (self.limits.idle_timeout / 4)
            .min(self.limits.connect_timeout / 2)
            .clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut next_sweep = Instant::now() + sweep_every;
        loop {
            let mut timeout = next_sweep.saturating_duration_since(Instant::now());
            if let Some((prober, _)) = &self.prober
                && let Some(at) = prober.poll_timeout()
            {
                timeout = timeout.min(Duration::from_millis(at.saturating_sub(now_ms())));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "TCP poll failed");
                return;
            }
            for event in events.iter() {
                match event.token() {
                    WAKER => {}
                    Token(i) if i < self.listeners.len() => self.accept(i),
                    token => self.on_event(token, event.is_readable(), event.is_writable()),
                }
            }
            if self.take_control() {
                break;
            }
            self.take_handoffs();
            self.run_prober();
            if Instant::now() >= next_sweep {
                self.sweep();
                next_sweep = Instant::now() + sweep_every;
            }
            self.close_doomed();
        }
        self.drain(&mut events);
    }

    /// Applies control messages; `true` when told to stop.
    fn take_control(&mut self) -> bool {
        loop {
            match self.control.try_recv() {
                Ok(Control::SetConfig(cfg)) => {
                    self.proxy.set_config(cfg);
                    bump(&self.stats.config_reloads);
                }
                Ok(Control::SetProber(slot)) => {
                    let taken = slot.lock().ok().and_then(|mut p| p.take());
                    if let Some(prober) = taken {
                        let local = self.prober.as_ref().map(|(_, l)| *l).or(self.probe_local);
                        if let Some(local) = local {
                            self.prober = Some((prober, local));
                        }
                    }
                }
                Ok(Control::Shutdown) | Err(TryRecvError::Disconnected) => return true,
                Err(TryRecvError::Empty) => return false,
            }
        }
    }

    /// Shutdown: no more accepting or reading; flush what is queued (bounded), then close all.
    fn drain(&mut self, events: &mut Events) {
        for (listener, _) in &mut self.listeners {
            let _ = self.poll.registry().deregister(listener);
        }
        self.listeners.clear();
        self.take_handoffs();
        let deadline = Instant::now() + self.drain_time;
        while Instant::now() < deadline && self.conns.values().any(|c| c.pending() > 0) {
            let timeout = deadline.saturating_duration_since(Instant::now());
            if self
                .poll
                .poll(events, Some(timeout.min(Duration::from_millis(50))))
                .is_err()
            {
                break;
            }
            for event in events.iter() {
                let token = event.token();
                if token == WAKER || !event.is_writable() {
                    continue;
                }
                self.on_event(token, false, true);
            }
            self.close_doomed();
            // Connections still connecting with nothing else to do are not worth waiting for.
            if self
                .conns
                .values()
                .all(|c| c.pending() == 0 || c.connecting.is_some())
            {
                break;
            }
        }
        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            if let Some(conn) = self.conns.remove(&token) {
                self.close(token, conn, Close::Peer);
            }
        }
    }

    fn accept(&mut self, index: usize) {
        loop {
            let (listener, listen_addr) = &self.listeners[index];
            let listen_addr = *listen_addr;
            match listener.accept() {
                Ok((mut stream, peer)) => {
                    if self.conns.len() >= self.limits.max_connections {
                        bump(&self.stats.refused);
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let local = if listen_addr.ip().is_unspecified() {
                        stream.local_addr().map_or(listen_addr, canonical)
                    } else {
                        listen_addr
                    };
                    let token = self.new_token();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        tracing::warn!(error = %e, "cannot register connection");
                        bump(&self.stats.closed_error);
                        continue;
                    }
                    bump(&self.stats.accepted);
                    let peer = canonical(peer);
                    self.insert(
                        token,
                        Conn {
                            stream,
                            peer,
                            local,
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            out_pos: 0,
                            last_active: Instant::now(),
                            connecting: None,
                            write_interest: false,
                            closing: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and the like: try again on the next readiness event.
                    tracing::warn!(error = %e, "accept failed");
                    return;
                }
            }
        }
    }

    fn new_token(&mut self) -> Token {
        let t = Token(self.next_token);
        self.next_token += 1;
        if self.next_token == WAKER.0 {
            self.next_token = self.listeners.len();
        }
        t
    }

    fn insert(&mut self, token: Token, conn: Conn) {
        self.by_peer.insert(conn.peer, token);
        self.conns.insert(token, conn);
        self.stats
            .open
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    fn on_event(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(mut conn) = self.conns.remove(&token) else {
            return;
        };
        if conn.connecting.is_some() && (writable || readable) {
            match connect_outcome(&conn.stream) {
                Ok(true) => conn.connecting = None,
                Ok(false) => {
                    self.conns.insert(token, conn);
                    return;
                }
                Err(_) => return self.close(token, conn, Close::ConnectFailed),
            }
        }
        if readable
            && !conn.closing
            && let Err(reason) = self.read(&mut conn)
        {
            // Send what the peer is still owed (a 400 after a framing error) first.
            let _ = self.flush(token, &mut conn);
            return self.close(token, conn, reason);
        }
        match self.flush(token, &mut conn) {
            Err(reason) => self.close(token, conn, reason),
            Ok(()) if conn.closing && conn.pending() == 0 => {
                self.close(token, conn, Close::Malformed)
            }
            Ok(()) => {
                self.conns.insert(token, conn);
            }
        }
    }

    /// Reads until the socket would block, handing each complete message to the core.
    fn read(&mut self, conn: &mut Conn) -> Result<(), Close> {
        let limit = self.limits.max_buffered_bytes_per_conn;
        loop {
            let room = limit - conn.inbuf.len();
            if room == 0 {
                return Err(Close::Overflow);
            }
            let want = room.min(READ_CHUNK);
            let n = match conn.stream.read(&mut self.scratch[..want]) {
                Ok(n) => n,
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return Ok(()),
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => {
                        return Err(Close::Peer);
                    }
                    _ => return Err(Close::Error),
                },
            };
            conn.inbuf.extend_from_slice(&self.scratch[..n]);
            if n == 0 {
                return Err(Close::Peer);
            }
            conn.last_active = Instant::now();
            add(&self.stats.rx_bytes, n);
            self.frame(conn)?;
            if conn.closing {
                return Ok(());
            }
        }
    }

    /// Handles every complete message at the front of the input buffer.
    fn frame(&mut self, conn: &mut Conn) -> Result<(), Close> {
        let max_message = self.max_message();
        let mut tx = std::mem::take(&mut self.tx);
        let mut consumed = 0;
        let mut result = Ok(());
        while consumed < conn.inbuf.len() {
            match next_frame(&conn.inbuf[consumed..], max_message) {
                Frame::Partial => break,
                Frame::Skip(n) => consumed += n,
                Frame::Ping => {
                    consumed += PING_LEN;
                    bump(&self.stats.pings);
                    if !conn.queue(PONG, self.limits.max_buffered_bytes_per_conn) {
                        result = Err(Close::Overflow);
                        break;
                    }
                }
                Frame::Message(len) => {
                    bump(&self.stats.rx_messages);
                    let input = Input {
                        now_ms: now_ms(),
                        source: conn.peer,
                        local: conn.local,
                        transport: Transport::Tcp,
                        bytes: &conn.inbuf[consumed..consumed + len],
                    };
                    let action = self.proxy.handle(&input, &mut tx);
                    consumed += len;
                    let local = conn.local;
                    if let Err(reason) = self.dispatch(Some(&mut *conn), local, action, &tx) {
                        result = Err(reason);
                        break;
                    }
                }
                Frame::Invalid(kind) => {
                    bump(&self.stats.closed_malformed);
                    let head = &conn.inbuf[consumed..];
                    if let Some(len) = write_framing_reject(head, kind, &mut tx) {
                        let _ = conn.queue(&tx[..len], self.limits.max_buffered_bytes_per_conn);
                        bump(&self.stats.tx_messages);
                    }
                    conn.closing = true;
                    consumed = conn.inbuf.len();
                }
            }
        }
        conn.inbuf.drain(..consumed);
        if conn.inbuf.is_empty() && conn.inbuf.capacity() > KEEP_CAPACITY {
            // Thousands of mostly idle connections should not each keep a large message's room.
            conn.inbuf = Vec::new();
        }
        self.tx = tx;
        result
    }

    /// Sends what the core decided. `current` is the connection the message came on (if any);
    /// errors are about that connection.
    fn dispatch(
        &mut self,
        current: Option<&mut Conn>,
        local: SocketAddr,
        action: Action,
        tx: &[u8],
    ) -> Result<(), Close> {
        let (to, transport, len) = match action {
            Action::Forward { to, transport, len }
            | Action::Reply {
                to, transport, len, ..
            } => (to, transport, len),
            Action::Drop(_) => return Ok(()),
        };
        let bytes = &tx[..len];
        match transport {
            Transport::Udp => {
                self.send_udp(local, to, bytes);
                Ok(())
            }
            Transport::Tcp => self.send_tcp(current, to, local, bytes),
        }
    }

    fn send_udp(&mut self, local: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let socket = self
            .udp
            .iter()
            .find(|(_, a)| *a == local)
            .or_else(|| self.udp.iter().find(|(_, a)| a.ip() == local.ip()))
            .or_else(|| self.udp.iter().find(|(_, a)| a.is_ipv4() == to.is_ipv4()));
        let Some((socket, _)) = socket else {
            bump(&self.stats.undeliverable);
            return;
        };
        match socket.send_to(bytes, to) {
            Ok(_) => bump(&self.stats.udp_tx),
            Err(_) => bump(&self.stats.udp_send_errors),
        }
    }

    /// Queues `bytes` for `to` on the current connection, the open connection to `to`, or a new
    /// one. An error is returned only when the current connection overflowed.
    fn send_tcp(
        &mut self,
        current: Option<&mut Conn>,
        to: SocketAddr,
        local: SocketAddr,
        bytes: &[u8],
    ) -> Result<(), Close> {
        let limit = self.limits.max_buffered_bytes_per_conn;
        if let Some(conn) = current
            && conn.peer == to
        {
            bump(&self.stats.tx_messages);
            return if conn.queue(bytes, limit) {
                Ok(())
            } else {
                Err(Close::Overflow)
            };
        }
        let token = match self.by_peer.get(&to) {
            Some(&t) if self.conns.contains_key(&t) => t,
            _ => match self.connect(to, local) {
                Some(t) => t,
                None => {
                    bump(&self.stats.undeliverable);
                    return Ok(());
                }
            },
        };
        let Some(mut conn) = self.conns.remove(&token) else {
            return Ok(());
        };
        bump(&self.stats.tx_messages);
        if !conn.queue(bytes, limit) {
            self.conns.insert(token, conn);
            self.doomed.push((token, Close::Overflow));
            return Ok(());
        }
        match self.flush(token, &mut conn) {
            Ok(()) => {
                self.conns.insert(token, conn);
            }
            Err(reason) => self.close(token, conn, reason),
        }
        Ok(())
    }

    /// Starts a non-blocking connect; the message is queued until it completes.
    fn connect(&mut self, to: SocketAddr, local: SocketAddr) -> Option<Token> {
        if self.conns.len() >= self.limits.max_connections {
            return None;
        }
        bump(&self.stats.connects);
        let mut stream = match TcpStream::connect(to) {
            Ok(s) => s,
            Err(_) => {
                bump(&self.stats.connect_errors);
                return None;
            }
        };
        let _ = stream.set_nodelay(true);
        let token = self.new_token();
        if self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            bump(&self.stats.connect_errors);
            return None;
        }
        let now = Instant::now();
        self.insert(
            token,
            Conn {
                stream,
                peer: to,
                local,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                out_pos: 0,
                last_active: now,
                connecting: Some(now),
                write_interest: true,
                closing: false,
            },
        );
        Some(token)
    }

    /// Writes what is queued until the socket would block; keeps writable interest while
    /// anything is left.
    fn flush(&mut self, token: Token, conn: &mut Conn) -> Result<(), Close> {
        if conn.connecting.is_none() {
            while conn.pending() > 0 {
                match conn.stream.write(&conn.outbuf[conn.out_pos..]) {
                    Ok(0) => return Err(Close::Error),
                    Ok(n) => {
                        conn.out_pos += n;
                        conn.last_active = Instant::now();
                        add(&self.stats.tx_bytes, n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
                        ) =>
                    {
                        return Err(Close::Peer);
                    }
                    Err(_) => return Err(Close::Error),
                }
            }
            if conn.pending() == 0 {
                conn.outbuf.clear();
                conn.out_pos = 0;
                if conn.outbuf.capacity() > KEEP_CAPACITY {
                    conn.outbuf = Vec::new();
                }
            }
        }
        let want_write = conn.pending() > 0 || conn.connecting.is_some();
        if want_write != conn.write_interest {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, token, interest)
                .is_err()
            {
                return Err(Close::Error);
            }
            conn.write_interest = want_write;
        }
        Ok(())
    }

    fn close(&mut self, token: Token, mut conn: Conn, reason: Close) {
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if self.by_peer.get(&conn.peer) == Some(&token) {
            self.by_peer.remove(&conn.peer);
        }
        let counter = match reason {
            Close::Peer => &self.stats.closed_by_peer,
            Close::Idle => &self.stats.closed_idle,
            // Counted where the framing failed.
            Close::Malformed => &self.stats.closed_malformed,
            Close::Overflow => &self.stats.closed_overflow,
            Close::Error => &self.stats.closed_error,
            Close::ConnectFailed => &self.stats.connect_errors,
        };
        if reason != Close::Malformed {
            bump(counter);
        }
        self.conns.remove(&token);
        self.stats
            .open
            .store(self.conns.len() as u64, Ordering::Relaxed);
    }

    fn close_doomed(&mut self) {
        while let Some((token, reason)) = self.doomed.pop() {
            if let Some(conn) = self.conns.remove(&token) {
                self.close(token, conn, reason);
            }
        }
    }

    /// Closes idle connections and connects that take too long.
    fn sweep(&mut self) {
        let now = Instant::now();
        let idle = self.limits.idle_timeout;
        let connect = self.limits.connect_timeout;
        for (&token, conn) in &self.conns {
            if let Some(started) = conn.connecting {
                if now.duration_since(started) >= connect {
                    self.doomed.push((token, Close::ConnectFailed));
                }
            } else if now.duration_since(conn.last_active) >= idle {
                self.doomed.push((token, Close::Idle));
            }
        }
        self.close_doomed();
    }

    fn take_handoffs(&mut self) {
        for _ in 0..HANDOFF_PER_TURN {
            let Ok(h) = self.handoff.try_recv() else {
                return;
            };
            bump(&self.stats.handoffs);
            let _ = self.send_tcp(None, h.to, h.local, &h.bytes);
            let _ = self.recycle.try_send(h.bytes);
        }
    }

    fn run_prober(&mut self) {
        let Some((mut prober, local)) = self.prober.take() else {
            return;
        };
        let now = now_ms();
        let mut tx = std::mem::take(&mut self.tx);
        while let Some(t) = prober.poll_transmit(now, local, &mut tx) {
            bump(&self.stats.probes_sent);
            let action = Action::Forward {
                to: t.to,
                transport: t.transport,
                len: t.len,
            };
            let _ = self.dispatch(None, local, action, &tx);
        }
        for change in prober.take_changes() {
            tracing::info!(target_index = change.index, up = change.up, "health change");
        }
        self.tx = tx;
        self.prober = Some((prober, local));
    }
}

/// Whether a non-blocking connect has completed (`Ok(false)`: not yet).
fn connect_outcome(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

fn add(counter: &AtomicU64, n: usize) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n as u64),
        Ordering::Relaxed,
    );
}
