//! Generators: tokens → logits.

pub mod equivariant;
pub mod flow_head;
pub mod rar;
pub mod var;
