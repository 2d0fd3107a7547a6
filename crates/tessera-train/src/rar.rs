//! Training the RAR transformer on a frozen MaskGIT-VQGAN tokenizer's codes, with randomness
//! annealing: each sample is fed in a random permutation of its token order with probability
//! `r`, and `r` goes from 1 to 0 over the run.
//! Official: bytedance/1d-tokenizer @942a96fb, `scripts/train_rar.py`, `utils/train_utils.py`
//! (`get_rar_random_ratio`, `create_optimizer`, `train_one_epoch_generator`),
//! `modeling/modules/losses.py` (`ARLoss`), `configs/training/generator/rar.yaml`.
//!
//! Loss: plain mean cross-entropy of output `j` against token `orders[j]`; labels swapped for
//! the null class with probability 0.1; AdamW (0.9, 0.96), weight decay 0.03 except the
//! official exclusions ([`tessera_models::generators::rar::decays`]), warm-up from 0 then cosine
//! to `end_lr`, gradient norm clipped at 1.0.
//!
//! Differences from the official code: f32 throughout (no bf16); the per-sample coin flips, the
//! permutations and the label dropout come from a seeded CPU stream per step (official: python's
//! `random` and `torch.randperm`), and dropout draws from a stream seeded per step (per part of
//! the batch on the CPU, `parts.rs`; the device's on a GPU), so a resumed run takes exactly the
//! steps an uninterrupted one would (on the CPU: with as many threads, which the batch's split
//! follows).

use burn::config::Config;
use burn::prelude::*;
use tessera_kernels::loss::cross_entropy;
use tessera_models::generators::rar::{Rar, RarConfig, decays};
use tessera_models::rng::SplitMix64;
use tessera_models::tokenizers::vqgan::Vqgan;

use crate::Error;
use crate::checkpoint::{Checkpoint, CheckpointHeader, ModelKind, load_weights, weights_to_bytes};
use crate::data::mix;
use crate::optim::{AdamW, AdamWConfig};
use crate::parts;
use crate::schedule::LrScheduleConfig;

/// How the probability `r` of a random order goes from 1 to 0 (official
/// `randomness_anneal_start` / `_end`, here as fractions of the run).
#[derive(Config, Debug, PartialEq)]
pub struct RandomnessConfig {
    /// `r` is 1 before this fraction of the run (paper: 200 of 400 epochs).
    #[config(default = 0.5)]
    pub start: f64,
    /// `r` reaches 0 here and stays there (paper: 300 of 400 epochs).
    #[config(default = 0.75)]
    pub end: f64,
}

impl RandomnessConfig {
    /// `r` held at 0 throughout: raster order only (the ablation's "raster only").
    pub fn raster_only() -> Self {
        // The annealing window ends before the run starts.
        Self::new().with_start(-1.0).with_end(-1.0)
    }

    /// `r` held at 1 throughout: random orders only (the ablation's "random only").
    pub fn random_only() -> Self {
        // The annealing window starts after the run ends.
        Self::new().with_start(2.0).with_end(2.0)
    }

    /// `r` at step `step` of `total` (official `get_rar_random_ratio`, in steps).
    pub fn ratio(&self, step: usize, total: usize) -> f64 {
        let (start, end) = (self.start * total as f64, self.end * total as f64);
        let step = step as f64;
        if step < start {
            1.0
        } else if step > end || end <= start {
            0.0
        } else {
            1.0 - (step - start) / (end - start)
        }
    }

    /// A short description for logs and reports.
    pub fn describe(&self) -> String {
        match (self.start, self.end) {
            (s, _) if s >= 1.0 => "r = 1 throughout (random orders only)".into(),
            (_, e) if e < 0.0 => "r = 0 throughout (raster only)".into(),
            (s, e) => format!("r = 1 until {:.0} % of the run, then linear to 0 at {:.0} %", s * 100.0, e * 100.0),
        }
    }

    fn validate(&self) -> crate::Result<()> {
        if self.start.is_finite() && self.end.is_finite() && self.start <= self.end {
            Ok(())
        } else {
            Err(Error::Config(format!("the randomness annealing must start before it ends: {self:?}")))
        }
    }
}

