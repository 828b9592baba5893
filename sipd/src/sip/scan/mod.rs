//! SIMD byte-class scanner: the length of the leading run of bytes in one RFC 3261 class.
//!
//! Three classes, each answered by a function returning how many leading bytes belong to it (so
//! `bytes.len()` means "all of them"):
//!
//! | function      | class                                                                    |
//! |---------------|--------------------------------------------------------------------------|
//! | [`token_len`] | RFC 3261 `token`: ``ALPHA / DIGIT / - . ! % * _ + ` ' ~``                  |
//! | [`value_len`] | header value: HTAB, `0x20..=0x7E`, `0x80..=0xFF` (stops at CR, LF, NUL, DEL…) |
//! | [`uri_len`]   | Request-URI: visible ASCII `0x21..=0x7E`                                 |
//! | [`list_len`]  | anything but `,` `"` `<` (where a header list split must look)           |
//! | [`angled_len`] | anything but `>` (the end of a `<URI>`)                                 |
//! | [`quoted_len`] | quoted-string text: a header-value byte other than `"` and `\`          |
//! | `colon_len`   | anything but `:` (where a header line's name may end)                    |
//!
//! # Layout (httparse `src/simd/`, memchr `src/arch/`)
//!
//! - `mod.rs` (this file): the API, the run-time dispatch, and the scalar reference (the
//!   [`is_token`], [`is_value`], [`is_uri`] predicates and the 256-entry class table built from them).
//! - `swar.rs`: the portable backend, 8 bytes at a time in a `u64`; the class table below 4 bytes.
//! - `sse2.rs`: 16 bytes at a time, range compares (SSE2 is baseline on `x86_64`; it has no `pshufb`).
//! - `avx2.rs`: 32 bytes at a time; `token` via the nibble-shuffle (`vpshufb`) trick.
//!
//! Every backend has the signature `fn(&[u8]) -> usize` and returns exactly what the scalar
//! reference returns (tested on all 256 byte values at every offset, and with property tests).
//! No backend reads outside the slice: each finishes with one overlapping load ending at the
//! slice's end; an input shorter than a vector but at least half of one is classified as one
//! vector made of its first and its last half-vector; shorter inputs go to the next narrower
//! backend (AVX2 -> SSE2 -> SWAR -> table). So a 20-byte header value costs one classification
//! under AVX2, two 16-byte ones under SSE2.
//!
//! # Dispatch
//!
//! The backend is chosen once, at first use, and cached in an atomic: the best the CPU supports
//! (AVX2 > SSE2 > Portable), unless the environment variable `SIPD_SCAN=portable|sse2|avx2` names a
//! supported one. [`set_backend`] overrides it process-wide. The cargo feature `portable-scan` and
//! `cfg(miri)` compile the vector backends out, so only [`Backend::Portable`] exists. The top-level
//! functions cost one relaxed atomic load and a match on top of the backend's own work.
//!
//! # Safety
//!
//! `unsafe` here is limited to (a) unaligned vector loads whose whole extent lies inside the input
//! slice (each behind an `assert!` the loop bounds make free) and (b) calling the SSE2 and AVX2
//! backends, which are `#[target_feature]` functions. (b) happens only once the CPU was seen to
//! support the feature: the cached backend is [`Backend::Sse2`] or [`Backend::Avx2`] only after
//! [`Backend::is_supported`] said so, and [`scanner`] hands out their functions only then.
#![allow(unsafe_code)]

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

/// The byte classes a vector backend computes with plain compares (`value`, `list`, `angled`,
/// `quoted`; `token` and `uri` differ per instruction set), expanded in the backend's module from
/// its own `eq`, `in_range`, `or`, `andnot` and `mask`, so each class is written once. Each
/// returns a mask with bit `k` set iff byte `k` is not in the class.
macro_rules! compare_classes {
    ($feature:literal, $vec:ty) => {
        /// Bad: a control byte other than HTAB, or DEL.
        #[target_feature(enable = $feature)]
        #[inline]
        fn value_bad(x: $vec) -> u32 {
            let ctl = in_range(x, 0x00, 0x1F);
            mask(or(andnot(eq(x, b'\t'), ctl), eq(x, 0x7F)))
        }

        /// Bad: what ends a list element's plain run: `,`, `"` or `<`.
        #[target_feature(enable = $feature)]
        #[inline]
        fn list_bad(x: $vec) -> u32 {
            mask(or(or(eq(x, b','), eq(x, b'"')), eq(x, b'<')))
        }

        /// Bad: `>`.
        #[target_feature(enable = $feature)]
        #[inline]
        fn angled_bad(x: $vec) -> u32 {
            mask(eq(x, b'>'))
        }

        /// Bad: what is not a value byte, and `"` or `\`.
        #[target_feature(enable = $feature)]
        #[inline]
        fn quoted_bad(x: $vec) -> u32 {
            value_bad(x) | mask(or(eq(x, b'"'), eq(x, b'\\')))
        }

        /// Bad: `:`.
        #[target_feature(enable = $feature)]
        #[inline]
        fn colon_bad(x: $vec) -> u32 {
            mask(eq(x, b':'))
        }
    };
}

