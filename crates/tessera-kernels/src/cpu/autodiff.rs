//! The CPU kernels under autodiff: training on burn's CPU backend runs the fused forward kernels
//! and records their fused backward kernels ([`super::grads`], the `_backward` methods of
//! [`CpuOps`]) as one backward step each, where burn's own ops record one step per element-wise op.
//!
//! Every op keeps what its backward pass reads (inputs, not intermediates: a LayerNorm's
//! statistics and attention's probabilities are recomputed, which costs less than storing them).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::{FloatTensor, IntTensor};

use super::CpuOps;

/// Registers each gradient of `$values` whose parent in `$parents` is tracked (a macro: the
/// parents' node type is not public).
macro_rules! register {
    ($b:ty, $grads:expr, $parents:expr, $values:expr) => {
        for (parent, g) in $parents.into_iter().zip($values) {
            if let Some(node) = parent {
                $grads.register::<$b>(node.id, g);
            }
        }
    };
}

/// The backward of a one-input element-wise kernel: `f(x, grad)`.
#[derive(Debug)]
struct Unary<B: CpuOps>(fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>);

impl<B: CpuOps> Backward<B, 1> for Unary<B> {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        register!(B, grads, ops.parents, [(self.0)(ops.state, grad)]);
    }
}

/// A one-input element-wise kernel `forward` whose backward is `backward(x, grad)`.
fn unary<B: CpuOps, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    forward: fn(FloatTensor<B>) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, FloatTensor<B>) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>> {
    let xp = x.primitive().clone();
    match Unary::<B>(backward).prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(xp.clone(), forward(xp)),
        OpsKind::UnTracked(prep) => prep.finish(forward(xp)),
    }
}

#[derive(Debug)]
struct RopeBackward;

impl<B: CpuOps> Backward<B, 1> for RopeBackward {
    /// cos and sin.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (cos, sin) = ops.state;
        // The inverse rotation.
        register!(B, grads, ops.parents, [B::rope(grad, cos, B::float_neg(sin))]);
    }
}

#[derive(Debug)]
struct CrossEntropyBackward;

impl<B: CpuOps> Backward<B, 1> for CrossEntropyBackward {
    /// logits and targets.
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (logits, targets) = ops.state;
        register!(B, grads, ops.parents, [B::cross_entropy_rows_backward(logits, targets, grad)]);
    }
}

#[derive(Debug)]
struct AttentionBackward;

/// q, k, v and the mask arguments of [`CpuOps::cpu_attention`].
type AttentionState<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, (u32, u32, u32, Vec<u32>, f32));

impl<B: CpuOps> Backward<B, 3> for AttentionBackward {
    type State = AttentionState<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (q, k, v, (mask, q_offset, window, block_end, scale)) = ops.state;
        let (dq, dk, dv) = B::cpu_attention_backward(q, k, v, grad, mask, q_offset, window, block_end, scale);
        register!(B, grads, ops.parents, [dq, dk, dv]);
    }
}

#[derive(Debug)]
struct LayerNormModulateBackward;

impl<B: CpuOps> Backward<B, 5> for LayerNormModulateBackward {
    /// x, gamma, beta, scale and eps.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, gamma, beta, scale, eps) = ops.state;
        let (dx, dgamma, dbeta, dscale, dshift) = B::layer_norm_modulate_backward(x, gamma, beta, scale, grad, eps);
        register!(B, grads, ops.parents, [dx, dgamma, dbeta, dscale, dshift]);
    }
}

#[derive(Debug)]
struct L2NormalizeBackward;

impl<B: CpuOps> Backward<B, 1> for L2NormalizeBackward {
    /// x and eps.
    type State = (FloatTensor<B>, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, eps) = ops.state;
        register!(B, grads, ops.parents, [B::l2_normalize_backward(x, grad, eps)]);
    }
}

#[derive(Debug)]
struct GatedResidualBackward;

impl<B: CpuOps> Backward<B, 3> for GatedResidualBackward {
    /// y and gate.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (y, gate) = ops.state;
        let (dy, dgate) = B::gated_residual_backward(y, gate, grad.clone());
        register!(B, grads, ops.parents, [grad, dy, dgate]);
    }
}

