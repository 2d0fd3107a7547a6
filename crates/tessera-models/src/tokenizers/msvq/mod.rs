//! VAR's multi-scale residual VQ-VAE: image ⇄ one token map per scale (arXiv 2404.02905, §3.2,
//! Algorithms 1 and 2).
//! Official: FoundationVision/VAR @78b95394, `models/vqvae.py` (`VQVAE`), `models/basic_vae.py`
//! (`Encoder`, `Decoder`, LDM/taming style) and `models/quant.py` (`VectorQuantizer2`, `Phi*`).
//!
//! `f = quant_conv(encoder(image))` is quantised coarse to fine: at scale `k` the residual
//! `f_rest` is area-resized to `pn_k × pn_k`, each position takes its nearest codebook entry
//! (squared L2), the codes are bicubic-resized back to the latent size and passed through a
//! residual conv φ, and the result is added to `f_hat` and taken off `f_rest`. Decoding sums the
//! same φ(bicubic(codes)) over the scales and runs `decoder(post_quant_conv(f_hat))`.
//!
//! Differences from the official code:
//! - Sizes are configurable ([`MsVqVaeConfig`]): the official hard-codes `ch_mult = (1,1,2,2,4)`,
//!   `num_res_blocks = 2`, three input channels and GroupNorm(32); the defaults are those.
//! - Which φ each scale uses is a table (see [`phi_index`]), not a float argmin at run time.
//! - Fresh weights use burn's default (Kaiming-uniform) conv init; the official builder leaves the
//!   VAE convs uninitialised and always loads a checkpoint.
//! - No dropout (the official default is 0), no `all_to_max_scale=False` (marked experimental).
//! - The VQ training loss ([`MsVqVae::quantize_train`]) drops the codebook-usage EMA buffer
//!   (`ema_vocab_hit_SV`), which only feeds logging.

mod autoencoder;
mod quantizer;

use burn::nn::EmbeddingConfig;
use burn::nn::conv::Conv2d;
use burn::prelude::*;

use crate::Error;
use crate::resize::{resize_area, resize_bicubic};
use crate::weights::StateDict;
use autoencoder::{Decoder, Encoder, conv};
pub use quantizer::{PhiSharing, phi_index};
use quantizer::{Quantizer, to_rows};

/// Hyper-parameters of [`MsVqVae`]. Defaults are the released `vae_ch160v4096z32` tokenizer.
#[derive(Config, Debug)]
pub struct MsVqVaeConfig {
    /// Codebook size V (official `vocab_size`).
    #[config(default = 4096)]
    pub vocab_size: usize,
    /// Latent channels Cvae (official `z_channels`).
    #[config(default = 32)]
    pub z_channels: usize,
    /// Base width (official `ch`). Every level's width `ch * mult` must divide by `num_groups`.
    #[config(default = 160)]
    pub ch: usize,
    /// Width multiplier per level; `len - 1` halvings, so `(1,1,2,2,4)` is f16 (official, fixed).
    #[config(default = "vec![1, 1, 2, 2, 4]")]
    pub ch_mult: Vec<usize>,
    /// Res blocks per encoder level (the decoder has one more).
    #[config(default = 2)]
    pub num_res_blocks: usize,
    /// Image channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Self-attention after each res block of the lowest-resolution level.
    #[config(default = true)]
    pub using_sa: bool,
    /// Self-attention between the two middle res blocks.
    #[config(default = true)]
    pub using_mid_sa: bool,
    /// GroupNorm groups (official `Normalize`: 32, eps 1e-6).
    #[config(default = 32)]
    pub num_groups: usize,
    /// Kernel of `quant_conv` / `post_quant_conv`.
    #[config(default = 3)]
    pub quant_conv_ks: usize,
    /// φ(h) = (1 - r) h + r conv(h) with r = |quant_resi|; φ is the identity when r ≈ 0.
    #[config(default = 0.5)]
    pub quant_resi: f64,
    /// Sharing of the φ convs between scales.
    #[config(default = "PhiSharing::Partial(4)")]
    pub phi_sharing: PhiSharing,
    /// Side of each scale's token map, coarse to fine; the last is the latent side
    /// (image side / 2^(len(ch_mult) - 1)).
    #[config(default = "vec![1, 2, 3, 4, 5, 6, 8, 10, 13, 16]")]
    pub patch_nums: Vec<usize>,
    /// Cosine (normalised) nearest-code search instead of squared L2 (official default off).
    #[config(default = false)]
    pub using_znorm: bool,
    /// Commitment weight of the VQ loss.
    #[config(default = 0.25)]
    pub beta: f64,
}

