//! A VAR transformer and its tokenizer, loaded from checkpoint bytes and checked against each
//! other: what the CLI (`tessera sample`, `tessera edit`) and the app both sample from.
//!
//! The shipped tiny MNIST pair is compiled into the binary ([`SHIPPED_VAR_BYTES`],
//! [`SHIPPED_TOKENIZER_BYTES`], ~5 MB): the browser has no files to read, and a first image
//! should appear within seconds of opening the app, with nothing to fetch.

use anyhow::Context;
use burn::prelude::*;
use tessera_data::Image;
use tessera_models::generators::var::{Var, VarConfig};
use tessera_models::sampling::var::{EditKind, VarEdit};
use tessera_models::tokenizers::msvq::{MsVqVae, MsVqVaeConfig};
use tessera_train::checkpoint::fingerprint;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::var::{check_tokenizer, load_var};
use tessera_train::{Checkpoint, VarTrainingConfig};

/// `assets/var-tiny/var.ckpt`: the tiny VAR transformer trained on MNIST.
pub const SHIPPED_VAR_BYTES: &[u8] = include_bytes!("../assets/var-tiny/var.ckpt");
/// `assets/var-tiny/tokenizer.ckpt`: its multi-scale VQ-VAE.
pub const SHIPPED_TOKENIZER_BYTES: &[u8] = include_bytes!("../assets/var-tiny/tokenizer.ckpt");

/// The checkpoint metric with a training run's wall time in seconds.
pub const TRAIN_SECONDS: &str = "train_seconds";

/// A VAR transformer and its tokenizer, loaded and checked against each other.
pub struct VarModels {
    pub var: Var,
    pub vae: MsVqVae,
    pub var_config: VarConfig,
    pub vae_config: MsVqVaeConfig,
    /// Class names from the training config (MNIST: the digits); empty when the file has none.
    pub class_names: Vec<String>,
    /// Wall time of both training runs, when both checkpoints record it.
    pub train_seconds: Option<f64>,
    pub num_classes: usize,
    /// Side of the images the tokenizer works on.
    pub image_size: usize,
    pub channels: usize,
    /// Set when the transformer was trained with another tokenizer than this one: it still
    /// samples, but the images may be poor.
    pub warning: Option<String>,
    /// Where the weights live.
    pub device: Device,
}

impl VarModels {
    /// The shipped tiny MNIST models.
    pub fn shipped(device: &Device) -> anyhow::Result<Self> {
        Self::from_bytes(SHIPPED_VAR_BYTES, SHIPPED_TOKENIZER_BYTES, device).context("loading the shipped tiny MNIST models")
    }

    /// Parses and loads both checkpoints. Every failure (not a checkpoint, damaged, wrong kind,
    /// a transformer and tokenizer that do not fit together) is an error that says which file.
    pub fn from_bytes(var_bytes: &[u8], tokenizer_bytes: &[u8], device: &Device) -> anyhow::Result<Self> {
        let var_file = Checkpoint::from_bytes(var_bytes).context("reading the transformer checkpoint")?;
        let tok_file = Checkpoint::from_bytes(tokenizer_bytes).context("reading the tokenizer checkpoint")?;
        let class_names: Vec<String> = var_file
            .training_config::<VarTrainingConfig>()
            .ok()
            .flatten()
            .map(|c| c.class_names)
            .unwrap_or_default();
        let warning = var_file
            .header
            .tokenizer
            .as_ref()
            .filter(|expected| **expected != fingerprint(&tok_file.weights))
            .map(|_| "the transformer was trained with another tokenizer than this one".to_string());
        let (vae_config, vae) = load_tokenizer(&tok_file, device).context("loading the tokenizer")?;
        let (var_config, var) = load_var(&var_file, device).context("loading the transformer")?;
        check_tokenizer(&var_config, &vae).context("the transformer and the tokenizer do not belong together")?;
        let seconds = |c: &Checkpoint| c.header.metrics.get(TRAIN_SECONDS).copied();
        Ok(Self {
            train_seconds: seconds(&tok_file).zip(seconds(&var_file)).map(|(a, b)| a + b),
            num_classes: var_config.num_classes,
            image_size: vae_config.image_size(),
            channels: vae_config.in_channels,
            var,
            vae,
            var_config,
            vae_config,
            class_names,
            warning,
            device: device.clone(),
        })
    }

    /// A clear error for a class the model does not have.
    pub fn check_class(&self, class: usize) -> anyhow::Result<()> {
        if class >= self.num_classes {
            let names = if self.class_names.is_empty() { String::new() } else { format!(" ({})", self.class_names.join(", ")) };
            anyhow::bail!("class {class} is out of range: this model has classes 0 to {}{names}", self.num_classes - 1);
        }
        Ok(())
    }

    /// The name of class `class` (its number when the checkpoint has no names).
    pub fn class_name(&self, class: usize) -> String {
        self.class_names.get(class).cloned().unwrap_or_else(|| class.to_string())
    }

    /// A zero-shot edit of `source` for `n` draws: the source's codes at every scale, and which
    /// of them to keep given the `region` (row-major over the image, true inside) and the `kind`.
    pub fn edit(&self, source: &Image, region: &[bool], kind: EditKind, n: usize) -> anyhow::Result<VarEdit> {
        let (c, h, w) = (source.channels, source.height, source.width);
        let side = self.image_size;
        anyhow::ensure!(
            (c, h, w) == (self.channels, side, side),
            "the image is {c}x{h}x{w}; this model edits {}x{side}x{side} images",
            self.channels
        );
        anyhow::ensure!(region.len() == h * w, "the region has {} pixels, the image {}", region.len(), h * w);
        anyhow::ensure!(region.iter().any(|&r| r), "the region is empty: nothing would change");
        let pixels = source.pixels.iter().map(|v| v * 2.0 - 1.0).collect::<Vec<f32>>();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, c, h, w]), &self.device).repeat_dim(0, n);
        Ok(VarEdit { tokens: self.vae.image_to_idx(x), keep: kind.keep(region), height: h, width: w })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_models_load_and_fit_together() {
        let models = VarModels::shipped(&Device::flex()).unwrap();
        assert_eq!(models.num_classes, 10);
        assert_eq!((models.image_size, models.channels), (32, 1));
        assert_eq!(models.class_name(3), "3");
        assert!(models.warning.is_none(), "{:?}", models.warning);
        assert!(models.check_class(9).is_ok());
        let e = models.check_class(10).unwrap_err().to_string();
        assert!(e.contains("out of range") && e.contains("0 to 9"), "{e}");
    }

    #[test]
    fn damaged_or_swapped_checkpoints_are_clear_errors() {
        let device = Device::flex();
        let chain = |e: anyhow::Error| format!("{e:#}");
        let mut damaged = SHIPPED_VAR_BYTES.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x55;
        let e = chain(VarModels::from_bytes(&damaged, SHIPPED_TOKENIZER_BYTES, &device).err().unwrap());
        assert!(e.contains("transformer checkpoint") && e.contains("checksum"), "{e}");
        let e = chain(VarModels::from_bytes(b"not a checkpoint", SHIPPED_TOKENIZER_BYTES, &device).err().unwrap());
        assert!(e.contains("transformer checkpoint"), "{e}");
        // The two files swapped: each is a valid checkpoint of the other kind.
        let e = chain(VarModels::from_bytes(SHIPPED_TOKENIZER_BYTES, SHIPPED_VAR_BYTES, &device).err().unwrap());
        assert!(e.contains("loading the tokenizer"), "{e}");
    }
}
