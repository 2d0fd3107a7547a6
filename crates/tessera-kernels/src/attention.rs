//! Fused scaled-dot-product attention (`shaders/attention.wgsl`) and its plain-burn twin.
//!
//! One kernel family covers every mask the generators need: none (also cross-attention, where the
//! keys are a separate sequence), causal, windowed causal, and VAR's block-causal mask. KV-cache
//! decoding needs no extra argument: when there are fewer queries than keys, the queries are the
//! *last* `Lq` positions of the key sequence, so new queries attend to the whole cache.
//!
//! Per-head q/k normalisation and learned temperatures stay with the caller (they are cheap
//! element-wise ops); fold any per-head factor into `q` and pass the global factor as `scale`.
//!
//! Speed: on software adapters (llvmpipe, SwiftShader) every memory read inside a loop runs as a
//! loop over the SIMD lanes, so the kernel is built around reads, not arithmetic: each invocation
//! takes several queries and every key and value row it reads serves all of them. On lavapipe
//! (2 cores) that took it from 0.66-5.7x of the plain ops (one query per invocation, tiles in
//! workgroup memory) to 2.4-10x dense and 11-44x windowed (`tessera bench kernels`, BENCHMARKS.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::Dispatch;
use burn::backend::wgpu::{CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;
use cubecl::{CubeCount, CubeDim};

use crate::cpu::CpuOps;
use crate::ops::{KernelOps, cpu_kernels_enabled, kernels_enabled};

/// Largest head dimension the kernel takes (its private accumulators are sized by it); larger heads
/// run on the plain ops.
pub const MAX_HEAD_DIM: usize = 128;
/// Queries per invocation × head dim: the floats of q (and as many of accumulators) each
/// invocation holds. More queries share each key and value read; fewer keep registers free. On
/// software adapters loads cost far more than registers (see the shader), so they take 8 queries
/// of head dim 64; GPUs keep a query row or two in registers (that setting is tested, not yet
/// timed on a GPU).
const QPI_FLOATS_SOFTWARE: u32 = 512;
const QPI_FLOATS_GPU: u32 = 64;
/// Most queries one invocation takes.
const MAX_QPI: u32 = 8;
/// Invocations per workgroup.
const WG: u32 = 16;

static SOFTWARE_ADAPTER: AtomicBool = AtomicBool::new(false);

/// Tunes the kernel for a software adapter or a GPU. Registering the device sets it from the
/// adapter; tests flip it to check both shapes of the kernel on one adapter.
pub fn set_software_tuning(software: bool) {
    SOFTWARE_ADAPTER.store(software, Ordering::Relaxed);
}

/// Which keys each query may see. Positions are positions in the key sequence; the `Lq` queries
/// are its last `Lq` positions (`Lq = Lk` without a cache).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// Every key (bidirectional self-attention, cross-attention).
    None,
    /// Keys at positions `≤` the query's.
    Causal,
    /// Keys at positions `p - w ..= p` for a query at `p` (`w + 1` keys; fewer at the start).
    Window(usize),
    /// Keys of the query's own block and of every earlier block (VAR: bidirectional inside a scale,
    /// causal across scales). Build it with [`AttentionMask::block_causal`].
    BlockCausal(BlockEnds),
}

/// For each position, the exclusive end of the block that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockEnds(Arc<[u32]>);

impl BlockEnds {
    /// Number of positions covered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn end(&self, pos: usize) -> usize {
        self.0[pos] as usize
    }
}

impl AttentionMask {
    /// Block-causal mask over consecutive blocks of the given sizes, e.g. VAR's `pn²` per scale
    /// (`[1, 4, 9, 16, …]`). Covers `Σ sizes` positions.
    pub fn block_causal(block_sizes: &[usize]) -> Self {
        let mut ends = Vec::with_capacity(block_sizes.iter().sum());
        let mut end = 0usize;
        for &size in block_sizes {
            end += size;
            ends.extend(std::iter::repeat_n(end as u32, size));
        }
        Self::BlockCausal(BlockEnds(ends.into()))
    }

