//! Delayed (critical) messages: which spool files belong to a peer and in what order, and
//! the `S` line appended to `lonnet.perm.log` once one is delivered.

/// A delivered delayed message, for `lonnet.perm.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermLogEntry {
    /// The peer's host id.
    pub peer: String,
    /// The request as read from the file (first line, LF removed).
    pub request: Vec<u8>,
}

impl PermLogEntry {
    /// `<epoch>:S:<peer>:<request>:<localtime>` plus LF; the runtime supplies the wall
    /// clock (`epoch` seconds and `localtime` like `Wed Mar 20 03:44:11 2002`).
    pub fn line(&self, epoch: u64, localtime: &str) -> Vec<u8> {
        let mut out = format!("{epoch}:S:{}:", self.peer).into_bytes();
        out.extend_from_slice(&self.request);
        out.extend_from_slice(format!(":{localtime}\n").as_bytes());
        out
    }
}

/// The names among `names` that are delayed messages for `peer_id`: those ending exactly
/// in `.<peer_id>`, with something before the dot, in name order (byte order).
pub fn files_for_peer(names: &[String], peer_id: &str) -> Vec<String> {
    let suffix = format!(".{peer_id}");
    let mut mine: Vec<String> = names
        .iter()
        .filter(|n| n.len() > suffix.len() && n.ends_with(&suffix))
        .cloned()
        .collect();
    mine.sort();
    mine.dedup();
    mine
}

/// Why a delayed file's content cannot be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DelayedProblem {
    /// The first line is empty.
    #[error("is empty")]
    Empty,
    /// The first line is longer than `loncMaxRequest`.
    #[error("has a first line longer than {0} bytes")]
    TooLong(usize),
}

/// The request of a delayed file: its first line, LF removed, at most `max` bytes. The
/// runtime may hand over only the start of a large file (up to `max + 1` bytes): a first
/// line with no LF within `max` bytes is too long, never cut.
pub fn request_of(content: &[u8], max: usize) -> Result<&[u8], DelayedProblem> {
    let first = match memchr::memchr(b'\n', content) {
        Some(end) => &content[..end],
        None => content,
    };
    if first.len() > max {
        Err(DelayedProblem::TooLong(max))
    } else if first.is_empty() {
        Err(DelayedProblem::Empty)
    } else {
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_only_exact_suffix_in_name_order() {
        let names: Vec<String> = [
            "3.1.9.put.msul1",
            "1.1.9.put.msul1",
            "2.1.9.put.msul10",
            "x.amsul1",
            ".msul1",
            "msul1",
            "2.1.9.put.msul1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            files_for_peer(&names, "msul1"),
            vec!["1.1.9.put.msul1", "2.1.9.put.msul1", "3.1.9.put.msul1"]
        );
    }

    #[test]
    fn request_is_the_first_line() {
        assert_eq!(request_of(b"put:a:b\nmore\n", 100), Ok(&b"put:a:b"[..]));
        assert_eq!(request_of(b"put:a:b", 100), Ok(&b"put:a:b"[..]));
        assert_eq!(request_of(b"put:a:b", 7), Ok(&b"put:a:b"[..]));
        assert_eq!(request_of(b"put:a:b", 6), Err(DelayedProblem::TooLong(6)));
        assert_eq!(
            request_of(b"put:a:bc\n", 7),
            Err(DelayedProblem::TooLong(7))
        );
        assert_eq!(request_of(b"\nput", 100), Err(DelayedProblem::Empty));
        assert_eq!(request_of(b"", 100), Err(DelayedProblem::Empty));
    }

    #[test]
    fn perm_log_line_format() {
        let e = PermLogEntry {
            peer: "msul1".into(),
            request: b"put:msu:x".to_vec(),
        };
        assert_eq!(
            e.line(1016600000, "Wed Mar 20 03:44:11 2002"),
            b"1016600000:S:msul1:put:msu:x:Wed Mar 20 03:44:11 2002\n".to_vec()
        );
    }

    proptest! {
        #[test]
        fn selection_is_sorted_and_suffixed(names in proptest::collection::vec("[a-z0-9.]{0,12}", 0..30), peer in "[a-z0-9]{1,5}") {
            let picked = files_for_peer(&names, &peer);
            let suffix = format!(".{peer}");
            prop_assert!(picked.windows(2).all(|w| w[0] < w[1]));
            for p in &picked {
                prop_assert!(p.ends_with(&suffix) && p.len() > suffix.len());
                prop_assert!(names.contains(p));
            }
            let expected = names.iter().filter(|n| n.ends_with(&suffix) && n.len() > suffix.len()).count();
            prop_assert!(picked.len() <= expected);
        }
    }
}
