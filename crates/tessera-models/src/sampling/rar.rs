//! RAR sampling: one token per forward pass with the KV cache, classifier-free guidance on a
//! cosine-power schedule, temperature, and top-k / top-p as extras.
//! Official: bytedance/1d-tokenizer @942a96fb, `modeling/rar.py` (`RAR.generate`).
//!
//! Per step `s` of `N`: `cfg = 1 + (g − 1) · (1 − cos(π · (s / N)^pow)) / 2`, the logits are
//! `u + (c − u) · cfg` from the batch doubled with the null class (no doubling when `g = 0`), then
//! divided by the temperature. `pow = 0` keeps `cfg = g` throughout (`0⁰ = 1`).
//!
//! Beyond the official code (raster only): any order ([`FillOrder`]), since the target-aware
//! position tells the model where the next token goes; a model trained with the randomness
//! annealed to 0 has seen only raster order at the end of its training and does worse in the
//! others (`tessera eval --claims` measures how much). Zero-shot in-painting puts the kept
//! tokens first in the order and feeds them instead of sampling them ([`RarSampling::with_kept`]).
//!
//! Nothing here reads a tensor back: the chosen tokens stay on the device and are fed back in.

use burn::prelude::*;

use crate::family::FillOrder;
use crate::generators::rar::{Rar, RarCache};
use crate::rng::{BatchPart, BatchRng};
use crate::sampling::logits::{TokenFilter, choose_tokens};

/// Official guidance factor at step `step` of `steps`: `1 + (g − 1) · (1 − cos(π (s/N)^pow)) / 2`.
pub fn cfg_scale(guidance: f64, power: f64, step: usize, steps: usize) -> f64 {
    let ramp = (1.0 - ((step as f64 / steps as f64).powf(power) * std::f64::consts::PI).cos()) / 2.0;
    (guidance - 1.0) * ramp + 1.0
}

/// Settings of a RAR sampling run.
#[derive(Clone, Debug, PartialEq)]
pub struct RarSamplerConfig {
    /// Official `guidance_scale`; 0 turns guidance off (no null-class batch).
    pub guidance: f64,
    /// Official `guidance_scale_pow`.
    pub guidance_pow: f64,
    /// Temperature, top-k and top-p (official: `randomize_temperature` only).
    pub filter: TokenFilter,
    pub order: FillOrder,
    pub seed: u64,
}

impl Default for RarSamplerConfig {
    /// The official README demo: guidance 4, constant (`pow` 0), temperature 1, raster.
    fn default() -> Self {
        Self { guidance: 4.0, guidance_pow: 0.0, filter: TokenFilter::default(), order: FillOrder::Raster, seed: 0 }
    }
}

/// What one step produced.
#[derive(Clone, Debug)]
pub struct RarStep {
    /// 0-based token index in the generation order.
    pub index: usize,
    /// Raster position each image placed its token at.
    pub positions: Vec<usize>,
    /// `[B]` the tokens chosen (or kept).
    pub tokens: Tensor<1, Int>,
    /// Guidance factor of this step.
    pub cfg: f64,
    /// `[B, V]` the logits the token was drawn from (after guidance and temperature).
    pub logits: Tensor<2>,
    /// `[B, V]` conditional and unconditional halves, when guidance is on.
    pub halves: Option<(Tensor<2>, Tensor<2>)>,
}

/// One RAR sampling run, advanced a token at a time.
#[derive(Debug)]
pub struct RarSampling {
    config: RarSamplerConfig,
    batch: usize,
    /// Per image, raster positions in generation order.
    orders: Vec<Vec<usize>>,
    cache: Option<RarCache>,
    /// `[B or 2B, V]` logits of the next token.
    pending: Option<Tensor<2>>,
    labels: Tensor<1, Int>,
    /// `[B, N]` raster map of the tokens so far, −1 where none yet.
    tokens: Tensor<2, Int>,
    /// Kept tokens: `[B, N]` codes, and how many of each order's first positions are kept.
    kept: Option<(Tensor<2, Int>, usize)>,
    step: usize,
    rng: BatchRng,
}

impl RarSampling {
    /// A run for `labels` (`[B]`, the null class allowed).
    pub fn new(rar: &Rar, labels: Tensor<1, Int>, config: RarSamplerConfig) -> Self {
        let [b] = labels.dims();
        let mut rng = BatchRng::new(config.seed, b, None);
        let orders = rng.per_row(|r| config.order.positions(rar.side(), r));
        let tokens = Tensor::<2, Int>::full([b, rar.seq_len()], -1, &labels.device());
        Self { config, batch: b, orders, cache: None, pending: None, labels, tokens, kept: None, step: 0, rng }
    }

