//! Registrar counters, shared by every worker (atomic adds: the REGISTER path is not the
//! per-packet forwarding path). Replies by code are also counted in each worker's `ProxyStats`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why an authentication attempt failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum AuthFailure {
    /// No credentials at all: the normal first challenge.
    Missing,
    /// Credentials in a scheme other than Digest (RFC 4475 regaut01).
    UnknownScheme,
    /// Digest credentials for another realm.
    WrongRealm,
    /// An algorithm we do not offer (or `-sess`).
    BadAlgorithm,
    /// Missing or malformed digest parameters (400).
    Malformed,
    /// The digest-uri is not the Request-URI (400).
    UriMismatch,
    /// A nonce we did not issue.
    TamperedNonce,
    /// An expired nonce (answered `stale=true`).
    StaleNonce,
    /// A nonce count already seen for that nonce.
    Replay,
    /// qop missing where it is required.
    QopRequired,
    /// No credentials for this user, realm and algorithm.
    UnknownUser,
    /// The response did not match.
    WrongPassword,
    /// Authenticated, but not as the AOR's (or the From's) user (403).
    Forbidden,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 13] = [
        AuthFailure::Missing,
        AuthFailure::UnknownScheme,
        AuthFailure::WrongRealm,
        AuthFailure::BadAlgorithm,
        AuthFailure::Malformed,
        AuthFailure::UriMismatch,
        AuthFailure::TamperedNonce,
        AuthFailure::StaleNonce,
        AuthFailure::Replay,
        AuthFailure::QopRequired,
        AuthFailure::UnknownUser,
        AuthFailure::WrongPassword,
        AuthFailure::Forbidden,
    ];

    /// Stable snake_case metric label.
    pub fn name(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::UnknownScheme => "unknown_scheme",
            AuthFailure::WrongRealm => "wrong_realm",
            AuthFailure::BadAlgorithm => "bad_algorithm",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UriMismatch => "uri_mismatch",
            AuthFailure::TamperedNonce => "tampered_nonce",
            AuthFailure::StaleNonce => "stale_nonce",
            AuthFailure::Replay => "replay",
            AuthFailure::QopRequired => "qop_required",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::WrongPassword => "wrong_password",
            AuthFailure::Forbidden => "forbidden",
        }
    }
}

/// Counters of the registrar, authenticator and redirect server.
#[derive(Debug, Default)]
pub struct RegistrarStats {
    /// REGISTERs handled (any outcome).
    pub registers: AtomicU64,
    /// REGISTERs answered 200.
    pub registers_ok: AtomicU64,
    /// Queries (REGISTER without Contact) answered 200.
    pub queries: AtomicU64,
    /// REGISTERs refused because the table was full (503).
    pub capacity_full: AtomicU64,
    /// REGISTERs refused by the §10.3 Call-ID/CSeq ordering rule.
    pub stale_cseq: AtomicU64,
    /// REGISTERs refused with 423 Interval Too Brief.
    pub interval_too_brief: AtomicU64,
    /// REGISTERs refused because the AOR would hold too many contacts.
    pub too_many_contacts: AtomicU64,
    pub auth_ok: AtomicU64,
    pub auth_failures: [AtomicU64; AuthFailure::ALL.len()],
    /// Requests answered 302 by the redirect server.
    pub redirects: AtomicU64,
    /// ACKs for our own final responses, absorbed.
    pub acks_absorbed: AtomicU64,
}

impl RegistrarStats {
    pub(crate) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn auth_failed(&self, why: AuthFailure) {
        Self::add(&self.auth_failures[why as usize]);
    }

    pub fn auth_failure_count(&self, why: AuthFailure) -> u64 {
        self.auth_failures[why as usize].load(Ordering::Relaxed)
    }

    /// Every counter as `(metric name, label, value)`, for the metrics endpoint.
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut v = vec![
            ("sipd_registrar_registers_total", "", get(&self.registers)),
            (
                "sipd_registrar_registers_ok_total",
                "",
                get(&self.registers_ok),
            ),
            ("sipd_registrar_queries_total", "", get(&self.queries)),
            (
                "sipd_registrar_capacity_full_total",
                "",
                get(&self.capacity_full),
            ),
            ("sipd_registrar_stale_cseq_total", "", get(&self.stale_cseq)),
            (
                "sipd_registrar_interval_too_brief_total",
                "",
                get(&self.interval_too_brief),
            ),
            (
                "sipd_registrar_too_many_contacts_total",
                "",
                get(&self.too_many_contacts),
            ),
            ("sipd_auth_ok_total", "", get(&self.auth_ok)),
            ("sipd_redirects_total", "", get(&self.redirects)),
            (
                "sipd_registrar_acks_absorbed_total",
                "",
                get(&self.acks_absorbed),
            ),
        ];
        for why in AuthFailure::ALL {
            v.push((
                "sipd_auth_failures_total",
                why.name(),
                self.auth_failure_count(why),
            ));
        }
        v
    }
}
