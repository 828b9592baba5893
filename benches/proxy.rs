//! `Proxy::handle` per message (issue 3): an INVITE that is forwarded, a 200 OK (and a 180) routed
//! back, and a rejected request, each beside `parse_datagram` alone on the same bytes (the share
//! spent parsing), with and without the dialog table. Target: forwarding an INVITE costs at most
//! 2x parsing it.
//!
//! `cargo bench -p sipd --bench proxy -- --warm-up-time 1 --measurement-time 3` (LTO bench
//! profile). Groups:
//! - `proxy/parse/<msg>`: `parse_datagram` with the core's header storage (64 entries), as
//!   `handle` does it;
//! - `proxy/parse_extract/<msg>`: parsing plus extracting the fields a proxy reads (the parse
//!   bench's measure, `benches/common/fields.rs`);
//! - `proxy/handle/<msg>`: the stateless core (no dialog table);
//! - `proxy/handle_dialogs/<msg>`: with a dialog table and an in-memory record sink. Every INVITE
//!   creates a new call (4,096 distinct Call-IDs per batch; the calls are ended between batches,
//!   outside the timing), every 200 confirms one, every 180 creates an early dialog.
//! - `proxy/large_table/<how>`: new calls' INVITEs into a carrier-sized dialog table (every
//!   INVITE's line a cache miss), handled one by one and with `Proxy::look_ahead` over groups of
//!   32 first, as the workers do for a received batch.
//!
//! The proxy is biloxi.example.com at 203.0.113.10:5060, which is also the Route of the INVITE
//! fixture; the Request-URI's number goes out by a `+49` number route. The 200 and 180 carry the
//! Via stack the proxy wrote when it forwarded the INVITE (so their top Via is its own), and the
//! rejected request is the REGISTER fixture, answered 404 by a proxy without registrar.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sipd::dialog::{CallKey, DialogConfig, DialogKey, DialogTable, RecordSink, RecordTap};
use sipd::proxy::{
    Action, Health, Input, MAX_HEADERS, NextHop, PrefixTable, Proxy, ProxyConfig, RouteTarget,
    StaticLocation, Transport,
};
use sipd::sip::message::parse_datagram_uninit;

#[path = "common/fields.rs"]
mod fields;

const INVITE: &[u8] = include_bytes!("../tests/fixtures/messages/invite.sip");
const OK: &[u8] = include_bytes!("../tests/fixtures/messages/ok.sip");
const RINGING: &[u8] = include_bytes!("../tests/fixtures/messages/ringing.sip");
const REGISTER: &[u8] = include_bytes!("../tests/fixtures/messages/register.sip");

const CALL_ID: &str = "3848276298220188511@198.51.100.23";
const FROM_TAG: &[u8] = b"9fxced76sl";
const TO_TAG: &[u8] = b"8321234356";
/// Distinct calls per timed batch in `handle_dialogs`.
const CALLS: usize = 4_096;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const LOCAL: &str = "203.0.113.10:5060";
const UAC: &str = "198.51.100.23:5060";
const GATEWAY: &str = "192.0.2.50:5060";

fn config() -> ProxyConfig {
    let mut numbers = PrefixTable::new();
    numbers
        .insert(
            "+49",
            RouteTarget::Hop(NextHop {
                addr: addr(GATEWAY),
                transport: Transport::Udp,
            }),
        )
        .unwrap();
    ProxyConfig {
        domains: vec![
            "biloxi.example.com".into(),
            "edge.biloxi.example.com".into(),
        ],
        record_route: true,
        number_routes: numbers,
        ..ProxyConfig::default()
    }
}

fn proxy() -> Proxy {
    Proxy::new(
        Arc::new(config()),
        Arc::new(StaticLocation::new()),
        Health::new(0),
    )
}

fn with_dialogs(p: Proxy) -> (Proxy, Arc<DialogTable>, RecordTap) {
    let (sink, tap) = RecordSink::in_memory(4 * CALLS);
    let table = Arc::new(DialogTable::with_records(
        DialogConfig {
            capacity: 4 * CALLS,
            ..DialogConfig::default()
        },
        sink,
    ));
    (
        p.with_dialogs(table.clone(), Arc::new(Vec::new())),
        table,
        tap,
    )
}

fn input<'a>(source: &str, bytes: &'a [u8]) -> Input<'a> {
    Input {
        now_ms: 1_000,
        source: addr(source),
        local: addr(LOCAL),
        transport: Transport::Udp,
        bytes,
    }
}

/// `msg` with its Call-ID replaced by one of the same length numbered `n`.
fn with_call_id(msg: &[u8], n: usize) -> Vec<u8> {
    let text = std::str::from_utf8(msg).unwrap();
    let id = format!(
        "{:019}@198.51.100.23",
        1_000_000_000_000_000_000u64 + n as u64
    );
    assert_eq!(id.len(), CALL_ID.len());
    text.replace(CALL_ID, &id).into_bytes()
}

