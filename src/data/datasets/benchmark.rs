//! The paper's six classification benchmarks by name, with the slicing the available copies need.
//!
//! [`read_benchmark`] reads any of them from a folder or archive (found with
//! [`resolve`](crate::data::download::resolve)) into a [`Benchmark`]: the data and a plain note of
//! what was done to it. The note is empty for a complete copy. For an incomplete one it says so:
//! the DBpedia and Yelp samples are marked as smoke runs; AG News with a truncated `train.csv`
//! (the 581-row sample) is re-split as [`ag_news_from_test`] describes. The examples and
//! `ulmfit train` share this reading, so their results are comparable.

use std::path::Path;

use super::{Example, TextClassificationData, ZhangDataset, read_imdb, read_trec, read_zhang};
use crate::data::DataError;
use crate::data::download::Dataset;

/// A benchmark dataset ready for training, with what was done to it.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// Short name used in result lines (`trec6`, `imdb`, `ag_news`, `dbpedia`, `yelp_polarity`,
    /// `yelp_full`).
    pub name: &'static str,
    /// Train / test examples, class names, and (IMDb with `unsup`) unlabelled texts.
    pub data: TextClassificationData,
    /// What was done to the data, said plainly (empty: nothing, the copy is complete).
    pub note: String,
}

/// Official training-set sizes (Zhang et al. 2015, Table 3), to recognise samples.
const AG_NEWS_TRAIN: usize = 120_000;
const DBPEDIA_TRAIN: usize = 560_000;
const YELP_POLARITY_TRAIN: usize = 560_000;
const YELP_FULL_TRAIN: usize = 650_000;
/// Rows of AG News' official `test.csv`.
const AG_NEWS_TEST: usize = 7_600;

/// Reads `dataset` from `source` (a folder or `.tgz`). IMDb's 50,000 unlabelled reviews are read
/// only with `unsup`. WikiText is not a classification dataset and gives
/// [`DataError::Config`].
pub fn read_benchmark(
    dataset: Dataset,
    source: &Path,
    unsup: bool,
) -> Result<Benchmark, DataError> {
    let zhang = |name, kind, official| -> Result<Benchmark, DataError> {
        let data = read_zhang(source, kind)?;
        let note = if data.train.len() < official {
            format!(
                "sample of the dataset: {} training / {} test rows (official: {official} \
                 training rows); a smoke run of the reader and the {}-class head, not a result",
                data.train.len(),
                data.test.len(),
                data.n_classes()
            )
        } else {
            String::new()
        };
        Ok(Benchmark { name, data, note })
    };
    match dataset {
        Dataset::Trec6 => Ok(Benchmark {
            name: "trec6",
            data: read_trec(source)?.coarse(),
            note: String::new(),
        }),
        Dataset::Imdb => Ok(Benchmark {
            name: "imdb",
            data: read_imdb(source, unsup)?,
            note: String::new(),
        }),
        Dataset::AgNews => Ok(ag_news_from_test(read_zhang(source, ZhangDataset::AgNews)?)),
        Dataset::Dbpedia => zhang("dbpedia", ZhangDataset::DbPedia, DBPEDIA_TRAIN),
        Dataset::YelpPolarity => zhang(
            "yelp_polarity",
            ZhangDataset::YelpPolarity,
            YELP_POLARITY_TRAIN,
        ),
        Dataset::YelpFull => zhang("yelp_full", ZhangDataset::YelpFull, YELP_FULL_TRAIN),
        Dataset::WikiText2 | Dataset::WikiText103 => Err(DataError::Config(format!(
            "{dataset:?} is a language-modelling corpus, not a classification benchmark"
        ))),
    }
}

