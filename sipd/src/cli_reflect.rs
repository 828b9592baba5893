//! `sipd reflect`: the AF_XDP reflector, the datapath with no SIP work (the benchmark's limit).
//!
//! Attaches the XDP program to `--iface`, binds one AF_XDP worker per `--queues` entry (pinned to
//! the matching `--cores` entry), and sends every datagram to a steered port straight back to
//! its sender. Prints JSON lines on stdout: `{"event":"ready",...}` once everything is attached,
//! `{"event":"stats",...}` every `--stats-interval-ms` and once at exit. Stops on SIGINT/SIGTERM
//! or after `--duration-secs`; the XDP program is detached on exit (also when killed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use serde_json::json;

use crate::afxdp::reflect::Reflector;
use crate::afxdp::{NoNeighbours, Worker, WorkerConfig, WorkerStats, ZeroCopy};
use crate::xdp::{AttachMode, Cidr, GuardSettings, XdpConfig, XdpDatapath};

/// Options of `sipd reflect`.
#[derive(Debug, Clone, Args)]
pub struct ReflectArgs {
    /// Interface to attach to.
    #[arg(long)]
    pub iface: String,
    /// RX queues to serve, one worker each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub queues: Vec<u32>,
    /// Cores to pin the workers to, in queue order (comma-separated; fewer than queues leaves the
    /// rest unpinned).
    #[arg(long, value_delimiter = ',')]
    pub cores: Vec<usize>,
    /// UDP ports steered to AF_XDP (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "5060")]
    pub ports: Vec<u16>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
    pub xdp_mode: XdpModeArg,
    /// AF_XDP zero-copy preference.
    #[arg(long, value_enum, default_value_t = ZeroCopyArg::Auto)]
    pub zero_copy: ZeroCopyArg,
    /// Per-source rate limit in datagrams/s (0: off).
    #[arg(long, default_value_t = 0)]
    pub rate_pps: u32,
    /// Per-source burst in datagrams.
    #[arg(long, default_value_t = 0)]
    pub burst: u32,
    /// Prefix exempt from the rate limit (repeatable), e.g. 10.0.0.0/8.
    #[arg(long = "allow")]
    pub allow: Vec<Cidr>,
    /// Prefix always dropped (repeatable).
    #[arg(long = "block")]
    pub block: Vec<Cidr>,
    /// Print counters every this many milliseconds (0: only at exit).
    #[arg(long, default_value_t = 0)]
    pub stats_interval_ms: u64,
    /// Stop by itself after this many seconds.
    #[arg(long)]
    pub duration_secs: Option<u64>,
    /// Frames per ring (fill ring and TX pool each; power of two).
    #[arg(long, default_value_t = 2048)]
    pub ring_frames: u32,
    /// Largest RX batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
}

/// `--xdp-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// Driver mode, falling back to SKB mode.
    Auto,
    /// Driver mode only.
    Driver,
    /// SKB (generic) mode only.
    Skb,
}

/// `--zero-copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZeroCopyArg {
    /// Try zero-copy, fall back to copy mode.
    Auto,
    /// Zero-copy or fail.
    Require,
    /// Copy mode.
    Off,
}

/// Runs the reflector until a signal or the duration ends.
pub fn run(args: ReflectArgs) -> Result<()> {
    if args.queues.is_empty() {
        bail!("--queues is empty");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handler")?;
    }

    let mut xdp_cfg = XdpConfig::new(&args.iface);
    xdp_cfg.sip_ports = args.ports.clone();
    xdp_cfg.mode = match args.xdp_mode {
        XdpModeArg::Auto => AttachMode::Auto,
        XdpModeArg::Driver => AttachMode::Driver,
        XdpModeArg::Skb => AttachMode::Skb,
    };
    xdp_cfg.guard = GuardSettings {
        rate_pps: args.rate_pps,
        burst: args.burst,
        allow: args.allow.clone(),
        block: args.block.clone(),
    };
    let mut dp = XdpDatapath::attach(&xdp_cfg)
        .with_context(|| format!("attaching XDP to {}", args.iface))?;

    let epoch = Instant::now();
    let mut workers = Vec::new();
    let mut stats: Vec<(u32, Arc<WorkerStats>)> = Vec::new();
    let mut modes = Vec::new();
    for (i, &queue) in args.queues.iter().enumerate() {
        let mut wc = WorkerConfig::new(&args.iface, queue);
        wc.core = args.cores.get(i).copied();
        wc.ring_frames = args.ring_frames;
        wc.batch = args.batch;
        wc.epoch = epoch;
        wc.zero_copy = match args.zero_copy {
            ZeroCopyArg::Auto => ZeroCopy::Auto,
            ZeroCopyArg::Require => ZeroCopy::Require,
            ZeroCopyArg::Off => ZeroCopy::Off,
        };
        let w = Worker::bind(wc).with_context(|| format!("queue {queue}"))?;
        dp.register_socket(queue, w.fd())
            .with_context(|| format!("registering queue {queue} in the XSKMAP"))?;
        modes.push(json!({"queue": queue, "bind": format!("{:?}", w.mode())}));
        stats.push((queue, w.stats()));
        workers.push(
            w.spawn(Reflector, NoNeighbours, stop.clone())
                .context("spawning worker")?,
        );
    }
    println!(
        "{}",
        json!({"event": "ready", "iface": args.iface, "xdp_mode": format!("{:?}", dp.mode()),
               "queues": modes})
    );

    let deadline = args.duration_secs.map(|s| epoch + Duration::from_secs(s));
    let interval =
        (args.stats_interval_ms > 0).then(|| Duration::from_millis(args.stats_interval_ms));
    let mut next_stats = interval.map(|i| Instant::now() + i);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let (Some(at), Some(i)) = (next_stats, interval)
            && now >= at
        {
            print_stats(&dp, &stats, epoch);
            next_stats = Some(at + i);
        }
        if workers.iter().any(|w| w.is_finished()) {
            tracing::error!("a worker exited early");
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        if w.join().is_err() {
            tracing::error!("a worker panicked");
        }
    }
    print_stats(&dp, &stats, epoch);
    drop(dp);
    Ok(())
}

fn print_stats(dp: &XdpDatapath, stats: &[(u32, Arc<WorkerStats>)], epoch: Instant) {
    let xdp = match dp.counters() {
        Ok(c) => {
            serde_json::Value::Object(c.iter().map(|(k, v)| (k.to_owned(), v.into())).collect())
        }
        Err(e) => json!({"error": e.to_string()}),
    };
    let workers: Vec<_> = stats
        .iter()
        .map(|(q, s)| {
            let s = s.snapshot();
            json!({"queue": q, "rx": s.rx, "tx": s.tx, "unparsed": s.unparsed,
                   "handler_dropped": s.handler_dropped, "no_tx_frame": s.no_tx_frame,
                   "no_neighbour": s.no_neighbour, "unframed": s.unframed, "tx_kicks": s.tx_kicks,
                   "kernel_rx_ring_full": s.rx_ring_full, "kernel_rx_fill_empty": s.rx_fill_empty,
                   "kernel_rx_dropped": s.rx_dropped})
        })
        .collect();
    println!(
        "{}",
        json!({"event": "stats", "t_ms": epoch.elapsed().as_millis() as u64, "xdp": xdp,
               "workers": workers})
    );
}
