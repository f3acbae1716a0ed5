//! The LSTM recurrence on plain `f32` slices: forward and a hand-written backward.
//!
//! Layouts follow PyTorch: gates `i, f, g, o` stacked along `4 * hidden`, batch-first sequences.
//! The input projection (`x W_ih^T + b_ih + b_hh`, `[batch, seq_len, 4 * hidden]`) is computed
//! by the caller in one large product; this kernel adds the recurrent product step by step and
//! runs the gate and cell arithmetic.
//!
//! Speed notes (see the fused-LSTM issue):
//! - the recurrent weight is packed once per sequence ([`PackedMatrix`]) instead of being
//!   re-packed by `gemm` at every step, and each recurrent product writes straight into the
//!   projection buffer through strides, so nothing is copied or allocated per step;
//! - the gate arithmetic is one pass over contiguous memory with a branch-free `exp`, compiled for
//!   AVX-512 / AVX2 when the CPU has them, split across batch rows on the rayon pool;
//! - the backward runs the recurrence in reverse from the saved gate activations and cell states
//!   and computes the weight gradient as one product over all `batch * seq_len` rows at the end.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use burn::tensor::bf16;

use super::amx::{self, AmxWeight};
use super::gemv;
use super::gemv_i8::{self, I8Weight};
use super::packed::PackedMatrix;
use super::simd::{exp_fast, multiversion};

/// Sizes of one LSTM direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LstmShape {
    /// Sequences in the batch.
    pub batch: usize,
    /// Time steps.
    pub seq_len: usize,
    /// Hidden units.
    pub hidden: usize,
}

impl LstmShape {
    fn gates(&self) -> usize {
        4 * self.hidden
    }

    /// Time index of processing step `step`.
    fn time(&self, step: usize, reverse: bool) -> usize {
        if reverse {
            self.seq_len - 1 - step
        } else {
            step
        }
    }
}

/// What the forward pass keeps for the backward pass.
pub struct LstmSaved {
    /// Sizes.
    pub shape: LstmShape,
    /// Whether time ran backwards.
    pub reverse: bool,
    /// Gate activations `i, f, g, o` after their nonlinearity, `[batch, seq_len, 4 * hidden]`.
    pub gates: Vec<f32>,
    /// Cell state after each step, `[batch, seq_len, hidden]`.
    pub cells: Vec<f32>,
    /// The packed output (see [`forward`]), `[batch, seq_len + 1, hidden]`.
    pub out: Vec<f32>,
    /// Initial hidden state, `[batch, hidden]`.
    pub h0: Vec<f32>,
    /// Initial cell state, `[batch, hidden]`.
    pub c0: Vec<f32>,
    /// Recurrent weight, `[4 * hidden, hidden]`.
    pub w_hh: Vec<f32>,
    /// Whether the products ran on AMX tiles in bf16 (see [`forward`]); the backward's do too.
    pub bf16_tiles: bool,
}

impl core::fmt::Debug for LstmSaved {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LstmSaved")
            .field("shape", &self.shape)
            .field("reverse", &self.reverse)
            .finish_non_exhaustive()
    }
}

/// Gradients of the recurrence's inputs.
pub struct LstmGrads {
    /// Gradient of the input projection, `[batch, seq_len, 4 * hidden]`.
    pub xproj: Vec<f32>,
    /// Gradient of the recurrent weight, `[4 * hidden, hidden]` (when asked for).
    pub w_hh: Option<Vec<f32>>,
    /// Gradient of the initial hidden state, `[batch, hidden]`.
    pub h0: Vec<f32>,
    /// Gradient of the initial cell state, `[batch, hidden]`.
    pub c0: Vec<f32>,
}

/// One batch row in the forward loop: gates, packed output, cell state, saved cells.
type ForwardRow<'a> = (
    ((&'a mut [f32], &'a mut [f32]), &'a mut [f32]),
    &'a mut [f32],
);

/// One batch row in the backward loop: gates, saved cells, c0, output gradient, dh from the
/// later step, dc.
type BackwardRow<'a> = (
    (
        (((&'a mut [f32], &'a [f32]), &'a [f32]), &'a [f32]),
        &'a [f32],
    ),
    &'a mut [f32],
);

/// Parallelism for the matrix products: the whole rayon pool.
fn parallelism() -> Parallelism {
    Parallelism::Rayon(0)
}

