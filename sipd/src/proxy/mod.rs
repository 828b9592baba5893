//! The sans-IO stateless proxy core (RFC 3261 §16 with §16.11).
//!
//! [`Proxy::handle`] is a function of `(now, source, local address, transport, bytes)`: it
//! writes the message to send into the caller's transmit buffer and returns an [`Action`]
//! (forward there, reply there, or drop for a counted reason). It never touches a socket or a
//! clock and allocates nothing on the forwarding path; drivers (AF_XDP workers, kernel sockets,
//! the simulated network of the tests) are thin loops around it.
//!
//! Requests: validated (§16.3: 400, 416, 483, 482, 420, and 505 for another SIP version), our
//! own top Route removed (§16.4, with the strict-routing rewrite), a target determined (§16.5:
//! location service for our domains, then the number-routing table, domain routes, the default
//! route, else 480/404), and forwarded (§16.6: Max-Forwards decremented or inserted, optional
//! Record-Route, our Via on top with a stateless branch, `received`/`rport` on the previous hop's
//! Via). Responses: our top Via removed and the rest sent to the next Via (§16.7, §18.2.2,
//! RFC 3581), never to a broadcast or multicast address.

pub mod branch;
pub mod group;
pub mod location;
pub mod look_ahead;
pub mod numbers;
pub mod stats;
pub mod writer;

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::config::{Config, Trunk};
use crate::dialog::{CallKey, DialogKey, DialogTable, Refused, Tag};

use crate::sip::cseq::CSeq;
use crate::sip::message::{
    Header, Message, Method, parse_datagram_uninit, parse_headers_after_start_line,
};
use crate::sip::name_addr::NameAddrView;
use crate::sip::uri::{Host, Scheme, Uri, parse_port};
use crate::sip::values::{offset_in, parse_u32, split_comma};
use crate::sip::via::{Rport, Via};
use crate::sip::{ErrorKind, HeaderName, Version};

pub use group::{Group, GroupTarget, Health, HealthConfig, HealthProber};
pub use location::{ContactTarget, LocationService, Lookup, StaticLocation};
pub use numbers::PrefixTable;
pub use stats::{DropReason, ProxyStats};

use stats::bump;
use writer::Out;

/// Header storage per message: more header lines than this is answered 400 / dropped.
pub const MAX_HEADERS: usize = 64;

/// Transport of a message (SIP over UDP or TCP; TLS and SCTP are not served).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The token in a Via's sent-protocol.
    pub fn via_token(self) -> &'static [u8] {
        match self {
            Transport::Udp => b"UDP",
            Transport::Tcp => b"TCP",
        }
    }

    /// From a Via transport or a URI `transport` parameter (case-insensitive).
    pub fn from_token(token: &[u8]) -> Option<Transport> {
        if token.eq_ignore_ascii_case(b"udp") {
            Some(Transport::Udp)
        } else if token.eq_ignore_ascii_case(b"tcp") {
            Some(Transport::Tcp)
        } else {
            None
        }
    }
}

/// One received message.
#[derive(Copy, Clone, Debug)]
pub struct Input<'a> {
    /// Milliseconds on the caller's clock (wall clock: shared by workers and restarts).
    pub now_ms: u64,
    pub source: SocketAddr,
    /// The local address the message arrived on (our sent-by unless `advertise` is configured).
    pub local: SocketAddr,
    pub transport: Transport,
    /// Exactly one message (a datagram, or one framed message of a stream).
    pub bytes: &'a [u8],
}

/// What to do with the bytes written into the transmit buffer.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `len` bytes (a forwarded request or response) to `to`.
    Forward {
        to: SocketAddr,
        transport: Transport,
        len: usize,
    },
    /// Send `len` bytes (a response we generated) back to `to`.
    Reply {
        to: SocketAddr,
        transport: Transport,
        code: u16,
        len: usize,
    },
    /// Nothing to send.
    Drop(DropReason),
}

/// Where a route sends requests.
#[derive(Clone, Debug, PartialEq)]
pub enum RouteTarget {
    Hop(NextHop),
    /// Index into [`ProxyConfig::groups`].
    Group(usize),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub addr: SocketAddr,
    pub transport: Transport,
}

/// Routing configuration, built (and names resolved) when the configuration is loaded.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Domains we are responsible for (lower case): their users are looked up in the location
    /// service, and Route/Request-URIs naming them (or our own addresses) are ours.
    pub domains: Vec<String>,
    /// Our sent-by in Via and our Record-Route URI; the receiving local address when `None`.
    pub advertise: Option<SocketAddr>,
    pub record_route: bool,
    /// Keys the stateless branch hash (same on every worker; may change across restarts).
    pub branch_secret: u64,
    pub number_routes: PrefixTable<RouteTarget>,
    /// Lower-case domain -> target, for Request-URIs outside our domains.
    pub domain_routes: HashMap<String, RouteTarget>,
    pub default_route: Option<RouteTarget>,
    pub groups: Vec<Group>,
    /// Static resolution of host names that appear in Route headers and Vias (no DNS on the
    /// fast path), lower case.
    pub hosts: HashMap<String, IpAddr>,
    /// Retry-After seconds in a 503 when every target of a group is down.
    pub retry_after_s: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            domains: Vec::new(),
            advertise: None,
            record_route: false,
            branch_secret: 0x5349_5044_2d62_7268,
            number_routes: PrefixTable::new(),
            domain_routes: HashMap::new(),
            default_route: None,
            groups: Vec::new(),
            hosts: HashMap::new(),
            retry_after_s: 30,
        }
    }
}

/// One worker's proxy: shared configuration and state, its own counters.
pub struct Proxy {
    config: Arc<ProxyConfig>,
    location: Arc<dyn LocationService>,
    health: Arc<Health>,
    stats: Arc<ProxyStats>,
    /// Registrar, authentication and redirect server (shared by every worker), consulted for
    /// each valid request before routing.
    registrar: Option<Arc<crate::registrar::Registrar>>,
    /// The shared dialog table and how sources map to trunks, when calls are tracked.
    dialogs: Option<(Arc<DialogTable>, Arc<Vec<Trunk>>)>,
    /// Where reloaded routing is published, and the version this worker has applied.
    routing: Option<(Arc<RoutingCell>, u64)>,
    /// Our sent-by as text, for the address it was last formatted for: every forwarded request
    /// writes it into its Via and Record-Route, and it changes only with the local address.
    sent_by_text: Option<(SocketAddr, [u8; 48], usize)>,
}

/// The routing configuration shared by workers that cannot be sent a control message (AF_XDP
/// workers): a reload publishes here and each worker picks it up on its next message, at the
/// cost of one atomic load per message.
#[derive(Debug)]
pub struct RoutingCell {
    config: ArcSwap<ProxyConfig>,
    version: AtomicU64,
}

