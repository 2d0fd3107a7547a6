//! Tessera's models, checked number for number against the official PyTorch code.
//!
//! - [`family`]: the families (VAR, RAR, columns), their generation orders and guidance schedules.
//! - [`generator`]: [`generator::ImageGenerator`] and [`generator::Sampling`], the one model type
//!   the app, CLI and eval see, with an adapter per family.
//! - [`tokenizers::msvq`]: VAR's multi-scale residual VQ-VAE (image ⇄ token maps).
//! - [`tokenizers::vqgan`]: RAR's MaskGIT-VQGAN (image ⇄ one row-major token map).
//! - [`tokenizers::columns`]: the equivariant generator's column tokenizer (image ⇄ one
//!   continuous token per full-height column strip, any width).
//! - [`generators::var`]: the VAR transformer (next-scale prediction).
//! - [`generators::rar`]: the RAR transformer (randomized autoregressive, target-aware positions).
//! - [`generators::equivariant`] and [`generators::flow_head`]: the column transformer (windowed
//!   causal attention, RoPE, cross-attention to the class slots) and its flow-matching head.
//! - [`sampling::var`]: VAR sampling with classifier-free guidance, seeded.
//! - [`sampling::rar`]: RAR sampling with the KV cache, in any fill order.
//! - [`sampling::equivariant`]: column-by-column sampling with the bounded cache, any width.
//! - [`sampling::logits`]: temperature, top-k, top-p and the seeded draw, for every discrete sampler.
//! - [`dropout`]: dropout whose masks a training step split into parts can reproduce.
//! - [`judge`]: the small CNN classifier whose verdicts and features measure generated images.
//! - [`resize`]: PyTorch-exact `area`, `bicubic` and nearest ×2 resizes (reference twins of the
//!   WGSL kernels).
//! - [`weights`]: official `state_dict`s (safetensors) loaded into these modules.
//! - [`parity`]: runs a fixture directory (official inputs and outputs) and reports per-output
//!   differences (native only).
//!
//! Model, tokenizer and sampler code never reads a tensor back to the CPU, so it runs unchanged
//! on WebGPU in the browser; only [`parity`] and tests read back.

pub mod dropout;
mod error;
pub mod family;
pub mod generator;
pub mod generators;
pub mod judge;
mod kv;
pub mod memory;
#[cfg(not(target_arch = "wasm32"))]
pub mod parity;
pub mod readback;
pub mod resize;
pub mod rng;
pub mod sampling;
pub mod tokenizers;
pub mod weights;

pub use error::{Error, Result};
