//! Sans-IO framing of an RTSP 1.0 TCP byte stream into messages and `$` interleaved frames.
//!
//! [`FrameReader`] owns a receive buffer. The caller appends whatever the socket produced with
//! [`FrameReader::push`], then **calls [`FrameReader::next_frame`] until it returns `Ok(None)`
//! after each push**. The result is identical whether the bytes arrive whole or split anywhere:
//! every check below is a function of the bytes already received, never of how they were cut.
//!
//! The message syntax itself is parsed by `rtsp-types`, which on its own is lenient and
//! unbounded (it waits forever for a huge `Content-Length` and accepts bare CR/LF or NUL inside
//! header values). This module is the guard in front of it. Before a single byte reaches
//! `rtsp-types` it
//!
//! - scans the head (start line and headers) as it arrives, and rejects NUL, bare CR, bare LF
//!   and any other control character except HT at once (a header value therefore cannot smuggle
//!   a line break: no CRLF injection), and rejects a head that is not complete within
//!   [`Limits::max_head_bytes`];
//! - once the empty line ending the head is in, checks the start line (no leading whitespace;
//!   a method that is a token of at most [`MAX_METHOD_BYTES`]; a URI of at most
//!   [`Limits::max_uri_bytes`] that is `*` or an absolute URI; exactly `RTSP/1.0`), the header
//!   lines (`token: value`, no obsolete line folding, at most [`Limits::max_headers`], no two
//!   names of which one extends the other, see below), `Content-Length` (plain decimal, at most
//!   once, at most [`Limits::max_body_bytes`]: checked before waiting for the body) and `CSeq`
//!   (present, decimal, fits `u32`);
//! - only then waits for the body and hands exactly head + body to `rtsp-types`.
//!
//! Header names: rtsp-types 0.1.3 orders `HeaderName`s by their common prefix only, so its
//! header map treats `Accept` and `Accept-Language` (or `CSeq` and `CSeqX`) as the same name and
//! joins their values. A message holding such a pair is refused
//! ([`FramingError::HeaderNameCollision`]), so every header a [`Frame`] carries is one the peer
//! sent (repeats of the very same name are joined with `", "`, which RFC 2326 allows). A lookup
//! by a name the message does not hold can still hit a prefix-related one (`get(&SESSION)`
//! finds `Sess: x`); compare names exactly where that matters.
//!
//! A `$` starts an interleaved frame only at a message boundary (`$`, channel, big-endian `u16`
//! length, payload, RFC 2326 §10.12). The payload is handed out without a copy. A zero-length
//! frame is valid framing; what it means is the session's business. Blank lines (CRLF) between
//! messages are skipped, as RFC 2616 §4.1 recommends for robustness.
//!
//! What this layer does not judge: a body on a method that takes none (`OPTIONS`, `PLAY`, ...)
//! is framed and handed on with its body, and the channel of an interleaved frame is not checked
//! against any `SETUP`; the session layer decides both.
//!
//! Versions: a well-formed `RTSP/x.y` other than `RTSP/1.0` (e.g. `RTSP/2.0`) is answered
//! `505 RTSP Version Not Supported`; anything else in the version position (`rtsp/1.0`,
//! `HTTP/1.1`, `RTSP/1.00`) is not RTSP at all and gets `400 Bad Request`.
//!
//! Responses (a client reading a server) go through the same checks; `CSeq` is required on them
//! too.
//!
//! # After an error
//!
//! A [`FramingError`] leaves the stream desynchronised: nothing tells where the next message
//! starts. The caller answers with [`FramingError::status`] (echoing [`FramingError::cseq`] when
//! it is known) and closes the connection. The reader stays failed: further pushes are dropped
//! and `next_frame` returns the same error again.
//!
//! # Memory
//!
//! After the `next_frame` loop returns `Ok(None)`, at most
//! `max(max_head_bytes + max_body_bytes, max_interleaved_bytes)` bytes stay buffered, so a
//! connection holds at most that plus one read. Pushing again without draining grows the buffer
//! without bound; that is the caller's contract to keep.

use bytes::{Buf, Bytes, BytesMut};
use rtsp_types::StatusCode;

/// The longest method accepted (the longest standard one, `SET_PARAMETER`, has 13 bytes).
pub const MAX_METHOD_BYTES: usize = 32;

/// Bytes of an interleaved frame header: `$`, channel, `u16` length.
pub const INTERLEAVED_HEADER_BYTES: usize = 4;

/// The only protocol version this reader accepts.
const RTSP_1_0: &str = "RTSP/1.0";

/// Longest excerpt of peer data kept in an error, in characters.
const EXCERPT_CHARS: usize = 64;

/// Size limits enforced while framing; every one is checked before the bytes it bounds arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Start line plus headers plus the empty line ending them (default 8 KiB).
    pub max_head_bytes: usize,
    /// Request-URI of a request line (default 2 KiB); over it is `414`.
    pub max_uri_bytes: usize,
    /// Header lines in one message (default 64).
    pub max_headers: usize,
    /// `Content-Length` of a message body (default 128 KiB); over it is `413`.
    pub max_body_bytes: usize,
    /// A whole interleaved frame including its 4-byte header (default 65535 + 4, the most the
    /// `u16` length can express); lower it to refuse large frames at once.
    pub max_interleaved_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head_bytes: 8 * 1024,
            max_uri_bytes: 2 * 1024,
            max_headers: 64,
            max_body_bytes: 128 * 1024,
            max_interleaved_bytes: usize::from(u16::MAX) + INTERLEAVED_HEADER_BYTES,
        }
    }
}

/// One unit read from an RTSP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// An RTSP request (what a server reads).
    Request(rtsp_types::Request<Vec<u8>>),
    /// An RTSP response (what a client reads).
    Response(rtsp_types::Response<Vec<u8>>),
    /// A `$` interleaved frame: RTP/RTCP on `channel`. The payload may be empty.
    Interleaved {
        /// Channel byte, as negotiated by `Transport: ...;interleaved=a-b`.
        channel: u8,
        /// The frame's bytes, shared with the reader's buffer (no copy).
        payload: Bytes,
    },
}

/// Why a byte stream is not RTSP this reader accepts. See [`FramingError::status`] for the
/// status code each variant is answered with; `cseq` is the request's `CSeq` when it could be
/// read (see [`FramingError::cseq`]).
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// More than `max` head bytes arrived without the empty line that ends a head. (400)
    #[error("message head is over {max} bytes without the empty line that ends it")]
    HeadTooLarge { max: usize, cseq: Option<u32> },
    /// A NUL byte in the head. (400)
    #[error("NUL byte at offset {offset} of the message head")]
    NulByte { offset: usize, cseq: Option<u32> },
    /// A control character other than HT, CR or LF in the head. (400)
    #[error("control character {byte:#04x} at offset {offset} of the message head")]
    ControlCharacter {
        byte: u8,
        offset: usize,
        cseq: Option<u32>,
    },
    /// An LF not preceded by CR in the head. (400)
    #[error("bare LF at offset {offset} of the message head: lines must end in CRLF")]
    BareLineFeed { offset: usize, cseq: Option<u32> },
    /// A CR not followed by LF in the head. (400)
    #[error("bare CR at offset {offset} of the message head: lines must end in CRLF")]
    BareCarriageReturn { offset: usize, cseq: Option<u32> },
    /// The head is not UTF-8. (400)
    #[error("message head is not UTF-8 (offset {offset})")]
    InvalidUtf8 { offset: usize, cseq: Option<u32> },
    /// The start line begins with a space or tab (this is also how an empty method shows). (400)
    #[error("start line begins with whitespace")]
    LeadingWhitespace { cseq: Option<u32> },
    /// The start line does not have its three parts separated by single spaces. (400)
    #[error("malformed start line: {reason}")]
    MalformedStartLine {
        reason: &'static str,
        cseq: Option<u32>,
    },
    /// The method is not an RFC 2326 token. (400)
    #[error("method {method:?} is not a token")]
    InvalidMethod { method: String, cseq: Option<u32> },
    /// The method is longer than [`MAX_METHOD_BYTES`]; `len` is a lower bound when the request
    /// line never ended. (400)
    #[error("method is {len} bytes, over the {max}-byte limit")]
    MethodTooLong {
        len: usize,
        max: usize,
        cseq: Option<u32>,
    },
    /// The Request-URI is longer than [`Limits::max_uri_bytes`]; `len` is a lower bound when the
    /// request line never ended. (414)
    #[error("request URI is {len} bytes, over the {max}-byte limit")]
    UriTooLong {
        len: usize,
        max: usize,
        cseq: Option<u32>,
    },
    /// The Request-URI is neither `*` nor an absolute URI of visible ASCII. (400)
    #[error("request URI {uri:?} ({len} bytes) is neither `*` nor an absolute URI")]
    InvalidUri {
        uri: String,
        len: usize,
        cseq: Option<u32>,
    },
    /// A well-formed RTSP version other than 1.0. (505)
    #[error("RTSP version {version:?} is not supported, only RTSP/1.0")]
    UnsupportedVersion { version: String, cseq: Option<u32> },
    /// The version position does not hold `RTSP/<digit>.<digit>`. (400)
    #[error("{version:?} is not an RTSP version")]
    MalformedVersion { version: String, cseq: Option<u32> },
    /// A header line starts with whitespace (obsolete line folding is not accepted). (400)
    #[error("header line {line} starts with whitespace: line folding is not accepted")]
    HeaderLineFolding { line: usize, cseq: Option<u32> },
    /// A header line is not `token ":" value`. `line` counts from 1 at the start line. (400)
    #[error("header line {line} is malformed: {reason}")]
    MalformedHeader {
        line: usize,
        reason: &'static str,
        cseq: Option<u32>,
    },
    /// More header lines than [`Limits::max_headers`]. (400)
    #[error("{count} header lines, over the limit of {max}")]
    TooManyHeaders {
        count: usize,
        max: usize,
        cseq: Option<u32>,
    },
    /// Two header names of which one is a longer version of the other, ignoring case
    /// (`Accept` and `Accept-Language`, `CSeq` and `CSeqX`): rtsp-types 0.1.3 orders header names
    /// by their common prefix only, so it would merge the two into one header. (400)
    #[error("header names {first:?} and {second:?} would be merged into one by rtsp-types")]
    HeaderNameCollision {
        first: String,
        second: String,
        cseq: Option<u32>,
    },
    /// `Content-Length` or `CSeq` given more than once, even with equal values. (400)
    #[error("header {name} appears more than once")]
    DuplicateHeader {
        name: &'static str,
        cseq: Option<u32>,
    },
    /// `Content-Length` is not a plain decimal number (sign, inner space, letters, empty). (400)
    #[error("Content-Length {value:?} is not a plain decimal number")]
    InvalidContentLength { value: String, cseq: Option<u32> },
    /// `Content-Length` over [`Limits::max_body_bytes`]; `length` saturates at `u64::MAX`. (413)
    #[error("Content-Length {length} is over the {max}-byte body limit")]
    BodyTooLarge {
        length: u64,
        max: usize,
        cseq: Option<u32>,
    },
    /// No `CSeq` header. (400)
    #[error("missing CSeq header")]
    MissingCSeq,
    /// `CSeq` is not a decimal number that fits in 32 bits. (400)
    #[error("CSeq {value:?} is not a decimal number that fits in 32 bits")]
    InvalidCSeq { value: String },
    /// An interleaved frame (`len` includes its 4-byte header) over
    /// [`Limits::max_interleaved_bytes`]. (413)
    #[error("interleaved frame on channel {channel} is {len} bytes, over the {max}-byte limit")]
    InterleavedTooLarge { channel: u8, len: usize, max: usize },
    /// `rtsp-types` refused a message that passed every check above (a gap in this module). (400)
    #[error("rtsp-types could not parse the message: {detail}")]
    Unparseable {
        detail: &'static str,
        cseq: Option<u32>,
    },
}

