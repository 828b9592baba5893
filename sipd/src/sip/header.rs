//! Header names: canonical form, compact forms (RFC 3261 §7.3.3 and the extensions that define
//! one), case-insensitive classification.

/// Declares the known headers once: the enum (plus `Other`), the canonical names and compact
/// forms indexed by discriminant, and the list of every known name.
macro_rules! header_names {
    ($($variant:ident => $name:literal $(, $compact:literal)?,)*) => {
        /// A header name the parser recognises, or [`HeaderName::Other`].
        ///
        /// Classification happens once per header line while parsing, so routing code compares
        /// enums instead of strings.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum HeaderName {
            $($variant,)*
            /// Any other (extension) header: the raw name is kept in the parsed header.
            Other,
        }

        /// (canonical name, compact form) for every known header, indexed by the discriminant.
        const NAMES: [(&str, Option<u8>); HeaderName::Other as usize] =
            [$(($name, header_names!(@compact $($compact)?)),)*];

        /// Every known name in discriminant order (`ALL[h as usize] == h`).
        const ALL: [HeaderName; HeaderName::Other as usize] = [$(HeaderName::$variant,)*];
    };
    (@compact) => { None };
    (@compact $c:literal) => { Some($c) };
}

header_names! {
    Accept => "Accept",
    AcceptContact => "Accept-Contact", b'a',
    AcceptEncoding => "Accept-Encoding",
    AcceptLanguage => "Accept-Language",
    AlertInfo => "Alert-Info",
    Allow => "Allow",
    AllowEvents => "Allow-Events", b'u',
    AuthenticationInfo => "Authentication-Info",
    Authorization => "Authorization",
    CallId => "Call-ID", b'i',
    CallInfo => "Call-Info",
    Contact => "Contact", b'm',
    ContentDisposition => "Content-Disposition",
    ContentEncoding => "Content-Encoding", b'e',
    ContentLanguage => "Content-Language",
    ContentLength => "Content-Length", b'l',
    ContentType => "Content-Type", b'c',
    CSeq => "CSeq",
    Date => "Date",
    ErrorInfo => "Error-Info",
    Event => "Event", b'o',
    Expires => "Expires",
    From => "From", b'f',
    Identity => "Identity", b'y',
    InReplyTo => "In-Reply-To",
    MaxForwards => "Max-Forwards",
    MimeVersion => "MIME-Version",
    MinExpires => "Min-Expires",
    Organization => "Organization",
    PAssertedIdentity => "P-Asserted-Identity",
    Path => "Path",
    Priority => "Priority",
    ProxyAuthenticate => "Proxy-Authenticate",
    ProxyAuthorization => "Proxy-Authorization",
    ProxyRequire => "Proxy-Require",
    RecordRoute => "Record-Route",
    ReferTo => "Refer-To", b'r',
    ReferredBy => "Referred-By", b'b',
    RejectContact => "Reject-Contact", b'j',
    ReplyTo => "Reply-To",
    RequestDisposition => "Request-Disposition", b'd',
    Require => "Require",
    RetryAfter => "Retry-After",
    Route => "Route",
    Server => "Server",
    SessionExpires => "Session-Expires", b'x',
    Subject => "Subject", b's',
    Supported => "Supported", b'k',
    Timestamp => "Timestamp",
    To => "To", b't',
    Unsupported => "Unsupported",
    UserAgent => "User-Agent",
    Via => "Via", b'v',
    Warning => "Warning",
    WwwAuthenticate => "WWW-Authenticate",
}

/// Words needed for the longest known name (19 bytes).
const NAME_WORDS: usize = 3;

/// For each known name, its lowercase bytes and a case-folding mask (0x20 on letters, 0 on `-`
/// and the zero padding), as little-endian words: a name matches when `word | mask == lowercase`
/// for every word, which accepts exactly the two cases of each letter and nothing else.
static FOLDED: [([u64; NAME_WORDS], [u64; NAME_WORDS]); HeaderName::Other as usize] = {
    let mut out = [([0u64; NAME_WORDS], [0u64; NAME_WORDS]); HeaderName::Other as usize];
    let mut h = 0;
    while h < NAMES.len() {
        let name = NAMES[h].0.as_bytes();
        assert!(name.len() <= NAME_WORDS * 8);
        let mut i = 0;
        while i < name.len() {
            let c = name[i];
            let (lower, fold) = if c.is_ascii_alphabetic() {
                (c | 0x20, 0x20)
            } else {
                (c, 0)
            };
            out[h].0[i / 8] |= (lower as u64) << (8 * (i % 8));
            out[h].1[i / 8] |= (fold as u64) << (8 * (i % 8));
            i += 1;
        }
        h += 1;
    }
    out
};

