//! HTTP Digest (RFC 2617, MD5, `qop=auth` or none) as SIP uses it (RFC 3261 §22.4): the UAC
//! answers a 401/407 challenge, the UAS (with `--auth`) challenges REGISTER with a stateless
//! nonce and checks the answer.

use md5::{Digest as _, Md5};

use crate::proxy::writer::Out;
use crate::sip::auth::Auth;

fn md5_hex(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Md5::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h.update(b":");
        }
        h.update(p);
    }
    let d = h.finalize();
    let mut hex = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in d.iter().enumerate() {
        hex[2 * i] = HEX[usize::from(b >> 4)];
        hex[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    hex
}

/// The digest `response` value.
#[allow(clippy::too_many_arguments)]
pub fn response(
    user: &[u8],
    realm: &[u8],
    pass: &[u8],
    method: &[u8],
    uri: &[u8],
    nonce: &[u8],
    qop: Option<(&[u8], &[u8])>, // (nc, cnonce) when qop=auth
) -> [u8; 32] {
    let ha1 = md5_hex(&[user, realm, pass]);
    let ha2 = md5_hex(&[method, uri]);
    match qop {
        Some((nc, cnonce)) => md5_hex(&[&ha1, nonce, nc, cnonce, b"auth", &ha2]),
        None => md5_hex(&[&ha1, nonce, &ha2]),
    }
}

/// Writes the `Authorization:` (or `Proxy-Authorization:` for a 407) line answering the
/// challenge value `challenge`. Returns false if the challenge is not a Digest/MD5 one we can
/// answer.
#[allow(clippy::too_many_arguments)]
pub fn write_credentials(
    out: &mut Out<'_>,
    proxy: bool,
    challenge: &[u8],
    user: &[u8],
    pass: &[u8],
    method: &[u8],
    uri: &[u8],
    cnonce: u64,
) -> bool {
    let Ok(ch) = Auth::parse(challenge) else {
        return false;
    };
    if !ch.is_digest()
        || ch
            .algorithm()
            .is_some_and(|a| !a.eq_ignore_ascii_case(b"MD5"))
    {
        return false;
    }
    let (Some(realm), Some(nonce)) = (ch.realm(), ch.nonce()) else {
        return false;
    };
    let qop_auth = ch.qop().is_some_and(|q| {
        q.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"auth"))
    });
    let mut cn = [0u8; 16];
    let mut c = Out::new(&mut cn);
    c.put_hex64(cnonce);
    let nc: &[u8] = b"00000001";
    let resp = response(
        user,
        realm,
        pass,
        method,
        uri,
        nonce,
        qop_auth.then_some((nc, &cn[..])),
    );
    out.put(if proxy {
        b"Proxy-Authorization: Digest username=\"".as_slice()
    } else {
        b"Authorization: Digest username=\""
    });
    out.put(user);
    out.put(b"\", realm=\"");
    out.put(realm);
    out.put(b"\", nonce=\"");
    out.put(nonce);
    out.put(b"\", uri=\"");
    out.put(uri);
    out.put(b"\", response=\"");
    out.put(&resp);
    out.put(b"\", algorithm=MD5");
    if qop_auth {
        out.put(b", qop=auth, nc=");
        out.put(nc);
        out.put(b", cnonce=\"");
        out.put(&cn);
        out.put(b"\"");
    }
    if let Some(opaque) = ch.opaque() {
        out.put(b", opaque=\"");
        out.put(opaque);
        out.put(b"\"");
    }
    out.put(b"\r\n");
    true
}

/// Checks credentials (an Authorization value) for `method` against `user`/`pass` and the nonce
/// we issued.
pub fn verify(credentials: &[u8], user: &[u8], pass: &[u8], method: &[u8], nonce: &[u8]) -> bool {
    let Ok(c) = Auth::parse(credentials) else {
        return false;
    };
    let (Some(u), Some(realm), Some(n), Some(uri), Some(resp)) =
        (c.username(), c.realm(), c.nonce(), c.uri(), c.response())
    else {
        return false;
    };
    if !c.is_digest() || u != user || n != nonce {
        return false;
    }
    let qop = match (c.qop(), c.nc(), c.cnonce()) {
        (Some(q), Some(nc), Some(cn)) if q.eq_ignore_ascii_case(b"auth") => Some((nc, cn)),
        (None, _, _) => None,
        _ => return false,
    };
    response(u, realm, pass, method, uri, n, qop).eq_ignore_ascii_case(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example() {
        // RFC 2617 §3.5 (HTTP, so method GET), the canonical test vector.
        let r = response(
            b"Mufasa",
            b"testrealm@host.com",
            b"Circle Of Life",
            b"GET",
            b"/dir/index.html",
            b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some((b"00000001", b"0a4f113b")),
        );
        assert_eq!(&r, b"6629fae49393a05397450978507c4ef1");
    }

    #[test]
    fn credentials_verify() {
        let mut buf = [0u8; 512];
        let mut out = Out::new(&mut buf);
        assert!(write_credentials(
            &mut out,
            false,
            b"Digest realm=\"sipd\", nonce=\"abc\", qop=\"auth\", algorithm=MD5",
            b"alice",
            b"secret",
            b"REGISTER",
            b"sip:biloxi.example.com",
            7,
        ));
        let line = out.written().to_vec();
        let value = line
            .strip_prefix(b"Authorization: ")
            .unwrap()
            .strip_suffix(b"\r\n")
            .unwrap();
        assert!(verify(value, b"alice", b"secret", b"REGISTER", b"abc"));
        assert!(!verify(value, b"alice", b"wrong", b"REGISTER", b"abc"));
        assert!(!verify(value, b"alice", b"secret", b"REGISTER", b"other"));
    }
}
