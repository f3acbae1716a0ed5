//! The dropouts of AWD-LSTM (Merity et al. 2017), as fastai builds them.
//!
//! * [`EmbeddingDropout`]: drops whole rows of the embedding matrix (word types).
//! * [`RnnDropout`]: locked (variational) dropout, one mask per sequence shared over time.
//! * [`weight_drop`]: DropConnect on a recurrent weight matrix, one mask per forward call.
//!
//! Every mask is Bernoulli(1 - p) scaled by 1 / (1 - p) and is drawn afresh at each forward call
//! in training mode. In eval mode every dropout is the identity (spec section 1.5).
//!
//! A module is in training mode when its tensors live on an autodiff device *and* its training
//! flag is on, the rule burn's own `Dropout` follows: [`Module::valid`] switches every flag off.

use burn::module::{Flag, Module, Param};
use burn::tensor::module::embedding;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

/// True when a layer with this flag should behave as in training on tensors of this device.
pub(crate) fn is_training(flag: &Param<Flag>, device: &Device) -> bool {
    flag.is_enabled() && device.is_autodiff()
}

/// Draws an inverted-dropout mask: each element is 0 with probability `p`, else `1 / (1 - p)`.
///
/// # Shapes
///
/// - output: `shape`
///
/// On the CPU backends the mask is drawn on the host by [`crate::ops::mask::bernoulli_mask`]
/// (counter-based, parallel, ~50x faster than burn's per-element generator) from a seed taken
/// from the backend's generator, so `burn`'s `seed` still makes runs reproducible. Other
/// backends (CUDA) draw it on the device.
pub fn dropout_mask<const D: usize>(shape: [usize; D], p: f64, device: &Device) -> Tensor<D> {
    let keep = 1.0 - p;
    if crate::ops::fused_lstm::has_fused_kernel(device) {
        // 2 x 24 random bits from the backend's generator seed the host generator.
        let draw = Tensor::<1>::random([2], Distribution::Default, device)
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        let seed = draw.iter().fold(0u64, |acc, &u| {
            (acc << 24) | ((u as f64 * (1u64 << 24) as f64) as u64)
        });
        let n = shape.iter().product();
        let mask = crate::ops::mask::bernoulli_mask(n, keep, seed);
        return Tensor::from_data(TensorData::new(mask, shape), device);
    }
    Tensor::<D>::random(shape, Distribution::Bernoulli(keep), device).mul_scalar(1.0 / keep)
}

/// Checks that a dropout probability lies in `[0, 1)`.
pub(crate) fn check_prob(name: &str, p: f64) {
    assert!(
        p.is_finite() && (0.0..1.0).contains(&p),
        "{name} must be a probability in [0, 1), got {p}"
    );
}

/// Locked ("variational") dropout over a batch-first sequence (fastai `RNNDropout`).
///
/// One mask of shape `[batch, 1, features]` is drawn per forward call, so the same units are
/// dropped at every time step of a sequence.
#[derive(Module, Debug)]
pub struct RnnDropout {
    /// Probability of dropping a unit.
    pub prob: f64,
    /// Whether the layer behaves as in training (see the module docs).
    pub training: Param<Flag>,
}

impl RnnDropout {
    /// A locked dropout with probability `prob` (panics unless `0 <= prob < 1`).
    pub fn new(prob: f64) -> Self {
        check_prob("RnnDropout probability", prob);
        Self {
            prob,
            training: Param::from_bool(true),
        }
    }

    /// Applies the dropout.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, seq_len, features]`
    /// - output: `[batch, seq_len, features]`
    pub fn forward(&self, input: Tensor<3>) -> Tensor<3> {
        let device = input.device();
        if self.prob == 0.0 || !is_training(&self.training, &device) {
            return input;
        }
        let [batch, _, features] = input.dims();
        input * dropout_mask([batch, 1, features], self.prob, &device)
    }
}

