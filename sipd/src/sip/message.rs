//! The message parser: start line, header lines, body framing.
//!
//! The contract follows httparse: the parser borrows the input, the caller supplies the storage
//! for the header index (`&mut [Header]`), nothing is allocated, and the result is
//! `Result<Status<Message>, Error>` where [`Status::Partial`] only happens with
//! [`Framing::Stream`] (TCP: wait for more bytes). Typed header values (Via, CSeq, URIs, ...) are
//! parsed on demand from [`Header::value`] by the typed parsers of this module's siblings.
//!
//! What the parser checks is the message's framing and the byte classes of each element: a start
//! line of the right shape, header names that are tokens followed by a colon, header values
//! without control bytes (line folding is LWS), and a body bounded by Content-Length. The grammar
//! of individual header values is left to the typed parsers (see `validate` for a full
//! check of every header the parser knows).

use std::mem::MaybeUninit;

use memchr::memrchr;

use super::header::HeaderName;
use super::scan::{self, CurrentScan, Scan, WithScan};
use super::{Error, ErrorKind, Result};

/// Default bound on a whole message (the largest UDP payload).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 65_535;
/// Default bound on one header line including its folded continuation lines.
pub const DEFAULT_MAX_LINE_LEN: usize = 8_192;

/// How the message boundary is found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// A UDP datagram holds exactly one message (RFC 3261 §18.3): a body shorter than
    /// Content-Length is an error, bytes after it are ignored, and without Content-Length the body
    /// is the rest of the datagram.
    Datagram,
    /// A byte stream (TCP): Content-Length is mandatory, and an incomplete message is
    /// [`Status::Partial`].
    Stream,
}

/// Explicit limits and leniencies.
#[derive(Copy, Clone, Debug)]
pub struct ParseOptions {
    pub framing: Framing,
    /// Largest accepted message (datagram: the whole datagram; stream: head plus body).
    pub max_message_len: usize,
    /// Largest accepted header line (continuation lines included) or start line.
    pub max_line_len: usize,
    /// Accept SP/HTAB at the end of the request line (RFC 4475 §3.1.2.10 `trws` says an element
    /// may be liberal here). Off by default: the message is answered 400.
    pub allow_request_line_trailing_ws: bool,
}

impl ParseOptions {
    pub const DATAGRAM: ParseOptions = ParseOptions {
        framing: Framing::Datagram,
        max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        max_line_len: DEFAULT_MAX_LINE_LEN,
        allow_request_line_trailing_ws: false,
    };
    pub const STREAM: ParseOptions = ParseOptions {
        framing: Framing::Stream,
        ..Self::DATAGRAM
    };
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self::DATAGRAM
    }
}

/// The outcome of a parse that did not fail.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    /// Stream framing only: more bytes are needed.
    Partial,
}

/// One header line as it sits in the message.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The classified name (compact forms mapped to their full name).
    pub name: HeaderName,
    /// The name exactly as written.
    pub raw_name: &'a [u8],
    /// The value with leading and trailing LWS removed; it may still contain folded line breaks
    /// (CRLF + SP/HTAB), which the typed parsers treat as LWS.
    pub value: &'a [u8],
    /// Offset of the first byte of the header line in the message.
    pub start: u32,
    /// Offset of the first byte of the value (equal to the end of the line's content when the value
    /// is empty).
    pub value_start: u32,
    /// Offset just past the line terminator of the header's last (folded) line.
    pub end: u32,
}

impl<'a> Header<'a> {
    /// Placeholder to initialise header storage with: `[Header::EMPTY; 64]`.
    pub const EMPTY: Header<'static> = Header {
        name: HeaderName::Other,
        raw_name: b"",
        value: b"",
        start: 0,
        value_start: 0,
        end: 0,
    };

    /// The name to print: canonical for known headers, as written for others.
    pub fn display_name(&self) -> &'a [u8] {
        match self.name {
            HeaderName::Other => self.raw_name,
            known => known.as_str().as_bytes(),
        }
    }
}

/// Request methods (RFC 3261 and the common extensions). Methods are case-sensitive.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    /// Any other token.
    Other(&'a [u8]),
}

impl<'a> Method<'a> {
    #[inline]
    pub fn from_bytes(token: &'a [u8]) -> Method<'a> {
        match token {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"INFO" => Method::Info,
            b"UPDATE" => Method::Update,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Method::Invite => b"INVITE",
            Method::Ack => b"ACK",
            Method::Bye => b"BYE",
            Method::Cancel => b"CANCEL",
            Method::Register => b"REGISTER",
            Method::Options => b"OPTIONS",
            Method::Info => b"INFO",
            Method::Update => b"UPDATE",
            Method::Prack => b"PRACK",
            Method::Subscribe => b"SUBSCRIBE",
            Method::Notify => b"NOTIFY",
            Method::Refer => b"REFER",
            Method::Message => b"MESSAGE",
            Method::Publish => b"PUBLISH",
            Method::Other(token) => token,
        }
    }
}

/// The SIP-Version of the start line (`SIP/<major>.<minor>`, "SIP" case-insensitive). Numbers
/// saturate at 255: only 2.0 is supported and anything else is answered 505.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

impl Version {
    pub const SIP_2_0: Version = Version { major: 2, minor: 0 };
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request {
        method: Method<'a>,
        /// The Request-URI bytes (visible ASCII, no LWS); parse with the URI parser.
        uri: &'a [u8],
        /// Offset of the Request-URI in the message.
        uri_start: u32,
        version: Version,
    },
    Response {
        version: Version,
        code: u16,
        reason: &'a [u8],
    },
}

/// A parsed message: views into the input.
#[derive(Copy, Clone, Debug)]
pub struct Message<'a, 'h> {
    buf: &'a [u8],
    start_line: StartLine<'a>,
    /// Offset of the start line (after any leading CRLFs, RFC 3261 §7.5).
    start: u32,
    headers: &'h [Header<'a>],
    /// First index in `headers` of each known header name, `u16::MAX` when absent. The last
    /// entry, for [`HeaderName::Other`], is written but never read.
    first: [u16; HeaderName::Other as usize + 1],
    /// Bit `name as u32` set for each known header name on more than one line (and the never
    /// read bit of [`HeaderName::Other`]).
    repeated: u64,
    head_end: u32,
    body_end: u32,
    content_length: Option<u32>,
    conflicting_content_length: bool,
}

