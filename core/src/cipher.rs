//! IDEA on a link: the `encrypt:` request -> `enc:L:hex` transform with its extra-block
//! rule (PROTOCOL.md 6.2), and strict detection and decryption of `enc:` lines (6.3).
//! Both directions use the same format, so lond (see [`crate::lond`]) uses it too.

use idea::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use crate::key::LinkKey;

/// An `enc:` line that has the strict form but cannot be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    /// `L` is larger than the decrypted data.
    #[error("enc: length {declared} exceeds the {available} decrypted bytes")]
    LengthTooLarge {
        /// The `L` of the line.
        declared: u64,
        /// How many bytes the hex decrypted to.
        available: usize,
    },
}

/// What an incoming line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Not of the exact form `enc:<decimal L>:<hex, a multiple of 16 digits>`: pass it on
    /// verbatim.
    Plain,
    /// The decrypted payload, cut to `L` bytes (no LF).
    Decrypted(Vec<u8>),
}

/// IDEA in ECB mode with a link key.
pub struct LinkCipher {
    idea: idea::Idea,
}

impl std::fmt::Debug for LinkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkCipher(..)")
    }
}

/// The IDEA block size.
const BLOCK: usize = 8;
/// Lowercase hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";
/// A hex digit's value, or `INVALID`.
const UNHEX: [u8; 256] = {
    let mut t = [INVALID; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};
/// Marks a byte that is not a hex digit in `UNHEX`.
const INVALID: u8 = 0xFF;

/// The strict `enc:<digits>:<hex>` form, split up; `None` for anything else.
fn parse_enc(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = line.strip_prefix(b"enc:")?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let (digits, hex) = (&rest[..colon], &rest[colon + 1..]);
    let well_formed = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && hex.len() % (2 * BLOCK) == 0
        && hex.iter().all(|&b| UNHEX[usize::from(b)] != INVALID);
    well_formed.then_some((digits, hex))
}

/// Decimal digits as a number; `u64::MAX` if it does not fit.
fn parse_decimal(digits: &[u8]) -> u64 {
    digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX)
}

impl LinkCipher {
    /// A cipher for this key.
    pub fn new(key: &LinkKey) -> Self {
        LinkCipher {
            idea: idea::Idea::new(&Array::from(key.0)),
        }
    }

