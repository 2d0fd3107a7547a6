//! Equivariant image modeling: column tokens generated left to right by a windowed causal
//! transformer with a flow-matching head (arXiv 2503.18948).
//! Official: drx-code/EquivariantModeling @4b15f32b, `generator/equ_modeling.py`
//! (`EquivariantGenerativeModel`, `MaskedBlockRoPECrossAttn`, `MaskedAttentionRoPE`,
//! `MaskedAttentionCrossRoPE`, `precompute_freqs_cis`, `apply_rotary_emb`) and timm 0.9.12's
//! `Block`, `Attention` and `Mlp`; the head is [`super::flow_head`].
//!
//! The tokens are continuous columns `[B, N, C]` (no codebook). The sequence is `S` condition slots
//! (the class embedding or the learned null `fake_latent`, plus a learned per-slot embedding) and
//! the `N` image tokens, both through `z_proj_ln`. Each block:
//! 1. windowed causal self-attention over the image tokens only: token `i` sees `i - w ..= i`
//!    (`w` = [`EquivariantConfig::window`]), with interleaved-pair RoPE on q and k;
//! 2. cross-attention from the image tokens to the condition slots, RoPE on q only;
//! 3. the MLP on every slot. The condition slots never attend: they change only through the MLPs.
//!
//! After `encoder_norm`, output 0 is the last condition slot and output `i ≥ 1` is image token
//! `i - 1`: output `i` predicts token `i`. Nothing is tied to a width, so any number of columns
//! runs; RoPE positions are absolute, shifted by a random `b < shift_num` in training.
//!
//! Because the attention is windowed and the condition slots never attend, sampling keeps per
//! block only the condition slots' cross-attention keys and values (computed once) and the last
//! `w` self-attention keys and values: one single-column pass per step and memory that does not
//! grow with the width ([`Equivariant::start`], [`Equivariant::next`]). The official
//! `sample_tokens` re-runs the whole sequence every step. `window = 0` is the official
//! `cond_length = 0`: plain causal attention, and the cache then keeps every column.
//!
//! Differences from the official code:
//! - The condition is an argument ([`Equivariant::condition`]): the caller draws the label drop
//!   (official: inside `forward_encoder` in training) and the RoPE shift (official: inside
//!   `precompute_freqs_cis`), so both come from a seeded stream.
//! - Dropout (`proj_dropout`) acts after both attention projections and in the MLP, training only;
//!   the attention probabilities are not dropped (`attn_dropout`), since the fused attention kernel
//!   has no dropout.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;

use tessera_kernels::activation::gelu;
use tessera_kernels::linear::{forward as dense, qkv_heads};
use tessera_kernels::norm::layer_norm;
use tessera_kernels::rope::rope;
use tessera_kernels::{AttentionMask, attention};

use super::flow_head::{FlowHead, FlowHeadConfig, xavier};
use crate::Error;
use crate::dropout::dropout;
use crate::weights::StateDict;

/// Std of the official normal init of `class_emb`, `fake_latent` and `encoder_pos_embed_learned`.
const INIT_STD: f64 = 0.02;
/// RoPE base (official `precompute_freqs_cis(base=10000)`).
const ROPE_BASE: f32 = 10000.0;
/// Eps of `z_proj_ln` (always 1e-6 in the official code).
const Z_PROJ_LN_EPS: f64 = 1e-6;
/// Eps of `cross_norm` / `cross_cond_norm` (PyTorch's default: they are built without `norm_layer`).
const CROSS_NORM_EPS: f64 = 1e-5;

/// The image tokens' self-attention mask of window `w` (official `mask`): `Window(w)`, or
/// `Causal` when `w = 0`.
fn mask_of(window: usize) -> AttentionMask {
    match window {
        0 => AttentionMask::Causal,
        w => AttentionMask::Window(w),
    }
}

/// Hyper-parameters of [`Equivariant`] (official `EquivariantGenerativeModel` arguments).
/// Saved and loaded as JSON through burn's `Config` (serde).
#[derive(Config, Debug)]
pub struct EquivariantConfig {
    /// Columns per image at the training width N (`token_num`). Sampling may run more.
    pub token_num: usize,
    /// Channels C of one column token (`vae_embed_dim`).
    pub token_dim: usize,
    /// Width D (`encoder_embed_dim`; `decoder_embed_dim` must equal it).
    pub embed_dim: usize,
    /// Blocks (`encoder_depth + decoder_depth`: the split is vestigial, one stack).
    pub depth: usize,
    /// Attention heads (`encoder_num_heads`); the head dim must be even (RoPE pairs).
    pub num_heads: usize,
    /// Number of classes (`class_num`); the null condition is the learned `fake_latent`.
    pub class_num: usize,
    /// MLP hidden width `⌊D · mlp_ratio⌋` (`mlp_ratio`).
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Condition slots S before the image tokens (`buffer_size`; README runs: 16).
    #[config(default = 16)]
    pub buffer_size: usize,
    /// Causal window w: each token also sees the `w` previous ones (`cond_length`; README: 3);
    /// 0 = plain causal attention over every previous token.
    #[config(default = 3)]
    pub window: usize,
    /// Training RoPE shift is drawn from `0..shift_num` (`shift_num`).
    #[config(default = 16)]
    pub shift_num: usize,
    /// Probability that a training condition is swapped for the null `fake_latent`
    /// (`label_drop_prob`).
    #[config(default = 0.1)]
    pub label_drop_prob: f64,
    /// Dropout after the attention projections and in the MLP, training only (`proj_dropout`).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Width W of the flow head (`diffloss_w`).
    #[config(default = 1024)]
    pub head_width: usize,
    /// Residual blocks of the flow head (`diffloss_d`; README: 12).
    #[config(default = 12)]
    pub head_depth: usize,
    /// Euler steps of the flow head when sampling (`num_sampling_steps`, a string officially).
    #[config(default = 100)]
    pub num_sampling_steps: usize,
    /// Each token's (condition, target) is repeated this many times with independent noise and
    /// time in the training loss (`diffusion_batch_mul`).
    #[config(default = 4)]
    pub diffusion_batch_mul: usize,
    /// Eps of the blocks' `norm1`, `norm2` and of `encoder_norm` (from `norm_layer`; every
    /// official preset passes `partial(nn.LayerNorm, eps=1e-6)`).
    #[config(default = 1e-6)]
    pub norm_eps: f64,
    /// The column tokens are multiplied by this before the transformer sees them, and sampled
    /// tokens divided by it before decoding (official `--vae_norm`, 0.05493 for their tokenizer;
    /// Tessera's trainer measures it on the first batch). Not used by the model's own passes.
    #[config(default = 1.0)]
    pub vae_norm: f64,
}

