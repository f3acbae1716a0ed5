//! The ULMFiT pipeline for a labelled dataset: tokenize, build the vocabulary, optionally
//! fine-tune a language model (stage 2), train the classifier (stage 3: gradual unfreezing
//! after a language model, one-cycle from scratch otherwise), forward, backward or both, and
//! evaluate on the test set.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use ulmfit::data::datasets::TextClassificationData;
use ulmfit::nn::{LanguageModelConfig, TextClassifierConfig};
use ulmfit::text::{Tokenizer, Vocab};
use ulmfit::train::metrics::ConfusionMatrix;
use ulmfit::train::{
    ClassifierLearner, LabelledDocs, LanguageModelLearner, LearnerConfig, LmLearnerConfig, LrSpec,
    Policy,
};

use super::datasets::{Task, balanced_take};
use super::outputs::{Direction, save_outputs};
use super::{CommonArgs, Error, Recipe};

/// Test-set metrics of one model or of the ensemble.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Scores {
    /// Accuracy on the test set.
    pub accuracy: f64,
    /// 1 - accuracy.
    pub error: f64,
    /// Macro-averaged F1.
    pub f1: f64,
}

impl Scores {
    /// Scores of the argmax of each probability row against `labels`.
    pub fn of(probs: &[Vec<f32>], labels: &[usize], n_classes: usize) -> Result<Self, Error> {
        let mut cm = ConfusionMatrix::new(n_classes);
        for (p, &t) in probs.iter().zip(labels) {
            let pred = p
                .iter()
                .enumerate()
                .fold(
                    (0, f32::NEG_INFINITY),
                    |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                )
                .0;
            cm.add(pred, t)?;
        }
        let accuracy = cm.accuracy().ok_or("empty test set")?;
        Ok(Scores {
            accuracy,
            error: 1.0 - accuracy,
            f1: cm.macro_f1().unwrap_or(0.0),
        })
    }
}

/// What one direction's model did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DirectionResult {
    /// `fwd` or `bwd`.
    pub direction: Direction,
    /// Its test scores.
    #[serde(flatten)]
    pub scores: Scores,
    /// Validation perplexity of the fine-tuned language model (none without an LM stage).
    pub lm_perplexity: Option<f64>,
    /// Seconds spent training the language model.
    pub lm_seconds: f64,
    /// Seconds spent training the classifier.
    pub clas_seconds: f64,
}

/// The result line of a classification example.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Dataset name.
    pub dataset: String,
    /// `small`, `paper`, or `smoke`.
    pub preset: String,
    /// Test accuracy of the reported model (the ensemble with `--ensemble`).
    pub accuracy: f64,
    /// Test error rate (1 - accuracy).
    pub error: f64,
    /// Test macro F1.
    pub f1: f64,
    /// Seconds of training (language models and classifiers, all directions).
    pub train_seconds: f64,
    /// `fwd`, `bwd` or `ensemble`.
    pub model: String,
    /// Each direction's own result.
    pub directions: Vec<DirectionResult>,
    /// Test accuracy of the averaged probabilities (with `--ensemble`).
    pub ensemble_accuracy: Option<f64>,
    /// `ulmfit` (LM fine-tuning + gradual unfreezing) or `from_scratch` (one-cycle classifier).
    pub recipe: String,
    /// Classifier epochs (one-cycle, or the last stage of gradual unfreezing).
    pub epochs: usize,
    /// Language-model epochs with every layer trainable.
    pub lm_epochs: usize,
    /// Seed.
    pub seed: u64,
    /// Vocabulary size.
    pub vocab: usize,
    /// Number of classes.
    pub n_classes: usize,
    /// Labelled training documents.
    pub n_train: usize,
    /// Test documents.
    pub n_test: usize,
    /// Documents the language model was fine-tuned on (training + validation).
    pub n_lm_docs: usize,
    /// The pretrained model's folder.
    pub pretrained: Option<String>,
    /// Device name.
    pub device: String,
    /// Products of training: `f32`, or `bf16` (mixed precision on AMX tiles, `--bf16` on a CPU
    /// that has them).
    pub precision: String,
    /// Where the trained model was saved.
    pub out: Option<String>,
    /// What was done to the data (slices, samples), said plainly.
    pub note: String,
}

