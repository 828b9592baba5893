//! Properties checked by the fuzz targets (`cargo +nightly fuzz run parse|handle`) and by the
//! bounded proptest run in `cargo test` (`tests/fuzz_bounded.rs` includes this file).
//!
//! - `check_parse`: the parser and `validate` never panic, and a message that parses reparses
//!   from its own bytes to the same view (start line, header index, body, framing).
//! - `check_handle`: `Proxy::handle` never panics on any bytes from any source; whatever it
//!   writes (a forwarded message or a reply) parses with our parser, passes `validate` whenever
//!   the input did, says what the `Action` says (status code, method), fits the buffer and never
//!   goes to a broadcast, multicast or unspecified address.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use sipd::proxy::{
    Action, ContactTarget, Group, GroupTarget, Health, Input, NextHop, PrefixTable, Proxy,
    ProxyConfig, RouteTarget, StaticLocation, Transport,
};
use sipd::sip::message::{Header, parse_datagram};
use sipd::sip::validate::validate;

/// The core's own header capacity (`sipd::proxy::MAX_HEADERS`) for inputs; outputs may carry a
/// few more (our Via, Record-Route, Max-Forwards).
const OUTPUT_HEADERS: usize = sipd::proxy::MAX_HEADERS + 8;

pub fn check_parse(data: &[u8]) {
    let mut h = [Header::EMPTY; sipd::proxy::MAX_HEADERS];
    let Ok(msg) = parse_datagram(data, &mut h) else {
        return;
    };
    let valid = validate(&msg).is_ok();
    let mut h2 = [Header::EMPTY; sipd::proxy::MAX_HEADERS];
    let again = match parse_datagram(msg.bytes(), &mut h2) {
        Ok(m) => m,
        Err(e) => panic!("a parsed message's own bytes do not reparse: {e}"),
    };
    assert_eq!(msg.start_line(), again.start_line());
    assert_eq!(msg.start(), again.start());
    assert_eq!(msg.headers(), again.headers());
    assert_eq!(msg.head_len(), again.head_len());
    assert_eq!(msg.body(), again.body());
    assert_eq!(msg.content_length(), again.content_length());
    assert_eq!(
        msg.has_conflicting_content_length(),
        again.has_conflicting_content_length()
    );
    assert_eq!(valid, validate(&again).is_ok());
}

/// Where the fuzzed proxies live.
pub const LOCAL_A: &str = "192.0.2.1:5060";
pub const LOCAL_B: &str = "[2001:db8::1]:5070";

/// Config A: record-route, every kind of route, a group; config B: no routes at all but the
/// location service (IP-literal Request-URIs and Routes are the only way out), an advertised
/// address.
fn proxies() -> [Proxy; 2] {
    let hop = |a: &str| {
        RouteTarget::Hop(NextHop {
            addr: a.parse().unwrap(),
            transport: Transport::Udp,
        })
    };
    let mut location = StaticLocation::new();
    location.insert(
        "alice",
        "atlanta.com",
        vec![ContactTarget {
            uri: Arc::from(&b"sip:alice@192.0.2.101:5062;transport=tcp"[..]),
            addr: "192.0.2.101:5062".parse().unwrap(),
            transport: Transport::Tcp,
            q: 1000,
        }],
    );
    location.insert("carol", "atlanta.com", vec![]);
    let location = Arc::new(location);
    let mut numbers = PrefixTable::new();
    numbers.insert("+1", RouteTarget::Group(0)).unwrap();
    numbers.insert("+49", hop("192.0.2.60:5060")).unwrap();
    numbers.insert("0800", RouteTarget::Group(7)).unwrap();
    let group = Group {
        name: "gw".into(),
        targets: (0..3)
            .map(|i| GroupTarget {
                addr: SocketAddr::from(([192, 0, 2, 80 + i], 5060)),
                transport: Transport::Udp,
                weight: u32::from(i) + 1,
            })
            .collect(),
        health_base: 0,
    };
    let a = ProxyConfig {
        domains: vec!["atlanta.com".into(), "sipd.test".into()],
        record_route: true,
        number_routes: numbers,
        domain_routes: HashMap::from([("biloxi.com".to_owned(), hop("192.0.2.20:5060"))]),
        default_route: Some(hop("192.0.2.200:5060")),
        groups: vec![group],
        hosts: HashMap::from([(
            "edge.atlanta.com".to_owned(),
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        )]),
        ..ProxyConfig::default()
    };
    let b = ProxyConfig {
        domains: vec!["atlanta.com".into()],
        advertise: Some(LOCAL_B.parse().unwrap()),
        branch_secret: 42,
        ..ProxyConfig::default()
    };
    [
        Proxy::new(Arc::new(a), location.clone(), Health::new(3)),
        Proxy::new(Arc::new(b), location, Health::new(0)),
    ]
}

