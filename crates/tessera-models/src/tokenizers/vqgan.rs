//! RAR's tokenizer: MaskGIT-VQGAN, one token per latent position (image ⇄ `h·w` codes, row-major).
//!
//! Official: bytedance/1d-tokenizer @942a96fb, `modeling/modules/maskgit_vqgan.py` (`Conv2dSame`,
//! `ResnetBlock`, `DownsamplingBlock`, `UpsamplingBlock`, `Encoder`, `Decoder`, `VectorQuantizer`;
//! a port of open-muse's `modeling_maskgit_vqgan.py`) and `modeling/titok.py`
//! (`PretrainedTokenizer`: the hard-coded 256 px config, `encode`, `decode`).
//!
//! ```text
//! image [B,C,H,W] in [0,1]
//!   encoder: conv_in 3×3 (no bias) → per level: res blocks, avg_pool 2×2 (not after the last)
//!            → mid res blocks → GroupNorm → SiLU → conv_out 1×1 → z [B,Z,H/f,W/f]
//!   quantize: nearest codebook entry (squared L2) per position → codes [B, h·w], z_q
//!   decoder: conv_in 3×3 → mid res blocks → per level, last first: res blocks, nearest ×2 + conv 3×3
//!            (not at level 0) → GroupNorm → SiLU → conv_out 3×3 → image, clamped to [0,1]
//! ```
//!
//! No attention anywhere. Every GroupNorm is GroupNorm(32, eps 1e-6).
//!
//! The `ResnetBlock` quirk, kept because the released weights depend on it: when a block changes
//! the width, the 1×1 `nin_shortcut` (out → out channels, no bias) is applied to the block's
//! *output* and added to it, `h + nin_shortcut(h)`; the input skip is dropped. Blocks that keep the
//! width add their input, `h + x`.
//!
//! Channel bookkeeping (official): encoder level `i` goes from `hidden · (1, mult…)[i]` to
//! `hidden · mult[i]`; the middle runs at `hidden · mult[-1]`; decoder level `i` goes from
//! `hidden · mult[i + 1]` (`mult[-1]` for the last level) to `hidden · mult[i]`, and every level has
//! `num_res_blocks` blocks (not one more, as in taming's decoder).
//!
//! Differences from the official code:
//! - One [`VqganConfig`] builds encoder, decoder and quantizer (as `PretrainedTokenizer` does with
//!   one OmegaConf); the number of levels is `channel_mult.len()`, where the official reads a
//!   separate `num_resolutions` (which only works when it is at most `len(channel_mult)` and
//!   `channel_mult[num_resolutions - 1] == channel_mult[-1]`, i.e. as `channel_mult` truncated).
//! - `Conv2dSame` is a fixed symmetric zero padding of `k / 2`: every conv here has stride 1 and an
//!   odd kernel, where TF "same" padding is exactly that.
//! - Dropout is not implemented: only `dropout = 0` (every official config) is accepted.
//! - `z_q` is a gather of codebook rows, not a one-hot matmul (the same values); the distance is
//!   `|z|² + |e|² − 2 z·e` as the official `compute_distances`; ties go to the lowest index, as
//!   `torch.argmin`.
//! - `get_codebook_entry` takes `[B, l]` codes with `l` a square (the official 2-D path); the 3-D
//!   `[B, h, w]` path, `get_soft_code` and `get_code` (= [`Vqgan::encode`]) are left out.
//! - Fresh weights ([`VqganConfig::init`]): burn's conv init (Kaiming-uniform with PyTorch's
//!   default bound `1/√fan_in`), GroupNorm 1 and 0, codebook `U(±1/codebook_size)` as the official.
//!
//! On wgpu devices the 3×3 convs (the decoder's nearest ×2 fused in), GroupNorm + SiLU and the
//! nearest-code search run on Tessera's WGSL kernels; elsewhere (the CPU backend, the fixtures)
//! plain burn ops. Nothing here reads a tensor back to the CPU.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{
    Embedding, EmbeddingConfig, GroupNorm, GroupNormConfig, Initializer, PaddingConfig2d,
};
use burn::prelude::*;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

use tessera_kernels::quantize;

use crate::Error;
use crate::tokenizers::layers::{ResnetBlock, conv3, norm_silu};
use crate::weights::StateDict;

