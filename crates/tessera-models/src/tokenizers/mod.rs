//! Tokenizers: images ⇄ tokens.

pub mod msvq;
