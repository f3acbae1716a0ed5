//! Classifying raw text with one or two [`Bundle`]s: what a Rust service calls.
//!
//! ```
//! # use ulmfit::bundle::{Bundle, Direction};
//! # use ulmfit::nn::{AwdLstmConfig, TextClassifierConfig};
//! # use ulmfit::text::{TokenizerConfig, Vocab};
//! use std::sync::Arc;
//! use ulmfit::predict::Predictor;
//!
//! # let device = ulmfit::device::parse("cpu")?;
//! # let vocab = Vocab::new(["xxunk", "xxpad", "xxbos", "good", "bad"].map(String::from).to_vec());
//! # let config = TextClassifierConfig::new(
//! #     AwdLstmConfig::classifier(5).with_emb_size(4).with_hidden_size(6).with_n_layers(2), 2);
//! # let bundle = Bundle::from_classifier(&config.init(&device), &config, vocab,
//! #     vec!["neg".into(), "pos".into()], TokenizerConfig::default(), Direction::Forward)?;
//! // let bundle = Bundle::load("model-dir", &device)?;
//! let predictor = Arc::new(Predictor::new(bundle));
//! let p = predictor.predict("Good, very good.")?;
//! assert!(p.label == "neg" || p.label == "pos");
//! assert!((p.probabilities.iter().sum::<f32>() - 1.0).abs() < 1e-5);
//! // Share it between threads (it is Send + Sync):
//! let worker = { let p = Arc::clone(&predictor); std::thread::spawn(move || p.predict("bad")) };
//! worker.join().unwrap()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Behaviour, defined:
//! * Each text is tokenized with the bundle's tokenizer and numericalised with its vocabulary
//!   (unknown tokens become `xxunk`; the token `xxpad` written in a text also becomes `xxunk`,
//!   so that a text cannot pass for padding). A backward model gets the ids reversed.
//! * An empty or whitespace-only text is classified like any other: with fastai's tokenizer it
//!   is the one-token document `xxbos`, and the result is the model's output for it. Only a
//!   tokenizer that produces no token at all (no `add_bos`) makes it an error,
//!   [`PredictError::NoTokens`].
//! * Texts are classified in batches of at most [`PredictorConfig::batch_size`], sorted by
//!   length (little padding); the results come back in input order. A document's result does
//!   not depend on the other documents of the batch.
//! * Long texts are read whole, as fastai does (BPT3C), unless
//!   [`PredictorConfig::max_tokens`] caps them (the first tokens are kept).
//! * A forward + backward ensemble averages the two models' probabilities (the paper's
//!   "bidirectional" classifier).
//! * A non-finite probability (possible only with broken weights, which [`Bundle::load`]
//!   refuses) is an error, [`PredictError::NonFinite`], never a silent label.
//! * The models run on a plain (non-autodiff) device: nothing is recorded for gradients.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};

use crate::bundle::{Bundle, BundleError, Direction};
use crate::data::{ClasDataLoader, ClasLoaderConfig, DataError, restore_order};
use crate::nn::TextClassifier;
use crate::text::{Tokenizer, Vocab};

/// Settings of a [`Predictor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PredictorConfig {
    /// Most documents per forward pass. Default 64 (fastai's `bs`); lower it to bound memory
    /// when texts are long.
    pub batch_size: usize,
    /// Keep only the first `n` tokens of a document. Default `None` (the whole document, as
    /// fastai). A service facing untrusted input should set it (e.g. 5,000) to bound the time
    /// one request can take.
    pub max_tokens: Option<usize>,
}

impl Default for PredictorConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            max_tokens: None,
        }
    }
}

/// The result for one text.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Name of the most probable class.
    pub label: String,
    /// Its index.
    pub label_index: usize,
    /// Probability of every class, in label order (sums to 1).
    pub probabilities: Vec<f32>,
}

/// Errors of prediction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PredictError {
    /// Text number `index` (0-based) gave no token at all.
    #[error("text {index} has no tokens (the tokenizer adds no xxbos); give a non-empty text")]
    NoTokens {
        /// Position of the text in the input.
        index: usize,
    },
    /// The model produced NaN or infinite probabilities for text `index`.
    #[error("the model produced non-finite probabilities for text {index}: its weights are broken")]
    NonFinite {
        /// Position of the text in the input.
        index: usize,
    },
    /// A bad [`PredictorConfig`].
    #[error("invalid predictor configuration: {0}")]
    Config(String),
    /// Batching failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The bundles do not fit together.
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

