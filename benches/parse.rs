//! Parse + extract what a proxy needs (top Via branch and sent-by, Max-Forwards, Call-ID, CSeq,
//! From tag, To tag, Request-URI, Route) from realistic messages: sipd on each SIMD backend, and
//! the `rsip` crate in the same run as the peer baseline. A second group, `parse_index`, times
//! the header index alone (no typed field) beside `httparse` on the same header block.
//!
//! `cargo bench -p sipd --bench parse` (LTO bench profile).

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use sipd::sip::scan::{self, Backend};

const MESSAGES: [(&str, &[u8]); 4] = [
    (
        "invite",
        include_bytes!("../tests/fixtures/messages/invite.sip"),
    ),
    (
        "register",
        include_bytes!("../tests/fixtures/messages/register.sip"),
    ),
    (
        "180",
        include_bytes!("../tests/fixtures/messages/ringing.sip"),
    ),
    ("200", include_bytes!("../tests/fixtures/messages/ok.sip")),
];

#[path = "common/rsip_fields.rs"]
mod rsip_fields;
use rsip_fields::rsip_fields;

#[path = "common/fields.rs"]
mod fields;
use fields::sipd_fields;

#[path = "common/http_peer.rs"]
mod http_peer;
use http_peer::{as_http, httparse_index, sipd_index};

/// `f` on `bytes` timed once per SIMD backend this CPU has, as `sipd-<backend>/<name>`.
fn on_each_backend(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    bytes: &[u8],
    f: impl Fn(&[u8]) -> usize + Copy,
) {
    for backend in Backend::ALL {
        if scan::set_backend(backend).is_err() {
            continue;
        }
        let id = BenchmarkId::new(format!("sipd-{}", backend.name()), name);
        group.bench_with_input(id, bytes, |b, m| b.iter(|| f(black_box(m))));
    }
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_fields");
    for (name, bytes) in MESSAGES {
        assert!(
            sipd_fields(bytes) > 0 && rsip_fields(bytes) > 0,
            "{name} parses with both"
        );
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        on_each_backend(&mut group, name, bytes, sipd_fields);
        group.bench_with_input(BenchmarkId::new("rsip", name), bytes, |b, m| {
            b.iter(|| rsip_fields(black_box(m)))
        });
    }
    group.finish();
}

fn index(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_index");
    for (name, bytes) in MESSAGES {
        let http = as_http(bytes);
        // The same header lines indexed by both (the HTTP start line is one byte longer).
        assert_eq!(
            httparse_index(&http),
            sipd_index(bytes) + http.len() - bytes.len(),
            "{name}: both index the same head"
        );
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        on_each_backend(&mut group, name, bytes, sipd_index);
        group.bench_with_input(BenchmarkId::new("httparse", name), &http, |b, m| {
            b.iter(|| httparse_index(black_box(m)))
        });
    }
    group.finish();
}

criterion_group!(benches, parse, index);
criterion_main!(benches);
