//! SIP message framing on a byte stream (RFC 3261 §18.3 and §7.5; RFC 5626 §3.5.1 keep-alives),
//! sans-IO: the TCP driver keeps the received bytes of a connection and asks [`next_frame`] what
//! the front of that buffer holds.
//!
//! - CRLFs before a start line are skipped (§7.5); a double CRLF on its own is an RFC 5626 "ping"
//!   the driver answers with a single CRLF "pong". A lone CRLF (a pong, or the first half of a ping
//!   split across segments) waits for more bytes: it is consumed as soon as a start line follows.
//! - A message is framed by its Content-Length, which is mandatory on a stream; the stream parser
//!   ([`ParseOptions::STREAM`]) says whether the buffer holds it whole.
//! - Anything else (a message without Content-Length, an unparsable head, a declared length past
//!   the bound) leaves the stream without a known next boundary: [`Frame::Invalid`], and the
//!   driver answers the request with [`write_framing_reject`] where it can and closes.

use crate::proxy::writer::Out;
use crate::sip::message::{ParseOptions, Status, parse_headers_after_start_line, parse_uninit};
use crate::sip::{ErrorKind, HeaderName};

/// What the front of a stream buffer holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// More bytes are needed before anything can be consumed.
    Partial,
    /// `len` CR/LF bytes to discard (keep-alive pongs and CRLFs before a start line).
    Skip(usize),
    /// A double-CRLF keep-alive ping (4 bytes): answer with one CRLF.
    Ping,
    /// One complete message: `buf[..len]` (leading CRLFs already skipped).
    Message(usize),
    /// The stream cannot be framed any further.
    Invalid(ErrorKind),
}

/// The size of an RFC 5626 ping; its pong is [`PONG`].
pub const PING_LEN: usize = 4;
/// The answer to a ping.
pub const PONG: &[u8] = b"\r\n";

/// Header index storage for framing (the same bound as the proxy core's).
const MAX_HEADERS: usize = crate::proxy::MAX_HEADERS;

/// Classifies the front of `buf`; `max_message_len` bounds one message (head and body).
pub fn next_frame(buf: &[u8], max_message_len: usize) -> Frame {
    let crlfs = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if crlfs > 0 {
        if buf.starts_with(b"\r\n\r\n") {
            return Frame::Ping;
        }
        if crlfs == buf.len() {
            // Only CR/LF so far: a pong, or a ping whose second half is in flight. A long run of
            // them cannot be a ping any more and is discarded.
            return if crlfs >= PING_LEN {
                Frame::Skip(crlfs)
            } else {
                Frame::Partial
            };
        }
        return Frame::Skip(crlfs);
    }
    let opts = ParseOptions {
        max_message_len,
        ..ParseOptions::STREAM
    };
    let mut headers = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    match parse_uninit(buf, &mut headers, &opts) {
        Ok(Status::Complete(msg)) => Frame::Message(msg.len()),
        Ok(Status::Partial) if buf.len() >= max_message_len => {
            Frame::Invalid(ErrorKind::MessageTooLarge)
        }
        Ok(Status::Partial) => Frame::Partial,
        Err(e) => Frame::Invalid(e.kind),
    }
}

