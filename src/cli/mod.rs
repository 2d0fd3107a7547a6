//! The headless commands of the `tessera` binary, and the window when there is no command.

mod bench;
mod bench_kernels;
mod data;
mod edit;
mod eval;
mod info;
mod parity;
mod sample;
mod train;
mod window;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_kernels::device::{self, Compute, Preference};

#[derive(Parser, Debug)]
#[command(name = "tessera", version, about = "Train small autoregressive image generators and watch them generate.",
    long_about = "Train small autoregressive image generators and watch them generate.\n\n\
    With no command, opens the app window. The commands below work headless (no display needed).")]
struct Cli {
    /// Which device computes: auto (best GPU, else a software adapter, else the CPU), gpu, or cpu.
    /// Defaults to $TESSERA_DEVICE, else auto.
    #[arg(long, global = true, value_name = "auto|gpu|cpu")]
    device: Option<Preference>,
    /// Run everything on plain burn ops instead of the WGSL kernels (attention, quantizer,
    /// decoder), to compare speed or results.
    #[arg(long, global = true)]
    reference_ops: bool,
    /// Open the window with the settings of a shared link, e.g.
    /// '?generator=var&class=3&seed=1&autorun=1' (the part of the web app's URL after the '?').
    #[arg(long, value_name = "QUERY")]
    link: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the compute device: adapter, backend, type, limits and optional features.
    Info(info::Args),
    /// Inspect datasets.
    #[command(subcommand)]
    Data(data::Command),
    /// Check the models against fixtures made by the official implementations; non-zero exit on any FAIL.
    Parity(parity::Args),
    /// Train a model: `var-tokenizer` first, then `var` on its token maps.
    #[command(subcommand)]
    Train(train::Command),
    /// Draw images from a trained generator of a family (its shipped tiny MNIST model by default).
    Sample(sample::Args),
    /// Zero-shot editing: in-paint, out-paint, or re-generate a region as another class.
    Edit(edit::Args),
    /// Measure the shipped models with the judge: class accuracy, FID, precision/recall, speed.
    Eval(eval::Args),
    /// Throughput of sampling and training on this device.
    #[command(subcommand)]
    Bench(bench::Command),
}

/// Entry point of the desktop binary.
pub fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    tessera_kernels::set_reference_ops(cli.reference_ops);
    let device = cli.device;
    let result = match cli.command {
        None => window::run(cli.link),
        // Headless work runs on the CPU pool's threads (see `on_pool`: fewer thread wake-ups).
        Some(command) => tessera_kernels::cpu::on_pool(move || match command {
            Command::Info(args) => info::run(args, preference(device)),
            Command::Data(cmd) => data::run(cmd),
            Command::Parity(args) => parity::run(args, preference(device)),
            Command::Train(cmd) => train::run(cmd, preference(device)),
            Command::Sample(args) => sample::run(args, preference(device)),
            Command::Edit(args) => edit::run(args, preference(device)),
            Command::Eval(args) => eval::run(args, preference(device)),
            Command::Bench(cmd) => bench::run(cmd, preference(device)),
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A number argument that must be finite: `nan` and `inf` parse as floats, but draw blank images
/// (and train on NaN) without an error. Clap names the flag in the message.
pub(crate) fn finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("not a finite number".into()),
        Err(_) => Err("not a number".into()),
    }
}

/// Images per training step: 1 to [`tessera_train::MAX_BATCH`].
pub(crate) fn batch(s: &str) -> Result<usize, String> {
    at_most(positive(s)?, tessera_train::MAX_BATCH)
}

/// Images in one request: 1 to [`tessera_models::generator::MAX_IMAGES`].
pub(crate) fn images(s: &str) -> Result<usize, String> {
    at_most(positive(s)?, tessera_models::generator::MAX_IMAGES)
}

fn at_most(n: usize, most: usize) -> Result<usize, String> {
    if n <= most { Ok(n) } else { Err(format!("at most {most}")) }
}

/// A count that must be at least 1: zero images, steps, batches or a checkpoint every 0 steps has
/// nothing to do, or divides by zero.
pub(crate) fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".into()),
    }
}

