//! CPU kernels for burn's CPU backend (flex): what sampling spends its time on there, written as
//! real kernels (issue 18). burn's CPU ops run one element-wise op at a time on one core with libm's
//! scalar `expf`; these fuse a few of them, use a vectorised [`exp::exp`], and spread the work over
//! the cores (rayon, natively; one thread in the browser).
//!
//! The public wrappers ([`crate::attention::attention`], [`crate::activation`], [`crate::norm`],
//! [`crate::linear`]) call them for f32 tensors on the CPU unless [`crate::set_reference_ops`] is
//! on. Under autodiff (training) each records a fused backward kernel ([`grads`], [`autodiff`]).

pub(crate) mod attention;
mod autodiff;
pub mod exp;
mod grads;

use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{TensorMetadata, backend_extension};
use burn::tensor::{Bytes, DType, Shape, TensorData};

use grads::CondRows;

/// The CPU kernels, for burn's CPU backend only (the wrappers never call them on another
/// backend). Under autodiff ([`autodiff`]) the forward kernels record the `_backward` kernels as
/// their backward pass; those are not differentiable themselves (no second derivatives).
#[backend_extension(Flex, Autodiff)]
pub trait CpuOps: burn::backend::Backend {
    /// [`crate::KernelOps::fused_attention`]'s contract on the CPU.
    #[allow(clippy::too_many_arguments)]
    fn cpu_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        mask: u32,
        q_offset: u32,
        window: u32,
        block_end: Vec<u32>,
        scale: f32,
    ) -> FloatTensor<Self>;
    /// `x · σ(2√(2/π)(x + 0.044715x³))`: GELU's tanh approximation.
    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `½x(1 + erf(x/√2))`: the exact GELU.
    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `x · σ(x)`.
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`crate::norm::layer_norm_modulate`]'s contract: `x` `[B, L, C]`, `gamma`/`beta` `[C]`,
    /// `scale`/`shift` `[1 or B, 1 or L, C]`.
    fn layer_norm_modulate(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self>;
    /// `x / max(‖x‖₂, eps)` over the last axis.
    fn l2_normalize(x: FloatTensor<Self>, eps: f32) -> FloatTensor<Self>;
    /// [`crate::norm::gated_residual`]'s contract: `x`, `y` `[B, L, C]`, `gate` `[1 or B, 1 or L, C]`.
    fn gated_residual(x: FloatTensor<Self>, y: FloatTensor<Self>, gate: FloatTensor<Self>) -> FloatTensor<Self>;
    /// [`crate::linear::linear`]'s contract: `x` `[.., K]`, `weight` `[K, N]`, `bias` `[N]`.
    fn cpu_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Rotary position embedding of interleaved pairs: `x` `[B, L, H, D]`, `cos`/`sin` `[L, D/2]`
    /// → `(x₂ₖ cos − x₂ₖ₊₁ sin, x₂ₖ₊₁ cos + x₂ₖ sin)` for each pair `k` at position `l`. Its
    /// backward pass is the inverse rotation, the same kernel with `−sin`; `cos` and `sin` are
    /// constants (no gradient reaches them).
    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `logits` `[R, V]`, `targets` `[R]` → `[R]`, each row's `−log softmax(logits)[target]`.
    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;

    // The backward passes: `grad` is the gradient of the forward kernel's output.

    /// dlogits of [`CpuOps::cross_entropy_rows`].
    fn cross_entropy_rows_backward(logits: FloatTensor<Self>, targets: IntTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let _ = (logits, targets, grad);
        unreachable!("{SECOND_ORDER}")
    }

    /// (dq, dk, dv) of [`CpuOps::cpu_attention`].
    #[allow(clippy::too_many_arguments)]
    fn cpu_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        mask: u32,
        q_offset: u32,
        window: u32,
        block_end: Vec<u32>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (q, k, v, grad, mask, q_offset, window, block_end, scale);
        unreachable!("{SECOND_ORDER}")
    }
    /// dx of [`CpuOps::gelu_tanh`].
    fn gelu_tanh_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let _ = (x, grad);
        unreachable!("{SECOND_ORDER}")
    }
    /// dx of [`CpuOps::gelu_erf`].
    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let _ = (x, grad);
        unreachable!("{SECOND_ORDER}")
    }
    /// dx of [`CpuOps::silu`].
    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let _ = (x, grad);
        unreachable!("{SECOND_ORDER}")
    }
    /// (dx, dgamma, dbeta, dscale, dshift) of [`CpuOps::layer_norm_modulate`].
    #[allow(clippy::type_complexity)]
    fn layer_norm_modulate_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (x, gamma, beta, scale, grad, eps);
        unreachable!("{SECOND_ORDER}")
    }
    /// dx of [`CpuOps::l2_normalize`].
    fn l2_normalize_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let _ = (x, grad, eps);
        unreachable!("{SECOND_ORDER}")
    }
    /// (dy, dgate) of [`CpuOps::gated_residual`] (dx is `grad` itself).
    fn gated_residual_backward(y: FloatTensor<Self>, gate: FloatTensor<Self>, grad: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (y, gate, grad);
        unreachable!("{SECOND_ORDER}")
    }
    /// (dx, dweight, dbias) of [`CpuOps::cpu_linear`]; dx only when `need_dx` (an input that
    /// is data, not a tracked activation, skips its product).
    #[allow(clippy::type_complexity)]
    fn cpu_linear_backward(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, need_dx: bool) -> (Option<FloatTensor<Self>>, FloatTensor<Self>, FloatTensor<Self>) {
        let _ = (x, weight, grad, need_dx);
        unreachable!("{SECOND_ORDER}")
    }
}

