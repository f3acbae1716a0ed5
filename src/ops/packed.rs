//! A weight matrix packed once into strips that a small-batch product streams without re-packing.
//!
//! The LSTM multiplies the same recurrent weight by a few dozen state vectors at each of 70 time
//! steps. `gemm` packs an operand at every call unless it is already laid out for it, and its
//! blocking is built for large products: at these shapes it reached 100-160 GFLOP/s on the
//! two-core Xeon, where PyTorch's `addmm` reaches 150-190. Here the weight `M [rows, k]` is
//! stored once as strips of 64 rows (four AVX-512 registers), each column of a strip contiguous
//! (`64 * k` floats a strip, zero-padded), and one step's product runs a register-blocked
//! kernel over each strip: 64 rows by up to 6 vectors in 24 accumulators, each weight load
//! serving 6 vectors and each broadcast of a vector element 64 rows. Strips are shared across the
//! rayon pool. Without AVX-512 each strip is one `gemm` call.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

use super::gemv::Ptr;

/// Rows of a strip: four 16-lane registers.
const STRIP: usize = 64;

/// Vectors per pass of the kernel over a strip (4 x 6 accumulators of the 32 registers).
const NB: usize = 6;

/// Columns of a strip per block of passes: 64 x 128 floats, 32 KB, stay in L1 while every group
/// of [`NB`] vectors passes over them (a whole strip of the backward's 4608 columns is 1.2 MB,
/// which with the vectors overflowed L2).
const KC: usize = 128;

/// `M [rows, k]` in strips of [`STRIP`] rows, each column-major.
pub struct PackedMatrix {
    rows: usize,
    k: usize,
    strips: usize,
    data: Vec<f32>,
    /// Whether the strips run the AVX-512 kernel (else one `gemm` call each).
    avx512: bool,
}

impl PackedMatrix {
    /// Packs `M` where `M[r, c] = src[r * r_stride + c * c_stride]` (so a row-major `[rows, k]`
    /// matrix has strides `(k, 1)` and its transpose `(1, rows)`).
    pub fn new(src: &[f32], rows: usize, k: usize, r_stride: usize, c_stride: usize) -> Self {
        assert!(rows > 0 && k > 0, "empty matrix");
        assert!(
            (rows - 1) * r_stride + (k - 1) * c_stride < src.len(),
            "matrix exceeds its buffer"
        );
        raise_packing_threshold();
        let strips = rows.div_ceil(STRIP);
        let mut data = vec![0.0f32; strips * STRIP * k];
        data.par_chunks_mut(STRIP * k)
            .enumerate()
            .for_each(|(s, dst)| {
                let r0 = s * STRIP;
                let n = STRIP.min(rows - r0);
                if r_stride == 1 {
                    // Columns of M are contiguous in src.
                    for c in 0..k {
                        let col = &src[r0 + c * c_stride..][..n];
                        dst[c * STRIP..c * STRIP + n].copy_from_slice(col);
                    }
                } else {
                    for r in 0..n {
                        let row = &src[(r0 + r) * r_stride..];
                        for c in 0..k {
                            dst[c * STRIP + r] = row[c * c_stride];
                        }
                    }
                }
            });
        Self {
            rows,
            k,
            strips,
            data,
            avx512: has_avx512(),
        }
    }

    /// The same matrix multiplied by `gemm` (the path of CPUs without AVX-512), for tests.
    #[cfg(test)]
    fn with_gemm(mut self) -> Self {
        self.avx512 = false;
        self
    }

    /// Rows of `M`.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// `dst[b, :] (+)= M v[b, :]` for `b < batch`: `v` rows of `k` floats `v_rs` apart, `dst`
    /// rows of `rows` floats `dst_rs` apart; accumulates when `accumulate`, else overwrites.
    ///
    /// # Safety
    ///
    /// `v` must be valid for reading `batch` rows of `k` floats `v_rs` apart, and `dst` valid for
    /// reading and writing `batch` rows of `rows` floats `dst_rs` apart, not overlapping `v`.
    pub unsafe fn apply(
        &self,
        batch: usize,
        v: *const f32,
        v_rs: usize,
        dst: *mut f32,
        dst_rs: usize,
        accumulate: bool,
    ) {
        if batch == 0 {
            return;
        }
        let (v, dst) = (Ptr(v as *mut f32), Ptr(dst));
        let threads = rayon::current_num_threads().max(1);
        // A few tasks per thread, so a busy core does not hold up the step.
        let per_task = self.strips.div_ceil(4 * threads).max(1);
        let run = |s0: usize| {
            for s in s0..(s0 + per_task).min(self.strips) {
                // SAFETY: the caller's contract; strip `s` writes only columns
                // `64 s..64 s + 64` of dst, so concurrent strips touch disjoint memory.
                unsafe { self.strip(s, batch, v.get(), v_rs, dst.get(), dst_rs, accumulate) };
            }
        };
        if self.strips > per_task && threads > 1 {
            (0..self.strips)
                .into_par_iter()
                .step_by(per_task)
                .for_each(run);
        } else {
            (0..self.strips).step_by(per_task).for_each(run);
        }
    }