impl EquivariantConfig {
    /// Floats per image of the largest buffer a training step allocates ([`crate::memory`]):
    /// the MLP over the slots, or the flow head's noise draws per token.
    pub fn largest_floats_per_image(&self) -> u64 {
        let slots = self.token_num + self.buffer_size;
        let hidden = (self.embed_dim as f64 * self.mlp_ratio) as usize;
        let head = (self.token_num * self.diffusion_batch_mul * self.head_width) as u64;
        crate::memory::transformer_floats(slots, hidden).max(head)
    }

    /// Keys the self-attention of one block reads for an image of `columns` columns, summed over
    /// its tokens (what [`Equivariant::attention_mask`] allows: `min(i, w) + 1` for token `i`
    /// under the window `w`, `i + 1` plainly causal). The attention's multiply-adds are this
    /// times 2 · D per block (scores and values): windowed against full causal attention at the
    /// same width, the paper's FLOP claim.
    pub fn attention_keys(&self, columns: usize) -> usize {
        let mask = mask_of(self.window);
        (0..columns).map(|i| (0..columns).filter(|&j| mask.allows(i, j)).count()).sum()
    }

    /// MNIST, 32×32 in 8 columns of 16 channels (the column tokenizer's `mnist`): width 128,
    /// 2 + 2 blocks, 4 heads, head 3 × 128, window 3. No dropout: short CPU runs underfit.
    pub fn mnist() -> Self {
        Self::new(8, 16, 128, 4, 4, 10)
            .with_buffer_size(4)
            .with_shift_num(8)
            .with_dropout(0.0)
            .with_head_width(128)
            .with_head_depth(3)
    }

    /// The procedural scenes, 6 classes, 8 columns of 16 channels: as [`EquivariantConfig::mnist`]
    /// with 8 condition slots and RoPE shifts up to twice the width, so that sampling wider than
    /// the training images stays on positions seen in training.
    pub fn scenes() -> Self {
        Self { class_num: 6, ..Self::mnist() }.with_buffer_size(8).with_shift_num(16)
    }

    /// The official-code speed anchor (`shared/bench/official_speed.py`, `EQV_CONFIG`): 32×32 in
    /// 8 columns of 16 channels, width 256, 2 + 2 blocks, 4 heads, head 3 × 256, 10 classes,
    /// 4 condition slots, window 3, shift 8, dropout 0.1, 100 Euler steps.
    pub fn anchor() -> Self {
        Self::new(8, 16, 256, 4, 4, 10)
            .with_buffer_size(4)
            .with_shift_num(8)
            .with_head_width(256)
            .with_head_depth(3)
    }

    /// With `token_num` columns at the training width (burn's `Config` makes setters only for
    /// the fields with defaults; these are for the required ones).
    pub fn with_token_num(self, token_num: usize) -> Self {
        Self { token_num, ..self }
    }

    /// With `token_dim` channels per column.
    pub fn with_token_dim(self, token_dim: usize) -> Self {
        Self { token_dim, ..self }
    }

    /// With width `embed_dim`.
    pub fn with_embed_dim(self, embed_dim: usize) -> Self {
        Self { embed_dim, ..self }
    }

    /// With `depth` blocks.
    pub fn with_depth(self, depth: usize) -> Self {
        Self { depth, ..self }
    }

    /// With `num_heads` attention heads.
    pub fn with_num_heads(self, num_heads: usize) -> Self {
        Self { num_heads, ..self }
    }

    /// With `class_num` classes.
    pub fn with_class_num(self, class_num: usize) -> Self {
        Self { class_num, ..self }
    }

