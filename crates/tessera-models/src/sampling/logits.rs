//! Turning logits into tokens, shared by every sampler with discrete tokens (VAR, RAR):
//! temperature, top-k, top-p by bisection, and the seeded inverse-CDF draw.
//!
//! Random numbers come from a seeded [`BatchRng`] on the CPU, one uniform per token, and the
//! token is drawn on the device by inverse CDF, so the same seed gives the same tokens on every
//! device. Nothing here reads a tensor back (`sort` would, on WebGPU): it runs in the browser.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::rng::BatchRng;

/// Bisection steps of the top-p cut: enough to separate any two distinct f32 logits of a row.
const TOP_P_BISECTION_STEPS: usize = 48;

/// How logits are filtered before a token is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenFilter {
    /// Divides the logits before filtering (1 = none).
    pub temperature: f64,
    /// Keep only the `top_k` best codes (0 = all; 1 = greedy argmax).
    pub top_k: usize,
    /// Nucleus filter (0 = off).
    pub top_p: f64,
}

impl Default for TokenFilter {
    fn default() -> Self {
        Self { temperature: 1.0, top_k: 0, top_p: 0.0 }
    }
}

/// Picks one code per position from guided logits `[B, l, V]` → `[B, l]`.
pub fn choose_tokens(logits: Tensor<3>, config: &TokenFilter, rng: &mut BatchRng) -> Tensor<2, Int> {
    let [b, l, v] = logits.dims();
    if config.top_k == 1 {
        // Greedy: what torch.multinomial does when every other probability is exactly 0.
        return logits.argmax(2).reshape([b, l]);
    }
    let mut logits = if config.temperature != 1.0 {
        logits / config.temperature
    } else {
        logits
    };
    if config.top_k > 0 && config.top_k < v {
        // Official: remove logits below the k-th largest (ties at the k-th are kept).
        let kth = logits
            .clone()
            .topk(config.top_k, 2)
            .min_dim(2)
            .expand([b, l, v]);
        logits = logits
            .clone()
            .mask_fill(logits.lower(kth), f32::NEG_INFINITY);
    }
    if config.top_p > 0.0 && config.top_p < 1.0 {
        logits = top_p_filter(logits, config.top_p);
    }
    // Inverse CDF with one uploaded uniform per position: the first code whose CDF exceeds u.
    let probs = softmax(logits, 2);
    let cdf = probs.cumsum(2); // [B, l, V]
    let total = cdf.clone().narrow(2, v - 1, 1); // ≈ 1, exact scale of the CDF
    let u = Tensor::<3>::from_data(
        TensorData::new(rng.uniforms(l), [b, l, 1]),
        &cdf.device(),
    );
    let below = cdf.lower_equal((u * total).expand([b, l, v]));
    below
        .int()
        .sum_dim(2)
        .clamp_max(v as i64 - 1)
        .reshape([b, l])
}

/// Official top-p on `[B, l, V]` logits: with the codes in ascending order, remove those whose
/// cumulative probability is ≤ 1 − top_p; the best code always stays. The cut is a logit
/// threshold found by bisection: `S(τ) = Σ p·[z ≤ τ]` is non-decreasing in τ, and the removed
/// set is `{z ≤ τ*}` for the largest τ* with `S(τ*) ≤ 1 − top_p`.
pub fn top_p_filter(logits: Tensor<3>, top_p: f64) -> Tensor<3> {
    let [b, l, v] = logits.dims();
    let probs = softmax(logits.clone(), 2);
    let limit = 1.0 - top_p;
    let hi = logits.clone().max_dim(2); // [B, l, 1]: S(hi) = 1 > limit
    let finite = logits.clone().is_finite();
    // Smallest finite logit minus one: S(lo) = 0 ≤ limit.
    let lo = logits
        .clone()
        .mask_where(finite.bool_not(), hi.clone().expand([b, l, v]))
        .min_dim(2)
        - 1.0;
    let (mut lo, mut hi) = (lo, hi);
    for _ in 0..TOP_P_BISECTION_STEPS {
        let mid = (lo.clone() + hi.clone()) * 0.5;
        let below = logits.clone().lower_equal(mid.clone().expand([b, l, v]));
        let mass = (probs.clone() * below.float()).sum_dim(2); // S(mid)
        let removable = mass.lower_equal_elem(limit);
        lo = lo.mask_where(removable.clone(), mid.clone());
        hi = hi.mask_where(removable.bool_not(), mid);
    }
    logits
        .clone()
        .mask_fill(logits.lower_equal(lo.expand([b, l, v])), f32::NEG_INFINITY)
}


#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn ints(t: Tensor<2, Int>) -> Vec<i64> {
        t.try_into_vec_as::<i64>().unwrap()
    }

    #[test]
    fn top_k_and_top_p_keep_only_the_allowed_codes() {
        let device = Device::flex();
        // Probabilities ∝ exp(logit): 0.64, 0.24, 0.09, 0.03 (roughly) for logits 3, 2, 1, 0.
        let row = [0.0f32, 3.0, 1.0, 2.0];
        let logits = Tensor::<3>::from_data(TensorData::new(row.repeat(500), [1, 500, 4]), &device);
        let mut rng = BatchRng::new(5, 1, None);
        let seen = |config: &TokenFilter, rng: &mut BatchRng| {
            let mut seen = ints(choose_tokens(logits.clone(), config, rng));
            seen.sort();
            seen.dedup();
            seen
        };
        assert_eq!(
            seen(&TokenFilter { top_k: 2, ..Default::default() }, &mut rng),
            vec![1, 3]
        );
        // Ascending cumsum: 0.03, 0.12, 0.36, 1.0; top_p = 0.7 removes cumsum ≤ 0.3: codes 0, 2.
        assert_eq!(
            seen(&TokenFilter { top_p: 0.7, ..Default::default() }, &mut rng),
            vec![1, 3]
        );
        assert_eq!(
            seen(&TokenFilter { top_p: 0.95, ..Default::default() }, &mut rng),
            vec![1, 2, 3]
        );
        assert_eq!(
            seen(&TokenFilter { top_p: 0.01, ..Default::default() }, &mut rng),
            vec![1]
        );
        assert_eq!(seen(&TokenFilter::default(), &mut rng), vec![0, 1, 2, 3]);
    }

    #[test]
    fn inverse_cdf_draws_follow_the_softmax() {
        let device = Device::flex();
        let logits = Tensor::<3>::random([1, 1, 6], Distribution::Normal(0.0, 1.0), &device);
        let probs = softmax(logits.clone(), 2).try_into_vec_as::<f32>().unwrap();
        let many = logits.expand([1, 20_000, 6]);
        let drawn = ints(choose_tokens(
            many,
            &TokenFilter::default(),
            &mut BatchRng::new(3, 1, None),
        ));
        for (code, p) in probs.iter().enumerate() {
            let freq = drawn.iter().filter(|&&d| d == code as i64).count() as f32 / 20_000.0;
            assert!((freq - p).abs() < 0.015, "code {code}: {freq} vs {p}");
        }
    }
}
