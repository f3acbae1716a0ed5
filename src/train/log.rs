//! Per-epoch training logs: a console table printed like fastai's progress output (header
//! once, one aligned line per epoch) and a CSV logger like fastai's `CSVLogger`.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// Errors of the log module.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Reading or writing a log file failed.
    #[error("log file {path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Writing to the table's output failed.
    #[error("cannot write epoch table: {0}")]
    Write(std::io::Error),
    /// A record's columns differ from those already written.
    #[error("{context}: columns {got:?} differ from {expected:?}")]
    ColumnMismatch {
        /// Where (table, or the CSV file path).
        context: String,
        /// Columns already in use.
        expected: Vec<String>,
        /// Columns of the new record.
        got: Vec<String>,
    },
    /// A CSV log line could not be read back.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// File path.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Metrics of one epoch (a row of fastai's `Recorder` output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch number (fastai counts from 0).
    pub epoch: usize,
    /// Smoothed training loss at the end of the epoch (fastai reports `AvgSmoothLoss`).
    pub train_loss: f64,
    /// Validation loss, `None` without a validation set (fastai prints `None`).
    pub valid_loss: Option<f64>,
    /// Further metrics in display order, e.g. `("accuracy", 0.93)`.
    pub metrics: Vec<(String, f64)>,
    /// Wall-clock duration of the epoch in seconds.
    pub seconds: f64,
}

impl EpochRecord {
    /// Column names: `epoch, train_loss, valid_loss, <metrics>..., time`.
    pub fn column_names(&self) -> Vec<String> {
        let mut c: Vec<String> = ["epoch", "train_loss", "valid_loss"]
            .into_iter()
            .map(String::from)
            .collect();
        c.extend(self.metrics.iter().map(|(n, _)| n.clone()));
        c.push("time".into());
        c
    }

    /// Values as fastai's table shows them: floats with 6 decimals, time as `mm:ss`.
    fn display_values(&self) -> Vec<String> {
        let mut v = vec![self.epoch.to_string(), format!("{:.6}", self.train_loss)];
        v.push(match self.valid_loss {
            Some(x) => format!("{x:.6}"),
            None => "None".into(),
        });
        v.extend(self.metrics.iter().map(|(_, x)| format!("{x:.6}")));
        v.push(format_time(self.seconds));
        v
    }
}

