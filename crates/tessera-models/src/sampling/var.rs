//! VAR sampling: next-scale prediction with classifier-free guidance.
//! Official: FoundationVision/VAR @78b95394, `models/var.py` (`VAR.autoregressive_infer_cfg`) and
//! `models/helpers.py` (`sample_with_top_k_top_p_`).
//!
//! The batch is doubled with the null class; each scale is one cached forward pass; the logits of
//! scale `si` are guided with `t = guidance · si / (K - 1)` as `(1 + t) · cond − t · uncond` (the
//! first scale is unguided), filtered by top-k and top-p, and sampled; the chosen codes are added
//! to `f_hat` and the next scale's input is `f_hat` area-resized to it.
//!
//! Differences from the official code:
//! - Random numbers come from a seeded [`SplitMix64`] on the CPU, one uniform per token, and a
//!   token is drawn on the device by inverse CDF: the same seed gives the same image on every
//!   device (up to float rounding at a CDF boundary). `torch.multinomial`'s stream is not
//!   reproduced; with `top_k = 1` both are exact argmax, which the fixtures check.
//! - Top-p keeps the official rule (remove the codes whose ascending cumulative probability is
//!   ≤ 1 − top_p, always keep the best) but finds the cut by bisection on the logit threshold
//!   instead of a sort, because `sort` reads back to the CPU on WebGPU; exact except among tied
//!   logits at the cut.
//! - An optional temperature (1 = official) divides the guided logits before filtering.
//! - No `more_smooth` (Gumbel-softmax blending, for visualisation only).
//! - Runs as a step-by-step state ([`VarSampling`]) so the app can show every scale.
//! - Zero-shot editing ([`VarEdit`], the official `demo_zero_shot_edit.ipynb`): the keep-mask is
//!   resized per scale on the CPU (bilinear, align_corners = False, threshold 0.5, as the notebook),
//!   and kept positions take the source image's code instead of the sampled one.
//!
//! - A next-token model ([`TokenOrder::NextToken`], the raster-order baseline) is sampled by the
//!   same run: each step is still one scale, made of one cached forward pass per token.
//!
//! Nothing here reads a tensor back: it runs in the browser.

use burn::prelude::*;

use crate::generators::var::{TokenOrder, Var, VarCache, scale_ranges};
use crate::rng::{BatchPart, BatchRng};
use crate::sampling::logits::{TokenFilter, choose_tokens};
use crate::tokenizers::msvq::MsVqVae;

/// Settings of one sampling run.
#[derive(Config, Debug)]
pub struct VarSamplerConfig {
    /// Classifier-free guidance (official `cfg`); scale `si` uses `t = guidance · si / (K - 1)`.
    /// 0 disables guidance (the batch is still doubled, as the official does).
    #[config(default = 1.5)]
    pub guidance: f64,
    /// Keep only the `top_k` best codes (0 = all; 1 = greedy argmax). README FID runs: 900.
    #[config(default = 0)]
    pub top_k: usize,
    /// Nucleus filter (0 = off). README FID runs: 0.96.
    #[config(default = 0.0)]
    pub top_p: f64,
    /// Divides the guided logits before filtering (1 = official, no temperature).
    #[config(default = 1.0)]
    pub temperature: f64,
    /// Seed of the CPU random stream.
    #[config(default = 0)]
    pub seed: u64,
}

impl VarSamplerConfig {
    /// The logit filters of this run (temperature, top-k, top-p).
    pub fn filter(&self) -> TokenFilter {
        TokenFilter { temperature: self.temperature, top_k: self.top_k, top_p: self.top_p }
    }
}

/// What one scale produced, for a step-through view.
#[derive(Debug, Clone)]
pub struct VarStep {
    /// Scale index.
    pub si: usize,
    /// Chosen codes `[B, pn, pn]`.
    pub tokens: Tensor<3, Int>,
    /// Accumulated `f_hat` after this scale `[B, Cvae, h, w]`: decode it for a partial image.
    pub f_hat: Tensor<4>,
    /// Logits of the doubled batch `[2B, pn², V]`: rows `0..B` conditional, `B..2B` null class.
    pub raw_logits: Tensor<3>,
    /// Guided logits before filtering `[B, pn², V]`.
    pub guided_logits: Tensor<3>,
}

