//! VAR: visual autoregressive modeling by next-scale prediction (arXiv 2404.02905).
//! Official: FoundationVision/VAR @78b95394, `models/var.py` (`VAR`) and `models/basic_var.py`
//! (`SelfAttention`, `FFN`, `AdaLNSelfAttn`, `AdaLNBeforeHead`).
//!
//! A GPT-2-like transformer over all scales' tokens at once, `L = Σ pn²` of them, smallest scale
//! first. The class embedding is both the start token and the AdaLN condition; attention is
//! block-causal (bidirectional inside a scale, causal across scales); token `l` of scale `k`
//! predicts the code at the same place of scale `k` from a coarse estimate of it.
//!
//! With [`TokenOrder::NextToken`] the same transformer becomes the raster-order baseline of the
//! paper's first claim: one token per forward pass under a causal mask, coarse scales first and
//! each scale in raster order, the input at each position being the embedding of the token before
//! it. Tokenizer, blocks, widths and training are VAR's; only the order (and the input embedding)
//! differ, so comparing the two isolates next-scale prediction (`tessera eval --claims`).
//!
//! Differences from the official code:
//! - Label dropout is not hidden in `forward`: [`Var::forward`] never drops labels; training asks
//!   for it with [`Var::drop_labels`] (official `forward` drops with `torch.rand`, even in eval).
//! - The KV cache is a value passed to [`Var::forward_cached`], not `kv_caching(True)` module state.
//! - No progressive training (`prog_si`), no shared AdaLN (`shared_aln`, only d36-s), no DropPath
//!   and no dropout yet (all identity in eval, which is what the fixtures check).
//! - `init_weights`' `trunc_normal_(std)` is drawn as a plain normal: it truncates at ±2 in
//!   absolute value, which never binds for the stds used (≤ 0.1).

use std::ops::Range;

use burn::module::Param;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear};
use burn::prelude::*;
use burn::tensor::Distribution;
use tessera_kernels::activation::{gelu_tanh, silu};
use tessera_kernels::linear::{forward as dense, qkv_heads};
use tessera_kernels::norm::{gated_residual, l2_normalize, layer_norm_modulate};
use tessera_kernels::{AttentionMask, attention};

use crate::Error;
use crate::kv::LayerKv;
use crate::rng::SplitMix64;
use crate::weights::StateDict;

/// The order a [`Var`] generates tokens in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TokenOrder {
    /// VAR: a whole scale per forward pass, block-causal across scales.
    NextScale,
    /// The raster-order baseline: one token per forward pass, causal, coarse scales first and
    /// each scale row by row. Needs a first scale of one token (the start token's place).
    NextToken,
}

/// Hyper-parameters of [`Var`]. Saved and loaded as JSON through burn's `Config` (serde).
#[derive(Config, Debug)]
pub struct VarConfig {
    /// Side of each scale's token map, coarse to fine (official `patch_nums`).
    /// 256 px: `[1, 2, 3, 4, 5, 6, 8, 10, 13, 16]`; the last one is the tokenizer's latent side.
    pub patch_nums: Vec<usize>,
    /// Codebook size V of the tokenizer (official `vae.vocab_size`, 4096).
    pub vocab_size: usize,
    /// Latent channels Cvae of the tokenizer (official `vae.Cvae`, 32).
    pub z_channels: usize,
    /// Number of classes; label `num_classes` is the null class used by guidance.
    pub num_classes: usize,
    /// Transformer blocks.
    pub depth: usize,
    /// Width C, also the condition width D. `build_vae_var`: `64 * depth`.
    pub embed_dim: usize,
    /// Attention heads. `build_vae_var`: `depth` (head dim 64).
    pub num_heads: usize,
    /// MLP hidden width as a multiple of C.
    #[config(default = 4.0)]
    pub mlp_ratio: f64,
    /// Epsilon of the affine-free LayerNorms.
    #[config(default = 1e-6)]
    pub norm_eps: f64,
    /// Cosine attention: l2-normalised q and k, learned per-head temperature ≤ 100 (`--anorm`,
    /// on for every official checkpoint). Off: dot product scaled by `0.25 / sqrt(head_dim)`.
    #[config(default = true)]
    pub attn_l2_norm: bool,
    /// Probability that [`Var::drop_labels`] swaps a label for the null class (training only).
    #[config(default = 0.1)]
    pub cond_drop_rate: f64,
    /// Multiplier of the AdaLN scale/shift weights at init (official `init_adaln`).
    #[config(default = 0.5)]
    pub init_adaln: f64,
    /// Multiplier of the AdaLN gate (gamma) weights at init (official `--alng`; README runs use 1e-3
    /// for d16/d20 down to 5e-6 for d36).
    #[config(default = 1e-5)]
    pub init_adaln_gamma: f64,
    /// Multiplier of the head weights at init.
    #[config(default = 0.02)]
    pub init_head: f64,
    /// Std of the weight init; negative means `sqrt(1 / (3 C))` as in `build_vae_var`.
    #[config(default = -1.0)]
    pub init_std: f64,
    /// Next-token for the raster-order baseline; `None` is VAR's next-scale order. An `Option`
    /// because configs saved before this field existed lack it, and burn's `Config` only fills a
    /// missing field when it is an `Option`. Read it with [`VarConfig::order`].
    #[config(default = "None")]
    pub order: Option<TokenOrder>,
}

