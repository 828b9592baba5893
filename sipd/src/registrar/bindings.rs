//! The location table: address-of-record -> its current contact bindings (RFC 3261 §10.3).
//!
//! **Shape.** A [`papaya`] concurrent hash map from the canonical AOR key (`user@host`, the user
//! unescaped, the host lower-cased) to an immutable boxed slice of [`Binding`]s. Lookups (every
//! worker, every request for one of our users) are lock-free: an epoch guard, a hash probe and a
//! read of the slice; nothing is allocated unless the contact carries URI headers. A REGISTER
//! builds the new slice from the old one and installs it with one compare-and-swap
//! ([`Bindings::update`]); a concurrent update of the same AOR retries on the newer slice, so
//! the §10.3 rules (Call-ID/CSeq ordering, all-or-nothing) always see a consistent record.
//!
//! **Bounds.** At most `capacity` bindings are stored in all. The count is reserved before an
//! update that grows a record becomes visible and released when bindings go (refresh, removal,
//! expiry), so it is exact and never overshoots; a REGISTER that would exceed it fails with
//! [`UpdateError::Full`] (503 upstream). Expired bindings are invisible to lookups at once and
//! freed when their AOR is next updated or by [`Bindings::sweep`] (run it every few seconds off
//! the packet path).

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use papaya::{Compute, HashMap, Operation};

use crate::proxy::Transport;
use crate::proxy::location::{ContactTarget, LocationService, Lookup};
use crate::sip::uri::unescape_into;

/// Longest canonical AOR key (`user@host`); longer AORs are refused (400) and never found.
pub const MAX_AOR_LEN: usize = 256;

/// One contact bound to an AOR. About 72 bytes inline plus the shared URI bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as registered (URI parameters and escaped headers kept).
    pub uri: Arc<[u8]>,
    /// Where requests for this contact are sent.
    pub addr: SocketAddr,
    /// Wall-clock expiry.
    pub expires_at_ms: u64,
    /// Keyed hash of the Call-ID of the REGISTER that last set it (§10.3 ordering).
    pub call_id_hash: u64,
    pub cseq: u32,
    /// q in thousandths (1000 when absent).
    pub q: u16,
    pub transport: Transport,
    /// A SIP/SIPS contact the proxy can forward to (other schemes are stored and listed only).
    pub routable: bool,
}

impl Binding {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms > now_ms
    }

    /// Remaining lifetime in whole seconds, rounded up.
    pub fn remaining_s(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms).div_ceil(1000)
    }

    /// The URI to put in a Request-URI: without `?headers` (RFC 3261 §19.1.5).
    pub fn target_uri(&self) -> Arc<[u8]> {
        match memchr::memchr(b'?', &self.uri) {
            None => self.uri.clone(),
            Some(q) => Arc::from(&self.uri[..q]),
        }
    }

    /// What the proxy forwards to for this binding.
    pub fn target(&self) -> ContactTarget {
        ContactTarget {
            uri: self.target_uri(),
            addr: self.addr,
            transport: self.transport,
            q: self.q,
        }
    }
}

/// One contact of a REGISTER, already checked.
#[derive(Copy, Clone, Debug)]
pub struct ContactUpdate<'a> {
    pub uri: &'a [u8],
    pub addr: SocketAddr,
    pub transport: Transport,
    pub q: u16,
    pub routable: bool,
    /// Granted lifetime in seconds; 0 removes the binding.
    pub expires_s: u32,
}

/// A REGISTER's change to one AOR.
#[derive(Copy, Clone, Debug)]
pub struct Update<'a> {
    /// Canonical AOR key ([`aor_key`]).
    pub aor: &'a [u8],
    pub call_id_hash: u64,
    pub cseq: u32,
    pub now_ms: u64,
    /// `Contact: *` with `Expires: 0`: remove every binding.
    pub remove_all: bool,
    pub contacts: &'a [ContactUpdate<'a>],
    /// Most bindings one AOR may hold.
    pub max_per_aor: usize,
}

/// Why an update was refused; nothing was changed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum UpdateError {
    /// A binding was last set by the same Call-ID with a higher (or, for `*`, equal) CSeq.
    StaleCSeq,
    /// The table holds `capacity` bindings.
    Full,
    /// The AOR would hold more than `max_per_aor` bindings.
    TooManyContacts,
}

enum Abort {
    Err(UpdateError),
    /// Nothing stored before or after (a query, or removing what is not there).
    Empty,
}

