//! Registrar and location service.
//!
//! - `register`: REGISTERs handled per second through `Proxy::handle` (parse, §10.3 update of
//!   an existing AOR, 200 OK written), without and with digest authentication (SHA-256 and MD5,
//!   qop=auth, a rising nonce count on one nonce). The client's own hashing happens in the
//!   untimed setup of each batch.
//! - `lookup_1M`: the proxy's location lookup (key canonicalised, table probe, contact picked,
//!   target cloned) in a table of 1M bindings, on 1 and 2 threads, beside the same records in a
//!   `dashmap` in the same run. With 2 threads the time is wall time per lookup per thread
//!   (throughput counts both threads).
//!
//! Also prints the memory per binding: the resident-set growth while building each 1M table,
//! and the registrar's structural estimate.
//!
//! `cargo bench -p sipd --bench registrar` (LTO bench profile).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use sipd::proxy::location::{ContactTarget, LocationService, Lookup};
use sipd::proxy::{Action, Health, Input, Proxy, ProxyConfig, Transport};
use sipd::registrar::bindings::{
    Binding, Bindings, ContactUpdate, MAX_AOR_LEN, Update, aor_key, pick,
};
use sipd::registrar::digest::{Algorithm, ResponseInput, expected_response, ha1};
use sipd::registrar::{AuthConfig, Authenticator, Credentials, Registrar, RegistrarConfig};

const DOMAIN: &str = "biloxi.example.com";
const T0: u64 = 1_700_000_000_000;
const USERS: usize = 10_000;
const TABLE: usize = 1_000_000;

fn register_msg(user: usize, cseq: u32, auth: Option<(Algorithm, &str, u32)>) -> Vec<u8> {
    let authorization = match auth {
        None => String::new(),
        Some((alg, nonce, nc)) => {
            let name = format!("u{user}");
            let h1 = ha1(alg, &name, DOMAIN, "secret-password");
            let nc = format!("{nc:08x}");
            let resp = expected_response(
                alg,
                &h1,
                &ResponseInput {
                    method: b"REGISTER",
                    digest_uri: b"sip:biloxi.example.com",
                    nonce: nonce.as_bytes(),
                    qop: Some((nc.as_bytes(), b"8f3a2c1d", b"auth")),
                },
            );
            format!(
                "Authorization: Digest username=\"{name}\", realm=\"{DOMAIN}\", nonce=\"{nonce}\", \
                 uri=\"sip:biloxi.example.com\", response=\"{}\", algorithm={}, \
                 cnonce=\"8f3a2c1d\", qop=auth, nc={nc}\r\n",
                resp.as_str(),
                alg.name()
            )
        }
    };
    format!(
        "REGISTER sip:biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds7{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         To: <sip:u{user}@biloxi.example.com>\r\n\
         From: <sip:u{user}@biloxi.example.com>;tag=456248\r\n\
         Call-ID: 843817637684230@998sdasdh09-{user}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:u{user}@192.0.2.4:5060;transport=udp>;expires=3600;q=0.8\r\n\
         {authorization}\
         User-Agent: ExampleDeskPhone/3.1\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn proxy_with(registrar: Arc<Registrar>) -> Proxy {
    let config = Arc::new(ProxyConfig {
        domains: vec![DOMAIN.into()],
        ..ProxyConfig::default()
    });
    Proxy::new(config, registrar.clone(), Health::new(0)).with_registrar(registrar)
}

fn handle(proxy: &mut Proxy, bytes: &[u8], out: &mut [u8]) -> Action {
    let input = Input {
        now_ms: T0 + 1000,
        source: "192.0.2.4:5060".parse().unwrap(),
        local: "192.0.2.100:5060".parse().unwrap(),
        transport: Transport::Udp,
        bytes,
    };
    proxy.handle(&input, out)
}

fn register(c: &mut Criterion) {
    let mut group = c.benchmark_group("register");
    group.throughput(Throughput::Elements(1));
    let config = RegistrarConfig {
        domains: vec![DOMAIN.into()],
        capacity: 100_000,
        ..RegistrarConfig::default()
    };

    // Without authentication: refreshes of USERS existing AORs, CSeq rising.
    let registrar = Arc::new(Registrar::new(config.clone()));
    let mut proxy = proxy_with(registrar.clone());
    let mut out = vec![0u8; 4096];
    let first = handle(&mut proxy, &register_msg(0, 1, None), &mut out);
    assert!(
        matches!(first, Action::Reply { code: 200, .. }),
        "{first:?}"
    );
    let mut n = 1u32;
    group.bench_function("no_auth", |b| {
        b.iter_batched(
            || {
                n += 1;
                register_msg(n as usize % USERS, n, None)
            },
            |msg| {
                let a = handle(&mut proxy, &msg, &mut out);
                debug_assert!(matches!(a, Action::Reply { code: 200, .. }));
                black_box(a)
            },
            BatchSize::SmallInput,
        )
    });
    assert!(!registrar.bindings().is_empty());

    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let mut creds = Credentials::new();
        for u in 0..USERS {
            creds.insert_password(&format!("u{u}"), DOMAIN, "secret-password");
        }
        let mut auth = AuthConfig::new(DOMAIN, b"bench secret".to_vec());
        auth.algorithms = vec![alg];
        let registrar = Arc::new(
            Registrar::new(config.clone()).with_auth(Authenticator::with_credentials(auth, creds)),
        );
        let nonce = {
            let a = registrar.authenticator().unwrap();
            String::from_utf8(a.nonce_key().issue(T0).to_vec()).unwrap()
        };
        let mut proxy = proxy_with(registrar.clone());
        let first = handle(
            &mut proxy,
            &register_msg(0, 1, Some((alg, &nonce, 1))),
            &mut out,
        );
        assert!(
            matches!(first, Action::Reply { code: 200, .. }),
            "{first:?}"
        );
        let mut n = 1u32;
        group.bench_function(BenchmarkId::new("auth", alg.name()), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    register_msg(n as usize % USERS, n, Some((alg, &nonce, n)))
                },
                |msg| {
                    let a = handle(&mut proxy, &msg, &mut out);
                    debug_assert!(matches!(a, Action::Reply { code: 200, .. }), "{a:?}");
                    black_box(a)
                },
                BatchSize::SmallInput,
            )
        });
        assert!(
            registrar
                .stats()
                .auth_ok
                .load(std::sync::atomic::Ordering::Relaxed)
                > 0
        );
    }
    group.finish();
}

