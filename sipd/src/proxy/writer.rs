//! A cursor over the caller's transmit buffer. Writing past the end sets an overflow flag instead
//! of panicking, so a message that does not fit is detected once, at the end, and dropped with a
//! counted reason.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

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
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
    }

    /// Lower-case hex, fixed width (16 digits for a u64).
    pub fn put_hex64(&mut self, n: u64) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut digits = [0u8; 16];
        for (i, d) in digits.iter_mut().enumerate() {
            *d = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
        }
        self.put(&digits);
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
        let mut s = [0u8; 15];
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
