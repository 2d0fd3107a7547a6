//! The flow-matching head of the equivariant generator: a small AdaLN MLP that predicts the
//! velocity of a rectified flow from noise (t = 1) to a token (t = 0), conditioned on the
//! transformer's output for that token (MAR's "diffusion loss", with flow matching in its place).
//! Official: drx-code/EquivariantModeling @4b15f32b, `generator/diffloss.py` (`DiffLoss`,
//! `SimpleMLPAdaLN`, `TimestepEmbedder`, `ResBlock`, `FinalLayer`) and `diffusion/flows.py`
//! (`RectifiedFlow.get_train_tuple`, `sample_ode_generative`).
//!
//! `v(x_t, t, z)`: `y = time_embed(t) + cond_embed(z)`; `x = input_proj(x_t)`; each residual block
//! `x + gate · MLP(LN(x) · (1 + scale) + shift)` with `(shift, scale, gate)` from `SiLU → Linear(y)`;
//! the final layer `Linear(LN(x) · (1 + scale) + shift)` with `(shift, scale)` from `y` and a
//! LayerNorm without affine parameters. The time embedding is `[cos, sin]` of `t · ω_k`,
//! `ω_k = 10000^(-k/128)`, with `t ∈ (0, 1]` fed as is (not ×1000).
//!
//! It works on rows: `[M, C]` tokens with `[M, D]` conditions, one row per (image, column).
//!
//! Differences from the official code:
//! - Noise and times are arguments ([`FlowHead::loss`], [`FlowHead::sample_euler`]), not drawn
//!   inside with `torch.randn` (which also hard-codes `.cuda()` there).
//! - Guided sampling evaluates the conditional and the null halves from one shared `x_t`, as
//!   `forward_with_cfg` does, and returns only one half (the official returns both, equal).
//! - No Heun solver (the official raises for 2-D data anyway) and no unused `temperature`.

use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use tessera_kernels::activation::silu;
use tessera_kernels::linear::{forward as dense, forward_chunks};
use tessera_kernels::norm::{gated_residual, layer_norm_modulate};

use crate::weights::StateDict;

/// Size of the sinusoidal time embedding (official `frequency_embedding_size`).
pub const FREQUENCY_EMBEDDING_SIZE: usize = 256;
/// Longest period of the time embedding (official `max_period`).
const MAX_PERIOD: f64 = 10000.0;
/// Smallest training time (official `get_train_tuple` `eps`): `t = u · (1 - eps) + eps`.
const T_EPS: f64 = 1e-5;
/// Std of the official normal init of the time embedding MLP.
const TIME_EMBED_STD: f64 = 0.02;

/// Hyper-parameters of [`FlowHead`] (official `SimpleMLPAdaLN` arguments).
#[derive(Config, Debug)]
pub struct FlowHeadConfig {
    /// Token channels C, in and out (official `in_channels` = `out_channels` = `vae_embed_dim`).
    pub in_channels: usize,
    /// Width D of the condition rows (official `z_channels` = `decoder_embed_dim`).
    pub z_channels: usize,
    /// Width W of the MLP (official `model_channels` = `diffloss_w`).
    pub width: usize,
    /// Residual blocks (official `num_res_blocks` = `diffloss_d`).
    pub depth: usize,
}

impl FlowHeadConfig {
    /// A head as the official constructor leaves it: xavier-uniform Linear weights with zero
    /// biases, N(0, 0.02²) time-embedding MLP weights, unit LayerNorms, and zero AdaLN projections
    /// and output layer (a fresh head predicts exactly 0).
    pub fn init(&self, device: &Device) -> FlowHead {
        let w = self.width;
        let blocks = (0..self.depth)
            .map(|_| ResBlock {
                in_ln: LayerNormConfig::new(w).with_epsilon(LN_EPS).init(device),
                mlp_0: xavier(w, w, device),
                mlp_2: xavier(w, w, device),
                ada_ln_modulation: zeros(w, 3 * w, device),
            })
            .collect();
        FlowHead {
            time_embed: TimestepEmbedder {
                mlp_0: normal(FREQUENCY_EMBEDDING_SIZE, w, TIME_EMBED_STD, device),
                mlp_2: normal(w, w, TIME_EMBED_STD, device),
            },
            cond_embed: xavier(self.z_channels, w, device),
            input_proj: xavier(self.in_channels, w, device),
            res_blocks: blocks,
            final_layer: FinalLayer { linear: zeros(w, self.in_channels, device), ada_ln_modulation: zeros(w, 2 * w, device) },
            in_channels: self.in_channels,
        }
    }
}

