//! `sipd run`: builds the shared state from the configuration, starts the datapath (AF_XDP
//! workers and the kernel-socket server), the admin endpoint, housekeeping and signal handling,
//! and runs until SIGTERM/SIGINT.
//!
//! Life cycle: SIGHUP (or `POST /reload`, `sipd reload`) re-reads the file; a file with errors is
//! rejected whole and the running configuration kept. What a reload changes: routes, groups,
//! redirect rules, credentials, trunk limits and the XDP guard (without reattaching). Listen
//! addresses, interfaces, the datapath mode and table capacities need a restart. SIGTERM stops
//! accepting, drains what is queued, flushes call records and the bindings journal, detaches XDP
//! and exits 0 within a bounded time.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender};
use tracing::{error, info, warn};

use crate::admin::{AdminCommand, AdminServer, MetricsSource, ProxyMetrics, family};
use crate::afxdp::proxy_frames::{KernelPathStats, ProxyFrames};
use crate::afxdp::{NeighbourTable, Worker, WorkerConfig, WorkerStats};
use crate::config::{Config, HealthSlots, Mode};
use crate::dialog::{DialogTable, RecordWriter};
use crate::proxy::group::HealthProber;
use crate::proxy::location::{LocationService, StaticLocation};
use crate::proxy::stats::ProxyStats;
use crate::proxy::{Proxy, ProxyConfig, RoutingCell};
use crate::registrar::{Authenticator, Registrar, RegistrarConfig};
use crate::socket::{ServerHandle, SocketConfig, SocketServer, TcpLimits, now_ms};
use crate::xdp::{AttachMode, XdpConfig, XdpDatapath};

/// Capacity of the process-wide group health table (targets over all groups, across reloads).
const HEALTH_SLOTS: usize = 4096;
/// How often bindings and dialogs are swept for expiry.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

/// Events the main loop waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Reload,
    Shutdown,
}

/// The AF_XDP part of a running sipd.
struct Afxdp {
    datapaths: Vec<Arc<Mutex<XdpDatapath>>>,
    workers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    worker_stats: Vec<(String, u32, Arc<WorkerStats>)>,
    kernel_path: Vec<Arc<KernelPathStats>>,
    proxy_stats: Vec<Arc<ProxyStats>>,
}

impl Afxdp {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            if w.join().is_err() {
                error!("an AF_XDP worker panicked");
            }
        }
        // Dropping the datapaths detaches the XDP programs.
        drop(self.datapaths);
    }
}

