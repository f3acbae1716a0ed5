//! Finding and reading each benchmark dataset into a [`Task`] (the library does the reading).

use std::path::{Path, PathBuf};

pub use ulmfit::data::datasets::balanced_take;
use ulmfit::data::datasets::{Benchmark, read_benchmark};
use ulmfit::data::download::{Dataset, ResolveOptions, resolve};

use super::Error;

/// A labelled dataset ready for the pipeline (the library's [`Benchmark`]).
pub type Task = Benchmark;

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

impl Bench {
    /// The library's name of the dataset.
    pub fn dataset(self) -> Dataset {
        match self {
            Bench::Trec6 => Dataset::Trec6,
            Bench::Imdb => Dataset::Imdb,
            Bench::AgNews => Dataset::AgNews,
            Bench::Dbpedia => Dataset::Dbpedia,
            Bench::YelpPolarity => Dataset::YelpPolarity,
            Bench::YelpFull => Dataset::YelpFull,
        }
    }
}

/// Reads `bench` from `data` (or finds it, see [`locate`]) with the library's
/// [`read_benchmark`] (which notes samples and re-splits a truncated AG News). IMDb's
/// unlabelled reviews are read only with `unsup`.
pub fn load(bench: Bench, data: Option<&Path>, unsup: bool) -> Result<Task, Error> {
    let dataset = bench.dataset();
    Ok(read_benchmark(dataset, &locate(dataset, data)?, unsup)?)
}
