//! A linear layer whose products run on AMX tiles in bf16, forward and backward (mixed-precision
//! training, see [`autocast`](super::autocast)).
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
use burn::tensor::module::linear;
use burn::tensor::{Tensor, TensorData};

use super::amx::{self, AmxWeight};
use super::fused_lstm::{has_fused_kernel, with_f32};

/// Backend extension: `x W^T + b` with bf16 products on AMX tiles.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray")
)]
pub trait Bf16LinearBackend: Backend {
    /// See [`bf16_linear`].
    fn bf16_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

#[cfg(feature = "flex")]
impl Bf16LinearBackend for burn::backend::Flex {
    fn bf16_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        untracked::<Self>(x, weight, bias)
    }
}

#[cfg(feature = "ndarray")]
impl Bf16LinearBackend for burn::backend::NdArray {
    fn bf16_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        untracked::<Self>(x, weight, bias)
    }
}

fn from_f32<B: Backend>(v: Vec<f32>, shape: [usize; 2], device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(v, shape), device)
}

/// The sizes `(rows, d_in, d_out)` of a product.
fn sizes<B: Backend>(x: &FloatTensor<B>, weight: &FloatTensor<B>) -> (usize, usize, usize) {
    let (x, w) = (x.shape(), weight.shape());
    (x[0], x[1], w[0])
}

/// `x [n, d_in] W^T + b` on the host: `w` is `[d_out, d_in]`, the result `[n, d_out]`.
///
/// # Panics
///
/// If AMX is not [available](amx::available) or a size does not match.
pub fn forward_host(x: &[f32], n: usize, w: &[f32], d_out: usize, bias: &[f32]) -> Vec<f32> {
    assert!(amx::available(), "bf16_linear needs AMX");
    assert_eq!(bias.len(), d_out, "bf16_linear: bias size");
    let d_in = w.len() / d_out.max(1);
    assert_eq!(x.len(), n * d_in, "bf16_linear: input size");
    let mut out: Vec<f32> = Vec::with_capacity(n * d_out);
    for _ in 0..n {
        out.extend_from_slice(bias);
    }
    if n > 0 {
        let packed = AmxWeight::new(w, d_out, d_in);
        // SAFETY: `x` holds `n` rows of `d_in`, `out` `n` rows of `d_out`; AMX is available.
        unsafe { packed.apply(n, x.as_ptr(), d_in, out.as_mut_ptr(), d_out) };
    }
    out
}

/// [`forward_host`] on the tensors' values, borrowed where the backend allows.
fn forward_tensors<B: Backend>(
    x: &FloatTensor<B>,
    weight: &FloatTensor<B>,
    bias: &FloatTensor<B>,
) -> FloatTensor<B> {
    let (n, _, d_out) = sizes::<B>(x, weight);
    let out = with_f32::<B, _>(x, |x| {
        with_f32::<B, _>(weight, |w| {
            with_f32::<B, _>(bias, |b| forward_host(x, n, w, d_out, b))
        })
    });
    from_f32::<B>(out, [n, d_out], &x.device())
}

fn untracked<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: FloatTensor<B>,
) -> FloatTensor<B> {
    forward_tensors::<B>(&x, &weight, &bias)
}

/// What the forward keeps: the input and the weight (the tensors themselves: a CPU backend's
/// tensor shares its buffer, so nothing is copied), and the sizes.
#[derive(Debug)]
struct Saved<B: Backend> {
    x: FloatTensor<B>,
    w: FloatTensor<B>,
    n: usize,
    d_in: usize,
    d_out: usize,
}

#[derive(Debug)]
struct Bf16LinearBackward;

impl<B: Backend> Backward<B, 3> for Bf16LinearBackward {
    type State = Arc<Saved<B>>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let device = grad.device();
        let [p_x, p_w, p_b] = ops.parents;
        let Saved {
            x,
            w,
            n,
            d_in,
            d_out,
        } = &*ops.state;
        let (n, d_in, d_out) = (*n, *d_in, *d_out);
        with_f32::<B, _>(&grad, |dy| {
            if let Some(node) = p_x {
                // dx [n, d_in] = dy [n, d_out] W [d_out, d_in]: W read as (W^T)^T.
                let mut dx = vec![0.0f32; n * d_in];
                let w_t = with_f32::<B, _>(w, |w| AmxWeight::strided(w, d_in, d_out, 1, d_in));
                // SAFETY: dy holds n rows of d_out, dx n rows of d_in; AMX was available
                // forward.
                unsafe { w_t.apply(n, dy.as_ptr(), d_out, dx.as_mut_ptr(), d_in) };
                grads.register::<B>(node.id, from_f32::<B>(dx, [n, d_in], &device));
            }
            if let Some(node) = p_w {
                // dW [d_out, d_in] = dy^T [d_out, n] x [n, d_in], both read transposed.
                let mut dw = vec![0.0f32; d_out * d_in];
                let x_t = with_f32::<B, _>(x, |x| AmxWeight::strided(x, d_in, n, 1, d_in));
                // SAFETY: dy is `[n, d_out]`, so `(ptr, 1, d_out)` addresses its transpose.
                unsafe { x_t.apply_strided(d_out, (dy.as_ptr(), 1, d_out), dw.as_mut_ptr(), d_in) };
                grads.register::<B>(node.id, from_f32::<B>(dw, [d_out, d_in], &device));
            }
            if let Some(node) = p_b {
                let mut db = vec![0.0f32; d_out];
                for row in dy.chunks(d_out) {
                    for (d, g) in db.iter_mut().zip(row) {
                        *d += g;
                    }
                }
                let db = B::float_from_data(TensorData::new(db, [d_out]), &device);
                grads.register::<B>(node.id, db);
            }
        });
    }
}

