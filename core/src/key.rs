//! The cipher key of a link: Perl's `pack("H32", ...)` and the classic buildkey
//! derivation of PROTOCOL.md section 5, byte for byte as the original Perl does it.

/// The 16-byte IDEA key of one TCP connection.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey(pub [u8; 16]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// Perl's `pack("H<2*n>", s)`: characters pair up into `n` bytes, high nibble first;
/// a letter's nibble is `((c & 0xF) + 9) & 0xF`, any other byte's `c & 0xF`; missing
/// characters count as zero nibbles, extra ones are ignored.
pub fn perl_pack_h(s: &[u8], n: usize) -> Vec<u8> {
    todo!("{s:?}{n}")
}

/// S32 of section 5: `K.B.K.B.K.B` cut to 32 characters, where `K` is
/// `uppercase(peer_id . own_id)` with G..P and Q..Z turned into digits and `B` is the
/// buildkey line as read from lond, LF included.
pub fn key_string(peer_id: &str, own_id: &str, buildkey_line: &[u8]) -> Vec<u8> {
    todo!("{peer_id}{own_id}{buildkey_line:?}")
}

/// The link key: `perl_pack_h(key_string(..), 16)`. `peer_id` is the lond side.
pub fn buildkey(peer_id: &str, own_id: &str, buildkey_line: &[u8]) -> LinkKey {
    todo!("{peer_id}{own_id}{buildkey_line:?}")
}
