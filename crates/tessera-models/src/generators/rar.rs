//! RAR: randomized autoregressive visual generation (arXiv 2411.00776).
//! Official: bytedance/1d-tokenizer @942a96fb, `modeling/rar.py` (`RAR`, `Block`, `Attention`,
//! `FinalLayer`) and timm's `Mlp`.
//!
//! A causal transformer over `[cls, class, token o_0, …, token o_{N-1}]`, where `o` is the order
//! the tokens are fed in: raster for sampling, a random permutation for a fraction `r` of the
//! training samples (annealed from 1 to 0 by the trainer). Each slot carries two position
//! embeddings: the absolute one of its own token (`pos_embed[2 + o_j]`) and the target-aware one of
//! the token it must predict next (`target_aware_pos_embed[2 + o_{j+1}]`), which is what lets a
//! model trained on random orders know where it is going. The AdaLN condition is per slot: the
//! class embedding plus a learned per-slot "timestep" embedding. Blocks are DiT-style (shift,
//! scale, gate) with affine LayerNorms and per-head QK LayerNorm; the final layer's chunks come
//! in the reverse order (scale, shift).
//!
//! One embedding table holds everything: codes `0..V`, the unused MaskGIT mask id `V`, class `c`
//! at `V + 1 + c`, the null class at `V + 1 + num_classes`. The position tables are oversized
//! (`N + 1024` and `N + 100` rows) as the official ones, so official state dicts load.
//!
//! Differences from the official code:
//! - The order is an argument ([`Rar::forward`]), not drawn inside `forward` with python's
//!   `random`; the trainer draws it from a seeded stream.
//! - The KV cache is a value ([`RarCache`]), not module state; and any order can be sampled
//!   ([`Rar::start`] / [`Rar::next`] take the positions), where the official `generate` is raster.
//! - Dropout (0.1) acts on the attention projection and the MLP as in training; the attention
//!   probabilities are not dropped (`attn_drop`), since the fused attention kernel has no dropout.
//! - `trunc_normal_(std=0.02)` is drawn as a plain normal (the ±2 cut never binds at that std).

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use tessera_kernels::activation::{gelu, silu};
use tessera_kernels::linear::{forward as dense, forward_chunks, qkv_heads};
use tessera_kernels::norm::{gated_residual, layer_norm, layer_norm_modulate};
use tessera_kernels::{AttentionMask, attention};

use crate::Error;
use crate::dropout::dropout;
use crate::kv::LayerKv;
use crate::weights::StateDict;

/// Std of the official `init_weights` (Linear, Embedding and the position tables).
const INIT_STD: f64 = 0.02;
/// Extra rows of the absolute and target-aware position tables (official `image_seq_len + 1024`).
const POS_EXTRA_ROWS: usize = 1024;
/// Extra rows of the per-slot condition table (official `image_seq_len + 100`).
const TIMESTEP_EXTRA_ROWS: usize = 100;
/// Slots before the first token: the cls token and the class.
const PREFIX: usize = 2;

/// Hyper-parameters of [`Rar`] (official `config.model.generator.*` and `vq_model.codebook_size`).
/// Saved and loaded as JSON through burn's `Config` (serde).
#[derive(Config, Debug)]
pub struct RarConfig {
    /// Codebook size V of the tokenizer.
    pub codebook_size: usize,
    /// Number of classes (`condition_num_classes`); label `num_classes` is the null class.
    pub num_classes: usize,
    /// Tokens per image N (`image_seq_len`), a square: the token map is `√N × √N`.
    pub seq_len: usize,
    /// Width D (`hidden_size`).
    pub hidden_size: usize,
    /// Blocks (`num_hidden_layers`).
    pub depth: usize,
    /// Attention heads (`num_attention_heads`).
    pub num_heads: usize,
    /// MLP hidden width (`intermediate_size`).
    pub intermediate_size: usize,
    /// Dropout after the attention projection and in the MLP, training only (`dropout`).
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Probability that a training label is swapped for the null class (`class_label_dropout`).
    #[config(default = 0.1)]
    pub cond_drop_rate: f64,
}

impl RarConfig {
    /// Floats per image of the largest buffer a training step allocates ([`crate::memory`]):
    /// the MLP, the logits or the per-position AdaLN (6 widths) over the class token and the codes.
    pub fn largest_floats_per_image(&self) -> u64 {
        let hidden = self.intermediate_size.max(self.embedding_rows()).max(6 * self.hidden_size);
        crate::memory::transformer_floats(self.seq_len + 1, hidden)
    }

