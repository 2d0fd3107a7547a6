//! The equivariant column tokenizer: an image ⇄ one continuous token per column of pixels.
//!
//! Paper: Equivariant Image Modeling (arXiv 2503.18948), §3.2 and Table 7.
//! Official: drx-code/EquivariantModeling @4b15f32b, `tokenizer/models/tokenizer.py`
//! (`EquivariantTokenizer`: `encode`, `decode`, the `quant_layer` / `post_quant_layer` Conv1d's),
//! `tokenizer/modules/diffusionmodules/model.py` (`EquivariantTokenizerEncoder1D`, `…Decoder1D`,
//! `…SemanticDecoder1D`, `ResnetBlock`, `AttnBlock`, `DownsampleShuffleResidual`,
//! `UpsampleShuffleResidual`) and `tokenizer/modules/distributions/distributions.py`
//! (`GaussianDistribution`).
//!
//! ```text
//! image [B,C,H,W] in [-1,1]
//!   encoder: conv_in → per level: res blocks (+ attention where the height is in
//!            attn_resolutions), DownsampleShuffleResidual (not after the last level; (2,2) for the
//!            first len_down_scale levels, height-only (2,1) after) → mid: res, attn, res
//!            → GroupNorm → SiLU → conv_out → latent [B,Z,h,w]          (h = H/2^(L-1), w = W/f)
//!   columnize: [B,Z,h,w] → [B,w,Z·h], vector index z·h + y           (one vector per column)
//!   encoder1d, quant_layer: Conv1d k3 along the columns → token means [B,w,E]
//!   decode: post_quant_layer, decoder1d (Conv1d k3) → rasterize [B,Z,h,N] → conv_in → mid
//!           → per level, last first: res blocks (one more than the encoder's) (+ attention),
//!           UpsampleShuffleResidual (not at level 0) → GroupNorm → SiLU → conv_out → [B,C',H,N·f]
//! ```
//!
//! Every 3×3 conv and every Conv1d pads by reflection (PyTorch `padding_mode="reflect"`, the
//! paper's remedy for edge bias); every GroupNorm is GroupNorm(32, eps 1e-6). Everything is
//! convolutional along the width except the position-free single-head attention, which is global
//! over its feature map: N tokens decode to an image N·f pixels wide, whatever N (≥ 2) is.
//!
//! The resamplers add a parameter-free path to a learned one:
//! `DownsampleShuffleResidual(x) = pixel_unshuffle(conv3(x, C → C/r)) + avg_pool(x)` and
//! `UpsampleShuffleResidual(x) = pixel_shuffle(conv3(x, C → r·C)) + nearest(x)`, r = 4 for (2,2)
//! and 2 for the height-only (2,1) variant (the official writes the pool as an unshuffle then a mean
//! over each group of r channels and the nearest up-sampling as `repeat_interleave` then a shuffle).
//!
//! The posterior (`GaussianDistribution(moments, std)`) has no learned variance: the mode is the
//! token mean, a sample adds `s · ε` with one scale per sample `s ~ N(0, (std/0.8)²)` clamped to
//! `[-std, std]`, and its "KL" is the L2 penalty `0.5 Σ mean²` (see [`Posterior`]).
//!
//! The semantic decoder (training only: regressed onto DINOv2 features) maps a decoder feature
//! tapped at [`SemanticMap`] through its own res blocks. It is built only when configured, and
//! [`ColumnTokenizer::decode`] never runs it.
//!
//! Differences from the official code:
//! - One [`ColumnTokenizerConfig`] builds encoder, decoder, 1-D layers and the semantic decoder
//!   (the official passes one `ddconfig` to both 2-D halves). `len_down_scale` is one value: the
//!   official encoder and decoder default it differently (1 and 2) when the key is absent.
//! - No dropout (every official config uses 0; at inference it is the identity anyway).
//! - The semantic decoder builds `num_res_blocks` blocks per level, the ones its forward runs; the
//!   official builds one more per level, never used, whose weights [`ColumnTokenizer::load`] skips.
//! - No EMA copies (`LitEma`): [`ColumnTokenizer::load`] reads the live-module names.
//! - Sampling the posterior draws its noise from a seeded [`SplitMix64`] on the CPU (or takes it
//!   as tensors), never from a global RNG.
//! - Fresh weights ([`ColumnTokenizerConfig::init`]) use burn's defaults, which are PyTorch's
//!   (Kaiming-uniform with bound `1/√fan_in`, GroupNorm 1 and 0), as the official does.
//!
//! On wgpu devices the reflect-padded 3×3 convs, GroupNorm (+ SiLU), the (2,2) pixel shuffle and
//! the attention run on Tessera's WGSL kernels (tessera-kernels routes them, and falls back to
//! plain burn ops on other devices and under autodiff). Nothing here reads a tensor back.

use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;
use burn::tensor::ops::PadMode;

use tessera_kernels::{AttentionMask, attention, group_norm, pixel_shuffle};

use super::layers::{ResnetBlock, conv3_reflect};

use crate::Error;
use crate::rng::SplitMix64;
use crate::weights::StateDict;

/// Groups of every GroupNorm (official `Normalize`: `GroupNorm(32, eps=1e-6)`, fixed).
const GROUPS: usize = 32;
/// Largest channel count or image side [`ColumnTokenizerConfig::validate`] accepts.
const MAX_DIM: usize = 8192;
/// Most levels [`ColumnTokenizerConfig::validate`] accepts.
const MAX_LEVELS: usize = 8;
/// Most res blocks per level [`ColumnTokenizerConfig::validate`] accepts.
const MAX_RES_BLOCKS: usize = 16;

/// Which decoder feature the semantic decoder reads (official `semantic_map`).
#[derive(Config, Debug, PartialEq, Eq)]
pub enum SemanticMap {
    /// The output of the decoder's `conv_in` (official `"base"`, the class default).
    Base,
    /// The output of the decoder's middle (official `"mid"`).
    Mid,
    /// The lowest-resolution level's output, just before its up-sampling (official `"res"`, what
    /// the released config uses).
    Res,
}

/// The semantic decoder (official `EquivariantTokenizerSemanticDecoder1D`): res blocks from the
/// tapped decoder feature (`ch · ch_mult[0]` channels) to `out_ch` channels.
#[derive(Config, Debug, PartialEq)]
pub struct SemanticDecoderConfig {
    /// Base width (official `ch`); every width `ch · m` must be a multiple of 32.
    pub ch: usize,
    /// Width multiplier per level; level `i` maps `ch · ch_mult[i]` to `ch · ch_mult[i + 1]`
    /// (the last to `ch · (out_ch / ch)`).
    pub ch_mult: Vec<usize>,
    /// Output channels (official `out_ch`; 768 to match DINOv2 ViT-B/14).
    pub out_ch: usize,
    /// Res blocks run per level (official `num_res_blocks`).
    pub num_res_blocks: usize,
    /// Feature-map heights that get attention after each res block (official `attn_resolutions`).
    #[config(default = "Vec::new()")]
    pub attn_resolutions: Vec<usize>,
    /// Only decides where attention goes: the official starts its height count at
    /// `resolution / 2^(levels - 1)` (official `resolution`).
    #[config(default = 256)]
    pub resolution: usize,
    /// Levels that end in a (2,2) `DownsampleShuffleResidual` (official `downsample_scale`).
    #[config(default = 0)]
    pub downsample_scale: usize,
}

