//! `tessera eval`: how good the shipped models are, measured with the shipped judge.
//!
//! For each shipped model: `per_class` samples of every class, judged; class accuracy, FID,
//! precision / recall (k = 3) against the judge's features of the held-out real images, the
//! distinct fraction, images per second at batch 64, training time. Two sanity rows frame the
//! numbers: train-split real images (the floor a perfect generator would reach with the same
//! number of images) and uniform noise (the ceiling).
//!
//! `--checkpoint FILE --tokenizer FILE` measures that pair instead of the shipped ones (any
//! family). The judge is the shipped one of the data set the images are (`--dataset`; by default
//! MNIST for grey images, the scenes for colour); shipped models whose images another judge takes
//! are left out of a run, with a note.
//!
//! Models that draw images wider than they were trained on (the column generator) also get the
//! wide-image rows ([`tessera_eval::wide`]): images 1, 4, 8 and 16 times the training width
//! (`--widths`), cut into training-width windows side by side (stride = window, no overlap),
//! each window judged: the windows' class accuracy (overall, worst and last position) and their
//! FID against the real training-width images, beside the 1× FID.
//!
//! `--claims` runs the paper-claim experiments that exist so far (VAR against its raster-order
//! baseline and RAR, VAR's guidance / top-k ablation, RAR's randomness annealing and sampling
//! orders) and prints their table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use burn::prelude::*;
use pollster::block_on;
use tessera_data::{Dataset, Mnist, Scenes, ScenesConfig};
use tessera_eval::report::{JudgeRow, ModelRow, Report, SanityRow, WideRow};
use tessera_eval::{Features, Quality, WIDTH_MULTIPLES, balanced_labels, judge_dataset, measure_generator, measure_widths, noise_images};
use tessera_kernels::device::Preference;
use tessera_models::family::{Family, FillOrder};
use tessera_models::generator::{ImageGenerator, SampleRequest};
use tessera_models::generators::equivariant::EquivariantConfig;
use tessera_models::judge::Judge;
use tessera_train::Checkpoint;
use tessera_train::data::first_of_each_class;
use tessera_train::judge::load_judge;

use super::bench::sampling_seconds;
use super::data::DatasetSource;
use super::sample::{load_files, shipped};
use crate::shipped::{SHIPPED, Shipped};
use super::train::HELDOUT_ACCURACY;