impl MsVqVaeConfig {
    /// Floats per image of the largest buffer encoding or decoding allocates ([`crate::memory`]).
    pub fn largest_floats_per_image(&self) -> u64 {
        let side = self.image_size();
        crate::memory::conv_floats(self.ch_mult.iter().map(|m| self.ch * m), side, side, true)
    }

    /// Spatial reduction of the encoder, `2^(len(ch_mult) - 1)`.
    pub fn downsample(&self) -> usize {
        1 << (self.ch_mult.len().saturating_sub(1))
    }

    /// Image side this tokenizer expects: latent side (last patch num) × downsample.
    pub fn image_size(&self) -> usize {
        self.patch_nums.last().copied().unwrap_or(0) * self.downsample()
    }

    /// Checks the sizes once, before building anything.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if self.patch_nums.is_empty() || self.patch_nums.contains(&0) {
            return bad(format!(
                "patch_nums must be non-empty and positive, got {:?}",
                self.patch_nums
            ));
        }
        if self.ch_mult.is_empty() || self.num_res_blocks == 0 {
            return bad("ch_mult and num_res_blocks must be non-empty / positive".into());
        }
        if let Some(m) = self
            .ch_mult
            .iter()
            .find(|m| self.num_groups == 0 || !(self.ch * *m).is_multiple_of(self.num_groups))
        {
            return bad(format!(
                "level width {} is not a multiple of num_groups {}",
                self.ch * m,
                self.num_groups
            ));
        }
        if let PhiSharing::Partial(n) = self.phi_sharing
            && n < 2
        {
            return bad(format!(
                "PhiSharing::Partial needs at least 2 convs, got {n}"
            ));
        }
        self.validate_bounds()
    }

    /// Upper bounds on every size, and finite factors: a config read from a file (whose checksum
    /// anyone can recompute) must not ask for terabytes, or build a model that cannot run.
    fn validate_bounds(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(format!("VAR tokenizer: {m}")));
        let widest = self.ch_mult.iter().map(|m| self.ch.saturating_mul(*m)).max().unwrap_or(0);
        let phis = match self.phi_sharing {
            PhiSharing::Partial(n) => n,
            _ => 1,
        };
        let sizes = [
            ("vocab_size", self.vocab_size, 1 << 16),
            ("z_channels", self.z_channels, 4096),
            ("ch", self.ch, 4096),
            ("the widest level ch × ch_mult", widest, 4096),
            ("levels (ch_mult)", self.ch_mult.len(), 8),
            ("num_res_blocks", self.num_res_blocks, 16),
            ("num_groups", self.num_groups, 4096),
            ("quant_conv_ks", self.quant_conv_ks, 7),
            ("scales (patch_nums)", self.patch_nums.len(), 64),
            ("the largest scale (patch_nums)", self.patch_nums.iter().copied().max().unwrap_or(0), 256),
            ("φ convs (PhiSharing::Partial)", phis, 64),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return bad(format!("{name} must be in 1..={max}, got {value}"));
            }
        }
        if self.in_channels != 1 && self.in_channels != 3 {
            return bad(format!("in_channels must be 1 (grayscale) or 3 (RGB), got {}", self.in_channels));
        }
        if self.quant_conv_ks % 2 == 0 {
            return bad(format!("quant_conv_ks must be odd (it keeps the latent's size), got {}", self.quant_conv_ks));
        }
        if !(self.quant_resi.is_finite() && self.beta.is_finite() && self.beta >= 0.0) {
            return bad(format!("quant_resi and beta must be finite (beta non-negative), got {} and {}", self.quant_resi, self.beta));
        }
        Ok(())
    }

    /// A freshly initialised tokenizer (to train, or to load official weights into).
    ///
    /// # Panics
    /// On an inconsistent config (see [`MsVqVaeConfig::validate`]).
    pub fn init(&self, device: &Device) -> MsVqVae {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let z = self.z_channels;
        let phis = if self.quant_resi.abs() > 1e-6 {
            self.phi_sharing.count(self.patch_nums.len())
        } else {
            0
        };
        MsVqVae {
            encoder: self.init_encoder(device),
            decoder: self.init_decoder(device),
            quantize: Quantizer {
                embedding: EmbeddingConfig::new(self.vocab_size, z).init(device),
                quant_resi: (0..phis).map(|_| conv(z, z, 3, device)).collect(),
                phi_idx: phi_index(&self.phi_sharing, self.patch_nums.len()),
                share_quant_resi: self.phi_sharing.to_official(),
                resi_ratio: self.quant_resi.abs(),
                patch_nums: self.patch_nums.clone(),
                using_znorm: self.using_znorm,
                beta: self.beta,
            },
            quant_conv: conv(z, z, self.quant_conv_ks, device),
            post_quant_conv: conv(z, z, self.quant_conv_ks, device),
        }
    }

    /// A tokenizer with the weights of an official `VQVAE` `state_dict` (safetensors bytes).
    pub fn init_official(&self, bytes: Vec<u8>, device: &Device) -> crate::Result<MsVqVae> {
        self.validate()?;
        let mut sd = StateDict::from_bytes(bytes)?;
        let vae = self.init(device).load_official(&mut sd)?;
        sd.finish()?;
        Ok(vae)
    }
}

