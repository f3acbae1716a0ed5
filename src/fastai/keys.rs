//! Key dialects of fastai state dicts, and the one canonical naming they are mapped to.
//!
//! # Canonical naming
//!
//! fastai v2's language-model names, with the AWD-LSTM encoder always under `0.` (also for a
//! classifier, where fastai v2 writes `0.module.`), one embedding entry, and the classifier
//! head in v2's nested layout. Shapes use V = vocabulary, E = `emb_size`, `h_l` = hidden
//! width per direction of layer `l` (see [`AwdLstmDims`](super::AwdLstmDims)), `in_l` = its
//! input width; LSTM matrices keep PyTorch's layout, gates stacked `i, f, g, o` along rows.
//!
//! | canonical key | shape | note |
//! |---|---|---|
//! | `0.encoder.weight` | `[V, E]` | embedding (tied with the decoder in fastai) |
//! | `0.rnns.{l}.weight_hh_l0_raw` | `[4·h_l, h_l]` | W_hh before weight dropout |
//! | `0.rnns.{l}.module.weight_ih_l0` | `[4·h_l, in_l]` | |
//! | `0.rnns.{l}.module.bias_ih_l0` | `[4·h_l]` | |
//! | `0.rnns.{l}.module.bias_hh_l0` | `[4·h_l]` | both biases are added |
//! | `0.rnns.{l}.module.{weight_ih,weight_hh,bias_ih,bias_hh}_l0_reverse` | as above | bidirectional only; the reverse W_hh is not weight-dropped |
//! | `1.decoder.weight` | `[V, E]` | language model only |
//! | `1.decoder.bias` | `[V]` | language model only; absent in 0.7 files |
//! | `1.layers.{i}.0.{weight,bias,running_mean,running_var}` | `[n_in_i]` | classifier head block `i`: BatchNorm1d |
//! | `1.layers.{i}.0.num_batches_tracked` | `[]` | when the file has it |
//! | `1.layers.{i}.2.weight` | `[n_out_i, n_in_i]` | classifier head block `i`: Linear |
//! | `1.layers.{i}.2.bias` | `[n_out_i]` | v1 and 0.7 heads only (v2's Linear has no bias) |
//!
//! Entries appear in exactly this order (layer by layer, forward before reverse).
//!
//! # Dialects read
//!
//! - v2 language model (`0.encoder.weight`, `0.encoder_dp.emb.weight`, ...) and v2
//!   classifier (`0.module.` prefix, head `1.layers.{i}.{0,1|2}.*`; a p = 0 dropout is left
//!   out of v2's `LinBnDrop`, which moves the Linear to index 1).
//! - v1: as v2, plus the duplicate `0.rnns.{l}.module.weight_hh_l0`, which is always dropped in
//!   favour of `weight_hh_l0_raw` (fastai's `clean_raw_keys`; the duplicate may hold a
//!   dropped-out copy); v1 classifier head in one flat `Sequential`
//!   (`1.layers.{0,2,4,6}`: BatchNorm, Linear with bias, ...).
//! - 0.7: `0.encoder_with_dropout.embed.weight`, the raw weight on the LSTM
//!   (`0.rnns.{l}.module.weight_hh_l0_raw`), no decoder bias; head `1.layers.{i}.{bn,lin}.*`.
//! - `save_encoder` files (v1, v2, 0.7 `*_enc.h5`): the encoder keys without any prefix.
//!
//! Duplicated embeddings (`encoder_dp.emb.weight`, `encoder_with_dropout.embed.weight`) are
//! dropped after checking they equal `encoder.weight`.

use std::collections::{BTreeMap, BTreeSet};

use super::{FastaiError, RawTensor, StateDict};

/// Canonical key of the embedding.
pub const ENCODER_WEIGHT: &str = "0.encoder.weight";
/// Canonical key of the decoder weight (language model).
pub const DECODER_WEIGHT: &str = "1.decoder.weight";
/// Canonical key of the decoder bias (language model).
pub const DECODER_BIAS: &str = "1.decoder.bias";

/// The four parameters of one LSTM direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LstmParam {
    /// Hidden-to-hidden weight `[4h, h]` (the raw, not dropped-out, weight).
    WeightHh,
    /// Input-to-hidden weight `[4h, in]`.
    WeightIh,
    /// Input bias `[4h]`.
    BiasIh,
    /// Hidden bias `[4h]`.
    BiasHh,
}

impl LstmParam {
    /// All four, in canonical order.
    pub const ALL: [LstmParam; 4] = [Self::WeightHh, Self::WeightIh, Self::BiasIh, Self::BiasHh];
}

