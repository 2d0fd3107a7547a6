//! `tessera train rar-tokenizer` and `tessera train rar`: RAR's MaskGIT-VQGAN, then its
//! transformer with randomness annealing, through the same hooks as VAR's commands.
//!
//! Files in `--out DIR` (default `runs/rar-<preset>`): `tokenizer.ckpt` / `rar.ckpt` (resumable)
//! and their `.weights.ckpt` twins at the end, `samples/tokenizer/` grids of held-out originals
//! and reconstructions, `samples/rar/` grids of samples with a fixed seed.

use anyhow::{Context, bail, ensure};
use burn::prelude::*;
use tessera_data::{Dataset, Image, Sample};
use tessera_kernels::device::Preference;
use tessera_models::generators::rar::Rar;
use tessera_models::sampling::rar::{RarSamplerConfig, RarSampling};
use tessera_models::tokenizers::vqgan::Vqgan;
use tessera_train::checkpoint::fingerprint;
use tessera_train::data::{first_of_each_class, load_batch};
use tessera_train::vqgan::load_vqgan;
use tessera_train::{RandomnessConfig, RarPreset, RarTrainer, VqganTrainer};

use super::{
    Cli, Report, Smoothed, Start, TokenizerArgs, grid_dataset, open_dataset, open_run, train_to_end, write_grid, write_reconstruction_grid,
};

#[derive(clap::Args, Debug)]
pub struct RarArgs {
    #[command(flatten)]
    common: super::CommonArgs,
    /// The trained tokenizer (a `tokenizer.ckpt` or `tokenizer.weights.ckpt` of `train rar-tokenizer`).
    #[arg(long)]
    tokenizer: std::path::PathBuf,
    /// Classifier-free guidance of the periodic sample grids (official scale; 0 = none).
    #[arg(long, default_value_t = 3.0, value_parser = crate::cli::finite)]
    guidance: f64,
    /// Probability of a random token order: `anneal` (1 until --anneal-start of the run, linear to
    /// 0 at --anneal-end, as the paper), or `0` (raster only) or `1` (random only) throughout.
    #[arg(long, default_value = "anneal", value_name = "anneal|0|1")]
    random_ratio: String,
    /// Fraction of the run where the annealing starts (paper: 0.5).
    #[arg(long, default_value_t = 0.5, value_parser = crate::cli::finite)]
    anneal_start: f64,
    /// Fraction of the run where the annealing reaches 0 (paper: 0.75).
    #[arg(long, default_value_t = 0.75, value_parser = crate::cli::finite)]
    anneal_end: f64,
}

impl RarArgs {
    fn randomness(&self) -> anyhow::Result<RandomnessConfig> {
        Ok(match self.random_ratio.as_str() {
            "anneal" => {
                ensure!(
                    (0.0..=1.0).contains(&self.anneal_start) && (0.0..=1.0).contains(&self.anneal_end) && self.anneal_start <= self.anneal_end,
                    "--anneal-start and --anneal-end must be fractions of the run with start ≤ end"
                );
                RandomnessConfig::new().with_start(self.anneal_start).with_end(self.anneal_end)
            }
            "0" => RandomnessConfig::raster_only(),
            "1" => RandomnessConfig::random_only(),
            other => bail!("--random-ratio must be anneal, 0 or 1, not {other}"),
        })
    }
}

pub(super) fn train_tokenizer(args: TokenizerArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let a = args.common;
    let preset = RarPreset::from(a.preset);
    let Start { autosave, device, dataset, out, path } = a.start("rar", "tokenizer.ckpt", preference)?;

    let (resumed, _lock) = open_run(&path, a.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        ensure!(a.steps.is_none(), "--steps cannot change a resumed run (it would change its schedule)");
        let trainer = VqganTrainer::resume(checkpoint, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        let mut config = preset.tokenizer_training(dataset.channels());
        config.seed = a.seed;
        config.steps = a.steps.unwrap_or(config.steps);
        config.batch_size = a.batch.unwrap_or(config.batch_size);
        config.schedule.peak_lr = a.lr.unwrap_or(config.schedule.peak_lr);
        VqganTrainer::new(config, &device)?
    };
    let config = trainer.config().clone();
    let grid_set = grid_dataset(&a.dataset, open_dataset(&a.dataset, &a.preset, a.seed)?);
    let grid_idx = first_of_each_class(grid_set.as_ref(), 4);
    println!(
        "RAR tokenizer: {} steps of {} {} images, {} codes x {} channels, {}x{} tokens",
        config.steps,
        config.batch_size,
        dataset.name(),
        config.model.codebook_size,
        config.model.codebook_dim,
        config.model.latent_side(),
        config.model.latent_side()
    );
    let report = move |trainer: &VqganTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        let usage: f32 = trainer.codebook_usage().into_scalar();
        let psnr = write_reconstructions(&trainer.model(), grid_set.as_ref(), &grid_idx, &out, trainer.step_index(), &device)?;
        Ok(Report::line(format!("{}, held-out psnr {psnr:.2} dB, codebook usage {:.0}%", smoothed.describe(), usage * 100.0)))
    };
    let cli = Cli::new(&trainer, path, a.sample_every, report);
    train_to_end(&mut trainer, dataset.as_ref(), autosave, resumed.as_ref(), cli)?;
    Ok(())
}