/// Groups of every GroupNorm (official `nn.GroupNorm(num_groups=32, …)`, fixed).
const GROUPS: usize = 32;
/// Largest channel count, image side or latent width [`VqganConfig::validate`] accepts.
const MAX_DIM: usize = 4096;
/// Most levels (halvings + 1) [`VqganConfig::validate`] accepts.
const MAX_LEVELS: usize = 8;
/// Most res blocks per level [`VqganConfig::validate`] accepts.
const MAX_RES_BLOCKS: usize = 16;
/// Largest codebook [`VqganConfig::validate`] accepts.
const MAX_CODEBOOK: usize = 1 << 20;

/// Hyper-parameters of [`Vqgan`]. Defaults are the official `PretrainedTokenizer` (MaskGIT-VQGAN,
/// ImageNet 256 px, f16, 1024 codes).
#[derive(Config, Debug)]
pub struct VqganConfig {
    /// Width multiplier per level (official `channel_mult`); `len - 1` halvings.
    #[config(default = "vec![1, 1, 2, 2, 4]")]
    pub channel_mult: Vec<usize>,
    /// Base width (official `hidden_channels`); a multiple of 32 (GroupNorm(32)).
    #[config(default = 128)]
    pub hidden_channels: usize,
    /// Res blocks per level, and in the middle (official `num_res_blocks`).
    #[config(default = 2)]
    pub num_res_blocks: usize,
    /// Latent width (official `z_channels`).
    #[config(default = 256)]
    pub z_channels: usize,
    /// Number of codes V (official `num_embeddings`).
    #[config(default = 1024)]
    pub codebook_size: usize,
    /// Code width (official `embedding_dim`); must equal `z_channels`.
    #[config(default = 256)]
    pub codebook_dim: usize,
    /// Image channels (official `num_channels`).
    #[config(default = 3)]
    pub num_channels: usize,
    /// Image side (official `resolution`).
    #[config(default = 256)]
    pub resolution: usize,
    /// β of the VQ loss, on the codebook term (official `commitment_cost`; see
    /// [`Vqgan::quantize_train`]).
    #[config(default = 0.25)]
    pub commitment_cost: f64,
    /// Dropout inside the res blocks (official `dropout`); only 0 is supported.
    #[config(default = 0.0)]
    pub dropout: f64,
}

impl VqganConfig {
    /// Floats per image of the largest buffer encoding or decoding allocates ([`crate::memory`]).
    pub fn largest_floats_per_image(&self) -> u64 {
        crate::memory::conv_floats(self.channel_mult.iter().map(|m| self.hidden_channels * m), self.resolution, self.resolution, true)
    }

    /// The MNIST tokenizer: 32×32 grey images → 8×8 = 64 tokens of a 256-code book.
    ///
    /// Three levels (32 → 16 → 8) with `channel_mult [1, 1, 2]` on the narrowest width GroupNorm(32)
    /// allows (32, so 64 in the 8×8 middle), one res block per level, 16-wide codes (0.43 M
    /// parameters). The 32×32 level dominates the cost (its res blocks and the last up-sampling
    /// conv are over half of the ~90 M multiply-adds of an image's forward pass), which is why it
    /// stays at 32 channels and one block: a training step of batch 32 (forward + backward) took
    /// about 2 s on burn's CPU backend on a busy 2-core machine, so ~300 steps fit in ten minutes.
    /// One image channel, as the MNIST data set serves them (`with_num_channels(3)` for RGB).
    pub fn mnist() -> Self {
        Self::new()
            .with_channel_mult(vec![1, 1, 2])
            .with_hidden_channels(32)
            .with_num_res_blocks(1)
            .with_z_channels(16)
            .with_codebook_size(256)
            .with_codebook_dim(16)
            .with_num_channels(1)
            .with_resolution(32)
    }

    /// Number of levels, `len(channel_mult)` (official `num_resolutions`).
    pub fn levels(&self) -> usize {
        self.channel_mult.len()
    }

    /// Spatial reduction of the encoder, `2^(levels - 1)`.
    pub fn downsample(&self) -> usize {
        1 << self.levels().saturating_sub(1).min(MAX_LEVELS)
    }

    /// Side of the token map, `resolution / downsample`.
    pub fn latent_side(&self) -> usize {
        self.resolution / self.downsample()
    }

    /// Tokens per image, `latent_side²` (row-major).
    pub fn seq_len(&self) -> usize {
        self.latent_side() * self.latent_side()
    }