/// Canonical key of an LSTM parameter of layer `layer` (`reverse`: the backward direction
/// of a bidirectional layer).
pub fn rnn_key(layer: usize, param: LstmParam, reverse: bool) -> String {
    let base = match param {
        LstmParam::WeightHh if !reverse => return format!("0.rnns.{layer}.weight_hh_l0_raw"),
        LstmParam::WeightHh => "weight_hh_l0",
        LstmParam::WeightIh => "weight_ih_l0",
        LstmParam::BiasIh => "bias_ih_l0",
        LstmParam::BiasHh => "bias_hh_l0",
    };
    let suffix = if reverse { "_reverse" } else { "" };
    format!("0.rnns.{layer}.module.{base}{suffix}")
}

/// The parameters of a classifier head's BatchNorm1d, in canonical order.
pub const BN_PARAMS: [&str; 5] = [
    "weight",
    "bias",
    "running_mean",
    "running_var",
    "num_batches_tracked",
];

/// Canonical key of parameter `param` (one of [`BN_PARAMS`]) of head block `block`'s BatchNorm.
pub fn head_bn_key(block: usize, param: &str) -> String {
    format!("1.layers.{block}.0.{param}")
}

/// Canonical key of parameter `param` (`weight` or `bias`) of head block `block`'s Linear.
pub fn head_linear_key(block: usize, param: &str) -> String {
    format!("1.layers.{block}.2.{param}")
}

/// The fastai version whose key names a state dict used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDialect {
    /// fastai 2.x (or a v1 file without the v1-only keys, which is named identically).
    V2,
    /// fastai 1.x: duplicate `module.weight_hh_l0` or the flat classifier head.
    V1,
    /// fastai 0.7 (the paper's code).
    Fastai07,
}

/// What a state dict holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// AWD-LSTM encoder + linear decoder.
    LanguageModel,
    /// AWD-LSTM encoder alone (`save_encoder`).
    Encoder,
    /// AWD-LSTM encoder + pooling classifier head.
    Classifier,
}

impl ModelKind {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::LanguageModel => "language-model",
            Self::Encoder => "encoder-only",
            Self::Classifier => "classifier",
        }
    }
}

/// What [`normalize_keys`] recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyReport {
    /// The dialect.
    pub dialect: KeyDialect,
    /// The kind of model.
    pub kind: ModelKind,
    /// File keys that were dropped as duplicates of kept tensors.
    pub dropped: Vec<String>,
}

/// One recognised encoder entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EncSlot {
    Embedding,
    EmbeddingCopy,
    /// (layer, param, reverse, is the `_raw` weight)
    Rnn(usize, LstmParam, bool, bool),
}

