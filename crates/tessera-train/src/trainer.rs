//! [`Trainer`]: what every model's trainer offers the one training loop
//! ([`crate::training_loop::train`]), so the CLI, the app and the browser drive any model the same
//! way. Each trainer also keeps its own tensor-level `step` (on images, or images and labels) and
//! its typed stats; the trait's [`Trainer::step`] takes a CPU batch and names the metrics.

use std::future::Future;

use tessera_data::Batch;

use crate::checkpoint::{Checkpoint, ModelKind};
use crate::{ColumnTokenizerTrainer, EquivariantTrainer, JudgeTrainer, RarTrainer, Result, TokenizerTrainer, VarTrainer, VqganTrainer};

/// A step's measurements by name: `"loss"` first, then the model's extras (`"psnr"`,
/// `"accuracy"`, `"lr"`, ...). The same names key the app's curves and the checkpoints' metrics.
pub type Metrics = Vec<(&'static str, f64)>;

/// The checkpoint metric with a run's training time in seconds, earlier sessions of a resumed run
/// included (pauses excluded); `tessera eval` reports it.
pub const TRAIN_SECONDS: &str = "train_seconds";

/// The `train_seconds` a checkpoint recorded (0 when it has none): where a resumed run's clock starts.
pub fn train_seconds(checkpoint: &Checkpoint) -> f64 {
    checkpoint.header.metrics.get(TRAIN_SECONDS).copied().unwrap_or(0.0)
}

/// Checks a run's size once, before training: steps and batch size positive, and the class names
/// (when given) one per class.
pub(crate) fn check_run(steps: usize, batch_size: usize, class_names: &[String], classes: usize) -> Result<()> {
    if steps == 0 || batch_size == 0 {
        return Err(crate::Error::Config("steps and batch_size must be positive".into()));
    }
    if batch_size > crate::MAX_BATCH {
        return Err(crate::Error::Config(format!("a batch of {batch_size} images is more than the {} a step takes", crate::MAX_BATCH)));
    }
    if !class_names.is_empty() && class_names.len() != classes {
        return Err(crate::Error::Config(format!("{} class names for {classes} classes", class_names.len())));
    }
    Ok(())
}

/// A model being trained, one optimizer step at a time.
///
/// Steps are async (the browser reads metrics back without blocking) and read their metrics back
/// before updating: on a non-finite loss or gradient they return [`crate::Error::NonFiniteLoss`] /
/// [`crate::Error::NonFiniteGradient`] with the model still at its last good state, so a
/// checkpoint taken then is the last good one.
pub trait Trainer {
    /// What its checkpoints hold.
    fn kind(&self) -> ModelKind;
    /// Steps taken so far (the index of the next step).
    fn step_index(&self) -> usize;
    /// Steps of the whole run.
    fn steps(&self) -> usize;
    /// Images per step.
    fn batch_size(&self) -> usize;
    /// The run's seed, which also fixes its sample order ([`crate::BatchOrder`]).
    fn seed(&self) -> u64;
    /// One optimizer step on `batch` (pixels in `[0, 1]`, as datasets give them).
    fn step(&mut self, batch: &Batch) -> impl Future<Output = Result<Metrics>>;
    /// The run as a resumable checkpoint recording `metrics`.
    fn checkpoint(&self, metrics: &[(&str, f64)]) -> impl Future<Output = Result<Checkpoint>>;

    /// Floats per image of the largest buffer a step allocates, from the model's config
    /// ([`tessera_models::memory`]): checked against a GPU's buffer limit before a run starts.
    fn largest_floats_per_image(&self) -> u64;

    /// Whether the run has taken all its steps.
    fn is_done(&self) -> bool {
        self.step_index() >= self.steps()
    }
}

/// The part of [`Trainer`] every trainer answers alike: from its `config()` (`steps`,
/// `batch_size`, `seed`, the model config's size estimate), its step counter and its own
/// `checkpoint`.
macro_rules! bookkeeping {
    ($kind:expr) => {
        fn kind(&self) -> ModelKind {
            $kind
        }
        fn step_index(&self) -> usize {
            Self::step_index(self)
        }
        fn steps(&self) -> usize {
            self.config().steps
        }
        fn batch_size(&self) -> usize {
            self.config().batch_size
        }
        fn seed(&self) -> u64 {
            self.config().seed
        }
        fn largest_floats_per_image(&self) -> u64 {
            self.config().model.largest_floats_per_image()
        }
        async fn checkpoint(&self, metrics: &[(&str, f64)]) -> Result<Checkpoint> {
            Self::checkpoint(self, metrics).await
        }
    };
}

/// A tokenizer step's metrics (VAR's and RAR's tokenizers report the same ones).
fn tokenizer_metrics(loss: f32, psnr: f32, vq_loss: f32, grad_norm: f32, lr: f64, codes_reset: usize) -> Metrics {
    vec![
        ("loss", loss as f64),
        ("psnr", psnr as f64),
        ("vq_loss", vq_loss as f64),
        ("grad_norm", grad_norm as f64),
        ("lr", lr),
        ("codes_reset", codes_reset as f64),
    ]
}

impl Trainer for TokenizerTrainer {
    bookkeeping!(ModelKind::VarTokenizer);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (images, _) = crate::data::to_tensors(batch, self.device());
        let s = Self::step(self, images).await?;
        Ok(tokenizer_metrics(s.loss, s.psnr, s.vq_loss, s.grad_norm, s.lr, s.codes_reset))
    }
}