/// Runs the pipeline on `task` with the flags `args`.
pub fn run(mut task: Task, args: &CommonArgs) -> Result<Summary, Error> {
    let recipe = Recipe::new(args);
    if recipe.max_docs > 0 {
        shrink(&mut task.data, recipe.max_docs);
    }
    let data = &task.data;
    let n_classes = data.n_classes();
    let with_lm = recipe.has_lm_stage(args);
    let tokenizer = Tokenizer::default();
    let texts = |ex: &[ulmfit::data::datasets::Example]| -> Vec<String> {
        ex.iter().map(|e| e.text.clone()).collect()
    };
    let train_tokens = tokenizer.tokenize_all(&texts(&data.train));
    let test_tokens = tokenizer.tokenize_all(&texts(&data.test));
    // The language model reads the labelled training texts and the unlabelled ones (not the
    // test texts, which fastai's IMDb tutorial also uses).
    let unsup_tokens = if with_lm {
        tokenizer.tokenize_all(&data.unsup)
    } else {
        vec![]
    };
    let mut vocab_docs = train_tokens.clone();
    vocab_docs.extend(unsup_tokens.iter().cloned());
    let vocab = Vocab::from_docs(&vocab_docs, recipe.min_freq, recipe.max_vocab);
    let ids = |docs: &[Vec<String>]| -> Vec<Vec<u32>> {
        docs.iter().map(|d| vocab.numericalize(d)).collect()
    };
    let train_ids = ids(&train_tokens);
    let test_ids = ids(&test_tokens);
    let lm_ids: Vec<Vec<u32>> = if with_lm {
        train_ids
            .iter()
            .cloned()
            .chain(ids(&unsup_tokens))
            .collect()
    } else {
        vec![]
    };
    let train_labels: Vec<usize> = data.train.iter().map(|e| e.label).collect();
    let test_labels: Vec<usize> = data.test.iter().map(|e| e.label).collect();

    ulmfit::malloc::keep_freed_memory();
    let device = ulmfit::device::parse(&args.device)?.autodiff();
    device.seed(args.seed);
    let directions = if args.ensemble {
        vec![Direction::Fwd, Direction::Bwd]
    } else if args.backwards {
        vec![Direction::Bwd]
    } else {
        vec![Direction::Fwd]
    };
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
    }
    let preset = if args.smoke {
        "smoke"
    } else {
        args.preset.name()
    }
    .to_string();
    let scratch = TempPath::new("encoder");
    let mut results = vec![];
    let mut all_probs = vec![];
    for &dir in &directions {
        eprintln!("== {} model: {}", dir.name(), task.name);
        let rev = |docs: &[Vec<u32>]| -> Vec<Vec<u32>> {
            docs.iter()
                .map(|d| {
                    let mut d = d.clone();
                    if dir == Direction::Bwd {
                        d.reverse();
                    }
                    d
                })
                .collect()
        };
        let mut sizes = (recipe.emb, recipe.hidden, recipe.layers);
        let (mut lm_perplexity, mut lm_seconds) = (None, 0.0);
        if let (true, Some(encoder)) = (with_lm, &args.encoder) {
            eprintln!("fine-tuned encoder: {}", encoder.display());
            std::fs::copy(encoder, &scratch.0)?;
        } else if with_lm {
            let lm = fine_tune_lm(&recipe, args, dir, &vocab, &lm_ids, &device, &scratch.0)?;
            lm_perplexity = lm.perplexity;
            lm_seconds = lm.seconds;
            sizes = lm.sizes;
        }
        if let (true, Some(save)) = (with_lm, &args.save_encoder) {
            std::fs::copy(&scratch.0, save)?;
        }
        let mut config =
            TextClassifierConfig::fastai(vocab.len(), n_classes, recipe.clas_drop_mult);
        config.encoder = config
            .encoder
            .with_emb_size(sizes.0)
            .with_hidden_size(sizes.1)
            .with_n_layers(sizes.2);
        let model = config.init(&device);
        let lc = LearnerConfig {
            bs: recipe.bs,
            seed: args.seed,
            bf16: args.bf16,
            ..LearnerConfig::default()
        };
        let train = LabelledDocs {
            docs: rev(&train_ids),
            labels: train_labels.clone(),
        };
        // The test set is the validation set of every epoch's metrics line, as in fastai's IMDb
        // tutorial; nothing is selected on it (the last epoch's model is the one reported).
        let test_docs = rev(&test_ids);
        let valid_rows = balanced_rows(&test_labels, n_classes, args.valid_size);
        let test = LabelledDocs {
            docs: valid_rows.iter().map(|&i| test_docs[i].clone()).collect(),
            labels: valid_rows.iter().map(|&i| test_labels[i]).collect(),
        };
        let mut learn = ClassifierLearner::new(model, train, test, lc)?;
        let start = Instant::now();
        if with_lm {
            learn.load_encoder(&scratch.0)?;
            learn.gradual_unfreezing(recipe.clas_lr, recipe.clas_epochs, &Policy::one_cycle())?;
        } else {
            learn.fit_one_cycle(recipe.scratch_epochs, LrSpec::Float(recipe.scratch_lr))?;
        }
        let clas_seconds = start.elapsed().as_secs_f64();
        let probs = learn.predict(&test_docs)?;
        let scores = Scores::of(&probs, &test_labels, n_classes)?;
        eprintln!(
            "{} test accuracy {:.4} (error {:.2} %)",
            dir.name(),
            scores.accuracy,
            100.0 * scores.error
        );
        if let Some(out) = &args.out {
            save_outputs(
                out,
                &learn.model,
                &config,
                &vocab,
                &data.classes,
                dir,
                &preset,
            )?;
        }
        all_probs.push(probs);
        results.push(DirectionResult {
            direction: dir,
            scores,
            lm_perplexity,
            lm_seconds,
            clas_seconds,
        });
    }
    let ensemble = if all_probs.len() == 2 {
        let avg: Vec<Vec<f32>> = all_probs[0]
            .iter()
            .zip(&all_probs[1])
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect())
            .collect();
        Some(Scores::of(&avg, &test_labels, n_classes)?)
    } else {
        None
    };
    let main = ensemble.unwrap_or(results[0].scores);
    Ok(Summary {
        dataset: task.name.to_string(),
        preset,
        accuracy: main.accuracy,
        error: main.error,
        f1: main.f1,
        train_seconds: results.iter().map(|r| r.lm_seconds + r.clas_seconds).sum(),
        model: match directions.len() {
            2 => "ensemble".to_string(),
            _ => directions[0].name().to_string(),
        },
        directions: results,
        ensemble_accuracy: ensemble.map(|s| s.accuracy),
        recipe: if with_lm { "ulmfit" } else { "from_scratch" }.to_string(),
        epochs: if with_lm {
            recipe.clas_epochs
        } else {
            recipe.scratch_epochs
        },
        lm_epochs: if with_lm { recipe.lm_epochs } else { 0 },
        seed: args.seed,
        vocab: vocab.len(),
        n_classes,
        n_train: data.train.len(),
        n_test: data.test.len(),
        n_lm_docs: lm_ids.len(),
        pretrained: args.pretrained.as_ref().map(|p| p.display().to_string()),
        device: args.device.clone(),
        precision: if args.bf16 && ulmfit::ops::bf16_linear::runs_on_tiles(&device) {
            "bf16"
        } else {
            "f32"
        }
        .to_string(),
        out: args.out.as_ref().map(|p| p.display().to_string()),
        note: note(&task.note, args),
    })
}