/// Whether the element-wise work of one step is worth splitting across threads.
fn split_rows(shape: &LstmShape) -> bool {
    shape.batch >= 2 && shape.batch * shape.hidden >= 16 * 1024 && rayon::current_num_threads() > 1
}

/// Runs the recurrence.
///
/// `xproj` is the input projection including both biases; its buffer is reused for the gate
/// activations. Returns the packed output `[batch, seq_len + 1, hidden]`: the hidden state of
/// every time step (in time order, also for `reverse`) followed by the final cell state, and the
/// saved activations.
///
/// # Panics
///
/// With `bf16_tiles` (mixed-precision training, only where [`amx::available`]) every product of
/// the forward and the backward runs on AMX tiles: operands rounded to bf16, sums in `f32`, as
/// PyTorch's `autocast` to bf16 does; the gate and cell arithmetic, the states and the saved
/// activations stay `f32`.
///
/// # Panics
///
/// If a slice's length does not match `shape` (the burn wrapper checks shapes first).
pub fn forward(
    shape: LstmShape,
    xproj: Vec<f32>,
    w_hh: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    reverse: bool,
    bf16_tiles: bool,
) -> LstmSaved {
    let split = split_rows(&shape);
    let bf16_tiles = bf16_tiles && amx::available();
    forward_impl(
        shape,
        xproj,
        w_hh,
        h0,
        c0,
        reverse,
        How { split, bf16_tiles },
    )
}

/// How [`forward_impl`] runs.
#[derive(Clone, Copy)]
struct How {
    /// Split the element-wise work across batch rows on the rayon pool.
    split: bool,
    /// Products on AMX tiles in bf16 (AMX available).
    bf16_tiles: bool,
}

/// [`forward`], run as `how` says.
fn forward_impl(
    shape: LstmShape,
    xproj: Vec<f32>,
    w_hh: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    reverse: bool,
    how: How,
) -> LstmSaved {
    let How { split, bf16_tiles } = how;
    let (g4, h) = (shape.gates(), shape.hidden);
    assert_eq!(w_hh.len(), g4 * h, "w_hh size");
    // Packed once for all steps: gates += W_hh h.
    let (gates, cells, out) = if bf16_tiles {
        let w = AmxWeight::new(&w_hh, g4, h);
        // SAFETY: `recurrence` passes pointers valid for `batch` rows (its contract); the
        // caller checked that AMX is available.
        let product = |b, v, v_rs, dst, dst_rs| unsafe { w.apply(b, v, v_rs, dst, dst_rs) };
        recurrence(shape, xproj, &product, &h0, c0.clone(), reverse, split)
    } else {
        let w = PackedMatrix::new(&w_hh, g4, h, h, 1);
        // SAFETY: as above.
        let product = |b, v, v_rs, dst, dst_rs| unsafe { w.apply(b, v, v_rs, dst, dst_rs, true) };
        recurrence(shape, xproj, &product, &h0, c0.clone(), reverse, split)
    };
    LstmSaved {
        shape,
        reverse,
        gates,
        cells,
        out,
        h0,
        c0,
        w_hh,
        bf16_tiles,
    }
}

