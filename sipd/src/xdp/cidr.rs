//! IPv4/IPv6 prefixes for the guard lists, stored as IPv4-mapped IPv6 keys.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use sipd_common::{AddrKey, V4_MAPPED_PREFIX_OFFSET};

/// An address prefix such as `10.0.0.0/8`, `fd00::/8` or a bare address (a host prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix_len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrParseError {
    /// The address part is not an IP address.
    #[error("not an IP address: {0:?}")]
    Addr(String),
    /// The length is not a number within the family's width.
    #[error("bad prefix length {0:?}")]
    Len(String),
}

impl Cidr {
    /// A prefix; host bits are cleared. `None` when `prefix_len` is too long for the family.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let m = if prefix_len == 0 {
                    0
                } else {
                    u32::MAX << (32 - prefix_len)
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
            }
            IpAddr::V6(a) => {
                let m = if prefix_len == 0 {
                    0
                } else {
                    u128::MAX << (128 - prefix_len)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
            }
        };
        Some(Cidr { addr, prefix_len })
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in the address's own family.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in the prefix (an IPv4 prefix does not contain IPv6 addresses).
    pub fn contains(&self, ip: IpAddr) -> bool {
        Cidr::new(ip, self.prefix_len).is_some_and(|c| c.addr == self.addr)
    }

    /// `(prefix bits, key bytes)` in the XDP program's LPM tries (IPv4 as `::ffff:a.b.c.d/96+n`).
    pub fn lpm_key(&self) -> (u32, [u8; 16]) {
        match self.addr {
            IpAddr::V4(a) => (
                V4_MAPPED_PREFIX_OFFSET + u32::from(self.prefix_len),
                AddrKey::from_v4(a.octets()).addr,
            ),
            IpAddr::V6(a) => (u32::from(self.prefix_len), a.octets()),
        }
    }

    /// The inverse of [`Cidr::lpm_key`].
    pub fn from_lpm_key(bits: u32, data: [u8; 16]) -> Self {
        let v6 = Ipv6Addr::from(data);
        match v6.to_ipv4_mapped() {
            Some(v4) if bits >= V4_MAPPED_PREFIX_OFFSET => Cidr {
                addr: IpAddr::V4(v4),
                prefix_len: (bits - V4_MAPPED_PREFIX_OFFSET) as u8,
            },
            _ => Cidr {
                addr: IpAddr::V6(v6),
                prefix_len: bits.min(128) as u8,
            },
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| CidrParseError::Addr(a.to_owned()))?;
        let len = match l {
            Some(l) => l
                .parse::<u8>()
                .map_err(|_| CidrParseError::Len(l.to_owned()))?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        Cidr::new(addr, len).ok_or_else(|| CidrParseError::Len(len.to_string()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalise_and_key() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.200.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let (bits, key) = c.lpm_key();
        assert_eq!(bits, 104);
        assert_eq!(&key[10..], &[0xff, 0xff, 10, 0, 0, 0]);
        assert_eq!(Cidr::from_lpm_key(bits, key), c);

        let h: Cidr = "fd00::1".parse().unwrap();
        assert_eq!(h.prefix_len(), 128);
        assert_eq!(Cidr::from_lpm_key(h.lpm_key().0, h.lpm_key().1), h);
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().lpm_key().0, 96);

        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope/3".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }
}
