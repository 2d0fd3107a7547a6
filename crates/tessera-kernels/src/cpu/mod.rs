//! CPU kernels for burn's CPU backend (flex): what sampling spends its time on there, written as
//! real kernels (issue 18). burn's CPU ops run one element-wise op at a time on one core with libm's
//! scalar `expf`; these fuse a few of them, use a vectorised [`exp::exp`], and spread the work over
//! the cores (rayon, natively; one thread in the browser).
//!
//! They serve inference only: the public wrappers ([`crate::attention::attention`],
//! [`crate::activation`]) call them for tensors on the CPU outside autodiff and unless
//! [`crate::set_reference_ops`] is on; training keeps burn's differentiable ops.

pub(crate) mod attention;
pub mod exp;

use burn::backend::Flex;
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{TensorMetadata, backend_extension};
use burn::tensor::{Bytes, DType, Shape, TensorData};

/// The element-wise CPU kernels, for burn's CPU backend only (the wrappers never call them on
/// another backend).
#[backend_extension(Flex)]
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
}

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
        let out = attention::attention(view(&q), view(&k), view(&v), [b, h, lq, lk, d], visible, scale);
        // Written as [B, Lq, H, D]; seen as [B, H, Lq, D].
        let layout = Layout::new(Shape::from([b, h, lq, d]), [lq * h * d, d, h * d, 1].map(|s| s as isize).to_vec(), 0);
        FlexTensor::new(Bytes::from_elems(out), layout, DType::F32)
    }

    fn gelu_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // 2√(2/π), so σ(K·u) = (1 + tanh(√(2/π)·u)) / 2.
        const K: f32 = 1.595_769_1;
        map(x, |x| x / (1.0 + exp::exp(-K * (x + 0.044_715 * x * x * x))))
    }

    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        map(x, |x| x / (1.0 + exp::exp(-x)))
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
        assert!(gamma.shape().dims::<1>() == [c] && beta.shape().dims::<1>() == [c], "gamma and beta must be [{c}]");
        let (src, gamma, beta) = (contiguous_f32(&x), contiguous_f32(&gamma), contiguous_f32(&beta));
        let (scale, shift) = (contiguous_f32(&scale), contiguous_f32(&shift));
        let out = map_rows(&src, b * l, c, |r, x, o| {
            let mean = sum(x) / c as f32;
            o.iter_mut().zip(x).for_each(|(o, v)| *o = v - mean);
            let rstd = 1.0 / (sum_squares(o) / c as f32 + eps).sqrt();
            let k = cond_row(&cond_shape, l, r) * c;
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
        let (src, y, gate) = (contiguous_f32(&x), contiguous_f32(&y), contiguous_f32(&gate));
        let out = map_rows(&src, b * l, c, |r, x, o| {
            let k = cond_row(&gate_shape, l, r) * c;
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

/// The row of a `[1 or B, 1 or L, C]` condition (`shape`) that token row `r` of a `[B, L, C]`
/// tensor reads: broadcast where a dim is 1.
fn cond_row(shape: &Shape, l: usize, r: usize) -> usize {
    let [sb, sl, _] = shape.dims();
    (if sb == 1 { 0 } else { r / l }) * sl + if sl == 1 { 0 } else { r % l }
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

/// Whether `tensors` take the CPU kernels: all f32 and untracked, on burn's CPU backend with the
/// kernels on (the one routing rule of [`crate::activation`] and [`crate::norm`]).
pub(crate) fn cpu_kernel<const D: usize>(tensors: &[&burn::tensor::Tensor<D>]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32 && !t.is_autodiff()) && crate::ops::cpu_kernels_enabled(&tensors[0].device())
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
pub(crate) fn contiguous_f32(x: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match x.as_slice::<f32>() {
        Some(s) => s.into(),
        None => x.to_contiguous().as_slice::<f32>().expect("a contiguous f32 tensor").to_vec().into(),
    }
}

pub(crate) fn from_f32(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Runs `f(index, scratch)` for every index below `count`, in parallel where threads exist;
/// `scratch` is made once per worker by `init`.
pub(crate) fn for_each_task<S: Send>(count: usize, init: impl Fn() -> S + Sync + Send, f: impl Fn(usize, &mut S) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        if count > 1 {
            (0..count).into_par_iter().for_each_init(init, |scratch, n| f(n, scratch));
            return;
        }
    }
    let mut scratch = init();
    (0..count).for_each(|n| f(n, &mut scratch));
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
            out.par_chunks_mut(size).enumerate().for_each_init(init, |scratch, (n, chunk)| f(n, chunk, scratch));
            return;
        }
    }
    let mut scratch = init();
    for (n, chunk) in out.chunks_mut(size).enumerate() {
        f(n, chunk, &mut scratch);
    }
}
