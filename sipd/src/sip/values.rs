//! Lexical building blocks shared by the typed header parsers (RFC 3261 §25.1): linear white
//! space, tokens, quoted strings, comma-separated lists and decimal numbers.
//!
//! Every function takes a raw header value exactly as it sits in the message (after the colon,
//! up to the end of the header line): it may start and end with SP/HTAB and may contain folded
//! line breaks (CRLF or a bare LF followed by SP/HTAB), which count as LWS wherever the grammar
//! allows LWS. Results borrow the input; error offsets are relative to it.

use super::error::{Error, ErrorKind, Result};

/// Builds a 256-entry byte class: optionally all ASCII letters and digits, plus `extra`.
const fn class(extra: &[u8], alnum: bool) -> [bool; 256] {
    let mut t = [false; 256];
    if alnum {
        let mut c = b'0';
        while c <= b'9' {
            t[c as usize] = true;
            c += 1;
        }
        let mut c = b'a';
        while c <= b'z' {
            t[c as usize] = true;
            t[(c - 32) as usize] = true;
            c += 1;
        }
    }
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
}

/// `token` (RFC 3261 §25.1): alphanum / `-.!%*_+` `` ` `` `'~`.
pub(crate) static TOKEN: [bool; 256] = class(b"-.!%*_+`'~", true);
/// A generic-param value that is not quoted: `token / host` (host adds `[`, `]`, `:`).
pub(crate) static GEN_VALUE: [bool; 256] = class(b"-.!%*_+`'~[]:", true);
/// `hostname` and `IPv4address` characters: alphanum / `-` / `.`.
pub(crate) static HOSTNAME: [bool; 256] = class(b"-.", true);
/// `alphanum`: ASCII letters and digits (one load a byte where range compares take several).
pub(crate) static ALPHANUM: [bool; 256] = class(b"", true);
/// SIP URI `user` characters other than escapes: unreserved / user-unreserved.
pub(crate) static USER: [bool; 256] = class(b"-_.!~*'()&=+$,;?/", true);
/// SIP URI `password` characters other than escapes.
pub(crate) static PASSWORD: [bool; 256] = class(b"-_.!~*'()&=+$,", true);
/// `paramchar` other than escapes: param-unreserved / unreserved.
pub(crate) static PARAMCHAR: [bool; 256] = class(b"-_.!~*'()[]/:&+$", true);
/// `hname` / `hvalue` characters other than escapes: hnv-unreserved / unreserved.
pub(crate) static HNV: [bool; 256] = class(b"-_.!~*'()[]/?:+$", true);

/// Is `c` a `token` character?
#[inline]
pub fn is_token_char(c: u8) -> bool {
    TOKEN[c as usize]
}

/// ASCII case-insensitive equality of `name` with `lower`, a word of lowercase letters only
/// (parameter names: `branch`, `tag`, ...): `c | 0x20` equals a lowercase letter exactly when `c`
/// is that letter in either case, so a fixed-size compare does it without a per-byte loop.
#[inline(always)]
pub(crate) fn eq_lower_letters<const N: usize>(name: &[u8], lower: &[u8; N]) -> bool {
    debug_assert!(lower.iter().all(u8::is_ascii_lowercase));
    match <&[u8; N]>::try_from(name) {
        Ok(name) => name.map(|c| c | 0x20) == *lower,
        Err(_) => false,
    }
}

/// Is `s` a non-empty `token`?
#[inline]
pub fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&c| is_token_char(c))
}