impl VarConfig {
    /// Floats per image of the largest buffer a training step allocates ([`crate::memory`]):
    /// the MLP or the logits over all scales' tokens.
    pub fn largest_floats_per_image(&self) -> u64 {
        let tokens = self.patch_nums.iter().map(|p| p * p).sum();
        let hidden = ((self.embed_dim as f64 * self.mlp_ratio) as usize).max(self.vocab_size);
        crate::memory::transformer_floats(tokens, hidden)
    }

    /// The official `build_vae_var` sizing: width `64 * depth`, `depth` heads of 64.
    pub fn from_depth(
        depth: usize,
        patch_nums: Vec<usize>,
        vocab_size: usize,
        z_channels: usize,
        num_classes: usize,
    ) -> Self {
        Self::new(
            patch_nums,
            vocab_size,
            z_channels,
            num_classes,
            depth,
            64 * depth,
            depth,
        )
    }

    /// Number of tokens over all scales, `L = Σ pn²`.
    pub fn seq_len(&self) -> usize {
        self.patch_nums.iter().map(|p| p * p).sum()
    }

    /// The generation order.
    pub fn order(&self) -> TokenOrder {
        self.order.unwrap_or(TokenOrder::NextScale)
    }

    /// This config in `order` (next-scale is stored as `None`, as older files have it).
    pub fn in_order(mut self, order: TokenOrder) -> Self {
        self.order = (order != TokenOrder::NextScale).then_some(order);
        self
    }

