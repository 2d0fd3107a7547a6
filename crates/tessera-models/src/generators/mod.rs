//! Generators: tokens → logits.

pub mod var;
