//! bf16 recurrent weights for faster inference at batch 1.
//!
//! Classifying one long document is bound by memory bandwidth: every time step reads all of each
//! LSTM layer's recurrent weight `W_hh` (21 MB in `f32` for a 1152-unit layer). Stored as bf16 it
//! is half the bytes; the row-streaming kernel [`gemv`](crate::ops::gemv) reads it as bf16
//! directly, widening each weight to `f32` exactly and keeping products, sums, activations and
//! states in `f32` (`clas_infer_b1` on flex: 2.1 docs/s against 1.05 with `f32` weights).
//!
//! # Precision
//!
//! Only the weights are rounded: bf16 keeps 8 significant bits, so each weight moves by at most
//! 2^-9 (0.2 %) of its value. The errors of a dot product of 1152 such terms partly cancel; on
//! random weights the hidden states move by about 1e-3, and predicted labels change only for
//! documents whose top two classes are that close. Measure the accuracy on a test set before
//! relying on it (`ulmfit eval --bf16`).
//!
//! Nothing else changes: embeddings, input weights and the classifier head stay `f32`. The
//! speed-up is for batches of at most [`gemv::MAX_BATCH`](crate::ops::gemv::MAX_BATCH)
//! documents; larger batches widen the weight back to `f32` once per layer (no gain).
//!
//! # Backends
//!
//! On a device that stores bf16 tensors (flex, CUDA) the weight becomes a bf16 tensor; the
//! tensor-op recurrence (CUDA) casts it back to the activations' dtype. On one that does not
//! (ndarray) the weight stays `f32` but is rounded to bf16 values, so results are the same up to
//! summation order.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{FloatDType, Tensor, TensorData, bf16};

/// Rounds (or casts) every LSTM recurrent weight (`LstmWeights::weight_hh`) in `module` to bf16,
/// for inference (see the [module docs](self)). Other parameters are left as they are.
pub fn bf16_recurrent_weights<M: Module>(module: M) -> M {
    module.map(&mut RecurrentToBf16 { in_weight_hh: 0 })
}

/// The [`ModuleMapper`] behind [`bf16_recurrent_weights`].
struct RecurrentToBf16 {
    /// Depth of `weight_hh` fields of `LstmWeights` entered (0 or 1).
    in_weight_hh: usize,
}

const FIELD: &str = "weight_hh";
const CONTAINER: &str = "Struct:LstmWeights";

impl ModuleMapper for RecurrentToBf16 {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if name == FIELD && container_type == CONTAINER {
            self.in_weight_hh += 1;
        }
    }

    fn exit_module(&mut self, name: &str, container_type: &str) {
        if name == FIELD && container_type == CONTAINER {
            self.in_weight_hh -= 1;
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.in_weight_hh == 0 {
            return param;
        }
        param.map(to_bf16)
    }
}

/// `t` as a bf16 tensor where the device stores them, else rounded to bf16 values in place.
fn to_bf16<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    let device = t.device();
    if device.supports_dtype(FloatDType::BF16) {
        return t.cast(FloatDType::BF16);
    }
    let dims = t.dims();
    let v: Vec<f32> = t
        .into_data()
        .iter::<f32>()
        .map(|x| bf16::from_f32(x).to_f32())
        .collect();
    Tensor::from_data(TensorData::new(v, dims), &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{AwdLstmConfig, TextClassifierConfig};
    use crate::test_util::{test_device, to_vec};
    use burn::tensor::{DType, Int};

    /// Only the recurrent weights change, each by at most bf16's rounding, and the classifier's
    /// output stays close; on flex the weights really are bf16 tensors.
    fn recurrent_weights_only_on(device: &burn::tensor::Device, stores_bf16: bool) {
        let config = TextClassifierConfig::new(
            AwdLstmConfig::classifier(30)
                .with_emb_size(8)
                .with_hidden_size(37)
                .with_n_layers(2),
            3,
        );
        let model = config.init(device);
        let rounded = bf16_recurrent_weights(model.clone());
        let x = Tensor::<2, Int>::from_data([[1i64, 5, 7, 9, 2, 11, 3, 4, 8]], device);
        for (a, b) in model.encoder.rnns.iter().zip(&rounded.encoder.rnns) {
            let (w, r) = (a.forward.weight_hh.val(), b.forward.weight_hh.val());
            assert_eq!(r.dtype() == DType::BF16, stores_bf16);
            let (w, r) = (to_vec(w), to_vec(r.cast(FloatDType::F32)));
            for (w, r) in w.iter().zip(&r) {
                assert!((w - r).abs() <= w.abs() / 256.0, "{w} -> {r}");
            }
            assert!(w != r, "the weight was rounded");
            assert_eq!(
                to_vec(a.forward.weight_ih.val()),
                to_vec(b.forward.weight_ih.val())
            );
        }
        let (p, q) = (
            to_vec(model.forward(x.clone()).logits),
            to_vec(rounded.forward(x).logits),
        );
        crate::test_util::assert_close(&q, &p, 1e-2, "logits");
    }

    #[test]
    fn recurrent_weights_only() {
        recurrent_weights_only_on(&test_device(), false);
    }

    #[cfg(feature = "flex")]
    #[test]
    fn recurrent_weights_only_flex() {
        recurrent_weights_only_on(&burn::tensor::Device::flex(), true);
    }
}
