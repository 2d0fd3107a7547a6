//! The models that ship with Tessera, one pair (generator + tokenizer) per family, and loading a
//! pair from checkpoint bytes: what the CLI, the app and eval all sample from.
//!
//! The shipped pairs are compiled into the binary (`include_bytes!`, ~5 MB each): the browser has
//! no files to read, and a first image should appear within seconds of opening the app. The CLI
//! reads the same files from `assets/` instead, so a retrained file there is used without a rebuild.

use std::sync::Arc;

use anyhow::Context;
use burn::prelude::*;
use tessera_models::family::Family;
use tessera_models::generator::ImageGenerator;
use tessera_train::{Checkpoint, load_generator};

/// A shipped generator and its tokenizer.
pub struct Shipped {
    /// The asset folder's name, as reports and `tessera eval` call it: `var-tiny`.
    pub name: &'static str,
    pub family: Family,
    /// The files, relative to the repository root.
    pub generator_path: &'static str,
    pub tokenizer_path: &'static str,
    /// The same files, compiled in.
    pub generator_bytes: &'static [u8],
    pub tokenizer_bytes: &'static [u8],
}

/// Every shipped pair: one per family (the first of a family is its default), the column
/// generator's scenes pair after its MNIST one.
pub const SHIPPED: &[Shipped] = &[
    Shipped {
        name: "var-tiny",
        family: Family::Var,
        generator_path: "assets/var-tiny/var.ckpt",
        tokenizer_path: "assets/var-tiny/tokenizer.ckpt",
        generator_bytes: include_bytes!("../assets/var-tiny/var.ckpt"),
        tokenizer_bytes: include_bytes!("../assets/var-tiny/tokenizer.ckpt"),
    },
    Shipped {
        name: "rar-tiny",
        family: Family::Rar,
        generator_path: "assets/rar-tiny/rar.ckpt",
        tokenizer_path: "assets/rar-tiny/tokenizer.ckpt",
        generator_bytes: include_bytes!("../assets/rar-tiny/rar.ckpt"),
        tokenizer_bytes: include_bytes!("../assets/rar-tiny/tokenizer.ckpt"),
    },
    Shipped {
        name: "columns-mnist",
        family: Family::Columns,
        generator_path: "assets/columns-mnist/equivariant.ckpt",
        tokenizer_path: "assets/columns-mnist/tokenizer.ckpt",
        generator_bytes: include_bytes!("../assets/columns-mnist/equivariant.ckpt"),
        tokenizer_bytes: include_bytes!("../assets/columns-mnist/tokenizer.ckpt"),
    },
];

impl Shipped {
    /// The shipped pair of `family`, if it has one yet.
    pub fn of(family: Family) -> Option<&'static Shipped> {
        SHIPPED.iter().find(|s| s.family == family)
    }

    /// Loads the compiled-in pair.
    pub fn load(&self, device: &Device) -> anyhow::Result<Arc<dyn ImageGenerator>> {
        load_pair(self.generator_bytes, self.tokenizer_bytes, device).with_context(|| format!("loading the shipped {} models", self.name))
    }
}

/// Parses and loads a generator and its tokenizer. Every failure (not a checkpoint, damaged,
/// wrong kind, a pair that does not fit together) is an error that says which file.
pub fn load_pair(generator: &[u8], tokenizer: &[u8], device: &Device) -> anyhow::Result<Arc<dyn ImageGenerator>> {
    let generator = Checkpoint::from_bytes(generator).context("reading the generator checkpoint")?;
    let tokenizer = Checkpoint::from_bytes(tokenizer).context("reading the tokenizer checkpoint")?;
    Ok(load_generator(&generator, &tokenizer, device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_with_a_shipped_pair_loads_it() {
        for shipped in SHIPPED {
            let generator = shipped.load(&Device::flex()).unwrap();
            assert_eq!(generator.info().family, shipped.family, "{}", shipped.name);
            assert!(generator.info().warning.is_none(), "{:?}", generator.info().warning);
            // The compiled-in bytes are the files the CLI reads.
            let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + shipped.generator_path).unwrap();
            assert_eq!(on_disk, shipped.generator_bytes, "{}", shipped.name);
        }
        assert!(Shipped::of(Family::Var).is_some() && Shipped::of(Family::Rar).is_some());
    }

    #[test]
    fn damaged_or_swapped_checkpoints_are_clear_errors() {
        let device = Device::flex();
        let var = Shipped::of(Family::Var).unwrap();
        let chain = |e: anyhow::Error| format!("{e:#}");
        let mut damaged = var.generator_bytes.to_vec();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x55;
        let e = chain(load_pair(&damaged, var.tokenizer_bytes, &device).err().unwrap());
        assert!(e.contains("generator checkpoint") && e.contains("checksum"), "{e}");
        let e = chain(load_pair(b"not a checkpoint", var.tokenizer_bytes, &device).err().unwrap());
        assert!(e.contains("generator checkpoint"), "{e}");
        // The two files swapped: each is a valid checkpoint of the other kind.
        let e = chain(load_pair(var.tokenizer_bytes, var.generator_bytes, &device).err().unwrap());
        assert!(e.contains("not a generator"), "{e}");
    }
}
