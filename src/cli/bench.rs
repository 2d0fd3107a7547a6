//! `tessera bench sample|train|kernels`: throughput of the shipped generators on this device, and
//! the WGSL kernels against plain burn ops ([`super::bench_kernels`]).
//!
//! Each row names its device and the ops it ran on. Timings are wall clock around work that
//! ends in a readback (so queued GPU work is counted), after one untimed warm-up run.

use std::time::Instant;

use anyhow::Context;
use burn::prelude::*;
use pollster::block_on;
use serde::Serialize;
use tessera_data::{Dataset, Mnist};
use tessera_eval::balanced_labels;
use tessera_kernels::device::Preference;
use tessera_models::family::Family;
use tessera_models::generator::{ImageGenerator, SampleRequest, generate};
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::vqgan::load_vqgan;
use tessera_train::{BatchOrder, Checkpoint, RarPreset, RarTrainer, TokenizerTrainer, Trainer, VarPreset, VarTrainer, VqganTrainer};

use super::bench_kernels::{self, KernelRow};

mod anchor;
use super::sample::{load_files, shipped};
use crate::shipped::SHIPPED;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Images per second of sampling at batch 1, 16 and 64.
    Sample(SampleArgs),
    /// Training steps per second of each model of the tiny preset.
    Train(Args),
    /// Each WGSL kernel against the plain burn ops on the same wgpu device, at the generators' shapes.
    Kernels(Args),
}

#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// The family to time (every shipped one when omitted).
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
    /// Which ops ran: `wgsl-kernels` on a wgpu device, `burn-ops` on the CPU backend or with
    /// `--reference-ops`.
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
        Command::Sample(SampleArgs { family, args }) => (sample_rows(family, &compute.device, &device_name, args.quick)?, args),
        Command::Train(args) => (train_rows(&compute.device, &device_name, args.quick)?, args),
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
        ops: if tessera_kernels::kernels_enabled(device) { "wgsl-kernels" } else { "burn-ops" },
        device: device_name.to_string(),
        official_images_per_s: anchor::official(bench, model, batch),
    }
}

/// Sampling rows of `family`'s shipped model, or of every shipped model, at guidance 2.
fn sample_rows(family: Option<Family>, device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (batches, repeats): (&[usize], usize) = if quick { (&[1, 4], 1) } else { (&[1, 16, 64], 3) };
    let models: Vec<_> = SHIPPED.iter().filter(|m| family.is_none_or(|f| f == m.family)).collect();
    let rar_anchor = family.is_none_or(|f| f == Family::Rar);
    if let (Some(family), true) = (family, models.is_empty() && !rar_anchor) {
        anyhow::bail!("{family} has no shipped model to time yet");
    }
    let sampler = SampleRequest { guidance: 2.0, ..Default::default() };
    let mut rows = Vec::new();
    for model in models {
        let generator = load_files(&shipped(model.generator_path), &shipped(model.tokenizer_path), device)?;
        for &b in batches {
            rows.push(row("sample", model.name, b, sampling_seconds(generator.as_ref(), &sampler, b, repeats)?, device, device_name));
        }
    }
    if rar_anchor {
        rows.extend(anchor::rar_sample_rows(batches, repeats, device, device_name)?);
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

/// Training rows of every shipped family's trainers (tokenizer, then generator) at the tiny preset on MNIST.
fn train_rows(device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (batch, repeats) = if quick { (4, 1) } else { (32, 5) };
    let mnist = Mnist::train();
    let mut rows = Vec::new();
    for model in SHIPPED {
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
            family => anyhow::bail!("{family} has a shipped model but no trainer to time here yet"),
        }
    }
    rows.push(anchor::rar_train_row(if quick { 4 } else { 64 }, repeats, device, device_name)?);
    Ok(rows)
}
