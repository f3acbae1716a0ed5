//! Small SIMD building blocks of the host kernels: a vectorisable `exp` and run-time selection
//! of AVX-512 / AVX2 code for loops written in plain Rust.

/// `e^x` without branches or calls, so that loops over it vectorise: Cody-Waite range reduction
/// and Cephes' degree-6 polynomial (relative error about 2e-7 on the clamped range).
#[inline(always)]
pub(crate) fn exp_fast(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer that sits in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let v = x * LOG2E + MAGIC;
    let n = v - MAGIC;
    let ni = v.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * (r * r) + r + 1.0;
    y * f32::from_bits(((ni + 127) as u32) << 23)
}

/// Defines `fn $name(args)` that runs `$imp(args)` compiled for AVX-512, else AVX2 + FMA, else
/// the baseline target, whichever the CPU has (checked at each call; the check is cached).
macro_rules! multiversion {
    ($name:ident, $imp:ident, ($($arg:ident : $ty:ty),*)) => {
        $crate::ops::simd::multiversion!($name, $imp, ($($arg: $ty),*) -> ());
    };
    ($name:ident, $imp:ident, ($($arg:ident : $ty:ty),*) -> $ret:ty) => {
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) -> $ret {
                    $imp($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fast_is_accurate() {
        for k in -8000..8000 {
            let x = k as f32 * 0.01;
            let want = (x as f64).exp();
            let got = exp_fast(x) as f64;
            assert!(
                ((got - want) / want).abs() < 4e-7,
                "exp({x}): {got} vs {want}"
            );
        }
        assert!(exp_fast(-1000.0) < 1e-37);
        assert!(exp_fast(1000.0).is_finite());
        assert!(exp_fast(f32::NAN).is_nan());
    }
}
