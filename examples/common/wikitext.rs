//! Language models: pretraining on WikiText (`pretrain_wikitext`) and loading a pretrained model
//! (fastai's WT103 files or a `pretrain_wikitext --out` folder) for a new vocabulary.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use ulmfit::data::datasets::{WikiTextSplit, read_wikitext, wikitext_articles};
use ulmfit::data::download::Dataset;
use ulmfit::fastai::{load_fastai_lm, match_embeds};
use ulmfit::nn::{LanguageModel, LanguageModelConfig};
use ulmfit::text::{Tokenizer, Vocab};
use ulmfit::train::{LanguageModelLearner, LearnerConfig, LmLearnerConfig, LrSpec, Policy};

use ulmfit::pretrained;

use super::outputs::Direction;
use super::{Error, Preset};

/// A pretrained language model adapted to a new vocabulary.
pub struct Pretrained {
    /// The model, on the training device, with the new vocabulary's embedding (fastai
    /// `match_embeds`: unseen tokens get the mean row).
    pub model: LanguageModel,
    /// (emb, hidden, layers) of the file.
    pub sizes: (usize, usize, usize),
    /// The files read.
    pub source: String,
    /// Tokens of the new vocabulary found in the pretrained one.
    pub matched: usize,
}

/// Loads the `direction` language model from `folder`: fastai's `lstm_fwd.pth` / `lstm_bwd.pth`
/// with `itos_wt103.pkl` (also `<prefix>lstm_fwd.pth` with `<prefix>itos.pkl`, as in the
/// fixtures), or a `pretrain_wikitext --out` folder; adapts it to `vocab` with `match_embeds`.
pub fn load_pretrained(
    folder: &Path,
    direction: Direction,
    vocab: &Vocab,
    drop_mult: f64,
    device: &Device,
) -> Result<Pretrained, Error> {
    let backwards = direction == Direction::Bwd;
    let (mut sd, old_itos, sizes, source) = if pretrained::exists(folder, backwards) {
        let saved = pretrained::load(folder, backwards, device, |c| c)?;
        let e = &saved.config.encoder;
        (
            ulmfit::weights::language_model_state_dict(&saved.model),
            saved.vocab.itos().to_vec(),
            (e.emb_size, e.hidden_size, e.n_layers),
            folder
                .join(pretrained::lm_file(backwards))
                .display()
                .to_string(),
        )
    } else {
        let (pth, itos_path) = find_fastai_files(folder, direction)?;
        let (sd, itos, dims) = load_fastai_lm(&pth, &itos_path)?;
        if dims.bidirectional {
            return Err(format!(
                "{}: bidirectional layers are not supported here",
                pth.display()
            )
            .into());
        }
        (
            sd,
            itos,
            (dims.emb_size, dims.hidden_size, dims.n_layers),
            format!("{} + {}", pth.display(), itos_path.display()),
        )
    };
    let known: HashSet<&str> = old_itos.iter().map(String::as_str).collect();
    let matched = vocab
        .itos()
        .iter()
        .filter(|t| known.contains(t.as_str()))
        .count();
    match_embeds(&mut sd, &old_itos, vocab.itos())?;
    let mut cfg = LanguageModelConfig::fastai(vocab.len(), drop_mult);
    cfg.encoder = cfg
        .encoder
        .with_emb_size(sizes.0)
        .with_hidden_size(sizes.1)
        .with_n_layers(sizes.2);
    let model = ulmfit::weights::load_language_model(cfg.init(device), &sd)?;
    Ok(Pretrained {
        model,
        sizes,
        source,
        matched,
    })
}

