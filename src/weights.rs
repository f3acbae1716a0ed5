//! Moving weights between fastai's state-dict layout and this crate's modules.
//!
//! Names are the canonical ones of [`crate::fastai::keys`] (fastai v2's language-model names,
//! the encoder always under `0.`): `0.encoder.weight`, `0.rnns.{l}.weight_hh_l0_raw`,
//! `0.rnns.{l}.module.{weight_ih_l0, bias_ih_l0, bias_hh_l0}`, `1.decoder.bias`, and a
//! classifier head's `1.layers.{k}.0.{weight, bias, running_mean, running_var}` (BatchNorm) and
//! `1.layers.{k}.2.weight` (Linear). Every shape is checked; nothing is guessed.

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};

use crate::fastai::keys::{
    DECODER_BIAS, ENCODER_WEIGHT, LstmParam, head_bn_key, head_linear_key, rnn_key,
};
use crate::fastai::{RawTensor, StateDict};
use crate::nn::{AwdLstm, LanguageModel, LstmWeights, TextClassifier};

/// Errors moving weights into a model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// A tensor the model needs is not in the state dict.
    #[error("missing tensor `{0}` in the weights")]
    Missing(String),
    /// The weights hold a tensor the model has no place for (e.g. a head bias for a head
    /// built without biases).
    #[error(
        "tensor `{0}` in the weights has no counterpart in the model (check the model configuration)"
    )]
    Unexpected(String),
    /// A tensor has another shape than the model's parameter.
    #[error("tensor `{name}` has shape {found:?}, the model expects {expected:?}")]
    Shape {
        /// Tensor name.
        name: String,
        /// The model's shape.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
}

fn fetch<'a>(
    sd: &'a StateDict,
    name: &str,
    expected: &[usize],
) -> Result<&'a RawTensor, WeightsError> {
    let t = sd
        .get(name)
        .ok_or_else(|| WeightsError::Missing(name.to_string()))?;
    if t.shape != expected {
        return Err(WeightsError::Shape {
            name: name.to_string(),
            expected: expected.to_vec(),
            found: t.shape.clone(),
        });
    }
    Ok(t)
}

fn tensor<const D: usize>(raw: &RawTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(raw.data.clone(), raw.shape.clone()), device)
}

fn set<const D: usize>(
    param: &mut Param<Tensor<D>>,
    sd: &StateDict,
    name: &str,
) -> Result<(), WeightsError> {
    let device = param.device();
    let raw = fetch(sd, name, &param.dims())?;
    *param = Param::from_tensor(tensor(raw, &device));
    Ok(())
}

fn set_running(
    state: &mut RunningState<Tensor<1>>,
    sd: &StateDict,
    name: &str,
) -> Result<(), WeightsError> {
    let value = state.value();
    let device = value.device();
    let raw = fetch(sd, name, &value.dims())?;
    *state = RunningState::new(tensor(raw, &device));
    Ok(())
}

fn load_lstm(
    w: &mut LstmWeights,
    sd: &StateDict,
    layer: usize,
    reverse: bool,
) -> Result<(), WeightsError> {
    set(
        &mut w.weight_hh,
        sd,
        &rnn_key(layer, LstmParam::WeightHh, reverse),
    )?;
    set(
        &mut w.weight_ih,
        sd,
        &rnn_key(layer, LstmParam::WeightIh, reverse),
    )?;
    set(
        &mut w.bias_ih,
        sd,
        &rnn_key(layer, LstmParam::BiasIh, reverse),
    )?;
    set(
        &mut w.bias_hh,
        sd,
        &rnn_key(layer, LstmParam::BiasHh, reverse),
    )?;
    Ok(())
}

/// Loads an AWD-LSTM encoder's weights from a canonical state dict (see [`crate::fastai::keys`]:
/// the encoder is always under `0.`, for a language model and a classifier alike).
pub fn load_encoder(mut enc: AwdLstm, sd: &StateDict) -> Result<AwdLstm, WeightsError> {
    set(&mut enc.embedding, sd, ENCODER_WEIGHT)?;
    for (l, rnn) in enc.rnns.iter_mut().enumerate() {
        load_lstm(&mut rnn.forward, sd, l, false)?;
        if let Some(rev) = rnn.reverse.as_mut() {
            load_lstm(rev, sd, l, true)?;
        }
    }
    Ok(enc)
}