    /// Token range of each scale in the full sequence (official `begin_ends`).
    pub fn scale_ranges(&self) -> Vec<Range<usize>> {
        scale_ranges(&self.patch_nums)
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
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return bad(format!(
                "embed_dim {} is not a multiple of num_heads {}",
                self.embed_dim, self.num_heads
            ));
        }
        if self.depth == 0 || self.vocab_size == 0 || self.z_channels == 0 {
            return bad("depth, vocab_size and z_channels must be positive".into());
        }
        if self.order() == TokenOrder::NextToken && self.patch_nums[0] != 1 {
            return bad(format!("next-token order needs a first scale of 1 token, got {}", self.patch_nums[0]));
        }
        self.validate_bounds()
    }

    /// Upper bounds on every size, and finite factors: a config read from a file (whose checksum
    /// anyone can recompute) must not ask for terabytes, or build a model that cannot run.
    fn validate_bounds(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let sizes = [
            ("vocab_size", self.vocab_size, 1 << 16),
            ("z_channels", self.z_channels, 4096),
            ("num_classes", self.num_classes, 1 << 16),
            ("depth", self.depth, 256),
            ("embed_dim", self.embed_dim, 8192),
            ("num_heads", self.num_heads, 256),
            ("scales (patch_nums)", self.patch_nums.len(), 64),
            ("tokens over all scales", self.seq_len(), 1 << 14),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return bad(format!("{name} must be in 1..={max}, got {value}"));
            }
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0 && self.mlp_ratio <= 16.0) {
            return bad(format!("mlp_ratio must be in (0, 16], got {}", self.mlp_ratio));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps must be finite and positive, got {}", self.norm_eps));
        }
        if !(0.0..1.0).contains(&self.cond_drop_rate) {
            return bad(format!("cond_drop_rate must be in [0, 1), got {}", self.cond_drop_rate));
        }
        let factors = [
            ("init_adaln", self.init_adaln),
            ("init_adaln_gamma", self.init_adaln_gamma),
            ("init_head", self.init_head),
            ("init_std", self.init_std),
        ];
        if let Some((name, v)) = factors.iter().find(|(_, v)| !v.is_finite()) {
            return bad(format!("{name} must be finite, got {v}"));
        }
        Ok(())
    }

    /// A randomly initialised VAR, as the official `init_weights` leaves it, ready to train.
    ///
    /// # Panics
    /// On an inconsistent config (see [`VarConfig::validate`]).
    pub fn init(&self, device: &Device) -> Var {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let c = self.embed_dim;
        let std = if self.init_std < 0.0 {
            (1.0 / c as f64 / 3.0).sqrt()
        } else {
            self.init_std
        };
        // The constructor draws the position tables with the automatic std, whatever init_std is.
        let auto_std = (1.0 / c as f64 / 3.0).sqrt();
        // proj and fc2 weights are divided by sqrt(2 depth) (GPT-2's residual scaling).
        let resid = std / (2.0 * self.depth as f64).sqrt();
        let first_l = self.patch_nums[0] * self.patch_nums[0];
        let hidden = (c as f64 * self.mlp_ratio).round() as usize;

        // AdaLN output chunks are (gamma1, gamma2, scale1, scale2, shift1, shift2): gates get init_adaln_gamma.
        let ada_mults: Vec<f64> = (0..6)
            .map(|i| {
                if i < 2 {
                    self.init_adaln_gamma
                } else {
                    self.init_adaln
                }
            })
            .collect();

        let blocks = (0..self.depth)
            .map(|_| AdaLnSelfAttn {
                attn: SelfAttention {
                    mat_qkv: normal_linear(c, 3 * c, false, std, device),
                    q_bias: Initializer::Zeros.init([c], device),
                    v_bias: Initializer::Zeros.init([c], device),
                    scale_mul_1h11: self.attn_l2_norm.then(|| {
                        Initializer::Constant { value: 4f64.ln() }
                            .init([1, self.num_heads, 1, 1], device)
                    }),
                    proj: normal_linear(c, c, true, resid, device),
                    num_heads: self.num_heads,
                    attn_l2_norm: self.attn_l2_norm,
                },
                ffn: Ffn {
                    fc1: normal_linear(c, hidden, true, std, device),
                    fc2: normal_linear(hidden, c, true, resid, device),
                },
                ada_lin: chunked_linear(c, c, std, &ada_mults, device),
                embed_dim: c,
                norm_eps: self.norm_eps,
            })
            .collect();

        Var {
            // 1. input (word) embedding
            word_embed: normal_linear(self.z_channels, c, true, std, device),
            // 2. class embedding (+ the null class) and the start position
            class_emb: normal_embedding(self.num_classes + 1, c, std, device),
            pos_start: Initializer::Normal {
                mean: 0.0,
                std: auto_std,
            }
            .init([1, first_l, c], device),
            // 3. absolute position of every token of every scale, and the level embedding
            pos_1lc: Initializer::Normal {
                mean: 0.0,
                std: auto_std,
            }
            .init([1, self.seq_len(), c], device),
            lvl_embed: normal_embedding(self.patch_nums.len(), c, std, device),
            // 4. backbone blocks
            blocks,
            // 6. classifier head
            head_nm: AdaLnBeforeHead {
                ada_lin: chunked_linear(c, c, std, &[self.init_adaln, self.init_adaln], device),
                embed_dim: c,
                norm_eps: self.norm_eps,
            },
            head: normal_linear(c, self.vocab_size, true, std * self.init_head, device),
            token_embed: (self.order() == TokenOrder::NextToken).then(|| normal_embedding(self.vocab_size, c, std, device)),
            patch_nums: self.patch_nums.clone(),
            num_classes: self.num_classes,
            cond_drop_rate: self.cond_drop_rate,
        }
    }

    /// A VAR with the weights of an official `state_dict` (safetensors bytes, official names).
    pub fn init_official(&self, bytes: Vec<u8>, device: &Device) -> crate::Result<Var> {
        self.validate()?;
        let mut sd = StateDict::from_bytes(bytes)?;
        let var = self.init(device).load_official(&mut sd)?;
        sd.finish()?;
        Ok(var)
    }
}

/// Linear with N(0, std²) weights and zero bias (official `init_weights` for `nn.Linear`).
fn normal_linear(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
    Linear {
        weight: Initializer::Normal { mean: 0.0, std }.init([d_in, d_out], device),
        bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
    }
}

/// Linear `D → k·C` whose output chunk `i` has weights N(0, (std·mults[i])²), zero bias.
fn chunked_linear(d_in: usize, c: usize, std: f64, mults: &[f64], device: &Device) -> Linear {
    let k = mults.len();
    let col_scale: Vec<f32> = mults
        .iter()
        .flat_map(|m| std::iter::repeat_n(*m as f32, c))
        .collect();
    let col_scale = Tensor::<2>::from_data(TensorData::new(col_scale, [1, k * c]), device);
    let w = Tensor::<2>::random([d_in, k * c], Distribution::Normal(0.0, std), device) * col_scale;
    Linear {
        weight: Param::from_tensor(w),
        bias: Some(Initializer::Zeros.init([k * c], device)),
    }
}

fn normal_embedding(n: usize, d: usize, std: f64, device: &Device) -> Embedding {
    EmbeddingConfig::new(n, d)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device)
}

/// Token ranges of the scales in the full sequence.
pub fn scale_ranges(patch_nums: &[usize]) -> Vec<Range<usize>> {
    let mut begin = 0;
    patch_nums
        .iter()
        .map(|pn| {
            let r = begin..begin + pn * pn;
            begin = r.end;
            r
        })
        .collect()
}