    /// The product for the rows of strip `s`.
    ///
    /// # Safety
    ///
    /// As [`apply`](Self::apply).
    #[allow(clippy::too_many_arguments)]
    unsafe fn strip(
        &self,
        s: usize,
        batch: usize,
        v: *const f32,
        v_rs: usize,
        dst: *mut f32,
        dst_rs: usize,
        accumulate: bool,
    ) {
        let r0 = s * STRIP;
        let n = STRIP.min(self.rows - r0);
        let w = &self.data[s * STRIP * self.k..(s + 1) * STRIP * self.k];
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // Blocks of KC columns (32 KB of the strip), so that every pass over the vectors
            // reads the block from L1.
            for kc in (0..self.k).step_by(KC) {
                let kn = KC.min(self.k - kc);
                let w = &w[kc * STRIP..(kc + kn) * STRIP];
                let accumulate = accumulate || kc > 0;
                for b0 in (0..batch).step_by(NB) {
                    let nb = NB.min(batch - b0);
                    // SAFETY: the caller's contract, for vectors `b0..b0 + nb` and columns
                    // `kc..kc + kn`; AVX-512F present.
                    unsafe {
                        let (v, dst) = (v.add(b0 * v_rs + kc), dst.add(b0 * dst_rs + r0));
                        let args = (w, kn, v, v_rs, dst, dst_rs, n, accumulate);
                        match nb {
                            1 => strip_avx512::<1>(args),
                            2 => strip_avx512::<2>(args),
                            3 => strip_avx512::<3>(args),
                            4 => strip_avx512::<4>(args),
                            5 => strip_avx512::<5>(args),
                            _ => strip_avx512::<NB>(args),
                        }
                    }
                }
            }
            return;
        }
        // SAFETY: the caller's contract; the strip is `k` columns of 64 contiguous rows.
        unsafe {
            gemm(
                batch,
                n,
                self.k,
                dst.add(r0),
                1,
                dst_rs as isize,
                accumulate,
                v,
                1,
                v_rs as isize,
                w.as_ptr(),
                1,
                STRIP as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    }
}

/// The arguments of [`strip_avx512`]: the strip, `k`, `v`, `v_rs`, `dst` (at the strip's first
/// row), `dst_rs`, the strip's valid rows, whether to accumulate.
type StripArgs<'a> = (
    &'a [f32],
    usize,
    *const f32,
    usize,
    *mut f32,
    usize,
    usize,
    bool,
);

/// `dst[b, r] (+)= sum_c strip[c, r] v[b, c]` for `b < NBV`, `r < rows` (at most 64): four
/// registers of rows by `NBV` vectors, all in registers over the whole of `k`.
///
/// # Safety
///
/// AVX-512F present; `v` valid for `NBV` rows of `k` floats `v_rs` apart, `dst` for `NBV` rows
/// of `rows` floats `dst_rs` apart; the strip `64 * k` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn strip_avx512<const NBV: usize>(
    (w, k, v, v_rs, dst, dst_rs, rows, accumulate): StripArgs<'_>,
) {
    use core::arch::x86_64::*;
    debug_assert!(w.len() == STRIP * k && rows <= STRIP);
    let mut acc = [[_mm512_setzero_ps(); 4]; NBV];
    let w = w.as_ptr();
    for c in 0..k {
        // SAFETY: column `c < k` of the strip, element `c` of the first NBV rows of v.
        unsafe {
            let wc = w.add(c * STRIP);
            let wr = [
                _mm512_loadu_ps(wc),
                _mm512_loadu_ps(wc.add(16)),
                _mm512_loadu_ps(wc.add(32)),
                _mm512_loadu_ps(wc.add(48)),
            ];
            for (b, acc_b) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*v.add(b * v_rs + c));
                for (a, &wj) in acc_b.iter_mut().zip(&wr) {
                    *a = _mm512_fmadd_ps(wj, x, *a);
                }
            }
        }
    }
    for (b, acc_b) in acc.iter().enumerate() {
        for (j, &a) in acc_b.iter().enumerate() {
            let r = 16 * j;
            if r >= rows {
                break;
            }
            let mask: __mmask16 = if rows - r >= 16 {
                0xffff
            } else {
                (1u16 << (rows - r)) - 1
            };
            // SAFETY: lanes of rows `r..min(r + 16, rows)` of dst row `b` only.
            unsafe {
                let d = dst.add(b * dst_rs + r);
                let out = if accumulate {
                    _mm512_add_ps(a, _mm512_maskz_loadu_ps(mask, d))
                } else {
                    a
                };
                _mm512_mask_storeu_ps(d, mask, out);
            }
        }
    }
}

