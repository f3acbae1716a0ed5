//! Reading each benchmark dataset into a [`Task`], with the slicing the available data needs.

use std::path::{Path, PathBuf};

use ulmfit::data::datasets::{
    Example, TextClassificationData, ZhangDataset, read_imdb, read_trec, read_zhang,
};
use ulmfit::data::download::{Dataset, ResolveOptions, resolve};

use super::Error;

/// A labelled dataset ready for the pipeline.
#[derive(Debug, Clone)]
pub struct Task {
    /// Name in the result line (`trec6`, `imdb`, `ag_news`, ...).
    pub name: &'static str,
    /// Train / test examples, class names, unlabelled texts for the language model.
    pub data: TextClassificationData,
    /// What was done to the data, said plainly in the result line (empty: nothing).
    pub note: String,
}

/// The dataset benchmarks of the examples.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bench {
    /// TREC-6 question classification.
    Trec6,
    /// IMDb movie reviews.
    Imdb,
    /// AG News topics.
    AgNews,
    /// DBpedia ontology classes.
    Dbpedia,
    /// Yelp review polarity.
    YelpPolarity,
    /// Yelp review stars.
    YelpFull,
}

/// Finds a dataset: `explicit`, else `$ULMFIT_DATA`, else the project's `../shared/data` when it
/// exists, else the cache or a download. Archives are handed to the readers as they are (they
/// stream them).
pub fn locate(dataset: Dataset, explicit: Option<&Path>) -> Result<PathBuf, Error> {
    let mut opts = ResolveOptions::from_env();
    opts.keep_archives = true;
    if opts.data_dir.is_none() {
        let shared = ulmfit::paths::data_dir();
        if shared.is_dir() {
            opts.data_dir = Some(shared);
        }
    }
    Ok(resolve(dataset, explicit, &opts)?)
}

/// Reads `bench` from `data` (or finds it, see [`locate`]). IMDb's unlabelled reviews are read
/// only with `unsup`.
pub fn load(bench: Bench, data: Option<&Path>, unsup: bool) -> Result<Task, Error> {
    Ok(match bench {
        Bench::Trec6 => Task {
            name: "trec6",
            data: read_trec(locate(Dataset::Trec6, data)?)?.coarse(),
            note: String::new(),
        },
        Bench::Imdb => Task {
            name: "imdb",
            data: read_imdb(locate(Dataset::Imdb, data)?, unsup)?,
            note: String::new(),
        },
        Bench::AgNews => ag_news(read_zhang(
            locate(Dataset::AgNews, data)?,
            ZhangDataset::AgNews,
        )?),
        Bench::Dbpedia => zhang(
            "dbpedia",
            Dataset::Dbpedia,
            ZhangDataset::DbPedia,
            data,
            560_000,
        )?,
        Bench::YelpPolarity => zhang(
            "yelp_polarity",
            Dataset::YelpPolarity,
            ZhangDataset::YelpPolarity,
            data,
            560_000,
        )?,
        Bench::YelpFull => zhang(
            "yelp_full",
            Dataset::YelpFull,
            ZhangDataset::YelpFull,
            data,
            650_000,
        )?,
    })
}

fn zhang(
    name: &'static str,
    dataset: Dataset,
    kind: ZhangDataset,
    data: Option<&Path>,
    official_train: usize,
) -> Result<Task, Error> {
    let data = read_zhang(locate(dataset, data)?, kind)?;
    let note = if data.train.len() < official_train {
        format!(
            "sample of the dataset: {} training / {} test rows (official: {official_train} \
             training rows); a smoke run of the reader and the {}-class head, not a result",
            data.train.len(),
            data.test.len(),
            data.n_classes()
        )
    } else {
        String::new()
    };
    Ok(Task { name, data, note })
}

/// The official AG News training set has 120,000 rows.
const AG_NEWS_TRAIN: usize = 120_000;

/// AG News; when `train.csv` is incomplete (the 581-row sample), trains on 6,000 rows of the
/// (complete) `test.csv` and evaluates on the other 1,600: row `i` is held out when
/// `i % 19 < 4` (400 groups of 19 rows, so exactly 1,600, spread evenly over the file).
pub fn ag_news(data: TextClassificationData) -> Task {
    if data.train.len() >= AG_NEWS_TRAIN || data.test.len() != 7_600 {
        return Task {
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
    Task {
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
/// deterministic subset. `n` at least the number of examples returns them all.
pub fn balanced_take(examples: Vec<Example>, n: usize, n_classes: usize) -> Vec<Example> {
    if n >= examples.len() {
        return examples;
    }
    let mut by_class: Vec<std::collections::VecDeque<Example>> =
        vec![Default::default(); n_classes];
    for e in examples {
        if let Some(q) = by_class.get_mut(e.label) {
            q.push_back(e);
        }
    }
    let mut out = Vec::with_capacity(n);
    while out.len() < n && by_class.iter().any(|q| !q.is_empty()) {
        for q in &mut by_class {
            if out.len() < n
                && let Some(e) = q.pop_front()
            {
                out.push(e);
            }
        }
    }
    out
}