/// Linear with a weight drawn by `init` (fan-in/out given) and a zero bias.
fn linear_with(d_in: usize, d_out: usize, init: Initializer, device: &Device) -> Linear {
    Linear {
        weight: init.init_with([d_in, d_out], Some(d_in), Some(d_out), device),
        bias: Some(Initializer::Zeros.init([d_out], device)),
    }
}

/// Official `_basic_init`: `xavier_uniform_` weight, zero bias.
pub(crate) fn xavier(d_in: usize, d_out: usize, device: &Device) -> Linear {
    linear_with(d_in, d_out, Initializer::XavierUniform { gain: 1.0 }, device)
}

fn normal(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    linear_with(d_in, d_out, Initializer::Normal { mean: 0.0, std }, device)
}

fn zeros(d_in: usize, d_out: usize, device: &Device) -> Linear {
    linear_with(d_in, d_out, Initializer::Zeros, device)
}

/// Eps of the head's LayerNorms (official `eps=1e-6`).
const LN_EPS: f64 = 1e-6;

/// `[cos(t ω_k), sin(t ω_k)]` with `ω_k = exp(-ln(10000) k / (dim/2))`, `k < dim/2` (official
/// `TimestepEmbedder.timestep_embedding`; `dim` even).
///
/// # Shapes
/// - `t`: `[M]` → `[M, dim]`
pub fn timestep_embedding(t: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    // The frequencies as PyTorch computes them in float32: (-ln(10000) · k) / half, then exp.
    let neg_log = -(MAX_PERIOD.ln() as f32);
    let freqs: Vec<f32> = (0..half).map(|k| ((neg_log * k as f32) / half as f32).exp()).collect();
    let [m] = t.dims();
    let freqs = Tensor::<2>::from_data(TensorData::new(freqs, [1, half]), &t.device());
    let args = t.reshape([m, 1]) * freqs; // [M, half]
    Tensor::cat(vec![args.clone().cos(), args.sin()], 1)
}

/// Official `TimestepEmbedder`: the sinusoid, then Linear → SiLU → Linear (`mlp.0`, `mlp.2`).
#[derive(Module, Debug)]
struct TimestepEmbedder {
    mlp_0: Linear,
    mlp_2: Linear,
}

impl TimestepEmbedder {
    fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        dense(&self.mlp_2, silu(dense(&self.mlp_0, timestep_embedding(t, FREQUENCY_EMBEDDING_SIZE))))
    }
}

/// Official `ResBlock`: AdaLN (shift, scale, gate) around Linear → SiLU → Linear.
#[derive(Module, Debug)]
struct ResBlock {
    /// LayerNorm eps 1e-6.
    in_ln: LayerNorm,
    mlp_0: Linear,
    mlp_2: Linear,
    /// Official `adaLN_modulation` = SiLU → Linear(W, 3W) (checkpoint key `adaLN_modulation.1`).
    ada_ln_modulation: Linear,
}

impl ResBlock {
    /// `x`: `[M, W]`, `silu_y` = SiLU of the condition `[M, W]` → `[M, W]`.
    fn forward(&self, x: Tensor<2>, silu_y: Tensor<2>) -> Tensor<2> {
        // The fused kernels take [B, L, C]: the rows as one sequence, a condition per row.
        let [shift, scale, gate] = forward_chunks(&self.ada_ln_modulation, silu_y).map(|t: Tensor<2>| t.unsqueeze::<3>());
        let affine = Some((self.in_ln.gamma.val(), self.in_ln.beta.as_ref().expect("in_ln is affine").val()));
        let h = layer_norm_modulate(x.clone().unsqueeze(), affine, scale, shift, LN_EPS).squeeze_dim::<2>(0);
        let y = dense(&self.mlp_2, silu(dense(&self.mlp_0, h)));
        gated_residual(x.unsqueeze(), y.unsqueeze(), gate).squeeze_dim(0)
    }
}

/// Official `FinalLayer`: LayerNorm without affine, AdaLN (shift, scale), Linear(W, C).
#[derive(Module, Debug)]
struct FinalLayer {
    linear: Linear,
    /// Official `adaLN_modulation` = SiLU → Linear(W, 2W).
    ada_ln_modulation: Linear,
}

impl FinalLayer {
    fn forward(&self, x: Tensor<2>, silu_y: Tensor<2>) -> Tensor<2> {
        let [shift, scale] = forward_chunks(&self.ada_ln_modulation, silu_y).map(|t: Tensor<2>| t.unsqueeze::<3>());
        // No affine parameters here.
        dense(&self.linear, layer_norm_modulate(x.unsqueeze(), None, scale, shift, LN_EPS).squeeze_dim(0))
    }
}

