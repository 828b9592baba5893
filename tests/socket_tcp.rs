//! The socket backend's TCP transport on loopback: calls across UDP and TCP, stream framing,
//! keep-alives, the connection bound, idle close, unframable streams.

#[path = "socket_common/mod.rs"]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use sipd::proxy::Transport;
use sipd::socket::{ServerHandle, TcpLimits};

#[test]
fn tcp_caller_udp_callee() {
    let mut uas = Uas::udp("127.0.0.1");
    let server = start(
        config(&["127.0.0.1:0"], &["127.0.0.1:0"]),
        uas.addr(),
        Transport::Udp,
    );
    let tcp = server.tcp_addrs()[0];
    assert_eq!(
        tcp.port(),
        server.udp_addrs()[0].port(),
        "one port for both"
    );
    let mut uac = Peer::tcp_to(tcp);
    // TCP->UDP for the requests, UDP->TCP (worker to TCP thread) for the responses.
    call(&mut uac, &mut uas, tcp, "call-tcp-udp@test");
    let stats = server.tcp_stats();
    assert_eq!(stats.rx_messages.load(Ordering::Relaxed), 3);
    assert_eq!(stats.udp_tx.load(Ordering::Relaxed), 3);
    eventually("three hand-offs counted", || {
        stats.handoffs.load(Ordering::Relaxed) == 3
    });
    assert_eq!(
        stats.connects.load(Ordering::Relaxed),
        0,
        "responses reuse the connection"
    );
    server.shutdown().unwrap();
}

#[test]
fn udp_caller_tcp_callee() {
    let mut uas = Uas::tcp("127.0.0.1");
    let server = start(
        config(&["127.0.0.1:0"], &["127.0.0.1:0"]),
        uas.addr(),
        Transport::Tcp,
    );
    let proxy = server.udp_addrs()[0];
    let mut uac = Peer::udp("127.0.0.1");
    // UDP->TCP (the proxy connects to the callee) for the requests, TCP->UDP for the answers.
    call(&mut uac, &mut uas, proxy, "call-udp-tcp@test");
    let stats = server.tcp_stats();
    assert_eq!(
        stats.connects.load(Ordering::Relaxed),
        1,
        "one connection reused"
    );
    assert_eq!(stats.handoffs.load(Ordering::Relaxed), 3);
    // Counted just after the send the UAC may already have seen.
    eventually("three datagrams counted", || {
        stats.udp_tx.load(Ordering::Relaxed) == 3
    });
    server.shutdown().unwrap();
}

#[test]
fn tcp_call_ipv6() {
    let mut uas = Uas::tcp("::1");
    let server = start(
        config(&["[::1]:0"], &["[::1]:0"]),
        uas.addr(),
        Transport::Tcp,
    );
    let tcp = server.tcp_addrs()[0];
    let mut uac = Peer::tcp_to(tcp);
    call(&mut uac, &mut uas, tcp, "call-tcp6@test");
    server.shutdown().unwrap();
}

/// An OPTIONS for the proxy itself (answered 200 by the core), with an optional body.
fn options(server: SocketAddr, n: u32, body: &str) -> String {
    format!(
        "OPTIONS sip:{server} SIP/2.0\r\n\
         Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKo{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a{n}\r\n\
         To: <sip:{server}>\r\n\
         Call-ID: o{n}@test\r\n\
         CSeq: {n} OPTIONS\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn tcp_server(limits: TcpLimits) -> (ServerHandle, SocketAddr) {
    let uas = Uas::udp("127.0.0.1");
    let mut cfg = config(&["127.0.0.1:0"], &["127.0.0.1:0"]);
    cfg.tcp = limits;
    let server = start(cfg, uas.addr(), Transport::Udp);
    let tcp = server.tcp_addrs()[0];
    (server, tcp)
}

fn connect(addr: SocketAddr) -> (TcpStream, Vec<u8>) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    (s, Vec::new())
}

fn expect_nothing(s: &mut TcpStream, pending: &[u8]) {
    assert!(pending.is_empty());
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected no answer yet, got {other:?}"),
    }
    s.set_read_timeout(Some(WAIT)).unwrap();
}

#[test]
fn framing_two_messages_in_one_segment() {
    let (server, tcp) = tcp_server(TcpLimits::default());
    let (mut s, mut pending) = connect(tcp);
    let two = format!("{}\r\n{}", options(tcp, 1, ""), options(tcp, 2, "hello"));
    s.write_all(two.as_bytes()).unwrap();
    for n in 1..=2 {
        let resp = read_stream_message(&mut s, &mut pending).unwrap();
        assert_eq!(start_line(&resp), "SIP/2.0 200 OK", "{resp}");
        assert_eq!(header(&resp, "CSeq"), Some(format!("{n} OPTIONS").as_str()));
    }
    assert_eq!(server.tcp_stats().rx_messages.load(Ordering::Relaxed), 2);
    server.shutdown().unwrap();
}

