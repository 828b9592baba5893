//! RFC 4475 torture messages through `Proxy::handle`: the manifest's last column (what a proxy
//! does) is checked for every message. The proxy is responsible for no domain of the corpus
//! (example.com & co.) and has a default route, so a request that passes validation is forwarded.
//!
//! Rows whose expectation belongs to a registrar are listed in `REGISTRAR` with what the proxy
//! core does instead, and why.

#[path = "proxy_support/mod.rs"]
mod support;

use std::path::PathBuf;

use sipd::proxy::{DropReason, NextHop, ProxyConfig, RouteTarget, Transport};
use support::{Harness, Msg, Out, addr, input_is_valid};

const NEXT_HOP: &str = "192.0.2.200:5060";

/// Rows about registrar behaviour: the stateless proxy core forwards a REGISTER for a domain
/// it does not serve (the registrar module decides for its own domains).
const REGISTRAR: &[(&str, &str)] = &[
    (
        "cparam01",
        "a REGISTER for a domain we do not serve: forwarded",
    ),
    (
        "cparam02",
        "a REGISTER for a domain we do not serve: forwarded",
    ),
    (
        "regescrt",
        "a REGISTER for a domain we do not serve: forwarded",
    ),
    (
        "regaut01",
        "authentication is the registrar's; the proxy forwards",
    ),
    (
        "regbadct",
        "RFC 4475 §3.1.2.13 leaves a registrar room to be liberal; the proxy core does not \
         interpret Contact (parsed on demand only), so it forwards",
    ),
];

#[derive(Debug, PartialEq)]
enum Expect {
    Forward,
    ForwardResponse,
    Reply(u16),
    ReplyOrDrop(u16),
    Drop,
    DropBroadcast,
}

fn expectation(name: &str, what: &str) -> Expect {
    if REGISTRAR.iter().any(|(n, _)| *n == name) {
        return Expect::Forward;
    }
    if what.starts_with("forward response") {
        return Expect::ForwardResponse;
    }
    if what.starts_with("forward")
        || what.starts_with("process normally")
        || what.starts_with("a proxy that does not use Date may forward")
    {
        return Expect::Forward;
    }
    if what.starts_with("never send to the broadcast") {
        return Expect::DropBroadcast;
    }
    if what.starts_with("drop") {
        return Expect::Drop;
    }
    let code: u16 = what[..3]
        .parse()
        .unwrap_or_else(|_| panic!("{name}: no rule for {what:?}"));
    if what.contains("/ drop") {
        Expect::ReplyOrDrop(code)
    } else {
        Expect::Reply(code)
    }
}

fn corpus() -> Vec<(String, String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rfc4475");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let bytes = std::fs::read(dir.join(format!("{}.dat", cols[0]))).unwrap();
            (cols[0].to_owned(), cols[4].to_owned(), bytes)
        })
        .collect()
}

/// The one Route host name of the corpus (wsinv), statically resolved: no DNS on the fast path.
const ROUTE_HOST: (&str, &str) = ("services.example.com", "192.0.2.200");

fn harness() -> Harness {
    Harness::new(ProxyConfig {
        domains: vec!["sipd.test".into()],
        hosts: std::collections::HashMap::from([(
            ROUTE_HOST.0.to_owned(),
            ROUTE_HOST.1.parse().unwrap(),
        )]),
        default_route: Some(RouteTarget::Hop(NextHop {
            addr: addr(NEXT_HOP),
            transport: Transport::Udp,
        })),
        ..ProxyConfig::default()
    })
}

const OUR_VIA: &str =
    "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsd0123456789abcdef0123456789abcdef\r\n";

/// A response as it reaches us: our Via on top of the message's own.
fn with_our_via(bytes: &[u8]) -> Vec<u8> {
    let eol = bytes.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    [&bytes[..eol], OUR_VIA.as_bytes(), &bytes[eol..]].concat()
}

