//! Samplers: generator + tokenizer → images.

pub mod equivariant;
pub mod logits;
pub mod rar;
pub mod var;