    /// Whether key `j` is visible from the query at position `pos`.
    pub fn allows(&self, pos: usize, j: usize) -> bool {
        match self {
            Self::None => true,
            Self::Causal => j <= pos,
            Self::Window(w) => j <= pos && j + w >= pos,
            Self::BlockCausal(ends) => j < ends.end(pos),
        }
    }

    fn code(&self) -> u32 {
        match self {
            Self::None => 0,
            Self::Causal => 1,
            Self::Window(_) => 2,
            Self::BlockCausal(_) => 3,
        }
    }

    /// Query position offset and checks that the mask fits the shapes.
    fn q_offset(&self, lq: usize, lk: usize) -> usize {
        match self {
            Self::None => 0,
            _ => {
                assert!(lq <= lk, "a positional mask needs the queries among the keys: Lq {lq} > Lk {lk}");
                if let Self::BlockCausal(ends) = self {
                    assert!(ends.len() >= lk, "block-causal mask covers {} positions, the keys need {lk}", ends.len());
                }
                lk - lq
            }
        }
    }

    /// `[Lq, Lk]` additive mask (0 or −∞) for the plain path; `None` when every key is visible.
    fn bias(&self, lq: usize, lk: usize) -> Option<Vec<f32>> {
        if *self == Self::None {
            return None;
        }
        let offset = self.q_offset(lq, lk);
        let mut bias = vec![0.0f32; lq * lk];
        for i in 0..lq {
            for j in 0..lk {
                if !self.allows(i + offset, j) {
                    bias[i * lk + j] = f32::NEG_INFINITY;
                }
            }
        }
        Some(bias)
    }
}

/// `softmax(q kᵀ · scale + mask) v` for `q` `[B, H, Lq, D]`, `k` and `v` `[B, H, Lk, D]` → `[B, H, Lq, D]`.
///
/// On a wgpu device (unless [`crate::set_reference_ops`] is on) the fused WGSL kernel runs; on
/// burn's CPU backend the CPU kernel ([`attention_cpu`], with its fused backward under autodiff);
/// everywhere else
/// [`attention_reference`]. A query that sees no key at all gets
/// zeros from the kernel (NaN from the plain ops); the masks here never produce one.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f32) -> Tensor<4> {
    let (lq, lk) = check_shapes(&q, &k, &v);
    let [b, h, _, d] = q.dims();
    let f32s = [q.dtype(), k.dtype(), v.dtype()] == [DType::F32; 3];
    let device = q.device();
    if f32s && cpu_kernels_enabled(&device) {
        return attention_cpu(q, k, v, mask, scale);
    }
    // b·h workgroup rows must fit one dispatch axis (65535 by WebGPU's default limits).
    let fits = (1..=MAX_HEAD_DIM).contains(&d) && b * h <= 65535 && f32s;
    if !fits || !kernels_enabled(&device) {
        return attention_reference(q, k, v, mask, scale);
    }
    let (q_offset, window, block_end) = mask_args(mask, lq, lk);
    Tensor::from_dispatch(Dispatch::fused_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        mask.code(),
        q_offset,
        window,
        block_end,
        scale,
    ))
}

/// [`attention`] on burn's CPU backend: the CPU kernel
/// ([`crate::cpu`]), two products and one softmax pass per (batch, head) spread over the cores,
/// instead of the plain path's separate score, mask, softmax and product tensors (issue 18: those
/// and libm's scalar `expf` were a third of var-tiny's sampling time).
pub fn attention_cpu(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f32) -> Tensor<4> {
    let (lq, lk) = check_shapes(&q, &k, &v);
    let (q_offset, window, block_end) = mask_args(mask, lq, lk);
    Tensor::from_dispatch(Dispatch::cpu_attention(q.into_dispatch(), k.into_dispatch(), v.into_dispatch(), mask.code(), q_offset, window, block_end, scale))
}

/// The kernels' mask arguments: the queries' offset among the keys, the window, the block ends.
fn mask_args(mask: &AttentionMask, lq: usize, lk: usize) -> (u32, u32, Vec<u32>) {
    let q_offset = mask.q_offset(lq, lk) as u32;
    match mask {
        AttentionMask::Window(w) => (q_offset, u32::try_from(*w).unwrap_or(u32::MAX), Vec::new()),
        AttentionMask::BlockCausal(ends) => (q_offset, 0, ends.0[..lk].to_vec()),
        _ => (q_offset, 0, Vec::new()),
    }
}