thread_local! {
    static PROXIES: RefCell<[Proxy; 2]> = RefCell::new(proxies());
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 65_536]);
}

/// Length of the setup prefix of a `check_handle` input.
pub const SETUP_LEN: usize = 8;

/// The setup of one `handle` call, carved from the first [`SETUP_LEN`] bytes:
/// `[flags, a, b, c, d, port_hi, port_lo, now]`. Flags: bit 0 TCP, bit 1 IPv6 source, bit 2
/// config B, bit 3 a small output buffer (overflow path).
pub struct Setup {
    pub transport: Transport,
    pub source: SocketAddr,
    pub config: usize,
    pub small_buffer: bool,
    pub now_ms: u64,
}

pub fn setup(head: &[u8; SETUP_LEN]) -> Setup {
    let [flags, a, b, c, d, ph, pl, now] = *head;
    let ip = if flags & 2 == 0 {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    } else {
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            u16::from_be_bytes([a, b]),
            u16::from_be_bytes([c, d]),
        ))
    };
    Setup {
        transport: if flags & 1 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        source: SocketAddr::new(ip, u16::from_be_bytes([ph, pl])),
        config: usize::from(flags >> 2 & 1),
        small_buffer: flags & 8 != 0,
        now_ms: u64::from(now) * 1000,
    }
}

fn is_bad_destination(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn check_handle(data: &[u8]) {
    let Some((head, bytes)) = data.split_first_chunk::<SETUP_LEN>() else {
        return;
    };
    let s = setup(head);
    let local: SocketAddr = [LOCAL_A, LOCAL_B][s.config].parse().unwrap();
    let input = Input {
        now_ms: s.now_ms,
        source: s.source,
        local,
        transport: s.transport,
        bytes,
    };
    let mut h = [Header::EMPTY; sipd::proxy::MAX_HEADERS];
    let parsed = parse_datagram(bytes, &mut h);
    let input_valid = parsed.as_ref().is_ok_and(|m| validate(m).is_ok());
    let input_method = parsed
        .as_ref()
        .ok()
        .and_then(|m| m.method())
        .map(|m| m.as_bytes().to_vec());
    PROXIES.with_borrow_mut(|proxies| {
        BUF.with_borrow_mut(|buf| {
            let cap = if s.small_buffer { 300 } else { buf.len() };
            let out = &mut buf[..cap];
            let action = proxies[s.config].handle(&input, out);
            let (to, len, code) = match action {
                Action::Forward { to, len, .. } => (to, len, None),
                Action::Reply { to, len, code, .. } => (to, len, Some(code)),
                Action::Drop(_) => return,
            };
            assert!(len <= cap);
            assert!(
                !is_bad_destination(to.ip()),
                "sent to {to}:\n{}",
                text(&out[..len])
            );
            let written = &out[..len];
            let mut oh = [Header::EMPTY; OUTPUT_HEADERS];
            let msg = match parse_datagram(written, &mut oh) {
                Ok(m) => m,
                Err(e) => panic!(
                    "output does not reparse ({e}):\n{}\n--- input:\n{}",
                    text(written),
                    text(bytes)
                ),
            };
            assert_eq!(msg.len(), written.len(), "the output is one whole message");
            if input_valid && let Err(e) = validate(&msg) {
                panic!(
                    "output of a valid input does not validate ({e}):\n{}\n--- input:\n{}",
                    text(written),
                    text(bytes)
                );
            }
            match code {
                Some(code) => assert_eq!(msg.status(), Some(code)),
                None if msg.is_request() => {
                    assert_eq!(
                        msg.method().map(|m| m.as_bytes().to_vec()),
                        input_method,
                        "a forwarded request keeps its method"
                    );
                }
                None => assert!(input_method.is_none(), "a request forwarded as a response"),
            }
        })
    });
}
