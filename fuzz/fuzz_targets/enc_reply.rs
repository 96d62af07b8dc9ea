//! Fuzz target: `enc:` detection and decryption of arbitrary reply lines never panics, and
//! what is decrypted is never longer than the hex it came from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lonc_core::cipher::{Decoded, LinkCipher};
use lonc_core::key::buildkey;

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (buildkey_line, line) = input;
    let cipher = LinkCipher::new(&buildkey("peer", "own", &buildkey_line));
    if let Ok(Decoded::Decrypted(plain)) = cipher.decrypt_line(&line) {
        assert!(plain.len() * 2 <= line.len());
    }
    let wire = cipher.encrypt_line(&line);
    if !line.contains(&b'\n') {
        assert_eq!(cipher.decrypt_line(&wire), Ok(Decoded::Decrypted(line)));
    }
});