#[derive(Debug, Clone)]
struct Member {
    model: TextClassifier,
    vocab: Vocab,
    backward: bool,
}

/// Classifies raw text with a forward model, a backward model, or both (ensemble).
///
/// `Predictor` is `Send + Sync`: share one `Arc<Predictor>` between the threads of a service.
/// Calls do not mutate it; concurrent calls run concurrently (each allocates its own tensors).
#[derive(Debug, Clone)]
pub struct Predictor {
    members: Vec<Member>,
    tokenizer: Tokenizer,
    labels: Vec<String>,
    config: PredictorConfig,
    precision: RecurrentPrecision,
}

/// How a [`Predictor`] stores the LSTM recurrent weights (the bytes read per time step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecurrentPrecision {
    /// As trained.
    #[default]
    F32,
    /// Rounded to bf16 ([`crate::nn::bf16_recurrent_weights`]).
    Bf16,
    /// Quantized to int8 with block scales ([`crate::nn::int8_recurrent_weights`]).
    Int8,
}

// Checked at compile time: a predictor can be shared between threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Predictor>();
};

impl Member {
    fn from_bundle(b: Bundle) -> Self {
        Self {
            backward: b.direction() == Direction::Backward,
            model: b.model,
            vocab: b.vocab,
        }
    }

    /// Class probabilities of tokenized documents, in input order.
    fn probabilities(
        &self,
        docs: &[Vec<String>],
        config: &PredictorConfig,
    ) -> Result<Vec<Vec<f32>>, PredictError> {
        let pad = self.model.pad_idx as u32;
        let ids: Vec<Vec<u32>> = docs
            .iter()
            .map(|d| {
                let d = &d[..config.max_tokens.map_or(d.len(), |m| m.min(d.len()))];
                self.vocab
                    .numericalize(d)
                    .into_iter()
                    .map(|i| if i == pad { 0 } else { i })
                    .collect()
            })
            .collect();
        let mut cfg = ClasLoaderConfig::valid(config.batch_size, self.model.bptt)
            .with_backwards(self.backward);
        cfg.pad_idx = i64::from(pad);
        let mut loader = ClasDataLoader::new(&ids, None, cfg)?;
        let device = self.model.encoder.embedding.device();
        let mut rows = Vec::with_capacity(ids.len());
        for batch in loader.epoch() {
            let x = Tensor::from_data(TensorData::new(batch.x, [batch.bs, batch.len]), &device);
            let probs = softmax(self.model.forward(x).logits, 1)
                .into_data()
                .try_into_vec_as::<f32>()
                .map_err(|e| PredictError::Config(format!("{e:?}")))?;
            let n_class = probs.len() / batch.bs.max(1);
            for (r, &index) in batch.indices.iter().enumerate() {
                rows.push((index, probs[r * n_class..(r + 1) * n_class].to_vec()));
            }
        }
        Ok(restore_order(ids.len(), rows)?)
    }
}

impl Predictor {
    /// A predictor for one bundle (either direction).
    pub fn new(bundle: Bundle) -> Self {
        Self {
            tokenizer: bundle.tokenizer(),
            labels: bundle.manifest.labels.clone(),
            members: vec![Member::from_bundle(bundle)],
            config: PredictorConfig::default(),
            precision: RecurrentPrecision::F32,
        }
    }

    /// The forward + backward ensemble: the two bundles must have those directions, the same
    /// labels and the same tokenizer settings. Probabilities are averaged.
    pub fn ensemble(forward: Bundle, backward: Bundle) -> Result<Self, BundleError> {
        for (b, want, what) in [
            (&forward, Direction::Forward, "forward model"),
            (&backward, Direction::Backward, "backward model"),
        ] {
            if b.direction() != want {
                return Err(BundleError::WrongDirection {
                    what: what.into(),
                    expected: want,
                    found: b.direction(),
                });
            }
        }
        if forward.manifest.labels != backward.manifest.labels {
            return Err(BundleError::EnsembleMismatch("the labels"));
        }
        if forward.manifest.tokenizer != backward.manifest.tokenizer {
            return Err(BundleError::EnsembleMismatch("the tokenizer settings"));
        }
        let mut p = Self::new(forward);
        p.members.push(Member::from_bundle(backward));
        Ok(p)
    }

    /// Replaces the settings.
    pub fn with_config(mut self, config: PredictorConfig) -> Result<Self, PredictError> {
        if config.batch_size == 0 || config.max_tokens == Some(0) {
            return Err(PredictError::Config(
                "batch_size and max_tokens must be positive".into(),
            ));
        }
        self.config = config;
        Ok(self)
    }

