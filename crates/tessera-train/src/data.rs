//! Which samples each step trains on, and how a batch becomes tensors.
//!
//! The order is a pure function of `(seed, step)`: every epoch is a Fisher-Yates shuffle seeded
//! by the epoch number, and step `s` takes samples `s·B .. s·B + B` of that endless stream. A
//! resumed run therefore sees exactly the batches the uninterrupted run would have, with no
//! random-number state to save.

use burn::prelude::*;
use tessera_data::{Batch, Dataset, batch};
use tessera_models::rng::SplitMix64;

/// The sample order of a training run over a dataset of `len` samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOrder {
    len: usize,
    batch_size: usize,
    seed: u64,
}

impl BatchOrder {
    /// The order for `len` samples in batches of `batch_size`.
    ///
    /// # Panics
    /// If `len` or `batch_size` is 0.
    pub fn new(len: usize, batch_size: usize, seed: u64) -> Self {
        assert!(len > 0 && batch_size > 0, "BatchOrder needs samples and a batch size");
        Self { len, batch_size, seed }
    }

    /// The dataset indices of step `step`'s batch.
    pub fn indices(&self, step: usize) -> Vec<usize> {
        let start = step * self.batch_size;
        let mut out = Vec::with_capacity(self.batch_size);
        let mut epoch = usize::MAX;
        let mut perm = Vec::new();
        for pos in start..start + self.batch_size {
            if pos / self.len != epoch {
                epoch = pos / self.len;
                perm = self.permutation(epoch);
            }
            out.push(perm[pos % self.len]);
        }
        out
    }

    /// Epoch `epoch`'s shuffle of `0..len`.
    fn permutation(&self, epoch: usize) -> Vec<usize> {
        let mut rng = SplitMix64::new(mix(self.seed, epoch as u64));
        let mut perm: Vec<usize> = (0..self.len).collect();
        for i in (1..self.len).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            perm.swap(i, j);
        }
        perm
    }
}

/// A seed for stream `stream` of run `seed` (one SplitMix64 step over both).
pub fn mix(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03)).next_u64()
}

/// Images in `[-1, 1]` (as the official code trains on) and labels of a batch.
///
/// # Shapes
/// - → images `[B, C, H, W]`, labels `[B]`
pub fn to_tensors(batch: &Batch, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    let images = Tensor::<4>::from_data(TensorData::new(batch.images.clone(), batch.shape), device) * 2.0 - 1.0;
    let labels: Vec<i64> = batch.labels.iter().map(|&l| l as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch.labels.len()]), device);
    (images, labels)
}

/// Samples `indices` of `dataset` as tensors (see [`to_tensors`]).
pub fn load_batch<D: Dataset + ?Sized>(dataset: &D, indices: &[usize], device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
    to_tensors(&batch(dataset, indices), device)
}

/// The first `per_class` samples of every class, class by class (a fixed batch for sample grids).
pub fn first_of_each_class<D: Dataset + ?Sized>(dataset: &D, per_class: usize) -> Vec<usize> {
    let classes = dataset.class_names().len();
    let mut picked: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for i in 0..dataset.len() {
        let label = dataset.label(i);
        if picked[label].len() < per_class {
            picked[label].push(i);
            if picked.iter().all(|p| p.len() == per_class) {
                break;
            }
        }
    }
    picked.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_visits_every_sample_once_in_a_new_order() {
        let order = BatchOrder::new(10, 4, 3);
        let stream: Vec<usize> = (0..5).flat_map(|s| order.indices(s)).collect(); // 20 = two epochs
        let (a, b) = stream.split_at(10);
        let sorted = |v: &[usize]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        assert_eq!(sorted(a), (0..10).collect::<Vec<_>>());
        assert_eq!(sorted(b), (0..10).collect::<Vec<_>>());
        assert_ne!(a, b);
        assert_eq!(order.indices(3), BatchOrder::new(10, 4, 3).indices(3), "a pure function of the step");
        assert_ne!(order.indices(0), BatchOrder::new(10, 4, 4).indices(0));
    }
}
