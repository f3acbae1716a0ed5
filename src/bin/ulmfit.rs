//! `ulmfit`: train, use and convert ULMFiT text classifiers from the command line.
//!
//! ```text
//! ulmfit train --dataset trec6 --out trec6-model            # the TREC-6 pipeline, JSON metrics
//! ulmfit train --dataset ag-news --data ag_news_csv.tgz --out ag  # or imdb, dbpedia, yelp-*
//! ulmfit predict --model trec6-model "What is the capital of Peru?"
//! ulmfit predict --model fwd --backward bwd - < texts.txt   # one text per line, JSON lines out
//! ulmfit eval --model trec6-model --data test.tsv           # label<TAB>text lines
//! ulmfit convert-fastai clas.pth itos.pkl --labels neg,pos --out model
//! ```
//!
//! Exit status: 0 success, 1 failure (the message says why), 2 bad usage, 65 bad input data
//! (invalid UTF-8, a malformed line), 141 output pipe closed.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ulmfit::bundle::{Bundle, Direction};
use ulmfit::predict::{Prediction, Predictor, PredictorConfig};

/// Train, use and convert ULMFiT text classifiers.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a classifier on a dataset and save it as a bundle; prints one JSON line of metrics.
    Train(TrainArgs),
    /// Classify texts: TEXT, or one text per line of standard input (`-` or nothing); one JSON
    /// line per text.
    Predict(PredictArgs),
    /// Measure a bundle on labelled texts; prints one JSON line.
    Eval(EvalArgs),
    /// Convert a fastai classifier (`learn.save` .pth + its itos .pkl) to a bundle.
    ConvertFastai(ConvertArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DatasetName {
    /// TREC question classification, 6 coarse classes.
    Trec6,
    /// IMDb movie-review sentiment, 2 classes.
    Imdb,
    /// AG News topics, 4 classes.
    AgNews,
    /// DBpedia ontology classes, 14 classes.
    Dbpedia,
    /// Yelp review polarity, 2 classes.
    YelpPolarity,
    /// Yelp review stars, 5 classes.
    YelpFull,
}

impl DatasetName {
    fn dataset(self) -> ulmfit::data::download::Dataset {
        use ulmfit::data::download::Dataset;
        match self {
            DatasetName::Trec6 => Dataset::Trec6,
            DatasetName::Imdb => Dataset::Imdb,
            DatasetName::AgNews => Dataset::AgNews,
            DatasetName::Dbpedia => Dataset::Dbpedia,
            DatasetName::YelpPolarity => Dataset::YelpPolarity,
            DatasetName::YelpFull => Dataset::YelpFull,
        }
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Preset {
    /// emb 200, hidden 600 (TREC-6 from scratch).
    Small,
    /// fastai's full size: emb 400, hidden 1152.
    Full,
    /// A tiny model on 256 texts for one epoch: checks the pipeline in seconds.
    Smoke,
}

#[derive(clap::Args, Debug)]
struct TrainArgs {
    /// The dataset.
    #[arg(long, value_enum)]
    dataset: DatasetName,
    /// The dataset's folder; else $ULMFIT_DATA, the cache, or a download.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the trained classifier's bundle here.
    #[arg(long)]
    out: PathBuf,
    /// Model size and schedule.
    #[arg(long, value_enum, default_value = "small")]
    preset: Preset,
    /// Epochs of one-cycle training (default: the preset's).
    #[arg(long)]
    epochs: Option<usize>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    bs: usize,
    /// Seed of initialisation, data order and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train a backward model (reversed texts).
    #[arg(long)]
    backwards: bool,
    /// Mixed-precision training: the LSTMs' products in bf16 on Intel AMX tiles (Xeon Sapphire
    /// Rapids and later; about 1.7x faster on TREC-6, sums, weights and optimizer f32). No
    /// effect on other CPUs.
    #[arg(long)]
    bf16: bool,
    /// Device: cpu, ndarray, flex, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(clap::Args, Debug)]
struct ModelArgs {
    /// The (forward or backward) model bundle.
    #[arg(long)]
    model: PathBuf,
    /// A backward bundle to ensemble with the forward `--model`.
    #[arg(long)]
    backward: Option<PathBuf>,
    /// Device: cpu, ndarray, flex, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Read only the first N tokens of each text.
    #[arg(long)]
    max_tokens: Option<usize>,
    /// Store the LSTM recurrent weights as bf16 (rounded to 8 significant bits): about 1.6x faster
    /// with `--batch-size 1` on flex, and about 2.5x at batches of 32 on CPUs with Intel AMX
    /// (which then multiply the LSTM's inputs and states in bf16 too); slightly different
    /// probabilities (check with `eval`).
    #[arg(long)]
    bf16: bool,
    /// Quantize the LSTM recurrent weights to int8 (one scale per block of up to 255 weights):
    /// about 1.35x faster than `--bf16` with `--batch-size 1` on flex (AVX512-VNNI); check the
    /// accuracy with `eval`.
    #[arg(long, conflicts_with = "bf16")]
    int8: bool,
}

#[derive(clap::Args, Debug)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The text to classify; `-` or nothing reads standard input, one text per line.
    text: Option<String>,
}

#[derive(clap::Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled texts, one `label<TAB>text` per line (label: a name or an index); `-` reads
    /// standard input.
    #[arg(long)]
    data: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// fastai weights (zip or legacy .pth): a classifier (`learn.save`) becomes a bundle; a
    /// language model (e.g. WT103's `lstm_fwd.pth`) becomes a pretrained folder for the
    /// examples' `--pretrained DIR`.
    pth: PathBuf,
    /// The pickled vocabulary (itos) the model was trained with (`itos_wt103.pkl`).
    itos: PathBuf,
    /// Write the bundle (or the pretrained language-model folder) here.
    #[arg(long)]
    out: PathBuf,
    /// Class names, comma-separated, in class order (default: 0, 1, ...).
    #[arg(long, value_delimiter = ',')]
    labels: Option<Vec<String>>,
    /// The model was trained on reversed texts (fastai `backwards=True`; WT103's `lstm_bwd.pth`).
    #[arg(long)]
    backwards: bool,
    /// The classifier's BPT3C chunk length (fastai `seq_len`).
    #[arg(long, default_value_t = 72)]
    bptt: usize,
    /// Tokens pooled at the end of each text (fastai `max_len`).
    #[arg(long, default_value_t = 1440)]
    max_len: usize,
}

/// A failure and its exit status.
struct Failure {
    code: u8,
    message: String,
}

const EX_FAILURE: u8 = 1;
const EX_DATAERR: u8 = 65;
const EX_PIPE: u8 = 141;

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            code: EX_FAILURE,
            message: e.to_string(),
        }
    }
}

