//! A cursor over the caller's transmit buffer. Writing past the end sets an overflow flag instead
//! of panicking, so a message that does not fit is detected once, at the end, and dropped with a
//! counted reason.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// `n` as 16 lower-case hex digits, most significant first: the nibbles spread into bytes and
/// mapped to ASCII eight at a time (a table lookup per digit was ~60 instructions, and three
/// branches of ours are formatted per forwarded request).
pub fn hex64(n: u64) -> [u8; 16] {
    let mut digits = [0u8; 16];
    digits[..8].copy_from_slice(&hex32_word((n >> 32) as u32).to_be_bytes());
    digits[8..].copy_from_slice(&hex32_word(n as u32).to_be_bytes());
    digits
}

/// The eight hex digits of `x` as ASCII bytes, most significant digit in the top byte.
fn hex32_word(x: u32) -> u64 {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // Byte i (from the bottom) gets nibble i of `x`.
    let mut v = u64::from(x);
    v = (v | (v << 16)) & 0x0000_ffff_0000_ffff;
    v = (v | (v << 8)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v << 4)) & LOW_NIBBLES;
    // Per byte: 1 where the nibble is 10-15 (adding 6 carries into bit 4), no carry between bytes.
    let letters = ((v + 6 * ONES) >> 4) & ONES;
    v + b'0' as u64 * ONES + letters * (b'a' - b'0' - 10) as u64
}

/// Writes `ip` as a dotted quad at the start of `s` (at least 15 bytes); returns its length.
#[inline(always)]
fn ipv4_text(ip: std::net::Ipv4Addr, s: &mut [u8]) -> usize {
    let s = &mut s[..15];
    let mut n = 0;
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            s[n] = b'.';
            n += 1;
        }
        if o >= 100 {
            s[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            s[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        s[n] = b'0' + o % 10;
        n += 1;
    }
    n
}

pub struct Out<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl<'b> Out<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        Out {
            buf,
            len: 0,
            overflow: false,
        }
    }

    #[inline]
    pub fn put(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.overflow = true,
        }
    }

    #[inline]
    pub fn put_str(&mut self, s: &str) {
        self.put(s.as_bytes());
    }

    /// Decimal without allocation.
    pub fn put_u64(&mut self, mut n: u64) {
        // Digits end at 20; the 8 spare bytes after them let a short number (a port, a hop
        // count) go out as one fixed 8-byte copy instead of a variable-length `memcpy` call.
        let mut digits = [0u8; 28];
        let mut i = 20;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let len = 20 - i;
        if len <= 8
            && let Some(dst) = self.buf.get_mut(self.len..self.len + 8)
        {
            dst.copy_from_slice(&digits[i..i + 8]);
            self.len += len;
            return;
        }
        self.put(&digits[i..20]);
    }

    /// Lower-case hex, fixed width (16 digits for a u64).
    #[inline]
    pub fn put_hex64(&mut self, n: u64) {
        self.put(&hex64(n));
    }

    /// An IP address as it appears in a SIP host (IPv6 in brackets).
    pub fn put_ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.put_ipv4(v4),
            IpAddr::V6(v6) => {
                let mut s = StackStr::<48>::new();
                let _ = write!(s, "[{v6}]");
                self.put(s.as_bytes());
            }
        }
    }

    /// Dotted quad without `core::fmt` (it was 7 % of forwarding an INVITE: sent-by,
    /// Record-Route and `received` each format an address).
    pub fn put_ipv4(&mut self, ip: std::net::Ipv4Addr) {
        // With room for the longest address the digits go straight into the buffer (no
        // variable-length copy); near the end they are staged so that overflow is as before.
        if let Some(dst) = self.buf.get_mut(self.len..self.len + 15) {
            let n = ipv4_text(ip, dst);
            self.len += n;
            return;
        }
        let mut s = [0u8; 15];
        let n = ipv4_text(ip, &mut s);
        self.put(&s[..n]);
    }

    /// `host:port` (IPv6 in brackets).
    pub fn put_hostport(&mut self, addr: SocketAddr) {
        self.put_ip(addr.ip());
        self.put(b":");
        self.put_u64(u64::from(addr.port()));
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Takes back the last `n` bytes written.
    pub fn rewind(&mut self, n: usize) {
        self.len = self.len.saturating_sub(n);
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Overwrites already written bytes at `at` (e.g. a Content-Length placeholder).
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        } else {
            self.overflow = true;
        }
    }

    /// `Some(len)` if everything fit.
    pub fn finish(self) -> Option<usize> {
        (!self.overflow).then_some(self.len)
    }
}