/// A cheap keyed hasher for AOR keys: one xxh3 call per key.
#[derive(Clone, Copy, Debug)]
pub struct AorHashBuilder(u64);

pub struct AorHasher {
    seed: u64,
    state: u64,
}

impl Hasher for AorHasher {
    fn finish(&self) -> u64 {
        self.state
    }
    fn write(&mut self, bytes: &[u8]) {
        self.state = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.seed ^ self.state);
    }
    fn write_usize(&mut self, n: usize) {
        self.state = self.state.rotate_left(17) ^ (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl BuildHasher for AorHashBuilder {
    type Hasher = AorHasher;
    fn build_hasher(&self) -> AorHasher {
        AorHasher {
            seed: self.0,
            state: 0,
        }
    }
}

/// The shared location table.
pub struct Bindings {
    map: HashMap<Box<[u8]>, Box<[Binding]>, AorHashBuilder>,
    count: AtomicUsize,
    capacity: usize,
}

impl std::fmt::Debug for Bindings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bindings")
            .field("bindings", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

/// The canonical AOR key: the user unescaped (`%41` = `A`; case kept), `@`, the host
/// lower-cased; `None` if longer than [`MAX_AOR_LEN`] or badly escaped.
pub fn aor_key<'b>(user: &[u8], host: &[u8], buf: &'b mut [u8; MAX_AOR_LEN]) -> Option<&'b [u8]> {
    let n = if memchr::memchr(b'%', user).is_some() {
        unescape_into(user, buf).ok()?
    } else {
        buf.get_mut(..user.len())?.copy_from_slice(user);
        user.len()
    };
    let end = n + 1 + host.len();
    let dst = buf.get_mut(n..end)?;
    dst[0] = b'@';
    for (d, s) in dst[1..].iter_mut().zip(host) {
        *d = s.to_ascii_lowercase();
    }
    Some(&buf[..end])
}

/// Picks the contact for a call among the live, routable bindings with the highest q: the one
/// with the highest rendezvous hash of (Call-ID, contact), so one call's requests agree and a
/// contact leaving moves only its own calls (the proxy's group rule, with equal weights).
pub fn pick<'b>(bindings: &'b [Binding], now_ms: u64, call_id: &[u8]) -> Option<&'b Binding> {
    let live = || bindings.iter().filter(|b| b.routable && b.is_live(now_ms));
    let best_q = live().map(|b| b.q).max()?;
    let mut top = live().filter(|b| b.q == best_q);
    let first = top.next()?;
    let Some(second) = top.next() else {
        return Some(first);
    };
    let key = xxhash_rust::xxh3::xxh3_64(call_id);
    let score = |b: &Binding| xxhash_rust::xxh3::xxh3_64_with_seed(&b.uri, key);
    let mut best = if score(second) > score(first) {
        second
    } else {
        first
    };
    let mut best_score = score(best);
    for b in top {
        let s = score(b);
        if s > best_score {
            best = b;
            best_score = s;
        }
    }
    Some(best)
}

/// Two contact URIs name the same binding (RFC 3261 §19.1.4, simplified): equal ignoring the
/// case of the scheme and host (byte-exact user and parameters).
pub fn same_contact(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true;
    }
    // Scheme and host are case-insensitive: compare the part up to the end of the host that way.
    let host_end = |u: &[u8]| {
        let at = memchr::memchr(b'@', u).map_or(0, |i| i + 1);
        at + u[at..]
            .iter()
            .position(|&c| matches!(c, b';' | b'?' | b':' | b'>'))
            .unwrap_or(u.len() - at)
    };
    let (ea, eb) = (host_end(a), host_end(b));
    let user_end = |u: &[u8]| memchr::memchr(b'@', u).map_or(0, |i| i);
    ea == eb
        && user_end(a) == user_end(b)
        && {
            let ua = user_end(a);
            let colon = memchr::memchr(b':', a).unwrap_or(0);
            a[..colon].eq_ignore_ascii_case(&b[..colon])
                && a[colon..ua] == b[colon..ua]
                && a[ua..ea].eq_ignore_ascii_case(&b[ua..ea])
        }
        && a[ea..] == b[eb..]
}

