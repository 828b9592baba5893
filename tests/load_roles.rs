//! `sipd load` roles against each other over real loopback sockets (batched sendmmsg/recvmmsg):
//! short bounded runs complete every call with zero failures, and the counters of both sides
//! add up.

mod load_support;

use load_support::{Running, run};

#[test]
fn uac_calls_uas_directly() {
    let uas = Running::start(&["uas", "--listen", "127.0.0.3:0", "--quiet"]);
    let target = uas.addr.to_string();
    let uac = run(&[
        "uac",
        "--target",
        &target,
        "--local",
        "127.0.0.1:0",
        "--calls",
        "300",
        "--rate",
        "3000",
        "--quiet",
    ]);
    let uas = uas.stop();
    let (c, s) = (&uac.report, &uas.report);
    assert_eq!(uac.exit_code, 0);
    assert_eq!(
        (c.attempted, c.completed, c.failed, c.in_progress),
        (300, 300, 0, 0)
    );
    assert_eq!(c.retransmissions, 0);
    assert_eq!(c.msgs_sent, 900);
    assert_eq!(c.msgs_received, 900);
    assert_eq!(c.requests_sent["INVITE"], 300);
    assert_eq!(c.requests_sent["ACK"], 300);
    assert_eq!(c.requests_sent["BYE"], 300);
    assert_eq!(c.responses_received["180"], 300);
    assert_eq!(c.responses_received["200"], 600);
    assert_eq!(c.latency_us.invite_to_200.count, 300);
    assert_eq!(c.latency_us.request_to_response.count, 600);
    assert!(c.latency_us.invite_to_200.p50 > 0);
    // What one side sent, the other received.
    assert_eq!(s.msgs_received, c.msgs_sent);
    assert_eq!(s.msgs_sent, c.msgs_received);
    assert_eq!((s.attempted, s.completed, s.failed), (300, 300, 0));
    assert_eq!(s.requests_received, c.requests_sent);
    assert_eq!(s.responses_sent, c.responses_received);
    // JSON carries the documented fields.
    let j = serde_json::to_value(c).unwrap();
    for k in [
        "attempted",
        "completed",
        "failed",
        "retransmissions",
        "msgs_sent",
        "msgs_received",
        "msgs_per_s_tx",
        "msgs_per_s_rx",
        "calls_per_s",
        "duration_s",
    ] {
        assert!(j.get(k).is_some(), "{k}");
    }
    for k in ["p50", "p90", "p99", "p999", "max"] {
        assert!(j["latency_us"]["invite_to_200"].get(k).is_some());
        assert!(j["latency_us"]["request_to_response"].get(k).is_some());
    }
}

#[test]
fn register_with_auth_and_options_scenarios() {
    let uas = Running::start(&[
        "uas",
        "--listen",
        "127.0.0.3:0",
        "--quiet",
        "--auth",
        "alice:secret",
    ]);
    let target = uas.addr.to_string();
    let reg = run(&[
        "uac",
        "--target",
        &target,
        "--scenario",
        "register",
        "--auth",
        "alice:secret",
        "--uri",
        "sip:alice{n}@biloxi.example.com",
        "--calls",
        "100",
        "--rate",
        "2000",
        "--quiet",
    ]);
    let opt = run(&[
        "uac",
        "--target",
        &target,
        "--scenario",
        "options",
        "--calls",
        "100",
        "--rate",
        "2000",
        "--quiet",
    ]);
    let uas = uas.stop();
    let r = &reg.report;
    assert_eq!((r.attempted, r.completed, r.failed), (100, 100, 0));
    assert_eq!(r.requests_sent["REGISTER"], 200);
    assert_eq!(r.responses_received["401"], 100);
    let o = &opt.report;
    assert_eq!((o.attempted, o.completed, o.failed), (100, 100, 0));
    assert_eq!(o.msgs_sent + r.msgs_sent, uas.report.msgs_received);
    assert_eq!(uas.report.failed, 0);
}

#[test]
fn blast_against_stateless_uas() {
    let uas = Running::start(&["uas", "--listen", "127.0.0.3:0", "--quiet", "--stateless"]);
    let target = uas.addr.to_string();
    let b = run(&[
        "blast", "--target", &target, "--method", "invite", "--calls", "500", "--rate", "5000",
        "--quiet",
    ]);
    let uas = uas.stop();
    let r = &b.report;
    assert_eq!(r.attempted, 500);
    assert_eq!(r.requests_sent["INVITE"], 500);
    // Lossless on loopback at this rate: every request answered 180 + 200.
    assert_eq!((r.completed, r.failed, r.in_progress), (500, 0, 0));
    assert_eq!(r.msgs_received, 1000);
    assert_eq!(uas.report.msgs_received, 500);
    assert_eq!(uas.report.msgs_sent, 1000);
}

#[test]
fn failures_over_the_threshold_exit_1() {
    // Nobody answers at this address: every call times out (Timer B = 64 * 5 ms).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = silent.local_addr().unwrap().to_string();
    let o = run(&[
        "uac", "--target", &target, "--calls", "3", "--rate", "1000", "--t1", "5ms", "--quiet",
    ]);
    assert_eq!((o.report.failed, o.report.failures.timeout), (3, 3));
    // 7 INVITE transmissions per call.
    assert_eq!(o.report.requests_sent["INVITE"], 21);
    assert_eq!(o.report.retransmissions, 18);
    assert_eq!(o.exit_code, 1);
    let o = run(&[
        "uac",
        "--target",
        &target,
        "--calls",
        "2",
        "--rate",
        "1000",
        "--t1",
        "1ms",
        "--quiet",
        "--max-failed-pct",
        "100",
    ]);
    assert_eq!(o.exit_code, 0);
}
