//! Stateless nonces and nonce-count replay protection.
//!
//! **Nonce.** `hex(issued_ms:8 | generation:4 | serial:4 | mac:12)`, 56 hex digits, where
//! `mac = HMAC-SHA256(secret, issued_ms | generation | serial | realm)[..12]` and `serial` counts
//! the challenges of this process, so two challenges issued in the same millisecond (many clients
//! at once) never share a nonce and their `nc=00000001` answers are not taken for replays. Any worker verifies a nonce
//! with the secret alone: a bad MAC is a forged or tampered nonce; a good MAC older than the TTL
//! (or from an earlier generation, i.e. before a restart) is *stale* (RFC 2617 `stale=true`: the
//! client retries with the new nonce without asking its user again).
//!
//! **Nonce counts** ([`NonceCounts`]). A stateless nonce can be replayed until it expires, so the
//! highest `nc` accepted for each nonce is kept in a bounded table shared by every worker of the
//! process: `SHARDS` shards, each a small map behind its own mutex, touched only after a digest
//! response verified (so only holders of a valid password can fill it). Guarantee: **within one
//! process generation, no (nonce, nc) is accepted twice, and every accepted nc is higher than all
//! earlier accepted ones for that nonce** (out-of-order counts are refused rather than tracked in a
//! window). When a shard is full, expired nonces are dropped first; then the oldest entry is
//! evicted and the shard's *watermark* rises to its issue time: a nonce issued at or before the
//! watermark that is not in the table is answered stale, so eviction costs a re-challenge, never a
//! replay. Across restarts the generation changes, which makes every older nonce stale.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::digest::hex_encode;

/// Length of a nonce in hex digits.
pub const NONCE_LEN: usize = 56;
const HEAD_LEN: usize = 8 + 4 + 4;
const MAC_LEN: usize = 12;

/// Issues and verifies stateless nonces.
#[derive(Clone)]
pub struct NonceKey {
    mac: Hmac<Sha256>,
    realm: Box<[u8]>,
    generation: u32,
    ttl_ms: u64,
    /// Shared by clones, so every challenge of the process gets its own serial.
    serial: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKey")
            .field("generation", &self.generation)
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

/// What a received nonce is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours and fresh; issued at this time (ms).
    Valid { issued_ms: u64 },
    /// Ours but expired (or from before a restart): challenge again with `stale=true`.
    Stale,
    /// Not a nonce we issued (malformed, forged or tampered).
    Invalid,
}

