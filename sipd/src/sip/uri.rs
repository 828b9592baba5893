//! URIs: `sip:`/`sips:` (RFC 3261 §19.1, §25), `tel:` (RFC 3966) and any other absolute URI
//! (kept raw, checked loosely: a proxy answers 416 for schemes it does not route).
//!
//! [`Uri::parse`] validates the whole URI once and keeps zero-copy views of its parts. The user
//! and password keep their `%` escapes (validated: `%` must be followed by two hex digits); use
//! [`unescape_into`] where the unescaped bytes are needed.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::{Error, ErrorKind, Result};
use super::params::Params;
use super::values::{ALPHANUM, HNV, HOSTNAME, PASSWORD, USER, run, run_escaped, trim_lws_range};

/// A URI scheme. `sip`, `sips` and `tel` are recognised case-insensitively.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Scheme<'a> {
    Sip,
    Sips,
    Tel,
    /// Any other scheme, raw as written (`http`, `isbn`, `im`, ...).
    Other(&'a [u8]),
}

impl<'a> Scheme<'a> {
    /// The scheme name: canonical lower case for the known ones, raw for `Other`.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Scheme::Sip => b"sip",
            Scheme::Sips => b"sips",
            Scheme::Tel => b"tel",
            Scheme::Other(s) => s,
        }
    }

    /// `sip` or `sips`.
    pub fn is_sip(&self) -> bool {
        matches!(self, Scheme::Sip | Scheme::Sips)
    }
}

/// A host: a domain name (RFC 3261 `hostname`), an IPv4 address or an IPv6 reference (`[...]`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A hostname, raw as written (compare with [`Host::eq_name`]).
    Name(&'a [u8]),
    Ipv4(Ipv4Addr),
    /// From an IPv6 reference `[...]` (the brackets are not part of the address).
    Ipv6(Ipv6Addr),
}