/// The forwarded INVITE (the proxy's own bytes) and what it did.
fn forward(p: &mut Proxy, invite: &[u8]) -> Vec<u8> {
    let mut out = vec![0; 65_536];
    match p.handle(&input(UAC, invite), &mut out) {
        Action::Forward { to, len, .. } => {
            assert_eq!(to, addr(GATEWAY));
            out.truncate(len);
            out
        }
        other => panic!("INVITE not forwarded: {other:?}"),
    }
}

/// A response fixture with its Via lines replaced by those of the forwarded request.
fn answer(response: &[u8], forwarded: &[u8]) -> Vec<u8> {
    let vias = |m: &[u8]| -> Vec<String> {
        std::str::from_utf8(m)
            .unwrap()
            .split("\r\n")
            .filter(|l| l.starts_with("Via:"))
            .map(str::to_owned)
            .collect()
    };
    let ours = vias(forwarded);
    assert_eq!(ours.len(), 2, "our Via and Alice's");
    let mut lines: Vec<String> = Vec::new();
    let mut put = false;
    for l in std::str::from_utf8(response).unwrap().split("\r\n") {
        if l.starts_with("Via:") {
            if !put {
                lines.extend(ours.iter().cloned());
                put = true;
            }
        } else {
            lines.push(l.to_owned());
        }
    }
    lines.join("\r\n").into_bytes()
}

fn expect_forward(action: Action, to: &str) {
    match action {
        Action::Forward { to: t, .. } => assert_eq!(t, addr(to)),
        other => panic!("expected a forward to {to}, got {other:?}"),
    }
}

fn parse_len(bytes: &[u8]) -> usize {
    let mut storage = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let msg = parse_datagram_uninit(bytes, &mut storage).unwrap();
    msg.headers().len() + msg.body().len()
}

fn bench(c: &mut Criterion) {
    let mut p = proxy();
    let fwd_invite = forward(&mut p, INVITE);
    let ok = answer(OK, &fwd_invite);
    let ringing = answer(RINGING, &fwd_invite);
    let mut out = vec![0u8; 65_536];
    // What each input does, checked once before measuring.
    expect_forward(p.handle(&input(GATEWAY, &ok), &mut out), UAC);
    expect_forward(p.handle(&input(GATEWAY, &ringing), &mut out), UAC);
    match p.handle(&input(UAC, REGISTER), &mut out) {
        Action::Reply { code: 404, .. } => {}
        other => panic!("REGISTER: {other:?}"),
    }

    let cases: [(&str, &[u8], &str); 4] = [
        ("invite_forwarded", INVITE, UAC),
        ("200_routed_back", &ok, GATEWAY),
        ("180_routed_back", &ringing, GATEWAY),
        ("register_rejected_404", REGISTER, UAC),
    ];

    let mut g = c.benchmark_group("proxy/parse");
    g.throughput(Throughput::Elements(1));
    for (name, bytes, _) in cases {
        g.bench_function(name, |b| b.iter(|| parse_len(black_box(bytes))));
    }
    g.finish();

    let mut g = c.benchmark_group("proxy/parse_extract");
    g.throughput(Throughput::Elements(1));
    for (name, bytes, _) in cases {
        g.bench_function(name, |b| b.iter(|| fields::sipd_fields(black_box(bytes))));
    }
    g.finish();

    let mut g = c.benchmark_group("proxy/handle");
    g.throughput(Throughput::Elements(1));
    for (name, bytes, source) in cases {
        let inp = input(source, bytes);
        g.bench_function(name, |b| {
            b.iter(|| p.handle(black_box(&inp), black_box(&mut out)))
        });
    }
    g.finish();

    // With the dialog table: distinct calls, so every INVITE creates one and every 200 confirms
    // one (a single repeated INVITE would only measure the retransmission lookup).
    let invites: Vec<Vec<u8>> = (0..CALLS).map(|n| with_call_id(INVITE, n)).collect();
    let oks: Vec<Vec<u8>> = (0..CALLS).map(|n| with_call_id(&ok, n)).collect();
    let ringings: Vec<Vec<u8>> = (0..CALLS).map(|n| with_call_id(&ringing, n)).collect();
    let call_ids: Vec<String> = (0..CALLS)
        .map(|n| String::from_utf8(with_call_id(CALL_ID.as_bytes(), n)).unwrap())
        .collect();
    let (mut pd, table, tap) = with_dialogs(proxy());
    // Ends every call of the batch (untimed) so the next batch creates them again.
    let end_calls = |table: &DialogTable, tap: &RecordTap| {
        for cid in &call_ids {
            table.on_bye(DialogKey::new(cid.as_bytes(), FROM_TAG, TO_TAG), 2_000);
            table.on_cancel(CallKey::new(cid.as_bytes(), FROM_TAG), 2_000);
        }
        black_box(tap.drain());
        let s = table.stats();
        assert_eq!((s.calls_active, s.early, s.confirmed), (0, 0, 0), "{s:?}");
    };
    let run = |pd: &mut Proxy, out: &mut [u8], msgs: &[Vec<u8>], source: &str| {
        for m in msgs {
            black_box(pd.handle(&input(source, black_box(m)), out));
        }
    };
    let mut g = c.benchmark_group("proxy/handle_dialogs");
    g.throughput(Throughput::Elements(1));
    g.bench_function("invite_forwarded", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = CALLS.min((iters - done) as usize);
                let t = Instant::now();
                run(&mut pd, &mut out, &invites[..n], UAC);
                total += t.elapsed();
                done += n as u64;
                end_calls(&table, &tap);
            }
            total
        })
    });
    g.bench_function("200_routed_back", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = CALLS.min((iters - done) as usize);
                run(&mut pd, &mut out, &invites[..n], UAC);
                let t = Instant::now();
                run(&mut pd, &mut out, &oks[..n], GATEWAY);
                total += t.elapsed();
                done += n as u64;
                assert_eq!(table.stats().confirmed, n as u64);
                end_calls(&table, &tap);
            }
            total
        })
    });
    g.bench_function("180_routed_back", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut done = 0u64;
            while done < iters {
                let n = CALLS.min((iters - done) as usize);
                run(&mut pd, &mut out, &invites[..n], UAC);
                let t = Instant::now();
                run(&mut pd, &mut out, &ringings[..n], GATEWAY);
                total += t.elapsed();
                done += n as u64;
                assert_eq!(table.stats().early, n as u64);
                end_calls(&table, &tap);
            }
            total
        })
    });
    let inp = input(UAC, REGISTER);
    g.bench_function("register_rejected_404", |b| {
        b.iter(|| pd.handle(black_box(&inp), black_box(&mut out)))
    });
    g.finish();

    large_table(c, &mut out);
}

