//! `tessera train columns-tokenizer` and `tessera train equivariant`: the equivariant generator's
//! column tokenizer, then its column transformer with the flow head, through the same hooks as
//! VAR's commands.
//!
//! Files in `--out DIR` (default `runs/columns-<preset>`): `tokenizer.ckpt` / `equivariant.ckpt`
//! (resumable) and their `.weights.ckpt` twins at the end (the weights are the EMA average),
//! `samples/tokenizer/` grids of held-out originals and reconstructions, `samples/equivariant/`
//! grids of samples with a fixed seed.

use anyhow::{Context, bail, ensure};
use burn::prelude::*;
use tessera_data::{Dataset, Image, Sample};
use tessera_kernels::device::Preference;
use tessera_models::generators::equivariant::Equivariant;
use tessera_models::sampling::equivariant::{ColumnSamplerConfig, ColumnSampling};
use tessera_models::tokenizers::columns::ColumnTokenizer;
use tessera_train::checkpoint::fingerprint;
use tessera_train::columns::load_column_tokenizer;
use tessera_train::data::{first_of_each_class, load_batch};
use tessera_train::{ColumnTokenizerTrainer, ColumnsPreset, EquivariantTrainer};

use super::{Cli, Report, Smoothed, Start, TokenizerArgs, grid_dataset, open_dataset, open_run, train_to_end, write_grid, write_reconstruction_grid};

#[derive(clap::Args, Debug)]
pub struct EquivariantArgs {
    #[command(flatten)]
    common: super::CommonArgs,
    /// The trained column tokenizer (a `tokenizer.ckpt` or `tokenizer.weights.ckpt` of
    /// `train columns-tokenizer`).
    #[arg(long)]
    tokenizer: std::path::PathBuf,
    /// Classifier-free guidance of the periodic sample grids (0 = none; official weight − 1).
    #[arg(long, default_value_t = 2.0, value_parser = crate::cli::finite)]
    guidance: f64,
    /// Attention window: each column sees itself and the W previous ones (official
    /// `cond_length`); 0 = full causal attention (the claims' baseline). Default: the preset's 3.
    #[arg(long, value_name = "W")]
    window: Option<usize>,
    /// Train without the random RoPE position shift (the claims' "seams" ablation).
    #[arg(long)]
    no_rope_shift: bool,
    /// Train on the first K token columns of each image only (the sub-task transfer claim).
    #[arg(long, value_name = "K")]
    train_columns: Option<usize>,
}

pub(super) fn train_tokenizer(args: TokenizerArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let a = args.common;
    let preset = ColumnsPreset::from(a.preset);
    let Start { autosave, device, dataset, out, path } = a.start("columns", "tokenizer.ckpt", preference)?;

    let (resumed, _lock) = open_run(&path, a.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        ensure!(a.steps.is_none(), "--steps cannot change a resumed run (it would change its schedule)");
        let trainer = ColumnTokenizerTrainer::resume(checkpoint, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        let mut config = preset.tokenizer_training(dataset.channels());
        config.seed = a.seed;
        config.steps = a.steps.unwrap_or(config.steps);
        config.batch_size = a.batch.unwrap_or(config.batch_size);
        config.schedule.peak_lr = a.lr.unwrap_or(config.schedule.peak_lr);
        ColumnTokenizerTrainer::new(config, &device)?
    };
    let config = trainer.config().clone();
    let grid_set = grid_dataset(&a.dataset, open_dataset(&a.dataset, &a.preset, a.seed)?);
    let grid_idx = first_of_each_class(grid_set.as_ref(), 4);
    println!(
        "column tokenizer: {} steps of {} {} images, {} columns of {} px per image, tokens of {}",
        config.steps,
        config.batch_size,
        dataset.name(),
        config.model.tokens_for_width(dataset.width()),
        config.model.column_width(),
        config.model.embed_dim
    );
    let report = move |trainer: &ColumnTokenizerTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        let psnr = write_reconstructions(&trainer.model(), grid_set.as_ref(), &grid_idx, &out, trainer.step_index(), &device)?;
        Ok(Report::line(format!("{}, held-out psnr {psnr:.2} dB (EMA weights, token means)", smoothed.describe())))
    };
    let cli = Cli::new(&trainer, path, a.sample_every, report);
    train_to_end(&mut trainer, dataset.as_ref(), autosave, resumed.as_ref(), cli)?;
    Ok(())
}

/// Writes the held-out grid (per class: 4 originals, then their reconstructions from the token
/// means) and returns the PSNR of those reconstructions.
fn write_reconstructions(model: &ColumnTokenizer, set: &dyn Dataset, indices: &[usize], out: &std::path::Path, step: usize, device: &Device) -> anyhow::Result<f64> {
    let (images, _) = load_batch(set, indices, device);
    let recon = model.decode(model.encode(images.clone())).clamp(-1.0, 1.0);
    let mse: f32 = (recon.clone() - images.clone()).square().mean().into_scalar();
    let to01 = |t: Tensor<4>| super::super::sample::images((t + 1.0) * 0.5);
    write_reconstruction_grid(&to01(images), &to01(recon), set, indices, out, step)?;
    Ok(10.0 * (4.0 / (mse as f64).max(1e-12)).log10())
}

