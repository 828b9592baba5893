//! A full syntax check of a parsed message: the start line's version and Request-URI and the
//! grammar of every header the parser knows, each with its typed parser. Routing code parses only
//! what it needs; this is for `sipd parse`, conformance tests and strict ingress checks.
//!
//! It checks syntax only: missing or repeated headers are the server's business (RFC 4475 §3.3
//! messages are syntactically valid and must pass here).

use super::auth::Auth;
use super::cseq::CSeq;
use super::message::{Message, StartLine};
use super::name_addr::{NameAddr, contact_values, name_addr_values};
use super::uri::Uri;
use super::values::{parse_u32, token_list};
use super::via::via_values;
use super::{Error, ErrorKind, HeaderName, Result, Version};

/// Checks everything the typed parsers can check; the error offset is absolute (into the
/// message).
pub fn validate(msg: &Message<'_, '_>) -> Result<()> {
    match *msg.start_line() {
        StartLine::Request {
            uri,
            uri_start,
            version,
            ..
        } => {
            let uri_start = uri_start as usize;
            if version != Version::SIP_2_0 {
                return Err(Error::new(
                    ErrorKind::UnsupportedVersion,
                    uri_start + uri.len() + 1,
                ));
            }
            let parsed = Uri::parse(uri).map_err(|e| e.shifted(uri_start))?;
            // RFC 3261 §19.1.5: headers are not allowed in a Request-URI (RFC 4475 escruri).
            if let Some(headers) = parsed.headers_raw() {
                let at = uri_start + super::values::offset_in(uri, headers);
                return Err(Error::new(ErrorKind::RequestUri, at.saturating_sub(1)));
            }
        }
        StartLine::Response { version, .. } => {
            if version != Version::SIP_2_0 {
                return Err(Error::new(ErrorKind::UnsupportedVersion, msg.start()));
            }
        }
    }
    for h in msg.headers() {
        let at = h.value_start as usize;
        let shift = |e: Error| e.shifted(at);
        let v = h.value;
        match h.name {
            HeaderName::Via => {
                for via in via_values(v) {
                    via.map_err(shift)?;
                }
            }
            HeaderName::From | HeaderName::To | HeaderName::ReplyTo => {
                NameAddr::parse(v).map_err(shift)?;
            }
            HeaderName::Contact => {
                for c in contact_values(v) {
                    c.map_err(shift)?;
                }
            }
            HeaderName::Route | HeaderName::RecordRoute | HeaderName::Path => {
                for r in name_addr_values(v) {
                    r.map_err(shift)?;
                }
            }
            HeaderName::CSeq => {
                let cseq = CSeq::parse(v).map_err(shift)?;
                if let Some(method) = msg.method()
                    && cseq.method != method.as_bytes()
                {
                    // RFC 4475 mismatch01/02: the CSeq method must be the request's.
                    return Err(Error::new(ErrorKind::CSeq, at));
                }
            }
            HeaderName::MaxForwards => {
                let n = parse_u32(v).map_err(shift)?;
                if n > 255 {
                    return Err(Error::new(ErrorKind::Number, at));
                }
            }
            HeaderName::Expires | HeaderName::MinExpires | HeaderName::ContentLength => {
                parse_u32(v).map_err(shift)?;
            }
            HeaderName::CallId if v.is_empty() || v.iter().any(|b| b" \t\r\n".contains(b)) => {
                return Err(Error::new(ErrorKind::HeaderValue, at));
            }
            HeaderName::Require
            | HeaderName::ProxyRequire
            | HeaderName::Supported
            | HeaderName::Unsupported
            | HeaderName::Allow => {
                for t in token_list(v) {
                    t.map_err(shift)?;
                }
            }
            HeaderName::Authorization
            | HeaderName::ProxyAuthorization
            | HeaderName::WwwAuthenticate
            | HeaderName::ProxyAuthenticate => {
                Auth::parse(v).map_err(shift)?;
            }
            _ => {}
        }
    }
    Ok(())
}
