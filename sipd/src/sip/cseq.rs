//! CSeq (RFC 3261 §20.16): `CSeq = 1*DIGIT LWS Method`.

use super::error::{Error, ErrorKind, Result};
use super::values::{TOKEN, run, skip_lws, trim_lws_range};

/// A CSeq value: the sequence number (below 2^31, RFC 3261 §8.1.1.5) and the method, compared
/// case-sensitively as bytes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: &'a [u8],
}

/// Largest CSeq number allowed (RFC 3261 §8.1.1.5: "MUST be less than 2**31").
pub const MAX_SEQ: u32 = (1 << 31) - 1;

impl<'a> CSeq<'a> {
    /// Parses a CSeq value (LWS around it ignored, folds allowed between number and method).
    /// Errors: `CSeq` (offset into `value`) for a missing or overlarge number (RFC 4475
    /// scalar02/scalarlg), missing LWS, a method that is not a token, or trailing bytes.
    pub fn parse(value: &'a [u8]) -> Result<CSeq<'a>> {
        let (start, end) = trim_lws_range(value);
        let s = value.get(..end).unwrap_or_default();
        let mut i = start;
        let mut seq: u32 = 0;
        while let Some(&c) = s.get(i).filter(|c| c.is_ascii_digit()) {
            seq = seq
                .checked_mul(10)
                .and_then(|n| n.checked_add(u32::from(c - b'0')))
                .filter(|&n| n <= MAX_SEQ)
                .ok_or(Error::new(ErrorKind::CSeq, start))?;
            i += 1;
        }
        if i == start {
            return Err(Error::new(ErrorKind::CSeq, start));
        }
        let ms = skip_lws(s, i);
        if ms == i {
            return Err(Error::new(ErrorKind::CSeq, i));
        }
        let me = run(s, ms, &TOKEN);
        if me == ms || me != end {
            return Err(Error::new(ErrorKind::CSeq, me));
        }
        Ok(CSeq {
            seq,
            method: s.get(ms..me).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn valid() {
        assert_eq!(
            CSeq::parse(b" 314159 INVITE"),
            Ok(CSeq {
                seq: 314159,
                method: b"INVITE"
            })
        );
        assert_eq!(
            CSeq::parse(b"63104 OPTIONS"),
            Ok(CSeq {
                seq: 63104,
                method: b"OPTIONS"
            })
        );
        // RFC 4475 wsinv: leading zeros and a fold.
        assert_eq!(
            CSeq::parse(b" 0009\r\n  INVITE"),
            Ok(CSeq {
                seq: 9,
                method: b"INVITE"
            })
        );
        // intmeth / esc02: unusual methods are tokens.
        let c = CSeq::parse(b" 139122385 !interesting-Method0123456789_*+`.%indeed'~").unwrap();
        assert_eq!(c.method, b"!interesting-Method0123456789_*+`.%indeed'~");
        assert_eq!(
            CSeq::parse(b" 29344 RE%47IST%45R").unwrap().method,
            b"RE%47IST%45R"
        );
        assert_eq!(CSeq::parse(b"2147483647 ACK").unwrap().seq, MAX_SEQ);
        assert_eq!(CSeq::parse(b"0 ACK").unwrap().seq, 0);
    }

    #[test]
    fn invalid() {
        let e = |s: &[u8]| CSeq::parse(s).unwrap_err();
        // RFC 4475 scalar02 / scalarlg.
        assert_eq!(
            e(b" 36893488147419103232 REGISTER"),
            Error::new(ErrorKind::CSeq, 1)
        );
        assert_eq!(
            e(b" 9292394834772304023312 OPTIONS"),
            Error::new(ErrorKind::CSeq, 1)
        );
        assert_eq!(e(b"2147483648 INVITE"), Error::new(ErrorKind::CSeq, 0));
        assert_eq!(e(b""), Error::new(ErrorKind::CSeq, 0));
        assert_eq!(e(b"INVITE"), Error::new(ErrorKind::CSeq, 0));
        assert_eq!(e(b"1"), Error::new(ErrorKind::CSeq, 1));
        assert_eq!(e(b"1INVITE"), Error::new(ErrorKind::CSeq, 1));
        assert_eq!(e(b"1 INVITE x"), Error::new(ErrorKind::CSeq, 8));
        assert_eq!(e(b"1 IN@VITE"), Error::new(ErrorKind::CSeq, 4));
        assert_eq!(e(b"-1 INVITE"), Error::new(ErrorKind::CSeq, 0));
        assert_eq!(e(b"1 \r\nINVITE"), Error::new(ErrorKind::CSeq, 2));
    }

    proptest! {
        #[test]
        fn never_panics(v in proptest::collection::vec(
            prop_oneof![any::<u8>(), proptest::sample::select(b"0123456789 \t\r\nINVITE".to_vec())], 0..48)) {
            if let Err(e) = CSeq::parse(&v) { prop_assert!(e.offset <= v.len()); }
        }

        #[test]
        fn print_reparse(seq in 0..=MAX_SEQ, method in "[A-Za-z!%*_+`'~.-]{1,12}", ws in "[ \t]{1,3}|\r\n ") {
            let s = format!(" {seq}{ws}{method} ");
            let c = CSeq::parse(s.as_bytes()).unwrap();
            prop_assert_eq!(c, CSeq { seq, method: method.as_bytes() });
            let p = format!("{} {}", c.seq, core::str::from_utf8(c.method).unwrap());
            prop_assert_eq!(CSeq::parse(p.as_bytes()).unwrap(), c);
        }

        #[test]
        fn overlarge_rejected(seq in (MAX_SEQ as u64 + 1)..u64::MAX) {
            let s = format!("{seq} INVITE");
            prop_assert_eq!(CSeq::parse(s.as_bytes()).unwrap_err().kind, ErrorKind::CSeq);
        }
    }
}
