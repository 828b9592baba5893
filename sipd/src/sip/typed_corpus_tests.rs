//! The typed header parsers against every RFC 4475 torture-test message
//! (`tests/fixtures/rfc4475`): each typed header of each message is parsed; valid messages must
//! parse cleanly, and the messages whose fault lies in a typed header must fail with the right
//! kind. Faults of the start line, header framing, body or cross-header semantics (duplicates,
//! CSeq/method mismatch, Max-Forwards ranges) belong to the message parser and the proxy, not
//! here. A minimal header splitter stands in for the message parser.

use std::path::PathBuf;

use super::auth::Auth;
use super::cseq::CSeq;
use super::error::ErrorKind;
use super::name_addr::{ContactValue, NameAddr, contact_values, name_addr_values};
use super::uri::{Scheme, Uri};
use super::values::{parse_u32, token_list};
use super::via::via_values;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rfc4475")
}

/// `(name, raw value)` of one header line.
type Header<'a> = (&'a [u8], &'a [u8]);

/// Start line and headers of the header block; folded lines stay in the value.
fn split_headers(msg: &[u8]) -> (&[u8], Vec<Header<'_>>) {
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(msg.len());
    let head = &msg[..head_end];
    let line_end = |from: usize| {
        let mut j = from;
        loop {
            match head[j..].windows(2).position(|w| w == b"\r\n") {
                None => return head.len(),
                Some(p) => {
                    j += p;
                    if matches!(head.get(j + 2), Some(b' ' | b'\t')) {
                        j += 2;
                    } else {
                        return j;
                    }
                }
            }
        }
    };
    let sl_end = line_end(0);
    let mut out = Vec::new();
    let mut i = sl_end + 2;
    while i < head.len() {
        let e = line_end(i);
        let line = &head[i..e];
        let colon = line.iter().position(|&c| c == b':').expect("header colon");
        let name = line[..colon].trim_ascii_end();
        out.push((name, &line[colon + 1..]));
        i = e + 2;
    }
    (&head[..sl_end], out)
}

fn canonical(name: &[u8]) -> String {
    let n = String::from_utf8_lossy(name).to_ascii_lowercase();
    match n.as_str() {
        "v" => "via",
        "f" => "from",
        "t" => "to",
        "m" => "contact",
        "l" => "content-length",
        "k" => "supported",
        other => return other.to_string(),
    }
    .to_string()
}

/// Parses every typed header; returns the first error of each header line as
/// `(canonical name, kind)`.
fn typed_errors(headers: &[Header<'_>]) -> Vec<(String, ErrorKind)> {
    let mut errs = Vec::new();
    for &(name, value) in headers {
        let name = canonical(name);
        let r: Result<(), ErrorKind> = match name.as_str() {
            "via" => via_values(value)
                .try_for_each(|v| v.map(drop))
                .map_err(|e| e.kind),
            "from" | "to" | "reply-to" => NameAddr::parse(value).map(drop).map_err(|e| e.kind),
            "route" | "record-route" => name_addr_values(value)
                .try_for_each(|v| v.map(drop))
                .map_err(|e| e.kind),
            "contact" => contact_values(value)
                .try_for_each(|c| match c {
                    Ok(ContactValue::Addr(a)) => {
                        a.expires().transpose().map(drop)?;
                        a.q().transpose().map(drop)
                    }
                    Ok(ContactValue::Star) => Ok(()),
                    Err(e) => Err(e),
                })
                .map_err(|e| e.kind),
            "cseq" => CSeq::parse(value).map(drop).map_err(|e| e.kind),
            "max-forwards" | "expires" | "content-length" => {
                parse_u32(value).map(drop).map_err(|e| e.kind)
            }
            "require" | "proxy-require" | "supported" | "unsupported" | "allow" => {
                token_list(value)
                    .try_for_each(|t| t.map(drop))
                    .map_err(|e| e.kind)
            }
            "authorization" | "proxy-authorization" | "www-authenticate" | "proxy-authenticate" => {
                Auth::parse(value).map(drop).map_err(|e| e.kind)
            }
            _ => Ok(()),
        };
        if let Err(k) = r {
            errs.push((name, k));
        }
    }
    errs
}

fn expected(file: &str) -> Vec<(&'static str, ErrorKind)> {
    use ErrorKind::*;
    match file {
        "badinv01" => vec![("via", Param), ("contact", Param)],
        "ncl" => vec![("content-length", Number)],
        "scalar02" => vec![("cseq", CSeq), ("expires", Number), ("contact", Number)],
        "scalarlg" => vec![("cseq", CSeq)],
        "quotbal" => vec![("to", QuotedString)],
        "regbadct" => vec![("contact", NameAddr)],
        "badaspec" => vec![("to", NameAddr)],
        "baddn" => vec![("from", NameAddr), ("to", NameAddr)],
        _ => vec![],
    }
}

#[test]
fn rfc4475_typed_headers() {
    let manifest = std::fs::read_to_string(corpus_dir().join("MANIFEST.tsv")).unwrap();
    let mut n = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let file = line.split('\t').next().unwrap();
        let msg = std::fs::read(corpus_dir().join(format!("{file}.dat"))).unwrap();
        let (start, headers) = split_headers(&msg);
        let got = typed_errors(&headers);
        let want: Vec<(String, ErrorKind)> = expected(file)
            .into_iter()
            .map(|(h, k)| (h.to_string(), k))
            .collect();
        assert_eq!(got, want, "{file}");

        // Request-URIs, except the messages whose fault is the request line itself.
        if !start.starts_with(b"SIP/") && !matches!(file, "lwsruri" | "lwsstart") {
            let ruri = start.split(|&c| c == b' ').nth(1).unwrap();
            let r = Uri::parse(ruri);
            if file == "ltgtruri" {
                assert_eq!(r.unwrap_err().kind, ErrorKind::Uri, "{file}");
            } else {
                let u = r.unwrap_or_else(|e| panic!("{file}: {e}"));
                match file {
                    "unkscm" => assert_eq!(u.scheme(), Scheme::Other(b"nobodyKnowsThisScheme")),
                    "novelsc" => assert_eq!(u.scheme(), Scheme::Other(b"soap.beep")),
                    "semiuri" => assert_eq!(u.user(), Some(&b"user;par=u%40example.net"[..])),
                    "escruri" => assert!(u.headers_raw().is_some()),
                    _ => assert!(u.scheme().is_sip(), "{file}"),
                }
            }
        }
        n += 1;
    }
    assert_eq!(n, 49);
}

