//! Rough rate of the AF_XDP reflector against a kernel UDP echo on the same veth pair (root only,
//! ignored by default: `cargo test --release -p sipd --test xdp_bench -- --ignored --nocapture`).
//!
//! One client thread sends as fast as `send(2)` allows for a fixed time while another counts the
//! answers; both run in the client namespace. On a 2-core VM the client, the echo and the kernel's
//! softirq work share the cores, so this is a comparison, not a benchmark. "answered" is what the
//! client's socket received (it overflows first); "echo side answered" is what the echo sent.

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::{A_V4, B_V4, Sipd, TestNet};

const RUN: Duration = Duration::from_secs(3);

struct Rate {
    sent: u64,
    answered: u64,
    secs: f64,
}

fn offer_load(net: &TestNet, to: SocketAddr) -> Rate {
    net.in_b(move || {
        let tx = UdpSocket::bind(SocketAddr::new(B_V4.into(), 0)).unwrap();
        tx.connect(to).unwrap();
        let rx = tx.try_clone().unwrap();
        rx.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let (d2, a2) = (done.clone(), answered.clone());
        let counter = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                match rx.recv(&mut buf) {
                    Ok(_) => {
                        a2.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) if d2.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
        });
        let payload = [b'x'; 200];
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < RUN {
            for _ in 0..64 {
                if tx.send(&payload).is_ok() {
                    sent += 1;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_millis(300));
        done.store(true, Ordering::Relaxed);
        counter.join().unwrap();
        Rate {
            sent,
            answered: answered.load(Ordering::Relaxed),
            secs,
        }
    })
}

fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the command: state is [0]; utime is field 14 overall, i.e. [11]; stime [12].
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn report(name: &str, r: &Rate, cpu: Option<f64>) {
    println!(
        "{name:>14}: offered {:>8.0}/s answered {:>8.0}/s loss {:>5.1}%{}",
        r.sent as f64 / r.secs,
        r.answered as f64 / r.secs,
        100.0 * (1.0 - r.answered as f64 / r.sent.max(1) as f64),
        cpu.map(|c| format!(" reflector CPU {:.0}% of a core", c * 100.0))
            .unwrap_or_default()
    );
}

#[test]
#[ignore = "measurement, run explicitly"]
fn reflect_rate_vs_kernel_echo() {
    require_root_or_skip!();
    let _serial = support::serial();
    let net = TestNet::new();

    let echo = net.in_a(|| {
        support::spawn_kernel_echo(
            SocketAddr::new(A_V4.into(), 7000),
            usize::MAX,
            Duration::from_secs(1),
        )
    });
    let kernel = offer_load(&net, SocketAddr::new(A_V4.into(), 7000));
    let echoed = echo.join().unwrap();
    report("kernel echo", &kernel, None);
    println!(
        "{:>14}  echo side answered {:>8.0}/s",
        "",
        echoed as f64 / kernel.secs
    );

    let sipd = Sipd::spawn(
        &net.ns_a,
        &["reflect", "--iface", &net.if_a, "--cores", "1"],
    );
    sipd.wait_ready();
    let hz = 100.0; // USER_HZ on Linux
    let t0 = cpu_ticks(sipd.pid());
    let xdp = offer_load(&net, SocketAddr::new(A_V4.into(), 5060));
    let cpu = (cpu_ticks(sipd.pid()) - t0) as f64 / hz / (xdp.secs + 0.3);
    let stats = sipd.stop();
    report("AF_XDP reflect", &xdp, Some(cpu));
    println!(
        "{:>14}  echo side answered {:>8.0}/s",
        "",
        stats["workers"][0]["tx"].as_u64().unwrap_or(0) as f64 / xdp.secs
    );
    println!("sipd stats: {stats}");
    assert!(xdp.answered > 0);
}
