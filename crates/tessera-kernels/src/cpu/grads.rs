//! Backward passes of the CPU kernels, for training on burn's CPU backend ([`super::autodiff`]
//! records them). Each is one or two passes over the rows where burn's autodiff runs a backward
//! op per element-wise op of the forward (a LayerNorm + modulation alone is about twenty).
//!
//! Sums over broadcast dimensions (the gradients of a `[1 or B, 1 or L, C]` condition and of a
//! `[C]` affine parameter) are deterministic: the rows are cut into tasks by the shape alone, each
//! task adds into its own accumulators, and those are summed in task order, so a training run
//! gives the same numbers whatever the thread count or the scheduling (exact resume relies on it).

use super::{ELEMENTWISE_CHUNK, dot, sum};

/// Where the condition row of token row `r` of a `[B, L, C]` tensor lies in a `[sb, sl, C]`
/// condition (`1` in a dim broadcasts).
#[derive(Clone, Copy)]
pub(crate) struct CondRows {
    pub sb: usize,
    pub sl: usize,
    pub l: usize,
}

impl CondRows {
    /// The condition of a `[B, L, C]` tensor with shape `cond` (`[1 or B, 1 or L, C]`).
    pub fn new(cond: &burn::tensor::Shape, l: usize) -> Self {
        let [sb, sl, _] = cond.dims();
        Self { sb, sl, l }
    }

    /// The condition row that token row `r` reads.
    pub fn row(&self, r: usize) -> usize {
        (if self.sb == 1 { 0 } else { r / self.l }) * self.sl + if self.sl == 1 { 0 } else { r % self.l }
    }

    fn count(&self) -> usize {
        self.sb * self.sl
    }
}

/// The gradients a row-wise backward pass produces: `dx` `[rows, c]`, `k` condition gradients
/// (`[sb·sl, c]` each) and `p` per-channel gradients (`[c]` each).
pub(crate) struct RowGrads {
    pub dx: Vec<f32>,
    pub cond: Vec<Vec<f32>>,
    pub params: Vec<Vec<f32>>,
}

/// Runs `f(r, dx row, condition accumulators of r's condition row (k·c), parameter accumulators
/// (p·c), scratch)` for every row of a `[rows, c]` tensor and returns the summed gradients.
pub(crate) fn row_backward(
    rows: usize,
    c: usize,
    cond: CondRows,
    [k, p]: [usize; 2],
    scratch_len: usize,
    f: impl Fn(usize, &mut [f32], &mut [f32], &mut [f32], &mut [f32]) + Sync + Send,
) -> RowGrads {
    let mut dx = vec![0.0f32; rows * c];
    let mut grads = RowGrads { dx: Vec::new(), cond: vec![vec![0.0; cond.count() * c]; k], params: vec![vec![0.0; c]; p] };
    if rows * c == 0 {
        grads.dx = dx;
        return grads;
    }
    let per_task = (ELEMENTWISE_CHUNK / c).max(1);
    // Each task: (its first condition row, its condition accumulators [span][k][c], its
    // parameter accumulators [p][c]).
    let partials = super::map_chunks(&mut dx, per_task * c, |t, dx| {
        let first = t * per_task;
        let last = first + dx.len() / c;
        let (lo, hi) = (first..last).map(|r| cond.row(r)).fold((usize::MAX, 0), |(lo, hi), q| (lo.min(q), hi.max(q + 1)));
        let mut cond_acc = vec![0.0f32; (hi - lo) * k * c];
        let mut param_acc = vec![0.0f32; p * c];
        let mut scratch = vec![0.0f32; scratch_len];
        for (i, dx) in dx.chunks_exact_mut(c).enumerate() {
            let r = first + i;
            let q = cond.row(r) - lo;
            f(r, dx, &mut cond_acc[q * k * c..(q + 1) * k * c], &mut param_acc, &mut scratch);
        }
        (lo, cond_acc, param_acc)
    });
    for (lo, cond_acc, param_acc) in partials {
        for (q, row) in cond_acc.chunks_exact(k * c.max(1)).enumerate() {
            for (out, part) in grads.cond.iter_mut().zip(row.chunks_exact(c)) {
                add(&mut out[(lo + q) * c..(lo + q + 1) * c], part);
            }
        }
        for (out, part) in grads.params.iter_mut().zip(param_acc.chunks_exact(c)) {
            add(out, part);
        }
    }
    grads.dx = dx;
    grads
}

fn add(out: &mut [f32], x: &[f32]) {
    out.iter_mut().zip(x).for_each(|(o, v)| *o += v);
}

/// The backward pass of [`super::CpuOps::layer_norm_modulate`]: `out = (n·γ + β)(1 + s) + t` with
/// `n = (x − μ)·ρ`, `ρ = 1/√(var + eps)`. For the gradient `g` of `out`:
/// `dt = g`, `ds = g·(n·γ + β)`, `dβ = g(1 + s)`, `dγ = g(1 + s)·n`, and with `dn = g(1 + s)·γ`,
/// `dx = ρ·(dn − mean(dn) − n·mean(dn·n))`.
/// Returns `dx`, `[dscale, dshift]` and `[dgamma, dbeta]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_norm_modulate(x: &[f32], g: &[f32], gamma: &[f32], beta: &[f32], scale: &[f32], [rows, c]: [usize; 2], cond: CondRows, eps: f32) -> RowGrads {
    row_backward(rows, c, cond, [2, 2], 2 * c, |r, dx, cond_acc, params, scratch| {
        let (xr, gr) = (&x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
        let s = &scale[cond.row(r) * c..][..c];
        let (n, dn) = scratch.split_at_mut(c);
        let mean = sum(xr) / c as f32;
        n.iter_mut().zip(xr).for_each(|(n, v)| *n = v - mean);
        let rstd = 1.0 / (super::sum_squares(n) / c as f32 + eps).sqrt();
        n.iter_mut().for_each(|n| *n *= rstd);
        let (ds, dt) = cond_acc.split_at_mut(c);
        let (dgamma, dbeta) = params.split_at_mut(c);
        for j in 0..c {
            let da = gr[j] * (1.0 + s[j]);
            dt[j] += gr[j];
            ds[j] += gr[j] * (n[j] * gamma[j] + beta[j]);
            dbeta[j] += da;
            dgamma[j] += da * n[j];
            dn[j] = da * gamma[j];
        }
        let mean_dn = sum(dn) / c as f32;
        let mean_dn_n = dot(dn, n) / c as f32;
        for ((dx, dn), n) in dx.iter_mut().zip(dn.iter()).zip(n.iter()) {
            *dx = rstd * (dn - mean_dn - n * mean_dn_n);
        }
    })
}

/// The backward pass of [`super::CpuOps::gated_residual`], `out = x + y·gate`: `dx = g` (the
/// caller passes `g` on), `dy = g·gate`, `dgate = Σ g·y` over the broadcast dims.
/// Returns `dy` and `[dgate]`.
pub(crate) fn gated_residual(y: &[f32], g: &[f32], gate: &[f32], [rows, c]: [usize; 2], cond: CondRows) -> RowGrads {
    row_backward(rows, c, cond, [1, 0], 0, |r, dy, dgate, _, _| {
        let (yr, gr) = (&y[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
        let gate = &gate[cond.row(r) * c..][..c];
        for j in 0..c {
            dy[j] = gr[j] * gate[j];
            dgate[j] += gr[j] * yr[j];
        }
    })
}