/// Runs sipd with the configuration at `path` until told to stop.
pub fn run(path: &Path) -> Result<()> {
    let config = Config::load(path).map_err(|e| anyhow!("{e}"))?;
    crate::logging::init(config.log_format, &config.log_level);
    info!(config = %path.display(), mode = ?config.mode, "starting sipd {}", env!("CARGO_PKG_VERSION"));

    let mut slots = HealthSlots::new(HEALTH_SLOTS);
    let (proxy_config, probes) = slots.assign(&config.routing);
    let health = slots.health().clone();
    let prober = HealthProber::with_slots(health.clone(), &probes, now_ms());

    // Registrar, location service, redirect rules, authentication.
    let (registrar, journal) = build_registrar(&config)?;
    let location: Arc<dyn LocationService> = match &registrar {
        Some(r) => r.clone(),
        None => Arc::new(StaticLocation::new()),
    };

    // Dialog table and call records.
    let records = match &config.call_records {
        Some(p) => Some(
            RecordWriter::spawn(p, config.record_queue)
                .with_context(|| format!("call records {}", p.display()))?,
        ),
        None => None,
    };
    let dialogs = Arc::new(match &records {
        Some(w) => DialogTable::with_records(config.dialogs.clone(), w.sink()),
        None => DialogTable::new(config.dialogs.clone()),
    });
    apply_trunk_limits(&config, &dialogs);

    let routing_cell = RoutingCell::new(proxy_config.clone());
    let trunks = config_trunks(&config);
    let make_proxy = {
        let cell = routing_cell.clone();
        let location = location.clone();
        let health = health.clone();
        let registrar = registrar.clone();
        let dialogs = dialogs.clone();
        move |_worker: usize| {
            let mut p = Proxy::new(cell.config(), location.clone(), health.clone())
                .with_routing_cell(cell.clone())
                .with_dialogs(dialogs.clone(), trunks.clone());
            if let Some(r) = &registrar {
                p = p.with_registrar(r.clone());
            }
            p
        }
    };
    let server = start_sockets(&config, &make_proxy, prober)?;
    for (transport, addr) in server.local_addrs() {
        info!(%addr, ?transport, "listening (kernel sockets)");
    }
    let afxdp = match config.mode {
        Mode::Socket => None,
        Mode::Afxdp => Some(
            start_afxdp(&config, &make_proxy, &server)
                .context("starting AF_XDP (mode = \"afxdp\")")?,
        ),
        Mode::Auto => match start_afxdp(&config, &make_proxy, &server) {
            Ok(a) => Some(a),
            Err(e) => {
                warn!(reason = %format!("{e:#}"), "AF_XDP not available: serving UDP with kernel sockets only (mode = \"auto\")");
                None
            }
        },
    };

    let group_targets = Arc::new(ArcSwap::from_pointee(group_target_labels(&proxy_config)));
    let mut all_proxy_stats = server.proxy_stats();
    if let Some(a) = &afxdp {
        all_proxy_stats.extend(a.proxy_stats.iter().cloned());
    }
    let mut metrics: Vec<Arc<dyn MetricsSource>> = vec![
        Arc::new(ProxyMetrics {
            workers: all_proxy_stats,
            health: Arc::new(ArcSwap::new(health.clone())),
            group_targets: group_targets.clone(),
        }),
        Arc::new(crate::socket::SocketMetrics::new(&server)),
        Arc::new(DialogMetrics(dialogs.clone())),
    ];
    if let Some(r) = &registrar {
        metrics.push(Arc::new(RegistrarMetrics(r.clone())));
    }
    if let Some(a) = &afxdp {
        metrics.push(Arc::new(AfxdpMetrics {
            datapaths: a.datapaths.clone(),
            workers: a.worker_stats.clone(),
            kernel_path: a.kernel_path.clone(),
        }));
    }

    let (events_tx, events_rx) = crossbeam_channel::bounded::<Event>(16);
    let (admin_tx, admin_rx) = crossbeam_channel::bounded::<AdminCommand>(4);
    let mut admin = AdminServer::start(config.admin, metrics, admin_tx)
        .with_context(|| format!("admin endpoint on {}", config.admin))?;
    info!(addr = %admin.local_addr(), "admin endpoint");
    forward_admin(admin_rx, events_tx.clone());
    watch_signals(events_tx)?;
    let mut watched = server.proxy_stats();
    if let Some(a) = &afxdp {
        watched.extend(a.proxy_stats.iter().cloned());
    }
    let housekeeping = spawn_housekeeping(registrar.clone(), dialogs.clone(), watched);

    let mut running = config;
    while let Ok(Event::Reload) = events_rx.recv() {
        let ctx = ReloadContext {
            slots: &mut slots,
            routing_cell: &routing_cell,
            server: &server,
            group_targets: &group_targets,
            registrar: registrar.as_deref(),
            dialogs: &dialogs,
            afxdp: afxdp.as_ref(),
        };
        reload(path, &mut running, ctx);
    }

    info!("shutting down: draining");
    let started = Instant::now();
    housekeeping.0.store(true, Ordering::Relaxed);
    if let Some(a) = afxdp {
        a.stop();
    }
    let report = server.shutdown().map_err(|e| anyhow!("{e}"))?;
    let _ = housekeeping.1.join();
    if let Some(w) = records {
        match w.shutdown() {
            Ok(s) => info!(
                written = s.written,
                dropped = s.dropped,
                "call records flushed"
            ),
            Err(e) => error!(error = %e, "flushing call records"),
        }
    }
    if let Some(j) = journal
        && let Err(e) = j.stop()
    {
        error!(error = %e, "flushing the bindings journal");
    }
    admin.stop();
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        threads_joined = report.threads,
        "stopped"
    );
    Ok(())
}

