//! The registrar, location service, redirect server and digest authentication, driven through
//! `Proxy::handle` as a network would: RFC 3665 §2 registration flows, RFC 4475 registration
//! cases, the §10.3 rules, authentication failures, redirects and the journal across a restart.

use std::net::SocketAddr;
use std::sync::Arc;

use sipd::proxy::{Action, DropReason, Health, Input, Proxy, ProxyConfig, Transport};
use sipd::registrar::digest::{Algorithm, HexDigest, ResponseInput, expected_response, ha1};
use sipd::registrar::{
    AuthConfig, AuthFailure, Authenticator, Credentials, RedirectConfig, RedirectPrefix, Registrar,
    RegistrarConfig,
};
use sipd::sip::HeaderName;
use sipd::sip::auth::Auth;
use sipd::sip::message::{Header, parse_datagram};

const DOMAIN: &str = "biloxi.example.com";
const REALM: &str = "biloxi.example.com";
const T0: u64 = 1_700_000_000_000;

struct Net {
    proxy: Proxy,
    registrar: Arc<Registrar>,
    local: SocketAddr,
}

fn registrar_config() -> RegistrarConfig {
    RegistrarConfig {
        domains: vec![
            DOMAIN.into(),
            "ss2.biloxi.example.com".into(),
            "example.com".into(),
        ],
        min_expires: 60,
        max_expires: 7200,
        default_expires: 3600,
        capacity: 100,
        ..RegistrarConfig::default()
    }
}

fn auth_config() -> AuthConfig {
    let mut a = AuthConfig::new(REALM, b"test secret".to_vec());
    a.nonce_ttl = std::time::Duration::from_secs(30);
    a.auth_invite = true;
    a
}

fn credentials() -> Credentials {
    let mut c = Credentials::new();
    c.insert_password("bob", REALM, "zanzibar");
    c.insert_password("alice", REALM, "wonderland");
    c
}

fn net_with(registrar: Registrar) -> Net {
    let registrar = Arc::new(registrar);
    let config = ProxyConfig {
        domains: vec![
            DOMAIN.into(),
            "ss2.biloxi.example.com".into(),
            "example.com".into(),
        ],
        ..ProxyConfig::default()
    };
    let proxy = Proxy::new(Arc::new(config), registrar.clone(), Health::new(0))
        .with_registrar(registrar.clone());
    Net {
        proxy,
        registrar,
        local: "192.0.2.100:5060".parse().unwrap(),
    }
}

fn net(auth: bool) -> Net {
    let mut r = Registrar::new(registrar_config());
    if auth {
        r = r.with_auth(Authenticator::with_credentials(
            auth_config(),
            credentials(),
        ));
    }
    net_with(r)
}

/// What came out for one message.
#[derive(Debug)]
struct Sent {
    action: Action,
    text: String,
}

impl Sent {
    fn code(&self) -> u16 {
        match self.action {
            Action::Reply { code, .. } => code,
            other => panic!("expected a reply, got {other:?}:\n{}", self.text),
        }
    }
    fn headers(&self, name: &str) -> Vec<String> {
        self.text
            .split("\r\n")
            .filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
            .map(str::to_owned)
            .collect()
    }
    fn contacts(&self) -> Vec<String> {
        self.headers("Contact")
    }
}

impl Net {
    fn send_from(&mut self, now_ms: u64, source: &str, transport: Transport, msg: &str) -> Sent {
        let bytes = msg.replace('\n', "\r\n");
        self.send_bytes(now_ms, source, transport, bytes.as_bytes())
    }

    fn send_bytes(
        &mut self,
        now_ms: u64,
        source: &str,
        transport: Transport,
        bytes: &[u8],
    ) -> Sent {
        let mut out = vec![0u8; 8192];
        let input = Input {
            now_ms,
            source: source.parse().unwrap(),
            local: self.local,
            transport,
            bytes,
        };
        let action = self.proxy.handle(&input, &mut out);
        let len = match action {
            Action::Forward { len, .. } | Action::Reply { len, .. } => len,
            Action::Drop(_) => 0,
        };
        Sent {
            action,
            text: String::from_utf8_lossy(&out[..len]).into_owned(),
        }
    }

    fn send(&mut self, now_ms: u64, msg: &str) -> Sent {
        self.send_from(now_ms, "192.0.2.4:5060", Transport::Udp, msg)
    }
}

