//! What the evaluation needs of a generator, whatever its generation order.

use burn::module::Module;
use burn::prelude::*;
use tessera_models::generators::var::{TokenOrder, Var};
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_models::tokenizers::msvq::MsVqVae;

/// A class-conditional image generator under evaluation.
pub trait Generator {
    /// The method: `"var"`, `"raster-ar"` (VAR's transformer in next-token order; later `"rar"`,
    /// `"equivariant"`).
    fn method(&self) -> &'static str;
    /// Parameters of the generator proper (the tokenizer not counted, as the papers report).
    fn params(&self) -> usize;
    /// Forward passes of the generator per image (VAR: one per scale; raster order: one per token).
    fn forward_passes(&self) -> usize;
    /// Number of classes it is conditioned on.
    fn num_classes(&self) -> usize;
    /// Images `[B, C, H, W]` in `[0, 1]` for `labels`, reproducible from `seed`. Lazy: nothing is
    /// read back.
    fn generate(&self, labels: &[usize], seed: u64) -> Tensor<4>;
}

/// VAR (or its next-token baseline) with its tokenizer and sampler settings.
pub struct VarGenerator {
    /// The transformer.
    pub var: Var,
    /// Its tokenizer.
    pub vae: MsVqVae,
    /// Guidance, top-k, top-p, temperature (the seed is set per call).
    pub sampler: VarSamplerConfig,
    /// Where the labels tensor goes.
    pub device: Device,
}

impl Generator for VarGenerator {
    fn method(&self) -> &'static str {
        match self.var.order() {
            TokenOrder::NextScale => "var",
            TokenOrder::NextToken => "raster-ar",
        }
    }

    fn params(&self) -> usize {
        self.var.num_params()
    }

    fn forward_passes(&self) -> usize {
        self.var.forward_passes()
    }

    fn num_classes(&self) -> usize {
        self.var.null_class()
    }

    fn generate(&self, labels: &[usize], seed: u64) -> Tensor<4> {
        let labels: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
        let n = labels.len();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &self.device);
        sample(&self.var, &self.vae, labels, self.sampler.clone().with_seed(seed), false).image
    }
}
