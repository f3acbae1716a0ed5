//! Code shared by the benchmark examples (`trec6`, `imdb`, `ag_news`, `dbpedia`, `yelp_polarity`,
//! `yelp_full`, `pretrain_wikitext`, `fastai_pretrained`): the common flags, the presets, the
//! dataset readers with the slicing the available data needs, the ULMFiT pipeline for a labelled
//! dataset and the result line.
//!
//! Each example is a thin `main` around one of the `run_*` functions here, so the smoke test
//! (`tests/examples_smoke.rs`) runs exactly the examples' code.
// Every example uses only part of this module.
#![allow(dead_code)]

pub mod datasets;
pub mod outputs;
pub mod pipeline;
pub mod presets;
pub mod wikitext;

use std::path::PathBuf;
use std::process::ExitCode;

pub use presets::{Preset, Recipe};

/// Errors of the examples: any library error, shown with its message.
pub type Error = Box<dyn std::error::Error>;

/// The flags every classification example takes.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// The dataset's folder or `.tgz` archive; else `$ULMFIT_DATA`, the project's
    /// `../shared/data`, the download cache, or a download.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `small`: fastai's recipe with emb 200, hidden 600, 3 layers (sized for a CPU);
    /// `paper`: the paper's / fastai's sizes (emb 400, hidden 1152, 3 layers) and recipe.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    /// A pretrained language model to fine-tune (ULMFiT stage 2) before the classifier: a fastai
    /// folder (`lstm_fwd.pth` / `lstm_bwd.pth` + `itos_wt103.pkl`) or a `pretrain_wikitext
    /// --out` folder (`lm_fwd.bpk` / `lm_bwd.bpk`, `lm_config.json`, `vocab.json`).
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Train the backward model (token ids reversed per document, fastai `backwards=True`).
    #[arg(long, conflicts_with = "ensemble")]
    pub backwards: bool,
    /// Train a forward and a backward model and average their class probabilities (the paper's
    /// bidirectional ensemble).
    #[arg(long)]
    pub ensemble: bool,
    /// Skip every language-model stage: the classifier is trained from random weights.
    #[arg(long, conflicts_with = "pretrained")]
    pub from_scratch: bool,
    /// Classifier epochs: from scratch, the one-cycle epochs; after a language model, the
    /// epochs of the last (fully unfrozen) stage of gradual unfreezing. Default: the preset's.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Epochs of language-model fine-tuning with every layer trainable (after one epoch on the
    /// embedding/decoder only when pretrained). Without `--pretrained`, N > 0 first trains a
    /// language model from random weights on the task's text. Default: the preset's with
    /// `--pretrained`, else 0 (no LM stage).
    #[arg(long)]
    pub lm_epochs: Option<usize>,
    /// Peak learning rate of the classifier. Default: the preset's.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Peak learning rate of the language model's epochs with every layer trainable (fine-tuning,
    /// or training from random weights). Default: the preset's (fine-tuning: fastai's tutorial
    /// 1e-3 after WT103, the paper 4e-3, Howard & Ruder 2018 section 4; from random weights 1e-2).
    #[arg(long)]
    pub lm_lr: Option<f64>,
    /// Batch size of the classifier, and of the language model unless `--lm-bs` (fastai: 64).
    #[arg(long)]
    pub bs: Option<usize>,
    /// Batch size of the language model (default: `--bs`). A few hundred labelled documents
    /// make few classifier steps per epoch at 64; the language model's text does not.
    #[arg(long)]
    pub lm_bs: Option<usize>,
    /// Seed of data order, initialisation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu (the fastest CPU backend built in), ndarray, flex or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Mixed-precision training: the LSTMs' and decoder's products in bf16 on Intel AMX tiles
    /// (Xeon Sapphire Rapids and later; sums, weights and optimizer stay f32). No effect on
    /// other CPUs.
    #[arg(long)]
    pub bf16: bool,
    /// Save the trained classifier(s), the vocabulary and a description of the model here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A few batches of real data with a tiny model, to check the pipeline end to end.
    #[arg(long)]
    pub smoke: bool,
    /// Per-epoch metrics on a class-balanced subset of this many test documents (default: all).
    /// The reported result is always measured on the whole test set.
    #[arg(long)]
    pub valid_size: Option<usize>,
    /// Start the classifier from this fine-tuned encoder (written by `--save-encoder`) instead
    /// of fine-tuning the language model again, like fastai's `load_encoder`. Needs the same
    /// data flags and `--pretrained`, so that the vocabulary is the same; forward only.
    #[arg(long, requires = "pretrained", conflicts_with_all = ["ensemble", "backwards"])]
    pub encoder: Option<PathBuf>,
    /// Save the fine-tuned encoder here (fastai's `save_encoder`), for `--encoder`.
    #[arg(long)]
    pub save_encoder: Option<PathBuf>,
}