/// Credentials for the first challenge of `resp` offering `alg`.
struct Answer<'a> {
    user: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nc: u32,
    alg: Algorithm,
    proxy: bool,
}

fn challenge(resp: &Sent, alg: Algorithm, proxy: bool) -> (String, String, bool) {
    let mut storage = [Header::EMPTY; 64];
    let msg = parse_datagram(resp.text.as_bytes(), &mut storage).unwrap();
    let name = if proxy {
        HeaderName::ProxyAuthenticate
    } else {
        HeaderName::WwwAuthenticate
    };
    for h in msg.headers_named(name) {
        let a = Auth::parse(h.value).unwrap();
        assert!(a.is_digest());
        assert_eq!(a.qop(), Some(&b"auth"[..]));
        if Algorithm::from_param(a.algorithm()) == Some(alg) {
            return (
                String::from_utf8(a.realm().unwrap().to_vec()).unwrap(),
                String::from_utf8(a.nonce().unwrap().to_vec()).unwrap(),
                a.stale() == Some(true),
            );
        }
    }
    panic!("no {alg:?} challenge in\n{}", resp.text);
}

fn authorization(realm: &str, nonce: &str, a: &Answer<'_>) -> String {
    let h1 = ha1(a.alg, a.user, realm, a.password);
    let nc = format!("{:08x}", a.nc);
    let cnonce = "0a4f113b";
    let response = expected_response(
        a.alg,
        &h1,
        &ResponseInput {
            method: a.method.as_bytes(),
            digest_uri: a.uri.as_bytes(),
            nonce: nonce.as_bytes(),
            qop: Some((nc.as_bytes(), cnonce.as_bytes(), b"auth")),
        },
    );
    format!(
        "{}: Digest username=\"{}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{}\", \
         response=\"{}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc}",
        if a.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        },
        a.user,
        a.uri,
        response.as_str(),
        a.alg.name(),
    )
}

fn register(cseq: u32, call_id: &str, extra: &str) -> String {
    format!(
        "REGISTER sips:ss2.biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKnashds{cseq}
Max-Forwards: 70
From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl
To: Bob <sips:bob@biloxi.example.com>
Call-ID: {call_id}
CSeq: {cseq} REGISTER
{extra}Content-Length: 0

"
    )
}

fn bob(nonce_source: &Sent, nc: u32) -> String {
    let (realm, nonce, _) = challenge(nonce_source, Algorithm::Sha256, false);
    authorization(
        &realm,
        &nonce,
        &Answer {
            user: "bob",
            password: "zanzibar",
            method: "REGISTER",
            uri: "sips:ss2.biloxi.example.com",
            nc,
            alg: Algorithm::Sha256,
            proxy: false,
        },
    ) + "\n"
}

const CALL: &str = "1j9FpLxk3uxtm8tn@biloxi.example.com";

/// RFC 3665 §2.1-2.4: new registration with a challenge, an update of the contact list, a
/// query, and a cancellation.
#[test]
fn rfc3665_registration_flows() {
    let mut n = net(true);
    // F1/F2: challenged, with SHA-256 offered before MD5 (RFC 8760 §2.4).
    let f2 = n.send(
        T0,
        &register(1, CALL, "Contact: <sips:bob@client.biloxi.example.com>\n"),
    );
    assert_eq!(f2.code(), 401);
    let offered = f2.headers("WWW-Authenticate");
    assert_eq!(offered.len(), 2);
    assert!(offered[0].contains("algorithm=SHA-256") && offered[1].contains("algorithm=MD5"));
    assert!(f2.text.contains(";tag=sr"), "{}", f2.text);
    assert!(
        f2.text.contains("received=192.0.2.4")
            || f2.text.contains("Via: SIP/2.0/UDP 192.0.2.4:5060")
    );
    // F3/F4: registered.
    let auth = bob(&f2, 1);
    let f4 = n.send(
        T0 + 1000,
        &register(
            2,
            CALL,
            &format!("{auth}Contact: <sips:bob@client.biloxi.example.com>\n"),
        ),
    );
    assert_eq!(f4.code(), 200, "{}", f4.text);
    assert_eq!(
        f4.contacts(),
        ["<sips:bob@client.biloxi.example.com>;expires=3600"]
    );
    assert_eq!(f4.headers("Date").len(), 1);
    // §2.2: add a mailto contact (any scheme is stored; only SIP ones are routed to).
    let auth = bob(&f2, 2);
    let u = n.send(
        T0 + 2000,
        &register(
            3,
            CALL,
            &format!("{auth}Contact: mailto:bob@biloxi.example.com\n"),
        ),
    );
    assert_eq!(u.code(), 200, "{}", u.text);
    assert_eq!(
        u.contacts(),
        [
            "<sips:bob@client.biloxi.example.com>;expires=3599",
            "<mailto:bob@biloxi.example.com>;expires=3600"
        ]
    );
    // §2.3: a query lists the bindings and changes nothing.
    let auth = bob(&f2, 3);
    let q = n.send(T0 + 3000, &register(4, CALL, &auth));
    assert_eq!(q.code(), 200);
    assert_eq!(q.contacts().len(), 2);
    assert_eq!(n.registrar.bindings().len(), 2);
    // §2.4: cancellation.
    let auth = bob(&f2, 4);
    let c = n.send(
        T0 + 4000,
        &register(5, CALL, &format!("{auth}Contact: *\nExpires: 0\n")),
    );
    assert_eq!(c.code(), 200, "{}", c.text);
    assert!(c.contacts().is_empty());
    assert_eq!(n.registrar.bindings().len(), 0);
    let stats = n.registrar.stats();
    assert_eq!(stats.auth_failure_count(AuthFailure::Missing), 1);
}