impl<'a> Host<'a> {
    /// Parses exactly `host = hostname / IPv4address / IPv6reference`. A dotted quad of
    /// 1-3 digit groups must be a valid IPv4 address (`256.1.1.1` is an error, not a name).
    /// Errors: `Host` at the first offending byte.
    pub fn parse(s: &'a [u8]) -> Result<Host<'a>> {
        match s.first() {
            None => Err(Error::new(ErrorKind::Host, 0)),
            Some(b'[') => match s {
                [b'[', inner @ .., b']'] => parse_ipv6(inner)
                    .map(Host::Ipv6)
                    .ok_or(Error::new(ErrorKind::Host, 1)),
                _ => Err(Error::new(ErrorKind::Host, s.len())),
            },
            Some(c) if c.is_ascii_digit() => {
                if let Some(a) = parse_ipv4(s) {
                    return Ok(Host::Ipv4(a));
                }
                if s.iter().all(|&c| c.is_ascii_digit() || c == b'.') {
                    // Digits and dots only: an address or nothing, never a name.
                    return Err(Error::new(ErrorKind::Host, 0));
                }
                check_hostname(s).map(|()| Host::Name(s))
            }
            Some(_) => check_hostname(s).map(|()| Host::Name(s)),
        }
    }

    /// Parses an IP address without brackets, or an IPv6 reference (Via `received`).
    pub fn parse_ip(s: &[u8]) -> Option<std::net::IpAddr> {
        if let Some(a) = parse_ipv4(s) {
            return Some(a.into());
        }
        let inner = match s {
            [b'[', inner @ .., b']'] => inner,
            _ => s,
        };
        parse_ipv6(inner).map(Into::into)
    }

    /// Case-insensitive comparison of a `Name` host with `name` (a trailing root `.` on either
    /// side is ignored). Addresses never equal a name.
    pub fn eq_name(&self, name: &[u8]) -> bool {
        match self {
            Host::Name(n) => strip_dot(n).eq_ignore_ascii_case(strip_dot(name)),
            _ => false,
        }
    }

    /// RFC 3261 §19.1.4 host equality: names case-insensitively, addresses by value.
    pub fn matches(&self, other: &Host<'_>) -> bool {
        match (self, other) {
            (Host::Name(a), Host::Name(b)) => strip_dot(a).eq_ignore_ascii_case(strip_dot(b)),
            (Host::Ipv4(a), Host::Ipv4(b)) => a == b,
            (Host::Ipv6(a), Host::Ipv6(b)) => a == b,
            _ => false,
        }
    }
}

fn strip_dot(n: &[u8]) -> &[u8] {
    n.strip_suffix(b".").unwrap_or(n)
}

impl fmt::Display for Host<'_> {
    /// The host as it goes on the wire: names as written, IPv6 in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name(n) => f.write_str(&String::from_utf8_lossy(n)),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// RFC 3261 `IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`, each <= 255
/// (leading zeros allowed, unlike `std`'s parser).
fn parse_ipv4(s: &[u8]) -> Option<Ipv4Addr> {
    parse_ipv4_prefix(s).and_then(|(a, len)| (len == s.len()).then_some(a))
}

/// The IPv4 address at the start of `s` and its length, up to the first byte that is neither a
/// digit nor a dot; `None` if those bytes are not an [`parse_ipv4`] address.
fn parse_ipv4_prefix(s: &[u8]) -> Option<(Ipv4Addr, usize)> {
    // With 16 bytes at hand (the usual case: a Via's sent-by is followed by its port and
    // parameters) every index the walk reads is below 16: at most 4 groups of 3 digits and 3
    // dots (15 bytes), then one byte more. The walk reads the fixed window without a length
    // test per byte; `& 15` keeps the index in the window (it never changes one below 16).
    if let Some(w) = s.first_chunk::<16>() {
        return ipv4_walk(|i| Some(w[i & 15]));
    }
    ipv4_walk(|i| s.get(i).copied())
}

/// [`parse_ipv4_prefix`] over the bytes `at` answers (`None` past the end).
#[inline(always)]
fn ipv4_walk(at: impl Fn(usize) -> Option<u8>) -> Option<(Ipv4Addr, usize)> {
    // Group by group: up to three digits then a dot, so no per-byte digit count or overflow cap.
    let digit = |i: usize| at(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d <= 9);
    let mut octets = [0u8; 4];
    let mut len = 0;
    for (group, octet) in octets.iter_mut().enumerate() {
        if group > 0 {
            if at(len) != Some(b'.') {
                return None;
            }
            len += 1;
        }
        let mut value = u32::from(digit(len)?);
        len += 1;
        for _ in 0..2 {
            let Some(d) = digit(len) else { break };
            value = value * 10 + u32::from(d);
            len += 1;
        }
        // A fourth digit, or a dot after the last group, makes it no address.
        if value > 255 || digit(len).is_some() {
            return None;
        }
        *octet = value as u8;
    }
    if at(len) == Some(b'.') {
        return None;
    }
    Some((Ipv4Addr::from(octets), len))
}

/// The host starting at `s[start]` (not an IPv6 reference), which runs to the first byte that
/// cannot be in a hostname or IPv4 address (not alphanumeric, `-` or `.`): `(host, end)`, exactly
/// [`Host::parse`] of that run (errors relative to `start`). The common shapes (a letter-led name
/// without `-`, a dotted quad) are found and checked in one pass instead of a run then a parse.
// Always inline: two callers (URI, Via sent-by), and the call's register saves and returned
// `Result` cost about a third of a short host's parse.
#[inline(always)]
pub(crate) fn parse_host_run(s: &[u8], start: usize) -> Result<(Host<'_>, usize)> {
    let rest = s.get(start..).unwrap_or_default();
    let ends_run = |len: usize| !rest.get(len).is_some_and(|&c| HOSTNAME[c as usize]);
    match rest.first() {
        Some(c) if c.is_ascii_alphabetic() => {
            if let Some(len) = simple_hostname_len(rest)
                && ends_run(len)
            {
                return Ok((Host::Name(&rest[..len]), start + len));
            }
        }
        Some(c) if c.is_ascii_digit() => {
            if let Some(w) = rest.first_chunk::<16>() {
                // The address is at most 15 bytes: the byte after it is in the window too.
                if let Some((a, len)) = ipv4_walk(|i| Some(w[i & 15]))
                    && !HOSTNAME[w[len & 15] as usize]
                {
                    return Ok((Host::Ipv4(a), start + len));
                }
            } else if let Some((a, len)) = parse_ipv4_prefix(rest)
                && ends_run(len)
            {
                return Ok((Host::Ipv4(a), start + len));
            }
        }
        _ => {}
    }
    let end = run(s, start, &HOSTNAME);
    let host = Host::parse(s.get(start..end).unwrap_or_default())?;
    Ok((host, end))
}

/// RFC 3261 `IPv6address` (hex groups, `::`, optional trailing dotted IPv4).
fn parse_ipv6(s: &[u8]) -> Option<Ipv6Addr> {
    if !s
        .iter()
        .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
    {
        return None;
    }
    core::str::from_utf8(s).ok()?.parse().ok()
}

/// `hostname = *( domainlabel "." ) toplabel [ "." ]`; labels are alphanum and `-`, not starting
/// or ending with `-`; the top label starts with a letter.
fn check_hostname(s: &[u8]) -> Result<()> {
    if simple_hostname_len(s) == Some(s.len()) {
        return Ok(());
    }
    check_hostname_exact(s)
}

/// Length of the hostname at the start of `s` in the common shape: letters and digits in labels
/// split by single dots, an optional root dot, no `-` (whose placement rules
/// [`check_hostname_exact`] checks), the top label starting with a letter; it ends at the first
/// byte that is not alphanumeric or `.`. `None` for any other shape (which may still be valid).
#[inline]
fn simple_hostname_len(s: &[u8]) -> Option<usize> {
    // Label by label: a tight loop over the alphanumerics (a table: one load a byte), then the
    // byte that ended the label.
    let mut len = 0;
    let mut label = 0;
    let mut top_label = 0;
    loop {
        let label_start = len;
        while s.get(len).is_some_and(|&c| ALPHANUM[c as usize]) {
            len += 1;
        }
        let empty = len == label_start;
        match s.get(len) {
            Some(b'.') if !empty => {
                top_label = label;
                len += 1;
                label = len;
            }
            Some(b'.' | b'-') => return None,
            _ => {
                // An empty last label: the name ended with a root dot (or is empty), and the top
                // label is the one before it.
                let top = if empty { top_label } else { label };
                return (len > 0 && s[top].is_ascii_alphabetic()).then_some(len);
            }
        }
    }
}

/// [`check_hostname`] byte by byte, with the precise error offsets.
fn check_hostname_exact(s: &[u8]) -> Result<()> {
    let body = strip_dot(s);
    if body.is_empty() {
        return Err(Error::new(ErrorKind::Host, 0));
    }
    // One pass. Within a label a bad byte is reported before a leading `-`, which is reported
    // before a trailing one (the order the error offsets are specified in).
    let mut label_start = 0;
    let mut leading_dash = false;
    let end_label = |start: usize, end: usize, leading_dash: bool| -> Result<()> {
        if end == start || leading_dash {
            return Err(Error::new(ErrorKind::Host, start));
        }
        if body[end - 1] == b'-' {
            return Err(Error::new(ErrorKind::Host, end - 1));
        }
        Ok(())
    };
    for (i, &c) in body.iter().enumerate() {
        match c {
            b'.' => {
                end_label(label_start, i, leading_dash)?;
                label_start = i + 1;
                leading_dash = false;
            }
            b'-' => leading_dash |= i == label_start,
            c if c.is_ascii_alphanumeric() => {}
            _ => return Err(Error::new(ErrorKind::Host, i)),
        }
    }
    end_label(label_start, body.len(), leading_dash)?;
    if !body[label_start].is_ascii_alphabetic() {
        return Err(Error::new(ErrorKind::Host, label_start));
    }
    Ok(())
}

/// Parses an RFC 3261 `port` (`1*DIGIT`, at most 65535). Errors: `Port` at offset 0.
pub fn parse_port(s: &[u8]) -> Result<u16> {
    if s.is_empty() || s.len() > 5 {
        return Err(Error::new(ErrorKind::Port, 0));
    }
    // One pass: a non-digit wraps `c - b'0'` above 9.
    let mut v = 0u32;
    for &c in s {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return Err(Error::new(ErrorKind::Port, 0));
        }
        v = v * 10 + u32::from(d);
    }
    u16::try_from(v).map_err(|_| Error::new(ErrorKind::Port, 0))
}

