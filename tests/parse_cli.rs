//! `sipd parse` through the real binary.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/rfc4475")
        .join(format!("{name}.dat"))
}

fn sipd_parse_stdin(input: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipd"))
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn valid_request_prints_the_fields() {
    let out = Command::new(env!("CARGO_BIN_EXE_sipd"))
        .arg("parse")
        .arg(fixture("wsinv"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "request");
    assert_eq!(v["method"], "INVITE");
    assert_eq!(v["request_uri"]["user"], "vivekg");
    assert_eq!(v["request_uri"]["host"], "chair-dnrc.example.com");
    assert_eq!(v["call_id"], "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(v["cseq"]["number"], 9);
    assert_eq!(v["cseq"]["method"], "INVITE");
    assert_eq!(v["max_forwards"], 68);
    assert_eq!(v["content_length"], 150);
    assert_eq!(v["body_len"], 150);
    assert_eq!(v["to"]["tag"], "1918181833n");
    assert_eq!(v["from"]["tag"], "98asjd8");
    assert_eq!(v["via"][0]["transport"], "UDP");
    assert_eq!(v["via"][0]["host"], "192.0.2.2");
    assert_eq!(v["via"][0]["branch"], "390skdjuw");
    let names: Vec<&str> = v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert!(
        names.starts_with(&[
            "To",
            "From",
            "Max-Forwards",
            "Call-ID",
            "Content-Length",
            "CSeq",
            "Via"
        ]),
        "{names:?}"
    );
}

#[test]
fn response_from_stdin() {
    let msg = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKx;rport=5071;received=10.0.0.9\r\nTo: <sip:bob@biloxi.com>;tag=a6c85cf\r\nFrom: Alice <sip:alice@atlanta.com>;tag=1928301774\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
    let out = sipd_parse_stdin(msg);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "response");
    assert_eq!(v["status"], 180);
    assert_eq!(v["reason"], "Ringing");
    assert_eq!(v["via"][0]["port"], 5070);
    assert_eq!(v["via"][0]["rport"], 5071);
    assert_eq!(v["via"][0]["received"], "10.0.0.9");
    assert_eq!(v["from"]["display_name"], "Alice");
}

#[test]
fn invalid_message_is_one_error_line_and_exit_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_sipd"))
        .arg("parse")
        .arg(fixture("ncl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: content_length at byte "), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn garbage_never_crashes_it() {
    const ALPHABET: &[u8] = b"INVITE sip:@;=<>\r\n :/\"\\,SIP/2.0Via\x00\xff";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..40 {
        let len = (round * 37) % 700;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ALPHABET[(seed % ALPHABET.len() as u64) as usize]
            })
            .collect();
        let out = sipd_parse_stdin(&bytes);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "round {round}: {:?}",
            out.status
        );
    }
}
