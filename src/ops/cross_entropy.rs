//! Softmax cross-entropy as one burn operation with a hand-written backward (a backend
//! extension for the CPU backends).
//!
//! A language model's loss runs over `[batch * seq_len, vocab]` logits: 67 M values for the
//! paper's model at batch 32 (vocab 30,000). As tensor operations, `log_softmax` + `gather` +
//! `mean` and their autodiff backward make about a dozen passes over that matrix, each with a
//! new buffer, and burn's `exp` is a scalar call per element. Here the forward is one parallel
//! pass per row (max, then the sum of vectorised exponentials) that keeps only each row's
//! log-sum-exp, and the backward is one pass that overwrites the saved logits with
//! `(softmax - onehot) * grad / rows`. On other backends (CUDA) [`softmax_cross_entropy`] composes
//! tensor operations.
// burn 0.22 deprecates its NdArray backend, one of this extension's targets (the macro's generated
// code names it too, so the allowance must cover the whole file).
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Int, Tensor, TensorData, read_sync};
use rayon::prelude::*;

use super::fused_lstm::has_fused_kernel;
use super::simd::{exp_fast, multiversion};

/// Backend extension: the mean softmax cross-entropy of rows of logits.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray")
)]
pub trait CrossEntropyBackend: Backend {
    /// See [`softmax_cross_entropy`]; `targets` holds one class per row.
    fn softmax_cross_entropy(logits: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self>;
}

#[cfg(feature = "flex")]
impl CrossEntropyBackend for burn::backend::Flex {
    fn softmax_cross_entropy(logits: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self> {
        let device = logits.device();
        let (loss, _, _) = forward_host::<Self>(logits, &targets);
        scalar::<Self>(loss, &device)
    }
}

#[cfg(feature = "ndarray")]
impl CrossEntropyBackend for burn::backend::NdArray {
    fn softmax_cross_entropy(logits: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self> {
        let device = logits.device();
        let (loss, _, _) = forward_host::<Self>(logits, &targets);
        scalar::<Self>(loss, &device)
    }
}

fn scalar<B: Backend>(value: f32, device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(vec![value], vec![1]), device)
}

/// What the backward needs: the logits (overwritten by their gradient), each row's
/// log-sum-exp and the targets.
#[derive(Clone, Debug)]
struct Saved {
    logits: Vec<f32>,
    lse: Vec<f32>,
    targets: Vec<u32>,
    shape: [usize; 2],
}

/// Runs the forward on the host; returns the mean loss, the logits and each row's log-sum-exp.
fn forward_host<B: Backend>(logits: FloatTensor<B>, targets: &[u32]) -> (f32, Vec<f32>, Vec<f32>) {
    let shape = logits.shape();
    let cols = shape[1];
    let values = read_sync(B::float_into_data(logits))
        .expect("reading a CPU tensor cannot fail")
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32");
    let (loss, lse) = forward(&values, targets, cols);
    (loss, values, lse)
}

/// The backward step registered in the autodiff graph.
#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: Backend> Backward<B, 1> for CrossEntropyBackward {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<B>(&ops.node);
        let device = grad_out.device();
        let [parent] = ops.parents;
        let Some(node) = parent else { return };
        let g = read_sync(B::float_into_data(grad_out))
            .expect("reading a CPU tensor cannot fail")
            .try_into_vec_as::<f32>()
            .expect("a float tensor converts to f32")[0];
        // The graph holds the only reference once the forward has returned.
        let Saved {
            mut logits,
            lse,
            targets,
            shape,
        } = Arc::try_unwrap(ops.state).unwrap_or_else(|shared| (*shared).clone());
        backward(&mut logits, &lse, &targets, shape[1], g);
        let grad = B::float_from_data(TensorData::new(logits, shape.to_vec()), &device);
        grads.register::<B>(node.id, grad);
    }
}