type Journal = crate::registrar::snapshot::JournalWriter;

fn build_registrar(config: &Config) -> Result<(Option<Arc<Registrar>>, Option<Journal>)> {
    let wanted = config.registrar.is_some()
        || config.auth.is_some()
        || !config.redirect.domains.is_empty()
        || !config.redirect.prefixes.is_empty();
    if !wanted {
        return Ok((None, None));
    }
    // Without [registrar], the registrar serves no domain: it only authenticates and redirects.
    let rc = config.registrar.clone().unwrap_or(RegistrarConfig {
        domains: Vec::new(),
        ..RegistrarConfig::default()
    });
    let mut registrar = Registrar::new(rc);
    if let Some(auth) = &config.auth {
        let authenticator =
            Authenticator::new(auth.clone()).map_err(|e| anyhow!("credentials: {e}"))?;
        registrar = registrar.with_auth(authenticator);
        info!(realm = %auth.realm, invite = auth.auth_invite, "digest authentication on");
    }
    let mut registrar = registrar
        .with_redirect(&config.redirect)
        .map_err(|e| anyhow!("redirect rules: {e}"))?;
    let journal = match registrar
        .start_journal(now_ms())
        .context("bindings journal")?
    {
        Some((writer, report)) => {
            info!(
                bindings = report.bindings,
                aors = report.aors,
                expired = report.expired,
                "bindings restored"
            );
            Some(writer)
        }
        None => None,
    };
    Ok((Some(Arc::new(registrar)), journal))
}

fn config_trunks(config: &Config) -> Arc<Vec<crate::config::Trunk>> {
    Arc::new(config.trunks.clone())
}

