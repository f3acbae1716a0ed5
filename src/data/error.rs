//! The error type of the data module.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading datasets or building batches.
///
/// Every variant that concerns a file names it; variants about a place inside a file also give
/// the 1-based line. Files inside an archive are named `<archive>!/<entry>`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A loader was configured with values it cannot work with (e.g. a batch size of 0).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A required file or folder does not exist.
    #[error("{what} not found: {}", path.display())]
    NotFound {
        /// The file or folder that was looked for.
        path: PathBuf,
        /// What was expected there (e.g. "IMDb folder `train/pos`").
        what: String,
    },

    /// An operating-system error while opening or reading a file.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file being read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file that must hold data is empty.
    #[error("{} is empty", path.display())]
    EmptyFile {
        /// The empty file.
        path: PathBuf,
    },

    /// A structural error in a text file: wrong column count, bad quoting, malformed line.
    #[error("{}, line {line}: {message}", path.display())]
    Format {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line (for a multi-line CSV record: the line the record starts on).
        line: usize,
        /// What is wrong.
        message: String,
    },

    /// A label that is not a valid class (out of range, unknown name, not a number).
    #[error("{}, line {line}: invalid label `{label}`: {message}", path.display())]
    Label {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line of the record.
        line: usize,
        /// The label as written in the file.
        label: String,
        /// Why it is rejected.
        message: String,
    },

    /// Text that must be UTF-8 is not.
    #[error("{}{}: not valid UTF-8", path.display(), line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Utf8 {
        /// The file at fault.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
    },

    /// A compressed archive that cannot be decoded (truncated, corrupt, not a gzip'd tar).
    #[error("archive {}{}: {message}", path.display(), entry.as_ref().map(|e| format!(" (at entry `{e}`)")).unwrap_or_default())]
    Archive {
        /// The archive file.
        path: PathBuf,
        /// The entry being read when the error occurred, if any.
        entry: Option<String>,
        /// What went wrong.
        message: String,
    },

    /// A reference fixture that cannot be read or does not have the expected content.
    #[error("fixture {}: {message}", path.display())]
    Fixture {
        /// The fixture file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`DataError::Format`] at `line` of `path`.
    pub(crate) fn format(path: &Path, line: usize, message: impl Into<String>) -> Self {
        DataError::Format {
            path: path.to_path_buf(),
            line,
            message: message.into(),
        }
    }

    /// A [`DataError::Label`] at `line` of `path`.
    pub(crate) fn label(
        path: &Path,
        line: usize,
        label: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DataError::Label {
            path: path.to_path_buf(),
            line,
            label: label.into(),
            message: message.into(),
        }
    }
}

/// The name used in errors for `entry` inside `archive`: `<archive>!/<entry>`.
pub(crate) fn entry_path(archive: &Path, entry: &str) -> PathBuf {
    PathBuf::from(format!("{}!/{}", archive.display(), entry))
}
