//! Linear layers with a CPU kernel ([`crate::cpu`]): on burn's CPU backend outside autodiff (and
//! unless [`crate::set_reference_ops`] is on) the output starts as the bias and the product is
//! added to it in one `gemm` call, where burn's linear zero-fills a buffer, multiplies into it and
//! adds the bias in a second pass. Everywhere else, burn's own linear.

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
}