/// Column chunk `i` of width `c` of an AdaLN projection, as `[B, 1, C]`.
fn chunk(ada: &Tensor<2>, i: usize, c: usize) -> Tensor<3> {
    let [b, _] = ada.dims();
    ada.clone().narrow(1, i * c, c).reshape([b, 1, c])
}

/// The KV cache of [`Var::forward_cached`]: one entry per block, growing by one scale per call.
#[derive(Debug, Clone)]
pub struct VarCache {
    layers: Vec<LayerKv>,
}

impl VarCache {
    /// Number of tokens cached so far.
    pub fn len(&self) -> usize {
        self.layers.first().map_or(0, LayerKv::len)
    }

    /// Whether nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Multi-head self-attention with q/v biases (no k bias) and optional cosine attention.
#[derive(Module, Debug)]
struct SelfAttention {
    /// Official `mat_qkv`: Linear(C, 3C) without bias.
    mat_qkv: Linear,
    /// `[C]`, added to q.
    q_bias: Param<Tensor<1>>,
    /// `[C]`, added to v (k has none: official buffer `zero_k_bias`).
    v_bias: Param<Tensor<1>>,
    /// `[1, H, 1, 1]` log-temperature per head (official `scale_mul_1H11`), with `attn_l2_norm`.
    scale_mul_1h11: Option<Param<Tensor<4>>>,
    proj: Linear,
    num_heads: usize,
    attn_l2_norm: bool,
}

impl SelfAttention {
    /// `x`: `[B, L, C]` → `[B, L, C]`; `mask` says which keys each query sees (with a cache,
    /// the queries are the last `L` of the cached keys).
    fn forward(
        &self,
        x: Tensor<3>,
        mask: &AttentionMask,
        cache: Option<&mut LayerKv>,
    ) -> Tensor<3> {
        let [b, l, c] = x.dims();
        let (h, hd) = (self.num_heads, c / self.num_heads);
        let zeros = Tensor::<1>::zeros([c], &x.device());
        let qkv_bias = Tensor::cat(vec![self.q_bias.val(), zeros, self.v_bias.val()], 0);
        let [mut q, mut k, mut v] = qkv_heads(x, self.mat_qkv.weight.val(), Some(qkv_bias), h);

        let mut scale = 1.0;
        if let Some(scale_mul) = &self.scale_mul_1h11 {
            // F.normalize(eps=1e-12), then q times exp(min(s, ln 100)) per head.
            let max_scale_mul = 100f32.ln() as f64;
            q = l2_normalize(q, 1e-12) * scale_mul.val().clamp_max(max_scale_mul).exp();
            k = l2_normalize(k, 1e-12);
        } else {
            scale = 0.25 / (hd as f64).sqrt();
        }

        if let Some(cache) = cache {
            (k, v) = cache.append(k, v);
        }

        // The fused WGSL kernel on wgpu devices, the CPU kernel on burn's CPU backend (tessera-kernels).
        let out = attention(q, k, v, mask, scale as f32); // [B, H, L, hd]
        dense(&self.proj, out.swap_dims(1, 2).reshape([b, l, c]))
    }
}

/// The MLP: fc1 → GELU (tanh approximation) → fc2 (official `FFN`).
#[derive(Module, Debug)]
struct Ffn {
    fc1: Linear,
    fc2: Linear,
}

impl Ffn {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        dense(&self.fc2, gelu_tanh(dense(&self.fc1, x)))
    }
}

/// Transformer block with AdaLN from the class condition (official `AdaLNSelfAttn`).
#[derive(Module, Debug)]
struct AdaLnSelfAttn {
    attn: SelfAttention,
    ffn: Ffn,
    /// Official `ada_lin` = SiLU → Linear(D, 6C) (checkpoint key `ada_lin.1`).
    ada_lin: Linear,
    embed_dim: usize,
    norm_eps: f64,
}

impl AdaLnSelfAttn {
    /// `x`: `[B, L, C]`, `cond`: `[B, D]` → `[B, L, C]`.
    fn forward(
        &self,
        x: Tensor<3>,
        cond: Tensor<2>,
        mask: &AttentionMask,
        cache: Option<&mut LayerKv>,
    ) -> Tensor<3> {
        let c = self.embed_dim;
        let ada = dense(&self.ada_lin, silu(cond)); // [B, 6C]
        // Official unbind order: gamma1, gamma2, scale1, scale2, shift1, shift2.
        let [gamma1, gamma2, scale1, scale2, shift1, shift2] =
            [0, 1, 2, 3, 4, 5].map(|i| chunk(&ada, i, c));
        let h = layer_norm_modulate(x.clone(), None, scale1, shift1, self.norm_eps);
        let x = gated_residual(x, self.attn.forward(h, mask, cache), gamma1);
        let h = layer_norm_modulate(x.clone(), None, scale2, shift2, self.norm_eps);
        gated_residual(x, self.ffn.forward(h), gamma2)
    }
}