    /// Rows of the shared embedding table: codes, the mask id, the classes and the null class.
    pub fn embedding_rows(&self) -> usize {
        self.codebook_size + 1 + self.num_classes + 1
    }

    /// Side of the square token map.
    pub fn side(&self) -> usize {
        (self.seq_len as f64).sqrt().round() as usize
    }

    /// Checks the sizes once, before building anything.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        let sizes = [
            ("codebook_size", self.codebook_size, 1 << 16),
            ("num_classes", self.num_classes, 1 << 16),
            ("seq_len", self.seq_len, 1 << 14),
            ("hidden_size", self.hidden_size, 1 << 13),
            ("depth", self.depth, 256),
            ("num_heads", self.num_heads, 256),
            ("intermediate_size", self.intermediate_size, 1 << 15),
        ];
        for (name, value, max) in sizes {
            if value == 0 || value > max {
                return bad(format!("{name} must be in 1..={max}, got {value}"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return bad(format!("hidden_size {} is not a multiple of num_heads {}", self.hidden_size, self.num_heads));
        }
        if self.side() * self.side() != self.seq_len {
            return bad(format!("seq_len {} is not a square token map", self.seq_len));
        }
        for (name, p) in [("dropout", self.dropout), ("cond_drop_rate", self.cond_drop_rate)] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), got {p}"));
            }
        }
        Ok(())
    }

    /// A randomly initialised RAR as the official constructor leaves it: N(0, 0.02²) weights and
    /// tables, zero biases, unit LayerNorms, zero cls token, and zero AdaLN projections
    /// (AdaLN-zero: every block starts as the identity).
    ///
    /// # Panics
    /// On an inconsistent config (see [`RarConfig::validate`]).
    pub fn init(&self, device: &Device) -> Rar {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let d = self.hidden_size;
        let hd = d / self.num_heads;
        let table = |rows: usize| Initializer::Normal { mean: 0.0, std: INIT_STD }.init([1, rows, d], device);
        let blocks = (0..self.depth)
            .map(|_| Block {
                norm1: affine_norm(d, device),
                attn: Attention {
                    qkv: linear(d, 3 * d, INIT_STD, device),
                    q_norm: affine_norm(hd, device),
                    k_norm: affine_norm(hd, device),
                    proj: linear(d, d, INIT_STD, device),
                    num_heads: self.num_heads,
                },
                norm2: affine_norm(d, device),
                mlp: Mlp { fc1: linear(d, self.intermediate_size, INIT_STD, device), fc2: linear(self.intermediate_size, d, INIT_STD, device) },
                ada_ln_modulation: linear(d, 6 * d, 0.0, device),
                dropout: DropoutConfig::new(self.dropout).init(),
            })
            .collect();
        Rar {
            cls_token: Initializer::Zeros.init([1, 1, d], device),
            blocks,
            embeddings: EmbeddingConfig::new(self.embedding_rows(), d)
                .with_initializer(Initializer::Normal { mean: 0.0, std: INIT_STD })
                .init(device),
            pos_embed: table(self.seq_len + POS_EXTRA_ROWS),
            target_aware_pos_embed: table(self.seq_len + POS_EXTRA_ROWS),
            timesteps_embeddings: table(self.seq_len + TIMESTEP_EXTRA_ROWS),
            adaln_before_head: linear(d, 2 * d, 0.0, device),
            lm_head: linear(d, self.codebook_size, INIT_STD, device),
            codebook_size: self.codebook_size,
            num_classes: self.num_classes,
            seq_len: self.seq_len,
        }
    }

    /// A RAR with the weights of an official `state_dict` (safetensors bytes, official names).
    pub fn init_official(&self, bytes: Vec<u8>, device: &Device) -> crate::Result<Rar> {
        self.validate()?;
        let mut sd = StateDict::from_bytes(bytes)?;
        let rar = self.init(device).load_official(&mut sd)?;
        sd.finish()?;
        Ok(rar)
    }
}

/// Linear with N(0, std²) weights and a zero bias.
fn linear(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    let weight = if std > 0.0 { Initializer::Normal { mean: 0.0, std } } else { Initializer::Zeros };
    Linear { weight: weight.init([d_in, d_out], device), bias: Some(Initializer::Zeros.init([d_out], device)) }
}

/// Eps of every LayerNorm (official `partial(nn.LayerNorm, eps=1e-6)`).
const LN_EPS: f64 = 1e-6;

/// Affine LayerNorm, eps [`LN_EPS`].
fn affine_norm(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(LN_EPS).init(device)
}

