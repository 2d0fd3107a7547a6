//! Training the equivariant generator's column tokenizer from scratch.
//! Official: drx-code/EquivariantModeling @4b15f32b, `tokenizer/models/tokenizer.py`
//! (`training_step`), `tokenizer/modules/losses/contperceptual.py` (`LPIPSWithDiscriminator`),
//! `configs/first_stage/tokenizer_config.yaml`.
//!
//! Loss per image: `Σ |x − x̂| + kl_weight · ½ Σ mean²` (the official `nll` with its `logvar` at
//! 0, and the L2 "KL" of the fixed-std posterior), averaged over the batch and divided by the
//! pixels per image so the learning rate does not depend on the image size. The decoder sees the
//! posterior's noisy sample (one noise scale per image, as `posterior.sample()`), so it learns to
//! decode the noisy tokens the transformer is trained on. Adam with the official betas (0.5, 0.9),
//! gradient norm clipped at 1; an EMA of the weights (`LitEma`, decay 0.99 with warm-up) is what
//! the checkpoint's weights hold and what sampling uses.
//!
//! Not here (small images, short CPU runs): LPIPS, the DINO discriminator and the DINOv2 semantic
//! alignment (the semantic decoder is not built).

use burn::config::Config;
use burn::prelude::*;
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::columns::{ColumnTokenizer, ColumnTokenizerConfig, Posterior};

use crate::Error;
use crate::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, load_weights, weights_to_bytes};
use crate::data::mix;
use crate::ema::Ema;
use crate::optim::{AdamW, AdamWConfig};
use crate::parts;
use crate::schedule::LrScheduleConfig;

/// Everything that shapes a column tokenizer training run.
#[derive(Config, Debug)]
pub struct ColumnTokenizerTrainingConfig {
    /// The tokenizer.
    pub model: ColumnTokenizerConfig,
    /// The optimizer (official: Adam, betas 0.5 / 0.9, no weight decay; clip 1.0).
    #[config(default = "AdamWConfig::new().with_beta1(0.5).with_beta2(0.9).with_weight_decay(0.0).with_grad_clip(1.0)")]
    pub optimizer: AdamWConfig,
    /// The learning-rate schedule.
    pub schedule: LrScheduleConfig,
    /// Weight of the L2 "KL" (official `kl_weight` 0.01 with sums over pixels and dimensions).
    #[config(default = 0.01)]
    pub kl_weight: f64,
    /// Decay of the weight average (official `LitEma` default 0.99, warmed up).
    #[config(default = 0.99)]
    pub ema_decay: f64,
    /// Optimizer steps of the whole run.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of the weights, the sample order and the posterior noise.
    #[config(default = 0)]
    pub seed: u64,
}

impl ColumnTokenizerTrainingConfig {
    /// Checks the config once, before training.
    pub fn validate(&self) -> crate::Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        crate::trainer::check_run(self.steps, self.batch_size, &[], 0)?;
        if self.model.semantic.is_some() {
            return Err(Error::Config("the semantic branch needs DINOv2 targets: train without it".into()));
        }
        if !(0.0..1.0).contains(&self.ema_decay) || !(self.kl_weight >= 0.0) {
            return Err(Error::Config(format!("ema_decay must be in [0, 1) and kl_weight at least 0: {} / {}", self.ema_decay, self.kl_weight)));
        }
        Ok(())
    }
}

