//! IDEA on a link: the `encrypt:` request -> `enc:L:hex` transform with its extra-block
//! rule (PROTOCOL.md 6.2), and strict detection and decryption of `enc:` lines (6.3).
//! Both directions use the same format, so lond (see [`crate::lond`]) uses it too.

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
    _idea: idea::Idea,
}

impl std::fmt::Debug for LinkCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkCipher(..)")
    }
}

impl LinkCipher {
    /// A cipher for this key.
    pub fn new(key: &LinkKey) -> Self {
        todo!("{key:?}")
    }

    /// `enc:<L>:<hex>` (no LF) for `payload` (the text after `encrypt:`): the payload plus
    /// 9 spaces, encrypted 8 bytes at a time for idx = 0, 8, .. while idx <= L.
    pub fn encrypt_line(&self, payload: &[u8]) -> Vec<u8> {
        todo!("{payload:?}")
    }

    /// Decrypts `line` (LF already removed) if it is exactly `enc:<L>:<hex>`.
    pub fn decrypt_line(&self, line: &[u8]) -> Result<Decoded, CipherError> {
        todo!("{line:?}")
    }
}
