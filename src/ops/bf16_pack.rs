//! AVX-512 forms of the two operand preparations of [`amx`](super::amx): packing a strided
//! `f32` weight into bf16 tiles, and rounding a transposed left operand into bf16 rows.
//!
//! Both read a matrix across its rows. Element by element (the portable code in `amx`) that is
//! a load, six integer operations and a 2-byte store per value, and it was 14 % of a TREC-6
//! training step under bf16 autocast, more than the backward's tile products it fed. Here
//! sixteen values move at once: a column of a block is one load when the rows are contiguous,
//! else one gather, then rounded in 32-bit lanes and narrowed.
//!
//! The rounding is [`amx`](super::amx)'s (nearest, ties to even, NaN kept as a quiet NaN,
//! subnormals kept), done on the integer bits: `vcvtneps2bf16` would flush subnormals to zero.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Whether this CPU runs the functions of this module (AVX-512 F and BW).
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether a stride keeps the gather offsets of 16 rows within `i32`.
pub(super) fn gather_fits(stride: usize) -> bool {
    stride <= i32::MAX as usize / 16
}

/// Sixteen `f32` rounded to bf16, each in the low half of its 32-bit lane.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn round16(x: __m512) -> __m512i {
    let b = _mm512_castps_si512(x);
    let high = _mm512_srli_epi32::<16>(b);
    let lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb);
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
    let nan = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
    let is_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(x, x);
    _mm512_mask_mov_epi32(rounded, is_nan, nan)
}

/// `x[j] = p[j * stride]` for `j < n` (zero above), `n <= 16`, one load when `stride` is 1.
///
/// # Safety
///
/// AVX-512F; `p` valid for the `n` elements; `stride` as [`gather_fits`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load16(p: *const f32, stride: usize, n: usize) -> __m512 {
    let mask = ((1u32 << n) - 1) as __mmask16;
    // SAFETY: the caller's contract; masked-off lanes are not read.
    unsafe {
        if stride == 1 {
            _mm512_maskz_loadu_ps(mask, p)
        } else {
            let s = stride as i32;
            let idx = _mm512_mullo_epi32(
                _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                _mm512_set1_epi32(s),
            );
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), mask, idx, p)
        }
    }
}

/// Packs rows `row0..row0 + 16 * blocks` of `W [n, k]` (`W[r, c] = w[r * r_stride + c *
/// c_stride]`) into `dst`: per block of 16 rows, `k_blocks` tiles of 16 rows of column pairs
/// (`tile[p][r][j] = W[r][2p + j]`), as `amx::AmxWeight` lays them out. Rows at or past `n` and
/// columns past `k` are left as they are in `dst` (zero).
///
/// # Safety
///
/// [`available`]; `w` valid for every element of rows `row0..n` the strides address;
/// `dst.len() >= blocks * k_blocks * 512` with `k_blocks = k.div_ceil(32)`; both strides as
/// [`gather_fits`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn pack_blocks(
    w: *const f32,
    (n, k): (usize, usize),
    (r_stride, c_stride): (usize, usize),
    row0: usize,
    blocks: usize,
    dst: &mut [u16],
) {
    let block_len = k.div_ceil(32) * 512;
    assert!(dst.len() >= blocks * block_len, "pack_blocks: destination");
    let pairs = k.div_ceil(2);
    let rows = |b: usize| n.saturating_sub(row0 + 16 * b).min(16);
    // Walk along whichever index of `w` is contiguous.
    // SAFETY (both loops): the caller's contract.
    if r_stride == 1 {
        for p in 0..pairs {
            for b in (0..blocks).take_while(|&b| rows(b) > 0) {
                unsafe {
                    pack_pair(
                        w,
                        (k, r_stride, c_stride),
                        (row0 + 16 * b, rows(b)),
                        p,
                        &mut dst[b * block_len..],
                    )
                };
            }
        }
    } else {
        for b in (0..blocks).take_while(|&b| rows(b) > 0) {
            for p in 0..pairs {
                unsafe {
                    pack_pair(
                        w,
                        (k, r_stride, c_stride),
                        (row0 + 16 * b, rows(b)),
                        p,
                        &mut dst[b * block_len..],
                    )
                };
            }
        }
    }
}

/// Row `p % 16` of tile `p / 16` of one block: columns `2p` and `2p + 1` of rows
/// `r0..r0 + rows` (`rows <= 16`).
///
/// # Safety
///
/// As [`pack_blocks`], `dst` starting at the block.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn pack_pair(
    w: *const f32,
    (k, r_stride, c_stride): (usize, usize, usize),
    (r0, rows): (usize, usize),
    p: usize,
    dst: &mut [u16],
) {
    let c = 2 * p;
    // SAFETY: rows `r0..r0 + rows` and columns `c`, `c + 1` (when `< k`) of W are in `w`.
    unsafe {
        let lo = round16(load16(w.add(r0 * r_stride + c * c_stride), r_stride, rows));
        let hi = if c + 1 < k {
            round16(load16(
                w.add(r0 * r_stride + (c + 1) * c_stride),
                r_stride,
                rows,
            ))
        } else {
            _mm512_setzero_si512()
        };
        let v = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
        let at = (p / 16) * 512 + (p % 16) * 32;
        _mm512_storeu_si512(dst[at..at + 32].as_mut_ptr().cast(), v);
    }
}

