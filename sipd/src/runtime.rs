//! `sipd run`: builds the shared state from the configuration, starts the datapath (AF_XDP
//! workers and/or the kernel-socket server), the admin endpoint and the signal handling, and runs
//! until SIGTERM/SIGINT.
//!
//! Life cycle: SIGHUP (or `POST /reload`, `sipd reload`) re-reads the file; a file with errors is
//! rejected whole and the running configuration kept. SIGTERM stops accepting, drains what is
//! queued, flushes records and snapshots, detaches XDP and exits 0 within a bounded time.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use tracing::{error, info, warn};

use crate::admin::{AdminCommand, AdminServer, MetricsSource, ProxyMetrics};
use crate::config::{Config, HealthSlots};
use crate::proxy::group::HealthProber;
use crate::proxy::location::{LocationService, StaticLocation};
use crate::proxy::{Proxy, ProxyConfig};
use crate::socket::{ServerHandle, SocketConfig, SocketServer, TcpLimits};

/// Capacity of the process-wide group health table (targets over all groups, across reloads).
const HEALTH_SLOTS: usize = 4096;

/// Events the main loop waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Reload,
    Shutdown,
}

/// Runs sipd with the configuration at `path` until told to stop.
pub fn run(path: &Path) -> Result<()> {
    let config = Config::load(path).map_err(|e| anyhow!("{e}"))?;
    crate::logging::init(config.log_format, &config.log_level);
    info!(config = %path.display(), mode = ?config.mode, "starting sipd {}", env!("CARGO_PKG_VERSION"));

    let mut slots = HealthSlots::new(HEALTH_SLOTS);
    let (proxy_config, probes) = slots.assign(&config.routing);
    let health = slots.health().clone();
    let location: Arc<dyn LocationService> = Arc::new(StaticLocation::new());
    let prober = HealthProber::with_slots(health.clone(), &probes, crate::socket::now_ms());

    let make_proxy = {
        let config = proxy_config.clone();
        let location = location.clone();
        let health = health.clone();
        move |_worker: usize| Proxy::new(config.clone(), location.clone(), health.clone())
    };
    let server = start_sockets(&config, make_proxy, prober)?;
    for (transport, addr) in server.local_addrs() {
        info!(%addr, ?transport, "listening (kernel sockets)");
    }

    let group_targets = Arc::new(ArcSwap::from_pointee(group_target_labels(&proxy_config)));
    let metrics: Vec<Arc<dyn MetricsSource>> = vec![
        Arc::new(ProxyMetrics {
            workers: server.proxy_stats(),
            health: Arc::new(ArcSwap::new(health.clone())),
            group_targets: group_targets.clone(),
        }),
        Arc::new(crate::socket::SocketMetrics::new(&server)),
    ];
    let (events_tx, events_rx) = crossbeam_channel::bounded::<Event>(16);
    let (admin_tx, admin_rx) = crossbeam_channel::bounded::<AdminCommand>(4);
    let mut admin = AdminServer::start(config.admin, metrics, admin_tx)
        .with_context(|| format!("admin endpoint on {}", config.admin))?;
    info!(addr = %admin.local_addr(), "admin endpoint");
    forward_admin(admin_rx, events_tx.clone());
    watch_signals(events_tx)?;

    let path = path.to_owned();
    let mut running = config;
    while let Ok(Event::Reload) = events_rx.recv() {
        reload(&path, &mut running, &mut slots, &server, &group_targets);
    }

    info!("shutting down: draining");
    let started = Instant::now();
    let report = server.shutdown().map_err(|e| anyhow!("{e}"))?;
    admin.stop();
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        threads_joined = report.threads,
        "stopped"
    );
    Ok(())
}

fn start_sockets(
    config: &Config,
    make_proxy: impl Fn(usize) -> Proxy,
    prober: HealthProber,
) -> Result<ServerHandle> {
    let socket_config = SocketConfig {
        udp_listen: config.listen.clone(),
        tcp_listen: if config.tcp {
            config.listen.clone()
        } else {
            Vec::new()
        },
        workers: config.workers,
        cores: config.cores.clone(),
        tcp: TcpLimits {
            max_connections: config.tcp_max_connections,
            max_buffered_bytes_per_conn: config.tcp_max_buffer,
            idle_timeout: config.tcp_idle_timeout,
            ..TcpLimits::default()
        },
        ..SocketConfig::default()
    };
    let prober = (!prober.is_empty()).then_some(prober);
    SocketServer::start(socket_config, make_proxy, prober)
        .map_err(|e| anyhow!("starting the socket datapath: {e}"))
}

fn reload(
    path: &Path,
    running: &mut Config,
    slots: &mut HealthSlots,
    server: &ServerHandle,
    group_targets: &Arc<ArcSwap<Vec<(String, SocketAddr)>>>,
) {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            error!("reload rejected, keeping the running configuration:\n{errors}");
            return;
        }
    };
    if new.listen != running.listen || new.tcp != running.tcp || new.mode != running.mode {
        warn!(
            "listen addresses, tcp and datapath mode change only with a restart; routing is reloaded"
        );
    }
    let (proxy_config, probes) = slots.assign(&new.routing);
    if let Err(e) = server.reload(proxy_config.clone()) {
        error!(error = %e, "reload could not reach the workers");
        return;
    }
    let prober = HealthProber::with_slots(slots.health().clone(), &probes, crate::socket::now_ms());
    if let Err(e) = server.set_prober(prober) {
        warn!(error = %e, "health prober not replaced");
    }
    group_targets.store(Arc::new(group_target_labels(&proxy_config)));
    info!(
        number_routes = proxy_config.number_routes.len(),
        domain_routes = proxy_config.domain_routes.len(),
        groups = proxy_config.groups.len(),
        "configuration reloaded"
    );
    *running = new;
}

/// (group name, target address) for each health slot in use, indexed by slot.
fn group_target_labels(config: &ProxyConfig) -> Vec<(String, SocketAddr)> {
    let mut labels = Vec::new();
    for g in &config.groups {
        for (i, t) in g.targets.iter().enumerate() {
            let slot = g.health_base + i;
            if labels.len() <= slot {
                labels.resize(
                    slot + 1,
                    (String::new(), SocketAddr::from(([0, 0, 0, 0], 0))),
                );
            }
            labels[slot] = (g.name.clone(), t.addr);
        }
    }
    labels.retain(|(name, _)| !name.is_empty());
    labels
}

fn forward_admin(admin_rx: Receiver<AdminCommand>, events: Sender<Event>) {
    std::thread::Builder::new()
        .name("sipd-admin-cmd".into())
        .spawn(move || {
            for cmd in admin_rx {
                let event = match cmd {
                    AdminCommand::Reload => Event::Reload,
                };
                if events.send(event).is_err() {
                    break;
                }
            }
        })
        .expect("spawning a thread at start-up");
}

fn watch_signals(events: Sender<Event>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("sipd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let event = if signal == SIGHUP {
                    Event::Reload
                } else {
                    Event::Shutdown
                };
                info!(signal, "signal received");
                if events.send(event).is_err() || event == Event::Shutdown {
                    // A second SIGTERM while draining is ignored: the drain is bounded anyway.
                    if event == Event::Shutdown {
                        std::thread::sleep(Duration::from_secs(30));
                    }
                    break;
                }
            }
        })?;
    Ok(())
}
