//! Via (RFC 3261 §20.42, §25; `rport` from RFC 3581).
//!
//! ```text
//! via-parm      = sent-protocol LWS sent-by *( SEMI via-params )
//! sent-protocol = protocol-name SLASH protocol-version SLASH transport   ; SLASH = SWS "/" SWS
//! sent-by       = host [ COLON port ]                                    ; COLON = SWS ":" SWS
//! ```
//!
//! The transport is any token (RFC 4475 `transports`). The parameters the proxy core relies on
//! are validated when the Via is parsed (`branch` a token, `received` an IP address, `maddr` a
//! host, `ttl` 0..=255, `rport` empty or a port), so their accessors cannot fail.

use std::net::IpAddr;

use super::error::{Error, ErrorKind, Result};
use super::params::Params;
use super::uri::{Host, parse_host_run, parse_port};
use super::values::{
    SplitComma, TOKEN, eq_lower_letters, offset_in, run, skip_lws, split_comma, trim_lws_range,
};

/// The RFC 3261 branch magic cookie.
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// One Via value (one `via-parm`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// `SIP` (compare case-insensitively).
    pub protocol_name: &'a [u8],
    /// `2.0`.
    pub protocol_version: &'a [u8],
    /// `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, ... any token (compare case-insensitively).
    pub transport: &'a [u8],
    pub host: Host<'a>,
    /// The host as written (IPv6 references with their brackets).
    pub host_raw: &'a [u8],
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The first `branch` value, found while the parameters were validated.
    branch: Option<&'a [u8]>,
    /// The first `rport`, likewise.
    rport: Rport,
    /// The first `rport` parameter's name as written (where a server adds `=port`).
    rport_name: Option<&'a [u8]>,
    /// The first `received`, likewise.
    received: Option<IpAddr>,
    /// The whole via-parm, LWS-trimmed.
    raw: &'a [u8],
}

/// The RFC 3581 `rport` parameter.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Rport {
    Absent,
    /// `;rport` (the client asks for it).
    Empty,
    /// `;rport=5060` (filled in by the server).
    Value(u16),
}

fn err(offset: usize) -> Error {
    Error::new(ErrorKind::Via, offset)
}