/// A vector backend's `colon_value_len`, expanded in the backend's module (with its `load`,
/// `colon_bad`, `value_bad`, `colon_len` and `value_len`) for its target feature and vector width.
macro_rules! colon_value_len_fn {
    ($feature:literal, $width:literal) => {
        /// `(colon_len(&bytes[..v]), v)` with `v = value_len(bytes)`: where a header line's colon
        /// is (or its content's end, if that comes first), and the end of its content. The common
        /// case (a header line with at least a vector after it, its colon in the first) is a short
        /// loop of whole vectors, small enough to be inlined into the message parser; anything
        /// else takes the two scans.
        #[target_feature(enable = $feature)]
        #[inline]
        pub(super) fn colon_value_len(bytes: &[u8]) -> (usize, usize) {
            if bytes.len() >= $width {
                let first = load(bytes, 0);
                let mut value = value_bad(first);
                // The first colon or the first byte ending the content, whichever comes first.
                let stop = colon_bad(first) | value;
                if stop != 0 {
                    // Each vector returns on its own once the content ends; the second is
                    // unrolled (most header lines end within two vectors; the plain loop measured
                    // about 50 instructions more per INVITE).
                    let colon = stop.trailing_zeros() as usize;
                    if value != 0 {
                        return (colon, value.trailing_zeros() as usize);
                    }
                    let mut at = $width;
                    if bytes.len() >= 2 * $width {
                        value = value_bad(load(bytes, $width));
                        if value != 0 {
                            return (colon, $width + value.trailing_zeros() as usize);
                        }
                        at = 2 * $width;
                    }
                    while at + $width <= bytes.len() {
                        value = value_bad(load(bytes, at));
                        if value != 0 {
                            return (colon, at + value.trailing_zeros() as usize);
                        }
                        at += $width;
                    }
                }
            }
            colon_value_len_slow(bytes)
        }

        /// [`colon_value_len`] as the two scans, out of line so that the common case inlines.
        #[target_feature(enable = $feature)]
        #[inline(never)]
        fn colon_value_len_slow(bytes: &[u8]) -> (usize, usize) {
            let content = value_len(bytes);
            (colon_len(&bytes[..content]), content)
        }
    };
}

mod swar;

#[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
mod avx2;
#[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
mod sse2;

// ---------------------------------------------------------------------------------------------
// Scalar reference
// ---------------------------------------------------------------------------------------------

/// Is `b` an RFC 3261 `token` byte: ``ALPHA / DIGIT / "-" / "." / "!" / "%" / "*" / "_" / "+" /
/// "`" / "'" / "~"``?
#[inline]
pub const fn is_token(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

/// Is `b` a header-value byte: HTAB, `0x20..=0x7E` or `0x80..=0xFF` (UTF-8 is passed through)?
#[inline]
pub const fn is_value(b: u8) -> bool {
    matches!(b, b'\t' | 0x20..=0x7E | 0x80..=0xFF)
}

/// Is `b` a Request-URI byte: visible ASCII `0x21..=0x7E`?
#[inline]
pub const fn is_uri(b: u8) -> bool {
    matches!(b, 0x21..=0x7E)
}

/// Is `b` a byte a header list split passes over: anything but `,`, `"` and `<`?
#[inline]
pub const fn is_list_plain(b: u8) -> bool {
    !matches!(b, b',' | b'"' | b'<')
}

/// Is `b` a byte inside `<...>`: anything but `>`?
#[inline]
pub const fn is_angled(b: u8) -> bool {
    b != b'>'
}

/// Is `b` quoted-string text without escapes: a header-value byte ([`is_value`]) other than `"`
/// and `\`?
#[inline]
pub const fn is_quoted_text(b: u8) -> bool {
    is_value(b) && b != b'"' && b != b'\\'
}

/// Is `b` anything but `:`?
#[inline]
pub const fn is_not_colon(b: u8) -> bool {
    b != b':'
}

/// Bit in [`CLASS`] for [`is_token`].
const TOKEN: u8 = 1 << 0;
/// Bit in [`CLASS`] for [`is_value`].
const VALUE: u8 = 1 << 1;
/// Bit in [`CLASS`] for [`is_uri`].
const URI: u8 = 1 << 2;
/// Bit in [`CLASS`] for [`is_list_plain`].
const LIST: u8 = 1 << 3;
/// Bit in [`CLASS`] for [`is_angled`].
const ANGLED: u8 = 1 << 4;
/// Bit in [`CLASS`] for [`is_quoted_text`].
const QUOTED: u8 = 1 << 5;
/// Bit in [`CLASS`] for [`is_not_colon`].
const NOT_COLON: u8 = 1 << 6;

/// One entry per byte value: which classes ([`TOKEN`], [`VALUE`], [`URI`]) it belongs to. Built at
/// compile time from the predicates, so the two cannot disagree. Used by the scalar tails.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = (is_token(b) as u8 * TOKEN)
            | (is_value(b) as u8 * VALUE)
            | (is_uri(b) as u8 * URI)
            | (is_list_plain(b) as u8 * LIST)
            | (is_angled(b) as u8 * ANGLED)
            | (is_quoted_text(b) as u8 * QUOTED)
            | (is_not_colon(b) as u8 * NOT_COLON);
        i += 1;
    }
    t
};