    /// Makes this run `part` of a larger batch: its images draw the orders and tokens they would
    /// in the whole batch (see [`BatchRng`]).
    pub fn part_of(mut self, rar: &Rar, part: BatchPart) -> Self {
        assert!(self.step == 0 && self.kept.is_none(), "a run becomes part of a batch before its first step and its kept cells");
        self.rng = BatchRng::new(self.config.seed, self.batch, Some(part));
        self.orders = self.rng.per_row(|r| self.config.order.positions(rar.side(), r));
        self
    }

    /// Zero-shot in-painting: the cells where `keep` is true (raster, the same for every image)
    /// take `codes` (`[B, N]`, e.g. a source image's) and are fed first; the rest follow in the
    /// run's order.
    pub fn with_kept(mut self, codes: Tensor<2, Int>, keep: &[bool]) -> Self {
        let kept = keep.iter().filter(|&&k| k).count();
        for order in &mut self.orders {
            order.sort_by_key(|&p| !keep[p]); // stable: kept cells first, each group in order
        }
        self.kept = Some((codes, kept));
        self
    }

    /// Tokens per image (= steps).
    pub fn steps(&self) -> usize {
        self.orders.first().map_or(0, Vec::len)
    }

    /// `[B, N]` tokens so far in raster order, −1 where none yet.
    pub fn tokens(&self) -> Tensor<2, Int> {
        self.tokens.clone()
    }

    /// Per image, the raster positions in generation order.
    pub fn orders(&self) -> &[Vec<usize>] {
        &self.orders
    }

    /// The next token of every image, or `None` when the map is full.
    pub fn step(&mut self, rar: &Rar) -> Option<RarStep> {
        let n = self.steps();
        if self.step >= n {
            return None;
        }
        let (b, s) = (self.batch, self.step);
        let device = self.labels.device();
        let guided = self.config.guidance != 0.0;
        let at = |s: usize| -> Vec<usize> { self.orders.iter().map(|o| o[s]).collect() };
        let positions = at(s);
        let as_tensor = |p: &[usize]| {
            let p: Vec<i64> = p.iter().map(|&p| p as i64).collect();
            let p = Tensor::<1, Int>::from_data(TensorData::new(p, [b]), &device);
            if guided { Tensor::cat(vec![p.clone(), p], 0) } else { p }
        };

        let logits = match self.pending.take() {
            Some(l) => l,
            None => {
                let labels = if guided {
                    let null = Tensor::<1, Int>::full([b], rar.null_class() as i64, &device);
                    Tensor::cat(vec![self.labels.clone(), null], 0)
                } else {
                    self.labels.clone()
                };
                let (logits, cache) = rar.start(labels, as_tensor(&positions));
                self.cache = Some(cache);
                logits
            }
        };
        let cfg = cfg_scale(self.config.guidance, self.config.guidance_pow, s, n);
        let (mixed, halves) = if guided {
            let (c, u) = (logits.clone().narrow(0, 0, b), logits.narrow(0, b, b));
            (u.clone() + (c.clone() - u.clone()) * cfg, Some((c, u)))
        } else {
            (logits, None)
        };
        let logits = mixed / self.config.filter.temperature;

        let chosen = match &self.kept {
            Some((codes, kept)) if s < *kept => {
                let p: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
                codes.clone().gather(1, Tensor::from_data(TensorData::new(p, [b, 1]), &device)).reshape([b])
            }
            _ => {
                // The temperature is applied above, as the official loop does before softmax.
                let filter = TokenFilter { temperature: 1.0, ..self.config.filter };
                let [_, v] = logits.dims();
                choose_tokens(logits.clone().reshape([b, 1, v]), &filter, &mut self.rng).reshape([b])
            }
        };
        let mut mask = vec![false; b * n];
        for (i, p) in positions.iter().enumerate() {
            mask[i * n + p] = true;
        }
        let mask = Tensor::<2, Bool>::from_data(TensorData::new(mask, [b, n]), &device);
        self.tokens = self.tokens.clone().mask_where(mask, chosen.clone().reshape([b, 1]).expand([b, n]));

        if s + 1 < n {
            let fed = if guided { Tensor::cat(vec![chosen.clone(), chosen.clone()], 0) } else { chosen.clone() };
            let cache = self.cache.as_mut().expect("the cache exists after the first step");
            self.pending = Some(rar.next(cache, fed, as_tensor(&positions), Some(as_tensor(&at(s + 1)))));
        }
        self.step += 1;
        Some(RarStep { index: s, positions, tokens: chosen, cfg, logits, halves })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidance_ramps_as_the_official_schedule() {
        assert_eq!(cfg_scale(4.0, 0.0, 0, 16), 4.0); // 0^0 = 1: constant
        assert_eq!(cfg_scale(4.0, 2.5, 0, 16), 1.0); // starts unguided
        assert!((cfg_scale(4.0, 1.0, 8, 16) - 2.5).abs() < 1e-12); // half-way: half the ramp
    }
}
