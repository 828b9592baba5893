//! Whole UDP frames: parse what the AF_XDP socket received, write the headers of what it sends.
//!
//! Transmit layout: the protocol core writes its payload straight into the transmit frame at
//! [`payload_offset`] for the family and tagging of the frame it will send, then
//! [`emit_udp_headers`] writes Ethernet (+ tag) + IPv4/IPv6 + UDP in front of it and fills both
//! checksums. [`MAX_HEADER_ROOM`] is the largest offset (tagged IPv6).

use std::net::{IpAddr, SocketAddr};
use std::ops::Range;

use super::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, MacAddr};
use super::{Error, IPPROTO_UDP, Result, ipv4, ipv6, udp};

/// Largest header room in front of a payload: Ethernet + tag + IPv6 + UDP.
pub const MAX_HEADER_ROOM: usize =
    ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN;

/// Offset of the UDP payload in a frame of this family and tagging (IPv4 without options).
pub const fn payload_offset(ipv6: bool, vlan: bool) -> usize {
    ethernet::HEADER_LEN
        + if vlan { ethernet::VLAN_TAG_LEN } else { 0 }
        + if ipv6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::MIN_HEADER_LEN
        }
        + udp::HEADER_LEN
}

/// What a received UDP frame is, with the payload as a range into the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpFrame {
    /// Destination MAC (ours).
    pub dst_mac: MacAddr,
    /// Source MAC (the previous hop).
    pub src_mac: MacAddr,
    /// VLAN tag control information, when tagged.
    pub vlan_tci: Option<u16>,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// TTL / hop limit as received.
    pub ttl: u8,
    /// Where the UDP payload lies in the frame.
    pub payload: Range<usize>,
}

/// Parses an Ethernet frame carrying one unfragmented UDP datagram over IPv4 or IPv6 (no IPv6
/// extension headers). Checksums are not verified: on veth and with NIC offloads the frames seen by
/// XDP carry partial checksums.
pub fn parse_udp(frame: &[u8]) -> Result<UdpFrame> {
    let eth = ethernet::Frame::new_checked(frame)?;
    let l3 = eth.header_len();
    let (src_ip, dst_ip, ttl, l4, l4_end): (IpAddr, IpAddr, u8, usize, usize) =
        match eth.ethertype() {
            ETHERTYPE_IPV4 => {
                let ip = ipv4::Packet::new_checked(&frame[l3..])?;
                if ip.is_fragment() || ip.protocol() != IPPROTO_UDP {
                    return Err(Error::Unsupported);
                }
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    ip.ttl(),
                    l3 + ip.header_len(),
                    l3 + usize::from(ip.total_len()),
                )
            }
            ETHERTYPE_IPV6 => {
                let ip = ipv6::Packet::new_checked(&frame[l3..])?;
                if ip.next_header() != IPPROTO_UDP {
                    return Err(Error::Unsupported);
                }
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    ip.hop_limit(),
                    l3 + ipv6::HEADER_LEN,
                    l3 + ipv6::HEADER_LEN + usize::from(ip.payload_len()),
                )
            }
            _ => return Err(Error::Unsupported),
        };
    let u = udp::Packet::new_checked(&frame[l4..l4_end])?;
    let start = l4 + udp::HEADER_LEN;
    Ok(UdpFrame {
        dst_mac: eth.dst_addr(),
        src_mac: eth.src_addr(),
        vlan_tci: eth.vlan_tci(),
        src: SocketAddr::new(src_ip, u.src_port()),
        dst: SocketAddr::new(dst_ip, u.dst_port()),
        ttl,
        payload: start..l4 + usize::from(u.len()),
    })
}

/// The headers to write in front of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpHeaders {
    /// Our MAC.
    pub src_mac: MacAddr,
    /// The next hop's MAC.
    pub dst_mac: MacAddr,
    /// VLAN tag control information, to send tagged.
    pub vlan_tci: Option<u16>,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port (same family as `src`).
    pub dst: SocketAddr,
    /// TTL / hop limit.
    pub ttl: u8,
    /// IPv4 identification (ignored for IPv6). DF is set, so any value is valid.
    pub ipv4_ident: u16,
}

