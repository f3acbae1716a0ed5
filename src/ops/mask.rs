//! Fast dropout masks on the host.
//!
//! burn draws a random tensor one element at a time through a ChaCha generator, about 15 ns per
//! element here. The weight-dropped recurrent matrices of an AWD-LSTM need millions of mask
//! elements per forward call (3 M for the small preset, 17 M for the paper's), which made mask
//! drawing 14 % of a TREC-6 training step. [`bernoulli_mask`] is counter-based instead: element
//! `i` is a SplitMix64 hash of `(seed, i)`, so chunks are filled in parallel, the result does not
//! depend on the number of threads, and one seed drawn from the backend's generator keeps runs
//! reproducible under `burn`'s `seed`.

use rayon::prelude::*;

/// Elements per parallel chunk (big enough that task overhead stays negligible).
const CHUNK: usize = 1 << 16;

/// SplitMix64's output function (Steele, Lea and Flood 2014), a bijective 64-bit mixer.
#[inline(always)]
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An inverted-dropout mask of `n` elements: each is `0` with probability `1 - keep`, else
/// `1 / keep`, decided by 24 random bits (the resolution of an `f32` uniform draw).
///
/// Element `i` depends only on `seed` and `i`. Panics unless `0 < keep <= 1`.
pub fn bernoulli_mask(n: usize, keep: f64, seed: u64) -> Vec<f32> {
    assert!(
        keep > 0.0 && keep <= 1.0,
        "keep probability must be in (0, 1], got {keep}"
    );
    // An element is kept when its 24-bit draw u satisfies u < keep * 2^24.
    let threshold = (keep * (1u64 << 24) as f64).round() as u64;
    let scale = (1.0 / keep) as f32;
    let key = mix(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| fill(key, (c * CHUNK / 2) as u64, (threshold, scale), chunk));
    out
}

/// Mask elements `2 j0..` into `chunk`: the pair `2 j, 2 j + 1` takes the low and high 24 bits
/// of one 64-bit hash of `j`. Written so that the loop vectorises.
fn fill_impl(key: u64, j0: u64, (threshold, scale): (u64, f32), chunk: &mut [f32]) {
    let pick = |u: u64| if u < threshold { scale } else { 0.0 };
    let hash = |j: u64| mix(key.wrapping_add((j0 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    let mut pairs = chunk.chunks_exact_mut(2);
    let mut j = 0u64;
    for pair in &mut pairs {
        let r = hash(j);
        pair[0] = pick(r & 0xFF_FFFF);
        pair[1] = pick((r >> 40) & 0xFF_FFFF);
        j += 1;
    }
    if let [last] = pairs.into_remainder() {
        *last = pick(hash(j) & 0xFF_FFFF);
    }
}

super::simd::multiversion!(fill, fill_impl, (key: u64, j0: u64, t: (u64, f32), chunk: &mut [f32]));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_rate_and_scale() {
        for keep in [0.5, 0.8, 0.98] {
            let n = 1_000_003;
            let m = bernoulli_mask(n, keep, 7);
            let kept = m.iter().filter(|&&v| v != 0.0).count() as f64;
            let rate = kept / n as f64;
            // Binomial standard deviation is below 5e-4 here; 5 sigma.
            assert!((rate - keep).abs() < 2.5e-3, "keep {keep}: rate {rate}");
            assert!(
                m.iter()
                    .all(|&v| v == 0.0 || (v - (1.0 / keep) as f32).abs() < 1e-6)
            );
            // Inverted dropout keeps the mean at 1.
            let mean = m.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 5e-3, "keep {keep}: mean {mean}");
        }
    }

    #[test]
    fn deterministic_per_seed_and_prefix_stable() {
        let a = bernoulli_mask(200_001, 0.5, 42);
        assert_eq!(a, bernoulli_mask(200_001, 0.5, 42));
        assert_ne!(a, bernoulli_mask(200_001, 0.5, 43));
        // Element i depends on (seed, i) only: a shorter mask is a prefix of a longer one.
        assert_eq!(&a[..70_000], &bernoulli_mask(70_000, 0.5, 42)[..]);
    }

    /// Element `i` is the documented draw: bits `0..24` (even `i`) or `40..64` (odd `i`) of
    /// `mix(key + (i / 2) * golden)`, across chunk borders and an odd length.
    #[test]
    fn elements_are_the_documented_draws() {
        let (n, keep, seed) = (3 * CHUNK + 7, 0.7, 11);
        let m = bernoulli_mask(n, keep, seed);
        let key = mix(seed ^ 0x9E37_79B9_7F4A_7C15);
        let threshold = (keep * (1u64 << 24) as f64).round() as u64;
        for (i, &got) in m.iter().enumerate() {
            let r = mix(key.wrapping_add((i as u64 / 2).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            let u = if i % 2 == 0 {
                r & 0xFF_FFFF
            } else {
                (r >> 40) & 0xFF_FFFF
            };
            let want = if u < threshold {
                (1.0 / keep) as f32
            } else {
                0.0
            };
            assert_eq!(got, want, "element {i}");
        }
    }

    #[test]
    fn neighbours_are_uncorrelated() {
        // Adjacent elements come from one hash (low and high bits) and chunk borders from
        // neighbouring counters: both pairs must look independent.
        let m = bernoulli_mask(400_000, 0.5, 3);
        let both = m.windows(2).filter(|w| w[0] != 0.0 && w[1] != 0.0).count() as f64;
        let rate = both / (m.len() - 1) as f64;
        assert!((rate - 0.25).abs() < 5e-3, "P(both kept) = {rate}");
    }

    #[test]
    fn keep_one_keeps_everything() {
        assert!(bernoulli_mask(1000, 1.0, 0).iter().all(|&v| v == 1.0));
    }
}