/// [`attention`] with plain burn ops (matmul, additive mask, softmax, matmul): the path with the
/// kernels off (`--reference-ops`), and the reference the kernels are tested against.
pub fn attention_reference(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f32) -> Tensor<4> {
    let (lq, lk) = check_shapes(&q, &k, &v);
    let [b, h, _, _] = q.dims();
    let device = q.device();
    let mut scores = q.matmul(k.swap_dims(2, 3)) * scale;
    if let Some(bias) = mask.bias(lq, lk) {
        let bias = Tensor::<2>::from_data(TensorData::new(bias, [lq, lk]), &device);
        scores = scores + bias.reshape([1, 1, lq, lk]).expand([b, h, lq, lk]);
    }
    softmax(scores, 3).matmul(v)
}

fn check_shapes(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>) -> (usize, usize) {
    let [b, h, lq, d] = q.dims();
    let [kb, kh, lk, kd] = k.dims();
    assert!(kb == b && kh == h && kd == d, "k {:?} does not match q {:?}", k.dims(), q.dims());
    assert_eq!(v.dims(), k.dims(), "v must have k's shape");
    (lq, lk)
}

/// One instantiation of `shaders/attention.wgsl`.
#[derive(Debug)]
struct AttentionKernel {
    d: u32,
    qpi: u32,
    wg: u32,
    mask: u32,
}

impl AttentionKernel {
    fn new(d: u32, lq: u32, mask: u32) -> Self {
        let floats = if SOFTWARE_ADAPTER.load(Ordering::Relaxed) { QPI_FLOATS_SOFTWARE } else { QPI_FLOATS_GPU };
        let qpi = (floats / d).clamp(1, MAX_QPI).min(lq.max(1));
        Self { d, qpi, wg: WG, mask }
    }
}

/// `count` copies of `line` with `{c}` replaced by 0, 1, …: a loop, unrolled.
fn unrolled(count: u32, line: &str) -> String {
    (0..count).map(|c| line.replace("{c}", &c.to_string())).collect::<Vec<_>>().join("\n")
}

impl KernelSource for AttentionKernel {
    fn source(&self) -> SourceTemplate {
        let (d, d4, qpi) = (self.d, self.d.div_ceil(4), self.qpi);
        let per_query = |body: &dyn Fn(u32) -> String| (0..qpi).map(body).collect::<Vec<_>>().join("\n");
        let q_load = per_query(&|r| {
            format!(
                "    m[{r}] = NEG;\n    l[{r}] = 0.0;\n    if (i0 + {r}u < lq) {{\n        let base = (bh * lq + i0 + {r}u) * D;\n{}\n        seen[{r}] = key_range(i0 + {r}u + q_offset, lk, window);\n    }}",
                unrolled(d4, &format!("        qv[{} + {{c}}] = load_q(base, {{c}}u) * scale;", r * d4))
            )
        });
        let scores = per_query(&|r| format!("        s[{r}] = 0.0;\n{}", unrolled(d4, &format!("        s[{r}] += dot(qv[{} + {{c}}], kc[{{c}}]);", r * d4))));
        let update = per_query(&|r| {
            format!(
                "        {{\n            let visible = j >= seen[{r}].x && j < seen[{r}].y;\n            if (visible && s[{r}] > m[{r}]) {{\n                let corr = select(0.0, exp(m[{r}] - s[{r}]), m[{r}] > NEG);\n                l[{r}] *= corr;\n{}\n                m[{r}] = s[{r}];\n            }}\n            p[{r}] = select(0.0, exp(s[{r}] - m[{r}]), visible);\n            l[{r}] += p[{r}];\n        }}",
                unrolled(d4, &format!("                acc[{} + {{c}}] *= corr;", r * d4))
            )
        });
        let acc_add = per_query(&|r| unrolled(d4, &format!("        acc[{} + {{c}}] += p[{r}] * kc[{{c}}];", r * d4)));
        let out_store = per_query(&|r| {
            let stores = (0..d)
                .map(|e| format!("        out[base + {e}u] = acc[{}].{} * inv;", r * d4 + e / 4, ["x", "y", "z", "w"][e as usize % 4]))
                .collect::<Vec<_>>()
                .join("\n");
            format!("    if (i0 + {r}u < lq) {{\n        let inv = select(0.0, 1.0 / l[{r}], l[{r}] > 0.0);\n        let base = (bh * lq + i0 + {r}u) * D;\n{stores}\n    }}")
        });
        // Whole vec4 reads where rows are made of them; single floats, zero-padded, otherwise.
        let (kv_elem, load) = if d % 4 == 0 {
            ("vec4<f32>", "    return BUF[base / 4u + c];".to_string())
        } else {
            ("f32", "    var r = vec4<f32>(0.0);\n    for (var x = 0u; x < 4u; x++) {\n        if (c * 4u + x < D) {\n            r[x] = BUF[base + c * 4u + x];\n        }\n    }\n    return r;".to_string())
        };
        SourceTemplate::new(include_str!("../../../shaders/attention.wgsl"))
            .register("d", d.to_string())
            .register("d4", d4.to_string())
            .register("qpi", qpi.to_string())
            .register("qpi_d4", (qpi * d4).to_string())
            .register("wg", self.wg.to_string())
            .register("mask", self.mask.to_string())
            .register("kv_elem", kv_elem)
            .register("load_k", load.replace("BUF", "k"))
            .register("load_v", load.replace("BUF", "v"))
            .register("q_load", q_load)
            .register("k_read", unrolled(d4, "        kc[{c}] = load_k(row, {c}u);"))
            .register("scores", scores)
            .register("update", update)
            .register("v_read", unrolled(d4, "        kc[{c}] = load_v(row, {c}u);"))
            .register("acc_add", acc_add)
            .register("out_store", out_store)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.d, self.qpi, self.wg, self.mask))
    }

    fn lang(&self) -> &'static str {
        "wgsl"
    }
}

