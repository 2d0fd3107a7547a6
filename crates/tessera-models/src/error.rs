//! The crate's error type: everything that touches the outside world (checkpoints, fixture
//! files, config validation). Forward passes stay infallible and panic on shape bugs.

/// Errors of `tessera-models`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not a valid safetensors file.
    #[error("not a valid safetensors file: {0}")]
    Safetensors(String),
    /// A weight the model needs is not in the checkpoint.
    #[error("checkpoint has no tensor `{key}`")]
    MissingWeight {
        /// Official (PyTorch) name of the tensor.
        key: String,
    },
    /// A checkpoint tensor has another shape than the model's parameter.
    #[error("checkpoint tensor `{key}` has shape {found:?}, the model expects {expected:?}")]
    WeightShape {
        /// Official (PyTorch) name of the tensor.
        key: String,
        /// Shape in PyTorch layout that the model expects.
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A checkpoint tensor is not float32 (or int64 for index buffers).
    #[error("checkpoint tensor `{key}` has dtype {dtype}, expected {expected}")]
    WeightDtype {
        /// Official (PyTorch) name of the tensor.
        key: String,
        /// Dtype found in the file.
        dtype: String,
        /// Dtype expected.
        expected: &'static str,
    },
    /// The checkpoint holds tensors the model has no place for.
    #[error("checkpoint has {} unexpected tensor(s), first `{}`", keys.len(), keys[0])]
    UnexpectedWeights {
        /// Official names of the unused tensors.
        keys: Vec<String>,
    },
    /// A request the model cannot serve (a class out of range, a setting that is not finite).
    #[error("{0}")]
    Invalid(String),
    /// A configuration is inconsistent.
    #[error("invalid config: {0}")]
    Config(String),
    /// A fixture file is malformed or lacks something the runner needs.
    #[error("fixture {path}: {message}")]
    Fixture {
        /// File or case the problem is in.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