/// Writes the response that ends a connection whose stream could not be framed (RFC 3261
/// §8.2.6): `513 Message Too Large` for an oversized message, else `400 Bad Request`, with the
/// Vias, From, To (tagged), Call-ID and CSeq of the request copied. `None` when `head` is not a
/// request whose header block can be read (responses are never answered).
pub fn write_framing_reject(head: &[u8], kind: ErrorKind, out: &mut [u8]) -> Option<usize> {
    if head.starts_with(b"SIP/") || head.starts_with(b"ACK ") {
        return None;
    }
    // The header block ends at the first empty line (or wherever the bytes received end).
    let head_end = memchr::memmem::find(head, b"\r\n\r\n").map_or(head.len(), |i| i + 4);
    let head = &head[..head_end];
    let mut storage = [std::mem::MaybeUninit::uninit(); MAX_HEADERS];
    let headers = parse_headers_after_start_line(head, &mut storage).ok()?;
    if !headers.iter().any(|h| h.name == HeaderName::Via) {
        return None;
    }
    let (code, reason): (u64, &str) = match kind {
        ErrorKind::MessageTooLarge => (513, "Message Too Large"),
        ErrorKind::ContentLength => (400, "Missing Or Bad Content-Length"),
        _ => (400, "Bad Request"),
    };
    let mut w = Out::new(out);
    w.put(b"SIP/2.0 ");
    w.put_u64(code);
    w.put(b" ");
    w.put_str(reason);
    w.put(b"\r\n");
    for h in headers {
        let line = &head[h.start as usize..h.end as usize];
        match h.name {
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                w.put(line)
            }
            HeaderName::To => {
                let value_end = h.value_start as usize + h.value.len();
                w.put(&head[h.start as usize..value_end]);
                if memchr::memmem::find(h.value, b";tag=").is_none() {
                    w.put(b";tag=sdframing");
                }
                w.put(&head[value_end..h.end as usize]);
            }
            _ => {}
        }
    }
    w.put(b"Server: sipd\r\nContent-Length: 0\r\n\r\n");
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 65_535;
    const BYE: &[u8] = b"BYE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn two_messages_in_one_buffer() {
        let two = [BYE, BYE].concat();
        assert_eq!(next_frame(&two, MAX), Frame::Message(BYE.len()));
        assert_eq!(
            next_frame(&two[BYE.len()..], MAX),
            Frame::Message(BYE.len())
        );
    }

    #[test]
    fn every_prefix_is_partial() {
        for cut in 1..BYE.len() {
            assert_eq!(next_frame(&BYE[..cut], MAX), Frame::Partial, "cut {cut}");
        }
    }

    #[test]
    fn keepalives() {
        assert_eq!(next_frame(b"\r\n\r\n", MAX), Frame::Ping);
        assert_eq!(next_frame(b"\r\n\r\nBYE", MAX), Frame::Ping);
        assert_eq!(next_frame(b"\r\n", MAX), Frame::Partial);
        assert_eq!(next_frame(b"\r\nBYE ", MAX), Frame::Skip(2));
        assert_eq!(next_frame(b"\n\n\n\n\n", MAX), Frame::Skip(5));
        assert_eq!(next_frame(b"", MAX), Frame::Partial);
    }

    #[test]
    fn unframable_streams() {
        let no_cl =
            b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\nTo: <sip:x>\r\n\r\n";
        assert_eq!(
            next_frame(no_cl, MAX),
            Frame::Invalid(ErrorKind::ContentLength)
        );
        let big = b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: 999999\r\n\r\n";
        assert_eq!(
            next_frame(big, 1000),
            Frame::Invalid(ErrorKind::MessageTooLarge)
        );
        let endless = vec![b'a'; 200];
        assert!(matches!(next_frame(&endless, 100), Frame::Invalid(_)));
    }

    #[test]
    fn reject_copies_the_dialog_headers() {
        let no_cl = b"BYE sip:x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\nFrom: <sip:a@x>;tag=9\r\nTo: <sip:x>\r\nCall-ID: abc\r\nCSeq: 1 BYE\r\nSubject: hi\r\n\r\n";
        let mut out = [0u8; 1024];
        let n = write_framing_reject(no_cl, ErrorKind::ContentLength, &mut out).unwrap();
        let text = std::str::from_utf8(&out[..n]).unwrap();
        assert!(text.starts_with("SIP/2.0 400 "), "{text}");
        assert!(text.contains("Via: SIP/2.0/TCP h;branch=z9hG4bK2\r\n"));
        assert!(text.contains("To: <sip:x>;tag=sdframing\r\n"));
        assert!(text.contains("Call-ID: abc\r\n"));
        assert!(!text.contains("Subject"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert_eq!(
            write_framing_reject(
                b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",
                ErrorKind::ContentLength,
                &mut out
            ),
            None
        );
    }
}