fn data_error(message: String) -> Failure {
    Failure {
        code: EX_DATAERR,
        message,
    }
}

/// Writing to standard output; a closed pipe (`| head`) ends the program quietly.
fn emit(out: &mut impl Write, line: &str) -> Result<(), Failure> {
    match writeln!(out, "{line}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure {
            code: EX_PIPE,
            message: String::new(),
        }),
        other => Ok(other?),
    }
}

fn load_predictor(args: &ModelArgs) -> Result<Predictor, Failure> {
    let device = ulmfit::device::parse(&args.device)?;
    let config = PredictorConfig {
        batch_size: args.batch_size,
        max_tokens: args.max_tokens,
    };
    let predictor = match &args.backward {
        None => Predictor::new(Bundle::load(&args.model, &device)?),
        Some(bwd) => {
            let f = Bundle::load_expecting(&args.model, &device, Direction::Forward, "--model")?;
            let b = Bundle::load_expecting(bwd, &device, Direction::Backward, "--backward")?;
            Predictor::ensemble(f, b)?
        }
    };
    let predictor = predictor.with_config(config)?;
    Ok(if args.bf16 {
        predictor.with_bf16_recurrent_weights()
    } else if args.int8 {
        predictor.with_int8_recurrent_weights()
    } else {
        predictor
    })
}

fn prediction_json(p: &Prediction) -> String {
    serde_json::to_string(p).unwrap_or_default()
}

/// Calls `each` on every line of `input` (without its `\n` or `\r\n`), with its 1-based
/// number; a line that is not UTF-8 is a data error.
fn for_each_line(
    input: &mut impl BufRead,
    what: &str,
    mut each: impl FnMut(usize, String) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let mut buf = Vec::new();
    let mut n = 0;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        n += 1;
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        let line = String::from_utf8(std::mem::take(&mut buf)).map_err(|e| {
            data_error(format!(
                "{what} line {n} is not valid UTF-8 (invalid byte at column {})",
                e.utf8_error().valid_up_to() + 1
            ))
        })?;
        each(n, line)?;
    }
}