#[test]
fn rfc4475_specific_values() {
    let read = |f: &str| std::fs::read(corpus_dir().join(format!("{f}.dat"))).unwrap();
    let get = |msg: &[u8], h: &str| -> Vec<Vec<u8>> {
        split_headers(msg)
            .1
            .into_iter()
            .filter(|(n, _)| canonical(n) == h)
            .map(|(_, v)| v.to_vec())
            .collect()
    };
    // wsinv: 3 Vias over two header lines, folded everywhere.
    let m = read("wsinv");
    let vias: usize = get(&m, "via").iter().map(|v| via_values(v).count()).sum();
    assert_eq!(vias, 3);
    let to = &get(&m, "to")[0];
    assert_eq!(
        NameAddr::parse(to).unwrap().tag(),
        Some(&b"1918181833n"[..])
    );
    let cseq = &get(&m, "cseq")[0];
    assert_eq!(
        CSeq::parse(cseq).unwrap(),
        CSeq {
            seq: 9,
            method: b"INVITE"
        }
    );
    assert_eq!(parse_u32(&get(&m, "max-forwards")[0]), Ok(68));
    let contact = &get(&m, "contact")[0];
    let ContactValue::Addr(a) = contact_values(contact).next().unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(a.q(), Some(Ok(330)));
    // cparam01 / cparam02: where `unknownparam` belongs.
    let c = &get(&read("cparam01"), "contact")[0];
    let a = NameAddr::parse(c).unwrap();
    assert!(a.params.contains(b"unknownparam") && !a.uri.params().contains(b"unknownparam"));
    let c = &get(&read("cparam02"), "contact")[0];
    let a = NameAddr::parse(c).unwrap();
    assert!(!a.params.contains(b"unknownparam") && a.uri.params().contains(b"unknownparam"));
    // regaut01: unknown scheme.
    let a = &get(&read("regaut01"), "authorization")[0];
    assert_eq!(Auth::parse(a).unwrap().scheme, b"NoOneKnowsThisScheme");
    // transports / longreq: Via counts.
    assert_eq!(get(&read("transports"), "via").len(), 5);
    assert_eq!(get(&read("longreq"), "via").len(), 34);
    // esc02: three Contacts parse (one under an escaped header name the message parser keeps).
    assert_eq!(get(&read("esc02"), "contact").len(), 2);
    // bext01: the unsupported extensions.
    let pr = &get(&read("bext01"), "proxy-require")[0];
    let t: Vec<_> = token_list(pr).map(Result::unwrap).collect();
    assert_eq!(
        t,
        vec![&b"noProxiesSupportThis"[..], b"norDoAnyProxiesSupportThis"]
    );
}
