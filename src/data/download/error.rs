//! Errors of finding, downloading, verifying and extracting a dataset.

use std::io;
use std::path::{Path, PathBuf};

/// Errors from finding, downloading, verifying or extracting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A dataset name that is not in the registry.
    #[error(
        "unknown dataset `{0}` (known: trec, imdb, ag_news_csv, dbpedia_csv, \
         yelp_review_polarity_csv, yelp_review_full_csv, wikitext-2, wikitext-103)"
    )]
    UnknownDataset(String),
    /// An explicitly given data path does not exist.
    #[error("data path `{}` does not exist", path.display())]
    NotFound {
        /// The missing path.
        path: PathBuf,
    },
    /// A path that is neither a folder nor a `.tgz` / `.tar.gz` archive.
    #[error("`{}` is neither a folder nor a .tgz/.tar.gz archive", path.display())]
    NotADataset {
        /// The offending path.
        path: PathBuf,
    },
    /// No cache folder could be determined.
    #[error("no cache folder to store {dataset}: set ULMFIT_CACHE, XDG_CACHE_HOME or HOME")]
    NoCacheDir {
        /// Dataset name.
        dataset: &'static str,
    },
    /// Not found locally and downloading is disabled.
    #[error("{dataset} was not found (looked in: {searched}) and downloading is disabled")]
    Unavailable {
        /// Dataset name.
        dataset: &'static str,
        /// The places searched.
        searched: String,
    },
    /// A file-system operation failed.
    #[error("I/O error on `{}`: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The request could not be made or answered (connection, TLS, timeout, protocol).
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The client's error.
        source: Box<ureq::Error>,
    },
    /// The server answered with a non-2xx status.
    #[error("{url} answered HTTP {status}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The response body broke off or timed out.
    #[error("transfer from {url} failed after {received} bytes: {source}")]
    Transfer {
        /// The URL requested.
        url: String,
        /// Bytes received before the failure.
        received: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// A file (or announced download) has the wrong size.
    #[error("`{file}` has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The file or URL.
        file: String,
        /// Expected size in bytes.
        expected: u64,
        /// Actual size in bytes.
        actual: u64,
    },
    /// A file's digest differs from the expected one.
    #[error("`{file}`: {algorithm} is {actual}, expected {expected}")]
    ChecksumMismatch {
        /// The file or URL.
        file: String,
        /// Which digest.
        algorithm: &'static str,
        /// Expected digest (hex).
        expected: String,
        /// Actual digest (hex).
        actual: String,
    },
    /// A download or an extraction went over its limit.
    #[error("{what} exceeds the limit of {limit} {unit}")]
    TooLarge {
        /// The URL or archive.
        what: String,
        /// The limit.
        limit: u64,
        /// What the limit counts.
        unit: &'static str,
    },
    /// The archive is not valid gzip/tar, or is truncated.
    #[error("archive `{}` is corrupt or truncated: {reason}", archive.display())]
    Archive {
        /// The archive file.
        archive: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// An archive entry that would write outside the extraction folder.
    #[error("archive `{}`: entry `{entry}` refused: {reason}", archive.display())]
    UnsafeEntry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
    /// An archive entry of a type that is never extracted (device, FIFO, …).
    #[error("archive `{}`: entry `{entry}` has unsupported type {kind}", archive.display())]
    UnsupportedEntry {
        /// The archive file.
        archive: PathBuf,
        /// The entry's path as stored.
        entry: String,
        /// The entry type.
        kind: String,
    },
    /// A checksum given as text could not be parsed.
    #[error("bad checksum: {0}")]
    BadChecksum(String),
}

impl DownloadError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether trying the same request again may help (connection problems, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Http { source, .. } => !matches!(
                **source,
                ureq::Error::BadUri(_) | ureq::Error::HostNotFound | ureq::Error::TooManyRedirects
            ),
            Self::HttpStatus { status, .. } => *status >= 500 || *status == 429,
            Self::Transfer { .. } => true,
            _ => false,
        }
    }
}
