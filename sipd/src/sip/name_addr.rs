//! `name-addr / addr-spec` followed by header parameters (RFC 3261 §20.10, §25): From, To,
//! Contact, Route, Record-Route, Reply-To.
//!
//! ```text
//! name-addr    = [ display-name ] LAQUOT addr-spec RAQUOT
//! display-name = *(token LWS) / quoted-string
//! LAQUOT = SWS "<"   RAQUOT = ">" SWS
//! ```
//!
//! When the URI is not in `<>` (addr-spec form), everything from the first `;` is a header
//! parameter, and the URI may contain neither `,` nor `?` (RFC 3261 §20: such URIs MUST be in
//! angle brackets); no LWS is allowed inside the brackets (RFC 4475 badaspec).

use super::error::{Error, ErrorKind, Result};
use super::params::Params;
use super::uri::Uri;
use super::values::{
    SplitComma, TOKEN, eq_lower_letters, is_wsp, parse_u32, scan_quoted, skip_lws, split_comma,
    trim_lws_range, unquote,
};

/// One name-addr or addr-spec with its header parameters.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as written: a quoted-string with its quotes, or the token sequence
    /// (which may contain LWS between tokens). See [`NameAddr::display_name`].
    pub display_name_raw: Option<&'a [u8]>,
    pub uri: Uri<'a>,
    /// The URI bytes (inside the brackets for a name-addr).
    pub uri_raw: &'a [u8],
    /// Whether the URI was enclosed in `<>` (name-addr form).
    pub angle_brackets: bool,
    /// Header parameters (`tag`, `expires`, `q`, ...).
    pub params: Params<'a>,
    /// Offset of `params.raw()` in the parsed value, to place errors of parameter values.
    params_offset: usize,
    /// The first `tag` parameter's value (see [`NameAddr::tag`]).
    tag: Option<&'a [u8]>,
}

/// A name-addr or addr-spec with its URI located but not parsed: what reading tags and
/// forwarding need, at a fraction of [`NameAddr::parse`]'s cost. [`NameAddrView::uri`] parses
/// the URI when it is wanted.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NameAddrView<'a> {
    /// See [`NameAddr::display_name_raw`].
    pub display_name_raw: Option<&'a [u8]>,
    /// The URI bytes (inside the brackets for a name-addr).
    pub uri_raw: &'a [u8],
    /// Whether the URI was enclosed in `<>` (name-addr form).
    pub angle_brackets: bool,
    /// Header parameters (`tag`, `expires`, `q`, ...).
    pub params: Params<'a>,
    /// Offset of `params.raw()` in the parsed value.
    params_offset: usize,
    /// Offset of `uri_raw` in the parsed value.
    uri_offset: usize,
    /// The first `tag` parameter's value.
    tag: Option<&'a [u8]>,
}

fn err(offset: usize) -> Error {
    Error::new(ErrorKind::NameAddr, offset)
}