impl RoutingCell {
    pub fn new(config: Arc<ProxyConfig>) -> Arc<RoutingCell> {
        Arc::new(RoutingCell {
            config: ArcSwap::new(config),
            version: AtomicU64::new(0),
        })
    }

    /// The routing in force.
    pub fn config(&self) -> Arc<ProxyConfig> {
        self.config.load_full()
    }

    /// Makes `config` the routing of every worker attached to this cell.
    pub fn publish(&self, config: Arc<ProxyConfig>) {
        self.config.store(config);
        self.version.fetch_add(1, Ordering::Release);
    }
}

/// A reply the request path decided on.
struct Reject {
    code: u16,
    reason: &'static str,
    /// Extra header lines (complete, with CRLF), e.g. Unsupported or Retry-After.
    extra: ExtraHeader,
}

#[derive(Copy, Clone)]
enum ExtraHeader {
    None,
    /// `Unsupported:` with the Proxy-Require value copied.
    Unsupported,
    RetryAfter(u32),
    /// Allow/Accept for an OPTIONS answered by the proxy itself.
    Capabilities,
}

impl Reject {
    const fn new(code: u16, reason: &'static str) -> Self {
        Reject {
            code,
            reason,
            extra: ExtraHeader::None,
        }
    }
}

/// The fields of a request the core needs, parsed once.
struct RequestView<'a> {
    method: Method<'a>,
    uri_raw: &'a [u8],
    uri: Uri<'a>,
    call_id: &'a [u8],
    from_tag: &'a [u8],
    from_uri: &'a [u8],
    to_tag: &'a [u8],
    cseq: CSeq<'a>,
    max_forwards: Option<u32>,
    top_via: Via<'a>,
    /// The top Via line holds only `top_via` (the split found no second value).
    top_via_alone: bool,
}

/// The chosen next hop and an optional new Request-URI (location service contact).
struct Decision<'a> {
    hop: NextHop,
    new_uri: Option<UriBytes<'a>>,
    /// Our Route value to remove (header index, value offset and length in the header value).
    strip_route: Option<RouteValue>,
    /// Strict-routing rewrite: the last Route value became the Request-URI; remove it.
    strip_last_route: Option<RouteValue>,
}

enum UriBytes<'a> {
    Borrowed(&'a [u8]),
    Shared(Arc<[u8]>),
}

impl UriBytes<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            UriBytes::Borrowed(b) => b,
            UriBytes::Shared(b) => b,
        }
    }
}

/// One value of a Route header: which header line, and where in its value.
#[derive(Copy, Clone, Debug)]
struct RouteValue {
    header: usize,
    offset: usize,
    len: usize,
}

impl Proxy {
    pub fn new(
        config: Arc<ProxyConfig>,
        location: Arc<dyn LocationService>,
        health: Arc<Health>,
    ) -> Self {
        Proxy {
            config,
            location,
            health,
            stats: Arc::new(ProxyStats::default()),
            registrar: None,
            dialogs: None,
            routing: None,
            sent_by_text: None,
        }
    }

    /// Lets `registrar` answer REGISTERs for its domains, challenge requests that need
    /// authentication, redirect and absorb the ACKs of its own responses. (To forward to
    /// registered contacts, give the registrar, or its bindings, to [`Proxy::new`] as the
    /// location service as well.)
    pub fn with_registrar(mut self, registrar: Arc<crate::registrar::Registrar>) -> Self {
        self.registrar = Some(registrar);
        self
    }

    /// Tracks calls in the shared dialog table (RFC 3261 §12): an INVITE that would exceed the
    /// table or its trunk's limit of concurrent calls is answered 503.
    pub fn with_dialogs(mut self, table: Arc<DialogTable>, trunks: Arc<Vec<Trunk>>) -> Self {
        self.dialogs = Some((table, trunks));
        self
    }

    /// Follows the routing published in `cell` (live reload without a control channel).
    pub fn with_routing_cell(mut self, cell: Arc<RoutingCell>) -> Self {
        self.config = cell.config.load_full();
        let seen = cell.version.load(Ordering::Acquire);
        self.routing = Some((cell, seen));
        self
    }

    /// This worker's counters (for the metrics endpoint).
    pub fn stats(&self) -> &Arc<ProxyStats> {
        &self.stats
    }

    pub fn config(&self) -> &Arc<ProxyConfig> {
        &self.config
    }

    /// Swaps the routing configuration (live reload); in-flight calls keep working because
    /// nothing per call is stored in it.
    pub fn set_config(&mut self, config: Arc<ProxyConfig>) {
        self.config = config;
    }

    /// Gets ready for a message that `handle` will be given soon: starts loading the dialog
    /// table's cache line for its Call-ID (see [`look_ahead`]). Workers call it for every
    /// message of a received batch, then handle the batch, so the table's misses overlap
    /// instead of stalling each message in turn. Changes nothing; does nothing without a
    /// dialog table.
    #[inline]
    pub fn look_ahead(&self, bytes: &[u8]) {
        if let Some((table, _)) = &self.dialogs
            && let Some(call_id) = look_ahead::call_id_hint(bytes)
        {
            table.prefetch_call_id(call_id);
        }
    }

