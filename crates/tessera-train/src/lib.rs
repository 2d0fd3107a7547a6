//! Tessera's training: VAR's tokenizer and transformer, step by step, natively and in the browser.
//!
//! - [`tokenizer`]: [`TokenizerTrainer`] — pixel L2 (+ L1) and the official per-scale VQ loss,
//!   codebook usage per scale, dead-code re-initialisation, PSNR.
//! - [`var`]: [`VarTrainer`] — teacher forcing from the frozen tokenizer, cross-entropy over all
//!   tokens, label dropout.
//! - [`vqgan`]: [`VqganTrainer`] — RAR's MaskGIT-VQGAN tokenizer from scratch: pixel loss and
//!   the official VQ loss, dead-code re-initialisation, PSNR.
//! - [`rar`]: [`RarTrainer`] — RAR on a frozen MaskGIT-VQGAN's codes, random orders with an
//!   annealed probability, label dropout.
//! - [`columns`]: [`ColumnTokenizerTrainer`] — the equivariant generator's column tokenizer:
//!   L1 plus the L2 "KL", noisy posterior draws, an EMA of the weights.
//! - [`equivariant`]: [`EquivariantTrainer`] — the column transformer and flow head on a frozen
//!   column tokenizer: rectified-flow loss, label drop, random RoPE shifts, an EMA.
//! - [`ema`]: [`ema::Ema`], the weight average both sample with.
//! - [`judge`]: [`JudgeTrainer`] — the evaluation's classifier, cross-entropy with shift
//!   augmentation.
//! - [`optim`]: [`AdamW`] with VAR's weight-decay exclusions and global gradient clipping.
//! - [`schedule`]: warm-up then `lin0` / cosine decay.
//! - [`checkpoint`]: one self-checking file (bytes) per model: config, weights, optimizer
//!   state, step; atomic writes on the desktop.
//! - [`load`]: [`load_generator`], the one place a generator is built from its checkpoints.
//! - [`presets`]: [`VarPreset`] sizes (tokenizer + transformer + runs).
//! - [`data`]: the resumable sample order and batch → tensors.
//!
//! - [`trainer`]: the [`Trainer`] trait every model's trainer implements, and [`Metrics`].
//! - [`training_loop`]: [`train`], the one loop (pause, stop, Save now, autosave, NaN stop,
//!   `train_seconds`) that `tessera train`, the app and the browser drive through [`Hooks`].
//!
//! A step is an `async fn` that reads its metrics back once (asynchronously) before updating
//! the model, so the browser can yield between steps and a NaN never reaches the weights:
//!
//! ```no_run
//! # async fn run() -> tessera_train::Result<()> {
//! use burn::prelude::*;
//! use tessera_data::Mnist;
//! use tessera_train::{Autosave, Checkpoint, Control, Hooks, Run, StepDone, TokenizerTrainer, Trainer, VarPreset, train};
//!
//! /// Prints the loss and keeps the newest checkpoint in memory.
//! struct Print(Option<Checkpoint>);
//!
//! impl<T: Trainer> Hooks<T> for Print {
//!     type Error = tessera_train::Error;
//!     async fn on_step(&mut self, _trainer: &T, done: StepDone<'_>) -> tessera_train::Result<()> {
//!         println!("step {} loss {:.4}", done.step, done.metrics[0].1);
//!         Ok(())
//!     }
//!     async fn save(&mut self, checkpoint: Checkpoint) -> tessera_train::Result<()> {
//!         self.0 = Some(checkpoint);
//!         Ok(())
//!     }
//!     async fn idle(&mut self, _paused: bool) {}
//! }
//!
//! let mut trainer = TokenizerTrainer::new(VarPreset::Tiny.tokenizer_training(1), &Device::flex())?;
//! let control = Control::default();
//! let run = Run { dataset: &Mnist::train(), control: &control, autosave: Autosave::at_end(), train_seconds: 0.0 };
//! let outcome = train(&mut trainer, run, &mut Print(None)).await?;
//! println!("{:?} after {:.0} s", outcome.ended, outcome.train_seconds);
//! # Ok(()) }
//! ```
//!
//! Nothing outside `#[cfg(test)]` reads a tensor back synchronously (a test checks the source).

pub mod checkpoint;
pub mod columns;
pub mod data;
pub mod ema;
pub mod equivariant;
mod error;
pub mod judge;
pub mod load;
pub mod optim;
mod parts;
pub mod presets;
pub mod rar;
pub mod schedule;
pub mod tokenizer;
pub mod trainer;
pub mod training_loop;
pub mod var;
pub mod vqgan;

pub use checkpoint::{Checkpoint, ModelKind};
#[cfg(not(target_arch = "wasm32"))]
pub use checkpoint::RunLock;
pub use columns::{ColumnTokenizerStats, ColumnTokenizerTrainer, ColumnTokenizerTrainingConfig};
pub use equivariant::{EquivariantStats, EquivariantTrainer, EquivariantTrainingConfig};
pub use data::BatchOrder;
pub use error::{Error, Result};
pub use load::load_generator;
pub use judge::{JudgeStats, JudgeTrainer, JudgeTrainingConfig};
pub use optim::{AdamW, AdamWConfig};
pub use presets::{ColumnsPreset, RarPreset, VarPreset};
pub use rar::{RandomnessConfig, RarStats, RarTrainer, RarTrainingConfig};
pub use schedule::{Decay, LrScheduleConfig};
pub use tokenizer::{TokenizerStats, TokenizerTrainer, TokenizerTrainingConfig};
pub use trainer::{Metrics, TRAIN_SECONDS, Trainer};
pub use training_loop::{Autosave, Control, Ended, Hooks, Outcome, Run, StepDone, train};
pub use var::{VarStats, VarTrainer, VarTrainingConfig};
pub use vqgan::{VqganStats, VqganTrainer, VqganTrainingConfig};

/// The most images a training step takes (the presets use 16-64): larger batches are refused
/// before anything is allocated.
pub const MAX_BATCH: usize = 1024;

/// What the checkpoints say wrote them.
pub const WRITTEN_BY: &str = concat!("tessera-train ", env!("CARGO_PKG_VERSION"));
