//! Authorization / Proxy-Authorization credentials and WWW-Authenticate / Proxy-Authenticate
//! challenges (RFC 3261 §20.7, §20.27, §20.28, §20.44, §25; RFC 2617 digest).
//!
//! ```text
//! credentials = auth-scheme LWS auth-param *( COMMA auth-param )
//! challenge   = auth-scheme LWS auth-param *( COMMA auth-param )
//! auth-param  = auth-param-name EQUAL ( token / quoted-string )
//! ```
//!
//! `Digest` and unknown schemes (RFC 4475 regaut01) share this shape. Token68 forms (`Basic
//! dXNlcjpwYXNz`) are not part of SIP and are rejected. Quoted values are returned without their
//! quotes but with their `\` escapes raw (digest values practically never contain any; use
//! [`unescape_quoted_into`](super::values::unescape_quoted_into) where it matters).

use super::error::{Error, ErrorKind, Result};
use super::values::{TOKEN, run, scan_quoted, skip_lws, trim_lws_range, unquote};

/// Parsed credentials or challenge: the scheme and its validated parameter list.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Auth<'a> {
    /// `Digest` or any other token (compare case-insensitively; see [`Auth::is_digest`]).
    pub scheme: &'a [u8],
    params: &'a [u8],
}

/// Authorization / Proxy-Authorization.
pub type Credentials<'a> = Auth<'a>;
/// WWW-Authenticate / Proxy-Authenticate.
pub type Challenge<'a> = Auth<'a>;

fn err(offset: usize) -> Error {
    Error::new(ErrorKind::Auth, offset)
}

impl<'a> Auth<'a> {
    /// Parses a credentials or challenge value (LWS around it ignored). Errors (offset into
    /// `value`): `Auth` for a missing scheme, missing LWS or parameters, a parameter without
    /// `=value`, or a bad separator; `QuotedString` for a bad quoted value.
    pub fn parse(value: &'a [u8]) -> Result<Auth<'a>> {
        let (start, end) = trim_lws_range(value);
        let s = value.get(..end).unwrap_or_default();
        let se = run(s, start, &TOKEN);
        if se == start {
            return Err(err(start));
        }
        let ps = skip_lws(s, se);
        if ps == se || ps == end {
            return Err(err(ps));
        }
        let mut i = ps;
        loop {
            let ne = run(s, i, &TOKEN);
            if ne == i {
                return Err(err(i));
            }
            i = skip_lws(s, ne);
            if s.get(i) != Some(&b'=') {
                return Err(err(i));
            }
            i = skip_lws(s, i + 1);
            if s.get(i) == Some(&b'"') {
                i = scan_quoted(s, i)?;
            } else {
                let ve = run(s, i, &TOKEN);
                if ve == i {
                    return Err(err(i));
                }
                i = ve;
            }
            i = skip_lws(s, i);
            match s.get(i) {
                None => break,
                Some(b',') => i = skip_lws(s, i + 1),
                Some(_) => return Err(err(i)),
            }
        }
        Ok(Auth {
            scheme: s.get(start..se).unwrap_or_default(),
            params: s.get(ps..).unwrap_or_default(),
        })
    }

    /// Scheme is `Digest` (case-insensitive).
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case(b"Digest")
    }

    /// The parameters in order as `(name, raw value)`; quoted values keep their quotes.
    pub fn params(&self) -> AuthParams<'a> {
        AuthParams {
            s: self.params,
            pos: 0,
        }
    }

    /// The first parameter named `name` (case-insensitive), without quotes (escapes raw).
    pub fn param(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.params()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unquote(v))
    }

    pub fn username(&self) -> Option<&'a [u8]> {
        self.param(b"username")
    }
    pub fn realm(&self) -> Option<&'a [u8]> {
        self.param(b"realm")
    }
    pub fn nonce(&self) -> Option<&'a [u8]> {
        self.param(b"nonce")
    }
    /// The digest-uri (`uri="sip:..."`), raw.
    pub fn uri(&self) -> Option<&'a [u8]> {
        self.param(b"uri")
    }
    pub fn response(&self) -> Option<&'a [u8]> {
        self.param(b"response")
    }
    pub fn algorithm(&self) -> Option<&'a [u8]> {
        self.param(b"algorithm")
    }
    pub fn cnonce(&self) -> Option<&'a [u8]> {
        self.param(b"cnonce")
    }
    pub fn opaque(&self) -> Option<&'a [u8]> {
        self.param(b"opaque")
    }
    /// `qop`: one value in credentials, a comma-separated list in a challenge (iterate it with
    /// [`token_list`](super::values::token_list)).
    pub fn qop(&self) -> Option<&'a [u8]> {
        self.param(b"qop")
    }
    /// The nonce count (8 hex digits), raw.
    pub fn nc(&self) -> Option<&'a [u8]> {
        self.param(b"nc")
    }
    /// `stale`: `Some(true)` for `true` (case-insensitive), `Some(false)` for any other value.
    pub fn stale(&self) -> Option<bool> {
        self.param(b"stale")
            .map(|v| v.eq_ignore_ascii_case(b"true"))
    }
}

