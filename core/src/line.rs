//! Line framing: a bounded incremental decoder (bytes in any chunking -> LF-terminated
//! lines, treated as bytes, never as UTF-8) and the encoder that terminates a line.

use bytes::{BufMut, Bytes, BytesMut};

/// A line grew past the decoder's limit before its LF arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("line longer than {limit} bytes")]
pub struct LineTooLong {
    /// The limit that was exceeded (bytes, LF not counted).
    pub limit: usize,
}

/// Splits a byte stream into lines of at most `max_line` bytes (LF not counted).
///
/// Feed bytes with [`LineDecoder::push`], then drain [`LineDecoder::next_line`] until it
/// returns `None`. After draining, at most `max_line` bytes stay buffered. Once a line is
/// too long the decoder is failed for good: complete lines before the long one are still
/// returned, then `Err(LineTooLong)` forever, and later input is dropped.
#[derive(Debug)]
pub struct LineDecoder {
    /// Received bytes; always starts at the beginning of a line.
    buf: BytesMut,
    /// The limit, LF not counted.
    max: usize,
    /// How many bytes at the front of `buf` are known to hold no LF.
    scanned: usize,
    /// A line exceeded the limit; `buf` is empty and stays so.
    failed: bool,
}

impl LineDecoder {
    /// A decoder for lines of at most `max_line` bytes, LF not counted.
    pub fn new(max_line: usize) -> Self {
        LineDecoder {
            buf: BytesMut::new(),
            max: max_line,
            scanned: 0,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// The next complete line, LF included; `None` when no complete line is buffered;
    /// `Some(Err(_))` once (and forever after) a line exceeded the limit.
    pub fn next_line(&mut self) -> Option<Result<Bytes, LineTooLong>> {
        if self.failed {
            return Some(Err(LineTooLong { limit: self.max }));
        }
        // A line may hold at most `max` bytes before its LF, so the LF can only be among
        // the first `max + 1` bytes; nothing beyond that window needs scanning.
        let window = self.buf.len().min(self.max.saturating_add(1));
        if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..window]) {
            let end = self.scanned + i + 1;
            self.scanned = 0;
            return Some(Ok(self.buf.split_to(end).freeze()));
        }
        if self.buf.len() > self.max {
            // More than `max` bytes and no LF among them: too long, for good.
            self.failed = true;
            self.scanned = 0;
            self.buf = BytesMut::new();
            return Some(Err(LineTooLong { limit: self.max }));
        }
        self.scanned = window;
        None
    }

    /// Changes the limit for the line being decoded and every later one (a link's
    /// handshake lines are held to a tight bound, its replies to a large one). Bytes
    /// already buffered are kept; a failed decoder stays failed.
    pub fn set_max_line(&mut self, max_line: usize) {
        self.max = max_line;
        self.scanned = self.scanned.min(max_line);
    }