/// The last LayerNorm, modulated by the condition (official `AdaLNBeforeHead`).
#[derive(Module, Debug)]
struct AdaLnBeforeHead {
    /// SiLU → Linear(D, 2C) (checkpoint key `ada_lin.1`); chunks (scale, shift).
    ada_lin: Linear,
    embed_dim: usize,
    norm_eps: f64,
}

impl AdaLnBeforeHead {
    fn forward(&self, x: Tensor<3>, cond: Tensor<2>) -> Tensor<3> {
        let ada = dense(&self.ada_lin, silu(cond)); // [B, 2C]
        let (scale, shift) = (
            chunk(&ada, 0, self.embed_dim),
            chunk(&ada, 1, self.embed_dim),
        );
        layer_norm_modulate(x, None, scale, shift, self.norm_eps)
    }
}

/// Outputs of the teacher-forced pass kept for parity checks and debugging views.
#[derive(Debug, Clone)]
pub struct VarIntermediates {
    /// Input of the first block `[B, L, C]`: embeddings + level + position.
    pub embed_in: Tensor<3>,
    /// Output of every block, `[B, L, C]` each.
    pub block_outs: Vec<Tensor<3>>,
}

/// The VAR transformer (official `VAR`). Build it with [`VarConfig::init`].
#[derive(Module, Debug)]
pub struct Var {
    /// Linear(Cvae → C) of the teacher-forcing / next-scale input.
    word_embed: Linear,
    /// `[num_classes + 1, C]`; the last row is the null class.
    class_emb: Embedding,
    /// `[1, first_l, C]` added to the start token.
    pos_start: Param<Tensor<3>>,
    /// `[1, L, C]` learned absolute position of every token of every scale (official `pos_1LC`).
    pos_1lc: Param<Tensor<3>>,
    /// `[K, C]` one embedding per scale.
    lvl_embed: Embedding,
    blocks: Vec<AdaLnSelfAttn>,
    head_nm: AdaLnBeforeHead,
    /// Linear(C → V).
    head: Linear,
    /// `[V, C]` embedding of the previous token: next-token order only (`word_embed` is then unused).
    token_embed: Option<Embedding>,
    patch_nums: Vec<usize>,
    num_classes: usize,
    cond_drop_rate: f64,
}

impl Var {
    /// Side of each scale's token map.
    pub fn patch_nums(&self) -> &[usize] {
        &self.patch_nums
    }

    /// Label of the null (unconditional) class.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }

    /// Codebook size V (width of the logits).
    pub fn vocab_size(&self) -> usize {
        self.head.weight.lazy_shape().dims::<2>()[1]
    }

    /// Number of tokens over all scales, `L = Σ pn²`.
    pub fn seq_len(&self) -> usize {
        self.patch_nums.iter().map(|p| p * p).sum()
    }

    /// The order this model generates in.
    pub fn order(&self) -> TokenOrder {
        if self.token_embed.is_some() { TokenOrder::NextToken } else { TokenOrder::NextScale }
    }

    /// Forward passes per image: one per scale, or one per token in next-token order.
    pub fn forward_passes(&self) -> usize {
        match self.order() {
            TokenOrder::NextScale => self.patch_nums.len(),
            TokenOrder::NextToken => self.seq_len(),
        }
    }

    /// Replaces each label by the null class with probability `cond_drop_rate`, drawing on `rng`
    /// (on the CPU, so runs are reproducible on every device). Used by training only.
    ///
    /// # Shapes
    /// - `labels`: `[B]` → `[B]`
    pub fn drop_labels(&self, labels: Tensor<1, Int>, rng: &mut SplitMix64) -> Tensor<1, Int> {
        let [b] = labels.dims();
        let drop: Vec<bool> = (0..b)
            .map(|_| (rng.next_f32() as f64) < self.cond_drop_rate)
            .collect();
        let drop = Tensor::<1, Bool>::from_data(TensorData::new(drop, [b]), &labels.device());
        labels.mask_fill(drop, self.num_classes as i64)
    }

    /// Teacher forcing over every scale at once under the block-causal mask.
    ///
    /// # Shapes
    /// - `labels`: `[B]` (`num_classes` = null class), `x`: `[B, L - first_l, Cvae]` (from the
    ///   tokenizer's `idx_to_var_input`) → logits `[B, L, V]`
    pub fn forward(&self, labels: Tensor<1, Int>, x: Tensor<3>) -> Tensor<3> {
        self.forward_inner(labels, x, None)
    }