#[test]
fn authentication_outcomes() {
    let mut n = net(true);
    let first = n.send(T0, &register(1, CALL, "Contact: <sip:bob@192.0.2.4>\n"));
    assert_eq!(first.code(), 401);
    let (realm, nonce, stale) = challenge(&first, Algorithm::Md5, false);
    assert!(!stale);
    let answer = |password, nc, alg| Answer {
        user: "bob",
        password,
        method: "REGISTER",
        uri: "sips:ss2.biloxi.example.com",
        nc,
        alg,
        proxy: false,
    };
    let contact = "Contact: <sip:bob@192.0.2.4>\n";
    let try_with = |n: &mut Net, now, cseq, auth: String| {
        n.send(now, &register(cseq, CALL, &format!("{auth}\n{contact}")))
    };

    // MD5 accepted.
    let ok = try_with(
        &mut n,
        T0 + 10,
        2,
        authorization(&realm, &nonce, &answer("zanzibar", 1, Algorithm::Md5)),
    );
    assert_eq!(ok.code(), 200, "{}", ok.text);
    // The same nonce count again: a replay, refused with a fresh nonce and stale=true.
    let replay = try_with(
        &mut n,
        T0 + 20,
        3,
        authorization(&realm, &nonce, &answer("zanzibar", 1, Algorithm::Md5)),
    );
    assert_eq!(replay.code(), 401);
    assert!(challenge(&replay, Algorithm::Md5, false).2);
    // A higher count of the same nonce is fine.
    let next = try_with(
        &mut n,
        T0 + 30,
        4,
        authorization(&realm, &nonce, &answer("zanzibar", 2, Algorithm::Md5)),
    );
    assert_eq!(next.code(), 200);
    // Wrong password: challenged again (RFC 3665 §2.5), not stale.
    let wrong = try_with(
        &mut n,
        T0 + 40,
        5,
        authorization(&realm, &nonce, &answer("zanzibar2", 3, Algorithm::Sha256)),
    );
    assert_eq!(wrong.code(), 401);
    assert!(!challenge(&wrong, Algorithm::Sha256, false).2);
    // Wrong realm: our challenge.
    let other = try_with(
        &mut n,
        T0 + 50,
        6,
        authorization(
            "atlanta.example.com",
            &nonce,
            &answer("zanzibar", 4, Algorithm::Md5),
        ),
    );
    assert_eq!(other.code(), 401);
    // Expired nonce (TTL 30 s): stale=true.
    let expired = try_with(
        &mut n,
        T0 + 31_000,
        7,
        authorization(&realm, &nonce, &answer("zanzibar", 5, Algorithm::Md5)),
    );
    assert_eq!(expired.code(), 401);
    assert!(challenge(&expired, Algorithm::Md5, false).2);
    // Tampered nonce (its timestamp moved forward): a fresh challenge, not stale.
    let mut forged = nonce.clone().into_bytes();
    forged[15] = if forged[15] == b'f' { b'e' } else { b'f' };
    let forged = String::from_utf8(forged).unwrap();
    let tampered = try_with(
        &mut n,
        T0 + 60,
        8,
        authorization(&realm, &forged, &answer("zanzibar", 1, Algorithm::Md5)),
    );
    assert_eq!(tampered.code(), 401);
    assert!(!challenge(&tampered, Algorithm::Md5, false).2);
    // SHA-256 with a fresh nonce.
    let (_, nonce2, _) = challenge(&expired, Algorithm::Sha256, false);
    let sha = try_with(
        &mut n,
        T0 + 31_010,
        9,
        authorization(&realm, &nonce2, &answer("zanzibar", 1, Algorithm::Sha256)),
    );
    assert_eq!(sha.code(), 200, "{}", sha.text);
    // Alice's valid credentials do not register Bob (§10.3 step 4).
    let alice = Answer {
        user: "alice",
        password: "wonderland",
        ..answer("", 2, Algorithm::Sha256)
    };
    let forbidden = try_with(
        &mut n,
        T0 + 31_020,
        10,
        authorization(&realm, &nonce2, &alice),
    );
    assert_eq!(forbidden.code(), 403);
    // A digest-uri other than the Request-URI is a bad request.
    let mut elsewhere = answer("zanzibar", 3, Algorithm::Sha256);
    elsewhere.uri = "sip:elsewhere.example.com";
    let mismatch = try_with(
        &mut n,
        T0 + 31_030,
        11,
        authorization(&realm, &nonce2, &elsewhere),
    );
    assert_eq!(mismatch.code(), 400);

    let s = n.registrar.stats();
    for (why, count) in [
        (AuthFailure::Replay, 1),
        (AuthFailure::WrongPassword, 1),
        (AuthFailure::WrongRealm, 1),
        (AuthFailure::StaleNonce, 1),
        (AuthFailure::TamperedNonce, 1),
        (AuthFailure::Forbidden, 1),
        (AuthFailure::UriMismatch, 1),
    ] {
        assert_eq!(s.auth_failure_count(why), count, "{why:?}");
    }
}