/// The task's note, plus a warning when `--preset paper` runs without the pretrained model the
/// paper's numbers depend on.
/// Rows `0..labels.len()`, or with `size` a class-balanced subset of that many (the per-epoch
/// validation rows).
fn balanced_rows(labels: &[usize], n_classes: usize, size: Option<usize>) -> Vec<usize> {
    match size.filter(|&k| k < labels.len()) {
        Some(k) => ulmfit::data::datasets::balanced_indices(labels, n_classes, k),
        None => (0..labels.len()).collect(),
    }
}

fn note(task_note: &str, args: &CommonArgs) -> String {
    let mut parts: Vec<String> = vec![];
    if !task_note.is_empty() {
        parts.push(task_note.to_string());
    }
    if args.preset == super::Preset::Paper && args.pretrained.is_none() {
        parts.push(
            "no --pretrained model: the paper's sizes without its WT103 pretraining, so not \
             the paper's recipe"
                .to_string(),
        );
    }
    if let Some(k) = args.valid_size {
        parts.push(format!(
            "per-epoch metrics on {k} test documents; the result on all of them"
        ));
    }
    if let Some(e) = &args.encoder {
        parts.push(format!(
            "classifier started from the fine-tuned encoder {} (language-model time not included)",
            e.display()
        ));
    }
    parts.join("; ")
}

