//! The models that ship with Tessera, one pair (generator + tokenizer) per family, and loading a
//! pair from checkpoint bytes: what the CLI, the app and eval all sample from.
//!
//! On the desktop the shipped pairs are compiled into the binary (`include_bytes!`, ~5 MB each),
//! so it runs from anywhere. The browser build leaves them out: the page fetches a family's pair
//! from `web/dist/assets/` (the same paths) when that family is first chosen, and the service
//! worker keeps them (web/sw.js). The CLI reads the files from `assets/`, so a retrained file there
//! is used without a rebuild.

use std::sync::Arc;

use anyhow::Context;
use burn::prelude::*;
use tessera_models::family::Family;
use tessera_models::generator::ImageGenerator;
use tessera_train::{Checkpoint, load_generator};

/// A shipped generator and its tokenizer.
pub struct Shipped {
    /// The asset folder's name, as reports, `tessera eval`, `--model` and links (`model=`) call
    /// it: `var-tiny`.
    pub name: &'static str,
    pub family: Family,
    /// What it draws, for the app's model picker: `MNIST digits`.
    pub draws: &'static str,
    /// The files, relative to the repository root.
    pub generator_path: &'static str,
    pub tokenizer_path: &'static str,
    /// The same files, compiled in (not in the browser build: it fetches them, [`Shipped::fetch`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub generator_bytes: &'static [u8],
    #[cfg(not(target_arch = "wasm32"))]
    pub tokenizer_bytes: &'static [u8],
}

/// Every shipped pair: one per family (the first of a family is its default), the column
/// generator's scenes pair after its MNIST one.
pub const SHIPPED: &[Shipped] = &[
    Shipped {
        name: "var-tiny",
        draws: "MNIST digits",
        family: Family::Var,
        generator_path: "assets/var-tiny/var.ckpt",
        tokenizer_path: "assets/var-tiny/tokenizer.ckpt",
        #[cfg(not(target_arch = "wasm32"))]
        generator_bytes: include_bytes!("../assets/var-tiny/var.ckpt"),
        #[cfg(not(target_arch = "wasm32"))]
        tokenizer_bytes: include_bytes!("../assets/var-tiny/tokenizer.ckpt"),
    },
    Shipped {
        name: "rar-tiny",
        draws: "MNIST digits",
        family: Family::Rar,
        generator_path: "assets/rar-tiny/rar.ckpt",
        tokenizer_path: "assets/rar-tiny/tokenizer.ckpt",
        #[cfg(not(target_arch = "wasm32"))]
        generator_bytes: include_bytes!("../assets/rar-tiny/rar.ckpt"),
        #[cfg(not(target_arch = "wasm32"))]
        tokenizer_bytes: include_bytes!("../assets/rar-tiny/tokenizer.ckpt"),
    },
    Shipped {
        name: "columns-mnist",
        draws: "MNIST digits",
        family: Family::Columns,
        generator_path: "assets/columns-mnist/equivariant.ckpt",
        tokenizer_path: "assets/columns-mnist/tokenizer.ckpt",
        #[cfg(not(target_arch = "wasm32"))]
        generator_bytes: include_bytes!("../assets/columns-mnist/equivariant.ckpt"),
        #[cfg(not(target_arch = "wasm32"))]
        tokenizer_bytes: include_bytes!("../assets/columns-mnist/tokenizer.ckpt"),
    },
    Shipped {
        name: "columns-scenes",
        draws: "landscapes",
        family: Family::Columns,
        generator_path: "assets/columns-scenes/equivariant.ckpt",
        tokenizer_path: "assets/columns-scenes/tokenizer.ckpt",
        #[cfg(not(target_arch = "wasm32"))]
        generator_bytes: include_bytes!("../assets/columns-scenes/equivariant.ckpt"),
        #[cfg(not(target_arch = "wasm32"))]
        tokenizer_bytes: include_bytes!("../assets/columns-scenes/tokenizer.ckpt"),
    },
];

impl Shipped {
    /// The shipped pair of `family`, if it has one yet (its default: the first).
    pub fn of(family: Family) -> Option<&'static Shipped> {
        SHIPPED.iter().find(|s| s.family == family)
    }

    /// Every shipped pair of `family`, its default first.
    pub fn all_of(family: Family) -> impl Iterator<Item = &'static Shipped> {
        SHIPPED.iter().filter(move |s| s.family == family)
    }

    /// The shipped pair called `name` (`columns-scenes`).
    pub fn named(name: &str) -> Option<&'static Shipped> {
        SHIPPED.iter().find(|s| s.name == name)
    }

    /// The names of the shipped pairs, for messages: `var-tiny, rar-tiny, ...`.
    pub fn names() -> String {
        SHIPPED.iter().map(|s| s.name).collect::<Vec<_>>().join(", ")
    }

    /// Loads the compiled-in pair.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(&self, device: &Device) -> anyhow::Result<Arc<dyn ImageGenerator>> {
        load_pair(self.generator_bytes, self.tokenizer_bytes, device).with_context(|| format!("loading the shipped {} models", self.name))
    }

    /// Downloads the pair's two files from the page's folder at once (the service worker answers
    /// from its cache after the first visit), calling `progress(bytes, total)` as they arrive.
    #[cfg(target_arch = "wasm32")]
    pub async fn fetch(&self, progress: impl Fn(u64, u64) + 'static) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let [generator, tokenizer] = crate::web::fetch_all([self.generator_path, self.tokenizer_path], progress)
            .await
            .map_err(|e| anyhow::anyhow!("downloading the shipped {} models: {e}", self.name))?;
        Ok((generator, tokenizer))
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
        // The column generator's default is the digits; the scenes pair draws the six scenery
        // classes in colour.
        assert_eq!(Shipped::all_of(Family::Columns).map(|s| s.name).collect::<Vec<_>>(), ["columns-mnist", "columns-scenes"]);
        let scenes = Shipped::named("columns-scenes").unwrap().load(&Device::flex()).unwrap().info().clone();
        assert_eq!((scenes.channels, scenes.num_classes, scenes.class_name(0)), (3, 6, "mountains".to_string()));
        assert!(Shipped::named("columns-nothing").is_none());
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