/// The affine parameters of `norm`.
fn affine(norm: &LayerNorm) -> Option<(Tensor<1>, Tensor<1>)> {
    Some((norm.gamma.val(), norm.beta.as_ref().expect("RAR's LayerNorms are affine").val()))
}

/// The KV cache of sampling ([`Rar::start`], [`Rar::next`]): per block, the keys and values of
/// every slot so far, and the class embedding the condition of each new slot is built from.
#[derive(Debug, Clone)]
pub struct RarCache {
    layers: Vec<LayerKv>,
    /// `[B, 1, D]` embedding of the class ids.
    class: Tensor<3>,
    /// `[B]` the labels (`num_classes` = null).
    labels: Tensor<1, Int>,
    /// Slots processed so far (the cls and class slots included).
    slots: usize,
}

impl RarCache {
    /// Tokens fed so far (the cls and class slots not counted).
    pub fn tokens(&self) -> usize {
        self.slots.saturating_sub(PREFIX)
    }
}

/// The AdaLN condition of the slots a pass runs.
#[derive(Debug, Clone)]
enum Cond {
    /// `[B, L, D]`: one condition per slot.
    Rows(Tensor<3>),
    /// One new slot per sample, whose condition depends only on its label: `table` `[C + 1, 1, D]`
    /// holds it for every label (the null class last) and `labels` `[B]` picks each sample's. The
    /// AdaLN projections then run once per label instead of once per sample: the same numbers for
    /// less work when the batch is larger than the number of labels (a third of a step's
    /// multiply-adds at batch 64).
    PerLabel { table: Tensor<3>, labels: Tensor<1, Int> },
}

impl Cond {
    /// `linear(silu(c))` for every slot, as `N` chunks `[B, L, k / N]` (the AdaLN parameters).
    fn project<const N: usize>(&self, linear: &Linear) -> [Tensor<3>; N] {
        match self {
            Self::Rows(c) => forward_chunks(linear, silu(c.clone())),
            Self::PerLabel { table, labels } => {
                let [n, l, _] = table.dims();
                let [b] = labels.dims();
                // Selected as 2-D rows: burn's CPU backward of a select along dim 0 of a 3-D
                // tensor indexes element by element (7% of a training step), of a 2-D one row by row.
                forward_chunks::<3, N>(linear, silu(table.clone())).map(|t| {
                    let k = t.dims()[2];
                    t.reshape([n, l * k]).select(0, labels.clone()).reshape([b, l, k])
                })
            }
        }
    }
}

/// Multi-head self-attention with a qkv bias and per-head QK LayerNorm (official `Attention`).
#[derive(Module, Debug)]
struct Attention {
    qkv: Linear,
    q_norm: LayerNorm,
    k_norm: LayerNorm,
    proj: Linear,
    num_heads: usize,
}

impl Attention {
    /// `x`: `[B, L, D]` → `[B, L, D]`; with a cache the queries are the last `L` of the keys.
    fn forward(&self, x: Tensor<3>, mask: &AttentionMask, cache: Option<&mut LayerKv>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let (h, hd) = (self.num_heads, d / self.num_heads);
        let [q, k, v] = qkv_heads(x, self.qkv.weight.val(), self.qkv.bias.as_ref().map(|b| b.val()), h);
        let q = layer_norm(&self.q_norm, q, LN_EPS);
        let k = layer_norm(&self.k_norm, k, LN_EPS);
        let (k, v) = match cache {
            Some(cache) => cache.append(k, v),
            None => (k, v),
        };
        // The fused WGSL kernel on wgpu devices, the CPU kernel on burn's CPU backend (tessera-kernels).
        let out = attention(q, k, v, mask, (hd as f32).powf(-0.5));
        dense(&self.proj, out.swap_dims(1, 2).reshape([b, l, d]))
    }
}

/// timm's `Mlp`: fc1 → exact GELU → dropout → fc2 (→ dropout, in [`Block`]).
#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    fc2: Linear,
}

/// DiT-style block with a per-slot AdaLN condition (official `Block`).
#[derive(Module, Debug)]
struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
    /// Official `adaLN_modulation` = SiLU → Linear(D, 6D) (checkpoint key `adaLN_modulation.1`).
    ada_ln_modulation: Linear,
    dropout: Dropout,
}

