//! `sipd load` through the sans-IO proxy core: UAC -> proxy -> UAS on loopback, the proxy a tiny
//! recv -> `Proxy::handle` -> send loop in a thread, record-routing so ACK and BYE go through it
//! too. Every call completes, and the proxy forwarded exactly what the two sides sent.

mod load_support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use load_support::{Running, run};
use sipd::proxy::{
    Action, Health, Input, NextHop, Proxy, ProxyConfig, ProxyStats, RouteTarget, StaticLocation,
    Transport,
};

struct ProxyLoop {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<ProxyStats>,
    handle: JoinHandle<()>,
}

impl ProxyLoop {
    fn start(next_hop: SocketAddr) -> ProxyLoop {
        Self::start_on(next_hop, None)
    }

    /// `cpu`: pin the proxy loop's thread there.
    fn start_on(next_hop: SocketAddr, cpu: Option<usize>) -> ProxyLoop {
        // Large socket buffers (as the generator's own): a debug-built proxy loop is slow, and
        // what it cannot take at once must queue, not be lost.
        let sock: UdpSocket =
            sipd::load::io::bind_udp("127.0.0.2:0".parse().unwrap(), false).unwrap();
        sock.set_nonblocking(false).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let config = ProxyConfig {
            record_route: true,
            default_route: Some(RouteTarget::Hop(NextHop {
                addr: next_hop,
                transport: Transport::Udp,
            })),
            ..ProxyConfig::default()
        };
        let mut proxy = Proxy::new(
            Arc::new(config),
            Arc::new(StaticLocation::new()),
            Health::new(0),
        );
        let stats = proxy.stats().clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            if let Some(id) = cpu {
                core_affinity::set_for_current(core_affinity::CoreId { id });
            }
            let mut buf = vec![0u8; 65_536];
            let mut out = vec![0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, source)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let input = Input {
                    now_ms: 0,
                    source,
                    local: addr,
                    transport: Transport::Udp,
                    bytes: &buf[..n],
                };
                match proxy.handle(&input, &mut out) {
                    Action::Forward { to, len, .. } | Action::Reply { to, len, .. } => {
                        let _ = sock.send_to(&out[..len], to);
                    }
                    Action::Drop(_) => {}
                }
            }
        });
        ProxyLoop {
            addr,
            stop,
            stats,
            handle,
        }
    }

    fn stop(self) -> Arc<ProxyStats> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap();
        self.stats
    }
}

#[test]
fn calls_through_the_proxy_core() {
    let uas = Running::start(&["uas", "--listen", "127.0.0.3:0", "--quiet"]);
    let proxy = ProxyLoop::start(uas.addr);
    let target = proxy.addr.to_string();
    let uac = run(&[
        "uac",
        "--target",
        &target,
        "--local",
        "127.0.0.1:0",
        "--calls",
        "200",
        // The debug-built proxy core takes about 100 µs a message: stay well under its rate so
        // that queueing never reaches T1 (then nothing is retransmitted and the sums are exact).
        "--rate",
        "200",
        "--quiet",
    ]);
    let uas = uas.stop();
    let stats = proxy.stop();
    let (c, s) = (&uac.report, &uas.report);
    assert_eq!(uac.exit_code, 0);
    assert_eq!(
        (c.attempted, c.completed, c.failed, c.in_progress),
        (200, 200, 0, 0)
    );
    assert_eq!(s.msgs_received, c.msgs_sent);
    assert_eq!(s.msgs_sent, c.msgs_received);
    // Everything went through the proxy: INVITE, ACK and BYE (Record-Route) one way, 180, 200,
    // 200 the other, with nothing dropped or answered by the proxy itself.
    let fwd_req = stats.forwarded_requests.load(Ordering::Relaxed);
    let fwd_resp = stats.forwarded_responses.load(Ordering::Relaxed);
    assert_eq!(fwd_req, c.msgs_sent);
    assert_eq!(fwd_resp, s.msgs_sent);
    assert_eq!(c.requests_sent["ACK"], 200);
    assert_eq!(s.requests_received["ACK"], 200);
    assert_eq!(s.requests_received["BYE"], 200);
    for d in &stats.drops {
        assert_eq!(d.load(Ordering::Relaxed), 0);
    }
}

#[test]
fn blast_through_the_proxy_core() {
    let uas = Running::start(&["uas", "--listen", "127.0.0.3:0", "--quiet", "--stateless"]);
    let proxy = ProxyLoop::start(uas.addr);
    let target = proxy.addr.to_string();
    let b = run(&[
        "blast", "--target", &target, "--calls", "500", "--rate", "1000", "--quiet",
    ]);
    let uas = uas.stop();
    let stats = proxy.stop();
    let r = &b.report;
    assert_eq!(
        (r.attempted, r.completed, r.failed, r.in_progress),
        (500, 500, 0, 0)
    );
    assert_eq!(stats.forwarded_requests.load(Ordering::Relaxed), 500);
    assert_eq!(stats.forwarded_responses.load(Ordering::Relaxed), 500);
    assert_eq!(uas.report.msgs_received, 500);
}

/// A measurement, not a check: `cargo test --release -p sipd --test load_proxy -- --ignored
/// --nocapture`. UAC and UAS share CPU 0, the proxy loop (one recv_from / handle / send_to per
/// message, no batching) has CPU 1; calls as fast as the UAC's concurrency limit allows.
#[test]
#[ignore = "measurement in release: cargo test --release -p sipd --test load_proxy -- --ignored --nocapture"]
fn measure_calls_through_the_proxy_core() {
    let uas = Running::start(&["uas", "--listen", "127.0.0.3:0", "--quiet", "--pin", "0"]);
    let proxy = ProxyLoop::start_on(uas.addr, Some(1));
    let target = proxy.addr.to_string();
    let uac = run(&[
        "uac",
        "--target",
        &target,
        "--rate",
        "max",
        "--limit",
        "200",
        "--duration",
        "5s",
        "--quiet",
        "--pin",
        "0",
    ]);
    let uas = uas.stop();
    let stats = proxy.stop();
    let fwd = stats.forwarded_requests.load(Ordering::Relaxed)
        + stats.forwarded_responses.load(Ordering::Relaxed);
    println!("{}", uac.report.to_text());
    println!("{}", uas.report.to_text());
    println!(
        "proxy forwarded {fwd} messages in {:.3} s: {:.0} msg/s",
        uac.report.duration_s,
        fwd as f64 / uac.report.duration_s
    );
}
