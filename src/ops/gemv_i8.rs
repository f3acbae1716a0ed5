//! The row-streaming recurrent product with int8 weights (inference at batch 1).
//!
//! The same product as [`gemv_acc`](super::gemv::gemv_acc), `dst[b, r] += sum_c W[r, c] v[b,
//! c]`, with `W` stored as int8 values `q` and one `f32` scale per block of `block` consecutive
//! weights of a row: `W[r, c] = q[r, c] * scale[r, c / block]` (burn's symmetric `Q8S` scheme
//! with blocks `[1, block]`). A quarter of the bytes of `f32`, half of bf16's: at batch 1 the
//! product is bound by reading the weight, so the step runs up to twice as fast as with bf16.
//!
//! Products and sums are `f32`: each block's dot product with the int8 values (widened exactly
//! to `f32`) is multiplied by its scale once. The only precision lost is the rounding of the
//! weights to 255 levels per block (see [`crate::nn::int8_recurrent_weights`]).
//!
//! AVX-512 intrinsics where the CPU has them (fastest when `block` is a multiple of 16, the
//! lanes of a register; other blocks end in a masked load); otherwise a scalar pass (slow, but
//! correct).

use super::gemv::{MAX_BATCH, Ptr, ROWS, for_row_chunks};

/// Int8 weights with block scales: `W[r, c] = q[r * k + c] * scales[r * (k / block) + c / block]`.
#[derive(Clone, Copy, Debug)]
pub struct I8Weight<'a> {
    /// The int8 values, row-major `[rows, k]`.
    pub q: &'a [i8],
    /// One scale per block, row-major `[rows, k / block]`.
    pub scales: &'a [f32],
    /// Weights per block (divides `k`).
    pub block: usize,
}

/// `dst[b, r] += sum_c W[r, c] v[b, c]` for `b < batch`, `r < rows`, with the int8 weight `w`
/// (`[rows, k]`), `v` rows `v_rs` floats apart, `dst` rows `dst_rs` floats apart.
///
/// # Safety
///
/// As [`gemv_acc`](super::gemv::gemv_acc).
///
/// # Panics
///
/// If the sizes of `w` do not match `rows`, `k` and its block.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemv_acc_i8(
    w: I8Weight<'_>,
    rows: usize,
    k: usize,
    batch: usize,
    v: *const f32,
    v_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    assert!(
        w.block > 0 && k.is_multiple_of(w.block),
        "gemv_i8: block {} does not divide {k}",
        w.block
    );
    assert_eq!(w.q.len(), rows * k, "gemv_i8: weight size");
    assert_eq!(w.scales.len(), rows * (k / w.block), "gemv_i8: scales");
    let (v, dst) = (Ptr(v as *mut f32), Ptr(dst));
    for_row_chunks(rows, k, batch, |r, b0, nb| {
        debug_assert!(nb <= MAX_BATCH);
        for b in b0..b0 + nb {
            // SAFETY: the caller's contract; this task writes only columns `r` of row `b` of dst.
            let (v, d) = unsafe { (v.get().add(b * v_rs), dst.get().add(b * dst_rs)) };
            // SAFETY: as above: `v` holds `k` floats.
            let v = unsafe { core::slice::from_raw_parts(v, k) };
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                // SAFETY: the CPU has AVX-512F and BW; sizes checked above.
                unsafe { rows_avx512(w, k, r.clone(), v, d) };
                continue;
            }
            // SAFETY: as above.
            unsafe { rows_scalar(w, k, r.clone(), v, d) };
        }
    });
}

/// Rows `r` against one vector, scalar.
///
/// # Safety
///
/// `d` valid for reading and writing `r.end` floats.
unsafe fn rows_scalar(
    w: I8Weight<'_>,
    k: usize,
    r: core::ops::Range<usize>,
    v: &[f32],
    d: *mut f32,
) {
    let nblk = k / w.block;
    for row in r {
        let q = &w.q[row * k..(row + 1) * k];
        let mut total = 0.0f32;
        for (blk, scale) in w.scales[row * nblk..(row + 1) * nblk].iter().enumerate() {
            let cols = blk * w.block..(blk + 1) * w.block;
            let dot: f32 = q[cols.clone()]
                .iter()
                .zip(&v[cols])
                .map(|(&q, &x)| f32::from(q) * x)
                .sum();
            total += dot * scale;
        }
        // SAFETY: the caller's contract.
        unsafe { *d.add(row) += total };
    }
}

/// Rows `r` against one vector with AVX-512: [`ROWS`] rows per pass, each load of `v` shared by
/// them.
///
/// # Safety
///
/// The CPU has AVX-512F and BW, `d` valid for reading and writing `r.end` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn rows_avx512(
    w: I8Weight<'_>,
    k: usize,
    r: core::ops::Range<usize>,
    v: &[f32],
    d: *mut f32,
) {
    assert!(r.end * k <= w.q.len() && v.len() >= k);
    let mut i = r.start;
    // SAFETY: rows `r` lie inside `w` (checked above); the caller's contract for `d`.
    unsafe {
        while i + ROWS <= r.end {
            pass_avx512::<ROWS>(w, k, i, v, d);
            i += ROWS;
        }
        while i < r.end {
            pass_avx512::<1>(w, k, i, v, d);
            i += 1;
        }
    }
}

