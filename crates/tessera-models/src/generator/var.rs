//! VAR (or its raster-order baseline) with its multi-scale tokenizer, as an [`ImageGenerator`]:
//! one player step per scale, zero-shot in/out-painting and class edits.

use burn::prelude::*;

use super::{Chosen, Controls, Edit, EditKind, ImageGenerator, ModelInfo, SampleRequest, Sampling, Step};
use crate::family::{Family, GenerationOrder, GuidanceSchedule};
use crate::generators::var::{TokenOrder, Var};
use crate::sampling::var::{VarEdit, VarSamplerConfig, VarSampling};
use crate::tokenizers::msvq::{MsVqVae, MsVqVaeConfig};

/// A VAR transformer and the tokenizer it was trained on.
pub struct VarGenerator {
    var: Var,
    vae: MsVqVae,
    info: ModelInfo,
    device: Device,
    /// [`ImageGenerator::largest_floats_per_image`]: the decoder's, or the last scale's logits
    /// for the doubled batch.
    floats_per_image: u64,
}

impl VarGenerator {
    /// Pairs a transformer with its tokenizer (built from `vae_config`, on `device`);
    /// `class_names`, `train_seconds` and `warning` come from the checkpoints. Errors when the two
    /// do not fit.
    pub fn new(
        var: Var,
        vae: MsVqVae,
        vae_config: &MsVqVaeConfig,
        device: &Device,
        class_names: Vec<String>,
        train_seconds: Option<f64>,
        warning: Option<String>,
    ) -> crate::Result<Self> {
        if var.patch_nums() != vae.patch_nums() {
            return Err(crate::Error::Config(format!(
                "the transformer's scales {:?} differ from the tokenizer's {:?}",
                var.patch_nums(),
                vae.patch_nums()
            )));
        }
        let (channels, side) = (vae_config.in_channels, vae_config.image_size());
        let info = ModelInfo {
            family: Family::Var,
            method: match var.order() {
                TokenOrder::NextScale => "var",
                TokenOrder::NextToken => "raster-ar",
            },
            num_classes: var.null_class(),
            class_names,
            channels,
            height: side,
            width: side,
            params: var.num_params(),
            forward_passes: var.forward_passes(),
            train_seconds,
            warning,
        };
        let last_scale = vae_config.patch_nums.last().map_or(0, |p| p * p);
        // Guidance doubles the transformer's batch (its logits), not the decoder's.
        let floats_per_image = vae_config.largest_floats_per_image().max(2 * (last_scale * vae_config.vocab_size) as u64);
        Ok(Self { var, vae, info, device: device.clone(), floats_per_image })
    }

    /// The transformer, for VAR-specific tools (kernel benchmarks, the trainer).
    pub fn var(&self) -> &Var {
        &self.var
    }

    /// The tokenizer, likewise.
    pub fn tokenizer(&self) -> &MsVqVae {
        &self.vae
    }

    /// The source's codes at every scale for `n` draws, and which to keep.
    fn edit(&self, edit: &Edit, n: usize) -> crate::Result<VarEdit> {
        let (c, side) = (self.info.channels, self.info.height);
        edit.check(c, side)?;
        if !edit.region.iter().any(|&r| r) {
            return Err(crate::Error::Invalid("the region is empty: nothing would change".into()));
        }
        let pixels = edit.source.iter().map(|v| v * 2.0 - 1.0).collect::<Vec<f32>>();
        let x = Tensor::<4>::from_data(TensorData::new(pixels, [1, c, side, side]), &self.device()).repeat_dim(0, n);
        Ok(VarEdit { tokens: self.vae.image_to_idx(x), keep: edit.kind.keep(&edit.region), height: side, width: side })
    }
}

impl ImageGenerator for VarGenerator {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn controls(&self) -> Controls {
        Controls {
            order: match self.var.order() {
                TokenOrder::NextScale => GenerationOrder::NextScale,
                TokenOrder::NextToken => GenerationOrder::Raster,
            },
            guidance: Some(GuidanceSchedule::LinearInScale),
            top_k: Some(self.var.vocab_size()),
            top_p: true,
            temperature: true,
            width: None,
            edits: vec![EditKind::Inpaint, EditKind::Outpaint, EditKind::Class],
            fill_orders: Vec::new(),
        }
    }

    fn start_part(&self, request: &SampleRequest, edit: Option<&Edit>) -> crate::Result<Box<dyn Sampling + '_>> {
        request.validate(&self.info)?;
        let n = request.classes.len();
        let (labels, guidance) = request.conditioning(edit, self.var.null_class(), &self.device());
        let config = VarSamplerConfig::new()
            .with_guidance(guidance)
            .with_top_k(request.top_k)
            .with_top_p(request.top_p)
            .with_temperature(request.temperature)
            .with_seed(request.seed);
        let mut run = VarSampling::new(&self.var, &self.vae, labels, config);
        if let Some(part) = request.part {
            run = run.part_of(part);
        }
        if let Some(e) = edit {
            run = run.with_edit(self.edit(e, n)?);
        }
        Ok(Box::new(VarRun { generator: self, run, partials: request.partials }))
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn largest_floats_per_image(&self, _: &SampleRequest) -> u64 {
        self.floats_per_image
    }
}

/// A VAR run: one step per scale.
struct VarRun<'a> {
    generator: &'a VarGenerator,
    run: VarSampling,
    partials: bool,
}

impl Sampling for VarRun<'_> {
    fn steps(&self) -> usize {
        self.run.num_scales()
    }

    fn step(&mut self) -> Option<Step> {
        let (var, vae) = (&self.generator.var, &self.generator.vae);
        let step = self.run.step(var, vae)?;
        let [_, pn, _] = step.tokens.dims();
        let partial = self.partials.then(|| ((vae.decode(step.f_hat) + 1.0) * 0.5).clamp(0.0, 1.0));
        Some(Step {
            index: step.si,
            label: format!("scale {} of {} · {pn}×{pn}", step.si + 1, self.run.num_scales()),
            chosen: Chosen::Codes { codes: step.tokens, current: Vec::new() },
            partial,
        })
    }

    fn images(&self) -> Tensor<4> {
        self.run.image(&self.generator.vae).clamp(0.0, 1.0)
    }
}
