//! bf16 or int8 recurrent weights for faster inference (at batch 1; bf16 also at larger batches on
//! CPUs with AMX).
//!
//! Classifying one long document is bound by memory bandwidth: every time step reads all of each
//! LSTM layer's recurrent weight `W_hh` (21 MB in `f32` for a 1152-unit layer). Stored as bf16 it
//! is half the bytes; the row-streaming kernel [`gemv`](crate::ops::gemv) reads it as bf16
//! directly, widening each weight to `f32` exactly and keeping products, sums, activations and
//! states in `f32` (`clas_infer_b1` on flex: 2.1 docs/s against 1.05 with `f32` weights).
//! [`int8_recurrent_weights`] goes to a quarter of the bytes (see there); the rest of this page
//! is about bf16.
//!
//! # Precision
//!
//! Only the weights are rounded: bf16 keeps 8 significant bits, so each weight moves by at most
//! 2^-9 (0.2 %) of its value. The errors of a dot product of 1152 such terms partly cancel; on
//! random weights the hidden states move by about 1e-3, and predicted labels change only for
//! documents whose top two classes are that close. Measure the accuracy on a test set before
//! relying on it (`ulmfit eval --bf16`).
//!
//! Nothing else changes at batches of at most
//! [`gemv::MAX_BATCH`](crate::ops::gemv::MAX_BATCH) documents: embeddings, input weights and the
//! classifier head stay `f32`.
//!
//! # Larger batches: AMX
//!
//! From 5 documents on, the recurrent product is bound by arithmetic, not by reading the weight.
//! On CPUs with Intel AMX (Xeon Sapphire Rapids and later) a bf16 recurrent weight then selects
//! bf16 tile products ([`amx`](crate::ops::amx)) for the recurrence and, from 512 rows (7
//! documents of 72 tokens), for each layer's input projection too: those round the hidden states
//! and the layers' inputs to bf16 as well, and sum in `f32` (`clas_infer_b32` on flex: about
//! 2.5x the `f32` speed; the README reports the accuracy). Without AMX (AMD, older Intel, other
//! systems), larger batches widen the weight back to `f32` once per layer (no gain).

//! For training in bf16 (mixed precision: products on AMX tiles, parameters and sums in `f32`)
//! see [`autocast`](crate::ops::autocast) instead: the functions here round the weights
//! themselves, for inference.
//!
//! # Backends
//!
//! On a device that stores bf16 tensors (flex, CUDA) the weight becomes a bf16 tensor; the
//! tensor-op recurrence (CUDA) casts it back to the activations' dtype. On one that does not
//! (ndarray) the weight stays `f32` but is rounded to bf16 values, so results are the same up to
//! summation order.

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::quantization::{QuantMode, QuantScheme, QuantStore, QuantValue, ScaleDtype};
use burn::tensor::{FloatDType, Tensor, TensorData, bf16};

/// Rounds (or casts) every LSTM recurrent weight (`LstmWeights::weight_hh`) in `module` to bf16,
/// for inference (see the [module docs](self)). Other parameters are left as they are.
pub fn bf16_recurrent_weights<M: Module>(module: M) -> M {
    module.map(&mut RecurrentWeights {
        in_weight_hh: 0,
        convert: to_bf16,
    })
}

/// Quantizes every LSTM recurrent weight (`LstmWeights::weight_hh`) in `module` to int8, for
/// inference: a quarter of the bytes of `f32`, half of bf16's (`clas_infer_b1` on flex, with
/// AVX512-VNNI: 2.55x PyTorch against 1.89x with bf16 and 1.19x with `f32`, medians of four
/// back-to-back pairs). Other parameters are left as they are.
///
/// Each row of `W_hh [4H, H]` is cut into blocks of [`int8_block`]`(H)` weights (192 for the
/// AWD-LSTM's 1152 units, 80 for 400) and each block gets its own scale, `max |w| / 127`; the
/// weights become the nearest of those 255 levels (burn's symmetric `Q8S` scheme, stored natively,
/// so any backend holds it). The LSTM kernel reads the int8 values and scales directly
/// ([`gemv_i8`](crate::ops::gemv_i8)); activations and states stay `f32`. With AVX512-VNNI the
/// product also rounds each step's hidden state to 16 bits (relative step 3e-5) and multiplies
/// in integers, exactly summed per block; that rounding is far below the weights'.
///
/// # Precision
///
/// A weight moves by at most half a level, `max |w| / 254` of its block: coarser than bf16 for
/// the block's small weights, finer for its largest. Measure the accuracy on a test set before
/// relying on it (`ulmfit eval --int8`; the README reports TREC-6 and IMDb).
///
/// Training through an int8 weight is not supported: a differentiated forward uses the
/// dequantized weight and no gradient reaches it.
pub fn int8_recurrent_weights<M: Module>(module: M) -> M {
    module.map(&mut RecurrentWeights {
        in_weight_hh: 0,
        convert: to_int8,
    })
}

