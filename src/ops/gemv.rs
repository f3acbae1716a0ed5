//! The recurrent product for small batches: a row-streaming matrix-vector kernel.
//!
//! At batch 1 (classifying one long document) the per-step product `gates[b, :] += W h[b, :]` is
//! memory-bound: it reads all of `W [rows, k]` (21 MB for a 1152-unit AWD-LSTM layer) to do two
//! flops per weight. `gemm` with one left-hand row wastes most of its blocking on that shape, and
//! the packed panels of [`PackedMatrix`](super::packed::PackedMatrix) are no better. Here `W` is
//! read once per step in its natural row-major (PyTorch) layout: a few rows per pass, each loaded
//! once for up to [`MAX_BATCH`] vectors `h[b]`, each load of `h` shared by those rows, and the rows
//! split over the rayon pool when the matrix is large enough.
//!
//! `W` may be `f32` or `bf16` ([`WeightElem`]); `bf16` halves the bytes streamed per step. A
//! `bf16` widens to `f32` exactly (its bits are the upper half of an `f32`), products and sums are
//! in `f32`, so the only precision lost is the rounding of the weights to bf16's 8-bit mantissa
//! (relative error at most 2^-9 per weight).
//!
//! The AVX-512 pass uses intrinsics (16 lanes, one `__m512` accumulator per row and vector); the
//! AVX2 + FMA and portable variants compile the same pass written on fixed-size lane arrays (LLVM
//! vectorises those only partly: slower, but correct). The variant is picked at run time.

use burn::tensor::bf16;
use rayon::prelude::*;

/// Most vectors per pass over the weight (larger batches use `gemm`).
pub const MAX_BATCH: usize = 4;

/// Rows of `W` per pass: each load of `h` serves this many rows.
pub(super) const ROWS: usize = 4;

/// Multiply-adds per step from which the rows are split over the rayon pool (below it, waking the
/// pool costs more than it saves).
const SPLIT_MIN: usize = 1 << 16;

/// An element type of the weight: converted to `f32` as it is loaded.
pub trait WeightElem: Copy + Send + Sync + 'static {
    /// The value as `f32` (exact for `f32` and `bf16`).
    fn to_f32(self) -> f32;

    /// Sixteen values from `p` as `f32` lanes.
    ///
    /// # Safety
    ///
    /// `p` valid for reading 16 values; only call where AVX-512F is enabled.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load16(p: *const Self) -> core::arch::x86_64::__m512;
}

impl WeightElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> core::arch::x86_64::__m512 {
        // SAFETY: the caller's contract.
        unsafe { core::arch::x86_64::_mm512_loadu_ps(p) }
    }
}

impl WeightElem for bf16 {
    /// A bf16 is the upper half of an f32: zero-extend and shift (vectorises to a widening move
    /// and a shift, unlike `bf16::to_f32`, which handles NaN separately).
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.to_bits()) << 16)
    }

    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load16(p: *const Self) -> core::arch::x86_64::__m512 {
        use core::arch::x86_64::*;
        // SAFETY: the caller's contract; zero-extend each 16-bit value and shift it into the
        // upper half of a 32-bit lane.
        unsafe {
            _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(
                _mm256_loadu_si256(p.cast()),
            )))
        }
    }
}

/// `dst[b, r] += sum_c W[r, c] v[b, c]` for `b < batch`, `r < rows`, with `W` row-major
/// `[rows, k]`, `v` rows `v_rs` floats apart, `dst` rows `dst_rs` floats apart.
///
/// Batches above [`MAX_BATCH`] are done in groups of at most [`MAX_BATCH`] (one pass over `W`
/// each).
///
/// # Safety
///
/// `v` must be valid for reading `batch` rows of `k` floats `v_rs` apart, and `dst` valid for
/// reading and writing `batch` rows of `rows` floats `dst_rs` apart (`dst_rs >= rows`), not
/// overlapping `v`.
///
/// # Panics
///
/// If `w.len() != rows * k`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemv_acc<W: WeightElem>(
    w: &[W],
    rows: usize,
    k: usize,
    batch: usize,
    v: *const f32,
    v_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    assert_eq!(w.len(), rows * k, "gemv: weight size");
    let (v, dst) = (Ptr(v as *mut f32), Ptr(dst));
    for_row_chunks(rows, k, batch, |r, b0, nb| {
        // SAFETY: the caller's contract; this task writes only columns `r` of rows `b0..b0 + nb`
        // of dst, disjoint from every other task.
        unsafe {
            dispatch(
                w,
                k,
                r,
                nb,
                v.get().add(b0 * v_rs),
                v_rs,
                dst.get().add(b0 * dst_rs),
                dst_rs,
            )
        };
    });
}