impl Block {
    /// `x`: `[B, L, D]` with its condition `c` → `[B, L, D]`.
    fn forward(&self, x: Tensor<3>, c: &Cond, mask: &AttentionMask, cache: Option<&mut LayerKv>) -> Tensor<3> {
        // Official chunk order: shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp.
        let [shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp] = c.project(&self.ada_ln_modulation);
        let h = layer_norm_modulate(x.clone(), affine(&self.norm1), scale_msa, shift_msa, LN_EPS);
        let x = gated_residual(x, dropout(&self.dropout, self.attn.forward(h, mask, cache)), gate_msa);
        let h = layer_norm_modulate(x.clone(), affine(&self.norm2), scale_mlp, shift_mlp, LN_EPS);
        let h = dense(&self.mlp.fc2, dropout(&self.dropout, gelu(dense(&self.mlp.fc1, h))));
        gated_residual(x, dropout(&self.dropout, h), gate_mlp)
    }
}

/// Inputs and outputs of the blocks in a teacher-forced pass, for parity checks.
#[derive(Debug, Clone)]
pub struct RarIntermediates {
    /// `[B, N + 2, D]` input of the first block (embeddings plus both position embeddings).
    pub embed_in: Tensor<3>,
    /// `[B, N + 2, D]` per-slot AdaLN condition.
    pub cond_tokens: Tensor<3>,
    /// Output of every block, `[B, N + 2, D]` each (cls slot included).
    pub block_outs: Vec<Tensor<3>>,
}

/// The RAR transformer (official `RAR`). Build it with [`RarConfig::init`].
#[derive(Module, Debug)]
pub struct Rar {
    /// `[1, 1, D]` learned first slot.
    cls_token: Param<Tensor<3>>,
    blocks: Vec<Block>,
    /// `[V + 1 + classes + 1, D]` codes, mask id, classes and null class.
    embeddings: Embedding,
    /// `[1, N + 1024, D]` absolute position of each slot's own token (`2 + raster position`).
    pos_embed: Param<Tensor<3>>,
    /// `[1, N + 1024, D]` position of the token each slot predicts.
    target_aware_pos_embed: Param<Tensor<3>>,
    /// `[1, N + 100, D]` per-slot addition to the class condition.
    timesteps_embeddings: Param<Tensor<3>>,
    /// Official `adaln_before_head.adaLN_modulation` = SiLU → Linear(D, 2D); chunks (scale, shift).
    adaln_before_head: Linear,
    lm_head: Linear,
    codebook_size: usize,
    num_classes: usize,
    seq_len: usize,
}

impl Rar {
    /// Codebook size V (width of the logits).
    pub fn codebook_size(&self) -> usize {
        self.codebook_size
    }

    /// Number of classes; label `num_classes` is the null class.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Tokens per image N.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Side of the square token map.
    pub fn side(&self) -> usize {
        (self.seq_len as f64).sqrt().round() as usize
    }

    /// Label of the null (unconditional) class.
    pub fn null_class(&self) -> usize {
        self.num_classes
    }

    /// Official `preprocess_condition` without dropout: labels (`num_classes` = null) → ids in the
    /// shared table (`V + 1 + label`).
    ///
    /// # Shapes
    /// - `labels`: `[B]` → `[B]`
    pub fn condition_ids(&self, labels: Tensor<1, Int>) -> Tensor<1, Int> {
        labels.add_scalar(self.codebook_size as i64 + 1)
    }

    /// Teacher forcing (official `forward_fn(..., is_sampling=False)`): the tokens are fed in
    /// `orders` (raster when `None`), and output `j` predicts token `orders[j]`; the last output
    /// (after every token) predicts nothing.
    ///
    /// # Shapes
    /// - `tokens`: `[B, N]` codes in raster order, `labels`: `[B]` (`num_classes` = null),
    ///   `orders`: `[B, N]` a permutation of `0..N` per sample → logits `[B, N + 1, V]`
    pub fn forward(&self, tokens: Tensor<2, Int>, labels: Tensor<1, Int>, orders: Option<Tensor<2, Int>>) -> Tensor<3> {
        self.forward_inner(tokens, labels, orders, None)
    }

    /// [`Rar::forward`], also returning the embeddings, the condition and every block's output.
    pub fn forward_with_intermediates(
        &self,
        tokens: Tensor<2, Int>,
        labels: Tensor<1, Int>,
        orders: Option<Tensor<2, Int>>,
    ) -> (Tensor<3>, RarIntermediates) {
        let mut trace = Vec::new();
        let logits = self.forward_inner(tokens, labels, orders, Some(&mut trace));
        let cond_tokens = trace.remove(0);
        let embed_in = trace.remove(0);
        (logits, RarIntermediates { embed_in, cond_tokens, block_outs: trace })
    }

