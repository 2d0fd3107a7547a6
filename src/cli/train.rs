//! `tessera train var-tokenizer|var|rar-tokenizer|rar|columns-tokenizer|equivariant|judge`: train
//! a family's tokenizer, then its transformer (or the evaluation's judge), with progress bars,
//! periodic sample grids and checkpoints. All go through the one training loop
//! ([`tessera_train::train`]); this file holds the CLI's hooks and VAR's commands, [`rar`] RAR's
//! and [`columns`] the column generator's.
//!
//! Files in `--out DIR`: `tokenizer.ckpt` / `var.ckpt` / `judge.ckpt` (resumable: weights, optimizer
//! state, step, configs, metrics and `train_seconds`; rewritten atomically every `--save-every`
//! steps or `--save-every-minutes`, at the end, and before a non-finite loss stops the run), at the end
//! `tokenizer.weights.ckpt` / `var.weights.ckpt` (weights only, what ships in `assets/`), and
//! `samples/tokenizer/step_NNNNNN.png` / `samples/var/step_NNNNNN.png` grids (one folder per
//! model, so both can train into one DIR): one row per class with held-out originals then their
//! reconstructions (tokenizer), or samples with a fixed seed and guidance 2 (transformer).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};
use pollster::block_on;
use tessera_data::{Dataset, Image, Mnist, Sample, Scenes, ScenesConfig, preview_grid};
use tessera_eval::judge_dataset;
use tessera_kernels::device::Preference;
use tessera_models::generators::var::TokenOrder;
use tessera_models::judge::JudgeConfig;
use tessera_models::sampling::var::{VarSamplerConfig, sample};
use tessera_train::checkpoint::fingerprint;
use tessera_train::data::{first_of_each_class, load_batch};
use tessera_train::tokenizer::{load_tokenizer, psnr_from_mse};
use tessera_train::trainer::train_seconds;
use tessera_train::{
    Autosave, Checkpoint, Control, Hooks, JudgeTrainer, JudgeTrainingConfig, Outcome, Run, RunLock, StepDone, TokenizerTrainer,
    Trainer, VarPreset, VarTrainer, train,
};

use super::data::DatasetSource;

mod columns;
mod rar;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Train VAR's multi-scale VQ-VAE tokenizer (images ⇄ token maps).
    VarTokenizer(TokenizerArgs),
    /// Train the VAR transformer on a trained tokenizer's token maps.
    Var(VarArgs),
    /// Train RAR's MaskGIT-VQGAN tokenizer (images ⇄ one token map).
    RarTokenizer(TokenizerArgs),
    /// Train the RAR transformer on a trained MaskGIT-VQGAN's codes, with randomness annealing.
    Rar(rar::RarArgs),
    /// Train the equivariant generator's column tokenizer (images ⇄ one token per column strip).
    ColumnsTokenizer(TokenizerArgs),
    /// Train the equivariant column transformer and its flow head on a trained column tokenizer.
    Equivariant(columns::EquivariantArgs),
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
    #[arg(long, value_parser = super::positive)]
    steps: Option<usize>,
    /// Images per step (default: the preset's; at most 1024).
    #[arg(long, value_parser = super::batch)]
    batch: Option<usize>,
    /// Peak learning rate (default: the preset's).
    #[arg(long, value_parser = super::finite)]
    lr: Option<f64>,
    /// Seed of the weights and the sample order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where checkpoints and sample grids go (default runs/<family>-<preset>, e.g. runs/var-tiny).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run saved in DIR (same preset; --steps may lengthen it).
    #[arg(long)]
    resume: bool,
    /// Save a checkpoint every N steps (and always at the end).
    #[arg(long, default_value_t = 250, value_parser = super::positive)]
    save_every: usize,
    /// Also save a checkpoint every M minutes of training.
    #[arg(long, value_name = "M", value_parser = super::finite)]
    save_every_minutes: Option<f64>,
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
    #[arg(long, default_value_t = 2.0, value_parser = super::finite)]
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
    #[arg(long, value_parser = super::positive)]
    steps: Option<usize>,
    /// Images per step (default 64; at most 1024).
    #[arg(long, value_parser = super::batch)]
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
        Command::RarTokenizer(args) => rar::train_tokenizer(args, preference),
        Command::Rar(args) => rar::train_rar(args, preference),
        Command::ColumnsTokenizer(args) => columns::train_tokenizer(args, preference),
        Command::Equivariant(args) => columns::train_equivariant(args, preference),
        Command::Judge(args) => train_judge(args, preference),
    }
}

