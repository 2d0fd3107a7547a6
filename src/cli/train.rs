//! `tessera train var-tokenizer|var`: train VAR's tokenizer, then its transformer, with progress
//! bars, periodic sample grids and checkpoints.
//!
//! Files in `--out DIR`: `tokenizer.ckpt` / `var.ckpt` (resumable: weights, optimizer state,
//! step, configs; rewritten atomically every `--save-every` steps and at the end), at the end
//! `tokenizer.weights.ckpt` / `var.weights.ckpt` (weights only, what ships in `assets/`), and
//! `samples/tokenizer/step_NNNNNN.png` / `samples/var/step_NNNNNN.png` grids (one folder per
//! model, so both can train into one DIR): one row per class with held-out originals then their
//! reconstructions (tokenizer), or samples with a fixed seed and guidance 2 (transformer).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use pollster::block_on;
use tessera_data::{Dataset, Image, Mnist, Sample, Scenes, ScenesConfig, preview_grid};
use tessera_kernels::device::Preference;
use tessera_models::generators::var::TokenOrder;
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_train::checkpoint::fingerprint;
use tessera_train::data::{first_of_each_class, load_batch};
use tessera_train::tokenizer::{load_tokenizer, psnr_from_mse};
use tessera_eval::judge_dataset;
use tessera_models::judge::JudgeConfig;
use tessera_train::{BatchOrder, Checkpoint, JudgeTrainer, JudgeTrainingConfig, TokenizerTrainer, VarPreset, VarTrainer};

use super::data::DatasetSource;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Train VAR's multi-scale VQ-VAE tokenizer (images ⇄ token maps).
    VarTokenizer(TokenizerArgs),
    /// Train the VAR transformer on a trained tokenizer's token maps.
    Var(VarArgs),
    /// Train the evaluation's judge classifier on a dataset's real images (`mnist` or `scenes`).
    Judge(JudgeArgs),
}

/// Options both trainings share.
#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// `mnist`, `scenes`, or a folder with one subfolder of pictures per class.
    #[arg(long, value_name = "mnist|scenes|PATH")]
    dataset: DatasetSource,
    /// Model and run size.
    #[arg(long, default_value = "tiny", value_name = "tiny|small")]
    preset: VarPreset,
    /// Total optimizer steps (default: the preset's). With --resume, the new run length.
    #[arg(long)]
    steps: Option<usize>,
    /// Images per step (default: the preset's).
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate (default: the preset's).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of the weights and the sample order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where checkpoints and sample grids go.
    #[arg(long, default_value = "runs/var-tiny")]
    out: PathBuf,
    /// Continue the run saved in DIR (same preset; --steps may lengthen it).
    #[arg(long)]
    resume: bool,
    /// Save a checkpoint every N steps (and always at the end).
    #[arg(long, default_value_t = 250)]
    save_every: usize,
    /// Write a sample grid every N steps (and at the end); 0 = only at the end.
    #[arg(long, default_value_t = 500)]
    sample_every: usize,
}

#[derive(clap::Args, Debug)]
pub struct TokenizerArgs {
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(clap::Args, Debug)]
pub struct VarArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// The trained tokenizer (a `tokenizer.ckpt` or `tokenizer.weights.ckpt`).
    #[arg(long)]
    tokenizer: PathBuf,
    /// Classifier-free guidance of the periodic sample grids.
    #[arg(long, default_value_t = 2.0)]
    guidance: f64,
    /// `next-scale` (VAR) or `next-token`: the same transformer generating one token at a time in
    /// raster order, the baseline of `tessera eval --claims`.
    #[arg(long, default_value = "next-scale", value_parser = parse_order)]
    order: TokenOrder,
}

fn parse_order(s: &str) -> Result<TokenOrder, String> {
    match s {
        "next-scale" => Ok(TokenOrder::NextScale),
        "next-token" => Ok(TokenOrder::NextToken),
        _ => Err(format!("unknown order '{s}': use next-scale or next-token")),
    }
}

