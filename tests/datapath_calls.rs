//! End-to-end calls through the real `sipd run` binary in network namespaces (root only; skipped
//! with a printed reason elsewhere), with sipd on AF_XDP and again on the socket backend.
//! Serialised with the other datapath tests by a file lock; every wait is bounded.
//!
//! Topology ([`support::TestNet`]): sipd on 10.201.0.1 / fd00:201::1 in one namespace; the UAs
//! in the other, on the same veth end (AF_XDP transmits on the interface it received on):
//! Alice 10.201.0.2 / fd00:201::2, Bob 10.201.0.3 / fd00:201::3 (added here).
//!
//! - `calls_through_afxdp` / `calls_through_sockets`: Bob and Carol REGISTER; then
//!   INVITE/180/200/ACK/BYE/200 over IPv4, a CANCEL flow, a 486 flow, a call over IPv6, a call
//!   whose caller leg is SIP over TCP, and a burst of malformed datagrams followed by a call.
//!   Every message a UA receives is parsed and validated with sipd's parser; Via (sipd's added on
//!   requests, removed on responses, branch kept for CANCEL and non-2xx ACK), Max-Forwards
//!   (decremented once), Record-Route / Route handling and bodies are checked. Arrival in a
//!   kernel UDP socket plus zero `UdpInCsumErrors` in the UAs' namespace prove the checksums.
//!   The metrics must add up: exact forwarded and malformed counts, dialogs created/confirmed/
//!   ended, and on AF_XDP that no UDP SIP reached the kernel sockets.
//! - `afxdp_run_guard_kernel_traffic_and_sigkill`: with `sipd run` on AF_XDP, a kernel UDP echo
//!   on another port and ICMP echo work; a source on the configured block list gets nothing, a
//!   source over the configured rate is limited while an allow-listed one is not (counted in
//!   `sipd_xdp_packets_total`); after SIGKILL no XDP program is left and UDP to 5060 reaches a
//!   kernel socket.
//! - `afxdp_load_200_calls`: `sipd load uac` places 200 calls through sipd on AF_XDP to
//!   `sipd load uas` (routed by number prefix); all complete, none fails, the dialogs add up.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sipd::sip::HeaderName;
use sipd::sip::message::{Header, ParseOptions, Status, parse};
use sipd::sip::validate::validate;
use sipd::sip::via::via_values;
use support::{A_V4, A_V6, B_V4, B_V6, B2_V4, Sipd, TestNet};

const DOMAIN: &str = "biloxi.example.com";
const SIP_PORT: u16 = 5060;
const ADMIN: &str = "127.0.0.1:9060";
/// How long a UA waits for one message.
const WAIT: Duration = Duration::from_secs(3);
/// Bob's IPv6 address (added to the client side by the tests).
const B2_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 0, 0, 0, 0, 0, 3);

fn sa(ip: impl Into<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.into(), port)
}

// ---------------------------------------------------------------------------------------------
// Configuration and metrics

/// `extra`: more TOML appended (sections of their own).
fn write_config(net: &TestNet, mode: &str, extra: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-sipd.toml", net.ns_a));
    let text = format!(
        r#"
[server]
listen = ["{A_V4}:{SIP_PORT}", "[{A_V6}]:{SIP_PORT}"]
tcp = true
record_route = true
domains = ["{DOMAIN}"]
workers = 1

[datapath]
mode = "{mode}"
sip_ports = [{SIP_PORT}]

[[datapath.interfaces]]
name = "{iface}"
queues = [0]

[registrar]
min_expires = 60

[admin]
listen = "{ADMIN}"

[log]
level = "{level}"

{extra}
"#,
        iface = net.if_a,
        // SIPD_TEST_LOG=debug shows what sipd did with each message.
        level = std::env::var("SIPD_TEST_LOG").unwrap_or_else(|_| "info".into()),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// Removes the configuration file on drop.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Starts `sipd run` in the sipd namespace and waits for its admin endpoint (and, on AF_XDP, for
/// the attached program and the worker).
fn start_sipd(net: &TestNet, mode: &str, extra: &str) -> (Sipd, TempFile) {
    let config = TempFile(write_config(net, mode, extra));
    let sipd = Sipd::spawn_run(&net.ns_a, &config.0);
    if mode == "afxdp" {
        sipd.wait_line("XDP program attached", Duration::from_secs(20))
            .expect("sipd did not attach its XDP program");
        let worker = sipd
            .wait_line("AF_XDP worker", Duration::from_secs(10))
            .expect("sipd did not start its AF_XDP worker");
        assert!(worker.contains("Copy"), "veth binds in copy mode: {worker}");
        assert!(net.xdp_attached(), "{}", net.link_a());
    }
    sipd.wait_line("admin endpoint", Duration::from_secs(20))
        .expect("sipd did not start its admin endpoint");
    (sipd, config)
}

/// The admin endpoint's /metrics, read from inside the sipd namespace.
fn metrics(net: &TestNet) -> String {
    net.in_a(|| {
        let (status, body) =
            sipd::admin::request(ADMIN.parse().unwrap(), "GET", "/metrics").expect("/metrics");
        assert_eq!(status, 200);
        body
    })
}

/// Sum of the series of `name` whose labels contain every one of `labels` (0 if none).
fn metric(body: &str, name: &str, labels: &[&str]) -> u64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            (n == name && labels.iter().all(|want| rest.contains(want)))
                .then(|| value.parse::<f64>().ok())?
        })
        .map(|v| v as u64)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Received messages, checked