    /// Handles one message: writes what to send into `out` and says where.
    pub fn handle(&mut self, input: &Input<'_>, out: &mut [u8]) -> Action {
        if let Some((cell, seen)) = &mut self.routing {
            let version = cell.version.load(Ordering::Acquire);
            if version != *seen {
                self.config = cell.config.load_full();
                *seen = version;
            }
        }
        let bytes = input.bytes;
        if bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
            return self.dropped(DropReason::KeepAlive);
        }
        let mut storage = [MaybeUninit::uninit(); MAX_HEADERS];
        match parse_datagram_uninit(bytes, &mut storage) {
            Ok(msg) if msg.is_request() => {
                let method_index = method_label_index(msg.method());
                bump(&self.stats.requests_by_method[method_index]);
                self.handle_request(input, &msg, out)
            }
            Ok(msg) => {
                let class = usize::from(msg.status().unwrap_or(100) / 100).clamp(1, 6) - 1;
                bump(&self.stats.responses_by_class[class]);
                self.handle_response(input, &msg, out)
            }
            Err(e) => {
                self.stats.count_parse_error(e.kind);
                self.reject_unparsable(input, e.kind, out)
            }
        }
    }

    fn dropped(&self, reason: DropReason) -> Action {
        self.stats.count_drop(reason);
        Action::Drop(reason)
    }

    /// A request whose start line (or framing) is broken is still answered 400 (or 505) when its
    /// header block is readable; anything else is dropped.
    fn reject_unparsable(&mut self, input: &Input<'_>, kind: ErrorKind, out: &mut [u8]) -> Action {
        let bytes = input.bytes;
        let looks_like_request = !bytes.starts_with(b"SIP/")
            && bytes
                .iter()
                .position(|&b| b == b' ')
                .is_some_and(|sp| sp > 0)
            && !bytes.starts_with(b"ACK ");
        if !looks_like_request {
            return self.dropped(DropReason::Malformed);
        }
        let mut storage = [MaybeUninit::uninit(); MAX_HEADERS];
        let Ok(headers) = parse_headers_after_start_line(bytes, &mut storage) else {
            return self.dropped(DropReason::Malformed);
        };
        let reject = match kind {
            ErrorKind::UnsupportedVersion => Reject::new(505, "Version Not Supported"),
            _ => Reject::new(400, "Bad Request"),
        };
        self.reply(input, headers, &reject, out)
    }

    fn handle_request(
        &mut self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        out: &mut [u8],
    ) -> Action {
        let is_ack = msg.method() == Some(Method::Ack);
        let view = match self.validate(msg) {
            Ok(view) => view,
            Err(reject) if is_ack => {
                let _ = reject;
                return self.dropped(DropReason::AckAbsorbed);
            }
            Err(reject) => return self.reply(input, msg.headers(), &reject, out),
        };
        if let Some(registrar) = &self.registrar
            && let Some(action) = registrar.handle(input, msg, &self.stats, out)
        {
            return action;
        }
        // §16.11: the loop-invariant hash, for the loop check and for our branch.
        let h1 = branch::invariant_hash(
            self.config.branch_secret,
            view.uri_raw,
            view.call_id,
            view.from_tag,
            view.cseq.seq,
        );
        match self.route(input, msg, &view, h1) {
            Ok(decision) => {
                if let Err(reject) = self.track_request(input, &view) {
                    return self.reply(input, msg.headers(), &reject, out);
                }
                self.forward_request(input, msg, &view, &decision, h1, out)
            }
            // Never answer an ACK (RFC 3261 §17): an unroutable ACK is the ACK of a final
            // response we generated.
            Err(_) if is_ack => self.dropped(DropReason::AckAbsorbed),
            Err(reject) => self.reply(input, msg.headers(), &reject, out),
        }
    }

    /// Updates the dialog table for a request about to be forwarded; refuses an INVITE the
    /// table or its trunk has no room for.
    fn track_request(&self, input: &Input<'_>, view: &RequestView<'_>) -> Result<(), Reject> {
        let Some((table, trunks)) = &self.dialogs else {
            return Ok(());
        };
        let now = input.now_ms;
        let call = || CallKey::new(view.call_id, view.from_tag);
        let dialog = || DialogKey::new(view.call_id, view.from_tag, view.to_tag);
        match view.method {
            Method::Invite if view.to_tag.is_empty() => {
                let trunk = Config::trunk_of(trunks, input.source.ip());
                let caller = std::str::from_utf8(view.from_uri).unwrap_or_default();
                let callee = std::str::from_utf8(view.uri_raw).unwrap_or_default();
                match table.on_invite(call(), trunk, caller, callee, now) {
                    Ok(_) => Ok(()),
                    Err(Refused::Full) => Err(Reject::new(503, "Service Unavailable")),
                    Err(Refused::TrunkLimit) => Err(Reject::new(503, "Trunk Call Limit Reached")),
                }
            }
            Method::Cancel => {
                table.on_cancel(call(), now);
                Ok(())
            }
            Method::Bye => {
                table.on_bye(dialog(), now);
                Ok(())
            }
            _ if !view.to_tag.is_empty() => {
                table.touch(dialog(), now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Updates the dialog table for a response about to be forwarded (INVITE and BYE answers).
    fn track_response(&self, input: &Input<'_>, msg: &Message<'_, '_>) {
        let Some((table, _)) = &self.dialogs else {
            return;
        };
        let (Some(status), Some(cseq), Some(call_id), Some(from), Some(to)) = (
            msg.status(),
            msg.value(HeaderName::CSeq)
                .and_then(|v| CSeq::parse(v).ok()),
            msg.value(HeaderName::CallId),
            msg.value(HeaderName::From)
                .and_then(|v| NameAddrView::parse(v).ok()),
            msg.value(HeaderName::To)
                .and_then(|v| NameAddrView::parse(v).ok()),
        ) else {
            return;
        };
        let from_tag = from.tag().unwrap_or_default();
        match cseq.method {
            b"INVITE" => {
                let call = CallKey::new(call_id, from_tag);
                table.on_response(call, to.tag().map(Tag::new), status, input.now_ms);
            }
            b"BYE" => {
                let dialog = DialogKey::new(call_id, from_tag, to.tag().unwrap_or_default());
                table.on_bye_response(dialog, status, input.now_ms);
            }
            _ => {}
        }
    }

    /// §16.3 request validation plus what the rest of the core needs, parsed once.
    fn validate<'a>(&self, msg: &Message<'a, '_>) -> Result<RequestView<'a>, Reject> {
        if msg.version() != Version::SIP_2_0 {
            return Err(Reject::new(505, "Version Not Supported"));
        }
        let method = msg.method().ok_or(Reject::new(400, "Bad Request"))?;
        // Required headers, each exactly once where the RFC allows only one.
        for name in [
            HeaderName::To,
            HeaderName::From,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            if msg.header(name).is_none() {
                return Err(Reject::new(400, "Missing Required Header"));
            }
            if msg.is_repeated(name) {
                return Err(Reject::new(400, "Duplicate Header"));
            }
        }
        // RFC 4475 mcl01: with disagreeing Content-Lengths nobody knows where the body ends.
        if msg.has_conflicting_content_length() {
            return Err(Reject::new(400, "Conflicting Content-Length"));
        }
        if msg.is_repeated(HeaderName::MaxForwards) {
            return Err(Reject::new(400, "Duplicate Max-Forwards"));
        }
        let via_value = msg
            .value(HeaderName::Via)
            .ok_or(Reject::new(400, "Missing Via"))?;
        let (top_via, top_via_alone) =
            first_via_alone(via_value).ok_or(Reject::new(400, "Bad Via"))?;
        let from = msg.value(HeaderName::From).unwrap_or_default();
        // §16.3: syntax is checked as far as the proxy uses a field. From and To give tags (and
        // the caller for call records); their URIs are passed on untouched, not parsed.
        let from = NameAddrView::parse(from).map_err(|_| Reject::new(400, "Bad From"))?;
        let to = msg.value(HeaderName::To).unwrap_or_default();
        let to = NameAddrView::parse(to).map_err(|_| Reject::new(400, "Bad To"))?;
        let call_id = msg.value(HeaderName::CallId).unwrap_or_default();
        // A Call-ID is one word (RFC 3261 §25.1): no LWS. The parser admits no bare CR in a
        // value, and a folded line has LF and SP/HTAB, so LF stands for CR too.
        if call_id.is_empty() || memchr::memchr3(b' ', b'\t', b'\n', call_id).is_some() {
            return Err(Reject::new(400, "Bad Call-ID"));
        }
        let cseq = CSeq::parse(msg.value(HeaderName::CSeq).unwrap_or_default())
            .map_err(|_| Reject::new(400, "Bad CSeq"))?;
        if cseq.method != method.as_bytes() {
            return Err(Reject::new(400, "CSeq Method Mismatch"));
        }
        let max_forwards = match msg.value(HeaderName::MaxForwards) {
            Some(v) => Some(parse_u32(v).map_err(|_| Reject::new(400, "Bad Max-Forwards"))?),
            None => None,
        };
        let uri_raw = msg.request_uri().unwrap_or_default();
        let uri = Uri::parse(uri_raw).map_err(|_| Reject::new(400, "Bad Request-URI"))?;
        if !matches!(uri.scheme(), Scheme::Sip | Scheme::Sips | Scheme::Tel) {
            return Err(Reject::new(416, "Unsupported URI Scheme"));
        }
        // RFC 3261 §19.1.5: a Request-URI carries no escaped headers (RFC 4475 escruri).
        if uri.headers_raw().is_some() {
            return Err(Reject::new(400, "Headers In Request-URI"));
        }
        Ok(RequestView {
            method,
            uri_raw,
            uri,
            call_id,
            from_tag: from.tag().unwrap_or_default(),
            from_uri: from.uri_raw,
            to_tag: to.tag().unwrap_or_default(),
            cseq,
            max_forwards,
            top_via,
            top_via_alone,
        })
    }

    /// §16.3 steps 3-5 and §16.4-16.5: the next hop, or the reply that ends the request here.
    fn route<'a>(
        &self,
        input: &Input<'_>,
        msg: &Message<'a, '_>,
        view: &RequestView<'a>,
        h1: u64,
    ) -> Result<Decision<'a>, Reject> {
        let cfg = &*self.config;
        // The Request-URI's host is compared with our names and addresses once.
        let ruri_host_ours = view
            .uri
            .host()
            .is_some_and(|h| self.is_our_domain(&h, input.local));
        let ruri_is_us = ruri_host_ours && self.on_our_port(&view.uri, input.local);
        let for_us = ruri_is_us && view.uri.user().is_none();
        if view.max_forwards == Some(0) {
            if view.method == Method::Options && for_us {
                return Err(capabilities());
            }
            return Err(Reject::new(483, "Too Many Hops"));
        }
        // §16.3 step 4: only a Via this proxy inserted (our sent-by) shows a loop; another proxy
        // with the same secret computes the same `h1` for the same request.
        // One Via value (the first hop's request): it was parsed already, its branch is checked
        // directly. Otherwise the Via lines are searched for our branch prefix first.
        // The split in `validate` already knows whether the line has one value: no second
        // search. (A line the old comma search called many, whose one value has a quoted or
        // bracketed comma, checks the same Via here: our branch is in the line.)
        let single_via = view.top_via_alone && !msg.is_repeated(HeaderName::Via);
        let looped = if single_via {
            self.is_our_via_for(&view.top_via, h1, input.local)
        } else {
            msg.headers_named(HeaderName::Via).any(|h| {
                branch::contains_marker(h.value, h1)
                    && split_comma(h.value).flatten().any(|(_, value)| {
                        Via::parse(value)
                            .is_ok_and(|via| self.is_our_via_for(&via, h1, input.local))
                    })
            })
        };
        if looped {
            return Err(Reject::new(482, "Loop Detected"));
        }
        // §8.2.2.3: Proxy-Require is ignored in a CANCEL and in a non-2xx ACK (a stateless proxy
        // cannot tell that from a 2xx ACK, and never answers an ACK anyway).
        if msg.header(HeaderName::ProxyRequire).is_some()
            && !matches!(view.method, Method::Cancel | Method::Ack)
        {
            // We support no option tags: every Proxy-Require tag is unsupported.
            return Err(Reject {
                code: 420,
                reason: "Bad Extension",
                extra: ExtraHeader::Unsupported,
            });
        }

        // §16.4: a Route naming us is removed; a Request-URI naming us (strict-routing previous
        // hop) is replaced by the last Route.
        let routes = route_values(msg);
        let mut strip_route = None;
        let mut next_route = routes.first;
        if let Some(first) = routes.first
            && self.route_names_us(msg, first, input.local)
        {
            strip_route = Some(first);
            next_route = routes.second;
        }
        if for_us
            && view.method != Method::Options
            && strip_route.is_none()
            && let Some(last) = routes.last
        {
            let uri_bytes = route_uri_bytes(msg, last).ok_or(Reject::new(400, "Bad Route"))?;
            let uri = Uri::parse(uri_bytes).map_err(|_| Reject::new(400, "Bad Route"))?;
            // §19.1.5: no headers in a Request-URI (§12.2.1.1 strips what it cannot carry).
            let uri_bytes = match uri.headers_raw() {
                Some(h) => &uri_bytes[..offset_in(uri_bytes, h).saturating_sub(1)],
                None => uri_bytes,
            };
            // "Proceed as if it received this modified request": a Route left after the rewrite
            // is the next hop (§16.6 step 7), else the new Request-URI.
            let hop = match routes
                .first
                .filter(|f| f.header != last.header || f.offset != last.offset)
            {
                Some(first) => {
                    let first = route_uri(msg, first).ok_or(Reject::new(400, "Bad Route"))?;
                    self.uri_hop(&first)?
                }
                None => self.uri_hop(&uri)?,
            };
            return Ok(Decision {
                hop,
                new_uri: Some(UriBytes::Borrowed(uri_bytes)),
                strip_route: None,
                strip_last_route: Some(last),
            });
        }
        if let Some(next) = next_route {
            let uri = route_uri(msg, next).ok_or(Reject::new(400, "Bad Route"))?;
            let hop = self.uri_hop(&uri)?;
            return Ok(Decision {
                hop,
                new_uri: None,
                strip_route,
                strip_last_route: None,
            });
        }
        if for_us {
            if view.method == Method::Options {
                return Err(capabilities());
            }
            return Err(Reject::new(404, "Not Found"));
        }

        // §16.5 target determination.
        let mut known_user = false;
        // In our domain: one of our domain names, or one of our addresses on our port (a UA that
        // shares our IP on another port, e.g. on loopback, is not us).
        let ours = ruri_host_ours && (matches!(view.uri.host(), Some(Host::Name(_))) || ruri_is_us);
        if ours && let Some(user) = view.uri.user() {
            match self
                .location
                .lookup(user, view.uri.host_raw(), input.now_ms, view.call_id)
            {
                Lookup::Found(contact) => {
                    let hop = NextHop {
                        addr: contact.addr,
                        transport: contact.transport,
                    };
                    return Ok(Decision {
                        hop,
                        new_uri: Some(UriBytes::Shared(contact.uri)),
                        strip_route,
                        strip_last_route: None,
                    });
                }
                Lookup::NoBinding => known_user = true,
                Lookup::Unknown => {}
            }
        }
        let number = match view.uri.scheme() {
            Scheme::Tel => view.uri.number(),
            _ => view.uri.user(),
        };
        if let Some(number) = number
            && let Some((target, _)) = cfg.number_routes.longest_match(number)
        {
            return self.target_hop(target, view).map(|hop| Decision {
                hop,
                new_uri: None,
                strip_route,
                strip_last_route: None,
            });
        }
        if !ours {
            let by_domain = view.uri.host().and_then(|h| match h {
                Host::Name(name) => with_lower(name, |n| cfg.domain_routes.get(n)),
                _ => None,
            });
            if let Some(target) = by_domain.or(cfg.default_route.as_ref()) {
                return self.target_hop(target, view).map(|hop| Decision {
                    hop,
                    new_uri: None,
                    strip_route,
                    strip_last_route: None,
                });
            }
            // §16.5: a Request-URI outside our domains is itself the only target (e.g. a UA's
            // contact in the ACK and BYE of a record-routed dialog). Without DNS that works for
            // an IP address or a name in the static hosts table.
            if let Ok(hop) = self.uri_hop(&view.uri) {
                return Ok(Decision {
                    hop,
                    new_uri: None,
                    strip_route,
                    strip_last_route: None,
                });
            }
        }
        if known_user {
            Err(Reject::new(480, "Temporarily Unavailable"))
        } else {
            Err(Reject::new(404, "Not Found"))
        }
    }

    fn target_hop(&self, target: &RouteTarget, view: &RequestView<'_>) -> Result<NextHop, Reject> {
        match target {
            RouteTarget::Hop(hop) => Ok(*hop),
            RouteTarget::Group(g) => {
                let group = self
                    .config
                    .groups
                    .get(*g)
                    .ok_or(Reject::new(500, "Server Internal Error"))?;
                match group.pick(view.call_id, &self.health) {
                    Some((_, t)) => Ok(NextHop {
                        addr: t.addr,
                        transport: t.transport,
                    }),
                    None => Err(Reject {
                        code: 503,
                        reason: "Service Unavailable",
                        extra: ExtraHeader::RetryAfter(self.config.retry_after_s),
                    }),
                }
            }
        }
    }

    /// The address a Route URI (or strict-routing URI) sends to: maddr, host, port, transport.
    fn uri_hop(&self, uri: &Uri<'_>) -> Result<NextHop, Reject> {
        let transport = uri
            .transport()
            .map(|t| Transport::from_token(t).ok_or(Reject::new(503, "Unsupported Transport")))
            .transpose()?
            .unwrap_or(Transport::Udp);
        let host = uri
            .maddr()
            .map(Host::parse)
            .and_then(Result::ok)
            .or(uri.host());
        let ip = host
            .and_then(|h| self.resolve(&h))
            .ok_or(Reject::new(503, "Unresolvable Route"))?;
        Ok(NextHop {
            addr: SocketAddr::new(ip, uri.port().unwrap_or(5060)),
            transport,
        })
    }

    /// A Via of ours for this request: our branch for `h1` and our sent-by.
    fn is_our_via_for(&self, via: &Via<'_>, h1: u64, local: SocketAddr) -> bool {
        via.branch().is_some_and(|b| branch::is_ours_for(b, h1))
            && self.is_our_domain(&via.host, local)
            && via.port.unwrap_or(5060) == self.our_port(local)
    }

    /// The port we advertise (or receive on).
    fn our_port(&self, local: SocketAddr) -> u16 {
        self.config.advertise.map_or(local.port(), |a| a.port())
    }

    fn resolve(&self, host: &Host<'_>) -> Option<IpAddr> {
        match *host {
            Host::Ipv4(a) => Some(IpAddr::V4(a)),
            Host::Ipv6(a) => Some(IpAddr::V6(a)),
            Host::Name(name) => with_lower(name, |n| self.config.hosts.get(n).copied()),
        }
    }

    fn is_our_domain(&self, host: &Host<'_>, local: SocketAddr) -> bool {
        match *host {
            Host::Name(name) => self
                .config
                .domains
                .iter()
                .any(|d| d.as_bytes().eq_ignore_ascii_case(name)),
            Host::Ipv4(a) => self.is_our_ip(IpAddr::V4(a), local),
            Host::Ipv6(a) => self.is_our_ip(IpAddr::V6(a), local),
        }
    }

    fn is_our_ip(&self, ip: IpAddr, local: SocketAddr) -> bool {
        ip == local.ip() || self.config.advertise.is_some_and(|a| a.ip() == ip)
    }

    /// A URI that names this proxy: one of our domains or addresses, on our port (or none).
    fn uri_is_us(&self, uri: &Uri<'_>, local: SocketAddr) -> bool {
        uri.host().is_some_and(|h| self.is_our_domain(&h, local)) && self.on_our_port(uri, local)
    }

    /// The scheme and port of a URI whose host is ours make it name this proxy: `sip`/`sips`,
    /// and our port (or none for a domain name; 5060 is implied for an address).
    fn on_our_port(&self, uri: &Uri<'_>, local: SocketAddr) -> bool {
        if !matches!(uri.scheme(), Scheme::Sip | Scheme::Sips) {
            return false;
        }
        let our_port = self.our_port(local);
        match uri.host() {
            Some(Host::Name(_)) => uri.port().is_none_or(|p| p == our_port),
            _ => uri.port().unwrap_or(5060) == our_port,
        }
    }

    /// A Route value that names this proxy. A URI whose host is, as text, one of our configured
    /// domain names (valid by construction) is decided without parsing the rest of it (§16.3:
    /// the proxy uses only the host and port of a Route it removes); any other is parsed.
    fn route_names_us(&self, msg: &Message<'_, '_>, rv: RouteValue, local: SocketAddr) -> bool {
        let Some(uri_bytes) = route_uri_bytes(msg, rv) else {
            return false;
        };
        if let Some((host, port)) = sip_uri_hostport(uri_bytes)
            && self.is_our_domain(&Host::Name(host), local)
        {
            return port.is_none_or(|p| p == self.our_port(local));
        }
        Uri::parse(uri_bytes).is_ok_and(|uri| self.uri_is_us(&uri, local))
    }

    /// §16.6: writes the forwarded request.
    fn forward_request(
        &mut self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        view: &RequestView<'_>,
        decision: &Decision<'_>,
        h1: u64,
        buf: &mut [u8],
    ) -> Action {
        let bytes = msg.bytes();
        let headers = msg.headers();
        let cfg = &*self.config;
        let sent_by = cfg.advertise.unwrap_or(input.local);
        // A Route or Request-URI naming a broadcast or multicast address is never a next hop.
        if is_broadcast_or_multicast(decision.hop.addr.ip()) {
            return self.dropped(DropReason::Broadcast);
        }
        let mut out = Out::new(buf);

        // Start line.
        match &decision.new_uri {
            Some(uri) => {
                out.put(view.method.as_bytes());
                out.put(b" ");
                out.put(uri.as_bytes());
                out.put(b" SIP/2.0\r\n");
            }
            None => out.put(&bytes[msg.start()..headers[0].start as usize]),
        }

        // Our Via, with the stateless branch (§16.11); `h1` is the invariant hash `route` used.
        let branch = match view.top_via.branch() {
            Some(b) if b.starts_with(b"z9hG4bK") => {
                let port = view.top_via.port.map(u16::to_le_bytes);
                let port: &[u8] = port.as_ref().map_or(&[], |p| &p[..]);
                branch::branch(h1, &[b, view.top_via.host_raw, port])
            }
            _ => branch::branch(h1, &[msg.value(HeaderName::Via).unwrap_or_default()]),
        };
        if !matches!(self.sent_by_text, Some((addr, ..)) if addr == sent_by) {
            // `[v6]:port` is at most 47 bytes.
            let mut text = [0u8; 48];
            let mut w = Out::new(&mut text);
            w.put_hostport(sent_by);
            let n = w.len();
            self.sent_by_text = Some((sent_by, text, n));
        }
        let sent_by_text = self
            .sent_by_text
            .as_ref()
            .map_or(&[][..], |(_, text, n)| &text[..*n]);
        out.put(b"Via: SIP/2.0/");
        out.put(decision.hop.transport.via_token());
        out.put(b" ");
        out.put(sent_by_text);
        out.put(b";branch=");
        out.put(&branch);
        out.put(b"\r\n");
        if cfg.record_route {
            out.put(b"Record-Route: <sip:");
            out.put(sent_by_text);
            if decision.hop.transport == Transport::Tcp || input.transport == Transport::Tcp {
                out.put(b";transport=");
                out.put(input.transport.via_token());
            }
            out.put(b";lr>\r\n");
        }

        let top_via_index = msg.header_index(HeaderName::Via);
        let mf_index = msg.header_index(HeaderName::MaxForwards);
        let last_end = headers.last().map_or(msg.start(), |h| h.end as usize);
        // Header lines we do not change are copied in runs, one copy per run rather than per line.
        let mut copied_to = headers.first().map_or(last_end, |h| h.start as usize);
        // The (at most four) lines that change, in message order: visiting only them, rather than
        // testing every header line against each, is most of the loop's cost gone.
        let mut edits = [
            top_via_index,
            mf_index,
            decision.strip_route.map(|r| r.header),
            decision.strip_last_route.map(|r| r.header),
        ];
        edits.sort_unstable();
        let mut previous = None;
        for i in edits.into_iter().flatten() {
            // The same line may be named twice (a Route both first and last): visited once.
            if previous.replace(i) == Some(i) {
                continue;
            }
            let Some(h) = headers.get(i) else {
                continue;
            };
            let strip = decision.strip_route.filter(|r| r.header == i);
            let strip_last = decision.strip_last_route.filter(|r| r.header == i);
            out.put(&bytes[copied_to..h.start as usize]);
            copied_to = h.end as usize;
            if Some(i) == top_via_index {
                write_received_via(&mut out, bytes, h, &view.top_via, input.source);
            } else if Some(i) == mf_index {
                out.put(b"Max-Forwards: ");
                out.put_u64(u64::from(view.max_forwards.unwrap_or(70).saturating_sub(1)));
                out.put(b"\r\n");
            } else if let Some(rv) = strip {
                write_without_value(&mut out, bytes, h, rv, strip_last);
            } else if let Some(rv) = strip_last {
                write_without_value(&mut out, bytes, h, rv, None);
            }
        }
        out.put(&bytes[copied_to..last_end]);
        if mf_index.is_none() {
            out.put(b"Max-Forwards: 70\r\n");
        }
        // §16.6 step 9: over a stream the next hop needs a Content-Length to frame the message.
        if decision.hop.transport == Transport::Tcp
            && msg.header(HeaderName::ContentLength).is_none()
        {
            out.put(b"Content-Length: ");
            out.put_u64(msg.body().len() as u64);
            out.put(b"\r\n");
        }
        out.put(&bytes[last_end..msg.len()]);

        match out.finish() {
            Some(len) => {
                bump(&self.stats.forwarded_requests);
                Action::Forward {
                    to: decision.hop.addr,
                    transport: decision.hop.transport,
                    len,
                }
            }
            None => self.dropped(DropReason::Overflow),
        }
    }

    /// §16.7 for a stateless proxy: check the top Via is ours, remove it, send to the next one.
    fn handle_response(
        &mut self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        buf: &mut [u8],
    ) -> Action {
        let Some(first_via_header) = msg.header(HeaderName::Via) else {
            return self.dropped(DropReason::ResponseMalformed);
        };
        if msg.has_conflicting_content_length() {
            return self.dropped(DropReason::ResponseMalformed);
        }
        let mut values = split_comma(first_via_header.value);
        let Some(Ok((first_offset, first_value))) = values.next() else {
            return self.dropped(DropReason::ResponseMalformed);
        };
        let Ok(top) = Via::parse(first_value) else {
            return self.dropped(DropReason::ResponseMalformed);
        };
        let branch = top.branch().unwrap_or_default();
        let sent_by_ours = match top.host {
            Host::Ipv4(a) => self.is_our_ip(IpAddr::V4(a), input.local),
            Host::Ipv6(a) => self.is_our_ip(IpAddr::V6(a), input.local),
            Host::Name(n) => self
                .config
                .domains
                .iter()
                .any(|d| d.as_bytes().eq_ignore_ascii_case(n)),
        };
        if !sent_by_ours {
            return self.dropped(DropReason::ResponseNotOurs);
        }
        if let Some((index, seq)) = group::parse_probe_branch(branch) {
            // Any final answer short of 5xx proves the target alive.
            if msg.status().is_some_and(|s| (200..500).contains(&s)) {
                self.health.record_answer(index, seq);
            }
            return self.dropped(DropReason::HealthAnswer);
        }
        if !branch.starts_with(branch::OUR_BRANCH_PREFIX) {
            return self.dropped(DropReason::ResponseNotOurs);
        }

        // The next Via: later in the same header line, or the next Via line.
        let bytes = msg.bytes();
        let (next, cut_from, cut_to) = match values.next() {
            Some(Ok((off, value))) => {
                let start = first_via_header.value_start as usize;
                (value, start + first_offset, start + off)
            }
            Some(Err(_)) => return self.dropped(DropReason::ResponseMalformed),
            None => {
                let Some(second) = msg.headers_named(HeaderName::Via).nth(1) else {
                    return self.dropped(DropReason::ResponseNoNextHop);
                };
                let Some(Ok((_, value))) = split_comma(second.value).next() else {
                    return self.dropped(DropReason::ResponseMalformed);
                };
                (
                    value,
                    first_via_header.start as usize,
                    first_via_header.end as usize,
                )
            }
        };
        let Ok(next) = Via::parse(next) else {
            return self.dropped(DropReason::ResponseMalformed);
        };
        let ip = match next.received() {
            Some(ip) => ip,
            None => match self.resolve(&next.host) {
                Some(ip) => ip,
                None => return self.dropped(DropReason::Unresolvable),
            },
        };
        if is_broadcast_or_multicast(ip) {
            return self.dropped(DropReason::Broadcast);
        }
        let port = match next.rport() {
            Rport::Value(p) => p,
            _ => next.port.unwrap_or(5060),
        };
        let transport = Transport::from_token(next.transport).unwrap_or(Transport::Udp);
        self.track_response(input, msg);
        let mut out = Out::new(buf);
        out.put(&bytes[..cut_from]);
        out.put(&bytes[cut_to..]);
        match out.finish() {
            Some(len) => {
                bump(&self.stats.forwarded_responses);
                Action::Forward {
                    to: SocketAddr::new(ip, port),
                    transport,
                    len,
                }
            }
            None => self.dropped(DropReason::Overflow),
        }
    }

    /// Writes a response of our own to the request whose headers are given (§8.2.6): Vias (the
    /// top one with received/rport), From, To (with our tag), Call-ID, CSeq copied.
    fn reply(
        &mut self,
        input: &Input<'_>,
        headers: &[Header<'_>],
        reject: &Reject,
        buf: &mut [u8],
    ) -> Action {
        let bytes = input.bytes;
        let Some(top_via_header) = headers.iter().find(|h| h.name == HeaderName::Via) else {
            return self.dropped(DropReason::NoVia);
        };
        let top_via = first_via(top_via_header.value);
        let mut out = Out::new(buf);
        out.put(b"SIP/2.0 ");
        out.put_u64(u64::from(reject.code));
        out.put(b" ");
        out.put_str(reject.reason);
        out.put(b"\r\n");
        // Our To tag: a hash of the request's identity (all of it, whatever the header order), so
        // retransmissions get the same tag and different requests different ones (§8.2.6.2).
        let mut tag_key = xxhash_rust::xxh3::Xxh3::with_seed(self.config.branch_secret);
        for h in headers.iter().filter(|h| {
            matches!(
                h.name,
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            )
        }) {
            tag_key.update(h.value);
        }
        let tag = tag_key.digest();
        for h in headers {
            let line = &bytes[h.start as usize..h.end as usize];
            match h.name {
                HeaderName::Via if std::ptr::eq(h, top_via_header) => match &top_via {
                    Some(via) => write_received_via(&mut out, bytes, h, via, input.source),
                    None => out.put(line),
                },
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    out.put(line);
                }
                HeaderName::To => {
                    out.put(line);
                    let has_tag = NameAddrView::parse(h.value)
                        .ok()
                        .is_some_and(|n| n.tag().is_some());
                    if !has_tag && reject.code > 100 {
                        // Insert `;tag=` before the line ending (and before folded CRLF).
                        let value_end = h.value_start as usize + h.value.len();
                        out.rewind(line.len());
                        out.put(&bytes[h.start as usize..value_end]);
                        out.put(b";tag=sd");
                        out.put_hex64(tag);
                        out.put(&bytes[value_end..h.end as usize]);
                    }
                }
                _ => {}
            }
        }
        match reject.extra {
            ExtraHeader::None => {}
            ExtraHeader::Unsupported => {
                for h in headers
                    .iter()
                    .filter(|h| h.name == HeaderName::ProxyRequire)
                {
                    out.put(b"Unsupported: ");
                    out.put(h.value);
                    out.put(b"\r\n");
                }
            }
            ExtraHeader::RetryAfter(s) => {
                out.put(b"Retry-After: ");
                out.put_u64(u64::from(s));
                out.put(b"\r\n");
            }
            ExtraHeader::Capabilities => {
                out.put(b"Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, INFO, UPDATE, PRACK, SUBSCRIBE, NOTIFY, REFER\r\nAccept: application/sdp\r\n");
            }
        }
        out.put(b"Server: sipd\r\nContent-Length: 0\r\n\r\n");
        let Some(len) = out.finish() else {
            return self.dropped(DropReason::Overflow);
        };
        self.stats.count_reply(reject.code);
        // §18.2.2 with RFC 3581: over TCP (and with rport) back to the source; else to the source
        // address and the sent-by port.
        let to = match (&top_via, input.transport) {
            (Some(via), Transport::Udp) if via.rport() == Rport::Absent => {
                SocketAddr::new(input.source.ip(), via.port.unwrap_or(5060))
            }
            _ => input.source,
        };
        // A spoofed broadcast or multicast source must not turn us into an amplifier.
        if is_broadcast_or_multicast(to.ip()) {
            return self.dropped(DropReason::Broadcast);
        }
        Action::Reply {
            to,
            transport: input.transport,
            code: reject.code,
            len,
        }
    }
}

fn capabilities() -> Reject {
    Reject {
        code: 200,
        reason: "OK",
        extra: ExtraHeader::Capabilities,
    }
}

fn method_label_index(method: Option<Method<'_>>) -> usize {
    match method {
        Some(Method::Invite) => 0,
        Some(Method::Ack) => 1,
        Some(Method::Bye) => 2,
        Some(Method::Cancel) => 3,
        Some(Method::Register) => 4,
        Some(Method::Options) => 5,
        Some(Method::Message) => 6,
        _ => 7,
    }
}

/// The first value of a Via header line.
fn first_via(value: &[u8]) -> Option<Via<'_>> {
    let (_, first) = split_comma(value).next()?.ok()?;
    Via::parse(first).ok()
}