/// The shipped MNIST judge.
pub const SHIPPED_JUDGE_MNIST: &str = "assets/judge-mnist/judge.ckpt";
/// The shipped judge of the procedural scenes (32×32 RGB, six classes).
pub const SHIPPED_JUDGE_SCENES: &str = "assets/judge-scenes/judge.ckpt";
/// The raster-order baseline of claim 1 (VAR's transformer in next-token order, var-tiny's tokenizer).
pub const SHIPPED_RASTER_AR: &str = "assets/raster-ar-tiny/var.ckpt";
/// Seed of the evaluation's sampling streams: every run of `tessera eval` draws the same images.
const EVAL_SEED: u64 = 2024;
/// Guidance of the report's VAR rows: on var-tiny, 1 keeps 99% class accuracy with the best FID;
/// 2 trades recall for precision (`tessera eval --claims`, BENCHMARKS.md).
const EVAL_GUIDANCE: f64 = 1.0;
/// Guidance of the RAR rows, on RAR's own scale (the official `guidance_scale`: 1 is none),
/// constant over the steps (`pow` 0, the official README's demo). On rar-tiny (200 images):
/// 1 gives 91% class accuracy and FID 50, 1.5 97% / 40, 1.75 99.5% / 41, 2 100% / 59, 3 99.5% / 78.
const RAR_EVAL_GUIDANCE: f64 = 1.75;
/// Guidance of the column generator's rows, on the app's scale (official weight − 1, linear
/// over the columns). On columns-mnist (500 images): 2 gives 93.0% class accuracy and FID 51.5,
/// 3 96.2% / 55.9; 4 98.3% / 71.9 (300 images).
const COLUMNS_EVAL_GUIDANCE: f64 = 3.0;
/// RAR's claim models: rar-tiny's transformer trained with the same budget and tokenizer but
/// with the random-order probability held at 0 (raster only) and at 1 (random only).
pub const SHIPPED_RAR_RASTER_ONLY: &str = "assets/rar-claims/rar-r0.ckpt";
pub const SHIPPED_RAR_RANDOM_ONLY: &str = "assets/rar-claims/rar-r1.ckpt";
/// The column generator's claim models: columns-mnist's transformer trained with the same
/// budget and tokenizer but with full causal attention (window 0), without the RoPE shift, and
/// on the first half of the columns only.
pub const SHIPPED_COLUMNS_FULL_CAUSAL: &str = "assets/columns-claims/full-causal.ckpt";
pub const SHIPPED_COLUMNS_NO_SHIFT: &str = "assets/columns-claims/no-rope-shift.ckpt";
pub const SHIPPED_COLUMNS_HALF: &str = "assets/columns-claims/half-columns.ckpt";
/// Images per judge / generator call.
const BATCH: usize = 64;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the report as JSON instead of markdown.
    #[arg(long)]
    json: bool,
    /// 20 images per class instead of 100 (a quick check; FID is biased upwards by few images).
    #[arg(long)]
    quick: bool,
    /// Images per class (overrides --quick's and the default 100).
    #[arg(long, value_parser = super::positive)]
    per_class: Option<usize>,
    /// The judge checkpoint (default: the shipped MNIST judge).
    #[arg(long)]
    judge: Option<PathBuf>,
    /// Run the paper-claim experiments instead of the model report.
    #[arg(long)]
    claims: bool,
    /// Guidance of every model row instead of each family's default (on the family's own scale).
    #[arg(long, value_parser = super::finite)]
    guidance: Option<f64>,
    /// Measure this generator checkpoint (with --tokenizer) instead of the shipped models.
    #[arg(long, requires = "tokenizer", conflicts_with = "claims")]
    checkpoint: Option<PathBuf>,
    /// The tokenizer checkpoint of --checkpoint.
    #[arg(long, requires = "checkpoint")]
    tokenizer: Option<PathBuf>,
    /// The data set the judge knows, `mnist` or `scenes` (default: with --checkpoint, what the
    /// model's images are, grey MNIST or colour scenes; else mnist). Its shipped judge is used
    /// unless --judge names one.
    #[arg(long, value_name = "mnist|scenes")]
    dataset: Option<DatasetSource>,
    /// Width multiples of the wide-image rows of models that draw wider images (the column
    /// generator): each image this many times the training width, cut into training-width
    /// windows. 1 is always measured (the other FIDs are read against it).
    #[arg(long, value_delimiter = ',', default_values_t = WIDTH_MULTIPLES)]
    widths: Vec<usize>,
}

