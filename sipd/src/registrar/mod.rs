//! Registrar, location service, redirect server and digest authentication (RFC 3261 §10, §22,
//! RFC 8760), sans-IO like the proxy core.
//!
//! One [`Registrar`] is shared (in an `Arc`) by every worker's [`Proxy`](crate::proxy::Proxy),
//! which calls [`Registrar::handle`] for each valid request before routing it:
//!
//! - a REGISTER whose Request-URI names one of our domains is processed here (§10.3) and
//!   answered (200 listing the bindings, 401, 403, 404, 420, 423, 503, 400);
//! - an INVITE from one of our domains is challenged (407) when `auth_invite` is set, and goes on
//!   to routing once its credentials check;
//! - a request matching a redirect rule is answered 302 with the target's Contacts;
//! - an ACK for one of our own final responses (recognised by our To tag) is absorbed.
//!
//! The bindings ([`bindings::Bindings`]) implement the proxy's
//! [`LocationService`], so target determination forwards to a registered contact; so does the
//! `Registrar` itself, which also answers 480 (rather than 404) for a user that has credentials
//! but no binding. Time is the `now_ms` of the [`Input`]; nothing here reads a clock or touches a
//! socket (the journal writer thread in [`snapshot`] is a driver, not part of the core).

pub mod auth;
pub mod bindings;
pub mod cli;
pub mod credentials;
pub mod digest;
pub mod nonce;
pub mod redirect;
pub mod response;
pub mod snapshot;
pub mod stats;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use crate::proxy::location::{LocationService, Lookup};
use crate::proxy::numbers::PrefixError;
use crate::proxy::stats::ProxyStats;
use crate::proxy::writer::Out;
use crate::proxy::{Action, DropReason, Input, Transport};
use crate::sip::HeaderName;
use crate::sip::message::{Message, Method};
use crate::sip::name_addr::{ContactValue, NameAddr, contact_values};
use crate::sip::uri::{Host, Scheme, Uri};
use crate::sip::values::parse_u32;

pub use auth::{AuthConfig, Authenticator, Verdict};
pub use bindings::{Binding, Bindings};
pub use credentials::{CredentialStore, Credentials, CredentialsError};
pub use digest::Algorithm;
pub use redirect::{RedirectConfig, RedirectPrefix, RedirectTable};
pub use snapshot::{JournalConfig, JournalQueue, JournalWriter, LoadReport};
pub use stats::{AuthFailure, RegistrarStats};

use bindings::{ContactUpdate, MAX_AOR_LEN, Update, UpdateError, aor_key};
use redirect::RedirectTarget;
use response::{Responder, Status, put_date};

/// Most Contact values one REGISTER may carry (more: 400).
pub const MAX_CONTACTS_PER_REQUEST: usize = 32;

/// Registrar settings.
#[derive(Clone, Debug)]
pub struct RegistrarConfig {
    /// Domains we register users of (any case): REGISTERs whose Request-URI names one of them
    /// are handled here, and AORs must be in one of them.
    pub domains: Vec<String>,
    /// Shortest lifetime granted; shorter non-zero requests get 423 with Min-Expires.
    pub min_expires: u32,
    /// Longest lifetime granted; longer requests are shortened to it.
    pub max_expires: u32,
    /// Lifetime when neither the Contact nor the request says.
    pub default_expires: u32,
    /// Most bindings stored in all (503 beyond).
    pub capacity: usize,
    /// Most bindings one AOR may hold (403 beyond).
    pub max_contacts_per_aor: usize,
    /// The bindings journal (see [`snapshot`]); `None`: bindings do not survive a restart.
    pub snapshot_path: Option<PathBuf>,
    /// Send to the address a REGISTER came from rather than the Contact's host (UAs behind NAT).
    /// A Contact with a private address received from another address, a host name, or a
    /// REGISTER over TCP always uses the source.
    pub use_source_address: bool,
    /// Keys the AOR hash, the Call-ID hashes and our To tags (same on every worker).
    pub secret: u64,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            domains: Vec::new(),
            min_expires: 60,
            max_expires: 7200,
            default_expires: 3600,
            capacity: 1_000_000,
            max_contacts_per_aor: 16,
            snapshot_path: None,
            use_source_address: false,
            secret: 0x7369_7064_7265_6769,
        }
    }
}

