//! The configuration file: one TOML document, every key documented in `sipd.example.toml`.
//!
//! Loading is all-or-nothing: the file is parsed (unknown keys are errors), then every value is
//! checked and turned into the core's types (addresses parsed, host names resolved once, prefixes
//! inserted, group names resolved). Any problem is reported with the file, line and key, and
//! nothing is applied; a reload that fails keeps the running configuration.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::proxy::group::{Group, GroupTarget, Health, HealthConfig};
use crate::proxy::numbers::PrefixTable;
use crate::proxy::{NextHop, ProxyConfig, RouteTarget, Transport};

/// A configuration error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key path, e.g. `routing.numbers[2].prefix`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All errors found in one file (as many as could be found before giving up).
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub datapath: DatapathSection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub routing: RoutingSection,
    #[serde(default)]
    pub groups: Vec<GroupSection>,
    pub registrar: Option<RegistrarSection>,
    pub auth: Option<AuthSection>,
    #[serde(default)]
    pub redirect: RedirectSection,
    #[serde(default)]
    pub dialogs: DialogsSection,
    #[serde(default)]
    pub trunks: Vec<TrunkSection>,
    #[serde(default)]
    pub guard: GuardSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrarSection {
    #[serde(default = "d_min_expires")]
    pub min_expires: u32,
    #[serde(default = "d_max_expires")]
    pub max_expires: u32,
    #[serde(default = "d_default_expires")]
    pub default_expires: u32,
    #[serde(default = "d_bindings")]
    pub capacity: usize,
    #[serde(default = "d_contacts")]
    pub max_contacts_per_aor: usize,
    /// The bindings journal; bindings survive a restart when set.
    pub snapshot: Option<PathBuf>,
    #[serde(default = "yes")]
    pub use_source_address: bool,
}

fn d_min_expires() -> u32 {
    60
}
fn d_max_expires() -> u32 {
    7200
}
fn d_default_expires() -> u32 {
    3600
}
fn d_bindings() -> usize {
    100_000
}
fn d_contacts() -> usize {
    10
}
fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    pub realm: String,
    /// `user:realm:HA1` lines (`sipd passwd` writes them); reloaded on SIGHUP.
    pub credentials: Option<PathBuf>,
    #[serde(default = "d_algorithms")]
    pub algorithms: Vec<Spanned<String>>,
    #[serde(default = "d_nonce_ttl")]
    pub nonce_ttl: Spanned<String>,
    /// Challenge INVITEs from our own users (407) too, not only REGISTER (401).
    #[serde(default)]
    pub invite: bool,
    /// Keys the stateless nonces; instances that share users need the same. Random per start
    /// when absent.
    pub secret: Option<String>,
}

