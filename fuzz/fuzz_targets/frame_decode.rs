//! Arbitrary bytes, cut into arbitrary chunks, through `FrameReader`, and every
//! accepted frame through `decode`.
//!
//! Input layout: byte 0 picks the receive limit (bits 0-1) and the chunking
//! (bits 2-7, seed of a small PRNG for the chunk sizes); the rest is the stream as
//! a peer would send it. Checks, besides "no panic": `feed` never reports more
//! bytes than it was given, always makes progress, consumes everything when it
//! returns no frame, and hands out frames that are well formed and within the
//! limit; whatever decodes re-encodes to the same message; the echo reply differs
//! from the request only in its type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qnetd::wire::{decode, echo_reply, Frame, FrameReader, MsgType, HEADER_LEN};

const LIMITS: [usize; 4] = [16, 64, 1024, 32768];
const MAX_CHUNKS: [usize; 8] = [1, 2, 3, 5, 8, 64, 4096, usize::MAX];

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else { return };
    let limit = LIMITS[usize::from(ctl & 3)];
    let max_chunk = MAX_CHUNKS[usize::from((ctl >> 2) & 7)];
    let mut rng = (u32::from(ctl) + 1).wrapping_mul(0x9e37_79b9) | 1;
    let mut next_chunk = move || {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        1 + (rng as usize) % max_chunk.min(stream.len().max(1))
    };

    let mut reader = FrameReader::new(limit);
    let mut pos = 0;
    while pos < stream.len() {
        let end = pos.saturating_add(next_chunk()).min(stream.len());
        let mut chunk = &stream[pos..end];
        while !chunk.is_empty() {
            let (used, frame) = reader.feed(chunk);
            assert!(used <= chunk.len(), "consumed {used} of {}", chunk.len());
            assert!(used > 0, "no progress on {} bytes", chunk.len());
            match frame {
                None => assert_eq!(used, chunk.len(), "stopped early without a frame"),
                Some(frame) => {
                    assert!(reader.is_idle());
                    check_frame(&frame, limit);
                }
            }
            chunk = &chunk[used..];
            pos += used;
        }
    }
});

fn check_frame(frame: &Frame, limit: usize) {
    let Frame::Message { msg_type, raw } = frame else { return };
    assert!(raw.len() >= HEADER_LEN && raw.len() <= limit);
    assert_eq!(u16::from_be_bytes([raw[0], raw[1]]), *msg_type as u16);
    let len = u32::from_be_bytes([raw[2], raw[3], raw[4], raw[5]]) as usize;
    assert_eq!(len, raw.len() - HEADER_LEN);

    let echo = echo_reply(raw);
    assert_eq!(&echo[..2], &(MsgType::EchoReply as u16).to_be_bytes());
    assert_eq!(&echo[2..], &raw[2..]);

    if let Ok(msg) = decode(*msg_type, frame.body()) {
        assert_eq!(msg.msg_type, *msg_type);
        let again = msg.encode();
        // A message made only of unknown options re-encodes to an empty body,
        // which is (rightly) undecodable; everything else must round-trip.
        if again.len() > HEADER_LEN {
            let back = decode(*msg_type, &again[HEADER_LEN..]);
            assert_eq!(back.as_ref(), Ok(&msg));
        }
    }
}
