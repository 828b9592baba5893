//! Operating sipd through the real binary on loopback: check-config, run, /metrics, reload
//! (good and bad files), SIGTERM.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sipd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sipd"))
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipd-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Kills the daemon if a test fails half-way.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig}");
}

fn config_text(sip: u16, admin: u16, number_target: u16) -> String {
    format!(
        r#"
[server]
listen = ["127.0.0.1:{sip}"]
tcp = false
record_route = true
domains = ["biloxi.example.com"]
workers = 1

[datapath]
mode = "socket"

[admin]
listen = "127.0.0.1:{admin}"

[log]
level = "info"

[[routing.numbers]]
prefix = "+4930"
target = "udp:127.0.0.1:{number_target}"
"#
    )
}

fn write(path: &Path, text: &str) {
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn invite(number: &str, local: SocketAddr, call: usize) -> Vec<u8> {
    format!(
        "INVITE sip:{number}@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK-ops-{call}\r\n\
Max-Forwards: 70\r\n\
From: <sip:alice@atlanta.example.com>;tag=a{call}\r\n\
To: <sip:{number}@biloxi.example.com>\r\n\
Call-ID: ops-{call}@test\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@{local}>\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// Waits for the admin endpoint to answer.
fn wait_admin(admin: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if sipd::admin::request(SocketAddr::from(([127, 0, 0, 1], admin)), "GET", "/health").is_ok()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("admin endpoint never came up");
}

fn metric(admin: u16, series: &str) -> f64 {
    let (status, body) =
        sipd::admin::request(SocketAddr::from(([127, 0, 0, 1], admin)), "GET", "/metrics").unwrap();
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no series {series} in\n{body}"))
}

#[test]
fn check_config_reports_file_line_and_key() {
    let dir = temp_dir("check");
    let good = dir.join("good.toml");
    write(&good, &config_text(5060, 9060, 5070));
    let out = sipd().arg("check-config").arg(&good).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok: "));

    let bad = dir.join("bad.toml");
    write(
        &bad,
        &config_text(5060, 9060, 5070).replace("prefix = \"+4930\"", "prefix = \"+49x30\""),
    );
    let out = sipd().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:19: routing.numbers[0].prefix"),
        "{err}"
    );

    let unknown = dir.join("unknown.toml");
    write(
        &unknown,
        "[server]\nlisten = [\"127.0.0.1:5060\"]\nlisten_typo = 1\n",
    );
    let out = sipd().arg("check-config").arg(&unknown).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown.toml:3") && err.contains("listen_typo"),
        "{err}"
    );

    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sipd.example.toml");
    let out = sipd().arg("check-config").arg(&example).output().unwrap();
    assert!(
        out.status.success(),
        "the shipped example must be valid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn run_metrics_reload_and_sigterm() {
    let dir = temp_dir("run");
    let (sip, admin) = (free_udp_port(), free_tcp_port());
    let first_target = UdpSocket::bind("127.0.0.1:0").unwrap();
    let second_target = UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&first_target, &second_target] {
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    }
    let config = dir.join("sipd.toml");
    write(
        &config,
        &config_text(sip, admin, first_target.local_addr().unwrap().port()),
    );
    let child = sipd()
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_admin(admin);

    let uac = UdpSocket::bind("127.0.0.1:0").unwrap();
    uac.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let proxy = SocketAddr::from(([127, 0, 0, 1], sip));
    let local = uac.local_addr().unwrap();
    let mut buf = [0u8; 4096];
    const CALLS: usize = 20;
    for call in 0..CALLS {
        uac.send_to(&invite("+493012345", local, call), proxy)
            .unwrap();
        let (n, _) = first_target
            .recv_from(&mut buf)
            .expect("forwarded to the +4930 route");
        assert!(buf[..n].starts_with(b"INVITE sip:+493012345@"));
    }
    // An unroutable number is answered 404 by sipd itself.
    uac.send_to(&invite("+3312345", local, 999), proxy).unwrap();
    let (n, _) = uac.recv_from(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 404 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Junk is dropped and counted.
    for _ in 0..5 {
        uac.send_to(b"\x00\x01garbage", proxy).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        metric(admin, "sipd_requests_total{method=\"INVITE\"}"),
        (CALLS + 1) as f64
    );
    assert_eq!(
        metric(admin, "sipd_forwarded_total{kind=\"request\"}"),
        CALLS as f64
    );
    assert_eq!(metric(admin, "sipd_replies_total{code=\"404\"}"), 1.0);
    assert_eq!(
        metric(admin, "sipd_dropped_total{reason=\"malformed\"}"),
        5.0
    );

    // `sipd stats` reads the same endpoint.
    let out = sipd()
        .args(["stats", "--admin", &format!("127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("method=INVITE"));

    // A broken file is rejected and the running routes kept.
    write(
        &config,
        &config_text(sip, admin, 1).replace("[[routing.numbers]]", "[[routing.numbrs]]"),
    );
    signal(&daemon.0, "-HUP");
    std::thread::sleep(Duration::from_millis(300));
    uac.send_to(&invite("+493012345", local, 100), proxy)
        .unwrap();
    first_target
        .recv_from(&mut buf)
        .expect("old route still in force after a rejected reload");

    // A good file moves the route (sipd reload = SIGHUP).
    write(
        &config,
        &config_text(sip, admin, second_target.local_addr().unwrap().port()),
    );
    let out = sipd()
        .args(["reload", "--admin", &format!("127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut moved = false;
    let mut call = 200;
    while Instant::now() < deadline && !moved {
        uac.send_to(&invite("+493012345", local, call), proxy)
            .unwrap();
        call += 1;
        second_target
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        moved = second_target.recv_from(&mut buf).is_ok();
    }
    assert!(moved, "the reloaded route never took effect");

    // SIGTERM: exit 0, promptly.
    signal(&daemon.0, "-TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = daemon.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "sipd did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    let mut log = String::new();
    std::io::Read::read_to_string(daemon.0.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(log.contains("reload rejected"), "{log}");
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("malformed SIP dropped or answered 400"),
        "a flood of junk is reported: {log}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn load_json(child: Child) -> serde_json::Value {
    let out = child.wait_with_output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sipd load printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn metrics_match_a_load_and_reload_under_load_loses_no_call() {
    let dir = temp_dir("load");
    let (sip, admin, uas_port) = (free_udp_port(), free_tcp_port(), free_udp_port());
    let records = dir.join("calls.jsonl");
    let config = dir.join("sipd.toml");
    let text = config_text(sip, admin, uas_port)
        + &format!("\n[dialogs]\nrecords = \"{}\"\n", records.display());
    write(&config, &text);
    let child = sipd()
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_admin(admin);

    let uas = sipd()
        .args([
            "load",
            "uas",
            "--listen",
            &format!("127.0.0.1:{uas_port}"),
            "--duration",
            "6s",
            "--json",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let uac = sipd()
        .args([
            "load",
            "uac",
            "--target",
            &format!("127.0.0.1:{sip}"),
            "--local",
            "127.0.0.1:0",
        ])
        .args([
            "--uri",
            "sip:+4930{n}@biloxi.example.com",
            "--rate",
            "100",
            "--duration",
            "4s",
            "--json",
            "-q",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Reload twice while calls flow: once with an equivalent file plus a new route, once by SIGHUP.
    std::thread::sleep(Duration::from_millis(1200));
    write(
        &config,
        &(text.clone()
            + "\n[[routing.numbers]]\nprefix = \"+4989\"\ntarget = \"udp:127.0.0.1:9\"\n"),
    );
    let out = sipd()
        .args(["reload", "--admin", &format!("127.0.0.1:{admin}")])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(1200));
    signal(&daemon.0, "-HUP");
    let uac = load_json(uac);
    // The UAS stops by itself at the end of its duration.
    let uas = load_json(uas);

    assert!(uac["attempted"].as_u64().unwrap() >= 300, "{uac}");
    assert_eq!(
        uac["failed"], 0,
        "no call may fail across two reloads: {uac}"
    );
    assert_eq!(uac["completed"], uac["attempted"], "{uac}");
    // sipd's own counters against the generators' counts.
    let sent_by_uac = uac["msgs_sent"].as_f64().unwrap();
    let sent_by_uas = uas["msgs_sent"].as_f64().unwrap();
    assert_eq!(
        metric(admin, "sipd_forwarded_total{kind=\"request\"}"),
        sent_by_uac
    );
    assert_eq!(
        metric(admin, "sipd_forwarded_total{kind=\"response\"}"),
        sent_by_uas
    );
    assert_eq!(
        metric(admin, "sipd_requests_total{method=\"INVITE\"}"),
        uac["requests_sent"]["INVITE"].as_f64().unwrap()
    );
    assert_eq!(
        metric(admin, "sipd_requests_total{method=\"BYE\"}"),
        uac["requests_sent"]["BYE"].as_f64().unwrap()
    );
    assert_eq!(
        metric(admin, "sipd_dialogs_calls_active"),
        0.0,
        "every call ended"
    );
    assert_eq!(
        metric(admin, "sipd_dialogs_calls_created_total"),
        uac["attempted"].as_f64().unwrap()
    );

    // SIGTERM flushes one call record per completed call.
    signal(&daemon.0, "-TERM");
    let started = Instant::now();
    while daemon.0.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = std::fs::read_to_string(&records).unwrap();
    let completed = uac["completed"].as_u64().unwrap() as usize;
    assert_eq!(lines.lines().count(), completed, "one record per call");
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert!(
        first["callee"].as_str().unwrap().starts_with("sip:+4930"),
        "{first}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
