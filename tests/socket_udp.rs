//! The socket backend over UDP on loopback: calls (IPv4, IPv6), malformed traffic, reload,
//! health probes, shutdown.

#[path = "socket_common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use sipd::proxy::{
    DropReason, Group, GroupTarget, Health, HealthConfig, HealthProber, NextHop, Proxy,
    ProxyConfig, RouteTarget, StaticLocation, Transport,
};
use sipd::socket::SocketServer;

fn sum(server: &sipd::socket::ServerHandle, f: impl Fn(&sipd::socket::WorkerInfo) -> u64) -> u64 {
    server.workers().iter().map(f).sum()
}

#[test]
fn udp_call_ipv4() {
    let mut uas = Uas::udp("127.0.0.1");
    let server = start(config(&["127.0.0.1:0"], &[]), uas.addr(), Transport::Udp);
    let proxy = server.udp_addrs()[0];
    let mut uac = Peer::udp("127.0.0.1");
    call(&mut uac, &mut uas, proxy, "call-v4@test");

    // INVITE, ACK, BYE from the UAC; 180, 200, 200 from the UAS; each forwarded once.
    // (Counted just after the send the peers may already have seen.)
    eventually("six datagrams in and out", || {
        let rx = sum(&server, |w| w.stats.rx_packets.load(Ordering::Relaxed));
        let tx = sum(&server, |w| w.stats.tx_packets.load(Ordering::Relaxed));
        (rx, tx) == (6, 6)
    });
    let batches: u64 = sum(&server, |w| {
        w.stats
            .batch_sizes
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    });
    assert_eq!(
        batches,
        sum(&server, |w| w.stats.rx_batches.load(Ordering::Relaxed))
    );
    assert!(batches >= 1);
    assert_eq!(
        sum(&server, |w| w.stats.send_errors.load(Ordering::Relaxed)),
        0
    );
    server.shutdown().unwrap();
}

#[test]
fn udp_call_ipv6() {
    let mut uas = Uas::udp("::1");
    let server = start(config(&["[::1]:0"], &[]), uas.addr(), Transport::Udp);
    let proxy = server.udp_addrs()[0];
    assert!(proxy.is_ipv6());
    let mut uac = Peer::udp("::1");
    call(&mut uac, &mut uas, proxy, "call-v6@test");
    server.shutdown().unwrap();
}

