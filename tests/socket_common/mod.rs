//! Helpers of the socket backend tests: small SIP peers on loopback and a proxy routing
//! `bob@example.com` to one of them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipd::proxy::{ContactTarget, Health, Proxy, ProxyConfig, StaticLocation, Transport};
use sipd::socket::{ServerHandle, SocketConfig, SocketServer, TcpLimits};

pub const WAIT: Duration = Duration::from_secs(3);

/// A proxy factory: `bob@example.com` is at `bob` over `transport`.
pub fn proxy_to(bob: SocketAddr, transport: Transport) -> impl Fn(usize) -> Proxy {
    let config = Arc::new(ProxyConfig {
        domains: vec!["example.com".into()],
        ..ProxyConfig::default()
    });
    let mut location = StaticLocation::new();
    let scheme_transport = match transport {
        Transport::Udp => "",
        Transport::Tcp => ";transport=tcp",
    };
    location.insert(
        "bob",
        "example.com",
        vec![ContactTarget {
            uri: format!("sip:bob@{bob}{scheme_transport}")
                .into_bytes()
                .into(),
            addr: bob,
            transport,
            q: 1000,
        }],
    );
    let location = Arc::new(location);
    let health = Health::new(0);
    move |_| Proxy::new(config.clone(), location.clone(), health.clone())
}

pub fn config(udp: &[&str], tcp: &[&str]) -> SocketConfig {
    SocketConfig {
        udp_listen: udp.iter().map(|a| a.parse().unwrap()).collect(),
        tcp_listen: tcp.iter().map(|a| a.parse().unwrap()).collect(),
        workers: 2,
        batch: 32,
        tcp: TcpLimits {
            max_connections: 64,
            ..TcpLimits::default()
        },
        ..SocketConfig::default()
    }
}

pub fn start(cfg: SocketConfig, bob: SocketAddr, transport: Transport) -> ServerHandle {
    SocketServer::start(cfg, proxy_to(bob, transport), None).expect("server starts")
}

/// Waits until `f` holds (polling), panicking with `what` after [`WAIT`].
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One SIP endpoint on a UDP or TCP socket.
pub enum Peer {
    Udp(UdpSocket),
    /// A connected stream and what has been read from it but not yet returned.
    Tcp(TcpStream, Vec<u8>),
}

impl Peer {
    pub fn udp(ip: &str) -> Peer {
        let s = UdpSocket::bind((ip, 0)).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Peer::Udp(s)
    }

    pub fn tcp_to(server: SocketAddr) -> Peer {
        let s = TcpStream::connect(server).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.set_nodelay(true).unwrap();
        Peer::Tcp(s, Vec::new())
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Peer::Udp(s) => s.local_addr().unwrap(),
            Peer::Tcp(s, _) => s.local_addr().unwrap(),
        }
    }

    pub fn transport(&self) -> &'static str {
        match self {
            Peer::Udp(_) => "UDP",
            Peer::Tcp(..) => "TCP",
        }
    }

    /// Sends a message (`to` is ignored on TCP).
    pub fn send(&mut self, to: SocketAddr, msg: &str) {
        match self {
            Peer::Udp(s) => {
                s.send_to(msg.as_bytes(), to).unwrap();
            }
            Peer::Tcp(s, _) => s.write_all(msg.as_bytes()).unwrap(),
        }
    }

    /// The next message and where it came from (the peer address on TCP).
    pub fn recv(&mut self) -> (String, SocketAddr) {
        match self {
            Peer::Udp(s) => {
                let mut buf = vec![0; 65_535];
                let (n, from) = s.recv_from(&mut buf).expect("a datagram");
                (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
            }
            Peer::Tcp(s, pending) => {
                let from = s.peer_addr().unwrap();
                (read_stream_message(s, pending).expect("a message"), from)
            }
        }
    }
}

/// Reads one Content-Length framed message from a stream (`None` at EOF).
pub fn read_stream_message(s: &mut TcpStream, pending: &mut Vec<u8>) -> Option<String> {
    loop {
        while pending.starts_with(b"\r\n") {
            pending.drain(..2);
        }
        if let Some(head_end) = find(pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..head_end]).into_owned();
            let cl: usize = header(&head, "Content-Length")
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            let total = head_end + 4 + cl;
            if pending.len() >= total {
                let msg = String::from_utf8_lossy(&pending[..total]).into_owned();
                pending.drain(..total);
                return Some(msg);
            }
        }
        let mut buf = [0u8; 65_536];
        let n = s.read(&mut buf).expect("read");
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of the first header named `name` (case-insensitive, full names only).
pub fn header<'a>(msg: &'a str, name: &'a str) -> Option<&'a str> {
    header_lines(msg, name).next()
}

/// Values of every header line named `name`.
pub fn header_lines<'a>(msg: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").skip(1).filter_map(move |line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn start_line(msg: &str) -> &str {
    msg.split("\r\n").next().unwrap_or("")
}

/// A request from `from` (whose Via names its transport and address).
#[allow(clippy::too_many_arguments)]
pub fn request(
    method: &str,
    uri: &str,
    from: &Peer,
    branch: &str,
    call_id: &str,
    cseq: u32,
    to_tag: Option<&str>,
    body: &str,
) -> String {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let addr = from.addr();
    let transport = from.transport();
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".into()
    };
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {addr};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=a1\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {method}\r\n\
         Contact: <sip:alice@{addr}>\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A response to `req` (Vias, From, To with `to_tag`, Call-ID and CSeq copied).