fn predict(args: PredictArgs) -> Result<(), Failure> {
    let predictor = load_predictor(&args.model)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Some(text) = args.text.as_deref().filter(|t| *t != "-") {
        return emit(&mut out, &prediction_json(&predictor.predict(text)?));
    }
    let mut pending: Vec<String> = Vec::new();
    let flush = |pending: &mut Vec<String>, out: &mut std::io::StdoutLock| {
        for p in predictor.predict_batch(pending)? {
            emit(out, &prediction_json(&p))?;
        }
        pending.clear();
        out.flush().map_err(Failure::from)
    };
    let stdin = std::io::stdin();
    let result = for_each_line(&mut stdin.lock(), "stdin", |_, line| {
        pending.push(line);
        if pending.len() >= args.model.batch_size {
            flush(&mut pending, &mut out)?;
        }
        Ok(())
    });
    // The texts before a bad line are still answered.
    flush(&mut pending, &mut out)?;
    result
}

/// Texts per `predict_batch` call of `eval` (one progress-bar step).
const EVAL_CHUNK: usize = 1024;

fn eval(args: EvalArgs) -> Result<(), Failure> {
    let predictor = load_predictor(&args.model)?;
    let labels = predictor.labels().to_vec();
    let mut texts = vec![];
    let mut targets = vec![];
    let name = args.data.display().to_string();
    let mut parse = |n: usize, line: String| -> Result<(), Failure> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let (label, text) = line
            .split_once('\t')
            .ok_or_else(|| data_error(format!("{name} line {n}: expected `label<TAB>text`")))?;
        let index = labels
            .iter()
            .position(|l| l == label)
            .or_else(|| label.parse::<usize>().ok().filter(|&i| i < labels.len()))
            .ok_or_else(|| {
                data_error(format!(
                    "{name} line {n}: unknown label `{label}` (the model's labels: {})",
                    labels.join(", ")
                ))
            })?;
        texts.push(text.to_string());
        targets.push(index);
        Ok(())
    };
    if args.data == Path::new("-") {
        for_each_line(&mut std::io::stdin().lock(), "stdin", &mut parse)?;
    } else {
        let file = std::fs::File::open(&args.data)
            .map_err(|e| Failure::from(format!("cannot read {name}: {e}")))?;
        for_each_line(&mut std::io::BufReader::new(file), &name, &mut parse)?;
    }
    if texts.is_empty() {
        return Err(data_error(format!("{name} has no labelled texts")));
    }
    // In chunks, for a progress bar (drawn only on a terminal): 25,000 IMDb reviews take
    // minutes.
    let bar = indicatif::ProgressBar::new(texts.len() as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "eval [{bar:30}] {pos}/{len} texts {elapsed_precise}<{eta_precise}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut preds = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(EVAL_CHUNK) {
        preds.extend(predictor.predict_batch(chunk)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let pred_idx: Vec<usize> = preds.iter().map(|p| p.label_index).collect();
    let loss = preds
        .iter()
        .zip(&targets)
        .map(|(p, &t)| -f64::from(p.probabilities[t].max(1e-12)).ln())
        .sum::<f64>()
        / texts.len() as f64;
    let accuracy = ulmfit::train::metrics::accuracy(&pred_idx, &targets)?;
    let f1 = ulmfit::train::metrics::macro_f1(&pred_idx, &targets, labels.len())?;
    let line = serde_json::json!({
        "n": texts.len(),
        "accuracy": accuracy,
        "error_rate": 1.0 - accuracy,
        "f1": f1,
        "loss": loss,
    });
    emit(&mut std::io::stdout().lock(), &line.to_string())
}

fn train(args: TrainArgs) -> Result<(), Failure> {
    use ulmfit::data::download::{ResolveOptions, resolve};
    use ulmfit::recipe::{RecipeConfig, train_classifier};
    let dataset = args.dataset.dataset();
    // Archives (IMDb's .tgz, the CSV datasets) are streamed by the readers, not extracted.
    let options = ResolveOptions {
        keep_archives: true,
        ..ResolveOptions::from_env()
    };
    let source = resolve(dataset, args.data.as_deref(), &options)?;
    let bench = ulmfit::data::datasets::read_benchmark(dataset, &source, false)?;
    let (data, name) = (bench.data, bench.name);
    let base = match args.preset {
        Preset::Small => RecipeConfig::small(),
        Preset::Full => RecipeConfig::default(),
        Preset::Smoke => RecipeConfig::smoke(),
    };
    let config = RecipeConfig {
        epochs: args.epochs.unwrap_or(base.epochs),
        lr: args.lr,
        bs: args.bs,
        seed: args.seed,
        backwards: args.backwards,
        bf16: args.bf16,
        // Standard output carries only the JSON line (with the per-epoch history).
        print_metrics: false,
        ..base
    };
    let device = ulmfit::device::parse(&args.device)?;
    let trained = train_classifier(&data, &config, &device)?;
    trained.bundle.save(&args.out)?;
    let line = serde_json::json!({
        "dataset": name,
        "note": bench.note,
        "preset": format!("{:?}", args.preset).to_lowercase(),
        "direction": trained.bundle.direction(),
        "metrics": trained.metrics,
        "history": trained.history,
        "train_seconds": trained.train_seconds,
        "n_train": trained.n_train,
        "epochs": config.epochs,
        "seed": args.seed,
        "vocab": trained.bundle.vocab.len(),
        "device": args.device,
        "out": args.out,
    });
    emit(&mut std::io::stdout().lock(), &line.to_string())
}

/// A fastai language model, stored as a pretrained folder (`ulmfit::pretrained`): read once,
/// then loaded quickly by the examples' `--pretrained DIR` and fine-tuned there.
fn convert_lm(args: &ConvertArgs) -> Result<(), Failure> {
    use ulmfit::nn::{AwdLstmConfig, LanguageModelConfig};
    let (state, itos, dims) = ulmfit::fastai::load_fastai_lm(&args.pth, &args.itos)?;
    if dims.bidirectional {
        return Err("bidirectional language models are not supported".into());
    }
    let config = LanguageModelConfig::new(
        AwdLstmConfig::new(dims.vocab_size)
            .with_emb_size(dims.emb_size)
            .with_hidden_size(dims.hidden_size)
            .with_n_layers(dims.n_layers),
    );
    let device = ulmfit::device::parse("cpu")?;
    let lm = ulmfit::weights::load_language_model(config.init(&device), &state)?;
    let vocab = ulmfit::text::Vocab::new(itos);
    ulmfit::pretrained::save(&args.out, &lm, &config, &vocab, args.backwards)
        .map_err(|e| e.to_string())?;
    // Check what was written by reading it back.
    ulmfit::pretrained::load(&args.out, args.backwards, &device, |c| c)
        .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} (language model: emb {}, hidden {}, {} layers, vocabulary {}; use it with an \
         example's --pretrained)",
        args.out.display(),
        dims.emb_size,
        dims.hidden_size,
        dims.n_layers,
        dims.vocab_size
    );
    Ok(())
}

