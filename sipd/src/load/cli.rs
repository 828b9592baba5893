//! `sipd load uac|uas|blast`: arguments, worker threads, progress line and report.
//!
//! Exit codes: 0 when failed calls stay within `--max-failed-pct` (default 0: any failure
//! fails the run), 1 when they exceed it, 2 for usage and I/O errors.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use super::blast::{Blast, BlastConfig, BlastMethod};
use super::build::UriTemplate;
use super::io::{MmsgSocket, bind_udp, source_address_for};
use super::runner::{Rate, WorkerConfig, WorkerResult, run_worker};
use super::stats::{Progress, Report, Snapshot, Stats};
use super::uac::{Scenario, Uac, UacConfig};
use super::uas::{Uas, UasConfig};
use super::{Endpoint, Timers, run_id};

/// Generate SIP load: place calls (uac), answer them (uas), or flood requests (blast).
#[derive(Args, Debug, Clone)]
#[command(verbatim_doc_comment)]
pub struct LoadArgs {
    #[command(subcommand)]
    pub role: Role,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Role {
    /// Place calls (INVITE, ACK, hold, BYE) or REGISTER / OPTIONS transactions.
    ///
    /// Example: sipd load uac --target 10.0.0.2:5060 --rate 1000 --duration 10s
    Uac(UacArgs),
    /// Answer: 180 + 200 to INVITE (2xx retransmitted until ACK), 200 to BYE/OPTIONS/REGISTER.
    ///
    /// Example: sipd load uas --listen 10.0.0.3:5060
    Uas(UasArgs),
    /// Flood distinct, valid requests statelessly (pure forwarding throughput).
    ///
    /// Example: sipd load blast --target 10.0.0.2:5060 --rate max --duration 5s
    Blast(BlastArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Worker threads, each with its own socket (UAC/blast: local port + i; UAS: SO_REUSEPORT).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub cores: u16,
    /// CPUs to pin the workers to, e.g. `2,3` (worker i on the i-th); no pinning by default.
    #[arg(long, value_delimiter = ',')]
    pub pin: Vec<usize>,
    /// Stop starting calls after this long (`10s`, `500ms`, `2m`). The UAS stops answering.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// RFC 3261 T1: first retransmission interval; Timer B/F = 64*T1 and T2 = 8*T1.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub t1: Duration,
    /// Datagrams per sendmmsg/recvmmsg call.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub batch: u16,
    /// Exit 1 when failed calls exceed this percentage of attempted ones.
    #[arg(long, default_value_t = 0.0)]
    pub max_failed_pct: f64,
    /// No SDP bodies (INVITE offer, 200 answer).
    #[arg(long)]
    pub no_sdp: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    Call,
    Register,
    Options,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    Options,
    Invite,
    Register,
    Message,
}

#[derive(Args, Debug, Clone)]
pub struct UacArgs {
    /// Where requests go: a proxy, or a UAS directly.
    #[arg(long)]
    pub target: SocketAddr,
    /// Our address (Via, Contact); IP defaults to the one routing to the target, port to any.
    #[arg(long)]
    pub local: Option<SocketAddr>,
    /// New calls per second (all workers together), or `max`.
    #[arg(long, default_value = "100")]
    pub rate: Rate,
    /// Calls to place (all workers together); with --duration, whichever ends first.
    #[arg(long)]
    pub calls: Option<u64>,
    /// Time between the ACK and the BYE.
    #[arg(long, value_parser = parse_duration, default_value = "0ms")]
    pub hold: Duration,
    // (clap turns a literal `{n}` in help text into a line break, hence the wording.)
    #[arg(
        long,
        default_value = "sip:+4930{n}@biloxi.example.com",
        help = "Request-URI (the AOR for register); n in braces, as in the default, becomes the call number"
    )]
    pub uri: String,
    /// call: INVITE, ACK, hold, BYE; register / options: one transaction per call.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Call)]
    pub scenario: ScenarioArg,
    /// Digest credentials `user:pass` for 401/407 challenges.
    #[arg(long)]
    pub auth: Option<String>,
    /// Most calls in flight (all workers); default 200 with `--rate max`, else unlimited.
    #[arg(long)]
    pub limit: Option<usize>,
    /// REGISTER Expires.
    #[arg(long, default_value_t = 3600)]
    pub expires: u32,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug, Clone)]
pub struct UasArgs {
    /// Address to answer on.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Keep no per-call state: no 2xx retransmission (the sink for `blast --method invite`).
    #[arg(long)]
    pub stateless: bool,
    /// Challenge REGISTER with Digest (401) and accept only `user:pass`.
    #[arg(long)]
    pub auth: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug, Clone)]
