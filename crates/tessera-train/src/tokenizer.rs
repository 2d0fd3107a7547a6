//! Training VAR's multi-scale VQ-VAE tokenizer, which the official repository never released.
//! Paper: arXiv 2404.02905, eq. 5 (`L = L2(img) + L2(f, f̂) + λ_P LPIPS + λ_G GAN`).
//! Official VQ term: FoundationVision/VAR @78b95394, `models/quant.py` (`VectorQuantizer2.forward`,
//! used through [`MsVqVae::quantize_train`]).
//!
//! Loss = `l2 · mse(x̂, x) + l1 · |x̂ - x| + vq · (mean over scales of β·mse(sg(f̂), f) + mse(f̂, sg(f)))`,
//! the decoder fed the straight-through `f̂`. Images are in `[-1, 1]` with the dataset's own
//! channel count (MNIST: 1).
//!
//! Differences from the paper and the official code:
//! - No LPIPS and no GAN term: small images and short runs; an optional L1 term instead.
//! - Dead codes are re-initialised: every `dead_codes.every` steps, codes that no scale picked
//!   since the last check become encoder outputs `f` drawn at random from the current batch
//!   (the standard remedy for codebook collapse, which third parties report on coarse scales;
//!   the official code only logs usage in `ema_vocab_hit_SV`).
//! - AdamW with no weight decay by default and a `lin0` schedule: the official recipe is unknown.

use burn::config::Config;
use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::msvq::{MsVqVae, MsVqVaeConfig};

use crate::checkpoint::{
    Checkpoint, CheckpointHeader, ModelKind, load_weights, named_tensors_from_bytes, named_tensors_to_bytes,
    weights_to_bytes,
};
use crate::data::mix;
use crate::optim::{AdamW, AdamWConfig};
use crate::schedule::LrScheduleConfig;
use crate::Error;

/// Weights of the tokenizer's loss terms.
#[derive(Config, Debug)]
pub struct TokenizerLossConfig {
    /// Pixel mean squared error.
    #[config(default = 1.0)]
    pub l2: f64,
    /// Pixel mean absolute error (0 = off).
    #[config(default = 0.0)]
    pub l1: f64,
    /// The official per-scale VQ loss (codebook + β · commitment).
    #[config(default = 1.0)]
    pub vq: f64,
}

/// When unused codes are re-initialised.
#[derive(Config, Debug)]
pub struct DeadCodeConfig {
    /// Check every this many steps (0 = never): codes no scale picked since the last check are
    /// reset to random encoder outputs of the batch.
    #[config(default = 100)]
    pub every: usize,
    /// No resets after this fraction of the run, so the codebook settles before the end.
    #[config(default = 0.8)]
    pub until_fraction: f64,
}

/// Everything that shapes a tokenizer training run.
#[derive(Config, Debug)]
pub struct TokenizerTrainingConfig {
    /// The tokenizer.
    pub model: MsVqVaeConfig,
    /// The optimizer (no weight decay by default: it would shrink the codebook).
    #[config(default = "AdamWConfig::new().with_weight_decay(0.0)")]
    pub optimizer: AdamWConfig,
    /// The learning-rate schedule.
    pub schedule: LrScheduleConfig,
    /// Loss weights.
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

impl TokenizerTrainingConfig {
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
pub struct TokenizerStats {
    /// The step these numbers belong to (0-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Total loss.
    pub loss: f32,
    /// Pixel mean squared error in `[-1, 1]` units.
    pub mse: f32,
    /// Reconstruction PSNR in dB for pixels in `[0, 1]` (from `mse`, before clamping).
    pub psnr: f32,
    /// The VQ loss term (unweighted).
    pub vq_loss: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// Codes re-initialised after this step (0 on steps without a check).
    pub codes_reset: usize,
}

/// PSNR (dB) of images in `[0, 1]` from a mean squared error measured in `[-1, 1]` units.
pub fn psnr_from_mse(mse: f64) -> f64 {
    10.0 * (4.0 / mse.max(1e-12)).log10()
}

/// A tokenizer being trained: the model, its optimizer, the codebook usage and the step.
#[derive(Debug, Clone)]
pub struct TokenizerTrainer {
    config: TokenizerTrainingConfig,
    model: MsVqVae,
    optimizer: AdamW,
    /// Codes picked per scale since the last dead-code check, `[S, V]`.
    usage: Tensor<2>,
    /// The same counts over the window before, `[S, V]` (for reporting).
    usage_before: Tensor<2>,
    step: usize,
    device: Device,
}

impl TokenizerTrainer {
    /// A fresh run on `device` (autodiff is enabled on it here).
    pub fn new(config: TokenizerTrainingConfig, device: &Device) -> crate::Result<Self> {
        config.validate()?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optimizer = AdamW::new(config.optimizer.clone(), &model);
        let usage = Self::zero_usage(&config.model, &device);
        Ok(Self { usage_before: usage.clone(), usage, model, optimizer, step: 0, config, device })
    }

