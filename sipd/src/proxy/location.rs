//! What the proxy asks the location service (RFC 3261 §10, §16.5): where is the user of an
//! address of record in one of our domains now. The registrar implements it; tests use
//! [`StaticLocation`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::Transport;

/// A registered contact the proxy can forward to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactTarget {
    /// The contact URI: it becomes the Request-URI of the forwarded request.
    pub uri: Arc<[u8]>,
    /// Where to send (the contact's host and port, or where its REGISTER came from when the UA
    /// is behind NAT).
    pub addr: SocketAddr,
    pub transport: Transport,
    /// q-value in thousandths (1000 when absent).
    pub q: u16,
}

/// The outcome of a lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The contact chosen for this call (among the highest-q bindings, by Call-ID).
    Found(ContactTarget),
    /// The user exists but has no current binding (480 Temporarily Unavailable).
    NoBinding,
    /// No such user (the proxy goes on with number and domain routes, else 404).
    Unknown,
}

pub trait LocationService: Send + Sync {
    /// Looks up `user` at `domain` (domain compared case-insensitively) at time `now_ms`; when
    /// several bindings share the highest q, `call_id` picks one stably.
    fn lookup(&self, user: &[u8], domain: &[u8], now_ms: u64, call_id: &[u8]) -> Lookup;
}

/// A fixed table for tests and static deployments: user@domain -> contacts.
#[derive(Clone, Debug, Default)]
pub struct StaticLocation {
    /// Keyed by [`write_key`]: the user, a NUL, the lowercased domain.
    entries: HashMap<Vec<u8>, Vec<ContactTarget>>,
}

/// Writes the table key of `user` at `domain` into `buf`, which is exactly
/// `user.len() + 1 + domain.len()` bytes long.
fn write_key(user: &[u8], domain: &[u8], buf: &mut [u8]) {
    let (u, rest) = buf.split_at_mut(user.len());
    u.copy_from_slice(user);
    rest[0] = 0;
    for (d, s) in rest[1..].iter_mut().zip(domain) {
        *d = s.to_ascii_lowercase();
    }
}

impl StaticLocation {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user; an empty `contacts` makes a known user with no binding.
    pub fn insert(&mut self, user: &str, domain: &str, contacts: Vec<ContactTarget>) {
        let mut k = vec![0; user.len() + 1 + domain.len()];
        write_key(user.as_bytes(), domain.as_bytes(), &mut k);
        self.entries.insert(k, contacts);
    }
}

impl LocationService for StaticLocation {
    fn lookup(&self, user: &[u8], domain: &[u8], _now_ms: u64, call_id: &[u8]) -> Lookup {
        // The key is built on the stack (a lookup per request must not allocate) unless it is
        // unusually long.
        let len = user.len() + 1 + domain.len();
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let k = match stack.get_mut(..len) {
            Some(buf) => buf,
            None => {
                heap.resize(len, 0);
                &mut heap[..]
            }
        };
        write_key(user, domain, k);
        let k = &*k;
        match self.entries.get(k) {
            None => Lookup::Unknown,
            Some(contacts) if contacts.is_empty() => Lookup::NoBinding,
            Some(contacts) => {
                let best_q = contacts.iter().map(|c| c.q).max().unwrap_or(0);
                let top = || contacts.iter().filter(|c| c.q == best_q);
                let pick = xxhash_rust::xxh3::xxh3_64(call_id) as usize % top().count();
                Lookup::Found(
                    top()
                        .nth(pick)
                        .cloned()
                        .unwrap_or_else(|| contacts[0].clone()),
                )
            }
        }
    }
}