/// Map a state dict in any supported dialect to the canonical naming (module docs).
///
/// Unknown keys fail with [`FastaiError::UnknownKeys`] (file names), missing ones with
/// [`FastaiError::MissingKeys`] (canonical names). Shapes are not checked here; see
/// [`infer_awd_lstm_dims`](super::infer_awd_lstm_dims).
pub fn normalize_keys(state: StateDict) -> Result<(StateDict, KeyReport), FastaiError> {
    let prefix = if state.keys().any(|k| k.starts_with("0.module.")) {
        "0.module."
    } else if state
        .keys()
        .any(|k| k.starts_with("0.encoder") || k.starts_with("0.rnns."))
    {
        "0."
    } else {
        ""
    };

    let mut unknown = Vec::new();
    let mut v07 = false;
    let mut v1 = false;
    let mut enc: BTreeMap<EncSlot, Vec<(String, RawTensor)>> = BTreeMap::new();
    let mut decoder: BTreeMap<&'static str, RawTensor> = BTreeMap::new();
    let mut head_keys = Vec::new();

    for (key, tensor) in state {
        if let Some(rest) = key.strip_prefix("1.layers.") {
            head_keys.push((rest.to_string(), key, tensor));
            continue;
        }
        if key == DECODER_WEIGHT || key == DECODER_BIAS {
            let slot = if key == DECODER_WEIGHT {
                DECODER_WEIGHT
            } else {
                DECODER_BIAS
            };
            decoder.insert(slot, tensor);
            continue;
        }
        let slot = key.strip_prefix(prefix).and_then(parse_encoder_key);
        match slot {
            Some((slot, dialect)) => {
                v07 |= dialect == Some(KeyDialect::Fastai07);
                v1 |= dialect == Some(KeyDialect::V1);
                enc.entry(slot).or_default().push((key, tensor));
            }
            None => unknown.push(key),
        }
    }

    let head = if head_keys.is_empty() {
        None
    } else {
        match parse_head(head_keys) {
            Ok((head, dialect)) => {
                v07 |= dialect == KeyDialect::Fastai07;
                v1 |= dialect == KeyDialect::V1;
                Some(head)
            }
            Err(keys) => {
                unknown.extend(keys);
                None
            }
        }
    };
    let kind = match (&head, decoder.is_empty()) {
        (Some(_), _) => ModelKind::Classifier,
        (None, false) => ModelKind::LanguageModel,
        (None, true) => ModelKind::Encoder,
    };
    if kind == ModelKind::Classifier {
        unknown.extend(decoder.keys().map(|k| k.to_string()));
    }
    if !unknown.is_empty() {
        return Err(FastaiError::UnknownKeys { keys: unknown });
    }

    let mut out = StateDict::new();
    let mut missing = Missing::default();
    let mut dropped = Vec::new();

    // Embedding: `encoder.weight`, else one of its copies; every copy must agree.
    let mut embeddings = enc.remove(&EncSlot::Embedding).unwrap_or_default();
    embeddings.extend(enc.remove(&EncSlot::EmbeddingCopy).unwrap_or_default());
    let mut embeddings = embeddings.into_iter();
    match embeddings.next() {
        Some((kept, tensor)) => {
            for (other, copy) in embeddings {
                if !same_values(&tensor, &copy) {
                    return Err(FastaiError::ConflictingDuplicate { kept, other });
                }
                dropped.push(other);
            }
            out.insert(ENCODER_WEIGHT, tensor);
        }
        None => missing.note(|| ENCODER_WEIGHT.to_string()),
    }

    // LSTM layers 0..n, contiguous.
    let layers: BTreeSet<usize> = enc
        .keys()
        .filter_map(|s| match s {
            EncSlot::Rnn(l, ..) => Some(*l),
            _ => None,
        })
        .collect();
    let n_layers = layers.last().map_or(0, |&l| l + 1);
    if n_layers == 0 {
        missing.note(|| rnn_key(0, LstmParam::WeightIh, false));
    }
    let bidirectional = enc.keys().any(|s| matches!(s, EncSlot::Rnn(_, _, true, _)));
    for layer in 0..n_layers {
        for reverse in [false, true] {
            if reverse && !bidirectional {
                continue;
            }
            for param in LstmParam::ALL {
                let raw = enc.remove(&EncSlot::Rnn(layer, param, reverse, true));
                let plain = enc.remove(&EncSlot::Rnn(layer, param, reverse, false));
                // `clean_raw_keys`: the `_raw` weight wins over the LSTM's own copy.
                let mut candidates = raw.into_iter().flatten();
                let kept = match candidates.next() {
                    Some(first) => {
                        for (other, copy) in candidates {
                            if !same_values(&first.1, &copy) {
                                return Err(FastaiError::ConflictingDuplicate {
                                    kept: first.0,
                                    other,
                                });
                            }
                            dropped.push(other);
                        }
                        dropped.extend(plain.into_iter().flatten().map(|(k, _)| k));
                        Some(first.1)
                    }
                    None => {
                        let mut plain = plain.into_iter().flatten();
                        let first = plain.next();
                        if let Some((kept, tensor)) = &first {
                            for (other, copy) in plain {
                                if !same_values(tensor, &copy) {
                                    return Err(FastaiError::ConflictingDuplicate {
                                        kept: kept.clone(),
                                        other,
                                    });
                                }
                                dropped.push(other);
                            }
                        }
                        first.map(|(_, t)| t)
                    }
                };
                match kept {
                    Some(tensor) => {
                        out.insert(rnn_key(layer, param, reverse), tensor);
                    }
                    None => missing.note(|| rnn_key(layer, param, reverse)),
                }
            }
        }
    }

    if let Some(t) = decoder.remove(DECODER_WEIGHT) {
        out.insert(DECODER_WEIGHT, t);
    } else if decoder.contains_key(DECODER_BIAS) {
        missing.note(|| DECODER_WEIGHT.to_string());
    }
    if let Some(t) = decoder.remove(DECODER_BIAS) {
        out.insert(DECODER_BIAS, t);
    }

    if let Some(head) = head {
        for (block, (bn, lin)) in head.into_iter().enumerate() {
            for (params, names, optional, key_of) in [
                (
                    bn,
                    &BN_PARAMS[..],
                    "num_batches_tracked",
                    head_bn_key as fn(usize, &str) -> String,
                ),
                (lin, &["weight", "bias"][..], "bias", head_linear_key),
            ] {
                let mut params: Vec<Option<(String, String, RawTensor)>> =
                    params.into_iter().map(Some).collect();
                for &name in names {
                    let found = params
                        .iter_mut()
                        .find(|p| p.as_ref().is_some_and(|(p, _, _)| p == name))
                        .and_then(Option::take);
                    match found {
                        Some((_, _, t)) => {
                            out.insert(key_of(block, name), t);
                        }
                        None if name == optional => {}
                        None => missing.note(|| key_of(block, name)),
                    }
                }
                // A parameter this kind of module does not have (e.g. running stats on the
                // Linear), or a repeated one.
                unknown.extend(params.into_iter().flatten().map(|(_, k, _)| k));
            }
        }
    }
    if !unknown.is_empty() {
        return Err(FastaiError::UnknownKeys { keys: unknown });
    }

    if let Some(keys) = missing.into_keys() {
        return Err(FastaiError::MissingKeys { keys });
    }
    let dialect = if v07 {
        KeyDialect::Fastai07
    } else if v1 {
        KeyDialect::V1
    } else {
        KeyDialect::V2
    };
    Ok((
        out,
        KeyReport {
            dialect,
            kind,
            dropped,
        },
    ))
}