#[test]
fn malformed_burst_is_dropped_and_counted_while_a_call_completes() {
    let mut uas = Uas::udp("127.0.0.1");
    let mut cfg = config(&["127.0.0.1:0"], &[]);
    // Room for the whole burst in the kernel queue even when a debug build is slow.
    cfg.udp_buffer_bytes = Some(2 << 20);
    let server = start(cfg, uas.addr(), Transport::Udp);
    let proxy = server.udp_addrs()[0];
    const BURST: u64 = 400;
    // From several sources (spread over the workers), paced, while the call goes on.
    let noise = std::thread::spawn(move || {
        let sockets: Vec<UdpSocket> = (0..4)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for i in 0..BURST {
            let junk = format!("\x00\x01garbage-{i}-\u{7f}");
            sockets[i as usize % sockets.len()]
                .send_to(junk.as_bytes(), proxy)
                .unwrap();
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let mut uac = Peer::udp("127.0.0.1");
    call(&mut uac, &mut uas, proxy, "call-noise@test");
    noise.join().unwrap();
    eventually("every malformed datagram counted", || {
        sum(&server, |w| w.proxy.drop_count(DropReason::Malformed)) == BURST
    });
    assert!(sum(&server, |w| w.stats.dropped.load(Ordering::Relaxed)) >= BURST);
    server.shutdown().unwrap();
}

#[test]
fn reload_reaches_every_worker() {
    let mut uas = Uas::udp("127.0.0.1");
    let mut cfg = config(&["127.0.0.1:0"], &["127.0.0.1:0"]);
    cfg.workers = 3;
    let server = start(cfg, uas.addr(), Transport::Udp);
    let proxy = server.udp_addrs()[0];
    let mut uac = Peer::udp("127.0.0.1");

    // Before: other.example is routed nowhere -> 404 from the proxy.
    let req = request(
        "MESSAGE",
        "sip:carol@other.example",
        &uac,
        "z9hG4bKm1",
        "m1@test",
        1,
        None,
        "",
    );
    uac.send(proxy, &req);
    let (resp, _) = uac.recv();
    assert_eq!(start_line(&resp), "SIP/2.0 404 Not Found");

    let mut routes = HashMap::new();
    routes.insert(
        "other.example".to_owned(),
        RouteTarget::Hop(NextHop {
            addr: uas.addr(),
            transport: Transport::Udp,
        }),
    );
    server
        .reload(Arc::new(ProxyConfig {
            domains: vec!["example.com".into()],
            domain_routes: routes,
            ..ProxyConfig::default()
        }))
        .unwrap();
    eventually("every thread applied the reload", || {
        server
            .workers()
            .iter()
            .all(|w| w.stats.config_reloads.load(Ordering::Relaxed) == 1)
            && server.tcp_stats().config_reloads.load(Ordering::Relaxed) == 1
    });
    let req = request(
        "MESSAGE",
        "sip:carol@other.example",
        &uac,
        "z9hG4bKm2",
        "m2@test",
        2,
        None,
        "",
    );
    uac.send(proxy, &req);
    let got = uas.recv();
    assert!(
        start_line(&got).starts_with("MESSAGE sip:carol@other.example"),
        "{got}"
    );
    server.shutdown().unwrap();
}

#[test]
fn health_probes_mark_a_target_down_and_up() {
    // A target that answers OPTIONS while `answering` is set.
    let target = UdpSocket::bind("127.0.0.1:0").unwrap();
    target
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let target_addr = target.local_addr().unwrap();
    let answering = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let responder = {
        let (answering, stop) = (answering.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0; 65_535];
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = target.recv_from(&mut buf) else {
                    continue;
                };
                let req = String::from_utf8_lossy(&buf[..n]).into_owned();
                if answering.load(Ordering::Relaxed) && req.starts_with("OPTIONS ") {
                    // rport in the probe's Via: answer to where it came from.
                    target
                        .send_to(response(&req, "200 OK", "t").as_bytes(), from)
                        .unwrap();
                    answered += 1;
                }
            }
            answered
        })
    };

    let health = Health::new(1);
    let config = Arc::new(ProxyConfig {
        groups: vec![Group {
            name: "g".into(),
            targets: vec![GroupTarget {
                addr: target_addr,
                transport: Transport::Udp,
                weight: 1,
            }],
            health_base: 0,
        }],
        ..ProxyConfig::default()
    });
    let prober = HealthProber::new(
        HealthConfig {
            interval_ms: 40,
            down_after: 2,
            up_after: 2,
        },
        health.clone(),
        &[(target_addr, Transport::Udp)],
        sipd::socket::now_ms(),
    );
    let location = Arc::new(StaticLocation::new());
    let make = {
        let health = health.clone();
        move |_| Proxy::new(config.clone(), location.clone(), health.clone())
    };
    let server = SocketServer::start(config_for_probes(), make, Some(prober)).unwrap();

    eventually("probe answers recorded", || {
        sum(&server, |w| w.proxy.drop_count(DropReason::HealthAnswer)) >= 3
    });
    assert!(health.is_up(0));
    answering.store(false, Ordering::Relaxed);
    eventually("target marked down", || !health.is_up(0));
    answering.store(true, Ordering::Relaxed);
    eventually("target marked up again", || health.is_up(0));
    assert!(server.tcp_stats().probes_sent.load(Ordering::Relaxed) >= 5);
    server.shutdown().unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(responder.join().unwrap() >= 3);
}

fn config_for_probes() -> sipd::socket::SocketConfig {
    config(&["127.0.0.1:0"], &[])
}

#[test]
fn shutdown_is_prompt_and_releases_the_ports() {
    let uas = Uas::udp("127.0.0.1");
    let mut cfg = config(&["127.0.0.1:0"], &["127.0.0.1:0"]);
    cfg.workers = 2;
    let server = start(cfg, uas.addr(), Transport::Udp);
    let udp = server.udp_addrs()[0];
    let tcp = server.tcp_addrs()[0];
    // An open, idle TCP connection must not hold shutdown up.
    let mut client = std::net::TcpStream::connect(tcp).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    eventually("connection accepted", || {
        server.tcp_stats().accepted.load(Ordering::Relaxed) == 1
    });
    let started = Instant::now();
    let report = server.shutdown().unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "shutdown took {took:?}");
    assert_eq!(report.threads, 3);
    let mut buf = [0u8; 16];
    assert_eq!(
        std::io::Read::read(&mut client, &mut buf).unwrap_or(0),
        0,
        "closed"
    );
    UdpSocket::bind(udp).expect("UDP port released");
    std::net::TcpListener::bind(tcp).expect("TCP port released");
    let _: SocketAddr = udp;
}

