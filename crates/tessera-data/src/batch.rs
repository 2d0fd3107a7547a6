//! Gathering samples into the flat buffers a tensor is made from.

use crate::Dataset;

/// Samples stacked for a tensor: `images` is `[B, C, H, W]` row-major, `labels` is `[B]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `shape[0] * shape[1] * shape[2] * shape[3]` values in [0, 1].
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<usize>,
    /// `[B, C, H, W]`.
    pub shape: [usize; 4],
}

/// Stacks samples `indices` of `dataset`, in that order (repeats allowed).
///
/// # Panics
/// If an index is out of range, or a sample's size differs from the dataset's.
pub fn batch<D: Dataset + ?Sized>(dataset: &D, indices: &[usize]) -> Batch {
    let shape = [
        indices.len(),
        dataset.channels(),
        dataset.height(),
        dataset.width(),
    ];
    let mut images = Vec::with_capacity(shape.iter().product());
    let mut labels = Vec::with_capacity(indices.len());
    for &index in indices {
        let sample = dataset.get(index);
        let image = &sample.image;
        assert_eq!(
            [image.channels, image.height, image.width],
            shape[1..],
            "sample {index} of {} has the wrong size",
            dataset.name()
        );
        images.extend_from_slice(&image.pixels);
        labels.push(sample.label);
    }
    Batch {
        images,
        labels,
        shape,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Scenes, ScenesConfig};

    #[test]
    fn batch_concatenates_samples_in_index_order() {
        let scenes = Scenes::new(ScenesConfig {
            height: 16,
            width: 24,
            len: 12,
            seed: 3,
        })
        .unwrap();
        let b = batch(&scenes, &[5, 0, 5]);
        assert_eq!(b.shape, [3, 3, 16, 24]);
        let one = 3 * 16 * 24;
        assert_eq!(b.images.len(), 3 * one);
        assert_eq!(b.images[..one], scenes.get(5).image.pixels[..]);
        assert_eq!(b.images[one..2 * one], scenes.get(0).image.pixels[..]);
        assert_eq!(b.images[..one], b.images[2 * one..]);
        assert_eq!(
            b.labels,
            vec![scenes.label(5), scenes.label(0), scenes.label(5)]
        );
    }
}
