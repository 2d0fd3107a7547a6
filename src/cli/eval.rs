//! `tessera eval`: how good the shipped models are, measured with the shipped judge.
//!
//! For each shipped model: `per_class` samples of every class, judged; class accuracy, FID,
//! precision / recall (k = 3) against the judge's features of the held-out real images, the
//! distinct fraction, images per second at batch 64, training time. Two sanity rows frame the
//! numbers: train-split real images (the floor a perfect generator would reach with the same
//! number of images) and uniform noise (the ceiling).
//!
//! `--claims` runs the paper-claim experiments that exist so far (VAR against its raster-order
//! baseline, VAR's guidance / top-k ablation) and prints their table.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::prelude::*;
use pollster::block_on;
use tessera_data::{Dataset, Mnist, Scenes, ScenesConfig};
use tessera_eval::report::{JudgeRow, ModelRow, Report, SanityRow};
use tessera_eval::{Features, Quality, balanced_labels, judge_dataset, measure_generator, noise_images};
use tessera_kernels::device::Preference;
use tessera_models::family::Family;
use tessera_models::generator::{ImageGenerator, SampleRequest};
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
/// The raster-order baseline of claim 1 (VAR's transformer in next-token order, var-tiny's tokenizer).
pub const SHIPPED_RASTER_AR: &str = "assets/raster-ar-tiny/var.ckpt";
/// Seed of the evaluation's sampling streams: every run of `tessera eval` draws the same images.
const EVAL_SEED: u64 = 2024;
/// Guidance of the report's rows: on var-tiny, 1 keeps 99% class accuracy with the best FID;
/// 2 trades recall for precision (`tessera eval --claims`, BENCHMARKS.md).
const EVAL_GUIDANCE: f64 = 1.0;
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
    #[arg(long)]
    per_class: Option<usize>,
    /// The judge checkpoint (default: the shipped MNIST judge).
    #[arg(long)]
    judge: Option<PathBuf>,
    /// Run the paper-claim experiments instead of the model report.
    #[arg(long)]
    claims: bool,
}

/// The training and held-out splits a judge of `source` learns from and is measured on.
pub(crate) fn judged_sets(source: &DatasetSource) -> anyhow::Result<(&'static str, Box<dyn Dataset>, Box<dyn Dataset>)> {
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

    let judge_path = args.judge.clone().unwrap_or_else(|| shipped(SHIPPED_JUDGE_MNIST));
    let (_, train, heldout) = judged_sets(&DatasetSource::Mnist)?;
    let (judge, heldout_accuracy) = open_judge(&judge_path, heldout.as_ref(), &device)?;
    let all: Vec<usize> = (0..heldout.len()).collect();
    let real = block_on(judge_dataset(&judge, heldout.as_ref(), &all, BATCH, &device))?.features;
    let judge_row = JudgeRow { dataset: "mnist".into(), heldout_accuracy, heldout_images: heldout.len() };
    let progress = |what: &str| eprintln!("eval: {what}");

    let report = if args.claims {
        let models = claims(&judge, &real, per_class, &device, compute.describe(), &progress)?;
        Report { judge: judge_row, models, sanity: Vec::new() }
    } else {
        progress("sanity rows");
        let sanity = sanity_rows(&judge, &real, train.as_ref(), per_class, &device)?;
        // Every shipped family, the same way.
        let mut rows = Vec::new();
        for model in SHIPPED {
            progress(model.name);
            let generator = load_files(&shipped(model.generator_path), &shipped(model.tokenizer_path), &device)?;
            let sampler = eval_sampler();
            let speed = BATCH as f64 / sampling_seconds(generator.as_ref(), &sampler, BATCH, if args.quick { 1 } else { 3 })?;
            rows.push(model_row(model.name, generator.as_ref(), &sampler, &judge, &real, per_class, speed, compute.describe())?);
        }
        Report { judge: judge_row, models: rows, sanity }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.to_markdown());
    }
    Ok(())
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

/// The report's sampler: guidance `EVAL_GUIDANCE`, no filters.
fn eval_sampler() -> SampleRequest {
    SampleRequest { guidance: EVAL_GUIDANCE, ..Default::default() }
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
        sampler: describe(sampler),
        quality,
        images_per_s,
        device,
        train_seconds: info.train_seconds,
    })
}

fn describe(sampler: &SampleRequest) -> String {
    format!("cfg {} top-k {} top-p {}", sampler.guidance, sampler.top_k, sampler.top_p)
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
///    transformer in next-token order, same tokenizer, preset, steps and batch), same sampler.
/// 2. VAR's guidance / top-k ablation: var-tiny under six sampler settings.
fn claims(judge: &Judge, real: &Features, per_class: usize, device: &Device, device_name: String, progress: &dyn Fn(&str)) -> anyhow::Result<Vec<ModelRow>> {
    let var_tiny = Shipped::of(Family::Var).context("no shipped VAR")?;
    let tokenizer = shipped(var_tiny.tokenizer_path);
    let var = load_files(&shipped(var_tiny.generator_path), &tokenizer, device)?;
    let baseline = load_files(&shipped(SHIPPED_RASTER_AR), &tokenizer, device)?;
    let mut rows = Vec::new();
    for (name, generator) in [("var-tiny", &var), ("raster-ar-tiny", &baseline)] {
        let sampler = eval_sampler();
        progress(&format!("{name}, {}", describe(&sampler)));
        let images_per_s = BATCH as f64 / sampling_seconds(generator.as_ref(), &sampler, BATCH, 1)?;
        rows.push(model_row(name, generator.as_ref(), &sampler, judge, real, per_class, images_per_s, device_name.clone())?);
    }
    let mut speed = None;
    for (guidance, top_k) in [(0.0, 0), (0.0, 100), (1.0, 0), (1.0, 100), (2.0, 0), (2.0, 100)] {
        let sampler = SampleRequest { guidance, top_k, ..Default::default() };
        progress(&format!("var-tiny, {}", describe(&sampler)));
        // The sampler settings do not change the work (the batch is doubled even without guidance).
        let images_per_s = match speed {
            Some(s) => s,
            None => *speed.insert(BATCH as f64 / sampling_seconds(var.as_ref(), &sampler, BATCH, 1)?),
        };
        rows.push(model_row("var-tiny", var.as_ref(), &sampler, judge, real, per_class, images_per_s, device_name.clone())?);
    }
    Ok(rows)
}
