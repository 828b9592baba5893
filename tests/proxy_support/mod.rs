//! Shared helpers of the proxy tests: a request builder, an owned parsed-message view that checks
//! every message against our own parser and `validate`, and a harness around `Proxy::handle`.
//!
//! Included by each proxy test crate with `#[path = "proxy_support/mod.rs"] mod support;`.
#![allow(dead_code)]

pub mod sim;

use std::net::SocketAddr;
use std::sync::Arc;

use sipd::proxy::{
    Action, Health, Input, LocationService, Proxy, ProxyConfig, StaticLocation, Transport,
};
use sipd::sip::HeaderName;
use sipd::sip::message::{Header, parse_datagram};
use sipd::sip::validate::validate;
use sipd::sip::values::split_comma;
use sipd::sip::via::Via;

pub const HEADERS: usize = 128;

/// A parsed copy of a message; constructing it asserts that our parser and `validate` accept it.
#[derive(Clone)]
pub struct Msg {
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.bytes))
    }
}

impl Msg {
    /// Parses and validates, panicking with the message text if either fails.
    pub fn new(bytes: &[u8]) -> Msg {
        Msg::checked(bytes, true)
    }

    /// Parses, and validates too when `strict`.
    pub fn checked(bytes: &[u8], strict: bool) -> Msg {
        let mut h = [Header::EMPTY; HEADERS];
        let msg = parse_datagram(bytes, &mut h).unwrap_or_else(|e| {
            panic!(
                "our parser rejects a message on the wire ({e}):\n{}",
                String::from_utf8_lossy(bytes)
            )
        });
        let checked = if strict { validate(&msg) } else { Ok(()) };
        if let Err(e) = checked {
            panic!(
                "validate rejects a message on the wire ({e}):\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
        Msg {
            bytes: bytes.to_vec(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&sipd::sip::message::Message<'_, '_>) -> T) -> T {
        let mut h = [Header::EMPTY; HEADERS];
        let msg = parse_datagram(&self.bytes, &mut h).expect("parsed before");
        f(&msg)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn is_request(&self) -> bool {
        self.with(|m| m.is_request())
    }

    pub fn method(&self) -> Option<String> {
        self.with(|m| m.method().map(|x| s(x.as_bytes())))
    }

    pub fn request_uri(&self) -> String {
        self.with(|m| s(m.request_uri().unwrap_or_default()))
    }

    pub fn status(&self) -> Option<u16> {
        self.with(|m| m.status())
    }

    pub fn first_line(&self) -> String {
        let t = self.text();
        t.split("\r\n").next().unwrap_or_default().to_owned()
    }

    /// Values of every header line with this (case-insensitive, compact forms too) name.
    pub fn all(&self, name: &str) -> Vec<String> {
        let want = HeaderName::classify(name.as_bytes());
        self.with(|m| {
            m.headers()
                .iter()
                .filter(|h| {
                    if want == HeaderName::Other {
                        h.raw_name.eq_ignore_ascii_case(name.as_bytes())
                    } else {
                        h.name == want
                    }
                })
                .map(|h| s(h.value))
                .collect()
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.all(name).into_iter().next()
    }

    /// Every value of a list header, across lines, in order.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.all(name)
            .iter()
            .flat_map(|line| {
                split_comma(line.as_bytes())
                    .map(|r| s(r.expect("list value").1))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn vias(&self) -> Vec<String> {
        self.list("Via")
    }

    /// The branch of the `i`-th Via value.
    pub fn branch(&self, i: usize) -> String {
        let v = &self.vias()[i];
        s(Via::parse(v.as_bytes())
            .expect("via")
            .branch()
            .unwrap_or_default())
    }

    pub fn via_param(&self, i: usize, name: &str) -> Option<Option<String>> {
        let v = &self.vias()[i];
        let via = Via::parse(v.as_bytes()).expect("via");
        via.params
            .get(name.as_bytes())
            .map(|o| o.map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.header("Max-Forwards").map(|v| v.parse().unwrap())
    }

    pub fn body(&self) -> Vec<u8> {
        self.with(|m| m.body().to_vec())
    }

    pub fn to_tag(&self) -> Option<String> {
        tag_of(&self.header("To")?)
    }

    pub fn tag_of_from(&self) -> Option<String> {
        tag_of(&self.header("From")?)
    }
}

pub fn tag_of(value: &str) -> Option<String> {
    let na = sipd::sip::name_addr::NameAddr::parse(value.as_bytes()).ok()?;
    na.tag().map(s)
}

pub fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A request built from text with default headers that tests override one at a time.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Add a Content-Length header computed from the body.
    pub content_length: bool,
}

impl Req {
    pub fn new(method: &str, uri: &str) -> Req {
        Req {
            method: method.into(),
            uri: uri.into(),
            version: "SIP/2.0".into(),
            headers: vec![
                (
                    "Via".into(),
                    "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds".into(),
                ),
                ("Max-Forwards".into(), "70".into()),
                ("To".into(), "Bob <sip:bob@biloxi.com>".into()),
                (
                    "From".into(),
                    "Alice <sip:alice@atlanta.com>;tag=1928301774".into(),
                ),
                ("Call-ID".into(), "a84b4c76e66710@pc33.atlanta.com".into()),
                ("CSeq".into(), format!("314159 {method}")),
                ("Contact".into(), "<sip:alice@192.0.2.10>".into()),
            ],
            body: Vec::new(),
            content_length: true,
        }
    }

    /// Replaces the first header of that name (in place), or appends it.
    pub fn set(mut self, name: &str, value: &str) -> Req {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(h) => h.1 = value.into(),
            None => self.headers.push((name.into(), value.into())),
        }
        self
    }

    /// Appends a header line (even if one of that name exists).
    pub fn add(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Inserts a header line at the top.
    pub fn push_front(mut self, name: &str, value: &str) -> Req {
        self.headers.insert(0, (name.into(), value.into()));
        self
    }

    pub fn remove(mut self, name: &str) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self
    }

    pub fn body(mut self, body: &[u8]) -> Req {
        self.body = body.to_vec();
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.method, self.uri, self.version);
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if self.content_length {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut b = out.into_bytes();
        b.extend_from_slice(&self.body);
        b
    }
}

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The proxy under test in the rule tests: 192.0.2.1:5060, domain atlanta.com.
pub const PROXY: &str = "192.0.2.1:5060";
/// Where test requests come from (matches the default Via sent-by).
pub const UAC: &str = "192.0.2.10:5060";

pub struct Harness {
    pub proxy: Proxy,
    pub health: Arc<Health>,
    pub local: SocketAddr,
    pub now_ms: u64,
    pub buf: Vec<u8>,
}

/// What `handle` did, with the written bytes parsed (and validated) when something is sent.
#[derive(Debug)]
pub enum Out {
    Forward {
        to: SocketAddr,
        transport: Transport,
        msg: Msg,
    },
    Reply {
        to: SocketAddr,
        code: u16,
        msg: Msg,
    },
    Drop(sipd::proxy::DropReason),
}

impl Out {
    #[track_caller]
    pub fn forward(self) -> (SocketAddr, Msg) {
        match self {
            Out::Forward { to, msg, .. } => (to, msg),
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn reply(self) -> (SocketAddr, u16, Msg) {
        match self {
            Out::Reply { to, code, msg } => (to, code, msg),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[track_caller]
    pub fn code(self) -> u16 {
        self.reply().1
    }

    #[track_caller]
    pub fn dropped(self) -> sipd::proxy::DropReason {
        match self {
            Out::Drop(r) => r,
            other => panic!("expected a drop, got {other:?}"),
        }
    }
}

impl Harness {
    pub fn new(config: ProxyConfig) -> Harness {
        Harness::with_location(config, Arc::new(StaticLocation::new()))
    }

    pub fn with_location(config: ProxyConfig, location: Arc<dyn LocationService>) -> Harness {
        let targets: usize = config.groups.iter().map(|g| g.targets.len()).sum();
        let health = Health::new(targets);
        Harness {
            proxy: Proxy::new(Arc::new(config), location, health.clone()),
            health,
            local: addr(PROXY),
            now_ms: 1_000,
            buf: vec![0; 65_536],
        }
    }

    pub fn send_from(&mut self, source: &str, bytes: &[u8]) -> Out {
        self.send_full(addr(source), Transport::Udp, bytes)
    }

    pub fn send(&mut self, bytes: &[u8]) -> Out {
        self.send_from(UAC, bytes)
    }

    pub fn req(&mut self, req: &Req) -> Out {
        self.send(&req.bytes())
    }

    /// What `handle` writes always parses; it passes `validate` whenever the input did (a reply
    /// copies the request's Via, From, To, Call-ID and CSeq as they are, and a forwarded request
    /// keeps every header the core does not touch).
    pub fn send_full(&mut self, source: SocketAddr, transport: Transport, bytes: &[u8]) -> Out {
        let strict = input_is_valid(bytes);
        let input = Input {
            now_ms: self.now_ms,
            source,
            local: self.local,
            transport,
            bytes,
        };
        match self.proxy.handle(&input, &mut self.buf) {
            Action::Forward { to, transport, len } => Out::Forward {
                to,
                transport,
                msg: Msg::checked(&self.buf[..len], strict),
            },
            Action::Reply { to, code, len, .. } => {
                let msg = Msg::checked(&self.buf[..len], strict);
                assert_eq!(
                    msg.status(),
                    Some(code),
                    "Action code and status line agree"
                );
                Out::Reply { to, code, msg }
            }
            Action::Drop(r) => Out::Drop(r),
        }
    }
}

/// The input parses and passes `validate`.
pub fn input_is_valid(bytes: &[u8]) -> bool {
    let mut h = [Header::EMPTY; HEADERS];
    parse_datagram(bytes, &mut h).is_ok_and(|m| validate(&m).is_ok())
}

/// A configuration for atlanta.com at 192.0.2.1 (the rule tests' proxy).
pub fn atlanta_config() -> ProxyConfig {
    ProxyConfig {
        domains: vec!["atlanta.com".into()],
        ..ProxyConfig::default()
    }
}