impl<B: Backend, C: CheckpointStrategy> CrossEntropyBackend for Autodiff<B, C> {
    fn softmax_cross_entropy(logits: FloatTensor<Self>, targets: Vec<u32>) -> FloatTensor<Self> {
        let node = logits.node();
        let logits = logits.into_primitive();
        let device = logits.device();
        let shape = logits.shape();
        match CrossEntropyBackward
            .prepare::<C>([node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, values, lse) = forward_host::<B>(logits, &targets);
                let saved = Saved {
                    logits: values,
                    lse,
                    targets,
                    shape: [shape[0], shape[1]],
                };
                prep.finish(Arc::new(saved), scalar::<B>(loss, &device))
            }
            OpsKind::UnTracked(prep) => {
                let (loss, _, _) = forward_host::<B>(logits, &targets);
                prep.finish(scalar::<B>(loss, &device))
            }
        }
    }
}

/// Mean softmax cross-entropy between the rows of `logits` and integer `targets` (PyTorch
/// `F.cross_entropy`), as one operation with a hand-written backward on the CPU backends and as
/// tensor operations elsewhere.
///
/// A target outside `0..classes` (or a non-finite logit) makes the loss NaN, which the learners
/// report as an error, rather than reading out of bounds.
///
/// # Shapes
///
/// - logits: `[n, classes]`
/// - targets: `[n]`
/// - output: `[1]`
pub fn softmax_cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, classes] = logits.dims();
    assert_eq!(
        targets.dims(),
        [n],
        "softmax_cross_entropy: one target per row"
    );
    if n == 0 || classes == 0 || !has_fused_kernel(&logits.device()) {
        return cross_entropy_tensor_ops(logits, targets);
    }
    let targets: Vec<u32> = targets
        .into_data()
        .convert::<i64>()
        .into_vec::<i64>()
        .expect("converted to i64")
        .into_iter()
        .map(|t| u32::try_from(t).unwrap_or(u32::MAX))
        .collect();
    Tensor::from_dispatch(<Dispatch as CrossEntropyBackend>::softmax_cross_entropy(
        logits.into_dispatch(),
        targets,
    ))
}

/// The same loss as tensor operations (`log_softmax`, `gather`, `mean`), which burn
/// differentiates: the fallback for other backends and the reference of the tests.
pub fn cross_entropy_tensor_ops(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [n, _] = logits.dims();
    let logp = log_softmax(logits, 1);
    let picked = logp.gather(1, targets.reshape([n, 1]));
    picked.mean().neg()
}

/// The forward on host slices: the mean over rows of `lse(row) - row[target]` (accumulated in
/// `f64`) and each row's log-sum-exp.
pub fn forward(logits: &[f32], targets: &[u32], cols: usize) -> (f32, Vec<f32>) {
    let rows = targets.len();
    debug_assert_eq!(logits.len(), rows * cols);
    let per_row: Vec<(f32, f64)> = logits
        .par_chunks(cols)
        .zip(targets.par_iter())
        .map(|(row, &t)| {
            let lse = row_log_sum_exp(row);
            let picked = row.get(t as usize).copied().unwrap_or(f32::NAN);
            (lse, f64::from(lse) - f64::from(picked))
        })
        .collect();
    let total: f64 = per_row.iter().map(|r| r.1).sum();
    let lse = per_row.into_iter().map(|r| r.0).collect();
    ((total / rows as f64) as f32, lse)
}

/// The backward on host slices: overwrites `logits` with the gradient of the mean loss times
/// `grad`: `(softmax(row) - onehot(target)) * grad / rows`.
pub fn backward(logits: &mut [f32], lse: &[f32], targets: &[u32], cols: usize, grad: f32) {
    let scale = grad / targets.len() as f32;
    logits
        .par_chunks_mut(cols)
        .zip(lse.par_iter().zip(targets.par_iter()))
        .for_each(|(row, (&lse, &t))| {
            row_softmax_scaled(row, lse, scale);
            if let Some(x) = row.get_mut(t as usize) {
                *x -= scale;
            }
        });
}