    /// Checks the sizes once, before building anything.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(format!("VQGAN tokenizer: {m}")));
        let levels = self.levels();
        if levels == 0 || levels > MAX_LEVELS {
            return bad(format!(
                "channel_mult must have 1 to {MAX_LEVELS} levels, got {:?}",
                self.channel_mult
            ));
        }
        if self.hidden_channels == 0 || !self.hidden_channels.is_multiple_of(GROUPS) {
            return bad(format!(
                "hidden_channels must be a positive multiple of {GROUPS} (GroupNorm(32)), got {}",
                self.hidden_channels
            ));
        }
        for &m in &self.channel_mult {
            let width = self.hidden_channels.saturating_mul(m);
            if m == 0 || width > MAX_DIM {
                return bad(format!(
                    "every level width hidden_channels × channel_mult must be in {GROUPS}..={MAX_DIM}, \
                     got {} × {m}",
                    self.hidden_channels
                ));
            }
        }
        if self.num_res_blocks == 0 || self.num_res_blocks > MAX_RES_BLOCKS {
            return bad(format!(
                "num_res_blocks must be in 1..={MAX_RES_BLOCKS}, got {}",
                self.num_res_blocks
            ));
        }
        if self.z_channels == 0 || self.z_channels > MAX_DIM {
            return bad(format!(
                "z_channels must be in 1..={MAX_DIM}, got {}",
                self.z_channels
            ));
        }
        if self.codebook_dim != self.z_channels {
            return bad(format!(
                "codebook_dim ({}) must equal z_channels ({}): codes replace latent vectors",
                self.codebook_dim, self.z_channels
            ));
        }
        if self.codebook_size == 0 || self.codebook_size > MAX_CODEBOOK {
            return bad(format!(
                "codebook_size must be in 1..={MAX_CODEBOOK}, got {}",
                self.codebook_size
            ));
        }
        // The images are grayscale or RGB; other counts build a model no dataset or view fits.
        if self.num_channels != 1 && self.num_channels != 3 {
            return bad(format!(
                "num_channels must be 1 (grayscale) or 3 (RGB), got {}",
                self.num_channels
            ));
        }
        let f = self.downsample();
        if self.resolution == 0 || self.resolution > MAX_DIM || !self.resolution.is_multiple_of(f) {
            return bad(format!(
                "resolution must be a positive multiple of the downsampling {f} (2^(levels - 1)), \
                 at most {MAX_DIM}, got {}",
                self.resolution
            ));
        }
        if !(self.commitment_cost.is_finite() && self.commitment_cost >= 0.0) {
            return bad(format!(
                "commitment_cost must be finite and non-negative, got {}",
                self.commitment_cost
            ));
        }
        if self.dropout != 0.0 {
            return bad(format!("only dropout 0 is supported, got {}", self.dropout));
        }
        Ok(())
    }

    /// A freshly initialised tokenizer, fit for training (or to load official weights into).
    ///
    /// # Panics
    /// On an inconsistent config (see [`VqganConfig::validate`]).
    pub fn init(&self, device: &Device) -> Vqgan {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let v = self.codebook_size;
        let bound = 1.0 / v as f64;
        Vqgan {
            encoder: self.init_encoder(device),
            decoder: self.init_decoder(device),
            quantize: VectorQuantizer {
                embedding: EmbeddingConfig::new(v, self.codebook_dim)
                    .with_initializer(Initializer::Uniform {
                        min: -bound,
                        max: bound,
                    })
                    .init(device),
                commitment_cost: self.commitment_cost,
            },
            resolution: self.resolution,
        }
    }

    /// A tokenizer with the weights of an official `state_dict` (safetensors bytes; names as
    /// `PretrainedTokenizer`'s: `encoder.*`, `decoder.*`, `quantize.embedding.weight`).
    pub fn init_official(&self, bytes: Vec<u8>, device: &Device) -> crate::Result<Vqgan> {
        self.validate()?;
        let mut sd = StateDict::from_bytes(bytes)?;
        let model = self.init(device).load_official(&mut sd)?;
        sd.finish()?;
        Ok(model)
    }

    /// Width of level `i`, `hidden · channel_mult[i]`.
    fn width(&self, i: usize) -> usize {
        self.hidden_channels * self.channel_mult[i]
    }

    fn init_encoder(&self, device: &Device) -> Encoder {
        let levels = self.levels();
        let down = (0..levels)
            .map(|i| {
                // Official `in_channel_mult = (1,) + channel_mult`.
                let mut block_in = if i == 0 {
                    self.hidden_channels
                } else {
                    self.width(i - 1)
                };
                let block_out = self.width(i);
                let block = (0..self.num_res_blocks)
                    .map(|_| {
                        let b = resnet(block_in, block_out, device);
                        block_in = block_out;
                        b
                    })
                    .collect();
                DownsamplingBlock {
                    block,
                    downsample: i != levels - 1,
                }
            })
            .collect();
        let mid = self.width(levels - 1);
        Encoder {
            conv_in: conv(self.num_channels, self.hidden_channels, 3, false, device),
            down,
            mid: (0..self.num_res_blocks)
                .map(|_| resnet(mid, mid, device))
                .collect(),
            norm_out: norm(mid, device),
            conv_out: conv(mid, self.z_channels, 1, true, device),
        }
    }

    fn init_decoder(&self, device: &Device) -> Decoder {
        let levels = self.levels();
        let mid = self.width(levels - 1);
        // Stored by level index (0 = full resolution), as the official `up` after its reversal.
        let up = (0..levels)
            .map(|i| {
                let mut block_in = if i == levels - 1 {
                    mid
                } else {
                    self.width(i + 1)
                };
                let block_out = self.width(i);
                let block = (0..self.num_res_blocks)
                    .map(|_| {
                        let b = resnet(block_in, block_out, device);
                        block_in = block_out;
                        b
                    })
                    .collect();
                UpsamplingBlock {
                    block,
                    upsample_conv: (i != 0).then(|| conv(block_out, block_out, 3, true, device)),
                }
            })
            .collect();
        let out = self.width(0);
        Decoder {
            conv_in: conv(self.z_channels, mid, 3, true, device),
            mid: (0..self.num_res_blocks)
                .map(|_| resnet(mid, mid, device))
                .collect(),
            up,
            norm_out: norm(out, device),
            conv_out: conv(out, self.num_channels, 3, true, device),
        }
    }
}

