//! Training the VAR transformer on a frozen tokenizer's token maps (next-scale prediction, or
//! next-token for the raster-order baseline: the same loss over the same tokens).
//! Official: FoundationVision/VAR @78b95394, `trainer.py` (`VARTrainer.train_step`), `train.py`
//! (optimizer and `nowd_keys`), `utils/lr_control.py` (schedule).
//!
//! Teacher forcing: the tokenizer turns each image into one index map per scale
//! (`image_to_idx`) and into the transformer's inputs (`idx_to_var_input`); the loss is the
//! cross-entropy over all `L = Σ pn²` tokens, each weighted `1 / L` (official `loss_weight`,
//! no label smoothing by default); labels are swapped for the null class with probability
//! `cond_drop_rate` (0.1); AdamW (0.9, 0.95), weight decay 0.05 except the official exclusions,
//! global gradient clip 2.0, `lin0` schedule.
//!
//! Differences from the official code: no progressive training (`pg`, off by default there), no
//! fp16 / GradScaler (f32 throughout), the weight decay is not cosine-annealed (`twde = twd` for
//! every size up to d24), and the label-dropout coin flips come from a seeded CPU stream.

use burn::config::Config;
use burn::prelude::*;
use tessera_kernels::loss::cross_entropy;
use tessera_models::generators::var::{TokenOrder, Var, VarConfig};
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::msvq::MsVqVae;

use crate::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, load_weights, transformer_weights, weights_to_bytes};
use crate::data::mix;
use crate::optim::{AdamW, AdamWConfig};
use crate::parts;
use crate::schedule::LrScheduleConfig;
use crate::Error;

/// Everything that shapes a VAR training run.
#[derive(Config, Debug)]
pub struct VarTrainingConfig {
    /// The transformer (its `patch_nums`, `vocab_size` and `z_channels` are the tokenizer's).
    pub model: VarConfig,
    /// The optimizer (official: betas 0.9 / 0.95, weight decay 0.05, clip 2.0).
    #[config(default = "AdamWConfig::new()")]
    pub optimizer: AdamWConfig,
    /// The learning-rate schedule (official `lin0`).
    pub schedule: LrScheduleConfig,
    /// Optimizer steps of the whole run.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of the weights, the sample order and the label dropout.
    #[config(default = 0)]
    pub seed: u64,
    /// Names of the classes, label order (saved so samplers can name them; may be empty).
    #[config(default = "Vec::new()")]
    pub class_names: Vec<String>,
}

impl VarTrainingConfig {
    /// Checks the config once, before training.
    pub fn validate(&self) -> crate::Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        crate::trainer::check_run(self.steps, self.batch_size, &self.class_names, self.model.num_classes)?;
        Ok(())
    }
}

/// Errors with every difference unless `var` is built for `tokenizer`'s token maps.
pub fn check_tokenizer(var: &VarConfig, tokenizer: &MsVqVae) -> crate::Result<()> {
    let mut differences = Vec::new();
    if var.patch_nums != tokenizer.patch_nums() {
        differences.push(format!("patch_nums: transformer {:?}, tokenizer {:?}", var.patch_nums, tokenizer.patch_nums()));
    }
    if var.vocab_size != tokenizer.vocab_size() {
        differences.push(format!("vocab_size: transformer {}, tokenizer {}", var.vocab_size, tokenizer.vocab_size()));
    }
    if var.z_channels != tokenizer.z_channels() {
        differences.push(format!("z_channels: transformer {}, tokenizer {}", var.z_channels, tokenizer.z_channels()));
    }
    if differences.is_empty() { Ok(()) } else { Err(Error::ConfigMismatch { differences }) }
}

/// What one step measured (read back once per step, before the update).
#[derive(Debug, Clone, PartialEq)]
pub struct VarStats {
    /// The step these numbers belong to (0-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean cross-entropy over all tokens (nats).
    pub loss: f32,
    /// Fraction of tokens whose most likely code is the target (teacher forcing).
    pub accuracy: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// A VAR transformer being trained on a frozen tokenizer.
#[derive(Debug, Clone)]
pub struct VarTrainer {
    config: VarTrainingConfig,
    model: Var,
    tokenizer: MsVqVae,
    /// [`crate::checkpoint::fingerprint`] of the tokenizer's weights, saved with the checkpoints.
    tokenizer_fingerprint: Option<String>,
    optimizer: AdamW,
    step: usize,
    /// The device batches are built on (without autodiff).
    device: Device,
}

impl VarTrainer {
    /// A fresh run on `device` (autodiff is enabled on it here); the tokenizer stays frozen.
    pub fn new(config: VarTrainingConfig, tokenizer: MsVqVae, device: &Device) -> crate::Result<Self> {
        config.validate()?;
        check_tokenizer(&config.model, &tokenizer)?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optimizer = AdamW::new(config.optimizer.clone(), &model);
        let tokenizer = tokenizer.valid();
        let device = device.clone().inner();
        Ok(Self { config, model, tokenizer, tokenizer_fingerprint: None, optimizer, step: 0, device })
    }

    /// Records which tokenizer this run uses (saved in its checkpoints).
    pub fn with_tokenizer_fingerprint(mut self, fingerprint: String) -> Self {
        self.tokenizer_fingerprint = Some(fingerprint);
        self
    }

