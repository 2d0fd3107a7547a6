//! VAR's parity cases (FoundationVision/VAR): `resize`, `tokenizer` (VQVAE), `generator`
//! (teacher-forced VAR) and `sampling` (greedy `autoregressive_infer_cfg`). The models are built
//! from the config's official constructor arguments ([`constructor`]).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde_json::Value;

use super::{CaseOutcome, Computed, Io, f32_of, fixture_err, i64_of};
use crate::Result;
use crate::generators::var::Var;
use crate::resize::{resize_area, resize_bicubic, upsample_nearest2x};
use crate::sampling::var::{VarSamplerConfig, sample};
use crate::tokenizers::msvq::MsVqVae;
use crate::weights::StateDict;

mod constructor;

/// Runs one VAR case: builds what it needs from the config's constructor arguments and computes
/// every output the runner knows for it.
pub(super) fn run_case(
    config_path: &Path,
    config: &Value,
    case: &str,
    device: &Device,
) -> Result<CaseOutcome> {
    if let Some(why) = constructor::unsupported(config_path, config)? {
        return Ok(CaseOutcome::Unsupported(why));
    }
    let mut io = Io::open(config_path, config, case)?;
    let computed = match case {
        "resize" => var_resize(&mut io, device)?,
        "tokenizer" => var_tokenizer(config_path, config, &mut io, device)?,
        "generator" => var_generator(config_path, config, &mut io, device)?,
        "sampling" => match var_sampling(config_path, config, &mut io, device)? {
            Ok(computed) => computed,
            Err(why) => return Ok(CaseOutcome::Unsupported(why)),
        },
        other => {
            return Ok(CaseOutcome::Unsupported(format!(
                "VAR case `{other}` is not known to the runner"
            )));
        }
    };
    Ok(CaseOutcome::Ran(io.compare(config, computed)))
}

/// Weight file of `role` (`vae` or `var`): `weights.file` or `weights.files.<role>`.
fn weight_file(config_path: &Path, config: &Value, role: &str) -> Result<PathBuf> {
    let w = &config["weights"];
    let file = w["files"][role].as_str().or_else(|| w["file"].as_str());
    let file =
        file.ok_or_else(|| fixture_err(config_path, format!("no weight file for the {role}")))?;
    Ok(config_path.with_file_name(file))
}

fn load_vae(config_path: &Path, config: &Value, device: &Device) -> Result<MsVqVae> {
    let mut sd = StateDict::from_file(&weight_file(config_path, config, "vae")?)?;
    let model = constructor::vqvae_config(config_path, config)?.init(device).load_official(&mut sd)?;
    sd.finish().map(|()| model)
}

fn load_var(config_path: &Path, config: &Value, device: &Device) -> Result<Var> {
    let mut sd = StateDict::from_file(&weight_file(config_path, config, "var")?)?;
    let model = constructor::var_config(config_path, config)?.init(device).load_official(&mut sd)?;
    sd.finish().map(|()| model)
}