impl Trainer for VarTrainer {
    bookkeeping!(ModelKind::Var);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (images, labels) = crate::data::to_tensors(batch, self.device());
        let s = Self::step(self, images, labels).await?;
        Ok(vec![("loss", s.loss as f64), ("accuracy", s.accuracy as f64), ("grad_norm", s.grad_norm as f64), ("lr", s.lr)])
    }
}

impl Trainer for JudgeTrainer {
    bookkeeping!(ModelKind::Judge);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let s = Self::step(self, batch).await?;
        Ok(vec![("loss", s.loss as f64), ("accuracy", s.accuracy as f64), ("lr", s.lr)])
    }
}

impl Trainer for VqganTrainer {
    bookkeeping!(ModelKind::RarTokenizer);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (images, _) = crate::data::to_tensors(batch, self.device());
        // The MaskGIT-VQGAN takes pixels in [0, 1].
        let s = Self::step(self, (images + 1.0) * 0.5).await?;
        Ok(tokenizer_metrics(s.loss, s.psnr, s.vq_loss, s.grad_norm, s.lr, s.codes_reset))
    }
}

impl Trainer for RarTrainer {
    bookkeeping!(ModelKind::Rar);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (images, labels) = crate::data::to_tensors(batch, self.device());
        // The MaskGIT-VQGAN takes pixels in [0, 1].
        let s = Self::step(self, (images + 1.0) * 0.5, labels).await?;
        Ok(vec![
            ("loss", s.loss as f64),
            ("accuracy", s.accuracy as f64),
            ("random_ratio", s.random_ratio),
            ("grad_norm", s.grad_norm as f64),
            ("lr", s.lr),
        ])
    }
}

impl Trainer for ColumnTokenizerTrainer {
    bookkeeping!(ModelKind::ColumnsTokenizer);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (images, _) = crate::data::to_tensors(batch, self.device());
        let s = Self::step(self, images).await?;
        Ok(vec![("loss", s.loss as f64), ("psnr", s.psnr as f64), ("kl", s.kl as f64), ("grad_norm", s.grad_norm as f64), ("lr", s.lr)])
    }
}

impl Trainer for EquivariantTrainer {
    bookkeeping!(ModelKind::Equivariant);


    async fn step(&mut self, batch: &Batch) -> Result<Metrics> {
        let (images, labels) = crate::data::to_tensors(batch, self.device());
        let s = Self::step(self, images, labels).await?;
        Ok(vec![("loss", s.loss as f64), ("grad_norm", s.grad_norm as f64), ("lr", s.lr), ("vae_norm", s.vae_norm)])
    }
}
