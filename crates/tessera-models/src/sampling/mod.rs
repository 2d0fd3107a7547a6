//! Samplers: generator + tokenizer → images.

pub mod logits;
pub mod rar;
pub mod var;