    fn forward_inner(
        &self,
        tokens: Tensor<2, Int>,
        labels: Tensor<1, Int>,
        orders: Option<Tensor<2, Int>>,
        mut trace: Option<&mut Vec<Tensor<3>>>,
    ) -> Tensor<3> {
        let [b, n] = tokens.dims();
        assert_eq!(n, self.seq_len, "tokens must cover all {} positions", self.seq_len);
        let device = tokens.device();
        let orders = orders.unwrap_or_else(|| Tensor::<1, Int>::arange(0..n as i64, &device).reshape([1, n]).expand([b, n]));
        let labels_of = labels.clone();
        let class = self.class_embedding(labels); // [B, 1, D]
        let d = class.dims()[2];
        let fed = self.embeddings.forward(tokens.gather(1, orders.clone())); // [B, N, D]

        // Slot j + 2 holds token orders[j] at its own position and aims at orders[j + 1]; the
        // class slot aims at orders[0]; the cls slot and the last slot have no target.
        let x = Tensor::cat(vec![self.cls_token.val().expand([b, 1, d]), class.clone(), fed], 1)
            + Tensor::cat(vec![self.pos_embed.val().narrow(1, 0, PREFIX).expand([b, PREFIX, d]), rows(&self.pos_embed, orders.clone())], 1)
            + Tensor::cat(
                vec![Tensor::zeros([b, 1, d], &device), rows(&self.target_aware_pos_embed, orders), Tensor::zeros([b, 1, d], &device)],
                1,
            );
        let timesteps = self.timesteps_embeddings.val().narrow(1, 0, n + PREFIX); // [1, N + 2, D]
        let (c, head_c) = match trace.is_none() && b > self.num_classes + 1 {
            // More samples than labels: every label's conditions once, gathered per sample.
            true => {
                let table = self.label_table(&device) + timesteps;
                let head = table.clone().narrow(1, 1, n + 1);
                (Cond::PerLabel { table, labels: labels_of.clone() }, Cond::PerLabel { table: head, labels: labels_of })
            }
            false => {
                let c = class + timesteps; // [B, N + 2, D]
                if let Some(t) = trace.as_deref_mut() {
                    t.push(c.clone());
                }
                (Cond::Rows(c.clone()), Cond::Rows(c.narrow(1, 1, n + 1)))
            }
        };
        let mut x = x;
        for block in &self.blocks {
            if let Some(t) = trace.as_deref_mut() {
                t.push(x.clone());
            }
            x = block.forward(x, &c, &AttentionMask::Causal, None);
        }
        if let Some(t) = trace {
            t.push(x.clone());
        }
        // Without the cls slot: N + 1 outputs.
        self.head(x.narrow(1, 1, n + 1), &head_c)
    }

    /// `[C + 1, 1, D]` the embedding of every label, the null class last.
    fn label_table(&self, device: &Device) -> Tensor<3> {
        let labels = self.num_classes + 1;
        let ids = self.condition_ids(Tensor::arange(0..labels as i64, device));
        self.embeddings.forward(ids.reshape([labels, 1]))
    }

    /// The final AdaLN and the logits head: `[B, l, D]` → `[B, l, V]`.
    fn head(&self, x: Tensor<3>, c: &Cond) -> Tensor<3> {
        // FinalLayer's chunk order is (scale, shift), the reverse of the blocks'.
        let [scale, shift] = c.project(&self.adaln_before_head);
        // norm_final has no affine parameters.
        dense(&self.lm_head, layer_norm_modulate(x, None, scale, shift, LN_EPS))
    }

    /// `[B, 1, D]` embedding of `labels` (`num_classes` = null) in the shared table.
    fn class_embedding(&self, labels: Tensor<1, Int>) -> Tensor<3> {
        let [b] = labels.dims();
        self.embeddings.forward(self.condition_ids(labels).reshape([b, 1]))
    }

    /// Runs the cls and class slots through the blocks and returns the cache and the logits of the
    /// first token, which will be placed at `first` (a raster position per sample).
    ///
    /// # Shapes
    /// - `labels`: `[B]` (`num_classes` = null), `first`: `[B]` → logits `[B, V]`
    pub fn start(&self, labels: Tensor<1, Int>, first: Tensor<1, Int>) -> (Tensor<2>, RarCache) {
        let [b] = labels.dims();
        let class = self.class_embedding(labels.clone());
        let d = class.dims()[2];
        let device = class.device();
        let x = Tensor::cat(vec![self.cls_token.val().expand([b, 1, d]), class.clone()], 1)
            + self.pos_embed.val().narrow(1, 0, PREFIX).expand([b, PREFIX, d])
            + Tensor::cat(vec![Tensor::zeros([b, 1, d], &device), rows(&self.target_aware_pos_embed, first.reshape([b, 1]))], 1);
        let c = class.clone() + self.timesteps_embeddings.val().narrow(1, 0, PREFIX);
        let mut cache = RarCache { layers: vec![LayerKv::with_capacity(self.seq_len + PREFIX); self.blocks.len()], class, labels, slots: 0 };
        // Only the class slot's logits are needed: the head runs on it alone.
        let logits = self.cached(x, &Cond::Rows(c.clone()), &Cond::Rows(c.narrow(1, 1, 1)), &AttentionMask::Causal, &mut cache);
        (logits, cache)
    }

