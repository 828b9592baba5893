//! Wire views over Ethernet, IPv4, IPv6 and UDP, in the style of smoltcp's `wire` module.
//!
//! - [`ethernet::Frame`], [`ipv4::Packet`], [`ipv6::Packet`], [`udp::Packet`]: zero-copy views
//!   over any `T: AsRef<[u8]>` (`AsMut` for the setters), with `new_checked` validating lengths
//!   once so the accessors can index without further checks;
//! - [`checksum`]: the Internet checksum (RFC 1071), the IPv4 header checksum, the UDP checksum
//!   over the IPv4/IPv6 pseudo-header, and the incremental update of RFC 1624;
//! - [`frame`]: parses a received UDP frame into its addresses and payload range
//!   ([`frame::UdpFrame`]), and writes Ethernet + IP + UDP headers in front of a payload already
//!   placed in a transmit frame ([`frame::emit_udp_headers`]; [`frame::payload_offset`] says where
//!   the payload goes).
//!
//! Nothing here allocates or does I/O; the AF_XDP driver and the protocol core both use it.

pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod ipv4;
pub mod ipv6;
pub mod udp;

/// Why a buffer is not a valid header of the kind asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or the length it declares.
    #[error("truncated")]
    Truncated,
    /// A field has a value the view cannot work with (bad version, header length, ...).
    #[error("malformed")]
    Malformed,
    /// The frame is valid but not something this module handles (not UDP, a fragment, ...).
    #[error("unsupported")]
    Unsupported,
}

/// Result of the wire views.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
