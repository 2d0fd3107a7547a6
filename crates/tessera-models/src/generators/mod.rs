//! Generators: tokens → logits.

pub mod rar;
pub mod var;
