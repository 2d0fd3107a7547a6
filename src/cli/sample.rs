//! `tessera sample <family>`: draw images of one class from a trained generator (the shipped
//! tiny MNIST pair in `assets/` unless told otherwise).
//!
//! Writes `OUT/<class>/<i>.png` at the tokenizer's native resolution (MNIST: the 32x32 padded
//! digits the models train on, not the 28x28 crop), and with `--steps` also
//! `OUT/<class>/<i>_<step><k>_<rows>x<cols>.png` (VAR: `<i>_scale<k>_<pn>x<pn>.png`, RAR:
//! `<i>_token<k>_8x8.png`, gray where no token is chosen yet): the image decoded from the steps
//! sampled so far.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, ensure};
use burn::prelude::*;
use tessera_data::Image;
use tessera_kernels::device::Preference;
use tessera_models::family::{Family, FillOrder};
use tessera_models::generator::{Chosen, Continuation, ImageGenerator, SampleRequest};

use crate::shipped::{Shipped, load_pair};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The generator family: `var`, `rar` or `equivariant` (also `columns`).
    #[arg(value_name = "FAMILY")]
    family: Family,
    /// Class to draw (0-based label, e.g. the digit for MNIST).
    #[arg(long)]
    class: usize,
    /// Number of images (drawn together, as one batch; at most 1024).
    #[arg(long, default_value_t = 8, value_parser = super::images)]
    n: usize,
    /// Seed of the sampling stream: the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder; images go to OUT/<class>/<i>.png.
    #[arg(long, default_value = "samples")]
    out: PathBuf,
    #[command(flatten)]
    model: ModelArgs,
    /// Classifier-free guidance (0 = none; VAR's official demo uses 4, FID runs 1.5).
    #[arg(long, default_value_t = 2.0, value_parser = super::finite)]
    guidance: f64,
    /// Keep only the K most likely codes (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Nucleus sampling: keep the most likely codes up to this probability mass (0 = off).
    #[arg(long, default_value_t = 0.0, value_parser = super::finite)]
    top_p: f64,
    /// Divide the logits by this before sampling (1 = as trained).
    #[arg(long, default_value_t = 1.0, value_parser = super::finite)]
    temperature: f64,
    /// Also write the partial image after every step.
    #[arg(long)]
    steps: bool,
    /// The order to fill the token map in: raster, random, spiral or centre-out (RAR; VAR
    /// generates scale by scale).
    #[arg(long, default_value_t = FillOrder::Raster)]
    order: FillOrder,
    /// Token columns to draw (the column generator; default: its training width). Far wider than
    /// training works: the transformer's memory does not grow with the width.
    #[arg(long, value_name = "COLUMNS")]
    width: Option<usize>,
    /// Continue this picture to the right (the column generator): it is scaled to the model's
    /// height and its first --keep columns are kept.
    #[arg(long = "continue", value_name = "FILE")]
    continue_from: Option<PathBuf>,
    /// Token columns of the --continue picture to keep (default: half of them).
    #[arg(long, value_name = "K")]
    keep: Option<usize>,
}

/// Which checkpoints to load; the family's shipped pair by default.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// A shipped pair by name (default: the family's first): `columns-scenes` draws landscapes
    /// with the column generator, `columns-mnist` digits.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["checkpoint", "tokenizer"])]
    model: Option<String>,
    /// The generator checkpoint (default: the family's shipped model).
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// The tokenizer checkpoint (default: the family's shipped tokenizer).
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

impl ModelArgs {
    /// The named checkpoints, else `family`'s shipped pair from `assets/` (so a retrained file
    /// there is used without a rebuild); the loaded model must be of `family`.
    pub(crate) fn load(&self, family: Family, device: &Device) -> anyhow::Result<Arc<dyn ImageGenerator>> {
        let default = || match &self.model {
            Some(name) => Shipped::named(name)
                .filter(|s| s.family == family)
                .with_context(|| format!("no shipped {family} model is called {name:?} (shipped: {})", Shipped::names())),
            None => Shipped::of(family).with_context(|| format!("{family} has no shipped model yet: pass --checkpoint and --tokenizer")),
        };
        let generator = match &self.checkpoint {
            Some(path) => path.clone(),
            None => shipped(default()?.generator_path),
        };
        let tokenizer = match &self.tokenizer {
            Some(path) => path.clone(),
            None => shipped(default()?.tokenizer_path),
        };
        let model = load_files(&generator, &tokenizer, device)?;
        let loaded = model.info().family;
        ensure!(loaded == family, "{} holds a {loaded} model, not a {family} one", generator.display());
        Ok(model)
    }
}

/// Loads a generator and its tokenizer from files; warns (on stderr) when they were not
/// trained together.
pub(crate) fn load_files(generator: &Path, tokenizer: &Path, device: &Device) -> anyhow::Result<Arc<dyn ImageGenerator>> {
    let read = |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let model = load_pair(&read(generator)?, &read(tokenizer)?, device)
        .with_context(|| format!("loading {} with {}", generator.display(), tokenizer.display()))?;
    if let Some(warning) = &model.info().warning {
        eprintln!("warning: {warning} ({} with {})", generator.display(), tokenizer.display());
    }
    Ok(model)
}

