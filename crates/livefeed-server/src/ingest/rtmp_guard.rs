//! A guard in front of rml_rtmp's chunk stream reader: it follows the RTMP chunk headers of
//! what a peer sends (sans-IO, no payload kept) and refuses a message before rml_rtmp buffers
//! or parses it when it is larger than its kind may be. AMF0/AMF3 commands and data are capped
//! at [`MAX_AMF_MESSAGE`]: rml_amf0 parses nested objects and arrays by recursion without a
//! depth limit, so a large deeply nested message would overflow the stack and abort the whole
//! server; one under the cap cannot nest deep enough to exhaust a worker's stack
//! ([`crate::WORKER_STACK_BYTES`]). Audio and video messages are capped at the
//! access-unit limit; other messages (protocol control, acknowledgements) at a few bytes.
//!
//! It reads the same headers rml_rtmp does (RTMP 1.0 §5.3: basic header, message header of
//! type 0–3, extended timestamp, the peer's Set Chunk Size), so what it lets through is what
//! rml_rtmp sees. rml_rtmp assembles one message at a time (one buffer for all chunk streams),
//! so a message's chunks must come back to back, as ffmpeg and librtmp (OBS) send them: a
//! chunk of another message while one is incomplete is refused, as is anything else the guard
//! cannot follow (a new chunk stream without a length and a type, a chunk size of 0).

use std::collections::HashMap;

/// Largest AMF command or data message accepted, bytes. ffmpeg's and OBS's largest
/// (`connect`, `@setDataFrame`) are well under 1 KiB.
pub const MAX_AMF_MESSAGE: usize = 4 * 1024;
/// Largest protocol control, user control or acknowledgement message, bytes.
const MAX_CONTROL_MESSAGE: usize = 64;
/// The chunk size before the peer sets one.
const DEFAULT_CHUNK_SIZE: usize = 128;
/// The most chunk streams a peer may use at once.
const MAX_CHUNK_STREAMS: usize = 64;

/// Why the guard refused the stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A message larger than its kind may be.
    #[error("RTMP message of type {kind} and {len} bytes is over the {limit}-byte cap")]
    TooLarge {
        /// Message type id.
        kind: u8,
        /// Its length.
        len: usize,
        /// The cap for its kind.
        limit: usize,
    },
    /// A chunk the guard cannot follow.
    #[error("malformed RTMP chunk stream: {0}")]
    Malformed(&'static str),
}

/// What the guard remembers of a chunk stream.
#[derive(Debug, Clone, Copy, Default)]
struct ChunkStream {
    length: usize,
    kind: u8,
    /// The last header had an extended timestamp (type 3 chunks repeat it).
    extended: bool,
    /// Payload bytes of the current message still to come.
    remaining: usize,
    /// Set Chunk Size's payload collected so far.
    set_chunk_size: [u8; 4],
}

/// Where the guard is in the byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for a chunk header (`have` bytes of it buffered in `header`).
    Header,
    /// Inside the payload of chunk stream `csid`: `left` bytes of this chunk to skip.
    Payload { csid: u32, left: usize },
}

/// Follows the chunk headers of one connection's input.
pub struct ChunkGuard {
    chunk_size: usize,
    streams: HashMap<u32, ChunkStream>,
    header: Vec<u8>,
    state: State,
    max_media: usize,
    /// The chunk stream whose message is incomplete, if one is.
    open: Option<u32>,
}

impl ChunkGuard {
    /// A guard for a new connection (after the handshake), audio and video messages capped at
    /// `max_media` bytes.
    pub fn new(max_media: usize) -> Self {
        ChunkGuard {
            chunk_size: DEFAULT_CHUNK_SIZE,
            streams: HashMap::new(),
            header: Vec::with_capacity(18),
            state: State::Header,
            max_media,
            open: None,
        }
    }

    /// Reads `bytes` (the next input of the connection); an error ends the connection.
    pub fn check(&mut self, mut bytes: &[u8]) -> Result<(), GuardError> {
        while !bytes.is_empty() {
            match self.state {
                State::Header => {
                    let take = bytes.len().min(18 - self.header.len());
                    self.header.extend_from_slice(&bytes[..take]);
                    match self.parse_header()? {
                        Some(used) => {
                            // Bytes of `bytes` beyond the header go back to the input.
                            let extra = self.header.len() - used;
                            bytes = &bytes[take - extra..];
                            self.header.clear();
                        }
                        None => bytes = &bytes[take..],
                    }
                }
                State::Payload { csid, left } => {
                    let take = bytes.len().min(left);
                    self.payload(csid, &bytes[..take]);
                    bytes = &bytes[take..];
                    self.state = if take == left {
                        State::Header
                    } else {
                        State::Payload {
                            csid,
                            left: left - take,
                        }
                    };
                }
            }
        }
        Ok(())
    }

