//! Activations with a CPU kernel ([`crate::cpu`]): on burn's CPU backend (unless
//! [`crate::set_reference_ops`] is on) one parallel pass with a vectorised `exp`, and under
//! autodiff one fused backward pass; everywhere else the `_reference` twin of plain burn ops.

use burn::tensor::activation::sigmoid;
use burn::tensor::Tensor;

use crate::cpu::{CpuOps, cpu_kernel};

/// GELU's tanh approximation, `x · σ(2√(2/π)(x + 0.044715x³))` (VAR's MLP).
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if cpu_kernel(&[&x]) {
        return Tensor::from_dispatch(burn::backend::Dispatch::gelu_tanh(x.into_dispatch()));
    }
    gelu_tanh_reference(x)
}

/// [`gelu_tanh`] with plain burn ops, `½x(1 + tanh(√(2/π)(x + 0.044715x³)))` written as the
/// identical `x · σ(2√(2/π)(x + 0.044715x³))` with `x³` as products: burn's `gelu_approximate`
/// takes `x³` with `powf` and then `tanh`, scalar libm calls on the CPU that were a third of
/// var-tiny's sampling time (BENCHMARKS.md); a sigmoid is one `exp` an element.
pub fn gelu_tanh_reference<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    const A: f64 = 2.0 * core::f64::consts::FRAC_2_SQRT_PI * core::f64::consts::FRAC_1_SQRT_2;
    let inner = x.clone() * (x.clone().square() * (A * 0.044715) + A);
    x * sigmoid(inner)
}

/// The exact GELU, `½x(1 + erf(x/√2))` (RAR's and the column generator's MLPs, timm's default).
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if cpu_kernel(&[&x]) {
        return Tensor::from_dispatch(burn::backend::Dispatch::gelu_erf(x.into_dispatch()));
    }
    burn::tensor::activation::gelu(x)
}

/// SiLU, `x · σ(x)` (the tokenizers' GroupNorm + SiLU).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if cpu_kernel(&[&x]) {
        return Tensor::from_dispatch(burn::backend::Dispatch::silu(x.into_dispatch()));
    }
    burn::tensor::activation::silu(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn max_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// Values across the range where the activations bend, saturate and overflow `exp`.
    fn inputs(device: &Device) -> Tensor<2> {
        let edges = Tensor::<1>::from_floats([-120.0, -90.0, -40.0, -9.0, -3.0, -1.0, -0.3, 0.0, 0.2, 1.0, 2.5, 8.0, 40.0, 95.0], device);
        let random = Tensor::<1>::random([70_000 - 14], Distribution::Uniform(-12.0, 12.0), device);
        Tensor::cat(vec![edges, random], 0).reshape([350, 200])
    }

    #[test]
    fn the_cpu_kernels_match_the_plain_ops() {
        let device = Device::flex();
        assert!(crate::ops::cpu_kernels_enabled(&device), "burn's CPU backend must take the CPU kernels");
        let x = inputs(&device);
        // A strided view takes the copying path of the kernel.
        for x in [x.clone(), x.transpose()] {
            let gelu = max_diff(gelu_tanh(x.clone()), gelu_tanh_reference(x.clone()));
            let burns = max_diff(gelu_tanh(x.clone()), burn::tensor::activation::gelu_approximate(x.clone()));
            let silu_diff = max_diff(silu(x.clone()), burn::tensor::activation::silu(x.clone()));
            eprintln!("gelu_tanh vs plain {gelu:.2e}, vs burn's gelu_approximate {burns:.2e}; silu {silu_diff:.2e}");
            assert!(gelu < 1e-5 && burns < 1e-5 && silu_diff < 1e-5, "gelu {gelu}, burn's {burns}, silu {silu_diff}");
        }
    }

    #[test]
    fn tracked_tensors_take_the_differentiable_ops() {
        let device = Device::flex().autodiff();
        let x = inputs(&device).require_grad();
        let grads = (gelu_tanh(x.clone()) + silu(x.clone())).sum().backward();
        let g = x.grad(&grads).expect("a gradient reaches x");
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
    }
}
