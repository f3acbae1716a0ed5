//! Architecture sizes inferred from (and checked against) a canonical state dict.

use super::keys::{
    DECODER_BIAS, DECODER_WEIGHT, ENCODER_WEIGHT, LstmParam, head_bn_key, head_linear_key, rnn_key,
};
use super::{FastaiError, RawTensor, StateDict};

/// Sizes of a fastai AWD-LSTM (`AWD_LSTM` + optional `LinearDecoder`), as read from tensors.
///
/// Per layer `l` of `n_layers` (fastai `AWD_LSTM.__init__`): input width
/// [`layer_input_size`](Self::layer_input_size) = `emb_size` for `l = 0`, else `hidden_size`;
/// hidden width per direction [`layer_hidden_size`](Self::layer_hidden_size) =
/// (`hidden_size` if `l < n_layers - 1` else `emb_size`) / `n_dirs`. So the last layer outputs
/// `emb_size` features, which makes weight tying possible. fastai's WikiText-103 model:
/// vocab 60000, emb 400, hidden 1152, 3 layers (spec §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AwdLstmDims {
    /// Rows of `0.encoder.weight` (the vocabulary size).
    pub vocab_size: usize,
    /// Columns of `0.encoder.weight` (fastai `emb_sz`, 400 for WT103).
    pub emb_size: usize,
    /// fastai `n_hid` (1152 for WT103; 1150 for older files): the output width of every
    /// layer but the last, both directions together. With one layer it never appears in a
    /// tensor and is reported as `emb_size`.
    pub hidden_size: usize,
    /// Number of stacked single-layer LSTMs (fastai `n_layers`, 3).
    pub n_layers: usize,
    /// Whether every layer is a bidirectional LSTM (fastai `bidir`; `*_reverse` keys).
    pub bidirectional: bool,
    /// Whether the state dict has a decoder (`1.decoder.weight`): a language model.
    pub has_decoder: bool,
    /// Whether the state dict has `1.decoder.bias` (fastai 0.7 files have none; a zero bias
    /// is equivalent, see [`fill_missing_decoder_bias`]).
    pub decoder_bias: bool,
    /// Whether `1.decoder.weight` equals `0.encoder.weight` bit for bit (fastai ties them, so
    /// this is true for every fastai language model).
    pub tied_decoder: bool,
}

impl AwdLstmDims {
    /// 2 if bidirectional, else 1.
    pub fn n_dirs(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }

    /// Input width of layer `l`.
    pub fn layer_input_size(&self, l: usize) -> usize {
        if l == 0 {
            self.emb_size
        } else {
            self.hidden_size
        }
    }

    /// Hidden width per direction of layer `l` (the LSTM's `hidden_size`); its gate
    /// matrices have `4 *` this many rows.
    pub fn layer_hidden_size(&self, l: usize) -> usize {
        let out = if l + 1 < self.n_layers {
            self.hidden_size
        } else {
            self.emb_size
        };
        out / self.n_dirs()
    }
}

/// Sizes of fastai's `PoolingLinearClassifier` head, as read from tensors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassifierHeadDims {
    /// `[3 * emb_size, lin_ftrs..., n_class]` (fastai `layers`; `[1200, 50, n_class]` by
    /// default). Block `i` maps `layers[i]` to `layers[i + 1]`.
    pub layers: Vec<usize>,
    /// Whether the Linear layers have a bias (v1 and 0.7 heads; v2's have none).
    pub linear_bias: bool,
}

impl ClassifierHeadDims {
    /// Number of classes (last entry of `layers`).
    pub fn n_class(&self) -> usize {
        self.layers.last().copied().unwrap_or(0)
    }
}