/// The quantizer's outputs for one batch of features.
#[derive(Debug, Clone)]
pub struct MultiScaleCodes {
    /// Token indices per scale, `[B, pn²]` each, row-major, smallest scale first.
    pub idx: Vec<Tensor<2, Int>>,
    /// Accumulated `f_hat` after each scale, `[B, Cvae, h, w]` each; the last is the final one.
    pub f_hat: Vec<Tensor<4>>,
}

/// What the VQ training step needs (official `VectorQuantizer2.forward`).
#[derive(Debug, Clone)]
pub struct VqTrainOutput {
    /// Straight-through `f_hat`: the value of `f_hat`, the gradient of `f`. `[B, Cvae, h, w]`
    pub f_hat: Tensor<4>,
    /// `mean over scales of beta·mse(sg(f_hat), f) + mse(f_hat, sg(f))`, `[1]`.
    pub vq_loss: Tensor<1>,
    /// Token indices per scale, `[B, pn²]` each.
    pub idx: Vec<Tensor<2, Int>>,
}

/// VAR's multi-scale VQ-VAE tokenizer (official `VQVAE`). Build it with [`MsVqVaeConfig::init`].
#[derive(Module, Debug)]
pub struct MsVqVae {
    encoder: Encoder,
    decoder: Decoder,
    quantize: Quantizer,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
}

impl MsVqVae {
    /// Side of each scale's token map, coarse to fine.
    pub fn patch_nums(&self) -> &[usize] {
        &self.quantize.patch_nums
    }

    /// Codebook size V.
    pub fn vocab_size(&self) -> usize {
        self.quantize.embedding.weight.lazy_shape().dims::<2>()[0]
    }

    /// Latent channels Cvae.
    pub fn z_channels(&self) -> usize {
        self.quantize.embedding.weight.lazy_shape().dims::<2>()[1]
    }

    /// Index of the φ conv used at each scale.
    pub fn phi_index(&self) -> &[usize] {
        &self.quantize.phi_idx
    }

    /// The codebook, `[V, Cvae]`.
    pub fn codebook(&self) -> Tensor<2> {
        self.quantize.embedding.weight.val()
    }

    /// Encoder output before `quant_conv`, for parity checks.
    pub fn encoder_forward(&self, image: Tensor<4>) -> Tensor<4> {
        self.encoder.forward(image)
    }

    /// The continuous feature that gets quantised, `f = quant_conv(encoder(image))`.
    ///
    /// # Shapes
    /// - `image`: `[B, in_channels, H, W]` in `[-1, 1]` → `[B, Cvae, H/f, W/f]`
    pub fn encode(&self, image: Tensor<4>) -> Tensor<4> {
        self.quant_conv.forward(self.encoder.forward(image))
    }

