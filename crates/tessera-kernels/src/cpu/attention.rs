//! The attention kernel on the CPU: per (batch, head), `S = q kᵀ · scale` and `O = P v` as two
//! matrix products (`gemm`, burn's own CPU matmul), and between them a softmax over each query's
//! visible keys with the vectorised [`exp_in_place`]. The (batch, head) pairs are spread over the
//! cores.
//!
//! q, k and v are read where they lie (the products take any row stride), so the heads split off a
//! fused qkv projection are never copied; the output is written as `[B, Lq, H, D]`, the layout the
//! projection after attention reads, and handed back as a `[B, H, Lq, D]` view of it.
//!
//! Every mask the generators use shows each query one contiguous run of keys, so the mask is a
//! range per row, not a table: keys outside it get probability 0, a query that sees no key gets
//! zeros (the WGSL kernel's rule).

use super::exp::exp_in_place;
use super::{dot, for_each_task};

/// The keys `lo..hi` that query row `i` sees: the WGSL kernel's mask codes (0 none, 1 causal,
/// 2 window, 3 block-causal), queries being the last `lq` of the `lk` key positions.
#[derive(Clone, Copy)]
pub(crate) struct Visible<'a> {
    pub mask: u32,
    pub q_offset: usize,
    pub window: usize,
    pub block_end: &'a [u32],
}

impl Visible<'_> {
    fn range(&self, i: usize, lk: usize) -> (usize, usize) {
        let pos = i + self.q_offset;
        let (lo, hi) = match self.mask {
            0 => (0, lk),
            1 => (0, pos + 1),
            2 => (pos.saturating_sub(self.window), pos + 1),
            _ => (0, self.block_end[pos] as usize),
        };
        (lo, hi.min(lk).max(lo))
    }
}

/// A `[B, H, L, D]` f32 tensor as it lies in memory: its storage, first element and the strides
/// of B, H and L (D's is 1).
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub offset: usize,
    pub strides: [usize; 3],
}

impl View<'_> {
    /// Panics unless every row of a `[b, h, l, d]` view lies inside its storage: the kernel reads
    /// them through raw pointers.
    fn check(&self, [b, h, l, d]: [usize; 4]) {
        if b * h * l * d == 0 {
            return;
        }
        let last = self.offset + (b - 1) * self.strides[0] + (h - 1) * self.strides[1] + (l - 1) * self.strides[2] + d;
        assert!(last <= self.data.len(), "attention view reaches element {last} of {}", self.data.len());
    }

    fn at(&self, b: usize, h: usize) -> *const f32 {
        self.data[self.offset + b * self.strides[0] + h * self.strides[1]..].as_ptr()
    }
}

/// The output's storage, written by several threads at disjoint places.
struct Out(*mut f32);
// SAFETY: every (batch, head) task writes only its own rows of its own head.
unsafe impl Sync for Out {}
unsafe impl Send for Out {}

