//! Ethernet II frames with at most one 802.1Q / 802.1ad tag.

use super::{Error, Result};

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType of an 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad (QinQ outer) tag; accepted as a single tag.
pub const ETHERTYPE_QINQ: u16 = 0x88A8;

/// A MAC address.
pub type MacAddr = [u8; 6];

/// A view of an Ethernet frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short one.
    pub const fn new_unchecked(buffer: T) -> Self {
        Frame { buffer }
    }

    /// Wraps a buffer that holds at least the header (and the tag, when tagged).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Frame { buffer };
        let len = f.buffer.as_ref().len();
        if len < HEADER_LEN || (f.is_tagged() && len < HEADER_LEN + VLAN_TAG_LEN) {
            return Err(Error::Truncated);
        }
        Ok(f)
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn be16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[0..6]);
        m
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> MacAddr {
        let mut m = [0; 6];
        m.copy_from_slice(&self.buffer.as_ref()[6..12]);
        m
    }

    /// Whether the frame carries a VLAN tag.
    pub fn is_tagged(&self) -> bool {
        let t = self.be16(12);
        t == ETHERTYPE_VLAN || t == ETHERTYPE_QINQ
    }

    /// The tag control information (PCP, DEI, VLAN id) of a tagged frame.
    pub fn vlan_tci(&self) -> Option<u16> {
        self.is_tagged().then(|| self.be16(14))
    }

    /// The EtherType of the payload (after the tag, if any).
    pub fn ethertype(&self) -> u16 {
        if self.is_tagged() {
            self.be16(16)
        } else {
            self.be16(12)
        }
    }

    /// Header length: 14, or 18 with a tag.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            HEADER_LEN + VLAN_TAG_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload (the IP packet).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&mac);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, mac: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&mac);
    }

    /// Writes the type field(s): an untagged header with `ethertype`, or an 802.1Q tag with `tci`
    /// followed by `ethertype`. The buffer must be long enough for the resulting header.
    pub fn set_ethertype(&mut self, vlan_tci: Option<u16>, ethertype: u16) {
        let b = self.buffer.as_mut();
        match vlan_tci {
            Some(tci) => {
                b[12..14].copy_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
                b[14..16].copy_from_slice(&tci.to_be_bytes());
                b[16..18].copy_from_slice(&ethertype.to_be_bytes());
            }
            None => b[12..14].copy_from_slice(&ethertype.to_be_bytes()),
        }
    }

    /// The payload, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let h = self.header_len();
        &mut self.buffer.as_mut()[h..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_and_tagged() {
        let mut f = [0u8; 20];
        f[0..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        f[6..12].copy_from_slice(&[7, 8, 9, 10, 11, 12]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let v = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(v.dst_addr(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(v.src_addr(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(v.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(v.vlan_tci(), None);
        assert_eq!(v.payload().len(), 6);

        let mut w = Frame::new_unchecked(&mut f[..]);
        w.set_ethertype(Some(0x2064), ETHERTYPE_IPV6);
        let v = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(v.vlan_tci(), Some(0x2064));
        assert_eq!(v.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(v.header_len(), 18);
        assert_eq!(Frame::new_checked(&f[..17]).unwrap_err(), Error::Truncated);
        assert_eq!(Frame::new_checked(&f[..13]).unwrap_err(), Error::Truncated);
    }
}