/// Derive the AWD-LSTM sizes from a canonical state dict and check every encoder / decoder
/// shape against them. Errors name the tensor, its shape and the expected shape.
pub fn infer_awd_lstm_dims(state: &StateDict) -> Result<AwdLstmDims, FastaiError> {
    let emb = require(state, ENCODER_WEIGHT)?;
    let [vocab_size, emb_size] = emb.shape[..] else {
        return Err(shape_err(ENCODER_WEIGHT, emb, "[vocab, emb] (2-D)".into()));
    };
    if vocab_size == 0 || emb_size == 0 {
        return Err(shape_err(
            ENCODER_WEIGHT,
            emb,
            "non-empty [vocab, emb]".into(),
        ));
    }
    let n_layers = (0..)
        .take_while(|&l| state.contains(&rnn_key(l, LstmParam::WeightIh, false)))
        .count();
    if n_layers == 0 {
        return Err(FastaiError::MissingKeys {
            keys: vec![rnn_key(0, LstmParam::WeightIh, false)],
        });
    }
    let bidirectional = state.contains(&rnn_key(0, LstmParam::WeightIh, true));
    let n_dirs = if bidirectional { 2 } else { 1 };

    let hidden_size = if n_layers > 1 {
        let key = rnn_key(0, LstmParam::WeightHh, false);
        let w = require(state, &key)?;
        match w.shape[..] {
            [rows, h] if h > 0 && rows == 4 * h => h * n_dirs,
            _ => return Err(shape_err(&key, w, "[4*h, h] with h = hidden width".into())),
        }
    } else {
        emb_size
    };
    let mut dims = AwdLstmDims {
        vocab_size,
        emb_size,
        hidden_size,
        n_layers,
        bidirectional,
        has_decoder: false,
        decoder_bias: false,
        tied_decoder: false,
    };

    for l in 0..n_layers {
        let out = if l + 1 < n_layers {
            hidden_size
        } else {
            emb_size
        };
        if out % n_dirs != 0 {
            let key = rnn_key(l, LstmParam::WeightIh, false);
            let w = require(state, &key)?;
            return Err(shape_err(
                &key,
                w,
                format!("an output width {out} divisible by 2 (bidirectional)"),
            ));
        }
        let h = out / n_dirs;
        let input = dims.layer_input_size(l);
        for reverse in [false, true].into_iter().take(n_dirs) {
            for param in LstmParam::ALL {
                let key = rnn_key(l, param, reverse);
                let t = require(state, &key)?;
                let (expected, what) = match param {
                    LstmParam::WeightIh => (vec![4 * h, input], "[4*hidden, input width]"),
                    LstmParam::WeightHh => (vec![4 * h, h], "[4*hidden, hidden]"),
                    LstmParam::BiasIh | LstmParam::BiasHh => (vec![4 * h], "[4*hidden]"),
                };
                if t.shape != expected {
                    return Err(shape_err(
                        &key,
                        t,
                        format!(
                            "{expected:?} = {what} for layer {l} of {n_layers} \
                             (emb {emb_size}, hidden {hidden_size}, hidden per direction {h})"
                        ),
                    ));
                }
            }
        }
    }

    if let Some(w) = state.get(DECODER_WEIGHT) {
        if w.shape != [vocab_size, emb_size] {
            return Err(shape_err(
                DECODER_WEIGHT,
                w,
                format!("[{vocab_size}, {emb_size}] = [vocab, emb] like {ENCODER_WEIGHT}"),
            ));
        }
        dims.has_decoder = true;
        dims.tied_decoder = w
            .data
            .iter()
            .zip(&emb.data)
            .all(|(a, b)| a.to_bits() == b.to_bits());
    }
    if let Some(b) = state.get(DECODER_BIAS) {
        if !dims.has_decoder {
            return Err(FastaiError::MissingKeys {
                keys: vec![DECODER_WEIGHT.into()],
            });
        }
        if b.shape != [vocab_size] {
            return Err(shape_err(
                DECODER_BIAS,
                b,
                format!("[{vocab_size}] = [vocab]"),
            ));
        }
        dims.decoder_bias = true;
    }
    Ok(dims)
}

/// Derive the classifier head sizes from a canonical state dict and check every head shape.
/// `dims` are the encoder's sizes (the head's input is `3 * emb_size`: concat pooling).
pub fn infer_classifier_head(
    state: &StateDict,
    dims: &AwdLstmDims,
) -> Result<ClassifierHeadDims, FastaiError> {
    let n_blocks = (0..)
        .take_while(|&i| state.contains(&head_linear_key(i, "weight")))
        .count();
    if n_blocks == 0 {
        return Err(FastaiError::MissingKeys {
            keys: vec![head_linear_key(0, "weight")],
        });
    }
    let mut layers = vec![3 * dims.emb_size];
    let mut biases = Vec::new();
    for i in 0..n_blocks {
        let n_in = layers[i];
        for param in ["weight", "bias", "running_mean", "running_var"] {
            let key = head_bn_key(i, param);
            let t = require(state, &key)?;
            if t.shape != [n_in] {
                return Err(shape_err(
                    &key,
                    t,
                    format!("[{n_in}] (BatchNorm1d of head block {i}; block 0 takes 3*emb)"),
                ));
            }
        }
        let key = head_bn_key(i, "num_batches_tracked");
        if let Some(t) = state.get(&key)
            && t.len() != 1
        {
            return Err(shape_err(&key, t, "[] (a scalar)".into()));
        }
        let key = head_linear_key(i, "weight");
        let w = require(state, &key)?;
        let n_out = match w.shape[..] {
            [n_out, cols] if cols == n_in && n_out > 0 => n_out,
            _ => {
                return Err(shape_err(
                    &key,
                    w,
                    format!("[n_out, {n_in}] (Linear of head block {i})"),
                ));
            }
        };
        let key = head_linear_key(i, "bias");
        if let Some(b) = state.get(&key) {
            if b.shape != [n_out] {
                return Err(shape_err(&key, b, format!("[{n_out}]")));
            }
            biases.push(true);
        } else {
            biases.push(false);
        }
        layers.push(n_out);
    }
    let linear_bias = biases.iter().any(|&b| b);
    if linear_bias && biases.iter().any(|&b| !b) {
        let keys = (0..n_blocks)
            .filter(|&i| !biases[i])
            .map(|i| head_linear_key(i, "bias"))
            .collect();
        return Err(FastaiError::MissingKeys { keys });
    }
    Ok(ClassifierHeadDims {
        layers,
        linear_bias,
    })
}

