//! Samplers: generator + tokenizer → images.

pub mod logits;
pub mod var;