impl FramingError {
    /// The status to answer with before closing the connection: 413 for a body or interleaved
    /// frame over its limit, 414 for a URI over its limit, 505 for a version other than 1.0,
    /// 400 for everything else.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UriTooLong { .. } => StatusCode::RequestURITooLong,
            Self::BodyTooLarge { .. } | Self::InterleavedTooLarge { .. } => {
                StatusCode::RequestMessageBodyTooLarge
            }
            Self::UnsupportedVersion { .. } => StatusCode::RTSPVersionNotSupported,
            _ => StatusCode::BadRequest,
        }
    }

    /// The `CSeq` of the offending message, for the error response to echo. Known when the first
    /// `CSeq` header parsed and either the head was complete or the header came before the fault.
    pub fn cseq(&self) -> Option<u32> {
        match self {
            Self::HeadTooLarge { cseq, .. }
            | Self::NulByte { cseq, .. }
            | Self::ControlCharacter { cseq, .. }
            | Self::BareLineFeed { cseq, .. }
            | Self::BareCarriageReturn { cseq, .. }
            | Self::InvalidUtf8 { cseq, .. }
            | Self::LeadingWhitespace { cseq }
            | Self::MalformedStartLine { cseq, .. }
            | Self::InvalidMethod { cseq, .. }
            | Self::MethodTooLong { cseq, .. }
            | Self::UriTooLong { cseq, .. }
            | Self::InvalidUri { cseq, .. }
            | Self::UnsupportedVersion { cseq, .. }
            | Self::MalformedVersion { cseq, .. }
            | Self::HeaderLineFolding { cseq, .. }
            | Self::MalformedHeader { cseq, .. }
            | Self::TooManyHeaders { cseq, .. }
            | Self::HeaderNameCollision { cseq, .. }
            | Self::DuplicateHeader { cseq, .. }
            | Self::InvalidContentLength { cseq, .. }
            | Self::BodyTooLarge { cseq, .. }
            | Self::Unparseable { cseq, .. } => *cseq,
            Self::MissingCSeq | Self::InvalidCSeq { .. } | Self::InterleavedTooLarge { .. } => None,
        }
    }
}

/// Turns received bytes into [`Frame`]s; see the module documentation for the contract.
#[derive(Debug)]
pub struct FrameReader {
    limits: Limits,
    buf: BytesMut,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Between messages: the next byte starts a message, an interleaved frame or a blank line.
    Boundary,
    /// Scanning the head of a message that starts at `buf[0]`.
    Head(HeadScan),
    /// Head validated; the message is complete once `total` bytes are buffered.
    Body { total: usize, cseq: Option<u32> },
    /// The stream is desynchronised; every call returns this error.
    Failed(FramingError),
}

/// What one step of the reader achieved.
enum Step {
    Frame(Frame),
    NeedMore,
    Continue,
}

impl Default for FrameReader {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

impl FrameReader {
    /// A reader enforcing `limits`, with an empty buffer.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: BytesMut::new(),
            state: State::Boundary,
        }
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Appends received bytes. Call [`next_frame`](Self::next_frame) until `Ok(None)` afterwards.
    /// Bytes pushed after an error are dropped.
    pub fn push(&mut self, data: &[u8]) {
        if !matches!(self.state, State::Failed(_)) {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received and not yet handed out as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed, or the error that ends
    /// the connection (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        loop {
            let step = match self.step() {
                Ok(step) => step,
                Err(err) => return Err(self.fail(err)),
            };
            match step {
                Step::Frame(frame) => return Ok(Some(frame)),
                Step::NeedMore => return Ok(None),
                Step::Continue => {}
            }
        }
    }

    fn fail(&mut self, err: FramingError) -> FramingError {
        self.buf = BytesMut::new();
        self.state = State::Failed(err.clone());
        err
    }

    fn step(&mut self) -> Result<Step, FramingError> {
        match self.state {
            State::Failed(ref err) => Err(err.clone()),
            State::Boundary => self.at_boundary(),
            State::Head(scan) => self.scan_head(scan),
            State::Body { total, cseq } => self.take_message(total, cseq),
        }
    }

    fn at_boundary(&mut self) -> Result<Step, FramingError> {
        match self.buf.first() {
            None => Ok(Step::NeedMore),
            Some(b'$') => self.take_interleaved(),
            Some(b'\r' | b'\n') => self.skip_blank_line(),
            Some(_) => {
                self.state = State::Head(HeadScan::default());
                Ok(Step::Continue)
            }
        }
    }

    fn skip_blank_line(&mut self) -> Result<Step, FramingError> {
        match (self.buf.first(), self.buf.get(1)) {
            (Some(b'\r'), Some(b'\n')) => {
                self.buf.advance(2);
                Ok(Step::Continue)
            }
            (Some(b'\r'), None) => Ok(Step::NeedMore),
            (Some(b'\r'), Some(_)) => Err(FramingError::BareCarriageReturn {
                offset: 0,
                cseq: None,
            }),
            _ => Err(FramingError::BareLineFeed {
                offset: 0,
                cseq: None,
            }),
        }
    }

    fn take_interleaved(&mut self) -> Result<Step, FramingError> {
        let Some(&[_, channel, hi, lo]) = self.buf.get(..INTERLEAVED_HEADER_BYTES) else {
            return Ok(Step::NeedMore);
        };
        let payload_len = usize::from(u16::from_be_bytes([hi, lo]));
        let len = INTERLEAVED_HEADER_BYTES + payload_len;
        if len > self.limits.max_interleaved_bytes {
            return Err(FramingError::InterleavedTooLarge {
                channel,
                len,
                max: self.limits.max_interleaved_bytes,
            });
        }
        if self.buf.len() < len {
            return Ok(Step::NeedMore);
        }
        self.buf.advance(INTERLEAVED_HEADER_BYTES);
        let payload = self.buf.split_to(payload_len).freeze();
        Ok(Step::Frame(Frame::Interleaved { channel, payload }))
    }

    fn scan_head(&mut self, mut scan: HeadScan) -> Result<Step, FramingError> {
        let Some(head_len) = scan.run(&self.buf, &self.limits)? else {
            self.state = State::Head(scan);
            return Ok(Step::NeedMore);
        };
        let head = validate_head(&self.buf[..head_len], &self.limits)?;
        self.state = State::Body {
            total: head_len + head.content_length,
            cseq: head.cseq,
        };
        Ok(Step::Continue)
    }

    fn take_message(&mut self, total: usize, cseq: Option<u32>) -> Result<Step, FramingError> {
        if self.buf.len() < total {
            return Ok(Step::NeedMore);
        }
        let frame = parse_message(&self.buf[..total], cseq)?;
        self.buf.advance(total);
        self.state = State::Boundary;
        Ok(Step::Frame(frame))
    }
}

/// Incremental scan of a message head for the empty line that ends it, rejecting bad bytes as
/// they arrive. Every byte is looked at once, however the head is split across pushes.
#[derive(Debug, Clone, Copy, Default)]
struct HeadScan {
    /// Next byte to look at, from the start of the message.
    pos: usize,
    /// Where the current line starts.
    line_start: usize,
    /// Whether a `CSeq` header line has been seen (only the first one counts).
    cseq_seen: bool,
    /// The value of that first `CSeq` line, if it parsed, for error reports.
    cseq: Option<u32>,
}