/// What one step measured (read back once per step, before the update).
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnTokenizerStats {
    /// The step these numbers belong to (0-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss (per pixel).
    pub loss: f32,
    /// Reconstruction PSNR in dB of the noisy-token decode (pixels in `[-1, 1]` mapped to `[0, 1]`).
    pub psnr: f32,
    /// Mean L2 "KL" per image.
    pub kl: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// A column tokenizer being trained: the model, its optimizer, its weight average and the step.
#[derive(Debug, Clone)]
pub struct ColumnTokenizerTrainer {
    config: ColumnTokenizerTrainingConfig,
    model: ColumnTokenizer,
    ema: Ema<ColumnTokenizer>,
    optimizer: AdamW,
    step: usize,
    /// The device with autodiff (the model's).
    device: Device,
}

impl ColumnTokenizerTrainer {
    /// A fresh run on `device` (autodiff is enabled on it here).
    pub fn new(config: ColumnTokenizerTrainingConfig, device: &Device) -> crate::Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optimizer = AdamW::new(config.optimizer.clone(), &model);
        let ema = Ema::new(model.valid(), config.ema_decay, true);
        Ok(Self { config, model, ema, optimizer, step: 0, device })
    }

    /// Continues the run saved in `checkpoint`, exactly where it stopped.
    pub fn resume(checkpoint: &Checkpoint, device: &Device) -> crate::Result<Self> {
        checkpoint.expect_kind(ModelKind::ColumnsTokenizer)?;
        let weights_only = || Error::Config("the checkpoint holds weights only; it cannot resume training".into());
        if !checkpoint.can_resume() {
            return Err(weights_only());
        }
        let config: ColumnTokenizerTrainingConfig = checkpoint.training_config()?.ok_or_else(weights_only)?;
        checkpoint.expect_model_config(&config.model)?;
        let mut trainer = Self::new(config, device)?;
        // The weights are the average; the trained weights travel in the trainer state.
        trainer.model = load_weights(trainer.model, &checkpoint.state)?;
        let averaged = load_weights(trainer.ema.module().clone(), &checkpoint.weights)?;
        let step = checkpoint.header.step;
        trainer.ema = Ema::resume(averaged, trainer.config.ema_decay, true, step);
        trainer.optimizer = AdamW::from_bytes(trainer.config.optimizer.clone(), &trainer.model, &checkpoint.optimizer, &trainer.device)?;
        trainer.step = step;
        Ok(trainer)
    }

    /// The training config.
    pub fn config(&self) -> &ColumnTokenizerTrainingConfig {
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

    /// The device it trains on (with autodiff).
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The weight average, without autodiff: what sampling and the checkpoints use.
    pub fn model(&self) -> ColumnTokenizer {
        self.ema.module().clone()
    }

    /// One optimizer step on `images` (`[B, C, H, W]` in `[-1, 1]`).
    ///
    /// Reads the loss back before updating: a NaN or infinite loss or gradient returns
    /// [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] and leaves the model as it was.
    pub async fn step(&mut self, images: Tensor<4>) -> crate::Result<ColumnTokenizerStats> {
        let (step, lr) = (self.step, self.lr());
        let x = images.inner().autodiff();
        let [b, c, h, w] = x.dims();
        let (pixels, kl_weight) = ((c * h * w) as f64, self.config.kl_weight);

        // 1. The posterior's noise, drawn for the whole batch (seeded per step): a part keeps its rows.
        let (n, e) = (self.config.model.tokens_for_width(w), self.config.model.embed_dim);
        let mut rng = SplitMix64::new(mix(self.config.seed ^ 0xC011, step as u64));
        let (scales, eps) = Posterior::noise(&mut rng, [b, n, e]);

        // 2. Encode, draw from the posterior, decode: in parts side by side on the CPU's cores.
        let parts = parts::split(&self.device, b)
            .into_iter()
            .map(|rows| {
                let (s, k) = (rows.start, rows.len());
                let input = (x.clone().narrow(0, s, k), scales[rows.clone()].to_vec(), eps[s * n * e..(s + k) * n * e].to_vec());
                (rows, input)
            })
            .collect();
        // The tokenizer has no dropout: no stream to seed.
        let (report, grads) = parts::gradients(&self.model, parts, 0, |model, (x, scales, eps)| {
            let (k, device) = (x.dims()[0], x.device());
            let posterior = model.posterior(x.clone());
            let scales = Tensor::from_data(TensorData::new(scales, [k]), &device);
            let tokens = posterior.sample_with(scales, Tensor::from_data(TensorData::new(eps, [k, n, e]), &device));
            let err = model.decode(tokens) - x;
            let l1 = err.clone().abs().sum() / (k as f64 * pixels);
            let kl = posterior.kl().mean();
            let loss = l1 + kl.clone() * (kl_weight / pixels);
            (loss, vec![err.square().mean().inner(), kl.inner()])
        });

        // 3. One read back of everything the step reports, and the update.
        let (model, values) = self.optimizer.checked_update_with(&self.model, grads, report, lr, step).await?;
        let (loss_value, mse_value, kl_value, norm_value) = (values[0], values[1], values[2], values[3]);
        self.model = model;
        self.ema.update(&self.model.valid());
        self.step += 1;
        // Pixels in [-1, 1]: the [0, 1] error is half, its square a quarter.
        let psnr = 10.0 * (1.0 / (mse_value as f64 / 4.0).max(1e-12)).log10();
        Ok(ColumnTokenizerStats { step, lr, loss: loss_value, psnr: psnr as f32, kl: kl_value, grad_norm: norm_value })
    }

    /// The run as a checkpoint: the averaged weights (what samplers load), the trained weights and
    /// the optimizer state (to resume), step and configs.
    pub async fn checkpoint(&self, metrics: &[(&str, f64)]) -> crate::Result<Checkpoint> {
        let live = self.model.valid();
        Ok(Checkpoint {
            header: CheckpointHeader::of_run(ModelKind::ColumnsTokenizer, &self.config.model, &self.config, self.step, metrics),
            weights: weights_to_bytes(self.ema.module()).await?,
            optimizer: self.optimizer.to_bytes(&live).await?,
            state: weights_to_bytes(&live).await?,
        })
    }
}

/// The tokenizer saved in a checkpoint (training or weights-only), without autodiff.
pub fn load_column_tokenizer(checkpoint: &Checkpoint, device: &Device) -> crate::Result<(ColumnTokenizerConfig, ColumnTokenizer)> {
    checkpoint.expect_kind(ModelKind::ColumnsTokenizer)?;
    let config: ColumnTokenizerConfig = checkpoint.model_config()?;
    config.validate()?;
    // The encoder's convolutions: a lower bound, checked before building.
    checkpoint.expect_weights_for(crate::checkpoint::conv_levels_weights(config.ch, &config.ch_mult, config.num_res_blocks))?;
    let model = load_weights(config.init(&device.clone().inner()), &checkpoint.weights)?;
    Ok((config, model))
}