/// Why a backward kernel has no autodiff implementation.
const SECOND_ORDER: &str = "the CPU kernels' backward passes are not differentiable (no second derivatives)";

impl CpuOps for Flex {
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
        let [b, h, lq, d] = q.shape().dims();
        let lk = k.shape()[2];
        let visible = attention::Visible { mask, q_offset: q_offset as usize, window: window as usize, block_end: &block_end };
        let (q, k, v) = (unit_inner_stride(q), unit_inner_stride(k), unit_inner_stride(v));
        heads(attention::attention(view(&q), view(&k), view(&v), [b, h, lq, lk, d], visible, scale), [b, h, lq, d])
    }

    fn cpu_attention_backward(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        mask: u32,
        q_offset: u32,
        window: u32,
        block_end: Vec<u32>,
        scale: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let [b, h, lq, d] = q.shape().dims();
        let lk = k.shape()[2];
        let visible = attention::Visible { mask, q_offset: q_offset as usize, window: window as usize, block_end: &block_end };
        let [q, k, v, grad] = [q, k, v, grad].map(unit_inner_stride);
        let [dq, dk, dv] = attention::attention_backward(view(&q), view(&k), view(&v), view(&grad), [b, h, lq, lk, d], visible, scale);
        (heads(dq, [b, h, lq, d]), heads(dk, [b, h, lk, d]), heads(dv, [b, h, lk, d]))
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // 2√(2/π), so σ(K·u) = (1 + tanh(√(2/π)·u)) / 2.
        const K: f32 = 1.595_769_1;
        map(x, |x| x / (1.0 + exp::exp(-K * (x + 0.044_715 * x * x * x))))
    }

    fn gelu_erf(x: FloatTensor<Self>) -> FloatTensor<Self> {
        map(x, |x| 0.5 * x * (1.0 + exp::erf(x * std::f32::consts::FRAC_1_SQRT_2)))
    }

    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        map(x, |x| x / (1.0 + exp::exp(-x)))
    }

    fn rope(x: FloatTensor<Self>, cos: FloatTensor<Self>, sin: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = x.shape();
        let [_, l, h, d] = shape.dims();
        assert!(cos.shape().dims::<2>() == [l, d / 2] && sin.shape() == cos.shape() && d % 2 == 0, "rope: x {shape:?}, cos {:?}", cos.shape());
        let (src, cos, sin) = (contiguous_f32(&x), contiguous_f32(&cos), contiguous_f32(&sin));
        let rows = src.len() / d.max(1);
        let out = map_rows(&src, rows, d, |r, x, o| {
            // Row r is head r % h of position (r / h) % l.
            let p = (r / h) % l;
            let (c, s) = (&cos[p * d / 2..(p + 1) * d / 2], &sin[p * d / 2..(p + 1) * d / 2]);
            for (((o, x), c), s) in o.chunks_exact_mut(2).zip(x.chunks_exact(2)).zip(c).zip(s) {
                o[0] = x[0] * c - x[1] * s;
                o[1] = x[1] * c + x[0] * s;
            }
        });
        from_f32(out, shape)
    }

    fn cross_entropy_rows(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let [rows, v] = logits.shape().dims();
        let (x, targets) = (contiguous_f32(&logits), class_indices(targets, rows, v));
        let mut out = vec![0.0f32; rows];
        let per_task = (ELEMENTWISE_CHUNK / v.max(1)).max(1);
        map_chunks(&mut out, per_task, |t, chunk| {
            for (i, o) in chunk.iter_mut().enumerate() {
                let r = t * per_task + i;
                let row = &x[r * v..(r + 1) * v];
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let sum: f32 = row.iter().map(|&x| exp::exp(x - max)).sum();
                *o = max + sum.ln() - row[targets[r]];
            }
        });
        from_f32(out, Shape::from([rows]))
    }

    fn cross_entropy_rows_backward(logits: FloatTensor<Self>, targets: IntTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = logits.shape();
        let [rows, v] = shape.dims();
        let (x, targets, grad) = (contiguous_f32(&logits), class_indices(targets, rows, v), contiguous_f32(&grad));
        // d/dx of −log softmax(x)[t] = softmax(x) − one-hot(t), times the row's gradient.
        let out = map_rows(&x, rows, v, |r, x, o| {
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            o.iter_mut().zip(x).for_each(|(o, &x)| *o = exp::exp(x - max));
            let scale = grad[r] / sum(o);
            o.iter_mut().for_each(|o| *o *= scale);
            o[targets[r]] -= grad[r];
        });
        from_f32(out, shape)
    }

    fn gelu_tanh_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        const K: f32 = 1.595_769_1;
        const C: f32 = 0.044_715;
        map2(x, grad, |x, g| {
            let s = 1.0 / (1.0 + exp::exp(-K * (x + C * x * x * x)));
            g * (s + x * s * (1.0 - s) * K * (1.0 + 3.0 * C * x * x))
        })
    }

    fn gelu_erf_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        // 1/√(2π): the standard normal density's factor.
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        map2(x, grad, |x, g| {
            let cdf = 0.5 * (1.0 + exp::erf(x * std::f32::consts::FRAC_1_SQRT_2));
            g * (cdf + x * INV_SQRT_2PI * exp::exp(-0.5 * x * x))
        })
    }

    fn silu_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        map2(x, grad, |x, g| {
            let s = 1.0 / (1.0 + exp::exp(-x));
            g * s * (1.0 + x * (1.0 - s))
        })
    }

    fn layer_norm_modulate_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        eps: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = x.shape();
        let [b, l, c] = shape.dims();
        let cond_shape = scale.shape();
        let cond = CondRows::new(&cond_shape, l);
        let (x, grad, gamma, beta, scale) = (contiguous_f32(&x), contiguous_f32(&grad), contiguous_f32(&gamma), contiguous_f32(&beta), contiguous_f32(&scale));
        let grads::RowGrads { dx, cond: conds, params } = grads::layer_norm_modulate(&x, &grad, &gamma, &beta, &scale, [b * l, c], cond, eps);
        let [dscale, dshift]: [Vec<f32>; 2] = conds.try_into().expect("two condition gradients");
        let [dgamma, dbeta]: [Vec<f32>; 2] = params.try_into().expect("two parameter gradients");
        (
            from_f32(dx, shape),
            from_f32(dgamma, Shape::from([c])),
            from_f32(dbeta, Shape::from([c])),
            from_f32(dscale, cond_shape.clone()),
            from_f32(dshift, cond_shape),
        )
    }

    fn l2_normalize_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let shape = x.shape();
        let c = shape[shape.num_dims() - 1];
        let (src, grad) = (contiguous_f32(&x), contiguous_f32(&grad));
        let rows = if c == 0 { 0 } else { src.len() / c };
        // y = x / n with n = max(‖x‖, eps): dx = (g − y (g·y)) / n, or g / eps where eps binds.
        let out = map_rows(&src, rows, c, |r, x, o| {
            let g = &grad[r * c..(r + 1) * c];
            let norm = sum_squares(x).sqrt();
            // A NaN norm takes this branch too, so NaN reaches the gradient.
            if !(norm <= eps) {
                let inv = 1.0 / norm;
                let gy = dot(g, x) * inv;
                o.iter_mut().zip(g).zip(x).for_each(|((o, g), x)| *o = (g - x * inv * gy) * inv);
            } else {
                o.iter_mut().zip(g).for_each(|(o, g)| *o = g / eps);
            }
        });
        from_f32(out, shape)
    }

    fn gated_residual_backward(y: FloatTensor<Self>, gate: FloatTensor<Self>, grad: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let shape = y.shape();
        let [b, l, c] = shape.dims();
        let gate_shape = gate.shape();
        let cond = CondRows::new(&gate_shape, l);
        let (y, gate, grad) = (contiguous_f32(&y), contiguous_f32(&gate), contiguous_f32(&grad));
        let grads::RowGrads { dx: dy, mut cond, .. } = grads::gated_residual(&y, &grad, &gate, [b * l, c], cond);
        (from_f32(dy, shape), from_f32(cond.remove(0), gate_shape))
    }

    fn cpu_linear_backward(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, need_dx: bool) -> (Option<FloatTensor<Self>>, FloatTensor<Self>, FloatTensor<Self>) {
        let shape = x.shape();
        let [k, n] = weight.shape().dims();
        let m = shape.num_elements() / k.max(1);
        let (x, weight, grad) = (contiguous_f32(&x), contiguous_f32(&weight), contiguous_f32(&grad));
        let parallelism = if m * n * k >= PARALLEL_PRODUCT { gemm_parallelism() } else { gemm::Parallelism::None };
        let (mut dx, mut dw) = (vec![0.0f32; if need_dx { m * k } else { 0 }], vec![0.0f32; k * n]);
        if m * n * k > 0 {
            let (ki, ni) = (k as isize, n as isize);
            // SAFETY: row-major contiguous buffers of the stated sizes: x m x k, weight k x n,
            // grad m x n, dx m x k, dw k x n; the transposes are the same buffers read with their
            // strides swapped.
            unsafe {
                // dx = grad · weightᵀ
                if need_dx {
                    gemm::gemm(m, k, n, dx.as_mut_ptr(), 1, ki, false, grad.as_ptr(), 1, ni, weight.as_ptr(), ni, 1, 0.0, 1.0, false, false, false, parallelism);
                }
                // dweight = xᵀ · grad
                gemm::gemm(k, n, m, dw.as_mut_ptr(), 1, ni, false, x.as_ptr(), ki, 1, grad.as_ptr(), 1, ni, 0.0, 1.0, false, false, false, parallelism);
            }
        }
        // dbias: column sums, each column block summed down the rows in order by one task.
        let mut db = vec![0.0f32; n];
        let block = (ELEMENTWISE_CHUNK / m.max(1)).clamp(LANES, n.max(LANES));
        map_chunks(&mut db, block, |t, out| {
            let first = t * block;
            let width = out.len();
            for row in grad.chunks_exact(n) {
                out.iter_mut().zip(&row[first..first + width]).for_each(|(o, g)| *o += g);
            }
        });
        (need_dx.then(|| from_f32(dx, shape)), from_f32(dw, Shape::from([k, n])), from_f32(db, Shape::from([n])))
    }

    fn layer_norm_modulate(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        eps: f32,
    ) -> FloatTensor<Self> {
        let shape = x.shape();
        let [b, l, c] = shape.dims();
        let cond_shape = scale.shape();
        assert_eq!(cond_shape, shift.shape(), "scale and shift must have one shape");
        check_cond(&cond_shape, [b, l, c], "scale");
        let cond = CondRows::new(&cond_shape, l);
        assert!(gamma.shape().dims::<1>() == [c] && beta.shape().dims::<1>() == [c], "gamma and beta must be [{c}]");
        let (src, gamma, beta) = (contiguous_f32(&x), contiguous_f32(&gamma), contiguous_f32(&beta));
        let (scale, shift) = (contiguous_f32(&scale), contiguous_f32(&shift));
        let out = map_rows(&src, b * l, c, |r, x, o| {
            let mean = sum(x) / c as f32;
            o.iter_mut().zip(x).for_each(|(o, v)| *o = v - mean);
            let rstd = 1.0 / (sum_squares(o) / c as f32 + eps).sqrt();
            let k = cond.row(r) * c;
            let (s, t) = (&scale[k..k + c], &shift[k..k + c]);
            for ((((o, g), be), s), t) in o.iter_mut().zip(gamma.iter()).zip(beta.iter()).zip(s).zip(t) {
                *o = (*o * rstd * g + be) * (1.0 + s) + t;
            }
        });
        from_f32(out, shape)
    }

    fn cpu_linear(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = x.shape();
        let k = shape[shape.num_dims() - 1];
        let [wk, n] = weight.shape().dims();
        assert!(wk == k && bias.shape().dims::<1>() == [n], "linear: x {shape:?}, weight [{wk}, {n}], bias {:?}", bias.shape());
        let m = shape.num_elements() / k.max(1);
        let (x, weight, bias) = (contiguous_f32(&x), contiguous_f32(&weight), contiguous_f32(&bias));
        // The bias written once per row, then the product added to it: no zero-filled buffer and
        // no separate bias pass (burn's linear has both).
        let mut out = Vec::with_capacity(m * n);
        for _ in 0..m {
            out.extend_from_slice(&bias);
        }
        let parallelism = if m * n * k >= PARALLEL_PRODUCT { gemm_parallelism() } else { gemm::Parallelism::None };
        if m * n * k > 0 {
            // SAFETY: `out` is m x n, `x` m x k and `weight` k x n, all row-major and contiguous.
            unsafe {
                gemm::gemm(m, n, k, out.as_mut_ptr(), 1, n as isize, true, x.as_ptr(), 1, k as isize, weight.as_ptr(), 1, n as isize, 1.0, 1.0, false, false, false, parallelism);
            }
        }
        let mut dims: Vec<usize> = shape.iter().copied().collect();
        *dims.last_mut().expect("x has a last axis") = n;
        from_f32(out, Shape::from(dims))
    }

    fn gated_residual(x: FloatTensor<Self>, y: FloatTensor<Self>, gate: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = x.shape();
        let [b, l, c] = shape.dims();
        assert_eq!(y.shape(), shape, "x and y must have one shape");
        let gate_shape = gate.shape();
        check_cond(&gate_shape, [b, l, c], "gate");
        let cond = CondRows::new(&gate_shape, l);
        let (src, y, gate) = (contiguous_f32(&x), contiguous_f32(&y), contiguous_f32(&gate));
        let out = map_rows(&src, b * l, c, |r, x, o| {
            let k = cond.row(r) * c;
            let (y, g) = (&y[r * c..(r + 1) * c], &gate[k..k + c]);
            for (((o, x), y), g) in o.iter_mut().zip(x).zip(y).zip(g) {
                *o = x + y * g;
            }
        });
        from_f32(out, shape)
    }

    fn l2_normalize(x: FloatTensor<Self>, eps: f32) -> FloatTensor<Self> {
        let shape = x.shape();
        let c = shape[shape.num_dims() - 1];
        let src = contiguous_f32(&x);
        let rows = if c == 0 { 0 } else { src.len() / c };
        let out = map_rows(&src, rows, c, |_, x, o| {
            // NaN stays NaN, as in the plain ops (`f32::max` would pick eps).
            let norm = sum_squares(x).sqrt();
            let inv = 1.0 / if norm.is_nan() { norm } else { norm.max(eps) };
            o.iter_mut().zip(x).for_each(|(o, v)| *o = v * inv);
        });
        from_f32(out, shape)
    }
}