impl Out {
    /// The element `offset` places from the start (a method, so closures capture the whole `Out`).
    fn at(&self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// Attention of `q` `[B, H, Lq, D]` over `k`, `v` `[B, H, Lk, D]` → the output as `[B, Lq, H, D]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention(q: View, k: View, v: View, [b, h, lq, lk, d]: [usize; 5], visible: Visible, scale: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; b * lq * h * d];
    if out.is_empty() || lk == 0 {
        return out;
    }
    q.check([b, h, lq, d]);
    k.check([b, h, lk, d]);
    v.check([b, h, lk, d]);
    let base = Out(out.as_mut_ptr());
    let row_stride = h * d;
    // Spread (batch, head) pairs over the cores only when a pair holds enough work to outweigh
    // the hand-off (a single cached query, as RAR and the column generator sample, does not).
    let work = lq * lk * d;
    let tasks = if work * b * h >= PARALLEL_WORK { b * h } else { 1 };
    let per_task = (b * h).div_ceil(tasks);
    // A single large pair (a one-head attention over an image) spreads its products instead.
    #[cfg(not(target_arch = "wasm32"))]
    let products = if b * h == 1 && work >= PARALLEL_WORK { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    #[cfg(target_arch = "wasm32")]
    let products = gemm::Parallelism::None;
    for_each_task(tasks, || (vec![0.0f32; lq * lk], Vec::with_capacity(lq)), |t, (scores, inv_sums)| {
        for n in t * per_task..((t + 1) * per_task).min(b * h) {
            let (bi, hi) = (n / h, n % h);
            let o = base.at(bi * lq * row_stride + hi * d);
            // SAFETY: the views' pointers and strides describe rows inside their storage; `o` and
            // row_stride describe this head's part of every query row of `out`, which no other
            // task writes; `scores` holds lq·lk floats.
            unsafe {
                if lq <= FEW_QUERIES {
                    few_queries(q, k, v, [bi, hi], [lq, lk, d], visible, scale, scores, o, row_stride);
                } else {
                    many_queries(q, k, v, [bi, hi], [lq, lk, d], visible, scale, scores, inv_sums, o, row_stride, products);
                }
            }
        }
    });
    out
}

/// Multiply-adds below which one (batch, head) pair's work stays on the calling thread.
const PARALLEL_WORK: usize = 1 << 18;
/// Up to this many queries per pair, scores and outputs are plain dot products and sums of rows:
/// a matrix product of one row costs more to set up than it computes.
const FEW_QUERIES: usize = 4;

/// One (batch, head) pair with dot products, query by query: with AVX2 and FMA where the CPU has
/// them (8-wide where the portable build is 4), as burn's own matrix products do.
#[allow(clippy::too_many_arguments)]
unsafe fn few_queries(q: View, k: View, v: View, pair: [usize; 2], dims: [usize; 3], visible: Visible, scale: f32, scores: &mut [f32], o: *mut f32, row_stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features; the caller's promises pass on.
        return unsafe { few_queries_avx2(q, k, v, pair, dims, visible, scale, scores, o, row_stride) };
    }
    // SAFETY: the caller's promises pass on.
    unsafe { few_queries_portable(q, k, v, pair, dims, visible, scale, scores, o, row_stride) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn few_queries_avx2(q: View, k: View, v: View, pair: [usize; 2], dims: [usize; 3], visible: Visible, scale: f32, scores: &mut [f32], o: *mut f32, row_stride: usize) {
    // SAFETY: the caller's promises pass on.
    unsafe { few_queries_portable(q, k, v, pair, dims, visible, scale, scores, o, row_stride) }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn few_queries_portable(q: View, k: View, v: View, [bi, hi]: [usize; 2], [lq, lk, d]: [usize; 3], visible: Visible, scale: f32, scores: &mut [f32], o: *mut f32, row_stride: usize) {
    let (qh, kh, vh) = (q.at(bi, hi), k.at(bi, hi), v.at(bi, hi));
    for i in 0..lq {
        let (lo, hi_) = visible.range(i, lk);
        // SAFETY (all three): rows of d floats at the views' row strides, as the caller promises.
        let qi = unsafe { std::slice::from_raw_parts(qh.add(i * q.strides[2]), d) };
        let seen = &mut scores[..hi_ - lo];
        for (s, j) in seen.iter_mut().zip(lo..hi_) {
            *s = dot(qi, unsafe { std::slice::from_raw_parts(kh.add(j * k.strides[2]), d) }) * scale;
        }
        let out = unsafe { std::slice::from_raw_parts_mut(o.add(i * row_stride), d) };
        out.fill(0.0);
        if seen.is_empty() {
            continue;
        }
        let max = max(seen);
        seen.iter_mut().for_each(|s| *s -= max);
        exp_in_place(seen);
        let inv = 1.0 / super::sum(seen);
        for (&p, j) in seen.iter().zip(lo..hi_) {
            let vj = unsafe { std::slice::from_raw_parts(vh.add(j * v.strides[2]), d) };
            let p = p * inv;
            out.iter_mut().zip(vj).for_each(|(o, &x)| *o += p * x);
        }
    }
}

/// One (batch, head) pair as two matrix products around the softmax.
#[allow(clippy::too_many_arguments)]
unsafe fn many_queries(q: View, k: View, v: View, [bi, hi]: [usize; 2], [lq, lk, d]: [usize; 3], visible: Visible, scale: f32, scores: &mut [f32], inv_sums: &mut Vec<f32>, o: *mut f32, row_stride: usize, products: gemm::Parallelism) {
    // SAFETY: as the caller promises.
    unsafe {
        // scores[lq, lk] = scale · q[lq, d] · kᵀ[d, lk]: kᵀ's column stride is k's row stride.
        gemm::gemm(lq, lk, d, scores.as_mut_ptr(), 1, lk as isize, false, q.at(bi, hi), 1, q.strides[2] as isize, k.at(bi, hi), k.strides[2] as isize, 1, 0.0, scale, false, false, false, products);
    }
    inv_sums.clear();
    for (i, row) in scores.chunks_exact_mut(lk).enumerate() {
        inv_sums.push(exp_row(row, visible.range(i, lk)));
    }
    // SAFETY: as the caller promises.
    unsafe {
        gemm::gemm(lq, d, lk, o, 1, row_stride as isize, false, scores.as_ptr(), 1, lk as isize, v.at(bi, hi), 1, v.strides[2] as isize, 0.0, 1.0, false, false, false, products);
        for (i, &inv) in inv_sums.iter().enumerate() {
            std::slice::from_raw_parts_mut(o.add(i * row_stride), d).iter_mut().for_each(|x| *x *= inv);
        }
    }
}

/// One softmax row before its normalisation: zero outside the visible keys `lo..hi`,
/// `exp(s − max)` inside; returns `1 / Σ` (0 for a row that sees nothing).
#[inline(always)]
fn exp_row(row: &mut [f32], (lo, hi): (usize, usize)) -> f32 {
    row[..lo].fill(0.0);
    row[hi..].fill(0.0);
    let seen = &mut row[lo..hi];
    let max = max(seen);
    seen.iter_mut().for_each(|s| *s -= max);
    exp_in_place(seen);
    let sum = super::sum(seen);
    if sum > 0.0 { 1.0 / sum } else { 0.0 }
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    const LANES: usize = super::LANES;
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| if v > m { v } else { m })
}

/// The gradients of [`attention`] with respect to `q`, `k` and `v`, given the gradient `dout` of
/// its output: per (batch, head), `P` is recomputed (two products and the softmax, as forward)
/// rather than kept from the forward pass, then `dV = Pᵀ dO`, `dP = dO Vᵀ`,
/// `dS = P ⊙ (dP − rowsum(P ⊙ dP))`, `dQ = dS K · scale`, `dK = dSᵀ Q · scale`: five products
/// and two row passes, the pairs spread over the cores. Returns dq `[B, Lq, H, D]` and dk, dv
/// `[B, Lk, H, D]` (as the forward writes its output).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_backward(q: View, k: View, v: View, dout: View, [b, h, lq, lk, d]: [usize; 5], visible: Visible, scale: f32) -> [Vec<f32>; 3] {
    let mut grads = [vec![0.0f32; b * lq * h * d], vec![0.0f32; b * lk * h * d], vec![0.0f32; b * lk * h * d]];
    if b * h * lq * lk * d == 0 {
        return grads;
    }
    for (view, l) in [(q, lq), (k, lk), (v, lk), (dout, lq)] {
        view.check([b, h, l, d]);
    }
    let [dq, dk, dv] = grads.each_mut().map(|g| Out(g.as_mut_ptr()));
    let row_stride = h * d;
    let none = gemm::Parallelism::None;
    for_each_task(b * h, || (vec![0.0f32; lq * lk], vec![0.0f32; lq * lk]), |n, (p, dp)| {
        let (bi, hi) = (n / h, n % h);
        let (qh, kh, vh, oh) = (q.at(bi, hi), k.at(bi, hi), v.at(bi, hi), dout.at(bi, hi));
        let (dqh, dkh, dvh) = (dq.at(bi * lq * row_stride + hi * d), dk.at(bi * lk * row_stride + hi * d), dv.at(bi * lk * row_stride + hi * d));
        let (rs, ld) = (row_stride as isize, lk as isize);
        // SAFETY: the views' pointers and strides describe rows inside their storage (checked
        // above); dqh/dkh/dvh with row_stride describe this head's part of the rows of the
        // outputs, which no other task writes; p and dp hold lq·lk floats.
        unsafe {
            // P = softmax(scale · q kᵀ) over each row's visible keys.
            gemm::gemm(lq, lk, d, p.as_mut_ptr(), 1, ld, false, qh, 1, q.strides[2] as isize, kh, k.strides[2] as isize, 1, 0.0, scale, false, false, false, none);
            for (i, row) in p.chunks_exact_mut(lk).enumerate() {
                let inv = exp_row(row, visible.range(i, lk));
                row.iter_mut().for_each(|s| *s *= inv);
            }
            // dV = Pᵀ dO.
            gemm::gemm(lk, d, lq, dvh, 1, rs, false, p.as_ptr(), ld, 1, oh, 1, dout.strides[2] as isize, 0.0, 1.0, false, false, false, none);
            // dP = dO vᵀ, then dS = P ⊙ (dP − rowsum(P ⊙ dP)) in place.
            gemm::gemm(lq, lk, d, dp.as_mut_ptr(), 1, ld, false, oh, 1, dout.strides[2] as isize, vh, v.strides[2] as isize, 1, 0.0, 1.0, false, false, false, none);
            for (prow, dprow) in p.chunks_exact(lk).zip(dp.chunks_exact_mut(lk)) {
                let row = dot(prow, dprow);
                dprow.iter_mut().zip(prow).for_each(|(ds, &p)| *ds = p * (*ds - row));
            }
            // dQ = scale · dS k, dK = scale · dSᵀ q.
            gemm::gemm(lq, d, lk, dqh, 1, rs, false, dp.as_ptr(), 1, ld, kh, 1, k.strides[2] as isize, 0.0, scale, false, false, false, none);
            gemm::gemm(lk, d, lq, dkh, 1, rs, false, dp.as_ptr(), ld, 1, qh, 1, q.strides[2] as isize, 0.0, scale, false, false, false, none);
        }
    });
    grads
}
