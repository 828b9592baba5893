//! Portable backend: SWAR ("SIMD within a register"), 8 bytes at a time in a `u64`, plus a
//! table-driven scalar loop for inputs shorter than 4 bytes. No `unsafe`.
//!
//! Each classifier returns a word whose bit 7 of byte `k` is set iff byte `k` is *not* in the
//! class (other bits are zero). Words are loaded little-endian on every target, so byte `k` of the
//! slice is byte `k` of the word and `trailing_zeros / 8` is the offset of the first bad byte.
//!
//! The per-byte tests are exact (no carry or borrow crosses a byte boundary): they work on the low
//! 7 bits of each byte, where adding at most `0x7F` cannot overflow into the next byte, and look at
//! bit 7 separately.

use super::{ANGLED, LIST, NOT_COLON, QUOTED, TOKEN, URI, VALUE};

/// `0x01` in every byte.
const LO: u64 = u64::from_ne_bytes([0x01; 8]);
/// `0x80` in every byte.
const HI: u64 = u64::from_ne_bytes([0x80; 8]);
/// `0x7F` in every byte.
const LOW7: u64 = !HI;

/// Bit 7 of each byte set iff that byte of `x` is `>= n`, for `1 <= n <= 0x80`. `low7` is
/// `x & LOW7`. Other bits are garbage: callers mask with [`HI`] at the end.
#[inline(always)]
const fn ge(x: u64, low7: u64, n: u8) -> u64 {
    // Bytes >= 0x80 have bit 7 set in `x`. Below that, low7 + (0x80 - n) reaches 0x80 iff
    // low7 >= n, and stays <= 0x7F + 0x7F = 0xFE, so no carry leaves the byte.
    low7.wrapping_add(LO * (0x80 - n as u64)) | x
}

/// Bit 7 of each byte set iff that byte of `x` equals `c`. Other bits are garbage.
#[inline(always)]
const fn eq(x: u64, c: u8) -> u64 {
    let y = x ^ (LO * c as u64);
    // (y & 0x7F) + 0x7F has bit 7 set iff the low 7 bits are not all zero; `| y` adds bit 7 of y.
    !((y & LOW7).wrapping_add(LOW7) | y)
}

/// Bit 7 of each byte set iff that byte is not a `token` byte.
#[inline(always)]
const fn token_bad(x: u64) -> u64 {
    let low7 = x & LOW7;
    // ASCII letters: fold case by setting bit 5; only letters land in 'a'..='z' after folding.
    let fx = x | (LO * 0x20);
    let flow7 = low7 | (LO * 0x20);
    let alpha = ge(fx, flow7, b'a') & !ge(fx, flow7, b'z' + 1);
    let digit = ge(x, low7, b'0') & !ge(x, low7, b'9' + 1);
    // '*' '+' (0x2A..=0x2B), '-' '.' (0x2D..=0x2E), '_' '`' (0x5F..=0x60).
    let star_plus = ge(x, low7, b'*') & !ge(x, low7, b'+' + 1);
    let dash_dot = ge(x, low7, b'-') & !ge(x, low7, b'.' + 1);
    let under_tick = ge(x, low7, b'_') & !ge(x, low7, b'`' + 1);
    let singles = eq(x, b'!') | eq(x, b'%') | eq(x, b'\'') | eq(x, b'~');
    !(alpha | digit | star_plus | dash_dot | under_tick | singles) & HI
}

/// Bit 7 of each byte set iff that byte is not a header-value byte.
#[inline(always)]
const fn value_bad(x: u64) -> u64 {
    let low7 = x & LOW7;
    // ge(0x20) is also true for bytes >= 0x80, which are allowed.
    let ok = eq(x, b'\t') | (ge(x, low7, 0x20) & !eq(x, 0x7F));
    !ok & HI
}

/// Bit 7 of each byte set iff that byte is not a Request-URI byte.
#[inline(always)]
const fn uri_bad(x: u64) -> u64 {
    let low7 = x & LOW7;
    // ge(0x7F) is true for DEL and for every byte >= 0x80.
    let ok = ge(x, low7, 0x21) & !ge(x, low7, 0x7F);
    !ok & HI
}

