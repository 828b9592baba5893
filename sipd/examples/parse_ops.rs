//! Parse + extract (the parse bench's measure) timed beside rsip **alternately**, round after
//! round, so that both see the same machine: on a shared host whose speed drifts from minute to
//! minute, criterion's one-after-the-other runs give the sipd/rsip ratio a wide spread.
//!
//! ```text
//! cargo run --profile bench -p sipd --example parse_ops -- 101
//! ```
//!
//! (`--profile bench`: the same fat-LTO build as the criterion bench.) For each sample message
//! and each SIMD backend this CPU has, `rounds` rounds: sipd parses the message 2,000 times,
//! then rsip 200 times; it prints the best and the median round of each, in ns per message, and
//! their ratios. The extracted fields and the rsip peer are the bench's own
//! (`benches/common/fields.rs`, `benches/common/rsip_fields.rs`). A second line per backend does
//! the same for the header index alone (`parse_datagram`, no typed field) beside `httparse` on
//! the same header block (`benches/common/http_peer.rs`).

use std::hint::black_box;
use std::time::Instant;

use sipd::sip::scan::{self, Backend};

#[path = "../../benches/common/fields.rs"]
mod fields;
#[path = "../../benches/common/http_peer.rs"]
mod http_peer;
#[path = "../../benches/common/rsip_fields.rs"]
mod rsip_fields;

const MESSAGES: [(&str, &[u8]); 4] = [
    (
        "invite",
        include_bytes!("../../tests/fixtures/messages/invite.sip"),
    ),
    (
        "register",
        include_bytes!("../../tests/fixtures/messages/register.sip"),
    ),
    (
        "180",
        include_bytes!("../../tests/fixtures/messages/ringing.sip"),
    ),
    (
        "200",
        include_bytes!("../../tests/fixtures/messages/ok.sip"),
    ),
];

const SIPD_PER_ROUND: u32 = 2_000;
const RSIP_PER_ROUND: u32 = 200;
const INDEX_PER_ROUND: u32 = 2_000;

/// ns per call of `f` over `n` calls.
fn time(n: u32, f: &dyn Fn() -> usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        black_box(f());
    }
    start.elapsed().as_nanos() as f64 / f64::from(n)
}

/// Best and median of a set of round times.
fn best_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(51)
        .max(1);
    for (name, bytes) in MESSAGES {
        assert!(fields::sipd_fields(bytes) > 0 && rsip_fields::rsip_fields(bytes) > 0);
        let http = http_peer::as_http(bytes);
        for backend in Backend::ALL {
            if scan::set_backend(backend).is_err() {
                continue;
            }
            let [mut ours, mut peer, mut index, mut httparse] = [(); 4].map(|()| Vec::new());
            for _ in 0..rounds {
                ours.push(time(SIPD_PER_ROUND, &|| {
                    fields::sipd_fields(black_box(bytes))
                }));
                peer.push(time(RSIP_PER_ROUND, &|| {
                    rsip_fields::rsip_fields(black_box(bytes))
                }));
                index.push(time(INDEX_PER_ROUND, &|| {
                    http_peer::sipd_index(black_box(bytes))
                }));
                httparse.push(time(INDEX_PER_ROUND, &|| {
                    http_peer::httparse_index(black_box(&http))
                }));
            }
            let backend = backend.name();
            report(name, backend, "sipd", &mut ours, "rsip", &mut peer, rounds);
            report(
                name,
                backend,
                "index",
                &mut index,
                "httparse",
                &mut httparse,
                rounds,
            );
        }
    }
}

/// One line: our best / median round, the peer's, and the peer's time over ours.
fn report(
    name: &str,
    backend: &str,
    ours_name: &str,
    ours: &mut [f64],
    peer_name: &str,
    peer: &mut [f64],
    rounds: usize,
) {
    let (ob, om) = best_median(ours);
    let (pb, pm) = best_median(peer);
    println!(
        "{name:>8} {backend:>8}: {ours_name:>5} {ob:7.1} / {om:7.1} ns, {peer_name:>8} \
         {pb:8.1} / {pm:8.1} ns (best / median of {rounds} rounds): {:.1}x / {:.1}x",
        pb / ob,
        pm / om,
    );
}