    /// Multi-scale residual quantisation of `f` (official `f_to_idxBl_or_fhat`, both outputs).
    ///
    /// # Shapes
    /// - `f`: `[B, Cvae, h, w]` with `h = w = patch_nums[-1]`
    ///
    /// # Panics
    /// If the latent side is not the last patch num.
    pub fn quantize(&self, f: Tensor<4>) -> MultiScaleCodes {
        let q = &self.quantize;
        let [b, _, h, w] = f.dims();
        let sn = q.patch_nums.len();
        assert_eq!(
            [h, w],
            [q.patch_nums[sn - 1]; 2],
            "latent side must be the last patch num"
        );
        let mut f_rest = f.clone();
        let mut f_hat = f.zeros_like();
        let mut codes = MultiScaleCodes {
            idx: Vec::with_capacity(sn),
            f_hat: Vec::with_capacity(sn),
        };
        for (si, &pn) in q.patch_nums.iter().enumerate() {
            let last = si == sn - 1;
            let z = if last {
                f_rest.clone()
            } else {
                resize_area(f_rest.clone(), [pn, pn])
            };
            let idx = q.nearest(to_rows(z)).reshape([b, pn * pn]);
            let mut code = q.embed(idx.clone()); // [B, Cvae, pn, pn]
            if !last {
                code = resize_bicubic(code, [h, w]);
            }
            let code = q.phi(si, code);
            f_hat = f_hat + code.clone();
            f_rest = f_rest - code;
            codes.idx.push(idx);
            codes.f_hat.push(f_hat.clone());
        }
        codes
    }

    /// Token indices per scale of an image (official `img_to_idxBl`).
    ///
    /// # Shapes
    /// - `image`: `[B, in_channels, H, W]` → `[B, pn²]` per scale
    pub fn image_to_idx(&self, image: Tensor<4>) -> Vec<Tensor<2, Int>> {
        self.quantize(self.encode(image)).idx
    }

    /// Accumulated `f_hat` after each scale, from the indices (official `embed_to_fhat`,
    /// `all_to_max_scale=True`).
    ///
    /// # Shapes
    /// - `idx`: `[B, pn²]` per scale (a prefix of the scales is fine) → `[B, Cvae, h, w]` per scale
    pub fn idx_to_fhat(&self, idx: &[Tensor<2, Int>]) -> Vec<Tensor<4>> {
        let q = &self.quantize;
        let sn = q.patch_nums.len();
        let side = q.patch_nums[sn - 1];
        let mut out = Vec::with_capacity(idx.len());
        let mut f_hat: Option<Tensor<4>> = None;
        for (si, idx) in idx.iter().enumerate() {
            let mut code = q.embed(idx.clone());
            if si < sn - 1 {
                code = resize_bicubic(code, [side, side]);
            }
            let code = q.phi(si, code);
            let next = match f_hat {
                Some(f) => f + code,
                None => code,
            };
            out.push(next.clone());
            f_hat = Some(next);
        }
        out
    }

    /// Decoder output before the clamp, `decoder(post_quant_conv(f_hat))`.
    pub fn decode_raw(&self, f_hat: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(self.post_quant_conv.forward(f_hat))
    }

    /// Image from an accumulated `f_hat`, clamped to `[-1, 1]` (official `fhat_to_img`).
    ///
    /// # Shapes
    /// - `f_hat`: `[B, Cvae, h, w]` → `[B, in_channels, h·f, w·f]`
    pub fn decode(&self, f_hat: Tensor<4>) -> Tensor<4> {
        self.decode_raw(f_hat).clamp(-1.0, 1.0)
    }

    /// Image from all scales' indices (official `idxBl_to_img(same_shape=True, last_one=True)`).
    pub fn idx_to_image(&self, idx: &[Tensor<2, Int>]) -> Tensor<4> {
        let f_hat = self.idx_to_fhat(idx).pop().expect("at least one scale");
        self.decode(f_hat)
    }

