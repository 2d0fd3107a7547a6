//! The equivariant column generator with its column tokenizer, as an [`ImageGenerator`]: one
//! player step per column, any number of columns (images far wider than the training ones), and
//! continuation of a given image to the right.

use burn::prelude::*;

use super::{Chosen, Continuation, Controls, Edit, ImageGenerator, ModelInfo, SampleRequest, Sampling, Step};
use crate::family::{Family, GenerationOrder, GuidanceSchedule};
use crate::generators::equivariant::Equivariant;
use crate::sampling::equivariant::{ColumnSamplerConfig, ColumnSampling};
use crate::tokenizers::columns::{ColumnTokenizer, ColumnTokenizerConfig};

/// Gray shown right of the columns made so far in a partial decode.
const UNKNOWN_GRAY: f32 = 0.5;
/// Most columns one run may make: 64× the MNIST width. The transformer's memory does not grow
/// with the width, but the decoded image does.
pub const MAX_COLUMNS: usize = 512;

/// A column transformer and the column tokenizer it was trained on.
pub struct ColumnsGenerator {
    model: Equivariant,
    tokenizer: ColumnTokenizer,
    /// Pixels per token column.
    column_width: usize,
    /// Tokens are multiplied by this before the transformer sees them (official `vae_norm`).
    vae_norm: f64,
    info: ModelInfo,
    device: Device,
    /// The decoder's largest buffer per pixel of width (it grows with the width).
    floats_per_pixel_column: u64,
}

impl ColumnsGenerator {
    /// Pairs a transformer with its tokenizer (built from `tokenizer_config`, on `device`);
    /// `vae_norm` is the token scale the transformer was trained with; `class_names`,
    /// `train_seconds` and `warning` come from the checkpoints. Errors when the two do not fit.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        model: Equivariant,
        tokenizer: ColumnTokenizer,
        tokenizer_config: &ColumnTokenizerConfig,
        vae_norm: f64,
        device: &Device,
        class_names: Vec<String>,
        train_seconds: Option<f64>,
        warning: Option<String>,
    ) -> crate::Result<Self> {
        if model.token_dim() != tokenizer.embed_dim() {
            return Err(crate::Error::Config(format!(
                "the transformer takes column tokens of {} channels, the tokenizer makes {}",
                model.token_dim(),
                tokenizer.embed_dim()
            )));
        }
        if !(vae_norm.is_finite() && vae_norm > 0.0) {
            return Err(crate::Error::Config(format!("the token scale must be a positive number, not {vae_norm}")));
        }
        let column_width = tokenizer_config.column_width();
        let info = ModelInfo {
            family: Family::Columns,
            method: "equivariant",
            num_classes: model.class_num(),
            class_names,
            channels: tokenizer_config.out_ch,
            height: tokenizer_config.resolution,
            width: model.token_num() * column_width,
            params: model.num_params(),
            forward_passes: model.token_num(),
            train_seconds,
            warning,
        };
        let floats_per_pixel_column = tokenizer_config.largest_floats_per_image_at(1);
        Ok(Self { model, tokenizer, column_width, vae_norm, info, device: device.clone(), floats_per_pixel_column })
    }

    /// The transformer, for column-specific tools (benchmarks, the trainer).
    pub fn model(&self) -> &Equivariant {
        &self.model
    }

    /// The tokenizer, likewise.
    pub fn tokenizer(&self) -> &ColumnTokenizer {
        &self.tokenizer
    }

    /// Pixels per token column.
    pub fn column_width(&self) -> usize {
        self.column_width
    }

    /// Images `[B, C, H, total · f]` in `[0, 1]` from the first columns `[B, n, E]` (scaled
    /// tokens), gray right of them.
    fn decode(&self, tokens: Tensor<3>, total: usize) -> Tensor<4> {
        let [b, n, e] = tokens.dims();
        // The column convolutions reflect-pad: they need two columns; one is shown doubled.
        let tokens = tokens / self.vae_norm;
        let images = if n == 1 {
            let doubled = Tensor::cat(vec![tokens.clone(), tokens], 1).reshape([b, 2, e]);
            let image = self.tokenizer.decode(doubled);
            let [_, c, h, _] = image.dims();
            image.narrow(3, 0, self.column_width).reshape([b, c, h, self.column_width])
        } else {
            self.tokenizer.decode(tokens)
        };
        let images = ((images.clamp(-1.0, 1.0) + 1.0) * 0.5).reshape([b, self.info.channels, self.info.height, n * self.column_width]);
        if n >= total {
            return images;
        }
        let [_, c, h, _] = images.dims();
        let gray = Tensor::full([b, c, h, (total - n) * self.column_width], UNKNOWN_GRAY, &self.device);
        Tensor::cat(vec![images, gray], 3)
    }

    /// The first `keep` token columns of `continuation`'s image, for `n` draws, `[n, keep, E]`
    /// (scaled as the transformer takes them).
    fn prefix(&self, continuation: &Continuation, n: usize, total: usize) -> crate::Result<Tensor<3>> {
        let (c, h, f) = (self.info.channels, self.info.height, self.column_width);
        let Continuation { source, width, keep } = continuation;
        let invalid = |m: String| Err(crate::Error::Invalid(m));
        if source.len() != c * h * width {
            return invalid(format!("the image has {} values; {c}x{h}x{width} were announced", source.len()));
        }
        if *width < 2 * f || width % f != 0 {
            return invalid(format!("the image to continue must be a multiple of {f} pixels wide, at least {}", 2 * f));
        }
        let columns = width / f;
        if *keep == 0 || *keep > columns {
            return invalid(format!("keep 1 to {columns} columns of this image, not {keep}"));
        }
        if *keep >= total {
            return invalid(format!("keeping {keep} columns leaves nothing to generate in {total}"));
        }
        let x = Tensor::<4>::from_data(TensorData::new(source.clone(), [1, c, h, *width]), &self.device);
        let tokens = self.tokenizer.encode(x * 2.0 - 1.0).narrow(1, 0, *keep) * self.vae_norm;
        Ok(tokens.repeat_dim(0, n))
    }
}