/// Hyper-parameters of [`ColumnTokenizer`]. Defaults are the official first-stage
/// `configs/first_stage/tokenizer_config.yaml` (256 px, 16 columns of 16 px, 256-d tokens), without
/// its semantic branch.
#[derive(Config, Debug, PartialEq)]
pub struct ColumnTokenizerConfig {
    /// Base width (official `ch`); every level width `ch · m` must be a multiple of 32.
    #[config(default = 128)]
    pub ch: usize,
    /// Width multiplier per level (official `ch_mult`); `len - 1` halvings of the height.
    #[config(default = "vec![1, 1, 2, 4, 4]")]
    pub ch_mult: Vec<usize>,
    /// Res blocks per encoder level; the decoder has one more per level (official `num_res_blocks`).
    #[config(default = 2)]
    pub num_res_blocks: usize,
    /// Feature-map heights that get attention after each res block (official `attn_resolutions`).
    #[config(default = "vec![16]")]
    pub attn_resolutions: Vec<usize>,
    /// Latent channels Z (official `z_channels`).
    #[config(default = 256)]
    pub z_channels: usize,
    /// Image height H (official `resolution`); images may be any multiple of the column width wide.
    #[config(default = 256)]
    pub resolution: usize,
    /// Image channels in (official `in_channels`).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Image channels out (official `out_ch`).
    #[config(default = 3)]
    pub out_ch: usize,
    /// Levels whose resampling also halves the width (official `len_down_scale`): a token covers
    /// `2^min(len_down_scale, levels - 1)` pixel columns.
    #[config(default = 4)]
    pub len_down_scale: usize,
    /// Token width E (official `embed_dim`).
    #[config(default = 256)]
    pub embed_dim: usize,
    /// Width of a column vector, `z_channels · latent height` (official `post_channels`).
    #[config(default = 4096)]
    pub post_channels: usize,
    /// Bound of the posterior's per-sample noise scale (official `std`).
    #[config(default = 2.5)]
    pub std: f64,
    /// The encoder's latent has `2 · z_channels` channels (official `double_enc`).
    #[config(default = false)]
    pub double_enc: bool,
    /// The decoder's base width when it differs from `ch` (official `decoder_ch`).
    #[config(default = "None")]
    pub decoder_ch: Option<usize>,
    /// Which decoder feature the semantic decoder reads (official `semantic_map`).
    #[config(default = "SemanticMap::Res")]
    pub semantic_map: SemanticMap,
    /// The semantic decoder, if any (official `sematicconfig`).
    #[config(default = "None")]
    pub semantic: Option<SemanticDecoderConfig>,
}

impl ColumnTokenizerConfig {
    /// Floats per image of the largest buffer encoding or decoding an image `width` pixels wide
    /// allocates ([`crate::memory`]; the width is not always halved per level, so it is kept).
    pub fn largest_floats_per_image_at(&self, width: usize) -> u64 {
        crate::memory::conv_floats(self.ch_mult.iter().map(|m| self.ch * m), self.resolution, width, false)
    }

    /// [`Self::largest_floats_per_image_at`] for the square images it trains on.
    pub fn largest_floats_per_image(&self) -> u64 {
        self.largest_floats_per_image_at(self.resolution)
    }

    /// The MNIST tokenizer: 32×32 grey images → 8 column tokens (4 px wide, full height) of 16.
    ///
    /// Three levels (32 → 16 → 8 high, the width halved twice) of 32, 32 and 64 channels, one res
    /// block per level (two in the decoder), attention at the 8×8 latent, Z = 8 so a column vector
    /// has 64 entries. About 130 M multiply-adds per image, half of them in the decoder's 32×32
    /// level; the 16×16 level stays at 32 channels because its up-sampling conv multiplies the
    /// width by 4. One image channel, as the MNIST data set serves them.
    pub fn mnist() -> Self {
        Self::new()
            .with_ch(32)
            .with_ch_mult(vec![1, 1, 2])
            .with_num_res_blocks(1)
            .with_attn_resolutions(vec![8])
            .with_z_channels(8)
            .with_resolution(32)
            .with_in_channels(1)
            .with_out_ch(1)
            .with_len_down_scale(2)
            .with_embed_dim(16)
            .with_post_channels(64)
    }

    /// The scenes tokenizer: 32×32 RGB → 8 column tokens of 32 (wider images → more tokens). The
    /// MNIST layout with three channels and twice the token width for colour.
    pub fn scenes() -> Self {
        Self::mnist().with_in_channels(3).with_out_ch(3).with_embed_dim(32)
    }

    /// Number of levels, `len(ch_mult)`.
    pub fn levels(&self) -> usize {
        self.ch_mult.len()
    }

    /// Height reduction of the encoder, `2^(levels - 1)`.
    pub fn height_downsample(&self) -> usize {
        1 << self.levels().saturating_sub(1).min(MAX_LEVELS)
    }

    /// Pixel columns per token, `2^min(len_down_scale, levels - 1)`.
    pub fn column_width(&self) -> usize {
        1 << self.len_down_scale.min(self.levels().saturating_sub(1)).min(MAX_LEVELS)
    }

    /// Height of the latent, `resolution / 2^(levels - 1)`.
    pub fn latent_height(&self) -> usize {
        self.resolution / self.height_downsample()
    }

    /// Tokens of an image `width` pixels wide (a multiple of [`Self::column_width`]).
    pub fn tokens_for_width(&self, width: usize) -> usize {
        width / self.column_width()
    }

    /// The encoder's latent channels: `z_channels`, doubled with `double_enc`.
    pub fn encoder_z(&self) -> usize {
        self.z_channels * if self.double_enc { 2 } else { 1 }
    }

    /// The decoder's base width (`decoder_ch`, else `ch`).
    pub fn decoder_width(&self) -> usize {
        self.decoder_ch.unwrap_or(self.ch)
    }