/// The flow-matching head (official `SimpleMLPAdaLN`, `DiffLoss.net`). Build it with
/// [`FlowHeadConfig::init`].
#[derive(Module, Debug)]
pub struct FlowHead {
    time_embed: TimestepEmbedder,
    cond_embed: Linear,
    input_proj: Linear,
    res_blocks: Vec<ResBlock>,
    final_layer: FinalLayer,
    in_channels: usize,
}

impl FlowHead {
    /// Token channels C.
    pub fn in_channels(&self) -> usize {
        self.in_channels
    }

    /// Predicted velocity `noise - x0` at `x_t` (official `SimpleMLPAdaLN.forward`).
    ///
    /// # Shapes
    /// - `x_t`: `[M, C]`, `t`: `[M]` in (0, 1], `z`: `[M, D]` → `[M, C]`
    pub fn velocity(&self, x_t: Tensor<2>, t: Tensor<1>, z: Tensor<2>) -> Tensor<2> {
        self.velocity_from(x_t, self.time_embed.forward(t) + dense(&self.cond_embed, z))
    }

    /// [`FlowHead::velocity`] from its condition `y = time_embed(t) + cond_embed(z)`, `[M, W]`.
    fn velocity_from(&self, x_t: Tensor<2>, y: Tensor<2>) -> Tensor<2> {
        let mut x = dense(&self.input_proj, x_t);
        // Every AdaLN projection starts with SiLU(y): once for all of them.
        let silu_y = silu(y);
        for block in &self.res_blocks {
            x = block.forward(x, silu_y.clone());
        }
        self.final_layer.forward(x, silu_y)
    }

    /// Guided velocity with the official `forward_with_cfg` semantics: the rows are two halves,
    /// conditional then null; both halves are evaluated at the FIRST half's `x_t` (the second
    /// half's rows are ignored), and both get `v_u + scale · (v_c - v_u)`.
    ///
    /// # Shapes
    /// - `x`: `[2M, C]`, `t`: `[2M]`, `z`: `[2M, D]` (conditional rows first) → `[2M, C]`
    pub fn velocity_with_cfg(&self, x: Tensor<2>, t: Tensor<1>, z: Tensor<2>, scale: f64) -> Tensor<2> {
        let [rows, _] = x.dims();
        let m = rows / 2;
        let half = x.narrow(0, 0, m);
        let v = self.velocity(Tensor::cat(vec![half.clone(), half], 0), t, z);
        let guided = guide(v.clone().narrow(0, 0, m), v.narrow(0, m, m), scale);
        Tensor::cat(vec![guided.clone(), guided], 0)
    }

    /// Euler integration of the flow from `noise` at t = 1 to a token at t = 0 (official
    /// `sample_ode_generative` with `solver='euler'`): for `i = steps..1`, `t = i / steps`,
    /// `x += v(x, t) · (-1 / steps)`. With `z_null`, each velocity is guided as in
    /// [`FlowHead::velocity_with_cfg`] (`v_u + guidance · (v_c - v_u)`, both from the same `x`).
    ///
    /// # Shapes
    /// - `noise`: `[M, C]`, `z`, `z_null`: `[M, D]` → `[M, C]`
    ///
    /// # Panics
    /// When `steps` is 0.
    pub fn sample_euler(&self, noise: Tensor<2>, z: Tensor<2>, z_null: Option<Tensor<2>>, guidance: f64, steps: usize) -> Tensor<2> {
        assert!(steps > 0, "the Euler sampler needs at least one step");
        let [m, _] = noise.dims();
        let device = noise.device();
        // With guidance: conditional rows, then null rows, both at the same x.
        let both = z_null.map(|null| Tensor::cat(vec![z.clone(), null], 0));
        // The condition's embedding is the same at every step and the time's the same for every
        // row of a step: each is computed once, not per row and step (the same numbers).
        let cond = dense(&self.cond_embed, both.clone().unwrap_or_else(|| z.clone()));
        let [rows, width] = cond.dims();
        let mut x = noise;
        for i in (1..=steps).rev() {
            let y = cond.clone() + self.time_embed.forward(time(i, steps, 1, &device)).expand([rows, width]);
            let v = match &both {
                None => self.velocity_from(x.clone(), y),
                Some(_) => {
                    let v = self.velocity_from(Tensor::cat(vec![x.clone(), x.clone()], 0), y);
                    guide(v.clone().narrow(0, 0, m), v.narrow(0, m, m), guidance)
                }
            };
            x = x + v * (-1.0 / steps as f64);
        }
        x
    }