/// `LENGTH_MASKS[n]` keeps the first `n` bytes of three little-endian words.
static LENGTH_MASKS: [[u64; NAME_WORDS]; NAME_WORDS * 8 + 1] = {
    let mut out = [[0u64; NAME_WORDS]; NAME_WORDS * 8 + 1];
    let mut n = 0;
    while n <= NAME_WORDS * 8 {
        let mut i = 0;
        while i < n {
            out[n][i / 8] |= 0xFF << (8 * (i % 8));
            i += 1;
        }
        n += 1;
    }
    out
};

/// `PREFIX_MASKS[n]` keeps the first `n` bytes of two little-endian words: [`LENGTH_MASKS`]'
/// first two words, in rows of 16 bytes (indexed with a shift, where rows of 24 took two adds).
const PREFIX_MASKS: [[u64; 2]; 17] = {
    let mut out = [[0u64; 2]; 17];
    let mut n = 0;
    while n <= 16 {
        out[n] = [LENGTH_MASKS[n][0], LENGTH_MASKS[n][1]];
        n += 1;
    }
    out
};

/// Multiplier of [`name_hash`], chosen (by trying random odd constants) so that no two known names
/// share a slot; [`BY_HASH`]'s construction fails to compile if a name is added that collides.
const HASH_K: u64 = 0x6513_270e_269e_0d37;

/// A slot in [`BY_HASH`] for a name given as zero-padded words: the first two words xored, case
/// folded by setting bit 5 of every byte (exact on letters; other bytes only need to hash the same
/// way each time: a byte's bit 5 is set whatever the two words held there), and multiplied out.
/// Folding once after the xor costs one `or` where folding each word cost a register copy and an
/// `or` more. The length is left out: the slot's length is compared anyway, and the known names
/// fall in distinct slots without it.
#[inline]
const fn name_hash(words: &[u64; NAME_WORDS]) -> usize {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let x = (words[0] ^ words[1]) | FOLD;
    (x.wrapping_mul(HASH_K) >> 56) as usize
}

/// The known name in a hash slot, with what a candidate is checked against: its lowercase words
/// and folding masks (see [`FOLDED`]) and its length (0 for an empty slot, which no name of two
/// or more bytes matches). One load of this entry replaces a slot -> name -> length/words chain.
#[derive(Copy, Clone)]
struct Slot {
    lower: [u64; NAME_WORDS],
    fold: [u64; NAME_WORDS],
    /// `lower[1]` for a name of at most 16 bytes. For a longer one, `lower[1]` with bit 5 of a
    /// letter cleared: `word | fold[1]` always has that bit set, so no 16-byte window matches it
    /// (the prefix lookup compares two words and no length).
    prefix_lower1: u64,
    len: u8,
    name: HeaderName,
}

/// Hash slot -> the known name there, or an empty [`Slot`].
const BY_HASH: [Slot; 256] = {
    let empty = Slot {
        lower: [0; NAME_WORDS],
        fold: [0; NAME_WORDS],
        prefix_lower1: 0,
        len: 0,
        name: HeaderName::Other,
    };
    let mut t = [empty; 256];
    let mut h = 0;
    while h < NAMES.len() {
        let slot = name_hash(&FOLDED[h].0);
        assert!(
            t[slot].len == 0,
            "two header names share a hash slot: pick another HASH_K"
        );
        let (lower, fold) = FOLDED[h];
        let len = NAMES[h].0.len();
        let prefix_lower1 = if len <= 16 {
            lower[1]
        } else {
            // The lowest letter of the second word (bit 5 set in `fold`) loses its bit 5.
            assert!(fold[1] != 0, "a long name without a letter in bytes 8..16");
            lower[1] & !(fold[1] & fold[1].wrapping_neg())
        };
        assert!(len <= u8::MAX as usize);
        t[slot] = Slot {
            lower,
            fold,
            prefix_lower1,
            len: len as u8,
            name: ALL[h],
        };
        h += 1;
    }
    t
};