    /// Teacher-forcing input of the VAR transformer (official `idxBl_to_var_input`): after each
    /// scale but the last, the accumulated `f_hat` area-resized to the next scale, row-major.
    ///
    /// # Shapes
    /// - `idx`: `[B, pn²]` per scale → `[B, L - pn_1², Cvae]`
    ///
    /// # Panics
    /// Unless there is one index map per scale and at least two scales.
    pub fn idx_to_var_input(&self, idx: &[Tensor<2, Int>]) -> Tensor<3> {
        let q = &self.quantize;
        let sn = q.patch_nums.len();
        assert!(
            idx.len() == sn && sn > 1,
            "one index map per scale, at least two scales"
        );
        let side = q.patch_nums[sn - 1];
        let mut f_hat: Option<Tensor<4>> = None;
        let mut next_scales = Vec::with_capacity(sn - 1);
        for (si, idx) in idx.iter().enumerate().take(sn - 1) {
            let code = q.phi(si, resize_bicubic(q.embed(idx.clone()), [side, side]));
            let f = match f_hat {
                Some(f) => f + code,
                None => code,
            };
            let pn_next = q.patch_nums[si + 1];
            let [b, c, _, _] = f.dims();
            let next =
                resize_area(f.clone(), [pn_next, pn_next]).reshape([b, c, pn_next * pn_next]);
            next_scales.push(next.swap_dims(1, 2)); // [B, pn², Cvae]
            f_hat = Some(f);
        }
        Tensor::cat(next_scales, 1)
    }

    /// One sampling step (official `get_next_autoregressive_input`): adds the codes of scale `si`
    /// to `f_hat` and returns it with the next scale's input map (`f_hat` itself after the last).
    ///
    /// # Shapes
    /// - `f_hat`: `[B, Cvae, h, w]`, `codes`: `[B, Cvae, pn_si, pn_si]` →
    ///   (`[B, Cvae, h, w]`, `[B, Cvae, pn_{si+1}, pn_{si+1}]`)
    pub fn next_autoregressive_input(
        &self,
        si: usize,
        f_hat: Tensor<4>,
        codes: Tensor<4>,
    ) -> (Tensor<4>, Tensor<4>) {
        let q = &self.quantize;
        let sn = q.patch_nums.len();
        let side = q.patch_nums[sn - 1];
        if si != sn - 1 {
            let f_hat = f_hat + q.phi(si, resize_bicubic(codes, [side, side]));
            let pn = q.patch_nums[si + 1];
            let next = resize_area(f_hat.clone(), [pn, pn]);
            (f_hat, next)
        } else {
            let f_hat = f_hat + q.phi(si, codes);
            (f_hat.clone(), f_hat)
        }
    }

    /// Code vectors of one scale's indices.
    ///
    /// # Shapes
    /// - `idx`: `[B, pn²]` → `[B, Cvae, pn, pn]`
    pub fn embed_codes(&self, idx: Tensor<2, Int>) -> Tensor<4> {
        self.quantize.embed(idx)
    }

    /// Quantisation for VQ-VAE training (official `VectorQuantizer2.forward`): the nearest-code
    /// search runs without gradient, the codebook learns through `mse(f_hat, sg(f))` and the
    /// encoder through the commitment term and the straight-through `f_hat`.
    pub fn quantize_train(&self, f: Tensor<4>) -> VqTrainOutput {
        let q = &self.quantize;
        let [b, _, h, w] = f.dims();
        let sn = q.patch_nums.len();
        let f_no_grad = f.clone().detach();
        let mut f_rest = f_no_grad.clone();
        let mut f_hat = f_no_grad.zeros_like();
        let mut vq_loss = Tensor::<1>::zeros([1], &f.device());
        let mut idx_all = Vec::with_capacity(sn);
        for (si, &pn) in q.patch_nums.iter().enumerate() {
            let last = si == sn - 1;
            let z = if last {
                f_rest.clone()
            } else {
                resize_area(f_rest.clone(), [pn, pn])
            };
            let idx = q.nearest(to_rows(z)).reshape([b, pn * pn]);
            let mut code = q.embed(idx.clone());
            if !last {
                code = resize_bicubic(code, [h, w]);
            }
            let code = q.phi(si, code);
            f_hat = f_hat + code.clone();
            f_rest = f_rest - code.detach();
            let commit = (f_hat.clone().detach() - f.clone()).square().mean() * q.beta;
            let codebook = (f_hat.clone() - f_no_grad.clone()).square().mean();
            vq_loss = vq_loss + commit + codebook;
            idx_all.push(idx);
        }
        VqTrainOutput {
            f_hat: (f_hat.detach() - f_no_grad) + f,
            vq_loss: vq_loss / sn as f64,
            idx: idx_all,
        }
    }

