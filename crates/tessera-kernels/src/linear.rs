//! Linear layers with a CPU kernel ([`crate::cpu`]): on burn's CPU backend (unless
//! [`crate::set_reference_ops`] is on) the output starts as the bias and the product is added to
//! it in one `gemm` call, where burn's linear zero-fills a buffer, multiplies into it and adds the
//! bias in a second pass; under autodiff its backward is two `gemm` calls and a column sum.
//! Everywhere else, burn's own linear.

use burn::nn::Linear;
use burn::tensor::Tensor;

use crate::cpu::{CpuOps, cpu_kernel};

/// `x · weight + bias`: `x` `[.., K]`, `weight` `[K, N]` (burn's layout), `bias` `[N]`.
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    match bias {
        Some(bias) if cpu_kernel(&[&x]) && cpu_kernel(&[&weight]) && cpu_kernel(&[&bias]) => {
            Tensor::from_dispatch(burn::backend::Dispatch::cpu_linear(x.into_dispatch(), weight.into_dispatch(), bias.into_dispatch()))
        }
        bias => linear_reference(x, weight, bias),
    }
}

/// [`linear`] as burn computes it.
pub fn linear_reference<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    burn::tensor::module::linear(x, weight, bias)
}

/// A burn [`Linear`] module's forward pass through [`linear`].
pub fn forward<const D: usize>(layer: &Linear, x: Tensor<D>) -> Tensor<D> {
    linear(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// `x · weight + bias` cut into `N` equal chunks along the last axis (AdaLN's shift, scale and
/// gate; q, k and v). Outside autodiff: one product and `N` views of it. Under autodiff: one
/// product per chunk, each from its columns of the weight, the same numbers up to rounding: on
/// burn's CPU backend the backward pass of a view narrowed out of an activation allocates,
/// zero-fills and copies a tensor of the activation's full width once per chunk (burn's slice
/// backward; about a tenth of a RAR training step, BENCHMARKS.md), where a narrowed weight costs
/// only the weight's size.
pub fn chunks<const D: usize, const N: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> [Tensor<D>; N] {
    let width = weight.dims()[1];
    assert!(width.is_multiple_of(N), "{width} outputs do not cut into {N} chunks");
    let n = width / N;
    if per_chunk(&x) {
        return std::array::from_fn(|i| linear(x.clone(), weight.clone().narrow(1, i * n, n), bias.clone().map(|b| b.narrow(0, i * n, n))));
    }
    let out = linear(x, weight, bias);
    std::array::from_fn(|i| out.clone().narrow(D - 1, i * n, n))
}

/// Whether [`chunks`] takes one product per chunk: under autodiff on burn's CPU backend, whose
/// slice backward is the cost it avoids (on a GPU the narrowed views stay).
fn per_chunk<const D: usize>(x: &Tensor<D>) -> bool {
    x.is_autodiff() && cpu_kernel(&[x])
}

/// [`chunks`] of a burn [`Linear`] module.
pub fn forward_chunks<const D: usize, const N: usize>(layer: &Linear, x: Tensor<D>) -> [Tensor<D>; N] {
    chunks(x, layer.weight.val(), layer.bias.as_ref().map(|b| b.val()))
}

/// A fused q/k/v projection of `x` `[B, L, C]` (`weight` `[C, 3·H·hd]`, its columns ordered
/// (q/k/v, head, hd) as timm's) split into q, k and v `[B, H, L, hd]`. Outside autodiff the
/// output is reshaped before it is narrowed, so the three are views (a reshape of a narrowed view
/// copies); under autodiff, as [`chunks`].
pub fn qkv_heads(x: Tensor<3>, weight: Tensor<2>, bias: Option<Tensor<1>>, heads: usize) -> [Tensor<4>; 3] {
    let [b, l, _] = x.dims();
    let hd = weight.dims()[1] / (3 * heads);
    if per_chunk(&x) {
        return chunks::<3, 3>(x, weight, bias).map(|t| t.reshape([b, l, heads, hd]).swap_dims(1, 2));
    }
    let qkv = linear(x, weight, bias).reshape([b, l, 3 * heads, hd]);
    std::array::from_fn(|i| qkv.clone().narrow(2, i * heads, heads).swap_dims(1, 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn the_cpu_kernel_matches_burns_linear() {
        let device = Device::flex();
        let rand = |shape: [usize; 2]| Tensor::<2>::random(shape, Distribution::Uniform(-1.0, 1.0), &device);
        // Small (one thread) and large (the product spread over the cores); contiguous and strided x.
        for (rows, k, n) in [(1, 8, 3), (7, 32, 96), (1200, 256, 512)] {
            let (w, b) = (rand([k, n]), Tensor::<1>::random([n], Distribution::Uniform(-1.0, 1.0), &device));
            let x = Tensor::<3>::random([2, rows, k], Distribution::Uniform(-1.0, 1.0), &device);
            let strided = Tensor::<3>::random([2, k, rows], Distribution::Uniform(-1.0, 1.0), &device).swap_dims(1, 2);
            for x in [x, strided] {
                let got = linear(x.clone(), w.clone(), Some(b.clone()));
                assert_eq!(got.dims(), [2, rows, n]);
                let diff = (got - linear_reference(x, w.clone(), Some(b.clone()))).abs().max().into_scalar::<f32>();
                assert!(diff < 1e-4, "[2, {rows}, {k}] x [{k}, {n}]: max diff {diff}");
            }
        }
        // Without a bias, and on a 2-D input.
        let (x, w) = (rand([5, 16]), rand([16, 4]));
        let diff = (linear(x.clone(), w.clone(), None) - linear_reference(x, w, None)).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn chunks_are_the_same_numbers_tracked_or_not() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let x = Tensor::<3>::random([2, 5, 16], Distribution::Uniform(-1.0, 1.0), &device);
            let w = Tensor::<2>::random([16, 24], Distribution::Uniform(-1.0, 1.0), &device);
            let bias = Tensor::<1>::random([24], Distribution::Uniform(-1.0, 1.0), &device);
            let x = if device.is_autodiff() { x.require_grad() } else { x };
            let full = linear_reference(x.clone(), w.clone(), Some(bias.clone()));
            let parts: [Tensor<3>; 3] = chunks(x.clone(), w.clone(), Some(bias.clone()));
            for (i, part) in parts.into_iter().enumerate() {
                let diff = (part - full.clone().narrow(2, i * 8, 8)).abs().max().into_scalar::<f32>();
                assert!(diff < 1e-5, "chunk {i}: {diff}");
            }
            let heads = qkv_heads(x, w, Some(bias), 2);
            for (i, t) in heads.into_iter().enumerate() {
                assert_eq!(t.dims(), [2, 2, 5, 4]);
                let want = full.clone().narrow(2, i * 8, 8).reshape([2, 5, 2, 4]).swap_dims(1, 2);
                let diff = (t - want).abs().max().into_scalar::<f32>();
                assert!(diff < 1e-5, "head part {i}: {diff}");
            }
        }
    }
}