/// Embedding lookup with dropout on whole rows of the matrix (fastai `EmbeddingDropout`).
///
/// A dropped word type becomes the zero vector at every one of its occurrences in the batch; the
/// kept rows are scaled by `1 / (1 - p)`. The padding row receives no gradient from the lookup,
/// as with PyTorch's `padding_idx` (it is still trained through a tied decoder).
#[derive(Module, Debug)]
pub struct EmbeddingDropout {
    /// Probability of dropping a row (word type).
    pub prob: f64,
    /// Token id whose row gets no gradient from the lookup (fastai: 1, `xxpad`).
    pub pad_idx: Option<usize>,
    /// Whether the layer behaves as in training (see the module docs).
    pub training: Param<Flag>,
}

impl EmbeddingDropout {
    /// An embedding dropout with probability `prob` (panics unless `0 <= prob < 1`).
    pub fn new(prob: f64, pad_idx: Option<usize>) -> Self {
        check_prob("EmbeddingDropout probability", prob);
        Self {
            prob,
            pad_idx,
            training: Param::from_bool(true),
        }
    }

    /// Looks up `ids` in `weight` after dropping rows of `weight`.
    ///
    /// # Shapes
    ///
    /// - weight: `[vocab, emb]`
    /// - ids: `[batch, seq_len]`
    /// - output: `[batch, seq_len, emb]`
    pub fn forward(&self, weight: Tensor<2>, ids: Tensor<2, Int>) -> Tensor<3> {
        let device = weight.device();
        if !is_training(&self.training, &device) {
            return embedding(weight, ids);
        }
        let weight = if self.prob > 0.0 {
            let [vocab, _] = weight.dims();
            weight * dropout_mask([vocab, 1], self.prob, &device)
        } else {
            weight
        };
        match self.pad_idx {
            // The lookup of the padding row is taken from a detached copy: no gradient.
            Some(pad) => {
                let out = embedding(weight.clone(), ids.clone());
                let pad_mask = ids.clone().equal_elem(pad as i64).unsqueeze_dim::<3>(2);
                let [b, t, e] = out.dims();
                let frozen = embedding(weight.detach(), ids);
                out.mask_where(pad_mask.expand([b, t, e]), frozen)
            }
            None => embedding(weight, ids),
        }
    }
}

