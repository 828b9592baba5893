//! Many threads registering, refreshing, removing, looking up and expiring bindings at once,
//! checked against a reference model: no binding lost, none duplicated, the capacity count
//! exact and never exceeded.
//!
//! Every thread owns its own contacts (each AOR is shared by all threads) and its own Call-ID
//! with a rising CSeq, so the expected final state is determined by each thread's own
//! operations, whatever the interleaving; records of one AOR are nevertheless rewritten by all
//! threads concurrently, which is what the compare-and-swap update must get right. Each thread
//! has its own clock, and at the end every binding live at `T_END` must be exactly the model's.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use sipd::proxy::location::{LocationService, Lookup};
use sipd::proxy::{Action, Health, Input, Proxy, ProxyConfig, Transport};
use sipd::registrar::bindings::{Bindings, ContactUpdate, Update, UpdateError, same_contact};
use sipd::registrar::{Registrar, RegistrarConfig};

const THREADS: usize = 6;
const AORS: usize = 40;
const CONTACTS_PER_THREAD: usize = 3;
const OPS: usize = 3000;
const T0: u64 = 1_000_000;
/// Later than every clock a thread reaches.
const T_END: u64 = T0 + (OPS as u64) * 10 + 1;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn aor(i: usize) -> Vec<u8> {
    format!("user{i}@biloxi.com").into_bytes()
}

fn contact_uri(aor: usize, thread: usize, k: usize) -> String {
    format!("sip:user{aor}@192.0.2.{}:{}", thread + 1, 5060 + k)
}

/// (aor, contact uri) -> absolute expiry, per thread.
type Model = HashMap<(usize, String), u64>;

fn run_thread(table: &Bindings, t: usize, capacity_hits: &mut usize) -> Model {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1).wrapping_mul(0x1234_5678_9abc));
    let mut model = Model::new();
    let mut cseq = 0u32;
    for op in 0..OPS {
        let now = T0 + op as u64 * 10;
        let a = rng.below(AORS as u64) as usize;
        let key = aor(a);
        match rng.below(10) {
            // Look up (must never see another AOR's contact or a dead one).
            0..=2 => {
                let user = format!("user{a}");
                let call = format!("call-{t}-{op}");
                if let Lookup::Found(c) =
                    table.lookup(user.as_bytes(), b"BILOXI.com", now, call.as_bytes())
                {
                    let uri = String::from_utf8(c.uri.to_vec()).unwrap();
                    assert!(
                        uri.starts_with(&format!("sip:user{a}@")),
                        "{uri} for user{a}"
                    );
                }
            }
            // Register or refresh one or two of our contacts, or remove one.
            _ => {
                // One or two distinct contacts of ours.
                let first = rng.below(CONTACTS_PER_THREAD as u64) as usize;
                let mut uris = vec![contact_uri(a, t, first)];
                if rng.below(2) == 0 {
                    uris.push(contact_uri(a, t, (first + 1) % CONTACTS_PER_THREAD));
                }
                let expires: Vec<u32> = uris
                    .iter()
                    .map(|_| {
                        if rng.below(5) == 0 {
                            0
                        } else {
                            1 + rng.below(40) as u32
                        }
                    })
                    .collect();
                let contacts: Vec<ContactUpdate<'_>> = uris
                    .iter()
                    .zip(&expires)
                    .map(|(u, &e)| ContactUpdate {
                        uri: u.as_bytes(),
                        addr: "192.0.2.1:5060".parse::<SocketAddr>().unwrap(),
                        transport: Transport::Udp,
                        q: 1000,
                        routable: true,
                        expires_s: e,
                    })
                    .collect();
                cseq += 1;
                let u = Update {
                    aor: &key,
                    call_id_hash: t as u64 + 1,
                    cseq,
                    now_ms: now,
                    remove_all: false,
                    contacts: &contacts,
                    max_per_aor: 64,
                };
                let result = table.update(&u, |bindings| {
                    // Within one record every contact appears once.
                    for (i, b) in bindings.iter().enumerate() {
                        for c in &bindings[i + 1..] {
                            assert!(!same_contact(&b.uri, &c.uri), "duplicate binding");
                        }
                    }
                });
                match result {
                    Ok(()) => {
                        for (uri, &e) in uris.iter().zip(&expires) {
                            let k = (a, uri.clone());
                            // A binding of ours that expired by `now` is gone either way.
                            if model.get(&k).is_some_and(|&x| x <= now) {
                                model.remove(&k);
                            }
                            if e == 0 {
                                model.remove(&k);
                            } else {
                                model.insert(k, now + u64::from(e) * 1000);
                            }
                        }
                    }
                    Err(UpdateError::Full) => *capacity_hits += 1,
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
        }
    }
    model
}

fn check_against(table: &Bindings, models: Vec<Model>, capacity: usize) {
    let mut expected: HashSet<(usize, String)> = HashSet::new();
    for m in models {
        for (k, exp) in m {
            if exp > T_END {
                assert!(expected.insert(k), "two threads own one contact");
            }
        }
    }
    let mut actual: HashSet<(usize, String)> = HashSet::new();
    let mut stored = 0;
    table.for_each(|key, bindings| {
        stored += bindings.len();
        let key = String::from_utf8(key.to_vec()).unwrap();
        let a: usize = key
            .strip_prefix("user")
            .and_then(|r| r.split('@').next())
            .unwrap()
            .parse()
            .unwrap();
        for b in bindings.iter().filter(|b| b.is_live(T_END)) {
            let uri = String::from_utf8(b.uri.to_vec()).unwrap();
            assert!(actual.insert((a, uri)), "duplicated binding");
        }
    });
    assert_eq!(stored, table.len(), "capacity count drifted");
    assert!(table.len() <= capacity);
    let lost: Vec<_> = expected.difference(&actual).collect();
    let extra: Vec<_> = actual.difference(&expected).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "lost {lost:?}, extra {extra:?}"
    );
    table.sweep(T_END);
    assert_eq!(table.len(), expected.len());
}

