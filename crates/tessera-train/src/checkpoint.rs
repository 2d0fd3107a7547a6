//! Checkpoints: one self-checking file per model with its config (JSON), its weights, the
//! optimizer state and the training position, so a run resumes exactly where it stopped.
//!
//! Layout (little-endian), version 1:
//!
//! ```text
//! "TSRACKPT"            8 bytes, the signature
//! version               u32
//! header length, header u64, JSON: kind, model config, training config, step, metrics
//! weights length, bytes u64, burnpack (burn's own record format: path, param id, tensor)
//! optimizer length, …   u64, burnpack (AdamW moments per parameter path; empty: none)
//! state length, …       u64, burnpack (trainer state such as codebook usage; empty: none)
//! checksum              u64, FNV-1a of everything before it
//! ```
//!
//! Weights are burnpack so burn's `ModuleRecord::from_bytes` + `try_load_record` load them (with
//! their parameter ids, which the optimizer state is keyed by), but they are *written* here by
//! reading every parameter back asynchronously: burn's `into_record` reads back synchronously,
//! which panics on WebGPU. Files are written atomically on the desktop (temporary file, then
//! rename), so a crash leaves either the old checkpoint or the new one, never half of one.

use std::collections::BTreeMap;
use std::fmt;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::store::ModuleRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The signature every checkpoint starts with.
pub const MAGIC: &[u8; 8] = b"TSRACKPT";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Which model a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModelKind {
    /// VAR's multi-scale VQ-VAE ([`tessera_models::tokenizers::msvq::MsVqVae`]).
    #[serde(rename = "var-tokenizer")]
    VarTokenizer,
    /// The VAR transformer ([`tessera_models::generators::var::Var`]).
    #[serde(rename = "var")]
    Var,
    /// The evaluation's classifier ([`tessera_models::judge::Judge`]).
    #[serde(rename = "judge")]
    Judge,
    /// RAR's MaskGIT-VQGAN tokenizer ([`tessera_models::tokenizers::vqgan::Vqgan`]).
    #[serde(rename = "rar-tokenizer")]
    RarTokenizer,
    /// The RAR transformer ([`tessera_models::generators::rar::Rar`]).
    #[serde(rename = "rar")]
    Rar,
    /// The equivariant generator's column tokenizer ([`tessera_models::tokenizers::columns::ColumnTokenizer`]).
    #[serde(rename = "columns-tokenizer")]
    ColumnsTokenizer,
    /// The equivariant column transformer with its flow head
    /// ([`tessera_models::generators::equivariant::Equivariant`]).
    #[serde(rename = "equivariant")]
    Equivariant,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::VarTokenizer => "VAR tokenizer (multi-scale VQ-VAE)",
            Self::Var => "VAR transformer",
            Self::Judge => "judge classifier",
            Self::RarTokenizer => "RAR tokenizer (MaskGIT-VQGAN)",
            Self::Rar => "RAR transformer",
            Self::ColumnsTokenizer => "column tokenizer",
            Self::Equivariant => "equivariant column transformer",
        })
    }
}

/// The JSON part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointHeader {
    /// Which model the weights belong to.
    pub kind: ModelKind,
    /// The model's burn `Config` as JSON (`MsVqVaeConfig` or `VarConfig`).
    pub model_config: Value,
    /// The training config as JSON, when the file can resume training.
    #[serde(default)]
    pub training_config: Option<Value>,
    /// Optimizer steps taken: training resumes at this step.
    pub step: usize,
    /// Last measured metrics (loss, PSNR, accuracy, ...), for people reading the file. Only
    /// finite ones are written (JSON has no NaN: serde would write `null`, which reads back as an
    /// error); a `null` in an older file is skipped.
    #[serde(default, serialize_with = "finite_metrics::write", deserialize_with = "finite_metrics::read")]
    pub metrics: BTreeMap<String, f64>,
    /// What wrote the file.
    #[serde(default)]
    pub written_by: String,
    /// For a VAR transformer: [`fingerprint`] of the tokenizer weights it was trained with.
    #[serde(default)]
    pub tokenizer: Option<String>,
}

