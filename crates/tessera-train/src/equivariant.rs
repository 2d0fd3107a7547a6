//! Training the equivariant column transformer and its flow head on a frozen column tokenizer.
//! Official: drx-code/EquivariantModeling @4b15f32b, `generator/engine_generator.py`
//! (`train_one_epoch`, `update_ema`), `scripts/train_generator.py`, `generator/equ_modeling.py`
//! (`forward`, `forward_loss`) and `generator/diffloss.py` (`DiffLoss.forward`).
//!
//! Each step: the images' tokens are a draw from the tokenizer's posterior (official
//! `posterior.sample()`) times `vae_norm`; each sample's condition is its class embedding, or the
//! learned null with probability `label_drop_prob`; the RoPE positions are shifted by one draw from
//! `0..shift_num`; every (output, column) pair is repeated `diffusion_batch_mul` times with its own
//! noise and time in the rectified-flow loss. AdamW (0.9, 0.95), weight decay 0.02 except the
//! official exclusions ([`decays`]), gradient norm clipped at 3, an EMA of the weights for
//! sampling (what the checkpoints' weights hold).
//!
//! `vae_norm` (official: a constant, 0.05493, for their tokenizer) is measured on the first batch
//! here: one over the standard deviation of its token draws, so they reach the transformer with unit
//! scale whatever the tokenizer; it is saved in the model config.
//!
//! Differences from the official code: f32 throughout; the label drop, the shift, the posterior
//! noise and the flow noise come from a seeded CPU stream per step, and dropout from a stream
//! seeded per step (per part of the batch on the CPU, `parts.rs`; the device's on a GPU), so a
//! resumed run takes exactly the steps an uninterrupted one would (on the CPU: with as many
//! threads, which the batch's split follows). The EMA warms up (`(1 + n) / (10 + n)`, as the
//! tokenizer's `LitEma`) since short runs would otherwise keep the random initial weights in the
//! average.

use burn::config::Config;
use burn::prelude::*;
use tessera_models::generators::equivariant::{Equivariant, EquivariantConfig, decays};
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::columns::{ColumnTokenizer, Posterior};

use crate::Error;
use crate::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, load_weights, weights_to_bytes};
use crate::data::mix;
use crate::ema::Ema;
use crate::optim::{AdamW, AdamWConfig};
use crate::parts;
use crate::schedule::LrScheduleConfig;

/// Everything that shapes an equivariant training run.
#[derive(Config, Debug)]
pub struct EquivariantTrainingConfig {
    /// The transformer and head (its `token_dim` is the tokenizer's token width).
    pub model: EquivariantConfig,
    /// The optimizer (official: betas 0.9 / 0.95, weight decay 0.02, clip 3.0).
    #[config(default = "AdamWConfig::new().with_beta2(0.95).with_weight_decay(0.02).with_grad_clip(3.0)")]
    pub optimizer: AdamWConfig,
    /// The learning-rate schedule (official: linear warm-up, then constant).
    pub schedule: LrScheduleConfig,
    /// Decay of the weight average (official 0.9999, for runs of a million steps).
    #[config(default = 0.999)]
    pub ema_decay: f64,
    /// Measure `vae_norm` on the first batch (else keep the model config's).
    #[config(default = true)]
    pub measure_vae_norm: bool,
    /// Train on the first K token columns of each image only (the paper's sub-task transfer:
    /// trained on half the positions, evaluated on all); `None`: every column.
    #[config(default = "None")]
    pub train_columns: Option<usize>,
    /// Optimizer steps of the whole run.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of the weights, the sample order and every random draw.
    #[config(default = 0)]
    pub seed: u64,
    /// Names of the classes, label order (saved so samplers can name them; may be empty).
    #[config(default = "Vec::new()")]
    pub class_names: Vec<String>,
}

impl EquivariantTrainingConfig {
    /// Checks the config once, before training.
    pub fn validate(&self) -> crate::Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        crate::trainer::check_run(self.steps, self.batch_size, &self.class_names, self.model.class_num)?;
        if self.train_columns.is_some_and(|k| k == 0 || k > self.model.token_num) {
            return Err(Error::Config(format!("train_columns must be 1 to {} (the image's columns)", self.model.token_num)));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(Error::Config(format!("ema_decay must be in [0, 1), not {}", self.ema_decay)));
        }
        Ok(())
    }
}

/// Errors with every difference unless the transformer takes `tokenizer`'s tokens.
pub fn check_tokenizer(model: &EquivariantConfig, tokenizer: &ColumnTokenizer) -> crate::Result<()> {
    if model.token_dim == tokenizer.embed_dim() {
        return Ok(());
    }
    Err(Error::ConfigMismatch {
        differences: vec![format!("token_dim: transformer {}, tokenizer {}", model.token_dim, tokenizer.embed_dim())],
    })
}

/// What one step measured (read back once per step, before the update).
#[derive(Debug, Clone, PartialEq)]
pub struct EquivariantStats {
    /// The step these numbers belong to (0-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Rectified-flow loss (mean squared velocity error).
    pub loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// The token scale in use.
    pub vae_norm: f64,
}