/// Resident set size in bytes (Linux).
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn binding(i: usize) -> (String, Binding) {
    let uri = format!(
        "sip:u{i}@10.{}.{}.{}:5060",
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    );
    let b = Binding {
        uri: Arc::from(uri.as_bytes()),
        addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 5060)),
        expires_at_ms: T0 + 3_600_000,
        call_id_hash: i as u64,
        cseq: 1,
        q: 1000,
        transport: Transport::Udp,
        routable: true,
    };
    (format!("u{i}@{DOMAIN}"), b)
}

fn build_papaya() -> Bindings {
    let t = Bindings::new(TABLE, 42);
    for i in 0..TABLE {
        let (aor, b) = binding(i);
        let contacts = [ContactUpdate {
            uri: &b.uri,
            addr: b.addr,
            transport: b.transport,
            q: b.q,
            routable: true,
            expires_s: 3600,
        }];
        t.update(
            &Update {
                aor: aor.as_bytes(),
                call_id_hash: b.call_id_hash,
                cseq: 1,
                now_ms: T0,
                remove_all: false,
                contacts: &contacts,
                max_per_aor: 16,
            },
            |_| (),
        )
        .unwrap();
    }
    t
}

type Dash = DashMap<Box<[u8]>, Box<[Binding]>>;

fn build_dash() -> Dash {
    let d = DashMap::with_capacity(TABLE);
    for i in 0..TABLE {
        let (aor, b) = binding(i);
        d.insert(
            aor.into_bytes().into_boxed_slice(),
            vec![b].into_boxed_slice(),
        );
    }
    d
}

/// The same lookup logic as `Bindings::lookup`, over the dashmap.
fn dash_lookup(d: &Dash, user: &[u8], domain: &[u8], now_ms: u64, call_id: &[u8]) -> Lookup {
    let mut buf = [0u8; MAX_AOR_LEN];
    let Some(key) = aor_key(user, domain, &mut buf) else {
        return Lookup::Unknown;
    };
    match d.get(key) {
        None => Lookup::Unknown,
        Some(bindings) => match pick(&bindings, now_ms, call_id) {
            Some(b) => Lookup::Found(b.target()),
            None => Lookup::NoBinding,
        },
    }
}

fn keys() -> Vec<Vec<u8>> {
    // A fixed pseudo-random sequence of users (the table is far larger than the caches).
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            format!("u{}", x as usize % TABLE).into_bytes()
        })
        .collect()
}

fn lookups<F: Fn(&[u8]) -> Lookup + Sync>(iters: u64, threads: usize, f: &F) -> Duration {
    let keys = keys();
    let go = |offset: usize| {
        let mut found = 0u64;
        for i in 0..iters as usize {
            if let Lookup::Found(ContactTarget { q, .. }) = f(&keys[(i + offset) % keys.len()]) {
                found += u64::from(q);
            }
        }
        black_box(found)
    };
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 1..threads {
            let go = &go;
            s.spawn(move || go(t * 997));
        }
        go(0);
    });
    start.elapsed()
}

fn lookup(c: &mut Criterion) {
    let before = rss();
    let papaya = build_papaya();
    let papaya_rss = rss().saturating_sub(before);
    let est = papaya.estimated_bytes() / papaya.len().max(1);
    let before = rss();
    let dash = build_dash();
    let dash_rss = rss().saturating_sub(before);
    println!(
        "memory per binding with {TABLE} AORs of one binding: sipd (papaya) {} B measured (RSS), \
         {est} B estimated; dashmap {} B measured (RSS)",
        papaya_rss / TABLE,
        dash_rss / TABLE,
    );
    let now = T0 + 1000;
    let mut group = c.benchmark_group("lookup_1M");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements(threads as u64));
        group.bench_function(BenchmarkId::new("sipd", format!("{threads}t")), |b| {
            b.iter_custom(|iters| {
                lookups(iters, threads, &|u| {
                    papaya.lookup(u, DOMAIN.as_bytes(), now, b"call")
                })
            })
        });
        group.bench_function(BenchmarkId::new("dashmap", format!("{threads}t")), |b| {
            b.iter_custom(|iters| {
                lookups(iters, threads, &|u| {
                    dash_lookup(&dash, u, DOMAIN.as_bytes(), now, b"call")
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, register, lookup);
criterion_main!(benches);