    /// How many bytes are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// `line` followed by one LF, as one buffer.
pub fn encode_line(line: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(line.len() + 1);
    out.extend_from_slice(line);
    out.put_u8(b'\n');
    out.freeze()
}

/// `line` without one trailing LF, if it has one (Perl's `chomp`).
pub fn chomp(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_limit_can_be_raised_for_later_lines() {
        let mut d = LineDecoder::new(4);
        d.push(b"ok\nlong");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"ok\n"))));
        assert_eq!(d.next_line(), None);
        d.set_max_line(100);
        d.push(b"er line\n");
        assert_eq!(
            d.next_line(),
            Some(Ok(Bytes::from_static(b"longer line\n")))
        );
        d.set_max_line(2);
        d.push(b"abc");
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 2 })));
    }

    fn drain(d: &mut LineDecoder, out: &mut Vec<Result<Vec<u8>, LineTooLong>>) {
        if matches!(out.last(), Some(Err(_))) {
            // Already failed: later input is dropped and the error stays.
            assert_eq!(d.buffered(), 0);
            assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: d.max })));
            return;
        }
        while let Some(r) = d.next_line() {
            // Every line ends with its LF: a decoder that returned less would be asked
            // again and again for the same bytes.
            assert!(r.as_ref().map_or(true, |l| l.ends_with(b"\n")), "{r:?}");
            let failed = r.is_err();
            out.push(r.map(|b| b.to_vec()));
            if failed {
                // Failed for good: it must keep saying so.
                assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: d.max })));
                assert_eq!(d.buffered(), 0);
                return;
            }
        }
        assert!(d.buffered() <= d.max);
    }

    /// The obvious reference: split the whole stream at once.
    fn reference(data: &[u8], max: usize) -> Vec<Result<Vec<u8>, LineTooLong>> {
        let mut out = Vec::new();
        let mut rest = data;
        loop {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) if i <= max => {
                    out.push(Ok(rest[..=i].to_vec()));
                    rest = &rest[i + 1..];
                }
                Some(_) => {
                    out.push(Err(LineTooLong { limit: max }));
                    return out;
                }
                None => {
                    if rest.len() > max {
                        out.push(Err(LineTooLong { limit: max }));
                    }
                    return out;
                }
            }
        }
    }

    fn chunked(data: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Vec<u8>, LineTooLong>> {
        let mut d = LineDecoder::new(max);
        let mut out = Vec::new();
        let mut start = 0;
        for &c in cuts {
            let end = (start + c).min(data.len());
            d.push(&data[start..end]);
            drain(&mut d, &mut out);
            start = end;
        }
        d.push(&data[start..]);
        drain(&mut d, &mut out);
        out
    }

    #[test]
    fn splits_lines_keeping_lf() {
        let mut d = LineDecoder::new(10);
        d.push(b"ab\ncd\n\nef");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"ab\n"))));
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"cd\n"))));
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"\n"))));
        assert_eq!(d.next_line(), None);
        assert_eq!(d.buffered(), 2);
        d.push(b"gh\r\n");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"efgh\r\n"))));
        assert_eq!(d.next_line(), None);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn lines_are_bytes_not_utf8() {
        let mut d = LineDecoder::new(8);
        d.push(b"\xff\xfe\x00\x80\n");
        assert_eq!(
            d.next_line(),
            Some(Ok(Bytes::from_static(b"\xff\xfe\x00\x80\n")))
        );
    }

    #[test]
    fn exactly_max_is_accepted() {
        let mut d = LineDecoder::new(4);
        d.push(b"abcd");
        assert_eq!(d.next_line(), None);
        assert_eq!(d.buffered(), 4);
        d.push(b"\nxyzw\n");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"abcd\n"))));
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"xyzw\n"))));
        assert_eq!(d.next_line(), None);
    }

    #[test]
    fn too_long_is_detected_before_the_lf() {
        let mut d = LineDecoder::new(4);
        d.push(b"ok\nabcde");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"ok\n"))));
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 4 })));
        assert_eq!(d.buffered(), 0);
        d.push(b"\nfine\n");
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 4 })));
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 4 })));
    }

    #[test]
    fn too_long_with_lf_in_the_same_chunk() {
        let mut d = LineDecoder::new(3);
        d.push(b"a\nabcd\nb\n");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"a\n"))));
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 3 })));
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 3 })));
    }

    #[test]
    fn zero_limit_allows_only_empty_lines() {
        let mut d = LineDecoder::new(0);
        d.push(b"\n\n");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"\n"))));
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"\n"))));
        assert_eq!(d.next_line(), None);
        d.push(b"x");
        assert_eq!(d.next_line(), Some(Err(LineTooLong { limit: 0 })));
    }

    #[test]
    fn huge_limit_does_not_overflow() {
        let mut d = LineDecoder::new(usize::MAX);
        d.push(b"abc");
        assert_eq!(d.next_line(), None);
        d.push(b"\n");
        assert_eq!(d.next_line(), Some(Ok(Bytes::from_static(b"abc\n"))));
    }

    #[test]
    fn encode_and_chomp() {
        assert_eq!(&encode_line(b"ping")[..], b"ping\n");
        assert_eq!(&encode_line(b"")[..], b"\n");
        assert_eq!(chomp(b"ping\n"), b"ping");
        assert_eq!(chomp(b"ping\n\n"), b"ping\n");
        assert_eq!(chomp(b"ping"), b"ping");
        assert_eq!(chomp(b"ping\r\n"), b"ping\r");
        assert_eq!(chomp(b""), b"");
        assert_eq!(chomp(b"\n"), b"");
    }

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        // Mostly short lines, with LF common enough to matter.
        prop::collection::vec(
            prop_oneof![3 => Just(b'\n'), 10 => any::<u8>(), 5 => Just(b'a')],
            0..200,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_chunking_matches_one_shot_split(
            data in stream(),
            cuts in prop::collection::vec(0usize..20, 0..40),
            max in 0usize..24,
        ) {
            prop_assert_eq!(chunked(&data, &cuts, max), reference(&data, max));
            prop_assert_eq!(chunked(&data, &[], max), reference(&data, max));
            let ones = vec![1; data.len()];
            prop_assert_eq!(chunked(&data, &ones, max), reference(&data, max));
        }

        #[test]
        fn buffered_never_exceeds_limit_after_draining(
            chunks in prop::collection::vec(stream(), 0..10),
            max in 0usize..24,
        ) {
            let mut d = LineDecoder::new(max);
            for c in &chunks {
                d.push(c);
                while let Some(r) = d.next_line() {
                    match r {
                        Ok(line) => prop_assert!(line.ends_with(b"\n")),
                        Err(_) => break,
                    }
                }
                prop_assert!(d.buffered() <= max);
            }
        }

        #[test]
        fn chomp_undoes_encode(line in prop::collection::vec(any::<u8>(), 0..64)) {
            let encoded = encode_line(&line);
            prop_assert_eq!(chomp(&encoded), &line[..]);
        }
    }
}