/// Launches the kernel on cubecl tensors (called by the backend extension).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch(
    q: CubeTensor,
    k: CubeTensor,
    v: CubeTensor,
    mask: u32,
    q_offset: u32,
    window: u32,
    block_end: &[u32],
    scale: f32,
) -> CubeTensor {
    let (q, k, v) = (into_contiguous(q), into_contiguous(k), into_contiguous(v));
    let [b, h, lq, d] = dims4(q.meta.shape());
    let lk = k.meta.shape()[2];
    let client = q.client.clone();
    let out_buf = client.empty(b * h * lq * d * q.dtype.size());
    let out = CubeTensor::new_contiguous(client.clone(), q.device.clone(), Shape::from([b, h, lq, d]), out_buf, q.dtype);
    if b * h * lq == 0 {
        return out;
    }
    let kernel = AttentionKernel::new(d as u32, lq as u32, mask);
    let (qpi, wg) = (kernel.qpi, kernel.wg);
    // One invocation per QPI queries of each (batch, head) row, on a 2-D grid when one axis is too short.
    let invocations = (b * h) as u32 * (lq as u32).div_ceil(qpi);
    let groups = invocations.div_ceil(wg);
    let (gx, gy) = (groups.min(65535), groups.div_ceil(65535));
    let info = [lq as u32, lk as u32, q_offset, window, scale.to_bits(), (b * h) as u32, gx * wg];
    let info = client.create_from_slice(bytemuck::cast_slice(&info));
    let dummy = [0u32];
    let block_end = client.create_from_slice(bytemuck::cast_slice(if block_end.is_empty() { &dummy[..] } else { block_end }));
    client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(wg))),
        CubeCount::Static(gx, gy, 1),
        KernelArguments::new().with_buffers(vec![
            q.handle.clone().binding(),
            k.handle.clone().binding(),
            v.handle.clone().binding(),
            out.handle.clone().binding(),
            info.binding(),
            block_end.binding(),
        ]),
    );
    out
}

pub(crate) fn dims4(shape: &Shape) -> [usize; 4] {
    assert_eq!(shape.len(), 4, "expected a rank-4 tensor, got {shape:?}");
    [shape[0], shape[1], shape[2], shape[3]]
}