/// What every training command starts from: checked before anything trains.
struct Start {
    autosave: Autosave,
    device: Device,
    dataset: Box<dyn Dataset>,
    /// The run's folder and its resumable checkpoint file in it.
    out: PathBuf,
    path: PathBuf,
}

impl CommonArgs {
    /// The save schedule, the training device (said on stderr), the dataset, and the run's
    /// folder (`runs/<family>-<preset>` by default) with the checkpoint `file` in it.
    fn start(&self, family: &str, file: &str, preference: anyhow::Result<Preference>) -> anyhow::Result<Start> {
        let autosave = self.autosave()?;
        let (device, note) = training_device(preference)?;
        eprintln!("{note}");
        let dataset = open_dataset(&self.dataset, &self.preset, self.seed)?;
        let out = self.out(family);
        Ok(Start { autosave, device, dataset, path: out.join(file), out })
    }

    /// `--out`, else `runs/<family>-<preset>`.
    fn out(&self, family: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| PathBuf::from(format!("runs/{family}-{}", self.preset.name())))
    }

    /// When checkpoints are written, checked before anything is loaded.
    fn autosave(&self) -> anyhow::Result<Autosave> {
        let every_steps = NonZeroUsize::new(self.save_every).context("--save-every must be at least 1 (steps between checkpoints)")?;
        if let Some(minutes) = self.save_every_minutes {
            ensure!(minutes.is_finite() && minutes > 0.0, "--save-every-minutes must be a positive number of minutes, not {minutes}");
        }
        Ok(Autosave { every_steps: Some(every_steps), every_seconds: self.save_every_minutes.map(|m| m * 60.0), ..Autosave::at_end() })
    }
}

/// The run saved at `path` when resuming (which must exist), else nothing (and `path` must not
/// exist yet, so a new run never overwrites an old one), with the lock on its folder: a second
/// run on the same folder, even one started in the same second, stops here with a clear error.
fn open_run(path: &Path, resume: bool) -> anyhow::Result<(Option<Checkpoint>, RunLock)> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let lock = RunLock::acquire(dir)?;
    if resume {
        let checkpoint = Checkpoint::load(path).with_context(|| format!("resuming from {}", path.display()))?;
        return Ok((Some(checkpoint), lock));
    }
    if path.exists() {
        bail!("{} exists: pass --resume to continue it, or choose another --out", path.display());
    }
    Ok((None, lock))
}

