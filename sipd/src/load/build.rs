//! Message builders: requests of the UAC and the blaster, responses of the UAS. They write into
//! the caller's buffer through [`Out`] (no allocation), and every identifier they print comes
//! from small numbers (run id, call number, slot), so a retransmission is rebuilt byte for byte
//! instead of being stored.

use std::net::{IpAddr, SocketAddr};

use crate::proxy::writer::Out;
use crate::sip::HeaderName;
use crate::sip::message::Header;
use crate::sip::name_addr::NameAddr;

/// Every UAC branch starts with this (the magic cookie plus our mark).
pub const BRANCH_PREFIX: &[u8] = b"z9hG4bKld";

/// What a UAC branch encodes: whose (run), which call (slot, generation), which transaction.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BranchId {
    pub run: u32,
    pub slot: u32,
    pub generation: u32,
    pub txn: u32,
}

impl BranchId {
    pub fn put(&self, out: &mut Out<'_>) {
        out.put(BRANCH_PREFIX);
        put_hex(out, u64::from(self.run));
        out.put(b".");
        put_hex(out, u64::from(self.slot));
        out.put(b".");
        put_hex(out, u64::from(self.generation));
        out.put(b".");
        put_hex(out, u64::from(self.txn));
    }

    /// Parses a branch written by [`BranchId::put`].
    pub fn parse(branch: &[u8]) -> Option<BranchId> {
        let rest = branch.strip_prefix(BRANCH_PREFIX)?;
        let mut parts = rest.split(|&b| b == b'.');
        let mut next = || parse_hex(parts.next()?);
        let id = BranchId {
            run: u32::try_from(next()?).ok()?,
            slot: u32::try_from(next()?).ok()?,
            generation: u32::try_from(next()?).ok()?,
            txn: u32::try_from(next()?).ok()?,
        };
        Some(id)
    }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 16 {
        return None;
    }
    s.iter().try_fold(0u64, |n, &c| {
        let d = (c as char).to_digit(16)?;
        Some(n << 4 | u64::from(d))
    })
}

/// Lower-case hex without leading zeros.
pub fn put_hex(out: &mut Out<'_>, n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = HEX[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put(&digits[i..]);
}

/// A Request-URI (or AOR) template: literal text with `{n}` replaced by the call number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(Vec<u8>),
    Number,
}

impl UriTemplate {
    /// Parses `sip:+4930{n}@biloxi.example.com`; checks that an instance is a valid SIP URI.
    pub fn parse(s: &str) -> Result<UriTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("{n}") {
            if i > 0 {
                parts.push(Part::Lit(rest.as_bytes()[..i].to_vec()));
            }
            parts.push(Part::Number);
            rest = &rest[i + 3..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.as_bytes().to_vec()));
        }
        let t = UriTemplate { parts };
        let mut buf = [0u8; 1024];
        let mut out = Out::new(&mut buf);
        t.put(&mut out, 1234);
        let len = out.finish().ok_or("URI template too long")?;
        let uri = crate::sip::uri::Uri::parse(&buf[..len])
            .map_err(|e| format!("`{s}` is not a valid URI: {}", e.kind.explain()))?;
        if !uri.scheme().is_sip() || uri.host().is_none() {
            return Err(format!("`{s}` is not a sip: or sips: URI with a host"));
        }
        Ok(t)
    }

    pub fn put(&self, out: &mut Out<'_>, n: u64) {
        for p in &self.parts {
            match p {
                Part::Lit(b) => out.put(b),
                Part::Number => out.put_u64(n),
            }
        }
    }

    /// The rendered URI for call `n`.
    pub fn render(&self, n: u64) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let mut out = Out::new(&mut buf);
        self.put(&mut out, n);
        let len = out.len();
        buf[..len].to_vec()
    }
}

/// Everything a UAC or blaster request carries.
pub struct Request<'a> {
    pub method: &'a [u8],
    pub ruri: &'a [u8],
    /// Our Via sent-by (the bound address).
    pub local: SocketAddr,
    pub branch: BranchId,
    pub from_uri: &'a [u8],
    /// From tag and Call-ID are derived from (run, call number).
    pub run: u32,
    pub number: u64,
    pub to_uri: &'a [u8],
    pub to_tag: Option<&'a [u8]>,
    pub cseq: u32,
    /// Complete header lines (with CRLF) to add: Route, Contact, Expires, Authorization...
    pub extra: &'a [u8],
    /// Put a Contact with our address (dialog-creating requests, REGISTER).
    pub contact_user: Option<&'a [u8]>,
    /// `Some((content-type, body))`.
    pub body: Option<(&'a [u8], &'a [u8])>,
}