/// Panics unless `shape` is `[1 or B, 1 or L, C]` for a `[B, L, C]` input.
fn check_cond(shape: &Shape, [b, l, c]: [usize; 3], what: &str) {
    let dims = shape.dims::<3>();
    assert!(
        (dims[0] == 1 || dims[0] == b) && (dims[1] == 1 || dims[1] == l) && dims[2] == c,
        "{what} {dims:?} does not broadcast to [{b}, {l}, {c}]"
    );
}

/// A new `[rows, c]` buffer where `f(r, row r of src, row r of out)` writes each row, rows spread
/// over the cores in tasks of about [`ELEMENTWISE_CHUNK`] elements.
fn map_rows(src: &[f32], rows: usize, c: usize, f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send) -> Vec<f32> {
    let mut out = vec![0.0f32; rows * c];
    if out.is_empty() {
        return out;
    }
    let per_task = (ELEMENTWISE_CHUNK / c).max(1);
    for_each_chunk(&mut out, per_task * c, || (), |n, chunk, _| {
        for (i, o) in chunk.chunks_exact_mut(c).enumerate() {
            let r = n * per_task + i;
            f(r, &src[r * c..(r + 1) * c], o);
        }
    });
    out
}

/// Whether `tensors` take the CPU kernels: all f32 on burn's CPU backend (with or without
/// autodiff) with the kernels on (the one routing rule of the wrappers).
pub(crate) fn cpu_kernel<const D: usize>(tensors: &[&burn::tensor::Tensor<D>]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32) && crate::ops::cpu_kernels_enabled(&tensors[0].device())
}