/// DropConnect on a weight matrix (fastai `WeightDropout`): in training every element is dropped
/// with probability `p` and the kept ones scaled by `1 / (1 - p)`; in eval the raw weight is used
/// unscaled. Gradients reach the raw weight through the mask.
///
/// # Shapes
///
/// - raw: `[rows, cols]`
/// - output: `[rows, cols]`
pub fn weight_drop(raw: Tensor<2>, p: f64, training: bool) -> Tensor<2> {
    if !training || p == 0.0 {
        return raw;
    }
    let device = raw.device();
    let dims = raw.dims();
    raw * dropout_mask(dims, p, &device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{test_device, to_vec};

    #[test]
    fn eval_mode_is_identity() {
        let device = test_device();
        let x = Tensor::<3>::random([4, 5, 6], Distribution::Default, &device);
        let d = RnnDropout::new(0.5);
        assert_eq!(to_vec(d.forward(x.clone())), to_vec(x.clone()));
        let w = Tensor::<2>::random([10, 3], Distribution::Default, &device);
        assert_eq!(
            to_vec(weight_drop(w.clone(), 0.5, false)),
            to_vec(w.clone())
        );
        let ids = Tensor::<2, Int>::from_data([[1, 2, 3], [4, 1, 0]], &device);
        let e = EmbeddingDropout::new(0.5, Some(1));
        assert_eq!(
            to_vec(e.forward(w.clone(), ids.clone())),
            to_vec(embedding(w, ids))
        );
    }

    #[test]
    fn valid_turns_training_off() {
        let device = test_device().autodiff();
        let d = RnnDropout::new(0.5).valid();
        let x = Tensor::<3>::ones([2, 3, 4], &device);
        assert_eq!(to_vec(d.forward(x.clone())), to_vec(x));
    }

    #[test]
    fn locked_mask_is_shared_over_time() {
        let device = test_device().autodiff();
        let d = RnnDropout::new(0.5);
        let (b, t, f) = (8, 6, 32);
        let y = to_vec(d.forward(Tensor::<3>::ones([b, t, f], &device)));
        let mut dropped = 0;
        for bi in 0..b {
            for fi in 0..f {
                let first = y[bi * t * f + fi];
                assert!(first == 0.0 || (first - 2.0).abs() < 1e-6);
                dropped += usize::from(first == 0.0);
                for ti in 1..t {
                    assert_eq!(y[(bi * t + ti) * f + fi], first, "mask differs over time");
                }
            }
        }
        assert!(dropped > 0 && dropped < b * f, "degenerate mask");
    }

    #[test]
    fn embedding_dropout_drops_whole_rows() {
        let device = test_device().autodiff();
        let e = EmbeddingDropout::new(0.5, None);
        let w = Tensor::<2>::ones([6, 4], &device);
        // Each word occurs twice: both occurrences must agree.
        let ids = Tensor::<2, Int>::from_data([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]], &device);
        let y = to_vec(e.forward(w, ids));
        let row = |b: usize, t: usize| y[(b * 6 + t) * 4..(b * 6 + t + 1) * 4].to_vec();
        for t in 0..6 {
            let r = row(0, t);
            assert!(r.iter().all(|v| *v == r[0]), "a row is dropped as a whole");
            assert!(r[0] == 0.0 || (r[0] - 2.0).abs() < 1e-6);
            assert_eq!(r, row(1, 5 - t), "same word, same mask");
        }
    }

    /// Mean keep rate within 3 sigma of 1 - p over many draws.
    #[test]
    fn mask_statistics() {
        let device = test_device();
        for p in [0.1, 0.5, 0.8] {
            let n = 200_000usize;
            let m = to_vec(dropout_mask([n], p, &device));
            let kept = m.iter().filter(|v| **v != 0.0).count() as f64;
            let expect = (1.0 - p) * n as f64;
            let sigma = (n as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (kept - expect).abs() < 3.0 * sigma,
                "p={p}: kept {kept}, expected {expect} +- {sigma}"
            );
            let scale = 1.0 / (1.0 - p);
            assert!(
                m.iter()
                    .all(|v| *v == 0.0 || (f64::from(*v) - scale).abs() < 1e-5)
            );
        }
    }

    #[test]
    fn weight_drop_gradient_reaches_raw_weight() {
        let device = test_device().autodiff();
        let raw = Tensor::<2>::ones([20, 10], &device).require_grad();
        let y = weight_drop(raw.clone(), 0.5, true);
        let mask = to_vec(y.clone());
        let grads = y.sum().backward();
        let g = to_vec(raw.grad(&grads).expect("raw weight has a gradient"));
        // d(sum(raw * mask)) / d raw = mask.
        assert_eq!(g, mask);
        assert!(g.contains(&0.0) && g.iter().any(|v| *v != 0.0));
    }

    #[test]
    fn embedding_pad_row_gets_no_lookup_gradient() {
        let device = test_device().autodiff();
        let w = Tensor::<2>::ones([4, 3], &device).require_grad();
        let e = EmbeddingDropout::new(0.0, Some(1));
        let ids = Tensor::<2, Int>::from_data([[1, 2, 1]], &device);
        let grads = e.forward(w.clone(), ids).sum().backward();
        let g = to_vec(w.grad(&grads).unwrap());
        assert_eq!(&g[3..6], &[0.0, 0.0, 0.0], "pad row");
        assert_eq!(&g[6..9], &[1.0, 1.0, 1.0], "row 2");
    }
}