impl CheckpointHeader {
    /// The header of a training run of `kind` at `step` (no tokenizer recorded).
    pub fn of_run(kind: ModelKind, model_config: &impl Serialize, training_config: &impl Serialize, step: usize, metrics: &[(&str, f64)]) -> Self {
        Self {
            kind,
            model_config: serde_json::to_value(model_config).expect("configs serialise"),
            training_config: Some(serde_json::to_value(training_config).expect("configs serialise")),
            step,
            metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            written_by: crate::WRITTEN_BY.to_string(),
            tokenizer: None,
        }
    }
}

/// A metrics map as JSON with its non-finite values left out.
mod finite_metrics {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn write<S: Serializer>(metrics: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(metrics.iter().filter(|(_, v)| v.is_finite()))
    }

    pub fn read<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let read = BTreeMap::<String, Option<f64>>::deserialize(d)?;
        Ok(read.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
    }
}

/// A checkpoint in memory: what [`Checkpoint::to_bytes`] writes and [`Checkpoint::from_bytes`]
/// reads (the browser keeps these bytes in IndexedDB, the desktop in a file).
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Kind, configs, step, metrics.
    pub header: CheckpointHeader,
    /// The model's weights (burnpack).
    pub weights: Vec<u8>,
    /// The optimizer's state (burnpack); empty when the file only holds weights.
    pub optimizer: Vec<u8>,
    /// Extra trainer state (burnpack); empty when there is none.
    pub state: Vec<u8>,
}

impl Checkpoint {
    /// The whole file as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let header = serde_json::to_vec(&self.header).expect("a checkpoint header always serialises");
        let mut out = Vec::with_capacity(64 + header.len() + self.weights.len() + self.optimizer.len() + self.state.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        for section in [&header, &self.weights, &self.optimizer, &self.state] {
            out.extend_from_slice(&(section.len() as u64).to_le_bytes());
            out.extend_from_slice(section);
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// [`Self::to_bytes`], checked to read back as this checkpoint: what every save writes, so a
    /// file that would not load never replaces a good one.
    pub fn to_verified_bytes(&self) -> Result<Vec<u8>> {
        let bytes = self.to_bytes();
        let back = Self::from_bytes(&bytes).map_err(|e| Error::Corrupt(format!("the checkpoint would not read back: {e}")))?;
        let finite = |m: &BTreeMap<String, f64>| m.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k.clone(), *v)).collect::<BTreeMap<_, _>>();
        let same = back.weights == self.weights
            && back.optimizer == self.optimizer
            && back.state == self.state
            && CheckpointHeader { metrics: finite(&self.header.metrics), ..self.header.clone() } == back.header;
        if !same {
            return Err(Error::Corrupt("the checkpoint reads back different from what was written".into()));
        }
        Ok(bytes)
    }

