//! Cross-entropy with a CPU kernel ([`crate::cpu`]): on burn's CPU backend (unless
//! [`crate::set_reference_ops`] is on) one pass per row forward (log-sum-exp with the vectorised
//! `exp`) and one backward (`softmax − one-hot`), where burn's `log_softmax`, `gather` and their
//! backward passes make about ten passes over the logits with libm's scalar `expf`; everywhere
//! else the `_reference` twin.

use burn::tensor::{Int, Tensor};

use crate::cpu::{CpuOps, cpu_kernel};

/// The mean over rows of `−log softmax(logits)[target]`: `logits` `[.., V]`, `targets` the
/// indices with `logits`' shape but 1 in the last axis (the layout of a `gather` along it).
pub fn cross_entropy<const D: usize>(logits: Tensor<D>, targets: Tensor<D, Int>) -> Tensor<1> {
    if !cpu_kernel(&[&logits]) {
        return cross_entropy_reference(logits, targets);
    }
    let v = logits.dims()[D - 1];
    let rows = logits.dims().iter().take(D - 1).product::<usize>();
    let logits = logits.reshape([rows, v]);
    let targets = targets.reshape([rows]);
    Tensor::<1>::from_dispatch(burn::backend::Dispatch::cross_entropy_rows(logits.into_dispatch(), targets.into_dispatch())).mean()
}

/// [`cross_entropy`] with plain burn ops.
pub fn cross_entropy_reference<const D: usize>(logits: Tensor<D>, targets: Tensor<D, Int>) -> Tensor<1> {
    burn::tensor::activation::log_softmax(logits, D - 1).gather(D - 1, targets).neg().mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn the_cpu_kernel_matches_the_plain_ops_forward_and_backward() {
        for device in [Device::flex(), Device::flex().autodiff()] {
            let (b, n, v) = (3, 7, 40);
            let logits = Tensor::<3>::random([b, n, v], Distribution::Uniform(-8.0, 8.0), &device);
            let targets = Tensor::<3, Int>::random([b, n, 1], Distribution::Uniform(0.0, v as f64), &device);
            let run = |f: &dyn Fn(Tensor<3>, Tensor<3, Int>) -> Tensor<1>| {
                let x = Tensor::<3>::from_data(logits.to_data(), &device);
                let x = if device.is_autodiff() { x.require_grad() } else { x };
                let loss = f(x.clone(), targets.clone());
                let value = loss.clone().into_scalar::<f32>();
                let grad = device.is_autodiff().then(|| x.grad(&loss.backward()).expect("a gradient reaches the logits").to_data());
                (value, grad)
            };
            let (got, got_grad) = run(&cross_entropy);
            let (want, want_grad) = run(&cross_entropy_reference);
            assert!((got - want).abs() < 1e-5 * want.abs().max(1.0), "loss {got} vs {want}");
            if let (Some(g), Some(w)) = (got_grad, want_grad) {
                g.assert_approx_eq::<f32>(&w, burn::tensor::Tolerance::absolute(1e-6));
            }
        }
    }
}