    /// Continues the run saved in `checkpoint` with the same tokenizer; `steps` replaces the
    /// saved run length when given.
    pub fn resume(checkpoint: &Checkpoint, tokenizer: MsVqVae, steps: Option<usize>, device: &Device) -> crate::Result<Self> {
        checkpoint.expect_kind(ModelKind::Var)?;
        if !checkpoint.can_resume() {
            return Err(Error::Config("the checkpoint holds weights only; it cannot resume training".into()));
        }
        let mut config: VarTrainingConfig = checkpoint
            .training_config()?
            .ok_or_else(|| Error::Config("the checkpoint holds weights only; it cannot resume training".into()))?;
        checkpoint.expect_model_config(&config.model)?;
        if let Some(steps) = steps {
            config.steps = steps;
        }
        let mut trainer = Self::new(config, tokenizer, device)?;
        trainer.model = load_weights(trainer.model, &checkpoint.weights)?;
        trainer.optimizer =
            AdamW::from_bytes(trainer.config.optimizer.clone(), &trainer.model, &checkpoint.optimizer, device)?;
        trainer.step = checkpoint.header.step;
        trainer.tokenizer_fingerprint = checkpoint.header.tokenizer.clone();
        Ok(trainer)
    }

    /// The training config.
    pub fn config(&self) -> &VarTrainingConfig {
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

    /// The transformer as it is now, without autodiff (for sampling and saving).
    pub fn model(&self) -> Var {
        self.model.valid()
    }

    /// The device it trains on (without autodiff).
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The frozen tokenizer.
    pub fn tokenizer(&self) -> &MsVqVae {
        &self.tokenizer
    }

    /// One optimizer step on `images` (`[B, C, H, W]` in `[-1, 1]`) with class `labels` (`[B]`).
    ///
    /// Reads the loss back before updating: a NaN or infinite loss or gradient returns
    /// [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] and leaves the model as it was.
    pub async fn step(&mut self, images: Tensor<4>, labels: Tensor<1, Int>) -> crate::Result<VarStats> {
        let step = self.step;
        let lr = self.lr();

        // 1. Teacher forcing from the frozen tokenizer (no autodiff): targets and inputs.
        let idx = self.tokenizer.image_to_idx(images.inner());
        let targets = Tensor::cat(idx.clone(), 1); // [B, L]
        let [b, l] = targets.dims();
        let mut rng = SplitMix64::new(mix(self.config.seed ^ 0x1ABE1, step as u64));
        let labels = self.model.drop_labels(labels.inner(), &mut rng);
        let inputs = match self.config.model.order() {
            TokenOrder::NextScale => Some(self.tokenizer.idx_to_var_input(&idx)), // [B, L - 1, Cvae]
            TokenOrder::NextToken => None,
        };

        // 2. Cross-entropy over every token of every scale (official: weight 1/L each), in parts
        //    side by side on the CPU's cores.
        let parts = parts::split(&self.device, b)
            .into_iter()
            .map(|rows| {
                let (s, k) = (rows.start, rows.len());
                let input = (labels.clone().narrow(0, s, k), targets.clone().narrow(0, s, k), inputs.as_ref().map(|x| x.clone().narrow(0, s, k)));
                (rows, input)
            })
            .collect();
        // VAR has no dropout: no stream to seed.
        let (report, grads) = parts::gradients(&self.model, parts, 0, |model, (labels, targets, inputs)| {
            let logits = match inputs {
                Some(x) => model.forward(labels, x.autodiff()),
                None => model.forward_tokens(labels, targets.clone()),
            }; // [k, L, V]
            let target_idx = targets.clone().reshape([targets.dims()[0], l, 1]);
            let loss = cross_entropy(logits.clone(), target_idx.clone().autodiff());
            let correct = logits.inner().argmax(2).equal(target_idx).float().mean();
            (loss, vec![correct])
        });

        // 3. One read back of everything the step reports, and the update.
        let (model, values) = self.optimizer.checked_update_with(&self.model, grads, report, lr, step).await?;
        let (loss_value, accuracy, norm_value) = (values[0], values[1], values[2]);
        self.model = model;
        self.step += 1;
        Ok(VarStats { step, lr, loss: loss_value, accuracy, grad_norm: norm_value })
    }

    /// The run as a checkpoint: weights, optimizer state, step and configs.
    pub async fn checkpoint(&self, metrics: &[(&str, f64)]) -> crate::Result<Checkpoint> {
        let model = self.model();
        Ok(Checkpoint {
            header: CheckpointHeader {
                tokenizer: self.tokenizer_fingerprint.clone(),
                ..CheckpointHeader::of_run(ModelKind::Var, &self.config.model, &self.config, self.step, metrics)
            },
            weights: weights_to_bytes(&model).await?,
            optimizer: self.optimizer.to_bytes(&model).await?,
            state: Vec::new(),
        })
    }
}

/// A lower bound on the VAR transformer's weights: its blocks, class and position tables and head.
fn implied_weights(c: &VarConfig) -> u64 {
    let d = c.embed_dim;
    let hidden = (d as f64 * c.mlp_ratio).round() as usize;
    let tables = (c.num_classes + 1 + c.seq_len() + c.vocab_size) * d;
    transformer_weights(c.depth, d, hidden, 6) + tables as u64
}

/// The transformer saved in a checkpoint (training or weights-only), without autodiff.
pub fn load_var(checkpoint: &Checkpoint, device: &Device) -> crate::Result<(VarConfig, Var)> {
    checkpoint.expect_kind(ModelKind::Var)?;
    let config: VarConfig = checkpoint.model_config()?;
    config.validate()?;
    checkpoint.expect_weights_for(implied_weights(&config))?;
    let model = load_weights(config.init(&device.clone().inner()), &checkpoint.weights)?;
    Ok((config, model))
}
