//! Matrix products on Intel AMX tiles in bf16, for inference with bf16 weights at batches above
//! [`gemv::MAX_BATCH`](super::gemv::MAX_BATCH).
//!
//! From 32 documents on, classifying is bound by arithmetic, not by reading the weights, and
//! `f32` products run at what AVX-512 `FMA`s allow (about 150 GFLOP/s on two cores of the Xeon
//! this crate is measured on). Intel Xeons from Sapphire Rapids on also have AMX: eight 1 KB tile
//! registers and `tdpbf16ps`, which multiplies a 16 x 32 bf16 tile by a 32 x 16 one into a
//! 16 x 16 `f32` tile in one instruction. One product of the recurrence at batch 32 (4608 x 1152
//! weights) takes 0.64 ms on one core that way (535 GFLOP/s), bound by streaming the bf16
//! weight from L3, against about 4.5 ms in `f32` on the same core.
//!
//! # Precision
//!
//! Both operands are bf16: the weights (already, with
//! [`bf16_recurrent_weights`](crate::nn::bf16_recurrent_weights)) and, here, the vector each
//! weight multiplies (the hidden state, or the layer's input), rounded to nearest. Products are
//! exact in `f32` and summed in `f32`. So next to the row-streaming bf16 product of small batches,
//! the activations lose the same 2^-9 relative precision the weights do; the README reports the
//! accuracy this gives on TREC-6 and IMDb.
//!
//! # Availability
//!
//! [`available`] checks the CPU (`AMX-TILE` and `AMX-BF16`) and asks Linux for the tile state
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`, needed once per process). Elsewhere, or with the
//! environment variable `ULMFIT_NO_AMX` set, the callers keep their `f32` products. AMD CPUs
//! (Zen 4 and 5) have no AMX.
//!
//! # Layout
//!
//! A weight `W [n, k]` (the product is `dst += v W^T`) is packed once per call of the recurrence
//! into [`AmxWeight`]: tiles of 16 rows of `W` by 32 of its columns, each stored as `tdpbf16ps`
//! reads its right operand (16 rows of column pairs: `tile[p][r][j] = W[r][2p + j]`), the tiles
//! of one block of 16 rows contiguous along `k`. Padding rows and columns are zero.

use burn::tensor::bf16;
use rayon::prelude::*;
use std::sync::OnceLock;

use super::bf16_pack;
use super::gemv::Ptr;

/// Rows of a tile (the product's `m` and `n` per tile).
const TILE: usize = 16;

/// bf16 values along `k` in one tile row (64 bytes).
const TILE_K: usize = 32;

/// 16-bit values in one tile (1 KB).
const TILE_ELEMS: usize = TILE * TILE_K;

/// Rows of the left operand per pass over the packed weight: its bf16 rows stay in L2
/// (256 x 1152 x 2 bytes = 590 KB) while the weight streams past once.
const M_CHUNK: usize = 256;

/// Whether AMX bf16 products can run in this process (checked and enabled once).
pub fn available() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(enable)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn enable() -> bool {
    if std::env::var_os("ULMFIT_NO_AMX").is_some() {
        return false;
    }
    // CPUID leaf 7, sub-leaf 0: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
    #[allow(unused_unsafe)]
    // SAFETY: CPUID leaf 7 exists on every x86-64 CPU this crate runs on (and reads as zeros
    // where it does not).
    let leaf7 = unsafe { core::arch::x86_64::__cpuid_count(7, 0) };
    if leaf7.edx & (1 << 22) == 0 || leaf7.edx & (1 << 24) == 0 {
        return false;
    }
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA): Linux 5.16 and later grant the tile
    // data state to the whole process; older kernels and hypervisors without it refuse.
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain system call; it reads no memory of ours and clobbers rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn enable() -> bool {
    false
}

/// An element of a weight to pack: its value as bf16 bits.
pub trait ToBf16: Copy + Send + Sync {
    /// The nearest bf16 (exact for a bf16).
    fn bf16_bits(self) -> u16;

    /// `w` as `f32` values, when it is (the vectorised packing reads those).
    fn as_f32(w: &[Self]) -> Option<&[f32]> {
        let _ = w;
        None
    }
}

impl ToBf16 for f32 {
    #[inline(always)]
    fn bf16_bits(self) -> u16 {
        round_bf16(self)
    }

    fn as_f32(w: &[Self]) -> Option<&[f32]> {
        Some(w)
    }
}

/// The nearest bf16 to `x` (ties to even; NaN stays a quiet NaN), as `half`'s `bf16::from_f32`
/// computes it but without branches, so that loops over it vectorise.
#[inline(always)]
fn round_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    let rounded = (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16;
    let nan = ((b >> 16) as u16) | 0x40;
    if x.is_nan() { nan } else { rounded }
}

/// `dst[i] = bf16(src[i])`.
fn round_row_impl(src: &[f32], dst: &mut [u16]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = round_bf16(x);
    }
}

super::simd::multiversion!(round_row, round_row_impl, (src: &[f32], dst: &mut [u16]));

impl ToBf16 for bf16 {
    fn bf16_bits(self) -> u16 {
        self.to_bits()
    }
}

/// `W [n, k]` packed into bf16 tiles for [`AmxWeight::apply`] (see the [module docs](self)).
///
/// # Example
///
/// ```
/// use ulmfit::ops::amx::{AmxWeight, available};
///
/// if available() {
///     let (n, k, m) = (48, 64, 2);
///     let w = vec![0.5f32; n * k]; // W [48, 64]
///     let v = vec![0.25f32; m * k]; // two vectors of 64
///     let mut dst = vec![1.0f32; m * n];
///     let packed = AmxWeight::new(&w, n, k);
///     // SAFETY: AMX is available; v holds m rows of k, dst m rows of n.
///     unsafe { packed.apply(m, v.as_ptr(), k, dst.as_mut_ptr(), n) };
///     assert!(dst.iter().all(|&x| x == 1.0 + 64.0 * 0.5 * 0.25));
/// }
/// ```
pub struct AmxWeight {
    n: usize,
    k: usize,
    /// Blocks of 16 rows, rounded up to an even number (the kernel does two at a time).
    n_blocks: usize,
    /// Blocks of 32 columns.
    k_blocks: usize,
    data: Vec<u16>,
}

