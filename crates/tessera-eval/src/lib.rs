//! Tessera's measuring instruments: how good and how varied a generator's images are.
//!
//! - [`metrics`]: FID, precision / recall (k-NN manifolds) and the distinct fraction, on plain
//!   vectors.
//! - [`judging`]: the judge classifier ([`tessera_models::judge`]) over images → [`Verdicts`]
//!   (features and predicted classes), read back asynchronously.
//! - [`measure_generator`]: any [`ImageGenerator`] (every family, the same way).
//! - [`wide`]: images wider than the training width, cut into training-width windows and
//!   measured window by window (the column generator's "no drift along the width").
//! - [`report`]: the report's rows, as JSON and as a markdown table.
//!
//! [`Quality::measure`] is the one recipe every row uses: `per_class` images of each class,
//! judged; class accuracy against the asked labels, FID and precision / recall against the
//! held-out real images' features.

pub mod judging;
pub mod metrics;
pub mod report;
pub mod wide;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tessera_models::generator::{ImageGenerator, SampleRequest, generate};
use tessera_models::judge::Judge;
use tessera_models::rng::SplitMix64;

pub use judging::{Verdicts, judge_dataset, judge_images, judge_images_batched};
pub use metrics::{Features, distinct_fraction, fid, precision_recall};
pub use wide::{WIDTH_MULTIPLES, WideQuality, cut_windows, measure_wide, measure_widths};

/// Neighbours of the precision / recall manifolds (the paper's k).
pub const PR_NEIGHBOURS: usize = 3;
/// Mean absolute pixel difference under which two samples count as copies.
pub const COPY_TOLERANCE: f32 = 0.01;

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a tensor back from the device failed.
    #[error("reading results back from the device failed: {0}")]
    Readback(String),
    /// Nothing to measure.
    #[error("{0}")]
    Empty(&'static str),
    /// A measurement that cannot be made as asked.
    #[error("{0}")]
    Invalid(String),
    /// The generator refused the request.
    #[error(transparent)]
    Model(#[from] tessera_models::Error),
}

impl Error {
    fn readback(e: impl std::fmt::Debug) -> Self {
        Self::Readback(format!("{e:?}"))
    }
}

/// Result of the evaluation.
pub type Result<T> = std::result::Result<T, Error>;

/// How one set of images compares with the real held-out images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    /// Images measured.
    pub images: usize,
    /// Share the judge assigns to the asked class.
    pub class_accuracy: f64,
    /// Fréchet distance to the held-out real images in the judge's feature space.
    pub fid: f64,
    /// Share of images inside the real images' k-NN manifold.
    pub precision: f64,
    /// Share of real images inside these images' k-NN manifold.
    pub recall: f64,
    /// Share of images that are not near-copies of another.
    pub distinct: f64,
}

impl Quality {
    /// Measures `images` (`[N, C, H, W]` in `[0, 1]`, asked to be `labels`) against the real
    /// images' features, `batch` images at a time through the judge.
    pub async fn measure(judge: &Judge, images: Tensor<4>, labels: &[usize], real: &Features, batch: usize) -> Result<Self> {
        let (verdicts, pixels) = judge_images_batched(judge, images, batch).await?;
        Ok(Self::from_verdicts(&verdicts, labels, real, distinct_fraction(&pixels, COPY_TOLERANCE)))
    }

    /// The row for images the judge has already seen.
    pub fn from_verdicts(verdicts: &Verdicts, labels: &[usize], real: &Features, distinct: f64) -> Self {
        let (precision, recall) = precision_recall(real, &verdicts.features, PR_NEIGHBOURS);
        Self {
            images: labels.len(),
            class_accuracy: verdicts.accuracy(labels),
            fid: fid(real, &verdicts.features),
            precision,
            recall,
            distinct,
        }
    }
}

/// `per_class` labels of each of `classes` classes, class by class.
pub fn balanced_labels(classes: usize, per_class: usize) -> Vec<usize> {
    (0..classes).flat_map(|c| std::iter::repeat_n(c, per_class)).collect()
}

/// Measures a generator with `sampler`'s settings: `per_class` images of every class from `seed`,
/// generated `batch` at a time (each batch its own seed from the stream).
pub async fn measure_generator(
    generator: &dyn ImageGenerator,
    sampler: &SampleRequest,
    judge: &Judge,
    real: &Features,
    per_class: usize,
    batch: usize,
    seed: u64,
) -> Result<Quality> {
    let labels = balanced_labels(generator.info().num_classes, per_class);
    let mut seeds = SplitMix64::new(seed);
    let mut images = Vec::new();
    for chunk in labels.chunks(batch.max(1)) {
        let request = SampleRequest { classes: chunk.to_vec(), seed: seeds.next_u64(), ..sampler.clone() };
        images.push(generate(generator, &request)?);
    }
    Quality::measure(judge, Tensor::cat(images, 0), &labels, real, batch).await
}

/// Uniform noise images with balanced labels: the ceiling row of every report.
pub fn noise_images(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    let mut rng = SplitMix64::new(seed);
    let values = rng.uniforms(shape.iter().product());
    Tensor::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_balanced_and_grouped() {
        assert_eq!(balanced_labels(3, 2), vec![0, 0, 1, 1, 2, 2]);
        assert!(balanced_labels(10, 0).is_empty());
    }
}