/// Nibble-shuffle tables for `token` (used by the AVX2 backend): a byte `b` is a token byte iff
/// `TOKEN_NIBBLE_LO[b & 15] & TOKEN_NIBBLE_HI[b >> 4] != 0`. Every token byte has a high nibble in
/// `2..=7`, so each high nibble gets its own bit and the low table records, per low nibble, the
/// high nibbles that make a token byte: exact for any set spread over at most 8 high nibbles.
#[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
const TOKEN_NIBBLE_LO: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut lo = 0;
    while lo < 16 {
        let mut hi = 2;
        while hi <= 7 {
            if is_token((hi << 4 | lo) as u8) {
                t[lo] |= 1 << (hi - 2);
            }
            hi += 1;
        }
        lo += 1;
    }
    t
};

/// See [`TOKEN_NIBBLE_LO`].
#[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
const TOKEN_NIBBLE_HI: [u8; 16] = {
    let mut t = [0u8; 16];
    let mut hi = 2;
    while hi <= 7 {
        t[hi] = 1 << (hi - 2);
        hi += 1;
    }
    t
};

/// Scalar scan with the class table, from `start` on: the index of the first byte of `bytes` at or
/// after `start` that is not in `class`, or `bytes.len()`.
#[inline]
fn table_len(bytes: &[u8], start: usize, class: u8) -> usize {
    let mut i = start;
    while i < bytes.len() {
        if CLASS[bytes[i] as usize] & class == 0 {
            return i;
        }
        i += 1;
    }
    bytes.len()
}

// ---------------------------------------------------------------------------------------------
// Backends and dispatch
// ---------------------------------------------------------------------------------------------

/// One implementation of the scanner.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SWAR (8 bytes in a `u64`) plus a table-driven tail; available everywhere.
    Portable,
    /// SSE2, 16 bytes at a time (`x86_64` only).
    Sse2,
    /// AVX2, 32 bytes at a time (`x86_64` with AVX2 only).
    Avx2,
}

impl Backend {
    /// Every backend, narrowest first.
    pub const ALL: [Backend; 3] = [Backend::Portable, Backend::Sse2, Backend::Avx2];