/// A parsed URI borrowing its bytes. All parts are raw (escapes kept).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    raw: &'a [u8],
    scheme: Scheme<'a>,
    rest: &'a [u8],
    user: Option<&'a [u8]>,
    password: Option<&'a [u8]>,
    host: Option<Host<'a>>,
    host_raw: &'a [u8],
    port: Option<u16>,
    params: Params<'a>,
    headers: Option<&'a [u8]>,
    number: Option<&'a [u8]>,
}

/// `sip:` as a little-endian word, and the bits that fold its letters to lower case (a byte
/// `c` has `c | 0x20 == b's'` only for `S` and `s`; the colon is compared exactly).
const SIP_LOWER: u32 = u32::from_le_bytes(*b"sip:");
const SIP_FOLD: u32 = u32::from_le_bytes([0x20, 0x20, 0x20, 0]);

static SCHEME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.';
        c += 1;
    }
    t
};

impl<'a> Uri<'a> {
    /// Parses a URI, ignoring leading and trailing LWS (none is allowed inside). Errors (offset
    /// into `input`): `Uri` for the scheme, userinfo, headers or a bad `%` escape, `Host`,
    /// `Port`, `Param` for the URI parameters.
    pub fn parse(input: &'a [u8]) -> Result<Uri<'a>> {
        let (start, end) = trim_lws_range(input);
        let s = input.get(..end).unwrap_or_default();
        // Nearly always `sip:` (any case): the scheme walk below would end at its colon.
        let sip = s
            .get(start..start + 4)
            .is_some_and(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) | SIP_FOLD == SIP_LOWER);
        let se = if sip {
            start + 3
        } else {
            run(s, start, &SCHEME)
        };
        // A matched `sip:` starts with a letter and has its colon at `se`.
        if !sip {
            if !s.get(start).is_some_and(u8::is_ascii_alphabetic) {
                return Err(Error::new(ErrorKind::Uri, start));
            }
            if s.get(se) != Some(&b':') {
                return Err(Error::new(ErrorKind::Uri, se.min(end)));
            }
        }
        let name = s.get(start..se).unwrap_or_default();
        // `sip` already matched (any case): what the first compare below would find.
        let scheme = if sip || name.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if name.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if name.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else {
            Scheme::Other(name)
        };
        let mut uri = Uri {
            raw: s.get(start..).unwrap_or_default(),
            scheme,
            rest: s.get(se + 1..).unwrap_or_default(),
            user: None,
            password: None,
            host: None,
            host_raw: b"",
            port: None,
            params: Params::empty(),
            headers: None,
            number: None,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(s, se + 1)?,
            Scheme::Tel => uri.parse_tel(s, se + 1)?,
            Scheme::Other(_) => {
                // absoluteURI, loosely: a non-empty run of visible ASCII other than `<>"`.
                if uri.rest.is_empty() {
                    return Err(Error::new(ErrorKind::Uri, se + 1));
                }
                if let Some(p) = uri
                    .rest
                    .iter()
                    .position(|&c| !(0x21..0x7f).contains(&c) || matches!(c, b'<' | b'>' | b'"'))
                {
                    return Err(Error::new(ErrorKind::Uri, se + 1 + p));
                }
            }
        }
        Ok(uri)
    }