/// Multiply-adds from which a product is spread over the cores (burn's CPU matmul uses the same).
const PARALLEL_PRODUCT: usize = 192 * 192 * 192;

/// All the cores natively; one thread in the browser.
fn gemm_parallelism() -> gemm::Parallelism {
    #[cfg(not(target_arch = "wasm32"))]
    return gemm::Parallelism::Rayon(0);
    #[cfg(target_arch = "wasm32")]
    gemm::Parallelism::None
}

/// Elements per parallel task of an element-wise kernel: large enough that a task outweighs its
/// scheduling.
const ELEMENTWISE_CHUNK: usize = 1 << 15;

/// A new f32 tensor of `x`'s shape with `f` applied to every element.
fn map(x: FlexTensor, f: impl Fn(f32) -> f32 + Sync) -> FlexTensor {
    let shape = x.shape();
    let src = contiguous_f32(&x);
    let mut out = vec![0.0f32; src.len()];
    for_each_chunk(&mut out, ELEMENTWISE_CHUNK, || (), |n, chunk, _| {
        let start = n * ELEMENTWISE_CHUNK;
        let len = chunk.len();
        for (o, &v) in chunk.iter_mut().zip(&src[start..start + len]) {
            *o = f(v);
        }
    });
    from_f32(out, shape)
}

