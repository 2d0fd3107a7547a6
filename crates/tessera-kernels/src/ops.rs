//! The burn backend extension that carries Tessera's WGSL kernels, and the switch between them and
//! their plain-burn twins.
//!
//! Routing: the public functions ([`crate::attention::attention`], [`crate::quantize::quantize`])
//! launch a kernel only on a wgpu device when [`reference_ops`] is off. Everything else (burn's CPU
//! backend, `--reference-ops`) runs the `_reference` twin, so the extension is never called on a
//! backend that lacks it (the macro would panic there).
//!
//! Under autodiff the kernels run too: attention's forward is the fused kernel and its backward
//! (here, [`attention_grads`]) recomputes the attention matrix with plain ops, one layer at a time,
//! instead of keeping it alive from the forward pass; the quantizer's indices come from the kernel and
//! its codes from a tracked gather, so gradients reach the codebook exactly as on the plain path.
//! A fused WGSL backward is not written yet.

use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::wgpu::CubeBackend;
use burn::backend::{Autodiff, Backend, CubeDevice, DispatchDevice, TensorMetadata, backend_extension};
use burn::tensor::{Device, Shape, TensorData};

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

/// Whether the CPU kernels ([`crate::cpu`]) run for tensors on `device` (with or without
/// autodiff): burn's CPU backend (flex) and the reference switch off.
pub fn cpu_kernels_enabled(device: &Device) -> bool {
    !reference_ops() && matches!(device.clone().without_autodiff().as_dispatch(), DispatchDevice::Flex(_))
}

/// Whether the kernels run for tensors on `device`: a wgpu device (with or without autodiff) and the
/// reference switch off.
pub fn kernels_enabled(device: &Device) -> bool {
    !reference_ops() && is_wgpu(device)
}

/// The kernel entry points. Implemented for cubecl's backend only; see the module docs for how
/// callers avoid the other backends.
#[backend_extension(Cube, Autodiff)]
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

/// The mask arguments of [`KernelOps::fused_attention`], kept for the backward pass.
#[derive(Clone, Debug)]
struct MaskArgs {
    mask: u32,
    q_offset: u32,
    window: u32,
    block_end: Vec<u32>,
    scale: f32,
}

impl MaskArgs {
    /// `[1, 1, Lq, Lk]` additive mask (0 or −∞), `None` without a mask: the shader's rule.
    fn bias(&self, lq: usize, lk: usize) -> Option<Vec<f32>> {
        if self.mask == 0 {
            return None;
        }
        let mut bias = vec![0.0f32; lq * lk];
        for i in 0..lq {
            let pos = i + self.q_offset as usize;
            let (lo, hi) = match self.mask {
                1 => (0, pos + 1),
                2 => (pos.saturating_sub(self.window as usize), pos + 1),
                _ => (0, self.block_end[pos] as usize),
            };
            for (j, b) in bias[i * lk..(i + 1) * lk].iter_mut().enumerate() {
                if j < lo || j >= hi {
                    *b = f32::NEG_INFINITY;
                }
            }
        }
        Some(bias)
    }
}

/// Gradients of attention with respect to q, k and v, from plain backend ops: the attention matrix
/// `P` is recomputed rather than stored, then `dV = Pᵀ dO`, `dP = dO Vᵀ`,
/// `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = dS K · scale`, `dK = dSᵀ Q · scale`.
fn attention_grads<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    grad: FloatTensor<B>,
    args: &MaskArgs,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let [b, h, lq, _] = q.shape().dims();
    let lk = k.shape()[2];
    let full = Shape::from([b, h, lq, lk]);
    let mut scores = B::float_mul_scalar(
        B::float_matmul(q.clone(), B::float_swap_dims(k.clone(), 2, 3)),
        args.scale.into(),
    );
    if let Some(bias) = args.bias(lq, lk) {
        let bias = B::float_from_data(TensorData::new(bias, [1, 1, lq, lk]), &q.device());
        scores = B::float_add(scores, B::float_expand(bias, full.clone()));
    }
    let max = B::float_expand(B::float_max_dim(scores.clone(), 3), full.clone());
    let e = B::float_exp(B::float_sub(scores, max));
    let sum = B::float_expand(B::float_sum_dim(e.clone(), 3), full.clone());
    let p = B::float_div(e, sum);
    let dv = B::float_matmul(B::float_swap_dims(p.clone(), 2, 3), grad.clone());
    let dp = B::float_matmul(grad, B::float_swap_dims(v, 2, 3));
    let row = B::float_expand(B::float_sum_dim(B::float_mul(dp.clone(), p.clone()), 3), full);
    let ds = B::float_mul(p, B::float_sub(dp, row));
    let dq = B::float_mul_scalar(B::float_matmul(ds.clone(), k), args.scale.into());
    let dk = B::float_mul_scalar(B::float_matmul(B::float_swap_dims(ds, 2, 3), q), args.scale.into());
    (dq, dk, dv)
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: KernelOps> Backward<B, 3> for AttentionBackward {
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, MaskArgs);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [pq, pk, pv] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, args) = ops.state;
        let (dq, dk, dv) = attention_grads::<B>(q, k, v, grad, &args);
        for (parent, g) in [(pq, dq), (pk, dk), (pv, dv)] {
            if let Some(node) = parent {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: KernelOps, C: CheckpointStrategy> KernelOps for Autodiff<B, C> {
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
        let args = MaskArgs { mask, q_offset, window, block_end, scale };
        let (qp, kp, vp) = (q.primitive().clone(), k.primitive().clone(), v.primitive().clone());
        let forward = |args: &MaskArgs| {
            B::fused_attention(qp.clone(), kp.clone(), vp.clone(), args.mask, args.q_offset, args.window, args.block_end.clone(), args.scale)
        };
        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let out = forward(&args);
                prep.finish((qp, kp, vp, args), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(&args)),
        }
    }

    fn nearest_code(
        x: FloatTensor<Self>,
        codebook: FloatTensor<Self>,
    ) -> (IntTensor<Self>, FloatTensor<Self>) {
        // Indices carry no gradient; the codes are a tracked gather, as on the plain path.
        let (idx, _) = B::nearest_code(x.primitive().clone(), codebook.primitive().clone());
        let codes = Self::float_select(codebook, 0, idx.clone());
        (idx, codes)
    }
}