/// An equivariant transformer being trained on a frozen column tokenizer.
#[derive(Debug, Clone)]
pub struct EquivariantTrainer {
    config: EquivariantTrainingConfig,
    model: Equivariant,
    ema: Ema<Equivariant>,
    tokenizer: ColumnTokenizer,
    /// [`crate::checkpoint::fingerprint`] of the tokenizer's weights, saved with the checkpoints.
    tokenizer_fingerprint: Option<String>,
    optimizer: AdamW,
    step: usize,
    /// The device with autodiff (the model's).
    device: Device,
}

impl EquivariantTrainer {
    /// A fresh run on `device` (autodiff is enabled on it here); the tokenizer stays frozen.
    pub fn new(config: EquivariantTrainingConfig, tokenizer: ColumnTokenizer, device: &Device) -> crate::Result<Self> {
        config.validate()?;
        check_tokenizer(&config.model, &tokenizer)?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optimizer = AdamW::new(config.optimizer.clone(), &model).with_decay_rule(&model, decays);
        let ema = Ema::new(model.valid(), config.ema_decay, true);
        Ok(Self { config, model, ema, tokenizer: tokenizer.valid(), tokenizer_fingerprint: None, optimizer, step: 0, device })
    }

    /// Records which tokenizer this run uses (saved in its checkpoints).
    pub fn with_tokenizer_fingerprint(mut self, fingerprint: String) -> Self {
        self.tokenizer_fingerprint = Some(fingerprint);
        self
    }

    /// Continues the run saved in `checkpoint` with the same tokenizer, exactly where it stopped.
    pub fn resume(checkpoint: &Checkpoint, tokenizer: ColumnTokenizer, device: &Device) -> crate::Result<Self> {
        checkpoint.expect_kind(ModelKind::Equivariant)?;
        let weights_only = || Error::Config("the checkpoint holds weights only; it cannot resume training".into());
        if !checkpoint.can_resume() {
            return Err(weights_only());
        }
        let mut config: EquivariantTrainingConfig = checkpoint.training_config()?.ok_or_else(weights_only)?;
        // The measured token scale lives in the model config the checkpoint saved last.
        config.model = checkpoint.model_config()?;
        let mut trainer = Self::new(config, tokenizer, device)?;
        trainer.model = load_weights(trainer.model, &checkpoint.state)?;
        let averaged = load_weights(trainer.ema.module().clone(), &checkpoint.weights)?;
        let step = checkpoint.header.step;
        trainer.ema = Ema::resume(averaged, trainer.config.ema_decay, true, step);
        trainer.optimizer = AdamW::from_bytes(trainer.config.optimizer.clone(), &trainer.model, &checkpoint.optimizer, device)?
            .with_decay_rule(&trainer.model, decays);
        trainer.step = step;
        trainer.tokenizer_fingerprint = checkpoint.header.tokenizer.clone();
        Ok(trainer)
    }

    /// The training config (its model config carries the measured `vae_norm`).
    pub fn config(&self) -> &EquivariantTrainingConfig {
        &self.config
    }

