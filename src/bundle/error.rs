//! The error type of model bundles.

use std::path::PathBuf;

/// Everything that can go wrong saving or loading a [`Bundle`](super::Bundle).
///
/// A bundle is untrusted input: a missing, truncated, edited or hostile bundle ends in one of
/// these variants (never a panic), and each message says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// There is no bundle at the path.
    #[error(
        "no model bundle at {0}: expected a directory written by `ulmfit train --out`, \
         `ulmfit convert-fastai` or `Bundle::save`"
    )]
    NotFound(PathBuf),
    /// A file of the bundle is missing.
    #[error(
        "the model bundle {dir} has no {file}: the bundle is incomplete; save or copy it again"
    )]
    MissingFile {
        /// The bundle directory.
        dir: PathBuf,
        /// The missing file's name.
        file: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `manifest.json` is not a valid manifest.
    #[error("{path} is not a valid bundle manifest ({message}); save the bundle again")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The bundle was written in a format version this build cannot read.
    #[error(
        "{dir} is a bundle of format version {found} (written by ulmfit {crate_version}), this \
         ulmfit {ours} reads format version {supported}: {advice}"
    )]
    IncompatibleVersion {
        /// The bundle directory.
        dir: PathBuf,
        /// The bundle's format version.
        found: u32,
        /// The format version this build reads.
        supported: u32,
        /// The crate version that wrote the bundle.
        crate_version: String,
        /// This crate's version.
        ours: &'static str,
        /// What to do.
        advice: &'static str,
    },
    /// A file's size or checksum differs from the one recorded at saving time.
    #[error(
        "{path} does not match the checksum recorded in the manifest (edited, replaced or \
         corrupted after saving); restore the original file or export the bundle again"
    )]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// The vocabulary does not fit the weights.
    #[error(
        "the vocabulary of {dir} has {vocab_len} tokens but the model has {rows} embedding rows: \
         the vocabulary does not belong to these weights; use the vocabulary the model was \
         trained with"
    )]
    VocabMismatch {
        /// The bundle directory.
        dir: PathBuf,
        /// Tokens in the vocabulary.
        vocab_len: usize,
        /// Rows of the embedding (from the model configuration).
        rows: usize,
    },
    /// The manifest describes an impossible model (a zero size, a probability outside [0, 1),
    /// labels that do not match the classes, sizes the weight file cannot hold, ...).
    #[error("{dir}: invalid model description: {message}")]
    InvalidModel {
        /// The bundle directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The weights could not be loaded into the described model.
    #[error("{0}")]
    Weights(#[from] crate::weights::WeightsError),
    /// A weight is NaN or infinite: the model would only produce garbage.
    #[error(
        "{dir}: the weights contain {count} NaN or infinite values (the training diverged or \
         the file is corrupt); retrain with a lower learning rate or restore a good checkpoint"
    )]
    NonFinite {
        /// The bundle directory.
        dir: PathBuf,
        /// How many values are not finite.
        count: usize,
    },
    /// A bundle of the wrong direction was given (e.g. a forward model as the backward half
    /// of an ensemble).
    #[error(
        "{what}: expected a {expected} model, this bundle is {found}; pass the {expected} \
         bundle here"
    )]
    WrongDirection {
        /// Which argument.
        what: String,
        /// The direction wanted.
        expected: super::Direction,
        /// The bundle's direction.
        found: super::Direction,
    },
    /// Two bundles that should form an ensemble disagree (labels or tokenizer).
    #[error(
        "the forward and backward bundles disagree on {0}; they must come from the same dataset and settings"
    )]
    EnsembleMismatch(&'static str),
    /// The model and the arguments given to [`Bundle::from_classifier`](super::Bundle::from_classifier)
    /// disagree.
    #[error("cannot build a bundle: {0}")]
    Inconsistent(String),
    /// The target exists and is not a bundle: it is not replaced.
    #[error("{0} exists and is not a model bundle; refusing to replace it (choose another --out)")]
    WouldClobber(PathBuf),
}