impl AmxWeight {
    /// Packs the row-major `w [n, k]` (rounding `f32` to the nearest bf16).
    ///
    /// # Panics
    ///
    /// If `w.len() != n * k` or either is zero.
    pub fn new<E: ToBf16>(w: &[E], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "amx: weight size");
        Self::strided(w, n, k, k, 1)
    }

    /// Packs `W [n, k]` with `W[r, c] = w[r * r_stride + c * c_stride]`: `strided(w, n, k, 1, n)`
    /// packs the transpose of a row-major `[k, n]` matrix (what the backward products need).
    ///
    /// # Panics
    ///
    /// If either size is zero or `w` is too short for the strides.
    pub fn strided<E: ToBf16>(
        w: &[E],
        n: usize,
        k: usize,
        r_stride: usize,
        c_stride: usize,
    ) -> Self {
        assert!(n > 0 && k > 0, "amx: empty weight");
        assert!(
            w.len() > (n - 1) * r_stride + (k - 1) * c_stride,
            "amx: weight too short for its strides"
        );
        let n_blocks = n.div_ceil(2 * TILE) * 2;
        let k_blocks = k.div_ceil(TILE_K);
        let mut data = vec![0u16; n_blocks * k_blocks * TILE_ELEMS];
        let slot = |r: usize, c: usize| {
            (c / TILE_K) * TILE_ELEMS + (c % TILE_K / 2) * 2 * TILE + 2 * r + c % 2
        };
        // Groups of blocks of 16 rows, two per thread: reading a transposed `w` (`c_stride`
        // large) then takes, for each column, the group's contiguous stretch of rows instead of
        // one cache line per block, which the prefetcher follows.
        let block_len = k_blocks * TILE_ELEMS;
        let vector_pack = bf16_pack::available()
            && bf16_pack::gather_fits(r_stride)
            && bf16_pack::gather_fits(c_stride);
        let threads = rayon::current_num_threads().max(1);
        let group = n_blocks.div_ceil(2 * threads).max(1);
        data.par_chunks_mut(group * block_len)
            .enumerate()
            .for_each(|(g, dst)| {
                let nb0 = g * group;
                let blocks = dst.len() / block_len;
                if let Some(wf) = E::as_f32(w).filter(|_| vector_pack) {
                    // SAFETY: checked above (CPU, strides, `w` long enough for rows `< n`).
                    unsafe {
                        bf16_pack::pack_blocks(
                            wf.as_ptr(),
                            (n, k),
                            (r_stride, c_stride),
                            nb0 * TILE,
                            blocks,
                            dst,
                        )
                    };
                    return;
                }
                let rows = |b: usize| TILE.min(n.saturating_sub((nb0 + b) * TILE));
                let at = |b: usize, r: usize, c: usize| {
                    w[((nb0 + b) * TILE + r) * r_stride + c * c_stride].bf16_bits()
                };
                // Read along whichever index is contiguous in `w`.
                if c_stride <= r_stride {
                    for b in 0..blocks {
                        for r in 0..rows(b) {
                            for c in 0..k {
                                dst[b * block_len + slot(r, c)] = at(b, r, c);
                            }
                        }
                    }
                } else {
                    for c in 0..k {
                        for b in 0..blocks {
                            for r in 0..rows(b) {
                                dst[b * block_len + slot(r, c)] = at(b, r, c);
                            }
                        }
                    }
                }
            });
        Self {
            n,
            k,
            n_blocks,
            k_blocks,
            data,
        }
    }

    /// Rows of `W`.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// `dst[i, :] += W v[i, :]` for `i < m`: `v` rows of `k` floats `v_rs` apart (rounded to
    /// bf16 here), `dst` rows of `n` floats `dst_rs` apart. Uses both operands' bf16 values,
    /// sums in `f32`.
    ///
    /// # Safety
    ///
    /// [`available`] must have returned `true`. `v` must be valid for reading `m` rows of `k`
    /// floats `v_rs` apart, and `dst` valid for reading and writing `m` rows of `n` floats
    /// `dst_rs` apart, not overlapping `v`.
    pub unsafe fn apply(&self, m: usize, v: *const f32, v_rs: usize, dst: *mut f32, dst_rs: usize) {
        // SAFETY: the caller's contract.
        unsafe { self.apply_strided(m, (v, v_rs, 1), dst, dst_rs) }
    }

    /// [`apply`](Self::apply) with a strided left operand: `v = (ptr, v_rs, v_cs)` holds
    /// `v[i, c]` at `ptr + i * v_rs + c * v_cs` (`v_rs = 1, v_cs = m` reads the transpose of a
    /// row-major `[k, m]` matrix).
    ///
    /// # Safety
    ///
    /// As [`apply`](Self::apply), `v` valid for reading every element its strides address.
    pub unsafe fn apply_strided(
        &self,
        m: usize,
        v: (*const f32, usize, usize),
        dst: *mut f32,
        dst_rs: usize,
    ) {
        debug_assert!(available());
        let (v, v_rs, v_cs) = v;
        if m == 0 {
            return;
        }
        let kp = self.k_blocks * TILE_K;
        let mp = m.next_multiple_of(2 * TILE);
        // The left operand in bf16, `kp` values a row, zero-padded to whole tiles.
        let mut a = vec![0u16; mp * kp];
        let v = Ptr(v as *mut f32);
        let k = self.k;
        if v_cs == 1 {
            // Contiguous rows: one vectorised conversion per row.
            let fill = |(i, row): (usize, &mut [u16])| {
                // SAFETY: the caller's contract (row `i < m` of v).
                let src = unsafe { core::slice::from_raw_parts(v.get().add(i * v_rs), k) };
                round_row(src, &mut row[..k]);
            };
            if m * k >= 1 << 16 {
                a.par_chunks_mut(kp).take(m).enumerate().for_each(fill);
            } else {
                a.chunks_mut(kp).take(m).enumerate().for_each(fill);
            }
        } else {
            // A transposed operand: two stretches of rows per thread, transposed in blocks of
            // 16 rows by 32 columns through a buffer in L1, so the reads run along `v`'s
            // contiguous rows (when `v_rs` is 1) and each row of `a` is written 64 bytes at a
            // time.
            let threads = rayon::current_num_threads().max(1);
            let per = m.div_ceil(2 * threads).next_multiple_of(TILE);
            let vector = bf16_pack::available() && bf16_pack::gather_fits(v_cs);
            let fill = |(blk, rows): (usize, &mut [u16])| {
                let i0 = blk * per;
                let n_rows = (rows.len() / kp).min(m - i0);
                if vector {
                    // SAFETY: checked above; rows `i0..i0 + n_rows < m` of v (the caller's
                    // contract).
                    unsafe {
                        bf16_pack::round_rows_strided(
                            v.get(),
                            (v_rs, v_cs),
                            (i0, n_rows, k, kp),
                            rows,
                        )
                    };
                    return;
                }
                let mut buf = [0u16; TILE * TILE_K];
                for c0 in (0..k).step_by(TILE_K) {
                    let cn = TILE_K.min(k - c0);
                    for r0 in (0..n_rows).step_by(TILE) {
                        let rn = TILE.min(n_rows - r0);
                        for c in 0..cn {
                            for r in 0..rn {
                                let (i, col) = (i0 + r0 + r, c0 + c);
                                // SAFETY: the caller's contract (element `col < k` of row
                                // `i < m`).
                                let x = unsafe { *v.get().add(i * v_rs + col * v_cs) };
                                buf[r * TILE_K + c] = round_bf16(x);
                            }
                        }
                        for r in 0..rn {
                            let dst = &mut rows[(r0 + r) * kp + c0..][..cn];
                            dst.copy_from_slice(&buf[r * TILE_K..][..cn]);
                        }
                    }
                }
            };
            let whole = &mut a[..m.next_multiple_of(TILE) * kp];
            if m * k >= 1 << 16 {
                whole.par_chunks_mut(per * kp).enumerate().for_each(fill);
            } else {
                whole.chunks_mut(per * kp).enumerate().for_each(fill);
            }
        }
        let pairs = self.n_blocks / 2;
        let threads = rayon::current_num_threads().max(1);
        let per_task = pairs.div_ceil(4 * threads).max(1);
        let dst = Ptr(dst);
        for m0 in (0..mp).step_by(M_CHUNK) {
            let m1 = (m0 + M_CHUNK).min(mp);
            let run = |pair0: usize| {
                let _tiles = TileConfig::load();
                for pair in pair0..(pair0 + per_task).min(pairs) {
                    for mb in (m0..m1).step_by(2 * TILE) {
                        // SAFETY: the caller's contract; this task writes only columns
                        // `32 pair..32 pair + 32` of dst, disjoint from every other task.
                        unsafe { self.block(m, &a, mb, pair, dst.get(), dst_rs) };
                    }
                }
            };
            if pairs > per_task && threads > 1 {
                (0..pairs).into_par_iter().step_by(per_task).for_each(run);
            } else {
                (0..pairs).step_by(per_task).for_each(run);
            }
        }
    }

    /// Output rows `mb..mb + 32` by columns `32 pair..32 pair + 32`, in place where the block is
    /// whole, else through a zero-padded copy.
    ///
    /// # Safety
    ///
    /// As [`apply`](Self::apply), with the tile configuration loaded on this thread.
    unsafe fn block(&self, m: usize, a: &[u16], mb: usize, pair: usize, dst: *mut f32, rs: usize) {
        let kp = self.k_blocks * TILE_K;
        let b0 = self.data[2 * pair * self.k_blocks * TILE_ELEMS..].as_ptr();
        // SAFETY: `a` has `mp >= mb + 32` rows of `kp`, the weight two blocks of 16 rows from
        // `pair`, each `k_blocks` tiles; dst as the caller's contract.
        unsafe {
            let b1 = b0.add(self.k_blocks * TILE_ELEMS);
            let a0 = a.as_ptr().add(mb * kp);
            let n0 = 2 * TILE * pair;
            let (rows, cols) = ((m - mb.min(m)).min(2 * TILE), (self.n - n0).min(2 * TILE));
            if rows == 2 * TILE && cols == 2 * TILE {
                kernel_2x2(a0, kp, b0, b1, dst.add(mb * rs + n0), rs, self.k_blocks);
            } else if rows > 0 {
                let mut c = [0.0f32; 4 * TILE * TILE];
                for i in 0..rows {
                    let d = dst.add((mb + i) * rs + n0);
                    core::ptr::copy_nonoverlapping(d, c[i * 2 * TILE..].as_mut_ptr(), cols);
                }
                kernel_2x2(a0, kp, b0, b1, c.as_mut_ptr(), 2 * TILE, self.k_blocks);
                for i in 0..rows {
                    let d = dst.add((mb + i) * rs + n0);
                    core::ptr::copy_nonoverlapping(c[i * 2 * TILE..].as_ptr(), d, cols);
                }
            }
        }
    }
}

