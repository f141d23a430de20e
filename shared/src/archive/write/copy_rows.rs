//! Counting the rows of a COPY stream as it passes, in either of COPY's formats, and
//! checking that the stream ended where a complete one ends.
//!
//! Text: one line a row (COPY escapes newlines inside values). Binary: PostgreSQL's
//! documented layout, an 11-byte signature, flags, a header extension, then per row a
//! 16-bit field count and per field a 32-bit length (-1 for NULL) and its bytes, and a
//! field count of -1 to end.

use crate::archive::manifest::CopyFormat;

/// The binary format's signature.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";
/// Signature, flags and header extension length.
const HEADER_BYTES: usize = 19;

/// Counts rows of one COPY stream fed in pieces of any size.
#[derive(Debug)]
pub struct RowCounter {
    format: CopyFormat,
    rows: u64,
    /// Text: whether the last byte seen ended a line (an empty stream counts as ended).
    at_line_end: bool,
    state: State,
    /// Bytes of a fixed-size binary field gathered so far.
    fixed: [u8; HEADER_BYTES],
    have: usize,
    /// Bytes left to skip in the current binary value or header extension.
    skip: u64,
    /// Fields left in the current binary row.
    fields_left: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Extension,
    RowStart,
    FieldLength,
    FieldData,
    Ended,
}

impl RowCounter {
    /// A counter for a stream in `format`.
    pub fn new(format: CopyFormat) -> Self {
        Self {
            format,
            rows: 0,
            at_line_end: true,
            state: State::Header,
            fixed: [0; HEADER_BYTES],
            have: 0,
            skip: 0,
            fields_left: 0,
        }
    }

    /// Takes the next piece; returns the rows that began in it.
    pub fn feed(&mut self, data: &[u8]) -> Result<u64, String> {
        let before = self.rows;
        match self.format {
            CopyFormat::Text => {
                if let Some(&last) = data.last() {
                    self.rows += memchr::memchr_iter(b'\n', data).count() as u64;
                    self.at_line_end = last == b'\n';
                }
            }
            CopyFormat::Binary => self.feed_binary(data)?,
        }
        Ok(self.rows - before)
    }

    /// The row count of a complete stream; an error names what is missing when the stream
    /// stopped early.
    pub fn finish(&self) -> Result<u64, String> {
        let complete = match self.format {
            CopyFormat::Text => self.at_line_end,
            CopyFormat::Binary => self.state == State::Ended,
        };
        if complete {
            Ok(self.rows)
        } else {
            Err(format!(
                "the COPY stream ends inside a row (after {} rows)",
                self.rows
            ))
        }
    }

    fn feed_binary(&mut self, mut data: &[u8]) -> Result<(), String> {
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    if let Some(header) = self.gather(&mut data, HEADER_BYTES) {
                        if &header[..11] != SIGNATURE {
                            return Err("not a binary COPY stream (bad signature)".into());
                        }
                        self.skip =
                            u32::from_be_bytes([header[15], header[16], header[17], header[18]])
                                as u64;
                        self.state = State::Extension;
                    }
                }
                State::Extension => {
                    if self.skip_bytes(&mut data) {
                        self.state = State::RowStart;
                    }
                }
                State::RowStart => {
                    if let Some(count) = self.gather(&mut data, 2) {
                        match i16::from_be_bytes([count[0], count[1]]) {
                            -1 => self.state = State::Ended,
                            n if n < 0 => return Err(format!("a row with {n} fields")),
                            n => {
                                self.rows += 1;
                                self.fields_left = n as u16;
                                self.next_field();
                            }
                        }
                    }
                }
                State::FieldLength => {
                    if let Some(len) = self.gather(&mut data, 4) {
                        match i32::from_be_bytes([len[0], len[1], len[2], len[3]]) {
                            -1 => self.end_field(),
                            n if n < 0 => return Err(format!("a value of {n} bytes")),
                            n => {
                                self.skip = n as u64;
                                self.state = State::FieldData;
                            }
                        }
                    }
                }
                State::FieldData => {
                    if self.skip_bytes(&mut data) {
                        self.end_field();
                    }
                }
                State::Ended => return Err("data after the end of the COPY stream".into()),
            }
        }
        Ok(())
    }

    /// Moves up to `n` bytes into `fixed`; the `n` bytes once all have arrived.
    fn gather(&mut self, data: &mut &[u8], n: usize) -> Option<[u8; HEADER_BYTES]> {
        let take = (n - self.have).min(data.len());
        self.fixed[self.have..self.have + take].copy_from_slice(&data[..take]);
        *data = &data[take..];
        self.have += take;
        (self.have == n).then(|| {
            self.have = 0;
            self.fixed
        })
    }

    /// Skips up to `skip` bytes; true once all are skipped.
    fn skip_bytes(&mut self, data: &mut &[u8]) -> bool {
        let take = self.skip.min(data.len() as u64);
        *data = &data[take as usize..];
        self.skip -= take;
        self.skip == 0
    }

    fn end_field(&mut self) {
        self.fields_left -= 1;
        self.next_field();
    }

    fn next_field(&mut self) {
        self.state = if self.fields_left == 0 {
            State::RowStart
        } else {
            State::FieldLength
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary stream of `rows`, each a list of values (None for NULL).
    fn binary(rows: &[Vec<Option<&[u8]>>], extension: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&(extension.len() as u32).to_be_bytes());
        out.extend_from_slice(extension);
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for value in row {
                match value {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(v) => {
                        out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                        out.extend_from_slice(v);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    fn sample() -> Vec<u8> {
        binary(
            &[
                vec![Some(b"\x00\x00\x00\x01"), None, Some(b"")],
                vec![Some(b"\n\n\n"), Some(b"\xff\xff\xff\xff"), None],
                vec![],
                vec![Some(&[7u8; 300])],
            ],
            b"ext",
        )
    }

    #[test]
    fn binary_rows_are_counted_whatever_the_pieces() {
        let stream = sample();
        for piece in [1, 2, 3, 5, 19, 64, stream.len()] {
            let mut counter = RowCounter::new(CopyFormat::Binary);
            let mut seen = 0;
            for part in stream.chunks(piece) {
                seen += counter.feed(part).unwrap();
            }
            assert_eq!(seen, 4, "pieces of {piece}");
            assert_eq!(counter.finish(), Ok(4), "pieces of {piece}");
        }
    }

    #[test]
    fn a_cut_binary_stream_is_incomplete() {
        let stream = sample();
        for cut in [0, 5, 19, 25, stream.len() - 2, stream.len() - 1] {
            let mut counter = RowCounter::new(CopyFormat::Binary);
            counter.feed(&stream[..cut]).unwrap();
            assert!(counter.finish().is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn a_bad_signature_or_trailing_bytes_are_errors() {
        let mut stream = sample();
        stream[0] = b'X';
        assert!(RowCounter::new(CopyFormat::Binary).feed(&stream).is_err());
        let mut stream = sample();
        stream.push(0);
        assert!(RowCounter::new(CopyFormat::Binary).feed(&stream).is_err());
    }

    #[test]
    fn text_rows_are_lines() {
        let mut counter = RowCounter::new(CopyFormat::Text);
        assert_eq!(counter.feed(b"1\ta\\nb\n2\t").unwrap(), 1);
        assert!(counter.finish().is_err());
        assert_eq!(counter.feed(b"\\N\n").unwrap(), 1);
        assert_eq!(counter.finish(), Ok(2));
        assert_eq!(RowCounter::new(CopyFormat::Text).finish(), Ok(0));
    }
}
