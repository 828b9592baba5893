//! Hashed keys the proxy hands the table: the table never sees SIP bytes, so it does not depend on
//! the parser.
//!
//! All hashes are xxh3-64 with a per-process random seed. xxh3 because its output is specified
//! and stable (the same on every platform and version, so a key computed by one worker matches
//! another's), it is among the fastest hashes on the short inputs SIP has (Call-IDs of 10-60 bytes,
//! tags of 6-32), and it is seedable: the seed comes from the standard library's random hasher
//! state at first use, so a caller who picks Call-IDs cannot aim them at one probe window.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Tag hashes keep bit 63 clear so a slot's `to` field can hold "no tag yet" sentinels.
pub(crate) const TAG_MASK: u64 = !(1 << 63);

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x5eed_d1a1_0600_0001);
        h.finish()
    })
}

/// Domain separation so a Call-ID and a tag with the same bytes hash differently.
const TAG_DOMAIN: u64 = 0x7a67_7a67_7a67_7a67;

pub(crate) fn hash_call_id(call_id: &[u8]) -> u64 {
    xxh3_64_with_seed(call_id, seed())
}

/// The hash of one tag (From or To). Never 0, bit 63 clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tag(u64);

impl Tag {
    /// Hash a tag's bytes.
    pub fn new(tag: &[u8]) -> Self {
        Self::from_hash(xxh3_64_with_seed(tag, seed() ^ TAG_DOMAIN))
    }

    /// Build from a precomputed 64-bit hash (tests, or a caller with its own hash).
    pub fn from_hash(h: u64) -> Self {
        let h = h & TAG_MASK;
        Tag(if h == 0 { 1 } else { h })
    }

    /// The hash value.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Identifies a call, i.e. one INVITE before any To tag exists: Call-ID and the caller's From tag.
/// Every dialog the INVITE creates (several when downstream forks) belongs to this call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CallKey {
    pub(crate) cid: u64,
    pub(crate) from: u64,
}

impl CallKey {
    /// Hash the INVITE's Call-ID and From tag.
    pub fn new(call_id: &[u8], from_tag: &[u8]) -> Self {
        CallKey {
            cid: hash_call_id(call_id),
            from: Tag::new(from_tag).0,
        }
    }

    /// Build from precomputed hashes (tests and benches).
    pub fn from_hashes(call_id_hash: u64, from_tag: Tag) -> Self {
        CallKey {
            cid: call_id_hash,
            from: from_tag.0,
        }
    }

    /// The dialog this call has with the UAS that answered with `to_tag`.
    pub fn dialog(self, to_tag: Tag) -> DialogKey {
        DialogKey {
            cid: self.cid,
            a: self.from,
            b: to_tag.0,
        }
    }
}

/// Identifies a dialog (RFC 3261 §12): Call-ID and both tags, 64 bits of hash each.
///
/// The two tags are compared **unordered**: a BYE from the callee carries the tags swapped
/// (its From tag is the callee's), and `DialogKey::new(call_id, from, to)` built from either
/// direction's message finds the same dialog. Only the Call-ID hash picks the probe window, so all
/// dialogs of one call (forks) share the window of the call itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub(crate) cid: u64,
    pub(crate) a: u64,
    pub(crate) b: u64,
}

impl DialogKey {
    /// Hash an in-dialog message's Call-ID, From tag and To tag (either direction).
    pub fn new(call_id: &[u8], from_tag: &[u8], to_tag: &[u8]) -> Self {
        DialogKey {
            cid: hash_call_id(call_id),
            a: Tag::new(from_tag).0,
            b: Tag::new(to_tag).0,
        }
    }

    /// True when the slot's (caller tag, callee tag) pair is this key's pair in either order.
    #[inline]
    pub(crate) fn matches(&self, cid: u64, from: u64, to: u64) -> bool {
        self.cid == cid && ((self.a == from && self.b == to) || (self.a == to && self.b == from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_direction_is_the_same_dialog() {
        let k1 = DialogKey::new(
            b"a84b4c76e66710@pc33.atlanta.com",
            b"1928301774",
            b"a6c85cf",
        );
        let k2 = DialogKey::new(
            b"a84b4c76e66710@pc33.atlanta.com",
            b"a6c85cf",
            b"1928301774",
        );
        let call = CallKey::new(b"a84b4c76e66710@pc33.atlanta.com", b"1928301774");
        let d = call.dialog(Tag::new(b"a6c85cf"));
        assert!(k2.matches(d.cid, d.a, d.b));
        assert!(k1.matches(d.cid, d.a, d.b));
        assert_eq!(k1, d);
        let other = DialogKey::new(b"a84b4c76e66710@pc33.atlanta.com", b"1928301774", b"zzz");
        assert!(!other.matches(d.cid, d.a, d.b));
    }

    #[test]
    fn tags_never_collide_with_sentinels() {
        for h in [0, 1, u64::MAX, 1 << 63] {
            let t = Tag::from_hash(h);
            assert_ne!(t.get(), 0);
            assert_eq!(t.get() & (1 << 63), 0);
        }
    }
}
