//! The one model type the app, CLI and eval see: a trained generator with its tokenizer
//! ([`ImageGenerator`]), and one sampling run advanced a player step at a time ([`Sampling`]).
//!
//! Each family keeps its own explicit sampler (`VarSampling::step(&var, &vae)`); a small adapter
//! per family ([`var::VarGenerator`]) implements these traits. Nothing here reads a tensor back:
//! the caller reads each [`Step`] asynchronously (the browser can do nothing else).

pub mod columns;
pub mod rar;
mod side_by_side;
pub mod var;

use burn::prelude::*;

use crate::family::{Family, FillOrder, GenerationOrder, GuidanceSchedule};
use crate::rng::BatchPart;

/// What a loaded generator is: shown in the app, printed by the CLI, reported by eval.
#[derive(Clone, Debug)]
pub struct ModelInfo {
    pub family: Family,
    /// The method as eval reports it: `"var"`, `"raster-ar"` (VAR's transformer in next-token
    /// order), later `"rar"`, `"equivariant"`.
    pub method: &'static str,
    /// Class names from the training config (MNIST: the digits); empty when the file has none.
    pub class_names: Vec<String>,
    pub num_classes: usize,
    /// Image shape, channels × height × width (width: the default for wide-capable models).
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Parameters of the generator proper (the tokenizer not counted, as the papers report).
    pub params: usize,
    /// Forward passes of the generator per image (VAR: one per scale; raster order: one per token).
    pub forward_passes: usize,
    /// Wall time of both training runs, when both checkpoints record it.
    pub train_seconds: Option<f64>,
    /// Set when something is off but sampling still works (e.g. the transformer was trained with
    /// another tokenizer than this one).
    pub warning: Option<String>,
}

impl ModelInfo {
    /// A clear error for a class the model does not have.
    pub fn check_class(&self, class: usize) -> crate::Result<()> {
        if class >= self.num_classes {
            let names = if self.class_names.is_empty() { String::new() } else { format!(" ({})", self.class_names.join(", ")) };
            return Err(crate::Error::Invalid(format!(
                "class {class} is out of range: this model has classes 0 to {}{names}",
                self.num_classes.saturating_sub(1)
            )));
        }
        Ok(())
    }

    /// The name of class `class` (its number when the checkpoint has no names).
    pub fn class_name(&self, class: usize) -> String {
        self.class_names.get(class).cloned().unwrap_or_else(|| class.to_string())
    }
}

/// Which settings apply to a model: the app shows only these, the CLI rejects the others.
#[derive(Clone, Debug, PartialEq)]
pub struct Controls {
    pub order: GenerationOrder,
    /// Classifier-free guidance and how it ramps; `None`: the model has no guidance.
    pub guidance: Option<GuidanceSchedule>,
    /// Top-k (up to the codebook size given here) and top-p filters: only where the next token is
    /// a discrete choice.
    pub top_k: Option<usize>,
    pub top_p: bool,
    pub temperature: bool,
    /// How many token columns the model can draw (the column generator; each column is
    /// `width / training columns` pixels wide); `None`: its training width only.
    pub width: Option<std::ops::RangeInclusive<usize>>,
    /// Zero-shot edits it offers (the Edit tab appears when there are any).
    pub edits: Vec<EditKind>,
    /// Orders it can fill its token map in, the one it was trained for first; empty: its own
    /// order only.
    pub fill_orders: Vec<FillOrder>,
}

/// Zero-shot edits over a region the user chose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EditKind {
    /// Regenerate the region, keep the rest.
    #[default]
    Inpaint,
    /// Keep the region, regenerate everything around it.
    Outpaint,
    /// Regenerate the region as a given class, keep the rest.
    Class,
}

impl EditKind {
    /// Keep-mask for a region (row-major, true inside), 1 = keep the source: in-painting and
    /// class editing keep what is outside the region, out-painting keeps what is inside.
    pub fn keep(self, region: &[bool]) -> Vec<f32> {
        let keep_inside = self == Self::Outpaint;
        region.iter().map(|&inside| if inside == keep_inside { 1.0 } else { 0.0 }).collect()
    }

    /// Class label and guidance to sample with: in- and out-painting are unconditional (the null
    /// class, no guidance), class editing uses `class` with `guidance`, as VAR's notebook does.
    pub fn conditioning(self, class: usize, null_class: usize, guidance: f64) -> (usize, f64) {
        match self {
            Self::Class => (class, guidance),
            Self::Inpaint | Self::Outpaint => (null_class, 0.0),
        }
    }
}