    /// The lowercase name used by `SIPD_SCAN` and `--scan` flags: `portable`, `sse2`, `avx2`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Portable => "portable",
            Backend::Sse2 => "sse2",
            Backend::Avx2 => "avx2",
        }
    }

    /// The backend called `name` (as [`Backend::name`] spells it, ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
    }

    /// Whether this build and this CPU can run the backend. Always true for
    /// [`Backend::Portable`]; false for the others when built with `portable-scan`, under miri,
    /// or off `x86_64`.
    pub fn is_supported(self) -> bool {
        match self {
            Backend::Portable => true,
            #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
            Backend::Sse2 => std::arch::is_x86_feature_detected!("sse2"),
            #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
            Backend::Avx2 => std::arch::is_x86_feature_detected!("avx2"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Backend::Portable => PORTABLE,
            Backend::Sse2 => SSE2,
            Backend::Avx2 => AVX2,
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// [`set_backend`] was asked for a backend this build or CPU cannot run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("scan backend `{0}` is not supported by this CPU or build")]
pub struct Unsupported(pub Backend);

/// Values of [`CURRENT`]; `UNSET` until the first use.
const UNSET: u8 = 0;
const PORTABLE: u8 = 1;
const SSE2: u8 = 2;
const AVX2: u8 = 3;

/// The cached backend ([`PORTABLE`], [`SSE2`] or [`AVX2`]), or [`UNSET`]. Holds [`SSE2`] or
/// [`AVX2`] only if that backend [`Backend::is_supported`]: the dispatch relies on it.
static CURRENT: AtomicU8 = AtomicU8::new(UNSET);

/// The backend to use when nothing was forced: `SIPD_SCAN`'s value (`env`) if it names a supported
/// backend, else the best supported one.
fn choose(env: Option<&str>) -> Backend {
    if let Some(b) = env
        .and_then(Backend::from_name)
        .filter(|b| b.is_supported())
    {
        return b;
    }
    Backend::ALL
        .into_iter()
        .rev()
        .find(|b| b.is_supported())
        .unwrap_or(Backend::Portable)
}

/// First use: choose, then publish unless [`set_backend`] got there first.
#[cold]
#[inline(never)]
fn init() -> u8 {
    let env = std::env::var("SIPD_SCAN").ok();
    let chosen = choose(env.as_deref()).to_u8();
    match CURRENT.compare_exchange(UNSET, chosen, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => chosen,
        Err(already) => already,
    }
}

/// The cached backend as a `u8` (never [`UNSET`]).
#[inline(always)]
fn current() -> u8 {
    match CURRENT.load(Ordering::Relaxed) {
        UNSET => init(),
        b => b,
    }
}

/// The backend in use: chosen at first use (best supported: AVX2 > SSE2 > Portable, or the one
/// `SIPD_SCAN=portable|sse2|avx2` names if supported; an unsupported or unknown value is ignored),
/// then cached. Always [`Backend::Portable`] with the `portable-scan` feature and under miri.
#[inline]
pub fn backend() -> Backend {
    match current() {
        AVX2 => Backend::Avx2,
        SSE2 => Backend::Sse2,
        _ => Backend::Portable,
    }
}

/// Force a backend process-wide (benches, tests, `--scan` flags). Fails, changing nothing, if this
/// CPU or build cannot run it. Calls already running finish on the backend they started with.
pub fn set_backend(b: Backend) -> Result<(), Unsupported> {
    if !b.is_supported() {
        return Err(Unsupported(b));
    }
    CURRENT.store(b.to_u8(), Ordering::Relaxed);
    Ok(())
}

/// One backend's functions, called directly (tests, per-backend benches).
#[derive(Copy, Clone)]
pub struct Scanner {
    /// See [`token_len`].
    pub token_len: fn(&[u8]) -> usize,
    /// See [`value_len`].
    pub value_len: fn(&[u8]) -> usize,
    /// See [`uri_len`].
    pub uri_len: fn(&[u8]) -> usize,
    /// See [`list_len`].
    pub list_len: fn(&[u8]) -> usize,
    /// See [`angled_len`].
    pub angled_len: fn(&[u8]) -> usize,
    /// See [`quoted_len`].
    pub quoted_len: fn(&[u8]) -> usize,
    /// Length of the leading run of bytes other than `:` (see [`is_not_colon`]).
    pub colon_len: fn(&[u8]) -> usize,
    /// See [`Scan::colon_value_len`].
    pub colon_value_len: fn(&[u8]) -> (usize, usize),
}

impl fmt::Debug for Scanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scanner").finish_non_exhaustive()
    }
}

/// Backend `b`'s functions, or `None` if this CPU or build cannot run it.
pub fn scanner(b: Backend) -> Option<Scanner> {
    match b {
        Backend::Portable => Some(Scanner {
            token_len: swar::token_len,
            value_len: swar::value_len,
            uri_len: swar::uri_len,
            list_len: swar::list_len,
            angled_len: swar::angled_len,
            quoted_len: swar::quoted_len,
            colon_len: swar::colon_len,
            colon_value_len: swar::colon_value_len,
        }),
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        Backend::Sse2 if b.is_supported() => Some(Scanner {
            token_len: sse2_safe::token_len,
            value_len: sse2_safe::value_len,
            uri_len: sse2_safe::uri_len,
            list_len: sse2_safe::list_len,
            angled_len: sse2_safe::angled_len,
            quoted_len: sse2_safe::quoted_len,
            colon_len: sse2_safe::colon_len,
            colon_value_len: sse2_safe::colon_value_len,
        }),
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        Backend::Avx2 if b.is_supported() => Some(Scanner {
            token_len: avx2_safe::token_len,
            value_len: avx2_safe::value_len,
            uri_len: avx2_safe::uri_len,
            list_len: avx2_safe::list_len,
            angled_len: avx2_safe::angled_len,
            quoted_len: avx2_safe::quoted_len,
            colon_len: avx2_safe::colon_len,
            colon_value_len: avx2_safe::colon_value_len,
        }),
        _ => None,
    }
}

/// Safe-signature wrappers around a vector backend's `#[target_feature]` functions, so they fit
/// [`Scanner`]'s `fn` pointers. Private: reachable only through [`scanner`], which hands them out
/// only when [`Backend::is_supported`] said the CPU has the feature.
macro_rules! safe_wrappers {
    ($wrap:ident, $backend:ident) => {
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        mod $wrap {
            use super::$backend;

            pub(super) fn token_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::token_len(bytes) }
            }

            pub(super) fn value_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::value_len(bytes) }
            }

            pub(super) fn uri_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::uri_len(bytes) }
            }

            pub(super) fn list_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::list_len(bytes) }
            }

            pub(super) fn angled_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::angled_len(bytes) }
            }

            pub(super) fn quoted_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::quoted_len(bytes) }
            }

            pub(super) fn colon_len(bytes: &[u8]) -> usize {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::colon_len(bytes) }
            }

            pub(super) fn colon_value_len(bytes: &[u8]) -> (usize, usize) {
                // SAFETY: only reachable through `scanner`, which checked the CPU has the feature.
                unsafe { $backend::colon_value_len(bytes) }
            }
        }
    };
}

safe_wrappers!(sse2_safe, sse2);
safe_wrappers!(avx2_safe, avx2);

/// Defines a top-level function dispatching on the cached backend.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(bytes: &[u8]) -> usize {
            match current() {
                #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
                // SAFETY: `CURRENT` holds `AVX2` only if AVX2 is supported (`set_backend` and
                // `choose` check `is_supported`), so the AVX2 target feature is present.
                AVX2 => unsafe { avx2::$name(bytes) },
                #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
                // SAFETY: `CURRENT` holds `SSE2` only if SSE2 is supported (it always is on
                // `x86_64`: it is part of the baseline).
                SSE2 => unsafe { sse2::$name(bytes) },
                _ => swar::$name(bytes),
            }
        }
    };
}

