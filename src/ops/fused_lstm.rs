//! The LSTM recurrence as one burn operation with a hand-written backward (a burn backend
//! extension).
//!
//! [`lstm_recurrence`] takes the input projection of a whole sequence (`x W_ih^T + b_ih + b_hh`),
//! the recurrent weight and the initial state, and returns one packed tensor `[batch, seq_len + 1,
//! hidden]`: the hidden state of every time step followed by the final cell state. On the CPU
//! backends (flex, ndarray, with or without autodiff) it runs [`lstm_kernel`];
//! under autodiff the kernel's own backward is registered as one graph node, so the autodiff graph
//! holds one node per layer and direction instead of several per time step. On any other backend
//! (CUDA) [`lstm_recurrence`] composes ordinary tensor operations, which burn differentiates.
// burn 0.22 deprecates its NdArray backend, one of this extension's targets (the macro's generated
// code names it too, so the allowance must cover the whole file).
#![allow(deprecated)]

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, Backend, Dispatch, DispatchDevice, TensorMetadata, backend_extension,
};
use burn::tensor::activation::sigmoid;
use burn::tensor::module::linear;
use burn::tensor::{DType, FloatDType, Tensor, TensorData, bf16, read_sync};

use burn::tensor::quantization::{QuantMode, QuantScheme, QuantStore, QuantValue, QuantizedBytes};

use super::autocast;
use super::bf16_linear::{self, bf16_linear};
use super::gemv_i8::I8Weight;
use super::lstm_kernel::{self, LstmSaved, LstmShape, RecurrentWeight};

/// Backend extension: the LSTM recurrence of one direction over a whole sequence.
#[backend_extension(
    Autodiff,
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray")
)]
pub trait LstmBackend: Backend {
    /// See [`lstm_recurrence`]; `reverse` runs time backwards; `bf16_tiles` (an
    /// [`autocast`] scope) runs the recurrence's products on AMX tiles in bf16: always when
    /// differentiated ([`lstm_kernel::forward`]), at batches above
    /// [`gemv::MAX_BATCH`](super::gemv::MAX_BATCH) otherwise
    /// ([`lstm_kernel::forward_inference`]).
    fn lstm_recurrence(
        xproj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
        bf16_tiles: bool,
    ) -> FloatTensor<Self>;
}

#[cfg(feature = "flex")]
impl LstmBackend for burn::backend::Flex {
    fn lstm_recurrence(
        xproj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
        bf16_tiles: bool,
    ) -> FloatTensor<Self> {
        // The kernel reads the weight where flex holds it (no copy of its 5-21 MB per call) when
        // it is contiguous, as the model's parameters are.
        let shape = lstm_shape::<Self>(&xproj, &w_hh);
        let lent = match w_hh.dtype() {
            DType::BF16 => w_hh.as_slice::<bf16>().map(RecurrentWeight::Bf16),
            DType::F32 => w_hh.as_slice::<f32>().map(RecurrentWeight::F32),
            _ => None,
        };
        match lent {
            Some(w) => run_inference_on::<Self>(shape, xproj, w, (h0, c0), (reverse, bf16_tiles)),
            None => run_inference::<Self>(xproj, w_hh, (h0, c0), (reverse, bf16_tiles)),
        }
    }
}

#[cfg(feature = "ndarray")]
impl LstmBackend for burn::backend::NdArray {
    fn lstm_recurrence(
        xproj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
        bf16_tiles: bool,
    ) -> FloatTensor<Self> {
        run_inference::<Self>(xproj, w_hh, (h0, c0), (reverse, bf16_tiles))
    }
}

/// The sizes of the recurrence, from the shapes of its inputs.
fn lstm_shape<B: Backend>(xproj: &FloatTensor<B>, w_hh: &FloatTensor<B>) -> LstmShape {
    let x = xproj.shape();
    let w = w_hh.shape();
    LstmShape {
        batch: x[0],
        seq_len: x[1],
        hidden: w[1],
    }
}

/// A tensor's values as `f32` (a copy for the CPU backends).
pub(super) fn to_f32<B: Backend>(t: FloatTensor<B>) -> Vec<f32> {
    let data = read_sync(B::float_into_data(t)).expect("reading a CPU tensor cannot fail");
    data.try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32")
}

