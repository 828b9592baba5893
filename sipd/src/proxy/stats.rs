//! Per-worker counters. Each worker owns one [`ProxyStats`] and is its only writer, so a counter
//! is bumped with a plain load and store (no locked read-modify-write on the hot path); readers
//! (the metrics endpoint) load them from another thread and sum the workers' values.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sip::ErrorKind;

/// Why a message was dropped without a reply. Every drop is counted by reason.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not parseable as SIP and not answerable (no usable Via).
    Malformed,
    /// CRLF keep-alives (RFC 5626 §4.4.1) carry no message.
    KeepAlive,
    /// A request that cannot be answered because it has no Via.
    NoVia,
    /// An ACK that cannot be routed (the ACK for a final response we generated): absorbed.
    AckAbsorbed,
    /// A response whose top Via is not ours.
    ResponseNotOurs,
    /// A malformed response (responses are never answered).
    ResponseMalformed,
    /// A response with no Via left after ours (nobody to send it to).
    ResponseNoNextHop,
    /// A response whose next hop is a broadcast, multicast or unspecified address.
    Broadcast,
    /// A next hop whose host name is not in the static hosts table (no DNS on the fast path).
    Unresolvable,
    /// The message did not fit the transmit buffer.
    Overflow,
    /// The answer to one of our OPTIONS health probes: consumed.
    HealthAnswer,
}

impl DropReason {
    pub const ALL: [DropReason; 11] = [
        DropReason::Malformed,
        DropReason::KeepAlive,
        DropReason::NoVia,
        DropReason::AckAbsorbed,
        DropReason::ResponseNotOurs,
        DropReason::ResponseMalformed,
        DropReason::ResponseNoNextHop,
        DropReason::Broadcast,
        DropReason::Unresolvable,
        DropReason::Overflow,
        DropReason::HealthAnswer,
    ];

    /// Stable snake_case name: metrics label and documentation key.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::KeepAlive => "keepalive",
            DropReason::NoVia => "no_via",
            DropReason::AckAbsorbed => "ack_absorbed",
            DropReason::ResponseNotOurs => "response_not_ours",
            DropReason::ResponseMalformed => "response_malformed",
            DropReason::ResponseNoNextHop => "response_no_next_hop",
            DropReason::Broadcast => "broadcast",
            DropReason::Unresolvable => "unresolvable",
            DropReason::Overflow => "overflow",
            DropReason::HealthAnswer => "health_answer",
        }
    }
}

/// Request methods counted separately; everything else is "other".
pub const METHOD_LABELS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "MESSAGE", "other",
];
/// Status codes the proxy itself generates, counted separately.
pub const REPLY_CODES: [u16; 16] = [
    200, 302, 400, 401, 403, 404, 407, 416, 420, 423, 480, 482, 483, 500, 503, 505,
];
const PARSE_ERROR_KINDS: usize = 32;

/// Counters of one worker.
#[derive(Debug)]
pub struct ProxyStats {
    pub requests_by_method: [AtomicU64; METHOD_LABELS.len()],
    /// Responses received, by class (index 0 = 1xx ... 5 = 6xx).
    pub responses_by_class: [AtomicU64; 6],
    pub forwarded_requests: AtomicU64,
    pub forwarded_responses: AtomicU64,
    pub replies_by_code: [AtomicU64; REPLY_CODES.len()],
    pub drops: [AtomicU64; DropReason::ALL.len()],
    pub parse_errors: [AtomicU64; PARSE_ERROR_KINDS],
}

impl Default for ProxyStats {
    fn default() -> Self {
        ProxyStats {
            requests_by_method: Default::default(),
            responses_by_class: Default::default(),
            forwarded_requests: AtomicU64::new(0),
            forwarded_responses: AtomicU64::new(0),
            replies_by_code: Default::default(),
            drops: Default::default(),
            parse_errors: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Single-writer increment: a load and a store, not a locked RMW.
#[inline]
pub fn bump(counter: &AtomicU64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

impl ProxyStats {
    pub fn drop_count(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    pub fn reply_count(&self, code: u16) -> u64 {
        REPLY_CODES
            .iter()
            .position(|&c| c == code)
            .map_or(0, |i| self.replies_by_code[i].load(Ordering::Relaxed))
    }

    pub(crate) fn count_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize]);
    }

    pub(crate) fn count_reply(&self, code: u16) {
        if let Some(i) = REPLY_CODES.iter().position(|&c| c == code) {
            bump(&self.replies_by_code[i]);
        }
    }

    pub(crate) fn count_parse_error(&self, kind: ErrorKind) {
        bump(&self.parse_errors[parse_error_index(kind)]);
    }

    pub fn parse_error_count(&self, kind: ErrorKind) -> u64 {
        self.parse_errors[parse_error_index(kind)].load(Ordering::Relaxed)
    }
}

/// ErrorKind is a fieldless enum; its discriminant indexes the counters (bounded for safety).
fn parse_error_index(kind: ErrorKind) -> usize {
    (kind as usize).min(PARSE_ERROR_KINDS - 1)
}