/// Forwarding rate through the UDP workers (not a pass/fail test; run in release):
/// `cargo test --release -p sipd --test socket_udp -- --ignored --nocapture rate`.
/// A sender keeps a window of MESSAGE requests in flight from 8 sources; a sink counts what
/// the proxy forwards to it. Printed per (workers, batch).
#[test]
#[ignore = "measurement in release: cargo test --release -p sipd --test socket_udp -- --ignored --nocapture"]
fn rate_udp_forwarding() {
    use std::sync::atomic::AtomicU64;
    const TOTAL: u64 = 200_000;
    const WINDOW: u64 = 256;
    for (workers, batch) in [(1, 1), (1, 32), (2, 1), (2, 32)] {
        let sink = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        sink.set_recv_buffer_size(8 << 20).unwrap();
        sink.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let sink: UdpSocket = sink.into();
        sink.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let sink_addr = sink.local_addr().unwrap();
        let mut cfg = config(&["127.0.0.1:0"], &[]);
        cfg.workers = workers;
        cfg.batch = batch;
        cfg.udp_buffer_bytes = Some(4 << 20);
        let server = start(cfg, sink_addr, Transport::Udp);
        let proxy = server.udp_addrs()[0];
        let received = Arc::new(AtomicU64::new(0));
        let counter = {
            let received = received.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0; 65_535];
                while sink.recv_from(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let senders: Vec<Peer> = (0..8).map(|_| Peer::udp("127.0.0.1")).collect();
        let msgs: Vec<String> = senders
            .iter()
            .enumerate()
            .map(|(i, p)| {
                request(
                    "MESSAGE",
                    "sip:bob@example.com",
                    p,
                    &format!("z9hG4bKr{i}"),
                    &format!("r{i}@rate"),
                    1,
                    None,
                    "hello",
                )
            })
            .collect();
        let started = Instant::now();
        let (mut sent, mut lost) = (0u64, 0u64);
        let mut last_progress = (Instant::now(), 0u64);
        while sent < TOTAL && started.elapsed() < Duration::from_secs(20) {
            let got = received.load(Ordering::Relaxed);
            if got != last_progress.1 {
                last_progress = (Instant::now(), got);
            }
            if sent - got - lost >= WINDOW {
                // A stalled window means datagrams were lost: write them off.
                if last_progress.0.elapsed() > Duration::from_millis(50) {
                    lost = sent - got;
                }
                std::thread::yield_now();
                continue;
            }
            let i = (sent % 8) as usize;
            if let Peer::Udp(s) = &senders[i] {
                s.send_to(msgs[i].as_bytes(), proxy).unwrap();
            }
            sent += 1;
        }
        // The last forwards (or the certainty that they are lost).
        let mut last = u64::MAX;
        while received.load(Ordering::Relaxed) < sent - lost
            && received.load(Ordering::Relaxed) != last
        {
            last = received.load(Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(20));
        }
        let elapsed = started.elapsed();
        let got = received.load(Ordering::Relaxed);
        let mean_batch: Vec<String> = server
            .workers()
            .iter()
            .map(|w| format!("{:.1}", w.stats.mean_batch()))
            .collect();
        let rx = sum(&server, |w| w.stats.rx_packets.load(Ordering::Relaxed));
        let tx = sum(&server, |w| w.stats.tx_packets.load(Ordering::Relaxed));
        let errors = sum(&server, |w| w.stats.send_errors.load(Ordering::Relaxed));
        let dropped = sum(&server, |w| w.stats.dropped.load(Ordering::Relaxed));
        println!("proxy: rx {rx} tx {tx} send errors {errors} dropped {dropped}");
        drop(server);
        counter.join().unwrap();
        let sent = sent;
        println!(
            "workers={workers} batch={batch}: {got} of {sent} forwarded in {:.2} s = {:.0} msg/s \
             (mean rx batch per worker {mean_batch:?})",
            elapsed.as_secs_f64(),
            got as f64 / elapsed.as_secs_f64()
        );
    }
}
