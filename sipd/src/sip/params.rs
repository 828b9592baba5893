//! `;name[=value]` parameter lists: URI parameters (RFC 3261 `uri-parameters`, RFC 3966 `par`)
//! and header parameters (`generic-param`, `via-params`, `contact-params`, ...).
//!
//! A [`Params`] is validated once when it is built ([`Params::parse`], [`Params::parse_uri`]);
//! after that, iteration and look-ups cannot fail and allocate nothing.

use super::error::{Error, ErrorKind, Result};
use super::values::{
    GEN_VALUE, PARAMCHAR, TOKEN, offset_in, run, run_escaped, scan_quoted, skip_lws, unquote,
};

/// A validated parameter list, borrowing its raw bytes (empty, or starting with `;` possibly
/// preceded by LWS). Names compare case-insensitively; values are returned raw: a quoted-string
/// value keeps its quotes (see [`unquote`]) and URI parameters keep their
/// `%` escapes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a [u8],
}

impl<'a> Params<'a> {
    /// No parameters.
    pub const fn empty() -> Self {
        Params { raw: b"" }
    }

    /// Header parameters: `*( SEMI generic-param )` with `generic-param = token [ EQUAL
    /// gen-value ]`, `gen-value = token / host / quoted-string`, LWS allowed around `;` and `=`
    /// and at the end. Errors (offset into `raw`): `Param` for an empty name or value or a byte
    /// that does not belong, `QuotedString` for a bad quoted value.
    pub fn parse(raw: &'a [u8]) -> Result<Self> {
        Self::parse_visit(raw, |_, _| Ok(()))
    }

    /// [`Params::parse`], calling `visit(name, value)` for each parameter as it is validated, so
    /// that a caller can check and pick out the ones it knows in the same pass (an error from
    /// `visit` ends the parse).
    #[inline]
    pub fn parse_visit(
        raw: &'a [u8],
        mut visit: impl FnMut(&'a [u8], Option<&'a [u8]>) -> Result<()>,
    ) -> Result<Self> {
        Self::parse_visit_tokens(raw, |name, value, _| visit(name, value))
    }

    /// [`Params::parse_visit`], also telling `visit` whether the value is a non-empty `token`
    /// (which the walk has just found out, so a caller need not scan the value again).
    #[inline]
    pub(crate) fn parse_visit_tokens(
        raw: &'a [u8],
        mut visit: impl FnMut(&'a [u8], Option<&'a [u8]>, bool) -> Result<()>,
    ) -> Result<Self> {
        let mut i = 0;
        loop {
            i = skip_lws(raw, i);
            let Some(&c) = raw.get(i) else { break };
            if c != b';' {
                return Err(Error::new(ErrorKind::Param, i));
            }
            i = skip_lws(raw, i + 1);
            // `branch=` (in every Via) without the table run: `=` is no token byte, so the run
            // would end there.
            let name_end = if raw.get(i..i + 7) == Some(b"branch=") {
                i + 6
            } else if raw.get(i..i + 5) == Some(b"rport")
                && !raw.get(i + 5).is_some_and(|&c| TOKEN[c as usize])
            {
                // `rport` (RFC 3581, in most Vias) then a non-token byte: where the run ends.
                i + 5
            } else {
                run(raw, i, &TOKEN)
            };
            if name_end == i {
                return Err(Error::new(ErrorKind::Param, i));
            }
            let name = &raw[i..name_end];
            i = skip_lws(raw, name_end);
            let mut value = None;
            let mut value_is_token = false;
            if raw.get(i) == Some(&b'=') {
                let value_start = skip_lws(raw, i + 1);
                i = if raw.get(value_start) == Some(&b'"') {
                    scan_quoted(raw, value_start)?
                } else {
                    // Values are mostly tokens (branches, tags): a vector scan first, then
                    // the rest of `host` (`[`, `]`, `:`) byte by byte.
                    let token_end = value_start + super::scan::token_len(&raw[value_start..]);
                    let end = run(raw, token_end, &GEN_VALUE);
                    if end == value_start {
                        return Err(Error::new(ErrorKind::Param, value_start));
                    }
                    value_is_token = end == token_end;
                    end
                };
                value = Some(&raw[value_start..i]);
            }
            visit(name, value, value_is_token)?;
        }
        Ok(Params { raw })
    }