#[derive(clap::Args, Debug)]
pub struct JudgeArgs {
    /// `mnist` or `scenes` (the judge needs a held-out split to report its accuracy).
    #[arg(long, value_name = "mnist|scenes")]
    dataset: DatasetSource,
    /// Total optimizer steps (default 1200).
    #[arg(long)]
    steps: Option<usize>,
    /// Images per step (default 64).
    #[arg(long)]
    batch: Option<usize>,
    /// Seed of the weights, the sample order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the checkpoints go (default runs/judge-<dataset>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run saved in OUT.
    #[arg(long)]
    resume: bool,
}

pub fn run(command: Command, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    match command {
        Command::VarTokenizer(args) => train_tokenizer(args, preference),
        Command::Var(args) => train_var(args, preference),
        Command::Judge(args) => train_judge(args, preference),
    }
}

/// Wall time of a run so far: what earlier sessions of it recorded plus this session's.
struct RunClock {
    before: f64,
    started: Instant,
}

impl RunClock {
    /// Starts counting on top of the `train_seconds` a resumed checkpoint recorded.
    fn resuming(checkpoint: Option<&Checkpoint>) -> Self {
        let before = checkpoint.and_then(|c| c.header.metrics.get(TRAIN_SECONDS).copied()).unwrap_or(0.0);
        Self { before, started: Instant::now() }
    }

    fn seconds(&self) -> f64 {
        self.before + self.started.elapsed().as_secs_f64()
    }
}

/// The checkpoint metric with a run's wall time (read by `tessera eval`); defined with the
/// model loading, which the browser build compiles too.
pub(crate) use tessera_train::checkpoint::TRAIN_SECONDS;

/// The device training runs on: [`Compute::training_device`] (a real GPU if there is one, else
/// burn's CPU backend rather than a software adapter), unless `--device gpu` asks for the adapter.
///
/// [`Compute::training_device`]: tessera_kernels::Compute::training_device
fn training_device(preference: anyhow::Result<Preference>) -> anyhow::Result<(Device, String)> {
    let preference = preference?;
    let compute = super::compute(Ok(preference))?;
    if preference == Preference::Auto
        && let (device, Some(note)) = compute.training_device()
    {
        return Ok((device, format!("{note} (use --device gpu to train on it anyway)")));
    }
    Ok((compute.device.clone(), format!("training on {}", compute.describe())))
}

/// The training split of a dataset, at the preset's resolution.
fn open_dataset(source: &DatasetSource, preset: &VarPreset, seed: u64) -> anyhow::Result<Box<dyn Dataset>> {
    let side = preset.image_size();
    let dataset: Box<dyn Dataset> = match source {
        DatasetSource::Mnist => Box::new(Mnist::train()),
        DatasetSource::Scenes => Box::new(Scenes::new(ScenesConfig { height: side, width: side, len: 12_000, seed })?),
        DatasetSource::Folder(path) => Box::new(super::data::open_pictures(path, side)?),
    };
    ensure!(
        dataset.height() == side && dataset.width() == side,
        "the {} preset works on {side}x{side} images, {} has {}x{}",
        preset.name(),
        dataset.name(),
        dataset.height(),
        dataset.width()
    );
    ensure!(!dataset.is_empty(), "{} has no images", dataset.name());
    Ok(dataset)
}

/// Images the grids show: held-out MNIST digits, else the first of the training set.
fn grid_dataset(source: &DatasetSource, train: Box<dyn Dataset>) -> Box<dyn Dataset> {
    match source {
        DatasetSource::Mnist => Box::new(Mnist::heldout()),
        _ => train,
    }
}

fn progress_bar(total: usize, done: usize) -> ProgressBar {
    let bar = ProgressBar::new(total as u64).with_position(done as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {per_sec} ETA {eta} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// A line above the progress bar, or on stdout when the bar is hidden (not a terminal, e.g. a
/// run in the background with its output in a log: `bar.println` prints nothing then).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        println!("{line}");
    } else {
        bar.println(line);
    }
}