/// The first value of a Via header line, and whether it is the line's only value.
fn first_via_alone(value: &[u8]) -> Option<(Via<'_>, bool)> {
    let mut values = split_comma(value);
    let (_, first) = values.next()?.ok()?;
    let via = Via::parse(first).ok()?;
    Some((via, values.next().is_none()))
}

/// The positions of the first, second and last Route values.
struct RouteValues {
    first: Option<RouteValue>,
    second: Option<RouteValue>,
    last: Option<RouteValue>,
}

fn route_values(msg: &Message<'_, '_>) -> RouteValues {
    let mut rv = RouteValues {
        first: None,
        second: None,
        last: None,
    };
    for (i, h) in msg.indexed_headers_named(HeaderName::Route) {
        for (offset, value) in split_comma(h.value).flatten() {
            let v = RouteValue {
                header: i,
                offset,
                len: value.len(),
            };
            if rv.first.is_none() {
                rv.first = Some(v);
            } else if rv.second.is_none() {
                rv.second = Some(v);
            }
            rv.last = Some(v);
        }
    }
    rv
}

fn route_uri_bytes<'a>(msg: &Message<'a, '_>, rv: RouteValue) -> Option<&'a [u8]> {
    let h = msg.headers().get(rv.header)?;
    let value = h.value.get(rv.offset..rv.offset + rv.len)?;
    NameAddrView::parse(value).ok().map(|n| n.uri_raw)
}