    /// Parses the buffered chunk header: `Some(its length)` once complete.
    fn parse_header(&mut self) -> Result<Option<usize>, GuardError> {
        if self.chunk_size == 0 {
            return Err(GuardError::Malformed("a chunk size of 0"));
        }
        let h = &self.header;
        let Some(&first) = h.first() else {
            return Ok(None);
        };
        let fmt = first >> 6;
        let (csid, mut at) = match first & 0x3f {
            0 => match h.get(1) {
                Some(&b) => (64 + u32::from(b), 2),
                None => return Ok(None),
            },
            1 => match (h.get(1), h.get(2)) {
                (Some(&b1), Some(&b2)) => (64 + u32::from(b1) + 256 * u32::from(b2), 3),
                _ => return Ok(None),
            },
            n => (u32::from(n), 1),
        };
        if let Some(open) = self.open {
            // Only the next chunk of the incomplete message may come.
            if fmt != 3 || csid != open {
                return Err(GuardError::Malformed("chunks of two messages interleaved"));
            }
        }
        let message_header = [11, 7, 3, 0][usize::from(fmt)];
        let Some(mh) = h.get(at..at + message_header) else {
            return Ok(None);
        };
        if !self.streams.contains_key(&csid) {
            if fmt >= 2 {
                // Nothing to take the message's length and type from.
                return Err(GuardError::Malformed(
                    "a new chunk stream without a length and a type",
                ));
            }
            if self.streams.len() == MAX_CHUNK_STREAMS {
                return Err(GuardError::Malformed("too many chunk streams"));
            }
        }
        let mut stream = self.streams.get(&csid).copied().unwrap_or_default();
        let timestamp_field = (fmt < 3).then(|| u32::from_be_bytes([0, mh[0], mh[1], mh[2]]));
        if fmt <= 1 {
            stream.length = usize::from(mh[3]) << 16 | usize::from(mh[4]) << 8 | usize::from(mh[5]);
            stream.kind = mh[6];
        }
        at += message_header;
        let extended = match timestamp_field {
            Some(t) => t == 0x00ff_ffff,
            None => stream.extended,
        };
        stream.extended = extended;
        if extended {
            if h.len() < at + 4 {
                return Ok(None);
            }
            at += 4;
        }
        if fmt < 3 || stream.remaining == 0 {
            // A new message starts on this chunk stream (type 3 continues one in progress).
            check_size(stream.kind, stream.length, self.max_media)?;
            stream.remaining = stream.length;
            stream.set_chunk_size = [0; 4];
        }
        let chunk = stream.remaining.min(self.chunk_size);
        self.open = (stream.remaining > chunk).then_some(csid);
        self.streams.insert(csid, stream);
        self.state = if chunk == 0 {
            State::Header
        } else {
            State::Payload { csid, left: chunk }
        };
        Ok(Some(at))
    }

    /// Takes payload bytes of chunk stream `csid` (only Set Chunk Size's are looked at).
    fn payload(&mut self, csid: u32, bytes: &[u8]) {
        let Some(stream) = self.streams.get_mut(&csid) else {
            return;
        };
        if stream.kind == 1 {
            let done = stream.length - stream.remaining;
            for (i, b) in bytes.iter().enumerate() {
                if let Some(slot) = stream.set_chunk_size.get_mut(done + i) {
                    *slot = *b;
                }
            }
        }
        stream.remaining -= bytes.len();
        if stream.remaining == 0 && stream.kind == 1 {
            let size = u32::from_be_bytes(stream.set_chunk_size) & 0x7fff_ffff;
            // 0 is refused at the next header (rml_rtmp would never finish a message again).
            self.chunk_size = size as usize;
        }
    }
}