impl<'a> NameAddrView<'a> {
    /// Parses one header value element (LWS around it ignored) without parsing the URI: see
    /// [`NameAddr::parse`] for the errors (all but the URI's own). Errors (offset into `value`):
    /// `NameAddr` for the structure (non-token display name, missing `>`, LWS inside `<>`, `,` or
    /// `?` in an addr-spec, junk after `>`), `QuotedString` for an unterminated or bad quoted
    /// display name, and the URI and parameter errors (`Uri`, `Host`, `Port`, `Param`).
    // Always inline: a proxy reads a few of these per message, and the call's register saves and
    // the returned view (written out, then read back for one field) cost about a quarter of a
    // short name-addr's parse. The rare shapes' work is out of line (`parse_params`).
    #[inline(always)]
    pub fn parse(value: &'a [u8]) -> Result<NameAddrView<'a>> {
        let (start, end) = trim_lws_range(value);
        let s = value.get(..end).unwrap_or_default();
        if start == end {
            return Err(err(start));
        }
        let mut display_name_raw = None;
        let laquot;
        if s.get(start) == Some(&b'<') {
            // No display name (the usual To and Route): what the token walk below would find.
            laquot = start;
        } else if s.get(start) == Some(&b'"') {
            let q = scan_quoted(s, start)?;
            display_name_raw = s.get(start..q);
            let i = skip_lws(s, q);
            if s.get(i) != Some(&b'<') {
                return Err(err(i));
            }
            laquot = i;
        } else {
            // A token sequence followed by `<`, or an addr-spec (a scheme then `:`).
            let mut i = start;
            let mut last_token_end = start;
            let mut saw_lws = false;
            loop {
                match s.get(i) {
                    Some(&c) if TOKEN[c as usize] => {
                        i += 1;
                        last_token_end = i;
                    }
                    Some(b' ' | b'\t' | b'\r' | b'\n') => {
                        let j = skip_lws(s, i);
                        if j == i {
                            return Err(err(i));
                        }
                        saw_lws = true;
                        i = j;
                    }
                    Some(b'<') => {
                        if last_token_end > start {
                            display_name_raw = s.get(start..last_token_end);
                        }
                        laquot = i;
                        break;
                    }
                    Some(b':') if !saw_lws && i > start => {
                        return Self::parse_addr_spec(s, start);
                    }
                    _ => return Err(err(i.min(end))),
                }
            }
        }
        let us = laquot + 1;
        let raquot = us + super::scan::angled_len(s.get(us..).unwrap_or_default());
        if raquot >= s.len() {
            return Err(err(laquot));
        }
        // `us <= raquot < s.len()`: in range.
        let uri_raw = &s[us..raquot];
        // No LWS byte is above SP: one compare settles each end in the usual case.
        match (uri_raw.first(), uri_raw.last()) {
            (None, _) => return Err(err(us)),
            (Some(&c), _) if c <= b' ' && is_lws_byte(c) => return Err(err(us)),
            (_, Some(&c)) if c <= b' ' && is_lws_byte(c) => return Err(err(raquot - 1)),
            _ => {}
        }
        // Nothing after `>` (the common To and Route): no parameters, without the call.
        let (params, params_offset, tag) = if raquot + 1 == s.len() {
            (
                Params::lws_only(s.get(s.len()..).unwrap_or_default()),
                s.len(),
                None,
            )
        } else if let Some(found) = Self::only_tag(s, raquot + 1) {
            // Just `;tag=` and a token (the usual From): without the call either.
            found
        } else {
            Self::parse_params(s, raquot + 1)?
        };
        Ok(NameAddrView {
            display_name_raw,
            uri_raw,
            uri_offset: us,
            angle_brackets: true,
            params,
            params_offset,
            tag,
        })
    }

    fn parse_addr_spec(s: &'a [u8], start: usize) -> Result<NameAddrView<'a>> {
        let mut ue = start;
        while s.get(ue).is_some_and(|&c| c != b';' && !is_lws_byte(c)) {
            ue += 1;
        }
        let uri_raw = s.get(start..ue).unwrap_or_default();
        if let Some(p) = uri_raw.iter().position(|&c| c == b',' || c == b'?') {
            // RFC 4475 regbadct: a URI with `?` (or `,`) outside `<>`.
            return Err(err(start + p));
        }
        let (params, params_offset, tag) = Self::parse_params(s, ue)?;
        Ok(NameAddrView {
            display_name_raw: None,
            uri_raw,
            uri_offset: start,
            angle_brackets: false,
            params,
            params_offset,
            tag,
        })
    }

    /// `s[from..]` if it is just `;tag=` and a token (the usual From, and To in a dialog): what
    /// [`Self::parse_params`] would find, without its walk.
    #[inline(always)]
    fn only_tag(s: &'a [u8], from: usize) -> Option<(Params<'a>, usize, Option<&'a [u8]>)> {
        let raw = s.get(from..).unwrap_or_default();
        // One 4-byte word and a byte (`strip_prefix` is a call).
        let value = match raw.split_first_chunk::<5>() {
            Some(([a, b, c, d, b'='], value))
                if u32::from_le_bytes([*a, *b, *c, *d]) == u32::from_le_bytes(*b";tag")
                    && !value.is_empty() =>
            {
                value
            }
            _ => return None,
        };
        // A short tag (the usual 8-16 bytes) by table, a long one by a vector scan: the scan's
        // dispatch and tail cost more than a short loop.
        let token = if value.len() <= 16 {
            // No early exit: one load and an AND a byte (a failing tag is rare).
            value.iter().fold(true, |ok, &c| ok & TOKEN[c as usize])
        } else {
            super::scan::token_len(value) == value.len()
        };
        token.then(|| (Params::validated(raw), from, Some(value)))
    }

    /// Header parameters from `s[from..]`: nothing but LWS, or `;...`.
    /// Also returns the first `tag` parameter's value, picked out while validating.
    #[inline(never)]
    fn parse_params(s: &'a [u8], from: usize) -> Result<(Params<'a>, usize, Option<&'a [u8]>)> {
        if let Some(found) = Self::only_tag(s, from) {
            return Ok(found);
        }
        Self::params_walk(s, from)
    }

    /// [`Self::parse_params`] without its shortcut.
    fn params_walk(s: &'a [u8], from: usize) -> Result<(Params<'a>, usize, Option<&'a [u8]>)> {
        let raw = s.get(from..).unwrap_or_default();
        let i = skip_lws(s, from);
        match s.get(i) {
            // Nothing but LWS after the URI: an empty list (nothing to validate).
            None => Ok((Params::lws_only(raw), from, None)),
            Some(b';') => {
                let mut tag = None;
                let params = Params::parse_visit(raw, |name, value| {
                    if tag.is_none() && eq_lower_letters(name, b"tag") {
                        tag = Some(value);
                    }
                    Ok(())
                })
                .map_err(|e| e.shifted(from))?;
                Ok((params, from, tag.flatten()))
            }
            Some(_) => Err(err(i)),
        }
    }

    /// The URI, parsed now (errors with offsets into the parsed value).
    pub fn uri(&self) -> Result<Uri<'a>> {
        Uri::parse(self.uri_raw).map_err(|e| e.shifted(self.uri_offset))
    }

    /// The `tag` parameter's value (compared as bytes); `None` if absent or without a value.
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.tag
    }
}