    /// Teacher forcing in next-token order: position `t` sees the tokens before it and predicts
    /// token `t`; the first position holds the start token.
    ///
    /// # Shapes
    /// - `labels`: `[B]`, `tokens`: `[B, L]` (every scale's codes, coarse to fine) → logits `[B, L, V]`
    ///
    /// # Panics
    /// On a next-scale model.
    pub fn forward_tokens(&self, labels: Tensor<1, Int>, tokens: Tensor<2, Int>) -> Tensor<3> {
        let embed = self.token_embed.as_ref().expect("forward_tokens needs a next-token model");
        let [_, l] = tokens.dims();
        assert_eq!(l, self.seq_len(), "tokens must cover all {} positions", self.seq_len());
        let cond = self.class_embedding(labels);
        let previous = embed.forward(tokens.narrow(1, 0, l - 1)); // [B, L - 1, C]
        let x = Tensor::cat(vec![self.start_tokens(cond.clone()), previous], 1) + self.level_position(0..l);
        self.blocks_and_head(x, cond, &AttentionMask::Causal, None, None)
    }

    /// Input of position `pos ≥ 1` in next-token order, from the token at `pos - 1`.
    ///
    /// # Shapes
    /// - `previous`: `[B, 1]` → `[B, 1, C]`
    pub fn next_token_input(&self, pos: usize, previous: Tensor<2, Int>) -> Tensor<3> {
        let embed = self.token_embed.as_ref().expect("next_token_input needs a next-token model");
        embed.forward(previous) + self.level_position(pos..pos + 1)
    }

    /// The blocks (with `mask`, and the cache when given) and the head: `[B, l, C]` → `[B, l, V]`.
    /// With `trace`, every block's input and the last block's output are pushed onto it.
    fn blocks_and_head(
        &self,
        x: Tensor<3>,
        cond: Tensor<2>,
        mask: &AttentionMask,
        cache: Option<&mut VarCache>,
        mut trace: Option<&mut Vec<Tensor<3>>>,
    ) -> Tensor<3> {
        let mut kvs = cache.map(|c| {
            assert_eq!(c.layers.len(), self.blocks.len(), "cache built for another model");
            c.layers.iter_mut()
        });
        let mut x = x;
        for block in &self.blocks {
            if let Some(t) = trace.as_deref_mut() {
                t.push(x.clone());
            }
            x = block.forward(x, cond.clone(), mask, kvs.as_mut().and_then(Iterator::next));
        }
        if let Some(t) = trace {
            t.push(x.clone());
        }
        dense(&self.head, self.head_nm.forward(x, cond))
    }

    /// [`Var::forward`], also returning the block inputs and outputs.
    pub fn forward_with_intermediates(
        &self,
        labels: Tensor<1, Int>,
        x: Tensor<3>,
    ) -> (Tensor<3>, VarIntermediates) {
        let mut trace = Vec::new();
        let logits = self.forward_inner(labels, x, Some(&mut trace));
        let embed_in = trace.remove(0);
        (
            logits,
            VarIntermediates {
                embed_in,
                block_outs: trace,
            },
        )
    }

    fn forward_inner(
        &self,
        labels: Tensor<1, Int>,
        x: Tensor<3>,
        trace: Option<&mut Vec<Tensor<3>>>,
    ) -> Tensor<3> {
        let [_, lx, _] = x.dims();
        let l = self.seq_len();
        assert_eq!(
            lx + self.first_l(),
            l,
            "x must hold L - first_l = {} tokens",
            l - self.first_l()
        );
        let cond = self.class_embedding(labels); // [B, C]
        let sos = self.start_tokens(cond.clone()); // [B, first_l, C]
        let x = Tensor::cat(vec![sos, self.word_embed.forward(x)], 1) + self.level_position(0..l); // [B, L, C]
        self.blocks_and_head(x, cond, &self.block_causal_mask(), None, trace)
    }

    /// The class embedding: the start token and the AdaLN condition (null class allowed).
    ///
    /// # Shapes
    /// - `labels`: `[B]` → `[B, C]`
    pub fn class_embedding(&self, labels: Tensor<1, Int>) -> Tensor<2> {
        let [b] = labels.dims();
        self.class_emb
            .forward(labels.reshape([b, 1]))
            .squeeze_dim::<2>(1)
    }

    /// Input tokens of the first scale, `sos + pos_start + lvl + pos`.
    ///
    /// # Shapes
    /// - `cond`: `[B, C]` (from [`Var::class_embedding`]) → `[B, first_l, C]`
    pub fn first_scale_input(&self, cond: Tensor<2>) -> Tensor<3> {
        self.start_tokens(cond) + self.level_position(0..self.first_l())
    }