/// Runs `f` on a tensor's values as `f32`: borrowed in place for a contiguous `f32` tensor of
/// the flex backend (no copy; weights are shared with their parameter, so moving their data out
/// would copy them), else through [`to_f32`] of a clone.
pub(super) fn with_f32<B: Backend, R>(t: &FloatTensor<B>, f: impl FnOnce(&[f32]) -> R) -> R {
    #[cfg(feature = "flex")]
    {
        let any: &dyn std::any::Any = t;
        if let Some(values) = any
            .downcast_ref::<burn::backend::flex::FlexTensor>()
            .and_then(|ft| ft.as_slice::<f32>())
        {
            return f(values);
        }
    }
    f(&to_f32::<B>(t.clone()))
}

fn from_f32<B: Backend>(v: Vec<f32>, shape: Vec<usize>, device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(v, shape), device)
}

/// Runs the kernel's forward without keeping anything for a backward pass. A bf16 `w_hh` is
/// read as bf16 by the kernel (see [`gemv`](super::gemv)); any other dtype is read as `f32`.
/// `(reverse, bf16_tiles)` as [`lstm_kernel::forward_inference`]'s.
fn run_inference<B: Backend>(
    xproj: FloatTensor<B>,
    w_hh: FloatTensor<B>,
    (h0, c0): (FloatTensor<B>, FloatTensor<B>),
    how: (bool, bool),
) -> FloatTensor<B> {
    let shape = lstm_shape::<B>(&xproj, &w_hh);
    let (w32, w16);
    let w = if w_hh.dtype() == DType::BF16 {
        let data = read_sync(B::float_into_data(w_hh)).expect("reading a CPU tensor cannot fail");
        w16 = data.into_vec::<bf16>().expect("a BF16 tensor holds bf16");
        RecurrentWeight::Bf16(&w16)
    } else {
        w32 = to_f32::<B>(w_hh);
        RecurrentWeight::F32(&w32)
    };
    run_inference_on::<B>(shape, xproj, w, (h0, c0), how)
}

/// [`run_inference`] with the recurrent weight already at hand.
fn run_inference_on<B: Backend>(
    shape: LstmShape,
    xproj: FloatTensor<B>,
    w_hh: RecurrentWeight<'_>,
    (h0, c0): (FloatTensor<B>, FloatTensor<B>),
    (reverse, bf16_tiles): (bool, bool),
) -> FloatTensor<B> {
    let device = xproj.device();
    let out = lstm_kernel::forward_inference(
        shape,
        to_f32::<B>(xproj),
        w_hh,
        (to_f32::<B>(h0), to_f32::<B>(c0)),
        reverse,
        bf16_tiles,
    );
    packed_output::<B>(out, shape, &device)
}

/// Runs the kernel's forward on the inputs' data; returns what it saved, the shape and the
/// device of the inputs.
fn run_forward<B: Backend>(
    xproj: FloatTensor<B>,
    w_hh: FloatTensor<B>,
    h0: FloatTensor<B>,
    c0: FloatTensor<B>,
    reverse: bool,
    bf16_tiles: bool,
) -> (LstmSaved, LstmShape, B::Device) {
    let shape = lstm_shape::<B>(&xproj, &w_hh);
    let device = xproj.device();
    let saved = lstm_kernel::forward(
        shape,
        to_f32::<B>(xproj),
        to_f32::<B>(w_hh),
        to_f32::<B>(h0),
        to_f32::<B>(c0),
        reverse,
        bf16_tiles,
    );
    (saved, shape, device)
}

fn packed_output<B: Backend>(out: Vec<f32>, s: LstmShape, device: &B::Device) -> FloatTensor<B> {
    from_f32::<B>(out, vec![s.batch, s.seq_len + 1, s.hidden], device)
}

/// The backward step registered in the autodiff graph.
#[derive(Debug)]
struct LstmRecurrenceBackward;

