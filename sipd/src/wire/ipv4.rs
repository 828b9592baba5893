//! IPv4 packets (RFC 791).

use std::net::Ipv4Addr;

use super::{Error, Result, checksum};

/// Length of a header without options.
pub const MIN_HEADER_LEN: usize = 20;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking the version, the header length and that the buffer holds
    /// `total_len` bytes (it may hold more: Ethernet padding).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < MIN_HEADER_LEN {
            return Err(Error::Truncated);
        }
        if p.version() != 4 {
            return Err(Error::Malformed);
        }
        let hl = p.header_len();
        let total = usize::from(p.total_len());
        if hl < MIN_HEADER_LEN || total < hl {
            return Err(Error::Malformed);
        }
        if len < total {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn be16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.b()[at], self.b()[at + 1]])
    }

    /// The version field (4).
    pub fn version(&self) -> u8 {
        self.b()[0] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[0] & 0x0F) * 4
    }

    /// DSCP and ECN byte.
    pub fn tos(&self) -> u8 {
        self.b()[1]
    }

    /// Total length (header + payload).
    pub fn total_len(&self) -> u16 {
        self.be16(2)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        self.be16(4)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        self.be16(6) & 0x4000 != 0
    }

    /// Whether this is a fragment (more-fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.be16(6) & 0x3FFF != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.b()[8]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.b()[9]
    }

    /// The header checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(10)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.b();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::ipv4_header(&self.b()[..self.header_len()]) == 0
    }

    /// The payload, up to `total_len` (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.b()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_be16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Writes version 4 and a header length of `len` bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, len: usize) {
        debug_assert!(len.is_multiple_of(4) && (MIN_HEADER_LEN..=60).contains(&len));
        self.buffer.as_mut()[0] = 0x40 | (len / 4) as u8;
    }

    /// Sets DSCP/ECN.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[1] = tos;
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        self.set_be16(2, len);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, ident: u16) {
        self.set_be16(4, ident);
    }

    /// Sets the flags and fragment offset to "not fragmented", with DF as given.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        self.set_be16(6, if dont_frag { 0x4000 } else { 0 });
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[8] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[9] = protocol;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        self.set_be16(10, c);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[12..16].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[16..20].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = self.header_len();
        let c = checksum::ipv4_header(&self.buffer.as_ref()[..hl]);
        self.set_checksum(c);
    }

    /// The payload, mutably, up to `total_len`.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[h..t]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_build() {
        let mut b = [0u8; 28 + 4];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_version_and_header_len(20);
        p.set_total_len(28);
        p.set_ident(0x1234);
        p.set_unfragmented(true);
        p.set_ttl(64);
        p.set_protocol(17);
        p.set_src_addr(Ipv4Addr::new(10, 0, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(10, 0, 0, 2));
        p.fill_checksum();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(p.payload().len(), 8, "padding beyond total_len excluded");
        assert_eq!(p.src_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!((p.ttl(), p.protocol(), p.ident()), (64, 17, 0x1234));
    }

    #[test]
    fn rejects_bad_headers() {
        let mut b = [0u8; 20];
        b[0] = 0x45;
        b[3] = 40;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        b[0] = 0x44;
        b[3] = 20;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        b[0] = 0x65;
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Malformed);
        assert_eq!(Packet::new_checked(&b[..19]).unwrap_err(), Error::Truncated);
    }
}