/// A shipped asset: relative to the working directory, else to the source tree.
pub(crate) fn shipped(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() { here } else { Path::new(env!("CARGO_MANIFEST_DIR")).join(relative) }
}

pub fn run(args: Args, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    ensure!(args.n >= 1, "--n must be at least 1");
    ensure!((0.0..=1.0).contains(&args.top_p), "--top-p must be in [0, 1]");
    let (device, described) = super::work_device(preference, "sample")?;
    let generator = args.model.load(args.family, &device)?;
    let continuation = match &args.continue_from {
        Some(path) => Some(continuation(path, args.keep, generator.as_ref())?),
        None => {
            ensure!(args.keep.is_none(), "--keep needs --continue FILE");
            None
        }
    };
    ensure!(
        args.width.is_none() || generator.controls().width.is_some(),
        "{} models draw their training width only: --width does not apply",
        args.family
    );
    let request = SampleRequest {
        width: args.width,
        continuation,
        classes: vec![args.class; args.n],
        seed: args.seed,
        guidance: args.guidance,
        top_k: args.top_k,
        top_p: args.top_p,
        temperature: args.temperature,
        partials: args.steps,
        fill_order: args.order,
        ..Default::default()
    };
    let offered = generator.controls().fill_orders;
    ensure!(
        args.order == FillOrder::Raster || offered.contains(&args.order),
        "{} models generate in one order only: --order does not apply",
        args.family
    );
    let step_name = generator.controls().order.step_name();
    tessera_models::generator::check_fits(generator.as_ref(), &request, tessera_kernels::buffer_limit(&device))?;
    let mut run = generator.start(&request, None)?;

    let dir = args.out.join(args.class.to_string());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut partials = 0;
    while let Some(step) = run.step() {
        let Some(partial) = step.partial else { continue };
        let size = match &step.chosen {
            Chosen::Codes { codes, .. } => format!("{}x{}", codes.dims()[1], codes.dims()[2]),
            Chosen::Columns { done, total } => format!("{done}of{total}"),
        };
        for (i, image) in images(partial).iter().enumerate() {
            write_png(image, &dir.join(format!("{i}_{step_name}{}_{size}.png", step.index)))?;
        }
        partials += 1;
    }
    for (i, image) in images(run.images()).iter().enumerate() {
        write_png(image, &dir.join(format!("{i}.png")))?;
    }
    let info = generator.info();
    let name = info.class_names.get(args.class).map(|n| format!(" ({n})")).unwrap_or_default();
    println!(
        "{} image(s) of class {}{name} written to {} on {}{}",
        args.n,
        args.class,
        dir.display(),
        described,
        if args.steps { format!(", with {partials} partial decodes each") } else { String::new() }
    );
    Ok(())
}

/// The picture at `path` as a continuation for `generator`: converted to its channels, scaled to
/// its height (keeping the aspect ratio) and cropped to whole columns.
fn continuation(path: &Path, keep: Option<usize>, generator: &dyn ImageGenerator) -> anyhow::Result<Continuation> {
    let info = generator.info();
    ensure!(generator.controls().width.is_some(), "{} models cannot continue a picture: --continue is for the column generator", info.family);
    let column = info.width / info.forward_passes.max(1);
    let picture = image::open(path).with_context(|| format!("reading {} (not an image?)", path.display()))?;
    let (h, w) = (info.height as u32, picture.width() as u64 * info.height as u64 / picture.height().max(1) as u64);
    let width = (w as usize / column) * column;
    ensure!(width >= 2 * column, "{} is too narrow to continue: at least {} pixels wide at height {h}", path.display(), 2 * column);
    let picture = picture.resize_exact(width as u32, h, image::imageops::FilterType::Triangle);
    let source = Image::from_dynamic_image(&picture, info.channels).pixels;
    let columns = width / column;
    let keep = keep.unwrap_or(columns / 2).max(1);
    ensure!(keep <= columns, "--keep {keep}: {} has {columns} columns at this height", path.display());
    Ok(Continuation { source, width, keep })
}

/// `[B, C, H, W]` in `[0, 1]` → images.
pub(crate) fn images(t: Tensor<4>) -> Vec<Image> {
    let [b, c, h, w] = t.dims();
    let values = t.clamp(0.0, 1.0).into_data().try_to_vec::<f32>().expect("f32 images");
    values.chunks(c * h * w).take(b).map(|px| Image::new(c, h, w, px.to_vec())).collect()
}

pub(crate) fn write_png(image: &Image, path: &Path) -> anyhow::Result<()> {
    std::fs::write(path, image.to_png_bytes()).with_context(|| format!("writing {}", path.display()))
}