impl<'a> NameAddr<'a> {
    /// Parses one header value element (LWS around it ignored). Errors (offset into `value`):
    /// `NameAddr` for the structure (non-token display name, missing `>`, LWS inside `<>`, `,` or
    /// `?` in an addr-spec, junk after `>`), `QuotedString` for an unterminated or bad quoted
    /// display name, and the URI and parameter errors (`Uri`, `Host`, `Port`, `Param`).
    pub fn parse(value: &'a [u8]) -> Result<NameAddr<'a>> {
        let view = NameAddrView::parse(value)?;
        Ok(NameAddr {
            display_name_raw: view.display_name_raw,
            uri: view.uri()?,
            uri_raw: view.uri_raw,
            angle_brackets: view.angle_brackets,
            params: view.params,
            params_offset: view.params_offset,
            tag: view.tag,
        })
    }

    fn shifted(mut self, base: usize) -> Self {
        self.params_offset += base;
        self
    }

    /// The display name: the inner bytes of a quoted-string (backslash escapes kept raw; see
    /// [`unescape_quoted_into`](super::values::unescape_quoted_into)) or the token sequence as
    /// written.
    pub fn display_name(&self) -> Option<&'a [u8]> {
        self.display_name_raw.map(unquote)
    }

    /// The `tag` parameter's value (compared as bytes); `None` if absent or without a value.
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.tag
    }

    /// The `expires` header parameter (Contact): `None` if absent; a `Number` error (offset into
    /// the parsed value) if it has no value, is not decimal, or overflows `u32`.
    pub fn expires(&self) -> Option<Result<u32>> {
        let v = self.params.get(b"expires")?;
        let base = self.params_offset;
        Some(match v {
            None => Err(Error::new(
                ErrorKind::Number,
                base + self.params.raw().len(),
            )),
            Some(v) => parse_u32(v).map_err(|e| e.shifted(base + self.params.offset_of(v))),
        })
    }

    /// The `q` parameter (Contact) in thousandths, 0..=1000 (RFC 3261 `qvalue`:
    /// `"0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]`): `None` if absent, a `Number` error if
    /// malformed.
    pub fn q(&self) -> Option<Result<u16>> {
        let v = self.params.get(b"q")?;
        let base = self.params_offset;
        Some(match v {
            None => Err(Error::new(
                ErrorKind::Number,
                base + self.params.raw().len(),
            )),
            Some(v) => parse_qvalue(v).ok_or(Error::new(
                ErrorKind::Number,
                base + self.params.offset_of(v),
            )),
        })
    }
}

#[inline]
fn is_lws_byte(c: u8) -> bool {
    is_wsp(c) || c == b'\r' || c == b'\n'
}

/// RFC 3261 `qvalue` in thousandths.
pub fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match v {
        [d] => (*d, &[][..]),
        [d, b'.', frac @ ..] if frac.len() <= 3 => (*d, frac),
        _ => return None,
    };
    if !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let thousandths = (0..3).fold(0u16, |n, k| {
        n * 10 + frac.get(k).map_or(0, |&c| u16::from(c - b'0'))
    });
    match int {
        b'0' => Some(thousandths),
        b'1' if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A Contact value element: `*` (only in REGISTER, alone) or a name-addr / addr-spec.
// Boxing the big variant would cost a heap allocation per Contact; `Star` is rare and the enum
// lives on the stack only while a route looks at it.
#[allow(clippy::large_enum_variant)]
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ContactValue<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl<'a> ContactValue<'a> {
    /// Parses one Contact element: `*` alone, or [`NameAddr::parse`].
    pub fn parse(value: &'a [u8]) -> Result<ContactValue<'a>> {
        let (start, end) = trim_lws_range(value);
        if value.get(start..end) == Some(&b"*"[..]) {
            return Ok(ContactValue::Star);
        }
        NameAddr::parse(value).map(ContactValue::Addr)
    }

    fn shifted(self, base: usize) -> Self {
        match self {
            ContactValue::Star => ContactValue::Star,
            ContactValue::Addr(a) => ContactValue::Addr(a.shifted(base)),
        }
    }
}

/// Iterates the comma-separated name-addrs of one Route, Record-Route (or Contact without `*`)
/// header value. Errors have offsets into `value`; an empty value yields one `NameAddr` error.
pub fn name_addr_values(value: &[u8]) -> NameAddrValues<'_> {
    NameAddrValues {
        inner: List::new(value),
    }
}

/// Iterates the elements of one Contact header value: `*` must be the only element (RFC 3261
/// §20.10). Errors have offsets into `value`; an empty value yields one `NameAddr` error.
pub fn contact_values(value: &[u8]) -> ContactValues<'_> {
    ContactValues {
        inner: List::new(value),
        star_seen: false,
    }
}