/// The recurrent weight for [`forward_inference`], `[4 * hidden, hidden]` row-major.
///
/// Borrowed, so a backend that holds the weight contiguously (flex) lends it without a copy.
#[derive(Clone, Copy)]
pub enum RecurrentWeight<'a> {
    /// Full precision.
    F32(&'a [f32]),
    /// Rounded to bf16 (half the bytes read per step; products and sums stay `f32`).
    Bf16(&'a [bf16]),
    /// Int8 values with block scales (a quarter of the bytes; products and sums stay `f32`).
    I8(I8Weight<'a>),
}

/// Whether [`forward_inference`] uses the row-streaming product ([`gemv::gemv_acc`]) for batches
/// of at most [`gemv::MAX_BATCH`] (`clas_infer_b1` on flex: 1.05 docs/s against 0.87 with the
/// packed `gemm`, 2.1 with bf16 weights).
const ROW_STREAMING: bool = true;

/// [`forward`] without anything kept for a backward pass: returns only the packed output.
///
/// For batches of at most [`gemv::MAX_BATCH`] the recurrent product streams the weight row by row
/// ([`gemv::gemv_acc`], `f32` or bf16; [`gemv_i8::gemv_acc_i8`], int8). Larger batches with a
/// bf16 weight multiply on AMX tiles where the CPU has them ([`amx`], which also rounds the
/// hidden states to bf16); otherwise they use the packed `gemm` of [`forward`] (a bf16 or int8
/// weight is widened to `f32` once per call).
///
/// With `bf16_tiles` (an [`autocast`](super::autocast) scope, as in validation during
/// mixed-precision training), larger batches with an `f32` weight multiply on the tiles too,
/// rounding the weight to bf16 as the training [`forward`] does.
///
/// # Panics
///
/// If a slice's length does not match `shape`.
pub fn forward_inference(
    shape: LstmShape,
    xproj: Vec<f32>,
    w_hh: RecurrentWeight<'_>,
    (h0, c0): (Vec<f32>, Vec<f32>),
    reverse: bool,
    bf16_tiles: bool,
) -> Vec<f32> {
    let products = Products {
        streaming: ROW_STREAMING,
        tiles: amx::available(),
        f32_tiles: bf16_tiles,
    };
    forward_inference_with(shape, xproj, w_hh, h0, c0, reverse, products)
}

/// Which products [`forward_inference_with`] may use besides the packed `gemm`.
#[derive(Clone, Copy)]
struct Products {
    /// The row-streaming product for batches of at most [`gemv::MAX_BATCH`].
    streaming: bool,
    /// AMX tiles for larger batches with a bf16 weight (only where [`amx::available`]).
    tiles: bool,
    /// With `tiles`, an `f32` weight too (rounded to bf16).
    f32_tiles: bool,
}

/// [`forward_inference`], with the given choice of products.
fn forward_inference_with(
    shape: LstmShape,
    xproj: Vec<f32>,
    w_hh: RecurrentWeight<'_>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    reverse: bool,
    products: Products,
) -> Vec<f32> {
    let (g4, h) = (shape.gates(), shape.hidden);
    let split = split_rows(&shape);
    let run = |product: &Product<'_>| recurrence(shape, xproj, product, &h0, c0, reverse, split).2;
    if products.streaming && shape.batch <= gemv::MAX_BATCH {
        match w_hh {
            RecurrentWeight::F32(w) => {
                assert_eq!(w.len(), g4 * h, "w_hh size");
                // SAFETY: `recurrence` passes pointers valid for `batch` rows (its contract).
                run(&|b, v, v_rs, dst, dst_rs| unsafe {
                    gemv::gemv_acc(w, g4, h, b, v, v_rs, dst, dst_rs)
                })
            }
            RecurrentWeight::Bf16(w) => {
                assert_eq!(w.len(), g4 * h, "w_hh size");
                // SAFETY: as above.
                run(&|b, v, v_rs, dst, dst_rs| unsafe {
                    gemv::gemv_acc(w, g4, h, b, v, v_rs, dst, dst_rs)
                })
            }
            RecurrentWeight::I8(w) => {
                // SAFETY: as above (`gemv_acc_i8` checks the sizes).
                run(&|b, v, v_rs, dst, dst_rs| unsafe {
                    gemv_i8::gemv_acc_i8(w, g4, h, b, v, v_rs, dst, dst_rs)
                })
            }
        }
    } else if let Some(packed) = match w_hh {
        // bf16 weights (or f32 ones under autocast) at a batch that makes the product
        // compute-bound: AMX tiles (bf16 hidden states too, see `amx`).
        RecurrentWeight::Bf16(w) if products.tiles => Some(AmxWeight::new(w, g4, h)),
        RecurrentWeight::F32(w) if products.tiles && products.f32_tiles => {
            Some(AmxWeight::new(w, g4, h))
        }
        _ => None,
    } {
        // SAFETY: as above; AMX is available.
        run(&|b, v, v_rs, dst, dst_rs| unsafe { packed.apply(b, v, v_rs, dst, dst_rs) })
    } else {
        let w32;
        let w: &[f32] = match w_hh {
            RecurrentWeight::F32(w) => w,
            RecurrentWeight::Bf16(w) => {
                w32 = w.iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
                &w32
            }
            RecurrentWeight::I8(w) => {
                let scale = |i: usize| w.scales[i / w.block];
                w32 = (w.q.iter().enumerate())
                    .map(|(i, &q)| f32::from(q) * scale(i))
                    .collect::<Vec<f32>>();
                &w32
            }
        };
        assert_eq!(w.len(), g4 * h, "w_hh size");
        let packed = PackedMatrix::new(w, g4, h, h, 1);
        // SAFETY: as above.
        run(&|b, v, v_rs, dst, dst_rs| unsafe { packed.apply(b, v, v_rs, dst, dst_rs, true) })
    }
}

/// `dst[b, :] += W_hh v[b, :]` for `b < batch`: `(batch, v, v_rs, dst, dst_rs)`, `v` rows of
/// `hidden` floats `v_rs` apart, `dst` rows of `4 * hidden` floats `dst_rs` apart.
type Product<'a> = dyn Fn(usize, *const f32, usize, *mut f32, usize) + Sync + 'a;

/// The forward loop: returns the gate activations, the cell state after each step and the packed
/// output (see [`forward`]). `product` is called with pointers valid for `batch` rows of the sizes
/// it documents, `v` and `dst` in distinct buffers.
fn recurrence(
    shape: LstmShape,
    xproj: Vec<f32>,
    product: &Product<'_>,
    h0: &[f32],
    c0: Vec<f32>,
    reverse: bool,
    split: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let LstmShape {
        batch: b,
        seq_len: t_len,
        hidden: h,
    } = shape;
    let g4 = shape.gates();
    assert_eq!(xproj.len(), b * t_len * g4, "xproj size");
    assert_eq!(h0.len(), b * h, "h0 size");
    assert_eq!(c0.len(), b * h, "c0 size");
    let mut gates = xproj;
    let mut out = vec![0.0f32; b * (t_len + 1) * h];
    let mut cells = vec![0.0f32; b * t_len * h];
    let mut c = c0;
    let out_rs = (t_len + 1) * h;
    for step in 0..t_len {
        let t = shape.time(step, reverse);
        if step == 0 && h0.iter().all(|&v| v == 0.0) {
            // Zero initial state: the recurrent product adds nothing.
        } else {
            let (h_prev, h_rs) = if step == 0 {
                (h0.as_ptr(), h)
            } else {
                let prev = shape.time(step - 1, reverse);
                (out[prev * h..].as_ptr(), out_rs)
            };
            // gates[:, t, :] += h_prev [b, h] x W_hh^T: rows `0..b` of stride `t_len * g4`
            // inside gates and of stride `h_rs` inside h0 or out; the two buffers are distinct.
            product(b, h_prev, h_rs, gates[t * g4..].as_mut_ptr(), t_len * g4);
        }
        let row = |(((g_row, o_row), c_row), cell_row): ForwardRow<'_>| {
            let g = &mut g_row[t * g4..(t + 1) * g4];
            let hid = &mut o_row[t * h..(t + 1) * h];
            cell_forward(g, c_row, hid);
            cell_row[t * h..(t + 1) * h].copy_from_slice(c_row);
        };
        if split {
            gates
                .par_chunks_mut(t_len * g4)
                .zip(out.par_chunks_mut(out_rs))
                .zip(c.par_chunks_mut(h))
                .zip(cells.par_chunks_mut(t_len * h))
                .for_each(row);
        } else {
            gates
                .chunks_mut(t_len * g4)
                .zip(out.chunks_mut(out_rs))
                .zip(c.chunks_mut(h))
                .zip(cells.chunks_mut(t_len * h))
                .for_each(row);
        }
    }
    for (o_row, c_row) in out.chunks_mut(out_rs).zip(c.chunks(h)) {
        o_row[t_len * h..].copy_from_slice(c_row);
    }
    (gates, cells, out)
}

/// Runs the recurrence backwards.
///
/// `grad_out` is the gradient of the packed output of [`forward`], `[batch, seq_len + 1,
/// hidden]`. The weight gradient is computed only when `want_w_hh`.
pub fn backward(saved: LstmSaved, grad_out: &[f32], want_w_hh: bool) -> LstmGrads {
    let split = split_rows(&saved.shape);
    backward_impl(saved, grad_out, want_w_hh, split)
}

/// [`backward`], with the element-wise work split across batch rows on the rayon pool or not.
fn backward_impl(saved: LstmSaved, grad_out: &[f32], want_w_hh: bool, split: bool) -> LstmGrads {
    let LstmSaved {
        shape,
        reverse,
        gates,
        cells,
        out,
        h0,
        c0,
        w_hh,
        bf16_tiles,
    } = saved;
    let LstmShape {
        batch: b,
        seq_len: t_len,
        hidden: h,
    } = shape;
    let g4 = shape.gates();
    let out_rs = (t_len + 1) * h;
    assert_eq!(grad_out.len(), b * out_rs, "grad_out size");
    // The gate buffer becomes the gradient of the gate pre-activations.
    let mut d_gates = gates;
    let mut dh_next = vec![0.0f32; b * h];
    let mut dc: Vec<f32> = grad_out
        .chunks(out_rs)
        .flat_map(|r| &r[t_len * h..])
        .copied()
        .collect();
    // Packed once for all steps: dh = W_hh^T d_gates.
    let w_t = (!bf16_tiles).then(|| PackedMatrix::new(&w_hh, h, g4, 1, h));
    let w_t_tiles = bf16_tiles.then(|| AmxWeight::strided(&w_hh, h, g4, 1, h));
    for step in (0..t_len).rev() {
        let t = shape.time(step, reverse);
        let prev = (step > 0).then(|| shape.time(step - 1, reverse));
        let row = |(((((g_row, cell_row), c0_row), go_row), dh_row), dc_row): BackwardRow<'_>| {
            let g = &mut g_row[t * g4..(t + 1) * g4];
            let c_t = &cell_row[t * h..(t + 1) * h];
            let c_prev = match prev {
                Some(p) => &cell_row[p * h..(p + 1) * h],
                None => c0_row,
            };
            let dh_out = &go_row[t * h..(t + 1) * h];
            cell_backward(g, c_t, c_prev, dh_out, dh_row, dc_row);
        };
        if split {
            d_gates
                .par_chunks_mut(t_len * g4)
                .zip(cells.par_chunks(t_len * h))
                .zip(c0.par_chunks(h))
                .zip(grad_out.par_chunks(out_rs))
                .zip(dh_next.par_chunks(h))
                .zip(dc.par_chunks_mut(h))
                .for_each(row);
        } else {
            d_gates
                .chunks_mut(t_len * g4)
                .zip(cells.chunks(t_len * h))
                .zip(c0.chunks(h))
                .zip(grad_out.chunks(out_rs))
                .zip(dh_next.chunks(h))
                .zip(dc.chunks_mut(h))
                .for_each(row);
        }
        // dh_next [b, h] = d_gates[:, t, :] [b, 4h] x W_hh [4h, h]
        // SAFETY: rows `0..b` of stride `t_len * g4` inside d_gates, `[b, h]` in dh_next; AMX
        // tiles only when `forward` found them available.
        let d_g = d_gates[t * g4..].as_ptr();
        match (&w_t, &w_t_tiles) {
            (Some(w), _) => unsafe { w.apply(b, d_g, t_len * g4, dh_next.as_mut_ptr(), h, false) },
            (None, Some(w)) => {
                dh_next.fill(0.0);
                unsafe { w.apply(b, d_g, t_len * g4, dh_next.as_mut_ptr(), h) }
            }
            (None, None) => unreachable!("one of the two is packed"),
        }
    }
    let grad_w = want_w_hh.then(|| {
        // h_prev for every (batch, time) row, then one product: d_w = d_gates^T x h_prev.
        let mut h_prev = vec![0.0f32; b * t_len * h];
        for ((hp_row, o_row), h0_row) in h_prev
            .chunks_mut(t_len * h)
            .zip(out.chunks(out_rs))
            .zip(h0.chunks(h))
        {
            for step in 0..t_len {
                let t = shape.time(step, reverse);
                let src = if step == 0 {
                    h0_row
                } else {
                    let p = shape.time(step - 1, reverse);
                    &o_row[p * h..(p + 1) * h]
                };
                hp_row[t * h..(t + 1) * h].copy_from_slice(src);
            }
        }
        let mut d_w = vec![0.0f32; g4 * h];
        if bf16_tiles {
            // d_w [g4, h] += d_gates^T [g4, bt] x (h_prev^T [h, bt])^T, both read transposed.
            let bt = b * t_len;
            let hp = AmxWeight::strided(&h_prev, h, bt, 1, h);
            // SAFETY: d_gates is `[bt, g4]`, so `(ptr, 1, g4)` addresses its transpose; AMX
            // is available (checked by `forward`).
            unsafe { hp.apply_strided(g4, (d_gates.as_ptr(), 1, g4), d_w.as_mut_ptr(), h) };
            return d_w;
        }
        // SAFETY: d_gates is `[b * t_len, g4]`, h_prev `[b * t_len, h]`, d_w `[g4, h]`.
        unsafe {
            gemm(
                g4,
                h,
                b * t_len,
                d_w.as_mut_ptr(),
                1,
                h as isize,
                false,
                d_gates.as_ptr(),
                g4 as isize,
                1,
                h_prev.as_ptr(),
                1,
                h as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism(),
            );
        }
        d_w
    });
    LstmGrads {
        xproj: d_gates,
        w_hh: grad_w,
        h0: dh_next,
        c0: dc,
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_fast(-x))
}

