//! AdamW with VAR's weight-decay exclusions, global gradient-norm clipping, and optimizer state
//! that reads back asynchronously (so it can be checkpointed in the browser).
//! Official: FoundationVision/VAR @78b95394, `utils/lr_control.py` (`filter_params`), `train.py`
//! (`nowd_keys`), `utils/amp_sc.py` (`clip_grad_norm_`); PyTorch `torch.optim.AdamW`.
//!
//! Why not burn's `AdamW`: its weight decay is one number for every parameter, its clipping is
//! per tensor (the official clips the global norm), and its state record reads back
//! synchronously, which panics on WebGPU. The update itself is PyTorch's AdamW, step for step.

use std::collections::HashMap;

use burn::config::Config;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::Error;

/// Names that never get weight decay, matched as substrings of the lower-cased parameter path
/// (official `nowd_keys` in `train.py`; `pos_1LC` and `scale_mul_1H11` are lower-case here).
pub const NO_DECAY_KEYS: [&str; 14] = [
    "cls_token",
    "start_token",
    "task_token",
    "cfg_uncond",
    "pos_embed",
    "pos_1lc",
    "pos_start",
    "start_pos",
    "lvl_embed",
    "gamma",
    "beta",
    "ada_gss",
    "moe_bias",
    "scale_mul",
];

/// Whether a parameter gets weight decay (official `filter_params`): not when it is 1-D, a
/// bias, or its path contains one of [`NO_DECAY_KEYS`].
pub fn decays(path: &str, rank: usize) -> bool {
    let path = path.to_ascii_lowercase();
    !(rank == 1 || path.ends_with("bias") || NO_DECAY_KEYS.iter().any(|k| path.contains(k)))
}

/// One float parameter of a module as the optimizer and the checkpoints see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    /// Identity of the parameter (kept by checkpoints).
    pub id: ParamId,
    /// Dotted field path, e.g. `blocks.0.attn.mat_qkv.weight`.
    pub path: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// Every float parameter of `module`, in traversal order.
pub fn param_infos<M: Module>(module: &M) -> Vec<ParamInfo> {
    #[derive(Default)]
    struct Paths {
        path: Vec<String>,
        out: Vec<ParamInfo>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let shape = param.lazy_shape().dims::<D>().to_vec();
            self.out.push(ParamInfo { id: param.id, path: self.path.join("."), shape });
        }
    }
    let mut visitor = Paths::default();
    module.visit(&mut visitor);
    visitor.out
}

/// Hyper-parameters of [`AdamW`].
#[derive(Config, Debug)]
pub struct AdamWConfig {
    /// First-moment decay (official VAR: 0.9).
    #[config(default = 0.9)]
    pub beta1: f64,
    /// Second-moment decay (official VAR: 0.95).
    #[config(default = 0.95)]
    pub beta2: f64,
    /// Added to the root of the second moment (PyTorch default 1e-8).
    #[config(default = 1e-8)]
    pub epsilon: f64,
    /// Decoupled weight decay for the parameters [`decays`] selects (official `twd` = 0.05).
    #[config(default = 0.05)]
    pub weight_decay: f64,
    /// Global gradient-norm clip (official `tclip` = 2.0); 0 disables clipping.
    #[config(default = 2.0)]
    pub grad_clip: f64,
}

/// The moments of one parameter, flattened (element-wise updates do not need the shape).
#[derive(Debug, Clone)]
struct Moments {
    /// `[numel]` running mean of the gradient (PyTorch `exp_avg`).
    exp_avg: Tensor<1>,
    /// `[numel]` running mean of the squared gradient (PyTorch `exp_avg_sq`).
    exp_avg_sq: Tensor<1>,
    /// Updates this parameter has had, for the bias correction.
    step: u64,
}

/// AdamW (Loshchilov & Hutter, 2019) as `torch.optim.AdamW`, with weight decay only on the
/// parameters [`decays`] selects. Build it with [`AdamW::new`] for one module.
#[derive(Debug, Clone)]
pub struct AdamW {
    config: AdamWConfig,
    /// Parameters that get weight decay.
    decay: HashMap<ParamId, bool>,
    state: HashMap<ParamId, Moments>,
}

impl AdamW {
    /// An optimizer for `module`'s parameters, with no state yet.
    pub fn new<M: Module>(config: AdamWConfig, module: &M) -> Self {
        let decay = param_infos(module).into_iter().map(|p| (p.id, decays(&p.path, p.shape.len()))).collect();
        Self { config, decay, state: HashMap::new() }
    }

