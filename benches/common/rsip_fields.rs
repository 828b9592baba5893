//! The parse bench's peer: the same fields as `fields.rs` extracted with the `rsip` crate.
//! Shared by the parse bench and `sipd/examples/parse_ops.rs` (its interleaved timer).

use rsip::headers::UntypedHeader;
use rsip::message::HasHeaders;
use rsip::prelude::{HeadersExt, ToTypedHeader};

/// The proxy's fields, folded into one number so nothing is optimised away.
pub fn rsip_fields(bytes: &[u8]) -> usize {
    let msg = rsip::SipMessage::try_from(bytes).unwrap();
    let via = msg.via_header().unwrap().typed().unwrap();
    let branch = via.branch().map_or(0, |b| b.to_string().len());
    let sent_by = via.sent_by().host_with_port.to_string().len();
    let max_forwards = msg
        .max_forwards_header()
        .map_or(0, |m| m.num().unwrap_or(0) as usize);
    let call_id = msg.call_id_header().unwrap().value().len();
    let cseq = msg.cseq_header().unwrap().typed().unwrap().seq as usize;
    let from_tag = msg
        .from_header()
        .unwrap()
        .tag()
        .unwrap()
        .map_or(0, |t| t.value().len());
    let to_tag = msg
        .to_header()
        .unwrap()
        .tag()
        .unwrap()
        .map_or(0, |t| t.value().len());
    let ruri = match &msg {
        rsip::SipMessage::Request(r) => r.uri().to_string().len(),
        rsip::SipMessage::Response(_) => 0,
    };
    let route = msg
        .headers()
        .iter()
        .find_map(|h| match h {
            rsip::Header::Route(r) => Some(r.value().len()),
            _ => None,
        })
        .unwrap_or(0);
    branch + sent_by + max_forwards + call_id + cseq + from_tag + to_tag + ruri + route
}