/// `a[i * kp + c] = bf16(v[(row0 + i) * v_rs + c * v_cs])` for `i < rows`, `c < k`: a strided
/// (typically transposed) left operand rounded into bf16 rows of `kp >= k.next_multiple_of(16)`.
///
/// # Safety
///
/// [`available`]; `v` valid for every element the strides address; `a.len() >= rows * kp`;
/// `v_cs` as [`gather_fits`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn round_rows_strided(
    v: *const f32,
    (v_rs, v_cs): (usize, usize),
    (row0, rows, k, kp): (usize, usize, usize, usize),
    a: &mut [u16],
) {
    assert!(
        kp >= k.next_multiple_of(16) && a.len() >= rows * kp,
        "round_rows_strided: destination"
    );
    // Sixteen columns for every row, then the next sixteen: the lines of those columns stay
    // in L1 while the rows move along them.
    for c0 in (0..k).step_by(16) {
        let cn = (k - c0).min(16);
        for i in 0..rows {
            // SAFETY: row `row0 + i`, columns `c0..c0 + cn` of v; 16 values of a's row `i`
            // from `c0 <= kp - 16`.
            unsafe {
                let x = load16(v.add((row0 + i) * v_rs + c0 * v_cs), v_cs, cn);
                let bits = _mm512_cvtepi32_epi16(round16(x));
                _mm256_storeu_si256(a[i * kp + c0..][..16].as_mut_ptr().cast(), bits);
            }
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::test_util::values;
    use burn::tensor::bf16;

    fn bits(x: f32) -> u16 {
        let b = bf16::from_f32(x);
        // `half` keeps a NaN's payload; ours sets the quiet bit the same way.
        if x.is_nan() {
            b.to_bits() | 0x40
        } else {
            b.to_bits()
        }
    }

    /// Values with NaN, infinities, subnormals and exact ties mixed in.
    fn awkward(n: usize, seed: usize) -> Vec<f32> {
        let mut v = values(n, seed);
        let specials = [
            f32::NAN,
            f32::INFINITY,
            -1e-40,
            f32::from_bits(0x3f80_8000),
            f32::from_bits(0x3f81_8000),
            f32::MAX,
        ];
        for (i, s) in specials.iter().enumerate() {
            if let Some(x) = v.get_mut(i * 7) {
                *x = *s;
            }
        }
        v
    }

    /// Tiles packed sixteen values at a time hold, at `tile[p][r][j]`, `half`'s rounding of
    /// `W[r][2p + j]`, zero past the matrix, for contiguous rows (gathers) and contiguous
    /// columns (loads), partial blocks and odd `k`.
    #[test]
    fn packed_tiles_hold_rounded_weights() {
        if !available() {
            eprintln!("skipped: no AVX-512 on this machine");
            return;
        }
        for &(n, k, transposed) in &[
            (16, 32, false),
            (37, 45, false),
            (37, 45, true),
            (5, 70, true),
        ] {
            let w = awkward(n * k + 3, 3);
            let (rs, cs) = if transposed { (1, n) } else { (k, 1) };
            let blocks = n.div_ceil(16);
            let block_len = k.div_ceil(32) * 512;
            let mut dst = vec![0u16; blocks * block_len];
            // SAFETY: AVX-512 checked; sizes as documented.
            unsafe { pack_blocks(w.as_ptr(), (n, k), (rs, cs), 0, blocks, &mut dst) };
            for b in 0..blocks {
                for c in 0..k.next_multiple_of(32) {
                    for r in 0..16 {
                        let slot =
                            b * block_len + (c / 32) * 512 + (c % 32 / 2) * 32 + 2 * r + c % 2;
                        let row = 16 * b + r;
                        let want = if row < n && c < k {
                            bits(w[row * rs + c * cs])
                        } else {
                            0
                        };
                        assert_eq!(dst[slot], want, "({n},{k},{transposed}) row {row} col {c}");
                    }
                }
            }
        }
    }

    /// A transposed operand rounded into rows equals `half`'s rounding of its transpose, for
    /// row counts and widths that are not multiples of 16.
    #[test]
    fn strided_rows_are_rounded_transposes() {
        if !available() {
            eprintln!("skipped: no AVX-512 on this machine");
            return;
        }
        for &(m, k) in &[(16, 16), (21, 37), (3, 70)] {
            // v^T stored row-major as [k, m]: v[i, c] = vt[c * m + i].
            let vt = awkward(k * m, 5);
            let kp = k.next_multiple_of(32);
            let (row0, rows) = (1, m - 1);
            let mut a = vec![7u16; rows * kp];
            // SAFETY: AVX-512 checked; sizes as documented.
            unsafe { round_rows_strided(vt.as_ptr(), (1, m), (row0, rows, k, kp), &mut a) };
            for i in 0..rows {
                for c in 0..k.next_multiple_of(16) {
                    let want = if c < k { bits(vt[c * m + row0 + i]) } else { 0 };
                    assert_eq!(a[i * kp + c], want, "({m},{k}) row {i} col {c}");
                }
            }
        }
    }
}