/// `tanh(x) = 2 sigmoid(2x) - 1` (absolute error about 2e-7).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp_fast(-2.0 * x)) - 1.0
}

/// One step of one sequence: `g` holds the pre-activations `[4h]` and receives the activations,
/// `c` the cell state (updated), `h_out` receives the hidden state.
#[inline(always)]
fn cell_forward_impl(g: &mut [f32], c: &mut [f32], h_out: &mut [f32]) {
    let n = c.len();
    let (gi, rest) = g.split_at_mut(n);
    let (gf, rest) = rest.split_at_mut(n);
    let (gg, go) = rest.split_at_mut(n);
    let (gg, go, h_out) = (&mut gg[..n], &mut go[..n], &mut h_out[..n]);
    for j in 0..n {
        let i = sigmoid(gi[j]);
        let f = sigmoid(gf[j]);
        let g = tanh(gg[j]);
        let o = sigmoid(go[j]);
        let cn = f * c[j] + i * g;
        c[j] = cn;
        h_out[j] = o * tanh(cn);
        gi[j] = i;
        gf[j] = f;
        gg[j] = g;
        go[j] = o;
    }
}

/// One backward step of one sequence: `g` holds the activations and receives the gradient of the
/// pre-activations; `dc` holds the gradient of the cell state after the step and receives the
/// one before it.
#[inline(always)]
fn cell_backward_impl(
    g: &mut [f32],
    c_t: &[f32],
    c_prev: &[f32],
    dh_out: &[f32],
    dh_next: &[f32],
    dc: &mut [f32],
) {
    let n = dc.len();
    let (gi, rest) = g.split_at_mut(n);
    let (gf, rest) = rest.split_at_mut(n);
    let (gg, go) = rest.split_at_mut(n);
    let (gg, go) = (&mut gg[..n], &mut go[..n]);
    let (c_t, c_prev, dh_out, dh_next) = (&c_t[..n], &c_prev[..n], &dh_out[..n], &dh_next[..n]);
    for j in 0..n {
        let (i, f, g, o) = (gi[j], gf[j], gg[j], go[j]);
        let th = tanh(c_t[j]);
        let dh = dh_out[j] + dh_next[j];
        let d_o = dh * th;
        let dcj = dc[j] + dh * o * (1.0 - th * th);
        dc[j] = dcj * f;
        gi[j] = dcj * g * i * (1.0 - i);
        gf[j] = dcj * c_prev[j] * f * (1.0 - f);
        gg[j] = dcj * i * (1.0 - g * g);
        go[j] = d_o * o * (1.0 - o);
    }
}