#[test]
fn framing_message_and_body_split_across_segments() {
    let (server, tcp) = tcp_server(TcpLimits::default());
    let (mut s, mut pending) = connect(tcp);
    let msg = options(tcp, 3, "0123456789");
    let head_end = msg.find("\r\n\r\n").unwrap() + 4;
    // In the middle of a header line, then the rest of the head and half the body.
    for part in [&msg[..20], &msg[20..head_end + 5]] {
        s.write_all(part.as_bytes()).unwrap();
        expect_nothing(&mut s, &pending);
    }
    s.write_all(&msg.as_bytes()[head_end + 5..]).unwrap();
    let resp = read_stream_message(&mut s, &mut pending).unwrap();
    assert_eq!(start_line(&resp), "SIP/2.0 200 OK");
    assert_eq!(header(&resp, "CSeq"), Some("3 OPTIONS"));
    server.shutdown().unwrap();
}

#[test]
fn keepalive_ping_gets_a_pong() {
    let (server, tcp) = tcp_server(TcpLimits::default());
    let (mut s, _) = connect(tcp);
    s.write_all(b"\r\n\r\n").unwrap();
    let mut pong = [0u8; 2];
    s.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"\r\n");
    assert_eq!(server.tcp_stats().pings.load(Ordering::Relaxed), 1);
    server.shutdown().unwrap();
}

#[test]
fn connection_over_the_limit_is_refused() {
    let (server, tcp) = tcp_server(TcpLimits {
        max_connections: 2,
        ..TcpLimits::default()
    });
    let (mut a, mut pa) = connect(tcp);
    let (_b, _) = connect(tcp);
    eventually("two accepted", || {
        server.tcp_stats().accepted.load(Ordering::Relaxed) == 2
    });
    let (mut c, _) = connect(tcp);
    let mut buf = [0u8; 16];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the third connection is closed");
    assert_eq!(server.tcp_stats().refused.load(Ordering::Relaxed), 1);
    // The first still works.
    a.write_all(options(tcp, 4, "").as_bytes()).unwrap();
    let resp = read_stream_message(&mut a, &mut pa).unwrap();
    assert_eq!(start_line(&resp), "SIP/2.0 200 OK");
    server.shutdown().unwrap();
}

#[test]
fn idle_connection_is_closed() {
    let (server, tcp) = tcp_server(TcpLimits {
        idle_timeout: Duration::from_millis(150),
        ..TcpLimits::default()
    });
    let (mut s, _) = connect(tcp);
    let mut buf = [0u8; 16];
    let started = std::time::Instant::now();
    assert_eq!(s.read(&mut buf).unwrap_or(0), 0);
    assert!(started.elapsed() >= Duration::from_millis(100));
    eventually("idle close counted", || {
        server.tcp_stats().closed_idle.load(Ordering::Relaxed) == 1
    });
    server.shutdown().unwrap();
}

#[test]
fn unframable_stream_is_answered_400_and_closed() {
    let (server, tcp) = tcp_server(TcpLimits::default());
    let (mut s, mut pending) = connect(tcp);
    let no_length = options(tcp, 5, "").replace("Content-Length: 0\r\n", "");
    s.write_all(no_length.as_bytes()).unwrap();
    let resp = read_stream_message(&mut s, &mut pending).unwrap();
    assert!(start_line(&resp).starts_with("SIP/2.0 400 "), "{resp}");
    assert_eq!(header(&resp, "Call-ID"), Some("o5@test"));
    assert!(
        read_stream_message(&mut s, &mut pending).is_none(),
        "closed"
    );
    assert_eq!(
        server.tcp_stats().closed_malformed.load(Ordering::Relaxed),
        1
    );
    server.shutdown().unwrap();
}

#[test]
fn oversized_message_closes_the_connection() {
    let (server, tcp) = tcp_server(TcpLimits {
        max_buffered_bytes_per_conn: 4096,
        ..TcpLimits::default()
    });
    let (mut s, mut pending) = connect(tcp);
    // Only the head and a little of the body are sent, so the server has read everything when it
    // closes (unread bytes would turn its close into a reset that can overtake the answer).
    let big = options(tcp, 6, "xx").replace("Content-Length: 2", "Content-Length: 8000");
    s.write_all(big.as_bytes()).unwrap();
    let resp = read_stream_message(&mut s, &mut pending).unwrap();
    assert!(start_line(&resp).starts_with("SIP/2.0 513 "), "{resp}");
    server.shutdown().unwrap();
}

#[test]
fn failed_connect_is_counted_and_harmless() {
    // A TCP callee that is not listening (the port was just released).
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let server = start(
        config(&["127.0.0.1:0"], &["127.0.0.1:0"]),
        gone_addr,
        Transport::Tcp,
    );
    let proxy = server.udp_addrs()[0];
    let mut uac = Peer::udp("127.0.0.1");
    let invite = request(
        "INVITE",
        "sip:bob@example.com",
        &uac,
        "z9hG4bKf1",
        "f1@test",
        1,
        None,
        "",
    );
    uac.send(proxy, &invite);
    eventually("the connect failure", || {
        server.tcp_stats().connect_errors.load(Ordering::Relaxed) == 1
    });
    assert_eq!(server.tcp_stats().open.load(Ordering::Relaxed), 0);
    // The proxy still answers.
    let tcp = server.tcp_addrs()[0];
    let (mut s, mut pending) = connect(tcp);
    s.write_all(options(tcp, 7, "").as_bytes()).unwrap();
    let resp = read_stream_message(&mut s, &mut pending).unwrap();
    assert_eq!(start_line(&resp), "SIP/2.0 200 OK");
    server.shutdown().unwrap();
}