/// Outputs named `area_{in}_to_{out}`, `bicubic_{in}_to_{out}`, `bicubic_down_{in}_to_{out}`,
/// `nearest2x_{in}`; the input is the INPUT tensor of side `in` (bicubic up-sampling prefers a
/// `bicubic_input*`, the others an `area_input*`); the output size is the expected tensor's.
fn var_resize(io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let inputs: Vec<(String, usize)> = io
        .tensors
        .keys()
        .filter(|k| !io.outputs.iter().any(|o| o.as_str() == *k))
        .filter_map(|k| {
            io.tensors
                .shape(k)
                .filter(|s| s.len() == 4)
                .map(|s| (k.to_string(), s[2]))
        })
        .collect();
    let mut computed = Vec::new();
    for name in io.outputs.clone() {
        let Some(out_shape) = io.tensors.shape(&name).map(<[usize]>::to_vec) else {
            continue;
        };
        let (mode, side) = if let Some(rest) = name.strip_prefix("nearest2x_") {
            ("nearest", rest.parse::<usize>().ok())
        } else if let Some(rest) = name.strip_prefix("bicubic_down_") {
            (
                "bicubic_down",
                rest.split("_to_")
                    .next()
                    .and_then(|s| s.parse::<usize>().ok()),
            )
        } else if let Some(rest) = name.strip_prefix("bicubic_") {
            (
                "bicubic",
                rest.split("_to_")
                    .next()
                    .and_then(|s| s.parse::<usize>().ok()),
            )
        } else if let Some(rest) = name.strip_prefix("area_") {
            (
                "area",
                rest.split("_to_")
                    .next()
                    .and_then(|s| s.parse::<usize>().ok()),
            )
        } else {
            continue;
        };
        let (Some(side), [_, _, oh, ow]) = (side, out_shape.as_slice()) else {
            continue;
        };
        let prefer = if mode == "bicubic" { "bicubic" } else { "area" };
        let candidates: Vec<&String> = inputs
            .iter()
            .filter(|(_, s)| *s == side)
            .map(|(k, _)| k)
            .collect();
        let Some(input) = candidates
            .iter()
            .find(|k| k.contains(prefer))
            .or(candidates.first())
        else {
            continue;
        };
        let x = io.f32::<4>(&input.to_string(), device)?;
        let y = match mode {
            "area" => resize_area(x, [*oh, *ow]),
            "nearest" => upsample_nearest2x(x),
            _ => resize_bicubic(x, [*oh, *ow]),
        };
        computed.push((name, f32_of(y)));
    }
    Ok(computed)
}

fn var_tokenizer(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let vae_config = constructor::vqvae_config(config_path, config)?;
    io.expect_input("image", &[None, Some(vae_config.in_channels), None, None])?;
    let f = vae_config.downsample();
    if let Some(&[_, _, h, w]) = io.tensors.shape("image")
        && (h == 0 || w == 0 || !h.is_multiple_of(f) || !w.is_multiple_of(f))
    {
        return Err(fixture_err(&io.path, format!("`image` is {h}x{w}: the tokenizer needs sides that are positive multiples of {f}")));
    }
    let vae = load_vae(config_path, config, device)?;
    let image = io.f32::<4>("image", device)?;
    let encoder_out = vae.encoder_forward(image.clone());
    let f = vae.encode(image);
    let codes = vae.quantize(f.clone());
    let fhat_from_idx = vae.idx_to_fhat(&codes.idx);
    let last = fhat_from_idx.last().cloned().expect("at least one scale");
    let mut out = vec![
        ("encoder_out".to_string(), f32_of(encoder_out)),
        ("f".to_string(), f32_of(f)),
        (
            "idx_all".to_string(),
            i64_of(Tensor::cat(codes.idx.clone(), 1)),
        ),
        (
            "fhat_per_scale".to_string(),
            f32_of(Tensor::stack::<5>(codes.f_hat.clone(), 0)),
        ),
        (
            "fhat_from_idx_per_scale".to_string(),
            f32_of(Tensor::stack::<5>(fhat_from_idx, 0)),
        ),
        (
            "decoder_out_raw".to_string(),
            f32_of(vae.decode_raw(last.clone())),
        ),
        ("recon_image".to_string(), f32_of(vae.decode(last))),
        (
            "var_input".to_string(),
            f32_of(vae.idx_to_var_input(&codes.idx)),
        ),
    ];
    for (si, idx) in codes.idx.into_iter().enumerate() {
        out.push((format!("idx_s{si}"), i64_of(idx)));
    }
    Ok(out)
}

fn var_generator(config_path: &Path, config: &Value, io: &mut Io, device: &Device) -> Result<Vec<(String, Computed)>> {
    let var_config = constructor::var_config(config_path, config)?;
    // Teacher forcing: every token after the first scale, as latent vectors.
    let first = var_config.patch_nums[0] * var_config.patch_nums[0];
    io.expect_labels("labels", var_config.num_classes)?;
    let b = io.tensors.shape("labels").map(|s| s[0]);
    io.expect_input("var_input", &[b, Some(var_config.seq_len() - first), Some(var_config.z_channels)])?;
    let var = load_var(config_path, config, device)?;
    let labels = io.i64::<1>("labels", device)?;
    let x = io.f32::<3>("var_input", device)?;
    let (logits, inter) = var.forward_with_intermediates(labels, x);
    let mut out = vec![
        ("logits".to_string(), f32_of(logits)),
        ("embed_in".to_string(), f32_of(inter.embed_in)),
    ];
    for (i, block) in inter.block_outs.into_iter().enumerate() {
        out.push((format!("block{i}_out"), f32_of(block)));
    }
    Ok(out)
}