/// A non-empty comma-separated list.
#[derive(Clone, Debug)]
struct List<'a> {
    split: SplitComma<'a>,
    empty_at: Option<usize>,
    count: usize,
}

impl<'a> List<'a> {
    fn new(value: &'a [u8]) -> Self {
        let (start, end) = trim_lws_range(value);
        List {
            split: split_comma(value),
            empty_at: (start == end).then_some(start),
            count: 0,
        }
    }

    fn next(&mut self) -> Option<Result<(usize, &'a [u8])>> {
        if let Some(at) = self.empty_at.take() {
            return Some(Err(err(at)));
        }
        let r = self.split.next()?;
        self.count += 1;
        Some(r)
    }
}

/// Iterator returned by [`name_addr_values`].
#[derive(Clone, Debug)]
pub struct NameAddrValues<'a> {
    inner: List<'a>,
}

impl<'a> Iterator for NameAddrValues<'a> {
    type Item = Result<NameAddr<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.inner.next()?.and_then(|(off, e)| {
            NameAddr::parse(e)
                .map(|a| a.shifted(off))
                .map_err(|x| x.shifted(off))
        }))
    }
}

/// Iterator returned by [`contact_values`].
#[derive(Clone, Debug)]
pub struct ContactValues<'a> {
    inner: List<'a>,
    star_seen: bool,
}

impl<'a> Iterator for ContactValues<'a> {
    type Item = Result<ContactValue<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        let (off, e) = match self.inner.next()? {
            Ok(x) => x,
            Err(e) => return Some(Err(e)),
        };
        if self.star_seen {
            return Some(Err(err(off)));
        }
        Some(match ContactValue::parse(e) {
            Ok(ContactValue::Star) if self.inner.count > 1 => Err(err(off)),
            Ok(ContactValue::Star) => {
                self.star_seen = true;
                Ok(ContactValue::Star)
            }
            Ok(c) => Ok(c.shifted(off)),
            Err(x) => Err(x.shifted(off)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::{Host, Scheme};
    use proptest::prelude::*;

    fn na(s: &[u8]) -> NameAddr<'_> {
        NameAddr::parse(s).unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(s)))
    }
    fn bad(s: &[u8]) -> Error {
        NameAddr::parse(s).unwrap_err()
    }

    #[test]
    fn params_after_the_uri_as_the_params_walk_finds_them() {
        // The shortcuts (nothing after `>`, just `;tag=` and a token) against the walk itself.
        for tail in [
            &b""[..],
            b";tag=abc",
            b";tag=",
            b";tag=a b",
            b";tag=a;x",
            b";tag=a;tag=b",
            b";TAG=a",
            b";tag=\"q\"",
            b";tag=a:b",
            b";tag=a\x80",
            b";tag= a",
            b" ;tag=a",
            b";tagx=a",
            b";tag",
        ] {
            let v = [&b"<sip:a@b>"[..], tail].concat();
            let got = NameAddrView::parse(&v);
            match Params::parse(tail) {
                Ok(p) => {
                    let view = got.unwrap_or_else(|e| panic!("{tail:?}: {e}"));
                    assert_eq!(view.params, p, "{tail:?}");
                    assert_eq!(view.params_offset, 9, "{tail:?}");
                    assert_eq!(view.tag(), p.get(b"tag").flatten(), "{tail:?}");
                }
                Err(e) => assert_eq!(got.unwrap_err(), e.shifted(9), "{tail:?}"),
            }
        }
    }

    #[test]
    fn view_locates_what_parse_parses_and_leaves_the_uri_for_later() {
        for v in [
            &b" \"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s"[..],
            b"sip:+12125551212@server.phone2net.com;tag=887s",
            b"Bob <sips:bob@[2001:db8::1]:5061;transport=tcp>;tag=x;expires=60",
            b"<tel:+1-212-555-1212>;Tag=T1;tag=second",
        ] {
            let full = na(v);
            let view = NameAddrView::parse(v).unwrap();
            assert_eq!(view.uri_raw, full.uri_raw);
            assert_eq!(view.display_name_raw, full.display_name_raw);
            assert_eq!(view.angle_brackets, full.angle_brackets);
            assert_eq!(view.params, full.params);
            assert_eq!(view.tag(), full.tag());
            assert_eq!(
                view.tag(),
                full.params.get(b"tag").flatten(),
                "the first tag"
            );
            assert_eq!(view.uri().unwrap(), full.uri);
        }
        // A bad URI: the view stands (a proxy only needs the tag), the URI is an error when asked
        // for, at the same offset `NameAddr::parse` reports.
        let v = b"Alice <sip:alice@bad_host.example>;tag=1";
        let view = NameAddrView::parse(v).unwrap();
        assert_eq!(view.tag(), Some(&b"1"[..]));
        assert_eq!(view.uri().unwrap_err(), bad(v));
        // Structure errors are the view's own.
        for v in [
            &b"Alice <sip:a@b"[..],
            b"<sip:a@b> junk",
            b"\"open <sip:a@b>",
            b"<sip:a@b>;=x",
        ] {
            assert_eq!(NameAddrView::parse(v).unwrap_err(), bad(v), "{v:?}");
        }
    }