impl NonceKey {
    pub fn new(secret: &[u8], realm: &str, generation: u32, ttl_ms: u64) -> NonceKey {
        // HMAC takes keys of any length.
        let mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| {
            Hmac::<Sha256>::new_from_slice(b"sipd").expect("HMAC accepts any key length")
        });
        NonceKey {
            mac,
            realm: realm.as_bytes().into(),
            generation,
            ttl_ms,
            serial: std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    fn tag(&self, head: &[u8; HEAD_LEN]) -> [u8; MAC_LEN] {
        let mut m = self.mac.clone();
        m.update(head);
        m.update(&self.realm);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// A new nonce issued at `now_ms`.
    pub fn issue(&self, now_ms: u64) -> [u8; NONCE_LEN] {
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut head = [0u8; HEAD_LEN];
        head[..8].copy_from_slice(&now_ms.to_be_bytes());
        head[8..12].copy_from_slice(&self.generation.to_be_bytes());
        head[12..16].copy_from_slice(&serial.to_be_bytes());
        let mut raw = [0u8; HEAD_LEN + MAC_LEN];
        raw[..HEAD_LEN].copy_from_slice(&head);
        raw[HEAD_LEN..].copy_from_slice(&self.tag(&head));
        let mut out = [0u8; NONCE_LEN];
        hex_encode(&raw, &mut out);
        out
    }

    /// Verifies a nonce received at `now_ms`.
    pub fn check(&self, nonce: &[u8], now_ms: u64) -> NonceCheck {
        let Some(raw) = hex_decode::<{ NONCE_LEN / 2 }>(nonce) else {
            return NonceCheck::Invalid;
        };
        let issued_ms = u64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
        let generation = u32::from_be_bytes(raw[8..12].try_into().unwrap_or_default());
        let mut head = [0u8; HEAD_LEN];
        head.copy_from_slice(&raw[..HEAD_LEN]);
        let expected = self.tag(&head);
        // Constant time: the comparison does not stop at the first differing byte.
        let diff = expected
            .iter()
            .zip(&raw[HEAD_LEN..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return NonceCheck::Invalid;
        }
        if generation != self.generation {
            return NonceCheck::Stale;
        }
        // A nonce from the future (clock stepped back) is accepted only within a second of skew.
        if issued_ms > now_ms.saturating_add(1000) || now_ms.saturating_sub(issued_ms) > self.ttl_ms
        {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid { issued_ms }
    }
}

fn hex_decode<const N: usize>(hex: &[u8]) -> Option<[u8; N]> {
    if hex.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    /// Nonce fingerprint -> (highest nc accepted, issue time).
    entries: HashMap<u128, (u32, u64)>,
    /// Nonces issued at or before this time and absent from `entries` were evicted: stale.
    watermark_ms: u64,
}

/// Outcome of recording a nonce count.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum NcCheck {
    /// Higher than every count accepted for this nonce: accepted and recorded.
    Fresh,
    /// Equal to or below a count already accepted: a replay.
    Replay,
    /// The nonce's history was evicted under pressure: answer stale so the client takes a new one.
    Evicted,
}

/// The highest nonce count accepted per nonce (see the module docs for what it guarantees).
pub struct NonceCounts {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
}

impl NonceCounts {
    /// Room for about `capacity` nonces in use at once (at least one per shard).
    pub fn new(capacity: usize) -> NonceCounts {
        NonceCounts {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Records `nc` for `nonce` (issued at `issued_ms`, valid for `ttl_ms`) at `now_ms`.
    pub fn record(
        &self,
        nonce: &[u8],
        issued_ms: u64,
        nc: u32,
        now_ms: u64,
        ttl_ms: u64,
    ) -> NcCheck {
        let fp = xxhash_rust::xxh3::xxh3_128(nonce);
        let shard = &self.shards[(fp as usize) % SHARDS];
        let mut s = shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = s.entries.get_mut(&fp) {
            if nc <= entry.0 {
                return NcCheck::Replay;
            }
            entry.0 = nc;
            return NcCheck::Fresh;
        }
        if issued_ms <= s.watermark_ms {
            return NcCheck::Evicted;
        }
        if s.entries.len() >= self.per_shard {
            s.entries
                .retain(|_, (_, issued)| now_ms.saturating_sub(*issued) <= ttl_ms);
        }
        if s.entries.len() >= self.per_shard {
            let oldest = s
                .entries
                .iter()
                .min_by_key(|(_, (_, issued))| *issued)
                .map(|(k, (_, issued))| (*k, *issued));
            if let Some((k, issued)) = oldest {
                s.entries.remove(&k);
                s.watermark_ms = s.watermark_ms.max(issued);
            }
            if issued_ms <= s.watermark_ms {
                return NcCheck::Evicted;
            }
        }
        s.entries.insert(fp, (nc, issued_ms));
        NcCheck::Fresh
    }

    /// Nonces currently tracked.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.entries.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_check_stale_tamper() {
        let key = NonceKey::new(b"secret", "biloxi.com", 7, 30_000);
        let n = key.issue(1_000_000);
        assert_eq!(
            key.check(&n, 1_000_500),
            NonceCheck::Valid {
                issued_ms: 1_000_000
            }
        );
        assert_eq!(key.check(&n, 1_030_001), NonceCheck::Stale);
        let mut t = n;
        t[5] = if t[5] == b'0' { b'1' } else { b'0' };
        assert_eq!(key.check(&t, 1_000_500), NonceCheck::Invalid);
        // Another worker with the same secret verifies it; another realm or secret does not.
        let other = NonceKey::new(b"secret", "biloxi.com", 7, 30_000);
        assert!(matches!(
            other.check(&n, 1_000_001),
            NonceCheck::Valid { .. }
        ));
        let realm = NonceKey::new(b"secret", "atlanta.com", 7, 30_000);
        assert_eq!(realm.check(&n, 1_000_001), NonceCheck::Invalid);
        // After a restart (new generation) the old nonce is stale, not invalid.
        let restarted = NonceKey::new(b"secret", "biloxi.com", 8, 30_000);
        assert_eq!(restarted.check(&n, 1_000_001), NonceCheck::Stale);
        assert_eq!(key.check(b"short", 0), NonceCheck::Invalid);
    }

    #[test]
    fn counts_reject_replays() {
        let c = NonceCounts::new(1000);
        assert_eq!(c.record(b"n1", 10, 1, 20, 1000), NcCheck::Fresh);
        assert_eq!(c.record(b"n1", 10, 1, 20, 1000), NcCheck::Replay);
        assert_eq!(c.record(b"n1", 10, 2, 20, 1000), NcCheck::Fresh);
        assert_eq!(c.record(b"n1", 10, 1, 20, 1000), NcCheck::Replay);
        assert_eq!(c.record(b"n2", 10, 1, 20, 1000), NcCheck::Fresh);
    }

    #[test]
    fn eviction_makes_old_nonces_stale_never_replayable() {
        // One entry per shard: the second nonce of a shard evicts the first.
        let c = NonceCounts::new(1);
        let mut accepted = Vec::new();
        for i in 0..500u64 {
            let nonce = format!("nonce-{i}");
            if c.record(nonce.as_bytes(), 100 + i, 1, 1000, 1_000_000) == NcCheck::Fresh {
                accepted.push((nonce, 100 + i));
            }
        }
        assert!(accepted.len() >= SHARDS);
        for (nonce, issued) in &accepted {
            assert_ne!(
                c.record(nonce.as_bytes(), *issued, 1, 1000, 1_000_000),
                NcCheck::Fresh,
                "{nonce} replayed"
            );
        }
    }
}

#[cfg(test)]
mod unique_nonce_tests {
    use super::*;

    #[test]
    fn challenges_in_the_same_millisecond_get_different_nonces() {
        let key = NonceKey::new(b"secret", "biloxi.example.com", 7, 300_000);
        let clone = key.clone();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(key.issue(1_000)), "nonce repeated");
            assert!(seen.insert(clone.issue(1_000)), "a clone repeated a nonce");
        }
        for n in &seen {
            assert!(matches!(
                key.check(n, 1_000),
                NonceCheck::Valid { issued_ms: 1_000 }
            ));
        }
        // Changing the serial (or anything under the MAC) makes it invalid.
        let mut tampered = key.issue(1_000);
        tampered[24] = if tampered[24] == b'0' { b'1' } else { b'0' };
        assert!(matches!(key.check(&tampered, 1_000), NonceCheck::Invalid));
    }
}
