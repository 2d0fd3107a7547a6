//! The `sample` case: the official `sample_tokens` loop (guidance on the linear or constant
//! schedule, the given noise per step), then the tokenizer's decode of `tokens / vae_norm`; here
//! through the bounded-cache sampler ([`ColumnSampling`]), which must give the same columns as the
//! official full re-runs.

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use super::generator::{load_generator, read_labels};
use super::tokenizer::load_tokenizer;
use crate::Result;
use crate::parity::{Computed, Io, f32_of, fixture_err};
use crate::sampling::equivariant::{CfgSchedule, ColumnSamplerConfig, ColumnSampling};

/// Computes `sampled_tokens_raw` (`[B, C, 1, N]`, as `sample_tokens` returns it),
/// `sampled_tokens` (`[B, N, C]`) and `decoded`.
pub(super) fn run(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let number = |key: &str| config[key].as_f64().ok_or_else(|| fixture_err(config_path, format!("`{key}` is missing or not a number")));
    let cfg = number("cfg")?;
    let vae_norm = number("vae_norm")?;
    let schedule = match config["cfg_schedule"].as_str().unwrap_or("linear") {
        "linear" => CfgSchedule::Linear,
        "constant" => CfgSchedule::Constant,
        other => return Err(fixture_err(config_path, format!("cfg_schedule `{other}`: the official code knows linear and constant"))),
    };
    let model = load_generator(config_path, config, device)?;
    let tokenizer = load_tokenizer(config_path, config, device)?;
    let noise: Tensor<3> = io.f32("step_noise", device)?;
    let [steps, b, c] = noise.dims();
    let labels = read_labels(io, model.class_num(), device)?;
    if labels.dims() != [b] || c != model.token_dim() {
        return Err(fixture_err(
            &io.path,
            format!("step_noise {:?} does not fit {:?} labels and tokens of {}", [steps, b, c], labels.dims(), model.token_dim()),
        ));
    }

    let sampler = ColumnSamplerConfig { cfg, schedule, ..ColumnSamplerConfig::default() };
    let mut run = ColumnSampling::new(&model, labels, sampler, steps);
    for step in 0..steps {
        run.step_with_noise(&model, noise.clone().narrow(0, step, 1).reshape([b, c]));
    }
    let tokens = run.tokens(); // [B, N, C]
    let raw = tokens.clone().swap_dims(1, 2).reshape([b, c, 1, steps]);
    let decoded = tokenizer.decode(tokens.clone() / vae_norm);
    Ok(vec![
        ("sampled_tokens_raw".into(), f32_of(raw)),
        ("sampled_tokens".into(), f32_of(tokens)),
        ("decoded".into(), f32_of(decoded)),
    ])
}
