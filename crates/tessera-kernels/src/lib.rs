//! Tessera's compute layer: the one device everything runs on ([`device`]) and, as burn backend
//! extensions, the hand-written WGSL kernels in `shaders/` (attention, quantizer, decoder layers).
//! Every kernel has a `_reference` twin made of plain burn ops; on devices without wgpu (the CPU
//! fallback) the twin runs instead.

pub mod device;

pub use device::{AdapterReport, Compute, DeviceError, Preference};
