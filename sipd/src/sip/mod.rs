//! SIP (RFC 3261) message parsing: zero-copy views borrowing the datagram.
//!
//! - [`message`]: start line, header index, body framing (`parse`, `parse_datagram`).
//! - [`header`]: header-name classification (compact forms, case-insensitive).
//! - [`scan`]: SIMD byte-class scanning (AVX2, SSE2, portable SWAR), chosen at run time.
//! - [`error`]: the small `Copy` error kind plus offset every parser returns.

pub mod error;
pub mod header;
pub mod message;
pub mod scan;

pub use error::{Error, ErrorKind, Result};
pub use header::HeaderName;
pub use message::{
    Framing, Header, Message, Method, ParseOptions, StartLine, Status, Version, parse,
    parse_datagram,
};
