//! Images wider than the training width, measured window by window: the column generator's
//! claim that it draws images far wider than it was trained on without drifting along the width.
//!
//! For a width multiple `W`, each image is `W` times the training width (`W × N` token columns,
//! `N` the training columns). Every image is cut into `W` windows of the training width, side by
//! side: stride = window, no overlap, so the windows of one image share no pixel (a
//! column-aligned sliding window would give `W·N − N + 1` windows per image that overlap by up to
//! `N − 1` columns, i.e. near-copies, which the distinct fraction and the FID's covariance would
//! count as more evidence than they are). Each window is judged as a training-width image:
//! - class accuracy: the share of windows the judge assigns to the asked class, overall and per
//!   position (window 0 leftmost), so a drift to the right shows as falling accuracy;
//! - FID (and precision / recall) of the windows' judge features against the real held-out
//!   images, which are training-width images; read it beside the `W = 1` row (the images
//!   themselves): the bar is the windows' FID within 1.3× of the training-width FID.
//!
//! Sample count: FID is biased upwards by few samples, so each width draws `⌈per_class / W⌉`
//! images per class, which makes about `per_class` windows per class at every width (exactly at
//! `W = 1`; up to `W − 1` more per class where `W` does not divide `per_class`). The FIDs of all
//! widths are then over about the same number of windows, and every width costs about the same
//! sampling work. At `W = 1` the images, seeds and batches are those of
//! [`crate::measure_generator`]: its row and the `W = 1` row measure the same images.

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use tessera_models::generator::{ImageGenerator, SampleRequest, generate};
use tessera_models::judge::Judge;
use tessera_models::rng::SplitMix64;

use crate::{COPY_TOLERANCE, Error, Features, Quality, Result, balanced_labels, distinct_fraction, judge_images_batched};

/// The width multiples of the column generator's measurement (issue: 1×, 4×, 8× and 16×).
pub const WIDTH_MULTIPLES: [usize; 4] = [1, 4, 8, 16];

/// The windows of images `width_multiple` times the training width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WideQuality {
    /// W: each image is W times the training width.
    pub width_multiple: usize,
    /// Wide images drawn: `⌈per_class / W⌉` of each class.
    pub wide_images: usize,
    /// Window width and stride, in pixels (the training width).
    pub window_px: usize,
    /// All windows measured as images (`images` is the number of windows; class accuracy, FID,
    /// precision, recall and distinct of the windows). Flat in the JSON.
    #[serde(flatten)]
    pub windows: Quality,
    /// Class accuracy of the windows at each position, left to right (W values).
    pub position_accuracy: Vec<f64>,
}

impl WideQuality {
    /// The lowest class accuracy of any window position.
    pub fn worst_position_accuracy(&self) -> f64 {
        self.position_accuracy.iter().copied().fold(f64::INFINITY, f64::min)
    }
}

/// Cuts images `[N, C, H, k · window]` into their `k` windows side by side, `[N · k, C, H, window]`,
/// image by image (window `j` of image `i` at row `i · k + j`).
///
/// # Panics
/// If the width is not a multiple of `window`.
pub fn cut_windows(images: Tensor<4>, window: usize) -> Tensor<4> {
    let [n, c, h, w] = images.dims();
    assert!(window > 0 && w % window == 0, "a {w} px wide image does not split into {window} px windows");
    let k = w / window;
    images.reshape([n, c, h, k, window]).permute([0, 3, 1, 2, 4]).reshape([n * k, c, h, window])
}