dispatch! {
    /// Length of the leading run of RFC 3261 `token` bytes: ``ALPHA / DIGIT / "-" / "." / "!" /
    /// "%" / "*" / "_" / "+" / "`" / "'" / "~"`` (see [`is_token`]).
    token_len
}

dispatch! {
    /// Length of the leading run of header-value bytes: HTAB, `0x20..=0x7E`, `0x80..=0xFF`. Stops
    /// at any other control byte (CR, LF, NUL, ...) and at DEL `0x7F` (see [`is_value`]).
    value_len
}

dispatch! {
    /// Length of the leading run of Request-URI bytes: visible ASCII `0x21..=0x7E`; stops at SP,
    /// controls, DEL and bytes `>= 0x80` (see [`is_uri`]).
    uri_len
}

dispatch! {
    /// Length of the leading run of bytes other than `,`, `"` and `<` (see [`is_list_plain`]):
    /// the bytes a header list split skips.
    list_len
}

dispatch! {
    /// Length of the leading run of bytes other than `>` (see [`is_angled`]).
    angled_len
}

dispatch! {
    /// Length of the leading run of quoted-string text without escapes: header-value bytes other
    /// than `"` and `\` (see [`is_quoted_text`]).
    quoted_len
}

// ---------------------------------------------------------------------------------------------
// Backends as types: dispatch once per message instead of once per scan
// ---------------------------------------------------------------------------------------------

/// A backend as a (zero-sized) value, so that a whole routine (the message parser) can be
/// compiled once per backend with the scans inlined, and the backend chosen once per call of
/// that routine ([`dispatch`]) instead of once per scanned run.
pub trait Scan: Copy {
    /// See [`token_len`].
    fn token_len(self, bytes: &[u8]) -> usize;
    /// See [`value_len`].
    fn value_len(self, bytes: &[u8]) -> usize;
    /// See [`uri_len`].
    fn uri_len(self, bytes: &[u8]) -> usize;
    /// `(c, v)`: `v = value_len(bytes)`, and `c` the offset of the first `:` in `bytes[..v]`, or
    /// `v` if there is none. From one vector load when that settles both (a header line: where
    /// its name may end, and the end of its content).
    #[inline(always)]
    fn colon_value_len(self, bytes: &[u8]) -> (usize, usize) {
        let content = self.value_len(bytes);
        let colon = memchr::memchr(b':', &bytes[..content]).unwrap_or(content);
        (colon, content)
    }
}

/// The portable backend as a type.
#[derive(Copy, Clone, Debug)]
pub struct PortableScan;

impl Scan for PortableScan {
    #[inline(always)]
    fn token_len(self, bytes: &[u8]) -> usize {
        swar::token_len(bytes)
    }
    #[inline(always)]
    fn value_len(self, bytes: &[u8]) -> usize {
        swar::value_len(bytes)
    }
    #[inline(always)]
    fn uri_len(self, bytes: &[u8]) -> usize {
        swar::uri_len(bytes)
    }
    #[inline(always)]
    fn colon_value_len(self, bytes: &[u8]) -> (usize, usize) {
        swar::colon_value_len(bytes)
    }
}

/// Whatever backend is cached, looked up on every call (for code off the hot path).
#[derive(Copy, Clone, Debug)]
pub struct CurrentScan;

impl Scan for CurrentScan {
    #[inline]
    fn token_len(self, bytes: &[u8]) -> usize {
        token_len(bytes)
    }
    #[inline]
    fn value_len(self, bytes: &[u8]) -> usize {
        value_len(bytes)
    }
    #[inline]
    fn uri_len(self, bytes: &[u8]) -> usize {
        uri_len(bytes)
    }
}