/// The §10.3 step 7 rules: the new binding list of one AOR, or why the REGISTER fails.
fn apply(old: &[Binding], u: &Update<'_>) -> Result<Vec<Binding>, UpdateError> {
    let mut new: Vec<Binding> = old
        .iter()
        .filter(|b| b.is_live(u.now_ms))
        .cloned()
        .collect();
    if u.remove_all {
        if new
            .iter()
            .any(|b| b.call_id_hash == u.call_id_hash && u.cseq <= b.cseq)
        {
            return Err(UpdateError::StaleCSeq);
        }
        new.clear();
        return Ok(new);
    }
    for c in u.contacts {
        let existing = new.iter().position(|b| same_contact(&b.uri, c.uri));
        if let Some(i) = existing
            && new[i].call_id_hash == u.call_id_hash
        {
            if u.cseq < new[i].cseq {
                return Err(UpdateError::StaleCSeq);
            }
            if u.cseq == new[i].cseq {
                // A retransmission of the REGISTER that set it: already applied.
                continue;
            }
        }
        if c.expires_s == 0 {
            if let Some(i) = existing {
                new.remove(i);
            }
            continue;
        }
        let binding = Binding {
            uri: match existing {
                Some(i) if *new[i].uri == *c.uri => new[i].uri.clone(),
                _ => Arc::from(c.uri),
            },
            addr: c.addr,
            expires_at_ms: u.now_ms + u64::from(c.expires_s) * 1000,
            call_id_hash: u.call_id_hash,
            cseq: u.cseq,
            q: c.q,
            transport: c.transport,
            routable: c.routable,
        };
        match existing {
            Some(i) => new[i] = binding,
            None => new.push(binding),
        }
    }
    if new.len() > u.max_per_aor && new.len() > old.len() {
        return Err(UpdateError::TooManyContacts);
    }
    Ok(new)
}

