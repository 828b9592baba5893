//! `sipd parse [FILE|-]`: one raw SIP message in, one JSON object out (for operators and tests).
//! An invalid message prints `error: <kind> at byte <offset>: <explanation>` on stderr and exits
//! 1; no input makes it panic.

use std::io::Read;
use std::path::Path;

use serde_json::{Value, json};

use crate::sip::cseq::CSeq;
use crate::sip::message::{Header, Message, StartLine, parse_datagram};
use crate::sip::name_addr::NameAddr;
use crate::sip::uri::{Host, Uri};
use crate::sip::validate::validate;
use crate::sip::values::parse_u32;
use crate::sip::via::{Rport, via_values};
use crate::sip::{Error, HeaderName};

/// Largest input read (a SIP message over UDP is at most 65535 bytes; TCP ones are bounded by
/// the same limit in sipd).
const MAX_INPUT: u64 = 1 << 20;

/// Reads the message from `path` (`-` or `None`: standard input).
pub fn read_input(path: Option<&Path>) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match path {
        None => std::io::stdin().take(MAX_INPUT).read_to_end(&mut buf)?,
        Some(p) if p == Path::new("-") => std::io::stdin().take(MAX_INPUT).read_to_end(&mut buf)?,
        Some(p) => std::fs::File::open(p)?
            .take(MAX_INPUT)
            .read_to_end(&mut buf)?,
    };
    Ok(buf)
}

/// Parses and fully validates `bytes`, returning the JSON description.
pub fn describe(bytes: &[u8]) -> Result<Value, Error> {
    let mut storage = [Header::EMPTY; 256];
    let msg = parse_datagram(bytes, &mut storage)?;
    validate(&msg)?;
    Ok(to_json(&msg))
}

/// The error line printed for an invalid message.
pub fn error_line(e: &Error) -> String {
    format!(
        "error: {} at byte {}: {}",
        e.kind.name(),
        e.offset,
        e.kind.explain()
    )
}

fn text(b: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(b).into_owned())
}

fn opt_text(b: Option<&[u8]>) -> Value {
    b.map_or(Value::Null, text)
}

fn host_json(h: &Host<'_>) -> Value {
    match h {
        Host::Name(n) => text(n),
        Host::Ipv4(a) => Value::String(a.to_string()),
        Host::Ipv6(a) => Value::String(a.to_string()),
    }
}

fn uri_json(raw: &[u8]) -> Value {
    match Uri::parse(raw) {
        Ok(u) => json!({
            "raw": text(raw),
            "scheme": text(u.scheme().as_bytes()),
            "user": opt_text(u.user().or(u.number())),
            "password": opt_text(u.password()),
            "host": u.host().map_or(Value::Null, |h| host_json(&h)),
            "port": u.port(),
            "params": u.params().iter().map(|(n, v)| json!({"name": text(n), "value": opt_text(v)})).collect::<Vec<_>>(),
            "headers": opt_text(u.headers_raw()),
        }),
        Err(_) => json!({ "raw": text(raw) }),
    }
}

fn name_addr_json(value: Option<&[u8]>) -> Value {
    let Some(v) = value else { return Value::Null };
    match NameAddr::parse(v) {
        Ok(na) => json!({
            "display_name": opt_text(na.display_name()),
            "uri": uri_json(na.uri_raw),
            "tag": opt_text(na.tag()),
        }),
        Err(_) => Value::Null,
    }
}

fn to_json(msg: &Message<'_, '_>) -> Value {
    let mut obj = serde_json::Map::new();
    match *msg.start_line() {
        StartLine::Request { method, uri, .. } => {
            obj.insert("kind".into(), json!("request"));
            obj.insert("method".into(), text(method.as_bytes()));
            obj.insert("request_uri".into(), uri_json(uri));
        }
        StartLine::Response { code, reason, .. } => {
            obj.insert("kind".into(), json!("response"));
            obj.insert("status".into(), json!(code));
            obj.insert("reason".into(), text(reason));
        }
    }
    let headers: Vec<Value> = msg
        .headers()
        .iter()
        .map(|h| json!({"name": text(h.display_name()), "value": text(h.value)}))
        .collect();
    obj.insert("headers".into(), Value::Array(headers));
    let vias: Vec<Value> = msg
        .headers_named(HeaderName::Via)
        .flat_map(|h| via_values(h.value))
        .flatten()
        .map(|v| {
            json!({
                "protocol": format!("{}/{}", String::from_utf8_lossy(v.protocol_name), String::from_utf8_lossy(v.protocol_version)),
                "transport": text(v.transport),
                "host": host_json(&v.host),
                "port": v.port,
                "branch": opt_text(v.branch()),
                "received": v.received().map(|ip| ip.to_string()),
                "rport": match v.rport() {
                    Rport::Absent => Value::Null,
                    Rport::Empty => Value::Bool(true),
                    Rport::Value(p) => json!(p),
                },
            })
        })
        .collect();
    obj.insert("via".into(), Value::Array(vias));
    obj.insert("from".into(), name_addr_json(msg.value(HeaderName::From)));
    obj.insert("to".into(), name_addr_json(msg.value(HeaderName::To)));
    obj.insert("call_id".into(), opt_text(msg.value(HeaderName::CallId)));
    let cseq = msg
        .value(HeaderName::CSeq)
        .and_then(|v| CSeq::parse(v).ok());
    obj.insert(
        "cseq".into(),
        cseq.map_or(
            Value::Null,
            |c| json!({"number": c.seq, "method": text(c.method)}),
        ),
    );
    let max_forwards = msg
        .value(HeaderName::MaxForwards)
        .and_then(|v| parse_u32(v).ok());
    obj.insert("max_forwards".into(), json!(max_forwards));
    obj.insert("content_length".into(), json!(msg.content_length()));
    obj.insert("body_len".into(), json!(msg.body().len()));
    Value::Object(obj)
}