/// The class index of each of `rows` rows, checked against `classes`.
fn class_indices(targets: FlexTensor, rows: usize, classes: usize) -> Vec<usize> {
    let targets = if targets.layout().is_contiguous() { targets } else { targets.to_contiguous() };
    let values: Vec<i64> = match targets.dtype() {
        DType::I64 => targets.as_slice::<i64>().map(|s| s.to_vec()),
        DType::I32 => targets.as_slice::<i32>().map(|s| s.iter().map(|&t| t as i64).collect()),
        _ => None,
    }
    .unwrap_or_else(|| panic!("class indices must be i64 or i32, got {:?}", targets.dtype()));
    assert_eq!(values.len(), rows, "one target per row");
    values
        .into_iter()
        .map(|t| usize::try_from(t).ok().filter(|&t| t < classes).unwrap_or_else(|| panic!("target class {t} is outside 0..{classes}")))
        .collect()
}

/// `values` written as `[B, L, H, D]` and seen as `[B, H, L, D]` (`dims`): the layout the
/// attention kernels write, which the projection after attention reads without a copy.
fn heads(values: Vec<f32>, [b, h, l, d]: [usize; 4]) -> FlexTensor {
    let layout = Layout::new(Shape::from([b, h, l, d]), [l * h * d, d, h * d, 1].map(|s| s as isize).to_vec(), 0);
    FlexTensor::new(Bytes::from_elems(values), layout, DType::F32)
}