/// The device training runs on: [`Compute::work_device`] (a real GPU if there is one, else
/// burn's CPU backend rather than a software adapter), unless `--device gpu` asks for the adapter.
///
/// [`Compute::work_device`]: tessera_kernels::Compute::work_device
fn training_device(preference: anyhow::Result<Preference>) -> anyhow::Result<(Device, String)> {
    let compute = super::compute(preference)?;
    Ok(match compute.work_device() {
        (device, Some(note)) => (device, format!("{note} (use --device gpu to train on it anyway)")),
        (device, None) => (device, format!("training on {}", compute.describe())),
    })
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

/// What `tessera train` does around the training loop, for any model: the progress bar with the
/// smoothed metrics, the resumable checkpoint file, and every `report_every` steps (0: only at
/// the end) the model's own report (a sample grid, a line to print, extra checkpoint metrics).
struct Cli<'a, T> {
    bar: ProgressBar,
    path: PathBuf,
    smoothed: Smoothed,
    report_every: usize,
    report: Box<dyn FnMut(&T, &Smoothed) -> anyhow::Result<Report> + 'a>,
    /// Metrics the checkpoints record beside the step's (the judge's held-out accuracy, at the end).
    extra: Vec<(&'static str, f64)>,
}

/// A model's report at a step: a line to print, and metrics for the checkpoints from then on.
struct Report {
    line: String,
    metrics: Vec<(&'static str, f64)>,
}

impl<'a, T: Trainer> Cli<'a, T> {
    /// Hooks for `trainer`'s run, saving to `path`, reporting every `report_every` steps.
    fn new(
        trainer: &T,
        path: PathBuf,
        report_every: usize,
        report: impl FnMut(&T, &Smoothed) -> anyhow::Result<Report> + 'a,
    ) -> Self {
        let bar = progress_bar(trainer.steps(), trainer.step_index());
        Self { bar, path, smoothed: Smoothed::default(), report_every, report: Box::new(report), extra: Vec::new() }
    }
}

impl Report {
    fn line(line: String) -> Self {
        Self { line, metrics: Vec::new() }
    }
}

impl<T: Trainer> Hooks<T> for Cli<'_, T> {
    type Error = anyhow::Error;

    async fn on_step(&mut self, trainer: &T, done: StepDone<'_>) -> anyhow::Result<()> {
        self.smoothed.add(done.metrics);
        let n = trainer.step_index();
        self.bar.set_position(n as u64);
        self.bar.set_message(self.smoothed.with_raw(done.metrics));
        if (self.report_every > 0 && n % self.report_every == 0) || trainer.is_done() {
            let report = (self.report)(trainer, &self.smoothed)?;
            say(&self.bar, format!("step {n}: {}", report.line));
            self.extra = report.metrics;
        }
        Ok(())
    }

    async fn save(&mut self, mut checkpoint: Checkpoint) -> anyhow::Result<()> {
        checkpoint.header.metrics.extend(self.extra.iter().map(|&(k, v)| (k.to_string(), v)));
        Ok(checkpoint.save(&self.path)?)
    }

    async fn idle(&mut self, paused: bool) {
        // Nothing pauses a CLI run today; a pause would sleep, not spin.
        if paused {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Trains `trainer` to the end through the loop with `cli`'s hooks, then writes the weights-only
/// file beside the resumable one (`tokenizer.ckpt` → `tokenizer.weights.ckpt`) and says so.
fn train_to_end<T: Trainer>(
    trainer: &mut T,
    dataset: &dyn Dataset,
    autosave: Autosave,
    resumed: Option<&Checkpoint>,
    mut cli: Cli<'_, T>,
) -> anyhow::Result<Outcome> {
    let control = Control::default();
    let run = Run { dataset, control: &control, autosave, train_seconds: resumed.map_or(0.0, train_seconds) };
    let outcome = match block_on(train(trainer, run, &mut cli)) {
        Ok(outcome) => outcome,
        Err(e) => {
            cli.bar.abandon();
            let path = &cli.path;
            return Err(if path.exists() { e.context(format!("the last good checkpoint is {}", path.display())) } else { e });
        }
    };
    cli.bar.finish();
    let weights = cli.path.with_extension("weights.ckpt");
    Checkpoint::load(&cli.path)?.weights_only().save(&weights)?;
    println!(
        "done in {:.1} min: {}; {} (resumable), {} (weights only)",
        outcome.train_seconds / 60.0,
        cli.smoothed.describe(),
        cli.path.display(),
        weights.display()
    );
    Ok(outcome)
}

/// Running means of the metrics over about the last 50 steps, for people (single batches are
/// noisy); the checkpoints record the steps' own values.
#[derive(Default)]
struct Smoothed(Vec<(&'static str, f64)>);

impl Smoothed {
    fn add(&mut self, metrics: &[(&'static str, f64)]) {
        for &(name, value) in metrics {
            match self.0.iter_mut().find(|(n, _)| *n == name) {
                Some((_, mean)) => *mean = 0.98 * *mean + 0.02 * value,
                None => self.0.push((name, value)),
            }
        }
    }

    /// `loss 0.1234 psnr 21.3 dB accuracy 93.1%`: the smoothed metrics people read.
    fn describe(&self) -> String {
        let shown = self.0.iter().filter_map(|&(name, v)| match name {
            "loss" => Some(format!("loss {v:.4}")),
            "psnr" => Some(format!("psnr {v:.2} dB")),
            "accuracy" => Some(format!("accuracy {:.1}%", v * 100.0)),
            _ => None,
        });
        shown.collect::<Vec<_>>().join(" ")
    }

    /// [`Self::describe`] with the step's learning rate and dead-code resets (the progress bar).
    fn with_raw(&self, metrics: &[(&'static str, f64)]) -> String {
        let mut line = self.describe();
        for &(name, v) in metrics {
            match name {
                "lr" => line += &format!(" lr {v:.1e}"),
                "codes_reset" if v > 0.0 => line += &format!(" reset {v}"),
                _ => {}
            }
        }
        line
    }
}

fn train_tokenizer(args: TokenizerArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let a = args.common;
    let Start { autosave, device, dataset, out, path } = a.start("var", "tokenizer.ckpt", preference)?;

    let (resumed, _lock) = open_run(&path, a.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        checkpoint.expect_model_config(&a.preset.tokenizer(dataset.channels()))
            .with_context(|| format!("{} was not trained with the {} preset on {}", path.display(), a.preset.name(), dataset.name()))?;
        let trainer = TokenizerTrainer::resume(checkpoint, a.steps, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
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
    let grid_set = grid_dataset(&a.dataset, open_dataset(&a.dataset, &a.preset, a.seed)?);
    let grid_idx = first_of_each_class(grid_set.as_ref(), 4);

    println!(
        "tokenizer: {} steps of {} {} images, {} codes x {} channels, scales {:?}",
        config.steps, config.batch_size, dataset.name(), config.model.vocab_size, config.model.z_channels, config.model.patch_nums
    );
    let report = move |trainer: &TokenizerTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        let usage = trainer.codebook_usage().into_data().try_to_vec::<f32>().unwrap_or_default();
        let psnr = write_reconstructions(trainer, grid_set.as_ref(), &grid_idx, &out, trainer.step_index(), &device)?;
        Ok(Report::line(format!(
            "{}, held-out psnr {psnr:.2} dB, codebook usage per scale {}",
            smoothed.describe(),
            usage.iter().map(|u| format!("{:.0}%", u * 100.0)).collect::<Vec<_>>().join(" ")
        )))
    };
    let cli = Cli::new(&trainer, path, a.sample_every, report);
    train_to_end(&mut trainer, dataset.as_ref(), autosave, resumed.as_ref(), cli)?;
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
    drop(labels);
    write_reconstruction_grid(&to_images(images), &to_images(recon), set, indices, out, step)?;
    Ok(psnr_from_mse(mse as f64))
}

/// The tokenizer's grid of `set`'s samples `indices`: per class, its originals first, then their
/// reconstructions, so a row reads left to right.
fn write_reconstruction_grid(originals: &[Image], recons: &[Image], set: &dyn Dataset, indices: &[usize], out: &Path, step: usize) -> anyhow::Result<()> {
    let labels: Vec<usize> = indices.iter().map(|&i| set.label(i)).collect();
    let mut samples = Vec::new();
    for class in 0..set.class_names().len() {
        for source in [originals, recons] {
            for (image, _) in source.iter().zip(&labels).filter(|(_, l)| **l == class) {
                samples.push(Sample { image: image.clone(), label: class });
            }
        }
    }
    let per_class = 2 * indices.len() / set.class_names().len().max(1);
    write_grid(samples, set, per_class, out, "tokenizer", step)
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
    let Start { autosave, device, dataset, out, path } = a.start("var", "var.ckpt", preference)?;

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

    let (resumed, _lock) = open_run(&path, a.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        checkpoint.expect_model_config(&a.preset.var(&tokenizer_config, classes).in_order(args.order))
            .with_context(|| format!("{} was not trained with the {} preset on {}", path.display(), a.preset.name(), dataset.name()))?;
        if checkpoint.header.tokenizer.as_deref().is_some_and(|t| t != tokenizer_id) {
            bail!("{} was trained with another tokenizer than {}", path.display(), args.tokenizer.display());
        }
        let trainer = VarTrainer::resume(checkpoint, tokenizer, a.steps, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
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
    let sampler = VarSamplerConfig::new().with_guidance(args.guidance).with_seed(7);

    println!(
        "transformer: {} steps of {} {} images, depth {}, width {}, {} heads, {} tokens per image, {:?} order",
        config.steps, config.batch_size, dataset.name(), config.model.depth, config.model.embed_dim, config.model.num_heads,
        config.model.seq_len(),
        config.model.order()
    );
    let like = dataset.as_ref();
    let report = move |trainer: &VarTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        write_samples(trainer, like, &sampler, &out, trainer.step_index(), &device)?;
        Ok(Report::line(smoothed.describe()))
    };
    let cli = Cli::new(&trainer, path, a.sample_every, report);
    train_to_end(&mut trainer, dataset.as_ref(), autosave, resumed.as_ref(), cli)?;
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
    /// Steps between checkpoints and between progress lines.
    const EVERY: usize = 250;
    let (device, note) = training_device(preference)?;
    eprintln!("{note}");
    let (name, train_set, heldout) = super::eval::judged_sets(&args.dataset)?;
    let out = args.out.unwrap_or_else(|| PathBuf::from(format!("runs/judge-{name}")));
    let path = out.join("judge.ckpt");
    let (resumed, _lock) = open_run(&path, args.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        let trainer = JudgeTrainer::resume(checkpoint, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        let model = JudgeConfig::new(train_set.channels(), train_set.height(), train_set.class_names().len());
        let mut config = JudgeTrainingConfig::new(model).with_seed(args.seed).with_class_names(train_set.class_names().to_vec());
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
    println!("judge: {} steps of {} {} images, stages {:?}", config.steps, config.batch_size, train_set.name(), config.model.widths);
    // At the end, the held-out accuracy (which `tessera eval` reads from the checkpoint).
    let report = move |trainer: &JudgeTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        if !trainer.is_done() {
            return Ok(Report::line(smoothed.describe()));
        }
        let indices: Vec<usize> = (0..heldout.len()).collect();
        let verdicts = block_on(judge_dataset(&trainer.model(), heldout.as_ref(), &indices, 250, &device))?;
        let labels: Vec<usize> = indices.iter().map(|&i| heldout.label(i)).collect();
        let accuracy = verdicts.accuracy(&labels);
        let line = format!("{}, held-out accuracy {:.2}% on {} images", smoothed.describe(), accuracy * 100.0, labels.len());
        Ok(Report { line, metrics: vec![(HELDOUT_ACCURACY, accuracy)] })
    };
    let cli = Cli::new(&trainer, path, EVERY, report);
    let autosave = Autosave { every_steps: NonZeroUsize::new(EVERY), ..Autosave::at_end() };
    train_to_end(&mut trainer, train_set.as_ref(), autosave, resumed.as_ref(), cli)?;
    Ok(())
}

/// The checkpoint metric with a judge's held-out accuracy (read by `tessera eval`).
pub(crate) const HELDOUT_ACCURACY: &str = "heldout_accuracy";