/// Defines a vector backend's type. Its private field means only this module makes one, and it
/// does so only when the CPU supports the backend: holding one is the proof the `unsafe` calls
/// below rely on.
macro_rules! vector_scan {
    ($(#[$doc:meta])* $ty:ident, $backend:ident) => {
        $(#[$doc])*
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        #[derive(Copy, Clone, Debug)]
        pub struct $ty(());

        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        impl Scan for $ty {
            #[inline(always)]
            fn token_len(self, bytes: &[u8]) -> usize {
                // SAFETY: a value of this type exists only if the CPU supports the backend.
                unsafe { $backend::token_len(bytes) }
            }
            #[inline(always)]
            fn value_len(self, bytes: &[u8]) -> usize {
                // SAFETY: a value of this type exists only if the CPU supports the backend.
                unsafe { $backend::value_len(bytes) }
            }
            #[inline(always)]
            fn uri_len(self, bytes: &[u8]) -> usize {
                // SAFETY: a value of this type exists only if the CPU supports the backend.
                unsafe { $backend::uri_len(bytes) }
            }
            #[inline(always)]
            fn colon_value_len(self, bytes: &[u8]) -> (usize, usize) {
                // SAFETY: a value of this type exists only if the CPU supports the backend.
                unsafe { $backend::colon_value_len(bytes) }
            }
        }
    };
}

vector_scan!(
    /// The SSE2 backend as a type.
    Sse2Scan,
    sse2
);
vector_scan!(
    /// The AVX2 backend as a type.
    Avx2Scan,
    avx2
);

/// A routine generic over the backend, for [`dispatch`] (closures cannot be generic).
pub trait WithScan {
    type Output;
    fn run<S: Scan>(self, scan: S) -> Self::Output;
}

/// Runs `job` with the cached backend, compiled for it: under AVX2 the job is instantiated
/// inside an `avx2`-enabled function, so the vector scans inline into it.
#[inline]
pub fn dispatch<J: WithScan>(job: J) -> J::Output {
    // SAFETY: the cached backend is always one `is_supported` accepted (`set_backend` and
    // `choose` check it).
    unsafe { run_on(backend(), job) }
}

/// Runs `job` on `backend` if this CPU and build can run it (tests compare the backends on
/// whole routines this way, without touching the process-wide choice).
pub fn dispatch_to<J: WithScan>(backend: Backend, job: J) -> Option<J::Output> {
    // SAFETY: checked just before.
    backend
        .is_supported()
        .then(|| unsafe { run_on(backend, job) })
}

/// # Safety
/// `backend` must be supported by this CPU ([`Backend::is_supported`]).
#[inline]
unsafe fn run_on<J: WithScan>(backend: Backend, job: J) -> J::Output {
    match backend {
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        // SAFETY: the caller guarantees AVX2, which is what `run_avx2` and `Avx2Scan` require.
        Backend::Avx2 => unsafe { run_avx2(job, Avx2Scan(())) },
        #[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
        // SAFETY: as above for SSE2.
        Backend::Sse2 => unsafe { run_sse2(job, Sse2Scan(())) },
        _ => job.run(PortableScan),
    }
}

#[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
#[target_feature(enable = "avx2")]
fn run_avx2<J: WithScan>(job: J, scan: Avx2Scan) -> J::Output {
    job.run(scan)
}

#[cfg(all(target_arch = "x86_64", not(feature = "portable-scan"), not(miri)))]
#[target_feature(enable = "sse2")]
fn run_sse2<J: WithScan>(job: J, scan: Sse2Scan) -> J::Output {
    job.run(scan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The three classes: name, predicate, and a backend's function for it.
    type Class = (
        &'static str,
        fn(u8) -> bool,
        fn(&Scanner) -> fn(&[u8]) -> usize,
    );
    const CLASSES: [Class; 7] = [
        ("token", |b| is_token(b), |s| s.token_len),
        ("value", |b| is_value(b), |s| s.value_len),
        ("uri", |b| is_uri(b), |s| s.uri_len),
        ("list", |b| is_list_plain(b), |s| s.list_len),
        ("angled", |b| is_angled(b), |s| s.angled_len),
        ("quoted", |b| is_quoted_text(b), |s| s.quoted_len),
        ("colon", |b| is_not_colon(b), |s| s.colon_len),
    ];

    /// The scalar reference: the plain definition, one byte at a time with the predicate.
    fn reference(pred: fn(u8) -> bool, bytes: &[u8]) -> usize {
        bytes.iter().position(|&b| !pred(b)).unwrap_or(bytes.len())
    }

    fn supported() -> Vec<(Backend, Scanner)> {
        Backend::ALL
            .into_iter()
            .filter_map(|b| scanner(b).map(|s| (b, s)))
            .collect()
    }

    fn allowed(pred: fn(u8) -> bool) -> Vec<u8> {
        (0..=255u8).filter(|&b| pred(b)).collect()
    }

    /// Every byte value at every offset `0..80` of buffers of length `0..=100` that are otherwise
    /// all allowed bytes (cycling through the whole class, so each allowed byte visits every lane).
    fn exhaustive(class: usize) {
        let (name, pred, get) = CLASSES[class];
        let ok = allowed(pred);
        for (backend, s) in supported() {
            let f = get(&s);
            for len in 0..=100usize {
                let mut buf: Vec<u8> = (0..len).map(|k| ok[(k * 7 + len) % ok.len()]).collect();
                assert_eq!(f(&buf), len, "{backend} {name} all-allowed len {len}");
                for off in 0..len.min(80) {
                    let keep = buf[off];
                    for v in 0..=255u8 {
                        buf[off] = v;
                        let want = if pred(v) { len } else { off };
                        let got = f(&buf);
                        assert_eq!(
                            got, want,
                            "{backend} {name} len {len} byte {v:#04x} at {off}"
                        );
                    }
                    buf[off] = keep;
                }
            }
        }
    }

    /// What [`Scan::colon_value_len`] answers, from the plain definitions.
    fn colon_value_reference(bytes: &[u8]) -> (usize, usize) {
        let content = reference(is_value, bytes);
        (reference(is_not_colon, &bytes[..content]), content)
    }

    /// The fused scan against the two it stands for: every byte value at every offset `0..80` of
    /// buffers of length `0..=100` made of token bytes (so the byte placed is where either run
    /// may end), and once more after a `"Via: "` (a header line's shape, its colon early).
    #[test]
    fn exhaustive_colon_value() {
        let ok = allowed(is_token);
        for (backend, s) in supported() {
            for len in 0..=100usize {
                for prefix in [&b""[..], b"Via: "] {
                    let mut buf: Vec<u8> = prefix.to_vec();
                    buf.extend((0..len).map(|k| ok[(k * 7 + len) % ok.len()]));
                    let n = buf.len();
                    for off in 0..n.min(80) {
                        let keep = buf[off];
                        for v in 0..=255u8 {
                            buf[off] = v;
                            let want = colon_value_reference(&buf);
                            assert_eq!(
                                (s.colon_value_len)(&buf),
                                want,
                                "{backend} len {n} byte {v:#04x} at {off}"
                            );
                        }
                        buf[off] = keep;
                    }
                }
            }
        }
    }

    #[test]
    fn exhaustive_token() {
        exhaustive(0);
    }

    #[test]
    fn exhaustive_value() {
        exhaustive(1);
    }

    #[test]
    fn exhaustive_uri() {
        exhaustive(2);
    }

    #[test]
    fn exhaustive_list() {
        exhaustive(3);
    }

    #[test]
    fn exhaustive_angled() {
        exhaustive(4);
    }

    #[test]
    fn exhaustive_quoted() {
        exhaustive(5);
    }

    #[test]
    fn exhaustive_colon() {
        exhaustive(6);
    }

    #[test]
    fn table_matches_predicates() {
        for b in 0..=255u8 {
            assert_eq!(CLASS[b as usize] & TOKEN != 0, is_token(b), "{b:#04x}");
            assert_eq!(CLASS[b as usize] & VALUE != 0, is_value(b), "{b:#04x}");
            assert_eq!(CLASS[b as usize] & URI != 0, is_uri(b), "{b:#04x}");
            assert_eq!(CLASS[b as usize] & LIST != 0, is_list_plain(b), "{b:#04x}");
            assert_eq!(CLASS[b as usize] & ANGLED != 0, is_angled(b), "{b:#04x}");
            assert_eq!(
                CLASS[b as usize] & QUOTED != 0,
                is_quoted_text(b),
                "{b:#04x}"
            );
            assert_eq!(
                CLASS[b as usize] & NOT_COLON != 0,
                is_not_colon(b),
                "{b:#04x}"
            );
        }
    }

    #[test]
    fn classes_by_hand() {
        for b in b"azAZ09-.!%*_+`'~" {
            assert!(is_token(*b), "{}", *b as char);
        }
        for b in b"()<>@,;:\\\"/[]?={} \t\r\n\x7f\x80\xff" {
            assert!(!is_token(*b), "{b:#04x}");
        }
        assert!(is_value(b'\t') && is_value(b' ') && is_value(0x80) && is_value(0xFF));
        assert!(!is_value(b'\r') && !is_value(b'\n') && !is_value(0) && !is_value(0x7F));
        assert!(is_uri(b'!') && is_uri(b'~') && !is_uri(b' ') && !is_uri(0x7F) && !is_uri(0x80));
        assert_eq!(token_len(b"INVITE sip:bob@biloxi.com SIP/2.0"), 6);
        assert_eq!(uri_len(b"sip:bob@biloxi.com SIP/2.0"), 18);
        assert_eq!(
            value_len(b"SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"),
            52
        );
        assert_eq!(value_len(b""), 0);
        assert_eq!(
            list_len(b"SIP/2.0/UDP h;branch=z9hG4bKa, SIP/2.0/TCP g"),
            29
        );
        assert_eq!(list_len(b"Bob <sip:b@h>"), 4);
        assert_eq!(list_len(b"\"Bob\""), 0);
        assert_eq!(angled_len(b"sip:a@b;lr>;x"), 10);
        assert_eq!(quoted_len(b"Alice Liddell\" <sip:a@b>"), 13);
        assert_eq!(quoted_len(b"a\\\"b\""), 1);
        assert_eq!(quoted_len(b"a\tb\x80c\r\n"), 5);
        for b in [b'"', b'\\', b'\r', b'\n', 0, 0x7F] {
            assert!(!is_quoted_text(b), "{b:#04x}");
        }
    }

    #[test]
    fn backend_selection() {
        assert!(Backend::Portable.is_supported());
        for b in Backend::ALL {
            assert_eq!(scanner(b).is_some(), b.is_supported(), "{b}");
            assert_eq!(Backend::from_name(b.name()), Some(b));
            assert_eq!(Backend::from_name(&b.name().to_uppercase()), Some(b));
        }
        assert_eq!(Backend::from_name("neon"), None);

        let best = Backend::ALL
            .into_iter()
            .rev()
            .find(|b| b.is_supported())
            .unwrap();
        assert_eq!(choose(None), best);
        assert_eq!(choose(Some("")), best);
        assert_eq!(choose(Some("nonsense")), best);
        assert_eq!(choose(Some("portable")), Backend::Portable);
        for b in Backend::ALL {
            let want = if b.is_supported() { b } else { best };
            assert_eq!(choose(Some(b.name())), want, "{b}");
        }
        #[cfg(any(feature = "portable-scan", miri, not(target_arch = "x86_64")))]
        {
            assert_eq!(best, Backend::Portable);
            assert_eq!(backend(), Backend::Portable);
        }

        // The only test that changes the process-wide backend. Others running meanwhile still
        // get right answers: every backend returns the same thing.
        let before = backend();
        for b in Backend::ALL {
            if b.is_supported() {
                assert_eq!(set_backend(b), Ok(()));
                assert_eq!(backend(), b);
                assert_eq!(token_len(b"REGISTER sip:x SIP/2.0"), 8);
                assert_eq!(value_len(b"a\tb \x80\x7fc"), 5);
                assert_eq!(uri_len(b"sip:x SIP/2.0"), 5);
            } else {
                assert_eq!(set_backend(b), Err(Unsupported(b)));
                assert_ne!(backend(), b);
            }
        }
        set_backend(before).unwrap();
        assert_eq!(backend(), before);
    }

    /// `SIPD_SCAN` is read at first use: run [`env_override_child`] in fresh processes (the cache
    /// is process-wide, so this cannot be checked in-process).
    #[test]
    fn env_override_is_read_at_first_use() {
        let exe = std::env::current_exe().unwrap();
        let best = Backend::ALL
            .into_iter()
            .rev()
            .find(|b| b.is_supported())
            .unwrap();
        for (value, want) in [
            ("portable", Backend::Portable),
            (
                "sse2",
                if Backend::Sse2.is_supported() {
                    Backend::Sse2
                } else {
                    best
                },
            ),
            (
                "AVX2",
                if Backend::Avx2.is_supported() {
                    Backend::Avx2
                } else {
                    best
                },
            ),
            ("neon", best),
        ] {
            let out = std::process::Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "sip::scan::tests::env_override_child",
                ])
                .args(["--test-threads", "1", "--nocapture"])
                .env("SIPD_SCAN", value)
                .env("SIPD_SCAN_EXPECT", want.name())
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "SIPD_SCAN={value}: {stdout}");
            assert!(
                stdout.contains("1 passed"),
                "SIPD_SCAN={value}: child did not run: {stdout}"
            );
        }
    }

    #[test]
    #[ignore = "run in a child process by env_override_is_read_at_first_use"]
    fn env_override_child() {
        if let Ok(want) = std::env::var("SIPD_SCAN_EXPECT") {
            assert_eq!(backend().name(), want);
        }
    }

    /// Byte vectors mostly made of `pred`'s bytes (so runs are long), with a random start so
    /// the slice's alignment varies too.
    fn biased(pred: fn(u8) -> bool) -> impl Strategy<Value = (Vec<u8>, usize)> {
        let ok = allowed(pred);
        let byte = prop_oneof![40 => proptest::sample::select(ok), 1 => any::<u8>()];
        (proptest::collection::vec(byte, 0..300), 0..40usize)
    }

    fn check_all(bytes: &[u8], start: usize) -> Result<(), TestCaseError> {
        let bytes = &bytes[start.min(bytes.len())..];
        for (name, pred, get) in CLASSES {
            let want = reference(pred, bytes);
            for (backend, s) in supported() {
                prop_assert_eq!(get(&s)(bytes), want, "{} {}", backend, name);
            }
        }
        prop_assert_eq!(token_len(bytes), reference(is_token, bytes));
        prop_assert_eq!(value_len(bytes), reference(is_value, bytes));
        prop_assert_eq!(uri_len(bytes), reference(is_uri, bytes));
        prop_assert_eq!(list_len(bytes), reference(is_list_plain, bytes));
        prop_assert_eq!(angled_len(bytes), reference(is_angled, bytes));
        prop_assert_eq!(quoted_len(bytes), reference(is_quoted_text, bytes));
        let fused = colon_value_reference(bytes);
        prop_assert_eq!(CurrentScan.colon_value_len(bytes), fused);
        for (backend, s) in supported() {
            prop_assert_eq!(
                (s.colon_value_len)(bytes),
                fused,
                "{} colon_value_len",
                backend
            );
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn backends_agree_token_biased((bytes, start) in biased(is_token)) {
            check_all(&bytes, start)?;
        }

        #[test]
        fn backends_agree_value_biased((bytes, start) in biased(is_value)) {
            check_all(&bytes, start)?;
        }

        #[test]
        fn backends_agree_uri_biased((bytes, start) in biased(is_uri)) {
            check_all(&bytes, start)?;
        }

        #[test]
        fn backends_agree_list_biased((bytes, start) in biased(is_list_plain)) {
            check_all(&bytes, start)?;
        }

        #[test]
        fn backends_agree_angled_biased((bytes, start) in biased(is_angled)) {
            check_all(&bytes, start)?;
        }

        #[test]
        fn backends_agree_quoted_biased((bytes, start) in biased(is_quoted_text)) {
            check_all(&bytes, start)?;
        }

        #[test]
        fn backends_agree_any(bytes in proptest::collection::vec(any::<u8>(), 0..100), start in 0..20usize) {
            check_all(&bytes, start)?;
        }
    }
}