impl<'a, 'h> Message<'a, 'h> {
    pub fn start_line(&self) -> &StartLine<'a> {
        &self.start_line
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start_line, StartLine::Request { .. })
    }

    /// The request method, `None` for a response.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start_line {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI bytes, `None` for a response.
    pub fn request_uri(&self) -> Option<&'a [u8]> {
        match self.start_line {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start_line {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    pub fn version(&self) -> Version {
        match self.start_line {
            StartLine::Request { version, .. } | StartLine::Response { version, .. } => version,
        }
    }

    /// Every header line in message order.
    pub fn headers(&self) -> &'h [Header<'a>] {
        self.headers
    }

    /// The first header with this name (constant time: indexed while parsing).
    #[inline]
    pub fn header(&self, name: HeaderName) -> Option<&'h Header<'a>> {
        if name == HeaderName::Other {
            return None;
        }
        let i = self.first[name as usize];
        self.headers.get(usize::from(i))
    }

    /// Index in [`Message::headers`] of the first header with this name.
    #[inline]
    pub fn header_index(&self, name: HeaderName) -> Option<usize> {
        if name == HeaderName::Other {
            return None;
        }
        let i = usize::from(self.first[name as usize]);
        (i < self.headers.len()).then_some(i)
    }

    /// Whether the known header `name` is on more than one line (`false` for
    /// [`HeaderName::Other`]); answered from the index, without a scan.
    pub fn is_repeated(&self, name: HeaderName) -> bool {
        name != HeaderName::Other && self.repeated & (1 << name as u32) != 0
    }

    /// Every header line with this (known) name, in order.
    pub fn headers_named(&self, name: HeaderName) -> impl Iterator<Item = &'h Header<'a>> + 'h {
        self.indexed_headers_named(name).map(|(_, h)| h)
    }

    /// [`Message::headers_named`] with each line's index in [`Message::headers`]. The index gives
    /// the first line, and a name seen only once needs no scan of the lines after it.
    pub fn indexed_headers_named(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = (usize, &'h Header<'a>)> + 'h {
        let len = self.headers.len();
        let start = self.header_index(name).unwrap_or(len);
        let end = if self.is_repeated(name) {
            len
        } else {
            (start + 1).min(len)
        };
        self.headers[start..end]
            .iter()
            .enumerate()
            .filter(move |(_, h)| h.name == name)
            .map(move |(i, h)| (start + i, h))
    }

    /// An extension header by name (case-insensitive), first occurrence.
    pub fn other_header(&self, raw_name: &[u8]) -> Option<&'h Header<'a>> {
        self.headers
            .iter()
            .find(|h| h.name == HeaderName::Other && h.raw_name.eq_ignore_ascii_case(raw_name))
    }

    /// The value of the first header with this name.
    #[inline]
    pub fn value(&self, name: HeaderName) -> Option<&'a [u8]> {
        self.header(name).map(|h| h.value)
    }

    /// The message body (bounded by Content-Length).
    pub fn body(&self) -> &'a [u8] {
        &self.buf[self.head_end as usize..self.body_end as usize]
    }

    /// Content-Length as declared, if present (and not conflicting).
    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    /// Several Content-Length values that disagree (RFC 4475 `mcl01`): in a datagram the message
    /// still parses (its body is the rest of the datagram) so that a server can answer 400.
    pub fn has_conflicting_content_length(&self) -> bool {
        self.conflicting_content_length
    }

    /// Offset of the start line in the input (leading CRLFs skipped).
    pub fn start(&self) -> usize {
        self.start as usize
    }

    /// Offset just past the empty line that ends the header block.
    pub fn head_len(&self) -> usize {
        self.head_end as usize
    }

    /// Bytes of the input this message occupies (start line to end of body). With stream
    /// framing, the next message starts here.
    pub fn len(&self) -> usize {
        self.body_end as usize
    }

    /// Never true: a parsed message has at least a start line.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The input the message was parsed from, up to the end of its body.
    pub fn bytes(&self) -> &'a [u8] {
        &self.buf[..self.body_end as usize]
    }
}

// `Message::repeated` has one bit per header name, `Other` included.
const _: () = assert!((HeaderName::Other as usize) < 64);

/// Parses a whole UDP datagram (the common case; never [`Status::Partial`]).
#[inline]
pub fn parse_datagram<'a, 'h>(
    buf: &'a [u8],
    headers: &'h mut [Header<'a>],
) -> Result<Message<'a, 'h>> {
    parse_datagram_uninit(buf, as_uninit(headers))
}

/// [`parse_datagram`] into storage that need not be initialised: a hot path keeps
/// `[MaybeUninit<Header>; N]` on its stack instead of writing `N` placeholders per message.
#[inline]
pub fn parse_datagram_uninit<'a, 'h>(
    buf: &'a [u8],
    headers: &'h mut [MaybeUninit<Header<'a>>],
) -> Result<Message<'a, 'h>> {
    match parse_uninit(buf, headers, &ParseOptions::DATAGRAM)? {
        Status::Complete(m) => Ok(m),
        // Datagram framing reports truncation as an error instead.
        Status::Partial => Err(Error::new(ErrorKind::BodyTruncated, buf.len())),
    }
}

/// Parses one message from `buf` into views, filling `headers` with the header index.
pub fn parse<'a, 'h>(
    buf: &'a [u8],
    headers: &'h mut [Header<'a>],
    opts: &ParseOptions,
) -> Result<Status<Message<'a, 'h>>> {
    parse_uninit(buf, as_uninit(headers), opts)
}

/// [`parse`] into storage that need not be initialised (see [`parse_datagram_uninit`]).
pub fn parse_uninit<'a, 'h>(
    buf: &'a [u8],
    headers: &'h mut [MaybeUninit<Header<'a>>],
    opts: &ParseOptions,
) -> Result<Status<Message<'a, 'h>>> {
    // The scanner backend is chosen once per message and the parser compiled for each one.
    scan::dispatch(ParseJob { buf, headers, opts })
}