fn apply_trunk_limits(config: &Config, dialogs: &DialogTable) {
    for (i, t) in config.trunks.iter().enumerate() {
        dialogs.set_trunk_limit(i as u32 + 1, t.max_calls);
    }
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

fn start_afxdp(
    config: &Config,
    make_proxy: &impl Fn(usize) -> Proxy,
    server: &ServerHandle,
) -> Result<Afxdp> {
    if config.interfaces.is_empty() {
        bail!("no [[datapath.interfaces]] configured");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let mut afxdp = Afxdp {
        datapaths: Vec::new(),
        workers: Vec::new(),
        stop: stop.clone(),
        worker_stats: Vec::new(),
        kernel_path: Vec::new(),
        proxy_stats: Vec::new(),
    };
    // Worker indices continue after the socket workers (and the TCP thread).
    let mut index = config.workers + 1;
    for iface in &config.interfaces {
        let mut xc = XdpConfig::new(&iface.name);
        xc.sip_ports = config.sip_ports.clone();
        xc.guard = config.guard.clone();
        xc.mode = AttachMode::Auto;
        let mut dp = match XdpDatapath::attach(&xc)
            .with_context(|| format!("attaching XDP to {}", iface.name))
        {
            Ok(dp) => dp,
            Err(e) => {
                afxdp.stop();
                return Err(e);
            }
        };
        info!(iface = %iface.name, mode = ?dp.mode(), "XDP program attached");
        let ifindex = nix::net::if_::if_nametoindex(iface.name.as_str())
            .with_context(|| format!("interface {}", iface.name))?;
        let neighbours = NeighbourTable::new();
        neighbours
            .spawn_refresher(ifindex, Duration::from_secs(1), stop.clone())
            .context("reading the neighbour table")?;
        for (i, &queue) in iface.queues.iter().enumerate() {
            let mut wc = WorkerConfig::new(&iface.name, queue);
            wc.core = iface.cores.get(i).copied();
            wc.epoch = epoch;
            let worker = match Worker::bind(wc) {
                Ok(w) => w,
                Err(e) => {
                    drop(dp);
                    afxdp.stop();
                    return Err(anyhow!(
                        "binding AF_XDP on {} queue {queue}: {e}",
                        iface.name
                    ));
                }
            };
            dp.register_socket(queue, worker.fd())
                .with_context(|| format!("XSKMAP entry for queue {queue}"))?;
            info!(iface = %iface.name, queue, bind = ?worker.mode(), core = ?iface.cores.get(i), "AF_XDP worker");
            let proxy = make_proxy(index);
            index += 1;
            afxdp.proxy_stats.push(proxy.stats().clone());
            let handler =
                ProxyFrames::new(proxy, neighbours.cache(), Some(server.tcp_handoff()), epoch)
                    .with_listen_sockets(
                        server
                            .udp_senders()
                            .context("duplicating the UDP listen sockets")?,
                    );
            afxdp.kernel_path.push(handler.kernel_path_stats());
            afxdp
                .worker_stats
                .push((iface.name.clone(), queue, worker.stats()));
            afxdp.workers.push(
                worker
                    .spawn(handler, neighbours.cache(), stop.clone())
                    .context("spawning an AF_XDP worker")?,
            );
        }
        afxdp.datapaths.push(Arc::new(Mutex::new(dp)));
    }
    Ok(afxdp)
}

struct ReloadContext<'a> {
    slots: &'a mut HealthSlots,
    routing_cell: &'a RoutingCell,
    server: &'a ServerHandle,
    group_targets: &'a Arc<ArcSwap<Vec<(String, SocketAddr)>>>,
    registrar: Option<&'a Registrar>,
    dialogs: &'a DialogTable,
    afxdp: Option<&'a Afxdp>,
}

fn reload(path: &Path, running: &mut Config, ctx: ReloadContext<'_>) {
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            error!("reload rejected, keeping the running configuration:\n{errors}");
            return;
        }
    };
    if new.listen != running.listen
        || new.tcp != running.tcp
        || new.mode != running.mode
        || new.interfaces != running.interfaces
    {
        warn!("listen addresses, tcp, interfaces and the datapath mode change only with a restart");
    }
    if let Some(r) = ctx.registrar {
        if let Err(e) = r.set_redirect(&new.redirect) {
            error!(error = %e, "reload rejected: redirect rules");
            return;
        }
        match r.reload_credentials() {
            Ok(n) => info!(users = n, "credentials reloaded"),
            Err(e) => warn!(error = %e, "credentials not reloaded, keeping the previous ones"),
        }
    }
    let (proxy_config, probes) = ctx.slots.assign(&new.routing);
    // Every worker (socket and AF_XDP) picks the new routing up on its next message; the
    // socket threads also get it over their control channel (and count the reload).
    ctx.routing_cell.publish(proxy_config.clone());
    if let Err(e) = ctx.server.reload(proxy_config.clone()) {
        warn!(error = %e, "reload could not reach every socket thread");
    }
    if let Some(a) = ctx.afxdp {
        for dp in &a.datapaths {
            let mut dp = dp.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = dp.set_guard(&new.guard) {
                warn!(error = %e, "XDP guard not updated");
            }
        }
    }
    let prober = HealthProber::with_slots(ctx.slots.health().clone(), &probes, now_ms());
    if let Err(e) = ctx.server.set_prober(prober) {
        warn!(error = %e, "health prober not replaced");
    }
    apply_trunk_limits(&new, ctx.dialogs);
    ctx.group_targets
        .store(Arc::new(group_target_labels(&proxy_config)));
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

/// Messages dropped as unparsable or malformed, or answered 400, summed over the workers.
fn bad_input(workers: &[Arc<ProxyStats>]) -> u64 {
    use crate::proxy::stats::DropReason;
    workers
        .iter()
        .map(|w| {
            w.drop_count(DropReason::Malformed)
                + w.drop_count(DropReason::ResponseMalformed)
                + w.reply_count(400)
        })
        .sum()
}