/// Calls `run(rows_range, b0, nb)` over groups of at most [`MAX_BATCH`] vectors (one pass over
/// the weight each) and, when the product is large enough, chunks of rows spread over the rayon
/// pool (a few per thread, so a busy core does not hold up the step).
pub(super) fn for_row_chunks(
    rows: usize,
    k: usize,
    batch: usize,
    run: impl Fn(core::ops::Range<usize>, usize, usize) + Sync,
) {
    if rows == 0 || batch == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    let split = threads > 1 && rows * k * batch.min(MAX_BATCH) >= SPLIT_MIN;
    let chunk = if split {
        rows.div_ceil(4 * threads).next_multiple_of(4 * ROWS)
    } else {
        rows
    };
    for b0 in (0..batch).step_by(MAX_BATCH) {
        let nb = (batch - b0).min(MAX_BATCH);
        let task = |r0: usize| run(r0..(r0 + chunk).min(rows), b0, nb);
        if split {
            (0..rows.div_ceil(chunk))
                .into_par_iter()
                .for_each(|c| task(c * chunk));
        } else {
            task(0);
        }
    }
}

/// A raw pointer shared across the rayon pool (each task writes a disjoint part).
#[derive(Clone, Copy)]
pub(super) struct Ptr(pub(super) *mut f32);

impl Ptr {
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: only used for disjoint writes (see `gemv_acc`).
unsafe impl Send for Ptr {}
// SAFETY: as above.
unsafe impl Sync for Ptr {}

/// Picks the instruction set and the batch size of the kernel.
///
/// # Safety
///
/// As [`gemv_acc`], for rows `r` of `W` and `nb <= MAX_BATCH` vectors.
#[allow(clippy::too_many_arguments)]
unsafe fn dispatch<W: WeightElem>(
    w: &[W],
    k: usize,
    r: core::ops::Range<usize>,
    nb: usize,
    v: *const f32,
    v_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    macro_rules! go {
        ($nb:literal) => {{
            // SAFETY: the caller's contract.
            let h: [&[f32]; $nb] = core::array::from_fn(|b| unsafe {
                core::slice::from_raw_parts(v.add(b * v_rs), k)
            });
            let d: [*mut f32; $nb] = core::array::from_fn(|b| unsafe { dst.add(b * dst_rs) });
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F; pointers as above.
                    return unsafe { rows_avx512::<W, $nb>(w, k, r, &h, &d) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA; pointers as above.
                    return unsafe { rows_avx2::<W, $nb>(w, k, r, &h, &d) };
                }
            }
            // SAFETY: pointers as above.
            unsafe { rows_impl::<W, $nb, 8, false>(w, k, r, &h, &d) }
        }};
    }
    match nb {
        1 => go!(1),
        2 => go!(2),
        3 => go!(3),
        _ => go!(4),
    }
}

/// Rows `r` of `W` against `NB` vectors with AVX-512 intrinsics.
///
/// # Safety
///
/// As [`rows_impl`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn rows_avx512<W: WeightElem, const NB: usize>(
    w: &[W],
    k: usize,
    r: core::ops::Range<usize>,
    h: &[&[f32]; NB],
    d: &[*mut f32; NB],
) {
    assert!(r.end * k <= w.len() && h.iter().all(|v| v.len() >= k));
    let mut i = r.start;
    // SAFETY: rows `r` lie inside `w` (checked above); the caller's contract for `d`.
    unsafe {
        while i + ROWS <= r.end {
            pass_avx512::<W, NB, ROWS>(w.as_ptr().add(i * k), k, h, d, i);
            i += ROWS;
        }
        while i < r.end {
            pass_avx512::<W, NB, 1>(w.as_ptr().add(i * k), k, h, d, i);
            i += 1;
        }
    }
}