fn d_algorithms() -> Vec<Spanned<String>> {
    vec![
        Spanned::new(0..0, "SHA-256".to_owned()),
        Spanned::new(0..0, "MD5".to_owned()),
    ]
}
fn d_nonce_ttl() -> Spanned<String> {
    Spanned::new(0..0, "300s".to_owned())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedirectSection {
    /// Requests for these domains are answered 302 with the users' registered contacts.
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub prefixes: Vec<RedirectPrefixSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectPrefixSection {
    pub prefix: Spanned<String>,
    /// Contact URIs for the 302 (`{user}` is replaced by the Request-URI user); empty: the
    /// location service's contacts.
    #[serde(default)]
    pub contacts: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialogsSection {
    #[serde(default = "d_dialogs")]
    pub capacity: usize,
    #[serde(default = "d_early")]
    pub early_timeout: Spanned<String>,
    #[serde(default = "d_session")]
    pub session_timeout: Spanned<String>,
    /// Call records (JSON lines); none when absent.
    pub records: Option<PathBuf>,
    #[serde(default = "d_record_queue")]
    pub record_queue: usize,
}

fn d_dialogs() -> usize {
    100_000
}
fn d_early() -> Spanned<String> {
    Spanned::new(0..0, "180s".to_owned())
}
fn d_session() -> Spanned<String> {
    Spanned::new(0..0, "1800s".to_owned())
}
fn d_record_queue() -> usize {
    65_536
}

impl Default for DialogsSection {
    fn default() -> Self {
        DialogsSection {
            capacity: d_dialogs(),
            early_timeout: d_early(),
            session_timeout: d_session(),
            records: None,
            record_queue: d_record_queue(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSection {
    pub name: String,
    /// Source prefixes that belong to the trunk.
    pub sources: Vec<Spanned<String>>,
    /// Concurrent calls allowed from the trunk (an INVITE over it gets 503).
    pub max_calls: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GuardSection {
    /// SIP datagrams per second per source, enforced in XDP before userspace; 0 disables.
    #[serde(default)]
    pub rate: u32,
    /// Token bucket depth (datagrams).
    #[serde(default)]
    pub burst: u32,
    /// Trusted trunks by CIDR: never rate limited.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Always dropped in XDP.
    #[serde(default)]
    pub block: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Addresses SIP is received on (UDP; TCP too when `tcp` is true).
    #[serde(default = "default_listen")]
    pub listen: Vec<Spanned<String>>,
    #[serde(default)]
    pub tcp: bool,
    /// Our sent-by and Record-Route address when it differs from the listen address.
    pub advertise: Option<Spanned<String>>,
    #[serde(default)]
    pub record_route: bool,
    /// Domains we serve (registrar, location service).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Socket-mode workers (default: one per core).
    pub workers: Option<usize>,
    /// Cores the socket-mode workers are pinned to.
    pub cores: Option<Vec<usize>>,
    /// Keys the stateless branch hash: every sipd instance behind one address needs the same.
    pub branch_secret: Option<u64>,
    #[serde(default = "default_retry_after")]
    pub retry_after: u32,
    /// TCP limits.
    #[serde(default = "default_tcp_max_connections")]
    pub tcp_max_connections: usize,
    #[serde(default = "default_tcp_max_buffer")]
    pub tcp_max_buffer: usize,
    #[serde(default = "default_tcp_idle")]
    pub tcp_idle_timeout: Spanned<String>,
}

fn default_listen() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "0.0.0.0:5060".to_owned())]
}
fn default_retry_after() -> u32 {
    30
}
fn default_tcp_max_connections() -> usize {
    4096
}
fn default_tcp_max_buffer() -> usize {
    65_536
}
fn default_tcp_idle() -> Spanned<String> {
    Spanned::new(0..0, "120s".to_owned())
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            tcp: false,
            advertise: None,
            record_route: false,
            domains: Vec::new(),
            workers: None,
            cores: None,
            branch_secret: None,
            retry_after: default_retry_after(),
            tcp_max_connections: default_tcp_max_connections(),
            tcp_max_buffer: default_tcp_max_buffer(),
            tcp_idle_timeout: default_tcp_idle(),
        }
    }
}

/// Which datapath carries UDP SIP.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// XDP steering into AF_XDP sockets (needs root and an interface).
    Afxdp,
    /// Kernel UDP sockets (recvmmsg/sendmmsg) and TCP.
    Socket,
    /// AF_XDP when it can attach, sockets otherwise (the reason is logged).
    #[default]
    Auto,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DatapathSection {
    #[serde(default)]
    pub mode: Mode,
    /// Interfaces AF_XDP serves, with their queues and the cores their workers are pinned to.
    #[serde(default)]
    pub interfaces: Vec<InterfaceSection>,
    /// UDP destination ports the XDP program steers to AF_XDP (default 5060).
    #[serde(default)]
    pub sip_ports: Vec<u16>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSection {
    pub name: String,
    #[serde(default = "default_queues")]
    pub queues: Vec<u32>,
    #[serde(default)]
    pub cores: Vec<usize>,
}

fn default_queues() -> Vec<u32> {
    vec![0]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSection {
    /// The admin HTTP endpoint (`/metrics`, `/health`); keep it on loopback.
    #[serde(default = "default_admin")]
    pub listen: Spanned<String>,
}

fn default_admin() -> Spanned<String> {
    Spanned::new(0..0, "127.0.0.1:9060".to_owned())
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: default_admin(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter (`info`, `sipd=debug`, ...).
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RoutingSection {
    /// Where requests for other domains go when no number or domain route matches.
    pub default: Option<Spanned<String>>,
    /// Static host names (resolved here, never on the fast path).
    #[serde(default)]
    pub hosts: HashMap<String, Spanned<String>>,
    #[serde(default)]
    pub numbers: Vec<NumberRoute>,
    #[serde(default)]
    pub domains: Vec<DomainRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberRoute {
    pub prefix: Spanned<String>,
    pub target: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainRoute {
    pub domain: String,
    pub target: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    pub name: Spanned<String>,
    #[serde(default = "no_targets")]
    pub targets: Spanned<Vec<GroupTargetSection>>,
    #[serde(default)]
    pub health: HealthSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupTargetSection {
    pub addr: Spanned<String>,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub transport: Option<Spanned<String>>,
}

fn no_targets() -> Spanned<Vec<GroupTargetSection>> {
    Spanned::new(0..0, Vec::new())
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    #[serde(default = "default_interval")]
    pub interval: Spanned<String>,
    #[serde(default = "default_down_after")]
    pub down_after: u32,
    #[serde(default = "default_up_after")]
    pub up_after: u32,
}

fn default_interval() -> Spanned<String> {
    Spanned::new(0..0, "5s".to_owned())
}
fn default_down_after() -> u32 {
    3
}
fn default_up_after() -> u32 {
    2
}

impl Default for HealthSection {
    fn default() -> Self {
        HealthSection {
            interval: default_interval(),
            down_after: default_down_after(),
            up_after: default_up_after(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The checked result.

/// A validated configuration, ready to apply.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub tcp: bool,
    pub workers: usize,
    pub cores: Option<Vec<usize>>,
    pub mode: Mode,
    pub interfaces: Vec<Interface>,
    pub sip_ports: Vec<u16>,
    pub admin: SocketAddr,
    pub log_format: LogFormat,
    pub log_level: String,
    pub tcp_max_connections: usize,
    pub tcp_max_buffer: usize,
    pub tcp_idle_timeout: Duration,
    /// The routing part the workers use; swapped as a whole on reload.
    pub routing: Routing,
    /// The registrar (None: sipd registers nobody; the location service is empty).
    pub registrar: Option<crate::registrar::RegistrarConfig>,
    pub auth: Option<crate::registrar::AuthConfig>,
    pub redirect: crate::registrar::RedirectConfig,
    pub dialogs: crate::dialog::DialogConfig,
    pub call_records: Option<PathBuf>,
    pub record_queue: usize,
    /// Trunks: (name, source prefixes, concurrent-call limit); trunk id = index + 1.
    pub trunks: Vec<Trunk>,
    pub guard: crate::xdp::GuardSettings,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    pub name: String,
    pub sources: Vec<crate::xdp::Cidr>,
    pub max_calls: Option<u32>,
}

impl Config {
    /// The trunk id (1-based; 0 = no trunk) of a source address: the longest matching prefix.
    pub fn trunk_of(trunks: &[Trunk], ip: IpAddr) -> u32 {
        let mut best: Option<(u8, u32)> = None;
        for (i, t) in trunks.iter().enumerate() {
            for c in &t.sources {
                if c.contains(ip) && best.is_none_or(|(len, _)| c.prefix_len() > len) {
                    best = Some((c.prefix_len(), i as u32 + 1));
                }
            }
        }
        best.map_or(0, |(_, id)| id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub queues: Vec<u32>,
    pub cores: Vec<usize>,
}

/// What a reload replaces: the proxy configuration and the group targets to probe. Group health
/// indices (`Group::health_base`) are numbered from 0 here; the runtime moves them into slots of
/// its process-wide health table ([`HealthSlots`]).
#[derive(Debug, Clone)]
pub struct Routing {
    pub proxy: ProxyConfig,
    /// Config-local health index -> (group name, probe destination, transport, probe settings).
    pub probes: Vec<(String, SocketAddr, Transport, HealthConfig)>,
}

/// A probe target in its health slot: (slot, address, transport, settings).
pub type ProbeSlot = (usize, SocketAddr, Transport, HealthConfig);

/// The process-wide group health table and the slots each configuration's targets occupy.
/// A target (same group, address and transport) keeps its up/down state across reloads.
#[derive(Debug)]
pub struct HealthSlots {
    health: Arc<Health>,
    next: usize,
    current: HashMap<(String, SocketAddr, Transport), usize>,
}

impl HealthSlots {
    pub fn new(capacity: usize) -> Self {
        HealthSlots {
            health: Health::new(capacity),
            next: 0,
            current: HashMap::new(),
        }
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// Places a configuration's targets into fresh slots (contiguous per group, wrapping when
    /// the table is exhausted), carrying state over; returns the proxy configuration to run and
    /// the probes (slot, address, transport, settings) for a [`HealthProber`](crate::proxy::group::HealthProber).
    pub fn assign(&mut self, routing: &Routing) -> (Arc<ProxyConfig>, Vec<ProbeSlot>) {
        let mut proxy = routing.proxy.clone();
        let capacity = self.health.len().max(1);
        let mut probes = Vec::new();
        let mut current = HashMap::new();
        for group in &mut proxy.groups {
            let n = group.targets.len();
            if self.next + n > capacity {
                self.next = 0;
            }
            let base = self.next;
            self.next += n;
            for (i, t) in group.targets.iter().enumerate() {
                let slot = base + i;
                let key = (group.name.clone(), t.addr, t.transport);
                let was_up = self
                    .current
                    .get(&key)
                    .is_none_or(|&old| self.health.is_up(old));
                self.health.set_up(slot, was_up);
                let cfg = routing
                    .probes
                    .get(group.health_base + i)
                    .map(|p| p.3)
                    .unwrap_or_default();
                probes.push((slot, t.addr, t.transport, cfg));
                current.insert(key, slot);
            }
            group.health_base = base;
        }
        self.current = current;
        (Arc::new(proxy), probes)
    }
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: None,
                key: String::new(),
                message: format!("cannot read: {e}"),
            }])
        })?;
        Self::from_str(&text, path)
    }

    /// Checks configuration text; `path` names it in errors.
    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_owned(),
                line: e.span().map(|s| line_of(text, s.start)),
                key: String::new(),
                message: e.message().trim().to_owned(),
            }])
        })?;
        let mut check = Checker {
            text,
            path,
            errors: Vec::new(),
        };
        let config = check.build(file);
        if check.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(check.errors))
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// Collects every error of one file.
struct Checker<'t> {
    text: &'t str,
    path: &'t Path,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        // Defaults carry an empty span at 0: no line to point at.
        let line = (span != (0..0)).then(|| line_of(self.text, span.start));
        self.errors.push(ConfigError {
            file: self.path.to_owned(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn addr(&mut self, value: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        match parse_socket_addr(value.get_ref()) {
            Ok(a) => Some(a),
            Err(m) => {
                self.error(value.span(), key, m);
                None
            }
        }
    }

    fn duration(&mut self, value: &Spanned<String>, key: &str) -> Option<Duration> {
        match parse_duration(value.get_ref()) {
            Some(d) => Some(d),
            None => {
                self.error(
                    value.span(),
                    key,
                    format!("{:?} is not a duration like 500ms, 5s, 2m", value.get_ref()),
                );
                None
            }
        }
    }

    fn build(&mut self, file: FileConfig) -> Config {
        let s = &file.server;
        let listen: Vec<SocketAddr> = s
            .listen
            .iter()
            .enumerate()
            .filter_map(|(i, a)| self.addr(a, &format!("server.listen[{i}]")))
            .collect();
        if s.listen.is_empty() {
            self.error(
                0..0,
                "server.listen",
                "at least one listen address is needed",
            );
        }
        let advertise = s
            .advertise
            .as_ref()
            .and_then(|a| self.addr(a, "server.advertise"));
        let admin = self.addr(&file.admin.listen, "admin.listen");
        if let Some(a) = admin
            && !a.ip().is_loopback()
        {
            self.error(
                file.admin.listen.span(),
                "admin.listen",
                "the admin endpoint must listen on a loopback address",
            );
        }
        let tcp_idle = self.duration(&s.tcp_idle_timeout, "server.tcp_idle_timeout");
        let workers = s
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        if workers == 0 {
            self.error(0..0, "server.workers", "must be at least 1");
        }
        if let Some(cores) = &s.cores
            && cores.len() < workers
        {
            self.error(
                0..0,
                "server.cores",
                format!("{} cores listed for {workers} workers", cores.len()),
            );
        }
        for (i, iface) in file.datapath.interfaces.iter().enumerate() {
            if iface.queues.is_empty() {
                self.error(
                    0..0,
                    format!("datapath.interfaces[{i}].queues"),
                    "no queues",
                );
            }
            if !iface.cores.is_empty() && iface.cores.len() != iface.queues.len() {
                self.error(
                    0..0,
                    format!("datapath.interfaces[{i}].cores"),
                    "one core per queue",
                );
            }
        }
        if file.datapath.mode == Mode::Afxdp && file.datapath.interfaces.is_empty() {
            self.error(
                0..0,
                "datapath.interfaces",
                "mode afxdp needs at least one interface",
            );
        }
        let routing = self.routing(&file, advertise);
        let registrar = file.registrar.as_ref().map(|r| {
            if r.min_expires > r.max_expires {
                self.error(
                    0..0,
                    "registrar.min_expires",
                    "min_expires is larger than max_expires",
                );
            }
            crate::registrar::RegistrarConfig {
                domains: s.domains.clone(),
                min_expires: r.min_expires,
                max_expires: r.max_expires,
                default_expires: r
                    .default_expires
                    .clamp(r.min_expires, r.max_expires.max(r.min_expires)),
                capacity: r.capacity,
                max_contacts_per_aor: r.max_contacts_per_aor,
                snapshot_path: r.snapshot.clone(),
                use_source_address: r.use_source_address,
                secret: s
                    .branch_secret
                    .unwrap_or(ProxyConfig::default().branch_secret),
            }
        });
        if registrar.is_some() && s.domains.is_empty() {
            self.error(
                0..0,
                "server.domains",
                "the registrar needs at least one domain",
            );
        }
        let auth = file.auth.as_ref().map(|a| self.auth(a));
        let redirect = crate::registrar::RedirectConfig {
            domains: file
                .redirect
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            prefixes: file
                .redirect
                .prefixes
                .iter()
                .map(|p| crate::registrar::RedirectPrefix {
                    prefix: p.prefix.get_ref().clone(),
                    contacts: p.contacts.clone(),
                })
                .collect(),
        };
        if let Err(e) = crate::registrar::RedirectTable::new(&redirect) {
            let span = file
                .redirect
                .prefixes
                .first()
                .map_or(0..0, |p| p.prefix.span());
            self.error(span, "redirect.prefixes", e.to_string());
        }
        let d = &file.dialogs;
        let early = self.duration(&d.early_timeout, "dialogs.early_timeout");
        let session = self.duration(&d.session_timeout, "dialogs.session_timeout");
        if d.capacity == 0 {
            self.error(0..0, "dialogs.capacity", "must be at least 1");
        }
        let dialogs = crate::dialog::DialogConfig {
            capacity: d.capacity.max(1),
            early_timeout_ms: early.map_or(180_000, |t| t.as_millis() as u64),
            session_timeout_ms: session.map_or(1_800_000, |t| t.as_millis() as u64),
            max_trunks: file.trunks.len() + 1,
            ..crate::dialog::DialogConfig::default()
        };
        let mut trunks = Vec::new();
        for (i, t) in file.trunks.iter().enumerate() {
            let sources = t
                .sources
                .iter()
                .enumerate()
                .filter_map(|(j, c)| self.cidr(c, &format!("trunks[{i}].sources[{j}]")))
                .collect();
            trunks.push(Trunk {
                name: t.name.clone(),
                sources,
                max_calls: t.max_calls,
            });
        }
        let g = &file.guard;
        let guard = crate::xdp::GuardSettings {
            rate_pps: g.rate,
            burst: if g.burst == 0 {
                g.rate.saturating_mul(2)
            } else {
                g.burst
            },
            allow: g
                .allow
                .iter()
                .enumerate()
                .filter_map(|(i, c)| self.cidr(c, &format!("guard.allow[{i}]")))
                .collect(),
            block: g
                .block
                .iter()
                .enumerate()
                .filter_map(|(i, c)| self.cidr(c, &format!("guard.block[{i}]")))
                .collect(),
        };
        Config {
            path: self.path.to_owned(),
            listen,
            tcp: s.tcp,
            workers: workers.max(1),
            cores: s.cores.clone(),
            mode: file.datapath.mode,
            interfaces: file
                .datapath
                .interfaces
                .iter()
                .map(|i| Interface {
                    name: i.name.clone(),
                    queues: i.queues.clone(),
                    cores: i.cores.clone(),
                })
                .collect(),
            sip_ports: if file.datapath.sip_ports.is_empty() {
                vec![5060]
            } else {
                file.datapath.sip_ports.clone()
            },
            admin: admin.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9060))),
            log_format: file.log.format,
            log_level: file.log.level.clone(),
            tcp_max_connections: s.tcp_max_connections,
            tcp_max_buffer: s.tcp_max_buffer,
            tcp_idle_timeout: tcp_idle.unwrap_or(Duration::from_secs(120)),
            routing,
            registrar,
            auth,
            redirect,
            dialogs,
            call_records: d.records.clone(),
            record_queue: d.record_queue.max(16),
            trunks,
            guard,
        }
    }

    fn cidr(&mut self, value: &Spanned<String>, key: &str) -> Option<crate::xdp::Cidr> {
        match value.get_ref().parse::<crate::xdp::Cidr>() {
            Ok(c) => Some(c),
            Err(e) => {
                self.error(value.span(), key, format!("{:?}: {e}", value.get_ref()));
                None
            }
        }
    }

    fn auth(&mut self, a: &AuthSection) -> crate::registrar::AuthConfig {
        use crate::registrar::digest::Algorithm;
        let secret = match &a.secret {
            Some(s) => s.clone().into_bytes(),
            None => {
                // A per-start secret: nonces from before a restart are simply stale.
                let seed = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                format!("{}-{}", seed.as_nanos(), std::process::id()).into_bytes()
            }
        };
        let mut cfg = crate::registrar::AuthConfig::new(a.realm.clone(), secret);
        cfg.credentials_path = a.credentials.clone();
        cfg.auth_invite = a.invite;
        if let Some(ttl) = self.duration(&a.nonce_ttl, "auth.nonce_ttl") {
            cfg.nonce_ttl = ttl;
        }
        let mut algorithms = Vec::new();
        for (i, name) in a.algorithms.iter().enumerate() {
            match Algorithm::from_name(name.get_ref()) {
                Some(alg) => algorithms.push(alg),
                None => self.error(
                    name.span(),
                    format!("auth.algorithms[{i}]"),
                    "algorithm must be MD5 or SHA-256",
                ),
            }
        }
        if algorithms.is_empty() {
            self.error(0..0, "auth.algorithms", "at least one algorithm");
        } else {
            cfg.algorithms = algorithms;
        }
        cfg.generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as u32);
        if let Some(path) = &a.credentials
            && let Err(e) = crate::registrar::credentials::Credentials::load(path)
        {
            self.error(0..0, "auth.credentials", format!("{}: {e}", path.display()));
        }
        cfg
    }

    fn routing(&mut self, file: &FileConfig, advertise: Option<SocketAddr>) -> Routing {
        let s = &file.server;
        let mut hosts = HashMap::new();
        for (name, value) in &file.routing.hosts {
            let key = format!("routing.hosts.{name}");
            match resolve_host(value.get_ref()) {
                Some(ip) => {
                    hosts.insert(name.to_ascii_lowercase(), ip);
                }
                None => self.error(
                    value.span(),
                    key,
                    format!("cannot resolve {:?} to an address", value.get_ref()),
                ),
            }
        }

        // Groups first: routes refer to them by name.
        let mut groups = Vec::new();
        let mut group_index = HashMap::new();
        let mut probes = Vec::new();
        for (gi, g) in file.groups.iter().enumerate() {
            let name = g.name.get_ref().clone();
            if group_index.insert(name.clone(), gi).is_some() {
                self.error(
                    g.name.span(),
                    format!("groups[{gi}].name"),
                    format!("group {name:?} is defined twice"),
                );
            }
            if g.targets.get_ref().is_empty() {
                self.error(
                    g.name.span(),
                    format!("groups[{gi}].targets"),
                    format!("group {name:?} has no targets"),
                );
            }
            let interval =
                self.duration(&g.health.interval, &format!("groups[{gi}].health.interval"));
            let hc = HealthConfig {
                interval_ms: interval.map_or(5000, |d| d.as_millis() as u64).max(1),
                down_after: g.health.down_after.max(1),
                up_after: g.health.up_after.max(1),
            };
            let base = probes.len();
            let mut targets = Vec::new();
            for (ti, t) in g.targets.get_ref().iter().enumerate() {
                let key = format!("groups[{gi}].targets[{ti}]");
                let transport = match &t.transport {
                    None => Some(Transport::Udp),
                    Some(tr) => match Transport::from_token(tr.get_ref().as_bytes()) {
                        Some(t) => Some(t),
                        None => {
                            self.error(
                                tr.span(),
                                format!("{key}.transport"),
                                "transport must be udp or tcp",
                            );
                            None
                        }
                    },
                };
                if t.weight == 0 {
                    self.error(
                        t.addr.span(),
                        format!("{key}.weight"),
                        "weight must be at least 1",
                    );
                }
                if let (Some(addr), Some(transport)) =
                    (self.addr(&t.addr, &format!("{key}.addr")), transport)
                {
                    targets.push(GroupTarget {
                        addr,
                        transport,
                        weight: t.weight.max(1),
                    });
                    probes.push((name.clone(), addr, transport, hc));
                }
            }
            groups.push(Group {
                name,
                targets,
                health_base: base,
            });
        }

        let mut number_routes = PrefixTable::new();
        for (i, r) in file.routing.numbers.iter().enumerate() {
            let key = format!("routing.numbers[{i}]");
            if let Some(target) = self.target(&r.target, &format!("{key}.target"), &group_index)
                && let Err(e) = number_routes.insert(r.prefix.get_ref(), target)
            {
                self.error(r.prefix.span(), format!("{key}.prefix"), e.to_string());
            }
        }
        let mut domain_routes = HashMap::new();
        for (i, r) in file.routing.domains.iter().enumerate() {
            let key = format!("routing.domains[{i}]");
            if let Some(target) = self.target(&r.target, &format!("{key}.target"), &group_index)
                && domain_routes
                    .insert(r.domain.to_ascii_lowercase(), target)
                    .is_some()
            {
                self.error(
                    r.target.span(),
                    format!("{key}.domain"),
                    format!("domain {:?} is routed twice", r.domain),
                );
            }
        }
        let default_route = file
            .routing
            .default
            .as_ref()
            .and_then(|d| self.target(d, "routing.default", &group_index));

        let proxy = ProxyConfig {
            domains: s.domains.iter().map(|d| d.to_ascii_lowercase()).collect(),
            advertise,
            record_route: s.record_route,
            branch_secret: s
                .branch_secret
                .unwrap_or(ProxyConfig::default().branch_secret),
            number_routes,
            domain_routes,
            default_route,
            groups,
            hosts,
            retry_after_s: s.retry_after,
        };
        Routing { proxy, probes }
    }

    /// `[udp:|tcp:]host:port` or `group:NAME`.
    fn target(
        &mut self,
        value: &Spanned<String>,
        key: &str,
        groups: &HashMap<String, usize>,
    ) -> Option<RouteTarget> {
        let text = value.get_ref().trim();
        if let Some(name) = text.strip_prefix("group:") {
            return match groups.get(name) {
                Some(&g) => Some(RouteTarget::Group(g)),
                None => {
                    self.error(value.span(), key, format!("no group named {name:?}"));
                    None
                }
            };
        }
        let (transport, rest) = match text.split_once(':') {
            Some(("udp", rest)) => (Transport::Udp, rest),
            Some(("tcp", rest)) => (Transport::Tcp, rest),
            _ => (Transport::Udp, text),
        };
        match parse_socket_addr(rest) {
            Ok(addr) => Some(RouteTarget::Hop(NextHop { addr, transport })),
            Err(m) => {
                self.error(value.span(), key, m);
                None
            }
        }
    }
}

/// `ip:port`, `[v6]:port`, `host:port` (resolved now), or an address without port (5060).
pub fn parse_socket_addr(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Ok(a) = text.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 5060));
    }
    if let Some(ip) = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<IpAddr>().ok())
    {
        return Ok(SocketAddr::new(ip, 5060));
    }
    let with_port = if text.contains(':') {
        text.to_owned()
    } else {
        format!("{text}:5060")
    };
    match with_port.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("{text:?} resolves to no address")),
        Err(_) => Err(format!(
            "{text:?} is not an address (ip:port, [ipv6]:port or a resolvable host:port)"
        )),
    }
}