    /// Checks the sizes once, before building anything.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(format!("column tokenizer: {m}")));
        let levels = self.levels();
        if levels == 0 || levels > MAX_LEVELS {
            return bad(format!("ch_mult must have 1 to {MAX_LEVELS} levels, got {:?}", self.ch_mult));
        }
        for (name, base) in [("ch", self.ch), ("decoder_ch", self.decoder_width())] {
            for &m in &self.ch_mult {
                let width = base.saturating_mul(m);
                if width == 0 || !width.is_multiple_of(GROUPS) || width > MAX_DIM {
                    return bad(format!(
                        "every level width {name} × ch_mult must be a multiple of {GROUPS} \
                         (GroupNorm(32)) up to {MAX_DIM}, got {base} × {m}"
                    ));
                }
            }
        }
        if !(1..=MAX_RES_BLOCKS).contains(&self.num_res_blocks) {
            return bad(format!("num_res_blocks must be in 1..={MAX_RES_BLOCKS}, got {}", self.num_res_blocks));
        }
        for (name, v) in [
            ("z_channels", self.z_channels),
            ("in_channels", self.in_channels),
            ("out_ch", self.out_ch),
            ("embed_dim", self.embed_dim),
        ] {
            if v == 0 || v > MAX_DIM {
                return bad(format!("{name} must be in 1..={MAX_DIM}, got {v}"));
            }
        }
        let f = self.height_downsample();
        if self.resolution > MAX_DIM || !self.resolution.is_multiple_of(f) || self.resolution / f < 2 {
            return bad(format!(
                "resolution must be a multiple of the height reduction {f} (2^(levels - 1)) giving a \
                 latent at least 2 high (reflect padding), at most {MAX_DIM}; got {}",
                self.resolution
            ));
        }
        let column = self.z_channels * self.latent_height();
        if self.post_channels != column {
            return bad(format!(
                "post_channels must be z_channels × latent height = {} × {} = {column}, got {}",
                self.z_channels,
                self.latent_height(),
                self.post_channels
            ));
        }
        if !(self.std.is_finite() && self.std >= 0.0) {
            return bad(format!("std must be finite and non-negative, got {}", self.std));
        }
        if self.semantic.is_some() && self.semantic_map == SemanticMap::Res && levels < 2 {
            return bad("semantic_map `res` taps the feature before the first up-sampling: it needs at least 2 levels".into());
        }
        if let Some(s) = &self.semantic {
            self.validate_semantic(s)?;
        }
        Ok(())
    }

    fn validate_semantic(&self, s: &SemanticDecoderConfig) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(format!("column tokenizer, semantic decoder: {m}")));
        if s.ch_mult.is_empty() || s.ch_mult.len() > MAX_LEVELS {
            return bad(format!("ch_mult must have 1 to {MAX_LEVELS} levels, got {:?}", s.ch_mult));
        }
        if s.out_ch < s.ch || s.ch == 0 || s.out_ch > MAX_DIM {
            return bad(format!("out_ch must be in ch..={MAX_DIM} (its last width is ch × (out_ch / ch)), got ch {} out_ch {}", s.ch, s.out_ch));
        }
        for m in s.ch_mult.iter().copied().chain([s.out_ch / s.ch]) {
            let width = s.ch.saturating_mul(m);
            if width == 0 || !width.is_multiple_of(GROUPS) || width > MAX_DIM {
                return bad(format!(
                    "every width ch × ch_mult (and ch × (out_ch / ch)) must be a multiple of {GROUPS} \
                     up to {MAX_DIM}, got {} × {m}",
                    s.ch
                ));
            }
        }
        let tapped = self.decoder_width() * self.ch_mult[self.levels() - 1];
        if s.ch * s.ch_mult[0] != tapped {
            return bad(format!(
                "its input width ch × ch_mult[0] = {} must be the tapped decoder feature's {tapped}",
                s.ch * s.ch_mult[0]
            ));
        }
        if !(1..=MAX_RES_BLOCKS).contains(&s.num_res_blocks) {
            return bad(format!("num_res_blocks must be in 1..={MAX_RES_BLOCKS}, got {}", s.num_res_blocks));
        }
        let h = self.latent_height();
        let ds = s.downsample_scale;
        if ds > s.ch_mult.len() || !h.is_multiple_of(1 << ds) || h >> ds < 2 {
            return bad(format!(
                "downsample_scale {ds} must be at most its levels and halve the latent height {h} \
                 to at least 2"
            ));
        }
        Ok(())
    }

    /// A freshly initialised tokenizer, fit for training (or to load official weights into).
    ///
    /// # Panics
    /// On an inconsistent config (see [`ColumnTokenizerConfig::validate`]).
    pub fn init(&self, device: &Device) -> ColumnTokenizer {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let enc_column = self.encoder_z() * self.latent_height();
        ColumnTokenizer {
            encoder: self.init_encoder(device),
            quant_layer: conv1d(enc_column, self.embed_dim, device),
            post_quant_layer: conv1d(self.embed_dim, self.post_channels, device),
            decoder: self.init_decoder(device),
            semantic_decoder: self.semantic.as_ref().map(|s| s.init(device)),
            semantic_map: self.semantic_map.clone(),
            std: self.std,
        }
    }

    /// A tokenizer with the weights of an official `state_dict` (safetensors bytes; live-module
    /// names `encoder.*`, `decoder.*`, `semantic_decoder.*`, `quant_layer.*`, `post_quant_layer.*`).
    pub fn init_official(&self, bytes: Vec<u8>, device: &Device) -> crate::Result<ColumnTokenizer> {
        self.validate()?;
        let mut sd = StateDict::from_bytes(bytes)?;
        let model = self.init(device).load(&mut sd)?;
        sd.finish()?;
        Ok(model)
    }

    fn init_encoder(&self, device: &Device) -> Encoder {
        let levels = self.levels();
        let mut height = self.resolution;
        let mut block_in = self.ch;
        let down = (0..levels)
            .map(|i| {
                let block_out = self.ch * self.ch_mult[i];
                let block: Vec<_> = (0..self.num_res_blocks)
                    .map(|_| std::mem::replace(&mut block_in, block_out))
                    .map(|c_in| resnet_block(c_in, block_out, device))
                    .collect();
                let attn = attn_blocks(&self.attn_resolutions, height, block.len(), block_out, device);
                // Official: (2,2) for `i_level <= len_down_scale - 1`, else (2,1).
                let downsample = (i != levels - 1).then(|| {
                    height /= 2;
                    Resample::new(block_out, i >= self.len_down_scale, false, device)
                });
                DownLevel { block, attn, downsample }
            })
            .collect();
        let z = self.encoder_z();
        let column = z * self.latent_height();
        Encoder {
            conv_in: conv2d(self.in_channels, self.ch, 3, device),
            down,
            mid: Mid::new(block_in, device),
            norm_out: norm(block_in, device),
            conv_out: conv2d(block_in, z, 3, device),
            encoder1d: conv1d(column, column, device),
        }
    }

    fn init_decoder(&self, device: &Device) -> Decoder {
        let (levels, ch) = (self.levels(), self.decoder_width());
        let mut block_in = ch * self.ch_mult[levels - 1];
        let mid = Mid::new(block_in, device);
        let mut height = self.latent_height();
        // Built last level first, as the official, and stored by level index (0 = full size).
        let mut up: Vec<UpLevel> = (0..levels)
            .rev()
            .map(|i| {
                let block_out = ch * self.ch_mult[i];
                let block: Vec<_> = (0..=self.num_res_blocks)
                    .map(|_| std::mem::replace(&mut block_in, block_out))
                    .map(|c_in| resnet_block(c_in, block_out, device))
                    .collect();
                let attn = attn_blocks(&self.attn_resolutions, height, block.len(), block_out, device);
                // Official: (2,2) for `i_level <= len_down_scale`, mirroring the encoder.
                let upsample = (i != 0).then(|| {
                    height *= 2;
                    Resample::new(block_out, i > self.len_down_scale, true, device)
                });
                UpLevel { block, attn, upsample }
            })
            .collect();
        up.reverse();
        Decoder {
            decoder1d: conv1d(self.post_channels, self.post_channels, device),
            conv_in: conv2d(self.z_channels, ch * self.ch_mult[levels - 1], 3, device),
            mid,
            up,
            norm_out: norm(block_in, device),
            conv_out: conv2d(block_in, self.out_ch, 3, device),
            z_channels: self.z_channels,
        }
    }
}