/// The host and port of a `sip:`/`sips:` URI, located without parsing the rest: the host runs
/// from after the userinfo (`@` appears nowhere else in a SIP URI) to `:`, `;`, `?` or the end.
/// `None` for other schemes or a port that does not parse.
fn sip_uri_hostport(uri: &[u8]) -> Option<(&[u8], Option<u16>)> {
    let after_scheme = |scheme: &[u8]| {
        uri.get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &uri[scheme.len()..])
    };
    let rest = after_scheme(b"sip:").or_else(|| after_scheme(b"sips:"))?;
    let hostport = memchr::memchr(b'@', rest).map_or(rest, |at| &rest[at + 1..]);
    let host_end = memchr::memchr3(b':', b';', b'?', hostport).unwrap_or(hostport.len());
    let (host, after) = hostport.split_at(host_end);
    let (port, after) = match after.strip_prefix(b":") {
        Some(p) => {
            let n = p
                .iter()
                .position(|c| !c.is_ascii_digit())
                .unwrap_or(p.len());
            (Some(parse_port(&p[..n]).ok()?), &p[n..])
        }
        None => (None, after),
    };
    matches!(after.first(), None | Some(b';' | b'?')).then_some((host, port))
}

fn route_uri<'a>(msg: &Message<'a, '_>, rv: RouteValue) -> Option<Uri<'a>> {
    let h = msg.headers().get(rv.header)?;
    let value = h.value.get(rv.offset..rv.offset + rv.len)?;
    NameAddrView::parse(value).ok()?.uri().ok()
}