/// What the VQ training step needs (official `VectorQuantizer.forward(…, return_loss=True)`).
#[derive(Debug, Clone)]
pub struct VqganTrainOutput {
    /// Straight-through `z_q`: the value of the codes, the gradient of `z`. `[B, Z, h, w]`
    pub z_q: Tensor<4>,
    /// `mse(sg(z_q), z) + commitment_cost · mse(z_q, sg(z))`, `[1]`.
    pub loss: Tensor<1>,
    /// Code index per position, `[B, h·w]` row-major (for usage counts).
    pub codes: Tensor<2, Int>,
}

/// The MaskGIT-VQGAN tokenizer. Build it with [`VqganConfig::init`].
#[derive(Module, Debug)]
pub struct Vqgan {
    encoder: Encoder,
    decoder: Decoder,
    quantize: VectorQuantizer,
    /// Image side of the config (the model itself takes any side divisible by the downsampling).
    resolution: usize,
}

impl Vqgan {
    /// Number of codes V.
    pub fn codebook_size(&self) -> usize {
        self.quantize.embedding.weight.lazy_shape().dims::<2>()[0]
    }

    /// Image channels C.
    pub fn num_channels(&self) -> usize {
        self.decoder.conv_out.weight.lazy_shape().dims::<4>()[0]
    }

    /// Side of the token map for the config's image side.
    pub fn latent_side(&self) -> usize {
        self.resolution >> (self.encoder.down.len() - 1)
    }

    /// The codebook, `[V, Z]`.
    pub fn codebook(&self) -> Tensor<2> {
        self.quantize.embedding.weight.val()
    }

    /// The continuous latent (official `encoder(image)`).
    ///
    /// # Shapes
    /// - `image`: `[B, C, H, W]` in `[0, 1]` → `[B, Z, H/f, W/f]`
    pub fn encoder_forward(&self, image: Tensor<4>) -> Tensor<4> {
        self.encoder.forward(image)
    }

    /// Nearest codebook entry per position (official `quantize(z)` without loss): the codes,
    /// row-major, and the quantised latent.
    ///
    /// # Shapes
    /// - `z`: `[B, Z, h, w]` → (`[B, h·w]`, `[B, Z, h, w]`)
    pub fn quantize(&self, z: Tensor<4>) -> (Tensor<2, Int>, Tensor<4>) {
        let [b, _, h, w] = z.dims();
        let (idx, rows) = quantize(to_rows(z), self.codebook());
        (idx.reshape([b, h * w]), from_rows(rows, [b, h, w]))
    }

    /// Token codes of images (official `PretrainedTokenizer.encode`).
    ///
    /// # Shapes
    /// - `image`: `[B, C, H, W]` in `[0, 1]` → `[B, h·w]`
    pub fn encode(&self, image: Tensor<4>) -> Tensor<2, Int> {
        self.quantize(self.encoder_forward(image)).0
    }