/// One `autoregressive_infer_cfg(...) -> prefix P` call of the config's `calls`.
struct SamplingCall {
    prefix: String,
    guidance: f64,
    top_k: usize,
    top_p: f64,
}

fn parse_sampling_call(call: &str) -> Option<SamplingCall> {
    let arg = |key: &str| -> Option<&str> {
        let start = call.find(&format!("{key}="))? + key.len() + 1;
        let rest = &call[start..];
        Some(rest[..rest.find([',', ')']).unwrap_or(rest.len())].trim())
    };
    let prefix = call.split("-> prefix").nth(1)?.trim().to_string();
    Some(SamplingCall {
        prefix,
        guidance: arg("cfg")?.parse().ok()?,
        top_k: arg("top_k")?.parse().ok()?,
        top_p: arg("top_p")?.parse().ok()?,
    })
}

fn var_sampling(
    config_path: &Path,
    config: &Value,
    io: &mut Io,
    device: &Device,
) -> Result<std::result::Result<Vec<(String, Computed)>, String>> {
    let calls: Vec<SamplingCall> = config["calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().and_then(parse_sampling_call))
                .collect()
        })
        .unwrap_or_default();
    if calls.is_empty() {
        return Err(fixture_err(
            config_path,
            "no `autoregressive_infer_cfg(...) -> prefix` call found",
        ));
    }
    if let Some(c) = calls.iter().find(|c| c.top_k != 1) {
        // torch.multinomial's random stream cannot be reproduced; only greedy runs are comparable.
        return Ok(Err(format!(
            "call `{}` samples with top_k={} (only greedy top_k=1 is comparable)",
            c.prefix, c.top_k
        )));
    }
    io.expect_labels("labels", constructor::var_config(config_path, config)?.num_classes)?;
    let vae = load_vae(config_path, config, device)?;
    let var = load_var(config_path, config, device)?;
    let labels = io.i64::<1>("labels", device)?;
    let mut out = Vec::new();
    for call in calls {
        let sampler = VarSamplerConfig::new()
            .with_guidance(call.guidance)
            .with_top_k(call.top_k)
            .with_top_p(call.top_p);
        let run = sample(&var, &vae, labels.clone(), sampler, true);
        let p = call.prefix;
        let raw: Vec<Tensor<3>> = run.steps.iter().map(|s| s.raw_logits.clone()).collect();
        let guided: Vec<Tensor<3>> = run.steps.iter().map(|s| s.guided_logits.clone()).collect();
        out.push((format!("{p}idx_all"), i64_of(Tensor::cat(run.tokens, 1))));
        out.push((format!("{p}raw_logits"), f32_of(Tensor::cat(raw, 1))));
        out.push((format!("{p}guided_logits"), f32_of(Tensor::cat(guided, 1))));
        out.push((
            format!("{p}image_m11"),
            f32_of(vae.decode(run.f_hat.clone())),
        ));
        out.push((format!("{p}f_hat"), f32_of(run.f_hat)));
        out.push((format!("{p}image_01"), f32_of(run.image)));
    }
    Ok(Ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_calls_are_parsed_from_the_config() {
        let call = parse_sampling_call(
            "img = var.autoregressive_infer_cfg(B, label_B=labels, g_seed=0, cfg=1.5, top_k=1, top_p=0.0, more_smooth=False)  -> prefix cfg1p5_",
        )
        .unwrap();
        assert_eq!(
            (call.prefix.as_str(), call.guidance, call.top_k, call.top_p),
            ("cfg1p5_", 1.5, 1, 0.0)
        );
    }
}