/// Prints the result as one JSON line (the last line of the output) and turns an error into a
/// message and a failure exit code.
pub fn finish<T: serde::Serialize>(result: Result<T, Error>) -> ExitCode {
    match result.and_then(|s| Ok(serde_json::to_string(&s)?)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a classification benchmark with the common flags (IMDb without its slicing flags).
pub fn run_bench(bench: datasets::Bench, args: &CommonArgs) -> Result<pipeline::Summary, Error> {
    let unsup = bench == datasets::Bench::Imdb && Recipe::new(args).has_lm_stage(args);
    let task = datasets::load(bench, args.data.as_deref(), unsup)?;
    pipeline::run(task, args)
}

/// Flags of the `imdb` example.
#[derive(clap::Args, Debug, Clone)]
pub struct ImdbArgs {
    /// The common flags.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Labelled training reviews to use, balanced over the two classes (default: all 25,000).
    #[arg(long)]
    pub train_size: Option<usize>,
    /// Unlabelled reviews the language model is fine-tuned on, besides the labelled training
    /// reviews (default: all 50,000).
    #[arg(long)]
    pub lm_slice: Option<usize>,
    /// Test reviews to evaluate on, balanced over the two classes (default: all 25,000).
    #[arg(long)]
    pub test_size: Option<usize>,
}

/// The `imdb` example: IMDb with optional slices of its labelled, unlabelled and test reviews.
pub fn run_imdb(args: &ImdbArgs) -> Result<pipeline::Summary, Error> {
    let common = &args.common;
    let unsup = Recipe::new(common).has_lm_stage(common);
    let mut task = datasets::load(datasets::Bench::Imdb, common.data.as_deref(), unsup)?;
    let n = task.data.n_classes();
    let mut notes = vec![];
    if let Some(k) = args.train_size {
        task.data.train = datasets::balanced_take(std::mem::take(&mut task.data.train), k, n);
        notes.push(format!(
            "{} labelled training reviews",
            task.data.train.len()
        ));
    }
    if let Some(k) = args.test_size {
        task.data.test = datasets::balanced_take(std::mem::take(&mut task.data.test), k, n);
        notes.push(format!("{} test reviews", task.data.test.len()));
    }
    if let Some(k) = args.lm_slice {
        task.data.unsup.truncate(k);
        if unsup {
            notes.push(format!(
                "{} unlabelled reviews for the language model",
                task.data.unsup.len()
            ));
        }
    }
    task.note = notes.join("; ");
    pipeline::run(task, common)
}

/// Flags of the `fastai_pretrained` example.
#[derive(clap::Args, Debug, Clone)]
pub struct FastaiArgs {
    /// The dataset to fine-tune on.
    #[arg(long, value_enum, default_value_t = datasets::Bench::Trec6)]
    pub dataset: datasets::Bench,
    /// The common flags (`--pretrained DIR` is required).
    #[command(flatten)]
    pub common: CommonArgs,
}

/// The `fastai_pretrained` example: fastai's WT103 model from `--pretrained`, fine-tuned on a
/// dataset (ULMFiT stages 2 and 3).
pub fn run_fastai(args: &FastaiArgs) -> Result<pipeline::Summary, Error> {
    if args.common.pretrained.is_none() {
        return Err(
            "--pretrained DIR is required: a folder with fastai's lstm_fwd.pth and \
                    itos_wt103.pkl (and lstm_bwd.pth for --backwards / --ensemble)"
                .into(),
        );
    }
    run_bench(args.dataset, &args.common)
}