    /// Steps taken so far (the index of the next step).
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.config.schedule.lr(self.step, self.config.steps)
    }

    /// The weight average, without autodiff: what sampling and the checkpoints use.
    pub fn model(&self) -> Equivariant {
        self.ema.module().clone()
    }

    /// The frozen tokenizer.
    pub fn tokenizer(&self) -> &ColumnTokenizer {
        &self.tokenizer
    }

    /// The device it trains on (with autodiff).
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// One optimizer step on `images` (`[B, C, H, W]` in `[-1, 1]`, as the tokenizer takes them)
    /// with class `labels` (`[B]`): a posterior draw of their tokens, scaled by `vae_norm` (measured
    /// on the first batch's draws, which are what the transformer learns to make), then
    /// [`Self::step_tokens`].
    pub async fn step(&mut self, images: Tensor<4>, labels: Tensor<1, Int>) -> crate::Result<EquivariantStats> {
        let mut rng = SplitMix64::new(mix(self.config.seed ^ 0xE0E1, self.step as u64));
        let tokenizer = &self.tokenizer;
        let mean = parts::by_rows(images.inner(), |rows| tokenizer.posterior(rows).mean);
        let draws = Posterior { mean, std: tokenizer.posterior_std() }.sample(&mut rng);
        if self.step == 0 && self.config.measure_vae_norm {
            let numel = draws.shape().num_elements();
            let std = draws.clone().reshape([numel]).var(0).sqrt().into_data_async().await.map_err(Error::readback).and_then(crate::error::on_host)?;
            let std = std.iter::<f32>().next().unwrap_or(1.0) as f64;
            if !(std.is_finite() && std > 0.0) {
                return Err(Error::Config(format!("the tokenizer's tokens have no spread (std {std}): train the tokenizer first")));
            }
            self.config.model.vae_norm = 1.0 / std;
        }
        let tokens = draws * self.config.model.vae_norm;
        self.step_tokens(tokens, labels).await
    }

    /// One optimizer step on tokens already scaled as the transformer takes them (`[B, N, C]`)
    /// with class `labels` (`[B]`).
    ///
    /// Reads the loss back before updating: a NaN or infinite loss or gradient returns
    /// [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] and leaves the model as it was.
    pub async fn step_tokens(&mut self, tokens: Tensor<3>, labels: Tensor<1, Int>) -> crate::Result<EquivariantStats> {
        let (step, lr) = (self.step, self.lr());
        self.device.seed(mix(self.config.seed ^ 0xD209, step as u64));
        let mut rng = SplitMix64::new(mix(self.config.seed ^ 0xE0E0, step as u64));
        let m = &self.config.model;
        let mut tokens = tokens.inner().autodiff();
        if let Some(k) = self.config.train_columns {
            tokens = tokens.narrow(1, 0, k);
        }
        let [b, n, c] = tokens.dims();

        // 1. Conditions (label drop), the RoPE shift, and the flow's noise and times, drawn for the
        //    whole batch: a part keeps its own rows.
        let labels = labels.inner();
        let device = labels.device();
        let drop: Vec<bool> = (0..b).map(|_| (rng.next_f32() as f64) < m.label_drop_prob).collect();
        let shift = (rng.next_u64() % m.shift_num.max(1) as u64) as usize;
        let (mul, rows) = (m.diffusion_batch_mul, m.diffusion_batch_mul * b * n);
        let noise = rng.normals(rows * c);
        let u = rng.uniforms(rows);

        // 2. Each part's loss and gradients, side by side on the CPU's cores.
        let parts = parts::split(&self.device, b)
            .into_iter()
            .map(|range| {
                let (s, k) = (range.start, range.len());
                // Repeated row `r · B·N + i` of the batch is row `r · k·N + (i − s·N)` of the part.
                let part_rows = |per_row: usize, all: &[f32]| -> Vec<f32> {
                    (0..mul).flat_map(|r| &all[(r * b * n + s * n) * per_row..(r * b * n + (s + k) * n) * per_row]).copied().collect()
                };
                let input = PartInput {
                    tokens: tokens.clone().narrow(0, s, k),
                    labels: labels.clone().narrow(0, s, k).autodiff(),
                    drop: Tensor::<1, Bool>::from_data(TensorData::new(drop[range.clone()].to_vec(), [k]), &device).autodiff(),
                    noise: Tensor::<2>::from_data(TensorData::new(part_rows(c, &noise), [mul * k * n, c]), &device).autodiff(),
                    u: Tensor::<1>::from_data(TensorData::new(part_rows(1, &u), [mul * k * n]), &device).autodiff(),
                };
                (range, input)
            })
            .collect();
        let dropout_seed = mix(self.config.seed ^ 0xD20A, step as u64);
        let (report, grads) = parts::gradients(&self.model, parts, dropout_seed, |model, p: PartInput| {
            let cond = model.condition(p.labels, p.drop);
            (model.loss(p.tokens, cond, shift, p.noise, p.u), Vec::new())
        });
        let vae_norm = m.vae_norm;

        // 3. One read back, the update, the average.
        let (model, values) = self.optimizer.checked_update_with(&self.model, grads, report, lr, step).await?;
        self.model = model;
        self.ema.update(&self.model.valid());
        self.step += 1;
        Ok(EquivariantStats { step, lr, loss: values[0], grad_norm: values[1], vae_norm })
    }

    /// The run as a checkpoint: the averaged weights (what samplers load), the trained weights and
    /// the optimizer state (to resume), step and configs.
    pub async fn checkpoint(&self, metrics: &[(&str, f64)]) -> crate::Result<Checkpoint> {
        let live = self.model.valid();
        Ok(Checkpoint {
            header: CheckpointHeader {
                tokenizer: self.tokenizer_fingerprint.clone(),
                ..CheckpointHeader::of_run(ModelKind::Equivariant, &self.config.model, &self.config, self.step, metrics)
            },
            weights: weights_to_bytes(self.ema.module()).await?,
            optimizer: self.optimizer.to_bytes(&live).await?,
            state: weights_to_bytes(&live).await?,
        })
    }
}

/// One part's share of a step's inputs.
struct PartInput {
    tokens: Tensor<3>,
    labels: Tensor<1, Int>,
    drop: Tensor<1, Bool>,
    noise: Tensor<2>,
    u: Tensor<1>,
}

/// The transformer saved in a checkpoint (training or weights-only), without autodiff.
pub fn load_equivariant(checkpoint: &Checkpoint, device: &Device) -> crate::Result<(EquivariantConfig, Equivariant)> {
    checkpoint.expect_kind(ModelKind::Equivariant)?;
    let config: EquivariantConfig = checkpoint.model_config()?;
    config.validate()?;
    // The transformer's blocks and class table: a lower bound, checked before building.
    let blocks = crate::checkpoint::transformer_weights(config.depth, config.embed_dim, config.mlp_hidden(), 0);
    checkpoint.expect_weights_for(blocks + (config.class_num * config.embed_dim) as u64)?;
    let model = load_weights(config.init(&device.clone().inner()), &checkpoint.weights)?;
    Ok((config, model))
}