impl<B: Backend, C: CheckpointStrategy> Bf16LinearBackend for Autodiff<B, C> {
    fn bf16_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), weight.node(), bias.node()];
        let (x, weight, bias) = (
            x.into_primitive(),
            weight.into_primitive(),
            bias.into_primitive(),
        );
        match Bf16LinearBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (n, d_in, d_out) = sizes::<B>(&x, &weight);
                let out = forward_tensors::<B>(&x, &weight, &bias);
                let saved = Saved {
                    x,
                    w: weight,
                    n,
                    d_in,
                    d_out,
                };
                prep.finish(Arc::new(saved), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(untracked::<B>(x, weight, bias)),
        }
    }
}

/// Whether [`bf16_linear`] multiplies on AMX tiles for tensors on `device` (a CPU backend with
/// the extension, on a CPU with AMX).
pub fn runs_on_tiles(device: &burn::tensor::Device) -> bool {
    has_fused_kernel(device) && amx::available()
}

/// `x W^T + b` with bf16 products on AMX tiles (operands rounded to bf16, sums in `f32`, in the
/// forward and in both backward products), where [`runs_on_tiles`]; elsewhere burn's `f32`
/// [`linear`].
///
/// # Shapes
///
/// - x: `[n, d_in]`
/// - weight: `[d_out, d_in]` (PyTorch's layout)
/// - bias: `[d_out]`
/// - output: `[n, d_out]`
///
/// # Panics
///
/// If the shapes do not fit together.
pub fn bf16_linear(x: Tensor<2>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<2> {
    let ([_, d_in], [d_out, w_in], [b_out]) = (x.dims(), weight.dims(), bias.dims());
    assert!(
        d_in == w_in && d_out == b_out && d_out > 0 && d_in > 0,
        "bf16_linear: x {:?}, weight {:?}, bias {:?} do not fit",
        x.dims(),
        weight.dims(),
        bias.dims()
    );
    if !runs_on_tiles(&x.device()) {
        return linear(x, weight.transpose(), Some(bias));
    }
    Tensor::from_dispatch(<Dispatch as Bf16LinearBackend>::bf16_linear(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, to_vec, values};
    use burn::tensor::bf16;

    /// Rounded to bf16 values (still `f32`).
    fn rounded(v: Vec<f32>) -> Vec<f32> {
        v.into_iter().map(|x| bf16::from_f32(x).to_f32()).collect()
    }

    /// Forward and the three gradients equal burn's `f32` linear layer on operands that are
    /// bf16 values already (so the tiles round nothing), up to summation order; and on other
    /// operands the tiles do round.
    fn matches_burn_on(device: &burn::tensor::Device) {
        let ad = device.clone().autodiff();
        let (n, d_in, d_out) = (45, 70, 38);
        let x = rounded(values(n * d_in, 1));
        let w = rounded(values(d_out * d_in, 2));
        let b = values(d_out, 3);
        let g = rounded(values(n * d_out, 4));
        let run = |tiles: bool| {
            let t2 = |v: &[f32], s: [usize; 2]| {
                Tensor::<2>::from_data(TensorData::new(v.to_vec(), s), &ad).require_grad()
            };
            let (xt, wt) = (t2(&x, [n, d_in]), t2(&w, [d_out, d_in]));
            let bt =
                Tensor::<1>::from_data(TensorData::new(b.clone(), [d_out]), &ad).require_grad();
            let y = if tiles {
                bf16_linear(xt.clone(), wt.clone(), bt.clone())
            } else {
                linear(xt.clone(), wt.clone().transpose(), Some(bt.clone()))
            };
            let gt = Tensor::<2>::from_data(TensorData::new(g.clone(), [n, d_out]), &ad);
            let grads = (y.clone() * gt).sum().backward();
            let grad = |t: &Tensor<2>| to_vec(t.grad(&grads).unwrap());
            let (dx, dw) = (grad(&xt), grad(&wt));
            (to_vec(y), dx, dw, to_vec(bt.grad(&grads).unwrap()))
        };
        let (got, want) = (run(true), run(false));
        assert_close(&got.0, &want.0, 1e-5, "forward");
        assert_close(&got.1, &want.1, 1e-5, "dx");
        assert_close(&got.2, &want.2, 1e-5, "dw");
        assert_close(&got.3, &want.3, 1e-5, "db");
        if runs_on_tiles(device) {
            let x = Tensor::<2>::from_data(TensorData::new(values(n * d_in, 5), [n, d_in]), device);
            let w = Tensor::<2>::from_data(TensorData::new(w.clone(), [d_out, d_in]), device);
            let b = Tensor::<1>::from_data(TensorData::new(b.clone(), [d_out]), device);
            let exact = to_vec(linear(x.clone(), w.clone().transpose(), Some(b.clone())));
            let tiles = to_vec(bf16_linear(x, w, b));
            assert!(tiles != exact, "the tiles round the input");
            assert_close(&tiles, &exact, 2e-2, "within bf16 rounding");
        }
    }

    #[test]
    fn matches_burn() {
        matches_burn_on(&crate::test_util::test_device());
    }

    #[cfg(feature = "flex")]
    #[test]
    fn matches_burn_flex() {
        matches_burn_on(&burn::tensor::Device::flex());
    }
}
