//! Tessera's compute layer: the one device everything runs on ([`device`]) and, as burn backend
//! extensions ([`ops`], [`decoder`]), the hand-written WGSL kernels in `shaders/` (attention,
//! quantizer, decoder convolution, GroupNorm+SiLU, pixel shuffle).
//! Every kernel has a `_reference` twin made of plain burn ops; on devices without wgpu (the CPU
//! fallback) and with [`set_reference_ops`] the twin runs instead, and so it does for the decoder
//! kernels under autodiff (attention and the quantizer have a backward; see [`ops`]).
//! On burn's CPU backend, sampling and training run CPU kernels instead ([`cpu`]): attention,
//! the activations, normalisations, linear layers, cross-entropy and RoPE of [`activation`],
//! [`norm`], [`linear`], [`loss`] and [`rope`], each with a fused backward pass under autodiff.

pub mod activation;
pub mod attention;
pub mod cpu;
pub mod decoder;
pub mod device;
pub mod linear;
pub mod loss;
pub mod norm;
pub mod ops;
pub mod quantize;
pub mod rope;

pub use attention::{AttentionMask, attention, attention_reference};
pub use decoder::{
    Padding, conv3x3, conv3x3_reference, group_norm, group_norm_reference, pixel_shuffle, pixel_shuffle_reference,
};
pub use device::{AdapterReport, Compute, DeviceError, Preference, buffer_limit, is_lost};
pub use ops::{kernels_enabled, reference_ops, set_reference_ops};
pub use quantize::{quantize, quantize_reference};