/// A new f32 tensor of `x`'s shape holding `f(x, y)` element by element (`y` of the same shape).
fn map2(x: FlexTensor, y: FlexTensor, f: impl Fn(f32, f32) -> f32 + Sync) -> FlexTensor {
    let shape = x.shape();
    assert_eq!(shape, y.shape(), "element-wise kernel on two shapes");
    let (a, b) = (contiguous_f32(&x), contiguous_f32(&y));
    let mut out = vec![0.0f32; a.len()];
    for_each_chunk(&mut out, ELEMENTWISE_CHUNK, || (), |n, chunk, _| {
        let start = n * ELEMENTWISE_CHUNK;
        let len = chunk.len();
        for ((o, &x), &y) in chunk.iter_mut().zip(&a[start..start + len]).zip(&b[start..start + len]) {
            *o = f(x, y);
        }
    });
    from_f32(out, shape)
}

/// `f(index, chunk)` on consecutive `size`-element chunks of `out` (the last may be shorter), in
/// parallel where threads exist; the results in chunk order.
pub(crate) fn map_chunks<T: Send>(out: &mut [f32], size: usize, f: impl Fn(usize, &mut [f32]) -> T + Sync + Send) -> Vec<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if out.len() > size {
            return out.par_chunks_mut(size).enumerate().map(|(n, chunk)| vectorised(|| f(n, chunk))).collect();
        }
    }
    out.chunks_mut(size).enumerate().map(|(n, chunk)| vectorised(|| f(n, chunk))).collect()
}