impl<'a> Via<'a> {
    /// Parses one via-parm (LWS around it ignored). Errors (offset into `value`): `Via` for the
    /// sent-protocol, a missing LWS before sent-by, junk after sent-by, or a bad `branch`,
    /// `received`, `maddr`, `ttl` or `rport`; `Host`, `Port`; `Param`/`QuotedString` for the
    /// parameter list.
    pub fn parse(value: &'a [u8]) -> Result<Via<'a>> {
        let (start, end) = trim_lws_range(value);
        let s = value.get(..end).unwrap_or_default();
        // Nearly always exactly `SIP/2.0/`: no need for the general token/SLASH walk.
        let (protocol_name, protocol_version, i) = match s.get(start..start + 8) {
            Some(p) if p == b"SIP/2.0/" || p.eq_ignore_ascii_case(b"SIP/2.0/") => (
                &s[start..start + 3],
                &s[start + 4..start + 7],
                skip_lws(s, start + 8),
            ),
            _ => {
                let (name, i) = token(s, start)?;
                let i = slash(s, i)?;
                let (version, i) = token(s, i)?;
                (name, version, slash(s, i)?)
            }
        };
        // Nearly always UDP, TCP or TLS and the SP before sent-by: token bytes then a non-token
        // byte, so the token run ends there, as `token` would find.
        // Compared as one 4-byte word each.
        const UDP: u32 = u32::from_le_bytes(*b"UDP ");
        const TCP: u32 = u32::from_le_bytes(*b"TCP ");
        const TLS: u32 = u32::from_le_bytes(*b"TLS ");
        let (transport, k) = match s.get(i..i + 4) {
            Some(&[a, b, c, d]) if matches!(u32::from_le_bytes([a, b, c, d]), UDP | TCP | TLS) => {
                (&s[i..i + 3], i + 3)
            }
            _ => token(s, i)?,
        };
        let hs = skip_lws(s, k);
        if hs == k {
            return Err(err(k));
        }
        // sent-by
        let (host, he) = if s.get(hs) == Some(&b'[') {
            let he =
                memchr::memchr(b']', s.get(hs..).unwrap_or_default()).map_or(end, |p| hs + p + 1);
            (Host::parse(s.get(hs..he).unwrap_or_default()), he)
        } else {
            match parse_host_run(s, hs) {
                Ok((host, he)) => (Ok(host), he),
                Err(e) => (Err(e), hs),
            }
        };
        // `hs <= he <= s.len()` on every branch above.
        let host_raw = &s[hs..he];
        let host = host.map_err(|e| e.shifted(hs))?;
        let mut i = skip_lws(s, he);
        let mut port = None;
        let mut after = he;
        if s.get(i) == Some(&b':') {
            let ps = skip_lws(s, i + 1);
            // The digit run and its value in one pass; then `parse_port`'s checks (1 to 5
            // digits, at most 65535), whose errors are all at the run's start.
            let mut pe = ps;
            let mut v = 0u32;
            if let Some(w) = s.get(ps..).and_then(<[u8]>::first_chunk::<6>) {
                // Six bytes at hand: at most six reads, with no length test. A sixth digit
                // makes the run too long whatever follows, an error at `ps` as for any longer
                // run (and `pe` is used only on success).
                let mut n = 0;
                while n < 6 {
                    let d = w[n].wrapping_sub(b'0');
                    if d > 9 {
                        break;
                    }
                    v = v * 10 + u32::from(d);
                    n += 1;
                }
                pe += n;
            } else {
                while let Some(d) = s.get(pe).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9) {
                    v = v.wrapping_mul(10).wrapping_add(u32::from(d));
                    pe += 1;
                }
            }
            port = Some(match u16::try_from(v) {
                Ok(p) if (1..=5).contains(&(pe - ps)) => p,
                _ => return Err(Error::new(ErrorKind::Port, ps)),
            });
            after = pe;
            i = skip_lws(s, pe);
        }
        match s.get(i) {
            None | Some(b';') => {}
            Some(_) => return Err(err(i)),
        }
        let raw = s.get(after..).unwrap_or_default();
        // The parameters the core relies on are checked (and the hot ones kept) in the same pass
        // that validates the list.
        let mut branch = None;
        let mut rport = Rport::Absent;
        let mut rport_name = None;
        let mut received = None;
        let params = Params::parse_visit_tokens(raw, |name, value, value_is_token| {
            let ok = match name.len() {
                6 if eq_lower_letters(name, b"branch") => {
                    branch = branch.or(value);
                    value_is_token
                }
                8 if eq_lower_letters(name, b"received") => {
                    let ip = value.and_then(Host::parse_ip);
                    received = received.or(ip);
                    ip.is_some()
                }
                5 if eq_lower_letters(name, b"maddr") => {
                    value.is_some_and(|v| Host::parse(v).is_ok())
                }
                3 if eq_lower_letters(name, b"ttl") => {
                    value.is_some_and(|v| parse_ttl(v).is_some())
                }
                5 if eq_lower_letters(name, b"rport") => {
                    let port = value.map(parse_port);
                    if rport == Rport::Absent {
                        rport_name = Some(name);
                        rport = match port {
                            None => Rport::Empty,
                            Some(Ok(p)) => Rport::Value(p),
                            Some(Err(_)) => Rport::Empty,
                        };
                    }
                    port.is_none_or(|p| p.is_ok())
                }
                _ => true,
            };
            if ok {
                Ok(())
            } else {
                Err(err(offset_in(raw, value.unwrap_or(name))))
            }
        })
        .map_err(|e| e.shifted(after))?;
        Ok(Via {
            protocol_name,
            protocol_version,
            transport,
            host,
            host_raw,
            port,
            params,
            raw: s.get(start..).unwrap_or_default(),
            branch,
            rport,
            rport_name,
            received,
        })
    }

