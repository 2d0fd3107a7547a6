//! `eˣ` for f32 without a libm call, so loops over slices vectorise.
//!
//! burn's CPU backend calls libm's scalar `expf` for every element of a softmax, sigmoid or SiLU;
//! that was 18% of var-tiny's sampling time (issue 18, BENCHMARKS.md). This is the classic
//! range reduction: `x = n·ln2 + r` with `|r| ≤ ln2/2` (ln 2 split in two so `n·ln2` is exact),
//! `eʳ` from its Taylor series to degree 7 (truncation under 6e-9 relative), `2ⁿ` built from the
//! exponent bits. Every step is a plain arithmetic or a select, which LLVM turns into SIMD.

/// Below this the result is flushed to 0 (libm gives values under 5e-38 there, which no softmax,
/// sigmoid or SiLU can tell from 0); it also keeps `2ⁿ⁻¹` a normal float.
const LOW: f32 = -86.0;
/// `ln(f32::MAX)`: above it `eˣ` overflows to +∞.
const HIGH: f32 = 88.722_84;

/// `eˣ` within 1 ulp of the exact value on `[-86, 88.72]`; 0 below, +∞ above, NaN for NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 9 significant bits: n·LN2_HI is exact for |n| < 2¹⁵.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer without a libm call.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(LOW, HIGH);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    // n as an integer from the bits of `shifted` (its low mantissa bits hold n), with no float to
    // int conversion, whose out-of-range checks would stop the loop from vectorising. 2ⁿ is built
    // as 2ⁿ⁻¹·2: n reaches 128 just below HIGH, whose 2ⁿ alone is not a finite f32.
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits());
    let half_scale = f32::from_bits(n_int.wrapping_add(126) << 23);
    let y = p * half_scale * 2.0;
    if x > HIGH {
        f32::INFINITY
    } else if x < LOW {
        0.0
    } else {
        y
    }
}

/// `erf(x)` within 1e-6 (Abramowitz and Stegun 7.1.26: a degree-5 polynomial in
/// `1/(1 + 0.3275911·|x|)` times `e^(−x²)`, 1.5e-7 in exact arithmetic; f32 rounding adds the
/// rest), branch-free like [`exp`] so loops vectorise; libm's
/// scalar `erff` was 4% of a RAR training step (exact GELU).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152_1, 1.061_405_4];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    let y = 1.0 - poly * exp(-ax * ax);
    if x.is_nan() { x } else { y.copysign(x) }
}

/// Every element of `x` replaced by its `eˣ`.
#[inline(always)]
pub fn exp_in_place(x: &mut [f32]) {
    for v in x {
        *v = exp(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(got: f32, want: f64) -> f64 {
        let want32 = want as f32;
        ((got as f64 - want) / (f32::EPSILON as f64 * want32.abs().max(f32::MIN_POSITIVE) as f64)).abs()
    }

    #[test]
    fn matches_the_exact_exponential_within_one_ulp() {
        let mut worst = 0.0f64;
        let steps = 2_000_000;
        for i in 0..=steps {
            let x = LOW + (HIGH - LOW) * i as f32 / steps as f32;
            worst = worst.max(ulps(exp(x), (x as f64).exp()));
        }
        for x in [0.0f32, 1e-8, -1e-8, 0.5, -0.5, 0.346_573_6, -0.346_573_6, 1.0, -1.0, 10.0, -10.0, 88.7, -85.9] {
            worst = worst.max(ulps(exp(x), (x as f64).exp()));
        }
        eprintln!("worst error: {worst:.2} ulp");
        assert!(worst <= 1.0, "worst error {worst} ulp");
    }

    #[test]
    fn edges_flush_overflow_and_keep_nan() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert!(exp(88.72).is_finite());
        let mut v = [0.0f32, 1.0, -1.0];
        exp_in_place(&mut v);
        assert_eq!(v, [1.0, exp(1.0), exp(-1.0)]);
    }

    #[test]
    fn erf_is_within_its_bound_of_libms() {
        let mut worst = 0.0f64;
        for i in -400_000..=400_000 {
            let x = i as f32 * 1e-5 * 10.0;
            worst = worst.max((erf(x) as f64 - libm_erf(x as f64)).abs());
        }
        eprintln!("worst erf error: {worst:.2e}");
        assert!(worst < 1e-6, "worst erf error {worst}");
        assert!(erf(f32::NAN).is_nan() && erf(f32::INFINITY) == 1.0 && erf(f32::NEG_INFINITY) == -1.0);
    }

    /// erf in f64 by its Taylor series below 3 and its continued fraction above (to 1e-12).
    fn libm_erf(x: f64) -> f64 {
        let a = x.abs();
        let y = if a < 3.0 {
            let (mut term, mut total, mut n) = (a, a, 0.0f64);
            while term.abs() > 1e-17 {
                n += 1.0;
                term *= -a * a / n;
                total += term / (2.0 * n + 1.0);
            }
            total * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            let mut frac = 0.0f64;
            for k in (1..60).rev() {
                frac = (k as f64 / 2.0) / (a + frac);
            }
            1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + frac)
        };
        y.copysign(x)
    }
}