impl SemanticDecoderConfig {
    fn init(&self, device: &Device) -> SemanticDecoder {
        let levels = self.ch_mult.len();
        let mut height = self.resolution >> (levels - 1);
        let mut block_in = self.ch * self.ch_mult[0];
        let down = (0..levels)
            .map(|i| {
                // Official `out_ch_mult = ch_mult + (out_ch // ch,)`.
                let m = self.ch_mult.get(i + 1).copied().unwrap_or(self.out_ch / self.ch);
                let block_out = self.ch * m;
                let block: Vec<_> = (0..self.num_res_blocks)
                    .map(|_| std::mem::replace(&mut block_in, block_out))
                    .map(|c_in| resnet_block(c_in, block_out, device))
                    .collect();
                let attn = attn_blocks(&self.attn_resolutions, height, block.len(), block_out, device);
                let downsample = (i < self.downsample_scale).then(|| {
                    height /= 2;
                    Resample::new(block_out, false, false, device)
                });
                DownLevel { block, attn, downsample }
            })
            .collect();
        SemanticDecoder {
            down,
            norm_out: norm(block_in, device),
            conv_out: conv2d(block_in, self.out_ch, 3, device),
        }
    }
}

/// The posterior of one batch of images (official `GaussianDistribution(moments, std)`): a
/// Gaussian around the token means whose only noise is one scalar scale per sample.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// Token means `[B, N, E]`.
    pub mean: Tensor<3>,
    /// Bound of the per-sample noise scale (official `std`, 2.5).
    pub std: f64,
}

impl Posterior {
    /// The token means (official `mode()`), what inference uses.
    pub fn mode(&self) -> Tensor<3> {
        self.mean.clone()
    }

    /// `mean + s · ε` with `s = clamp(scale_noise · std / 0.8, -std, std)` per sample (official
    /// `sample()`): `scale_noise` `[B]` and `eps` `[B, N, E]` standard normal.
    ///
    /// # Panics
    /// If `scale_noise` is not `[B]` or `eps` not the means' shape.
    pub fn sample_with(&self, scale_noise: Tensor<1>, eps: Tensor<3>) -> Tensor<3> {
        let [b, _, _] = self.mean.dims();
        assert_eq!(scale_noise.dims(), [b], "one noise scale per sample");
        assert_eq!(eps.dims(), self.mean.dims(), "eps must have the means' shape");
        let s = (scale_noise * (self.std / 0.8)).clamp(-self.std, self.std);
        self.mean.clone() + s.reshape([b, 1, 1]) * eps
    }

    /// [`Self::sample_with`] with standard normals drawn from `rng` ([`Self::noise`]) and
    /// uploaded: the same seed gives the same sample on every device.
    pub fn sample(&self, rng: &mut SplitMix64) -> Tensor<3> {
        let shape = self.mean.dims();
        let device = self.mean.device();
        let (scales, eps) = Self::noise(rng, shape);
        self.sample_with(
            Tensor::from_data(TensorData::new(scales, [shape[0]]), &device),
            Tensor::from_data(TensorData::new(eps, shape), &device),
        )
    }

    /// The noise [`Self::sample`] draws for means of `shape` `[B, N, E]`: the `B` scales first,
    /// then ε in row-major order, standard normal. Image `i`'s draws are `scales[i]` and
    /// `eps[i·N·E..(i + 1)·N·E]`.
    pub fn noise(rng: &mut SplitMix64, shape: [usize; 3]) -> (Vec<f32>, Vec<f32>) {
        let scales = normals(rng, shape[0]);
        (scales, normals(rng, shape.iter().product()))
    }

    /// The official `kl()`, an L2 penalty: `0.5 Σ mean²` per sample, `[B]`.
    pub fn kl(&self) -> Tensor<1> {
        let [b, _, _] = self.mean.dims();
        (self.mean.clone().square().sum_dim(2).sum_dim(1) * 0.5).reshape([b])
    }
}

/// `n` standard normals (Box–Muller on the generator's uniforms).
fn normals(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            // 1 - u is in (0, 1]: the logarithm stays finite.
            let u1 = 1.0 - rng.next_f32() as f64;
            let u2 = rng.next_f32() as f64;
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

/// Columnization: `[B, C, H, W]` → `[B, W, C·H]`, column `w`'s vector holds `x[c, h, w]` at
/// `c·H + h` (official `permute(0, 3, 1, 2).reshape(B, W, C·H)`).
pub fn columnize(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c * h, w]).swap_dims(1, 2)
}

/// Rasterization, the inverse of [`columnize`]: `[B, W, C·H]` → `[B, C, H, W]` for `channels` = C.
///
/// # Panics
/// If the vector width is not a multiple of `channels`.
pub fn rasterize(x: Tensor<3>, channels: usize) -> Tensor<4> {
    let [b, w, ch] = x.dims();
    assert!(channels > 0 && ch.is_multiple_of(channels), "{ch} is not C·H for C = {channels}");
    x.swap_dims(1, 2).reshape([b, channels, ch / channels, w])
}

/// The column tokenizer (official `EquivariantTokenizer`). Build it with
/// [`ColumnTokenizerConfig::init`]; official weights with [`ColumnTokenizer::load`].
#[derive(Module, Debug)]
pub struct ColumnTokenizer {
    encoder: Encoder,
    /// Conv1d k3 reflect, column vector → token mean.
    quant_layer: Conv1d,
    /// Conv1d k3 reflect, token → column vector.
    post_quant_layer: Conv1d,
    decoder: Decoder,
    semantic_decoder: Option<SemanticDecoder>,
    #[module(skip)]
    semantic_map: SemanticMap,
    std: f64,
}

impl ColumnTokenizer {
    /// Token means (the posterior's mode, what inference uses; official
    /// `encode(x).mode()`).
    ///
    /// # Shapes
    /// - `images`: `[B, C, H, W]` in [-1, 1], H the config's `resolution`, W a multiple of the
    ///   column width f with W/f ≥ 2 → tokens `[B, W/f, E]`
    ///
    /// # Panics
    /// On images of another height, channel count, or a width that is not such a multiple.
    pub fn encode(&self, images: Tensor<4>) -> Tensor<3> {
        self.posterior(images).mean
    }

    /// The posterior over tokens (official `encode`); see [`Posterior`].
    pub fn posterior(&self, images: Tensor<4>) -> Posterior {
        let columns = self.encoder_columns(self.encoder_latent(images));
        Posterior {
            mean: self.token_means(columns),
            std: self.std,
        }
    }

    /// `quant_layer`: column vectors `[B, w, Z·h]` (the official encoder's output) → token means
    /// `[B, w, E]`.
    pub fn token_means(&self, columns: Tensor<3>) -> Tensor<3> {
        conv1d_reflect(&self.quant_layer, columns)
    }

    /// The 2-D encoder up to `conv_out`: `[B, C, H, W]` → latent `[B, Z, H/2^(L-1), W/f]`.
    pub fn encoder_latent(&self, images: Tensor<4>) -> Tensor<4> {
        self.encoder.latent(images)
    }

    /// Columnization and `encoder1d` (the rest of the official encoder's forward):
    /// latent `[B, Z, h, w]` → column vectors `[B, w, Z·h]`.
    pub fn encoder_columns(&self, latent: Tensor<4>) -> Tensor<3> {
        conv1d_reflect(&self.encoder.encoder1d, columnize(latent))
    }

