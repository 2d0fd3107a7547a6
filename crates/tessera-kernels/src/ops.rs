//! The burn backend extension that carries Tessera's WGSL kernels, and the switch between them and
//! their plain-burn twins.
//!
//! Routing: the public functions ([`crate::attention::attention`], [`crate::quantize::quantize`])
//! launch a kernel only on a wgpu device, without autodiff, when [`reference_ops`] is off. Everything
//! else (burn's CPU backend, autodiff graphs, `--reference-ops`) runs the `_reference` twin, so the
//! extension is never called on a backend that lacks it (the macro would panic there).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::CubeBackend;
use burn::backend::{Backend, CubeDevice, DispatchDevice, backend_extension};
use burn::tensor::Device;

static REFERENCE_OPS: AtomicBool = AtomicBool::new(false);

/// Forces the plain burn ops everywhere (`--reference-ops`, the app's settings): for comparing
/// results and speed with the kernels, or as an escape hatch if a driver miscompiles one.
pub fn set_reference_ops(on: bool) {
    REFERENCE_OPS.store(on, Ordering::Relaxed);
}

/// Whether [`set_reference_ops`] forced the plain ops.
pub fn reference_ops() -> bool {
    REFERENCE_OPS.load(Ordering::Relaxed)
}

/// Whether `device` runs wgpu, where the WGSL kernels can launch (autodiff or not).
pub fn is_wgpu(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        DispatchDevice::Cube(CubeDevice::Wgpu(_))
    )
}

/// Whether the kernels run for tensors on `device`: a wgpu device, no autodiff (no custom backward
/// yet: training stays on plain ops), and the reference switch off.
pub fn kernels_enabled(device: &Device) -> bool {
    !reference_ops() && !device.is_autodiff() && is_wgpu(device)
}

/// The kernel entry points. Implemented for cubecl's backend only; see the module docs for how
/// callers avoid the other backends.
#[backend_extension(Cube)]
pub trait KernelOps: Backend {
    /// `q` `[B, H, Lq, D]`, `k`/`v` `[B, H, Lk, D]` → `[B, H, Lq, D]`. `mask` is the shader's mask
    /// code, `block_end` its per-position table (block-causal only; else empty).
    #[allow(clippy::too_many_arguments)]
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: u32,
        q_offset: u32,
        window: u32,
        block_end: Vec<u32>,
        scale: f32,
    ) -> FloatTensor<Self>;

    /// `x` `[N, D]`, `codebook` `[V, D]` → (indices `[N]` as i32, codes `[N, D]`).
    fn nearest_code(
        x: FloatTensor<Self>,
        codebook: FloatTensor<Self>,
    ) -> (IntTensor<Self>, FloatTensor<Self>);
}

impl KernelOps for CubeBackend {
    fn fused_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: u32,
        q_offset: u32,
        window: u32,
        block_end: Vec<u32>,
        scale: f32,
    ) -> FloatTensor<Self> {
        crate::attention::launch(q, k, v, mask, q_offset, window, &block_end, scale)
    }

    fn nearest_code(
        x: FloatTensor<Self>,
        codebook: FloatTensor<Self>,
    ) -> (IntTensor<Self>, FloatTensor<Self>) {
        crate::quantize::launch(x, codebook)
    }
}
