//! Stateless branch values (RFC 3261 §16.11) and the loop check they make cheap (§16.3 step 4).
//!
//! Our branch is `z9hG4bKsd` + 16 hex digits of `h1` + 16 hex digits of `h2`:
//! - `h1` hashes what stays the same along a loop and across the INVITE, its CANCEL and its
//!   non-2xx ACK: the Request-URI as received, Call-ID, From tag and the CSeq number (not the
//!   method), keyed with the proxy's secret;
//! - `h2` adds the previous hop's transaction identity: its top Via branch and sent-by when the
//!   branch carries the RFC 3261 magic cookie, else (RFC 2543 peers) the raw top Via value.
//!
//! So retransmissions, a CANCEL and a non-2xx ACK get the INVITE's branch, while a 2xx ACK (new
//! top branch from the UAC) and every other request get new ones. A request that comes back to us
//! with the same `h1` in one of its Vias, i.e. unchanged Request-URI, is a loop (a spiral changes
//! the Request-URI, so it does not match); finding it is one substring search over the Via values.

use std::sync::LazyLock;

use memchr::memmem;
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::writer::{Out, hex64};

/// What every branch of ours starts with (the magic cookie plus our mark).
pub const OUR_BRANCH_PREFIX: &[u8] = b"z9hG4bKsd";
/// Length of a branch of ours.
pub const BRANCH_LEN: usize = OUR_BRANCH_PREFIX.len() + 32;

/// The loop-invariant part of a request's identity.
pub fn invariant_hash(
    secret: u64,
    request_uri: &[u8],
    call_id: &[u8],
    from_tag: &[u8],
    cseq: u32,
) -> u64 {
    hash_fields(
        secret,
        &[request_uri, call_id, from_tag, &cseq.to_le_bytes()],
    )
}

/// Hashes each field on its own, chained through the seed, so field boundaries count. One-shot
/// xxh3 per field: the streaming state's setup cost a few hundred instructions per request, and
/// laying the fields out in one buffer first cost a zeroed buffer and a copy.
pub fn hash_fields(seed: u64, fields: &[&[u8]]) -> u64 {
    fields
        .iter()
        .fold(seed, |h, field| xxh3_64_with_seed(field, h))
}

/// The full branch for the outgoing request; `previous_hop` are the fields that identify the
/// previous hop's transaction.
pub fn branch(h1: u64, previous_hop: &[&[u8]]) -> [u8; BRANCH_LEN] {
    let h2 = hash_fields(h1, previous_hop);
    let mut b = [0u8; BRANCH_LEN];
    let mut out = Out::new(&mut b);
    out.put(OUR_BRANCH_PREFIX);
    out.put_hex64(h1);
    out.put_hex64(h2);
    b
}

/// `hay` contains our branch for `h1` (`z9hG4bKsd` + its 16 hex digits). Searches for the constant
/// [`OUR_BRANCH_PREFIX`] with a searcher built once, then compares the hash digits (formatted only
/// when the prefix is there: most requests carry no Via of ours). `memmem::find(hay, marker)`
/// built a searcher for the marker on every request (about 1,100 instructions, 4 % of forwarding
/// an INVITE).
pub fn contains_marker(hay: &[u8], h1: u64) -> bool {
    static PREFIX: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(OUR_BRANCH_PREFIX));
    let mut digits = None;
    PREFIX.find_iter(hay).any(|i| {
        let digits = *digits.get_or_insert_with(|| hex64(h1));
        hay.get(i + OUR_BRANCH_PREFIX.len()..)
            .is_some_and(|rest| rest.starts_with(&digits))
    })
}

/// `branch` is one of ours for `h1`: it starts with `z9hG4bKsd` and `h1`'s 16 hex digits.
pub fn is_ours_for(branch: &[u8], h1: u64) -> bool {
    branch
        .strip_prefix(OUR_BRANCH_PREFIX)
        .is_some_and(|rest| rest.starts_with(&hex64(h1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_of_every_field_counts_whatever_its_length() {
        for len in [0, 1, 15, 16, 17, 128, 129, 240, 241, 600] {
            let long = vec![b'x'; len];
            let h = invariant_hash(9, &long, b"c", b"t", 1);
            assert_eq!(h, invariant_hash(9, &long, b"c", b"t", 1));
            for at in [0, len / 2, len.saturating_sub(1)]
                .into_iter()
                .filter(|&i| i < len)
            {
                let mut changed = long.clone();
                changed[at] = b'y';
                assert_ne!(h, invariant_hash(9, &changed, b"c", b"t", 1), "{len} {at}");
            }
            assert_ne!(h, invariant_hash(9, &long, b"c", b"t", 2));
            assert_ne!(h, invariant_hash(9, &long, b"c", b"u", 1));
        }
    }

    #[test]
    fn branch_shape_and_determinism() {
        let h1 = invariant_hash(
            7,
            b"sip:bob@biloxi.com",
            b"a84b4c76e66710",
            b"1928301774",
            314159,
        );
        let b = branch(h1, &[b"z9hG4bK776asdhds"]);
        assert!(b.starts_with(OUR_BRANCH_PREFIX));
        assert!(
            b[OUR_BRANCH_PREFIX.len()..]
                .iter()
                .all(u8::is_ascii_hexdigit)
        );
        assert_eq!(b, branch(h1, &[b"z9hG4bK776asdhds"]));
        assert_ne!(b, branch(h1, &[b"z9hG4bK776asdhdt"]));
        assert!(is_ours_for(&b, h1));
        assert!(!is_ours_for(&b, h1 ^ 1));
        assert!(!is_ours_for(&b[..BRANCH_LEN - 17], h1));
        let via = [
            &b"SIP/2.0/UDP a;branch=z9hG4bKsd00;x, SIP/2.0/UDP b;branch="[..],
            &b[..],
        ]
        .concat();
        assert!(contains_marker(&via, h1));
        assert!(!contains_marker(&via, h1 ^ 1));
        assert!(!contains_marker(&via[..via.len() - 17], h1));
        assert!(!contains_marker(b"z9hG4bKsd", h1));
        let other = invariant_hash(
            7,
            b"sip:bob@biloxi.com",
            b"a84b4c76e66710",
            b"1928301774",
            314160,
        );
        assert_ne!(h1, other);
        assert_ne!(
            h1,
            invariant_hash(
                8,
                b"sip:bob@biloxi.com",
                b"a84b4c76e66710",
                b"1928301774",
                314159
            )
        );
        // Field boundaries matter.
        assert_ne!(
            invariant_hash(7, b"ab", b"c", b"", 1),
            invariant_hash(7, b"a", b"bc", b"", 1)
        );
    }
}
