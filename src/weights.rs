//! Moving weights between fastai's state-dict layout and this crate's modules.
//!
//! Names are the canonical ones of [`crate::fastai::keys`] (fastai v2's language-model names,
//! the encoder always under `0.`): `0.encoder.weight`, `0.rnns.{l}.weight_hh_l0_raw`,
//! `0.rnns.{l}.module.{weight_ih_l0, bias_ih_l0, bias_hh_l0}`, `1.decoder.bias`, and a
//! classifier head's `1.layers.{k}.0.{weight, bias, running_mean, running_var}` (BatchNorm) and
//! `1.layers.{k}.2.weight` (Linear). Every shape is checked; nothing is guessed.

use std::path::Path;

use burn::module::{Module, Param, RunningState};
use burn::store::ModuleRecord;
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
    /// A model file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A model file is not a burnpack record of this model (corrupt, truncated, or the record of
    /// another architecture).
    #[error("{path} is not a saved model of this architecture: {message}")]
    Record {
        /// The file.
        path: std::path::PathBuf,
        /// burn's description.
        message: String,
    },
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

/// Saves a module's parameters (BatchNorm running statistics included) in burn's burnpack
/// format, atomically: a reader never sees a half-written file.
pub fn save_module<M: Module>(module: M, path: &Path) -> Result<(), WeightsError> {
    let record_err = |message: String| WeightsError::Record {
        path: path.to_path_buf(),
        message,
    };
    let bytes = module
        .into_record()
        .into_bytes()
        .map_err(|e| record_err(e.to_string()))?;
    crate::atomic::write_atomic(path, &bytes)
        .map_err(|(path, source)| WeightsError::Io { path, source })
}

/// Loads parameters saved by [`save_module`] into `module` (which fixes the architecture:
/// every tensor must be present with the same shape).
pub fn load_module<M: Module>(module: M, path: &Path) -> Result<M, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_module_bytes(module, bytes, path)
}

/// [`load_module`] from the file's bytes, already read (`path` only names the file in errors).
pub fn load_module_bytes<M: Module>(
    module: M,
    bytes: Vec<u8>,
    path: &Path,
) -> Result<M, WeightsError> {
    let record_err = |e: burn::store::RecordError| WeightsError::Record {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let record =
        ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(record_err)?;
    module.try_load_record(record).map_err(record_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{AwdLstmConfig, LanguageModelConfig, TextClassifierConfig};
    use crate::test_util::{test_device, to_vec};

    fn tiny_lm(device: &burn::tensor::Device) -> LanguageModel {
        LanguageModelConfig::new(
            AwdLstmConfig::new(20)
                .with_emb_size(4)
                .with_hidden_size(6)
                .with_n_layers(2),
        )
        .init(device)
    }

    fn temp(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("ulmfit-weights-{}-{name}", std::process::id()))
    }

    #[test]
    fn state_dict_round_trip() {
        let device = test_device();
        let a = tiny_lm(&device);
        let sd = language_model_state_dict(&a);
        let b = load_language_model(tiny_lm(&device), &sd).unwrap();
        assert_eq!(
            to_vec(a.encoder.rnns[1].forward.weight_hh.val()),
            to_vec(b.encoder.rnns[1].forward.weight_hh.val())
        );
    }

    #[test]
    fn missing_and_misshaped_tensors_are_errors() {
        let device = test_device();
        let mut sd = language_model_state_dict(&tiny_lm(&device));
        sd.remove(DECODER_BIAS);
        match load_language_model(tiny_lm(&device), &sd) {
            Err(WeightsError::Missing(name)) => assert_eq!(name, DECODER_BIAS),
            other => panic!("expected Missing, got {other:?}"),
        }
        let mut sd = language_model_state_dict(&tiny_lm(&device));
        sd.insert(ENCODER_WEIGHT, RawTensor::zeros(vec![21, 4]));
        assert!(matches!(
            load_language_model(tiny_lm(&device), &sd),
            Err(WeightsError::Shape { .. })
        ));
        // A head bias the model has no place for.
        let clas_cfg = TextClassifierConfig::new(
            AwdLstmConfig::new(20)
                .with_emb_size(4)
                .with_hidden_size(6)
                .with_n_layers(2),
            3,
        );
        let clas = clas_cfg.init(&device);
        let mut sd = StateDict::new();
        encoder_state_dict(&clas.encoder, &mut sd);
        for (k, b) in clas.head.blocks.iter().enumerate() {
            for (name, v) in [("weight", b.bn.weight.val()), ("bias", b.bn.bias.val())] {
                put(&mut sd, &head_bn_key(k, name), v);
            }
            put(
                &mut sd,
                &head_bn_key(k, "running_mean"),
                b.bn.running_mean.value(),
            );
            put(
                &mut sd,
                &head_bn_key(k, "running_var"),
                b.bn.running_var.value(),
            );
            put(
                &mut sd,
                &head_linear_key(k, "weight"),
                b.linear.weight.val().transpose(),
            );
        }
        assert!(load_classifier(clas_cfg.init(&device), &sd).is_ok());
        put(
            &mut sd,
            &head_linear_key(0, "bias"),
            clas.head.blocks[0].bn.bias.val(),
        );
        assert!(matches!(
            load_classifier(clas_cfg.init(&device), &sd),
            Err(WeightsError::Unexpected(_))
        ));
    }

    #[test]
    fn burnpack_round_trip_and_bad_files() {
        let device = test_device();
        let a = tiny_lm(&device);
        let path = temp("lm.bpk");
        save_module(a.clone(), &path).unwrap();
        let b = load_module(tiny_lm(&device), &path).unwrap();
        assert_eq!(
            to_vec(a.encoder.embedding.val()),
            to_vec(b.encoder.embedding.val())
        );
        assert_eq!(to_vec(a.decoder.bias.val()), to_vec(b.decoder.bias.val()));
        // Another architecture, a truncated file, an empty file, a missing file: errors.
        let other =
            LanguageModelConfig::new(AwdLstmConfig::new(20).with_emb_size(5).with_n_layers(2))
                .init(&device);
        assert!(load_module(other, &path).is_err());
        let bytes = std::fs::read(&path).unwrap();
        for cut in [0, 7, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(
                load_module(tiny_lm(&device), &path).is_err(),
                "cut at {cut}"
            );
        }
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            load_module(tiny_lm(&device), &path),
            Err(WeightsError::Io { .. })
        ));
    }
}
