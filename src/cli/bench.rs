//! `tessera bench sample|train|kernels`: throughput of the shipped generators on this device, of
//! the official codes' speed anchors (RAR's and the column generator's reference configs, random
//! weights, [`anchor`]), and the WGSL kernels against plain burn ops ([`super::bench_kernels`]).
//!
//! Each row names its device and the ops it ran on. Timings are wall clock around work that
//! ends in a readback (so queued GPU work is counted), after one untimed warm-up run.

use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use pollster::block_on;
use serde::Serialize;
use tessera_data::{Dataset, Mnist, Scenes, ScenesConfig};
use tessera_eval::balanced_labels;
use tessera_kernels::device::Preference;
use tessera_models::family::Family;
use tessera_models::generator::{ImageGenerator, SampleRequest, generate};
use tessera_train::columns::load_column_tokenizer;
use tessera_train::equivariant::load_equivariant;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::vqgan::load_vqgan;
use tessera_train::{
    BatchOrder, Checkpoint, ColumnTokenizerTrainer, ColumnsPreset, EquivariantTrainer, RarPreset, RarTrainer, TokenizerTrainer, Trainer, VarPreset,
    VarTrainer, VqganTrainer,
};

use super::bench_kernels::{self, KernelRow};

mod anchor;
use super::sample::{load_files, shipped};
use crate::shipped::SHIPPED;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Images per second of sampling at batch 1, 16 and 64: the shipped models, and the official
    /// speed anchors of RAR and the column generator (random weights).
    Sample(FamilyArgs),
    /// Training steps per second of each shipped family's trainers at the tiny preset, and of the
    /// RAR and column-generator anchors.
    Train(FamilyArgs),
    /// Each WGSL kernel against the plain burn ops on the same wgpu device, at the generators' shapes.
    Kernels(Args),
}

#[derive(clap::Args, Debug)]
pub struct FamilyArgs {
    /// The family to time (every one when omitted): its shipped model and its official anchor.
    #[arg(value_name = "FAMILY")]
    family: Option<Family>,
    #[command(flatten)]
    args: Args,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON (a list of rows) instead of a table.
    #[arg(long)]
    json: bool,
    /// Small batches and one repeat: checks the command works (CI), the figures mean little.
    #[arg(long)]
    quick: bool,
}

/// One measurement.
#[derive(Debug, Serialize)]
pub struct Row {
    /// `sample` or `train`.
    pub bench: &'static str,
    /// `var`, `var-tokenizer`, ...
    pub model: String,
    /// Images per call / step.
    pub batch: usize,
    /// Mean wall time of one call / step.
    pub ms: f64,
    /// `batch / seconds`.
    pub images_per_s: f64,
    /// Calls / steps per second.
    pub per_s: f64,
    /// Which ops ran: `wgsl-kernels` on a wgpu device, `cpu-kernels` on the CPU backend (the
    /// CPU kernels, a batch drawn in parts side by side), `burn-ops` with `--reference-ops`.
    pub ops: &'static str,
    /// The device, in words.
    pub device: String,
    /// The official code's images/s for the same work on the 2-core build machine, where it was
    /// measured ([`anchor::official`]); compare with rows measured there with `--device cpu`.
    pub official_images_per_s: Option<f64>,
}

pub fn run(command: Command, preference: anyhow::Result<Preference>) -> anyhow::Result<()> {
    let compute = super::compute(preference)?;
    let device_name = compute.describe();
    let (rows, args) = match command {
        Command::Sample(FamilyArgs { family, args }) => (sample_rows(family, &compute.device, &device_name, args.quick)?, args),
        Command::Train(FamilyArgs { family, args }) => (train_rows(family, &compute.device, &device_name, args.quick)?, args),
        Command::Kernels(args) => {
            return print_kernel_rows(&bench_kernels::kernel_rows(&compute.device, &device_name, args.quick)?, args.json);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "| bench | model | batch | ms per call | images/s | calls/s | official images/s (2-core CPU) | ops | device |\n|---|---|---|---|---|---|---|---|---|"
        );
        for r in &rows {
            let official = r.official_images_per_s.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"));
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {official} | {} | {} |",
                r.bench, r.model, r.batch, r.ms, r.images_per_s, r.per_s, r.ops, r.device
            );
        }
        println!("\nofficial: shared/bench/official_speed.py, PyTorch 2.4.1 on 2 CPU threads (2-core build machine, 2026-11-30)");
    }
    Ok(())
}