/// The cap of a message of type `kind`.
fn check_size(kind: u8, len: usize, max_media: usize) -> Result<(), GuardError> {
    let limit = match kind {
        8 | 9 => max_media,
        15..=20 => MAX_AMF_MESSAGE,
        _ => MAX_CONTROL_MESSAGE,
    };
    if len > limit {
        return Err(GuardError::TooLarge { kind, len, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A type-0 chunk header on `csid` (< 64) for a message of `len` bytes of `kind`.
    fn header(csid: u8, len: usize, kind: u8) -> Vec<u8> {
        let mut h = vec![csid, 0, 0, 0];
        h.extend(&(len as u32).to_be_bytes()[1..]);
        h.push(kind);
        h.extend([1, 0, 0, 0]);
        h
    }

    #[test]
    fn a_real_ffmpeg_session_passes_whole_and_byte_by_byte() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fuzz/corpus/rtmp_ingest/ffmpeg-publish-first-24k"
        );
        let data = std::fs::read(path).expect("the seed corpus");
        ChunkGuard::new(8 << 20).check(&data).expect("whole");
        let mut guard = ChunkGuard::new(8 << 20);
        for b in &data {
            guard.check(std::slice::from_ref(b)).expect("byte by byte");
        }
    }

    #[test]
    fn large_amf_and_control_messages_are_refused_before_their_payload() {
        let mut guard = ChunkGuard::new(1 << 20);
        let err = guard.check(&header(3, 1 << 20, 20)).unwrap_err();
        assert!(
            matches!(err, GuardError::TooLarge { kind: 20, .. }),
            "{err}"
        );
        let mut guard = ChunkGuard::new(1 << 20);
        assert!(guard.check(&header(2, 1000, 4)).is_err());
        let mut guard = ChunkGuard::new(1 << 20);
        guard
            .check(&header(6, 1 << 20, 9))
            .expect("a video message under the cap");
        assert!(ChunkGuard::new(1000).check(&header(6, 1001, 9)).is_err());
    }

    #[test]
    fn chunk_sizes_and_continuations_are_followed() {
        let mut guard = ChunkGuard::new(1 << 20);
        // Set Chunk Size 4096, then a 300-byte command in one chunk, then a 5000-byte video
        // message in two chunks (a type 3 continuation).
        let mut input = header(2, 4, 1);
        input.extend(4096u32.to_be_bytes());
        input.extend(header(3, 300, 20));
        input.extend(vec![0u8; 300]);
        input.extend(header(6, 5000, 9));
        input.extend(vec![0u8; 4096]);
        input.push(0xc6); // type 3 on chunk stream 6
        input.extend(vec![0u8; 5000 - 4096]);
        // And a command over the cap on a stream that was used before (type 1 header).
        input.extend([0x43, 0, 0, 0]);
        input.extend(&((MAX_AMF_MESSAGE + 1) as u32).to_be_bytes()[1..]);
        input.push(20);
        let err = guard.check(&input).unwrap_err();
        assert!(
            matches!(err, GuardError::TooLarge { kind: 20, .. }),
            "{err}"
        );
        assert!(
            ChunkGuard::new(1 << 20).check(&[0xc5, 0, 0]).is_err(),
            "type 3 first"
        );
    }

    #[test]
    fn interleaved_messages_and_a_zero_chunk_size_are_refused() {
        // 128 bytes of a 200-byte video message, then a new header on the same chunk stream:
        // rml_rtmp would read the next bytes as the rest of the first message.
        let mut input = header(6, 200, 9);
        input.extend(vec![0u8; 128]);
        input.extend(header(6, 130, 9));
        let err = ChunkGuard::new(1 << 20).check(&input).unwrap_err();
        assert_eq!(
            err,
            GuardError::Malformed("chunks of two messages interleaved")
        );
        // … or a chunk of another chunk stream.
        let mut input = header(6, 200, 9);
        input.extend(vec![0u8; 128]);
        input.extend(header(4, 10, 9));
        assert!(ChunkGuard::new(1 << 20).check(&input).is_err());
        let mut input = header(2, 4, 1);
        input.extend(0u32.to_be_bytes());
        input.extend(header(3, 10, 20));
        let err = ChunkGuard::new(1 << 20).check(&input).unwrap_err();
        assert_eq!(err, GuardError::Malformed("a chunk size of 0"));
    }

    #[test]
    fn the_largest_amf_message_cannot_nest_deep_enough_to_overflow_a_worker_stack() {
        // Strict arrays of one element (5 bytes a level) and objects with a one-letter key (4
        // bytes a level) nested as deep as the cap allows, parsed by rml_amf0 on a thread with
        // half the stack the server's workers get (a margin of 2 in a debug build). Whether the
        // parse succeeds does not matter (the objects are never closed); that the thread
        // survives it does.
        for level in [&[0x0a, 0, 0, 0, 1][..], &[0x03, 0, 1, b'a'][..]] {
            let mut amf = Vec::with_capacity(MAX_AMF_MESSAGE);
            while amf.len() + level.len() < MAX_AMF_MESSAGE {
                amf.extend(level);
            }
            amf.push(0x05); // null
            std::thread::Builder::new()
                .stack_size(crate::WORKER_STACK_BYTES / 2)
                .spawn(move || rml_amf0::deserialize(&mut std::io::Cursor::new(amf)).is_ok())
                .expect("thread")
                .join()
                .expect("no stack overflow");
        }
    }
}