/// Whether the CPU has AVX-512F (the strip kernel).
fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Lets single-threaded `gemm` calls (the fallback without AVX-512) use a contiguous left operand
/// in place up to 16 register blocks of columns (the threshold `gemm` already uses for
/// multi-threaded calls) instead of 8: below it, the per-strip products re-packed it at every
/// step. Process-wide; only ever raised, never lowered.
fn raise_packing_threshold() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let multi = gemm::get_lhs_packing_threshold_multi_thread();
        if gemm::get_lhs_packing_threshold_single_thread() < multi {
            gemm::set_lhs_packing_threshold_single_thread(multi);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed products equal the naive ones, for both stride orders, with and without
    /// accumulation, with a partial last strip (and a partial register in it), for batches
    /// below, at and above one pass of the kernel (6 vectors), `k` within and across blocks.
    #[test]
    fn packed_product_matches_naive() {
        for (batch, k) in [(3, 9), (6, 9), (13, 9), (7, 300)] {
            packed_product_matches_naive_at(batch, k);
        }
    }

    fn packed_product_matches_naive_at(batch: usize, k: usize) {
        let rows = 70;
        let m: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let v_rs = k + 2;
        let v: Vec<f32> = (0..batch * v_rs)
            .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
            .collect();
        for transposed in [false, true] {
            // M[r, c] = m[r * k + c], or its transpose's storage for the same logical M.
            let (src, rs, cs) = if transposed {
                let mut t = vec![0.0f32; rows * k];
                for r in 0..rows {
                    for c in 0..k {
                        t[c * rows + r] = m[r * k + c];
                    }
                }
                (t, 1, rows)
            } else {
                (m.clone(), k, 1)
            };
            let p = PackedMatrix::new(&src, rows, k, rs, cs);
            // The AVX-512 kernel where the CPU has it, and `gemm` everywhere.
            let kernels: Vec<PackedMatrix> = if p.avx512 {
                vec![p, PackedMatrix::new(&src, rows, k, rs, cs).with_gemm()]
            } else {
                vec![p]
            };
            for (accumulate, p) in [(false, &kernels[0]), (true, &kernels[0])]
                .into_iter()
                .chain(kernels[1..].iter().flat_map(|p| [(false, p), (true, p)]))
            {
                let avx512 = p.avx512;
                let dst_rs = rows + 5;
                let mut dst = vec![0.5f32; batch * dst_rs];
                let (vp, d) = (v.as_ptr(), dst.as_mut_ptr());
                // SAFETY: sizes as documented.
                unsafe { p.apply(batch, vp, v_rs, d, dst_rs, accumulate) };
                for b in 0..batch {
                    for r in 0..rows {
                        let want: f32 = (0..k).map(|c| m[r * k + c] * v[b * v_rs + c]).sum::<f32>()
                            + if accumulate { 0.5 } else { 0.0 };
                        let got = dst[b * dst_rs + r];
                        assert!(
                            (got - want).abs() < 1e-4,
                            "{b},{r} k={k} avx512={avx512}: {got} vs {want}"
                        );
                    }
                    // Padding columns untouched.
                    assert!(
                        dst[b * dst_rs + rows..(b + 1) * dst_rs]
                            .iter()
                            .all(|&x| x == 0.5)
                    );
                }
            }
        }
    }
}
