//! A second peer, for the header index alone (start line and every header's name and value, no
//! typed field): sipd's `parse_datagram`, and the same header block parsed by `httparse` (the
//! most used, SIMD-accelerated HTTP/1 parser in Rust) behind the equivalent HTTP start line.
//! It answers "how fast can a well-kept validating parser index these header lines on this
//! machine", which bounds what sipd's index plus typed extraction can reach. Shared by the parse
//! bench and `sipd/examples/parse_ops.rs`.

use sipd::sip::message::parse_datagram_uninit;

/// sipd's index of the message, into uninitialised storage as the proxy keeps it. Returns the
/// head length plus the header count, so nothing is optimised away.
pub fn sipd_index(sip: &[u8]) -> usize {
    let mut storage = [std::mem::MaybeUninit::uninit(); 32];
    let msg = parse_datagram_uninit(sip, &mut storage).unwrap();
    msg.head_len() + msg.headers().len()
}

/// The SIP message with its start line's `SIP/2.0` swapped for `HTTP/1.1`; headers and body
/// unchanged.
pub fn as_http(sip: &[u8]) -> Vec<u8> {
    let line_end = sip
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a start line");
    let line = &sip[..line_end];
    let mut http = if let Some(rest) = line.strip_prefix(b"SIP/2.0 ") {
        [b"HTTP/1.1 ", rest].concat()
    } else {
        let version = line.len() - b"SIP/2.0".len();
        assert_eq!(&line[version..], b"SIP/2.0", "a request line");
        [&line[..version], b"HTTP/1.1"].concat()
    };
    http.extend_from_slice(&sip[line_end..]);
    http
}

/// httparse's index of the message: start line and every header (name, value), into caller
/// storage as sipd's is. Returns the head length plus the header count, so nothing is optimised
/// away.
pub fn httparse_index(http: &[u8]) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let (status, count) = if http.starts_with(b"HTTP/") {
        let mut response = httparse::Response::new(&mut headers);
        (response.parse(http), response.headers.len())
    } else {
        let mut request = httparse::Request::new(&mut headers);
        (request.parse(http), request.headers.len())
    };
    match status.expect("the message parses") {
        httparse::Status::Complete(head_len) => head_len + count,
        httparse::Status::Partial => panic!("the message is complete"),
    }
}