/// Writes the held-out grid (per class: 4 originals, then their reconstructions) and returns the
/// PSNR of those reconstructions.
fn write_reconstructions(model: &Vqgan, set: &dyn Dataset, indices: &[usize], out: &std::path::Path, step: usize, device: &Device) -> anyhow::Result<f64> {
    let (images, _) = load_batch(set, indices, device);
    let images = (images + 1.0) * 0.5; // [0, 1], as the MaskGIT-VQGAN takes them
    let recon = model.codes_to_image(model.encode(images.clone()));
    let mse: f32 = (recon.clone() - images.clone()).square().mean().into_scalar();
    let (originals, recons) = (super::super::sample::images(images), super::super::sample::images(recon));
    write_reconstruction_grid(&originals, &recons, set, indices, out, step)?;
    Ok(10.0 * (1.0 / (mse as f64).max(1e-12)).log10())
}

pub(super) fn train_rar(args: RarArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let randomness = args.randomness()?;
    let a = &args.common;
    let preset = RarPreset::from(a.preset);
    let Start { autosave, device, dataset, out, path } = a.start("rar", "rar.ckpt", preference)?;

    let tokenizer_file = tessera_train::Checkpoint::load(&args.tokenizer).with_context(|| format!("reading the tokenizer {}", args.tokenizer.display()))?;
    let tokenizer_id = fingerprint(&tokenizer_file.weights);
    let (tokenizer_config, tokenizer) = load_vqgan(&tokenizer_file, &device).with_context(|| format!("loading the tokenizer {}", args.tokenizer.display()))?;
    ensure!(
        tokenizer_config.num_channels == dataset.channels() && tokenizer_config.resolution == dataset.height(),
        "the tokenizer works on {}-channel {}px images, {} has {}-channel {}px images",
        tokenizer_config.num_channels,
        tokenizer_config.resolution,
        dataset.name(),
        dataset.channels(),
        dataset.height()
    );
    let classes = dataset.class_names().len();

    let (resumed, _lock) = open_run(&path, a.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        ensure!(a.steps.is_none(), "--steps cannot change a resumed run (it would change its schedules)");
        if checkpoint.header.tokenizer.as_deref().is_some_and(|t| t != tokenizer_id) {
            bail!("{} was trained with another tokenizer than {}", path.display(), args.tokenizer.display());
        }
        let trainer = RarTrainer::resume(checkpoint, tokenizer, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        let mut config = preset.rar_training(&tokenizer_config, classes).with_class_names(dataset.class_names().to_vec()).with_randomness(randomness);
        config.seed = a.seed;
        config.steps = a.steps.unwrap_or(config.steps);
        config.batch_size = a.batch.unwrap_or(config.batch_size);
        config.schedule.peak_lr = a.lr.unwrap_or(config.schedule.peak_lr);
        RarTrainer::new(config, tokenizer, &device)?.with_tokenizer_fingerprint(tokenizer_id)
    };
    let config = trainer.config().clone();
    println!(
        "RAR transformer: {} steps of {} {} images, depth {}, width {}, {} heads, {} tokens per image; {}",
        config.steps,
        config.batch_size,
        dataset.name(),
        config.model.depth,
        config.model.hidden_size,
        config.model.num_heads,
        config.model.seq_len,
        config.randomness.describe()
    );
    let sampler = RarSamplerConfig { guidance: args.guidance, seed: 7, ..RarSamplerConfig::default() };
    let like = dataset.as_ref();
    let report = move |trainer: &RarTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        write_samples(&trainer.model(), trainer.tokenizer(), like, &sampler, &out, trainer.step_index(), &device)?;
        Ok(Report::line(format!("{}, random-order probability {:.2}", smoothed.describe(), trainer.random_ratio())))
    };
    let cli = Cli::new(&trainer, path, a.sample_every, report);
    train_to_end(&mut trainer, dataset.as_ref(), autosave, resumed.as_ref(), cli)?;
    Ok(())
}

/// Eight samples per class with a fixed seed, one row per class.
fn write_samples(
    rar: &Rar,
    tokenizer: &Vqgan,
    like: &dyn Dataset,
    sampler: &RarSamplerConfig,
    out: &std::path::Path,
    step: usize,
    device: &Device,
) -> anyhow::Result<()> {
    const PER_CLASS: usize = 8;
    let classes = like.class_names().len();
    let labels: Vec<i64> = (0..classes).flat_map(|c| std::iter::repeat_n(c as i64, PER_CLASS)).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device.clone().inner());
    let mut run = RarSampling::new(rar, labels, sampler.clone());
    while run.step(rar).is_some() {}
    let images: Vec<Image> = super::super::sample::images(tokenizer.codes_to_image(run.tokens()));
    let samples = images.into_iter().enumerate().map(|(i, image)| Sample { image, label: i / PER_CLASS }).collect();
    write_grid(samples, like, PER_CLASS, out, "rar", step)
}
