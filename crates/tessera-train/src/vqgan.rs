//! Training RAR's MaskGIT-VQGAN tokenizer. The official repository only loads Google's weights
//! (bytedance/1d-tokenizer @942a96fb, `modeling/modules/maskgit_vqgan.py`); this trains one from
//! scratch with the official VQ loss ([`Vqgan::quantize_train`]).
//!
//! Loss = `l2 · mse(x̂, x) + l1 · |x̂ − x| + vq · (mse(sg(z_q), z) + β · mse(z_q, sg(z)))`, the
//! decoder fed the straight-through `z_q`; images in `[0, 1]`, as the MaskGIT-VQGAN takes them.
//! Dead codes are re-initialised to encoder outputs of the batch, as for VAR's tokenizer
//! ([`crate::tokenizer`]); no perceptual or GAN loss (small images, short runs).

use burn::config::Config;
use burn::prelude::*;
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::vqgan::{Vqgan, VqganConfig};

use crate::Error;
use crate::checkpoint::{
    Checkpoint, CheckpointHeader, ModelKind, load_weights, named_tensors_from_bytes, named_tensors_to_bytes, weights_to_bytes,
};
use crate::data::mix;
use crate::optim::{AdamW, AdamWConfig};
use crate::schedule::LrScheduleConfig;
use crate::tokenizer::{DeadCodeConfig, TokenizerLossConfig, code_counts, reset_codes};

/// Everything that shapes a MaskGIT-VQGAN training run.
#[derive(Config, Debug)]
pub struct VqganTrainingConfig {
    /// The tokenizer.
    pub model: VqganConfig,
    /// The optimizer (no weight decay by default: it would shrink the codebook).
    #[config(default = "AdamWConfig::new().with_weight_decay(0.0)")]
    pub optimizer: AdamWConfig,
    /// The learning-rate schedule.
    pub schedule: LrScheduleConfig,
    /// Loss weights (`vq` weighs the official VQ loss).
    #[config(default = "TokenizerLossConfig::new()")]
    pub loss: TokenizerLossConfig,
    /// Dead-code re-initialisation.
    #[config(default = "DeadCodeConfig::new()")]
    pub dead_codes: DeadCodeConfig,
    /// Optimizer steps of the whole run.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of the weights, the sample order and the code resets.
    #[config(default = 0)]
    pub seed: u64,
}

impl VqganTrainingConfig {
    /// Checks the config once, before training.
    pub fn validate(&self) -> crate::Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        crate::trainer::check_run(self.steps, self.batch_size, &[], 0)?;
        Ok(())
    }
}

/// What one step measured (read back once per step, before the update).
#[derive(Debug, Clone, PartialEq)]
pub struct VqganStats {
    /// The step these numbers belong to (0-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss.
    pub loss: f32,
    /// Reconstruction PSNR in dB (pixels in `[0, 1]`, before clamping).
    pub psnr: f32,
    /// The VQ loss term (unweighted).
    pub vq_loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Codes re-initialised after this step (0 on steps without a check).
    pub codes_reset: usize,
}

/// A MaskGIT-VQGAN being trained: the model, its optimizer, the codebook usage and the step.
#[derive(Debug, Clone)]
pub struct VqganTrainer {
    config: VqganTrainingConfig,
    model: Vqgan,
    optimizer: AdamW,
    /// Codes picked since the last dead-code check, `[1, V]`.
    usage: Tensor<2>,
    /// The same counts over the window before, `[1, V]` (for reporting).
    usage_before: Tensor<2>,
    step: usize,
    /// The device with autodiff (the model's).
    device: Device,
}