fn train_tokenizer(args: TokenizerArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let a = args.common;
    let (device, note) = training_device(preference)?;
    eprintln!("{note}");
    let dataset = open_dataset(&a.dataset, &a.preset, a.seed)?;
    let path = a.out.join("tokenizer.ckpt");

    let mut clock = RunClock::resuming(None);
    let mut trainer = if a.resume {
        let checkpoint = Checkpoint::load(&path).with_context(|| format!("resuming from {}", path.display()))?;
        clock = RunClock::resuming(Some(&checkpoint));
        checkpoint.expect_model_config(&a.preset.tokenizer(dataset.channels()))
            .with_context(|| format!("{} was not trained with the {} preset on {}", path.display(), a.preset.name(), dataset.name()))?;
        let trainer = TokenizerTrainer::resume(&checkpoint, a.steps, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        if path.exists() {
            bail!("{} exists: pass --resume to continue it, or choose another --out", path.display());
        }
        let mut config = a.preset.tokenizer_training(dataset.channels());
        config.seed = a.seed;
        if let Some(steps) = a.steps {
            config.steps = steps;
        }
        if let Some(batch) = a.batch {
            config.batch_size = batch;
        }
        if let Some(lr) = a.lr {
            config.schedule.peak_lr = lr;
        }
        TokenizerTrainer::new(config, &device)?
    };
    let config = trainer.config().clone();
    let order = BatchOrder::new(dataset.len(), config.batch_size, config.seed);
    let grid_set = grid_dataset(&a.dataset, open_dataset(&a.dataset, &a.preset, a.seed)?);
    let grid_idx = first_of_each_class(grid_set.as_ref(), 4);

    println!(
        "tokenizer: {} steps of {} {} images, {} codes x {} channels, scales {:?}",
        config.steps, config.batch_size, dataset.name(), config.model.vocab_size, config.model.z_channels, config.model.patch_nums
    );
    let bar = progress_bar(config.steps, trainer.step_index());
    let mut last = None;
    while !trainer.is_done() {
        let (images, _) = load_batch(dataset.as_ref(), &order.indices(trainer.step_index()), &device);
        let stats = match block_on(trainer.step(images)) {
            Ok(stats) => stats,
            Err(e) => {
                bar.abandon();
                return Err(e).context(format!("the last good checkpoint is {}", path.display()));
            }
        };
        let done = trainer.step_index();
        bar.set_position(done as u64);
        bar.set_message(format!(
            "loss {:.4} psnr {:.1} dB lr {:.1e}{}",
            stats.loss,
            stats.psnr,
            stats.lr,
            if stats.codes_reset > 0 { format!(" reset {}", stats.codes_reset) } else { String::new() }
        ));
        if (a.sample_every > 0 && done % a.sample_every == 0) || trainer.is_done() {
            let usage = block_on(trainer.codebook_usage().into_data_async())?.try_to_vec::<f32>().unwrap_or_default();
            let psnr = write_reconstructions(&trainer, grid_set.as_ref(), &grid_idx, &a.out, done, &device)?;
            say(&bar, format!(
                "step {done}: loss {:.4}, train psnr {:.2} dB, held-out psnr {psnr:.2} dB, codebook usage per scale {}",
                stats.loss,
                stats.psnr,
                usage.iter().map(|u| format!("{:.0}%", u * 100.0)).collect::<Vec<_>>().join(" ")
            ));
        }
        if done % a.save_every == 0 || trainer.is_done() {
            let metrics = [("loss", stats.loss as f64), ("psnr", stats.psnr as f64), (TRAIN_SECONDS, clock.seconds())];
            block_on(trainer.checkpoint(&metrics))?.save(&path)?;
        }
        last = Some(stats);
    }
    bar.finish();
    let checkpoint = Checkpoint::load(&path)?;
    let weights = a.out.join("tokenizer.weights.ckpt");
    checkpoint.weights_only().save(&weights)?;
    if let Some(stats) = last {
        println!(
            "done in {:.1} min: loss {:.4}, train psnr {:.2} dB; {} (resumable), {} (weights only)",
            clock.seconds() / 60.0,
            stats.loss,
            stats.psnr,
            path.display(),
            weights.display()
        );
    }
    Ok(())
}

/// Writes the held-out grid (per class: 4 originals, then their reconstructions) and returns
/// the PSNR of those reconstructions.
fn write_reconstructions(
    trainer: &TokenizerTrainer,
    set: &dyn Dataset,
    indices: &[usize],
    out: &Path,
    step: usize,
    device: &Device,
) -> anyhow::Result<f64> {
    let (images, labels) = load_batch(set, indices, device);
    let recon = trainer.reconstruct(images.clone());
    let mse: f32 = (recon.clone() - images.clone()).square().mean().into_scalar();
    let originals = to_images(images);
    let recons = to_images(recon);
    drop(labels);
    let labels: Vec<usize> = indices.iter().map(|&i| set.label(i)).collect();
    // Per class: its originals first, then its reconstructions, so a row reads left to right.
    let mut samples = Vec::new();
    for class in 0..set.class_names().len() {
        for source in [&originals, &recons] {
            for (image, _) in source.iter().zip(&labels).filter(|(_, l)| **l == class) {
                samples.push(Sample { image: image.clone(), label: class });
            }
        }
    }
    let per_class = 2 * indices.len() / set.class_names().len().max(1);
    write_grid(samples, set, per_class, out, "tokenizer", step)?;
    Ok(psnr_from_mse(mse as f64))
}

/// `[B, C, H, W]` in `[-1, 1]` → images in `[0, 1]`.
fn to_images(t: Tensor<4>) -> Vec<Image> {
    let [b, c, h, w] = t.dims();
    let values = ((t + 1.0) * 0.5).clamp(0.0, 1.0).into_data().try_to_vec::<f32>().expect("f32 images");
    values.chunks(c * h * w).take(b).map(|px| Image::new(c, h, w, px.to_vec())).collect()
}

/// Images already in memory, as a dataset, so `preview_grid` can lay them out by class.
struct Generated {
    samples: Vec<Sample>,
    class_names: Vec<String>,
    shape: [usize; 3],
}

impl Dataset for Generated {
    fn name(&self) -> &str {
        "samples"
    }
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn get(&self, index: usize) -> Sample {
        self.samples[index].clone()
    }
    fn label(&self, index: usize) -> usize {
        self.samples[index].label
    }
    fn class_names(&self) -> &[String] {
        &self.class_names
    }
    fn channels(&self) -> usize {
        self.shape[0]
    }
    fn height(&self) -> usize {
        self.shape[1]
    }
    fn width(&self) -> usize {
        self.shape[2]
    }
}

/// Writes `out/samples/<model>/step_NNNNNN.png`.
fn write_grid(samples: Vec<Sample>, like: &dyn Dataset, per_class: usize, out: &Path, model: &str, step: usize) -> anyhow::Result<()> {
    let shape = [like.channels(), like.height(), like.width()];
    let set = Generated { samples, class_names: like.class_names().to_vec(), shape };
    let grid = preview_grid(&set, per_class.max(1), (64 / shape[1]).max(1));
    let path = out.join("samples").join(model).join(format!("step_{step:06}.png"));
    std::fs::create_dir_all(path.parent().expect("has a parent"))?;
    grid.save(&path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn train_var(args: VarArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let a = args.common;
    let (device, note) = training_device(preference)?;
    eprintln!("{note}");
    let dataset = open_dataset(&a.dataset, &a.preset, a.seed)?;
    let path = a.out.join("var.ckpt");

    let tokenizer_file = Checkpoint::load(&args.tokenizer).with_context(|| format!("reading the tokenizer {}", args.tokenizer.display()))?;
    let tokenizer_id = fingerprint(&tokenizer_file.weights);
    let (tokenizer_config, tokenizer) = load_tokenizer(&tokenizer_file, &device)
        .with_context(|| format!("loading the tokenizer {}", args.tokenizer.display()))?;
    ensure!(
        tokenizer_config.in_channels == dataset.channels() && tokenizer_config.image_size() == dataset.height(),
        "the tokenizer works on {}-channel {}px images, {} has {}-channel {}px images",
        tokenizer_config.in_channels,
        tokenizer_config.image_size(),
        dataset.name(),
        dataset.channels(),
        dataset.height()
    );
    let classes = dataset.class_names().len();

    let mut clock = RunClock::resuming(None);
    let mut trainer = if a.resume {
        let checkpoint = Checkpoint::load(&path).with_context(|| format!("resuming from {}", path.display()))?;
        clock = RunClock::resuming(Some(&checkpoint));
        checkpoint.expect_model_config(&a.preset.var(&tokenizer_config, classes).in_order(args.order))
            .with_context(|| format!("{} was not trained with the {} preset on {}", path.display(), a.preset.name(), dataset.name()))?;
        if checkpoint.header.tokenizer.as_deref().is_some_and(|t| t != tokenizer_id) {
            bail!("{} was trained with another tokenizer than {}", path.display(), args.tokenizer.display());
        }
        let trainer = VarTrainer::resume(&checkpoint, tokenizer, a.steps, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        if path.exists() {
            bail!("{} exists: pass --resume to continue it, or choose another --out", path.display());
        }
        let mut config = a.preset.var_training(&tokenizer_config, classes).with_class_names(dataset.class_names().to_vec());
        config.model = config.model.in_order(args.order);
        config.seed = a.seed;
        if let Some(steps) = a.steps {
            config.steps = steps;
        }
        if let Some(batch) = a.batch {
            config.batch_size = batch;
        }
        if let Some(lr) = a.lr {
            config.schedule.peak_lr = lr;
        }
        VarTrainer::new(config, tokenizer, &device)?.with_tokenizer_fingerprint(tokenizer_id)
    };
    let config = trainer.config().clone();
    let order = BatchOrder::new(dataset.len(), config.batch_size, config.seed);
    let sampler = VarSamplerConfig::new().with_guidance(args.guidance).with_seed(7);

    println!(
        "transformer: {} steps of {} {} images, depth {}, width {}, {} heads, {} tokens per image, {:?} order",
        config.steps, config.batch_size, dataset.name(), config.model.depth, config.model.embed_dim, config.model.num_heads,
        config.model.seq_len(),
        config.model.order()
    );
    let bar = progress_bar(config.steps, trainer.step_index());
    let mut last = None;
    let (mut loss_avg, mut acc_avg) = (None::<f64>, 0.0);
    while !trainer.is_done() {
        let (images, labels) = load_batch(dataset.as_ref(), &order.indices(trainer.step_index()), &device);
        let stats = match block_on(trainer.step(images, labels)) {
            Ok(stats) => stats,
            Err(e) => {
                bar.abandon();
                return Err(e).context(format!("the last good checkpoint is {}", path.display()));
            }
        };
        // Smoothed over ~50 steps: single batches are noisy.
        let (l, acc) = (stats.loss as f64, stats.accuracy as f64);
        let avg = loss_avg.map_or(l, |m| 0.98 * m + 0.02 * l);
        acc_avg = if loss_avg.is_none() { acc } else { 0.98 * acc_avg + 0.02 * acc };
        loss_avg = Some(avg);
        let done = trainer.step_index();
        bar.set_position(done as u64);
        bar.set_message(format!("ce {avg:.3} acc {:.1}% lr {:.1e}", acc_avg * 100.0, stats.lr));
        if (a.sample_every > 0 && done % a.sample_every == 0) || trainer.is_done() {
            write_samples(&trainer, dataset.as_ref(), &sampler, &a.out, done, &device)?;
            say(&bar, format!("step {done}: ce {avg:.4} (batch {:.4}), token accuracy {:.1}%", stats.loss, acc_avg * 100.0));
        }
        if done % a.save_every == 0 || trainer.is_done() {
            let metrics = [("ce", avg), ("accuracy", acc_avg), (TRAIN_SECONDS, clock.seconds())];
            block_on(trainer.checkpoint(&metrics))?.save(&path)?;
        }
        last = Some(stats);
    }
    bar.finish();
    let checkpoint = Checkpoint::load(&path)?;
    let weights = a.out.join("var.weights.ckpt");
    checkpoint.weights_only().save(&weights)?;
    if last.is_some() {
        println!(
            "done in {:.1} min: ce {:.4}, token accuracy {:.1}%; {} (resumable), {} (weights only)",
            clock.seconds() / 60.0,
            loss_avg.unwrap_or(f64::NAN),
            acc_avg * 100.0,
            path.display(),
            weights.display()
        );
    }
    Ok(())
}

/// Eight samples per class with a fixed seed, one row per class.
fn write_samples(
    trainer: &VarTrainer,
    like: &dyn Dataset,
    sampler: &VarSamplerConfig,
    out: &Path,
    step: usize,
    device: &Device,
) -> anyhow::Result<()> {
    const PER_CLASS: usize = 8;
    let classes = like.class_names().len();
    let labels: Vec<i64> = (0..classes).flat_map(|c| std::iter::repeat_n(c as i64, PER_CLASS)).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device.clone().inner());
    let var = trainer.model();
    let run = sample(&var, trainer.tokenizer(), labels, sampler.clone(), false);
    let images = to_images(run.image * 2.0 - 1.0);
    let samples = images.into_iter().enumerate().map(|(i, image)| Sample { image, label: i / PER_CLASS }).collect();
    write_grid(samples, like, PER_CLASS, out, "var", step)
}

fn train_judge(args: JudgeArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let (device, note) = training_device(preference)?;
    eprintln!("{note}");
    let (name, train, heldout) = super::eval::judged_sets(&args.dataset)?;
    let out = args.out.unwrap_or_else(|| PathBuf::from(format!("runs/judge-{name}")));
    let path = out.join("judge.ckpt");
    let mut clock = RunClock::resuming(None);
    let mut trainer = if args.resume {
        let checkpoint = Checkpoint::load(&path).with_context(|| format!("resuming from {}", path.display()))?;
        clock = RunClock::resuming(Some(&checkpoint));
        let trainer = JudgeTrainer::resume(&checkpoint, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        if path.exists() {
            bail!("{} exists: pass --resume to continue it, or choose another --out", path.display());
        }
        let model = JudgeConfig::new(train.channels(), train.height(), train.class_names().len());
        let mut config = JudgeTrainingConfig::new(model).with_seed(args.seed).with_class_names(train.class_names().to_vec());
        if let Some(steps) = args.steps {
            config.steps = steps;
        }
        if let Some(batch) = args.batch {
            config.batch_size = batch;
        }
        JudgeTrainer::new(config, &device)?
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let config = trainer.config().clone();
    let order = BatchOrder::new(train.len(), config.batch_size, config.seed);
    println!("judge: {} steps of {} {} images, stages {:?}", config.steps, config.batch_size, train.name(), config.model.widths);
    let bar = progress_bar(config.steps, trainer.step_index());
    let mut acc_avg = None::<f64>;
    while !trainer.is_done() {
        let batch = tessera_data::batch(train.as_ref(), &order.indices(trainer.step_index()));
        let stats = match block_on(trainer.step(&batch)) {
            Ok(stats) => stats,
            Err(e) => {
                bar.abandon();
                return Err(e).context(format!("the last good checkpoint is {}", path.display()));
            }
        };
        let avg = acc_avg.map_or(stats.accuracy as f64, |m| 0.95 * m + 0.05 * stats.accuracy as f64);
        acc_avg = Some(avg);
        let done = trainer.step_index();
        bar.set_position(done as u64);
        bar.set_message(format!("loss {:.3} train acc {:.1}% lr {:.1e}", stats.loss, avg * 100.0, stats.lr));
        if done % 250 == 0 || trainer.is_done() {
            say(&bar, format!("step {done}: loss {:.4}, train accuracy {:.1}%", stats.loss, avg * 100.0));
            let mut metrics = vec![("train_accuracy", avg), (TRAIN_SECONDS, clock.seconds())];
            if trainer.is_done() {
                let indices: Vec<usize> = (0..heldout.len()).collect();
                let verdicts = block_on(judge_dataset(&trainer.model(), heldout.as_ref(), &indices, 250, &device))?;
                let labels: Vec<usize> = indices.iter().map(|&i| heldout.label(i)).collect();
                let accuracy = verdicts.accuracy(&labels);
                say(&bar, format!("held-out accuracy {:.2}% on {} images", accuracy * 100.0, labels.len()));
                metrics.push((HELDOUT_ACCURACY, accuracy));
            }
            block_on(trainer.checkpoint(&metrics))?.save(&path)?;
        }
    }
    bar.finish();
    let weights = out.join("judge.weights.ckpt");
    Checkpoint::load(&path)?.weights_only().save(&weights)?;
    println!("done in {:.1} min: {} (resumable), {} (weights only)", clock.seconds() / 60.0, path.display(), weights.display());
    Ok(())
}

/// The checkpoint metric with a judge's held-out accuracy (read by `tessera eval`).
pub(crate) const HELDOUT_ACCURACY: &str = "heldout_accuracy";
