//! The row-streaming recurrent product with int8 weights (inference at batch 1).
//!
//! The same product as [`gemv_acc`](super::gemv::gemv_acc), `dst[b, r] += sum_c W[r, c] v[b,
//! c]`, with `W` stored as int8 values `q` and one `f32` scale per block of `block` consecutive
//! weights of a row: `W[r, c] = q[r, c] * scale[r, c / block]` (burn's symmetric `Q8S` scheme
//! with blocks `[1, block]`). A quarter of the bytes of `f32`, half of bf16's: at batch 1 the
//! product is bound by reading the weight, so the step runs up to twice as fast as with bf16.
//!
//! Three variants, picked at run time:
//!
//! - AVX512-VNNI (Intel Xeon since Cascade Lake, AMD Zen 4 and 5): each step's vector is rounded to
//!   16-bit integers with its own scale (`max |v| / 32767`, a relative step of 3e-5), each block's
//!   dot product is summed exactly in 32-bit integers (`vpdpwssd`, 32 multiply-adds per
//!   instruction), then multiplied by the block's scale and the vector's in `f32`. The vector's
//!   rounding is far below the weights' (see [`crate::nn::int8_recurrent_weights`]); this is
//!   what makes int8 faster than bf16 (`clas_infer_b1`: 7.4-8.0 docs/s against 5.3-5.5, same
//!   minutes).
//! - AVX-512 without VNNI: the int8 values are widened to `f32` and multiplied in `f32`; each
//!   block's sum is scaled once. Two extra instructions per 16 weights make it about as fast as
//!   bf16.
//! - Elsewhere a scalar pass in `f32` (slow, but correct).
//!
//! Blocks that are not whole registers end in masked loads.

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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
    {
        // SAFETY: the caller's contract; the CPU has the features.
        return unsafe { gemv_vnni(w, rows, k, batch, v, v_rs, dst, dst_rs) };
    }
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

/// Most magnitude of a vector rounded to 16 bits for [`gemv_vnni`].
const I16_MAX: f32 = 32767.0;

/// [`gemv_acc_i8`] with integer products (AVX512-VNNI `vpdpwssd`, 32 multiply-adds per
/// instruction): each vector is rounded to 16-bit integers with its own scale (`max |v| /
/// 32767`, a relative step of 3e-5, far below the weights' rounding), each block's dot product
/// is summed exactly in 32-bit integers (at most 255 * 127 * 32767 < 2^31), then scaled in `f32`.
///
/// # Safety
///
/// As [`gemv_acc_i8`]; the CPU has AVX-512F, BW and VNNI.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn gemv_vnni(
    w: I8Weight<'_>,
    rows: usize,
    k: usize,
    batch: usize,
    v: *const f32,
    v_rs: usize,
    dst: *mut f32,
    dst_rs: usize,
) {
    let mut vq = vec![0i16; batch * k];
    let mut vs = vec![0.0f32; batch];
    for b in 0..batch {
        // SAFETY: the caller's contract: row `b` of `v` holds `k` floats.
        let v = unsafe { core::slice::from_raw_parts(v.add(b * v_rs), k) };
        let peak = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = if peak > 0.0 && peak.is_finite() {
            peak / I16_MAX
        } else {
            1.0
        };
        for (q, x) in vq[b * k..(b + 1) * k].iter_mut().zip(v) {
            *q = (x / scale).round().clamp(-I16_MAX, I16_MAX) as i16;
        }
        vs[b] = scale;
    }
    let dst = Ptr(dst);
    let (vq, vs) = (&vq, &vs);
    for_row_chunks(rows, k, batch, |r, b0, nb| {
        for b in b0..b0 + nb {
            // SAFETY: the caller's contract; this task writes only columns `r` of row `b`.
            let d = unsafe { dst.get().add(b * dst_rs) };
            let x = &vq[b * k..(b + 1) * k];
            // SAFETY: the CPU has the features (checked by the caller); sizes checked above.
            unsafe { rows_vnni(w, k, r.clone(), x, vs[b], d) };
        }
    });
}

/// Rows `r` against one 16-bit vector `x` (scale `xs`), [`ROWS`] rows per pass.
///
/// # Safety
///
/// The CPU has AVX-512F, BW and VNNI; `d` valid for reading and writing `r.end` floats.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn rows_vnni(
    w: I8Weight<'_>,
    k: usize,
    r: core::ops::Range<usize>,
    x: &[i16],
    xs: f32,
    d: *mut f32,
) {
    assert!(r.end * k <= w.q.len() && x.len() >= k);
    let mut i = r.start;
    // SAFETY: rows `r` lie inside `w` (checked above); the caller's contract for `d`.
    unsafe {
        while i + ROWS <= r.end {
            pass_vnni::<ROWS>(w, k, i, x, xs, d);
            i += ROWS;
        }
        while i < r.end {
            pass_vnni::<1>(w, k, i, x, xs, d);
            i += 1;
        }
    }
}

