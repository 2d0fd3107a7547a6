//! Deterministic randomness for scenes: SplitMix64, coordinate hashes and value noise.
//!
//! Only integer arithmetic and the IEEE-exact float operations (`+ - * /`, `sqrt`, `floor`) are
//! used, never `sin`, `exp` or `powf`, whose last bits differ between platform maths libraries;
//! so a scene is bit-identical on every platform, the browser included.

/// SplitMix64 (Steele, Lea and Flood, 2014): the stream that draws a scene's parameters.
pub(super) struct Rng(u64);

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub(super) fn unit(&mut self) -> f64 {
        unit(self.next_u64())
    }

    /// Uniform in [lo, hi).
    pub(super) fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// True with probability `p`.
    pub(super) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in `0..n`.
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n - 1)
    }

    /// Index drawn with the given relative weights.
    pub(super) fn weighted(&mut self, weights: &[f64]) -> usize {
        let mut t = self.unit() * weights.iter().sum::<f64>();
        for (i, &w) in weights.iter().enumerate() {
            if t < w {
                return i;
            }
            t -= w;
        }
        weights.len() - 1
    }
}

/// The SplitMix64 output function: a bijective avalanche of 64 bits.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash of `seed` and a lattice coordinate.
pub(super) fn hash(seed: u64, i: i64) -> u64 {
    mix(seed ^ mix((i as u64).wrapping_add(GOLDEN)))
}

/// A hash of `seed` and two lattice coordinates.
pub(super) fn hash2(seed: u64, i: i64, j: i64) -> u64 {
    hash(hash(seed, i), j)
}

/// The top 53 bits of `h` as a float in [0, 1).
pub(super) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Random value `k` in [0, 1) attached to lattice cell `i` (a feature's position, size, ...).
pub(super) fn cell(seed: u64, i: i64, k: i64) -> f64 {
    unit(hash2(seed, i, k))
}

/// Smooth 1-D value noise in [0, 1], lattice spacing 1.
pub(super) fn value1(seed: u64, t: f64) -> f64 {
    let i = t.floor();
    let f = smooth(t - i);
    let i = i as i64;
    let (a, b) = (unit(hash(seed, i)), unit(hash(seed, i + 1)));
    a + (b - a) * f
}

/// Sum of `octaves` of [`value1`], each twice the frequency and half the amplitude, in [0, 1].
pub(super) fn fbm1(seed: u64, t: f64, octaves: u32) -> f64 {
    let (mut sum, mut norm, mut amp, mut freq) = (0.0, 0.0, 1.0, 1.0);
    for o in 0..octaves {
        sum += amp * value1(seed.wrapping_add(u64::from(o)), t * freq);
        norm += amp;
        amp *= 0.5;
        freq *= 2.0;
    }
    sum / norm
}

/// Smooth 2-D value noise in [0, 1], lattice spacing 1.
pub(super) fn value2(seed: u64, x: f64, y: f64) -> f64 {
    let (i, j) = (x.floor(), y.floor());
    let (fx, fy) = (smooth(x - i), smooth(y - j));
    let (i, j) = (i as i64, j as i64);
    let at = |di: i64, dj: i64| unit(hash2(seed, i + di, j + dj));
    let top = at(0, 0) + (at(1, 0) - at(0, 0)) * fx;
    let bottom = at(0, 1) + (at(1, 1) - at(0, 1)) * fx;
    top + (bottom - top) * fy
}

/// Sum of `octaves` of [`value2`], in [0, 1].
pub(super) fn fbm2(seed: u64, x: f64, y: f64, octaves: u32) -> f64 {
    let (mut sum, mut norm, mut amp, mut freq) = (0.0, 0.0, 1.0, 1.0);
    for o in 0..octaves {
        sum += amp * value2(seed.wrapping_add(u64::from(o)), x * freq, y * freq);
        norm += amp;
        amp *= 0.5;
        freq *= 2.0;
    }
    sum / norm
}

/// A sine-like wave of period 1 in [-1, 1], made of two parabolas (peak at 0.25, trough at 0.75).
pub(super) fn wave(t: f64) -> f64 {
    let s = t - t.floor();
    if s < 0.5 {
        16.0 * s * (0.5 - s)
    } else {
        -16.0 * (s - 0.5) * (1.0 - s)
    }
}

/// Hermite ease 3t² − 2t³ on [0, 1].
fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's splitmix64.c).
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    }

    #[test]
    fn noise_stays_in_range_and_is_continuous() {
        let mut previous = value1(7, -3.0);
        for k in 0..4000 {
            let t = -3.0 + k as f64 * 0.001;
            let (a, b) = (value1(7, t), fbm2(7, t, 2.0 * t, 3));
            assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&b));
            assert!((a - previous).abs() < 0.01, "jump at {t}");
            previous = a;
            assert!((-1.0..=1.0).contains(&wave(t)));
        }
        assert_eq!(wave(0.25), 1.0);
        assert_eq!(wave(0.75), -1.0);
    }
}