/// A data set's name, training split and held-out split.
pub(crate) type JudgedSets = (&'static str, Box<dyn Dataset>, Box<dyn Dataset>);

/// The training and held-out splits a judge of `source` learns from and is measured on.
pub(crate) fn judged_sets(source: &DatasetSource) -> anyhow::Result<JudgedSets> {
    Ok(match source {
        DatasetSource::Mnist => ("mnist", Box::new(Mnist::train()), Box::new(Mnist::heldout())),
        // Procedural: another seed is another, unseen set of scenes.
        DatasetSource::Scenes => (
            "scenes",
            Box::new(Scenes::new(ScenesConfig { height: 32, width: 32, len: 12_000, seed: 0 })?),
            Box::new(Scenes::new(ScenesConfig { height: 32, width: 32, len: 1_200, seed: 1 })?),
        ),
        DatasetSource::Folder(path) => bail!(
            "a judge needs a held-out split; {} is a folder (use mnist or scenes)",
            path.display()
        ),
    })
}

pub fn run(args: Args, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let compute = super::compute(preference)?;
    let device = compute.device.clone();
    let per_class = args.per_class.unwrap_or(if args.quick { 20 } else { 100 });
    anyhow::ensure!(per_class >= 2, "--per-class must be at least 2");
    anyhow::ensure!(args.widths.iter().all(|&w| w >= 1), "--widths are multiples of the training width: 1 or more");
    let progress = |what: &str| eprintln!("eval: {what}");

    // The models: the named pair, or every shipped one (loaded lazily below).
    let named = match (&args.checkpoint, &args.tokenizer) {
        (Some(generator), Some(tokenizer)) => Some((file_name(generator), load_files(generator, tokenizer, &device)?)),
        _ => None,
    };
    let source = match (&args.dataset, &named) {
        (Some(source), _) => source.clone(),
        (None, Some((_, generator))) if generator.info().channels != 1 => DatasetSource::Scenes,
        _ => DatasetSource::Mnist,
    };
    let judged = Judged::open(&source, args.judge.as_deref(), &device)?;

    let report = if args.claims {
        let (models, wide) = claims(&judged, per_class, &args.widths, &device, compute.describe(), &progress)?;
        Report { judge: judged.row(), models, sanity: Vec::new(), wide }
    } else {
        let models: Vec<(String, Arc<dyn ImageGenerator>)> = match named {
            Some((name, generator)) => {
                if let Some(why) = judged.misfit(generator.as_ref()) {
                    bail!("the {} judge cannot judge {name}: {why}", judged.dataset);
                }
                vec![(name, generator)]
            }
            None => {
                let mut models = Vec::new();
                for model in SHIPPED {
                    let generator = load_files(&shipped(model.generator_path), &shipped(model.tokenizer_path), &device)?;
                    match judged.misfit(generator.as_ref()) {
                        None => models.push((model.name.to_string(), generator)),
                        Some(why) => eprintln!("eval: leaving out {}: {why} (evaluate it with --dataset)", model.name),
                    }
                }
                models
            }
        };
        progress("sanity rows");
        let sanity = sanity_rows(&judged.judge, &judged.real, judged.train.as_ref(), per_class, &device)?;
        let (mut rows, mut wide) = (Vec::new(), Vec::new());
        for (name, generator) in &models {
            progress(name);
            let mut sampler = eval_sampler(generator.info().family);
            sampler.guidance = args.guidance.unwrap_or(sampler.guidance);
            let speed = BATCH as f64 / sampling_seconds(generator.as_ref(), &sampler, BATCH, if args.quick { 1 } else { 3 })?;
            rows.push(model_row(name, generator.as_ref(), &sampler, &judged.judge, &judged.real, per_class, speed, compute.describe())?);
            if generator.controls().width.is_some() {
                wide.extend(wide_rows(name, generator.as_ref(), &sampler, &judged, per_class, &args.widths, &progress)?);
            }
        }
        Report { judge: judged.row(), models: rows, sanity, wide }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
}

/// A checkpoint's name in the report: its file name without the extensions.
fn file_name(path: &Path) -> String {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    name.split('.').next().unwrap_or(&name).to_string()
}

/// A judge with what it is measured against: its data set's training split (the floor row),
/// the held-out split's features (what every FID is against) and its held-out accuracy.
pub(crate) struct Judged {
    /// `mnist` or `scenes`.
    pub dataset: &'static str,
    pub judge: Judge,
    pub real: Features,
    pub train: Box<dyn Dataset>,
    pub heldout: Box<dyn Dataset>,
    pub heldout_accuracy: f64,
}

impl Judged {
    /// The judge in `path` (default: the shipped judge of `source`), checked against `source`'s
    /// images, with the held-out split's features.
    pub(crate) fn open(source: &DatasetSource, path: Option<&Path>, device: &Device) -> anyhow::Result<Self> {
        let (dataset, train, heldout) = judged_sets(source)?;
        let default = if dataset == "scenes" { SHIPPED_JUDGE_SCENES } else { SHIPPED_JUDGE_MNIST };
        let path = path.map_or_else(|| shipped(default), Path::to_path_buf);
        let (judge, heldout_accuracy) = open_judge(&path, heldout.as_ref(), device)?;
        let all: Vec<usize> = (0..heldout.len()).collect();
        let real = block_on(judge_dataset(&judge, heldout.as_ref(), &all, BATCH, device))?.features;
        Ok(Self { dataset, judge, real, train, heldout, heldout_accuracy })
    }

    fn row(&self) -> JudgeRow {
        JudgeRow { dataset: self.dataset.into(), heldout_accuracy: self.heldout_accuracy, heldout_images: self.heldout.len() }
    }

    /// Why the judge cannot judge `generator`'s images (channels, height or classes differ), if so.
    pub(crate) fn misfit(&self, generator: &dyn ImageGenerator) -> Option<String> {
        let info = generator.info();
        let like = self.heldout.as_ref();
        let (images, theirs) = ((info.channels, info.height, info.num_classes), (like.channels(), like.height(), like.class_names().len()));
        (images != theirs).then(|| {
            format!(
                "it draws {}-channel {} px high images of {} classes, {} has {}-channel {} px images of {} classes",
                images.0, images.1, images.2, self.dataset, theirs.0, theirs.1, theirs.2
            )
        })
    }
}

/// The wide-image rows of a model that draws wider images: `per_class` windows of each class at
/// 1× and at each of `widths` times the training width, from the eval's seed (the 1× row measures
/// the same images as the model's own row). For `--claims` rows as much as for the report.
pub(crate) fn wide_rows(
    name: &str,
    generator: &dyn ImageGenerator,
    sampler: &SampleRequest,
    judged: &Judged,
    per_class: usize,
    widths: &[usize],
    progress: &dyn Fn(&str),
) -> anyhow::Result<Vec<WideRow>> {
    let heard = |w: usize| progress(&format!("{name}, {w}x the training width, window by window"));
    let measured = block_on(measure_widths(generator, sampler, &judged.judge, &judged.real, per_class, widths, BATCH, EVAL_SEED, &heard))?;
    Ok(WideRow::from_widths(name, generator.info().method, &describe(generator.info().family, sampler), measured))
}

/// The judge in `path`, checked to take images like `like`'s, and its held-out accuracy.
fn open_judge(path: &Path, like: &dyn Dataset, device: &Device) -> anyhow::Result<(Judge, f64)> {
    let file = Checkpoint::load(path).with_context(|| format!("reading the judge {}", path.display()))?;
    let (config, judge, _) = load_judge(&file, device).with_context(|| format!("loading the judge {}", path.display()))?;
    // Say so before a shape panics.
    let expected = (like.channels(), like.height(), like.class_names().len());
    if (config.channels, config.image_size, config.num_classes) != expected {
        bail!(
            "{} judges {}-channel {}px images of {} classes; {} has {}-channel {}px images of {} classes",
            path.display(),
            config.channels,
            config.image_size,
            config.num_classes,
            like.name(),
            expected.0,
            expected.1,
            expected.2
        );
    }
    let accuracy = file
        .header
        .metrics
        .get(HELDOUT_ACCURACY)
        .copied()
        .with_context(|| format!("{} records no held-out accuracy (was its training finished?)", path.display()))?;
    Ok((judge, accuracy))
}

/// The report's sampler for a family: its guidance, no filters.
fn eval_sampler(family: Family) -> SampleRequest {
    let guidance = match family {
        Family::Var => EVAL_GUIDANCE,
        Family::Rar => RAR_EVAL_GUIDANCE,
        Family::Columns => COLUMNS_EVAL_GUIDANCE,
    };
    SampleRequest { guidance, ..Default::default() }
}

/// Measures a generator under `sampler`'s settings.
#[allow(clippy::too_many_arguments)]
fn model_row(
    name: &str,
    generator: &dyn ImageGenerator,
    sampler: &SampleRequest,
    judge: &Judge,
    real: &Features,
    per_class: usize,
    images_per_s: f64,
    device: String,
) -> anyhow::Result<ModelRow> {
    let quality = block_on(measure_generator(generator, sampler, judge, real, per_class, BATCH, EVAL_SEED))?;
    let info = generator.info();
    Ok(ModelRow {
        name: name.into(),
        generator: info.method.into(),
        params: info.params,
        steps: info.forward_passes,
        sampler: describe(info.family, sampler),
        quality,
        images_per_s,
        device,
        train_seconds: info.train_seconds,
    })
}

/// The sampler settings that apply to `family`, in words (the column generator has no filters;
/// its guidance is also given as the official weight).
fn describe(family: Family, sampler: &SampleRequest) -> String {
    if family == Family::Columns {
        return format!("cfg {} (official {}, linear)", sampler.guidance, 1.0 + sampler.guidance);
    }
    let order = if sampler.fill_order == FillOrder::Raster { String::new() } else { format!(" order {}", sampler.fill_order) };
    format!("cfg {} top-k {} top-p {}{order}", sampler.guidance, sampler.top_k, sampler.top_p)
}

/// Train-split real images (the floor) and uniform noise (the ceiling), as many as a model row.
fn sanity_rows(judge: &Judge, real: &Features, train: &dyn Dataset, per_class: usize, device: &Device) -> anyhow::Result<Vec<SanityRow>> {
    let classes = train.class_names().len();
    let indices = first_of_each_class(train, per_class);
    let labels: Vec<usize> = indices.iter().map(|&i| train.label(i)).collect();
    let verdicts = block_on(judge_dataset(judge, train, &indices, BATCH, device))?;
    let pixels: Vec<Vec<f32>> = indices.iter().map(|&i| train.get(i).image.pixels).collect();
    let floor = Quality::from_verdicts(&verdicts, &labels, real, tessera_eval::distinct_fraction(&pixels, tessera_eval::COPY_TOLERANCE));

    let labels = balanced_labels(classes, per_class);
    let shape = [labels.len(), train.channels(), train.height(), train.width()];
    let noise = block_on(Quality::measure(judge, noise_images(shape, EVAL_SEED, device), &labels, real, BATCH))?;
    Ok(vec![
        SanityRow { name: "real train images vs held-out (floor)".into(), quality: floor },
        SanityRow { name: "uniform noise (ceiling)".into(), quality: noise },
    ])
}

/// The paper claims in miniature.
/// 1. VAR against the raster-order baseline: the shipped var-tiny and raster-ar-tiny (VAR's
///    transformer in next-token order, same tokenizer, preset, steps and batch), same sampler;
///    with rar-tiny beside them (forward passes, FID and speed of the three in one table).
/// 2. VAR's guidance / top-k ablation: var-tiny under six sampler settings.
/// 3. RAR's randomness annealing: rar-tiny (annealed) against the same run with the random-order
///    probability held at 0 and at 1.
/// 4. RAR's sampling orders: raster, random, spiral and centre-out, for the annealed model and
///    the one trained with random orders only.
/// 5. Windowed against full causal attention (the column generator's claim 1): columns-mnist
///    and the same run with plain causal attention, each named with its self-attention keys.
/// 6. Long images (claim 2): columns-mnist and the same run without the RoPE shift, window by
///    window at 1× and `widths` times the training width ([`wide_rows`]).
/// 7. Sub-task transfer (claim 3): the same run on the first half of the columns only,
///    measured on whole images.
///
/// Returns the model rows and the wide-image rows. The judge is MNIST's.
fn claims(
    judged: &Judged,
    per_class: usize,
    widths: &[usize],
    device: &Device,
    device_name: String,
    progress: &dyn Fn(&str),
) -> anyhow::Result<(Vec<ModelRow>, Vec<WideRow>)> {
    anyhow::ensure!(judged.dataset == "mnist", "the claims are measured on MNIST: leave out --dataset {}", judged.dataset);
    let (judge, real) = (&judged.judge, &judged.real);
    let var_tiny = Shipped::of(Family::Var).context("no shipped VAR")?;
    let tokenizer = shipped(var_tiny.tokenizer_path);
    let var = load_files(&shipped(var_tiny.generator_path), &tokenizer, device)?;
    let baseline = load_files(&shipped(SHIPPED_RASTER_AR), &tokenizer, device)?;
    let rar_tiny = Shipped::of(Family::Rar).context("no shipped RAR")?;
    let rar_tokenizer = shipped(rar_tiny.tokenizer_path);
    let rar = load_files(&shipped(rar_tiny.generator_path), &rar_tokenizer, device)?;
    let mut rows = Vec::new();
    let mut row = |name: &str, generator: &dyn ImageGenerator, sampler: &SampleRequest, images_per_s: f64| -> anyhow::Result<()> {
        progress(&format!("{name}, {}", describe(generator.info().family, sampler)));
        rows.push(model_row(name, generator, sampler, judge, real, per_class, images_per_s, device_name.clone())?);
        Ok(())
    };
    let speed = |generator: &dyn ImageGenerator, sampler: &SampleRequest| -> anyhow::Result<f64> {
        Ok(BATCH as f64 / sampling_seconds(generator, sampler, BATCH, 1)?)
    };
    for (name, generator) in [("var-tiny", &var), ("raster-ar-tiny", &baseline), ("rar-tiny", &rar)] {
        let sampler = eval_sampler(generator.info().family);
        row(name, generator.as_ref(), &sampler, speed(generator.as_ref(), &sampler)?)?;
    }
    // The sampler settings do not change the work (the batch is doubled even without guidance).
    let var_speed = speed(var.as_ref(), &eval_sampler(Family::Var))?;
    for (guidance, top_k) in [(0.0, 0), (0.0, 100), (1.0, 0), (1.0, 100), (2.0, 0), (2.0, 100)] {
        row("var-tiny", var.as_ref(), &SampleRequest { guidance, top_k, ..Default::default() }, var_speed)?;
    }
    let raster_only = load_files(&shipped(SHIPPED_RAR_RASTER_ONLY), &rar_tokenizer, device)?;
    let random_only = load_files(&shipped(SHIPPED_RAR_RANDOM_ONLY), &rar_tokenizer, device)?;
    let rar_sampler = eval_sampler(Family::Rar);
    let rar_speed = speed(rar.as_ref(), &rar_sampler)?;
    for (name, generator) in [("rar-tiny r annealed", &rar), ("rar-tiny r = 0", &raster_only), ("rar-tiny r = 1", &random_only)] {
        row(name, generator.as_ref(), &rar_sampler, rar_speed)?;
    }
    for (name, generator) in [("rar-tiny r annealed", &rar), ("rar-tiny r = 1", &random_only)] {
        for order in [FillOrder::Random, FillOrder::Spiral, FillOrder::CentreOut] {
            row(name, generator.as_ref(), &SampleRequest { fill_order: order, ..rar_sampler.clone() }, rar_speed)?;
        }
    }
    let columns_mnist = SHIPPED.iter().find(|m| m.name == "columns-mnist").context("no shipped columns-mnist")?;
    let columns_tokenizer = shipped(columns_mnist.tokenizer_path);
    let columns_sampler = eval_sampler(Family::Columns);
    let columns = |path: &str| load_files(&shipped(path), &columns_tokenizer, device);
    let (windowed, full_causal) = (columns(columns_mnist.generator_path)?, columns(SHIPPED_COLUMNS_FULL_CAUSAL)?);
    for (name, path, generator) in
        [("columns-mnist", columns_mnist.generator_path, &windowed), ("columns-mnist full causal", SHIPPED_COLUMNS_FULL_CAUSAL, &full_causal)]
    {
        let config = Checkpoint::load(&shipped(path))?.model_config::<EquivariantConfig>()?;
        let keys = config.attention_keys(config.token_num);
        let name = format!("{name} (window {}: {keys} attention keys per image and block)", config.window);
        row(&name, generator.as_ref(), &columns_sampler, speed(generator.as_ref(), &columns_sampler)?)?;
    }
    let half = columns(SHIPPED_COLUMNS_HALF)?;
    row("columns-mnist trained on columns 1-4 of 8", half.as_ref(), &columns_sampler, speed(half.as_ref(), &columns_sampler)?)?;
    let no_shift = columns(SHIPPED_COLUMNS_NO_SHIFT)?;
    let mut wide = Vec::new();
    for (name, generator) in [("columns-mnist", &windowed), ("columns-mnist no RoPE shift", &no_shift)] {
        wide.extend(wide_rows(name, generator.as_ref(), &columns_sampler, judged, per_class, widths, progress)?);
    }
    Ok((rows, wide))
}