/// Loads a language model (encoder, and the decoder bias; the decoder weight is the embedding).
pub fn load_language_model(
    mut lm: LanguageModel,
    sd: &StateDict,
) -> Result<LanguageModel, WeightsError> {
    lm.encoder = load_encoder(lm.encoder, sd)?;
    set(&mut lm.decoder.bias, sd, DECODER_BIAS)?;
    Ok(lm)
}

/// Loads a classifier (encoder and head). PyTorch stores a Linear weight as `[out, in]`; burn
/// as `[in, out]`: it is transposed here.
pub fn load_classifier(
    mut clas: TextClassifier,
    sd: &StateDict,
) -> Result<TextClassifier, WeightsError> {
    clas.encoder = load_encoder(clas.encoder, sd)?;
    for (k, block) in clas.head.blocks.iter_mut().enumerate() {
        set(&mut block.bn.weight, sd, &head_bn_key(k, "weight"))?;
        set(&mut block.bn.bias, sd, &head_bn_key(k, "bias"))?;
        set_running(
            &mut block.bn.running_mean,
            sd,
            &head_bn_key(k, "running_mean"),
        )?;
        set_running(
            &mut block.bn.running_var,
            sd,
            &head_bn_key(k, "running_var"),
        )?;
        let name = head_linear_key(k, "weight");
        let [d_in, d_out] = block.linear.weight.dims();
        let raw = fetch(sd, &name, &[d_out, d_in])?;
        let device = block.linear.weight.device();
        let w: Tensor<2> = tensor(raw, &device);
        block.linear.weight = Param::from_tensor(w.transpose());
        let bias_name = head_linear_key(k, "bias");
        match (block.linear.bias.as_mut(), sd.get(&bias_name)) {
            (Some(b), Some(_)) => set(b, sd, &bias_name)?,
            (None, None) => {}
            (Some(_), None) => return Err(WeightsError::Missing(bias_name)),
            (None, Some(_)) => return Err(WeightsError::Unexpected(bias_name)),
        }
    }
    Ok(clas)
}

/// The parameters of a language model as a state dict with fastai v2's names (the tied matrix
/// appears once, as `0.encoder.weight`).
pub fn language_model_state_dict(lm: &LanguageModel) -> StateDict {
    let mut sd = StateDict::new();
    encoder_state_dict(&lm.encoder, &mut sd);
    put(&mut sd, DECODER_BIAS, lm.decoder.bias.val());
    sd
}

/// Adds an encoder's parameters to `sd` under their canonical names.
pub fn encoder_state_dict(enc: &AwdLstm, sd: &mut StateDict) {
    put(sd, ENCODER_WEIGHT, enc.embedding.val());
    for (l, rnn) in enc.rnns.iter().enumerate() {
        let mut dirs = vec![(&rnn.forward, false)];
        if let Some(r) = &rnn.reverse {
            dirs.push((r, true));
        }
        for (w, rev) in dirs {
            put(sd, &rnn_key(l, LstmParam::WeightHh, rev), w.weight_hh.val());
            put(sd, &rnn_key(l, LstmParam::WeightIh, rev), w.weight_ih.val());
            put(sd, &rnn_key(l, LstmParam::BiasIh, rev), w.bias_ih.val());
            put(sd, &rnn_key(l, LstmParam::BiasHh, rev), w.bias_hh.val());
        }
    }
}

fn put<const D: usize>(sd: &mut StateDict, name: &str, t: Tensor<D>) {
    let shape = t.dims().to_vec();
    let data = t.into_data().try_into_vec_as::<f32>().expect("f32 data");
    let raw = RawTensor::new(shape, data).expect("a tensor's data matches its shape");
    sd.insert(name, raw);
}