    /// The `branch` parameter (transaction id), compared as bytes.
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.branch
    }

    /// True when the branch starts with the RFC 3261 magic cookie `z9hG4bK` (RFC 4475
    /// badbranch: a bare cookie counts).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with(MAGIC_COOKIE))
    }

    /// The `received` parameter as an address (validated at parse; IPv6 with or without
    /// brackets).
    pub fn received(&self) -> Option<IpAddr> {
        self.received
    }

    /// The `rport` parameter's name as written, if present (a slice of the parsed value).
    pub fn rport_name(&self) -> Option<&'a [u8]> {
        self.rport_name
    }

    /// The whole via-parm as parsed, without surrounding LWS (a slice of the parsed value).
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The RFC 3581 `rport` parameter.
    pub fn rport(&self) -> Rport {
        self.rport
    }

    pub fn maddr(&self) -> Option<Host<'a>> {
        self.params
            .get(b"maddr")
            .flatten()
            .and_then(|v| Host::parse(v).ok())
    }

    pub fn ttl(&self) -> Option<u8> {
        self.params.get(b"ttl").flatten().and_then(parse_ttl)
    }

    /// Case-insensitive transport comparison (`via.transport_is(b"udp")`).
    pub fn transport_is(&self, t: &[u8]) -> bool {
        self.transport.eq_ignore_ascii_case(t)
    }
}

fn parse_ttl(v: &[u8]) -> Option<u8> {
    if v.is_empty() || v.len() > 3 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    u8::try_from(v.iter().fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'))).ok()
}

fn token(s: &[u8], i: usize) -> Result<(&[u8], usize)> {
    let e = run(s, i, &TOKEN);
    if e == i {
        return Err(err(i.min(s.len())));
    }
    Ok((s.get(i..e).unwrap_or_default(), e))
}

fn slash(s: &[u8], i: usize) -> Result<usize> {
    let j = skip_lws(s, i);
    if s.get(j) != Some(&b'/') {
        return Err(err(j));
    }
    Ok(skip_lws(s, j + 1))
}

/// Iterates the comma-separated Vias of one Via header value (errors with offsets into `value`;
/// an empty value yields one `Via` error).
pub fn via_values(value: &[u8]) -> ViaValues<'_> {
    let (start, end) = trim_lws_range(value);
    ViaValues {
        split: split_comma(value),
        empty_at: (start == end).then_some(start),
    }
}

/// Iterator returned by [`via_values`].
#[derive(Clone, Debug)]
pub struct ViaValues<'a> {
    split: SplitComma<'a>,
    empty_at: Option<usize>,
}