    #[test]
    fn rfc3261_examples() {
        // §20.20 From, §20.39 To, §4 call flow.
        let a = na(b" \"A. G. Bell\" <sip:agb@bell-telephone.com> ;tag=a48s");
        assert_eq!(a.display_name(), Some(&b"A. G. Bell"[..]));
        assert_eq!(a.display_name_raw, Some(&b"\"A. G. Bell\""[..]));
        assert_eq!(a.uri.user(), Some(&b"agb"[..]));
        assert_eq!(a.uri_raw, b"sip:agb@bell-telephone.com");
        assert_eq!(a.tag(), Some(&b"a48s"[..]));
        assert!(a.angle_brackets);
        let a = na(b" sip:+12125551212@server.phone2net.com;tag=887s");
        assert_eq!(a.display_name(), None);
        assert_eq!(a.uri.user(), Some(&b"+12125551212"[..]));
        assert_eq!(a.tag(), Some(&b"887s"[..]));
        assert!(!a.angle_brackets);
        assert!(
            a.uri.params().is_empty(),
            "addr-spec: ;tag is a header parameter"
        );
        let a = na(b" Anonymous <sip:c8oqz84zk7z@privacy.org>;tag=hyh8");
        assert_eq!(a.display_name(), Some(&b"Anonymous"[..]));
        let a = na(b" The Operator <sip:operator@cs.columbia.edu>;tag=287447");
        assert_eq!(a.display_name(), Some(&b"The Operator"[..]));
        let a = na(b"Bob <sip:bob@biloxi.com>;tag=a6c85cf");
        assert_eq!(a.uri.host(), Some(Host::Name(b"biloxi.com")));
        let a = na(b"<sip:p1.example.com;lr>");
        assert!(a.uri.has_lr());
        assert!(a.params.is_empty());
        // §20.10 Contact.
        let a = na(
            b"\"Mr. Watson\" <sip:watson@worcester.bell-telephone.com>\r\n ;q=0.7; expires=3600",
        );
        assert_eq!(a.q(), Some(Ok(700)));
        assert_eq!(a.expires(), Some(Ok(3600)));
        let a = na(b"\"Mr. Watson\" <mailto:watson@bell-telephone.com> ;q=0.1");
        assert_eq!(a.uri.scheme(), Scheme::Other(b"mailto"));
        assert_eq!(a.q(), Some(Ok(100)));
        let a = na(b"<sips:bob@192.0.2.4>;expires=60");
        assert_eq!(a.expires(), Some(Ok(60)));
        assert_eq!(a.q(), None);
        assert_eq!(a.tag(), None);
    }