/// Writes Ethernet, IP and UDP headers in front of the `payload_len` bytes already at
/// `payload_offset(h.dst.is_ipv6(), h.vlan_tci.is_some())` in `frame`, fills the IPv4 header
/// and UDP checksums, and returns the frame length.
pub fn emit_udp_headers(frame: &mut [u8], h: &UdpHeaders, payload_len: usize) -> Result<usize> {
    let v6 = match (h.src.ip(), h.dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => false,
        (IpAddr::V6(_), IpAddr::V6(_)) => true,
        _ => return Err(Error::Malformed),
    };
    let off = payload_offset(v6, h.vlan_tci.is_some());
    let total = off + payload_len;
    if frame.len() < total {
        return Err(Error::Truncated);
    }
    let udp_len = udp::HEADER_LEN + payload_len;
    let l3 = ethernet::HEADER_LEN
        + if h.vlan_tci.is_some() {
            ethernet::VLAN_TAG_LEN
        } else {
            0
        };
    let frame = &mut frame[..total];

    let mut eth = ethernet::Frame::new_unchecked(&mut *frame);
    eth.set_dst_addr(h.dst_mac);
    eth.set_src_addr(h.src_mac);
    eth.set_ethertype(h.vlan_tci, if v6 { ETHERTYPE_IPV6 } else { ETHERTYPE_IPV4 });

    let l4 = match (h.src.ip(), h.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let ip_len =
                u16::try_from(ipv4::MIN_HEADER_LEN + udp_len).map_err(|_| Error::Malformed)?;
            let mut ip = ipv4::Packet::new_unchecked(&mut frame[l3..]);
            ip.set_version_and_header_len(ipv4::MIN_HEADER_LEN);
            ip.set_tos(0);
            ip.set_total_len(ip_len);
            ip.set_ident(h.ipv4_ident);
            ip.set_unfragmented(true);
            ip.set_ttl(h.ttl);
            ip.set_protocol(IPPROTO_UDP);
            ip.set_src_addr(s);
            ip.set_dst_addr(d);
            ip.fill_checksum();
            l3 + ipv4::MIN_HEADER_LEN
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let pl = u16::try_from(udp_len).map_err(|_| Error::Malformed)?;
            let mut ip = ipv6::Packet::new_unchecked(&mut frame[l3..]);
            ip.set_version_class_flow(0, 0);
            ip.set_payload_len(pl);
            ip.set_next_header(IPPROTO_UDP);
            ip.set_hop_limit(h.ttl);
            ip.set_src_addr(&s);
            ip.set_dst_addr(&d);
            l3 + ipv6::HEADER_LEN
        }
        _ => unreachable!("families checked above"),
    };

    let udp_len16 = u16::try_from(udp_len).map_err(|_| Error::Malformed)?;
    let mut u = udp::Packet::new_unchecked(&mut frame[l4..]);
    u.set_src_port(h.src.port());
    u.set_dst_port(h.dst.port());
    u.set_len(udp_len16);
    u.fill_checksum(h.src.ip(), h.dst.ip())?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(src: &str, dst: &str, vlan: Option<u16>) -> UdpHeaders {
        UdpHeaders {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            vlan_tci: vlan,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 64,
            ipv4_ident: 7,
        }
    }

    #[test]
    fn offsets() {
        assert_eq!(payload_offset(false, false), 42);
        assert_eq!(payload_offset(false, true), 46);
        assert_eq!(payload_offset(true, false), 62);
        assert_eq!(payload_offset(true, true), 66);
        assert_eq!(MAX_HEADER_ROOM, 66);
    }

    #[test]
    fn emit_then_parse_round_trips_all_layouts() {
        for (src, dst) in [
            ("10.0.0.1:5060", "10.0.0.2:5070"),
            ("[fd00::1]:5060", "[fd00::2]:40000"),
        ] {
            for vlan in [None, Some(0x0064)] {
                let h = headers(src, dst, vlan);
                let v6 = h.dst.is_ipv6();
                let mut f = vec![0u8; 2048];
                let off = payload_offset(v6, vlan.is_some());
                let body = b"OPTIONS sip:x SIP/2.0\r\n\r\n";
                f[off..off + body.len()].copy_from_slice(body);
                let len = emit_udp_headers(&mut f, &h, body.len()).unwrap();
                assert_eq!(len, off + body.len());
                let p = parse_udp(&f[..len]).unwrap();
                assert_eq!(p.src, h.src);
                assert_eq!(p.dst, h.dst);
                assert_eq!(p.vlan_tci, vlan);
                assert_eq!((p.src_mac, p.dst_mac), (h.src_mac, h.dst_mac));
                assert_eq!(&f[p.payload.clone()], body);
                let l3 = off - udp::HEADER_LEN - if v6 { 40 } else { 20 };
                let l4 = off - udp::HEADER_LEN;
                if !v6 {
                    assert!(
                        ipv4::Packet::new_checked(&f[l3..len])
                            .unwrap()
                            .verify_checksum()
                    );
                }
                let u = udp::Packet::new_checked(&f[l4..len]).unwrap();
                assert!(u.verify_checksum(h.src.ip(), h.dst.ip()));
            }
        }
    }

    #[test]
    fn rejects_what_it_cannot_carry() {
        let mut f = vec![0u8; 64];
        assert_eq!(
            emit_udp_headers(&mut f, &headers("10.0.0.1:1", "[fd00::2]:2", None), 0),
            Err(Error::Malformed)
        );
        assert_eq!(
            emit_udp_headers(&mut f, &headers("10.0.0.1:1", "10.0.0.2:2", None), 30),
            Err(Error::Truncated)
        );
        // A fragment is not ours.
        let h = headers("10.0.0.1:1", "10.0.0.2:2", None);
        let len = emit_udp_headers(&mut f, &h, 4).unwrap();
        f[14 + 6] = 0x20; // MF
        assert_eq!(parse_udp(&f[..len]), Err(Error::Unsupported));
        // ARP is not ours either.
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(parse_udp(&f[..len]), Err(Error::Unsupported));
    }
}