    /// Image from tokens (official `decode(z)[0]`), NOT clamped: the caller clamps to [-1, 1] for
    /// display. The semantic decoder does not run.
    ///
    /// # Shapes
    /// - `tokens`: `[B, N, E]`, N ≥ 2 → `[B, C', H, N·f]`
    pub fn decode(&self, tokens: Tensor<3>) -> Tensor<4> {
        self.decoder.forward(self.decoder_latent(tokens), None).0
    }

    /// [`Self::decode`] and the semantic decoder's output `[B, out, h', N']` when it is built
    /// (official `decode`).
    pub fn decode_with_semantic(&self, tokens: Tensor<3>) -> (Tensor<4>, Option<Tensor<4>>) {
        let tap = self.semantic_decoder.as_ref().map(|_| &self.semantic_map);
        let (image, tapped) = self.decoder.forward(self.decoder_latent(tokens), tap);
        let semantic = match (&self.semantic_decoder, tapped) {
            (Some(s), Some(t)) => Some(s.forward(t)),
            _ => None,
        };
        (image, semantic)
    }

    /// `post_quant_layer`, `decoder1d` and rasterization: tokens `[B, N, E]` → the decoder's 2-D
    /// input `[B, Z, h, N]`.
    pub fn decoder_latent(&self, tokens: Tensor<3>) -> Tensor<4> {
        let columns = conv1d_reflect(&self.post_quant_layer, tokens);
        let columns = conv1d_reflect(&self.decoder.decoder1d, columns);
        rasterize(columns, self.decoder.z_channels)
    }

    /// The bound of the posterior's per-sample noise scale ([`Posterior::std`]).
    pub fn posterior_std(&self) -> f64 {
        self.std
    }

    /// Token width E.
    pub fn embed_dim(&self) -> usize {
        self.quant_layer.weight.lazy_shape().dims::<3>()[0]
    }

    /// Whether the semantic decoder is built.
    pub fn has_semantic_decoder(&self) -> bool {
        self.semantic_decoder.is_some()
    }

    /// Loads an official `state_dict` (live-module names as `EquivariantTokenizer`'s). The semantic
    /// decoder's extra, never-run block per level (and its attention) is skipped.
    pub fn load(mut self, sd: &mut StateDict) -> crate::Result<Self> {
        self.encoder = self.encoder.load(sd, "encoder")?;
        self.quant_layer = load_conv1d(sd, "quant_layer", self.quant_layer)?;
        self.post_quant_layer = load_conv1d(sd, "post_quant_layer", self.post_quant_layer)?;
        self.decoder = self.decoder.load(sd, "decoder")?;
        if let Some(s) = self.semantic_decoder.take() {
            self.semantic_decoder = Some(s.load(sd, "semantic_decoder")?);
        }
        Ok(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Layers.

/// GroupNorm, then SiLU if `act` (official `Normalize` + `nonlinearity`).
fn norm_act(norm: &GroupNorm, x: Tensor<4>, act: bool) -> Tensor<4> {
    match (&norm.gamma, &norm.beta) {
        (Some(g), Some(b)) => group_norm(x, g.val(), b.val(), norm.num_groups, norm.epsilon as f32, act),
        _ if act => silu(norm.forward(x)),
        _ => norm.forward(x),
    }
}

/// Conv1d k3 along the tokens with reflect padding 1: `[B, N, Cin]` → `[B, N, Cout]`, N ≥ 2.
fn conv1d_reflect(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    let x = x.swap_dims(1, 2).pad([(1, 1)], PadMode::Reflect);
    conv.forward(x).swap_dims(1, 2)
}

/// k×k conv, stride 1, no built-in padding (3×3 ones go through [`conv3`]).
fn conv2d(c_in: usize, c_out: usize, k: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [k, k]).init(device)
}

/// Conv1d k3, no built-in padding (see [`conv1d_reflect`]).
fn conv1d(c_in: usize, c_out: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(c_in, c_out, 3).init(device)
}

/// GroupNorm(32, eps 1e-6, affine).
fn norm(channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(GROUPS, channels).with_epsilon(1e-6).init(device)
}

/// `{p}.weight` `(out, in, k)` and `{p}.bias`.
fn load_conv1d(sd: &mut StateDict, p: &str, mut conv: Conv1d) -> crate::Result<Conv1d> {
    conv.weight = sd.param(&format!("{p}.weight"), conv.weight)?;
    if let Some(b) = conv.bias.take() {
        conv.bias = Some(sd.param(&format!("{p}.bias"), b)?);
    }
    Ok(conv)
}

/// The LDM res block (official `ResnetBlock`, `temb_channels = 0`): GN → SiLU → conv3 → GN →
/// SiLU → conv3, plus the input, through a 1×1 `nin_shortcut` (with bias) when the width changes;
/// reflect padding.
fn resnet_block(c_in: usize, c_out: usize, device: &Device) -> ResnetBlock {
    ResnetBlock {
        norm1: norm(c_in, device),
        conv1: conv2d(c_in, c_out, 3, device),
        norm2: norm(c_out, device),
        conv2: conv2d(c_out, c_out, 3, device),
        nin_shortcut: (c_in != c_out).then(|| conv2d(c_in, c_out, 1, device)),
        shortcut_on_output: false,
        reflect: true,
    }
}

/// Single-head self-attention over every position of the feature map (official `AttnBlock`):
/// GN (no SiLU), 1×1 q/k/v, softmax(q kᵀ / √C) v, 1×1 `proj_out`, plus the input. No positions.
#[derive(Module, Debug)]
struct AttnBlock {
    norm: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
}

impl AttnBlock {
    fn new(c: usize, device: &Device) -> Self {
        Self {
            norm: norm(c, device),
            q: conv2d(c, c, 1, device),
            k: conv2d(c, c, 1, device),
            v: conv2d(c, c, 1, device),
            proj_out: conv2d(c, c, 1, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let hn = norm_act(&self.norm, x.clone(), false);
        // [B, C, H, W] → one head of H·W positions, [B, 1, H·W, C].
        let heads = |t: Tensor<4>| t.reshape([b, 1, c, h * w]).swap_dims(2, 3);
        let (q, k, v) = (heads(self.q.forward(hn.clone())), heads(self.k.forward(hn.clone())), heads(self.v.forward(hn)));
        let out = attention(q, k, v, &AttentionMask::None, (c as f32).powf(-0.5));
        x + self.proj_out.forward(out.swap_dims(2, 3).reshape([b, c, h, w]))
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.norm = sd.group_norm(&format!("{p}.norm"), self.norm)?;
        self.q = sd.conv2d(&format!("{p}.q"), self.q)?;
        self.k = sd.conv2d(&format!("{p}.k"), self.k)?;
        self.v = sd.conv2d(&format!("{p}.v"), self.v)?;
        self.proj_out = sd.conv2d(&format!("{p}.proj_out"), self.proj_out)?;
        Ok(self)
    }
}

/// `len` attention blocks of width `c` if `height` is in `resolutions`, else none (official: one
/// per res block, appended where `curr_res in attn_resolutions`).
fn attn_blocks(resolutions: &[usize], height: usize, len: usize, c: usize, device: &Device) -> Vec<AttnBlock> {
    if resolutions.contains(&height) {
        (0..len).map(|_| AttnBlock::new(c, device)).collect()
    } else {
        Vec::new()
    }
}

/// `DownsampleShuffleResidual` / `UpsampleShuffleResidual`: a learned conv3 + pixel (un)shuffle
/// plus the parameter-free average pooling / nearest up-sampling. Halves (doubles) the height, and
/// the width unless `height_only` (the official stride (2,1)). Official weights: `{p}.conv.conv`.
#[derive(Module, Debug)]
struct Resample {
    /// Down: C → C/r; up: C → r·C (r = 4, or 2 when `height_only`).
    conv: Conv2d,
    height_only: bool,
    up: bool,
}

impl Resample {
    fn new(c: usize, height_only: bool, up: bool, device: &Device) -> Self {
        let r = if height_only { 2 } else { 4 };
        let c_out = if up { c * r } else { c / r };
        Self { conv: conv2d(c, c_out, 3, device), height_only, up }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let fw = if self.height_only { 1 } else { 2 };
        if self.up {
            shuffle(conv3_reflect(&self.conv, x.clone()), fw) + nearest(x, fw)
        } else {
            unshuffle(conv3_reflect(&self.conv, x.clone()), fw) + avg_pool(x, fw)
        }
    }
}

/// Depth to space by 2 in height and `fw` in width (official `PixelShuffle`, torch's layout).
fn shuffle(x: Tensor<4>, fw: usize) -> Tensor<4> {
    if fw == 2 {
        return pixel_shuffle(x, 2);
    }
    let [b, c, h, w] = x.dims();
    let c = c / (2 * fw);
    x.reshape([b, c, 2, fw, h, w]).permute([0, 1, 4, 2, 5, 3]).reshape([b, c, 2 * h, fw * w])
}

/// Space to depth by 2 in height and `fw` in width (official `PixelUnshuffle`): channel
/// `c·2·fw + dy·fw + dx`.
fn unshuffle(x: Tensor<4>, fw: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / fw, fw])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, c * 2 * fw, h / 2, w / fw])
}

