//! RAR with its MaskGIT-VQGAN tokenizer, as an [`ImageGenerator`]: one player step per token,
//! in raster order or any [`FillOrder`]; in- and out-painting and class edits by feeding the
//! kept tokens first.

use burn::prelude::*;

use super::{Chosen, Controls, Edit, EditKind, ImageGenerator, ModelInfo, SampleRequest, Sampling, Step};
use crate::family::{Family, FillOrder, GenerationOrder, GuidanceSchedule};
use crate::generators::rar::Rar;
use crate::sampling::logits::TokenFilter;
use crate::sampling::rar::{RarSamplerConfig, RarSampling};
use crate::tokenizers::vqgan::{Vqgan, VqganConfig};

/// Gray shown where no token is chosen yet in a partial decode.
const UNKNOWN_GRAY: f32 = 0.5;

/// A RAR transformer and the tokenizer it was trained on.
pub struct RarGenerator {
    rar: Rar,
    vqgan: Vqgan,
    info: ModelInfo,
    /// Official `guidance_scale_pow` of this model's schedule (0: constant guidance).
    guidance_pow: f64,
    device: Device,
    /// [`ImageGenerator::largest_floats_per_image`]: the tokenizer's decoder (one token's logits,
    /// even for the doubled batch, are far smaller).
    floats_per_image: u64,
}

impl RarGenerator {
    /// Pairs a transformer with its tokenizer (built from `vqgan_config`, on `device`);
    /// `class_names`, `train_seconds` and `warning` come from the checkpoints. Errors when the two
    /// do not fit.
    pub fn new(
        rar: Rar,
        vqgan: Vqgan,
        vqgan_config: &VqganConfig,
        device: &Device,
        class_names: Vec<String>,
        train_seconds: Option<f64>,
        warning: Option<String>,
    ) -> crate::Result<Self> {
        let tokens = vqgan.latent_side() * vqgan.latent_side();
        if rar.codebook_size() != vqgan.codebook_size() || rar.seq_len() != tokens {
            return Err(crate::Error::Config(format!(
                "the transformer expects {} tokens from a codebook of {}, the tokenizer makes {tokens} from {}",
                rar.seq_len(),
                rar.codebook_size(),
                vqgan.codebook_size()
            )));
        }
        let info = ModelInfo {
            family: Family::Rar,
            method: "rar",
            num_classes: rar.num_classes(),
            class_names,
            channels: vqgan_config.num_channels,
            height: vqgan_config.resolution,
            width: vqgan_config.resolution,
            params: rar.num_params(),
            forward_passes: rar.seq_len(),
            train_seconds,
            warning,
        };
        let floats_per_image = vqgan_config.largest_floats_per_image();
        Ok(Self { rar, vqgan, info, guidance_pow: 0.0, device: device.clone(), floats_per_image })
    }

    /// Ramps guidance as `(1 − cos(π (s/N)^pow)) / 2` instead of holding it constant.
    pub fn with_guidance_pow(mut self, pow: f64) -> Self {
        self.guidance_pow = pow;
        self
    }

    /// The transformer, for RAR-specific tools (kernel benchmarks, the trainer).
    pub fn rar(&self) -> &Rar {
        &self.rar
    }

    /// The tokenizer, likewise.
    pub fn tokenizer(&self) -> &Vqgan {
        &self.vqgan
    }

    /// The source's codes for `n` draws, and which token cells to keep: a cell is kept when at
    /// least half of its pixels are.
    fn edit(&self, edit: &Edit, n: usize) -> crate::Result<(Tensor<2, Int>, Vec<bool>)> {
        let (c, side) = (self.info.channels, self.info.height);
        edit.check(c, side)?;
        let keep_pixels = edit.kind.keep(&edit.region);
        let cells = self.vqgan.latent_side();
        let f = side / cells;
        let keep: Vec<bool> = (0..cells * cells)
            .map(|cell| {
                let (r, col) = (cell / cells, cell % cells);
                let kept: f32 = (0..f * f).map(|i| keep_pixels[(r * f + i / f) * side + col * f + i % f]).sum();
                kept >= (f * f) as f32 / 2.0
            })
            .collect();
        if keep.iter().all(|&k| k) {
            return Err(crate::Error::Invalid("the region covers no half of any token: nothing would change".into()));
        }
        let x = Tensor::<4>::from_data(TensorData::new(edit.source.clone(), [1, c, side, side]), &self.device);
        Ok((self.vqgan.encode(x.repeat_dim(0, n)), keep))
    }