/// Lanes of the vectorised reductions (one AVX-512 register of `f32`).
const LANES: usize = 16;

/// `max + ln(sum(exp(row - max)))`, with lane-wise partial maxima and sums so that the loops
/// vectorise.
#[inline(always)]
fn row_log_sum_exp_impl(row: &[f32]) -> f32 {
    let chunks = row.chunks_exact(LANES);
    let rest = chunks.remainder();
    let mut lane_max = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for k in 0..LANES {
            lane_max[k] = lane_max[k].max(c[k]);
        }
    }
    let max = lane_max
        .iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    // A NaN logit must poison the result (`max` skips NaN).
    let mut lane_sum = [0f32; LANES];
    for c in row.chunks_exact(LANES) {
        for k in 0..LANES {
            lane_sum[k] += exp_fast(c[k] - max);
        }
    }
    let sum: f32 =
        lane_sum.iter().sum::<f32>() + rest.iter().map(|&x| exp_fast(x - max)).sum::<f32>();
    max + sum.ln()
}

/// `row = exp(row - lse) * scale`.
#[inline(always)]
fn row_softmax_scaled_impl(row: &mut [f32], lse: f32, scale: f32) {
    for x in row.iter_mut() {
        *x = exp_fast(*x - lse) * scale;
    }
}

multiversion!(row_log_sum_exp, row_log_sum_exp_impl, (row: &[f32]) -> f32);

multiversion!(
    row_softmax_scaled,
    row_softmax_scaled_impl,
    (row: &mut [f32], lse: f32, scale: f32)
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, test_device, to_vec};
    use burn::tensor::Distribution;

    #[test]
    fn forward_matches_a_direct_computation() {
        let logits = [1.0f32, 2.0, 3.0, 1.0, 1.0, 1.0];
        let (loss, lse) = forward(&logits, &[2, 0], 3);
        let z = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        let want = ((z - 3.0) + 3f64.ln()) / 2.0;
        assert!((f64::from(loss) - want).abs() < 1e-6, "{loss} vs {want}");
        assert!((f64::from(lse[0]) - z).abs() < 1e-6);
    }

    #[test]
    fn bad_targets_and_nan_logits_give_nan() {
        let (loss, _) = forward(&[0.0, 1.0], &[2], 2);
        assert!(loss.is_nan());
        let (loss, _) = forward(&[f32::NAN, 1.0], &[1], 2);
        assert!(loss.is_nan());
        // Large logits do not overflow.
        let (loss, _) = forward(&[1e4, 0.0], &[0], 2);
        assert!(loss.abs() < 1e-6, "{loss}");
    }

    /// The fused operation against `log_softmax` + `gather` + `mean` (burn's autodiff), forward
    /// and gradient, on a matrix wider than the vector lanes with a ragged remainder.
    #[test]
    fn fused_matches_tensor_ops_forward_and_gradient() {
        let device = test_device().autodiff();
        let (n, v) = (37, 1003);
        let logits = Tensor::<2>::random([n, v], Distribution::Normal(0.0, 3.0), &device);
        let targets = Tensor::<1, Int>::from_data(
            TensorData::new((0..n as i64).map(|i| (i * 131) % v as i64).collect(), [n]),
            &device,
        );
        let run = |fused: bool| {
            let x = logits.clone().detach().require_grad();
            let loss = if fused {
                softmax_cross_entropy(x.clone(), targets.clone())
            } else {
                cross_entropy_tensor_ops(x.clone(), targets.clone())
            };
            let value = to_vec(loss.clone());
            let grads = loss.mul_scalar(2.5).backward();
            let g = to_vec(x.grad(&grads).expect("logits gradient"));
            (value, g)
        };
        let (l_fused, g_fused) = run(true);
        let (l_ref, g_ref) = run(false);
        assert_close(&l_fused, &l_ref, 1e-5, "loss");
        assert_close(&g_fused, &g_ref, 1e-7, "gradient");
    }
}