    /// Feeds one token per sample, `token` at raster position `position`, and returns the logits
    /// of the next token, which will be placed at `target` (`None` after the last token).
    ///
    /// # Shapes
    /// - `token`, `position`, `target`: `[B]` → logits `[B, V]`
    ///
    /// # Panics
    /// When the cache already holds every token.
    pub fn next(&self, cache: &mut RarCache, token: Tensor<1, Int>, position: Tensor<1, Int>, target: Option<Tensor<1, Int>>) -> Tensor<2> {
        let [b] = token.dims();
        let slot = cache.slots;
        assert!(slot < self.seq_len + PREFIX, "all {} tokens were fed already", self.seq_len);
        let d = cache.class.dims()[2];
        let target = match target {
            Some(t) => rows(&self.target_aware_pos_embed, t.reshape([b, 1])),
            None => Tensor::zeros([b, 1, d], &cache.class.device()),
        };
        let x = self.embeddings.forward(token.reshape([b, 1])) + rows(&self.pos_embed, position.reshape([b, 1])) + target;
        let timestep = self.timesteps_embeddings.val().narrow(1, slot, 1);
        let labels = self.num_classes + 1;
        let c = if b > labels {
            // Every label's condition once, gathered per sample.
            Cond::PerLabel { table: self.label_table(&x.device()) + timestep, labels: cache.labels.clone() }
        } else {
            Cond::Rows(cache.class.clone() + timestep)
        };
        // The new slot sees every cached slot and itself: no mask.
        self.cached(x, &c, &c, &AttentionMask::None, cache)
    }

    /// The blocks over new slots `x` (condition `c`) with the cache, then the head of the last
    /// slot (condition `last`) → `[B, V]`.
    fn cached(&self, x: Tensor<3>, c: &Cond, last: &Cond, mask: &AttentionMask, cache: &mut RarCache) -> Tensor<2> {
        let [b, l, _] = x.dims();
        let mut x = x;
        for (block, kv) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, c, mask, Some(kv));
        }
        cache.slots += l;
        self.head(x.narrow(1, l - 1, 1), last).reshape([b, self.codebook_size])
    }

    /// Loads an official `RAR` `state_dict` (names as in `modeling/rar.py`). The causal mask
    /// buffer is not persistent there, so not read.
    pub fn load_official(mut self, sd: &mut StateDict) -> crate::Result<Self> {
        self.cls_token = sd.param("cls_token", self.cls_token)?;
        self.embeddings = sd.embedding("embeddings", self.embeddings)?;
        self.pos_embed = sd.param("pos_embed", self.pos_embed)?;
        self.target_aware_pos_embed = sd.param("target_aware_pos_embed", self.target_aware_pos_embed)?;
        self.timesteps_embeddings = sd.param("timesteps_embeddings", self.timesteps_embeddings)?;
        let blocks = std::mem::take(&mut self.blocks);
        for (i, mut block) in blocks.into_iter().enumerate() {
            let p = format!("blocks.{i}");
            block.norm1 = sd.layer_norm(&format!("{p}.norm1"), block.norm1)?;
            block.norm2 = sd.layer_norm(&format!("{p}.norm2"), block.norm2)?;
            let a = &mut block.attn;
            a.qkv = sd.linear(&format!("{p}.attn.qkv"), a.qkv.clone())?;
            a.q_norm = sd.layer_norm(&format!("{p}.attn.q_norm"), a.q_norm.clone())?;
            a.k_norm = sd.layer_norm(&format!("{p}.attn.k_norm"), a.k_norm.clone())?;
            a.proj = sd.linear(&format!("{p}.attn.proj"), a.proj.clone())?;
            block.mlp.fc1 = sd.linear(&format!("{p}.mlp.fc1"), block.mlp.fc1.clone())?;
            block.mlp.fc2 = sd.linear(&format!("{p}.mlp.fc2"), block.mlp.fc2.clone())?;
            block.ada_ln_modulation = sd.linear(&format!("{p}.adaLN_modulation.1"), block.ada_ln_modulation.clone())?;
            self.blocks.push(block);
        }
        self.adaln_before_head = sd.linear("adaln_before_head.adaLN_modulation.1", self.adaln_before_head)?;
        self.lm_head = sd.linear("lm_head", self.lm_head)?;
        Ok(self)
    }
}