/// The `.pth` of `direction` and its `itos` pickle in a fastai folder.
fn find_fastai_files(folder: &Path, direction: Direction) -> Result<(PathBuf, PathBuf), Error> {
    let suffix = format!("lstm_{}.pth", direction.name());
    let mut candidates: Vec<PathBuf> = std::fs::read_dir(folder)
        .map_err(|e| format!("{}: {e}", folder.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(&suffix))
        })
        .collect();
    candidates.sort();
    let Some(pth) = candidates.first().cloned() else {
        return Err(format!(
            "{}: no {suffix} (fastai) nor {} (pretrain_wikitext) in this folder",
            folder.display(),
            pretrained::lm_file(direction == Direction::Bwd)
        )
        .into());
    };
    let name = pth
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let prefix = name.strip_suffix(&suffix).unwrap_or_default();
    let itos = [
        "itos_wt103.pkl".to_string(),
        format!("{prefix}itos.pkl"),
        format!("{prefix}itos_wt103.pkl"),
    ]
    .into_iter()
    .map(|n| folder.join(n))
    .find(|p| p.is_file())
    .ok_or_else(|| format!("{}: no itos_wt103.pkl beside {name}", folder.display()))?;
    Ok((pth, itos))
}

/// Flags of `pretrain_wikitext`.
#[derive(clap::Args, Debug, Clone)]
pub struct PretrainArgs {
    /// The WikiText folder (`wiki.{train,valid,test}.tokens`); else `$ULMFIT_DATA`, the
    /// project's `../shared/data` (`wikitext-2-sample`), the cache, or a download.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `small`: emb 200, hidden 600, 3 layers; `paper`: emb 400, hidden 1152, 3 layers.
    #[arg(long, value_enum, default_value_t = Preset::Small)]
    pub preset: Preset,
    /// Train the backward model (documents reversed).
    #[arg(long)]
    pub backwards: bool,
    /// One-cycle epochs (fastai's WT103 script: 12).
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    /// Peak learning rate (fastai's WT103 script: 1e-2, div 10).
    #[arg(long, default_value_t = 1e-2)]
    pub lr: f64,
    /// Batch size (fastai default 64; its WT103 script: 256).
    #[arg(long, default_value_t = 64)]
    pub bs: usize,
    /// Dropout multiplier (fastai's WT103 script: 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub drop_mult: f64,
    /// Seed of data order, initialisation and dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Device: cpu, ndarray, flex or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Save the language model, its encoder, its configuration and vocabulary here (for
    /// `--pretrained` of the classification examples).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A few batches with a tiny model, to check the pipeline end to end.
    #[arg(long)]
    pub smoke: bool,
}

/// The result line of `pretrain_wikitext`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PretrainSummary {
    /// `wikitext-2` (or the folder's name).
    pub dataset: String,
    /// `small`, `paper` or `smoke`.
    pub preset: String,
    /// Next-token accuracy on the evaluation split.
    pub accuracy: f64,
    /// 1 - accuracy.
    pub error: f64,
    /// Perplexity on the evaluation split.
    pub perplexity: f64,
    /// Mean cross-entropy per token on the evaluation split.
    pub loss: f64,
    /// Seconds of training.
    pub train_seconds: f64,
    /// Epochs.
    pub epochs: usize,
    /// `fwd` or `bwd`.
    pub model: String,
    /// Vocabulary size.
    pub vocab: usize,
    /// Tokens of the training split (after tokenization).
    pub train_tokens: usize,
    /// Tokens of the evaluation split.
    pub eval_tokens: usize,
    /// Seed.
    pub seed: u64,
    /// Device name.
    pub device: String,
    /// Where the model was saved.
    pub out: Option<String>,
    /// Which splits were used, said plainly.
    pub note: String,
}

