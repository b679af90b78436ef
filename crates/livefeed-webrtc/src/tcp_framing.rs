//! RFC 4571 framing of ICE-TCP (RFC 6544): on a TCP connection each STUN, DTLS, RTP or RTCP
//! packet travels as a 16-bit big-endian length and then that many bytes. Sans-IO.
//!
//! Contract: [`FrameReader::push`] takes the bytes as they came off the connection, in any
//! split, and [`FrameReader::next_frame`] gives back each whole packet, in order; the result
//! is the same however the stream was split. A zero length is refused (no packet is empty):
//! the connection is then unusable, its peer is not speaking ICE-TCP. The reader never holds
//! more than one packet's worth (64 KiB) of bytes not yet given back, plus what one `push`
//! brought. [`frame`] writes a packet framed; packets over 65 535 bytes cannot be and are
//! refused.

use std::fmt;

/// The largest packet a frame can carry.
pub const MAX_FRAME: usize = u16::MAX as usize;

/// Why a connection's byte stream is not RFC 4571 frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroLengthFrame;

impl fmt::Display for ZeroLengthFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a zero-length RFC 4571 frame: not ICE-TCP")
    }
}

impl std::error::Error for ZeroLengthFrame {}

/// Splits one connection's bytes into packets.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
}

impl FrameReader {
    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > MAX_FRAME {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole packet, `Ok(None)` until one has fully arrived.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, ZeroLengthFrame> {
        let pending = &self.buf[self.start..];
        let [high, low, rest @ ..] = pending else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([*high, *low]));
        if len == 0 {
            return Err(ZeroLengthFrame);
        }
        if rest.len() < len {
            return Ok(None);
        }
        let begin = self.start + 2;
        self.start = begin + len;
        Ok(Some(&self.buf[begin..begin + len]))
    }
}

/// `packet` framed for a TCP connection: its length, then the packet; `None` when it is too
/// long (or empty) to frame.
pub fn frame(packet: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(packet.len()).ok().filter(|&l| l > 0)?;
    let mut framed = Vec::with_capacity(packet.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(packet);
    Some(framed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(reader: &mut FrameReader) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Ok(Some(f)) = reader.next_frame() {
            out.push(f.to_vec());
        }
        out
    }

    #[test]
    fn packets_come_back_whole_however_the_stream_is_split() {
        let packets: Vec<Vec<u8>> = vec![vec![1], vec![2; 300], vec![3; MAX_FRAME], vec![4, 5]];
        let stream: Vec<u8> = packets.iter().flat_map(|p| frame(p).unwrap()).collect();
        for chunk in [1, 2, 3, 7, 1000, stream.len()] {
            let mut reader = FrameReader::default();
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                reader.push(piece);
                got.extend(frames(&mut reader));
            }
            assert_eq!(got, packets, "split every {chunk} bytes");
        }
    }

    #[test]
    fn zero_length_is_refused_and_oversized_packets_cannot_be_framed() {
        let mut reader = FrameReader::default();
        reader.push(&[0, 0, 9]);
        assert_eq!(reader.next_frame(), Err(ZeroLengthFrame));
        assert_eq!(frame(&[]), None);
        assert_eq!(frame(&vec![0; MAX_FRAME + 1]), None);
        assert_eq!(frame(&[7, 8]), Some(vec![0, 2, 7, 8]));
    }

    #[test]
    fn consumed_bytes_are_let_go() {
        let mut reader = FrameReader::default();
        for _ in 0..1000 {
            reader.push(&frame(&[1; 1000]).unwrap()[..500]);
            assert!(frames(&mut reader).is_empty());
            reader.push(&frame(&[1; 1000]).unwrap()[500..]);
            assert_eq!(frames(&mut reader).len(), 1);
        }
        assert!(
            reader.buf.capacity() < 4 * MAX_FRAME,
            "{}",
            reader.buf.capacity()
        );
    }
}