fn print_kernel_rows(rows: &[KernelRow], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
        return Ok(());
    }
    println!("| kernel | case | custom ms | plain ms | speed-up | max abs diff | device |\n|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2}x | {:.1e} | {} |",
            r.kernel, r.case, r.custom_ms, r.reference_ms, r.speedup, r.max_abs_diff, r.device
        );
    }
    println!("\n| family | median speed-up | target | |\n|---|---|---|---|");
    for (family, median, target) in bench_kernels::summary(rows) {
        let verdict = if median >= target { "met" } else { "not met" };
        println!("| {family} | {median:.2}x | {target}x | {verdict} |");
    }
    Ok(())
}

/// Mean seconds of `f` over `repeats` runs after one warm-up.
fn seconds_per_call(repeats: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    f()?;
    let start = Instant::now();
    for _ in 0..repeats {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64() / repeats.max(1) as f64)
}

/// Seconds to generate one batch of `batch` images with `sampler`'s settings, read back
/// (classes cycle through all).
pub(crate) fn sampling_seconds(generator: &dyn ImageGenerator, sampler: &SampleRequest, batch: usize, repeats: usize) -> anyhow::Result<f64> {
    let classes = generator.info().num_classes;
    let labels: Vec<usize> = balanced_labels(classes, batch.div_ceil(classes)).into_iter().take(batch).collect();
    let mut seed = 0;
    seconds_per_call(repeats, || {
        seed += 1;
        let request = SampleRequest { classes: labels.clone(), seed, ..sampler.clone() };
        block_on(generate(generator, &request)?.into_data_async()).context("reading the samples back")?;
        Ok(())
    })
}

fn row(bench: &'static str, model: &str, batch: usize, seconds: f64, device: &Device, device_name: &str) -> Row {
    Row {
        bench,
        model: model.to_string(),
        batch,
        ms: seconds * 1e3,
        images_per_s: batch as f64 / seconds,
        per_s: 1.0 / seconds,
        ops: if tessera_kernels::kernels_enabled(device) {
            "wgsl-kernels"
        } else if tessera_kernels::ops::cpu_kernels_enabled(device) {
            "cpu-kernels"
        } else {
            "burn-ops"
        },
        device: device_name.to_string(),
        official_images_per_s: anchor::official(bench, model, batch),
    }
}

/// Sampling rows of `family`'s shipped model, or of every shipped model, at guidance 2; and of the
/// official anchors of RAR and the column generator (`equivariant`), which need no shipped model.
fn sample_rows(family: Option<Family>, device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (batches, repeats): (&[usize], usize) = if quick { (&[1, 4], 1) } else { (&[1, 16, 64], 3) };
    let models: Vec<_> = SHIPPED.iter().filter(|m| family.is_none_or(|f| f == m.family)).collect();
    let anchored = |f: Family| family.is_none_or(|asked| asked == f);
    if let Some(family) = family
        && models.is_empty()
    {
        anyhow::ensure!(anchored(Family::Rar) || anchored(Family::Columns), "{family} has no shipped model to time yet");
        eprintln!("{family} has no shipped model yet: timing its official anchor config only (random weights)");
    }
    let sampler = SampleRequest { guidance: 2.0, ..Default::default() };
    let mut rows = Vec::new();
    for model in models {
        let generator = load_files(&shipped(model.generator_path), &shipped(model.tokenizer_path), device)?;
        for &b in batches {
            rows.push(row("sample", model.name, b, sampling_seconds(generator.as_ref(), &sampler, b, repeats)?, device, device_name));
        }
    }
    if anchored(Family::Rar) {
        rows.extend(anchor::rar_sample_rows(batches, repeats, device, device_name)?);
    }
    if anchored(Family::Columns) {
        rows.extend(anchor::columns_sample_rows(batches, repeats, device, device_name)?);
    }
    Ok(rows)
}

/// Seconds per optimizer step of `trainer`, through the [`Trainer`] trait as every run trains
/// (batch assembly included).
fn step_seconds<T: Trainer>(trainer: &mut T, dataset: &dyn Dataset, repeats: usize) -> anyhow::Result<f64> {
    let order = BatchOrder::new(dataset.len(), trainer.batch_size(), trainer.seed());
    seconds_per_call(repeats, || {
        let batch = tessera_data::batch(dataset, &order.indices(trainer.step_index()));
        block_on(trainer.step(&batch))?;
        Ok(())
    })
}