    /// A list with no parameter: `raw` must be nothing but LWS (which [`Params::parse`] accepts
    /// as such), as a caller that just skipped it knows.
    #[inline]
    pub(crate) fn lws_only(raw: &'a [u8]) -> Self {
        debug_assert_eq!(super::values::skip_lws(raw, 0), raw.len());
        Params { raw }
    }

    /// A list the caller has checked exactly as [`Params::parse`] would accept it.
    #[inline]
    pub(crate) fn validated(raw: &'a [u8]) -> Self {
        debug_assert!(Self::parse(raw).is_ok());
        Params { raw }
    }

    /// URI parameters: `*( ";" pname [ "=" pvalue ] )` with `pname`/`pvalue` = `1*paramchar`
    /// (`%` escapes validated, kept raw), no LWS. Errors (offset into `raw`): `Param` for an
    /// empty name or value or a byte that does not belong, `Uri` for a bad `%` escape.
    pub fn parse_uri(raw: &'a [u8]) -> Result<Self> {
        match Self::parse_uri_until_query(raw)? {
            (params, len) if len == raw.len() => Ok(params),
            // A `?` where a `;` belongs.
            (_, len) => Err(Error::new(ErrorKind::Param, len)),
        }
    }

    /// [`Params::parse_uri`] of the bytes of `raw` before its first `?` (where a SIP URI's
    /// headers start), and their length: no byte of a parameter is a `?`, so the list ends there
    /// (or fails before it) exactly as a parse of just those bytes would.
    // Always inline (two callers): the call's register saves and returned `Result` cost about
    // as much as the usual one or two parameters.
    #[inline(always)]
    pub(crate) fn parse_uri_until_query(raw: &'a [u8]) -> Result<(Self, usize)> {
        let mut i = 0;
        while let Some(&c) = raw.get(i) {
            if c == b'?' {
                break;
            }
            if c != b';' {
                return Err(Error::new(ErrorKind::Param, i));
            }
            i += 1;
            // The commonest ones (`user=phone`, `lr`) read as words: followed by the end, `;` or
            // `?` (no paramchar), they end where the runs below would.
            let rest = raw.get(i..).unwrap_or_default();
            let word = if rest.starts_with(b"user=phone") {
                10
            } else if rest.starts_with(b"lr") {
                2
            } else {
                0
            };
            if word > 0 && matches!(rest.get(word), None | Some(b';' | b'?')) {
                i += word;
                continue;
            }
            let end = run_escaped(raw, i, &PARAMCHAR, ErrorKind::Uri)?;
            if end == i {
                return Err(Error::new(ErrorKind::Param, i));
            }
            i = end;
            if raw.get(i) == Some(&b'=') {
                i += 1;
                let end = run_escaped(raw, i, &PARAMCHAR, ErrorKind::Uri)?;
                if end == i {
                    return Err(Error::new(ErrorKind::Param, i));
                }
                i = end;
            }
        }
        Ok((Params { raw: &raw[..i] }, i))
    }

    /// The raw bytes, as given to `parse`.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// True when there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The parameters in order, as `(name, value)`; `value` is `None` for `;name` and raw
    /// otherwise (quoted strings keep their quotes).
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            raw: self.raw,
            pos: 0,
        }
    }

    /// The first parameter named `name` (ASCII case-insensitive): `None` if absent,
    /// `Some(None)` for `;name`, `Some(Some(value))` for `;name=value` (raw).
    pub fn get(&self, name: &[u8]) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of the first parameter named `name`, with the quotes of a quoted-string
    /// removed (backslash escapes kept raw); `None` if absent or without a value.
    pub fn value(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.get(name).flatten().map(unquote)
    }

    /// Is there a parameter named `name` (with or without a value)?
    pub fn contains(&self, name: &[u8]) -> bool {
        self.get(name).is_some()
    }

    /// Offset of `value` (a slice returned by this list) inside `raw`.
    pub(crate) fn offset_of(&self, value: &[u8]) -> usize {
        offset_in(self.raw, value)
    }
}

impl<'a> IntoIterator for Params<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);
    type IntoIter = ParamIter<'a>;
    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over a [`Params`].
#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    raw: &'a [u8],
    pos: usize,
}