/// Copies a list header line without one (or two) of its values; drops the line when nothing is
/// left.
fn write_without_value(
    out: &mut Out<'_>,
    bytes: &[u8],
    h: &Header<'_>,
    a: RouteValue,
    b: Option<RouteValue>,
) {
    // A line without a comma holds one value, the one removed: the line goes.
    if memchr::memchr(b',', h.value).is_none() {
        return;
    }
    let remaining: usize = split_comma(h.value)
        .flatten()
        .filter(|(off, _)| *off != a.offset && b.is_none_or(|b| *off != b.offset))
        .count();
    if remaining == 0 {
        return;
    }
    out.put(&bytes[h.start as usize..h.value_start as usize]);
    let mut first = true;
    for (off, value) in split_comma(h.value).flatten() {
        if off == a.offset || b.is_some_and(|b| off == b.offset) {
            continue;
        }
        if !first {
            out.put(b", ");
        }
        first = false;
        out.put(value);
    }
    out.put(b"\r\n");
}

/// Copies the top Via header line with `received` (when the sent-by differs from the source
/// address, or rport was requested) and the `rport` value filled in (RFC 3261 §18.2.1, RFC 3581).
pub(crate) fn write_received_via(
    out: &mut Out<'_>,
    bytes: &[u8],
    h: &Header<'_>,
    via: &Via<'_>,
    source: SocketAddr,
) {
    // `via` was parsed from this header's first value: it ends where its bytes end.
    let first_end = offset_in(bytes, via.raw()) + via.raw().len();
    if !(h.value_start as usize..=h.end as usize).contains(&first_end) {
        out.put(&bytes[h.start as usize..h.end as usize]);
        return;
    }
    let rport_empty = via.rport() == Rport::Empty;
    let sent_by_matches = match via.host {
        Host::Ipv4(a) => IpAddr::V4(a) == source.ip(),
        Host::Ipv6(a) => IpAddr::V6(a) == source.ip(),
        Host::Name(_) => false,
    };
    let add_received = (rport_empty || !sent_by_matches) && via.received().is_none();
    let mut pos = h.start as usize;
    if rport_empty && let Some(name) = via.rport_name() {
        let after = offset_in(bytes, name) + name.len();
        out.put(&bytes[pos..after]);
        out.put(b"=");
        out.put_u64(u64::from(source.port()));
        pos = after;
    }
    out.put(&bytes[pos..first_end]);
    if add_received {
        out.put(b";received=");
        match source.ip() {
            IpAddr::V4(a) => out.put_ip(IpAddr::V4(a)),
            // RFC 5118 §4.5: received carries an IPv6 address without brackets.
            IpAddr::V6(a) => {
                let mut s = writer::StackStr::<48>::new();
                let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{a}"));
                out.put(s.as_bytes());
            }
        }
    }
    out.put(&bytes[first_end..h.end as usize]);
}