/// Mean over each 2 × `fw` block (the official unshuffle-then-mean residual).
fn avg_pool(x: Tensor<4>, fw: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / fw, fw]).mean_dim(5).mean_dim(3).reshape([b, c, h / 2, w / fw])
}

/// Nearest up-sampling by 2 in height and `fw` in width (the official `repeat_interleave` then
/// shuffle residual).
fn nearest(x: Tensor<4>, fw: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, fw]).reshape([b, c, 2 * h, fw * w])
}

// ---------------------------------------------------------------------------------------------
// Encoder, decoder, semantic decoder.

/// One encoder (or semantic decoder) level: res blocks, each followed by its attention block if
/// the level has them, then the resampler unless it is the last level.
#[derive(Module, Debug)]
struct DownLevel {
    block: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    downsample: Option<Resample>,
}

impl DownLevel {
    fn forward(&self, mut h: Tensor<4>) -> Tensor<4> {
        h = run_blocks(&self.block, &self.attn, h);
        match &self.downsample {
            Some(d) => d.forward(h),
            None => h,
        }
    }

    /// `{p}.block.{j}`, `{p}.attn.{j}`, `{p}.downsample.conv.conv`.
    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.block = load_indexed(self.block, |b, j| b.load(sd, &format!("{p}.block.{j}")))?;
        self.attn = load_indexed(self.attn, |a, j| a.load(sd, &format!("{p}.attn.{j}")))?;
        if let Some(mut d) = self.downsample.take() {
            d.conv = sd.conv2d(&format!("{p}.downsample.conv.conv"), d.conv)?;
            self.downsample = Some(d);
        }
        Ok(self)
    }
}

/// Each res block, then its attention block when there is one.
fn run_blocks(blocks: &[ResnetBlock], attn: &[AttnBlock], mut h: Tensor<4>) -> Tensor<4> {
    for (j, block) in blocks.iter().enumerate() {
        h = block.forward(h);
        if let Some(a) = attn.get(j) {
            h = a.forward(h);
        }
    }
    h
}

fn load_indexed<T>(items: Vec<T>, mut load: impl FnMut(T, usize) -> crate::Result<T>) -> crate::Result<Vec<T>> {
    items.into_iter().enumerate().map(|(j, t)| load(t, j)).collect()
}

/// The middle: res, attention, res (official `mid.block_1`, `mid.attn_1`, `mid.block_2`).
#[derive(Module, Debug)]
struct Mid {
    block_1: ResnetBlock,
    attn_1: AttnBlock,
    block_2: ResnetBlock,
}

impl Mid {
    fn new(c: usize, device: &Device) -> Self {
        Self {
            block_1: resnet_block(c, c, device),
            attn_1: AttnBlock::new(c, device),
            block_2: resnet_block(c, c, device),
        }
    }

    fn forward(&self, h: Tensor<4>) -> Tensor<4> {
        self.block_2.forward(self.attn_1.forward(self.block_1.forward(h)))
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.block_1 = self.block_1.load(sd, &format!("{p}.block_1"))?;
        self.attn_1 = self.attn_1.load(sd, &format!("{p}.attn_1"))?;
        self.block_2 = self.block_2.load(sd, &format!("{p}.block_2"))?;
        Ok(self)
    }
}

/// Official `EquivariantTokenizerEncoder1D`; its `encoder1d` runs in
/// [`ColumnTokenizer::encoder_columns`].
#[derive(Module, Debug)]
struct Encoder {
    conv_in: Conv2d,
    down: Vec<DownLevel>,
    mid: Mid,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    /// Conv1d k3 reflect over the column vectors, Z·h → Z·h.
    encoder1d: Conv1d,
}

impl Encoder {
    fn latent(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = conv3_reflect(&self.conv_in, x);
        for level in &self.down {
            h = level.forward(h);
        }
        let h = self.mid.forward(h);
        conv3_reflect(&self.conv_out, norm_act(&self.norm_out, h, true))
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.conv_in = sd.conv2d(&format!("{p}.conv_in"), self.conv_in)?;
        self.down = load_indexed(self.down, |l, i| l.load(sd, &format!("{p}.down.{i}")))?;
        self.mid = self.mid.load(sd, &format!("{p}.mid"))?;
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        self.encoder1d = load_conv1d(sd, &format!("{p}.encoder1d"), self.encoder1d)?;
        Ok(self)
    }
}

/// One decoder level: `num_res_blocks + 1` res blocks (with attention where configured), then
/// the up-sampler unless it is level 0.
#[derive(Module, Debug)]
struct UpLevel {
    block: Vec<ResnetBlock>,
    attn: Vec<AttnBlock>,
    upsample: Option<Resample>,
}

/// Official `EquivariantTokenizerDecoder1D`; its `decoder1d` and the rasterization run in
/// [`ColumnTokenizer::decoder_latent`].
#[derive(Module, Debug)]
struct Decoder {
    /// Conv1d k3 reflect over the column vectors, Z·h → Z·h.
    decoder1d: Conv1d,
    conv_in: Conv2d,
    mid: Mid,
    /// Indexed by level (0 = full size), run from the last level down.
    up: Vec<UpLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
    z_channels: usize,
}