/// One parsed Via of a received message.
#[derive(Debug, Clone, PartialEq)]
struct ViaInfo {
    transport: String,
    sent_by: String,
    branch: String,
}

/// A received message that parsed and validated, with what the checks need, owned.
#[derive(Debug, Clone)]
struct Msg {
    text: String,
    start: String,
    /// (name, value) in order, compact names mapped to their full form.
    headers: Vec<(HeaderName, String)>,
    vias: Vec<ViaInfo>,
    body: String,
}

impl Msg {
    /// Parses and validates `bytes` (a datagram, or one stream-framed message), panicking with
    /// the message on any error.
    fn check(bytes: &[u8], opts: &ParseOptions) -> Msg {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let mut storage = [Header::EMPTY; 64];
        let m = match parse(bytes, &mut storage, opts) {
            Ok(Status::Complete(m)) => m,
            Ok(Status::Partial) => panic!("incomplete message:\n{text}"),
            Err(e) => panic!("received message does not parse ({e:?}):\n{text}"),
        };
        if let Err(e) = validate(&m) {
            panic!("received message does not validate ({e:?}):\n{text}");
        }
        let mut vias = Vec::new();
        for h in m.headers_named(HeaderName::Via) {
            for v in via_values(h.value) {
                let v = v.unwrap_or_else(|e| panic!("bad Via ({e:?}) in\n{text}"));
                let host = String::from_utf8_lossy(v.host_raw);
                vias.push(ViaInfo {
                    transport: String::from_utf8_lossy(v.transport).to_ascii_uppercase(),
                    sent_by: match v.port {
                        Some(p) => format!("{host}:{p}"),
                        None => host.into_owned(),
                    },
                    branch: String::from_utf8_lossy(v.branch().unwrap_or_default()).into_owned(),
                });
            }
        }
        let start_len = text.find("\r\n").unwrap_or(text.len());
        Msg {
            start: text[m.start()..start_len].to_owned(),
            headers: m
                .headers()
                .iter()
                .map(|h| (h.name, String::from_utf8_lossy(h.value).into_owned()))
                .collect(),
            vias,
            body: String::from_utf8_lossy(m.body()).into_owned(),
            text,
        }
    }