/// A fixed-capacity string for formatting addresses without a heap allocation.
pub struct StackStr<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackStr<N> {
    pub fn new() -> Self {
        StackStr {
            buf: [0; N],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl<const N: usize> Default for StackStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> std::fmt::Write for StackStr<N> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex64_matches_the_formatter() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let samples = [
            0,
            1,
            9,
            10,
            15,
            16,
            0xffff_ffff,
            1 << 32,
            u64::MAX,
            0x0123_4567_89ab_cdef,
        ];
        for n in samples.into_iter().chain((0..1000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })) {
            assert_eq!(hex64(n), format!("{n:016x}").as_bytes(), "{n:#x}");
        }
    }

    #[test]
    fn writes_and_detects_overflow() {
        let mut buf = [0u8; 32];
        let mut out = Out::new(&mut buf);
        out.put(b"Max-Forwards: ");
        out.put_u64(69);
        out.put_hostport("[::1]:5060".parse().unwrap());
        assert_eq!(out.written(), b"Max-Forwards: 69[::1]:5060");
        out.put_hex64(0xdead_beef);
        assert!(out.overflowed());
        assert_eq!(out.finish(), None);
        let mut buf = [0u8; 16];
        let mut out = Out::new(&mut buf);
        out.put_hex64(0x0123_4567_89ab_cdef);
        assert_eq!(out.finish(), Some(16));
        assert_eq!(&buf, b"0123456789abcdef");
    }

    proptest::proptest! {
        /// The 8-byte fast copy (short number, room for 8) and the exact put agree with the
        /// formatter, and overflow exactly when the digits do not fit.
        #[test]
        fn u64_matches_display_at_every_room(n in proptest::num::u64::ANY, shift in 0u32..64, room in 0usize..24) {
            let n = n >> shift;
            let want = n.to_string();
            let mut buf = [0u8; 24];
            let mut out = Out::new(&mut buf[..room]);
            out.put_u64(n);
            if want.len() <= room {
                proptest::prop_assert_eq!(out.written(), want.as_bytes());
                proptest::prop_assert!(!out.overflowed());
            } else {
                proptest::prop_assert!(out.overflowed() && out.is_empty());
            }
        }
    }

    /// In place (room for 15) or staged (near the end): the same text, the same overflow.
    #[test]
    fn ipv4_in_place_or_staged_agree_at_every_room() {
        for ip in ["1.2.3.4", "198.51.100.23", "255.255.255.255", "0.0.0.0"] {
            let addr: std::net::Ipv4Addr = ip.parse().unwrap();
            for room in 0..24 {
                let mut buf = [0u8; 24];
                let mut out = Out::new(&mut buf[..room]);
                out.put_ipv4(addr);
                if ip.len() <= room {
                    assert_eq!(out.written(), ip.as_bytes(), "{ip} in {room}");
                    assert!(!out.overflowed());
                } else {
                    assert!(out.overflowed() && out.is_empty(), "{ip} in {room}");
                }
            }
        }
    }

    #[test]
    fn ipv4_hostport() {
        let mut buf = [0u8; 32];
        let mut out = Out::new(&mut buf);
        out.put_hostport("192.0.2.1:5070".parse().unwrap());
        assert_eq!(out.written(), b"192.0.2.1:5070");
    }

    #[test]
    fn ipv4_matches_display_for_every_octet_value() {
        for o in 0..=255u8 {
            for ip in [
                std::net::Ipv4Addr::new(o, 0, 255, o),
                std::net::Ipv4Addr::new(10, o, 100, 9),
            ] {
                let mut buf = [0u8; 16];
                let mut out = Out::new(&mut buf);
                out.put_ipv4(ip);
                assert_eq!(out.written(), ip.to_string().as_bytes());
            }
        }
    }
}