/// A zero-shot edit of a source image.
#[derive(Clone, Debug)]
pub struct Edit {
    /// The source, `[C, H, W]` values in `[0, 1]` row-major, at the model's resolution.
    pub source: Vec<f32>,
    /// Row-major `H × W`, true inside the painted region.
    pub region: Vec<bool>,
    pub kind: EditKind,
}

impl Edit {
    /// Errors unless the source is `channels × side × side` and the region `side × side`.
    pub fn check(&self, channels: usize, side: usize) -> crate::Result<()> {
        let invalid = |m: String| Err(crate::Error::Invalid(m));
        if self.source.len() != channels * side * side {
            return invalid(format!("the image has {} values; this model edits {channels}x{side}x{side} images", self.source.len()));
        }
        if self.region.len() != side * side {
            return invalid(format!("the region has {} pixels, the image {}", self.region.len(), side * side));
        }
        Ok(())
    }
}

/// One sampling run's settings. Settings a model's [`Controls`] leave out are ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleRequest {
    /// One class per image.
    pub classes: Vec<usize>,
    pub seed: u64,
    /// Classifier-free guidance (0 = none).
    pub guidance: f64,
    /// Keep the k most likely codes (0 = all).
    pub top_k: usize,
    /// Nucleus mass (0 = off).
    pub top_p: f64,
    /// Divides the logits (1 = as trained).
    pub temperature: f64,
    /// Decode partial images as the run goes (the player: every step, or every row for RAR); off,
    /// only the final images are made.
    pub partials: bool,
    /// The order to fill the token map in, for models that offer a choice (`Controls::fill_orders`).
    pub fill_order: FillOrder,
    /// Columns to generate, for models that draw any width (`Controls::width`); `None`: the
    /// training width.
    pub width: Option<usize>,
    /// Keep the left part of an image and generate the rest (the column generator).
    pub continuation: Option<Continuation>,
    /// Set on the parts [`ImageGenerator::start`] splits a batch into: where these images sit in
    /// the whole batch, so that they draw what they would there. `None`: the request is the batch.
    pub part: Option<BatchPart>,
}

/// An image to continue to the right: its first `keep` columns of tokens are kept.
#[derive(Clone, Debug, PartialEq)]
pub struct Continuation {
    /// `[C, H, W]` values in `[0, 1]`, row-major, at the model's height.
    pub source: Vec<f32>,
    /// W, in pixels.
    pub width: usize,
    /// Token columns to keep from the left (each is `column_width` pixels wide).
    pub keep: usize,
}

impl Default for SampleRequest {
    /// No images yet, guidance 1.5, no filters, no partials: fill in what differs with
    /// `SampleRequest { classes, seed, ..Default::default() }`.
    fn default() -> Self {
        Self {
            classes: Vec::new(),
            seed: 0,
            guidance: 1.5,
            top_k: 0,
            top_p: 0.0,
            temperature: 1.0,
            partials: false,
            fill_order: FillOrder::Raster,
            width: None,
            continuation: None,
            part: None,
        }
    }
}

impl SampleRequest {
    /// The labels `[B]` to sample (on `device`) and the guidance to sample them with: the asked
    /// classes, or for an edit what its kind conditions on (the null class `null_class` and no
    /// guidance for in- and out-painting).
    pub fn conditioning(&self, edit: Option<&Edit>, null_class: usize, device: &Device) -> (Tensor<1, Int>, f64) {
        let mut guidance = self.guidance;
        let labels: Vec<i64> = self
            .classes
            .iter()
            .map(|&class| match edit {
                Some(e) => {
                    let (class, g) = e.kind.conditioning(class, null_class, self.guidance);
                    guidance = g;
                    class as i64
                }
                None => class as i64,
            })
            .collect();
        let n = labels.len();
        (Tensor::from_data(TensorData::new(labels, [n]), device), guidance)
    }


    /// Checks the settings any model needs to be sane: a clear error, not a blank image.
    pub fn validate(&self, info: &ModelInfo) -> crate::Result<()> {
        if self.classes.is_empty() {
            return Err(crate::Error::Invalid("no images asked for".into()));
        }
        if self.classes.len() > MAX_IMAGES {
            return Err(crate::Error::Invalid(format!("{} images asked for at once, at most {MAX_IMAGES} are drawn together", self.classes.len())));
        }
        for &class in &self.classes {
            info.check_class(class)?;
        }
        for (name, value) in [("guidance", self.guidance), ("top-p", self.top_p), ("temperature", self.temperature)] {
            if !value.is_finite() {
                return Err(crate::Error::Invalid(format!("{name} must be a finite number, not {value}")));
            }
        }
        if self.temperature <= 0.0 {
            return Err(crate::Error::Invalid(format!("temperature must be above 0, not {}", self.temperature)));
        }
        Ok(())
    }
}

