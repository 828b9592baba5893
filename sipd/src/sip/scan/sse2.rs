//! SSE2 backend: 16 bytes at a time. SSE2 is part of the `x86_64` baseline, but Rust still wants
//! the feature named on a function before its intrinsics are safe to call, so every function here
//! is `#[target_feature(enable = "sse2")]` and callers outside the module use `unsafe` (with the
//! baseline, and `is_supported`, as the reason), exactly as for AVX2.
//!
//! SSE2 has no byte shuffle (`pshufb` is SSSE3), so every class is a few range compares. SSE2 only
//! compares *signed* bytes; an unsigned range test `lo <= x <= hi` becomes one add and one signed
//! compare: `(x + (0x80 - lo)) as i8 < (hi - lo - 127) as i8` (see [`in_range`]).
//!
//! Each classifier returns a 16-bit mask with bit `k` set iff byte `k` is not in the class.

use core::arch::x86_64::{
    __m128i, _mm_add_epi8, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128,
    _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x, _mm_set1_epi8,
};

use super::swar;

/// `0xFF` in each byte of `x` that is in `lo..=hi` (with `hi - lo <= 254`), else `0x00`.
#[target_feature(enable = "sse2")]
#[inline]
fn in_range(x: __m128i, lo: u8, hi: u8) -> __m128i {
    // Shift lo..=hi to -128..=(hi - lo - 128); everything else lands above it.
    let shifted = _mm_add_epi8(x, _mm_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
    _mm_cmplt_epi8(shifted, _mm_set1_epi8((hi - lo).wrapping_sub(127) as i8))
}

/// `0xFF` in each byte of `x` equal to `c`.
#[target_feature(enable = "sse2")]
#[inline]
fn eq(x: __m128i, c: u8) -> __m128i {
    _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8))
}

/// Bits of the bytes whose mask byte is zero (the bytes *not* in the class), given the class mask.
#[target_feature(enable = "sse2")]
#[inline]
fn bad_bits(ok: __m128i) -> u32 {
    !(_mm_movemask_epi8(ok) as u32) & 0xFFFF
}

#[target_feature(enable = "sse2")]
#[inline]
fn token_bad(x: __m128i) -> u32 {
    let alpha = in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), b'a', b'z');
    let digit = in_range(x, b'0', b'9');
    let star_plus = in_range(x, b'*', b'+');
    let dash_dot = in_range(x, b'-', b'.');
    let under_tick = in_range(x, b'_', b'`');
    let singles = _mm_or_si128(
        _mm_or_si128(eq(x, b'!'), eq(x, b'%')),
        _mm_or_si128(eq(x, b'\''), eq(x, b'~')),
    );
    let ok = _mm_or_si128(
        _mm_or_si128(
            _mm_or_si128(alpha, digit),
            _mm_or_si128(star_plus, dash_dot),
        ),
        _mm_or_si128(under_tick, singles),
    );
    bad_bits(ok)
}

#[target_feature(enable = "sse2")]
#[inline]
fn uri_bad(x: __m128i) -> u32 {
    bad_bits(in_range(x, 0x21, 0x7E))
}

/// `a | b`.
#[target_feature(enable = "sse2")]
#[inline]
fn or(a: __m128i, b: __m128i) -> __m128i {
    _mm_or_si128(a, b)
}

/// `!a & b`.
#[target_feature(enable = "sse2")]
#[inline]
fn andnot(a: __m128i, b: __m128i) -> __m128i {
    _mm_andnot_si128(a, b)
}

/// The top bit of every byte, as the low bits of a mask.
#[target_feature(enable = "sse2")]
#[inline]
fn mask(x: __m128i) -> u32 {
    _mm_movemask_epi8(x) as u32
}

compare_classes!("sse2", __m128i);

/// Loads the 16 bytes at `bytes[at..at + 16]`.
#[target_feature(enable = "sse2")]
#[inline]
fn load(bytes: &[u8], at: usize) -> __m128i {
    assert!(at + 16 <= bytes.len());
    // SAFETY: `at + 16 <= bytes.len()` (asserted above; the callers' loop bounds let the compiler
    // drop the check), so the 16 bytes read are inside the slice; `loadu` has no alignment need.
    unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast()) }
}

/// The scan loop: whole vectors, then one overlapping vector ending at the end of the slice.
/// 8 to 15 bytes: one vector of the first and the last 8 bytes. Fewer: the portable backend.
macro_rules! scan {
    ($(#[$doc:meta])* $name:ident, $bad:ident) => {
        $(#[$doc])*
        #[target_feature(enable = "sse2")]
        #[inline]
        pub(super) fn $name(bytes: &[u8]) -> usize {
            let n = bytes.len();
            if n < 16 {
                if n < 8 {
                    return swar::$name(bytes);
                }
                // One vector of the first and the last 8 bytes.
                let first = swar::load64(bytes, 0) as i64;
                let last = swar::load64(bytes, n - 8) as i64;
                let b = $bad(_mm_set_epi64x(last, first));
                if b & 0xFF != 0 {
                    return b.trailing_zeros() as usize;
                }
                // Byte k of the high half is bytes[n - 8 + k]; the ones below 8 were checked.
                let b = b >> 8 >> (16 - n);
                return if b != 0 { 8 + b.trailing_zeros() as usize } else { n };
            }
            let mut i = 0;
            while i + 16 <= n {
                let b = $bad(load(bytes, i));
                if b != 0 {
                    return i + b.trailing_zeros() as usize;
                }
                i += 16;
            }
            if i < n {
                // The last vector overlaps bytes already checked: drop their bits.
                let off = n - 16;
                let b = $bad(load(bytes, off)) >> (i - off);
                if b != 0 {
                    return i + b.trailing_zeros() as usize;
                }
            }
            n
        }
    };
}

scan! {
    /// SSE2 [`super::token_len`].
    token_len, token_bad
}
scan! {
    /// SSE2 [`super::value_len`].
    value_len, value_bad
}
scan! {
    /// SSE2 [`super::uri_len`].
    uri_len, uri_bad
}
scan! {
    /// SSE2 [`super::list_len`].
    list_len, list_bad
}
scan! {
    /// SSE2 [`super::angled_len`].
    angled_len, angled_bad
}
scan! {
    /// SSE2 [`super::quoted_len`].
    quoted_len, quoted_bad
}
scan! {
    /// SSE2 [`super::Scanner::colon_len`].
    colon_len, colon_bad
}

colon_value_len_fn!("sse2", 16);