/// Insert a zero `1.decoder.bias` when a language model has none (fastai 0.7 files): a zero
/// bias computes exactly what a bias-free decoder does. Returns whether one was inserted.
pub fn fill_missing_decoder_bias(state: &mut StateDict, dims: &AwdLstmDims) -> bool {
    if !dims.has_decoder || state.contains(DECODER_BIAS) {
        return false;
    }
    state.insert(DECODER_BIAS, RawTensor::zeros(vec![dims.vocab_size]));
    true
}

fn require<'a>(state: &'a StateDict, key: &str) -> Result<&'a RawTensor, FastaiError> {
    state.get(key).ok_or_else(|| FastaiError::MissingKeys {
        keys: vec![key.to_string()],
    })
}

fn shape_err(name: &str, t: &RawTensor, expected: String) -> FastaiError {
    FastaiError::Shape {
        name: name.to_string(),
        shape: t.shape.clone(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fastai::test_support::{Value, as_state_dict, fixture, tensor, v2_lm_entries};
    use crate::fastai::{normalize_keys, read_pth};

    fn meta_config() -> serde_json::Value {
        let text = std::fs::read_to_string(fixture("meta.json")).expect("meta.json");
        serde_json::from_str::<serde_json::Value>(&text).expect("parses")["config"].clone()
    }

    fn cfg(c: &serde_json::Value, k: &str) -> usize {
        c[k].as_u64()
            .unwrap_or_else(|| panic!("meta.json config.{k}")) as usize
    }

    fn canonical(entries: &[(String, Value)]) -> StateDict {
        normalize_keys(as_state_dict(entries)).expect("keys").0
    }

    #[test]
    fn lm_fixture_dims_match_meta() {
        let c = meta_config();
        let (sd, _) = normalize_keys(read_pth(fixture("lm.pth")).unwrap()).unwrap();
        let dims = infer_awd_lstm_dims(&sd).expect("dims");
        assert_eq!(
            dims,
            AwdLstmDims {
                vocab_size: cfg(&c, "vocab"),
                emb_size: cfg(&c, "emb"),
                hidden_size: cfg(&c, "hid"),
                n_layers: cfg(&c, "layers"),
                bidirectional: false,
                has_decoder: true,
                decoder_bias: true,
                tied_decoder: true,
            }
        );
        assert_eq!(dims.layer_hidden_size(0), cfg(&c, "hid"));
        assert_eq!(dims.layer_hidden_size(2), cfg(&c, "emb"));
        assert_eq!(dims.layer_input_size(2), cfg(&c, "hid"));
    }

    #[test]
    fn classifier_fixture_head_matches_meta() {
        let c = meta_config();
        let (sd, _) = normalize_keys(read_pth(fixture("clas.pth")).unwrap()).unwrap();
        let dims = infer_awd_lstm_dims(&sd).expect("dims");
        assert!(!dims.has_decoder);
        let head = infer_classifier_head(&sd, &dims).expect("head");
        let mut layers = vec![3 * cfg(&c, "emb")];
        layers.extend(
            c["lin_ftrs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize),
        );
        layers.push(cfg(&c, "n_class"));
        assert_eq!(head.layers, layers);
        assert!(!head.linear_bias);
        assert_eq!(head.n_class(), cfg(&c, "n_class"));
    }

    #[test]
    fn bidirectional_and_single_layer_dims() {
        // bidir: hidden 6 -> 3 per direction, last layer emb 4 -> 2 per direction.
        let (v, e, h) = (5, 4, 6);
        let mut entries = Vec::new();
        entries.push((
            "0.encoder.weight".to_string(),
            tensor(&[v, e], vec![0.0; v * e]),
        ));
        for (l, (input, hd)) in [(e, h / 2), (h, e / 2)].into_iter().enumerate() {
            for suffix in ["", "_reverse"] {
                let hh = if suffix.is_empty() {
                    format!("0.rnns.{l}.weight_hh_l0_raw")
                } else {
                    format!("0.rnns.{l}.module.weight_hh_l0_reverse")
                };
                entries.push((hh, tensor(&[4 * hd, hd], vec![0.0; 4 * hd * hd])));
                let ih = format!("0.rnns.{l}.module.weight_ih_l0{suffix}");
                entries.push((ih, tensor(&[4 * hd, input], vec![0.0; 4 * hd * input])));
                for b in ["bias_ih_l0", "bias_hh_l0"] {
                    let key = format!("0.rnns.{l}.module.{b}{suffix}");
                    entries.push((key, tensor(&[4 * hd], vec![0.0; 4 * hd])));
                }
            }
        }
        let dims = infer_awd_lstm_dims(&canonical(&entries)).expect("bidir dims");
        assert!(dims.bidirectional);
        assert_eq!((dims.hidden_size, dims.n_layers, dims.n_dirs()), (6, 2, 2));
        assert_eq!(
            (dims.layer_hidden_size(0), dims.layer_hidden_size(1)),
            (3, 2)
        );

        let one = canonical(&v2_lm_entries("0.", (5, 2, 3, 1), true));
        let dims = infer_awd_lstm_dims(&one).expect("1-layer dims");
        assert_eq!((dims.n_layers, dims.hidden_size), (1, 2));
    }

    #[test]
    fn wrong_shapes_are_named_with_expectation() {
        let mut sd = canonical(&v2_lm_entries("0.", (5, 2, 3, 2), true));
        sd.insert("0.rnns.1.module.weight_ih_l0", RawTensor::zeros(vec![8, 4]));
        match infer_awd_lstm_dims(&sd) {
            Err(FastaiError::Shape {
                name,
                shape,
                expected,
            }) => {
                assert_eq!(name, "0.rnns.1.module.weight_ih_l0");
                assert_eq!(shape, [8, 4]);
                assert!(expected.starts_with("[8, 3]"), "{expected}");
            }
            other => panic!("expected Shape, got {other:?}"),
        }
        let mut sd = canonical(&v2_lm_entries("0.", (5, 2, 3, 2), true));
        sd.insert("1.decoder.bias", RawTensor::zeros(vec![4]));
        assert!(matches!(
            infer_awd_lstm_dims(&sd),
            Err(FastaiError::Shape { name, .. }) if name == "1.decoder.bias"
        ));
        let mut sd = canonical(&v2_lm_entries("0.", (5, 2, 3, 2), true));
        sd.insert("0.encoder.weight", RawTensor::zeros(vec![10]));
        assert!(matches!(
            infer_awd_lstm_dims(&sd),
            Err(FastaiError::Shape { name, .. }) if name == "0.encoder.weight"
        ));
        let mut sd = canonical(&v2_lm_entries("0.", (5, 2, 3, 2), true));
        sd.insert("0.rnns.0.weight_hh_l0_raw", RawTensor::zeros(vec![12, 4]));
        assert!(matches!(
            infer_awd_lstm_dims(&sd),
            Err(FastaiError::Shape { name, .. }) if name == "0.rnns.0.weight_hh_l0_raw"
        ));
    }

    #[test]
    fn head_shapes_are_checked() {
        let (sd, _) = normalize_keys(read_pth(fixture("clas.pth")).unwrap()).unwrap();
        let dims = infer_awd_lstm_dims(&sd).unwrap();
        let mut bad = sd.clone();
        bad.insert("1.layers.1.0.running_mean", RawTensor::zeros(vec![11]));
        assert!(matches!(
            infer_classifier_head(&bad, &dims),
            Err(FastaiError::Shape { name, .. }) if name == "1.layers.1.0.running_mean"
        ));
        let mut bad = sd.clone();
        bad.insert("1.layers.0.2.weight", RawTensor::zeros(vec![10, 47]));
        assert!(matches!(
            infer_classifier_head(&bad, &dims),
            Err(FastaiError::Shape { name, .. }) if name == "1.layers.0.2.weight"
        ));
        let mut bad = sd;
        bad.insert("1.layers.0.2.bias", RawTensor::zeros(vec![10]));
        match infer_classifier_head(&bad, &dims) {
            Err(FastaiError::MissingKeys { keys }) => assert_eq!(keys, ["1.layers.1.2.bias"]),
            other => panic!("expected MissingKeys, got {other:?}"),
        }
    }

    #[test]
    fn untied_decoder_and_missing_bias() {
        let mut sd = canonical(&v2_lm_entries("0.", (5, 2, 3, 2), true));
        sd.get_mut("1.decoder.weight").unwrap().data[0] += 1.0;
        sd.remove("1.decoder.bias");
        let dims = infer_awd_lstm_dims(&sd).unwrap();
        assert!(dims.has_decoder && !dims.tied_decoder && !dims.decoder_bias);
        assert!(fill_missing_decoder_bias(&mut sd, &dims));
        assert_eq!(sd.get("1.decoder.bias"), Some(&RawTensor::zeros(vec![5])));
        assert!(!fill_missing_decoder_bias(&mut sd, &dims));
    }
}
