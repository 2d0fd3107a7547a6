//! Parity runner: every case of a fixture directory, against the official outputs.
//!
//! A fixture directory (format: `shared/fixtures/README.md`) holds, per case,
//! `<case>.config.json` (constructor arguments, calls, tolerances, tensor meanings),
//! `<case>.io.safetensors` (inputs and expected outputs) and the weight files it names. The runner
//! builds the models from the config (nothing about the shipped sizes is assumed), loads the
//! official weights, recomputes every output it knows and compares it with the expected one:
//! max |Δ| against the case's `suggested_atol`, exact equality for discrete outputs (indices).
//!
//! Families: VAR (cases `resize`, `tokenizer`, `generator`, `sampling`). Other families are
//! reported as not supported yet. Native only: it reads files and reads tensors back.

use std::fmt;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde_json::Value;

use crate::generators::var::{Var, VarConfig};
use crate::resize::{resize_area, resize_bicubic, upsample_nearest2x};
use crate::sampling::var::{VarSamplerConfig, sample};
use crate::tokenizers::msvq::{MsVqVae, MsVqVaeConfig, PhiSharing};
use crate::weights::StateDict;
use crate::{Error, Result};

/// How an output is compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tolerance {
    /// Every element equal (indices, codes).
    Exact,
    /// Max absolute difference at most this.
    Atol(f64),
}

/// One expected output of a case.
#[derive(Debug, Clone)]
pub struct OutputReport {
    /// Tensor name in the io file.
    pub name: String,
    /// Expected shape.
    pub shape: Vec<usize>,
    /// Max absolute difference (NaN when not computed or the shapes differ).
    pub max_abs_diff: f64,
    /// Elements that differ (counted for exact outputs).
    pub mismatches: usize,
    /// The comparison applied.
    pub tolerance: Tolerance,
    /// Whether it is within tolerance.
    pub passed: bool,
    /// Why it failed without a number (not computed, shape mismatch).
    pub note: Option<String>,
}

/// What happened to a case.
#[derive(Debug, Clone)]
pub enum CaseOutcome {
    /// It ran; one report per expected output.
    Ran(Vec<OutputReport>),
    /// The runner does not handle this family or case yet.
    Unsupported(String),
    /// Building, loading or running failed.
    Failed(String),
}

/// The result of one `<case>.config.json`.
#[derive(Debug, Clone)]
pub struct CaseReport {
    /// `family` of the config (`VAR`, `RAR`, …).
    pub family: String,
    /// Case name (`generator`, …).
    pub case: String,
    /// The config file.
    pub config_path: PathBuf,
    /// What happened.
    pub outcome: CaseOutcome,
}

impl CaseReport {
    /// Failed to run, or an output is out of tolerance (a skipped case has not failed).
    pub fn failed(&self) -> bool {
        !self.passed() && !matches!(self.outcome, CaseOutcome::Unsupported(_))
    }

    /// Ran, and every output is within tolerance.
    pub fn passed(&self) -> bool {
        matches!(&self.outcome, CaseOutcome::Ran(outputs) if outputs.iter().all(|o| o.passed))
    }
}