pub fn put_call_id(out: &mut Out<'_>, run: u32, number: u64, local: IpAddr) {
    put_hex(out, u64::from(run));
    out.put(b"-");
    put_hex(out, number);
    out.put(b"@");
    out.put_ip(local);
}

pub fn put_from_tag(out: &mut Out<'_>, run: u32, number: u64) {
    out.put(b"ld");
    put_hex(out, u64::from(run));
    out.put(b"x");
    put_hex(out, number);
}

pub fn write_request(buf: &mut [u8], r: &Request<'_>) -> Option<usize> {
    let mut out = Out::new(buf);
    out.put(r.method);
    out.put(b" ");
    out.put(r.ruri);
    out.put(b" SIP/2.0\r\nVia: SIP/2.0/UDP ");
    out.put_hostport(r.local);
    out.put(b";branch=");
    r.branch.put(&mut out);
    out.put(b";rport\r\nMax-Forwards: 70\r\nFrom: <");
    out.put(r.from_uri);
    out.put(b">;tag=");
    put_from_tag(&mut out, r.run, r.number);
    out.put(b"\r\nTo: <");
    out.put(r.to_uri);
    out.put(b">");
    if let Some(tag) = r.to_tag {
        out.put(b";tag=");
        out.put(tag);
    }
    out.put(b"\r\nCall-ID: ");
    put_call_id(&mut out, r.run, r.number, r.local.ip());
    out.put(b"\r\nCSeq: ");
    out.put_u64(u64::from(r.cseq));
    out.put(b" ");
    out.put(r.method);
    out.put(b"\r\n");
    if let Some(user) = r.contact_user {
        out.put(b"Contact: <sip:");
        out.put(user);
        out.put(b"@");
        out.put_hostport(r.local);
        out.put(b">\r\n");
    }
    out.put(r.extra);
    out.put(b"User-Agent: sipd-load\r\n");
    match r.body {
        Some((ctype, body)) => {
            out.put(b"Content-Type: ");
            out.put(ctype);
            out.put(b"\r\nContent-Length: ");
            out.put_u64(body.len() as u64);
            out.put(b"\r\n\r\n");
            out.put(body);
        }
        None => out.put(b"Content-Length: 0\r\n\r\n"),
    }
    out.finish()
}

/// A small SDP (G.711 audio) for `ip`, session id `id`; returns its length.
pub fn write_sdp(buf: &mut [u8], ip: IpAddr, id: u64) -> usize {
    let mut out = Out::new(buf);
    let family: &[u8] = if ip.is_ipv4() { b"IP4 " } else { b"IP6 " };
    out.put(b"v=0\r\no=- ");
    out.put_u64(id);
    out.put(b" 1 IN ");
    out.put(family);
    put_bare_ip(&mut out, ip);
    out.put(b"\r\ns=-\r\nc=IN ");
    out.put(family);
    put_bare_ip(&mut out, ip);
    out.put(b"\r\nt=0 0\r\nm=audio ");
    out.put_u64(10_000 + 2 * (id % 20_000));
    out.put(b" RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n");
    out.len()
}

fn put_bare_ip(out: &mut Out<'_>, ip: IpAddr) {
    let mut s = crate::proxy::writer::StackStr::<48>::new();
    let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{ip}"));
    out.put(s.as_bytes());
}

/// What a UAS response adds to the request's copied headers.
pub struct Response<'a> {
    pub code: u16,
    pub reason: &'a [u8],
    /// Added to To when the request's To has no tag.
    pub to_tag: &'a [u8],
    /// Contact with this user at our address (dialog-creating responses).
    pub contact: Option<(&'a [u8], SocketAddr)>,
    /// Complete extra header lines (with CRLF).
    pub extra: &'a [u8],
    pub body: Option<(&'a [u8], &'a [u8])>,
    /// Copy the request's Record-Route lines (dialog-creating responses, RFC 3261 §12.1.1).
    pub record_route: bool,
}

