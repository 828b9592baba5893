//! The fuzz targets' properties (`sipd/fuzz/src/props.rs`, shared with `cargo fuzz`) over a
//! bounded number of mutated corpus messages, so every `cargo test` runs a little fuzzing:
//! RFC 4475 torture messages, the sample messages and the routing seeds (tests/fixtures/proxy),
//! mutated (bytes flipped, inserted, deleted, lines duplicated or dropped, tokens swapped for
//! interesting ones) and sent from varied sources into the parser and `Proxy::handle`.

#[path = "../sipd/fuzz/src/props.rs"]
mod props;

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out = Vec::new();
    for dir in ["rfc4475", "messages", "proxy"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "dat" || x == "sip"))
            .collect();
        entries.sort();
        for p in entries {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out
}

/// Tokens that change what the core decides.
const INTERESTING: &[&[u8]] = &[
    b"0",
    b"255.255.255.255",
    b"224.0.0.1",
    b"[ff02::1]",
    b"192.0.2.1",
    b"192.0.2.1:5060",
    b"atlanta.com",
    b";lr",
    b";rport",
    b";received=0.0.0.0",
    b";maddr=192.0.2.1",
    b";transport=tcp",
    b";tag=",
    b",",
    b";",
    b"<",
    b">",
    b"\"",
    b"?h=v",
    b"\r\n ",
    b"\r\n",
    b"\r\n\r\n",
    b"%00",
    b"z9hG4bKsd",
    b"z9hG4bKsdhp1.1",
    b"Route: <sip:192.0.2.1;lr>\r\n",
    b"Proxy-Require: x\r\n",
    b"Content-Length: 9\r\n",
    b"Max-Forwards: 0\r\n",
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsd0\r\n",
    b"4294967296",
    b"SIP/2.1",
    b"+1555",
    b"tel:+1",
];

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, usize),
    Delete(usize, usize),
    DuplicateLine(usize),
    DropLine(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), 0..INTERESTING.len()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn line_bounds(m: &[u8], pick: usize) -> Option<(usize, usize)> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(
            m.windows(2)
                .enumerate()
                .filter(|(_, w)| *w == b"\r\n")
                .map(|(i, _)| i + 2),
        )
        .filter(|&s| s < m.len())
        .collect();
    let s = *starts.get(pick % starts.len().max(1))?;
    let e = m[s..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(m.len(), |p| s + p + 2);
    Some((s, e))
}

fn apply(mut m: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
    for mu in muts {
        let n = m.len().max(1);
        match *mu {
            Mutation::Flip(i, b) => {
                if !m.is_empty() {
                    let i = i % n;
                    m[i] = b;
                }
            }
            Mutation::Insert(i, t) => {
                let i = i % (m.len() + 1);
                m.splice(i..i, INTERESTING[t].iter().copied());
            }
            Mutation::Delete(i, k) => {
                let i = i % n;
                let end = (i + k).min(m.len());
                if i < end {
                    m.drain(i..end);
                }
            }
            Mutation::DuplicateLine(p) => {
                if let Some((s, e)) = line_bounds(&m, p) {
                    let line = m[s..e].to_vec();
                    m.splice(e..e, line);
                }
            }
            Mutation::DropLine(p) => {
                if let Some((s, e)) = line_bounds(&m, p) {
                    m.drain(s..e);
                }
            }
            Mutation::Truncate(i) => m.truncate(i % n),
        }
    }
    m
}

/// Sources: the usual client, the proxy itself, broadcast, multicast, IPv6, TCP, both configs.
fn setup_prefix() -> impl Strategy<Value = [u8; props::SETUP_LEN]> {
    let addrs: &[[u8; 4]] = &[
        [192, 0, 2, 10],
        [192, 0, 2, 1],
        [255, 255, 255, 255],
        [224, 0, 0, 1],
        [0, 0, 0, 0],
        [10, 1, 1, 1],
    ];
    (
        any::<u8>(),
        proptest::sample::select(addrs.to_vec()),
        prop_oneof![Just(5060u16), any::<u16>()],
        any::<u8>(),
    )
        .prop_map(|(flags, a, port, now)| {
            let p = port.to_be_bytes();
            [flags & 0x0f, a[0], a[1], a[2], a[3], p[0], p[1], now]
        })
}

const CASES: u32 = 3_000;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn every_corpus_message_unmutated_satisfies_both_properties() {
    for m in corpus() {
        props::check_parse(&m);
        for flags in 0..16u8 {
            let mut input = vec![flags, 192, 0, 2, 10, 0x13, 0xc4, 1];
            input.extend_from_slice(&m);
            props::check_handle(&input);
        }
    }
}

#[test]
fn mutated_corpus_messages_parse_and_reparse_to_the_same_view() {
    let corpus = corpus();
    let strategy = (
        proptest::sample::select(corpus),
        proptest::collection::vec(mutation(), 1..6),
    );
    runner()
        .run(&strategy, |(m, muts)| {
            props::check_parse(&apply(m, &muts));
            Ok(())
        })
        .unwrap();
}

#[test]
fn mutated_corpus_messages_from_any_source_through_handle() {
    let corpus = corpus();
    let strategy = (
        setup_prefix(),
        proptest::sample::select(corpus),
        proptest::collection::vec(mutation(), 0..6),
    );
    runner()
        .run(&strategy, |(setup, m, muts)| {
            let mut input = setup.to_vec();
            input.extend_from_slice(&apply(m, &muts));
            props::check_handle(&input);
            Ok(())
        })
        .unwrap();
}