/// Pretrains a language model on WikiText: on `wiki.train.tokens` when it exists, else (the
/// WikiText-2 sample here) on `wiki.valid.tokens`; evaluates on `wiki.test.tokens`.
pub fn run_pretrain(args: &PretrainArgs) -> Result<PretrainSummary, Error> {
    let dir = super::datasets::locate(Dataset::WikiText2, args.data.as_deref())?;
    let has_train = WikiTextSplit::Train.path(&dir).is_file();
    let (train_split, note) = if has_train {
        (
            WikiTextSplit::Train,
            "trained on wiki.train.tokens, evaluated on wiki.test.tokens",
        )
    } else {
        (
            WikiTextSplit::Valid,
            "wiki.train.tokens is not available: trained on wiki.valid.tokens, evaluated on \
             wiki.test.tokens",
        )
    };
    // fastai's WT103 script: articles split at the `= title =` lines, `<unk>` -> `xxunk`.
    let articles = |split| -> Result<Vec<String>, Error> {
        let lines = read_wikitext(&dir, split)?;
        Ok(wikitext_articles(&lines)
            .into_iter()
            .map(|a| a.replace("<unk>", "xxunk"))
            .collect())
    };
    let mut train_text = articles(train_split)?;
    let mut eval_text = articles(WikiTextSplit::Test)?;
    let (mut emb, mut hidden, mut layers) = match args.preset {
        Preset::Small => (200, 600, 3),
        Preset::Paper => (400, 1152, 3),
    };
    let mut epochs = args.epochs;
    if args.smoke {
        (emb, hidden, layers, epochs) = (16, 32, 2, 1);
        // A few articles cut short: a handful of batches.
        for text in [&mut train_text, &mut eval_text] {
            text.truncate(4);
            for a in text.iter_mut() {
                let cut = a.char_indices().nth(3_000).map_or(a.len(), |(i, _)| i);
                a.truncate(cut);
            }
        }
    }
    let tokenizer = Tokenizer::default();
    let train_tokens = tokenizer.tokenize_all(&train_text);
    let eval_tokens = tokenizer.tokenize_all(&eval_text);
    let vocab = Vocab::from_docs(&train_tokens, 3, 60_000);
    let ids = |docs: &[Vec<String>]| -> Vec<Vec<u32>> {
        docs.iter().map(|d| vocab.numericalize(d)).collect()
    };
    ulmfit::malloc::keep_freed_memory();
    let device = ulmfit::device::parse(&args.device)?.autodiff();
    device.seed(args.seed);
    let mut cfg = LanguageModelConfig::fastai(vocab.len(), args.drop_mult);
    cfg.encoder = cfg
        .encoder
        .with_emb_size(emb)
        .with_hidden_size(hidden)
        .with_n_layers(layers);
    let direction = if args.backwards {
        Direction::Bwd
    } else {
        Direction::Fwd
    };
    let config = LmLearnerConfig {
        learner: LearnerConfig {
            bs: if args.smoke { 8 } else { args.bs },
            seed: args.seed,
            ..LearnerConfig::default()
        },
        backwards: args.backwards,
        ..LmLearnerConfig::default()
    };
    let mut learn = LanguageModelLearner::new(
        cfg.init(&device),
        ids(&train_tokens),
        ids(&eval_tokens),
        config,
    )?;
    let start = Instant::now();
    // fastai's WT103 script: fit_one_cycle(12, 1e-2, div_factor=10).
    let policy = Policy::OneCycle {
        pct_start: 0.25,
        div: 10.0,
        div_final: 1e5,
    };
    learn.fit(epochs, LrSpec::Float(args.lr), &policy)?;
    let train_seconds = start.elapsed().as_secs_f64();
    let m = learn
        .validate()?
        .ok_or("the evaluation split is too short for one batch")?;
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)?;
        pretrained::save(out, &learn.model, &cfg, &vocab, direction == Direction::Bwd)?;
    }
    Ok(PretrainSummary {
        dataset: Dataset::WikiText2.name().to_string(),
        preset: if args.smoke {
            "smoke"
        } else {
            args.preset.name()
        }
        .to_string(),
        accuracy: m.accuracy,
        error: 1.0 - m.accuracy,
        perplexity: m.perplexity,
        loss: m.loss,
        train_seconds,
        epochs,
        model: direction.name().to_string(),
        vocab: vocab.len(),
        train_tokens: train_tokens.iter().map(Vec::len).sum(),
        eval_tokens: eval_tokens.iter().map(Vec::len).sum(),
        seed: args.seed,
        device: args.device.clone(),
        out: args.out.as_ref().map(|p| p.display().to_string()),
        note: note.to_string(),
    })
}