    /// `s[rs..]` is everything after `sip:`.
    fn parse_sip(&mut self, s: &'a [u8], rs: usize) -> Result<()> {
        let end = s.len();
        let rest = s.get(rs..).unwrap_or_default();
        // `@` cannot appear unescaped after the userinfo (not in host, params or headers), so
        // the first `@` ends the userinfo even when the user contains `;` or `?` (RFC 4475
        // semiuri, intmeth).
        let mut hp = rs;
        // Nearly always a user without escapes or password right before the `@`: that `@` is
        // then the first one (no user byte is an `@`), and the walk below would find the same.
        let user_end = run(s, rs, &USER);
        if user_end > rs && s.get(user_end) == Some(&b'@') {
            self.user = s.get(rs..user_end);
            hp = user_end + 1;
        } else if let Some(at) = memchr::memchr(b'@', rest).map(|p| rs + p) {
            let ue = run_escaped(s, rs, &USER, ErrorKind::Uri)?;
            if ue == rs {
                return Err(Error::new(ErrorKind::Uri, rs));
            }
            self.user = s.get(rs..ue);
            let mut i = ue;
            if s.get(i) == Some(&b':') {
                let pe = run_escaped(s, i + 1, &PASSWORD, ErrorKind::Uri)?;
                self.password = s.get(i + 1..pe);
                i = pe;
            }
            if i != at {
                return Err(Error::new(ErrorKind::Uri, i));
            }
            hp = at + 1;
        }
        // host
        let (host, he) = if s.get(hp) == Some(&b'[') {
            let he = match memchr::memchr(b']', s.get(hp..).unwrap_or_default()) {
                Some(p) => hp + p + 1,
                None => return Err(Error::new(ErrorKind::Host, hp)),
            };
            (Host::parse(s.get(hp..he).unwrap_or_default()), he)
        } else {
            match parse_host_run(s, hp) {
                Ok((host, he)) => (Ok(host), he),
                Err(e) => (Err(e), hp),
            }
        };
        self.host_raw = s.get(hp..he).unwrap_or_default();
        self.host = Some(host.map_err(|e| e.shifted(hp))?);
        let mut i = he;
        if s.get(i) == Some(&b':') {
            let pe = run(s, i + 1, &DIGIT);
            self.port = Some(
                parse_port(s.get(i + 1..pe).unwrap_or_default()).map_err(|e| e.shifted(i + 1))?,
            );
            i = pe;
        }
        match s.get(i) {
            None | Some(b';' | b'?') => {}
            Some(_) => {
                let kind = if self.port.is_some() {
                    ErrorKind::Port
                } else {
                    ErrorKind::Host
                };
                return Err(Error::new(kind, i));
            }
        }
        let (params, len) = Params::parse_uri_until_query(s.get(i..).unwrap_or_default())
            .map_err(|e| e.shifted(i))?;
        self.params = params;
        let pe = i + len;
        if pe < end {
            let h = pe + 1;
            self.headers = s.get(h..);
            check_headers(s, h)?;
        }
        Ok(())
    }

    /// RFC 3966 `telephone-subscriber`: a global number (`+` digits and visual separators) or a
    /// local number (hex digits, `*`, `#`, separators) which must carry `phone-context`.
    fn parse_tel(&mut self, s: &'a [u8], rs: usize) -> Result<()> {
        let ne = memchr::memchr(b';', s.get(rs..).unwrap_or_default()).map_or(s.len(), |p| rs + p);
        let num = s.get(rs..ne).unwrap_or_default();
        let global = num.first() == Some(&b'+');
        let digits = if global {
            num.get(1..).unwrap_or_default()
        } else {
            num
        };
        let base = if global { rs + 1 } else { rs };
        let is_sep = |c: u8| matches!(c, b'-' | b'.' | b'(' | b')');
        let is_digit = |c: u8| {
            if global {
                c.is_ascii_digit()
            } else {
                c.is_ascii_hexdigit() || c == b'*' || c == b'#'
            }
        };
        if let Some(p) = digits.iter().position(|&c| !(is_digit(c) || is_sep(c))) {
            return Err(Error::new(ErrorKind::Uri, base + p));
        }
        if !digits.iter().any(|&c| is_digit(c)) {
            return Err(Error::new(ErrorKind::Uri, base));
        }
        self.number = Some(num);
        self.params =
            Params::parse_uri(s.get(ne..).unwrap_or_default()).map_err(|e| e.shifted(ne))?;
        if !global && !self.params.contains(b"phone-context") {
            return Err(Error::new(ErrorKind::Uri, ne));
        }
        Ok(())
    }

    /// The whole URI (without surrounding LWS).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }
    pub fn scheme(&self) -> Scheme<'a> {
        self.scheme
    }
    /// Everything after `scheme:` (the opaque part of an `Other` URI).
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
    /// SIP/SIPS user, raw (escapes kept; may contain `;` as in RFC 4475 semiuri).
    pub fn user(&self) -> Option<&'a [u8]> {
        self.user
    }
    /// SIP/SIPS password, raw (`Some(b"")` for `user:@host`).
    pub fn password(&self) -> Option<&'a [u8]> {
        self.password
    }
    /// SIP/SIPS host; `None` for tel and other schemes.
    pub fn host(&self) -> Option<Host<'a>> {
        self.host
    }
    /// The host as written (IPv6 references with their brackets).
    pub fn host_raw(&self) -> &'a [u8] {
        self.host_raw
    }
    pub fn port(&self) -> Option<u16> {
        self.port
    }
    /// The tel URI number (`+1-201-555-0123`), visual separators kept.
    pub fn number(&self) -> Option<&'a [u8]> {
        self.number
    }
    /// URI parameters (SIP/SIPS and tel).
    pub fn params(&self) -> Params<'a> {
        self.params
    }
    /// [`Params::get`] on the URI parameters.
    pub fn param(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.params.get(name)
    }
    /// The headers after `?`, raw (`hname=hvalue&...`).
    pub fn headers_raw(&self) -> Option<&'a [u8]> {
        self.headers
    }
    /// Loose-routing `lr` parameter present.
    pub fn has_lr(&self) -> bool {
        self.params.contains(b"lr")
    }
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.value(b"maddr")
    }
    /// `transport` parameter, raw (compare case-insensitively).
    pub fn transport(&self) -> Option<&'a [u8]> {
        self.params.value(b"transport")
    }
}