fn is_broadcast_or_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    }
}

/// Looks `name` up lower-cased without allocating (names longer than 255 bytes never match).
fn with_lower<T>(name: &[u8], f: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; 255];
    let dst = buf.get_mut(..name.len())?;
    for (d, s) in dst.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    f(std::str::from_utf8(dst).ok()?)
}

#[cfg(test)]
mod tests {
    use super::{first_via_alone, sip_uri_hostport};
    use crate::sip::values::split_comma;
    use proptest::prelude::*;

    proptest! {
        /// A Via line called alone is one the general loop check splits into just that value.
        #[test]
        fn top_via_alone_means_one_split_value(
            extra in "[a-z0-9\\.;=,\"<> ]{0,24}",
        ) {
            let line = format!("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx{extra}");
            if let Some((via, alone)) = first_via_alone(line.as_bytes()) {
                let values: Vec<&[u8]> =
                    split_comma(line.as_bytes()).flatten().map(|(_, v)| v).collect();
                if alone {
                    prop_assert_eq!(values.len(), 1);
                    prop_assert_eq!(values[0], via.raw());
                }
            }
        }
    }

    #[test]
    fn sip_uri_host_and_port_are_located_without_a_parse() {
        let ok: [(&[u8], &[u8], Option<u16>); 5] = [
            (b"sip:edge.example.com;lr", b"edge.example.com", None),
            (
                b"SIPS:Edge.example.com:5061",
                b"Edge.example.com",
                Some(5061),
            ),
            (
                b"sip:u;x=1?y@h.example:5060;lr?h=v",
                b"h.example",
                Some(5060),
            ),
            (b"sip:user:pw@10.0.0.1", b"10.0.0.1", None),
            (b"sip:h?subject=x", b"h", None),
        ];
        for (uri, host, port) in ok {
            assert_eq!(sip_uri_hostport(uri), Some((host, port)), "{uri:?}");
        }
        // Not a SIP URI, an IPv6 reference (left to the parser), a port that does not parse, or
        // bytes after the port.
        for uri in [
            &b"tel:+4930123"[..],
            b"sip:[::1]",
            b"sip",
            b"sip:h:",
            b"sip:h:99999",
            b"sip:h:50x",
            b"sip:h:5060>",
        ] {
            assert_eq!(sip_uri_hostport(uri), None, "{uri:?}");
        }
    }
}
