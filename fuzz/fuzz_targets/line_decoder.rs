//! Fuzz target: the bounded line decoder, fed arbitrary bytes in arbitrary chunks, never
//! panics, never buffers past its limit, and gives the same lines as a one-shot split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lonc_core::line::LineDecoder;

fuzz_target!(|input: (u8, Vec<u8>, Vec<u8>)| {
    let (limit, data, cuts) = input;
    let limit = usize::from(limit);
    let mut chunked = LineDecoder::new(limit);
    let mut got = Vec::new();
    let mut failed = false;
    let mut rest = &data[..];
    for cut in cuts.iter().chain(std::iter::once(&u8::MAX)) {
        let n = (usize::from(*cut) % 17).min(rest.len());
        let n = if *cut == u8::MAX { rest.len() } else { n };
        chunked.push(&rest[..n]);
        rest = &rest[n..];
        while !failed && let Some(line) = chunked.next_line() {
            failed = line.is_err();
            got.push(line.map(|b| b.to_vec()));
        }
        assert!(chunked.buffered() <= limit);
    }
    let mut whole = LineDecoder::new(limit);
    whole.push(&data);
    let mut want = Vec::new();
    while let Some(line) = whole.next_line() {
        let failed = line.is_err();
        want.push(line.map(|b| b.to_vec()));
        if failed {
            break;
        }
    }
    assert_eq!(got, want);
});