impl fmt::Display for CaseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let title = format!("{}/{}", self.family.to_lowercase(), self.case);
        match &self.outcome {
            CaseOutcome::Unsupported(why) => writeln!(f, "{title:<24} SKIP  {why}"),
            CaseOutcome::Failed(why) => writeln!(f, "{title:<24} FAIL  {why}"),
            CaseOutcome::Ran(outputs) => {
                writeln!(
                    f,
                    "{title:<24} {}",
                    if self.passed() { "PASS" } else { "FAIL" }
                )?;
                for o in outputs {
                    let tol = match o.tolerance {
                        Tolerance::Exact => "exact".to_string(),
                        Tolerance::Atol(a) => format!("atol {a:.0e}"),
                    };
                    let verdict = if o.passed { "ok" } else { "FAIL" };
                    let shape = format!("{:?}", o.shape);
                    match &o.note {
                        Some(note) => writeln!(f, "  {:<26} {shape:<18} {note} {verdict}", o.name)?,
                        None if o.tolerance == Tolerance::Exact => writeln!(
                            f,
                            "  {:<26} {shape:<18} {} mismatches ({tol}) {verdict}",
                            o.name, o.mismatches
                        )?,
                        None => writeln!(
                            f,
                            "  {:<26} {shape:<18} max|Δ| {:.2e} ({tol}) {verdict}",
                            o.name, o.max_abs_diff
                        )?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// Runs every `<case>.config.json` in `dir` and in its subdirectories (one family per folder),
/// in name order. An error only if `dir` cannot be listed; a broken case is a failed report.
pub fn run_fixture_dir(dir: &Path, device: &Device) -> Result<Vec<CaseReport>> {
    let mut configs = Vec::new();
    collect_configs(dir, 2, &mut configs)?;
    configs.sort();
    Ok(configs.iter().map(|path| run_case(path, device)).collect())
}

fn collect_configs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.display().to_string(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() && depth > 0 {
            collect_configs(&path, depth - 1, out)?;
        } else if path.to_string_lossy().ends_with(".config.json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Runs one case from its config file.
pub fn run_case(config_path: &Path, device: &Device) -> CaseReport {
    let name = config_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut report = CaseReport {
        family: String::from("?"),
        case: name.trim_end_matches(".config.json").to_string(),
        config_path: config_path.to_path_buf(),
        outcome: CaseOutcome::Failed(String::new()),
    };
    let config = match read_json(config_path) {
        Ok(c) => c,
        Err(e) => {
            report.outcome = CaseOutcome::Failed(e.to_string());
            return report;
        }
    };
    report.family = config["family"].as_str().unwrap_or("?").to_string();
    if let Some(case) = config["case"].as_str() {
        report.case = case.to_string();
    }
    report.outcome = match report.family.as_str() {
        "VAR" => match run_var_case(config_path, &config, &report.case, device) {
            Ok(outcome) => outcome,
            Err(e) => CaseOutcome::Failed(e.to_string()),
        },
        other => CaseOutcome::Unsupported(format!("family {other} is not supported yet")),
    };
    report
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| fixture_err(path, format!("invalid JSON: {e}")))
}

fn fixture_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Fixture {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A computed output, read back.
enum Computed {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

fn f32_of<const D: usize>(t: Tensor<D>) -> Computed {
    let shape = t.dims().to_vec();
    Computed::F32(shape, t.try_into_vec_as::<f32>().unwrap_or_default())
}

fn i64_of<const D: usize>(t: Tensor<D, Int>) -> Computed {
    let shape = t.dims().to_vec();
    Computed::I64(shape, t.try_into_vec_as::<i64>().unwrap_or_default())
}

/// The case's io file with the names of its inputs and expected outputs.
struct Io {
    path: PathBuf,
    tensors: StateDict,
    outputs: Vec<String>,
}

impl Io {
    fn open(config_path: &Path, config: &Value, case: &str) -> Result<Self> {
        let path = config_path.with_file_name(format!("{case}.io.safetensors"));
        let tensors = StateDict::from_file(&path)?;
        let meta = config["io_tensors"]
            .as_object()
            .ok_or_else(|| fixture_err(config_path, "no io_tensors"))?;
        let outputs = meta
            .iter()
            .filter(|(_, m)| !m["meaning"].as_str().unwrap_or("").starts_with("INPUT"))
            .map(|(name, _)| name.clone())
            .collect();
        Ok(Self {
            path,
            tensors,
            outputs,
        })
    }

    fn f32<const D: usize>(&mut self, name: &str, device: &Device) -> Result<Tensor<D>> {
        let (shape, values) = self.tensors.f32(name, None)?;
        let shape: [usize; D] = shape.try_into().map_err(|s: Vec<usize>| {
            fixture_err(
                &self.path,
                format!("`{name}` has rank {}, expected {D}", s.len()),
            )
        })?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    fn i64<const D: usize>(&mut self, name: &str, device: &Device) -> Result<Tensor<D, Int>> {
        let (shape, values) = self.tensors.i64(name, None)?;
        let shape: [usize; D] = shape.try_into().map_err(|s: Vec<usize>| {
            fixture_err(
                &self.path,
                format!("`{name}` has rank {}, expected {D}", s.len()),
            )
        })?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Compares every expected output with `computed` (by name).
    fn compare(mut self, config: &Value, computed: Vec<(String, Computed)>) -> Vec<OutputReport> {
        let outputs = std::mem::take(&mut self.outputs);
        outputs
            .into_iter()
            .map(|name| {
                let found = computed.iter().find(|(n, _)| *n == name).map(|(_, c)| c);
                self.compare_one(config, &name, found)
            })
            .collect()
    }

    fn compare_one(
        &mut self,
        config: &Value,
        name: &str,
        computed: Option<&Computed>,
    ) -> OutputReport {
        let shape = self
            .tensors
            .shape(name)
            .map(<[usize]>::to_vec)
            .unwrap_or_default();
        let mut report = OutputReport {
            name: name.to_string(),
            shape: shape.clone(),
            max_abs_diff: f64::NAN,
            mismatches: 0,
            tolerance: tolerance_of(config, name),
            passed: false,
            note: None,
        };
        let fail = |mut r: OutputReport, note: String| {
            r.note = Some(note);
            r
        };
        let Some(computed) = computed else {
            return fail(report, "not computed by the runner".into());
        };
        let (got_shape, diffs): (&Vec<usize>, Vec<f64>) = match computed {
            Computed::F32(s, got) => match self.tensors.f32(name, None) {
                Ok((_, want)) if want.len() == got.len() => (
                    s,
                    got.iter()
                        .zip(&want)
                        .map(|(a, b)| (*a as f64 - *b as f64).abs())
                        .collect(),
                ),
                Ok(_) => (s, Vec::new()),
                Err(e) => return fail(report, e.to_string()),
            },
            Computed::I64(s, got) => {
                report.tolerance = Tolerance::Exact;
                match self.tensors.i64(name, None) {
                    Ok((_, want)) if want.len() == got.len() => (
                        s,
                        got.iter()
                            .zip(&want)
                            .map(|(a, b)| (*a - *b).unsigned_abs() as f64)
                            .collect(),
                    ),
                    Ok(_) => (s, Vec::new()),
                    Err(e) => return fail(report, e.to_string()),
                }
            }
        };
        if *got_shape != shape {
            return fail(report, format!("shape mismatch: computed {got_shape:?}"));
        }
        report.max_abs_diff = diffs
            .iter()
            .fold(0.0, |m, d| if d.is_nan() { f64::NAN } else { m.max(*d) });
        report.mismatches = diffs.iter().filter(|d| **d != 0.0).count();
        report.passed = match report.tolerance {
            Tolerance::Exact => report.mismatches == 0,
            Tolerance::Atol(atol) => report.max_abs_diff <= atol, // false for NaN
        };
        report
    }
}

/// `tolerances[name]` (or a `*` pattern matching it): `"exact"` or `{suggested_atol}`.
fn tolerance_of(config: &Value, name: &str) -> Tolerance {
    let Some(tolerances) = config["tolerances"].as_object() else {
        return Tolerance::Exact;
    };
    let entry = tolerances.get(name).or_else(|| {
        tolerances
            .iter()
            .find(|(pattern, _)| glob_match(pattern, name))
            .map(|(_, v)| v)
    });
    match entry {
        Some(Value::String(s)) if s == "exact" => Tolerance::Exact,
        Some(v) => match v["suggested_atol"].as_f64() {
            Some(atol) => Tolerance::Atol(atol),
            None => Tolerance::Exact,
        },
        // Without a stated tolerance a float output must match exactly: nothing passes silently.
        None => Tolerance::Exact,
    }
}

/// `*` matches any run of characters; everything else literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let Some(tail) = name.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_match(rest, &tail[i..]))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// VAR

fn run_var_case(
    config_path: &Path,
    config: &Value,
    case: &str,
    device: &Device,
) -> Result<CaseOutcome> {
    if config["constructor"]["build_vae_var"]["shared_aln"].as_bool() == Some(true) {
        return Ok(CaseOutcome::Unsupported(
            "shared AdaLN (shared_aln=True) is not implemented".into(),
        ));
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

/// Tokenizer and generator configs from `constructor.build_vae_var` (+ `derived_by_build_vae_var`).
fn var_configs(config_path: &Path, config: &Value) -> Result<(MsVqVaeConfig, VarConfig)> {
    let args = &config["constructor"]["build_vae_var"];
    let derived = &config["constructor"]["derived_by_build_vae_var"];
    let need = |key: &str| {
        args[key]
            .as_u64()
            .map(|v| v as usize)
            .ok_or_else(|| fixture_err(config_path, format!("build_vae_var.{key} missing")))
    };
    let patch_nums: Vec<usize> = args["patch_nums"]
        .as_array()
        .ok_or_else(|| fixture_err(config_path, "build_vae_var.patch_nums missing"))?
        .iter()
        .map(|v| {
            v.as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| fixture_err(config_path, "patch_nums must be integers"))
        })
        .collect::<Result<_>>()?;
    let (v, cvae, ch, depth) = (need("V")?, need("Cvae")?, need("ch")?, need("depth")?);

    let vq = &derived["VQVAE"];
    let mut vae = MsVqVaeConfig::new()
        .with_vocab_size(v)
        .with_z_channels(cvae)
        .with_ch(ch)
        .with_phi_sharing(PhiSharing::from_official(need("share_quant_resi")?))
        .with_patch_nums(patch_nums.clone());
    // Keys the official builder hard-codes; honoured if a fixture states them.
    if let Some(m) = vq["ch_mult"].as_array() {
        vae = vae.with_ch_mult(
            m.iter()
                .filter_map(|v| v.as_u64().map(|v| v as usize))
                .collect(),
        );
    }
    if let Some(n) = vq["num_res_blocks"].as_u64() {
        vae = vae.with_num_res_blocks(n as usize);
    }
    if let Some(n) = vq["in_channels"].as_u64() {
        vae = vae.with_in_channels(n as usize);
    }
    if let Some(r) = vq["quant_resi"].as_f64() {
        vae = vae.with_quant_resi(r);
    }
    if let Some(z) = vq["using_znorm"].as_bool() {
        vae = vae.with_using_znorm(z);
    }

    let g = &derived["VAR"];
    let embed_dim = g["embed_dim"].as_u64().map_or(64 * depth, |v| v as usize);
    let num_heads = g["num_heads"].as_u64().map_or(depth, |v| v as usize);
    let mut var = VarConfig::new(
        patch_nums,
        v,
        cvae,
        need("num_classes")?,
        depth,
        embed_dim,
        num_heads,
    )
    .with_attn_l2_norm(args["attn_l2_norm"].as_bool().unwrap_or(true));
    if let Some(r) = g["mlp_ratio"].as_f64() {
        var = var.with_mlp_ratio(r);
    }
    if let Some(eps) = g["norm_eps"].as_f64() {
        var = var.with_norm_eps(eps);
    }
    vae.validate()?;
    var.validate()?;
    Ok((vae, var))
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
    let (vae, _) = var_configs(config_path, config)?;
    let mut sd = StateDict::from_file(&weight_file(config_path, config, "vae")?)?;
    let model = vae.init(device).load_official(&mut sd)?;
    sd.finish()?;
    Ok(model)
}

fn load_var(config_path: &Path, config: &Value, device: &Device) -> Result<Var> {
    let (_, var) = var_configs(config_path, config)?;
    let mut sd = StateDict::from_file(&weight_file(config_path, config, "var")?)?;
    let model = var.init(device).load_official(&mut sd)?;
    sd.finish()?;
    Ok(model)
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

fn var_tokenizer(
    config_path: &Path,
    config: &Value,
    io: &mut Io,
    device: &Device,
) -> Result<Vec<(String, Computed)>> {
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

fn var_generator(
    config_path: &Path,
    config: &Value,
    io: &mut Io,
    device: &Device,
) -> Result<Vec<(String, Computed)>> {
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
    fn glob_patterns_match_as_in_the_fixture_tolerances() {
        assert!(glob_match("idx_*", "idx_s3"));
        assert!(glob_match("*_idx_all", "cfg1p5_idx_all"));
        assert!(!glob_match("*_idx_all", "cfg0_raw_logits"));
        assert!(glob_match("logits", "logits"));
    }

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
