//! The fields a stateless proxy reads from a message (top Via branch and sent-by, Max-Forwards,
//! Call-ID, CSeq, From tag, To tag, Request-URI user and host, Route), extracted with sipd's
//! parser: shared by the parse bench (beside rsip) and the proxy bench (beside `Proxy::handle`,
//! so that "parsing" is measured the same way in both).

use sipd::sip::HeaderName;
use sipd::sip::cseq::CSeq;
use sipd::sip::message::parse_datagram_uninit;
use sipd::sip::name_addr::NameAddrView;
use sipd::sip::uri::Uri;
use sipd::sip::values::{parse_u32, split_comma};
use sipd::sip::via::Via;

/// The proxy's fields, folded into one number so nothing is optimised away.
pub fn sipd_fields(bytes: &[u8]) -> usize {
    // Uninitialised storage, as the proxy core keeps it (no per-message placeholder writes).
    let mut storage = [std::mem::MaybeUninit::uninit(); 32];
    let msg = parse_datagram_uninit(bytes, &mut storage).unwrap();
    let via_value = msg.value(HeaderName::Via).unwrap();
    let (_, top) = split_comma(via_value).next().unwrap().unwrap();
    let via = Via::parse(top).unwrap();
    let branch = via.branch().unwrap();
    let max_forwards = msg
        .value(HeaderName::MaxForwards)
        .map_or(0, |v| parse_u32(v).unwrap());
    let call_id = msg.value(HeaderName::CallId).unwrap();
    let cseq = CSeq::parse(msg.value(HeaderName::CSeq).unwrap()).unwrap();
    // The tags are what a proxy reads from From and To: their URIs are located, not parsed.
    let from = NameAddrView::parse(msg.value(HeaderName::From).unwrap()).unwrap();
    let to = NameAddrView::parse(msg.value(HeaderName::To).unwrap()).unwrap();
    // The Request-URI is parsed (user and host are what target determination reads; rsip
    // parses it too); the Route's URI is only located (a proxy parses it when it must).
    let ruri = msg.request_uri().map_or(0, |raw| {
        let uri = Uri::parse(raw).unwrap();
        uri.user().map_or(0, <[u8]>::len) + uri.host_raw().len()
    });
    let route = msg.value(HeaderName::Route).map_or(0, |v| {
        let (_, first) = split_comma(v).next().unwrap().unwrap();
        NameAddrView::parse(first).unwrap().uri_raw.len()
    });
    branch.len()
        + via.host_raw.len()
        + max_forwards as usize
        + call_id.len()
        + cseq.seq as usize
        + from.tag().map_or(0, <[u8]>::len)
        + to.tag().map_or(0, <[u8]>::len)
        + ruri
        + route
}