    /// Input tokens of scale `si ≥ 1` from the tokenizer's next-scale map.
    ///
    /// # Shapes
    /// - `x`: `[B, pn², Cvae]` (row-major `h * pn + w`) → `[B, pn², C]`
    pub fn scale_input(&self, si: usize, x: Tensor<3>) -> Tensor<3> {
        let range = scale_ranges(&self.patch_nums)[si].clone();
        assert_eq!(
            x.dims()[1],
            range.len(),
            "scale {si} has {} tokens",
            range.len()
        );
        self.word_embed.forward(x) + self.level_position(range)
    }

    /// An empty KV cache for [`Var::forward_cached`].
    pub fn new_cache(&self) -> VarCache {
        VarCache {
            layers: vec![LayerKv::with_capacity(self.seq_len()); self.blocks.len()],
        }
    }

    /// One scale with the KV cache: attends to every earlier scale in `cache` and to itself, then
    /// appends its own keys and values. Equals [`Var::forward`] restricted to that scale.
    ///
    /// # Shapes
    /// - `x`: `[B, pn², C]` (from [`Var::first_scale_input`] / [`Var::scale_input`]),
    ///   `cond`: `[B, C]` → logits `[B, pn², V]`
    pub fn forward_cached(&self, x: Tensor<3>, cond: Tensor<2>, cache: &mut VarCache) -> Tensor<3> {
        // A scale (or, in next-token order, a token) sees every cached key and itself: no mask.
        self.blocks_and_head(x, cond, &AttentionMask::None, Some(cache), None)
    }

    fn first_l(&self) -> usize {
        self.patch_nums[0] * self.patch_nums[0]
    }

    /// `[B, first_l, C]` start tokens: the class embedding plus `pos_start`.
    fn start_tokens(&self, cond: Tensor<2>) -> Tensor<3> {
        let [b, c] = cond.dims();
        let first_l = self.first_l();
        cond.reshape([b, 1, c]).expand([b, first_l, c])
            + self.pos_start.val().expand([b, first_l, c])
    }

    /// `[1, len, C]` level embedding plus absolute position of the tokens in `range`.
    fn level_position(&self, range: Range<usize>) -> Tensor<3> {
        let device = self.pos_1lc.lazy_device();
        let levels: Vec<i64> = scale_ranges(&self.patch_nums)
            .iter()
            .enumerate()
            .flat_map(|(si, r)| std::iter::repeat_n(si as i64, r.len()))
            .skip(range.start)
            .take(range.len())
            .collect();
        let levels =
            Tensor::<2, Int>::from_data(TensorData::new(levels, [1, range.len()]), &device);
        self.lvl_embed.forward(levels) + self.pos_1lc.val().narrow(1, range.start, range.len())
    }

    /// Block-causal across scales: a query sees every key of its own and earlier scales.
    fn block_causal_mask(&self) -> AttentionMask {
        let sizes: Vec<usize> = self.patch_nums.iter().map(|p| p * p).collect();
        AttentionMask::block_causal(&sizes)
    }