multiversion!(cell_forward, cell_forward_impl, (g: &mut [f32], c: &mut [f32], h_out: &mut [f32]));
multiversion!(
    cell_backward,
    cell_backward_impl,
    (
        g: &mut [f32],
        c_t: &[f32],
        c_prev: &[f32],
        dh_out: &[f32],
        dh_next: &[f32],
        dc: &mut [f32]
    )
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::values as vals;

    #[test]
    fn sigmoid_and_tanh_saturate() {
        assert!((sigmoid(-100.0)).abs() < 1e-30);
        assert!((tanh(-100.0) + 1.0).abs() < 1e-7 && (tanh(100.0) - 1.0).abs() < 1e-7);
    }

    /// [`forward`] in `f32` on copies of the slices.
    fn forward_f32(
        shape: LstmShape,
        x: &[f32],
        w: &[f32],
        h0: &[f32],
        c0: &[f32],
        reverse: bool,
    ) -> LstmSaved {
        let (x, w, h0, c0) = (x.to_vec(), w.to_vec(), h0.to_vec(), c0.to_vec());
        forward(shape, x, w, h0, c0, reverse, false)
    }

    /// Splitting the element-wise work across threads changes nothing.
    #[test]
    fn split_rows_gives_identical_results() {
        let shape = LstmShape {
            batch: 5,
            seq_len: 4,
            hidden: 7,
        };
        let x = vals(5 * 4 * 28, 1);
        let (w, h0, c0) = (vals(28 * 7, 2), vals(35, 3), vals(35, 4));
        let g = vals(5 * 5 * 7, 5);
        for reverse in [false, true] {
            let run = |split: bool| {
                let s = forward_impl(
                    shape,
                    x.clone(),
                    w.clone(),
                    h0.clone(),
                    c0.clone(),
                    reverse,
                    How {
                        split,
                        bf16_tiles: false,
                    },
                );
                let out = s.out.clone();
                let gr = backward_impl(s, &g, true, split);
                (out, gr.xproj, gr.w_hh.unwrap(), gr.h0, gr.c0)
            };
            assert!(run(true) == run(false), "reverse={reverse}");
        }
    }

    /// The inference forward (row-streaming product for small batches, packed `gemm` or AMX
    /// tiles above)
    /// matches the training forward to 1e-5, for odd sizes, both directions, zero and non-zero
    /// initial states; with bf16 weights it matches the training forward on the same rounded
    /// weights to 1e-5 (1e-3 on AMX tiles, which round the hidden states too), and the f32
    /// weights within bf16's rounding.
    #[test]
    fn inference_forward_matches_forward() {
        for (batch, hidden) in [(1, 37), (2, 37), (3, 16), (4, 9), (5, 37), (1, 130)] {
            let shape = LstmShape {
                batch,
                seq_len: 6,
                hidden,
            };
            let g4 = 4 * hidden;
            let x = vals(batch * 6 * g4, 1);
            // Weights of the usual scale (PyTorch's init: uniform of +- 1/sqrt(hidden)).
            let scale = 1.0 / (hidden as f32).sqrt();
            let w: Vec<f32> = vals(g4 * hidden, 2).iter().map(|v| v * scale).collect();
            let w16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
            let w16_f: Vec<f32> = w16.iter().map(|v| v.to_f32()).collect();
            let c0 = vals(batch * hidden, 4);
            let amx_here = amx::available();
            for h0 in [vec![0.0; batch * hidden], vals(batch * hidden, 3)] {
                for reverse in [false, true] {
                    let what = format!("b={batch} h={hidden} reverse={reverse}");
                    let want = |w: &Vec<f32>| forward_f32(shape, &x, w, &h0, &c0, reverse).out;
                    let choices = [(false, false), (true, false), (false, true), (true, true)];
                    // Tiles only where the CPU has them (else the same as without).
                    for (streaming, tiles) in choices.into_iter().filter(|c| !c.1 || amx_here) {
                        let what = format!("{what} streaming={streaming} tiles={tiles}");
                        let products = Products {
                            streaming,
                            tiles,
                            f32_tiles: false,
                        };
                        let got = |w: RecurrentWeight<'_>| {
                            let (h0, c0) = (h0.clone(), c0.clone());
                            forward_inference_with(shape, x.clone(), w, h0, c0, reverse, products)
                        };
                        let (want32, want16) = (want(&w), want(&w16_f));
                        let got32 = got(RecurrentWeight::F32(&w));
                        let got16 = got(RecurrentWeight::Bf16(&w16));
                        crate::test_util::assert_close(&got32, &want32, 1e-5, &what);
                        // On AMX tiles (larger batches, where the CPU has them) the hidden
                        // states are rounded to bf16 as well: 2^-9 of |h| < 1 per step.
                        let tiles = tiles && (!streaming || batch > gemv::MAX_BATCH);
                        let tol16 = if tiles { 1e-3 } else { 1e-5 };
                        crate::test_util::assert_close(&got16, &want16, tol16, &what);
                        // Each weight moves by at most 2^-9 of itself; the states (|h| < 1, |c| a
                        // few units) move by well under 1e-2 over six steps.
                        crate::test_util::assert_close(&got16, &want32, 1e-2, &what);
                        assert!(got16 != got32, "{what}: bf16 weights change something");
                    }
                }
            }
        }
    }

    /// Finite differences of a scalar loss through the kernel, in f64 terms of the f32 kernel.
    #[test]
    fn backward_matches_finite_differences() {
        let shape = LstmShape {
            batch: 2,
            seq_len: 3,
            hidden: 3,
        };
        let n_x = shape.batch * shape.seq_len * 12;
        let vals = |n: usize, seed: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0 - 0.5) * 1.5)
                .collect()
        };
        let (x, w, h0, c0) = (vals(n_x, 1), vals(36, 2), vals(6, 3), vals(6, 4));
        let weights = vals(2 * 4 * 3, 5);
        for reverse in [false, true] {
            let loss = |x: &[f32], w: &[f32], h0: &[f32], c0: &[f32]| -> f64 {
                let s = forward_f32(shape, x, w, h0, c0, reverse);
                s.out
                    .iter()
                    .zip(&weights)
                    .map(|(a, b)| (*a * *b) as f64)
                    .sum()
            };
            let saved = forward_f32(shape, &x, &w, &h0, &c0, reverse);
            let grads = backward(saved, &weights, true);
            let eps = 1e-2f32;
            let check = |what: &str, base: &[f32], got: &[f32], f: &dyn Fn(&[f32]) -> f64| {
                for k in 0..base.len() {
                    let mut p = base.to_vec();
                    p[k] += eps;
                    let up = f(&p);
                    p[k] -= 2.0 * eps;
                    let down = f(&p);
                    let fd = (up - down) / (2.0 * eps as f64);
                    assert!(
                        (fd - got[k] as f64).abs() < 2e-3,
                        "{what}[{k}] reverse={reverse}: fd {fd} vs {}",
                        got[k]
                    );
                }
            };
            check("x", &x, &grads.xproj, &|p| loss(p, &w, &h0, &c0));
            check("w", &w, grads.w_hh.as_ref().unwrap(), &|p| {
                loss(&x, p, &h0, &c0)
            });
            check("h0", &h0, &grads.h0, &|p| loss(&x, &w, p, &c0));
            check("c0", &c0, &grads.c0, &|p| loss(&x, &w, &h0, p));
        }
    }

    /// Mixed precision (products on AMX tiles in bf16): the forward equals the inference
    /// forward on tiles with the bf16-rounded weight (the same products), and the forward and
    /// every gradient stay within bf16's rounding of the `f32` kernel's.
    #[test]
    fn bf16_tiles_match_f32_within_rounding() {
        if !amx::available() {
            eprintln!("skipped: no AMX on this machine");
            return;
        }
        for (batch, seq_len, hidden) in [(8, 5, 37), (33, 4, 64)] {
            let shape = LstmShape {
                batch,
                seq_len,
                hidden,
            };
            let g4 = 4 * hidden;
            let scale = 1.0 / (hidden as f32).sqrt();
            let x = vals(batch * seq_len * g4, 1);
            let w: Vec<f32> = vals(g4 * hidden, 2).iter().map(|v| v * scale).collect();
            let (h0, c0) = (vals(batch * hidden, 3), vals(batch * hidden, 4));
            let g = vals(batch * (seq_len + 1) * hidden, 5);
            for reverse in [false, true] {
                let what = format!("b={batch} h={hidden} reverse={reverse}");
                let run = |tiles: bool| {
                    let (x, w, h0, c0) = (x.clone(), w.clone(), h0.clone(), c0.clone());
                    let s = forward(shape, x, w, h0, c0, reverse, tiles);
                    assert_eq!(s.bf16_tiles, tiles, "{what}");
                    let out = s.out.clone();
                    (out, backward(s, &g, true))
                };
                let ((out16, g16), (out32, g32)) = (run(true), run(false));
                let w16: Vec<bf16> = w.iter().map(|&v| bf16::from_f32(v)).collect();
                let products = Products {
                    streaming: false,
                    tiles: true,
                    f32_tiles: true,
                };
                let inference = |w: RecurrentWeight<'_>| {
                    let (h, c) = (h0.clone(), c0.clone());
                    forward_inference_with(shape, x.clone(), w, h, c, reverse, products)
                };
                let what16 = format!("{what}: same products as inference with bf16 weights");
                assert_eq!(out16, inference(RecurrentWeight::Bf16(&w16)), "{what16}");
                // Validation under autocast: the f32 weight rounded on the tiles, the same.
                let what32 = format!("{what}: same products as inference under autocast");
                assert_eq!(out16, inference(RecurrentWeight::F32(&w)), "{what32}");
                crate::test_util::assert_close(&out16, &out32, 1e-2, &what);
                assert!(out16 != out32, "{what}: the tiles round something");
                let close = |a: &[f32], b: &[f32], part: &str| {
                    let top = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let worst = a
                        .iter()
                        .zip(b)
                        .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
                    assert!(worst <= 2e-2 * top, "{what} {part}: {worst} vs max {top}");
                };
                close(&g16.xproj, &g32.xproj, "xproj");
                close(
                    g16.w_hh.as_ref().unwrap(),
                    g32.w_hh.as_ref().unwrap(),
                    "w_hh",
                );
                close(&g16.h0, &g32.h0, "h0");
                close(&g16.c0, &g32.c0, "c0");
            }
        }
    }
}