impl ImageGenerator for ColumnsGenerator {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn controls(&self) -> Controls {
        Controls {
            order: GenerationOrder::ColumnByColumn,
            guidance: Some(GuidanceSchedule::LinearInStep),
            top_k: None,
            top_p: false,
            temperature: false,
            width: Some(2..=MAX_COLUMNS),
            edits: Vec::new(),
            fill_orders: Vec::new(),
        }
    }

    fn start_part(&self, request: &SampleRequest, edit: Option<&Edit>) -> crate::Result<Box<dyn Sampling + '_>> {
        request.validate(&self.info)?;
        if edit.is_some() {
            return Err(crate::Error::Invalid(
                "the column generator has no region edits: continue an image to the right instead".into(),
            ));
        }
        let total = request.width.unwrap_or(self.model.token_num());
        if !(2..=MAX_COLUMNS).contains(&total) {
            return Err(crate::Error::Invalid(format!("the width must be 2 to {MAX_COLUMNS} columns, not {total}")));
        }
        let n = request.classes.len();
        let labels = Tensor::<1, Int>::from_data(
            TensorData::new(request.classes.iter().map(|&c| c as i64).collect::<Vec<_>>(), [n]),
            &self.device,
        );
        // The app's guidance g is the official weight minus one: g = 0 is unguided, as for VAR and RAR.
        let config = ColumnSamplerConfig { cfg: 1.0 + request.guidance, seed: request.seed, ..ColumnSamplerConfig::default() };
        let mut run = ColumnSampling::new(&self.model, labels, config, total);
        if let Some(part) = request.part {
            run = run.part_of(part);
        }
        if let Some(c) = &request.continuation {
            run = run.with_prefix(self.prefix(c, n, total)?);
        }
        let kept = run.done();
        Ok(Box::new(ColumnsRun { generator: self, run, kept, partials: request.partials }))
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn largest_floats_per_image(&self, request: &SampleRequest) -> u64 {
        let columns = request.width.unwrap_or(self.model.token_num());
        self.floats_per_pixel_column * (columns * self.column_width) as u64
    }
}