/// Writes a response to the request `req` (its bytes and parsed headers), RFC 3261 §8.2.6: every
/// Via in order, From, To (with our tag), Call-ID, CSeq copied.
pub fn write_response(
    buf: &mut [u8],
    req: &[u8],
    headers: &[Header<'_>],
    r: &Response<'_>,
) -> Option<usize> {
    let mut out = Out::new(buf);
    out.put(b"SIP/2.0 ");
    out.put_u64(u64::from(r.code));
    out.put(b" ");
    out.put(r.reason);
    out.put(b"\r\n");
    for h in headers {
        let line = &req[h.start as usize..h.end as usize];
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                out.put(line)
            }
            HeaderName::RecordRoute if r.record_route => out.put(line),
            HeaderName::To => {
                let has_tag = NameAddr::parse(h.value).is_ok_and(|n| n.tag().is_some());
                if has_tag || r.code == 100 {
                    out.put(line);
                } else {
                    let value_end = h.value_start as usize + h.value.len();
                    out.put(&req[h.start as usize..value_end]);
                    out.put(b";tag=");
                    out.put(r.to_tag);
                    out.put(&req[value_end..h.end as usize]);
                }
            }
            _ => {}
        }
    }
    if let Some((user, addr)) = r.contact {
        out.put(b"Contact: <sip:");
        out.put(user);
        out.put(b"@");
        out.put_hostport(addr);
        out.put(b">\r\n");
    }
    out.put(r.extra);
    out.put(b"Server: sipd-load\r\n");
    match r.body {
        Some((ctype, body)) => {
            out.put(b"Content-Type: ");
            out.put(ctype);
            out.put(b"\r\nContent-Length: ");
            out.put_u64(body.len() as u64);
            out.put(b"\r\n\r\n");
            out.put(body);
        }
        None => out.put(b"Content-Length: 0\r\n\r\n"),
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::parse_datagram;
    use crate::sip::validate::validate;

    #[test]
    fn branch_round_trips() {
        let id = BranchId {
            run: 0x8abc_def0,
            slot: 17,
            generation: 3,
            txn: 1,
        };
        let mut buf = [0u8; 64];
        let mut out = Out::new(&mut buf);
        id.put(&mut out);
        let n = out.len();
        assert_eq!(&buf[..n], b"z9hG4bKld8abcdef0.11.3.1");
        assert_eq!(BranchId::parse(&buf[..n]), Some(id));
        assert_eq!(BranchId::parse(b"z9hG4bKld1.2.3"), None);
        assert_eq!(BranchId::parse(b"z9hG4bKsd1.2.3.4"), None);
    }

    #[test]
    fn template_renders_and_rejects_bad_uris() {
        let t = UriTemplate::parse("sip:+4930{n}@biloxi.example.com").unwrap();
        assert_eq!(t.render(42), b"sip:+493042@biloxi.example.com");
        assert!(UriTemplate::parse("http://x/{n}").is_err());
        assert!(UriTemplate::parse("sip:{n}@").is_err());
        assert_eq!(
            UriTemplate::parse("sip:bob@b.example").unwrap().render(1),
            b"sip:bob@b.example"
        );
    }

    #[test]
    fn request_and_response_are_valid_sip() {
        let mut sdp = [0u8; 512];
        let local: SocketAddr = "127.0.0.1:5070".parse().unwrap();
        let sdp_len = write_sdp(&mut sdp, local.ip(), 7);
        let ruri = b"sip:+49307@biloxi.example.com";
        let r = Request {
            method: b"INVITE",
            ruri,
            local,
            branch: BranchId {
                run: 0x8000_0001,
                slot: 0,
                generation: 1,
                txn: 1,
            },
            from_uri: b"sip:load@127.0.0.1",
            run: 0x8000_0001,
            number: 7,
            to_uri: ruri,
            to_tag: None,
            cseq: 1,
            extra: b"",
            contact_user: Some(b"load"),
            body: Some((b"application/sdp", &sdp[..sdp_len])),
        };
        let mut buf = [0u8; 2048];
        let len = write_request(&mut buf, &r).unwrap();
        let mut hs = [Header::EMPTY; 32];
        let msg = parse_datagram(&buf[..len], &mut hs).unwrap();
        validate(&msg).unwrap();
        assert_eq!(
            msg.value(HeaderName::CallId),
            Some(&b"80000001-7@127.0.0.1"[..])
        );
        assert_eq!(msg.body().len(), sdp_len);

        let mut resp = [0u8; 2048];
        let rlen = write_response(
            &mut resp,
            &buf[..len],
            msg.headers(),
            &Response {
                code: 200,
                reason: b"OK",
                to_tag: b"abc",
                contact: Some((b"uas", "127.0.0.3:5060".parse().unwrap())),
                extra: b"",
                body: Some((b"application/sdp", &sdp[..sdp_len])),
                record_route: true,
            },
        )
        .unwrap();
        let mut hs2 = [Header::EMPTY; 32];
        let m2 = parse_datagram(&resp[..rlen], &mut hs2).unwrap();
        validate(&m2).unwrap();
        assert_eq!(m2.status(), Some(200));
        let to = NameAddr::parse(m2.value(HeaderName::To).unwrap()).unwrap();
        assert_eq!(to.tag(), Some(&b"abc"[..]));
        assert_eq!(m2.value(HeaderName::Via), msg.value(HeaderName::Via));
    }
}
