//! AVX2 backend: 32 bytes at a time. Every function here is `#[target_feature(enable = "avx2")]`,
//! so calling one from outside this module is `unsafe`: the caller must know the CPU has AVX2
//! (`mod.rs` calls them only when the cached backend is AVX2, which `is_supported` gated).
//!
//! `token` uses the nibble-shuffle trick (`vpshufb` looks up the low and the high nibble of every
//! byte in two 16-entry tables; the byte is a token byte iff the two entries share a bit, see
//! `TOKEN_NIBBLE_LO`); `value` and `uri` are range compares, as in the SSE2 backend.
//!
//! Each classifier returns a 32-bit mask with bit `k` set iff byte `k` is not in the class.

use core::arch::x86_64::{
    __m128i, __m256i, _mm_loadu_si128, _mm256_add_epi8, _mm256_and_si256, _mm256_andnot_si256,
    _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256, _mm256_movemask_epi8,
    _mm256_or_si256, _mm256_set_epi64x, _mm256_set_m128i, _mm256_set1_epi8, _mm256_setzero_si256,
    _mm256_shuffle_epi8, _mm256_srli_epi16,
};

use super::{TOKEN_NIBBLE_HI, TOKEN_NIBBLE_LO, sse2};

/// A 16-entry table in both 128-bit lanes (`vpshufb` looks up within each lane).
#[target_feature(enable = "avx2")]
#[inline]
fn lut(t: [u8; 16]) -> __m256i {
    let lo = i64::from_le_bytes([t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]]);
    let hi = i64::from_le_bytes([t[8], t[9], t[10], t[11], t[12], t[13], t[14], t[15]]);
    _mm256_set_epi64x(hi, lo, hi, lo)
}

/// `0xFF` in each byte of `x` that is in `lo..=hi` (with `hi - lo <= 254`), else `0x00`.
#[target_feature(enable = "avx2")]
#[inline]
fn in_range(x: __m256i, lo: u8, hi: u8) -> __m256i {
    // Shift lo..=hi to -128..=(hi - lo - 128); everything else lands above it.
    let shifted = _mm256_add_epi8(x, _mm256_set1_epi8(0x80u8.wrapping_sub(lo) as i8));
    _mm256_cmpgt_epi8(_mm256_set1_epi8((hi - lo).wrapping_sub(127) as i8), shifted)
}

/// `0xFF` in each byte of `x` equal to `c`.
#[target_feature(enable = "avx2")]
#[inline]
fn eq(x: __m256i, c: u8) -> __m256i {
    _mm256_cmpeq_epi8(x, _mm256_set1_epi8(c as i8))
}

#[target_feature(enable = "avx2")]
#[inline]
fn token_bad(x: __m256i) -> u32 {
    let nibble = _mm256_set1_epi8(0x0F);
    let lo = _mm256_and_si256(x, nibble);
    // 16-bit shift: bits from the neighbouring byte land in the top nibble, masked off.
    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(x), nibble);
    let rows = _mm256_and_si256(
        _mm256_shuffle_epi8(lut(TOKEN_NIBBLE_LO), lo),
        _mm256_shuffle_epi8(lut(TOKEN_NIBBLE_HI), hi),
    );
    _mm256_movemask_epi8(_mm256_cmpeq_epi8(rows, _mm256_setzero_si256())) as u32
}

#[target_feature(enable = "avx2")]
#[inline]
fn uri_bad(x: __m256i) -> u32 {
    !(_mm256_movemask_epi8(in_range(x, 0x21, 0x7E)) as u32)
}

/// `a | b`.
#[target_feature(enable = "avx2")]
#[inline]
fn or(a: __m256i, b: __m256i) -> __m256i {
    _mm256_or_si256(a, b)
}

/// `!a & b`.
#[target_feature(enable = "avx2")]
#[inline]
fn andnot(a: __m256i, b: __m256i) -> __m256i {
    _mm256_andnot_si256(a, b)
}

/// The top bit of every byte, as the low bits of a mask.
#[target_feature(enable = "avx2")]
#[inline]
fn mask(x: __m256i) -> u32 {
    _mm256_movemask_epi8(x) as u32
}

compare_classes!("avx2", __m256i);

/// Loads the 32 bytes at `bytes[at..at + 32]`.
#[target_feature(enable = "avx2")]
#[inline]
fn load(bytes: &[u8], at: usize) -> __m256i {
    assert!(at + 32 <= bytes.len());
    // SAFETY: `at + 32 <= bytes.len()` (asserted above; the callers' loop bounds let the compiler
    // drop the check), so the 32 bytes read are inside the slice; `loadu` has no alignment need.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().add(at).cast()) }
}

/// Loads the 16 bytes at `bytes[at..at + 16]`.
#[target_feature(enable = "avx2")]
#[inline]
fn load16(bytes: &[u8], at: usize) -> __m128i {
    assert!(at + 16 <= bytes.len());
    // SAFETY: `at + 16 <= bytes.len()` (asserted above), so the 16 bytes read are inside the
    // slice; `loadu` has no alignment need.
    unsafe { _mm_loadu_si128(bytes.as_ptr().add(at).cast()) }
}

/// The scan loop: whole vectors, then one overlapping vector ending at the end of the slice.
/// 16 to 31 bytes: one vector of the first and the last 16 bytes. Fewer: the SSE2 backend (which
/// AVX2 implies).
macro_rules! scan {
    ($(#[$doc:meta])* $name:ident, $bad:ident) => {
        $(#[$doc])*
        #[target_feature(enable = "avx2")]
        pub(super) fn $name(bytes: &[u8]) -> usize {
            let n = bytes.len();
            if n < 32 {
                if n < 16 {
                    return sse2::$name(bytes);
                }
                // One vector of the first and the last 16 bytes.
                let b = $bad(_mm256_set_m128i(load16(bytes, n - 16), load16(bytes, 0)));
                if b & 0xFFFF != 0 {
                    return b.trailing_zeros() as usize;
                }
                // Byte k of the high half is bytes[n - 16 + k]; the ones below 16 were checked.
                let b = b >> 16 >> (32 - n);
                return if b != 0 { 16 + b.trailing_zeros() as usize } else { n };
            }
            let mut i = 0;
            while i + 32 <= n {
                let b = $bad(load(bytes, i));
                if b != 0 {
                    return i + b.trailing_zeros() as usize;
                }
                i += 32;
            }
            if i < n {
                // The last vector overlaps bytes already checked: drop their bits.
                let off = n - 32;
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
    /// AVX2 [`super::token_len`].
    token_len, token_bad
}
scan! {
    /// AVX2 [`super::value_len`].
    value_len, value_bad
}
scan! {
    /// AVX2 [`super::uri_len`].
    uri_len, uri_bad
}
scan! {
    /// AVX2 [`super::list_len`].
    list_len, list_bad
}
scan! {
    /// AVX2 [`super::angled_len`].
    angled_len, angled_bad
}
scan! {
    /// AVX2 [`super::quoted_len`].
    quoted_len, quoted_bad
}
scan! {
    /// AVX2 [`super::Scanner::colon_len`].
    colon_len, colon_bad
}

colon_value_len_fn!("avx2", 32);