#[inline]
pub(crate) fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Bytes trimmed from the ends of a value: SP, HTAB and the CR/LF of a fold.
#[inline]
fn is_lws_byte(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Skips LWS starting at `i`: SP/HTAB, and CRLF or bare LF when followed by SP/HTAB (a fold).
/// A line break not followed by SP/HTAB is not LWS and stops the skip. Returns the index of the
/// first byte that is not LWS (`s.len()` at the end).
#[inline(always)]
pub fn skip_lws(s: &[u8], i: usize) -> usize {
    // Nearly always there is no LWS to skip (a byte above SP, which no LWS byte is, or the end
    // of the value): settled inline, so only real LWS pays for the call.
    match s.get(i) {
        Some(&c) if c > b' ' => i,
        None => s.len(),
        // One SP before a byte above SP (the usual separator) is settled inline too.
        Some(b' ') if s.get(i + 1).is_some_and(|&c| c > b' ') => i + 1,
        Some(_) => skip_lws_run(s, i),
    }
}

/// [`skip_lws`] byte by byte, out of line.
#[inline(never)]
fn skip_lws_run(s: &[u8], mut i: usize) -> usize {
    loop {
        match s.get(i) {
            Some(b' ' | b'\t') => i += 1,
            Some(b'\r')
                if s.get(i + 1) == Some(&b'\n') && s.get(i + 2).is_some_and(|&c| is_wsp(c)) =>
            {
                i += 3
            }
            Some(b'\n') if s.get(i + 1).is_some_and(|&c| is_wsp(c)) => i += 2,
            _ => return i.min(s.len()),
        }
    }
}

/// The range `start..end` of `s` without leading and trailing LWS.
#[inline]
pub fn trim_lws_range(s: &[u8]) -> (usize, usize) {
    // Values from the message parser are already trimmed: two compares settle that case (no
    // LWS byte is above SP; the other bytes up to SP take the exact path, which keeps them).
    if let (Some(&a), Some(&z)) = (s.first(), s.last())
        && a > b' '
        && z > b' '
    {
        return (0, s.len());
    }
    let start = s.iter().position(|&c| !is_lws_byte(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| !is_lws_byte(c))
        .map_or(start, |p| p + 1);
    (start, end.max(start))
}

/// `s` without leading and trailing LWS (SP, HTAB, and the CR/LF of folds).
#[inline]
pub fn trim_lws(s: &[u8]) -> &[u8] {
    let (start, end) = trim_lws_range(s);
    s.get(start..end).unwrap_or_default()
}

/// Offset of `inner` inside `outer`, for slices known to borrow from `outer` (used to make errors
/// about a sub-slice relative to the whole value). Safe: only compares addresses.
#[inline]
pub fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize)
        .wrapping_sub(outer.as_ptr() as usize)
        .min(outer.len())
}

/// End of the run of bytes in `class` starting at `i`.
#[inline]
pub(crate) fn run(s: &[u8], i: usize, class: &[bool; 256]) -> usize {
    // A slice iterator: no bounds check per byte.
    s.get(i..).map_or(i, |rest| {
        i + rest
            .iter()
            .position(|&c| !class[c as usize])
            .unwrap_or(rest.len())
    })
}

/// End of the run of bytes in `class` or `%` HEXDIG HEXDIG escapes starting at `i`. A `%` not
/// followed by two hex digits is an error of `kind` at the `%`.
pub(crate) fn run_escaped(
    s: &[u8],
    mut i: usize,
    class: &[bool; 256],
    kind: ErrorKind,
) -> Result<usize> {
    loop {
        i = run(s, i, class);
        match s.get(i) {
            Some(b'%') => {
                let ok = s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
                if !ok {
                    return Err(Error::new(kind, i));
                }
                i += 3;
            }
            _ => return Ok(i),
        }
    }
}

/// `s[start]` must be `"`: scans a quoted-string (RFC 3261 §25.1) and returns the index just past
/// the closing quote. qdtext is LWS, `%x21 / %x23-5B / %x5D-7E` or any non-ASCII byte;
/// quoted-pair is `\` followed by any ASCII byte other than CR and LF.
#[inline(always)]
pub fn scan_quoted(s: &[u8], start: usize) -> Result<usize> {
    // Fast path, inline: no backslash before the closing quote and nothing but qdtext and
    // SP/HTAB (one vector scan stops at the quote, a backslash or a control byte).
    if s.get(start) == Some(&b'"') {
        let len = super::scan::quoted_len(&s[start + 1..]);
        if s.get(start + 1 + len) == Some(&b'"') {
            return Ok(start + len + 2);
        }
    }
    scan_quoted_walk(s, start)
}