    /// Continues the run saved in `checkpoint`, at its step, with its training config; `steps`
    /// replaces the saved run length when given (which stretches the schedule).
    pub fn resume(checkpoint: &Checkpoint, steps: Option<usize>, device: &Device) -> crate::Result<Self> {
        checkpoint.expect_kind(ModelKind::VarTokenizer)?;
        if !checkpoint.can_resume() {
            return Err(Error::Config("the checkpoint holds weights only; it cannot resume training".into()));
        }
        let mut config: TokenizerTrainingConfig = checkpoint
            .training_config()?
            .ok_or_else(|| Error::Config("the checkpoint holds weights only; it cannot resume training".into()))?;
        checkpoint.expect_model_config(&config.model)?;
        if let Some(steps) = steps {
            config.steps = steps;
        }
        let mut trainer = Self::new(config, device)?;
        trainer.model = load_weights(trainer.model, &checkpoint.weights)?;
        trainer.optimizer =
            AdamW::from_bytes(trainer.config.optimizer.clone(), &trainer.model, &checkpoint.optimizer, &trainer.device)?;
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

    fn zero_usage(model: &MsVqVaeConfig, device: &Device) -> Tensor<2> {
        Tensor::zeros([model.patch_nums.len(), model.vocab_size], &device.clone().inner())
    }

    /// The training config.
    pub fn config(&self) -> &TokenizerTrainingConfig {
        &self.config
    }

    /// Steps taken so far (the index of the next step).
    pub fn step_index(&self) -> usize {
        self.step
    }

    /// Whether the run has taken all its steps.
    pub fn is_done(&self) -> bool {
        self.step >= self.config.steps
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
    pub fn model(&self) -> MsVqVae {
        self.model.valid()
    }

    /// One optimizer step on `images` (`[B, C, H, W]` in `[-1, 1]`, any device context).
    ///
    /// Reads the loss back before updating: a NaN or infinite loss or gradient returns
    /// [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] and leaves the model as it was.
    pub async fn step(&mut self, images: Tensor<4>) -> crate::Result<TokenizerStats> {
        let step = self.step;
        let lr = self.lr();
        let loss_weights = &self.config.loss;
        let x = images.inner().autodiff();

        // 1. Forward: encode, quantise scale by scale (straight-through), decode.
        let f = self.model.encode(x.clone());
        let vq = self.model.quantize_train(f.clone());
        let err = self.model.decode_raw(vq.f_hat) - x;
        let mse = err.clone().square().mean();
        let mut loss = mse.clone() * loss_weights.l2 + vq.vq_loss.clone() * loss_weights.vq;
        if loss_weights.l1 > 0.0 {
            loss = loss + err.abs().mean() * loss_weights.l1;
        }

        // 2. Codebook usage of this batch, per scale (no gradient).
        let vocab = self.config.model.vocab_size;
        let counts: Vec<Tensor<2>> = vq.idx.iter().map(|idx| code_counts(idx.clone().inner(), vocab)).collect();
        self.usage = self.usage.clone() + Tensor::cat(counts, 0);
        let check = self.config.dead_codes.every;
        let resetting = check > 0
            && (step + 1) % check == 0
            && ((step + 1) as f64) < self.config.dead_codes.until_fraction * self.config.steps as f64;
        let dead = resetting.then(|| self.usage.clone().sum_dim(0).reshape([vocab]).lower_equal_elem(0.0));

        // 3. Backward, one read back of everything the step reports, and the update.
        let mut report = vec![loss.clone().inner(), mse.inner(), vq.vq_loss.inner()];
        if let Some(dead) = &dead {
            report.push(dead.clone().float().sum());
        }
        let (model, values) = self.optimizer.checked_update(&self.model, loss, report, lr, step).await?;
        let (loss_value, mse_value, vq_value, norm_value) = (values[0], values[1], values[2], values[values.len() - 1]);
        self.model = model;

        // 4. Dead codes: unused since the last check → random encoder outputs of this batch.
        let mut codes_reset = 0;
        if let Some(dead) = dead {
            codes_reset = values[3].round() as usize;
            let mut rng = SplitMix64::new(mix(self.config.seed ^ 0xC0DE, step as u64));
            self.model = reset_codes(self.model.clone(), dead, f.inner(), &mut rng);
            self.usage_before = self.usage.clone();
            self.usage = self.usage.zeros_like();
        }

        self.step += 1;
        Ok(TokenizerStats {
            step,
            lr,
            loss: loss_value,
            mse: mse_value,
            psnr: psnr_from_mse(mse_value as f64) as f32,
            vq_loss: vq_value,
            grad_norm: norm_value,
            codes_reset,
        })
    }

    /// Fraction of the codebook each scale used over the current and the previous dead-code
    /// window, `[S]` on the device (read it with `into_data_async`).
    pub fn codebook_usage(&self) -> Tensor<1> {
        let [s, _] = self.usage.dims();
        (self.usage.clone() + self.usage_before.clone()).greater_elem(0.0).float().mean_dim(1).reshape([s])
    }

    /// Reconstructions of `images` (`[B, C, H, W]` in `[-1, 1]`) by the current tokenizer,
    /// clamped to `[-1, 1]`, without autodiff.
    pub fn reconstruct(&self, images: Tensor<4>) -> Tensor<4> {
        reconstruct(&self.model(), images.inner())
    }

    /// The run as a checkpoint: weights, optimizer state, codebook usage, step and configs.
    pub async fn checkpoint(&self, metrics: &[(&str, f64)]) -> crate::Result<Checkpoint> {
        let model = self.model();
        Ok(Checkpoint {
            header: CheckpointHeader::of_run(ModelKind::VarTokenizer, &self.config.model, &self.config, self.step, metrics),
            weights: weights_to_bytes(&model).await?,
            optimizer: self.optimizer.to_bytes(&model).await?,
            state: named_tensors_to_bytes(vec![
                ("usage".into(), self.usage.clone()),
                ("usage_before".into(), self.usage_before.clone()),
            ])
            .await?,
        })
    }
}

/// The tokenizer saved in a checkpoint (training or weights-only), without autodiff.
pub fn load_tokenizer(checkpoint: &Checkpoint, device: &Device) -> crate::Result<(MsVqVaeConfig, MsVqVae)> {
    checkpoint.expect_kind(ModelKind::VarTokenizer)?;
    let config: MsVqVaeConfig = checkpoint.model_config()?;
    config.validate()?;
    // The encoder's convolutions and the codebook: a lower bound, checked before building.
    let implied = crate::checkpoint::conv_levels_weights(config.ch, &config.ch_mult, config.num_res_blocks) + (config.vocab_size * config.z_channels) as u64;
    checkpoint.expect_weights_for(implied)?;
    let model = load_weights(config.init(&device.clone().inner()), &checkpoint.weights)?;
    Ok((config, model))
}

/// Reconstructions through all scales, clamped to `[-1, 1]`.
pub fn reconstruct(model: &MsVqVae, images: Tensor<4>) -> Tensor<4> {
    let codes = model.quantize(model.encode(images));
    model.decode(codes.f_hat.last().expect("at least one scale").clone())
}

/// How often each code appears in `idx`: `[B, l]` → `[1, V]` (compares against `0..V` instead
/// of `one_hot`, whose argument check reads back).
pub(crate) fn code_counts(idx: Tensor<2, Int>, vocab: usize) -> Tensor<2> {
    let [b, l] = idx.dims();
    let n = b * l;
    let codes = Tensor::<1, Int>::arange(0..vocab as i64, &idx.device()).reshape([1, vocab]).expand([n, vocab]);
    idx.reshape([n, 1]).expand([n, vocab]).equal(codes).float().sum_dim(0)
}

/// Sets the codebook rows (at [`CODEBOOK_PATH`]) flagged in `dead` (`[V]`) to rows of `f`
/// (`[B, Cvae, h, w]`) picked at random, keeping the parameter's identity (and so its optimizer
/// state). VAR's and RAR's tokenizers keep their codebook at the same path.
pub(crate) fn reset_codes<M: Module>(model: M, dead: Tensor<1, Bool>, f: Tensor<4>, rng: &mut SplitMix64) -> M {
    let [b, c, h, w] = f.dims();
    let rows = f.permute([0, 2, 3, 1]).reshape([b * h * w, c]);
    let vocab = dead.dims()[0];
    let picks: Vec<i64> = (0..vocab).map(|_| (rng.next_u64() % (b * h * w) as u64) as i64).collect();
    let picks = Tensor::<1, Int>::from_data(TensorData::new(picks, [vocab]), &rows.device());
    let candidates = rows.select(0, picks); // [V, Cvae]
    let mask = dead.reshape([vocab, 1]).expand([vocab, c]);

    struct Replace {
        path: Vec<String>,
        mask: Tensor<2, Bool>,
        candidates: Tensor<2>,
    }
    impl ModuleMapper for Replace {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            // The codebook's field path (official key `quantize.embedding.weight`).
            if D != 2 || self.path.join(".") != CODEBOOK_PATH {
                return param;
            }
            let (id, value, mapper) = param.consume();
            let require_grad = value.is_require_grad();
            let shape = value.shape();
            let old: Tensor<2> = value.inner().reshape(shape.clone());
            let new = old.mask_where(self.mask.clone(), self.candidates.clone());
            let mut new: Tensor<D> = Tensor::from_inner(new.reshape(shape));
            if require_grad {
                new = new.require_grad();
            }
            Param::from_mapped_value(id, new, mapper)
        }
    }
    model.map(&mut Replace { path: Vec::new(), mask, candidates })
}

/// Where [`MsVqVae`] and the MaskGIT-VQGAN keep their codebook.
pub const CODEBOOK_PATH: &str = "quantize.embedding.weight";

/// Reads a small tensor back as `f32`s.
pub(crate) async fn read_vec(t: Tensor<1>) -> crate::Result<Vec<f32>> {
    let data = t.into_data_async().await.map_err(Error::readback).and_then(crate::error::on_host)?;
    Ok(data.iter::<f32>().collect())
}
