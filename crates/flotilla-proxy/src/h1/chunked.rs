//! Where a chunked message body (RFC 9112 §7.1) ends, found while its bytes
//! are forwarded untouched: the fast path relays chunk framing as it came
//! rather than decoding and re-encoding it, but must know where one
//! response ends and the next begins on a keep-alive connection.
//!
//! Written by hand: httparse's `parse_chunk_size` needs a whole size line in
//! one buffer, while here a line may be split across reads, and the
//! trailer section needs tracking too.

/// Bytes of trailer section accepted after the last chunk; more is treated
/// as a broken response rather than buffered forever.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In a chunk-size line: the size so far, whether a digit was seen,
    /// whether the rest of the line is an extension (skipped).
    Size {
        size: u64,
        digits: bool,
        ext: bool,
    },
    /// After the size line's CR.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data: bytes left.
    Data(u64),
    /// After chunk data: its CRLF.
    DataCr,
    DataLf,
    /// After the last chunk: at the start of a trailer line (or of the
    /// final empty line).
    LineStart,
    /// Inside a trailer field line.
    Line,
    LineLf,
    /// The final empty line's LF.
    EndLf,
    Done,
}

/// Follows one chunked body through `feed`.
#[derive(Debug)]
pub(crate) struct ChunkedEnd {
    state: State,
    trailer_bytes: usize,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        ChunkedEnd {
            state: State::Size {
                size: 0,
                digits: false,
                ext: false,
            },
            trailer_bytes: 0,
        }
    }
}

/// A chunked body that does not follow the grammar.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadChunk(pub &'static str);

impl ChunkedEnd {
    /// Takes the body's next bytes: `Some(n)` when the body ends after the
    /// first `n` of them (the rest belongs to whatever follows), None when
    /// all of them belong to the body and more are needed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Data(left) => {
                    // Skip the data in one step rather than byte by byte.
                    let take = left.min((bytes.len() - i) as u64);
                    i += take as usize;
                    let left = left - take;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Size { size, digits, ext } => match b {
                    b'\r' if digits => State::SizeLf { size },
                    b'\r' => return Err(BadChunk("chunk size line without a size")),
                    _ if ext => {
                        if b == b'\n' {
                            return Err(BadChunk("bare LF in a chunk size line"));
                        }
                        State::Size { size, digits, ext }
                    }
                    b';' | b' ' | b'\t' if digits => State::Size {
                        size,
                        digits,
                        ext: true,
                    },
                    _ => {
                        let d = (b as char)
                            .to_digit(16)
                            .ok_or(BadChunk("invalid character in a chunk size"))?;
                        let size = size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(d)))
                            .ok_or(BadChunk("chunk size too large"))?;
                        State::Size {
                            size,
                            digits: true,
                            ext,
                        }
                    }
                },
                State::SizeLf { size } => match b {
                    b'\n' if size == 0 => State::LineStart,
                    b'\n' => State::Data(size),
                    _ => return Err(BadChunk("chunk size line not ended by CRLF")),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(BadChunk("chunk data longer than its size")),
                },
                State::DataLf => match b {
                    b'\n' => State::default_size(),
                    _ => return Err(BadChunk("chunk data not ended by CRLF")),
                },
                State::LineStart => match b {
                    b'\r' => State::EndLf,
                    _ => self.trailer_byte(State::Line)?,
                },
                State::Line => match b {
                    b'\r' => State::LineLf,
                    _ => self.trailer_byte(State::Line)?,
                },
                State::LineLf => match b {
                    b'\n' => State::LineStart,
                    _ => return Err(BadChunk("trailer line not ended by CRLF")),
                },
                State::EndLf => match b {
                    b'\n' => {
                        self.state = State::Done;
                        return Ok(Some(i + 1));
                    }
                    _ => return Err(BadChunk("chunked body not ended by CRLF")),
                },
                State::Done => return Ok(Some(i)),
            };
            i += 1;
        }
        Ok((self.state == State::Done).then_some(i))
    }

    fn trailer_byte(&mut self, next: State) -> Result<State, BadChunk> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILERS {
            return Err(BadChunk("trailer section too large"));
        }
        Ok(next)
    }
}

impl State {
    fn default_size() -> State {
        State::Size {
            size: 0,
            digits: false,
            ext: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; returns where it ended.
    fn end_in_steps(body: &[u8], step: usize) -> Result<Option<usize>, BadChunk> {
        let mut c = ChunkedEnd::default();
        let mut at = 0;
        for piece in body.chunks(step) {
            if let Some(n) = c.feed(piece)? {
                return Ok(Some(at + n));
            }
            at += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn finds_the_end_however_the_bytes_are_split() {
        let body = b"5\r\nhello\r\n1a;name=value\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let end = body.len() - b"GET / HTTP/1.1\r\n".len();
        for step in 1..body.len() {
            assert_eq!(end_in_steps(body, step), Ok(Some(end)), "step {step}");
        }
    }

    #[test]
    fn trailers_are_part_of_the_body() {
        let body = b"3\r\nabc\r\n0\r\nx-sum: 1\r\ny: 2\r\n\r\nrest";
        for step in 1..body.len() {
            assert_eq!(end_in_steps(body, step), Ok(Some(body.len() - 4)));
        }
    }

    #[test]
    fn an_unfinished_body_needs_more() {
        assert_eq!(end_in_steps(b"5\r\nhel", 64), Ok(None));
        assert_eq!(end_in_steps(b"0\r\n", 64), Ok(None));
        assert_eq!(end_in_steps(b"0\r\nx: 1\r\n", 64), Ok(None));
    }

    #[test]
    fn broken_framing_is_an_error() {
        for bad in [
            &b"z\r\n"[..],
            b"\r\n",
            b"5\nhello",
            b"3\r\nabcd\r\n",
            b"3\r\nabc\n",
            b"ffffffffffffffffff\r\n",
            b"0\r\n\rx",
        ] {
            assert!(
                end_in_steps(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut huge = b"0\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_TRAILERS + 1));
        assert!(end_in_steps(&huge, 1000).is_err());
    }
}