/// Smoke runs: a balanced handful of training / test / unlabelled documents.
pub fn shrink(data: &mut TextClassificationData, max_docs: usize) {
    let n = data.n_classes();
    data.train = balanced_take(std::mem::take(&mut data.train), max_docs, n);
    data.test = balanced_take(std::mem::take(&mut data.test), max_docs / 2, n);
    data.unsup.truncate(max_docs);
}

/// The fine-tuned language model of one direction.
struct LmOutcome {
    perplexity: Option<f64>,
    seconds: f64,
    /// (emb, hidden, layers) of the encoder.
    sizes: (usize, usize, usize),
}

/// ULMFiT stage 2: a pretrained language model (fastai or `pretrain_wikitext`) adapted to
/// `vocab` and fine-tuned on the task's text (fastai v2 tutorial: one epoch on the
/// embedding/decoder at 1e-2, then every layer at 1e-3), or, without one, a language model
/// trained from random weights on that text. Saves its encoder to `encoder`.
fn fine_tune_lm(
    recipe: &Recipe,
    args: &CommonArgs,
    dir: Direction,
    vocab: &Vocab,
    docs: &[Vec<u32>],
    device: &Device,
    encoder: &Path,
) -> Result<LmOutcome, Error> {
    // fastai holds out a random 10 %; every tenth document here (deterministic).
    let (mut train, mut valid) = (vec![], vec![]);
    for (i, d) in docs.iter().enumerate() {
        if i % 10 == 9 { &mut valid } else { &mut train }.push(d.clone());
    }
    let (lm, sizes) = match &args.pretrained {
        Some(folder) => {
            let pre =
                super::wikitext::load_pretrained(folder, dir, vocab, recipe.lm_drop_mult, device)?;
            eprintln!(
                "pretrained {} language model: {} (emb {}, hidden {}, {} layers), {} of {} tokens \
                 found in its vocabulary",
                dir.name(),
                pre.source,
                pre.sizes.0,
                pre.sizes.1,
                pre.sizes.2,
                pre.matched,
                vocab.len()
            );
            (pre.model, pre.sizes)
        }
        None => {
            let mut cfg = LanguageModelConfig::fastai(vocab.len(), recipe.lm_drop_mult);
            cfg.encoder = cfg
                .encoder
                .with_emb_size(recipe.emb)
                .with_hidden_size(recipe.hidden)
                .with_n_layers(recipe.layers);
            (cfg.init(device), (recipe.emb, recipe.hidden, recipe.layers))
        }
    };
    let config = LmLearnerConfig {
        learner: LearnerConfig {
            bs: recipe.lm_bs,
            seed: args.seed,
            bf16: args.bf16,
            ..LearnerConfig::default()
        },
        backwards: dir == Direction::Bwd,
        ..LmLearnerConfig::default()
    };
    let mut learn = LanguageModelLearner::new(lm, train, valid, config)?;
    let start = Instant::now();
    if args.pretrained.is_some() {
        learn.freeze();
        learn.fit_one_cycle(1, LrSpec::Float(recipe.lm_head_lr))?;
        learn.unfreeze();
        if recipe.lm_epochs > 0 {
            learn.fit_one_cycle(recipe.lm_epochs, LrSpec::Float(recipe.lm_lr))?;
        }
    } else if recipe.lm_epochs > 0 {
        learn.fit_one_cycle(recipe.lm_epochs, LrSpec::Float(recipe.lm_scratch_lr))?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let perplexity = learn.validate()?.map(|m| m.perplexity);
    learn.save_encoder(encoder)?;
    Ok(LmOutcome {
        perplexity,
        seconds,
        sizes,
    })
}

/// A file path under the system temp folder, removed on drop.
pub struct TempPath(pub PathBuf);

impl TempPath {
    /// A unique path named after `tag`.
    pub fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        TempPath(std::env::temp_dir().join(format!(
            "ulmfit-example-{tag}-{}-{n}.bpk",
            std::process::id()
        )))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