impl HeadScan {
    /// `Ok(Some(head_len))` once the empty line is in, `Ok(None)` when more bytes are needed.
    fn run(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, FramingError> {
        let max_head = limits.max_head_bytes;
        while let Some(&byte) = buf.get(self.pos) {
            if self.pos >= max_head {
                return Err(self.too_large(buf, limits));
            }
            match byte {
                b'\r' => match buf.get(self.pos + 1) {
                    None => return Ok(None),
                    Some(_) if self.pos + 1 >= max_head => return Err(self.too_large(buf, limits)),
                    Some(b'\n') => {
                        if let Some(head_len) = self.end_line(buf) {
                            return Ok(Some(head_len));
                        }
                        continue;
                    }
                    Some(_) => return Err(self.bare_cr()),
                },
                b'\n' => return Err(self.bare_lf()),
                0 => return Err(self.nul()),
                b'\t' => {}
                b if b < 0x20 || b == 0x7f => return Err(self.control(b)),
                _ => {}
            }
            self.pos += 1;
        }
        Ok(None)
    }

    /// Handles the CRLF at `pos`: `Some(head_len)` when it ends an empty line.
    fn end_line(&mut self, buf: &[u8]) -> Option<usize> {
        let line = &buf[self.line_start..self.pos];
        let next = self.pos + 2;
        if line.is_empty() {
            return Some(next);
        }
        if self.line_start > 0 && !self.cseq_seen {
            if let Some(value) = cseq_value(line) {
                self.cseq_seen = true;
                self.cseq = parse_cseq(value);
            }
        }
        self.line_start = next;
        self.pos = next;
        None
    }

    fn too_large(&self, buf: &[u8], limits: &Limits) -> FramingError {
        let max = limits.max_head_bytes;
        let start_line = (self.line_start == 0)
            .then(|| classify_long_start_line(&buf[..max.min(buf.len())], limits))
            .flatten();
        start_line.unwrap_or(FramingError::HeadTooLarge {
            max,
            cseq: self.cseq,
        })
    }

    fn bare_cr(&self) -> FramingError {
        FramingError::BareCarriageReturn {
            offset: self.pos,
            cseq: self.cseq,
        }
    }

    fn bare_lf(&self) -> FramingError {
        FramingError::BareLineFeed {
            offset: self.pos,
            cseq: self.cseq,
        }
    }

    fn nul(&self) -> FramingError {
        FramingError::NulByte {
            offset: self.pos,
            cseq: self.cseq,
        }
    }

    fn control(&self, byte: u8) -> FramingError {
        FramingError::ControlCharacter {
            byte,
            offset: self.pos,
            cseq: self.cseq,
        }
    }
}

/// Names the cause when a start line alone overflows the head: a huge method or URI.
fn classify_long_start_line(partial: &[u8], limits: &Limits) -> Option<FramingError> {
    if partial.starts_with(b"RTSP/") {
        return None;
    }
    let partial = partial.strip_suffix(b"\r").unwrap_or(partial);
    let mut parts = partial.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    if method.len() > MAX_METHOD_BYTES {
        return Some(FramingError::MethodTooLong {
            len: method.len(),
            max: MAX_METHOD_BYTES,
            cseq: None,
        });
    }
    let uri = parts.next()?;
    (uri.len() > limits.max_uri_bytes).then_some(FramingError::UriTooLong {
        len: uri.len(),
        max: limits.max_uri_bytes,
        cseq: None,
    })
}

/// What the framing layer needs from a validated head.
struct HeadInfo {
    content_length: usize,
    cseq: Option<u32>,
}

/// Checks a complete head (ending in the empty line) before anything is handed to rtsp-types.
/// Faults are reported in line order, so the first one in the message wins.
fn validate_head(head: &[u8], limits: &Limits) -> Result<HeadInfo, FramingError> {
    let content = head.strip_suffix(b"\r\n\r\n").unwrap_or(head);
    let cseq = first_cseq(content);
    let text = std::str::from_utf8(content).map_err(|err| FramingError::InvalidUtf8 {
        offset: err.valid_up_to(),
        cseq,
    })?;
    let mut lines = text.split("\r\n");
    validate_start_line(lines.next().unwrap_or_default(), limits, cseq)?;
    let count = text.matches("\r\n").count();
    if count > limits.max_headers {
        return Err(FramingError::TooManyHeaders {
            count,
            max: limits.max_headers,
            cseq,
        });
    }
    let mut headers = HeaderChecks::new(limits, cseq);
    for (index, line) in lines.enumerate() {
        // Line 1 is the start line.
        headers.check_line(index + 2, line)?;
    }
    headers.finish()
}

/// The first `CSeq` header's value, if it parses; read before anything else is judged so that
/// every later error can carry it.
fn first_cseq(content: &[u8]) -> Option<u32> {
    content
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .find_map(cseq_value)
        .and_then(parse_cseq)
}

/// The value of a `CSeq: value` header line (not yet validated).
fn cseq_value(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (name, value) = line.split_at(colon);
    name.eq_ignore_ascii_case(b"CSeq").then(|| &value[1..])
}

/// A `CSeq` value: decimal digits (surrounding SP/HT allowed) that fit in a `u32`.
fn parse_cseq(value: &[u8]) -> Option<u32> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Strips the optional whitespace (SP / HT) around a header value.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// RFC 2326 §15.1 `token` characters; the same set rtsp-types parses.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// The first characters of peer data, for an error message.
fn excerpt(s: &str) -> String {
    s.chars().take(EXCERPT_CHARS).collect()
}

fn validate_start_line(line: &str, limits: &Limits, cseq: Option<u32>) -> Result<(), FramingError> {
    if line.starts_with([' ', '\t']) {
        return Err(FramingError::LeadingWhitespace { cseq });
    }
    if line.starts_with("RTSP/") {
        validate_status_line(line, cseq)
    } else {
        validate_request_line(line, limits, cseq)
    }
}

/// `Method SP Request-URI SP RTSP-Version`, each separated by exactly one space.
fn validate_request_line(
    line: &str,
    limits: &Limits,
    cseq: Option<u32>,
) -> Result<(), FramingError> {
    let mut parts = line.splitn(3, ' ');
    check_method(parts.next().unwrap_or_default(), cseq)?;
    let (Some(uri), Some(version)) = (parts.next(), parts.next()) else {
        return Err(FramingError::MalformedStartLine {
            reason: "a request line is method, URI and version separated by single spaces",
            cseq,
        });
    };
    check_uri(uri, limits, cseq)?;
    check_version(version, cseq)
}

fn check_method(method: &str, cseq: Option<u32>) -> Result<(), FramingError> {
    if method.len() > MAX_METHOD_BYTES {
        return Err(FramingError::MethodTooLong {
            len: method.len(),
            max: MAX_METHOD_BYTES,
            cseq,
        });
    }
    if !is_token(method) {
        return Err(FramingError::InvalidMethod {
            method: excerpt(method),
            cseq,
        });
    }
    Ok(())
}

fn check_uri(uri: &str, limits: &Limits, cseq: Option<u32>) -> Result<(), FramingError> {
    if uri.len() > limits.max_uri_bytes {
        return Err(FramingError::UriTooLong {
            len: uri.len(),
            max: limits.max_uri_bytes,
            cseq,
        });
    }
    if uri == "*" {
        return Ok(());
    }
    // rtsp-types takes the URI as a run of visible ASCII and then needs `Url::parse` to accept it.
    let visible = !uri.is_empty() && uri.bytes().all(|b| b.is_ascii_graphic());
    if !visible || rtsp_types::Url::parse(uri).is_err() {
        return Err(FramingError::InvalidUri {
            uri: excerpt(uri),
            len: uri.len(),
            cseq,
        });
    }
    Ok(())
}

/// Exactly `RTSP/1.0`; another well-formed `RTSP/x.y` is 505, anything else 400.
fn check_version(version: &str, cseq: Option<u32>) -> Result<(), FramingError> {
    if version == RTSP_1_0 {
        return Ok(());
    }
    let well_formed = matches!(
        version.as_bytes(),
        [b'R', b'T', b'S', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit()
    );
    let version = excerpt(version);
    Err(if well_formed {
        FramingError::UnsupportedVersion { version, cseq }
    } else {
        FramingError::MalformedVersion { version, cseq }
    })
}

/// `RTSP-Version SP Status-Code SP Reason-Phrase`; the reason phrase may be empty.
fn validate_status_line(line: &str, cseq: Option<u32>) -> Result<(), FramingError> {
    let mut parts = line.splitn(3, ' ');
    check_version(parts.next().unwrap_or_default(), cseq)?;
    let (Some(code), Some(_reason)) = (parts.next(), parts.next()) else {
        return Err(FramingError::MalformedStartLine {
            reason: "a status line is version, code and reason separated by single spaces",
            cseq,
        });
    };
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FramingError::MalformedStartLine {
            reason: "the status code is not three digits",
            cseq,
        });
    }
    Ok(())
}

/// Per-header checks of one head, in line order.
struct HeaderChecks<'a> {
    limits: &'a Limits,
    cseq: Option<u32>,
    content_length: Option<usize>,
    cseq_seen: bool,
    /// Distinct header names so far (at most `max_headers`).
    names: Vec<&'a str>,
}

impl<'a> HeaderChecks<'a> {
    fn new(limits: &'a Limits, cseq: Option<u32>) -> Self {
        Self {
            limits,
            cseq,
            content_length: None,
            cseq_seen: false,
            names: Vec::new(),
        }
    }

    fn check_line(&mut self, number: usize, line: &'a str) -> Result<(), FramingError> {
        let (name, value) = self.split_header(number, line)?;
        self.check_name_collision(name)?;
        if name.eq_ignore_ascii_case("Content-Length") {
            self.check_content_length(value)?;
        } else if name.eq_ignore_ascii_case("CSeq") {
            self.check_cseq(value)?;
        }
        Ok(())
    }

    fn split_header(&self, line: usize, text: &'a str) -> Result<(&'a str, &'a str), FramingError> {
        let cseq = self.cseq;
        if text.starts_with([' ', '\t']) {
            return Err(FramingError::HeaderLineFolding { line, cseq });
        }
        let malformed = |reason| FramingError::MalformedHeader { line, reason, cseq };
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| malformed("no colon after the header name"))?;
        if !is_token(name) {
            return Err(malformed("the header name is empty or not a token"));
        }
        Ok((name, value))
    }

    /// rtsp-types 0.1.3 `HeaderName` compares only the common prefix of two names, so its header
    /// map would fold `Accept-Language` into `Accept` (or `CSeqX` into `CSeq`): refuse such pairs
    /// rather than hand on headers that differ from what was sent.
    fn check_name_collision(&mut self, name: &'a str) -> Result<(), FramingError> {
        let mut same_name = false;
        for &seen in &self.names {
            if seen.eq_ignore_ascii_case(name) {
                same_name = true;
            } else if names_collide(seen, name) {
                return Err(FramingError::HeaderNameCollision {
                    first: excerpt(seen),
                    second: excerpt(name),
                    cseq: self.cseq,
                });
            }
        }
        if !same_name {
            self.names.push(name);
        }
        Ok(())
    }

    fn check_content_length(&mut self, value: &str) -> Result<(), FramingError> {
        let cseq = self.cseq;
        if self.content_length.is_some() {
            return Err(FramingError::DuplicateHeader {
                name: "Content-Length",
                cseq,
            });
        }
        let digits = trim_ows(value.as_bytes());
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(FramingError::InvalidContentLength {
                value: excerpt(value.trim_matches([' ', '\t'])),
                cseq,
            });
        }
        let length = digits.iter().fold(0u64, |acc, d| {
            acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        let max = self.limits.max_body_bytes;
        match usize::try_from(length) {
            Ok(length) if length <= max => {
                self.content_length = Some(length);
                Ok(())
            }
            _ => Err(FramingError::BodyTooLarge { length, max, cseq }),
        }
    }

    fn check_cseq(&mut self, value: &str) -> Result<(), FramingError> {
        if self.cseq_seen {
            return Err(FramingError::DuplicateHeader {
                name: "CSeq",
                cseq: self.cseq,
            });
        }
        self.cseq_seen = true;
        match parse_cseq(value.as_bytes()) {
            Some(_) => Ok(()),
            None => Err(FramingError::InvalidCSeq {
                value: excerpt(value.trim_matches([' ', '\t'])),
            }),
        }
    }

    fn finish(self) -> Result<HeadInfo, FramingError> {
        if !self.cseq_seen {
            return Err(FramingError::MissingCSeq);
        }
        Ok(HeadInfo {
            content_length: self.content_length.unwrap_or(0),
            cseq: self.cseq,
        })
    }
}