    /// Stores the LSTM recurrent weights of every model as bf16
    /// ([`bf16_recurrent_weights`](crate::nn::bf16_recurrent_weights)): on flex, classifying at
    /// most 4 documents per batch reads half the bytes per time step (about 1.6x faster for one
    /// long document). Larger batches run on bf16 AMX tiles where the CPU has them (Intel Xeon
    /// from Sapphire Rapids on; about 2.5x faster at 32 documents, with the LSTM's inputs and
    /// states rounded to bf16 too) and gain nothing elsewhere. The weights are rounded to 8
    /// significant bits, which moves probabilities slightly and can flip the label of a document whose top two classes
    /// are nearly tied: measure the accuracy on your test set (`ulmfit eval --bf16`).
    pub fn with_bf16_recurrent_weights(mut self) -> Self {
        for m in &mut self.members {
            m.model = crate::nn::bf16_recurrent_weights(m.model.clone());
        }
        self.precision = RecurrentPrecision::Bf16;
        self
    }

    /// Quantizes the LSTM recurrent weights of every model to int8 with block scales
    /// ([`int8_recurrent_weights`](crate::nn::int8_recurrent_weights)): a quarter of the bytes
    /// per time step, for at most 4 documents per batch (about 1.35x as fast as bf16 and 2.1x
    /// as fast as `f32` for one long document on flex, on a CPU with AVX512-VNNI). The weights move by up to half a quantization level: measure the
    /// accuracy on your test set (`ulmfit eval --int8`). Apply it to `f32` weights, not after
    /// [`with_bf16_recurrent_weights`](Self::with_bf16_recurrent_weights).
    pub fn with_int8_recurrent_weights(mut self) -> Self {
        for m in &mut self.members {
            m.model = crate::nn::int8_recurrent_weights(m.model.clone());
        }
        self.precision = RecurrentPrecision::Int8;
        self
    }

    /// Whether the recurrent weights are bf16 ([`with_bf16_recurrent_weights`](Self::with_bf16_recurrent_weights)).
    pub fn has_bf16_recurrent_weights(&self) -> bool {
        self.precision == RecurrentPrecision::Bf16
    }

    /// How the recurrent weights are stored.
    pub fn recurrent_precision(&self) -> RecurrentPrecision {
        self.precision
    }

    /// The settings.
    pub fn config(&self) -> &PredictorConfig {
        &self.config
    }

    /// Class names, in index order.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The tokenizer the models were trained with.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Whether this is a forward + backward ensemble.
    pub fn is_ensemble(&self) -> bool {
        self.members.len() > 1
    }

    /// Classifies one text.
    pub fn predict(&self, text: &str) -> Result<Prediction, PredictError> {
        let mut out = self.predict_batch(&[text])?;
        Ok(out.remove(0))
    }

    /// Classifies many texts (batched by length internally); results in input order.
    pub fn predict_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Prediction>, PredictError> {
        let docs = self.tokenizer.tokenize_all(texts);
        self.predict_tokens(&docs)
    }

    /// Classifies already tokenized documents (tokens of [`Predictor::tokenizer`]).
    pub fn predict_tokens(&self, docs: &[Vec<String>]) -> Result<Vec<Prediction>, PredictError> {
        if let Some(index) = docs.iter().position(Vec::is_empty) {
            return Err(PredictError::NoTokens { index });
        }
        if docs.is_empty() {
            return Ok(vec![]);
        }
        let mut sum: Option<Vec<Vec<f32>>> = None;
        for m in &self.members {
            let p = m.probabilities(docs, &self.config)?;
            sum = Some(match sum {
                None => p,
                Some(mut s) => {
                    for (a, b) in s.iter_mut().zip(&p) {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    }
                    s
                }
            });
        }
        let k = self.members.len() as f32;
        sum.unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, mut probabilities)| {
                if k > 1.0 {
                    probabilities.iter_mut().for_each(|x| *x /= k);
                }
                if !probabilities.iter().all(|x| x.is_finite()) {
                    return Err(PredictError::NonFinite { index });
                }
                let label_index = argmax(&probabilities);
                Ok(Prediction {
                    label: self.labels.get(label_index).cloned().unwrap_or_default(),
                    label_index,
                    probabilities,
                })
            })
            .collect()
    }
}

/// Index of the largest value (the first one on ties).
fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 { (i, x) } else { best }
        })
        .0
}

#[cfg(test)]
mod tests;
