//! Tokenizers: images ⇄ tokens.

mod layers;
pub mod columns;
pub mod msvq;
pub mod vqgan;
