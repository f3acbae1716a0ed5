//! A single-layer LSTM with PyTorch's parameter layout, batch-first, explicit state.
//!
//! The four gates are stacked along the first dimension of every weight and bias in PyTorch's
//! order **input, forget, cell (g), output**, and both biases are kept (they are summed in the
//! cell), so fastai / PyTorch weights load as a straight copy. The hidden-to-hidden weight of the
//! forward direction is weight-dropped ([`weight_drop`]) with one mask per forward call, as
//! fastai's `WeightDropout` does; the reverse direction of a bidirectional layer is not
//! (fastai only drops `weight_hh_l0`).
//!
//! The input projection for all time steps is one matrix product; the recurrence then runs as one
//! fused operation ([`lstm_recurrence`]: a CPU kernel with a hand-written backward on flex and
//! ndarray, tensor operations elsewhere). [`LstmLayer::forward_with`] can force the plain
//! tensor-op path ([`LstmPath::TensorOps`]), which the tests compare against.

use burn::config::Config;
use burn::module::{Flag, Initializer, Module, Param};
use burn::tensor::{Device, Tensor};

use super::dropout::{check_prob, is_training, weight_drop};
use crate::ops::fused_lstm::{input_projection, lstm_recurrence, recurrence_tensor_ops};

/// How [`LstmLayer::forward_with`] runs the recurrence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LstmPath {
    /// The fused operation ([`lstm_recurrence`]): the CPU kernel on flex and ndarray, tensor
    /// operations on other backends.
    #[default]
    Fused,
    /// Tensor operations step by step, on every backend (the reference for tests).
    TensorOps,
}

/// Configuration of an [`LstmLayer`].
#[derive(Config, Debug)]
pub struct LstmLayerConfig {
    /// Input features.
    pub d_input: usize,
    /// Hidden units per direction.
    pub d_hidden: usize,
    /// Run a second, reversed direction and concatenate its output (fastai `bidir`, default off).
    #[config(default = false)]
    pub bidirectional: bool,
    /// DropConnect probability on the forward direction's hidden-to-hidden weight
    /// (fastai `weight_p`; 0 disables it).
    #[config(default = 0.0)]
    pub weight_p: f64,
}

/// The weights of one direction, named as PyTorch names them.
#[derive(Module, Debug)]
pub struct LstmWeights {
    /// Input-to-hidden weight, `[4 * hidden, input]` (PyTorch `weight_ih_l0`).
    pub weight_ih: Param<Tensor<2>>,
    /// Hidden-to-hidden weight, `[4 * hidden, hidden]` (fastai `weight_hh_l0_raw`: the raw,
    /// undropped weight).
    pub weight_hh: Param<Tensor<2>>,
    /// Input bias, `[4 * hidden]` (PyTorch `bias_ih_l0`).
    pub bias_ih: Param<Tensor<1>>,
    /// Hidden bias, `[4 * hidden]` (PyTorch `bias_hh_l0`).
    pub bias_hh: Param<Tensor<1>>,
}

/// The state of an LSTM layer: hidden and cell, each `[n_directions, batch, hidden]` as in PyTorch.
#[derive(Clone, Debug)]
pub struct LstmState {
    /// Hidden state `h`.
    pub h: Tensor<3>,
    /// Cell state `c`.
    pub c: Tensor<3>,
}

impl LstmState {
    /// The zero state.
    pub fn zeros(n_dir: usize, batch: usize, hidden: usize, device: &Device) -> Self {
        Self {
            h: Tensor::zeros([n_dir, batch, hidden], device),
            c: Tensor::zeros([n_dir, batch, hidden], device),
        }
    }

    /// The same state cut off from the graph that produced it (truncated BPTT).
    pub fn detach(self) -> Self {
        Self {
            h: self.h.detach(),
            c: self.c.detach(),
        }
    }

    /// Batch size of the state.
    pub fn batch_size(&self) -> usize {
        self.h.dims()[1]
    }
}

/// One LSTM layer (fastai: one `nn.LSTM(num_layers=1, batch_first=True)` wrapped in `WeightDropout`).
#[derive(Module, Debug)]
pub struct LstmLayer {
    /// Forward direction.
    pub forward: LstmWeights,
    /// Reverse direction, for a bidirectional layer (its `weight_hh` is not weight-dropped).
    pub reverse: Option<LstmWeights>,
    /// DropConnect probability on `forward.weight_hh`.
    pub weight_p: f64,
    /// Whether the layer behaves as in training (weight-drop active).
    pub training: Param<Flag>,
}

