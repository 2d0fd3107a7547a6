//! The judge: a small CNN classifier that measures generated images.
//!
//! Trained on a dataset's real images (`tessera train judge`), it gives two things to the
//! evaluation: its verdict (does a sample look like the class it was asked for?) and its
//! penultimate features, the space in which FID, precision and recall compare generated images
//! with real ones — the role Inception-v3 plays for ImageNet, at MNIST's scale.
//!
//! Architecture: `len(widths)` stages of 3x3 convolution → GroupNorm → ReLU → 2x2 max-pool
//! (32 px → 4 px with three stages), then flatten → linear → ReLU (the features) → linear (the
//! class logits). GroupNorm rather than BatchNorm so the judge has no running statistics and
//! behaves the same on one image as on a batch.
//!
//! Input: images `[B, C, H, W]` in `[-1, 1]`, the convention of every model here.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::Error;

/// The judge's shape.
#[derive(Config, Debug, PartialEq)]
pub struct JudgeConfig {
    /// Image channels: 1 (MNIST) or 3 (scenes, folders).
    pub channels: usize,
    /// Side of the square images (each stage halves it).
    pub image_size: usize,
    /// Classes of the dataset it judges.
    pub num_classes: usize,
    /// Channels of each convolution stage.
    #[config(default = "vec![32, 64, 128]")]
    pub widths: Vec<usize>,
    /// Size of the feature vector FID and precision/recall use.
    #[config(default = 128)]
    pub feature_dim: usize,
}

impl JudgeConfig {
    /// Floats per image of the largest activation a step holds ([`crate::memory`]).
    pub fn largest_floats_per_image(&self) -> u64 {
        crate::memory::conv_floats(self.widths.iter().copied(), self.image_size, self.image_size, true)
    }

    /// Errors unless the shape is buildable.
    pub fn validate(&self) -> crate::Result<()> {
        // Bounds first: a config read from a file must not ask for terabytes (or overflow the shift below).
        let sizes = [
            ("stages (widths)", self.widths.len(), 8),
            ("image_size", self.image_size, 4096),
            ("num_classes", self.num_classes, 1 << 16),
            ("feature_dim", self.feature_dim, 1 << 14),
            ("the widest stage", self.widths.iter().copied().max().unwrap_or(0), 4096),
        ];
        if let Some((name, value, max)) = sizes.iter().find(|(_, v, max)| v > max) {
            return Err(Error::Config(format!("judge: {name} must be at most {max}, got {value}")));
        }
        if self.channels != 1 && self.channels != 3 {
            return Err(Error::Config(format!("judge: channels must be 1 (grayscale) or 3 (RGB), got {}", self.channels)));
        }
        let stages = self.widths.len();
        let fits = stages > 0 && self.image_size % (1 << stages) == 0;
        if !fits || self.channels == 0 || self.num_classes < 2 || self.feature_dim == 0 {
            return Err(Error::Config(format!(
                "judge: {} stages need an image side divisible by {} (got {}), at least one channel and two classes",
                stages,
                1usize << stages,
                self.image_size
            )));
        }
        if let Some(w) = self.widths.iter().find(|w| **w == 0 || **w % 8 != 0) {
            return Err(Error::Config(format!("judge: stage width {w} must be a positive multiple of 8 (GroupNorm of 8 groups)")));
        }
        Ok(())
    }

    /// A freshly initialised judge (burn's default initialisation).
    pub fn init(&self, device: &Device) -> Judge {
        let mut stages = Vec::new();
        let mut c_in = self.channels;
        for &width in &self.widths {
            stages.push(Stage {
                conv: Conv2dConfig::new([c_in, width], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device),
                norm: GroupNormConfig::new(8, width).init(device),
            });
            c_in = width;
        }
        let side = self.image_size >> self.widths.len();
        Judge {
            stages,
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            features: LinearConfig::new(c_in * side * side, self.feature_dim).init(device),
            head: LinearConfig::new(self.feature_dim, self.num_classes).init(device),
        }
    }
}

/// Convolution → GroupNorm → ReLU, then the shared 2x2 pool.
#[derive(Module, Debug)]
pub struct Stage {
    conv: Conv2d,
    norm: GroupNorm,
}

/// The classifier (see the module docs).
#[derive(Module, Debug)]
pub struct Judge {
    stages: Vec<Stage>,
    pool: MaxPool2d,
    features: Linear,
    head: Linear,
}

impl Judge {
    /// Penultimate features.
    ///
    /// # Shapes
    /// - images `[B, C, H, W]` in `[-1, 1]` → `[B, feature_dim]`
    pub fn features(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = images;
        for stage in &self.stages {
            x = self.pool.forward(relu(stage.norm.forward(stage.conv.forward(x))));
        }
        relu(self.features.forward(x.flatten(1, 3)))
    }

    /// Class logits from features.
    ///
    /// # Shapes
    /// - features `[B, feature_dim]` → `[B, num_classes]`
    pub fn classify(&self, features: Tensor<2>) -> Tensor<2> {
        self.head.forward(features)
    }

    /// Class logits.
    ///
    /// # Shapes
    /// - images `[B, C, H, W]` in `[-1, 1]` → `[B, num_classes]`
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        self.classify(self.features(images))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_follow_the_config() {
        let device = Device::flex();
        let config = JudgeConfig::new(1, 32, 10);
        config.validate().unwrap();
        let judge = config.init(&device);
        let x = Tensor::<4>::zeros([2, 1, 32, 32], &device);
        assert_eq!(judge.features(x.clone()).dims(), [2, 128]);
        assert_eq!(judge.forward(x).dims(), [2, 10]);
    }

    #[test]
    fn unbuildable_shapes_are_config_errors() {
        assert!(JudgeConfig::new(1, 30, 10).validate().is_err(), "30 px cannot halve three times");
        assert!(JudgeConfig::new(1, 32, 1).validate().is_err(), "one class");
        assert!(JudgeConfig::new(1, 32, 10).with_widths(vec![12]).validate().is_err(), "12 channels, 8 groups");
    }
}