impl VqganTrainer {
    /// A fresh run on `device` (autodiff is enabled on it here).
    pub fn new(config: VqganTrainingConfig, device: &Device) -> crate::Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optimizer = AdamW::new(config.optimizer.clone(), &model);
        let usage = Tensor::zeros([1, config.model.codebook_size], &device.clone().inner());
        Ok(Self { usage_before: usage.clone(), usage, model, optimizer, step: 0, config, device })
    }

    /// Continues the run saved in `checkpoint`, exactly where it stopped.
    pub fn resume(checkpoint: &Checkpoint, device: &Device) -> crate::Result<Self> {
        checkpoint.expect_kind(ModelKind::RarTokenizer)?;
        let weights_only = || Error::Config("the checkpoint holds weights only; it cannot resume training".into());
        if !checkpoint.can_resume() {
            return Err(weights_only());
        }
        let config: VqganTrainingConfig = checkpoint.training_config()?.ok_or_else(weights_only)?;
        checkpoint.expect_model_config(&config.model)?;
        let mut trainer = Self::new(config, device)?;
        trainer.model = load_weights(trainer.model, &checkpoint.weights)?;
        trainer.optimizer = AdamW::from_bytes(trainer.config.optimizer.clone(), &trainer.model, &checkpoint.optimizer, &trainer.device)?;
        let mut state = named_tensors_from_bytes(&checkpoint.state, &trainer.device)?;
        for (name, slot) in [("usage", &mut trainer.usage), ("usage_before", &mut trainer.usage_before)] {
            let t = state.remove(name).ok_or_else(|| Error::Corrupt(format!("trainer state has no `{name}`")))?;
            if t.dims() != slot.dims() {
                return Err(Error::Corrupt(format!("trainer state `{name}` has shape {:?}", t.dims())));
            }
            *slot = t;
        }
        trainer.step = checkpoint.header.step;
        Ok(trainer)
    }

    /// The training config.
    pub fn config(&self) -> &VqganTrainingConfig {
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

    /// The tokenizer as it is now, without autodiff (for sampling, evaluation and saving).
    pub fn model(&self) -> Vqgan {
        self.model.valid()
    }

    /// One optimizer step on `images` (`[B, C, H, W]` in `[0, 1]`).
    ///
    /// Reads the loss back before updating: a NaN or infinite loss or gradient returns
    /// [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] and leaves the model as it was.
    pub async fn step(&mut self, images: Tensor<4>) -> crate::Result<VqganStats> {
        let (step, lr) = (self.step, self.lr());
        let weights = &self.config.loss;
        let x = images.inner().autodiff();

        // 1. Encode, quantise (straight-through), decode.
        let z = self.model.encoder_forward(x.clone());
        let vq = self.model.quantize_train(z.clone());
        let err = self.model.decode_raw(vq.z_q) - x;
        let mse = err.clone().square().mean();
        let mut loss = mse.clone() * weights.l2 + vq.loss.clone() * weights.vq;
        if weights.l1 > 0.0 {
            loss = loss + err.abs().mean() * weights.l1;
        }

        // 2. Codebook usage (no gradient), and whether this step checks for dead codes.
        let vocab = self.config.model.codebook_size;
        self.usage = self.usage.clone() + code_counts(vq.codes.inner(), vocab);
        let every = self.config.dead_codes.every;
        let resetting = every > 0
            && (step + 1).is_multiple_of(every)
            && ((step + 1) as f64) < self.config.dead_codes.until_fraction * self.config.steps as f64;
        let dead = resetting.then(|| self.usage.clone().reshape([vocab]).lower_equal_elem(0.0));

        // 3. Backward, one read back of everything the step reports, and the update; then the
        //    codes unused since the last check are re-initialised.
        let mut report = vec![loss.clone().inner(), mse.inner(), vq.loss.inner()];
        if let Some(dead) = &dead {
            report.push(dead.clone().float().sum());
        }
        let (model, values) = self.optimizer.checked_update(&self.model, loss, report, lr, step).await?;
        let (loss_value, mse_value, vq_value, norm_value) = (values[0], values[1], values[2], values[values.len() - 1]);
        self.model = model;
        let mut codes_reset = 0;
        if let Some(dead) = dead {
            codes_reset = values[3].round() as usize;
            let mut rng = SplitMix64::new(mix(self.config.seed ^ 0xC0DE, step as u64));
            self.model = reset_codes(self.model.clone(), dead, z.inner(), &mut rng);
            self.usage_before = self.usage.clone();
            self.usage = self.usage.zeros_like();
        }

        self.step += 1;
        let psnr = 10.0 * (1.0 / (mse_value as f64).max(1e-12)).log10();
        Ok(VqganStats { step, lr, loss: loss_value, psnr: psnr as f32, vq_loss: vq_value, grad_norm: norm_value, codes_reset })
    }

    /// Fraction of the codebook used over the current and the previous dead-code window, `[1]`
    /// on the device (read it with `into_data_async`).
    pub fn codebook_usage(&self) -> Tensor<1> {
        (self.usage.clone() + self.usage_before.clone()).greater_elem(0.0).float().mean_dim(1).reshape([1])
    }

    /// The run as a checkpoint: weights, optimizer state, codebook usage, step and configs.
    pub async fn checkpoint(&self, metrics: &[(&str, f64)]) -> crate::Result<Checkpoint> {
        let model = self.model();
        Ok(Checkpoint {
            header: CheckpointHeader::of_run(ModelKind::RarTokenizer, &self.config.model, &self.config, self.step, metrics),
            weights: weights_to_bytes(&model).await?,
            optimizer: self.optimizer.to_bytes(&model).await?,
            state: named_tensors_to_bytes(vec![("usage".into(), self.usage.clone()), ("usage_before".into(), self.usage_before.clone())]).await?,
        })
    }
}

/// The tokenizer saved in a checkpoint (training or weights-only), without autodiff.
pub fn load_vqgan(checkpoint: &Checkpoint, device: &Device) -> crate::Result<(VqganConfig, Vqgan)> {
    checkpoint.expect_kind(ModelKind::RarTokenizer)?;
    let config: VqganConfig = checkpoint.model_config()?;
    config.validate()?;
    // The encoder's convolutions and the codebook: a lower bound, checked before building.
    let encoder = crate::checkpoint::conv_levels_weights(config.hidden_channels, &config.channel_mult, config.num_res_blocks);
    checkpoint.expect_weights_for(encoder + (config.codebook_size * config.codebook_dim) as u64)?;
    let model = load_weights(config.init(&device.clone().inner()), &checkpoint.weights)?;
    Ok((config, model))
}