    /// The codebook entries of codes as a latent map (official `get_codebook_entry`, 2-D codes).
    ///
    /// # Shapes
    /// - `codes`: `[B, l]`, `l` a square → `[B, Z, √l, √l]`
    ///
    /// # Panics
    /// If `l` is not a square.
    pub fn embed_codes(&self, codes: Tensor<2, Int>) -> Tensor<4> {
        let [b, l] = codes.dims();
        let side = l.isqrt();
        assert_eq!(side * side, l, "a token map holds side² tokens, got {l}");
        let [_, z] = self.quantize.embedding.weight.lazy_shape().dims::<2>();
        let rows = self.quantize.embedding.forward(codes).reshape([b * l, z]);
        from_rows(rows, [b, side, side])
    }

    /// Decoder output before the clamp (official `decoder(z_q)`).
    ///
    /// # Shapes
    /// - `z_q`: `[B, Z, h, w]` → `[B, C, h·f, w·f]`
    pub fn decode_raw(&self, z_q: Tensor<4>) -> Tensor<4> {
        self.decoder.forward(z_q)
    }

    /// Image from a quantised latent, clamped to `[0, 1]`.
    pub fn decode(&self, z_q: Tensor<4>) -> Tensor<4> {
        self.decode_raw(z_q).clamp(0.0, 1.0)
    }

    /// Images from codes (official `PretrainedTokenizer.decode`): what a sampler calls.
    ///
    /// # Shapes
    /// - `codes`: `[B, h·w]` → `[B, C, H, W]` in `[0, 1]`
    pub fn codes_to_image(&self, codes: Tensor<2, Int>) -> Tensor<4> {
        self.decode(self.embed_codes(codes))
    }

    /// Quantisation for training (official `VectorQuantizer.forward(z, return_loss=True)`): the
    /// search runs without gradient; the encoder learns through `mse(sg(z_q), z)` and the
    /// straight-through `z_q = z + sg(z_q − z)`, the codebook through
    /// `commitment_cost · mse(z_q, sg(z))`. (The official weights β on the codebook term, not on
    /// the commitment term as in the VQ-VAE paper; kept as is.)
    pub fn quantize_train(&self, z: Tensor<4>) -> VqganTrainOutput {
        let [b, _, h, w] = z.dims();
        let z_sg = z.clone().detach();
        // The gathered rows keep the codebook's gradient (see `tessera_kernels::quantize`).
        let (idx, rows) = quantize(to_rows(z_sg.clone()), self.codebook());
        let z_q = from_rows(rows, [b, h, w]);
        let commitment = (z_q.clone().detach() - z.clone()).square().mean();
        let codebook = (z_q.clone() - z_sg).square().mean();
        let loss = commitment + codebook * self.quantize.commitment_cost;
        VqganTrainOutput {
            z_q: z.clone() + (z_q - z).detach(),
            loss,
            codes: idx.reshape([b, h * w]),
        }
    }

    /// Loads an official `state_dict` (names as `PretrainedTokenizer`'s).
    pub fn load_official(mut self, sd: &mut StateDict) -> crate::Result<Self> {
        self.encoder = self.encoder.load(sd, "encoder")?;
        self.decoder = self.decoder.load(sd, "decoder")?;
        self.quantize.embedding = sd.embedding("quantize.embedding", self.quantize.embedding)?;
        Ok(self)
    }
}

/// The codebook (official `VectorQuantizer`).
#[derive(Module, Debug)]
struct VectorQuantizer {
    /// `[V, Z]`.
    embedding: Embedding,
    commitment_cost: f64,
}

/// `[B, Z, h, w]` → `[B·h·w, Z]`, rows in row-major position order.
fn to_rows(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1]).reshape([b * h * w, c])
}

/// `[B·h·w, Z]` → `[B, Z, h, w]`, the inverse of [`to_rows`].
fn from_rows(rows: Tensor<2>, [b, h, w]: [usize; 3]) -> Tensor<4> {
    let [_, c] = rows.dims();
    rows.reshape([b, h, w, c]).permute([0, 3, 1, 2])
}

/// k×k stride-1 conv with TF "same" padding (`Conv2dSame`; symmetric `k / 2` for odd k).
fn conv(c_in: usize, c_out: usize, k: usize, bias: bool, device: &Device) -> Conv2d {
    let p = k / 2;
    Conv2dConfig::new([c_in, c_out], [k, k])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(bias)
        .init(device)
}

/// GroupNorm(32, eps 1e-6, affine).
fn norm(channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(GROUPS, channels)
        .with_epsilon(1e-6)
        .init(device)
}