/// The tables of [`HeaderName::known_prefix`] in one static: one address for both, where two
/// statics took an address each per header line.
struct Lookup {
    slots: [Slot; 256],
    prefix_masks: [[u64; 2]; 17],
}

static LOOKUP: Lookup = Lookup {
    slots: BY_HASH,
    prefix_masks: PREFIX_MASKS,
};

impl HeaderName {
    /// Every known header name (not [`HeaderName::Other`]).
    pub const KNOWN: &'static [HeaderName] = &ALL;

    /// Classifies a header name as it appears on the wire: case-insensitive, compact forms mapped
    /// to their full names. Anything unknown is [`HeaderName::Other`].
    #[inline]
    pub fn classify(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        if name.len() == 1 {
            return match name[0] | 0x20 {
                b'a' => AcceptContact,
                b'b' => ReferredBy,
                b'c' => ContentType,
                b'd' => RequestDisposition,
                b'e' => ContentEncoding,
                b'f' => From,
                b'i' => CallId,
                b'j' => RejectContact,
                b'k' => Supported,
                b'l' => ContentLength,
                b'm' => Contact,
                b'o' => Event,
                b'r' => ReferTo,
                b's' => Subject,
                b't' => To,
                b'u' => AllowEvents,
                b'v' => Via,
                b'x' => SessionExpires,
                b'y' => Identity,
                _ => Other,
            };
        }
        if name.len() > NAME_WORDS * 8 {
            return Other;
        }
        let mut padded = [0u8; NAME_WORDS * 8];
        padded[..name.len()].copy_from_slice(name);
        let words: [u64; NAME_WORDS] = core::array::from_fn(|w| {
            u64::from_le_bytes(padded[w * 8..w * 8 + 8].try_into().unwrap_or_default())
        });
        Self::lookup(&words, name.len())
    }

    /// [`HeaderName::classify`] of `buf[start..start + len]`, reading the name straight from
    /// the message in whole words when the buffer is long enough (the parser's case: no copy).
    #[inline(always)]
    pub(crate) fn classify_in(buf: &[u8], start: usize, len: usize) -> HeaderName {
        let Some(window) = buf.get(start..start + NAME_WORDS * 8) else {
            return Self::classify(&buf[start..start + len]);
        };
        if len <= 1 || len > NAME_WORDS * 8 {
            return Self::classify(&buf[start..start + len]);
        }
        let mask = &LENGTH_MASKS[len];
        let word = |w: usize| {
            u64::from_le_bytes(window[w * 8..w * 8 + 8].try_into().unwrap_or_default()) & mask[w]
        };
        // The third word only matters to names longer than 16 bytes: read it only for them.
        let (w0, w1) = (word(0), word(1));
        if len <= 16 {
            return Self::lookup_two_words(w0, w1, len).unwrap_or(HeaderName::Other);
        }
        Self::lookup(&[w0, w1, word(2)], len)
    }

    /// [`HeaderName::classify`] of `line[..len]` (which holds no NUL byte: the parser's name is
    /// the value bytes before a colon), `None` for [`HeaderName::Other`], for the message parser: a name of 2 to 16 bytes (nearly every one) with 16 bytes of `line` to read
    /// is settled from two words with one range test; anything else goes to
    /// [`HeaderName::classify_in`]. An `Option`, so that the parser branches on the match itself
    /// (testing the name it loaded for `Other` cost a compare and a branch per line).
    #[inline(always)]
    pub(crate) fn known_prefix(line: &[u8], len: usize) -> Option<HeaderName> {
        let Some(window) = line.first_chunk::<16>() else {
            return Self::classify_in(line, 0, len).known();
        };
        if len.wrapping_sub(2) > 14 {
            return Self::classify_in(line, 0, len).known();
        }
        debug_assert!(!line[..len].contains(&0), "a NUL in a name");
        let mask = &LOOKUP.prefix_masks[len];
        let (lo, hi) = window.split_at(8);
        let w0 = u64::from_le_bytes(lo.try_into().unwrap_or_default()) & mask[0];
        let w1 = u64::from_le_bytes(hi.try_into().unwrap_or_default()) & mask[1];
        let slot = &LOOKUP.slots[name_hash(&[w0, w1, 0])];
        // No length compare, unlike `lookup_two_words`: both words are zero past `len` and past
        // a slot's name of at most 16 bytes, and neither name holds a NUL, so equal words mean
        // equal lengths; a longer slot name has a second word no window matches (see
        // `Slot::prefix_lower1`), and an empty slot's words are zero, which no name of two or
        // more bytes matches.
        (w0 | slot.fold[0] == slot.lower[0] && w1 | slot.fold[1] == slot.prefix_lower1)
            .then_some(slot.name)
    }

