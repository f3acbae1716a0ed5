//! Checks of a manifest's model description before anything is allocated, and of the loaded
//! weights.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

use super::{BundleError, Manifest};
use crate::nn::{TextClassifier, TextClassifierConfig};

/// Deepest encoder accepted (fastai uses 3 layers).
const MAX_LAYERS: usize = 64;
/// Longest BPT3C chunk accepted (fastai: 72). Every document is padded to a multiple of it, so
/// a hostile value could otherwise make each prediction allocate and run without bound.
const MAX_BPTT: usize = 4096;
/// Longest pooled window accepted (fastai: 1,440).
const MAX_POOLED: usize = 1 << 20;

fn prob_ok(p: f64) -> bool {
    p.is_finite() && (0.0..1.0).contains(&p)
}

/// Number of `f32` values of the model `c` describes, or `None` on overflow.
pub(super) fn param_count(c: &TextClassifierConfig) -> Option<u128> {
    let e = &c.encoder;
    let n_dir: u128 = if e.bidirectional { 2 } else { 1 };
    let mut total = (e.vocab_size as u128).checked_mul(e.emb_size as u128)?;
    for l in 0..e.n_layers {
        let d_in = if l == 0 { e.emb_size } else { e.hidden_size } as u128;
        let h = e.layer_output(l) as u128 / n_dir;
        let per_dir = 4 * h * d_in + 4 * h * h + 8 * h;
        total = total.checked_add(n_dir * per_dir)?;
    }
    let layers = c.head_layers();
    for w in layers.windows(2) {
        let (i, o) = (w[0] as u128, w[1] as u128);
        total = total.checked_add(4 * i + i.checked_mul(o)? + if c.head_bias { o } else { 0 })?;
    }
    Some(total)
}

/// Checks everything `TextClassifierConfig::init` would assert, that the labels and the
/// vocabulary fit the model, and that a weight file of `model_bytes` bytes can hold it.
pub(super) fn check_config(
    dir: &Path,
    m: &Manifest,
    vocab_len: usize,
    model_bytes: u64,
) -> Result<(), BundleError> {
    let c = &m.model;
    let e = &c.encoder;
    let bad = |message: String| {
        Err(BundleError::InvalidModel {
            dir: dir.to_path_buf(),
            message,
        })
    };
    if vocab_len != e.vocab_size || m.vocab_len != e.vocab_size {
        return Err(BundleError::VocabMismatch {
            dir: dir.to_path_buf(),
            vocab_len,
            rows: e.vocab_size,
        });
    }
    if e.vocab_size == 0 || e.emb_size == 0 || e.hidden_size == 0 {
        return bad("vocab_size, emb_size and hidden_size must be positive".into());
    }
    if e.n_layers == 0 || e.n_layers > MAX_LAYERS {
        return bad(format!(
            "n_layers must be in 1..={MAX_LAYERS}, got {}",
            e.n_layers
        ));
    }
    if e.pad_idx >= e.vocab_size {
        return bad(format!("pad_idx {} is outside the vocabulary", e.pad_idx));
    }
    if e.bidirectional && (e.emb_size % 2 == 1 || (e.n_layers > 1 && e.hidden_size % 2 == 1)) {
        return bad("bidirectional layers need even widths".into());
    }
    let probs = [e.input_p, e.hidden_p, e.weight_p, e.embed_p, c.output_p];
    if !probs.iter().chain(&c.ps).all(|&p| prob_ok(p)) {
        return bad("every dropout probability must be in [0, 1)".into());
    }
    if c.n_class == 0 || c.lin_ftrs.contains(&0) {
        return bad("n_class and every lin_ftrs size must be positive".into());
    }
    if c.lin_ftrs.len() > MAX_LAYERS {
        return bad(format!("more than {MAX_LAYERS} head layers"));
    }
    if m.labels.len() != c.n_class {
        return bad(format!(
            "{} label names for {} classes",
            m.labels.len(),
            c.n_class
        ));
    }
    if c.bptt == 0 || c.bptt > MAX_BPTT || c.max_len < c.bptt || c.max_len > MAX_POOLED {
        return bad(format!(
            "need 0 < bptt <= {MAX_BPTT} and bptt <= max_len <= {MAX_POOLED} (bptt {}, max_len {})",
            c.bptt, c.max_len
        ));
    }
    // Each value takes 4 bytes in the weight file: a description the file cannot hold is
    // refused before allocating it.
    match param_count(c) {
        Some(n) if n.saturating_mul(4) <= u128::from(model_bytes) => Ok(()),
        n => bad(format!(
            "the described model has {} parameters, more than {MODEL} of {model_bytes} bytes can hold",
            n.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            MODEL = super::MODEL_FILE
        )),
    }
}

struct NonFinite(usize);

impl ModuleVisitor for NonFinite {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let count = param
            .val()
            .is_finite()
            .bool_not()
            .int()
            .sum()
            .into_data()
            .try_into_vec_as::<i64>()
            .map_or(usize::MAX, |v| v.iter().sum::<i64>() as usize);
        self.0 = self.0.saturating_add(count);
    }
}

/// Number of NaN or infinite values among the model's parameters and running statistics.
pub(super) fn count_non_finite(model: &TextClassifier) -> usize {
    let mut v = NonFinite(0);
    model.visit(&mut v);
    v.0
}
