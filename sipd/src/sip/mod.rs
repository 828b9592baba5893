//! SIP (RFC 3261) message parsing: zero-copy views borrowing the datagram.
//!
//! - [`error`]: the small `Copy` error kind plus offset every parser returns.

pub mod error;
pub mod scan;

pub use error::{Error, ErrorKind};