    /// `enc:<L>:<hex>` (no LF) for `payload` (the text after `encrypt:`): the payload plus
    /// 9 spaces, encrypted 8 bytes at a time for idx = 0, 8, .. while idx <= L.
    pub fn encrypt_line(&self, payload: &[u8]) -> Vec<u8> {
        let len = payload.len();
        let len_text = len.to_string();
        // `enc:`, L, `:`, then two hex digits per byte of len / 8 + 1 blocks.
        let mut out = Vec::with_capacity(5 + len_text.len() + (len / BLOCK + 1) * 2 * BLOCK);
        out.extend_from_slice(b"enc:");
        out.extend_from_slice(len_text.as_bytes());
        out.push(b':');
        // The last chunk is short (or empty when L is a multiple of 8): padding with
        // spaces is the same as reading on into the 9 spaces of Perl's `P . " " x 9`.
        let mut chunks = payload.chunks_exact(BLOCK);
        let tail = chunks.remainder();
        for chunk in chunks.by_ref().chain(std::iter::once(tail)) {
            let mut block = [b' '; BLOCK];
            block[..chunk.len()].copy_from_slice(chunk);
            let mut block = Array::from(block);
            self.idea.encrypt_block(&mut block);
            for &b in block.iter() {
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xF)]);
            }
        }
        out
    }

    /// Decrypts `line` (LF already removed) if it is exactly `enc:<L>:<hex>`.
    pub fn decrypt_line(&self, line: &[u8]) -> Result<Decoded, CipherError> {
        let Some((digits, hex)) = parse_enc(line) else {
            return Ok(Decoded::Plain);
        };
        let declared = parse_decimal(digits);
        let available = hex.len() / 2;
        let wanted = match usize::try_from(declared) {
            Ok(n) if n <= available => n,
            _ => {
                return Err(CipherError::LengthTooLarge {
                    declared,
                    available,
                });
            }
        };
        // Only the blocks that hold the first L bytes need decrypting.
        let blocks = wanted.div_ceil(BLOCK);
        let mut out = Vec::with_capacity(blocks * BLOCK);
        for digits in hex.chunks_exact(2 * BLOCK).take(blocks) {
            let mut block = [0u8; BLOCK];
            for (b, pair) in block.iter_mut().zip(digits.chunks_exact(2)) {
                *b = UNHEX[usize::from(pair[0])] << 4 | UNHEX[usize::from(pair[1])];
            }
            let mut block = Array::from(block);
            self.idea.decrypt_block(&mut block);
            out.extend_from_slice(&block);
        }
        out.truncate(wanted);
        Ok(Decoded::Decrypted(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cipher() -> LinkCipher {
        LinkCipher::new(&LinkKey(*b"0123456789abcdef"))
    }

    #[test]
    fn known_frames() {
        // Rows of vectors/frames.tsv, computed with Perl's Crypt::IDEA.
        let key = [
            0x62, 0x45, 0x16, 0x24, 0x52, 0x0A, 0x1B, 0x2C, 0x3D, 0x4E, 0x5F, 0x60, 0x70, 0x80,
            0x9A, 0x0B,
        ];
        let c = LinkCipher::new(&LinkKey(key));
        assert_eq!(c.encrypt_line(b""), b"enc:0:4a8d1fd8c2242f27");
        assert_eq!(c.encrypt_line(b"ping"), b"enc:4:a4eef17fabfd6ab0");
        assert_eq!(
            c.encrypt_line(b"userload"),
            b"enc:8:198aabab089236124a8d1fd8c2242f27"
        );
        assert_eq!(
            c.decrypt_line(b"enc:4:A4EEF17FABFD6AB0"),
            Ok(Decoded::Decrypted(b"ping".to_vec()))
        );
    }

    #[test]
    fn extra_block_when_length_is_a_multiple_of_eight() {
        let c = cipher();
        for (len, blocks) in [(0, 1), (1, 1), (7, 1), (8, 2), (9, 2), (16, 3), (17, 3)] {
            let line = c.encrypt_line(&vec![b'x'; len]);
            let prefix = format!("enc:{len}:");
            assert!(line.starts_with(prefix.as_bytes()));
            assert_eq!(line.len(), prefix.len() + 16 * blocks, "L = {len}");
        }
        // The padding is spaces: the extra block is 8 encrypted spaces.
        let spaces = c.encrypt_line(b"        ");
        assert_eq!(&spaces[6..22], &c.encrypt_line(b"")[6..22]);
        assert_eq!(&spaces[22..], &c.encrypt_line(b"")[6..]);
    }

    #[test]
    fn decrypt_keeps_trailing_spaces_within_l() {
        let c = cipher();
        let line = c.encrypt_line(b"a  ");
        assert_eq!(
            c.decrypt_line(&line),
            Ok(Decoded::Decrypted(b"a  ".to_vec()))
        );
        // A shorter L cuts, leading zeros are still decimal.
        let mut short = b"enc:001:".to_vec();
        short.extend_from_slice(&line[6..]);
        assert_eq!(
            c.decrypt_line(&short),
            Ok(Decoded::Decrypted(b"a".to_vec()))
        );
    }

    #[test]
    fn plain_lines() {
        let c = cipher();
        let block = "0011223344556677";
        for line in [
            "".to_string(),
            "ok".into(),
            "enc".into(),
            "enc:".into(),
            "enc::".into(),
            format!("enc::{block}"),
            "enc:0".into(),
            format!("enc:+1:{block}"),
            format!("enc:-1:{block}"),
            format!("enc: 1:{block}"),
            format!("enc:1:{block}0"),
            format!("enc:1:{}", &block[..15]),
            format!("enc:1:{}g", &block[..15]),
            format!("enc:1:{block} "),
            format!("enc:1:{block}\n"),
            format!("enc:1:{block}:"),
            format!("ENC:1:{block}"),
            format!(" enc:1:{block}"),
            format!("enc:1:0x{}", &block[..14]),
            format!("enc:1:1:{block}"),
        ] {
            assert_eq!(
                c.decrypt_line(line.as_bytes()),
                Ok(Decoded::Plain),
                "{line:?}"
            );
        }
    }

    #[test]
    fn empty_hex_is_strict_form() {
        let c = cipher();
        assert_eq!(
            c.decrypt_line(b"enc:0:"),
            Ok(Decoded::Decrypted(Vec::new()))
        );
        assert_eq!(
            c.decrypt_line(b"enc:1:"),
            Err(CipherError::LengthTooLarge {
                declared: 1,
                available: 0
            })
        );
    }

    #[test]
    fn length_too_large() {
        let c = cipher();
        let line = c.encrypt_line(b"ping");
        let mut long = b"enc:9:".to_vec();
        long.extend_from_slice(&line[6..]);
        assert_eq!(
            c.decrypt_line(&long),
            Err(CipherError::LengthTooLarge {
                declared: 9,
                available: 8
            })
        );
        let mut exact = b"enc:8:".to_vec();
        exact.extend_from_slice(&line[6..]);
        assert_eq!(
            c.decrypt_line(&exact),
            Ok(Decoded::Decrypted(b"ping    ".to_vec()))
        );
        for (digits, declared) in [
            ("18446744073709551615", u64::MAX),
            ("18446744073709551616", u64::MAX),
            ("99999999999999999999999999999999", u64::MAX),
            ("18446744073709551614", u64::MAX - 1),
        ] {
            let line = format!("enc:{digits}:0011223344556677");
            assert_eq!(
                c.decrypt_line(line.as_bytes()),
                Err(CipherError::LengthTooLarge {
                    declared,
                    available: 8
                })
            );
        }
    }

    #[test]
    fn a_byte_is_a_hex_digit_only_if_it_is_one() {
        let c = cipher();
        for b in 0..=u8::MAX {
            let mut line = b"enc:0:000000000000000".to_vec();
            line.push(b);
            let decrypted = matches!(c.decrypt_line(&line), Ok(Decoded::Decrypted(_)));
            assert_eq!(decrypted, b.is_ascii_hexdigit(), "byte {b:#04x}");
        }
    }

    #[test]
    fn hex_is_lowercase_and_decrypt_accepts_either_case() {
        let c = cipher();
        let line = c.encrypt_line(b"Hello, lond!");
        let hex = &line[7..];
        assert!(
            hex.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
        );
        let upper = line.to_ascii_uppercase();
        let upper = [&b"enc:"[..], &upper[4..]].concat();
        assert_eq!(
            c.decrypt_line(&upper),
            Ok(Decoded::Decrypted(b"Hello, lond!".to_vec()))
        );
        assert_eq!(format!("{c:?}"), "LinkCipher(..)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn encrypt_then_decrypt_round_trips(
            key in any::<[u8; 16]>(),
            payload in prop::collection::vec(any::<u8>().prop_filter("no LF", |&b| b != b'\n'), 0..4096),
        ) {
            let c = LinkCipher::new(&LinkKey(key));
            let line = c.encrypt_line(&payload);
            prop_assert!(!line.contains(&b'\n'));
            let expected = format!("enc:{}:", payload.len());
            prop_assert!(line.starts_with(expected.as_bytes()));
            prop_assert_eq!((line.len() - expected.len()) / 16, payload.len() / 8 + 1);
            prop_assert_eq!(c.decrypt_line(&line), Ok(Decoded::Decrypted(payload)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn decrypt_never_panics(line in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = cipher().decrypt_line(&line);
        }

        #[test]
        fn decrypt_never_panics_on_near_misses(
            digits in "[0-9]{0,25}",
            sep in prop::sample::select(vec![":", "", "::", " :"]),
            hex in "[0-9a-fA-FgG ]{0,70}",
        ) {
            let line = format!("enc:{digits}{sep}{hex}");
            let got = cipher().decrypt_line(line.as_bytes());
            let strict = !digits.is_empty()
                && sep == ":"
                && hex.len() % 16 == 0
                && hex.bytes().all(|b| b.is_ascii_hexdigit());
            match got {
                Ok(Decoded::Plain) => prop_assert!(!strict),
                Ok(Decoded::Decrypted(d)) => {
                    prop_assert!(strict);
                    prop_assert_eq!(d.len() as u64, digits.parse::<u64>().unwrap());
                }
                Err(CipherError::LengthTooLarge { declared, available }) => {
                    prop_assert!(strict);
                    prop_assert_eq!(available, hex.len() / 2);
                    prop_assert!(declared > available as u64);
                }
            }
        }
    }
}