fn preference(flag: Option<Preference>) -> anyhow::Result<Preference> {
    match flag {
        Some(p) => Ok(p),
        None => Ok(Preference::from_env()?),
    }
}

/// The device for a headless command; says once, on stderr, when it had to fall back to the CPU.
/// `--device gpu` keeps work on a software adapter ([`Compute::work_device`]).
pub(crate) fn compute(preference: anyhow::Result<Preference>) -> anyhow::Result<Compute> {
    let preference = preference?;
    let compute = device::create_blocking(preference)?;
    compute.set_software_adapter_forced(preference == Preference::Gpu);
    if let Some(notice) = &compute.notice {
        eprintln!("note: {notice}");
    }
    Ok(compute)
}

/// Where a command that makes images works ([`Compute::work_device`]), saying so on stderr when
/// it is not the adapter; `verb` names the work in the hint. Also returns its description.
pub(crate) fn work_device(preference: anyhow::Result<Preference>, verb: &str) -> anyhow::Result<(burn::tensor::Device, String)> {
    let compute = compute(preference)?;
    Ok(match compute.work_device() {
        (device, Some(note)) => {
            eprintln!("note: {note} (use --device gpu to {verb} on it anyway)");
            (device, Compute::cpu(None).describe())
        }
        (device, None) => (device, compute.describe()),
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::Cli;

    /// The parse error of `tessera ARGS`, or "" when they parse.
    fn parse_error(args: &str) -> String {
        let args = std::iter::once("tessera").chain(args.split_whitespace());
        Cli::try_parse_from(args).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn non_finite_numbers_are_refused_naming_the_flag() {
        for (args, flag) in [
            ("sample var --class 1 --guidance nan", "--guidance"),
            ("sample var --class 1 --temperature inf", "--temperature"),
            ("sample var --class 1 --top-p=-inf", "--top-p"),
            ("edit var --input heldout:0 --guidance NaN", "--guidance"),
            ("train var-tokenizer --dataset mnist --lr nan", "--lr"),
            ("train var-tokenizer --dataset mnist --save-every-minutes inf", "--save-every-minutes"),
            ("train var --dataset mnist --tokenizer t.ckpt --guidance nan", "--guidance"),
            ("train rar --dataset mnist --tokenizer t.ckpt --anneal-start nan", "--anneal-start"),
            ("train equivariant --dataset mnist --tokenizer t.ckpt --guidance inf", "--guidance"),
        ] {
            let e = parse_error(args);
            assert!(e.contains(flag) && e.contains("not a finite number"), "{args}: {e:?}");
        }
        assert_eq!(parse_error("sample var --class 1 --guidance 1.5 --temperature 0.5 --top-p 0.9"), "");
    }

    #[test]
    fn zero_counts_and_counts_past_their_caps_are_refused_naming_the_flag() {
        for (args, flag, says) in [
            ("sample var --class 1 --n 0", "--n", "at least 1"),
            ("edit var --input heldout:0 --n 0", "--n", "at least 1"),
            ("train var-tokenizer --dataset mnist --save-every 0", "--save-every", "at least 1"),
            ("train var-tokenizer --dataset mnist --batch 0", "--batch", "at least 1"),
            ("train var-tokenizer --dataset mnist --steps 0", "--steps", "at least 1"),
            ("train judge --dataset mnist --batch 0", "--batch", "at least 1"),
            ("data preview --dataset mnist --per-class 0", "--per-class", "at least 1"),
            ("data preview --dataset scenes --resolution 0", "--resolution", "at least 1"),
            ("sample var --class 1 --n 5000", "--n", "at most 1024"),
            ("train var-tokenizer --dataset mnist --batch 5000", "--batch", "at most 1024"),
            ("train judge --dataset mnist --batch 1025", "--batch", "at most 1024"),
        ] {
            let e = parse_error(args);
            assert!(e.contains(flag) && e.contains(says), "{args}: {e:?}");
        }
        assert_eq!(parse_error("train var-tokenizer --dataset mnist --batch 1024"), "");
        // 0 keeps its documented meaning where it has one: sample grids only at the end.
        assert_eq!(parse_error("train var-tokenizer --dataset mnist --sample-every 0 --steps 1 --batch 1"), "");
    }
}