impl LstmLayerConfig {
    /// Builds the layer with PyTorch's initialisation, U(-1/sqrt(H), 1/sqrt(H)) for every tensor.
    pub fn init(&self, device: &Device) -> LstmLayer {
        check_prob("weight_p", self.weight_p);
        assert!(
            self.d_input > 0 && self.d_hidden > 0,
            "LSTM sizes must be positive"
        );
        let bound = 1.0 / (self.d_hidden as f64).sqrt();
        let init = Initializer::Uniform {
            min: -bound,
            max: bound,
        };
        let h4 = 4 * self.d_hidden;
        let weights = || LstmWeights {
            weight_ih: init.init([h4, self.d_input], device),
            weight_hh: init.init([h4, self.d_hidden], device),
            bias_ih: init.init([h4], device),
            bias_hh: init.init([h4], device),
        };
        LstmLayer {
            forward: weights(),
            reverse: self.bidirectional.then(weights),
            weight_p: self.weight_p,
            training: Param::from_bool(true),
        }
    }
}

impl LstmLayer {
    /// Hidden units per direction.
    pub fn d_hidden(&self) -> usize {
        self.forward.weight_hh.dims()[1]
    }

    /// Number of directions (1 or 2).
    pub fn n_directions(&self) -> usize {
        1 + usize::from(self.reverse.is_some())
    }

    /// Output features (`d_hidden * n_directions`).
    pub fn d_output(&self) -> usize {
        self.d_hidden() * self.n_directions()
    }

    /// The zero state for `batch` sequences.
    pub fn zero_state(&self, batch: usize, device: &Device) -> LstmState {
        LstmState::zeros(self.n_directions(), batch, self.d_hidden(), device)
    }

    /// Runs the layer over a batch of sequences from `state` (zeros when `None`).
    ///
    /// The returned state is *not* detached; the caller decides (the AWD-LSTM encoder detaches).
    ///
    /// # Shapes
    ///
    /// - input: `[batch, seq_len, d_input]`
    /// - state: `[n_directions, batch, d_hidden]` each
    /// - output: `[batch, seq_len, d_hidden * n_directions]`
    pub fn forward(&self, input: Tensor<3>, state: Option<LstmState>) -> (Tensor<3>, LstmState) {
        self.forward_with(input, state, LstmPath::Fused)
    }

    /// [`forward`](Self::forward) with a chosen implementation of the recurrence.
    ///
    /// # Shapes
    ///
    /// As [`forward`](Self::forward).
    pub fn forward_with(
        &self,
        input: Tensor<3>,
        state: Option<LstmState>,
        path: LstmPath,
    ) -> (Tensor<3>, LstmState) {
        let device = input.device();
        let [batch, _, _] = input.dims();
        let state = state.unwrap_or_else(|| self.zero_state(batch, &device));
        let training = is_training(&self.training, &device);
        let w_hh = weight_drop(self.forward.weight_hh.val(), self.weight_p, training);
        let h0 = state.h.clone().narrow(0, 0, 1).squeeze_dim::<2>(0);
        let c0 = state.c.clone().narrow(0, 0, 1).squeeze_dim::<2>(0);
        let (out, h, c) = run_direction(input.clone(), &self.forward, w_hh, h0, c0, false, path);
        match &self.reverse {
            None => (
                out,
                LstmState {
                    h: h.unsqueeze_dim(0),
                    c: c.unsqueeze_dim(0),
                },
            ),
            Some(rev) => {
                let h0 = state.h.narrow(0, 1, 1).squeeze_dim::<2>(0);
                let c0 = state.c.narrow(0, 1, 1).squeeze_dim::<2>(0);
                let (out_r, h_r, c_r) =
                    run_direction(input, rev, rev.weight_hh.val(), h0, c0, true, path);
                (
                    Tensor::cat(vec![out, out_r], 2),
                    LstmState {
                        h: Tensor::stack(vec![h, h_r], 0),
                        c: Tensor::stack(vec![c, c_r], 0),
                    },
                )
            }
        }
    }
}