/// [`scan_quoted`] byte by byte, out of line.
#[inline(never)]
fn scan_quoted_walk(s: &[u8], start: usize) -> Result<usize> {
    if s.get(start) != Some(&b'"') {
        return Err(Error::new(ErrorKind::QuotedString, start.min(s.len())));
    }
    let mut i = start + 1;
    loop {
        match s.get(i) {
            None => return Err(Error::new(ErrorKind::QuotedString, start)),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match s.get(i + 1) {
                Some(&c) if c <= 0x7f && c != b'\r' && c != b'\n' => i += 2,
                _ => return Err(Error::new(ErrorKind::QuotedString, i)),
            },
            Some(b' ' | b'\t' | b'\r' | b'\n') => {
                let j = skip_lws(s, i);
                if j == i {
                    return Err(Error::new(ErrorKind::QuotedString, i));
                }
                i = j;
            }
            Some(&c) if c >= 0x21 && c != 0x7f => i += 1,
            Some(_) => return Err(Error::new(ErrorKind::QuotedString, i)),
        }
    }
}

/// The inner bytes of a quoted string (`"abc"` -> `abc`); anything else is returned unchanged.
/// Backslash escapes are kept raw: use [`unescape_quoted_into`] to resolve them.
#[inline]
pub fn unquote(v: &[u8]) -> &[u8] {
    match v {
        [b'"', inner @ .., b'"'] => inner,
        _ => v,
    }
}

/// Resolves the `\x` quoted-pairs of the inner bytes of a quoted string into `out` and returns the
/// number of bytes written (never more than `inner.len()`). Errors (`QuotedString`, offset into
/// `inner`): a trailing lone `\`, or `out` too short.
pub fn unescape_quoted_into(inner: &[u8], out: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    let mut i = 0;
    while let Some(&c) = inner.get(i) {
        let b = if c == b'\\' {
            i += 1;
            *inner
                .get(i)
                .ok_or(Error::new(ErrorKind::QuotedString, i - 1))?
        } else {
            c
        };
        *out.get_mut(n)
            .ok_or(Error::new(ErrorKind::QuotedString, i))? = b;
        n += 1;
        i += 1;
    }
    Ok(n)
}

/// Splits a list header value at the commas that separate its elements (RFC 3261 §7.3.1), not at
/// commas inside quoted strings (with `\` escapes) or inside `<...>`. Yields `(offset, element)`
/// with the element LWS-trimmed and `offset` its start in `value`. A value that is empty or only
/// LWS yields nothing; empty elements (`a,,b`, trailing `,`) are yielded as empty slices so that
/// the element parser rejects them. An unterminated quoted string yields an error and ends the
/// iteration.
pub fn split_comma(value: &[u8]) -> SplitComma<'_> {
    let (start, end) = trim_lws_range(value);
    SplitComma {
        s: value,
        pos: start,
        done: start == end,
    }
}

/// Iterator returned by [`split_comma`].
#[derive(Clone, Debug)]
pub struct SplitComma<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> Iterator for SplitComma<'a> {
    type Item = Result<(usize, &'a [u8])>;

    // Always inline: the call's register saves cost about as much as the inline cases.
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        // The usual last (or only) element, settled inline: a run without `,` `"` `<` to the
        // end (a Via), or one `<...>` closing at the end or unclosed (a Route); what the loop in
        // `next_from` would find.
        match s.get(start) {
            Some(&c) if !matches!(c, b',' | b'"' | b'<') => {
                let i = start + super::scan::list_len(&s[start..]);
                if i >= s.len() {
                    self.done = true;
                    return Some(Ok(trimmed(s, start)));
                }
                self.next_from(start, i)
            }
            Some(b'<') => {
                let q = super::scan::angled_len(&s[start + 1..]);
                if start + 2 + q >= s.len() {
                    self.done = true;
                    return Some(Ok(trimmed(s, start)));
                }
                // Past the `>`, as the loop would be.
                self.next_from(start, start + q + 2)
            }
            _ => self.next_from(start, start),
        }
    }
}