    #[test]
    fn rfc4475_valid() {
        // wsinv: folded To / From / m.
        let a = na(b"\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n");
        assert_eq!(a.uri.user(), Some(&b"vivekg"[..]));
        assert_eq!(a.tag(), Some(&b"1918181833n"[..]));
        let a = na(b"   \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8");
        assert_eq!(a.display_name(), Some(&b"J Rosenberg \\\\\\\""[..]));
        let mut buf = [0u8; 32];
        let n =
            crate::sip::values::unescape_quoted_into(a.display_name().unwrap(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"J Rosenberg \\\"");
        assert_eq!(a.tag(), Some(&b"98asjd8"[..]));
        let a = na(b"\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33");
        assert_eq!(a.q(), Some(Ok(330)));
        assert_eq!(a.params.value(b"newparam"), Some(&b"newvalue"[..]));
        assert!(a.params.contains(b"secondparam"));
        // intmeth.
        let a = na(b" \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>");
        assert_eq!(
            a.uri.user(),
            Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
        );
        let a = na(b" token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\";tag=_token~1'+`*%!-.");
        assert_eq!(
            a.display_name(),
            Some(&b"token1~` token2'+_ token3*%!.-"[..])
        );
        assert_eq!(a.tag(), Some(&b"_token~1'+`*%!-."[..]));
        // esc01, escnull, esc02.
        let a = na(b" sip:%75se%72@example.com");
        assert_eq!(a.uri.user(), Some(&b"%75se%72"[..]));
        let a = na(b"\r\n  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>");
        assert_eq!(a.uri.params().iter().count(), 2);
        assert_eq!(
            na(b" sip:null-%00-null@example.com;tag=839923423").tag(),
            Some(&b"839923423"[..])
        );
        assert_eq!(
            na(b" \"%Z%45\" <sip:resource@example.com>").display_name(),
            Some(&b"%Z%45"[..])
        );
        // lwsdisp: no LWS between display name and `<`.
        let a = na(b" caller<sip:caller@example.com>;tag=323");
        assert_eq!(a.display_name(), Some(&b"caller"[..]));
        // semiuri-like user in brackets; cparam01 / cparam02.
        let a = na(b" <sip:user;par=u%40example.net@example.com>");
        assert_eq!(a.uri.user(), Some(&b"user;par=u%40example.net"[..]));
        let a = na(b" sip:+19725552222@gw1.example.net;unknownparam");
        assert!(a.params.contains(b"unknownparam"));
        assert!(a.uri.params().is_empty());
        let a = na(b" <sip:+19725552222@gw1.example.net;unknownparam>");
        assert!(a.params.is_empty());
        assert!(a.uri.params().contains(b"unknownparam"));
        // regescrt: escaped header inside brackets is fine.
        let a = na(b" <sip:user@example.com?Route=%3Csip:sip.example.com%3E>");
        assert_eq!(
            a.uri.headers_raw(),
            Some(&b"Route=%3Csip:sip.example.com%3E"[..])
        );
        // unksm2: other schemes, bracketed and not.
        assert_eq!(na(b" isbn:2983792873").uri.scheme(), Scheme::Other(b"isbn"));
        let a = na(b" <http://www.example.com>;tag=3234233");
        assert_eq!(a.uri.scheme(), Scheme::Other(b"http"));
        assert_eq!(a.tag(), Some(&b"3234233"[..]));
        // inv2543, longreq.
        let a = na(b" sip:+16505552222@ss1.example.net;user=phone");
        assert_eq!(a.params.value(b"user"), Some(&b"phone"[..]));
        let a = na(b" \"I have a user name of extremeextremeextreme proportion\"<sip:user@example.com:6000;unknownparam1=verylonglongvalue;longparamnamename=shortvalue;verylongParameterNameWithNoValue>");
        assert_eq!(a.uri.port(), Some(6000));
        // IPv6 in an addr-spec and a name-addr.
        let a = na(b"sip:alice@[2001:db8::1]:5060;tag=x");
        assert_eq!(a.uri.port(), Some(5060));
        assert_eq!(a.tag(), Some(&b"x"[..]));
        // Empty quoted display name.
        assert_eq!(na(b"\"\"<sip:a@b.c>").display_name(), Some(&b""[..]));
    }

    #[test]
    fn rfc4475_invalid() {
        // quotbal: unterminated quoted display name.
        assert_eq!(
            bad(b" \"Mr. J. User <sip:j.user@example.com>"),
            Error::new(ErrorKind::QuotedString, 1)
        );
        // badaspec: spaces within the addr-spec.
        assert_eq!(
            bad(b" \"Watson, Thomas\" < sip:t.watson@example.org >"),
            Error::new(ErrorKind::NameAddr, 19)
        );
        assert_eq!(
            bad(b"<sip:t.watson@example.org >"),
            Error::new(ErrorKind::NameAddr, 25)
        );
        // baddn: non-token characters in an unquoted display name.
        assert_eq!(
            bad(b"    Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
            Error::new(ErrorKind::NameAddr, 8)
        );
        assert_eq!(
            bad(b"      Watson, Thomas <sip:t.watson@example.org>"),
            Error::new(ErrorKind::NameAddr, 12)
        );
        // regbadct: URI with `?` not enclosed in <>.
        assert_eq!(
            bad(b" sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            Error::new(ErrorKind::NameAddr, 21)
        );
        assert_eq!(
            bad(b"sip:a,b@example.com"),
            Error::new(ErrorKind::NameAddr, 5)
        );
        // badinv01: `;;;;` after the Contact.
        assert_eq!(
            bad(b" \"Joe\" <sip:joe@example.org>;;;;"),
            Error::new(ErrorKind::Param, 29)
        );
        // scalar02: overlarge Contact expires is an accessor error.
        let a = na(b" <sip:user@host129.example.com>\r\n  ;expires=280297596632815");
        assert_eq!(a.expires(), Some(Err(Error::new(ErrorKind::Number, 54))));
        // Others.
        assert_eq!(bad(b"").kind, ErrorKind::NameAddr);
        assert_eq!(bad(b"  "), Error::new(ErrorKind::NameAddr, 2));
        assert_eq!(bad(b"<sip:a@b.c"), Error::new(ErrorKind::NameAddr, 0));
        assert_eq!(bad(b"<>"), Error::new(ErrorKind::NameAddr, 1));
        assert_eq!(bad(b"<sip:a@b.c> x"), Error::new(ErrorKind::NameAddr, 12));
        assert_eq!(bad(b"\"x\" sip:a@b.c"), Error::new(ErrorKind::NameAddr, 4));
        assert_eq!(
            bad(b"Joe \"x\" <sip:a@b.c>"),
            Error::new(ErrorKind::NameAddr, 4)
        );
        assert_eq!(bad(b"Joe sip:a@b.c"), Error::new(ErrorKind::NameAddr, 7));
        assert_eq!(bad(b"Joe"), Error::new(ErrorKind::NameAddr, 3));
        assert_eq!(
            na(b"<sip:a@b.c>;tag").tag(),
            None,
            "a valueless tag is no tag"
        );
        assert_eq!(bad(b"<sip:a@-b.c>"), Error::new(ErrorKind::Host, 7));
        assert_eq!(bad(b"sip:a@b.c x"), Error::new(ErrorKind::NameAddr, 10));
        let a = na(b"<sip:a@b.c>;q=1.5;expires=x");
        assert_eq!(a.q(), Some(Err(Error::new(ErrorKind::Number, 14))));
        assert_eq!(a.expires(), Some(Err(Error::new(ErrorKind::Number, 26))));
    }

    #[test]
    fn qvalues() {
        for (s, q) in [
            ("0", 0),
            ("1", 1000),
            ("0.5", 500),
            ("0.05", 50),
            ("0.001", 1),
            ("1.0", 1000),
            ("1.000", 1000),
            ("0.", 0),
        ] {
            assert_eq!(parse_qvalue(s.as_bytes()), Some(q), "{s}");
        }
        for s in ["", "2", "1.1", "0.0001", "01", ".5", "0.a", "1.0001", "-0"] {
            assert_eq!(parse_qvalue(s.as_bytes()), None, "{s}");
        }
    }

    #[test]
    fn lists() {
        let v = b" <sip:ss1.example.com;lr>, \"x, y\" <sip:a,b@b.c;p=1>;tag=1 ,\r\n sip:c@d.e";
        let all: Vec<_> = name_addr_values(v).collect::<Result<_>>().unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[0].uri.has_lr());
        assert_eq!(all[1].display_name(), Some(&b"x, y"[..]));
        assert_eq!(all[1].uri.user(), Some(&b"a,b"[..]));
        assert_eq!(all[2].uri.host(), Some(Host::Name(b"d.e")));
        let e: Vec<_> = name_addr_values(b"<sip:a@b.c>, <sip:a@-b.c>").collect();
        assert_eq!(e[1], Err(Error::new(ErrorKind::Host, 20)));
        assert_eq!(
            name_addr_values(b" ").collect::<Vec<_>>(),
            vec![Err(Error::new(ErrorKind::NameAddr, 1))]
        );
        assert_eq!(
            name_addr_values(b"<sip:a@b.c>,").nth(1),
            Some(Err(Error::new(ErrorKind::NameAddr, 12)))
        );
        // Offsets of parameter errors are relative to the whole header value.
        let a = name_addr_values(b"<sip:a@b.c>, <sip:d@e.f>;expires=x")
            .nth(1)
            .unwrap()
            .unwrap();
        assert_eq!(a.expires(), Some(Err(Error::new(ErrorKind::Number, 33))));

        // RFC 3261 §20.30 / §24.2 Record-Route.
        let rr: Vec<_> = name_addr_values(
            b" <sip:server10.biloxi.com;lr>,\r\n <sip:bigbox3.site3.atlanta.com;lr>",
        )
        .collect::<Result<_>>()
        .unwrap();
        assert_eq!(rr.len(), 2);
        assert!(rr.iter().all(|a| a.uri.has_lr()));
        assert_eq!(
            rr[1].uri.host(),
            Some(Host::Name(b"bigbox3.site3.atlanta.com"))
        );

        let c: Vec<_> = contact_values(b" * ").collect();
        assert_eq!(c, vec![Ok(ContactValue::Star)]);
        let c: Vec<_> = contact_values(b"*, <sip:a@b.c>").collect();
        assert_eq!(c[1], Err(Error::new(ErrorKind::NameAddr, 3)));
        let c: Vec<_> = contact_values(b"<sip:a@b.c>, *").collect();
        assert!(matches!(c[0], Ok(ContactValue::Addr(_))));
        assert_eq!(c[1], Err(Error::new(ErrorKind::NameAddr, 13)));
        let c: Vec<_> = contact_values(b"<sip:a@b.c>;expires=0, sip:d@e.f;q=0.5")
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(ContactValue::parse(b"*"), Ok(ContactValue::Star));
        assert_eq!(
            ContactValue::parse(b"*;x").unwrap_err().kind,
            ErrorKind::NameAddr
        );
    }

    proptest! {
        /// `;tag=` and a token, where the shortcut takes it, is what the parameter walk finds.
        #[test]
        fn only_tag_as_the_walk(
            v in "(;tag=|;TAG=|;tag =|;tag=\"|;tag)?[a-z0-9.!%*_+`'~\\-;=\" \r\n,<>]{0,12}",
            tail in proptest::collection::vec(any::<u8>(), 0..2),
            at in 0..2usize,
        ) {
            let mut s = b">".repeat(at);
            s.extend_from_slice(v.as_bytes());
            s.extend_from_slice(&tail);
            if let Some(found) = NameAddrView::only_tag(&s, at) {
                prop_assert_eq!(Ok(found), NameAddrView::params_walk(&s, at), "{:?}", s);
            }
            prop_assert_eq!(NameAddrView::parse_params(&s, at), NameAddrView::params_walk(&s, at));
        }

        #[test]
        fn name_addr_never_panics(v in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b"sip:@;=<>\",?* \t\r\n\\ab.1".to_vec())], 0..96)) {
            for r in [NameAddr::parse(&v)] {
                match r {
                    Ok(a) => { let _ = (a.tag(), a.q(), a.expires(), a.display_name()); }
                    Err(e) => prop_assert!(e.offset <= v.len()),
                }
            }
            for r in name_addr_values(&v) {
                if let Ok(a) = r {
                    if let Some(Err(e)) = a.expires() { prop_assert!(e.offset <= v.len()); }
                    if let Some(Err(e)) = a.q() { prop_assert!(e.offset <= v.len()); }
                } else if let Err(e) = r {
                    prop_assert!(e.offset <= v.len());
                }
            }
            for r in contact_values(&v) {
                if let Err(e) = r { prop_assert!(e.offset <= v.len()); }
            }
        }

