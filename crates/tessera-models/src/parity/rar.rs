//! RAR's parity cases (bytedance/1d-tokenizer): `tokenizer` (MaskGIT-VQGAN encode / decode),
//! `generator` (`RAR.forward_fn`: raster, explicit orders, null class) and `generation`
//! (`RAR.generate`, greedy, with the KV cache and the guidance schedules).
//!
//! `RAR(config)` reads an OmegaConf config: `model.vq_model.codebook_size` and
//! `model.generator.*`. The runner finds that `model` object wherever the constructor section
//! puts it (under `RAR(config)`, `RAR`, `config`, or at the top).

use std::path::Path;

use burn::prelude::*;
use serde_json::Value;

use super::{CaseOutcome, Computed, Io, f32_of, fixture_err, i64_of};
use crate::Result;
use crate::generators::rar::{Rar, RarConfig};
use crate::sampling::logits::TokenFilter;
use crate::sampling::rar::{RarSamplerConfig, RarSampling, cfg_scale};
use crate::weights::StateDict;

mod tokenizer;

/// Runs one RAR case: builds what it needs from the config's constructor arguments and computes
/// every output the runner knows for it.
pub(super) fn run_case(config_path: &Path, config: &Value, case: &str, device: &Device) -> Result<CaseOutcome> {
    let mut io = Io::open(config_path, config, case)?;
    let computed = match case {
        "tokenizer" => tokenizer::run(config_path, config, &mut io, device)?,
        "generator" => generator(config_path, config, &mut io, device)?,
        "generation" => generation(config_path, config, &mut io, device)?,
        other => {
            return Ok(CaseOutcome::Unsupported(format!("RAR case `{other}` is not known to the runner")));
        }
    };
    Ok(CaseOutcome::Ran(io.compare(config, computed)))
}

/// The OmegaConf `model` object the constructor was given.
fn model_section<'a>(config_path: &Path, config: &'a Value) -> Result<&'a Value> {
    fn find(v: &Value, depth: usize) -> Option<&Value> {
        let obj = v.as_object()?;
        if obj.contains_key("generator") && obj.contains_key("vq_model") {
            return Some(v);
        }
        if depth == 0 {
            return None;
        }
        obj.values().find_map(|child| find(child, depth - 1))
    }
    find(&config["constructor"], 3)
        .ok_or_else(|| fixture_err(config_path, "the constructor has no RAR config (`model.generator` and `model.vq_model`)"))
}

/// `RAR(config)` as the config constructs it.
pub(super) fn rar_config(config_path: &Path, config: &Value) -> Result<RarConfig> {
    let model = model_section(config_path, config)?;
    let g = &model["generator"];
    // The official constructor reads these without defaults: a missing one fails there too.
    let required = |section: &Value, key: &str| -> Result<usize> {
        section[key]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| fixture_err(config_path, format!("RAR config: `{key}` is missing or not a whole number")))
    };
    let rar = RarConfig::new(
        required(&model["vq_model"], "codebook_size")?,
        required(g, "condition_num_classes")?,
        required(g, "image_seq_len")?,
        required(g, "hidden_size")?,
        required(g, "num_hidden_layers")?,
        required(g, "num_attention_heads")?,
        required(g, "intermediate_size")?,
    )
    .with_dropout(g["dropout"].as_f64().unwrap_or(0.0))
    .with_cond_drop_rate(g["class_label_dropout"].as_f64().unwrap_or(0.1));
    rar.validate()?;
    Ok(rar)
}

fn load_rar(config_path: &Path, config: &Value, device: &Device) -> Result<Rar> {
    let w = &config["weights"];
    let file = w["files"]["generator"].as_str().or_else(|| w["file"].as_str());
    let file = file.ok_or_else(|| fixture_err(config_path, "no weight file for the generator"))?;
    let rar = if model_section(config_path, config).is_ok() {
        rar_config(config_path, config)?
    } else {
        sibling_constructor(config_path, file)?
    };
    let mut sd = StateDict::from_file(&config_path.with_file_name(file))?;
    let model = rar.init(device).load_official(&mut sd)?;
    sd.finish().map(|()| model)
}

/// A case without a constructor (`generation` reuses the `generator` case's weights) is built
/// from the constructor of the case in the same folder that uses the same weight file.
fn sibling_constructor(config_path: &Path, weights: &str) -> Result<RarConfig> {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let mut siblings: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| crate::Error::Io { path: dir.display().to_string(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".config.json") && p != config_path)
        .collect();
    siblings.sort();
    for path in siblings {
        let Ok(other) = super::read_json(&path) else { continue };
        let same = other["weights"]["file"].as_str() == Some(weights) || other["weights"]["files"]["generator"].as_str() == Some(weights);
        if same && model_section(&path, &other).is_ok() {
            return rar_config(&path, &other);
        }
    }
    Err(fixture_err(config_path, format!("no constructor here, and no case in this folder builds the model of `{weights}`")))
}

/// Checks an input's shape against what the model takes, before anything runs.
fn expect_shape(io: &Io, name: &str, expected: &[usize]) -> Result<()> {
    match io.tensors.shape(name) {
        Some(shape) if shape == expected => Ok(()),
        Some(shape) => Err(fixture_err(&io.path, format!("`{name}` has shape {shape:?}, the config implies {expected:?}"))),
        None => Err(fixture_err(&io.path, format!("no input `{name}`"))),
    }
}

