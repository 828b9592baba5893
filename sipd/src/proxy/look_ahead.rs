//! Finding a message's Call-ID without parsing it, to warm the dialog table for it.
//!
//! A worker that holds a batch of received messages calls [`super::Proxy::look_ahead`] on each
//! before handling the first, so the dialog table's cache misses (one per event on a table far
//! larger than the caches) overlap instead of stalling each message in turn. The lookup must cost
//! much less than the miss it hides and never needs to be right: a wrong or missing Call-ID only
//! loses the head start, since `handle` parses the message as always. So this is one substring
//! search for the header as nearly every agent writes it (`Call-ID:` at the start of a line, in
//! that case), not a parse: the compact form (`i:`), other spellings of the name and folded or
//! padded values are not recognised, and a `Call-ID:` line after the header block (in a body, or
//! in trailing bytes of the datagram) is taken when the header block has none in that spelling
//! (a harmless wrong hint: searching for the block's end first would cost as much again).

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// The header as nearly every agent writes it, at the start of a line.
static CALL_ID_LINE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\nCall-ID:"));

/// The Call-ID value of `message` as the parser would give it, when written the common way:
/// `Call-ID:`, optional spaces or tabs, then the value up to the line end, without trailing
/// spaces or tabs. None when there is no such line or the value is empty or folded.
pub fn call_id_hint(message: &[u8]) -> Option<&[u8]> {
    let name_end = CALL_ID_LINE.find(message)? + b"\nCall-ID:".len();
    let rest = &message[name_end..];
    let start = rest.iter().position(|&b| b != b' ' && b != b'\t')?;
    let line = &rest[start..];
    let end = memchr::memchr2(b'\r', b'\n', line).unwrap_or(line.len());
    let value = line[..end].trim_ascii_end();
    // A folded value continues on the next line: the parser's value is longer. A CR not followed by LF
    // is not a line end for the parser either.
    let after = &line[end..];
    let line_end = match after {
        [b'\r', b'\n', ..] => 2,
        [b'\n', ..] => 1,
        [] => 0,
        _ => return None,
    };
    if matches!(after.get(line_end), Some(b' ' | b'\t')) || value.is_empty() {
        return None;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use proptest::prelude::*;

    use super::*;
    use crate::proxy::MAX_HEADERS;
    use crate::sip::HeaderName;
    use crate::sip::message::parse_datagram_uninit;

    fn parsed_call_id(bytes: &[u8]) -> Option<Vec<u8>> {
        let mut storage = [MaybeUninit::uninit(); MAX_HEADERS];
        let msg = parse_datagram_uninit(bytes, &mut storage).ok()?;
        msg.value(HeaderName::CallId).map(<[u8]>::to_vec)
    }

    #[test]
    fn the_hint_is_the_parsed_call_id_whenever_it_finds_one() {
        let (mut found, mut beyond) = (0, 0);
        for (path, bytes) in crate::sip::fixture_messages() {
            let name = path.display();
            let Some(hint) = call_id_hint(&bytes) else {
                continue;
            };
            // Messages the parser rejects have no Call-ID to compare with.
            let Some(parsed) = parsed_call_id(&bytes) else {
                continue;
            };
            let at = hint.as_ptr() as usize - bytes.as_ptr() as usize;
            let header_end = memchr::memmem::find(&bytes, b"\r\n\r\n").unwrap_or(bytes.len());
            if at > header_end {
                // The documented miss: no `Call-ID:` line in the header block (dblreq.dat
                // writes `I:`), one after it (there, in a second message in the datagram).
                beyond += 1;
                continue;
            }
            assert_eq!(hint, &parsed[..], "{name}");
            found += 1;
        }
        assert!(beyond <= 1, "{beyond} hints from after the header block");
        // The common spelling is the common case: the four sample messages and most of the
        // proxy and torture fixtures.
        assert!(found >= 30, "only {found} hints");
    }

    #[test]
    fn the_sample_messages_all_give_a_hint() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for name in ["invite", "register", "ringing", "ok"] {
            let bytes = std::fs::read(root.join(format!("messages/{name}.sip"))).unwrap();
            assert_eq!(
                call_id_hint(&bytes).map(<[u8]>::to_vec),
                parsed_call_id(&bytes),
                "{name}"
            );
            assert!(call_id_hint(&bytes).is_some(), "{name}");
        }
    }

    #[test]
    fn uncommon_spellings_give_no_hint_rather_than_a_wrong_one() {
        let base = "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n";
        for (header, want) in [
            ("Call-ID: abc@h  \r\n", Some(&b"abc@h"[..])),
            ("Call-ID:\tabc@h\r\n", Some(b"abc@h")),
            ("Call-ID:abc\n", Some(b"abc")),
            ("i: abc@h\r\n", None),
            ("call-id: abc@h\r\n", None),
            ("Call-ID: abc\r\n  def\r\n", None),
            ("Call-ID:   \r\n", None),
            ("Call-ID: abc\rdef\r\n", None),
        ] {
            let msg = format!("{base}{header}\r\n");
            assert_eq!(call_id_hint(msg.as_bytes()), want, "{header:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        /// Any bytes: no panic, and a hint is a slice of a line that follows `Call-ID:`.
        #[test]
        fn any_bytes_give_a_hint_from_a_call_id_line_or_none(
            head in proptest::collection::vec(any::<u8>(), 0..64),
            value in proptest::collection::vec(any::<u8>(), 0..64),
            tail in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut msg = head.clone();
            msg.extend_from_slice(b"\nCall-ID:");
            msg.extend_from_slice(&value);
            msg.extend_from_slice(&tail);
            prop_assert!(call_id_hint(&head).is_none() || head.windows(9).any(|w| w == b"\nCall-ID:"));
            if let Some(hint) = call_id_hint(&msg) {
                prop_assert!(!hint.is_empty());
                prop_assert!(!hint.iter().any(|&b| b == b'\r' || b == b'\n'));
            }
        }
    }
}
