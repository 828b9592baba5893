//! UDP datagrams (RFC 768).

use std::net::IpAddr;

use super::{Error, IPPROTO_UDP, Result, checksum};

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps a buffer after checking that the length field is at least 8 and within the buffer.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        let len = p.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let l = usize::from(p.len());
        if l < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if l > len {
            return Err(Error::Truncated);
        }
        Ok(p)
    }

    fn be16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        self.be16(0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        self.be16(2)
    }

    /// Length field (header + payload).
    pub fn len(&self) -> u16 {
        self.be16(4)
    }

    /// Whether the length field says there is no payload.
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) == HEADER_LEN
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        self.be16(6)
    }

    /// The payload, up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum is correct for these addresses (over IPv4 a zero checksum means
    /// "none" and passes; over IPv6 it fails). Mixed families fail.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let d = &self.buffer.as_ref()[..usize::from(self.len())];
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d4)) => {
                self.checksum() == 0
                    || checksum::fold(
                        checksum::pseudo_header_v4(s, d4, IPPROTO_UDP, self.len())
                            + checksum::sum(d),
                    ) == 0xFFFF
            }
            (IpAddr::V6(s), IpAddr::V6(d6)) => {
                self.checksum() != 0
                    && checksum::fold(
                        checksum::pseudo_header_v6(&s, &d6, IPPROTO_UDP, u32::from(self.len()))
                            + checksum::sum(d),
                    ) == 0xFFFF
            }
            _ => false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_be16(&mut self, at: usize, v: u16) {
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, p: u16) {
        self.set_be16(0, p);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, p: u16) {
        self.set_be16(2, p);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, l: u16) {
        self.set_be16(4, l);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, c: u16) {
        self.set_be16(6, c);
    }

    /// Computes and stores the checksum over the pseudo-header of `src`/`dst` (same family).
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) -> Result<()> {
        self.set_checksum(0);
        let l = usize::from(self.len());
        let d = &self.buffer.as_ref()[..l];
        let c = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d4)) => checksum::udp_v4(s, d4, d),
            (IpAddr::V6(s), IpAddr::V6(d6)) => checksum::udp_v6(&s, &d6, d),
            _ => return Err(Error::Malformed),
        };
        self.set_checksum(c);
        Ok(())
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let l = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..l]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_verify_and_reject() {
        let mut b = [0u8; 12];
        let mut p = Packet::new_unchecked(&mut b[..]);
        p.set_src_port(5060);
        p.set_dst_port(5070);
        p.set_len(12);
        p.payload_mut().copy_from_slice(b"ping");
        let (s, d): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        p.fill_checksum(s, d).unwrap();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(s, d));
        assert!(!p.verify_checksum(s, "10.0.0.3".parse().unwrap()));
        assert_eq!(p.payload(), b"ping");
        assert_eq!((p.src_port(), p.dst_port()), (5060, 5070));

        let mut bad = b;
        bad[5] = 7;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::Malformed);
        bad[5] = 13;
        assert_eq!(Packet::new_checked(&bad[..]).unwrap_err(), Error::Truncated);
    }
}