impl Decoder {
    /// Image `[B, C', H, W]` from the latent `[B, Z, h, w]`, and the feature tapped at `tap` for
    /// the semantic decoder (none when `tap` is `None`).
    fn forward(&self, z: Tensor<4>, tap: Option<&SemanticMap>) -> (Tensor<4>, Option<Tensor<4>>) {
        let mut tapped = None;
        let mut h = conv3_reflect(&self.conv_in, z);
        if tap == Some(&SemanticMap::Base) {
            tapped = Some(h.clone());
        }
        h = self.mid.forward(h);
        if tap == Some(&SemanticMap::Mid) {
            tapped = Some(h.clone());
        }
        let last = self.up.len() - 1;
        for (i, level) in self.up.iter().enumerate().rev() {
            h = run_blocks(&level.block, &level.attn, h);
            if let Some(up) = &level.upsample {
                if i == last && tap == Some(&SemanticMap::Res) {
                    tapped = Some(h.clone());
                }
                h = up.forward(h);
            }
        }
        (conv3_reflect(&self.conv_out, norm_act(&self.norm_out, h, true)), tapped)
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.decoder1d = load_conv1d(sd, &format!("{p}.decoder1d"), self.decoder1d)?;
        self.conv_in = sd.conv2d(&format!("{p}.conv_in"), self.conv_in)?;
        self.mid = self.mid.load(sd, &format!("{p}.mid"))?;
        for (i, level) in self.up.iter_mut().enumerate() {
            let q = format!("{p}.up.{i}");
            level.block = load_indexed(std::mem::take(&mut level.block), |b, j| b.load(sd, &format!("{q}.block.{j}")))?;
            level.attn = load_indexed(std::mem::take(&mut level.attn), |a, j| a.load(sd, &format!("{q}.attn.{j}")))?;
            if let Some(mut u) = level.upsample.take() {
                u.conv = sd.conv2d(&format!("{q}.upsample.conv.conv"), u.conv)?;
                level.upsample = Some(u);
            }
        }
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        Ok(self)
    }
}