/// `d[b][row0 + q] += W[q, :] . h[b]` for `R` rows starting at `w`.
///
/// # Safety
///
/// `w` valid for `R * k` values, `h[b]` at least `k` long, `d[b]` valid at `row0 + q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pass_avx512<W: WeightElem, const NB: usize, const R: usize>(
    w: *const W,
    k: usize,
    h: &[&[f32]; NB],
    d: &[*mut f32; NB],
    row0: usize,
) {
    use core::arch::x86_64::*;
    // SAFETY: the function's contract; every access is below `k` in its row.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); NB]; R];
        let main = k - k % 16;
        let mut j = 0;
        while j < main {
            let mut wv = [_mm512_setzero_ps(); R];
            for (q, v) in wv.iter_mut().enumerate() {
                *v = W::load16(w.add(q * k + j));
            }
            for b in 0..NB {
                let hv = _mm512_loadu_ps(h[b].as_ptr().add(j));
                for q in 0..R {
                    acc[q][b] = _mm512_fmadd_ps(wv[q], hv, acc[q][b]);
                }
            }
            j += 16;
        }
        for (q, acc_q) in acc.iter().enumerate() {
            for b in 0..NB {
                let mut s = _mm512_reduce_add_ps(acc_q[b]);
                for (c, &hc) in h[b].iter().enumerate().take(k).skip(main) {
                    s += (*w.add(q * k + c)).to_f32() * hc;
                }
                *d[b].add(row0 + q) += s;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn rows_avx2<W: WeightElem, const NB: usize>(
    w: &[W],
    k: usize,
    r: core::ops::Range<usize>,
    h: &[&[f32]; NB],
    d: &[*mut f32; NB],
) {
    // SAFETY: the caller's contract.
    unsafe { rows_impl::<W, NB, 8, true>(w, k, r, h, d) }
}

/// Rows `r` of `W` against `NB` vectors: passes of [`ROWS`] rows, then single rows.
///
/// # Safety
///
/// `d[b]` valid for reading and writing `r.end` floats.
#[inline(always)]
unsafe fn rows_impl<W: WeightElem, const NB: usize, const L: usize, const FMA: bool>(
    w: &[W],
    k: usize,
    r: core::ops::Range<usize>,
    h: &[&[f32]; NB],
    d: &[*mut f32; NB],
) {
    let mut i = r.start;
    while i + ROWS <= r.end {
        let sums = pass::<W, NB, L, ROWS, FMA>(&w[i * k..(i + ROWS) * k], k, h);
        for (q, s) in sums.iter().enumerate() {
            for b in 0..NB {
                // SAFETY: the caller's contract.
                unsafe { *d[b].add(i + q) += s[b] };
            }
        }
        i += ROWS;
    }
    while i < r.end {
        let [s] = pass::<W, NB, L, 1, FMA>(&w[i * k..(i + 1) * k], k, h);
        for b in 0..NB {
            // SAFETY: the caller's contract.
            unsafe { *d[b].add(i) += s[b] };
        }
        i += 1;
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// Dot products of `R` rows (`w`, `[R, k]`) with `NB` vectors, `L` lanes wide.
#[inline(always)]
fn pass<W: WeightElem, const NB: usize, const L: usize, const R: usize, const FMA: bool>(
    w: &[W],
    k: usize,
    h: &[&[f32]; NB],
) -> [[f32; NB]; R] {
    let rows: [&[W]; R] = core::array::from_fn(|q| &w[q * k..(q + 1) * k]);
    let h: [&[f32]; NB] = core::array::from_fn(|b| &h[b][..k]);
    let mut acc = [[[0.0f32; L]; NB]; R];
    let main = k - k % L;
    let mut j = 0;
    while j < main {
        let mut wv = [[0.0f32; L]; R];
        for q in 0..R {
            let src: &[W; L] = rows[q][j..j + L].try_into().expect("L lanes");
            for l in 0..L {
                wv[q][l] = src[l].to_f32();
            }
        }
        for b in 0..NB {
            let hv: &[f32; L] = h[b][j..j + L].try_into().expect("L lanes");
            for q in 0..R {
                for l in 0..L {
                    acc[q][b][l] = madd::<FMA>(wv[q][l], hv[l], acc[q][b][l]);
                }
            }
        }
        j += L;
    }
    let mut out = [[0.0f32; NB]; R];
    for q in 0..R {
        for b in 0..NB {
            // Pairwise sum of the lanes, then the tail.
            let a = &mut acc[q][b];
            let mut half = L / 2;
            while half > 0 {
                for l in 0..half {
                    a[l] += a[l + half];
                }
                half /= 2;
            }
            let mut s = a[0];
            for c in main..k {
                s = madd::<FMA>(rows[q][c].to_f32(), h[b][c], s);
            }
            out[q][b] = s;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    use crate::test_util::values as vals;

    /// Runs `product(batch, v, v_rs, dst, dst_rs)` (a `dst += W v` kernel with `W [rows, k]`) for
    /// every batch of 1 to 6 vectors, rows padded in `v` and `dst`, and checks it against a naive
    /// f64 product of `weight(r, c)` to `tol` relative, padding untouched.
    pub(crate) fn check_product(
        rows: usize,
        k: usize,
        tol: f64,
        weight: impl Fn(usize, usize) -> f64,
        product: impl Fn(usize, *const f32, usize, *mut f32, usize),
    ) {
        for batch in 1..=6 {
            let (v_rs, dst_rs) = (k + 3, rows + 2);
            let v = vals(batch * v_rs, 2);
            let mut dst = vals(batch * dst_rs, 3);
            let before = dst.clone();
            product(batch, v.as_ptr(), v_rs, dst.as_mut_ptr(), dst_rs);
            for b in 0..batch {
                for r in 0..rows {
                    let want = f64::from(before[b * dst_rs + r])
                        + (0..k)
                            .map(|c| weight(r, c) * f64::from(v[b * v_rs + c]))
                            .sum::<f64>();
                    let got = f64::from(dst[b * dst_rs + r]);
                    assert!(
                        (got - want).abs() < tol * (1.0 + want.abs()),
                        "{rows}x{k} b={batch} [{b},{r}]: {got} vs {want}"
                    );
                }
                assert_eq!(
                    dst[b * dst_rs + rows..(b + 1) * dst_rs],
                    before[b * dst_rs + rows..(b + 1) * dst_rs],
                    "padding untouched"
                );
            }
        }
    }

    /// Every instruction-set variant, every batch size, odd sizes (tails of rows and lanes), with
    /// and without the split over the pool, against a naive f64 product; bf16 weights against the
    /// same product of the rounded weights.
    #[test]
    fn gemv_matches_naive() {
        for &(rows, k) in &[(1, 1), (7, 37), (148, 37), (64, 300), (1024, 64)] {
            let w = vals(rows * k, 1);
            let w16: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
            let exact = |r: usize, c: usize| f64::from(w[r * k + c]);
            let rounded = |r: usize, c: usize| f64::from(w16[r * k + c].to_f32());
            // SAFETY (both): `check_product` passes buffers of the sizes it documents.
            check_product(rows, k, 1e-5, exact, |b, v, v_rs, d, d_rs| unsafe {
                gemv_acc(&w, rows, k, b, v, v_rs, d, d_rs)
            });
            check_product(rows, k, 1e-5, rounded, |b, v, v_rs, d, d_rs| unsafe {
                gemv_acc(&w16, rows, k, b, v, v_rs, d, d_rs)
            });
        }
    }

    /// The portable variant agrees with the one the CPU runs (the test above covers only that).
    #[test]
    fn portable_variant_matches() {
        let (rows, k) = (9, 45);
        let w = vals(rows * k, 4);
        let h0 = vals(k, 5);
        let h1 = vals(k, 6);
        let (mut a, mut b) = (vec![0.0f32; 2 * rows], vec![0.0f32; 2 * rows]);
        let (a0, a1) = a.split_at_mut(rows);
        let (b0, b1) = b.split_at_mut(rows);
        unsafe {
            rows_impl::<f32, 2, 8, false>(
                &w,
                k,
                0..rows,
                &[&h0, &h1],
                &[a0.as_mut_ptr(), a1.as_mut_ptr()],
            );
            dispatch(&w, k, 0..rows, 1, h0.as_ptr(), 0, b0.as_mut_ptr(), 0);
            dispatch(&w, k, 0..rows, 1, h1.as_ptr(), 0, b1.as_mut_ptr(), 0);
        }
        crate::test_util::assert_close(&a, &b, 1e-5, "portable");
    }
}