    /// Images `[B, C, H, W]` from a `[B, N]` map with −1 where nothing is chosen yet (gray there).
    fn decode(&self, tokens: Tensor<2, Int>) -> Tensor<4> {
        let [b, n] = tokens.dims();
        let (s, side, c) = (self.vqgan.latent_side(), self.info.height, self.info.channels);
        let f = side / s;
        let known = tokens.clone().greater_equal_elem(0).float().reshape([b, 1, s, 1, s, 1]);
        let known = known.expand([b, c, s, f, s, f]).reshape([b, c, side, side]);
        let images = self.vqgan.codes_to_image(tokens.clamp_min(0).reshape([b, n]));
        images * known.clone() + (known.neg() + 1.0) * UNKNOWN_GRAY
    }
}

impl ImageGenerator for RarGenerator {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn controls(&self) -> Controls {
        Controls {
            order: GenerationOrder::Raster,
            guidance: Some(GuidanceSchedule::PowCosine { power: self.guidance_pow }),
            top_k: Some(self.rar.codebook_size()),
            top_p: true,
            temperature: true,
            width: None,
            edits: vec![EditKind::Inpaint, EditKind::Outpaint, EditKind::Class],
            fill_orders: FillOrder::ALL.to_vec(),
        }
    }

    fn start_part(&self, request: &SampleRequest, edit: Option<&Edit>) -> crate::Result<Box<dyn Sampling + '_>> {
        request.validate(&self.info)?;
        let n = request.classes.len();
        let (labels, guidance) = request.conditioning(edit, self.rar.null_class(), &self.device);
        let config = RarSamplerConfig {
            guidance,
            guidance_pow: self.guidance_pow,
            filter: TokenFilter { temperature: request.temperature, top_k: request.top_k, top_p: request.top_p },
            order: request.fill_order,
            seed: request.seed,
        };
        let mut run = RarSampling::new(&self.rar, labels, config);
        if let Some(part) = request.part {
            run = run.part_of(&self.rar, part);
        }
        if let Some(e) = edit {
            let (codes, keep) = self.edit(e, n)?;
            run = run.with_kept(codes, &keep);
        }
        Ok(Box::new(RarRun { generator: self, run, partials: request.partials }))
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn largest_floats_per_image(&self, _: &SampleRequest) -> u64 {
        self.floats_per_image
    }
}

/// A RAR run: one step per token.
struct RarRun<'a> {
    generator: &'a RarGenerator,
    run: RarSampling,
    partials: bool,
}

impl Sampling for RarRun<'_> {
    fn steps(&self) -> usize {
        self.run.steps()
    }

    fn step(&mut self) -> Option<Step> {
        let g = self.generator;
        let step = self.run.step(&g.rar)?;
        let tokens = self.run.tokens();
        let [b, n] = tokens.dims();
        let side = g.rar.side();
        let cell = step.positions.first().copied().unwrap_or(0);
        // A decode per row (and at the end), not per token: 64 decoder runs would cost more than
        // the transformer's steps; the player shows the row's last decode in between.
        let row_done = (step.index + 1) % side == 0 || step.index + 1 == n;
        Some(Step {
            index: step.index,
            label: format!("token {} of {n} · row {}, column {}", step.index + 1, cell / side + 1, cell % side + 1),
            partial: (self.partials && row_done).then(|| g.decode(tokens.clone())),
            chosen: Chosen::Codes { codes: tokens.reshape([b, side, side]), current: step.positions },
        })
    }

    fn images(&self) -> Tensor<4> {
        self.generator.decode(self.run.tokens())
    }
}
