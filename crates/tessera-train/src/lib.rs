//! Tessera's training: VAR's tokenizer and transformer, step by step, natively and in the browser.
//!
//! - [`tokenizer`]: [`TokenizerTrainer`] — pixel L2 (+ L1) and the official per-scale VQ loss,
//!   codebook usage per scale, dead-code re-initialisation, PSNR.
//! - [`var`]: [`VarTrainer`] — teacher forcing from the frozen tokenizer, cross-entropy over all
//!   tokens, label dropout.
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
//! A step is an `async fn` that reads its metrics back once (asynchronously) before updating
//! the model, so the browser can yield between steps and a NaN never reaches the weights. The
//! loop stays with the caller:
//!
//! ```no_run
//! # async fn run() -> tessera_train::Result<()> {
//! use burn::prelude::*;
//! use tessera_data::{Dataset, Mnist};
//! use tessera_train::{BatchOrder, TokenizerTrainer, VarPreset, data::load_batch};
//!
//! let device = Device::flex();
//! let mnist = Mnist::train();
//! let config = VarPreset::Tiny.tokenizer_training(1);
//! let order = BatchOrder::new(mnist.len(), config.batch_size, config.seed);
//! let mut trainer = TokenizerTrainer::new(config, &device)?;
//! while !trainer.is_done() {
//!     let (images, _) = load_batch(&mnist, &order.indices(trainer.step_index()), &device);
//!     let stats = trainer.step(images).await?;
//!     println!("step {} loss {:.4} psnr {:.1} dB", stats.step, stats.loss, stats.psnr);
//! }
//! let bytes = trainer.checkpoint(&[]).await?.to_bytes();
//! # Ok(()) }
//! ```
//!
//! Nothing outside `#[cfg(test)]` reads a tensor back synchronously (a test checks the source).

pub mod checkpoint;
pub mod data;
mod error;
pub mod judge;
pub mod load;
pub mod optim;
pub mod presets;
pub mod schedule;
pub mod tokenizer;
pub mod var;

pub use checkpoint::{Checkpoint, ModelKind};
pub use data::BatchOrder;
pub use error::{Error, Result};
pub use load::load_generator;
pub use judge::{JudgeStats, JudgeTrainer, JudgeTrainingConfig};
pub use optim::{AdamW, AdamWConfig};
pub use presets::VarPreset;
pub use schedule::{Decay, LrScheduleConfig};
pub use tokenizer::{TokenizerStats, TokenizerTrainer, TokenizerTrainingConfig};
pub use var::{VarStats, VarTrainer, VarTrainingConfig};

/// What the checkpoints say wrote them.
pub const WRITTEN_BY: &str = concat!("tessera-train ", env!("CARGO_PKG_VERSION"));