#[inline]
fn is_delim(c: u8) -> bool {
    matches!(c, b';' | b'=' | b' ' | b'\t' | b'\r' | b'\n')
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        // The list was validated when built; this only finds the boundaries again and stops at
        // anything unexpected instead of failing.
        let s = self.raw;
        let mut i = skip_lws(s, self.pos);
        if s.get(i) != Some(&b';') {
            self.pos = s.len();
            return None;
        }
        i = skip_lws(s, i + 1);
        let name_start = i;
        while s.get(i).is_some_and(|&c| !is_delim(c)) {
            i += 1;
        }
        let name = s.get(name_start..i).unwrap_or_default();
        let after_name = skip_lws(s, i);
        let mut value = None;
        if s.get(after_name) == Some(&b'=') {
            let vs = skip_lws(s, after_name + 1);
            let ve = if s.get(vs) == Some(&b'"') {
                scan_quoted(s, vs).unwrap_or(s.len())
            } else {
                let mut j = vs;
                while s.get(j).is_some_and(|&c| !is_delim(c)) {
                    j += 1;
                }
                j
            };
            value = Some(s.get(vs..ve).unwrap_or_default());
            i = ve;
        }
        self.pos = i;
        if name.is_empty() {
            self.pos = s.len();
            return None;
        }
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(p: Params<'_>) -> Vec<(&[u8], Option<&[u8]>)> {
        p.iter().collect()
    }

    #[test]
    fn header_params_with_lws() {
        // RFC 4475 wsinv From / To / m.
        let p = Params::parse(b"\r\n  ;\r\n  tag = 98asjd8").unwrap();
        assert_eq!(list(p), vec![(&b"tag"[..], Some(&b"98asjd8"[..]))]);
        let p = Params::parse(b" ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33")
            .unwrap();
        assert_eq!(
            list(p),
            vec![
                (&b"newparam"[..], Some(&b"newvalue"[..])),
                (b"secondparam", None),
                (b"q", Some(b"0.33")),
            ]
        );
        assert_eq!(p.get(b"SECONDPARAM"), Some(None));
        assert_eq!(p.get(b"Q"), Some(Some(&b"0.33"[..])));
        assert_eq!(p.get(b"x"), None);
        assert!(p.contains(b"NewParam"));
        assert!(!p.is_empty());
        assert!(Params::parse(b"").unwrap().is_empty());
        assert!(Params::parse(b"  ").unwrap().is_empty());
    }

    #[test]
    fn header_params_values() {
        // RFC 4475 intmeth From: quoted UTF-8 value and a tag full of token characters.
        let raw = b";fromParam''~+*_!.-%=\"\xd1\x80\xd0\xb0\xd0\xb1\xd0\xbe\xd1\x82\xd0\xb0\xd1\x8e\xd1\x89\xd0\xb8\xd0\xb9\";tag=_token~1'+`*%!-.";
        let p = Params::parse(raw).unwrap();
        let v = list(p);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].0, b"fromParam''~+*_!.-%");
        assert!(v[0].1.unwrap().starts_with(b"\""));
        assert_eq!(p.value(b"fromparam''~+*_!.-%").unwrap().len(), 20);
        assert_eq!(p.value(b"tag"), Some(&b"_token~1'+`*%!-."[..]));
        // Quoted values with escaped quotes and separators inside.
        let p = Params::parse(br#";a="x;y=\"z\"";b=[2001:db8::1];c=192.0.2.1"#).unwrap();
        assert_eq!(p.get(b"a"), Some(Some(&br#""x;y=\"z\"""#[..])));
        assert_eq!(p.value(b"a"), Some(&br#"x;y=\"z\""#[..]));
        assert_eq!(p.value(b"b"), Some(&b"[2001:db8::1]"[..]));
        assert_eq!(p.value(b"c"), Some(&b"192.0.2.1"[..]));
    }

    #[test]
    fn header_params_errors() {
        let e = |r: &[u8]| Params::parse(r).unwrap_err();
        // RFC 4475 badinv01: `;;;;` after a Contact.
        assert_eq!(e(b";;;;"), Error::new(ErrorKind::Param, 1));
        assert_eq!(e(b";a=1;"), Error::new(ErrorKind::Param, 5));
        assert_eq!(e(b";a="), Error::new(ErrorKind::Param, 3));
        assert_eq!(e(b";a=b c"), Error::new(ErrorKind::Param, 5));
        assert_eq!(e(b"x"), Error::new(ErrorKind::Param, 0));
        assert_eq!(e(b";a=\"x"), Error::new(ErrorKind::QuotedString, 3));
        assert_eq!(e(b";a b"), Error::new(ErrorKind::Param, 3));
        assert_eq!(e(b";a=<x>"), Error::new(ErrorKind::Param, 3));
    }

    #[test]
    fn branch_name_as_the_run_finds_it() {
        let p =
            Params::parse(b";branch=z9;branch;branchy=1;BRANCH=2;branch =3;branch=").unwrap_err();
        assert_eq!(p, Error::new(ErrorKind::Param, 54));
        let p = Params::parse(b";branch=z9;branch;branchy=1;BRANCH=2;branch =3").unwrap();
        assert_eq!(
            list(p),
            vec![
                (&b"branch"[..], Some(&b"z9"[..])),
                (&b"branch"[..], None),
                (&b"branchy"[..], Some(&b"1"[..])),
                (&b"BRANCH"[..], Some(&b"2"[..])),
                (&b"branch"[..], Some(&b"3"[..])),
            ]
        );
    }

    #[test]
    fn uri_params() {
        let p = Params::parse_uri(b";lr;unknownwith=value;unknown-no-value").unwrap();
        assert_eq!(
            list(p),
            vec![
                (&b"lr"[..], None),
                (&b"unknownwith"[..], Some(&b"value"[..])),
                (&b"unknown-no-value"[..], None)
            ]
        );
        // RFC 4475 esc01: escaped names and values stay raw.
        let p = Params::parse_uri(b";%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(
            list(p),
            vec![
                (&b"%6C%72"[..], None),
                (&b"n%61me"[..], Some(&b"v%61lue%25%34%31"[..]))
            ]
        );
        assert_eq!(
            Params::parse_uri(b";maddr=[::1]").unwrap().value(b"maddr"),
            Some(&b"[::1]"[..])
        );
        assert_eq!(
            Params::parse_uri(b";a=%4").unwrap_err(),
            Error::new(ErrorKind::Uri, 3)
        );
        assert_eq!(
            Params::parse_uri(b";a=").unwrap_err(),
            Error::new(ErrorKind::Param, 3)
        );
        assert_eq!(
            Params::parse_uri(b";;").unwrap_err(),
            Error::new(ErrorKind::Param, 1)
        );
        assert_eq!(
            Params::parse_uri(b"; a").unwrap_err(),
            Error::new(ErrorKind::Param, 1)
        );
        assert_eq!(
            Params::parse_uri(b";a=\"b\"").unwrap_err(),
            Error::new(ErrorKind::Param, 3)
        );
    }

    /// [`Params::parse_uri_until_query`] without its word shortcut.
    fn uri_walk(raw: &[u8]) -> Result<(Params<'_>, usize)> {
        let mut i = 0;
        while let Some(&c) = raw.get(i) {
            if c == b'?' {
                break;
            }
            if c != b';' {
                return Err(Error::new(ErrorKind::Param, i));
            }
            i += 1;
            let end = run_escaped(raw, i, &PARAMCHAR, ErrorKind::Uri)?;
            if end == i {
                return Err(Error::new(ErrorKind::Param, i));
            }
            i = end;
            if raw.get(i) == Some(&b'=') {
                i += 1;
                let end = run_escaped(raw, i, &PARAMCHAR, ErrorKind::Uri)?;
                if end == i {
                    return Err(Error::new(ErrorKind::Param, i));
                }
                i = end;
            }
        }
        Ok((Params { raw: &raw[..i] }, i))
    }

    #[test]
    fn uri_param_words_as_the_walk() {
        for word in [
            &b"user=phone"[..],
            b"lr",
            b"user=phon",
            b"l",
            b"user=",
            b"USER=phone",
        ] {
            for next in [
                &b""[..],
                b";",
                b"?",
                b";lr",
                b"?a=b",
                b"=",
                b"=x",
                b"%41",
                b"%4",
                b"x",
                b" ",
                b"[",
                b";;",
            ] {
                let v = [&b";"[..], word, next].concat();
                assert_eq!(Params::parse_uri_until_query(&v), uri_walk(&v), "{v:?}");
                let v = [&b";a=b;"[..], word, next].concat();
                assert_eq!(Params::parse_uri_until_query(&v), uri_walk(&v), "{v:?}");
            }
        }
    }

    /// One visited parameter: name, value, whether the value is a token.
    type Visited<'a> = (&'a [u8], Option<&'a [u8]>, bool);

    /// [`Params::parse_visit_tokens`] without its word shortcuts: what it must visit.
    fn visit_walk(raw: &[u8]) -> Result<Vec<Visited<'_>>> {
        let mut seen = Vec::new();
        let mut i = 0;
        loop {
            i = skip_lws(raw, i);
            let Some(&c) = raw.get(i) else { break };
            if c != b';' {
                return Err(Error::new(ErrorKind::Param, i));
            }
            i = skip_lws(raw, i + 1);
            let name_end = run(raw, i, &TOKEN);
            if name_end == i {
                return Err(Error::new(ErrorKind::Param, i));
            }
            let name = &raw[i..name_end];
            i = skip_lws(raw, name_end);
            let mut value = None;
            let mut tok = false;
            if raw.get(i) == Some(&b'=') {
                let vs = skip_lws(raw, i + 1);
                i = if raw.get(vs) == Some(&b'"') {
                    scan_quoted(raw, vs)?
                } else {
                    let te = run(raw, vs, &TOKEN);
                    let end = run(raw, te, &GEN_VALUE);
                    if end == vs {
                        return Err(Error::new(ErrorKind::Param, vs));
                    }
                    tok = end == te;
                    end
                };
                value = Some(&raw[vs..i]);
            }
            seen.push((name, value, tok));
        }
        Ok(seen)
    }

    proptest! {
        /// The `branch=` and `rport` words are read where the token run would end.
        #[test]
        fn visit_words_as_the_walk(v in proptest::collection::vec(
            prop_oneof![
                any::<u8>().prop_map(|c| vec![c]),
                proptest::sample::select(vec![
                    b";".to_vec(), b"=".to_vec(), b" ".to_vec(), b"rport".to_vec(),
                    b";rport".to_vec(), b";branch=".to_vec(), b"z9hG4bK1".to_vec(),
                    b"x".to_vec(), b"5060".to_vec(), b"\"".to_vec(), b"[::1]".to_vec(),
                ]),
            ], 0..10)) {
            let v = v.concat();
            let mut seen = Vec::new();
            let got = Params::parse_visit_tokens(&v, |n, val, tok| {
                seen.push((n, val, tok));
                Ok(())
            });
            match visit_walk(&v) {
                Ok(want) => {
                    prop_assert_eq!(got.map(|p| p.raw()), Ok(&v[..]));
                    prop_assert_eq!(seen, want);
                }
                Err(e) => prop_assert_eq!(got.map(|p| p.raw()), Err(e)),
            }
        }

        #[test]
        fn uri_params_as_the_walk(v in proptest::collection::vec(
            prop_oneof![
                any::<u8>().prop_map(|c| vec![c]),
                proptest::sample::select(vec![
                    b";".to_vec(), b"?".to_vec(), b"=".to_vec(), b"%41".to_vec(),
                    b"lr".to_vec(), b"user=phone".to_vec(), b";lr".to_vec(),
                    b";user=phone".to_vec(),
                ]),
            ], 0..12)) {
            let v = v.concat();
            prop_assert_eq!(Params::parse_uri_until_query(&v), uri_walk(&v));
        }

        #[test]
        fn params_never_panic(v in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b";=\" \t\r\n\\%ab1[]:".to_vec())], 0..96)) {
            for p in [Params::parse(&v), Params::parse_uri(&v)] {
                match p {
                    Ok(p) => {
                        for (n, val) in p.iter() {
                            prop_assert!(!n.is_empty());
                            let _ = val;
                        }
                        let _ = p.get(b"tag");
                    }
                    Err(e) => prop_assert!(e.offset <= v.len()),
                }
            }
            // Iterating unvalidated bytes must not panic either.
            for _ in (Params { raw: &v }).iter() {}
        }

        #[test]
        fn params_print_reparse(ps in proptest::collection::vec(
            ("[a-zA-Z][a-zA-Z0-9.!%*_+`'~-]{0,8}", proptest::option::of("[a-zA-Z0-9.-]{1,8}|\"[a-z ;,=]{0,8}\"")), 0..5),
            ws in "[ \t]{0,2}(\r\n )?") {
            let mut s = String::new();
            for (n, v) in &ps {
                s.push_str(&ws); s.push(';'); s.push_str(&ws); s.push_str(n);
                if let Some(v) = v { s.push_str(&ws); s.push('='); s.push_str(&ws); s.push_str(v); }
            }
            let p = Params::parse(s.as_bytes()).unwrap();
            let got: Vec<_> = p.iter().map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec))).collect();
            let want: Vec<_> = ps.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_ref().map(|v| v.as_bytes().to_vec()))).collect();
            prop_assert_eq!(got, want);
        }
    }
}
