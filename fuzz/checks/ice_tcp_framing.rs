//! ICE-TCP framing (RFC 4571, bytes from any viewer's TCP connection): reading never panics,
//! and the packets (or the refusal of a zero-length frame) are the same whether the bytes come
//! whole or split at any point; every packet re-frames to the bytes it came from.
//!
//! Shared by the `ice_tcp_framing` fuzz target and the corpus replay test
//! (`crates/livefeed/tests/fuzz_corpus.rs`).

use livefeed_webrtc::tcp_framing::{frame, FrameReader};

/// Runs the check on one input; panics if an invariant does not hold.
pub fn check(data: &[u8]) {
    let whole = read(&[data]);
    let split = data.first().map_or(0, |&b| usize::from(b)) % (data.len() + 1);
    let (a, b) = data.split_at(split);
    assert_eq!(read(&[a, b]), whole, "split at {split}");
    let bytewise: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(read(&bytewise), whole, "byte by byte");
    let (packets, _) = whole;
    let reframed: Vec<u8> = packets
        .iter()
        .flat_map(|p| frame(p).expect("framable"))
        .collect();
    assert_eq!(&data[..reframed.len()], &reframed[..]);
}

/// The packets read from `pieces`, and whether a zero-length frame ended the stream.
fn read(pieces: &[&[u8]]) -> (Vec<Vec<u8>>, bool) {
    let mut reader = FrameReader::default();
    let mut packets = Vec::new();
    for piece in pieces {
        reader.push(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(packet)) => packets.push(packet.to_vec()),
                Ok(None) => break,
                Err(_) => return (packets, true),
            }
        }
    }
    (packets, false)
}