/// The registrar, shared by every worker.
pub struct Registrar {
    config: RegistrarConfig,
    domains: Vec<String>,
    bindings: Arc<Bindings>,
    auth: Option<Authenticator>,
    /// Swapped whole on reload (`set_redirect`); bindings and auth state stay.
    redirect: arc_swap::ArcSwapOption<RedirectTable>,
    journal: Option<JournalQueue>,
    responder: Responder,
    stats: RegistrarStats,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("domains", &self.domains)
            .field("bindings", &self.bindings)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// A reply decided on the REGISTER path.
struct Fail {
    code: u16,
    reason: &'static str,
}

const fn fail(code: u16, reason: &'static str) -> Fail {
    Fail { code, reason }
}

impl Registrar {
    pub fn new(config: RegistrarConfig) -> Registrar {
        let bindings = Arc::new(Bindings::new(config.capacity, config.secret));
        Self::with_bindings(config, bindings)
    }

    /// Over an existing table (e.g. one the journal was loaded into).
    pub fn with_bindings(config: RegistrarConfig, bindings: Arc<Bindings>) -> Registrar {
        Registrar {
            domains: config
                .domains
                .iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
            bindings,
            auth: None,
            redirect: arc_swap::ArcSwapOption::empty(),
            journal: None,
            responder: Responder {
                key: config.secret ^ 0x7461_6773,
            },
            stats: RegistrarStats::default(),
            config,
        }
    }

    /// Requires digest authentication for REGISTER (and INVITE when configured).
    pub fn with_auth(mut self, auth: Authenticator) -> Registrar {
        self.auth = Some(auth);
        self
    }

    /// Answers the requests matching these rules with 302.
    pub fn with_redirect(self, config: &RedirectConfig) -> Result<Registrar, PrefixError> {
        self.set_redirect(config)?;
        Ok(self)
    }

    /// Replaces the redirect rules (live reload): requests see the old rules or the new ones,
    /// never a mix. A configuration with errors changes nothing.
    pub fn set_redirect(&self, config: &RedirectConfig) -> Result<(), PrefixError> {
        let table = RedirectTable::new(config)?;
        self.redirect
            .store((!table.is_empty()).then(|| Arc::new(table)));
        Ok(())
    }

    /// Records every change in the journal whose writer owns the other end.
    pub fn with_journal(mut self, journal: JournalQueue) -> Registrar {
        self.journal = Some(journal);
        self
    }

    /// Loads `config.snapshot_path` (if set) into the bindings and starts its writer thread.
    pub fn start_journal(
        &mut self,
        now_ms: u64,
    ) -> std::io::Result<Option<(JournalWriter, LoadReport)>> {
        let Some(path) = self.config.snapshot_path.clone() else {
            return Ok(None);
        };
        let (queue, writer, report) =
            JournalWriter::start(JournalConfig::new(path), self.bindings.clone(), now_ms)?;
        self.journal = Some(queue);
        Ok(Some((writer, report)))
    }

    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    pub fn bindings(&self) -> &Arc<Bindings> {
        &self.bindings
    }

    pub fn stats(&self) -> &RegistrarStats {
        &self.stats
    }

    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.auth.as_ref()
    }

    /// Re-reads the credentials file (no-op without authentication).
    pub fn reload_credentials(&self) -> Result<usize, CredentialsError> {
        self.auth.as_ref().map_or(Ok(0), Authenticator::reload)
    }

    /// Frees expired bindings (call every few seconds from a timer thread).
    pub fn sweep(&self, now_ms: u64) -> usize {
        self.bindings.sweep(now_ms)
    }