pub fn response(req: &str, status: &str, to_tag: &str) -> String {
    let mut out = format!("SIP/2.0 {status}\r\n");
    for via in header_lines(req, "Via") {
        out.push_str(&format!("Via: {via}\r\n"));
    }
    let to = header(req, "To").unwrap();
    let to = if to.contains(";tag=") {
        to.to_owned()
    } else {
        format!("{to};tag={to_tag}")
    };
    out.push_str(&format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        header(req, "From").unwrap(),
        header(req, "Call-ID").unwrap(),
        header(req, "CSeq").unwrap(),
    ));
    out
}

/// Where a UAS sends a response over UDP: the top Via's sent-by (RFC 3261 §18.2.2).
pub fn top_via_addr(req: &str) -> SocketAddr {
    let via = header(req, "Via").unwrap();
    let sent_by = via.split_whitespace().nth(1).unwrap();
    let hostport = sent_by.split(';').next().unwrap();
    hostport.parse().unwrap()
}

/// A UAS on the far side of the proxy.
pub struct Uas {
    pub peer: Peer,
    /// The listener when the UAS is on TCP (the proxy connects to it).
    pub listener: Option<std::net::TcpListener>,
}

impl Uas {
    pub fn udp(ip: &str) -> Uas {
        Uas {
            peer: Peer::udp(ip),
            listener: None,
        }
    }

    pub fn tcp(ip: &str) -> Uas {
        let l = std::net::TcpListener::bind((ip, 0)).unwrap();
        // A placeholder until the proxy connects.
        let placeholder = Peer::udp(ip);
        Uas {
            peer: placeholder,
            listener: Some(l),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match &self.listener {
            Some(l) => l.local_addr().unwrap(),
            None => self.peer.addr(),
        }
    }

    pub fn transport(&self) -> Transport {
        if self.listener.is_some() {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// Receives a request (accepting the proxy's connection first when on TCP).
    pub fn recv(&mut self) -> String {
        if let Some(l) = &self.listener
            && matches!(self.peer, Peer::Udp(_))
        {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(WAIT)).unwrap();
            self.peer = Peer::Tcp(s, Vec::new());
        }
        self.peer.recv().0
    }

    /// Answers `req`: on TCP on the connection, on UDP to the top Via.
    pub fn answer(&mut self, req: &str, status: &str) {
        let msg = response(req, status, "b1");
        self.peer.send(top_via_addr(req), &msg);
    }
}

/// INVITE/180/200/ACK/BYE/200 between `uac` and `uas` through the proxy at `proxy` (the address
/// the UAC sends to on UDP). Checks the Request-URI rewrite, the Vias each side sees, and
/// that the proxy's own Via names the transport it forwarded on.
pub fn call(uac: &mut Peer, uas: &mut Uas, proxy: SocketAddr, call_id: &str) {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    let invite = request(
        "INVITE",
        "sip:bob@example.com",
        uac,
        "z9hG4bKinv1",
        call_id,
        1,
        None,
        sdp,
    );
    uac.send(proxy, &invite);
    let got = uas.recv();
    assert!(
        start_line(&got).starts_with(&format!("INVITE sip:bob@{}", uas.addr())),
        "{got}"
    );
    let vias: Vec<&str> = header_lines(&got, "Via").collect();
    assert_eq!(vias.len(), 2, "{got}");
    let uas_token = match uas.transport() {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    };
    assert!(
        vias[0].starts_with(&format!("SIP/2.0/{uas_token} ")),
        "proxy Via must name the outgoing transport: {got}"
    );
    assert!(
        vias[1].starts_with(&format!("SIP/2.0/{} ", uac.transport())),
        "{got}"
    );
    assert!(vias[1].contains("rport="), "{got}");
    assert!(got.ends_with(sdp), "body kept: {got}");
    assert_eq!(header(&got, "Max-Forwards"), Some("69"));

    uas.answer(&got, "180 Ringing");
    uas.answer(&got, "200 OK");
    for expected in ["SIP/2.0 180 Ringing", "SIP/2.0 200 OK"] {
        let (resp, _) = uac.recv();
        assert_eq!(start_line(&resp), expected, "{resp}");
        let vias: Vec<&str> = header_lines(&resp, "Via").collect();
        assert_eq!(vias.len(), 1, "proxy Via removed: {resp}");
        assert!(vias[0].contains("branch=z9hG4bKinv1"), "{resp}");
    }

    let ack = request(
        "ACK",
        "sip:bob@example.com",
        uac,
        "z9hG4bKack1",
        call_id,
        1,
        Some("b1"),
        "",
    );
    uac.send(proxy, &ack);
    let got = uas.recv();
    assert!(start_line(&got).starts_with("ACK "), "{got}");

    let bye = request(
        "BYE",
        "sip:bob@example.com",
        uac,
        "z9hG4bKbye1",
        call_id,
        2,
        Some("b1"),
        "",
    );
    uac.send(proxy, &bye);
    let got = uas.recv();
    assert!(start_line(&got).starts_with("BYE "), "{got}");
    uas.answer(&got, "200 OK");
    let (resp, _) = uac.recv();
    assert_eq!(start_line(&resp), "SIP/2.0 200 OK", "{resp}");
    assert_eq!(header(&resp, "CSeq"), Some("2 BYE"));
}