/// Missing canonical keys, at most [`Missing::MAX_LISTED`] of them spelled out: a file of a
/// few bytes naming layer 999999 must not make the error list a million keys.
#[derive(Default)]
struct Missing {
    keys: Vec<String>,
    more: usize,
}

impl Missing {
    const MAX_LISTED: usize = 32;

    fn note(&mut self, key: impl FnOnce() -> String) {
        if self.keys.len() < Self::MAX_LISTED {
            self.keys.push(key());
        } else {
            self.more += 1;
        }
    }

    fn into_keys(mut self) -> Option<Vec<String>> {
        if self.more > 0 {
            self.keys.push(format!("... and {} more", self.more));
        }
        (!self.keys.is_empty()).then_some(self.keys)
    }
}

/// Recognise an encoder key (prefix removed); the dialect when the key is specific to one.
fn parse_encoder_key(key: &str) -> Option<(EncSlot, Option<KeyDialect>)> {
    match key {
        "encoder.weight" => return Some((EncSlot::Embedding, None)),
        "encoder_dp.emb.weight" => return Some((EncSlot::EmbeddingCopy, None)),
        "encoder_with_dropout.embed.weight" => {
            return Some((EncSlot::EmbeddingCopy, Some(KeyDialect::Fastai07)));
        }
        _ => {}
    }
    let rest = key.strip_prefix("rnns.")?;
    let (layer, name) = rest.split_once('.')?;
    let layer = parse_index(layer)?;
    use LstmParam::*;
    let (param, reverse, raw, dialect) = match name {
        "weight_hh_l0_raw" => (WeightHh, false, true, None),
        "module.weight_hh_l0_raw" => (WeightHh, false, true, Some(KeyDialect::Fastai07)),
        "module.weight_hh_l0" => (WeightHh, false, false, Some(KeyDialect::V1)),
        "module.weight_ih_l0" => (WeightIh, false, false, None),
        "module.bias_ih_l0" => (BiasIh, false, false, None),
        "module.bias_hh_l0" => (BiasHh, false, false, None),
        "weight_hh_l0_reverse_raw" | "module.weight_hh_l0_reverse_raw" => {
            (WeightHh, true, true, None)
        }
        "module.weight_hh_l0_reverse" => (WeightHh, true, false, None),
        "module.weight_ih_l0_reverse" => (WeightIh, true, false, None),
        "module.bias_ih_l0_reverse" => (BiasIh, true, false, None),
        "module.bias_hh_l0_reverse" => (BiasHh, true, false, None),
        _ => return None,
    };
    Some((EncSlot::Rnn(layer, param, reverse, raw), dialect))
}

/// A decimal index without sign or leading zeros (as PyTorch writes them).
fn parse_index(s: &str) -> Option<usize> {
    let valid = !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.len() <= 6;
    if valid { s.parse().ok() } else { None }
}

/// One module's parameters: (parameter name, file key, tensor).
type Params = Vec<(String, String, RawTensor)>;
/// Per head block, the BatchNorm's and the Linear's parameters.
type Head = Vec<(Params, Params)>;

/// Where a head module sits in its dialect's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Sub {
    /// v1: `1.layers.{idx}.{param}`.
    Flat,
    /// v2: `1.layers.{block}.{j}.{param}`.
    Nested(usize),
    /// 0.7: `1.layers.{block}.bn.{param}`.
    Bn,
    /// 0.7: `1.layers.{block}.lin.{param}`.
    Lin,
}

