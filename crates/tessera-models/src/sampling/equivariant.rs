//! Sampling the equivariant column generator: one column per step, left to right, each drawn by
//! the flow head's Euler ODE from the transformer's output for it.
//! Official: drx-code/EquivariantModeling @4b15f32b, `generator/equ_modeling.py`
//! (`sample_tokens`) and `generator/diffloss.py` (`DiffLoss.sample`).
//!
//! Per column `s` of `N`: the guidance weight is `1 + (cfg − 1) · (s + 1) / N` (the official
//! "linear" schedule; `cfg = 1` turns guidance off and the batch is not doubled), the noise is
//! one `[B, C]` draw shared by both guidance halves, and the column is fed back into the
//! transformer for the next step.
//!
//! Differences from the official code:
//! - The official loop re-runs the whole transformer on all `N` columns every step. Here the
//!   transformer's bounded cache ([`Equivariant::start`] / [`Equivariant::next`]) runs one
//!   single-column pass per step; the results are the same (tested in the model file), memory does
//!   not grow with the width, and the run can go on past `N` ([`ColumnSampling::extend`]).
//! - The noise comes from a seeded CPU stream ([`SplitMix64`]) and is uploaded: the same seed gives
//!   the same images on every device. [`ColumnSampling::step_with_noise`] takes it from the caller
//!   (the parity fixture's noise).
//! - Continuation (official `gt_latents`) feeds the kept columns in one pass
//!   ([`ColumnSampling::with_prefix`]); the guidance schedule still counts them, as officially.
//!
//! Nothing here reads a tensor back.

use burn::prelude::*;

use crate::generators::equivariant::{Equivariant, EquivariantCache};
use crate::rng::{BatchPart, BatchRng};

/// How the guidance weight goes over the columns (official `cfg_schedule`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CfgSchedule {
    /// `1 + (cfg − 1) · (step + 1) / N`: from almost none at the first column to `cfg` at the last.
    #[default]
    Linear,
    /// `cfg` at every column.
    Constant,
}

impl CfgSchedule {
    /// Official guidance weight of column `step` of `total`.
    pub fn at(self, cfg: f64, step: usize, total: usize) -> f64 {
        match self {
            Self::Linear => 1.0 + (cfg - 1.0) * (step + 1) as f64 / total as f64,
            Self::Constant => cfg,
        }
    }
}

/// Settings of a column sampling run.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSamplerConfig {
    /// Official `cfg`: the guidance weight the linear schedule reaches at the last column;
    /// 1 turns guidance off.
    pub cfg: f64,
    pub schedule: CfgSchedule,
    /// Euler steps of the flow head (0: the model's `num_sampling_steps`).
    pub euler_steps: usize,
    pub seed: u64,
}

impl Default for ColumnSamplerConfig {
    /// Guidance 3 (the official README's ImageNet scale range), the model's Euler steps.
    fn default() -> Self {
        Self { cfg: 3.0, schedule: CfgSchedule::Linear, euler_steps: 0, seed: 0 }
    }
}

/// One column sampling run.
#[derive(Debug)]
pub struct ColumnSampling {
    config: ColumnSamplerConfig,
    batch: usize,
    cache: EquivariantCache,
    /// `[B, 1, C]` per column so far (kept, then generated).
    columns: Vec<Tensor<3>>,
    /// The last column, not yet fed to the transformer (fed at the start of the next step, so
    /// the last column of a run costs no transformer pass).
    unfed: Option<Tensor<3>>,
    /// Columns the run makes in all (kept ones included); the guidance schedule's `N`.
    total: usize,
    rng: BatchRng,
    device: Device,
}

impl ColumnSampling {
    /// A run of `total` columns for `labels` (`[B]`).
    pub fn new(model: &Equivariant, labels: Tensor<1, Int>, config: ColumnSamplerConfig, total: usize) -> Self {
        let [batch] = labels.dims();
        let device = labels.device();
        let cond = model.class_embedding(labels);
        let cond = if config.cfg != 1.0 { Tensor::cat(vec![cond, model.null_condition(batch)], 0) } else { cond };
        let rng = BatchRng::new(config.seed, batch, None);
        Self { batch, cache: model.start(cond), columns: Vec::new(), unfed: None, total, rng, config, device }
    }

