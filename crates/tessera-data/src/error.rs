//! The crate's error type: everything that can go wrong comes from the outside world (a folder of
//! files, a configuration); a bad index is a programmer error and panics instead.

use std::path::PathBuf;

use crate::folder::Skipped;

/// Why a dataset could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The path given to [`crate::FolderDataset::open`] is neither a folder nor a file.
    #[error("dataset folder {} does not exist", path.display())]
    MissingRoot { path: PathBuf },

    /// A file given as a dataset is not a readable zip archive.
    #[error("{name} is not a readable zip archive of pictures ({reason}); give a folder with one subfolder per class, or a .zip of one")]
    Zip { name: String, reason: String },

    /// The dataset folder exists but could not be listed.
    #[error("cannot read dataset folder {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Not one usable image in the folder (it is empty, or every file was skipped).
    #[error("no usable images found ({} files skipped); put the images in one subfolder per class", skipped.len())]
    NoImages { skipped: Vec<Skipped> },

    /// Every usable image is in one class folder; generators need at least two classes.
    #[error("only one class, {class:?}: put the images in at least two class folders")]
    SingleClass { class: String },

    /// A class folder without one usable image; `skipped` lists its files that failed.
    #[error("class folder {class:?} has no usable images ({} files skipped)", skipped.len())]
    EmptyClass {
        class: String,
        skipped: Vec<Skipped>,
    },

    /// A channel count other than 1 (grayscale) or 3 (RGB).
    #[error("{channels} channels are not supported: use 1 (grayscale) or 3 (RGB)")]
    Channels { channels: usize },

    /// An image size the source cannot make, e.g. a zero resolution.
    #[error("image size {height} x {width} is not supported: {reason}")]
    Size {
        height: usize,
        width: usize,
        reason: &'static str,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
