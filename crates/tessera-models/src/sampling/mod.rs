//! Samplers: generator + tokenizer → images.

pub mod var;
