//! Parse errors: a small `Copy` kind plus the byte offset where parsing failed.

use core::fmt;

/// What was wrong with a message or a header value.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The message is empty or starts with whitespace where a start line is expected.
    StartLine,
    /// A request method that is not a token.
    Method,
    /// A Request-URI that is empty, contains LWS or control bytes, or is enclosed in `<>`.
    RequestUri,
    /// The SIP-Version is malformed (not `SIP/<digits>.<digits>`).
    Version,
    /// Well-formed but not `SIP/2.0` (a server answers 505).
    UnsupportedVersion,
    /// A status code that is not three digits in 100..=699.
    StatusCode,
    /// A reason phrase with control bytes.
    ReasonPhrase,
    /// A header name that is empty or not a token.
    HeaderName,
    /// A header line without `:` after the name.
    HeaderColon,
    /// A header value with a control byte (other than HTAB) or a bad fold.
    HeaderValue,
    /// More headers than the caller's header storage can hold.
    TooManyHeaders,
    /// A line longer than the configured limit.
    LineTooLong,
    /// The message is larger than the configured limit.
    MessageTooLarge,
    /// The header block never ends (no empty line) in a complete datagram.
    HeadersUnterminated,
    /// Content-Length is not a non-negative decimal number, overflows, or appears more than once
    /// with different values.
    ContentLength,
    /// The datagram ends before the body that Content-Length announces.
    BodyTruncated,
    /// A URI that does not follow the RFC 3261 / RFC 3966 grammar.
    Uri,
    /// A host (name, IPv4 address or IPv6 reference) that is malformed.
    Host,
    /// A port that is not a number in 0..=65535.
    Port,
    /// A malformed `;name=value` parameter.
    Param,
    /// A quoted string that is not terminated or contains a bad escape.
    QuotedString,
    /// A malformed name-addr or addr-spec (From, To, Contact, Route, ...).
    NameAddr,
    /// A malformed Via value.
    Via,
    /// A malformed CSeq value.
    CSeq,
    /// A malformed numeric header (Max-Forwards, Expires, ...) or one that is too large.
    Number,
    /// A malformed Authorization / WWW-Authenticate value.
    Auth,
    /// A header that must appear once appears more than once with different values.
    DuplicateHeader,
    /// An element of a token list (Require, Supported, Allow, ...) that is not a token.
    Token,
}

impl ErrorKind {
    /// Every kind, in declaration order (metrics export a series for each).
    pub const ALL: [ErrorKind; 28] = [
        ErrorKind::StartLine,
        ErrorKind::Method,
        ErrorKind::RequestUri,
        ErrorKind::Version,
        ErrorKind::UnsupportedVersion,
        ErrorKind::StatusCode,
        ErrorKind::ReasonPhrase,
        ErrorKind::HeaderName,
        ErrorKind::HeaderColon,
        ErrorKind::HeaderValue,
        ErrorKind::TooManyHeaders,
        ErrorKind::LineTooLong,
        ErrorKind::MessageTooLarge,
        ErrorKind::HeadersUnterminated,
        ErrorKind::ContentLength,
        ErrorKind::BodyTruncated,
        ErrorKind::Uri,
        ErrorKind::Host,
        ErrorKind::Port,
        ErrorKind::Param,
        ErrorKind::QuotedString,
        ErrorKind::NameAddr,
        ErrorKind::Via,
        ErrorKind::CSeq,
        ErrorKind::Number,
        ErrorKind::Auth,
        ErrorKind::DuplicateHeader,
        ErrorKind::Token,
    ];