/// `s[start..]` LWS-trimmed, with its offset in `s`.
#[inline(always)]
fn trimmed(s: &[u8], start: usize) -> (usize, &[u8]) {
    let elem = s.get(start..).unwrap_or_default();
    let (a, b) = trim_lws_range(elem);
    (start + a, elem.get(a..b).unwrap_or_default())
}

impl<'a> SplitComma<'a> {
    /// The element starting at `start`, scanned from `i` (the bytes before it settled: no `,`
    /// outside quotes or brackets).
    #[inline(never)]
    fn next_from(&mut self, start: usize, mut i: usize) -> Option<Result<(usize, &'a [u8])>> {
        let s = self.s;
        // Jump between the only bytes that matter (a vector scan): `,` ends the element, `"` opens
        // a quoted string, `<` opens a bracketed URI that may itself contain commas (in its user).
        let end = loop {
            // Not scanning when the byte at hand already ends the run (an empty rest after a
            // closing `>`, or a value opening with `<` or `"`) spares a dispatched call that
            // could only answer 0.
            if let Some(&c) = s.get(i)
                && !matches!(c, b',' | b'"' | b'<')
            {
                i += super::scan::list_len(&s[i..]);
            }
            if i >= s.len() {
                self.done = true;
                break s.len();
            }
            match s[i] {
                b',' => {
                    self.pos = i + 1;
                    break i;
                }
                b'"' => match scan_quoted(s, i) {
                    Ok(j) => i = j,
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                },
                // `<`: only `>` matters until it closes; unclosed, it runs to the end.
                _ => {
                    let q = super::scan::angled_len(&s[i + 1..]);
                    if i + 1 + q >= s.len() {
                        self.done = true;
                        break s.len();
                    }
                    i += q + 2;
                }
            }
        };
        // `start <= end <= s.len()`: the element is never out of range.
        let elem = &s[start..end];
        let (a, b) = trim_lws_range(elem);
        Some(Ok((start + a, &elem[a..b])))
    }
}

/// Parses an LWS-trimmed decimal number (Content-Length, Expires, Max-Forwards, ...). Errors
/// (`Number`): empty, a non-digit, or a value above `u32::MAX`. Callers check their own ranges.
pub fn parse_u32(value: &[u8]) -> Result<u32> {
    let (start, end) = trim_lws_range(value);
    if start == end {
        return Err(Error::new(ErrorKind::Number, start));
    }
    // Up to 9 digits cannot overflow (999,999,999 < u32::MAX): no checked arithmetic, and the
    // only error is the first non-digit, where the checked loop below would report it.
    if end - start <= 9 {
        let mut n: u32 = 0;
        for (k, &c) in value.get(start..end).unwrap_or_default().iter().enumerate() {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return Err(Error::new(ErrorKind::Number, start + k));
            }
            n = n * 10 + u32::from(d);
        }
        return Ok(n);
    }
    parse_u32_checked(value, start, end)
}

/// [`parse_u32`] of the non-empty `value[start..end]`, overflow checked at each digit.
#[inline(never)]
fn parse_u32_checked(value: &[u8], start: usize, end: usize) -> Result<u32> {
    let mut n: u32 = 0;
    for (k, &c) in value.get(start..end).unwrap_or_default().iter().enumerate() {
        if !c.is_ascii_digit() {
            return Err(Error::new(ErrorKind::Number, start + k));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u32::from(c - b'0')))
            .ok_or(Error::new(ErrorKind::Number, start + k))?;
    }
    Ok(n)
}