    /// Reads a checkpoint, checking its signature, version, length and checksum.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(Error::NotACheckpoint);
        }
        let mut r = Cursor { bytes, at: MAGIC.len() };
        let version = u32::from_le_bytes(r.take(4, "the version")?.try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        let mut sections = Vec::with_capacity(4);
        for name in ["header", "weights", "optimizer state", "trainer state"] {
            let len = u64::from_le_bytes(r.take(8, name)?.try_into().expect("8 bytes"));
            let len = usize::try_from(len).map_err(|_| Error::Corrupt(format!("{name} length {len}")))?;
            sections.push(r.take(len, name)?);
        }
        let body_end = r.at;
        let stored = u64::from_le_bytes(r.take(8, "the checksum")?.try_into().expect("8 bytes"));
        if r.at != bytes.len() {
            return Err(Error::Corrupt(format!("{} unexpected bytes after the end", bytes.len() - r.at)));
        }
        if fnv1a(&bytes[..body_end]) != stored {
            return Err(Error::Corrupt("checksum mismatch (the file was changed or damaged)".into()));
        }
        let header: CheckpointHeader =
            serde_json::from_slice(sections[0]).map_err(|e| Error::Corrupt(format!("header: {e}")))?;
        Ok(Self {
            header,
            weights: sections[1].to_vec(),
            optimizer: sections[2].to_vec(),
            state: sections[3].to_vec(),
        })
    }

    /// The same checkpoint without optimizer and trainer state: what ships for sampling (a
    /// third of the size), and what cannot resume training.
    pub fn weights_only(mut self) -> Self {
        self.optimizer.clear();
        self.state.clear();
        self
    }

    /// Whether the file can resume training (it holds a training config and optimizer state).
    pub fn can_resume(&self) -> bool {
        self.header.training_config.is_some() && !self.optimizer.is_empty()
    }

    /// Errors unless the file holds a `kind` model.
    pub fn expect_kind(&self, kind: ModelKind) -> Result<()> {
        if self.header.kind == kind { Ok(()) } else { Err(Error::WrongKind { expected: kind, found: self.header.kind }) }
    }

    /// The model config, read as `C`.
    pub fn model_config<C: serde::de::DeserializeOwned>(&self) -> Result<C> {
        serde_json::from_value(self.header.model_config.clone())
            .map_err(|e| Error::Corrupt(format!("model config: {e}")))
    }

    /// The training config, read as `C`; `None` when the file holds weights only.
    pub fn training_config<C: serde::de::DeserializeOwned>(&self) -> Result<Option<C>> {
        self.header
            .training_config
            .clone()
            .map(|v| serde_json::from_value(v).map_err(|e| Error::Corrupt(format!("training config: {e}"))))
            .transpose()
    }

    /// Errors unless the weights can hold `implied` numbers, a lower bound on the parameters the
    /// model config implies (its largest matrices). Checked before the model is built: a config
    /// edited to huge sizes (the checksum is easy to recompute) is refused here instead of running
    /// out of memory; smaller edits then fail on the weights' shapes.
    pub fn expect_weights_for(&self, implied: u64) -> Result<()> {
        // 2 bytes a number, the smallest float burn stores, so a real file is never refused.
        let held = self.weights.len() as u64 / 2;
        if implied <= held {
            return Ok(());
        }
        Err(Error::Weights(format!(
            "its config implies at least {implied} weights, the file holds at most {held}: the config was changed, or belongs to other weights"
        )))
    }

    /// Errors, naming every differing field, unless the saved model config equals `expected`.
    ///
    /// The saved config is read back through `C` first, so a field added to `C` after the file
    /// was written counts as its default (as it does when the model is loaded).
    pub fn expect_model_config<C: Serialize + serde::de::DeserializeOwned>(&self, expected: &C) -> Result<()> {
        let expected = serde_json::to_value(expected).expect("configs serialise");
        let found = serde_json::from_value::<C>(self.header.model_config.clone())
            .ok()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or_else(|| self.header.model_config.clone());
        let differences = differences(&expected, &found);
        if differences.is_empty() { Ok(()) } else { Err(Error::ConfigMismatch { differences }) }
    }

    /// Writes the file atomically: a temporary file in the same folder, flushed to disk and read
    /// back, then renamed over `path` (the previous file stays until the new one is verified);
    /// the folder is created if needed.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        Self::save_bytes(&self.to_verified_bytes()?, path)
    }

    /// [`Self::save`] of bytes [`Self::to_verified_bytes`] made (a caller that keeps the bytes
    /// too does not serialise twice).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn save_bytes(bytes: &[u8], path: &std::path::Path) -> Result<()> {
        use std::io::Write;
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", unique_suffix()));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            if std::fs::read(&tmp)? != bytes {
                return Err(std::io::Error::other("the file read back differs from what was written"));
            }
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(io)
    }

    /// Reads a checkpoint file.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Self::from_bytes(&bytes)
    }
}

/// Weights of `blocks` 3x3 convolutions at each level's width `base × mult`: a lower bound on a
/// convolutional encoder's size (each residual block has at least one such convolution).
pub(crate) fn conv_levels_weights(base: usize, mult: &[usize], blocks: usize) -> u64 {
    mult.iter().map(|m| 9 * (blocks * (base * m).pow(2)) as u64).sum()
}

/// Weights of `depth` transformer blocks of width `d` with an MLP of `hidden` and `adaln`
/// modulation outputs per width (qkv 3, projection 1, AdaLN 6 or 0): a lower bound on a
/// transformer's size.
pub(crate) fn transformer_weights(depth: usize, d: usize, hidden: usize, adaln: usize) -> u64 {
    (depth * ((4 + adaln) * d * d + 2 * d * hidden)) as u64
}