/// RFC 4475 §3.3.7 regaut01: an unknown scheme gets a challenge, never a crash or an accept.
#[test]
fn rfc4475_regaut01_unknown_scheme_challenged() {
    let mut n = net(true);
    let bytes = include_bytes!("fixtures/rfc4475/regaut01.dat");
    // Its Request-URI is sip:example.com, one of our domains here.
    let r = n.send_bytes(T0, "192.0.2.253:5060", Transport::Tcp, bytes);
    assert_eq!(r.code(), 401, "{}", r.text);
    assert_eq!(r.headers("WWW-Authenticate").len(), 2);
    assert_eq!(
        n.registrar
            .stats()
            .auth_failure_count(AuthFailure::UnknownScheme),
        1
    );
    assert_eq!(n.registrar.bindings().len(), 0);
}

/// RFC 4475 §3.3.12-14 and §3.3.4 through a registrar without authentication.
#[test]
fn rfc4475_registrations() {
    let mut n = net(false);
    let send =
        |n: &mut Net, bytes: &[u8]| n.send_bytes(T0, "192.0.2.21:5060", Transport::Udp, bytes);
    // cparam01: `unknownparam` is a Contact header parameter, not part of the URI.
    let r = send(&mut n, include_bytes!("fixtures/rfc4475/cparam01.dat"));
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(
        r.contacts(),
        ["<sip:+19725552222@gw1.example.net>;expires=3600"]
    );
    // cparam02: here it is a URI parameter: a second, different binding of the same AOR.
    let r = send(&mut n, include_bytes!("fixtures/rfc4475/cparam02.dat"));
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(
        r.contacts(),
        [
            "<sip:+19725552222@gw1.example.net>;expires=3600",
            "<sip:+19725552222@gw1.example.net;unknownparam>;expires=3600"
        ]
    );
    // regescrt: the escaped Route header stays in the binding, never becomes a Route.
    let r = send(&mut n, include_bytes!("fixtures/rfc4475/regescrt.dat"));
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(
        r.contacts(),
        ["<sip:user@example.com?Route=%3Csip:sip.example.com%3E>;expires=3600"]
    );
    // ... and a request for that user is forwarded to the contact without the headers.
    let invite = n.send(
        T0 + 5,
        "INVITE sip:user@example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bK77
Max-Forwards: 70
From: <sip:carol@chicago.example.com>;tag=1
To: <sip:user@example.com>
Call-ID: esc-1
CSeq: 1 INVITE
Content-Length: 0

",
    );
    assert!(
        matches!(invite.action, Action::Forward { to, .. } if to == "192.0.2.21:5060".parse().unwrap()),
        "{invite:?}"
    );
    assert!(
        invite
            .text
            .starts_with("INVITE sip:user@example.com SIP/2.0\r\n"),
        "{}",
        invite.text
    );
    assert!(!invite.text.contains("\r\nRoute:"));
    // unksm2: an AOR must be a SIP or SIPS URI (RFC 4475 §3.3.4: "a registrar would reject
    // this request with a 400").
    let r = send(&mut n, include_bytes!("fixtures/rfc4475/unksm2.dat"));
    assert_eq!(r.code(), 400, "{}", r.text);
    assert_eq!(n.registrar.bindings().len(), 3);
}

