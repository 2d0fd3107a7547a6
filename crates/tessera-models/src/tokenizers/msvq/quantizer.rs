//! The multi-scale quantizer of [`super::MsVqVae`]: codebook, nearest-code search and the
//! residual convs φ with their per-scale sharing (official `models/quant.py`, `VectorQuantizer2`,
//! `Phi`, `PhiShared`, `PhiPartiallyShared`, `PhiNonShared`).

use burn::nn::Embedding;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

/// How the residual convs φ are shared between scales (official `share_quant_resi`).
#[derive(Config, Debug, PartialEq, Eq)]
pub enum PhiSharing {
    /// One φ per scale (`share_quant_resi = 0`, `PhiNonShared`).
    PerScale,
    /// One φ for every scale (`share_quant_resi = 1`, `PhiShared`).
    Shared,
    /// `n ≥ 2` φ's spread over the scales (`share_quant_resi = n`, `PhiPartiallyShared`); the
    /// official checkpoints use 4.
    Partial(usize),
}

impl PhiSharing {
    /// From the official integer `share_quant_resi`.
    pub fn from_official(share_quant_resi: usize) -> Self {
        match share_quant_resi {
            0 => Self::PerScale,
            1 => Self::Shared,
            n => Self::Partial(n),
        }
    }

    /// The official integer `share_quant_resi`.
    pub fn to_official(&self) -> usize {
        match self {
            Self::PerScale => 0,
            Self::Shared => 1,
            Self::Partial(n) => *n,
        }
    }

    /// Number of φ convs for `num_scales` scales.
    pub fn count(&self, num_scales: usize) -> usize {
        match self {
            Self::PerScale => num_scales,
            Self::Shared => 1,
            Self::Partial(n) => *n,
        }
    }
}

// Hard-coded, not recomputed: the official code picks φ for scale si by
// `argmin |ticks - si/(SN-1)|` over `ticks = np.linspace(1/3/n, 1-1/3/n, n)` (n = 4) in float64,
// and some scales are exact mathematical ties broken by that rounding (si = 2 and 7 of the
// 10-scale schedule, si = 1 of 3 scales, si = 3 of 7): a recomputation in f32, or with another
// linspace, picks the other φ. Tables for 4 partially shared φ's, keyed by the number of scales.
const PHI_IDX_4_SHARED: [&[usize]; 6] = [
    &[0, 2, 3],                                  // (1, 2, 3)
    &[0, 1, 2, 3],                               // (1, 2, 3, 4)
    &[0, 0, 1, 2, 3, 3],                         // (1, 2, 3, 4, 5, 6)
    &[0, 0, 1, 2, 2, 3, 3],                      // (1, 2, 3, 4, 5, 6, 8): 32 px, latent 8
    &[0, 0, 1, 1, 1, 2, 2, 3, 3, 3],             // 256 px and 512 px schedules
    &[0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3], // 1024 px schedule
];

/// Index of the φ used at each scale, as the official `Phi*.__getitem__(si / (SN - 1))`.
pub fn phi_index(sharing: &PhiSharing, num_scales: usize) -> Vec<usize> {
    let n = sharing.count(num_scales);
    if n == 4
        && let Some(table) = PHI_IDX_4_SHARED.iter().find(|t| t.len() == num_scales)
    {
        return table.to_vec();
    }
    phi_index_f64(n, num_scales)
}

/// The official rule in float64, replaying numpy's `linspace` (`i * step + start`, last = stop).
fn phi_index_f64(n: usize, num_scales: usize) -> Vec<usize> {
    let margin = if n == 4 {
        1.0 / 3.0 / n as f64
    } else {
        1.0 / 2.0 / n as f64
    };
    let (start, stop) = (margin, 1.0 - margin);
    let ticks: Vec<f64> = (0..n)
        .map(|i| match n {
            1 => start,
            _ if i == n - 1 => stop,
            _ => i as f64 * ((stop - start) / (n - 1) as f64) + start,
        })
        .collect();
    (0..num_scales)
        .map(|si| {
            let at = if num_scales > 1 {
                si as f64 / (num_scales - 1) as f64
            } else {
                0.0
            };
            let mut best = 0;
            for (i, t) in ticks.iter().enumerate() {
                if (t - at).abs() < (ticks[best] - at).abs() {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Codebook plus the residual convs φ (official `VectorQuantizer2`).
#[derive(Module, Debug)]
pub(super) struct Quantizer {
    /// `[V, Cvae]`.
    pub(super) embedding: Embedding,
    /// The φ convs (Cvae → Cvae, 3×3); empty when φ is the identity.
    pub(super) quant_resi: Vec<Conv2d>,
    /// φ index of each scale.
    pub(super) phi_idx: Vec<usize>,
    /// [`PhiSharing`] as the official integer; decides the checkpoint keys of the φ convs.
    pub(super) share_quant_resi: usize,
    pub(super) resi_ratio: f64,
    pub(super) patch_nums: Vec<usize>,
    pub(super) using_znorm: bool,
    pub(super) beta: f64,
}

impl Quantizer {
    /// φ of scale `si`: `(1 - r) h + r conv(h)` (official `Phi`).
    pub(super) fn phi(&self, si: usize, h: Tensor<4>) -> Tensor<4> {
        match self.quant_resi.get(self.phi_idx[si]) {
            Some(conv) => h.clone() * (1.0 - self.resi_ratio) + conv.forward(h) * self.resi_ratio,
            None => h,
        }
    }

    /// Index of the nearest code of each row: `[N, Cvae]` → `[N]`.
    pub(super) fn nearest(&self, z: Tensor<2>) -> Tensor<1, Int> {
        let [n, _] = z.dims();
        let e = self.embedding.weight.val().detach(); // [V, C]
        let idx = if self.using_znorm {
            let z = l2_normalize(z);
            let e = l2_normalize(e);
            z.matmul(e.transpose()).argmax(1).reshape([n])
        } else {
            // The fused WGSL kernel on wgpu devices; elsewhere its plain-op twin computes
            // |z|² + |e|² - 2 z·e as the official `addmm_` (same operation order).
            tessera_kernels::quantize(z, e).0
        };
        idx
    }

    /// Code vectors of `idx` as a map: `[B, pn²]` → `[B, Cvae, pn, pn]`.
    pub(super) fn embed(&self, idx: Tensor<2, Int>) -> Tensor<4> {
        let [b, l] = idx.dims();
        let pn = (l as f64).sqrt().round() as usize;
        assert_eq!(pn * pn, l, "a token map holds pn² tokens, got {l}");
        let [_, c] = self.embedding.weight.lazy_shape().dims();
        self.embedding
            .forward(idx)
            .swap_dims(1, 2)
            .reshape([b, c, pn, pn])
    }
}

fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().square().sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// `[B, C, h, w]` → `[B·h·w, C]`, rows in row-major position order.
pub(super) fn to_rows(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1]).reshape([b * h * w, c])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_tables_match_the_official_float64_rule() {
        for table in PHI_IDX_4_SHARED {
            assert_eq!(
                phi_index_f64(4, table.len()),
                table.to_vec(),
                "{} scales",
                table.len()
            );
        }
        assert_eq!(
            phi_index(&PhiSharing::Partial(4), 10),
            vec![0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
        );
        assert_eq!(phi_index(&PhiSharing::Partial(4), 3), vec![0, 2, 3]);
        assert_eq!(phi_index(&PhiSharing::Shared, 5), vec![0; 5]);
        assert_eq!(
            phi_index(&PhiSharing::PerScale, 10),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(phi_index(&PhiSharing::Partial(4), 5), vec![0, 1, 2, 2, 3]);
    }
}