/// Draws `⌈per_class / multiple⌉` images of every class, `multiple` times the training width
/// (`generator.info().width` pixels, `forward_passes` token columns: one pass per column for the
/// column generator) with `sampler`'s settings, cuts them into training-width windows and measures
/// the windows against the real images' features (see the module docs). Images are drawn
/// `batch / multiple` (at least one) at a time, so a call holds about `batch` training widths
/// of pixels whatever the multiple, each call with its own seed from `seed`'s stream; the judge
/// takes `batch` windows at a time.
///
/// Errors when `multiple` is 0, or above 1 for a model that draws its training width only, or
/// when the images do not come out `multiple` times as wide.
#[allow(clippy::too_many_arguments)]
pub async fn measure_wide(
    generator: &dyn ImageGenerator,
    sampler: &SampleRequest,
    judge: &Judge,
    real: &Features,
    per_class: usize,
    multiple: usize,
    batch: usize,
    seed: u64,
) -> Result<WideQuality> {
    let info = generator.info();
    if multiple == 0 {
        return Err(Error::Invalid("the width multiple must be at least 1".into()));
    }
    // One forward pass per token column: the column generator's training columns.
    let columns = info.forward_passes * multiple;
    if multiple > 1 && !generator.controls().width.is_some_and(|range| range.contains(&columns)) {
        return Err(Error::Invalid(format!(
            "{} draws {} only: it cannot draw images {multiple}x as wide ({columns} columns)",
            info.method,
            match generator.controls().width {
                Some(range) => format!("{} to {} columns", range.start(), range.end()),
                None => "its training width".into(),
            }
        )));
    }
    let per_image_class = per_class.div_ceil(multiple).max(1);
    let labels = balanced_labels(info.num_classes, per_image_class);
    let mut seeds = SplitMix64::new(seed);
    let mut images = Vec::new();
    for chunk in labels.chunks((batch / multiple).max(1)) {
        let width = (multiple > 1).then_some(columns);
        let request = SampleRequest { classes: chunk.to_vec(), seed: seeds.next_u64(), width, ..sampler.clone() };
        images.push(generate(generator, &request)?);
    }
    let images = Tensor::cat(images, 0);
    let [_, _, _, w] = images.dims();
    if w != multiple * info.width {
        return Err(Error::Invalid(format!(
            "asked for images {multiple}x the training width of {} px, got {w} px",
            info.width
        )));
    }
    let windows = cut_windows(images, info.width);
    let window_labels: Vec<usize> = labels.iter().flat_map(|&l| std::iter::repeat_n(l, multiple)).collect();
    let (verdicts, pixels) = judge_images_batched(judge, windows, batch).await?;
    let quality = Quality::from_verdicts(&verdicts, &window_labels, real, distinct_fraction(&pixels, COPY_TOLERANCE));
    let position_accuracy = (0..multiple)
        .map(|p| {
            let at: Vec<usize> = (p..window_labels.len()).step_by(multiple).collect();
            let right = at.iter().filter(|&&i| verdicts.predictions[i] == window_labels[i]).count();
            right as f64 / at.len().max(1) as f64
        })
        .collect();
    Ok(WideQuality { width_multiple: multiple, wide_images: labels.len(), window_px: info.width, windows: quality, position_accuracy })
}

/// [`measure_wide`] at 1× and at each of `multiples` (ascending, each once; 1× is always
/// measured first: the other widths' FIDs are read against it). `progress` hears each multiple
/// before it is measured.
#[allow(clippy::too_many_arguments)]
pub async fn measure_widths(
    generator: &dyn ImageGenerator,
    sampler: &SampleRequest,
    judge: &Judge,
    real: &Features,
    per_class: usize,
    multiples: &[usize],
    batch: usize,
    seed: u64,
    progress: &dyn Fn(usize),
) -> Result<Vec<WideQuality>> {
    let mut all: Vec<usize> = std::iter::once(1).chain(multiples.iter().copied()).collect();
    all.sort_unstable();
    all.dedup();
    let mut rows = Vec::with_capacity(all.len());
    for multiple in all {
        progress(multiple);
        rows.push(measure_wide(generator, sampler, judge, real, per_class, multiple, batch, seed).await?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_cut_side_by_side_image_by_image() {
        let device = Device::flex();
        // Two 1 x 2 x 6 images whose pixel value is 100·image + column.
        let values: Vec<f32> = (0..2).flat_map(|i| (0..2).flat_map(move |_| (0..6).map(move |x| (100 * i + x) as f32))).collect();
        let images = Tensor::<4>::from_data(TensorData::new(values, [2, 1, 2, 6]), &device);
        let windows = cut_windows(images, 2);
        assert_eq!(windows.dims(), [6, 1, 2, 2]);
        let v: Vec<f32> = windows.into_data().iter::<f32>().collect();
        // Window j of image i holds columns 2j, 2j + 1 of image i, both rows.
        for (w, chunk) in v.chunks(4).enumerate() {
            let (i, j) = (w / 3, w % 3);
            let left = (100 * i + 2 * j) as f32;
            assert_eq!(chunk, [left, left + 1.0, left, left + 1.0], "window {w}");
        }
    }

    #[test]
    #[should_panic(expected = "does not split")]
    fn a_width_that_is_not_a_multiple_of_the_window_is_refused() {
        cut_windows(Tensor::<4>::zeros([1, 1, 2, 5], &Device::flex()), 2);
    }
}