    /// `None` for [`HeaderName::Other`].
    #[inline(always)]
    fn known(self) -> Option<HeaderName> {
        (self != HeaderName::Other).then_some(self)
    }

    /// [`HeaderName::lookup`] for a name of 2 to 16 bytes, given as its two words (masked to
    /// `len`), `None` for [`HeaderName::Other`]: a name longer than 16 bytes has another length,
    /// and one of at most 16 has a zero third word, so only two words are compared.
    #[inline(always)]
    fn lookup_two_words(w0: u64, w1: u64, len: usize) -> Option<HeaderName> {
        let slot = &LOOKUP.slots[name_hash(&[w0, w1, 0])];
        // A matching slot holds a known name: empty slots have length 0 and `len >= 2`.
        (usize::from(slot.len) == len
            && w0 | slot.fold[0] == slot.lower[0]
            && w1 | slot.fold[1] == slot.lower[1])
            .then_some(slot.name)
    }

    /// The known name whose hash slot `words` (a name of `len` > 1 bytes, little-endian, zero
    /// past its end) falls in, if it is that name in any case.
    #[inline]
    fn lookup(words: &[u64; NAME_WORDS], len: usize) -> HeaderName {
        let slot = &LOOKUP.slots[name_hash(words)];
        if usize::from(slot.len) == len
            && (0..NAME_WORDS).all(|w| words[w] | slot.fold[w] == slot.lower[w])
        {
            slot.name
        } else {
            HeaderName::Other
        }
    }