    /// Loads an official `VQVAE` `state_dict` (names as in `models/vqvae.py`; φ convs under
    /// `quantize.quant_resi.qresi_ls.{i}`, `.qresi` or `.{i}` depending on the sharing).
    pub fn load_official(mut self, sd: &mut StateDict) -> crate::Result<Self> {
        self.encoder = self.encoder.load(sd, "encoder")?;
        self.decoder = self.decoder.load(sd, "decoder")?;
        self.quant_conv = sd.conv2d("quant_conv", self.quant_conv)?;
        self.post_quant_conv = sd.conv2d("post_quant_conv", self.post_quant_conv)?;
        let q = &mut self.quantize;
        q.embedding = sd.embedding("quantize.embedding", q.embedding.clone())?;
        sd.skip("quantize.ema_vocab_hit_SV");
        for (i, phi) in std::mem::take(&mut q.quant_resi).into_iter().enumerate() {
            let key = match q.share_quant_resi {
                0 => format!("quantize.quant_resi.{i}"), // PhiNonShared is a ModuleList
                1 => "quantize.quant_resi.qresi".to_string(), // PhiShared
                _ => format!("quantize.quant_resi.qresi_ls.{i}"), // PhiPartiallyShared
            };
            q.quant_resi.push(sd.conv2d(&key, phi)?);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    /// 32×32 images, downsample 4 → 8×8 latent, patch_nums (1, 2, 3, 4, 5, 6, 8), one channel.
    fn small_32px() -> MsVqVaeConfig {
        MsVqVaeConfig::new()
            .with_vocab_size(32)
            .with_z_channels(4)
            .with_ch(16)
            .with_ch_mult(vec![1, 2, 2])
            .with_num_res_blocks(1)
            .with_in_channels(1)
            .with_num_groups(8)
            .with_patch_nums(vec![1, 2, 3, 4, 5, 6, 8])
    }

    #[test]
    fn a_32px_tokenizer_with_an_8x8_latent_round_trips_shapes() {
        let device = Device::flex();
        device.seed(1);
        let config = small_32px();
        assert_eq!(config.image_size(), 32);
        let vae = config.init(&device);
        let image = Tensor::<4>::random([2, 1, 32, 32], Distribution::Uniform(-1.0, 1.0), &device);
        let f = vae.encode(image);
        assert_eq!(f.dims(), [2, 4, 8, 8]);
        let codes = vae.quantize(f.clone());
        let sizes: Vec<_> = codes.idx.iter().map(|i| i.dims()).collect();
        assert_eq!(
            sizes,
            vec![[2, 1], [2, 4], [2, 9], [2, 16], [2, 25], [2, 36], [2, 64]]
        );
        assert_eq!(vae.idx_to_var_input(&codes.idx).dims(), [2, 155 - 1, 4]);
        assert_eq!(vae.idx_to_image(&codes.idx).dims(), [2, 1, 32, 32]);
        // Decoding the indices rebuilds exactly the f_hat the encoder side accumulated.
        let from_idx = vae.idx_to_fhat(&codes.idx).pop().unwrap();
        let diff = (from_idx - codes.f_hat[6].clone())
            .abs()
            .max()
            .into_scalar::<f32>();
        assert!(diff < 1e-5, "{diff}");
        let train = vae.quantize_train(f);
        assert_eq!(train.f_hat.dims(), [2, 4, 8, 8]);
        assert!(train.vq_loss.into_scalar::<f32>().is_finite());
    }

    #[test]
    fn the_autoregressive_step_rebuilds_the_teacher_forcing_input() {
        let device = Device::flex();
        device.seed(2);
        let vae = small_32px().init(&device);
        let image = Tensor::<4>::random([1, 1, 32, 32], Distribution::Uniform(-1.0, 1.0), &device);
        let idx = vae.image_to_idx(image);
        let teacher = vae.idx_to_var_input(&idx);
        let mut f_hat = Tensor::<4>::zeros([1, 4, 8, 8], &device);
        let mut begin = 0;
        for (si, idx) in idx.iter().enumerate().take(6) {
            let (f, next) = vae.next_autoregressive_input(si, f_hat, vae.embed_codes(idx.clone()));
            f_hat = f;
            let [_, c, p, _] = next.dims();
            let next = next.reshape([1, c, p * p]).swap_dims(1, 2);
            let diff = (next - teacher.clone().narrow(1, begin, p * p))
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(diff < 1e-6, "scale {si}: {diff}");
            begin += p * p;
        }
    }
}