fn plain_register(cseq: u32, call_id: &str, extra: &str) -> String {
    format!(
        "REGISTER sip:biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKr{cseq}{}
Max-Forwards: 70
From: <sip:bob@biloxi.example.com>;tag=456248
To: <sip:bob@biloxi.example.com>
Call-ID: {call_id}
CSeq: {cseq} REGISTER
{extra}Content-Length: 0

",
        call_id.len()
    )
}

fn invite_bob(call_id: &str) -> String {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0
Via: SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK{call_id}
Max-Forwards: 70
From: Carol <sip:carol@chicago.example.com>;tag=c1
To: Bob <sip:bob@biloxi.example.com>
Call-ID: {call_id}
CSeq: 1 INVITE
Content-Length: 0

"
    )
}

#[test]
fn expiry_intervals_ordering_and_q() {
    let mut n = net(false);
    // 423 below the minimum, with Min-Expires; nothing stored.
    let r = n.send(
        T0,
        &plain_register(1, "c1", "Contact: <sip:bob@192.0.2.4>;expires=30\n"),
    );
    assert_eq!(r.code(), 423);
    assert_eq!(r.headers("Min-Expires"), ["60"]);
    assert_eq!(n.registrar.bindings().len(), 0);
    // The Contact parameter wins over the Expires header; too long is shortened to the maximum.
    let r = n.send(
        T0,
        &plain_register(
            2,
            "c1",
            "Contact: <sip:bob@192.0.2.4>;q=0.5, <sip:bob@192.0.2.5>;expires=120;q=0.9\nContact: <sip:bob@192.0.2.6>;q=0.9\nExpires: 99999\n",
        ),
    );
    assert_eq!(r.code(), 200, "{}", r.text);
    assert_eq!(
        r.contacts(),
        [
            "<sip:bob@192.0.2.5>;expires=120;q=0.9",
            "<sip:bob@192.0.2.6>;expires=7200;q=0.9",
            "<sip:bob@192.0.2.4>;expires=7200;q=0.5"
        ]
    );
    // A request for Bob goes to one of the highest-q contacts, the same one for one Call-ID.
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        let call = format!("call{i}");
        let a = n.send(T0 + 10, &invite_bob(&call));
        let b = n.send(T0 + 20, &invite_bob(&call));
        let (Action::Forward { to: ta, .. }, Action::Forward { to: tb, .. }) = (a.action, b.action)
        else {
            panic!("{a:?}");
        };
        assert_eq!(ta, tb);
        assert!(
            a.text
                .starts_with(&format!("INVITE sip:bob@{} SIP/2.0", ta.ip()))
        );
        seen.insert(ta);
    }
    let hi: std::collections::HashSet<SocketAddr> = [
        "192.0.2.5:5060".parse().unwrap(),
        "192.0.2.6:5060".parse().unwrap(),
    ]
    .into();
    assert_eq!(seen, hi);
    // After 120 s only .6 is left at q=0.9.
    let late = n.send(T0 + 121_000, &invite_bob("late"));
    assert!(
        matches!(late.action, Action::Forward { to, .. } if to == "192.0.2.6:5060".parse().unwrap())
    );
    // Same Call-ID with a lower CSeq: refused whole, nothing changes.
    let stale = n.send(
        T0 + 1000,
        &plain_register(1, "c1", "Contact: <sip:bob@192.0.2.4>;expires=0\n"),
    );
    assert_eq!(stale.code(), 400);
    assert_eq!(
        n.registrar
            .stats()
            .stale_cseq
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // A retransmission (same CSeq) is answered 200 and changes nothing.
    let again = n.send(
        T0 + 1000,
        &plain_register(2, "c1", "Contact: <sip:bob@192.0.2.4>;expires=60\n"),
    );
    assert_eq!(again.code(), 200);
    assert!(
        again
            .contacts()
            .contains(&"<sip:bob@192.0.2.4>;expires=7199;q=0.5".to_owned()),
        "{}",
        again.text
    );
    // Another Call-ID may remove a binding at any CSeq.
    let rm = n.send(
        T0 + 1000,
        &plain_register(1, "c2", "Contact: <sip:bob@192.0.2.4>\nExpires: 0\n"),
    );
    assert_eq!(rm.code(), 200);
    assert_eq!(rm.contacts().len(), 2);
    // `*` needs Expires: 0 and must be alone.
    let bad = n.send(T0 + 1000, &plain_register(2, "c2", "Contact: *\n"));
    assert_eq!(bad.code(), 400);
    let bad = n.send(
        T0 + 1000,
        &plain_register(
            2,
            "c2",
            "Contact: *\nContact: <sip:x@192.0.2.9>\nExpires: 0\n",
        ),
    );
    assert_eq!(bad.code(), 400);
    // Everything expired: Bob is known but unavailable (480), Alice is unknown (404).
    let gone = n.send(T0 + 8_000_000, &invite_bob("gone"));
    assert_eq!(gone.code(), 480, "{}", gone.text);
    assert_eq!(n.registrar.sweep(T0 + 8_000_000), 2);
    assert_eq!(n.registrar.bindings().len(), 0);
}