/// Training rows of every shipped family's trainers (tokenizer, then generator) at the tiny preset
/// (on MNIST; a shipped column pair on its own data), then the RAR and column-generator anchors
/// at batch 64; `family` alone when given.
fn train_rows(family: Option<Family>, device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (batch, repeats) = if quick { (4, 1) } else { (32, 5) };
    let mnist = Mnist::train();
    let anchored = |f: Family| family.is_none_or(|asked| asked == f);
    let mut rows = Vec::new();
    for model in SHIPPED.iter().filter(|m| anchored(m.family)) {
        // Each family builds its trainers here; the generator trains on its shipped tokenizer's tokens.
        match model.family {
            Family::Var => {
                let preset = VarPreset::Tiny;
                let mut config = preset.tokenizer_training(1);
                config.batch_size = batch;
                let tokenizer_s = step_seconds(&mut TokenizerTrainer::new(config, device)?, &mnist, repeats)?;
                rows.push(row("train", "var-tokenizer (tiny)", batch, tokenizer_s, device, device_name));
                let (tokenizer_config, frozen) = load_tokenizer(&Checkpoint::load(&shipped(model.tokenizer_path))?, device)?;
                let mut config = preset.var_training(&tokenizer_config, mnist.class_names().len());
                config.batch_size = batch;
                let var_s = step_seconds(&mut VarTrainer::new(config, frozen, device)?, &mnist, repeats)?;
                rows.push(row("train", "var (tiny)", batch, var_s, device, device_name));
            }
            Family::Rar => {
                let preset = RarPreset::Tiny;
                let mut config = preset.tokenizer_training(1);
                config.batch_size = batch;
                let tokenizer_s = step_seconds(&mut VqganTrainer::new(config, device)?, &mnist, repeats)?;
                rows.push(row("train", "rar-tokenizer (tiny)", batch, tokenizer_s, device, device_name));
                let (tokenizer_config, frozen) = load_vqgan(&Checkpoint::load(&shipped(model.tokenizer_path))?, device)?;
                let mut config = preset.rar_training(&tokenizer_config, mnist.class_names().len());
                config.batch_size = batch;
                let rar_s = step_seconds(&mut RarTrainer::new(config, frozen, device)?, &mnist, repeats)?;
                rows.push(row("train", "rar (tiny)", batch, rar_s, device, device_name));
            }
            Family::Columns => {
                // The shipped pair's configs on its own data (MNIST for a grey tokenizer, the scenes
                // for colour).
                let (tokenizer_config, frozen) = load_column_tokenizer(&Checkpoint::load(&shipped(model.tokenizer_path))?, device)?;
                let side = tokenizer_config.resolution;
                let dataset: Box<dyn Dataset> = match tokenizer_config.in_channels {
                    1 => Box::new(Mnist::train()),
                    _ => Box::new(Scenes::new(ScenesConfig { height: side, width: side, len: 1024, seed: 0 })?),
                };
                let preset = ColumnsPreset::Tiny;
                let mut config = preset.tokenizer_training(dataset.channels());
                config.model = tokenizer_config.clone();
                config.batch_size = batch;
                let tokenizer_s = step_seconds(&mut ColumnTokenizerTrainer::new(config, device)?, dataset.as_ref(), repeats)?;
                rows.push(row("train", &format!("{} tokenizer (tiny)", model.name), batch, tokenizer_s, device, device_name));
                // The shipped transformer's own config, with the preset's optimizer and schedule.
                let (shipped_model, _) = load_equivariant(&Checkpoint::load(&shipped(model.generator_path))?, device)?;
                let mut config = preset.equivariant_training(&tokenizer_config, dataset.class_names().len());
                config.model = shipped_model;
                config.batch_size = batch;
                let equivariant_s = step_seconds(&mut EquivariantTrainer::new(config, frozen, device)?, dataset.as_ref(), repeats)?;
                rows.push(row("train", &format!("{} equivariant (tiny)", model.name), batch, equivariant_s, device, device_name));
            }
        }
    }
    let anchor_batch = if quick { 4 } else { 64 };
    if anchored(Family::Rar) {
        rows.push(anchor::rar_train_row(anchor_batch, repeats, device, device_name)?);
    }
    if anchored(Family::Columns) {
        rows.extend(anchor::columns_train_rows(anchor_batch, repeats, device, device_name)?);
    }
    Ok(rows)
}
