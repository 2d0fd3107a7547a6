//! Normalisations with a CPU kernel ([`crate::cpu`]): on burn's CPU backend (unless
//! [`crate::set_reference_ops`] is on) one parallel pass over the rows instead of burn's six to
//! eight element-wise ops, and under autodiff one fused backward pass; everywhere else the
//! `_reference` twin of plain burn ops.

use burn::nn::LayerNorm;
use burn::tensor::{DType, Tensor};

use crate::cpu::{CpuOps, cpu_kernel};

/// An AdaLN step: `x` `[B, L, C]` LayerNorm-ed over `C` (`eps`; then `· gamma + beta` when
/// `affine` is given), then modulated, `· (1 + scale) + shift`, by `scale`/`shift` `[1 or B, 1 or L, C]`.
pub fn layer_norm_modulate(x: Tensor<3>, affine: Option<(Tensor<1>, Tensor<1>)>, scale: Tensor<3>, shift: Tensor<3>, eps: f64) -> Tensor<3> {
    let other = affine.as_ref().is_some_and(|(g, b)| [g, b].iter().any(|t| t.dtype() != DType::F32));
    if other || !cpu_kernel(&[&x, &scale, &shift]) {
        return layer_norm_modulate_reference(x, affine, scale, shift, eps);
    }
    let c = x.dims()[2];
    let device = x.device();
    let (gamma, beta) = affine.unwrap_or_else(|| (Tensor::ones([c], &device), Tensor::zeros([c], &device)));
    Tensor::from_dispatch(burn::backend::Dispatch::layer_norm_modulate(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
        eps as f32,
    ))
}

/// [`layer_norm_modulate`] with plain burn ops.
pub fn layer_norm_modulate_reference(x: Tensor<3>, affine: Option<(Tensor<1>, Tensor<1>)>, scale: Tensor<3>, shift: Tensor<3>, eps: f64) -> Tensor<3> {
    let (var, mean) = x.clone().var_mean_bias(2);
    let mut h = (x - mean) * var.add_scalar(eps).sqrt().recip();
    if let Some((gamma, beta)) = affine {
        let c = gamma.dims()[0];
        h = h * gamma.reshape([1, 1, c]) + beta.reshape([1, 1, c]);
    }
    h * (scale + 1.0) + shift
}

/// What burn's [`LayerNorm`] module computes, given its parameters and `eps` (the module keeps
/// its epsilon private): over the last axis of `x` `[.., C]`, through [`layer_norm_modulate`]'s
/// kernel with no modulation where it runs. Under autodiff burn's own LayerNorm is about ten
/// element-wise ops forward and twenty backward; this is one fused pass each way.
pub fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>, eps: f64) -> Tensor<D> {
    let (gamma, beta) = (norm.gamma.val(), norm.beta.as_ref().map(|b| b.val()));
    let (Some(beta), true) = (beta, cpu_kernel(&[&x])) else {
        return norm.forward(x);
    };
    let dims = x.dims();
    let c = dims[D - 1];
    let rows = dims.iter().take(D - 1).product::<usize>();
    let none = Tensor::<3>::zeros([1, 1, c], &x.device());
    layer_norm_modulate(x.reshape([1, rows, c]), Some((gamma, beta)), none.clone(), none, eps).reshape(dims)
}

/// A gated residual, `x + y · gate`, `x`/`y` `[B, L, C]`, `gate` `[1 or B, 1 or L, C]` (AdaLN's
/// gates): one pass instead of two.
pub fn gated_residual(x: Tensor<3>, y: Tensor<3>, gate: Tensor<3>) -> Tensor<3> {
    if !cpu_kernel(&[&x, &y, &gate]) {
        return gated_residual_reference(x, y, gate);
    }
    Tensor::from_dispatch(burn::backend::Dispatch::gated_residual(x.into_dispatch(), y.into_dispatch(), gate.into_dispatch()))
}

/// [`gated_residual`] with plain burn ops.
pub fn gated_residual_reference(x: Tensor<3>, y: Tensor<3>, gate: Tensor<3>) -> Tensor<3> {
    x + y * gate
}

/// `x / max(‖x‖₂, eps)` over the last axis (`F.normalize`).
pub fn l2_normalize<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    if cpu_kernel(&[&x]) {
        return Tensor::from_dispatch(burn::backend::Dispatch::l2_normalize(x.into_dispatch(), eps as f32));
    }
    l2_normalize_reference(x, eps)
}

/// [`l2_normalize`] with plain burn ops.
pub fn l2_normalize_reference<const D: usize>(x: Tensor<D>, eps: f64) -> Tensor<D> {
    let norm = x.clone().square().sum_dim(D - 1).sqrt().clamp_min(eps);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn the_cpu_kernels_match_the_plain_ops() {
        let device = Device::flex();
        let rand = |shape: [usize; 3]| Tensor::<3>::random(shape, Distribution::Uniform(-3.0, 3.0), &device);
        let (b, l, c) = (3, 37, 48);
        let x = rand([b, l, c]) * 5.0 + 2.0;
        let affine = || Some((rand([1, 1, c]).reshape([c]), rand([1, 1, c]).reshape([c])));
        // Modulation per batch (VAR), per position (RAR) and shared; with and without the affine
        // LayerNorm; a strided x.
        let strided = rand([b, c, l]).swap_dims(1, 2);
        for (x, affine, cond) in [
            (x.clone(), None, [b, 1, c]),
            (x.clone(), affine(), [b, l, c]),
            (x.clone(), affine(), [1, 1, c]),
            (strided, None, [1, l, c]),
        ] {
            let (scale, shift) = (rand(cond), rand(cond));
            let got = layer_norm_modulate(x.clone(), affine.clone(), scale.clone(), shift.clone(), 1e-6);
            let want = layer_norm_modulate_reference(x, affine, scale, shift, 1e-6);
            let diff = max_diff(got, want);
            assert!(diff < 2e-5, "layer_norm_modulate with modulation {cond:?}: max diff {diff}");
        }
        for gate in [[b, 1, c], [b, l, c], [1, 1, c]] {
            let (y, gate) = (rand([b, l, c]), rand(gate));
            let diff = max_diff(gated_residual(x.clone(), y.clone(), gate.clone()), gated_residual_reference(x.clone(), y, gate));
            assert!(diff < 1e-6, "gated_residual: max diff {diff}");
        }
        let x4 = Tensor::<4>::random([2, 4, 33, 32], Distribution::Uniform(-2.0, 2.0), &device);
        let zero_row = Tensor::<4>::zeros([1, 1, 1, 32], &device);
        let x4 = x4.slice_assign([0..1, 0..1, 0..1, 0..32], zero_row);
        let diff = max_diff(l2_normalize(x4.clone(), 1e-12), l2_normalize_reference(x4, 1e-12));
        assert!(diff < 1e-6, "l2_normalize: max diff {diff}");
    }
}
