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

/// The nibble Perl's `pack("H")` takes from one character.
fn nibble(c: u8) -> u8 {
    if c.is_ascii_alphabetic() {
        ((c & 0xF) + 9) & 0xF
    } else {
        c & 0xF
    }
}

/// Packs `s` into `out`, two characters a byte, missing characters as zero nibbles.
fn pack_into(s: &[u8], out: &mut [u8]) {
    let mut pairs = s.chunks(2);
    for byte in out.iter_mut() {
        *byte = match pairs.next() {
            Some([hi, lo]) => nibble(*hi) << 4 | nibble(*lo),
            Some([hi]) => nibble(*hi) << 4,
            _ => 0,
        };
    }
}

/// Perl's `pack("H<2*n>", s)`: characters pair up into `n` bytes, high nibble first;
/// a letter's nibble is `((c & 0xF) + 9) & 0xF`, any other byte's `c & 0xF`; missing
/// characters count as zero nibbles, extra ones are ignored.
pub fn perl_pack_h(s: &[u8], n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    pack_into(s, &mut out);
    out
}

/// The length of S32.
const KEY_STRING_LEN: usize = 32;

/// S32 of section 5: `K.B.K.B.K.B` cut to 32 characters, where `K` is
/// `uppercase(peer_id . own_id)` with G..P and Q..Z turned into digits and `B` is the
/// buildkey line as read from lond, LF included.
pub fn key_string(peer_id: &str, own_id: &str, buildkey_line: &[u8]) -> Vec<u8> {
    let k: Vec<u8> = peer_id
        .bytes()
        .chain(own_id.bytes())
        .map(|c| match c.to_ascii_uppercase() {
            c @ b'G'..=b'P' => b'0' + (c - b'G'),
            c @ b'Q'..=b'Z' => b'0' + (c - b'Q'),
            c => c,
        })
        .collect();
    let mut s = Vec::with_capacity(KEY_STRING_LEN);
    for part in [&k[..], buildkey_line].into_iter().cycle().take(6) {
        let room = KEY_STRING_LEN - s.len();
        s.extend_from_slice(&part[..part.len().min(room)]);
    }
    s
}

/// The link key: `perl_pack_h(key_string(..), 16)`. `peer_id` is the lond side.
pub fn buildkey(peer_id: &str, own_id: &str, buildkey_line: &[u8]) -> LinkKey {
    let mut key = [0; 16];
    pack_into(&key_string(peer_id, own_id, buildkey_line), &mut key);
    LinkKey(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Perl's `pack("H")`, written out the slow, obvious way.
    fn reference_pack(s: &[u8], n: usize) -> Vec<u8> {
        let mut nibbles = Vec::new();
        for i in 0..2 * n {
            let v = match s.get(i) {
                None => 0,
                Some(&c) if c.is_ascii_uppercase() || c.is_ascii_lowercase() => ((c % 16) + 9) % 16,
                Some(&c) => c % 16,
            };
            nibbles.push(v);
        }
        (0..n)
            .map(|i| nibbles[2 * i] * 16 + nibbles[2 * i + 1])
            .collect()
    }

    #[test]
    fn pack_hex_digits_and_letters() {
        assert_eq!(
            perl_pack_h(b"0123456789abcdef", 8),
            [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        assert_eq!(perl_pack_h(b"ABCDEF", 3), [0xab, 0xcd, 0xef]);
        // LF -> a, '-' -> d, '.' -> e, '_' -> f; letters beyond F wrap.
        assert_eq!(perl_pack_h(b"\n-._", 2), [0xad, 0xef]);
        assert_eq!(perl_pack_h(b"GZgz", 2), [0x03, 0x03]);
    }

    #[test]
    fn pack_pads_and_truncates() {
        assert_eq!(perl_pack_h(b"abc", 3), [0xab, 0xc0, 0x00]);
        assert_eq!(perl_pack_h(b"abcdef", 1), [0xab]);
        assert_eq!(perl_pack_h(b"", 2), [0, 0]);
        assert!(perl_pack_h(b"ab", 0).is_empty());
    }

    #[test]
    fn key_string_of_the_protocol_example() {
        assert_eq!(
            key_string("msul2", "msul1", b"12345ABC0789\n"),
            b"624526245112345ABC0789\n624526245"
        );
        assert_eq!(
            key_string("s1", "s2", b"9\n"),
            b"21229\n21229\n21229\n".to_vec()
        );
    }

    #[test]
    fn key_string_maps_letters_after_uppercasing() {
        // g..p and q..z map like G..P and Q..Z; A..F and other bytes stay.
        assert_eq!(key_string("ghijklmnop", "", b""), b"0123456789".repeat(3));
        assert_eq!(
            key_string("QRSTUVWXYZ", "", b""),
            b"0123456789".repeat(3)[..30]
        );
        assert_eq!(key_string("aF_-.", "", b""), b"AF_-.".repeat(3));
        assert!(key_string("", "", b"").is_empty());
        assert_eq!(
            key_string("", "", b"x".repeat(40).as_slice()),
            b"x".repeat(32)
        );
    }

    #[test]
    fn buildkey_packs_the_key_string() {
        let key = buildkey("msul2", "msul1", b"12345ABC0789\n");
        assert_eq!(
            key.0.to_vec(),
            perl_pack_h(b"624526245112345ABC0789\n624526245", 16)
        );
        assert_eq!(format!("{key:?}"), "LinkKey(..)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn pack_matches_reference(s in prop::collection::vec(any::<u8>(), 0..80), n in 0usize..48) {
            prop_assert_eq!(perl_pack_h(&s, n), reference_pack(&s, n));
        }

        #[test]
        fn key_string_is_a_prefix_of_the_repetition(
            peer in "[ -~]{0,12}",
            own in "[ -~]{0,12}",
            line in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let s = key_string(&peer, &own, &line);
            let k: Vec<u8> = format!("{peer}{own}")
                .to_ascii_uppercase()
                .bytes()
                .map(|c| if (b'G'..=b'P').contains(&c) { c - b'G' + b'0' }
                     else if (b'Q'..=b'Z').contains(&c) { c - b'Q' + b'0' }
                     else { c })
                .collect();
            let mut full = Vec::new();
            for _ in 0..3 {
                full.extend_from_slice(&k);
                full.extend_from_slice(&line);
            }
            full.truncate(32);
            prop_assert_eq!(&s, &full);
            prop_assert_eq!(buildkey(&peer, &own, &line).0.to_vec(), reference_pack(&s, 16));
        }
    }
}