/// A MaskGIT-VQGAN res block: convs without bias; when the width changes, the 1×1 shortcut
/// (out → out channels, no bias) maps the block's OUTPUT (the official quirk, see the module docs).
fn resnet(c_in: usize, c_out: usize, device: &Device) -> ResnetBlock {
    ResnetBlock {
        norm1: norm(c_in, device),
        conv1: conv(c_in, c_out, 3, false, device),
        norm2: norm(c_out, device),
        conv2: conv(c_out, c_out, 3, false, device),
        nin_shortcut: (c_in != c_out).then(|| conv(c_out, c_out, 1, false, device)),
        shortcut_on_output: true,
        reflect: false,
    }
}

fn run_blocks(blocks: &[ResnetBlock], mut h: Tensor<4>) -> Tensor<4> {
    for block in blocks {
        h = block.forward(h);
    }
    h
}

/// `{p}.{j}` for every block (the official `nn.ModuleList`s).
fn load_blocks(
    sd: &mut StateDict,
    p: &str,
    blocks: Vec<ResnetBlock>,
) -> crate::Result<Vec<ResnetBlock>> {
    blocks
        .into_iter()
        .enumerate()
        .map(|(j, b)| b.load(sd, &format!("{p}.{j}")))
        .collect()
}

/// One encoder level: res blocks, then a 2×2 average pool unless it is the last level.
#[derive(Module, Debug)]
struct DownsamplingBlock {
    block: Vec<ResnetBlock>,
    downsample: bool,
}

/// One decoder level: res blocks, then nearest ×2 + 3×3 conv unless it is level 0.
#[derive(Module, Debug)]
struct UpsamplingBlock {
    block: Vec<ResnetBlock>,
    upsample_conv: Option<Conv2d>,
}

#[derive(Module, Debug)]
struct Encoder {
    /// 3×3, no bias.
    conv_in: Conv2d,
    down: Vec<DownsamplingBlock>,
    mid: Vec<ResnetBlock>,
    norm_out: GroupNorm,
    /// 1×1, with bias.
    conv_out: Conv2d,
}

impl Encoder {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut h = conv3(&self.conv_in, x, 1);
        for level in &self.down {
            h = run_blocks(&level.block, h);
            if level.downsample {
                h = avg_pool2d(h, AvgPoolOptions::new([2, 2]));
            }
        }
        let h = run_blocks(&self.mid, h);
        self.conv_out.forward(norm_silu(&self.norm_out, h))
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.conv_in = sd.conv2d(&format!("{p}.conv_in"), self.conv_in)?;
        for (i, level) in self.down.iter_mut().enumerate() {
            let blocks = std::mem::take(&mut level.block);
            level.block = load_blocks(sd, &format!("{p}.down.{i}.block"), blocks)?;
        }
        self.mid = load_blocks(sd, &format!("{p}.mid"), self.mid)?;
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        Ok(self)
    }
}

#[derive(Module, Debug)]
struct Decoder {
    /// 3×3, with bias.
    conv_in: Conv2d,
    mid: Vec<ResnetBlock>,
    /// Indexed by level (0 = full resolution), run from the last level down, as the official.
    up: Vec<UpsamplingBlock>,
    norm_out: GroupNorm,
    /// 3×3, with bias.
    conv_out: Conv2d,
}

