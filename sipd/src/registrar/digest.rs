//! HTTP digest as SIP uses it (RFC 3261 §22.4, RFC 2617 §3.2.2) with the algorithms of RFC 8760:
//! `MD5` and `SHA-256` (the `-sess` variants are not offered).
//!
//! ```text
//! HA1      = H(username ":" realm ":" password)         (stored, never the password)
//! HA2      = H(method ":" digest-uri)                   (qop=auth)
//! response = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)   with qop
//! response = H(HA1 ":" nonce ":" HA2)                             RFC 2069 form, without qop
//! ```
//!
//! Every hash is lower-case hex (32 digits for MD5, 64 for SHA-256). Nothing here allocates.

use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest algorithm of RFC 8760.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Md5,
    Sha256,
}

/// Largest hex digest (SHA-256).
pub const MAX_HEX: usize = 64;

impl Algorithm {
    /// The `algorithm=` token.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// From an `algorithm` parameter (case-insensitive); an absent parameter means MD5
    /// (RFC 2617 §3.2.1). `-sess` and unknown algorithms give `None`.
    pub fn from_param(value: Option<&[u8]>) -> Option<Algorithm> {
        match value {
            None => Some(Algorithm::Md5),
            Some(v) if v.eq_ignore_ascii_case(b"MD5") => Some(Algorithm::Md5),
            Some(v) if v.eq_ignore_ascii_case(b"SHA-256") => Some(Algorithm::Sha256),
            Some(_) => None,
        }
    }

    /// Parses a configuration name (`md5`, `sha-256`, `sha256`, any case).
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(Algorithm::Md5),
            "sha-256" | "sha256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Length of the hex digest: 32 or 64.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// The algorithm whose hex digests have `len` digits.
    pub fn from_hex_len(len: usize) -> Option<Algorithm> {
        match len {
            32 => Some(Algorithm::Md5),
            64 => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// Hashes the parts joined by `:` into lower-case hex.
    pub fn hash_hex(self, parts: &[&[u8]]) -> HexDigest {
        fn run<D: Digest>(parts: &[&[u8]]) -> HexDigest {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            HexDigest::from_bytes(&d.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }
}

/// A lower-case hex digest on the stack.
#[derive(Copy, Clone, PartialEq, Eq)]
pub struct HexDigest {
    buf: [u8; MAX_HEX],
    len: u8,
}

impl std::fmt::Debug for HexDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl HexDigest {
    pub fn from_bytes(bytes: &[u8]) -> HexDigest {
        let mut buf = [0u8; MAX_HEX];
        let n = hex_encode(bytes, &mut buf);
        HexDigest { buf, len: n as u8 }
    }

    /// From hex text (any case, stored lower-case); `None` unless 32 or 64 hex digits.
    pub fn parse(hex: &[u8]) -> Option<HexDigest> {
        Algorithm::from_hex_len(hex.len())?;
        if !hex.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let mut buf = [0u8; MAX_HEX];
        for (d, s) in buf.iter_mut().zip(hex) {
            *d = s.to_ascii_lowercase();
        }
        Some(HexDigest {
            buf,
            len: hex.len() as u8,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Constant-time comparison with a client-supplied hex string (case-insensitive).
    pub fn ct_eq_hex(&self, other: &[u8]) -> bool {
        let mine = self.as_bytes();
        if mine.len() != other.len() {
            return false;
        }
        let diff = mine
            .iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()));
        diff == 0
    }
}

/// Lower-case hex of `bytes` into `out`; returns the number of digits written.
pub fn hex_encode(bytes: &[u8], out: &mut [u8]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = 0;
    for (&b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
        n += 2;
    }
    n
}

/// `HA1 = H(username:realm:password)` (what a credentials file line stores).
pub fn ha1(alg: Algorithm, username: &str, realm: &str, password: &str) -> HexDigest {
    alg.hash_hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// What the client's `response` must be.
#[derive(Copy, Clone, Debug)]
pub struct ResponseInput<'a> {
    pub method: &'a [u8],
    pub digest_uri: &'a [u8],
    pub nonce: &'a [u8],
    /// `(nc, cnonce, qop)` when the client used a qop; `None` for the RFC 2069 form.
    pub qop: Option<(&'a [u8], &'a [u8], &'a [u8])>,
}

/// The expected `response` for `ha1` (hex, in the algorithm's length).
pub fn expected_response(alg: Algorithm, ha1: &HexDigest, input: &ResponseInput<'_>) -> HexDigest {
    let ha2 = alg.hash_hex(&[input.method, input.digest_uri]);
    match input.qop {
        Some((nc, cnonce, qop)) => {
            alg.hash_hex(&[ha1.as_bytes(), input.nonce, nc, cnonce, qop, ha2.as_bytes()])
        }
        None => alg.hash_hex(&[ha1.as_bytes(), input.nonce, ha2.as_bytes()]),
    }
}

/// Parses the 8-hex-digit nonce count.
pub fn parse_nc(nc: &[u8]) -> Option<u32> {
    if nc.len() != 8 {
        return None;
    }
    let s = std::str::from_utf8(nc).ok()?;
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5's example, computed with MD5 (the HTTP method and URI of that example).
    #[test]
    fn rfc2617_example() {
        let h = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(h.as_str(), "939e7578ed9e3c518a452acee763bce9");
        let r = expected_response(
            Algorithm::Md5,
            &h,
            &ResponseInput {
                method: b"GET",
                digest_uri: b"/dir/index.html",
                nonce: b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
                qop: Some((b"00000001", b"0a4f113b", b"auth")),
            },
        );
        assert_eq!(r.as_str(), "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1's SHA-256 example.
    #[test]
    fn rfc7616_sha256_example() {
        let h = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        let r = expected_response(
            Algorithm::Sha256,
            &h,
            &ResponseInput {
                method: b"GET",
                digest_uri: b"/dir/index.html",
                nonce: b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                qop: Some((
                    b"00000001",
                    b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                    b"auth",
                )),
            },
        );
        assert_eq!(
            r.as_str(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn hex_compare_and_parse() {
        let h = HexDigest::parse(b"939E7578ED9E3C518A452ACEE763BCE9").unwrap();
        assert_eq!(h.as_str(), "939e7578ed9e3c518a452acee763bce9");
        assert!(h.ct_eq_hex(b"939E7578ed9e3c518a452acee763bce9"));
        assert!(!h.ct_eq_hex(b"939e7578ed9e3c518a452acee763bce8"));
        assert!(!h.ct_eq_hex(b"939e"));
        assert!(HexDigest::parse(b"xyz").is_none());
        assert_eq!(parse_nc(b"0000000a"), Some(10));
        assert_eq!(parse_nc(b"1"), None);
        assert_eq!(Algorithm::from_param(None), Some(Algorithm::Md5));
        assert_eq!(
            Algorithm::from_param(Some(b"sha-256")),
            Some(Algorithm::Sha256)
        );
        assert_eq!(Algorithm::from_param(Some(b"MD5-sess")), None);
    }
}
