//! `manifest.json`: what a bundle holds and how it was made.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::nn::TextClassifierConfig;
use crate::text::TokenizerConfig;

/// The `format` field of every manifest.
pub const FORMAT_NAME: &str = "ulmfit-classifier-bundle";

/// The bundle format version this build writes and reads. Raised whenever a change makes old
/// readers misread new bundles or the reverse.
pub const FORMAT_VERSION: u32 = 1;

/// Which way a model reads its documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Left to right (fastai's default).
    #[default]
    Forward,
    /// Right to left: trained on reversed token sequences (fastai `backwards=True`); the
    /// predictor reverses the ids itself.
    Backward,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        })
    }
}

/// Size and SHA-256 of one file of a bundle, recorded when it was saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Length in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the content.
    pub sha256: String,
}

/// The description of a bundle (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// The format version ([`FORMAT_VERSION`] for bundles written by this build).
    pub format_version: u32,
    /// The version of the `ulmfit` crate that wrote the bundle.
    pub crate_version: String,
    /// Which way the model reads.
    pub direction: Direction,
    /// Class names, in class-index order.
    pub labels: Vec<String>,
    /// The tokenizer the model was trained with.
    pub tokenizer: TokenizerConfig,
    /// The model's architecture (dropouts included, although prediction ignores them).
    pub model: TextClassifierConfig,
    /// Tokens in the vocabulary (= embedding rows).
    pub vocab_len: usize,
    /// Size and checksum of every other file of the bundle, by file name.
    pub files: BTreeMap<String, FileEntry>,
}
