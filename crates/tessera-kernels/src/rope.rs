//! Rotary position embedding (interleaved pairs, as the column generator's official
//! `apply_rotary_emb`) with a CPU kernel ([`crate::cpu`]): on burn's CPU backend (unless
//! [`crate::set_reference_ops`] is on) one pass, and under autodiff one backward pass (the inverse
//! rotation), where the plain ops narrow, multiply and concatenate (and their backward passes
//! write each half into a zeroed tensor of the full size); everywhere else the `_reference` twin.

use burn::tensor::Tensor;

use crate::cpu::{CpuOps, cpu_kernel};

/// `x` `[B, L, H, D]` with each interleaved pair `(x₂ₖ, x₂ₖ₊₁)` at position `l` rotated by the
/// angle whose `cos`/`sin` are `[L, D/2]`.
pub fn rope(x: Tensor<4>, cos: Tensor<2>, sin: Tensor<2>) -> Tensor<4> {
    if !cpu_kernel(&[&cos, &sin]) || !cpu_kernel(&[&x]) {
        return rope_reference(x, cos, sin);
    }
    Tensor::from_dispatch(burn::backend::Dispatch::rope(x.into_dispatch(), cos.into_dispatch(), sin.into_dispatch()))
}

/// [`rope`] with plain burn ops.
pub fn rope_reference(x: Tensor<4>, cos: Tensor<2>, sin: Tensor<2>) -> Tensor<4> {
    let [b, l, h, d] = x.dims();
    let (cos, sin) = (cos.reshape([1, l, 1, d / 2, 1]), sin.reshape([1, l, 1, d / 2, 1]));
    let x = x.reshape([b, l, h, d / 2, 2]);
    let (x0, x1) = (x.clone().narrow(4, 0, 1), x.narrow(4, 1, 1));
    let out0 = x0.clone() * cos.clone() - x1.clone() * sin.clone();
    let out1 = x1 * cos + x0 * sin;
    Tensor::cat(vec![out0, out1], 4).reshape([b, l, h, d])
}