/// Calls already up in the carrier-sized table of `large_table`.
const LARGE_LIVE: u64 = 1_000_000;
/// INVITEs per timed batch in `large_table`, handled in groups of `RX_GROUP` (a received batch).
const LARGE_BATCH: usize = 1_024;
const RX_GROUP: usize = 32;

/// `proxy/large_table`: INVITEs of new calls into a carrier-sized dialog table (4 M slots,
/// 256 MiB, a million calls up), where every INVITE's home line is a cache miss, handled one by
/// one (`invite_one_by_one`) and as a worker handles a received batch (`invite_looked_ahead`:
/// `look_ahead` on each message of a group of 32, then `handle` on each). Each timed batch is
/// 1,024 INVITEs with Call-IDs never seen before; the calls are cancelled between batches,
/// outside the timing.
fn large_table(c: &mut Criterion, out: &mut [u8]) {
    let table = Arc::new(DialogTable::new(DialogConfig {
        capacity: 1 << 22,
        ..DialogConfig::default()
    }));
    for n in 0..LARGE_LIVE {
        let call = CallKey::new(format!("live-{n}").as_bytes(), FROM_TAG);
        table.on_invite(call, 0, "", "", 1).unwrap();
    }
    let mut pd = proxy().with_dialogs(table.clone(), Arc::new(Vec::new()));
    let mut next_call = 0usize;
    let mut fresh_invites = || {
        let batch: Vec<Vec<u8>> = (0..LARGE_BATCH)
            .map(|n| with_call_id(INVITE, 1_000_000 + next_call + n))
            .collect();
        next_call += LARGE_BATCH;
        batch
    };
    let cancel = |table: &DialogTable, invites: &[Vec<u8>]| {
        for m in invites {
            let text = std::str::from_utf8(m).unwrap();
            let at = text.find("Call-ID: ").unwrap() + "Call-ID: ".len();
            let cid = &text[at..at + CALL_ID.len()];
            assert!(table.on_cancel(CallKey::new(cid.as_bytes(), FROM_TAG), 2_000));
        }
    };
    let mut g = c.benchmark_group("proxy/large_table");
    g.throughput(Throughput::Elements(1));
    for look_ahead in [false, true] {
        let name = if look_ahead {
            "invite_looked_ahead"
        } else {
            "invite_one_by_one"
        };
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let n = LARGE_BATCH.min((iters - done) as usize);
                    let invites = fresh_invites();
                    let t = Instant::now();
                    for group in invites[..n].chunks(RX_GROUP) {
                        if look_ahead {
                            for m in group {
                                pd.look_ahead(black_box(m));
                            }
                        }
                        for m in group {
                            black_box(pd.handle(&input(UAC, black_box(m)), out));
                        }
                    }
                    total += t.elapsed();
                    done += n as u64;
                    cancel(&table, &invites[..n]);
                }
                total
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