impl Bindings {
    /// An empty table holding at most `capacity` bindings; `seed` keys the AOR hash.
    pub fn new(capacity: usize, seed: u64) -> Bindings {
        Bindings {
            map: HashMap::builder()
                .hasher(AorHashBuilder(seed))
                .capacity(capacity.min(1 << 16))
                .resize_mode(papaya::ResizeMode::Blocking)
                .build(),
            count: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Bindings stored (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// AORs with at least one stored binding.
    pub fn aor_count(&self) -> usize {
        self.map.len()
    }

    fn reserve(&self, n: usize) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                c.checked_add(n).filter(|&t| t <= self.capacity)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.count.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Applies a REGISTER's change atomically and calls `f` with the AOR's bindings afterwards
    /// (expired ones dropped), e.g. to write the 200 OK.
    pub fn update<R>(
        &self,
        u: &Update<'_>,
        f: impl FnOnce(&[Binding]) -> R,
    ) -> Result<R, UpdateError> {
        let guard = self.map.guard();
        // Bindings reserved for the growth of the last computed record; adjusted on every retry.
        let mut reserved = 0usize;
        let result = self.map.compute(
            Box::from(u.aor),
            |entry| {
                let old: &[Binding] = entry.map_or(&[], |(_, v)| v);
                let new = match apply(old, u) {
                    Ok(new) => new,
                    Err(e) => return Operation::Abort(Abort::Err(e)),
                };
                let growth = new.len().saturating_sub(old.len());
                if growth > reserved {
                    if !self.reserve(growth - reserved) {
                        return Operation::Abort(Abort::Err(UpdateError::Full));
                    }
                } else {
                    self.release(reserved - growth);
                }
                reserved = growth;
                match (new.is_empty(), entry.is_some()) {
                    (true, false) => Operation::Abort(Abort::Empty),
                    (true, true) => Operation::Remove,
                    (false, _) => Operation::Insert(new.into_boxed_slice()),
                }
            },
            &guard,
        );
        match result {
            Compute::Inserted(_, new) => Ok(f(new)),
            Compute::Updated {
                old: (_, old),
                new: (_, new),
            } => {
                self.release(old.len().saturating_sub(new.len()));
                Ok(f(new))
            }
            Compute::Removed(_, old) => {
                self.release(old.len());
                Ok(f(&[]))
            }
            Compute::Aborted(Abort::Empty) => {
                self.release(reserved);
                Ok(f(&[]))
            }
            Compute::Aborted(Abort::Err(e)) => {
                self.release(reserved);
                Err(e)
            }
        }
    }

    /// Calls `f` with the AOR's stored bindings (possibly expired ones too; check
    /// [`Binding::is_live`]); an unknown AOR gives an empty slice.
    pub fn with<R>(&self, aor: &[u8], f: impl FnOnce(&[Binding]) -> R) -> R {
        let guard = self.map.guard();
        f(self.map.get(aor, &guard).map_or(&[], |v| &**v))
    }

    /// Calls `f` for every AOR and its stored bindings (a consistent slice per AOR; concurrent
    /// updates may or may not be seen).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[Binding])) {
        let guard = self.map.guard();
        for (k, v) in self.map.iter(&guard) {
            f(k, v);
        }
    }

    /// Frees expired bindings; returns how many were removed.
    pub fn sweep(&self, now_ms: u64) -> usize {
        let guard = self.map.guard();
        let mut removed = 0;
        for (key, value) in self.map.iter(&guard) {
            if value.iter().all(|b| b.is_live(now_ms)) {
                continue;
            }
            let result = self.map.compute(
                key.clone(),
                |entry| match entry {
                    None => Operation::Abort(()),
                    Some((_, v)) => {
                        let live: Vec<Binding> =
                            v.iter().filter(|b| b.is_live(now_ms)).cloned().collect();
                        if live.len() == v.len() {
                            Operation::Abort(())
                        } else if live.is_empty() {
                            Operation::Remove
                        } else {
                            Operation::Insert(live.into_boxed_slice())
                        }
                    }
                },
                &guard,
            );
            let n = match result {
                Compute::Updated {
                    old: (_, old),
                    new: (_, new),
                } => old.len() - new.len(),
                Compute::Removed(_, old) => old.len(),
                _ => 0,
            };
            self.release(n);
            removed += n;
        }
        removed
    }

    /// Installs a record read back from the journal (replacing what the AOR had). Expired
    /// bindings are skipped; returns `false` (nothing installed) when the table is full.
    pub fn restore(&self, aor: &[u8], bindings: Vec<Binding>, now_ms: u64) -> bool {
        let live: Vec<Binding> = bindings.into_iter().filter(|b| b.is_live(now_ms)).collect();
        if live.is_empty() {
            let guard = self.map.guard();
            if let Some(old) = self.map.remove(aor, &guard) {
                self.release(old.len());
            }
            return true;
        }
        if !self.reserve(live.len()) {
            return false;
        }
        let guard = self.map.guard();
        if let Some(old) = self
            .map
            .insert(Box::from(aor), live.into_boxed_slice(), &guard)
        {
            self.release(old.len());
        }
        true
    }

    /// Heap and table bytes per stored binding, computed from the structure (the allocator's own
    /// overhead not included; see the registrar bench for a measured figure).
    pub fn estimated_bytes(&self) -> usize {
        let guard = self.map.guard();
        let mut bytes = 0;
        for (k, v) in self.map.iter(&guard) {
            // papaya: one heap entry per key/value pair plus an 8-byte slot and a metadata byte
            // (at its load factor about 2 of each per entry).
            bytes += size_of::<(Box<[u8]>, Box<[Binding]>)>() + 2 * 9;
            bytes += k.len() + std::mem::size_of_val::<[Binding]>(v);
            bytes += v.iter().map(|b| 16 + b.uri.len()).sum::<usize>();
        }
        bytes
    }
}

impl LocationService for Bindings {
    fn lookup(&self, user: &[u8], domain: &[u8], now_ms: u64, call_id: &[u8]) -> Lookup {
        let mut buf = [0u8; MAX_AOR_LEN];
        let Some(key) = aor_key(user, domain, &mut buf) else {
            return Lookup::Unknown;
        };
        let guard = self.map.guard();
        match self.map.get(key, &guard) {
            None => Lookup::Unknown,
            Some(bindings) => match pick(bindings, now_ms, call_id) {
                Some(b) => Lookup::Found(b.target()),
                None => Lookup::NoBinding,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(uri: &str, expires_s: u32, q: u16) -> ContactUpdate<'_> {
        ContactUpdate {
            uri: uri.as_bytes(),
            addr: "192.0.2.4:5060".parse().unwrap(),
            transport: Transport::Udp,
            q,
            routable: true,
            expires_s,
        }
    }

    fn update<'a>(
        aor: &'a [u8],
        call: u64,
        cseq: u32,
        now_ms: u64,
        contacts: &'a [ContactUpdate<'a>],
    ) -> Update<'a> {
        Update {
            aor,
            call_id_hash: call,
            cseq,
            now_ms,
            remove_all: false,
            contacts,
            max_per_aor: 4,
        }
    }

    fn uris(t: &Bindings, aor: &[u8], now: u64) -> Vec<String> {
        t.with(aor, |b| {
            b.iter()
                .filter(|b| b.is_live(now))
                .map(|b| String::from_utf8_lossy(&b.uri).into_owned())
                .collect()
        })
    }

    #[test]
    fn add_refresh_remove_and_ordering() {
        let t = Bindings::new(10, 1);
        let c1 = [contact("sip:bob@192.0.2.4", 3600, 1000)];
        t.update(&update(b"bob@biloxi.com", 1, 1, 0, &c1), |_| ())
            .unwrap();
        assert_eq!(t.len(), 1);
        // Same Call-ID, lower CSeq: refused; same CSeq: a retransmission, no change.
        let c2 = [contact("sip:bob@192.0.2.4", 60, 1000)];
        assert_eq!(
            t.update(&update(b"bob@biloxi.com", 1, 0, 0, &c2), |_| ()),
            Err(UpdateError::StaleCSeq)
        );
        t.update(&update(b"bob@biloxi.com", 1, 1, 0, &c2), |_| ())
            .unwrap();
        t.with(b"bob@biloxi.com", |b| {
            assert_eq!(b[0].expires_at_ms, 3_600_000)
        });
        // Higher CSeq refreshes; another Call-ID may update with any CSeq.
        t.update(&update(b"bob@biloxi.com", 1, 2, 0, &c2), |_| ())
            .unwrap();
        t.with(b"bob@biloxi.com", |b| {
            assert_eq!(b[0].expires_at_ms, 60_000)
        });
        let c3 = [contact("SIP:bob@192.0.2.4", 0, 1000)];
        t.update(&update(b"bob@biloxi.com", 2, 1, 0, &c3), |b| {
            assert!(b.is_empty())
        })
        .unwrap();
        assert_eq!(t.len(), 0);
        assert_eq!(t.aor_count(), 0);
    }

    #[test]
    fn capacity_is_exact() {
        let t = Bindings::new(2, 1);
        let two = [contact("sip:a@h", 60, 1000), contact("sip:b@h", 60, 1000)];
        t.update(&update(b"x@d", 1, 1, 0, &two), |_| ()).unwrap();
        let one = [contact("sip:c@h", 60, 1000)];
        assert_eq!(
            t.update(&update(b"y@d", 1, 1, 0, &one), |_| ()),
            Err(UpdateError::Full)
        );
        // A refresh at capacity still works.
        t.update(&update(b"x@d", 1, 2, 0, &two), |_| ()).unwrap();
        assert_eq!(t.len(), 2);
        // Expired bindings are freed by the next update of their AOR or by a sweep.
        assert_eq!(t.sweep(60_000), 2);
        assert_eq!(t.len(), 0);
        t.update(&update(b"y@d", 1, 1, 0, &one), |_| ()).unwrap();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn lookup_prefers_q_and_is_stable_per_call() {
        let t = Bindings::new(10, 1);
        let cs = [
            contact("sip:bob@192.0.2.1", 60, 500),
            contact("sip:bob@192.0.2.2", 60, 900),
            contact("sip:bob@192.0.2.3", 60, 900),
        ];
        t.update(&update(b"bob@biloxi.com", 1, 1, 0, &cs), |_| ())
            .unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..64 {
            let call = format!("call-{i}");
            let Lookup::Found(a) = t.lookup(b"bob", b"Biloxi.COM", 10, call.as_bytes()) else {
                panic!()
            };
            let Lookup::Found(b) = t.lookup(b"bob", b"biloxi.com", 20, call.as_bytes()) else {
                panic!()
            };
            assert_eq!(a, b);
            assert_eq!(a.q, 900);
            seen.insert(a.uri.to_vec());
        }
        assert_eq!(seen.len(), 2);
        assert_eq!(
            t.lookup(b"bob", b"biloxi.com", 60_000, b"c"),
            Lookup::NoBinding
        );
        assert_eq!(t.lookup(b"alice", b"biloxi.com", 0, b"c"), Lookup::Unknown);
        assert_eq!(uris(&t, b"bob@biloxi.com", 0).len(), 3);
    }

    #[test]
    fn keys_and_contact_equality() {
        let mut buf = [0u8; MAX_AOR_LEN];
        assert_eq!(
            aor_key(b"b%6Fb", b"BILOXI.com", &mut buf).unwrap(),
            b"bob@biloxi.com"
        );
        let long = vec![b'a'; 300];
        assert!(aor_key(&long, b"x", &mut buf).is_none());
        assert!(same_contact(
            b"sip:bob@Host.COM;transport=tcp",
            b"SIP:bob@host.com;transport=tcp"
        ));
        assert!(!same_contact(b"sip:Bob@host.com", b"sip:bob@host.com"));
        assert!(!same_contact(
            b"sip:bob@host.com;a=1",
            b"sip:bob@host.com;a=2"
        ));
    }
}
