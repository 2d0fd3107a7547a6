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
use tessera_train::data::load_batch;
use tessera_train::tokenizer::load_tokenizer;
use tessera_train::{BatchOrder, Checkpoint, TokenizerTrainer, VarPreset, VarTrainer};

use super::bench_kernels::{self, KernelRow};
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
        println!("| bench | model | batch | ms per call | images/s | calls/s | ops | device |\n|---|---|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {} | {} |",
                r.bench, r.model, r.batch, r.ms, r.images_per_s, r.per_s, r.ops, r.device
            );
        }
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
    }
}

/// Sampling rows of `family`'s shipped model, or of every shipped model, at guidance 2.
fn sample_rows(family: Option<Family>, device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (batches, repeats): (&[usize], usize) = if quick { (&[1, 4], 1) } else { (&[1, 16, 64], 3) };
    let models: Vec<_> = SHIPPED.iter().filter(|m| family.is_none_or(|f| f == m.family)).collect();
    if let (Some(family), true) = (family, models.is_empty()) {
        anyhow::bail!("{family} has no shipped model to time yet");
    }
    let sampler = SampleRequest::new(Vec::new()).with_guidance(2.0);
    let mut rows = Vec::new();
    for model in models {
        let generator = load_files(&shipped(model.generator_path), &shipped(model.tokenizer_path), device)?;
        for &b in batches {
            rows.push(row("sample", model.name, b, sampling_seconds(generator.as_ref(), &sampler, b, repeats)?, device, device_name));
        }
    }
    Ok(rows)
}

fn train_rows(device: &Device, device_name: &str, quick: bool) -> anyhow::Result<Vec<Row>> {
    let (batch, repeats) = if quick { (4, 1) } else { (32, 5) };
    let mnist = Mnist::train();
    let order = BatchOrder::new(mnist.len(), batch, 0);
    let preset = VarPreset::Tiny;

    let mut config = preset.tokenizer_training(1);
    config.batch_size = batch;
    let mut tokenizer = TokenizerTrainer::new(config, device)?;
    let tokenizer_s = seconds_per_call(repeats, || {
        let (images, _) = load_batch(&mnist, &order.indices(tokenizer.step_index()), device);
        block_on(tokenizer.step(images))?;
        Ok(())
    })?;

    // The transformer trains on the shipped tokenizer's token maps.
    let var_tiny = &SHIPPED[0];
    let (tokenizer_config, frozen) = load_tokenizer(&Checkpoint::load(&shipped(var_tiny.tokenizer_path))?, device)?;
    let mut config = preset.var_training(&tokenizer_config, mnist.class_names().len());
    config.batch_size = batch;
    let mut var = VarTrainer::new(config, frozen, device)?;
    let var_s = seconds_per_call(repeats, || {
        let (images, labels) = load_batch(&mnist, &order.indices(var.step_index()), device);
        block_on(var.step(images, labels))?;
        Ok(())
    })?;
    Ok(vec![
        row("train", "var-tokenizer (tiny)", batch, tokenizer_s, device, device_name),
        row("train", "var (tiny)", batch, var_s, device, device_name),
    ])
}
