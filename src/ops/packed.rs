//! A weight matrix packed once into the panels `gemm` multiplies without re-packing.
//!
//! `gemm` packs an operand at every call unless it is already "column-major" with a contiguous
//! column of at most one panel; the LSTM multiplies the same recurrent weight at every time step,
//! so re-packing it 70 times per sequence costs as much as a large part of the products. Here the
//! weight `M [rows, k]` is split once into panels of `panel` rows, each stored column by column
//! (`panel * k` contiguous floats); one product per step is then one `gemm` call per panel, with
//! the panels shared across the rayon pool.

use gemm::{Parallelism, gemm};
use rayon::prelude::*;

/// `M [rows, k]` in column-major panels of at most `panel` rows.
pub struct PackedMatrix {
    rows: usize,
    k: usize,
    panel: usize,
    data: Vec<f32>,
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
        let threads = rayon::current_num_threads().max(1);
        // A few panels per thread, a multiple of 16 rows (one AVX-512 register), at most 256.
        let panel = rows
            .div_ceil(4 * threads)
            .next_multiple_of(16)
            .clamp(16, 256)
            .min(rows.next_multiple_of(16));
        let mut data = vec![0.0f32; rows * k];
        data.par_chunks_mut(panel * k)
            .enumerate()
            .for_each(|(p, dst)| {
                let r0 = p * panel;
                let n = dst.len() / k;
                if r_stride == 1 {
                    // Columns of M are contiguous in src.
                    for c in 0..k {
                        let s = &src[r0 + c * c_stride..][..n];
                        dst[c * n..(c + 1) * n].copy_from_slice(s);
                    }
                } else {
                    for r in 0..n {
                        let row = &src[(r0 + r) * r_stride..];
                        for c in 0..k {
                            dst[c * n + r] = row[c * c_stride];
                        }
                    }
                }
            });
        Self {
            rows,
            k,
            panel,
            data,
        }
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
        let (v, dst) = (SendPtr(v as *mut f32), SendPtr(dst));
        let n_panels = self.rows.div_ceil(self.panel);
        let run = |p: usize| {
            let r0 = p * self.panel;
            let n = self.panel.min(self.rows - r0);
            let panel = &self.data[r0 * self.k..(r0 + n) * self.k];
            // SAFETY: the caller's contract; panel `p` writes only columns `r0..r0 + n` of dst,
            // so concurrent panels touch disjoint memory.
            unsafe {
                gemm(
                    batch,
                    n,
                    self.k,
                    dst.get().add(r0),
                    1,
                    dst_rs as isize,
                    accumulate,
                    v.get(),
                    1,
                    v_rs as isize,
                    panel.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    Parallelism::None,
                );
            }
        };
        if n_panels > 1 && rayon::current_num_threads() > 1 {
            (0..n_panels).into_par_iter().for_each(run);
        } else {
            (0..n_panels).for_each(run);
        }
    }
}

/// Lets single-threaded `gemm` calls use a contiguous left operand in place up to 16 register
/// blocks of columns (the threshold `gemm` already uses for multi-threaded calls) instead of 8:
/// below it, the per-panel products re-packed every panel at every step for a batch of 64
/// (11 % of an LSTM forward in `perf`). Process-wide; only ever raised, never lowered.
fn raise_packing_threshold() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let multi = gemm::get_lhs_packing_threshold_multi_thread();
        if gemm::get_lhs_packing_threshold_single_thread() < multi {
            gemm::set_lhs_packing_threshold_single_thread(multi);
        }
    });
}

/// A raw pointer shared across the rayon pool (each task writes a disjoint part).
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);

impl SendPtr {
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: only used for disjoint writes (see `PackedMatrix::apply`).
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed products equal the naive ones, for both stride orders, with and without
    /// accumulation, with a partial last panel.
    #[test]
    fn packed_product_matches_naive() {
        let (rows, k, batch) = (70, 9, 3);
        let m: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let v: Vec<f32> = (0..batch * 11)
            .map(|i| ((i * 13 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let v_rs = 11;
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
            for accumulate in [false, true] {
                let dst_rs = rows + 5;
                let mut dst = vec![0.5f32; batch * dst_rs];
                unsafe {
                    p.apply(
                        batch,
                        v.as_ptr(),
                        v_rs,
                        dst.as_mut_ptr(),
                        dst_rs,
                        accumulate,
                    )
                };
                for b in 0..batch {
                    for r in 0..rows {
                        let want: f32 = (0..k).map(|c| m[r * k + c] * v[b * v_rs + c]).sum::<f32>()
                            + if accumulate { 0.5 } else { 0.0 };
                        let got = dst[b * dst_rs + r];
                        assert!((got - want).abs() < 1e-4, "{b},{r}: {got} vs {want}");
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