pub(super) fn train_equivariant(args: EquivariantArgs, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let a = &args.common;
    let preset = ColumnsPreset::from(a.preset);
    let Start { autosave, device, dataset, out, path } = a.start("columns", "equivariant.ckpt", preference)?;

    let tokenizer_file = tessera_train::Checkpoint::load(&args.tokenizer).with_context(|| format!("reading the tokenizer {}", args.tokenizer.display()))?;
    let tokenizer_id = fingerprint(&tokenizer_file.weights);
    let (tokenizer_config, tokenizer) =
        load_column_tokenizer(&tokenizer_file, &device).with_context(|| format!("loading the tokenizer {}", args.tokenizer.display()))?;
    ensure!(
        tokenizer_config.in_channels == dataset.channels() && tokenizer_config.resolution == dataset.height(),
        "the tokenizer works on {}-channel {}px high images, {} has {}-channel {}px images",
        tokenizer_config.in_channels,
        tokenizer_config.resolution,
        dataset.name(),
        dataset.channels(),
        dataset.height()
    );
    let classes = dataset.class_names().len();

    let (resumed, _lock) = open_run(&path, a.resume)?;
    let mut trainer = if let Some(checkpoint) = &resumed {
        ensure!(a.steps.is_none(), "--steps cannot change a resumed run (it would change its schedule)");
        if checkpoint.header.tokenizer.as_deref().is_some_and(|t| t != tokenizer_id) {
            bail!("{} was trained with another tokenizer than {}", path.display(), args.tokenizer.display());
        }
        let trainer = EquivariantTrainer::resume(checkpoint, tokenizer, &device)?;
        eprintln!("resuming {} at step {}", path.display(), trainer.step_index());
        trainer
    } else {
        ensure!(!args.train_columns.is_some_and(|k| k == 0), "--train-columns must be at least 1");
        let mut config = preset.equivariant_training(&tokenizer_config, classes).with_class_names(dataset.class_names().to_vec());
        config.model.token_num = tokenizer_config.tokens_for_width(dataset.width());
        config.model.window = args.window.unwrap_or(config.model.window);
        if args.no_rope_shift {
            config.model.shift_num = 1;
        }
        config.train_columns = args.train_columns;
        config.seed = a.seed;
        config.steps = a.steps.unwrap_or(config.steps);
        config.batch_size = a.batch.unwrap_or(config.batch_size);
        config.schedule.peak_lr = a.lr.unwrap_or(config.schedule.peak_lr);
        EquivariantTrainer::new(config, tokenizer, &device)?.with_tokenizer_fingerprint(tokenizer_id)
    };
    let config = trainer.config().clone();
    let m = &config.model;
    println!(
        "equivariant transformer: {} steps of {} {} images, {} blocks of width {}, {} heads, window {}, {} columns of {} channels, flow head {} x {}",
        config.steps,
        config.batch_size,
        dataset.name(),
        m.depth,
        m.embed_dim,
        m.num_heads,
        m.window,
        m.token_num,
        m.token_dim,
        m.head_depth,
        m.head_width
    );
    if m.shift_num <= 1 || config.train_columns.is_some() {
        println!(
            "ablation: {}{}",
            if m.shift_num <= 1 { "no RoPE shift in training; " } else { "" },
            config.train_columns.map(|k| format!("trained on the first {k} columns only")).unwrap_or_default()
        );
    }
    let sampler = ColumnSamplerConfig { cfg: 1.0 + args.guidance, seed: 7, ..ColumnSamplerConfig::default() };
    let like = dataset.as_ref();
    let report = move |trainer: &EquivariantTrainer, smoothed: &Smoothed| -> anyhow::Result<Report> {
        let vae_norm = trainer.config().model.vae_norm;
        write_samples(&trainer.model(), trainer.tokenizer(), vae_norm, like, &sampler, &out, trainer.step_index(), &device)?;
        Ok(Report::line(format!("{}, token scale {vae_norm:.4}", smoothed.describe())))
    };
    let cli = Cli::new(&trainer, path, a.sample_every, report);
    train_to_end(&mut trainer, dataset.as_ref(), autosave, resumed.as_ref(), cli)?;
    Ok(())
}

/// Eight samples per class with a fixed seed, one row per class, at the training width.
#[allow(clippy::too_many_arguments)]
fn write_samples(
    model: &Equivariant,
    tokenizer: &ColumnTokenizer,
    vae_norm: f64,
    like: &dyn Dataset,
    sampler: &ColumnSamplerConfig,
    out: &std::path::Path,
    step: usize,
    device: &Device,
) -> anyhow::Result<()> {
    const PER_CLASS: usize = 8;
    let classes = like.class_names().len();
    let labels: Vec<i64> = (0..classes).flat_map(|c| std::iter::repeat_n(c as i64, PER_CLASS)).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device.clone().inner());
    let mut run = ColumnSampling::new(model, labels, sampler.clone(), model.token_num());
    while run.step(model).is_some() {}
    let decoded = tokenizer.decode(run.tokens() / vae_norm).clamp(-1.0, 1.0);
    let images: Vec<Image> = super::super::sample::images((decoded + 1.0) * 0.5);
    let samples = images.into_iter().enumerate().map(|(i, image)| Sample { image, label: i / PER_CLASS }).collect();
    write_grid(samples, like, PER_CLASS, out, "equivariant", step)
}