pub struct BlastArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long)]
    pub local: Option<SocketAddr>,
    /// Requests per second (all workers together), or `max`.
    #[arg(long, default_value = "max")]
    pub rate: Rate,
    /// Requests to send (all workers together).
    #[arg(long)]
    pub calls: Option<u64>,
    #[arg(
        long,
        default_value = "sip:+4930{n}@biloxi.example.com",
        help = "Request-URI; n in braces, as in the default, becomes the request number"
    )]
    pub uri: String,
    /// Method of the flood (with invite, answer with `uas --stateless`).
    #[arg(long, value_enum, default_value_t = MethodArg::Options)]
    pub method: MethodArg,
    /// After the last request, wait this long for responses.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub drain: Duration,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Parses `sipd load` arguments (without the leading `sipd load`), e.g.
/// `["uas", "--listen", "127.0.0.1:5060"]`: for tests and for embedding.
pub fn parse_args<I, T>(args: I) -> Result<LoadArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    #[derive(clap::Parser)]
    #[command(name = "sipd load")]
    struct Wrap {
        #[command(flatten)]
        load: LoadArgs,
    }
    let argv = std::iter::once(std::ffi::OsString::from("sipd load"))
        .chain(args.into_iter().map(Into::into));
    <Wrap as clap::Parser>::try_parse_from(argv).map(|w| w.load)
}

/// `500ms`, `10s`, `2m`, `250us`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a duration like 500ms, 10s, 2m"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "us" | "µs" => n / 1e6,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (us, ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("`{s}`: not a duration"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_auth(s: &Option<String>) -> anyhow::Result<Option<(String, String)>> {
    match s {
        None => Ok(None),
        Some(s) => match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Some((u.to_string(), p.to_string()))),
            _ => bail!("--auth expects user:pass"),
        },
    }
}

/// The outcome of a run: the report and the process exit code it calls for.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub report: Report,
    pub exit_code: u8,
}

/// What a caller (a test, another command) can do with a running load: stop it, and learn the
/// workers' bound addresses once they are bound.
#[derive(Default, Clone)]
pub struct Control {
    pub stop: Arc<AtomicBool>,
    pub ready: Option<mpsc::Sender<Vec<SocketAddr>>>,
}