    fn all(&self, name: HeaderName) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, name: HeaderName) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "one {name:?} expected in\n{}", self.text);
        all[0]
    }

    fn max_forwards(&self) -> u32 {
        self.one(HeaderName::MaxForwards)
            .parse()
            .unwrap_or_else(|_| panic!("Max-Forwards in\n{}", self.text))
    }

    fn status(&self) -> u16 {
        assert!(
            self.start.starts_with("SIP/2.0 "),
            "a response: {}",
            self.text
        );
        self.start[8..11].parse().unwrap()
    }

    fn method(&self) -> &str {
        assert!(
            !self.start.starts_with("SIP/2.0 "),
            "a request: {}",
            self.text
        );
        self.start.split(' ').next().unwrap()
    }

    fn request_uri(&self) -> &str {
        self.start.split(' ').nth(1).unwrap()
    }

    /// The Record-Route values, one per entry (comma lists split).
    fn record_routes(&self) -> Vec<String> {
        self.all(HeaderName::RecordRoute)
            .iter()
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .collect()
    }

    /// The tag of the To header, if any.
    fn to_tag(&self) -> Option<String> {
        let to = self.one(HeaderName::To);
        to.split(";tag=").nth(1).map(|t| {
            t.split(|c: char| c == ';' || c.is_whitespace())
                .next()
                .unwrap()
                .to_owned()
        })
    }

    /// The URI in the Contact header (between `<` and `>`).
    fn contact_uri(&self) -> String {
        let c = self.one(HeaderName::Contact);
        let start = c.find('<').map_or(0, |i| i + 1);
        let end = c.find('>').unwrap_or(c.len());
        c[start..end].to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// User agents

enum Conn {
    Udp(UdpSocket),
    /// A connected stream and what was read from it but not yet returned.
    Tcp(TcpStream, Vec<u8>),
}

/// A scripted SIP user agent in the client namespace.
struct Ua {
    user: &'static str,
    conn: Conn,
    /// Our address (what goes into Via and Contact).
    addr: SocketAddr,
    /// sipd's address on our family.
    proxy: SocketAddr,
    /// Sources of received datagrams (all must be sipd's address).
    received_from: Vec<SocketAddr>,
}

impl Ua {
    fn udp(net: &TestNet, user: &'static str, addr: SocketAddr, proxy: SocketAddr) -> Ua {
        let s = net.in_b(move || UdpSocket::bind(addr).expect("bind UA"));
        s.set_read_timeout(Some(WAIT)).unwrap();
        Ua {
            user,
            conn: Conn::Udp(s),
            addr,
            proxy,
            received_from: Vec::new(),
        }
    }

    fn tcp(net: &TestNet, user: &'static str, proxy: SocketAddr) -> Ua {
        let s = net.in_b(move || TcpStream::connect_timeout(&proxy, WAIT).expect("connect"));
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        Ua {
            user,
            addr: s.local_addr().unwrap(),
            conn: Conn::Tcp(s, Vec::new()),
            proxy,
            received_from: Vec::new(),
        }
    }

    fn transport(&self) -> &'static str {
        match self.conn {
            Conn::Udp(_) => "UDP",
            Conn::Tcp(..) => "TCP",
        }
    }

    fn contact(&self) -> String {
        match self.conn {
            Conn::Udp(_) => format!("sip:{}@{}", self.user, self.addr),
            Conn::Tcp(..) => format!("sip:{}@{};transport=tcp", self.user, self.addr),
        }
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};branch={branch};rport",
            self.transport(),
            self.addr
        )
    }

    /// Sends to sipd (on TCP, on the connection).
    fn send(&mut self, msg: &str) {
        match &mut self.conn {
            Conn::Udp(s) => {
                s.send_to(msg.as_bytes(), self.proxy).expect("send");
            }
            Conn::Tcp(s, _) => s.write_all(msg.as_bytes()).expect("write"),
        }
    }

    /// Receives the next message (panics after [`WAIT`]), parsed and validated.
    fn recv(&mut self) -> Msg {
        match &mut self.conn {
            Conn::Udp(s) => {
                let mut buf = vec![0u8; 65_535];
                let (n, from) = s
                    .recv_from(&mut buf)
                    .unwrap_or_else(|e| panic!("{} received nothing: {e}", self.user));
                self.received_from.push(from);
                assert_eq!(
                    from.ip(),
                    self.proxy.ip(),
                    "{} got a datagram from {from}, not from sipd",
                    self.user
                );
                Msg::check(&buf[..n], &ParseOptions::DATAGRAM)
            }
            Conn::Tcp(s, pending) => {
                let deadline = Instant::now() + WAIT;
                loop {
                    while pending.starts_with(b"\r\n") {
                        pending.drain(..2);
                    }
                    let mut storage = [Header::EMPTY; 64];
                    let len = match parse(pending, &mut storage, &ParseOptions::STREAM) {
                        Ok(Status::Complete(m)) => Some(m.len() + m.start()),
                        Ok(Status::Partial) => None,
                        Err(e) => panic!(
                            "unframable stream ({e:?}): {}",
                            String::from_utf8_lossy(pending)
                        ),
                    };
                    if let Some(len) = len {
                        let msg = Msg::check(&pending[..len], &ParseOptions::STREAM);
                        pending.drain(..len);
                        return msg;
                    }
                    assert!(Instant::now() < deadline, "{} received nothing", self.user);
                    let mut buf = [0u8; 65_536];
                    let n = s.read(&mut buf).expect("read");
                    assert!(n > 0, "sipd closed {}'s connection", self.user);
                    pending.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    /// Nothing arrives within `quiet`.
    fn expect_nothing(&mut self, quiet: Duration) {
        if let Conn::Udp(s) = &self.conn {
            s.set_read_timeout(Some(quiet)).unwrap();
            let mut buf = [0u8; 2048];
            let got = s.recv_from(&mut buf);
            s.set_read_timeout(Some(WAIT)).unwrap();
            if let Ok((n, from)) = got {
                panic!(
                    "{} got an unexpected datagram from {from}:\n{}",
                    self.user,
                    String::from_utf8_lossy(&buf[..n])
                );
            }
        }
    }
}

/// A request as a UA sends it.
struct Req<'a> {
    method: &'a str,
    uri: &'a str,
    branch: &'a str,
    call_id: &'a str,
    cseq: u32,
    from_tag: &'a str,
    to: &'a str,
    to_tag: Option<&'a str>,
    routes: &'a [String],
    body: &'a str,
}

impl Ua {
    fn request(&self, r: &Req<'_>) -> String {
        let mut out = format!(
            "{} {} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n",
            r.method,
            r.uri,
            self.via(r.branch)
        );
        for route in r.routes {
            out.push_str(&format!("Route: {route}\r\n"));
        }
        let to_tag = r.to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        out.push_str(&format!(
            "From: <sip:{}@{DOMAIN}>;tag={}\r\nTo: <{}>{to_tag}\r\nCall-ID: {}\r\n\
             CSeq: {} {}\r\nContact: <{}>\r\n",
            self.user,
            r.from_tag,
            r.to,
            r.call_id,
            r.cseq,
            r.method,
            self.contact()
        ));
        if !r.body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!(
            "Content-Length: {}\r\n\r\n{}",
            r.body.len(),
            r.body
        ));
        out
    }

    /// A response to `req` (Vias, Record-Routes, From, Call-ID, CSeq copied; To tagged).
    fn response(&self, req: &Msg, status: &str, to_tag: &str, body: &str) -> String {
        let mut out = format!("SIP/2.0 {status}\r\n");
        for v in req.all(HeaderName::Via) {
            out.push_str(&format!("Via: {v}\r\n"));
        }
        for rr in req.all(HeaderName::RecordRoute) {
            out.push_str(&format!("Record-Route: {rr}\r\n"));
        }
        let to = req.one(HeaderName::To);
        let to = if to.contains(";tag=") {
            to.to_owned()
        } else {
            format!("{to};tag={to_tag}")
        };
        out.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <{}>\r\n",
            req.one(HeaderName::From),
            req.one(HeaderName::CallId),
            req.one(HeaderName::CSeq),
            self.contact(),
        ));
        if !body.is_empty() {
            out.push_str("Content-Type: application/sdp\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        out
    }
}

fn sdp(addr: SocketAddr) -> String {
    let (fam, ip) = match addr.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    format!(
        "v=0\r\no=- 1 1 IN {fam} {ip}\r\ns=-\r\nc=IN {fam} {ip}\r\nt=0 0\r\n\
         m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

// ---------------------------------------------------------------------------------------------
// Flows

/// What sipd's own Via looks like to a UA on `proxy`'s family: transport UDP, sent-by sipd.
fn assert_sipd_via(via: &ViaInfo, proxy: SocketAddr, msg: &Msg) {
    assert_eq!(
        via.transport, "UDP",
        "sipd's Via transport in\n{}",
        msg.text
    );
    assert_eq!(
        via.sent_by,
        proxy.to_string(),
        "sipd's Via sent-by in\n{}",
        msg.text
    );
    assert!(
        via.branch.starts_with("z9hG4bK") && via.branch.len() > 7,
        "RFC 3261 branch on sipd's Via in\n{}",
        msg.text
    );
}

/// A request as Bob receives it from sipd: sipd's Via on top of the sender's, Max-Forwards one
/// less, the Request-URI as expected, the body intact, no Route left for sipd.
fn assert_forwarded_request(
    got: &Msg,
    method: &str,
    uri: &str,
    sent_via: &ViaInfo,
    bob: &Ua,
    body: &str,
) {
    assert_eq!(got.method(), method, "{}", got.text);
    assert_eq!(got.request_uri(), uri, "Request-URI in\n{}", got.text);
    assert_eq!(got.vias.len(), 2, "two Vias in\n{}", got.text);
    assert_sipd_via(&got.vias[0], bob.proxy, got);
    assert_eq!(
        &got.vias[1], sent_via,
        "the sender's Via kept in\n{}",
        got.text
    );
    assert_eq!(got.max_forwards(), 69, "Max-Forwards decremented once");
    assert!(
        got.all(HeaderName::Route).is_empty(),
        "sipd's Route removed in\n{}",
        got.text
    );
    assert_eq!(got.body, body, "body intact in\n{}", got.text);
}

/// A response as Alice receives it: sipd's Via removed, hers alone left, the status and body
/// as Bob sent them.
fn assert_forwarded_response(got: &Msg, status: u16, alice_via: &ViaInfo, body: &str) {
    assert_eq!(got.status(), status, "{}", got.text);
    assert_eq!(
        got.vias,
        vec![alice_via.clone()],
        "only Alice's Via left in\n{}",
        got.text
    );
    assert_eq!(got.body, body, "body intact in\n{}", got.text);
}

/// Bob's Via as Bob sent it... as a `ViaInfo` Alice's Via is compared with.
fn via_info(ua: &Ua, branch: &str) -> ViaInfo {
    ViaInfo {
        transport: ua.transport().into(),
        sent_by: ua.addr.to_string(),
        branch: branch.into(),
    }
}

fn register(ua: &mut Ua, tag: &str) {
    let aor = format!("sip:{}@{DOMAIN}", ua.user);
    let branch = format!("z9hG4bK-reg-{tag}");
    let msg = ua.request(&Req {
        method: "REGISTER",
        uri: &format!("sip:{DOMAIN}"),
        branch: &branch,
        call_id: &format!("reg-{tag}@test"),
        cseq: 1,
        from_tag: "r1",
        to: &aor,
        to_tag: None,
        routes: &[],
        body: "",
    });
    // Expires in the Contact; REGISTER is answered by sipd itself.
    let msg = msg.replacen(
        &format!("Contact: <{}>", ua.contact()),
        &format!("Contact: <{}>;expires=600", ua.contact()),
        1,
    );
    ua.send(&msg);
    let ok = ua.recv();
    assert_eq!(ok.status(), 200, "REGISTER answered 200:\n{}", ok.text);
    assert_eq!(ok.vias, vec![via_info(ua, &branch)], "{}", ok.text);
    assert!(
        ok.all(HeaderName::Contact)
            .iter()
            .any(|c| c.contains(&ua.addr.to_string())),
        "the binding is listed in\n{}",
        ok.text
    );
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// 180, 200, ACK, BYE, 200.
    Answer,
    /// 486, ACK.
    Busy,
    /// 180, CANCEL, 200 (CANCEL), 487, ACK.
    Cancel,
}

impl Outcome {
    /// Messages sipd forwards in this flow.
    fn forwarded(self) -> u64 {
        self.by_caller() + self.by_callee()
    }

    /// Requests from the caller: INVITE, then ACK and BYE, or ACK, or CANCEL and ACK.
    fn by_caller(self) -> u64 {
        match self {
            Outcome::Answer | Outcome::Cancel => 3,
            Outcome::Busy => 2,
        }
    }

    /// Responses from the callee: 180, 200, 200 (BYE); 486; 180, 200 (CANCEL), 487.
    fn by_callee(self) -> u64 {
        match self {
            Outcome::Answer | Outcome::Cancel => 3,
            Outcome::Busy => 1,
        }
    }
}

/// One call from `alice` to `callee` (a registered user, reached as `bob`), every message
/// checked on arrival.
fn call(alice: &mut Ua, bob: &mut Ua, callee: &str, id: &str, outcome: Outcome) {
    let call_id = format!("{id}@datapath-calls");
    let aor = format!("sip:{callee}@{DOMAIN}");
    let b_invite = format!("z9hG4bK-{id}-inv");
    let offer = sdp(alice.addr);
    let invite = alice.request(&Req {
        method: "INVITE",
        uri: &aor,
        branch: &b_invite,
        call_id: &call_id,
        cseq: 1,
        from_tag: "a1",
        to: &aor,
        to_tag: None,
        routes: &[],
        body: &offer,
    });
    let alice_via = via_info(alice, &b_invite);
    alice.send(&invite);

    // Bob gets the INVITE at his registered contact, Record-Routed.
    let inv = bob.recv();
    assert_forwarded_request(&inv, "INVITE", &bob.contact(), &alice_via, bob, &offer);
    let rr = inv.record_routes();
    assert!(!rr.is_empty(), "Record-Route inserted:\n{}", inv.text);
    assert!(
        rr.iter().any(|r| r.contains(&bob.proxy.ip().to_string())),
        "a Record-Route names sipd's address on Bob's side:\n{}",
        inv.text
    );
    let sipd_branch = inv.vias[0].branch.clone();

    if outcome != Outcome::Busy {
        bob.send(&bob.response(&inv, "180 Ringing", "b1", ""));
        let ringing = alice.recv();
        assert_forwarded_response(&ringing, 180, &alice_via, "");
        assert_eq!(ringing.to_tag().as_deref(), Some("b1"));
        assert_eq!(
            ringing.record_routes(),
            rr,
            "Record-Route returned to Alice"
        );
    }

    match outcome {
        Outcome::Answer => {
            let answer = sdp(bob.addr);
            bob.send(&bob.response(&inv, "200 OK", "b1", &answer));
            let ok = alice.recv();
            assert_forwarded_response(&ok, 200, &alice_via, &answer);
            assert_eq!(ok.contact_uri(), bob.contact());
            // The UAC's route set: the Record-Routes in reverse order.
            let routes: Vec<String> = ok.record_routes().into_iter().rev().collect();
            assert!(!routes.is_empty());

            // ACK and BYE go to Bob's Contact through sipd (loose routing).
            for (method, cseq) in [("ACK", 1), ("BYE", 2)] {
                let branch = format!("z9hG4bK-{id}-{}", method.to_lowercase());
                let msg = alice.request(&Req {
                    method,
                    uri: &bob.contact(),
                    branch: &branch,
                    call_id: &call_id,
                    cseq,
                    from_tag: "a1",
                    to: &aor,
                    to_tag: Some("b1"),
                    routes: &routes,
                    body: "",
                });
                alice.send(&msg);
                let got = bob.recv();
                assert_forwarded_request(
                    &got,
                    method,
                    &bob.contact(),
                    &via_info(alice, &branch),
                    bob,
                    "",
                );
                if method == "BYE" {
                    bob.send(&bob.response(&got, "200 OK", "b1", ""));
                    let ok = alice.recv();
                    assert_forwarded_response(&ok, 200, &via_info(alice, &branch), "");
                    assert!(ok.one(HeaderName::CSeq).ends_with("BYE"));
                }
            }
        }
        Outcome::Busy => {
            bob.send(&bob.response(&inv, "486 Busy Here", "b1", ""));
            let busy = alice.recv();
            assert_forwarded_response(&busy, 486, &alice_via, "");
            ack_non_2xx(alice, bob, &aor, &b_invite, &call_id, &sipd_branch);
        }
        Outcome::Cancel => {
            let cancel = alice.request(&Req {
                method: "CANCEL",
                uri: &aor,
                branch: &b_invite,
                call_id: &call_id,
                cseq: 1,
                from_tag: "a1",
                to: &aor,
                to_tag: None,
                routes: &[],
                body: "",
            });
            alice.send(&cancel);
            let got = bob.recv();
            assert_forwarded_request(&got, "CANCEL", &bob.contact(), &alice_via, bob, "");
            assert_eq!(
                got.vias[0].branch, sipd_branch,
                "the CANCEL carries the INVITE's branch (RFC 3261 §16.11)"
            );
            bob.send(&bob.response(&got, "200 OK", "b1", ""));
            let ok = alice.recv();
            assert_forwarded_response(&ok, 200, &alice_via, "");
            assert!(ok.one(HeaderName::CSeq).ends_with("CANCEL"));
            bob.send(&bob.response(&inv, "487 Request Terminated", "b1", ""));
            let terminated = alice.recv();
            assert_forwarded_response(&terminated, 487, &alice_via, "");
            ack_non_2xx(alice, bob, &aor, &b_invite, &call_id, &sipd_branch);
        }
    }
}

/// The ACK of a non-2xx final response: same branch as the INVITE, forwarded with the branch
/// sipd gave the INVITE so Bob's INVITE server transaction matches it.
fn ack_non_2xx(
    alice: &mut Ua,
    bob: &mut Ua,
    aor: &str,
    b_invite: &str,
    call_id: &str,
    sipd_branch: &str,
) {
    let ack = alice.request(&Req {
        method: "ACK",
        uri: aor,
        branch: b_invite,
        call_id,
        cseq: 1,
        from_tag: "a1",
        to: aor,
        to_tag: Some("b1"),
        routes: &[],
        body: "",
    });
    alice.send(&ack);
    let got = bob.recv();
    assert_forwarded_request(
        &got,
        "ACK",
        &bob.contact(),
        &via_info(alice, b_invite),
        bob,
        "",
    );
    assert_eq!(
        got.vias[0].branch, sipd_branch,
        "the non-2xx ACK carries the INVITE's branch"
    );
}

/// Everything the calls tests do, on either backend; returns the number of messages sipd
/// forwarded, for the metrics check.
fn run_calls(net: &TestNet, mode: &str) {
    #[derive(Default)]
    struct Tally {
        forwarded: u64,
        /// Messages sipd received over TCP (the rest came over UDP).
        over_tcp: u64,
        calls: u64,
        answered: u64,
    }
    impl Tally {
        fn add(&mut self, outcome: Outcome, caller_on_tcp: bool) {
            self.forwarded += outcome.forwarded();
            if caller_on_tcp {
                self.over_tcp += outcome.by_caller();
            }
            self.calls += 1;
            self.answered += u64::from(outcome == Outcome::Answer);
        }
    }

    net.add_addr_b(&format!("{B2_V6}/64"));
    let (sipd, _config) = start_sipd(net, mode, "");
    let p4 = sa(A_V4, SIP_PORT);
    let p6 = sa(A_V6, SIP_PORT);
    let csum_before = support::udp_csum_errors(&net.ns_b);

    let mut alice = Ua::udp(net, "alice", sa(B_V4, 5062), p4);
    let mut bob = Ua::udp(net, "bob", sa(B2_V4, 5072), p4);
    let mut alice6 = Ua::udp(net, "alice", sa(B_V6, 5062), p6);
    let mut carol6 = Ua::udp(net, "carol", sa(B2_V6, 5072), p6);
    register(&mut bob, "bob");
    register(&mut carol6, "carol");

    let mut t = Tally::default();
    // Cold: the AF_XDP worker's neighbour cache (refreshed every second) may not know the UAs
    // yet, so some of these leave through the kernel (still from sipd's listen address).
    call(&mut alice, &mut bob, "bob", "cold-v4", Outcome::Answer);
    call(
        &mut alice6,
        &mut carol6,
        "carol",
        "cold-v6",
        Outcome::Answer,
    );
    t.add(Outcome::Answer, false);
    t.add(Outcome::Answer, false);
    let kernel_path = |m: &str| {
        metric(
            m,
            "sipd_afxdp_kernel_path_total",
            &["reason=\"no_neighbour\""],
        )
    };
    let cold_kernel_path = if mode == "afxdp" {
        std::thread::sleep(Duration::from_millis(1500));
        let n = kernel_path(&metrics(net));
        eprintln!("cold calls: {n} messages took the kernel path (no neighbour yet)");
        n
    } else {
        0
    };

    for (i, outcome) in [
        Outcome::Answer,
        Outcome::Cancel,
        Outcome::Busy,
        Outcome::Answer,
    ]
    .into_iter()
    .enumerate()
    {
        call(&mut alice, &mut bob, "bob", &format!("v4-{i}"), outcome);
        t.add(outcome, false);
    }
    for (i, outcome) in [Outcome::Cancel, Outcome::Busy].into_iter().enumerate() {
        call(
            &mut alice6,
            &mut carol6,
            "carol",
            &format!("v6-{i}"),
            outcome,
        );
        t.add(outcome, false);
    }

    // SIP over TCP on Alice's leg, UDP on Bob's.
    let mut alice_tcp = Ua::tcp(net, "alice", p4);
    for (i, outcome) in [Outcome::Answer, Outcome::Cancel].into_iter().enumerate() {
        call(
            &mut alice_tcp,
            &mut bob,
            "bob",
            &format!("tcp-{i}"),
            outcome,
        );
        t.add(outcome, true);
    }

    // A burst of malformed datagrams: dropped (not answered), counted; calls still complete.
    const MALFORMED: u64 = 200;
    let before = metrics(net);
    for i in 0..MALFORMED {
        let junk: Vec<u8> = match i % 4 {
            0 => vec![0u8; 64],
            1 => (0..200).map(|b| (b * 37 + i) as u8 | 0x80).collect(),
            2 => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
            // A start line of junk, then an empty header block.
            _ => format!("\x01\x02garbage {i} \x7f\r\n\r\n").into_bytes(),
        };
        match &alice.conn {
            Conn::Udp(s) => s.send_to(&junk, p4).expect("send junk"),
            Conn::Tcp(..) => unreachable!(),
        };
    }
    alice.expect_nothing(Duration::from_millis(300));
    for (i, outcome) in [Outcome::Answer, Outcome::Busy].into_iter().enumerate() {
        call(
            &mut alice,
            &mut bob,
            "bob",
            &format!("after-junk-{i}"),
            outcome,
        );
        t.add(outcome, false);
    }
    let after = metrics(net);
    let dropped =
        |m: &str, reason: &str| metric(m, "sipd_dropped_total", &[&format!("reason=\"{reason}\"")]);
    let drops = after
        .lines()
        .filter(|l| l.starts_with("sipd_dropped_total"))
        .collect::<Vec<_>>()
        .join("\n");
    // Three of the four kinds do not parse; the fourth parses as far as an (empty) header block
    // and is dropped for having no Via to answer to.
    assert_eq!(
        dropped(&after, "malformed") - dropped(&before, "malformed"),
        MALFORMED / 4 * 3,
        "malformed datagrams dropped and counted:\n{drops}"
    );
    assert_eq!(
        dropped(&after, "no_via") - dropped(&before, "no_via"),
        MALFORMED / 4,
        "{drops}"
    );
    // Every datagram reached the UAs' kernel sockets, and the kernel found no bad checksum.
    assert_eq!(
        support::udp_csum_errors(&net.ns_b) - csum_before,
        0,
        "UDP checksum errors on the receiving kernel"
    );

    // The metrics add up.
    let m = metrics(net);
    assert_eq!(
        metric(&m, "sipd_forwarded_total", &[]),
        t.forwarded,
        "forwarded messages:\n{m}"
    );
    assert_eq!(
        metric(&m, "sipd_registrar_registers_ok_total", &[]),
        2,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sipd_dialogs_calls_created_total", &[]),
        t.calls,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sipd_dialogs_confirmed_total", &[]),
        t.answered,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sipd_dialogs_calls_active", &[]),
        0,
        "every call ended:\n{m}"
    );
    if mode == "afxdp" {
        // UDP SIP went through AF_XDP only; the kernel sockets saw none of it.
        assert_eq!(metric(&m, "sipd_socket_rx_packets_total", &[]), 0, "{m}");
        let udp_in = metric(&m, "sipd_afxdp_packets_total", &["what=\"rx\""]);
        // Everything sent over UDP: REGISTERs, the datagrams of the calls, the junk.
        assert_eq!(
            udp_in,
            2 + t.forwarded - t.over_tcp + MALFORMED,
            "AF_XDP rx:\n{m}"
        );
        assert!(
            metric(&m, "sipd_xdp_packets_total", &["verdict=\"redirected\""]) >= udp_in,
            "{m}"
        );
        assert!(
            metric(&m, "sipd_afxdp_packets_total", &["what=\"tx\""]) > 0,
            "{m}"
        );
        assert!(
            metric(&m, "sipd_afxdp_kernel_path_total", &["reason=\"tcp\""]) > 0,
            "responses to the TCP caller were handed to the TCP thread:\n{m}"
        );
        assert_eq!(
            kernel_path(&m),
            cold_kernel_path,
            "warm: every UDP message left on the AF_XDP fast path:\n{m}"
        );
        assert_eq!(
            metric(&m, "sipd_afxdp_kernel_path_total", &["reason=\"failed\""]),
            0,
            "{m}"
        );
    } else {
        assert_eq!(metric(&m, "sipd_afxdp_packets_total", &[]), 0, "{m}");
        assert_eq!(
            metric(&m, "sipd_socket_rx_packets_total", &[]),
            2 + t.forwarded - t.over_tcp + MALFORMED,
            "every UDP datagram sent to sipd received:\n{m}"
        );
    }
    for ua in [&alice, &bob, &alice6, &carol6] {
        let other: Vec<_> = ua
            .received_from
            .iter()
            .filter(|a| **a != ua.proxy)
            .collect();
        assert!(
            other.is_empty(),
            "{} received datagrams from {other:?}, not from sipd's {}:\n{}",
            ua.user,
            ua.proxy,
            m.lines()
                .filter(|l| l.starts_with("sipd_afxdp_kernel_path_total"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    drop((alice, bob, alice6, carol6, alice_tcp));
    sipd.terminate();
    assert!(!net.xdp_attached(), "detached on exit: {}", net.link_a());
}

#[test]
fn calls_through_afxdp() {
    require_root_or_skip!();
    let _serial = support::serial();
    let net = TestNet::new();
    run_calls(&net, "afxdp");
}

#[test]
fn calls_through_sockets() {
    require_root_or_skip!();
    let _serial = support::serial();
    let net = TestNet::new();
    run_calls(&net, "socket");
}

/// An OPTIONS for sipd itself (answered by the core).
fn options(from: SocketAddr, n: usize) -> String {
    format!(
        "OPTIONS sip:{A_V4}:{SIP_PORT} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-opt-{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{DOMAIN}>;tag=o{n}\r\nTo: <sip:{A_V4}>\r\n\
         Call-ID: opt-{n}-{from}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

/// Sends `count` OPTIONS to sipd back to back from `from`, then counts the 200s until `quiet`
/// passes without one.
fn options_burst(net: &TestNet, from: SocketAddr, count: usize) -> usize {
    net.in_b(move || {
        let s = UdpSocket::bind(from).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        for n in 0..count {
            s.send_to(options(from, n).as_bytes(), sa(A_V4, SIP_PORT))
                .expect("send");
        }
        let mut buf = [0u8; 4096];
        let mut ok = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            let Ok((n, _)) = s.recv_from(&mut buf) else {
                break;
            };
            let m = Msg::check(&buf[..n], &ParseOptions::DATAGRAM);
            assert_eq!(m.status(), 200, "{}", m.text);
            ok += 1;
        }
        ok
    })
}

#[test]
fn afxdp_run_guard_kernel_traffic_and_sigkill() {
    require_root_or_skip!();
    let _serial = support::serial();
    let net = TestNet::new();
    let blocked = Ipv4Addr::new(10, 201, 0, 8);
    let flooder = Ipv4Addr::new(10, 201, 0, 9);
    net.add_addr_b(&format!("{blocked}/24"));
    net.add_addr_b(&format!("{flooder}/24"));
    let (sipd, _config) = start_sipd(
        &net,
        "afxdp",
        &format!(
            "[guard]\nrate = 5\nburst = 10\nallow = [\"{B_V4}/32\"]\nblock = [\"{blocked}/32\"]"
        ),
    );

    // Kernel traffic next to the program: UDP echo on another port, ICMP echo (ARP first).
    let echo = net.in_a(|| support::spawn_kernel_echo(sa(A_V4, 7000), 5, Duration::from_secs(5)));
    let got = net.in_b(|| {
        support::ping_pong(
            sa(B2_V4, 40_100),
            sa(A_V4, 7000),
            5,
            Duration::from_millis(500),
        )
    });
    assert_eq!(got.len(), 5, "kernel UDP echo on port 7000 answers");
    assert_eq!(echo.join().unwrap(), 5);
    assert!(
        net.in_b(|| support::icmp_ping(A_V4, Duration::from_secs(2))),
        "ICMP echo answered with XDP attached"
    );

    // The guard from the configuration: blocked gets nothing, a flood is limited, the
    // allow-listed source is not.
    assert_eq!(
        options_burst(&net, sa(blocked, 40_101), 5),
        0,
        "blocked source"
    );
    let limited = options_burst(&net, sa(flooder, 40_102), 40);
    assert!(
        (8..=14).contains(&limited),
        "5/s with a burst of 10: {limited} of 40 answered"
    );
    assert_eq!(
        options_burst(&net, sa(B_V4, 40_103), 40),
        40,
        "allow-listed source"
    );
    let m = metrics(&net);
    assert_eq!(
        metric(&m, "sipd_xdp_packets_total", &["verdict=\"guard_blocked\""]),
        5,
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "sipd_xdp_packets_total",
            &["verdict=\"guard_rate_limited\""]
        ),
        40 - limited as u64,
        "{m}"
    );

    // SIGKILL: the kernel removes the program with the process; 5060 is the kernel's again.
    sipd.kill9();
    let deadline = Instant::now() + Duration::from_secs(3);
    while net.xdp_attached() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !net.xdp_attached(),
        "program left after SIGKILL: {}",
        net.link_a()
    );
    let echo =
        net.in_a(|| support::spawn_kernel_echo(sa(A_V4, SIP_PORT), 3, Duration::from_secs(5)));
    let got = net.in_b(|| {
        support::ping_pong(
            sa(B_V4, 40_104),
            sa(A_V4, SIP_PORT),
            3,
            Duration::from_millis(500),
        )
    });
    assert_eq!(
        got.len(),
        3,
        "a kernel socket on 5060 answers after SIGKILL"
    );
    assert_eq!(echo.join().unwrap(), 3);
}

#[test]
fn afxdp_load_200_calls() {
    require_root_or_skip!();
    let _serial = support::serial();
    let net = TestNet::new();
    const CALLS: u64 = 200;
    let uas_addr = sa(B2_V4, 5080);
    let (sipd, _config) = start_sipd(
        &net,
        "afxdp",
        &format!("[[routing.numbers]]\nprefix = \"+4930\"\ntarget = \"udp:{uas_addr}\"\n"),
    );
    let bin = env!("CARGO_BIN_EXE_sipd");
    let mut uas = std::process::Command::new("ip")
        .args(["netns", "exec", &net.ns_b, bin, "load", "uas", "--listen"])
        .arg(uas_addr.to_string())
        .args(["--duration", "30s", "--quiet"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn sipd load uas");
    /// Kills the UAS also when an assertion fails.
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _uas = Kill(&mut uas);
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new("timeout")
        .args(["30", "ip", "netns", "exec", &net.ns_b, bin, "load", "uac"])
        .args(["--target", &sa(A_V4, SIP_PORT).to_string()])
        .args(["--local", &sa(B_V4, 5090).to_string()])
        .args([
            "--calls",
            &CALLS.to_string(),
            "--rate",
            "500",
            "--json",
            "--quiet",
        ])
        .output()
        .expect("run sipd load uac");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(j["completed"], CALLS, "{j}");
    assert_eq!(j["failed"], 0, "{j}");

    let m = metrics(&net);
    // INVITE, 180, 200, ACK, BYE, 200 per call (retransmissions would add more).
    assert!(metric(&m, "sipd_forwarded_total", &[]) >= 6 * CALLS, "{m}");
    assert_eq!(
        metric(&m, "sipd_socket_rx_packets_total", &[]),
        0,
        "all UDP on AF_XDP:\n{m}"
    );
    assert!(
        metric(&m, "sipd_afxdp_packets_total", &["what=\"rx\""]) >= 6 * CALLS,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sipd_dialogs_calls_created_total", &[]),
        CALLS,
        "{m}"
    );
    assert_eq!(metric(&m, "sipd_dialogs_calls_active", &[]), 0, "{m}");
    sipd.terminate();
}