/// Whether one of two different names is a case-insensitive prefix of the other.
fn names_collide(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.as_bytes()[..short.len()].eq_ignore_ascii_case(short.as_bytes())
}

/// Hands exactly one validated message (head + body) to rtsp-types.
fn parse_message(bytes: &[u8], cseq: Option<u32>) -> Result<Frame, FramingError> {
    let unparseable = |detail| FramingError::Unparseable { detail, cseq };
    let (message, consumed) = match rtsp_types::Message::<Vec<u8>>::parse(bytes) {
        Ok(parsed) => parsed,
        Err(rtsp_types::ParseError::Incomplete(_)) => return Err(unparseable("incomplete")),
        Err(rtsp_types::ParseError::Error) => return Err(unparseable("syntax error")),
    };
    if consumed != bytes.len() {
        return Err(unparseable("message length differs from the framed length"));
    }
    match message {
        rtsp_types::Message::Request(request) => Ok(Frame::Request(request)),
        rtsp_types::Message::Response(response) => Ok(Frame::Response(response)),
        rtsp_types::Message::Data(_) => Err(unparseable("a data frame where a message was framed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_types::{headers, Method};

    // ---------------------------------------------------------------------------------------
    // Real transcripts, captured byte for byte on loopback through a recording TCP proxy
    // (Debian 12 packages: ffmpeg 5.1.x = Lavf59.27.100, GStreamer 1.22.0).
    //
    // ffmpeg publishing over TCP to an ffmpeg listener:
    //   ffmpeg -rtsp_flags listen -i rtsp://127.0.0.1:18556/live -f null -
    //   ffmpeg -re -f lavfi -i testsrc=size=320x240:rate=10 -t 2 -c:v libx264 -tune zerolatency \
    //          -pix_fmt yuv420p -f rtsp -rtsp_transport tcp rtsp://127.0.0.1:18601/live
    // (`a=tool:libavformat LIBAVFORMAT_VERSION` is verbatim: that is what Debian's build sends.)
    //
    // GStreamer rtspsrc playing from gst-rtsp-server 1.22 (videotestsrc ! x264enc ! rtph264pay):
    //   gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:18600/live protocols=tcp ! fakesink
    // (the second `User-Agent` and the Real* headers on OPTIONS are rtspsrc's RealServer probe.)
    // ---------------------------------------------------------------------------------------

    const FFMPEG_5_1_OPTIONS: &[u8] = b"\
        OPTIONS rtsp://127.0.0.1:18601/live RTSP/1.0\r\n\
        CSeq: 1\r\n\
        User-Agent: Lavf59.27.100\r\n\
        \r\n\
        ";

    const FFMPEG_5_1_ANNOUNCE: &[u8] = b"\
        ANNOUNCE rtsp://127.0.0.1:18601/live RTSP/1.0\r\n\
        Content-Type: application/sdp\r\n\
        CSeq: 2\r\n\
        User-Agent: Lavf59.27.100\r\n\
        Content-Length: 298\r\n\
        \r\n\
        v=0\r\n\
        o=- 0 0 IN IP4 127.0.0.1\r\n\
        s=No Name\r\n\
        c=IN IP4 127.0.0.1\r\n\
        t=0 0\r\n\
        a=tool:libavformat LIBAVFORMAT_VERSION\r\n\
        m=video 0 RTP/AVP 96\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAC6yyAoP2AiAAAAMAIAAAAwKR4oVJ,aOvDyyLA; profile-level-id=64000B\r\n\
        a=control:streamid=0\r\n\
        ";

    const FFMPEG_5_1_SETUP: &[u8] = b"\
        SETUP rtsp://127.0.0.1:18601/live/streamid=0 RTSP/1.0\r\n\
        Transport: RTP/AVP/TCP;unicast;interleaved=0-1;mode=record\r\n\
        CSeq: 3\r\n\
        User-Agent: Lavf59.27.100\r\n\
        \r\n\
        ";

    const FFMPEG_5_1_RECORD: &[u8] = b"\
        RECORD rtsp://127.0.0.1:18601/live RTSP/1.0\r\n\
        Range: npt=0.000-\r\n\
        CSeq: 4\r\n\
        User-Agent: Lavf59.27.100\r\n\
        Session: 4038329786\r\n\
        \r\n\
        ";

    const FFMPEG_5_1_RTCP_SENDER_REPORT: &[u8] = &[
        0x24, 0x01, 0x00, 0x1c, 0x80, 0xc8, 0x00, 0x06, 0x77, 0x5a, 0xb7, 0x33, 0xee, 0xab, 0xa6,
        0x58, 0xa2, 0x8f, 0x5c, 0x28, 0x68, 0xaf, 0xe7, 0x67, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ];

    const FFMPEG_5_1_TEARDOWN: &[u8] = b"\
        TEARDOWN rtsp://127.0.0.1:18601/live RTSP/1.0\r\n\
        CSeq: 5\r\n\
        User-Agent: Lavf59.27.100\r\n\
        Session: 4038329786\r\n\
        \r\n\
        ";

    const FFMPEG_5_1_LISTEN_TEARDOWN_REPLY: &[u8] = b"\
        RTSP/1.0 501 Not Implemented\r\n\
        \r\n\
        ";

    const FFMPEG_5_1_LISTEN_SETUP_REPLY: &[u8] = b"\
        RTSP/1.0 200 OK\r\n\
        CSeq: 3\r\n\
        Server: Lavf59.27.100\r\n\
        Transport: RTP/AVP/TCP;unicast;mode=receive;interleaved=0-1\r\n\
        Session: 4038329786\r\n\
        \r\n\
        ";

    const GST_1_22_OPTIONS: &[u8] = b"\
        OPTIONS rtsp://127.0.0.1:18600/live RTSP/1.0\r\n\
        CSeq: 1\r\n\
        User-Agent: GStreamer/1.22.0\r\n\
        User-Agent: RealMedia Player Version 6.0.9.1235 (linux-2.0-libc6-i386-gcc2.95)\r\n\
        ClientChallenge: 9e26d33f2984236010ef6253fb1887f7\r\n\
        CompanyID: KnKV4M4I/B2FjJ1TToLycw==\r\n\
        GUID: 00000000-0000-0000-0000-000000000000\r\n\
        RegionData: 0\r\n\
        PlayerStarttime: [28/03/2003:22:50:23 00:00]\r\n\
        ClientID: Linux_2.4_6.0.9.1235_play32_RN01_EN_586\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        \r\n\
        ";

    const GST_1_22_DESCRIBE: &[u8] = b"\
        DESCRIBE rtsp://127.0.0.1:18600/live RTSP/1.0\r\n\
        CSeq: 2\r\n\
        User-Agent: GStreamer/1.22.0\r\n\
        Accept: application/sdp\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        \r\n\
        ";

    const GST_1_22_SETUP: &[u8] = b"\
        SETUP rtsp://127.0.0.1:18600/live/stream=0 RTSP/1.0\r\n\
        CSeq: 3\r\n\
        User-Agent: GStreamer/1.22.0\r\n\
        Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        \r\n\
        ";

    const GST_1_22_PLAY: &[u8] = b"\
        PLAY rtsp://127.0.0.1:18600/live/ RTSP/1.0\r\n\
        CSeq: 4\r\n\
        User-Agent: GStreamer/1.22.0\r\n\
        Range: npt=now-\r\n\
        Session: Rjd98e4Da0zo2thF\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        \r\n\
        ";

    const GST_RTSP_SERVER_1_22_DESCRIBE_REPLY: &[u8] = b"\
        RTSP/1.0 200 OK\r\n\
        CSeq: 2\r\n\
        Content-Type: application/sdp\r\n\
        Content-Base: rtsp://127.0.0.1:18600/live/\r\n\
        Server: GStreamer RTSP server\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        Content-Length: 530\r\n\
        \r\n\
        v=0\r\n\
        o=- 10299735665191979143 1 IN IP4 127.0.0.1\r\n\
        s=Session streamed with GStreamer\r\n\
        i=rtsp-server\r\n\
        t=0 0\r\n\
        a=tool:GStreamer\r\n\
        a=type:broadcast\r\n\
        a=control:*\r\n\
        a=range:npt=now-\r\n\
        m=video 0 RTP/AVP 96\r\n\
        c=IN IP4 0.0.0.0\r\n\
        b=AS:2097\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=framerate:10\r\n\
        a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAFdkBQfsBagwMDUoAAAMAAgAAAwApHixckA==,aMuMsg==;profile-level-id=42c015;level-asymmetry-allowed=1\r\n\
        a=control:stream=0\r\n\
        a=ts-refclk:local\r\n\
        a=mediaclk:sender\r\n\
        a=ssrc:1153079751 cname:user4153518399@host-90b9ae83\r\n\
        ";

    const GST_RTSP_SERVER_1_22_SETUP_REPLY: &[u8] = b"\
        RTSP/1.0 200 OK\r\n\
        CSeq: 3\r\n\
        Transport: RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=44BA99C7;mode=\"PLAY\"\r\n\
        Server: GStreamer RTSP server\r\n\
        Session: Rjd98e4Da0zo2thF\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        \r\n\
        ";

    const GST_RTSP_SERVER_1_22_PLAY_REPLY: &[u8] = b"\
        RTSP/1.0 200 OK\r\n\
        CSeq: 4\r\n\
        RTP-Info: url=rtsp://127.0.0.1:18600/live/stream=0;seq=3244;rtptime=2449753904\r\n\
        Range: npt=now-\r\n\
        Server: GStreamer RTSP server\r\n\
        Session: Rjd98e4Da0zo2thF\r\n\
        Date: Sat, 21 Nov 2026 05:10:38 GMT\r\n\
        \r\n\
        ";

    const GST_RTSP_SERVER_1_22_RTP_SPS: &[u8] = &[
        0x24, 0x00, 0x00, 0x28, 0x80, 0x60, 0x0c, 0xad, 0x92, 0x04, 0x47, 0x30, 0x44, 0xba, 0x99,
        0xc7, 0x67, 0x42, 0xc0, 0x15, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x6a, 0x0c, 0x0c, 0x0d, 0x4a,
        0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x29, 0x1e, 0x2c, 0x5c, 0x90,
    ];

    const GST_RTSP_SERVER_1_22_RTP_PPS: &[u8] = &[
        0x24, 0x00, 0x00, 0x10, 0x80, 0x60, 0x0c, 0xae, 0x92, 0x04, 0x47, 0x30, 0x44, 0xba, 0x99,
        0xc7, 0x68, 0xcb, 0x8c, 0xb2,
    ];

    // ---------------------------------------------------------------------------------------
    // Helpers
    // ---------------------------------------------------------------------------------------

    /// What a stream produced: its frames, then the error that ended it, if any.
    type Outcome = (Vec<Frame>, Option<FramingError>);

    /// One push per piece, draining with `next_frame` after each, as the contract says.
    fn feed<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
        let mut reader = FrameReader::default();
        let mut frames = Vec::new();
        for piece in pieces {
            reader.push(piece);
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(err) => return (frames, Some(err)),
                }
            }
        }
        (frames, None)
    }

    fn whole(input: &[u8]) -> Outcome {
        feed([input])
    }

    fn byte_by_byte(input: &[u8]) -> Outcome {
        feed(input.chunks(1))
    }

    /// The outcome, after checking it is the same whole, byte by byte and (for inputs small
    /// enough to keep the test quick) split in two at every position.
    fn outcome(input: &[u8]) -> Outcome {
        let expected = whole(input);
        assert_eq!(byte_by_byte(input), expected, "byte by byte");
        if input.len() <= 4096 {
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                assert_eq!(feed([a, b]), expected, "split at {cut}");
            }
        }
        expected
    }

    /// The error `input` ends in (the same however it is split), with the status it answers.
    fn error_of(input: &[u8]) -> (FramingError, u16) {
        let (_, err) = outcome(input);
        let err = err.expect("input should be rejected");
        let status = u16::from(err.status());
        (err, status)
    }

    fn single_frame(input: &[u8]) -> Frame {
        let (mut frames, err) = outcome(input);
        assert_eq!(err, None);
        assert_eq!(frames.len(), 1, "{frames:?}");
        frames.remove(0)
    }

    fn request(input: &[u8]) -> rtsp_types::Request<Vec<u8>> {
        match single_frame(input) {
            Frame::Request(request) => request,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn response(input: &[u8]) -> rtsp_types::Response<Vec<u8>> {
        match single_frame(input) {
            Frame::Response(response) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn header<'a>(headers: &'a impl AsRef<rtsp_types::Headers>, name: &str) -> Option<&'a str> {
        let name = rtsp_types::HeaderName::try_from(name).expect("valid header name");
        headers.as_ref().get(&name).map(|v| v.as_str())
    }

    fn interleaved(channel: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).expect("payload fits a frame");
        let mut frame = vec![b'$', channel];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// An OPTIONS request with `CSeq: 7` and the given extra header lines (each ending CRLF).
    fn options_with(extra: &str) -> Vec<u8> {
        format!("OPTIONS rtsp://example.com/live RTSP/1.0\r\nCSeq: 7\r\n{extra}\r\n").into_bytes()
    }

    fn serialize(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        match frame {
            Frame::Request(request) => request.write(&mut out).expect("write to a Vec"),
            Frame::Response(response) => response.write(&mut out).expect("write to a Vec"),
            Frame::Interleaved { channel, payload } => out = interleaved(*channel, payload),
        }
        out
    }

    // ---------------------------------------------------------------------------------------
    // Real clients and servers
    // ---------------------------------------------------------------------------------------

    #[test]
    fn ffmpeg_5_1_publish_tcp() {
        let stream = [
            FFMPEG_5_1_OPTIONS,
            FFMPEG_5_1_ANNOUNCE,
            FFMPEG_5_1_SETUP,
            FFMPEG_5_1_RECORD,
            FFMPEG_5_1_RTCP_SENDER_REPORT,
            FFMPEG_5_1_TEARDOWN,
        ]
        .concat();
        let (frames, err) = outcome(&stream);
        assert_eq!(err, None);
        let [Frame::Request(options), Frame::Request(announce), Frame::Request(setup), Frame::Request(record), Frame::Interleaved {
            channel: 1,
            payload,
        }, Frame::Request(teardown)] = &frames[..]
        else {
            panic!("unexpected frames {frames:?}");
        };
        assert_eq!(options.method(), Method::Options);
        assert_eq!(header(options, "User-Agent"), Some("Lavf59.27.100"));
        assert_eq!(announce.method(), Method::Announce);
        assert_eq!(header(announce, "CSeq"), Some("2"));
        assert_eq!(header(announce, "Content-Type"), Some("application/sdp"));
        assert_eq!(announce.body().len(), 298);
        assert!(announce.body().starts_with(b"v=0\r\n"));
        assert_eq!(setup.method(), Method::Setup);
        assert_eq!(
            header(setup, "Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record")
        );
        assert_eq!(
            setup.request_uri().map(|u| u.as_str()),
            Some("rtsp://127.0.0.1:18601/live/streamid=0")
        );
        assert_eq!(record.method(), Method::Record);
        assert_eq!(header(record, "Session"), Some("4038329786"));
        assert_eq!(payload.len(), 28);
        assert_eq!(payload[1], 200, "RTCP sender report");
        assert_eq!(teardown.method(), Method::Teardown);
    }

    #[test]
    fn ffmpeg_5_1_listen_setup_reply() {
        let reply = response(FFMPEG_5_1_LISTEN_SETUP_REPLY);
        assert_eq!(reply.status(), StatusCode::Ok);
        assert_eq!(header(&reply, "Session"), Some("4038329786"));
    }

    /// ffmpeg's listener answers TEARDOWN with a bare `501` that has no CSeq: a client reading it
    /// through this reader fails at teardown, which is harmless (it is closing anyway).
    #[test]
    fn ffmpeg_5_1_listen_teardown_reply_without_cseq_is_400() {
        let (err, status) = error_of(FFMPEG_5_1_LISTEN_TEARDOWN_REPLY);
        assert_eq!(err, FramingError::MissingCSeq);
        assert_eq!(status, 400);
    }

    #[test]
    fn gstreamer_1_22_rtspsrc_play_tcp() {
        let stream = [
            GST_1_22_OPTIONS,
            GST_1_22_DESCRIBE,
            GST_1_22_SETUP,
            GST_1_22_PLAY,
        ]
        .concat();
        let (frames, err) = outcome(&stream);
        assert_eq!(err, None);
        let methods: Vec<_> = frames
            .iter()
            .map(|frame| match frame {
                Frame::Request(request) => request.method().clone(),
                other => panic!("expected a request, got {other:?}"),
            })
            .collect();
        assert_eq!(
            methods,
            [
                Method::Options,
                Method::Describe,
                Method::Setup,
                Method::Play
            ]
        );
        let Frame::Request(options) = &frames[0] else {
            unreachable!()
        };
        // Repeated ordinary headers are fine; rtsp-types joins their values.
        assert_eq!(
            header(options, "User-Agent"),
            Some(
                "GStreamer/1.22.0, RealMedia Player Version 6.0.9.1235 \
                 (linux-2.0-libc6-i386-gcc2.95)"
            )
        );
        let Frame::Request(setup) = &frames[2] else {
            unreachable!()
        };
        assert_eq!(
            header(setup, "Transport"),
            Some("RTP/AVP/TCP;unicast;interleaved=0-1")
        );
    }

    #[test]
    fn gst_rtsp_server_1_22_describe_reply_with_sdp_body() {
        let reply = response(GST_RTSP_SERVER_1_22_DESCRIBE_REPLY);
        assert_eq!(reply.status(), StatusCode::Ok);
        assert_eq!(header(&reply, "CSeq"), Some("2"));
        assert_eq!(
            header(&reply, "Content-Base"),
            Some("rtsp://127.0.0.1:18600/live/")
        );
        assert_eq!(reply.body().len(), 530);
        assert!(reply.body().starts_with(b"v=0\r\n"));
        assert!(reply
            .body()
            .ends_with(b"cname:user4153518399@host-90b9ae83\r\n"));
    }

    #[test]
    fn gst_rtsp_server_1_22_play_session_with_rtp() {
        let stream = [
            GST_RTSP_SERVER_1_22_SETUP_REPLY,
            GST_RTSP_SERVER_1_22_PLAY_REPLY,
            GST_RTSP_SERVER_1_22_RTP_SPS,
            GST_RTSP_SERVER_1_22_RTP_PPS,
        ]
        .concat();
        let (frames, err) = outcome(&stream);
        assert_eq!(err, None);
        let [Frame::Response(setup), Frame::Response(play), Frame::Interleaved {
            channel: 0,
            payload: sps,
        }, Frame::Interleaved {
            channel: 0,
            payload: pps,
        }] = &frames[..]
        else {
            panic!("unexpected frames {frames:?}");
        };
        assert_eq!(header(setup, "Session"), Some("Rjd98e4Da0zo2thF"));
        assert!(header(play, "RTP-Info").is_some());
        assert_eq!((sps.len(), sps[12] & 0x1f), (40, 7), "RTP carrying an SPS");
        assert_eq!((pps.len(), pps[12] & 0x1f), (16, 8), "RTP carrying a PPS");
    }

    /// Every transcript above in one stream, requests, replies and interleaved frames mixed,
    /// with blank lines between some messages: the same frames however the stream is cut.
    #[test]
    fn real_transcripts_parse_identically_split_at_every_byte() {
        let stream = [
            FFMPEG_5_1_OPTIONS,
            b"\r\n",
            FFMPEG_5_1_ANNOUNCE,
            FFMPEG_5_1_SETUP,
            FFMPEG_5_1_LISTEN_SETUP_REPLY,
            FFMPEG_5_1_RECORD,
            FFMPEG_5_1_RTCP_SENDER_REPORT,
            &interleaved(0, b""),
            GST_1_22_OPTIONS,
            GST_RTSP_SERVER_1_22_DESCRIBE_REPLY,
            b"\r\n\r\n",
            GST_1_22_DESCRIBE,
            GST_RTSP_SERVER_1_22_RTP_SPS,
            GST_RTSP_SERVER_1_22_RTP_PPS,
            GST_1_22_SETUP,
            GST_RTSP_SERVER_1_22_SETUP_REPLY,
            GST_1_22_PLAY,
            GST_RTSP_SERVER_1_22_PLAY_REPLY,
            FFMPEG_5_1_TEARDOWN,
        ]
        .concat();
        let expected = whole(&stream);
        assert_eq!(expected.1, None);
        assert_eq!(expected.0.len(), 17);
        assert_eq!(byte_by_byte(&stream), expected);
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            assert_eq!(feed([a, b]), expected, "split at {cut}");
        }
        // Three pieces, cut at every pair of positions a prime stride apart.
        for cut in (0..stream.len()).step_by(7) {
            let second = (cut + 331).min(stream.len());
            let pieces = [&stream[..cut], &stream[cut..second], &stream[second..]];
            assert_eq!(feed(pieces), expected, "split at {cut} and {second}");
        }
    }

    #[test]
    fn real_transcripts_round_trip_parse_write_parse() {
        let messages = [
            FFMPEG_5_1_OPTIONS,
            FFMPEG_5_1_ANNOUNCE,
            FFMPEG_5_1_SETUP,
            FFMPEG_5_1_RECORD,
            FFMPEG_5_1_RTCP_SENDER_REPORT,
            FFMPEG_5_1_TEARDOWN,
            FFMPEG_5_1_LISTEN_SETUP_REPLY,
            GST_1_22_OPTIONS,
            GST_1_22_DESCRIBE,
            GST_1_22_SETUP,
            GST_1_22_PLAY,
            GST_RTSP_SERVER_1_22_DESCRIBE_REPLY,
            GST_RTSP_SERVER_1_22_SETUP_REPLY,
            GST_RTSP_SERVER_1_22_PLAY_REPLY,
            GST_RTSP_SERVER_1_22_RTP_SPS,
        ];
        for message in messages {
            let parsed = single_frame(message);
            let written = serialize(&parsed);
            let (reparsed, err) = whole(&written);
            assert_eq!(err, None, "{}", String::from_utf8_lossy(&written));
            assert_eq!(reparsed, [parsed]);
        }
    }

    #[test]
    fn blank_lines_between_messages_are_skipped() {
        let stream = [b"\r\n\r\n".as_slice(), FFMPEG_5_1_OPTIONS, b"\r\n"].concat();
        let (frames, err) = outcome(&stream);
        assert_eq!((frames.len(), err), (1, None));
    }

    #[test]
    fn request_without_uri_star_is_accepted() {
        let options = request(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(options.request_uri(), None);
    }

    // ---------------------------------------------------------------------------------------
    // BAD_INPUTS.md, "RTSP messages": request line
    // ---------------------------------------------------------------------------------------

    #[test]
    fn request_line_leading_space_is_400() {
        let (err, status) = error_of(b" OPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        assert_eq!(err, FramingError::LeadingWhitespace { cseq: Some(3) });
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_leading_tab_is_400() {
        let (err, status) = error_of(b"\tOPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        assert_eq!(err, FramingError::LeadingWhitespace { cseq: Some(3) });
        assert_eq!(status, 400);
    }

    /// An empty method means the line starts with the space that should follow it.
    #[test]
    fn request_line_empty_method_is_400() {
        let (err, status) = error_of(b" rtsp://example.com/live RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        assert_eq!(err, FramingError::LeadingWhitespace { cseq: Some(3) });
        assert_eq!(status, 400);
        // A header block with its request line lost: the first header is taken as the request
        // line and `CSeq:` is no method.
        let (err, status) = error_of(b"\r\nCSeq: 3\r\n\r\n");
        assert!(matches!(err, FramingError::InvalidMethod { .. }), "{err:?}");
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_huge_method_is_400() {
        let input = format!("{} * RTSP/1.0\r\nCSeq: 3\r\n\r\n", "A".repeat(33));
        let (err, status) = error_of(input.as_bytes());
        assert_eq!(
            err,
            FramingError::MethodTooLong {
                len: 33,
                max: MAX_METHOD_BYTES,
                cseq: Some(3)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_method_over_head_limit_is_400() {
        let input = "A".repeat(20_000);
        let (err, status) = error_of(input.as_bytes());
        assert!(
            matches!(
                err,
                FramingError::MethodTooLong {
                    len: 8192,
                    cseq: None,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_non_token_method_is_400() {
        let (err, status) = error_of(b"OPT(IONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n");
        assert_eq!(
            err,
            FramingError::InvalidMethod {
                method: "OPT(IONS".into(),
                cseq: Some(3)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_uri_over_2_kib_is_414() {
        let uri = format!("rtsp://example.com/{}", "a".repeat(3000));
        let input = format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: 9\r\n\r\n");
        let (err, status) = error_of(input.as_bytes());
        assert_eq!(
            err,
            FramingError::UriTooLong {
                len: uri.len(),
                max: 2048,
                cseq: Some(9)
            }
        );
        assert_eq!(status, 414);
    }

    #[test]
    fn request_uri_over_head_limit_is_414() {
        let input = format!("DESCRIBE rtsp://example.com/{}", "a".repeat(100_000));
        let (err, status) = error_of(input.as_bytes());
        assert!(
            matches!(
                err,
                FramingError::UriTooLong {
                    len: 8183,
                    max: 2048,
                    cseq: None
                }
            ),
            "{err:?}"
        );
        assert_eq!(status, 414);
    }

    #[test]
    fn request_uri_at_limit_is_accepted() {
        let prefix = "rtsp://example.com/";
        let uri = format!("{prefix}{}", "a".repeat(2048 - prefix.len()));
        let input = format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: 9\r\n\r\n");
        let describe = request(input.as_bytes());
        assert_eq!(
            describe.request_uri().map(|u| u.as_str()),
            Some(uri.as_str())
        );
    }

    #[test]
    fn request_uri_not_absolute_is_400() {
        let (err, status) = error_of(b"DESCRIBE /live RTSP/1.0\r\nCSeq: 9\r\n\r\n");
        assert_eq!(
            err,
            FramingError::InvalidUri {
                uri: "/live".into(),
                len: 5,
                cseq: Some(9)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_rtsp_2_0_is_505() {
        let (err, status) = error_of(b"OPTIONS * RTSP/2.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(
            err,
            FramingError::UnsupportedVersion {
                version: "RTSP/2.0".into(),
                cseq: Some(1)
            }
        );
        assert_eq!(status, 505);
    }

    #[test]
    fn request_line_lowercase_version_is_400() {
        let (err, status) = error_of(b"OPTIONS * rtsp/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(
            err,
            FramingError::MalformedVersion {
                version: "rtsp/1.0".into(),
                cseq: Some(1)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_http_version_is_400() {
        let (err, status) = error_of(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert!(matches!(err, FramingError::InvalidUri { .. }), "{err:?}");
        assert_eq!(status, 400);
        let (err, _) = error_of(b"GET rtsp://h/ HTTP/1.1\r\nCSeq: 1\r\n\r\n");
        assert!(
            matches!(err, FramingError::MalformedVersion { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn request_line_without_version_is_400() {
        let (err, status) = error_of(b"OPTIONS *\r\nCSeq: 1\r\n\r\n");
        assert!(
            matches!(err, FramingError::MalformedStartLine { .. }),
            "{err:?}"
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn request_line_double_space_is_400() {
        let (err, status) = error_of(b"OPTIONS  * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert!(matches!(err, FramingError::InvalidUri { .. }), "{err:?}");
        assert_eq!(status, 400);
    }

    /// A client ending lines in LF alone is refused at the first LF, without waiting for a
    /// CRLF CRLF that will never come.
    #[test]
    fn bare_lf_line_endings_are_400() {
        let (err, status) = error_of(b"OPTIONS * RTSP/1.0\nCSeq: 1\n\n");
        assert_eq!(
            err,
            FramingError::BareLineFeed {
                offset: 18,
                cseq: None
            }
        );
        assert_eq!(status, 400);
        let mut reader = FrameReader::default();
        reader.push(b"OPTIONS * RTSP/1.0\n");
        assert!(reader.next_frame().is_err());
    }

    #[test]
    fn bare_cr_line_endings_are_400() {
        let (err, status) = error_of(b"OPTIONS * RTSP/1.0\rCSeq: 1\r\r");
        assert_eq!(
            err,
            FramingError::BareCarriageReturn {
                offset: 18,
                cseq: None
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn bare_lf_in_header_value_is_400() {
        let input = options_with("Session: 12345\nTransport: RTP/AVP;unicast\r\n");
        let (err, status) = error_of(&input);
        assert!(
            matches!(err, FramingError::BareLineFeed { cseq: Some(7), .. }),
            "{err:?}"
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn nul_byte_in_request_line_is_400() {
        let (err, status) =
            error_of(b"OPTIONS rtsp://example.com/\0live RTSP/1.0\r\nCSeq: 1\r\n\r\n");
        assert_eq!(
            err,
            FramingError::NulByte {
                offset: 27,
                cseq: None
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn nul_byte_in_header_value_is_400() {
        let input = options_with("User-Agent: evil\0client\r\n");
        let (err, status) = error_of(&input);
        assert!(
            matches!(err, FramingError::NulByte { cseq: Some(7), .. }),
            "{err:?}"
        );
        assert_eq!(status, 400);
    }

    /// A header value cannot carry a line break of its own, so a value echoed or relayed from
    /// a parsed message can never inject a header line.
    #[test]
    fn crlf_injection_in_header_value_is_400() {
        for injected in [
            "Session: 1234\rTransport: RTP/AVP;unicast;destination=10.0.0.1\r\n",
            "Session: 1234\nTransport: RTP/AVP;unicast;destination=10.0.0.1\r\n",
            "Session: 1234\n\rTransport: RTP/AVP;unicast;destination=10.0.0.1\r\n",
        ] {
            let (err, status) = error_of(&options_with(injected));
            assert!(
                matches!(
                    err,
                    FramingError::BareCarriageReturn { cseq: Some(7), .. }
                        | FramingError::BareLineFeed { cseq: Some(7), .. }
                ),
                "{injected:?}: {err:?}"
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn control_character_in_header_value_is_400() {
        for byte in [0x0b_u8, 0x0c, 0x1b, 0x7f] {
            let mut input = options_with("X-Note: ab\r\n");
            let at = input.len() - 5;
            input[at] = byte;
            let (err, status) = error_of(&input);
            assert_eq!(
                err,
                FramingError::ControlCharacter {
                    byte,
                    offset: at,
                    cseq: Some(7)
                }
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn tab_in_header_value_is_accepted() {
        let options = request(&options_with("X-Note: a\tb\r\n"));
        assert_eq!(header(&options, "X-Note"), Some("a\tb"));
    }

    #[test]
    fn non_utf8_head_is_400() {
        // Latin-1 "é" where UTF-8 is expected.
        let mut input = options_with("X-Note: caf?\r\n");
        let at = input.len() - 5;
        input[at] = 0xe9;
        let (err, status) = error_of(&input);
        assert_eq!(
            err,
            FramingError::InvalidUtf8 {
                offset: at,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    // ---------------------------------------------------------------------------------------
    // BAD_INPUTS.md, "RTSP messages": Content-Length
    // ---------------------------------------------------------------------------------------

    #[test]
    fn content_length_negative_is_400() {
        let (err, status) = error_of(&options_with("Content-Length: -1\r\n"));
        assert_eq!(
            err,
            FramingError::InvalidContentLength {
                value: "-1".into(),
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn content_length_non_numeric_is_400() {
        for value in ["abc", "0x10", "", "1e3", "١٢"] {
            let (err, status) = error_of(&options_with(&format!("Content-Length: {value}\r\n")));
            assert!(
                matches!(
                    err,
                    FramingError::InvalidContentLength { cseq: Some(7), .. }
                ),
                "{value:?}: {err:?}"
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn content_length_with_sign_or_inner_space_is_400() {
        for value in ["+5", "5 0", "5\t0"] {
            let (err, status) = error_of(&options_with(&format!("Content-Length: {value}\r\n")));
            assert!(
                matches!(err, FramingError::InvalidContentLength { .. }),
                "{value:?}: {err:?}"
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn content_length_duplicated_is_400() {
        for lengths in [
            "Content-Length: 4\r\nContent-Length: 4\r\n",
            "Content-Length: 4\r\ncontent-length: 5\r\n",
        ] {
            let mut input = options_with(lengths);
            input.extend_from_slice(b"abcd");
            let (err, status) = error_of(&input);
            assert_eq!(
                err,
                FramingError::DuplicateHeader {
                    name: "Content-Length",
                    cseq: Some(7)
                }
            );
            assert_eq!(status, 400);
        }
    }

    /// Rejected as soon as the head is in, before any of the body arrives.
    #[test]
    fn content_length_over_body_limit_is_413() {
        let (err, status) = error_of(&options_with("Content-Length: 131073\r\n"));
        assert_eq!(
            err,
            FramingError::BodyTooLarge {
                length: 131_073,
                max: 131_072,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 413);
    }

    #[test]
    fn content_length_at_body_limit_is_accepted() {
        let mut input = options_with("Content-Length: 131072\r\n");
        input.resize(input.len() + 131_072, b'x');
        let (frames, err) = whole(&input);
        assert_eq!(err, None);
        assert_eq!(byte_by_byte(&input), (frames.clone(), None));
        let [Frame::Request(options)] = &frames[..] else {
            panic!("{frames:?}")
        };
        assert_eq!(options.body().len(), 131_072);
    }

    #[test]
    fn content_length_2_pow_63_is_413_at_once() {
        let (err, status) = error_of(&options_with("Content-Length: 9223372036854775808\r\n"));
        assert_eq!(
            err,
            FramingError::BodyTooLarge {
                length: 1 << 63,
                max: 131_072,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 413);
    }

    #[test]
    fn content_length_beyond_u64_is_413() {
        let (err, status) = error_of(&options_with(&format!(
            "Content-Length: {}\r\n",
            "9".repeat(60)
        )));
        assert!(
            matches!(
                err,
                FramingError::BodyTooLarge {
                    length: u64::MAX,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(status, 413);
    }

    /// The caller's read timeout deals with a peer that never sends the promised body.
    #[test]
    fn content_length_longer_than_bytes_is_incomplete() {
        let mut input = options_with("Content-Length: 100\r\n");
        input.extend_from_slice(&[b'x'; 99]);
        assert_eq!(outcome(&input), (vec![], None));
        let mut reader = FrameReader::default();
        reader.push(&input);
        assert_eq!(reader.next_frame(), Ok(None));
        reader.push(b"x");
        assert!(matches!(reader.next_frame(), Ok(Some(Frame::Request(_)))));
    }

    /// Framing does not know which methods take a body; the session layer may refuse it.
    #[test]
    fn body_on_bodyless_method_is_framed() {
        let mut input =
            b"PLAY rtsp://example.com/live RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec();
        input.extend_from_slice(FFMPEG_5_1_OPTIONS);
        let (frames, err) = outcome(&input);
        assert_eq!(err, None);
        let [Frame::Request(play), Frame::Request(options)] = &frames[..] else {
            panic!("{frames:?}")
        };
        assert_eq!(play.method(), Method::Play);
        assert_eq!(play.body().as_slice(), b"hello");
        assert_eq!(options.method(), Method::Options);
    }

    // ---------------------------------------------------------------------------------------
    // BAD_INPUTS.md, "RTSP messages": headers and CSeq
    // ---------------------------------------------------------------------------------------

    #[test]
    fn hundreds_of_headers_is_400() {
        let extra: String = (0..300).map(|i| format!("X-{i:03}: 1\r\n")).collect();
        let (err, status) = error_of(&options_with(&extra));
        assert_eq!(
            err,
            FramingError::TooManyHeaders {
                count: 301,
                max: 64,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn headers_at_limit_are_accepted() {
        let extra: String = (0..63).map(|i| format!("X-{i:03}: 1\r\n")).collect();
        let options = request(&options_with(&extra));
        assert_eq!(options.headers().count(), 64);
    }

    /// rtsp-types 0.1.3 would fold `Accept-Language` into `Accept` (its header names compare
    /// by common prefix), and `CSeqX` into `CSeq`, handing on headers nobody sent.
    #[test]
    fn header_names_rtsp_types_would_merge_are_400() {
        let input = options_with("Accept: application/sdp\r\nAccept-Language: en-US\r\n");
        let (merged, _) = rtsp_types::Message::<Vec<u8>>::parse(&input).expect("rtsp-types parses");
        let rtsp_types::Message::Request(merged) = merged else {
            panic!("{merged:?}")
        };
        assert_eq!(
            merged.headers().count(),
            2,
            "Accept-Language vanished into Accept"
        );
        assert_eq!(header(&merged, "Accept"), Some("application/sdp, en-US"));

        let (err, status) = error_of(&input);
        assert_eq!(
            err,
            FramingError::HeaderNameCollision {
                first: "Accept".into(),
                second: "Accept-Language".into(),
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
        let (err, _) = error_of(&options_with("cseqx: 99\r\n"));
        assert!(
            matches!(err, FramingError::HeaderNameCollision { .. }),
            "{err:?}"
        );
        // What remains: a lookup by a name the message lacks finds a prefix-related one.
        let sess = request(&options_with("Sess: x\r\n"));
        assert_eq!(
            sess.header(&headers::SESSION).map(|v| v.as_str()),
            Some("x")
        );
        // Repeating the very same name is fine: the values are joined, as RFC 2326 allows.
        let options = request(&options_with("Require: a\r\nrequire: b\r\n"));
        assert_eq!(header(&options, "Require"), Some("a, b"));
    }

    #[test]
    fn over_long_header_name_is_400() {
        let extra = format!("X-{}: 1\r\n", "n".repeat(10_000));
        let (err, status) = error_of(&options_with(&extra));
        assert_eq!(
            err,
            FramingError::HeadTooLarge {
                max: 8192,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn over_long_header_value_is_400() {
        let extra = format!("X-Note: {}\r\n", "v".repeat(10_000));
        let (err, status) = error_of(&options_with(&extra));
        assert_eq!(
            err,
            FramingError::HeadTooLarge {
                max: 8192,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn huge_session_id_is_400() {
        let input = format!(
            "PLAY rtsp://example.com/live RTSP/1.0\r\nCSeq: 4\r\nSession: {}\r\n\r\n",
            "s".repeat(16 * 1024)
        );
        let (err, status) = error_of(input.as_bytes());
        assert_eq!(
            err,
            FramingError::HeadTooLarge {
                max: 8192,
                cseq: Some(4)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn head_at_limit_is_accepted_and_one_over_is_400() {
        let base = options_with("X-Pad: \r\n").len();
        let fill = |n: usize| options_with(&format!("X-Pad: {}\r\n", "p".repeat(n)));
        let at_limit = fill(8192 - base);
        assert_eq!(at_limit.len(), 8192);
        assert!(matches!(single_frame(&at_limit), Frame::Request(_)));
        let (err, _) = error_of(&fill(8193 - base));
        assert_eq!(
            err,
            FramingError::HeadTooLarge {
                max: 8192,
                cseq: Some(7)
            }
        );
    }

    /// A head that never ends is refused once it is over the limit, never buffered beyond it.
    #[test]
    fn endless_head_is_400_once_over_limit() {
        let mut reader = FrameReader::default();
        reader.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n");
        let line = b"X-Filler: 12345\r\n";
        while reader.buffered() + line.len() <= 8192 {
            reader.push(line);
            assert_eq!(reader.next_frame(), Ok(None));
        }
        reader.push(&[b'y'; 64]);
        assert!(matches!(
            reader.next_frame(),
            Err(FramingError::HeadTooLarge { cseq: Some(1), .. })
        ));
    }

    #[test]
    fn header_without_colon_is_400() {
        let (err, status) = error_of(&options_with("Session 1234\r\n"));
        assert_eq!(
            err,
            FramingError::MalformedHeader {
                line: 3,
                reason: "no colon after the header name",
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn header_name_not_a_token_is_400() {
        for line in [
            "Bad Name: 1\r\n",
            "Session : 1\r\n",
            ": 1\r\n",
            "X(y): 1\r\n",
        ] {
            let (err, status) = error_of(&options_with(line));
            assert!(
                matches!(err, FramingError::MalformedHeader { line: 3, .. }),
                "{line:?}: {err:?}"
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn folded_header_line_is_400() {
        let (err, status) = error_of(&options_with(
            "Require: implicit-play,\r\n  setup.rtp.rtcp.mux\r\n",
        ));
        assert_eq!(
            err,
            FramingError::HeaderLineFolding {
                line: 4,
                cseq: Some(7)
            }
        );
        assert_eq!(status, 400);
    }

    #[test]
    fn missing_cseq_is_400() {
        let (err, status) = error_of(b"OPTIONS * RTSP/1.0\r\nUser-Agent: x\r\n\r\n");
        assert_eq!(err, FramingError::MissingCSeq);
        assert_eq!(err.cseq(), None);
        assert_eq!(status, 400);
    }

    #[test]
    fn huge_cseq_is_400() {
        let (err, status) = error_of(b"OPTIONS * RTSP/1.0\r\nCSeq: 4294967296\r\n\r\n");
        assert_eq!(
            err,
            FramingError::InvalidCSeq {
                value: "4294967296".into()
            }
        );
        assert_eq!(err.cseq(), None);
        assert_eq!(status, 400);
    }

    #[test]
    fn non_numeric_cseq_is_400() {
        for value in ["", "abc", "-1", "+1", "1 2", "0x10"] {
            let input = format!("OPTIONS * RTSP/1.0\r\nCSeq: {value}\r\n\r\n");
            let (err, status) = error_of(input.as_bytes());
            assert!(
                matches!(err, FramingError::InvalidCSeq { .. }),
                "{value:?}: {err:?}"
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn cseq_u32_max_is_accepted() {
        let options = request(b"OPTIONS * RTSP/1.0\r\ncseq:4294967295 \r\n\r\n");
        assert_eq!(header(&options, "CSeq"), Some("4294967295"));
    }

    #[test]
    fn duplicate_cseq_is_400() {
        let (err, status) = error_of(b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\nCSeq: 2\r\n\r\n");
        assert_eq!(
            err,
            FramingError::DuplicateHeader {
                name: "CSeq",
                cseq: Some(2)
            }
        );
        assert_eq!(status, 400);
    }

    /// Errors found in a complete head echo the CSeq even when it comes after the fault.
    #[test]
    fn error_echoes_cseq_from_a_later_header() {
        let input = b"OPTIONS * RTSP/2.0\r\nUser-Agent: x\r\nCSeq: 41\r\n\r\n";
        let (err, status) = error_of(input);
        assert_eq!((err.cseq(), status), (Some(41), 505));
    }

    #[test]
    fn response_bad_status_code_is_400() {
        for line in [
            "RTSP/1.0 20 OK",
            "RTSP/1.0 2000 OK",
            "RTSP/1.0 OK",
            "RTSP/1.0 200",
        ] {
            let input = format!("{line}\r\nCSeq: 1\r\n\r\n");
            let (err, status) = error_of(input.as_bytes());
            assert!(
                matches!(err, FramingError::MalformedStartLine { cseq: Some(1), .. }),
                "{line:?}: {err:?}"
            );
            assert_eq!(status, 400);
        }
    }

    #[test]
    fn response_with_empty_reason_is_accepted() {
        let reply = response(b"RTSP/1.0 200 \r\nCSeq: 1\r\n\r\n");
        assert_eq!(reply.status(), StatusCode::Ok);
    }

    // ---------------------------------------------------------------------------------------
    // BAD_INPUTS.md, "Interleaved framing"
    // ---------------------------------------------------------------------------------------

    #[test]
    fn interleaved_length_0xffff_with_short_body_is_incomplete() {
        let mut input = vec![b'$', 0, 0xff, 0xff];
        input.extend_from_slice(&[0x80; 1000]);
        assert_eq!(outcome(&input), (vec![], None));
        let mut reader = FrameReader::default();
        reader.push(&input);
        assert_eq!(reader.next_frame(), Ok(None));
        reader.push(&vec![0x80; 0xffff - 1000]);
        let frame = reader.next_frame().expect("a frame").expect("complete");
        assert!(
            matches!(frame, Frame::Interleaved { channel: 0, ref payload } if payload.len() == 0xffff)
        );
    }

    #[test]
    fn interleaved_over_limit_is_413() {
        let mut reader = FrameReader::new(Limits {
            max_interleaved_bytes: 1504,
            ..Limits::default()
        });
        reader.push(&interleaved(2, &[0; 1500]));
        assert!(matches!(
            reader.next_frame(),
            Ok(Some(Frame::Interleaved { .. }))
        ));
        // Refused from its 4-byte header alone.
        reader.push(&[b'$', 3, 0x05, 0xdd]);
        let err = reader.next_frame().expect_err("over the limit");
        assert_eq!(
            err,
            FramingError::InterleavedTooLarge {
                channel: 3,
                len: 1505,
                max: 1504
            }
        );
        assert_eq!(u16::from(err.status()), 413);
    }

    /// An interleaved frame dropped into the middle of a head is bytes of that head, and they
    /// are not header text.
    #[test]
    fn dollar_in_middle_of_header_is_400() {
        for channel in [0_u8, 1] {
            let mut input =
                b"SETUP rtsp://example.com/live/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTrans".to_vec();
            input.extend_from_slice(&interleaved(channel, GST_RTSP_SERVER_1_22_RTP_PPS));
            input.extend_from_slice(b"port: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n");
            let (err, status) = error_of(&input);
            assert!(
                matches!(
                    err,
                    FramingError::NulByte { cseq: Some(3), .. }
                        | FramingError::ControlCharacter { cseq: Some(3), .. }
                ),
                "{err:?}"
            );
            assert_eq!(status, 400);
        }
        // Even a frame whose bytes are all printable is no header line.
        let input = options_with("$A\x00\x10\r\n");
        assert!(error_of(&input).0.cseq() == Some(7));
        let input = options_with("$A01\r\n");
        assert!(matches!(
            error_of(&input).0,
            FramingError::MalformedHeader { .. }
        ));
    }

    #[test]
    fn dollar_inside_body_is_body() {
        let mut input = options_with("Content-Length: 8\r\n");
        input.extend_from_slice(&interleaved(0, b"RTP!"));
        input.extend_from_slice(&interleaved(1, b"RTCP"));
        let (frames, err) = outcome(&input);
        assert_eq!(err, None);
        let [Frame::Request(options), Frame::Interleaved {
            channel: 1,
            payload,
        }] = &frames[..]
        else {
            panic!("{frames:?}")
        };
        assert_eq!(options.body().as_slice(), b"$\0\0\x04RTP!");
        assert_eq!(&payload[..], b"RTCP");
    }

    #[test]
    fn zero_length_interleaved_frame_is_valid() {
        let frame = single_frame(&interleaved(5, b""));
        assert_eq!(
            frame,
            Frame::Interleaved {
                channel: 5,
                payload: Bytes::new()
            }
        );
    }

    #[test]
    fn ten_thousand_zero_length_frames_are_consumed_without_quadratic_cost() {
        let flood = interleaved(0, b"").repeat(10_000);
        let mut reader = FrameReader::default();
        reader.push(&flood);
        reader.push(FFMPEG_5_1_OPTIONS);
        let mut frames = 0;
        while let Some(frame) = reader.next_frame().expect("valid framing") {
            if matches!(frame, Frame::Interleaved { .. }) {
                frames += 1;
            }
        }
        assert_eq!((frames, reader.buffered()), (10_000, 0));
        let (frames, err) = byte_by_byte(&flood);
        assert_eq!((frames.len(), err), (10_000, None));
    }

    // ---------------------------------------------------------------------------------------
    // Reader behaviour
    // ---------------------------------------------------------------------------------------

    #[test]
    fn reader_stays_failed_after_error() {
        let mut reader = FrameReader::default();
        reader.push(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\n");
        let err = reader.next_frame().expect_err("bad Content-Length");
        assert_eq!(reader.buffered(), 0);
        reader.push(FFMPEG_5_1_OPTIONS);
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.next_frame(), Err(err));
    }

    #[test]
    fn interleaved_frame_is_handed_out_whole() {
        let mut reader = FrameReader::default();
        reader.push(&interleaved(9, &[7; 1000])[..600]);
        assert_eq!(reader.next_frame(), Ok(None));
        reader.push(&interleaved(9, &[7; 1000])[600..]);
        let Ok(Some(Frame::Interleaved { channel, payload })) = reader.next_frame() else {
            panic!("expected a frame")
        };
        assert_eq!((channel, &payload[..]), (9, &[7; 1000][..]));
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn errors_display_their_context() {
        let err = FramingError::BodyTooLarge {
            length: 1 << 63,
            max: 131_072,
            cseq: Some(2),
        };
        assert_eq!(
            err.to_string(),
            "Content-Length 9223372036854775808 is over the 131072-byte body limit"
        );
        assert_eq!(err.cseq(), Some(2));
        let err = FramingError::InvalidContentLength {
            value: "-1".into(),
            cseq: None,
        };
        assert_eq!(
            err.to_string(),
            "Content-Length \"-1\" is not a plain decimal number"
        );
    }

    #[test]
    fn cseq_checked_is_the_cseq_rtsp_types_exposes() {
        let options = request(FFMPEG_5_1_OPTIONS);
        assert_eq!(
            options.header(&headers::CSEQ).map(|v| v.as_str()),
            Some("1")
        );
    }
}