/// `x` itself when its strides are non-negative and its last is 1 (a view the kernels can read
/// in place), else a contiguous copy.
fn unit_inner_stride(x: FlexTensor) -> FlexTensor {
    let strides = x.layout().strides();
    if strides.last() == Some(&1) && strides.iter().all(|&s| s >= 0) { x } else { x.to_contiguous() }
}

/// The attention kernel's view of a 4-D tensor from [`unit_inner_stride`].
fn view(x: &FlexTensor) -> attention::View<'_> {
    let s = x.layout().strides();
    attention::View { data: x.storage(), offset: x.layout().start_offset(), strides: [s[0], s[1], s[2]].map(|s| s as usize) }
}

/// `x`'s elements in row-major order (copied only when `x` is a strided view).
pub(crate) fn contiguous_f32(x: &FlexTensor) -> Contiguous<'_> {
    match x.as_slice::<f32>() {
        Some(s) => Contiguous::View(s),
        None => Contiguous::Copy(x.to_contiguous()),
    }
}

/// [`contiguous_f32`]'s elements: the tensor's own storage, or its one contiguous copy (read in
/// place, not copied a second time into a `Vec`).
pub(crate) enum Contiguous<'a> {
    View(&'a [f32]),
    Copy(FlexTensor),
}

impl std::ops::Deref for Contiguous<'_> {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Self::View(s) => s,
            Self::Copy(t) => t.as_slice::<f32>().expect("a contiguous f32 tensor"),
        }
    }
}