static DIGIT: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    t
};

/// `headers = "?" header *( "&" header )`, `header = hname "=" hvalue`, starting after `?`.
fn check_headers(s: &[u8], mut i: usize) -> Result<()> {
    loop {
        let ne = run_escaped(s, i, &HNV, ErrorKind::Uri)?;
        if ne == i || s.get(ne) != Some(&b'=') {
            return Err(Error::new(ErrorKind::Uri, ne));
        }
        i = run_escaped(s, ne + 1, &HNV, ErrorKind::Uri)?;
        match s.get(i) {
            None => return Ok(()),
            Some(b'&') => i += 1,
            Some(_) => return Err(Error::new(ErrorKind::Uri, i)),
        }
    }
}

/// Resolves the `%HH` escapes of `src` into `dst` and returns the number of bytes written (never
/// more than `src.len()`). Errors (`Uri`, offset into `src`): a `%` not followed by two hex
/// digits, or `dst` too short.
pub fn unescape_into(src: &[u8], dst: &mut [u8]) -> Result<usize> {
    let hex = |c: Option<&u8>| -> Option<u8> {
        let c = *c?;
        (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    };
    let mut n = 0;
    let mut i = 0;
    while let Some(&c) = src.get(i) {
        let (b, len) = if c == b'%' {
            match (hex(src.get(i + 1)), hex(src.get(i + 2))) {
                (Some(h), Some(l)) => (h << 4 | l, 3),
                _ => return Err(Error::new(ErrorKind::Uri, i)),
            }
        } else {
            (c, 1)
        };
        *dst.get_mut(n).ok_or(Error::new(ErrorKind::Uri, i))? = b;
        n += 1;
        i += len;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn uri(s: &[u8]) -> Uri<'_> {
        Uri::parse(s).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(s)))
    }
    fn err(s: &[u8]) -> Error {
        Uri::parse(s).unwrap_err()
    }
    fn name(n: &str) -> Option<Host<'_>> {
        Some(Host::Name(n.as_bytes()))
    }

    #[test]
    fn rfc3261_examples() {
        // §19.1.3
        let u = uri(b"sip:alice@atlanta.com");
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.user(), Some(&b"alice"[..]));
        assert_eq!(u.host(), name("atlanta.com"));
        assert_eq!(u.port(), None);
        let u = uri(b"sip:alice:secretword@atlanta.com;transport=tcp");
        assert_eq!(u.password(), Some(&b"secretword"[..]));
        assert_eq!(u.transport(), Some(&b"tcp"[..]));
        let u = uri(b"sips:alice@atlanta.com?subject=project%20x&priority=urgent");
        assert_eq!(u.scheme(), Scheme::Sips);
        assert_eq!(
            u.headers_raw(),
            Some(&b"subject=project%20x&priority=urgent"[..])
        );
        assert!(u.params().is_empty());
        let u = uri(b"sip:+1-212-555-1212:1234@gateway.com;user=phone");
        assert_eq!(u.user(), Some(&b"+1-212-555-1212"[..]));
        assert_eq!(u.password(), Some(&b"1234"[..]));
        assert_eq!(u.param(b"user"), Some(Some(&b"phone"[..])));
        let u = uri(b"sips:1212@gateway.com");
        assert_eq!(u.user(), Some(&b"1212"[..]));
        let u = uri(b"sip:alice@192.0.2.4");
        assert_eq!(u.host(), Some(Host::Ipv4(Ipv4Addr::new(192, 0, 2, 4))));
        let u = uri(b"sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com");
        assert_eq!(u.user(), None);
        assert_eq!(u.param(b"METHOD"), Some(Some(&b"REGISTER"[..])));
        assert_eq!(u.headers_raw(), Some(&b"to=alice%40atlanta.com"[..]));
        let u = uri(b"sip:alice;day=tuesday@atlanta.com");
        assert_eq!(u.user(), Some(&b"alice;day=tuesday"[..]));
        assert_eq!(u.host(), name("atlanta.com"));
        let u = uri(b"sip:alice@atlanta.com;maddr=239.255.255.1;ttl=15");
        assert_eq!(u.maddr(), Some(&b"239.255.255.1"[..]));
        // §4 / §24 call flow.
        let u = uri(b"sip:bob@192.0.2.4:5060;lr");
        assert_eq!(u.port(), Some(5060));
        assert!(u.has_lr());
        let u = uri(b"  SIP:Bob@Biloxi.COM  ");
        assert_eq!(u.scheme(), Scheme::Sip);
        assert_eq!(u.as_bytes(), b"SIP:Bob@Biloxi.COM");
        assert!(u.host().unwrap().eq_name(b"biloxi.com."));
    }

    #[test]
    fn rfc4475_uris() {
        // semiuri: the user part contains `;`.
        let u = uri(b"sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..]));
        assert_eq!(u.host(), name("example.com"));
        assert!(u.params().is_empty());
        // intmeth: user with `?`, `,`, `;` and a password.
        let u = uri(b"sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user(),
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        assert_eq!(
            u.password(),
            Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
        );
        assert_eq!(u.headers_raw(), None);
        // esc01 / escnull.
        let u = uri(b"sip:sips%3Auser%40example.com@example.net");
        let mut buf = [0u8; 64];
        let n = unescape_into(u.user().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"sips:user@example.com");
        let u = uri(b"sip:null-%00-null@example.com");
        let n = unescape_into(u.user().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"null-\0-null");
        let u = uri(b"sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(u.params().iter().count(), 2);
        assert!(!u.has_lr(), "escaped names are not unescaped for look-ups");
        // regescrt / escruri: escaped header.
        let u = uri(b"sip:user@example.com?Route=%3Csip:sip.example.com%3E");
        assert_eq!(
            u.headers_raw(),
            Some(&b"Route=%3Csip:sip.example.com%3E"[..])
        );
        // wsinv Route and longreq To.
        let u = uri(b"sip:services.example.com;lr;unknownwith=value;unknown-no-value");
        assert!(u.has_lr());
        assert_eq!(u.param(b"unknown-no-value"), Some(None));
        let u = uri(b"sip:user@example.com:6000;unknownparam1=verylonglonglongvalue;longparamname=shortvalue;verylongParameterNameWithNoValue");
        assert_eq!(u.port(), Some(6000));
        assert_eq!(u.params().iter().count(), 3);
        // inv2543
        let u = uri(b"sip:+13035551111@ift.client.example.net;user=phone");
        assert_eq!(u.user(), Some(&b"+13035551111"[..]));
        // unkscm / novelsc / unksm2: other schemes.
        for (s, sch, rest) in [
            (
                &b"nobodyKnowsThisScheme:totallyopaquecontent"[..],
                &b"nobodyKnowsThisScheme"[..],
                &b"totallyopaquecontent"[..],
            ),
            (
                b"soap.beep://192.0.2.103:3002",
                b"soap.beep",
                b"//192.0.2.103:3002",
            ),
            (b"isbn:2983792873", b"isbn", b"2983792873"),
            (b"http://www.example.com", b"http", b"//www.example.com"),
            (b"name:John_Smith", b"name", b"John_Smith"),
        ] {
            let u = uri(s);
            assert_eq!(u.scheme(), Scheme::Other(sch));
            assert_eq!(u.rest(), rest);
            assert_eq!(u.host(), None);
        }
    }

    #[test]
    fn hosts() {
        let u = uri(b"sip:[2001:db8::10]:5070;transport=udp");
        assert_eq!(u.host(), Some(Host::Ipv6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.host_raw(), b"[2001:db8::10]");
        assert_eq!(u.port(), Some(5070));
        let u = uri(b"sip:alice@[::ffff:192.0.2.1]");
        assert_eq!(
            u.host(),
            Some(Host::Ipv6("::ffff:192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            uri(b"sip:010.000.002.001").host(),
            Some(Host::Ipv4(Ipv4Addr::new(10, 0, 2, 1)))
        );
        assert_eq!(
            uri(b"sip:a.b.example.com.").host(),
            name("a.b.example.com.")
        );
        assert_eq!(uri(b"sip:123.example.com").host(), name("123.example.com"));
        assert_eq!(uri(b"sip:x-1.y").host(), name("x-1.y"));
        assert_eq!(Host::parse(b"[::1]").unwrap().to_string(), "[::1]");
        assert_eq!(
            Host::parse(b"Example.COM").unwrap().to_string(),
            "Example.COM"
        );
        assert!(
            Host::parse(b"A.com")
                .unwrap()
                .matches(&Host::parse(b"a.COM.").unwrap())
        );
        assert!(
            !Host::parse(b"192.0.2.1")
                .unwrap()
                .matches(&Host::parse(b"a.com").unwrap())
        );
        for (bad, off) in [
            (&b"sip:256.1.1.1"[..], 4),
            (b"sip:1.2.3", 4),
            (b"sip:[::1", 4),
            (b"sip:[1::2::3]", 5),
            (b"sip:[::1]x", 9),
            (b"sip:-a.com", 4),
            (b"sip:a-.com", 5),
            (b"sip:a..com", 6),
            (b"sip:a.1com", 6),
            (b"sip:user@", 9),
            (b"sip:", 4),
            (b"sip:a_b.com", 5),
        ] {
            assert_eq!(
                err(bad),
                Error::new(ErrorKind::Host, off),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn ports() {
        assert_eq!(uri(b"sip:a.com:0").port(), Some(0));
        assert_eq!(uri(b"sip:a.com:65535").port(), Some(65535));
        assert_eq!(err(b"sip:a.com:65536"), Error::new(ErrorKind::Port, 10));
        assert_eq!(err(b"sip:a.com:"), Error::new(ErrorKind::Port, 10));
        assert_eq!(err(b"sip:a.com:5x"), Error::new(ErrorKind::Port, 11));
        assert_eq!(
            err(b"sip:a.com:0000000001"),
            Error::new(ErrorKind::Port, 10)
        );
        assert_eq!(parse_port(b"5060"), Ok(5060));
    }

    #[test]
    fn uri_errors() {
        assert_eq!(err(b"").kind, ErrorKind::Uri);
        assert_eq!(err(b"user@host"), Error::new(ErrorKind::Uri, 4));
        assert_eq!(err(b"1sip:a"), Error::new(ErrorKind::Uri, 0));
        assert_eq!(err(b"sip:us%4g@a.com"), Error::new(ErrorKind::Uri, 6));
        assert_eq!(err(b"sip:us%4"), Error::new(ErrorKind::Host, 6));
        assert_eq!(err(b"sip:@a.com"), Error::new(ErrorKind::Uri, 4));
        assert_eq!(err(b"sip:a b@c.com"), Error::new(ErrorKind::Uri, 5));
        assert_eq!(err(b"sip:a:b:c@d.com"), Error::new(ErrorKind::Uri, 7));
        assert_eq!(err(b"sip:a@b@c.com"), Error::new(ErrorKind::Host, 7));
        // lwsruri: embedded LWS.
        assert_eq!(
            err(b"sip:user@example.com t"),
            Error::new(ErrorKind::Host, 20)
        );
        assert_eq!(err(b"sip:a.com;lr?"), Error::new(ErrorKind::Uri, 13));
        assert_eq!(err(b"sip:a.com?x"), Error::new(ErrorKind::Uri, 11));
        assert_eq!(err(b"sip:a.com?x=1&"), Error::new(ErrorKind::Uri, 14));
        assert_eq!(err(b"sip:a.com?x=%zz"), Error::new(ErrorKind::Uri, 12));
        assert_eq!(err(b"sip:a.com;lr=;x"), Error::new(ErrorKind::Param, 13));
        assert_eq!(err(b"sip:a.com;a=%1"), Error::new(ErrorKind::Uri, 12));
        assert_eq!(err(b"http:"), Error::new(ErrorKind::Uri, 5));
        assert_eq!(err(b"http://a b"), Error::new(ErrorKind::Uri, 8));
        assert_eq!(err(b"<sip:a.com>"), Error::new(ErrorKind::Uri, 0));
    }

    #[test]
    fn tel_uris() {
        // RFC 3966 §6.
        let u = uri(b"tel:+1-201-555-0123");
        assert_eq!(u.scheme(), Scheme::Tel);
        assert_eq!(u.number(), Some(&b"+1-201-555-0123"[..]));
        assert_eq!(u.host(), None);
        let u = uri(b"tel:7042;phone-context=example.com");
        assert_eq!(u.number(), Some(&b"7042"[..]));
        assert_eq!(
            u.params().value(b"phone-context"),
            Some(&b"example.com"[..])
        );
        let u = uri(b"tel:863-1234;phone-context=+1-914-555");
        assert_eq!(u.number(), Some(&b"863-1234"[..]));
        let u = uri(b"TEL:+1(800)555.1212;ext=22;isub=1411");
        assert_eq!(u.params().value(b"ext"), Some(&b"22"[..]));
        assert_eq!(
            uri(b"tel:*67#;phone-context=x.com").number(),
            Some(&b"*67#"[..])
        );
        assert_eq!(err(b"tel:+"), Error::new(ErrorKind::Uri, 5));
        assert_eq!(err(b"tel:+1a"), Error::new(ErrorKind::Uri, 6));
        assert_eq!(
            err(b"tel:7042"),
            Error::new(ErrorKind::Uri, 8),
            "local number needs phone-context"
        );
        assert_eq!(
            err(b"tel:--;phone-context=x"),
            Error::new(ErrorKind::Uri, 4)
        );
        assert_eq!(err(b"tel:+1?x=y").kind, ErrorKind::Uri);
    }

    #[test]
    fn unescape() {
        let mut b = [0u8; 8];
        assert_eq!(unescape_into(b"a%41%2f", &mut b), Ok(3));
        assert_eq!(&b[..3], b"aA/");
        assert_eq!(
            unescape_into(b"%4", &mut b),
            Err(Error::new(ErrorKind::Uri, 0))
        );
        assert_eq!(
            unescape_into(b"%g0", &mut b),
            Err(Error::new(ErrorKind::Uri, 0))
        );
        assert_eq!(
            unescape_into(b"abc", &mut b[..2]),
            Err(Error::new(ErrorKind::Uri, 2))
        );
    }

    fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                any::<u8>(),
                proptest::sample::select(b"sip:tel+@;=?&%[]:.-ab19 \r\n".to_vec())
            ],
            0..80,
        )
    }

    /// RFC 3261 `IPv4address` by its grammar, for the property test of [`parse_ipv4`]: four
    /// dot-separated groups of 1-3 digits, each at most 255.
    fn ipv4_reference(s: &[u8]) -> Option<Ipv4Addr> {
        let groups: Vec<&[u8]> = s.split(|&c| c == b'.').collect();
        if groups.len() != 4 {
            return None;
        }
        let mut octets = [0u8; 4];
        for (o, g) in octets.iter_mut().zip(&groups) {
            if g.is_empty() || g.len() > 3 || !g.iter().all(u8::is_ascii_digit) {
                return None;
            }
            *o = std::str::from_utf8(g)
                .ok()?
                .parse::<u16>()
                .ok()?
                .try_into()
                .ok()?;
        }
        Some(Ipv4Addr::from(octets))
    }

    proptest! {
        /// The one-pass host scan is the run of host bytes, then `Host::parse` of it.
        #[test]
        fn host_run_is_parse_of_the_run(
            s in "[a-zA-Z0-9.\\-]{0,16}[;:>@ ?_a]?[a-z0-9.]{0,3}|[0-9]{1,4}(\\.[0-9]{1,4}){0,4}[.a;:]?",
            start in 0..3usize,
        ) {
            let s = s.as_bytes();
            let start = start.min(s.len());
            let end = run(s, start, &HOSTNAME);
            let want = Host::parse(&s[start..end]).map(|h| (h, end));
            prop_assert_eq!(parse_host_run(s, start), want);
        }

        /// With 16 bytes at hand the IPv4 walk reads a fixed window: the same address and length
        /// as the walk over the checked slice.
        #[test]
        fn ipv4_window_agrees_with_checked_walk(
            s in "[0-9.]{0,24}|[0-9]{1,4}(\\.[0-9]{1,4}){0,4}[.a;:0-9]{0,12}",
        ) {
            let s = s.as_bytes();
            prop_assert_eq!(parse_ipv4_prefix(s), ipv4_walk(|i| s.get(i).copied()), "{:?}", s);
        }

        /// A dotted quad with 16 bytes at hand (the window path, which also reads the byte after
        /// the address from the window) and without: the run of host bytes, then `Host::parse`.
        #[test]
        fn host_run_ipv4_window_is_parse_of_the_run(
            s in "[0-9]{1,4}(\\.[0-9]{1,4}){0,4}[.a\\-;:_0-9]?[a-z;:.\\-_0-9]{0,16}",
        ) {
            let s = s.as_bytes();
            let end = run(s, 0, &HOSTNAME);
            let want = Host::parse(&s[..end]).map(|h| (h, end));
            prop_assert_eq!(parse_host_run(s, 0), want, "{:?}", s);
        }

        /// The common-shape hostname check accepts only what the exact walk accepts.
        #[test]
        fn hostname_fast_path_agrees_with_exact(s in "[a-zA-Z0-9.\\-]{0,14}") {
            let s = s.as_bytes();
            prop_assert_eq!(check_hostname(s), check_hostname_exact(s));
        }

        /// URI parameters up to the first `?` parse as the bytes before it would on their own.
        #[test]
        fn params_until_query_is_parse_of_the_prefix(raw in "(;[a-z%0-9=?]{0,5}){0,3}[?a-z]{0,2}") {
            let raw = raw.as_bytes();
            let pe = memchr::memchr(b'?', raw).unwrap_or(raw.len());
            let want = Params::parse_uri(&raw[..pe]).map(|p| (p, pe));
            prop_assert_eq!(Params::parse_uri_until_query(raw), want);
        }

        #[test]
        fn ipv4_matches_the_grammar(s in "[0-9.]{0,18}|[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}[.a]?") {
            prop_assert_eq!(parse_ipv4(s.as_bytes()), ipv4_reference(s.as_bytes()), "{}", s);
        }

        #[test]
        fn uri_never_panics(v in arb_bytes(), prefix in prop_oneof![Just(""), Just("sip:"), Just("tel:"), Just("sip:u@")]) {
            let mut s = prefix.as_bytes().to_vec();
            s.extend_from_slice(&v);
            match Uri::parse(&s) {
                Ok(u) => {
                    let _ = (u.has_lr(), u.maddr(), u.transport(), u.params().iter().count());
                    if let Some(h) = u.host() { let _ = h.to_string(); }
                }
                Err(e) => prop_assert!(e.offset <= s.len()),
            }
            let _ = Host::parse(&v);
            let _ = Host::parse_ip(&v);
            let mut buf = [0u8; 80];
            let _ = unescape_into(&v, &mut buf);
        }

        #[test]
        fn sip_uri_print_reparse(
            sips in any::<bool>(),
            user in proptest::option::of("[a-zA-Z0-9;?/&=+$,_.!~*'()-]{1,10}|[a-z]{1,3}%[0-9A-F]{2}"),
            password in proptest::option::of("[a-z0-9&=+$,]{0,6}"),
            host in prop_oneof![
                "[a-z][a-z0-9-]{0,6}[a-z0-9](\\.[a-z][a-z0-9]{0,5}){0,2}",
                any::<[u8; 4]>().prop_map(|o| Ipv4Addr::from(o).to_string()),
                any::<[u16; 8]>().prop_map(|g| format!("[{}]", Ipv6Addr::from(g))),
            ],
            port in proptest::option::of(any::<u16>()),
            params in proptest::collection::vec(("[a-z][a-z0-9-]{0,5}", proptest::option::of("[a-zA-Z0-9.:-]{1,6}")), 0..4),
            headers in proptest::option::of("[a-z]{1,4}=[a-z0-9%]{0,4}"),
        ) {
            let mut s = String::from(if sips { "sips:" } else { "sip:" });
            if let Some(u) = &user {
                s.push_str(u);
                if let Some(p) = &password { s.push(':'); s.push_str(p); }
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port { s.push_str(&format!(":{p}")); }
            for (n, v) in &params {
                s.push(';'); s.push_str(n);
                if let Some(v) = v { s.push('='); s.push_str(v); }
            }
            if let Some(h) = &headers { s.push('?'); s.push_str(h); }
            let bad_escape = headers.as_deref().is_some_and(|h| {
                let b = h.as_bytes();
                b.iter().enumerate().any(|(i, &c)| c == b'%' && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)))
            });
            let r = Uri::parse(s.as_bytes());
            if bad_escape { prop_assert!(r.is_err()); return Ok(()); }
            let u = r.unwrap();
            prop_assert_eq!(u.scheme(), if sips { Scheme::Sips } else { Scheme::Sip });
            prop_assert_eq!(u.user(), user.as_deref().map(str::as_bytes));
            prop_assert_eq!(u.password(), user.as_ref().and(password.as_deref()).map(str::as_bytes));
            prop_assert_eq!(u.host_raw(), host.as_bytes());
            // Print the host back the way it goes on the wire and compare.
            let printed = u.host().unwrap().to_string();
            prop_assert!(Host::parse(printed.as_bytes()).unwrap().matches(&u.host().unwrap()));
            prop_assert_eq!(u.port(), port);
            let got: Vec<_> = u.params().iter().map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec))).collect();
            let want: Vec<_> = params.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_ref().map(|v| v.as_bytes().to_vec()))).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(u.headers_raw(), headers.as_deref().map(str::as_bytes));
        }
    }
}
