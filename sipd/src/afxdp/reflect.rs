//! The reflector: sends every datagram back where it came from, addresses and ports swapped.
//!
//! It is the upper bound of the datapath (what the machine moves with no SIP work); the worker
//! recomputes the IPv4 and UDP checksums of what it sends (veth frames arrive with partial ones).

use std::net::SocketAddr;

use super::{FrameHandler, Verdict};

/// Echoes each payload to its sender.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reflector;

impl FrameHandler for Reflector {
    #[inline]
    fn handle(
        &mut self,
        _now_ms: u64,
        src: SocketAddr,
        _dst: SocketAddr,
        payload: &[u8],
        tx_payload: &mut [u8],
    ) -> Verdict {
        if payload.len() > tx_payload.len() {
            return Verdict::Drop;
        }
        tx_payload[..payload.len()].copy_from_slice(payload);
        Verdict::Send {
            to: src,
            len: payload.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflects_to_sender() {
        let mut tx = [0u8; 8];
        let src: SocketAddr = "10.0.0.1:40000".parse().unwrap();
        let dst: SocketAddr = "10.0.0.2:5060".parse().unwrap();
        assert_eq!(
            Reflector.handle(0, src, dst, b"hello", &mut tx),
            Verdict::Send { to: src, len: 5 }
        );
        assert_eq!(&tx[..5], b"hello");
        assert_eq!(
            Reflector.handle(0, src, dst, &[0; 9], &mut tx),
            Verdict::Drop
        );
    }
}