    /// A one-line explanation for logs and `sipd parse`.
    pub fn explain(self) -> &'static str {
        match self {
            ErrorKind::StartLine => "malformed start line",
            ErrorKind::Method => "request method is not a token",
            ErrorKind::RequestUri => "malformed Request-URI",
            ErrorKind::Version => "malformed SIP version",
            ErrorKind::UnsupportedVersion => "SIP version other than SIP/2.0",
            ErrorKind::StatusCode => "status code is not three digits between 100 and 699",
            ErrorKind::ReasonPhrase => "control character in reason phrase",
            ErrorKind::HeaderName => "header name is empty or not a token",
            ErrorKind::HeaderColon => "header line without ':' after the name",
            ErrorKind::HeaderValue => "control character or bad line folding in header value",
            ErrorKind::TooManyHeaders => "more header fields than the configured limit",
            ErrorKind::LineTooLong => "line longer than the configured limit",
            ErrorKind::MessageTooLarge => "message larger than the configured limit",
            ErrorKind::HeadersUnterminated => "header block not terminated by an empty line",
            ErrorKind::ContentLength => "invalid or conflicting Content-Length",
            ErrorKind::BodyTruncated => "body shorter than Content-Length",
            ErrorKind::Uri => "malformed URI",
            ErrorKind::Host => "malformed host",
            ErrorKind::Port => "port is not a number between 0 and 65535",
            ErrorKind::Param => "malformed parameter",
            ErrorKind::QuotedString => "unterminated or malformed quoted string",
            ErrorKind::NameAddr => "malformed name-addr / addr-spec",
            ErrorKind::Via => "malformed Via",
            ErrorKind::CSeq => "malformed CSeq",
            ErrorKind::Number => "malformed or overlarge number",
            ErrorKind::Auth => "malformed authentication header",
            ErrorKind::DuplicateHeader => "single-valued header field repeated",
            ErrorKind::Token => "list element is not a token",
        }
    }

    /// Stable snake_case name, used as a metrics label and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::StartLine => "start_line",
            ErrorKind::Method => "method",
            ErrorKind::RequestUri => "request_uri",
            ErrorKind::Version => "version",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::StatusCode => "status_code",
            ErrorKind::ReasonPhrase => "reason_phrase",
            ErrorKind::HeaderName => "header_name",
            ErrorKind::HeaderColon => "header_colon",
            ErrorKind::HeaderValue => "header_value",
            ErrorKind::TooManyHeaders => "too_many_headers",
            ErrorKind::LineTooLong => "line_too_long",
            ErrorKind::MessageTooLarge => "message_too_large",
            ErrorKind::HeadersUnterminated => "headers_unterminated",
            ErrorKind::ContentLength => "content_length",
            ErrorKind::BodyTruncated => "body_truncated",
            ErrorKind::Uri => "uri",
            ErrorKind::Host => "host",
            ErrorKind::Port => "port",
            ErrorKind::Param => "param",
            ErrorKind::QuotedString => "quoted_string",
            ErrorKind::NameAddr => "name_addr",
            ErrorKind::Via => "via",
            ErrorKind::CSeq => "cseq",
            ErrorKind::Number => "number",
            ErrorKind::Auth => "auth",
            ErrorKind::DuplicateHeader => "duplicate_header",
            ErrorKind::Token => "token",
        }
    }
}

/// A parse error: what was wrong and where (byte offset into the input that was parsed: the
/// datagram for message errors, the header value for typed-header errors).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Error {
    pub kind: ErrorKind,
    pub offset: usize,
}

impl Error {
    pub const fn new(kind: ErrorKind, offset: usize) -> Self {
        Error { kind, offset }
    }

    /// The same error with its offset moved by `base` (a typed-header error made absolute).
    pub const fn shifted(self, base: usize) -> Self {
        Error {
            kind: self.kind,
            offset: self.offset + base,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {}",
            self.kind.name(),
            self.offset,
            self.kind.explain()
        )
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_kind_once_in_order() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?} out of order");
        }
        let names: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        // A new variant appended after Token would get discriminant 28: keep ALL complete.
        assert_eq!(ErrorKind::Token as usize, ErrorKind::ALL.len() - 1);
    }
}