/// The weights per int8 block for a row of `k` weights: the largest divisor of `k` that fits
/// burn's block sizes (at most 255), preferring multiples of 16 (one AVX-512 register).
pub fn int8_block(k: usize) -> usize {
    let divisors = || (1..=k.min(255)).rev().filter(move |b| k.is_multiple_of(*b));
    divisors()
        .find(|b| b % 16 == 0)
        .or_else(|| divisors().next())
        .unwrap_or(1)
}

/// The [`ModuleMapper`] behind [`bf16_recurrent_weights`] and [`int8_recurrent_weights`].
struct RecurrentWeights {
    /// Depth of `weight_hh` fields of `LstmWeights` entered (0 or 1).
    in_weight_hh: usize,
    /// What becomes of each recurrent weight.
    convert: fn(Tensor<2>) -> Tensor<2>,
}

const FIELD: &str = "weight_hh";
const CONTAINER: &str = "Struct:LstmWeights";

impl ModuleMapper for RecurrentWeights {
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
        match D {
            2 => {
                let convert = self.convert;
                param.map(|t| {
                    let dims = t.dims();
                    convert(t.reshape([dims[0], dims[1]])).reshape(dims)
                })
            }
            _ => param,
        }
    }
}

/// `t [rows, k]` quantized to int8 with one scale per block of [`int8_block`]`(k)` weights.
fn to_int8(t: Tensor<2>) -> Tensor<2> {
    let block = int8_block(t.dims()[1]);
    let scheme = QuantScheme::default()
        .with_value(QuantValue::Q8S)
        .with_mode(QuantMode::Symmetric)
        .with_store(QuantStore::Native)
        .per_block([1, block as u8], ScaleDtype::F32);
    t.quantize_dynamic(&scheme)
}

/// `t` as a bf16 tensor where the device stores them, else rounded to bf16 values in place.
fn to_bf16(t: Tensor<2>) -> Tensor<2> {
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

    /// Int8: each weight moves by at most half a level of its block, and the classifier with
    /// int8 weights gives the logits of the same classifier holding the dequantized weights in
    /// `f32` (so the kernel reads values and block scales in the right places), at batch 1 (the
    /// int8 kernel) and batch 6 (the weight widened for `gemm`).
    fn int8_weights_on(device: &burn::tensor::Device) {
        // 48 units: blocks of 48; 37: blocks of 37, off the 16-lane path.
        for hidden in [48, 37] {
            let config = TextClassifierConfig::new(
                AwdLstmConfig::classifier(30)
                    .with_emb_size(8)
                    .with_hidden_size(hidden)
                    .with_n_layers(2),
                3,
            );
            let model = config.init(device);
            let quantized = int8_recurrent_weights(model.clone());
            let mut dequantized = model.clone();
            for ((a, b), c) in (model.encoder.rnns.iter())
                .zip(&quantized.encoder.rnns)
                .zip(&mut dequantized.encoder.rnns)
            {
                let q = b.forward.weight_hh.val();
                assert!(matches!(q.dtype(), DType::QFloat(_)), "{:?}", q.dtype());
                let k = q.dims()[1];
                let block = int8_block(k);
                let deq = q.dequantize();
                let (w, r) = (to_vec(a.forward.weight_hh.val()), to_vec(deq.clone()));
                for (blk, (w, r)) in w.chunks(block).zip(r.chunks(block)).enumerate() {
                    let peak = w.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                    for (x, y) in w.iter().zip(r) {
                        assert!((x - y).abs() <= peak / 254.0 * 1.001 + 1e-7, "block {blk}");
                    }
                }
                c.forward.weight_hh = Param::from_tensor(deq);
            }
            for batch in [1usize, 6] {
                let ids: Vec<i64> = (0..batch * 9).map(|i| (i * 7 % 29 + 1) as i64).collect();
                let x = Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, 9]), device);
                let (p, q, d) = (
                    to_vec(model.forward(x.clone()).logits),
                    to_vec(quantized.forward(x.clone()).logits),
                    to_vec(dequantized.forward(x).logits),
                );
                crate::test_util::assert_close(&q, &d, 1e-5, "int8 against its dequantized f32");
                crate::test_util::assert_close(&q, &p, 2e-2, "int8 against the f32 model");
                assert!(q != p, "the weights were quantized");
            }
        }
    }

    #[test]
    fn int8_weights() {
        int8_weights_on(&test_device());
    }

    #[cfg(feature = "flex")]
    #[test]
    fn int8_weights_flex() {
        int8_weights_on(&burn::tensor::Device::flex());
    }

    #[test]
    fn int8_blocks() {
        assert_eq!(int8_block(1152), 192);
        assert_eq!(int8_block(400), 80);
        assert_eq!(int8_block(48), 48);
        assert_eq!(int8_block(37), 37);
        assert_eq!(int8_block(1009), 1);
        // 600 = 8 * 75: no multiple of 16 divides it.
        assert_eq!(int8_block(600), 200);
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
