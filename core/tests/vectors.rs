//! The shared test vectors (computed with Perl and the original `Crypt::IDEA`, see
//! `tests/vectors/README.md`): every row of `keys.tsv` and `frames.tsv` must be matched
//! byte for byte.

use std::path::PathBuf;

use lonc_core::cipher::{Decoded, LinkCipher};
use lonc_core::key::{LinkKey, buildkey, key_string};

/// The rows of one vector file, header checked and dropped, each split at tabs.
fn rows(name: &str, header: &[&str]) -> Vec<Vec<String>> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("a header line").split('\t').collect();
    assert_eq!(head, header, "columns of {name}");
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let fields: Vec<String> = l.split('\t').map(str::to_owned).collect();
            assert_eq!(fields.len(), header.len(), "{name}: {l:?}");
            fields
        })
        .collect()
}

/// `\n` written as two characters back to LF.
fn unescape(s: &str) -> Vec<u8> {
    s.replace("\\n", "\n").into_bytes()
}

/// 32 hex digits (either case) as a key.
fn key_from_hex(hex: &str) -> LinkKey {
    assert_eq!(hex.len(), 32, "key {hex:?}");
    let mut key = [0u8; 16];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex key");
    }
    LinkKey(key)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn keys_tsv() {
    let rows = rows(
        "keys.tsv",
        &[
            "remote_id",
            "local_id",
            "buildkey_line_escaped",
            "key_string_escaped",
            "key_hex",
        ],
    );
    assert_eq!(rows.len(), 6, "rows in keys.tsv");
    for row in &rows {
        let [remote, local, line, s32, key_hex] = &row[..] else {
            unreachable!()
        };
        let line = unescape(line);
        assert_eq!(
            key_string(remote, local, &line),
            unescape(s32),
            "key string of {row:?}"
        );
        let key = buildkey(remote, local, &line);
        assert_eq!(
            to_hex(&key.0),
            key_hex.to_ascii_lowercase(),
            "key of {row:?}"
        );
        assert_eq!(key, key_from_hex(key_hex));
    }
}

#[test]
fn frames_tsv() {
    let rows = rows("frames.tsv", &["key_hex", "request", "wire_line"]);
    assert_eq!(rows.len(), 8, "rows in frames.tsv");
    for row in &rows {
        let [key_hex, request, wire] = &row[..] else {
            unreachable!()
        };
        let cipher = LinkCipher::new(&key_from_hex(key_hex));
        assert_eq!(
            String::from_utf8_lossy(&cipher.encrypt_line(request.as_bytes())),
            *wire,
            "encrypting {row:?}"
        );
        assert_eq!(
            cipher.decrypt_line(wire.as_bytes()),
            Ok(Decoded::Decrypted(request.as_bytes().to_vec())),
            "decrypting {row:?}"
        );
        let upper = format!("enc:{}", wire["enc:".len()..].to_ascii_uppercase());
        assert_eq!(
            cipher.decrypt_line(upper.as_bytes()),
            Ok(Decoded::Decrypted(request.as_bytes().to_vec())),
            "decrypting uppercase hex of {row:?}"
        );
    }
}