/// A column run: one step per generated column (kept columns are not steps).
struct ColumnsRun<'a> {
    generator: &'a ColumnsGenerator,
    run: ColumnSampling,
    kept: usize,
    partials: bool,
}

impl Sampling for ColumnsRun<'_> {
    fn steps(&self) -> usize {
        self.run.total() - self.kept
    }

    fn step(&mut self) -> Option<Step> {
        let g = self.generator;
        self.run.step(&g.model)?;
        let (done, total) = (self.run.done(), self.run.total());
        Some(Step {
            index: done - self.kept - 1,
            label: format!("column {done} of {total}"),
            partial: self.partials.then(|| g.decode(self.run.tokens(), total)),
            chosen: Chosen::Columns { done, total },
        })
    }

    fn images(&self) -> Tensor<4> {
        self.generator.decode(self.run.tokens(), self.run.total())
    }

    /// More columns to the right, up to [`MAX_COLUMNS`] in all: the cache stays the same size,
    /// the guidance schedule's `N` grows with the run (as if it had been asked this wide).
    fn extend(&mut self, columns: usize) -> bool {
        if self.run.total() + columns > MAX_COLUMNS {
            return false;
        }
        self.run.extend(columns);
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::generators::equivariant::EquivariantConfig;

    /// A small random pair: 4 training columns of 4 px, tokens of 16.
    pub(crate) fn generator(device: &Device) -> ColumnsGenerator {
        let model = EquivariantConfig::new(4, 16, 32, 2, 2, 3)
            .with_buffer_size(2)
            .with_head_width(32)
            .with_head_depth(1)
            .with_num_sampling_steps(3)
            .with_dropout(0.0)
            .init(device);
        let tokenizer_config = ColumnTokenizerConfig::mnist();
        let tokenizer = tokenizer_config.init(device);
        ColumnsGenerator::new(model, tokenizer, &tokenizer_config, 1.0, device, Vec::new(), None, None).unwrap()
    }

    #[test]
    fn a_finished_run_extends_to_the_right_as_if_asked_that_wide() {
        let device = Device::flex();
        let g = generator(&device);
        // Unguided, so the schedule's N (which grows with the run) does not matter.
        let request = SampleRequest { classes: vec![1, 2], seed: 5, guidance: 0.0, width: Some(3), ..Default::default() };
        let mut run = g.start(&request, None).unwrap();
        assert!(run.extend(0), "a column run can extend");
        while run.step().is_some() {}
        assert_eq!(run.steps(), 3);
        assert!(run.extend(2));
        assert_eq!(run.steps(), 5, "steps count the new columns");
        let steps: Vec<(usize, String)> = std::iter::from_fn(|| run.step()).map(|s| (s.index, s.label)).collect();
        assert_eq!(steps, [(3, "column 4 of 5".to_string()), (4, "column 5 of 5".to_string())]);
        let extended = run.images();
        assert_eq!(extended.dims(), [2, 1, 32, 20]);
        let at_once = crate::generator::generate(&g, &SampleRequest { width: Some(5), ..request.clone() }).unwrap();
        let gap: f32 = (extended - at_once).abs().max().into_scalar();
        assert!(gap < 1e-5, "extended and asked-at-once images differ by {gap}");
        // Not past the model's limit; nothing changes then.
        assert!(!run.extend(MAX_COLUMNS));
        assert_eq!(run.steps(), 5);
        assert!(run.step().is_none());
    }

    #[test]
    fn extending_a_continuation_counts_only_generated_columns() {
        let device = Device::flex();
        let g = generator(&device);
        let source = vec![0.25; 32 * 16];
        let continuation = Continuation { source, width: 16, keep: 2 };
        let request = SampleRequest { classes: vec![0], width: Some(4), continuation: Some(continuation), ..Default::default() };
        let mut run = g.start(&request, None).unwrap();
        assert_eq!(run.steps(), 2, "two kept, two generated");
        while run.step().is_some() {}
        assert!(run.extend(3));
        assert_eq!(run.steps(), 5);
        let last = std::iter::from_fn(|| run.step()).last().unwrap();
        assert_eq!((last.index, last.label.as_str()), (4, "column 7 of 7"));
        assert_eq!(run.images().dims(), [1, 1, 32, 28]);
    }
}
