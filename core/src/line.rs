//! Line framing: a bounded incremental decoder (bytes in any chunking -> LF-terminated
//! lines, treated as bytes, never as UTF-8) and the encoder that terminates a line.

use bytes::{Bytes, BytesMut};

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
    _buf: BytesMut,
    _max: usize,
}

impl LineDecoder {
    /// A decoder for lines of at most `max_line` bytes, LF not counted.
    pub fn new(max_line: usize) -> Self {
        todo!("{max_line}")
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        todo!("{data:?}")
    }

    /// The next complete line, LF included; `None` when no complete line is buffered;
    /// `Some(Err(_))` once (and forever after) a line exceeded the limit.
    pub fn next_line(&mut self) -> Option<Result<Bytes, LineTooLong>> {
        todo!()
    }

    /// How many bytes are buffered.
    pub fn buffered(&self) -> usize {
        todo!()
    }
}

/// `line` followed by one LF, as one buffer.
pub fn encode_line(line: &[u8]) -> Bytes {
    todo!("{line:?}")
}

/// `line` without one trailing LF, if it has one (Perl's `chomp`).
pub fn chomp(line: &[u8]) -> &[u8] {
    todo!("{line:?}")
}