fn generator(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let rar = load_rar(config_path, config, device)?;
    let b = io.tensors.shape("labels").and_then(|s| s.first().copied()).unwrap_or(0);
    expect_shape(io, "input_ids", &[b, rar.seq_len()])?;
    expect_shape(io, "orders", &[b, rar.seq_len()])?;
    let ids = io.i64::<2>("input_ids", device)?;
    let labels = io.i64::<1>("labels", device)?;
    let orders = io.i64::<2>("orders", device)?;
    let null = Tensor::<1, Int>::full([b], rar.null_class() as i64, device);
    let (raster, inter) = rar.forward_with_intermediates(ids.clone(), labels.clone(), None);
    let mut out = vec![
        ("condition_ids".to_string(), i64_of(rar.condition_ids(labels.clone()))),
        ("logits_raster".to_string(), f32_of(raster)),
        ("logits_orders".to_string(), f32_of(rar.forward(ids.clone(), labels, Some(orders.clone())))),
        ("labels_orders".to_string(), i64_of(ids.clone().gather(1, orders))),
        ("logits_null_condition".to_string(), f32_of(rar.forward(ids, null, None))),
        ("raster_embed_in".to_string(), f32_of(inter.embed_in)),
        ("raster_cond_tokens".to_string(), f32_of(inter.cond_tokens)),
    ];
    for (i, block) in inter.block_outs.into_iter().enumerate() {
        out.push((format!("raster_block{i}_out"), f32_of(block)));
    }
    Ok(out)
}

/// One `prefix_*: gen.generate(labels, guidance_scale=…, randomize_temperature=…,
/// guidance_scale_pow=…)` line of the config's `calls`.
struct GenerateCall {
    prefix: String,
    guidance: f64,
    temperature: f64,
    power: f64,
}

fn parse_generate_call(call: &str) -> Option<GenerateCall> {
    let (prefix, rest) = call.split_once(':')?;
    let prefix = prefix.trim().strip_suffix('*')?.to_string();
    if !rest.contains("generate(") {
        return None;
    }
    let arg = |key: &str| -> Option<f64> {
        let start = rest.find(&format!("{key}="))? + key.len() + 1;
        let tail = &rest[start..];
        tail[..tail.find([',', ')']).unwrap_or(tail.len())].trim().parse().ok()
    };
    Some(GenerateCall { prefix, guidance: arg("guidance_scale")?, temperature: arg("randomize_temperature")?, power: arg("guidance_scale_pow")? })
}

fn generation(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let calls: Vec<GenerateCall> =
        config["calls"].as_array().map(|a| a.iter().filter_map(|c| c.as_str().and_then(parse_generate_call)).collect()).unwrap_or_default();
    if calls.is_empty() {
        return Err(fixture_err(config_path, "no `prefix_*: gen.generate(...)` call found"));
    }
    let rar = load_rar(config_path, config, device)?;
    let labels = io.i64::<1>("labels", device)?;
    let n = rar.seq_len();
    let mut out = Vec::new();
    for call in calls {
        // Greedy (the fixture replaced torch.multinomial by argmax): top-k 1 after the temperature.
        let sampler = RarSamplerConfig {
            guidance: call.guidance,
            guidance_pow: call.power,
            filter: TokenFilter { temperature: call.temperature, top_k: 1, top_p: 0.0 },
            ..RarSamplerConfig::default()
        };
        let mut run = RarSampling::new(&rar, labels.clone(), sampler);
        let (mut logits, mut cond, mut uncond, mut cfg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        while let Some(step) = run.step(&rar) {
            logits.push(step.logits.unsqueeze_dim::<3>(1));
            if let Some((c, u)) = step.halves {
                cond.push(c.unsqueeze_dim::<3>(1));
                uncond.push(u.unsqueeze_dim::<3>(1));
            }
            cfg.push(step.cfg as f32);
        }
        let p = call.prefix;
        out.push((format!("{p}ids"), i64_of(run.tokens())));
        out.push((format!("{p}step_logits"), f32_of(Tensor::cat(logits, 1))));
        out.push((format!("{p}cfg_scale"), f32_of(Tensor::<1>::from_data(TensorData::new(cfg, [n]), device))));
        if !cond.is_empty() {
            out.push((format!("{p}step_cond_logits"), f32_of(Tensor::cat(cond, 1))));
            out.push((format!("{p}step_uncond_logits"), f32_of(Tensor::cat(uncond, 1))));
        }
    }
    if io.tensors.contains("cfg_schedule_params") {
        // Rows (guidance, pow); the schedule of each row over the N steps.
        let (shape, params) = io.tensors.f32("cfg_schedule_params", None)?;
        let rows: Vec<f32> = params
            .chunks(2)
            .flat_map(|gp| (0..n).map(move |s| cfg_scale(gp[0] as f64, gp[1] as f64, s, n) as f32))
            .collect();
        let count = rows.len() / n;
        out.push(("cfg_schedule".to_string(), f32_of(Tensor::<2>::from_data(TensorData::new(rows, [count, n]), device))));
        out.push(("cfg_schedule_params".to_string(), f32_of(Tensor::<2>::from_data(TensorData::new(params, shape), device))));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_calls_are_parsed_from_the_config() {
        let call = parse_generate_call(
            "cfg_*: gen.generate(labels, guidance_scale=4.0, randomize_temperature=1.02, guidance_scale_pow=2.5, kv_cache=True)",
        )
        .unwrap();
        assert_eq!((call.prefix.as_str(), call.guidance, call.temperature, call.power), ("cfg_", 4.0, 1.02, 2.5));
        assert!(parse_generate_call("cfg_schedule: one generate() run per (g, pow) row, randomize_temperature=1.0").is_none());
    }
}