/// Iterates the comma-separated tokens of Require, Proxy-Require, Supported, Unsupported, Allow,
/// ... An empty value yields nothing; an element that is not a token (empty included) yields a
/// `Token` error at its offset.
pub fn token_list(value: &[u8]) -> TokenList<'_> {
    TokenList {
        inner: split_comma(value),
    }
}

/// Iterator returned by [`token_list`].
#[derive(Clone, Debug)]
pub struct TokenList<'a> {
    inner: SplitComma<'a>,
}

impl<'a> Iterator for TokenList<'a> {
    type Item = Result<&'a [u8]>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(match self.inner.next()? {
            Ok((_, t)) if is_token(t) => Ok(t),
            Ok((off, t)) => {
                let bad = t.iter().position(|&c| !is_token_char(c)).unwrap_or(0);
                Err(Error::new(ErrorKind::Token, off + bad))
            }
            Err(e) => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn elems(v: &[u8]) -> Vec<(usize, &[u8])> {
        split_comma(v).map(|r| r.unwrap()).collect()
    }

    #[test]
    fn lws_and_trim() {
        assert_eq!(skip_lws(b"  \r\n\tx", 0), 5);
        assert_eq!(skip_lws(b" \n x", 0), 3);
        assert_eq!(
            skip_lws(b" \r\nx", 0),
            1,
            "a line break without WSP is not LWS"
        );
        assert_eq!(skip_lws(b" \rx", 0), 1);
        assert_eq!(skip_lws(b"", 5), 0);
        assert_eq!(trim_lws(b" \r\n  abc \t"), b"abc");
        assert_eq!(trim_lws(b"   "), b"");
        assert_eq!(trim_lws_range(b" a "), (1, 2));
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(scan_quoted(b"\"abc\" x", 0), Ok(5));
        assert_eq!(scan_quoted(br#""a \"q\" \\" x"#, 0), Ok(12));
        // RFC 4475 intmeth: quoted-pairs with control characters.
        assert_eq!(
            scan_quoted(b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\"", 0),
            Ok(22)
        );
        assert_eq!(
            scan_quoted(b"\"a\r\n b\"", 0),
            Ok(7),
            "fold inside a quoted string"
        );
        assert_eq!(scan_quoted(b"\"\xd0\x80\"", 0), Ok(4), "UTF-8");
        let e = scan_quoted(b"\"Mr. J. User <sip:j@example.com>", 0).unwrap_err();
        assert_eq!(e, Error::new(ErrorKind::QuotedString, 0));
        assert_eq!(scan_quoted(b"\"a\x01\"", 0).unwrap_err().offset, 2);
        assert_eq!(scan_quoted(b"\"a\\\r\n\"", 0).unwrap_err().offset, 2);
        assert_eq!(scan_quoted(b"\"a\r\nb\"", 0).unwrap_err().offset, 2);
        assert_eq!(scan_quoted(b"\"a\\", 0).unwrap_err().offset, 2);
        assert_eq!(unquote(b"\"abc\""), b"abc");
        assert_eq!(unquote(b"\""), b"\"");
        assert_eq!(unquote(b"abc"), b"abc");
        let mut out = [0u8; 16];
        let n = unescape_quoted_into(br#"a \"q\" \\"#, &mut out).unwrap();
        assert_eq!(&out[..n], br#"a "q" \"#);
        assert_eq!(
            unescape_quoted_into(b"a\\", &mut out).unwrap_err().offset,
            1
        );
        assert!(unescape_quoted_into(b"abc", &mut out[..2]).is_err());
    }

    #[test]
    fn split_comma_respects_quotes_and_angles() {
        let v = b" \"Bell, A\" <sip:a@b;x=1,2>;p=\"x,y\" ,\r\n <sip:c@d> , e ";
        let e = elems(v);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].1, b"\"Bell, A\" <sip:a@b;x=1,2>;p=\"x,y\"");
        assert_eq!(e[0].0, 1);
        assert_eq!(e[1].1, b"<sip:c@d>");
        assert_eq!(&v[e[1].0..e[1].0 + 9], b"<sip:c@d>");
        assert_eq!(e[2].1, b"e");
        assert!(elems(b"").is_empty());
        // A special byte first: no scan, the same elements.
        assert_eq!(elems(b"<a,b>,c"), vec![(0, &b"<a,b>"[..]), (6, &b"c"[..])]);
        assert_eq!(elems(b",a"), vec![(0, &b""[..]), (1, &b"a"[..])]);
        assert_eq!(elems(b"\"x,y\"<a>"), vec![(0, &b"\"x,y\"<a>"[..])]);
        assert!(elems(b" \r\n ").is_empty());
        assert_eq!(
            elems(b"a,,b,"),
            vec![(0, &b"a"[..]), (2, &b""[..]), (3, &b"b"[..]), (5, &b""[..])]
        );
        let mut it = split_comma(b"a, \"b, c");
        assert_eq!(it.next(), Some(Ok((0, &b"a"[..]))));
        assert_eq!(it.next(), Some(Err(Error::new(ErrorKind::QuotedString, 3))));
        assert_eq!(it.next(), None);
        // RFC 4475 semiuri's folded Accept.
        let accept = b" application/sdp, application/pkcs7-mime,\r\n        multipart/mixed, multipart/signed,\r\n        message/sip, message/sipfrag";
        assert_eq!(elems(accept).len(), 6);
    }

    #[test]
    fn lowercase_word_compare_folds_letters_only() {
        for c in 0..=255u8 {
            let want = c == b't' || c == b'T';
            assert_eq!(eq_lower_letters(&[c, b'a', b'G'], b"tag"), want, "{c:#04x}");
        }
        assert!(eq_lower_letters(b"BrAnCh", b"branch"));
        assert!(!eq_lower_letters(b"branch ", b"branch"));
        assert!(!eq_lower_letters(b"branc", b"branch"));
        assert!(!eq_lower_letters(b"", b"tag"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32(b" 0068 "), Ok(68));
        assert_eq!(parse_u32(b"0"), Ok(0));
        assert_eq!(parse_u32(b"4294967295"), Ok(u32::MAX));
        assert_eq!(
            parse_u32(b"4294967296").unwrap_err().kind,
            ErrorKind::Number
        );
        // RFC 4475 scalar02 Expires.
        let big = b" 10000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(
            parse_u32(big).unwrap_err(),
            Error::new(ErrorKind::Number, 11)
        );
        assert_eq!(parse_u32(b"").unwrap_err().kind, ErrorKind::Number);
        assert_eq!(
            parse_u32(b" -1").unwrap_err(),
            Error::new(ErrorKind::Number, 1)
        );
        assert_eq!(
            parse_u32(b"1 2").unwrap_err(),
            Error::new(ErrorKind::Number, 1)
        );
        assert_eq!(parse_u32(b"+1").unwrap_err().kind, ErrorKind::Number);
    }

    #[test]
    fn token_lists() {
        let v: Vec<_> = token_list(b" 100rel, timer ,\r\n replaces").collect();
        assert_eq!(
            v,
            vec![Ok(&b"100rel"[..]), Ok(&b"timer"[..]), Ok(&b"replaces"[..])]
        );
        assert_eq!(token_list(b"").count(), 0);
        // RFC 4475 bext01.
        let v: Vec<_> = token_list(b" noProxiesSupportThis").collect();
        assert_eq!(v, vec![Ok(&b"noProxiesSupportThis"[..])]);
        let v: Vec<_> = token_list(b"a, b c").collect();
        assert_eq!(v[1], Err(Error::new(ErrorKind::Token, 4)));
        let v: Vec<_> = token_list(b"a,,b").collect();
        assert_eq!(v[1], Err(Error::new(ErrorKind::Token, 2)));
        let v: Vec<_> = token_list(b"INVITE, ACK,OPTIONS")
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(v, vec![&b"INVITE"[..], b"ACK", b"OPTIONS"]);
    }

    proptest! {
        #[test]
        fn values_never_panic(v in proptest::collection::vec(any::<u8>(), 0..128)) {
            let (a, b) = trim_lws_range(&v);
            prop_assert!(a <= b && b <= v.len());
            for i in 0..v.len() + 2 {
                prop_assert!(skip_lws(&v, i) <= v.len());
                if let Err(e) = scan_quoted(&v, i) {
                    prop_assert!(e.offset <= v.len());
                }
            }
            for r in split_comma(&v) {
                match r {
                    Ok((off, e)) => prop_assert_eq!(&v[off..off + e.len()], e),
                    Err(e) => prop_assert!(e.offset <= v.len()),
                }
            }
            for r in token_list(&v) {
                if let Err(e) = r { prop_assert!(e.offset <= v.len()); }
            }
            let _ = parse_u32(&v);
            let mut out = [0u8; 128];
            let _ = unescape_quoted_into(&v, &mut out);
        }

        #[test]
        fn split_comma_roundtrip(parts in proptest::collection::vec("[a-z]{1,6}|\"[a-z ,]{0,6}\"|<sip:[a-z,;]{1,6}>", 1..6),
                                 sep in "[ \t]{0,2},(\r\n )?[ \t]{0,2}") {
            let joined = parts.join(&sep);
            let got: Vec<_> = split_comma(joined.as_bytes()).map(|r| r.unwrap().1.to_vec()).collect();
            let want: Vec<_> = parts.iter().map(|p| p.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
        }

        /// The inline cases of `SplitComma::next` and of `scan_quoted` are what their general
        /// loops find: the same elements, offsets and errors.
        #[test]
        fn split_comma_inline_cases_as_the_loop(v in proptest::collection::vec(
            prop_oneof![
                any::<u8>().prop_map(|c| vec![c]),
                proptest::sample::select(vec![
                    b",".to_vec(), b"\"".to_vec(), b"<".to_vec(), b">".to_vec(), b" ".to_vec(),
                    b"\r\n ".to_vec(), b"\\".to_vec(), b"<sip:a@b.c;lr>".to_vec(),
                    b"SIP/2.0/UDP h:5060;branch=z9".to_vec(), b"\"A B\" <sip:x>".to_vec(),
                ]),
            ], 0..10)) {
            let v = v.concat();
            let got: Vec<_> = split_comma(&v).collect();
            let mut it = split_comma(&v);
            let mut want = Vec::new();
            while !it.done {
                let pos = it.pos;
                if let Some(r) = it.next_from(pos, pos) {
                    want.push(r);
                }
            }
            prop_assert_eq!(got, want, "{:?}", v);
            for i in 0..v.len() + 2 {
                prop_assert_eq!(scan_quoted(&v, i), scan_quoted_walk(&v, i), "{:?} {}", v, i);
            }
        }

        /// The short-number path finds what the checked loop finds (value or error offset).
        #[test]
        fn parse_u32_short_as_checked(v in "[ \t]{0,2}[0-9a+\\-]{1,11}[ \t]{0,2}") {
            let v = v.as_bytes();
            let (start, end) = trim_lws_range(v);
            prop_assert_eq!(parse_u32(v), parse_u32_checked(v, start, end), "{:?}", v);
        }

        #[test]
        fn parse_u32_matches_std(n in any::<u32>(), pad in "[ \t]{0,3}") {
            let s = format!("{pad}{n}{pad}");
            prop_assert_eq!(parse_u32(s.as_bytes()), Ok(n));
        }
    }
}