    /// Chooses the parameters that get weight decay by another family's rule (`rule(path, rank)`,
    /// e.g. RAR's, which follows other names than VAR's [`decays`]). The moments are kept.
    pub fn with_decay_rule<M: Module>(mut self, module: &M, rule: fn(&str, usize) -> bool) -> Self {
        self.decay = param_infos(module).into_iter().map(|p| (p.id, rule(&p.path, p.shape.len()))).collect();
        self
    }

    /// The settings.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Whether parameter `id` gets weight decay.
    pub fn decays(&self, id: ParamId) -> bool {
        self.decay.get(&id).copied().unwrap_or(false)
    }

    /// Global L2 norm of all of `grads` (over `module`'s parameters), `[1]` on the device.
    pub fn grad_norm<M: Module>(module: &M, grads: &GradientsParams) -> Tensor<1> {
        struct SumSquares<'a> {
            grads: &'a GradientsParams,
            sum: Option<Tensor<1>>,
        }
        impl ModuleVisitor for SumSquares<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.grads.get::<D>(param.id) {
                    let s = g.square().sum();
                    self.sum = Some(match self.sum.take() {
                        Some(acc) => acc + s,
                        None => s,
                    });
                }
            }
        }
        let mut visitor = SumSquares { grads, sum: None };
        module.visit(&mut visitor);
        match visitor.sum {
            Some(s) => s.sqrt(),
            None => Tensor::zeros([1], &module.devices().first().cloned().unwrap_or_default()),
        }
    }

    /// The factor every gradient is multiplied by under the global clip: `min(1, clip / (norm +
    /// 1e-6))` as `torch.nn.utils.clip_grad_norm_`, `[1]`; `None` when clipping is off.
    pub fn clip_factor(&self, grad_norm: &Tensor<1>) -> Option<Tensor<1>> {
        (self.config.grad_clip > 0.0).then(|| (grad_norm.clone().add_scalar(1e-6).recip() * self.config.grad_clip).clamp_max(1.0))
    }

    /// One AdamW update of every parameter of `module` that has a gradient, at learning rate
    /// `lr`, gradients scaled by `grad_scale` (`[1]`, from [`AdamW::clip_factor`]) first.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: GradientsParams, grad_scale: Option<Tensor<1>>) -> M {
        let mut mapper = Update { optim: self, lr, grads, grad_scale };
        module.map(&mut mapper)
    }

    /// One checked update of `model` at learning rate `lr`: backpropagates `loss` (`[1]`), reads
    /// `report` (loss first, then whatever the step reports) and the global gradient norm back in
    /// one go (asynchronously: browser-safe), and updates only when the loss and the norm are
    /// finite; otherwise [`Error::NonFiniteLoss`] / [`Error::NonFiniteGradient`] for step `step`
    /// and `model` untouched. Returns the updated model and the values read: `report`'s, then the
    /// gradient norm last.
    pub async fn checked_update<M: Module>(
        &mut self,
        model: &M,
        loss: Tensor<1>,
        report: Vec<Tensor<1>>,
        lr: f64,
        step: usize,
    ) -> crate::Result<(M, Vec<f32>)> {
        let grads = GradientsParams::from_grads(loss.backward(), model);
        self.checked_update_with(model, grads, report, lr, step).await
    }

    /// [`AdamW::checked_update`] with the gradients already taken (a batch in parts: `report`
    /// starts with the batch's loss).
    pub(crate) async fn checked_update_with<M: Module>(
        &mut self,
        model: &M,
        grads: GradientsParams,
        report: Vec<Tensor<1>>,
        lr: f64,
        step: usize,
    ) -> crate::Result<(M, Vec<f32>)> {
        let grad_norm = Self::grad_norm(model, &grads);
        let mut parts = report;
        parts.push(grad_norm.clone());
        let data = Tensor::cat(parts, 0).into_data_async().await.map_err(Error::readback).and_then(crate::error::on_host)?;
        let values: Vec<f32> = data.iter::<f32>().collect();
        let norm = *values.last().expect("the gradient norm is read");
        if !values[0].is_finite() {
            return Err(Error::NonFiniteLoss { step, value: values[0] });
        }
        if !norm.is_finite() {
            return Err(Error::NonFiniteGradient { step, value: norm });
        }
        let scale = self.clip_factor(&grad_norm);
        Ok((self.step(lr, model.clone(), grads, scale), values))
    }

    /// Number of parameters with state.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// Whether no step was taken yet.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// The state as burnpack bytes, tensors named `{path}.exp_avg` / `{path}.exp_avg_sq` and a
    /// scalar `{path}.step` per parameter. Reads back asynchronously (browser-safe).
    pub async fn to_bytes(&self, module: &impl Module) -> crate::Result<Vec<u8>> {
        let mut tensors = Vec::new();
        let mut scalars = Vec::new();
        for p in param_infos(module) {
            let Some(m) = self.state.get(&p.id) else { continue };
            for (name, t) in [("exp_avg", &m.exp_avg), ("exp_avg_sq", &m.exp_avg_sq)] {
                let data = t.clone().into_data_async().await.map_err(Error::readback).and_then(crate::error::on_host)?;
                let (bytes, shape, dtype) = data.into_parts();
                tensors.push(burn_pack::Tensor::new(format!("{}.{name}", p.path), dtype, shape, None, bytes));
            }
            scalars.push((format!("{}.step", p.path), m.step));
        }
        let mut writer = burn_pack::Writer::new(tensors);
        for (key, step) in scalars {
            writer = writer.with_scalar(&key, burn_pack::Scalar::UInt(step));
        }
        let bytes = writer.into_bytes().map_err(|e| Error::OptimizerState(e.to_string()))?;
        Ok(bytes.to_vec())
    }

    /// An optimizer for `module` with the state [`AdamW::to_bytes`] wrote for a module of the
    /// same structure (matched by path; every parameter's state must be there and fit).
    pub fn from_bytes<M: Module>(config: AdamWConfig, module: &M, bytes: &[u8], device: &Device) -> crate::Result<Self> {
        let bad = |m: String| Error::OptimizerState(m);
        let reader = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
            .map_err(|e| bad(e.to_string()))?;
        let scalars = reader.scalars().clone();
        let mut tensors: HashMap<String, TensorData> = HashMap::new();
        for t in reader.into_tensors().map_err(|e| bad(e.to_string()))? {
            let (name, dtype, shape, _, bytes) = t.into_parts().map_err(|e| bad(e.to_string()))?;
            tensors.insert(name, TensorData::from_bytes(bytes, shape, dtype));
        }
        let mut optim = Self::new(config, module);
        let device = device.clone().inner();
        for p in param_infos(module) {
            let key = |field: &str| format!("{}.{field}", p.path);
            let step = match scalars.get(&key("step")) {
                Some(burn_pack::Scalar::UInt(s)) => *s,
                Some(other) => return Err(bad(format!("{}: step is {other:?}", key("step")))),
                None => continue, // never updated
            };
            let numel: usize = p.shape.iter().product();
            let mut take = |field: &str| -> crate::Result<Tensor<1>> {
                let data = tensors.remove(&key(field)).ok_or_else(|| bad(format!("no `{}`", key(field))))?;
                if data.num_elements() != numel || data.shape().num_dims() != 1 {
                    return Err(bad(format!("`{}` has shape {:?}, the parameter has {numel} values", key(field), data.shape())));
                }
                Ok(Tensor::from_data(data, &device))
            };
            let moments = Moments { exp_avg: take("exp_avg")?, exp_avg_sq: take("exp_avg_sq")?, step };
            optim.state.insert(p.id, moments);
        }
        if let Some(name) = tensors.keys().next() {
            return Err(bad(format!("state `{name}` belongs to no parameter of this model")));
        }
        Ok(optim)
    }
}