#[derive(Debug)]
struct LinearBackward;

impl<B: CpuOps> Backward<B, 3> for LinearBackward {
    /// x and weight.
    type State = (FloatTensor<B>, FloatTensor<B>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<B>(&ops.node);
        let (x, weight) = ops.state;
        let [px, pw, pb] = ops.parents;
        let (dx, dweight, dbias) = B::cpu_linear_backward(x, weight, grad, px.is_some());
        if let (Some(node), Some(dx)) = (px, dx) {
            grads.register::<B>(node.id, dx);
        }
        register!(B, grads, [pw, pb], [dweight, dbias]);
    }
}

impl<B: CpuOps, C: CheckpointStrategy> CpuOps for Autodiff<B, C> {
    fn cpu_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: u32,
        q_offset: u32,
        window: u32,
        block_end: Vec<u32>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let (qp, kp, vp) = (q.primitive().clone(), k.primitive().clone(), v.primitive().clone());
        let out = B::cpu_attention(qp.clone(), kp.clone(), vp.clone(), mask, q_offset, window, block_end.clone(), scale);
        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((qp, kp, vp, (mask, q_offset, window, block_end, scale)), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self> {
        let (cp, sp) = (cos.primitive().clone(), sin.primitive().clone());
        let out = B::rope(x.primitive().clone(), cp.clone(), sp.clone());
        match RopeBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((cp, sp), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let lp = logits.primitive().clone();
        let out = B::cross_entropy_rows(lp.clone(), targets.clone());
        match CrossEntropyBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((lp, targets), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary::<B, C>(x, B::gelu_tanh, B::gelu_tanh_backward)
    }

    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary::<B, C>(x, B::gelu_erf, B::gelu_erf_backward)
    }

    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        unary::<B, C>(x, B::silu, B::silu_backward)
    }

    fn layer_norm_modulate(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        let [xp, gp, bp, sp, tp] = [&x, &gamma, &beta, &scale, &shift].map(|t| t.primitive().clone());
        let out = B::layer_norm_modulate(xp.clone(), gp.clone(), bp.clone(), sp.clone(), tp, eps);
        match LayerNormModulateBackward.prepare::<C>([x.node(), gamma.node(), beta.node(), scale.node(), shift.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xp, gp, bp, sp, eps), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn l2_normalize(x: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let xp = x.primitive().clone();
        let out = B::l2_normalize(xp.clone(), eps);
        match L2NormalizeBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xp, eps), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn gated_residual(x: FloatTensor<Self>, y: FloatTensor<Self>, gate: FloatTensor<Self>) -> FloatTensor<Self> {
        let (yp, gp) = (y.primitive().clone(), gate.primitive().clone());
        let out = B::gated_residual(x.primitive().clone(), yp.clone(), gp.clone());
        match GatedResidualBackward.prepare::<C>([x.node(), y.node(), gate.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((yp, gp), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn cpu_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let (xp, wp) = (x.primitive().clone(), weight.primitive().clone());
        let out = B::cpu_linear(xp.clone(), wp.clone(), bias.primitive().clone());
        match LinearBackward.prepare::<C>([x.node(), weight.node(), bias.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((xp, wp), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Distribution, Tensor};

    use crate::{AttentionMask, activation, attention, linear, norm};

    fn rand<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
        Tensor::random(shape, Distribution::Uniform(-2.0, 2.0), device)
    }

    /// Runs `f` (kernel) and `reference` on the same tracked inputs, takes the gradients of a
    /// random weighting of each output, and checks each input's gradients agree to `tol`
    /// (relative to the largest gradient).
    fn check<const D: usize, const O: usize>(what: &str, inputs: Vec<Tensor<D>>, f: impl Fn(&[Tensor<D>]) -> Tensor<O>, reference: impl Fn(&[Tensor<D>]) -> Tensor<O>, tol: f32) {
        let device = inputs[0].device();
        let grads_of = |op: &dyn Fn(&[Tensor<D>]) -> Tensor<O>, weight: Option<Tensor<O>>| {
            let tracked: Vec<_> = inputs.iter().map(|t| Tensor::<D>::from_data(t.to_data(), &device).require_grad()).collect();
            let out = op(&tracked);
            let weight = weight.unwrap_or_else(|| rand(out.dims(), &device));
            let grads = (out.clone() * weight.clone()).sum().backward();
            let g: Vec<Tensor<D>> = tracked.iter().map(|t| Tensor::from_data(t.grad(&grads).expect("a gradient reaches every input").to_data(), &Device::flex())).collect();
            (out.to_data(), g, weight)
        };
        let (out, got, weight) = grads_of(&f, None);
        let (want_out, want, _) = grads_of(&reference, Some(weight));
        out.assert_approx_eq::<f32>(&want_out, burn::tensor::Tolerance::absolute(1e-4));
        for (i, (g, w)) in got.into_iter().zip(want).enumerate() {
            let scale = w.clone().abs().max().into_scalar::<f32>().max(1e-6);
            let diff = (g - w).abs().max().into_scalar::<f32>() / scale;
            assert!(diff < tol, "{what}: input {i}'s gradient differs by {diff:.2e} (relative)");
        }
    }

    #[test]
    fn the_backward_kernels_match_the_plain_ops() {
        let device = Device::flex().autodiff();
        assert!(crate::ops::cpu_kernels_enabled(&device), "autodiff on burn's CPU backend must take the CPU kernels");
        // Small (one task) and large (900 rows of 64: two tasks, whose partial sums are merged,
        // one of them crossing a batch boundary).
        for (b, l, c) in [(3, 37, 48), (3, 300, 64)] {
            norm_cases(&device, b, l, c);
        }
        let (b, l, c) = (3, 37, 48);
        let x = rand([b, l, c], &device) * 3.0 + 1.0;
        // Contiguous and strided inputs (the view made inside the op, so its backward sees it).
        for strided in [false, true] {
            let input = if strided { rand([b, c, l], &device) } else { x.clone() };
            let view = move |t: &Tensor<3>| if strided { t.clone().swap_dims(1, 2) } else { t.clone() };
            check("gelu_tanh", vec![input.clone()], |t| activation::gelu_tanh(view(&t[0])), |t| activation::gelu_tanh_reference(view(&t[0])), 1e-5);
            check("gelu", vec![input.clone()], |t| activation::gelu(view(&t[0])), |t| burn::tensor::activation::gelu(view(&t[0])), 1e-5);
            check("silu", vec![input.clone()], |t| activation::silu(view(&t[0])), |t| burn::tensor::activation::silu(view(&t[0])), 1e-5);
            check("l2_normalize", vec![input.clone()], |t| norm::l2_normalize(view(&t[0]), 1e-6), |t| norm::l2_normalize_reference(view(&t[0]), 1e-6), 1e-4);
        }
        // A row shorter than eps: the plain ops' gradient is NaN there (sqrt at 0), the kernel's
        // is the clamped norm's, g / eps.
        let small = Tensor::<2>::from_floats([[1e-9, 0.0, 0.0]], &device).require_grad();
        let grads = (norm::l2_normalize(small.clone(), 1e-6) * Tensor::from_floats([[2.0, 3.0, 4.0]], &device)).sum().backward();
        small.grad(&grads).unwrap().to_data().assert_approx_eq::<f32>(&burn::tensor::TensorData::from([[2e6f32, 3e6, 4e6]]), burn::tensor::Tolerance::relative(1e-5));
        // Linear: few rows, and 2000 (several column blocks of the bias sum, spread products).
        for rows in [37, 1000] {
            let inputs = vec![rand([2, rows, c], &device), rand([1, c, 96], &device), rand([1, 1, 96], &device)];
            check(
                &format!("linear, {rows} rows"),
                inputs,
                |t| linear::linear(t[0].clone(), t[1].clone().reshape([c, 96]), Some(t[2].clone().reshape([96]))),
                |t| linear::linear_reference(t[0].clone(), t[1].clone().reshape([c, 96]), Some(t[2].clone().reshape([96]))),
                1e-4,
            );
        }
    }

    /// LayerNorm + modulation and the gated residual against the plain ops, with the condition
    /// per sample (VAR), per slot (RAR), shared and per position.
    fn norm_cases(device: &Device, b: usize, l: usize, c: usize) {
        let x = rand([b, l, c], device) * 3.0 + 1.0;
        for cond in [[b, 1, c], [b, l, c], [1, 1, c], [1, l, c]] {
            let inputs = vec![x.clone(), rand([1, 1, c], device), rand([1, 1, c], device), rand(cond, device), rand(cond, device)];
            let affine = |t: &[Tensor<3>]| Some((t[1].clone().reshape([c]), t[2].clone().reshape([c])));
            check(
                &format!("layer_norm_modulate {cond:?}"),
                inputs,
                |t| norm::layer_norm_modulate(t[0].clone(), affine(t), t[3].clone(), t[4].clone(), 1e-6),
                |t| norm::layer_norm_modulate_reference(t[0].clone(), affine(t), t[3].clone(), t[4].clone(), 1e-6),
                1e-4,
            );
            let inputs = vec![x.clone(), rand([b, l, c], device), rand(cond, device)];
            check(
                &format!("gated_residual {cond:?}"),
                inputs,
                |t| norm::gated_residual(t[0].clone(), t[1].clone(), t[2].clone()),
                |t| norm::gated_residual_reference(t[0].clone(), t[1].clone(), t[2].clone()),
                1e-5,
            );
        }
    }

    #[test]
    fn the_rope_kernel_matches_the_plain_ops() {
        let device = Device::flex().autodiff();
        let (b, l, h, d) = (2, 9, 3, 8);
        let angles = rand([l, d / 2], &device);
        let (cos, sin) = (angles.clone().cos(), angles.sin());
        // A strided x (heads swapped back from attention's layout), made inside the op.
        let x = rand([b, h, l, d], &device);
        let view = |t: &Tensor<4>| t.clone().swap_dims(1, 2);
        check("rope", vec![x], |t| crate::rope::rope(view(&t[0]), cos.clone(), sin.clone()), |t| crate::rope::rope_reference(view(&t[0]), cos.clone(), sin.clone()), 1e-5);
    }

    #[test]
    fn the_attention_backward_kernel_matches_the_plain_ops() {
        let device = Device::flex().autodiff();
        let (b, h, l, d) = (2, 3, 14, 8);
        for mask in [AttentionMask::None, AttentionMask::Causal, AttentionMask::Window(3), AttentionMask::block_causal(&[1, 4, 9])] {
            // q as a strided view (heads split off a projection, made inside the op so the
            // backward reads it), k and v contiguous.
            let inputs = vec![rand([b, l, h, d], &device), rand([b, h, l, d], &device), rand([b, h, l, d], &device)];
            let q = |t: &[Tensor<4>]| t[0].clone().swap_dims(1, 2);
            check(
                &format!("attention {mask:?}"),
                inputs,
                |t| attention(q(t), t[1].clone(), t[2].clone(), &mask, 0.35),
                |t| crate::attention_reference(q(t), t[1].clone(), t[2].clone(), &mask, 0.35),
                1e-4,
            );
        }
    }

    #[test]
    fn the_backward_sums_do_not_depend_on_scheduling() {
        // Large enough for many tasks; runs on one thread and on three must agree to the bit
        // (exact resume needs it).
        let device = Device::flex().autodiff();
        let (b, l, c) = (8, 300, 64);
        let x = rand([b, l, c], &device);
        let (scale, shift) = (rand([b, 1, c], &device), rand([b, 1, c], &device));
        let run = || {
            let (x, scale) = (x.clone().detach().require_grad(), scale.clone().detach().require_grad());
            let grads = (norm::layer_norm_modulate(x.clone(), None, scale.clone(), shift.clone(), 1e-6) * x.clone()).sum().backward();
            (x.grad(&grads).unwrap().to_data(), scale.grad(&grads).unwrap().to_data())
        };
        let on = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a thread pool").install(run);
        let (first, second) = (on(1), on(3));
        assert_eq!(first.0, second.0);
        assert_eq!(first.1, second.1);
    }
}