impl Decoder {
    fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let mut h = run_blocks(&self.mid, conv3(&self.conv_in, z, 1));
        for level in self.up.iter().rev() {
            h = run_blocks(&level.block, h);
            if let Some(up) = &level.upsample_conv {
                h = conv3(up, h, 2);
            }
        }
        conv3(&self.conv_out, norm_silu(&self.norm_out, h), 1)
    }

    fn load(mut self, sd: &mut StateDict, p: &str) -> crate::Result<Self> {
        self.conv_in = sd.conv2d(&format!("{p}.conv_in"), self.conv_in)?;
        self.mid = load_blocks(sd, &format!("{p}.mid"), self.mid)?;
        for (i, level) in self.up.iter_mut().enumerate() {
            let blocks = std::mem::take(&mut level.block);
            level.block = load_blocks(sd, &format!("{p}.up.{i}.block"), blocks)?;
            if let Some(up) = level.upsample_conv.take() {
                level.upsample_conv = Some(sd.conv2d(&format!("{p}.up.{i}.upsample_conv"), up)?);
            }
        }
        self.norm_out = sd.group_norm(&format!("{p}.norm_out"), self.norm_out)?;
        self.conv_out = sd.conv2d(&format!("{p}.conv_out"), self.conv_out)?;
        Ok(self)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use tessera_kernels::activation::silu;

    fn values(t: Tensor<4>) -> Vec<f32> {
        t.try_into_vec_as::<f32>().unwrap()
    }

    fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    /// A small 16 px config: two levels (16 → 8), widths 32 → 64, so the quirk's shortcut exists in
    /// the encoder's level 1 and the decoder's level 0.
    pub(crate) fn small() -> VqganConfig {
        VqganConfig::new()
            .with_channel_mult(vec![1, 2])
            .with_hidden_channels(32)
            .with_num_res_blocks(1)
            .with_z_channels(8)
            .with_codebook_size(16)
            .with_codebook_dim(8)
            .with_resolution(16)
    }

    #[test]
    fn the_mnist_preset_maps_32px_images_to_64_codes_and_back() {
        let device = Device::flex();
        device.seed(7);
        let config = VqganConfig::mnist();
        config.validate().unwrap();
        assert_eq!(
            (config.downsample(), config.latent_side(), config.seq_len()),
            (4, 8, 64)
        );
        let vqgan = config.init(&device);
        assert_eq!((vqgan.codebook_size(), vqgan.latent_side()), (256, 8));
        let image = Tensor::<4>::random([2, 1, 32, 32], Distribution::Uniform(0.0, 1.0), &device);
        let z = vqgan.encoder_forward(image.clone());
        assert_eq!(z.dims(), [2, 16, 8, 8]);
        let (codes, z_q) = vqgan.quantize(z);
        assert_eq!(codes.dims(), [2, 64]);
        assert_eq!(z_q.dims(), [2, 16, 8, 8]);
        let ints = codes.clone().try_into_vec_as::<i64>().unwrap();
        assert!(ints.iter().all(|c| (0..256).contains(c)), "{ints:?}");
        // The codes' entries are exactly the quantised latent.
        assert_eq!(
            values(vqgan.embed_codes(codes.clone())),
            values(z_q.clone())
        );
        assert_eq!(vqgan.encode(image).try_into_vec_as::<i64>().unwrap(), ints);
        let recon = vqgan.codes_to_image(codes);
        assert_eq!(recon.dims(), [2, 1, 32, 32]);
        assert_eq!(values(recon), values(vqgan.decode(z_q)));
    }

    #[test]
    fn decode_clamps_to_the_unit_interval() {
        let device = Device::flex();
        device.seed(8);
        let mut vqgan = small().init(&device);
        // A 100× output conv drives the raw decoder output far outside [0, 1] on both sides.
        let w = vqgan.decoder.conv_out.weight.val() * 100.0;
        vqgan.decoder.conv_out.weight = burn::module::Param::from_tensor(w);
        let z = Tensor::<4>::random([1, 8, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let raw = values(vqgan.decode_raw(z.clone()));
        assert!(raw.iter().any(|v| *v < 0.0) && raw.iter().any(|v| *v > 1.0));
        let clamped = values(vqgan.decode(z));
        assert!(clamped.iter().all(|v| (0.0..=1.0).contains(v)));
        for (r, c) in raw.iter().zip(&clamped) {
            assert_eq!(*c, r.clamp(0.0, 1.0));
        }
    }

    #[test]
    fn a_widening_res_block_adds_the_shortcut_of_its_output_not_of_its_input() {
        let device = Device::flex();
        device.seed(9);
        let mut block = resnet(32, 64, &device);
        // An identity shortcut: the official block then returns exactly 2·h, h = the main path.
        let mut eye = vec![0.0f32; 64 * 64];
        for i in 0..64 {
            eye[i * 64 + i] = 1.0;
        }
        let nin = block.nin_shortcut.take().unwrap();
        let weight = Tensor::<4>::from_data(TensorData::new(eye, [64, 64, 1, 1]), &device);
        block.nin_shortcut = Some(Conv2d {
            weight: burn::module::Param::from_tensor(weight),
            ..nin
        });
        assert!(block.nin_shortcut.as_ref().unwrap().bias.is_none());
        let x = Tensor::<4>::random([2, 32, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let h = block.conv1.forward(silu(block.norm1.forward(x.clone())));
        let h = block.conv2.forward(silu(block.norm2.forward(h)));
        let out = block.forward(x);
        assert_eq!(out.dims(), [2, 64, 4, 4]);
        assert!(max_diff(out, h * 2.0) < 1e-6);
    }

    #[test]
    fn a_res_block_that_keeps_its_width_adds_its_input() {
        let device = Device::flex();
        device.seed(10);
        let block = resnet(32, 32, &device);
        assert!(block.nin_shortcut.is_none());
        let x = Tensor::<4>::random([1, 32, 4, 4], Distribution::Normal(0.0, 1.0), &device);
        let h = block.conv1.forward(silu(block.norm1.forward(x.clone())));
        let h = block.conv2.forward(silu(block.norm2.forward(h)));
        assert!(max_diff(block.forward(x.clone()), h + x) < 1e-6);
    }

    #[test]
    fn quantize_train_passes_gradients_straight_through_to_the_encoder() {
        let device = Device::flex().autodiff();
        device.seed(11);
        let vqgan = small().init(&device);
        let image = Tensor::<4>::random([2, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
        let z = vqgan.encoder_forward(image.clone());
        let out = vqgan.quantize_train(z.clone());
        assert_eq!(out.codes.dims(), [2, 64]);
        // The value is z_q (up to z + (z_q - z) rounding), the codes are the inference ones.
        let (codes, z_q) = vqgan.quantize(z.clone());
        assert!(max_diff(out.z_q.clone().inner(), z_q.clone().inner()) < 1e-5);
        assert_eq!(
            out.codes.clone().try_into_vec_as::<i64>().unwrap(),
            codes.try_into_vec_as::<i64>().unwrap()
        );
        // loss = mse + β·mse of the same difference = (1 + β)·mse(z, z_q).
        let mse = (z.clone().inner() - z_q.inner())
            .square()
            .mean()
            .into_scalar::<f32>();
        let loss = out.loss.clone().inner().into_scalar::<f32>();
        assert!(
            (loss - 1.25 * mse).abs() <= 1e-5 * loss.abs().max(1.0),
            "{loss} vs {mse}"
        );

        let recon = vqgan.decode_raw(out.z_q);
        let total = (recon - image).square().mean() + out.loss;
        let grads = total.backward();
        let nonzero = |g: Option<Tensor<4>>| {
            g.expect("a gradient")
                .try_into_vec_as::<f32>()
                .unwrap()
                .iter()
                .any(|v| *v != 0.0)
        };
        // Through the straight-through estimator (and the commitment term) to the encoder's input
        // conv, and through the codebook term to the codebook.
        assert!(nonzero(vqgan.encoder.conv_in.weight.grad(&grads)));
        assert!(nonzero(vqgan.decoder.conv_in.weight.grad(&grads)));
        let cb = vqgan
            .quantize
            .embedding
            .weight
            .grad(&grads)
            .expect("codebook gradient");
        assert!(
            cb.try_into_vec_as::<f32>()
                .unwrap()
                .iter()
                .any(|v| *v != 0.0)
        );
    }

    #[test]
    fn only_the_reconstruction_reaches_the_encoder_through_z_q() {
        // Without the VQ loss, the encoder still gets a gradient: the straight-through path.
        let device = Device::flex().autodiff();
        device.seed(12);
        let vqgan = small().init(&device);
        let image = Tensor::<4>::random([1, 3, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
        let out = vqgan.quantize_train(vqgan.encoder_forward(image));
        let grads = vqgan.decode_raw(out.z_q).sum().backward();
        let g = vqgan
            .encoder
            .conv_out
            .weight
            .grad(&grads)
            .expect("encoder gradient");
        assert!(
            g.try_into_vec_as::<f32>()
                .unwrap()
                .iter()
                .any(|v| *v != 0.0)
        );
        // and the codebook gets none from the reconstruction alone (the search is not tracked).
        let cb = vqgan.quantize.embedding.weight.grad(&grads);
        assert!(cb.is_none_or(|g| {
            g.try_into_vec_as::<f32>()
                .unwrap()
                .iter()
                .all(|v| *v == 0.0)
        }));
    }

    #[test]
    fn validate_names_what_is_wrong() {
        let err = |c: VqganConfig| c.validate().unwrap_err().to_string();
        assert!(err(small().with_hidden_channels(48)).contains("hidden_channels"));
        assert!(err(small().with_codebook_dim(4)).contains("codebook_dim"));
        assert!(err(small().with_resolution(17)).contains("resolution"));
        assert!(err(small().with_dropout(0.1)).contains("dropout"));
        assert!(err(small().with_channel_mult(vec![])).contains("channel_mult"));
        assert!(err(small().with_channel_mult(vec![1; 9])).contains("channel_mult"));
        assert!(err(small().with_channel_mult(vec![1, 0])).contains("width"));
        assert!(err(small().with_num_res_blocks(0)).contains("num_res_blocks"));
        assert!(err(small().with_codebook_size(0)).contains("codebook_size"));
        assert!(err(small().with_num_channels(0)).contains("num_channels"));
        assert!(err(small().with_commitment_cost(f64::NAN)).contains("commitment_cost"));
        VqganConfig::new().validate().unwrap();
        assert_eq!(VqganConfig::new().seq_len(), 256);
    }
}