/// Runs one direction: returns the outputs `[batch, seq_len, hidden]` and the final `(h, c)`.
fn run_direction(
    input: Tensor<3>,
    weights: &LstmWeights,
    w_hh: Tensor<2>,
    h0: Tensor<2>,
    c0: Tensor<2>,
    reverse: bool,
    path: LstmPath,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    let [batch, seq_len, d_in] = input.dims();
    let hidden = w_hh.dims()[1];
    let bias = weights.bias_ih.val() + weights.bias_hh.val();
    // One product for the input projection of every time step: [batch, seq_len, 4H]. The rows
    // are merged first: on a rank-3 input burn's `linear` may keep the batched form (always at
    // batch 1), which reshapes the transposed weight and so copies it on every call (13 % of
    // `clas_infer_b1` on flex); a rank-2 product reads the transposed view in place.
    let rows = input.reshape([batch * seq_len, d_in]);
    let w_ih = weights.weight_ih.val();
    let projected =
        input_projection(rows, w_ih, bias, w_hh.dtype()).reshape([batch, seq_len, 4 * hidden]);
    let packed = match path {
        LstmPath::Fused => lstm_recurrence(projected, w_hh, h0, c0, reverse),
        LstmPath::TensorOps => recurrence_tensor_ops(projected, w_hh, h0, c0, reverse),
    };
    // [batch, seq_len + 1, hidden]: the outputs, then the final cell state.
    let out = packed.clone().narrow(1, 0, seq_len);
    let c = packed.narrow(1, seq_len, 1).reshape([batch, hidden]);
    let last = if reverse { 0 } else { seq_len - 1 };
    let h = out.clone().narrow(1, last, 1).reshape([batch, hidden]);
    (out, h, c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{assert_close, test_device, to_vec};
    use burn::tensor::Distribution;

    /// A scalar LSTM step written out by hand, to check gate order and both biases.
    #[test]
    fn one_unit_matches_hand_computation() {
        let device = test_device();
        let mut layer = LstmLayerConfig::new(1, 1).init(&device);
        let w_ih = [0.1f32, 0.2, 0.3, 0.4];
        let w_hh = [-0.5f32, 0.6, -0.7, 0.8];
        let b_ih = [0.01f32, 0.02, 0.03, 0.04];
        let b_hh = [0.05f32, -0.06, 0.07, -0.08];
        layer.forward.weight_ih = Param::from_tensor(Tensor::from_data(
            burn::tensor::TensorData::new(w_ih.to_vec(), [4, 1]),
            &device,
        ));
        layer.forward.weight_hh = Param::from_tensor(Tensor::from_data(
            burn::tensor::TensorData::new(w_hh.to_vec(), [4, 1]),
            &device,
        ));
        layer.forward.bias_ih = Param::from_tensor(Tensor::from_floats(b_ih, &device));
        layer.forward.bias_hh = Param::from_tensor(Tensor::from_floats(b_hh, &device));
        let xs = [1.0f32, -2.0, 0.5];
        let input = Tensor::<1>::from_floats(xs, &device).reshape([1, 3, 1]);
        let (out, state) = layer.forward(input, None);
        let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
        let (mut h, mut c) = (0.0f32, 0.0f32);
        let mut expect = vec![];
        for x in xs {
            let g = |k: usize| w_ih[k] * x + b_ih[k] + w_hh[k] * h + b_hh[k];
            c = sig(g(1)) * c + sig(g(0)) * g(2).tanh();
            h = sig(g(3)) * c.tanh();
            expect.push(h);
        }
        assert_close(&to_vec(out), &expect, 1e-6, "outputs");
        assert_close(&to_vec(state.h), &[h], 1e-6, "h");
        assert_close(&to_vec(state.c), &[c], 1e-6, "c");
    }

    /// Running a sequence in two calls with the carried state equals one call.
    #[test]
    fn state_carries_across_calls() {
        let device = test_device();
        let layer = LstmLayerConfig::new(5, 7)
            .with_bidirectional(false)
            .init(&device);
        let x = Tensor::<3>::random([3, 8, 5], Distribution::Default, &device);
        let (full, _) = layer.forward(x.clone(), None);
        let (a, st) = layer.forward(x.clone().narrow(1, 0, 3), None);
        let (b, _) = layer.forward(x.narrow(1, 3, 5), Some(st));
        assert_close(
            &to_vec(Tensor::cat(vec![a, b], 1)),
            &to_vec(full),
            1e-6,
            "split run",
        );
    }

    /// The reverse direction of a bidirectional layer is the forward LSTM on the flipped input.
    #[test]
    fn bidirectional_reverse_is_flipped_forward() {
        let device = test_device();
        let layer = LstmLayerConfig::new(4, 3)
            .with_bidirectional(true)
            .init(&device);
        assert_eq!(layer.d_output(), 6);
        let x = Tensor::<3>::random([2, 5, 4], Distribution::Default, &device);
        let (out, state) = layer.forward(x.clone(), None);
        assert_eq!(state.h.dims(), [2, 2, 3]);
        let rev = layer.reverse.clone().unwrap();
        let fwd_only = LstmLayer {
            forward: rev,
            reverse: None,
            weight_p: 0.0,
            training: Param::from_bool(false),
        };
        let flipped = x.flip([1]);
        let (r, _) = fwd_only.forward(flipped, None);
        assert_close(
            &to_vec(out.narrow(2, 3, 3)),
            &to_vec(r.flip([1])),
            1e-6,
            "reverse direction",
        );
    }

    /// Closeness relative to the largest expected magnitude.
    fn assert_rel(got: &[f32], want: &[f32], tol: f32, what: &str) {
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        assert_close(got, want, tol * scale, what);
    }

    /// Outputs and every gradient (input, state, all weights) of a weighted sum of all outputs.
    fn outputs_and_grads(
        layer: &LstmLayer,
        x: &Tensor<3>,
        state: Option<&LstmState>,
        path: LstmPath,
    ) -> Vec<(String, Vec<f32>)> {
        let device = x.device();
        let x = x.clone().require_grad();
        let state = state.map(|s| LstmState {
            h: s.h.clone().require_grad(),
            c: s.c.clone().require_grad(),
        });
        let (out, st) = layer.forward_with(x.clone(), state.clone(), path);
        // Fixed, non-uniform weights so that every output element matters differently.
        let ramp = |dims: Vec<usize>| {
            let n: usize = dims.iter().product();
            let v: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 5.0).collect();
            Tensor::<1>::from_floats(v.as_slice(), &device)
        };
        let weighted = |t: Tensor<3>| {
            let n = t.dims().iter().product::<usize>();
            (t.reshape([n]) * ramp(vec![n])).sum()
        };
        let loss = weighted(out.clone()) + weighted(st.h.clone()) + weighted(st.c.clone());
        let grads = loss.backward();
        let mut res = vec![
            ("out".to_string(), to_vec(out)),
            ("h".to_string(), to_vec(st.h)),
            ("c".to_string(), to_vec(st.c)),
            ("grad x".to_string(), to_vec(x.grad(&grads).unwrap())),
        ];
        if let Some(s) = state {
            res.push(("grad h0".to_string(), to_vec(s.h.grad(&grads).unwrap())));
            res.push(("grad c0".to_string(), to_vec(s.c.grad(&grads).unwrap())));
        }
        let dirs = std::iter::once(&layer.forward).chain(layer.reverse.as_ref());
        for (d, w) in dirs.enumerate() {
            let g2 = |p: &Param<Tensor<2>>| to_vec(p.grad(&grads).unwrap());
            let g1 = |p: &Param<Tensor<1>>| to_vec(p.grad(&grads).unwrap());
            res.push((format!("grad weight_ih {d}"), g2(&w.weight_ih)));
            res.push((format!("grad weight_hh {d}"), g2(&w.weight_hh)));
            res.push((format!("grad bias_ih {d}"), g1(&w.bias_ih)));
            res.push((format!("grad bias_hh {d}"), g1(&w.bias_hh)));
        }
        res
    }

    /// The fused recurrence matches the tensor-op recurrence: forward to 1e-5, every gradient to
    /// 1e-4 (relative to the largest), with and without carried state, both directions, B = 1 and
    /// T = 1, with and without autodiff.
    fn fused_matches_tensor_ops_on(device: &Device) {
        let cases = [
            // (batch, seq_len, d_input, d_hidden, bidirectional, with_state)
            (3, 6, 5, 4, false, false),
            (2, 5, 3, 6, true, true),
            (1, 7, 4, 3, true, false),
            (2, 1, 3, 5, false, true),
            (1, 1, 2, 2, true, true),
        ];
        for (b, t, d_in, hid, bidir, with_state) in cases {
            let what = format!("b={b} t={t} in={d_in} h={hid} bidir={bidir} state={with_state}");
            let ad = device.clone().autodiff();
            let layer = LstmLayerConfig::new(d_in, hid)
                .with_bidirectional(bidir)
                .init(&ad);
            let n_dir = layer.n_directions();
            let x = Tensor::<3>::random([b, t, d_in], Distribution::Uniform(-2.0, 2.0), &ad);
            let state = with_state.then(|| LstmState {
                h: Tensor::random([n_dir, b, hid], Distribution::Uniform(-1.0, 1.0), &ad),
                c: Tensor::random([n_dir, b, hid], Distribution::Uniform(-2.0, 2.0), &ad),
            });
            let fused = outputs_and_grads(&layer, &x, state.as_ref(), LstmPath::Fused);
            let plain = outputs_and_grads(&layer, &x, state.as_ref(), LstmPath::TensorOps);
            assert_eq!(fused.len(), plain.len());
            for ((name, got), (_, want)) in fused.iter().zip(&plain) {
                let tol = if name.starts_with("grad") { 1e-4 } else { 1e-5 };
                assert_rel(got, want, tol, &format!("{what}: {name}"));
            }
            // Without autodiff (inference).
            let layer = layer.valid();
            let x = x.inner();
            let state = state.map(|s| LstmState {
                h: s.h.inner(),
                c: s.c.inner(),
            });
            let (a, sa) = layer.forward_with(x.clone(), state.clone(), LstmPath::Fused);
            let (p, sp) = layer.forward_with(x, state, LstmPath::TensorOps);
            assert_rel(
                &to_vec(a),
                &to_vec(p),
                1e-5,
                &format!("{what}: inference out"),
            );
            assert_rel(
                &to_vec(sa.h),
                &to_vec(sp.h),
                1e-5,
                &format!("{what}: inference h"),
            );
            assert_rel(
                &to_vec(sa.c),
                &to_vec(sp.c),
                1e-5,
                &format!("{what}: inference c"),
            );
        }
    }

    #[test]
    fn fused_matches_tensor_ops() {
        fused_matches_tensor_ops_on(&test_device());
    }

    #[cfg(feature = "flex")]
    #[test]
    fn fused_matches_tensor_ops_flex() {
        fused_matches_tensor_ops_on(&Device::flex());
    }

    /// The fused path really is the fused kernel on the CPU backends.
    #[test]
    fn cpu_backends_have_the_fused_kernel() {
        use crate::ops::fused_lstm::has_fused_kernel;
        assert!(has_fused_kernel(&test_device()));
        assert!(has_fused_kernel(&test_device().autodiff()));
        #[cfg(feature = "flex")]
        assert!(has_fused_kernel(&Device::flex().autodiff()));
    }

    /// In a `bf16_autocast` scope (mixed precision) the layer's outputs and every gradient stay
    /// within bf16's rounding of the `f32` layer's (2e-2 of the largest), and differ from them
    /// where the CPU has AMX (else they are the `f32` results exactly).
    #[test]
    fn autocast_stays_within_bf16_rounding() {
        use crate::ops::autocast::bf16_autocast;
        use crate::ops::bf16_linear::runs_on_tiles;
        let ad = test_device().autodiff();
        let (b, t, d_in, hid) = (9, 6, 40, 48);
        let layer = LstmLayerConfig::new(d_in, hid).init(&ad);
        let x = Tensor::<3>::random([b, t, d_in], Distribution::Uniform(-1.0, 1.0), &ad);
        let state = Some(LstmState {
            h: Tensor::random([1, b, hid], Distribution::Uniform(-0.5, 0.5), &ad),
            c: Tensor::random([1, b, hid], Distribution::Uniform(-1.0, 1.0), &ad),
        });
        let exact = outputs_and_grads(&layer, &x, state.as_ref(), LstmPath::Fused);
        let mixed = {
            let _scope = bf16_autocast();
            outputs_and_grads(&layer, &x, state.as_ref(), LstmPath::Fused)
        };
        for ((name, got), (_, want)) in mixed.iter().zip(&exact) {
            assert_rel(got, want, 2e-2, name);
            if runs_on_tiles(&ad) {
                assert!(got != want, "{name}: the tiles round something");
            } else {
                assert_eq!(got, want, "{name}: no tiles, no change");
            }
        }
    }
}
