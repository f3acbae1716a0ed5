//! The error type of the `fastai` module.

use std::path::PathBuf;

/// Everything that can go wrong while reading fastai weight files.
///
/// Weight files are untrusted input: every malformed, truncated or hostile file ends in one of
/// these variants, never in a panic. Messages name the file, key, shape or value at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FastaiError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// `pytorch-reader` refused the file (not a torch file, truncated, corrupt, hostile).
    #[error("{path} is not a readable PyTorch file: {source}")]
    Torch {
        /// The file.
        path: PathBuf,
        /// The reader's error.
        #[source]
        source: pytorch_reader::PytorchError,
    },

    /// `pytorch-reader` panicked on the file. This is a bug in that crate (it should return an
    /// error); the panic was caught so that a bad file cannot take the process down.
    #[error("the PyTorch reader crashed on {path} (malformed file): {message}")]
    ReaderPanicked {
        /// The file.
        path: PathBuf,
        /// The panic message.
        message: String,
    },

    /// The file's top-level object is not a dict of tensors.
    #[error("{path} does not hold a state dict: {detail}")]
    NotAStateDict {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },

    /// A tensor (or the sum of all tensors) would take more memory than the file can justify.
    #[error(
        "{path}: tensor '{name}' declares {bytes} bytes, more than the limit of {limit} bytes \
         derived from the file size"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The tensor (or `<all tensors>`).
        name: String,
        /// Bytes the tensor(s) would occupy.
        bytes: u64,
        /// The limit.
        limit: u64,
    },

    /// A tensor's data could not be read from its storage.
    #[error("{path}: cannot read the data of tensor '{name}': {source}")]
    TensorData {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A tensor's element count does not match its shape.
    #[error("tensor '{name}' has shape {shape:?} but {len} elements")]
    ElementCount {
        /// The tensor.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The number of elements held.
        len: usize,
    },

    /// The `itos` pickle is not a list of strings.
    #[error("{path} is not a pickled list of strings: {detail}")]
    BadItos {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the index of the offending item when there is one).
        detail: String,
    },

    /// Keys that no known fastai dialect uses.
    #[error("unknown keys in the state dict: {keys:?}")]
    UnknownKeys {
        /// The offending keys, as they appear in the file.
        keys: Vec<String>,
    },

    /// Keys the model needs but the state dict lacks (canonical names).
    #[error("missing keys in the state dict: {keys:?}")]
    MissingKeys {
        /// The missing keys, in the canonical naming.
        keys: Vec<String>,
    },

    /// Two keys that must hold the same tensor (e.g. `0.encoder.weight` and
    /// `0.encoder_dp.emb.weight`) hold different values.
    #[error("'{kept}' and '{other}' should hold the same tensor but differ")]
    ConflictingDuplicate {
        /// The key whose value is used.
        kept: String,
        /// The key that disagrees.
        other: String,
    },

    /// A tensor has a shape that does not fit the architecture.
    #[error("tensor '{name}' has shape {shape:?}, expected {expected}")]
    Shape {
        /// The tensor (canonical name).
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// What was expected, e.g. `[4*24, 16] (4*hidden, input width)`.
        expected: String,
    },

    /// The state dict is of another kind than the caller asked for.
    #[error("expected a {expected} state dict, found a {found} state dict")]
    WrongModelKind {
        /// The kind the caller asked for.
        expected: &'static str,
        /// The kind found.
        found: &'static str,
    },

    /// A tensor holds NaN or an infinity.
    #[error("tensor '{name}' holds a non-finite value {value} at flat index {index}")]
    NonFinite {
        /// The tensor.
        name: String,
        /// Flat (row-major) index of the first non-finite value.
        index: usize,
        /// The value.
        value: f32,
    },

    /// A vocabulary whose length is not the number of embedding rows.
    #[error("vocabulary '{which}' has {vocab_len} tokens but the embedding has {rows} rows")]
    VocabMismatch {
        /// Which vocabulary (`"old"`, `"itos"`, ...).
        which: &'static str,
        /// Tokens in the vocabulary.
        vocab_len: usize,
        /// Rows of `0.encoder.weight`.
        rows: usize,
    },
}