        #[test]
        fn name_addr_print_reparse(
            display in proptest::option::of(prop_oneof!["[A-Za-z][A-Za-z0-9.-]{0,5}( [A-Za-z0-9]{1,5}){0,2}", "\"[A-Za-z ,;<>@]{0,8}\""]),
            angle in any::<bool>(),
            user in "[a-z0-9]{1,6}",
            host in "[a-z]{1,6}\\.(com|net)",
            uparams in proptest::collection::vec("[a-z]{1,4}(=[a-z0-9]{1,4})?", 0..3),
            hparams in proptest::collection::vec(("[a-z]{1,5}", proptest::option::of("[a-z0-9.]{1,5}|\"[a-z ,;]{0,5}\"")), 0..3),
            ws in "[ \t]{0,2}(\r\n )?",
        ) {
            let angle = angle || display.is_some() || !uparams.is_empty();
            let mut uri = format!("sip:{user}@{host}");
            for p in &uparams { uri.push(';'); uri.push_str(p); }
            let mut s = String::new();
            if let Some(d) = &display { s.push_str(d); s.push_str(&ws); }
            if angle { s.push('<'); s.push_str(&uri); s.push('>'); } else { s.push_str(&uri); }
            for (n, v) in &hparams {
                s.push_str(&ws); s.push(';'); s.push_str(&ws); s.push_str(n);
                if let Some(v) = v { s.push_str(&ws); s.push('='); s.push_str(&ws); s.push_str(v); }
            }
            let a = NameAddr::parse(s.as_bytes()).unwrap();
            prop_assert_eq!(a.display_name_raw, display.as_deref().map(str::as_bytes));
            prop_assert_eq!(a.uri_raw, uri.as_bytes());
            prop_assert_eq!(a.angle_brackets, angle);
            prop_assert_eq!(a.uri.user(), Some(user.as_bytes()));
            let got: Vec<_> = a.params.iter().map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec))).collect();
            let want: Vec<_> = hparams.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_ref().map(|v| v.as_bytes().to_vec()))).collect();
            prop_assert_eq!(got, want);
            // Print canonically from the parsed view and parse again: same view.
            let mut p = String::new();
            if let Some(d) = a.display_name_raw { p.push_str(core::str::from_utf8(d).unwrap()); p.push(' '); }
            p.push('<'); p.push_str(core::str::from_utf8(a.uri_raw).unwrap()); p.push('>');
            for (n, v) in a.params.iter() {
                p.push(';'); p.push_str(core::str::from_utf8(n).unwrap());
                if let Some(v) = v { p.push('='); p.push_str(core::str::from_utf8(v).unwrap()); }
            }
            let b = NameAddr::parse(p.as_bytes()).unwrap();
            prop_assert_eq!(b.display_name_raw, a.display_name_raw);
            prop_assert_eq!(b.uri, a.uri);
            prop_assert_eq!(b.params.iter().collect::<Vec<_>>(), a.params.iter().collect::<Vec<_>>());
        }
    }
}