/// AG News as read; but when `train.csv` is incomplete (the 581-row sample) and `test.csv` is
/// complete, trains on 6,000 rows of `test.csv` and evaluates on its other 1,600: row `i` is held
/// out when `i % 19 < 4` (400 groups of 19 rows, so exactly 1,600, spread evenly over the file).
pub fn ag_news_from_test(data: TextClassificationData) -> Benchmark {
    if data.train.len() >= AG_NEWS_TRAIN || data.test.len() != AG_NEWS_TEST {
        return Benchmark {
            name: "ag_news",
            data,
            note: String::new(),
        };
    }
    let (mut train, mut test) = (vec![], vec![]);
    for (i, e) in data.test.into_iter().enumerate() {
        if i % 19 < 4 { &mut test } else { &mut train }.push(e);
    }
    let note = format!(
        "train.csv here is a {}-row sample, so this trains on {} rows of the official test.csv \
         and evaluates on its other {} rows (row i held out when i % 19 < 4); not comparable \
         with the paper's 120,000-row training set",
        data.train.len(),
        train.len(),
        test.len()
    );
    Benchmark {
        name: "ag_news",
        data: TextClassificationData {
            train,
            test,
            classes: data.classes,
            unsup: data.unsup,
        },
        note,
    }
}

/// The first `n` examples taking the classes in turn (file order within a class): a balanced,
/// deterministic subset. With `n` at least the number of examples, all of them.
pub fn balanced_take(examples: Vec<Example>, n: usize, n_classes: usize) -> Vec<Example> {
    if n >= examples.len() {
        return examples;
    }
    let labels: Vec<usize> = examples.iter().map(|e| e.label).collect();
    let mut slots: Vec<Option<Example>> = examples.into_iter().map(Some).collect();
    balanced_indices(&labels, n_classes, n)
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect()
}

/// The indices [`balanced_take`] keeps, in the order it keeps them: the classes in turn, file
/// order within a class, until `n` are taken or every class is used up (labels of `n_classes`
/// or more are skipped).
pub fn balanced_indices(labels: &[usize], n_classes: usize, n: usize) -> Vec<usize> {
    let mut by_class = vec![std::collections::VecDeque::new(); n_classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(q) = by_class.get_mut(l) {
            q.push_back(i);
        }
    }
    let mut out = Vec::with_capacity(n.min(labels.len()));
    while out.len() < n && by_class.iter().any(|q| !q.is_empty()) {
        for q in &mut by_class {
            if out.len() < n
                && let Some(i) = q.pop_front()
            {
                out.push(i);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: usize, i: usize) -> Example {
        Example {
            text: format!("text {i}"),
            label,
        }
    }

    #[test]
    fn ag_news_resplits_only_a_truncated_train_set() {
        let data = TextClassificationData {
            train: (0..581).map(|i| ex(i % 4, i)).collect(),
            test: (0..AG_NEWS_TEST).map(|i| ex(i % 4, i)).collect(),
            classes: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            unsup: vec![],
        };
        let b = ag_news_from_test(data.clone());
        assert_eq!((b.data.train.len(), b.data.test.len()), (6_000, 1_600));
        assert!(b.note.contains("6000 rows of the official test.csv"));
        // Held-out rows are exactly those with i % 19 < 4, in file order.
        assert_eq!(b.data.test[4].text, "text 19");
        // A complete copy is left alone.
        let mut full = data;
        full.train = (0..AG_NEWS_TRAIN).map(|i| ex(i % 4, i)).collect();
        let b = ag_news_from_test(full);
        assert_eq!(b.data.test.len(), AG_NEWS_TEST);
        assert!(b.note.is_empty());
    }

    #[test]
    fn balanced_take_alternates_classes_in_file_order() {
        let all: Vec<Example> = [0, 0, 0, 1, 1, 2]
            .iter()
            .enumerate()
            .map(|(i, &l)| ex(l, i))
            .collect();
        let got: Vec<usize> = balanced_take(all.clone(), 4, 3)
            .iter()
            .map(|e| e.label)
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0]);
        assert_eq!(balanced_take(all.clone(), 10, 3), all);
    }

    #[test]
    fn wikitext_is_refused_and_missing_folders_are_errors() {
        let err = read_benchmark(Dataset::WikiText2, Path::new("."), false).unwrap_err();
        assert!(matches!(err, DataError::Config(_)), "{err}");
        let missing = Path::new("/nonexistent/ulmfit-benchmark");
        for d in [
            Dataset::Trec6,
            Dataset::Imdb,
            Dataset::AgNews,
            Dataset::YelpFull,
        ] {
            assert!(read_benchmark(d, missing, false).is_err(), "{d:?}");
        }
    }
}
