//! Losses: flattened cross-entropy and AWD-LSTM's activation regularisers (AR / TAR).

use burn::tensor::{Int, Tensor};

/// Mean cross-entropy between logits and integer targets (PyTorch `F.cross_entropy`): one fused
/// operation on the CPU backends, tensor operations elsewhere (see
/// [`softmax_cross_entropy`](crate::ops::cross_entropy::softmax_cross_entropy)).
///
/// # Shapes
///
/// - logits: `[n, classes]`
/// - targets: `[n]`
/// - output: `[1]`
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    crate::ops::cross_entropy::softmax_cross_entropy(logits, targets)
}

/// Cross-entropy over every position of a language model's output (fastai `CrossEntropyLossFlat`).
///
/// # Shapes
///
/// - logits: `[batch, seq_len, vocab]`
/// - targets: `[batch, seq_len]`
/// - output: `[1]`
pub fn lm_cross_entropy(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<1> {
    let [b, t, v] = logits.dims();
    cross_entropy(logits.reshape([b * t, v]), targets.reshape([b * t]))
}

/// Activation regularisation (Merity et al. 2017): `alpha * mean(dropped^2)`, on the last
/// layer's output after the output dropout (fastai v2 `RNNRegularizer`, alpha 2).
pub fn activation_reg(dropped: Tensor<3>, alpha: f64) -> Tensor<1> {
    dropped.square().mean().mul_scalar(alpha)
}

/// Temporal activation regularisation: `beta * mean((h[:, t+1] - h[:, t])^2)` on the raw last
/// layer output (fastai v2 `RNNRegularizer`, beta 1). Zero for a single time step.
///
/// fastai skips TAR when `len(h) <= 1` with `len` the *batch* size (a quirk, spec 4.3); here the
/// test is on the sequence length, where the difference is defined.
pub fn temporal_activation_reg(raw: Tensor<3>, beta: f64) -> Tensor<1> {
    let [_, t, _] = raw.dims();
    if t < 2 {
        return Tensor::zeros([1], &raw.device());
    }
    let next = raw.clone().narrow(1, 1, t - 1);
    let prev = raw.narrow(1, 0, t - 1);
    (next - prev).square().mean().mul_scalar(beta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, test_device, to_vec};

    #[test]
    fn cross_entropy_by_hand() {
        let device = test_device();
        let logits = Tensor::<2>::from_data([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]], &device);
        let t = Tensor::<1, Int>::from_data([2, 0], &device);
        let l = to_vec(cross_entropy(logits, t));
        let z: f32 = (1f32.exp() + 2f32.exp() + 3f32.exp()).ln();
        let want = ((z - 3.0) + 3f32.ln()) / 2.0;
        assert_close(&l, &[want], 1e-6, "ce");
    }

    #[test]
    fn tar_of_constant_sequence_is_zero() {
        let device = test_device();
        let raw = Tensor::<3>::ones([2, 5, 3], &device);
        assert_eq!(to_vec(temporal_activation_reg(raw, 1.0)), vec![0.0]);
        let one = Tensor::<3>::ones([2, 1, 3], &device);
        assert_eq!(to_vec(temporal_activation_reg(one, 1.0)), vec![0.0]);
    }
}
