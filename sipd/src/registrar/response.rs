//! Responses the registrar, authenticator and redirect server generate (RFC 3261 §8.2.6): the
//! request's Vias (the top one with `received`/`rport`), From, To with our tag, Call-ID and CSeq
//! copied, then the caller's headers. Written into the caller's buffer; nothing is allocated.
//!
//! Our To tag is `sr` + a keyed hash of (Call-ID, From tag), so the ACK for a final response we
//! sent to an INVITE is recognised by its To tag alone ([`Responder::is_our_tag`]) on any worker.

use std::net::SocketAddr;

use crate::proxy::stats::ProxyStats;
use crate::proxy::writer::Out;
use crate::proxy::{Action, DropReason, Input, Transport, write_received_via};
use crate::sip::HeaderName;
use crate::sip::message::Message;
use crate::sip::name_addr::NameAddr;
use crate::sip::values::split_comma;
use crate::sip::via::{Rport, Via};

/// Writes our responses; `key` keys the To tag.
#[derive(Copy, Clone, Debug)]
pub struct Responder {
    pub key: u64,
}

/// A status line: code and reason phrase.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Status<'r> {
    pub code: u16,
    pub reason: &'r str,
}

impl<'r> Status<'r> {
    pub const fn new(code: u16, reason: &'r str) -> Self {
        Status { code, reason }
    }
}

/// Our To tag length: `sr` + 16 hex digits.
const TAG_LEN: usize = 18;

impl Responder {
    /// The To tag of our responses to this Call-ID and From tag.
    pub fn tag(&self, call_id: &[u8], from_tag: &[u8]) -> [u8; TAG_LEN] {
        let mut h = xxhash_rust::xxh3::Xxh3::with_seed(self.key);
        h.update(call_id);
        h.update(b"\0");
        h.update(from_tag);
        let mut out = [0u8; TAG_LEN];
        out[..2].copy_from_slice(b"sr");
        let mut o = Out::new(&mut out[2..]);
        o.put_hex64(h.digest());
        out
    }

    /// Whether a request's To tag is one we generated (an ACK for our final response).
    pub fn is_our_tag(&self, msg: &Message<'_, '_>) -> bool {
        let Some(to_tag) = msg
            .value(HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.tag())
        else {
            return false;
        };
        if to_tag.len() != TAG_LEN || !to_tag.starts_with(b"sr") {
            return false;
        }
        let call_id = msg.value(HeaderName::CallId).unwrap_or_default();
        let from_tag = msg
            .value(HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
            .and_then(|n| n.tag())
            .unwrap_or_default();
        self.tag(call_id, from_tag) == to_tag
    }

    /// Writes a response with `status`; `extra` adds header lines (each ending
    /// in CRLF) after the copied ones. Counts the reply (or the overflow drop) in `stats`.
    pub fn respond(
        &self,
        input: &Input<'_>,
        msg: &Message<'_, '_>,
        stats: &ProxyStats,
        status: Status<'_>,
        extra: impl FnOnce(&mut Out<'_>),
        buf: &mut [u8],
    ) -> Action {
        let bytes = msg.bytes();
        let headers = msg.headers();
        let Some(top_via_index) = msg.header_index(HeaderName::Via) else {
            stats.count_drop(DropReason::NoVia);
            return Action::Drop(DropReason::NoVia);
        };
        let top_via = split_comma(headers[top_via_index].value)
            .next()
            .and_then(Result::ok)
            .and_then(|(_, v)| Via::parse(v).ok());
        let Status { code, reason } = status;
        let mut out = Out::new(buf);
        out.put(b"SIP/2.0 ");
        out.put_u64(u64::from(code));
        out.put(b" ");
        out.put_str(reason);
        out.put(b"\r\n");
        for (i, h) in headers.iter().enumerate() {
            let line = &bytes[h.start as usize..h.end as usize];
            match h.name {
                HeaderName::Via if i == top_via_index => match &top_via {
                    Some(via) => write_received_via(&mut out, bytes, h, via, input.source),
                    None => out.put(line),
                },
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    out.put(line)
                }
                HeaderName::To => {
                    let has_tag = NameAddr::parse(h.value)
                        .ok()
                        .is_some_and(|n| n.tag().is_some());
                    if has_tag {
                        out.put(line);
                    } else {
                        let value_end = h.value_start as usize + h.value.len();
                        out.put(&bytes[h.start as usize..value_end]);
                        out.put(b";tag=");
                        let call_id = msg.value(HeaderName::CallId).unwrap_or_default();
                        let from_tag = msg
                            .value(HeaderName::From)
                            .and_then(|v| NameAddr::parse(v).ok())
                            .and_then(|n| n.tag())
                            .unwrap_or_default();
                        out.put(&self.tag(call_id, from_tag));
                        out.put(&bytes[value_end..h.end as usize]);
                    }
                }
                _ => {}
            }
        }
        extra(&mut out);
        out.put(b"Server: sipd\r\nContent-Length: 0\r\n\r\n");
        let Some(len) = out.finish() else {
            stats.count_drop(DropReason::Overflow);
            return Action::Drop(DropReason::Overflow);
        };
        stats.count_reply(code);
        // §18.2.2 with RFC 3581, as the proxy's own replies.
        let to = match (&top_via, input.transport) {
            (Some(via), Transport::Udp) if via.rport() == Rport::Absent => {
                SocketAddr::new(input.source.ip(), via.port.unwrap_or(5060))
            }
            _ => input.source,
        };
        Action::Reply {
            to,
            transport: input.transport,
            code,
            len,
        }
    }
}

/// `Date: Sat, 13 Nov 2010 23:29:00 GMT` for `now_ms` (RFC 3261 §20.17, an RFC 1123 date).
pub fn put_date(out: &mut Out<'_>, now_ms: u64) {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = now_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    out.put(b"Date: ");
    out.put_str(DAYS[(days % 7) as usize]);
    out.put(b", ");
    put2(out, d as u64);
    out.put(b" ");
    out.put_str(MONTHS[(m - 1) as usize]);
    out.put(b" ");
    out.put_u64(y as u64);
    out.put(b" ");
    put2(out, rem / 3600);
    out.put(b":");
    put2(out, rem / 60 % 60);
    out.put(b":");
    put2(out, rem % 60);
    out.put(b" GMT\r\n");
}

fn put2(out: &mut Out<'_>, n: u64) {
    out.put(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let mut buf = [0u8; 64];
        let mut out = Out::new(&mut buf);
        put_date(&mut out, 1_289_690_940_000);
        assert_eq!(out.written(), b"Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n");
        let mut buf = [0u8; 64];
        let mut out = Out::new(&mut buf);
        put_date(&mut out, 951_782_400_000);
        assert_eq!(out.written(), b"Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n");
    }
}
