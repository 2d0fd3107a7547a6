//! Tokenizers: images ⇄ tokens.

mod layers;
pub mod msvq;
pub mod vqgan;
