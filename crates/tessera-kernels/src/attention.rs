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
//! Not tuned yet. Measured on lavapipe (llvmpipe, 2 cores): about 3.3 GFLOP/s whatever the head
//! dim, so it beats the plain ops where it skips work (windowed masks: 4-6x) or where heads are
//! small (d ≤ 16: 2-3.7x), and loses to burn's matmul for dense masks at d = 64-128 (0.5-0.9x).
//! The likely cost is per-invocation gathers of the shared K/V tiles on llvmpipe; the next steps
//! are several queries per invocation (fewer tile reads per multiply-add) and, for KV-cache
//! decoding, splitting the keys across invocations.

use std::sync::Arc;

use burn::backend::Dispatch;
use burn::backend::wgpu::{CubeTensor, KernelSource, SourceKernel, SourceTemplate, into_contiguous};
use burn::tensor::activation::softmax;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use cubecl::prelude::KernelId;
use cubecl::server::KernelArguments;
use cubecl::{CubeCount, CubeDim};

use crate::ops::{KernelOps, kernels_enabled};

/// Largest head dimension the kernel takes (its private accumulators are sized by it); larger heads
/// run on the plain ops.
pub const MAX_HEAD_DIM: usize = 128;
/// Queries per workgroup (one invocation each), at most; fewer queries (KV-cache decoding) get a
/// smaller workgroup, since every invocation walks the keys whether it has a query or not.
const BQ: u32 = 64;
/// Smallest workgroup: one SIMD row of a software adapter, a quarter of a GPU warp.
const BQ_MIN: u32 = 8;
/// vec4s of K (and as many of V) per tile: 2 × 510 × 16 bytes, plus 8 bytes of range, stays within
/// 16 KiB, WebGPU's default workgroup storage limit.
const TILE_VEC4: u32 = 510;

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
/// On a wgpu device (without autodiff, and unless [`crate::set_reference_ops`] is on) the fused
/// kernel runs; everywhere else [`attention_reference`]. A query that sees no key at all gets
/// zeros from the kernel (NaN from the plain ops); the masks here never produce one.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, mask: &AttentionMask, scale: f32) -> Tensor<4> {
    let (lq, lk) = check_shapes(&q, &k, &v);
    let [b, h, _, d] = q.dims();
    // b·h workgroup rows must fit one dispatch axis (65535 by WebGPU's default limits).
    let fits = (1..=MAX_HEAD_DIM).contains(&d)
        && b * h <= 65535
        && [q.dtype(), k.dtype(), v.dtype()] == [DType::F32; 3];
    if !fits || !kernels_enabled(&q.device()) {
        return attention_reference(q, k, v, mask, scale);
    }
    let q_offset = mask.q_offset(lq, lk) as u32;
    let (window, block_end) = match mask {
        AttentionMask::Window(w) => (u32::try_from(*w).unwrap_or(u32::MAX), Vec::new()),
        AttentionMask::BlockCausal(ends) => (0, ends.0[..lk].to_vec()),
        _ => (0, Vec::new()),
    };
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

/// [`attention`] with plain burn ops (matmul, additive mask, softmax, matmul): the CPU path, the
/// autodiff path, and the reference the kernel is tested against.
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
    bq: u32,
    bk: u32,
    mask: u32,
}

impl AttentionKernel {
    fn new(d: u32, lq: u32, mask: u32) -> Self {
        let bq = lq.next_power_of_two().clamp(BQ_MIN, BQ);
        Self { d, bq, bk: (TILE_VEC4 / d.div_ceil(4)).clamp(1, 64), mask }
    }
}

/// `count` copies of `line` with `{c}` replaced by 0, 1, …: a loop over the head dim, unrolled.
fn unrolled(count: u32, line: &str) -> String {
    (0..count).map(|c| line.replace("{c}", &c.to_string())).collect::<Vec<_>>().join("\n")
}

impl KernelSource for AttentionKernel {
    fn source(&self) -> SourceTemplate {
        let d4 = self.d.div_ceil(4);
        let pad = " ".repeat(12);
        // q and out move whole vec4s where the row has them, single floats in a ragged tail.
        let q_load = unrolled(d4, "        qv[{c}] = load_q(base, {c}u) * scale;");
        let out_store = (0..self.d)
            .map(|e| format!("        out[base + {e}u] = acc[{}].{} * inv;", e / 4, ["x", "y", "z", "w"][e as usize % 4]))
            .collect::<Vec<_>>()
            .join("\n");
        SourceTemplate::new(include_str!("../../../shaders/attention.wgsl"))
            .register("d", self.d.to_string())
            .register("d4", d4.to_string())
            .register("bq", self.bq.to_string())
            .register("bk", self.bk.to_string())
            .register("tile", (self.bk * d4).to_string())
            .register("mask", self.mask.to_string())
            .register("qk_dot", unrolled(d4, &format!("{pad}qk += dot(qv[{{c}}], k_tile[kb + {{c}}u]);")))
            .register("acc_scale", unrolled(d4, &format!("{pad}    acc[{{c}}] *= corr;")))
            .register("acc_add", unrolled(d4, &format!("{pad}acc[{{c}}] += p * v_tile[kb + {{c}}u];")))
            .register("q_load", q_load)
            .register("out_store", out_store)
    }

    fn id(&self) -> KernelId {
        KernelId::new::<Self>().info((self.d, self.bq, self.bk, self.mask))
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
    let info = [lq as u32, lk as u32, q_offset, window, scale.to_bits()];
    let info = client.create_from_slice(bytemuck::cast_slice(&info));
    let dummy = [0u32];
    let block_end = client.create_from_slice(bytemuck::cast_slice(if block_end.is_empty() { &dummy[..] } else { block_end }));
    let d = d as u32;
    let kernel = AttentionKernel::new(d, lq as u32, mask);
    let bq = kernel.bq;
    client.launch(
        Box::new(SourceKernel::new(kernel, CubeDim::new_1d(bq))),
        CubeCount::Static((lq as u32).div_ceil(bq), (b * h) as u32, 1),
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