fn spawn_housekeeping(
    registrar: Option<Arc<Registrar>>,
    dialogs: Arc<DialogTable>,
    workers: Vec<Arc<ProxyStats>>,
) -> (Arc<AtomicBool>, JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let handle = std::thread::Builder::new()
        .name("sipd-housekeeping".into())
        .spawn(move || {
            // Floods of bad input: at most one warning a second, with what it stands for.
            let flood = crate::logging::RateLimited::new();
            let mut reported = bad_input(&workers);
            while !stop2.load(Ordering::Relaxed) {
                let now = now_ms();
                let bad = bad_input(&workers);
                if bad > reported && flood.check(now, 1000).is_some() {
                    warn!(
                        count = bad - reported,
                        total = bad,
                        "malformed SIP dropped or answered 400 (see sipd_dropped_total, sipd_parse_errors_total)"
                    );
                    reported = bad;
                }
                if let Some(r) = &registrar {
                    r.sweep(now);
                }
                // Bounded work per tick: the sweep uses the table's own atomic protocol.
                dialogs.expire(now, 65_536);
                std::thread::sleep(HOUSEKEEPING);
            }
        })
        .expect("spawning a thread at start-up");
    (stop, handle)
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
                if events.send(event).is_err() {
                    break;
                }
            }
        })?;
    Ok(())
}

struct DialogMetrics(Arc<DialogTable>);

impl MetricsSource for DialogMetrics {
    fn write_metrics(&self, out: &mut String) {
        out.push_str(&self.0.stats().prometheus("sipd_dialogs"));
    }
}

struct RegistrarMetrics(Arc<Registrar>);

impl MetricsSource for RegistrarMetrics {
    fn write_metrics(&self, out: &mut String) {
        let mut last = "";
        for (name, labels, value) in self.0.metrics() {
            if name != last {
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                family(out, name, kind, "Registrar and authentication.");
                last = name;
            }
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    }
}

struct AfxdpMetrics {
    datapaths: Vec<Arc<Mutex<XdpDatapath>>>,
    workers: Vec<(String, u32, Arc<WorkerStats>)>,
    kernel_path: Vec<Arc<KernelPathStats>>,
}

impl MetricsSource for AfxdpMetrics {
    fn write_metrics(&self, out: &mut String) {
        family(
            out,
            "sipd_xdp_packets_total",
            "counter",
            "XDP program verdicts (summed over CPUs), by interface.",
        );
        for dp in &self.datapaths {
            let dp = dp.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(c) = dp.counters() {
                for (name, v) in c.iter() {
                    let _ = writeln!(
                        out,
                        "sipd_xdp_packets_total{{iface=\"{}\",verdict=\"{name}\"}} {v}",
                        dp.iface()
                    );
                }
            }
        }
        family(
            out,
            "sipd_afxdp_packets_total",
            "counter",
            "AF_XDP worker packets, per interface and queue.",
        );
        for (iface, queue, s) in &self.workers {
            let s = s.snapshot();
            for (what, v) in [
                ("rx", s.rx),
                ("tx", s.tx),
                ("unparsed", s.unparsed),
                ("handler_dropped", s.handler_dropped),
                ("no_tx_frame", s.no_tx_frame),
                ("no_neighbour", s.no_neighbour),
                ("unframed", s.unframed),
                ("kernel_rx_ring_full", s.rx_ring_full),
                ("kernel_rx_fill_empty", s.rx_fill_empty),
                ("kernel_rx_dropped", s.rx_dropped),
            ] {
                let _ = writeln!(
                    out,
                    "sipd_afxdp_packets_total{{iface=\"{iface}\",queue=\"{queue}\",what=\"{what}\"}} {v}"
                );
            }
        }
        family(
            out,
            "sipd_afxdp_kernel_path_total",
            "counter",
            "Messages AF_XDP workers sent through the kernel, by reason.",
        );
        let l = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let sum = |f: fn(&KernelPathStats) -> &std::sync::atomic::AtomicU64| -> u64 {
            self.kernel_path.iter().map(|k| l(f(k))).sum()
        };
        let _ = writeln!(
            out,
            "sipd_afxdp_kernel_path_total{{reason=\"no_neighbour\"}} {}",
            sum(|k| &k.no_neighbour)
        );
        let _ = writeln!(
            out,
            "sipd_afxdp_kernel_path_total{{reason=\"other_family\"}} {}",
            sum(|k| &k.other_family)
        );
        let _ = writeln!(
            out,
            "sipd_afxdp_kernel_path_total{{reason=\"tcp\"}} {}",
            sum(|k| &k.tcp)
        );
        let _ = writeln!(
            out,
            "sipd_afxdp_kernel_path_total{{reason=\"failed\"}} {}",
            sum(|k| &k.failed)
        );
    }
}
