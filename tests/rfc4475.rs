//! RFC 4475 torture messages through the parser plus the full syntax check (`validate`).
//!
//! Every syntactically valid message (RFC 4475 §3.1.1, §3.2, §3.3, §3.4) must parse; every
//! invalid one (§3.1.2) must be rejected, except where the RFC allows a liberal reading and we
//! take it (listed in `LIBERAL` with the reason).

use std::path::PathBuf;

use sipd::sip::message::{Header, parse_datagram};
use sipd::sip::validate::validate;
use sipd::sip::{Error, ErrorKind};

/// Invalid messages we accept, and why.
const LIBERAL: &[(&str, &str)] = &[(
    "baddate",
    "RFC 4475 §3.1.2.12: an element that does not use the Date header may process the \
     request as if Date were absent; sipd never interprets Date",
)];

fn corpus() -> Vec<(String, String, String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rfc4475");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let rows: Vec<_> = manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let bytes = std::fs::read(dir.join(format!("{}.dat", cols[0]))).unwrap();
            (
                cols[0].to_owned(),
                cols[1].to_owned(),
                cols[3].to_owned(),
                bytes,
            )
        })
        .collect();
    assert_eq!(rows.len(), 49, "the RFC has 49 torture messages");
    rows
}

fn check(bytes: &[u8]) -> Result<(), Error> {
    let mut headers = [Header::EMPTY; 128];
    let msg = parse_datagram(bytes, &mut headers)?;
    validate(&msg)
}

#[test]
fn every_torture_message_gets_the_verdict_its_section_demands() {
    let mut failures = Vec::new();
    for (name, section, syntax, bytes) in corpus() {
        let invalid = section.starts_with("3.1.2");
        assert_eq!(
            invalid,
            syntax == "invalid",
            "manifest disagrees with itself on {name}"
        );
        let liberal = LIBERAL.iter().any(|(n, _)| *n == name);
        let result = check(&bytes);
        match (invalid && !liberal, result) {
            (false, Err(e)) => failures.push(format!("{name} ({section}) should parse: {e}")),
            (true, Ok(())) => failures.push(format!("{name} ({section}) should be rejected")),
            _ => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rejections_name_the_right_problem() {
    let expected = [
        ("badinv01", ErrorKind::Param),
        ("clerr", ErrorKind::BodyTruncated),
        ("ncl", ErrorKind::ContentLength),
        ("scalar02", ErrorKind::CSeq),
        ("bigcode", ErrorKind::StatusCode),
        ("quotbal", ErrorKind::QuotedString),
        ("ltgtruri", ErrorKind::Uri),
        ("lwsruri", ErrorKind::RequestUri),
        ("lwsstart", ErrorKind::RequestUri),
        ("trws", ErrorKind::StartLine),
        ("escruri", ErrorKind::RequestUri),
        ("badvers", ErrorKind::UnsupportedVersion),
        ("mismatch01", ErrorKind::CSeq),
        ("mismatch02", ErrorKind::CSeq),
    ];
    let corpus = corpus();
    for (name, kind) in expected {
        let (_, _, _, bytes) = corpus.iter().find(|c| c.0 == name).unwrap();
        let err = check(bytes).unwrap_err();
        assert_eq!(err.kind, kind, "{name}: {err}");
        assert!(
            err.offset <= bytes.len(),
            "{name}: offset {} past the end",
            err.offset
        );
    }
}

#[test]
fn dblreq_parses_only_the_first_message() {
    let corpus = corpus();
    let (_, _, _, bytes) = corpus.iter().find(|c| c.0 == "dblreq").unwrap();
    let mut headers = [Header::EMPTY; 64];
    let msg = parse_datagram(bytes, &mut headers).unwrap();
    assert_eq!(msg.method(), Some(sipd::sip::Method::Register));
    assert!(msg.body().is_empty());
    assert!(msg.len() < bytes.len());
}

#[test]
fn wsinv_values_survive_the_whitespace() {
    use sipd::sip::HeaderName;
    use sipd::sip::cseq::CSeq;
    use sipd::sip::name_addr::NameAddr;
    use sipd::sip::via::Via;
    let corpus = corpus();
    let (_, _, _, bytes) = corpus.iter().find(|c| c.0 == "wsinv").unwrap();
    let mut headers = [Header::EMPTY; 64];
    let msg = parse_datagram(bytes, &mut headers).unwrap();
    let cseq = CSeq::parse(msg.value(HeaderName::CSeq).unwrap()).unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, &b"INVITE"[..]));
    let to = NameAddr::parse(msg.value(HeaderName::To).unwrap()).unwrap();
    assert_eq!(to.tag(), Some(&b"1918181833n"[..]));
    let from = NameAddr::parse(msg.value(HeaderName::From).unwrap()).unwrap();
    assert_eq!(from.tag(), Some(&b"98asjd8"[..]));
    let via = Via::parse(msg.value(HeaderName::Via).unwrap()).unwrap();
    assert_eq!(via.transport, b"UDP");
    assert_eq!(via.branch(), Some(&b"390skdjuw"[..]));
    assert_eq!(msg.value(HeaderName::MaxForwards), Some(&b"0068"[..]));
    assert_eq!(msg.body().len(), 150);
}