/// Official weight-decay rule of RAR's optimizer (`utils/train_utils.py`, `create_optimizer`),
/// for a parameter at `path` in this module tree: no decay when it is 1-D or its official name
/// contains `ln`, `bias`, `embed`, `norm`, `gamma`, `mask_token` or `latent_tokens`. The rule is
/// applied to the official name, case-sensitive as in python: `adaln_before_head.*` holds `ln`
/// and is excluded, `blocks.*.adaLN_modulation.*` is not.
pub fn decays(path: &str, rank: usize) -> bool {
    let official = path.replace("ada_ln_modulation", "adaLN_modulation").replace("adaln_before_head", "adaln_before_head.adaLN_modulation.1");
    let excluded = ["ln", "bias", "latent_tokens", "mask_token", "embedding", "norm", "gamma", "embed"];
    !(rank < 2 || excluded.iter().any(|k| official.contains(k)))
}

/// `table[2 + positions]` for `table` `[1, R, D]` and `positions` `[B, n]` → `[B, n, D]`.
fn rows(table: &Param<Tensor<3>>, positions: Tensor<2, Int>) -> Tensor<3> {
    let [b, n] = positions.dims();
    let [_, r, d] = table.lazy_shape().dims();
    table.val().reshape([r, d]).select(0, positions.reshape([b * n]).add_scalar(PREFIX as i64)).reshape([b, n, d])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn tiny() -> RarConfig {
        RarConfig::new(16, 3, 9, 32, 2, 4, 64).with_dropout(0.0)
    }

    /// A tiny RAR with every parameter random (the official init zeroes the AdaLN and would hide
    /// the condition).
    fn random_model(device: &Device) -> Rar {
        struct Randomize;
        impl burn::module::ModuleMapper for Randomize {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, t, mapper) = param.consume();
                let r = t.random_like(Distribution::Normal(0.0, 0.3));
                Param::from_mapped_value(id, r, mapper)
            }
        }
        tiny().init(device).map(&mut Randomize)
    }

    fn ints<const D: usize>(values: Vec<i64>, shape: [usize; D], device: &Device) -> Tensor<D, Int> {
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn cached_steps_match_teacher_forcing_in_any_order() {
        let device = Device::flex();
        device.seed(11);
        let rar = random_model(&device);
        let tokens = ints((0..18).map(|i| (i * 7 % 16) as i64).collect(), [2, 9], &device);
        let labels = ints(vec![2, 3], [2], &device); // 3 = the null class
        let orders = ints(vec![4, 0, 8, 2, 6, 1, 3, 5, 7, 0, 1, 2, 3, 4, 5, 6, 7, 8], [2, 9], &device);
        let full = rar.forward(tokens.clone(), labels.clone(), Some(orders.clone()));
        let order = |j: usize| orders.clone().narrow(1, j, 1).reshape([2]);
        let fed = tokens.gather(1, orders.clone());
        let (mut logits, mut cache) = rar.start(labels, order(0));
        for j in 0..9 {
            let expected = full.clone().narrow(1, j, 1).reshape([2, 16]);
            let diff = max_abs_diff(logits.clone(), expected);
            assert!(diff < 1e-4, "token {j}: max diff {diff}");
            let target = (j + 1 < 9).then(|| order(j + 1));
            logits = rar.next(&mut cache, fed.clone().narrow(1, j, 1).reshape([2]), order(j), target);
        }
        assert_eq!(cache.tokens(), 9);
        let diff = max_abs_diff(logits, full.narrow(1, 9, 1).reshape([2, 16]));
        assert!(diff < 1e-4, "after the last token: max diff {diff}");
    }

    #[test]
    fn a_batch_larger_than_the_labels_conditions_per_label_with_the_same_numbers() {
        let device = Device::flex();
        device.seed(13);
        let rar = random_model(&device);
        let b = 7; // more samples than the 3 classes and the null class
        let tokens = ints((0..b as i64 * 9).map(|i| i * 5 % 16).collect(), [b, 9], &device);
        let labels = ints((0..b as i64).map(|i| i % 4).collect(), [b], &device);
        let full = rar.forward(tokens.clone(), labels.clone(), None);
        let at = |j: usize| ints(vec![j as i64; b], [b], &device);
        let (mut logits, mut cache) = rar.start(labels, at(0));
        for j in 0..9 {
            let diff = max_abs_diff(logits.clone(), full.clone().narrow(1, j, 1).reshape([b, 16]));
            assert!(diff < 1e-4, "token {j}: max diff {diff}");
            let target = (j + 1 < 9).then(|| at(j + 1));
            logits = rar.next(&mut cache, tokens.clone().narrow(1, j, 1).reshape([b]), at(j), target);
        }
    }

    #[test]
    fn a_teacher_forced_batch_larger_than_the_labels_gives_each_sample_s_own_logits() {
        let device = Device::flex();
        device.seed(14);
        let rar = random_model(&device);
        let b = 6; // more samples than the 3 classes and the null class: the per-label path
        let tokens = ints((0..b as i64 * 9).map(|i| i * 3 % 16).collect(), [b, 9], &device);
        let labels = ints((0..b as i64).map(|i| (i * 3) % 4).collect(), [b], &device);
        let batch = rar.forward(tokens.clone(), labels.clone(), None);
        for i in 0..b {
            let one = rar.forward(tokens.clone().narrow(0, i, 1), labels.clone().narrow(0, i, 1), None); // the per-row path
            let diff = (batch.clone().narrow(0, i, 1) - one).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-4, "sample {i}: max diff {diff}");
        }
    }

    #[test]
    fn target_aware_position_changes_the_prediction_but_not_the_past() {
        let device = Device::flex();
        device.seed(12);
        let rar = random_model(&device);
        let tokens = ints((0..9).collect(), [1, 9], &device);
        let labels = ints(vec![1], [1], &device);
        let a = rar.forward(tokens.clone(), labels.clone(), Some(ints(vec![0, 1, 2, 3, 4, 5, 6, 7, 8], [1, 9], &device)));
        let b = rar.forward(tokens, labels, Some(ints(vec![0, 1, 2, 3, 8, 5, 6, 7, 4], [1, 9], &device)));
        let row = |t: &Tensor<3>, j: usize| t.clone().narrow(1, j, 1).reshape([1, 16]);
        // Output j predicts token orders[j]: outputs 0..=3 see the same slots, output 4 sees the
        // same tokens but aims at position 8 instead of 4.
        for j in 0..4 {
            assert_eq!(max_abs_diff(row(&a, j), row(&b, j)), 0.0, "output {j}");
        }
        assert!(max_abs_diff(row(&a, 4), row(&b, 4)) > 1e-3);
    }

    #[test]
    fn official_init_starts_every_block_as_the_identity() {
        let device = Device::flex();
        let rar = tiny().init(&device);
        let ada = rar.blocks[0].ada_ln_modulation.weight.val().abs().max().into_scalar::<f32>();
        assert_eq!(ada, 0.0);
        assert_eq!(rar.cls_token.val().abs().max().into_scalar::<f32>(), 0.0);
        let [rows, _] = rar.embeddings.weight.lazy_shape().dims();
        assert_eq!(rows, 16 + 1 + 3 + 1);
        assert_eq!(rar.pos_embed.lazy_shape().dims::<3>()[1], 9 + 1024);
    }

    #[test]
    fn weight_decay_follows_the_official_names() {
        assert!(decays("blocks.0.attn.qkv.weight", 2));
        assert!(decays("blocks.0.ada_ln_modulation.weight", 2)); // `adaLN`: no lower-case `ln`
        assert!(decays("cls_token", 3));
        assert!(!decays("adaln_before_head.weight", 2));
        assert!(!decays("embeddings.weight", 2));
        assert!(!decays("pos_embed", 3));
        assert!(!decays("blocks.1.attn.q_norm.gamma", 1));
        assert!(!decays("lm_head.bias", 1));
        assert!(decays("lm_head.weight", 2));
    }

    #[test]
    fn configs_that_cannot_be_built_are_refused() {
        assert!(tiny().validate().is_ok());
        assert!(RarConfig::new(16, 3, 10, 32, 2, 4, 64).validate().is_err()); // not a square
        assert!(RarConfig::new(16, 3, 9, 30, 2, 4, 64).validate().is_err()); // heads
        assert!(RarConfig::new(16, 0, 9, 32, 2, 4, 64).validate().is_err());
        assert!(RarConfig::new(16, 3, 9, 1 << 20, 2, 4, 64).validate().is_err());
    }
}