    /// Dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads.max(1)
    }

    /// MLP hidden width (timm: `int(dim * mlp_ratio)`).
    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }

    /// The flow head's config.
    pub fn flow_head(&self) -> FlowHeadConfig {
        FlowHeadConfig::new(self.token_dim, self.embed_dim, self.head_width, self.head_depth)
    }

    /// Checks the sizes once, before building anything.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let sizes = [
            ("token_num", self.token_num, 1 << 16),
            ("token_dim", self.token_dim, 1 << 12),
            ("embed_dim", self.embed_dim, 1 << 13),
            ("depth", self.depth, 256),
            ("num_heads", self.num_heads, 256),
            ("class_num", self.class_num, 1 << 16),
            ("buffer_size", self.buffer_size, 1 << 12),
            ("shift_num", self.shift_num, 1 << 16),
            ("head_width", self.head_width, 1 << 14),
            ("head_depth", self.head_depth, 256),
            ("num_sampling_steps", self.num_sampling_steps, 1 << 16),
            ("diffusion_batch_mul", self.diffusion_batch_mul, 256),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return bad(format!("{name} must be in 1..={max}, got {value}"));
            }
        }
        if self.window > 1 << 16 {
            return bad(format!("window must be at most {}, got {}", 1 << 16, self.window));
        }
        if !self.embed_dim.is_multiple_of(self.num_heads) {
            return bad(format!("embed_dim {} is not a multiple of num_heads {}", self.embed_dim, self.num_heads));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!("head dim {} must be even: RoPE rotates pairs", self.head_dim()));
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_hidden() >= 1 && self.mlp_hidden() <= 1 << 16) {
            return bad(format!("mlp_ratio {} gives no usable MLP width", self.mlp_ratio));
        }
        for (name, p) in [("dropout", self.dropout), ("label_drop_prob", self.label_drop_prob)] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        if !(self.norm_eps > 0.0 && self.norm_eps < 1.0) {
            return bad(format!("norm_eps must be in (0, 1), got {}", self.norm_eps));
        }
        if !(self.vae_norm.is_finite() && self.vae_norm > 0.0) {
            return bad(format!("vae_norm must be a positive number, got {}", self.vae_norm));
        }
        Ok(())
    }

    /// A randomly initialised model as the official constructor leaves it: xavier-uniform Linear
    /// weights with zero biases, unit LayerNorms, N(0, 0.02²) class embeddings, null condition and
    /// slot embeddings, and the flow head's own init (zero AdaLN and output layer).
    ///
    /// # Panics
    /// On an inconsistent config (see [`EquivariantConfig::validate`]).
    pub fn init(&self, device: &Device) -> Equivariant {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let d = self.embed_dim;
        let ln = |eps: f64| LayerNormConfig::new(d).with_epsilon(eps).init(device);
        let normal = Initializer::Normal { mean: 0.0, std: INIT_STD };
        let blocks = (0..self.depth)
            .map(|_| Block {
                norm1: ln(self.norm_eps),
                attn: SelfAttention { qkv: xavier(d, 3 * d, device), proj: xavier(d, d, device) },
                cross_norm: ln(CROSS_NORM_EPS),
                cross_cond_norm: ln(CROSS_NORM_EPS),
                attn2: CrossAttention { qkv: xavier(d, d, device), k: xavier(d, d, device), v: xavier(d, d, device), proj: xavier(d, d, device) },
                norm2: ln(self.norm_eps),
                norm_eps: self.norm_eps,
                mlp: Mlp { fc1: xavier(d, self.mlp_hidden(), device), fc2: xavier(self.mlp_hidden(), d, device) },
                dropout: DropoutConfig::new(self.dropout).init(),
                num_heads: self.num_heads,
            })
            .collect();
        Equivariant {
            z_proj: xavier(self.token_dim, d, device),
            z_proj_ln: ln(Z_PROJ_LN_EPS),
            class_emb: EmbeddingConfig::new(self.class_num, d).with_initializer(normal.clone()).init(device),
            fake_latent: normal.init([1, d], device),
            encoder_pos_embed_learned: normal.init([1, self.buffer_size, d], device),
            encoder_blocks: blocks,
            encoder_norm: ln(self.norm_eps),
            norm_eps: self.norm_eps,
            diffloss: self.flow_head().init(device),
            num_heads: self.num_heads,
            token_num: self.token_num,
            window: self.window,
            shift_num: self.shift_num,
            num_sampling_steps: self.num_sampling_steps,
            diffusion_batch_mul: self.diffusion_batch_mul,
            label_drop_prob: self.label_drop_prob,
        }
    }

    /// A model with the weights of an official `state_dict` (safetensors bytes, official names).
    pub fn init_official(&self, bytes: Vec<u8>, device: &Device) -> crate::Result<Equivariant> {
        self.validate()?;
        let mut sd = StateDict::from_bytes(bytes)?;
        let model = self.init(device).load_official(&mut sd)?;
        sd.finish()?;
        Ok(model)
    }
}

