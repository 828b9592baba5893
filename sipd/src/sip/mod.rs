//! SIP (RFC 3261) message parsing: zero-copy views borrowing the datagram.
//!
//! - [`message`]: start line, header index, body framing (`parse`, `parse_datagram`).
//! - [`header`]: header-name classification (compact forms, case-insensitive).
//! - [`scan`]: SIMD byte-class scanning (AVX2, SSE2, portable SWAR), chosen at run time.
//! - [`error`]: the small `Copy` error kind plus offset every parser returns.
//! - Typed header values, parsed on demand from a raw header value (the bytes after the colon up
//!   to the end of the header line, folds included): [`values`] (LWS, quoted strings, lists,
//!   numbers, token lists), [`params`] (`;name=value` lists), [`uri`] (SIP/SIPS/tel/other URIs
//!   and hosts), [`name_addr`] (From, To, Contact, Route, Record-Route, Reply-To), [`via`],
//!   [`cseq`], [`auth`] (Authorization / WWW-Authenticate and their Proxy- forms).
//! - [`validate`]: the full syntax check of a parsed message with every typed parser.

pub mod auth;
pub mod cseq;
pub mod error;
pub mod header;
pub mod message;
pub mod name_addr;
pub mod params;
pub mod scan;
pub mod uri;
pub mod validate;
pub mod values;
pub mod via;

#[cfg(test)]
mod typed_corpus_tests;

/// Every sample message of the test fixtures (`tests/fixtures/{messages,proxy,rfc4475}`), with
/// its path, for tests that run the whole corpus.
#[cfg(test)]
pub(crate) fn fixture_messages() -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut out = Vec::new();
    for dir in ["messages", "proxy", "rfc4475"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sip" || e == "dat") {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    assert!(
        out.len() > 40,
        "fixtures not found under {}",
        root.display()
    );
    out
}

pub use error::{Error, ErrorKind, Result};
pub use header::HeaderName;
pub use message::{
    Framing, Header, Message, Method, ParseOptions, StartLine, Status, Version, parse,
    parse_datagram, parse_datagram_uninit, parse_uninit,
};
