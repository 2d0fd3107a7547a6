//! Parity runner: every case of a fixture directory, against the official outputs.
//!
//! A fixture directory (format: `shared/fixtures/README.md`) holds, per case,
//! `<case>.config.json` (constructor arguments, calls, tolerances, tensor meanings),
//! `<case>.io.safetensors` (inputs and expected outputs) and the weight files it names. The runner
//! builds the models from the config (nothing about the shipped sizes is assumed), loads the
//! official weights, recomputes every output it knows and compares it with the expected one:
//! max |Δ| against the case's `suggested_atol`, exact equality for discrete outputs (indices).
//!
//! This module reads cases, compares and reports; each family's cases (building its models from
//! the official constructor arguments, computing its outputs) live in a submodule, picked by the
//! config's `family` in [`run_case`]: VAR ([`var`]), RAR ([`rar`]) and EquivariantModeling
//! ([`equivariant`]). Other families are reported as not supported. Native only: it reads files
//! and reads tensors back.

use std::fmt;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde_json::Value;

use crate::weights::StateDict;
use crate::{Error, Result};

mod equivariant;
mod rar;
mod var;

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
    let case = report.case.clone();
    report.outcome = guarded(|| match report.family.as_str() {
        "VAR" => var::run_case(config_path, &config, &case, device),
        "RAR" => rar::run_case(config_path, &config, &case, device),
        "EquivariantModeling" => equivariant::run_case(config_path, &config, &case, device),
        other => Ok(CaseOutcome::Unsupported(format!(
            "family {other} is not supported yet"
        ))),
    });
    report
}

/// Runs one case's computation; an error or a panic fails that case alone, with its message, and
/// the run goes on to the next. Inputs are checked against the config's shapes before any model
/// runs, so a panic is a bug the check missed, not a fixture's fault to abort the whole run for.
fn guarded(run: impl FnOnce() -> Result<CaseOutcome>) -> CaseOutcome {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => CaseOutcome::Failed(e.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            CaseOutcome::Failed(format!("panicked: {message}"))
        }
    }
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
        let shape = self.rank::<D>(name, shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    fn i64<const D: usize>(&mut self, name: &str, device: &Device) -> Result<Tensor<D, Int>> {
        let (shape, values) = self.tensors.i64(name, None)?;
        let shape = self.rank::<D>(name, shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Errors unless input `name` has the `expected` shape (`None`: any size on that axis), naming
    /// both: a wrong-shaped input would panic inside the model instead.
    fn expect_input(&self, name: &str, expected: &[Option<usize>]) -> Result<()> {
        let Some(shape) = self.tensors.shape(name) else {
            return Err(fixture_err(&self.path, format!("no input `{name}`")));
        };
        let fits = shape.len() == expected.len() && shape.iter().zip(expected).all(|(s, e)| e.is_none_or(|e| e == *s));
        if fits {
            return Ok(());
        }
        let want: Vec<String> = expected.iter().map(|e| e.map_or("_".into(), |e| e.to_string())).collect();
        Err(fixture_err(&self.path, format!("`{name}` has shape {shape:?}, the config implies [{}]", want.join(", "))))
    }

    /// Errors unless input `name` is `[B]` labels in `0..=max` (a label past the class table
    /// would panic in the lookup).
    fn expect_labels(&mut self, name: &str, max: usize) -> Result<()> {
        self.expect_input(name, &[None])?;
        let (_, labels) = self.tensors.i64(name, None)?;
        match labels.iter().find(|&&l| l < 0 || l as usize > max) {
            Some(bad) => Err(fixture_err(&self.path, format!("`{name}` holds {bad}, outside the model's labels 0..={max}"))),
            None => Ok(()),
        }
    }

    /// `shape` as a rank-`D` shape, or an error naming the tensor.
    fn rank<const D: usize>(&self, name: &str, shape: Vec<usize>) -> Result<[usize; D]> {
        let rank = shape.len();
        shape.try_into().map_err(|_| {
            fixture_err(
                &self.path,
                format!("`{name}` has rank {rank}, expected {D}"),
            )
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_case_that_panics_fails_alone_with_its_message() {
        let outcome = guarded(|| panic!("index 12 out of range"));
        assert!(matches!(&outcome, CaseOutcome::Failed(why) if why == "panicked: index 12 out of range"), "{outcome:?}");
        let outcome = guarded(|| Ok(CaseOutcome::Unsupported("later".into())));
        assert!(matches!(outcome, CaseOutcome::Unsupported(_)));
        // A whole run: a broken case is a report, and the cases after it still run.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.config.json"), "{ not json").unwrap();
        std::fs::write(dir.path().join("b.config.json"), r#"{"family": "Other", "case": "b"}"#).unwrap();
        let reports = run_fixture_dir(dir.path(), &Device::flex()).unwrap();
        assert!(reports[0].failed() && matches!(reports[1].outcome, CaseOutcome::Unsupported(_)), "{reports:?}");
    }

    #[test]
    fn inputs_are_checked_against_the_shapes_the_config_implies() {
        let dir = tempfile::tempdir().unwrap();
        let image: Vec<u8> = vec![0; 3 * 16 * 16 * 4];
        let labels: Vec<u8> = [3i64, 12].iter().flat_map(|l| l.to_le_bytes()).collect();
        let views = [
            ("image", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 3, 16, 16], &image).unwrap()),
            ("labels", safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![2], &labels).unwrap()),
        ];
        safetensors::serialize_to_file(views, None, &dir.path().join("case.io.safetensors")).unwrap();
        let config_path = dir.path().join("case.config.json");
        let config = serde_json::json!({"io_tensors": {"image": {"meaning": "INPUT"}, "labels": {"meaning": "INPUT"}}});
        let mut io = Io::open(&config_path, &config, "case").unwrap();
        assert!(io.expect_input("image", &[None, Some(3), Some(16), Some(16)]).is_ok());
        let e = io.expect_input("image", &[None, Some(3), Some(32), Some(32)]).unwrap_err().to_string();
        assert!(e.contains("[1, 3, 16, 16]") && e.contains("[_, 3, 32, 32]"), "{e}");
        assert!(io.expect_input("image", &[None, None, None]).is_err(), "the rank counts too");
        assert!(io.expect_labels("labels", 12).is_ok());
        let e = io.expect_labels("labels", 10).unwrap_err().to_string();
        assert!(e.contains("holds 12") && e.contains("0..=10"), "{e}");
    }

    #[test]
    fn glob_patterns_match_as_in_the_fixture_tolerances() {
        assert!(glob_match("idx_*", "idx_s3"));
        assert!(glob_match("*_idx_all", "cfg1p5_idx_all"));
        assert!(!glob_match("*_idx_all", "cfg0_raw_logits"));
        assert!(glob_match("logits", "logits"));
    }
}