/// Parse the head keys (`rest` = key without `1.layers.`) of any dialect into blocks; on
/// failure return the file keys that do not fit.
fn parse_head(keys: Vec<(String, String, RawTensor)>) -> Result<(Head, KeyDialect), Vec<String>> {
    let mut modules: BTreeMap<(usize, Sub), Params> = BTreeMap::new();
    let mut bad = Vec::new();
    for (rest, key, tensor) in keys {
        let parsed = rest.split_once('.').and_then(|(idx, tail)| {
            let idx = parse_index(idx)?;
            let (sub, param) = match tail.split_once('.') {
                None => (Sub::Flat, tail),
                Some(("bn", p)) => (Sub::Bn, p),
                Some(("lin", p)) => (Sub::Lin, p),
                Some((j, p)) => (Sub::Nested(parse_index(j)?), p),
            };
            BN_PARAMS
                .contains(&param)
                .then(|| (idx, sub, param.to_string()))
        });
        match parsed {
            Some((idx, sub, param)) => {
                modules
                    .entry((idx, sub))
                    .or_default()
                    .push((param, key, tensor));
            }
            None => bad.push(key),
        }
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    let all_keys = |modules: &BTreeMap<(usize, Sub), Params>| -> Vec<String> {
        modules
            .values()
            .flat_map(|ps| ps.iter().map(|(_, k, _)| k.clone()))
            .collect()
    };
    let style = |sub: &Sub| match sub {
        Sub::Flat => 0u8,
        Sub::Nested(_) => 1,
        Sub::Bn | Sub::Lin => 2,
    };
    let styles: BTreeSet<u8> = modules.keys().map(|(_, s)| style(s)).collect();
    let Some(&style) = styles.first().filter(|_| styles.len() == 1) else {
        return Err(all_keys(&modules));
    };

    let mut blocks: Head = Vec::new();
    if style == 0 {
        // v1: one flat Sequential; BatchNorm (1-D weight or running stats), then Linear.
        let is_bn = |ps: &Params| {
            ps.iter()
                .any(|(p, _, t)| p.starts_with("running") || (p == "weight" && t.shape.len() == 1))
        };
        let keys = all_keys(&modules);
        let mut pending: Option<Params> = None;
        for ps in modules.into_values() {
            match (is_bn(&ps), pending.take()) {
                (true, None) => pending = Some(ps),
                (false, Some(bn)) => blocks.push((bn, ps)),
                _ => return Err(keys),
            }
        }
        if pending.is_some() {
            return Err(keys);
        }
        return Ok((blocks, KeyDialect::V1));
    }
    // v2 (`LinBnDrop`: BatchNorm at 0, Linear at 1 or 2 depending on the dropout) and 0.7.
    let keys = all_keys(&modules);
    let mut by_block: BTreeMap<usize, Vec<(Sub, Params)>> = BTreeMap::new();
    for ((idx, sub), ps) in modules {
        by_block.entry(idx).or_default().push((sub, ps));
    }
    for (expected, (idx, mut subs)) in by_block.into_iter().enumerate() {
        let fits = expected == idx
            && subs.len() == 2
            && matches!(
                (subs[0].0, subs[1].0),
                (Sub::Nested(0), Sub::Nested(1 | 2)) | (Sub::Bn, Sub::Lin)
            );
        if !fits {
            return Err(keys);
        }
        let lin = subs.pop().map(|(_, ps)| ps).unwrap_or_default();
        let bn = subs.pop().map(|(_, ps)| ps).unwrap_or_default();
        blocks.push((bn, lin));
    }
    let dialect = if style == 1 {
        KeyDialect::V2
    } else {
        KeyDialect::Fastai07
    };
    Ok((blocks, dialect))
}

/// Bitwise equality of shape and values.
fn same_values(a: &RawTensor, b: &RawTensor) -> bool {
    a.shape == b.shape
        && a.data.len() == b.data.len()
        && a.data
            .iter()
            .zip(&b.data)
            .all(|(x, y)| x.to_bits() == y.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastai::read_pth;
    use crate::fastai::test_support::{Value, as_state_dict, fixture, tensor, v2_lm_entries};

    /// Canonical LM keys of an `n`-layer unidirectional model, in canonical order.
    fn canonical_lm(n: usize, decoder_bias: bool) -> Vec<String> {
        let mut keys = vec![ENCODER_WEIGHT.to_string()];
        for l in 0..n {
            keys.extend(LstmParam::ALL.map(|p| rnn_key(l, p, false)));
        }
        keys.push(DECODER_WEIGHT.into());
        if decoder_bias {
            keys.push(DECODER_BIAS.into());
        }
        keys
    }

    fn rename(entries: &[(String, Value)], f: impl Fn(&str) -> Option<String>) -> StateDict {
        let renamed: Vec<(String, Value)> = entries
            .iter()
            .filter_map(|(k, v)| f(k).map(|k| (k, v.clone())))
            .collect();
        as_state_dict(&renamed)
    }

    fn bn_entries(prefix: &str, n: usize, seed: f32) -> Vec<(String, Value)> {
        ["weight", "bias", "running_mean", "running_var"]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let data = (0..n).map(|j| seed + i as f32 + j as f32 * 0.01).collect();
                (format!("{prefix}{p}"), tensor(&[n], data))
            })
            .collect()
    }

    fn lin_entries(
        prefix: &str,
        (n_out, n_in): (usize, usize),
        bias: bool,
    ) -> Vec<(String, Value)> {
        let mut out = vec![(
            format!("{prefix}weight"),
            tensor(
                &[n_out, n_in],
                (0..n_out * n_in).map(|i| i as f32).collect(),
            ),
        )];
        if bias {
            out.push((format!("{prefix}bias"), tensor(&[n_out], vec![0.5; n_out])));
        }
        out
    }

    #[test]
    fn v2_lm_fixture_maps_to_canonical() {
        let file = read_pth(fixture("lm.pth")).expect("loads");
        let (sd, report) = normalize_keys(file.clone()).expect("v2 LM keys");
        assert_eq!(report.kind, ModelKind::LanguageModel);
        assert_eq!(report.dialect, KeyDialect::V2);
        assert_eq!(report.dropped, ["0.encoder_dp.emb.weight"]);
        assert_eq!(sd.keys().collect::<Vec<_>>(), canonical_lm(3, true));
        for (k, t) in sd.iter() {
            assert_eq!(file.get(k), Some(t), "{k} is copied unchanged");
        }
    }

    #[test]
    fn v1_lm_fixture_drops_duplicate_weight_hh() {
        let file = read_pth(fixture("wt103_like_lstm_fwd.pth")).expect("loads");
        let (sd, report) = normalize_keys(file.clone()).expect("v1 LM keys");
        assert_eq!(report.dialect, KeyDialect::V1);
        assert_eq!(report.kind, ModelKind::LanguageModel);
        assert_eq!(report.dropped.len(), 4);
        assert!(
            report
                .dropped
                .contains(&"0.rnns.2.module.weight_hh_l0".to_string())
        );
        assert_eq!(sd.keys().collect::<Vec<_>>(), canonical_lm(3, true));
        assert_eq!(
            sd.get("0.rnns.1.weight_hh_l0_raw"),
            file.get("0.rnns.1.weight_hh_l0_raw")
        );
    }

    #[test]
    fn raw_weight_wins_over_a_differing_v1_copy() {
        let entries = v2_lm_entries("0.", (5, 2, 3, 2), true);
        let mut sd = as_state_dict(&entries);
        // The dropped-out copy v1 saved after a training step differs from the raw weight.
        let mut dropped = sd.get("0.rnns.0.weight_hh_l0_raw").unwrap().clone();
        dropped.data.iter_mut().step_by(2).for_each(|x| *x = 0.0);
        sd.insert("0.rnns.0.module.weight_hh_l0", dropped);
        let (out, report) = normalize_keys(sd.clone()).expect("keys");
        assert_eq!(report.dialect, KeyDialect::V1);
        assert_eq!(
            out.get("0.rnns.0.weight_hh_l0_raw"),
            sd.get("0.rnns.0.weight_hh_l0_raw")
        );
    }

    #[test]
    fn v2_classifier_fixture_maps_encoder_to_0_prefix() {
        let file = read_pth(fixture("clas.pth")).expect("loads");
        let (sd, report) = normalize_keys(file.clone()).expect("v2 classifier keys");
        assert_eq!(report.kind, ModelKind::Classifier);
        assert_eq!(report.dialect, KeyDialect::V2);
        let mut expected = canonical_lm(3, false);
        expected.pop();
        for i in 0..2 {
            expected.extend(BN_PARAMS.map(|p| head_bn_key(i, p)));
            expected.push(head_linear_key(i, "weight"));
        }
        assert_eq!(sd.keys().collect::<Vec<_>>(), expected);
        assert_eq!(
            sd.get("0.rnns.2.module.bias_hh_l0"),
            file.get("0.module.rnns.2.module.bias_hh_l0")
        );
        assert_eq!(
            sd.get("1.layers.1.2.weight"),
            file.get("1.layers.1.2.weight")
        );
    }

    #[test]
    fn v1_classifier_flat_head_is_mapped_with_biases() {
        let mut entries = v2_lm_entries("0.module.", (5, 2, 3, 2), false);
        entries.push((
            "0.module.rnns.1.module.weight_hh_l0".into(),
            entries[6].1.clone(),
        ));
        entries.extend(bn_entries("1.layers.0.", 6, 1.0));
        entries.extend(lin_entries("1.layers.2.", (4, 6), true));
        entries.extend(bn_entries("1.layers.4.", 4, 2.0));
        entries.extend(lin_entries("1.layers.6.", (3, 4), true));
        let file = as_state_dict(&entries);
        let (sd, report) = normalize_keys(file.clone()).expect("v1 classifier keys");
        assert_eq!(report.dialect, KeyDialect::V1);
        assert_eq!(report.kind, ModelKind::Classifier);
        assert_eq!(
            sd.get("1.layers.1.0.running_mean"),
            file.get("1.layers.4.running_mean")
        );
        assert_eq!(sd.get("1.layers.1.2.bias"), file.get("1.layers.6.bias"));
        assert_eq!(sd.get("1.layers.0.2.weight"), file.get("1.layers.2.weight"));
        assert_eq!(sd.len(), 1 + 8 + 2 * (4 + 2));
    }

    #[test]
    fn v2_head_without_dropout_has_linear_at_index_1() {
        let mut entries = v2_lm_entries("0.module.", (5, 2, 3, 1), false);
        entries.extend(bn_entries("1.layers.0.0.", 6, 1.0));
        entries.extend(lin_entries("1.layers.0.1.", (3, 6), false));
        let file = as_state_dict(&entries);
        let (sd, _) = normalize_keys(file.clone()).expect("keys");
        assert_eq!(
            sd.get("1.layers.0.2.weight"),
            file.get("1.layers.0.1.weight")
        );
    }

    #[test]
    fn fastai_07_lm_and_classifier() {
        let entries = v2_lm_entries("0.", (5, 2, 3, 2), true);
        let to_07 = |k: &str| -> Option<String> {
            if k == "1.decoder.bias" {
                return None;
            }
            Some(
                k.replace("encoder_dp.emb", "encoder_with_dropout.embed")
                    .replace("weight_hh_l0_raw", "module.weight_hh_l0_raw"),
            )
        };
        let file = rename(&entries, to_07);
        let (sd, report) = normalize_keys(file.clone()).expect("0.7 LM keys");
        assert_eq!(report.dialect, KeyDialect::Fastai07);
        assert_eq!(report.kind, ModelKind::LanguageModel);
        assert_eq!(sd.keys().collect::<Vec<_>>(), canonical_lm(2, false));
        assert_eq!(
            sd.get("0.rnns.1.weight_hh_l0_raw"),
            file.get("0.rnns.1.module.weight_hh_l0_raw")
        );

        // 0.7 classifier: same encoder names (prefix `0.`), head `bn` / `lin`.
        let mut clas: Vec<(String, Value)> = entries
            .iter()
            .filter(|(k, _)| !k.starts_with("1."))
            .filter_map(|(k, v)| to_07(k).map(|k| (k, v.clone())))
            .collect();
        clas.extend(bn_entries("1.layers.0.bn.", 6, 1.0));
        clas.extend(lin_entries("1.layers.0.lin.", (2, 6), true));
        let (sd, report) = normalize_keys(as_state_dict(&clas)).expect("0.7 classifier keys");
        assert_eq!(report.dialect, KeyDialect::Fastai07);
        assert_eq!(report.kind, ModelKind::Classifier);
        assert!(sd.contains("1.layers.0.2.bias") && sd.contains("1.layers.0.0.running_var"));
    }

    #[test]
    fn save_encoder_files_have_no_prefix() {
        let entries = v2_lm_entries("", (5, 2, 3, 2), false);
        let (sd, report) = normalize_keys(as_state_dict(&entries)).expect("encoder keys");
        assert_eq!(report.kind, ModelKind::Encoder);
        let mut expected = canonical_lm(2, false);
        expected.pop();
        assert_eq!(sd.keys().collect::<Vec<_>>(), expected);
        // 0.7 `*_enc.h5`.
        let file = rename(&entries, |k| {
            Some(k.replace("encoder_dp.emb", "encoder_with_dropout.embed"))
        });
        let (_, report) = normalize_keys(file).expect("0.7 encoder keys");
        assert_eq!(
            (report.kind, report.dialect),
            (ModelKind::Encoder, KeyDialect::Fastai07)
        );
    }

    #[test]
    fn bidirectional_reverse_keys() {
        let mut entries = v2_lm_entries("0.", (5, 2, 4, 2), true);
        for l in 0..2 {
            for p in ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"] {
                entries.push((
                    format!("0.rnns.{l}.module.{p}_reverse"),
                    tensor(&[1], vec![l as f32]),
                ));
            }
        }
        let (sd, _) = normalize_keys(as_state_dict(&entries)).expect("bidir keys");
        assert_eq!(sd.len(), 1 + 2 * 8 + 2);
        assert!(sd.contains(&rnn_key(1, LstmParam::WeightHh, true)));
        // Missing one reverse tensor is named.
        entries.retain(|(k, _)| k != "0.rnns.1.module.bias_hh_l0_reverse");
        match normalize_keys(as_state_dict(&entries)) {
            Err(FastaiError::MissingKeys { keys }) => {
                assert_eq!(keys, ["0.rnns.1.module.bias_hh_l0_reverse"])
            }
            other => panic!("expected MissingKeys, got {other:?}"),
        }
    }

    #[test]
    fn unknown_missing_and_conflicting_keys_are_named() {
        let entries = v2_lm_entries("0.", (5, 2, 3, 2), true);
        let mut sd = as_state_dict(&entries);
        sd.insert("0.rnns.0.module.weight_xx", tensor_raw(&[1]));
        sd.insert("2.extra", tensor_raw(&[1]));
        match normalize_keys(sd) {
            Err(FastaiError::UnknownKeys { keys }) => {
                assert_eq!(keys, ["0.rnns.0.module.weight_xx", "2.extra"])
            }
            other => panic!("expected UnknownKeys, got {other:?}"),
        }

        let mut sd = as_state_dict(&entries);
        sd.remove("0.rnns.1.module.bias_ih_l0");
        sd.remove("0.encoder.weight");
        sd.remove("0.encoder_dp.emb.weight");
        match normalize_keys(sd) {
            Err(FastaiError::MissingKeys { keys }) => {
                assert_eq!(keys, ["0.encoder.weight", "0.rnns.1.module.bias_ih_l0"])
            }
            other => panic!("expected MissingKeys, got {other:?}"),
        }

        // Layer 1 absent between layers 0 and 2.
        let three = v2_lm_entries("0.", (5, 2, 3, 3), true);
        let sd = rename(&three, |k| {
            (!k.starts_with("0.rnns.1.")).then(|| k.to_string())
        });
        match normalize_keys(sd) {
            Err(FastaiError::MissingKeys { keys }) => assert_eq!(keys.len(), 4),
            other => panic!("expected MissingKeys, got {other:?}"),
        }

        let mut sd = as_state_dict(&entries);
        sd.get_mut("0.encoder_dp.emb.weight").unwrap().data[3] += 1.0;
        assert!(matches!(
            normalize_keys(sd),
            Err(FastaiError::ConflictingDuplicate { other, .. }) if other == "0.encoder_dp.emb.weight"
        ));
    }

    #[test]
    fn a_huge_layer_index_gives_a_short_error() {
        let mut sd = as_state_dict(&v2_lm_entries("0.", (5, 2, 3, 2), true));
        sd.insert("0.rnns.999999.module.bias_ih_l0", tensor_raw(&[1]));
        match normalize_keys(sd) {
            Err(FastaiError::MissingKeys { keys }) => {
                assert_eq!(keys.len(), Missing::MAX_LISTED + 1);
                assert_eq!(keys[0], "0.rnns.2.weight_hh_l0_raw");
                let more = 4 * 999_998 - 1 - Missing::MAX_LISTED;
                assert_eq!(keys[Missing::MAX_LISTED], format!("... and {more} more"));
            }
            other => panic!("expected MissingKeys, got {other:?}"),
        }
    }

    #[test]
    fn malformed_heads_are_refused() {
        let enc = v2_lm_entries("0.module.", (5, 2, 3, 1), false);
        let with = |extra: Vec<(String, Value)>| {
            let mut e = enc.clone();
            e.extend(extra);
            normalize_keys(as_state_dict(&e))
        };
        // A BatchNorm without its Linear.
        assert!(matches!(
            with(bn_entries("1.layers.0.0.", 6, 1.0)),
            Err(FastaiError::UnknownKeys { .. })
        ));
        // A BatchNorm missing its running variance.
        let mut bn = bn_entries("1.layers.0.0.", 6, 1.0);
        bn.pop();
        bn.extend(lin_entries("1.layers.0.2.", (2, 6), false));
        match with(bn) {
            Err(FastaiError::MissingKeys { keys }) => {
                assert_eq!(keys, ["1.layers.0.0.running_var"])
            }
            other => panic!("expected MissingKeys, got {other:?}"),
        }
        // Running stats on a Linear.
        let mut head = bn_entries("1.layers.0.0.", 6, 1.0);
        head.extend(lin_entries("1.layers.0.2.", (2, 6), false));
        head.push((
            "1.layers.0.2.running_mean".into(),
            tensor(&[2], vec![0.0; 2]),
        ));
        match with(head.clone()) {
            Err(FastaiError::UnknownKeys { keys }) => {
                assert_eq!(keys, ["1.layers.0.2.running_mean"])
            }
            other => panic!("expected UnknownKeys, got {other:?}"),
        }
        // A decoder next to a head.
        head.pop();
        head.push(("1.decoder.bias".into(), tensor(&[5], vec![0.0; 5])));
        match with(head) {
            Err(FastaiError::UnknownKeys { keys }) => assert_eq!(keys, ["1.decoder.bias"]),
            other => panic!("expected UnknownKeys, got {other:?}"),
        }
        // Blocks must start at 0.
        let mut head = bn_entries("1.layers.1.0.", 6, 1.0);
        head.extend(lin_entries("1.layers.1.2.", (2, 6), false));
        assert!(matches!(with(head), Err(FastaiError::UnknownKeys { .. })));
    }

    fn tensor_raw(shape: &[usize]) -> RawTensor {
        RawTensor::zeros(shape.to_vec())
    }

    #[test]
    fn index_parsing_is_strict() {
        assert_eq!(parse_index("0"), Some(0));
        assert_eq!(parse_index("12"), Some(12));
        for bad in ["", "01", "-1", "+1", "1x", "99999999999999999999"] {
            assert_eq!(parse_index(bad), None, "{bad}");
        }
    }
}
