//! The real binary: `sipd load uas` and `sipd load uac --json` as two processes on loopback.

use std::process::{Command, Stdio};
use std::time::Duration;

fn sipd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sipd"))
}

/// A free loopback UDP port (bound then released; the UAS binds it right after).
fn free_port(ip: &str) -> u16 {
    std::net::UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn uac_and_uas_processes_json_report() {
    let port = free_port("127.0.0.3");
    let listen = format!("127.0.0.3:{port}");
    let mut uas = sipd()
        .args([
            "load",
            "uas",
            "--listen",
            &listen,
            "--duration",
            "20s",
            "--quiet",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let out = sipd()
        .args([
            "load", "uac", "--target", &listen, "--calls", "100", "--rate", "1000", "--json",
            "--quiet",
        ])
        .output()
        .unwrap();
    let _ = uas.kill();
    let _ = uas.wait();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["attempted"], 100);
    assert_eq!(j["completed"], 100);
    assert_eq!(j["failed"], 0);
    assert_eq!(j["msgs_sent"], 300);
    assert_eq!(j["msgs_received"], 300);
    assert!(j["latency_us"]["invite_to_200"]["p99"].as_u64().unwrap() > 0);
}

#[test]
fn usage_errors_exit_2() {
    let out = sipd()
        .args(["load", "uac", "--target", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--calls or --duration"));
    let out = sipd()
        .args(["load", "uac", "--rate", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = sipd()
        .args([
            "load",
            "uac",
            "--target",
            "127.0.0.1:9",
            "--calls",
            "1",
            "--uri",
            "http://x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