/// Official `EquivariantTokenizerSemanticDecoder1D` (only the blocks its forward runs).
#[derive(Module, Debug)]
struct SemanticDecoder {
    down: Vec<DownLevel>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl SemanticDecoder {
    fn forward(&self, mut h: Tensor<4>) -> Tensor<4> {
        for level in &self.down {
            h = level.forward(h);
        }
        conv3_reflect(&self.conv_out, norm_act(&self.norm_out, h, true))
    }

    /// Loads the blocks it runs and skips level `i`'s never-run `block.{n}` / `attn.{n}`,
    /// n = `num_res_blocks` (the official builds them; they are in every checkpoint).
    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        for (i, level) in self.down.iter().enumerate() {
            let n = level.block.len();
            let unused = [format!("{p}.down.{i}.block.{n}."), format!("{p}.down.{i}.attn.{n}.")];
            let keys: Vec<String> = sd.keys().filter(|k| unused.iter().any(|u| k.starts_with(u.as_str()))).map(str::to_string).collect();
            for key in keys {
                sd.skip(&key);
            }
        }
        self.down = load_indexed(self.down, |l, i| l.load(sd, &format!("{p}.down.{i}")))?;
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    /// 16 px high, three levels of 32 channels, only the first halving the width: a token is 2
    /// columns wide, the latent 4 high, and the decoder has one (2,2) and one (2,1) up-sampler.
    fn small() -> ColumnTokenizerConfig {
        ColumnTokenizerConfig::new()
            .with_ch(32)
            .with_ch_mult(vec![1, 1, 1])
            .with_num_res_blocks(1)
            .with_attn_resolutions(vec![4])
            .with_z_channels(4)
            .with_resolution(16)
            .with_len_down_scale(1)
            .with_embed_dim(6)
            .with_post_channels(16)
    }

    #[test]
    fn twice_the_tokens_decode_to_twice_the_width() {
        let device = Device::flex();
        device.seed(1);
        let config = ColumnTokenizerConfig::mnist();
        config.validate().unwrap();
        assert_eq!((config.column_width(), config.latent_height(), config.tokens_for_width(32)), (4, 8, 8));
        let tok = config.init(&device);
        let tokens = Tensor::<3>::random([2, 3, 16], Distribution::Normal(0.0, 1.0), &device);
        assert_eq!(tok.decode(tokens.clone()).dims(), [2, 1, 32, 12]);
        assert_eq!(tok.decode(Tensor::cat(vec![tokens.clone(), tokens], 1)).dims(), [2, 1, 32, 24]);
        let images = Tensor::<4>::random([2, 1, 32, 40], Distribution::Uniform(-1.0, 1.0), &device);
        assert_eq!(tok.encode(images).dims(), [2, 10, 16]);
    }

    #[test]
    fn height_only_levels_keep_the_width() {
        let device = Device::flex();
        device.seed(2);
        let config = small();
        assert_eq!((config.column_width(), config.latent_height()), (2, 4));
        let tok = config.init(&device);
        let images = Tensor::<4>::random([1, 3, 16, 12], Distribution::Uniform(-1.0, 1.0), &device);
        let latent = tok.encoder_latent(images.clone());
        assert_eq!(latent.dims(), [1, 4, 4, 6]);
        let tokens = tok.encode(images);
        assert_eq!(tokens.dims(), [1, 6, 6]);
        assert_eq!(tok.decoder_latent(tokens.clone()).dims(), [1, 4, 4, 6]);
        assert_eq!(tok.decode(tokens).dims(), [1, 3, 16, 12]);
    }

    #[test]
    fn columnization_puts_channel_c_row_h_at_c_times_h_plus_h() {
        let device = Device::flex();
        let (b, c, h, w) = (2, 3, 4, 5);
        let x: Vec<f32> = (0..b * c * h * w).map(|i| i as f32).collect();
        let image = Tensor::<4>::from_data(TensorData::new(x.clone(), [b, c, h, w]), &device);
        let columns = columnize(image.clone());
        assert_eq!(columns.dims(), [b, w, c * h]);
        let got = values(columns.clone());
        for (bi, ci, hi, wi) in (0..b).flat_map(|bi| (0..c).flat_map(move |ci| (0..h).flat_map(move |hi| (0..w).map(move |wi| (bi, ci, hi, wi))))) {
            let want = x[((bi * c + ci) * h + hi) * w + wi];
            assert_eq!(got[(bi * w + wi) * c * h + ci * h + hi], want);
        }
        assert_eq!(values(rasterize(columns, c)), x);
    }

    #[test]
    fn reflect_conv1d_matches_a_hand_computation() {
        let device = Device::flex();
        let mut conv = conv1d(1, 1, &device);
        conv.weight = Param::from_tensor(Tensor::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0], [1, 1, 3]), &device));
        conv.bias = Some(Param::from_tensor(Tensor::from_data(TensorData::new(vec![0.5f32], [1]), &device)));
        let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 4, 1]), &device);
        // Reflect-padded [2, 1, 2, 3, 4, 3]; y[i] = p[i] + 2 p[i+1] + 3 p[i+2] + 0.5.
        assert_eq!(values(conv1d_reflect(&conv, x)), vec![10.5, 14.5, 20.5, 20.5]);
    }

    #[test]
    fn resamplers_without_their_conv_are_average_pooling_and_nearest_upsampling() {
        let device = Device::flex();
        device.seed(3);
        let x = Tensor::<4>::random([1, 32, 4, 6], Distribution::Normal(0.0, 1.0), &device);
        let zero = |mut r: Resample| {
            r.conv.weight = Param::from_tensor(r.conv.weight.val().zeros_like());
            r.conv.bias = r.conv.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
            r
        };
        let at = |t: &[f32], c: usize, y: usize, xw: usize, w: usize, h: usize| t[(c * h + y) * w + xw];
        let xs = values(x.clone());

        let down = zero(Resample::new(32, false, false, &device)).forward(x.clone());
        assert_eq!(down.dims(), [1, 32, 2, 3]);
        let d = values(down);
        let want = (at(&xs, 5, 2, 2, 6, 4) + at(&xs, 5, 2, 3, 6, 4) + at(&xs, 5, 3, 2, 6, 4) + at(&xs, 5, 3, 3, 6, 4)) / 4.0;
        assert!((at(&d, 5, 1, 1, 3, 2) - want).abs() < 1e-6);

        let down = zero(Resample::new(32, true, false, &device)).forward(x.clone());
        assert_eq!(down.dims(), [1, 32, 2, 6]);
        let want = (at(&xs, 7, 0, 4, 6, 4) + at(&xs, 7, 1, 4, 6, 4)) / 2.0;
        assert!((at(&values(down), 7, 0, 4, 6, 2) - want).abs() < 1e-6);

        let up = zero(Resample::new(32, false, true, &device)).forward(x.clone());
        assert_eq!(up.dims(), [1, 32, 8, 12]);
        assert_eq!(at(&values(up), 9, 5, 7, 12, 8), at(&xs, 9, 2, 3, 6, 4));
        let up = zero(Resample::new(32, true, true, &device)).forward(x);
        assert_eq!(up.dims(), [1, 32, 8, 6]);
        assert_eq!(at(&values(up), 9, 5, 3, 6, 8), at(&xs, 9, 2, 3, 6, 4));
    }

    #[test]
    fn pixel_unshuffle_inverts_the_shuffle_in_both_variants() {
        let device = Device::flex();
        device.seed(4);
        let x = Tensor::<4>::random([2, 8, 3, 5], Distribution::Normal(0.0, 1.0), &device);
        for fw in [1, 2] {
            let up = shuffle(x.clone(), fw);
            assert_eq!(up.dims(), [2, 8 / (2 * fw), 6, 5 * fw]);
            assert_eq!(values(unshuffle(up, fw)), values(x.clone()));
        }
        // torch.pixel_shuffle's layout: out[c, 2y + dy, 2x + dx] = in[4c + 2dy + dx, y, x].
        let s = values(shuffle(x.clone(), 2));
        let xs = values(x);
        let (c, y, dy, xw, dx) = (1, 1, 1, 3, 0);
        let out = (c * 6 + 2 * y + dy) * 10 + 2 * xw + dx;
        assert_eq!(s[out], xs[((4 * c + 2 * dy + dx) * 3 + y) * 5 + xw]);
    }

    #[test]
    fn posterior_samples_are_clamped_seeded_and_the_kl_is_an_l2_penalty() {
        let device = Device::flex();
        let mean = Tensor::<3>::from_data(TensorData::new(vec![1.0f32, -2.0, 0.5, 3.0], [2, 1, 2]), &device);
        let post = Posterior { mean: mean.clone(), std: 2.5 };
        assert_eq!(values(post.kl()), vec![2.5, 4.625]);
        assert_eq!(values(post.mode()), values(mean.clone()));
        // Scales 100 and -0.4 → clamped 2.5 and -0.4 · 2.5 / 0.8 = -1.25.
        let noise = Tensor::<1>::from_data(TensorData::new(vec![100.0f32, -0.4], [2]), &device);
        let s = values(post.sample_with(noise, mean.ones_like()));
        let want = [3.5, 0.5, -0.75, 1.75];
        assert!(s.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{s:?}");
        let draw = |seed| values(post.sample(&mut SplitMix64::new(seed)));
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let n = normals(&mut SplitMix64::new(1), 20_000);
        let m = n.iter().sum::<f32>() / n.len() as f32;
        let v = n.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / n.len() as f32;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "mean {m} var {v}");
    }

    #[test]
    fn the_semantic_decoder_runs_only_when_asked() {
        let device = Device::flex();
        device.seed(5);
        let config = small().with_semantic(Some(SemanticDecoderConfig::new(32, vec![1, 2], 64, 1).with_downsample_scale(1)));
        config.validate().unwrap();
        let tok = config.init(&device);
        assert!(tok.has_semantic_decoder());
        let tokens = Tensor::<3>::random([2, 4, 6], Distribution::Normal(0.0, 1.0), &device);
        let (image, semantic) = tok.decode_with_semantic(tokens.clone());
        assert_eq!(image.dims(), [2, 3, 16, 8]);
        // Tapped before the last level's (2,1) up-sampler at 4 × 4, then one (2,2) halving.
        assert_eq!(semantic.unwrap().dims(), [2, 64, 2, 2]);
        assert_eq!(values(tok.decode(tokens)), values(image));
        let (_, none) = small().init(&device).decode_with_semantic(Tensor::zeros([1, 2, 6], &device));
        assert!(none.is_none());
    }

    #[test]
    fn gradients_reach_the_encoder_through_the_reflect_padding() {
        let device = Device::flex().autodiff();
        device.seed(6);
        let tok = small().init(&device);
        let images = Tensor::<4>::random([2, 3, 16, 8], Distribution::Uniform(-1.0, 1.0), &device);
        let post = tok.posterior(images.clone());
        let z = post.sample(&mut SplitMix64::new(1));
        let loss = (tok.decode(z) - images).abs().mean() + post.kl().mean() * 0.01;
        let grads = loss.backward();
        let g = tok.encoder.conv_in.weight.grad(&grads).expect("encoder gradient");
        assert!(values(g).iter().any(|v| *v != 0.0));
        assert!(tok.decoder.decoder1d.weight.grad(&grads).is_some());
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let err = |c: ColumnTokenizerConfig| c.validate().unwrap_err().to_string();
        assert!(err(small().with_ch(48)).contains("ch"));
        assert!(err(small().with_post_channels(15)).contains("post_channels"));
        assert!(err(small().with_resolution(18)).contains("resolution"));
        assert!(err(small().with_resolution(4)).contains("at least 2"));
        assert!(err(small().with_ch_mult(vec![])).contains("ch_mult"));
        assert!(err(small().with_num_res_blocks(0)).contains("num_res_blocks"));
        assert!(err(small().with_embed_dim(0)).contains("embed_dim"));
        assert!(err(small().with_std(f64::NAN)).contains("std"));
        let semantic = |s| small().with_semantic(Some(s));
        assert!(err(semantic(SemanticDecoderConfig::new(32, vec![2], 64, 1))).contains("input width"));
        assert!(err(semantic(SemanticDecoderConfig::new(32, vec![1], 16, 1))).contains("out_ch"));
        assert!(err(semantic(SemanticDecoderConfig::new(32, vec![1], 64, 1).with_downsample_scale(2))).contains("downsample_scale"));
        ColumnTokenizerConfig::new().validate().unwrap();
        ColumnTokenizerConfig::scenes().validate().unwrap();
    }
}