/// `cos` and `sin` of the RoPE angles `t · f_k` for positions `t = start..start + len`,
/// `f_k = 1 / 10000^(2k / head_dim)`, `k < head_dim / 2`: `[len · head_dim/2]` each, row-major.
/// Frequencies and angles are rounded to float32 as PyTorch computes them; the trigonometry is
/// done in float64 on the CPU (a GPU's `cos` of a large angle is far less accurate).
fn rope_cos_sin(start: usize, len: usize, head_dim: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let freqs: Vec<f32> = (0..half).map(|k| 1.0 / ROPE_BASE.powf((2 * k) as f32 / head_dim as f32)).collect();
    let mut cos = Vec::with_capacity(len * half);
    let mut sin = Vec::with_capacity(len * half);
    for p in start..start + len {
        for f in &freqs {
            let angle = (p as f32 * f) as f64;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    (cos, sin)
}

/// The official RoPE table `precompute_freqs_cis` for positions `start..start + len`:
/// `[..., 0] = cos`, `[..., 1] = sin` (the official `start` is the RoPE shift, 0 in eval).
///
/// # Shapes
/// → `[len, head_dim / 2, 2]`
pub fn freqs_cis(start: usize, len: usize, head_dim: usize, device: &Device) -> Tensor<3> {
    let (cos, sin) = rope_cos_sin(start, len, head_dim);
    let half = head_dim / 2;
    let values = cos.iter().zip(&sin).flat_map(|(c, s)| [*c, *s]).collect::<Vec<_>>();
    Tensor::from_data(TensorData::new(values, [len, half, 2]), device)
}

/// RoPE for a run of consecutive positions, rotating interleaved pairs `(x[2k], x[2k+1])`
/// (official `apply_rotary_emb`; the kernel is [`tessera_kernels::rope`]).
#[derive(Debug, Clone)]
struct Rope {
    /// `[L, hd/2]`.
    cos: Tensor<2>,
    sin: Tensor<2>,
}

impl Rope {
    fn new(start: usize, len: usize, head_dim: usize, device: &Device) -> Self {
        let (cos, sin) = rope_cos_sin(start, len, head_dim);
        let shape = [len, head_dim / 2];
        Self { cos: Tensor::from_data(TensorData::new(cos, shape), device), sin: Tensor::from_data(TensorData::new(sin, shape), device) }
    }

    /// `x`: `[B, L, H, hd]` (positions on axis 1) → the same, rotated.
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        rope(x, self.cos.clone(), self.sin.clone())
    }
}

/// `[B, L, D]` → `[B, L, H, hd]`.
fn split_heads(x: Tensor<3>, h: usize) -> Tensor<4> {
    let [b, l, d] = x.dims();
    x.reshape([b, l, h, d / h])
}

/// `[B, H, L, hd]` → `[B, L, D]`.
fn merge_heads(x: Tensor<4>) -> Tensor<3> {
    let [b, h, l, hd] = x.dims();
    x.swap_dims(1, 2).reshape([b, l, h * hd])
}

/// Self-attention projections (timm `Attention` with `qkv_bias=True`, no qk-norm).
#[derive(Module, Debug)]
struct SelfAttention {
    /// `Linear(D, 3D)`, (3, H, hd) along the output axis.
    qkv: Linear,
    proj: Linear,
}

/// Cross-attention projections (official `MaskedAttentionCrossRoPE`): the query projection keeps
/// timm's name `qkv` but is `Linear(D, D)`; keys and values have their own.
#[derive(Module, Debug)]
struct CrossAttention {
    qkv: Linear,
    k: Linear,
    v: Linear,
    proj: Linear,
}

/// timm's `Mlp`: fc1 → exact GELU → dropout → fc2 → dropout.
#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

/// Cross-attention keys and values of the condition slots in one block, `[B, H, S, hd]` each.
#[derive(Debug, Clone)]
struct CrossKv {
    k: Tensor<4>,
    v: Tensor<4>,
}

/// The last self-attention keys (RoPE applied) and values of one block, `[B, H, ≤ w, hd]`.
#[derive(Debug, Clone, Default)]
struct SelfKv {
    k: Option<Tensor<4>>,
    v: Option<Tensor<4>>,
}

/// Official `MaskedBlockRoPECrossAttn`.
#[derive(Module, Debug)]
struct Block {
    norm1: LayerNorm,
    attn: SelfAttention,
    /// eps 1e-5.
    cross_norm: LayerNorm,
    /// eps 1e-5.
    cross_cond_norm: LayerNorm,
    attn2: CrossAttention,
    norm2: LayerNorm,
    mlp: Mlp,
    dropout: Dropout,
    num_heads: usize,
    /// Eps of `norm1` and `norm2` (burn's LayerNorm keeps its own private; the fused kernel needs it).
    norm_eps: f64,
}

impl Block {
    /// `x + MLP(norm2(x))`, on any slots (`[B, L, D]`).
    fn mlp_residual(&self, x: Tensor<3>) -> Tensor<3> {
        let h = gelu(dense(&self.mlp.fc1, layer_norm(&self.norm2, x.clone(), self.norm_eps)));
        x + dropout(&self.dropout, dense(&self.mlp.fc2, dropout(&self.dropout, h)))
    }

    /// Cross-attention keys and values of the condition slots `[B, S, D]` entering this block.
    fn cross_kv(&self, cond: Tensor<3>) -> CrossKv {
        let c = layer_norm(&self.cross_cond_norm, cond, CROSS_NORM_EPS);
        let h = self.num_heads;
        CrossKv {
            k: split_heads(dense(&self.attn2.k, c.clone()), h).swap_dims(1, 2),
            v: split_heads(dense(&self.attn2.v, c), h).swap_dims(1, 2),
        }
    }

    /// The image tokens `[B, L, D]` through the block (self-attention, cross-attention, MLP).
    /// `rope` holds their positions. With a cache, the keys and values of the previous tokens are
    /// prepended (the `L` queries are the last `L` keys) and the last `keep` are kept.
    fn image(&self, img: Tensor<3>, rope: &Rope, mask: &AttentionMask, cross: &CrossKv, cache: Option<(&mut SelfKv, usize)>) -> Tensor<3> {
        let [b, l, d] = img.dims();
        let h = self.num_heads;
        let scale = ((d / h) as f32).powf(-0.5);

        // 1. Windowed causal self-attention, RoPE on q and k.
        let qkv = &self.attn.qkv;
        let [q, k, v] = qkv_heads(layer_norm(&self.norm1, img.clone(), self.norm_eps), qkv.weight.val(), qkv.bias.as_ref().map(|b| b.val()), h);
        let q = rope.apply(q.swap_dims(1, 2)).swap_dims(1, 2);
        let mut k = rope.apply(k.swap_dims(1, 2)).swap_dims(1, 2);
        let mut v = v;
        if let Some((kv, keep)) = cache {
            if let (Some(pk), Some(pv)) = (kv.k.take(), kv.v.take()) {
                k = Tensor::cat(vec![pk, k], 2);
                v = Tensor::cat(vec![pv, v], 2);
            }
            let lk = k.dims()[2];
            let kept = keep.min(lk);
            kv.k = Some(k.clone().narrow(2, lk - kept, kept));
            kv.v = Some(v.clone().narrow(2, lk - kept, kept));
        }
        let a = attention(q, k, v, mask, scale);
        let img = img + dropout(&self.dropout, dense(&self.attn.proj, merge_heads(a)));

        // 2. Cross-attention to the condition slots, RoPE on q only.
        let q = rope.apply(split_heads(dense(&self.attn2.qkv, layer_norm(&self.cross_norm, img.clone(), CROSS_NORM_EPS)), h)).swap_dims(1, 2);
        let a = attention(q, cross.k.clone(), cross.v.clone(), &AttentionMask::None, scale);
        let img = img + dropout(&self.dropout, dense(&self.attn2.proj, merge_heads(a)));
        debug_assert_eq!(img.dims(), [b, l, d]);

        // 3. MLP (per slot).
        self.mlp_residual(img)
    }
}

/// Inputs and outputs of the blocks in a teacher-forced pass, for parity checks.
#[derive(Debug, Clone)]
pub struct EquivariantTrace {
    /// `[B, S + N, D]` input of the first block (condition slots first).
    pub blocks_in: Tensor<3>,
    /// Output of every block, `[B, S + N, D]` each (condition slots first).
    pub block_outs: Vec<Tensor<3>>,
}

/// The sampling state of [`Equivariant::start`] / [`Equivariant::next`]: per block, the
/// condition slots' cross-attention keys and values and the last `w` self-attention keys and
/// values; the output that predicts the next column. Its size does not depend on how many
/// columns were fed (except with `window = 0`, plain causal attention).
#[derive(Debug, Clone)]
pub struct EquivariantCache {
    layers: Vec<(CrossKv, SelfKv)>,
    /// `[B, D]` the output that predicts the next column.
    prediction: Tensor<2>,
    /// Columns fed so far.
    fed: usize,
    /// RoPE position of the first column.
    rope_shift: usize,
}

impl EquivariantCache {
    /// Columns fed so far (= the index of the column the current prediction is for).
    pub fn tokens(&self) -> usize {
        self.fed
    }

    /// Batch size.
    pub fn batch_size(&self) -> usize {
        self.prediction.dims()[0]
    }
}

/// The equivariant generator (official `EquivariantGenerativeModel`, flow head included as
/// `diffloss`). Build it with [`EquivariantConfig::init`].
#[derive(Module, Debug)]
pub struct Equivariant {
    /// `Linear(C, D)` token embedding.
    z_proj: Linear,
    /// LayerNorm eps 1e-6 over every slot.
    z_proj_ln: LayerNorm,
    /// `[classes, D]`.
    class_emb: Embedding,
    /// `[1, D]` the null condition (classifier-free guidance, label drop).
    fake_latent: Param<Tensor<2>>,
    /// `[1, S, D]` added to the condition in each slot.
    encoder_pos_embed_learned: Param<Tensor<3>>,
    encoder_blocks: Vec<Block>,
    encoder_norm: LayerNorm,
    /// The flow head (official `diffloss.net`).
    diffloss: FlowHead,
    num_heads: usize,
    token_num: usize,
    window: usize,
    shift_num: usize,
    num_sampling_steps: usize,
    diffusion_batch_mul: usize,
    label_drop_prob: f64,
    /// Eps of `encoder_norm`.
    norm_eps: f64,
}

impl Equivariant {
    /// Columns per image at the training width N.
    pub fn token_num(&self) -> usize {
        self.token_num
    }

    /// Channels C of one column token.
    pub fn token_dim(&self) -> usize {
        self.diffloss.in_channels()
    }

    /// Width D.
    pub fn embed_dim(&self) -> usize {
        self.fake_latent.lazy_shape().dims::<2>()[1]
    }

    /// Attention heads.
    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    /// Dimension of one attention head.
    pub fn head_dim(&self) -> usize {
        self.embed_dim() / self.num_heads
    }

    /// Condition slots S.
    pub fn buffer_size(&self) -> usize {
        self.encoder_pos_embed_learned.lazy_shape().dims::<3>()[1]
    }

    /// Number of classes.
    pub fn class_num(&self) -> usize {
        self.class_emb.weight.lazy_shape().dims::<2>()[0]
    }

    /// Causal window w (0 = plain causal).
    pub fn window(&self) -> usize {
        self.window
    }

    /// Training RoPE shifts are drawn from `0..shift_num`.
    pub fn shift_num(&self) -> usize {
        self.shift_num
    }

    /// Euler steps of the flow head when sampling.
    pub fn num_sampling_steps(&self) -> usize {
        self.num_sampling_steps
    }

    /// Noise draws per token in the training loss.
    pub fn diffusion_batch_mul(&self) -> usize {
        self.diffusion_batch_mul
    }

    /// Probability of the null condition in training.
    pub fn label_drop_prob(&self) -> f64 {
        self.label_drop_prob
    }

    /// The flow head.
    pub fn head(&self) -> &FlowHead {
        &self.diffloss
    }

    /// Which image tokens each image token attends to (official `mask`): `Window(w)`, or
    /// `Causal` when `w = 0`.
    pub fn attention_mask(&self) -> AttentionMask {
        mask_of(self.window)
    }

    /// Embedding of `labels` (official `class_emb(labels)`).
    ///
    /// # Shapes
    /// - `labels`: `[B]` in `0..class_num` → `[B, D]`
    pub fn class_embedding(&self, labels: Tensor<1, Int>) -> Tensor<2> {
        let [b] = labels.dims();
        self.class_emb.forward(labels.reshape([b, 1])).reshape([b, self.embed_dim()])
    }

    /// The null condition (official `fake_latent.repeat(B, 1)`), `[B, D]`.
    pub fn null_condition(&self, batch: usize) -> Tensor<2> {
        self.fake_latent.val().expand([batch, self.embed_dim()])
    }

    /// The condition of each sample: its class embedding, or the learned null where `null` is
    /// set (guidance's unconditional half, or the training label drop the caller drew with
    /// probability [`Equivariant::label_drop_prob`]). Labels under `null` must still be valid.
    ///
    /// # Shapes
    /// - `labels`, `null`: `[B]` → `[B, D]`
    pub fn condition(&self, labels: Tensor<1, Int>, null: Tensor<1, Bool>) -> Tensor<2> {
        let [b] = labels.dims();
        let d = self.embed_dim();
        self.class_embedding(labels).mask_where(null.reshape([b, 1]).expand([b, d]), self.null_condition(b))
    }

    /// The condition slots entering the first block: `z_proj_ln(cond + encoder_pos_embed_learned)`.
    fn cond_slots(&self, cond: Tensor<2>) -> Tensor<3> {
        let [b, d] = cond.dims();
        layer_norm(&self.z_proj_ln, cond.reshape([b, 1, d]) + self.encoder_pos_embed_learned.val(), Z_PROJ_LN_EPS)
    }

    /// Column tokens entering the first block: `z_proj_ln(z_proj(tokens))`.
    fn embed_tokens(&self, tokens: Tensor<3>) -> Tensor<3> {
        layer_norm(&self.z_proj_ln, dense(&self.z_proj, tokens), Z_PROJ_LN_EPS)
    }

    /// Teacher forcing (official `forward_encoder`): output `i` predicts column `i` from the
    /// columns before it. Any number of columns; RoPE positions are `rope_shift + i` (training:
    /// a shift drawn from `0..shift_num`; eval: 0).
    ///
    /// # Shapes
    /// - `tokens`: `[B, N, C]`, `cond`: `[B, D]` (see [`Equivariant::condition`]) → `[B, N, D]`
    pub fn forward(&self, tokens: Tensor<3>, cond: Tensor<2>, rope_shift: usize) -> Tensor<3> {
        self.forward_inner(tokens, cond, rope_shift, None)
    }

    /// [`Equivariant::forward`], also returning the blocks' input and every block's output.
    pub fn forward_traced(&self, tokens: Tensor<3>, cond: Tensor<2>, rope_shift: usize) -> (Tensor<3>, EquivariantTrace) {
        let mut trace = Vec::new();
        let out = self.forward_inner(tokens, cond, rope_shift, Some(&mut trace));
        let blocks_in = trace.remove(0);
        (out, EquivariantTrace { blocks_in, block_outs: trace })
    }

    fn forward_inner(&self, tokens: Tensor<3>, cond: Tensor<2>, rope_shift: usize, mut trace: Option<&mut Vec<Tensor<3>>>) -> Tensor<3> {
        let [_, n, _] = tokens.dims();
        assert!(n > 0, "no columns to run");
        let device = tokens.device();
        let mut img = self.embed_tokens(tokens);
        let mut cond = self.cond_slots(cond);
        let rope = Rope::new(rope_shift, n, self.head_dim(), &device);
        let mask = self.attention_mask();
        let mut record = |cond: &Tensor<3>, img: &Tensor<3>| {
            if let Some(t) = trace.as_deref_mut() {
                t.push(Tensor::cat(vec![cond.clone(), img.clone()], 1));
            }
        };
        record(&cond, &img);
        for block in &self.encoder_blocks {
            // Cross-attention reads the condition slots as they enter the block.
            let cross = block.cross_kv(cond.clone());
            img = block.image(img, &rope, &mask, &cross, None);
            cond = block.mlp_residual(cond);
            record(&cond, &img);
        }
        // The official `x[:, buffer_size - 1 : -1]`: the last condition slot, then every column
        // but the last.
        let s = self.buffer_size();
        let out = Tensor::cat(vec![cond.narrow(1, s - 1, 1), img.narrow(1, 0, n - 1)], 1);
        layer_norm(&self.encoder_norm, out, self.norm_eps)
    }

    /// Starts sampling: runs the condition slots through every block once and returns the cache,
    /// whose prediction is for column 0 (read it with `next(&mut cache, None)`). RoPE positions
    /// start at 0.
    ///
    /// # Shapes
    /// - `cond`: `[B, D]` (for guidance: the conditional rows, then the null rows)
    pub fn start(&self, cond: Tensor<2>) -> EquivariantCache {
        self.start_shifted(cond, 0)
    }

    /// [`Equivariant::start`] with RoPE positions starting at `rope_shift`.
    pub fn start_shifted(&self, cond: Tensor<2>, rope_shift: usize) -> EquivariantCache {
        let [b, d] = cond.dims();
        let mut cond = self.cond_slots(cond);
        let mut layers = Vec::with_capacity(self.encoder_blocks.len());
        for block in &self.encoder_blocks {
            layers.push((block.cross_kv(cond.clone()), SelfKv::default()));
            cond = block.mlp_residual(cond);
        }
        let s = self.buffer_size();
        let prediction = layer_norm(&self.encoder_norm, cond.narrow(1, s - 1, 1), self.norm_eps).reshape([b, d]);
        EquivariantCache { layers, prediction, fed: 0, rope_shift }
    }

    /// Feeds the next columns and returns the output that predicts the column after them; with
    /// `None`, returns the current prediction (after [`Equivariant::start`]: for column 0).
    /// Several columns at once (a known prefix) are fed in one pass. Equals
    /// [`Equivariant::forward`] over all the columns fed so far (tested below), at any width.
    ///
    /// # Shapes
    /// - `tokens`: `[B, L, C]` → `[B, D]`
    pub fn next(&self, cache: &mut EquivariantCache, tokens: Option<Tensor<3>>) -> Tensor<2> {
        let Some(tokens) = tokens else {
            return cache.prediction.clone();
        };
        let [b, l, _] = tokens.dims();
        let d = self.embed_dim();
        let mut img = self.embed_tokens(tokens);
        let rope = Rope::new(cache.rope_shift + cache.fed, l, self.head_dim(), &img.device());
        let mask = self.attention_mask();
        // The window needs the last w keys; plain causal attention needs them all.
        let keep = if self.window == 0 { usize::MAX } else { self.window };
        for (block, (cross, kv)) in self.encoder_blocks.iter().zip(cache.layers.iter_mut()) {
            img = block.image(img, &rope, &mask, cross, Some((kv, keep)));
        }
        cache.fed += l;
        cache.prediction = layer_norm(&self.encoder_norm, img.narrow(1, l - 1, 1), self.norm_eps).reshape([b, d]);
        cache.prediction.clone()
    }

    /// The training loss (official `forward` → `forward_loss` → `DiffLoss.forward`): teacher
    /// forcing with `rope_shift`, then each (output, column) row repeated `diffusion_batch_mul`
    /// times (tiled: row `r · B·N + i`, as `.repeat(mul, 1)`) through [`FlowHead::loss`] with the
    /// given `noise ~ N(0, 1)` and `u ~ U(0, 1)` per repeated row.
    ///
    /// # Shapes
    /// - `tokens`: `[B, N, C]`, `cond`: `[B, D]`, `noise`: `[mul · B · N, C]`, `u`: `[mul · B · N]`
    ///   → `[1]`
    pub fn loss(&self, tokens: Tensor<3>, cond: Tensor<2>, rope_shift: usize, noise: Tensor<2>, u: Tensor<1>) -> Tensor<1> {
        let [b, n, c] = tokens.dims();
        let z = self.forward(tokens.clone(), cond, rope_shift);
        let d = z.dims()[2];
        self.diffloss.loss(tokens.reshape([b * n, c]), z.reshape([b * n, d]), self.diffusion_batch_mul, noise, u)
    }

    /// Loads an official `EquivariantGenerativeModel` `state_dict` (names as in
    /// `generator/equ_modeling.py`, the head under `diffloss.net`).
    pub fn load_official(mut self, sd: &mut StateDict) -> crate::Result<Self> {
        self.z_proj = sd.linear("z_proj", self.z_proj)?;
        self.z_proj_ln = sd.layer_norm("z_proj_ln", self.z_proj_ln)?;
        self.class_emb = sd.embedding("class_emb", self.class_emb)?;
        self.fake_latent = sd.param("fake_latent", self.fake_latent)?;
        self.encoder_pos_embed_learned = sd.param("encoder_pos_embed_learned", self.encoder_pos_embed_learned)?;
        let blocks = std::mem::take(&mut self.encoder_blocks);
        for (i, mut block) in blocks.into_iter().enumerate() {
            let p = |name: &str| format!("encoder_blocks.{i}.{name}");
            block.norm1 = sd.layer_norm(&p("norm1"), block.norm1)?;
            block.attn.qkv = sd.linear(&p("attn.qkv"), block.attn.qkv)?;
            block.attn.proj = sd.linear(&p("attn.proj"), block.attn.proj)?;
            block.cross_norm = sd.layer_norm(&p("cross_norm"), block.cross_norm)?;
            block.cross_cond_norm = sd.layer_norm(&p("cross_cond_norm"), block.cross_cond_norm)?;
            block.attn2.qkv = sd.linear(&p("attn2.qkv"), block.attn2.qkv)?;
            block.attn2.k = sd.linear(&p("attn2.k"), block.attn2.k)?;
            block.attn2.v = sd.linear(&p("attn2.v"), block.attn2.v)?;
            block.attn2.proj = sd.linear(&p("attn2.proj"), block.attn2.proj)?;
            block.norm2 = sd.layer_norm(&p("norm2"), block.norm2)?;
            block.mlp.fc1 = sd.linear(&p("mlp.fc1"), block.mlp.fc1)?;
            block.mlp.fc2 = sd.linear(&p("mlp.fc2"), block.mlp.fc2)?;
            self.encoder_blocks.push(block);
        }
        self.encoder_norm = sd.layer_norm("encoder_norm", self.encoder_norm)?;
        self.diffloss = self.diffloss.load_official(sd, "diffloss.net")?;
        Ok(self)
    }
}

/// Official weight-decay rule (`util/misc.py`, `add_weight_decay`) for a parameter at `path` in
/// this module tree: no decay on 1-D parameters, biases, or anything in the flow head
/// (`diffloss`). So `class_emb`, `fake_latent` (`[1, D]`) and `encoder_pos_embed_learned` do decay.
pub fn decays(path: &str, rank: usize) -> bool {
    !(rank < 2 || path.ends_with("bias") || path.contains("diffloss"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn tiny() -> EquivariantConfig {
        EquivariantConfig::new(8, 4, 32, 2, 4, 3).with_buffer_size(3).with_dropout(0.0).with_head_width(16).with_head_depth(2)
    }

    #[test]
    fn a_window_reads_fewer_keys_than_full_causal_attention() {
        // 8 columns: window 3 reads 1 + 2 + 3 + 4·5 keys, full causal 1 + 2 + … + 8.
        assert_eq!(tiny().with_window(3).attention_keys(8), 26);
        assert_eq!(tiny().with_window(0).attention_keys(8), 36);
        // The window's share shrinks with the width: 4·128 − 6 of 128·129/2.
        assert_eq!(tiny().with_window(3).attention_keys(128), 506);
        assert_eq!(tiny().with_window(0).attention_keys(128), 8256);
    }

    /// Every parameter random (the official init zeroes the head's output).
    fn random_model(config: &EquivariantConfig, device: &Device) -> Equivariant {
        struct Randomize;
        impl burn::module::ModuleMapper for Randomize {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, t, mapper) = param.consume();
                // On an autodiff device the new leaves must keep tracking gradients.
                let r = t.random_like(Distribution::Normal(0.0, 0.3)).set_require_grad(t.is_require_grad());
                Param::from_mapped_value(id, r, mapper)
            }
        }
        config.init(device).map(&mut Randomize)
    }

    fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    fn labels(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
        let n = values.len();
        Tensor::from_data(TensorData::new(values, [n]), device)
    }

    /// Feeds `tokens` in chunks of `chunk` columns and checks every prediction against the full
    /// forward over the same columns.
    fn check_cache(config: &EquivariantConfig, n: usize, chunk: usize, shift: usize) {
        let device = Device::flex();
        device.seed(21);
        let model = random_model(config, &device);
        let tokens = Tensor::<3>::random([2, n, config.token_dim], Distribution::Normal(0.0, 1.0), &device);
        let cond = model.condition(labels(vec![1, 2], &device), Tensor::from_data(TensorData::new(vec![false, true], [2]), &device));
        let full = model.forward(tokens.clone(), cond.clone(), shift);
        let want = |i: usize| full.clone().narrow(1, i, 1).reshape([2, config.embed_dim]);
        let mut cache = model.start_shifted(cond, shift);
        let first = model.next(&mut cache, None);
        assert!(max_abs_diff(first, want(0)) < 1e-5, "column 0");
        let mut fed = 0;
        while fed + 1 < n {
            let l = chunk.min(n - 1 - fed);
            let out = model.next(&mut cache, Some(tokens.clone().narrow(1, fed, l)));
            fed += l;
            let diff = max_abs_diff(out, want(fed));
            assert!(diff < 1e-5, "prediction for column {fed}: max diff {diff}");
            // Bounded memory: at most w keys per block.
            let kept = cache.layers[0].1.k.as_ref().unwrap().dims()[2];
            assert!(config.window == 0 || kept <= config.window, "{kept} keys kept");
        }
        assert_eq!(cache.tokens(), n - 1);
    }

    #[test]
    fn cached_columns_match_teacher_forcing_beyond_the_training_width() {
        check_cache(&tiny(), 13, 1, 0);
    }

    #[test]
    fn cached_prefixes_and_shifted_positions_match_teacher_forcing() {
        check_cache(&tiny(), 11, 3, 5);
    }

    #[test]
    fn window_zero_is_plain_causal_attention_in_both_paths() {
        let config = tiny().with_window(0);
        check_cache(&config, 10, 2, 0);
        let model = config.init(&Device::flex());
        assert_eq!(model.attention_mask(), AttentionMask::Causal);
    }

    #[test]
    fn the_window_limits_the_receptive_field_to_w_more_columns_per_block() {
        let device = Device::flex();
        device.seed(22);
        let config = tiny(); // 2 blocks, w = 3
        let model = random_model(&config, &device);
        let n = 16;
        let tokens = Tensor::<3>::random([1, n, 4], Distribution::Normal(0.0, 1.0), &device);
        let bump = Tensor::<3>::zeros([1, n, 4], &device).slice_assign([0..1, 5..6, 0..4], Tensor::ones([1, 1, 4], &device));
        let cond = model.class_embedding(labels(vec![0], &device));
        let a = model.forward(tokens.clone(), cond.clone(), 0);
        let b = model.forward(tokens + bump, cond, 0);
        // Column 5 feeds output 6; two blocks of w = 3 carry it to output 6 + 6 = 12.
        for i in 0..n {
            let diff = max_abs_diff(a.clone().narrow(1, i, 1), b.clone().narrow(1, i, 1));
            if (6..=12).contains(&i) {
                assert!(diff > 1e-4, "output {i} should see column 5");
            } else {
                assert!(diff < 1e-6, "output {i} should not see column 5: {diff}");
            }
        }
    }

    #[test]
    fn the_null_condition_is_the_learned_fake_latent() {
        let device = Device::flex();
        device.seed(23);
        let model = random_model(&tiny(), &device);
        let l = labels(vec![0, 2, 1], &device);
        let null = Tensor::<1, Bool>::from_data(TensorData::new(vec![false, true, false], [3]), &device);
        let c = model.condition(l.clone(), null);
        let emb = model.class_embedding(l);
        assert_eq!(max_abs_diff(c.clone().narrow(0, 0, 1), emb.clone().narrow(0, 0, 1)), 0.0);
        assert_eq!(max_abs_diff(c.clone().narrow(0, 2, 1), emb.narrow(0, 2, 1)), 0.0);
        assert_eq!(max_abs_diff(c.narrow(0, 1, 1), model.fake_latent.val()), 0.0);
    }

    #[test]
    fn the_loss_trains_under_autodiff_with_a_rope_shift() {
        let device = Device::flex().autodiff();
        device.seed(24);
        let config = tiny();
        let model = random_model(&config, &device);
        let (b, n, c) = (2, 8, 4);
        let rows = b * n * config.diffusion_batch_mul;
        let tokens = Tensor::<3>::random([b, n, c], Distribution::Normal(0.0, 1.0), &device);
        let cond = model.class_embedding(labels(vec![0, 1], &device));
        let noise = Tensor::<2>::random([rows, c], Distribution::Normal(0.0, 1.0), &device);
        let u = Tensor::<1>::random([rows], Distribution::Uniform(0.0, 1.0), &device);
        let loss = model.loss(tokens, cond, 3, noise, u);
        let grads = loss.backward();
        let g = model.z_proj.weight.grad(&grads).expect("z_proj gets a gradient");
        assert!(g.abs().sum().into_scalar::<f32>() > 0.0);
        let g = model.fake_latent.grad(&grads);
        assert!(g.is_none_or(|g| g.abs().sum().into_scalar::<f32>() == 0.0), "no sample used the null");
    }

    #[test]
    fn official_init_zeroes_the_head_output() {
        let device = Device::flex();
        let model = tiny().init(&device);
        let x = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([3, 32], Distribution::Normal(0.0, 1.0), &device);
        let v = model.head().velocity(x, Tensor::full([3], 0.5, &device), z);
        assert_eq!(v.abs().max().into_scalar::<f32>(), 0.0);
        assert_eq!(model.buffer_size(), 3);
        assert_eq!(model.class_num(), 3);
    }

    #[test]
    fn weight_decay_follows_the_official_rule() {
        assert!(decays("encoder_blocks.0.attn.qkv.weight", 2));
        assert!(decays("class_emb.weight", 2));
        assert!(decays("fake_latent", 2));
        assert!(decays("encoder_pos_embed_learned", 3));
        assert!(!decays("encoder_blocks.0.attn.qkv.bias", 1));
        assert!(!decays("encoder_norm.gamma", 1));
        assert!(!decays("diffloss.res_blocks.0.mlp_0.weight", 2));
    }

    #[test]
    fn presets_are_valid_and_configs_that_cannot_be_built_are_refused() {
        for config in [EquivariantConfig::mnist(), EquivariantConfig::scenes(), EquivariantConfig::anchor(), tiny()] {
            config.validate().unwrap();
        }
        assert!(EquivariantConfig { num_heads: 3, ..tiny() }.validate().is_err()); // 32 / 3
        assert!(EquivariantConfig::new(8, 4, 24, 2, 8, 3).validate().is_err()); // odd head dim
        assert!(tiny().with_buffer_size(0).validate().is_err());
        assert!(tiny().with_dropout(1.0).validate().is_err());
    }

    #[test]
    fn rope_table_matches_the_official_layout() {
        let device = Device::flex();
        let t = freqs_cis(0, 3, 4, &device).try_into_vec_as::<f32>().unwrap();
        // Position 0: cos 1, sin 0; position 2, pair 1 (f = 10000^(-1/2) = 0.01): angle 0.02.
        assert_eq!(&t[..4], &[1.0, 0.0, 1.0, 0.0]);
        assert!((t[8 + 2] - 0.02f32.cos()).abs() < 1e-7 && (t[8 + 3] - 0.02f32.sin()).abs() < 1e-7);
    }
}
