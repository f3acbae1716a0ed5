//! A small streaming CSV record reader (RFC 4180 quoting) with exact error positions.
//!
//! Hand-written rather than the `csv` crate: the Zhang et al. files need only the RFC 4180
//! subset (comma separator, `"`-quoted fields, `""` escapes, newlines inside quotes, LF or CRLF
//! line ends), and owning the ~100 lines lets every error name the file (or archive entry) and
//! the line the record starts on, and lets malformed quoting (a stray `"` in an unquoted field,
//! text after a closing quote, an unterminated quote) be rejected instead of silently repaired.
//! Blank lines between records are skipped, as pandas does (`skip_blank_lines=True`).

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::data::DataError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

/// Reads CSV records one at a time from a [`BufRead`].
pub(crate) struct CsvRecords<R> {
    reader: R,
    path: PathBuf,
    /// When reading from an archive: the archive and the entry name, so that read errors
    /// (a truncated archive) become [`DataError::Archive`].
    archive: Option<(PathBuf, String)>,
    /// Physical lines consumed so far.
    line: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> CsvRecords<R> {
    /// Reads from `reader`; errors name `path`. `archive` = `(archive file, entry name)` when
    /// the reader is an archive entry.
    pub(crate) fn new(reader: R, path: &Path, archive: Option<(PathBuf, String)>) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            archive,
            line: 0,
            buf: Vec::new(),
        }
    }

    fn io_error(&self, e: std::io::Error) -> DataError {
        match &self.archive {
            Some((archive, entry)) => DataError::Archive {
                path: archive.clone(),
                entry: Some(entry.clone()),
                message: format!("after line {}: {e}", self.line),
            },
            None => DataError::io(&self.path, e),
        }
    }

    /// The next record as `(line it starts on, fields)`, or `None` at the end of the input.
    pub(crate) fn next_record(&mut self) -> Result<Option<(usize, Vec<String>)>, DataError> {
        let mut fields: Vec<Vec<u8>> = Vec::new();
        let mut field: Vec<u8> = Vec::new();
        let mut state = State::FieldStart;
        let mut start_line = self.line + 1;
        loop {
            self.buf.clear();
            let n = match self.reader.read_until(b'\n', &mut self.buf) {
                Ok(n) => n,
                Err(e) => return Err(self.io_error(e)),
            };
            if n == 0 {
                return match state {
                    State::Quoted => Err(DataError::format(
                        &self.path,
                        start_line,
                        "quoted field not closed before the end of the file",
                    )),
                    _ => Ok(None),
                };
            }
            self.line += 1;
            let at_record_start =
                fields.is_empty() && field.is_empty() && state == State::FieldStart;
            if at_record_start && (self.buf == b"\n" || self.buf == b"\r\n") {
                start_line = self.line + 1;
                continue;
            }
            let line = std::mem::take(&mut self.buf);
            let mut ended = false;
            let mut i = 0;
            while i < line.len() {
                let b = line[i];
                i += 1;
                let eol = b == b'\n' || (b == b'\r' && line.get(i) == Some(&b'\n'));
                match state {
                    State::Quoted => {
                        if b == b'"' {
                            state = State::QuoteInQuoted;
                        } else {
                            field.push(b);
                        }
                    }
                    State::QuoteInQuoted if b == b'"' => {
                        field.push(b'"');
                        state = State::Quoted;
                    }
                    State::FieldStart if b == b'"' => state = State::Quoted,
                    State::Unquoted if b == b'"' => {
                        return Err(DataError::format(
                            &self.path,
                            self.line,
                            format!(
                                "`\"` inside an unquoted field (column {})",
                                fields.len() + 1
                            ),
                        ));
                    }
                    _ if b == b',' => {
                        fields.push(std::mem::take(&mut field));
                        state = State::FieldStart;
                    }
                    _ if eol => {
                        ended = true;
                        break;
                    }
                    State::QuoteInQuoted => {
                        return Err(DataError::format(
                            &self.path,
                            self.line,
                            format!(
                                "unexpected `{}` after the closing quote of column {}",
                                char::from(b).escape_default(),
                                fields.len() + 1
                            ),
                        ));
                    }
                    State::FieldStart | State::Unquoted => {
                        field.push(b);
                        state = State::Unquoted;
                    }
                }
            }
            self.buf = line;
            // `read_until` stops without a newline only at the end of the input: a last line
            // without a newline also ends the record, unless a quote is open
            if ended || state != State::Quoted {
                fields.push(field);
                let fields = fields
                    .into_iter()
                    .map(|f| {
                        String::from_utf8(f).map_err(|_| DataError::Utf8 {
                            path: self.path.clone(),
                            line: Some(start_line),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                return Ok(Some((start_line, fields)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<(usize, Vec<String>)>, DataError> {
        let mut r = CsvRecords::new(text.as_bytes(), Path::new("t.csv"), None);
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        Ok(out)
    }

    fn rec(line: usize, f: &[&str]) -> (usize, Vec<String>) {
        (line, f.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn quoting_escapes_and_newlines() {
        let got =
            parse("\"3\",\"a \"\"b\"\"\",\"c\nd\"\r\n1,\"x\",y\n\n\"2\",\"\",\"last\"").unwrap();
        assert_eq!(
            got,
            vec![
                rec(1, &["3", "a \"b\"", "c\nd"]),
                rec(3, &["1", "x", "y"]),
                rec(5, &["2", "", "last"]),
            ]
        );
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("a,,b\n").unwrap(), vec![rec(1, &["a", "", "b"])]);
        assert_eq!(parse("\"q\r\nr\"\n").unwrap(), vec![rec(1, &["q\r\nr"])]);
    }

    #[test]
    fn malformed_quoting_names_the_line() {
        let e = parse("1,\"ok\"\n2,\"open\nstill open\n").unwrap_err();
        assert!(matches!(e, DataError::Format { line: 2, .. }), "{e}");
        let e = parse("1,\"a\"x,b\n").unwrap_err();
        assert!(matches!(e, DataError::Format { line: 1, .. }), "{e}");
        let e = parse("1,a\n1,a\"b\n").unwrap_err();
        assert!(matches!(e, DataError::Format { line: 2, .. }), "{e}");
        assert!(e.to_string().contains("t.csv, line 2"), "{e}");
        let mut r = CsvRecords::new(&b"1,\"\xff\"\n"[..], Path::new("t.csv"), None);
        let e = r.next_record().unwrap_err();
        assert!(matches!(e, DataError::Utf8 { line: Some(1), .. }), "{e}");
    }
}