    /// The canonical spelling (`Call-ID`, `CSeq`, `WWW-Authenticate`, ...). `Other` has none: use
    /// the raw name kept in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderName::Other => "",
            known => NAMES[known as usize].0,
        }
    }

    /// The compact form, if the header has one.
    pub fn compact(self) -> Option<u8> {
        match self {
            HeaderName::Other => None,
            known => NAMES[known as usize].1,
        }
    }

    /// Headers whose value is a comma-separated list that may be split over several header lines
    /// (RFC 3261 §7.3.1). Single-valued headers (Call-ID, CSeq, From, To, Max-Forwards,
    /// Content-Length, ...) are not.
    pub fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Accept
                | AcceptContact
                | AcceptEncoding
                | AcceptLanguage
                | AlertInfo
                | Allow
                | AllowEvents
                | CallInfo
                | Contact
                | ContentEncoding
                | ContentLanguage
                | ErrorInfo
                | InReplyTo
                | PAssertedIdentity
                | Path
                | ProxyRequire
                | RecordRoute
                | RejectContact
                | Require
                | Route
                | Supported
                | Unsupported
                | Via
                | Warning
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_name_classifies_to_itself_in_any_case() {
        for (i, &h) in HeaderName::KNOWN.iter().enumerate() {
            assert_eq!(h as usize, i, "ALL out of discriminant order at {h:?}");
            let name = h.as_str();
            assert_eq!(HeaderName::classify(name.as_bytes()), h, "{name}");
            assert_eq!(
                HeaderName::classify(name.to_ascii_lowercase().as_bytes()),
                h
            );
            assert_eq!(
                HeaderName::classify(name.to_ascii_uppercase().as_bytes()),
                h
            );
            if let Some(c) = h.compact() {
                assert_eq!(HeaderName::classify(&[c]), h, "compact {}", c as char);
                assert_eq!(HeaderName::classify(&[c.to_ascii_uppercase()]), h);
            }
        }
    }

    #[test]
    fn classify_in_a_buffer_agrees_with_classify() {
        let mut names: Vec<Vec<u8>> = HeaderName::KNOWN
            .iter()
            .flat_map(|h| {
                let n = h.as_str();
                [n.to_owned(), n.to_ascii_lowercase(), n.to_ascii_uppercase()]
            })
            .map(String::into_bytes)
            .collect();
        names.extend(
            [
                &b"Call\rID"[..],
                b"Max_Forwards",
                b"X-Long-Extension-Header-Name",
                // Known long names but for their last byte (past the first 16).
                b"Proxy-Authorizatiom",
                b"P-Asserted-Identitx",
                // A 16-byte known name but for its last byte.
                b"Content-Languagf",
                b"v",
                b"",
            ]
            .map(<[u8]>::to_vec),
        );
        for name in &names {
            // The name followed by a value (long enough for whole-word loads), and at the very end
            // of the buffer (the copying fallback).
            let mut buf = name.clone();
            buf.extend_from_slice(b": some value that is long enough\r\n");
            let want = HeaderName::classify(name);
            assert_eq!(
                HeaderName::classify_in(&buf, 0, name.len()),
                want,
                "{name:?}"
            );
            // The parser's lookup, with 16 bytes to read and without (the fallback).
            let prefix = |line: &[u8]| {
                HeaderName::known_prefix(line, name.len()).unwrap_or(HeaderName::Other)
            };
            assert_eq!(prefix(&buf), want, "{name:?}");
            assert_eq!(prefix(name), want, "{name:?}");
            let mut shifted = b"xyz".to_vec();
            shifted.extend_from_slice(name);
            assert_eq!(
                HeaderName::classify_in(&shifted, 3, name.len()),
                want,
                "{name:?}"
            );
        }
    }

    #[test]
    fn prefix_lookup_agrees_on_near_names() {
        // `known_prefix` compares no lengths: every known name cut short, extended by a byte, or
        // with a byte changed must still classify as `classify` says (a NUL never reaches it).
        let mut names: Vec<Vec<u8>> = Vec::new();
        for h in HeaderName::KNOWN {
            let name = h.as_str().as_bytes();
            for cut in 1..name.len() {
                names.push(name[..cut].to_vec());
            }
            for extra in [b'x', b'-', b'S', b' ', b'\t', b'\r', 0x7F, 0xC3] {
                names.push([name, &[extra]].concat());
                for at in 0..name.len() {
                    let mut changed = name.to_vec();
                    changed[at] = extra;
                    names.push(changed);
                }
            }
        }
        for name in &names {
            let mut line = name.clone();
            line.extend_from_slice(b": a value long enough for a whole window\r\n");
            let got = HeaderName::known_prefix(&line, name.len()).unwrap_or(HeaderName::Other);
            assert_eq!(got, HeaderName::classify(name), "{name:?}");
        }
    }

    #[test]
    fn unknown_names_are_other() {
        for name in [
            &b""[..],
            b"Z",
            b"q",
            b"V\xEDa",
            b"Max-Forward",
            b"Call-IDs",
            b"X-Custom-Header",
            // Bytes one bit away from a name's own (`-` is 0x2D, CR 0x0D; `_` folds to DEL).
            b"Call\rID",
            b"Max_Forwards",
            b"Via\0",
            b"Proxy-Authorizatiom",
            b"Authentication-Infp",
        ] {
            assert_eq!(HeaderName::classify(name), HeaderName::Other, "{name:?}");
        }
    }

    #[test]
    fn compact_forms_of_rfc3261() {
        let pairs = [
            (b'i', "Call-ID"),
            (b'm', "Contact"),
            (b'e', "Content-Encoding"),
            (b'l', "Content-Length"),
            (b'c', "Content-Type"),
            (b'f', "From"),
            (b's', "Subject"),
            (b'k', "Supported"),
            (b't', "To"),
            (b'v', "Via"),
        ];
        for (c, full) in pairs {
            assert_eq!(HeaderName::classify(&[c]).as_str(), full);
        }
    }
}
