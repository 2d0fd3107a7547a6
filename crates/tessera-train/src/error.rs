//! The crate's error type: checkpoints (bytes and files), config checks, device readback, and a
//! training step that met a non-finite loss. Forward passes and optimizer updates stay infallible.

use crate::checkpoint::ModelKind;

/// Errors of `tessera-train`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not start with the checkpoint magic: not a Tessera checkpoint at all.
    #[error("not a Tessera checkpoint (the file does not start with the checkpoint signature)")]
    NotACheckpoint,
    /// A checkpoint written by a newer (or unknown) format version.
    #[error("checkpoint format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The file ends before the checkpoint does (an interrupted copy or download).
    #[error("checkpoint is truncated: {0}")]
    Truncated(String),
    /// The checksum or the structure inside does not hold: the file was damaged.
    #[error("checkpoint is corrupt: {0}")]
    Corrupt(String),
    /// A checkpoint of another model where this one was expected.
    #[error("checkpoint holds a {found}, expected a {expected}")]
    WrongKind {
        /// What the caller asked for.
        expected: ModelKind,
        /// What the file holds.
        found: ModelKind,
    },
    /// The configuration saved in the checkpoint is not the one expected.
    #[error("checkpoint config does not match: {}", differences.join("; "))]
    ConfigMismatch {
        /// One line per differing field: `field: expected X, checkpoint has Y`.
        differences: Vec<String>,
    },
    /// Another live process is training in the run folder.
    #[error("{} is in use by another run (process {pid}): wait for it to finish, or choose another folder", dir.display())]
    RunInUse {
        /// The run folder.
        dir: std::path::PathBuf,
        /// The process that holds it.
        pid: u32,
    },
    /// The weights in the checkpoint do not fit the model its config describes.
    #[error("checkpoint weights do not fit the model: {0}")]
    Weights(String),
    /// The optimizer state in the checkpoint does not fit the model.
    #[error("checkpoint optimizer state does not fit the model: {0}")]
    OptimizerState(String),
    /// The loss of a step was NaN or infinite; the model was not updated by that step.
    #[error("the loss became {value} at step {step}: training stopped before updating the model, so the last checkpoint is the last good state (try a lower learning rate)")]
    NonFiniteLoss {
        /// Step whose loss was not finite.
        step: usize,
        /// The loss value read back.
        value: f32,
    },
    /// The gradient norm of a step was NaN or infinite; the model was not updated by that step.
    #[error("the gradient norm became {value} at step {step}: training stopped before updating the model, so the last checkpoint is the last good state")]
    NonFiniteGradient {
        /// Step whose gradients were not finite.
        step: usize,
        /// The norm read back.
        value: f32,
    },
    /// A checkpoint of a tokenizer or a judge where a generator was expected.
    #[error("the checkpoint holds a {0}, not a generator: give the transformer's checkpoint first, then its tokenizer's")]
    NotAGenerator(ModelKind),
    /// Loading one part of a model failed.
    #[error("loading the {part}: {source}")]
    Part {
        /// Which part: "tokenizer", "transformer".
        part: &'static str,
        /// Why.
        source: Box<Error>,
    },
    /// A training configuration is inconsistent.
    #[error("invalid training config: {0}")]
    Config(String),
    /// Reading a tensor back from the device failed.
    #[error("reading a tensor back from the device failed: {0}")]
    Readback(String),
    /// An error of the models crate (config validation).
    #[error(transparent)]
    Model(#[from] tessera_models::Error),
    /// Reading or writing a checkpoint file failed.
    #[cfg(not(target_arch = "wasm32"))]
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// This error, said of one part of a model.
    pub(crate) fn part(self, part: &'static str) -> Self {
        Self::Part { part, source: Box::new(self) }
    }

    /// A step met a NaN or infinite loss or gradient (and left the model at its last good state).
    pub fn is_non_finite(&self) -> bool {
        matches!(self, Self::NonFiniteLoss { .. } | Self::NonFiniteGradient { .. })
    }

    pub(crate) fn readback(e: impl std::fmt::Debug) -> Self {
        Self::Readback(format!("{e:?}"))
    }
}

/// [`tessera_models::readback::on_host`] with this crate's error: a readback that fails (a lost
/// GPU) is an error here rather than a panic at first use.
pub(crate) fn on_host(data: burn::tensor::TensorData) -> Result<burn::tensor::TensorData> {
    tessera_models::readback::on_host(data).map_err(Error::Readback)
}