impl<'a> Iterator for ViaValues<'a> {
    type Item = Result<Via<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        if let Some(at) = self.empty_at.take() {
            return Some(Err(err(at)));
        }
        Some(
            self.split
                .next()?
                .and_then(|(off, e)| Via::parse(e).map_err(|x| x.shifted(off))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn via(s: &[u8]) -> Via<'_> {
        Via::parse(s).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(s)))
    }
    fn bad(s: &[u8]) -> Error {
        Via::parse(s).unwrap_err()
    }

    #[test]
    fn sent_by_port_as_parse_port_reads_it() {
        for p in [
            &b""[..],
            b"0",
            b"5060",
            b"65535",
            b"65536",
            b"99999",
            b"123456",
            b"00005060",
            b"4294967296",
            b"18446744073709551621",
            b"5060x",
            b"x",
        ] {
            // With six bytes or more from the port on (read from a fixed window), and fewer
            // (the checked walk).
            for tail in [&b";branch=z9hG4bKx"[..], b";rport", b""] {
                if p.is_empty() && tail.is_empty() {
                    continue; // the value would end in LWS, trimmed before the sent-by
                }
                let v = [&b"SIP/2.0/UDP h: "[..], p, tail].concat();
                let digits = p.iter().take_while(|c| c.is_ascii_digit()).count();
                let got = Via::parse(&v);
                match parse_port(&p[..digits]) {
                    Err(e) => assert_eq!(got.unwrap_err(), e.shifted(15), "{v:?}"),
                    Ok(_) if digits < p.len() => {
                        assert_eq!(got.unwrap_err(), Error::new(ErrorKind::Via, 15 + digits))
                    }
                    Ok(port) => assert_eq!(got.unwrap().port, Some(port), "{v:?}"),
                }
            }
        }
    }

    #[test]
    fn rfc3261_examples() {
        let v = via(b" SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7");
        assert_eq!(v.protocol_name, b"SIP");
        assert_eq!(v.protocol_version, b"2.0");
        assert_eq!(v.transport, b"UDP");
        assert_eq!(v.host, Host::Name(b"erlang.bell-telephone.com"));
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some(&b"z9hG4bK87asdks7"[..]));
        assert!(v.has_rfc3261_branch());
        assert_eq!(
            v.raw(),
            b"SIP/2.0/UDP erlang.bell-telephone.com:5060;branch=z9hG4bK87asdks7"
        );
        assert_eq!(v.rport_name(), None);
        // The first of repeated parameters is the one reported; rport's name as written.
        let v = via(b"SIP/2.0/UDP h;RPort;branch=z9hG4bKa;rport=5;branch=z9hG4bKb  ");
        assert_eq!(v.branch(), Some(&b"z9hG4bKa"[..]));
        assert_eq!(
            (v.rport(), v.rport_name()),
            (Rport::Empty, Some(&b"RPort"[..]))
        );
        assert_eq!(
            v.raw(),
            b"SIP/2.0/UDP h;RPort;branch=z9hG4bKa;rport=5;branch=z9hG4bKb"
        );
        let v = via(b"SIP/2.0/UDP 192.0.2.1:5060 ;received=192.0.2.207\r\n ;branch=z9hG4bK77asjd");
        assert_eq!(v.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(
            v.received(),
            Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 207)))
        );
        assert_eq!(v.branch(), Some(&b"z9hG4bK77asjd"[..]));
        let v = via(b"SIP / 2.0 / UDP first.example.com: 4000;ttl=16\r\n  ;maddr=224.2.0.1 ;branch=z9hG4bKa7c6a8dlze.1");
        assert_eq!(v.port, Some(4000));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.maddr(), Some(Host::Ipv4(Ipv4Addr::new(224, 2, 0, 1))));
        // §24 call flow: rport (RFC 3581 §4 example).
        let v =
            via(b"SIP/2.0/UDP 10.1.1.1:4540;received=192.0.2.1;rport=9988;branch=z9hG4bKkjshdyff");
        assert_eq!(v.rport(), Rport::Value(9988));
        assert_eq!(
            via(b"SIP/2.0/UDP 10.1.1.1:4540;rport;branch=z9hG4bKx").rport(),
            Rport::Empty
        );
        assert_eq!(via(b"SIP/2.0/UDP 10.1.1.1").rport(), Rport::Absent);
        // IPv6 sent-by and received (RFC 5118 style).
        let v =
            via(b"SIP/2.0/TCP [2001:db8::9:1]:5061;branch=z9hG4bKas3-111;received=2001:db8::9:255");
        assert_eq!(
            v.host,
            Host::Ipv6("2001:db8::9:1".parse::<Ipv6Addr>().unwrap())
        );
        assert_eq!(v.host_raw, b"[2001:db8::9:1]");
        assert_eq!(v.port, Some(5061));
        assert_eq!(
            v.received(),
            Some("2001:db8::9:255".parse::<IpAddr>().unwrap())
        );
        let v = via(b"SIP/2.0/UDP [::1];received=[::2]");
        assert_eq!(v.received(), Some("::2".parse::<IpAddr>().unwrap()));
        assert!(via(b"sip/2.0/udp a.b").transport_is(b"UDP"));
    }

    #[test]
    fn common_transports_and_others_alike() {
        for (value, transport) in [
            (&b"SIP/2.0/UDP h"[..], &b"UDP"[..]),
            (b"SIP/2.0/TCP h", b"TCP"),
            (b"SIP/2.0/TLS h", b"TLS"),
            (b"SIP/2.0/udp h", b"udp"),
            (b"SIP/2.0/UDPX h", b"UDPX"),
            (b"SIP/2.0/UDP\th", b"UDP"),
            (b"SIP/2.0/SCTP h", b"SCTP"),
        ] {
            let v = via(value);
            assert_eq!(v.transport, transport, "{value:?}");
            assert_eq!(v.host_raw, b"h", "{value:?}");
        }
        assert_eq!(bad(b"SIP/2.0/UDP"), Error::new(ErrorKind::Via, 11));
    }

    #[test]
    fn rfc4475() {
        // wsinv: LWS and folds around the slashes, before the host and around `;`/`=`.
        let v = via(b"  SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw");
        assert_eq!(
            (v.protocol_name, v.protocol_version, v.transport),
            (&b"SIP"[..], &b"2.0"[..], &b"UDP"[..])
        );
        assert_eq!(v.host, Host::Ipv4(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(v.branch(), Some(&b"390skdjuw"[..]));
        assert!(!v.has_rfc3261_branch());
        let value = b"  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239";
        let vs: Vec<_> = via_values(value).collect::<Result<_>>().unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0].transport, b"TCP");
        assert_eq!(vs[0].host, Host::Name(b"spindle.example.com"));
        assert_eq!(vs[0].branch(), Some(&b"z9hG4bK9ikj8"[..]));
        assert_eq!(vs[1].host, Host::Ipv4(Ipv4Addr::new(192, 168, 255, 111)));
        assert_eq!(vs[1].branch(), Some(&b"z9hG4bK30239"[..]));
        // transports: unknown transports are tokens.
        for t in ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"] {
            let s = format!("SIP/2.0/{t} t1.example.com;branch=z9hG4bKkdjuw");
            assert_eq!(Via::parse(s.as_bytes()).unwrap().transport, t.as_bytes());
        }
        // intmeth / esc02: branch full of token characters.
        assert_eq!(
            via(b" SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~").branch(),
            Some(&b"z9hG4bK-.!%66*_+`'~"[..])
        );
        assert_eq!(
            via(b"SIP/2.0/TCP host.example.com;branch=z9hG4bK209%fzsnel234").branch(),
            Some(&b"z9hG4bK209%fzsnel234"[..])
        );
        // badbranch: a bare cookie is syntactically fine.
        assert!(via(b" SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").has_rfc3261_branch());
        // bcast: the broadcast address parses; the proxy decides.
        assert_eq!(
            via(b" SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23").host,
            Host::Ipv4(Ipv4Addr::BROADCAST)
        );
        // inv2543: no branch at all.
        assert_eq!(via(b" SIP/2.0/UDP iftgw.example.com").branch(), None);
        // scalarlg / longreq.
        let v = via(
            b" SIP/2.0/TCP host.example.com;received=192.0.2.5;branch=verylonglonglongbranchvalue",
        );
        assert_eq!(v.received(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 5))));
        // badinv01: extraneous separators.
        let r: Vec<_> = via_values(b" SIP/2.0/UDP 192.0.2.15;;,;,,").collect();
        assert_eq!(r[0], Err(Error::new(ErrorKind::Param, 24)));
        assert_eq!(r[1], Err(Error::new(ErrorKind::Via, 26)));
        assert_eq!(r[2], Err(Error::new(ErrorKind::Via, 28)));
    }

    #[test]
    fn errors() {
        assert_eq!(bad(b""), Error::new(ErrorKind::Via, 0));
        assert_eq!(bad(b"SIP/2.0"), Error::new(ErrorKind::Via, 7));
        assert_eq!(bad(b"SIP/2.0/"), Error::new(ErrorKind::Via, 8));
        assert_eq!(bad(b"SIP/2.0/UDP"), Error::new(ErrorKind::Via, 11));
        assert_eq!(bad(b"SIP/2.0/UDP "), Error::new(ErrorKind::Via, 11));
        assert_eq!(bad(b"SIP/2.0/UDPa.com"), Error::new(ErrorKind::Via, 16));
        assert_eq!(bad(b"SIP 2.0/UDP a.com"), Error::new(ErrorKind::Via, 4));
        assert_eq!(bad(b"SIP/2.0/UDP a.com:"), Error::new(ErrorKind::Port, 18));
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com:99999"),
            Error::new(ErrorKind::Port, 18)
        );
        assert_eq!(bad(b"SIP/2.0/UDP a.com x"), Error::new(ErrorKind::Via, 18));
        assert_eq!(bad(b"SIP/2.0/UDP a_b.com"), Error::new(ErrorKind::Via, 13));
        assert_eq!(bad(b"SIP/2.0/UDP [::1"), Error::new(ErrorKind::Host, 16));
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com;branch"),
            Error::new(ErrorKind::Via, 18)
        );
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com;branch=\"x\""),
            Error::new(ErrorKind::Via, 25)
        );
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com;received=a.com"),
            Error::new(ErrorKind::Via, 27)
        );
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com;ttl=256"),
            Error::new(ErrorKind::Via, 22)
        );
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com;rport=x"),
            Error::new(ErrorKind::Via, 24)
        );
        assert_eq!(
            bad(b"SIP/2.0/UDP a.com;maddr=-x"),
            Error::new(ErrorKind::Via, 24)
        );
        assert_eq!(
            via_values(b"  ").next(),
            Some(Err(Error::new(ErrorKind::Via, 2)))
        );
    }

    proptest! {
        #[test]
        fn via_never_panics(v in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b"SIP/2.0UDP []:;=,\" \t\r\nbranchz9.1".to_vec())], 0..96)) {
            for r in via_values(&v) {
                match r {
                    Ok(x) => { let _ = (x.branch(), x.received(), x.rport(), x.maddr(), x.ttl()); }
                    Err(e) => prop_assert!(e.offset <= v.len()),
                }
            }
            if let Err(e) = Via::parse(&v) { prop_assert!(e.offset <= v.len()); }
        }

        #[test]
        fn via_print_reparse(
            transport in "UDP|TCP|TLS|SCTP|WS|[A-Z]{1,5}",
            host in prop_oneof![
                "[a-z]{1,6}(\\.[a-z]{1,4}){0,2}",
                any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
                any::<[u16; 8]>().prop_map(|g| format!("[{}]", Ipv6Addr::from(g))),
            ],
            port in proptest::option::of(any::<u16>()),
            branch in proptest::option::of("z9hG4bK[a-zA-Z0-9.!%*_+`'~-]{0,10}"),
            rport in prop_oneof![Just(Rport::Absent), Just(Rport::Empty), any::<u16>().prop_map(Rport::Value)],
            received in proptest::option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
            ws in "[ \t]{0,2}(\r\n )?",
        ) {
            let mut s = format!("SIP{ws}/{ws}2.0{ws}/{ws}{transport} {ws}{host}");
            if let Some(p) = port { s.push_str(&format!("{ws}:{ws}{p}")); }
            if let Some(b) = &branch { s.push_str(&format!("{ws};{ws}branch{ws}={ws}{b}")); }
            match rport {
                Rport::Absent => {}
                Rport::Empty => s.push_str(";rport"),
                Rport::Value(p) => s.push_str(&format!(";rport={p}")),
            }
            if let Some(r) = received { s.push_str(&format!(";received={r}")); }
            let v = Via::parse(s.as_bytes()).unwrap();
            prop_assert_eq!(v.transport, transport.as_bytes());
            prop_assert_eq!(v.host_raw, host.as_bytes());
            prop_assert_eq!(v.port, port);
            prop_assert_eq!(v.branch(), branch.as_deref().map(str::as_bytes));
            prop_assert_eq!(v.rport(), rport);
            prop_assert_eq!(v.received(), received.map(IpAddr::V4));
            // Print canonically and parse again.
            let mut p = format!("{}/{}/{} {}", "SIP", "2.0", core::str::from_utf8(v.transport).unwrap(), v.host);
            if let Some(port) = v.port { p.push_str(&format!(":{port}")); }
            for (n, val) in v.params.iter() {
                p.push(';'); p.push_str(core::str::from_utf8(n).unwrap());
                if let Some(val) = val { p.push('='); p.push_str(core::str::from_utf8(val).unwrap()); }
            }
            let w = Via::parse(p.as_bytes()).unwrap();
            prop_assert!(w.host.matches(&v.host));
            prop_assert_eq!((w.port, w.branch(), w.rport(), w.received()), (v.port, v.branch(), v.rport(), v.received()));
        }
    }
}