/// The tile configuration of [`kernel_2x2`] loaded on this thread (all eight tiles 16 rows of
/// 64 bytes), released when dropped.
struct TileConfig;

impl TileConfig {
    fn load() -> Self {
        #[repr(C, align(64))]
        struct Config([u8; 64]);
        let mut cfg = [0u8; 64];
        cfg[0] = 1; // palette 1
        for t in 0..8 {
            cfg[16 + 2 * t] = 64; // bytes per row (little-endian u16)
            cfg[48 + t] = TILE as u8; // rows
        }
        let cfg = Config(cfg);
        // SAFETY: only reached when `available()` granted the tile state; the configuration is a
        // valid palette-1 layout.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            core::arch::asm!("ldtilecfg [{}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly));
        }
        Self
    }
}

impl Drop for TileConfig {
    fn drop(&mut self) {
        // SAFETY: releases the tile state loaded by `load` (so context switches need not save it).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            core::arch::asm!("tilerelease", options(nostack, nomem));
        }
    }
}

/// `C[32, 32] += A[32, 32 k_blocks] B` on tiles: `a` rows `a_rs` bf16 apart, `b0` and `b1` the
/// packed tiles of two blocks of 16 weight rows, `c` rows `c_rs` floats apart. Tiles 0-3 hold C,
/// 4-5 A, 6-7 B; the loop over `k` stays inside one `asm` block, so no compiler code runs while
/// the tiles hold state.
///
/// # Safety
///
/// Tile configuration loaded; the pointers valid for the sizes above; `k_blocks > 0`.
#[cfg(target_arch = "x86_64")]
unsafe fn kernel_2x2(
    a: *const u16,
    a_rs: usize,
    b0: *const u16,
    b1: *const u16,
    c: *mut f32,
    c_rs: usize,
    k_blocks: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let c1 = c.add(TILE * c_rs);
        let a1 = a.add(TILE * a_rs);
        core::arch::asm!(
            "tileloadd tmm0, [{c0} + {cs}*1]",
            "tileloadd tmm1, [{c0} + {cs}*1 + 64]",
            "tileloadd tmm2, [{c1} + {cs}*1]",
            "tileloadd tmm3, [{c1} + {cs}*1 + 64]",
            "2:",
            "tileloadd tmm4, [{a0} + {as_}*1]",
            "tileloadd tmm6, [{b0} + {bs}*1]",
            "tileloadd tmm7, [{b1} + {bs}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm5, [{a1} + {as_}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 64",
            "add {a1}, 64",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {n}",
            "jnz 2b",
            "tilestored [{c0} + {cs}*1], tmm0",
            "tilestored [{c0} + {cs}*1 + 64], tmm1",
            "tilestored [{c1} + {cs}*1], tmm2",
            "tilestored [{c1} + {cs}*1 + 64], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c1,
            cs = in(reg) c_rs * 4,
            a0 = inout(reg) a => _,
            a1 = inout(reg) a1 => _,
            as_ = in(reg) a_rs * 2,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            bs = in(reg) 2 * TILE * 2,
            n = inout(reg) k_blocks => _,
            options(nostack),
        );
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn kernel_2x2(
    _: *const u16,
    _: usize,
    _: *const u16,
    _: *const u16,
    _: *mut f32,
    _: usize,
    _: usize,
) {
    unreachable!("AMX is x86-64 only; `available()` is false elsewhere")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::values;

    fn round(x: f32) -> f64 {
        f64::from(bf16::from_f32(x).to_f32())
    }

    /// The tile product equals an `f64` product of the bf16-rounded operands, on whole and
    /// partial blocks of rows, columns and `k`, accumulating into strided rows.
    #[test]
    fn product_matches_rounded_f64() {
        if !available() {
            eprintln!("skipped: no AMX on this machine");
            return;
        }
        for &(m, n, k) in &[
            (1, 16, 32),
            (5, 40, 20),
            (32, 64, 64),
            (33, 100, 400),
            (70, 96, 1152),
        ] {
            let w = values(n * k, 3);
            let (v_rs, dst_rs) = (k + 3, n + 5);
            let v = values(m * v_rs, 7);
            let init = values(m * dst_rs, 11);
            let mut dst = init.clone();
            let packed = AmxWeight::new(&w, n, k);
            // SAFETY: sizes as documented; AMX available.
            unsafe { packed.apply(m, v.as_ptr(), v_rs, dst.as_mut_ptr(), dst_rs) };
            for i in 0..m {
                for r in 0..dst_rs {
                    let got = dst[i * dst_rs + r];
                    if r >= n {
                        assert_eq!(got, init[i * dst_rs + r], "padding ({m},{n},{k}) {i},{r}");
                        continue;
                    }
                    let want = f64::from(init[i * dst_rs + r])
                        + (0..k)
                            .map(|c| round(w[r * k + c]) * round(v[i * v_rs + c]))
                            .sum::<f64>();
                    let tol = 1e-5 * (1.0 + (k as f64).sqrt());
                    assert!(
                        (f64::from(got) - want).abs() < tol,
                        "({m},{n},{k}) {i},{r}: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Strided operands (the transposes the backward products read) give the product of the
    /// transposed matrices.
    #[test]
    fn strided_operands_are_transposes() {
        if !available() {
            eprintln!("skipped: no AMX on this machine");
            return;
        }
        let (m, n, k) = (37, 50, 70);
        // wt is W^T [k, n], vt is v^T [k, m], both row-major.
        let (wt, vt) = (values(k * n, 13), values(k * m, 17));
        let w: Vec<f32> = (0..n * k).map(|i| wt[(i % k) * n + i / k]).collect();
        let v: Vec<f32> = (0..m * k).map(|i| vt[(i % k) * m + i / k]).collect();
        let (mut got, mut want) = (vec![0.5f32; m * n], vec![0.5f32; m * n]);
        // SAFETY: sizes as documented; AMX available.
        unsafe {
            AmxWeight::strided(&wt, n, k, 1, n).apply_strided(
                m,
                (vt.as_ptr(), 1, m),
                got.as_mut_ptr(),
                n,
            );
            AmxWeight::new(&w, n, k).apply(m, v.as_ptr(), k, want.as_mut_ptr(), n);
        }
        assert_eq!(got, want);
    }

    /// The branch-free rounding is `half`'s, on ties, carries into the exponent, infinities,
    /// NaNs, subnormals and ordinary values.
    #[test]
    fn rounding_matches_half() {
        let mut xs: Vec<f32> = values(10_000, 19).iter().map(|v| v * 1e3).collect();
        xs.extend([
            0.0,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ]);
        xs.extend([1e-40, -1e-40, f32::MIN_POSITIVE, 3.0e38]);
        // Exact ties (low half 0x8000) with even and odd kept bits, and just above/below.
        for b in [
            0x3f80_8000u32,
            0x3f81_8000,
            0x3f80_8001,
            0x3f80_7fff,
            0x7f7f_ffff,
        ] {
            xs.push(f32::from_bits(b));
        }
        let mut got = vec![0u16; xs.len()];
        round_row(&xs, &mut got);
        for (x, g) in xs.iter().zip(got) {
            let want = bf16::from_f32(*x);
            if x.is_nan() {
                assert!(bf16::from_bits(g).is_nan(), "NaN stays NaN");
            } else {
                assert_eq!(g, want.to_bits(), "{x:e}");
            }
        }
    }

    /// bf16 weights pack to the same tiles as their `f32` values.
    #[test]
    fn packs_bf16_and_f32_alike() {
        let w = values(48 * 40, 5);
        let w16: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
        assert_eq!(
            AmxWeight::new(&w, 48, 40).data,
            AmxWeight::new(&w16, 48, 40).data
        );
        let p = AmxWeight::new(&w, 48, 40);
        // Row 17, column 35: block 1 of rows, block 1 of columns, pair 1, first of the pair.
        let tile = (2 + 1) * TILE_ELEMS;
        assert_eq!(
            p.data[tile + 2 * TILE + 2],
            bf16::from_f32(w[17 * 40 + 34]).to_bits()
        );
        assert_eq!(
            p.data[tile + 2 * TILE + 2 + 1],
            bf16::from_f32(w[17 * 40 + 35]).to_bits()
        );
    }
}
