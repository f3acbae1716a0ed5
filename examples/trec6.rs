//! TREC-6 question classification with ULMFiT's classifier, trained from scratch (no
//! pretraining): the quickest real example.
//!
//! ```text
//! cargo run --release --example trec6 -- --data ../shared/data/trec
//! ```
//!
//! Recipe (`--preset small`): fastai's classifier with emb 200, hidden 600, 3 layers,
//! drop_mult 0.5, batch 64, one-cycle at lr 1e-2 for 8 epochs, as fastai 2.8.12 was measured
//! with on this machine (89 % test accuracy). Prints a metrics line per epoch and ends with one
//! JSON line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ulmfit::data::datasets::read_trec;
use ulmfit::data::download::{Dataset, ResolveOptions, resolve};
use ulmfit::nn::TextClassifierConfig;
use ulmfit::text::{Tokenizer, Vocab};
use ulmfit::train::{ClassifierLearner, LabelledDocs, LearnerConfig, LrSpec};

/// TREC-6 with ULMFiT's classifier.
#[derive(Parser, Debug)]
struct Args {
    /// The TREC folder (train_5500.label, TREC_10.label); else $ULMFIT_DATA/trec, the cache, or
    /// a download.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Epochs of one-cycle training.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    bs: usize,
    /// Seed of data order, initialisation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Device: cpu, ndarray, flex or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// A few batches with a tiny model, to check the pipeline end to end.
    #[arg(long)]
    smoke: bool,
}

fn run(args: Args) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let dir = resolve(
        Dataset::Trec6,
        args.data.as_deref(),
        &ResolveOptions::from_env(),
    )?;
    let data = read_trec(&dir)?.coarse();
    let tokenizer = Tokenizer::default();
    let mut train_texts: Vec<&str> = data.train.iter().map(|e| e.text.as_str()).collect();
    let mut train_labels: Vec<usize> = data.train.iter().map(|e| e.label).collect();
    let test_texts: Vec<&str> = data.test.iter().map(|e| e.text.as_str()).collect();
    let test_labels: Vec<usize> = data.test.iter().map(|e| e.label).collect();
    if args.smoke {
        train_texts.truncate(256);
        train_labels.truncate(256);
    }
    let train_tokens = tokenizer.tokenize_all(&train_texts);
    let test_tokens = tokenizer.tokenize_all(&test_texts);
    // fastai's defaults for a classifier without a language model: min_freq 3.
    let vocab = Vocab::from_docs(&train_tokens, 3, 60_000);
    let ids = |docs: &[Vec<String>]| -> Vec<Vec<u32>> {
        docs.iter().map(|d| vocab.numericalize(d)).collect()
    };
    let device = ulmfit::device::parse(&args.device)?.autodiff();
    device.seed(args.seed);
    let (emb, hidden) = if args.smoke { (16, 32) } else { (200, 600) };
    // fastai's classifier (drop_mult 0.5), with the `small` sizes.
    let mut model_config = TextClassifierConfig::fastai(vocab.len(), data.n_classes(), 0.5);
    model_config.encoder = model_config
        .encoder
        .with_emb_size(emb)
        .with_hidden_size(hidden);
    let model = model_config.init(&device);
    let config = LearnerConfig {
        bs: args.bs,
        seed: args.seed,
        ..LearnerConfig::default()
    };
    let train = LabelledDocs {
        docs: ids(&train_tokens),
        labels: train_labels,
    };
    let test = LabelledDocs {
        docs: ids(&test_tokens),
        labels: test_labels,
    };
    let mut learn = ClassifierLearner::new(model, train, test, config)?;
    let epochs = if args.smoke { 1 } else { args.epochs };
    let start = Instant::now();
    learn.fit_one_cycle(epochs, LrSpec::Float(args.lr))?;
    let train_seconds = start.elapsed().as_secs_f64();
    let m = learn.validate()?.ok_or("no test set")?;
    Ok(serde_json::json!({
        "dataset": "trec6",
        "preset": if args.smoke { "smoke" } else { "small" },
        "accuracy": m.accuracy,
        "error": m.error_rate,
        "f1": m.f1,
        "train_seconds": train_seconds,
        "epochs": epochs,
        "seed": args.seed,
        "vocab": vocab.len(),
        "device": args.device,
    }))
}

fn main() -> ExitCode {
    match run(Args::parse()) {
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