/// A name part no other save shares: the process, a counter within it, and the time in
/// nanoseconds (two runs started in the same second, or two saves at once in one process, each
/// write their own temporary file).
#[cfg(not(target_arch = "wasm32"))]
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SAVES: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{}-{nanos}", std::process::id(), SAVES.fetch_add(1, Ordering::Relaxed))
}

/// A run folder held by one run: `LOCK_FILE` in it names the process. A second run on the same
/// folder gets a clear error instead of overwriting the first one's checkpoints; a lock left by a
/// process that is gone (a crash, a kill) is taken over. Dropping the lock removes the file.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct RunLock {
    path: std::path::PathBuf,
}

#[cfg(not(target_arch = "wasm32"))]
impl RunLock {
    /// The lock file's name in a run folder.
    pub const LOCK_FILE: &'static str = ".tessera-run.lock";

    /// Takes `dir` (created if needed) for this process.
    ///
    /// # Errors
    /// [`Error::RunInUse`] when a live process holds it, [`Error::Io`] when it cannot be written.
    pub fn acquire(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join(Self::LOCK_FILE);
        let io = |source| Error::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Two tries: the second after removing a stale lock (another run may win that race; then it holds the folder).
        for _ in 0..2 {
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(std::process::id().to_string().as_bytes()).map_err(io)?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        // This process is alive too: a second run inside it is refused like any other.
                        Some(pid) if process_alive(pid) => return Err(Error::RunInUse { dir: dir.to_path_buf(), pid }),
                        // Gone, or unreadable (a crash while writing it).
                        _ => std::fs::remove_file(&path).or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) }).map_err(io)?,
                    }
                }
                Err(e) => return Err(io(e)),
            }
        }
        let pid = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
        Err(Error::RunInUse { dir: dir.to_path_buf(), pid })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` is running: `/proc` where there is one, else `kill -0` (Unix) or
/// `tasklist` (Windows). When it cannot tell, it says yes: a lock is never taken from a live run.
#[cfg(not(target_arch = "wasm32"))]
fn process_alive(pid: u32) -> bool {
    if std::path::Path::new("/proc/self").exists() {
        return std::path::Path::new("/proc").join(pid.to_string()).exists();
    }
    let output = if cfg!(windows) {
        std::process::Command::new("tasklist").args(["/FI", &format!("PID eq {pid}"), "/NH"]).output()
    } else {
        std::process::Command::new("kill").args(["-0", &pid.to_string()]).output()
    };
    match output {
        Ok(out) if cfg!(windows) => String::from_utf8_lossy(&out.stdout).split_whitespace().any(|w| w == pid.to_string()),
        Ok(out) => out.status.success(),
        Err(_) => true,
    }
}

/// `field: expected X, checkpoint has Y` for every top-level field that differs.
fn differences(expected: &Value, found: &Value) -> Vec<String> {
    match (expected, found) {
        (Value::Object(e), Value::Object(f)) => {
            // A set, not a Vec sort: the readback scan forbids `.sort(` in training code.
            let keys: std::collections::BTreeSet<&String> = e.keys().chain(f.keys()).collect();
            keys.into_iter()
                .filter(|k| e.get(*k) != f.get(*k))
                .map(|k| {
                    let show = |v: Option<&Value>| v.map_or("nothing".to_string(), |v| v.to_string());
                    format!("{k}: expected {}, checkpoint has {}", show(e.get(k)), show(f.get(k)))
                })
                .collect()
        }
        _ if expected == found => Vec::new(),
        _ => vec![format!("expected {expected}, checkpoint has {found}")],
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            Error::Truncated(format!("{what} needs {n} bytes at offset {}, the file has {}", self.at, self.bytes.len()))
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
}

/// 64-bit FNV-1a: detects damage, not tampering.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A short hex digest of some bytes (a tokenizer's weights), to tell checkpoints apart.
pub fn fingerprint(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes))
}

/// Named 2-D tensors (trainer state) as burnpack bytes, read back asynchronously.
pub async fn named_tensors_to_bytes(named: Vec<(String, Tensor<2>)>) -> Result<Vec<u8>> {
    let mut tensors = Vec::with_capacity(named.len());
    for (name, t) in named {
        let data = t.into_data_async().await.map_err(Error::readback).and_then(crate::error::on_host)?;
        let (bytes, shape, dtype) = data.into_parts();
        tensors.push(burn_pack::Tensor::new(name, dtype, shape, None, bytes));
    }
    let bytes = burn_pack::Writer::new(tensors).into_bytes().map_err(|e| Error::Corrupt(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// The tensors [`named_tensors_to_bytes`] wrote, on `device` without autodiff.
pub fn named_tensors_from_bytes(bytes: &[u8], device: &Device) -> Result<std::collections::HashMap<String, Tensor<2>>> {
    let bad = |e: burn_pack::Error| Error::Corrupt(format!("trainer state: {e}"));
    let reader = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec())).map_err(bad)?;
    let device = device.clone().inner();
    let mut out = std::collections::HashMap::new();
    for t in reader.into_tensors().map_err(bad)? {
        let (name, dtype, shape, _, bytes) = t.into_parts().map_err(bad)?;
        if shape.num_dims() != 2 {
            return Err(Error::Corrupt(format!("trainer state `{name}` is not 2-D")));
        }
        out.insert(name, Tensor::from_data(TensorData::from_bytes(bytes, shape, dtype), &device));
    }
    Ok(out)
}

/// A module's weights as burnpack bytes (as `into_record().into_bytes()` writes them), read back
/// asynchronously, so this also works on WebGPU.
pub async fn weights_to_bytes<M: Module>(module: &M) -> Result<Vec<u8>> {
    #[derive(Default)]
    struct Collect {
        path: Vec<String>,
        out: Vec<(String, ParamId, Tensor<1>, Vec<usize>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.transform_for_save().val().inner();
            let shape = value.dims().to_vec();
            let flat = value.reshape([shape.iter().product::<usize>()]);
            self.out.push((self.path.join("."), param.id, flat, shape));
        }
    }
    let mut visitor = Collect::default();
    module.visit(&mut visitor);
    let mut tensors = Vec::with_capacity(visitor.out.len());
    for (path, id, flat, shape) in visitor.out {
        let data = flat.into_data_async().await.map_err(Error::readback).and_then(crate::error::on_host)?;
        let (bytes, _, dtype) = data.into_parts();
        tensors.push(burn_pack::Tensor::new(path, dtype, shape, Some(id.val()), bytes));
    }
    let bytes = burn_pack::Writer::new(tensors).into_bytes().map_err(|e| Error::Weights(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// Loads weights written by [`weights_to_bytes`] (or burn's `into_record().into_bytes()`) into
/// `module`, keeping the saved parameter ids. Every parameter must be there with its shape, and
/// nothing else.
pub fn load_weights<M: Module>(module: M, bytes: &[u8]) -> Result<M> {
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| Error::Weights(e.to_string()))?;
    module.try_load_record(record).map_err(|e| Error::Weights(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            header: CheckpointHeader {
                kind: ModelKind::Var,
                model_config: serde_json::json!({"depth": 2, "patch_nums": [1, 2]}),
                training_config: Some(serde_json::json!({"steps": 10})),
                step: 7,
                metrics: BTreeMap::from([("loss".to_string(), 1.5)]),
                written_by: "test".into(),
                tokenizer: Some(fingerprint(&[1, 2, 3])),
            },
            weights: vec![1, 2, 3],
            optimizer: vec![],
            state: vec![9; 100],
        }
    }

    #[test]
    fn bytes_round_trip_exactly() {
        let c = sample();
        assert_eq!(Checkpoint::from_bytes(&c.to_bytes()).unwrap(), c);
    }

    #[test]
    fn damage_is_reported_as_the_named_error() {
        let bytes = sample().to_bytes();
        assert!(matches!(Checkpoint::from_bytes(b"PK\x03\x04 a zip file"), Err(Error::NotACheckpoint)));
        for cut in [10, 30, bytes.len() - 120, bytes.len() - 3] {
            let e = Checkpoint::from_bytes(&bytes[..cut]).unwrap_err();
            assert!(matches!(e, Error::Truncated(_)), "cut at {cut}: {e}");
        }
        let mut flipped = bytes.clone();
        let at = flipped.len() - 40;
        flipped[at] ^= 0x10;
        assert!(matches!(Checkpoint::from_bytes(&flipped), Err(Error::Corrupt(_))));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(Checkpoint::from_bytes(&longer), Err(Error::Corrupt(_))));
        let mut newer = bytes;
        newer[8] = 9;
        assert!(matches!(Checkpoint::from_bytes(&newer), Err(Error::UnsupportedVersion { found: 9, .. })));
    }

    #[test]
    fn kind_and_config_checks_name_what_differs() {
        let c = sample();
        assert!(c.expect_kind(ModelKind::Var).is_ok());
        let e = c.expect_kind(ModelKind::VarTokenizer).unwrap_err();
        assert!(matches!(e, Error::WrongKind { expected: ModelKind::VarTokenizer, found: ModelKind::Var }));
        assert!(e.to_string().contains("VAR transformer"), "{e}");
        assert!(c.expect_model_config(&serde_json::json!({"depth": 2, "patch_nums": [1, 2]})).is_ok());
        let e = c.expect_model_config(&serde_json::json!({"depth": 4, "patch_nums": [1, 2]})).unwrap_err();
        let Error::ConfigMismatch { differences } = &e else { panic!("{e}") };
        assert_eq!(differences, &vec!["depth: expected 4, checkpoint has 2".to_string()]);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn files_are_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("model.tsr");
        let mut c = sample();
        c.save(&path).unwrap();
        c.header.step = 8;
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap().header.step, 8);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        assert!(matches!(Checkpoint::load(&dir.path().join("missing")), Err(Error::Io { .. })));
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn non_finite_metrics_never_make_a_file_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.ckpt");
        let mut c = sample();
        c.header.metrics.insert("psnr".into(), f64::INFINITY);
        c.header.metrics.insert("usage".into(), f64::NAN);
        c.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.header.metrics, BTreeMap::from([("loss".to_string(), 1.5)]), "only the finite metric is kept");
        assert_eq!(back.weights, c.weights);
        // A file an older build wrote with `null` metrics still reads.
        let mut old = serde_json::to_value(&sample().header).unwrap();
        old["metrics"]["psnr"] = serde_json::Value::Null;
        let header: CheckpointHeader = serde_json::from_value(old).unwrap();
        assert_eq!(header.metrics.len(), 1);
    }

    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn saves_at_once_use_their_own_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.ckpt");
        let mut c = sample();
        c.state = vec![5; 1 << 20];
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| c.save(&path).unwrap());
            }
        });
        assert_eq!(Checkpoint::load(&path).unwrap(), c);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        assert_ne!(unique_suffix(), unique_suffix());
    }

    #[cfg(unix)]
    #[test]
    fn a_run_folder_is_held_by_one_run_and_a_dead_runs_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("runs").join("var-tiny");
        let lock_file = run.join(RunLock::LOCK_FILE);
        let lock = RunLock::acquire(&run).unwrap();
        assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), std::process::id().to_string());
        drop(lock);
        assert!(!lock_file.exists(), "dropping the lock removes it");

        // Another live process holds it (the one that started this test): a clear error.
        let live = std::os::unix::process::parent_id();
        std::fs::write(&lock_file, live.to_string()).unwrap();
        let e = RunLock::acquire(&run).unwrap_err();
        assert!(matches!(e, Error::RunInUse { pid, .. } if pid == live), "{e}");
        assert!(e.to_string().contains("in use by another run") && e.to_string().contains(&live.to_string()), "{e}");

        // A lock left by a process that is gone (a crash) is taken over.
        let mut gone = std::process::Command::new(std::env::current_exe().unwrap()).arg("--list").stdout(std::process::Stdio::null()).spawn().unwrap();
        gone.wait().unwrap();
        std::fs::write(&lock_file, gone.id().to_string()).unwrap();
        let _lock = RunLock::acquire(&run).unwrap();
        assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), std::process::id().to_string());
    }
}