/// Bit 7 of each byte set iff that byte is `,`, `"` or `<` (what a list split stops at).
#[inline(always)]
const fn list_bad(x: u64) -> u64 {
    (eq(x, b',') | eq(x, b'"') | eq(x, b'<')) & HI
}

/// Bit 7 of each byte set iff that byte is `>`.
#[inline(always)]
const fn angled_bad(x: u64) -> u64 {
    eq(x, b'>') & HI
}

/// Bit 7 of each byte set iff that byte is not quoted-string text: not a header-value byte, or
/// `"`, or `\`.
#[inline(always)]
const fn quoted_bad(x: u64) -> u64 {
    value_bad(x) | ((eq(x, b'"') | eq(x, b'\\')) & HI)
}

/// Bit 7 of each byte set iff that byte is `:`.
#[inline(always)]
const fn colon_bad(x: u64) -> u64 {
    eq(x, b':') & HI
}

/// The 8 bytes at `bytes[at..at + 8]`, little-endian (byte `at` is the low byte).
#[inline(always)]
pub(super) fn load64(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The 4 bytes at `bytes[at..at + 4]`, little-endian.
#[inline(always)]
fn load32(bytes: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The scan loop shared by the classes: whole words, then one overlapping word ending at
/// the end of the slice. 4 to 7 bytes: one word made of the first and the last 4 bytes. Fewer: the
/// class table.
#[inline(always)]
fn run(bytes: &[u8], bad: impl Fn(u64) -> u64, class: u8) -> usize {
    let n = bytes.len();
    if n < 8 {
        if n < 4 {
            return super::table_len(bytes, 0, class);
        }
        let b = bad(u64::from(load32(bytes, 0)) | u64::from(load32(bytes, n - 4)) << 32);
        let first = b & 0xFFFF_FFFF;
        if first != 0 {
            return (first.trailing_zeros() / 8) as usize;
        }
        // Byte k of the high half is bytes[n - 4 + k]; the ones below 4 were checked already.
        let last = b >> 32 >> (8 * (8 - n));
        if last != 0 {
            return 4 + (last.trailing_zeros() / 8) as usize;
        }
        return n;
    }
    let mut i = 0;
    while i + 8 <= n {
        let b = bad(load64(bytes, i));
        if b != 0 {
            return i + (b.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    if i < n {
        // The last word overlaps bytes already checked: drop their flags.
        let off = n - 8;
        let b = bad(load64(bytes, off)) >> (8 * (i - off));
        if b != 0 {
            return i + (b.trailing_zeros() / 8) as usize;
        }
    }
    n
}

/// Portable [`super::token_len`].
pub(super) fn token_len(bytes: &[u8]) -> usize {
    run(bytes, token_bad, TOKEN)
}

/// Portable [`super::value_len`].
pub(super) fn value_len(bytes: &[u8]) -> usize {
    run(bytes, value_bad, VALUE)
}

/// Portable [`super::uri_len`].
pub(super) fn uri_len(bytes: &[u8]) -> usize {
    run(bytes, uri_bad, URI)
}

/// Portable [`super::list_len`].
pub(super) fn list_len(bytes: &[u8]) -> usize {
    run(bytes, list_bad, LIST)
}

/// Portable [`super::angled_len`].
pub(super) fn angled_len(bytes: &[u8]) -> usize {
    run(bytes, angled_bad, ANGLED)
}

/// Portable [`super::quoted_len`].
pub(super) fn quoted_len(bytes: &[u8]) -> usize {
    run(bytes, quoted_bad, QUOTED)
}

/// Portable [`super::Scanner::colon_len`].
pub(super) fn colon_len(bytes: &[u8]) -> usize {
    run(bytes, colon_bad, NOT_COLON)
}

/// Portable [`super::Scan::colon_value_len`]: the two scans.
pub(super) fn colon_value_len(bytes: &[u8]) -> (usize, usize) {
    let content = value_len(bytes);
    (colon_len(&bytes[..content]), content)
}