/// The result of a whole run.
#[derive(Debug, Clone)]
pub struct VarSample {
    /// Images in `[0, 1]`, `[B, C, H, W]` (official return value).
    pub image: Tensor<4>,
    /// Final `f_hat` `[B, Cvae, h, w]`.
    pub f_hat: Tensor<4>,
    /// Codes per scale `[B, pn²]`, smallest first (feed to `MsVqVae::idx_to_image`).
    pub tokens: Vec<Tensor<2, Int>>,
    /// Every scale's step when asked for (see [`sample`]).
    pub steps: Vec<VarStep>,
}

/// A sampling run in progress: call [`VarSampling::step`] once per scale.
#[derive(Debug, Clone)]
pub struct VarSampling {
    config: VarSamplerConfig,
    rng: BatchRng,
    patch_nums: Vec<usize>,
    batch: usize,
    /// Class embedding of `[labels; null]`, `[2B, C]`.
    cond: Tensor<2>,
    cache: VarCache,
    f_hat: Tensor<4>,
    /// Input tokens of the next scale, `[2B, pn², C]`.
    next_input: Option<Tensor<3>>,
    si: usize,
    edit: Option<EditState>,
}

/// Zero-shot editing of an existing image (VAR paper §7, official `demo_zero_shot_edit.ipynb`):
/// where `keep` is 1 the source image's codes are kept at every scale, elsewhere they are sampled.
/// In-painting = keep outside a hole, out-painting = keep inside a box, both with the null class;
/// class-conditional editing = keep outside a box and sample it with a class label.
#[derive(Debug, Clone)]
pub struct VarEdit {
    /// Codes of the source images per scale `[B, pn²]`, smallest first (`MsVqVae::image_to_idx`).
    pub tokens: Vec<Tensor<2, Int>>,
    /// Keep-mask over the image, row-major `height × width`, 1 = keep the source, shared by the batch.
    pub keep: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

#[derive(Debug, Clone)]
struct EditState {
    tokens: Vec<Tensor<2, Int>>,
    /// Per scale `[B, pn²]`: true where the source code is kept.
    keep: Vec<Tensor<2, Bool>>,
}

/// The keep-mask at each scale: area-averaged to the latent grid (`patch_nums` last), then
/// bilinear (align_corners = False) to `pn × pn` and thresholded at 0.5, as the official notebook
/// does with its latent-resolution mask. Scales of at most 3 tokens (the 1×1 start) always keep
/// the source, as the notebook does. Row-major `pn²` booleans per scale.
pub fn edit_keep_masks(keep: &[f32], height: usize, width: usize, patch_nums: &[usize]) -> Vec<Vec<bool>> {
    assert_eq!(keep.len(), height * width, "mask is not height × width");
    let side = *patch_nums.last().expect("at least one scale");
    let latent = area_resize(keep, height, width, side);
    patch_nums
        .iter()
        .map(|&pn| {
            if pn * pn <= 3 {
                return vec![true; pn * pn];
            }
            bilinear_resize(&latent, side, pn).into_iter().map(|v| v > 0.5).collect()
        })
        .collect()
}

/// Mean of each output cell's window (windows overlap when sizes do not divide, as PyTorch's
/// adaptive average pooling).
fn area_resize(x: &[f32], h: usize, w: usize, out: usize) -> Vec<f32> {
    let window = |i: usize, n: usize| (i * n / out, ((i + 1) * n).div_ceil(out));
    let mut y = vec![0.0; out * out];
    for oy in 0..out {
        let (y0, y1) = window(oy, h);
        for ox in 0..out {
            let (x0, x1) = window(ox, w);
            let sum: f32 = (y0..y1).flat_map(|r| (x0..x1).map(move |c| (r, c))).map(|(r, c)| x[r * w + c]).sum();
            y[oy * out + ox] = sum / ((y1 - y0) * (x1 - x0)) as f32;
        }
    }
    y
}

/// PyTorch `F.interpolate(mode='bilinear', align_corners=False)` of a square map.
fn bilinear_resize(x: &[f32], n: usize, out: usize) -> Vec<f32> {
    let taps = |i: usize| {
        let src = ((i as f32 + 0.5) * n as f32 / out as f32 - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(n - 1);
        let i1 = (i0 + 1).min(n - 1);
        (i0, i1, src - i0 as f32)
    };
    let mut y = vec![0.0; out * out];
    for oy in 0..out {
        let (r0, r1, ty) = taps(oy);
        for ox in 0..out {
            let (c0, c1, tx) = taps(ox);
            let top = x[r0 * n + c0] * (1.0 - tx) + x[r0 * n + c1] * tx;
            let bottom = x[r1 * n + c0] * (1.0 - tx) + x[r1 * n + c1] * tx;
            y[oy * out + ox] = top * (1.0 - ty) + bottom * ty;
        }
    }
    y
}

impl VarSampling {
    /// Starts a run for `labels` (`[B]`; the null class gives unconditional samples).
    ///
    /// # Panics
    /// If the generator and the tokenizer disagree on the scales.
    pub fn new(var: &Var, vae: &MsVqVae, labels: Tensor<1, Int>, config: VarSamplerConfig) -> Self {
        assert_eq!(
            var.patch_nums(),
            vae.patch_nums(),
            "generator and tokenizer scales differ"
        );
        let [b] = labels.dims();
        let device = labels.device();
        let null = Tensor::<1, Int>::full([b], var.null_class() as i64, &device);
        let cond = var.class_embedding(Tensor::cat(vec![labels, null], 0)); // [2B, C]
        let side = *vae.patch_nums().last().expect("at least one scale");
        let f_hat = Tensor::<4>::zeros([b, vae.z_channels(), side, side], &device);
        Self {
            rng: BatchRng::new(config.seed, b, None),
            config,
            patch_nums: var.patch_nums().to_vec(),
            batch: b,
            next_input: Some(var.first_scale_input(cond.clone())),
            cond,
            cache: var.new_cache(),
            f_hat,
            si: 0,
            edit: None,
        }
    }

    /// Makes this run `part` of a larger batch: its images draw what they would in the whole
    /// batch (see [`BatchRng`]).
    pub fn part_of(mut self, part: BatchPart) -> Self {
        assert_eq!(self.si, 0, "a run becomes part of a batch before its first step");
        self.rng = BatchRng::new(self.config.seed, self.batch, Some(part));
        self
    }

    /// Turns this run into a zero-shot edit of `edit.tokens`' images.
    ///
    /// # Panics
    /// If the edit's scales or batch differ from the run's.
    pub fn with_edit(mut self, edit: VarEdit) -> Self {
        assert_eq!(edit.tokens.len(), self.patch_nums.len(), "edit tokens must cover every scale");
        let device = self.f_hat.device();
        let masks = edit_keep_masks(&edit.keep, edit.height, edit.width, &self.patch_nums);
        let keep = masks
            .into_iter()
            .map(|m| {
                let l = m.len();
                let row = Tensor::<1, Bool>::from_data(TensorData::new(m, [l]), &device);
                row.reshape([1, l]).expand([self.batch, l])
            })
            .collect();
        for (t, &pn) in edit.tokens.iter().zip(&self.patch_nums) {
            assert_eq!(t.dims(), [self.batch, pn * pn], "edit tokens of the wrong shape");
        }
        self.edit = Some(EditState { tokens: edit.tokens, keep });
        self
    }

    /// Number of scales K.
    pub fn num_scales(&self) -> usize {
        self.patch_nums.len()
    }

    /// Index of the next scale to sample (K when done).
    pub fn scale(&self) -> usize {
        self.si
    }

    /// Whether every scale has been sampled.
    pub fn is_done(&self) -> bool {
        self.si >= self.patch_nums.len()
    }

    /// Accumulated `f_hat` so far, `[B, Cvae, h, w]`.
    pub fn f_hat(&self) -> Tensor<4> {
        self.f_hat.clone()
    }

    /// Samples the next scale; `None` when done. In next-token order that is one forward pass per
    /// token of the scale, each token seeing the ones before it.
    pub fn step(&mut self, var: &Var, vae: &MsVqVae) -> Option<VarStep> {
        let x = self.next_input.take()?;
        let (si, b, k) = (self.si, self.batch, self.patch_nums.len());
        let pn = self.patch_nums[si];
        // Guidance ramps with the scale, in either order: t = guidance · si / (K − 1).
        let t = self.config.guidance * if k > 1 { si as f64 / (k - 1) as f64 } else { 0.0 };
        let guide = |raw: &Tensor<3>| raw.clone().narrow(0, 0, b) * (1.0 + t) - raw.clone().narrow(0, b, b) * t;

        let (raw_logits, guided_logits, idx) = match var.order() {
            TokenOrder::NextScale => {
                let raw = var.forward_cached(x, self.cond.clone(), &mut self.cache); // [2B, pn², V]
                let guided = guide(&raw);
                let mut idx = choose_tokens(guided.clone(), &self.config.filter(), &mut self.rng); // [B, pn²]
                if let Some(edit) = &self.edit {
                    idx = idx.mask_where(edit.keep[si].clone(), edit.tokens[si].clone());
                }
                (raw, guided, idx)
            }
            TokenOrder::NextToken => {
                let start = scale_ranges(var.patch_nums())[si].start;
                let (mut raws, mut guideds, mut chosen) = (Vec::new(), Vec::new(), Vec::new());
                let mut x = Some(x);
                for p in 0..pn * pn {
                    let input = x.take().expect("every position but the last makes the next one's input");
                    let raw = var.forward_cached(input, self.cond.clone(), &mut self.cache); // [2B, 1, V]
                    let guided = guide(&raw);
                    let mut token = choose_tokens(guided.clone(), &self.config.filter(), &mut self.rng); // [B, 1]
                    if let Some(edit) = &self.edit {
                        token = token.mask_where(edit.keep[si].clone().narrow(1, p, 1), edit.tokens[si].clone().narrow(1, p, 1));
                    }
                    if start + p + 1 < var.seq_len() {
                        let next = var.next_token_input(start + p + 1, token.clone());
                        x = Some(Tensor::cat(vec![next.clone(), next], 0)); // both halves of the CFG batch
                    }
                    raws.push(raw);
                    guideds.push(guided);
                    chosen.push(token);
                }
                self.next_input = x;
                (Tensor::cat(raws, 1), Tensor::cat(guideds, 1), Tensor::cat(chosen, 1))
            }
        };

        let (f_hat, next) =
            vae.next_autoregressive_input(si, self.f_hat.clone(), vae.embed_codes(idx.clone()));
        self.f_hat = f_hat.clone();
        self.si += 1;
        if self.si < k && var.order() == TokenOrder::NextScale {
            let [_, c, p, _] = next.dims();
            let tokens = next.reshape([b, c, p * p]).swap_dims(1, 2); // [B, pn², Cvae]
            let input = var.scale_input(self.si, tokens);
            self.next_input = Some(Tensor::cat(vec![input.clone(), input], 0)); // both halves of the CFG batch
        }
        Some(VarStep {
            si,
            tokens: idx.reshape([b, pn, pn]),
            f_hat,
            raw_logits,
            guided_logits,
        })
    }

    /// Decodes the current `f_hat` to images in `[0, 1]` (a partial image before the end).
    pub fn image(&self, vae: &MsVqVae) -> Tensor<4> {
        (vae.decode(self.f_hat.clone()) + 1.0) * 0.5
    }
}

/// Samples images for `labels` (official `autoregressive_infer_cfg`); with `keep_steps` the result
/// also holds every scale's [`VarStep`].
///
/// # Shapes
/// - `labels`: `[B]` → `image`: `[B, C, H, W]` in `[0, 1]`
pub fn sample(
    var: &Var,
    vae: &MsVqVae,
    labels: Tensor<1, Int>,
    config: VarSamplerConfig,
    keep_steps: bool,
) -> VarSample {
    let mut run = VarSampling::new(var, vae, labels, config);
    let mut tokens = Vec::with_capacity(run.num_scales());
    let mut steps = Vec::new();
    while let Some(step) = run.step(var, vae) {
        let [b, p, _] = step.tokens.dims();
        tokens.push(step.tokens.clone().reshape([b, p * p]));
        if keep_steps {
            steps.push(step);
        }
    }
    VarSample {
        image: run.image(vae),
        f_hat: run.f_hat(),
        tokens,
        steps,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::generators::var::VarConfig;
    use crate::tokenizers::msvq::MsVqVaeConfig;

    /// A small tokenizer config: 16 codes, scales 1, 2, 4.
    pub(crate) fn vae_config() -> MsVqVaeConfig {
        MsVqVaeConfig::new()
            .with_vocab_size(16)
            .with_z_channels(4)
            .with_ch(8)
            .with_ch_mult(vec![1, 1])
            .with_num_res_blocks(1)
            .with_num_groups(4)
            .with_patch_nums(vec![1, 2, 4])
    }

    /// A small VAR for [`vae_config`]'s tokenizer, 4 classes, random weights.
    pub(crate) fn var(device: &Device) -> Var {
        VarConfig::new(vec![1, 2, 4], 16, 4, 3, 2, 32, 2).with_init_head(1.0).init(device)
    }

    fn models(device: &Device) -> (Var, MsVqVae) {
        device.seed(11);
        let vae = vae_config().init(device);
        (var(device), vae)
    }

    fn ints(t: Tensor<2, Int>) -> Vec<i64> {
        t.try_into_vec_as::<i64>().unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens() {
        let device = Device::flex();
        let (var, vae) = models(&device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2, 3], [3]), &device);
        let config = VarSamplerConfig::new()
            .with_top_k(8)
            .with_top_p(0.9)
            .with_seed(42);
        let a = sample(&var, &vae, labels.clone(), config.clone(), false);
        let b = sample(&var, &vae, labels.clone(), config.clone(), false);
        let c = sample(&var, &vae, labels, config.with_seed(43), false);
        let (a, b, c) = (
            ints(a.tokens[2].clone()),
            ints(b.tokens[2].clone()),
            ints(c.tokens[2].clone()),
        );
        assert_eq!(a, b);
        assert_ne!(
            a, c,
            "another seed should change some of the 48 last-scale tokens"
        );
    }

    #[test]
    fn top_k_one_is_argmax_of_the_guided_logits() {
        let device = Device::flex();
        let (var, vae) = models(&device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
        let run = sample(
            &var,
            &vae,
            labels,
            VarSamplerConfig::new().with_top_k(1).with_guidance(2.0),
            true,
        );
        for step in run.steps {
            let [b, p, _] = step.tokens.dims();
            let expected = step.guided_logits.argmax(2).reshape([b, p * p]);
            assert_eq!(
                ints(step.tokens.reshape([b, p * p])),
                ints(expected),
                "scale {}",
                step.si
            );
        }
        assert_eq!(run.image.dims(), [2, 3, 8, 8]);
    }

    /// The raster-order baseline: the cached token-by-token run must see exactly what teacher
    /// forcing sees, so its greedy tokens are the argmax of the teacher-forced logits of
    /// themselves (guidance 0: plain conditional logits).
    #[test]
    fn next_token_sampling_matches_teacher_forcing() {
        let device = Device::flex();
        let (_, vae) = models(&device);
        let var = VarConfig::new(vec![1, 2, 4], 16, 4, 3, 2, 32, 2)
            .with_init_head(1.0)
            .in_order(TokenOrder::NextToken)
            .init(&device);
        assert_eq!((var.order(), var.forward_passes()), (TokenOrder::NextToken, 21));
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        let run = sample(&var, &vae, labels.clone(), VarSamplerConfig::new().with_top_k(1).with_guidance(0.0), true);
        let tokens = Tensor::cat(run.tokens.clone(), 1); // [2, 21]
        let forced = var.forward_tokens(labels, tokens.clone());
        assert_eq!(ints(forced.argmax(2).reshape([2, 21])), ints(tokens.clone()));
        // And the tokens vary within a scale: each position is its own prediction.
        let last: Vec<i64> = ints(run.tokens[2].clone());
        assert!(last.iter().any(|&t| t != last[0]), "16 tokens of one scale all equal: {last:?}");
        assert_eq!(run.image.dims(), [2, 3, 8, 8]);
    }

    #[test]
    fn next_token_order_needs_a_one_token_first_scale() {
        let config = VarConfig::new(vec![2, 3], 16, 4, 3, 2, 32, 2).in_order(TokenOrder::NextToken);
        assert!(config.validate().unwrap_err().to_string().contains("first scale of 1 token"));
    }

    #[test]
    fn edit_masks_follow_the_official_resize_and_threshold() {
        // 8×8 image, left half kept → latent 4×4 rows [1, 1, 0, 0].
        let keep: Vec<f32> = (0..64).map(|i| if i % 8 < 4 { 1.0 } else { 0.0 }).collect();
        let masks = edit_keep_masks(&keep, 8, 8, &[1, 2, 3, 4]);
        assert_eq!(masks[0], vec![true], "the 1×1 scale always keeps the source");
        assert_eq!(masks[1], vec![true, false, true, false]);
        // pn = 3: the middle column interpolates to exactly 0.5, which is not kept.
        assert_eq!(masks[2], [true, false, false].repeat(3));
        assert_eq!(masks[3], [true, true, false, false].repeat(4));
        let none = edit_keep_masks(&[0.0; 64], 8, 8, &[1, 2, 4]);
        assert_eq!(none[0], vec![true]);
        assert!(none[1..].iter().flatten().all(|k| !k));
        assert!(edit_keep_masks(&[1.0; 36], 6, 6, &[1, 2, 4]).iter().flatten().all(|&k| k));
    }

    #[test]
    fn editing_keeps_the_source_codes_where_masked_and_samples_elsewhere() {
        let device = Device::flex();
        let (var, vae) = models(&device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
        let config = VarSamplerConfig::new().with_top_k(8).with_seed(1);
        let source = sample(&var, &vae, labels.clone(), config.clone(), false);
        let run = |keep: Vec<f32>, seed: u64| {
            let edit = VarEdit { tokens: source.tokens.clone(), keep, height: 4, width: 4 };
            let mut run = VarSampling::new(&var, &vae, labels.clone(), config.clone().with_seed(seed)).with_edit(edit);
            let mut tokens = Vec::new();
            while let Some(step) = run.step(&var, &vae) {
                let [b, p, _] = step.tokens.dims();
                tokens.push(ints(step.tokens.reshape([b, p * p])));
            }
            (tokens, run.image(&vae))
        };
        // Everything kept: the edit reproduces the source exactly, whatever the seed.
        let (tokens, image) = run(vec![1.0; 16], 99);
        for (si, t) in tokens.iter().enumerate() {
            assert_eq!(t, &ints(source.tokens[si].clone()), "scale {si}");
        }
        image.into_data().assert_approx_eq::<f32>(&source.image.clone().into_data(), burn::tensor::Tolerance::absolute(1e-5));
        // Left half kept: kept positions carry the source codes; a new seed changes the rest.
        let keep: Vec<f32> = (0..16).map(|i| if i % 4 < 2 { 1.0 } else { 0.0 }).collect();
        let masks = edit_keep_masks(&keep, 4, 4, &[1, 2, 4]);
        let (tokens, _) = run(keep, 7);
        let mut changed = 0;
        for (si, t) in tokens.iter().enumerate() {
            let src = ints(source.tokens[si].clone());
            let l = masks[si].len();
            for (i, (&got, &want)) in t.iter().zip(&src).enumerate() {
                if masks[si][i % l] {
                    assert_eq!(got, want, "scale {si} position {i} should keep the source");
                } else if got != want {
                    changed += 1;
                }
            }
        }
        assert!(changed > 0, "the free half should be re-sampled");
    }
}