/// The most images one request draws together (one batch).
pub const MAX_IMAGES: usize = 1024;

/// A trained generator with its tokenizer, ready to sample.
pub trait ImageGenerator: Send + Sync {
    fn info(&self) -> &ModelInfo;
    fn controls(&self) -> Controls;
    /// Starts a sampling run (an edit of `edit`'s source when given). Errors: classes out of range,
    /// settings that are not finite, an edit the model does not offer or whose source does not fit.
    ///
    /// On the CPU the batch is split into one part per core, each its own run, and the parts
    /// advance side by side ([`side_by_side`]): the same images as the whole batch's, faster.
    fn start(&self, request: &SampleRequest, edit: Option<&Edit>) -> crate::Result<Box<dyn Sampling + '_>> {
        request.validate(self.info())?;
        let parts = tessera_kernels::cpu::batch_parts(&self.device(), request.classes.len());
        if parts < 2 || request.part.is_some() {
            return self.start_part(request, edit);
        }
        side_by_side::start(self, request, edit, parts)
    }
    /// [`ImageGenerator::start`] for the whole of `request`'s batch in one run (with
    /// `request.part`, a part of a larger batch): what each family implements.
    fn start_part(&self, request: &SampleRequest, edit: Option<&Edit>) -> crate::Result<Box<dyn Sampling + '_>>;
    /// The device the weights live on.
    fn device(&self) -> Device;
    /// Floats per image of the largest tensor sampling `request` holds ([`crate::memory`]; the
    /// transformer's with guidance's doubled batch, the decoder's for the images themselves).
    fn largest_floats_per_image(&self, request: &SampleRequest) -> u64;
}

/// Errors, saying how many images would fit, unless sampling `request` stays within a GPU's
/// largest buffer of `limit` bytes (`None`: the CPU backend, no limit). Checked before a
/// generation starts: wgpu answers a too-large buffer with a panic.
pub fn check_fits(generator: &dyn ImageGenerator, request: &SampleRequest, limit: Option<u64>) -> crate::Result<()> {
    crate::memory::check("a generation", request.classes.len(), "images", generator.largest_floats_per_image(request), limit).map_err(crate::Error::Invalid)
}

/// One sampling run, advanced one player step at a time; nothing is read back. `Sync`: the parts
/// of a batch split over the CPU's cores decode their images side by side (`side_by_side`).
pub trait Sampling: Send + Sync {
    /// Player steps in the whole run (VAR: scales; RAR: tokens or rows; columns: columns).
    fn steps(&self) -> usize;
    /// The next step, or `None` once the run is done.
    fn step(&mut self) -> Option<Step>;
    /// The images `[B, C, H, W]` in `[0, 1]` from everything generated so far.
    fn images(&self) -> Tensor<4>;
    /// Makes the run `columns` steps longer, so that a finished run goes on where it stopped (the
    /// column generator: `columns` more columns to the right, from its bounded cache; only the
    /// image grows). [`Self::steps`] counts them from then on. `false`, and nothing changes, when
    /// the model cannot extend a run or the run would pass the model's limit; `extend(0)` asks
    /// whether the run can extend at all.
    fn extend(&mut self, columns: usize) -> bool {
        let _ = columns;
        false
    }
}

/// What one step of a run produced, for the player.
#[derive(Clone, Debug)]
pub struct Step {
    /// 0-based.
    pub index: usize,
    /// "scale 4 of 7 · 5×5" and the like.
    pub label: String,
    pub chosen: Chosen,
    /// The images decoded from everything so far `[B, C, H, W]` in `[0, 1]`, when partials were asked
    /// for (RAR decodes at the end of each row only; its other steps have none).
    pub partial: Option<Tensor<4>>,
}

/// The tokens a step chose.
#[derive(Clone, Debug)]
pub enum Chosen {
    /// A discrete token map `[B, rows, cols]`, −1 where nothing is chosen yet; `current` holds, per
    /// image, the cell (row-major) this step chose (RAR), and is empty when the step chose the
    /// whole map (VAR's scales).
    Codes { codes: Tensor<3, Int>, current: Vec<usize> },
    /// Continuous column tokens: `done` of `total` columns generated.
    Columns { done: usize, total: usize },
}

/// Runs a whole sampling run without partial decodes and returns its images `[B, C, H, W]` in
/// `[0, 1]`: what eval and the benchmarks measure. Lazy: nothing is read back.
pub fn generate(generator: &dyn ImageGenerator, request: &SampleRequest) -> crate::Result<Tensor<4>> {
    let request = SampleRequest { partials: false, ..request.clone() };
    let mut run = generator.start(&request, None)?;
    while run.step().is_some() {}
    Ok(run.images())
}