#[test]
fn every_torture_message_gets_what_the_manifest_says_a_proxy_does() {
    let rows = corpus();
    assert_eq!(rows.len(), 49);
    let mut failures = Vec::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for (name, what, bytes) in rows {
        let expect = expectation(&name, &what);
        *seen.entry(format!("{expect:?}")).or_default() += 1;
        let mut h = harness();
        let out = match expect {
            Expect::ForwardResponse => h.send_from(NEXT_HOP, &with_our_via(&bytes)),
            Expect::DropBroadcast => {
                // We are the element at the top Via (192.0.2.198) and the branch is ours; the
                // next Via is 255.255.255.255.
                let text = String::from_utf8(bytes.clone()).unwrap().replacen(
                    "branch=z9hG4bK1324923",
                    "branch=z9hG4bKsd0123456789abcdef0123456789abcdef",
                    1,
                );
                h.local = addr("192.0.2.198:5060");
                h.send_from(NEXT_HOP, text.as_bytes())
            }
            _ => h.send(&bytes),
        };
        let ok = match (&expect, &out) {
            (Expect::Forward, Out::Forward { to, msg, .. }) => {
                check_forwarded(&name, &bytes, msg, &mut failures);
                *to == expected_next_hop(&bytes)
            }
            (Expect::ForwardResponse, Out::Forward { msg, .. }) => {
                // Our Via removed, nothing else touched.
                let _ = Msg::checked(&bytes, input_is_valid(&bytes));
                msg.bytes == bytes
            }
            (Expect::Reply(c) | Expect::ReplyOrDrop(c), Out::Reply { code, .. }) => code == c,
            (Expect::ReplyOrDrop(_) | Expect::Drop, Out::Drop(_)) => true,
            (Expect::DropBroadcast, Out::Drop(r)) => *r == DropReason::Broadcast,
            _ => false,
        };
        if !ok {
            failures.push(format!("{name}: expected {expect:?} ({what}), got {out:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every kind of expectation in the issue occurs.
    for kind in [
        "Forward",
        "ForwardResponse",
        "Reply(400)",
        "Reply(416)",
        "Reply(420)",
        "Reply(483)",
        "Reply(505)",
        "Drop",
        "DropBroadcast",
    ] {
        assert!(seen.contains_key(kind), "no {kind} row: {seen:?}");
    }
}

/// The first Route (loose routing), else the default route.
fn expected_next_hop(bytes: &[u8]) -> std::net::SocketAddr {
    let msg = Msg::checked(bytes, false);
    let Some(route) = msg.list("Route").into_iter().next() else {
        return addr(NEXT_HOP);
    };
    let uri = support::sim::strip_brackets(&route);
    let u = sipd::sip::uri::Uri::parse(uri.as_bytes()).unwrap();
    let ip = match u.host().unwrap() {
        sipd::sip::uri::Host::Name(n) if n == ROUTE_HOST.0.as_bytes() => {
            ROUTE_HOST.1.parse().unwrap()
        }
        sipd::sip::uri::Host::Ipv4(a) => a.into(),
        other => panic!("no static address for {other:?}"),
    };
    std::net::SocketAddr::new(ip, u.port().unwrap_or(5060))
}

/// A forwarded torture message: Max-Forwards one less (or 70), our Via on top, the body and the
/// datagram's first message only.
fn check_forwarded(name: &str, input: &[u8], out: &Msg, failures: &mut Vec<String>) {
    let original = Msg::checked(input, false);
    let mf_in = original.max_forwards();
    let want_mf = mf_in.map_or(70, |m| m - 1);
    if out.max_forwards() != Some(want_mf) {
        failures.push(format!("{name}: Max-Forwards {:?}", out.max_forwards()));
    }
    if out.vias().len() != original.vias().len() + 1 || !out.branch(0).starts_with("z9hG4bKsd") {
        failures.push(format!("{name}: Via stack {:?}", out.vias()));
    }
    if out.body() != original.body() {
        failures.push(format!("{name}: body changed"));
    }
    if out.request_uri() != original.request_uri() {
        failures.push(format!("{name}: Request-URI changed"));
    }
}

#[test]
fn wsinv_goes_from_68_to_67_and_dblreq_forwards_the_first_message_only() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rfc4475");
    let mut h = harness();
    let wsinv = std::fs::read(dir.join("wsinv.dat")).unwrap();
    let (_, out) = h.send(&wsinv).forward();
    assert_eq!(out.max_forwards(), Some(67));
    let dblreq = std::fs::read(dir.join("dblreq.dat")).unwrap();
    let (_, out) = h.send(&dblreq).forward();
    let first = Msg::new(&dblreq);
    assert_eq!(out.body(), first.body());
    assert!(out.bytes.ends_with(&first.body()));
    assert_eq!(
        out.text().matches("REGISTER ").count(),
        1,
        "the trailing second message is not forwarded"
    );
}

#[test]
fn bext01_names_the_unsupported_proxy_require_tags() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rfc4475");
    let mut h = harness();
    let (_, code, reply) = h
        .send(&std::fs::read(dir.join("bext01.dat")).unwrap())
        .reply();
    assert_eq!(code, 420);
    assert_eq!(
        reply.header("Unsupported").as_deref(),
        Some("noProxiesSupportThis, norDoAnyProxiesSupportThis")
    );
}