    /// The rectified-flow loss (official `DiffLoss.forward` via `RectifiedFlow.get_train_tuple`)
    /// with every row repeated `mul` times (official `.repeat(mul, 1)`: repeated row `r · N + i`
    /// is row `i`): `t = u · (1 - 1e-5) + 1e-5`, `x_t = t · noise + (1 - t) · x0`, target
    /// `noise - x0`; the squared error averaged over channels, then over rows. The caller draws
    /// `noise ~ N(0, 1)` and `u ~ U(0, 1)` per repeated row. The condition is embedded once per
    /// row, then repeated: the numbers of embedding the repeated rows (up to float rounding), for a
    /// `mul`-th of the work.
    ///
    /// # Shapes
    /// - `x0`: `[N, C]`, `z`: `[N, D]`, `noise`: `[mul · N, C]`, `u`: `[mul · N]` → `[1]`
    pub fn loss(&self, x0: Tensor<2>, z: Tensor<2>, mul: usize, noise: Tensor<2>, u: Tensor<1>) -> Tensor<1> {
        let [m] = u.dims();
        let x0 = Tensor::cat(vec![x0; mul], 0);
        let cond = Tensor::cat(vec![dense(&self.cond_embed, z); mul], 0);
        let t = u * (1.0 - T_EPS) + T_EPS;
        let tc = t.clone().reshape([m, 1]);
        let x_t = tc.clone() * noise.clone() + (tc.neg() + 1.0) * x0.clone();
        let target = noise - x0;
        (target - self.velocity_from(x_t, self.time_embed.forward(t) + cond)).square().mean()
    }

    /// Loads an official `SimpleMLPAdaLN` `state_dict` under `prefix` (`diffloss.net` inside the
    /// generator's).
    pub fn load_official(mut self, sd: &mut StateDict, prefix: &str) -> crate::Result<Self> {
        let p = |name: &str| format!("{prefix}.{name}");
        self.time_embed.mlp_0 = sd.linear(&p("time_embed.mlp.0"), self.time_embed.mlp_0)?;
        self.time_embed.mlp_2 = sd.linear(&p("time_embed.mlp.2"), self.time_embed.mlp_2)?;
        self.cond_embed = sd.linear(&p("cond_embed"), self.cond_embed)?;
        self.input_proj = sd.linear(&p("input_proj"), self.input_proj)?;
        let blocks = std::mem::take(&mut self.res_blocks);
        for (i, mut block) in blocks.into_iter().enumerate() {
            let b = |name: &str| p(&format!("res_blocks.{i}.{name}"));
            block.in_ln = sd.layer_norm(&b("in_ln"), block.in_ln)?;
            block.mlp_0 = sd.linear(&b("mlp.0"), block.mlp_0)?;
            block.mlp_2 = sd.linear(&b("mlp.2"), block.mlp_2)?;
            block.ada_ln_modulation = sd.linear(&b("adaLN_modulation.1"), block.ada_ln_modulation)?;
            self.res_blocks.push(block);
        }
        self.final_layer.linear = sd.linear(&p("final_layer.linear"), self.final_layer.linear)?;
        self.final_layer.ada_ln_modulation = sd.linear(&p("final_layer.adaLN_modulation.1"), self.final_layer.ada_ln_modulation)?;
        Ok(self)
    }
}

/// `v_u + scale · (v_c - v_u)`.
fn guide(cond: Tensor<2>, uncond: Tensor<2>, scale: f64) -> Tensor<2> {
    uncond.clone() + (cond - uncond) * scale
}