fn convert(args: ConvertArgs) -> Result<(), Failure> {
    use ulmfit::fastai::FastaiError;
    use ulmfit::nn::{AwdLstmConfig, TextClassifierConfig};
    let (state, itos, dims, head) =
        match ulmfit::fastai::load_fastai_classifier(&args.pth, &args.itos) {
            Err(FastaiError::WrongModelKind { .. }) => return convert_lm(&args),
            other => other?,
        };
    let n_class = head.n_class();
    let labels = args
        .labels
        .unwrap_or_else(|| (0..n_class).map(|i| i.to_string()).collect());
    if labels.len() != n_class {
        return Err(format!(
            "--labels gives {} names, the classifier has {n_class} classes",
            labels.len()
        )
        .into());
    }
    if args.bptt == 0 || args.max_len < args.bptt {
        return Err("--bptt must be positive and --max-len at least --bptt".into());
    }
    let config = TextClassifierConfig::new(
        AwdLstmConfig::classifier(dims.vocab_size)
            .with_emb_size(dims.emb_size)
            .with_hidden_size(dims.hidden_size)
            .with_n_layers(dims.n_layers)
            .with_bidirectional(dims.bidirectional),
        n_class,
    )
    .with_lin_ftrs(head.layers[1..head.layers.len() - 1].to_vec())
    .with_head_bias(head.linear_bias)
    .with_bptt(args.bptt)
    .with_max_len(args.max_len);
    let device = ulmfit::device::parse("cpu")?;
    let model = ulmfit::weights::load_classifier(config.init(&device), &state)?;
    let direction = if args.backwards {
        Direction::Backward
    } else {
        Direction::Forward
    };
    let bundle = Bundle::from_classifier(
        &model,
        &config,
        ulmfit::text::Vocab::new(itos),
        labels,
        ulmfit::text::TokenizerConfig::default(),
        direction,
    )?;
    bundle.save(&args.out)?;
    // Check what was written by reading it back.
    Bundle::load(&args.out, &device)?;
    eprintln!(
        "wrote {} ({} classes, vocabulary {}, {direction})",
        args.out.display(),
        n_class,
        dims.vocab_size
    );
    Ok(())
}

fn main() -> ExitCode {
    ulmfit::malloc::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Predict(a) => predict(a),
        Command::Eval(a) => eval(a),
        Command::ConvertFastai(a) => convert(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("ulmfit: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
