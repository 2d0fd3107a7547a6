//! Tessera's compute layer: the one device everything runs on ([`device`]) and, as burn backend
//! extensions ([`ops`]), the hand-written WGSL kernels in `shaders/` (attention, quantizer).
//! Every kernel has a `_reference` twin made of plain burn ops; on devices without wgpu (the CPU
//! fallback), under autodiff, and with [`set_reference_ops`] the twin runs instead.

pub mod attention;
pub mod device;
pub mod ops;
pub mod quantize;

pub use attention::{AttentionMask, attention, attention_reference};
pub use device::{AdapterReport, Compute, DeviceError, Preference};
pub use ops::{kernels_enabled, reference_ops, set_reference_ops};
pub use quantize::{quantize, quantize_reference};
