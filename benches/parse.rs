//! Parse + extract what a proxy needs (top Via branch and sent-by, Max-Forwards, Call-ID, CSeq,
//! From tag, To tag, Request-URI, Route) from realistic messages: sipd on each SIMD backend, and
//! the `rsip` crate in the same run as the peer baseline.
//!
//! `cargo bench -p sipd --bench parse` (LTO bench profile).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::prelude::{HeadersExt, ToTypedHeader};
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

fn rsip_fields(bytes: &[u8]) -> usize {
    let msg = rsip::SipMessage::try_from(bytes).unwrap();
    let via = msg.via_header().unwrap().typed().unwrap();
    let branch = via.branch().map_or(0, |b| b.to_string().len());
    let sent_by = via.sent_by().host_with_port.to_string().len();
    let max_forwards = msg
        .max_forwards_header()
        .map_or(0, |m| m.num().unwrap_or(0) as usize);
    let call_id = msg.call_id_header().unwrap().value().len();
    let cseq = msg.cseq_header().unwrap().typed().unwrap().seq as usize;
    let from_tag = msg
        .from_header()
        .unwrap()
        .tag()
        .unwrap()
        .map_or(0, |t| t.value().len());
    let to_tag = msg
        .to_header()
        .unwrap()
        .tag()
        .unwrap()
        .map_or(0, |t| t.value().len());
    let ruri = match &msg {
        rsip::SipMessage::Request(r) => r.uri().to_string().len(),
        rsip::SipMessage::Response(_) => 0,
    };
    let route = msg
        .headers()
        .iter()
        .find_map(|h| match h {
            rsip::Header::Route(r) => Some(r.value().len()),
            _ => None,
        })
        .unwrap_or(0);
    branch + sent_by + max_forwards + call_id + cseq + from_tag + to_tag + ruri + route
}

#[path = "common/fields.rs"]
mod fields;
use fields::sipd_fields;

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_fields");
    for (name, bytes) in MESSAGES {
        assert!(
            sipd_fields(bytes) > 0 && rsip_fields(bytes) > 0,
            "{name} parses with both"
        );
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        for backend in Backend::ALL {
            if scan::set_backend(backend).is_err() {
                continue;
            }
            let id = BenchmarkId::new(format!("sipd-{}", backend.name()), name);
            group.bench_with_input(id, bytes, |b, m| b.iter(|| sipd_fields(black_box(m))));
        }
        group.bench_with_input(BenchmarkId::new("rsip", name), bytes, |b, m| {
            b.iter(|| rsip_fields(black_box(m)))
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
