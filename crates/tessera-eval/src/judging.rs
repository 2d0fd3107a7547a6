//! Running the judge over images: its verdicts and features, read back asynchronously.

use burn::prelude::*;
use tessera_data::{Dataset, batch};
use tessera_models::judge::Judge;

use crate::metrics::Features;
use crate::{Error, Result};

/// What the judge says of a set of images.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdicts {
    /// Penultimate features, one row per image.
    pub features: Features,
    /// The most likely class of each image.
    pub predictions: Vec<usize>,
}

impl Verdicts {
    /// Fraction of predictions equal to `labels`.
    ///
    /// # Panics
    /// If the lengths differ.
    pub fn accuracy(&self, labels: &[usize]) -> f64 {
        assert_eq!(labels.len(), self.predictions.len(), "one label per verdict");
        let right = self.predictions.iter().zip(labels).filter(|(p, l)| p == l).count();
        right as f64 / labels.len().max(1) as f64
    }

    fn append(&mut self, other: Verdicts) {
        self.features.values.extend(other.features.values);
        self.predictions.extend(other.predictions);
    }
}

/// The judge's verdicts on `images` (`[B, C, H, W]` in `[0, 1]`, as generators and datasets
/// give them).
pub async fn judge_images(judge: &Judge, images: Tensor<4>) -> Result<Verdicts> {
    let features = judge.features(images * 2.0 - 1.0);
    let dim = features.dims()[1];
    let predictions = judge.classify(features.clone()).argmax(1);
    let features = features.into_data_async().await.map_err(Error::readback)?;
    let predictions = predictions.into_data_async().await.map_err(Error::readback)?;
    Ok(Verdicts {
        features: Features::new(dim, features.iter::<f32>().collect()),
        predictions: predictions.iter::<i64>().map(|p| p as usize).collect(),
    })
}

/// The judge's verdicts on `images` (`[N, C, H, W]` in `[0, 1]`), `batch` images at a time, with
/// each image's pixels read back (for [`crate::distinct_fraction`]).
pub async fn judge_images_batched(judge: &Judge, images: Tensor<4>, batch: usize) -> Result<(Verdicts, Vec<Vec<f32>>)> {
    let n = images.dims()[0];
    let mut verdicts: Option<Verdicts> = None;
    let mut pixels = Vec::with_capacity(n);
    for start in (0..n).step_by(batch.max(1)) {
        let part = images.clone().narrow(0, start, batch.max(1).min(n - start));
        let v = judge_images(judge, part.clone()).await?;
        let data = part.into_data_async().await.map_err(Error::readback)?;
        let values: Vec<f32> = data.iter::<f32>().collect();
        let per = values.len() / v.predictions.len();
        pixels.extend(values.chunks(per).map(<[f32]>::to_vec));
        match &mut verdicts {
            Some(all) => all.append(v),
            None => verdicts = Some(v),
        }
    }
    Ok((verdicts.ok_or(Error::Empty("no images to judge"))?, pixels))
}

/// The judge's verdicts on samples `indices` of `dataset`, `batch_size` at a time.
pub async fn judge_dataset<D: Dataset + ?Sized>(
    judge: &Judge,
    dataset: &D,
    indices: &[usize],
    batch_size: usize,
    device: &Device,
) -> Result<Verdicts> {
    let mut all: Option<Verdicts> = None;
    for chunk in indices.chunks(batch_size.max(1)) {
        let b = batch(dataset, chunk);
        let images = Tensor::<4>::from_data(TensorData::new(b.images, b.shape), device);
        let verdicts = judge_images(judge, images).await?;
        match &mut all {
            Some(all) => all.append(verdicts),
            None => all = Some(verdicts),
        }
    }
    all.ok_or(Error::Empty("no images to judge"))
}