fn hammer(capacity: usize) -> usize {
    let table = Arc::new(Bindings::new(capacity, 7));
    let stop = Arc::new(AtomicBool::new(false));
    let barrier = Arc::new(Barrier::new(THREADS + 2));
    // A sweeper and capacity watcher running alongside.
    let sweeper = {
        let (table, stop, barrier) = (table.clone(), stop.clone(), barrier.clone());
        std::thread::spawn(move || {
            barrier.wait();
            let mut now = T0;
            while !stop.load(Ordering::Relaxed) {
                assert!(table.len() <= capacity, "capacity exceeded");
                table.sweep(now);
                now = (now + 500).min(T_END);
                std::thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (table, barrier) = (table.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut hits = 0;
                barrier.wait();
                let m = run_thread(&table, t, &mut hits);
                (m, hits)
            })
        })
        .collect();
    barrier.wait();
    let results: Vec<(Model, usize)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    sweeper.join().unwrap();
    let hits = results.iter().map(|r| r.1).sum();
    check_against(&table, results.into_iter().map(|r| r.0).collect(), capacity);
    hits
}

#[test]
fn concurrent_updates_match_the_model() {
    let hits = hammer(1_000_000);
    assert_eq!(hits, 0);
}

#[test]
fn concurrent_updates_at_capacity_match_the_model() {
    // Small enough that many registrations are refused; the model skips exactly those.
    let hits = hammer(60);
    assert!(hits > 0);
}

/// The same through `Proxy::handle` on several workers sharing one registrar.
#[test]
fn workers_share_one_registrar() {
    let registrar = Arc::new(Registrar::new(RegistrarConfig {
        domains: vec!["biloxi.com".into()],
        capacity: 10_000,
        max_contacts_per_aor: 64,
        ..RegistrarConfig::default()
    }));
    let config = Arc::new(ProxyConfig {
        domains: vec!["biloxi.com".into()],
        ..ProxyConfig::default()
    });
    const USERS: usize = 10;
    const PER_WORKER: usize = 150;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (registrar, config) = (registrar.clone(), config.clone());
            std::thread::spawn(move || {
                let mut proxy = Proxy::new(config, registrar.clone(), Health::new(0))
                    .with_registrar(registrar.clone());
                let mut out = vec![0u8; 4096];
                for i in 0..PER_WORKER {
                    let user = i % USERS;
                    let msg = format!(
                        "REGISTER sip:biloxi.com SIP/2.0\r\n\
                         Via: SIP/2.0/UDP 192.0.2.{w}:5060;branch=z9hG4bK{w}x{i}\r\n\
                         Max-Forwards: 70\r\n\
                         From: <sip:u{user}@biloxi.com>;tag={w}\r\n\
                         To: <sip:u{user}@biloxi.com>\r\n\
                         Call-ID: w{w}-u{user}\r\n\
                         CSeq: {} REGISTER\r\n\
                         Contact: <sip:u{user}@192.0.2.{}:{}>\r\n\
                         Content-Length: 0\r\n\r\n",
                        i + 1,
                        w + 1,
                        6000 + i % 30,
                    );
                    let input = Input {
                        now_ms: T0 + i as u64,
                        source: format!("192.0.2.{}:5060", w + 1).parse().unwrap(),
                        local: "192.0.2.100:5060".parse().unwrap(),
                        transport: Transport::Udp,
                        bytes: msg.as_bytes(),
                    };
                    let action = proxy.handle(&input, &mut out);
                    assert!(
                        matches!(action, Action::Reply { code: 200, .. }),
                        "{action:?}"
                    );
                    let call = format!("c{w}{i}");
                    assert!(matches!(
                        registrar.lookup(
                            format!("u{user}").as_bytes(),
                            b"biloxi.com",
                            T0 + i as u64,
                            call.as_bytes()
                        ),
                        Lookup::Found(_)
                    ));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Each worker registered 30 distinct contacts, spread over the 10 users, 3 each.
    let b = registrar.bindings();
    assert_eq!(b.len(), 4 * 30);
    assert_eq!(b.aor_count(), USERS);
    b.for_each(|_, bindings| assert_eq!(bindings.len(), 12));
    assert_eq!(
        registrar.stats().registers_ok.load(Ordering::Relaxed),
        (4 * PER_WORKER) as u64
    );
}
