//! Readers for the ULMFiT benchmark datasets (spec §7.1) and the WikiText corpus.
//!
//! Each reader returns raw text (no tokenisation) in a [`TextClassificationData`]: labels are
//! 0-based indices into `classes`. Readers take an extracted folder or, where the dataset is
//! distributed as one, the `.tgz` archive itself (streamed, never extracted to disk).
//!
//! | dataset | function | classes |
//! |---|---|---|
//! | IMDb (aclImdb layout) | [`read_imdb`] | `neg`, `pos` |
//! | AG News, DBpedia, Yelp polarity / full (Zhang et al. 2015 CSVs) | [`read_zhang`] | `classes.txt`, or [`ZhangDataset::default_classes`] |
//! | TREC-6 / TREC-50 | [`read_trec`] | [`TREC_COARSE_CLASSES`] / [`TREC_FINE_CLASSES`] |
//! | WikiText-2 / -103 (tokenized) | [`read_wikitext`], [`wikitext_articles`] | — |
//!
//! [`read_benchmark`] reads any of the six classification benchmarks by its
//! [`Dataset`](crate::data::download::Dataset) name, noting what was done to incomplete copies.

mod archive;
pub mod benchmark;
mod csv;
pub mod imdb;
pub mod trec;
pub mod wikitext;
pub mod zhang;

pub use archive::Source;
pub use benchmark::{
    Benchmark, ag_news_from_test, balanced_indices, balanced_take, read_benchmark,
};
pub use imdb::{IMDB_CLASSES, read_imdb};
pub use trec::{
    TREC_COARSE_CLASSES, TREC_FINE_CLASSES, TrecData, TrecQuestion, parse_trec, read_trec,
};
pub use wikitext::{WikiTextSplit, read_wikitext, wikitext_articles};
pub use zhang::{ZhangDataset, mark_fields, parse_zhang_csv, read_zhang};

/// One labelled text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The raw text (multi-field datasets: fields joined by [`mark_fields`]).
    pub text: String,
    /// 0-based class index into [`TextClassificationData::classes`].
    pub label: usize,
}

/// A text-classification dataset as read from disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextClassificationData {
    /// Training examples, in a deterministic order (file order, or sorted file names).
    pub train: Vec<Example>,
    /// Test examples, in a deterministic order.
    pub test: Vec<Example>,
    /// Class names; `label` indexes this list.
    pub classes: Vec<String>,
    /// Unlabelled texts for language-model fine-tuning (IMDb's 50,000 `unsup` reviews); empty
    /// for datasets that have none or when not requested.
    pub unsup: Vec<String>,
}

impl TextClassificationData {
    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Examples per class in the training split.
    pub fn train_counts(&self) -> Vec<usize> {
        label_counts(&self.train, self.classes.len())
    }

    /// Examples per class in the test split.
    pub fn test_counts(&self) -> Vec<usize> {
        label_counts(&self.test, self.classes.len())
    }

    /// Every text (train, test, unsup) — e.g. for building a vocabulary or fine-tuning the
    /// language model, as fastai does on all IMDb texts.
    pub fn all_texts(&self) -> impl Iterator<Item = &str> {
        self.train
            .iter()
            .chain(&self.test)
            .map(|e| e.text.as_str())
            .chain(self.unsup.iter().map(String::as_str))
    }
}

/// Number of examples per class (labels `>= n_classes` are not counted).
pub fn label_counts(examples: &[Example], n_classes: usize) -> Vec<usize> {
    let mut counts = vec![0; n_classes];
    for e in examples {
        if let Some(c) = counts.get_mut(e.label) {
            *c += 1;
        }
    }
    counts
}