pub(crate) fn from_f32(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Runs `f` on a thread of the pool the CPU work runs on (rayon's, which burn's CPU backend, `gemm`
/// and these kernels share) and returns its result. A parallel op called from outside the pool
/// hands its work to the pool and sleeps until it is done, a few thread wake-ups (futex calls)
/// per op: 10-18% of a training step on a 2-core VM (BENCHMARKS.md). From inside, its tasks go
/// where the pool's threads already look. `f` keeps a pool thread for as long as it runs, so this
/// is for one long job at a time (a CLI command); jobs that run side by side (the app's) stay off
/// the pool, or one would wait for the other to free a thread. Inside `f`, never block on a task
/// handed to the pool (`rayon::spawn` and a wait): on a one-thread pool nothing would run it.
/// Native only: in the browser `f` runs in place.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::scope(|_| f());
    #[cfg(target_arch = "wasm32")]
    f()
}

/// How many parts a batch of `rows` images on the CPU is split into, drawn side by side (one per
/// thread; 1 in the browser, with the reference ops, or off the CPU).
pub fn batch_parts(device: &burn::tensor::Device, rows: usize) -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    if crate::ops::cpu_kernels_enabled(device) {
        return rayon::current_num_threads().min(rows).max(1);
    }
    let _ = (device, rows);
    1
}

/// `f` on every item, side by side on the pool's threads natively, one after the other in the
/// browser; the results in the items' order.
pub fn side_by_side<T: Send, R: Send>(items: &mut [T], f: impl Fn(&mut T) -> R + Sync + Send) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.par_iter_mut().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    items.iter_mut().map(f).collect()
}

/// Runs `f(index, scratch)` for every index below `count`, in parallel where threads exist;
/// `scratch` is made once per worker by `init`.
pub(crate) fn for_each_task<S: Send>(count: usize, init: impl Fn() -> S + Sync + Send, f: impl Fn(usize, &mut S) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if count > 1 {
            (0..count).into_par_iter().for_each_init(init, |scratch, n| vectorised(|| f(n, scratch)));
            return;
        }
    }
    let mut scratch = init();
    (0..count).for_each(|n| vectorised(|| f(n, &mut scratch)));
}

/// Runs `f` compiled for AVX2 where the CPU has it: the kernels' loops are inlined into it and
/// vectorise 8 lanes wide, where the portable x86-64 build (SSE2) has 4; `exp`'s bit tricks need
/// AVX2's integer vectors. Rust never fuses `a * b + c` on its own, so the results are the same
/// bits either way. Elsewhere `f` runs as built (the browser build has simd128).
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { with_avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Lanes of the reductions: independent accumulators the compiler keeps in SIMD registers (one
/// running total is a chain it may not reorder).
const LANES: usize = 8;

/// `Σ x`, in [`LANES`] interleaved partial sums.
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `a · b`, in [`LANES`] interleaved partial sums.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for ((a, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *a += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ x²`, as [`sum`].
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Runs `f(index, chunk, scratch)` on consecutive `size`-element chunks of `out` (the last may be
/// shorter), in parallel where threads exist; `scratch` is made once per worker by `init`.
pub(crate) fn for_each_chunk<S: Send>(
    out: &mut [f32],
    size: usize,
    init: impl Fn() -> S + Sync + Send,
    f: impl Fn(usize, &mut [f32], &mut S) + Sync + Send,
) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if out.len() > size {
            out.par_chunks_mut(size).enumerate().for_each_init(init, |scratch, (n, chunk)| vectorised(|| f(n, chunk, scratch)));
            return;
        }
    }
    let mut scratch = init();
    for (n, chunk) in out.chunks_mut(size).enumerate() {
        vectorised(|| f(n, chunk, &mut scratch));
    }
}