impl<B: Backend> Backward<B, 4> for LstmRecurrenceBackward {
    type State = Arc<LstmSaved>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad_out = grads.consume::<B>(&ops.node);
        let device = grad_out.device();
        let grad_out = to_f32::<B>(grad_out);
        let [p_x, p_w, p_h0, p_c0] = ops.parents;
        // The graph holds the only reference once the forward has returned.
        let saved = Arc::try_unwrap(ops.state).unwrap_or_else(|shared| LstmSaved {
            gates: shared.gates.clone(),
            cells: shared.cells.clone(),
            out: shared.out.clone(),
            h0: shared.h0.clone(),
            c0: shared.c0.clone(),
            w_hh: shared.w_hh.clone(),
            ..*shared
        });
        let s = saved.shape;
        let g = lstm_kernel::backward(saved, &grad_out, p_w.is_some());
        if let Some(node) = p_x {
            let t = from_f32::<B>(g.xproj, vec![s.batch, s.seq_len, 4 * s.hidden], &device);
            grads.register::<B>(node.id, t);
        }
        if let (Some(node), Some(w)) = (p_w, g.w_hh) {
            grads.register::<B>(
                node.id,
                from_f32::<B>(w, vec![4 * s.hidden, s.hidden], &device),
            );
        }
        if let Some(node) = p_h0 {
            grads.register::<B>(
                node.id,
                from_f32::<B>(g.h0, vec![s.batch, s.hidden], &device),
            );
        }
        if let Some(node) = p_c0 {
            grads.register::<B>(
                node.id,
                from_f32::<B>(g.c0, vec![s.batch, s.hidden], &device),
            );
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> LstmBackend for Autodiff<B, C> {
    fn lstm_recurrence(
        xproj: FloatTensor<Self>,
        w_hh: FloatTensor<Self>,
        h0: FloatTensor<Self>,
        c0: FloatTensor<Self>,
        reverse: bool,
        bf16_tiles: bool,
    ) -> FloatTensor<Self> {
        let nodes = [xproj.node(), w_hh.node(), h0.node(), c0.node()];
        let (xproj, w_hh) = (xproj.into_primitive(), w_hh.into_primitive());
        let (h0, c0) = (h0.into_primitive(), c0.into_primitive());
        match LstmRecurrenceBackward
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (saved, shape, device) =
                    run_forward::<B>(xproj, w_hh, h0, c0, reverse, bf16_tiles);
                let out = packed_output::<B>(saved.out.clone(), shape, &device);
                prep.finish(Arc::new(saved), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(run_inference::<B>(
                xproj,
                w_hh,
                (h0, c0),
                (reverse, bf16_tiles),
            )),
        }
    }
}

/// Whether `device` runs [`lstm_recurrence`] with the fused CPU kernel.
pub fn has_fused_kernel(device: &burn::tensor::Device) -> bool {
    match device.clone().inner().as_dispatch() {
        #[cfg(feature = "flex")]
        DispatchDevice::Flex(_) => true,
        #[cfg(feature = "ndarray")]
        DispatchDevice::NdArray(_) => true,
        _ => false,
    }
}

/// The LSTM recurrence of one direction over a whole sequence.
///
/// Gates are PyTorch's `i, f, g, o`; `xproj` already holds `x W_ih^T + b_ih + b_hh`. With
/// `reverse`, time runs from the last step to the first (the reverse direction of a
/// bidirectional layer); outputs stay in time order.
///
/// # Shapes
///
/// - xproj: `[batch, seq_len, 4 * hidden]`
/// - w_hh: `[4 * hidden, hidden]` (`f32`, or bf16 for inference: see [`gemv`](super::gemv))
/// - h0, c0: `[batch, hidden]`
/// - output: `[batch, seq_len + 1, hidden]`: the hidden state of every time step, then the final
///   cell state.
///
/// # Panics
///
/// If the shapes do not fit together.
pub fn lstm_recurrence(
    xproj: Tensor<3>,
    w_hh: Tensor<2>,
    h0: Tensor<2>,
    c0: Tensor<2>,
    reverse: bool,
) -> Tensor<3> {
    let [batch, seq_len, g4] = xproj.dims();
    let [w_rows, hidden] = w_hh.dims();
    assert!(
        g4 == 4 * hidden && w_rows == g4 && seq_len > 0,
        "lstm_recurrence: xproj {:?} does not fit w_hh {:?}",
        xproj.dims(),
        w_hh.dims()
    );
    assert_eq!(h0.dims(), [batch, hidden], "lstm_recurrence: h0 shape");
    assert_eq!(c0.dims(), [batch, hidden], "lstm_recurrence: c0 shape");
    if let DType::QFloat(scheme) = w_hh.dtype() {
        return if xproj.is_require_grad() {
            // Int8 weights are for inference; a differentiated run gets the dequantized weight.
            lstm_recurrence(xproj, w_hh.dequantize(), h0, c0, reverse)
        } else {
            run_int8(xproj, w_hh, scheme, h0, c0, reverse)
        };
    }
    if has_fused_kernel(&xproj.device()) {
        Tensor::from_dispatch(<Dispatch as LstmBackend>::lstm_recurrence(
            xproj.into_dispatch(),
            w_hh.into_dispatch(),
            h0.into_dispatch(),
            c0.into_dispatch(),
            reverse,
            autocast::bf16_autocast_active(),
        ))
    } else {
        recurrence_tensor_ops(xproj, w_hh, h0, c0, reverse)
    }
}

/// Fewest rows for which [`input_projection`] packs the weight for AMX: packing reads the whole
/// `f32` weight once per call, which one document's window (72 rows) does not repay
/// (`clas_infer_b1` with bf16: 2.9 docs/s with it against 4-5 without).
const AMX_PROJECTION_MIN_ROWS: usize = 512;

/// The input projection of a whole sequence, `rows W_ih^T + bias`.
///
/// Inside a [`bf16_autocast`](autocast::bf16_autocast) scope (mixed-precision training) it is
/// [`bf16_linear`]. Otherwise, with a bf16 recurrent weight (inference with
/// [`bf16_recurrent_weights`](crate::nn::bf16_recurrent_weights)), from
/// [`AMX_PROJECTION_MIN_ROWS`] rows, no gradient wanted and a CPU with AMX, the product runs on
/// AMX tiles in bf16 too, like the recurrence that follows ([`amx`](super::amx)); otherwise it is
/// burn's `linear` in the tensors' dtype.
///
/// # Shapes
///
/// - rows: `[n, d_in]`
/// - w_ih: `[4 * hidden, d_in]`
/// - bias: `[4 * hidden]`
/// - output: `[n, 4 * hidden]`
pub fn input_projection(
    rows: Tensor<2>,
    w_ih: Tensor<2>,
    bias: Tensor<1>,
    w_hh_dtype: DType,
) -> Tensor<2> {
    if autocast::bf16_autocast_active() {
        // Mixed-precision training (or inference in the scope): bf16 tiles where the device
        // and CPU allow, at any size and with gradients.
        return bf16_linear(rows, w_ih, bias);
    }
    let on_tiles = w_hh_dtype == DType::BF16
        && rows.dims()[0] >= AMX_PROJECTION_MIN_ROWS
        && !rows.is_require_grad()
        && !w_ih.is_require_grad()
        && !bias.is_require_grad()
        && bf16_linear::runs_on_tiles(&rows.device());
    if on_tiles {
        bf16_linear(rows, w_ih, bias)
    } else {
        linear(rows, w_ih.transpose(), Some(bias))
    }
}

/// A float tensor's values as `f32` on the host (a copy), whatever its device and dtype.
fn host_f32<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("converted to f32")
}

/// The recurrence with an int8 `w_hh` (see [`crate::nn::int8_recurrent_weights`]) on the host
/// kernel, whatever the device: the values and block scales are read out of burn's quantized
/// tensor and streamed by [`gemv_i8`](super::gemv_i8). A scheme other than symmetric int8 with
/// blocks along the rows, or an odd block, runs on the dequantized weight instead.
fn run_int8(
    xproj: Tensor<3>,
    w_hh: Tensor<2>,
    scheme: QuantScheme,
    h0: Tensor<2>,
    c0: Tensor<2>,
    reverse: bool,
) -> Tensor<3> {
    let [rows, k] = w_hh.dims();
    let block = match scheme.block_size().map(|b| b.to_dim_vec(2)) {
        Some(b) if b[0] == 1 && b[1] > 0 && k.is_multiple_of(usize::from(b[1])) => {
            usize::from(b[1])
        }
        _ => return lstm_recurrence(xproj, w_hh.dequantize(), h0, c0, reverse),
    };
    if scheme.value != QuantValue::Q8S
        || scheme.mode != QuantMode::Symmetric
        || scheme.store != QuantStore::Native
    {
        return lstm_recurrence(xproj, w_hh.dequantize(), h0, c0, reverse);
    }
    let data = w_hh.into_data();
    let bytes = QuantizedBytes {
        shape: data.shape().clone(),
        bytes: data.into_bytes(),
        scheme,
    };
    let (q, scales) = bytes.into_vec_i8();
    if scales.global.is_some() || q.len() != rows * k || scales.block.len() != rows * k / block {
        unreachable!("a one-level [1, {block}] block scheme has one scale per block");
    }
    let [batch, seq_len, _] = xproj.dims();
    let shape = LstmShape {
        batch,
        seq_len,
        hidden: k,
    };
    let device = xproj.device();
    let out = lstm_kernel::forward_inference(
        shape,
        host_f32(xproj),
        RecurrentWeight::I8(I8Weight {
            q: &q,
            scales: &scales.block,
            block,
        }),
        (host_f32(h0), host_f32(c0)),
        reverse,
        false,
    );
    Tensor::from_data(TensorData::new(out, [batch, seq_len + 1, k]), &device)
}

/// The generic fallback: one recurrent product and the gate arithmetic per step as tensor ops.
///
/// A `w_hh` of another float dtype than `xproj` (bf16 weights) is cast to `xproj`'s first.
pub fn recurrence_tensor_ops(
    xproj: Tensor<3>,
    w_hh: Tensor<2>,
    mut h: Tensor<2>,
    mut c: Tensor<2>,
    reverse: bool,
) -> Tensor<3> {
    let [batch, seq_len, g4] = xproj.dims();
    // A reduced-precision weight (bf16 for inference) is widened to the activations' dtype.
    let w_hh = if w_hh.dtype() == xproj.dtype() {
        w_hh
    } else {
        w_hh.cast(FloatDType::from(xproj.dtype()))
    };
    let w_hh_t = w_hh.transpose();
    let mut outputs: Vec<Tensor<2>> = Vec::with_capacity(seq_len);
    // Splitting once beats slicing the tracked projection at every step (each slice's backward
    // allocates a full-size gradient).
    let steps: Vec<Tensor<3>> = xproj.chunk(seq_len, 1);
    for step in 0..seq_len {
        let t = if reverse { seq_len - 1 - step } else { step };
        let x_t = steps[t].clone().reshape([batch, g4]);
        let gates = x_t + h.matmul(w_hh_t.clone());
        let [i, f, gg, o] = <[Tensor<2>; 4]>::try_from(gates.chunk(4, 1))
            .unwrap_or_else(|_| unreachable!("chunk(4) of a 4H-wide tensor gives four parts"));
        c = sigmoid(f) * c + sigmoid(i) * gg.tanh();
        h = sigmoid(o) * c.clone().tanh();
        outputs.push(h.clone());
    }
    if reverse {
        outputs.reverse();
    }
    outputs.push(c);
    Tensor::stack(outputs, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{to_vec, values};

    /// The input projection with a bf16 recurrent weight: on AMX tiles from 512 rows (bf16
    /// operands, so within bf16's rounding of burn's `f32` product, and not equal to it), burn's
    /// product below that and without the bf16 signal.
    fn projection_on(device: &burn::tensor::Device) {
        let (d_in, g4) = (40, 48);
        let w = Tensor::<2>::from_data(TensorData::new(values(g4 * d_in, 1), [g4, d_in]), device);
        let bias = Tensor::<1>::from_data(TensorData::new(values(g4, 2), [g4]), device);
        for n in [8, 520] {
            let x = Tensor::<2>::from_data(TensorData::new(values(n * d_in, 3), [n, d_in]), device);
            let want = to_vec(linear(x.clone(), w.clone().transpose(), Some(bias.clone())));
            let f32_signal = input_projection(x.clone(), w.clone(), bias.clone(), DType::F32);
            assert_eq!(to_vec(f32_signal), want, "f32 weights: burn's product");
            let got = to_vec(input_projection(
                x.clone(),
                w.clone(),
                bias.clone(),
                DType::BF16,
            ));
            // A tracked input (training) keeps burn's differentiable product.
            let ad = device.clone().autodiff();
            let x_host = x.clone();
            let x_ad = Tensor::<2>::from_data(x.into_data(), &ad).require_grad();
            let (w_ad, b_ad) = (Tensor::from_data(w.to_data(), &ad), bias.to_data());
            let tracked = input_projection(x_ad, w_ad, Tensor::from_data(b_ad, &ad), DType::BF16);
            assert_eq!(to_vec(tracked), want, "tracked: burn's product");
            let tiles = n >= AMX_PROJECTION_MIN_ROWS && bf16_linear::runs_on_tiles(device);
            if tiles {
                // Exactly burn's product of the bf16-rounded operands, up to summation order;
                // so not equal to the f32 product.
                let round = |t: Tensor<2>| {
                    let v: Vec<f32> = (to_vec(t.clone()).into_iter())
                        .map(|x| bf16::from_f32(x).to_f32())
                        .collect();
                    Tensor::<2>::from_data(TensorData::new(v, t.dims()), device)
                };
                let (x_r, w_r) = (round(x_host.clone()), round(w.clone()));
                let want_r = to_vec(linear(x_r, w_r.transpose(), Some(bias.clone())));
                crate::test_util::assert_close(&got, &want_r, 1e-5, "tiles");
                assert!(got != want, "the tiles round the operands");
            } else {
                assert_eq!(
                    got, want,
                    "burn's product below {AMX_PROJECTION_MIN_ROWS} rows"
                );
            }
        }
    }

    #[test]
    fn projection() {
        projection_on(&crate::test_util::test_device());
    }

    #[cfg(feature = "flex")]
    #[test]
    fn projection_flex() {
        projection_on(&burn::tensor::Device::flex());
    }
}