    /// Makes this run `part` of a larger batch: its images draw the noise they would in the
    /// whole batch (see [`BatchRng`]).
    pub fn part_of(mut self, part: BatchPart) -> Self {
        assert_eq!(self.done(), 0, "a run becomes part of a batch before its first column");
        self.rng = BatchRng::new(self.config.seed, self.batch, Some(part));
        self
    }

    /// Keeps `prefix` (`[B, K, C]`, tokens as the model takes them) as the first `K` columns and
    /// generates the rest.
    ///
    /// # Panics
    /// If columns were generated already or `prefix` does not fit the batch.
    pub fn with_prefix(mut self, prefix: Tensor<3>) -> Self {
        let [b, k, c] = prefix.dims();
        assert!(self.columns.is_empty(), "a prefix must come before the first step");
        assert_eq!(b, self.batch, "the prefix has {b} images, the run {}", self.batch);
        self.columns = (0..k).map(|i| prefix.clone().narrow(1, i, 1)).collect();
        if k > 0 {
            self.unfed = Some(prefix.reshape([b, k, c]));
        }
        self
    }

    /// Columns so far (kept and generated).
    pub fn done(&self) -> usize {
        self.columns.len()
    }

    /// Columns the run makes in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Makes the run `more` columns longer (the schedule's `N` grows with it).
    pub fn extend(&mut self, more: usize) {
        self.total += more;
    }

    /// Guidance weight of the next column.
    pub fn next_cfg(&self) -> f64 {
        self.config.schedule.at(self.config.cfg, self.done(), self.total)
    }

    /// Draws the next column with noise from the run's seeded stream; `None` once all are made.
    pub fn step(&mut self, model: &Equivariant) -> Option<Tensor<3>> {
        if self.done() >= self.total {
            return None;
        }
        let c = model.token_dim();
        let noise = self.rng.normals(c);
        let noise = Tensor::from_data(TensorData::new(noise, [self.batch, c]), &self.device);
        Some(self.step_with_noise(model, noise))
    }

    /// Draws the next column from the given starting noise (`[B, C]`, the flow at t = 1);
    /// returns it, `[B, 1, C]`.
    pub fn step_with_noise(&mut self, model: &Equivariant, noise: Tensor<2>) -> Tensor<3> {
        let guided = self.config.cfg != 1.0;
        if let Some(column) = self.unfed.take() {
            // Both guidance halves see the same columns.
            let column = if guided { Tensor::cat(vec![column.clone(), column], 0) } else { column };
            model.next(&mut self.cache, Some(column));
        }
        let z = model.next(&mut self.cache, None);
        let steps = if self.config.euler_steps == 0 { model.num_sampling_steps() } else { self.config.euler_steps };
        let b = self.batch;
        let column = if guided {
            let cfg = self.next_cfg();
            model.head().sample_euler(noise, z.clone().narrow(0, 0, b), Some(z.narrow(0, b, b)), cfg, steps)
        } else {
            model.head().sample_euler(noise, z, None, 1.0, steps)
        };
        let column = column.reshape([b, 1, model.token_dim()]);
        self.columns.push(column.clone());
        self.unfed = Some(column.clone());
        column
    }

    /// The columns so far, `[B, done, C]` (tokens as the model takes them: scaled by `vae_norm`).
    ///
    /// # Panics
    /// Before the first column.
    pub fn tokens(&self) -> Tensor<3> {
        assert!(!self.columns.is_empty(), "no columns yet");
        Tensor::cat(self.columns.clone(), 1)
    }

    /// The last `k` columns (fewer at the start), `[B, ≤k, C]`.
    pub fn last_tokens(&self, k: usize) -> Tensor<3> {
        let from = self.columns.len().saturating_sub(k);
        Tensor::cat(self.columns[from..].to_vec(), 1)
    }
}
