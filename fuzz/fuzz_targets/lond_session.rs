//! Fuzz target: the lond responder driven by a lonc side that is well-formed most of the
//! time (the handshake done up to a chosen step, requests plain and `enc:` under the right
//! key, `pong`, `ekey`, stray lines, over-long lines, raw bytes) and an application that
//! answers in any order, plain or encrypted. `lonc_fuzz::lond_model` checks every event:
//! the handshake answers, one reply per line in order, requests handed over decrypted,
//! encrypted replies that decrypt to what was said, nothing after `Close`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lonc_fuzz::lond_model::{LondHarness, MAX_LINE};

/// What lonc or the application does next.
#[derive(Debug, Arbitrary)]
enum Op {
    Init,
    Echo,
    Pong,
    Ekey,
    Plain(Vec<u8>),
    Encrypted(Vec<u8>),
    TooLong,
    Raw(Vec<u8>),
    Answer { pick: u8, data: Vec<u8>, enc: bool },
    Close,
}

fuzz_target!(|input: (bool, u8, u8, Vec<Op>)| {
    let (refuse, steps, chunk, ops) = input;
    let chunk = usize::from(chunk % 8);
    let mut lond = LondHarness::new(refuse && steps % 16 == 0);
    lond.handshake(steps % 5);
    for op in ops {
        match op {
            Op::Init => lond.send_line(b"init", chunk),
            Op::Echo => lond.send_line(b"123451016600000", chunk),
            Op::Pong => lond.send_line(b"pong", chunk),
            Op::Ekey => lond.send_line(b"ekey", chunk),
            Op::Plain(line) => lond.send_line(&line, chunk),
            Op::Encrypted(payload) => {
                lond.send_encrypted(&payload[..payload.len().min(200)], chunk)
            }
            Op::TooLong => lond.send_line(&[b'z'; MAX_LINE + 1], chunk),
            Op::Raw(bytes) => lond.send_raw(&bytes),
            Op::Answer { pick, data, enc } => lond.answer(pick, &data, enc),
            Op::Close => lond.close(),
        }
    }
});