/// `d[row0 + q] += W[row0 + q, :] . v` for `R` rows.
///
/// # Safety
///
/// As [`rows_avx512`], rows `row0..row0 + R` inside `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn pass_avx512<const R: usize>(
    w: I8Weight<'_>,
    k: usize,
    row0: usize,
    v: &[f32],
    d: *mut f32,
) {
    use core::arch::x86_64::*;
    let nblk = k / w.block;
    let q0 = w.q.as_ptr().wrapping_add(row0 * k);
    // SAFETY: the function's contract; every access is below `k` in its row.
    unsafe {
        let mut total = [_mm512_setzero_ps(); R];
        for blk in 0..nblk {
            let mut acc = [_mm512_setzero_ps(); R];
            let mut j = blk * w.block;
            let end = j + w.block;
            while j + 16 <= end {
                let x = _mm512_loadu_ps(v.as_ptr().add(j));
                for (q, a) in acc.iter_mut().enumerate() {
                    let packed = _mm_loadu_si128(q0.add(q * k + j).cast());
                    let wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(packed));
                    *a = _mm512_fmadd_ps(wv, x, *a);
                }
                j += 16;
            }
            if j < end {
                // The block's last `end - j < 16` weights: masked loads, zeros elsewhere.
                let m: __mmask16 = (1u16 << (end - j)) - 1;
                let x = _mm512_maskz_loadu_ps(m, v.as_ptr().add(j));
                for (q, a) in acc.iter_mut().enumerate() {
                    let packed = _mm_maskz_loadu_epi8(m, q0.add(q * k + j).cast());
                    let wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(packed));
                    *a = _mm512_fmadd_ps(wv, x, *a);
                }
            }
            for (q, t) in total.iter_mut().enumerate() {
                let scale = _mm512_set1_ps(*w.scales.get_unchecked((row0 + q) * nblk + blk));
                *t = _mm512_fmadd_ps(acc[q], scale, *t);
            }
        }
        for (q, t) in total.iter().enumerate() {
            *d.add(row0 + q) += _mm512_reduce_add_ps(*t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gemv::tests::check_product;

    use crate::test_util::values as vals;

    /// Against a naive f64 product of the dequantized weight: blocks of whole registers, blocks
    /// with a masked tail (15, 40), every batch size, with and without the split over the pool;
    /// and the scalar pass on its own.
    #[test]
    fn gemv_i8_matches_dequantized() {
        for &(rows, k, block) in &[(5, 48, 16), (9, 45, 15), (148, 80, 40), (1024, 96, 48)] {
            let q: Vec<i8> = (0..rows * k)
                .map(|i| ((i * 37 + 11) % 255) as i32 - 127)
                .map(|x| x as i8)
                .collect();
            let scales: Vec<f32> = vals(rows * (k / block), 1)
                .iter()
                .map(|s| s.abs() / 100.0 + 1e-3)
                .collect();
            let w = I8Weight {
                q: &q,
                scales: &scales,
                block,
            };
            let deq = |r: usize, c: usize| {
                f64::from(q[r * k + c]) * f64::from(scales[r * (k / block) + c / block])
            };
            // SAFETY: `check_product` passes buffers of the sizes it documents.
            check_product(rows, k, 1e-4, deq, |b, v, v_rs, d, d_rs| unsafe {
                gemv_acc_i8(w, rows, k, b, v, v_rs, d, d_rs)
            });
        }
    }

    #[test]
    fn scalar_pass_matches_dispatched() {
        let (rows, k, block) = (9, 120, 40);
        let q: Vec<i8> = (0..rows * k).map(|i| (i % 251) as i8).collect();
        let scales = vals(rows * k / block, 7);
        let w = I8Weight {
            q: &q,
            scales: &scales,
            block,
        };
        let v = vals(k, 8);
        let (mut a, mut b) = (vec![0.0f32; rows], vec![0.0f32; rows]);
        unsafe {
            rows_scalar(w, k, 0..rows, &v, a.as_mut_ptr());
            gemv_acc_i8(w, rows, k, 1, v.as_ptr(), k, b.as_mut_ptr(), rows);
        }
        crate::test_util::assert_close(&a, &b, 1e-3, "scalar");
    }

    #[test]
    #[should_panic(expected = "does not divide")]
    fn block_must_divide_k() {
        let q = vec![0i8; 10];
        let w = I8Weight {
            q: &q,
            scales: &[1.0; 4],
            block: 4,
        };
        let mut d = [0.0f32; 1];
        unsafe { gemv_acc_i8(w, 1, 10, 1, [0.0f32; 10].as_ptr(), 10, d.as_mut_ptr(), 1) };
    }
}