/// Everything that shapes a RAR training run.
#[derive(Config, Debug)]
pub struct RarTrainingConfig {
    /// The transformer (its `codebook_size` and `seq_len` are the tokenizer's).
    pub model: RarConfig,
    /// The optimizer (official: betas 0.9 / 0.96, weight decay 0.03, clip 1.0).
    #[config(default = "AdamWConfig::new().with_beta2(0.96).with_weight_decay(0.03).with_grad_clip(1.0)")]
    pub optimizer: AdamWConfig,
    /// The learning-rate schedule (official: warm-up from 0, cosine to `end_lr`).
    pub schedule: LrScheduleConfig,
    /// Randomness annealing.
    #[config(default = "RandomnessConfig::new()")]
    pub randomness: RandomnessConfig,
    /// Optimizer steps of the whole run.
    pub steps: usize,
    /// Images per step.
    pub batch_size: usize,
    /// Seed of the weights, the sample order, the orders and the label dropout.
    #[config(default = 0)]
    pub seed: u64,
    /// Names of the classes, label order (saved so samplers can name them; may be empty).
    #[config(default = "Vec::new()")]
    pub class_names: Vec<String>,
}

impl RarTrainingConfig {
    /// Checks the config once, before training.
    pub fn validate(&self) -> crate::Result<()> {
        self.model.validate()?;
        self.schedule.validate()?;
        self.randomness.validate()?;
        crate::trainer::check_run(self.steps, self.batch_size, &self.class_names, self.model.num_classes)?;
        Ok(())
    }
}

/// Errors with every difference unless `rar` is built for `tokenizer`'s codes.
pub fn check_tokenizer(rar: &RarConfig, tokenizer: &Vqgan) -> crate::Result<()> {
    let mut differences = Vec::new();
    if rar.codebook_size != tokenizer.codebook_size() {
        differences.push(format!("codebook_size: transformer {}, tokenizer {}", rar.codebook_size, tokenizer.codebook_size()));
    }
    let tokens = tokenizer.latent_side() * tokenizer.latent_side();
    if rar.seq_len != tokens {
        differences.push(format!("seq_len: transformer {}, tokenizer {tokens}", rar.seq_len));
    }
    if differences.is_empty() { Ok(()) } else { Err(Error::ConfigMismatch { differences }) }
}

/// What one step measured (read back once per step, before the update).
#[derive(Debug, Clone, PartialEq)]
pub struct RarStats {
    /// The step these numbers belong to (0-based).
    pub step: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Probability of a random order at this step.
    pub random_ratio: f64,
    /// Mean cross-entropy over all tokens (nats).
    pub loss: f32,
    /// Fraction of tokens whose most likely code is the target (teacher forcing).
    pub accuracy: f32,
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
}

/// A RAR transformer being trained on a frozen tokenizer.
#[derive(Debug, Clone)]
pub struct RarTrainer {
    config: RarTrainingConfig,
    model: Rar,
    tokenizer: Vqgan,
    /// [`crate::checkpoint::fingerprint`] of the tokenizer's weights, saved with the checkpoints.
    tokenizer_fingerprint: Option<String>,
    optimizer: AdamW,
    step: usize,
    /// The device with autodiff (the model's).
    device: Device,
}

impl RarTrainer {
    /// A fresh run on `device` (autodiff is enabled on it here); the tokenizer stays frozen.
    pub fn new(config: RarTrainingConfig, tokenizer: Vqgan, device: &Device) -> crate::Result<Self> {
        config.validate()?;
        check_tokenizer(&config.model, &tokenizer)?;
        let device = device.clone().autodiff();
        device.seed(config.seed);
        let model = config.model.init(&device);
        let optimizer = AdamW::new(config.optimizer.clone(), &model).with_decay_rule(&model, decays);
        Ok(Self { config, model, tokenizer: tokenizer.valid(), tokenizer_fingerprint: None, optimizer, step: 0, device })
    }

    /// Records which tokenizer this run uses (saved in its checkpoints).
    pub fn with_tokenizer_fingerprint(mut self, fingerprint: String) -> Self {
        self.tokenizer_fingerprint = Some(fingerprint);
        self
    }