/// The `sipd load` entry: runs, prints the report (text or JSON) on stdout, and maps the outcome
/// to the exit code.
pub fn main(args: LoadArgs) -> ExitCode {
    match run(args) {
        Ok(o) => ExitCode::from(o.exit_code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the role with a progress line on stderr (unless `--quiet`) and prints the report.
pub fn run(args: LoadArgs) -> anyhow::Result<Outcome> {
    let outcome = execute(&args, &Control::default())?;
    let common = common(&args);
    if common.json {
        println!("{}", serde_json::to_string_pretty(&outcome.report)?);
    } else {
        print!("{}", outcome.report.to_text());
    }
    Ok(outcome)
}

fn common(args: &LoadArgs) -> &CommonArgs {
    match &args.role {
        Role::Uac(a) => &a.common,
        Role::Uas(a) => &a.common,
        Role::Blast(a) => &a.common,
    }
}

/// An endpoint factory per worker: called on the worker's thread with its bound address.
type MakeEndpoint<E> = Arc<dyn Fn(usize, SocketAddr) -> E + Send + Sync>;

/// Runs the role without printing the report (the progress line still goes to stderr unless
/// `--quiet`).
pub fn execute(args: &LoadArgs, control: &Control) -> anyhow::Result<Outcome> {
    let c = common(args).clone();
    let timers = Timers {
        t1_us: (c.t1.as_micros() as u64).max(1),
        t2_us: (c.t1.as_micros() as u64).max(1) * 8,
    };
    let workers = usize::from(c.cores);
    match &args.role {
        Role::Uac(a) => {
            if a.calls.is_none() && c.duration.is_none() {
                bail!("give --calls or --duration");
            }
            let uri = UriTemplate::parse(&a.uri).map_err(anyhow::Error::msg)?;
            let auth = parse_auth(&a.auth)?;
            let scenario = match a.scenario {
                ScenarioArg::Call => Scenario::Call,
                ScenarioArg::Register => Scenario::Register,
                ScenarioArg::Options => Scenario::Options,
            };
            let limit = a.limit.unwrap_or(match a.rate {
                Rate::Max => 200,
                Rate::PerSecond(_) => usize::MAX,
            });
            let local = local_addresses(a.target, a.local, workers)?;
            let (target, hold, expires, sdp) = (a.target, a.hold, a.expires, !c.no_sdp);
            let make: MakeEndpoint<Uac> = Arc::new(move |i, bound| {
                Uac::new(UacConfig {
                    scenario,
                    target,
                    local: bound,
                    uri: uri.clone(),
                    hold_us: hold.as_micros() as u64,
                    timers,
                    auth: auth.clone(),
                    expires,
                    first_number: i as u64,
                    number_step: workers as u64,
                    run_id: run_id(i),
                    sdp,
                })
            });
            run_workers(
                "uac",
                scenario.name(),
                &c,
                local,
                false,
                a.rate,
                limit,
                a.calls,
                None,
                make,
                control,
            )
        }
        Role::Uas(a) => {
            let auth = parse_auth(&a.auth)?;
            let (stateless, sdp) = (a.stateless, !c.no_sdp);
            let make: MakeEndpoint<Uas> = Arc::new(move |_, bound| {
                Uas::new(UasConfig {
                    local: bound,
                    timers,
                    stateless,
                    auth: auth.clone(),
                    sdp,
                })
            });
            let mut listen = a.listen;
            if workers > 1 && listen.port() == 0 {
                // Workers share one port with SO_REUSEPORT: pick it once.
                listen.set_port(std::net::UdpSocket::bind(listen)?.local_addr()?.port());
            }
            run_workers(
                "uas",
                if stateless { "stateless" } else { "answer" },
                &c,
                vec![listen; workers],
                workers > 1,
                Rate::Max,
                usize::MAX,
                Some(0),
                Some(Duration::ZERO),
                make,
                control,
            )
        }
        Role::Blast(a) => {
            if a.calls.is_none() && c.duration.is_none() {
                bail!("give --calls or --duration");
            }
            let uri = UriTemplate::parse(&a.uri).map_err(anyhow::Error::msg)?;
            let method = match a.method {
                MethodArg::Options => BlastMethod::Options,
                MethodArg::Invite => BlastMethod::Invite,
                MethodArg::Register => BlastMethod::Register,
                MethodArg::Message => BlastMethod::Message,
            };
            let local = local_addresses(a.target, a.local, workers)?;
            let (target, sdp) = (a.target, !c.no_sdp);
            let make: MakeEndpoint<Blast> = Arc::new(move |i, bound| {
                Blast::new(BlastConfig {
                    method,
                    target,
                    local: bound,
                    uri: uri.clone(),
                    run_id: run_id(i),
                    first_number: i as u64,
                    number_step: workers as u64,
                    sdp,
                })
            });
            run_workers(
                "blast",
                method.name(),
                &c,
                local,
                false,
                a.rate,
                usize::MAX,
                a.calls,
                Some(a.drain),
                make,
                control,
            )
        }
    }
}

/// Worker i's address: the given (or routed-to-target) IP, the given port + i (or any port).
fn local_addresses(
    target: SocketAddr,
    local: Option<SocketAddr>,
    workers: usize,
) -> anyhow::Result<Vec<SocketAddr>> {
    let ip = match local {
        Some(l) if !l.ip().is_unspecified() => l.ip(),
        _ => source_address_for(target)
            .with_context(|| format!("no local address routes to {target}"))?,
    };
    let port = local.map_or(0, |l| l.port());
    (0..workers)
        .map(|i| {
            let p = if port == 0 {
                0
            } else {
                u16::try_from(usize::from(port) + i).context("local port + worker out of range")?
            };
            Ok(SocketAddr::new(ip, p))
        })
        .collect()
}

fn split(total: Option<u64>, workers: usize, i: usize) -> Option<u64> {
    total.map(|t| t / workers as u64 + u64::from((i as u64) < t % workers as u64))
}

#[allow(clippy::too_many_arguments)]
fn run_workers<E: Endpoint + 'static>(
    role: &str,
    scenario: &str,
    c: &CommonArgs,
    addrs: Vec<SocketAddr>,
    reuse_port: bool,
    rate: Rate,
    limit: usize,
    calls: Option<u64>,
    drain: Option<Duration>,
    make: MakeEndpoint<E>,
    control: &Control,
) -> anyhow::Result<Outcome> {
    let workers = addrs.len();
    let batch = usize::from(c.batch);
    // Bind every socket before starting: an address in use is a usage error, exit 2.
    let mut sockets = Vec::with_capacity(workers);
    for a in &addrs {
        sockets.push(bind_udp(*a, reuse_port).with_context(|| format!("bind {a}"))?);
    }
    let bound = sockets
        .iter()
        .map(|s| s.local_addr())
        .collect::<std::io::Result<Vec<SocketAddr>>>()?;
    if let Some(tx) = &control.ready {
        let _ = tx.send(bound.clone());
    }
    // UAS without --duration: answer until stopped; calls = Some(0) means "start none".
    let uas_like = calls == Some(0);
    let progress: Vec<Arc<Progress>> = (0..workers).map(|_| Arc::default()).collect();
    let epoch = Instant::now();
    let results: Vec<anyhow::Result<WorkerResult>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, sock)| {
                let cfg = WorkerConfig {
                    rate: match rate {
                        Rate::PerSecond(r) => Rate::PerSecond(r / workers as f64),
                        Rate::Max => Rate::Max,
                    },
                    limit: if uas_like {
                        // Answer only: never start anything.
                        0
                    } else if limit == usize::MAX {
                        limit
                    } else {
                        (limit / workers).max(1)
                    },
                    calls: if uas_like {
                        None
                    } else {
                        split(calls, workers, i)
                    },
                    duration: c.duration,
                    drain,
                    batch,
                    stop: control.stop.clone(),
                    progress: progress[i].clone(),
                };
                let cpu = c.pin.get(i).copied();
                let make = make.clone();
                let local = bound[i];
                std::thread::Builder::new()
                    .name(format!("load-{role}-{i}"))
                    .spawn_scoped(scope, move || {
                        if let Some(id) = cpu {
                            core_affinity::set_for_current(core_affinity::CoreId { id });
                        }
                        let mut ep = make(i, local);
                        let mut sock = MmsgSocket::from_socket(sock, batch)?;
                        run_worker(&mut ep, &mut sock, &cfg, epoch)
                            .with_context(|| format!("worker {i}"))
                    })
                    .expect("spawn worker thread")
            })
            .collect();
        // Progress line once a second while the workers run.
        let mut prev = Snapshot::default();
        let mut last = Instant::now();
        let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut printed = false;
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
            if !c.quiet && last.elapsed() >= Duration::from_secs(1) {
                let snap = Snapshot::sum(&progress);
                let dt = last.elapsed().as_secs_f64();
                let line = snap.line(&prev, epoch.elapsed().as_secs_f64(), dt);
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else {
                    eprintln!("{line}");
                }
                printed = true;
                prev = snap;
                last = Instant::now();
            }
        }
        if printed && tty {
            eprintln!();
        }
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("worker panicked")))
            })
            .collect()
    });
    let mut total = Stats::default();
    let mut active = 0u64;
    let mut elapsed = Duration::ZERO;
    let mut load_elapsed = Duration::ZERO;
    for r in results {
        let r = r?;
        total.merge(&r.stats);
        active += r.active as u64;
        elapsed = elapsed.max(r.elapsed);
        load_elapsed = load_elapsed.max(r.load_elapsed);
    }
    let report = Report::new(
        role,
        scenario,
        workers,
        &total,
        load_elapsed.as_secs_f64(),
        elapsed.saturating_sub(load_elapsed).as_secs_f64(),
        active,
    );
    let exit_code = if report.failed_pct() > c.max_failed_pct {
        1
    } else {
        0
    };
    Ok(Outcome { report, exit_code })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrap {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(clap::Subcommand)]
    enum Cmd {
        Load(LoadArgs),
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn cli_sketch_parses() {
        let w = Wrap::try_parse_from([
            "sipd",
            "load",
            "uac",
            "--target",
            "10.0.0.2:5060",
            "--local",
            "10.0.0.1:5060",
            "--rate",
            "1000",
            "--duration",
            "10s",
            "--calls",
            "5",
            "--hold",
            "0ms",
            "--uri",
            "sip:bob@biloxi.example.com",
            "--scenario",
            "register",
            "--auth",
            "u:p",
            "--cores",
            "1",
            "--json",
            "--max-failed-pct",
            "0.5",
        ])
        .unwrap();
        let Cmd::Load(LoadArgs { role: Role::Uac(a) }) = w.cmd else {
            panic!()
        };
        assert_eq!(a.rate, Rate::PerSecond(1000.0));
        assert_eq!(a.scenario, ScenarioArg::Register);
        assert_eq!(a.common.max_failed_pct, 0.5);
        assert!(a.common.json);
        let w = Wrap::try_parse_from([
            "sipd",
            "load",
            "blast",
            "--target",
            "10.0.0.2:5060",
            "--rate",
            "max",
            "--duration",
            "5s",
        ])
        .unwrap();
        let Cmd::Load(LoadArgs {
            role: Role::Blast(b),
        }) = w.cmd
        else {
            panic!()
        };
        assert_eq!(b.rate, Rate::Max);
        assert!(Wrap::try_parse_from(["sipd", "load", "uas"]).is_err());
    }

    #[test]
    fn calls_split_over_workers() {
        let parts: Vec<_> = (0..3).map(|i| split(Some(10), 3, i).unwrap()).collect();
        assert_eq!(parts, vec![4, 3, 3]);
        assert_eq!(split(None, 3, 0), None);
    }
}