    /// Loads an official `VAR` `state_dict` (names as in `models/var.py`; `ada_lin.1` is the
    /// Linear inside `Sequential(SiLU, Linear)`). Buffers (`lvl_1L`, `attn_bias_for_masking`,
    /// `zero_k_bias`) are recomputed, not read.
    pub fn load_official(mut self, sd: &mut StateDict) -> crate::Result<Self> {
        self.word_embed = sd.linear("word_embed", self.word_embed)?;
        self.class_emb = sd.embedding("class_emb", self.class_emb)?;
        self.pos_start = sd.param("pos_start", self.pos_start)?;
        self.pos_1lc = sd.param("pos_1LC", self.pos_1lc)?;
        self.lvl_embed = sd.embedding("lvl_embed", self.lvl_embed)?;
        sd.skip("lvl_1L");
        sd.skip("attn_bias_for_masking");
        let blocks = std::mem::take(&mut self.blocks);
        for (i, mut block) in blocks.into_iter().enumerate() {
            let p = format!("blocks.{i}");
            let a = &mut block.attn;
            a.mat_qkv = sd.linear(&format!("{p}.attn.mat_qkv"), a.mat_qkv.clone())?;
            a.q_bias = sd.param(&format!("{p}.attn.q_bias"), a.q_bias.clone())?;
            a.v_bias = sd.param(&format!("{p}.attn.v_bias"), a.v_bias.clone())?;
            sd.skip(&format!("{p}.attn.zero_k_bias"));
            if let Some(s) = a.scale_mul_1h11.take() {
                a.scale_mul_1h11 = Some(sd.param(&format!("{p}.attn.scale_mul_1H11"), s)?);
            }
            a.proj = sd.linear(&format!("{p}.attn.proj"), a.proj.clone())?;
            block.ffn.fc1 = sd.linear(&format!("{p}.ffn.fc1"), block.ffn.fc1.clone())?;
            block.ffn.fc2 = sd.linear(&format!("{p}.ffn.fc2"), block.ffn.fc2.clone())?;
            block.ada_lin = sd.linear(&format!("{p}.ada_lin.1"), block.ada_lin.clone())?;
            self.blocks.push(block);
        }
        self.head_nm.ada_lin = sd.linear("head_nm.ada_lin.1", self.head_nm.ada_lin)?;
        self.head = sd.linear("head", self.head)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> VarConfig {
        VarConfig::new(vec![1, 2, 3], 16, 4, 5, 2, 32, 2)
            .with_init_adaln_gamma(0.5) // make the blocks matter in the comparisons below
            .with_init_head(1.0)
    }

    fn max_abs_diff(a: Tensor<3>, b: Tensor<3>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn sequence_length_is_the_sum_of_squared_patch_nums() {
        let config =
            VarConfig::from_depth(16, vec![1, 2, 3, 4, 5, 6, 8, 10, 13, 16], 4096, 32, 1000);
        assert_eq!(config.seq_len(), 680);
        assert_eq!(config.scale_ranges()[9], 424..680);
        assert_eq!(config.embed_dim, 1024);
        assert_eq!(
            VarConfig::from_depth(2, vec![1, 2, 3, 4, 5, 6, 8], 64, 8, 10).seq_len(),
            155
        );
    }

    #[test]
    fn cached_scales_match_teacher_forcing() {
        let device = Device::flex();
        device.seed(3);
        let config = tiny();
        let var = config.init(&device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 5], [2]), &device);
        let x = Tensor::<3>::random(
            [2, config.seq_len() - 1, 4],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let full = var.forward(labels.clone(), x.clone());

        let cond = var.class_embedding(labels);
        let mut cache = var.new_cache();
        for (si, range) in config.scale_ranges().into_iter().enumerate() {
            let input = if si == 0 {
                var.first_scale_input(cond.clone())
            } else {
                var.scale_input(si, x.clone().narrow(1, range.start - 1, range.len()))
            };
            let logits = var.forward_cached(input, cond.clone(), &mut cache);
            let expected = full.clone().narrow(1, range.start, range.len());
            let diff = max_abs_diff(logits, expected);
            assert!(diff < 1e-5, "scale {si}: max diff {diff}");
            assert_eq!(cache.len(), range.end);
        }
    }

    #[test]
    fn later_scales_do_not_change_earlier_logits() {
        let device = Device::flex();
        device.seed(4);
        let config = tiny();
        let var = config.init(&device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &device);
        let x = Tensor::<3>::random(
            [2, config.seq_len() - 1, 4],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let y = x.clone().slice_fill([0..2, 4..13, 0..4], 3.0); // change scale 2 only (tokens 5..14)
        let (a, b) = (var.forward(labels.clone(), x), var.forward(labels, y));
        assert!(max_abs_diff(a.clone().narrow(1, 0, 5), b.clone().narrow(1, 0, 5)) == 0.0);
        assert!(max_abs_diff(a.narrow(1, 5, 9), b.narrow(1, 5, 9)) > 1e-3);
    }

    #[test]
    fn official_init_zeroes_biases_and_scales_the_gates() {
        let device = Device::flex();
        device.seed(5);
        let config = VarConfig::from_depth(2, vec![1, 2], 16, 4, 3);
        let var = config.init(&device);
        let c = config.embed_dim;
        let ada = var.blocks[0].ada_lin.weight.val(); // [D, 6C]
        let gamma = ada
            .clone()
            .narrow(1, 0, 2 * c)
            .abs()
            .max()
            .into_scalar::<f32>();
        let rest = ada.narrow(1, 2 * c, 4 * c).abs().max().into_scalar::<f32>();
        assert!(gamma < 1e-3 && rest > 1e-2, "gamma {gamma}, rest {rest}");
        let bias = var
            .head
            .bias
            .as_ref()
            .unwrap()
            .val()
            .abs()
            .max()
            .into_scalar::<f32>();
        assert_eq!(bias, 0.0);
        let s = var.blocks[1]
            .attn
            .scale_mul_1h11
            .as_ref()
            .unwrap()
            .val()
            .try_into_vec_as::<f32>()
            .unwrap();
        assert!(s.iter().all(|v| (v - 4f32.ln()).abs() < 1e-6));
    }

    #[test]
    fn drop_labels_uses_the_null_class_at_the_configured_rate() {
        let device = Device::flex();
        let var = tiny().with_cond_drop_rate(0.5).init(&device);
        let labels = Tensor::<1, Int>::zeros([1000], &device);
        let mut rng = SplitMix64::new(9);
        let dropped = var
            .drop_labels(labels, &mut rng)
            .try_into_vec_as::<i64>()
            .unwrap();
        let nulls = dropped.iter().filter(|&&l| l == 5).count();
        assert!((400..600).contains(&nulls), "{nulls} of 1000 dropped");
        assert!(dropped.iter().all(|&l| l == 0 || l == 5));
    }
}