/// `d[row0 + q] += W[row0 + q, :] . x * xs` for `R` rows, in 32-bit integers per block.
///
/// # Safety
///
/// As [`rows_vnni`], rows `row0..row0 + R` inside `w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn pass_vnni<const R: usize>(
    w: I8Weight<'_>,
    k: usize,
    row0: usize,
    x: &[i16],
    xs: f32,
    d: *mut f32,
) {
    use core::arch::x86_64::*;
    let nblk = k / w.block;
    let q0 = w.q.as_ptr().wrapping_add(row0 * k);
    // SAFETY: the function's contract; every access is below `k` in its row.
    unsafe {
        let mut total = [_mm512_setzero_ps(); R];
        for blk in 0..nblk {
            let mut acc = [_mm512_setzero_si512(); R];
            let mut j = blk * w.block;
            let end = j + w.block;
            while j + 32 <= end {
                let xv = _mm512_loadu_si512(x.as_ptr().add(j).cast());
                for (q, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_cvtepi8_epi16(_mm256_loadu_si256(q0.add(q * k + j).cast()));
                    *a = _mm512_dpwssd_epi32(*a, wv, xv);
                }
                j += 32;
            }
            if j < end {
                // The block's last `end - j < 32` weights: masked loads, zeros elsewhere.
                let m: __mmask32 = (1u32 << (end - j)) - 1;
                let xv = _mm512_maskz_loadu_epi16(m, x.as_ptr().add(j));
                for (q, a) in acc.iter_mut().enumerate() {
                    let packed = _mm256_maskz_loadu_epi8(m, q0.add(q * k + j).cast());
                    *a = _mm512_dpwssd_epi32(*a, _mm512_cvtepi8_epi16(packed), xv);
                }
            }
            for (q, t) in total.iter_mut().enumerate() {
                let scale = _mm512_set1_ps(*w.scales.get_unchecked((row0 + q) * nblk + blk));
                *t = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[q]), scale, *t);
            }
        }
        for (q, t) in total.iter().enumerate() {
            *d.add(row0 + q) += _mm512_reduce_add_ps(*t) * xs;
        }
    }
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

    /// The three variants on one product (blocks of 40: whole registers and masked tails): the
    /// AVX-512 pass in f32 and the scalar pass agree to f32 rounding; the VNNI pass, which rounds
    /// the vector to 16 bits, is within that rounding's bound, `sum |w| * max |v| / 65534` per row.
    #[test]
    fn variants_agree() {
        let (rows, k, block) = (9, 120, 40);
        let q: Vec<i8> = (0..rows * k).map(|i| (i % 251) as i8).collect();
        let scales = vals(rows * k / block, 7);
        let w = I8Weight {
            q: &q,
            scales: &scales,
            block,
        };
        let v = vals(k, 8);
        let mut scalar = vec![0.0f32; rows];
        unsafe { rows_scalar(w, k, 0..rows, &v, scalar.as_mut_ptr()) };
        let peak = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let bound = |r: usize| -> f32 {
            (0..k)
                .map(|c| (f32::from(q[r * k + c]) * scales[(r * k + c) / block]).abs())
                .sum::<f32>()
                * peak
                / 65534.0
        };
        let close = |got: &[f32], slack: &dyn Fn(usize) -> f32, what: &str| {
            for (r, (g, s)) in got.iter().zip(&scalar).enumerate() {
                let tol = slack(r) + 1e-5 * (1.0 + s.abs());
                assert!(
                    (g - s).abs() <= tol,
                    "{what} row {r}: {g} vs {s} (tol {tol})"
                );
            }
        };
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
            {
                let mut f = vec![0.0f32; rows];
                unsafe { rows_avx512(w, k, 0..rows, &v, f.as_mut_ptr()) };
                close(&f, &|_| 0.0, "avx512");
            }
            if std::arch::is_x86_feature_detected!("avx512vnni") {
                let mut n = vec![0.0f32; rows];
                unsafe { gemv_vnni(w, rows, k, 1, v.as_ptr(), k, n.as_mut_ptr(), rows) };
                close(&n, &bound, "vnni");
                assert!(n != scalar, "the vector was rounded");
            }
        }
        let mut d = vec![0.0f32; rows];
        unsafe { gemv_acc_i8(w, rows, k, 1, v.as_ptr(), k, d.as_mut_ptr(), rows) };
        close(&d, &bound, "dispatched");
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