/// Iterator returned by [`Auth::params`].
#[derive(Clone, Debug)]
pub struct AuthParams<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AuthParams<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The list was validated by `Auth::parse`; stop at anything unexpected.
        let s = self.s;
        let ns = skip_lws(s, self.pos);
        let ne = run(s, ns, &TOKEN);
        let eq = skip_lws(s, ne);
        if ne == ns || s.get(eq) != Some(&b'=') {
            self.pos = s.len();
            return None;
        }
        let vs = skip_lws(s, eq + 1);
        let ve = if s.get(vs) == Some(&b'"') {
            scan_quoted(s, vs).unwrap_or(s.len())
        } else {
            run(s, vs, &TOKEN)
        };
        let next = skip_lws(s, ve);
        self.pos = if s.get(next) == Some(&b',') {
            next + 1
        } else {
            s.len()
        };
        Some((
            s.get(ns..ne).unwrap_or_default(),
            s.get(vs..ve).unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::values::token_list;
    use proptest::prelude::*;

    #[test]
    fn rfc3261_digest() {
        // §20.7 / §24 call flow.
        let v = b" Digest username=\"bob\",\r\n        realm=\"biloxi.com\",\r\n        nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\r\n        uri=\"sip:bob@biloxi.com\",\r\n        qop=auth,\r\n        nc=00000001,\r\n        cnonce=\"0a4f113b\",\r\n        response=\"6629fae49393a05397450978507c4ef1\",\r\n        opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";
        let a = Auth::parse(v).unwrap();
        assert!(a.is_digest());
        assert_eq!(a.username(), Some(&b"bob"[..]));
        assert_eq!(a.realm(), Some(&b"biloxi.com"[..]));
        assert_eq!(a.nonce(), Some(&b"dcd98b7102dd2f0e8b11d0f600bfb0c093"[..]));
        assert_eq!(a.uri(), Some(&b"sip:bob@biloxi.com"[..]));
        assert_eq!(a.qop(), Some(&b"auth"[..]));
        assert_eq!(a.nc(), Some(&b"00000001"[..]));
        assert_eq!(a.cnonce(), Some(&b"0a4f113b"[..]));
        assert_eq!(a.response(), Some(&b"6629fae49393a05397450978507c4ef1"[..]));
        assert_eq!(a.opaque(), Some(&b"5ccc069c403ebaf9f0171e9517f40e41"[..]));
        assert_eq!(a.algorithm(), None);
        assert_eq!(a.params().count(), 9);
        // §20.44 WWW-Authenticate.
        let c = Auth::parse(b" Digest realm=\"atlanta.com\",\r\n        domain=\"sip:boxesbybob.com\", qop=\"auth\",\r\n        nonce=\"f84f1cec41e6cbe5aea9c8e88d359\",\r\n        opaque=\"\", stale=FALSE, algorithm=MD5").unwrap();
        assert_eq!(c.realm(), Some(&b"atlanta.com"[..]));
        assert_eq!(c.param(b"DOMAIN"), Some(&b"sip:boxesbybob.com"[..]));
        assert_eq!(c.opaque(), Some(&b""[..]));
        assert_eq!(c.stale(), Some(false));
        assert_eq!(c.algorithm(), Some(&b"MD5"[..]));
        let c = Auth::parse(b"digest realm=\"a\", qop=\"auth,auth-int\", stale=TRUE").unwrap();
        assert!(c.is_digest());
        assert_eq!(c.stale(), Some(true));
        let q: Vec<_> = token_list(c.qop().unwrap()).collect::<Result<_>>().unwrap();
        assert_eq!(q, vec![&b"auth"[..], b"auth-int"]);
        // Quoted values with commas and escaped quotes.
        let a = Auth::parse(br#"Digest username="a\"b,c" , realm = "r""#).unwrap();
        assert_eq!(a.username(), Some(&br#"a\"b,c"#[..]));
        assert_eq!(a.realm(), Some(&b"r"[..]));
    }

    #[test]
    fn rfc4475_regaut01() {
        let a = Auth::parse(b" NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(a.scheme, b"NoOneKnowsThisScheme");
        assert!(!a.is_digest());
        assert_eq!(a.param(b"opaque-data"), Some(&b"here"[..]));
        assert_eq!(
            a.params().collect::<Vec<_>>(),
            vec![(&b"opaque-data"[..], &b"here"[..])]
        );
    }

    #[test]
    fn invalid() {
        let e = |s: &[u8]| Auth::parse(s).unwrap_err();
        assert_eq!(e(b""), Error::new(ErrorKind::Auth, 0));
        assert_eq!(e(b"Digest"), Error::new(ErrorKind::Auth, 6));
        assert_eq!(e(b"Digest "), Error::new(ErrorKind::Auth, 6));
        assert_eq!(e(b"Basic dXNlcjpwYXNz"), Error::new(ErrorKind::Auth, 18));
        assert_eq!(e(b"Basic dXNlcjpwYXNz=="), Error::new(ErrorKind::Auth, 19));
        assert_eq!(e(b"Digest realm"), Error::new(ErrorKind::Auth, 12));
        assert_eq!(e(b"Digest realm="), Error::new(ErrorKind::Auth, 13));
        assert_eq!(e(b"Digest realm=a,"), Error::new(ErrorKind::Auth, 15));
        assert_eq!(e(b"Digest realm=a,,b=c"), Error::new(ErrorKind::Auth, 15));
        assert_eq!(e(b"Digest realm=a b=c"), Error::new(ErrorKind::Auth, 15));
        assert_eq!(
            e(b"Digest realm=\"a"),
            Error::new(ErrorKind::QuotedString, 13)
        );
        assert_eq!(e(b"Digest realm=\"a\"x"), Error::new(ErrorKind::Auth, 16));
        assert_eq!(e(b"\"Digest\" realm=a"), Error::new(ErrorKind::Auth, 0));
    }

    proptest! {
        #[test]
        fn never_panics(v in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b"Digest realm=\",\\ \t\r\nab".to_vec())], 0..96)) {
            match Auth::parse(&v) {
                Ok(a) => { let _ = (a.username(), a.stale(), a.params().count()); }
                Err(e) => prop_assert!(e.offset <= v.len()),
            }
        }

        #[test]
        fn print_reparse(scheme in "Digest|[A-Z][a-z]{1,8}",
                         ps in proptest::collection::vec(("[a-z][a-z-]{0,7}", "[a-zA-Z0-9.-]{1,8}|\"[a-z0-9 ,=:@]{0,10}\""), 1..6),
                         ws in "[ \t]{0,2}(\r\n )?") {
            let body: Vec<String> = ps.iter().map(|(n, v)| format!("{n}{ws}={ws}{v}")).collect();
            let s = format!("{scheme} {ws}{}", body.join(&format!("{ws},{ws}")));
            let a = Auth::parse(s.as_bytes()).unwrap();
            prop_assert_eq!(a.scheme, scheme.as_bytes());
            let got: Vec<_> = a.params().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
            let want: Vec<_> = ps.iter().map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
            prop_assert_eq!(&got, &want);
            let printed: Vec<String> = got.iter().map(|(n, v)| format!("{}={}", String::from_utf8_lossy(n), String::from_utf8_lossy(v))).collect();
            let p = format!("{} {}", scheme, printed.join(", "));
            let b = Auth::parse(p.as_bytes()).unwrap();
            prop_assert_eq!(b.params().collect::<Vec<_>>(), a.params().collect::<Vec<_>>());
        }
    }
}
