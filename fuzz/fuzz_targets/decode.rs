//! bytes → `resp::Decoder::decode` with small limits: no panic, consumed ≤ input, and every
//! request obeys the limits.
//!
//! The first byte picks how the input is fed (all at once, or in chunks of 1..=16 bytes),
//! so the resumable scan state is exercised as well as the one-shot path.
#![no_main]

use baton::resp::{DecodeLimits, Decoder};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const LIMITS: DecodeLimits = DecodeLimits {
    max_bulk_bytes: 64,
    max_args: 8,
    max_inline_bytes: 128,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let chunk = if mode == 0 {
        input.len().max(1)
    } else {
        usize::from(mode % 16) + 1
    };

    let mut dec = Decoder::new(LIMITS);
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let mut consumed = 0;
    'feed: for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        loop {
            let before = buf.len();
            let result = dec.decode(&mut buf);
            // Whatever the outcome, bytes only ever leave the front of the buffer.
            assert!(buf.len() <= before, "decode grew the buffer");
            consumed += before - buf.len();
            match result {
                Ok(Some(req)) => {
                    assert!(!req.args.is_empty(), "empty request");
                    assert!(req.args.len() <= LIMITS.max_args, "too many args");
                    for arg in &req.args {
                        assert!(
                            arg.len() <= LIMITS.max_bulk_bytes,
                            "arg over max_bulk_bytes"
                        );
                    }
                    assert!(buf.len() < before, "a request consumed nothing");
                }
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
        assert!(consumed + buf.len() == fed, "bytes appeared or vanished");
    }
    assert!(consumed <= input.len());
});