fn resolve_host(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| parse_socket_addr(text).ok().map(|a| a.ip()))
}

/// `500ms`, `5s`, `2m`, `1h`, or bare seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_str(text, Path::new("test.toml"))
    }

    #[test]
    fn example_config_loads() {
        let text = include_str!("../sipd.example.toml");
        let c = load(text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.routing.proxy.number_routes.is_empty());
        assert!(!c.routing.proxy.groups.is_empty());
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let e = load("[server]\nlisten = [\"127.0.0.1:5060\"]\nlistne = 1\n").unwrap_err();
        assert_eq!(e.0[0].line, Some(3), "{e}");
        assert!(e.0[0].message.contains("listne"), "{e}");
    }

    #[test]
    fn semantic_errors_are_all_reported_with_lines_and_keys() {
        let text = r#"
[server]
listen = ["127.0.0.1:5060", "not-an-address:x"]

[routing]
default = "group:nope"

[[routing.numbers]]
prefix = "+49"
target = "10.0.0.1:5060"

[[routing.numbers]]
prefix = "+4-9"
target = "10.0.0.2:5060"

[[groups]]
name = "empty"
targets = []
"#;
        let e = load(text).unwrap_err();
        let msgs: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        let all = msgs.join("\n");
        assert!(all.contains("test.toml:3: server.listen[1]"), "{all}");
        assert!(
            all.contains("test.toml:6: routing.default: no group named \"nope\""),
            "{all}"
        );
        assert!(
            all.contains(
                "test.toml:13: routing.numbers[1].prefix: prefix \"+4-9\" is configured twice"
            ),
            "{all}"
        );
        assert!(
            all.contains("groups[0].targets: group \"empty\" has no targets"),
            "{all}"
        );
    }

    #[test]
    fn admin_must_be_loopback() {
        let e = load("[admin]\nlisten = \"0.0.0.0:9060\"\n").unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }

    #[test]
    fn health_state_survives_a_reload() {
        let text = "[[groups]]\nname = \"g\"\ntargets = [{ addr = \"10.0.0.1:5060\" }, { addr = \"10.0.0.2:5060\" }]\n";
        let routing = load(text).unwrap().routing;
        let mut slots = HealthSlots::new(3);
        let (cfg, probes) = slots.assign(&routing);
        assert_eq!(probes.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        slots.health().set_up(1, false);
        // The reload moves the group to fresh slots (wrapping) and keeps target 2 down.
        let (cfg2, probes2) = slots.assign(&routing);
        assert_eq!(probes2.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(cfg.groups[0].health_base, 0);
        assert_eq!(cfg2.groups[0].health_base, 0);
        assert!(slots.health().is_up(0) && !slots.health().is_up(1));
        let mut big = HealthSlots::new(10);
        big.assign(&routing);
        big.health().set_up(1, false);
        let (cfg3, probes3) = big.assign(&routing);
        assert_eq!(cfg3.groups[0].health_base, 2);
        assert_eq!(probes3[1].0, 3);
        assert!(big.health().is_up(2) && !big.health().is_up(3));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_duration("5 parsecs"), None);
    }
}