    /// Continues the run saved in `checkpoint` with the same tokenizer, exactly where it stopped.
    pub fn resume(checkpoint: &Checkpoint, tokenizer: Vqgan, device: &Device) -> crate::Result<Self> {
        checkpoint.expect_kind(ModelKind::Rar)?;
        let weights_only = || Error::Config("the checkpoint holds weights only; it cannot resume training".into());
        if !checkpoint.can_resume() {
            return Err(weights_only());
        }
        let config: RarTrainingConfig = checkpoint.training_config()?.ok_or_else(weights_only)?;
        checkpoint.expect_model_config(&config.model)?;
        let mut trainer = Self::new(config, tokenizer, device)?;
        trainer.model = load_weights(trainer.model, &checkpoint.weights)?;
        trainer.optimizer = AdamW::from_bytes(trainer.config.optimizer.clone(), &trainer.model, &checkpoint.optimizer, device)?
            .with_decay_rule(&trainer.model, decays);
        trainer.step = checkpoint.header.step;
        trainer.tokenizer_fingerprint = checkpoint.header.tokenizer.clone();
        Ok(trainer)
    }

    /// The training config.
    pub fn config(&self) -> &RarTrainingConfig {
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

    /// The probability of a random order at the next step.
    pub fn random_ratio(&self) -> f64 {
        self.config.randomness.ratio(self.step, self.config.steps)
    }

    /// The transformer as it is now, without autodiff (for sampling and saving).
    pub fn model(&self) -> Rar {
        self.model.valid()
    }

    /// The frozen tokenizer.
    pub fn tokenizer(&self) -> &Vqgan {
        &self.tokenizer
    }

    /// The device it trains on (with autodiff).
    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// The feeding order of each of `b` samples for this step: a random permutation with
    /// probability `r`, else raster; and the labels after dropout. Both from the step's own stream.
    fn orders_and_labels(&self, b: usize, labels: Tensor<1, Int>) -> (Tensor<2, Int>, Tensor<1, Int>) {
        let n = self.config.model.seq_len;
        let r = self.random_ratio();
        let mut rng = SplitMix64::new(mix(self.config.seed ^ 0x0AA0, self.step as u64));
        let mut orders = Vec::with_capacity(b * n);
        let mut drop = Vec::with_capacity(b);
        for _ in 0..b {
            let mut order: Vec<i64> = (0..n as i64).collect();
            if (rng.next_f32() as f64) < r {
                for i in (1..n).rev() {
                    order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
                }
            }
            orders.extend(order);
            drop.push((rng.next_f32() as f64) < self.config.model.cond_drop_rate);
        }
        let device = labels.device();
        let orders = Tensor::<2, Int>::from_data(TensorData::new(orders, [b, n]), &device);
        let drop = Tensor::<1, Bool>::from_data(TensorData::new(drop, [b]), &device);
        (orders, labels.mask_fill(drop, self.config.model.num_classes as i64))
    }

    /// One optimizer step on `images` (`[B, C, H, W]` in `[0, 1]`, as the tokenizer takes them)
    /// with class `labels` (`[B]`): their codes from the frozen tokenizer, then [`Self::step_tokens`].
    pub async fn step(&mut self, images: Tensor<4>, labels: Tensor<1, Int>) -> crate::Result<RarStats> {
        let tokens = self.tokenizer.encode(images.inner());
        self.step_tokens(tokens, labels).await
    }

    /// One optimizer step on codes already made (`[B, N]`, raster) with class `labels` (`[B]`).
    ///
    /// Reads the loss back before updating: a NaN or infinite loss or gradient returns
    /// [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] and leaves the model as it was.
    pub async fn step_tokens(&mut self, tokens: Tensor<2, Int>, labels: Tensor<1, Int>) -> crate::Result<RarStats> {
        let (step, lr, random_ratio) = (self.step, self.lr(), self.random_ratio());
        // Dropout on a GPU draws from the device's stream: seeded per step, so a resumed run
        // repeats it (on the CPU each part of the batch has its own stream, `parts.rs`).
        self.device.seed(mix(self.config.seed ^ 0xD209, step as u64));

        // 1. This step's orders and label dropout, for the whole batch.
        let tokens = tokens.inner();
        let [b, n] = tokens.dims();
        let (orders, labels) = self.orders_and_labels(b, labels.inner());

        // 2. Cross-entropy of the first N outputs (the last one predicts nothing), in parts side
        //    by side on the CPU's cores.
        let parts = parts::split(&self.device, b)
            .into_iter()
            .map(|rows| {
                let at = |t: &Tensor<2, Int>| t.clone().narrow(0, rows.start, rows.len());
                let input = (at(&tokens), labels.clone().narrow(0, rows.start, rows.len()), at(&orders));
                (rows, input)
            })
            .collect();
        let dropout_seed = mix(self.config.seed ^ 0xD20A, step as u64);
        let (report, grads) = parts::gradients(&self.model, parts, dropout_seed, |model, (tokens, labels, orders)| {
            let k = tokens.dims()[0];
            let targets = tokens.clone().gather(1, orders.clone()); // output j predicts token orders[j]
            let logits = model.forward(tokens.autodiff(), labels.autodiff(), Some(orders.autodiff())).narrow(1, 0, n); // [k, N, V]
            let target_idx = targets.reshape([k, n, 1]);
            let loss = cross_entropy(logits.clone(), target_idx.clone().autodiff());
            let correct = logits.inner().argmax(2).equal(target_idx).float().mean();
            (loss, vec![correct])
        });

        // 3. One read back of everything the step reports, and the update.
        let (model, values) = self.optimizer.checked_update_with(&self.model, grads, report, lr, step).await?;
        let (loss_value, accuracy, norm_value) = (values[0], values[1], values[2]);
        self.model = model;
        self.step += 1;
        Ok(RarStats { step, lr, random_ratio, loss: loss_value, accuracy, grad_norm: norm_value })
    }

    /// The run as a checkpoint: weights, optimizer state, step and configs.
    pub async fn checkpoint(&self, metrics: &[(&str, f64)]) -> crate::Result<Checkpoint> {
        let model = self.model();
        Ok(Checkpoint {
            header: CheckpointHeader {
                tokenizer: self.tokenizer_fingerprint.clone(),
                ..CheckpointHeader::of_run(ModelKind::Rar, &self.config.model, &self.config, self.step, metrics)
            },
            weights: weights_to_bytes(&model).await?,
            optimizer: self.optimizer.to_bytes(&model).await?,
            state: Vec::new(),
        })
    }
}

/// The transformer saved in a checkpoint (training or weights-only), without autodiff.
pub fn load_rar(checkpoint: &Checkpoint, device: &Device) -> crate::Result<(RarConfig, Rar)> {
    checkpoint.expect_kind(ModelKind::Rar)?;
    let config: RarConfig = checkpoint.model_config()?;
    config.validate()?;
    // Blocks, the shared embedding table and the head: a lower bound, checked before building.
    let d = config.hidden_size;
    let tables = (config.embedding_rows() + config.codebook_size) * d;
    checkpoint.expect_weights_for(crate::checkpoint::transformer_weights(config.depth, d, config.intermediate_size, 6) + tables as u64)?;
    let model = load_weights(config.init(&device.clone().inner()), &checkpoint.weights)?;
    Ok((config, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomness_anneals_as_the_paper_schedule() {
        let r = RandomnessConfig::new();
        assert_eq!(r.ratio(0, 1000), 1.0);
        assert_eq!(r.ratio(499, 1000), 1.0);
        assert_eq!(r.ratio(500, 1000), 1.0);
        assert!((r.ratio(625, 1000) - 0.5).abs() < 1e-12);
        assert_eq!(r.ratio(750, 1000), 0.0);
        assert_eq!(r.ratio(999, 1000), 0.0);
        for step in [0, 400, 999] {
            assert_eq!(RandomnessConfig::raster_only().ratio(step, 1000), 0.0);
            assert_eq!(RandomnessConfig::random_only().ratio(step, 1000), 1.0);
        }
        assert!(RandomnessConfig::new().with_start(0.8).with_end(0.2).validate().is_err());
    }
}