/// Views initialised storage as storage the parser may overwrite.
#[allow(unsafe_code)]
fn as_uninit<'a, 'h>(headers: &'h mut [Header<'a>]) -> &'h mut [MaybeUninit<Header<'a>>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`. The parser writes the slice only through
    // `HeaderSink::push`, which stores whole, initialised `Header`s (never
    // `MaybeUninit::uninit()`), so the caller's `[Header]` is still fully initialised when the
    // borrow ends. `Header` is `Copy`: overwriting an entry drops nothing.
    unsafe { &mut *(headers as *mut [Header<'a>] as *mut [MaybeUninit<Header<'a>>]) }
}

/// The header index being filled: caller-supplied slots, of which the first `count` are written.
struct HeaderSink<'a, 'h> {
    slots: &'h mut [MaybeUninit<Header<'a>>],
    /// Invariant: `slots[..count]` are initialised (only `push` writes and advances it).
    count: usize,
}

impl<'a, 'h> HeaderSink<'a, 'h> {
    fn new(slots: &'h mut [MaybeUninit<Header<'a>>]) -> Self {
        HeaderSink { slots, count: 0 }
    }

    /// Appends `header`; `Err(())` when every slot is taken.
    #[inline(always)]
    #[allow(unsafe_code)]
    fn push(&mut self, header: Header<'a>) -> std::result::Result<(), ()> {
        let slot = self.slots.get_mut(self.count).ok_or(())?.as_mut_ptr();
        // Field by field: a whole-struct write also copied the padding bytes (a load and a store
        // per line).
        // SAFETY: `slot` points to a slot of `self.slots`, valid for writes and aligned; every
        // field is written, so the slot holds an initialised `Header` (padding need not be).
        unsafe {
            (&raw mut (*slot).name).write(header.name);
            (&raw mut (*slot).raw_name).write(header.raw_name);
            (&raw mut (*slot).value).write(header.value);
            (&raw mut (*slot).start).write(header.start);
            (&raw mut (*slot).value_start).write(header.value_start);
            (&raw mut (*slot).end).write(header.end);
        }
        self.count += 1;
        Ok(())
    }

    /// The headers written so far.
    #[allow(unsafe_code)]
    fn into_written(self) -> &'h [Header<'a>] {
        let written = &self.slots[..self.count];
        // SAFETY: by the invariant on `count`, `written` is initialised, and `MaybeUninit<T>` has
        // the layout of `T`. The shared borrow keeps the slots from being written again.
        unsafe { &*(written as *const [MaybeUninit<Header<'a>>] as *const [Header<'a>]) }
    }
}

struct ParseJob<'a, 'h, 'o> {
    buf: &'a [u8],
    headers: &'h mut [MaybeUninit<Header<'a>>],
    opts: &'o ParseOptions,
}

impl<'a, 'h> WithScan for ParseJob<'a, 'h, '_> {
    type Output = Result<Status<Message<'a, 'h>>>;
    #[inline(always)]
    fn run<S: Scan>(self, scan: S) -> Self::Output {
        parse_with(self.buf, self.headers, self.opts, scan)
    }
}

#[inline(always)]
fn parse_with<'a, 'h, S: Scan>(
    buf: &'a [u8],
    headers: &'h mut [MaybeUninit<Header<'a>>],
    opts: &ParseOptions,
    scan: S,
) -> Result<Status<Message<'a, 'h>>> {
    let stream = opts.framing == Framing::Stream;
    if !stream && buf.len() > opts.max_message_len {
        return Err(Error::new(ErrorKind::MessageTooLarge, opts.max_message_len));
    }
    // RFC 3261 §7.5: ignore CRLFs before the start line (stream keep-alives, stray newlines).
    let mut pos = 0;
    while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        pos += 1;
    }
    let start = pos;
    // The start line ends at its first control byte when that is a CRLF (or LF) within the
    // line limit: one vector scan, inlined. Anything else is left to `find_line_end`, which
    // gives the same answer in the cases taken here.
    let content_end = pos + scan.value_len(&buf[pos..]);
    let fast_end = match buf.get(content_end) {
        _ if content_end - pos > opts.max_line_len => None,
        Some(b'\n') => Some((content_end, content_end + 1)),
        Some(b'\r') if buf.get(content_end + 1) == Some(&b'\n') => {
            Some((content_end, content_end + 2))
        }
        _ => None,
    };
    let line_end = match fast_end {
        Some(end) => Some(end),
        None => find_line_end(buf, pos, opts)?,
    };
    let Some((line_end, next)) = line_end else {
        return incomplete(buf, stream, ErrorKind::HeadersUnterminated);
    };
    // The start line is parsed after the header lines (its errors still come first): parsed
    // before, its fields stayed live across the header loop and were reloaded on every line.
    let start_line_at = pos;
    pos = next;

    let max_line = line_bound(buf, opts);
    let mut sink = HeaderSink::new(headers);
    let mut first = [u16::MAX; HeaderName::Other as usize + 1];
    let mut repeated = 0u64;
    let mut content_length: Option<u32> = None;
    let mut conflicting_content_length = false;
    // A labelled block, not a closure: a closure was compiled out of line, without the backend's
    // target features.
    let header_block: Result<Status<usize>> = 'block: {
        let head_end = loop {
            // End of the header block: an empty line (or, in a datagram, the end of the datagram
            // right after a complete header line: lenient, no body).
            match buf.get(pos) {
                None if !stream => break pos,
                None => break 'block Ok(Status::Partial),
                Some(b'\n') => break pos + 1,
                Some(b'\r') => match buf.get(pos + 1) {
                    Some(b'\n') => break pos + 2,
                    None if stream => break 'block Ok(Status::Partial),
                    _ => break 'block Err(Error::new(ErrorKind::HeaderName, pos)),
                },
                Some(_) => {}
            }
            // `parse_header_line` spelled out, so that the common shape's `Header` goes straight
            // into its slot instead of through a `Result<Option<Header>>`.
            let (name, name_len, line_len) = header_line_start(buf, pos, scan);
            let header = match simple_header_line(buf, pos, name, name_len, line_len, max_line) {
                Some(header) => header,
                None => match parse_header_line_general(buf, pos, name_len, opts, scan) {
                    Ok(Some(header)) => header,
                    Ok(None) => {
                        break 'block incomplete(buf, stream, ErrorKind::HeadersUnterminated);
                    }
                    Err(e) => break 'block Err(e),
                },
            };
            let index = sink.count;
            let end = header.end as usize;
            let name = header.name;
            let (value, value_start, start) = (header.value, header.value_start, header.start);
            if sink.push(header).is_err() {
                break 'block Err(Error::new(ErrorKind::TooManyHeaders, pos));
            }
            if name == HeaderName::ContentLength
                && let Err(e) = note_content_length(
                    value,
                    value_start,
                    start,
                    stream,
                    &mut content_length,
                    &mut conflicting_content_length,
                )
            {
                break 'block Err(e);
            }
            // `Other` is tracked too (its entries are never read), which spares a test per line.
            let slot = &mut first[name as usize];
            if *slot == u16::MAX {
                // `index` < headers.len(); storage beyond u16 indices is never consulted.
                *slot = u16::try_from(index).unwrap_or(u16::MAX);
            } else {
                // Fewer than first sightings (a repeat is a Via, Route, Record-Route, ...): the
                // first sighting laid out as the fall-through is spared a jump back to the loop.
                core::hint::cold_path();
                repeated |= 1 << name as u32;
            }
            pos = end;
        };
        Ok(Status::Complete(head_end))
    };
    let start_line = parse_start_line(buf, start_line_at, line_end, opts, scan)?;
    let head_end = match header_block? {
        Status::Complete(end) => end,
        Status::Partial => return Ok(Status::Partial),
    };

    if conflicting_content_length {
        content_length = None;
    }
    let body_end = match (content_length, opts.framing) {
        (Some(len), _) => {
            let end = head_end.saturating_add(len as usize);
            if end > buf.len() {
                if stream {
                    if end > opts.max_message_len.max(head_end) {
                        return Err(Error::new(ErrorKind::MessageTooLarge, head_end));
                    }
                    return Ok(Status::Partial);
                }
                return Err(Error::new(ErrorKind::BodyTruncated, buf.len()));
            }
            end
        }
        (None, Framing::Datagram) => buf.len(),
        // RFC 3261 §18.3: Content-Length MUST be used with stream-oriented transports.
        (None, Framing::Stream) => return Err(Error::new(ErrorKind::ContentLength, head_end)),
    };

    Ok(Status::Complete(Message {
        buf,
        start_line,
        start: start as u32,
        headers: sink.into_written(),
        first,
        repeated,
        head_end: head_end as u32,
        body_end: body_end as u32,
        content_length,
        conflicting_content_length,
    }))
}

/// Parses only the header block of a request whose start line is unusable, so that a server
/// can still answer it (400, 505) with the right Via, From, To, Call-ID and CSeq.
pub fn parse_headers_after_start_line<'a, 'h>(
    buf: &'a [u8],
    headers: &'h mut [MaybeUninit<Header<'a>>],
) -> Result<&'h [Header<'a>]> {
    let opts = ParseOptions::DATAGRAM;
    if buf.len() > opts.max_message_len {
        return Err(Error::new(ErrorKind::MessageTooLarge, opts.max_message_len));
    }
    let mut pos = 0;
    while pos < buf.len() && (buf[pos] == b'\r' || buf[pos] == b'\n') {
        pos += 1;
    }
    let Some(nl) = memchr::memchr(b'\n', &buf[pos..]) else {
        return Err(Error::new(ErrorKind::HeadersUnterminated, buf.len()));
    };
    pos += nl + 1;
    let mut sink = HeaderSink::new(headers);
    while pos < buf.len() && buf[pos] != b'\r' && buf[pos] != b'\n' {
        let Some(header) = parse_header_line(buf, pos, &opts, CurrentScan)? else {
            return Err(Error::new(ErrorKind::HeadersUnterminated, buf.len()));
        };
        pos = header.end as usize;
        sink.push(header)
            .map_err(|()| Error::new(ErrorKind::TooManyHeaders, header.start as usize))?;
    }
    Ok(sink.into_written())
}

fn incomplete<T>(buf: &[u8], stream: bool, kind: ErrorKind) -> Result<Status<T>> {
    if stream {
        Ok(Status::Partial)
    } else {
        Err(Error::new(kind, buf.len()))
    }
}

/// Finds the end of the line starting at `pos` without header values (the start line): returns
/// (offset of the CR or LF, offset of the next line), `None` if the input ends first.
fn find_line_end(buf: &[u8], pos: usize, opts: &ParseOptions) -> Result<Option<(usize, usize)>> {
    let limit = buf.len().min(pos.saturating_add(opts.max_line_len + 2));
    match memchr::memchr(b'\n', &buf[pos..limit]) {
        Some(i) => {
            let lf = pos + i;
            let end = if lf > pos && buf[lf - 1] == b'\r' {
                lf - 1
            } else {
                lf
            };
            if end - pos > opts.max_line_len {
                return Err(Error::new(ErrorKind::LineTooLong, pos));
            }
            Ok(Some((end, lf + 1)))
        }
        None if limit < buf.len() => Err(Error::new(ErrorKind::LineTooLong, pos)),
        None => Ok(None),
    }
}

#[inline(always)]
fn parse_start_line<'a, S: Scan>(
    buf: &'a [u8],
    pos: usize,
    end: usize,
    opts: &ParseOptions,
    scan: S,
) -> Result<StartLine<'a>> {
    let line = &buf[pos..end];
    if line.is_empty() {
        return Err(Error::new(ErrorKind::StartLine, pos));
    }
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        return parse_status_line(line, pos, scan);
    }
    // Request-Line = Method SP Request-URI SP SIP-Version CRLF
    let (method_len, known) = match common_method(line) {
        Some((len, method)) => (len, Some(method)),
        None => (scan.token_len(line), None),
    };
    if method_len == 0 {
        return Err(Error::new(ErrorKind::Method, pos));
    }
    if line.get(method_len) != Some(&b' ') {
        return Err(Error::new(ErrorKind::Method, pos + method_len));
    }
    let mut rest_end = line.len();
    if matches!(line[rest_end - 1], b' ' | b'\t') {
        if !opts.allow_request_line_trailing_ws {
            return Err(Error::new(ErrorKind::StartLine, pos + rest_end - 1));
        }
        while matches!(line[rest_end - 1], b' ' | b'\t') {
            rest_end -= 1;
        }
    }
    let uri_start = method_len + 1;
    let rest = &line[uri_start..rest_end];
    // The version is the last element; anything between it and the method is the Request-URI,
    // which must then be one run of visible characters (no LWS: RFC 4475 lwsruri, lwsstart).
    // Nearly always ` SIP/2.0` at the end: that SP is then the last one, found without a search.
    // (The version is then known too: `parse_version` need not look at it again.)
    let (last_sp, version) = match rest.len().checked_sub(8) {
        Some(at) if &rest[at..] == b" SIP/2.0" => (at, Some(Version::SIP_2_0)),
        _ => match memrchr(b' ', rest) {
            Some(at) => (at, None),
            None => return Err(Error::new(ErrorKind::StartLine, pos + uri_start)),
        },
    };
    let uri = &rest[..last_sp];
    let good = scan.uri_len(uri);
    if uri.is_empty() || good != uri.len() {
        return Err(Error::new(ErrorKind::RequestUri, pos + uri_start + good));
    }
    // A `match`, not `or_else`: the closure was left out of line, a call on every request.
    let version = match version {
        Some(v) => Some(v),
        None => parse_version(&rest[last_sp + 1..]),
    }
    .ok_or(Error::new(
        ErrorKind::Version,
        pos + uri_start + last_sp + 1,
    ))?;
    // A `match`, not `unwrap_or_else`, as for the version.
    let method = match known {
        Some(method) => method,
        None => Method::from_bytes(&line[..method_len]),
    };
    Ok(StartLine::Request {
        method,
        uri,
        uri_start: (pos + uri_start) as u32,
        version,
    })
}

/// The method of a request line that starts with one of the common methods and SP: its length
/// and value, without a token scan (a known method is all token bytes and SP is none, so the
/// token run ends at the SP) or a lookup.
#[inline(always)]
fn common_method(line: &[u8]) -> Option<(usize, Method<'static>)> {
    // (first 8 bytes as a little-endian word, bytes compared, length, method)
    const fn entry(name: &[u8], method: Method<'static>) -> (u64, u64, usize, Method<'static>) {
        let mut bytes = [0u8; 8];
        let mut i = 0;
        while i < name.len() {
            bytes[i] = name[i];
            i += 1;
        }
        bytes[name.len()] = b' ';
        let compared = u64::MAX >> (8 * (7 - name.len()));
        (u64::from_le_bytes(bytes), compared, name.len(), method)
    }
    const COMMON: [(u64, u64, usize, Method<'static>); 5] = [
        entry(b"INVITE", Method::Invite),
        entry(b"ACK", Method::Ack),
        entry(b"BYE", Method::Bye),
        entry(b"CANCEL", Method::Cancel),
        entry(b"OPTIONS", Method::Options),
    ];
    let word = u64::from_le_bytes(*line.first_chunk::<8>()?);
    if let Some(&(_, _, len, method)) = COMMON
        .iter()
        .find(|&&(pattern, compared, _, _)| word & compared == pattern)
    {
        return Some((len, method));
    }
    // Eight bytes: its SP is the ninth.
    (word == u64::from_le_bytes(*b"REGISTER") && line.get(8) == Some(&b' '))
        .then_some((8, Method::Register))
}

/// Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
#[inline(always)]
fn parse_status_line<S: Scan>(line: &[u8], pos: usize, scan: S) -> Result<StartLine<'_>> {
    // Nearly always `SIP/2.0 `: its SP is then the first one, found without a search.
    let sp = if line.starts_with(b"SIP/2.0 ") {
        7
    } else {
        memchr::memchr(b' ', line).ok_or(Error::new(ErrorKind::StartLine, pos))?
    };
    let version = parse_version(&line[..sp]).ok_or(Error::new(ErrorKind::Version, pos))?;
    let code_start = sp + 1;
    let code = line.get(code_start..code_start + 3).unwrap_or(b"");
    let after = line.get(code_start + 3).copied();
    if code.len() != 3
        || !code.iter().all(u8::is_ascii_digit)
        || !matches!(after, None | Some(b' '))
    {
        return Err(Error::new(ErrorKind::StatusCode, pos + code_start));
    }
    let code = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    if !(100..=699).contains(&code) {
        return Err(Error::new(ErrorKind::StatusCode, pos + code_start));
    }
    let reason = line.get(code_start + 4..).unwrap_or(b"");
    let good = scan.value_len(reason);
    if good != reason.len() {
        return Err(Error::new(
            ErrorKind::ReasonPhrase,
            pos + code_start + 4 + good,
        ));
    }
    Ok(StartLine::Response {
        version,
        code,
        reason,
    })
}

/// `SIP/<digits>.<digits>`, "SIP" case-insensitive.
fn parse_version(v: &[u8]) -> Option<Version> {
    if v == b"SIP/2.0" {
        return Some(Version::SIP_2_0);
    }
    if v.len() < 7 || !v[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let nums = &v[4..];
    let dot = memchr::memchr(b'.', nums)?;
    let number = |d: &[u8]| -> Option<u8> {
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(
            d.iter()
                .fold(0u32, |n, c| (n * 10 + u32::from(c - b'0')).min(255)) as u8,
        )
    };
    Some(Version {
        major: number(&nums[..dot])?,
        minor: number(&nums[dot + 1..])?,
    })
}

/// Parses the header line starting at `pos` (not an empty line). `None` when the input ends
/// before the line does (including the byte after the line, needed to rule out a fold).
#[inline(always)]
fn parse_header_line<'a, S: Scan>(
    buf: &'a [u8],
    pos: usize,
    opts: &ParseOptions,
    scan: S,
) -> Result<Option<Header<'a>>> {
    let (name, name_len, line_len) = header_line_start(buf, pos, scan);
    let max_line = line_bound(buf, opts);
    match simple_header_line(buf, pos, name, name_len, line_len, max_line) {
        Some(header) => Ok(Some(header)),
        None => parse_header_line_general(buf, pos, name_len, opts, scan),
    }
}

/// The start of the header line at `pos`: its name classified, the name's length (its run of
/// token bytes) and the length of the line's content (its run of value bytes, which the name and
/// `: ` belong to, so it ends where the value's own run does). The name is looked up as the bytes
/// before the line's first colon: a known name is all token bytes, so only an unknown one is
/// scanned for them.
#[inline(always)]
fn header_line_start<S: Scan>(buf: &[u8], pos: usize, scan: S) -> (HeaderName, usize, usize) {
    let line = &buf[pos..];
    let (colon, line_len) = scan.colon_value_len(line);
    if let Some(name) = HeaderName::known_prefix(line, colon) {
        // `:` is no token byte: the token run ends at the colon.
        return (name, colon, line_len);
    }
    // The byte at `colon` (a colon, or one ending the content) is no token byte: the token run
    // is the same on `line[..colon]` as on the whole line.
    (HeaderName::Other, scan.token_len(&line[..colon]), line_len)
}

/// The header line at `pos` if it has the shape nearly every line has: `Name: value\r\n` with
/// exactly one SP after the colon, a value that neither starts nor ends with LWS, and a next
/// line that is not a fold (`name`, `name_len` and `line_len` from [`header_line_start`];
/// `max_line` from [`line_bound`]). `None` leaves the line to [`parse_header_line_general`],
/// which gives the same answer for these lines.
#[inline(always)]
#[allow(unsafe_code)]
fn simple_header_line(
    buf: &[u8],
    pos: usize,
    name: HeaderName,
    name_len: usize,
    line_len: usize,
    max_line: usize,
) -> Option<Header<'_>> {
    let line = buf.get(pos..)?;
    // One length test for every read below, three compares without a saturating subtraction
    // (each cost a register copy and a conditional move):
    // - `3 <= line_len <= max(limit, 3)`, `limit` the line limit capped at `buf.len()` (see
    //   [`line_bound`]; a line of 3 when `limit < 3` fails the third test), so `line_len - 3`
    //   below cannot wrap and neither can `line_len + 3`;
    // - `line_len + 3 <= line.len()`: the last value byte's CRLF and the next line's first byte;
    // - `0 < name_len <= line_len - 3`: name, `: `, a value byte. An empty value fails it: its
    //   line is `Name: ` (`line_len == name_len + 2`), left to the general path as before.
    if line_len.wrapping_sub(3) > max_line
        || line_len + 3 > line.len()
        || name_len.wrapping_sub(1) >= line_len - 3
    {
        return None;
    }
    let at = |i: usize| {
        debug_assert!(i < line_len + 3);
        // SAFETY: every caller index is below `line_len + 3 <= line.len()` (tested above).
        unsafe { *line.get_unchecked(i) }
    };
    let colon_sp = u16::from_le_bytes([at(name_len), at(name_len + 1)]);
    let crlf = u16::from_le_bytes([at(line_len), at(line_len + 1)]);
    let (first, last, next) = (at(name_len + 2), at(line_len - 1), at(line_len + 2));
    if colon_sp != u16::from_le_bytes(*b": ")
        || crlf != u16::from_le_bytes(*b"\r\n")
        || (IS_LWS[usize::from(first)] | IS_LWS[usize::from(last)] | IS_LWS[usize::from(next)])
    {
        return None;
    }
    let value_start = pos + name_len + 2;
    // SAFETY: `name_len + 2 < line_len < line.len()` (tested above), so both ranges are inside
    // `line`.
    let (raw_name, value) = unsafe {
        (
            line.get_unchecked(..name_len),
            line.get_unchecked(name_len + 2..line_len),
        )
    };
    Some(Header {
        name,
        raw_name,
        value,
        start: pos as u32,
        value_start: value_start as u32,
        end: (pos + line_len + 2) as u32,
    })
}

/// [`simple_header_line`]'s bound on a line's content, less 3: the line limit capped at the
/// buffer's length (a line past the end of `buf` fails its tests either way), so that sums with
/// a line length cannot wrap.
#[inline(always)]
fn line_bound(buf: &[u8], opts: &ParseOptions) -> usize {
    opts.max_line_len.min(buf.len()).saturating_sub(3)
}

/// SP and HTAB: what a value may not start or end with, and what makes the next line a fold.
static IS_LWS: [bool; 256] = {
    let mut t = [false; 256];
    t[b' ' as usize] = true;
    t[b'\t' as usize] = true;
    t
};

/// [`parse_header_line`] for every line shape (LWS around the colon or the value, folds, escaped
/// control bytes, the input's end), from the name's end on. Kept out of line: inlined, its code
/// made the per-line loop of `parse_with` spill registers for the common shape too.
#[inline(never)]
fn parse_header_line_general<'a, S: Scan>(
    buf: &'a [u8],
    pos: usize,
    name_len: usize,
    opts: &ParseOptions,
    scan: S,
) -> Result<Option<Header<'a>>> {
    if name_len == 0 {
        return Err(Error::new(ErrorKind::HeaderName, pos));
    }
    let raw_name = &buf[pos..pos + name_len];
    let line_limit = pos.saturating_add(opts.max_line_len);
    // HCOLON = *( SP / HTAB ) ":" SWS
    let mut i = pos + name_len;
    while i < buf.len() && matches!(buf[i], b' ' | b'\t') {
        i += 1;
    }
    match buf.get(i) {
        Some(b':') => i += 1,
        None => return Ok(None),
        Some(_) => return Err(Error::new(ErrorKind::HeaderColon, i)),
    }

    // Fast path, nearly every line: a value on one line ending in CRLF, not folded. One vector
    // scan finds the CR; only the ends are trimmed.
    let mut value_start = i;
    while value_start < buf.len() && matches!(buf[value_start], b' ' | b'\t') {
        value_start += 1;
    }
    let content_end = value_start + scan.value_len(&buf[value_start..]);
    if content_end <= line_limit
        && buf.get(content_end) == Some(&b'\r')
        && buf.get(content_end + 1) == Some(&b'\n')
        && buf
            .get(content_end + 2)
            .is_some_and(|&c| c != b' ' && c != b'\t')
    {
        let mut value_end = content_end;
        while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
            value_end -= 1;
        }
        if value_end == value_start {
            // An empty value sits right after the colon, as the general path places it.
            (value_start, value_end) = (i, i);
        }
        return Ok(Some(Header {
            name: HeaderName::classify_in(buf, pos, name_len),
            raw_name,
            value: &buf[value_start..value_end],
            start: pos as u32,
            value_start: value_start as u32,
            end: (content_end + 2) as u32,
        }));
    }
    let mut value_start = None;
    let mut value_end = i;
    // Scan value bytes line by line; a line ending followed by SP/HTAB is a fold (LWS).
    loop {
        let mut content_end = i + scan.value_len(&buf[i..]);
        // A control byte escaped as a quoted-pair (`\` + %x00-09 / %x0B-0C / %x0E-7F, RFC 3261
        // §25.1) belongs to the value (RFC 4475 intmeth); quoted-string grammar is checked by the
        // typed parsers.
        while content_end > i
            && buf[content_end - 1] == b'\\'
            && buf
                .get(content_end)
                .is_some_and(|&c| c != b'\r' && c != b'\n')
        {
            content_end += 1;
            content_end += scan.value_len(&buf[content_end..]);
        }
        if content_end > line_limit {
            return Err(Error::new(ErrorKind::LineTooLong, pos));
        }
        // Track the trimmed value: first and last non-LWS byte seen.
        if let Some(first) = buf[i..content_end]
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
        {
            value_start.get_or_insert(i + first);
            let last = buf[i..content_end]
                .iter()
                .rposition(|&b| b != b' ' && b != b'\t');
            value_end = i + last.unwrap_or(first) + 1;
        }
        let next = match buf.get(content_end) {
            None => return Ok(None),
            Some(b'\n') => content_end + 1,
            Some(b'\r') => match buf.get(content_end + 1) {
                Some(b'\n') => content_end + 2,
                None => return Ok(None),
                Some(_) => return Err(Error::new(ErrorKind::HeaderValue, content_end)),
            },
            Some(_) => return Err(Error::new(ErrorKind::HeaderValue, content_end)),
        };
        match buf.get(next) {
            Some(b' ' | b'\t') => i = next,
            None if opts.framing == Framing::Stream => return Ok(None),
            _ => {
                let value_start = value_start.unwrap_or(value_end);
                return Ok(Some(Header {
                    name: HeaderName::classify_in(buf, pos, name_len),
                    raw_name,
                    value: &buf[value_start..value_end],
                    start: pos as u32,
                    value_start: value_start as u32,
                    end: next as u32,
                }));
            }
        }
    }
}

/// Records a Content-Length line (`value` at `value_start`, the line at `start`): the first
/// declared length, or a conflict with it (an error in a stream). Out of line: once per message,
/// and inlined its code left the header loop with more register moves.
#[inline(never)]
fn note_content_length(
    value: &[u8],
    value_start: u32,
    start: u32,
    stream: bool,
    content_length: &mut Option<u32>,
    conflicting: &mut bool,
) -> Result<()> {
    let declared = parse_content_length(value)
        .ok_or(Error::new(ErrorKind::ContentLength, value_start as usize))?;
    match *content_length {
        Some(previous) if previous != declared => {
            if stream {
                // Without one length there is no way to find the next message.
                return Err(Error::new(ErrorKind::ContentLength, start as usize));
            }
            *conflicting = true;
        }
        _ => *content_length = Some(declared),
    }
    Ok(())
}

/// Content-Length = 1*DIGIT (LWS-trimmed by the caller); `None` if malformed or over u32.
fn parse_content_length(value: &[u8]) -> Option<u32> {
    if value.is_empty() || value.len() > 10 {
        return None;
    }
    // One pass: the digit test and the sum together.
    let mut n = 0u64;
    for &c in value {
        let digit = c.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + u64::from(digit);
    }
    u32::try_from(n).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `m` with `backend`'s scans into fresh storage of `N` slots and hands the outcome
    /// to `f`; `None` when this CPU lacks the backend.
    fn parse_on<'a, const N: usize, T>(
        backend: scan::Backend,
        m: &'a [u8],
        opts: &ParseOptions,
        f: impl FnOnce(Result<Status<Message<'a, '_>>>) -> T,
    ) -> Option<T> {
        let mut headers = [MaybeUninit::uninit(); N];
        scan::dispatch_to(
            backend,
            ParseJob {
                buf: m,
                headers: &mut headers,
                opts,
            },
        )
        .map(f)
    }

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.com>\r\n\
From: Alice <sip:alice@atlanta.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    type Parsed = (usize, Vec<(HeaderName, Vec<u8>)>, Vec<u8>);

    fn parse_ok(buf: &[u8]) -> Parsed {
        let mut h = [Header::EMPTY; 32];
        let m = parse_datagram(buf, &mut h).unwrap();
        let hs = m
            .headers()
            .iter()
            .map(|h| (h.name, h.value.to_vec()))
            .collect();
        (m.len(), hs, m.body().to_vec())
    }

    fn parse_err(buf: &[u8]) -> Error {
        let mut h = [Header::EMPTY; 32];
        parse_datagram(buf, &mut h).unwrap_err()
    }

    #[test]
    fn rfc3261_invite() {
        let mut h = [Header::EMPTY; 32];
        let m = parse_datagram(INVITE, &mut h).unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.request_uri(), Some(&b"sip:bob@biloxi.com"[..]));
        assert_eq!(m.version(), Version::SIP_2_0);
        assert_eq!(m.headers().len(), 9);
        assert_eq!(
            m.value(HeaderName::CallId),
            Some(&b"a84b4c76e66710@pc33.atlanta.com"[..])
        );
        assert_eq!(m.value(HeaderName::MaxForwards), Some(&b"70"[..]));
        assert_eq!(m.content_length(), Some(4));
        assert_eq!(m.body(), b"v=0\n");
        assert_eq!(m.len(), INVITE.len());
        let via = m.header(HeaderName::Via).unwrap();
        assert_eq!(
            &INVITE[via.start as usize..via.end as usize],
            b"Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds\r\n"
        );
        assert_eq!(&INVITE[via.value_start as usize..][..3], b"SIP");
    }

    #[test]
    fn common_methods_agree_with_the_token_scan() {
        let lines: [&[u8]; 14] = [
            b"INVITE sip:x SIP/2.0",
            b"ACK sip:x SIP/2.0",
            b"BYE sip:x SIP/2.0",
            b"CANCEL sip:x SIP/2.0",
            b"OPTIONS sip:x SIP/2.0",
            b"REGISTER sip:x SIP/2.0",
            b"INVITEX sip:x SIP/2.0",
            b"REGISTERS sip:x",
            b"invite sip:x SIP/2.0",
            b"BYE\tsip:x SIP/2.0",
            b"ACK sip",
            b"REGISTER",
            b"REGISTER\x00x",
            b"OPTIONS\x00",
        ];
        for line in lines {
            let found = common_method(line);
            if let Some((len, method)) = found {
                assert_eq!(len, scan::token_len(line), "{line:?}");
                assert_eq!(line.get(len), Some(&b' '), "{line:?}");
                assert_eq!(method, Method::from_bytes(&line[..len]), "{line:?}");
            }
            // Taken exactly for the six methods followed by SP (and 8 bytes to read).
            assert_eq!(found.is_some(), lines[..6].contains(&line), "{line:?}");
        }
    }

    #[test]
    fn response_line() {
        let mut h = [Header::EMPTY; 8];
        let m = parse_datagram(b"SIP/2.0 180 Ringing\r\nVia: a\r\n\r\n", &mut h).unwrap();
        assert_eq!(m.status(), Some(180));
        assert!(matches!(
            m.start_line(),
            StartLine::Response {
                reason: b"Ringing",
                ..
            }
        ));
        let m = parse_datagram(b"SIP/2.0 100 \r\n\r\n", &mut h).unwrap();
        assert!(matches!(
            m.start_line(),
            StartLine::Response {
                code: 100,
                reason: b"",
                ..
            }
        ));
        let m = parse_datagram(b"SIP/2.0 200\r\n\r\n", &mut h).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(
            parse_err(b"SIP/2.0 4294967301 x\r\n\r\n").kind,
            ErrorKind::StatusCode
        );
        assert_eq!(
            parse_err(b"SIP/2.0 099 x\r\n\r\n").kind,
            ErrorKind::StatusCode
        );
        assert_eq!(
            parse_err(b"SIP/2.0 20 x\r\n\r\n").kind,
            ErrorKind::StatusCode
        );
        assert_eq!(
            parse_err(b"SIP/2.0 200 O\x01K\r\n\r\n").kind,
            ErrorKind::ReasonPhrase
        );
    }

    #[test]
    fn folding_compact_forms_and_case() {
        let msg =
            b"OPTIONS sip:x SIP/2.0\r\nv : SIP/2.0/UDP\r\n  h;branch=z\r\nI:id\r\nsubject:\r\n\r\n";
        let (_, hs, body) = parse_ok(msg);
        assert_eq!(
            hs[0],
            (HeaderName::Via, b"SIP/2.0/UDP\r\n  h;branch=z".to_vec())
        );
        assert_eq!(hs[1], (HeaderName::CallId, b"id".to_vec()));
        assert_eq!(hs[2], (HeaderName::Subject, b"".to_vec()));
        assert!(body.is_empty());
    }

    #[test]
    fn repeated_headers_are_known_from_the_index() {
        let msg = b"OPTIONS sip:x SIP/2.0\r\nv: SIP/2.0/UDP a\r\nMax-Forwards: 70\r\nVia: SIP/2.0/UDP b\r\n\
X-A: 1\r\nx-a: 2\r\nmax-forwards: 69\r\nCall-ID: c\r\n\r\n";
        let mut h = [Header::EMPTY; 16];
        let m = parse_datagram(msg, &mut h).unwrap();
        assert!(
            m.is_repeated(HeaderName::Via),
            "compact and full forms are one name"
        );
        assert!(m.is_repeated(HeaderName::MaxForwards));
        assert!(!m.is_repeated(HeaderName::CallId));
        assert!(!m.is_repeated(HeaderName::To), "absent");
        assert!(
            !m.is_repeated(HeaderName::Other),
            "extension headers are not tracked"
        );
        for name in HeaderName::KNOWN {
            assert_eq!(
                m.is_repeated(*name),
                m.headers_named(*name).count() > 1,
                "{name:?}"
            );
        }
    }

    #[test]
    fn value_starting_on_a_folded_line() {
        let (_, hs, _) = parse_ok(b"BYE sip:x SIP/2.0\r\nTo :\r\n sip:a@b ;tag=1\r\n\r\n");
        assert_eq!(hs[0], (HeaderName::To, b"sip:a@b ;tag=1".to_vec()));
    }

    #[test]
    fn bare_lf_line_ends_are_accepted() {
        let (_, hs, body) = parse_ok(b"BYE sip:x SIP/2.0\nCall-ID: 1\n\nbody");
        assert_eq!(hs.len(), 1);
        assert_eq!(body, b"body");
    }

    #[test]
    fn content_length_bounds_the_body() {
        let (len, _, body) = parse_ok(b"MESSAGE sip:x SIP/2.0\r\nl: 2\r\n\r\nhiEXTRA");
        assert_eq!(body, b"hi");
        assert_eq!(len, b"MESSAGE sip:x SIP/2.0\r\nl: 2\r\n\r\nhi".len());
        assert_eq!(
            parse_err(b"MESSAGE sip:x SIP/2.0\r\nl: 20\r\n\r\nhi").kind,
            ErrorKind::BodyTruncated
        );
        assert_eq!(
            parse_err(b"MESSAGE sip:x SIP/2.0\r\nl: -1\r\n\r\n").kind,
            ErrorKind::ContentLength
        );
        assert_eq!(
            parse_err(b"MESSAGE sip:x SIP/2.0\r\nl: 99999999999\r\n\r\n").kind,
            ErrorKind::ContentLength
        );
        let conflicting = b"MESSAGE sip:x SIP/2.0\r\nl: 2\r\nContent-Length: 3\r\n\r\nhey!";
        let mut h = [Header::EMPTY; 4];
        let m = parse_datagram(conflicting, &mut h).unwrap();
        assert!(m.has_conflicting_content_length());
        assert_eq!((m.content_length(), m.body()), (None, &b"hey!"[..]));
        let mut h = [Header::EMPTY; 4];
        let e = parse(conflicting, &mut h, &ParseOptions::STREAM).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentLength);
        let repeated = b"MESSAGE sip:x SIP/2.0\r\nl: 2\r\nContent-Length: 2\r\n\r\nhi";
        assert_eq!(parse_ok(repeated).2, b"hi");
    }

    #[test]
    fn request_line_errors() {
        // `<sip:x>` is visible ASCII: framing accepts it, the URI parser rejects it (ltgtruri).
        assert_eq!(parse_ok(b"INVITE <sip:x> SIP/2.0\r\n\r\n").0, 26);
        assert_eq!(
            parse_err(b"INVITE  sip:x SIP/2.0\r\n\r\n").kind,
            ErrorKind::RequestUri
        );
        assert_eq!(
            parse_err(b"INVITE sip:x; lr SIP/2.0\r\n\r\n").kind,
            ErrorKind::RequestUri
        );
        assert_eq!(
            parse_err(b"INVITE sip:x SIP/2.0 \r\n\r\n").kind,
            ErrorKind::StartLine
        );
        assert_eq!(
            parse_err(b"INVITE sip:x HTTP/1.1\r\n\r\n").kind,
            ErrorKind::Version
        );
        assert_eq!(
            parse_err(b"INV\x01TE sip:x SIP/2.0\r\n\r\n").kind,
            ErrorKind::Method
        );
        assert_eq!(parse_err(b"\r\n\r\n").kind, ErrorKind::HeadersUnterminated);
        assert_eq!(
            parse_err(b" INVITE sip:x SIP/2.0\r\n\r\n").kind,
            ErrorKind::Method
        );
        let mut h = [Header::EMPTY; 4];
        let lenient = ParseOptions {
            allow_request_line_trailing_ws: true,
            ..ParseOptions::DATAGRAM
        };
        let Status::Complete(m) =
            parse(b"INVITE sip:x SIP/2.0 \t\r\n\r\n", &mut h, &lenient).unwrap()
        else {
            panic!("complete expected")
        };
        assert_eq!(m.request_uri(), Some(&b"sip:x"[..]));
    }

    #[test]
    fn unsupported_version_still_parses() {
        let mut h = [Header::EMPTY; 4];
        let m = parse_datagram(b"OPTIONS sip:x SIP/7.0\r\n\r\n", &mut h).unwrap();
        assert_eq!(m.version(), Version { major: 7, minor: 0 });
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            parse_err(b"BYE sip:x SIP/2.0\r\nNo colon\r\n\r\n").kind,
            ErrorKind::HeaderColon
        );
        assert_eq!(
            parse_err(b"BYE sip:x SIP/2.0\r\n: v\r\n\r\n").kind,
            ErrorKind::HeaderName
        );
        assert_eq!(
            parse_err(b"BYE sip:x SIP/2.0\r\nA: v\x00x\r\n\r\n").kind,
            ErrorKind::HeaderValue
        );
        assert_eq!(
            parse_err(b"BYE sip:x SIP/2.0\r\nA: v\rx\r\n\r\n").kind,
            ErrorKind::HeaderValue
        );
        // An escaped control byte is a quoted-pair, part of the value.
        let (_, hs, _) = parse_ok(b"BYE sip:x SIP/2.0\r\nTo: \"a\\\x07b\\\x00\" <sip:x>\r\n\r\n");
        assert_eq!(hs[0].1, b"\"a\\\x07b\\\x00\" <sip:x>");
        let mut h = [Header::EMPTY; 1];
        let e = parse_datagram(b"BYE sip:x SIP/2.0\r\nA: 1\r\nB: 2\r\n\r\n", &mut h).unwrap_err();
        assert_eq!(e, Error::new(ErrorKind::TooManyHeaders, 25));
    }

    #[test]
    fn uninitialised_storage_fills_exactly_to_its_length() {
        let msg = b"BYE sip:x SIP/2.0\r\nA: 1\r\nB: 2\r\n\r\n";
        let mut two = [MaybeUninit::uninit(); 2];
        let m = parse_datagram_uninit(msg, &mut two).unwrap();
        let names: Vec<&[u8]> = m.headers().iter().map(|h| h.raw_name).collect();
        assert_eq!(names, [&b"A"[..], b"B"]);
        assert_eq!(m.headers()[1].value, b"2");
        let mut one = [MaybeUninit::uninit(); 1];
        let e = parse_datagram_uninit(msg, &mut one).unwrap_err();
        assert_eq!(e, Error::new(ErrorKind::TooManyHeaders, 25));
        let mut none: [MaybeUninit<Header>; 0] = [];
        let e = parse_headers_after_start_line(msg, &mut none).unwrap_err();
        assert_eq!(e, Error::new(ErrorKind::TooManyHeaders, 19));
    }

    #[test]
    fn every_backend_parses_to_the_same_view() {
        // The parser is compiled once per scan backend: each must give the portable one's answer,
        // views and errors alike, on the fixtures, the RFC 4475 torture messages and damaged
        // copies of them.
        let mut inputs = Vec::new();
        for (_, m) in crate::sip::fixture_messages() {
            for cut in [m.len(), m.len() / 2, m.len() / 3] {
                inputs.push(m[..cut].to_vec());
            }
            let mut folded = m.clone();
            if let Some(at) = memchr::memmem::find(&folded, b"\r\nTo:") {
                folded.splice(at..at + 2, b"\r\n \r\n".iter().copied());
            }
            inputs.push(folded);
        }
        assert!(inputs.len() > 100);
        for m in &inputs {
            for opts in [ParseOptions::DATAGRAM, ParseOptions::STREAM] {
                let run = |backend| {
                    parse_on::<64, _>(backend, m, &opts, |r| {
                        r.map(|s| match s {
                            Status::Complete(msg) => Some((
                                *msg.start_line(),
                                msg.headers().to_vec(),
                                msg.head_len(),
                                msg.body().len(),
                            )),
                            Status::Partial => None,
                        })
                    })
                };
                let portable = run(scan::Backend::Portable).unwrap();
                for backend in [scan::Backend::Sse2, scan::Backend::Avx2] {
                    if let Some(got) = run(backend) {
                        assert_eq!(got, portable, "{backend}: {:?}", String::from_utf8_lossy(m));
                    }
                }
            }
        }
    }

    #[test]
    fn limits_are_named_errors() {
        let mut h = [Header::EMPTY; 4];
        let opts = ParseOptions {
            max_line_len: 16,
            ..ParseOptions::DATAGRAM
        };
        let long = b"BYE sip:x SIP/2.0\r\nSubject: 0123456789abcdef\r\n\r\n";
        assert_eq!(
            parse(long, &mut h, &opts).unwrap_err().kind,
            ErrorKind::LineTooLong
        );
        let opts = ParseOptions {
            max_message_len: 10,
            ..ParseOptions::DATAGRAM
        };
        assert_eq!(
            parse(long, &mut h, &opts).unwrap_err().kind,
            ErrorKind::MessageTooLarge
        );
    }

    #[test]
    fn datagram_without_final_empty_line_is_accepted() {
        let (_, hs, body) = parse_ok(b"BYE sip:x SIP/2.0\r\nCall-ID: 1\r\n");
        assert_eq!(hs.len(), 1);
        assert!(body.is_empty());
    }

    #[test]
    fn stream_framing() {
        let two = [INVITE, INVITE].concat();
        let mut h = [Header::EMPTY; 32];
        let Status::Complete(m) = parse(&two, &mut h, &ParseOptions::STREAM).unwrap() else {
            panic!("complete expected")
        };
        assert_eq!(m.len(), INVITE.len());
        // Every strict prefix of a message is Partial in stream mode.
        for cut in 0..INVITE.len() {
            let mut h = [Header::EMPTY; 32];
            let r = parse(&INVITE[..cut], &mut h, &ParseOptions::STREAM);
            assert_eq!(
                r.map(|s| matches!(s, Status::Partial)),
                Ok(true),
                "cut at {cut}"
            );
        }
        let mut h = [Header::EMPTY; 4];
        let no_cl = parse(
            b"BYE sip:x SIP/2.0\r\nA: 1\r\n\r\n",
            &mut h,
            &ParseOptions::STREAM,
        );
        assert_eq!(no_cl.unwrap_err().kind, ErrorKind::ContentLength);
    }

    #[test]
    fn leading_crlf_is_skipped() {
        let mut h = [Header::EMPTY; 4];
        let m = parse_datagram(b"\r\n\r\nBYE sip:x SIP/2.0\r\n\r\n", &mut h).unwrap();
        assert_eq!(m.start(), 4);
        assert_eq!(m.method(), Some(Method::Bye));
    }

    #[test]
    fn start_line_errors_come_before_the_header_blocks_outcome() {
        // The start line is parsed after the header loop: its error must still be the answer,
        // whatever the header lines give (an error, a partial message or a complete one), on
        // every backend and framing.
        let start_lines: [&[u8]; 6] = [
            b"INVITE sip:x SIP/2.0 \r\n",
            b"INVITE sip:x HTTP/1.1\r\n",
            b"INV\x01TE sip:x SIP/2.0\r\n",
            b" INVITE sip:x SIP/2.0\r\n",
            b"SIP/2.0 99 Low\r\n",
            b"SIP/2.0 200 O\x01K\r\n",
        ];
        let blocks: [&[u8]; 8] = [
            b"Via: a\r\n\r\n",
            b"Via: a\r\n",
            b"Via: a",
            b" :x\r\n\r\n",
            b"Via a\r\n\r\n",
            b"Via: a\x01b\r\n\r\n",
            b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
            b"l: 1\r\nl: 2\r\n\r\nxy",
        ];
        for line in start_lines {
            for opts in [ParseOptions::DATAGRAM, ParseOptions::STREAM] {
                let run = |m: &[u8], backend| parse_on::<4, _>(backend, m, &opts, |r| r.err());
                let mut alone = line.to_vec();
                alone.extend_from_slice(b"\r\n");
                let want = run(&alone, scan::Backend::Portable).unwrap();
                assert!(want.is_some(), "{:?}", String::from_utf8_lossy(line));
                for block in blocks {
                    let mut m = line.to_vec();
                    m.extend_from_slice(block);
                    for backend in [
                        scan::Backend::Portable,
                        scan::Backend::Sse2,
                        scan::Backend::Avx2,
                    ] {
                        if let Some(got) = run(&m, backend) {
                            assert_eq!(got, want, "{backend}: {:?}", String::from_utf8_lossy(&m));
                        }
                    }
                }
            }
        }
    }

    use proptest::strategy::Strategy as _;

    /// The common shape's shortcut and the general path on one header line, with the backend's
    /// scans: `None` when the shortcut does not take the line.
    struct ShortcutJob<'b> {
        buf: &'b [u8],
        pos: usize,
        opts: ParseOptions,
    }

    impl<'b> WithScan for ShortcutJob<'b> {
        type Output = Option<(Header<'b>, Result<Option<Header<'b>>>)>;
        fn run<S: Scan>(self, scan: S) -> Self::Output {
            let (buf, pos) = (self.buf, self.pos);
            let (name, name_len, line_len) = header_line_start(buf, pos, scan);
            let max_line = line_bound(buf, &self.opts);
            let simple = simple_header_line(buf, pos, name, name_len, line_len, max_line)?;
            Some((
                simple,
                parse_header_line_general(buf, pos, name_len, &self.opts, scan),
            ))
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(8192))]
        /// Every line the shortcut takes, the general path gives the same header for, on every
        /// backend: short lines from bytes that make and break the shape (CR, LF, colon, LWS,
        /// control bytes, known names), after a prefix that moves the line against the end of
        /// the buffer, under small line limits too.
        #[test]
        fn the_shortcut_agrees_with_the_general_path(
            prefix in 0usize..40,
            line in proptest::prop_oneof![
                // A line built from parts that make or break the shape.
                (
                    proptest::sample::select(vec![
                        &b"Via"[..], b"To", b"Call-ID", b"l", b"X-Foo", b"", b"Proxy-Authorization",
                        b"v a", b"Content-Languagf",
                    ]),
                    proptest::prop_oneof![
                        3 => proptest::strategy::Just(&b": "[..]),
                        1 => proptest::sample::select(vec![
                            &b":"[..], b" : ", b":\t", b": \t", b"", b":  ", b"\r\n",
                        ]),
                    ],
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            30 => proptest::sample::select(b"ab;<>:,".to_vec()),
                            1 => proptest::sample::select(b" \t\\\x01\r\n".to_vec()),
                            1 => proptest::arbitrary::any::<u8>(),
                        ],
                        0..40,
                    ),
                    proptest::prop_oneof![
                        3 => proptest::strategy::Just(&b"\r\n"[..]),
                        1 => proptest::sample::select(vec![
                            &b"\n"[..], b"\r", b"", b"\r\n\r\n", b" \r\n", b"\t\r\n",
                        ]),
                    ],
                    proptest::sample::select(vec![&b""[..], b" ", b"\t", b"X", b"\r\n", b"a: b"]),
                )
                    .prop_map(|(name, sep, value, end, next)| {
                        [name, sep, &value, end, next].concat()
                    }),
                // Bytes that make and break the shape, anywhere.
                proptest::collection::vec(
                    proptest::prop_oneof![
                        3 => proptest::sample::select(b"Via:To Call-ID\tC\r\n:ab\\\x01-l".to_vec()),
                        1 => proptest::arbitrary::any::<u8>(),
                    ],
                    0..72,
                ),
            ],
            max_line_len in proptest::prop_oneof![
                1 => 0usize..10,
                3 => proptest::strategy::Just(DEFAULT_MAX_LINE_LEN),
            ],
            stream in proptest::arbitrary::any::<bool>(),
        ) {
            let mut buf = vec![b'a'; prefix];
            buf.extend_from_slice(&line);
            let opts = ParseOptions {
                framing: if stream { Framing::Stream } else { Framing::Datagram },
                max_line_len,
                ..ParseOptions::DATAGRAM
            };
            for backend in [scan::Backend::Portable, scan::Backend::Sse2, scan::Backend::Avx2] {
                let job = ShortcutJob { buf: &buf, pos: prefix, opts };
                if let Some(Some((simple, general))) = scan::dispatch_to(backend, job) {
                    proptest::prop_assert_eq!(general, Ok(Some(simple)), "{}", backend);
                }
            }
        }
    }

    #[test]
    fn headers_after_a_broken_start_line() {
        let mut h = [MaybeUninit::uninit(); 4];
        let hs = parse_headers_after_start_line(
            b"INVITE sip:x; lr SIP/2.0\r\nVia: a\r\nCall-ID: b\r\n\r\n",
            &mut h,
        )
        .unwrap();
        assert_eq!(hs.len(), 2);
        assert_eq!(hs[1].value, b"b");
    }
}