    /// Journal notifications dropped because its queue was full (each triggered a snapshot).
    pub fn journal_overflows(&self) -> u64 {
        self.journal
            .as_ref()
            .map_or(0, |j| j.dropped.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Counters and gauges for the metrics endpoint: `(name, label, value)`, the counters of
    /// [`RegistrarStats::counters`] plus the table's size, capacity and journal overflows.
    pub fn metrics(&self) -> Vec<(&'static str, &'static str, u64)> {
        let mut m = self.stats.counters();
        m.push(("sipd_registrar_bindings", "", self.bindings.len() as u64));
        m.push(("sipd_registrar_aors", "", self.bindings.aor_count() as u64));
        m.push((
            "sipd_registrar_bindings_capacity",
            "",
            self.bindings.capacity() as u64,
        ));
        m.push((
            "sipd_registrar_journal_overflows_total",
            "",
            self.journal_overflows(),
        ));
        m
    }

    fn is_our_domain(&self, host: &[u8]) -> bool {
        self.domains
            .iter()
            .any(|d| d.as_bytes().eq_ignore_ascii_case(host))
    }

    /// The proxy's hook, called for every request that passed validation: `Some(action)` when
    /// the registrar answered (or absorbed) it, `None` to let the proxy route it.
    pub fn handle(
        &self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        stats: &ProxyStats,
        out: &mut [u8],
    ) -> Option<Action> {
        let method = msg.method()?;
        match method {
            Method::Ack => {
                if self.responder.is_our_tag(msg) {
                    RegistrarStats::add(&self.stats.acks_absorbed);
                    stats.count_drop(DropReason::AckAbsorbed);
                    return Some(Action::Drop(DropReason::AckAbsorbed));
                }
                return None;
            }
            Method::Register => {
                let uri = Uri::parse(msg.request_uri()?).ok()?;
                if uri.scheme().is_sip() && self.is_our_domain(uri.host_raw()) {
                    return Some(self.register(input, msg, stats, out));
                }
                return None;
            }
            _ => {}
        }
        if method == Method::Invite
            && let Some(auth) = &self.auth
            && auth.config().auth_invite
            && let Some(from) = msg
                .value(HeaderName::From)
                .and_then(|v| NameAddr::parse(v).ok())
            && from.uri.scheme().is_sip()
            && self.is_our_domain(from.uri.host_raw())
        {
            match auth.verify(msg, HeaderName::ProxyAuthorization, b"INVITE", input.now_ms) {
                Verdict::Ok { username } => {
                    RegistrarStats::add(&self.stats.auth_ok);
                    if !same_user(username, from.uri.user().unwrap_or_default()) {
                        self.stats.auth_failed(AuthFailure::Forbidden);
                        return Some(self.reply(input, msg, stats, fail(403, "Forbidden"), out));
                    }
                }
                verdict => return Some(self.auth_reply(input, msg, stats, verdict, true, out)),
            }
        }
        let rules = self.redirect.load();
        let table = rules.as_deref()?;
        let to_tagged = msg
            .value(HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
            .is_some_and(|n| n.tag().is_some());
        if to_tagged {
            return None;
        }
        let uri = Uri::parse(msg.request_uri()?).ok()?;
        let target = table.matches(&uri)?;
        if method == Method::Cancel {
            // The INVITE it cancels was answered 302 already: the CANCEL itself succeeds (§9.2).
            return Some(self.reply(input, msg, stats, fail(200, "OK"), out));
        }
        Some(self.redirect(input, msg, stats, &uri, target, out))
    }

    fn reply(
        &self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        stats: &ProxyStats,
        f: Fail,
        out: &mut [u8],
    ) -> Action {
        self.responder.respond(
            input,
            msg,
            stats,
            Status::new(f.code, f.reason),
            |_| {},
            out,
        )
    }

    fn auth_reply(
        &self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        stats: &ProxyStats,
        verdict: Verdict<'_>,
        proxy: bool,
        out: &mut [u8],
    ) -> Action {
        let Some(auth) = &self.auth else {
            return self.reply(input, msg, stats, fail(500, "Server Internal Error"), out);
        };
        match verdict {
            Verdict::Ok { .. } => {
                self.reply(input, msg, stats, fail(500, "Server Internal Error"), out)
            }
            Verdict::BadRequest(why) => {
                self.stats.auth_failed(why);
                let reason = match why {
                    AuthFailure::UriMismatch => "Digest URI Mismatch",
                    _ => "Bad Authorization",
                };
                self.reply(input, msg, stats, fail(400, reason), out)
            }
            Verdict::Challenge { stale, why } => {
                self.stats.auth_failed(why);
                let (code, reason) = if proxy {
                    (407, "Proxy Authentication Required")
                } else {
                    (401, "Unauthorized")
                };
                self.responder.respond(
                    input,
                    msg,
                    stats,
                    Status::new(code, reason),
                    |o| auth.put_challenge(o, proxy, stale, input.now_ms),
                    out,
                )
            }
        }
    }

    /// §10.3: a REGISTER for one of our domains.
    fn register(
        &self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        stats: &ProxyStats,
        out: &mut [u8],
    ) -> Action {
        RegistrarStats::add(&self.stats.registers);
        let now = input.now_ms;
        // Step 2: we support no extension a REGISTER may require.
        if msg.header(HeaderName::Require).is_some() {
            return self.responder.respond(
                input,
                msg,
                stats,
                Status::new(420, "Bad Extension"),
                |o| {
                    for h in msg.headers_named(HeaderName::Require) {
                        o.put(b"Unsupported: ");
                        o.put(h.value);
                        o.put(b"\r\n");
                    }
                },
                out,
            );
        }
        // Step 3: authentication.
        let username = match &self.auth {
            None => None,
            Some(auth) => match auth.verify(msg, HeaderName::Authorization, b"REGISTER", now) {
                Verdict::Ok { username } => {
                    RegistrarStats::add(&self.stats.auth_ok);
                    Some(username)
                }
                verdict => return self.auth_reply(input, msg, stats, verdict, false, out),
            },
        };
        // Step 5 (and 4): the address of record.
        let Some(to) = msg
            .value(HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
        else {
            return self.reply(input, msg, stats, fail(400, "Bad To"), out);
        };
        if !to.uri.scheme().is_sip() {
            // RFC 4475 unksm2: an AOR must be a SIP or SIPS URI.
            return self.reply(input, msg, stats, fail(400, "To URI Not SIP Or SIPS"), out);
        }
        let (Some(user), true) = (to.uri.user(), self.is_our_domain(to.uri.host_raw())) else {
            return self.reply(input, msg, stats, fail(404, "Not Found"), out);
        };
        let mut key_buf = [0u8; MAX_AOR_LEN];
        let Some(aor) = aor_key(user, to.uri.host_raw(), &mut key_buf) else {
            return self.reply(input, msg, stats, fail(400, "Bad Address Of Record"), out);
        };
        if let Some(username) = username
            && !same_user(username, user)
        {
            self.stats.auth_failed(AuthFailure::Forbidden);
            return self.reply(input, msg, stats, fail(403, "Forbidden"), out);
        }
        // Step 6: the contacts and their lifetimes.
        let expires_header = match msg.value(HeaderName::Expires).map(parse_u32) {
            None => None,
            Some(Ok(e)) => Some(e),
            Some(Err(_)) => return self.reply(input, msg, stats, fail(400, "Bad Expires"), out),
        };
        let mut contacts: Vec<ContactUpdate<'_>> = Vec::new();
        let mut star = false;
        let mut too_brief = false;
        for h in msg.headers_named(HeaderName::Contact) {
            for value in contact_values(h.value) {
                let na = match value {
                    Ok(ContactValue::Star) => {
                        star = true;
                        continue;
                    }
                    Ok(ContactValue::Addr(na)) => na,
                    Err(_) => return self.reply(input, msg, stats, fail(400, "Bad Contact"), out),
                };
                let requested = match na.expires() {
                    Some(Ok(e)) => e,
                    Some(Err(_)) => {
                        return self.reply(
                            input,
                            msg,
                            stats,
                            fail(400, "Bad Contact Expires"),
                            out,
                        );
                    }
                    None => expires_header.unwrap_or(self.config.default_expires),
                };
                if requested != 0 && requested < self.config.min_expires {
                    too_brief = true;
                }
                let q = match na.q() {
                    Some(Ok(q)) => q,
                    Some(Err(_)) => return self.reply(input, msg, stats, fail(400, "Bad q"), out),
                    None => 1000,
                };
                if contacts.len() == MAX_CONTACTS_PER_REQUEST {
                    return self.reply(input, msg, stats, fail(400, "Too Many Contacts"), out);
                }
                let (addr, transport, routable) = self.contact_target(&na.uri, input);
                contacts.push(ContactUpdate {
                    uri: na.uri_raw,
                    addr,
                    transport,
                    q,
                    routable,
                    expires_s: requested.min(self.config.max_expires),
                });
            }
        }
        if star && (!contacts.is_empty() || expires_header != Some(0)) {
            return self.reply(
                input,
                msg,
                stats,
                fail(400, "Invalid Wildcard Contact"),
                out,
            );
        }
        if too_brief {
            RegistrarStats::add(&self.stats.interval_too_brief);
            let min = self.config.min_expires;
            return self.responder.respond(
                input,
                msg,
                stats,
                Status::new(423, "Interval Too Brief"),
                |o| {
                    o.put(b"Min-Expires: ");
                    o.put_u64(u64::from(min));
                    o.put(b"\r\n");
                },
                out,
            );
        }
        // Step 7: apply; step 8: answer with every current binding.
        let call_id = msg.value(HeaderName::CallId).unwrap_or_default();
        let cseq = msg
            .value(HeaderName::CSeq)
            .and_then(|v| crate::sip::cseq::CSeq::parse(v).ok())
            .map_or(0, |c| c.seq);
        let update = Update {
            aor,
            call_id_hash: xxhash_rust::xxh3::xxh3_64_with_seed(call_id, self.config.secret),
            cseq,
            now_ms: now,
            remove_all: star,
            contacts: &contacts,
            max_per_aor: self.config.max_contacts_per_aor,
        };
        let changes = star || !contacts.is_empty();
        let responder = &self.responder;
        let result = self.bindings.update(&update, |bindings| {
            responder.respond(
                input,
                msg,
                stats,
                Status::new(200, "OK"),
                |o| {
                    put_date(o, now);
                    put_contacts(o, bindings, now, true);
                },
                out,
            )
        });
        match result {
            Ok(action) => {
                if changes {
                    if let Some(j) = &self.journal {
                        j.notify(aor);
                    }
                    RegistrarStats::add(&self.stats.registers_ok);
                } else {
                    RegistrarStats::add(&self.stats.queries);
                }
                action
            }
            Err(UpdateError::StaleCSeq) => {
                RegistrarStats::add(&self.stats.stale_cseq);
                self.reply(input, msg, stats, fail(400, "Out Of Order CSeq"), out)
            }
            Err(UpdateError::Full) => {
                RegistrarStats::add(&self.stats.capacity_full);
                self.responder.respond(
                    input,
                    msg,
                    stats,
                    Status::new(503, "Service Unavailable"),
                    |o| o.put(b"Retry-After: 60\r\n"),
                    out,
                )
            }
            Err(UpdateError::TooManyContacts) => {
                RegistrarStats::add(&self.stats.too_many_contacts);
                self.reply(input, msg, stats, fail(403, "Too Many Contacts"), out)
            }
        }
    }

    /// Where requests for a contact go: its IP address and port, or the REGISTER's source when
    /// the contact names a host (no DNS here), a private address seen from elsewhere (NAT), or
    /// came over TCP (the UA's connection is reused).
    fn contact_target(&self, uri: &Uri<'_>, input: &Input<'_>) -> (SocketAddr, Transport, bool) {
        if !uri.scheme().is_sip() {
            return (input.source, input.transport, false);
        }
        let from_source = (input.source, input.transport, true);
        if input.transport == Transport::Tcp || self.config.use_source_address {
            return from_source;
        }
        let ip = match uri
            .maddr()
            .map(Host::parse)
            .and_then(Result::ok)
            .or(uri.host())
        {
            Some(Host::Ipv4(a)) => IpAddr::V4(a),
            Some(Host::Ipv6(a)) => IpAddr::V6(a),
            _ => return from_source,
        };
        let Some(transport) = uri
            .transport()
            .map_or(Some(Transport::Udp), Transport::from_token)
        else {
            return from_source;
        };
        let private = match ip {
            IpAddr::V4(a) => a.is_private() || a.is_link_local() || a.is_loopback(),
            IpAddr::V6(a) => a.is_unique_local() || a.is_unicast_link_local() || a.is_loopback(),
        };
        if private && ip != input.source.ip() {
            return from_source;
        }
        let default_port = if uri.scheme() == Scheme::Sips {
            5061
        } else {
            5060
        };
        (
            SocketAddr::new(ip, uri.port().unwrap_or(default_port)),
            transport,
            true,
        )
    }

    fn redirect(
        &self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        stats: &ProxyStats,
        uri: &Uri<'_>,
        target: RedirectTarget<'_>,
        out: &mut [u8],
    ) -> Action {
        let now = input.now_ms;
        let user = match uri.scheme() {
            Scheme::Tel => uri.number(),
            _ => uri.user(),
        }
        .unwrap_or_default();
        match target {
            RedirectTarget::Static(contacts) => {
                RegistrarStats::add(&self.stats.redirects);
                self.responder.respond(
                    input,
                    msg,
                    stats,
                    Status::new(302, "Moved Temporarily"),
                    |o| {
                        for c in contacts {
                            o.put(b"Contact: <");
                            redirect::put_template(o, c, user);
                            o.put(b">\r\n");
                        }
                    },
                    out,
                )
            }
            RedirectTarget::Bindings => {
                let mut key_buf = [0u8; MAX_AOR_LEN];
                let Some(aor) = aor_key(user, uri.host_raw(), &mut key_buf) else {
                    return self.reply(input, msg, stats, fail(404, "Not Found"), out);
                };
                let responder = &self.responder;
                let answered = self.bindings.with(aor, |bindings| {
                    if !bindings.iter().any(|b| b.is_live(now)) {
                        return None;
                    }
                    Some(responder.respond(
                        input,
                        msg,
                        stats,
                        Status::new(302, "Moved Temporarily"),
                        |o| put_contacts(o, bindings, now, false),
                        out,
                    ))
                });
                if let Some(action) = answered {
                    RegistrarStats::add(&self.stats.redirects);
                    return action;
                }
                let known = self.bindings.with(aor, |b| !b.is_empty())
                    || self.auth.as_ref().is_some_and(|a| a.knows_user(user));
                if known {
                    self.reply(input, msg, stats, fail(480, "Temporarily Unavailable"), out)
                } else {
                    self.reply(input, msg, stats, fail(404, "Not Found"), out)
                }
            }
        }
    }
}

/// Whether an authenticated username is the user part of an AOR or From URI (compared after
/// unescaping the URI user).
fn same_user(username: &[u8], uri_user: &[u8]) -> bool {
    if username == uri_user {
        return true;
    }
    let mut buf = [0u8; MAX_AOR_LEN];
    crate::sip::uri::unescape_into(uri_user, &mut buf)
        .ok()
        .is_some_and(|n| &buf[..n] == username)
}

/// `Contact: <uri>;expires=N;q=0.5` for each live binding, highest q first (the order a
/// redirect target tries them in); `with_expires` for a registrar's 200.
fn put_contacts(o: &mut Out<'_>, bindings: &[Binding], now_ms: u64, with_expires: bool) {
    let mut level = u32::MAX;
    loop {
        // The next lower q level present.
        let Some(q) = bindings
            .iter()
            .filter(|b| b.is_live(now_ms) && u32::from(b.q) < level)
            .map(|b| b.q)
            .max()
        else {
            return;
        };
        level = u32::from(q);
        for b in bindings.iter().filter(|b| b.is_live(now_ms) && b.q == q) {
            o.put(b"Contact: <");
            o.put(&b.uri);
            o.put(b">");
            if with_expires {
                o.put(b";expires=");
                o.put_u64(b.remaining_s(now_ms));
            }
            if b.q != 1000 {
                o.put(b";q=0.");
                let d = [
                    b'0' + (b.q / 100) as u8,
                    b'0' + (b.q / 10 % 10) as u8,
                    b'0' + (b.q % 10) as u8,
                ];
                let len = 3 - d.iter().rev().take_while(|&&c| c == b'0').count().min(2);
                o.put(&d[..len]);
            }
            o.put(b"\r\n");
        }
    }
}

impl LocationService for Registrar {
    fn lookup(&self, user: &[u8], domain: &[u8], now_ms: u64, call_id: &[u8]) -> Lookup {
        match self.bindings.lookup(user, domain, now_ms, call_id) {
            Lookup::Unknown
                if self.is_our_domain(domain)
                    && self.auth.as_ref().is_some_and(|a| a.knows_user(user)) =>
            {
                Lookup::NoBinding
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_formatting() {
        let b = |q| Binding {
            uri: Arc::from(&b"sip:a@h"[..]),
            addr: "192.0.2.1:5060".parse().unwrap(),
            expires_at_ms: 10_500,
            call_id_hash: 0,
            cseq: 1,
            q,
            transport: Transport::Udp,
            routable: true,
        };
        let mut buf = [0u8; 512];
        let mut out = Out::new(&mut buf);
        put_contacts(&mut out, &[b(500), b(1000), b(0), b(125), b(10)], 0, true);
        assert_eq!(
            std::str::from_utf8(out.written()).unwrap(),
            "Contact: <sip:a@h>;expires=11\r\n\
             Contact: <sip:a@h>;expires=11;q=0.5\r\n\
             Contact: <sip:a@h>;expires=11;q=0.125\r\n\
             Contact: <sip:a@h>;expires=11;q=0.01\r\n\
             Contact: <sip:a@h>;expires=11;q=0.0\r\n"
        );
    }
}
