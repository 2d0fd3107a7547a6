//! Tokenizers: images ⇄ tokens.

pub mod msvq;
pub mod vqgan;