struct Update<'a> {
    optim: &'a mut AdamW,
    lr: f64,
    grads: GradientsParams,
    grad_scale: Option<Tensor<1>>,
}

impl ModuleMapper for Update<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let c = &self.optim.config;
        let shape = tensor.shape();
        let n = shape.num_elements();
        let require_grad = tensor.is_require_grad();
        let mut g = grad.inner().reshape([n]);
        if let Some(scale) = &self.grad_scale {
            g = g * scale.clone().inner();
        }

        // torch.optim.AdamW: decay, then the moments, then the bias-corrected step.
        let moments = match self.optim.state.remove(&id) {
            Some(m) => Moments {
                exp_avg: m.exp_avg * c.beta1 + g.clone() * (1.0 - c.beta1),
                exp_avg_sq: m.exp_avg_sq * c.beta2 + g.square() * (1.0 - c.beta2),
                step: m.step + 1,
            },
            None => Moments { exp_avg: g.clone() * (1.0 - c.beta1), exp_avg_sq: g.square() * (1.0 - c.beta2), step: 1 },
        };
        let t = moments.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        let denom = (moments.exp_avg_sq.clone() / bias2).sqrt().add_scalar(c.epsilon);
        let delta = moments.exp_avg.clone() / denom * (self.lr / bias1);

        let mut p = tensor.inner();
        let wd = if self.optim.decays(id) { c.weight_decay } else { 0.0 };
        if wd != 0.0 {
            p = p * (1.0 - self.lr * wd);
        }
        let p = p - delta.reshape(shape);
        self.optim.state.insert(id, moments);

        let mut p = Tensor::from_inner(p);
        if require_grad {
            p = p.require_grad();
        }
        Param::from_mapped_value(id, p, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_models::generators::var::VarConfig;
    use tessera_models::tokenizers::msvq::MsVqVaeConfig;

    #[test]
    fn weight_decay_skips_the_official_exclusions_of_var() {
        let device = Device::flex();
        let var = VarConfig::new(vec![1, 2], 16, 4, 3, 2, 32, 2).init(&device);
        let infos = param_infos(&var);
        let decayed: Vec<&str> =
            infos.iter().filter(|p| decays(&p.path, p.shape.len())).map(|p| p.path.as_str()).collect();
        let kept: Vec<&str> =
            infos.iter().filter(|p| !decays(&p.path, p.shape.len())).map(|p| p.path.as_str()).collect();
        for name in ["word_embed.weight", "class_emb.weight", "blocks.0.attn.mat_qkv.weight", "blocks.1.ffn.fc2.weight",
            "blocks.0.ada_lin.weight", "head_nm.ada_lin.weight", "head.weight"]
        {
            assert!(decayed.contains(&name), "{name} should decay: {decayed:?}");
        }
        for name in ["pos_start", "pos_1lc", "lvl_embed.weight", "blocks.0.attn.q_bias", "blocks.0.attn.v_bias",
            "blocks.0.attn.scale_mul_1h11", "blocks.0.attn.proj.bias", "head.bias"]
        {
            assert!(kept.contains(&name), "{name} should not decay: {kept:?}");
        }
        assert_eq!(decayed.len() + kept.len(), infos.len());
        // GroupNorm's gamma/beta in the tokenizer are excluded by name and rank.
        let vae = MsVqVaeConfig::new().with_vocab_size(8).with_z_channels(4).with_ch(8).with_ch_mult(vec![1, 1])
            .with_num_res_blocks(1).with_num_groups(4).with_patch_nums(vec![1, 2]).init(&device);
        let infos = param_infos(&vae);
        assert!(infos.iter().any(|p| p.path == "encoder.norm_out.gamma" && !decays(&p.path, 1)));
        assert!(infos.iter().any(|p| p.path == "quantize.embedding.weight" && decays(&p.path, 2)));
    }

    #[test]
    fn adamw_matches_the_pytorch_update_and_clips_the_global_norm() {
        #[derive(Module, Debug)]
        struct Two {
            w: Param<Tensor<2>>,
            bias: Param<Tensor<1>>,
        }
        let device = Device::flex().autodiff();
        let w = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, -2.0], [1, 2]), &device);
        let b = Tensor::<1>::from_data(TensorData::new(vec![0.5f32], [1]), &device);
        let model = Two { w: Param::from_tensor(w.require_grad()), bias: Param::from_tensor(b.require_grad()) };
        // loss = 3·w0 + 4·w1 + 0·b: gradient (3, 4) and 0, global norm 5.
        let loss = (model.w.val() * Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device)).sum()
            + model.bias.val().sum() * 0.0;
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let norm = AdamW::grad_norm(&model, &grads);
        assert!((norm.clone().into_scalar::<f32>() - 5.0).abs() < 1e-5);
        let config = AdamWConfig::new().with_grad_clip(1.0).with_weight_decay(0.1);
        let mut optim = AdamW::new(config, &model);
        let scale = optim.clip_factor(&norm);
        let lr = 0.01;
        let model = optim.step(lr, model, grads, scale);
        // First step: m̂ = g, v̂ = g², update = lr · g/(|g| + eps) = lr · sign(g), whatever the clip.
        // w decays first: w · (1 - lr · wd).
        let w = model.w.val().into_data().try_to_vec::<f32>().unwrap();
        let expect = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) - 0.01];
        assert!((w[0] - expect[0] as f32).abs() < 1e-6 && (w[1] - expect[1] as f32).abs() < 1e-6, "{w:?}");
        // The bias has no decay and a zero gradient: it stays.
        assert_eq!(model.bias.val().into_data().try_to_vec::<f32>().unwrap(), vec![0.5]);
        assert!(model.w.val().is_require_grad());
    }
}
