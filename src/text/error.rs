//! Errors of the `text` module.

use std::path::PathBuf;

/// Everything that can go wrong while loading, saving or checking text-processing files.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not the JSON it should be.
    #[error("invalid JSON in {path}{}: {source}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Json {
        /// The file involved.
        path: PathBuf,
        /// 1-based line of a JSON-lines file, when the error is in one record.
        line: Option<usize>,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A file parsed but its content is not acceptable.
    #[error("invalid content in {path}: {reason}")]
    Invalid {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is out of range for a vocabulary of {len} tokens")]
    IdOutOfRange {
        /// The offending id.
        id: u32,
        /// The vocabulary size.
        len: usize,
    },
}

impl TextError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TextError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        TextError::Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_line() {
        let source = serde_json::from_str::<u32>("x").unwrap_err();
        let e = TextError::Json {
            path: "a/b.jsonl".into(),
            line: Some(7),
            source,
        };
        let msg = e.to_string();
        assert!(msg.contains("a/b.jsonl") && msg.contains("line 7"), "{msg}");
        let e = TextError::invalid("v.json", "empty vocabulary");
        assert_eq!(e.to_string(), "invalid content in v.json: empty vocabulary");
        let e = TextError::IdOutOfRange { id: 9, len: 8 };
        assert!(e.to_string().contains("9") && e.to_string().contains("8"));
    }
}