/// `[rows]` filled with `i / steps`, divided in float32 as `torch.ones(...) * i / N` does.
fn time(i: usize, steps: usize, rows: usize, device: &Device) -> Tensor<1> {
    Tensor::full([rows], i as f32 / steps as f32, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::tensor::Distribution;

    fn config() -> FlowHeadConfig {
        FlowHeadConfig::new(4, 6, 16, 2)
    }

    /// Every parameter random (the official init zeroes the output and would hide everything).
    fn random_head(device: &Device) -> FlowHead {
        struct Randomize;
        impl burn::module::ModuleMapper for Randomize {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, t, mapper) = param.consume();
                Param::from_mapped_value(id, t.random_like(Distribution::Normal(0.0, 0.4)), mapper)
            }
        }
        config().init(device).map(&mut Randomize)
    }

    fn max_abs_diff(a: Tensor<2>, b: Tensor<2>) -> f32 {
        (a - b).abs().max().into_scalar::<f32>()
    }

    #[test]
    fn official_init_predicts_zero_velocity() {
        let device = Device::flex();
        let head = config().init(&device);
        let x = Tensor::<2>::random([5, 4], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([5, 6], Distribution::Normal(0.0, 1.0), &device);
        let v = head.velocity(x, Tensor::full([5], 0.5, &device), z);
        assert_eq!(v.abs().max().into_scalar::<f32>(), 0.0);
    }

    #[test]
    fn guidance_one_is_the_conditional_velocity_and_the_sampler_follows_it() {
        let device = Device::flex();
        device.seed(3);
        let head = random_head(&device);
        let noise = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([3, 6], Distribution::Normal(0.0, 1.0), &device);
        let z_null = Tensor::<2>::random([3, 6], Distribution::Normal(0.0, 1.0), &device);
        let plain = head.sample_euler(noise.clone(), z.clone(), None, 1.0, 5);
        let guided = head.sample_euler(noise.clone(), z.clone(), Some(z_null.clone()), 1.0, 5);
        assert!(max_abs_diff(plain.clone(), guided) < 1e-5);
        // Guidance 0 follows the null condition alone.
        let null = head.sample_euler(noise.clone(), z_null.clone(), None, 1.0, 5);
        let zero = head.sample_euler(noise, z, Some(z_null), 0.0, 5);
        assert!(max_abs_diff(null, zero) < 1e-5);
    }

    #[test]
    fn cfg_velocity_uses_the_first_half_for_both() {
        let device = Device::flex();
        device.seed(4);
        let head = random_head(&device);
        let x = Tensor::<2>::random([4, 4], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([4, 6], Distribution::Normal(0.0, 1.0), &device);
        let t = Tensor::<1>::full([4], 0.3, &device);
        let v = head.velocity_with_cfg(x.clone(), t.clone(), z.clone(), 2.0);
        let top = x.narrow(0, 0, 2);
        let vc = head.velocity(top.clone(), t.clone().narrow(0, 0, 2), z.clone().narrow(0, 0, 2));
        let vu = head.velocity(top, t.narrow(0, 0, 2), z.narrow(0, 2, 2));
        let want = vu.clone() + (vc - vu) * 2.0;
        assert!(max_abs_diff(v.clone().narrow(0, 0, 2), want.clone()) < 1e-5);
        assert!(max_abs_diff(v.narrow(0, 2, 2), want) < 1e-5);
    }

    #[test]
    fn the_loss_is_the_mean_squared_velocity_error_at_the_shifted_time_over_the_repeated_rows() {
        let device = Device::flex();
        device.seed(5);
        let head = random_head(&device);
        let x0 = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let noise = Tensor::<2>::random([6, 4], Distribution::Normal(0.0, 1.0), &device);
        let z = Tensor::<2>::random([3, 6], Distribution::Normal(0.0, 1.0), &device);
        let u = Tensor::<1>::random([6], Distribution::Uniform(0.0, 1.0), &device);
        let loss = head.loss(x0.clone(), z.clone(), 2, noise.clone(), u.clone()).into_scalar::<f32>();
        // By hand: the rows repeated twice (`.repeat(2, 1)`), the mean squared error of the
        // velocity at the same x_t.
        let (x0, z) = (Tensor::cat(vec![x0.clone(), x0], 0), Tensor::cat(vec![z.clone(), z], 0));
        let t = u * (1.0 - T_EPS) + T_EPS;
        let tc = t.clone().reshape([6, 1]);
        let x_t = tc.clone() * noise.clone() + (tc.neg() + 1.0) * x0.clone();
        let want = ((noise - x0) - head.velocity(x_t, t, z)).square().mean().into_scalar::<f32>();
        assert!((loss - want).abs() < 1e-6 && loss > 0.0, "{loss} against {want}");
    }

    #[test]
    fn time_embedding_is_cos_then_sin() {
        let device = Device::flex();
        let e = timestep_embedding(Tensor::from_data(TensorData::new(vec![0.0f32, 1.0], [2]), &device), 8);
        let v = e.try_into_vec_as::<f32>().unwrap();
        assert_eq!(&v[..8], &[1., 1., 1., 1., 0., 0., 0., 0.]);
        // Row t = 1: ω = [1, 10^-1, 10^-2, 10^-3].
        for k in 0..4 {
            let w = 10f32.powi(-(k as i32));
            assert!((v[8 + k] - w.cos()).abs() < 1e-6 && (v[12 + k] - w.sin()).abs() < 1e-6);
        }
    }
}