#[test]
fn capacity_full_is_503_and_counted() {
    let mut cfg = registrar_config();
    cfg.capacity = 2;
    let mut n = net_with(Registrar::new(cfg));
    let r = n.send(
        T0,
        &plain_register(
            1,
            "c",
            "Contact: <sip:bob@192.0.2.4>, <sip:bob@192.0.2.5>\n",
        ),
    );
    assert_eq!(r.code(), 200);
    let r = n.send(
        T0,
        &plain_register(2, "c", "Contact: <sip:bob@192.0.2.6>\n"),
    );
    assert_eq!(r.code(), 503);
    assert_eq!(r.headers("Retry-After"), ["60"]);
    // Refreshing what is there still works at capacity.
    let r = n.send(
        T0,
        &plain_register(3, "c", "Contact: <sip:bob@192.0.2.5>\n"),
    );
    assert_eq!(r.code(), 200);
    assert_eq!(
        n.registrar
            .stats()
            .capacity_full
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(n.registrar.bindings().len(), 2);
}

#[test]
fn nat_and_tcp_contacts_use_the_source() {
    let mut n = net(false);
    // A private contact address seen from a public source: reach it through the source.
    let r = n.send_from(
        T0,
        "203.0.113.9:40000",
        Transport::Udp,
        &plain_register(1, "nat", "Contact: <sip:bob@10.0.0.5:5062>\n"),
    );
    assert_eq!(r.code(), 200);
    let inv = n.send(T0 + 1, &invite_bob("n1"));
    assert!(
        matches!(inv.action, Action::Forward { to, transport: Transport::Udp, .. } if to == "203.0.113.9:40000".parse().unwrap()),
        "{inv:?}"
    );
    assert!(inv.text.starts_with("INVITE sip:bob@10.0.0.5:5062 SIP/2.0"));
    // Over TCP the connection is reused.
    let r = n.send_from(
        T0 + 2,
        "203.0.113.10:50000",
        Transport::Tcp,
        &plain_register(2, "nat", "Contact: <sip:bob@10.0.0.5:5062>\n"),
    );
    assert_eq!(r.code(), 200);
    let inv = n.send(T0 + 3, &invite_bob("n2"));
    assert!(
        matches!(inv.action, Action::Forward { to, transport: Transport::Tcp, .. } if to == "203.0.113.10:50000".parse().unwrap()),
        "{inv:?}"
    );
}

#[test]
fn invite_from_our_domain_needs_proxy_auth() {
    let mut n = net(true);
    let invite = |auth: &str| {
        format!(
            "INVITE sip:carol@chicago.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKinv{}
Max-Forwards: 70
From: Bob <sip:bob@biloxi.example.com>;tag=b1
To: Carol <sip:carol@chicago.example.com>
Call-ID: inv-1
CSeq: {} INVITE
{auth}Content-Length: 0

",
            auth.len(),
            if auth.is_empty() { 1 } else { 2 }
        )
    };
    let r = n.send(T0, &invite(""));
    assert_eq!(r.code(), 407);
    assert_eq!(r.headers("Proxy-Authenticate").len(), 2);
    // The ACK for the 407 (same To tag) is absorbed, on any worker.
    let to_tag = r
        .text
        .split("tag=")
        .nth(2)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
        .to_owned();
    let ack = n.send(
        T0 + 1,
        &format!(
            "ACK sip:carol@chicago.example.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4:5060;branch=z9hG4bKinv0
Max-Forwards: 70
From: Bob <sip:bob@biloxi.example.com>;tag=b1
To: Carol <sip:carol@chicago.example.com>;tag={to_tag}
Call-ID: inv-1
CSeq: 1 ACK
Content-Length: 0

"
        ),
    );
    assert_eq!(ack.action, Action::Drop(DropReason::AckAbsorbed));
    // With credentials the INVITE is routed on (here: no route to chicago, so 404 from the
    // proxy, which shows it passed authentication).
    let (realm, nonce, _) = challenge(&r, Algorithm::Md5, true);
    let auth = authorization(
        &realm,
        &nonce,
        &Answer {
            user: "bob",
            password: "zanzibar",
            method: "INVITE",
            uri: "sip:carol@chicago.example.com",
            nc: 1,
            alg: Algorithm::Md5,
            proxy: true,
        },
    );
    let r = n.send(T0 + 2, &invite(&format!("{auth}\n")));
    assert_eq!(r.code(), 404, "{}", r.text);
    assert_eq!(
        n.registrar
            .stats()
            .auth_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // An INVITE from outside our domains is not challenged.
    let r = n.send(T0 + 3, &invite_bob("outside"));
    assert_eq!(r.code(), 480);
}

#[test]
fn redirect_server() {
    let cfg = RedirectConfig {
        domains: vec!["biloxi.example.com".into()],
        prefixes: vec![RedirectPrefix {
            prefix: "+1972".into(),
            contacts: vec!["sip:{user}@gw1.example.net;user=phone".into()],
        }],
    };
    let mut n = net_with(
        Registrar::new(registrar_config())
            .with_redirect(&cfg)
            .unwrap(),
    );
    let r = n.send(
        T0,
        &plain_register(
            1,
            "r",
            "Contact: <sip:bob@192.0.2.4>;q=0.4, <sip:bob@192.0.2.5>\n",
        ),
    );
    assert_eq!(r.code(), 200);
    let r = n.send(T0 + 1, &invite_bob("redir"));
    assert_eq!(r.code(), 302, "{}", r.text);
    assert_eq!(
        r.contacts(),
        ["<sip:bob@192.0.2.5>", "<sip:bob@192.0.2.4>;q=0.4"]
    );
    // Its ACK is absorbed; a CANCEL is answered 200.
    let to_tag = r
        .text
        .split(";tag=")
        .nth(2)
        .unwrap()
        .split("\r\n")
        .next()
        .unwrap()
        .to_owned();
    let ack = n.send(
        T0 + 2,
        &invite_bob("redir")
            .replacen("INVITE sip", "ACK sip", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
            .replace(
                "To: Bob <sip:bob@biloxi.example.com>",
                &format!("To: Bob <sip:bob@biloxi.example.com>;tag={to_tag}"),
            ),
    );
    assert_eq!(ack.action, Action::Drop(DropReason::AckAbsorbed));
    let cancel = n.send(
        T0 + 2,
        &invite_bob("redir")
            .replacen("INVITE sip", "CANCEL sip", 1)
            .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL"),
    );
    assert_eq!(cancel.code(), 200);
    // A number prefix: static contacts with the user substituted.
    let r = n.send(
        T0 + 3,
        &invite_bob("num").replace(
            "sip:bob@biloxi.example.com SIP",
            "sip:+19725552222@chicago.example.com SIP",
        ),
    );
    assert_eq!(r.code(), 302, "{}", r.text);
    assert_eq!(
        r.contacts(),
        ["<sip:+19725552222@gw1.example.net;user=phone>"]
    );
    // No binding: 404 for an unknown user.
    let r = n.send(
        T0 + 4,
        &invite_bob("x").replace(
            "sip:bob@biloxi.example.com SIP",
            "sip:dave@biloxi.example.com SIP",
        ),
    );
    assert_eq!(r.code(), 404);
    assert_eq!(
        n.registrar
            .stats()
            .redirects
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
}

#[test]
fn bindings_survive_a_restart_and_a_torn_tail() {
    let dir = std::env::temp_dir().join(format!("sipd-registrar-flows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bindings.journal");
    let _ = std::fs::remove_file(&path);
    let mut cfg = registrar_config();
    cfg.snapshot_path = Some(path.clone());
    {
        let mut reg = Registrar::new(cfg.clone());
        let (writer, report) = reg.start_journal(T0).unwrap().unwrap();
        assert_eq!(report.bindings, 0);
        let mut n = net_with(reg);
        for (i, user) in ["bob", "carol", "dave"].iter().enumerate() {
            let r = n.send(
                T0,
                &plain_register(
                    1,
                    user,
                    &format!("Contact: <sip:{user}@192.0.2.{}>\n", 10 + i),
                )
                .replace("sip:bob@biloxi", &format!("sip:{user}@biloxi")),
            );
            assert_eq!(r.code(), 200);
        }
        // Dave leaves again.
        let r = n.send(
            T0,
            &plain_register(2, "dave", "Contact: *\nExpires: 0\n")
                .replace("sip:bob@biloxi", "sip:dave@biloxi"),
        );
        assert_eq!(r.code(), 200);
        drop(n);
        writer.stop().unwrap();
    }
    // A crash in the middle of a record.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[200, 0, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    let mut reg = Registrar::new(cfg);
    let (writer, report) = reg.start_journal(T0 + 10).unwrap().unwrap();
    assert!(report.torn_at.is_some());
    assert_eq!(report.bindings, 2, "{report:?}");
    let mut n = net_with(reg);
    let r = n.send(T0 + 20, &invite_bob("after-restart"));
    assert!(
        matches!(r.action, Action::Forward { to, .. } if to == "192.0.2.10:5060".parse().unwrap()),
        "{r:?}"
    );
    let r = n.send(
        T0 + 20,
        &invite_bob("d").replace(
            "sip:bob@biloxi.example.com SIP",
            "sip:dave@biloxi.example.com SIP",
        ),
    );
    assert_eq!(r.code(), 404);
    drop(n);
    writer.stop().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn hex_digest_helpers_are_public() {
    // The credentials-file HA1 of a plain password, as `sipd passwd` prints it.
    let h: HexDigest = ha1(Algorithm::Md5, "bob", REALM, "zanzibar");
    assert_eq!(h.as_str().len(), 32);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
    /// Whatever an Authorization header holds, the answer is a challenge or a 400, never a
    /// registration (and never a panic).
    #[test]
    fn arbitrary_credentials_never_register(
        value in proptest::string::string_regex("[ -~]{0,120}").unwrap(),
        digest in proptest::bool::ANY,
    ) {
        let mut n = net(true);
        let value = if digest { format!("Digest {value}") } else { value };
        let msg = register(1, CALL, &format!("Authorization: {value}\nContact: <sip:bob@192.0.2.4>\n"));
        let r = n.send(T0, &msg);
        if let Action::Reply { code, .. } = r.action {
            proptest::prop_assert!(code == 401 || code == 400, "{code}: {value}");
        }
        proptest::prop_assert_eq!(n.registrar.bindings().len(), 0);
    }
}

#[test]
fn metrics_list_gauges() {
    let mut n = net(false);
    let r = n.send(
        T0,
        &plain_register(1, "m", "Contact: <sip:bob@192.0.2.4>\n"),
    );
    assert_eq!(r.code(), 200);
    let m = n.registrar.metrics();
    assert!(m.contains(&("sipd_registrar_bindings", "", 1)));
    assert!(m.contains(&("sipd_registrar_registers_ok_total", "", 1)));
    assert!(
        m.iter()
            .any(|(name, label, _)| *name == "sipd_auth_failures_total" && *label == "replay")
    );
}