/// fastprogress's `format_time`: whole seconds as `mm:ss`, or `h:mm:ss` from one hour on.
/// Negative or non-finite durations print as `00:00`.
pub fn format_time(seconds: f64) -> String {
    let t = if seconds.is_finite() && seconds > 0.0 {
        seconds as u64
    } else {
        0
    };
    let (h, m, s) = (t / 3600, (t / 60) % 60, t % 60);
    if h != 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// Console table of epoch records, laid out as fastprogress's console output: column names
/// padded to at least 8 characters and separated by 2 spaces; each value left-aligned in its
/// column. The header is emitted with the first record; later records must have the same
/// columns.
#[derive(Debug, Clone, Default)]
pub struct EpochTable {
    names: Option<Vec<String>>,
}

impl EpochTable {
    /// A table that has not printed its header yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The text to print for `rec` (header line first if not yet emitted), without a trailing
    /// newline.
    pub fn line(&mut self, rec: &EpochRecord) -> Result<String, LogError> {
        let cols = rec.column_names();
        let mut out = String::new();
        if let Some(names) = &self.names {
            let expected: Vec<String> = names.iter().map(|n| n.trim_end().to_string()).collect();
            if expected != cols {
                return Err(LogError::ColumnMismatch {
                    context: "epoch table".into(),
                    expected,
                    got: cols,
                });
            }
        }
        let names = self.names.get_or_insert_with(|| {
            let padded: Vec<String> = cols.iter().map(|n| format!("{n:<8}")).collect();
            out.push_str(padded.join("  ").trim_end());
            out.push('\n');
            padded
        });
        let mut row = String::new();
        for (v, name) in rec.display_values().iter().zip(names) {
            row.push_str(&format!("{v:<w$}", w = name.len() + 2));
        }
        out.push_str(row.trim_end());
        Ok(out)
    }

    /// Writes [`EpochTable::line`] and a newline to `w`.
    pub fn write_to<W: Write>(&mut self, w: &mut W, rec: &EpochRecord) -> Result<(), LogError> {
        let text = self.line(rec)?;
        writeln!(w, "{text}").map_err(LogError::Write)
    }

    /// Prints [`EpochTable::line`] to standard output.
    pub fn print(&mut self, rec: &EpochRecord) -> Result<(), LogError> {
        self.write_to(&mut std::io::stdout().lock(), rec)
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_split(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => cur.push(c),
            (false, '"') if cur.is_empty() => quoted = true,
            (false, ',') => out.push(std::mem::take(&mut cur)),
            (false, c) => cur.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

/// Appends epoch records to a CSV file (like fastai's `CSVLogger(append=True)`), writing the
/// header `epoch,train_loss,valid_loss,<metrics>,time` only when the file is new or empty. If
/// the file already has a different header, logging fails instead of mixing columns.
/// Numbers are written in full precision (shortest round-trip form); `valid_loss` is empty
/// when absent; `time` holds seconds (fastai writes `mm:ss` there).
#[derive(Debug, Clone)]
pub struct CsvLogger {
    path: PathBuf,
    header: Option<Vec<String>>,
}

impl CsvLogger {
    /// A logger appending to `path` (the file is opened on each write).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            header: None,
        }
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self) -> impl Fn(std::io::Error) -> LogError + '_ {
        |source| LogError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one record (and the header first if the file is new or empty).
    pub fn log(&mut self, rec: &EpochRecord) -> Result<(), LogError> {
        let cols = rec.column_names();
        let mut text = String::new();
        match &self.header {
            Some(h) if *h != cols => {
                return Err(LogError::ColumnMismatch {
                    context: self.path.display().to_string(),
                    expected: h.clone(),
                    got: cols,
                });
            }
            Some(_) => {}
            None => {
                match read_header(&self.path)? {
                    Some(existing) if existing != cols => {
                        return Err(LogError::ColumnMismatch {
                            context: self.path.display().to_string(),
                            expected: existing,
                            got: cols,
                        });
                    }
                    Some(_) => {}
                    None => {
                        let fields: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
                        text.push_str(&fields.join(","));
                        text.push('\n');
                    }
                }
                self.header = Some(cols);
            }
        }
        let mut fields = vec![rec.epoch.to_string(), rec.train_loss.to_string()];
        fields.push(rec.valid_loss.map(|v| v.to_string()).unwrap_or_default());
        fields.extend(rec.metrics.iter().map(|(_, v)| v.to_string()));
        fields.push(rec.seconds.to_string());
        text.push_str(&fields.join(","));
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(self.io())?;
        f.write_all(text.as_bytes()).map_err(self.io())?;
        f.flush().map_err(self.io())
    }
}

/// First line of `path` split into columns; `None` if the file is missing or empty.
fn read_header(path: &Path) -> Result<Option<Vec<String>>, LogError> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(LogError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let mut first = String::new();
    std::io::BufReader::new(f)
        .read_line(&mut first)
        .map_err(|source| LogError::Io {
            path: path.into(),
            source,
        })?;
    let first = first.trim_end_matches(['\n', '\r']);
    if first.is_empty() {
        return Ok(None);
    }
    csv_split(first)
        .map(Some)
        .map_err(|reason| LogError::Parse {
            path: path.into(),
            line: 1,
            reason,
        })
}

/// Reads back a file written by [`CsvLogger`].
pub fn read_csv_log(path: &Path) -> Result<Vec<EpochRecord>, LogError> {
    let text = std::fs::read_to_string(path).map_err(|source| LogError::Io {
        path: path.into(),
        source,
    })?;
    let perr = |line: usize, reason: String| LogError::Parse {
        path: path.into(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate();
    let Some((_, head)) = lines.next() else {
        return Ok(Vec::new());
    };
    let cols = csv_split(head).map_err(|r| perr(1, r))?;
    if cols.len() < 4
        || cols[..3] != ["epoch", "train_loss", "valid_loss"]
        || cols[cols.len() - 1] != "time"
    {
        return Err(perr(1, format!("unexpected header {cols:?}")));
    }
    let mut out = Vec::new();
    for (i, line) in lines {
        if line.is_empty() {
            continue;
        }
        let f = csv_split(line).map_err(|r| perr(i + 1, r))?;
        if f.len() != cols.len() {
            return Err(perr(
                i + 1,
                format!("{} fields, header has {}", f.len(), cols.len()),
            ));
        }
        let num = |k: usize| {
            f[k].parse::<f64>()
                .map_err(|e| perr(i + 1, format!("column `{}` = {:?}: {e}", cols[k], f[k])))
        };
        let epoch = f[0]
            .parse::<usize>()
            .map_err(|e| perr(i + 1, format!("epoch {:?}: {e}", f[0])))?;
        let valid_loss = if f[2].is_empty() { None } else { Some(num(2)?) };
        let metrics = (3..cols.len() - 1)
            .map(|k| Ok((cols[k].clone(), num(k)?)))
            .collect::<Result<Vec<_>, LogError>>()?;
        out.push(EpochRecord {
            epoch,
            train_loss: num(1)?,
            valid_loss,
            metrics,
            seconds: num(cols.len() - 1)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(epoch: usize, metrics: &[(&str, f64)]) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: 1.0 / (epoch + 1) as f64,
            valid_loss: Some(0.5 + epoch as f64 * 0.1),
            metrics: metrics.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
            seconds: 65.4 + epoch as f64,
        }
    }

    #[test]
    fn time_format() {
        assert_eq!(format_time(5.9), "00:05");
        assert_eq!(format_time(65.0), "01:05");
        assert_eq!(format_time(3600.0 + 61.0), "1:01:01");
        assert_eq!(format_time(f64::NAN), "00:00");
    }

    #[test]
    fn table_header_once_and_aligned() {
        let mut t = EpochTable::new();
        let mut buf = Vec::new();
        t.write_to(&mut buf, &rec(0, &[("accuracy", 0.9)])).unwrap();
        t.write_to(&mut buf, &rec(1, &[("accuracy", 0.925)]))
            .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "epoch     train_loss  valid_loss  accuracy  time",
                "0         1.000000    0.500000    0.900000  01:05",
                "1         0.500000    0.600000    0.925000  01:06",
            ]
        );
        // Every value starts where its header starts.
        let starts = |l: &str| -> Vec<usize> {
            l.char_indices()
                .filter(|(i, c)| *c != ' ' && (*i == 0 || l.as_bytes()[i - 1] == b' '))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(starts(lines[0]), starts(lines[1]));
        let err = t.line(&rec(2, &[("f1", 0.1)])).unwrap_err();
        assert!(matches!(err, LogError::ColumnMismatch { .. }), "{err}");
        let none = EpochRecord {
            valid_loss: None,
            ..rec(3, &[("accuracy", 0.5)])
        };
        assert!(t.line(&none).unwrap().contains("None"));
    }

    #[test]
    fn csv_append_header_once_and_round_trip() {
        let dir = std::env::temp_dir().join(format!("ulmfit_log_test_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("history.csv");
        let _ = std::fs::remove_file(&path);
        let m = |a: f64| vec![("accuracy", a), ("f1, macro", a / 2.0)];
        let recs = [rec(0, &m(0.1)), rec(1, &m(1.0 / 3.0)), rec(2, &m(0.7))];
        let mut l = CsvLogger::new(&path);
        l.log(&recs[0]).unwrap();
        l.log(&recs[1]).unwrap();
        // A new logger on the same file appends without a second header.
        let mut l2 = CsvLogger::new(&path);
        l2.log(&recs[2]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("epoch,").count(), 1);
        assert!(text.starts_with("epoch,train_loss,valid_loss,accuracy,\"f1, macro\",time\n"));
        assert_eq!(text.lines().count(), 4);
        assert_eq!(read_csv_log(&path).unwrap(), recs.to_vec());
        // Different columns are refused, in a fresh logger and in the same one.
        let bad = rec(3, &[("accuracy", 0.5)]);
        assert!(matches!(
            CsvLogger::new(&path).log(&bad),
            Err(LogError::ColumnMismatch { .. })
        ));
        assert!(matches!(l2.log(&bad), Err(LogError::ColumnMismatch { .. })));
        // Missing valid loss round-trips as None.
        let p2 = dir.join("nv.csv");
        let _ = std::fs::remove_file(&p2);
        let nv = EpochRecord {
            valid_loss: None,
            ..rec(0, &[])
        };
        CsvLogger::new(&p2).log(&nv).unwrap();
        assert_eq!(read_csv_log(&p2).unwrap(), vec![nv]);
        let err = CsvLogger::new(dir.join("missing_dir/x.csv"))
            .log(&recs[0])
            .unwrap_err();
        assert!(err.to_string().contains("missing_dir"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_parse_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("ulmfit_log_parse_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.csv");
        std::fs::write(
            &p,
            "epoch,train_loss,valid_loss,time\n0,1.0,0.5,3\n1,oops,0.5,3\n",
        )
        .unwrap();
        let err = read_csv_log(&p).unwrap_err().to_string();
        assert!(
            err.contains("bad.csv:3") && err.contains("train_loss"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
